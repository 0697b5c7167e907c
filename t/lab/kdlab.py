#!/usr/bin/python3
"""kdlab: a throw-away Kerberos lab for mod_kdeleg integration tests.

One base directory holds everything: an OpenLDAP slapd, an MIT KDC with the
LDAP back end (the DB2 back end refuses every S4U2Proxy), keytabs, httpd
instances and haproxy.  Every server is a child process whose PID is recorded
under <base>/pids/, so any process (pytest, a demo script, `kdlab.py stop`)
can stop them all.  Nothing outside the base directory is written, and
nothing uses DNS: hosts are loopback addresses, names come from krb5.conf.

Standard library only; run with /usr/bin/python3.

Library
-------
free_port(ip="127.0.0.1") -> int          a TCP port free on ip, never handed out twice
base_env() -> dict                        clean PATH/LANG to build child envs on
keytab_entries(path) -> [(kvno, principal, enctype)]   parses klist -k -t -e
stop_all(base_dir, timeout=10)            stops every recorded PID in base_dir
record_pid(base_dir, name, pid); recorded_pid(base_dir, name) -> pid or None
descendants(pid) -> [pids]                children, grandchildren... from /proc

Realm(base_dir, realm="EXAMPLE.TEST", domain="example.test")
    start()                 slapd + realm in LDAP + principals + keytabs + KDC
    stop()                  stops the KDC and slapd (safe twice, any process)
    Realm.load(base_dir)    the Realm a previous start() left in base_dir
    env(ccache=None, trace=None) -> dict   KRB5_CONFIG, KRB5RCACHEDIR,
                            KRB5CCNAME (given ccache path, else a default cache
                            inside the base dir), KRB5_TRACE if trace is given
    kinit(principal, ccache_path, password=None, lifetime=None, keytab=None)
                            TGT into FILE:ccache_path; lab users default to
                            their lab password (sent on stdin)
    run(args, ccache=None, input=None, check=True) -> CompletedProcess
                            any client tool with the lab env
    kadmin(cmd) -> str      kadmin.local -q cmd; raises KadminError on failure
    modprinc(principal, flags)     e.g. "+ok_to_auth_as_delegate" or a list
    rekey(principal) -> int        cpw -randkey; returns the new KDC kvno
    kdc_kvno(principal) -> int
    ktadd(principal, keytab, norandkey=True)
    keytab(name) -> path           <base>/keytabs/<name>.keytab
    keytab_entries(path)           same as the module function
    set_delegation(principal, targets)   replace krbAllowedToDelegateTo
    delegation(principal) -> [targets]
    ldapsearch(filter, *attrs) -> str    LDIF, unwrapped
    principal_dn(principal) -> str
    principal(name) -> "name@REALM"; service(svc, host) -> "svc/host.domain@REALM"
    kdc_log_mark() / kdc_log_since(mark) -> [lines]
    stop_kdc() / start_kdc()     the KDC alone (slapd keeps running)
    stop_slapd() / start_slapd() the directory alone (the KDC keeps running)
    kinit_fast(principal, ccache_path, password=None) -> ccache_path   kinit
                            through FAST with anonymous PKINIT armor: its
                            tickets carry the authentication indicator
                            FAST_INDICATOR ("fast", encrypted_challenge_indicator)
    kinit_anonymous(ccache_path) -> ccache_path   kinit -n @REALM: anonymous
                            PKINIT (always on, no password), default principal
                            ANONYMOUS_PRINCIPAL = WELLKNOWN/ANONYMOUS@WELLKNOWN:
                            ANONYMOUS, TGT krbtgt/REALM@REALM flagged anonymous;
                            good for service tickets (kvno, python-gssapi)
    kdc_cert, kdc_key, ca_pem    the PKINIT files (TestCA in <base>/ca/)

TestCA(base_dir)            throw-away CA (openssl; EC P-256, 2 days) made on
                            first use in <base>/ca/: .pem = ca.pem, ca.key 0600
    issue(name, hosts) -> (cert_path, key_path)   server cert: SAN DNS for
                            every host, CN hosts[0], EKU serverAuth; key 0600
                            (mod_ssl and haproxy read it as root); an
                            existing name returns its files
    bundle(name, hosts) -> path   cert + key in one PEM (haproxy `crt`)
    issue_client(name, cn) -> (cert_path, key_path)   TLS client certificate,
                            CN=cn, EKU clientAuth
    issue_kdc(realm, name="kdc") -> (cert_path, key_path)   PKINIT KDC
                            certificate: EKU id-pkinit-KPKdc, SAN otherName
                            id-pkinit-san = krbtgt/REALM@REALM; made anew on
                            every call

Httpd(base_dir, name, ip, port=None, module_path=None, mpm="event",
      extra_modules=(), conf="", server_name=None, tls=None)
    start(env=None)         writes <base>/<name>/httpd.conf, runs apache2 -k
                            start; env is usually realm.env()
    stop(); reload(conf=None)  (graceful, SIGUSR1; waits for the restart)
    error_log_mark() / error_log_since(mark) -> [lines]
    url(path="/", host=None); scheme; pid; processes() -> [pids of main + children]
    tls=(cert_path, key_path): mod_ssl (+ socache_shmcb) loaded, the main
                            server (no vhost) is https only: Listen ip:port
                            https, SSLEngine on, TLS 1.2/1.3

private_ccache_dir(httpd_dir) -> <httpd_dir>/ccache, 0700, owned by the httpd
                            user: a KdelegCcacheDir as an administrator makes it

Haproxy(base_dir, ip, port, backends, name="haproxy", tls=None, global_options=(),
        httpchk=None)
    start(); stop(); url(path="/"); scheme   round robin over [(ip, port), ...]
    httpchk="GET /kdeleg-health": health checks every 300 ms (fall 2, rise 2),
    state changes in its log
    tls=None plain http; ("passthrough",) mode tcp, TLS ends at the nodes;
    ("terminate", bundle_path) https at haproxy, plain http to the nodes,
    X-Forwarded-Proto: https added

KdcRelay(ip, upstream)      a TCP hop between a server and a real KDC

Memcached(base_dir, ip, port=None, memory_mb=64, no_evict=True)
Redis(base_dir, ip, port=None, policy="noeviction", maxmemory="64mb")
    start(); stop(); kill() (SIGKILL); pause()/resume() (SIGSTOP/SIGCONT);
    spec -> "memcache:IP:PORT" / "redis:IP:PORT" (KdelegReplayCache);
    command(...) -> the raw reply (memcached text protocol; redis RESP);
    Memcached.stats() -> dict; Redis.dbsize() -> int
    (upstream = (ip, port)), run in threads of the test process. mode
    "forward" relays each request; "blackhole" accepts connections and
    reads requests but never answers (a closed port is refused at once,
    which proves nothing about timeouts). refuse() stops listening (every
    connection refused at once: a KDC that is down), resume() listens on
    the same port again. .requests counts requests seen,
    .krb5_conf(realm_conf, path) writes a copy of a realm's krb5.conf whose
    KDC is the relay; close_held() hangs up the connections the black hole
    holds; down() stops listening (connections refused at once, as by a
    stopped KDC) and hangs up held connections, up() listens again on the
    same port; close() ends the relay and every connection it holds.

Postgres(base_dir, realm, ip="127.0.0.5", port=None, name="postgres")
    start()                 initdb (as the postgres OS user when root) into
                            <base>/<name>/data, postgres in the foreground
                            with KRB5_CONFIG; GSSAPI logins for
                            postgres/db.<domain> (krb_server_keyfile = a copy
                            of keytab("db")); database app, roles alice and
                            bob, table notes(owner default current_user, body)
    stop()                  SIGINT (fast shutdown) by recorded PID
    psql_args(user, dbname="app") -> libpq conninfo: host=db.<domain>
                            hostaddr=ip port dbname user gssencmode=require
                            krbsrvname=postgres
    psql(user, *commands, ccache=None, dbname="app", check=True)
                            -> CompletedProcess of psql -XqAt -F= (Kerberos)
    admin_sql(sql, dbname="app") -> stdout, as superuser over the socket
    log_mark() / log_since(mark) -> [lines]   (log_connections = on)

Realm directory layout
----------------------
<base>/realm.json        state for Realm.load (ports, names)
                         (anonymous PKINIT is always on: kdc.conf names
                         ca/kdc.pem + ca/kdc.key, both confs ca/ca.pem;
                         principal WELLKNOWN/ANONYMOUS; needs krb5-pkinit)
<base>/krb5.conf         for every process (KDC, httpd, clients)
<base>/kdc.conf          KRB5_KDC_PROFILE for krb5kdc and kadmin.local
<base>/kdc.log           KDC log (AS_REQ/TGS_REQ lines), kdc.stderr
<base>/stash, service.pwd   master key stash, LDAP bind password stash
<base>/ldap/             slapd.conf, kerberos.schema, data/, ldapi socket,
                         slapd.pid, slapd.args, slapd.log
<base>/keytabs/          node1 (vip+node1+other), node2 (vip+node2), backend,
                         db, node1-novip (node1 only), legacy (HTTP/legacy,
                         RC4 keys only), and alice/bob/carol/dave
                         client keytabs; 0640 root:www-data when root
<base>/rcache/, ccache/  client replay caches, default client ccache
<base>/pids/             one record per running server: "PID STARTTIME"
<base>/module_path       the --module given to `kdlab.py start`, if any
<base>/ca/               TestCA: ca.pem, ca.key, <name>.pem/.key/.ext,
                         <name>.bundle.pem; kdc.pem/.key (the realm's
                         PKINIT identity, made at every realm start)
<base>/<httpd name>/     httpd.conf, htdocs/, cgi-bin/env.cgi, logs/, run/,
                         rcache/ (each httpd is its own host: own replay
                         cache and default ccache, KRB5CCNAME/KRB5RCACHEDIR)
<base>/<haproxy name>/   haproxy.cfg, haproxy.log
<base>/<postgres name>/  data/ (pg_hba.conf: hostgssenc/host ... gss
                         include_realm=0 krb_realm=REALM; local postgres
                         trust), run/ (unix socket, 0700), postgres.keytab
                         (0600), rcache/, postgres.log; owned by postgres
                         when root

CLI
---
kdlab.py start --dir DIR [--module PATH]   start a realm, print its env
kdlab.py stop --dir DIR                    stop everything recorded in DIR
kdlab.py env --dir DIR                     print `export KEY=VALUE` lines
"""

