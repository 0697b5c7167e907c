"""Load-balanced names: haproxy on 127.0.0.10 as vip.example.test, round
robin to node1 (127.0.0.2) and node2 (127.0.0.3), a mod_kdeleg back end on
127.0.0.4. Shared VIP identity, the redirect-to-FQDN fallback with its
one-time transfer token, host-only session cookies every node opens, and
the ways the fallback must not be abused. As in a real farm, the balancer
and the nodes listen on one port number, so the VIP's cookie scope
(scheme, host, port, SPNs) is the same whichever way a request arrives."""

import os
import re
import time
import urllib.parse

import pytest

import kdclient
import kdlab
from kdlb import RESOLVE, STATE, key_file, private_page
from kdnames import BACKEND, EXPECTED, KEY_A, KEY_B, NODE1, NODE1_IP, NODE2, NODE2_IP, VIP

def browser(alice_ccache, **kw):
    return kdclient.Browser(RESOLVE, alice_ccache, **kw)


def hosts(chain):
    return [(urllib.parse.urlsplit(u).hostname, s) for u, s in chain]


# ------------------------------------------------------------ shared VIP identity

@pytest.mark.parametrize("mpm", ("event", "prefork"))
def test_vip_tickets_accepted_on_both_nodes(site_factory, alice_ccache, mpm):
    site = site_factory(mpm=mpm)
    served = set()
    for _ in range(4):  # fresh connection each: haproxy alternates the nodes
        tok = kdclient.Token(alice_ccache, VIP)
        status, headers, body = kdclient.request(site.proxy, "/private/cgi/env.cgi", host=VIP,
                                                 headers={"Authorization": tok.header})
        assert status == 200, body
        assert tok.finish(headers["www-authenticate"])  # mutual auth through haproxy
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == "alice@EXAMPLE.TEST"
        assert env["KDELEG_SPN"] == f"HTTP/{VIP}@EXAMPLE.TEST"
        assert env["KDELEG_AUTH_METHOD"] == "kerberos"
        served.add(env["SERVER_ADDR"])
    assert served == {NODE1_IP, NODE2_IP}


def test_delegation_through_the_vip_uses_the_vip_account(site, alice_ccache, realm):
    mark, served = realm.kdc_log_mark(), set()
    for _ in range(2):
        tok = kdclient.Token(alice_ccache, VIP)
        status, _, body = kdclient.request(site.proxy, "/deleg/env.cgi", host=VIP,
                                           headers={"Authorization": tok.header})
        assert status == 200, body
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == "alice@EXAMPLE.TEST"      # the back end saw alice
        assert env["KDELEG_SPN"] == f"HTTP/{BACKEND}@EXAMPLE.TEST"
        served.add(env["SERVER_PORT"])
    s4u = [l for l in realm.kdc_log_since(mark) if "ISSUE" in l and f"HTTP/{BACKEND}" in l]
    assert len(s4u) == 2, s4u  # one per node: each node has its own cache
    assert all(f"HTTP/{VIP}@EXAMPLE.TEST for HTTP/{BACKEND}" in l for l in s4u), s4u


# ------------------------------------------------------------ the FQDN fallback

