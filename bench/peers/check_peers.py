#!/usr/bin/python3
"""Checks the peers of bench/peers/ (issue 16) on the B4 request, before
they are timed: the Lua peer must hand the upstream exactly what the consent
module would (query, Cookie header, X-Consent-Purposes, X-Consent-Subject),
and the userid peer must proxy and set its cookie.

Starts, with /usr/sbin/nginx (master process, 1 worker, -p a temporary
directory): an upstream that answers with what reached it, the Lua front
and the userid front. The expected values are worked out here from the
strip rules, independently of consent.lua. Prints OK/FAIL per check and
exits 1 on any failure.

  /usr/bin/python3 bench/peers/check_peers.py [--keep] [-v] [--module [SO]]

--module also sends the same requests through the consent module itself
(bench/macro.py's front_conf(), the record in a redis-server of its own)
and compares what reached the upstream, and the /__check headers.
"""
import argparse
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/ or bench/benchlib/ from this script
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench"))
sys.path.insert(0, HERE)
import confs  # noqa: E402

try:
    import macro as b4  # QUERY, COOKIE, BASE_HEADERS, PATH, RECORD, STRIPPED_B4, Keys, front_conf
except ImportError:
    from benchlib import scenarios as b4  # noqa: E402  (macro.py being restructured)
    from benchlib import processes as _p  # noqa: E402
    b4.front_conf = _p.front_conf

NGINX = "/usr/sbin/nginx"
FAILED = []
VERBOSE = False


def check(name, ok, detail=""):
    print("%s  %s%s" % ("OK  " if ok else "FAIL", name, "" if ok or not detail else ": " + detail), flush=True)
    if not ok:
        FAILED.append(name)


# ---------------------------------------------------------------------------
# the module's rules, worked out independently of consent.lua

def names_of(granted):
    return ",".join(p for p, _ in confs.PURPOSES if p in granted)


def claims(rules, name):
    """The purposes whose patterns claim `name` (ASCII case-insensitive)."""
    name = name.lower()
    out = set()
    for purpose, patterns in rules:
        for pat in patterns:
            pat = pat.lower()
            if name == pat or (pat.endswith("*") and name.startswith(pat[:-1])):
                out.add(purpose)
    return out


def expected(query, cookie, granted):
    """(query, cookie, stripped) as the module sends them upstream."""
    denied = {p for p, _ in confs.PURPOSES} - set(granted)
    kept, stripped = [], []
    for seg in query.split("&"):
        if not seg:
            continue
        name = re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), seg.split("=", 1)[0])
        if claims(confs.STRIP_ARGS, name) & denied:
            stripped.append(name)
        else:
            kept.append(seg)
    q = "&".join(kept) if stripped else query
    kept_c, removed_c = [], False
    for pair in cookie.split(";"):
        pair = pair.strip(" \t")
        if not pair:
            continue
        name = pair.split("=", 1)[0].rstrip(" \t")
        if name.lower() == confs.UID_COOKIE.lower() or claims(confs.STRIP_COOKIES, name) & denied:
            removed_c = True
            stripped.append(name)
        else:
            kept_c.append(pair)
    c = "; ".join(kept_c) if removed_c else cookie
    seen, listed = set(), []
    for n in stripped:
        if n not in seen:
            seen.add(n)
            listed.append(n)
    return q, c, ",".join(listed)


def defaults():
    return [p for p, d in confs.PURPOSES if d.startswith("granted")]


def record_granted(record):
    return [p for p, d in confs.PURPOSES if record.get(p, "1" if d.startswith("granted") else "0") == "1"]


def front_conf_rules(keys):
    """Purposes and strip rules as bench/macro.py's front_conf() writes them."""
    text = b4.front_conf(1, 2, 1, module="/nonexistent.so", consent="on", keys=keys, redis_port=3)
    purposes = [tuple(m.groups()) for m in re.finditer(r"consent_purpose (\S+) ([^;]+);", text)]

    def rules(kind):
        return [(m.group(1), m.group(2).split())
                for m in re.finditer(r"consent_strip_%s\s+(\S+)\s+([^;]+);" % kind, text)]
    uid = re.search(r"consent_uid_cookie (\S+) purpose=(\S+)", text)
    return purposes, rules("args"), rules("cookies"), uid.groups() if uid else None


