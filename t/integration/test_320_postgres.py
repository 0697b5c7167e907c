"""Web app to SQL server as the user: a CGI runs psql against a real
PostgreSQL 15 (GSSAPI logins, service principal postgres/db.example.test,
hostgssenc in pg_hba.conf) with the ticket mod_kdeleg obtained by S4U2Proxy
and exported as KRB5CCNAME.  The database sees the user, not the web server."""

import os
import uuid

import pytest

import kdclient
import kdconf
from kdclient import PSQL_CGI
import kdlab
from conftest import negotiate_conf, private_ccache_dir
from kdnames import NODE1

DB = "postgres/db.example.test"



@pytest.fixture(scope="module")
def db(realm):
    pg = kdlab.Postgres(realm.base, realm)
    try:
        yield pg.start()
    finally:
        pg.stop()  # start() cleans up after itself; stop() is safe twice


def front_conf(realm, db, d):
    """/private: delegation to the database; /plain: the same CGI, none."""
    os.makedirs(f"{d}/cgi-bin", exist_ok=True)
    private_ccache_dir(d)
    kdconf.install_script(f"{d}/cgi-bin/psql.cgi", PSQL_CGI, PSQL=f"{kdlab.PG_BIN}/psql",
                          CONNINFO=db.psql_args("$DBUSER"))
    return negotiate_conf(realm, d, "node1", [f"HTTP/{NODE1}"], location_extra=f"""    KdelegDelegateTo {DB}
    KdelegCcacheDir "{d}/ccache"
""", extra=f"""ScriptAlias /plain/cgi/ "{d}/cgi-bin/"
<Location /plain>
    AuthType Negotiate
    Require valid-user
</Location>
""")


@pytest.fixture
def front(kd_httpd, realm, db):
    httpd = kd_httpd("front-pg", "127.0.0.2", server_name=NODE1,
                     conf_fn=lambda d: front_conf(realm, db, d))
    httpd.ccache_dir = os.path.join(httpd.dir, "ccache")
    yield httpd
    assert kdclient.settled_listing(httpd.ccache_dir) == [], "a credential cache was left behind"


@pytest.fixture
def bob_ccache(realm):
    return realm.kinit("bob", realm.path("ccache", f"bob-320-{uuid.uuid4().hex}.cc"))


def run_cgi(front, ccache, path="/private/cgi/psql.cgi"):
    note = f"t320-{uuid.uuid4().hex}"
    status, _, body, _ = kdclient.negotiate(front, f"{path}?{note}", ccache)
    assert status == 200, body
    return kdclient.cgi_env(body), note, body


def assert_db_saw(db, env, body, user, note):
    assert env["PSQL_EXIT"] == "0", body
    assert env["DB_USER"] == user, body
    assert env["DB_GSS"] == "t"
    assert env["DB_ENCRYPTED"] == "t"
    assert env["DB_PRINCIPAL"] == f"{user}@EXAMPLE.TEST"
    assert env["NOTE_OWNER"] == user
    # the row as the superuser sees it
    assert db.admin_sql(f"select owner from notes where body = '{note}'").split() == [user]


# ------------------------------------------------------------ delegation

def test_database_sees_the_user(front, db, realm, alice_ccache):
    kdc_mark, db_mark = realm.kdc_log_mark(), db.log_mark()
    env, note, body = run_cgi(front, alice_ccache)
    # the CGI ran as the web server's user, with a per-request cache...
    assert env["CGI_UID"] == ("www-data" if os.geteuid() == 0 else env["CGI_UID"])
    assert env["CCNAME"].startswith("FILE:" + front.ccache_dir + "/")
    # ...and the database saw alice: Kerberos-authenticated, GSS-encrypted
    assert_db_saw(db, env, body, "alice", note)
    log = db.log_since(db_mark)
    assert any('identity="alice@EXAMPLE.TEST" method=gss' in l for l in log), log
    assert any("user=alice database=app" in l and "encrypted=yes" in l for l in log), log
    assert not any("www-data" in l for l in log), log
    # the ticket came from S4U2Proxy by the front end's identity
    s4u = [l for l in realm.kdc_log_since(kdc_mark)
           if "TGS_REQ" in l and "ISSUE" in l and DB in l]
    assert s4u and all(f"HTTP/{NODE1}@EXAMPLE.TEST" in l for l in s4u), s4u


def test_each_request_as_its_own_user(front, db, alice_ccache, bob_ccache):
    """bob, alice, bob through the same server: no cross-user leakage."""
    for user, ccache in (("bob", bob_ccache), ("alice", alice_ccache),
                         ("bob", bob_ccache)):
        env, note, body = run_cgi(front, ccache)
        assert_db_saw(db, env, body, user, note)


def test_ccache_removed_after_request(front, alice_ccache, bob_ccache):
    paths = []
    for ccache in (alice_ccache, bob_ccache):
        env, _, body = run_cgi(front, ccache)
        assert env["PSQL_EXIT"] == "0", body
        paths.append(env["CCNAME"][len("FILE:"):])
    assert kdclient.settled_listing(front.ccache_dir) == []
    assert not any(os.path.exists(p) for p in paths)


def test_no_way_in_without_delegation(front, db, alice_ccache):
    """Same CGI, location without KdelegDelegateTo: no KRB5CCNAME, and the
    web server has no credentials of its own for the database."""
    db_mark = db.log_mark()
    env, note, body = run_cgi(front, alice_ccache, "/plain/cgi/psql.cgi")
    assert env["CCNAME"] == "unset"
    assert env["PSQL_EXIT"] != "0", body
    assert "GSSAPI" in body
    assert "DB_USER" not in env and "NOTE_OWNER" not in env
    assert db.admin_sql(f"select count(*) from notes where body = '{note}'").strip() == "0"
    # libpq gave up before logging in: nobody but the superuser's check above
    assert not any("connection authorized: user=alice" in l or "method=gss" in l
                   for l in db.log_since(db_mark))
