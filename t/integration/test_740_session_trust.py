"""Sessions you can trust (issue 13), on both KDCs: the FQDN fallback's
one-time transfer token instead of a cookie domain, cookies bound to the
scope they were minted for, REMOTE_USER mapped where the cookie is used,
logout with revocation, and delegation for fallback users on other nodes.
Each test names the finding it closes; each fails on the module before
issue 13 (a Domain cookie made on the node name, no token, a cookie bound
to the site name only, no logout).

Topology (kdsite): haproxy on 127.0.0.10 as vip.<domain>, node1
(127.0.0.2) and node2 (127.0.0.3) on the same port, a back end on
127.0.0.4."""

import base64
import os
import urllib.parse

import pytest

import kdclient
import kdlab
from conftest import kdc_front_dir
from kdsite import hosts, make_site, node_only_keytab
from kdnames import EXPECTED

# Lines these tests provoke on purpose, besides the site's own.
LOGOUT = {"KD00723", "KD00710"}

LOCATIONS = """
<Location /transition/>
    AuthType Negotiate
    Require valid-user
    KdelegProtocolTransition On
    KdelegProxyNegotiate HTTP/{back}
    ProxyPass http://127.0.0.4:{port}/private/cgi/
</Location>
<Location /short/>
    AuthType Negotiate
    Require valid-user
    KdelegRemoteUser short
</Location>
<Location /local/>
    AuthType Negotiate
    Require valid-user
    KdelegRemoteUser local
</Location>
<Location /public/>
    ProxyPass http://127.0.0.4:{port}/cgi-bin/
</Location>
KdelegSessionLogout /logout
"""


@pytest.fixture
def site_factory(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend):
    def make(nodes=None):
        def extra(d):
            kdc_front_dir(kdc, d, kdc_backend)
            return (LOCATIONS.format(back=kdc.host("backend"), port=kdc_backend.port)
                    + f'ScriptAlias /short/ "{d}/cgi-bin/"\n'
                    + f'ScriptAlias /local/ "{d}/cgi-bin/"\n')
        return make_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, nodes,
                         extra=extra, expected=LOGOUT)
    return make


@pytest.fixture
def site(site_factory):
    return site_factory()


@pytest.fixture
def blind_site(site_factory, kdc):
    """node2 alone, with its own key only: every VIP ticket needs the fallback."""
    return site_factory(nodes=(("node2", node_only_keytab(kdc, "node2")),))


def vip(kdc):
    return kdc.host("vip")


def start_bounce(site, ccache):
    """The first leg as a browser without a VIP ticket makes it: returns
    (browser, node URL, state cookie value)."""
    b = site.browser(ccache, ntlm_hosts={vip(site.kdc)})
    status, _, _ = b._send(site.url("/private/cgi/env.cgi?x=1"))
    assert status == 401
    ntlm = "Negotiate " + base64.b64encode(kdclient.ntlm_type1()).decode()
    status, headers, _ = b._send(site.url("/private/cgi/env.cgi?x=1"), ntlm)
    assert status == 302, headers
    state = b.cookie("kdeleg_state")
    assert len(state) == 1
    return b, headers["location"], state[0]


def node_leg(site, b, node_url):
    """Kerberos on the node name: returns the way back (the VIP URL with
    the token), which the browser has not followed."""
    status, headers, _ = b._send(node_url)
    assert status == 401
    host = urllib.parse.urlsplit(node_url).hostname
    status, headers, _ = b._send(node_url, kdclient.Token(b.ccache, host).header)
    assert status == 302, headers
    assert "set-cookie" not in headers  # the node name gets no cookie at all
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    back = headers["location"]
    assert back.startswith(site.url("/private/cgi/env.cgi?x=1&kdeleg-transfer="))
    return back


def token_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["kdeleg-transfer"][0]


def send(site, node, url, cookies="", extra=None):
    """One request to one node, as the VIP (same port), with exactly these cookies."""
    b = site.direct(node, None)
    headers = {"Cookie": cookies} if cookies else {}
    headers.update(extra or {})
    return b._send(url, extra=headers)


def node_for(site, marks, number):
    """The node whose log got a line `number` since marks."""
    found = [n for n, m in zip(site.nodes, marks)
             if kdclient.kd_lines(n.error_log_since(m), number)]
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------ finding 3: the fallback needs no cookie domain

