"""The site scenarios of the MIT suites, on both KDCs (the kdc fixture):
load-balanced names behind haproxy (test_400), a PostgreSQL consumer of
the delegated ticket (test_320), the status page and self-test (test_500)
and a real browser (test_410). Every test runs once on the MIT-LDAP realm
and once on the Samba Active Directory domain, where the front end's own
TGT is the account's (websvc for the VIP and node1, the computer account
NODE2$ for node2, whose keytab holds host/node2 only: tickets for
HTTP/node2 are issued under its key through AD's HTTP-to-HOST mapping).

Topology: haproxy on 127.0.0.10 as vip.<domain>, round robin to node1
(127.0.0.2, keytab "node1") and node2 (127.0.0.3, keytab "node2"), a
mod_kdeleg back end on 127.0.0.4, PostgreSQL on 127.0.0.5."""

import json
import os
import re
import uuid

import pytest

import kdclient
import kdconf
from kdclient import PSQL_CGI
import kdlab
from conftest import negotiate_conf, private_ccache_dir

from kdsite import hosts, make_site, node_only_keytab
from kdnames import BACKEND_IP, NODE1_IP, NODE2_IP


def cause_of(msg):
    return re.search(r"cause (\S+?):?(\s|$)", msg).group(1)


def page_env(dom):
    """env.cgi's text/plain output as Chromium renders it (inside <pre>)."""
    text = re.sub(r"<[^>]+>", "\n", dom)
    return kdclient.cgi_env(text.replace("&amp;", "&"))


# ------------------------------------------------------------ the back end

@pytest.fixture
def backend(kd_httpd, kdc):
    return kd_httpd("backend", BACKEND_IP, server_name=kdc.host("backend"), env=kdc.r.env(),
                    conf_fn=lambda d: negotiate_conf(kdc.r, d, "backend"))


# ------------------------------------------------------------ the load-balanced site

@pytest.fixture
def site_factory(kd_httpd, haproxy_factory, kdc, lab_dir, backend):
    def make(nodes=None):
        return make_site(kd_httpd, haproxy_factory, kdc, lab_dir, backend, nodes)
    return make


@pytest.fixture
def site(site_factory):
    """Both nodes hold the VIP key (on AD: websvc's entries in both keytabs)."""
    return site_factory()


@pytest.fixture
def blind_site(site_factory, kdc):
    """node2 alone behind the VIP, with its own key only: every VIP ticket
    needs the fallback to the node's name."""
    return site_factory(nodes=(("node2", node_only_keytab(kdc, "node2")),))


def test_vip_tickets_accepted_on_both_nodes(site, kdc, kdc_alice):
    """Single sign-on through haproxy: each node accepts tickets for the
    VIP name and proves it (mutual authentication) with the VIP's key."""
    vip, served = kdc.host("vip"), set()
    for _ in range(4):  # a fresh connection each: haproxy alternates the nodes
        tok = kdclient.Token(kdc_alice, vip)
        status, headers, body = kdclient.request(site.proxy, "/private/cgi/env.cgi", host=vip,
                                                 headers={"Authorization": tok.header})
        assert status == 200, body
        assert tok.finish(headers["www-authenticate"])
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == kdc.user("alice")
        assert env["KDELEG_SPN"] == kdc.spn("vip")
        assert env["KDELEG_AUTH_METHOD"] == "kerberos"
        served.add(env["SERVER_ADDR"])
    assert served == {NODE1_IP, NODE2_IP}


def test_delegation_through_the_vip_from_both_nodes(site, kdc, kdc_alice):
    """A proxied page through the VIP reaches the back end as alice from
    either node; both nodes ask the KDC as the VIP's identity (AD: websvc,
    also on node2, whose keytab holds NODE2$ too)."""
    vip, mark, served = kdc.host("vip"), kdc.r.kdc_log_mark(), set()
    for _ in range(2):
        tok = kdclient.Token(kdc_alice, vip)
        status, _, body = kdclient.request(site.proxy, "/deleg/env.cgi", host=vip,
                                           headers={"Authorization": tok.header})
        assert status == 200, body
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == kdc.user("alice")        # the back end saw alice
        assert env["KDELEG_SPN"] == kdc.spn("backend")
        served.add(env["HTTP_X_FORWARDED_SERVER"])
    assert served == {kdc.host("node1"), kdc.host("node2")}
    lines = kdc.r.kdc_log_since(mark)
    s4u = kdc.s4u2proxy(lines, "HTTP/backend")
    assert len(s4u) == 2, lines  # one per node: each node has its own cache
    assert [kdc.requested_by(l) for l in s4u] == [kdc.impersonator("vip")] * 2, s4u