import argparse
import concurrent.futures
import glob
import gzip
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

RUN_USER = "www-data"
APACHE_MODULES = "/usr/lib/apache2/modules"
KERBEROS_SCHEMA = "/usr/share/doc/krb5-kdc-ldap/kerberos.schema.gz"
LDAP_SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

# Lab secrets: this realm lives for one test session on loopback only.
LDAP_PASSWORD = "ldap-admin-secret"
MASTER_PASSWORD = "kdc-master-secret"
USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-1",
         "carol": "carol-Secret-1", "dave": "dave-Secret-1"}
# carol is "sensitive and cannot be delegated"; dave is disabled.
USER_FLAGS = {"carol": ["-allow_forwardable"], "dave": ["-allow_tix"]}
SERVICES = ("HTTP/vip", "HTTP/node1", "HTTP/node2", "HTTP/backend",
            "HTTP/other", "postgres/db")
DELEGATORS = ("HTTP/vip", "HTTP/node1", "HTTP/node2")
DELEGATION_TARGETS = ("HTTP/backend", "postgres/db", "HTTP/legacy")
# Keys of one enctype only, like an AD account without
# msDS-SupportedEncryptionTypes: RC4.
RC4_SERVICES = ("HTTP/legacy",)
PROTOCOL_TRANSITION = ("HTTP/vip", "HTTP/node1")  # not HTTP/node2
# Anonymous PKINIT (kinit -n, RFC 8062): the client's name in the ticket.
ANONYMOUS_PRINCIPAL = "WELLKNOWN/ANONYMOUS@WELLKNOWN:ANONYMOUS"
PKINIT_PLUGIN = "/usr/lib/*/krb5/plugins/preauth/pkinit.so"  # krb5-pkinit
# The authentication indicator of a login through FAST (kinit_fast): the
# realm's encrypted_challenge_indicator.
FAST_INDICATOR = "fast"
KEYTABS = {
    "node1": ("HTTP/vip", "HTTP/node1", "HTTP/other"),
    "node2": ("HTTP/vip", "HTTP/node2"),
    "backend": ("HTTP/backend",),
    "db": ("postgres/db",),
    "node1-novip": ("HTTP/node1",),
    "legacy": ("HTTP/legacy",),
}


class LabError(RuntimeError):
    pass


class KadminError(LabError):
    pass


# ---------------------------------------------------------------- helpers

_issued_ports = set()


