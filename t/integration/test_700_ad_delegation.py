"""Delegation against both KDCs (issue 12): every test here runs once on
the MIT-LDAP realm and once on the Samba Active Directory domain (the kdc
fixture). On AD the front end's own TGT must be the account's (websvc,
NODE2$), the client's service ticket is the only evidence even when the
client forwards its TGT, and each AD refusal has its own cause.

Lab accounts (t/lab/kdlab.py, t/lab/adlab.py): node1's keytab holds the VIP
and node1 SPNs (on AD one account, websvc, with its account entry), node2's
the VIP and node2 (on AD the computer account NODE2$ with host/ SPNs only).
HTTP/backend and postgres/db are allowed targets for both; HTTP/other is
not; protocol transition is allowed for the VIP and node1, not node2."""

import os
import subprocess

import pytest

import kdclient
from conftest import kdc_front_dir, negotiate_conf
from kdnames import PROXY_MODULES




@pytest.fixture
def backend(kdc_backend):
    return kdc_backend


def front_conf(kdc, d, backend, keytab="node1", spns=("vip", "node1"), location_extra="",
               extra=""):
    kdc_front_dir(kdc, d, backend)
    return negotiate_conf(kdc.r, d, keytab, [f"HTTP/{kdc.host(s)}" for s in spns],
                          location_extra=f"""    KdelegDelegateTo HTTP/{kdc.host("backend")}
    KdelegCcacheDir "{d}/ccache"
{location_extra}""", extra=f"""
<Location /proxied/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/{kdc.host("backend")}
    ProxyPass http://127.0.0.4:{backend.port}/private/cgi/
</Location>
{extra}""")


def start_front(kd_httpd, kdc, backend, name="front", host="node1", **kw):
    return kd_httpd(name, "127.0.0.2", server_name=kdc.host(host), env=kdc.r.env(),
                    extra_modules=PROXY_MODULES,
                    conf_fn=lambda d: front_conf(kdc, d, backend, **kw))


@pytest.fixture
def front(kd_httpd, kdc, backend):
    return start_front(kd_httpd, kdc, backend)


def audit_lines(httpd, mark):
    return [l for l in httpd.error_log_since(mark) if "KD00410" in l]


# ------------------------------------------------------------ the account's TGT

@pytest.mark.parametrize("host", ["node1", "vip"])
def test_ccache_reaches_backend_as_the_user(front, kdc, kdc_alice, host):
    """The CGI's KRB5CCNAME holds alice's ticket for the back end, obtained
    by S4U2Proxy as the account AD knows (websvc), not as the SPN."""
    mark, fmark = kdc.r.kdc_log_mark(), front.error_log_mark()
    status, _, body, _ = kdclient.negotiate(front, "/private/cgi/backend.cgi", kdc_alice,
                                            host=kdc.host(host))
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert env["BACKEND_REMOTE_USER"] == kdc.user("alice")
    assert env["KLIST_CLIENT"] == kdc.user("alice")
    assert env["KLIST_TICKET"] == kdc.spn("backend")
    s4u = kdc.s4u2proxy(kdc.r.kdc_log_since(mark), "HTTP/backend")
    assert len(s4u) == 1, kdc.r.kdc_log_since(mark)
    assert kdc.requested_by(s4u[0]) == kdc.impersonator(host), s4u
    # the audit line says who acted as whom
    audit = audit_lines(front, fmark)
    assert len(audit) == 1, audit
    assert (f"audit S4U2Proxy user={kdc.user('alice')} impersonator={kdc.impersonator(host)} "
            f"target=HTTP/{kdc.host('backend')} result=ok via=kdc") in audit[0]


def test_proxy_negotiate_and_cache(front, kdc, kdc_alice):
    """mod_proxy sends a fresh Negotiate token made from alice's ticket; the
    second request is served from the node's cache (no KDC request)."""
    for n in range(2):
        mark, fmark = kdc.r.kdc_log_mark(), front.error_log_mark()
        status, _, body, _ = kdclient.negotiate(front, "/proxied/env.cgi", kdc_alice)
        assert status == 200, body
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == kdc.user("alice")
        assert env["KDELEG_SPN"] == kdc.spn("backend")
        assert len(kdc.s4u2proxy(kdc.r.kdc_log_since(mark), "HTTP/backend")) == (1 - n)
        assert f"via={'kdc' if n == 0 else 'cache'}" in audit_lines(front, fmark)[0]