def test_node_ticket_delegates_as_the_node(site, kdc, kdc_alice):
    """A ticket for node2's own name: accepted (AD: HTTP/node2 under NODE2$'s
    key, the keytab has host/node2 only), named as the SPN the client asked
    for, and delegation is asked as the node's identity (AD: NODE2$)."""
    node2 = site.nodes[1]
    mark, nmark = kdc.r.kdc_log_mark(), node2.error_log_mark()
    status, _, body, _ = kdclient.negotiate(node2, "/deleg/env.cgi", kdc_alice)
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice")
    assert env["KDELEG_SPN"] == kdc.spn("backend")
    lines = kdc.r.kdc_log_since(mark)
    s4u = kdc.s4u2proxy(lines, "HTTP/backend")
    assert len(s4u) == 1, lines
    assert kdc.requested_by(s4u[0]) == kdc.impersonator("node2"), s4u
    audit = [m for _, _, m in kdclient.kd_lines(node2.error_log_since(nmark), "KD00410")]
    assert len(audit) == 1 and (
        f"user={kdc.user('alice')} impersonator={kdc.impersonator('node2')} "
        f"target=HTTP/{kdc.host('backend')} result=ok") in audit[0], audit
    # the node's own page names the SPN the client asked for
    status, _, body, _ = kdclient.negotiate(node2, "/private/cgi/env.cgi", kdc_alice)
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_SPN"] == kdc.spn("node2"), body


def test_session_cookie_opens_on_the_other_node(site, kdc, kdc_alice):
    """Kerberos once through the VIP, then the session cookie (host-only on
    the VIP) is opened by both nodes, no Kerberos at all."""
    b = site.browser(kdc_alice)
    status, headers, _ = b.get(site.url("/private/index.html"))
    assert status == 200 and [s for _, s in b.chain] == [401, 200], b.chain
    cookie = [c for c in headers["set-cookie"].split("\n") if c.startswith("kdeleg_session=")]
    assert len(cookie) == 1 and "domain=" not in cookie[0].lower(), cookie
    assert "alice" not in cookie[0]
    served = set()
    for _ in range(4):
        status, _, body = b.get(site.url("/private/cgi/env.cgi"))
        assert status == 200 and len(b.chain) == 1, b.chain
        env = kdclient.cgi_env(body)
        assert env["KDELEG_AUTH_METHOD"] == "session"
        assert env["REMOTE_USER"] == kdc.user("alice")
        served.add(env["SERVER_ADDR"])
    assert served == {NODE1_IP, NODE2_IP}


