"""The Active Directory lab itself (t/lab/adlab.py, a Samba AD DC): the
facts mod_kdeleg relies on when its realm is AD rather than MIT.  Each test
asserts something that fails if the DC, the accounts or the keytabs are not
as the other tests assume; the KDC's own log lines are the evidence."""

import itertools
import os
import pwd
import re
import time

import pytest

import adlab
import kdlab
from kdnames import BADOPTION

_numbers = itertools.count(1)


def ccache(ad, name):
    return ad.path("ccache", f"{name}-{next(_numbers)}.cc")


def principals_in(path):
    return {p for _, p, _ in kdlab.keytab_entries(path)}


def service_tgt(ad, account, keytab):
    """The front end's own TGT, taken as the account (as AD requires)."""
    return ad.kinit(account, ccache(ad, account.rstrip("$")), keytab=ad.keytab(keytab))


def s4u(ad, cc, user, *args):
    """kvno -U user ARGS from the service ccache cc: (CompletedProcess,
    the KDC's request lines meanwhile)."""
    mark = ad.kdc_log_mark()
    proc = ad.run(["kvno", "-U", user, *args], cc, check=False)
    return proc, ad.kdc_log_since(mark)


def flags_of(ad, cc, server, client):
    """The klist -f flags of the ticket for server issued to client."""
    out = ad.run(["klist", "-f"], cc).stdout
    pattern = (re.escape(server) + r"\n\s+for client " + re.escape(client) +
               r", renew until [^,]*, Flags: (\w+)")
    m = re.search(pattern, out)
    assert m, f"no ticket for {server} (client {client}) in:\n{out}"
    return m[1]


def line_with(lines, *parts):
    found = [line for line in lines if all(p in line for p in parts)]
    assert found, f"no KDC line with {parts} in:\n" + "\n".join(lines)
    return found[-1]


# ------------------------------------------------------------ the DC

def test_dc_runs_and_is_recorded(ad_realm):
    pid = kdlab.recorded_pid(ad_realm.base, "samba")
    assert pid
    assert os.readlink(f"/proc/{pid}/exe") == adlab.SAMBA
    assert ad_realm.kind == "ad" and kdlab.Realm.kind == "mit"
    assert ad_realm.realm == "AD.EXAMPLE.TEST" and ad_realm.netbios == "ADEX"


def test_kinit_alice(ad_realm):
    mark = ad_realm.kdc_log_mark()
    cc = ad_realm.kinit("alice", ccache(ad_realm, "alice"))
    out = ad_realm.run(["klist"], cc).stdout
    assert "Default principal: alice@AD.EXAMPLE.TEST" in out
    assert "krbtgt/AD.EXAMPLE.TEST@AD.EXAMPLE.TEST" in out
    line_with(ad_realm.kdc_log_since(mark), "AS-REQ SUCCESS", "alice@AD.EXAMPLE.TEST",
              "krbtgt/AD.EXAMPLE.TEST@AD.EXAMPLE.TEST")


def test_wrong_password_refused(ad_realm):
    with pytest.raises(kdlab.LabError, match="Password incorrect"):
        ad_realm.kinit("alice", ccache(ad_realm, "alice"), password="wrong")


