"""A strict identity policy (issue 14, items 1-2), on both KDCs: client
realms limited by KdelegRealms (for Kerberos and for sessions made
elsewhere), and protocol transition only for users a module we trust
checked: Basic and Form by default, other AuthTypes only when
KdelegTrustedAuthTypes names them. (Anonymous tickets: see
test_765_anonymous.py, MIT only: AD issues none.)"""

import base64
import hashlib
import os
import re
import subprocess

import pytest

import kdclient
from conftest import kdc_front_dir, negotiate_conf
from kdsite import key_file
from kdnames import PROXY_MODULES, WEB_PASSWORD

DIGEST_REALM = "web"


@pytest.fixture
def front(kd_httpd, kdc, lab_dir):
    """/private (no realm policy, sessions on), /mine (only the realm under
    test), /elsewhere (only a realm nobody here belongs to)."""
    keys = key_file(lab_dir, "site-760")

    def conf(d):
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"], extra=f"""
KdelegSession On
KdelegSessionKeyFile {keys}
ScriptAlias /mine/ "{d}/cgi-bin/"
ScriptAlias /elsewhere/ "{d}/cgi-bin/"
<Location /mine/>
    AuthType Negotiate
    Require valid-user
    KdelegRealms {kdc.realm}
</Location>
<Location /elsewhere/>
    AuthType Negotiate
    Require valid-user
    KdelegRealms NOWHERE.TEST OTHER.TEST
</Location>
""")
    httpd = kd_httpd("policy", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf)
    httpd.allowed |= {"KD00301"}
    return httpd


def test_realm_policy_for_kerberos(front, kdc, kdc_alice):
    """Finding 2: every realm the KDC trusts used to pass. KdelegRealms
    limits the client's realm (the @REALM of an SPN is the service's, which
    is why the old example comment was wrong)."""
    status, _, body, _ = kdclient.negotiate(front, "/mine/env.cgi", kdc_alice)
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")
    mark = front.error_log_mark()
    status, headers, _, _ = kdclient.negotiate(front, "/elsewhere/env.cgi", kdc_alice)
    assert status == 403 and "www-authenticate" not in headers   # no point asking again
    assert kdclient.causes(front.error_log_since(mark)) == ["realm-not-allowed"]
    assert kdclient.status_agrees(front, "realm-not-allowed")
    line = kdclient.kd_lines(front.error_log_since(mark), "KD00301")[0][2]
    assert f"realm {kdc.realm} of {kdc.user('alice')}" in line and "NOWHERE.TEST" in line


def test_realm_policy_for_sessions(front, kdc, kdc_alice):
    """A session made where every realm passes does not open a location
    that limits realms: the policy is applied where the cookie is used."""
    status, headers, _, _ = kdclient.negotiate(front, "/private/cgi/env.cgi", kdc_alice)
    assert status == 200
    cookie = re.search(r"kdeleg_session=([^;]+)", headers["set-cookie"]).group(1)
    status, _, body = kdclient.request(front, "/mine/env.cgi",
                                       headers={"Cookie": f"kdeleg_session={cookie}"})
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "session"
    mark = front.error_log_mark()
    status, _, _ = kdclient.request(front, "/elsewhere/env.cgi",
                                    headers={"Cookie": f"kdeleg_session={cookie}"})
    assert status == 403
    refused = kdclient.kd_lines(front.error_log_since(mark), "KD00711")
    assert refused and "realm-not-allowed" in refused[0][2], refused


# ------------------------------------------------------------ protocol transition: trusted identities only

def digest_file(path, users):
    with open(path, "w") as f:
        for u in users:
            ha1 = hashlib.md5(f"{u}:{DIGEST_REALM}:{WEB_PASSWORD}".encode()).hexdigest()
            f.write(f"{u}:{DIGEST_REALM}:{ha1}\n")
    os.chmod(path, 0o644)


def basic_file(path, users):
    digest = base64.b64encode(hashlib.sha1(WEB_PASSWORD.encode()).digest()).decode()
    with open(path, "w") as f:
        f.writelines(f"{u}:{{SHA}}{digest}\n" for u in users)
    os.chmod(path, 0o644)


def digest_get(httpd, path, user):
    """GET with HTTP Digest (RFC 7616, MD5, qop=auth), as a browser does."""
    status, headers, _ = kdclient.request(httpd, path)
    assert status == 401
    challenge = headers["www-authenticate"]
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    ha1 = hashlib.md5(f"{user}:{DIGEST_REALM}:{WEB_PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(f"GET:{path}".encode()).hexdigest()
    nc, cnonce = "00000001", "0a4f113b"
    response = hashlib.md5(f"{ha1}:{fields['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    auth = (f'Digest username="{user}", realm="{DIGEST_REALM}", nonce="{fields["nonce"]}", '
            f'uri="{path}", algorithm=MD5, response="{response}", qop=auth, nc={nc}, '
            f'cnonce="{cnonce}"')
    return kdclient.request(httpd, path, headers={"Authorization": auth})


@pytest.fixture
def pt_front(kd_httpd, kdc, kdc_backend):
    """/basic (mod_auth_basic), /digest (mod_auth_digest, not trusted by
    default), /digest-trusted (KdelegTrustedAuthTypes Digest); all delegate
    to the back end by protocol transition."""
    back = kdc.host("backend")

    def location(path, auth, d, extra=""):
        return f"""
