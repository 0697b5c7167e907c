"""The lab itself works: LDAP-backed realm, keytabs, live delegation ACLs,
httpd (event and prefork) and haproxy, and clean stops."""

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

import kdlab
from kdnames import BADOPTION

KDLAB = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     "..", "lab", "kdlab.py"))


def gone(pid):
    """True once pid has exited (a zombie awaiting its reaper counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def wait_gone(pids, timeout=5):
    deadline = time.monotonic() + timeout
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.headers, resp.read().decode()


def principals_in(path):
    return {p for _, p, _ in kdlab.keytab_entries(path)}


# ------------------------------------------------------------------ realm

def test_slapd_holds_principals(realm):
    out = realm.ldapsearch("(krbPrincipalName=*)", "krbPrincipalName")
    names = set(re.findall(r"^krbPrincipalName: (.*)$", out, re.M))
    expected = {realm.principal(u) for u in ("alice", "bob", "carol")}
    expected |= {realm.service(s) for s in kdlab.SERVICES}
    assert expected <= names
    # The TCP listener answers too, not only the ldapi socket.
    proc = subprocess.run(["ldapsearch", "-x", "-H", realm.ldap_uri, "-b", "",
                           "-s", "base"], capture_output=True, env=kdlab.base_env())
    assert proc.returncode == 0, proc.stderr


def test_delegation_acls_and_flags(realm):
    targets = {realm.service("HTTP/backend"), realm.service("postgres/db"),
               realm.service("HTTP/legacy")}
    for svc in ("HTTP/vip", "HTTP/node1", "HTTP/node2"):
        assert set(realm.delegation(realm.service(svc))) == targets
    assert realm.delegation(realm.service("HTTP/other")) == []

    def attributes(name):
        out = realm.kadmin(f"getprinc {name}")
        return re.search(r"^Attributes:(.*)$", out, re.M)[1].split()

    assert "OK_TO_AUTH_AS_DELEGATE" in attributes(realm.service("HTTP/node1"))
    assert "OK_TO_AUTH_AS_DELEGATE" in attributes(realm.service("HTTP/vip"))
    assert "OK_TO_AUTH_AS_DELEGATE" not in attributes(realm.service("HTTP/node2"))
    assert "REQUIRES_PRE_AUTH" in attributes("alice")
    assert "DISALLOW_FORWARDABLE" in attributes("carol")


def test_keytab_contents(realm):
    svc = realm.service
    assert principals_in(realm.keytab("node1")) == {
        svc("HTTP/vip"), svc("HTTP/node1"), svc("HTTP/other")}
    assert principals_in(realm.keytab("node2")) == {svc("HTTP/vip"), svc("HTTP/node2")}
    assert principals_in(realm.keytab("node1-novip")) == {svc("HTTP/node1")}
    assert principals_in(realm.keytab("backend")) == {svc("HTTP/backend")}
    assert principals_in(realm.keytab("db")) == {svc("postgres/db")}
    if os.geteuid() == 0:
        st = os.stat(realm.keytab("node1"))
        assert st.st_mode & 0o777 == 0o640
        assert st.st_gid == pwd.getpwnam("www-data").pw_gid


def test_kvno_matches_keytab(realm, alice_ccache):
    out = realm.run(["kvno", "HTTP/node1.example.test"], alice_ccache).stdout
    kvno = int(re.search(r"kvno = (\d+)", out)[1])
    node1 = realm.service("HTTP/node1")
    assert {k for k, p, _ in kdlab.keytab_entries(realm.keytab("node1"))
            if p == node1} == {kvno}
    # -k decrypts the ticket with the keytab: keys, not only numbers, agree.
    realm.run(["kvno", "-k", realm.keytab("node1"), "HTTP/node1.example.test"],
              alice_ccache)


# ------------------------------------------------------------ delegation

def s4u2proxy(realm, keytab, service, user, target):
    """kinit as service from keytab, then S4U2Self for user + S4U2Proxy to
    target: returns (CompletedProcess, KDC log lines of the exchange)."""
    ccache = realm.path("ccache", f"svc-{keytab}-{user}-{time.monotonic_ns()}.cc")
    realm.kinit(realm.service(service), ccache, keytab=realm.keytab(keytab))
    mark = realm.kdc_log_mark()
    proc = realm.run(["kvno", "-U", user, "-P", realm.service(target)], ccache,
                     check=False)
    return proc, "\n".join(realm.kdc_log_since(mark))


@pytest.mark.parametrize("target", ["HTTP/backend", "postgres/db"])
def test_s4u2proxy_allowed(realm, target):
    proc, log = s4u2proxy(realm, "node1", "HTTP/node1", "alice", target)
    assert proc.returncode == 0, proc.stderr
    assert "PROTOCOL-TRANSITION s4u-client=alice@EXAMPLE.TEST" in log
    assert "CONSTRAINED-DELEGATION s4u-client=alice@EXAMPLE.TEST" in log


@pytest.mark.parametrize("keytab,service,user,target,status", [
    # No protocol transition: the S4U2Self ticket is not forwardable.
    ("node2", "HTTP/node2", "alice", "HTTP/backend", "EVIDENCE_TKT_NOT_FORWARDABLE"),
    # Target not in krbAllowedToDelegateTo.
    ("node1", "HTTP/node1", "alice", "HTTP/other", "UNSUPPORTED_S4U2PROXY_REQUEST"),
    # carol is not delegable (-allow_forwardable).
    ("node1", "HTTP/node1", "carol", "HTTP/backend", "EVIDENCE_TKT_NOT_FORWARDABLE"),
])
def test_s4u2proxy_refused(realm, keytab, service, user, target, status):
    proc, log = s4u2proxy(realm, keytab, service, user, target)
    assert proc.returncode != 0
    assert BADOPTION in proc.stderr
    assert status in log


def test_delegation_acl_is_live(realm):
    """The KDC reads krbAllowedToDelegateTo from LDAP on every request."""
    node1 = realm.service("HTTP/node1")
    saved = realm.delegation(node1)
    try:
        realm.set_delegation(node1, [realm.service("postgres/db")])
        proc, _ = s4u2proxy(realm, "node1", "HTTP/node1", "alice", "HTTP/backend")
        assert BADOPTION in proc.stderr
    finally:
        realm.set_delegation(node1, saved)
    proc, _ = s4u2proxy(realm, "node1", "HTTP/node1", "alice", "HTTP/backend")
    assert proc.returncode == 0, proc.stderr


def test_gssapi_accept_and_impersonate(realm, alice_ccache, monkeypatch):
    """python3-gssapi works against the lab: alice -> HTTP/node1 accepted
    with node1.keytab, and node1 impersonates alice toward HTTP/backend."""
    gssapi = pytest.importorskip("gssapi")
    for key, value in realm.env(alice_ccache).items():
        monkeypatch.setenv(key, value)
    spn = gssapi.Name("HTTP@node1.example.test",
                      gssapi.NameType.hostbased_service)
    client = gssapi.SecurityContext(name=spn, usage="initiate")
    acceptor = gssapi.Credentials(usage="accept", name=spn,
                                  store={"keytab": realm.keytab("node1")})
    server = gssapi.SecurityContext(creds=acceptor, usage="accept")
    server.step(client.step())
    assert str(server.initiator_name) == "alice@EXAMPLE.TEST"

    svc_ccache = realm.path("ccache", "gss-node1.cc")
    realm.kinit(realm.service("HTTP/node1"), svc_ccache, keytab=realm.keytab("node1"))
    svc = gssapi.Credentials(usage="initiate", store={"ccache": "FILE:" + svc_ccache})
    alice = svc.impersonate(gssapi.Name("alice@EXAMPLE.TEST",
                                        gssapi.NameType.kerberos_principal),
                            usage="initiate")
    backend = gssapi.Name("HTTP@backend.example.test",
                          gssapi.NameType.hostbased_service)
    token = gssapi.SecurityContext(name=backend, creds=alice, usage="initiate").step()
    assert token


def test_rekey_moves_kdc_ahead_of_keytab(realm, alice_ccache):
    name = realm.service("HTTP/rekey")
    realm.kadmin(f"addprinc -randkey {name}")
    keytab = realm.path("keytabs", "rekey.keytab")
    realm.ktadd(name, keytab)
    old = realm.kdc_kvno(name)
    assert {k for k, _, _ in kdlab.keytab_entries(keytab)} == {old}

    assert realm.rekey(name) == old + 1
    proc = realm.run(["kvno", "-k", keytab, name], alice_ccache, check=False)
    assert proc.returncode != 0
    assert f"kvno = {old + 1}, keytab entry invalid" in proc.stderr

    realm.ktadd(name, keytab)
    assert {k for k, _, _ in kdlab.keytab_entries(keytab)} == {old, old + 1}
    realm.run(["kvno", "-k", keytab, name], alice_ccache)


def test_kadmin_raises_on_failure(realm):
    with pytest.raises(kdlab.KadminError):
        realm.kadmin("getprinc nobody-such")


# ------------------------------------------------------------ httpd etc.

@pytest.mark.parametrize("mpm,ip", [("event", "127.0.0.2"), ("prefork", "127.0.0.3")])
def test_httpd_serves_and_stops_clean(realm, httpd_factory, mpm, ip):
    httpd = httpd_factory(f"lab-{mpm}", ip, mpm=mpm)
    status, _, body = get(httpd.url("/"))
    assert status == 200 and f"lab-{mpm}.example.test" in body

    _, headers, body = get(httpd.url("/cgi-bin/env.cgi"))
    assert headers.get_content_type() == "text/plain"
    env = dict(line.split("=", 1) for line in body.splitlines())
    assert env["KRB5_CONFIG"] == realm.krb5_conf
    assert env["SERVER_ADDR"] == ip

    procs = httpd.processes()
    assert len(procs) >= 2
    if os.geteuid() == 0:
        www = pwd.getpwnam("www-data").pw_uid
        # A prefork child may exit (idle reaping) between the listing and
        # the stat; judge the children that are still there, and need one.
        owners = []
        for p in procs[1:]:
            try:
                owners.append(os.stat(f"/proc/{p}").st_uid)
            except FileNotFoundError:
                pass
        assert owners and all(uid == www for uid in owners)

    mark = httpd.error_log_mark()
    with pytest.raises(urllib.request.HTTPError):
        get(httpd.url("/no-such-file"))
    assert any("AH00128" in line for line in httpd.error_log_since(mark))

    httpd.reload(conf='Header always set X-Lab "reloaded"\n')
    assert get(httpd.url("/"))[1]["X-Lab"] == "reloaded"

    procs = httpd.processes()
    httpd.stop()
    assert wait_gone(procs) == []
    assert httpd.pid is None
    httpd.stop()  # twice is fine


def test_haproxy_round_robin(realm, httpd_factory, haproxy_factory):
    a = httpd_factory("rr-a", "127.0.0.2")
    b = httpd_factory("rr-b", "127.0.0.3")
    proxy = haproxy_factory("127.0.0.10", None, [(a.ip, a.port), (b.ip, b.port)])
    bodies = {get(proxy.url("/"))[2] for _ in range(4)}
    assert bodies == {f"<html><body>{h.server_name}</body></html>\n" for h in (a, b)}
    pid = kdlab.recorded_pid(realm.base, proxy.name)
    proxy.stop()
    assert wait_gone([pid]) == []


@pytest.fixture
def cli_dir():
    top = tempfile.mkdtemp(prefix="kdlab-cli-")
    yield os.path.join(top, "lab")
    kdlab.stop_all(os.path.join(top, "lab"))  # in case the test failed early
    shutil.rmtree(top)


def test_cli_start_env_stop(cli_dir):
    """start/env/stop from other processes; stop finds an httpd it did not start."""
    base, py = cli_dir, "/usr/bin/python3"
    t0 = time.monotonic()
    start = subprocess.run([py, KDLAB, "start", "--dir", base], capture_output=True,
                           text=True, env=kdlab.base_env())
    started = time.monotonic() - t0
    assert start.returncode == 0, start.stderr
    try:
        exports = dict(re.findall(r"^export (\w+)=(.*)$", start.stdout, re.M))
        assert exports["KRB5_CONFIG"] == os.path.join(base, "krb5.conf")
        env = subprocess.run([py, KDLAB, "env", "--dir", base], capture_output=True,
                             text=True, env=kdlab.base_env()).stdout
        assert env == start.stdout

        # Another process (this one) adds an httpd; the CLI stop finds it too.
        kdlab.Httpd(base, "cli-node", "127.0.0.4").start(kdlab.Realm.load(base).env())
        names = [f[:-4] for f in os.listdir(os.path.join(base, "pids"))]
        assert sorted(names) == ["httpd-cli-node", "krb5kdc", "slapd"]
        pids = [kdlab.recorded_pid(base, name) for name in names]
        pids += [c for p in pids for c in kdlab.descendants(p)]
    finally:
        t0 = time.monotonic()
        stop = subprocess.run([py, KDLAB, "stop", "--dir", base], capture_output=True,
                              text=True, env=kdlab.base_env())
        stopped = time.monotonic() - t0
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids) == []
    assert os.listdir(os.path.join(base, "pids")) == []
    again = subprocess.run([py, KDLAB, "stop", "--dir", base], env=kdlab.base_env())
    assert again.returncode == 0
    print(f"\nCLI realm start {started:.2f} s, stop {stopped:.2f} s", file=sys.stderr)
