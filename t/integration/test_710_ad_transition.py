"""Protocol transition and every refusal with its own cause, against both
KDCs (issue 12). Users log in with Basic (mod_authn_file) under the names
AD users type: sAMAccountName, user@REALM, an alternative UPN suffix (an
enterprise name for the KDC) and DOMAIN\\user (KdelegNetbiosDomain). The
refusals AD words alike ("Missing forwardable flag") are told apart: from
the S4U2Self ticket's PAC, the service TGT's flags and the evidence's."""

import base64
import hashlib
import os

import pytest

import kdclient
from conftest import kdc_front_dir, negotiate_conf
from kdnames import PROXY_MODULES, WEB_PASSWORD




def htpasswd(path, users):
    digest = base64.b64encode(hashlib.sha1(WEB_PASSWORD.encode()).digest()).decode()
    with open(path, "w") as f:
        f.writelines(f"{u}:{{SHA}}{digest}\n" for u in users)
    os.chmod(path, 0o644)


def basic(user):
    return "Basic " + base64.b64encode(f"{user}:{WEB_PASSWORD}".encode()).decode()


@pytest.fixture
def backend(kdc_backend):
    return kdc_backend


def basic_front(kd_httpd, kdc, backend, users, keytab="node1", host="node1", name="pt",
                location_extra="", extra="", env=None):
    """A front end whose /private authenticates with Basic and delegates by
    protocol transition as the identity of the host name used."""
    def conf(d):
        kdc_front_dir(kdc, d, backend)
        htpasswd(f"{d}/users", users)
        base = negotiate_conf(kdc.r, d, keytab, [f"HTTP/{kdc.host(host)}"], extra=extra,
                              location_extra=f"""    KdelegDelegateTo HTTP/{kdc.host("backend")}
    KdelegCcacheDir "{d}/ccache"
{location_extra}""")
        return f"KdelegNetbiosDomain {kdc.netbios} {kdc.realm}\n" + base.replace(
            "AuthType Negotiate", f'''AuthType Basic
    AuthName "web"
    AuthBasicProvider file
    AuthUserFile "{d}/users"
    KdelegProtocolTransition On''')
    httpd = kd_httpd(name, "127.0.0.2", server_name=kdc.host(host), conf_fn=conf,
                     env={**kdc.r.env(), **(env or {})},
                     extra_modules=("auth_basic", "authn_file") + PROXY_MODULES)
    httpd.allowed.add("KD00401")
    return httpd


def get(httpd, user, path="/private/cgi/backend.cgi"):
    return kdclient.request(httpd, path, headers={"Authorization": basic(user)})


