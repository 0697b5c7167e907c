"""Client side of the integration tests: real Kerberos tokens made with
python3-gssapi, sent with http.client to an exact IP while naming the host
the client believes it talks to (no DNS anywhere), plus error-log helpers.

https (kdlab.TestCA): request()/negotiate()/curl_negotiate() take cafile for
a server whose scheme is https; Browser(..., cafile=ca.pem) and
chromium(..., cafile=ca.pem) trust the lab CA.  The TCP connection goes to
the IP, the TLS name (SNI, certificate check) is the host name.  With curl,
tests write: curl --cacert ca.pem --resolve host:port:ip https://host:port/

Run under /usr/bin/python3 (Debian's python3-gssapi)."""

import base64
import http.client
import os
import re
import socket
import ssl
import subprocess

import gssapi

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")
KRB5 = gssapi.OID.from_int_seq("1.2.840.113554.1.2.2")


class Token:
    """One initiator context: .header for the request, .finish() checks the
    server's mutual-authentication reply and completes the context."""

    def __init__(self, ccache, host, mech=SPNEGO, service="HTTP", bindings=None, mutual=True):
        """bindings: channel bindings' application data (bytes, e.g.
        tls_server_end_point(...)), sent as Windows and MIT clients send
        them: address types GSS_C_AF_UNSPEC, no addresses. mutual=False:
        the token does not ask for mutual authentication."""
        # The environment names the default for anything run later; the
        # context itself takes its credentials from this ccache explicitly,
        # so threads acting as different users never borrow each other's.
        os.environ["KRB5CCNAME"] = ccache
        creds = gssapi.Credentials(usage="initiate", store={"ccache": ccache})
        name = gssapi.Name(f"{service}@{host}", gssapi.NameType.hostbased_service)
        cb = None
        if bindings is not None:
            # address types left unset: python-gssapi sends GSS_C_AF_UNSPEC
            cb = gssapi.raw.ChannelBindings(application_data=bindings)
        self.ctx = gssapi.SecurityContext(
            name=name, usage="initiate", mech=mech, creds=creds,
            flags=(gssapi.RequirementFlag.mutual_authentication if mutual
                   else gssapi.RequirementFlag.integrity),
            channel_bindings=cb)
        self.raw = self.ctx.step()
        self.b64 = base64.b64encode(self.raw).decode()
        self.header = "Negotiate " + self.b64

    def finish(self, www_authenticate):
        """Feed the server's reply token; True when the context completes
        (mutual authentication verified). python3-gssapi reports a bad reply
        on the next attribute read, hence the explicit .complete check."""
        scheme, _, reply = (www_authenticate or "").partition(" ")
        assert scheme == "Negotiate" and reply, f"no reply token in {www_authenticate!r}"
        self.ctx.step(base64.b64decode(reply))
        return self.ctx.complete