def test_node_without_vip_key_sends_client_to_its_name_and_back(blind_site, alice_ccache):
    site = blind_site
    marks = site.marks()
    b = browser(alice_ccache)
    start = site.url("/private/cgi/env.cgi?x=1&y=a%20b")
    status, headers, body = b.get(start)
    assert status == 200, (b.chain, body)
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert env["KDELEG_AUTH_METHOD"] == "session"
    # The address bar ends where it started: the VIP, same path and query.
    assert b.chain[-1][0] == start
    assert env["QUERY_STRING"] == "x=1&y=a%20b"
    path = hosts(b.chain)
    assert path[0] == (VIP, 401) and path[1] == (VIP, 302)          # ticket for the VIP fails
    assert path[2][0] in (NODE1, NODE2) and path[2:4] == [(path[2][0], 401), (path[2][0], 302)]
    assert path[4:] == [(VIP, 302), (VIP, 200)]                      # token redeemed, dropped
    assert len(site.lines(marks, "KD00701")) == 1                     # exactly one bounce
    assert len(site.lines(marks, "KD00705")) == 1
    assert len(site.lines(marks, "KD00709")) == 1                     # the token, once
    causes = [re.search(r"cause (\S+)", m).group(1) for _, _, m in site.lines(marks, "KD00701")]
    assert causes == ["keytab-unusable"]
    # The cookie: host-only on the VIP; the node name got none; the state
    # cookie is gone once the token was redeemed.
    jar = {(domain, name): host_only for (domain, _, name), (_, host_only, _) in b.cookies.items()}
    assert jar == {(VIP, "kdeleg_session"): True}, jar
    # Later requests: both nodes accept the session, no Kerberos, no bounce.
    served = set()
    for _ in range(4):
        status, _, body = b.get(site.url("/private/cgi/env.cgi"))
        assert status == 200 and len(b.chain) == 1, b.chain
        env = kdclient.cgi_env(body)
        assert env["KDELEG_AUTH_METHOD"] == "session"
        served.add(env["SERVER_ADDR"])
    assert served == {NODE1_IP, NODE2_IP}  # a cookie sealed on one node opens on the other


def test_session_cookie_attributes_and_lifetime_capped_by_ticket(site_factory, realm, lab_dir):
    site = site_factory(lifetime=36000)
    short = os.path.join(lab_dir, "alice-short.ccache")
    realm.kinit(realm.principal("alice"), short, lifetime="5m")
    tok = kdclient.Token(short, VIP)
    status, headers, _ = kdclient.request(site.proxy, "/private/index.html", host=VIP,
                                          headers={"Authorization": tok.header})
    assert status == 200
    cookie = [c for c in headers["set-cookie"].split("\n") if c.startswith("kdeleg_session=")]
    assert len(cookie) == 1
    attrs = [a.strip() for a in cookie[0].split(";")]
    assert {"Path=/", "HttpOnly", "SameSite=Lax"} <= set(attrs)
    assert not [a for a in attrs if a.lower().startswith("domain")]  # host-only
    assert "Secure" not in attrs  # plain http here; set on https
    expires = [a for a in attrs if a.startswith("Expires=")][0][8:]
    import email.utils
    left = email.utils.parsedate_to_datetime(expires).timestamp() - time.time()
    assert 0 < left <= 300 + 5, left  # the ticket's 5 minutes, not the configured 10 hours
    assert headers.get("cache-control") == "no-store"
    # Nothing of the user in clear text.
    assert "alice" not in cookie[0]