def failures(httpd, mark):
    """(cause, message) of the KD00401 delegation-failure lines since mark."""
    return [(msg.split("cause ", 1)[1].split(":", 1)[0], msg)
            for _, _, msg in kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")]


def causes(httpd, mark):
    return [c for c, _ in failures(httpd, mark)]


# ------------------------------------------------------------ the names users type

def test_names_users_type(kd_httpd, kdc, backend):
    """sAMAccountName, user@REALM in any case and DOMAIN\\user all reach
    the back end as the same principal, and are one user to the node's
    cache: the KDC sees one S4U2Self per user, as the front end's account."""
    names = ["alice", f"alice@{kdc.realm.lower()}", f"{kdc.netbios}\\alice",
             f"{kdc.netbios.lower()}\\bob"]
    h = basic_front(kd_httpd, kdc, backend, names)
    mark = h.error_log_mark()
    for name in names:
        status, _, body = get(h, name)
        assert status == 200, (name, body)
        env = kdclient.cgi_env(body)
        want = kdc.user("bob" if "bob" in name else "alice")
        assert env["BACKEND_REMOTE_USER"] == want, name
        assert env["KLIST_CLIENT"] == want, name
    s4u2self = [l for l in h.error_log_since(mark) if "KD00410" in l and "S4U2Self" in l]
    assert len(s4u2self) == 2, s4u2self
    for user, line in zip(("alice", "bob"), s4u2self):
        assert (f"user={kdc.user(user)} impersonator={kdc.impersonator('node1')} target=- "
                "result=ok via=kdc") in line


def test_alternative_upn_suffix(kd_httpd, kdc, backend):
    """erin's UPN is erin.x@corp.example: sent as an enterprise name, the KDC
    resolves it and names her as asked (an enterprise name in the evidence,
    so also in the back end's ticket)."""
    if kdc.kind != "ad":
        pytest.skip("UPN suffixes are an Active Directory feature; the MIT realm has none")
    h = basic_front(kd_httpd, kdc, backend, ["erin.x@corp.example"])
    mark = kdc.r.kdc_log_mark()
    status, _, body = get(h, "erin.x@corp.example")
    assert status == 200, body
    assert kdclient.cgi_env(body)["BACKEND_REMOTE_USER"] == \
        f"erin.x\\@corp.example@{kdc.realm}"
    assert any("impersonatee=erin" in l or "erin.x" in l for l in kdc.r.kdc_log_since(mark))
    # a second request is served from the node's cache, under the name asked for
    mark = h.error_log_mark()
    assert get(h, "erin.x@corp.example")[0] == 200
    assert "via=cache" in [l for l in h.error_log_since(mark) if "KD00410" in l][-1]


def test_unmapped_netbios_domain_is_named(kd_httpd, kdc, backend):
    h = basic_front(kd_httpd, kdc, backend, ["OTHER\\alice"])
    mark = h.error_log_mark()
    status, _, _ = get(h, "OTHER\\alice")
    assert status == 500
    [(cause, msg)] = failures(h, mark)
    assert cause == "user-unknown" and "KdelegNetbiosDomain OTHER REALM" in msg


# ------------------------------------------------------------ S4U2Self refusals

def test_protocol_transition_not_allowed(kd_httpd, kdc, backend):
    """node2 may not use any authentication protocol (no
    TrustedToAuthForDelegation / +ok_to_auth_as_delegate). On AD the PAC
    shows alice is delegable, so the front end is at fault even on the
    very first request."""
    h = basic_front(kd_httpd, kdc, backend, ["alice"], keytab="node2", host="node2",
                    name="pt-node2")
    mark = h.error_log_mark()
    status, _, _ = get(h, "alice")
    assert status == 500
    [(cause, msg)] = failures(h, mark)
    assert cause == "protocol-transition-not-allowed"
    assert "TrustedToAuthForDelegation" in msg and "ok_to_auth_as_delegate" in msg
    assert kdc.impersonator("node2") in msg
    if kdc.kind == "ad":
        assert "the user's PAC allows delegation" in msg


def test_sensitive_user_by_transition(kd_httpd, kdc, backend):
    """carol is sensitive. AD: her S4U2Self ticket's PAC says so, first time.
    MIT (no logon-info): known once the front end has had a forwardable
    S4U2Self ticket for someone else."""
    h = basic_front(kd_httpd, kdc, backend, ["alice", "carol"])
    if kdc.kind == "mit":
        assert get(h, "alice")[0] == 200
    mark = h.error_log_mark()
    status, _, _ = get(h, "carol")
    assert status == 500
    [(cause, msg)] = failures(h, mark)
    assert cause == "user-not-delegable"
    if kdc.kind == "ad":
        assert "its PAC says so" in msg


def test_disabled_user(kd_httpd, kdc, backend):
    """dave's account is disabled: AD answers KDC_ERR_POLICY, MIT
    CLIENT_REVOKED; both are user-disabled."""
    h = basic_front(kd_httpd, kdc, backend, ["dave"])
    mark = h.error_log_mark()
    status, _, _ = get(h, "dave")
    assert status == 500
    [(cause, msg)] = failures(h, mark)
    assert cause == "user-disabled", msg
    assert "Enable-ADAccount" in msg and "allow_tix" in msg


# ------------------------------------------------------------ S4U2Proxy refusals

def test_etype_unsupported_backend(kd_httpd, kdc, backend):
    """HTTP/legacy has RC4 keys only; a front end whose krb5.conf permits
    AES only cannot get a ticket for it: etype-unsupported, never
    keytab-unusable."""
    conf = kdc.r.path("aes-only.krb5.conf")
    with open(kdc.r.krb5_conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("[libdefaults]\n", "[libdefaults]\n permitted_enctypes = "
                             "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96\n", 1))
    os.chmod(conf, 0o644)
    h = basic_front(kd_httpd, kdc, backend, ["alice"], name="pt-rc4", env={"KRB5_CONFIG": conf},
                    location_extra=f"    KdelegDelegateTo HTTP/{kdc.host('legacy')}\n")
    mark = h.error_log_mark()
    status, _, _ = get(h, "alice", path="/private/cgi/env.cgi")
    assert status == 500
    [(cause, msg)] = failures(h, mark)
    assert cause == "etype-unsupported", msg
    assert f"HTTP/{kdc.host('legacy')}" in msg and "msDS-SupportedEncryptionTypes" in msg


def test_service_tgt_not_forwardable(kd_httpd, kdc, backend, kdc_alice):
    """The front end's own TGT is not forwardable (AD: the account is
    "sensitive"; MIT: -allow_forwardable): every S4U2Proxy request would be
    refused with the same words as a sensitive user's, so it gets its own
    cause, without asking the KDC in vain."""
    account = kdc.impersonator("node2")
    flip = (lambda on: kdc.r.set_sensitive("NODE2$", on)) if kdc.kind == "ad" else \
        (lambda on: kdc.r.kadmin(f"modprinc {'-' if on else '+'}allow_forwardable {account}"))
    flip(True)
    try:
        h = basic_front(kd_httpd, kdc, backend, ["alice"], keytab="node2", host="node2",
                        name="tgt-noforward")
        mark, kmark = h.error_log_mark(), kdc.r.kdc_log_mark()
        status, _, _ = get(h, "alice")
        assert status == 500
        [(cause, msg)] = failures(h, mark)
        assert cause == "service-tgt-not-forwardable", msg
        assert account in msg
        assert kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "HTTP/backend") == []
    finally:
        flip(False)


