"""Control over the Negotiate challenge, on both KDCs:

- KdelegNegotiateOnce On: after a refused token, 401 without a new
  "WWW-Authenticate: Negotiate" (a browser would only send the same failing
  token again); a client that sent no token is still challenged.
- The kdeleg-no-negotiate variable (SetEnvIf) withholds the challenge from
  the clients it marks; a token they send anyway is still accepted.
- KdelegAuthOptional On: a token or session the client sends is used, and
  without one (or with a bad one) the request goes on anonymously, never
  challenged: for "Require all granted" pages whose application has its
  own login.

Checked with curl, python-gssapi and headless Chromium. Also what
.htaccess may say (AllowOverride AuthConfig): KdelegNegotiateOnce and
KdelegRemoteUser, nothing that chooses keys, names or delegation."""

import os
import re
import subprocess
import time

import pytest

import kdclient
import kdconf
from conftest import negotiate_conf
from kdsite import key_file

CGI = "env.cgi"


@pytest.fixture
def front(kd_httpd, kdc, lab_dir):
    keys = key_file(lab_dir, "site-790")

    def conf(d):
        def cgi_location(path, *lines):
            return f'ScriptAlias {path} "{d}/cgi-bin/"\n<Location {path}>\n' + "".join(
                f"    {line}\n" for line in lines) + "</Location>\n"
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"], extra=(
            f"KdelegSession On\nKdelegSessionKeyFile {keys}\n"
            'SetEnvIf User-Agent "^NoKerberos" kdeleg-no-negotiate\n'
            'BrowserMatch "^OldGssapiRule" gssapi-no-negotiate\n'
            + cgi_location("/once/", "AuthType Negotiate", "Require valid-user",
                           "KdelegNegotiateOnce On")
            + cgi_location("/plain/", "AuthType Negotiate", "Require valid-user")
            + cgi_location("/optional/", "AuthType Negotiate", "Require all granted",
                           "KdelegAuthOptional On")
            + cgi_location("/optional-user/", "AuthType Negotiate", "Require valid-user",
                           "KdelegAuthOptional On")
            + cgi_location("/optional-elsewhere/", "AuthType Negotiate", "Require all granted",
                           "KdelegAuthOptional On", "KdelegRealms NOWHERE.TEST")))
    httpd = kd_httpd("challenge", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf)
    httpd.allowed |= {"KD00301"}
    return httpd


def get(front, path, headers=None):
    return kdclient.request(front, path, headers=headers)


def challenges(headers):
    return headers.get("www-authenticate", "").split("\n") == ["Negotiate"]


def spent_token(front, kdc, ccache):
    """A token the server has already accepted once: its replay is refused."""
    tok = kdclient.Token(ccache, kdc.host("node1"))
    status, _, body = get(front, "/plain/" + CGI, {"Authorization": tok.header})
    assert status == 200, body
    return tok.header


def test_negotiate_once(front, kdc, kdc_alice):
    # no token: challenged as usual, here and without the directive
    for path in ("/once/", "/plain/"):
        status, headers, _ = get(front, path + CGI)
        assert status == 401 and challenges(headers), (path, headers)
    # a refused token (a replay, then garbage): no new challenge under NegotiateOnce only
    for refused in (spent_token(front, kdc, kdc_alice), "Negotiate AAAA"):
        mark = front.error_log_mark()
        status, headers, _ = get(front, "/once/" + CGI, {"Authorization": refused})
        assert status == 401 and "www-authenticate" not in headers, headers
        assert kdclient.causes(front.error_log_since(mark))   # the refusal is logged
        status, headers, _ = get(front, "/plain/" + CGI, {"Authorization": refused})
        assert status == 401 and challenges(headers)
    # a good token still works
    status, _, body, _ = kdclient.negotiate(front, "/once/" + CGI, kdc_alice)
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")


