"""The farm's ticket cache and logouts (issue 17, item 2): KdelegCache on a
real memcached or redis shared by two nodes behind haproxy, sealed with keys
derived from KdelegCacheKeyFile; KdelegCacheMaxLifetime; logouts shared
through the replay store (KdelegRevocationCheckInterval); nodes whose key
files share no key (farm-key-mismatch).

Topology (kdsite): haproxy on 127.0.0.10 as vip.<domain>, node1 (127.0.0.2)
and node2 (127.0.0.3), the back end on 127.0.0.4 (a Negotiate-protected
CGI behind /deleg/ with KdelegProxyNegotiate), the store on 127.0.0.11.

The gap each feature closes is shown too: with the node's own cache, each
node asks the KDC (test_720 counts one S4U2Proxy per node); without a
shared store, a logout holds on its node only."""

import re
import time

import pytest

import kdclient
import kdlab
from conftest import Kdc, negotiate_conf
from kdnames import BACKEND_IP, KEY_A, KEY_B
from kdsite import cache_key_file, make_site

LOGOUT = """
KdelegSessionLogout /logout
<Location /logout>
    Require all granted
</Location>
<Location /kdeleg-health>
    SetHandler kdeleg-health
    Require ip 127.0.0.0/8
</Location>
"""
# Provoked on purpose: the store down at start-up or later (KD00604,
# KD00506), a logout the store did not take (KD00728), health going down
# (KD00852), delegation refused for a misconfigured account (KD00402/00410).
FARM_LINES = {"KD00604", "KD00605", "KD00606", "KD00506", "KD00728", "KD00852", "KD00402",
              "KD00301", "KD00401", "KD00410"}
TICKET_KEY = re.compile(r"^kdeleg:t:[0-9a-f]{32}$")


@pytest.fixture
def mit(realm):
    return Kdc(realm)


def farm(kd_httpd, haproxy_factory, kdc, lab_dir, backend, extra, keys=(KEY_A,), node2_extra=""):
    """Both nodes with the same configuration (plus node2_extra on node2)."""
    conf = extra + f"KdelegCacheKeyFile {cache_key_file(lab_dir, 'farm-850', *keys)}\n"
    return make_site(kd_httpd, haproxy_factory, kdc, lab_dir, backend, expected=FARM_LINES,
                     extra=lambda d: conf + (node2_extra if d.rstrip("/").endswith("node2")
                                             else ""))


def deleg(site, node, ccache):
    """A delegated request on one node, with a fresh token: (status, env)."""
    b = site.direct(node, ccache)
    status, _, body = b.get(site.url("/deleg/env.cgi"))
    return status, (kdclient.cgi_env(body) if status == 200 else body)


def audits(node, mark):
    return [m for _, _, m in kdclient.kd_lines(node.error_log_since(mark), "KD00410")]


@pytest.mark.parametrize("kind", ["memcache", "redis"])
def test_one_s4u2proxy_for_the_whole_farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                                          kdc_alice, store_factory, kind):
    store = store_factory(kind, no_evict=False) if kind == "memcache" else store_factory(kind)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                f"KdelegCache {store.spec}\n")
    node1, node2 = site.nodes
    kmark, marks = kdc.r.kdc_log_mark(), site.marks()
    for node in (node1, node2, node1):
        status, env = deleg(site, node, kdc_alice)
        assert status == 200, env
        assert env["REMOTE_USER"] == kdc.user("alice")      # the back end saw alice
    s4u = kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "HTTP/backend")
    assert len(s4u) == 1, s4u                               # one for the farm, not per node
    assert kdc.requested_by(s4u[0]) == kdc.impersonator("vip")
    assert [a.split("via=")[1] for a in audits(node1, marks[0])] == ["kdc", "cache"]
    assert [a.split("via=")[1] for a in audits(node2, marks[1])] == ["cache"]  # node1's ticket
    # Nothing in the store names the user or holds the ticket in clear.
    if kind == "redis":
        reply = store.command("KEYS", "kdeleg:*")
        keys = [l for l in reply.split("\r\n")[1:] if l and not l.startswith("$")]
        assert keys and all(TICKET_KEY.match(k) for k in keys), keys
        value = store.command_bytes("GET", keys[0])
        assert b"alice" not in value and b"backend" not in value
        assert 0 < int(store.command("TTL", keys[0]).strip(":\r\n")) <= 3600
    else:
        assert int(store.stats()["curr_items"]) == 1