# ---------------------------------------------------------------------------
# processes

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    def __init__(self, name, tmp, text, port):
        self.name, self.port, self.dir = name, port, os.path.join(tmp, name)
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(text.replace("@DIR@", self.dir))
        self.proc = None

    def start(self):
        t = subprocess.run([NGINX, "-t", "-q", "-p", self.dir + "/", "-c", self.conf], capture_output=True, text=True)
        if t.returncode != 0:
            raise SystemExit("nginx -t failed for %s:\n%s" % (self.name, t.stderr))
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-c", self.conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise SystemExit("%s did not listen on %d; see %s/error.log" % (self.name, self.port, self.dir))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def problems(self):
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return [ln.rstrip() for ln in f if re.search(r"\[(error|alert|crit|emerg)\]", ln)]
        except OSError:
            return []


def get(port, target, cookie=None, extra=()):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    for k, v in list(b4.BASE_HEADERS) + ([("Cookie", cookie)] if cookie is not None else []) + list(extra):
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse()
    body = r.read().decode("latin-1")
    c.close()
    if VERBOSE:
        print("    GET %s -> %d %r %r" % (target[:60], r.status, r.getheaders(), body[:300]))
    seen = dict(zip(("uri", "cookie", "purposes", "subject"), body.split("|"))) if body.count("|") == 3 else {}
    return r, seen


def expect_upstream(tag, seen, uri, cookie, purposes, subject):
    check(tag + ": upstream got the query", seen.get("uri") == uri, "%r != %r" % (seen.get("uri"), uri))
    check(tag + ": upstream got the Cookie header", seen.get("cookie") == cookie,
          "%r != %r" % (seen.get("cookie"), cookie))
    check(tag + ": X-Consent-Purposes", seen.get("purposes") == purposes,
          "%r != %r" % (seen.get("purposes"), purposes))
    check(tag + ": X-Consent-Subject", seen.get("subject") == subject, "%r != %r" % (seen.get("subject"), subject))


# ---------------------------------------------------------------------------

def compare_module(tmp, module, keys, up_port, lua_port, cases):
    """--module: the same requests through the consent module (front_conf(),
    the record in a redis-server of its own) and through the Lua peer."""
    redis = b4.Redis(tmp)
    mod = None
    try:
        args = ["HSET", "consent:{%s}" % confs.B4_SUBJECT]
        for k, v in b4.RECORD.items():
            args += [k, v]
        redis.r.call(*args)
        port = free_port()
        mod = Nginx("module", tmp, b4.front_conf(port, up_port, 1, module=module, consent="on", keys=keys,
                                                 redis_port=redis.port), port).start()
        for tag, query, cookie, extra in cases:
            for loc in (b4.PATH, "/__check"):
                rm, sm = get(port, loc + "?" + query, cookie, extra)
                rl, sl = get(lua_port, loc + "?" + query, cookie, extra)
                if loc == "/__check":  # front_conf() sets no X-Consent-* there
                    sl = dict(sl, purposes="", subject="")
                    for h in ("X-Stripped", "X-Purposes", "Set-Cookie"):
                        hm = [v for k, v in rm.getheaders() if k.lower() == h.lower()]
                        hl = [v for k, v in rl.getheaders() if k.lower() == h.lower()]
                        check("module vs lua %s %s: %s" % (tag, loc, h), hm == hl, "%r != %r" % (hm, hl))
                check("module vs lua %s %s: what the upstream got" % (tag, loc), sm == sl and rm.status == 200,
                      "%r != %r" % (sm, sl))
    finally:
        if mod:
            mod.stop()
            lines = mod.problems()
            check("module error.log has no [error]/[alert]/[crit]/[emerg]", not lines, "; ".join(lines[:3]))
        redis.proc.terminate()
        redis.proc.wait()


