"""The bad-input matrix: everything hostile, broken or odd a client can send,
each with the HTTP status and the cause expected. After every case the same
checks run (Matrix.check): no child crashed, no token or cookie text in the
log, no log line injected, no per-request credential cache left behind."""

import base64
import os
import re
import socket
import urllib.parse

import pytest

import kdclient
import kdlab
from conftest import private_ccache_dir
from kdnames import BACKEND, ENV_CGI, KEY_A, NODE1, NODE1_IP, VIP
from kdnames import EXPECTED as SITE_EXPECTED

OTHER = "other.example.test"
DELEG_CGI = "/deleg/env.cgi"
PAGE = "/private/index.html"
# What these cases provoke on purpose (a warning each): the site's own
# (the loop guard, an ignored way back), and httpd itself on a path longer
# than a file name may be.
EXPECTED = SITE_EXPECTED | {"AH00127"}  # httpd itself on a path longer than a file name may be


def b64(raw):
    return base64.b64encode(raw).decode()


def site_conf(realm, d, port, keys, site=VIP, extra=""):
    private_ccache_dir(d)
    os.makedirs(f"{d}/htdocs/private", exist_ok=True)
    with open(f"{d}/htdocs/private/index.html", "w") as f:
        f.write("private page\n")
    return f"""
KdelegKeytab {realm.keytab("node1")}
KdelegServiceNames HTTP/{VIP} HTTP/{NODE1}
KdelegVirtualName {site}
KdelegNodeName http://{NODE1}:{port}
KdelegFQDNRedirect On
KdelegSession On
KdelegSessionKeyFile {keys}
KdelegCookieDomain example.test
ScriptAlias /private/cgi/ "{d}/cgi-bin/"
ScriptAlias /deleg/ "{d}/cgi-bin/"
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
<Location /deleg/>
    AuthType Negotiate
    Require valid-user
    KdelegDelegateTo HTTP/{BACKEND}
    KdelegCcacheDir "{d}/ccache"
</Location>
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
</Location>
{extra}"""


class Matrix:
    """The node under test and the checks every case ends with."""

    def __init__(self, httpd, realm, ccache):
        self.httpd, self.realm, self.ccache = httpd, realm, ccache
        self.ccache_dir = os.path.join(httpd.dir, "ccache")

    def send(self, path=PAGE, host=None, headers=None, method="GET"):
        return kdclient.request(self.httpd, path, host=host or NODE1, headers=headers,
                                method=method)

    def raw(self, data):
        """Bytes on the wire, for what http.client refuses to send; returns
        (status, raw response head)."""
        with socket.create_connection((self.httpd.ip, self.httpd.port), timeout=15) as s:
            s.sendall(data)
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        return int(head.split(" ", 2)[1]), head

    def check(self, mark, secrets=()):
        """The invariants after a case: returns the new log lines."""
        lines = self.httpd.error_log_since(mark)
        text = "\n".join(lines)
        for line in lines:
            # one record per line: a CR/LF from a client never starts a line
            assert line.startswith("["), f"injected log line: {line!r}"
        assert "exit signal" not in text and "Segmentation" not in text, text
        for secret in secrets:
            secret = secret.strip()
            if len(secret) < 16:  # too short to be a credential or to search for
                continue
            assert secret[:24] not in text, "credential text in the log"
        assert kdclient.settled_listing(self.ccache_dir) == [], "credential cache left behind"
        return lines


@pytest.fixture(scope="module")
def keys(lab_dir):
    path = os.path.join(lab_dir, "matrix.keys")
    with open(path, "w") as f:
        f.write(KEY_A + "\n")
    os.chmod(path, 0o600)
    return path


def start_node(realm, module_path, name, keys, site=VIP, env=None, ip=NODE1_IP):
    port = kdlab.free_port(ip)
    httpd = kdlab.Httpd(realm.base, name, ip, port=port, module_path=module_path,
                        server_name=NODE1)
    httpd.conf = site_conf(realm, httpd.dir, port, keys, site=site)
    httpd.start({**realm.env(), **(env or {})})
    return httpd


