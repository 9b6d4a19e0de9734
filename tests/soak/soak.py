#!/usr/bin/python3
"""Soak test (issue 6, part 4): `./dev soak [SECONDS]` (default 300).

The packaged nginx (2 workers) with the module, a private redis-server and
the echo upstream of tests/e2e/harness.py. Client threads drive mixed
traffic for SECONDS: valid PURL tokens and UID cookies (cache hits and
misses: a fixed set of subjects and fresh ones), garbage and expired tokens,
requests without a token; a writer publishes updates at intervals; Redis is
SIGKILLed and restarted (empty, then re-seeded) and nginx reloaded (SIGHUP)
at intervals.

Leak check: every request carries tracking data (utm_* arguments, _ga and
_fbp cookies) and is tagged X-Soak-Expect: clean when its decision cannot
grant marketing or analysis whatever happens (records that deny them, no
record, expired or garbage tokens, consent_on_failure deny). The echo
upstream checks each request it receives: the token argument and the UID
cookie must never arrive, and a `clean` request must carry no utm_*, _ga
or _fbp. Subjects whose records grant marketing are tagged `granted` and
only checked for the token and the cookie.

Memory and fds: the workers are replaced by every reload, so they are
measured per worker generation (--reload-every, default 60 s; Redis is
killed every --redis-kill-every, default 15 s, so each generation lives
through several Redis restarts): /proc/PID/status (VmRSS, RssAnon) and
/proc/PID/fd with traffic paused, 4 s after the generation starts (warm-up)
and at its end, right before the next reload. The master is compared from
the first snapshot to the last (it lives through every reload).

Afterwards it prints requests by status, kind and $consent_source, socket
errors, the worst latency, leaks, and the memory and fd numbers; exit
status 1 if any 5xx, any socket error, any leak, any alert/crit/crash line
in error.log, a worker whose RSS grew over max(10 %, 2 MiB) or RssAnon over
max(10 %, 1 MiB) within its generation, a worker whose fd count changed,
the master's RSS growing over max(10 %, 4 MiB) or its fd count changing.

Run: /usr/bin/python3 tests/soak/soak.py [--seconds N] \
        [--module build/ngx_http_consent_module.so] [--consentctl build/consentctl]
"""
import argparse
import os
import random
import re
import secrets
import signal
import sys
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "e2e"))
import harness as H  # noqa: E402

HTTP_TEXT = """
    consent_key 1 {d}/k1.key issue;
    consent_pseudonym_key {d}/p.key;
    consent_redis {redis} connect_timeout=200ms timeout=100ms;
    consent_cache zone=consent:1m ttl=5s;
    consent_on_failure deny;
    consent_purpose service granted;
    consent_purpose analysis denied;
    consent_purpose marketing denied gpc;
    consent_purpose personalization granted;
    consent_uid_cookie vid purpose=personalization;
    consent_strip_args marketing utm_*;
    consent_strip_cookies analysis _ga;
    consent_strip_cookies marketing _fbp;
"""

SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            consent on;
            proxy_pass http://127.0.0.1:{up};
            proxy_set_header X-Consent-Purposes $consent_purposes;
            proxy_set_header X-Consent-Source $consent_source;
        }}
        location = /status {{ consent_status; }}
    }}
"""

TRACK_ARGS = "utm_source=mail&UTM_Medium=x&ut%6D_campaign=c"
TRACK_COOKIES = "_ga=GA1.2.3; keep=1; _fbp=fb.1.2"
_ALWAYS = re.compile(r"(?i)[?&]ctk=")
_TRACK_ARG = re.compile(r"(?i)[?&](utm_|ut%6d_)")
_VID = re.compile(r"(?i)(^|;\s*)vid=")
_TRACK_COOKIE = re.compile(r"(?i)(^|;\s*)(_ga|_fbp)=")

N_DENY, N_GRANT, N_FLIP = 40, 20, 10


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = {}
        self.kinds = {}
        self.sources = {}
        self.sock_errors = []
        self.worst = (0.0, "")
        self.leaks = []
        self.upstream = 0
        self.n = 0

    def add(self, kind, status, source, elapsed):
        with self.lock:
            self.n += 1
            self.status[status] = self.status.get(status, 0) + 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            self.sources[source] = self.sources.get(source, 0) + 1
            if elapsed > self.worst[0]:
                self.worst = (elapsed, "%s at %s" % (kind, time.strftime("%H:%M:%S")))


def check_upstream(stats, rec):
    """The echo upstream's check of one request it received."""
    target = rec["request_line"].split(" ")[1] if " " in rec["request_line"] else ""
    hdrs = rec["headers"]
    expect = [v for k, v in hdrs if k.lower() == "x-soak-expect"]
    cookies = "; ".join(v for k, v in hdrs if k.lower() == "cookie")
    found = []
    if _ALWAYS.search(target):
        found.append("ctk")
    if _VID.search(cookies):
        found.append("vid")
    if expect and expect[0] == "clean":
        if _TRACK_ARG.search(target):
            found.append("utm_*")
        for m in _TRACK_COOKIE.finditer(cookies):
            found.append(m.group(2))
    with stats.lock:
        stats.upstream += 1
        if found:
            stats.leaks.append((rec["request_line"], found,
                                [v for k, v in hdrs if k.lower().startswith("x-consent")]))


