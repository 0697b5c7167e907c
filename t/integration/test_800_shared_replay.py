"""The farm's shared replay check (issue 17, item 1): KdelegReplayCache with
a memcached or redis store that every node claims each authenticator in,
atomically (memcached add, redis SET NX EX), behind the node's own table.

Topology (kdsite): haproxy on 127.0.0.10 as vip.<domain>, node1 (127.0.0.2)
and node2 (127.0.0.3) on one port; the store on 127.0.0.11, a real
memcached or redis-server started by PID.

What each test shows could fail: without the store, a token used on node1
is accepted again on node2 (test_without_store_node2_accepts_the_copy), which
is exactly what the shared check closes."""

import base64
import concurrent.futures
import re
import time
import urllib.parse

import pytest

import kdclient
import kdlab
from conftest import Kdc, negotiate_conf
from kdnames import BACKEND_IP, EXPECTED, KEY_A, KEY_B, NODE2_IP, PROXY_MODULES, STORE_IP
from kdsite import cache_key_file, key_file, lb_conf, make_site

# Lines these tests provoke on purpose: the store down (KD00301 names the
# cause), start-up warnings about the store.
STORE_LINES = {"KD00604", "KD00605", "KD00606", "KD00852"}
HEALTH = """
<Location /kdeleg-health>
    SetHandler kdeleg-health
    Require ip 127.0.0.0/8
</Location>
"""
KEY_LINE = re.compile(r"^kdeleg:r:[0-9a-f]{32}$")


@pytest.fixture
def mit(realm):
    """The MIT realm, for what does not depend on the KDC (the store's
    behaviour); the tests of acceptance run on both KDCs."""
    return Kdc(realm)


@pytest.fixture
def mit_backend(kd_httpd, mit):
    return kd_httpd("backend", BACKEND_IP, server_name=mit.host("backend"), env=mit.r.env(),
                    conf_fn=lambda d: negotiate_conf(mit.r, d, "backend"))


def farm(kd_httpd, haproxy_factory, kdc, lab_dir, backend, store, keys=(KEY_A,), nodes=None):
    conf = HEALTH + (f"KdelegReplayCache {store.spec}\n" if store else "")
    if keys:
        conf += f"KdelegCacheKeyFile {cache_key_file(lab_dir, 'farm-800', *keys)}\n"
    return make_site(kd_httpd, haproxy_factory, kdc, lab_dir, backend, nodes=nodes,
                     extra=conf, expected=STORE_LINES)


def token(site, ccache):
    return kdclient.Token(ccache, site.kdc.host("vip")).header


def send(site, node, auth):
    return site.direct(node, None)._send(site.url("/private/cgi/env.cgi"), auth)


def store_keys(store):
    """The claims in the store (redis lists them; memcached only counts).
    Besides them the store holds one entry the module writes on purpose,
    kdeleg:farm-keys: the fingerprints of the writer's keys, so that nodes
    with different key files are found out (test_850)."""
    if store.kind == "redis":
        reply = store.command("KEYS", "kdeleg:r:*")
        return [l for l in reply.split("\r\n")[1:] if l and not l.startswith("$")]
    marker = "VALUE" in store.command("get kdeleg:farm-keys\r\n")
    return int(store.stats()["curr_items"]) - marker


def claims(store):
    keys = store_keys(store)
    return len(keys) if store.kind == "redis" else keys


@pytest.mark.parametrize("kind", ["memcache", "redis"])
def test_token_replayed_on_the_other_node_is_refused(kd_httpd, haproxy_factory, kdc, lab_dir,
                                                     kdc_backend, kdc_alice, store_factory,
                                                     kind):
    store = store_factory(kind)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, store)
    node1, node2 = site.nodes
    auth = token(site, kdc_alice)
    status, _, body = send(site, node1, auth)
    assert status == 200 and f"REMOTE_USER={kdc.user('alice')}" in body
    marks = site.marks()
    status, headers, _ = send(site, node2, auth)
    assert status == 401
    assert kdclient.causes(node2.error_log_since(marks[1])) == ["replay"]
    assert "seen before in the farm" in "\n".join(node2.error_log_since(marks[1]))
    # Nothing in the store names the user, the service or the token.
    keys = store_keys(store)
    if kind == "redis":
        assert keys and all(KEY_LINE.match(k) for k in keys), keys
        assert int(store.command("TTL", keys[0]).strip(":\r\n")) > 600
    else:
        assert keys >= 1
    # A fresh token still works on node2: only the copy is refused.
    status, _, _ = send(site, node2, token(site, kdc_alice))
    assert status == 200


