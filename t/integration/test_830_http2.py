"""HTTP/2 (issue 17, item 5): mod_http2 over TLS (`Protocols h2 http/1.1`,
ALPN), on both KDCs. Under HTTP/2 one TLS connection carries many
requests at once, each a stream on a secondary connection of its own
(c->master set); nothing a stream authenticated may serve another.

- SSO, sessions and delegation through KdelegProxyNegotiate with
  `curl --http2` (the response really is HTTP/2: curl's %{http_version},
  httpd's access log, mod_http2's HTTP2=on for the CGI).
- python3-h2 on ONE connection: interleaved streams carrying the tokens of
  alice, bob and carol, streams with no token, a bad token, a replayed
  token, session cookies of each user: every stream answers for its own
  user (its own mutual-authentication token), the rest get 401.
- The FQDN fallback over h2: haproxy passing TLS through (mode tcp), the
  way a farm that wants h2 from browsers to nodes runs it (a terminating
  haproxy 2.6 speaks HTTP/1.1 to the nodes, where HTTP/2 is not the
  module's business); curl and headless Chromium.
- prefork: mod_http2 refuses it (AH10034) and ALPN offers http/1.1 only.
- Header size under h2 (AD, big PACs): LimitRequestFieldSize applies per
  header, the answer is 431.

Topology: node1 on 127.0.0.2 (https, h2), a mod_kdeleg back end on
127.0.0.4 (http/1.1); for the fallback haproxy on 127.0.0.10 as the VIP in
front of node2 (127.0.0.3) without the VIP key."""

import base64
import os
import random
import re
import subprocess
import time

import pytest

import kdclient
from kdsite import key_file, make_tls_site, node_only_keytab
from kdnames import PROXY_MODULES

H2_MODULES = PROXY_MODULES + ("http2", "auth_basic")
USERS = ("alice", "bob", "carol")
WHOAMI = "/private/whoami.txt"


def front_conf(kdc, d, backend, keys, extra=""):
    """node1 on https with h2 first: /private (static whoami.txt and
    env.cgi) echoes the request's user and method in response headers,
    /deleg/ is proxied to the back end with a fresh token for the user."""
    os.makedirs(f"{d}/htdocs/private", exist_ok=True)
    with open(f"{d}/htdocs/private/whoami.txt", "w") as f:
        f.write("whoami\n")
    return f"""
Protocols h2 http/1.1
KdelegKeytab {kdc.r.keytab('node1')}
KdelegServiceNames HTTP/{kdc.host('node1')}
KdelegSession On
KdelegSessionKeyFile {keys}
ScriptAlias /private/cgi/ "{d}/cgi-bin/"
<Location /private>
    AuthType Negotiate
    Require valid-user
    Header set X-User "expr=%{{REMOTE_USER}}"
    Header set X-Kdeleg-Method "expr=%{{reqenv:KDELEG_AUTH_METHOD}}"
</Location>
<Location /deleg/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/{kdc.host('backend')}
    ProxyPass http://127.0.0.4:{backend.port}/private/cgi/
</Location>
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
</Location>
ScriptAlias /pw/ "{d}/cgi-bin/"
<Location /pw/>
    AuthType Basic
    AuthName "web"
    AuthBasicProvider kdeleg
    Require valid-user
</Location>
{extra}"""


@pytest.fixture
def h2_front(kd_httpd, kdc, kdc_backend, test_ca, lab_dir):
    """make(mpm="event", extra="") -> node1 speaking h2 over TLS."""
    def make(mpm="event", extra=""):
        keys = key_file(lab_dir, f"site-830-{kdc.kind}")
        node = kd_httpd("h2-node1", "127.0.0.2", server_name=kdc.host("node1"), mpm=mpm,
                        env=kdc.r.env(), extra_modules=H2_MODULES,
                        tls=test_ca.issue(f"{kdc.kind}-node1", [kdc.host("node1")]),
                        conf_fn=lambda d: front_conf(kdc, d, kdc_backend, keys, extra))
        node.cafile = test_ca.pem
        return node
    return make


