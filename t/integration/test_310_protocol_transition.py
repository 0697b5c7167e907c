"""Protocol transition (S4U2Self, then S4U2Proxy) for users who logged in
another way: Basic via mod_authn_file and a TLS client certificate via
mod_ssl's SSLUserName. The back end must see the user."""

import base64
import hashlib
import os
import subprocess

import pytest

import kdclient
import kdconf
from kdmit import delegation_causes, env_of, front_conf
from kdnames import BALANCER_PROXY_MODULES, NODE1, VIP

PASSWORDS = {"alice": "alice-web", "bob": "bob-web", "carol": "carol-web",
             "mallory": "mallory-web"}  # mallory exists only in the web's user file


def htpasswd(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for user, pw in PASSWORDS.items():
            digest = base64.b64encode(hashlib.sha1(pw.encode()).digest()).decode()
            f.write(f"{user}:{{SHA}}{digest}\n")
    os.chmod(path, 0o644)


def basic(user):
    return "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()


def basic_front(kd_httpd, realm, backend, keytab="node1", extra_location="", name="pt-front",
                spns=None, extra_conf=""):
    def conf(d):
        htpasswd(f"{d}/users")
        # The CGI location authenticates with Basic instead of Negotiate.
        auth = kdconf.basic(f"{d}/users", "KdelegProtocolTransition On",
                            "KdelegUserRealm EXAMPLE.TEST", extra_location.strip())
        return extra_conf + front_conf(realm, d, backend, keytab=keytab, spns=spns, auth=auth)
    httpd = kd_httpd(name, "127.0.0.2", server_name=NODE1, conf_fn=conf,
                     extra_modules=("auth_basic", "authn_file") + BALANCER_PROXY_MODULES)
    httpd.ccache_dir = os.path.join(httpd.dir, "ccache")
    httpd.allowed.add("KD00401")
    return httpd


def get(httpd, user, path="/private/cgi/backend.cgi", host=None):
    return kdclient.request(httpd, path, host=host, headers={"Authorization": basic(user)})


def test_basic_user_reaches_backend_as_the_user(kd_httpd, realm, backend):
    httpd = basic_front(kd_httpd, realm, backend)
    for user in ("alice", "bob"):
        status, _, body = get(httpd, user)
        assert status == 200, body
        env = env_of(body)
        assert env["BACKEND_REMOTE_USER"] == f"{user}@EXAMPLE.TEST"
        assert env["KLIST_CLIENT"] == f"{user}@EXAMPLE.TEST"
    status, _, body = get(httpd, "alice", path="/private/cgi/env.cgi")
    env = env_of(body)
    assert env["REMOTE_USER"] == "alice"  # as mod_authn_file authenticated it
    assert env["KDELEG_AUTH_METHOD"] == "protocol-transition"
    assert env["GSS_NAME"] == "alice@EXAMPLE.TEST"
    assert env["KDELEG_SPN"] == "HTTP/node1.example.test"
    assert kdclient.settled_listing(httpd.ccache_dir) == []


def test_vip_requests_transition_as_the_vip_account(kd_httpd, realm, backend):
    httpd = basic_front(kd_httpd, realm, backend)
    mark = realm.kdc_log_mark()
    status, _, body = get(httpd, "alice", host=VIP)
    assert status == 200, body
    assert env_of(body)["BACKEND_REMOTE_USER"] == "alice@EXAMPLE.TEST"
    s4u = [l for l in realm.kdc_log_since(mark) if "TGS_REQ" in l and "ISSUE" in l]
    assert s4u and all("HTTP/vip.example.test@EXAMPLE.TEST" in l for l in s4u), s4u


def test_protocol_transition_not_allowed(kd_httpd, realm, backend):
    """HTTP/node2 has no +ok_to_auth_as_delegate: its S4U2Self tickets are
    not forwardable."""
    httpd = basic_front(kd_httpd, realm, backend, keytab="node2", name="pt-node2",
                        spns=["HTTP/node2.example.test"])
    mark = httpd.error_log_mark()
    status, _, _ = get(httpd, "alice", host="node2.example.test")
    assert status == 500
    assert delegation_causes(httpd, mark) == ["protocol-transition-not-allowed"]
    msg = kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")[0][2]
    assert "TrustedToAuthForDelegation" in msg and "ok_to_auth_as_delegate" in msg


def test_sensitive_user_is_not_delegable(kd_httpd, realm, backend):
    """Once this impersonator had a forwardable S4U2Self ticket (alice), a
    non-forwardable one can only mean the user is sensitive. The fact is
    shared by every child (through the node's cache), so it does not matter
    which child serves carol."""
    httpd = basic_front(kd_httpd, realm, backend)
    assert kdclient.wait_for_processes(httpd, 3) >= 3
    assert get(httpd, "alice")[0] == 200
    mark = httpd.error_log_mark()
    status, _, _ = get(httpd, "carol")
    assert status == 500
    assert delegation_causes(httpd, mark) == ["user-not-delegable"]


def test_unknown_user(kd_httpd, realm, backend):
    httpd = basic_front(kd_httpd, realm, backend)
    mark = httpd.error_log_mark()
    status, _, _ = get(httpd, "mallory")
    assert status == 500
    assert delegation_causes(httpd, mark) == ["user-unknown"]
    assert "KdelegUserRealm" in kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")[0][2]


def test_transition_off_means_no_delegation(kd_httpd, realm, backend):
    httpd = basic_front(kd_httpd, realm, backend, extra_location="    KdelegProtocolTransition Off\n",
                        name="pt-off")
    mark = httpd.error_log_mark()
    status, _, _ = get(httpd, "alice")
    assert status == 500
    assert delegation_causes(httpd, mark) == ["protocol-transition-not-allowed"]


# ------------------------------------------------------------ TLS client certificates

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(lab_dir):
    d = os.path.join(lab_dir, "pki")
    os.makedirs(d, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "2", "-subj", "/CN=Lab CA", cwd=d)
    for name, subject, ext in (("server", f"/CN={NODE1}", f"subjectAltName=DNS:{NODE1}"),
                               ("alice", "/CN=alice", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", subject, cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
                f"{name}.ext", cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    return d


def test_client_certificate_user_reaches_backend(kd_httpd, realm, backend, pki):
    def conf(d):
        auth = ("SSLVerifyClient require", "SSLVerifyDepth 1", "SSLUserName SSL_CLIENT_S_DN_CN",
                "Require valid-user", "KdelegProtocolTransition On",
                "KdelegUserRealm EXAMPLE.TEST")
        return front_conf(realm, d, backend, auth=auth) + f'''
SSLSessionCache "shmcb:{d}/run/ssl_scache(64000)"
SSLEngine on
SSLCertificateFile "{pki}/server.crt"
SSLCertificateKeyFile "{pki}/server.key"
SSLCACertificateFile "{pki}/ca.crt"
'''
    httpd = kd_httpd("pt-tls", "127.0.0.2", server_name=NODE1, conf_fn=conf,
                     extra_modules=("socache_shmcb", "ssl") + BALANCER_PROXY_MODULES)
    # AH02263: the request without a certificate below is refused, as intended
    httpd.allowed.update({"KD00401", "AH02263"})
    url = f"https://{NODE1}:{httpd.port}/private/cgi/backend.cgi"
    proc = subprocess.run(["curl", "-s", "--cacert", f"{pki}/ca.crt", "--cert",
                           f"{pki}/alice.crt", "--key", f"{pki}/alice.key", "--resolve",
                           f"{NODE1}:{httpd.port}:127.0.0.2", "-w", "\nHTTP_CODE=%{http_code}",
                           url], capture_output=True, text=True, timeout=30)
    env = env_of(proc.stdout)
    assert env.get("HTTP_CODE") == "200", proc.stdout + proc.stderr
    assert env["BACKEND_REMOTE_USER"] == "alice@EXAMPLE.TEST"
    # without a certificate the TLS handshake itself is refused
    refused = subprocess.run(["curl", "-s", "--cacert", f"{pki}/ca.crt", "--resolve",
                              f"{NODE1}:{httpd.port}:127.0.0.2", "-o", "/dev/null", "-w",
                              "%{http_code}", url], capture_output=True, text=True, timeout=30)
    assert refused.stdout in ("000", "403")
