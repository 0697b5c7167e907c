"""The health check for load balancers (issue 17, item 3), on both KDCs:
`SetHandler kdeleg-health` answers 200 "ok" or 503 "unavailable" from the
keytab's state, the KDC's reachability and the shared store's.

- 200 when all is fine, without any authentication (also inside a tree
  that asks for Negotiate, where `Require ip` lets the balancer in).
- 503 when the keytab is missing, garbage, or lacks the service's key;
  200 again once it is back, without a restart. Each change of state is
  logged once (KD00852 down with the reason, KD00853 up), not per poll.
- 503 when the KDC refuses connections (kdlab.KdcRelay.refuse), 200 once it
  listens again.
- The KDC probe is rate-limited: many health requests within
  KdelegHealthInterval make no KDC request beyond the first probe.
- GET and HEAD only (405 otherwise); the body is a fixed word, no name,
  path, cause or version; Cache-Control: no-store.
- haproxy's `option httpchk GET /kdeleg-health` takes a node whose keytab
  is unusable out of the farm and brings it back once it is fixed.

Every node has its own copy of its keytab, so the tests may break it.
One child process (ServerLimit 1) where the test counts log lines or KDC
requests, so nothing is left to which child answered."""

import os
import re
import shutil
import struct
import threading
import time

import pytest

import kdclient
import kdlab
from conftest import negotiate_conf
from kdnames import NODE1_IP, NODE2_IP, VIP_IP

RELAY_IP = "127.0.0.9"
OK, UNAVAILABLE = "ok\n", "unavailable\n"
DOWN, UP, REFUSED = "KD00852", "KD00853", "KD00854"

ONE_CHILD = {
    "event": "ServerLimit 1\nStartServers 1\nMaxRequestWorkers 8\nMinSpareThreads 1\n"
             "MaxSpareThreads 16\n",
    "prefork": "ServerLimit 1\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 2\n"
               "MaxRequestWorkers 1\n",
}


def upstream(kdc):
    """The real KDC's address, as the realm's krb5.conf names it."""
    with open(kdc.r.krb5_conf) as f:
        addr = re.search(r"(?m)^\s*kdc\s*=\s*(\S+)", f.read()).group(1)
    host, _, port = addr.partition(":")
    return host, int(port or 88)


@pytest.fixture
def relay(kdc):
    r = kdlab.KdcRelay(RELAY_IP, upstream(kdc))
    yield r
    r.close()


def own_keytab(kdc, d, name):
    """A copy of the lab keytab name in the httpd's directory, for the test
    to break."""
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{name}-health.keytab")
    shutil.copy(kdc.r.keytab(name), path)
    kdlab._share_with_httpd(path, 0o640)
    return path


def health_conf(kdc, d, short, interval, mpm=None):
    keytab = own_keytab(kdc, d, short)
    os.makedirs(os.path.join(d, "htdocs"), exist_ok=True)
    with open(os.path.join(d, "htdocs", "whoami.txt"), "w") as f:
        f.write(short + "\n")
    return negotiate_conf(kdc.r, d, keytab, [kdc.spn(short).split("@")[0]], extra=f"""
{ONE_CHILD[mpm] if mpm else ""}KdelegHealthInterval {interval}
<Location /kdeleg-health>
    SetHandler kdeleg-health
    Require ip 127.0.0.0/8
</Location>
# inside the tree that asks for Negotiate: Require ip alone lets the balancer in
<Location /private/health>
    SetHandler kdeleg-health
    Require ip 127.0.0.0/8
</Location>
""")


@pytest.fixture
def node_factory(kd_httpd, kdc, relay):
    """make(interval, mpm) -> one node whose KDC is the relay."""
    def make(interval=1, mpm="event"):
        conf = relay.krb5_conf(kdc.r.krb5_conf, kdc.r.path(f"krb5-relay-{relay.port}.conf"))
        httpd = kd_httpd("health", NODE1_IP, server_name=kdc.host("node1"), mpm=mpm,
                         env={**kdc.r.env(), "KRB5_CONFIG": conf},
                         conf_fn=lambda d: health_conf(kdc, d, "node1", interval, mpm))
        httpd.keytab = os.path.join(httpd.dir, "node1-health.keytab")
        return httpd
    return make