def test_ntlm_only_client_is_redirected_not_stuck(site, alice_ccache):
    marks = site.marks()
    b = browser(alice_ccache, ntlm_hosts={VIP})  # no ticket for the VIP name, one for nodes
    status, _, body = b.get(site.url("/private/cgi/env.cgi"))
    assert status == 200, b.chain
    assert kdclient.cgi_env(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert urllib.parse.urlsplit(b.chain[-1][0]).hostname == VIP
    reasons = [re.search(r"cause (\S+)", m).group(1) for _, _, m in site.lines(marks, "KD00701")]
    assert reasons == ["ntlm-offered"]
    # the status pages of the two nodes: one bounce, NTLM named as the cause
    pages = [kdclient.status(n, host=VIP) for n in site.nodes]
    assert sum(p["counters"]["fqdn_redirects"] for p in pages) == 1
    assert sum(p["counters"]["failures_ntlm-offered"] for p in pages) == 1
    assert any(p["recent_failures"] and p["recent_failures"][0]["cause"] == "ntlm-offered"
               and "load-balanced" in p["recent_failures"][0]["fix_ad"] for p in pages)


def test_client_without_cookies_cannot_loop(site, alice_ccache):
    marks = site.marks()
    b = browser(alice_ccache, ntlm_hosts={VIP}, keep_cookies=False)
    status, headers, _ = b.get(site.url("/private/index.html"), max_hops=12)
    assert status == 401, b.chain
    assert len(site.lines(marks, "KD00701")) == 1   # one bounce, never a second
    guard = site.lines(marks, "KD00702")
    assert len(guard) == 1 and "transfer token" in guard[0][2]
    # refused on both legs back on the VIP: without the client's token,
    # and with it (a transfer token is looked at before any token)
    refused = site.lines(marks, "KD00703")
    assert len(refused) == 2 and all("no state cookie" in r[2] for r in refused), refused
    assert "Negotiate" in headers["www-authenticate"]


def test_failure_on_node_name_stops_with_401(blind_site, alice_ccache):
    """Kerberos failing on the node name too (here: a replayed token) ends
    with 401 and the cause, never another redirect."""
    node = blind_site.nodes[0]
    path = (f"/private/index.html?kdeleg-return=http%3A%2F%2F{VIP}%3A{node.port}"
            f"&kdeleg-state={STATE}")
    tok = kdclient.Token(alice_ccache, NODE1)
    first = kdclient.request(node, path, headers={"Authorization": tok.header})
    assert first[0] == 302 and first[1]["location"].startswith(f"http://{VIP}:{node.port}/")
    mark = node.error_log_mark()
    status, headers, _ = kdclient.request(node, path, headers={"Authorization": tok.header})
    assert status == 401 and "location" not in headers
    assert kdclient.causes(node.error_log_since(mark)) == ["replay"]


# ------------------------------------------------------------ open redirects

def ntlm_header():
    import base64
    return "Negotiate " + base64.b64encode(kdclient.ntlm_type1()).decode()


@pytest.mark.parametrize("host", ["evil.example.org", "vip.example.test.evil.test",
                                  "evil.test:80@vip.example.test", "vip.example.test:99999"])
def test_foreign_host_header_never_redirects(site, host):
    node = site.nodes[0]
    status, headers, _ = kdclient.request(node, "/private/index.html", host=None,
                                          headers={"Host": host, "Authorization": ntlm_header()})
    assert status in (400, 401) and "location" not in headers, (status, headers)


@pytest.mark.parametrize("target", [
    "http://evil.test", "http%3A%2F%2Fevil.test", "http%3A%2F%2Fvip.example.test.evil.test",
    "http%3A%2F%2Fvip.example.test%40evil.test", "%2F%2Fvip.example.test",
    "javascript%3Aalert(1)", "http%3A%2F%2Fvip.example.test%2Fx", "http%3A%2F%2Fvip%0d%0aX%3A1",
    "vip.example.test"])
def test_way_back_only_to_a_configured_virtual_name(site, alice_ccache, target):
    node = site.nodes[0]
    mark = node.error_log_mark()
    status, headers, body, _ = kdclient.negotiate(
        node, f"/private/cgi/env.cgi?kdeleg-return={target}", alice_ccache)
    assert status == 200 and "location" not in headers, headers  # served on the node
    assert kdclient.kd_lines(node.error_log_since(mark), "KD00708")


def test_redirect_keeps_authority_and_escapes_path(site):
    node = site.nodes[0]
    path = '//private/%0d%0aSet-Cookie:x=1/"<a>/index.html?q=%0a&r=1'
    status, headers, _ = kdclient.request(node, path, host=VIP,
                                          headers={"Authorization": ntlm_header()})
    assert status == 302
    loc = headers["location"]
    # httpd merged the slashes and upper-cased the escapes before we saw it
    prefix = (f"http://{NODE1}:{node.port}/private/%0D%0ASet-Cookie:x=1/%22%3Ca%3E/"
              f"index.html?q=%0a&r=1&kdeleg-return=http%3A%2F%2F{VIP}%3A{node.port}"
              f"&kdeleg-state=")
    assert loc.startswith(prefix) and re.fullmatch(r"[A-Za-z0-9_-]{43}", loc[len(prefix):])
    assert urllib.parse.urlsplit(loc).hostname == NODE1
    assert "x=1" not in headers.get("set-cookie", "")


def test_token_redemption_stays_on_this_host(blind_site, alice_ccache):
    b = browser(alice_ccache)
    status, _, _ = b.get(blind_site.url("//private/index.html?a=1"))
    assert status == 200, b.chain
    # Relative to the VIP, one leading slash: "//private" would be a host.
    assert b.chain[-1][0] == blind_site.url("/private/index.html?a=1"), b.chain


def test_post_is_not_redirected(site):
    node = site.nodes[0]
    status, headers, _ = kdclient.request(node, "/private/index.html", host=VIP, method="POST",
                                          body="a=1", headers={"Authorization": ntlm_header(),
                                                               "Content-Type": "text/plain"})
    assert status == 401 and "location" not in headers


# ------------------------------------------------------------ bad cookies

JUDGES = ("same", "foreign", "rotated", "stranger", "scoped", "port")


@pytest.fixture
def judge(kd_httpd, realm, lab_dir, site):
    """One httpd, one IP-based virtual host per case, each answering as the
    VIP on the VIP's port (pinned by ServerName, as behind a balancer that
    listens elsewhere): the site's twin (same key), a foreign site with
    the same key (other SPNs), the site under a rotated key file (new key
    first), a node that only knows another key, the site's twin with a
    named scope, and one whose ServerName pins another port."""
    same = key_file(lab_dir, "site", KEY_A)
    rotated = key_file(lab_dir, "rotated", KEY_B, KEY_A)
    other = key_file(lab_dir, "other", KEY_B)
    ip = "127.0.0.5"
    ports = {name: kdlab.free_port(ip) for name in JUDGES}
    vip_port = site.proxy.port

    def vhost(d, name, keys, spns=f"HTTP/{VIP} HTTP/{NODE1}", extra="",
              server=f"http://{VIP}:{vip_port}"):
        return f"""
Listen {ip}:{ports[name]}
<VirtualHost {ip}:{ports[name]}>
    ServerName {server}
    KdelegKeytab {realm.keytab('node1')}
    KdelegServiceNames {spns}
    KdelegVirtualName {VIP}
    KdelegSession On
    KdelegSessionKeyFile {keys}
    {extra}
    ScriptAlias /private/cgi/ "{d}/cgi-bin/"
    <Location /private>
        AuthType Negotiate
        Require valid-user
    </Location>
</VirtualHost>"""

    def conf(d):
        private_page(d)
        return "".join((
            vhost(d, "same", same), vhost(d, "foreign", same, spns="HTTP/other.example.test"),
            vhost(d, "rotated", rotated), vhost(d, "stranger", other),
            vhost(d, "scoped", same, extra="KdelegSessionScope app"),
            vhost(d, "port", same, server=f"http://{VIP}:{vip_port + 1}")))
    httpd = kd_httpd("judge", ip, conf_fn=conf, server_name="judge.example.test")
    httpd.allowed |= EXPECTED
    httpd.judge_ports, httpd.vip_port = ports, vip_port
    return httpd


def session_cookie(site, alice_ccache):
    b = browser(alice_ccache)
    assert b.get(site.url("/private/index.html"))[0] == 200
    return b.cookie("kdeleg_session")[0]


def judged(judge, which, cookie, name="kdeleg_session"):
    """The cookie sent to one of the judge's virtual hosts, as the browser
    sends it to the VIP."""
    import http.client
    mark = judge.error_log_mark()
    conn = http.client.HTTPConnection(judge.ip, judge.judge_ports[which], timeout=15)
    try:
        conn.request("GET", "/private/cgi/env.cgi",
                     headers={"Host": f"{VIP}:{judge.vip_port}", "Cookie": f"{name}={cookie}"})
        resp = conn.getresponse()
        headers = {}
        for k, v in resp.getheaders():
            headers[k.lower()] = headers[k.lower()] + "\n" + v if k.lower() in headers else v
        status, body = resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()
    return status, headers, body, kdclient.kd_lines(judge.error_log_since(mark), "KD00703")


def test_cookie_from_the_site_opens_under_rotated_keys(site, judge, alice_ccache):
    cookie = session_cookie(site, alice_ccache)
    for which in ("same", "rotated"):
        status, _, body, ignored = judged(judge, which, cookie)
        assert status == 200 and not ignored, (which, body)
        env = kdclient.cgi_env(body)
        assert env["KDELEG_AUTH_METHOD"] == "session" and env["REMOTE_USER"] == "alice@EXAMPLE.TEST"


def mutate(cookie, how):
    if how == "tampered":
        i = len(cookie) // 2
        return cookie[:i] + ("A" if cookie[i] != "A" else "B") + cookie[i + 1:]
    if how == "truncated":
        return cookie[:len(cookie) - 10]
    if how == "garbage":
        return "<script>" + "A" * 5000
    return cookie


@pytest.mark.parametrize("how,which,why", [
    ("tampered", "same", "does not open"),
    ("truncated", "same", "does not open|malformed"),
    ("garbage", "same", "malformed"),
    ("as-is", "foreign", "another scope"),       # other SPNs
    ("as-is", "port", "another scope"),          # ServerName pins another port
    ("as-is", "stranger", "key not in KdelegSessionKeyFile"),
])
def test_bad_cookies_are_ignored_and_cleared(site, judge, alice_ccache, how, which, why):
    cookie = mutate(session_cookie(site, alice_ccache), how)
    status, headers, body, ignored = judged(judge, which, cookie)
    assert status == 401 and headers["www-authenticate"] == "Negotiate"  # silent re-auth
    assert len(ignored) == 1 and "session-invalid" in ignored[0][2], ignored
    assert re.search(why, ignored[0][2]), ignored
    assert cookie[:20] not in "\n".join(judge.error_log_since(0))  # never logged
    cleared = [c for c in headers.get("set-cookie", "").split("\n")
               if c.startswith("kdeleg_session=;")]
    assert cleared and "1970" in cleared[0]


def test_named_scope_opens_only_its_own_cookies(site, judge, alice_ccache):
    """A location with KdelegSessionScope has its own cookie name, and the
    VIP's cookie renamed to it does not open there."""
    cookie = session_cookie(site, alice_ccache)
    status, _, _, ignored = judged(judge, "scoped", cookie)   # wrong name: not even looked at
    assert status == 401 and not ignored
    status, _, _, ignored = judged(judge, "scoped", cookie, name="kdeleg_session_app")
    assert status == 401 and len(ignored) == 1 and "another scope" in ignored[0][2]


def test_expired_cookie_is_ignored(site, kd_httpd, realm, lab_dir, alice_ccache):
    cookie = session_cookie(site, alice_ccache)
    keys = key_file(lab_dir, "site", KEY_A)
    later = kd_httpd("later", "127.0.0.6", server_name=f"{VIP}:{site.proxy.port}",
                     env=kdclient.faketime_env("+2h"),
                     conf_fn=lambda d: f"""
KdelegKeytab {realm.keytab('node1')}
KdelegVirtualName {VIP}
KdelegSession On
KdelegSessionKeyFile {keys}
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
""")
    later.allowed |= EXPECTED
    mark = later.error_log_mark()
    status, _, _ = kdclient.request(later, "/private/index.html",
                                    headers={"Cookie": f"kdeleg_session={cookie}",
                                             "Host": f"{VIP}:{site.proxy.port}"})
    assert status == 401
    lines = kdclient.kd_lines(later.error_log_since(mark), "KD00703")
    assert lines and "expired" in lines[0][2] and "alice@EXAMPLE.TEST" in lines[0][2]


# ------------------------------------------------------------ sessions and delegation

def test_session_without_cached_tickets_rechallenges_then_delegates(site, alice_ccache):
    b = browser(alice_ccache)
    assert b.get(site.url("/private/index.html"))[0] == 200   # Kerberos, a session
    marks = site.marks()
    for node in site.nodes:  # each node in turn, the VIP name, the same cookie jar
        direct = kdclient.Browser({VIP: node.ip}, alice_ccache)
        direct.cookies = b.cookies
        seen = []
        for _ in range(2):
            status, _, body = direct.get(f"http://{VIP}:{node.port}/deleg/env.cgi")
            assert status == 200, direct.chain
            assert kdclient.cgi_env(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
            seen.append([s for _, s in direct.chain])
        # First visit: the session has no tickets on this node -> 401, the
        # browser answers with Kerberos; then the node's cache serves.
        assert seen == [[401, 200], [200]], (node.name, seen)
    assert len(site.lines(marks, "KD00704")) == 2


def test_session_with_protocol_transition_needs_no_rechallenge(site, alice_ccache, realm):
    b = browser(alice_ccache)
    assert b.get(site.url("/private/index.html"))[0] == 200
    mark = realm.kdc_log_mark()
    status, _, body = b.get(site.url("/transition/env.cgi"))
    assert status == 200 and [s for _, s in b.chain] == [200], b.chain
    assert kdclient.cgi_env(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert any("S4U2SELF" in l or "for HTTP/" in l for l in realm.kdc_log_since(mark))


# ------------------------------------------------------------ configuration errors

def start_failure(realm, module_path, name, conf):
    httpd = kdlab.Httpd(realm.base, name, "127.0.0.7", module_path=module_path, conf=conf)
    mark = httpd.error_log_mark()
    with pytest.raises(kdlab.LabError) as e:
        httpd.start(realm.env())
    httpd.stop()
    return str(e.value) + "\n".join(httpd.error_log_since(mark))


def test_fallback_without_sessions_refuses_to_start(realm, module_path, lab_dir):
    out = start_failure(realm, module_path, "nosession", f"""
KdelegVirtualName {VIP}
KdelegNodeName {NODE1}
KdelegFQDNRedirect On
""")
    assert "KD00211" in out and "needs KdelegSession On" in out


def test_fallback_without_replay_cache_refuses_to_start(realm, module_path, lab_dir):
    keys = key_file(lab_dir, "site", KEY_A)
    out = start_failure(realm, module_path, "noreplay", f"""
KdelegReplayCache off
KdelegVirtualName {VIP}
KdelegNodeName {NODE1}
KdelegFQDNRedirect On
KdelegSession On
KdelegSessionKeyFile {keys}
""")
    assert "KD00211" in out and "KdelegReplayCache is off" in out


def test_node_name_that_is_a_virtual_name_refuses_to_start(realm, module_path, lab_dir):
    keys = key_file(lab_dir, "site", KEY_A)
    out = start_failure(realm, module_path, "loopname", f"""
KdelegVirtualName {VIP}
KdelegNodeName http://{VIP.upper()}:8080
KdelegFQDNRedirect On
KdelegSession On
KdelegSessionKeyFile {keys}
""")
    assert "KD00211" in out and "is also a KdelegVirtualName" in out


def test_cookie_domain_must_cover_names(realm, module_path, lab_dir):
    keys = key_file(lab_dir, "site", KEY_A)
    out = start_failure(realm, module_path, "baddomain", f"""
KdelegVirtualName vip.other.test
KdelegNodeName {NODE1}
KdelegFQDNRedirect On
KdelegSession On
KdelegSessionKeyFile {keys}
KdelegCookieDomain example.test
""")
    assert "does not cover the virtual name vip.other.test" in out


@pytest.mark.parametrize("problem", ["world-readable", "group-writable", "world-writable",
                                     "foreign-owner", "bad-line", "missing"])
def test_key_file_problems_refuse_to_start(realm, module_path, lab_dir, problem):
    if problem == "world-readable":
        path, expect = key_file(lab_dir, "open", KEY_A, mode=0o644), "readable by everyone"
    elif problem == "group-writable":
        path, expect = key_file(lab_dir, "gw", KEY_A, mode=0o660), "writable by its group"
    elif problem == "world-writable":
        path, expect = key_file(lab_dir, "ww", KEY_A, mode=0o602), "or by everyone"
    elif problem == "foreign-owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file away")
        path, expect = key_file(lab_dir, "owned", KEY_A), "owned by uid 65534, neither root"
        os.chown(path, 65534, -1)
    elif problem == "bad-line":
        path, expect = key_file(lab_dir, "short", KEY_A, "c2hvcnQ="), "line 3 is not"
    else:
        path, expect = os.path.join(lab_dir, "no-such.keys"), "cannot be read"
    out = start_failure(realm, module_path, "badkeys", f"KdelegSession On\n"
                                                      f"KdelegSessionKeyFile {path}\n")
    assert expect in out and path in out
    assert KEY_A not in out  # a key is never echoed


def test_session_on_without_key_file_refuses_to_start(realm, module_path):
    out = start_failure(realm, module_path, "nokeys", "KdelegSession On\n")
    assert "KD00210" in out and "KdelegSessionKeyFile" in out
