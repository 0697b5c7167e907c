"""AuthType Negotiate against a real LDAP-backed MIT KDC: the success paths,
under mpm_event and mpm_prefork."""

import base64
import os
import shutil

import kdlab

import pytest

import kdclient
from conftest import MPMS, negotiate_conf
from kdnames import NODE1, VIP



@pytest.fixture(params=MPMS)
def node1(request, kd_httpd, realm):
    return kd_httpd(
        "node1-" + request.param, "127.0.0.2", mpm=request.param, server_name=NODE1,
        conf_fn=lambda d: negotiate_conf(realm, d, "node1",
                                         [f"HTTP/{NODE1}", f"HTTP/{VIP}"]))


def test_no_token_gets_challenge(node1):
    status, headers, _ = kdclient.request(node1, "/private/cgi/env.cgi")
    assert status == 401
    assert headers["www-authenticate"] == "Negotiate"
    # the normal first leg is not a failure worth an INFO line
    assert kdclient.kd_lines(node1.error_log_since(node1.start_mark), "KD00301") == []


def test_other_scheme_gets_challenge(node1):
    status, headers, _ = kdclient.request(
        node1, "/private/cgi/env.cgi", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert status == 401
    assert headers["www-authenticate"] == "Negotiate"


def test_curl_negotiate_sets_environment(node1, realm, alice_ccache):
    status, body = kdclient.curl_negotiate(realm, node1, "/private/cgi/env.cgi", alice_ccache)
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert env["AUTH_TYPE"] == "Negotiate"
    assert env["GSS_NAME"] == "alice@EXAMPLE.TEST"
    assert env["KDELEG_AUTH_METHOD"] == "kerberos"
    assert env["KDELEG_SPN"] == "HTTP/node1.example.test@EXAMPLE.TEST"
    assert "KDELEG_ERROR" not in env
    assert "KRB5CCNAME" not in env  # no credentials were obtained


@pytest.mark.parametrize("mech", [kdclient.SPNEGO, kdclient.KRB5], ids=["spnego", "raw-krb5"])
def test_mutual_authentication_completes(node1, alice_ccache, mech):
    status, headers, body, tok = kdclient.negotiate(node1, "/private/cgi/env.cgi",
                                                    alice_ccache, mech=mech)
    assert status == 200, body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    # the server proved it holds the service key: the client's context completes
    assert tok.finish(headers["www-authenticate"]) is True


def _der(tag, body):
    n = len(body)
    size = bytes([n]) if n < 0x80 else (bytes([0x81, n]) if n < 0x100
                                        else bytes([0x82, n >> 8, n & 0xff]))
    return bytes([tag]) + size + body


def _spnego_init(krb5_token):
    """A NegTokenInit offering only Kerberos, around a raw Kerberos token
    (MIT's SPNEGO initiator itself always asks for mutual authentication)."""
    krb5_oid = bytes.fromhex("2a864886f712010202")
    mech_types = _der(0xa0, _der(0x30, _der(0x06, krb5_oid)))
    init = _der(0xa0, _der(0x30, mech_types + _der(0xa2, _der(0x04, krb5_token))))
    return _der(0x60, _der(0x06, bytes.fromhex("2b0601050502")) + init)


def test_without_mutual_authentication_no_ap_rep(node1, alice_ccache):
    """A token that does not ask for mutual authentication gets no AP-REP:
    a raw Kerberos token no reply at all; the same token in SPNEGO its
    NegTokenResp (accept-completed, the mechanism, no response token)."""
    raw = kdclient.Token(alice_ccache, NODE1, mech=kdclient.KRB5, mutual=False)
    status, headers, body = kdclient.request(node1, "/private/cgi/env.cgi",
                                             headers={"Authorization": raw.header})
    assert status == 200, body
    assert headers.get("www-authenticate") is None
    inner = kdclient.Token(alice_ccache, NODE1, mech=kdclient.KRB5, mutual=False)
    wrapped = base64.b64encode(_spnego_init(inner.raw)).decode()
    status, headers, body = kdclient.request(node1, "/private/cgi/env.cgi",
                                             headers={"Authorization": "Negotiate " + wrapped})
    assert status == 200, body
    scheme, _, reply = headers.get("www-authenticate", "").partition(" ")
    assert scheme == "Negotiate" and reply
    resp = base64.b64decode(reply)
    negstate = bytes([0xa0, 0x03, 0x0a, 0x01, 0x00])
    mech = bytes([0xa1, 0x0b, 0x06, 0x09]) + bytes.fromhex("2a864886f712010202")
    # [1] { SEQUENCE { negState accept-completed, supportedMech } }: nothing more
    assert resp == _der(0xa1, _der(0x30, negstate + mech)), resp.hex()


def test_virtual_name_ticket_accepted(node1, alice_ccache):
    status, headers, body, tok = kdclient.negotiate(node1, "/private/cgi/env.cgi",
                                                    alice_ccache, host=VIP)
    assert status == 200, body
    assert kdclient.cgi_env(body)["KDELEG_SPN"] == "HTTP/vip.example.test@EXAMPLE.TEST"
    assert tok.finish(headers["www-authenticate"])


def test_replayed_token_is_refused(node1, alice_ccache):
    node1.allowed.add("KD00301")
    tok = kdclient.Token(alice_ccache, NODE1)
    first = kdclient.request(node1, "/private/cgi/env.cgi", headers={"Authorization": tok.header})
    mark = node1.error_log_mark()
    second = kdclient.request(node1, "/private/cgi/env.cgi", headers={"Authorization": tok.header})
    assert first[0] == 200
    assert second[0] == 401
    assert second[1]["www-authenticate"] == "Negotiate"
    assert kdclient.causes(node1.error_log_since(mark)) == ["replay"]


def test_many_sequential_requests_reuse_acceptor(node1, alice_ccache):
    """Acceptor credentials are cached per process: 30 requests, all fine."""
    for _ in range(30):
        status, _, body, _ = kdclient.negotiate(node1, "/private/cgi/env.cgi", alice_ccache)
        assert status == 200, body


def test_require_failure_after_authentication_rechallenges(kd_httpd, realm, alice_ccache):
    httpd = kd_httpd("node1-require", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: f"""
KdelegKeytab {realm.keytab('node1')}
<Location /bob-only>
    AuthType Negotiate
    Require user bob@EXAMPLE.TEST
</Location>
""")
    httpd.allowed.add("AH01631")  # mod_authz_core's own "authorization failure" line
    status, headers, _, _ = kdclient.negotiate(httpd, "/bob-only/", alice_ccache)
    assert status == 401
    assert headers["www-authenticate"] == "Negotiate"


def test_default_service_names_are_servername_and_aliases(kd_httpd, realm, alice_ccache):
    httpd = kd_httpd("node1-alias", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: f"""
<VirtualHost *:*>
    ServerName {NODE1}
    ServerAlias {VIP} *.wild.example.test
    {negotiate_conf(realm, d, "node1")}
</VirtualHost>""")
    for host in (NODE1, VIP):
        status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache,
                                                host=host)
        assert status == 200, body
        assert kdclient.cgi_env(body)["KDELEG_SPN"] == f"HTTP/{host}@EXAMPLE.TEST"