ScriptAlias /{path}/ "{d}/cgi-bin/"
<Location /{path}/>
    {auth}
    Require valid-user
    KdelegProtocolTransition On
    KdelegDelegateTo HTTP/{back}
    KdelegCcacheDir "{d}/ccache"
    {extra}
</Location>"""

    def conf(d):
        kdc_front_dir(kdc, d, kdc_backend)
        basic_file(f"{d}/users", ["alice", "ALICE"])
        digest_file(f"{d}/digest", ["alice"])
        basic = f'AuthType Basic\n    AuthName "web"\n    AuthBasicProvider file\n    AuthUserFile "{d}/users"'
        digest = (f'AuthType Digest\n    AuthName "{DIGEST_REALM}"\n    AuthDigestProvider file\n'
                  f'    AuthUserFile "{d}/digest"')
        return (f"KdelegKeytab {kdc.r.keytab('node1')}\n"
                f"KdelegServiceNames HTTP/{kdc.host('node1')}\n"
                f"KdelegUserRealm {kdc.realm}\n"
                + location("basic", basic, d) + location("digest", digest, d)
                + location("digest-trusted", digest, d, "KdelegTrustedAuthTypes Digest")
                + location("basic-elsewhere", basic, d, "KdelegRealms NOWHERE.TEST")
                + location("basic-mapped", basic, d,
                           'KdelegUserPrincipal "%{tolower:%{REMOTE_USER}}"')
                + location("basic-empty", basic, d,
                           'KdelegUserPrincipal "%{reqenv:KDELEG_NO_SUCH_VARIABLE}"'))
    httpd = kd_httpd("ptpolicy", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf, extra_modules=("auth_basic", "authn_file", "auth_digest")
                     + PROXY_MODULES)
    httpd.allowed |= {"KD00401"}
    return httpd


def basic_get(httpd, path, user="alice"):
    auth = "Basic " + base64.b64encode(f"{user}:{WEB_PASSWORD}".encode()).decode()
    return kdclient.request(httpd, path, headers={"Authorization": auth})


def delegation_causes(httpd, mark):
    return [m.split("cause ", 1)[1].split(":", 1)[0]
            for _, _, m in kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")]


def test_basic_users_are_transitioned(pt_front, kdc):
    status, _, body = basic_get(pt_front, "/basic/backend.cgi")
    env = kdclient.cgi_env(body)
    assert status == 200 and env["BACKEND_REMOTE_USER"] == kdc.user("alice"), body


def test_untrusted_auth_type_is_refused_before_the_kdc(pt_front, kdc):
    """Finding 3: protocol transition trusted any r->user. A Digest user is
    real, but mod_kdeleg does not vouch for it unless the administrator
    names the AuthType: untrusted-identity, and the KDC never hears of it."""
    kdc_mark = kdc.r.kdc_log_mark()
    mark = pt_front.error_log_mark()
    status, _, _ = digest_get(pt_front, "/digest/backend.cgi", "alice")
    assert status == 500
    assert delegation_causes(pt_front, mark) == ["untrusted-identity"]
    line = kdclient.kd_lines(pt_front.error_log_since(mark), "KD00401")[0][2]
    assert "AuthType Digest" in line and "KdelegTrustedAuthTypes" in line
    assert not [l for l in kdc.r.kdc_log_since(kdc_mark) if "alice" in l]


def test_trusted_auth_types_names_another_module(pt_front, kdc):
    status, _, body = digest_get(pt_front, "/digest-trusted/backend.cgi", "alice")
    env = kdclient.cgi_env(body)
    assert status == 200 and env["BACKEND_REMOTE_USER"] == kdc.user("alice"), body


def test_realm_policy_for_protocol_transition(pt_front, kdc):
    mark = pt_front.error_log_mark()
    status, _, _ = basic_get(pt_front, "/basic-elsewhere/backend.cgi")
    assert status == 500
    assert delegation_causes(pt_front, mark) == ["realm-not-allowed"]


def test_user_principal_expression(pt_front, kdc):
    """KdelegUserPrincipal: the Basic user ALICE acts as the expression's
    alice; an expression that gives nothing refuses before the KDC."""
    status, _, body = basic_get(pt_front, "/basic-mapped/backend.cgi", "ALICE")
    env = kdclient.cgi_env(body)
    assert status == 200, body
    # the delegated cache is alice's, and the back end saw alice
    assert env["KLIST_CLIENT"] == kdc.user("alice"), body
    assert env["BACKEND_REMOTE_USER"] == kdc.user("alice")
    kdc_mark = kdc.r.kdc_log_mark()
    mark = pt_front.error_log_mark()
    status, _, _ = basic_get(pt_front, "/basic-empty/backend.cgi")
    assert status == 500
    assert delegation_causes(pt_front, mark) == ["untrusted-identity"]
    assert "KdelegUserPrincipal gave an empty name" in \
        kdclient.kd_lines(pt_front.error_log_since(mark), "KD00401")[0][2]
    assert not [l for l in kdc.r.kdc_log_since(kdc_mark) if "alice" in l.lower()]


# ------------------------------------------------------------ client certificates

def self_signed_client(d, cn):
    """A client certificate no CA of ours signed, naming cn."""
    cert, key = os.path.join(d, f"self-{cn}.pem"), os.path.join(d, f"self-{cn}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-subj", f"/CN={cn}", "-days", "1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def cert_fronts(kd_httpd, kdc, kdc_backend, test_ca):
    """Two https fronts that take the user from the client certificate
    (SSLUserName SSL_CLIENT_S_DN_CN) and transition it: one verifies the
    certificate against the lab CA (SSLVerifyClient require), the other
    takes any certificate (optional_no_ca: SSL_CLIENT_VERIFY is GENEROUS)."""
    host = kdc.host("node1")

    def conf(verify):
        def text(d):
            kdc_front_dir(kdc, d, kdc_backend)
            return f"""KdelegKeytab {kdc.r.keytab('node1')}
