"""The way back of the FQDN fallback is pinned (issue 14, item 5), on both
KDCs: `kdeleg-return` must name a configured virtual name on the scheme
and port it is configured with (httpd's scheme: TLS, or
`ServerName https://...` behind a terminating balancer; the port of
`ServerName`, else the connection's), never what the client wrote, nor
the port of its `Host` header. The VIP leg sends that origin, the node
leg accepts nothing else, and the VIP redeems tokens made for it alone.

Topology (kdsite): haproxy on 127.0.0.10 as vip.<domain>, node1
(127.0.0.2) and node2 (127.0.0.3) on the same port, a back end on
127.0.0.4; plain http, or https with haproxy terminating TLS."""

import base64
import urllib.parse

import pytest

import kdclient
from kdsite import hosts, make_site, make_tls_site

PAGE = "/private/cgi/env.cgi?x=1"


@pytest.fixture(params=["http", "terminate"])
def site(request, kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend):
    """The plain-http site, or the https one behind a terminating haproxy
    (the nodes speak http; ServerName https://vip:port gives the scheme)."""
    if request.param == "http":
        return make_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend)
    return make_tls_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                         request.getfixturevalue("test_ca"), "terminate")


def vip(site):
    return site.kdc.host("vip")


def ntlm():
    return "Negotiate " + base64.b64encode(kdclient.ntlm_type1()).decode()


def query(url):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)


def bounce(site, b, url, extra=None):
    """The VIP leg for a client offering NTLM: the node URL it is sent to."""
    status, headers, _ = b._send(url, ntlm(), extra=extra)
    assert status == 302, headers
    assert node_of(site, headers["location"]), headers
    return headers["location"]


def with_return(node_url, way_back):
    """node_url with its kdeleg-return replaced by way_back (kdeleg-state kept)."""
    u = urllib.parse.urlsplit(node_url)
    q = [(k, way_back if k == "kdeleg-return" else v)
         for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))


def node_leg(b, node_url):
    """Kerberos on the node name: (status, headers, body) of the answer."""
    host = urllib.parse.urlsplit(node_url).hostname
    return b._send(node_url, kdclient.Token(b.ccache, host).header)


def node_of(site, node_url):
    """The node whose own name node_url names."""
    host = urllib.parse.urlsplit(node_url).hostname
    return [n for n in site.nodes if n.ip == site.resolve[host]][0]


def test_the_normal_flow_round_trips(site, kdc, kdc_alice):
    """The VIP leg sends exactly the configured origin, the node sends the
    client back there with a token, and the VIP redeems it."""
    b = site.browser(kdc_alice, ntlm_hosts={vip(site)})
    marks = site.marks()
    status, _, body = b.get(site.url(PAGE))
    assert status == 200, (b.chain, body)
    env = kdclient.cgi_env(body)
    assert env["KDELEG_AUTH_METHOD"] == "session" and env["REMOTE_USER"] == kdc.user("alice")
    node_url = [u for u, _ in b.chain if "kdeleg-return=" in u][0]
    assert query(node_url)["kdeleg-return"] == [site.vip]          # scheme://vip:port
    assert [h for h, _ in hosts(b.chain)][-2:] == [vip(site)] * 2
    assert b.chain[-1][0] == site.url(PAGE)
    assert len(site.lines(marks, "KD00705")) == 1 and len(site.lines(marks, "KD00709")) == 1
    assert not site.lines(marks, "KD00708") and not site.lines(marks, "KD00703")


def refused_ways_back(site):
    """The configured virtual name with another port, or another scheme
    (http for the https site, https for the http one), or the scheme's
    default port."""
    u = urllib.parse.urlsplit(site.vip)
    other = "http" if u.scheme == "https" else "https"
    return [f"{u.scheme}://{u.hostname}:{u.port + 1}",
            f"{other}://{u.hostname}:{u.port}",
            f"{u.scheme}://{u.hostname}"]


def test_another_port_or_scheme_is_refused(site, kdc, kdc_alice):
    """A node-leg request whose kdeleg-return names the configured virtual
    name with another port or scheme gets no transfer token: KD00708 names
    the expected origin, and the page is served on the node."""
    for way_back in refused_ways_back(site):
        b = site.browser(kdc_alice, ntlm_hosts={vip(site)})
        node_url = with_return(bounce(site, b, site.url(PAGE)), way_back)
        node = node_of(site, node_url)
        mark = node.error_log_mark()
        status, headers, body = node_leg(b, node_url)
        assert status == 200 and "location" not in headers, (way_back, status, headers)
        assert "kdeleg-transfer" not in str(headers) and "kdeleg-transfer" not in body
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == kdc.user("alice")
        assert env["KDELEG_AUTH_METHOD"] == "kerberos"              # served here, no session
        refused = kdclient.kd_lines(node.error_log_since(mark), "KD00708")
        assert len(refused) == 1 and refused[0][0] == "warn", refused
        assert f"the configured origin of the virtual name, {site.vip} " in refused[0][2], refused
        assert not kdclient.kd_lines(node.error_log_since(mark), "KD00705")


def test_host_header_port_does_not_choose_the_way_back(site, kdc, kdc_alice):
    """The VIP leg reached with a Host header naming another port still
    sends the configured origin, and the round trip ends on it: the VIP
    redeems the token whatever port the Host header names."""
    b = site.browser(kdc_alice)
    other = f"{vip(site)}:{urllib.parse.urlsplit(site.vip).port + 7}"
    node_url = bounce(site, b, site.url(PAGE), extra={"Host": other})
    assert query(node_url)["kdeleg-return"] == [site.vip]
    status, headers, _ = node_leg(b, node_url)
    assert status == 302, headers
    assert headers["location"].startswith(site.url(PAGE + "&kdeleg-transfer="))
    marks = site.marks()
    status, headers, _ = b._send(headers["location"], extra={"Host": other})
    assert status == 302 and headers["location"] == PAGE, headers   # redeemed
    assert len(site.lines(marks, "KD00709")) == 1
    status, _, body = b.get(site.url(PAGE))
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "session", body
