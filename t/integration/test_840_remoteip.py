"""Client addresses behind the balancer (issue 17, item 6), with httpd's
mod_remoteip. The module names the client by r->useragent_ip (the `client`
of its `kdeleg(vhost, client, spn)` log context and of the status page's
recent_failures), which is what mod_remoteip rewrites; httpd's own error
log prefix and the access log's %a and %h follow it, %{c}a keeps the peer.

- haproxy in mode http with `option forwardfor`, the node with
  `RemoteIPHeader X-Forwarded-For` and `RemoteIPInternalProxy <haproxy's
  address>`: every log and the status page show the client (127.0.0.99),
  on both KDCs; without mod_remoteip they show haproxy (the gap);
- a client that reaches the node directly cannot choose its address by
  sending X-Forwarded-For, nor through haproxy (haproxy appends, the node
  takes the last address its trusted proxy added);
- TLS passed through (mode tcp) and HTTP/2: no header can be added, the
  PROXY protocol carries the address (haproxy `send-proxy-v2`, the node
  `RemoteIPProxyProtocol On`); every h2 stream gets the client's address.
  mod_remoteip believes a PROXY header from any peer: shown, so that the
  docs can say the nodes' port must be reachable from the balancer only.

Addresses: the client 127.0.0.99, haproxy listening on 127.0.0.10 and
connecting to the nodes from 127.0.0.12 (its inside address), node1 on
127.0.0.2."""

import base64
import json
import re
import socket
import ssl
import subprocess
import time

import pytest

import kdclient
from conftest import negotiate_conf
from kdnames import NODE1_IP, PROXY_MODULES, VIP_IP

CLIENT_IP = "127.0.0.99"    # the user's machine
BALANCER_IP = "127.0.0.12"  # haproxy's address towards the nodes
SPOOFED = "10.9.8.7"        # what a client would like to be
INSIDE = "127.0.0.0/28"     # the nodes' inside network: admins and the balancer
ADDR_LOG = "logs/addr.log"


def remoteip_lines(how):
    """The node's mod_remoteip configuration, as docs/load-balancing.md
    gives it."""
    if how == "xff":
        return f"RemoteIPHeader X-Forwarded-For\nRemoteIPInternalProxy {BALANCER_IP}\n"
    if how == "proxy":
        return "RemoteIPProxyProtocol On\n"
    return ""


def node_conf(kdc, d, how):
    """node1 answering for the VIP: /private behind Negotiate, an access
    log of the addresses (%a the client as httpd sees it, %{c}a the peer of
    the connection, %h the client's host)."""
    return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('vip')}"], extra=f"""
{remoteip_lines(how)}LogFormat "%a %{{c}}a %h %u \\"%r\\" %>s" addrs
CustomLog "{d}/{ADDR_LOG}" addrs
# the inside network: admins (127.0.0.1) and the balancer (127.0.0.12), not
# the client (127.0.0.99)
<Location /inside-status>
    SetHandler kdeleg-status
    Require ip {INSIDE}
