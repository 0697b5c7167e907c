"""Passwords verified against the KDC (issue 16, item 2), on both KDCs:
AuthBasicProvider kdeleg and AuthFormProvider kdeleg.

- A password is good when the KDC gives a TGT *and* a ticket for the
  front end's own SPN that the keytab accepts: a fake KDC answering for
  the realm's name (here a second MIT KDC with the same realm name and
  alice's password) is refused.
- The user is what a Kerberos login makes: REMOTE_USER, GSS_NAME,
  KDELEG_AUTH_METHOD=password, the PAC's groups for Require kdeleg-group
  (AD), and the ticket as S4U2Proxy evidence: delegation to the back end
  works with KdelegProtocolTransition Off.
- Dedicated users (never alice, so no test locks her) in each refused
  state, set at test time: wrong password, disabled, account expired,
  must change / expired password, locked out (a password settings object
  on AD, a kadmin policy on MIT). AD tells them apart by the NTSTATUS in
  the KRB-ERROR's e-data; MIT merges some (documented in kd_causes.c).
- The failure cache: the same wrong password sent again and again (a
  browser resending a stale password for every image) reaches the KDC
  once, so the account is not locked. The success cache: the second
  request of a user costs no KDC exchange.
- TLS: AuthBasicProvider kdeleg in a server without SSLEngine on is a
  start-up error (KD00220) unless KdelegPasswordWithoutTLS On; one set in
  .htaccess, which start-up cannot see, is refused per request
  (password-without-tls) without asking the KDC.
- A KDC that refuses connections, or accepts and never answers (a
  kdlab.KdcRelay in front of the real one, stopped or silent): 500 with
  cause kdc-unreachable, never 401, never remembered by the failure cache;
  when the KDC is back the right password works at once.
- Behind mod_proxy: with KdelegProxyNegotiate the back end gets Negotiate
  made from the password login's ticket, never the Basic header; without
  it the Basic header (the password) is forwarded, unless RequestHeader
  unset Authorization."""

import base64
import os
import re
import subprocess
import threading
import time
import urllib.parse

import pytest

import kdclient
import kdlab
from conftest import kdc_front_dir
from kdnames import PROXY_MODULES

PASSWORD = "Pw-791-secret"
WRONG = "Not-the-791-password"
USERS = ("kd791user", "kd791guard", "kd791disabled", "kd791expired", "kd791change",
         "kd791pwexp", "kd791locked")
# On MIT: a SID no PAC holds (there is no logon-info to hold any).
PLACEHOLDER_SID = "S-1-5-21-1-2-3-513"
# One process, so the per-process caches see every request.
ONE_CHILD = """StartServers 1
ServerLimit 1
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 8
"""


def samba_tool(ad, *args, check=True):
    proc = subprocess.run(["/usr/bin/samba-tool", *args, "-s", ad.smb_conf],
                          capture_output=True, text=True, env={**os.environ, **ad.env()})
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def make_mit_users(realm):
    realm.kadmin("addpol -maxfailure 3 -failurecountinterval 0 -lockoutduration 600 kd791lock")
    for user in USERS:
        realm.kadmin(f"addprinc -pw {PASSWORD} +requires_preauth {user}")
    for user in ("kd791guard", "kd791locked"):
        realm.kadmin(f"modprinc -policy kd791lock {user}")
    realm.kadmin("modprinc -allow_tix kd791disabled")
    realm.kadmin('modprinc -expire "2001-01-01 00:00:00 UTC" kd791expired')
    realm.kadmin("modprinc +needchange kd791change")
    realm.kadmin('modprinc -pwexpire "2001-01-01 00:00:00 UTC" kd791pwexp')


def drop_mit_users(realm):
    for user in USERS:
        realm.kadmin(f"delprinc -force {user}")
    realm.kadmin("delpol -force kd791lock")