@pytest.mark.parametrize("mode,expected", [("full", "alice@EXAMPLE.TEST"), ("short", "alice"),
                                           ("local", "alice")])
def test_remote_user_forms(kd_httpd, realm, alice_ccache, mode, expected):
    httpd = kd_httpd("node1-ru", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: f"""
KdelegRemoteUser {mode}
{negotiate_conf(realm, d, "node1")}""")
    status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == expected
    assert env["GSS_NAME"] == "alice@EXAMPLE.TEST"


def test_directory_scope_merges_field_by_field(kd_httpd, realm, alice_ccache):
    """Server level sets keytab + service names; a <Location> sets only
    KdelegRemoteUser and keeps the rest; another narrows the service names
    and keeps the keytab."""
    httpd = kd_httpd("node1-merge", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: f"""
KdelegKeytab {realm.keytab('node1')}
KdelegServiceNames HTTP/{NODE1} HTTP/{VIP}
ScriptAlias /short/ "{d}/cgi-bin/"
ScriptAlias /viponly/ "{d}/cgi-bin/"
<Location /short>
    AuthType Negotiate
    Require valid-user
    KdelegRemoteUser short
</Location>
<Location /viponly>
    AuthType Negotiate
    Require valid-user
    KdelegServiceNames HTTP/{VIP}
</Location>
""")
    httpd.allowed.add("KD00301")
    status, _, body, _ = kdclient.negotiate(httpd, "/short/env.cgi", alice_ccache)
    assert status == 200, body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == "alice"
    status, _, body, _ = kdclient.negotiate(httpd, "/viponly/env.cgi", alice_ccache, host=VIP)
    assert status == 200, body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    mark = httpd.error_log_mark()
    status, _, _, _ = kdclient.negotiate(httpd, "/viponly/env.cgi", alice_ccache, host=NODE1)
    assert status == 401
    assert kdclient.causes(httpd.error_log_since(mark)) == ["wrong-spn"]


