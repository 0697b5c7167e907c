"""Fixtures for mod_kdeleg integration tests: one Kerberos lab per session.

realm          session Realm (slapd + MIT KDC with LDAP back end), see t/lab/kdlab.py
lab_dir        its base directory (KDLAB_KEEP=1 keeps it after the run)
ad_realm       session ADRealm (Samba AD DC at 127.0.0.53 in lab_dir/ad), see t/lab/adlab.py;
               skips outside a private network namespace or without Samba
alice_ccache   a fresh FILE ccache path holding alice's TGT
module_path    the built mod_kdeleg.so ($KDELEG_MODULE, else mod_kdeleg/.libs/),
               skips the test when there is none
httpd_factory  make(name, ip, **Httpd kwargs) -> started Httpd, stopped after the test
               (tls=(cert, key) makes it https)
haproxy_factory make(ip, port, backends, **kw) -> started Haproxy, stopped after the test
               (tls=("passthrough",) or ("terminate", bundle))
test_ca        session kdlab.TestCA in lab_dir/ca: .issue(name, hosts) -> (cert, key),
               .bundle(name, hosts) -> haproxy crt file, .pem the CA certificate

Every server records its PID under the lab dir; the session finalizer stops
all of them whatever happened, so a failed test leaves nothing running.
"""

import itertools
import os
import shutil
import sys
import tempfile
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_DIR = os.path.join(REPO, "t", "lab")


def _lab_on_path():
    if LAB_DIR not in sys.path:
        sys.path.insert(0, LAB_DIR)


_lab_on_path()
import kdlab  # noqa: E402


