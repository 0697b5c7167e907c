"""The MIT lab's front end and back end, shared by the delegation tests
(test_300, test_310, test_610, ...): names, the back-end CGI that uses
KRB5CCNAME, config builders and log readers. The module-scoped `backend`
fixture (HTTP/backend on 127.0.0.4) is in kdfixtures.py."""

import os
import re

import kdclient
import kdconf
import kdlab
from conftest import negotiate_conf, private_ccache_dir
from kdnames import BACKEND, NODE1, VIP


def front_conf(realm, d, backend, location_extra="", extra="", keytab="node1", spns=None,
               auth=None):
    private_ccache_dir(d)
    kdconf.install_backend_cgi(d, BACKEND, backend.port)
    return negotiate_conf(realm, d, keytab, spns or [f"HTTP/{NODE1}", f"HTTP/{VIP}"],
                          location_extra=f"""    KdelegDelegateTo HTTP/{BACKEND}
    KdelegCcacheDir "{d}/ccache"
{location_extra}""", extra=extra, auth=auth)


def proxied_location(backend, target=BACKEND):
    """/proxied/: mod_proxy to the back end's CGIs with a fresh token for target."""
    return f"""
<Location /proxied/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/{target}
    ProxyPass http://127.0.0.4:{backend.port}/private/cgi/
</Location>
"""


def env_of(body):
    return kdclient.cgi_env(body)


def delegation_causes(httpd, mark):
    """Causes of the KD00401 lines since mark; the status page agrees."""
    lines = httpd.error_log_since(mark)
    causes = [re.search(r"cause ([a-z-]+)", m).group(1)
              for _, _, m in kdclient.kd_lines(lines, "KD00401")]
    if causes:
        assert kdclient.status_agrees(httpd, causes[-1])
    return causes


def s4u2proxy_requests(realm, mark):
    """S4U2Proxy tickets the KDC issued for the back end since mark (MIT
    logs the impersonator on these lines, not the user)."""
    return [l for l in realm.kdc_log_since(mark)
            if "TGS_REQ" in l and "ISSUE" in l and f"HTTP/{BACKEND}@" in l]


def new_service(realm, host):
    """A service principal of its own, so re-keying cannot disturb other tests."""
    principal = f"HTTP/{host}"
    try:
        realm.kadmin(f"addprinc -randkey {realm.principal(principal)}")
    except kdlab.KadminError:
        pass
    keytab = realm.path("keytabs", f"{host}.keytab")
    if os.path.exists(keytab):
        os.unlink(keytab)
    realm.ktadd(principal, keytab)
    return principal, keytab
