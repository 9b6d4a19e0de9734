#!/usr/bin/python3
"""Fault injection end to end (issue 6, part 3): Redis and nginx faults that
tests/e2e/test_redis_store.py does not cover, through the packaged nginx
(2 workers) with the module, a private redis-server and the echo upstream
of harness.py.

Classes: F1 Redis state faults (restarted empty, -NOPERM for HGETALL,
maxclients, subscriber dropped for its output buffer), F2 Redis killed with
lookups in flight, F3 workers SIGKILLed, F4 a full 32k cache zone, F5 token
expiry and issued_at edges, F6 a reload that retires the issuing key, F7
replies cut mid-way, of the wrong type, or over 64 KB (CutProxy between
nginx and Redis).

Every test states and checks:
  - the behaviour the contract (shared/interface.md, docs/directives.md)
    promises for the fault;
  - no 5xx (a socket-level error is allowed only where a test says so);
  - no tracking data reached the upstream: every request the echo upstream
    receives is checked (LeakWatch) for the token argument `ctk`, the UID
    cookie `vid`, any `utm_*` argument and the `_ga` / `_fbp` cookies. Tests
    send tracking data only for subjects whose decision must deny marketing
    and analysis (their record denies them, or no record / failure: the
    defaults and `consent_on_failure deny` deny them);
  - recovery once the fault is lifted.

Run: /usr/bin/python3 tests/e2e/test_faults.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_redis_store as RS  # noqa: E402  (RedisStoreBase helpers)

DEFAULTS = "service,personalization"

HTTP_TEXT = """
    {keys}
    consent_pseudonym_key {d}/p.key;
    consent_redis {redis};
    consent_cache zone=consent:{zone} ttl=60s;
    consent_on_failure {on_failure};
    consent_purpose service granted;
    consent_purpose analysis denied;
    consent_purpose marketing denied gpc;
    consent_purpose personalization granted;
    consent_uid_cookie vid purpose=personalization;
    consent_strip_args marketing utm_*;
    consent_strip_cookies analysis _ga;
    consent_strip_cookies marketing _fbp;
"""

TRACK_ARGS = "utm_source=mail&UTM_Medium=x&ut%6D_campaign=c"
TRACK_COOKIES = "_ga=GA1.2.3; keep=1; _fbp=fb.1.2"
_LEAK_ARG = re.compile(r"(?i)[?&](utm_|ut%6d_|ctk=)")
_LEAK_COOKIE = re.compile(r"(?i)(^|;\s*)(_ga|_fbp|vid)=")

DEFAULT_PUBSUB_LIMIT = "pubsub 33554432 8388608 60"


def leaks_of(rec):
    """What tracking data one echo-upstream record carries (a list)."""
    out = []
    target = rec["request_line"].split(" ")[1] if " " in rec["request_line"] else ""
    for m in _LEAK_ARG.finditer(target):
        out.append("arg " + m.group(1))
    for k, v in rec["headers"]:
        if k.lower() == "cookie":
            for m in _LEAK_COOKIE.finditer(v):
                out.append("cookie " + m.group(2))
    return out


class LeakWatch:
    """Checks every request the echo upstream receives (also those whose
    response never reaches the client)."""

    def __init__(self, up):
        self.leaks = []
        self.count = 0
        self._orig = up.record

        def record(rec):
            found = leaks_of(rec)
            self.count += 1
            if found:
                self.leaks.append((rec["request_line"], found))
            self._orig(rec)
        up.record = record

    def reset(self):
        self.leaks = []


class Resp:
    """A raw RESP client on its own connection (an admin connection that
    keeps its slot under maxclients, and survives ACL changes)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode() if not isinstance(a, bytes) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the admin connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode("latin-1")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError("bad RESP: %r" % line)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class LeakChecks:
    """For a test class with a LeakWatch in `watch` and a track() that sends
    a request carrying tracking data."""

    def track_ok(self, subject=None, **kw):
        r = self.track(subject, **kw)
        self.assertEqual(r.status, 200, "%r\n%r" % (r, r.resp.body[:300]))
        return r

    def assertNoLeaks(self):
        self.assertGreater(self.watch.count, 0)
        self.assertEqual(self.watch.leaks[:10], [], "tracking data reached the upstream")