def test_entries_survive_a_restart(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                                   kdc_alice, store_factory):
    """The sealing keys come from KdelegCacheKeyFile, not from the process:
    after a full stop and start node1 still opens what it wrote (before,
    a restart made a new random key and emptied the cache)."""
    store = store_factory("memcache")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                f"KdelegCache {store.spec}\n")
    node1 = site.nodes[0]
    kmark = kdc.r.kdc_log_mark()
    assert deleg(site, node1, kdc_alice)[0] == 200
    node1.stop()
    node1.start(kdc.r.env())
    mark = node1.error_log_mark()
    assert deleg(site, node1, kdc_alice)[0] == 200
    assert [a.split("via=")[1] for a in audits(node1, mark)] == ["cache"]
    assert len(kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "HTTP/backend")) == 1


def test_cache_store_down_asks_the_kdc(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                                       kdc_alice, store_factory):
    """A ticket cache is not a gate: with its store dead, delegation still
    works (the KDC is asked, then each child's own credentials serve) and
    the store is named once per child (KD00506), not per request."""
    store = store_factory("memcache")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                f"KdelegCache {store.spec}\n")
    node1 = site.nodes[0]
    store.kill()
    kmark, mark = kdc.r.kdc_log_mark(), node1.error_log_mark()
    for _ in range(3):
        status, env = deleg(site, node1, kdc_alice)
        assert status == 200 and env["REMOTE_USER"] == kdc.user("alice"), env
    assert 1 <= len(kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "HTTP/backend")) <= 2
    down = [m for _, _, m in kdclient.kd_lines(node1.error_log_since(mark), "KD00506")]
    assert 1 <= len(down) <= 2 and store.spec in down[0], down  # once per child at most


def test_impersonator_is_part_of_the_key(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                                         kdc_alice, store_factory):
    """node2 is configured to act for the VIP as its own account (AD:
    NODE2$, MIT: HTTP/node2). The ticket node1 obtained as the VIP's
    account (websvc) is in the farm's cache, for the same user, SPN and
    target: node2 must not use it, and asks the KDC as its own account."""
    store = store_factory("memcache")
    account = kdc.impersonator("node2")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                f"KdelegCache {store.spec}\n",
                node2_extra=f"KdelegServiceAccount HTTP/{kdc.host('vip')} {account}\n")
    node1, node2 = site.nodes
    marks = site.marks()
    status, env = deleg(site, node1, kdc_alice)
    assert status == 200, env
    deleg(site, node2, kdc_alice)  # refused by the KDC or not: never the cached ticket
    node2_audit = audits(node2, marks[1])
    assert len(node2_audit) == 1, node2_audit
    assert f"impersonator={account} " in node2_audit[0] and node2_audit[0].endswith("via=kdc")
    # node1 still finds its own
    mark = node1.error_log_mark()
    assert deleg(site, node1, kdc_alice)[0] == 200
    assert [a.split("via=")[1] for a in audits(node1, mark)] == ["cache"]


def test_max_lifetime_bounds_the_cache(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                                       kdc_alice, store_factory):
    """KdelegCacheMaxLifetime 2: a ticket hours from expiry is used for two
    seconds, then the KDC is asked again, so removed delegation rights
    take effect within the maximum."""
    store = store_factory("redis")
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                f"KdelegCache {store.spec}\nKdelegCacheMaxLifetime 2\n")
    node1, node2 = site.nodes
    kmark = kdc.r.kdc_log_mark()
    assert deleg(site, node1, kdc_alice)[0] == 200
    started = time.monotonic()
    assert deleg(site, node2, kdc_alice)[0] == 200
    if time.monotonic() - started < 1.5:  # still within the maximum: from the cache
        assert len(kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "HTTP/backend")) == 1
    time.sleep(max(0.0, 3.1 - (time.monotonic() - started)))
    assert deleg(site, node2, kdc_alice)[0] == 200
    assert len(kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "HTTP/backend")) == 2