@pytest.fixture
def tgts(kdc):
    """{user: ccache} for alice, bob and carol in the realm under test."""
    return {u: kdc.r.kinit(u, kdc.r.path("ccache", f"{u}-830.cc")) for u in USERS}


def curl(node, path, *args, ccache=None, host=None, realm=None):
    """curl --http2 (TLS, ALPN) to the node: (status, http version, headers
    text, body). With ccache: --negotiate with that user's tickets."""
    host = host or node.server_name
    auth = ["--negotiate", "-u", ":"] if ccache else []
    env = (realm or {}).env(ccache) if ccache else {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        ["curl", "-s", "--http2", "--cacert", node.cafile, "-D", "/dev/stderr",
         "-w", "\n%{http_code} %{http_version}", *auth, *args,
         "--resolve", f"{host}:{node.port}:{node.ip}", f"https://{host}:{node.port}{path}"],
        env=env, capture_output=True, text=True, timeout=30)
    body, _, tail = proc.stdout.rpartition("\n")
    code, version = tail.split()
    return int(code), version, proc.stderr, body


def h2_lines(node, mark, want=1):
    """Access log lines since mark, as (request line, status, user), once
    there are at least want of them (or after 5 s): httpd logs a request
    after its response went out, and the client may have read it first."""
    deadline = time.monotonic() + 5
    while True:
        with open(node.access_log) as f:
            f.seek(mark)
            lines = f.read().splitlines()
        out = []
        for line in lines:
            m = re.search(r'^\S+ \S+ (\S+) \[[^]]+\] "([^"]*)" (\d+)', line)
            if m:
                out.append((m.group(2), int(m.group(3)), m.group(1)))
        if len(out) >= want or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def access_mark(node):
    return os.path.getsize(node.access_log) if os.path.exists(node.access_log) else 0


def h2(node, cafile=None):
    return kdclient.H2Connection(node.server_name, node.ip, node.port, cafile or node.cafile)


def bad_token():
    """A Negotiate header whose token is not SPNEGO nor Kerberos."""
    return "Negotiate " + base64.b64encode(b"\x60\x03\x06\x01\x00" + b"x" * 40).decode()


# ------------------------------------------------------------ curl --http2

def test_sso_with_curl_over_http2(h2_front, kdc, kdc_alice):
    """curl --http2 --negotiate: 200 as alice over HTTP/2 (curl says 2,
    httpd's access log HTTP/2.0, mod_http2 tells the CGI HTTP2=on), with
    the mutual-authentication token. (curl 7.88 sends its token on the
    first request: no 401 leg.)"""
    node = h2_front()
    mark = access_mark(node)
    status, version, head, body = curl(node, "/private/cgi/env.cgi", ccache=kdc_alice,
                                       realm=kdc.r)
    assert (status, version) == (200, "2"), (head, body)
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice")
    assert env["KDELEG_AUTH_METHOD"] == "kerberos"
    assert env["SERVER_PROTOCOL"] == "HTTP/2.0" and env["HTTP2"] == "on"
    assert re.search(r"(?im)^www-authenticate: Negotiate \S+", head), head
    lines = h2_lines(node, mark)
    assert [(r.split()[-1], s, u) for r, s, u in lines] == [
        ("HTTP/2.0", 200, kdc.user("alice"))], lines


def test_session_cookie_issued_and_honoured_over_http2(h2_front, kdc, kdc_alice, lab_dir):
    """The session cookie minted on an h2 stream (__Host-, Secure) opens on
    a later h2 connection that sends no token at all."""
    node = h2_front()
    jar = os.path.join(lab_dir, f"jar-830-{kdc.kind}.txt")
    status, version, head, _ = curl(node, WHOAMI, "-c", jar, ccache=kdc_alice, realm=kdc.r)
    assert (status, version) == (200, "2"), head
    cookie = re.search(r"(?im)^set-cookie: (__Host-kdeleg_session=[^;]+);(.*)$", head)
    assert cookie and "Secure" in cookie.group(2), head
    status, version, head, _ = curl(node, WHOAMI, "-b", jar)   # no --negotiate
    assert (status, version) == (200, "2"), head
    assert re.search(r"(?im)^x-user: " + re.escape(kdc.user("alice")) + r"\s*$", head), head
    assert re.search(r"(?im)^x-kdeleg-method: session\s*$", head), head