def make_ad_users(ad):
    for user in USERS:
        extra = ["--must-change-at-next-login"] if user == "kd791change" else []
        samba_tool(ad, "user", "create", user, PASSWORD, *extra)
        if user not in ("kd791expired", "kd791change"):
            samba_tool(ad, "user", "setexpiry", user, "--noexpiry")
    samba_tool(ad, "user", "disable", "kd791disabled")
    samba_tool(ad, "user", "setexpiry", "kd791expired", "--days=0")
    samba_tool(ad, "domain", "passwordsettings", "pso", "create", "kd791pso", "10",
               "--account-lockout-threshold=3", "--account-lockout-duration=10",
               "--reset-account-lockout-after=10")
    samba_tool(ad, "domain", "passwordsettings", "pso", "apply", "kd791pso", "kd791guard")
    samba_tool(ad, "domain", "passwordsettings", "pso", "apply", "kd791pso", "kd791locked")


def drop_ad_users(ad):
    samba_tool(ad, "domain", "passwordsettings", "pso", "delete", "kd791pso", check=False)
    for user in USERS:
        samba_tool(ad, "user", "delete", user, check=False)


@pytest.fixture(scope="module")
def made():
    """Users are made once per realm, dropped when the module is done."""
    done = {}
    yield done
    for kind, realm in done.items():
        (drop_mit_users if kind == "mit" else drop_ad_users)(realm)


def domain_users_sid(ad):
    shown = samba_tool(ad, "group", "show", "Domain Users", "--attributes=objectSid").stdout
    return [line.split(":", 1)[1].strip() for line in shown.splitlines()
            if line.startswith("objectSid:")][0]


@pytest.fixture
def users(kdc, made):
    """kdc, with the users made and kdc.domain_users (Domain Users' SID on AD)."""
    if kdc.kind not in made:
        (make_mit_users if kdc.kind == "mit" else make_ad_users)(kdc.r)
        made[kdc.kind] = kdc.r
    kdc.domain_users = domain_users_sid(kdc.r) if kdc.kind == "ad" else PLACEHOLDER_SID
    return kdc


def front_conf(kdc, backend, d, tls_optin=True, extra=""):
    kdc_front_dir(kdc, d, backend)
    back = kdc.host("backend")
    basic = 'AuthType Basic\n    AuthName "web"\n    AuthBasicProvider kdeleg'
    return f"""{ONE_CHILD}
KdelegKeytab {kdc.r.keytab('node1')}
KdelegServiceNames HTTP/{kdc.host('node1')}
{"KdelegPasswordWithoutTLS On" if tls_optin else ""}
{extra}
ScriptAlias /pw/ "{d}/cgi-bin/"
<Location /pw/>
    {basic}
    Require valid-user
</Location>
ScriptAlias /pwdeleg/ "{d}/cgi-bin/"
<Location /pwdeleg/>
    {basic}
    Require valid-user
    KdelegDelegateTo HTTP/{back}
    KdelegProtocolTransition Off
    KdelegCcacheDir "{d}/ccache"
</Location>
ScriptAlias /pwgroup/ "{d}/cgi-bin/"
<Location /pwgroup/>
    {basic}
    AuthzSendForbiddenOnFailure On
    Require kdeleg-group {kdc.domain_users}
    KdelegPublishGroups On
</Location>
ScriptAlias /pwshort/ "{d}/cgi-bin/"
<Location /pwshort/>
    {basic}
    Require valid-user
    KdelegRemoteUser short
</Location>
"""


@pytest.fixture
def front(kd_httpd, users, kdc_backend):
    kdc = users
    httpd = kd_httpd("pwfront", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=lambda d: front_conf(kdc, kdc_backend, d),
                     extra_modules=("auth_basic",) + PROXY_MODULES)
    httpd.allowed |= {"KD00301", "AH01617", "AH01631", "AH01807"}
    return httpd


def basic(httpd, path, user, password, **kw):
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return kdclient.request(httpd, path, headers={"Authorization": auth}, **kw)