def free_port(ip="127.0.0.1"):
    """A port free on ip now and never handed out before in this process.
    The kernel may give a just-released ephemeral port again at once, so
    two calls before the servers start could return the same number (CI
    saw "Cannot define multiple Listeners on the same IP:port")."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port
    raise LabError(f"no fresh free port on {ip}")


def shared_port(*ips):
    """A port number free on every one of ips: a load-balanced site's
    balancer and nodes listen on one port, as in most real farms, so the
    VIP's cookie scope (scheme, host, port) is the same on every node.
    (With different ports, ServerName https://vip:443 pins the port.)"""
    for _ in range(50):
        port = free_port(ips[0])
        try:
            for ip in ips[1:]:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((ip, port))
            return port
        except OSError:
            continue
    raise LabError(f"no common free port on {ips}")


def base_env():
    """A clean environment: nothing from the caller (KRB5CCNAME, ...) leaks."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C"}


def _as_root():
    if os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam(RUN_USER)
        return True
    except KeyError:
        return False


def _share_with_httpd(path, mode):
    """Let httpd children (User www-data) read path when we run as root."""
    os.chmod(path, mode)
    if _as_root():
        gid = pwd.getpwnam(RUN_USER).pw_gid
        os.chown(path, -1, gid)


def _mkdir(path, mode=0o755):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    return path


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def _tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _port_open(ip, port):
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_for(predicate, timeout, what, details=lambda: ""):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LabError(f"timed out waiting for {what}\n{details()}")
        time.sleep(0.01)


def _run(args, env, input=None, check=True):
    proc = subprocess.run(args, env=env, input=input, capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise LabError(f"{shlex.join(args)} failed ({proc.returncode}):\n"
                       f"{proc.stdout}{proc.stderr}")
    return proc


def keytab_entries(path):
    """[(kvno, principal, enctype)] of a keytab, in file order."""
    out = _run(["klist", "-k", "-t", "-e", path], base_env()).stdout
    pattern = re.compile(r"^\s*(\d+)\s.*\s(\S+@\S+)\s+\(([^)]+)\)\s*$")
    return [(int(m[1]), m[2], m[3])
            for m in map(pattern.match, out.splitlines()) if m]


# ------------------------------------------------------- process records
#
# A record is <base>/pids/<name>.pid holding "PID STARTTIME".  The start time
# (from /proc) guards against signalling an unrelated process that reused the
# PID after ours died.

def _stat(pid):
    """Fields of /proc/PID/stat after the command name ([0] state, [1] ppid,
    [19] start time), or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _alive(pid, start):
    """A zombie counts as gone: it has exited, only its reaper is late."""
    fields = _stat(pid)
    if fields is None or fields[19] != start:
        return False
    if fields[0] == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its own parent (or init) reaps it


def descendants(pid):
    """All descendants of pid (httpd workers, cgid daemon...)."""
    by_parent = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(entry)
        if fields:
            by_parent.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = by_parent.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def log_mark(path):
    """Where a log file ends now (0 when it does not exist yet)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def lines_since(path, mark):
    """The lines a log file gained after mark ([] when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            f.seek(mark)
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _pids_dir(base_dir):
    return os.path.join(base_dir, "pids")


def record_pid(base_dir, name, pid):
    fields = _stat(pid)
    if fields is None:
        raise LabError(f"{name}: process {pid} is gone")
    _mkdir(_pids_dir(base_dir))
    _write(os.path.join(_pids_dir(base_dir), name + ".pid"),
           f"{pid} {fields[19]}\n")


def _read_record(base_dir, name):
    try:
        with open(os.path.join(_pids_dir(base_dir), name + ".pid")) as f:
            pid, start = f.read().split()
        return int(pid), start
    except (OSError, ValueError):
        return None


def recorded_pid(base_dir, name):
    """The PID recorded under name if that process still runs, else None."""
    rec = _read_record(base_dir, name)
    return rec[0] if rec and _alive(*rec) else None


def stop_recorded(base_dir, names, timeout=10):
    """SIGTERM the named servers together, wait for them and their children,
    SIGKILL whatever is left after timeout, then drop the records."""
    procs = []
    for name in names:
        rec = _read_record(base_dir, name)
        if rec and _alive(*rec):
            kids = [(k, _stat(k)) for k in descendants(rec[0])]
            procs.append(rec)
            procs += [(k, fields[19]) for k, fields in kids if fields]
            _signal(rec[0], signal.SIGTERM)
    try:
        _wait_for(lambda: not any(_alive(*p) for p in procs), timeout,
                  "processes to exit")
    except LabError:
        for p in procs:
            if _alive(*p):
                _signal(p[0], signal.SIGKILL)
        _wait_for(lambda: not any(_alive(*p) for p in procs), 5,
                  "killed processes to exit")
    for name in names:
        try:
            os.unlink(os.path.join(_pids_dir(base_dir), name + ".pid"))
        except FileNotFoundError:
            pass


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_all(base_dir, timeout=10):
    """Stop every server recorded under base_dir (any process may call it)."""
    try:
        names = [f[:-4] for f in os.listdir(_pids_dir(base_dir))
                 if f.endswith(".pid")]
    except FileNotFoundError:
        return
    stop_recorded(base_dir, names, timeout)


def _spawn(base_dir, name, args, env, log_path):
    """Start a foreground server in its own session, output to log_path."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    record_pid(base_dir, name, proc.pid)
    return proc


def _check_running(proc, name, log_path):
    if proc.poll() is not None:
        raise LabError(f"{name} exited with {proc.returncode}:\n"
                       f"{_tail(log_path)}")
    return True


# ------------------------------------------------------------------ realm

class Realm:
    STATE = "realm.json"
    kind = "mit"  # adlab.ADRealm.kind is "ad"

    def __init__(self, base_dir, realm="EXAMPLE.TEST", domain="example.test"):
        self.base = os.path.abspath(base_dir)
        self.realm = realm
        self.domain = domain
        self.suffix = ",".join("dc=" + p for p in domain.split("."))
        self.rootdn = "cn=admin," + self.suffix
        self.ldap_port = None
        self.kdc_port = None
        p = self.path
        self.krb5_conf, self.kdc_conf = p("krb5.conf"), p("kdc.conf")
        self.kdc_log = p("kdc.log")
        self.ldap_dir = p("ldap")
        self.keytab_dir = p("keytabs")
        self.ldapi_path = p("ldap", "ldapi")
        self.ldapi_uri = "ldapi://" + self.ldapi_path.replace("/", "%2F")
        # Anonymous PKINIT: the KDC's identity, signed by the lab's TestCA.
        self.ca = TestCA(self.base)
        self.ca_pem = self.ca.pem
        self.kdc_cert = os.path.join(self.ca.dir, "kdc.pem")
        self.kdc_key = os.path.join(self.ca.dir, "kdc.key")

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    @property
    def ldap_uri(self):
        return f"ldap://127.0.0.1:{self.ldap_port}"

    @classmethod
    def load(cls, base_dir):
        with open(os.path.join(base_dir, cls.STATE)) as f:
            state = json.load(f)
        realm = cls(base_dir, state["realm"], state["domain"])
        realm.ldap_port, realm.kdc_port = state["ldap_port"], state["kdc_port"]
        return realm

    # -- names

    def principal(self, name):
        return name if "@" in name else f"{name}@{self.realm}"

    def service(self, svc, host=None):
        """service("HTTP/vip") or service("HTTP", "vip") -> HTTP/vip.domain@REALM"""
        name = f"{svc}/{host}" if host else svc
        if "@" not in name and not name.endswith("." + self.domain):
            name += "." + self.domain
        return self.principal(name)

    def keytab(self, name):
        return os.path.join(self.keytab_dir, name + ".keytab")

    # -- environment

    def env(self, ccache=None, trace=None):
        env = {"KRB5_CONFIG": self.krb5_conf,
               "KRB5RCACHEDIR": self.path("rcache"),
               "KRB5CCNAME": "FILE:" + (ccache or self.path("ccache", "default"))}
        if trace:
            env["KRB5_TRACE"] = trace
        return env

    def _admin_env(self):
        return {**base_env(), **self.env(), "KRB5_KDC_PROFILE": self.kdc_conf}

    def run(self, args, ccache=None, input=None, check=True):
        return _run(args, {**base_env(), **self.env(ccache)}, input, check)

    # -- start / stop

    def start(self):
        if recorded_pid(self.base, "slapd") or recorded_pid(self.base, "krb5kdc"):
            raise LabError(f"a realm already runs in {self.base}")
        try:
            self._prepare_dirs()
            # The PKINIT certificate (openssl, ~60 ms) is made while slapd
            # and kadmin.local work; an error in either re-raises here.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pkinit = pool.submit(self.ca.issue_kdc, self.realm)
                self._start_slapd()
                self._write_krb5_files()
                self._create_realm()
                self._create_principals()
                self._set_delegation_acls()
                self._write_keytabs()
                pkinit.result()
            self._start_kdc()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=10):
        stop_recorded(self.base, ["krb5kdc", "slapd"], timeout)

    def _prepare_dirs(self):
        _mkdir(self.base)
        # A previous realm's database and keytabs would clash with the new one.
        for d in (self.ldap_dir, self.keytab_dir):
            shutil.rmtree(d, ignore_errors=True)
        for f in ("stash", "service.pwd", "kdc.log"):
            if os.path.exists(self.path(f)):
                os.unlink(self.path(f))
        _mkdir(self.path("ldap", "data"), 0o700)
        _mkdir(self.keytab_dir)
        _mkdir(self.path("rcache"), 0o1777)
        _mkdir(self.path("ccache"), 0o700)
        self.ldap_port = free_port()
        self.kdc_port = free_port()
        _write(self.path(self.STATE), json.dumps(
            {"realm": self.realm, "domain": self.domain,
             "ldap_port": self.ldap_port, "kdc_port": self.kdc_port}) + "\n")

    # -- slapd

    def _start_slapd(self):
        d = self.ldap_dir
        with gzip.open(KERBEROS_SCHEMA, "rt") as f:
            _write(os.path.join(d, "kerberos.schema"), f.read())
        includes = [f"/etc/ldap/schema/{s}.schema" for s in LDAP_SCHEMAS]
        includes.append(os.path.join(d, "kerberos.schema"))
        conf = "".join(f"include {i}\n" for i in includes) + f"""
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 268435456
suffix "{self.suffix}"
rootdn "{self.rootdn}"
rootpw {LDAP_PASSWORD}
directory {d}/data
index objectClass eq
index krbPrincipalName eq,pres,sub
"""
        _write(os.path.join(d, "slapd.conf"), conf, 0o600)
        self._spawn_slapd()
        self._ldap("ldapadd", [], input=(
            f"dn: {self.suffix}\nobjectClass: dcObject\nobjectClass: organization\n"
            f"dc: {self.domain.split('.')[0]}\no: {self.domain}\n"))

    def _spawn_slapd(self):
        d = self.ldap_dir
        log = os.path.join(d, "slapd.log")
        # -d 0 keeps slapd in the foreground, so the Popen PID is slapd's.
        proc = _spawn(self.base, "slapd",
                      ["slapd", "-d", "0", "-h", f"{self.ldap_uri}/ {self.ldapi_uri}",
                       "-f", os.path.join(d, "slapd.conf")], base_env(), log)
        _wait_for(lambda: _check_running(proc, "slapd", log) and
                  self._ldap("ldapsearch", ["-b", "", "-s", "base"],
                             check=False).returncode == 0,
                  10, "slapd to answer", lambda: _tail(log))

    def _ldap(self, tool, args, input=None, check=True):
        cmd = [tool, "-x", "-H", self.ldapi_uri, "-D", self.rootdn,
               "-w", LDAP_PASSWORD] + args
        return _run(cmd, base_env(), input, check)

    def ldapsearch(self, filter, *attrs):
        return self._ldap("ldapsearch", ["-LLL", "-o", "ldif-wrap=no", "-b",
                                         self.suffix, filter, *attrs]).stdout

    def ldapmodify(self, ldif):
        self._ldap("ldapmodify", [], input=ldif)

    def principal_dn(self, principal):
        out = self.ldapsearch(f"(krbPrincipalName={self.principal(principal)})", "dn")
        dns = re.findall(r"^dn: (.*)$", out, re.M)
        if len(dns) != 1:
            raise LabError(f"no single LDAP entry for {principal}: {out!r}")
        return dns[0]

    # -- krb5 configuration and database

    def _write_krb5_files(self):
        r, d, port = self.realm, self.domain, self.kdc_port
        _write(self.krb5_conf, f"""[libdefaults]
 default_realm = {r}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 dns_canonicalize_hostname = false
 rdns = false
 qualify_shortname = ""
 udp_preference_limit = 1
 forwardable = true

[realms]
 {r} = {{
  kdc = 127.0.0.1:{port}
  pkinit_anchors = FILE:{self.ca_pem}
 }}

[domain_realm]
 .{d} = {r}
 {d} = {r}

[dbmodules]
 ldapconf = {{
  db_library = kldap
  ldap_kerberos_container_dn = cn=krbContainer,{self.suffix}
  ldap_kdc_dn = {self.rootdn}
  ldap_kadmind_dn = {self.rootdn}
  ldap_service_password_file = {self.path("service.pwd")}
  ldap_servers = {self.ldapi_uri}
 }}
""")
        # No default_principal_flags = +preauth: it breaks S4U2Proxy to the
        # services it creates (see LAB.md); users get +requires_preauth.
        # encrypted_challenge_indicator: a login through FAST (kinit_fast)
        # gets tickets carrying the authentication indicator FAST_INDICATOR;
        # a plain kinit (encrypted timestamp, no FAST) carries none, so no
        # other test sees a difference.
        _write(self.kdc_conf, f"""[kdcdefaults]
 kdc_listen = 127.0.0.1:{port}
 kdc_tcp_listen = 127.0.0.1:{port}
 kdc_tcp_listen_backlog = 64

[realms]
 {r} = {{
  database_module = ldapconf
  key_stash_file = {self.path("stash")}
  encrypted_challenge_indicator = {FAST_INDICATOR}
  pkinit_identity = FILE:{self.kdc_cert},{self.kdc_key}
  pkinit_anchors = FILE:{self.ca_pem}
 }}

[logging]
 kdc = FILE:{self.kdc_log}
 admin_server = FILE:{self.path("kadmin.log")}
 default = FILE:{self.path("krb5lib.log")}
""")

    def _create_realm(self):
        env = self._admin_env()
        util = ["kdb5_ldap_util", "-D", self.rootdn, "-w", LDAP_PASSWORD,
                "-H", self.ldapi_uri]
        _run(util + ["create", "-subtrees", self.suffix, "-r", self.realm,
                     "-s", "-P", MASTER_PASSWORD], env)
        # stashsrvpw prompts twice for the bind password, on stdin.
        _run(util + ["stashsrvpw", "-f", self.path("service.pwd"), self.rootdn],
             env, input=f"{LDAP_PASSWORD}\n{LDAP_PASSWORD}\n")

    def kadmin(self, cmd):
        return self._kadmin(["-q", cmd])

    def _kadmin(self, args, input=None):
        """kadmin.local exits 0 even when a request fails: judge by stderr."""
        proc = _run(["kadmin.local"] + args, self._admin_env(), input)
        errors = [line for line in proc.stderr.splitlines()
                  if line.strip() and not line.startswith("No policy specified")]
        if errors:
            raise KadminError(f"kadmin.local {shlex.join(args)}:\n" +
                              "\n".join(errors))
        return proc.stdout

    def _create_principals(self):
        cmds = []
        for user, password in USERS.items():
            flags = " ".join(["+requires_preauth"] + USER_FLAGS.get(user, []))
            cmds.append(f"addprinc -pw {password} {flags} {user}")
        cmds += [f"addprinc -randkey {self.service(s)}" for s in SERVICES]
        # session_enctypes too: as msDS-SupportedEncryptionTypes = 4 does on
        # AD, it tells the KDC the service cannot use AES session keys either
        cmds += [f"addprinc -randkey -e arcfour-hmac:normal {self.service(s)}"
                 for s in RC4_SERVICES]
        cmds += [f"setstr {self.service(s)} session_enctypes arcfour-hmac"
                 for s in RC4_SERVICES]
        cmds += [f"modprinc +ok_to_auth_as_delegate {self.service(s)}"
                 for s in PROTOCOL_TRANSITION]
        # Anonymous PKINIT: the KDC issues anonymous tickets only when this
        # principal exists (kinit -n: "Client not found" without it).
        cmds.append("addprinc -randkey WELLKNOWN/ANONYMOUS")
        # One kadmin.local run for all requests: each run costs ~25 ms.
        self._kadmin([], input="\n".join(cmds) + "\n")

    def _set_delegation_acls(self):
        targets = [self.service(t) for t in DELEGATION_TARGETS]
        for svc in DELEGATORS:
            self.set_delegation(self.service(svc), targets)

    def _write_keytabs(self):
        # -norandkey everywhere: a principal in two keytabs keeps one key,
        # and user keytabs keep the password working.
        cmds = [f"ktadd -norandkey -k {self.keytab(name)} " +
                " ".join(self.service(s) for s in services)
                for name, services in KEYTABS.items()]
        cmds += [f"ktadd -norandkey -k {self.keytab(u)} {self.principal(u)}"
                 for u in USERS]
        self._kadmin([], input="\n".join(cmds) + "\n")
        for name in list(KEYTABS) + list(USERS):
            _share_with_httpd(self.keytab(name), 0o640)

    # -- KDC

    def _start_kdc(self):
        env = self._admin_env()
        log = self.path("kdc.stderr")
        proc = _spawn(self.base, "krb5kdc", ["krb5kdc", "-n"], env, log)
        _wait_for(lambda: _check_running(proc, "krb5kdc", log) and
                  _port_open("127.0.0.1", self.kdc_port),
                  10, "the KDC to listen",
                  lambda: _tail(log) + _tail(self.kdc_log))

    # -- operations for tests

    def stop_kdc(self, timeout=10):
        """Only the KDC (slapd stays): for KDC-down tests."""
        stop_recorded(self.base, ["krb5kdc"], timeout)

    def start_kdc(self):
        """Start the KDC again after stop_kdc()."""
        self._start_kdc()
        return self

    def stop_slapd(self, timeout=10):
        """Only the directory (the KDC stays up without its database)."""
        stop_recorded(self.base, ["slapd"], timeout)

    def start_slapd(self):
        """Start the directory again after stop_slapd(): same port, same data."""
        self._spawn_slapd()
        return self

    def kinit(self, principal, ccache_path, password=None, lifetime=None,
              keytab=None):
        args = ["kinit", "-c", "FILE:" + ccache_path]
        if lifetime:
            args += ["-l", str(lifetime)]
        if keytab:
            args += ["-k", "-t", keytab]
        elif password is None:
            password = USERS[principal.split("@")[0]]
        args.append(self.principal(principal))
        self.run(args, ccache_path, input=None if keytab else password + "\n")
        return ccache_path

    def kinit_anonymous(self, ccache_path):
        """kinit -n (anonymous PKINIT, no password): a TGT for
        krbtgt/REALM whose client is ANONYMOUS_PRINCIPAL, in FILE:ccache_path."""
        if not glob.glob(PKINIT_PLUGIN):
            raise LabError(f"anonymous PKINIT needs {PKINIT_PLUGIN} "
                           "(Debian package krb5-pkinit; t/install-deps)")
        self.run(["kinit", "-n", "-c", "FILE:" + ccache_path, "@" + self.realm],
                 ccache_path)
        return ccache_path

    def kinit_fast(self, principal, ccache_path, password=None):
        """kinit through FAST, armored with an anonymous PKINIT TGT
        (kinit -T): the KDC uses encrypted challenge, so the tickets of this
        login carry the authentication indicator FAST_INDICATOR."""
        armor = ccache_path + ".armor"
        self.kinit_anonymous(armor)
        try:
            self.run(["kinit", "-T", "FILE:" + armor, "-c", "FILE:" + ccache_path,
                      self.principal(principal)], ccache_path,
                     input=(password or USERS[principal.split("@")[0]]) + "\n")
        finally:
            os.unlink(armor)
        return ccache_path

    def modprinc(self, principal, flags):
        if not isinstance(flags, str):
            flags = " ".join(flags)
        self.kadmin(f"modprinc {flags} {self.principal(principal)}")

    def kdc_kvno(self, principal):
        out = self.kadmin(f"getprinc {self.principal(principal)}")
        return max(int(v) for v in re.findall(r"^Key: vno (\d+)", out, re.M))

    def rekey(self, principal):
        """New random keys: the KDC's kvno moves ahead of every keytab."""
        self.kadmin(f"cpw -randkey {self.principal(principal)}")
        return self.kdc_kvno(principal)

    def ktadd(self, principal, keytab, norandkey=True):
        opt = "-norandkey " if norandkey else ""
        self.kadmin(f"ktadd {opt}-k {keytab} {self.principal(principal)}")
        _share_with_httpd(keytab, 0o640)

    keytab_entries = staticmethod(keytab_entries)

    def set_delegation(self, principal, targets):
        """Replace krbAllowedToDelegateTo (empty targets: no delegation)."""
        values = "".join(f"krbAllowedToDelegateTo: {self.principal(t)}\n"
                         for t in targets)
        self.ldapmodify(f"dn: {self.principal_dn(principal)}\nchangetype: modify\n"
                        f"replace: krbAllowedToDelegateTo\n{values}-\n")

    def delegation(self, principal):
        out = self.ldapsearch(f"(krbPrincipalName={self.principal(principal)})",
                              "krbAllowedToDelegateTo")
        return re.findall(r"^krbAllowedToDelegateTo: (.*)$", out, re.M)

    def kdc_log_mark(self):
        return log_mark(self.kdc_log)

    def kdc_log_since(self, mark):
        return lines_since(self.kdc_log, mark)


# -------------------------------------------------------------------- TLS

CA_CONF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = kdeleg lab CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class TestCA:
    """A throw-away certificate authority for the lab, made with the openssl
    command line (EC P-256, SHA-256, valid 2 days) on first use in
    <base_dir>/ca/: ca.pem (the CA certificate, .pem) and ca.key (0600).

    issue(name, hosts) -> (cert_path, key_path): a server certificate for
        hosts (DNS names: subjectAltName DNS entries for all, CN the first),
        EKU serverAuth, signed by the CA, in <base_dir>/ca/<name>.pem and
        <name>.key (0600, the caller's: mod_ssl and haproxy read keys as root
        before dropping privileges). Asking again for an existing name
        returns the existing files (hosts are not compared).
    bundle(name, hosts) -> path of <name>.bundle.pem: certificate then key,
        haproxy's `crt` format (0600).

    Clients trust it with: python ssl.create_default_context(cafile=ca.pem),
    `curl --cacert ca.pem --resolve host:port:ip https://host:port/`,
    kdclient.Browser(..., cafile=ca.pem), kdclient.chromium(..., cafile=ca.pem)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, base_dir):
        self.base = os.path.abspath(base_dir)
        self.dir = os.path.join(self.base, "ca")
        self.pem = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca.key")

    def _openssl(self, *args):
        return _run(["openssl", *args], base_env())

    def _ensure(self):
        if os.path.exists(self.pem):
            return
        _mkdir(self.dir)
        conf = _write(os.path.join(self.dir, "ca.cnf"), CA_CONF)
        tmp_key, tmp_pem = self.key + ".tmp", self.pem + ".tmp"
        # The key file is created 0600 before openssl writes into it.
        os.close(os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        self._openssl("req", "-x509", "-config", conf, "-extensions", "v3_ca",
                      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", tmp_key, "-out", tmp_pem,
                      "-sha256", "-days", "2")
        os.chmod(tmp_key, 0o600)
        os.rename(tmp_key, self.key)
        os.rename(tmp_pem, self.pem)  # last: ca.pem present = CA complete

    def issue(self, name, hosts):
        if isinstance(hosts, str) or not hosts or "/" in name or name in ("ca", ""):
            raise ValueError(f"bad certificate name {name!r} or hosts {hosts!r}")
        self._ensure()
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        if os.path.exists(cert) and os.path.exists(key):
            return cert, key
        hosts = list(hosts)
        return self._sign(name, f"/CN={hosts[0]}", (
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid\n"
            "subjectAltName = " + ", ".join(f"DNS:{h}" for h in hosts) + "\n"))

    def issue_client(self, name, cn):
        """A TLS client certificate (EKU clientAuth) for subject CN=cn:
        (cert_path, key_path), made once."""
        if "/" in name or name in ("ca", ""):
            raise ValueError(f"bad certificate name {name!r}")
        self._ensure()
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        if os.path.exists(cert) and os.path.exists(key):
            return cert, key
        return self._sign(name, f"/CN={cn}", (
            "basicConstraints = critical, CA:FALSE\n"
            "keyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = clientAuth\n"
            "subjectKeyIdentifier = hash\n"
            "authorityKeyIdentifier = keyid\n"))

    def issue_kdc(self, realm, name="kdc"):
        """A PKINIT KDC certificate for realm (MIT's "PKINIT configuration"
        recipe): EKU id-pkinit-KPKdc (1.3.6.1.5.2.3.5) and a subjectAltName
        otherName id-pkinit-san (1.3.6.1.5.2.2) holding the KRB5PrincipalName
        krbtgt/REALM@REALM, which clients check. EC P-256 like the rest.
        Always made anew (a realm start must not reuse another realm's)."""
        if "/" in name or name in ("ca", "") or not re.fullmatch(r"[A-Za-z0-9.-]+", realm):
            raise ValueError(f"bad certificate name {name!r} or realm {realm!r}")
        self._ensure()
        return self._sign(name, f"/CN=krbtgt {realm}", f"""\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = 1.3.6.1.5.2.3.5
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = otherName:1.3.6.1.5.2.2;SEQUENCE:kdc_princ_name

[kdc_princ_name]
realm = EXP:0, GeneralString:{realm}
principal_name = EXP:1, SEQUENCE:kdc_principal_seq

[kdc_principal_seq]
name_type = EXP:0, INTEGER:2
name_string = EXP:1, SEQUENCE:kdc_principals

[kdc_principals]
princ1 = GeneralString:krbtgt
princ2 = GeneralString:{realm}
""")

    def _sign(self, name, subject, extensions):
        """A new EC key and a certificate for subject with the given
        extensions (openssl x509 -extfile text), signed by the CA:
        <name>.pem, <name>.key (0600), <name>.ext; each written under a
        temporary name then renamed, so a file present is complete."""
        cert = os.path.join(self.dir, name + ".pem")
        key = os.path.join(self.dir, name + ".key")
        tmp_key, csr = key + ".tmp", os.path.join(self.dir, name + ".csr")
        ext = _write(os.path.join(self.dir, name + ".ext"), extensions)
        os.close(os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-nodes", "-keyout", tmp_key,
                      "-out", csr, "-subj", subject)
        # A random serial: no two certificates of this CA share one.
        self._openssl("x509", "-req", "-in", csr, "-CA", self.pem, "-CAkey", self.key,
                      "-set_serial", "0x" + os.urandom(16).hex(), "-sha256",
                      "-days", "2", "-extfile", ext, "-out", cert + ".tmp")
        os.chmod(tmp_key, 0o600)
        os.rename(tmp_key, key)
        os.rename(cert + ".tmp", cert)
        os.unlink(csr)
        return cert, key

    def bundle(self, name, hosts):
        cert, key = self.issue(name, hosts)
        path = os.path.join(self.dir, name + ".bundle.pem")
        if not os.path.exists(path):
            with open(cert) as c, open(key) as k:
                text = c.read() + k.read()
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.rename(path + ".tmp", path)
        return path


# ------------------------------------------------------------------ httpd

ENV_CGI = """#!/usr/bin/python3
import os
FIRST = ["REMOTE_USER", "AUTH_TYPE", "GSS_NAME", "KRB5CCNAME",
         "KDELEG_AUTH_METHOD", "KDELEG_SPN", "KDELEG_ERROR"]
print("Content-Type: text/plain")
print()
keys = [k for k in FIRST if k in os.environ]
keys += sorted(k for k in os.environ if k not in FIRST)
for k in keys:
    print(f"{k}={os.environ[k]}")
"""

TLS_MODULES = ("socache_shmcb", "ssl")

BASE_MODULES = ("authn_core", "authz_core", "authz_user", "authz_host", "mime",
                "dir", "alias", "env", "setenvif", "headers", "log_config",
                "unixd")

MPM_CONF = {
    "event": """StartServers 2
ServerLimit 4
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 32
MinSpareThreads 8
MaxSpareThreads 32
""",
    "prefork": """StartServers 2
MinSpareServers 2
MaxSpareServers 4
ServerLimit 16
MaxRequestWorkers 16
""",
}


def private_ccache_dir(httpd_dir):
    """<httpd_dir>/ccache as an administrator makes a KdelegCcacheDir: 0700,
    owned by the httpd user (www-data when we run as root)."""
    path = os.path.join(httpd_dir, "ccache")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o700)
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam(RUN_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def sanitizer_env(env):
    """A sanitized module needs its runtime in the process: KDLAB_PRELOAD (set
    by t/run-tests' sanitizer stage) is added to LD_PRELOAD and
    ASAN_OPTIONS/UBSAN_OPTIONS pass through. With libfaketime already
    preloaded the ASan runtime goes after it (the other order deadlocks in
    libfaketime's start-up), so ASan's link-order check is switched off."""
    preload = os.environ.get("KDLAB_PRELOAD")
    if not preload:
        return env
    env = dict(env)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if var in os.environ:
            env[var] = os.environ[var]
    if env.get("LD_PRELOAD"):
        env["LD_PRELOAD"] = env["LD_PRELOAD"] + " " + preload
        env["ASAN_OPTIONS"] = ",".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "verify_asan_link_order=0"]))
    else:
        env["LD_PRELOAD"] = preload
    return env