def proc_mem_fds(pid):
    """(VmRSS kB, RssAnon kB, fd count) of a live process, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            st = f.read()
        rss = int(re.search(r"VmRSS:\s+(\d+)", st).group(1))
        anon = int(re.search(r"RssAnon:\s+(\d+)", st).group(1))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        return rss, anon, fds
    except (OSError, AttributeError):
        return None


def snapshot(ngx):
    workers = sorted(ngx.worker_pids())
    out = {"master": proc_mem_fds(ngx.master_pid), "workers": {}}
    for pid in workers:
        v = proc_mem_fds(pid)
        if v:
            out["workers"][pid] = v
    return out


def describe(snap):
    m = snap["master"]
    w = snap["workers"]
    return ("master rss=%d kB anon=%d kB fds=%d; workers %s"
            % (m[0], m[1], m[2],
               ", ".join("pid %d rss=%d kB anon=%d kB fds=%d" % ((p,) + v)
                         for p, v in sorted(w.items()))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("seconds", nargs="?", type=int, default=None)
    p.add_argument("--seconds", dest="seconds_opt", type=int, default=None)
    p.add_argument("--module", default=H.MODULE)
    p.add_argument("--consentctl", default=H.CONSENTCTL)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--redis-kill-every", type=float, default=15.0)
    p.add_argument("--reload-every", type=float, default=60.0)
    p.add_argument("--update-every", type=float, default=0.5)
    a = p.parse_args()
    seconds = a.seconds_opt or a.seconds or 300
    H.MODULE = os.path.abspath(a.module)
    H.CONSENTCTL = os.path.abspath(a.consentctl)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    stats = Stats()
    up = H.EchoUpstream().start()
    orig = up.record
    up.record = lambda rec: (check_upstream(stats, rec), orig(rec))
    redis = H.RedisServer().start()
    ngx = H.Nginx(workers=2, error_log_level="notice")
    k1 = H.keygen(ngx.path("k1.key"))
    H.pseudonym_keygen(ngx.path("p.key"))
    ngx.write_config(HTTP_TEXT.format(d=ngx.dir, redis=redis.address),
                     SERVERS.format(port=ngx.port, up=up.port))
    ngx.start()

    deny = ["soak-deny-%d" % i for i in range(N_DENY)]
    grant = ["soak-grant-%d" % i for i in range(N_GRANT)]
    flip = ["soak-flip-%d" % i for i in range(N_FLIP)]
    now = int(time.time())
    tok = {}
    for s in deny + grant + flip:
        tok[(s, "purl")] = H.py_mint(k1, 1, s)
        tok[(s, "uid")] = H.py_mint(k1, 1, s, kind="uid")
    expired = [H.py_mint(k1, 1, s, issued_at=now - 100, expires_at=now - 1)
               for s in grant]   # would grant marketing if it were valid

    def seed():
        lines = []
        for s in deny:
            lines.append("HSET consent:{%s} v 1 marketing 0 analysis 0\n" % s)
        for s in grant:
            lines.append("HSET consent:{%s} v 1 marketing 1 analysis 1\n" % s)
        for s in flip:
            lines.append("HSET consent:{%s} v 1 marketing 0 analysis 0 personalization 1\n" % s)
        import subprocess
        subprocess.run(redis.cli_cmd(), input="".join(lines).encode(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    seed()
    lock_redis = threading.Lock()
    stop = threading.Event()
    paused = threading.Event()
    events = {"redis_kills": 0, "reloads": 0, "updates": 0, "update_errors": 0}

    def one_request(rng):
        r = rng.random()
        target = "/p?a=%d&%s" % (rng.randrange(1000), TRACK_ARGS)
        cookies = TRACK_COOKIES
        expect = "clean"
        if r < 0.25:
            kind, s = "purl-deny", rng.choice(deny + flip)
            target += "&ctk=" + tok[(s, "purl")]
        elif r < 0.40:
            kind, s = "uid-deny", rng.choice(deny + flip)
            cookies += "; vid=" + tok[(s, "uid")]
        elif r < 0.55:
            kind, s = "purl-grant", rng.choice(grant)
            target += "&ctk=" + tok[(s, "purl")]
            expect = "granted"
        elif r < 0.65:
            kind = "purl-miss"   # a fresh subject: no record, defaults
            target += "&ctk=" + H.py_mint(k1, 1, "soak-miss-%s" % secrets.token_hex(6))
        elif r < 0.75:
            kind = "garbage"
            g = rng.choice([secrets.token_urlsafe(rng.randrange(1, 120)),
                            "%%%%zz", "AQEB" + "A" * 600, ""])
            target += "&ctk=" + g
        elif r < 0.85:
            kind = "expired"
            t = rng.choice(expired)
            if rng.random() < 0.5:
                target += "&ctk=" + t
            else:
                cookies += "; vid=" + t   # a PURL as cookie: invalid too
        else:
            kind = "none"
        t0 = time.monotonic()
        try:
            resp = ngx.get(target, [("Cookie", cookies), ("X-Soak-Expect", expect)],
                           timeout=20)
        except Exception as e:  # noqa: BLE001
            with stats.lock:
                stats.sock_errors.append("%s %s: %s" % (time.strftime("%H:%M:%S"),
                                                         type(e).__name__, e))
            return
        src = ""
        if resp.status == 200:
            try:
                js = resp.json()
                src = dict((k.lower(), v) for k, v in js["headers"]).get("x-consent-source", "")
            except ValueError:
                src = "?"
        stats.add(kind, resp.status, src, time.monotonic() - t0)

    def client(seed_):
        rng = random.Random(seed_)
        while not stop.is_set():
            if paused.is_set():
                time.sleep(0.05)
                continue
            one_request(rng)
            time.sleep(0.003)

    def writer():
        rng = random.Random(7)
        n = 0
        while not stop.is_set():
            time.sleep(a.update_every)
            if paused.is_set():
                continue
            n += 1
            s = rng.choice(flip + grant)
            if s in flip:
                args = ["personalization=%d" % (n % 2)]   # never grants marketing
            else:
                args = ["analysis=1", "marketing=1"]
            with lock_redis:
                rc, _, _ = H.run_consentctl("set", "--redis", redis.address, s, *args,
                                            check=False)
            events["updates" if rc == 0 else "update_errors"] += 1
            if n % 40 == 0:
                with lock_redis:
                    redis.cli("PUBLISH", "consent:updates", "*")

    gens = []   # (start snapshot, end snapshot) per worker generation

    def quiet_snapshot():
        """Traffic paused, in-flight requests done, then /proc."""
        paused.set()
        time.sleep(1.5)
        snap = snapshot(ngx)
        paused.clear()
        return snap

    def wait_gauge_up(timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = ngx.get("/status", timeout=5).body.decode("latin-1")
                if re.search(r"^consent_subscription_up 1$", body, re.M):
                    return True
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.1)
        return False

    def faults(t_end):
        """Worker generations of reload_every seconds: a quiet snapshot 4 s
        into each, Redis killed and restarted every redis_kill_every
        seconds, the last kill at least 8 s before the generation ends, a
        quiet snapshot at its end, then a reload (SIGHUP)."""
        while not stop.is_set() and time.monotonic() < t_end - 12:
            g_end = min(time.monotonic() + a.reload_every, t_end)
            time.sleep(4)
            start = quiet_snapshot()
            next_kill = time.monotonic() + a.redis_kill_every / 2
            while time.monotonic() < g_end - 8 and not stop.is_set():
                if time.monotonic() >= next_kill:
                    with lock_redis:
                        redis.kill()
                        time.sleep(2.0)
                        redis.start()
                        seed()
                    events["redis_kills"] += 1
                    next_kill = time.monotonic() + a.redis_kill_every
                time.sleep(0.2)
            while time.monotonic() < g_end and not stop.is_set():
                time.sleep(0.2)
            if not wait_gauge_up():
                events["gauge_not_up"] = events.get("gauge_not_up", 0) + 1
            time.sleep(1.0)
            end = quiet_snapshot()
            gens.append((start, end))
            print("  generation %d: start %s\n                end   %s"
                  % (len(gens), describe(start), describe(end)), flush=True)
            if time.monotonic() < t_end - 12:
                if not ngx.reload(timeout=30):
                    print("reload did not take", file=sys.stderr)
                events["reloads"] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(a.threads)]
    threads.append(threading.Thread(target=writer, daemon=True))
    for t in threads:
        t.start()
    rc = 0
    try:
        warm = 10.0
        print("soak: %d s after a %.0f s warm-up; nginx %s, redis %s"
              % (seconds, warm, ngx.dir, redis.address), flush=True)
        time.sleep(warm)
        ngx.reload(timeout=30)
        events["reloads"] += 1
        t_start = time.monotonic()
        t_end = t_start + seconds
        last_print = t_start
        fth = threading.Thread(target=faults, args=(t_end,), daemon=True)
        fth.start()
        while time.monotonic() < t_end or fth.is_alive():
            time.sleep(1)
            if time.monotonic() - last_print >= 30:
                last_print = time.monotonic()
                print("  %3.0f s: %d requests %r, redis kills %d, reloads %d, updates %d, "
                      "leaks %d, socket errors %d" % (
                          time.monotonic() - t_start, stats.n, stats.status,
                          events["redis_kills"], events["reloads"], events["updates"],
                          len(stats.leaks), len(stats.sock_errors)), flush=True)
            if time.monotonic() > t_end + 120:
                break
        stop.set()
        for t in threads:
            t.join(30)
        print("\nrequests: %d; by status %r" % (stats.n, dict(sorted(stats.status.items()))))
        print("by kind: %r" % dict(sorted(stats.kinds.items())))
        print("by $consent_source: %r" % dict(sorted(stats.sources.items())))
        print("upstream received: %d" % stats.upstream)
        print("events: %r" % events)
        print("worst latency: %.0f ms (%s)" % (stats.worst[0] * 1000, stats.worst[1]))
        print("socket errors: %d %r" % (len(stats.sock_errors), stats.sock_errors[:5]))
        print("leaks to upstream: %d %r" % (len(stats.leaks), stats.leaks[:5]))

        def total(snap, idx):
            return sum(v[idx] for v in snap["workers"].values())
        problems = []
        n5 = sum(c for st, c in stats.status.items() if st >= 500)
        if n5:
            problems.append("%d 5xx answers" % n5)
        if stats.leaks:
            problems.append("%d leaks to upstream" % len(stats.leaks))
        if stats.sock_errors:
            problems.append("%d socket errors" % len(stats.sock_errors))
        if not gens:
            problems.append("no worker generation measured (run longer)")
        else:
            print("\nmemory and fds, each worker generation (quiet, 4 s after its start "
                  "-> its end; RSS/anon in kB):")
            for i, (s0, s1) in enumerate(gens, 1):
                for pid in sorted(set(s0["workers"]) & set(s1["workers"])):
                    b0, b1 = s0["workers"][pid], s1["workers"][pid]
                    tol_rss, tol_anon = max(b0[0] * 0.10, 2048), max(b0[1] * 0.10, 1024)
                    print("  gen %d worker %d: rss %d -> %d (%+d), anon %d -> %d (%+d), "
                          "fds %d -> %d" % (i, pid, b0[0], b1[0], b1[0] - b0[0],
                                            b0[1], b1[1], b1[1] - b0[1], b0[2], b1[2]))
                    if b1[0] - b0[0] > tol_rss or b1[1] - b0[1] > tol_anon:
                        problems.append("gen %d worker %d grew" % (i, pid))
                    if b1[2] != b0[2]:
                        problems.append("gen %d worker %d fds %d -> %d" % (i, pid, b0[2], b1[2]))
                if set(s0["workers"]) != set(s1["workers"]):
                    problems.append("gen %d: workers changed without a reload: %r -> %r"
                                    % (i, sorted(s0["workers"]), sorted(s1["workers"])))
            before, after = gens[0][0], gens[-1][1]
            print("before (first generation start): " + describe(before))
            print("after  (last generation end):    " + describe(after))
            for label, b0, b1 in (("master rss", before["master"][0], after["master"][0]),
                                  ("workers rss (generation ends)", total(gens[0][1], 0),
                                   total(gens[-1][1], 0)),
                                  ("workers anon (generation ends)", total(gens[0][1], 1),
                                   total(gens[-1][1], 1))):
                tol = max(b0 * 0.10, 4096)
                print("%s: %d kB -> %d kB (%+d kB, tolerance %d kB)" % (label, b0, b1, b1 - b0, tol))
                if b1 - b0 > tol:
                    problems.append("%s grew %d kB" % (label, b1 - b0))
            fb = sorted(v[2] for v in gens[0][1]["workers"].values())
            fa = sorted(v[2] for v in after["workers"].values())
            print("fds: master %d -> %d; workers at generation ends %r -> %r"
                  % (before["master"][2], after["master"][2], fb, fa))
            if fb != fa or before["master"][2] != after["master"][2]:
                problems.append("fd counts changed")
        if events.get("gauge_not_up"):
            problems.append("subscription not up at %d generation ends" % events["gauge_not_up"])
        bad_log = [l for l in ngx.error_log().splitlines()
                   if any(m in l for m in ("[alert]", "[crit]", "[emerg]", "signal 11",
                                           "exited on signal"))]
        if bad_log:
            problems.append("%d alert/crit lines in error.log: %r" % (len(bad_log), bad_log[:3]))
        if problems:
            print("\nSOAK FAILED: " + "; ".join(problems))
            rc = 1
        else:
            print("\nSOAK PASSED")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        rc = 130
    finally:
        stop.set()
        if os.environ.get("SOAK_KEEP"):
            os.environ["E2E_KEEP"] = "1"
        ngx.cleanup()
        redis.cleanup()
        up.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
