"""Group authorization from the PAC (issue 16, item 1), on both KDCs.

- AD: groups are created at test time with samba-tool on the lab's DC (a
  global group alice is in directly, a global group holding that one:
  nested, a universal and a domain-local group, and one alice is not in),
  and deleted again when the module's tests are done. "Require
  kdeleg-group" grants by SID and by KdelegGroupMap alias (given in the
  same <Location>: resolved at start-up; at server level: resolved per
  request), inside <RequireAll>/<RequireAny>; an unknown alias grants
  nothing (KD00305). KdelegPublishGroups On exports KDELEG_GROUP_SIDS. The
  session cookie carries the groups: a request with only the cookie passes
  the group check. Protocol transition: a Basic user's groups come from
  the S4U2Self ticket, fetched when the group check asks and then used for
  delegation; its groups (with S-1-18-2, "service asserted identity") are
  published.
- MIT: the KDC issues no logon-info, so the group check denies with
  no-group-info (403 under AuthzSendForbiddenOnFailure On, 401 without),
  and the status page counts the cause."""

import base64
import hashlib
import os
import subprocess

import pytest

import kdclient
from conftest import negotiate_conf, private_ccache_dir
from kdsite import key_file

WEB_PASSWORD = "Web-pass-795"
# Outside any realm: a SID no lab user's PAC holds.
FOREIGN_SID = "S-1-5-21-1-2-3-4242"
GROUPS = {  # name: samba-tool group scope
    "kd795direct": "Global",
    "kd795outer": "Global",      # holds kd795direct: alice is in it by nesting
    "kd795universal": "Universal",
    "kd795local": "Domain",      # domain local
    "kd795outsiders": "Global",  # alice is not in it
}
MEMBERS = {"kd795direct": ["alice"], "kd795outer": ["kd795direct"],
           "kd795universal": ["alice"], "kd795local": ["alice"]}


def samba_tool(ad_realm, *args):
    proc = subprocess.run(["/usr/bin/samba-tool", *args, "-s", ad_realm.smb_conf],
                          capture_output=True, text=True,
                          env={**os.environ, **ad_realm.env()})
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def ad_groups(ad_realm):
    """{group name: SID} of the groups above; deleted after the module."""
    created = []

    def cleanup():
        for name in reversed(created):
            subprocess.run(["/usr/bin/samba-tool", "group", "delete", name,
                            "-s", ad_realm.smb_conf], capture_output=True,
                           env={**os.environ, **ad_realm.env()})
    try:
        sids = {}
        for name, scope in GROUPS.items():
            samba_tool(ad_realm, "group", "add", name, f"--group-scope={scope}",
                       "--group-type=Security")
            created.append(name)
            shown = samba_tool(ad_realm, "group", "show", name, "--attributes=objectSid")
            sids[name] = [line.split(":", 1)[1].strip() for line in shown.splitlines()
                          if line.startswith("objectSid:")][0]
        for group, members in MEMBERS.items():
            samba_tool(ad_realm, "group", "addmembers", group, ",".join(members))
        yield sids
    finally:
        cleanup()


@pytest.fixture
def groups(kdc, request):
    """The AD groups' SIDs; on MIT, placeholders no PAC will ever hold."""
    if kdc.kind == "ad":
        return request.getfixturevalue("ad_groups")
    return {name: f"S-1-5-21-7-8-9-{1100 + i}" for i, name in enumerate(GROUPS)}


@pytest.fixture
def alice(kdc, groups):
    """alice's TGT taken after the groups exist (a TGT keeps the groups of
    its issue time)."""
    path = kdc.r.path("ccache", "alice-795.cc")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return kdc.r.kinit("alice", path)


def htpasswd(path, users):
    digest = base64.b64encode(hashlib.sha1(WEB_PASSWORD.encode()).digest()).decode()
    with open(path, "w") as f:
        f.writelines(f"{u}:{{SHA}}{digest}\n" for u in users)
    os.chmod(path, 0o644)


def basic(user):
    return "Basic " + base64.b64encode(f"{user}:{WEB_PASSWORD}".encode()).decode()