def test_ntlm_on_the_vip_falls_back_to_each_node_name(site, kdc, kdc_alice):
    """A client offering NTLM for the VIP name is sent to the node's own
    name, authenticates there with Kerberos (node2 on AD: the computer
    account through the HOST mapping) and comes back to the VIP with a
    session. Run until both nodes have done it: haproxy alternates."""
    vip = kdc.host("vip")
    marks, bounced = site.marks(), []
    for _ in range(2):
        b = site.browser(kdc_alice, ntlm_hosts={vip})
        status, _, body = b.get(site.url("/private/cgi/env.cgi?x=1"))
        assert status == 200, b.chain
        env = kdclient.cgi_env(body)
        assert env["REMOTE_USER"] == kdc.user("alice")
        assert env["KDELEG_AUTH_METHOD"] == "session"
        assert env["QUERY_STRING"] == "x=1"
        path = hosts(b.chain)
        assert path[:2] == [(vip, 401), (vip, 302)], path
        node = path[2][0]
        assert node in (kdc.host("node1"), kdc.host("node2")), path
        assert path[2:4] == [(node, 401), (node, 302)] and path[-1] == (vip, 200), path
        bounced.append(node)
        # one more request through the VIP: the next bounce goes to the other node
        assert kdclient.request(site.proxy, "/kdeleg-status?format=json", host=vip)[0] == 200
    assert sorted(bounced) == [kdc.host("node1"), kdc.host("node2")]
    assert [cause_of(m) for _, _, m in site.lines(marks, "KD00701")] == ["ntlm-offered"] * 2
    assert len(site.lines(marks, "KD00705")) == 2
    pages = [kdclient.status(n, host=vip) for n in site.nodes]
    assert [p["counters"]["fqdn_redirects"] for p in pages] == [1, 1]
    assert all(p["recent_failures"][0]["cause"] == "ntlm-offered" for p in pages)


def test_node_without_vip_key_sends_client_to_its_name_and_back(blind_site, kdc, kdc_alice):
    """node2 has its own key only (AD: NODE2$ and host/node2, as a domain
    join leaves it): the VIP ticket is unusable there, the node sends the
    browser to its own name, Kerberos works there and the page is finally
    served for the VIP name with its query."""
    site, vip, node2 = blind_site, kdc.host("vip"), kdc.host("node2")
    marks = site.marks()
    b = site.browser(kdc_alice)
    start = site.url("/private/cgi/env.cgi?x=1&y=a%20b")
    status, _, body = b.get(start)
    assert status == 200, (b.chain, body)
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice")
    assert env["KDELEG_AUTH_METHOD"] == "session"
    assert env["QUERY_STRING"] == "x=1&y=a%20b" and b.chain[-1][0] == start
    assert hosts(b.chain) == [(vip, 401), (vip, 302), (node2, 401), (node2, 302),
                              (vip, 302), (vip, 200)]
    assert [cause_of(m) for _, _, m in site.lines(marks, "KD00701")] == ["keytab-unusable"]
    assert len(site.lines(marks, "KD00705")) == 1
    assert len(site.lines(marks, "KD00709")) == 1      # the transfer token, redeemed once
    # host-only on the VIP, nothing for the node name, the state cookie gone
    jar = {(domain, name): host_only for (domain, _, name), (_, host_only, _) in b.cookies.items()}
    assert jar == {(vip, "kdeleg_session"): True}, jar
    # the node's status page says the VIP's key is what it lacks
    doc = kdclient.status(site.nodes[0], host=vip)
    assert doc["vhosts"][0]["missing_spns"] == [f"HTTP/{vip}"]


# ------------------------------------------------------------ the computer account (AD)

def test_computer_account_serves_http_through_host_mapping(site, kdc, kdc_alice):
    """node2's keytab holds NODE2$ and host/node2 only. The client's ticket
    is for HTTP/node2 (AD issues it under NODE2$'s key), delegation is asked
    as NODE2$, and the status page says so: HOST mapping, key owner and TGT
    account NODE2$, nothing missing."""
    if kdc.kind != "ad":
        pytest.skip("AD maps HTTP/ to HOST/ for computer accounts; MIT has no such mapping")
    node2 = site.nodes[1]
    account = kdc.r.account("NODE2$")
    assert not [e for e in kdc.r.keytab_entries(kdc.r.keytab("node2"))
                if e[1].lower().startswith("http/node2")]
    mark = kdc.r.kdc_log_mark()
    status, _, body, _ = kdclient.negotiate(node2, "/deleg/env.cgi", kdc_alice)
    assert status == 200, body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")
    lines = kdc.r.kdc_log_since(mark)
    # alice asked for HTTP/node2 herself; NODE2$ asked for the back end
    assert kdc.own_tgs(lines, "HTTP/node2"), lines
    s4u = kdc.s4u2proxy(lines, "HTTP/backend")
    assert [kdc.requested_by(l) for l in s4u] == [account], lines
    doc = kdclient.status(node2)
    [v] = doc["vhosts"]
    assert v["missing_spns"] == []
    ids = {i["spn"]: i for i in v["identities"]}
    assert ids[f"HTTP/{kdc.host('node2')}"] == {
        "spn": f"HTTP/{kdc.host('node2')}", "key_owner": account, "host_mapping": True,
        "tgt_as": account}
    assert ids[f"HTTP/{kdc.host('vip')}"] == {
        "spn": f"HTTP/{kdc.host('vip')}", "key_owner": kdc.r.account("websvc"),
        "host_mapping": False, "tgt_as": kdc.r.account("websvc")}
    assert doc["counters"]["s4u2proxy_ok"] == 1
    html = kdclient.status(node2, "html")
    kvno = kdc.r.kdc_kvno("NODE2$")
    assert (f"<code>HTTP/{kdc.host('node2')}</code> served by {account}'s key (HOST mapping, "
            f"kvno {kvno}); TGT taken as <code>{account}</code>") in html
    assert "missing from the keytab" not in html


