#!/usr/bin/python3
"""Pre-generate fresh SPNEGO tokens (Kerberos AP-REQs) for the benchmark.

    tokens.py --ccache FILE --host node1.example.test --count N --out PREFIX
              [--shards 2] [--mech spnego|krb5]

Writes PREFIX.0 .. PREFIX.<shards-1>, one base64 token per line, every
token from its own initiator context (its own authenticator), so each one
can be accepted exactly once under replay protection.  One worker process
per shard (about 5,000 tokens/s each on the lab machines); the shards are
what t/bench/tokens.lua reads, one per wrk thread.  The ccache must hold
the user's TGT (or already the service ticket); KRB5_CONFIG must point at
the lab's krb5.conf.  Prints "tokens: N in S s" on stderr.

Library: token(host, mech=SPNEGO) -> base64 string (uses $KRB5CCNAME);
generate_users(ccaches, ...) the same as generate() with many users' ccaches
taken in turn (shard k holds users k, k+shards, ...); login(principals,
password, directory) makes one FILE ccache with a TGT per principal, in
parallel (the many-users mode of t/bench/run).
"""

import argparse
import base64
import multiprocessing
import os
import sys
import time

import gssapi

SPNEGO = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")
KRB5 = gssapi.OID.from_int_seq("1.2.840.113554.1.2.2")
MECHS = {"spnego": SPNEGO, "krb5": KRB5}


def token(host, mech=SPNEGO, creds=None, name=None):
    """One fresh token for HTTP@host, as a browser would send it (mutual
    authentication requested, no unconstrained delegation)."""
    name = name or gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=name, usage="initiate", mech=mech, creds=creds,
                                 flags=gssapi.RequirementFlag.mutual_authentication)
    return base64.b64encode(ctx.step()).decode()


def _worker(args):
    ccache, host, mech, count, path = args
    os.environ["KRB5CCNAME"] = ccache
    name = gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service)
    creds = gssapi.Credentials(usage="initiate")
    with open(path + ".tmp", "w") as f:
        for _ in range(count):
            f.write(token(host, MECHS[mech], creds, name))
            f.write("\n")
    os.rename(path + ".tmp", path)
    return count


def _users_worker(args):
    ccaches, host, mech, count, path = args
    name = gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service)
    creds = [None] * len(ccaches)
    with open(path + ".tmp", "w") as f:
        for i in range(count):
            k = i % len(ccaches)
            if creds[k] is None:
                creds[k] = gssapi.Credentials(usage="initiate", store={"ccache": ccaches[k]})
            f.write(token(host, MECHS[mech], creds[k], name))
            f.write("\n")
    os.rename(path + ".tmp", path)
    return count


def generate_users(ccaches, host, count, prefix, shards=2, mech="spnego"):
    """As generate(), the tokens round-robin over the users of ccaches
    ("FILE:..." each): shard k takes ccaches[k::shards] in turn.  A user's
    first token asks the KDC for the service ticket (kept in its ccache)."""
    shards = min(shards, len(ccaches))
    return _sharded(_users_worker, count, prefix, shards,
                    lambda i, n, path: (ccaches[i::shards], host, mech, n, path))


def _login_worker(args):
    principals, password, paths = args
    import gssapi.raw as graw
    for principal, path in zip(principals, paths):
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        got = graw.acquire_cred_with_password(name, password.encode(), usage="initiate")
        graw.store_cred_into({b"ccache": ("FILE:" + path).encode()}, got.creds,
                             usage="initiate", overwrite=True, set_default=False)
    return len(principals)


def login(principals, password, directory, procs=2):
    """A TGT for each principal (one shared password) in directory/<i>.cc;
    returns the "FILE:..." names in the order of principals."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"{i}.cc") for i in range(len(principals))]
    jobs = [(principals[k::procs], password, paths[k::procs]) for k in range(procs)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        pool.map(_login_worker, jobs)
    return ["FILE:" + p for p in paths]


def generate(ccache, host, count, prefix, shards=2, mech="spnego"):
    """Write count tokens split over prefix.0..prefix.<shards-1>; returns the paths."""
    return _sharded(_worker, count, prefix, shards,
                    lambda i, n, path: (ccache, host, mech, n, path))


def _sharded(worker, count, prefix, shards, job):
    """count tokens over prefix.0..prefix.<shards-1>, one worker process
    per shard (job(i, tokens, path) is its argument); returns the paths."""
    per = [count // shards + (1 if i < count % shards else 0) for i in range(shards)]
    paths = [f"{prefix}.{i}" for i in range(shards)]
    jobs = [job(i, n, path) for i, (n, path) in enumerate(zip(per, paths))]
    if shards == 1:
        worker(jobs[0])
    else:
        with multiprocessing.get_context("fork").Pool(shards) as pool:
            pool.map(worker, jobs)
    return paths


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ccache", required=True, help="FILE ccache with the user's TGT")
    p.add_argument("--host", required=True, help="service host: tokens are for HTTP@HOST")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True, help="output prefix (PREFIX.0, PREFIX.1...)")
    p.add_argument("--shards", type=int, default=2, help="files = wrk threads (default 2)")
    p.add_argument("--mech", choices=sorted(MECHS), default="spnego")
    a = p.parse_args()
    t0 = time.monotonic()
    generate(a.ccache, a.host, a.count, a.out, a.shards, a.mech)
    print(f"tokens: {a.count} in {time.monotonic() - t0:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