def test_delegation_through_proxy_negotiate_over_http2(h2_front, kdc, kdc_alice, kdc_backend):
    """An h2 request to a KdelegProxyNegotiate location: the back end (on
    HTTP/1.1) authenticates a fresh token for alice, made by S4U2Proxy."""
    node = h2_front()
    mark = kdc.r.kdc_log_mark()
    status, version, head, body = curl(node, "/deleg/env.cgi", ccache=kdc_alice, realm=kdc.r)
    assert (status, version) == (200, "2"), (head, body)
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice")              # what the back end saw
    assert env["KDELEG_AUTH_METHOD"] == "kerberos"
    assert env["KDELEG_SPN"] == kdc.spn("backend")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"                 # the back-end hop
    assert len(kdc.s4u2proxy(kdc.r.kdc_log_since(mark), "HTTP/backend")) == 1


def test_password_over_http2(h2_front, kdc):
    """AuthBasicProvider kdeleg needs TLS (no KdelegPasswordWithoutTLS
    here): an h2 stream, whose own connection is a secondary one, counts as
    TLS through its master connection, and the password is checked by the
    KDC."""
    import kdlab
    node = h2_front()
    password = kdlab.USERS["alice"]
    status, version, head, body = curl(node, "/pw/env.cgi", "-u", f"alice:{password}")
    assert (status, version) == (200, "2"), (head, body)
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice") and env["KDELEG_AUTH_METHOD"] == "password"
    assert env["HTTP2"] == "on"


def test_client_certificate_transition_over_http2(h2_front, kdc, kdc_backend, test_ca):
    """Protocol transition for a user from a verified client certificate
    (server-wide SSLVerifyClient require, SSLUserName): the module asks
    mod_ssl for SSL_CLIENT_VERIFY with the stream's connection, and mod_ssl
    answers from the master connection, where the handshake happened. The
    back end sees alice, all on HTTP/2. (Per location: the next test.)"""
    node = h2_front(extra=f"""
SSLCACertificateFile "{test_ca.pem}"
SSLVerifyClient require
SSLVerifyDepth 2
SSLUserName SSL_CLIENT_S_DN_CN
KdelegUserRealm {kdc.realm}
<Location /cert/>
    Require valid-user
    KdelegProtocolTransition On
    KdelegProxyNegotiate HTTP/{kdc.host('backend')}
    ProxyPass http://127.0.0.4:{kdc_backend.port}/private/cgi/
</Location>
""")
    cert, key = test_ca.issue_client("client-alice", "alice")
    status, version, head, body = curl(node, "/cert/env.cgi", "--cert", cert, "--key", key)
    assert (status, version) == (200, "2"), (head, body)
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice") and env["KDELEG_SPN"] == kdc.spn("backend")


def test_per_location_client_certificate_moves_to_http11(h2_front, kdc, kdc_backend,
                                                        test_ca):
    """SSLVerifyClient inside a Location needs a TLS renegotiation, which
    HTTP/2 forbids: mod_http2 resets the stream with HTTP_1_1_REQUIRED,
    curl retries on HTTP/1.1, renegotiates, and the transition works
    there. (Browsers do the same on that error.)"""
    node = h2_front(extra=f"""
SSLCACertificateFile "{test_ca.pem}"
SSLVerifyDepth 2
SSLUserName SSL_CLIENT_S_DN_CN
KdelegUserRealm {kdc.realm}
<Location /cert/>
    SSLVerifyClient require
    Require valid-user
    KdelegProtocolTransition On
    KdelegProxyNegotiate HTTP/{kdc.host('backend')}
    ProxyPass http://127.0.0.4:{kdc_backend.port}/private/cgi/
</Location>
""")
    cert, key = test_ca.issue_client("client-alice", "alice")
    status, version, head, body = curl(node, "/cert/env.cgi", "--cert", cert, "--key", key,
                                       "-v")
    assert (status, version) == (200, "1.1"), (head, body)
    assert "HTTP_1_1_REQUIRED" in head
    assert kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")