def test_without_store_node2_accepts_the_copy(kd_httpd, haproxy_factory, kdc, lab_dir,
                                              kdc_backend, kdc_alice):
    """The gap the store closes: each node's table alone lets a copy
    through on the other node within the clock skew."""
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, None, keys=())
    node1, node2 = site.nodes
    auth = token(site, kdc_alice)
    assert send(site, node1, auth)[0] == 200
    assert send(site, node2, auth)[0] == 200
    assert send(site, node2, auth)[0] == 401  # the node's own table


@pytest.mark.parametrize("kind", ["memcache", "redis"])
def test_copies_raced_to_both_nodes_are_accepted_once(kd_httpd, haproxy_factory, mit,
                                                      lab_dir, mit_backend, alice_ccache,
                                                      store_factory, kind):
    """A man-in-the-middle sends the same token to both nodes at once: the
    atomic claim lets exactly one through, round after round."""
    kdc = mit
    store = store_factory(kind)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, mit_backend, store)
    node1, node2 = site.nodes
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(15):
            auth = token(site, alice_ccache)
            results = list(pool.map(lambda n: send(site, n, auth)[0], (node1, node2)))
            assert sorted(results) == [200, 401], results


def wait_until_served(site, node, ccache, timeout=15):
    """Poll with fresh tokens until node serves again; the statuses seen."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = send(site, node, token(site, ccache))[0]
        seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"not served again within {timeout} s: {seen}")


@pytest.mark.parametrize("kind", ["memcache", "redis"])
def test_store_down_fails_closed_and_recovers(kd_httpd, haproxy_factory, kdc, lab_dir,
                                              kdc_backend, kdc_alice, store_factory, kind):
    store = store_factory(kind)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, store)
    node1 = site.nodes[0]
    assert send(site, node1, token(site, kdc_alice))[0] == 200
    store.kill()
    marks = site.marks()
    status, headers, _ = send(site, node1, token(site, kdc_alice))
    assert status == 503 and headers.get("retry-after") == "5"
    lines = node1.error_log_since(marks[0])
    assert kdclient.causes(lines) == ["shared-store-down"]
    assert store.spec in "\n".join(lines)  # the log names the store
    # Restarted on the same port: served again with no httpd restart.
    pid = node1.pid
    store.start()
    seen = wait_until_served(site, node1, kdc_alice)
    assert set(seen) <= {200, 503}
    assert node1.pid == pid


@pytest.mark.parametrize("kind", ["memcache", "redis"])
def test_killed_under_load_applies_the_policy_then_recovers(kd_httpd, haproxy_factory, mit,
                                                            lab_dir, mit_backend, alice_ccache,
                                                            store_factory, kind):
    """Requests keep coming while the store is killed and restarted: each
    is either served (claimed) or refused 503; none is served unchecked
    while the store is down, and service comes back by itself."""
    kdc = mit
    store = store_factory(kind)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, mit_backend, store)
    node1 = site.nodes[0]
    tokens = [token(site, alice_ccache) for _ in range(90)]
    results = []
    for i, auth in enumerate(tokens):
        if i == 30:
            store.kill()
        if i == 60:
            store.start()
        results.append(send(site, node1, auth)[0])
        if 30 <= i < 60:
            assert results[-1] == 503, results  # never served while the store is dead
    assert results[:30] == [200] * 30
    assert set(results) <= {200, 503}
    after = results[60:] + wait_until_served(site, node1, alice_ccache)
    # Every token served since the restart was claimed in the store.
    assert claims(store) == after.count(200)


def test_stalled_store_times_out(kd_httpd, haproxy_factory, mit, lab_dir, mit_backend,
                                 alice_ccache, store_factory):
    """A store that accepts and never answers (SIGSTOP) holds no login
    for long: 503 after the store timeout, then at once while held down."""
    kdc = mit
    store = store_factory("memcache")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, mit_backend, store)
    node1 = site.nodes[0]
    assert send(site, node1, token(site, alice_ccache))[0] == 200
    store.pause()
    try:
        t0 = time.monotonic()
        assert send(site, node1, token(site, alice_ccache))[0] == 503
        assert time.monotonic() - t0 < 5
    finally:
        store.resume()
    wait_until_served(site, node1, alice_ccache)


def test_full_redis_refuses_rather_than_evicts(kd_httpd, haproxy_factory, mit, lab_dir,
                                               mit_backend, alice_ccache, store_factory):
    """redis with maxmemory-policy noeviction, full: the claim is refused
    with redis's own OOM error, and so is the login (503), instead of a
    live claim being evicted to make room."""
    kdc = mit
    store = store_factory("redis", maxmemory="64mb")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, mit_backend, store)
    node1 = site.nodes[0]
    assert send(site, node1, token(site, alice_ccache))[0] == 200
    # Fill it, then hold it full: the limit goes below what it holds, so
    # the freeing of a client's buffers cannot make room by chance.
    for i in range(16):
        assert store.command("SET", f"filler{i}", "x" * 65536).startswith("+OK")
    assert store.command("CONFIG", "SET", "maxmemory", "1mb").startswith("+OK")
    assert store.command("SET", "probe", "1", "NX", "EX", "60").startswith("-OOM")
    marks = site.marks()
    assert send(site, node1, token(site, alice_ccache))[0] == 503
    lines = "\n".join(node1.error_log_since(marks[0]))
    assert "cause shared-store-down" in lines and "OOM" in lines


@pytest.mark.parametrize("kind,evicting", [("memcache", False), ("memcache", True),
                                           ("redis", False), ("redis", True)])
def test_a_store_that_may_evict_is_named_at_start(kd_httpd, haproxy_factory, mit, lab_dir,
                                                  mit_backend, store_factory, kind, evicting):
    kdc = mit
    kw = ({"no_evict": not evicting} if kind == "memcache"
          else {"policy": "allkeys-lru" if evicting else "noeviction"})
    store = store_factory(kind, **kw)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, mit_backend, store,
                nodes=(("node1", "node1"),))
    lines = site.nodes[0].error_log_since(0)
    warned = [m for _, _, m in kdclient.kd_lines(lines, "KD00605") if store.spec in m]
    assert bool(warned) == evicting, lines
    if evicting:
        assert "-M" in warned[0] and "noeviction" in warned[0]


def test_store_down_at_start_is_said_and_not_fatal(kd_httpd, haproxy_factory, mit, lab_dir,
                                                   mit_backend, alice_ccache, store_factory):
    kdc = mit
    store = kdlab.Memcached(lab_dir, STORE_IP, name="memcache-800-late")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, mit_backend, store,
                nodes=(("node1", "node1"),))
    node1 = site.nodes[0]
    assert [m for _, _, m in kdclient.kd_lines(node1.error_log_since(0), "KD00604")
            if store.spec in m]
    assert send(site, node1, token(site, alice_ccache))[0] == 503
    try:
        store.start()
        wait_until_served(site, node1, alice_ccache)
    finally:
        store.stop()


def test_rotation_keeps_the_check_between_old_and_new_key_files(
        kd_httpd, haproxy_factory, mit, lab_dir, mit_backend, alice_ccache, store_factory):
    """Mid-rotation node1 has [new, old] and node2 [old]: a claim is made
    under every key, so the key they share still catches the copy."""
    kdc = mit
    store = store_factory("redis")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, mit_backend, store, keys=(KEY_B, KEY_A),
                nodes=(("node1", "node1"),))
    node1 = site.nodes[0]
    port = node1.port
    old_only = cache_key_file(lab_dir, "farm-800-old", KEY_A)
    node2 = kd_httpd("node2", NODE2_IP, server_name=kdc.host("node2"), port=port,
                     env=kdc.r.env(), extra_modules=PROXY_MODULES,
                     conf_fn=lambda d: lb_conf(kdc, d, "node2", kdc.host("node2"), port,
                                               key_file(lab_dir), mit_backend,
                                               f"KdelegReplayCache {store.spec}\n"
                                               f"KdelegCacheKeyFile {old_only}\n"))
    node2.allowed |= EXPECTED | STORE_LINES
    auth = token(site, alice_ccache)
    assert send(site, node1, auth)[0] == 200
    assert send(site, node2, auth)[0] == 401
    assert claims(store) == 2  # one claim per key of node1's file


@pytest.mark.parametrize("conf,expect", [
    ("KdelegReplayCache redis:127.0.0.11:6390\n", "KD00607"),
    ("KdelegReplayCache off redis:127.0.0.11:6390\n", "needs the node's table in front"),
    ("KdelegReplayCache 16M 32M\n", "one size"),
    ("KdelegReplayCache redis:127.0.0.11\n", "HOST:PORT"),
    ("KdelegReplayCache shmcb:1\n", "a size between"),
])
def test_bad_configurations_refuse_to_start(realm, module_path, conf, expect):
    httpd = kdlab.Httpd(realm.base, "badstore", "127.0.0.7", module_path=module_path, conf=conf)
    mark = httpd.error_log_mark()
    with pytest.raises(kdlab.LabError) as e:
        httpd.start(realm.env())
    httpd.stop()
    out = str(e.value) + "\n".join(httpd.error_log_since(mark))
    assert expect in out


def test_transfer_token_is_good_once_per_farm(kd_httpd, haproxy_factory, kdc, lab_dir,
                                              kdc_backend, kdc_alice, store_factory):
    """The FQDN fallback's transfer token, redeemed on one node and replayed
    (with the browser's own state cookie) on the other: refused, because
    its id was claimed in the farm's store. Per node only, the other node
    would have accepted it once more (test_740 documents that case)."""
    store = store_factory("redis")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend, store)
    vip = kdc.host("vip")
    b = site.browser(kdc_alice, ntlm_hosts={vip})
    assert b._send(site.url("/private/cgi/env.cgi?x=1"))[0] == 401
    ntlm = "Negotiate " + base64.b64encode(kdclient.ntlm_type1()).decode()
    status, headers, _ = b._send(site.url("/private/cgi/env.cgi?x=1"), ntlm)
    assert status == 302
    node_url, state = headers["location"], b.cookie("kdeleg_state")[0]
    host = urllib.parse.urlsplit(node_url).hostname
    assert b._send(node_url)[0] == 401
    status, headers, _ = b._send(node_url, kdclient.Token(kdc_alice, host).header)
    assert status == 302
    back = headers["location"]
    assert "kdeleg-transfer=" in back
    first, second = site.nodes
    cookies = {"Cookie": f"kdeleg_state={state}"}
    status, headers, _ = site.direct(first, None)._send(back, extra=cookies)
    assert status == 302 and "kdeleg_session=" in headers["set-cookie"]
    mark = second.error_log_mark()
    status, headers, _ = site.direct(second, None)._send(back, extra=cookies)
    assert status == 401 and "kdeleg_session=" not in headers.get("set-cookie", "")
    refused = kdclient.kd_lines(second.error_log_since(mark), "KD00703")
    assert refused and "used before on another node" in refused[0][2], refused


@pytest.mark.parametrize("kind", ["memcache", "redis"])
def test_health_follows_the_store(kd_httpd, haproxy_factory, mit, lab_dir, mit_backend,
                                  store_factory, kind):
    """The balancer's health check says 503 while the store is down (every
    login there would be refused), and 200 again once it is back."""
    store = store_factory(kind)
    site = farm(kd_httpd, haproxy_factory, mit, lab_dir, mit_backend, store,
                nodes=(("node1", "node1"),))
    node1 = site.nodes[0]

    def health():
        return site.direct(node1, None)._send(site.url("/kdeleg-health"))[0]
    assert health() == 200
    store.kill()
    mark = node1.error_log_mark()
    assert health() == 503
    down = kdclient.kd_lines(node1.error_log_since(mark), "KD00852")
    assert down and "shared-store-down" in down[0][2] and store.spec in down[0][2]
    store.start()
    deadline = time.monotonic() + 15
    while health() != 200:
        assert time.monotonic() < deadline, "health never came back"
        time.sleep(0.2)