TRUST_PASSWORD = "Trust-Pa55-example-corp"


def trust(realm_a, realm_b):
    """A two-way trust: both cross-realm TGS principals in both KDCs, from
    one password (same salt, same kvno, so the keys agree)."""
    names = [f"krbtgt/{realm_b.realm}@{realm_a.realm}", f"krbtgt/{realm_a.realm}@{realm_b.realm}"]
    for r in (realm_a, realm_b):
        r._kadmin([], input="".join(f"addprinc -pw {TRUST_PASSWORD} {n}\n" for n in names))


def cross_realm_conf(path, *realms, domain_realm=()):
    """One krb5.conf for clients and servers that know every realm: the
    first realm is the default; extra (host, realm) pairs are added to
    [domain_realm] (a disjoint namespace)."""
    first = realms[0]
    kdcs = "".join(f" {r.realm} = {{\n  kdc = 127.0.0.1:{r.kdc_port}\n }}\n" for r in realms)
    mapping = "".join(f" .{r.domain} = {r.realm}\n {r.domain} = {r.realm}\n" for r in realms)
    mapping += "".join(f" {host} = {realm}\n" for host, realm in domain_realm)
    _write(path, f"""[libdefaults]
 default_realm = {first.realm}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 dns_canonicalize_hostname = false
 rdns = false
 qualify_shortname = ""
 udp_preference_limit = 1
 forwardable = true

[realms]
{kdcs}
[domain_realm]
{mapping}""")
    return path