</Location>
""")


@pytest.fixture
def farm(kd_httpd, haproxy_factory, kdc, test_ca):
    """make(how, tls=False, forwardfor=None) -> (node, haproxy): node1
    behind haproxy on the VIP. how: "xff", "proxy" or None (no
    mod_remoteip). tls: node1 on https with h2, haproxy passing TLS
    through. forwardfor: haproxy adds X-Forwarded-For (default: for "xff")."""
    def make(how, tls=False, forwardfor=None):
        modules = PROXY_MODULES + (("remoteip",) if how else ()) + (("http2",) if tls else ())
        extra = {}
        if tls:
            extra["tls"] = test_ca.issue(f"{kdc.kind}-rip-node1",
                                         [kdc.host("node1"), kdc.host("vip")])
        node = kd_httpd("rip-node1", NODE1_IP, server_name=kdc.host("node1"), env=kdc.r.env(),
                        extra_modules=modules,
                        conf_fn=lambda d: node_conf(kdc, d, how)
                        + ("Protocols h2 http/1.1\n" if tls else ""), **extra)
        node.cafile = test_ca.pem
        proxy = haproxy_factory(VIP_IP, None, [(node.ip, node.port)], source=BALANCER_IP,
                                forwardfor=how == "xff" if forwardfor is None else forwardfor,
                                send_proxy=how == "proxy",
                                tls=("passthrough",) if tls else None)
        return node, proxy
    return make


def ntlm_header():
    return "Negotiate " + base64.b64encode(kdclient.ntlm_type1()).decode()


def curl(kdc, proxy, path, *args, ccache=None, interface=CLIENT_IP, tls=False, cafile=None):
    """curl from interface to the VIP through haproxy: (status, body)."""
    scheme = "https" if tls else "http"
    vip = kdc.host("vip")
    auth = ["--negotiate", "-u", ":"] if ccache else []
    tls_args = ["--http2", "--cacert", cafile] if tls else []
    proc = subprocess.run(
        ["curl", "-s", "--interface", interface, "-o", "-", "-w", "\n%{http_code}", *auth,
         *tls_args, *args, "--resolve", f"{vip}:{proxy.port}:{proxy.ip}",
         f"{scheme}://{vip}:{proxy.port}{path}"],
        env=kdc.r.env(ccache) if ccache else {"PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30)
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), body


def addr_lines(node, mark=0, want=1):
    """The addrs access log since byte mark: [(%a, %{c}a, %h, %u, request,
    status)], once it has want lines (or after 5 s): httpd logs a request
    after its response went out, and curl may have read it first."""
    deadline = time.monotonic() + 5
    while True:
        with open(f"{node.dir}/{ADDR_LOG}") as f:
            f.seek(mark)
            text = f.read()
        lines = [m.groups() for m in
                 re.finditer(r'^(\S+) (\S+) (\S+) (\S+) "([^"]*)" (\d+)$', text, re.M)]
        if len(lines) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def addr_mark(node):
    try:
        with open(f"{node.dir}/{ADDR_LOG}") as f:
            return f.seek(0, 2)
    except FileNotFoundError:
        return 0


def failure_lines(node, mark):
    """The KD00301 lines since mark, whole: httpd's [client ...] prefix and
    the module's kdeleg(vhost, client, spn) context."""
    return [l for l in node.error_log_since(mark) if "KD00301" in l]


def logged_clients(line):
    """(httpd's client address, the module's client) of one error log line.
    httpd writes [client IP:port], or [remote IP:port] for an HTTP/2
    stream (a secondary connection has no scoreboard slot)."""
    prefix = re.search(r"\[(?:client|remote) ([0-9.]+):\d+\]", line).group(1)
    module = re.search(r"kdeleg\([^,]+, ([^,]+), ", line).group(1)
    return prefix, module


def status_json(kdc, proxy, tls=False, cafile=None):
    """The node's status page through haproxy, from 127.0.0.1."""
    code, body = curl(kdc, proxy, "/kdeleg-status?format=json", interface="127.0.0.1",
                      tls=tls, cafile=cafile)
    assert code == 200, body[:300]
    return json.loads(body)


def exercise(kdc, node, proxy, ccache, tls=False):
    """alice logs in through haproxy from CLIENT_IP, then the same client
    offers NTLM (a failure the module logs and counts). Returns the addrs
    lines and KD00301 lines of it."""
    amark, emark = addr_mark(node), node.error_log_mark()
    kw = dict(tls=tls, cafile=node.cafile)
    code, body = curl(kdc, proxy, "/private/cgi/env.cgi", ccache=ccache, **kw)
    assert code == 200, body
    env = kdclient.cgi_env(body)
    assert env["REMOTE_USER"] == kdc.user("alice")
    code, _ = curl(kdc, proxy, "/private/", "-H", f"Authorization: {ntlm_header()}", **kw)
    assert code == 401
    return env, addr_lines(node, amark, want=2), failure_lines(node, emark)


