"""Anonymous PKINIT on the lab's MIT realm (issue 14, item 1, lab part):
`kinit -n` (realm.kinit_anonymous) gives WELLKNOWN/ANONYMOUS@WELLKNOWN:ANONYMOUS
a TGT, the KDC issues it service tickets, python-gssapi makes tokens from
it, the KDC certificate is a proper PKINIT one, and passwords still rule
for named users. (mod_kdeleg refusing such tickets: test_765_anonymous.py.)"""

import itertools
import re

import pytest

import kdclient
import kdlab

ANON = kdlab.ANONYMOUS_PRINCIPAL
_numbers = itertools.count(1)


@pytest.fixture
def anon_ccache(realm):
    return realm.kinit_anonymous(realm.path("ccache", f"anon-{next(_numbers)}.cc"))


def klist(realm, ccache):
    """(default principal, {service: flags}) of a ccache (klist -f)."""
    out = realm.run(["klist", "-f"], ccache).stdout
    default = re.search(r"^Default principal: (\S+)$", out, re.M)[1]
    tickets = dict(re.findall(r"^\S+ \S+\s+\S+ \S+\s+(\S+@\S+)\n\s+Flags: (\S*)$", out, re.M))
    return default, tickets


def test_kinit_anonymous_gives_anonymous_tgt(realm, anon_ccache):
    mark = realm.kdc_log_mark()
    cc = realm.kinit_anonymous(realm.path("ccache", f"anon-{next(_numbers)}.cc"))
    assert cc.endswith(".cc")
    default, tickets = klist(realm, cc)
    assert default == ANON == "WELLKNOWN/ANONYMOUS@WELLKNOWN:ANONYMOUS"
    tgt = f"krbtgt/{realm.realm}@{realm.realm}"
    assert set(tickets) == {tgt}
    assert "a" in tickets[tgt]  # TKT_FLG_ANONYMOUS
    # The KDC issued it by PKINIT (no password anywhere), to the anonymous name.
    issued = [l for l in realm.kdc_log_since(mark)
              if "AS_REQ" in l and ": ISSUE: " in l
              and f"WELLKNOWN/ANONYMOUS@{realm.realm} for {tgt}" in l]
    assert len(issued) == 1, realm.kdc_log_since(mark)


def test_anonymous_gets_service_ticket_and_gss_token(realm, anon_ccache, monkeypatch):
    mark = realm.kdc_log_mark()
    spn = realm.service("HTTP/node1")
    out = realm.run(["kvno", "HTTP/node1.example.test"], anon_ccache).stdout
    assert f"{spn}: kvno = " in out
    # The ticket decrypts with the node1 keytab (what mod_kdeleg holds).
    realm.run(["kvno", "-k", realm.keytab("node1"), "HTTP/node1.example.test"], anon_ccache)
    assert any("TGS_REQ" in l and ": ISSUE: " in l and f"{ANON} for {spn}" in l
               for l in realm.kdc_log_since(mark)), realm.kdc_log_since(mark)
    _, tickets = klist(realm, anon_ccache)
    assert "a" in tickets[spn]

    # python-gssapi (kdclient.Token) makes a Negotiate token from that ccache,
    # and an acceptor with node1's keytab sees the anonymous client.
    gssapi = pytest.importorskip("gssapi")
    monkeypatch.setenv("KRB5CCNAME", realm.env()["KRB5CCNAME"])  # Token sets it
    token = kdclient.Token(anon_ccache, "node1.example.test")
    assert token.header.startswith("Negotiate ") and token.raw
    name = gssapi.Name("HTTP@node1.example.test", gssapi.NameType.hostbased_service)
    acceptor = gssapi.Credentials(usage="accept", name=name,
                                  store={"keytab": realm.keytab("node1")})
    server = gssapi.SecurityContext(creds=acceptor, usage="accept")
    server.step(token.raw)
    assert str(server.initiator_name) == ANON


def _tlv(tag, *parts):
    body = b"".join(parts)
    n = len(body)
    length = bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + \
        n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + body


def _krbtgt_san(realm):
    """DER of subjectAltName = otherName id-pkinit-san (1.3.6.1.5.2.2) holding
    KRB5PrincipalName krbtgt/REALM@REALM (RFC 4556 3.2.2), built here from
    the RFC, independently of the openssl config that made the certificate."""
    gs = lambda s: _tlv(0x1b, s.encode())  # GeneralString
    principal = _tlv(0x30, _tlv(0xa0, _tlv(0x02, b"\x02")),  # NT-SRV-INST
                     _tlv(0xa1, _tlv(0x30, gs("krbtgt"), gs(realm))))
    krb5_name = _tlv(0x30, _tlv(0xa0, gs(realm)), _tlv(0xa1, principal))
    oid = _tlv(0x06, bytes([43, 6, 1, 5, 2, 2]))
    return _tlv(0x30, _tlv(0xa0, oid, _tlv(0xa0, krb5_name)))


def test_kdc_certificate_is_a_pkinit_kdc_certificate(realm):
    def openssl(*args):
        return kdlab._run(["openssl", *args], kdlab.base_env()).stdout

    text = openssl("x509", "-noout", "-text", "-in", realm.kdc_cert)
    eku = re.search(r"X509v3 Extended Key Usage:.*\n\s+(.*)\n", text)[1]
    assert eku.strip() == "Signing KDC Response"  # id-pkinit-KPKdc, and only it
    assert "othername: 1.3.6.1.5.2.2:" in text
    # Exact extension values, from the certificate's DER.
    der = openssl("asn1parse", "-in", realm.kdc_cert)
    values = dict(re.findall(r"OBJECT\s+:(.*)\n.*?(?:BOOLEAN.*\n.*?)?"
                             r"OCTET STRING\s+\[HEX DUMP\]:([0-9A-F]+)", der))
    assert bytes.fromhex(values["X509v3 Extended Key Usage"]) == \
        _tlv(0x30, _tlv(0x06, bytes([43, 6, 1, 5, 2, 3, 5])))
    assert bytes.fromhex(values["X509v3 Subject Alternative Name"]) == \
        _krbtgt_san(realm.realm)
    # Signed by the CA both krb5.conf and kdc.conf name as pkinit_anchors.
    assert "OK" in openssl("verify", "-CAfile", realm.ca_pem, realm.kdc_cert)
    for conf in (realm.krb5_conf, realm.kdc_conf):
        with open(conf) as f:
            assert f"pkinit_anchors = FILE:{realm.ca_pem}" in f.read()


def test_named_users_still_need_their_password(realm, anon_ccache):
    cc = realm.kinit("alice", realm.path("ccache", f"alice-anon-{next(_numbers)}.cc"))
    default, tickets = klist(realm, cc)
    assert default == realm.principal("alice")
    assert all("a" not in flags for flags in tickets.values())
    with pytest.raises(kdlab.LabError, match="Password incorrect"):
        realm.kinit("alice", cc, password="wrong")
    # kinit -n never yields a named user's ticket.
    assert klist(realm, anon_ccache)[0] == ANON
