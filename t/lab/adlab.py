#!/usr/bin/python3
"""adlab: an Active Directory realm for mod_kdeleg integration tests.

A Samba 4 AD domain controller (Heimdal KDC with AD semantics: PAC,
msDS-AllowedToDelegateTo, UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION,
NOT_DELEGATED, HTTP-to-HOST sPNMappings) holding the same cast as kdlab's MIT
realm, so a test can take either realm.  The DC listens on 127.0.0.53 with
the standard ports (88, 389): run it inside a private network namespace
(t/run-tests runs the whole pytest session in one).  Nothing uses DNS.

Provisioning and populating a domain takes several seconds, so the result
is built once and kept as a tarball (keyed by a hash of this file and the
Samba version) in $KDELEG_AD_CACHE (default /var/tmp/kdeleg-ad-cache);
start() restores it into the base directory and starts samba in seconds.

Standard library (plus kdlab) only; Samba's Python bindings are used in a
child process (`adlab.py _samdb`).  Run with /usr/bin/python3.

Library
-------
ADRealm(base_dir)   realm AD.EXAMPLE.TEST, domain ad.example.test, NetBIOS
                    ADEX, DC dc1 at 127.0.0.53; kind = "ad"
    start() / stop()        restore the snapshot (building it if missing),
                            start samba; stop it by recorded PID
    ADRealm.load(base_dir)  the ADRealm of a base directory
    usable() -> (ok, reason)  can a DC run here: Samba installed, root,
                            127.0.0.53 on lo or a private network namespace
                            (start() adds it there), 127.0.0.53:88 free
    snapshot, snapshot_built, timings   what start() restored, whether it had
                            to build it, seconds per step
    env(ccache=None, trace=None); run(args, ccache=None, input=None, check=True)
    kinit(principal, ccache_path, password=None, lifetime=None, keytab=None,
          enterprise=None)   lab users and service accounts default to their
                            lab password; a UPN such as erin.x@corp.example
                            is sent as an enterprise name (-E)
    principal(name) / account(name) -> "name@AD.EXAMPLE.TEST"
    service(svc, host=None) -> "HTTP/vip.ad.example.test@AD.EXAMPLE.TEST"
                            (MSSQLSvc/sql:1433 -> MSSQLSvc/sql.ad.example.test:1433@...)
    spn(svc, host=None)     the same without the realm (as AD stores SPNs)
    keytab(name) -> path; keytab_entries(path); ktadd(principal, keytab)
    set_delegation(account, targets); delegation(account) -> [principals]
    set_protocol_transition(account, on); set_sensitive(user, on);
    set_disabled(user, on); set_enctypes(account, value)
    uac(account) -> int; kdc_kvno(account) -> int; rekey(account) -> int
    add_service_account(name, spns, enctypes=24) -> password
    attributes(account, *attrs) -> {attr: [values]}
    sids(*accounts) -> ["S-1-5-21-...", ...]   objectSid of accounts or groups
    kdc_log_mark() / kdc_log_since(mark) -> the KDC's closing line of each
                            request since mark, "Kerberos: " prefix dropped:
        TGS-REQ SUCCESS ipv4:127.0.0.1:PORT alice@AD.EXAMPLE.TEST
            HTTP/backend.ad.example.test@AD.EXAMPLE.TEST ... impersonatee=
            alice@AD.EXAMPLE.TEST ... flags=canonicalize,cname-in-addl-tkt,...
            armor_client_name=websvc@AD.EXAMPLE.TEST        (an S4U2Proxy)
        TGS-REQ ERR_BADOPTION ipv4:... websvc@AD.EXAMPLE.TEST HTTP/backend...
            impersonatee=carol@... reason=Missing forwardable flag on ticket
            for constrained delegation
    log_since(mark) -> every samba log line (auth_audit "Auth: ..." too)
    stop_kdc() / start_kdc()  samba alone, for KDC-down tests
    samdb(ops)              raw sam.ldb operations in one child process

Answers worth knowing: an AS-REQ of a disabled user (dave) gets
KDC_ERR_CLIENT_REVOKED (the KDC line says UNKNOWN-0), S4U2Self for him
KDC_ERR_POLICY ("reason=Principal may not act as client"); the sensitive
user, a service without protocol transition and a non-forwardable service
TGT all give KDC_ERR_BADOPTION "Missing forwardable flag"; a target not in
msDS-AllowedToDelegateTo gives "Constrained delegation not allowed".

ensure_snapshot(cache_dir=None) -> (path, built)   build the tarball if missing
combined_krb5_conf(path, mit_realm, ad_realm)      one krb5.conf for both realms

Accounts (passwords in USERS and SERVICE_PASSWORDS)
---------------------------------------------------
users      alice, bob, carol (sensitive, cannot be delegated), dave (disabled),
           erin (userPrincipalName erin.x@corp.example: an alternative UPN suffix)
big PACs   BULK_GROUPS global security groups bulkgrp0001..bulkgrp3000 (made
           by the same LDIF as the accounts: consecutive RIDs); biggroups is
           in the first 650 (its Negotiate header passes 8,190 bytes),
           hugegroups in all 3000 (its session would not fit a cookie);
           no other account is in any of them
websvc     user account: HTTP/vip, HTTP/node1; AES; protocol transition on;
           msDS-AllowedToDelegateTo HTTP/backend, postgres/db,
           MSSQLSvc/sql:1433, HTTP/legacy
othersvc   HTTP/other (wrong-SPN tests); AES
NODE2$     computer account: HOST/node2.ad.example.test and HOST/NODE2 only
           (tickets for HTTP/node2 are issued under its key); AES;
           msDS-AllowedToDelegateTo HTTP/backend, postgres/db; NO protocol
           transition (as HTTP/node2 in the MIT lab)
backend    HTTP/backend; pgsvc postgres/db; sqlsvc MSSQLSvc/sql:1433 (AES)
legacy     HTTP/legacy, RC4 only (msDS-SupportedEncryptionTypes 4)
No password ever expires (maxPwdAge never, DONT_EXPIRE_PASSWD on users).

Directory layout
----------------
<base>/dc/               the DC: etc/smb.conf, private/ (sam.ldb...), state/,
                         cache/, run/ (pid, sockets)
<base>/samba.log         samba's output: kerberos:3 lines (kdc_log)
<base>/krb5.conf         for every process talking to this realm
<base>/keytabs/          node1 (websvc, HTTP/vip, HTTP/node1, othersvc,
                         HTTP/other), node2 (websvc, HTTP/vip, NODE2$,
                         host/node2), backend, db, sql, legacy, and client
                         keytabs alice, bob, carol; 0640 root:www-data as root
<base>/rcache/, ccache/  client replay caches, default client ccache
<base>/pids/samba.pid    the running DC (kdlab.stop_all(base) stops it)

CLI
---
adlab.py snapshot [--cache DIR]       build (or confirm) the cached snapshot
adlab.py start --dir DIR | stop --dir DIR | env --dir DIR
"""

