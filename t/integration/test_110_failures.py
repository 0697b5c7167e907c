"""Every authentication failure cause, reproduced for real: the HTTP status,
the challenge, one KD00301 line naming the cause, KDELEG_ERROR, and never a
token in the log."""

import base64
import os
import shutil
import struct

import pytest

import kdclient
import kdlab
from conftest import MPMS, negotiate_conf
from kdmit import new_service
from kdnames import ENV_CGI, NODE1, VIP



@pytest.fixture(params=MPMS)
def node1(request, kd_httpd, realm):
    httpd = kd_httpd("node1-" + request.param, "127.0.0.2", mpm=request.param,
                     server_name=NODE1,
                     conf_fn=lambda d: negotiate_conf(realm, d, "node1",
                                                      [f"HTTP/{NODE1}", f"HTTP/{VIP}"]))
    httpd.allowed.add("KD00301")
    return httpd


def refused(httpd, authorization, expect_status=401):
    """Send one request; return the causes logged for it."""
    mark = httpd.error_log_mark()
    headers = {"Authorization": authorization} if authorization is not None else {}
    status, h, _ = kdclient.request(httpd, ENV_CGI, headers=headers)
    assert status == expect_status
    if status == 401:
        assert h["www-authenticate"] == "Negotiate"
    lines = httpd.error_log_since(mark)
    if authorization:
        token = authorization.partition(" ")[2]
        assert token[:24] not in "\n".join(lines), "token text leaked into the log"
    causes = kdclient.causes(lines)
    if causes and causes[-1] != "no-token":
        assert kdclient.status_agrees(httpd, causes[-1])
    return causes


def b64(raw):
    return base64.b64encode(raw).decode()


def der(tag, content):
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + content


def spnego_ntlm_only():
    ntlm_oid = der(0x06, bytes.fromhex("2b0601040182370202 0a".replace(" ", "")))
    spnego_oid = der(0x06, bytes.fromhex("2b0601050502"))
    init = der(0x30, der(0xa0, der(0x30, ntlm_oid)) + der(0xa2, der(0x04, kdclient.ntlm_type1())))
    return der(0x60, spnego_oid + der(0xa0, init))


# ------------------------------------------------------------ client problems