class FaultBase(LeakChecks, RS.RedisStoreBase):
    zone = "1m"
    keys = "consent_key 1 {d}/k1.key issue;"
    expected_log_kills = ()     # pids whose "exited on signal 9" is expected

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.watch = LeakWatch(cls.up)

    @classmethod
    def make_nginx(cls, password=None):
        ngx = H.Nginx(workers=2, error_log_level="info")
        cls.k1 = H.keygen(ngx.path("k1.key"), "xchacha20poly1305")
        cls.pk = H.pseudonym_keygen(ngx.path("p.key"))
        cls.write_config(ngx, cls.keys, password)
        return ngx

    @classmethod
    def write_config(cls, ngx, keys, password=None):
        headers = "".join("            proxy_set_header %s %s;\n" % hv for hv in RS.VARS)
        ngx.write_config(
            HTTP_TEXT.format(d=ngx.dir, redis=cls.redis_directive(password),
                             on_failure=cls.on_failure, zone=cls.zone,
                             keys=keys.format(d=ngx.dir)),
            RS.SERVERS.format(port=ngx.port, up=cls.up.port, headers=headers))

    def setUp(self):
        self.watch.reset()

    def tearDown(self):
        self.redis.sigcont()
        if not self.redis.alive():
            self.redis.start()

    # -- helpers --------------------------------------------------------------
    def track(self, subject=None, uid=False, token=None, timeout=15.0, ngx=None):
        """A GET carrying tracking data (utm_* args, _ga/_fbp cookies) and a
        PURL token (or vid cookie) for subject; a RS.Result."""
        ngx = ngx or self.ngx
        target = "/p?a=1&" + TRACK_ARGS
        cookies = TRACK_COOKIES
        if token is None and subject is not None:
            token = self.token(subject, "uid" if uid else "purl")
        if token is not None:
            if uid:
                cookies += "; vid=" + token
            else:
                target += "&ctk=" + token
        t0 = time.monotonic()
        resp = ngx.get(target, [("Cookie", cookies)], timeout=timeout)
        return RS.Result(resp, time.monotonic() - t0)

    def errors(self, samples, kind):
        return self.m(samples, "consent_redis_errors_total", kind=kind)

    def wait_track(self, subject, sources, timeout, **kw):
        """track() until the source is in sources (every answer a 200)."""
        deadline = time.monotonic() + H.slow(timeout)
        seen = []
        while True:
            r = self.track_ok(subject, **kw)
            seen.append(r.source)
            if r.source in sources:
                return r
            if time.monotonic() > deadline:
                raise AssertionError("source never in %r within %.1fs: %r\n%s"
                                     % (sources, timeout, seen[-20:],
                                        self.ngx.error_log()[-2000:]))
            time.sleep(0.05)

    def assertLogClean(self, ngx=None):
        ngx = ngx or self.ngx
        bad = []
        for l in self.log_since_start(ngx).splitlines():
            if not any(b in l for b in RS.BAD_LOG):
                continue
            m = re.search(r"worker process (\d+) exited on signal 9", l)
            if m and int(m.group(1)) in self.expected_log_kills:
                continue  # the test killed it
            bad.append(l)
        self.assertEqual(bad, [], "error.log shows a crash or an alert")
        self.assertEqual([(name, why) for name, why, _ in ngx.findings()], [])



class LogCheck:
    """Last test of every class (tests run in name order); a mixin, so that
    FaultBase itself (a TestCase) is not run."""

    def test_zz_no_crash_in_error_log(self):
        """No [alert]/[crit]/[emerg]/crash in error.log (but the SIGKILLs a
        test sent), master and 2 workers alive."""
        self.assertTrue(H._alive(self.ngx.master_pid), "nginx master is gone")
        self.assertEqual(len(self.ngx.worker_pids()), 2)
        self.assertLogClean()


# ==========================================================================

