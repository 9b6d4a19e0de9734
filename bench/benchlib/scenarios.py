"""The macro benchmark's workload: what the clients send (the URL, the
headers, a 1 KB Cookie header, the tokens), the request streams wrk
replays, and the scenarios' names, descriptions and targets.

A request stream is one request template with two per-request fields (F1,
F2) and a file of entries that fill them: B1 and a scenario replay the
very same stream, so that their ratio isolates what the module costs.
"""
import os
import secrets
import sys
import time

from benchlib import REPO

# ---------------------------------------------------------------------------
# What the clients send. The query, the Cookie header, the strip rules and
# the record are the ones of bench/path_fixture.h: keep them in step.

PATH = "/products/shoes/running"

# 10 arguments; utm_source, utm_medium (campaigns) and gclid (marketing) go.
QUERY = ("category=running&utm_source=newsletter&size=42&color=blue&utm_medium=email"
         "&sort=price_asc&page=2&gclid=EAIaIQobChMI8rP3k6Ct-gIVDOJ3Ch0XNwFkEAAYASAAEgJx3_D_BwE&ref=home&q=trail+shoes")

# 22 cookies, about 1 KB with the UID token at {VID}.
COOKIE = (
    "_ga=GA1.1.1593746201.1732871234; _ga_7KX2R9ZPQ1=GS1.1.1732871234.12.1.1732874001.0.0.0; "
    "_gid=GA1.2.846213377.1732871234; _fbp=fb.1.1732871234567.1187254930; _gcl_au=1.1.1437788114.1732871234; "
    "lang=en-GB; currency=EUR; session=8f14e45fceea167a5a36dedd4bea2543b1e3c2f9a7d6e5c4b3a29180f7e6d5c4; "
    "cart=c7d2a1e0-5b9f-4e8a-9c3d-2f1e0d9c8b7a; consent_banner=dismissed; ab_checkout=variant_b; "
    "recently_viewed=SKU-48213%2CSKU-10294%2CSKU-77310%2CSKU-55021%2CSKU-90876%2CSKU-31337; "
    "__Host-vid={VID}; _uetsid=3b5a8c10ae1111efb7c2f1a3d9e8c7b6; _uetvid=3b5a9f70ae1111ef9d4e6b2c1a0f9e8d; "
    "_hjSessionUser_2817364=eyJpZCI6IjVmN2E4YjljLTFkMmUtNGYzYS05YjhjIiwiY3JlYXRlZCI6MTczMjg3MTIzNDU2N30; "
    "theme=dark; tz=Europe%2FBerlin; csrftoken=Qm9uam91ciBsZSBtb25kZSwgY2VjaSBlc3QgdW4gamV0b24; "
    "last_search=trail%20running%20shoes%20size%2042; newsletter_seen=1; "
    "prefs=eyJncmlkIjp0cnVlLCJwYWdlU2l6ZSI6NDgsInNvcnQiOiJwcmljZV9hc2MiLCJjb21wYXJlIjpbXX0")

BASE_HEADERS = [
    ("Host", "shop.example.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/131.0.0.0 Safari/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.9"),
    ("Accept-Encoding", "gzip, deflate, br"),
]

# Placeholders for the two per-request fields of a request stream.
F1, F2 = "\x01F1\x01", "\x01F2\x01"

PURPOSES = [("service", "granted"), ("billing", "granted"), ("analysis", "denied gpc"),
            ("marketing", "denied gpc"), ("campaigns", "denied gpc"), ("research", "denied"),
            ("group_sharing", "denied gpc"), ("third_parties", "denied gpc")]
# The record of B4/B5/B8: analysis granted, the rest of the tracking denied.
RECORD = {"v": "7", "service": "1", "billing": "1", "analysis": "1", "marketing": "0",
          "campaigns": "0", "research": "0", "group_sharing": "0", "third_parties": "0"}
STRIPPED_B4 = "utm_source,utm_medium,gclid,_fbp,_gcl_au,__Host-vid,_uetsid,_uetvid"
# B4C: the same answers as RECORD, in the choice cookie instead of a record
CHOICE_COOKIE = "consent_choices"
CHOICES = [(k, v == "1") for k, v in RECORD.items() if k not in ("v", "service", "billing")]
STRIPPED_B4C = STRIPPED_B4.replace("__Host-vid", CHOICE_COOKIE)
TARGETS = {"B2": 0.99, "B3": 0.98, "B4": 0.95, "B4C": 0.95, "B5": 0.92, "B6": 0.95, "B8": 0.93}
DESCRIPTIONS = {
    "B1": "plain proxy_pass, module not loaded",
    "B2": "module loaded, consent off",
    "B3": "consent on, no token/cookie, 3 of 10 args stripped",
    "B4": "UID cookie (1 KB Cookie), cache hit, args+cookies stripped",
    "B4C": "B4 with a choice cookie instead of the UID cookie",
    "B4U": "peer: nginx's userid filter (B4's request + uid cookie)",
    "B4L": "peer: B4's job in OpenResty Lua (bench/peers/)",
    "B5": "PURL token + UID cookie, cache hit",
    "B6": "100% forged/garbage tokens",
    "B7": "100% cache misses (new subject each request)",
    "B7T": "B7 with Redis over TLS, paired with B7 over TCP",
    "B8": "B4 + 1,000 updates/s on the channel",
    "B9a": "B7, Redis SIGSTOPped 1/3 in",
    "B9b": "B7, Redis stopped (breaker open)",
}
ALL_SCENARIOS = ["B2", "B3", "B4", "B4C", "B4U", "B4L", "B5", "B6", "B7", "B7T", "B8", "B9"]


