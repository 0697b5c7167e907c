"""Sessions over TLS (issue 13, items 2-4), on both KDCs: the nodes with
mod_ssl and the lab's throw-away CA, haproxy passing TLS through to them
or terminating it. On https the cookies are `__Host-` (Secure, Path=/, no
Domain), the effective scheme comes from the connection or, behind a
terminating balancer, from `ServerName https://vip:port`, and a cookie
minted for one scheme never opens for the other.

Topology: haproxy on 127.0.0.10 as vip.<domain>, node1 (127.0.0.2) and
node2 (127.0.0.3) on the same port, a back end on 127.0.0.4; a plain-http
twin of the VIP on 127.0.0.6."""

import re

import pytest

import kdclient
from kdsite import NODE_IPS, hosts, key_file, make_tls_site, node_only_keytab
from kdnames import EXPECTED


def page_env(dom):
    """env.cgi's text/plain output as Chromium renders it (inside <pre>)."""
    text = re.sub(r"<[^>]+>", "\n", dom)
    return kdclient.cgi_env(text.replace("&amp;", "&"))


def set_cookies(headers):
    return [c for c in headers.get("set-cookie", "").split("\n") if c]


def attrs(cookie):
    return [a.strip() for a in cookie.split(";")]


@pytest.fixture
def tls_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, test_ca):
    """make(mode, nodes, extra): kdsite.make_tls_site, "passthrough" or
    "terminate"."""
    def make(mode, nodes=None, extra=""):
        return make_tls_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, test_ca,
                             mode, nodes=nodes, extra=extra)
    return make


@pytest.fixture
def http_twin(kd_httpd, kdc, lab_dir):
    """The VIP as a plain-http virtual host with the same keys, SPNs, host
    and port: only the scheme differs."""
    def make(port):
        vip = kdc.host("vip")
        keys = key_file(lab_dir, "site-750")
        twin = kd_httpd("twin", "127.0.0.6", server_name=f"http://{vip}:{port}", env=kdc.r.env(),
                        conf_fn=lambda d: f"""
KdelegKeytab {kdc.r.keytab('node1')}
KdelegServiceNames HTTP/{vip} HTTP/{kdc.host('node1')}
KdelegVirtualName {vip}
KdelegSession On
KdelegSessionKeyFile {keys}
ScriptAlias /private/cgi/ "{d}/cgi-bin/"
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
""")
        twin.allowed |= EXPECTED
        return twin
    return make


def session_through(site, ccache):
    b = site.browser(ccache)
    status, headers, body = b.get(site.url("/private/cgi/env.cgi"))
    assert status == 200, (b.chain, body)
    return b, headers, kdclient.cgi_env(body)


@pytest.mark.parametrize("mode", ["passthrough", "terminate"])
def test_https_session_cookie_is_host_prefixed_and_secure(tls_site, kdc, kdc_alice, mode):
    """Item 3: on https the cookie is __Host-: Secure, Path=/, no Domain, so
    no other host (nor plain http) can set or shadow it. Behind a
    terminating balancer the nodes speak plain http and learn the scheme
    from ServerName https://vip:port."""
    site = tls_site(mode)
    b, headers, env = session_through(site, kdc_alice)
    assert env["REMOTE_USER"] == kdc.user("alice")
    ours = [c for c in set_cookies(headers) if "kdeleg_session" in c]
    assert len(ours) == 1 and ours[0].startswith("__Host-kdeleg_session="), ours
    a = attrs(ours[0])
    assert "Secure" in a and "Path=/" in a and not [x for x in a if x.lower().startswith("domain")]
    assert "HTTPS" in env if mode == "passthrough" else "HTTPS" not in env
    # both nodes open it: no Kerberos on the next requests
    served = set()
    for _ in range(4):
        status, _, body = b.get(site.url("/private/cgi/env.cgi"))
        assert status == 200 and len(b.chain) == 1, b.chain
        env = kdclient.cgi_env(body)
        assert env["KDELEG_AUTH_METHOD"] == "session"
        served.add(env["SERVER_ADDR"])
    assert served == set(NODE_IPS.values())