def tls_server_end_point(der):
    """RFC 5929 channel binding data for a DER server certificate:
    "tls-server-end-point:" + its hash under the signature's digest, SHA-256
    for MD5, SHA-1 or a signature without one (Ed25519). Independent of
    mod_kdeleg's kd_chanbind (python cryptography)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    cert = x509.load_der_x509_certificate(der)
    algo = cert.signature_hash_algorithm
    if algo is None or isinstance(algo, (hashes.MD5, hashes.SHA1)):
        algo = hashes.SHA256()
    digest = hashes.Hash(algo)
    digest.update(der)
    return b"tls-server-end-point:" + digest.finalize()


def peer_certificate(host, ip, port, cafile):
    """The DER certificate ip:port shows a client asking for host (verified
    against cafile): what a client binds its token to."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((ip, port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS over a TCP connection to ip, while TLS is for host: SNI and the
    certificate check use the name, as a client that resolved host to ip
    would (HTTPSConnection(ip) would check the certificate for the IP)."""

    def __init__(self, host, port, ip, context, timeout=15):
        super().__init__(host, port, timeout=timeout, context=context)
        self.ip, self.tls_context = ip, context

    def connect(self):
        sock = socket.create_connection((self.ip, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def connection(scheme, host, ip, port, cafile=None, timeout=15):
    """An http.client connection to ip:port for a URL naming host: plain
    HTTPConnection(ip) for http, PinnedHTTPSConnection verifying host's
    certificate against cafile (None: the system's CAs) for https."""
    if scheme == "https":
        return PinnedHTTPSConnection(host, port, ip, ssl.create_default_context(cafile=cafile),
                                     timeout)
    if scheme != "http":
        raise ValueError(f"unsupported scheme {scheme!r}")
    return http.client.HTTPConnection(ip, port, timeout=timeout)


def request(httpd, path, host=None, headers=None, method="GET", body=None, cafile=None):
    """(status, headers dict (lower-case names, repeated joined by '\\n'), body).
    An https httpd (httpd.scheme) is verified against cafile, else
    httpd.cafile when the test set one, for host (default its server_name)."""
    scheme = getattr(httpd, "scheme", "http")
    cafile = cafile or getattr(httpd, "cafile", None)
    conn = connection(scheme, host or httpd.server_name, httpd.ip, httpd.port, cafile)
    hdrs = {"Host": f"{host or httpd.server_name}:{httpd.port}"}
    hdrs.update(headers or {})
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in hdrs.items():
            for one in (v if isinstance(v, list) else [v]):
                conn.putheader(k, one)
        conn.endheaders(body.encode() if body else None)
        resp = conn.getresponse()
        merged = {}
        for k, v in resp.getheaders():
            merged[k.lower()] = merged[k.lower()] + "\n" + v if k.lower() in merged else v
        return resp.status, merged, resp.read().decode(errors="replace")
    finally:
        conn.close()


def negotiate(httpd, path, ccache, host=None, mech=SPNEGO, headers=None, cafile=None):
    """Authenticate with a fresh token; returns (status, headers, body, token)."""
    tok = Token(ccache, host or httpd.server_name, mech)
    hdrs = {"Authorization": tok.header}
    hdrs.update(headers or {})
    status, h, body = request(httpd, path, host=host, headers=hdrs, cafile=cafile)
    return status, h, body, tok


def wait_for_processes(httpd, count, timeout=10.0):
    """httpd's main process plus children once at least count exist: the lab
    returns when the port accepts, before every child may have forked."""
    import time
    deadline = time.monotonic() + timeout
    while len(httpd.processes()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(httpd.processes())


def cgi_env(body):
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def curl_negotiate(realm, httpd, path, ccache, host=None, cafile=None):
    """curl --negotiate to httpd as host; an https httpd is verified with
    --cacert cafile (else httpd.cafile, if set)."""
    host = host or httpd.server_name
    scheme = getattr(httpd, "scheme", "http")
    cafile = cafile or getattr(httpd, "cafile", None)
    tls = ["--cacert", cafile] if scheme == "https" and cafile else []
    proc = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--negotiate", "-u", ":", *tls,
         "--resolve", f"{host}:{httpd.port}:{httpd.ip}", f"{scheme}://{host}:{httpd.port}{path}"],
        env=realm.env(ccache), capture_output=True, text=True, timeout=30)
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), body


KD_LINE = re.compile(r"\[(?P<module>[a-z_0-9]+):(?P<level>[a-z0-9]+)\].*?(?P<kd>KD\d{5}): ?(?P<msg>.*)")


def kd_lines(lines, number=None):
    """Parsed KDnnnnn lines: [(level, KDnnnnn, message)]."""
    found = []
    for line in lines:
        m = KD_LINE.search(line)
        if m and (number is None or m.group("kd") == number):
            found.append((m.group("level"), m.group("kd"), m.group("msg")))
    return found


def causes(lines):
    """Cause names of the KD00301 authentication-failure lines."""
    return [re.search(r"cause ([a-z-]+)", msg).group(1)
            for _, _, msg in kd_lines(lines, "KD00301")]


