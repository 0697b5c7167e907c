"""TLS channel binding (issue 17, item 4), on both KDCs: KdelegChannelBinding
off|allow|require with RFC 5929 tls-server-end-point bindings, a
python-gssapi client sending the right, wrong or no bindings, straight to
an https httpd (mod_ssl's certificate) and through a haproxy that
terminates TLS (KdelegChannelBindingCert names the certificate the client
saw); the bound/unbound counters; and what headless Chromium sends.

Topology: node1 on 127.0.0.2 (https, or plain http behind haproxy),
haproxy on 127.0.0.10 as vip.<domain>."""

import hashlib

import pytest

import kdclient
from kdsite import VIP_IP

PAGE = "/private/cgi/env.cgi"
WRONG = b"tls-server-end-point:" + hashlib.sha256(b"another server's certificate").digest()
# KD00301: the refused logins; KD00312: require on plain http
ALLOWED = {"KD00301"}


def conf(kdc, mode, extra=""):
    return lambda d: site_conf(kdc, d, mode, extra)


def site_conf(kdc, d, mode, extra):
    host, vip = kdc.host("node1"), kdc.host("vip")
    return f"""
KdelegKeytab {kdc.r.keytab('node1')}
KdelegServiceNames HTTP/{host} HTTP/{vip}
KdelegChannelBinding {mode}
{extra}
ScriptAlias /private/cgi/ "{d}/cgi-bin/"
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
<Location /kdeleg-status>
    SetHandler kdeleg-status
    Require ip 127.0.0.0/8
</Location>
"""


@pytest.fixture
def tls_node(kd_httpd, kdc, test_ca):
    """make(mode): node1 on https with mod_ssl, KdelegChannelBinding mode."""
    def make(mode):
        host = kdc.host("node1")
        node = kd_httpd(f"cb-{mode}", "127.0.0.2", server_name=host, env=kdc.r.env(),
                        conf_fn=conf(kdc, mode),
                        tls=test_ca.issue(f"{kdc.kind}-cb-node1", [host]))
        node.cafile = test_ca.pem
        node.allowed |= ALLOWED
        return node
    return make


def bindings_of(node, host):
    """The binding a client makes for what node shows it."""
    return kdclient.tls_server_end_point(
        kdclient.peer_certificate(host, node.ip, node.port, node.cafile))


def login(httpd, ccache, host, bindings):
    """(status, env or body, token) for one fresh token with bindings
    (None: none), over the connection httpd.scheme says."""
    tok = kdclient.Token(ccache, host, bindings=bindings)
    status, headers, body = kdclient.request(httpd, PAGE, host=host,
                                             headers={"Authorization": tok.header})
    if status == 200:
        # the server's mutual-authentication reply still verifies
        assert tok.finish(headers.get("www-authenticate")), headers
        return status, kdclient.cgi_env(body)
    return status, body


def counters(node):
    c = kdclient.status(node, host=getattr(node, "status_host", None))["counters"]
    return (c["channel_bound_logins"], c["channel_unbound_logins"],
            c["failures_channel-binding-missing"], c["failures_channel-binding-mismatch"])


def causes_since(node, mark):
    return kdclient.causes(node.error_log_since(mark))


# mode -> (right, wrong, absent): status, and what the counters gained
EXPECTED = {
    # no bindings passed: MIT ignores what the client bound to
    "off": ((200, (0, 0, 0, 0)), (200, (0, 0, 0, 0)), (200, (0, 0, 0, 0))),
    "allow": ((200, (1, 0, 0, 0)), (401, (0, 0, 0, 1)), (200, (0, 1, 0, 0))),
    "require": ((200, (1, 0, 0, 0)), (401, (0, 0, 0, 1)), (401, (0, 0, 1, 0))),
}