def test_forwarded_tgt_is_ignored(front, kdc, kdc_alice):
    """kinit -f plus curl --delegation always: the client forwards its TGT.
    It is never used; constrained delegation goes ahead from the service
    ticket, and the KDC sees an S4U2Proxy request, not alice's own TGS-REQ."""
    assert kdc.r.run(["klist", "-f", "-c", kdc_alice]).stdout.count("Flags: F") >= 1
    mark = kdc.r.kdc_log_mark()
    url = f"http://{kdc.host('node1')}:{front.port}/private/cgi/backend.cgi"
    out = subprocess.run(["curl", "-s", "-S", "--negotiate", "-u", ":", "--delegation", "always",
                          "--resolve", f"{kdc.host('node1')}:{front.port}:127.0.0.2", url],
                         env={**os.environ, **kdc.r.env(kdc_alice)}, capture_output=True,
                         text=True, timeout=30)
    env = kdclient.cgi_env(out.stdout)
    assert env.get("BACKEND_REMOTE_USER") == kdc.user("alice"), out.stdout + out.stderr
    lines = kdc.r.kdc_log_since(mark)
    s4u = kdc.s4u2proxy(lines, "HTTP/backend")
    assert len(s4u) == 1 and kdc.requested_by(s4u[0]) == kdc.impersonator("node1"), lines
    assert kdc.own_tgs(lines, "HTTP/backend") == [], lines
    print("KDC log, forwarded TGT case:", *s4u, sep="\n  ")


# ------------------------------------------------------------ refusals, each named

def causes(httpd, mark):
    """Cause names of the KD00401 delegation-failure lines since mark."""
    return [msg.split("cause ", 1)[1].split(":", 1)[0]
            for _, _, msg in kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")]


def test_target_not_allowed(kd_httpd, kdc, backend, kdc_alice):
    h = start_front(kd_httpd, kdc, backend, name="deny-other",
                    location_extra=f"    KdelegDelegateTo HTTP/{kdc.host('other')}\n")
    h.allowed |= {"KD00401"}
    mark = h.error_log_mark()
    status, _, body, _ = kdclient.negotiate(h, "/private/cgi/env.cgi", kdc_alice)
    assert status == 500
    assert causes(h, mark) == ["delegation-not-allowed"]
    line = kdclient.kd_lines(h.error_log_since(mark), "KD00401")[0][2]
    assert kdc.host("other") in line and "msDS-AllowedToDelegateTo" in line
    assert "result=delegation-not-allowed" in audit_lines(h, mark)[-1]


def test_target_unknown(kd_httpd, kdc, backend, kdc_alice):
    h = start_front(kd_httpd, kdc, backend, name="deny-nosuch",
                    location_extra=f"    KdelegDelegateTo HTTP/{kdc.host('nosuch')}\n")
    h.allowed |= {"KD00401"}
    mark = h.error_log_mark()
    status, _, _, _ = kdclient.negotiate(h, "/private/cgi/env.cgi", kdc_alice)
    assert status == 500
    assert causes(h, mark) == ["spn-unknown"]
    assert "setspn -S" in kdclient.kd_lines(h.error_log_since(mark), "KD00401")[0][2]


def test_sensitive_user_over_kerberos(front, kdc):
    """carol is "sensitive and cannot be delegated": her service ticket is
    not forwardable, known before the KDC is asked."""
    cc = kdc.r.kinit("carol", kdc.r.path("ccache", "carol-700.cc"))
    front.allowed |= {"KD00401"}
    mark, kmark = front.error_log_mark(), kdc.r.kdc_log_mark()
    status, _, _, _ = kdclient.negotiate(front, "/private/cgi/env.cgi", cc)
    assert status == 500
    assert causes(front, mark) == ["user-not-delegable"]
    assert kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "HTTP/backend", user="carol") == []


def test_client_ticket_in_an_enctype_the_keytab_lacks(kd_httpd, kdc, backend, kdc_alice):
    """The KDC issued an AES256 ticket, the keytab has only AES128 keys for
    the SPN (AD: msDS-SupportedEncryptionTypes changed after the export):
    etype-unsupported, never keytab-unusable."""
    spn, keytab = kdc.spn("node1"), kdc.r.path("keytabs", "node1-aes128.keytab")
    if os.path.exists(keytab):
        os.unlink(keytab)
    listing = [l for l in kdc.r.run(["klist", "-k", "-e", kdc.r.keytab("node1")]).stdout
               .splitlines() if l.strip()[:1].isdigit()]
    drop = [n for n, l in enumerate(listing, 1) if spn not in l or "aes256" in l]
    kdc.r.run(["ktutil"], input=f"rkt {kdc.r.keytab('node1')}\n" +
              "".join(f"delent {n}\n" for n in reversed(drop)) + f"wkt {keytab}\nquit\n")
    os.chmod(keytab, 0o644)
    assert {e for _, p, e in kdc.r.keytab_entries(keytab)} == {"aes128-cts-hmac-sha1-96"}
    h = kd_httpd("etype", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                 conf_fn=lambda d: negotiate_conf(kdc.r, d, keytab, [f"HTTP/{kdc.host('node1')}"]))
    h.allowed |= {"KD00301"}
    mark = h.error_log_mark()
    status, _, _, _ = kdclient.negotiate(h, "/private/index.html", kdc_alice)
    assert status == 500  # the administrator must act, as for keytab-unusable
    assert kdclient.causes(h.error_log_since(mark)) == ["etype-unsupported"]
    assert kdclient.status_agrees(h, "etype-unsupported")