# ------------------------------------------------------------ X-Forwarded-For

def test_forwarded_for_shows_the_client_everywhere(farm, kdc, kdc_alice):
    """mod_remoteip trusting haproxy's X-Forwarded-For: the CGI's
    REMOTE_ADDR, the access log's %a and %h, httpd's [client] prefix, the
    module's kdeleg(vhost, client, spn) and the status page's
    recent_failures all name 127.0.0.99; %{c}a still names haproxy."""
    node, proxy = farm("xff")
    env, lines, failures = exercise(kdc, node, proxy, kdc_alice)
    assert env["REMOTE_ADDR"] == CLIENT_IP
    assert [(a, c, h) for a, c, h, _, _, _ in lines] == [(CLIENT_IP, BALANCER_IP, CLIENT_IP)] * 2
    assert lines[0][3] == kdc.user("alice") and lines[1][5] == "401"
    assert len(failures) == 1 and "cause ntlm-offered" in failures[0]
    assert logged_clients(failures[0]) == (CLIENT_IP, CLIENT_IP)
    recent = status_json(kdc, proxy)["recent_failures"][0]
    assert (recent["cause"], recent["client"]) == ("ntlm-offered", CLIENT_IP)


def test_without_remoteip_every_log_shows_the_balancer(farm, kdc, kdc_alice):
    """The gap mod_remoteip closes: with no mod_remoteip, the same requests
    are logged, counted and shown as coming from haproxy's address, though
    haproxy sends X-Forwarded-For."""
    node, proxy = farm(None, forwardfor=True)
    env, lines, failures = exercise(kdc, node, proxy, kdc_alice)
    assert env["REMOTE_ADDR"] == BALANCER_IP
    assert env["HTTP_X_FORWARDED_FOR"] == CLIENT_IP   # there, but nothing uses it
    assert [(a, c, h) for a, c, h, _, _, _ in lines] == [(BALANCER_IP,) * 3] * 2
    assert logged_clients(failures[0]) == (BALANCER_IP, BALANCER_IP)
    assert status_json(kdc, proxy)["recent_failures"][0]["client"] == BALANCER_IP


def test_a_client_cannot_choose_its_address(farm, realm, kdc):
    """RemoteIPInternalProxy trusts haproxy's address only. A client that
    reaches the node directly and sends X-Forwarded-For stays itself; one
    that sends the header through haproxy too (haproxy appends the address
    it saw; mod_remoteip stops at the first address, from the right, that
    no trusted proxy added). The module's log and status page agree."""
    if kdc.kind != "mit":
        pytest.skip("no KDC involved: the MIT run shows it")
    node, proxy = farm("xff")
    emark = node.error_log_mark()
    forged = ["-H", f"X-Forwarded-For: {SPOOFED}", "-H", f"Authorization: {ntlm_header()}"]
    # straight to the node, bypassing haproxy
    proc = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", CLIENT_IP,
         *forged, "--resolve", f"{kdc.host('vip')}:{node.port}:{node.ip}",
         f"http://{kdc.host('vip')}:{node.port}/private/"],
        capture_output=True, text=True, timeout=30)
    assert proc.stdout == "401"
    # through haproxy
    assert curl(kdc, proxy, "/private/", *forged)[0] == 401
    failures = failure_lines(node, emark)
    assert [logged_clients(l) for l in failures] == [(CLIENT_IP, CLIENT_IP)] * 2, failures
    clients = [f["client"] for f in status_json(kdc, proxy)["recent_failures"][:2]]
    assert clients == [CLIENT_IP, CLIENT_IP]
    assert not any(SPOOFED in l for l in node.error_log_since(emark))