# What a sanitized module prints to httpd's stderr (the error log) when
# its report does not reach ASAN_OPTIONS/UBSAN_OPTIONS' log_path, and a
# child that died of a signal (httpd logs that at notice level).
SANITIZER_LINE = re.compile(r"runtime error: |ERROR: AddressSanitizer|ERROR: LeakSanitizer"
                            r"|AH00052: child pid \d+ exit signal")


def unexpected_problems(lines, allowed=()):
    """[warn]/[error]/[crit]/[alert]/[emerg] lines not carrying an allowed KD
    number, and any sanitizer report (never allowed)."""
    bad = []
    for line in lines:
        m = re.search(r"\[[a-z_0-9]+:(warn|error|crit|alert|emerg)\]", line)
        if (m and not any(kd in line for kd in allowed)) or SANITIZER_LINE.search(line):
            bad.append(line)
    return bad


# ---------------------------------------------------------------- a browser

def ntlm_message(msg_type=1):
    """A raw NTLMSSP message header of the given type (1 NEGOTIATE, 3
    AUTHENTICATE): enough for anything that sniffs the scheme."""
    import struct
    return b"NTLMSSP\x00" + struct.pack("<II", msg_type, 0xa2088207) + b"\x00" * 16


def ntlm_type1():
    """A raw NTLMSSP NEGOTIATE message, as a browser sends when it has no
    Kerberos ticket for the host name."""
    return ntlm_message(1)


