"""Require kdeleg-indicator (issue 16, item 1): authorization by the
authentication indicators of the Kerberos ticket the user logged in with,
on both KDCs.

- MIT: the lab realm sets encrypted_challenge_indicator = fast, so a login
  through FAST (kdlab kinit_fast: anonymous PKINIT armor, encrypted
  challenge) gets service tickets carrying the indicator "fast"; a plain
  kinit (encrypted timestamp) gets none. The FAST user is granted by
  "Require kdeleg-indicator fast" (alone, second of several names, in
  <RequireAll> with valid-user, in <RequireAny> with another indicator)
  and denied by a line naming only other indicators (no cause: the
  indicators were known, KD00309). The plain user is denied with the cause
  no-indicator (403 under AuthzSendForbiddenOnFailure On), which an
  ErrorDocument sees as REDIRECT_KDELEG_ERROR and the status page counts;
  <RequireAny> with "Require user" still grants it.
- Sessions carry no indicators: a request with only the session cookie is
  denied with no-indicator; without AuthzSendForbiddenOnFailure the 401
  re-challenges, and the client's answer (a token, sent along with the
  cookie) is a fresh Kerberos login that passes the check.
- Protocol transition (a Basic user): no ticket here, no-indicator.
- The line works in .htaccess (AllowOverride AuthConfig).
- AD: Samba's KDC issues no indicators: every indicator check denies with
  no-indicator, and <RequireAny> with "Require user" grants."""

import base64
import hashlib
import os

import pytest

import kdclient
from conftest import negotiate_conf, private_ccache_dir
from kdsite import key_file

WEB_PASSWORD = "Web-pass-796"
FAST = "fast"  # kdlab.FAST_INDICATOR: the MIT lab's encrypted_challenge_indicator


@pytest.fixture
def plain(kdc):
    """alice's TGT from a plain kinit: no indicator in any KDC's tickets."""
    path = kdc.r.path("ccache", "alice-796-plain.cc")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return kdc.r.kinit("alice", path)


@pytest.fixture
def fast(kdc):
    """MIT: alice's TGT from a login through FAST (indicator "fast")."""
    if kdc.kind != "mit":
        pytest.skip("only the MIT lab realm sets authentication indicators")
    path = kdc.r.path("ccache", "alice-796-fast.cc")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return kdc.r.kinit_fast("alice", path)


def htpasswd(path, users):
    digest = base64.b64encode(hashlib.sha1(WEB_PASSWORD.encode()).digest()).decode()
    with open(path, "w") as f:
        f.writelines(f"{u}:{{SHA}}{digest}\n" for u in users)
    os.chmod(path, 0o644)


@pytest.fixture
def front(kd_httpd, kdc, lab_dir):
    keys = key_file(lab_dir, "site-796")
    alice = f"alice@{kdc.realm}"

    def conf(d):
        private_ccache_dir(d)
        htpasswd(f"{d}/users", ["alice"])

        def loc(path, *lines, auth="AuthType Negotiate", forbidden=True):
            return (f'ScriptAlias /{path}/ "{d}/cgi-bin/"\n<Location /{path}/>\n    {auth}\n'
                    + ("    AuthzSendForbiddenOnFailure On\n" if forbidden else "")
                    + "".join(f"    {line}\n" for line in lines) + "</Location>\n")
        basic_auth = (f'AuthType Basic\n    AuthName "web"\n    AuthBasicProvider file\n'
                      f'    AuthUserFile "{d}/users"\n    KdelegProtocolTransition On\n'
                      f'    KdelegDelegateTo HTTP/{kdc.host("backend")}\n'
                      f'    KdelegCcacheDir "{d}/ccache"')
        os.makedirs(f"{d}/htdocs/ht", exist_ok=True)
        with open(f"{d}/htdocs/ht/.htaccess", "w") as f:
            f.write(f"AuthType Negotiate\nAuthzSendForbiddenOnFailure On\n"
                    f"Require kdeleg-indicator {FAST}\n")
        with open(f"{d}/htdocs/ht/index.html", "w") as f:
            f.write("page\n")
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"], extra=(
            f'<Directory "{d}/htdocs/ht">\n    AllowOverride AuthConfig\n</Directory>\n'
            f"KdelegSession On\nKdelegSessionKeyFile {keys}\n"
            f"KdelegUserRealm {kdc.realm}\n"
            "LogLevel info kdeleg:debug\n"
            f'ScriptAlias /errors/ "{d}/cgi-bin/"\n'
            + loc("one", f"Require kdeleg-indicator {FAST}")
            + loc("many", f"Require kdeleg-indicator otp \"{FAST}\" pkinit")
            + loc("others", "Require kdeleg-indicator otp pkinit FAST")
            + loc("all", "<RequireAll>", "    Require valid-user",
                  f"    Require kdeleg-indicator {FAST}", "</RequireAll>")
            + loc("any", "<RequireAny>", "    Require kdeleg-indicator otp",
                  f"    Require kdeleg-indicator {FAST}", "</RequireAny>")
            + loc("any-user", "<RequireAny>", f"    Require kdeleg-indicator {FAST}",
                  f"    Require user {alice}", "</RequireAny>")
            + loc("errdoc", f"Require kdeleg-indicator {FAST}",
                  "ErrorDocument 403 /errors/env.cgi")
            + loc("challenge", f"Require kdeleg-indicator {FAST}", forbidden=False)
            + loc("login", "Require valid-user")
            + loc("pt", f"Require kdeleg-indicator {FAST}", auth=basic_auth)))
    httpd = kd_httpd("indicator", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf, extra_modules=("auth_basic", "authn_file"))
    # mod_authz_core's "authorization failure" line; no-indicator
    httpd.allowed |= {"AH01631", "KD00301"}
    return httpd


