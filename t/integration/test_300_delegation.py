"""Constrained delegation (S4U2Proxy) for Kerberos users against the real
LDAP-backed KDC: tickets for a back end *as the user*, delivered to a CGI
as KRB5CCNAME and to mod_proxy back ends as a fresh Negotiate header; every
failure cause reproduced with the KDC's real answers."""

import os

import pytest

import kdclient
from conftest import negotiate_conf
from kdmit import delegation_causes, env_of, front_conf, proxied_location, s4u2proxy_requests
from kdnames import BACKEND, BALANCER_PROXY_MODULES, NODE1, VIP

@pytest.fixture
def front(kd_httpd, realm, backend):
    httpd = kd_httpd("front", "127.0.0.2", server_name=NODE1, extra_modules=BALANCER_PROXY_MODULES,
                     conf_fn=lambda d: front_conf(realm, d, backend, extra=proxied_location(backend) + f"""
<Proxy balancer://backends>
    BalancerMember http://127.0.0.4:{backend.port}
</Proxy>
<Location /balanced/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/{BACKEND}
    ProxyPass balancer://backends/private/cgi/
</Location>
"""))
    httpd.ccache_dir = os.path.join(httpd.dir, "ccache")
    yield httpd
    assert kdclient.settled_listing(httpd.ccache_dir) == [], "a credential cache was left behind"


# ------------------------------------------------------------ delivery

@pytest.mark.parametrize("host,impersonator", [(NODE1, "HTTP/node1"), (VIP, "HTTP/vip")])
def test_cgi_reaches_backend_as_the_user(front, alice_ccache, realm, host, impersonator):
    mark = realm.kdc_log_mark()
    status, _, body, _ = kdclient.negotiate(front, "/private/cgi/backend.cgi", alice_ccache,
                                            host=host)
    assert status == 200, body
    env = env_of(body)
    # the back end saw alice, not the web server
    assert env["BACKEND_REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert env["BACKEND_KDELEG_SPN"] == f"HTTP/{BACKEND}@EXAMPLE.TEST"
    # the cache: 0600, owned by the httpd user, alice's, only the back-end ticket
    assert env["CCACHE"].startswith("FILE:" + front.ccache_dir + "/krb5cc_kdeleg_")
    mode, owner = env["CCACHE_STAT"].split()
    assert mode == "600"
    assert owner == ("www-data" if os.geteuid() == 0 else owner)
    assert env["KLIST_CLIENT"] == "alice@EXAMPLE.TEST"
    tickets = [v for k, v in (l.split("=", 1) for l in body.splitlines() if "=" in l)
               if k == "KLIST_TICKET"]
    assert tickets == [f"HTTP/{BACKEND}@EXAMPLE.TEST"]
    # the KDC did S4U2Proxy for the identity the ticket was issued to
    s4u = [l for l in realm.kdc_log_since(mark) if "TGS_REQ" in l and "ISSUE" in l
           and f"HTTP/{BACKEND}" in l]
    assert s4u and all(f"{impersonator}.example.test@EXAMPLE.TEST" in l for l in s4u), s4u


def test_ccache_removed_after_request(front, alice_ccache):
    status, _, body, _ = kdclient.negotiate(front, "/private/cgi/backend.cgi", alice_ccache)
    assert status == 200
    path = env_of(body)["CCACHE"][len("FILE:"):]
    assert kdclient.settled_listing(front.ccache_dir) == []
    assert not os.path.exists(path)


def test_no_ccache_without_delegate_to(kd_httpd, realm, alice_ccache):
    httpd = kd_httpd("front-plain", "127.0.0.2", server_name=NODE1,
                     conf_fn=lambda d: negotiate_conf(realm, d, "node1"))
    status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)
    assert status == 200
    assert "KRB5CCNAME" not in env_of(body)


@pytest.mark.parametrize("path", ["/proxied/env.cgi", "/balanced/env.cgi"])
def test_proxy_sends_fresh_negotiate_as_the_user(front, alice_ccache, path):
    for _ in range(3):  # a fresh authenticator every time: no replay at the back end
        status, _, body, _ = kdclient.negotiate(front, path, alice_ccache)
        assert status == 200, body
        env = env_of(body)
        assert env["REMOTE_USER"] == "alice@EXAMPLE.TEST"  # as seen by the back end
        assert env["KDELEG_SPN"] == f"HTTP/{BACKEND}@EXAMPLE.TEST"


# ------------------------------------------------------------ failures

