"""Faults in the parts around the module, provoked for real while it serves:
the KDC gone before start-up and under load, the directory gone under the
KDC, keytab rotation and permission changes, a credential-cache directory
that cannot be written or is full, a full ticket cache, graceful restarts
under load. Each ends with a clear status and cause, recovers without an
httpd restart, and never gives one user's identity or tickets to another."""

import os
import re
import shutil
import subprocess
import threading
import time

import pytest

import kdclient
import kdlab
from conftest import private_ccache_dir
from kdmit import env_of, front_conf, new_service, proxied_location, s4u2proxy_requests
from kdnames import BALANCER_PROXY_MODULES, NODE1

USERS = ("alice", "bob")


@pytest.fixture
def users(realm):
    """A ccache per user, already holding the front end's service ticket, so
    clients keep making tokens while the KDC is away."""
    made = {}
    for user in USERS:
        ccache = realm.kinit(user, realm.path("ccache", f"{user}-faults.cc"))
        kdclient.Token(ccache, NODE1)
        made[user] = ccache
    return made


def proxied_front(kd_httpd, realm, backend, name="front-faults", cache=None, mpm="event"):  # noqa: F811
    conf = f"KdelegCache {cache}\n" if cache else ""
    httpd = kd_httpd(name, "127.0.0.2", server_name=NODE1, mpm=mpm,
                     extra_modules=BALANCER_PROXY_MODULES,
                     conf_fn=lambda d: conf + front_conf(realm, d, backend,
                                                         extra=proxied_location(backend)))
    httpd.ccache_dir = os.path.join(httpd.dir, "ccache")
    return httpd


def as_user(httpd, ccache, path="/proxied/env.cgi"):
    """(status, REMOTE_USER the back end saw or None)."""
    status, _, body, _ = kdclient.negotiate(httpd, path, ccache)
    if status != 200:
        return status, None
    # backend.cgi calls the back end itself; /proxied/ shows the back end's CGI
    return status, env_of(body).get("BACKEND_REMOTE_USER" if "backend.cgi" in path
                                    else "REMOTE_USER")


class Load:
    """Threads sending delegated requests as each user until stopped; every
    answer recorded as (time, user, status, user the back end saw)."""

    def __init__(self, httpd, users, threads_per_user=2, path="/proxied/env.cgi"):
        self.httpd, self.users, self.path = httpd, users, path
        self.results, self.errors = [], []
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(u,), daemon=True)
                        for u in users for _ in range(threads_per_user)]

    def _run(self, user):
        while not self.stopping.is_set():
            try:
                status, seen = as_user(self.httpd, self.users[user], self.path)
            except Exception as e:  # a connection refused/reset is a finding
                with self.lock:
                    self.errors.append(repr(e))
                continue
            with self.lock:
                self.results.append((time.monotonic(), user, status, seen))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(30)

    def between(self, start, end):
        return [r for r in self.results if start <= r[0] < end]


def assert_nobody_else(results):
    """Every answer that named a user named the one who asked."""
    wrong = [r for r in results if r[2] == 200 and r[3] != f"{r[1]}@EXAMPLE.TEST"]
    assert not wrong, wrong[:5]


