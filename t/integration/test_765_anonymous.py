"""Anonymous tickets (issue 14, item 1), on the MIT realm: Active
Directory issues none. With anonymous PKINIT (kinit -n) the KDC gives
WELLKNOWN/ANONYMOUS@WELLKNOWN:ANONYMOUS a service ticket for the front
end; MIT's acceptor does not set GSS_C_ANON_FLAG, so mod_kdeleg checks
the name: refused by default (anonymous-ticket, 403), served only where
KdelegAllowAnonymous On."""

import os

import pytest

import kdclient
import kdlab
from conftest import negotiate_conf
from kdnames import NODE1



@pytest.fixture
def anonymous_ccache(realm, lab_dir, monkeypatch):
    # kdclient.Token points KRB5CCNAME at the ccache it uses: restore it after
    monkeypatch.setenv("KRB5CCNAME", os.environ.get("KRB5CCNAME", ""))
    return realm.kinit_anonymous(os.path.join(lab_dir, "ccache", "anonymous-765.cc"))


@pytest.fixture
def front(kd_httpd, realm):
    h = kd_httpd("anon", "127.0.0.2", server_name=NODE1, conf_fn=lambda d: negotiate_conf(
        realm, d, "node1", extra=f"""ScriptAlias /open/ "{d}/cgi-bin/"
<Location /open/>
    AuthType Negotiate
    Require valid-user
    KdelegAllowAnonymous On
</Location>
"""))
    h.allowed |= {"KD00301"}
    return h


def test_anonymous_ticket_is_refused_by_default(front, anonymous_ccache):
    mark = front.error_log_mark()
    status, headers, body, _ = kdclient.negotiate(front, "/private/cgi/env.cgi", anonymous_ccache)
    assert status == 403, body
    assert "REMOTE_USER" not in body
    assert kdclient.causes(front.error_log_since(mark)) == ["anonymous-ticket"]
    assert kdclient.status_agrees(front, "anonymous-ticket")


def test_anonymous_ticket_where_allowed(front, anonymous_ccache):
    status, _, body, _ = kdclient.negotiate(front, "/open/env.cgi", anonymous_ccache)
    assert status == 200, body
    assert kdclient.cgi_env(body)["REMOTE_USER"] == kdlab.ANONYMOUS_PRINCIPAL


def test_named_users_unaffected(front, alice_ccache):
    status, _, body, _ = kdclient.negotiate(front, "/private/cgi/env.cgi", alice_ccache)
    assert status == 200 and kdclient.cgi_env(body)["REMOTE_USER"] == "alice@EXAMPLE.TEST"
