"""The status page (SetHandler kdeleg-status): JSON, Prometheus and HTML;
counters and recent failures shared by all children; keytab entries and
missing SPNs; the caller's own request; never a token, key or cookie; safe
escaping of what clients send; GET and HEAD only; the page in Chromium;
the counters on mod_status's /server-status (HTML and ?auto)."""

import base64
import json
import os
import re
import subprocess
from html import escape

import pytest

import kdclient
import kdlab
from conftest import negotiate_conf
from kdnames import ENV_CGI, NODE1



def status_conf(realm, d, ip, port):
    """node1 plus a second virtual host whose configured SPN has no key."""
    return negotiate_conf(realm, d, "node1") + f"""
<VirtualHost {ip}:{port}>
    ServerName {NODE1}
</VirtualHost>
<VirtualHost {ip}:{port}>
    ServerName missing.example.test
    KdelegKeytab {realm.keytab('node1')}
    KdelegServiceNames HTTP/missing.example.test HTTP/node1.example.test
    <Location /kdeleg-status>
        SetHandler kdeleg-status
        Require ip 127.0.0.0/8
    </Location>
    <Location /private>
        AuthType Negotiate
        Require valid-user
    </Location>
</VirtualHost>
"""


@pytest.fixture(params=["event", "prefork"])
def node(request, kd_httpd, realm):
    ip = "127.0.0.2"
    port = kdlab.free_port(ip)
    h = kd_httpd("status", ip, server_name=NODE1, port=port, mpm=request.param,
                 conf_fn=lambda d: status_conf(realm, d, ip, port))
    h.allowed |= {"KD00301"}
    if request.param == "prefork":
        kdclient.wait_for_processes(h, 3)
    return h


def ntlm():
    return "Negotiate " + base64.b64encode(kdclient.ntlm_type1()).decode()


def test_json_has_the_contract_fields(node, realm):
    doc = kdclient.status(node)
    assert doc["version"] == "0.1.0" and doc["libraries"]["krb5"]
    v = {x["name"]: x for x in doc["vhosts"]}
    main = v[NODE1]
    assert main["spns"] == [f"HTTP/{NODE1}"] and main["missing_spns"] == []
    assert {"principal": f"HTTP/{NODE1}@EXAMPLE.TEST", "kvno": 1,
            "enctype": "aes256-cts-hmac-sha1-96"} in main["keytab_entries"]
    # entries are principal, kvno, enctype: nothing else, never a key
    assert all(set(e) == {"principal", "kvno", "enctype"} for e in main["keytab_entries"])
    # the configured SPN without a key is named
    assert v["missing.example.test"]["missing_spns"] == ["HTTP/missing.example.test"]
    for key in ("auth_ok", "s4u2self_ok", "s4u2proxy_ok", "fqdn_redirects",
                "ticket_cache_hits", "ticket_cache_misses", "failures_wrong-spn"):
        assert isinstance(doc["counters"][key], int)
    assert doc["recent_failures"] == []