def test_prefork_gets_no_http2(h2_front, kdc, kdc_alice):
    """mod_http2 does not run under prefork: it says so at start (AH10034),
    ALPN offers http/1.1 only, and SSO goes on over HTTP/1.1."""
    node = h2_front(mpm="prefork")
    node.allowed.add("AH10034")
    status, version, _, body = curl(node, "/private/cgi/env.cgi", ccache=kdc_alice, realm=kdc.r)
    assert (status, version) == (200, "1.1"), body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")
    assert any("AH10034" in l for l in node.error_log_since(node.start_mark))


# ------------------------------------------------------------ one connection, many users

def user_header(headers):
    return headers.get("x-user")


def own_session(headers):
    """The __Host-kdeleg_session=VALUE pair a response set, or None."""
    m = re.search(r"(__Host-kdeleg_session=[^;]+);", headers.get("set-cookie", ""))
    return m.group(1) if m else None


def test_streams_of_different_users_never_share_an_identity(h2_front, kdc, tgts):
    """One TLS connection, ALPN h2. Round 1: every stream leaves in one
    write, interleaved: tokens of alice, bob and carol (static page and
    CGI), no token, a bad token, each three times. Each 200 names its own
    user, with a mutual-authentication reply that completes that user's own
    context; tokenless and bad streams get 401 with a bare challenge and
    nothing of anyone. Round 2, same connection: each user's session cookie
    opens as that user, a replayed token of alice is refused, a stream with
    no credentials is still challenged, and a token beats another user's
    cookie."""
    node = h2_front()
    with h2(node) as c:
        sent = []   # (stream id, who: user / "none" / "bad", token or None)
        for _ in range(3):
            for user in USERS:
                for path in (WHOAMI, "/private/cgi/env.cgi"):
                    tok = kdclient.Token(tgts[user], kdc.host("node1"))
                    sent.append((c.send(path, {"authorization": tok.header}, flush=False),
                                 user, tok, path))
            sent.append((c.send(WHOAMI, flush=False), "none", None, WHOAMI))
            sent.append((c.send(WHOAMI, {"authorization": bad_token()}, flush=False),
                         "bad", None, WHOAMI))
        got = c.responses([sid for sid, _, _, _ in sent])
        sessions = {}
        for sid, who, tok, path in sent:
            status, headers, body = got[sid]
            if who in USERS:
                assert status == 200, (who, status, body[:300])
                assert user_header(headers) == kdc.user(who), (sid, who, headers)
                assert headers["x-kdeleg-method"] == "kerberos"
                if path != WHOAMI:
                    env = kdclient.cgi_env(body)
                    assert env["REMOTE_USER"] == kdc.user(who) and env["HTTP2"] == "on"
                    assert env["H2_STREAM_ID"] == str(sid)
                # this user's own reply token: another stream's would not verify
                assert tok.finish(headers["www-authenticate"]), (who, headers)
                sessions.setdefault(who, own_session(headers))
            else:
                assert status == 401, (who, status)
                assert headers["www-authenticate"] == "Negotiate", (who, headers)
                assert "x-user" not in headers and own_session(headers) is None
        assert all(sessions[u] for u in USERS) and len(set(sessions.values())) == len(USERS)

        replayed = next(t for _, who, t, _ in sent if who == "alice")
        round2 = [(c.send(WHOAMI, {"cookie": sessions[u]}, flush=False), u) for u in USERS]
        round2.append((c.send(WHOAMI, {"authorization": replayed.header}, flush=False),
                       "replay"))
        round2.append((c.send(WHOAMI, flush=False), "none"))
        # HTTP/2 lets a client split Cookie into several fields (RFC 9113
        # 8.2.3): bob's session among other cookies, in a field of its own
        round2.append((c.send(WHOAMI, {"cookie": ["a=1", sessions["bob"], "b=2"]}, flush=False),
                       "bob-split-cookie"))
        bob_token = kdclient.Token(tgts["bob"], kdc.host("node1"))
        round2.append((c.send(WHOAMI, {"cookie": sessions["alice"],
                                       "authorization": bob_token.header}, flush=False),
                       "bob-token-alice-cookie"))
        got = c.responses([sid for sid, _ in round2])
    for sid, who in round2:
        status, headers, _ = got[sid]
        if who in USERS:
            assert (status, user_header(headers)) == (200, kdc.user(who)), (who, headers)
            assert headers["x-kdeleg-method"] == "session"
        elif who == "bob-split-cookie":
            assert (status, user_header(headers)) == (200, kdc.user("bob")), headers
            assert headers["x-kdeleg-method"] == "session"
        elif who == "bob-token-alice-cookie":
            assert (status, user_header(headers)) == (200, kdc.user("bob")), headers
            assert headers["x-kdeleg-method"] == "kerberos"
        else:
            assert status == 401 and "x-user" not in headers, (who, status, headers)
    assert "replay" in kdclient.causes(node.error_log_since(node.start_mark))