@pytest.mark.parametrize("how, expected", [(None, 200), ("xff", 403)])
def test_require_ip_sees_the_balancer_without_remoteip(farm, kdc, how, expected):
    """Why it matters beyond logs: `Require ip <inside network>` on the
    status page, where the balancer's inside address falls in that
    network. Without mod_remoteip every client through the balancer is
    the balancer, and an outside client reads the page (200); with it,
    the client is itself and is refused (403)."""
    if kdc.kind != "mit":
        pytest.skip("no KDC involved: the MIT run shows it")
    node, proxy = farm(how, forwardfor=True)
    if expected == 403:
        node.allowed.add("AH01630")   # authz_core: client denied (the refusal itself)
    status, body = curl(kdc, proxy, "/inside-status?format=json")
    assert status == expected, body[:300]
    # an admin inside, straight to the node, reads it either way
    assert kdclient.request(node, "/inside-status?format=json", host=kdc.host("vip"))[0] == 200


# ------------------------------------------------------------ PROXY protocol, TLS, HTTP/2

def test_proxy_protocol_through_tls_passthrough_over_http2(farm, kdc, kdc_alice):
    """TLS passed through to the node, HTTP/2 end to end: haproxy cannot
    add a header, so the PROXY protocol (v2) carries the address and
    RemoteIPProxyProtocol On reads it. Each h2 stream (a secondary
    connection) carries the client's address: access log, httpd's prefix,
    the module's context and the status page. %{c}a is still the peer,
    haproxy."""
    node, proxy = farm("proxy", tls=True)
    env, lines, failures = exercise(kdc, node, proxy, kdc_alice, tls=True)
    assert env["REMOTE_ADDR"] == CLIENT_IP and env["HTTP2"] == "on"
    assert [(a, c, r.rsplit(" ", 1)[1]) for a, c, _, _, r, _ in lines] == \
        [(CLIENT_IP, BALANCER_IP, "HTTP/2.0")] * 2, lines
    assert logged_clients(failures[0]) == (CLIENT_IP, CLIENT_IP)
    recent = status_json(kdc, proxy, tls=True, cafile=node.cafile)["recent_failures"][0]
    assert (recent["cause"], recent["client"]) == ("ntlm-offered", CLIENT_IP)


def test_proxy_protocol_is_believed_from_anyone(farm, realm, kdc):
    """mod_remoteip has no list of trusted senders for the PROXY protocol: a
    client that reaches the node's port directly and speaks it first is
    logged as whatever address it wrote. A client that does not speak it
    is refused. Hence docs/load-balancing.md: only the balancer may reach
    the nodes' port (firewall, or Listen on an inside address)."""
    if kdc.kind != "mit":
        pytest.skip("no KDC involved: the MIT run shows it")
    node, proxy = farm("proxy", tls=True)
    emark = node.error_log_mark()
    ctx = ssl.create_default_context(cafile=node.cafile)
    sock = socket.create_connection((node.ip, node.port), 10,
                                    source_address=(CLIENT_IP, 0))
    sock.sendall(f"PROXY TCP4 {SPOOFED} {node.ip} 40000 {node.port}\r\n".encode())
    with ctx.wrap_socket(sock, server_hostname=kdc.host("vip")) as tls:
        tls.sendall(f"GET /private/ HTTP/1.1\r\nHost: {kdc.host('vip')}:{node.port}\r\n"
                    f"Authorization: {ntlm_header()}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    failures = failure_lines(node, emark)
    assert [logged_clients(l) for l in failures] == [(SPOOFED, SPOOFED)], failures
    # no PROXY header: no service
    proc = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", CLIENT_IP,
         "--cacert", node.cafile, "--resolve", f"{kdc.host('vip')}:{node.port}:{node.ip}",
         f"https://{kdc.host('vip')}:{node.port}/private/"],
        capture_output=True, text=True, timeout=30)
    assert proc.stdout == "000"