@pytest.mark.parametrize("conf,expect", [
    ("KdelegCache memcache:127.0.0.11:11211\n", "KD00508"),
    ("KdelegCache redis:127.0.0.11\n", "HOST:PORT"),
    ("KdelegCacheMaxLifetime -1\n", "seconds between 0"),
    ("KdelegRevocationCheckInterval soon\n", "seconds between 0"),
])
def test_bad_configurations_refuse_to_start(realm, module_path, conf, expect):
    httpd = kdlab.Httpd(realm.base, "badcache", "127.0.0.7", module_path=module_path, conf=conf)
    mark = httpd.error_log_mark()
    with pytest.raises(kdlab.LabError) as e:
        httpd.start(realm.env())
    httpd.stop()
    assert expect in str(e.value) + "\n".join(httpd.error_log_since(mark))


# ---------------------------------------------------------------- logouts


def session_on(site, node, ccache):
    """A browser with a session made on node by Kerberos."""
    b = site.direct(node, ccache)
    status, _, body = b.get(site.url("/private/cgi/env.cgi"))
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "kerberos", body
    assert b.cookie("kdeleg_session")
    return b


def copy_to(site, b, node):
    """The same cookies in a browser that resolves the VIP to node and has
    no Kerberos: it can only use the session."""
    other = site.direct(node, None)
    other.cookies = dict(b.cookies)
    return other


def uses_session(site, b):
    """One request, no Kerberos: does the session still open?"""
    status, _, body = b._send(site.url("/private/cgi/env.cgi"))
    return status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "session"


@pytest.mark.parametrize("kind", ["memcache", "redis"])
def test_logout_on_node1_holds_on_node2(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                                        kdc_alice, store_factory, kind):
    store = store_factory(kind)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                f"KdelegReplayCache 1M {store.spec}\nKdelegRevocationCheckInterval 0\n" + LOGOUT)
    node1, node2 = site.nodes
    b = session_on(site, node1, kdc_alice)
    copy = copy_to(site, b, node2)
    assert uses_session(site, copy)
    marks = site.marks()
    status, _, body = b.get(site.url("/logout"))
    assert status == 200 and "Your session has ended." in body
    assert "refused on every node of the farm" in "\n".join(node1.error_log_since(marks[0]))
    assert not uses_session(site, copy)
    log = "\n".join(node2.error_log_since(marks[1]))
    assert "revoked (KdelegSessionLogout on a node of the farm)" in log, log
    # A new login works on both nodes.
    assert uses_session(site, copy_to(site, session_on(site, node1, kdc_alice), node2))


def test_without_a_shared_store_a_logout_holds_on_its_node(kd_httpd, haproxy_factory, mit,
                                                          lab_dir, mit_backend_850, alice_ccache):
    """The gap: each node's own table."""
    site = farm(kd_httpd, haproxy_factory, mit, lab_dir, mit_backend_850, LOGOUT)
    node1, node2 = site.nodes
    b = session_on(site, node1, alice_ccache)
    copy = copy_to(site, b, node2)
    assert b.get(site.url("/logout"))[0] == 200
    assert uses_session(site, copy)


@pytest.fixture
def mit_backend_850(kd_httpd, mit):
    return kd_httpd("backend", BACKEND_IP, server_name=mit.host("backend"), env=mit.r.env(),
                    conf_fn=lambda d: negotiate_conf(mit.r, d, "backend"))


def test_revocation_is_read_at_most_every_interval(kd_httpd, haproxy_factory, mit, lab_dir,
                                                   mit_backend_850, alice_ccache, store_factory):
    """KdelegRevocationCheckInterval 2: node2 trusts what it read for at
    most two seconds; the logout holds there within that."""
    store = store_factory("memcache")
    site = farm(kd_httpd, haproxy_factory, mit, lab_dir, mit_backend_850,
                f"KdelegReplayCache 1M {store.spec}\nKdelegRevocationCheckInterval 2\n" + LOGOUT)
    node1, node2 = site.nodes
    b = session_on(site, node1, alice_ccache)
    copy = copy_to(site, b, node2)
    assert uses_session(site, copy)
    assert b.get(site.url("/logout"))[0] == 200
    logged_out = time.monotonic()
    while uses_session(site, copy):
        assert time.monotonic() - logged_out < 2 + 3, "node2 kept reading a stale answer"
        time.sleep(0.2)