def failing_front(kd_httpd, realm, backend, location_extra, name="front-fail", extra=""):
    httpd = kd_httpd(name, "127.0.0.2", server_name=NODE1, extra_modules=BALANCER_PROXY_MODULES,
                     conf_fn=lambda d: front_conf(realm, d, backend, location_extra, extra))
    httpd.allowed.add("KD00401")
    return httpd


def test_target_not_allowed(kd_httpd, realm, backend, alice_ccache):
    httpd = failing_front(kd_httpd, realm, backend, "    KdelegDelegateTo HTTP/other.example.test\n")
    mark = httpd.error_log_mark()
    status, _, _, _ = kdclient.negotiate(httpd, "/private/cgi/backend.cgi", alice_ccache)
    assert status == 500
    assert delegation_causes(httpd, mark) == ["delegation-not-allowed"]
    msg = kdclient.kd_lines(httpd.error_log_since(mark), "KD00401")[0][2]
    assert "msDS-AllowedToDelegateTo" in msg and "krbAllowedToDelegateTo" in msg
    # the status page keeps the target's last result
    targets = {t["target"]: t for t in kdclient.status(httpd)["delegation_targets"]}
    other = targets["HTTP/other.example.test"]
    assert other["last_cause"] == "delegation-not-allowed" and other["failed"] == 1
    assert other["last_ok"] is None


def test_target_not_allowed_when_proxied_is_502(kd_httpd, realm, backend, alice_ccache):
    httpd = failing_front(kd_httpd, realm, backend, "",
                           extra=proxied_location(backend, "other.example.test"))
    mark = httpd.error_log_mark()
    status, _, _, _ = kdclient.negotiate(httpd, "/proxied/env.cgi", alice_ccache)
    assert status == 502
    assert delegation_causes(httpd, mark) == ["delegation-not-allowed"]


def test_error_document_sees_the_delegation_cause(kd_httpd, realm, backend, alice_ccache):
    httpd = failing_front(kd_httpd, realm, backend, "    KdelegDelegateTo HTTP/nosuch.example.test\n",
                          name="front-errdoc", extra="ErrorDocument 500 /cgi-bin/env.cgi\n")
    status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/backend.cgi", alice_ccache)
    assert status == 500
    assert env_of(body)["REDIRECT_KDELEG_ERROR"] == "spn-unknown"


def test_backend_spn_unknown(kd_httpd, realm, backend, alice_ccache):
    httpd = failing_front(kd_httpd, realm, backend, "    KdelegDelegateTo HTTP/nosuch.example.test\n")
    mark = httpd.error_log_mark()
    status, _, _, _ = kdclient.negotiate(httpd, "/private/cgi/backend.cgi", alice_ccache)
    assert status == 500
    assert delegation_causes(httpd, mark) == ["spn-unknown"]


def test_user_not_delegable(front, realm):
    front.allowed.add("KD00401")
    carol = realm.kinit("carol", realm.path("ccache", "carol.cc"))
    mark = front.error_log_mark()
    status, _, _, _ = kdclient.negotiate(front, "/private/cgi/backend.cgi", carol)
    assert status == 500
    assert delegation_causes(front, mark) == ["user-not-delegable"]


