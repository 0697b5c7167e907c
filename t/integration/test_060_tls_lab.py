"""TLS in the lab: kdlab.TestCA certificates, https httpds, haproxy passing
TLS through or terminating it, and the clients (python ssl, curl,
kdclient.Browser, headless Chromium) trusting the lab CA and only it.
No mod_kdeleg needed."""

import os
import re
import socket
import ssl
import subprocess

import pytest

import kdclient
import kdlab

NODE1, NODE2, VIP = "node1.example.test", "node2.example.test", "vip.example.test"
NODE1_IP, NODE2_IP, VIP_IP = "127.0.0.2", "127.0.0.3", "127.0.0.10"


def peer(host, ip, port, cafile):
    """(subject CN, [SAN DNS names], TLS version) of the certificate ip:port
    shows to a client asking for host, verified against cafile for host."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((ip, port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            cert, version = tls.getpeercert(), tls.version()
    cn = dict(rdn[0] for rdn in cert["subject"])["commonName"]
    return cn, [v for k, v in cert["subjectAltName"] if k == "DNS"], version


def curl(url, host, port, ip, cafile=None):
    """(exit code, HTTP status or 0, body) of curl --cacert ... --resolve."""
    tls = ["--cacert", cafile] if cafile else []
    proc = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *tls,
                           "--resolve", f"{host}:{port}:{ip}", url],
                          capture_output=True, text=True, timeout=30, env=kdlab.base_env())
    body, _, code = proc.stdout.rpartition("\n")
    return proc.returncode, int(code or 0), body


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True,
                          env=kdlab.base_env())


def haproxy_accepts(proxy):
    proc = subprocess.run(["haproxy", "-c", "-f", proxy.cfg], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def warnings_in(httpd):
    return kdclient.unexpected_problems(httpd.error_log_since(0))


# ------------------------------------------------------------------ the CA

def test_ca_issues_server_certificates(test_ca):
    cert, key = test_ca.issue("t060-node1", [NODE1, VIP])
    assert (cert, key) == (os.path.join(test_ca.dir, "t060-node1.pem"),
                           os.path.join(test_ca.dir, "t060-node1.key"))
    assert test_ca.pem == os.path.join(test_ca.dir, "ca.pem")
    for private in (key, test_ca.key):
        assert os.stat(private).st_mode & 0o777 == 0o600
    with open(cert) as f:
        issued = f.read()
    assert test_ca.issue("t060-node1", [NODE1, VIP]) == (cert, key)
    with open(cert) as f:
        assert f.read() == issued, "issued again instead of returning the existing files"

    ok = openssl("verify", "-CAfile", test_ca.pem, "-purpose", "sslserver", cert)
    assert ok.returncode == 0 and ok.stdout.strip().endswith(": OK"), ok.stdout + ok.stderr
    text = openssl("x509", "-in", cert, "-noout", "-subject", "-ext",
                   "subjectAltName,extendedKeyUsage,basicConstraints").stdout
    assert re.search(rf"subject=CN ?= ?{NODE1}$", text, re.M), text
    assert f"DNS:{NODE1}, DNS:{VIP}" in text
    assert "TLS Web Server Authentication" in text and "CA:FALSE" in text
    # Key and certificate belong together.
    assert (openssl("pkey", "-in", key, "-pubout").stdout ==
            openssl("x509", "-in", cert, "-noout", "-pubkey").stdout)
    # Another CA's certificate does not verify against this one.
    other = kdlab.TestCA(os.path.join(test_ca.base, "t060-other-ca"))
    stranger, _ = other.issue("stranger", [NODE1])
    assert openssl("verify", "-CAfile", test_ca.pem, stranger).returncode != 0

    bundle = test_ca.bundle("t060-vip", [VIP])
    assert os.stat(bundle).st_mode & 0o777 == 0o600
    with open(bundle) as f:
        text = f.read()
    vip_cert, vip_key = test_ca.issue("t060-vip", [VIP])
    with open(vip_cert) as c, open(vip_key) as k:
        assert text == c.read() + k.read()


# ------------------------------------------------------------------ httpd

def test_httpd_serves_https_only(httpd_factory, test_ca, lab_dir):
    httpd = httpd_factory("t060-tls", NODE1_IP, server_name=NODE1,
                          tls=test_ca.issue("t060-tls", [NODE1]))
    assert httpd.scheme == "https" and httpd.url().startswith("https://")
    with open(httpd.conf_path) as f:
        conf = f.read()
    assert f"Listen {NODE1_IP}:{httpd.port} https\n" in conf
    assert re.search(r"^SSLEngine on$", conf, re.M)  # server level, not a vhost
    assert "<VirtualHost" not in conf

    cn, san, version = peer(NODE1, NODE1_IP, httpd.port, test_ca.pem)
    assert (cn, san) == (NODE1, [NODE1])
    assert version in ("TLSv1.2", "TLSv1.3")

    status, _, body = kdclient.request(httpd, "/cgi-bin/env.cgi", cafile=test_ca.pem)
    assert status == 200
    env = kdclient.cgi_env(body)
    assert env["HTTPS"] == "on" and env["REQUEST_SCHEME"] == "https"

    url = f"https://{NODE1}:{httpd.port}/"
    rc, code, body = curl(url, NODE1, httpd.port, NODE1_IP, test_ca.pem)
    assert (rc, code) == (0, 200) and NODE1 in body

    # Another CA, or another name, does not verify.
    other = kdlab.TestCA(os.path.join(lab_dir, "t060-other-ca"))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        peer(NODE1, NODE1_IP, httpd.port, other.pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        peer(NODE2, NODE1_IP, httpd.port, test_ca.pem)
    assert curl(url, NODE1, httpd.port, NODE1_IP, other.pem)[0] == 60  # CURLE_PEER_FAILED_VERIFICATION
    assert curl(url, NODE1, httpd.port, NODE1_IP)[0] == 60  # the system's CAs
    # Plain http on the https port gets no page.
    rc, code, body = curl(f"http://{NODE1}:{httpd.port}/", NODE1, httpd.port, NODE1_IP)
    assert code == 400 and "speaking plain HTTP to an SSL-enabled server port" in body
    assert NODE1 not in body.replace(f"{NODE1}:{httpd.port}", "")

    # A graceful restart (keys re-read by the root parent) keeps serving.
    httpd.reload()
    assert kdclient.request(httpd, "/", cafile=test_ca.pem)[0] == 200
    assert warnings_in(httpd) == []


# ------------------------------------------------------------------ haproxy

def test_haproxy_passes_tls_through(httpd_factory, haproxy_factory, test_ca):
    nodes = [httpd_factory(f"t060-pt{i}", ip, server_name=name,
                           tls=test_ca.issue(f"t060-pt{i}", [name, VIP]))
             for i, (name, ip) in enumerate(((NODE1, NODE1_IP), (NODE2, NODE2_IP)), 1)]
    proxy = haproxy_factory(VIP_IP, None, [(n.ip, n.port) for n in nodes],
                            tls=("passthrough",))
    assert proxy.scheme == "https" and proxy.url().startswith("https://")
    haproxy_accepts(proxy)
    with open(proxy.cfg) as f:
        cfg = f.read()
    assert "mode tcp" in cfg and "ssl" not in cfg

    # Round robin per connection: each node's own certificate reaches the
    # client, valid for the VIP name it asked for.
    seen = [peer(VIP, VIP_IP, proxy.port, test_ca.pem)[:2] for _ in range(4)]
    assert {cn for cn, _ in seen} == {NODE1, NODE2}
    assert all(VIP in san for _, san in seen)

    b = kdclient.Browser({VIP: VIP_IP}, None, cafile=test_ca.pem)
    envs = [kdclient.cgi_env(b.get(f"https://{VIP}:{proxy.port}/cgi-bin/env.cgi")[2])
            for _ in range(4)]
    assert {e["SERVER_ADDR"] for e in envs} == {NODE1_IP, NODE2_IP}
    assert all(e["HTTPS"] == "on" and e["HTTP_HOST"] == f"{VIP}:{proxy.port}" for e in envs)
    for n in nodes:
        assert warnings_in(n) == []


def terminated_site(httpd_factory, haproxy_factory, test_ca, prefix):
    nodes = [httpd_factory(f"{prefix}{i}", ip, server_name=name)
             for i, (name, ip) in enumerate(((NODE1, NODE1_IP), (NODE2, NODE2_IP)), 1)]
    proxy = haproxy_factory(VIP_IP, None, [(n.ip, n.port) for n in nodes],
                            tls=("terminate", test_ca.bundle("t060-vip", [VIP])))
    return nodes, proxy


def test_haproxy_terminates_tls(httpd_factory, haproxy_factory, test_ca):
    nodes, proxy = terminated_site(httpd_factory, haproxy_factory, test_ca, "t060-te")
    assert all(n.scheme == "http" for n in nodes)
    assert proxy.scheme == "https" and proxy.url().startswith("https://")
    haproxy_accepts(proxy)

    cn, san, _ = peer(VIP, VIP_IP, proxy.port, test_ca.pem)
    assert (cn, san) == (VIP, [VIP])  # haproxy's certificate, not a node's
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        peer(NODE1, VIP_IP, proxy.port, test_ca.pem)

    b = kdclient.Browser({VIP: VIP_IP}, None, cafile=test_ca.pem)
    envs = []
    for _ in range(4):
        status, _, body = b.get(f"https://{VIP}:{proxy.port}/cgi-bin/env.cgi")
        assert status == 200
        envs.append(kdclient.cgi_env(body))
    assert {e["SERVER_ADDR"] for e in envs} == {NODE1_IP, NODE2_IP}
    for e in envs:
        # The nodes see plain http, told the original scheme by haproxy;
        # SERVER_PORT is the Host header's (UseCanonicalName Off).
        assert "HTTPS" not in e and e["REQUEST_SCHEME"] == "http"
        assert e["HTTP_HOST"] == f"{VIP}:{proxy.port}" and e["SERVER_PORT"] == str(proxy.port)
        assert e["HTTP_X_FORWARDED_PROTO"] == "https"
    # haproxy speaks https only on that port.
    assert curl(f"http://{VIP}:{proxy.port}/", VIP, proxy.port, VIP_IP)[1] != 200
    rc, code, body = curl(f"https://{VIP}:{proxy.port}/", VIP, proxy.port, VIP_IP, test_ca.pem)
    assert (rc, code) == (0, 200) and re.search(r"node[12]\.example\.test", body)


# ------------------------------------------------------------------ kdclient.Browser

COOKIE_CGI = r"""#!/usr/bin/python3
import os
print("Status: 302 Found")
print("Location: " + os.environ["QUERY_STRING"])
for c in ("plain=p; Path=/", "sec=s; Secure; Path=/",
          "__Secure-ok=1; Secure; Path=/", "__Secure-bad=1; Path=/",
          "__Host-ok=1; Secure; Path=/", "__Host-domain=1; Secure; Path=/; Domain=example.test",
          "__Host-path=1; Secure; Path=/cgi-bin/", "__Host-plain=1; Path=/"):
    print("Set-Cookie: " + c)