def test_delegation_on_one_connection_stays_per_user(h2_front, kdc, tgts, kdc_backend):
    """Delegation through KdelegProxyNegotiate for alice and bob on
    interleaved streams of one connection: one stream each, then two each
    from the ticket cache. The back end sees each stream's own user, never
    the other's ticket. (Concurrent first misses of one user would each ask
    the KDC: the cache is filled, not locked, hence the warm-up round.)"""
    node = h2_front()
    mark = kdc.r.kdc_log_mark()
    with h2(node) as c:
        for per_user in (1, 2):
            sent = []
            for _ in range(per_user):
                for user in ("alice", "bob"):
                    tok = kdclient.Token(tgts[user], kdc.host("node1"))
                    sent.append((c.send("/deleg/env.cgi", {"authorization": tok.header},
                                        flush=False), user))
            got = c.responses([sid for sid, _ in sent])
            for sid, user in sent:
                status, _, body = got[sid]
                assert status == 200, (user, body[:300])
                env = kdclient.cgi_env(body)
                assert env["REMOTE_USER"] == kdc.user(user), (sid, user, env.get("REMOTE_USER"))
                assert env["KDELEG_SPN"] == kdc.spn("backend")
    lines = kdc.r.kdc_log_since(mark)
    # one S4U2Proxy per user: the other two streams of each came from the cache
    assert [len(kdc.s4u2proxy(lines, "HTTP/backend", u)) for u in ("alice", "bob")] == [1, 1]


# ------------------------------------------------------------ the FQDN fallback

@pytest.fixture
def h2_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, test_ca):
    """haproxy passing TLS through to node2, which speaks h2 and lacks the
    VIP's key: every VIP ticket needs the fallback."""
    return make_tls_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, test_ca,
                         "passthrough", nodes=(("node2", node_only_keytab(kdc, "node2")),),
                         extra="Protocols h2 http/1.1\n", modules=("http2",))