def test_no_negotiate_variable(front, kdc, kdc_alice):
    status, headers, _ = get(front, "/plain/" + CGI, {"User-Agent": "NoKerberos/1.0"})
    assert status == 401 and "www-authenticate" not in headers, headers
    status, headers, _ = get(front, "/plain/" + CGI, {"User-Agent": "Mozilla/5.0"})
    assert status == 401 and challenges(headers)
    # mod_auth_gssapi's variable name does the same (its BrowserMatch lines carry over)
    status, headers, _ = get(front, "/plain/" + CGI, {"User-Agent": "OldGssapiRule/2"})
    assert status == 401 and "www-authenticate" not in headers, headers
    # the variable withholds the challenge; a token sent anyway is accepted
    status, _, body, _ = kdclient.negotiate(front, "/plain/" + CGI, kdc_alice,
                                            headers={"User-Agent": "NoKerberos/1.0"})
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")


def test_auth_optional(front, kdc, kdc_alice):
    # nothing sent: served anonymously, not challenged
    status, headers, body = get(front, "/optional/" + CGI)
    assert status == 200 and "www-authenticate" not in headers
    assert "REMOTE_USER" not in kdclient.cgi_env(body)
    # a token: the user, with the mutual-authentication reply
    status, headers, body, tok = kdclient.negotiate(front, "/optional/" + CGI, kdc_alice)
    env = kdclient.cgi_env(body)
    assert status == 200 and env["REMOTE_USER"] == kdc.user("alice")
    assert tok.finish(headers["www-authenticate"])
    # mod_auth_gssapi's variable: the ticket's end, within the lab's ticket lifetime
    assert time.time() < int(env["GSS_SESSION_EXPIRATION"]) < time.time() + 2 * 86400
    # a bad or replayed token: anonymous, logged, never a user or a challenge
    for refused in (spent_token(front, kdc, kdc_alice), "Negotiate AAAA"):
        mark = front.error_log_mark()
        status, headers, body = get(front, "/optional/" + CGI, {"Authorization": refused})
        assert status == 200 and "www-authenticate" not in headers, headers
        assert "REMOTE_USER" not in kdclient.cgi_env(body)
        assert kdclient.causes(front.error_log_since(mark))
    # a session cookie issued elsewhere on the site is used
    _, headers, _, _ = kdclient.negotiate(front, "/private/cgi/" + CGI, kdc_alice)
    cookie = headers["set-cookie"].split(";")[0]
    status, _, body = get(front, "/optional/" + CGI, {"Cookie": cookie})
    env = kdclient.cgi_env(body)
    assert status == 200 and env["REMOTE_USER"] == kdc.user("alice")
    assert env["KDELEG_AUTH_METHOD"] == "session"
    assert time.time() < int(env["GSS_SESSION_EXPIRATION"]) < time.time() + 2 * 86400
    # a user the identity policy refuses is not a user here either
    mark = front.error_log_mark()
    status, headers, body, _ = kdclient.negotiate(front, "/optional-elsewhere/" + CGI, kdc_alice)
    env = kdclient.cgi_env(body)
    assert status == 200 and "www-authenticate" not in headers
    assert "REMOTE_USER" not in env and "GSS_NAME" not in env, body
    assert "GSS_SESSION_EXPIRATION" not in env
    assert kdclient.causes(front.error_log_since(mark)) == ["realm-not-allowed"]
    # where authorization wants a user: 401, still without a challenge
    status, headers, _ = get(front, "/optional-user/" + CGI)
    assert status == 401 and "www-authenticate" not in headers
    status, _, body, _ = kdclient.negotiate(front, "/optional-user/" + CGI, kdc_alice)
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")


