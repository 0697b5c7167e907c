"""The README's first quick-start command keeps working: t/demo (without the
package step, which t/run-tests already did) shows alice authenticated
through haproxy on both nodes, and t/demo --stop leaves nothing behind."""

import os
import re
import subprocess

import kdlab
from conftest import REPO


def test_demo_end_to_end_and_stop(module_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
    proc = subprocess.run([os.path.join(REPO, "t", "demo"), "--no-deps"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout
    # the demo's own lab directory, from its last mention: on success in the
    # closing lines (stdout), on failure in the error message (stderr)
    mentions = re.findall(r"t/demo --stop (/\S*?kdeleg-demo-[A-Za-z0-9_]+)", out + proc.stderr)
    base = mentions[-1] if mentions else None
    try:
        assert proc.returncode == 0, out + proc.stderr
        assert out.count("REMOTE_USER=alice@EXAMPLE.TEST") >= 4  # 2 nodes, delegated, direct
        # the delegated request: the back end saw alice through a node
        assert "the back end (DEMO_NODE=backend) authenticated alice@EXAMPLE.TEST" in out
        assert ("TGS_REQ ISSUE HTTP/vip.example.test@EXAMPLE.TEST for "
                "HTTP/backend.example.test@EXAMPLE.TEST") in out
        assert "KDELEG_SPN=HTTP/vip.example.test@EXAMPLE.TEST" in out
        assert re.search(r"served by node\d, then node\d", out)
        assert "HTTP/1.1 401" in out and "WWW-Authenticate: Negotiate" in out
        # the FQDN fallback: NTLM on the VIP, the node name, a session, back on the VIP
        assert re.search(r"Location: http://node\d\.example\.test:\d+/private/env\.cgi"
                         r"\?kdeleg-return=http%3A%2F%2Fvip\.example\.test", out), out
        # ... back on the VIP with a one-time transfer token, exchanged for a cookie
        assert "kdeleg-transfer=" in out and "Set-Cookie: kdeleg_state=" in out
        assert not re.search(r"kdeleg-transfer=[A-Za-z0-9_-]{21}", out)  # tokens shortened
        assert "Set-Cookie: kdeleg_session=" in out and "KDELEG_AUTH_METHOD=session" in out
        assert not re.search(r"kdeleg_session=[A-Za-z0-9_-]{21}", out)  # cookies shortened
        assert base, out
        pids = [kdlab.recorded_pid(base, os.path.basename(f)[:-4])
                for f in os.listdir(os.path.join(base, "pids"))]
        assert len([p for p in pids if p]) >= 6  # slapd, kdc, 3 httpd, haproxy
    finally:
        if base:
            stop = subprocess.run([os.path.join(REPO, "t", "demo"), "--stop", base],
                                  cwd=REPO, capture_output=True, text=True, timeout=120)
            assert stop.returncode == 0, stop.stdout + stop.stderr
            assert not os.path.exists(base)
