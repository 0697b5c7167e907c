"""The load-balanced site on either KDC (the kdc fixture), shared by the
suites that need one (test_720, test_740, test_750, test_775): haproxy on 127.0.0.10 as
vip.<domain>, round robin to node1 (127.0.0.2) and node2 (127.0.0.3), a
mod_kdeleg back end on 127.0.0.4. Balancer and nodes listen on one port
number, as in a real farm, so the VIP's cookie scope is the same
whichever way a request arrives."""

import os
import urllib.parse

import kdclient
from conftest import private_ccache_dir, shared_port
from kdnames import BACKEND_IP, EXPECTED, KEY_A, NODE1_IP, NODE2_IP, PROXY_MODULES, VIP_IP

NODE_IPS = {"node1": NODE1_IP, "node2": NODE2_IP}
# Warnings the site tests provoke on purpose: a failed Kerberos attempt on
# the VIP name (KD00301), loop guard, bad way back, ignored cookie or token.


def hosts(chain):
    return [(urllib.parse.urlsplit(u).hostname, s) for u, s in chain]


def key_file(lab_dir, name="site-720"):
    path = os.path.join(lab_dir, f"{name}.keys")
    with open(path, "w") as f:
        f.write("# session keys: the first seals\n" + KEY_A + "\n")
    os.chmod(path, 0o600)
    return path


def cache_key_file(lab_dir, name, *keys):
    """A KdelegCacheKeyFile: the farm's keys, the same file on every node."""
    path = os.path.join(lab_dir, f"{name}.farmkeys")
    with open(path, "w") as f:
        f.write("# the farm's keys: the same file on every node\n" + "\n".join(keys) + "\n")
    os.chmod(path, 0o600)
    return path


def node_only_keytab(kdc, node):
    """A keytab with the node's own key only, never given the shared VIP
    account's: MIT HTTP/<node>; AD the computer account as a domain join
    leaves it (NODE2$ and host/node2, no HTTP/ entry at all)."""
    path = kdc.r.path("keytabs", f"{node}-only-720.keytab")
    if not os.path.exists(path):
        if kdc.kind == "mit":
            kdc.r.ktadd(kdc.spn(node), path)
        else:
            assert kdc.AD_ACCOUNTS[node].endswith("$"), "only a computer account lacks the VIP key"
            kdc.r.ktadd(kdc.AD_ACCOUNTS[node], path)
            kdc.r.ktadd(kdc.r.spn("host", node), path)
    return path


def lb_conf(kdc, d, keytab, node, port, keys, backend, extra="", scheme="http"):
    """One node of the site, as an administrator writes it: the same file
    on every node but for the keytab and KdelegNodeName. extra: more
    configuration, or a function of the node's directory giving it."""
    extra = extra(d) if callable(extra) else extra
    private_ccache_dir(d)
    os.makedirs(f"{d}/htdocs/private", exist_ok=True)
    with open(f"{d}/htdocs/private/index.html", "w") as f:
        f.write("<html><body>private</body></html>\n")
    vip, back = kdc.host("vip"), kdc.host("backend")
    return f"""
KdelegKeytab {kdc.r.keytab(keytab) if '/' not in keytab else keytab}
KdelegServiceNames HTTP/{vip} HTTP/{node}
KdelegVirtualName {vip}
KdelegNodeName {scheme}://{node}:{port}
KdelegFQDNRedirect On
KdelegSession On
KdelegSessionKeyFile {keys}
ScriptAlias /private/cgi/ "{d}/cgi-bin/"
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
</Location>
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
<Location /deleg/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/{back}
    ProxyPass http://{BACKEND_IP}:{backend.port}/private/cgi/
</Location>
{extra}"""