def delegation_causes(httpd, mark):
    return [m.split("cause ")[1].split()[0].rstrip(":,;")
            for _, _, m in kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")]


# ------------------------------------------------------------ the KDC

def test_kdc_down_before_start_up(kd_httpd, realm, backend, users):  # noqa: F811
    """httpd starts without a KDC (accepting needs only the keytab); delegation
    answers 502 kdc-unreachable until the KDC returns, then works without a
    restart."""
    alice_token = kdclient.Token(users["alice"], NODE1)
    realm.stop_kdc()
    try:
        httpd = proxied_front(kd_httpd, realm, backend)
        httpd.allowed.add("KD00401")
        mark = httpd.error_log_mark()
        status, _, _ = kdclient.request(httpd, "/proxied/env.cgi",
                                        headers={"Authorization": alice_token.header})
        assert status == 502
        assert delegation_causes(httpd, mark) == ["kdc-unreachable"]
        assert kdclient.last_failure(httpd)[0] == "kdc-unreachable"
    finally:
        realm.start_kdc()
    assert as_user(httpd, users["alice"]) == (200, "alice@EXAMPLE.TEST")


def test_kdc_outage_under_load(kd_httpd, realm, backend, users):  # noqa: F811
    """No ticket cache, so every request needs the KDC: during the outage
    requests fail with 502 kdc-unreachable, afterwards all succeed, and
    nobody ever gets another user's identity."""
    httpd = proxied_front(kd_httpd, realm, backend, name="front-outage", cache="none")
    httpd.allowed.add("KD00401")
    mark = httpd.error_log_mark()
    with Load(httpd, users) as load:
        time.sleep(1.0)
        down = time.monotonic()
        realm.stop_kdc()
        try:
            time.sleep(2.0)
        finally:
            up = time.monotonic()
            realm.start_kdc()
        time.sleep(0.5)
        settled_from = time.monotonic()
        time.sleep(1.5)
    assert not load.errors, load.errors[:5]
    during = load.between(down, up)
    print(f"KDC outage: {len(load.results)} requests, {len(during)} while the KDC was down "
          f"({sum(r[2] == 502 for r in during)} answered 502)")
    assert {r[2] for r in load.results} <= {200, 502}
    assert any(r[2] == 502 for r in load.between(down + 0.5, up)), "the outage was not seen"
    after = load.between(settled_from, float("inf"))
    assert after and all(r[2] == 200 for r in after), [r for r in after if r[2] != 200][:5]
    assert_nobody_else(load.results)
    # kdc-error: a request caught in the KDC's start-up can get a reply
    # of the wrong type ("Invalid message type"); still a 502 with a cause
    causes = delegation_causes(httpd, mark)
    assert "kdc-unreachable" in causes and set(causes) <= {"kdc-unreachable", "kdc-error"}
    assert causes.count("kdc-error") <= 4, causes.count("kdc-error")
    assert kdclient.settled_listing(httpd.ccache_dir) == []


def test_directory_down_under_the_kdc(kd_httpd, realm, backend, users):  # noqa: F811
    """slapd stopped: the KDC runs but cannot read its database and answers
    KRB_ERR_GENERIC ("Generic error"; its log says "LDAP handle unavailable").
    Delegation fails with kdc-error, whose hint sends the administrator to
    the KDC's database, and recovers when slapd is back, without
    restarting httpd (or the KDC)."""
    httpd = proxied_front(kd_httpd, realm, backend, name="front-noldap", cache="none")
    httpd.allowed.add("KD00401")
    assert as_user(httpd, users["alice"]) == (200, "alice@EXAMPLE.TEST")
    mark = httpd.error_log_mark()
    realm.stop_slapd()
    try:
        status, _ = as_user(httpd, users["alice"])
        assert status == 502
        causes = delegation_causes(httpd, mark)
        assert causes == ["kdc-error"], causes
        msg = kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")[0][2]
        # the KDC's words (AS: "Generic error", TGS: its e-text), then the hint
        assert ("Generic error" in msg or "PROCESS_TGS" in msg) and "LDAP" in msg
    finally:
        realm.start_slapd()
    deadline = time.monotonic() + 20
    while as_user(httpd, users["alice"])[0] != 200:
        assert time.monotonic() < deadline, "no recovery after slapd came back"
        time.sleep(0.5)
    assert as_user(httpd, users["bob"]) == (200, "bob@EXAMPLE.TEST")


# ------------------------------------------------------------ keytabs

def rotation_node(kd_httpd, realm, host):
    principal, keytab = new_service(realm, host)
    httpd = kd_httpd(host.split(".")[0], "127.0.0.5", server_name=host,
                     conf_fn=lambda d: f"""
KdelegKeytab {keytab}
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
ScriptAlias /private/cgi/ "{d}/cgi-bin/"
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
</Location>
""")
    httpd.allowed.add("KD00301")
    return principal, keytab, httpd


def test_keytab_rotated_while_serving(kd_httpd, realm):
    """The administrator re-keys the service and installs the new keytab
    (old and new kvno, written beside it and renamed over it) while requests
    flow: tickets of both key versions are accepted, nothing fails."""
    host = "rotate.example.test"
    principal, keytab, httpd = rotation_node(kd_httpd, realm, host)
    old = {u: realm.kinit(u, realm.path("ccache", f"{u}-rot-old.cc")) for u in USERS}
    with Load(httpd, old, path="/private/cgi/env.cgi") as load:
        time.sleep(0.7)
        new_kvno = realm.rekey(principal)
        staged = keytab + ".new"
        shutil.copy(keytab, staged)
        realm.ktadd(principal, staged)
        os.replace(staged, keytab)
        fresh = realm.kinit("alice", realm.path("ccache", "alice-rot-new.cc"))
        status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", fresh, host=host)
        assert status == 200, body
        time.sleep(0.7)
    assert new_kvno >= 2
    assert not load.errors and load.results
    assert all(r[2] == 200 for r in load.results), [r for r in load.results if r[2] != 200][:5]


def test_keytab_unreadable_then_readable(kd_httpd, realm):
    host = "perm.example.test"
    _, keytab, httpd = rotation_node(kd_httpd, realm, host)
    ccache = realm.kinit("alice", realm.path("ccache", "alice-perm.cc"))
    assert kdclient.negotiate(httpd, "/private/cgi/env.cgi", ccache, host=host)[0] == 200
    os.chmod(keytab, 0o000)
    try:
        mark = httpd.error_log_mark()
        status = kdclient.negotiate(httpd, "/private/cgi/env.cgi", ccache, host=host)[0]
        assert status == 500
        lines = httpd.error_log_since(mark)
        assert kdclient.causes(lines) == ["keytab-unusable"]
        level, _, msg = kdclient.kd_lines(lines, "KD00301")[0]
        assert level == "error" and keytab in msg
    finally:
        os.chmod(keytab, 0o640)
    assert kdclient.negotiate(httpd, "/private/cgi/env.cgi", ccache, host=host)[0] == 200


# ------------------------------------------------------------ credential caches

def cgi_front(kd_httpd, realm, backend, name):  # noqa: F811
    httpd = kd_httpd(name, "127.0.0.2", server_name=NODE1, extra_modules=BALANCER_PROXY_MODULES,
                     conf_fn=lambda d: front_conf(realm, d, backend))
    httpd.ccache_dir = os.path.join(httpd.dir, "ccache")
    httpd.allowed.add("KD00401")
    return httpd


def test_ccache_dir_not_writable(kd_httpd, realm, backend, users):  # noqa: F811
    httpd = cgi_front(kd_httpd, realm, backend, "front-rodir")
    os.chown(httpd.ccache_dir, 0, 0)  # an administrator's mistake: root's 0700
    try:
        mark = httpd.error_log_mark()
        status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/backend.cgi", users["alice"])
        assert status == 500, body
        lines = httpd.error_log_since(mark)
        assert delegation_causes(httpd, mark) == ["internal-error"]
        msg = kdclient.kd_lines(lines, "KD00401")[0][2]
        assert httpd.ccache_dir in msg and "Permission denied" in msg
    finally:
        private_ccache_dir(httpd.dir)
    assert as_user(httpd, users["alice"], "/private/cgi/backend.cgi") == (200, "alice@EXAMPLE.TEST")
    assert kdclient.settled_listing(httpd.ccache_dir) == []


def test_ccache_dir_full(kd_httpd, realm, backend, users):  # noqa: F811
    httpd = cgi_front(kd_httpd, realm, backend, "front-fulldir")
    d = httpd.ccache_dir
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "kdeleg-full", d],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root, or no mount permission)")
    try:
        private_ccache_dir(httpd.dir)
        filler = os.path.join(d, "filler")
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=64"],
                       capture_output=True)
        mark = httpd.error_log_mark()
        status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/backend.cgi", users["alice"])
        assert status == 500, body
        assert delegation_causes(httpd, mark) == ["internal-error"]
        msg = kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")[0][2]
        assert "No space left on device" in msg
        # the free space, formatted (APR's formatter has no %llu: it printed "%lu ... (null)")
        assert re.search(r"No space left on device: \d+ bytes free in " + re.escape(d), msg), msg
        assert kdclient.settled_listing(d, ["filler"]) == ["filler"], "a partial credential cache was left"
        os.unlink(filler)
        assert as_user(httpd, users["alice"], "/private/cgi/backend.cgi") == (
            200, "alice@EXAMPLE.TEST")
        assert kdclient.settled_listing(d) == []
    finally:
        subprocess.run(["umount", d], check=True)