def test_fallback_carries_the_session_back_with_a_one_time_token(blind_site, kdc, kdc_alice):
    """Finding 3: the fallback used to need KdelegCookieDomain, so the
    cookie went to every host of the domain. Now the node name gets no
    cookie; the VIP exchanges a token for its own host-only cookie, and the
    redemption answer is neither cached nor a source of Referer."""
    site = blind_site
    b, node_url, state = start_bounce(site, kdc_alice)
    assert "kdeleg-state=" in node_url and state not in node_url  # only its hash travels
    back = node_leg(site, b, node_url)
    status, headers, _ = b._send(back)
    assert status == 302 and headers["location"] == "/private/cgi/env.cgi?x=1", headers
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    cookies = headers["set-cookie"].split("\n")
    session = [c for c in cookies if c.startswith("kdeleg_session=")]
    assert len(session) == 1 and "domain=" not in session[0].lower()
    assert [c for c in cookies if c.startswith("kdeleg_state=;")]  # the state is spent
    status, _, body = b.get(site.url("/private/cgi/env.cgi?x=1"))
    env = kdclient.cgi_env(body)
    assert status == 200 and env["KDELEG_AUTH_METHOD"] == "session"
    assert env["REMOTE_USER"] == kdc.user("alice") and env["QUERY_STRING"] == "x=1"
    jar = {(d, n): host_only for (d, _, n), (_, host_only, _) in b.cookies.items()}
    assert jar == {(vip(kdc), "kdeleg_session"): True}, jar
    doc = kdclient.status(site.nodes[0], host=vip(kdc))
    assert doc["counters"]["transfers_redeemed"] == 1 and doc["counters"]["fqdn_redirects"] == 1


def test_token_is_good_once_per_node(site, kdc, kdc_alice):
    """The same token and state cookie a second time on the node that
    redeemed it: refused. (Until the shared replay store of a later issue,
    another node would accept it once more; see the threat model.)"""
    b, node_url, state = start_bounce(site, kdc_alice)
    back = node_leg(site, b, node_url)
    marks = site.marks()
    status, headers, _ = b._send(back)
    assert status == 302 and "kdeleg_session=" in headers["set-cookie"]
    node = node_for(site, marks, "KD00709")
    mark = node.error_log_mark()
    status, headers, _ = send(site, node, back, f"kdeleg_state={state}")
    assert status == 401 and "kdeleg_session=" not in headers.get("set-cookie", "")
    refused = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
    assert refused and "used before" in refused[0][2], refused
    token = token_of(back)
    for n in site.nodes:   # neither the token nor the state cookie is ever logged
        logged = "\n".join(n.error_log_since(0))
        assert token[:24] not in logged and state[:24] not in logged


def test_token_without_its_state_cookie_is_refused(site, kdc, kdc_alice):
    """Login CSRF: a token minted for the attacker's own login, planted in
    the victim's browser, must not log the victim in as the attacker. The
    token carries the hash of the state cookie of the browser that started
    the bounce; a browser without it, or with its own, gets nothing."""
    attacker, node_url, _ = start_bounce(site, kdc_alice)
    planted = node_leg(site, attacker, node_url)
    victim_state = start_bounce(site, kdc_alice)[2]     # the victim's own, unrelated bounce
    for node in site.nodes:
        for cookies, why in (("", "no state cookie"),
                             (f"kdeleg_state={victim_state}", "does not match")):
            mark = node.error_log_mark()
            status, headers, _ = send(site, node, planted, cookies)
            assert status == 401, (cookies, headers)
            assert "kdeleg_session=" not in headers.get("set-cookie", "")
            refused = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
            assert refused and why in refused[0][2], refused


def test_token_is_bound_to_its_origin(site, kdc, kdc_alice):
    """A token for the VIP is refused on another name of the same node."""
    b, node_url, state = start_bounce(site, kdc_alice)
    back = node_leg(site, b, node_url)
    node = site.nodes[0]
    elsewhere = back.replace(f"//{vip(kdc)}:", f"//{kdc.host('node1')}:")
    mark = node.error_log_mark()
    b2 = kdclient.Browser({kdc.host("node1"): node.ip}, kdc_alice)
    status, headers, _ = b2._send(elsewhere, extra={"Cookie": f"kdeleg_state={state}"})
    assert status == 401 and "kdeleg_session=" not in headers.get("set-cookie", "")
    refused = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
    assert refused and f"made for http://{vip(kdc)}:" in refused[0][2], refused


