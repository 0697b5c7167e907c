"""The MIT lab's load-balanced site (test_400, test_410): two nodes behind
haproxy on one port, the VIP's keys on both or on neither, sessions and the
FQDN fallback. The fixtures that start it are in kdfixtures.py. (kdsite.py
builds the same kind of site on both KDCs for the later tests.)"""

import os

import kdclient
import kdlab
from conftest import private_ccache_dir
from kdnames import BACKEND, NODE1, NODE1_IP, NODE2, NODE2_IP, VIP, VIP_IP

RESOLVE = {VIP: VIP_IP, NODE1: NODE1_IP, NODE2: NODE2_IP}
# Warnings these tests provoke on purpose: loop guard, bad way back, ignored cookie.


def key_file(lab_dir, name, *keys, mode=0o600):
    path = os.path.join(lab_dir, f"{name}.keys")
    with open(path, "w") as f:
        f.write("# session keys: the first seals\n" + "\n".join(keys) + "\n")
    os.chmod(path, mode)
    return path


def lb_conf(realm, d, keytab, node, port, keys, backend, extra="", lifetime=None):
    """One node of the site, as an administrator writes it: same file on
    every node but for the keytab and KdelegNodeName."""
    private_ccache_dir(d)
    private_page(d)
    life = f"KdelegSessionLifetime {lifetime}\n" if lifetime else ""
    return f"""
KdelegKeytab {realm.keytab(keytab) if '/' not in keytab else keytab}
KdelegServiceNames HTTP/{VIP} HTTP/{node}
KdelegVirtualName {VIP}
KdelegNodeName http://{node}:{port}
KdelegFQDNRedirect On
KdelegSession On
KdelegSessionKeyFile {keys}
{life}ScriptAlias /private/cgi/ "{d}/cgi-bin/"
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
    KdelegProxyNegotiate HTTP/{BACKEND}
    ProxyPass http://127.0.0.4:{backend.port}/private/cgi/
</Location>
<Location /transition/>
    AuthType Negotiate
    Require valid-user
    KdelegProtocolTransition On
    KdelegProxyNegotiate HTTP/{BACKEND}
    ProxyPass http://127.0.0.4:{backend.port}/private/cgi/
</Location>
{extra}"""


def novip_keytab(realm, lab_dir, node):
    """A keytab with only the node's own key: a node that was never given
    the shared VIP account's keys."""
    path = os.path.join(lab_dir, "keytabs", f"{node}-only.keytab")
    if not os.path.exists(path):
        realm.ktadd(realm.service(f"HTTP/{node}"), path)
        kdlab._share_with_httpd(path, 0o640)
    return path


def private_page(d):
    os.makedirs(f"{d}/htdocs/private", exist_ok=True)
    with open(f"{d}/htdocs/private/index.html", "w") as f:
        f.write("<html><body>private</body></html>\n")


STATE = "A" * 43  # a well-formed kdeleg-state (the hash of no real cookie)


class Site:
    def __init__(self, nodes, proxy):
        self.nodes, self.proxy = nodes, proxy
        self.vip = f"http://{VIP}:{proxy.port}"

    def url(self, path):
        return self.vip + path

    def lines(self, marks, number):
        return [l for n, m in zip(self.nodes, marks)
                for l in kdclient.kd_lines(n.error_log_since(m), number)]

    def marks(self):
        return [n.error_log_mark() for n in self.nodes]