@pytest.fixture(scope="module")
def crowd(realm):
    """Twenty-four more users, each with a ccache: more tickets than a tiny
    cache holds."""
    password = "Crowd-Pa55-word"
    names = [f"crowd{i:02d}" for i in range(24)]
    for name in names:
        try:
            realm._kadmin(["-q", f"addprinc -pw {password} +requires_preauth {name}"])
        except kdlab.KadminError as e:
            if "already exists" not in str(e):
                raise
    return {name: realm.kinit(name, realm.path("ccache", f"{name}.cc"), password=password)
            for name in names}


def test_full_ticket_cache_costs_kdc_requests_not_identities(kd_httpd, realm, backend,  # noqa: F811
                                                             crowd, lab_dir):
    """A ticket cache far too small for the users (16 KiB of shmcb; 8 KiB is
    refused at start-up): entries are evicted or never stored, so the KDC
    is asked again, but every request succeeds as its own user."""
    cache = f"shmcb:{lab_dir}/tiny-cache(16384)"
    httpd = proxied_front(kd_httpd, realm, backend, name="front-tinycache", cache=cache)
    mark = realm.kdc_log_mark()
    results = []
    for _ in range(2):
        for user, ccache in crowd.items():
            results.append((0, user) + as_user(httpd, ccache))
    assert all(r[2] == 200 for r in results), [r for r in results if r[2] != 200][:5]
    assert_nobody_else(results)
    # a cache with room would have asked once per user; this one could not keep them
    asked = len(s4u2proxy_requests(realm, mark))
    print(f"tiny ticket cache: {len(results)} requests, {asked} S4U2Proxy requests to the KDC")
    assert asked > len(crowd), asked


# ------------------------------------------------------------ graceful restart

@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_graceful_restart_under_load(kd_httpd, realm, backend, users, mpm):  # noqa: F811
    httpd = proxied_front(kd_httpd, realm, backend, name="front-graceful-" + mpm, mpm=mpm)
    with Load(httpd, users) as load:
        time.sleep(0.7)
        httpd.reload()
        time.sleep(0.5)
        httpd.reload()
        time.sleep(0.7)
    assert load.results and not load.errors, load.errors[:5]
    assert all(r[2] == 200 for r in load.results), [r for r in load.results if r[2] != 200][:5]
    assert_nobody_else(load.results)
    assert kdclient.settled_listing(httpd.ccache_dir) == []
