"""Locks, subrequests and leftovers (issue 14, item 4).

- The replay and revocation tables keep one mutex for their whole life:
  a graceful restart finds the same lock (old and new children share it),
  and a lock that fails refuses (503 replay-cache-unavailable; a session
  is refused, KD00725) instead of going on unchecked. The lock is made to
  fail for real: its System V semaphore is removed under the server.
- Subrequests re-evaluate identity policy and delegation for their own
  location (both KDCs): no KRB5CCNAME where delegation is off, their own
  tickets where it is on, their own refusal where the target is not
  allowed.
- Start-up sweeps the credential caches a child killed mid-request left:
  only this instance's, older than the longest Timeout, whose writer is
  gone; a graceful restart leaves younger ones alone."""

import os
import re
import signal
import subprocess
import threading
import time

import pytest

import kdclient
from conftest import negotiate_conf, private_ccache_dir
from kdsite import key_file
from kdnames import NODE1



# ------------------------------------------------------------ one mutex per table

def semaphores():
    out = subprocess.run(["ipcs", "-s"], capture_output=True, text=True, check=True).stdout
    return {int(m.group(1)) for m in re.finditer(r"(?m)^0x[0-9a-f]+\s+(\d+)\s", out)}


@pytest.fixture
def sysvsem_front(kd_httpd, realm, lab_dir):
    """Our two tables' mutexes as System V semaphores, every other mutex
    fcntl: the semaphores this httpd makes are exactly ours."""
    keys = key_file(lab_dir, "site-780")
    before = semaphores()
    httpd = kd_httpd("locks", "127.0.0.2", server_name=NODE1, mpm="prefork",
                     conf_fn=lambda d: negotiate_conf(realm, d, "node1", extra=f"""
Mutex fcntl:{d}/run default
Mutex sysvsem kdeleg-replay
Mutex sysvsem kdeleg-revoke
KdelegSession On
KdelegSessionKeyFile {keys}
KdelegSessionLogout /logout
"""))
    httpd.sems = semaphores() - before
    httpd.allowed |= {"KD00301", "KD00725"}
    return httpd


def session_cookie(httpd, ccache):
    status, headers, _, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", ccache)
    assert status == 200
    return re.search(r"kdeleg_session=([^;]+)", headers["set-cookie"]).group(1)


def test_tables_keep_their_mutex_and_fail_closed(sysvsem_front, realm, alice_ccache):
    httpd = sysvsem_front
    assert len(httpd.sems) == 2, httpd.sems
    tok = kdclient.Token(alice_ccache, NODE1)
    assert kdclient.request(httpd, "/private/cgi/env.cgi",
                            headers={"Authorization": tok.header})[0] == 200
    httpd.reload()
    # The same two locks after a graceful restart: old and new children
    # (which may overlap) serialise on one mutex per table.
    assert httpd.sems <= semaphores()
    assert kdclient.request(httpd, "/private/cgi/env.cgi",
                            headers={"Authorization": tok.header})[0] == 401   # replay kept

    # A logout, so that sessions need the revocation table's lock.
    bob = realm.kinit("bob", realm.path("ccache", "bob-780.cc"))
    bobs = session_cookie(httpd, bob)
    assert kdclient.request(httpd, "/logout", headers={"Cookie": f"kdeleg_session={bobs}"})[0] \
        in (200, 204, 302, 303)
    alices = session_cookie(httpd, alice_ccache)
    status, _, body = kdclient.request(httpd, "/private/cgi/env.cgi",
                                       headers={"Cookie": f"kdeleg_session={alices}"})
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "session"

    # The locks fail: nothing goes through unchecked.
    for sem in httpd.sems:
        subprocess.run(["ipcrm", "-s", str(sem)], check=True)
    mark = httpd.error_log_mark()
    status, headers, _, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)
    assert status == 503 and headers["retry-after"] == "5"
    status, _, _ = kdclient.request(httpd, "/private/cgi/env.cgi",
                                    headers={"Cookie": f"kdeleg_session={alices}"})
    assert status == 401
    lines = httpd.error_log_since(mark)
    assert "replay-cache-unavailable" in kdclient.causes(lines)
    assert any("cannot lock the replay cache" in m for _, _, m in kdclient.kd_lines(lines,
                                                                                     "KD00301"))
    assert kdclient.kd_lines(lines, "KD00725")