def test_expired_token_is_refused(site, kd_httpd, kdc, kdc_alice, lab_dir):
    """A token lives 60 s: a twin of the VIP whose clock is 2 minutes ahead
    refuses it."""
    b, node_url, state = start_bounce(site, kdc_alice)
    back = node_leg(site, b, node_url)
    port = site.proxy.port
    keys = os.path.join(lab_dir, "site-720.keys")
    twin = kd_httpd("twin", "127.0.0.6", server_name=vip(kdc), port=kdlab.free_port("127.0.0.6"),
                    env={**kdc.r.env(), **kdclient.faketime_env("+2m")},
                    conf_fn=lambda d: f"""
KdelegKeytab {kdc.r.keytab('node1')}
KdelegServiceNames HTTP/{vip(kdc)}
KdelegVirtualName {vip(kdc)}
KdelegSession On
KdelegSessionKeyFile {keys}
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
""")
    twin.allowed |= EXPECTED
    mark = twin.error_log_mark()
    status, _, _ = kdclient.request(twin, urllib.parse.urlsplit(back).path + "?"
                                    + urllib.parse.urlsplit(back).query,
                                    headers={"Host": f"{vip(kdc)}:{port}",
                                             "Cookie": f"kdeleg_state={state}"})
    assert status == 401
    refused = kdclient.kd_lines(twin.error_log_since(mark), "KD00703")
    assert refused and "expired" in refused[0][2], refused


# ------------------------------------------------------------ finding 1 (rest): nothing of ours leaves

def test_token_never_reaches_a_handler_a_back_end_or_the_log(site, kdc, kdc_alice):
    """The token is taken out of the request before any handler: not in a
    CGI's QUERY_STRING or REQUEST_URI, not in what mod_proxy sends to a
    back end (a location we do not guard), not in the access log."""
    b = site.browser(kdc_alice)
    assert b.get(site.url("/private/index.html"))[0] == 200   # a session
    token = "AAAA" + "x" * 60
    status, _, body = b.get(site.url(f"/private/cgi/env.cgi?a=1&kdeleg-transfer={token}&b=2"))
    env = kdclient.cgi_env(body)
    assert status == 200 and env["KDELEG_AUTH_METHOD"] == "session"
    assert env["QUERY_STRING"] == "a=1&b=2" and token not in env["REQUEST_URI"]
    status, _, body = b.get(site.url(f"/public/env.cgi?kdeleg-transfer={token}&c=3"))
    env = kdclient.cgi_env(body)
    assert status == 200 and env["QUERY_STRING"] == "c=3", body
    assert token not in body and "kdeleg_session" not in body
    for node in site.nodes:
        with open(node.access_log) as f:
            assert token not in f.read()


def test_refusals_never_log_the_cookie_or_the_token(site, kdc, kdc_alice):
    """A cookie that does not open (a flipped byte) and a transfer token
    that does not open are each refused with KD00703 (session-invalid),
    naming what was ignored and why; neither value is in the error log."""
    b = site.browser(kdc_alice)
    assert b.get(site.url("/private/index.html"))[0] == 200
    cookie = b.cookie("kdeleg_session")[0]
    middle = len(cookie) // 2
    tampered = cookie[:middle] + ("A" if cookie[middle] != "A" else "B") + cookie[middle + 1:]
    node = site.nodes[0]
    mark = node.error_log_mark()
    status, headers, _ = send(site, node, site.url("/private/index.html"),
                              f"kdeleg_session={tampered}")
    assert status == 401 and headers["www-authenticate"] == "Negotiate"
    lines = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
    assert lines and "session cookie ignored: cause session-invalid" in lines[0][2], lines
    token = base64.urlsafe_b64encode(b"\x02" + os.urandom(90)).decode().rstrip("=")
    mark = node.error_log_mark()
    status, _, _ = send(site, node, site.url(f"/private/index.html?kdeleg-transfer={token}"))
    assert status == 401
    lines = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
    assert lines and "transfer token ignored: cause session-invalid" in lines[0][2], lines
    log = "\n".join(node.error_log_since(0))
    for secret in (cookie, tampered, token):
        assert secret[:24] not in log and secret[-24:] not in log


def test_every_cookie_of_ours_is_stripped(site, kdc):
    """Session cookies of every scope and prefix, and the state cookie,
    never reach a CGI; other cookies arrive untouched."""
    node = site.nodes[0]
    cookies = ("a=1; kdeleg_state=s1; __Host-kdeleg_session=s2; kdeleg_session_app=s3; "
               "__Secure-kdeleg_session=s4; __Host-kdeleg_state=s5; b=2; kdeleg_sessionx=3")
    status, _, body = send(site, node, site.url("/public/env.cgi"), cookies)
    assert status == 200
    assert kdclient.cgi_env(body)["HTTP_COOKIE"] == "a=1; b=2; kdeleg_sessionx=3"


# ------------------------------------------------------------ finding 2: bound to where it was minted