def break_keytab(path, how, other):
    """Move the keytab to path.saved and leave in its place: nothing
    ("missing"), random bytes ("garbage"), or a real keytab without the
    service's key (other)."""
    os.rename(path, path + ".saved")
    if how == "garbage":
        with open(path, "wb") as f:
            f.write(os.urandom(300))
    elif how == "other service":
        shutil.copy(other, path)
    if how != "missing":
        kdlab._share_with_httpd(path, 0o640)


def forged_keytab(path, principals):
    """A keytab (format 0x502) naming principals, all with one random
    AES256 key: the names the configuration wants, keys the KDC does not
    know."""
    def counted(b):
        return struct.pack(">H", len(b)) + b
    key = os.urandom(32)
    out = b"\x05\x02"
    for p in sorted(principals):
        name, _, realm = p.rpartition("@")
        parts = name.split("/")
        entry = (struct.pack(">H", len(parts)) + counted(realm.encode())
                 + b"".join(counted(c.encode()) for c in parts)
                 + struct.pack(">IIB", 1, int(time.time()), 1)   # KRB5_NT_PRINCIPAL, kvno 1
                 + struct.pack(">H", 18) + counted(key) + struct.pack(">I", 1))
        out += struct.pack(">i", len(entry)) + entry
    with open(path, "wb") as f:
        f.write(out)
    kdlab._share_with_httpd(path, 0o640)


def health(httpd, method="GET", path="/kdeleg-health"):
    return kdclient.request(httpd, path, method=method)