def get(front, path, ccache, headers=None):
    status, headers, body, _ = kdclient.negotiate(front, f"/{path}/env.cgi", ccache,
                                                  headers=headers)
    return status, headers, body


def session_cookie(headers):
    cookie = [c.split(";", 1)[0] for c in headers.get("set-cookie", "").split("\n")
              if c.startswith("kdeleg_session=")]
    assert cookie, headers
    return cookie[0]


def test_fast_login_is_granted(front, kdc, fast):
    """MIT: the ticket of a FAST login carries "fast": granted wherever a
    line names it, denied (without a cause: the indicators were known) where
    none does; names are case-sensitive."""
    expected = {"one": 200, "many": 200, "all": 200, "any": 200, "any-user": 200,
                "others": 403}
    mark = front.error_log_mark()
    got = {path: get(front, path, fast)[0] for path in expected}
    assert got == expected
    lines = front.error_log_since(mark)
    assert not kdclient.causes(lines)
    granted = [m for _, _, m in kdclient.kd_lines(lines, "KD00308")]
    assert len(granted) == 5 and all(f"logged in with {FAST}" in m for m in granted), granted
    denied = [m for _, _, m in kdclient.kd_lines(lines, "KD00309")]
    # "others", and the first line of "any" (otp) before its second grants
    assert len(denied) == 2 and "none of otp pkinit FAST" in denied[1], denied
    status, _, body = get(front, "one", fast)
    assert kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "kerberos"


def test_login_without_indicator_is_denied(front, kdc, plain):
    """A plain login (MIT) and every AD login carry no indicator: denied with
    no-indicator, once per request, seen by an ErrorDocument and counted on
    the status page; <RequireAny> with Require user grants."""
    for path in ("one", "many", "others", "all", "any"):
        mark = front.error_log_mark()
        status, _, body = get(front, path, plain)
        assert status == 403, (path, body)
        lines = front.error_log_since(mark)
        assert kdclient.causes(lines) == ["no-indicator"], path
        assert "carries no authentication indicator" in kdclient.kd_lines(lines, "KD00301")[0][2]
        assert not kdclient.kd_lines(lines, "KD00308")
    assert kdclient.status_agrees(front, "no-indicator")
    status, _, body = get(front, "errdoc", plain)
    assert status == 403
    assert kdclient.cgi_env(body)["REDIRECT_KDELEG_ERROR"] == "no-indicator"
    mark = front.error_log_mark()
    status, _, body = get(front, "any-user", plain)
    assert status == 200, body
    assert kdclient.causes(front.error_log_since(mark)) == ["no-indicator"]


def test_session_needs_a_fresh_login(front, kdc, plain, request):
    """The session cookie carries no indicators: the cookie alone is denied
    with no-indicator (403, or 401 with a new challenge without
    AuthzSendForbiddenOnFailure); MIT: the answer to that challenge, a token
    of a FAST login sent with the cookie, is granted."""
    status, headers, body = get(front, "login", plain)
    assert status == 200, body
    cookie = {"Cookie": session_cookie(headers)}
    mark = front.error_log_mark()
    status, _, body = kdclient.request(front, "/one/env.cgi", headers=cookie)
    assert status == 403, body
    lines = front.error_log_since(mark)
    assert kdclient.causes(lines) == ["no-indicator"]
    assert "session cookie carries no authentication indicators" in \
        kdclient.kd_lines(lines, "KD00301")[0][2]
    mark = front.error_log_mark()
    status, headers, body = kdclient.request(front, "/challenge/env.cgi", headers=cookie)
    assert status == 401, body
    assert headers.get("www-authenticate") == "Negotiate"
    assert kdclient.causes(front.error_log_since(mark)) == ["no-indicator"]
    if kdc.kind != "mit":
        return
    status, _, body = get(front, "challenge", request.getfixturevalue("fast"), headers=cookie)
    env = kdclient.cgi_env(body)
    assert status == 200, body
    assert env["KDELEG_AUTH_METHOD"] == "kerberos"


def test_protocol_transition_has_no_indicator(front, kdc):
    """A Basic user (protocol transition) logged in without a ticket here."""
    auth = "Basic " + base64.b64encode(f"alice:{WEB_PASSWORD}".encode()).decode()
    mark = front.error_log_mark()
    status, _, body = kdclient.request(front, "/pt/env.cgi", headers={"Authorization": auth})
    assert status == 403, body
    lines = front.error_log_since(mark)
    assert kdclient.causes(lines) == ["no-indicator"]
    assert "not by a Kerberos ticket here" in kdclient.kd_lines(lines, "KD00301")[0][2]


def test_htaccess(front, kdc, plain, request):
    """Require kdeleg-indicator in .htaccess under AllowOverride AuthConfig:
    the plain login is denied with no-indicator; MIT: the FAST login passes."""
    mark = front.error_log_mark()
    status, _, _, _ = kdclient.negotiate(front, "/ht/index.html", plain)
    assert status == 403
    assert kdclient.causes(front.error_log_since(mark)) == ["no-indicator"]
    if kdc.kind == "mit":
        status, _, body, _ = kdclient.negotiate(front, "/ht/index.html",
                                                request.getfixturevalue("fast"))
        assert status == 200 and body == "page\n", body