@pytest.fixture(scope="module")
def matrix(realm, module_path, keys):
    httpd = start_node(realm, module_path, "matrix", keys)
    mark = httpd.error_log_mark()
    ccache = realm.kinit("alice", realm.path("ccache", "alice-matrix.cc"))
    try:
        yield Matrix(httpd, realm, ccache)
        lines = httpd.error_log_since(mark)
        problems = kdclient.unexpected_problems(lines, EXPECTED)
        assert not problems, "\n".join(problems)
        assert not any("exit signal" in l for l in lines)
    finally:
        httpd.stop()


# ------------------------------------------------------------ Negotiate headers

def token(m, host=NODE1, service="HTTP"):
    return kdclient.Token(m.ccache, host, service=service)


# id -> (Authorization value(s) made from the matrix, status, causes logged)
HEADERS = {
    "empty": (lambda m: "Negotiate", 401, ["malformed-token"]),
    "blank": (lambda m: "Negotiate    ", 401, ["malformed-token"]),
    "oversized": (lambda m: "Negotiate " + "A" * 100000, 401, ["malformed-token"]),
    "non-base64": (lambda m: "Negotiate YII$%^&*()", 401, ["malformed-token"]),
    "bad-padding": (lambda m: "Negotiate YIIB=", 401, ["malformed-token"]),
    "truncated": (lambda m: "Negotiate " + b64(token(m).raw[:40]), 401, ["malformed-token"]),
    "garbage-der": (lambda m: "Negotiate " + b64(b"\x60\x84\x7f\xff\xff\xff" + os.urandom(64)),
                    401, ["malformed-token"]),
    "der-bomb": (lambda m: "Negotiate " + b64(b"\x60\x80" + b"\x30\x80" * 4000),
                 401, ["malformed-token"]),
    "random-bytes": (lambda m: "Negotiate " + b64(os.urandom(3000)), 401, ["malformed-token"]),
    "trailing-junk": (lambda m: token(m).header + " extra", 401, ["malformed-token"]),
    "ntlm-type1": (lambda m: "Negotiate " + b64(kdclient.ntlm_message(1)), 401, ["ntlm-offered"]),
    "ntlm-type3": (lambda m: "Negotiate " + b64(kdclient.ntlm_message(3)), 401, ["ntlm-offered"]),
    "ntlm-scheme": (lambda m: "NTLM " + b64(kdclient.ntlm_message(1)), 401, ["ntlm-offered"]),
    "basic-scheme": (lambda m: "Basic " + b64(b"alice:alice-Secret-1"), 401, []),
    "other-service": (lambda m: token(m, OTHER).header, 401, ["wrong-spn"]),
    "not-in-keytab": (lambda m: token(m, BACKEND).header, 401, ["wrong-spn"]),
    "two-headers": (lambda m: [token(m).header, token(m).header], 401, ["malformed-token"]),
    "scheme-any-case": (lambda m: "nEGOTIATE " + b64(token(m).raw), 200, []),
}


@pytest.mark.parametrize("case", HEADERS, ids=list(HEADERS))
def test_negotiate_header(matrix, case):
    make, expect_status, expect_causes = HEADERS[case]
    value = make(matrix)
    mark = matrix.httpd.error_log_mark()
    status, headers, _ = matrix.send(ENV_CGI, headers={"Authorization": value})
    assert status == expect_status
    if status == 401:
        assert headers["www-authenticate"] == "Negotiate"
        assert "location" not in headers  # a node name is never bounced
    values = value if isinstance(value, list) else [value]
    lines = matrix.check(mark, secrets=[v.partition(" ")[2] for v in values])
    assert kdclient.causes(lines) == expect_causes
    if expect_causes:
        assert kdclient.status_agrees(matrix.httpd, expect_causes[-1])


def test_replayed_token(matrix):
    tok = token(matrix)
    assert matrix.send(ENV_CGI, headers={"Authorization": tok.header})[0] == 200
    mark = matrix.httpd.error_log_mark()
    assert matrix.send(ENV_CGI, headers={"Authorization": tok.header})[0] == 401
    assert kdclient.causes(matrix.check(mark, [tok.header[10:]])) == ["replay"]