class Httpd:
    def __init__(self, base_dir, name, ip, port=None, module_path=None,
                 mpm="event", extra_modules=(), conf="", server_name=None,
                 tls=None):
        if mpm not in MPM_CONF:
            raise ValueError(f"mpm must be one of {sorted(MPM_CONF)}")
        self.base = os.path.abspath(base_dir)
        self.name, self.ip = name, ip
        self.port = port or free_port(ip)
        self.module_path, self.mpm = module_path, mpm
        self.extra_modules, self.conf = tuple(extra_modules), conf
        # (cert_path, key_path), e.g. TestCA.issue(): the main server
        # speaks https only.
        self.tls = tuple(tls) if tls else None
        if self.tls and len(self.tls) != 2:
            raise ValueError("tls must be (cert_path, key_path)")
        # "node1" serves as node1.example.test; a dotted name is used as is.
        self.server_name = server_name or (name if "." in name
                                           else name + ".example.test")
        self.dir = os.path.join(self.base, name)
        self.conf_path = os.path.join(self.dir, "httpd.conf")
        self.error_log = os.path.join(self.dir, "logs", "error.log")
        self.access_log = os.path.join(self.dir, "logs", "access.log")
        self.pid_file = os.path.join(self.dir, "run", "httpd.pid")
        self.rcache_dir = os.path.join(self.dir, "rcache")
        self.record = "httpd-" + name
        self.env = {}

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    def url(self, path="/", host=None):
        return f"{self.scheme}://{host or self.ip}:{self.port}{path}"

    @property
    def pid(self):
        return recorded_pid(self.base, self.record)

    def processes(self):
        pid = self.pid
        return [pid] + descendants(pid) if pid else []

    # -- configuration

    def _write_tree(self):
        _mkdir(self.base)
        for sub in ("htdocs", "cgi-bin", "logs", "run"):
            _mkdir(os.path.join(self.dir, sub))
        # Each httpd is its own "host": its own replay cache, written by
        # the children (www-data).
        _mkdir(self.rcache_dir, 0o1777)
        _write(os.path.join(self.dir, "htdocs", "index.html"),
               f"<html><body>{self.server_name}</body></html>\n")
        _write(os.path.join(self.dir, "cgi-bin", "env.cgi"), ENV_CGI, 0o755)
        _write(self.conf_path, self._config())

    def _load_modules(self):
        mods = [f"mpm_{self.mpm}"] + list(BASE_MODULES)
        mods.append("cgid" if self.mpm == "event" else "cgi")
        mods += self.extra_modules
        if self.tls:
            mods += [m for m in TLS_MODULES if m not in mods]
        # Debian compiles log_config and unixd in; loading them again fails.
        lines = [f"<IfModule !{m}_module>\n"
                 f"  LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so\n"
                 f"</IfModule>" for m in mods]
        if self.module_path:
            lines.append(f"LoadModule kdeleg_module {self.module_path}")
        return "\n".join(lines) + "\n"

    def _tls_config(self):
        """mod_ssl for the main server (no vhost). Keys are read by the
        parent, as root, at start and at every graceful restart; the
        Mutex file:<run> default line above covers mod_ssl's mutexes;
        OpenSSL 3 seeds itself (no SSLRandomSeed)."""
        if not self.tls:
            return ""
        cert, key = self.tls
        run = os.path.join(self.dir, "run")
        return f"""SSLEngine on
SSLCertificateFile "{cert}"
SSLCertificateKeyFile "{key}"
SSLSessionCache "shmcb:{run}/ssl_scache(512000)"
SSLProtocol -all +TLSv1.2 +TLSv1.3
"""

    def _config(self):
        d, run = self.dir, os.path.join(self.dir, "run")
        user = f"User {RUN_USER}\nGroup {RUN_USER}\n" if _as_root() else ""
        cgid = f'ScriptSock "{run}/cgid.sock"\n' if self.mpm == "event" else ""
        krb5 = (f'SetEnv KRB5_CONFIG "{self.env["KRB5_CONFIG"]}"\n'
                if "KRB5_CONFIG" in self.env else "")
        return f"""ServerRoot "{d}"
DefaultRuntimeDir "{run}"
PidFile "{self.pid_file}"
Mutex file:{run} default
Listen {self.ip}:{self.port}{" https" if self.tls else ""}
ServerName {self.server_name}
{self._load_modules()}{user}{MPM_CONF[self.mpm]}{cgid}{self._tls_config()}
LimitRequestFieldSize 131072
ErrorLog "{self.error_log}"
LogLevel info
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "{self.access_log}" common
TypesConfig /etc/mime.types
DocumentRoot "{d}/htdocs"
DirectoryIndex index.html
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{d}/htdocs">
    Require all granted
</Directory>
ScriptAlias /cgi-bin/ "{d}/cgi-bin/"
<Directory "{d}/cgi-bin">
    Options +ExecCGI
    Require all granted
</Directory>
# CGIs do not inherit httpd's environment.
{krb5}
{self.conf}
"""

    # -- start / stop

    def _process_env(self):
        # The realm's client ccache and replay cache are not the server's:
        # override them with this httpd's own.
        env = {**base_env(), **self.env,
               "KRB5CCNAME": "FILE:" + os.path.join(self.rcache_dir, "krb5cc_default"),
               "KRB5RCACHEDIR": self.rcache_dir}
        return sanitizer_env(env)

    def start(self, env=None, timeout=10):
        if self.pid:
            raise LabError(f"httpd {self.name} already runs ({self.pid})")
        self.env = dict(env or {})
        self._write_tree()
        if os.path.exists(self.pid_file):
            os.unlink(self.pid_file)
        mark = self.error_log_mark()
        # -k start daemonizes: the launcher exits, the server's PID is in PidFile.
        proc = _run(["/usr/sbin/apache2", "-d", self.dir, "-f", self.conf_path,
                     "-k", "start"], self._process_env(), check=False)
        try:
            if proc.returncode != 0:
                raise LabError(f"apache2 -k start: {proc.returncode}\n"
                               f"{proc.stdout}{proc.stderr}")
            _wait_for(lambda: os.path.exists(self.pid_file), timeout,
                      f"httpd {self.name} pid file", self._failure_details(mark))
            with open(self.pid_file) as f:
                record_pid(self.base, self.record, int(f.read()))
            _wait_for(lambda: self._running() and _port_open(self.ip, self.port),
                      timeout, f"httpd {self.name} on {self.ip}:{self.port}",
                      self._failure_details(mark))
        except BaseException:
            self._kill_from_pid_file()
            raise
        return self

    def _running(self):
        if not self.pid:
            raise LabError(f"httpd {self.name} died:\n" +
                           "\n".join(self.error_log_since(0)[-30:]))
        return True

    def _failure_details(self, mark):
        return lambda: "\n".join(self.error_log_since(mark)[-30:])

    def _kill_from_pid_file(self):
        """Start failed half-way: stop whatever the pid file names."""
        try:
            with open(self.pid_file) as f:
                record_pid(self.base, self.record, int(f.read()))
        except (OSError, ValueError, LabError):
            pass
        self.stop()

    def stop(self, timeout=10):
        stop_recorded(self.base, [self.record], timeout)

    def reload(self, conf=None, timeout=10):
        """Graceful restart (SIGUSR1), optionally with new appended conf."""
        if conf is not None:
            self.conf = conf
            _write(self.conf_path, self._config())
        if not self.pid:
            raise LabError(f"httpd {self.name} is not running")
        mark = self.error_log_mark()
        os.kill(self.pid, signal.SIGUSR1)
        _wait_for(lambda: any("resuming normal operations" in line
                              for line in self.error_log_since(mark)),
                  timeout, f"httpd {self.name} graceful restart",
                  self._failure_details(mark))

    # -- logs

    def error_log_mark(self):
        return log_mark(self.error_log)

    def error_log_since(self, mark):
        return lines_since(self.error_log, mark)