def test_counters_and_failures_cover_all_children(node, realm, alice_ccache):
    for _ in range(6):  # a new connection each: prefork spreads them over children
        assert kdclient.negotiate(node, ENV_CGI, alice_ccache)[0] == 200
    kdclient.request(node, ENV_CGI, headers={"Authorization": ntlm()})
    other = kdclient.Token(alice_ccache, "other.example.test")
    kdclient.request(node, ENV_CGI, headers={"Authorization": other.header})
    doc = kdclient.status(node)
    c = doc["counters"]
    assert c["auth_ok"] == 6 and c["auth_failed"] == 2
    assert c["failures_ntlm-offered"] == 1 and c["failures_wrong-spn"] == 1
    assert c["failures_no-token"] == 0  # the normal first leg is not a failure
    recent = doc["recent_failures"]
    assert [f["cause"] for f in recent] == ["wrong-spn", "ntlm-offered"]  # newest first
    first = recent[0]
    assert first["vhost"] == NODE1 and first["client"] == "127.0.0.1"
    assert first["spn"] == "HTTP/other.example.test@EXAMPLE.TEST"
    assert "KdelegServiceNames" in first["hint"] + first["fix_mit"]
    assert "setspn" in first["fix_ad"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", first["time"])
    # A graceful restart (Debian's daily logrotate) keeps the counters.
    node.reload()
    after = kdclient.status(node)
    assert after["counters"]["auth_ok"] == 6 and after["counters"]["failures_wrong-spn"] == 1
    assert [f["cause"] for f in after["recent_failures"]] == ["wrong-spn", "ntlm-offered"]


def test_you_section(node, realm, alice_ccache):
    tok = kdclient.Token(alice_ccache, NODE1)
    doc = kdclient.status(node, headers={"Authorization": tok.header})
    assert doc["you"] == {"host": f"{NODE1}:{node.port}", "scheme": "Negotiate",
                          "token": "kerberos", "user": None, "method": None}
    assert kdclient.status(node, headers={"Authorization": ntlm()})["you"]["token"] == "ntlm"
    assert kdclient.status(node)["you"]["token"] == "none"


def test_caller_authenticated_on_the_page(kd_httpd, realm, alice_ccache):
    h = kd_httpd("whoami", "127.0.0.2", server_name=NODE1,
                 conf_fn=lambda d: negotiate_conf(realm, d, "node1") + """
<Location /whoami>
    SetHandler kdeleg-status
    AuthType Negotiate
    Require valid-user
</Location>
""")
    status, _, body, _ = kdclient.negotiate(h, "/whoami?format=json", alice_ccache)
    assert status == 200
    you = json.loads(body)["you"]
    assert you["user"] == "alice@EXAMPLE.TEST" and you["method"] == "kerberos"


def test_never_shows_a_token_or_cookie(node, realm, alice_ccache):
    tok = kdclient.Token(alice_ccache, NODE1)
    cookie = "kdeleg_session=" + "Q" * 80
    for fmt in ("json", "html", "prometheus"):
        body = kdclient.status(node, fmt, headers={"Authorization": tok.header,
                                                   "Cookie": cookie})
        if fmt != "json":
            body = str(body)
        text = body if isinstance(body, str) else json.dumps(body)
        assert tok.b64[:24] not in text and "Q" * 40 not in text


def test_client_text_is_escaped(node):
    hostile = '"><script>alert(1)</script>'
    html = kdclient.status(node, "html", headers={"Authorization": hostile + " x"})
    assert "<script>" not in html and "&lt;script&gt;" in html
    raw = kdclient.request(node, "/kdeleg-status?format=json",
                           headers={"Authorization": hostile + " x"})[2]
    assert "<script>" not in raw and "\\u003cscript\\u003e" in raw
    assert json.loads(raw)["you"]["scheme"] == hostile
    prom = kdclient.status(node, "prometheus")
    assert all(re.match(r"^(#.*|[a-z_]+(\{.*\})? \d+)$", l) for l in prom.strip().splitlines())


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head(node, method):
    status, headers, _ = kdclient.request(node, "/kdeleg-status", method=method, body="x=1")
    assert status == 405 and "GET" in headers.get("allow", "")
    status, _, body = kdclient.request(node, "/kdeleg-status", method="HEAD")
    assert status == 200 and body == ""


def test_formats_by_query_and_accept(node):
    status, h, _ = kdclient.request(node, "/kdeleg-status", headers={"Accept": "application/json"})
    assert h["content-type"].startswith("application/json")
    status, h, body = kdclient.request(node, "/kdeleg-status")
    assert h["content-type"].startswith("text/html") and "<h1>mod_kdeleg" in body
    assert h["cache-control"] == "no-store" and "default-src 'none'" in h["content-security-policy"]
    status, h, body = kdclient.request(node, "/kdeleg-status?format=prometheus")
    assert h["content-type"].startswith("text/plain")
    assert 'kdeleg_events_total{event="auth_ok"}' in body


def test_status_page_needs_its_access_rule(kd_httpd, realm):
    """Require ip is the administrator's: from 127.0.0.1 a rule for another
    network refuses the page."""
    h = kd_httpd("locked", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: f"""
KdelegKeytab {realm.keytab('node1')}
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 192.0.2.0/24
</Location>
""")
    h.allowed |= {"AH01630"}
    assert kdclient.request(h, "/kdeleg-status")[0] == 403


def test_html_in_chromium(node, realm, alice_ccache, lab_dir):
    if not os.path.exists(kdclient.CHROMIUM):
        pytest.skip("Debian chromium is not installed (t/install-deps)")
    kdclient.request(node, ENV_CGI, headers={"Authorization": ntlm()})
    url = f"http://{NODE1}:{node.port}/kdeleg-status"
    dom = kdclient.chromium(realm, alice_ccache, {NODE1: node.ip}, url, lab_dir)
    assert "ntlm-offered" in dom and "missing from the keytab" in dom
    assert "HTTP/missing.example.test" in dom
    shot = os.path.join(lab_dir, f"status-{node.mpm}.png")
    kdclient.chromium(realm, alice_ccache, {NODE1: node.ip}, url, lab_dir,
                      screenshot=shot)
    assert os.path.getsize(shot) > 10000


# ------------------------------------------------------------ mod_status

SERVER_STATUS = """
<Location /server-status>
    SetHandler server-status
    Require ip 127.0.0.0/8
</Location>
"""
# ?auto names, one per counter (docs/status-page.md), and the JSON key each mirrors
AUTO_NAMES = {"KdelegAuthenticated": "auth_ok", "KdelegAuthFailed": "auth_failed",
              "KdelegSessionAuthenticated": "session_ok", "KdelegS4U2Self": "s4u2self_ok",
              "KdelegS4U2Proxy": "s4u2proxy_ok", "KdelegFQDNRedirects": "fqdn_redirects",
              "KdelegTicketCacheHits": "ticket_cache_hits",
              "KdelegTicketCacheMisses": "ticket_cache_misses",
              "KdelegTransfersRedeemed": "transfers_redeemed",
              "KdelegSessionLogouts": "session_logouts",
              "KdelegSessionsTooLarge": "sessions_too_large",
              "KdelegHealthOk": "health_ok", "KdelegHealthUnavailable": "health_unavailable",
              "KdelegChannelBoundLogins": "channel_bound_logins",
              "KdelegChannelUnboundLogins": "channel_unbound_logins"}


def test_counters_on_server_status(kd_httpd, realm, alice_ccache):
    """With mod_status loaded, /server-status has a mod_kdeleg section and
    ?auto a line per counter, the same numbers as the status page; no
    principal, client or host name appears there."""
    h = kd_httpd("server-status", "127.0.0.2", server_name=NODE1, extra_modules=("status",),
                 conf_fn=lambda d: negotiate_conf(realm, d, "node1") + SERVER_STATUS)
    h.allowed |= {"KD00301"}
    assert kdclient.negotiate(h, ENV_CGI, alice_ccache)[0] == 200
    kdclient.request(h, ENV_CGI, headers={"Authorization": ntlm()})
    status, headers, auto = kdclient.request(h, "/server-status?auto")
    assert status == 200 and headers["content-type"].startswith("text/plain"), auto[:300]
    assert "<" not in auto                          # AP_STATUS_SHORT: no HTML
    lines = dict(line.split(": ", 1) for line in auto.splitlines() if ": " in line)
    assert "ServerUptimeSeconds" in lines           # mod_status's own lines are still there
    counters = kdclient.status(h)["counters"]
    assert counters["auth_ok"] == 1 and counters["auth_failed"] == 1
    for name, key in AUTO_NAMES.items():
        assert lines.get(name) == str(counters[key]), (name, auto)
    ours = [l for l in auto.splitlines() if l.startswith("Kdeleg")]
    assert [l.split(": ")[0] for l in ours] == list(AUTO_NAMES), auto   # counters only
    assert lines["KdelegAuthenticated"] == "1" and lines["KdelegAuthFailed"] == "1"
    status, _, html = kdclient.request(h, "/server-status")
    assert status == 200 and "<h2>mod_kdeleg</h2>" in html
    section = html.split("<h2>mod_kdeleg</h2>", 1)[1].split("</table>", 1)[0]
    assert "<tr><td>KdelegAuthenticated</td><td>1</td></tr>" in section
    assert "<tr><td>KdelegAuthFailed</td><td>1</td></tr>" in section
    assert section.count("<tr><td>Kdeleg") == len(AUTO_NAMES)
    notable = kdclient.request(h, "/server-status?notable")[2]
    assert "<h2>mod_kdeleg</h2>\n<dl>\n<dt>KdelegAuthenticated: 1</dt>\n" in notable
    for body in ("\n".join(ours), section):
        assert "alice" not in body and "EXAMPLE.TEST" not in body and "127.0.0." not in body


# ------------------------------------------------------------ ServerTokens

def tokens_httpd(kd_httpd, realm, name, tokens):
    """An httpd with the status page and `tokens` (a ServerTokens line, or
    a block holding one; None: no directive)."""
    return kd_httpd(name, "127.0.0.2", server_name=NODE1,
                    conf_fn=lambda d: negotiate_conf(realm, d, "node1") + (tokens or ""))


def status_bodies(h):
    """(server header, JSON doc, raw JSON, Prometheus, HTML) of the page."""
    status, headers, raw = kdclient.request(h, "/kdeleg-status?format=json")
    assert status == 200, raw[:500]
    return (headers["server"], json.loads(raw), raw, kdclient.status(h, "prometheus"),
            kdclient.status(h, "html"))


def version_strings(doc):
    """The versions a Full page shows, and their bare numbers."""
    libs = doc["libraries"]
    texts = [doc["version"], libs["krb5"], libs["openssl"], libs["httpd"]]
    return texts + [n for t in texts for n in re.findall(r"\d+\.\d+(?:\.\d+)?[a-z]?", t)]


@pytest.mark.parametrize("tokens", [None, "ServerTokens Full\n"], ids=["default", "Full"])
def test_server_tokens_full_shows_versions(kd_httpd, realm, tokens):
    """ServerTokens Full (httpd's default) shows the module's, krb5's,
    OpenSSL's and httpd's versions in every format."""
    h = tokens_httpd(kd_httpd, realm, "tokens-full", tokens)
    server, doc, _, prom, html = status_bodies(h)
    krb5 = subprocess.run(["krb5-config", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip().split("release ")[-1]
    libs = doc["libraries"]
    assert doc["version"] == "0.1.0" and libs["krb5"] == krb5
    assert re.match(r"OpenSSL \d+\.\d+\.\d+", libs["openssl"]), libs
    assert libs["httpd"] == server and re.match(r"Apache/2\.\d+\.\d+ \(", server), libs
    assert libs["mpm"] == "event"
    assert f'kdeleg_info{{version="0.1.0",krb5="{krb5}"}} 1' in prom
    for text in (doc["version"], krb5, libs["openssl"], server):
        assert escape(text, quote=False) in html, text


LESS_THAN_FULL = {
    "Prod": "ServerTokens Prod\n",
    "ProductOnly": "ServerTokens ProductOnly\n",
    "Major": "ServerTokens Major\n",
    "Minor": "ServerTokens Minor\n",
    "Min": "ServerTokens Min\n",
    # OS: the banner is Full's when no module adds a component; the
    # configuration says which. Inside a container that holds, too.
    "OS": "ServerTokens OS\n",
    "OS-in-IfModule": "<IfModule kdeleg_module>\n    ServerTokens OS\n</IfModule>\n",
    "Full-then-Prod": "ServerTokens Full\nServerTokens Prod\n",
}


@pytest.mark.parametrize("tokens", LESS_THAN_FULL.values(), ids=LESS_THAN_FULL.keys())
def test_server_tokens_below_full_hide_versions(kd_httpd, realm, tokens):
    """Below ServerTokens Full no version of the module, krb5 or OpenSSL
    appears in the JSON, Prometheus or HTML page: the JSON keys stay, with
    null; the Prometheus labels stay, empty; httpd is shown as its own
    Server header shows it (with Prod, no version at all)."""
    full = status_bodies(tokens_httpd(kd_httpd, realm, "tokens-full", None))[1]
    secrets = [v for v in version_strings(full)
               if v not in re.findall(r"\d+\.\d+(?:\.\d+)?", full["libraries"]["httpd"])
               and v != full["libraries"]["httpd"]]
    server, doc, raw, prom, html = status_bodies(
        tokens_httpd(kd_httpd, realm, "tokens-less", tokens))
    libs = doc["libraries"]
    assert doc["version"] is None and libs["krb5"] is None and libs["openssl"] is None
    assert set(libs) == {"krb5", "openssl", "httpd", "mpm"} and libs["mpm"] == "event"
    assert libs["httpd"] == server                        # no more than httpd says itself
    if "OS" in tokens:   # a banner no different from Full's: the configuration decided
        assert server == full["libraries"]["httpd"]
    assert 'kdeleg_info{version="",krb5=""} 1' in prom
    assert "<h1>mod_kdeleg</h1>" in html and "ServerTokens is not Full" in html
    if server == "Apache":                                # Prod: httpd's version too
        secrets = version_strings(full)
    for body in (raw, prom, html):
        found = [v for v in secrets if v in body]
        assert not found, (found, body[:300])


# ------------------------------------------------------------ self-test

def selftest_httpd(kd_httpd, realm, name, keytab="node1", spns=(f"HTTP/{NODE1}",),
                   targets=("HTTP/backend.example.test",), user="alice", env=None):
    def conf(d):
        return f"""
KdelegKeytab {realm.keytab(keytab) if '/' not in keytab else keytab}
KdelegServiceNames {' '.join(spns)}
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
    KdelegSelfTest On
    {f'KdelegSelfTestUser {user}' if user else ''}
    {'KdelegDelegateTo ' + ' '.join(targets) if targets else ''}
</Location>
"""
    h = kd_httpd(name, "127.0.0.5", server_name=NODE1, conf_fn=conf, env=env)
    h.allowed |= {"KD00805"}
    return h


def selftest(httpd):
    status, _, body = kdclient.request(httpd, "/kdeleg-status?format=json&selftest=1",
                                       method="POST")
    assert status == 200, body[:500]
    [result] = json.loads(body)["selftest"]
    return {(s["step"], s["subject"]): s for s in result["steps"]}


def test_selftest_healthy_and_rate_limited(kd_httpd, realm):
    h = selftest_httpd(kd_httpd, realm, "selftest-ok",
                       targets=("HTTP/backend.example.test", "postgres/db.example.test"))
    steps = selftest(h)
    assert all(s["ok"] for s in steps.values()), steps
    assert "kvno 1" in steps[("spn", f"HTTP/{NODE1}")]["detail"]
    assert "opens it" in steps[("spn", f"HTTP/{NODE1}")]["detail"]
    assert "about 0 s" in steps[("clock", f"HTTP/{NODE1}")]["detail"] or \
        re.search(r"about -?[01] s", steps[("clock", f"HTTP/{NODE1}")]["detail"])
    assert steps[("s4u2proxy", "postgres/db.example.test")]["ok"]
    # once per 10 s per node
    status, headers, _ = kdclient.request(h, "/kdeleg-status?selftest=1", method="POST")
    assert status == 429 and headers["retry-after"] == "10"
    # the HTML shows the same walk
    assert "Self-test" not in kdclient.status(h, "html")


def test_selftest_runs_on_same_origin_post_only(kd_httpd, realm):
    """The self-test has side effects (KDC traffic, cached tickets): a GET
    never runs it, and a browser driven by another site cannot POST it."""
    h = selftest_httpd(kd_httpd, realm, "selftest-post")
    h.allowed |= {"KD00807"}
    status, headers, _ = kdclient.request(h, "/kdeleg-status?selftest=1")
    assert status == 405 and headers["allow"].startswith("POST")
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://evil.example.org"},
                    {"Origin": f"http://{NODE1}:{h.port + 1}"}):
        mark = h.error_log_mark()
        assert kdclient.request(h, "/kdeleg-status?selftest=1", method="POST",
                                headers=headers)[0] == 403, headers
        assert kdclient.kd_lines(h.error_log_since(mark), "KD00807")
    status, _, body = kdclient.request(
        h, "/kdeleg-status?format=json&selftest=1", method="POST",
        headers={"Origin": f"http://{NODE1}:{h.port}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and json.loads(body)["selftest"], body[:300]
    # the page itself stays GET/HEAD
    assert kdclient.request(h, "/kdeleg-status", method="POST")[0] == 405


def test_selftest_off_by_default(node):
    assert kdclient.request(node, "/kdeleg-status?selftest=1", method="POST")[0] == 403


def test_selftest_names_each_seed_failure(kd_httpd, realm, lab_dir):
    """Missing SPN, stale kvno, duplicate-SPN effect, delegation not
    allowed and protocol transition not allowed, found by the service
    itself, each with its cause and both remedies."""
    from kdmit import new_service
    stale, stale_kt = new_service(realm, "stale-st.example.test")
    realm.rekey(stale)                                # kvno moves on, keytab not
    dup, dup_kt = new_service(realm, "dup-st.example.test")
    kvno = realm.kdc_kvno(dup)
    realm.rekey(dup)
    realm.kadmin(f"modprinc -kvno {kvno} {realm.principal(dup)}")  # same kvno, other key
    combined = os.path.join(lab_dir, "keytabs", "selftest-combined.keytab")
    subprocess_ktutil(realm, [realm.keytab("node1"), stale_kt, dup_kt], combined)
    h = selftest_httpd(kd_httpd, realm, "selftest-bad", keytab=combined,
                       spns=(f"HTTP/{NODE1}", "HTTP/missing-st.example.test",
                             "HTTP/stale-st.example.test", "HTTP/dup-st.example.test"),
                       targets=("HTTP/backend.example.test", "HTTP/other.example.test"))
    steps = selftest(h)
    causes = {k: s["cause"] for k, s in steps.items()}
    assert causes[("spn", "HTTP/missing-st.example.test")] == "spn-unknown"
    assert causes[("spn", "HTTP/stale-st.example.test")] == "key-version-mismatch"
    assert causes[("spn", "HTTP/dup-st.example.test")] == "decrypt-failed"
    assert "setspn -X" in steps[("spn", "HTTP/dup-st.example.test")]["fix_ad"]
    assert causes[("s4u2proxy", "HTTP/other.example.test")] == "delegation-not-allowed"
    assert "krbAllowedToDelegateTo" in steps[("s4u2proxy", "HTTP/other.example.test")]["fix_mit"]
    assert causes[("s4u2proxy", "HTTP/backend.example.test")] is None
    lines = kdclient.kd_lines(h.error_log_since(0), "KD00805")
    assert len(lines) == 4


def subprocess_ktutil(realm, sources, target):
    import subprocess
    script = "".join(f"rkt {s}\n" for s in sources) + f"wkt {target}\nq\n"
    if os.path.exists(target):
        os.unlink(target)
    subprocess.run(["ktutil"], input=script, text=True, check=True, capture_output=True,
                   env=realm.env())
    kdlab._share_with_httpd(target, 0o640)


def test_selftest_protocol_transition_not_allowed(kd_httpd, realm):
    h = selftest_httpd(kd_httpd, realm, "selftest-node2", keytab="node2",
                       spns=("HTTP/node2.example.test",))
    steps = selftest(h)
    s = steps[("s4u2self", "alice")]
    assert s["cause"] == "protocol-transition-not-allowed", s
    assert "TrustedToAuthForDelegation" in s["fix_ad"] and "ok_to_auth_as_delegate" in s["fix_mit"]
    assert steps[("s4u2proxy", "HTTP/backend.example.test")]["skipped"]


def test_selftest_clock_skew_and_kdc_down(kd_httpd, realm):
    h = selftest_httpd(kd_httpd, realm, "selftest-skew", env=kdclient.faketime_env("+10m"))
    steps = selftest(h)
    clock = steps[("clock", f"HTTP/{NODE1}")]
    assert clock["cause"] == "clock-skew" and "about -60" in clock["detail"], clock
    assert "w32tm" in clock["fix_ad"]
    h2 = selftest_httpd(kd_httpd, realm, "selftest-nokdc")
    realm.stop_kdc()
    try:
        steps = selftest(h2)
    finally:
        realm.start_kdc()
    s = steps[("credentials", f"HTTP/{NODE1}")]
    assert s["cause"] == "kdc-unreachable" and "88" in s["fix_ad"]