class Site:
    def __init__(self, kdc, nodes, proxy, scheme="http", cafile=None):
        self.kdc, self.nodes, self.proxy = kdc, nodes, proxy
        self.scheme, self.cafile = scheme, cafile
        self.vip = f"{scheme}://{kdc.host('vip')}:{proxy.port}"
        self.resolve = {kdc.host("vip"): VIP_IP, kdc.host("node1"): NODE1_IP,
                        kdc.host("node2"): NODE2_IP}

    def url(self, path):
        return self.vip + path

    def marks(self):
        return [n.error_log_mark() for n in self.nodes]

    def lines(self, marks, number):
        return [l for n, m in zip(self.nodes, marks)
                for l in kdclient.kd_lines(n.error_log_since(m), number)]

    def browser(self, ccache, **kw):
        if self.cafile:
            kw.setdefault("cafile", self.cafile)
        return kdclient.Browser(self.resolve, ccache, **kw)

    def direct(self, node, ccache, **kw):
        """A browser whose VIP name resolves to one node: the balancer's
        port is the node's, so it is the VIP to the node in every way."""
        resolve = dict(self.resolve, **{self.kdc.host("vip"): node.ip})
        if self.cafile:
            kw.setdefault("cafile", self.cafile)
        return kdclient.Browser(resolve, ccache, **kw)


def make_site(kd_httpd, haproxy_factory, kdc, lab_dir, backend, nodes=None, extra="",
              keys=None, expected=()):
    """nodes: (short name, keytab) of each node behind the VIP."""
    nodes = nodes or (("node1", "node1"), ("node2", "node2"))
    keys = keys or key_file(lab_dir)
    port = shared_port(NODE1_IP, NODE2_IP, VIP_IP)
    started = []
    for short, keytab in nodes:
        name = kdc.host(short)
        node = kd_httpd(short, NODE_IPS[short], server_name=name, port=port, env=kdc.r.env(),
                        extra_modules=PROXY_MODULES,
                        conf_fn=lambda d, k=keytab, n=name: lb_conf(
                            kdc, d, k, n, port, keys, backend, extra))
        node.allowed |= EXPECTED | set(expected)
        started.append(node)
    proxy = haproxy_factory(VIP_IP, port, [(n.ip, n.port) for n in started])
    return Site(kdc, started, proxy)


def make_tls_site(kd_httpd, haproxy_factory, kdc, lab_dir, backend, test_ca, mode,
                  nodes=None, extra="", keys=None, modules=(), proxy_options=None):
    """The site on https. mode "passthrough": TLS nodes, each with a
    certificate for its own name and the VIP; "terminate": haproxy holds the
    VIP's certificate and talks plain http to nodes whose
    ServerName https://vip:port gives the scheme and port. modules: more
    httpd modules for the nodes (e.g. "http2"); proxy_options: more
    kdlab.Haproxy keywords (e.g. send_proxy=True)."""
    nodes = nodes or (("node1", "node1"), ("node2", "node2"))
    vip = kdc.host("vip")
    keys = keys or key_file(lab_dir, "site-750")
    port = shared_port(*NODE_IPS.values(), VIP_IP)
    started = []
    for short, keytab in nodes:
        name = kdc.host(short)
        if mode == "passthrough":
            kw = dict(server_name=name, tls=test_ca.issue(f"{kdc.kind}-{short}", [name, vip]))
            scheme = "https"
        else:
            kw = dict(server_name=f"https://{vip}:{port}")
            scheme = "http"
        node = kd_httpd(short, NODE_IPS[short], port=port, env=kdc.r.env(),
                        extra_modules=PROXY_MODULES + tuple(modules),
                        conf_fn=lambda d, k=keytab, n=name, s=scheme: lb_conf(
                            kdc, d, k, n, port, keys, backend, extra, scheme=s), **kw)
        node.allowed |= EXPECTED
        node.cafile = test_ca.pem
        started.append(node)
    tls = (("passthrough",) if mode == "passthrough"
           else ("terminate", test_ca.bundle(f"{kdc.kind}-vip", [vip])))
    proxy = haproxy_factory(VIP_IP, port, [(n.ip, n.port) for n in started], tls=tls,
                            **(proxy_options or {}))
    return Site(kdc, started, proxy, scheme="https", cafile=test_ca.pem)