def test_internal_redirect_reuses_exchange(kd_httpd, realm, alice_ccache):
    """A 404 inside /private is answered by an ErrorDocument CGI (internal
    redirect into a differently configured location): the token must not be
    accepted twice (that would be a replay)."""
    httpd = kd_httpd("node1-redirect", "127.0.0.2", server_name=NODE1,
                     conf_fn=lambda d: negotiate_conf(
                         realm, d, "node1",
                         location_extra="    ErrorDocument 404 /private/cgi/env.cgi\n"))
    status, _, body, _ = kdclient.negotiate(httpd, "/private/no-such-page", alice_ccache)
    assert status == 404
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert env["REDIRECT_STATUS"] == "404"
    assert "replay" not in kdclient.causes(httpd.error_log_since(httpd.start_mark))


def test_subrequest_reuses_exchange(kd_httpd, realm, alice_ccache):
    """An SSI page including a protected CGI (a subrequest with its own
    per-directory config) sees the same user, with no second exchange."""
    def conf(d):
        os.makedirs(f"{d}/htdocs/private", exist_ok=True)
        with open(f"{d}/htdocs/private/page.shtml", "w") as f:
            f.write('<p>page</p>\n<!--#include virtual="/private/cgi/env.cgi" -->\n')
        return negotiate_conf(realm, d, "node1", location_extra="""    Options +Includes
    AddOutputFilter INCLUDES .shtml
""")
    httpd = kd_httpd("node1-ssi", "127.0.0.2", server_name=NODE1, conf_fn=conf,
                     extra_modules=("include",))
    status, _, body, _ = kdclient.negotiate(httpd, "/private/page.shtml", alice_ccache)
    assert status == 200, body
    assert "<p>page</p>" in body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert kdclient.causes(httpd.error_log_since(httpd.start_mark)) == []


def test_startup_banner(node1):
    banner = kdclient.kd_lines(node1.error_log_since(node1.start_mark), "KD00102")
    assert banner and "krb5 1." in banner[0][2] and "OpenSSL" in banner[0][2]
    assert f"MPM {node1.mpm}" in banner[0][2]


def test_acceptor_credentials_cached_and_refreshed_on_keytab_change(
        kd_httpd, realm, alice_ccache, lab_dir):
    """Credentials are acquired once per process and SPN, not per request;
    replacing the keytab file makes the next request re-acquire them."""
    keytab = os.path.join(lab_dir, "keytabs", "cached.keytab")
    shutil.copy(realm.keytab("node1"), keytab)
    kdlab._share_with_httpd(keytab, 0o640)
    httpd = kd_httpd("node1-cache", "127.0.0.2", server_name=NODE1, mpm="prefork",
                     conf_fn=lambda d: negotiate_conf(realm, d, keytab) + "LogLevel info kdeleg:debug\n")
    for _ in range(20):
        assert kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)[0] == 200
    acquired = [m for _, _, m in kdclient.kd_lines(httpd.error_log_since(httpd.start_mark),
                                                   "KD00101")
                if m.startswith("acquired acceptor credentials")]
    children = len(httpd.processes()) - 1
    assert 1 <= len(acquired) <= children, acquired
    # rotate: a new file (new inode) with the same keys
    shutil.copy(keytab, keytab + ".new")
    kdlab._share_with_httpd(keytab + ".new", 0o640)
    os.rename(keytab + ".new", keytab)
    mark = httpd.error_log_mark()
    for _ in range(children * 3):
        assert kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)[0] == 200
    changed = [m for _, _, m in kdclient.kd_lines(httpd.error_log_since(mark), "KD00101")
               if "changed: re-acquiring" in m]
    assert changed, "keytab change not noticed"


