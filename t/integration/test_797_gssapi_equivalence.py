"""Migrating from mod_auth_gssapi: the same location under mod_auth_gssapi
(Debian's libapache2-mod-auth-gssapi, AuthType GSSAPI) and under mod_kdeleg
(AuthType Negotiate), in one httpd, answers the same clients alike for the
features both have (docs/migrating.md): the challenge, a login and its
mutual-authentication reply, the user's names, a replayed token,
GssapiNegotiateOnce / KdelegNegotiateOnce, GssapiLocalName /
KdelegRemoteUser local, and the gssapi-no-negotiate variable. On both KDCs."""

import os

import pytest

import kdclient
import kdconf
from conftest import negotiate_conf

PEER_SO = "/usr/lib/apache2/modules/mod_auth_gssapi.so"
pytestmark = pytest.mark.skipif(not os.path.exists(PEER_SO),
                                reason="libapache2-mod-auth-gssapi not installed")
CGI = "env.cgi"


@pytest.fixture
def twins(kd_httpd, kdc):
    """/gss-X/ under mod_auth_gssapi and /kd-X/ under mod_kdeleg for each X."""
    keytab = kdc.r.keytab("node1")

    def conf(d):
        def pair(name, gss=(), kd=()):
            out = ""
            for prefix, auth in (("gss", ("AuthType GSSAPI", 'AuthName "lab"',
                                          f"GssapiCredStore keytab:{keytab}",
                                          "GssapiAllowedMech krb5") + gss),
                                 ("kd", ("AuthType Negotiate",) + kd)):
                path = f"/{prefix}-{name}/"
                out += f'ScriptAlias {path} "{d}/cgi-bin/"\n' + kdconf.location(
                    path, *auth, "Require valid-user")
            return out
        return negotiate_conf(kdc.r, d, "node1", [f"HTTP/{kdc.host('node1')}"], extra=(
            'BrowserMatch "^QuietClient" gssapi-no-negotiate\n'
            + pair("plain")
            + pair("once", gss=("GssapiNegotiateOnce On",), kd=("KdelegNegotiateOnce On",))
            + pair("local", gss=("GssapiLocalName On",), kd=("KdelegRemoteUser local",))))
    httpd = kd_httpd("twins", "127.0.0.2", server_name=kdc.host("node1"), env=kdc.r.env(),
                     conf_fn=conf, extra_modules=("auth_gssapi",))
    httpd.allowed |= {"KD00301", "auth_gssapi:error"}   # both log the refusals
    return httpd


def both(httpd, name, send):
    """send(path) for /gss-name/ and /kd-name/: (gss answer, kd answer)."""
    return send(f"/gss-{name}/{CGI}"), send(f"/kd-{name}/{CGI}")


def challenge(headers):
    return headers.get("www-authenticate")


def test_no_credentials_are_challenged_alike(twins):
    gss, kd = both(twins, "plain", lambda p: kdclient.request(twins, p))
    assert gss[0] == kd[0] == 401
    assert challenge(gss[1]) == challenge(kd[1]) == "Negotiate"


def test_a_login_gives_the_same_user(twins, kdc, kdc_alice):
    answers = both(twins, "plain", lambda p: kdclient.negotiate(twins, p, kdc_alice))
    envs = []
    for status, headers, body, tok in answers:
        assert status == 200, body
        assert tok.finish(headers["www-authenticate"])      # mutual authentication
        envs.append(kdclient.cgi_env(body))
    gss, kd = envs
    assert gss["REMOTE_USER"] == kd["REMOTE_USER"] == kdc.user("alice")
    assert gss["GSS_NAME"] == kd["GSS_NAME"] == kdc.user("alice")


def test_local_names_alike(twins, kdc, kdc_alice):
    gss, kd = both(twins, "local", lambda p: kdclient.negotiate(twins, p, kdc_alice))
    assert gss[0] == kd[0] == 200
    users = [kdclient.cgi_env(a[2])["REMOTE_USER"] for a in (gss, kd)]
    assert users[0] == users[1], users


def spent(twins, kdc, ccache, path):
    tok = kdclient.Token(ccache, kdc.host("node1"))
    status, _, body = kdclient.request(twins, path, headers={"Authorization": tok.header})
    assert status == 200, body
    return tok.header


def test_a_replayed_token_is_refused_alike(twins, kdc, kdc_alice):
    """Both refuse with 401 and the Negotiate scheme (mod_auth_gssapi adds the
    KDC-style error as a token; mod_kdeleg invites a fresh one)."""
    answers = []
    for prefix in ("gss", "kd"):
        path = f"/{prefix}-plain/{CGI}"
        replay = spent(twins, kdc, kdc_alice, path)
        answers.append(kdclient.request(twins, path, headers={"Authorization": replay}))
    (gs, gh, _), (ks, kh, _) = answers
    assert gs == ks == 401
    assert challenge(gh).split(" ")[0] == challenge(kh) == "Negotiate", (gh, kh)


def test_negotiate_once_alike(twins):
    """A token that is not one: challenged again by both, except under
    GssapiNegotiateOnce / KdelegNegotiateOnce, where neither challenges."""
    bad = {"Authorization": "Negotiate AAAA"}
    for name, challenged in (("plain", "Negotiate"), ("once", None)):
        gss, kd = both(twins, name, lambda p: kdclient.request(twins, p, headers=bad))
        assert gss[0] == kd[0] == 401, name
        assert challenge(gss[1]) == challenge(kd[1]) == challenged, (name, gss[1], kd[1])


def test_gssapi_no_negotiate_alike(twins):
    gss, kd = both(twins, "plain",
                   lambda p: kdclient.request(twins, p, headers={"User-Agent": "QuietClient/1"}))
    assert gss[0] == kd[0] == 401
    assert challenge(gss[1]) is None and challenge(kd[1]) is None, (gss[1], kd[1])