# ------------------------------------------------------------ PostgreSQL as the user

@pytest.fixture(scope="module")
def pg_clusters():
    """One PostgreSQL per realm, started on first use, stopped at the end."""
    clusters = {}
    yield clusters
    for pg in clusters.values():
        pg.stop()


@pytest.fixture
def db(kdc, pg_clusters):
    """kdlab.Postgres works as is with an ADRealm: keytab("db") holds
    pgsvc and postgres/db.ad.example.test (PostgreSQL accepts with any
    entry of its keytab), pg_hba's krb_realm is the realm's."""
    if kdc.kind not in pg_clusters:
        pg = kdlab.Postgres(kdc.r.base, kdc.r, name=f"postgres-720-{kdc.kind}")
        pg_clusters[kdc.kind] = pg.start()
    return pg_clusters[kdc.kind]


@pytest.fixture
def pg_front(kd_httpd, kdc, db):
    """node1 with /private delegating to postgres/db; /plain the same CGI
    without delegation."""
    def conf(d):
        os.makedirs(f"{d}/cgi-bin", exist_ok=True)
        private_ccache_dir(d)
        kdconf.install_script(f"{d}/cgi-bin/psql.cgi", PSQL_CGI, PSQL=f"{kdlab.PG_BIN}/psql",
                              CONNINFO=db.psql_args("$DBUSER"))
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"],
                              location_extra=f"""    KdelegDelegateTo postgres/{kdc.host('db')}
    KdelegCcacheDir "{d}/ccache"
""", extra=f"""ScriptAlias /plain/cgi/ "{d}/cgi-bin/"
<Location /plain>
    AuthType Negotiate
    Require valid-user
</Location>
""")
    h = kd_httpd("front-pg", NODE1_IP, server_name=kdc.host("node1"), env=kdc.r.env(),
                 conf_fn=conf)
    h.ccache_dir = os.path.join(h.dir, "ccache")
    yield h
    assert kdclient.settled_listing(h.ccache_dir) == [], "a credential cache was left behind"


def run_psql_cgi(front, ccache, path="/private/cgi/psql.cgi"):
    note = f"t720-{uuid.uuid4().hex}"
    status, _, body, _ = kdclient.negotiate(front, f"{path}?{note}", ccache)
    assert status == 200, body
    return kdclient.cgi_env(body), note, body


def test_database_sees_the_user(pg_front, db, kdc, kdc_alice):
    """psql in a CGI with the KRB5CCNAME the module made: PostgreSQL logs
    alice@REALM in by GSSAPI, over GSS encryption, as role alice; the row
    is hers; the ticket came from S4U2Proxy by node1's identity (AD:
    websvc)."""
    kmark, dmark = kdc.r.kdc_log_mark(), db.log_mark()
    env, note, body = run_psql_cgi(pg_front, kdc_alice)
    assert env["CCNAME"].startswith("FILE:" + pg_front.ccache_dir + "/")
    assert env["PSQL_EXIT"] == "0", body
    assert env["DB_USER"] == "alice" and env["NOTE_OWNER"] == "alice", body
    assert env["DB_GSS"] == "t" and env["DB_ENCRYPTED"] == "t"
    assert env["DB_PRINCIPAL"] == kdc.user("alice")
    assert db.admin_sql(f"select owner from notes where body = '{note}'").split() == ["alice"]
    log = db.log_since(dmark)
    assert any(f'identity="{kdc.user("alice")}" method=gss' in l for l in log), log
    assert not any(env["CGI_UID"] in l or "websvc" in l for l in log), log
    s4u = kdc.s4u2proxy(kdc.r.kdc_log_since(kmark), "postgres/db")
    assert [kdc.requested_by(l) for l in s4u] == [kdc.impersonator("node1")], s4u