@pytest.fixture
def front(kd_httpd, kdc, groups, lab_dir):
    keys = key_file(lab_dir, "site-795")
    g = groups

    def conf(d):
        private_ccache_dir(d)
        htpasswd(f"{d}/users", ["alice"])

        def loc(path, *lines, auth="AuthType Negotiate"):
            return (f'ScriptAlias /{path}/ "{d}/cgi-bin/"\n<Location /{path}/>\n    {auth}\n'
                    "    AuthzSendForbiddenOnFailure On\n"
                    + "".join(f"    {line}\n" for line in lines) + "</Location>\n")
        basic_auth = (f'AuthType Basic\n    AuthName "web"\n    AuthBasicProvider file\n'
                      f'    AuthUserFile "{d}/users"\n    KdelegProtocolTransition On\n'
                      f'    KdelegDelegateTo HTTP/{kdc.host("backend")}\n'
                      f'    KdelegCcacheDir "{d}/ccache"')
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"], extra=(
            f"KdelegSession On\nKdelegSessionKeyFile {keys}\n"
            f"KdelegUserRealm {kdc.realm}\n"
            # server level: resolved when a request asks
            f"KdelegGroupMap OuterStaff {g['kd795outer']}\n"
            + loc("direct", f"Require kdeleg-group {g['kd795direct']}")
            + loc("nested", f"Require kdeleg-group {g['kd795outer']}")
            + loc("universal", f"Require kdeleg-group {g['kd795universal']}")
            + loc("local", f"Require kdeleg-group {g['kd795local']}")
            + loc("outsiders", f"Require kdeleg-group {g['kd795outsiders']} {FOREIGN_SID}")
            + loc("many", f"Require kdeleg-group {FOREIGN_SID} {g['kd795direct'].lower()}")
            + loc("alias-here", f"KdelegGroupMap Direct {g['kd795direct']}",
                  "Require kdeleg-group direct")
            + loc("alias-outer", "Require kdeleg-group outerstaff")
            + loc("alias-unknown", "Require kdeleg-group NoSuchAlias")
            + loc("all-ok", "<RequireAll>", "    Require valid-user",
                  f"    Require kdeleg-group {g['kd795direct']}",
                  "    Require kdeleg-group OuterStaff", "</RequireAll>")
            + loc("all-no", "<RequireAll>", f"    Require kdeleg-group {g['kd795direct']}",
                  f"    Require kdeleg-group {g['kd795outsiders']}", "</RequireAll>")
            + loc("any", "<RequireAny>", f"    Require kdeleg-group {g['kd795outsiders']}",
                  "    Require kdeleg-group OuterStaff", "</RequireAny>")
            + loc("any-no", "<RequireAny>", f"    Require kdeleg-group {g['kd795outsiders']}",
                  f"    Require kdeleg-group {FOREIGN_SID}", "</RequireAny>")
            + loc("publish", "Require valid-user", "KdelegPublishGroups On")
            + loc("pt-group", f"Require kdeleg-group {g['kd795direct']}", auth=basic_auth)
            + loc("pt-publish", "Require valid-user", "KdelegPublishGroups On",
                  auth=basic_auth)
            + loc("pt-off-group", f"Require kdeleg-group {g['kd795direct']}",
                  auth=basic_auth.replace("KdelegProtocolTransition On",
                                          "KdelegProtocolTransition Off"))))
    httpd = kd_httpd("groups", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf, extra_modules=("auth_basic", "authn_file"))
    # mod_authz_core's "authorization failure" line; no-group-info and the
    # unknown alias
    httpd.allowed |= {"AH01631", "KD00301", "KD00305"}
    return httpd


def get(front, path, ccache):
    status, headers, body, _ = kdclient.negotiate(front, f"/{path}/env.cgi", ccache)
    return status, headers, body


def session_cookie(headers):
    cookie = [c.split(";", 1)[0] for c in headers.get("set-cookie", "").split("\n")
              if c.startswith("kdeleg_session=")]
    assert cookie, headers
    return cookie[0]


def test_groups_by_sid_and_alias(front, kdc, alice, groups):
    """AD: direct, nested, universal and domain-local groups by SID and
    alias, combined. MIT: every group check denies with no-group-info (403
    under AuthzSendForbiddenOnFailure On), once per request, counted on the
    status page."""
    expected = {"direct": 200, "nested": 200, "universal": 200, "local": 200,
                "outsiders": 403, "many": 200, "alias-here": 200, "alias-outer": 200,
                "all-ok": 200, "all-no": 403, "any": 200, "any-no": 403}
    if kdc.kind == "mit":
        for path in expected:
            mark = front.error_log_mark()
            status, _, body = get(front, path, alice)
            assert status == 403, (path, body)
            assert kdclient.causes(front.error_log_since(mark)) == ["no-group-info"], path
        assert kdclient.status_agrees(front, "no-group-info")
        return
    got = {path: get(front, path, alice)[0] for path in expected}
    assert got == expected
    mark = front.error_log_mark()
    assert get(front, "alias-unknown", alice)[0] == 403
    lines = front.error_log_since(mark)
    assert [m for _, _, m in kdclient.kd_lines(lines, "KD00305") if "NoSuchAlias" in m]
    assert not kdclient.causes(lines)  # the groups were known: no no-group-info