def test_curl(front, kdc, kdc_alice):
    """curl --negotiate sends its token on the first request (it has only that
    scheme to try): the optional page uses it; plain curl is served
    anonymously there and gets a bare 401 under NegotiateOnce's refusal."""
    for path in ("/optional/", "/once/"):
        status, body = kdclient.curl_negotiate(kdc.r, front, path + CGI, kdc_alice)
        assert status == 200, body
        assert kdclient.cgi_env(body).get("REMOTE_USER") == kdc.user("alice")
    url = f"http://{kdc.host('node1')}:{front.port}/optional/{CGI}"
    proc = subprocess.run(["curl", "-s", "-i", "--resolve", f"{kdc.host('node1')}:{front.port}:"
                           f"{front.ip}", url], capture_output=True, text=True, timeout=30)
    head, _, body = proc.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200") and "WWW-Authenticate" not in head, head
    assert "REMOTE_USER" not in kdclient.cgi_env(body)


@pytest.mark.skipif(not os.path.exists(kdclient.CHROMIUM), reason="Debian chromium not installed")
def test_chromium(front, kdc, kdc_alice, lab_dir):
    """A browser is never asked on the optional page (it sends Negotiate only
    when challenged), logs in under NegotiateOnce, and a user agent marked
    kdeleg-no-negotiate gets the 401 page without trying Kerberos."""
    resolve = {kdc.host("node1"): front.ip}

    def page(path, extra=()):
        url = f"http://{kdc.host('node1')}:{front.port}{path}"
        dom = kdclient.chromium(kdc.r, kdc_alice, resolve, url, lab_dir, extra=extra)
        text = re.sub(r"<[^>]*>", "\n", dom).replace("&amp;", "&")
        return dom, kdclient.cgi_env(text)

    dom, env = page("/optional/" + CGI)
    assert "SERVER_NAME" in env and "REMOTE_USER" not in env, dom[:2000]
    dom, env = page("/once/" + CGI)
    assert env.get("REMOTE_USER") == kdc.user("alice"), dom[:2000]
    dom, env = page("/plain/" + CGI, extra=("--user-agent=NoKerberos/1.0",))
    assert "Unauthorized" in dom and "REMOTE_USER" not in env, dom[:2000]


USER_CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "REMOTE_USER=$REMOTE_USER"
"""


def test_htaccess_allows_only_harmless_directives(kd_httpd, kdc, lab_dir, kdc_alice):
    """Under AllowOverride AuthConfig, .htaccess may say KdelegNegotiateOnce
    and KdelegRemoteUser (they shape only that directory's answers), never
    KdelegAuthOptional or KdelegKeytab."""
    lines = {"once": "KdelegNegotiateOnce On", "user": "KdelegRemoteUser short",
             "opt": "KdelegAuthOptional On", "keytab": "KdelegKeytab /etc/krb5.keytab"}

    def conf(d):
        for name, line in lines.items():
            os.makedirs(f"{d}/htdocs/{name}", exist_ok=True)
            with open(f"{d}/htdocs/{name}/.htaccess", "w") as f:
                f.write(f"AuthType Negotiate\nRequire valid-user\n{line}\n")
            with open(f"{d}/htdocs/{name}/index.html", "w") as f:
                f.write("page\n")
        kdconf.install_script(f"{d}/htdocs/user/user.cgi", USER_CGI)
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"], extra=f"""
<Directory "{d}/htdocs">
    AllowOverride AuthConfig
    Options +ExecCGI
    AddHandler cgi-script .cgi
</Directory>
""")
    httpd = kd_httpd("htaccess", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf)
    # httpd's own alerts for the refused directives are what this test provokes
    httpd.allowed |= {"KD00301", "KdelegAuthOptional not allowed here",
                      "KdelegKeytab not allowed here"}
    status, headers, _ = get(httpd, "/once/index.html", {"Authorization": "Negotiate AAAA"})
    assert status == 401 and "www-authenticate" not in headers
    status, _, body, _ = kdclient.negotiate(httpd, "/user/user.cgi", kdc_alice)
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == "alice", body
    for name in ("opt", "keytab"):
        status, _, _ = get(httpd, f"/{name}/index.html")
        assert status == 500, name    # httpd: "<directive> not allowed here"
    log = "\n".join(httpd.error_log_since(0))
    assert "KdelegAuthOptional not allowed here" in log and "KdelegKeytab not allowed here" in log