def test_no_way_into_the_database_without_delegation(pg_front, db, kdc, kdc_alice):
    """The same CGI where the location does not delegate: no KRB5CCNAME,
    the web server has no credentials of its own, nothing reaches the
    database."""
    dmark = db.log_mark()
    env, note, body = run_psql_cgi(pg_front, kdc_alice, "/plain/cgi/psql.cgi")
    assert env["CCNAME"] == "unset"
    assert env["PSQL_EXIT"] != "0" and "GSSAPI" in body, body
    assert "DB_USER" not in env
    assert db.admin_sql(f"select count(*) from notes where body = '{note}'").strip() == "0"
    assert not any("method=gss" in l for l in db.log_since(dmark))


# ------------------------------------------------------------ status page and self-test

def front_conf(kdc, d, backend, targets=("backend",), spns=("vip", "node1")):
    """node1's keytab, /private delegating to targets, the status page."""
    private_ccache_dir(d)
    return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host(s)}" for s in spns],
                          location_extra=f"""    KdelegDelegateTo {' '.join(
                              f'HTTP/{kdc.host(t)}' for t in targets)}
    KdelegCcacheDir "{d}/ccache"
""")


def test_status_page_keytab_identities_and_counters(kd_httpd, kdc, backend, kdc_alice):
    """The JSON lists the keytab as klist does, whose key serves each SPN
    and who the TGT is taken as (MIT the SPN, AD the account websvc), and
    counts a delegated request; the HTML says the same."""
    h = kd_httpd("status-720", NODE1_IP, server_name=kdc.host("node1"), env=kdc.r.env(),
                 conf_fn=lambda d: front_conf(kdc, d, backend))
    before = kdclient.status(h)
    [v] = before["vhosts"]
    spns = [f"HTTP/{kdc.host('vip')}", f"HTTP/{kdc.host('node1')}"]
    assert v["spns"] == spns and v["missing_spns"] == []
    # what klist -k -e says (klist marks RC4 "DEPRECATED:")
    assert {(e["kvno"], e["principal"], e["enctype"]) for e in v["keytab_entries"]} == \
        {(k, p, e.replace("DEPRECATED:", ""))
         for k, p, e in kdc.r.keytab_entries(kdc.r.keytab("node1"))}
    # AD: the account entry holds the SPNs' key; MIT: no account, the SPN
    # itself (with the realm it gets) takes the TGT
    owner = kdc.r.account("websvc") if kdc.kind == "ad" else None
    assert v["identities"] == [
        {"spn": s, "key_owner": owner, "host_mapping": False,
         "tgt_as": owner or f"{s}@{kdc.realm}"} for s in spns], v["identities"]
    c0 = before["counters"]
    status, _, body, _ = kdclient.negotiate(h, "/private/cgi/env.cgi", kdc_alice)
    assert status == 200 and kdclient.cgi_env(body)["KRB5CCNAME"], body
    after = kdclient.status(h)
    c = after["counters"]
    assert c["s4u2proxy_ok"] == c0["s4u2proxy_ok"] + 1
    assert c["auth_ok"] == c0["auth_ok"] + 1
    assert [(t["target"], t["ok"], t["failed"]) for t in after["delegation_targets"]] == \
        [(f"HTTP/{kdc.host('backend')}", 1, 0)], after["delegation_targets"]
    html = kdclient.status(h, "html")
    for s in spns:
        assert f"TGT taken as <code>{owner or s + '@' + kdc.realm}</code>" in html
    assert "HOST mapping" not in html and "missing from the keytab" not in html