print()
"""


def sent_cookies(body):
    return sorted(filter(None, kdclient.cgi_env(body).get("HTTP_COOKIE", "").split("; ")))


def test_browser_https_redirects_and_cookies(httpd_factory, test_ca):
    """node1 over https and over http (two servers, one host name: cookies
    do not care about ports): redirects between them, Secure cookies
    travel over https only, __Host-/__Secure- rules as browsers apply them."""
    tls = httpd_factory("t060-ck-tls", NODE1_IP, server_name=NODE1,
                        tls=test_ca.issue("t060-ck", [NODE1]))
    plain = httpd_factory("t060-ck-plain", NODE1_IP, server_name=NODE1)
    for h in (tls, plain):
        kdlab._write(os.path.join(h.dir, "cgi-bin", "cookies.cgi"), COOKIE_CGI, 0o755)
    https_base, http_base = f"https://{NODE1}:{tls.port}", f"http://{NODE1}:{plain.port}"

    b = kdclient.Browser({NODE1: NODE1_IP}, None, cafile=test_ca.pem)
    # https -> https
    status, _, body = b.get(f"{https_base}/cgi-bin/cookies.cgi?{https_base}/cgi-bin/env.cgi")
    assert status == 200
    assert [s for _, s in b.chain] == [302, 200]
    assert b.chain[0][0].startswith("https://") and b.chain[1][0].startswith("https://")
    accepted = ["__Host-ok=1", "__Secure-ok=1", "plain=p", "sec=s"]
    assert sent_cookies(body) == accepted
    assert sorted(n for _, _, n in b.cookies) == ["__Host-ok", "__Secure-ok", "plain", "sec"]
    assert b.cookies[(NODE1, "/", "sec")].secure and not b.cookies[(NODE1, "/", "plain")].secure
    value, host_only, expires = b.cookies[(NODE1, "/", "__Host-ok")]  # unpacks as before
    assert (value, host_only, expires) == ("1", True, None)

    # https -> http: the Secure ones stay behind.
    b.get(f"{https_base}/cgi-bin/cookies.cgi?{http_base}/cgi-bin/env.cgi")
    assert [u.split(":")[0] for u, _ in b.chain] == ["https", "http"]
    assert sent_cookies(b.get(f"{http_base}/cgi-bin/env.cgi")[2]) == ["plain=p"]
    assert sent_cookies(b.get(f"{https_base}/cgi-bin/env.cgi")[2]) == accepted

    # Set over http: no Secure cookie is taken, whatever its name.
    fresh = kdclient.Browser({NODE1: NODE1_IP}, None, cafile=test_ca.pem)
    _, _, body = fresh.get(f"{http_base}/cgi-bin/cookies.cgi?{https_base}/cgi-bin/env.cgi")
    assert [u.split(":")[0] for u, _ in fresh.chain] == ["http", "https"]
    assert sent_cookies(body) == ["plain=p"]

    # Without the lab CA the https hop fails verification.
    stranger = kdclient.Browser({NODE1: NODE1_IP}, None)
    with pytest.raises(ssl.SSLCertVerificationError):
        stranger.get(f"{https_base}/")


def test_browser_cookie_rules():
    """The jar's rules on their own (no server): what browsers refuse."""
    b = kdclient.Browser({}, None)
    h = NODE1
    b._store(h, "__Host-a=1; Secure; Path=/", https=True)
    b._store(h, "__Host-b=1; Secure; Path=/; Domain=node1.example.test", https=True)
    b._store(h, "__Host-c=1; Secure", https=True)          # no Path=/ attribute
    b._store(h, "__Host-d=1; Path=/", https=True)          # not Secure
    b._store(h, "__Host-e=1; Secure; Path=/", https=False)  # not set over https
    b._store(h, "__Secure-f=1; Secure; Domain=example.test", https=True)
    b._store(h, "__Secure-g=1; Secure", https=False)
    b._store(h, "s=1; Secure; Max-Age=60", https=True)
    assert sorted(n for _, _, n in b.cookies) == ["__Host-a", "__Secure-f", "s"]
    assert ("example.test", "/", "__Secure-f") in b.cookies
    assert b.cookies[(h, "/", "s")][2] is not None  # Max-Age recorded
    # http can neither overwrite nor delete a Secure cookie
    b._store(h, "s=2", https=False)
    b._store(h, "s=; Max-Age=0", https=False)
    assert b.cookie("s") == ["1"]
    assert b.cookie_header(h, "/") == ""
    assert b.cookie_header(h, "/", https=True) == "__Host-a=1; __Secure-f=1; s=1"
    b._store(h, "s=; Max-Age=0", https=True)
    assert b.cookie("s") == []


