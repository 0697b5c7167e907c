"""KDC hygiene (issue 14, item 3), on both KDCs.

- The ticket's sname and realm are outside its encrypted part: the client
  spells them. Any spelling of a configured SPN gets the one credential the
  keytab's spelling names (no reload, no ERROR line); a realm the keytab has
  no key of the service in is wrong-spn (401), answered from memory.
- No KDC traffic before a token is verified: garbage tokens with a matching
  sname make no AS-REQ, even where delegation is on and nothing is cached.
- The service's own TGT is fetched outside the lock logins take, once per
  keytab at a time: while a KDC that accepts and never answers holds that
  fetch, logins keep flowing in the same child, requests that need the
  TGT wait for the one fetch, and its failure (kdc-unreachable) is held for
  at most 30 s; cached delegations keep flowing meanwhile.
- A KDC refusal is never held: fixed at the KDC, the next request works.
  Neither is a KDC that refuses connections at once (down): asking it
  again costs nothing (test_300, test_610 restart the KDC and go on).

The KDC the front end uses is a kdlab.KdcRelay in front of the real one,
turned into a black hole when the test says so. MIT 1.20 has neither
kdc_timeout nor max_retries (Heimdal's names): its own schedule gives up on
a silent TCP KDC after about 25 s (10 s on TCP, then UDP, refused here, until
the TCP deadline), so the test ends the wait by closing the held connections
once it has seen what it needs."""

import base64
import re
import threading
import time

import pytest

import kdclient
import kdlab
from conftest import negotiate_conf, private_ccache_dir

RELAY_IP = "127.0.0.9"
HOLD = 30  # seconds an unreachable KDC is held (kd_accept.c KD_TGT_FAILURE_HOLD)


def upstream(kdc):
    """The real KDC's address, as the realm's krb5.conf names it."""
    with open(kdc.r.krb5_conf) as f:
        addr = re.search(r"(?m)^\s*kdc\s*=\s*(\S+)", f.read()).group(1)
    host, _, port = addr.partition(":")
    return host, int(port or 88)


@pytest.fixture
def relay(kdc):
    r = kdlab.KdcRelay(RELAY_IP, upstream(kdc))
    yield r
    r.close()


def front_conf(kdc, d):
    private_ccache_dir(d)
    backend = f"HTTP/{kdc.host('backend')}"
    # One child, so "the same child" is not left to chance.
    return negotiate_conf(kdc.r, d, "node1", [kdc.spn("node1").split("@")[0],
                                              kdc.spn("vip").split("@")[0]], extra=f"""
ServerLimit 1
StartServers 1
MaxRequestWorkers 8
MinSpareThreads 1
MaxSpareThreads 16
LogLevel info kdeleg:debug
ScriptAlias /deleg/ "{d}/cgi-bin/"
<Location /deleg/>
    AuthType Negotiate
    Require valid-user
    KdelegDelegateTo {backend}
    KdelegCcacheDir "{d}/ccache"
</Location>
""")


@pytest.fixture
def front(kd_httpd, kdc, relay):
    conf_path = relay.krb5_conf(kdc.r.krb5_conf, kdc.r.path(f"krb5-relay-{relay.port}.conf"))
    httpd = kd_httpd("hygiene", "127.0.0.2", server_name=kdc.host("node1"),
                     env={**kdc.r.env(), "KRB5_CONFIG": conf_path},
                     extra_modules=("socache_shmcb",),   # the ticket cache
                     conf_fn=lambda d: front_conf(kdc, d))
    httpd.allowed |= {"KD00301", "KD00401"}
    return httpd


def fresh_ccache(kdc, user):
    path = kdc.r.path("ccache", f"{user}-770-{time.monotonic_ns()}.cc")
    return kdc.r.kinit(user, path)


def raw_token(ccache, host):
    return kdclient.Token(ccache, host, mech=kdclient.KRB5).raw


def respell(raw, old, new):
    """The token with its first plain-text occurrence of old (the ticket's
    sname or realm) written as new, same length: the encrypted parts are
    untouched, so the KDC's key still opens it."""
    assert len(old) == len(new) and old in raw
    return raw.replace(old, new, 1)


def send(front, path, raw, host=None):
    return kdclient.request(front, path, host=host, headers={
        "Authorization": "Negotiate " + base64.b64encode(raw).decode()})