def test_malformed_tokens(node1, alice_ccache):
    good = kdclient.Token(alice_ccache, NODE1).raw
    cases = {
        "bad base64": "Negotiate !!!not-base64!!!",
        "truncated DER": "Negotiate " + b64(good[: len(good) // 2]),
        "64 KB of junk": "Negotiate " + b64(os.urandom(48 * 1024)),
        "oversized": "Negotiate " + "A" * 100000,
        "DER garbage": "Negotiate " + b64(b"\x60\x84\xff\xff\xff\xff" + os.urandom(64)),
    }
    for what, header in cases.items():
        assert refused(node1, header) == ["malformed-token"], what


def test_two_authorization_headers(node1, alice_ccache):
    t1 = kdclient.Token(alice_ccache, NODE1)
    t2 = kdclient.Token(alice_ccache, NODE1)
    mark = node1.error_log_mark()
    status, _, _ = kdclient.request(node1, ENV_CGI,
                                    headers={"Authorization": [t1.header, t2.header]})
    assert status == 401
    assert kdclient.causes(node1.error_log_since(mark)) == ["malformed-token"]


@pytest.mark.parametrize("header", [
    "Negotiate " + b64(kdclient.ntlm_type1()),
    "Negotiate " + b64(kdclient.ntlm_type1()[:8] + struct.pack("<I", 3) + b"\x00" * 52),
    "Negotiate " + b64(spnego_ntlm_only()),
    "NTLM " + b64(kdclient.ntlm_type1()),
], ids=["raw-type1", "raw-type3", "spnego-ntlm-only", "ntlm-scheme"])
def test_ntlm_is_detected_before_gss(node1, header):
    mark = node1.error_log_mark()
    assert refused(node1, header) == ["ntlm-offered"]
    line = kdclient.kd_lines(node1.error_log_since(mark), "KD00301")[0]
    assert line[0] == "info"  # a client problem
    assert "setspn" in line[2] and "auth-server-allowlist" in line[2]


def test_wrong_spn(node1, alice_ccache):
    """HTTP/other is in node1's keytab, but not among its service names."""
    tok = kdclient.Token(alice_ccache, "other.example.test")
    mark = node1.error_log_mark()
    assert refused(node1, tok.header) == ["wrong-spn"]
    msg = kdclient.kd_lines(node1.error_log_since(mark), "KD00301")[0][2]
    assert "HTTP/other.example.test@EXAMPLE.TEST" in msg


def test_error_is_visible_to_error_documents(kd_httpd, realm):
    httpd = kd_httpd("node1-errdoc", "127.0.0.2", server_name=NODE1,
                     conf_fn=lambda d: negotiate_conf(
                         realm, d, "node1", extra=f'''ScriptAlias /errors/ "{d}/cgi-bin/"
ErrorDocument 401 /errors/env.cgi
'''))
    httpd.allowed.add("KD00301")
    status, _, body = kdclient.request(httpd, ENV_CGI,
                                       headers={"Authorization": "Negotiate " + b64(kdclient.ntlm_type1())})
    assert status == 401
    assert kdclient.cgi_env(body)["REDIRECT_KDELEG_ERROR"] == "ntlm-offered"


# ------------------------------------------------------------ key problems

def service_httpd(kd_httpd, realm, name, host, keytab):
    httpd = kd_httpd(name, "127.0.0.5", server_name=host,
                     conf_fn=lambda d: negotiate_conf(realm, d, keytab))
    httpd.allowed.add("KD00301")
    return httpd


def test_key_version_mismatch_then_rotation_without_restart(kd_httpd, realm, alice_ccache):
    principal, keytab = new_service(realm, "stale.example.test")
    httpd = service_httpd(kd_httpd, realm, "stale", "stale.example.test", keytab)
    assert kdclient.negotiate(httpd, ENV_CGI, alice_ccache)[0] == 200
    new_kvno = realm.rekey(principal)  # password reset; keytab not re-exported
    ccache = realm.kinit("alice", realm.path("ccache", "alice-kvno.cc"))
    tok = kdclient.Token(ccache, "stale.example.test")
    mark = httpd.error_log_mark()
    assert refused(httpd, tok.header) == ["key-version-mismatch"]
    level, _, msg = kdclient.kd_lines(httpd.error_log_since(mark), "KD00301")[0]
    assert level == "warn"
    assert f"kvno {new_kvno}" in msg and "ktpass" in msg
    # the administrator re-exports the keytab: picked up without a restart
    realm.ktadd(principal, keytab)
    status, _, body, _ = kdclient.negotiate(httpd, ENV_CGI, ccache)
    assert status == 200, body


def test_decrypt_failed_like_a_duplicate_spn(kd_httpd, realm, alice_ccache):
    """The ticket is encrypted with a key the node lacks under the same kvno:
    what a duplicate SPN (or a reset without re-export) looks like."""
    principal, keytab = new_service(realm, "dup.example.test")
    kvno = realm.kdc_kvno(principal)
    realm.rekey(principal)
    realm.kadmin(f"modprinc -kvno {kvno} {realm.principal(principal)}")
    httpd = service_httpd(kd_httpd, realm, "dup", "dup.example.test", keytab)
    tok = kdclient.Token(alice_ccache, "dup.example.test")
    mark = httpd.error_log_mark()
    assert refused(httpd, tok.header) == ["decrypt-failed"]
    assert "setspn -X" in kdclient.kd_lines(httpd.error_log_since(mark), "KD00301")[0][2]
    cause, record = kdclient.last_failure(httpd)
    assert cause == "decrypt-failed" and "setspn -X" in record["fix_ad"]  # the duplicate-SPN hint


@pytest.mark.parametrize("offset", ["+10m", "-10m"])
def test_clock_skew(kd_httpd, realm, alice_ccache, offset):
    """Tickets obtained at real time, the acceptor's clock 10 minutes off."""
    httpd = kd_httpd("skewed", "127.0.0.6", server_name=NODE1, env=kdclient.faketime_env(offset),
                     conf_fn=lambda d: negotiate_conf(realm, d, "node1"))
    httpd.allowed.add("KD00301")
    tok = kdclient.Token(alice_ccache, NODE1)
    mark = httpd.error_log_mark()
    assert refused(httpd, tok.header) == ["clock-skew"]
    assert "w32tm" in kdclient.kd_lines(httpd.error_log_since(mark), "KD00301")[0][2]


# ------------------------------------------------------------ keytab problems

def test_keytab_missing_at_runtime_then_restored(kd_httpd, realm, alice_ccache, lab_dir):
    keytab = os.path.join(lab_dir, "keytabs", "runtime.keytab")
    shutil.copy(realm.keytab("node1"), keytab)
    kdlab._share_with_httpd(keytab, 0o640)
    httpd = kd_httpd("node1-rt", "127.0.0.2", server_name=NODE1,
                     conf_fn=lambda d: negotiate_conf(realm, d, keytab))
    httpd.allowed.add("KD00301")
    assert kdclient.negotiate(httpd, ENV_CGI, alice_ccache)[0] == 200
    os.rename(keytab, keytab + ".away")
    tok = kdclient.Token(alice_ccache, NODE1)
    mark = httpd.error_log_mark()
    assert refused(httpd, tok.header, expect_status=500) == ["keytab-unusable"]
    level, _, msg = kdclient.kd_lines(httpd.error_log_since(mark), "KD00301")[0]
    assert level == "error" and keytab in msg
    os.rename(keytab + ".away", keytab)
    assert kdclient.negotiate(httpd, ENV_CGI, alice_ccache)[0] == 200


def test_configured_spn_missing_from_keytab(kd_httpd, realm, alice_ccache):
    httpd = kd_httpd("node1-nokey", "127.0.0.2", server_name=NODE1,
                     conf_fn=lambda d: negotiate_conf(realm, d, "node1-novip",
                                                      [f"HTTP/{NODE1}", f"HTTP/{VIP}"]))
    httpd.allowed.add("KD00301")
    assert kdclient.negotiate(httpd, ENV_CGI, alice_ccache)[0] == 200
    tok = kdclient.Token(alice_ccache, VIP)
    assert refused(httpd, tok.header, expect_status=500) == ["keytab-unusable"]
    # the status page names the SPN the keytab lacks
    vhost = kdclient.status(httpd)["vhosts"][0]
    assert vhost["missing_spns"] == [f"HTTP/{VIP}"]
    assert kdclient.last_failure(httpd)[1]["spn"] == f"HTTP/{VIP}@EXAMPLE.TEST"


def start_expecting_failure(realm, module_path, name, conf, env=None):
    httpd = kdlab.Httpd(realm.base, name, "127.0.0.7", module_path=module_path, conf=conf)
    httpd.start_mark = httpd.error_log_mark()
    with pytest.raises(kdlab.LabError):
        httpd.start({**realm.env(), **(env or {})})
    httpd.stop()
    return [m for _, _, m in kdclient.kd_lines(httpd.error_log_since(httpd.start_mark), "KD00201")]


def test_startup_refuses_missing_keytab(realm, module_path):
    conf = """
<Location /app>
    AuthType Negotiate
    Require valid-user
    KdelegKeytab /nonexistent/http.keytab
</Location>
"""
    msgs = start_expecting_failure(realm, module_path, "badkeytab", conf)
    assert len(msgs) == 1
    assert "/nonexistent/http.keytab" in msgs[0] and "httpd.conf:" in msgs[0]
    assert "keytab-unusable" in msgs[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a root-only keytab")
def test_startup_refuses_keytab_unreadable_by_run_user(realm, module_path, lab_dir):
    keytab = os.path.join(lab_dir, "keytabs", "rootonly.keytab")
    shutil.copy(realm.keytab("node1"), keytab)
    os.chmod(keytab, 0o600)
    conf = f"KdelegKeytab {keytab}\n<Location /app>\n AuthType Negotiate\n Require valid-user\n</Location>\n"
    msgs = start_expecting_failure(realm, module_path, "rootkeytab", conf)
    assert len(msgs) == 1 and "not readable by user www-data" in msgs[0]


def test_startup_refuses_non_keytab(realm, module_path, lab_dir):
    bogus = os.path.join(lab_dir, "keytabs", "bogus.keytab")
    with open(bogus, "w") as f:
        f.write("not a keytab\n")
    kdlab._share_with_httpd(bogus, 0o640)
    conf = f"KdelegKeytab {bogus}\n<Location /app>\n AuthType Negotiate\n Require valid-user\n</Location>\n"
    msgs = start_expecting_failure(realm, module_path, "bogus", conf)
    assert len(msgs) == 1 and "not a keytab" in msgs[0]


def test_quoted_keytab_path_starts_and_serves(kd_httpd, realm, alice_ccache, lab_dir):
    """KdelegKeytab "/path with a space": the start-up check reads the path
    as httpd's parser does, without the quotes."""
    keytab = os.path.join(lab_dir, "keytabs", "quoted path.keytab")
    shutil.copy(realm.keytab("node1"), keytab)
    kdlab._share_with_httpd(keytab, 0o640)
    httpd = kd_httpd("node1-quoted", "127.0.0.2", server_name=NODE1,
                     conf_fn=lambda d: negotiate_conf(realm, d, f'"{keytab}"'))
    assert kdclient.negotiate(httpd, ENV_CGI, alice_ccache)[0] == 200


def test_unused_missing_keytab_does_not_stop_startup(kd_httpd, realm):
    """The contract's exception: a location that never authenticates."""
    httpd = kd_httpd("node1-unused", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: """
<Location /public>
    KdelegKeytab /nonexistent/unused.keytab
</Location>
""")
    assert kdclient.request(httpd, "/")[0] == 200


def test_startup_checks_default_keytab(realm, module_path, lab_dir):
    """No KdelegKeytab in scope: the krb5 default keytab (KRB5_KTNAME) is used,
    so it is the one checked."""
    missing = os.path.join(lab_dir, "keytabs", "no-such-default.keytab")
    conf = "<Location /app>\n AuthType Negotiate\n Require valid-user\n</Location>\n"
    msgs = start_expecting_failure(realm, module_path, "defaultkt", conf,
                                   env={"KRB5_KTNAME": "FILE:" + missing})
    assert len(msgs) == 1 and "default keytab" in msgs[0] and missing in msgs[0]


def test_startup_checks_vhost_keytab_used_by_main_server_location(realm, module_path):
    conf = """
<Location /app>
    AuthType Negotiate
    Require valid-user
</Location>
<VirtualHost *:*>
    ServerName node1.example.test
    KdelegKeytab /nonexistent/vhost.keytab
</VirtualHost>
"""
    msgs = start_expecting_failure(realm, module_path, "vhostkt", conf)
    assert len(msgs) == 1 and "/nonexistent/vhost.keytab" in msgs[0]
