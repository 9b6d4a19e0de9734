#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/<target>/.

Run it again after changing an input layout; it only (re)writes the files it
names (seed-*), so regression inputs added by hand (regression-*) stay.
The FuzzedDataProvider layouts are described at the top of each fuzzer.
"""
import base64
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# docs/token-format.md, "Test vectors".
XCHACHA_LINE = "xchacha20poly1305 8f2c1d5e0a7b94c3e6f1082d4b5a69c7d3e0f1a2b4c5d6e7f8091a2b3c4d5e6f"
AES_LINE = "aes256gcm 4a1f0e9d8c7b6a5948372615f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b"
PSEUDONYM_LINE = "5c1e3a7f9b2d4c6e8a0f1b3d5e7a9c2b4d6f8e0a1c3e5b7d9f2a4c6e8b0d1f3a"
TOKENS = {
    "xchacha-purl": "AQEBAAEAAQIDBAUGBwgJCgsMDQ4PEBESExQVFheUMYT1197XzXc_S62j9D-KxLMmJ1cupo19_BxijMMnCzLQKU9I4UnF4FbQr1UMP1e1ZGt_NQ2mHzNM9oFqKeE",
    "aes-uid": "AQICAQKgoaKjpKWmp6ipqquKQftb0ss6I-9NL4VZ9qyZobO03t52FHbH4mnlw03J_B1BFPy0pK9bQPwHkko",
    "aes-purl": "AQECAQIPDg0MCwoJCAcGBQQuCQnZEI70YxHt-IY8tE8jj4LKYlxdCDn_BWEiSUdkUMCY_SaeL8-JQ2UK87SeaR7AMa6mHL8eokypwr34mw8",
}


class Fdp:
    """Builds input bytes for LLVM's FuzzedDataProvider: strings and bytes
    from the front, integers from the back (little-endian, first consumed
    last in the file)."""

    def __init__(self):
        self.front = b""
        self.back = []

    def int(self, value, nbytes=1):
        self.back.append(value.to_bytes(nbytes, "little"))
        return self

    def u64(self, value):
        return self.int(value, 8)

    def string(self, s):
        b = s.encode("latin-1") if isinstance(s, str) else s
        self.front += b.replace(b"\\", b"\\\\") + b"\\|"
        return self

    def raw(self, b):
        self.front += b.encode("latin-1") if isinstance(b, str) else b
        return self

    def bytes(self):
        return self.front + b"".join(reversed(self.back))


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data.encode("latin-1") if isinstance(data, str) else data)


def token_corpus():
    t = "fuzz_token"
    for name, tok in TOKENS.items():
        write(t, name, tok)
    x = TOKENS["xchacha-purl"]
    write(t, "padded", x + "==")
    write(t, "std-alphabet", x.replace("-", "+").replace("_", "/"))
    write(t, "truncated", x[:-5])
    write(t, "trailing-bits", TOKENS["aes-uid"][:-1] + "l")
    write(t, "newline", x + "\n")
    write(t, "unknown-key", b64(b"\x01\x01\x01\x00\x07" + bytes(range(24)) + bytes(40)))
    write(t, "key-id-0", b64(b"\x01\x01\x01\x00\x00" + bytes(range(24)) + bytes(40)))
    write(t, "wrong-suite", b64(b"\x01\x01\x02\x00\x01" + bytes(range(12)) + bytes(40)))
    write(t, "version-2", b64(b"\x02\x01\x01\x00\x01" + bytes(range(24)) + bytes(40)))
    write(t, "header-only", b64(b"\x01\x02\x02\x01\x02"))
    write(t, "oversize", "A" * 600)
    # Round trips: nonce bytes, subject, campaign from the front; from the
    # back: suite, kind, nonce choice, issued_at, expires_at, now,
    # mutate_at, mutate_to, cut.
    def rt(name, xchacha, purl, subject, campaign, issued, expires, now, nonce_len=None):
        nl = 24 if xchacha else 12
        f = Fdp().int(1).int(1 if xchacha else 0).int(1 if purl else 0).int(1).u64(issued).u64(expires).u64(now)
        f.int(17, 2).int(ord("A")).int(40, 2)
        f.raw(bytes(range(nl))).string(subject).string(campaign)
        write(t, "roundtrip-" + name, f.bytes())
    rt("xchacha-purl", True, True, "cust-000042", "2026-11-newsletter", 1790000000, 1792592000, 1790050000)
    rt("aes-uid", False, False, "cust-000042", "", 1790000000, 1805552000, 1790050000)
    rt("expired", True, False, "partner:ACME-17", "research-panel", 1790000000, 1790086400, 1790086400)
    rt("future", False, True, "s", "c", 1790000301, 1890000000, 1790000000)
    rt("max-lengths", True, True, "s" * 64, "c" * 64, 0, 2**64 - 1, 2**62)
    rt("too-long", False, True, "s" * 65, "", 1, 2, 1)
    rt("unprintable", True, False, "cust\x7f", "camp\n", 1, 2, 1)
    rt("empty-subject", True, True, "", "c", 1, 2, 1)

    # Authentic plaintexts (selector 0): suite, kind, the fixed clock; then
    # nonce and plaintext bytes from the front.
    def pt(name, xchacha, purl, plaintext):
        f = Fdp().int(0).int(1 if xchacha else 0).int(1 if purl else 0).int(1)
        f.raw(bytes(24 if xchacha else 12)).raw(plaintext)
        write(t, "plaintext-" + name, f.bytes())

    def layout(issued, expires, subject, campaign, clen=None):
        return (struct.pack(">QQ", issued, expires) + bytes([len(subject)]) + subject
                + bytes([len(campaign) if clen is None else clen]) + campaign)

    pt("well-formed", True, True, layout(1790000000, 1792592000, b"cust-000042", b"2026-11-newsletter"))
    pt("no-campaign", False, False, layout(1790000000, 1805552000, b"cust-000042", b""))
    pt("trailing-byte", True, False, layout(1, 2**63, b"s", b"c") + b"x")
    pt("subject-len-0", False, True, layout(1, 2**63, b"", b"c"))
    pt("subject-len-65", True, True, layout(1, 2**63, b"s" * 65, b""))
    pt("campaign-len-short", True, True, layout(1, 2**63, b"s", b"cc", clen=3))
    pt("unprintable", False, False, layout(1, 2**63, b"s\x00", b"c\x7f"))
    pt("too-short", True, True, struct.pack(">QQ", 1, 2) + b"\x01")


def keyfile_corpus():
    t = "fuzz_keyfile"
    write(t, "xchacha", XCHACHA_LINE)
    write(t, "xchacha-lf", XCHACHA_LINE + "\n")
    write(t, "aes-crlf", AES_LINE + "\r\n")
    write(t, "aes-upper", "aes256gcm " + AES_LINE.split()[1].upper() + "\n")
    write(t, "pseudonym-lf", PSEUDONYM_LINE + "\n")
    write(t, "two-newlines", XCHACHA_LINE + "\n\n")
    write(t, "two-lines", XCHACHA_LINE + "\n" + AES_LINE + "\n")
    write(t, "two-spaces", "aes256gcm  " + AES_LINE.split()[1])
    write(t, "tab", "aes256gcm\t" + AES_LINE.split()[1])
    write(t, "trailing-space", AES_LINE + " \n")
    write(t, "short-hex", AES_LINE[:-2] + "\n")
    write(t, "non-hex", AES_LINE[:-1] + "g")
    write(t, "unknown-suite", "chacha20 " + PSEUDONYM_LINE)
    write(t, "bom", "\xef\xbb\xbf" + XCHACHA_LINE)
    write(t, "empty", "")


def policy(granted, patterns, always_kind, always="", use_rules=1):
    """The fuzz_policy.h prefix: (purpose, pattern) pairs, up to four."""
    f = Fdp().int(granted).int(len(patterns))
    purposes = [p for p, _ in patterns] + [0] * (4 - len(patterns))
    for p in purposes:
        f.int(p)
    f.int(always_kind).int(use_rules)
    if always_kind == 2:
        f.string(always)
    for _, pat in patterns:
        f.string(pat)
    return f


# Purpose indexes: 0 service, 1 analysis, 2 marketing, 3 ads.
MARKETING = [(2, "utm_*"), (2, "gclid"), (2, "fbclid"), (3, "_ga*")]
ANALYSIS = [(1, "_ga"), (1, "_ga_*"), (1, "_gid"), (3, "_fbp")]


def query_corpus():
    t = "fuzz_query_rewrite"
    tok = TOKENS["xchacha-purl"]
    cases = {
        "mail-link": (0, MARKETING, 1, "", f"ctk={tok}&utm_source=mail&utm_medium=email&page=2"),
        "granted": (0b100, MARKETING, 1, "", f"ctk={tok}&utm_source=mail&page=2"),
        "nothing-removed": (0xFF, MARKETING, 0, "", "a=1&&b=2&&"),
        "uppercase": (0, MARKETING, 1, "", "UTM_SOURCE=x&Utm_Campaign=y&GCLID=z&q=shoes"),
        "encoded-names": (0, MARKETING, 1, "", "ut%6D_source=x&%63tk=abc&%75tm_medium=y&keep=%26"),
        "empty-segments": (0, MARKETING, 0, "", "&&utm_source=a&&b=2&"),
        "no-equals": (0, MARKETING, 1, "", "ctk&gclid&x&utm_"),
        "malformed-escapes": (0, MARKETING, 1, "", "%zz=1&%=2&%2=3&utm%5=4&fbclid=%"),
        "long-name": (0, MARKETING, 1, "", "ut%6D_" + "a" * 300 + "=1&x=2"),
        "long-raw": (0, [(2, "zz*")], 0, "", "%7A%7A" + "%41" * 120 + "=1&y=2"),
        "empty": (0, MARKETING, 1, "", ""),
        "custom-always": (0, [], 2, "session_token", "session_token=abc&Session_Token=def&x=1"),
        "no-rules": (0, MARKETING, 1, "", "utm_source=a&ctk=b"),
        "unlistable": (0, [(2, "a b"), (2, "x,y*")], 0, "", "a%20b=1&x%2Cy1=2&x,y2=3&ok=4"),
        "control-bytes": (0, [(2, "\x00*")], 0, "", "%00a=1&\x00b=2&c=\x00"),
    }
    for name, (granted, pats, ak, always, q) in cases.items():
        f = policy(granted, pats, ak, always, 0 if name == "no-rules" else 1)
        f.int(16).int(200, 2).raw(q)
        write(t, name, f.bytes())


def cookie_corpus():
    t = "fuzz_cookie_rewrite"
    uid = TOKENS["aes-uid"]
    cases = {
        "returning-visitor": (0, ANALYSIS, 2, "vid", f"vid={uid}; _ga=GA1.2.3; _gid=x; lang=en"),
        "granted": (0b10, ANALYSIS, 2, "vid", f"vid={uid}; _ga=GA1.2.3; _gid=x; lang=en"),
        "no-spaces": (0, [(1, "x")], 0, "", "a;b;c;x"),
        "blank-pairs": (0, ANALYSIS, 0, "", " ; ;\t;"),
        "tabs": (0, ANALYSIS, 0, "", "\t_ga = 1 ;lang=en\t; _gid\t=2"),
        "no-equals": (0, ANALYSIS, 0, "", "noequals; _ga; =value; a=1"),
        "all-removed": (0, ANALYSIS, 0, "", "_ga=1; _gid=2; _ga_XYZ=3"),
        "case": (0, ANALYSIS, 2, "vid", "VID=1; _GA=2; _Fbp=fb.1; cart=7"),
        "empty": (0, ANALYSIS, 0, "", ""),
        "values-with-separators": (0, ANALYSIS, 0, "", "a=b=c; _ga=x=y; q=\"1;2\""),
        "unlistable": (0, [(1, "a b"), (1, "x,y")], 0, "", "a b=1; x,y=2; ok=3"),
    }
    for name, (granted, pats, ak, always, h) in cases.items():
        f = policy(granted, pats, ak, always)
        f.int(16).raw(h)
        write(t, name, f.bytes())


def set_cookie_corpus():
    t = "fuzz_set_cookie_name"
    for name, v in {
        "uid": "vid=AQIC; Path=/; Max-Age=15552000; Secure; HttpOnly; SameSite=Lax",
        "spaces": "  _ga \t= GA1.2.3; Domain=.example.com",
        "no-value": "flag; Path=/",
        "semicolon-first": "a;b=c",
        "empty-name": "=x; Path=/",
        "blank": " \t ",
        "host-prefix": "__Host-session=1; Secure; Path=/",
        "empty": "",
    }.items():
        write(t, name, v)


def record_corpus():
    t = "fuzz_record"

    def rec(name, items, declared=4):
        f = Fdp().int(0).int(declared).int(len(items))
        for it in items:
            f.string(it)
        write(t, "record-" + name, f.bytes())

    rec("full", ["v", "3", "service", "1", "analysis", "0", "marketing", "1", "exp", "1790000000", "erased", "0"])
    rec("no-version", ["analysis", "1"])
    rec("malformed-values", ["v", "2", "service", " 1", "analysis", "1 ", "marketing", "01", "ads", "true"])
    rec("bad-version", ["v", "3a", "service", "1"])
    rec("version-overflow", ["v", "18446744073709551616"])
    rec("version-max", ["v", "18446744073709551615", "ads", "1"])
    rec("bad-exp", ["v", "1", "exp", "-1"])
    rec("bad-erased", ["v", "1", "erased", "yes"])
    rec("erased", ["v", "9", "erased", "1", "service", "1"])
    rec("odd", ["v", "1", "service"])
    rec("empty", [])
    rec("duplicates", ["service", "1", "service", "0", "analysis", "0", "analysis", "1"])
    rec("undeclared", ["service", "1", "analysis", "1"], declared=1)
    rec("33-purposes", ["p31", "1", "p32", "1", "p33", "1", "service", "1"], declared=34)
    rec("empty-strings", ["", "", "v", "", "service", ""])

    def upd(name, msg):
        write(t, "update-" + name, Fdp().int(1).raw(msg).bytes())

    upd("plain", "cust-000042 7")
    upd("flush", "*")
    upd("spaces-in-subject", "partner ACME 17 12")
    upd("no-subject", " 5")
    upd("max", "x 18446744073709551615")
    upd("overflow", "x 18446744073709551616")
    upd("negative", "x -1")
    upd("no-version", "cust-000042 ")
    upd("long-subject", "s" * 65 + " 1")
    upd("control", "cust\x01 1")
    upd("star-version", "* 3")

    # Cache rule sequences. Mode 2 ops (after ttl u64, subscribed):
    # 0 announce u64, 1 store (u64 version, u32 granted, bool exists),
    # 2 now = u64, 3 now += u16, 4 ttl = u64, 5 subscribed = bool,
    # 6 valid_since = u64, 7 valid_since = now.
    f = Fdp().int(2).u64(60000).int(1)
    f.int(1).u64(3).int(5, 4).int(1)       # store v3
    f.int(3).int(1000, 2)                  # +1 s
    f.int(0).u64(4)                        # announce v4: stale
    f.int(1).u64(3).int(5, 4).int(1)       # a racing read of v3: refused
    f.int(1).u64(4).int(1, 4).int(1)       # v4 stored: fresh
    f.int(3).int(60000, 2)                 # past the ttl
    write(t, "slots-race", f.bytes())
    f = Fdp().int(2).u64(2**64 - 1).int(1)
    f.int(2).u64(2**64 - 2).int(1).u64(0).int(0, 4).int(0)  # negative entry near the end of time
    f.int(2).u64(5).int(7).int(5).int(0).int(5).int(1)
    write(t, "slots-clock", f.bytes())

    # Mode 3 world ops (after ttl 1..100000): 0 write, 1 deliver, 2 read
    # sent, 3 reply (index), 4 time += 0..5000, 5 drop, 6 resubscribe, 7 flush.
    f = Fdp().int(3).int(30000, 3)
    f.int(2).int(4).int(10, 2).int(0).int(4).int(10, 2).int(3).int(0)  # read races a write
    f.int(1).int(2).int(3).int(0)                                      # deliver, read again
    f.int(5).int(4).int(5, 2).int(0).int(4).int(5, 2).int(6)           # lost write, resubscribe
    f.int(2).int(3).int(0).int(4).int(40000, 2)                        # fresh read; ttl passes
    write(t, "world-race", f.bytes())
    f = Fdp().int(3).int(1000, 3)
    for _ in range(3):
        f.int(0).int(2).int(4).int(3, 2).int(1).int(3).int(0).int(7)
    write(t, "world-writes", f.bytes())


def resp_corpus():
    """fuzz_resp: arguments as a length byte and the bytes."""
    def command(*args):
        out = b""
        for a in args:
            a = a.encode("latin-1") if isinstance(a, str) else a
            out += bytes([len(a)]) + a
        return out
    t = "fuzz_resp"
    write(t, "hgetall", command("HGETALL", "consent:{customer-00012345}"))
    write(t, "auth-user", command("AUTH", "consent-edge", "s3cret"))
    write(t, "ping", command("PING"))
    write(t, "subscribe", command("SUBSCRIBE", "consent:updates", "consent:updates:hb:4242"))
    write(t, "empty-and-binary", command("SET", "", b"\x00\r\n*$-:+" + bytes(range(240, 256))))
    write(t, "long", command("PUBLISH", "c" * 255, "x" * 200))
    write(t, "cut-short", command("AUTH", "consent-edge")[:-3])


def roles_corpus():
    """fuzz_redis_roles: replies as trees, node by node: a type (0 nil,
    1 string, 2 status, 3 error, 4 integer, 5 array), then its string, its
    integer (a bool, then value + 2 in three bytes), or its element count and
    the elements. Mode 3 takes the rest of the input as a message."""
    t = "fuzz_redis_roles"

    def node(f, n):
        kind = n[0]
        if kind == "nil":
            f.int(0)
        elif kind in ("s", "st", "e"):
            f.int({"s": 1, "st": 2, "e": 3}[kind]).string(n[1])
        elif kind == "i":
            f.int(4).int(1).int(n[1] + 2, 3)
        else:
            f.int(5).int(len(n[1]))
            for k in n[1]:
                node(f, k)

    def reply(name, mode, tree, cap=4):
        f = Fdp().int(mode).int(cap)
        node(f, tree)
        write(t, name, f.bytes())

    def s(x):
        return ("s", x)

    def a(*kids):
        return ("a", list(kids))

    def i(v):
        return ("i", v)

    reply("addr-known", 0, a(s("127.0.0.1"), s("6380")))
    reply("addr-nil", 0, ("nil",))
    reply("addr-error", 0, ("e", "ERR No such master with that name"))
    reply("addr-port-0", 0, a(s("127.0.0.1"), s("0")))
    reply("addr-port-int", 0, a(s("::1"), i(26379)))
    reply("addr-host-space", 0, a(s("a b"), s("1")))
    reply("role-master", 1, a(s("master"), i(3129), a(a(s("127.0.0.1"), s("9001"), s("3129")),
                                                        a(s("127.0.0.1"), s("9002"), s("3100")))), cap=1)
    reply("role-master-none", 1, a(s("master"), i(0), a()))
    reply("role-replica", 1, a(s("slave"), s("127.0.0.1"), i(9000), s("connected"), i(3167)))
    reply("role-replica-sync", 1, a(s("slave"), s("127.0.0.1"), i(9000), s("sync"), i(-1)))
    reply("role-sentinel", 1, a(s("sentinel"), a(s("consent"), s("other"))))
    reply("role-bad-port", 1, a(s("slave"), s("127.0.0.1"), i(70000), s("connected"), i(1)))
    fields = ["name", "127.0.0.1:6380", "ip", "127.0.0.1", "port", "6380", "flags", "slave",
              "master-link-status", "ok", "master-host", "127.0.0.1", "master-port", "6379",
              "slave-repl-offset", "22786"]
    entry = a(*[s(x) for x in fields])
    down = a(*[s(x) for x in fields[:7] + ["s_down,slave,disconnected", "master-link-status", "err",
                                            "master-host", "?", "master-port", "0"]])
    reply("replicas", 2, a(entry, down), cap=1)
    reply("replicas-empty", 2, a())
    reply("replicas-missing-port", 2, a(a(s("ip"), s("h"), s("flags"), s("slave"))))
    reply("replicas-twice", 2, a(a(s("ip"), s("h"), s("port"), s("1"), s("flags"), s("slave"), s("ip"), s("x"))))

    def switch(name, msg):
        write(t, "switch-" + name, Fdp().int(3).raw(msg).bytes())

    switch("plain", "consent 127.0.0.1 6379 127.0.0.1 6380")
    switch("ipv6-names", "m ::1 1 redis-2.internal 65535")
    switch("extra-field", "consent 127.0.0.1 6379 127.0.0.1 6380 x")
    switch("double-space", "consent  127.0.0.1 6379 127.0.0.1 6380")
    switch("trailing-space", "consent 127.0.0.1 6379 127.0.0.1 6380 ")
    switch("port-range", "consent 127.0.0.1 0 127.0.0.1 65536")


def choice_corpus():
    t = "fuzz_choice"

    def seed(name, mode, fdp):
        write(t, name, fdp.bytes() + bytes([mode]))

    for name, body in (("form", "analysis=1&marketing=0"), ("form-encoded", "ana%6Cysis=%31&&research=0"),
                       ("form-plus", "a+b=1"), ("form-twice", "a=1&a=0"), ("form-bare", "analysis"),
                       ("form-empty", "")):
        seed(name, 0, Fdp().int(12).raw(body))
    for name, body in (("json", '{"analysis":true,"marketing":false}'), ("json-ws", ' { "a" : true } '),
                       ("json-escape", '{"ana\\u006cysis":true,"x\\"y":false}'), ("json-number", '{"a":1}'),
                       ("json-nested", '{"a":{"b":true}}'), ("json-empty", "{}")):
        seed(name, 1, Fdp().int(12).raw(body))
    seed("csrf-same", 2, Fdp().string("shop.example").string("http://shop.example").string("same-origin")
         .int(1).int(1))
    seed("csrf-null", 2, Fdp().string("shop.example").string("null").string("").int(0).int(1))
    seed("csrf-cross", 2, Fdp().string("shop.example:8080").string("https://evil.example").string("cross-site")
         .int(1).int(1))
    # A CHOICE token under the fuzzer's key (bytes 0xa0..0xbf, key id 1).
    try:
        from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt as seal
        key = bytes(range(0xa0, 0xc0))
        header = b"\x01\x03\x01\x00\x01"
        nonce = bytes(range(24))
        pt = struct.pack(">QQIB", 1790000000, 1890000000, 3, 2) + b"\x08analysis\x01" + b"\x09marketing\x00"
        seed("token", 3, Fdp().raw(b64(header + nonce + seal(pt, header, nonce, key))))
    except ImportError:
        pass
    seed("token-garbage", 3, Fdp().raw(b64(b"\x01\x03\x01\x00\x01" + bytes(60))))
    seal_fdp = Fdp().u64(1790000000).u64(1890000000).int(3, 4).int(2)
    seal_fdp.string("analysis").int(1).string("Marketing").int(0)
    seed("seal", 4, seal_fdp)
    seed("decide", 5, Fdp().int(0xff, 4).int(1, 4).int(4, 4).int(1).int(1).int(2).int(1).int(0).int(50)
         .int(2).int(7).int(2, 4).int(4, 4).int(0).int(0).int(0).int(1).int(6, 4).int(2, 4).int(2).int(1)
         .int(8, 4))


def aead_corpus():
    t = "fuzz_aead"
    h = bytes.fromhex
    # Poly1305 (mode 0): RFC 8439 2.5.2, and appendix A.3's vector 8,
    # which needs the final reduction.
    write(t, "poly-rfc", Fdp().int(0).raw(h("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"))
          .raw(b"Cryptographic Forum Research Group").bytes())
    write(t, "poly-reduce", Fdp().int(0).raw(h("01" + "00" * 31))
          .raw(h("ff" * 16 + "fb" + "fe" * 15 + "01" * 16)).bytes())
    write(t, "poly-ones", Fdp().int(0).raw(b"\xff" * 32).raw(b"\xff" * 130).bytes())
    key, nonce = bytes(range(0x80, 0xa0)), bytes(range(0x40, 0x58))
    ad, msg = h("50515253c0c1c2c3c4c5c6c7"), b"Ladies and Gentlemen of the class of '99"

    def sealed(damage=()):
        f = Fdp().int(1).raw(key).raw(nonce).int(len(ad)).raw(ad).int(len(msg), 2).raw(msg)
        for what, at, bits in damage:
            f.int(what).u64(at).int(bits)
        return f.bytes()
    write(t, "open-intact", sealed())
    write(t, "open-tag-bit", sealed([(0, len(msg) + 15, 0x80)]))
    write(t, "open-ad-bit", sealed([(1, 3, 0x01)]))
    write(t, "open-nonce-bit", sealed([(2, 20, 0x10)]))
    write(t, "open-cut", sealed([(3, len(msg) + 8, 0)]))
    write(t, "open-raw", Fdp().int(2).raw(key).raw(nonce).int(0).raw(b"\x00" * 40).bytes())


def main():
    aead_corpus()
    choice_corpus()
    roles_corpus()
    resp_corpus()
    token_corpus()
    keyfile_corpus()
    query_corpus()
    cookie_corpus()
    set_cookie_corpus()
    record_corpus()
    return 0


if __name__ == "__main__":
    sys.exit(main())