def test_remote_user_is_mapped_where_the_cookie_is_used(site, kdc, kdc_alice):
    """Finding 2b: the cookie held the issuer's REMOTE_USER, so
    `KdelegRemoteUser local` or `short` at one location returned the name
    another location had minted. It holds the principal only now."""
    b = site.browser(kdc_alice)
    assert b.get(site.url("/private/cgi/env.cgi"))[0] == 200   # minted under "full"
    for path, user in (("/short/env.cgi", "alice"), ("/local/env.cgi", "alice"),
                       ("/private/cgi/env.cgi", kdc.user("alice"))):
        status, _, body = b.get(site.url(path))
        env = kdclient.cgi_env(body)
        assert status == 200 and len(b.chain) == 1, b.chain    # the session, no Kerberos
        assert env["KDELEG_AUTH_METHOD"] == "session" and env["REMOTE_USER"] == user, (path, env)
        assert env["GSS_NAME"] == kdc.user("alice")


def test_cookie_of_the_old_format_is_session_invalid(site, kdc):
    """Migration: a version 1 cookie (before scopes) fails cleanly as
    session-invalid, is cleared, and the client is asked for Kerberos."""
    old = base64.urlsafe_b64encode(b"\x01" + b"\x11" * 8 + b"\x01" + b"\x22" * 60).decode()
    node = site.nodes[0]
    mark = node.error_log_mark()
    status, headers, _ = send(site, node, site.url("/private/index.html"),
                              f"kdeleg_session={old.rstrip('=')}")
    assert status == 401 and headers["www-authenticate"] == "Negotiate"
    lines = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
    assert lines and "session-invalid" in lines[0][2] and "older format" in lines[0][2]
    assert [c for c in headers["set-cookie"].split("\n") if c.startswith("kdeleg_session=;")]


# ------------------------------------------------------------ finding 4: logout

def test_logout_clears_and_revokes_on_this_node(site, kdc, kdc_alice):
    b = site.browser(kdc_alice)
    assert b.get(site.url("/private/index.html"))[0] == 200
    cookie = b.cookie("kdeleg_session")[0]
    node = site.nodes[0]
    other = site.nodes[1]
    assert send(site, node, site.url("/private/index.html"), f"kdeleg_session={cookie}")[0] == 200
    mark = node.error_log_mark()
    status, headers, body = send(site, node, site.url("/logout"),
                                 f"kdeleg_session={cookie}")
    assert status == 200 and "session has ended" in body
    assert headers["cache-control"] == "no-store"
    assert [c for c in headers["set-cookie"].split("\n") if c.startswith("kdeleg_session=;")]
    audit = kdclient.kd_lines(node.error_log_since(mark), "KD00723")
    assert audit and kdc.user("alice") in audit[0][2]
    assert kdclient.status(node, host=vip(kdc))["counters"]["session_logouts"] == 1
    # the old cookie, replayed to this node: session-invalid, revoked
    mark = node.error_log_mark()
    status, _, _ = send(site, node, site.url("/private/index.html"), f"kdeleg_session={cookie}")
    assert status == 401
    lines = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
    assert lines and "revoked" in lines[0][2]
    assert cookie[:24] not in "\n".join(node.error_log_since(0))   # never logged
    # farm-wide revocation comes with the shared store: the other node still opens it
    assert send(site, other, site.url("/private/index.html"), f"kdeleg_session={cookie}")[0] == 200
    # a new login after the logout gets a new session that works here
    b2 = site.direct(node, kdc_alice)
    assert b2.get(site.url("/private/index.html"))[0] == 200
    fresh = b2.cookie("kdeleg_session")[0]
    assert send(site, node, site.url("/private/index.html"), f"kdeleg_session={fresh}")[0] == 200
    # logout survives a graceful restart
    node.reload()
    assert send(site, node, site.url("/private/index.html"), f"kdeleg_session={cookie}")[0] == 401


def test_logout_without_a_session_and_not_by_post(site):
    node = site.nodes[0]
    status, headers, body = send(site, node, site.url("/logout"))
    assert status == 200 and "no session here" in body
    assert [c for c in headers["set-cookie"].split("\n") if c.startswith("kdeleg_session=;")]
    status, headers, _ = kdclient.request(node, "/logout", method="POST", body="x",
                                          headers={"Host": f"{vip(site.kdc)}:{node.port}"})
    assert status == 405 and "GET" in headers["allow"].split(",")


# ------------------------------------------------------------ delegation after the fallback

