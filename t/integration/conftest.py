"""Fixtures for mod_kdeleg integration tests: one Kerberos lab per session.

realm          session Realm (slapd + MIT KDC with LDAP back end), see t/lab/kdlab.py
lab_dir        its base directory (KDLAB_KEEP=1 keeps it after the run)
ad_realm       session ADRealm (Samba AD DC at 127.0.0.53 in lab_dir/ad), see t/lab/adlab.py;
               skips outside a private network namespace or without Samba
alice_ccache   a fresh FILE ccache path holding alice's TGT
module_path    the built mod_kdeleg.so ($KDELEG_MODULE, else mod_kdeleg/.libs/),
               skips the test when there is none
httpd_factory  make(name, ip, **Httpd kwargs) -> started Httpd, stopped after the test
haproxy_factory make(ip, port, backends, **kw) -> started Haproxy, stopped after the test

Every server records its PID under the lab dir; the session finalizer stops
all of them whatever happened, so a failed test leaves nothing running.
"""

import itertools
import os
import shutil
import sys
import tempfile

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

MPMS = ("event", "prefork")


private_ccache_dir = kdlab.private_ccache_dir


def negotiate_conf(realm, httpd_dir, keytab="node1", spns=None, location_extra="", extra=""):
    """Standard protected layout: /private (static, 404 unless created) and
    /private/cgi/env.cgi behind AuthType Negotiate; /kdeleg-status for
    loopback clients."""
    spn_line = f"KdelegServiceNames {' '.join(spns)}\n" if spns else ""
    return f"""
KdelegKeytab {realm.keytab(keytab) if '/' not in keytab else keytab}
{spn_line}ScriptAlias /private/cgi/ "{httpd_dir}/cgi-bin/"
<Location /private>
    AuthType Negotiate
    Require valid-user
{location_extra}</Location>
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
</Location>
{extra}"""


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