import argparse
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kdlab  # noqa: E402
from kdlab import (LabError, _mkdir, _run, _share_with_httpd, _spawn,  # noqa: E402
                   _tail, _wait_for, _write, base_env, keytab_entries,
                   recorded_pid, stop_recorded)

PYTHON = "/usr/bin/python3"
SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"
SAMBA_PYTHON = "/usr/lib/python3/dist-packages/samba/__init__.py"

REALM = "AD.EXAMPLE.TEST"
DOMAIN = "ad.example.test"
NETBIOS = "ADEX"
DC_HOST = "dc1"
DC_IP = "127.0.0.53"
BASE_DN = "DC=ad,DC=example,DC=test"
UPN_SUFFIX = "corp.example"

# Lab secrets: this domain lives for one test session inside a namespace.
ADMIN_PASSWORD = "Admin-Pa55-lab"
USERS = {**kdlab.USERS, "dave": "dave-Secret-1", "erin": "erin-Secret-1",
         "biggroups": "biggroups-Secret-1", "hugegroups": "hugegroups-Secret-1"}
SENSITIVE = ("carol",)
DISABLED = ("dave",)
UPNS = {"erin": "erin.x@" + UPN_SUFFIX}
# Users in very many groups (issue 16): PACs too big for httpd's default
# LimitRequestFieldSize, or for a session cookie.  Group i is bulk_group(i).
BULK_GROUPS = 3000
BULK_MEMBERS = {"biggroups": 650, "hugegroups": BULK_GROUPS}  # user: groups 1..n
GROUP_TYPE_GLOBAL_SECURITY = -2147483646


def bulk_group(i):
    """The sAMAccountName (and CN) of bulk group i, 1..BULK_GROUPS."""
    return f"bulkgrp{i:04d}"

# userAccountControl bits
UF_ACCOUNTDISABLE = 0x2
UF_NORMAL_ACCOUNT = 0x200
UF_WORKSTATION_TRUST_ACCOUNT = 0x1000
UF_DONT_EXPIRE_PASSWD = 0x10000
UF_NOT_DELEGATED = 0x100000
UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION = 0x1000000

ENC_RC4 = 4
ENC_AES = 24  # AES128 + AES256


def _spn(short):
    """"HTTP/vip" -> "HTTP/vip.ad.example.test"; "MSSQLSvc/sql:1433" ->
    "MSSQLSvc/sql.ad.example.test:1433"."""
    svc, host = short.split("/", 1)
    host, sep, port = host.partition(":")
    return f"{svc}/{host}.{DOMAIN}{sep}{port}"


# Service accounts: sAMAccountName -> settings.  "computer" accounts get a
# trailing $ (NODE2$) and objectClass computer, as a domain join makes them.
ACCOUNTS = {
    "websvc": {"spns": [_spn("HTTP/vip"), _spn("HTTP/node1")], "enctypes": ENC_AES,
               "protocol_transition": True,
               "delegate_to": [_spn("HTTP/backend"), _spn("postgres/db"),
                               _spn("MSSQLSvc/sql:1433"), _spn("HTTP/legacy")]},
    "othersvc": {"spns": [_spn("HTTP/other")], "enctypes": ENC_AES},
    "NODE2$": {"computer": True, "spns": [_spn("HOST/node2"), "HOST/NODE2"],
               "enctypes": ENC_AES,
               "delegate_to": [_spn("HTTP/backend"), _spn("postgres/db")]},
    "backend": {"spns": [_spn("HTTP/backend")], "enctypes": ENC_AES},
    "pgsvc": {"spns": [_spn("postgres/db")], "enctypes": ENC_AES},
    "sqlsvc": {"spns": [_spn("MSSQLSvc/sql:1433")], "enctypes": ENC_AES},
    "legacy": {"spns": [_spn("HTTP/legacy")], "enctypes": ENC_RC4},
}
SERVICE_PASSWORDS = {name: name.rstrip("$").lower() + "-Svc-Pa55-1"
                     for name in ACCOUNTS}

