"""The bearer cookie never leaves the front end (issue 13, item 1): the
session cookie is taken out of the request headers on every request, so
neither a back end behind mod_proxy (with or without KdelegProxyNegotiate)
nor a CGI ever sees it, while other cookies pass untouched and the session
still authenticates. Runs on both KDCs."""


import pytest

import kdclient
from conftest import negotiate_conf
from kdsite import key_file
from kdnames import PROXY_MODULES



@pytest.fixture
def open_backend(kd_httpd, kdc):
    """A back end that shows what it received, without authenticating."""
    def conf(d):
        return f"""
ScriptAlias /cgi/ "{d}/cgi-bin/"
<Location /cgi/>
    Require all granted
</Location>
"""
    return kd_httpd("echo", "127.0.0.4", server_name=kdc.host("backend"), env=kdc.r.env(),
                    conf_fn=conf)


@pytest.fixture
def front(kd_httpd, kdc, kdc_backend, open_backend, lab_dir):
    keys = key_file(lab_dir, f"cookie-{kdc.kind}")

    def conf(d):
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"], extra=f"""
KdelegSession On
KdelegSessionKeyFile {keys}
<Location /negotiated/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/{kdc.host("backend")}
    ProxyPass http://127.0.0.4:{kdc_backend.port}/private/cgi/
</Location>
<Location /public/>
    Require all granted
    ProxyPass http://127.0.0.4:{open_backend.port}/cgi/
</Location>
""")
    return kd_httpd("cookie-front", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                    extra_modules=PROXY_MODULES, conf_fn=conf)


def session_cookie(front, ccache):
    """Authenticate once; the Set-Cookie value of our session cookie."""
    status, headers, body, _ = kdclient.negotiate(front, "/private/cgi/env.cgi", ccache)
    assert status == 200, body
    cookies = [c.split(";", 1)[0] for c in headers.get("set-cookie", "").split("\n")]
    ours = [c for c in cookies if c.startswith("kdeleg_session=")]
    assert ours, headers
    return ours[0]


@pytest.mark.parametrize("path", ["/private/cgi/env.cgi", "/negotiated/env.cgi",
                                  "/public/env.cgi"])
def test_session_cookie_never_leaves_the_front_end(front, kdc, kdc_alice, path):
    cookie = session_cookie(front, kdc_alice)
    # the session alone authenticates (no Negotiate), with other cookies around it
    header = f"theme=dark; {cookie}; lang=fr"
    if path == "/negotiated/env.cgi":
        # the proxied back end needs a fresh delegated token: the session
        # user's tickets come from the node's cache, filled by a Kerberos visit
        status, _, body, _ = kdclient.negotiate(front, path, kdc_alice,
                                                headers={"Cookie": header})
    else:
        status, _, body = kdclient.request(front, path, headers={"Cookie": header})
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert env.get("HTTP_COOKIE") == "theme=dark; lang=fr", env.get("HTTP_COOKIE")
    assert "kdeleg_session" not in body
    if path == "/private/cgi/env.cgi":
        assert env["KDELEG_AUTH_METHOD"] == "session"
        assert env["REMOTE_USER"] == kdc.user("alice")
    if path == "/negotiated/env.cgi":
        assert env["REMOTE_USER"] == kdc.user("alice")  # as the back end authenticated it


def test_only_our_cookie_removed(front, kdc, kdc_alice):
    """A request with only our cookie reaches the back end with no Cookie
    header at all; one without it keeps its Cookie header byte for byte."""
    cookie = session_cookie(front, kdc_alice)
    status, _, body = kdclient.request(front, "/public/env.cgi", headers={"Cookie": cookie})
    assert status == 200 and "HTTP_COOKIE" not in kdclient.cgi_env(body), body
    status, _, body = kdclient.request(front, "/public/env.cgi",
                                       headers={"Cookie": "a=1;b=2; kdeleg_sessionx=3"})
    assert kdclient.cgi_env(body)["HTTP_COOKIE"] == "a=1;b=2; kdeleg_sessionx=3"