@pytest.mark.parametrize("proto", ["2", "1.1"])
def test_fqdn_fallback_with_curl(h2_site, kdc, kdc_alice, lab_dir, proto):
    """curl through haproxy (TLS passed through, ALPN end to end) to the
    VIP: redirected to node2's own name, Kerberos there, the transfer
    token back to the VIP, the page as alice by session; every request of
    the chain on HTTP/2 (and, for contrast, all on HTTP/1.1). curl sends
    its Negotiate token unasked, also with the transfer token on the way
    back, for the VIP this node cannot serve: the transfer token is
    redeemed first (it was not, and the way back ended in 500)."""
    site, node = h2_site, h2_site.nodes[0]
    jar = os.path.join(lab_dir, f"jar-830-fallback-{kdc.kind}-{proto}.txt")
    marks, amark = site.marks(), access_mark(node)
    vip, port = kdc.host("vip"), site.proxy.port
    proc = subprocess.run(
        ["curl", "-s", f"--http{proto}", "--cacert", site.cafile, "--negotiate", "-u", ":",
         "-L", "--location-trusted", "-c", jar, "-b", jar,
         "-w", "\n%{http_code} %{http_version} %{num_redirects} %{url_effective}",
         "--resolve", f"{vip}:{port}:{site.proxy.ip}",
         "--resolve", f"{kdc.host('node2')}:{port}:{node.ip}",
         site.url("/private/cgi/env.cgi?a=1")],
        env=kdc.r.env(kdc_alice), capture_output=True, text=True, timeout=60)
    body, _, tail = proc.stdout.rpartition("\n")
    code, version, redirects, effective = tail.split()
    assert (code, version) == ("200", proto), proc.stdout
    assert effective == site.url("/private/cgi/env.cgi?a=1") and int(redirects) == 3
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice") and env["KDELEG_AUTH_METHOD"] == "session"
    assert env["QUERY_STRING"] == "a=1" and (env.get("HTTP2") == "on") == (proto == "2")
    assert len(site.lines(marks, "KD00701")) == 1 and len(site.lines(marks, "KD00709")) == 1
    lines = h2_lines(node, amark, want=4)
    want = " HTTP/2.0" if proto == "2" else " HTTP/1.1"
    assert len(lines) == 4 and all(r.endswith(want) for r, _, _ in lines), lines
    # the last request carried the cookie and, unasked, the VIP token again:
    # the session served, the token's failure is logged and counted
    instead = site.lines(marks, "KD00712")
    assert len(instead) == 1
    cause = re.search(r"\(cause ([a-z-]+)\)", instead[0][2]).group(1)
    assert kdclient.status(node)["recent_failures"][0]["cause"] == cause


pytestmark_chromium = pytest.mark.skipif(not os.path.exists(kdclient.CHROMIUM),
                                         reason="Debian chromium is not installed "
                                                "(t/install-deps)")


def page_env(dom):
    """env.cgi's text/plain output as Chromium renders it (inside <pre>)."""
    text = re.sub(r"<[^>]+>", "\n", dom)
    return kdclient.cgi_env(text.replace("&amp;", "&"))


def test_balancer_terminating_tls_speaks_http2_nodes_see_http11(
        kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, test_ca, kdc_alice):
    """The other layout: haproxy terminates TLS and offers h2 to clients
    (alpn h2,http/1.1); the nodes get HTTP/1.1 and learn the scheme from
    ServerName https://vip:port. curl --http2 to the VIP: HTTP/2 on the
    client's side, HTTP/1.1 in the nodes' logs, SSO and then the session
    on both nodes."""
    site = make_tls_site(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, test_ca,
                         "terminate", proxy_options={"h2": True})
    jar = os.path.join(lab_dir, f"jar-830-terminate-{kdc.kind}.txt")
    amarks = [access_mark(n) for n in site.nodes]
    vip, port = kdc.host("vip"), site.proxy.port
    served = []
    for i in range(3):
        auth = ["--negotiate", "-u", ":"] if i == 0 else []
        proc = subprocess.run(
            ["curl", "-s", "--http2", "--cacert", site.cafile, *auth, "-c", jar, "-b", jar,
             "-w", "\n%{http_code} %{http_version}",
             "--resolve", f"{vip}:{port}:{site.proxy.ip}", site.url("/private/cgi/env.cgi")],
            env=kdc.r.env(kdc_alice), capture_output=True, text=True, timeout=30)
        body, _, tail = proc.stdout.rpartition("\n")
        assert tail == "200 2", proc.stdout
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == kdc.user("alice") and "HTTP2" not in env
        assert env["KDELEG_AUTH_METHOD"] == ("kerberos" if i == 0 else "session")
        served.append(env["SERVER_ADDR"])
    assert len(set(served)) == 2                       # round robin: both nodes served
    deadline = time.monotonic() + 5
    while True:   # each node logs after its response went out
        lines = [l for n, m in zip(site.nodes, amarks) for l in h2_lines(n, m, want=0)]
        if len(lines) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 3 and all(r.endswith(" HTTP/1.1") for r, _, _ in lines), lines