# ------------------------------------------------------------ who the front end is

def test_service_account_override(kd_httpd, kdc, backend):
    """KdelegServiceAccount names the principal the TGT is taken as: here
    another identity in the same keytab (othersvc / HTTP/other), which the
    KDC then sees as the requester."""
    other = kdc.impersonator("other")
    h = basic_front(kd_httpd, kdc, backend, ["alice"], name="pt-override",
                    extra=f"KdelegServiceAccount HTTP/{kdc.host('node1')} {other}\n")
    kmark = kdc.r.kdc_log_mark()
    get(h, "alice")
    # the KDC was asked by the configured account, never by websvc / HTTP/node1
    asked = kdc.r.kdc_log_since(kmark)
    assert any(other in l for l in asked), asked
    assert not any(kdc.impersonator("node1") in l for l in asked), asked


def test_keytab_without_account_entry(kd_httpd, kdc, backend, tmp_path):
    """A keytab with only the SPN entries: MIT gives the SPN a TGT, AD
    refuses (TGTs go to accounts) and the log says so, naming the fix."""
    spn = kdc.spn("node1")
    keytab = kdc.r.path("keytabs", "node1-spn-only.keytab")
    if os.path.exists(keytab):
        os.unlink(keytab)
    script = f"rkt {kdc.r.keytab('node1')}\n"
    listing = kdc.r.run(["klist", "-k", kdc.r.keytab("node1")]).stdout.splitlines()
    slots = [i for i, l in enumerate((l for l in listing if l.strip()[:1].isdigit()), 1)
             if spn not in l]
    script += "".join(f"delent {n}\n" for n in reversed(slots)) + f"wkt {keytab}\nquit\n"
    kdc.r.run(["ktutil"], input=script)
    os.chmod(keytab, 0o644)
    assert {p for _, p, _ in kdc.r.keytab_entries(keytab)} == {spn}
    h = basic_front(kd_httpd, kdc, backend, ["alice"], keytab=keytab, name="pt-spn-only")
    mark = h.error_log_mark()
    status, _, body = get(h, "alice")
    if kdc.kind == "mit":
        assert status == 200, body
        return
    assert status == 500
    [(cause, msg)] = failures(h, mark)
    assert cause == "keytab-unusable"
    assert "TGTs to the service account" in msg and "KdelegServiceAccount" in msg