def run(tmp, module=None):
    keys = b4.Keys(tmp)
    with open(keys.pseudonym_file) as f:
        pkey = bytes.fromhex(f.read().strip())
    subject = confs.B4_SUBJECT
    uid = keys.mint("uid", subject)
    pseudonym = hashlib.blake2b(subject.encode(), digest_size=16, key=pkey).hexdigest()
    cookie = b4.COOKIE.replace("{VID}", uid)

    purposes, sargs, scookies, uidc = front_conf_rules(keys)
    check("confs.py's purposes and rules are front_conf()'s",
          purposes == list(confs.PURPOSES) and sargs == [(p, list(x)) for p, x in confs.STRIP_ARGS]
          and scookies == [(p, list(x)) for p, x in confs.STRIP_COOKIES]
          and uidc == (confs.UID_COOKIE, confs.UID_PURPOSE),
          "front_conf: %r %r %r %r" % (purposes, sargs, scookies, uidc))

    up_port, lua_port, uid_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(Nginx("upstream", tmp, confs.echo_upstream_conf(up_port), up_port).start())
        procs.append(Nginx("lua", tmp, confs.lua_conf(lua_port, up_port, 1, keys.token_file, keys.pseudonym_file,
                                                      b4.RECORD, subject=subject), lua_port).start())
        procs.append(Nginx("userid", tmp, confs.userid_conf(uid_port, up_port, 1), uid_port).start())

        # B4: valid UID cookie, cached record
        granted = record_granted(b4.RECORD)
        q, c, stripped = expected(b4.QUERY, cookie, granted)
        check("B4 expectation: stripped == macro.STRIPPED_B4", stripped == b4.STRIPPED_B4,
              "%r != %r" % (stripped, b4.STRIPPED_B4))
        check("B4 expectation: purposes == service,billing,analysis", names_of(granted) == "service,billing,analysis")
        for loc in (b4.PATH, "/__check"):
            r, seen = get(lua_port, loc + "?" + b4.QUERY, cookie)
            check("lua B4 %s: 200" % loc, r.status == 200, str(r.status))
            expect_upstream("lua B4 " + loc, seen, loc + "?" + q, c, names_of(granted), pseudonym)
            check("lua B4 %s: no Set-Cookie" % loc, r.getheader("Set-Cookie") is None, str(r.getheader("Set-Cookie")))
        check("lua B4 /__check: X-Stripped", r.getheader("X-Stripped") == stripped,
              "%r != %r" % (r.getheader("X-Stripped"), stripped))
        check("lua B4 /__check: X-Purposes", r.getheader("X-Purposes") == "service,billing,analysis",
              str(r.getheader("X-Purposes")))
        check("lua B4 /__check: X-Token valid", r.getheader("X-Token") == "valid", str(r.getheader("X-Token")))

        # the same request again (the token memo and the cache hit)
        r, seen = get(lua_port, b4.PATH + "?" + b4.QUERY, cookie)
        expect_upstream("lua B4 again", seen, b4.PATH + "?" + q, c, names_of(granted), pseudonym)

        # bad tokens: the defaults, no subject, the UID cookie still removed and cleared
        fq, fc, fstripped = expected(b4.QUERY, cookie, defaults())
        bad = [("forged", b4.forged(uid), "invalid"),
               ("expired", keys.mint("uid", subject, ttl=-10), "expired"),
               ("unknown key id", keys.mint("uid", subject, kid=9, key=keys.other), "unknown_key"),
               ("other key", keys.mint("uid", subject, key=keys.other), "invalid"),
               ("padded", uid + "=", "invalid")]
        for tag, tok, status in bad:
            ck = b4.COOKIE.replace("{VID}", tok)
            fq, fc, fstripped = expected(b4.QUERY, ck, defaults())
            r, seen = get(lua_port, "/__check?" + b4.QUERY, ck)
            expect_upstream("lua %s token" % tag, seen, "/__check?" + fq, fc, "service,billing", "")
            check("lua %s token: __Host-vid removed" % tag, "__Host-vid" not in seen.get("cookie", "__Host-vid"))
            check("lua %s token: X-Token %s" % (tag, status), r.getheader("X-Token") == status,
                  str(r.getheader("X-Token")))
            check("lua %s token: X-Stripped" % tag, r.getheader("X-Stripped") == fstripped,
                  "%r != %r" % (r.getheader("X-Stripped"), fstripped))
            sc = r.getheader("Set-Cookie") or ""
            check("lua %s token: UID cookie cleared" % tag, sc.startswith("__Host-vid=; Max-Age=0"), sc)

        # the upstream's Set-Cookie of a denied purpose is dropped
        sets = [("X-Echo-Set-Cookie-1", "_fbp=fb.1.2.3; Path=/; Max-Age=7776000"),
                ("X-Echo-Set-Cookie-2", "lang=de; Path=/")]
        r, seen = get(lua_port, b4.PATH + "?" + b4.QUERY, cookie, sets)
        got = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        check("lua B4: upstream Set-Cookie _fbp dropped, lang kept", got == ["lang=de; Path=/"], repr(got))

        # Sec-GPC: 1 denies the gpc purposes over the record
        r, seen = get(lua_port, "/__check?" + b4.QUERY, cookie, [("Sec-GPC", "1")])
        gq, gc, _ = expected(b4.QUERY, cookie, ["service", "billing"])
        expect_upstream("lua B4 with Sec-GPC", seen, "/__check?" + gq, gc, "service,billing", pseudonym)

        # names: percent-encoded and upper case arguments and cookies; nothing to strip
        odd_q = "a=1&&ut%6D_source=x&UTM_Medium=y&GCLID=z&b=%41&_ga=1&c"
        odd_c = "_FBP=1;lang=en ;  __HOST-VID=" + uid + ";_GA_X=2; x"
        oq, oc, ostr = expected(odd_q, odd_c, granted)
        r, seen = get(lua_port, "/__check?" + odd_q, odd_c)
        expect_upstream("lua odd names", seen, "/__check?" + oq, oc, names_of(granted), pseudonym)
        check("lua odd names: X-Stripped", r.getheader("X-Stripped") == ostr,
              "%r != %r" % (r.getheader("X-Stripped"), ostr))
        r, seen = get(lua_port, "/__check?a=1&&b=2", "lang=en;x=1")
        expect_upstream("lua nothing to strip", seen, "/__check?a=1&&b=2", "lang=en;x=1", "service,billing", "")

        # userid: proxies unchanged and sets `uid` on the first response, reads it on the next
        r, seen = get(uid_port, b4.PATH + "?" + b4.QUERY, cookie)
        sc = r.getheader("Set-Cookie") or ""
        check("userid first: 200", r.status == 200, str(r.status))
        check("userid first: sets a uid cookie", sc.startswith("uid=") and "httponly" in sc.lower(), sc)
        check("userid first: query and Cookie untouched",
              seen.get("uri") == b4.PATH + "?" + b4.QUERY and seen.get("cookie") == cookie, repr(seen)[:200])
        check("userid first: X-Consent-Subject is $uid_set", re.fullmatch(r"uid=[0-9A-F]{32}", seen.get("subject", ""))
              is not None, seen.get("subject"))
        back = cookie + "; " + sc.split(";", 1)[0]
        r2, seen2 = get(uid_port, b4.PATH + "?" + b4.QUERY, back)
        check("userid returning: no new cookie", r2.getheader("Set-Cookie") is None, str(r2.getheader("Set-Cookie")))
        check("userid returning: same visitor id", seen2.get("subject") == seen.get("subject"),
              "%r != %r" % (seen2.get("subject"), seen.get("subject")))
        r3, seen3 = get(uid_port, b4.PATH + "?" + b4.QUERY, cookie + "; " + confs.USERID_COOKIE)
        check("userid USERID_COOKIE is read", r3.getheader("Set-Cookie") is None and seen3.get("subject", "")
              .startswith("uid="), "%s %r" % (r3.getheader("Set-Cookie"), seen3.get("subject")))
        r, seen = get(uid_port, "/__check?" + b4.QUERY, back)
        check("userid /__check: proxied", r.status == 200 and seen.get("cookie") == back, str(r.status))

        if module:
            cases = [("B4", b4.QUERY, cookie, []), ("forged", b4.QUERY, b4.COOKIE.replace("{VID}", b4.forged(uid)), []),
                     ("GPC", b4.QUERY, cookie, [("Sec-GPC", "1")]), ("odd names", odd_q, odd_c, []),
                     ("no token", b4.QUERY, b4.COOKIE.replace("__Host-vid={VID}; ", ""), []),
                     ("nothing to strip", "a=1&&b=2", "lang=en;x=1", []),
                     ("Set-Cookie", b4.QUERY, cookie, sets), ("Set-Cookie, forged", b4.QUERY,
                                                               b4.COOKIE.replace("{VID}", b4.forged(uid)), sets)]
            compare_module(tmp, module, keys, up_port, lua_port, cases)
    finally:
        for p in reversed(procs):
            p.stop()
    for p in procs:
        lines = p.problems()
        check("%s error.log has no [error]/[alert]/[crit]/[emerg]" % p.name, not lines, "; ".join(lines[:3]))


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    ap.add_argument("--module", nargs="?", const=os.path.join(REPO, "build-release", "ngx_http_consent_module.so"),
                    help="also send the requests through the consent module (default build-release's) and "
                         "compare; needs redis-server")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    VERBOSE = a.verbose
    for m in confs.LUA_MODULES:
        if not os.path.exists(m):
            print("FAIL  %s missing: apt-get install -y --no-install-recommends libnginx-mod-http-lua" % m)
            return 1
    tmp = tempfile.mkdtemp(prefix="peers-")
    try:
        run(tmp, a.module)
    finally:
        if a.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d checks failed" % len(FAILED) if FAILED else "all peer checks passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