# ---------------------------------------------------------------- haproxy

class Haproxy:
    """Round robin over backends [(ip, port), ...]. tls:
    None                          mode http, plain http both sides;
    ("passthrough",)              mode tcp: TLS goes through untouched to
                                  the nodes (TLS httpds), one node per
                                  connection;
    ("terminate", bundle_path)    haproxy speaks https with the bundle
                                  (TestCA.bundle: cert + key), the nodes
                                  plain http; adds X-Forwarded-Proto: https.
    How the nodes learn the client's address (mod_remoteip):
    forwardfor=True               mode http only: option forwardfor, an
                                  X-Forwarded-For header with the client's
                                  address appended to what the client sent;
    send_proxy=True               the PROXY protocol (v2) header first on
                                  every connection to a node (any mode,
                                  also TLS passthrough);
    source=IP                     connect to the nodes from IP (default:
                                  whatever the kernel picks, 127.0.0.1), so
                                  that a node can tell the balancer apart.
    h2=True                       with "terminate": offer HTTP/2 to clients
                                  (ALPN h2,http/1.1); the nodes still get
                                  HTTP/1.1.
    global_options: extra lines for the global section, e.g.
    ("tune.bufsize 65536",) for requests with very large headers.
    httpchk: a request line, e.g. "GET /kdeleg-health": haproxy checks
    every server with it (option httpchk; every 300 ms, 2 failures take a
    server out, 2 successes bring it back) and logs each change of state
    ("Server be/s1 is DOWN", "... is UP") to its log."""

    def __init__(self, base_dir, ip, port, backends, name="haproxy", tls=None,
                 global_options=(), httpchk=None, forwardfor=False, send_proxy=False,
                 source=None, h2=False):
        self.base = os.path.abspath(base_dir)
        self.ip, self.port, self.name = ip, port or free_port(ip), name
        self.backends = list(backends)
        self.forwardfor, self.send_proxy, self.source = forwardfor, send_proxy, source
        self.h2 = h2
        self.global_options = tuple(global_options)
        self.httpchk = httpchk
        self.tls = tuple(tls) if tls else None
        if not (self.tls is None or self.tls == ("passthrough",) or
                (len(self.tls) == 2 and self.tls[0] == "terminate")):
            raise ValueError(f"tls must be None, ('passthrough',) or "
                             f"('terminate', bundle_path), not {tls!r}")
        self.dir = os.path.join(self.base, name)
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        self.log = os.path.join(self.dir, "haproxy.log")

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    def url(self, path="/", host=None):
        return f"{self.scheme}://{host or self.ip}:{self.port}{path}"

    def _config(self):
        per_server = " check inter 300ms fall 2 rise 2" if self.httpchk else ""
        per_server += " send-proxy-v2" if self.send_proxy else ""
        servers = "".join(f"    server s{i} {ip}:{port}{per_server}\n"
                          for i, (ip, port) in enumerate(self.backends, 1))
        if self.httpchk:
            servers = f"    option httpchk {self.httpchk}\n" + servers
        if self.source:
            servers = f"    source {self.source}\n" + servers
        mode, bind, frontend = "http", f"{self.ip}:{self.port}", ""
        if self.tls and self.tls[0] == "passthrough":
            mode = "tcp"
        elif self.tls:
            bind += f" ssl crt {self.tls[1]}" + (" alpn h2,http/1.1" if self.h2 else "")
            frontend = "    http-request set-header X-Forwarded-Proto https\n"
        if self.h2 and not (self.tls and self.tls[0] == "terminate"):
            raise ValueError("h2 needs tls=('terminate', bundle) (passthrough: the nodes' ALPN)")
        if self.forwardfor:
            if mode != "http":
                raise ValueError("forwardfor needs mode http (TLS passthrough: send_proxy)")
            frontend += "    option forwardfor\n"
        options = "".join(f"    {line}\n" for line in self.global_options)
        return f"""global
    maxconn 512
{options}
defaults
    mode {mode}
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend fe
    bind {bind}
{frontend}    default_backend be

backend be
    balance roundrobin
{servers}"""

    def start(self, timeout=10):
        _mkdir(self.dir)
        _write(self.cfg, self._config())
        proc = _spawn(self.base, self.name, ["haproxy", "-db", "-f", self.cfg],
                      base_env(), self.log)
        try:
            _wait_for(lambda: _check_running(proc, "haproxy", self.log) and
                      _port_open(self.ip, self.port), timeout,
                      f"haproxy on {self.ip}:{self.port}", lambda: _tail(self.log))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=10):
        stop_recorded(self.base, [self.name], timeout)