# Keytabs as administrators export them (samba-tool domain exportkeytab
# --principal=...): the account entry (every enctype) plus SPN entries (the
# enctypes of msDS-SupportedEncryptionTypes), all with the account's key.
KEYTABS = {
    "node1": ["websvc", _spn("HTTP/vip"), _spn("HTTP/node1"),
              "othersvc", _spn("HTTP/other")],
    # No HTTP/node2 entry: AD maps HTTP/ to HOST/ for the computer account.
    "node2": ["websvc", _spn("HTTP/vip"), "NODE2$", _spn("host/node2")],
    "backend": ["backend", _spn("HTTP/backend")],
    "db": ["pgsvc", _spn("postgres/db")],
    "sql": ["sqlsvc", _spn("MSSQLSvc/sql:1433")],
    "legacy": ["legacy", _spn("HTTP/legacy")],
    "alice": ["alice"], "bob": ["bob"], "carol": ["carol"],
}

DEFAULT_CACHE = "/var/tmp/kdeleg-ad-cache"
KEEP_SNAPSHOTS = 3
# The KDC's closing record of each request (kerberos:3), e.g.
# "Kerberos: TGS-REQ SUCCESS ipv4:127.0.0.1:33248 alice@AD.EXAMPLE.TEST
# HTTP/backend.ad.example.test@AD.EXAMPLE.TEST ... impersonatee=alice@...
# flags=canonicalize,cname-in-addl-tkt,... armor_client_name=websvc@..."
# (an S4U2Proxy); not the "AS-REQ alice@... from ..." request lines.
KDC_LINE = re.compile(r"^(?:Kerberos: )?((?:AS|TGS)-REQ [A-Z][A-Z0-9_-]* ipv[46]:.*)$")
LOG_OPTION = "log level=1 kerberos:3 auth_audit:3"


# ------------------------------------------------------------ smb.conf

def smb_conf_text(dc_dir):
    """The DC's whole smb.conf, for provisioning and for every restore (the
    only file of the DC naming absolute paths).  `vfs objects = posixacl`
    (built into smbd) because the default acl_xattr needs
    samba-vfs-modules, and no file server runs anyway."""
    d = dc_dir
    return f"""# written by adlab.py
[global]
	netbios name = {DC_HOST.upper()}
	workgroup = {NETBIOS}
	realm = {REALM}
	server role = active directory domain controller
	server services = kdc, ldap
	interfaces = {DC_IP}
	bind interfaces only = yes
	tls enabled = no
	private dir = {d}/private
	lock directory = {d}
	state directory = {d}/state
	cache directory = {d}/cache
	binddns dir = {d}/bind-dns
	pid directory = {d}/run
	ncalrpc dir = {d}/run/ncalrpc
	winbindd socket directory = {d}/run/winbindd
	ntp signd socket directory = {d}/run/ntp_signd
	log file = {d}/log/samba.log
	load printers = no
	printcap name = /dev/null
	vfs objects = posixacl

[sysvol]
	path = {d}/state/sysvol
	read only = No

[netlogon]
	path = {d}/state/sysvol/{DOMAIN}/scripts
	read only = No
"""


def krb5_conf_text():
    return f"""[libdefaults]
 default_realm = {REALM}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 dns_canonicalize_hostname = false
 rdns = false
 qualify_shortname = ""
 udp_preference_limit = 1
 forwardable = true

[realms]
 {REALM} = {{
  kdc = {DC_IP}
 }}

[domain_realm]
 .{DOMAIN} = {REALM}
 {DOMAIN} = {REALM}
"""


def combined_krb5_conf(path, mit_realm, ad_realm):
    """One krb5.conf naming both realms (the MIT realm is the default), so
    one process or httpd can talk to both KDCs."""
    m, a = mit_realm, ad_realm
    _write(path, f"""[libdefaults]
 default_realm = {m.realm}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 dns_canonicalize_hostname = false
 rdns = false
 qualify_shortname = ""
 udp_preference_limit = 1
 forwardable = true

[realms]
 {m.realm} = {{
  kdc = 127.0.0.1:{m.kdc_port}
 }}
 {a.realm} = {{
  kdc = {DC_IP}
 }}

[domain_realm]
 .{m.domain} = {m.realm}
 {m.domain} = {m.realm}
 .{a.domain} = {a.realm}
 {a.domain} = {a.realm}
""")
    return path


# ------------------------------------------------------------ snapshot

def _samba_version():
    try:
        return _run([SAMBA, "--version"], base_env()).stdout.strip()
    except (OSError, LabError):
        return "unknown"