def test_directory_state(ad_realm):
    """The account settings the lab promises, read back from sam.ldb."""
    ad = ad_realm
    attrs = ["userAccountControl", "msDS-AllowedToDelegateTo", "servicePrincipalName",
             "msDS-SupportedEncryptionTypes", "userPrincipalName"]
    names = ["websvc", "NODE2$", "othersvc", "legacy", "alice", "carol", "dave", "erin"]
    got = dict(zip(names, ad.samdb([{"op": "get", "account": n, "attrs": attrs}
                                    for n in names])))

    def uac(name):
        return int(got[name]["userAccountControl"][0])

    assert uac("websvc") & adlab.UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION
    assert not uac("NODE2$") & adlab.UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION
    assert uac("NODE2$") & adlab.UF_WORKSTATION_TRUST_ACCOUNT
    assert uac("carol") & adlab.UF_NOT_DELEGATED
    assert uac("dave") & adlab.UF_ACCOUNTDISABLE
    assert not uac("alice") & (adlab.UF_NOT_DELEGATED | adlab.UF_ACCOUNTDISABLE)
    assert set(got["websvc"]["msDS-AllowedToDelegateTo"]) == {ad.spn(s) for s in (
        "HTTP/backend", "postgres/db", "MSSQLSvc/sql:1433", "HTTP/legacy")}
    assert set(got["NODE2$"]["msDS-AllowedToDelegateTo"]) == {
        "HTTP/backend.ad.example.test", "postgres/db.ad.example.test"}
    assert got["othersvc"]["msDS-AllowedToDelegateTo"] == []
    assert set(got["NODE2$"]["servicePrincipalName"]) == {"HOST/node2.ad.example.test",
                                                          "HOST/NODE2"}
    assert got["NODE2$"]["msDS-SupportedEncryptionTypes"] == ["24"]
    assert got["legacy"]["msDS-SupportedEncryptionTypes"] == ["4"]
    assert got["erin"]["userPrincipalName"] == ["erin.x@corp.example"]
    # delegation() finds an account by SPN too, and answers principals.
    assert set(ad.delegation(ad.service("HTTP/vip"))) == {
        ad.principal(v) for v in got["websvc"]["msDS-AllowedToDelegateTo"]}
    assert ad.service("MSSQLSvc/sql:1433") == \
        "MSSQLSvc/sql.ad.example.test:1433@AD.EXAMPLE.TEST"


# ------------------------------------------------------------ keytabs

def test_keytab_contents(ad_realm):
    ad, svc = ad_realm, ad_realm.service
    assert principals_in(ad.keytab("node1")) == {
        ad.account("websvc"), svc("HTTP/vip"), svc("HTTP/node1"),
        ad.account("othersvc"), svc("HTTP/other")}
    # No HTTP/node2 entry: tickets for it are issued under NODE2$'s key.
    assert principals_in(ad.keytab("node2")) == {
        ad.account("websvc"), svc("HTTP/vip"), ad.account("NODE2$"), svc("host/node2")}
    assert principals_in(ad.keytab("backend")) == {ad.account("backend"), svc("HTTP/backend")}
    assert principals_in(ad.keytab("db")) == {ad.account("pgsvc"), svc("postgres/db")}
    assert principals_in(ad.keytab("sql")) == {ad.account("sqlsvc"),
                                               svc("MSSQLSvc/sql:1433")}
    for user in ("alice", "bob"):
        assert principals_in(ad.keytab(user)) == {ad.principal(user)}
    entries = kdlab.keytab_entries(ad.keytab("node1"))
    # The account entry has every enctype, SPN entries only AES (enctypes 24).
    assert {e for _, p, e in entries if p == ad.account("websvc")} >= {
        "aes256-cts-hmac-sha1-96", "DEPRECATED:arcfour-hmac"}
    assert {e for _, p, e in entries if p == svc("HTTP/vip")} == {
        "aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"}
    assert {e for _, p, e in kdlab.keytab_entries(ad.keytab("legacy"))
            if p == svc("HTTP/legacy")} == {"DEPRECATED:arcfour-hmac"}
    assert {k for k, _, _ in entries} == {ad.kdc_kvno("websvc"), ad.kdc_kvno("othersvc")}
    if os.geteuid() == 0:
        st = os.stat(ad.keytab("node1"))
        assert st.st_mode & 0o777 == 0o640
        assert st.st_gid == pwd.getpwnam("www-data").pw_gid


def test_tgt_only_as_the_account(ad_realm):
    """AD issues a TGT to the account, never to an SPN (MIT accepts both)."""
    ad = ad_realm
    cc = service_tgt(ad, "websvc", "node1")
    assert "Default principal: websvc@AD.EXAMPLE.TEST" in ad.run(["klist"], cc).stdout
    for spn, keytab in (("HTTP/vip", "node1"), ("host/node2", "node2")):
        with pytest.raises(kdlab.LabError, match="not found in Kerberos database"):
            ad.kinit(ad.service(spn), ccache(ad, "spn"), keytab=ad.keytab(keytab))
    service_tgt(ad, "NODE2$", "node2")