def causes_since(httpd, mark):
    return kdclient.causes(httpd.error_log_since(mark))


def as_requests(kdc, lines, user):
    """The KDC's records of AS exchanges for user."""
    if kdc.kind == "mit":
        return [l for l in lines if "AS_REQ" in l and f"{kdc.user(user)} for krbtgt/" in l]
    return [l for l in lines if l.startswith("AS-REQ") and f" {user}" in l]


def test_password_login(front, users):
    kdc = users
    status, _, body = basic(front, "/pw/env.cgi", "kd791user", PASSWORD)
    env = kdclient.cgi_env(body)
    assert status == 200, body
    assert env["REMOTE_USER"] == kdc.user("kd791user")
    assert env["GSS_NAME"] == kdc.user("kd791user")
    assert env["KDELEG_AUTH_METHOD"] == "password"
    assert env["AUTH_TYPE"] == "Basic"
    assert env["KDELEG_SPN"] == kdc.spn("node1")
    assert int(env["GSS_SESSION_EXPIRATION"]) > 0
    status, _, body = basic(front, "/pwshort/env.cgi", "kd791user", PASSWORD)
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == "kd791user", body


def test_password_ticket_is_delegation_evidence(front, users):
    """No protocol transition: S4U2Proxy with the ticket the check got."""
    kdc = users
    mark = kdc.r.kdc_log_mark()
    status, _, body = basic(front, "/pwdeleg/backend.cgi", "alice", kdlab.USERS["alice"])
    env = kdclient.cgi_env(body)
    assert status == 200, body
    assert env["BACKEND_REMOTE_USER"] == kdc.user("alice"), body
    assert env["KLIST_CLIENT"] == kdc.user("alice"), body
    lines = kdc.r.kdc_log_since(mark)
    assert kdc.s4u2proxy(lines, "HTTP/backend"), "\n".join(lines)
    assert kdc.own_tgs(lines, kdc.spn("node1")), "the check's own ticket for the front end"


def test_groups_of_a_password_user(front, users):
    kdc = users
    mark = front.error_log_mark()
    status, _, body = basic(front, "/pwgroup/env.cgi", "kd791user", PASSWORD)
    if kdc.kind == "ad":
        assert status == 200, body
        assert kdc.domain_users in kdclient.cgi_env(body)["KDELEG_GROUP_SIDS"].split()
    else:
        # MIT issues no logon-info: the group check denies
        assert status == 403, body
        assert "no-group-info" in "".join(front.error_log_since(mark))


def test_wrong_password(front, users):
    mark = front.error_log_mark()
    status, headers, _ = basic(front, "/pw/env.cgi", "kd791user", WRONG)
    assert status == 401 and headers["www-authenticate"].startswith("Basic"), headers
    assert causes_since(front, mark) == ["wrong-password"]
    # unknown users answer the same
    mark = front.error_log_mark()
    assert basic(front, "/pw/env.cgi", "kd791nobody", WRONG)[0] == 401
    assert causes_since(front, mark) == ["wrong-password"]


NTSTATUS = {"kd791disabled": "NTSTATUS 0xc0000072", "kd791expired": "NTSTATUS 0xc0000193",
            "kd791change": "NTSTATUS 0xc0000224"}
EXPECTED = {  # user: (MIT cause, AD cause)
    "kd791disabled": ("user-disabled", "user-disabled"),
    "kd791expired": ("account-expired", "account-expired"),
    "kd791change": ("password-expired", "password-must-change"),
    "kd791pwexp": ("password-expired", None),
}


@pytest.mark.parametrize("user", sorted(EXPECTED))
def test_refused_accounts(front, users, user):
    kdc = users
    want = EXPECTED[user][0 if kdc.kind == "mit" else 1]
    if want is None:
        pytest.skip("AD: a password expired by age needs pwdLastSet in the past, which "
                    "only the DC's clock can make (pwdLastSet takes 0 or -1)")
    mark = front.error_log_mark()
    status, _, _ = basic(front, "/pw/env.cgi", user, PASSWORD)
    assert status == 401
    lines = front.error_log_since(mark)
    assert kdclient.causes(lines) == [want]
    if kdc.kind == "ad":
        # Kerberos says CLIENT_REVOKED or KEY_EXP: the e-data's NTSTATUS told them apart
        assert NTSTATUS[user] in "".join(lines), lines