@pytest.mark.parametrize("mode", ["off", "allow", "require"])
def test_direct_tls(tls_node, kdc, kdc_alice, mode):
    """python-gssapi with right, wrong and no bindings, straight to mod_ssl."""
    node = tls_node(mode)
    host = kdc.host("node1")
    right = bindings_of(node, host)
    for bindings, (status, gained) in zip((right, WRONG, None), EXPECTED[mode]):
        before, mark = counters(node), node.error_log_mark()
        got = login(node, kdc_alice, host, bindings)
        assert got[0] == status, (mode, bindings, got)
        if status == 200:
            assert got[1]["REMOTE_USER"] == kdc.user("alice")
        else:
            assert "alice" not in got[1]
            cause = "channel-binding-mismatch" if bindings == WRONG else "channel-binding-missing"
            assert causes_since(node, mark) == [cause]
            assert kdclient.status_agrees(node, cause)
        after = counters(node)
        assert tuple(a - b for a, b in zip(after, before)) == gained, (mode, bindings, after)
    # the same counters for Prometheus
    prom = kdclient.status(node, "prometheus")
    assert f'kdeleg_events_total{{event="channel_bound_logins"}} {after[0]}' in prom
    assert f'kdeleg_events_total{{event="channel_unbound_logins"}} {after[1]}' in prom
    assert f'kdeleg_failures_total{{cause="channel-binding-mismatch"}} {after[3]}' in prom


def test_inner_scope_overrides(kd_httpd, kdc, kdc_alice, test_ca):
    """require at server level, off in one Location, allow in another: each
    directory merges the mode on its own."""
    host = kdc.host("node1")
    extra = """
Alias /open/ "{d}/cgi-bin/"
Alias /measure/ "{d}/cgi-bin/"
<Location /open/>
    AuthType Negotiate
    Require valid-user
    KdelegChannelBinding off
    Options +ExecCGI
    SetHandler cgi-script
</Location>
<Location /measure/>
    AuthType Negotiate
    Require valid-user
    KdelegChannelBinding allow
    Options +ExecCGI
    SetHandler cgi-script
</Location>
"""
    node = kd_httpd("cb-scopes", "127.0.0.2", server_name=host, env=kdc.r.env(),
                    conf_fn=lambda d: site_conf(kdc, d, "require", extra.replace("{d}", d)),
                    tls=test_ca.issue(f"{kdc.kind}-cb-node1", [host]))
    node.cafile = test_ca.pem
    node.allowed |= ALLOWED

    def get(path, bindings):
        tok = kdclient.Token(kdc_alice, host, bindings=bindings)
        return kdclient.request(node, path, host=host, headers={"Authorization": tok.header})[0]

    assert get(PAGE, None) == 401
    assert get("/open/env.cgi", None) == 200
    assert get("/open/env.cgi", WRONG) == 200
    before = counters(node)
    assert get("/measure/env.cgi", None) == 200
    assert get("/measure/env.cgi", WRONG) == 401
    assert counters(node)[1] - before[1] == 1


def test_binding_is_the_certificates_own(tls_node, kdc, kdc_alice, test_ca):
    """Bindings for another certificate of the same name and CA do not pass:
    the hash is of this server's certificate, not of its name."""
    import ssl
    node = tls_node("require")
    host = kdc.host("node1")
    other, _ = test_ca.issue(f"{kdc.kind}-cb-node1-other", [host])
    with open(other) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    assert der != kdclient.peer_certificate(host, node.ip, node.port, node.cafile)
    assert login(node, kdc_alice, host, kdclient.tls_server_end_point(der))[0] == 401


def test_hashed_once_per_connection(kd_httpd, kdc, kdc_alice, test_ca):
    """Three logins on one keep-alive TLS connection: mod_ssl's certificate
    is hashed for the first (KD00314) and reused; each login is counted
    (KD00313). A second connection hashes again."""
    host = kdc.host("node1")
    node = kd_httpd("cb-keepalive", "127.0.0.2", server_name=host, env=kdc.r.env(),
                    conf_fn=conf(kdc, "require", "LogLevel warn kdeleg:debug"),
                    tls=test_ca.issue(f"{kdc.kind}-cb-node1", [host]))
    node.cafile = test_ca.pem
    right = bindings_of(node, host)
    mark = node.error_log_mark()
    for connections in range(2):
        conn = kdclient.connection("https", host, node.ip, node.port, node.cafile)
        try:
            for _ in range(3):
                tok = kdclient.Token(kdc_alice, host, bindings=right)
                conn.request("GET", PAGE, headers={"Host": f"{host}:{node.port}",
                                                   "Authorization": tok.header})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
        finally:
            conn.close()
    lines = node.error_log_since(mark)
    hashed = kdclient.kd_lines(lines, "KD00314")
    assert len(hashed) == 2 and "(SHA256)" in hashed[0][2], hashed
    noted = kdclient.kd_lines(lines, "KD00313")
    assert len(noted) == 6 and all("bound to this TLS channel" in m for _, _, m in noted)
    # never a token in the log
    assert tok.b64[20:60] not in "".join(lines)