def test_vip_ticket_decrypts_with_node1_keytab(ad_realm):
    ad = ad_realm
    cc = ad.kinit("alice", ccache(ad, "alice"))
    proc = ad.run(["kvno", "-k", ad.keytab("node1"), ad.service("HTTP/vip")], cc)
    assert "keytab entry valid" in proc.stdout
    # AES (msDS-SupportedEncryptionTypes 24), not AD's RC4 default.
    assert "aes256-cts-hmac-sha1-96, aes256-cts-hmac-sha1-96" in \
        ad.run(["klist", "-e"], cc).stdout
    proc = ad.run(["kvno", "-k", ad.keytab("backend"), ad.service("HTTP/vip")], cc,
                  check=False)
    assert proc.returncode != 0


def test_http_node2_issued_under_node2_key(ad_realm):
    """sPNMappings: HTTP/node2 is an alias of HOST/node2 (NODE2$'s key)."""
    ad = ad_realm
    cc = ad.kinit("alice", ccache(ad, "alice"))
    proc = ad.run(["kvno", "-k", ad.keytab("node2"), ad.service("HTTP/node2")], cc)
    assert "keytab entry valid" in proc.stdout
    proc = ad.run(["kvno", "-k", ad.keytab("node1"), ad.service("HTTP/node2")], cc,
                  check=False)
    assert proc.returncode != 0


def test_legacy_service_gets_rc4_tickets(ad_realm):
    ad = ad_realm
    cc = ad.kinit("bob", ccache(ad, "bob"))
    ad.run(["kvno", "-k", ad.keytab("legacy"), ad.service("HTTP/legacy")], cc)
    out = ad.run(["klist", "-e"], cc).stdout
    assert re.search(r"HTTP/legacy\.ad\.example\.test@AD\.EXAMPLE\.TEST\n[^\n]*"
                     r"Etype \(skey, tkt\): [^,]+, DEPRECATED:arcfour-hmac", out), out


# ------------------------------------------------------------ S4U

@pytest.mark.parametrize("target", ["HTTP/backend", "postgres/db", "MSSQLSvc/sql:1433",
                                    "HTTP/legacy"])
def test_s4u2proxy_websvc_alice(ad_realm, target):
    ad = ad_realm
    cc = service_tgt(ad, "websvc", "node1")
    proc, lines = s4u(ad, cc, "alice", "-P", ad.service(target))
    assert proc.returncode == 0, proc.stderr
    # S4U2Self: websvc's ticket for alice, forwardable (protocol transition).
    assert "F" in flags_of(ad, cc, ad.account("websvc"), "alice@AD.EXAMPLE.TEST")
    line = line_with(lines, "TGS-REQ SUCCESS", f" {ad.service(target)} ",
                     "impersonatee=alice@AD.EXAMPLE.TEST")
    assert "cname-in-addl-tkt" in line
    assert "armor_client_name=websvc@AD.EXAMPLE.TEST" in line


def test_s4u2proxy_refused_for_sensitive_carol(ad_realm):
    ad = ad_realm
    cc = service_tgt(ad, "websvc", "node1")
    proc, lines = s4u(ad, cc, "carol", "-P", ad.service("HTTP/backend"))
    assert proc.returncode != 0
    assert BADOPTION in proc.stderr
    assert "F" not in flags_of(ad, cc, ad.account("websvc"), "carol@AD.EXAMPLE.TEST")
    line_with(lines, "TGS-REQ ERR_BADOPTION", "impersonatee=carol@AD.EXAMPLE.TEST",
              "reason=Missing forwardable flag on ticket for constrained delegation")


def test_node2_without_protocol_transition(ad_realm):
    """NODE2$ may delegate to HTTP/backend but not use any protocol: its
    S4U2Self ticket is not forwardable, so S4U2Proxy fails."""
    ad = ad_realm
    cc = service_tgt(ad, "NODE2$", "node2")
    proc, lines = s4u(ad, cc, "alice", ad.account("NODE2$"))
    assert proc.returncode == 0, proc.stderr
    flags = flags_of(ad, cc, ad.account("NODE2$"), "alice@AD.EXAMPLE.TEST")
    assert "F" not in flags and "R" in flags
    line = line_with(lines, "TGS-REQ SUCCESS", "alice@AD.EXAMPLE.TEST NODE2$@AD.EXAMPLE.TEST")
    assert "forwardable" not in line.split("flags=")[1].split()[0]
    proc, lines = s4u(ad, cc, "alice", "-P", ad.service("HTTP/backend"))
    assert proc.returncode != 0 and BADOPTION in proc.stderr
    line_with(lines, "TGS-REQ ERR_BADOPTION", "NODE2$@AD.EXAMPLE.TEST",
              "reason=Missing forwardable flag")