def chromium_protocols(lines):
    """Chromium's requests as (protocol, status, carried a user), in order."""
    return [(r.rsplit(" ", 1)[1], status, user != "-") for r, status, user in lines]


@pytestmark_chromium
def test_chromium_follows_the_fallback_over_http2(h2_site, kdc, kdc_alice, lab_dir, test_ca):
    """Headless Chromium, trusting the lab CA, to the bookmarked VIP URL: the
    node's name, Kerberos there, the way back, the page as alice. What
    Chromium 156 does with h2 (recorded): the first request to each origin
    goes out on h2 (ALPN); on the 401 Negotiate challenge Chromium marks
    the origin "HTTP/1.1 required" (Negotiate is a connection-based scheme
    to it: net/http PrepareForAuthRestart, SetHTTP11Required) and, as a
    rule, sends the token and every later request on a new HTTP/1.1
    connection; once (in the first 16 runs, not in some 50 since) the token
    still went on the open h2 connection. Either way the module answers the
    same, and this test accepts both."""
    site, node = h2_site, h2_site.nodes[0]
    marks, amark = site.marks(), access_mark(node)
    dom = kdclient.chromium(kdc.r, kdc_alice, site.resolve, site.url("/private/cgi/env.cgi?a=1"),
                            lab_dir, cafile=test_ca.pem)
    env = page_env(dom)
    assert env.get("REMOTE_USER") == kdc.user("alice"), dom[:2000]
    assert env["KDELEG_AUTH_METHOD"] == "session" and env["QUERY_STRING"] == "a=1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1" and "HTTP2" not in env
    assert len(site.lines(marks, "KD00701")) == 1 and len(site.lines(marks, "KD00709")) == 1
    seen = chromium_protocols([l for l in h2_lines(node, amark, want=6)
                               if "/private/" in l[0]])
    # VIP: 401, 302 to the node; node: 401, 302 back as alice; VIP: 302
    # (token redeemed), 200. Sorted: a line may be logged after the next
    # request's, when Chromium follows a redirect at once.
    assert sorted((s, u) for _, s, u in seen) == [(200, True), (302, False), (302, False),
                                                  (302, True), (401, False), (401, False)], seen
    # each origin's first request, the challenged one, went out on h2
    assert [p for p, s, _ in seen if s == 401] == ["HTTP/2.0", "HTTP/2.0"], seen
    assert {p for p, _, _ in seen} <= {"HTTP/2.0", "HTTP/1.1"}


@pytestmark_chromium
def test_chromium_reaches_the_back_end_over_http2(h2_front, kdc, kdc_alice, lab_dir, test_ca):
    """Chromium to a KdelegProxyNegotiate location on the h2 node: the back
    end's page as alice. The challenge went out on h2, the token as a rule
    on HTTP/1.1 (see above)."""
    node = h2_front()
    amark = access_mark(node)
    dom = kdclient.chromium(kdc.r, kdc_alice, {kdc.host("node1"): node.ip},
                            f"https://{kdc.host('node1')}:{node.port}/deleg/env.cgi",
                            lab_dir, cafile=test_ca.pem)
    env = page_env(dom)
    assert env.get("REMOTE_USER") == kdc.user("alice"), dom[:2000]
    assert env["KDELEG_SPN"] == kdc.spn("backend")
    seen = chromium_protocols([l for l in h2_lines(node, amark, want=2) if "/deleg/" in l[0]])
    by_status = {s: (p, u) for p, s, u in seen}   # in whichever order they were logged
    assert len(seen) == 2 and by_status[401] == ("HTTP/2.0", False), seen
    assert by_status[200][1] is True, seen