def test_store_down_refuses_sessions_and_logouts(kd_httpd, haproxy_factory, mit, lab_dir,
                                                 mit_backend_850, alice_ccache, store_factory):
    """The store-down policy: a session that cannot be checked is refused
    (its cookie kept), a logout the farm did not take is a 503; both
    recover without an httpd restart."""
    store = store_factory("memcache")
    site = farm(kd_httpd, haproxy_factory, mit, lab_dir, mit_backend_850,
                f"KdelegReplayCache 1M {store.spec}\nKdelegRevocationCheckInterval 0\n" + LOGOUT)
    node1, node2 = site.nodes
    b = session_on(site, node1, alice_ccache)
    copy = copy_to(site, b, node2)
    assert uses_session(site, copy)
    store.kill()
    mark = node2.error_log_mark()
    status, headers, _ = copy._send(site.url("/private/cgi/env.cgi"))
    assert status == 401
    assert "kdeleg_session=;" not in headers.get("set-cookie", "").replace(" ", "")
    assert "the farm's revocations cannot be read" in "\n".join(node2.error_log_since(mark))
    mark1 = node1.error_log_mark()
    status, headers, body = b._send(site.url("/logout"))
    assert status == 503 and headers.get("retry-after") == "5", (status, headers)
    assert "could not be told yet" in body
    not_shared = [m for _, _, m in kdclient.kd_lines(node1.error_log_since(mark1), "KD00728")]
    assert len(not_shared) == 1 and "is not shared with the farm" in not_shared[0], not_shared
    store.start()
    deadline = time.monotonic() + 15
    while not uses_session(site, copy):
        assert time.monotonic() < deadline, "sessions did not come back with the store"
        time.sleep(0.2)


# ---------------------------------------------------------------- key mismatch


def test_nodes_without_a_common_key_are_told(kd_httpd, haproxy_factory, kdc, lab_dir,
                                             kdc_backend, kdc_alice, store_factory):
    """node1 has KEY_A, node2 KEY_B: their claims would never meet. node1
    wrote the farm's key fingerprints first; node2, which shares none of
    them, refuses logins with farm-key-mismatch, names both sets, and its
    health check fails (in every child: it never overwrites node1's entry),
    so the balancer takes it out while node1 goes on."""
    store = store_factory("redis")
    other = cache_key_file(lab_dir, "farm-850-other", KEY_B)
    site = farm(kd_httpd, haproxy_factory, kdc, lab_dir, kdc_backend,
                f"KdelegReplayCache 1M {store.spec}\n" + LOGOUT,
                node2_extra=f"KdelegCacheKeyFile {other}\n")
    node1, node2 = site.nodes
    b1 = site.direct(node1, kdc_alice)
    assert b1.get(site.url("/private/cgi/env.cgi"))[0] == 200   # writes node1's fingerprints
    mark = node2.error_log_mark()
    b2 = site.direct(node2, kdc_alice)
    status, headers, _ = b2.get(site.url("/private/cgi/env.cgi"))
    assert status == 503, b2.chain
    log = node2.error_log_since(mark)
    assert kdclient.causes(log) == ["farm-key-mismatch"], log
    text = "\n".join(log)
    assert "give every node the same KdelegCacheKeyFile" in text
    assert KEY_A not in text and KEY_B not in text  # fingerprints, never keys
    for _ in range(4):  # whichever child answers
        assert site.direct(node2, None)._send(site.url("/kdeleg-health"))[0] == 503
        assert site.direct(node1, None)._send(site.url("/kdeleg-health"))[0] == 200
    assert site.direct(node1, kdc_alice).get(site.url("/private/cgi/env.cgi"))[0] == 200


def test_nodes_mid_rotation_share_a_key(kd_httpd, haproxy_factory, mit, lab_dir,
                                        mit_backend_850, alice_ccache, store_factory):
    """node1 [new, old], node2 [old]: one key in common is enough."""
    store = store_factory("redis")
    old_only = cache_key_file(lab_dir, "farm-850-old", KEY_A)
    site = farm(kd_httpd, haproxy_factory, mit, lab_dir, mit_backend_850,
                f"KdelegReplayCache 1M {store.spec}\n", keys=(KEY_B, KEY_A),
                node2_extra=f"KdelegCacheKeyFile {old_only}\n")
    node1, node2 = site.nodes
    for node in (node1, node2, node1, node2):
        assert site.direct(node, alice_ccache).get(site.url("/private/cgi/env.cgi"))[0] == 200