def selftest_httpd(kd_httpd, kdc, name, keytab="node1", spns=("node1",),
                   targets=("HTTP/backend", "postgres/db")):
    def conf(d):
        return f"""
KdelegKeytab {kdc.r.keytab(keytab)}
KdelegServiceNames {' '.join(f'HTTP/{kdc.host(s)}' for s in spns)}
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
    KdelegSelfTest On
    KdelegSelfTestUser alice
    KdelegDelegateTo {' '.join(kdc.r.service(t).rsplit('@', 1)[0] for t in targets)}
</Location>
"""
    h = kd_httpd(name, "127.0.0.5", server_name=kdc.host(spns[0]), conf_fn=conf,
                 env=kdc.r.env())
    h.allowed |= {"KD00805"}
    return h


def selftest(httpd):
    status, _, body = kdclient.request(httpd, "/kdeleg-status?format=json&selftest=1",
                                       method="POST")
    assert status == 200, body[:500]
    [result] = json.loads(body)["selftest"]
    return {(s["step"], s["subject"]): s for s in result["steps"]}


def test_selftest_passes_every_step(kd_httpd, kdc):
    """The service's own walk: TGT (AD: as websvc, forwardable), clock,
    its SPN, S4U2Self for alice, S4U2Proxy to the back end and the
    database; every step passes and nothing goes to the error log."""
    h = selftest_httpd(kd_httpd, kdc, "selftest-720")
    mark = h.error_log_mark()
    steps = selftest(h)
    failed = {k: (s["cause"], s["detail"]) for k, s in steps.items()
              if not s["ok"] or s["cause"] is not None}
    assert failed == {}, failed
    node1 = f"HTTP/{kdc.host('node1')}"
    tgt_as = kdc.impersonator("node1")
    cred = steps[("credentials", node1)]["detail"]
    assert cred.startswith(f"TGT as {tgt_as} from the keytab, forwardable"), cred
    assert "opens it" in steps[("spn", node1)]["detail"]
    assert steps[("s4u2self", "alice")]["ok"]
    for t in ("backend", "db"):
        svc = "HTTP" if t == "backend" else "postgres"
        assert steps[("s4u2proxy", f"{svc}/{kdc.host(t)}")]["ok"]
    assert kdclient.kd_lines(h.error_log_since(mark), "KD00805") == []


def test_selftest_on_node2_names_protocol_transition(kd_httpd, kdc):
    """node2 (AD: NODE2$, HTTP/node2 through the HOST mapping) may not do
    protocol transition: the self-test takes its TGT as the node's identity,
    judges the SPN served, and names that cause with both remedies."""
    h = selftest_httpd(kd_httpd, kdc, "selftest-720-node2", keytab="node2", spns=("node2",),
                       targets=("HTTP/backend",))
    mark = h.error_log_mark()
    steps = selftest(h)
    node2 = f"HTTP/{kdc.host('node2')}"
    cred = steps[("credentials", node2)]
    tgt_as = kdc.impersonator("node2")
    assert cred["ok"] and cred["detail"].startswith(
        f"TGT as {tgt_as} from the keytab, forwardable"), cred
    assert steps[("spn", node2)]["ok"], steps[("spn", node2)]
    s = steps[("s4u2self", "alice")]
    assert s["cause"] == "protocol-transition-not-allowed", s
    assert "TrustedToAuthForDelegation" in s["fix_ad"] and "ok_to_auth_as_delegate" in s["fix_mit"]
    assert steps[("s4u2proxy", f"HTTP/{kdc.host('backend')}")]["skipped"]
    logged = kdclient.kd_lines(h.error_log_since(mark), "KD00805")
    assert [cause_of(m) for _, _, m in logged] == ["protocol-transition-not-allowed"]