@pytest.fixture(scope="session")
def lab_dir():
    # Not tmp_path_factory: /tmp/pytest-of-root is 0700 and httpd children
    # (www-data) must traverse the lab dir to read their keytabs.
    base = tempfile.mkdtemp(prefix="kdlab-")
    try:
        yield base
    finally:
        kdlab.stop_all(base)
        # After the whole suite: no per-request credential cache survived,
        # in any httpd's KdelegCcacheDir or default runtime directory.
        left = [os.path.join(d, f) for d, _, files in os.walk(base) for f in files
                if f.startswith("krb5cc_kdeleg_")]
        if not os.environ.get("KDLAB_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
        assert not left, f"credential caches left behind: {left}"


@pytest.fixture(scope="session")
def realm(lab_dir):
    realm = kdlab.Realm(lab_dir)
    try:
        yield realm.start()
    finally:
        realm.stop()


_ccache_numbers = itertools.count(1)


@pytest.fixture
def alice_ccache(realm):
    path = realm.path("ccache", f"alice-{next(_ccache_numbers)}.cc")
    return realm.kinit("alice", path)


@pytest.fixture(scope="session")
def module_path():
    path = os.environ.get("KDELEG_MODULE") or os.path.join(
        REPO, "mod_kdeleg", ".libs", "mod_kdeleg.so")
    if not os.path.exists(path):
        pytest.skip(f"mod_kdeleg not built ({path} missing; set KDELEG_MODULE)")
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def test_ca(lab_dir):
    """The lab's throw-away CA (made on first use): certificates for https
    httpds and haproxy, trusted by clients given test_ca.pem."""
    return kdlab.TestCA(lab_dir)


@pytest.fixture
def httpd_factory(realm):
    started = []

    def make(name, ip, **kwargs):
        httpd = kdlab.Httpd(realm.base, name, ip, **kwargs)
        started.append(httpd)
        return httpd.start(realm.env())

    yield make
    for httpd in started:
        httpd.stop()


@pytest.fixture
def haproxy_factory(realm):
    started = []

    def make(ip, port, backends, **kwargs):
        proxy = kdlab.Haproxy(realm.base, ip, port, backends, **kwargs)
        started.append(proxy)
        return proxy.start()

    yield make
    for proxy in started:
        proxy.stop()


# ---------------------------------------------------------------- mod_kdeleg nodes

import kdclient  # noqa: E402
import kdconf  # noqa: E402

MPMS = ("event", "prefork")


private_ccache_dir = kdlab.private_ccache_dir


def negotiate_conf(realm, httpd_dir, keytab="node1", spns=None, location_extra="", extra="",
                   auth=None):
    """Standard protected layout: /private (static, 404 unless created) and
    /private/cgi/env.cgi behind AuthType Negotiate (or the lines of auth,
    e.g. kdconf.basic(...)); /kdeleg-status for loopback clients."""
    keytab_path = realm.keytab(keytab) if "/" not in keytab else keytab
    return "\n".join((
        f"KdelegKeytab {keytab_path}",
        f"KdelegServiceNames {' '.join(spns)}" if spns else "",
        f'ScriptAlias /private/cgi/ "{httpd_dir}/cgi-bin/"',
        kdconf.location("/private", *(auth or kdconf.negotiate()), textwrap.dedent(location_extra)),
        kdconf.location("/kdeleg-status", "SetHandler kdeleg-status", "Require ip 127.0.0.0/8"),
        extra))


@pytest.fixture
def kd_httpd(realm, module_path):
    """make(name, ip, conf_fn, mpm="event", **kw) -> started Httpd with the
    module loaded. conf_fn(httpd_dir) returns the config text. After the
    test, [warn]/[error] lines in its error log fail the test unless they
    carry a KD number listed in httpd.allowed (tests add what they expect)."""
    started = []

    def make(name, ip, conf_fn, mpm="event", env=None, **kwargs):
        httpd = kdlab.Httpd(realm.base, name, ip, module_path=module_path, mpm=mpm, **kwargs)
        httpd.conf = conf_fn(httpd.dir)
        httpd.allowed = set()
        # logs of an earlier instance with the same name are not this test's
        httpd.start_mark = httpd.error_log_mark()
        started.append(httpd)
        return httpd.start({**realm.env(), **(env or {})})

    yield make
    problems = []
    for httpd in started:
        problems += kdclient.unexpected_problems(httpd.error_log_since(httpd.start_mark),
                                                 httpd.allowed)
        httpd.stop()
    assert not problems, "unexpected problems in error logs:\n" + "\n".join(problems)


@pytest.fixture(scope="session", autouse=True)
def client_environment(realm):
    """python3-gssapi in this process is a Kerberos client of the lab realm."""
    saved = dict(os.environ)
    os.environ.update(realm.env())
    yield
    os.environ.clear()
    os.environ.update(saved)


# ---------------------------------------------------------------- Active Directory realm

import adlab  # noqa: E402


@pytest.fixture(scope="session")
def ad_realm(lab_dir):
    """Session ADRealm (Samba AD DC at 127.0.0.53, see t/lab/adlab.py) in
    lab_dir/ad, restored from the cached snapshot. Skips when Samba is not
    installed or 127.0.0.53 cannot be used (not root, or the host's network
    namespace: t/run-tests runs pytest inside a private one). Stopped by
    recorded PID at the end of the session."""
    ok, reason = adlab.ADRealm.usable()
    if not ok:
        pytest.skip(f"AD realm unavailable: {reason}")
    realm = adlab.ADRealm(os.path.join(lab_dir, "ad"))
    try:
        yield realm.start()
    finally:
        realm.stop()


# ---------------------------------------------------------------- both realms

class Kdc:
    """The realm a test runs against, MIT-LDAP or Active Directory, with the
    few things that differ written once: host and account names, and how
    each KDC's log records an S4U2Proxy request."""

    # AD: the accounts whose keys serve each lab host (websvc holds the VIP
    # and node1 SPNs; NODE2$ is a computer account with host/ SPNs only).
    AD_ACCOUNTS = {"vip": "websvc", "node1": "websvc", "node2": "NODE2$", "other": "othersvc"}
    NETBIOS = {"mit": "EXAMPLE", "ad": "ADEX"}

    def __init__(self, realm):
        self.r = realm
        self.kind = realm.kind
        self.realm = realm.realm
        self.domain = realm.domain
        self.netbios = self.NETBIOS[self.kind]

    def __repr__(self):
        return self.kind

    def host(self, short):
        return f"{short}.{self.domain}"

    def spn(self, short, svc="HTTP"):
        """HTTP/short.domain@REALM"""
        return self.r.service(svc, short)

    def user(self, name):
        return f"{name}@{self.realm}"

    def impersonator(self, short):
        """Who the front end is for tickets to HTTP/short: the SPN on MIT,
        the account holding its key on AD."""
        if self.kind == "mit":
            return self.spn(short)
        return self.r.principal(self.AD_ACCOUNTS[short])

    def _mit_issues(self, lines):
        """MIT logs a ticket as one ISSUE line, followed by a "...
        CONSTRAINED-DELEGATION s4u-client=USER" line for S4U2Proxy: joined."""
        out = []
        for i, line in enumerate(lines):
            if "TGS_REQ" in line and ": ISSUE: " in line:
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                out.append(line + (" " + nxt if "CONSTRAINED-DELEGATION" in nxt else ""))
        return out

    def _target(self, target):
        return target if "@" in target else self.r.service(target)

    def s4u2proxy(self, lines, target, user="alice"):
        """The KDC's records of S4U2Proxy tickets issued to target for user."""
        user, target = self.user(user), self._target(target)
        if self.kind == "mit":
            return [l for l in self._mit_issues(lines) if f" for {target}" in l
                    and f"CONSTRAINED-DELEGATION s4u-client={user}" in l]
        return [l for l in lines if l.startswith("TGS-REQ SUCCESS") and f" {target} " in l
                and f"impersonatee={user}" in l and "cname-in-addl-tkt" in l]

    def own_tgs(self, lines, target, user="alice"):
        """Records of the user asking for target with a TGT of its own."""
        user, target = self.user(user), self._target(target)
        if self.kind == "mit":
            return [l for l in self._mit_issues(lines) if f"{user} for {target}" in l
                    and "CONSTRAINED-DELEGATION" not in l]
        return [l for l in lines if l.startswith("TGS-REQ SUCCESS") and f" {user} {target} " in l
                and "impersonatee=" not in l]

    def requested_by(self, record):
        """The principal whose TGT made the request in a record above."""
        if self.kind == "mit":
            return record.split("}, ")[-1].split(" for ")[0]
        words = [w for w in record.split() if w.startswith("armor_client_name=")]
        return words[0].split("=", 1)[1] if words else None


@pytest.fixture(params=["mit", "ad"])
def kdc(request):
    """The same test against both KDCs. The client in this process (python
    gssapi, kinit, curl) uses the realm's own krb5.conf for the test."""
    realm = request.getfixturevalue("realm" if request.param == "mit" else "ad_realm")
    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = realm.krb5_conf
    yield Kdc(realm)
    os.environ["KRB5_CONFIG"] = saved


_kdc_ccache_numbers = itertools.count(1)


@pytest.fixture
def kdc_alice(kdc):
    """A fresh ccache with alice's TGT in the realm under test."""
    path = kdc.r.path("ccache", f"alice-{next(_kdc_ccache_numbers)}.cc")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return kdc.r.kinit("alice", path)


@pytest.fixture
def kdc_backend(kd_httpd, kdc):
    """A mod_kdeleg back end (HTTP/backend) on 127.0.0.4 in the realm under test."""
    return kd_httpd("backend", "127.0.0.4", server_name=kdc.host("backend"), env=kdc.r.env(),
                    conf_fn=lambda d: negotiate_conf(kdc.r, d, "backend"))


def kdc_front_dir(kdc, d, backend):
    """A front end's KdelegCcacheDir and cgi-bin/backend.cgi calling backend."""
    private_ccache_dir(d)
    kdconf.install_backend_cgi(d, kdc.host("backend"), backend.port)


shared_port = kdlab.shared_port  # balancer and nodes on one port number


# Fixtures several test modules share live in kdfixtures.py, loaded as a
# plugin so every test module sees them and none imports another.
pytest_plugins = ["kdfixtures"]


def pytest_addoption(parser):
    parser.addoption(
        "--mit-run-of-shared-tests", action="store_true",
        help="of a test that runs against both KDCs, keep only its MIT run; tests that "
             "only Active Directory has still run. The sanitizer stage uses it: the "
             "module's code paths are the same on both realms, the KDC is what differs.")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--mit-run-of-shared-tests"):
        return
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (drop if params.get("kdc") == "ad" else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