def test_continue_without_credentials(kd_httpd, realm, backend, alice_ccache):
    httpd = failing_front(kd_httpd, realm, backend, """    KdelegDelegateTo HTTP/other.example.test
    KdelegDelegationFailure continue
""")
    status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/env.cgi", alice_ccache)
    assert status == 200, body
    env = env_of(body)
    assert env["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert env["KDELEG_ERROR"] == "delegation-not-allowed"
    assert "KRB5CCNAME" not in env


def test_proxy_continue_strips_client_authorization(kd_httpd, realm, backend, alice_ccache):
    """Without delegated credentials the back end gets no Authorization at
    all: the client's own token is never forwarded."""
    httpd = failing_front(kd_httpd, realm, backend, "", extra=f"""
<Location /proxied/>
    AuthType Negotiate
    Require valid-user
    KdelegProxyNegotiate HTTP/other.example.test
    KdelegDelegationFailure continue
    ProxyPass http://127.0.0.4:{backend.port}/open/
</Location>
""")
    status, _, body, _ = kdclient.negotiate(httpd, "/proxied/env.cgi", alice_ccache)
    assert status == 200, body
    assert "HAD_NEGOTIATE" not in env_of(body)


def test_kdc_down_then_back_without_restart(front, realm, alice_ccache):
    """Tickets obtained before keep working from the node's cache while the
    KDC is down; a user without one gets kdc-unreachable; when the KDC is
    back, that user works too, without a restart."""
    front.allowed.add("KD00401")
    bob = realm.kinit("bob", realm.path("ccache", "bob-kdcdown.cc"))
    bob_token = kdclient.Token(bob, NODE1)  # bob's service ticket, obtained while the KDC runs
    assert kdclient.negotiate(front, "/private/cgi/backend.cgi", alice_ccache)[0] == 200
    realm.stop_kdc()
    try:
        status, _, body, _ = kdclient.negotiate(front, "/private/cgi/backend.cgi", alice_ccache)
        assert status == 200, body
        assert env_of(body)["BACKEND_REMOTE_USER"] == "alice@EXAMPLE.TEST"
        mark = front.error_log_mark()
        status, _, _ = kdclient.request(front, "/private/cgi/backend.cgi",
                                        headers={"Authorization": bob_token.header})
        assert status == 500
        assert delegation_causes(front, mark) == ["kdc-unreachable"]
    finally:
        realm.start_kdc()
    status, _, body, _ = kdclient.negotiate(front, "/private/cgi/backend.cgi", bob)
    assert status == 200, body
    assert env_of(body)["BACKEND_REMOTE_USER"] == "bob@EXAMPLE.TEST"


# ------------------------------------------------------------ ticket cache

@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_ticket_cache_one_kdc_request_per_ticket_lifetime(kd_httpd, realm, backend,
                                                          alice_ccache, mpm):
    httpd = kd_httpd("front-cache-" + mpm, "127.0.0.2", server_name=NODE1, mpm=mpm,
                     extra_modules=BALANCER_PROXY_MODULES,
                     conf_fn=lambda d: front_conf(realm, d, backend, extra=proxied_location(backend)))
    assert kdclient.wait_for_processes(httpd, 3) >= 3  # several children share one cache
    mark = realm.kdc_log_mark()
    for i in range(200):
        status, _, body, _ = kdclient.negotiate(httpd, "/proxied/env.cgi", alice_ccache)
        assert status == 200, (i, body)
        assert env_of(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
    issued = s4u2proxy_requests(realm, mark)
    assert len(issued) == 1, "\n".join(
        issued + [m for _, _, m in kdclient.kd_lines(httpd.error_log_since(httpd.start_mark))
                  if m.startswith(("ticket cache", "kdeleg"))])


def test_without_cache_every_request_asks_the_kdc(kd_httpd, realm, backend, alice_ccache):
    httpd = kd_httpd("front-nocache", "127.0.0.2", server_name=NODE1,
                     extra_modules=BALANCER_PROXY_MODULES,
                     conf_fn=lambda d: "KdelegCache none\n" + front_conf(realm, d, backend))
    mark = realm.kdc_log_mark()
    for _ in range(10):
        assert kdclient.negotiate(httpd, "/private/cgi/backend.cgi", alice_ccache)[0] == 200
    assert len(s4u2proxy_requests(realm, mark)) == 10


def test_cached_tickets_stay_with_their_user(front, realm, alice_ccache):
    bob = realm.kinit("bob", realm.path("ccache", "bob-cache.cc"))
    mark = realm.kdc_log_mark()
    for ccache, user in ((alice_ccache, "alice"), (bob, "bob"), (alice_ccache, "alice"),
                         (bob, "bob")):
        status, _, body, _ = kdclient.negotiate(front, "/private/cgi/backend.cgi", ccache)
        assert status == 200, body
        env = env_of(body)
        # from the cache or not, each user gets their own ticket
        assert env["BACKEND_REMOTE_USER"] == f"{user}@EXAMPLE.TEST"
        assert env["KLIST_CLIENT"] == f"{user}@EXAMPLE.TEST"
    # one S4U2Proxy request per user: the second round came from the cache
    assert len(s4u2proxy_requests(realm, mark)) == 2


def test_without_socache_module_no_cache_and_it_says_so(kd_httpd, realm, backend, alice_ccache):
    """No KdelegCache and no mod_socache_shmcb: delegation still works, every
    request asks the KDC, and an INFO line KD00502 explains why."""
    httpd = kd_httpd("front-noshmcb", "127.0.0.2", server_name=NODE1,
                     extra_modules=("proxy", "proxy_http"),
                     conf_fn=lambda d: front_conf(realm, d, backend))
    note = kdclient.kd_lines(httpd.error_log_since(httpd.start_mark), "KD00502")
    assert note and note[0][0] == "info" and "mod_socache_shmcb" in note[0][2]
    mark = realm.kdc_log_mark()
    for _ in range(3):
        status, _, body, _ = kdclient.negotiate(httpd, "/private/cgi/backend.cgi", alice_ccache)
        assert status == 200, body
        assert env_of(body)["BACKEND_REMOTE_USER"] == "alice@EXAMPLE.TEST"
    assert len(s4u2proxy_requests(realm, mark)) == 3