def test_delegation_not_allowed_shown_with_its_cause(kd_httpd, kdc, backend, kdc_alice):
    """HTTP/other is not in the front end's delegation list: the request
    fails with the cause in the log, the status page shows the same cause
    and counts it, and the self-test finds it before any user does."""
    h = kd_httpd("deny-720", NODE1_IP, server_name=kdc.host("node1"), env=kdc.r.env(),
                 conf_fn=lambda d: front_conf(kdc, d, backend, targets=("other",)))
    h.allowed |= {"KD00401"}
    mark = h.error_log_mark()
    status, _, _, _ = kdclient.negotiate(h, "/private/cgi/env.cgi", kdc_alice)
    assert status == 500
    logged = kdclient.kd_lines(h.error_log_since(mark), "KD00401")
    assert [cause_of(m) for _, _, m in logged] == ["delegation-not-allowed"], logged
    assert kdc.host("other") in logged[0][2]
    assert kdclient.status_agrees(h, "delegation-not-allowed")
    _, record = kdclient.last_failure(h)
    assert "msDS-AllowedToDelegateTo" in record["fix_ad"]
    assert "krbAllowedToDelegateTo" in record["fix_mit"]
    targets = kdclient.status(h)["delegation_targets"]
    assert [(t["target"], t["last_cause"], t["ok"], t["failed"]) for t in targets] == \
        [(f"HTTP/{kdc.host('other')}", "delegation-not-allowed", 0, 1)], targets
    st = selftest_httpd(kd_httpd, kdc, "selftest-720-deny", targets=("HTTP/backend",
                                                                     "HTTP/other"))
    smark = st.error_log_mark()
    steps = selftest(st)
    assert steps[("s4u2proxy", f"HTTP/{kdc.host('other')}")]["cause"] == "delegation-not-allowed"
    assert steps[("s4u2proxy", f"HTTP/{kdc.host('backend')}")]["ok"]
    assert any(m.startswith(f"kdeleg({kdc.host('node1')}, 127.0.0.1, ") and
               f"self-test step s4u2proxy for HTTP/{kdc.host('other')}: "
               "cause delegation-not-allowed: " in m
               for _, _, m in kdclient.kd_lines(st.error_log_since(smark), "KD00805"))


# ------------------------------------------------------------ Chromium

chromium_only = pytest.mark.skipif(not os.path.exists(kdclient.CHROMIUM),
                                   reason="Debian chromium is not installed (t/install-deps)")


@chromium_only
def test_chromium_delegated_page_through_the_vip(site, kdc, kdc_alice, lab_dir):
    """A real browser, the realm's krb5.conf, through haproxy: single
    sign-on on the VIP name and the back end's page as alice."""
    dom = kdclient.chromium(kdc.r, kdc_alice, site.resolve, site.url("/deleg/env.cgi"),
                            lab_dir)
    env = page_env(dom)
    assert env.get("REMOTE_USER") == kdc.user("alice"), dom[:2000]
    assert env["KDELEG_SPN"] == kdc.spn("backend")
    assert env["HTTP_X_FORWARDED_HOST"] == f"{kdc.host('vip')}:{site.proxy.port}"


@chromium_only
def test_chromium_follows_the_fqdn_fallback(blind_site, kdc, kdc_alice, lab_dir):
    """Chromium with a VIP ticket node2 cannot use: it follows the node's
    redirect, does Negotiate for the node's name (AD: HTTP/node2 through
    the computer account's HOST mapping) and lands on the VIP page."""
    site = blind_site
    marks = site.marks()
    dom = kdclient.chromium(kdc.r, kdc_alice, site.resolve,
                            site.url("/private/cgi/env.cgi?a=1"), lab_dir)
    env = page_env(dom)
    assert env.get("REMOTE_USER") == kdc.user("alice"), dom[:2000]
    assert env["KDELEG_AUTH_METHOD"] == "session"
    assert env["HTTP_HOST"] == f"{kdc.host('vip')}:{site.proxy.port}"
    assert env["QUERY_STRING"] == "a=1"
    assert [cause_of(m) for _, _, m in site.lines(marks, "KD00701")] == ["keytab-unusable"]
    assert len(site.lines(marks, "KD00705")) == 1