def test_nonforwardable_service_tgt_refused(ad_realm):
    """A service TGT without the forwardable flag: the same answer as for
    a sensitive user (AD cannot tell the three causes apart)."""
    ad = ad_realm
    cc = ccache(ad, "websvc-F")
    ad.run(["kinit", "-F", "-k", "-t", ad.keytab("node1"), "-c", "FILE:" + cc,
            ad.account("websvc")], cc)
    assert "F" not in re.search(r"krbtgt/\S+\n\s+renew until [^,]*, Flags: (\w+)",
                                ad.run(["klist", "-f"], cc).stdout)[1]
    proc, lines = s4u(ad, cc, "alice", "-P", ad.service("HTTP/backend"))
    assert proc.returncode != 0 and BADOPTION in proc.stderr
    line_with(lines, "TGS-REQ ERR_BADOPTION", "impersonatee=alice@AD.EXAMPLE.TEST",
              "reason=Missing forwardable flag")


def test_target_not_in_list_refused(ad_realm):
    ad = ad_realm
    cc = service_tgt(ad, "websvc", "node1")
    proc, lines = s4u(ad, cc, "alice", "-P", ad.service("HTTP/other"))
    assert proc.returncode != 0 and BADOPTION in proc.stderr
    line_with(lines, "TGS-REQ ERR_BADOPTION", "HTTP/other.ad.example.test",
              "reason=Constrained delegation not allowed")


def test_disabled_dave_refused(ad_realm):
    ad = ad_realm
    # His own logon: KDC_ERR_CLIENT_REVOKED (18).
    with pytest.raises(kdlab.LabError, match="credentials have been revoked"):
        ad.kinit("dave", ccache(ad, "dave"))
    # S4U2Self for him: KDC_ERR_POLICY.
    cc = service_tgt(ad, "websvc", "node1")
    proc, lines = s4u(ad, cc, "dave", "-P", ad.service("HTTP/backend"))
    assert proc.returncode != 0
    assert "KDC policy rejects request" in proc.stderr
    line_with(lines, "TGS-REQ ERR_POLICY", "reason=Principal may not act as client")


def test_enterprise_upn_erin(ad_realm):
    ad = ad_realm
    cc = ad.kinit("erin.x@corp.example", ccache(ad, "erin"))
    assert r"Default principal: erin.x\@corp.example@AD.EXAMPLE.TEST" in \
        ad.run(["klist"], cc).stdout
    # Without -E the name is a principal of the realm corp.example: unknown.
    with pytest.raises(kdlab.LabError):
        ad.kinit("erin.x@corp.example", ccache(ad, "erin"), enterprise=False)
    svc = service_tgt(ad, "websvc", "node1")
    proc, lines = s4u(ad, svc, "erin.x@corp.example", "-P", ad.service("HTTP/backend"))
    assert proc.returncode == 0, proc.stderr
    line = line_with(lines, "TGS-REQ SUCCESS", "HTTP/backend.ad.example.test",
                     r"impersonatee=erin.x\@corp.example@AD.EXAMPLE.TEST")
    assert "canon_client_name=erin@AD.EXAMPLE.TEST" in line


def test_delegation_settings_are_live(ad_realm):
    """Changes in sam.ldb reach the running KDC at its next request."""
    ad = ad_realm
    saved = ad.delegation("websvc")
    cc = service_tgt(ad, "websvc", "node1")
    try:
        ad.set_delegation("websvc", ["HTTP/backend"])
        assert ad.delegation("websvc") == [ad.service("HTTP/backend")]
        proc, lines = s4u(ad, cc, "bob", "-P", ad.service("postgres/db"))
        assert proc.returncode != 0
        line_with(lines, "TGS-REQ ERR_BADOPTION", "reason=Constrained delegation not allowed")

        ad.set_protocol_transition("websvc", False)
        proc, lines = s4u(ad, cc, "alice", "-P", ad.service("HTTP/backend"))
        assert proc.returncode != 0
        line_with(lines, "TGS-REQ ERR_BADOPTION", "impersonatee=alice@AD.EXAMPLE.TEST",
                  "reason=Missing forwardable flag")
    finally:
        ad.set_protocol_transition("websvc", True)
        ad.set_delegation("websvc", saved)
    assert set(ad.delegation("websvc")) == set(saved)
    proc, _ = s4u(ad, cc, "bob", "-P", ad.service("postgres/db"))
    assert proc.returncode == 0, proc.stderr

    try:
        ad.set_sensitive("bob", True)
        proc, lines = s4u(ad, service_tgt(ad, "websvc", "node1"), "bob", "-P",
                          ad.service("HTTP/backend"))
        assert proc.returncode != 0
        line_with(lines, "TGS-REQ ERR_BADOPTION", "impersonatee=bob@AD.EXAMPLE.TEST")
    finally:
        ad.set_sensitive("bob", False)
    assert not ad.uac("bob") & adlab.UF_NOT_DELEGATED