KdelegServiceNames HTTP/{host}
KdelegUserRealm {kdc.realm}
SSLCACertificateFile "{test_ca.pem}"
SSLVerifyClient {verify}
SSLVerifyDepth 2
SSLUserName SSL_CLIENT_S_DN_CN
ScriptAlias /cert/ "{d}/cgi-bin/"
<Location /cert/>
    Require valid-user
    KdelegProtocolTransition On
    KdelegDelegateTo HTTP/{kdc.host("backend")}
    KdelegCcacheDir "{d}/ccache"
</Location>
"""
        return text

    fronts = {}
    for name, verify in (("verified", "require"), ("generous", "optional_no_ca")):
        httpd = kd_httpd(f"cert-{name}", "127.0.0.2", server_name=host, env=kdc.r.env(),
                         conf_fn=conf(verify), extra_modules=PROXY_MODULES,
                         tls=test_ca.issue(f"{kdc.kind}-node1-cert", [host]))
        httpd.allowed |= {"KD00401"}
        fronts[name] = httpd
    return fronts


def cert_get(httpd, path, cafile, cert):
    import ssl
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.load_cert_chain(*cert)
    conn = kdclient.PinnedHTTPSConnection(httpd.server_name, httpd.port, httpd.ip, ctx)
    try:
        conn.request("GET", path, headers={"Host": f"{httpd.server_name}:{httpd.port}"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_verified_client_certificate_is_transitioned(cert_fronts, kdc, test_ca):
    """Item 2: r->user from SSLUserName is trusted when mod_ssl verified
    the certificate (SSL_CLIENT_VERIFY=SUCCESS) and r->user is one of its
    names; no AuthType is involved."""
    cert = test_ca.issue_client("client-alice", "alice")
    status, body = cert_get(cert_fronts["verified"], "/cert/backend.cgi", test_ca.pem, cert)
    env = kdclient.cgi_env(body)
    assert status == 200 and env["KLIST_CLIENT"] == kdc.user("alice"), body
    assert env["BACKEND_REMOTE_USER"] == kdc.user("alice"), body


def test_unverified_client_certificate_is_not(cert_fronts, kdc, test_ca, lab_dir):
    """Anyone can make a certificate that says CN=alice: where mod_ssl did
    not verify it, the name it gives REMOTE_USER is untrusted-identity,
    and the KDC never hears of it."""
    httpd = cert_fronts["generous"]
    cert = self_signed_client(httpd.dir, "alice")
    kdc_mark, mark = kdc.r.kdc_log_mark(), httpd.error_log_mark()
    status, _ = cert_get(httpd, "/cert/backend.cgi", test_ca.pem, cert)
    assert status == 500
    assert delegation_causes(httpd, mark) == ["untrusted-identity"]
    assert not [l for l in kdc.r.kdc_log_since(kdc_mark) if "alice" in l]