# ------------------------------------------------------------------ Chromium

def test_chromium_trusts_the_lab_ca(httpd_factory, haproxy_factory, test_ca, realm,
                                    alice_ccache, lab_dir):
    """Headless Chromium through haproxy terminating TLS: with the CA in its
    NSS database it shows the node's page; without, it shows none."""
    nodes, proxy = terminated_site(httpd_factory, haproxy_factory, test_ca, "t060-cr")
    url = f"https://{VIP}:{proxy.port}/"

    def requests_since(marks):
        return [l for n, m in zip(nodes, marks) for l in kdlab.lines_since(n.access_log, m)]

    marks = [kdlab.log_mark(n.access_log) for n in nodes]
    trusted = kdclient.chromium(realm, alice_ccache, {VIP: VIP_IP}, url, lab_dir,
                                cafile=test_ca.pem)
    assert re.search(r"<body>node[12]\.example\.test\s*</body>", trusted), trusted[-2000:]
    assert any('"GET / HTTP/1.1" 200' in l for l in requests_since(marks))
    # Without it: no page (Chromium logs net::ERR_CERT_AUTHORITY_INVALID),
    # and no request reached a node: the handshake with haproxy failed.
    marks = [kdlab.log_mark(n.access_log) for n in nodes]
    untrusted = kdclient.chromium(realm, alice_ccache, {VIP: VIP_IP}, url, lab_dir)
    assert NODE1 not in untrusted and NODE2 not in untrusted, untrusted[-2000:]
    assert requests_since(marks) == []
