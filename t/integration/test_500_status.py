"""The status page (SetHandler kdeleg-status): JSON, Prometheus and HTML;
counters and recent failures shared by all children; keytab entries and
missing SPNs; the caller's own request; never a token, key or cookie; safe
escaping of what clients send; GET and HEAD only; the page in Chromium."""

import base64
import json
import os
import re

import pytest

import kdclient
import kdlab
from conftest import negotiate_conf

NODE1 = "node1.example.test"
ENV_CGI = "/private/cgi/env.cgi"


def status_conf(realm, d):
    """node1 plus a second virtual host whose configured SPN has no key."""
    return negotiate_conf(realm, d, "node1") + f"""
<VirtualHost {{ip}}:{{port}}>
    ServerName {NODE1}
</VirtualHost>
<VirtualHost {{ip}}:{{port}}>
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
                 conf_fn=lambda d: status_conf(realm, d).replace("{ip}", ip)
                 .replace("{port}", str(port)))
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