def lock_out(kdc, user):
    """Three wrong passwords straight at the KDC."""
    path = kdc.r.path("ccache", f"{user}-lock.cc")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(3):
        with pytest.raises(Exception):
            kdc.r.kinit(user, path, password=WRONG)


def test_locked_account(front, users):
    """Locked out by three wrong passwords. MIT answers it as a disabled
    principal (KDC_ERR_CLIENT_REVOKED); Samba 4.17 too, without the
    NTSTATUS a Windows DC adds (STATUS_ACCOUNT_LOCKED_OUT, which gives
    account-locked: unit-tested with that e-data)."""
    kdc = users
    lock_out(kdc, "kd791locked")
    if kdc.kind == "mit":
        assert "Failed password attempts: 3" in kdc.r.kadmin("getprinc kd791locked")
    else:
        assert int(kdc.r.attributes("kd791locked", "lockoutTime")["lockoutTime"][0]) > 0
    mark = front.error_log_mark()
    assert basic(front, "/pw/env.cgi", "kd791locked", PASSWORD)[0] == 401
    lines = front.error_log_since(mark)
    assert kdclient.causes(lines) == ["user-disabled"], lines
    assert "revoked" in "".join(lines)


def bad_password_count(kdc, user):
    if kdc.kind == "mit":
        out = kdc.r.kadmin(f"getprinc {user}")
        return int(out.split("Failed password attempts:")[1].split()[0])
    return int(kdc.r.attributes(user, "badPwdCount").get("badPwdCount", ["0"])[0])


def test_failure_cache_keeps_the_account_open(front, users):
    """Five requests with the same stale password: the KDC sees one, so a
    lockout threshold of 3 is never reached, and the right password then
    works at once."""
    kdc = users
    mark = front.error_log_mark()
    for _ in range(5):
        assert basic(front, "/pw/env.cgi", "kd791guard", WRONG)[0] == 401
    assert bad_password_count(kdc, "kd791guard") == 1
    lines = front.error_log_since(mark)
    assert kdclient.causes(lines) == ["wrong-password"] * 5
    assert sum("answered without asking the KDC" in l for l in lines) == 4
    assert basic(front, "/pw/env.cgi", "kd791guard", PASSWORD)[0] == 200


def test_success_cache_spares_the_kdc(front, users):
    kdc = users
    assert basic(front, "/pw/env.cgi", "kd791user", PASSWORD)[0] == 200
    mark = kdc.r.kdc_log_mark()
    for _ in range(3):
        assert basic(front, "/pw/env.cgi", "kd791user", PASSWORD)[0] == 200
    assert as_requests(kdc, kdc.r.kdc_log_since(mark), "kd791user") == []
    # a different password is never a hit
    assert basic(front, "/pw/env.cgi", "kd791user", WRONG)[0] == 401


def test_plain_http_is_a_startup_error(users, kdc_backend, module_path, lab_dir):
    kdc = users
    httpd = kdlab.Httpd(lab_dir, "pwplain", "127.0.0.2", module_path=module_path,
                        server_name=kdc.host("node1"), extra_modules=("auth_basic",) + PROXY_MODULES)
    httpd.conf = front_conf(kdc, kdc_backend, httpd.dir, tls_optin=False)
    try:
        with pytest.raises(kdlab.LabError):
            httpd.start(kdc.r.env())
    finally:
        httpd.stop()
    with open(httpd.error_log) as f:
        log = f.read()
    assert "KD00220" in log and "KdelegPasswordWithoutTLS" in log and "main server" in log, log