def delegation_causes(lines):
    """Cause names of the KD00401 delegation-failure lines."""
    return [re.search(r"cause ([a-z-]+)", msg).group(1)
            for _, _, msg in kdclient.kd_lines(lines, "KD00401")]


def acquisitions(lines):
    return [l for l in lines if "acquired acceptor credentials" in l]


# ------------------------------------------------------------ the sname is the client's

def test_any_spelling_of_a_configured_spn_is_one_credential(front, kdc, kdc_alice):
    host = kdc.host("node1")
    status, _, body = send(front, "/private/cgi/env.cgi", raw_token(kdc_alice, host))
    assert status == 200
    canonical = kdclient.cgi_env(body)["KDELEG_SPN"]
    assert canonical == kdc.spn("node1")
    mark = front.error_log_mark()
    spellings = {
        "service": (b"\x1b\x04HTTP", b"\x1b\x04hTtP"),
        "host": (host.encode(), host.upper().encode()),
        "realm": (kdc.realm.encode(), kdc.realm.lower().encode()),
    }
    for old, new in spellings.values():
        status, _, body = send(front, "/private/cgi/env.cgi",
                               respell(raw_token(kdc_alice, host), old, new))
        assert status == 200
        env = kdclient.cgi_env(body)
        assert env["KDELEG_SPN"] == canonical and env["REMOTE_USER"] == kdc.user("alice")
    # one credential served every spelling: nothing was acquired again
    assert acquisitions(front.error_log_since(mark)) == []


def test_ad_issues_tickets_in_the_clients_spelling(front, kdc, kdc_alice):
    """AD matches SPNs ignoring case and names the ticket as asked: a real
    ticket, not a crafted one, used to end as 500 keytab-unusable."""
    if kdc.kind != "ad":
        pytest.skip("MIT's KDC matches principal names exactly")
    import gssapi
    spelled = f"hTtP/{kdc.host('node1').upper()}@{kdc.realm}"
    creds = gssapi.Credentials(usage="initiate", store={"ccache": kdc_alice})
    ctx = gssapi.SecurityContext(name=gssapi.Name(spelled, gssapi.NameType.kerberos_principal),
                                 usage="initiate", mech=kdclient.KRB5, creds=creds)
    raw = ctx.step()
    assert b"hTtP" in raw   # the KDC kept the client's spelling
    mark = front.error_log_mark()
    status, _, body = send(front, "/private/cgi/env.cgi", raw)
    assert status == 200 and kdclient.cgi_env(body)["KDELEG_SPN"] == kdc.spn("node1")
    assert not [l for l in front.error_log_since(mark) if ":error]" in l]


def test_a_realm_the_keytab_lacks_is_wrong_spn(front, kdc, kdc_alice):
    host = kdc.host("node1")
    send(front, "/private/cgi/env.cgi", raw_token(kdc_alice, host))   # warm
    evil = kdc.realm[:-4] + "EVIL"
    mark = front.error_log_mark()
    for _ in range(3):
        status, headers, _ = send(front, "/private/cgi/env.cgi",
                                  respell(raw_token(kdc_alice, host), kdc.realm.encode(),
                                          evil.encode()))
        assert status == 401 and headers.get("www-authenticate") == "Negotiate"
    lines = front.error_log_since(mark)
    assert kdclient.causes(lines) == ["wrong-spn"] * 3
    assert all("another realm" in m for _, _, m in kdclient.kd_lines(lines, "KD00301"))
    assert not [l for l in lines if ":error]" in l or ":warn]" in l]
    assert acquisitions(lines) == []


# ------------------------------------------------------------ a KDC that never answers

def tamper(raw):
    """A token whose ticket names our SPN but whose authenticator cannot be
    decrypted: the last bytes are the authenticator's ciphertext."""
    return raw[:-8] + bytes(b ^ 0x5A for b in raw[-8:])


def delegated(front, ccache, host=None, results=None):
    host = host or front.server_name
    status, _, body = send(front, "/deleg/env.cgi", raw_token(ccache, host), host=host)
    out = (status, kdclient.cgi_env(body) if status == 200 else {})
    if results is not None:
        results.append(out)
    return out


def started(target, *args):
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