def test_cookie_minted_for_https_never_opens_on_http(tls_site, http_twin, kdc, kdc_alice):
    """Item 4 (finding 2a): the scheme is part of the scope. The https
    site's cookie, presented to a plain-http twin with the same host, port,
    SPNs and keys, does not open; nor does an unprefixed cookie on https."""
    site = tls_site("terminate")
    b, _, _ = session_through(site, kdc_alice)
    value = [v for (_, _, n), (v, _, _) in b.cookies.items() if n == "__Host-kdeleg_session"][0]
    twin = http_twin(site.proxy.port)
    mark = twin.error_log_mark()
    status, _, _ = kdclient.request(twin, "/private/cgi/env.cgi",
                                    headers={"Host": f"{kdc.host('vip')}:{site.proxy.port}",
                                             "Cookie": f"kdeleg_session={value}"})
    assert status == 401
    ignored = kdclient.kd_lines(twin.error_log_since(mark), "KD00703")
    assert ignored and "another scope" in ignored[0][2], ignored
    # ... and the http twin's own cookie is nothing to the https site
    tb = kdclient.Browser({kdc.host("vip"): twin.ip}, kdc_alice)
    status, _, _ = tb.get(f"http://{kdc.host('vip')}:{twin.port}/private/cgi/env.cgi")
    assert status == 200
    plain = tb.cookie("kdeleg_session")[0]
    for name in ("kdeleg_session", "__Host-kdeleg_session"):
        marks = site.marks()
        fresh = site.browser(kdc_alice)
        status, headers, _ = fresh._send(site.url("/private/cgi/env.cgi"),
                                         extra={"Cookie": f"{name}={plain}"})
        assert status == 401 and headers["www-authenticate"] == "Negotiate"
        refused = site.lines(marks, "KD00703")
        # the unprefixed name is not even looked at on https; the prefixed
        # one is opened and refused as made for another scope
        assert (not refused) if name == "kdeleg_session" else "another scope" in refused[0][2]


def test_fallback_over_https_passthrough(tls_site, kdc, kdc_alice):
    """The fallback on https: the state cookie is __Host- too, the node
    name gets no cookie, the VIP ends with a __Host- session."""
    site = tls_site("passthrough", nodes=(("node2", node_only_keytab(kdc, "node2")),))
    marks = site.marks()
    b = site.browser(kdc_alice)
    start = site.url("/private/cgi/env.cgi?a=1")
    status, _, body = b.get(start)
    assert status == 200, (b.chain, body)
    env = kdclient.cgi_env(body)
    assert env["KDELEG_AUTH_METHOD"] == "session" and env["REMOTE_USER"] == kdc.user("alice")
    assert b.chain[-1][0] == start and env["QUERY_STRING"] == "a=1"
    assert [h for h, _ in hosts(b.chain)] == [kdc.host("vip")] * 2 + [kdc.host("node2")] * 2 \
        + [kdc.host("vip")] * 2
    assert all(u.startswith("https://") for u, _ in b.chain)
    assert len(site.lines(marks, "KD00709")) == 1
    jar = {(d, n): c.secure for (d, _, n), c in b.cookies.items()}
    assert jar == {(kdc.host("vip"), "__Host-kdeleg_session"): True}, jar


def test_chromium_through_tls_ends_on_the_bookmarked_vip_url(tls_site, kdc, kdc_alice, lab_dir,
                                                            test_ca):
    """Chromium, trusting the lab CA, through haproxy passing TLS through to
    a node without the VIP key: the node's name, Kerberos there, the token
    back, and the page served for the bookmarked https VIP URL."""
    site = tls_site("passthrough", nodes=(("node2", node_only_keytab(kdc, "node2")),))
    marks = site.marks()
    dom = kdclient.chromium(kdc.r, kdc_alice, site.resolve, site.url("/private/cgi/env.cgi?a=1"),
                            lab_dir, cafile=test_ca.pem)
    env = page_env(dom)
    assert env.get("REMOTE_USER") == kdc.user("alice"), dom[:2000]
    assert env["KDELEG_AUTH_METHOD"] == "session" and env.get("HTTPS") == "on"
    assert env["HTTP_HOST"] == f"{kdc.host('vip')}:{site.proxy.port}"
    assert env["QUERY_STRING"] == "a=1"                     # no token left in the URL
    assert len(site.lines(marks, "KD00701")) == 1 and len(site.lines(marks, "KD00709")) == 1


def test_opt_in_cookie_domain_on_https_is_secure_prefixed(tls_site, kdc, kdc_alice):
    """With KdelegCookieDomain on https the cookie cannot be __Host- (it has
    a Domain): it is __Secure-, Secure, with the Domain the administrator
    chose."""
    site = tls_site("terminate", extra=f"KdelegCookieDomain {kdc.domain}\n")
    _, headers, _ = session_through(site, kdc_alice)
    ours = [c for c in set_cookies(headers) if "kdeleg_session" in c]
    assert len(ours) == 1 and ours[0].startswith("__Secure-kdeleg_session="), ours
    assert "Secure" in attrs(ours[0]) and f"Domain={kdc.domain}" in attrs(ours[0])