# ------------------------------------------------------------- PostgreSQL

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_OS_USER = "postgres"


class KdcRelay:
    """See the module documentation. Kerberos over TCP frames each message
    with a 4-byte length (RFC 4120 7.2.2); clients here use TCP only
    (udp_preference_limit = 1)."""

    def __init__(self, ip, upstream):
        import threading
        self.ip, self.upstream = ip, tuple(upstream)
        self.mode = "forward"
        self.requests = 0
        self._lock = threading.Lock()
        self._held = []
        self.port = 0
        self._closed = False
        self._listen()

    def _listen(self):
        import threading
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.ip, self.port))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, args=(self._sock,), daemon=True).start()

    def _accept(self, sock):
        import threading
        while not self._closed:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def refuse(self):
        """Stop listening: connections are refused at once (see down())."""
        self.down()

    def resume(self):
        """Listen again on the same port, forwarding (see up())."""
        self.up()

    @staticmethod
    def _read_message(conn):
        head = b""
        while len(head) < 4:
            chunk = conn.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        length = int.from_bytes(head, "big") & 0x7FFFFFFF
        body = b""
        while len(body) < length:
            chunk = conn.recv(min(65536, length - len(body)))
            if not chunk:
                return None
            body += chunk
        return head + body

    def _serve(self, conn):
        try:
            message = self._read_message(conn)
            if message is None:
                conn.close()
                return
            with self._lock:
                self.requests += 1
                mode = self.mode
                if mode == "blackhole":
                    self._held.append(conn)   # open, silent, until close()
            if mode == "blackhole":
                return
            with socket.create_connection(self.upstream, timeout=30) as up:
                up.sendall(message)
                reply = self._read_message(up)
            if reply:
                conn.sendall(reply)
            conn.close()
        except OSError:
            conn.close()

    def krb5_conf(self, realm_conf, path):
        """Copy realm_conf with every kdc = line naming the relay."""
        with open(realm_conf) as f:
            text = f.read()
        text = re.sub(r"(?m)^(\s*kdc\s*=\s*).*$", rf"\g<1>{self.ip}:{self.port}", text)
        _write(path, text)
        os.chmod(path, 0o644)
        return path

    def close_held(self):
        """Close the connections the black hole holds: their clients see
        the KDC hang up, and stop waiting."""
        with self._lock:
            for conn in self._held:
                conn.close()
            self._held.clear()

    def down(self):
        """Stop listening, as a stopped KDC: connections to the port are
        refused at once (and UDP to it too: nothing listens there)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)   # wakes the accepting thread
            except OSError:
                pass
            sock.close()
        self.close_held()

    def up(self):
        """Listen again on the same address and port after down()."""
        self._listen()

    def close(self):
        self._closed = True
        self.down()


class Postgres:
    """A private PostgreSQL 15 cluster accepting GSSAPI (Kerberos) logins
    for the service principal postgres/db.<domain>: the back end of the
    "web app to SQL server as the user" case.  The system cluster
    (/etc/postgresql) is never touched."""

    ROLES = ("alice", "bob")

    def __init__(self, base_dir, realm, ip="127.0.0.5", port=None,
                 name="postgres"):
        self.base = os.path.abspath(base_dir)
        self.realm = realm
        self.ip, self.port, self.name = ip, port or free_port(ip), name
        # The conninfo host name picks the service principal
        # (krbsrvname/host); hostaddr means no DNS is asked.
        self.host = "db." + realm.domain
        self.dir = os.path.join(self.base, name)
        self.data = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "run")
        self.rcache_dir = os.path.join(self.dir, "rcache")
        self.keytab = os.path.join(self.dir, "postgres.keytab")
        self.log = os.path.join(self.dir, "postgres.log")
        self.record = name

    @property
    def pid(self):
        return recorded_pid(self.base, self.record)

    # -- running things as the cluster owner

    @staticmethod
    def _owner():
        """(uid, gid) of the postgres OS user when we are root, else None:
        postgres refuses to run as root; otherwise it runs as us."""
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise LabError(f"running as root needs the {PG_OS_USER} OS user "
                           "(Debian's postgresql-15 package creates it)")
        return pw.pw_uid, pw.pw_gid

    def _as_owner(self, args):
        if self._owner() is None:
            return list(args)
        # setpriv execs (runuser would fork): the recorded PID is postgres'.
        return ["setpriv", "--reuid", PG_OS_USER, "--regid", PG_OS_USER,
                "--init-groups", "--"] + list(args)

    def _give(self, path, mode):
        os.chmod(path, mode)
        owner = self._owner()
        if owner:
            os.chown(path, *owner)
        return path

    def _env(self):
        return {**base_env(), "HOME": self.dir,
                "KRB5_CONFIG": self.realm.krb5_conf,
                "KRB5RCACHEDIR": self.rcache_dir,
                "KRB5_KTNAME": "FILE:" + self.keytab}

    def _run(self, args, input=None, check=True):
        proc = subprocess.run(self._as_owner(args), env=self._env(), cwd=self.dir,
                              input=input, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise LabError(f"{shlex.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")
        return proc

    # -- start / stop

    def start(self, timeout=20):
        if self.pid:
            raise LabError(f"postgres {self.name} already runs ({self.pid})")
        try:
            self._write_cluster()
            proc = _spawn(self.base, self.record,
                          self._as_owner([f"{PG_BIN}/postgres", "-D", self.data]),
                          self._env(), self.log)
            _wait_for(lambda: _check_running(proc, "postgres", self.log) and
                      self._ready(), timeout,
                      f"postgres on {self.ip}:{self.port}", lambda: _tail(self.log))
            self._create_objects()
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self):
        """postmaster.pid's status line says "ready" once connections are
        accepted (what pg_ctl -w waits for)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                lines = f.read().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def _write_cluster(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        _mkdir(self.dir)
        self._give(self.dir, 0o755)
        for d in (self.socket_dir, self.rcache_dir):
            self._give(_mkdir(d, 0o700), 0o700)
        shutil.copyfile(self.realm.keytab("db"), self.keytab)
        self._give(self.keytab, 0o600)
        self._run([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres",
                   "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
                   "-A", "reject"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
# kdlab
listen_addresses = '{self.ip}'
port = {self.port}
unix_socket_directories = '{self.socket_dir}'
krb_server_keyfile = '{self.keytab}'
max_connections = 20
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_connections = on
log_line_prefix = '%m [%p] %q%u@%d '
""")
        # The socket (0700 directory) is for setup only; TCP needs Kerberos.
        r = self.realm.realm
        _write(os.path.join(self.data, "pg_hba.conf"), f"""local all postgres trust
hostgssenc all all 127.0.0.0/8 gss include_realm=0 krb_realm={r}
host all all 127.0.0.0/8 gss include_realm=0 krb_realm={r}
""", 0o600)
        self._give(os.path.join(self.data, "pg_hba.conf"), 0o600)

    def _create_objects(self):
        roles = "".join(f"CREATE ROLE {r} LOGIN;\n" for r in self.ROLES)
        self.admin_sql(roles + "CREATE DATABASE app;\n", dbname="postgres")
        self.admin_sql(
            "CREATE TABLE notes (owner text DEFAULT current_user, body text);\n"
            f"GRANT SELECT, INSERT ON notes TO {', '.join(self.ROLES)};\n")

    def stop(self, timeout=10):
        """SIGINT (fast shutdown: sessions are ended), then the lab's
        SIGTERM/SIGKILL path for whatever is left."""
        pid = self.pid
        if pid:
            _signal(pid, signal.SIGINT)
            try:
                _wait_for(lambda: not self.pid, timeout, f"postgres {self.name} to stop")
            except LabError:
                pass
        stop_recorded(self.base, [self.record], timeout)

    # -- clients

    def psql_args(self, user, dbname="app"):
        """libpq conninfo for a Kerberos login over TCP, GSS-encrypted."""
        return (f"host={self.host} hostaddr={self.ip} port={self.port} "
                f"dbname={dbname} user={user} gssencmode=require "
                f"krbsrvname=postgres")

    def psql(self, user, *commands, ccache=None, dbname="app", check=True):
        """psql -X -q -A -t -F '=' as a Kerberos client of the lab realm (the TGT
        in ccache), one -c per command."""
        args = [f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-F", "=", "-v",
                "ON_ERROR_STOP=1", self.psql_args(user, dbname)]
        for c in commands:
            args += ["-c", c]
        return self.realm.run(args, ccache=ccache, check=check)

    def admin_sql(self, sql, dbname="app"):
        """sql (on stdin) as the postgres superuser over the unix socket."""
        return self._run([f"{PG_BIN}/psql", "-X", "-A", "-t", "-q", "-v",
                          "ON_ERROR_STOP=1", "-h", self.socket_dir,
                          "-p", str(self.port), "-U", "postgres", "-d", dbname],
                         input=sql).stdout

    # -- log

    def log_mark(self):
        return log_mark(self.log)

    def log_since(self, mark):
        return lines_since(self.log, mark)


# ------------------------------------------------------- shared stores

def _store_talk(ip, port, request, until, timeout=5):
    """Send request (bytes) to a store and read until `until(reply)` holds."""
    with socket.create_connection((ip, port), timeout=timeout) as sock:
        sock.sendall(request)
        reply = b""
        while not until(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


class _Store:
    """A store server on ip:port, started in its own session and stopped by
    its recorded PID."""
    binary = kind = ""

    def __init__(self, base_dir, ip, port=None, name=None):
        self.base = os.path.abspath(base_dir)
        self.ip, self.port = ip, port or free_port(ip)
        self.name = name or self.kind
        self.dir = os.path.join(self.base, self.name)
        self.log = os.path.join(self.dir, f"{self.name}.log")

    @property
    def spec(self):
        """What KdelegReplayCache names it by."""
        return f"{self.kind}:{self.ip}:{self.port}"

    def _args(self):
        raise NotImplementedError

    def start(self, timeout=10):
        _mkdir(self.dir)
        proc = _spawn(self.base, self.name, self._args(), base_env(), self.log)
        try:
            _wait_for(lambda: _check_running(proc, self.name, self.log) and
                      _port_open(self.ip, self.port), timeout,
                      f"{self.name} on {self.ip}:{self.port}", lambda: _tail(self.log))
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self):
        return recorded_pid(self.base, self.name)

    def stop(self, timeout=10):
        stop_recorded(self.base, [self.name], timeout)

    def kill(self):
        """SIGKILL, as a crash: no goodbye to connected clients."""
        pid = self.pid
        if pid:
            _signal(pid, signal.SIGKILL)
            _reap(pid)

    def pause(self):
        """SIGSTOP: connections are accepted by the kernel, never answered."""
        _signal(self.pid, signal.SIGSTOP)

    def resume(self):
        _signal(self.pid, signal.SIGCONT)


class Memcached(_Store):
    """memcached; no_evict=True runs it with -M (a full store refuses new
    entries with SERVER_ERROR instead of evicting live ones)."""
    binary, kind = "/usr/bin/memcached", "memcache"

    def __init__(self, base_dir, ip, port=None, name=None, memory_mb=64, no_evict=True):
        super().__init__(base_dir, ip, port, name or "memcached")
        self.memory_mb, self.no_evict = memory_mb, no_evict

    def _args(self):
        user = "memcache" if _user_exists("memcache") else "nobody"
        args = [self.binary, "-l", self.ip, "-p", str(self.port), "-U", "0",
                "-m", str(self.memory_mb), "-c", "1024", "-u", user]
        return args + (["-M"] if self.no_evict else [])

    def command(self, text):
        """One text-protocol command; the reply up to its end."""
        ends = (b"END\r\n", b"STORED\r\n", b"NOT_STORED\r\n", b"ERROR\r\n",
                b"DELETED\r\n", b"NOT_FOUND\r\n", b"OK\r\n")
        return _store_talk(self.ip, self.port, text.encode(),
                           lambda r: r.startswith(b"VERSION") and r.endswith(b"\r\n")
                           or any(r.endswith(e) for e in ends)).decode()

    def stats(self):
        return dict(line.split()[1:3] for line in self.command("stats\r\n").splitlines()
                    if line.startswith("STAT "))


class Redis(_Store):
    """redis-server without persistence; policy: its maxmemory-policy."""
    binary, kind = "/usr/bin/redis-server", "redis"

    def __init__(self, base_dir, ip, port=None, name=None, policy="noeviction",
                 maxmemory="64mb"):
        super().__init__(base_dir, ip, port, name or "redis")
        self.policy, self.maxmemory = policy, maxmemory

    def _args(self):
        return [self.binary, "--bind", self.ip, "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--protected-mode", "no",
                "--maxmemory", self.maxmemory, "--maxmemory-policy", self.policy,
                "--daemonize", "no", "--logfile", ""]

    def command(self, *args):
        """One command; the raw RESP reply."""
        return self.command_bytes(*args).decode()

    def command_bytes(self, *args):
        """One command; the raw RESP reply as bytes (values may be binary)."""
        req = f"*{len(args)}\r\n" + "".join(f"${len(str(a).encode())}\r\n{a}\r\n"
                                             for a in args)
        return _store_talk(self.ip, self.port, req.encode(), lambda r: r.endswith(b"\r\n"))

    def dbsize(self):
        return int(self.command("DBSIZE").strip().lstrip(":"))


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# -------------------------------------------------------------------- CLI

def _cli_start(args):
    t0 = time.monotonic()
    realm = Realm(args.dir).start()
    if args.module:
        # Recorded for the demo script, which builds its own httpds.
        _write(realm.path("module_path"), os.path.abspath(args.module) + "\n")
    print(f"# realm {realm.realm} up in {time.monotonic() - t0:.2f} s "
          f"(KDC 127.0.0.1:{realm.kdc_port}, LDAP {realm.ldap_uri})",
          file=sys.stderr)
    _cli_env(args)


def _cli_stop(args):
    t0 = time.monotonic()
    stop_all(os.path.abspath(args.dir))
    print(f"# stopped in {time.monotonic() - t0:.2f} s", file=sys.stderr)


def _cli_env(args):
    for key, value in Realm.load(args.dir).env().items():
        print(f"export {key}={shlex.quote(value)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="mod_kdeleg Kerberos lab")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("start", _cli_start), ("stop", _cli_stop),
                       ("env", _cli_env)):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True, help="lab base directory")
        p.set_defaults(func=func)
        if name == "start":
            p.add_argument("--module", help="path of the built mod_kdeleg.so")
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