@pytest.mark.parametrize("junk", [b"\x00", b"\x01\x7f", b"\xff\xfe", b"\x1b[31m"],
                         ids=["nul", "controls", "high-bytes", "escape-sequence"])
def test_control_bytes_in_authorization(matrix, junk):
    """Bytes http.client refuses to send: httpd or the module refuses them,
    and nothing of them reaches the log raw."""
    mark = matrix.httpd.error_log_mark()
    status, _ = matrix.raw(b"GET " + ENV_CGI.encode() + b" HTTP/1.1\r\nHost: " + NODE1.encode()
                           + b"\r\nAuthorization: Negotiate YII" + junk + b"AAAA\r\n"
                           + b"Connection: close\r\n\r\n")
    assert status in (400, 401)
    lines = matrix.check(mark)
    assert not any(junk.decode("latin-1") in l for l in lines if junk != b"\xff\xfe")
    if status == 401:
        assert kdclient.causes(lines) == ["malformed-token"]


# ------------------------------------------------------------ session cookies

def cookie_from(httpd, ccache, host=VIP):
    """A session cookie as a browser gets it after Kerberos on the site."""
    tok = kdclient.Token(ccache, host)
    status, headers, _ = kdclient.request(httpd, PAGE, host=host,
                                          headers={"Authorization": tok.header})
    assert status == 200
    value = re.search(r"kdeleg_session=([^;]+)", headers["set-cookie"]).group(1)
    return value


@pytest.fixture(scope="module")
def cookies(matrix, realm, module_path, keys, lab_dir):
    """A good cookie, and cookies from two other nodes sharing the key: one
    whose clock runs two hours behind (its cookies are expired on arrival)
    and one serving another site (the cookie's associated data differs)."""
    made = {"good": cookie_from(matrix.httpd, matrix.ccache)}
    # The past node's acceptor tolerates its own skew (clockskew), so it
    # takes alice's ticket and seals a cookie that is expired here.
    with open(realm.krb5_conf) as f:
        conf = f.read().replace("[libdefaults]\n", "[libdefaults]\n    clockskew = 14400\n", 1)
    skewed = os.path.join(lab_dir, "krb5-skew-tolerant.conf")
    with open(skewed, "w") as f:
        f.write(conf)
    past = start_node(realm, module_path, "matrix-past", keys, ip="127.0.0.3",
                      env={**kdclient.faketime_env("-2h"), "KRB5_CONFIG": skewed})
    foreign = start_node(realm, module_path, "matrix-foreign", keys, site="www.example.test",
                         ip="127.0.0.5")
    try:
        made["expired"] = cookie_from(past, matrix.ccache)
        made["foreign-site"] = cookie_from(foreign, matrix.ccache)
    finally:
        past.stop()
        foreign.stop()
    return made


def tamper(value):
    raw = bytearray(value.encode())
    i = len(raw) // 2
    raw[i] = ord("A") if raw[i] != ord("A") else ord("B")
    return raw.decode()


