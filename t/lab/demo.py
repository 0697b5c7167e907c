#!/usr/bin/python3
"""mod_kdeleg demo: a throw-away realm, two load-balanced httpd nodes behind
haproxy and a back end, then alice's Negotiate requests end to end.

    demo.py --module PATH [--dir DIR] [--wait]   start and walk through
    demo.py --stop [DIR]                         stop it, remove DIR

Usually run through t/demo.  Every command of the walk-through is printed
before it runs, with its real output (tokens shortened).  The servers keep
running after the script exits (or, with --wait, until SIGTERM/SIGINT);
`demo.py --stop DIR` stops them by their recorded PIDs and removes DIR.
Without DIR, --stop stops the last demo (its dir is kept in LAST_FILE).

Layout (all on loopback, names from the realm's krb5.conf, no DNS):
    haproxy  127.0.0.10   vip.example.test, round robin over node1 + node2
    node1    127.0.0.2    keytab node1 (HTTP/vip + HTTP/node1 + HTTP/other)
    node2    127.0.0.3    keytab node2 (HTTP/vip + HTTP/node2)
    backend  127.0.0.4    keytab backend (HTTP/backend)
    /private/env.cgi on each: AuthType Negotiate, Require valid-user
    nodes: KdelegVirtualName vip, the FQDN fallback, sessions (one key file)
"""

import argparse
import base64
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdlab  # noqa: E402

LAST_FILE = "/tmp/kdeleg-demo.last"
VIP = "vip.example.test"
HAPROXY_IP = "127.0.0.10"
NODES = (("node1", "127.0.0.2"), ("node2", "127.0.0.3"))
BACKEND = ("backend", "127.0.0.4")
USER = "alice"
SHOWN_ENV = ("REMOTE_USER", "AUTH_TYPE", "GSS_NAME", "KDELEG_SPN", "KDELEG_ERROR",
             "KDELEG_AUTH_METHOD", "DEMO_NODE", "SERVER_ADDR")


class DemoError(RuntimeError):
    pass


def short(token, n=20):
    """Tokens are never printed in full."""
    return token if len(token) <= n else token[:n] + "…"


def hide_token(text):
    """A transfer token in a URL, shortened like every other credential."""
    return re.sub(r"(kdeleg-transfer=)([A-Za-z0-9_-]+)", lambda m: m.group(1) + short(m.group(2)),
                  text)


def banner(text):
    print(f"\n== {text}", flush=True)


def indent(text, prefix="   "):
    """text with each line indented, no trailing newline (for print)."""
    return "\n".join((prefix + line).rstrip() for line in text.rstrip("\n").splitlines())


# ------------------------------------------------------------------ setup

def lb_conf(node_url, keys):
    """The load-balanced names part of a node's configuration."""
    return f"""KdelegVirtualName {VIP}
KdelegNodeName {node_url}
KdelegFQDNRedirect On
KdelegSession On
KdelegSessionKeyFile {keys}
"""


def node_conf(realm, httpd_dir, keytab, spns, node_label, backend=None, lb=""):
    conf = f"""{lb}
KdelegKeytab {realm.keytab(keytab)}
KdelegServiceNames {" ".join(spns)}
SetEnv DEMO_NODE {node_label}
ScriptAlias /private/ "{httpd_dir}/cgi-bin/"
<Location /private>
    AuthType Negotiate
    Require valid-user
</Location>
"""
    if backend:
        # /app/ is proxied to the back end, which gets a fresh Negotiate
        # token made from alice's delegated ticket (S4U2Proxy).
        conf += f"""<Location /app/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/{backend.server_name}
    ProxyPass http://{backend.ip}:{backend.port}/private/
</Location>
"""
    return conf