def snapshot_key():
    """Changes with this file's source and with the installed Samba."""
    h = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    h.update(_samba_version().encode())
    return h.hexdigest()[:16]


def cache_dir():
    return os.environ.get("KDELEG_AD_CACHE") or DEFAULT_CACHE


def snapshot_path(directory=None):
    return os.path.join(directory or cache_dir(), f"ad-{snapshot_key()}.tar.gz")


def ensure_snapshot(directory=None, log=None):
    """(tarball path, built): build the snapshot unless this source's is
    cached.  A lock serialises builders; the tarball appears by rename, so
    no reader ever sees half of one."""
    directory = directory or cache_dir()
    path = snapshot_path(directory)
    if os.path.exists(path):
        return path, False
    _mkdir(directory, 0o755)
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(path):  # another process built it meanwhile
            return path, False
        _build_snapshot(directory, path, log)
        # Snapshots of other sources or Samba versions: keep the newest few
        # (another checkout may use one), drop the rest.
        old = sorted((os.path.join(directory, f) for f in os.listdir(directory)
                      if f.startswith("ad-") and f.endswith(".tar.gz")),
                     key=os.path.getmtime, reverse=True)
        for f in old[KEEP_SNAPSHOTS:]:
            os.unlink(f)
    return path, True


def _build_snapshot(directory, path, log=None):
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="build-", dir=directory)
    try:
        dc = os.path.join(work, "dc")
        _mkdir(os.path.join(dc, "etc"))
        # A provision reads the smb.conf it finds in targetdir/etc.
        _write(os.path.join(dc, "etc", "smb.conf"), smb_conf_text(dc))
        _run([SAMBA_TOOL, "domain", "provision", "-s", os.path.join(dc, "etc", "smb.conf"),
              "--targetdir=" + dc,
              "--realm=" + REALM, "--domain=" + NETBIOS, "--server-role=dc",
              "--dns-backend=SAMBA_INTERNAL", "--adminpass=" + ADMIN_PASSWORD,
              "--host-name=" + DC_HOST, "--host-ip=" + DC_IP, "--quiet"],
             {**base_env(), "HOME": work})
        t1 = time.monotonic()
        keytabs = _mkdir(os.path.join(work, "keytabs"))
        _samdb(os.path.join(dc, "etc", "smb.conf"),
               [{"op": "populate"}] +
               [{"op": "export_keytab", "keytab": os.path.join(keytabs, f"{name}.keytab"),
                 "principals": principals} for name, principals in KEYTABS.items()])
        t2 = time.monotonic()
        tmp = f"{path}.tmp-{os.getpid()}"
        _run(["tar", "-C", work, "-czf", tmp, "dc", "keytabs"], base_env())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        if log:
            log(f"adlab: snapshot built in {time.monotonic() - t0:.1f} s "
                f"(provision {t1 - t0:.1f} s, accounts+keytabs {t2 - t1:.1f} s): {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for f in os.listdir(directory):
            if f.endswith(f".tmp-{os.getpid()}"):
                os.unlink(os.path.join(directory, f))


# ------------------------------------------------------------ samdb child

def _samdb(smb_conf, ops):
    """Run ops in a child Python with Samba's bindings, on the local
    sam.ldb as SYSTEM (works while samba runs: the KDC sees the change on
    its next request).  Returns the list of results."""
    proc = subprocess.run([PYTHON, os.path.abspath(__file__), "_samdb", smb_conf],
                          input=json.dumps(ops), capture_output=True, text=True,
                          env={**base_env(), "HOME": os.path.dirname(smb_conf)})
    if proc.returncode != 0:
        raise LabError(f"samdb operations {[o['op'] for o in ops]} failed "
                       f"({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout)


def _samdb_main(smb_conf):  # runs in the child process only
    import base64
    import ldb
    from samba import enable_net_export_keytab
    from samba.auth import system_session
    from samba.net import Net
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(smb_conf)
    db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
    base = db.domain_dn()

    def find(account, attrs=()):
        name = account
        if name.upper().endswith("@" + REALM):
            name = name[:-len(REALM) - 1]
        value = ldb.binary_encode(name)
        if "@" in name:
            expr = f"(userPrincipalName={value})"
        elif "/" in name:
            expr = f"(servicePrincipalName={value})"
        else:
            expr = f"(sAMAccountName={value})"
        res = db.search(base, scope=ldb.SCOPE_SUBTREE, expression=expr,
                        attrs=list(attrs) or ["dn"])
        if len(res) != 1:
            raise LookupError(f"{len(res)} accounts match {expr}")
        return res[0]

    def replace(dn, attrs):
        msg = ldb.Message(ldb.Dn(db, str(dn)))
        for attr, values in attrs.items():
            values = [str(v) for v in (values if isinstance(values, list) else [values])]
            msg[attr] = ldb.MessageElement(values, ldb.FLAG_MOD_REPLACE, attr)
        db.modify(msg)

    def pwd(password):
        return base64.b64encode(f'"{password}"'.encode("utf-16-le")).decode()

    def ldif_values(attr, values):
        return "".join(f"{attr}: {v}\n" for v in values)

    def populate():
        # No password ever expires (a cached snapshot must keep working),
        # no complexity rules.
        replace(base, {"maxPwdAge": str(-0x8000000000000000), "minPwdAge": "0",
                       "pwdProperties": "0", "minPwdLength": "0"})
        replace(f"CN=Partitions,{db.get_config_basedn()}", {"uPNSuffixes": [UPN_SUFFIX]})
        ldif = []
        for user, password in USERS.items():
            uac = UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD
            if user in SENSITIVE:
                uac |= UF_NOT_DELEGATED
            if user in DISABLED:
                uac |= UF_ACCOUNTDISABLE
            upn = UPNS.get(user, f"{user}@{DOMAIN}")
            ldif.append(f"dn: CN={user},CN=Users,{base}\nobjectClass: user\n"
                        f"sAMAccountName: {user}\nuserPrincipalName: {upn}\n"
                        f"userAccountControl: {uac}\naccountExpires: 0\n"
                        f"unicodePwd:: {pwd(password)}\n")
        for name, acct in ACCOUNTS.items():
            if acct.get("computer"):
                cn, container, cls = name.rstrip("$"), "CN=Computers", "computer"
                uac = UF_WORKSTATION_TRUST_ACCOUNT
                extra = f"dNSHostName: {cn.lower()}.{DOMAIN}\n"
            else:
                cn, container, cls = name, "CN=Users", "user"
                uac = UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD
                extra = ""
            if acct.get("protocol_transition"):
                uac |= UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION
            ldif.append(f"dn: CN={cn},{container},{base}\nobjectClass: {cls}\n"
                        f"sAMAccountName: {name}\nuserAccountControl: {uac}\n"
                        f"accountExpires: 0\n{extra}"
                        f"msDS-SupportedEncryptionTypes: {acct['enctypes']}\n"
                        + ldif_values("servicePrincipalName", acct["spns"])
                        + ldif_values("msDS-AllowedToDelegateTo",
                                      acct.get("delegate_to", []))
                        + f"unicodePwd:: {pwd(SERVICE_PASSWORDS[name])}\n")
        # The bulk groups, members named in the group's own entry (after
        # the users): about 8 ms a group here.
        for i in range(1, BULK_GROUPS + 1):
            members = [f"CN={user},CN=Users,{base}" for user, n in BULK_MEMBERS.items()
                       if i <= n]
            ldif.append(f"dn: CN={bulk_group(i)},CN=Users,{base}\nobjectClass: group\n"
                        f"sAMAccountName: {bulk_group(i)}\n"
                        f"groupType: {GROUP_TYPE_GLOBAL_SECURITY}\n"
                        + ldif_values("member", members))
        db.transaction_start()
        try:
            for entry in ldif:
                db.add_ldif(entry)
        except BaseException:
            db.transaction_cancel()
            raise
        db.transaction_commit()

    def run(op):
        kind = op["op"]
        if kind == "populate":
            return populate()
        if kind == "get":
            msg = find(op["account"], op["attrs"])
            return {a: [str(v) for v in msg[a]] if a in msg else []
                    for a in op["attrs"]}
        if kind == "replace":
            return replace(find(op["account"]).dn, op["attrs"])
        if kind == "sids":
            from samba.dcerpc import security
            from samba.ndr import ndr_unpack
            return [str(ndr_unpack(security.dom_sid, find(a, ["objectSid"])["objectSid"][0]))
                    for a in op["accounts"]]
        if kind == "uac":
            msg = find(op["account"], ["userAccountControl"])
            uac = (int(msg["userAccountControl"][0]) | op.get("set", 0)) & ~op.get("clear", 0)
            replace(msg.dn, {"userAccountControl": str(uac)})
            return uac
        if kind == "add_account":
            uac = UF_NORMAL_ACCOUNT | UF_DONT_EXPIRE_PASSWD
            db.add_ldif(f"dn: CN={op['name']},CN=Users,{base}\nobjectClass: user\n"
                        f"sAMAccountName: {op['name']}\nuserAccountControl: {uac}\n"
                        f"accountExpires: 0\n"
                        f"msDS-SupportedEncryptionTypes: {op['enctypes']}\n"
                        + ldif_values("servicePrincipalName", op["spns"])
                        + f"unicodePwd:: {pwd(op['password'])}\n")
            return None
        if kind == "setpassword":
            msg = find(op["account"])
            db.modify_ldif(f"dn: {msg.dn}\nchangetype: modify\nreplace: unicodePwd\n"
                           f"unicodePwd:: {pwd(op['password'])}\n")
            return None
        if kind == "export_keytab":
            enable_net_export_keytab()
            net = Net(None, lp)
            for principal in op["principals"]:
                net.export_keytab(keytab=op["keytab"], principal=principal)
            return None
        raise ValueError(f"unknown operation {kind}")

    ops = json.load(sys.stdin)
    json.dump([run(op) for op in ops], sys.stdout)


# ------------------------------------------------------------------ realm

def _dc_address_usable():
    """None if 127.0.0.53 port 88 can be bound here, else why not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((DC_IP, 88))
        except OSError as e:
            return f"cannot bind {DC_IP}:88 ({e.strerror})"
    return None


def _dc_on_lo():
    """Is 127.0.0.53 itself on lo, and lo up?  Samba binds only addresses
    configured on an interface: with just 127.0.0.1/8 it logs "WARNING: no
    network interfaces found" and never listens."""
    proc = _run(["ip", "-o", "-4", "addr", "show", "dev", "lo", "up"], base_env(),
                check=False)
    return f"inet {DC_IP}/" in proc.stdout


def _private_netns():
    """A network namespace of our own (ip netns, docker --network none) has
    no interface but lo; the host's has more.  (/proc/1/ns/net, the obvious
    comparison, is not readable on these machines even as root.)"""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def _ensure_dc_address():
    """As root in a private network namespace, bring lo up and add
    127.0.0.53 if missing; the host's own lo is never changed."""
    if _dc_on_lo():
        return
    if os.geteuid() != 0 or not _private_netns():
        raise LabError(f"{DC_IP} is not on lo: run inside a private network "
                       "namespace (ip netns add NS; ip -n NS link set lo up; "
                       f"ip -n NS addr add {DC_IP}/8 dev lo; ip netns exec NS ...)")
    _run(["ip", "link", "set", "lo", "up"], base_env())
    proc = _run(["ip", "addr", "add", f"{DC_IP}/8", "dev", "lo"], base_env(),
                check=False)
    if proc.returncode != 0 and "exists" not in proc.stderr:
        raise LabError(f"ip addr add {DC_IP}/8 dev lo: {proc.stderr}")


class ADRealm:
    """The AD realm, with kdlab.Realm's interface where it makes sense."""

    kind = "ad"
    netbios = NETBIOS
    dc_ip = DC_IP
    RECORD = "samba"

    def __init__(self, base_dir):
        self.base = os.path.abspath(base_dir)
        self.realm = REALM
        self.domain = DOMAIN
        self.dc_dir = self.path("dc")
        self.smb_conf = self.path("dc", "etc", "smb.conf")
        self.krb5_conf = self.path("krb5.conf")
        self.kdc_log = self.path("samba.log")
        self.keytab_dir = self.path("keytabs")
        self.snapshot = None          # tarball restored by start()
        self.snapshot_built = None    # whether start() had to build it
        self.timings = {}             # seconds: snapshot, restore, samba

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    @classmethod
    def load(cls, base_dir):
        return cls(base_dir)

    @staticmethod
    def usable():
        """(True, None) if a DC can run here, else (False, reason)."""
        for path in (SAMBA, SAMBA_TOOL, SAMBA_PYTHON):
            if not os.path.exists(path):
                return False, (f"{path} missing: install samba, samba-ad-provision, "
                               "samba-dsdb-modules, python3-samba (t/install-deps)")
        if os.geteuid() != 0:
            return False, "the AD DC needs root (port 88 on 127.0.0.53)"
        if not shutil.which("ip"):
            return False, "ip (iproute2) missing"
        if not _dc_on_lo() and not _private_netns():
            return False, (f"{DC_IP} is not on lo and this is the host's network "
                           "namespace: run inside a private one (t/run-tests does)")
        reason = _dc_address_usable()
        if reason:
            return False, (reason + ": run inside a private network namespace "
                           "(t/run-tests does)")
        return True, None

    # -- names

    def principal(self, name):
        return name if "@" in name else f"{name}@{self.realm}"

    def account(self, name):
        """A service or computer account's principal: websvc, NODE2$."""
        return self.principal(name)

    def spn(self, svc, host=None):
        """service() without the realm: the form AD stores."""
        return self.service(svc, host).rsplit("@", 1)[0]

    def service(self, svc, host=None):
        """service("HTTP/vip") or service("HTTP", "vip") ->
        HTTP/vip.ad.example.test@AD.EXAMPLE.TEST; a port stays last."""
        name = f"{svc}/{host}" if host else svc
        if "@" in name:
            return name
        head, sep, port = name.rpartition(":")
        if not sep or "/" not in head or not port.isdigit():
            head, sep, port = name, "", ""
        if not head.endswith("." + self.domain):
            head += "." + self.domain
        return self.principal(head + sep + port)

    def keytab(self, name):
        return os.path.join(self.keytab_dir, name + ".keytab")

    keytab_entries = staticmethod(keytab_entries)

    # -- environment

    def env(self, ccache=None, trace=None):
        env = {"KRB5_CONFIG": self.krb5_conf,
               "KRB5RCACHEDIR": self.path("rcache"),
               "KRB5CCNAME": "FILE:" + (ccache or self.path("ccache", "default"))}
        if trace:
            env["KRB5_TRACE"] = trace
        return env

    def run(self, args, ccache=None, input=None, check=True):
        return _run(args, {**base_env(), **self.env(ccache)}, input, check)

    def kinit(self, principal, ccache_path, password=None, lifetime=None,
              keytab=None, enterprise=None):
        """TGT into FILE:ccache_path.  A name whose @suffix is not the realm
        (erin.x@corp.example) is an enterprise name (kinit -E)."""
        if enterprise is None:
            enterprise = "@" in principal and \
                principal.rsplit("@", 1)[1].upper() != self.realm
        args = ["kinit", "-c", "FILE:" + ccache_path]
        if lifetime:
            args += ["-l", str(lifetime)]
        if enterprise:
            args.append("-E")
        if keytab:
            args += ["-k", "-t", keytab]
        elif password is None:
            password = self._password(principal)
        args.append(principal if enterprise else self.principal(principal))
        self.run(args, ccache_path, input=None if keytab else password + "\n")
        return ccache_path

    def _password(self, principal):
        name = principal
        if name.upper().endswith("@" + self.realm):
            name = name[:-len(self.realm) - 1]
        for user, upn in UPNS.items():
            if name.lower() == upn.lower():
                name = user
        if name in USERS:
            return USERS[name]
        if name in SERVICE_PASSWORDS:
            return SERVICE_PASSWORDS[name]
        raise LabError(f"no lab password for {principal}")

    # -- start / stop

    def start(self, timeout=60):
        if recorded_pid(self.base, self.RECORD):
            raise LabError(f"an AD realm already runs in {self.base}")
        try:
            t0 = time.monotonic()
            self.snapshot, self.snapshot_built = ensure_snapshot(
                log=lambda msg: print(msg, file=sys.stderr))
            t1 = time.monotonic()
            self._restore()
            t2 = time.monotonic()
            self._start_samba(timeout)
            self.timings = {"snapshot": t1 - t0, "restore": t2 - t1,
                            "samba": time.monotonic() - t2}
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout=10):
        stop_recorded(self.base, [self.RECORD], timeout)

    def _restore(self):
        _mkdir(self.base)
        for d in (self.dc_dir, self.keytab_dir):
            shutil.rmtree(d, ignore_errors=True)
        _run(["tar", "-C", self.base, "-xzf", self.snapshot], base_env())
        _write(self.smb_conf, smb_conf_text(self.dc_dir))
        _write(self.krb5_conf, krb5_conf_text())
        _mkdir(self.path("rcache"), 0o1777)
        _mkdir(self.path("ccache"), 0o700)
        _mkdir(self.path("dc", "log"))
        for name in KEYTABS:
            _share_with_httpd(self.keytab(name), 0o640)

    def _start_samba(self, timeout=60):
        _ensure_dc_address()
        # setsid (kdlab._spawn): a signal to the test's process group does
        # not reach the DC; stdin /dev/null (samba -i would exit on EOF).
        proc = _spawn(self.base, self.RECORD,
                      [SAMBA, "-F", "-M", "single", "-s", self.smb_conf,
                       "--debug-stdout", "--option=" + LOG_OPTION],
                      {**base_env(), "HOME": self.dc_dir}, self.kdc_log)
        probe = self.path("ccache", "start-probe")
        mark = self.kdc_log_mark()

        def answers():
            if proc.poll() is not None:
                raise LabError(f"samba exited with {proc.returncode}:\n"
                               f"{_tail(self.kdc_log)}")
            if any("no network interfaces found" in line
                   for line in self.log_since(mark)):
                raise LabError(f"samba found no interface for {DC_IP}:\n"
                               f"{_tail(self.kdc_log)}")
            if not kdlab._port_open(DC_IP, 88):
                time.sleep(0.05)
                return False
            try:
                self.kinit("alice", probe)
                return True
            except LabError:
                time.sleep(0.1)
                return False

        try:
            _wait_for(answers, timeout, "the AD KDC to answer",
                      lambda: _tail(self.kdc_log))
        except BaseException:
            self.stop()
            raise
        finally:
            if os.path.exists(probe):
                os.unlink(probe)

    def stop_kdc(self, timeout=10):
        """Stop samba (the DC is the KDC): for KDC-down tests."""
        self.stop(timeout)

    def start_kdc(self, timeout=60):
        """Start samba again after stop_kdc(), same database."""
        self._start_samba(timeout)
        return self

    # -- directory operations (local sam.ldb as SYSTEM; live for the KDC)

    def samdb(self, ops):
        """Raw access: run [{"op": ...}, ...] (get, replace, sids, uac,
        add_account, setpassword, export_keytab) in one child process."""
        return _samdb(self.smb_conf, ops)

    def attributes(self, account, *attrs):
        """{attr: [values]} of an account (sAMAccountName, name@REALM, UPN
        or SPN)."""
        return self.samdb([{"op": "get", "account": account, "attrs": list(attrs)}])[0]

    def sids(self, *accounts):
        """The objectSid of each account or group (sAMAccountName), as
        S-1-5-21-... strings."""
        return self.samdb([{"op": "sids", "accounts": list(accounts)}])[0]

    def uac(self, account):
        return int(self.attributes(account, "userAccountControl")["userAccountControl"][0])

    def _set_uac(self, account, bit, on):
        op = {"op": "uac", "account": account, ("set" if on else "clear"): bit}
        return self.samdb([op])[0]

    def set_delegation(self, account, targets):
        """Replace msDS-AllowedToDelegateTo ("trust this user for delegation
        to specified services only"); targets as principals or short SPNs
        (HTTP/backend); empty: no delegation."""
        spns = [self._target_spn(t) for t in targets]
        self.samdb([{"op": "replace", "account": account,
                     "attrs": {"msDS-AllowedToDelegateTo": spns}}])

    def _target_spn(self, target):
        if target.upper().endswith("@" + self.realm):
            return target[:-len(self.realm) - 1]
        return self.spn(target)

    def delegation(self, account):
        """msDS-AllowedToDelegateTo as principals (SPN@REALM), like
        kdlab.Realm.delegation."""
        values = self.attributes(account, "msDS-AllowedToDelegateTo")
        return [self.principal(v) for v in values["msDS-AllowedToDelegateTo"]]

    def set_protocol_transition(self, account, on):
        """UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION: "use any authentication
        protocol" (S4U2Self tickets come back forwardable)."""
        return self._set_uac(account, UF_TRUSTED_TO_AUTHENTICATE_FOR_DELEGATION, on)

    def set_sensitive(self, user, on):
        """UF_NOT_DELEGATED: "account is sensitive and cannot be delegated"."""
        return self._set_uac(user, UF_NOT_DELEGATED, on)

    def set_disabled(self, user, on):
        return self._set_uac(user, UF_ACCOUNTDISABLE, on)

    def set_enctypes(self, account, value):
        """msDS-SupportedEncryptionTypes (4 RC4, 24 AES); None removes it."""
        self.samdb([{"op": "replace", "account": account,
                     "attrs": {"msDS-SupportedEncryptionTypes":
                               [] if value is None else [str(value)]}}])

    def add_service_account(self, name, spns, enctypes=ENC_AES, password=None):
        """A new user account holding spns (short or full SPNs), e.g. a
        scratch account for rekey tests; returns its password."""
        password = password or "Svc-" + os.urandom(12).hex()
        self.samdb([{"op": "add_account", "name": name, "enctypes": enctypes,
                     "spns": [self._target_spn(s) for s in spns],
                     "password": password}])
        return password

    def kdc_kvno(self, account):
        """msDS-KeyVersionNumber: the kvno of the account's current keys."""
        values = self.attributes(account, "msDS-KeyVersionNumber")
        return int(values["msDS-KeyVersionNumber"][0])

    def rekey(self, account, password=None):
        """Password reset (a new random one unless given): the kvno moves
        ahead of every keytab.  Returns the new kvno."""
        password = password or "Rekey-" + os.urandom(12).hex()
        self.samdb([{"op": "setpassword", "account": account, "password": password}])
        return self.kdc_kvno(account)

    def ktadd(self, principal, keytab):
        """Append principal's current keys to keytab (samba-tool domain
        exportkeytab --principal=...)."""
        name = principal
        if name.upper().endswith("@" + self.realm):
            name = name[:-len(self.realm) - 1]
        self.samdb([{"op": "export_keytab", "keytab": keytab, "principals": [name]}])
        _share_with_httpd(keytab, 0o640)

    # -- log

    def kdc_log_mark(self):
        return kdlab.log_mark(self.kdc_log)

    def kdc_log_since(self, mark):
        """The KDC's one-line-per-request records (AS-REQ ..., TGS-REQ ...)
        written since mark."""
        found = (KDC_LINE.match(line) for line in kdlab.lines_since(self.kdc_log, mark))
        return [m[1] for m in found if m]

    def log_since(self, mark):
        """Every samba log line since mark (auth_audit lines included)."""
        return kdlab.lines_since(self.kdc_log, mark)


# -------------------------------------------------------------------- CLI

def _cli_snapshot(args):
    """Exits 0 without building where no DC could run anyway (the AD tests
    skip there, saying why)."""
    missing = [p for p in (SAMBA, SAMBA_TOOL, SAMBA_PYTHON) if not os.path.exists(p)]
    if missing or os.geteuid() != 0:
        print(f"adlab: no snapshot: {', '.join(missing) + ' missing' if missing else 'not root'}"
              " (the AD realm tests will skip)")
        return
    t0 = time.monotonic()
    path, built = ensure_snapshot(args.cache, log=print)
    print(f"adlab: snapshot {'built' if built else 'present'}: {path} "
          f"({time.monotonic() - t0:.1f} s)")


def _cli_start(args):
    ok, reason = ADRealm.usable()
    if not ok:
        sys.exit(f"adlab: {reason}")
    realm = ADRealm(args.dir).start()
    print(f"# AD realm {realm.realm} up at {DC_IP}: " +
          ", ".join(f"{k} {v:.1f} s" for k, v in realm.timings.items()),
          file=sys.stderr)
    _cli_env(args)


def _cli_stop(args):
    kdlab.stop_all(os.path.abspath(args.dir))


def _cli_env(args):
    for key, value in ADRealm.load(args.dir).env().items():
        print(f"export {key}={shlex.quote(value)}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_samdb"]:
        return _samdb_main(argv[1])
    parser = argparse.ArgumentParser(description="mod_kdeleg AD lab (Samba AD DC)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("snapshot", help="build (or confirm) the cached snapshot")
    p.add_argument("--cache", help=f"cache directory (default $KDELEG_AD_CACHE or {DEFAULT_CACHE})")
    p.set_defaults(func=_cli_snapshot)
    for name, func in (("start", _cli_start), ("stop", _cli_stop), ("env", _cli_env)):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True, help="lab base directory")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