def test_rekey_moves_kdc_ahead_of_keytab(ad_realm):
    ad = ad_realm
    ad.add_service_account("rekeysvc", ["HTTP/rekey"])
    keytab = ad.path("keytabs", "rekey.keytab")
    ad.ktadd("rekeysvc", keytab)
    ad.ktadd(ad.service("HTTP/rekey"), keytab)
    old = ad.kdc_kvno("rekeysvc")
    assert {k for k, _, _ in kdlab.keytab_entries(keytab)} == {old}
    cc = ad.kinit("alice", ccache(ad, "alice"))
    ad.run(["kvno", "-k", keytab, ad.service("HTTP/rekey")], cc)

    assert ad.rekey("rekeysvc") == old + 1
    cc = ad.kinit("alice", ccache(ad, "alice"))
    proc = ad.run(["kvno", "-k", keytab, ad.service("HTTP/rekey")], cc, check=False)
    assert proc.returncode != 0
    assert f"kvno = {old + 1}, keytab entry invalid" in proc.stderr


# ------------------------------------------------------------ both realms

def test_combined_krb5_conf(ad_realm, realm):
    """One krb5.conf: a client holds TGTs of both realms and gets service
    tickets from each KDC by host name."""
    conf = adlab.combined_krb5_conf(ad_realm.path("both-krb5.conf"), realm, ad_realm)
    for r, host in ((realm, "node1.example.test"), (ad_realm, "vip.ad.example.test")):
        cc = ccache(ad_realm, f"both-{r.kind}")
        env = {**kdlab.base_env(), **r.env(cc), "KRB5_CONFIG": conf}
        password = kdlab.USERS["alice"]
        kdlab._run(["kinit", "-c", "FILE:" + cc, f"alice@{r.realm}"], env,
                   input=password + "\n")
        out = kdlab._run(["kvno", "-S", "HTTP", host], env).stdout
        assert f"HTTP/{host}@{r.realm}: kvno" in out


# ------------------------------------------------------------ snapshot

def test_snapshot_is_cached(ad_realm):
    path = ad_realm.snapshot
    assert os.path.exists(path) and adlab.snapshot_key() in os.path.basename(path)
    before = os.stat(path).st_mtime_ns
    t0 = time.monotonic()
    again, built = adlab.ensure_snapshot()
    assert (again, built) == (path, False)
    assert time.monotonic() - t0 < 2
    assert os.stat(path).st_mtime_ns == before
    # Restore + start of the session realm took seconds.
    assert ad_realm.timings["restore"] + ad_realm.timings["samba"] < 15, ad_realm.timings


def test_kdc_restart_and_fresh_restore(ad_realm, tmp_path_factory):
    """stop_kdc/start_kdc for KDC-down tests, and a second realm restored
    from the snapshot (while the session's is down) starts in seconds."""
    ad = ad_realm
    ad.stop_kdc()
    assert kdlab.recorded_pid(ad.base, "samba") is None
    with pytest.raises(kdlab.LabError, match="Cannot contact any KDC"):
        ad.kinit("alice", ccache(ad, "alice"))
    other = adlab.ADRealm(str(tmp_path_factory.mktemp("ad-restore")))
    try:
        t0 = time.monotonic()
        other.start()
        took = time.monotonic() - t0
        assert other.snapshot_built is False
        assert took < 15, other.timings
        other.kinit("bob", other.path("ccache", "bob.cc"))
    finally:
        other.stop()
    t0 = time.monotonic()
    ad.start_kdc()
    assert time.monotonic() - t0 < 15
    ad.kinit("alice", ccache(ad, "alice"))