COOKIES = {
    "tampered": lambda c: tamper(c["good"]),
    "truncated": lambda c: c["good"][: len(c["good"]) // 2],
    "expired": lambda c: c["expired"],
    "foreign-site": lambda c: c["foreign-site"],
    "garbage": lambda c: b64(os.urandom(200)).rstrip("="),
    "oversized": lambda c: "A" * 60000,
    "not-base64": lambda c: "%00<script>\\\"';",
}


def test_good_cookie_opens(matrix, cookies):
    status, headers, _ = matrix.send(PAGE, host=VIP,
                                     headers={"Cookie": f"kdeleg_session={cookies['good']}"})
    assert status == 200
    # only the cookie authenticated this: no shared cache may keep the page
    assert "private" in headers.get("cache-control", "")
    status, headers, _ = matrix.send("/index.html", host=VIP)
    assert status == 200 and "cache-control" not in headers


@pytest.mark.parametrize("case", COOKIES, ids=list(COOKIES))
def test_bad_cookie_is_ignored_and_cleared(matrix, cookies, case):
    value = COOKIES[case](cookies)
    mark = matrix.httpd.error_log_mark()
    status, headers, _ = matrix.send(PAGE, host=VIP, headers={"Cookie": f"kdeleg_session={value}"})
    assert status == 401 and headers["www-authenticate"] == "Negotiate"
    assert "kdeleg_session=;" in headers.get("set-cookie", "")  # told to drop it
    lines = matrix.check(mark, secrets=[value, cookies["good"]])
    invalid = kdclient.kd_lines(lines, "KD00703")
    assert len(invalid) == 1 and "session-invalid" in invalid[0][2]


def test_cookie_never_in_log_or_status_page(matrix, cookies):
    page = kdclient.request(matrix.httpd, "/kdeleg-status?format=json", host=NODE1,
                            headers={"Cookie": f"kdeleg_session={cookies['good']}"})[2]
    log = "\n".join(matrix.httpd.error_log_since(0))
    for value in cookies.values():
        assert value[:24] not in page and value[:24] not in log


# ------------------------------------------------------------ FQDN fallback abuse

NTLM_AUTH = {"Authorization": "Negotiate " + b64(kdclient.ntlm_message(1))}


def bounce(matrix, path, host=VIP):
    status, headers, _ = matrix.send(path, host=host, headers=NTLM_AUTH)
    return status, headers


def test_fallback_baseline(matrix):
    status, headers = bounce(matrix, "/private/x?a=1")
    assert status == 302
    u = urllib.parse.urlsplit(headers["location"])
    assert (u.scheme, u.hostname, u.port) == ("http", NODE1, matrix.httpd.port)


@pytest.mark.parametrize("path", [
    "/private/a%0d%0aSet-Cookie:%20evil=1",
    "/private/%0aLocation:%20http://evil.example.org/",
    "//evil.example.org/private/",
    "/private/?kdeleg-return=http://evil.example.org/",
    "/private/?x=%22%3E%3Cscript%3E",
    "/private/" + "a" * 6000,
], ids=["crlf-set-cookie", "lf-location", "scheme-relative", "forged-return", "quote-script",
        "long-path"])
def test_fallback_location_stays_on_the_node(matrix, path):
    mark = matrix.httpd.error_log_mark()
    status, headers = bounce(matrix, path)
    matrix.check(mark)
    if status != 302:
        assert status in (401, 403, 404, 414)
        return
    loc = headers["location"]
    assert "\r" not in loc and "\n" not in loc and "<" not in loc and '"' not in loc
    assert "evil" not in headers.get("set-cookie", "")
    u = urllib.parse.urlsplit(loc)
    assert (u.hostname, u.port) == (NODE1, matrix.httpd.port)
    returns = urllib.parse.parse_qs(u.query).get("kdeleg-return", [])
    assert returns and all(urllib.parse.urlsplit(r).hostname == VIP for r in returns)


@pytest.mark.parametrize("host", ["evil.example.org", f"{VIP}.evil.example.org",
                                  "EVIL.example.org", VIP.upper() + "."])
def test_fallback_ignores_unconfigured_host(matrix, host):
    mark = matrix.httpd.error_log_mark()
    status, headers = bounce(matrix, "/private/", host=host)
    assert status == 401 or (status == 302 and urllib.parse.urlsplit(
        headers["location"]).hostname == NODE1)
    assert "evil" not in headers.get("location", "")
    matrix.check(mark)


@pytest.mark.parametrize("host", [b"vip.example.test@evil.example.org", b"vip.example.test evil",
                                  b"vip.example.test\x00evil", b"vip.example.test:99999x"],
                         ids=["userinfo", "space", "nul", "bad-port"])
def test_malformed_host_header_is_refused(matrix, host):
    mark = matrix.httpd.error_log_mark()
    status, head = matrix.raw(b"GET /private/ HTTP/1.1\r\nHost: " + host + b"\r\n"
                              + b"Authorization: Negotiate " + b64(kdclient.ntlm_message(1)).encode()
                              + b"\r\nConnection: close\r\n\r\n")
    assert status in (400, 401)
    assert "evil" not in head.lower().partition("location:")[2]
    matrix.check(mark)


@pytest.mark.parametrize("target", ["http://evil.example.org/", "http://vip.example.test@evil.org/",
                                    "javascript:alert(1)", "http://vip.example.test%0d%0aX:1/",
                                    "//evil.example.org/"])
def test_way_back_never_to_an_unconfigured_name(matrix, target):
    tok = token(matrix)
    mark = matrix.httpd.error_log_mark()
    query = urllib.parse.urlencode({"kdeleg-return": target})
    status, headers, _ = matrix.send(f"{PAGE}?{query}", headers={"Authorization": tok.header})
    assert status == 200 and "location" not in headers  # the page is served here
    lines = matrix.check(mark, [tok.header[10:]])
    assert len(kdclient.kd_lines(lines, "KD00708")) == 1


# ------------------------------------------------------------ status page

@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_status_page_refuses_writes(matrix, method):
    status, headers, _ = matrix.send("/kdeleg-status", method=method)
    assert status == 405
    assert set(headers["allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}


def test_status_page_escapes_what_the_client_sent(matrix):
    evil = '"><script>alert(1)</script>'
    _, _, body = matrix.send("/kdeleg-status?format=html", host=NODE1,
                             headers={"Authorization": "Negotiate " + evil})
    assert "<script>alert" not in body


# ------------------------------------------------------------ odd principal names

ODD_USERS = {
    # kadmin name (krb5 escapes) -> REMOTE_USER as krb5_unparse_name shows it.
    # Names with control characters or a backslash cannot take part: MIT's
    # KDC creates them but refuses them service tickets (KDC_ERR_BADOPTION
    # on the PAC), so no Kerberos client can present one; log escaping of
    # such bytes is covered by t/unit/test_kd_escape.c.
    "dots/../etc": "dots/../etc@EXAMPLE.TEST",
    "per%cent%s%n": "per%cent%s%n@EXAMPLE.TEST",
    "sp ace": "sp ace@EXAMPLE.TEST",
    r"at\@sign": r"at\@sign@EXAMPLE.TEST",
    "semi;colon<tag>'q": "semi;colon<tag>'q@EXAMPLE.TEST",
    # 203 characters: the KDC's LDAP back end refuses names much longer
    "l" + "o" * 200 + "ng": "l" + "o" * 200 + "ng@EXAMPLE.TEST",
}


@pytest.fixture(scope="module")
def odd_users(realm):
    made = {}
    for name, shown in ODD_USERS.items():
        password = "Odd-Pa55-word"
        quoted = '"' + name + '"'  # kadmin's own parser: double quotes only
        try:
            realm._kadmin(["-q", f"addprinc -pw {password} {quoted}"])
        except kdlab.KadminError as e:
            if "already exists" not in str(e):
                raise
        ccache = realm.path("ccache", f"odd-{len(made)}.cc")
        realm.run(["kinit", "-c", "FILE:" + ccache, name + "@EXAMPLE.TEST"], ccache,
                  input=password + "\n")
        made[shown] = ccache
    return made


@pytest.mark.parametrize("shown", list(ODD_USERS.values()),
                         ids=["dotdot", "percent", "space", "escaped-at", "shell-chars", "long"])
def test_odd_principal_names_stay_safe(matrix, odd_users, shown):
    """REMOTE_USER is krb5's unparsed name (escapes, no raw control bytes),
    the credential cache name never derives from it, the log line escapes
    it, and a session cookie carries it intact to the next request."""
    ccache = odd_users[shown]
    tok = kdclient.Token(ccache, NODE1)
    mark = matrix.httpd.error_log_mark()
    status, _, body = matrix.send(DELEG_CGI, headers={"Authorization": tok.header})
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == shown
    assert re.fullmatch(r"FILE:" + re.escape(matrix.ccache_dir) + r"/krb5cc_kdeleg_[0-9a-f]{8}_[0-9]+_[A-Za-z0-9]{6}",
                        env["KRB5CCNAME"]), env["KRB5CCNAME"]
    lines = matrix.check(mark, [tok.header[10:]])
    assert not any("\n" in l for l in lines)
    # through the session cookie too
    value = cookie_from(matrix.httpd, ccache)
    status, _, body = matrix.send(ENV_CGI, host=VIP, headers={"Cookie": f"kdeleg_session={value}"})
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == shown