# ------------------------------------------------------------ header size (big PACs)

@pytest.mark.parametrize("limit, user, expected", [
    (8190, "biggroups", 431),      # httpd's default limit: mod_http2 answers 431
    (None, "biggroups", 200),      # the lab's LimitRequestFieldSize 131072
    (None, "hugegroups", 200),
])
def test_big_pac_tokens_over_http2(h2_front, kdc, limit, user, expected):
    """Users in many groups (AD only: the MIT KDC issues no PAC) over h2.
    mod_http2 checks each header against LimitRequestFieldSize as httpd
    does on HTTP/1.1 (name + 2 + value), but answers 431, not 400, and
    logs AH10180 at info; mod_kdeleg sees nothing. With the limit raised,
    the 650-group (8,949-byte) and 3000-group (34,021-byte) headers pass
    HPACK and authenticate; the other streams on the connection go on."""
    if kdc.kind != "ad":
        pytest.skip("the MIT KDC issues no PAC: a user's groups do not grow its ticket")
    node = h2_front(extra=f"LimitRequestFieldSize {limit}\n" if limit else "")
    if user == "hugegroups":
        node.allowed.add("KD00726")   # too many groups for a session cookie
    ccache = kdc.r.kinit(user, kdc.r.path("ccache", f"{user}-830.cc"))
    alice = kdc.r.kinit("alice", kdc.r.path("ccache", "alice-830-big.cc"))
    mark = node.error_log_mark()
    big = kdclient.Token(ccache, kdc.host("node1"))
    assert len("authorization: " + big.header) > 8190
    with h2(node) as c:
        ids = [c.send(WHOAMI, {"authorization": big.header}, flush=False),
               c.send(WHOAMI, {"authorization": kdclient.Token(alice, kdc.host("node1")).header})]
        got = c.responses(ids)
    status, headers, _ = got[ids[0]]
    assert status == expected, (status, headers)
    if expected == 200:
        assert headers["x-user"] == kdc.user(user)
    else:
        assert "x-user" not in headers
        assert any("AH10180" in l for l in node.error_log_since(mark))
        assert not kdclient.kd_lines(node.error_log_since(mark), "KD00301")
    assert got[ids[1]][0] == 200 and got[ids[1]][1]["x-user"] == kdc.user("alice")


def test_header_beyond_64k_ends_the_connection(h2_front, kdc):
    """A header field whose HPACK encoding passes 64 KiB never reaches
    httpd over h2, whatever LimitRequestFieldSize says: nghttp2 (under
    mod_http2) refuses the header block and ends the whole connection with
    COMPRESSION_ERROR (9), every stream on it. Base64 Huffman-codes to
    about 6.5 bits a character, so this is a token of about 60,700 bytes
    (81,000 characters); mod_kdeleg takes up to 65,535 (87,380), and
    Windows' default MaxTokenSize is 48,000. Shown with token-sized
    headers of 60,000 and 64,000 random bytes; over HTTP/1.1 both are read
    (and refused as no Kerberos token). No KDC needed."""
    if kdc.kind != "mit":
        pytest.skip("no KDC involved: the MIT run shows it")
    node = h2_front()
    rnd = random.Random(830)
    fits, too_big = ("Negotiate " + base64.b64encode(rnd.randbytes(n)).decode()
                     for n in (60000, 64000))
    with h2(node) as c:
        sid = c.send(WHOAMI, {"authorization": fits})
        assert c.responses([sid])[sid][0] == 401        # read, and refused
        sid = c.send(WHOAMI, {"authorization": too_big})
        with pytest.raises(AssertionError, match="ended the connection"):
            c.responses([sid])
        assert c.closed.error_code == 9, c.closed       # COMPRESSION_ERROR
    for header in (fits, too_big):
        assert kdclient.request(node, WHOAMI, headers={"Authorization": header})[0] == 401