# ------------------------------------------------------------ replay cache

def replay_httpd(kd_httpd, realm, size, name):
    httpd = kd_httpd(name, "127.0.0.2", server_name=NODE1, mpm="prefork",
                     conf_fn=lambda d: f"KdelegReplayCache {size}\n"
                     + negotiate_conf(realm, d, "node1"))
    httpd.allowed.update({"KD00301", "KD00304"})
    return httpd


@pytest.mark.parametrize("size", ["16M", "off"])
def test_replay_refused_whichever_child_answers(kd_httpd, realm, alice_ccache, size):
    """The node's table is shared by all children; with `off`, MIT's file
    replay cache (per host) does the same job."""
    httpd = replay_httpd(kd_httpd, realm, size, "replay-" + size.lower())
    assert kdclient.wait_for_processes(httpd, 3) >= 3
    for _ in range(5):
        tok = kdclient.Token(alice_ccache, NODE1)
        # separate connections: prefork hands them to different children
        assert kdclient.request(httpd, "/private/cgi/env.cgi",
                                headers={"Authorization": tok.header})[0] == 200
        mark = httpd.error_log_mark()
        assert kdclient.request(httpd, "/private/cgi/env.cgi",
                                headers={"Authorization": tok.header})[0] == 401
        assert kdclient.causes(httpd.error_log_since(mark)) == ["replay"]


def test_full_replay_cache_refuses_rather_than_forgets(kd_httpd, realm, alice_ccache):
    httpd = replay_httpd(kd_httpd, realm, "1K", "replay-tiny")  # 48 entries
    statuses = []
    for _ in range(80):
        status, headers, _, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)
        statuses.append(status)
        if status == 503:
            assert headers["retry-after"] == "5"
    assert statuses.count(200) <= 48 and statuses.count(503) >= 80 - 48
    assert set(statuses) == {200, 503}
    lines = httpd.error_log_since(httpd.start_mark)
    full = kdclient.kd_lines(lines, "KD00304")
    assert full and "KdelegReplayCache" in full[0][2]
    assert set(kdclient.causes(lines)) == {"replay-cache-unavailable"}


def test_replay_refused_after_graceful_restart(kd_httpd, realm, alice_ccache):
    """Debian's logrotate restarts httpd gracefully every day: the table of
    accepted authenticators must survive it."""
    httpd = replay_httpd(kd_httpd, realm, "16M", "replay-graceful")
    tok = kdclient.Token(alice_ccache, NODE1)
    assert kdclient.request(httpd, "/private/cgi/env.cgi",
                            headers={"Authorization": tok.header})[0] == 200
    httpd.reload()
    mark = httpd.error_log_mark()
    assert kdclient.request(httpd, "/private/cgi/env.cgi",
                            headers={"Authorization": tok.header})[0] == 401
    assert kdclient.causes(httpd.error_log_since(mark)) == ["replay"]
    # and fresh tokens still work in the new generation
    assert kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)[0] == 200


def test_remote_user_local_without_mapping_falls_back(kd_httpd, realm, lab_dir):
    """A principal auth_to_local cannot map (two components) keeps its full
    name as REMOTE_USER, with an INFO line KD00302 saying so."""
    httpd = kd_httpd("node1-nomap", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: f"""
KdelegRemoteUser local
{negotiate_conf(realm, d, "node1")}""")
    ccache = realm.kinit("HTTP/other.example.test", realm.path("ccache", "other.cc"),
                         keytab=realm.keytab("node1"))
    status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", ccache)
    assert status == 200, body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == "HTTP/other.example.test@EXAMPLE.TEST"
    lines = kdclient.kd_lines(httpd.error_log_since(httpd.start_mark), "KD00302")
    assert [level for level, _, _ in lines] == ["info"]
    assert "no auth_to_local mapping for HTTP/other.example.test@EXAMPLE.TEST" in lines[0][2]