# ---------------------------------------------------------------------------
# tokens (the independent implementation of tests/interop/token_interop.py)

_interop = None


def interop():
    global _interop
    if _interop is None:
        sys.path.insert(0, os.path.join(REPO, "tests", "interop"))
        try:
            import token_interop
        except ImportError as e:
            raise SystemExit("macro.py needs python3-nacl and python3-cryptography (%s); "
                             "run it with /usr/bin/python3" % e)
        _interop = token_interop
    return _interop


class Keys:
    def __init__(self, tmp):
        self.key = secrets.token_bytes(32)
        self.other = secrets.token_bytes(32)
        old = os.umask(0o077)
        try:
            self.token_file = os.path.join(tmp, "token.key")
            with open(self.token_file, "w") as f:
                f.write("xchacha20poly1305 %s\n" % self.key.hex())
            self.pseudonym_file = os.path.join(tmp, "pseudonym.key")
            with open(self.pseudonym_file, "w") as f:
                f.write(secrets.token_bytes(32).hex() + "\n")
        finally:
            os.umask(old)

    def mint(self, kind, subject, campaign="", kid=1, key=None, ttl=86400):
        now = int(time.time())
        return interop().mint("xchacha20poly1305", kid, key or self.key, kind, subject, campaign,
                              now - 60, now + ttl)

    def mint_choice(self, choices, revision=1, ttl=86400):
        now = int(time.time())
        return interop().mint_choice("xchacha20poly1305", 1, self.key, now - 60, now + ttl, revision, choices)


def forged(token):
    """The same token with one base64url character changed in the ciphertext."""
    i = len(token) * 2 // 3
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def garbage(rng_bytes, n):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[b % 64] for b in rng_bytes[:n])


# ---------------------------------------------------------------------------
# requests: one template per scenario, two per-request fields (F1, F2)

def request_template(with_purl, with_cookie, cookie_name="__Host-vid", more_cookies=""):
    """(path+query, headers) with the placeholders F1 (the PURL token or the
    UID token) and F2 (the UID token when there is a PURL token).
    cookie_name: the cookie that carries the token (B4C: the choice cookie).
    more_cookies: appended to the Cookie header (B4U: the userid peer's)."""
    query = ("ctk=%s&" % F1 + QUERY) if with_purl else QUERY
    headers = list(BASE_HEADERS)
    if with_cookie:
        cookie = COOKIE.replace("{VID}", F2 if with_purl else F1).replace("__Host-vid=", cookie_name + "=")
        headers.append(("Cookie", cookie + "; " + more_cookies if more_cookies else cookie))
    return query, headers


def fill(s, f1, f2):
    return s.replace(F1, f1).replace(F2, f2)


def raw_request(path, query, headers):
    text = "GET %s?%s HTTP/1.1\r\n" % (path, query)
    text += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    if F1 not in text:
        text += F1
    if F2 not in text:
        text += F2
    return text


def lua_quote(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif 0x20 <= o < 0x7f:
            out.append(ch)
        else:
            out.append("\\%03d" % o)
    return '"' + "".join(out) + '"'


LUA = r"""-- generated by bench/macro.py: one request per entry, cycling; thread i
-- reads ENTRIES.i when it exists (disjoint slices), else ENTRIES.
local P1, P2, P3 = %(p1)s, %(p2)s, %(p3)s
local threads, nthreads = {}, 0
function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    table.insert(threads, thread)
end
local f1, f2, n, i = {}, {}, 0, 0
sent, wrapped = 0, 0
function init(args)
    local f = io.open(args[1] .. "." .. tid) or io.open(args[1])
    for line in f:lines() do
        local a, b = line:match("^([^\t]*)\t?(.*)$")
        n = n + 1
        f1[n], f2[n] = a, b
    end
    f:close()
end
function request()
    i = i + 1
    if i > n then i = 1; wrapped = wrapped + 1 end
    sent = sent + 1
    return P1 .. f1[i] .. P2 .. f2[i] .. P3
end
function done(summary, latency, requests)
    local s, w = 0, 0
    for _, t in ipairs(threads) do s = s + t:get("sent"); w = w + t:get("wrapped") end
    io.write(string.format("MACRO sent=%%d wrapped=%%d\n", s, w))
end
"""


def write_lua(path, raw):
    a, rest = raw.split(F1, 1)
    b, c = rest.split(F2, 1)
    with open(path, "w") as f:
        f.write(LUA % dict(p1=lua_quote(a), p2=lua_quote(b), p3=lua_quote(c)))


def write_entries(prefix, entries, threads=None):
    """entries: [(f1, f2)]; with threads, one disjoint slice per thread."""
    if threads is None:
        with open(prefix, "w") as f:
            f.writelines("%s\t%s\n" % e for e in entries)
        return
    for t in range(threads):
        with open("%s.%d" % (prefix, t + 1), "w") as f:
            f.writelines("%s\t%s\n" % e for e in entries[t::threads])