class F1RedisState(LogCheck, FaultBase):
    """Redis restarted empty, every HGETALL answered with an error, maxclients
    refusal, subscriber dropped for a full output buffer."""

    def test_01_restarted_empty(self):
        """Redis restarted EMPTY: records are gone, so subjects fall back to
        "no record" (defaults, version empty, source default). Entries cached
        before the gap are not served after it: a subject whose cached
        record granted marketing gets the defaults (marketing denied, its
        utm_* stripped). No 5xx during the outage (failure, nothing tracking
        reaches the upstream); recovery: new records are read."""
        g, d = "empty-grant-1", "empty-deny-1"
        self.set_record(g, "marketing=1", "analysis=1")
        v = self.set_record(d, "marketing=0", "personalization=0")
        # warm the cache (no tracking data for the granting subject)
        self.assertEqual(self.ok(g).source, "redis")
        self.assertEqual(self.ok(g).source, "cache")
        self.assertDecision(self.ok(g), "cache", "service,analysis,marketing,personalization")
        self.track_ok(d)
        self.assertDecision(self.track_ok(d), "cache", "service", v, d)
        self.redis.kill()
        # worker 0 notices the closed subscription asynchronously (an
        # instant's window, as in test_redis_store's test_15): wait for it
        self.wait_gauge(self.ngx, 0, 5.0)
        during = [self.track_ok(s) for s in (g, d, "empty-new-1") for _ in range(3)]
        self.assertEqual(set((r.source, r.purposes) for r in during), {("failure", "")})
        self.redis.start()     # --save '': empty
        self.assertEqual(self.redis.cli("DBSIZE"), ["0"])
        self.wait_gauge(self.ngx, 1, 5.0)
        for s in (g, d):
            r = self.wait_track(s, ("default", "redis", "cache"), 5.0)
            self.assertDecision(r, "default", DEFAULTS, "", s)
            self.assertDecision(self.track_ok(s), "default", DEFAULTS, "", s)
        # they were read again from the (empty) new Redis, not the old cache
        self.assertGreaterEqual(self.redis.calls("hgetall"), 2)
        # recovery: a new record is read and announced as usual
        v2 = self.set_record(d, "personalization=0")
        r = self.wait_track(d, ("redis",), 2.0)
        self.assertDecision(r, "redis", "service", v2, d)
        self.assertNoLeaks()

    def test_02_error_for_every_hgetall(self):
        """Redis answers every HGETALL with an error (ACL: default user
        -hgetall; PING, PUBLISH, SUBSCRIBE stay allowed): the decision is
        consent_on_failure (deny: nothing granted, subject kept), errors
        kind=reply counted, no 5xx, no tracking data upstream; recovery
        once HGETALL is allowed again."""
        admin = Resp(self.redis.port)
        try:
            m0 = self.metrics()
            self.assertEqual(admin.cmd("ACL", "SETUSER", "default", "-hgetall"), "OK")
            self.set_record("acl-deny-2", "marketing=0")
            rs = [self.track_ok("acl-%d-2" % (i % 5)) for i in range(15)]
            rs.append(self.track_ok("acl-deny-2"))
            rs.append(self.track_ok("acl-deny-2", uid=True))
            self.assertEqual(set((r.source, r.purposes) for r in rs), {("failure", "")}, rs)
            self.assertEqual(rs[-2].var("Subject-Id"), "acl-deny-2")
            self.assertLess(max(r.elapsed for r in rs), H.slow(1.0))
            # a failure neither sets nor clears the UID cookie
            self.assertEqual(rs[-1].resp.set_cookies(), [])
            m1 = self.metrics()
            self.assertGreater(self.errors(m1, "reply"), self.errors(m0, "reply"),
                               "errors kind=reply not counted")
        finally:
            self.assertEqual(admin.cmd("ACL", "SETUSER", "default", "+@all"), "OK")
            admin.close()
        r = self.wait_track("acl-deny-2", ("redis", "cache"), 5.0)
        self.assertEqual(r.purposes, "service,personalization")
        self.assertEqual(self.track_ok("acl-new-2").source, "default")  # no record
        self.wait_gauge(self.ngx, 1, 5.0)
        self.assertNoLeaks()

    def test_03_maxclients_refusal(self):
        """maxclients: Redis refuses nginx's connections ("max number of
        clients reached") after they are killed: failure (deny) with no 5xx,
        nothing cached served while the subscription is down, no tracking
        data upstream; recovery (lookups and the subscription) once the
        limit is raised."""
        s = "maxcl-3"
        v = self.set_record(s, "marketing=0", "personalization=0")
        self.track_ok(s)
        self.assertEqual(self.track_ok(s).source, "cache")
        admin = Resp(self.redis.port)   # holds the one slot
        try:
            m0 = self.metrics()
            self.assertEqual(admin.cmd("CONFIG", "SET", "maxclients", "1"), "OK")
            admin.cmd("CLIENT", "KILL", "TYPE", "pubsub")
            admin.cmd("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            self.wait_gauge(self.ngx, 0, 5.0)
            time.sleep(H.slow(0.5))
            rs = [self.track_ok(x) for x in (s, "maxcl-new-3") for _ in range(10)]
            self.assertEqual(set((r.source, r.purposes) for r in rs), {("failure", "")}, rs)
            self.assertLess(max(r.elapsed for r in rs), H.slow(1.0))
            info = admin.cmd("INFO", "stats")
            rejected = int(re.search(r"rejected_connections:(\d+)", info).group(1))
            self.assertGreater(rejected, 0, "redis rejected no connection")
            m1 = self.metrics()
            self.assertGreater(sum(self.errors(m1, k) for k in ("connect", "io", "reply", "protocol"))
                               + self.m(m1, "consent_redis_reconnects_total"),
                               sum(self.errors(m0, k) for k in ("connect", "io", "reply", "protocol"))
                               + self.m(m0, "consent_redis_reconnects_total"))
        finally:
            admin.cmd("CONFIG", "SET", "maxclients", "10000")
            admin.close()
        self.wait_gauge(self.ngx, 1, 5.0)
        r = self.wait_track(s, ("redis", "cache"), 5.0)
        self.assertDecision(r, "redis", "service", v, s)
        self.assertNoLeaks()

    def test_04_subscriber_dropped_output_buffer(self):
        """client-output-buffer-limit pubsub 1 1 0 and a burst of big
        messages: Redis drops the subscriber; an update published meanwhile
        is missed. The module must not serve the stale cached record (which
        granted marketing): the next request re-reads (or fails; a cache
        answer only with the new version, after a resubscription) and the
        upstream never sees utm_*. The gauge recovers to 1 after the limit
        is restored and updates are heard again."""
        s = "obuf-4"
        self.set_record(s, "marketing=1", "analysis=1")
        self.assertEqual(self.ok(s).source, "redis")
        self.assertEqual(self.ok(s).source, "cache")
        admin = Resp(self.redis.port)
        try:
            self.assertEqual(admin.cmd("CONFIG", "SET", "client-output-buffer-limit",
                                       "pubsub 1 1 0"), "OK")
            big = "x" * 65536
            for _ in range(50):
                admin.cmd("PUBLISH", RS.CHANNEL, big)
            self.assertEqual(admin.cmd("CONFIG", "GET", "client-output-buffer-limit")[1]
                             .count("pubsub 1 1 0"), 1)
            # the update is published while the subscriber is being dropped
            v2 = self.set_record(s, "marketing=0", "analysis=0")
            self.wait_gauge(self.ngx, 0, 5.0)
            # redis 7.0 has no INFO counter for it; its log names each drop
            dropped = self.redis.log().count("output buffer limits")
            self.assertGreater(dropped, 0, "redis dropped no subscriber:\n" + self.redis.log())
            rs = [self.track_ok(s) for _ in range(5)]
            for r in rs:
                # never the stale record (marketing granted); a cache answer
                # only if re-read after a resubscription (the new version)
                self.assertIn(r.purposes, ("service,personalization", ""), r)
                if r.source == "cache":
                    self.assertEqual(r.version, v2, "stale cache entry served: %r" % r)
        finally:
            admin.cmd("CONFIG", "SET", "client-output-buffer-limit", DEFAULT_PUBSUB_LIMIT)
            admin.close()
        took = self.wait_gauge(self.ngx, 1, 5.0)
        sys.stderr.write("\n[obuf] output-buffer disconnections=%r; gauge 1 again after %.0f ms\n"
                         % (dropped, took * 1000))
        r = self.wait_track(s, ("redis", "cache"), 3.0)
        self.assertDecision(r, r.source, "service,personalization", v2, s)
        # updates are heard again: a grant becomes visible (no tracking sent)
        v3 = self.set_record(s, "analysis=1")
        r, _ = self.wait_source(s, ("redis",), 2.0)
        self.assertDecision(r, "redis", "service,analysis,personalization", v3, s)
        self.assertNoLeaks()


class F2KilledMidFlight(LogCheck, FaultBase):
    """Redis SIGKILLed while lookups are in flight (held by CLIENT PAUSE);
    timeout=1s so that they are still waiting when Redis dies."""

    redis_opts = "connect_timeout=%s timeout=%s" % (H.slow_ms(300), H.slow_ms(1000))

    def test_05_killed_with_lookups_in_flight(self):
        """CLIENT PAUSE 3000 ALL, 16 concurrent lookups of uncached subjects,
        SIGKILL during the pause: every request is answered 200 with
        failure (deny), none held past the 1 s timeout (+ margin), no
        tracking data upstream; after the restart lookups succeed."""
        admin = Resp(self.redis.port)
        # the pause outlasts the kill (and the lookups' wait for it) at any
        # slowdown; the module's timeout (1 s, scaled) never fires first
        pause_ms = round(H.slow(3.0) * 1000)
        self.assertEqual(admin.cmd("CLIENT", "PAUSE", str(pause_ms), "ALL"), "OK")
        results, errors = [], []

        def one(i):
            try:
                results.append(self.track("midflight-%d-5" % i, timeout=10))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        ths = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        time.sleep(H.slow(0.3))    # the lookups reach the paused Redis
        self.redis.kill()
        admin.close()
        for t in ths:
            t.join(H.slow(10))
        took = time.monotonic() - t0
        self.assertEqual(errors, [])
        self.assertEqual([r for r in results if r.status != 200], [])
        self.assertEqual(len(results), 16)
        self.assertEqual(set((r.source, r.purposes) for r in results), {("failure", "")})
        self.assertLess(max(r.elapsed for r in results), H.slow(2.0))
        sys.stderr.write("\n[mid-flight] 16 lookups answered within %.0f ms\n" % (took * 1000))
        self.redis.start()
        self.set_record("midflight-0-5", "personalization=0")
        self.wait_gauge(self.ngx, 1, 5.0)
        r = self.wait_track("midflight-0-5", ("redis", "cache"), 5.0)
        self.assertEqual(r.purposes, "service")
        self.assertEqual(self.track_ok("midflight-1-5").source, "default")  # no record
        self.assertNoLeaks()


class F3WorkerKilled(LogCheck, FaultBase):
    """nginx workers killed with SIGKILL while a client thread runs."""

    expected_log_kills = set()

    def test_06_worker_sigkill_under_traffic(self):
        """SIGKILL each worker (so worker 0, the subscriber, too) while two
        client threads send tracked requests: only requests on the killed
        worker's connections may fail at the socket level (counted, allowed),
        never a 5xx; the master respawns 2 workers; the new worker 0
        resubscribes (gauge 1 within 5 s); decisions correct afterwards, and
        a cache entry from before the crash is re-read (the crash is a gap)."""
        s = "wkill-6"
        v = self.set_record(s, "marketing=0", "personalization=0")
        self.track_ok(s)
        statuses, sock_errors, bad = {}, [], []
        stop = threading.Event()

        def client(k):
            i = 0
            while not stop.is_set():
                i += 1
                subj = s if i % 2 else "wkill-%d-%d-6" % (k, i % 50)
                try:
                    r = self.track(subj, timeout=5)
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status == 200 and subj == s and r.source != "failure" \
                            and r.purposes != "service":
                        bad.append(r)
                except Exception as e:  # noqa: BLE001 - socket-level: allowed
                    sock_errors.append("%s: %s" % (type(e).__name__, e))
                time.sleep(0.005)
        ths = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(2)]
        for t in ths:
            t.start()
        try:
            time.sleep(0.5)
            for _ in range(2):
                old = sorted(self.ngx.worker_pids())
                victim = old[0]
                self.expected_log_kills.add(victim)
                self.ngx.kill_worker(victim)
                self.assertTrue(self.ngx.wait_respawned(victim, 2), "master did not respawn")
                time.sleep(0.7)
            took = self.wait_gauge(self.ngx, 1, 5.0)
            time.sleep(0.5)
            # traffic must have flowed across the kills: on a loaded machine
            # (the ASan leg) the clients get through fewer requests in the
            # same time, so they go on until 50 were answered (bounded)
            deadline = time.monotonic() + H.slow(10)
            while statuses.get(200, 0) <= 50 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            for t in ths:
                t.join(H.slow(10))
        sys.stderr.write("\n[worker kill] statuses %r, socket errors %d, gauge 1 after %.0f ms\n"
                         % (statuses, len(sock_errors), took * 1000))
        self.assertEqual([st for st in statuses if st >= 500], [], statuses)
        self.assertEqual(set(statuses), {200})
        self.assertLess(len(sock_errors), 20, sock_errors[:5])
        self.assertEqual(bad, [])
        self.assertGreater(statuses.get(200, 0), 50)
        # decisions afterwards
        self.assertDecision(self.track_ok(s), self.track_ok(s).source, "service", v, s)
        v2 = self.set_record(s, "analysis=1")
        r, _ = self.wait_source(s, ("redis",), 2.0)
        self.assertDecision(r, "redis", "service,analysis", v2, s)
        self.assertNoLeaks()