# ------------------------------------------------------------ subrequests

SSI = """<p>PLAIN</p>
<!--#include virtual="/plain/env.cgi" -->
<p>SAME</p>
<!--#include virtual="/deleg/env.cgi" -->
<p>NOTALLOWED</p>
<!--#include virtual="/notallowed/env.cgi" -->
<p>STRICT</p>
<!--#include virtual="/strict/env.cgi" -->
<p>END</p>
"""


@pytest.fixture
def ssi_front(kd_httpd, kdc):
    def conf(d):
        private_ccache_dir(d)
        os.makedirs(f"{d}/htdocs/deleg", exist_ok=True)
        with open(f"{d}/htdocs/deleg/page.shtml", "w") as f:
            f.write(SSI)
        auth = "    AuthType Negotiate\n    Require valid-user\n"
        return negotiate_conf(kdc.r, d, "node1", extra=f"""
ScriptAlias /plain/ "{d}/cgi-bin/"
ScriptAlias /notallowed/ "{d}/cgi-bin/"
ScriptAlias /strict/ "{d}/cgi-bin/"
Alias /deleg/page.shtml "{d}/htdocs/deleg/page.shtml"
ScriptAlias /deleg/ "{d}/cgi-bin/"
<Directory "{d}/htdocs/deleg">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
    Require all granted
</Directory>
<Location /deleg/>
{auth}    KdelegDelegateTo HTTP/{kdc.host("backend")}
    KdelegCcacheDir "{d}/ccache"
</Location>
<Location /plain/>
{auth}</Location>
<Location /notallowed/>
{auth}    KdelegDelegateTo HTTP/{kdc.host("other")}
    KdelegCcacheDir "{d}/ccache"
</Location>
<Location /strict/>
{auth}    KdelegRealms NOWHERE.TEST
</Location>
""")
    httpd = kd_httpd("ssi", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf, extra_modules=("include", "socache_shmcb"))
    # mod_include's own line for each subrequest we expect to be refused
    httpd.allowed |= {"KD00301", "KD00401", 'include "/notallowed/env.cgi"',
                      'include "/strict/env.cgi"'}
    return httpd


def sections(body):
    parts = re.split(r"<p>([A-Z]+)</p>", body)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_subrequests_decide_their_own_delegation(ssi_front, kdc, kdc_alice):
    mark = ssi_front.error_log_mark()
    status, _, body, _ = kdclient.negotiate(ssi_front, "/deleg/page.shtml", kdc_alice)
    assert status == 200, body
    parts = sections(body)
    plain = kdclient.cgi_env(parts["PLAIN"])
    same = kdclient.cgi_env(parts["SAME"])
    # the identity is reused, the credentials are not
    assert plain["REMOTE_USER"] == same["REMOTE_USER"] == kdc.user("alice")
    assert "KRB5CCNAME" not in plain
    assert same["KRB5CCNAME"].startswith("FILE:")
    # a target this service may not delegate to: that subrequest's own refusal
    assert "REMOTE_USER" not in parts["NOTALLOWED"]
    # a stricter realm policy holds for the subrequest too
    assert "REMOTE_USER" not in parts["STRICT"]
    lines = ssi_front.error_log_since(mark)
    deleg = [re.search(r"cause ([a-z-]+)", m).group(1)
             for _, _, m in kdclient.kd_lines(lines, "KD00401")]
    assert deleg == ["delegation-not-allowed"]
    assert kdclient.causes(lines) == ["realm-not-allowed"]


