#!/usr/bin/python3
"""Regenerate the seeds of the pac fuzz target (t/fuzz/seeds/pac/).

Whole PACs (*.pac) and bare logon-info buffers (*.ndr): the example PAC of
MS-PAC section 3, read out of t/unit/test_kd_pac.c so that there is one copy
of it, and logon infos built here the way an AD DC marshals them (type
serialization version 1 headers, then KERB_VALIDATION_INFO in NDR with its
deferred pointers in order). Nothing in them is secret.

    /usr/bin/python3 t/fuzz/seeds/make-pac-seeds.py
"""
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT_TEST = os.path.join(HERE, "..", "..", "unit", "test_kd_pac.c")


class Ndr:
    """Little-endian NDR with 4-byte alignment counted from the stream start."""

    def __init__(self):
        self.b = bytearray()
        self.ref = 0x00020000

    def align(self, n):
        self.b += bytes(-len(self.b) % n)

    def u16(self, v):
        self.align(2)
        self.b += struct.pack("<H", v)

    def u32(self, v):
        self.align(4)
        self.b += struct.pack("<I", v)

    def ptr(self, present):
        if present:
            self.ref += 4
        self.u32(self.ref if present else 0)

    def ustr(self, s):
        """RPC_UNICODE_STRING in the structure (None: a null pointer)."""
        n = 2 * len(s or "")
        self.u16(n)
        self.u16(n)
        self.ptr(s is not None)

    def ustr_body(self, s):
        if s is None:
            return
        units = s.encode("utf-16-le")
        for v in (len(units) // 2, 0, len(units) // 2):
            self.u32(v)
        self.b += units

    def sid(self, text):
        parts = [int(x) for x in text.split("-")[2:]]
        auth, subs = parts[0], parts[1:]
        self.u32(len(subs))
        self.b += bytes([1, len(subs)]) + auth.to_bytes(6, "big")
        for s in subs:
            self.u32(s)

    def groups(self, rids):
        """GROUP_MEMBERSHIP array: a RID alone gets attributes 7 (mandatory,
        enabled by default, enabled), or give (rid, attributes)."""
        self.u32(len(rids))
        for r in rids:
            rid, attrs = r if isinstance(r, tuple) else (r, 7)
            self.u32(rid)
            self.u32(attrs)


def logon_info(name, domain, domain_sid, user, primary, uac, groups=(), extra=(),
               res_sid=None, res=()):
    w = Ndr()
    w.b += bytes([1, 0x10, 8, 0, 0xcc, 0xcc, 0xcc, 0xcc]) + bytes(8)
    w.u32(w.ref)
    w.b += bytes(48)                      # six FILETIMEs
    for s in (name, None, None, None, None, None):
        w.ustr(s)
    w.b += bytes(4)                       # LogonCount, BadPasswordCount
    for v in (user, primary, len(groups)):
        w.u32(v)
    w.ptr(bool(groups))
    w.u32((0x20 if extra else 0) | (0x200 if res_sid else 0))
    w.b += bytes(16)                      # UserSessionKey
    w.ustr("DC1")
    w.ustr(domain)
    w.ptr(True)                           # LogonDomainId
    w.b += bytes(8)
    w.u32(uac)
    w.b += bytes(28)
    w.u32(len(extra))
    w.ptr(bool(extra))
    w.ptr(res_sid is not None)
    w.u32(len(res))
    w.ptr(bool(res))
    assert len(w.b) == 20 + 216
    w.ustr_body(name)
    if groups:
        w.groups(groups)
    w.ustr_body("DC1")
    w.ustr_body(domain)
    w.sid(domain_sid)
    if extra:
        # KERB_SID_AND_ATTRIBUTES: a SID alone gets attributes 7, or give
        # (sid, attributes)
        extra = [e if isinstance(e, tuple) else (e, 7) for e in extra]
        w.u32(len(extra))
        for _, attrs in extra:
            w.ptr(True)
            w.u32(attrs)
        for s, _ in extra:
            w.sid(s)
    if res_sid:
        w.sid(res_sid)
    if res:
        w.groups(res)
    w.align(8)
    w.b[8:12] = struct.pack("<I", len(w.b) - 16)
    return bytes(w.b)


def pac(buffers):
    """PACTYPE: (type, data) pairs, each buffer on an 8-byte boundary."""
    head = struct.pack("<II", len(buffers), 0)
    off = 8 + 16 * len(buffers)
    body = b""
    for t, data in buffers:
        head += struct.pack("<IIQ", t, len(data), off)
        padded = data + bytes(-len(data) % 8)
        body += padded
        off += len(padded)
    return head + body


def ms_example():
    text = open(UNIT_TEST).read()
    array = re.search(r"ms_pac\[\] = \{(.*?)\};", text, re.S).group(1)
    return bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", array))


def main():
    out = os.path.join(HERE, "pac")
    os.makedirs(out, exist_ok=True)
    example = ms_example()
    assert len(example) == 0x540
    rich = logon_info("bob", "EXAMPLE", "S-1-5-21-1-2-3", 1200, 513, 0x10, [513, 1104, 1105],
                      ["S-1-18-1", "S-1-5-21-7-8-9-1000"], "S-1-5-21-4-5-6", [2001, 2002])
    client_info = bytes(8) + struct.pack("<H", 6) + "bob".encode("utf-16-le")
    resource_groups = logon_info(
        "heidi", "EXAMPLE", "S-1-5-21-1-2-3", 1600, 513, 0x210,
        [513, 1104, (1190, 0), (1191, 0x17), 1104],
        ["S-1-18-1", "S-1-5-21-1-2-3-1150", "S-1-5-21-4-5-6-2050", "S-1-5-21-7-8-9-1000",
         ("S-1-5-21-7-8-9-1001", 0)],
        "S-1-5-21-4-5-6", [(2001, 0x20000007), (2002, 0x20000007), (2003, 0x20000000)])
    seeds = {
        "ms-pac-example.pac": example,
        "ms-pac-logon-info.ndr": example[0x48:0x48 + 0x4b0],
        "minimal.ndr": logon_info("alice", "EXAMPLE", "S-1-5-21-1-2-3", 1103, 513, 0x210),
        "rich.ndr": rich,
        "rich.pac": pac([(1, rich), (10, client_info), (6, bytes(16)), (7, bytes(16))]),
        "not-delegated.ndr": logon_info("carol", "EXAMPLE", "S-1-5-21-1-2-3", 1300, 513,
                                        0x4210),
        "protected-users.ndr": logon_info("dave", "EXAMPLE", "S-1-5-21-1-2-3", 1400, 513, 0x210,
                                          [513, 525]),
        # groups (t/unit/test_kd_groups.c reads these): resource groups as
        # Windows marks them (SE_GROUP_RESOURCE | 7), one disabled group and
        # one deny-only, extra SIDs inside the logon and resource domains
        # (folded into their RIDs), in another domain, and disabled
        "resource-groups.ndr": resource_groups,
        "resource-groups.pac": pac([(1, resource_groups), (10, client_info),
                                    (6, bytes(16)), (7, bytes(16))]),
        # what S4U2Self adds: S-1-18-2, service asserted identity
        "s4u2self.ndr": logon_info("erin", "ADEX", "S-1-5-21-11-22-33", 1105, 513, 0x210,
                                   [513, 1110], ["S-1-18-2"]),
        # the resource domain is the logon domain
        "resource-same-domain.ndr": logon_info("frank", "EXAMPLE", "S-1-5-21-1-2-3", 1500, 513,
                                               0x210, [1104], [], "S-1-5-21-1-2-3",
                                               [(1104, 0x20000007), (3001, 0x20000007)]),
        # a user in 700 groups (RIDs 1105..1804, out of order) and Domain Users
        "groups-700.ndr": logon_info("grace", "ADEX", "S-1-5-21-11-22-33", 1100, 513, 0x210,
                                     [513] + [1105 + (i * 3) % 700 for i in range(700)],
                                     ["S-1-18-1"]),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