def wait_until(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return cond()


def test_unanswering_kdc(front, kdc, relay):
    alice, bob = fresh_ccache(kdc, "alice"), fresh_ccache(kdc, "bob")
    relay.mode = "blackhole"

    # Garbage with a matching sname, where delegation is on and nothing is
    # cached: refused before any KDC traffic.
    mark = front.error_log_mark()
    for _ in range(3):
        status, _, _ = send(front, "/deleg/env.cgi", tamper(raw_token(bob, front.server_name)))
        assert status == 401
    assert relay.requests == 0
    # (MIT reports a bad authenticator as it reports a ticket it cannot decrypt)
    assert kdclient.causes(front.error_log_since(mark)) == ["decrypt-failed"] * 3

    # bob needs the service's TGT: its AS-REQ goes into the black hole.
    mark = front.error_log_mark()
    first = []
    fetching = started(delegated, front, bob, None, first)
    assert wait_until(lambda: relay.requests == 1)
    # Others needing it wait for that one fetch ...
    waiting = []
    waiters = [started(delegated, front, bob, None, waiting) for _ in range(3)]
    # ... while logins in the same (only) child keep flowing.
    for _ in range(6):
        status, _, body, _ = kdclient.negotiate(front, "/private/cgi/env.cgi", alice)
        assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == kdc.user("alice")
    time.sleep(1.5)   # a wait worth holding: only a KDC that makes us wait is held
    assert fetching.is_alive() and all(t.is_alive() for t in waiters)
    assert relay.requests == 1

    # End the wait (MIT would give up by itself after ~25 s).
    relay.close_held()
    fetching.join(40)
    for t in waiters:
        t.join(40)
    failed_at = time.monotonic()
    assert first == [(500, {})] and waiting == [(500, {})] * 3
    lines = front.error_log_since(mark)
    assert delegation_causes(lines) == ["kdc-unreachable"] * 4
    held = [m for _, _, m in kdclient.kd_lines(lines, "KD00401") if "held: not asking the KDC" in m]
    assert len(held) == 3
    # one AS-REQ in all: the waiters took the held failure
    assert relay.requests == 1

    # The KDC is back, but the failure is held: no request reaches it ...
    relay.mode = "forward"
    assert delegated(front, bob)[0] == 500 and relay.requests == 1
    # ... for at most HOLD seconds.
    while time.monotonic() - failed_at < HOLD + 5:
        status, env = delegated(front, bob)
        if status == 200:
            break
        time.sleep(1)
    assert status == 200 and env["KRB5CCNAME"]
    assert time.monotonic() - failed_at <= HOLD + 5
    asked = relay.requests
    assert asked > 1

    # With the TGT and bob's ticket cached, a silent KDC stops nobody who
    # needs nothing new from it.
    relay.mode = "blackhole"
    status, env = delegated(front, bob)
    assert status == 200 and env["KRB5CCNAME"]
    status, _, _, _ = kdclient.negotiate(front, "/private/cgi/env.cgi", alice)
    assert status == 200
    assert relay.requests == asked


def test_kdc_refusal_is_never_held(front, kdc, relay):
    """The service account is refused a TGT, then fixed at the KDC: the
    very next request works, well inside the hold of an unreachable KDC."""
    bob = fresh_ccache(kdc, "bob")
    host = front.server_name
    # service tickets first: a disabled account gets none on either KDC
    tokens = [raw_token(bob, host) for _ in range(2)]
    impersonator = kdc.impersonator("node1")
    mark = front.error_log_mark()
    if kdc.kind == "mit":
        kdc.r.modprinc(impersonator, ["-allow_tix"])
    else:
        kdc.r.set_disabled(impersonator.split("@")[0], True)
    try:
        status, _, _ = send(front, "/deleg/env.cgi", tokens[0])
        assert status == 500
        cause = delegation_causes(front.error_log_since(mark))
        assert len(cause) == 1 and cause[0] != "kdc-unreachable"
    finally:
        if kdc.kind == "mit":
            kdc.r.modprinc(impersonator, ["+allow_tix"])
        else:
            kdc.r.set_disabled(impersonator.split("@")[0], False)
    status, _, body = send(front, "/deleg/env.cgi", tokens[1])
    assert status == 200 and kdclient.cgi_env(body)["KRB5CCNAME"]
