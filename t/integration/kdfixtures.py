"""Fixtures shared by several test modules (conftest.py loads this as a
plugin, so no test module imports another)."""

import pytest

from conftest import negotiate_conf, shared_port
from kdlb import Site, key_file, lb_conf, novip_keytab
from kdnames import STORE_IP, BACKEND, EXPECTED, KEY_A, NODE1, NODE1_IP, NODE2, NODE2_IP, PROXY_MODULES, VIP_IP


@pytest.fixture(scope="module")
def backend(realm, module_path, lab_dir):
    import kdlab
    httpd = kdlab.Httpd(realm.base, "backend", "127.0.0.4", module_path=module_path,
                        server_name=BACKEND)
    httpd.conf = negotiate_conf(realm, httpd.dir, "backend") + """
# shows whether any Authorization header arrived, without echoing it
SetEnvIf Authorization "^Negotiate " HAD_NEGOTIATE=1
<Location /open>
    Require all granted
</Location>
ScriptAlias /open/ "%s/cgi-bin/"
""" % httpd.dir
    httpd.start(realm.env())
    yield httpd
    httpd.stop()


@pytest.fixture
def site_factory(kd_httpd, haproxy_factory, realm, lab_dir, backend):
    def make(keytabs=("node1", "node2"), mpm="event", lifetime=None, keys=None):
        keys = keys or key_file(lab_dir, "site", KEY_A)
        nodes = []
        port = shared_port(NODE1_IP, NODE2_IP, VIP_IP)
        for (name, ip), keytab in zip(((NODE1, NODE1_IP), (NODE2, NODE2_IP)), keytabs):
            node = kd_httpd(name.split(".")[0], ip, server_name=name, port=port, mpm=mpm,
                            extra_modules=PROXY_MODULES,
                            conf_fn=lambda d, k=keytab, n=name, p=port: lb_conf(
                                realm, d, k, n, p, keys, backend, lifetime=lifetime))
            node.allowed |= EXPECTED
            nodes.append(node)
        proxy = haproxy_factory(VIP_IP, port, [(n.ip, n.port) for n in nodes])
        return Site(nodes, proxy)
    return make


@pytest.fixture
def site(site_factory):
    """Both nodes hold the VIP key."""
    return site_factory()


@pytest.fixture
def blind_site(site_factory, realm, lab_dir):
    """Neither node holds the VIP key: every VIP ticket needs the fallback."""
    return site_factory(keytabs=(novip_keytab(realm, lab_dir, "node1"),
                                 novip_keytab(realm, lab_dir, "node2")))


@pytest.fixture
def store_factory(lab_dir):
    """make(kind, **kw): a real memcached or redis-server on STORE_IP,
    started by PID, stopped (and resumed first if paused) afterwards."""
    import kdlab
    started = []

    def make(kind, **kw):
        cls = kdlab.Memcached if kind == "memcache" else kdlab.Redis
        s = cls(lab_dir, STORE_IP, name=f"{kind}-{len(started)}", **kw).start()
        started.append(s)
        return s
    yield make
    for s in started:
        s.resume() if s.pid else None
        s.stop()