def h2_logins(node, host, batches):
    """One HTTP/2 connection (TLS, ALPN h2) to node; for each batch of
    tokens, one stream per token, all opened before any answer is read,
    and the batch answered before the next is sent: [(status, body)] in
    order."""
    import socket
    import ssl
    import h2.config
    import h2.connection
    import h2.events
    ctx = ssl.create_default_context(cafile=node.cafile)
    ctx.set_alpn_protocols(["h2"])
    results = []
    with socket.create_connection((node.ip, node.port), timeout=15) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as sock:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        for tokens in batches:
            ids = []
            for tok in tokens:
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                        (":authority", f"{host}:{node.port}"), (":path", PAGE),
                                        ("authorization", tok.header)], end_stream=True)
                ids.append(sid)
            sock.sendall(conn.data_to_send())
            status, body, done = {}, {i: b"" for i in ids}, set()
            while len(done) < len(ids):
                data = sock.recv(65536)
                assert data, "connection closed"
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status[ev.stream_id] = int(dict(ev.headers)[b":status"])
                    elif isinstance(ev, h2.events.DataReceived):
                        body[ev.stream_id] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        done.add(ev.stream_id)
                sock.sendall(conn.data_to_send())
            results += [(status[i], body[i].decode(errors="replace")) for i in ids]
    return results


def test_http2_streams_bind_to_the_master_connection(kd_httpd, kdc, kdc_alice, test_ca):
    """Under HTTP/2 mod_ssl's state is on the master connection: streams
    with the right bindings pass, one with wrong bindings is refused, one
    without is refused under require, all on one connection, which hashes
    the certificate once."""
    host = kdc.host("node1")
    node = kd_httpd("cb-h2", "127.0.0.2", server_name=host, env=kdc.r.env(),
                    extra_modules=("http2",),
                    conf_fn=conf(kdc, "require", "Protocols h2 http/1.1\nLogLevel warn kdeleg:debug"),
                    tls=test_ca.issue(f"{kdc.kind}-cb-node1", [host]))
    node.cafile = test_ca.pem
    node.allowed |= ALLOWED
    right = bindings_of(node, host)
    mark = node.error_log_mark()
    tokens = [kdclient.Token(kdc_alice, host, bindings=b) for b in (right, right, WRONG, None)]
    # the first login alone, then three streams in parallel
    got = h2_logins(node, host, [tokens[:1], tokens[1:]])
    assert [s for s, _ in got] == [200, 200, 401, 401], got
    assert kdclient.cgi_env(got[0][1])["REMOTE_USER"] == kdc.user("alice")
    lines = node.error_log_since(mark)
    assert sorted(kdclient.causes(lines)) == ["channel-binding-mismatch",
                                             "channel-binding-missing"]
    assert len(kdclient.kd_lines(lines, "KD00313")) == 2
    # hashed once for the connection, not once per stream (each stream has a
    # secondary connection of its own). Streams racing to be the first
    # login of a connection may each hash; one copy is kept.
    assert len(kdclient.kd_lines(lines, "KD00314")) == 1


@pytest.fixture
def terminated(kd_httpd, haproxy_factory, kdc, test_ca):
    """make(mode, cert=True): node1 on plain http behind haproxy, which
    terminates TLS with the VIP's certificate; with cert, the node names
    that certificate in KdelegChannelBindingCert."""
    def make(mode, cert=True):
        vip = kdc.host("vip")
        vip_cert, _ = test_ca.issue(f"{kdc.kind}-cb-vip", [vip])
        extra = f"KdelegChannelBindingCert {vip_cert}" if cert else ""
        node = kd_httpd(f"cb-lb-{mode}", "127.0.0.2", server_name=f"https://{vip}",
                        env=kdc.r.env(), conf_fn=conf(kdc, mode, extra))
        node.allowed |= ALLOWED
        node.status_host = vip  # ServerName is a URL: not a Host header
        proxy = haproxy_factory(VIP_IP, node.port, [(node.ip, node.port)],
                                tls=("terminate", test_ca.bundle(f"{kdc.kind}-cb-vip", [vip])))
        proxy.cafile = test_ca.pem
        proxy.server_name = vip
        return node, proxy
    return make