def start_lab(base, module):
    t0 = time.monotonic()
    realm = kdlab.Realm(base).start()
    with open(realm.path("module_path"), "w") as f:
        f.write(module + "\n")
    t_realm = time.monotonic() - t0
    env = realm.env()
    httpds = {}
    name, ip = BACKEND
    h = kdlab.Httpd(base, name, ip, module_path=module)
    h.conf = node_conf(realm, h.dir, name, [f"HTTP/{name}.example.test"], name)
    backend = httpds[name] = h.start(env)
    keys = os.path.join(base, "session.keys")   # one file for every node
    with open(os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    # The balancer and the nodes listen on one port number, as in most
    # farms: a session cookie is bound to the port, so every node opens it.
    port = kdlab.shared_port(HAPROXY_IP, *(ip for _, ip in NODES))
    for name, ip in NODES:
        h = kdlab.Httpd(base, name, ip, port=port, module_path=module,
                        extra_modules=("proxy", "proxy_http", "socache_shmcb"))
        h.conf = node_conf(realm, h.dir, name,
                           [f"HTTP/{VIP}", f"HTTP/{name}.example.test"], name, backend,
                           lb_conf(f"http://{name}.example.test:{h.port}", keys))
        httpds[name] = h.start(env)
    proxy = kdlab.Haproxy(base, HAPROXY_IP, port,
                          [(httpds[n].ip, httpds[n].port) for n, _ in NODES]).start()
    t_all = time.monotonic() - t0
    print(f"realm {realm.realm} (slapd + krb5kdc, LDAP back end) up in {t_realm:.2f} s; "
          f"3 httpd + haproxy in {t_all - t_realm:.2f} s more")
    return realm, httpds, proxy


# ------------------------------------------------------------- walk-through

class Shell:
    """Runs client commands in alice's environment, printing them first."""

    def __init__(self, realm, ccache):
        self.env = {**kdlab.base_env(), **realm.env(ccache)}
        self.exports = (f"export KRB5_CONFIG={shlex.quote(self.env['KRB5_CONFIG'])} "
                        f"KRB5CCNAME={shlex.quote(self.env['KRB5CCNAME'])}")

    def run(self, args, input=None, note=None):
        shown = [hide_token(a) for a in args]
        print(f"$ {shlex.join(shown)}" + (f"    # {note}" if note else ""), flush=True)
        proc = subprocess.run(args, env=self.env, input=input, capture_output=True,
                              text=True, errors="replace")
        if proc.returncode != 0:
            raise DemoError(f"{shlex.join(args)} exited with {proc.returncode}:\n"
                            f"{proc.stdout}{proc.stderr}")
        return proc.stdout


def parse_http(raw):
    """curl -i output -> (status line, {lower header: value}, body); the last
    response when curl shows several (401 then 200 with --negotiate)."""
    parts = re.split(r"\r?\n\r?\n", raw)
    responses, i = [], 0
    while i < len(parts) and parts[i].startswith("HTTP/"):
        responses.append(parts[i])
        i += 1
    if not responses:
        raise DemoError(f"no HTTP response in curl output:\n{raw}")
    lines = responses[-1].splitlines()
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        headers[key] = headers[key] + "\n" + value if key in headers else value
    return lines[0], headers, "\n\n".join(parts[i:])


def cgi_env(body):
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def show_response(status, headers, body=None):
    print(indent(status))
    if "www-authenticate" in headers:
        value = headers["www-authenticate"]
        scheme, _, token = value.partition(" ")
        shown = f"{scheme} {short(token)}" if token else scheme
        print(indent(f"WWW-Authenticate: {shown}"))
    if "location" in headers:
        print(indent(f"Location: {hide_token(headers['location'])}"))
    if "referrer-policy" in headers:
        print(indent(f"Referrer-Policy: {headers['referrer-policy']}"))
    for cookie in headers.get("set-cookie", "").split("\n"):
        if cookie:
            name, _, rest = cookie.partition("=")
            value, _, attrs = rest.partition(";")
            print(indent(f"Set-Cookie: {name}={short(value)};{attrs}"))
    if body is not None:
        env = cgi_env(body)
        print(indent("-- body (env.cgi), selected lines:"))
        for key in SHOWN_ENV:
            if key in env:
                print(indent(f"{key}={env[key]}"))


def expect(cond, what):
    if not cond:
        raise DemoError(f"unexpected result: {what}")


def walk_through(realm, httpds, proxy, ccache):
    sh = Shell(realm, ccache)
    port = proxy.port
    vip_url = f"http://{VIP}:{port}/private/env.cgi"
    resolve = ["--resolve", f"{VIP}:{port}:{HAPROXY_IP}"]

    banner("0. Alice's Kerberos environment (the lab's krb5.conf, a fresh ccache)")
    print(f"$ {sh.exports}")

    banner(f"1. {USER} logs in")
    out = sh.run(["kinit", USER], input=kdlab.USERS[USER] + "\n",
                 note=f"password {kdlab.USERS[USER]!r} typed on stdin")
    print(indent(out.strip() or "(no output: TGT stored)"))

    banner(f"2. {USER}'s tickets")
    print(indent(sh.run(["klist"])))

    banner("3. No credentials: the VIP answers 401 and asks for Negotiate")
    out = sh.run(["curl", "-s", "-i", *resolve, vip_url],
                 note="status and WWW-Authenticate shown")
    status, headers, _ = parse_http(out)
    show_response(status, headers)
    expect(" 401" in status and headers.get("www-authenticate") == "Negotiate",
           f"wanted 401 + 'WWW-Authenticate: Negotiate', got {status!r}")

    banner("4. SPNEGO through haproxy, twice: round robin over node1 and node2")
    served = []
    for _ in range(2):
        out = sh.run(["curl", "-s", "-i", "--negotiate", "-u", ":", *resolve, vip_url])
        status, headers, body = parse_http(out)
        show_response(status, headers, body)
        env = cgi_env(body)
        expect(" 200" in status and env.get("REMOTE_USER") == realm.principal(USER),
               f"wanted 200 for {USER}, got {status!r}")
        expect(headers.get("www-authenticate", "").startswith("Negotiate "),
               "no mutual-authentication token in WWW-Authenticate")
        served.append(env.get("DEMO_NODE"))
        print()
    if len(set(served)) == 2:
        print(f"served by {served[0]}, then {served[1]}; both accepted the "
              f"HTTP/{VIP} ticket (KDELEG_SPN) with their own keytab")
    else:
        print(f"NOTE: both requests were served by {served[0]} (haproxy's round "
              f"robin also counted the 401 legs)")

    banner(f"5. {USER} now holds a service ticket for HTTP/{VIP}")
    out = sh.run(["klist"])
    print(indent(out))
    expect(f"HTTP/{VIP}@" in out, f"no HTTP/{VIP} ticket in klist")

    banner(f"6. Constrained delegation: {USER} -> VIP -> node -> back end, as {USER}")
    b = httpds["backend"]
    b_host = "backend.example.test"
    app_url = f"http://{VIP}:{port}/app/env.cgi"
    mark = realm.kdc_log_mark()
    out = sh.run(["curl", "-s", "-i", "--negotiate", "-u", ":", *resolve, app_url],
                 note="the node proxies to the back end with a token made for alice")
    status, headers, body = parse_http(out)
    show_response(status, headers, body)
    env = cgi_env(body)
    expect(" 200" in status and env.get("REMOTE_USER") == realm.principal(USER)
           and env.get("DEMO_NODE") == "backend",
           f"wanted 200 from the back end for {USER}, got {status!r}")
    print(f"the back end (DEMO_NODE={env.get('DEMO_NODE')}) authenticated "
          f"{env.get('REMOTE_USER')} with a ticket for {env.get('KDELEG_SPN')}")
    s4u = [line for line in realm.kdc_log_since(mark)
           if "TGS_REQ" in line and f"for HTTP/{b_host}@" in line]
    print("the KDC log shows the node's S4U2Proxy request (the impersonator is the VIP "
          "identity the client's ticket was for):")
    for line in s4u[:2]:
        print(indent("TGS_REQ ISSUE " + line.rsplit("}, ", 1)[-1]))
    out = sh.run(["klist"], note=f"{USER} herself never asked for HTTP/{b_host}")
    print(indent(out))
    expect(f"HTTP/{b_host}@" not in out, f"{USER} should hold no back-end ticket")

    banner("7. The back end, directly (its own keytab, HTTP/backend)")
    b_url = f"http://{b_host}:{b.port}/private/env.cgi"
    out = sh.run(["curl", "-s", "-i", "--negotiate", "-u", ":", "--resolve",
                  f"{b_host}:{b.port}:{b.ip}", b_url])
    status, headers, body = parse_http(out)
    show_response(status, headers, body)
    expect(" 200" in status and cgi_env(body).get("REMOTE_USER") == realm.principal(USER),
           f"wanted 200 for {USER} from the back end, got {status!r}")

    fallback(sh, httpds, proxy, resolve, vip_url)
    return sh


def fallback(sh, httpds, proxy, resolve, vip_url):
    """A client that offers NTLM on the VIP: sent to the node's own name,
    Kerberos there, back to the VIP with a one-time transfer token that the
    VIP exchanges for its own host-only session cookie."""
    banner("8. The FQDN fallback: a client offers NTLM on the VIP name")
    jar = os.path.join(os.path.dirname(sh.env["KRB5CCNAME"].replace("FILE:", "")),
                       "demo-cookies.txt")
    nodes = [f"{n}.example.test:{h.port}:{h.ip}" for n, h in httpds.items() if n != "backend"]
    resolve_all = resolve + [arg for n in nodes for arg in ("--resolve", n)]
    out = sh.run(["curl", "-s", "-i", "--ntlm", "-u", f"{USER}:not-used", "-c", jar, *resolve,
                  vip_url],
                 note="curl starts an NTLM handshake, as a browser without a VIP ticket would")
    status, headers, _ = parse_http(out)
    show_response(status, headers)
    location = headers.get("location", "")
    expect(" 302" in status and "kdeleg-return=" in location
           and "kdeleg_state=" in headers.get("set-cookie", ""),
           f"wanted a redirect to the node name and a state cookie, got {status!r}")
    print(f"the node sent the client to its own name: {location.split('?')[0]}")

    out = sh.run(["curl", "-s", "-i", "--negotiate", "-u", ":", *resolve_all, location],
                 note="Kerberos for HTTP/<node name> works; no cookie here, a transfer token")
    status, headers, _ = parse_http(out)
    show_response(status, headers)
    back = headers.get("location", "")
    expect(" 302" in status and back.startswith(f"http://{VIP}:{proxy.port}/")
           and "kdeleg-transfer=" in back and "set-cookie" not in headers,
           f"wanted a redirect back to the VIP with a transfer token, got {status!r}")

    out = sh.run(["curl", "-s", "-i", "-b", jar, "-c", jar, *resolve, back],
                 note="back on the VIP: token + state cookie give a host-only session")
    status, headers, _ = parse_http(out)
    show_response(status, headers)
    expect(" 302" in status and "kdeleg-transfer" not in headers.get("location", "x")
           and "kdeleg_session=" in headers.get("set-cookie", ""),
           f"wanted the token-dropping redirect with a session cookie, got {status!r}")

    out = sh.run(["curl", "-s", "-i", "-b", jar, *resolve, vip_url],
                 note="the bookmarkable VIP URL, served from the session on either node")
    status, headers, body = parse_http(out)
    show_response(status, headers, body)
    env = cgi_env(body)
    expect(" 200" in status and env.get("KDELEG_AUTH_METHOD") == "session",
           f"wanted 200 from the session, got {status!r}")
    os.unlink(jar)


def print_hands_on(base, realm, httpds, proxy, sh, wait):
    banner("Try it yourself")
    print(sh.exports)
    print(f"curl --negotiate -u : --resolve {VIP}:{proxy.port}:{HAPROXY_IP} "
          f"http://{VIP}:{proxy.port}/private/env.cgi")
    print("\nURLs (add --resolve NAME:PORT:IP as above, the names are not in DNS):")
    print(f"  vip      http://{VIP}:{proxy.port}/private/env.cgi  -> {HAPROXY_IP} (haproxy)")
    for name, h in httpds.items():
        print(f"  {name:<8} http://{name}.example.test:{h.port}/private/env.cgi  -> {h.ip}")
    print(f"\nLogs: {base}/<node>/logs/error.log, KDC {realm.kdc_log}")
    if wait:
        print("\nServers run until this process gets SIGTERM or Ctrl-C.")
    else:
        print(f"\nServers keep running. Stop them and remove {base}:")
        print(f"  t/demo --stop {base}")
        print(f"  (or: /usr/bin/python3 t/lab/kdlab.py stop --dir {base} && rm -rf {base})")


# ------------------------------------------------------------------ stop

def looks_like_lab(base):
    return os.path.isdir(base) and (os.path.exists(os.path.join(base, "realm.json"))
                                    or os.path.isdir(os.path.join(base, "pids")))


def recorded(base):
    """PIDs of every recorded server and its descendants, now."""
    try:
        names = [f[:-4] for f in os.listdir(os.path.join(base, "pids"))
                 if f.endswith(".pid")]
    except FileNotFoundError:
        return []
    pids = [p for p in (kdlab.recorded_pid(base, n) for n in names) if p]
    return pids + [d for p in pids for d in kdlab.descendants(p)]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def stop(base):
    base = os.path.abspath(base)
    if not looks_like_lab(base):
        raise DemoError(f"{base} is not a demo lab directory (no realm.json or pids/)")
    pids = recorded(base)
    t0 = time.monotonic()
    kdlab.stop_all(base)
    left = [p for p in pids if alive(p)]
    if left:
        raise DemoError(f"still running after stop: {left}; {base} kept")
    shutil.rmtree(base)
    try:
        with open(LAST_FILE) as f:
            if os.path.abspath(f.read().strip()) == base:
                os.unlink(LAST_FILE)
    except OSError:
        pass
    print(f"stopped {len(pids)} processes in {time.monotonic() - t0:.1f} s "
          f"and removed {base}")


def last_demo():
    try:
        with open(LAST_FILE) as f:
            return f.read().strip() or None
    except OSError:
        return None


# ------------------------------------------------------------------ main

def wait_for_signal(base):
    stopping = []

    def handler(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stopping:
        if any(kdlab.recorded_pid(base, n) is None for n in
               ("slapd", "krb5kdc", "haproxy", "httpd-node1", "httpd-node2",
                "httpd-backend")):
            print("a demo server died: stopping the rest", file=sys.stderr)
            stop(base)
            return 1
        time.sleep(1)
    print(f"\nsignal {stopping[0]}: stopping the demo")
    stop(base)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", help="the built mod_kdeleg.so")
    ap.add_argument("--dir", help="lab directory (default: a fresh /tmp/kdeleg-demo-*)")
    ap.add_argument("--wait", action="store_true",
                    help="stay in the foreground until SIGTERM/SIGINT, then stop")
    ap.add_argument("--stop", nargs="?", const="", metavar="DIR",
                    help="stop the demo in DIR (default: the last one) and remove DIR")
    args = ap.parse_args(argv)

    if args.stop is not None:
        base = args.stop or last_demo()
        if not base:
            print(f"no demo to stop ({LAST_FILE} is absent): give its directory",
                  file=sys.stderr)
            return 1
        try:
            stop(base)
        except DemoError as e:
            print(f"demo: {e}", file=sys.stderr)
            return 1
        return 0

    if not args.module or not os.path.exists(args.module):
        ap.error(f"--module: built mod_kdeleg.so needed ({args.module or 'missing'})")
    module = os.path.abspath(args.module)
    previous = last_demo()
    if previous and looks_like_lab(previous) and recorded(previous):
        print(f"NOTE: an earlier demo still runs in {previous} "
              f"(stop it with: t/demo --stop {previous})")

    if args.dir:
        base = os.path.abspath(args.dir)
        os.makedirs(base, exist_ok=True)
    else:
        base = tempfile.mkdtemp(prefix="kdeleg-demo-", dir="/tmp")
    os.chmod(base, 0o755)  # httpd children (www-data) must reach their keytabs
    with open(LAST_FILE, "w") as f:
        f.write(base + "\n")
    print(f"demo directory: {base}")

    try:
        realm, httpds, proxy = start_lab(base, module)
    except BaseException as e:
        print(f"demo: the lab did not start: {e}", file=sys.stderr)
        kdlab.stop_all(base)
        shutil.rmtree(base, ignore_errors=True)
        if os.path.exists(LAST_FILE) and last_demo() == base:
            os.unlink(LAST_FILE)
        return 1

    ccache = realm.path("ccache", f"{USER}-demo.cc")
    try:
        sh = walk_through(realm, httpds, proxy, ccache)
    except DemoError as e:
        print(f"\ndemo: {e}", file=sys.stderr)
        print(f"The servers are left running for inspection; stop them with: "
              f"t/demo --stop {base}", file=sys.stderr)
        return 1
    print_hands_on(base, realm, httpds, proxy, sh, args.wait)
    if args.wait:
        return wait_for_signal(base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
