#!/usr/bin/python3
"""Regenerate the Kerberos token vectors used by the core unit tests.

Starts a throwaway lab realm, obtains alice's TGT and writes two initial
context tokens for HTTP/node1.example.test: one SPNEGO-wrapped (what
browsers and curl send) and one raw Kerberos mechanism token. The realm is
destroyed afterwards, so the tokens carry nothing of value.

    /usr/bin/python3 t/unit/vectors/make-vectors.py
"""
import base64
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lab"))
import kdlab  # noqa: E402


def init_token(mech_oid):
    import gssapi
    name = gssapi.Name("HTTP@node1.example.test", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=name, usage="initiate", mech=gssapi.OID.from_int_seq(mech_oid),
                                 flags=gssapi.RequirementFlag.mutual_authentication)
    return ctx.step()


def main():
    base = tempfile.mkdtemp(prefix="kdvectors-")
    os.chmod(base, 0o755)
    realm = kdlab.Realm(base)
    try:
        realm.start()
        ccache = realm.kinit("alice", realm.path("ccache", "alice.cc"))
        os.environ.update(realm.env(ccache))
        for name, oid in (("spnego_krb5.b64", "1.3.6.1.5.5.2"),
                          ("krb5_raw.b64", "1.2.840.113554.1.2.2")):
            with open(os.path.join(HERE, name), "w") as f:
                f.write(base64.b64encode(init_token(oid)).decode() + "\n")
            print("wrote", name)
    finally:
        kdlab.stop_all(base)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