def settled_listing(path, expected=(), timeout=5.0):
    """The directory's sorted listing once it equals expected (default:
    empty), or whatever it holds at the deadline. httpd removes a request's
    credential cache when it destroys the request pool, just after the
    client has read the response."""
    import time
    want = sorted(expected)
    deadline = time.monotonic() + timeout
    while sorted(os.listdir(path)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(os.listdir(path))


class Cookie(tuple):
    """A stored cookie: unpacks as (value, host_only, expires), with
    .secure (the Secure attribute: sent over https only)."""

    def __new__(cls, value, host_only, expires, secure=False):
        self = super().__new__(cls, (value, host_only, expires))
        self.secure = secure
        return self


class Browser:
    """Behaves like a browser on the lab's names: resolves host names only
    through resolve {host: ip}, keeps cookies (Domain, host-only, Path,
    Expires/Max-Age, Secure) unless keep_cookies is False, follows redirects
    (at most max_hops), and answers "401 Negotiate" once per URL with a fresh
    Kerberos token for HTTP@<host in the URL>, or with NTLM for hosts in
    ntlm_hosts (a client that has no ticket for that name).

    https URLs are verified against cafile (the lab CA's ca.pem; None: the
    system's CAs) for the URL's host name. Cookies as browsers treat them:
    a Secure cookie is sent over https only, and refused when set over
    http (as is an http cookie that would replace a Secure one); a
    __Secure- cookie needs Secure and https, a __Host- cookie also Path=/
    and no Domain attribute."""

    def __init__(self, resolve, ccache, ntlm_hosts=(), keep_cookies=True, cafile=None):
        self.resolve, self.ccache = dict(resolve), ccache
        self.ntlm_hosts, self.keep_cookies = set(ntlm_hosts), keep_cookies
        self.cafile = cafile
        self.cookies = {}   # (domain, path, name) -> Cookie(value, host_only, expires)
        self.chain = []     # [(url, status)] of the last get()

    # -- cookies
    def _store(self, host, set_cookie, https=False):
        import email.utils
        import time
        parts = [p.strip() for p in set_cookie.split(";")]
        name, _, value = parts[0].partition("=")
        domain, host_only, path, expires, secure = host, True, "/", None, False
        path_attr = domain_attr = None
        for attr in parts[1:]:
            k, _, v = attr.partition("=")
            k, v = k.strip().lower(), v.strip()
            if k == "domain" and v:
                domain_attr = v
                domain, host_only = v.lstrip(".").lower(), False
            elif k == "path" and v:
                path = path_attr = v
            elif k == "max-age":
                expires = time.time() + int(v)
            elif k == "expires" and expires is None:
                expires = email.utils.parsedate_to_datetime(v).timestamp()
            elif k == "secure":
                secure = True
        if not host_only and not (host == domain or host.endswith("." + domain)):
            return  # a browser refuses a domain that does not cover the host
        if secure and not https:
            return  # only a secure origin may set a Secure cookie
        lower = name.lower()
        if lower.startswith("__secure-") and not (secure and https):
            return
        if lower.startswith("__host-") and not (secure and https and domain_attr is None
                                                and path_attr == "/"):
            return
        key = (domain, path, name)
        if not https and any(c.secure and n == name and (d == host or host.endswith("." + d))
                             for (d, _, n), c in self.cookies.items()):
            return  # http cannot replace (or delete) a Secure cookie
        if expires is not None and expires <= time.time():
            self.cookies.pop(key, None)
        elif self.keep_cookies:
            self.cookies[key] = Cookie(value, host_only, expires, secure)

    def cookie_header(self, host, path, https=False):
        import time
        sent = []
        for (domain, cpath, name), cookie in self.cookies.items():
            value, host_only, expires = cookie
            if expires is not None and expires <= time.time():
                continue
            if getattr(cookie, "secure", False) and not https:
                continue
            if host_only and host != domain:
                continue
            if not host_only and not (host == domain or host.endswith("." + domain)):
                continue
            if path.startswith(cpath):
                sent.append(f"{name}={value}")
        return "; ".join(sent)

    def cookie(self, name):
        return [v for (_, _, n), (v, _, _) in self.cookies.items() if n == name]

    # -- requests
    def _send(self, url, auth=None, extra=None):
        import urllib.parse
        u = urllib.parse.urlsplit(url)
        https = u.scheme == "https"
        path = u.path + ("?" + u.query if u.query else "")
        headers = {"Host": u.netloc}
        cookies = self.cookie_header(u.hostname, u.path or "/", https)
        if cookies:
            headers["Cookie"] = cookies
        if auth:
            headers["Authorization"] = auth
        headers.update(extra or {})
        conn = connection(u.scheme, u.hostname, self.resolve[u.hostname],
                          u.port or (443 if https else 80), self.cafile)
        try:
            conn.putrequest("GET", path or "/", skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            resp = conn.getresponse()
            merged = {}
            for k, v in resp.getheaders():
                merged[k.lower()] = merged[k.lower()] + "\n" + v if k.lower() in merged else v
                if k.lower() == "set-cookie":
                    self._store(u.hostname, v, https)
            return resp.status, merged, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def _auth_for(self, host):
        if host in self.ntlm_hosts:
            return "Negotiate " + base64.b64encode(ntlm_type1()).decode()
        return Token(self.ccache, host).header

    def get(self, url, max_hops=10, extra=None):
        """(status, headers, body) of the last response; self.chain lists
        every (url, status) on the way."""
        import urllib.parse
        self.chain = []
        for _ in range(max_hops):
            status, headers, body = self._send(url, extra=extra)
            if status == 401 and "Negotiate" in headers.get("www-authenticate", ""):
                self.chain.append((url, status))
                status, headers, body = self._send(
                    url, self._auth_for(urllib.parse.urlsplit(url).hostname), extra)
            self.chain.append((url, status))
            if status not in (301, 302, 303, 307, 308):
                return status, headers, body
            url = urllib.parse.urljoin(url, headers["location"])
        raise AssertionError(f"more than {max_hops} hops: {self.chain}")


# ---------------------------------------------------------------- HTTP/2

class H2Connection:
    """ONE HTTP/2 connection (TLS, ALPN h2, python3-h2) to ip:port for a URL
    naming host, verified against cafile: many streams on it, as a browser
    or a balancer multiplexes them. send() opens a stream and returns its
    id without waiting; responses(ids) reads until every one of them ended
    and returns {id: (status, headers, body)} (headers: lower-case names,
    repeated ones joined by '\\n', as request() gives them); a stream the
    server reset has status None.

        with H2Connection(host, ip, port, ca) as c:
            a = c.send("/x", {"authorization": ...}); b = c.send("/x")
            got = c.responses([a, b])"""

    def __init__(self, host, ip, port, cafile, timeout=30):
        import h2.config
        import h2.connection
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["h2"])
        sock = socket.create_connection((ip, port), timeout)
        try:
            self.sock = ctx.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.alpn = self.sock.selected_alpn_protocol()
        if self.alpn != "h2":
            self.sock.close()
            raise AssertionError(f"the server chose ALPN {self.alpn!r}, not h2")
        self.authority = f"{host}:{port}"
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.sock.sendall(self.h2.data_to_send())
        self._got = {}   # stream id -> [status, headers, body bytes, ended]
        self.closed = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.h2.close_connection()
            self.sock.sendall(self.h2.data_to_send())
        except Exception:  # the server may have gone already
            pass
        self.sock.close()

    def send(self, path, headers=None, method="GET", body=None, flush=True):
        """Open a stream (HEADERS, END_STREAM unless body); its id. With
        flush=False the frames wait in the buffer for the next send or
        responses(), so several streams leave in one TCP write."""
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"), (":authority", self.authority),
                (":path", path)]
        for k, v in (headers or {}).items():
            for one in (v if isinstance(v, list) else [v]):
                hdrs.append((k.lower(), one))
        self.h2.send_headers(sid, hdrs, end_stream=body is None)
        if body is not None:
            self.h2.send_data(sid, body.encode() if isinstance(body, str) else body,
                              end_stream=True)
        self._got[sid] = [None, {}, b"", False]
        if flush:
            self.sock.sendall(self.h2.data_to_send())
        return sid

    def _event(self, ev):
        import h2.events
        if isinstance(ev, h2.events.ResponseReceived):
            got = self._got[ev.stream_id]
            for k, v in ev.headers:
                if k == ":status":
                    got[0] = int(v)
                else:
                    got[1][k] = got[1][k] + "\n" + v if k in got[1] else v
        elif isinstance(ev, h2.events.DataReceived):
            self._got[ev.stream_id][2] += ev.data
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
            self._got[ev.stream_id][3] = True
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = ev

    def responses(self, ids):
        ids = list(ids)
        self.sock.sendall(self.h2.data_to_send())
        while not all(self._got[i][3] for i in ids):
            if self.closed is not None:
                raise AssertionError(f"the server ended the connection: {self.closed}")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("the server closed the connection")
            for ev in self.h2.receive_data(data):
                self._event(ev)
            self.sock.sendall(self.h2.data_to_send())
        return {i: (self._got[i][0], self._got[i][1], self._got[i][2].decode(errors="replace"))
                for i in ids}

    def get(self, path, headers=None):
        """One stream, waited for: (status, headers, body)."""
        sid = self.send(path, headers)
        return self.responses([sid])[sid]