def test_published_group_sids(front, kdc, alice, groups):
    status, _, body = get(front, "publish", alice)
    env = kdclient.cgi_env(body)
    assert status == 200, body
    if kdc.kind == "mit":
        assert "KDELEG_GROUP_SIDS" not in env
        return
    sids = env["KDELEG_GROUP_SIDS"].split(" ")
    domain = groups["kd795direct"].rsplit("-", 1)[0]
    for name in ("kd795direct", "kd795outer", "kd795universal", "kd795local"):
        assert groups[name] in sids, (name, sids)
    assert groups["kd795outsiders"] not in sids
    assert domain + "-513" in sids  # Domain Users, the primary group
    assert len(sids) == len(set(sids))


def test_session_carries_the_groups(front, kdc, alice, groups):
    """AD: a request with only the session cookie passes the group check.
    MIT: the session has no groups, so the cookie alone is denied with
    no-group-info."""
    status, headers, body = get(front, "publish", alice)
    assert status == 200, body
    cookie = session_cookie(headers)
    if kdc.kind == "mit":
        mark = front.error_log_mark()
        status, _, body = kdclient.request(front, "/nested/env.cgi", headers={"Cookie": cookie})
        assert status == 403, body
        assert kdclient.causes(front.error_log_since(mark)) == ["no-group-info"]
        return
    for path, want in (("nested", 200), ("any", 200), ("local", 200), ("outsiders", 403)):
        status, _, body = kdclient.request(front, f"/{path}/env.cgi", headers={"Cookie": cookie})
        assert status == want, (path, body)
    status, _, body = kdclient.request(front, "/publish/env.cgi", headers={"Cookie": cookie})
    env = kdclient.cgi_env(body)
    assert env["KDELEG_AUTH_METHOD"] == "session"
    assert groups["kd795outer"] in env["KDELEG_GROUP_SIDS"].split(" ")


def test_protocol_transition_groups(front, kdc, alice, groups):
    """A Basic user's groups come from the S4U2Self ticket, fetched when
    Require kdeleg-group asks (authorization runs before fixups) and then
    used as the delegation evidence too: AD grants by group and delegates
    (every time: two requests); MIT has no PAC (no-group-info). Without
    KdelegProtocolTransition there are no groups (no-group-info, saying
    why). After S4U2Self its ticket's groups are published (AD)."""
    for _ in range(2):
        mark = front.error_log_mark()
        status, _, body = kdclient.request(front, "/pt-group/env.cgi",
                                           headers={"Authorization": basic("alice")})
        env = kdclient.cgi_env(body)
        if kdc.kind == "ad":
            assert status == 200, body
            assert env["KDELEG_AUTH_METHOD"] == "protocol-transition"
            assert env["KRB5CCNAME"].startswith("FILE:"), body   # delegated with that ticket
            assert kdclient.causes(front.error_log_since(mark)) == []
        else:
            assert status == 403, body
            assert kdclient.causes(front.error_log_since(mark)) == ["no-group-info"]
    mark = front.error_log_mark()
    status, _, body = kdclient.request(front, "/pt-off-group/env.cgi",
                                       headers={"Authorization": basic("alice")})
    assert status == 403, body
    lines = front.error_log_since(mark)
    assert kdclient.causes(lines) == ["no-group-info"]
    assert "KdelegProtocolTransition is Off" in "".join(lines), lines
    status, _, body = kdclient.request(front, "/pt-publish/env.cgi",
                                       headers={"Authorization": basic("alice")})
    env = kdclient.cgi_env(body)
    assert status == 200 and env["KDELEG_AUTH_METHOD"] == "protocol-transition", body
    if kdc.kind == "ad":
        sids = env["KDELEG_GROUP_SIDS"].split(" ")
        assert groups["kd795outer"] in sids and "S-1-18-2" in sids, sids
    else:
        assert "KDELEG_GROUP_SIDS" not in env