@pytest.mark.parametrize("mode", ["allow", "require"])
def test_through_terminating_haproxy(terminated, kdc, kdc_alice, mode):
    """The client binds to haproxy's certificate; the node, on plain http,
    checks against KdelegChannelBindingCert."""
    node, proxy = terminated(mode)
    vip = kdc.host("vip")
    right = kdclient.tls_server_end_point(
        kdclient.peer_certificate(vip, proxy.ip, proxy.port, proxy.cafile))
    for bindings, (status, gained) in zip((right, WRONG, None), EXPECTED[mode]):
        before, mark = counters(node), node.error_log_mark()
        got = login(proxy, kdc_alice, vip, bindings)
        assert got[0] == status, (mode, bindings, got)
        if status == 200:
            assert got[1]["REMOTE_USER"] == kdc.user("alice")
            assert "HTTPS" not in got[1]  # the node itself speaks plain http
        after = counters(node)
        assert tuple(a - b for a, b in zip(after, before)) == gained, (mode, bindings, after)
        if status != 200:
            assert len(causes_since(node, mark)) == 1


def test_require_on_plain_http_without_cert(terminated, kdc, kdc_alice):
    """An administrator's mistake: require behind a terminating balancer
    with no KdelegChannelBindingCert. Nothing to bind to: every login fails
    as channel-binding-missing, and the node says why once, at WARN."""
    node, proxy = terminated("require", cert=False)
    node.allowed |= {"KD00312"}
    vip = kdc.host("vip")
    right = kdclient.tls_server_end_point(
        kdclient.peer_certificate(vip, proxy.ip, proxy.port, proxy.cafile))
    mark = node.error_log_mark()
    for bindings in (right, None):
        assert login(proxy, kdc_alice, vip, bindings)[0] == 401
    lines = node.error_log_since(mark)
    assert kdclient.causes(lines) == ["channel-binding-missing"] * 2
    warned = kdclient.kd_lines(lines, "KD00312")
    assert len(warned) >= 1 and warned[0][0] == "warn", warned
    assert "KdelegChannelBindingCert" in warned[0][2]


def test_bad_cert_file_stops_the_start(kd_httpd, kdc, lab_dir):
    """KdelegChannelBindingCert is read and hashed at start-up: a file that
    is not a certificate is a configuration error naming it."""
    import os
    bad = os.path.join(lab_dir, "cb-not-a-cert.pem")
    with open(bad, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(Exception) as e:
        kd_httpd("cb-bad", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                 conf_fn=conf(kdc, "require", f"KdelegChannelBindingCert {bad}"))
    assert "KdelegChannelBindingCert" in str(e.value), str(e.value)[-2000:]


def test_curl_with_allow_and_require(tls_node, kdc, kdc_alice):
    """curl --negotiate (Debian's 7.88, GSSAPI through MIT) sends no
    bindings: accepted unbound under allow, refused under require."""
    host = kdc.host("node1")
    for mode, status, gained in (("allow", 200, (0, 1, 0, 0)), ("require", 401, (0, 0, 1, 0))):
        node = tls_node(mode)
        before = counters(node)
        code, body = kdclient.curl_negotiate(kdc.r, node, PAGE, kdc_alice, host=host)
        assert code == status, (mode, body[-500:])
        assert tuple(a - b for a, b in zip(counters(node), before)) == gained, mode


def test_headless_chromium_with_allow(tls_node, kdc, kdc_alice, lab_dir):
    """What headless Chromium (Debian, GSSAPI through MIT) sends, recorded
    by the counters: it logs in under allow whatever it is."""
    node = tls_node("allow")
    host = kdc.host("node1")
    before = counters(node)
    dom = kdclient.chromium(kdc.r, kdc_alice, {host: node.ip},
                            f"https://{host}:{node.port}{PAGE}", lab_dir, cafile=node.cafile)
    assert f"REMOTE_USER={kdc.user('alice')}" in dom, dom[-2000:]
    bound, unbound = (a - b for a, b in list(zip(counters(node), before))[:2])
    assert bound + unbound == 1, (bound, unbound)
    print(f"chromium on {kdc.kind}: {'bound' if bound else 'unbound'}")