# ------------------------------------------------------------ leftovers

SLOW_CGI = """#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "KRB5CCNAME=$KRB5CCNAME"
sleep 30
"""


@pytest.fixture
def sweep_front(kd_httpd, realm):
    def conf(d):
        private_ccache_dir(d)
        os.makedirs(f"{d}/cgi-bin", exist_ok=True)
        with open(f"{d}/cgi-bin/slow.cgi", "w") as f:
            f.write(SLOW_CGI)
        os.chmod(f"{d}/cgi-bin/slow.cgi", 0o755)
        return negotiate_conf(realm, d, "node1", location_extra=f"""    KdelegDelegateTo HTTP/backend.example.test
    KdelegCcacheDir "{d}/ccache"
""", extra="Timeout 3\nKeepAlive Off\n")
    httpd = kd_httpd("sweep", "127.0.0.2", server_name=NODE1, mpm="prefork", conf_fn=conf)
    httpd.ccache_dir = os.path.join(httpd.dir, "ccache")
    return httpd


def caches(d):
    return sorted(f for f in os.listdir(d) if f.startswith("krb5cc_kdeleg_"))


def test_caches_of_killed_children_are_swept(sweep_front, realm, alice_ccache):
    httpd, d = sweep_front, sweep_front.ccache_dir
    status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)
    assert status == 200
    mine = re.search(r"krb5cc_kdeleg_([0-9a-f]{8})_\d+_", kdclient.cgi_env(body)["KRB5CCNAME"])
    instance = mine.group(1)
    assert kdclient.settled_listing(d) == []   # removed when the request ended

    # Caches that are not a dead child's of this instance, all an hour old:
    # another instance's, and one whose writer (this test) is alive.
    hour_ago = time.time() - 3600
    planted = {f"krb5cc_kdeleg_{'0' * 8 if instance != '0' * 8 else '1' * 8}_1_AAAAAA",
               f"krb5cc_kdeleg_{instance}_{os.getpid()}_BBBBBB"}
    for name in planted:
        with open(os.path.join(d, name), "w") as f:
            f.write("not a real cache")
        os.utime(os.path.join(d, name), (hour_ago, hour_ago))

    # A child killed mid-request leaves its cache behind.
    def slow():
        import http.client
        try:
            kdclient.negotiate(httpd, "/private/cgi/slow.cgi", alice_ccache)
        except (OSError, http.client.HTTPException):
            pass   # the child serving it is killed
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while len(caches(d)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    left = set(caches(d)) - planted
    assert len(left) == 1
    killed = httpd.processes()[1:]
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    t.join(10)
    time.sleep(0.5)
    assert set(caches(d)) - planted == left

    # A graceful restart right away: the cache is younger than Timeout, it
    # might be a live request's; it stays.
    mark = httpd.error_log_mark()
    httpd.reload()
    assert set(caches(d)) - planted == left
    assert not kdclient.kd_lines(httpd.error_log_since(mark), "KD00204")

    # Older than the longest Timeout and its writer dead: removed.
    time.sleep(3.5)
    httpd.reload()
    assert set(caches(d)) == planted
    swept = kdclient.kd_lines(httpd.error_log_since(mark), "KD00204")
    assert swept and "removed 1 " in swept[0][2] and d in swept[0][2]
    for name in planted:
        os.unlink(os.path.join(d, name))
    # Should the parent log the children we killed (as it logs a crash),
    # those lines, and only those, are expected.
    problems = kdclient.unexpected_problems(httpd.error_log_since(httpd.start_mark),
                                            httpd.allowed)
    assert all(re.search(r"AH00052: child pid (\d+) exit signal Killed", l)
                            and int(re.search(r"pid (\d+)", l).group(1)) in killed
                            for l in problems), problems
    httpd.start_mark = httpd.error_log_mark()
