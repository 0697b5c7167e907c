"""Cross-realm (seed 000): a second realm CORP.TEST on its own KDC (and
slapd) with a two-way trust to EXAMPLE.TEST. CORP users log in to
EXAMPLE front ends; constrained delegation from an EXAMPLE front end to a
CORP back end is refused and named cross-realm-delegation with
SEC_E_CROSSREALM_DELEGATION_FAILURE; a disjoint namespace is diagnosed by
the self-test with the domain_realm fix."""

import os

import pytest

import kdclient
import kdlab
from conftest import negotiate_conf
from kdnames import NODE1



@pytest.fixture(scope="module")
def corp(realm, lab_dir):
    corp = kdlab.Realm(os.path.join(lab_dir, "corp"), "CORP.TEST", "corp.test")
    try:
        corp.start()
        kdlab.trust(realm, corp)
        conf = kdlab.cross_realm_conf(os.path.join(lab_dir, "cross.krb5.conf"), realm, corp,
                                      domain_realm=[("app.corp.test", realm.realm)])
        # a service whose host is in corp.test but whose key is in EXAMPLE.TEST
        realm.kadmin(f"addprinc -randkey HTTP/app.corp.test@{realm.realm}")
        corp.cross_conf = conf
        yield corp
    finally:
        corp.stop()


def cross_env(corp, ccache=None):
    env = corp.env(ccache)
    env["KRB5_CONFIG"] = corp.cross_conf
    return env


def corp_alice(corp, lab_dir):
    cc = os.path.join(lab_dir, "ccache", "alice-corp.cc")
    os.makedirs(os.path.dirname(cc), exist_ok=True)
    kdlab._run(["kinit", "-c", "FILE:" + cc, "alice@CORP.TEST"],
               {**kdlab.base_env(), **cross_env(corp, cc)}, input=kdlab.USERS["alice"] + "\n")
    return cc


@pytest.fixture
def corp_client(corp):
    """python-gssapi in this process uses the cross-realm krb5.conf."""
    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = corp.cross_conf
    yield
    os.environ["KRB5_CONFIG"] = saved


@pytest.mark.parametrize("remote_user,expected", [("full", "alice@CORP.TEST"),
                                                  ("short", "alice")])
def test_corp_user_logs_in_to_example_front(kd_httpd, realm, corp, corp_client, lab_dir,
                                            remote_user, expected):
    cc = corp_alice(corp, lab_dir)
    h = kd_httpd("xfront", "127.0.0.2", server_name=NODE1, env={"KRB5_CONFIG": corp.cross_conf},
                 conf_fn=lambda d: negotiate_conf(realm, d, "node1") +
                 f"KdelegRemoteUser {remote_user}\n")
    status, _, body, _ = kdclient.negotiate(h, "/private/cgi/env.cgi", cc)
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == expected
    assert env["GSS_NAME"] == "alice@CORP.TEST"
    assert env["KDELEG_SPN"] == f"HTTP/{NODE1}@EXAMPLE.TEST"


@pytest.mark.parametrize("realms,status", [("EXAMPLE.TEST", 403), ("EXAMPLE.TEST CORP.TEST", 200),
                                           ("*", 200)])
def test_realms_limit_the_trusted_realm(kd_httpd, realm, corp, corp_client, lab_dir, realms,
                                        status):
    """KdelegRealms (issue 14): the trust lets CORP users in; a location
    that lists only EXAMPLE.TEST refuses them as realm-not-allowed. The
    server level says EXAMPLE.TEST only: the location's list replaces it,
    and `*` lifts it."""
    cc = corp_alice(corp, lab_dir)
    h = kd_httpd("xrealms", "127.0.0.2", server_name=NODE1, env={"KRB5_CONFIG": corp.cross_conf},
                 conf_fn=lambda d: "KdelegRealms EXAMPLE.TEST\n" + negotiate_conf(
                     realm, d, "node1", location_extra=f"    KdelegRealms {realms}\n"))
    h.allowed |= {"KD00301"}
    mark = h.error_log_mark()
    got, _, body, _ = kdclient.negotiate(h, "/private/cgi/env.cgi", cc)
    assert got == status, body
    if status == 403:
        assert kdclient.causes(h.error_log_since(mark)) == ["realm-not-allowed"]
    else:
        assert kdclient.cgi_env(body)["GSS_NAME"] == "alice@CORP.TEST"


@pytest.mark.parametrize("target", ["HTTP/backend.corp.test", "HTTP/backend.corp.test@CORP.TEST"])
def test_delegation_to_another_realm_is_named(kd_httpd, realm, corp, corp_client, alice_ccache,
                                              target):
    h = kd_httpd("xdeleg", "127.0.0.2", server_name=NODE1, env={"KRB5_CONFIG": corp.cross_conf},
                 conf_fn=lambda d: negotiate_conf(realm, d, "node1", location_extra=f"""
    KdelegDelegateTo {target}
    KdelegDelegationFailure continue
"""))
    h.allowed |= {"KD00401"}
    status, _, body, _ = kdclient.negotiate(h, "/private/cgi/env.cgi", alice_ccache)
    assert status == 200, body
    assert kdclient.cgi_env(body)["KDELEG_ERROR"] == "cross-realm-delegation"
    line = kdclient.kd_lines(h.error_log_since(0), "KD00401")[-1][2]
    assert "SEC_E_CROSSREALM_DELEGATION_FAILURE" in line and "0x80090357" in line
    assert "resource-based" in line
    cause, record = kdclient.last_failure(h)
    assert cause == "cross-realm-delegation" and "msDS-AllowedToActOnBehalfOfOtherIdentity" in \
        record["fix_ad"]


def test_selftest_names_cross_realm_and_disjoint_namespace(kd_httpd, realm, corp, lab_dir):
    keytab = os.path.join(lab_dir, "keytabs", "app-corp.keytab")
    if not os.path.exists(keytab):
        realm.ktadd("HTTP/app.corp.test", keytab)
        kdlab._share_with_httpd(keytab, 0o640)
    # the server itself maps app.corp.test correctly; its clients do not
    client_conf = kdlab.cross_realm_conf(os.path.join(lab_dir, "disjoint.krb5.conf"), realm,
                                         corp)
    h = kd_httpd("xself", "127.0.0.5", server_name="app.corp.test",
                 env={"KRB5_CONFIG": client_conf}, conf_fn=lambda d: f"""
KdelegKeytab {keytab}
KdelegServiceNames HTTP/app.corp.test@{realm.realm}
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
    KdelegSelfTest On
    KdelegSelfTestUser alice@{realm.realm}
    KdelegDelegateTo HTTP/backend.corp.test@CORP.TEST
</Location>
""")
    h.allowed |= {"KD00805"}
    import json
    status, _, body = kdclient.request(h, "/kdeleg-status?format=json&selftest=1",
                                       method="POST")
    assert status == 200, body[:300]
    steps = {(s["step"], s["subject"]): s for s in json.loads(body)["selftest"][0]["steps"]}
    realm_step = steps[("realm", f"HTTP/app.corp.test@{realm.realm}")]
    assert realm_step["cause"] == "ntlm-offered"
    assert "disjoint namespace" in realm_step["detail"]
    assert f"app.corp.test = {realm.realm}" in realm_step["detail"]
    cross = steps[("s4u2proxy", "HTTP/backend.corp.test@CORP.TEST")]
    assert cross["cause"] == "cross-realm-delegation", cross