def test_tls_front_needs_no_opt_in(kd_httpd, users, kdc_backend, test_ca):
    kdc = users
    host = kdc.host("node1")
    httpd = kd_httpd("pwtls", "127.0.0.2", server_name=host, env=kdc.r.env(),
                     conf_fn=lambda d: front_conf(kdc, kdc_backend, d, tls_optin=False),
                     extra_modules=("auth_basic",) + PROXY_MODULES,
                     tls=test_ca.issue(f"{kdc.kind}-pwtls", [host]))
    httpd.cafile = test_ca.pem
    status, _, body = basic(httpd, "/pw/env.cgi", "kd791user", PASSWORD)
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "password", body


def test_htaccess_over_plain_http_is_refused(kd_httpd, users, kdc_backend):
    kdc = users

    def conf(d):
        os.makedirs(f"{d}/htdocs/ht", exist_ok=True)
        with open(f"{d}/htdocs/ht/.htaccess", "w") as f:
            f.write('AuthType Basic\nAuthName "web"\nAuthBasicProvider kdeleg\n'
                    "Require valid-user\n")
        with open(f"{d}/htdocs/ht/index.html", "w") as f:
            f.write("secret\n")
        return (front_conf(kdc, kdc_backend, d, tls_optin=False).replace(
            "AuthBasicProvider kdeleg", f'AuthBasicProvider file\n    AuthUserFile "{d}/nobody"')
            + f'<Directory "{d}/htdocs/ht">\n    AllowOverride AuthConfig\n</Directory>\n')
    httpd = kd_httpd("pwht", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf, extra_modules=("auth_basic", "authn_file") + PROXY_MODULES)
    httpd.allowed |= {"KD00301", "AH01617", "AH01631", "AH01807"}
    mark, kmark = httpd.error_log_mark(), kdc.r.kdc_log_mark()
    status, _, body = basic(httpd, "/ht/index.html", "kd791user", PASSWORD)
    assert status == 500 and "secret" not in body
    assert causes_since(httpd, mark) == ["password-without-tls"]
    assert as_requests(kdc, kdc.r.kdc_log_since(kmark), "kd791user") == []


def test_form_login(kd_httpd, users, kdc_backend):
    """AuthFormProvider kdeleg: mod_auth_form's login handler, then the
    session (mod_session) replays the credentials to the provider on every
    request, which the success cache answers."""
    kdc = users

    def conf(d):
        base = front_conf(kdc, kdc_backend, d)
        return base + f"""
<Location /dologin>
    SetHandler form-login-handler
    AuthType form
    AuthName "web"
    AuthFormProvider kdeleg
    Session On
    SessionCookieName kd791session path=/
    Require all granted
</Location>
ScriptAlias /formapp/ "{d}/cgi-bin/"
<Location /formapp/>
    AuthType form
    AuthName "web"
    AuthFormProvider kdeleg
    Session On
    SessionCookieName kd791session path=/
    Require valid-user
</Location>
"""
    httpd = kd_httpd("pwform", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf, extra_modules=("auth_basic", "auth_form", "session",
                                                  "session_cookie", "request") + PROXY_MODULES)
    httpd.allowed |= {"KD00301", "AH01617", "AH01631", "AH01807"}
    form = urllib.parse.urlencode({"httpd_username": "kd791user", "httpd_password": PASSWORD,
                                   "httpd_location": "/formapp/env.cgi"})
    status, headers, _ = kdclient.request(
        httpd, "/dologin", method="POST", body=form,
        headers=form_headers(form))
    assert status in (302, 303), (headers, "".join(httpd.error_log_since(0)))
    cookie = headers["set-cookie"].split(";", 1)[0]
    status, _, body = kdclient.request(httpd, "/formapp/env.cgi", headers={"Cookie": cookie})
    env = kdclient.cgi_env(body)
    assert status == 200, body
    assert env["REMOTE_USER"] == kdc.user("kd791user") and env["KDELEG_AUTH_METHOD"] == "password"
    bad = urllib.parse.urlencode({"httpd_username": "kd791user", "httpd_password": WRONG})
    status, headers, _ = kdclient.request(
        httpd, "/dologin", method="POST", body=bad,
        headers=form_headers(bad))
    assert status == 401 and "kd791session=" not in headers.get("set-cookie", ""), headers