def test_fallback_user_delegates_on_other_nodes_through_protocol_transition(
        site, kdc, kdc_alice):
    """A user who came through the fallback has no ticket for the VIP name:
    no node has evidence for S4U2Proxy. Without protocol transition the
    client is asked for Kerberos again; with it, every node delegates
    through S4U2Self on the VIP account, then S4U2Proxy."""
    b, node_url, state = start_bounce(site, kdc_alice)
    back = node_leg(site, b, node_url)
    assert b._send(back)[0] == 302
    for node in site.nodes:
        mark = node.error_log_mark()
        direct = site.direct(node, kdc_alice, ntlm_hosts={vip(kdc)})
        direct.cookies = b.cookies
        # asked for Kerberos (KD00704); the browser has only NTLM for the VIP
        # name, and is not sent round the fallback again (KD00710): it ends
        status, headers, _ = direct.get(site.url("/deleg/env.cgi"))
        assert status == 401 and [s for _, s in direct.chain] == [401, 401], direct.chain
        lines = node.error_log_since(mark)
        assert kdclient.kd_lines(lines, "KD00704") and kdclient.kd_lines(lines, "KD00710")
        assert not kdclient.kd_lines(lines, "KD00701")
    for node in site.nodes:
        mark = node.error_log_mark()
        direct = site.direct(node, kdc_alice, ntlm_hosts={vip(kdc)})
        direct.cookies = b.cookies
        status, _, body = direct._send(site.url("/transition/env.cgi"))
        env = kdclient.cgi_env(body)
        assert status == 200, body
        assert env["REMOTE_USER"] == kdc.user("alice")          # as the back end saw her
        assert env["KDELEG_SPN"] == kdc.spn("backend")
        audit = [m for _, _, m in kdclient.kd_lines(node.error_log_since(mark), "KD00410")]
        s4u2self = [m for m in audit if "S4U2Self" in m]
        assert s4u2self and all(kdc.impersonator("vip") in m for m in s4u2self), audit


def test_node_session_goes_back_with_a_token_too(blind_site, kdc, kdc_alice):
    """A client that already holds a session for the node's own name (it
    visited the node directly) is sent back to the VIP with a token as
    well, without Kerberos on the node leg."""
    site, node2 = blind_site, blind_site.nodes[0]
    b = site.browser(kdc_alice)
    assert b.get(f"http://{kdc.host('node2')}:{node2.port}/private/index.html")[0] == 200
    assert b.cookie("kdeleg_session")
    status, _, body = b.get(site.url("/private/cgi/env.cgi?x=2"))
    env = kdclient.cgi_env(body)
    assert status == 200 and env["KDELEG_AUTH_METHOD"] == "session", (b.chain, body)
    assert env["QUERY_STRING"] == "x=2" and env["REMOTE_USER"] == kdc.user("alice")
    assert hosts(b.chain) == [(vip(kdc), 401), (vip(kdc), 302), (kdc.host("node2"), 302),
                              (vip(kdc), 302), (vip(kdc), 200)], b.chain


def test_cookie_domain_is_an_explicit_opt_in(kd_httpd, haproxy_factory, kdc, lab_dir,
                                             kdc_backend, kdc_alice):
    """KdelegCookieDomain still works when an administrator asks for it (its
    block in docs/directives.md says what it exposes): the cookie carries the
    Domain, and the fallback still comes back with a token, not with a
    node-made cookie."""
    site = make_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                     (("node2", node_only_keytab(kdc, "node2")),),
                     extra=f"KdelegCookieDomain {kdc.domain}\n")
    marks = site.marks()
    b = site.browser(kdc_alice)
    status, _, body = b.get(site.url("/private/cgi/env.cgi"))
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "session"
    assert len(site.lines(marks, "KD00709")) == 1
    jar = {(d, n): host_only for (d, _, n), (_, host_only, _) in b.cookies.items()}
    assert jar == {(kdc.domain, "kdeleg_session"): False}, jar


def test_token_on_a_post_is_refused(site, kdc, kdc_alice):
    """The way back is a GET: a token arriving with another method is
    refused (and, like every token, taken out of the request)."""
    b, node_url, state = start_bounce(site, kdc_alice)
    back = node_leg(site, b, node_url)
    node = site.nodes[0]
    mark = node.error_log_mark()
    path = back.split(f":{node.port}", 1)[1]
    status, headers, _ = kdclient.request(node, path, method="POST", body="x",
                                          headers={"Host": f"{vip(kdc)}:{node.port}",
                                                   "Cookie": f"kdeleg_state={state}",
                                                   "Content-Type": "text/plain"})
    assert status == 401 and "kdeleg_session=" not in headers.get("set-cookie", "")
    refused = kdclient.kd_lines(node.error_log_since(mark), "KD00703")
    assert refused and "session-invalid" in refused[0][2] and "arrived with POST" in refused[0][2]