class F4CacheFull(LogCheck, FaultBase):
    """consent_cache zone=consent:32k (8 pages, the minimum) and thousands of
    distinct subjects."""

    zone = "32k"

    def test_07_cache_full(self):
        """3000 distinct subjects (half with a record denying marketing and
        personalization, half with none) through a 32k zone: no request
        fails, consent_cache_evictions_total grows, every decision correct,
        no tracking data upstream."""
        n = 3000
        subjects = ["full-%d-7" % i for i in range(n)]
        pipe = "".join("HSET consent:{%s} v 1 marketing 0 personalization 0\n" % s
                       for s in subjects[::2])
        import subprocess
        p = subprocess.run(self.redis.cli_cmd(), input=pipe.encode(),
                           stdout=subprocess.DEVNULL, timeout=60)
        self.assertEqual(p.returncode, 0)
        toks = {s: H.py_mint(self.k1, 1, s) for s in subjects}
        m0 = self.metrics()
        wrong, fails = [], []
        lock = threading.Lock()

        def worker(part):
            for s in part:
                for _ in range(2 if s.endswith("0-7") else 1):
                    try:
                        r = self.track(token=toks[s], timeout=10)
                    except Exception as e:  # noqa: BLE001
                        with lock:
                            fails.append(repr(e))
                        continue
                    if r.status != 200:
                        with lock:
                            fails.append(r)
                        continue
                    idx = int(s.split("-")[1])
                    if idx % 2 == 0:
                        want, sources = ("service", "1"), ("redis", "cache")
                    else:
                        want, sources = (DEFAULTS, ""), ("default",)
                    got = (r.purposes, r.version)
                    if got != want or r.source not in sources \
                            or r.var("Subject-Id") != s:
                        with lock:
                            wrong.append((s, r))
        ths = [threading.Thread(target=worker, args=(subjects[k::3],)) for k in range(3)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        for t in ths:
            t.join(H.slow(240))
        m1 = self.metrics()
        ev = self.m(m1, "consent_cache_evictions_total") - self.m(m0, "consent_cache_evictions_total")
        sys.stderr.write("\n[cache full] %d subjects in %.1f s, evictions +%d, hits +%d\n"
                         % (n, time.monotonic() - t0, ev,
                            self.m(m1, "consent_cache_hits_total")
                            - self.m(m0, "consent_cache_hits_total")))
        self.assertEqual(fails[:5], [])
        self.assertEqual(wrong[:5], [])
        self.assertGreater(ev, 0, "no eviction counted with a full zone")
        # the cache still works after the churn
        s = subjects[-2]
        self.track_ok(token=toks[s])
        self.assertEqual(self.track_ok(token=toks[s]).source, "cache")
        self.assertNoLeaks()


class F5TokenEdges(LogCheck, FaultBase):
    """Tokens at the edges of expiry and of the issued_at skew (py_mint)."""

    def at_second_start(self):
        """Waits until early in a wall-clock second; returns that second."""
        while time.time() % 1 > 0.2:
            time.sleep(0.02)
        return int(time.time())

    def test_08_expiry_edge(self):
        """A PURL token (and a UID cookie) expiring 5 s from now: valid right
        before, expired right after (expires_at <= now). The expired token
        never gives a subject: token status expired, subject variables empty,
        source none, defaults (the subject's record grants marketing, yet
        utm_* is stripped), ctk/vid removed."""
        s = "edge-exp-8"
        self.set_record(s, "marketing=1", "analysis=1")
        now = self.at_second_start()
        exp = now + 5  # room for six requests on a loaded machine
        purl = H.py_mint(self.k1, 1, s, issued_at=now - 10, expires_at=exp)
        uid = H.py_mint(self.k1, 1, s, kind="uid", issued_at=now - 10, expires_at=exp)
        # before: valid (no tracking sent: the record grants marketing).
        # Each is sent several times, so that every worker has remembered
        # it as valid (crypto/token_memo) before it expires.
        before = []
        for _ in range(3):
            before.append(self.request(None, target="/p?a=1&ctk=" + purl))
            before.append(self.request(None, headers=[("Cookie", "vid=" + uid)]))
        self.assertLess(time.time(), exp - 0.2, "too slow to check before expiry")
        for r in before:
            self.assertEqual(r.status, 200)
            self.assertEqual((r.var("Status"), r.var("Subject-Id"), r.purposes),
                             ("valid", s, "service,analysis,marketing,personalization"))
        while time.time() < exp + 0.2:
            time.sleep(0.05)
        for _ in range(3):
            for r in (self.track_ok(token=purl), self.track_ok(token=uid, uid=True)):
                self.assertEqual((r.var("Status"), r.var("Subject-Id"), r.var("Subject"),
                                  r.source, r.purposes),
                                 ("expired", "", "", "none", DEFAULTS), r)
        m = self.metrics()
        self.assertGreaterEqual(self.m(m, "consent_tokens_total", source="purl", status="expired"), 1)
        self.assertNoLeaks()

    def test_09_issued_at_skew_edge(self):
        """issued_at = now + 300 is valid, now + 301 invalid (checked within
        one wall-clock second, retried if the second changed)."""
        s = "edge-iat-9"
        for attempt in range(5):
            now = self.at_second_start()
            ok = H.py_mint(self.k1, 1, s, issued_at=now + 300, expires_at=now + 3600)
            bad = H.py_mint(self.k1, 1, s, issued_at=now + 301, expires_at=now + 3600)
            r_ok = self.track_ok(token=ok)
            r_bad = self.track_ok(token=bad)
            if int(time.time()) == now:
                break
        else:
            self.fail("could not stay within one second")
        self.assertEqual((r_ok.var("Status"), r_ok.var("Subject-Id")), ("valid", s))
        self.assertEqual((r_bad.var("Status"), r_bad.var("Subject-Id"), r_bad.source,
                          r_bad.purposes), ("invalid", "", "none", DEFAULTS))
        self.assertNoLeaks()


class F6ReloadChangesKeys(LogCheck, FaultBase):
    """A reload that retires the issuing key (1) and issues with a new one
    (2), under traffic."""

    def test_10_reload_retires_key(self):
        """Reload from `consent_key 1 issue` to `consent_key 2 issue` (key 1
        gone) while two client threads send tracked requests with key-1
        tokens: no 5xx, no socket error; every answer is valid (an old
        worker) or unknown_key (a new one), never anything else; afterwards
        key-1 tokens and cookies give no subject (defaults: a subject whose
        record grants marketing has its utm_* stripped), key-2 tokens are
        valid with the cached record, and a new UID cookie is sealed under
        key 2."""
        d, g = "rk-deny-10", "rk-grant-10"
        self.set_record(d, "marketing=0")
        self.set_record(g, "marketing=1", "analysis=1")
        k2 = H.keygen(self.ngx.path("k2.key"), "aes256gcm")
        t1d = H.mint(self.k1, 1, d)
        self.assertEqual(self.track_ok(token=t1d).var("Status"), "valid")
        statuses, errors, odd = {}, [], []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    r = self.track(token=t1d, timeout=10)
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status == 200 and (r.var("Status"), r.var("Subject-Id")) not in (
                            ("valid", d), ("unknown_key", "")):
                        odd.append(r)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                time.sleep(0.005)
        ths = [threading.Thread(target=client, daemon=True) for _ in range(2)]
        for th in ths:
            th.start()
        try:
            time.sleep(0.5)
            self.write_config(self.ngx, "consent_key 2 {d}/k2.key issue;")
            rc, out = self.ngx.test_config()
            self.assertEqual(rc, 0, out)
            self.assertTrue(self.ngx.reload(timeout=15), self.ngx.error_log()[-2000:])
            time.sleep(1.0)
        finally:
            stop.set()
            for th in ths:
                th.join(H.slow(15))
        self.assertEqual(errors, [])
        self.assertEqual(set(statuses), {200}, statuses)
        self.assertEqual(odd[:3], [])
        # after: key 1 is gone
        for r in (self.track_ok(token=t1d), self.track_ok(token=H.mint(self.k1, 1, g)),
                  self.track_ok(token=H.mint(self.k1, 1, g, kind="uid"), uid=True)):
            self.assertEqual((r.var("Status"), r.var("Subject-Id"), r.source, r.purposes),
                             ("unknown_key", "", "none", DEFAULTS), r)
        # key 2 opens, with the record (no tracking sent: it grants marketing)
        t2g = H.mint(k2, 2, g)
        r = self.request(None, target="/p?a=1&ctk=" + t2g)
        self.assertEqual((r.var("Status"), r.var("Subject-Id"), r.purposes),
                         ("valid", g, "service,analysis,marketing,personalization"))
        vid = [c for c in r.resp.set_cookies() if c.startswith("vid=")]
        self.assertEqual(len(vid), 1, r.resp.set_cookies())
        raw = vid[0].split(";")[0][4:]
        blob = __import__("base64").urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        self.assertEqual((blob[1], blob[2], int.from_bytes(blob[3:5], "big")), (2, 2, 2),
                         "the new UID cookie is not a UID token under key 2 (aes256gcm)")
        self.assertEqual(self.track_ok(token=H.mint(k2, 2, d)).var("Subject-Id"), d)
        self.assertEqual(self.ngx.crash_lines(), [])
        self.assertNoLeaks()


class CutProxy:
    """A TCP proxy to Redis that can cut the reply to the next HGETALL on a
    lookup connection in the middle (forwards half of its bytes, then closes
    both sides), as if Redis died mid-reply, or replace it (self.replace)
    with a reply of the wrong type."""

    def __init__(self, redis_port):
        from test_redis_race import resp_parse
        self.resp_parse = resp_parse
        self.redis_port = redis_port
        self.armed = False
        self.replace = None      # bytes: send these instead of the reply
        self.cut_done = threading.Event()
        self.cut_info = None
        self.lock = threading.Lock()
        self.socks = []
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.redis_port), timeout=5)
                s.settimeout(None)
            except OSError:
                c.close()
                continue
            st = {"pending": [], "sub": False}
            with self.lock:
                self.socks += [c, s]
            threading.Thread(target=self._c2s, args=(c, s, st), daemon=True).start()
            threading.Thread(target=self._s2c, args=(c, s, st), daemon=True).start()

    @staticmethod
    def _close(*socks):
        for x in socks:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def _c2s(self, c, s, st):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    r = self.resp_parse(buf)
                    if r is None:
                        break
                    cmd, end = r
                    buf = buf[end:]
                    name = cmd[0].decode().upper() if isinstance(cmd, list) and cmd else "?"
                    with self.lock:
                        if name in ("SUBSCRIBE", "PSUBSCRIBE"):
                            st["sub"] = True
                        cut = False
                        if name == "HGETALL" and not st["sub"] and self.armed:
                            cut = self.replace if self.replace is not None else True
                            self.armed, self.replace = False, None
                        if not st["sub"]:
                            st["pending"].append(cut)
                s.sendall(data)
        except OSError:
            pass
        self._close(c, s)

    def _s2c(self, c, s, st):
        buf = b""
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                if st["sub"]:
                    c.sendall(buf + data)
                    buf = b""
                    continue
                buf += data
                while True:
                    r = self.resp_parse(buf)
                    if r is None:
                        break
                    _, end = r
                    with self.lock:
                        cut = st["pending"].pop(0) if st["pending"] else False
                    if isinstance(cut, bytes):
                        c.sendall(cut)
                        buf = buf[end:]
                        self.cut_done.set()
                        continue
                    if cut:
                        c.sendall(buf[:end // 2])
                        self.cut_info = (end, end // 2)
                        time.sleep(0.05)
                        self._close(c, s)
                        self.cut_done.set()
                        return
                    c.sendall(buf[:end])
                    buf = buf[end:]
        except OSError:
            pass
        self._close(c, s)

    def stop(self):
        self.ls.close()
        with self.lock:
            socks = list(self.socks)
        self._close(*socks)


class F7CutMidReply(LogCheck, FaultBase):
    """consent_redis points at CutProxy in front of the redis-server: a reply
    bigger than 64 KB, and a reply cut in the middle."""

    @classmethod
    def redis_directive(cls, password=None):
        if getattr(cls, "proxy", None) is None:
            cls.proxy = CutProxy(cls.redis.port)
            cls.addClassCleanup(cls.proxy.stop)
        return "127.0.0.1:%d %s" % (cls.proxy.port, cls.redis_opts)

    @classmethod
    def setUpClass(cls):
        cls.proxy = None
        super().setUpClass()

    def big_record(self, subject, size=100000):
        self.hset(subject, "v", "1", "marketing", "0", "personalization", "0",
                  "pad", "p" * size)

    def track_armed(self, subject, replace=None):
        """Arms the proxy (cut, or replace with `replace`) and sends
        requests for `subject` until one's HGETALL went through it: a
        worker whose connection is still reconnecting after an earlier cut
        answers at once with failure, without asking Redis. Returns that
        request's answer."""
        self.proxy.cut_done.clear()
        self.proxy.replace, self.proxy.armed = replace, True
        for _ in range(20):
            r = self.track_ok(subject)
            if self.proxy.cut_done.wait(H.slow(0.5)):
                return r
            # not consumed: the failure was the breaker's, try again
            self.assertEqual((r.source, r.purposes), ("failure", ""), r)
        self.fail("no lookup of %s reached the proxy" % subject)

    def test_11_reply_over_64k(self):
        """A record whose HGETALL reply is ~100 KB in one field (an unknown
        100 KB field next to marketing=0, personalization=0): the module
        refuses replies over 64 KB (NGX_HTTP_CONSENT_MAX_REPLY, as
        test_redis_store's 06d with many fields): answered 200 at once with
        failure (deny), errors kind=protocol counted, no tracking data
        upstream; the next lookup on the connection works."""
        s = "big-11"
        self.big_record(s)
        m0 = self.metrics()
        r = self.track_ok(s)
        sys.stderr.write("\n[reply > 64 KB] source=%s purposes=%r in %.0f ms\n"
                         % (r.source, r.purposes, r.elapsed * 1000))
        self.assertEqual((r.source, r.purposes, r.var("Subject-Id")), ("failure", "", s), r)
        self.assertLess(r.elapsed, H.slow(1.0))
        m1 = self.metrics()
        self.assertEqual(self.errors(m1, "protocol") - self.errors(m0, "protocol"), 1)
        self.assertEqual(self.wait_track("small-11", ("default",), 5.0).purposes, DEFAULTS)
        self.assertNoLeaks()

    def test_12_killed_mid_reply(self):
        """The reply to one HGETALL (~40 KB) is cut after half its bytes
        and the connection closed (Redis dying mid-reply): that request is
        answered 200 with failure (deny), nothing granted, no tracking data
        upstream, an error counted; the worker reconnects and the same
        subject is then read whole."""
        s = "cut-12"
        self.big_record(s, 40000)   # under the 64 KB limit: read whole later
        m0 = self.metrics()
        r = self.track_armed(s)
        sys.stderr.write("\n[mid-reply] reply of %d bytes cut at %d: source=%s in %.0f ms\n"
                         % (self.proxy.cut_info + (r.source, r.elapsed * 1000)))
        self.assertEqual((r.source, r.purposes), ("failure", ""), r)
        self.assertLess(r.elapsed, H.slow(1.0))
        m1 = self.metrics()
        kinds = ("connect", "io", "reply", "protocol", "malformed")
        self.assertGreater(sum(self.errors(m1, k) for k in kinds)
                           + self.m(m1, "consent_redis_reconnects_total"),
                           sum(self.errors(m0, k) for k in kinds)
                           + self.m(m0, "consent_redis_reconnects_total"))
        r = self.wait_track(s, ("redis", "cache"), 5.0)
        self.assertEqual(r.purposes, "service")
        self.assertNoLeaks()
    def test_13_wrong_type_replies(self):
        """The reply to HGETALL replaced by one of the wrong type (integer,
        status, nil, a bulk string, an odd-length array, a nested array, an
        array of integers, an error): each request is answered 200 with
        failure (deny), nothing granted, no tracking data upstream; the
        connection stays usable (the next lookup is read as usual)."""
        wrong = [b":42\r\n", b"+OK\r\n", b"$-1\r\n", b"$9\r\nmarketing\r\n",
                 b"*3\r\n$9\r\nmarketing\r\n$1\r\n1\r\n$1\r\nv\r\n",
                 b"*2\r\n*2\r\n$9\r\nmarketing\r\n$1\r\n1\r\n$1\r\n1\r\n",
                 b"*4\r\n:1\r\n:1\r\n$9\r\nmarketing\r\n:1\r\n",
                 b"-ERR injected\r\n"]
        self.set_record("wt-13", "marketing=0")
        for i, w in enumerate(wrong):
            s = "wt-%d-13" % i
            self.hset(s, "v", "1", "marketing", "1")   # what a correct reply would grant
            r = self.track_armed(s, replace=w)
            self.assertEqual((r.source, r.purposes), ("failure", ""), "%r: %r" % (w, r))
            r = self.wait_track("wt-13", ("redis", "cache"), 5.0)
            self.assertEqual(r.purposes, "service,personalization", "after %r" % w)
        self.assertNoLeaks()


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