# ---------------------------------------------------------------- Chromium

CHROMIUM = "/usr/bin/chromium"


def trust_in_nssdb(home, cafile, nickname="kdeleg-lab-ca"):
    """Make $home/.pki/nssdb (the NSS database Chromium reads on Linux) and
    add cafile to it as a trusted CA for TLS servers (certutil, Debian's
    libnss3-tools)."""
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db, mode=0o700, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": home}
    for args in (["-N", "--empty-password"],
                 ["-A", "-n", nickname, "-t", "C,,", "-i", cafile]):
        subprocess.run(["certutil", *args, "-d", "sql:" + db], env=env, check=True,
                       capture_output=True, text=True, timeout=30)
    return db


def chromium(realm, ccache, resolve, url, workdir, timeout=60, extra=(), screenshot=None,
             cafile=None):
    """Headless Debian Chromium doing Negotiate with the lab's ticket cache
    (flags proven in ../shared/LAB.md); returns the page's DOM as text, or
    writes a PNG to screenshot instead. Negotiate is allowed for the
    realm's own domain (*.example.test, *.ad.example.test), with
    realm.env()'s krb5.conf. cafile: a CA (kdlab.TestCA's ca.pem) Chromium
    trusts for https, put in the fresh profile's NSS database ($HOME is the
    profile); certificate errors are never ignored. Runs in its own
    process group, which is killed by its PID on timeout."""
    import json
    import signal
    import tempfile
    profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
    with open(os.path.join(profile, "Local State"), "w") as f:
        json.dump({"net": {"received_http_auth_negotiate_headers": True},
                   "auth": {"disable_negotiate_cname_lookup": True}}, f)
    if cafile:
        trust_in_nssdb(profile, cafile)
    rules = ", ".join(f"MAP {host} {ip}" for host, ip in resolve.items()) + ", MAP * ~NOTFOUND"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}",
            f"--auth-server-allowlist=*.{realm.domain}", f"--host-resolver-rules={rules}",
            *extra]
    if screenshot:
        args += [f"--screenshot={screenshot}", "--window-size=1280,1600", url]
    else:
        args += ["--dump-dom", url]
    proc = subprocess.Popen(args, env={**realm.env(ccache), "HOME": profile},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        import shutil
        shutil.rmtree(profile, ignore_errors=True)
    return out


# ---------------------------------------------------------------- status page

def status(httpd, fmt="json", host=None, headers=None):
    """GET /kdeleg-status in a format; JSON is parsed."""
    import json
    code, _, body = request(httpd, f"/kdeleg-status?format={fmt}", host=host, headers=headers)
    assert code == 200, body[:500]
    return json.loads(body) if fmt == "json" else body


def status_agrees(httpd, cause):
    """The status page, when this server has one, shows cause as its newest
    failure and counts it: what the log says, the page says."""
    code, _, body = request(httpd, "/kdeleg-status?format=json")
    if code == 404:
        return True
    import json
    doc = json.loads(body)
    recent = doc["recent_failures"]
    assert recent and recent[0]["cause"] == cause, (cause, recent[:2])
    assert doc["counters"][f"failures_{cause}"] >= 1
    return True


def last_failure(httpd):
    """The newest failure on the status page: (cause, record)."""
    recent = status(httpd)["recent_failures"]
    assert recent, "the status page lists no failure"
    return recent[0]["cause"], recent[0]


# ---------------------------------------------------------------- PostgreSQL consumer

# The app connects as the authenticated user (REMOTE_USER without the realm):
# pg_hba's gss method only lets a principal in as its own role, so DB_USER
# shows whose ticket libpq used.  psql's stderr goes into the page (stdout),
# not the error log.  QUERY_STRING is the note's body (a psql variable: no
# SQL is built from it).
PSQL_CGI = r"""#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "CGI_UID=$(id -un)"
echo "CCNAME=${KRB5CCNAME-unset}"
DBUSER="${REMOTE_USER%@*}"
@PSQL@ -X -q -A -t -F = -v ON_ERROR_STOP=1 -v note="${QUERY_STRING:-cgi}" \
    "@CONNINFO@" <<'SQL' 2>&1
select 'DB_USER', current_user;
select 'DB_GSS', gss_authenticated from pg_stat_gssapi where pid = pg_backend_pid();
select 'DB_ENCRYPTED', encrypted from pg_stat_gssapi where pid = pg_backend_pid();
select 'DB_PRINCIPAL', principal from pg_stat_gssapi where pid = pg_backend_pid();
insert into notes (body) values (:'note') returning 'NOTE_OWNER', owner;
SQL
echo "PSQL_EXIT=$?"
"""


# ---------------------------------------------------------------- clocks

def faketime_env(offset):
    """Environment for a server whose clock runs offset off ("+2h", "-10m"),
    through libfaketime (monotonic clocks stay real)."""
    import glob
    lib = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")[0]
    return {"LD_PRELOAD": lib, "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1"}