def form_headers(body):
    return {"Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(body.encode()))}


@pytest.fixture(scope="module")
def rogue_kdcs(lab_dir):
    """A second MIT KDC per realm name, with the same users and passwords
    but its own service keys: what an attacker on the KDC's address runs."""
    rogues = {}

    def get(kdc):
        if kdc.kind not in rogues:
            base = os.path.join(lab_dir, f"rogue-{kdc.kind}")
            rogue = kdlab.Realm(base, realm=kdc.realm, domain=kdc.domain)
            rogues[kdc.kind] = rogue.start()
        return rogues[kdc.kind]
    yield get
    for rogue in rogues.values():
        rogue.stop()


def test_rogue_kdc_is_refused(kd_httpd, users, kdc_backend, rogue_kdcs):
    """The rogue KDC accepts alice's password and issues a ticket for the
    front end, which the front end's keytab cannot open."""
    kdc = users
    rogue = rogue_kdcs(kdc)
    mark = rogue.kdc_log_mark()
    httpd = kd_httpd("pwrogue", "127.0.0.2", server_name=kdc.host("node1"), env=rogue.env(),
                     conf_fn=lambda d: front_conf(kdc, kdc_backend, d),
                     extra_modules=("auth_basic",) + PROXY_MODULES)
    httpd.allowed |= {"KD00301", "AH01617", "AH01631", "AH01807"}
    emark = httpd.error_log_mark()
    status, _, body = basic(httpd, "/pw/env.cgi", "alice", kdlab.USERS["alice"])
    assert status == 401, body
    lines = httpd.error_log_since(emark)
    assert any("did not verify with the keytab" in l for l in lines), lines
    # the rogue did answer: a TGT and a ticket for the front end
    assert any(f"alice@{kdc.realm} for HTTP/{kdc.host('node1')}" in l
               for l in rogue.kdc_log_since(mark)), rogue.kdc_log_since(mark)


# ------------------------------------------------------------ a KDC that cannot be reached

RELAY_IP = "127.0.0.9"


@pytest.fixture
def relay(users):
    """A kdlab.KdcRelay in front of the realm's KDC (see test_770)."""
    kdc = users
    with open(kdc.r.krb5_conf) as f:
        addr = re.search(r"(?m)^\s*kdc\s*=\s*(\S+)", f.read()).group(1)
    host, _, port = addr.partition(":")
    r = kdlab.KdcRelay(RELAY_IP, (host, int(port or 88)))
    yield r
    r.close()


@pytest.fixture
def relayed_front(kd_httpd, users, kdc_backend, relay):
    """The front end, its KDC behind the relay."""
    kdc = users
    conf_path = relay.krb5_conf(kdc.r.krb5_conf, kdc.r.path(f"krb5-relay-{relay.port}.conf"))
    httpd = kd_httpd("pwrelay", "127.0.0.2", server_name=kdc.host("node1"),
                     env={**kdc.r.env(), "KRB5_CONFIG": conf_path},
                     conf_fn=lambda d: front_conf(kdc, kdc_backend, d),
                     extra_modules=("auth_basic",) + PROXY_MODULES)
    httpd.allowed |= {"KD00301", "AH01617", "AH01631", "AH01807"}
    return httpd


def unreachable(httpd, mark, user):
    """The one KD00301 line since mark: error level, kdc-unreachable, naming user."""
    lines = httpd.error_log_since(mark)
    found = kdclient.kd_lines(lines, "KD00301")
    assert kdclient.causes(lines) == ["kdc-unreachable"], lines
    level, _, msg = found[0]
    assert level == "error" and user in msg, found
    # said as an outage, not as a refused password
    assert "no KDC answered to check the password" in msg and "refused the password" not in msg
    assert not any("answered without asking the KDC" in l for l in lines), lines
    return msg


def after_the_kdc_is_back(httpd, relay, user):
    """The KDC answers again: no wait for KdelegPasswordFailureCache (30 s).
    The right password works at once, asking the KDC; a wrong one is
    wrong-password from the KDC, then (only then) from the failure cache."""
    asked = relay.requests
    status, _, body = basic(httpd, "/pw/env.cgi", user, PASSWORD)
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_AUTH_METHOD"] == "password", body
    assert relay.requests > asked
    for from_cache in (False, True):
        mark, asked = httpd.error_log_mark(), relay.requests
        status, headers, _ = basic(httpd, "/pw/env.cgi", user, WRONG)
        assert status == 401 and headers["www-authenticate"].startswith("Basic"), headers
        lines = httpd.error_log_since(mark)
        assert kdclient.causes(lines) == ["wrong-password"], lines
        assert any("answered without asking the KDC" in l for l in lines) == from_cache, lines
        assert (relay.requests == asked) == from_cache


def test_kdc_down_fails_closed(relayed_front, users, relay):
    """A KDC that refuses connections: 500 with cause kdc-unreachable, for
    the right password and a wrong one alike (nothing tells them apart);
    never 401 (a wrong password to the user), and never remembered."""
    front = relayed_front
    # alice logged in before: her success is remembered, and serves her
    # (where nothing is delegated) while the KDC is down
    alice = kdlab.USERS["alice"]
    assert basic(front, "/pw/env.cgi", "alice", alice)[0] == 200
    relay.down()
    asked = relay.requests
    status, _, body = basic(front, "/pw/env.cgi", "alice", alice)
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == users.user("alice"), body
    assert relay.requests == asked
    for password in (PASSWORD, WRONG, PASSWORD):
        mark = front.error_log_mark()
        status, headers, body = basic(front, "/pw/env.cgi", "kd791user", password)
        assert status == 500, (status, body)
        assert "www-authenticate" not in headers and "REMOTE_USER" not in body, headers
        unreachable(front, mark, users.user("kd791user"))
    relay.up()
    after_the_kdc_is_back(front, relay, "kd791user")


def test_silent_kdc_fails_closed(relayed_front, users, relay):
    """A KDC that accepts and never answers: the request waits for it (no
    early 401), then fails as kdc-unreachable. MIT would give up by itself
    after ~25 s; the test ends the wait by hanging up, as test_770 does."""
    front = relayed_front
    relay.mode = "blackhole"
    mark = front.error_log_mark()
    results = []
    waiting = threading.Thread(target=lambda: results.append(
        basic(front, "/pw/env.cgi", "kd791user", PASSWORD)), daemon=True)
    waiting.start()
    deadline = time.monotonic() + 10
    while relay.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay.requests == 1
    time.sleep(1)
    assert waiting.is_alive() and results == []
    relay.close_held()
    waiting.join(30)
    assert not waiting.is_alive()
    status, headers, body = results[0]
    assert status == 500 and "www-authenticate" not in headers, (status, body)
    unreachable(front, mark, users.user("kd791user"))
    relay.mode = "forward"
    after_the_kdc_is_back(front, relay, "kd791user")


# ------------------------------------------------------------ behind mod_proxy

@pytest.fixture
def echo_backend(kd_httpd, users):
    """A back end that authenticates nobody and shows the Authorization
    header it received (CGIPassAuth), on the back end's host."""
    kdc = users

    def conf(d):
        return f"""
ScriptAlias /cgi/ "{d}/cgi-bin/"
<Location /cgi/>
    Require all granted
    CGIPassAuth On
</Location>
"""
    return kd_httpd("pwecho", "127.0.0.4", server_name=kdc.host("backend"), env=kdc.r.env(),
                    conf_fn=conf)


@pytest.fixture
def proxy_front(kd_httpd, users, kdc_backend, echo_backend):
    """Password locations proxied to the back ends: with KdelegProxyNegotiate
    (to the Kerberos back end and to the echo), without it, and without it
    but with RequestHeader unset Authorization."""
    kdc = users
    back = f"HTTP/{kdc.host('backend')}"
    basic_lines = 'AuthType Basic\n    AuthName "web"\n    AuthBasicProvider kdeleg\n' \
                  '    Require valid-user'
    kerberos = f"http://127.0.0.4:{kdc_backend.port}/private/cgi/"
    echo = f"http://127.0.0.4:{echo_backend.port}/cgi/"
    extra = f"""
<Location /pwproxyneg/>
    {basic_lines}
    KdelegProtocolTransition Off
    KdelegProxyNegotiate {back}
    ProxyPass {kerberos}
</Location>
<Location /pwechoneg/>
    {basic_lines}
    KdelegProtocolTransition Off
    KdelegProxyNegotiate {back}
    ProxyPass {echo}
</Location>
<Location /pwecho/>
    {basic_lines}
    ProxyPass {echo}
</Location>
<Location /pwechounset/>
    {basic_lines}
    RequestHeader unset Authorization
    ProxyPass {echo}
</Location>
"""
    httpd = kd_httpd("pwproxy", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=lambda d: front_conf(kdc, kdc_backend, d, extra=extra),
                     extra_modules=("auth_basic",) + PROXY_MODULES)
    httpd.allowed |= {"KD00301", "AH01617", "AH01631", "AH01807"}
    return httpd


def basic_header(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_proxy_negotiate_replaces_the_password(proxy_front, users):
    """KdelegProxyNegotiate: the back end gets a Negotiate token made from
    the password login's ticket (S4U2Proxy, no protocol transition), and
    authenticates the user with it; the Basic header, the password in it,
    never leaves the front end."""
    kdc = users
    password = kdlab.USERS["alice"]
    mark = kdc.r.kdc_log_mark()
    status, _, body = basic(proxy_front, "/pwproxyneg/env.cgi", "alice", password)
    assert status == 200, body
    env = kdclient.cgi_env(body)   # the Kerberos back end's CGI
    assert env["REMOTE_USER"] == kdc.user("alice") and env["AUTH_TYPE"] == "Negotiate", body
    assert kdc.s4u2proxy(kdc.r.kdc_log_since(mark), "HTTP/backend")
    status, _, body = basic(proxy_front, "/pwechoneg/env.cgi", "alice", password)
    assert status == 200, body
    got = kdclient.cgi_env(body).get("HTTP_AUTHORIZATION", "")
    assert got.startswith("Negotiate ") and len(got) > 100, body
    assert basic_header("alice", password) not in body and password not in body
    assert base64.b64encode(password.encode()).decode() not in body


def test_proxied_basic_is_forwarded_unless_unset(proxy_front, users):
    """Without KdelegProxyNegotiate, mod_proxy forwards the client's
    Authorization header as it does for any Basic provider: the password
    reaches the back end. RequestHeader unset Authorization keeps it on the
    front end, after the provider has checked it."""
    sent = basic_header("kd791user", PASSWORD)
    status, _, body = basic(proxy_front, "/pwecho/env.cgi", "kd791user", PASSWORD)
    assert status == 200, body
    assert kdclient.cgi_env(body).get("HTTP_AUTHORIZATION") == sent, body
    status, _, body = basic(proxy_front, "/pwechounset/env.cgi", "kd791user", PASSWORD)
    assert status == 200, body
    env = kdclient.cgi_env(body)
    assert "HTTP_AUTHORIZATION" not in env and PASSWORD not in body, body
    # still a checked login: a wrong password is not proxied at all
    status, _, body = basic(proxy_front, "/pwechounset/env.cgi", "kd791user", WRONG)
    assert status == 401 and "HTTP_" not in body, body