def wait_for(httpd, status, timeout=15):
    """Poll the health check until it answers status; the answers seen."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, headers, body = health(httpd)
        seen.append(code)
        if code == status:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"health check never answered {status}: {seen[-10:]}")


def answer(httpd):
    code, headers, body = health(httpd)
    return code, body


def numbered(httpd, mark, number):
    return kdclient.kd_lines(httpd.error_log_since(mark), number)


# ------------------------------------------------------------ the answer

@pytest.mark.parametrize("mpm", ("event", "prefork"))
def test_ok_without_authentication(node_factory, kdc, mpm):
    """200 "ok" with no Authorization header, also inside the Negotiate
    tree; HEAD gives the same status and no body; the answer is not
    cached and counted on the status page."""
    h = node_factory(mpm=mpm)
    before = kdclient.status(h)["counters"]["health_ok"]
    for path in ("/kdeleg-health", "/private/health"):
        code, headers, body = health(h, path=path)
        assert (code, body) == (200, OK), (path, code, body)
        assert headers["cache-control"] == "no-store"
        assert headers["content-type"].startswith("text/plain")
        assert "www-authenticate" not in headers
    code, headers, body = health(h, method="HEAD")
    assert (code, body) == (200, "")
    assert kdclient.status(h)["counters"]["health_ok"] == before + 3


def test_only_get_and_head(node_factory, kdc):
    h = node_factory()
    mark = h.error_log_mark()
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        code, headers, body = health(h, method=method)
        assert code == 405, (method, code)
        assert "GET" in headers["allow"]
    assert len(numbered(h, mark, "KD00851")) == 4


@pytest.mark.parametrize("mpm", ("event", "prefork"))
def test_unusable_keytab_and_back(node_factory, kdc, mpm):
    """A missing keytab, one of garbage, and one without the service's key
    each make the node unavailable at once, and it comes back as soon as the
    keytab does, without a restart; the body never says why, the log says
    it once per change (one child: one line each)."""
    h = node_factory(mpm=mpm)
    h.allowed |= {DOWN}
    assert answer(h) == (200, OK)
    mark = h.error_log_mark()
    saved = h.keytab + ".saved"
    for what in ("missing", "garbage", "other service"):
        break_keytab(h.keytab, what, kdc.r.keytab("node2"))
        for _ in range(5):   # at once: the keytab is looked at on every request
            code, headers, body = health(h)
            assert (code, body) == (503, UNAVAILABLE), what
            assert headers["cache-control"] == "no-store"
        os.replace(saved, h.keytab)
        assert answer(h) == (200, OK), what
    down, up = numbered(h, mark, DOWN), numbered(h, mark, UP)
    assert [l for l, _, _ in down] == ["error"] * 3, down
    assert len(up) == 3, up
    assert all("cause keytab-unusable" in msg for _, _, msg in down), down
    assert "No such file" in down[0][2] or "no such file" in down[0][2].lower(), down[0]
    assert "no key for" in down[2][2], down[2]
    assert kdclient.status(h)["counters"]["health_unavailable"] >= 15


def test_kdc_unreachable_and_back(node_factory, kdc, relay):
    """A KDC that refuses connections takes the node out within an
    interval or two; once it listens again the node comes back. Polling
    in between logs nothing more."""
    h = node_factory(interval=1)
    h.allowed |= {DOWN}
    assert answer(h) == (200, OK)
    mark = h.error_log_mark()
    relay.refuse()
    asked = relay.requests
    try:
        wait_for(h, 503)
        for _ in range(10):
            assert answer(h) == (503, UNAVAILABLE)
            time.sleep(0.1)
        assert relay.requests == asked   # refused: nothing reached the relay
    finally:
        relay.resume()
    wait_for(h, 200)
    down, up = numbered(h, mark, DOWN), numbered(h, mark, UP)
    assert len(down) == 1 and len(up) == 1, (down, up)
    assert "cause kdc-unreachable" in down[0][2], down
    assert numbered(h, mark, REFUSED) == []


def test_kdc_refusal_keeps_the_node_in(node_factory, kdc):
    """A keytab with the right names and wrong keys: the KDC answers the
    probe and refuses (or its answer does not decrypt). Reachable, so the
    node stays in service; the refusal is logged once, not per probe."""
    h = node_factory(interval=1)
    h.allowed |= {REFUSED}
    assert answer(h) == (200, OK)
    mark = h.error_log_mark()
    os.rename(h.keytab, h.keytab + ".saved")
    forged_keytab(h.keytab, {kdc.spn("node1"), kdc.impersonator("node1")})
    try:
        deadline = time.monotonic() + 15
        while not numbered(h, mark, REFUSED) and time.monotonic() < deadline:
            assert answer(h) == (200, OK)
            time.sleep(0.2)
        for _ in range(15):   # probes go on, every second: the answer and the log stay
            assert answer(h) == (200, OK)
            time.sleep(0.2)
    finally:
        os.replace(h.keytab + ".saved", h.keytab)
    refused = numbered(h, mark, REFUSED)
    assert len(refused) == 1, refused
    assert refused[0][0] == "warn" and "cause" in refused[0][2], refused
    assert numbered(h, mark, DOWN) == []


def test_kdc_probe_rate_limited(node_factory, kdc, relay):
    """Within KdelegHealthInterval the KDC is asked once, however often the
    balancer polls: the answer is reused."""
    h = node_factory(interval=30)
    assert answer(h) == (200, OK)
    asked = relay.requests
    assert asked >= 1   # the first health request probed the KDC
    for _ in range(60):
        assert answer(h) == (200, OK)
    assert relay.requests == asked


def test_probe_in_progress_holds_nobody(node_factory, kdc, relay):
    """A KDC that accepts and never answers holds the one probe under way;
    the health requests meanwhile get the last answer at once and ask the
    KDC nothing themselves. When the probe gives up the node is
    unavailable; a KDC that answers again brings it back within an
    interval, though requests hold that failure for 30 s (kd_accept.c):
    the probe does not."""
    h = node_factory(interval=1)
    h.allowed |= {DOWN}
    assert answer(h) == (200, OK)
    relay.mode = "blackhole"
    results, threads = [], []
    try:
        time.sleep(1.2)                   # the interval passes: the next request probes
        asked = relay.requests
        for _ in range(12):
            t = threading.Thread(target=lambda: results.append(timed(h)))
            t.start()
            threads.append(t)
            time.sleep(0.05)
        time.sleep(1)
        # the first is the probe, held by the KDC; the others were answered
        assert len(results) == 11, results
        assert all(code == 200 and took < 1 for code, took in results), results
        assert relay.requests == asked + 1
    finally:
        relay.refuse()                    # the probe's KDC hangs up; no other answers
        relay.close_held()
        for t in threads:
            t.join(40)
    assert len(results) == 12
    wait_for(h, 503, timeout=40)
    relay.mode = "forward"
    relay.resume()
    wait_for(h, 200, timeout=10)


def timed(h):
    started = time.monotonic()
    code, _, _ = health(h)
    return code, time.monotonic() - started


def test_body_reveals_nothing(node_factory, kdc, relay):
    """Neither answer names a principal, realm, host, path, cause or
    version, in the body or in a header of ours."""
    h = node_factory(interval=1)
    h.allowed |= {DOWN}
    secrets = (kdc.realm, kdc.realm.lower(), kdc.host("node1"), "HTTP/", h.keytab, h.dir,
               "kdc-unreachable", "keytab", "mod_kdeleg", "krb5")
    answers = [health(h)]
    relay.refuse()
    try:
        wait_for(h, 503)
        answers.append(health(h))
    finally:
        relay.resume()
    for code, headers, body in answers:
        assert body in (OK, UNAVAILABLE)
        shown = body + "".join(v for k, v in headers.items()
                                         if k not in ("server", "date"))
        for s in secrets:
            assert s not in shown, (s, code, headers)


# ------------------------------------------------------------ behind haproxy

def whoami(proxy, host):
    code, _, body = kdclient.request(proxy, "/whoami.txt", host=host)
    assert code == 200, body
    return body.strip()


def haproxy_log_has(proxy, text, mark):
    """Did haproxy log text after mark (its log's size then)? The log is
    the lab's, shared with earlier tests."""
    with open(proxy.log, errors="replace") as f:
        f.seek(mark)
        return text in f.read()


def wait_log(proxy, text, mark, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if haproxy_log_has(proxy, text, mark):
            return
        time.sleep(0.2)
    raise AssertionError(f"haproxy never logged {text!r}")


def test_haproxy_takes_unhealthy_node_out(kd_httpd, haproxy_factory, kdc):
    """option httpchk GET /kdeleg-health: node1's keytab replaced by garbage
    -> haproxy marks it DOWN and every request goes to node2; the keytab
    back -> node1 is UP again and serves."""
    port = kdlab.shared_port(NODE1_IP, NODE2_IP, VIP_IP)
    nodes = []
    for short, ip in (("node1", NODE1_IP), ("node2", NODE2_IP)):
        nodes.append(kd_httpd(short, ip, server_name=kdc.host(short), port=port,
                              env=kdc.r.env(),
                              conf_fn=lambda d, s=short: health_conf(kdc, d, s, 2)))
    node1 = nodes[0]
    node1.allowed |= {DOWN}
    proxy = haproxy_factory(VIP_IP, port, [(n.ip, n.port) for n in nodes],
                            httpchk="GET /kdeleg-health")
    vip = kdc.host("vip")
    assert {whoami(proxy, vip) for _ in range(4)} == {"node1", "node2"}
    keytab = os.path.join(node1.dir, "node1-health.keytab")
    mark = os.path.getsize(proxy.log)
    break_keytab(keytab, "garbage", None)
    try:
        wait_log(proxy, "be/s1 is DOWN", mark)
        assert [whoami(proxy, vip) for _ in range(6)] == ["node2"] * 6
    finally:
        os.replace(keytab + ".saved", keytab)
    wait_log(proxy, "be/s1 is UP", mark)
    assert {whoami(proxy, vip) for _ in range(4)} == {"node1", "node2"}
    assert not haproxy_log_has(proxy, "be/s2 is DOWN", mark)
