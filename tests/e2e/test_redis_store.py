#!/usr/bin/python3
"""End to end: the consent module reading consent records from a private
redis-server, through the packaged nginx (2 workers) in front of the echo
upstream of harness.py.

Each test class starts its own redis-server and its own nginx (nginx loads
the module's .so at start, so nothing is reused across classes), and checks
at its end that error.log shows no crash.

Run: /usr/bin/python3 tests/e2e/test_redis_store.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl

Every duration here, the module's Redis timeouts in nginx.conf included, is
scaled by CONSENT_E2E_SLOWDOWN (H.slow, H.slow_ms; 1 unless set), so the
suite keeps its meaning with nginx under valgrind (./dev test --valgrind).
"""
import os
import signal
import socket
import statistics
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

CHANNEL = "consent:updates"
DEFAULTS = "service,personalization"
ALL = "service,analysis,marketing,personalization"

VARS = [
    ("X-Consent-Purposes", "$consent_purposes"),
    ("X-Consent-Source", "$consent_source"),
    ("X-Consent-Version", "$consent_version"),
    ("X-Consent-Subject-Id", "$consent_subject_id"),
    ("X-Consent-Subject", "$consent_subject"),
    ("X-Consent-Status", "$consent_token_status"),
    ("X-Consent-Stripped", "$consent_stripped"),
]

HTTP_TEXT = """
    consent_key 1 {d}/k1.key issue;
    consent_pseudonym_key {d}/p.key;
    consent_redis {redis};
    consent_cache zone=consent:1m ttl=60s;
    consent_on_failure {on_failure};
    consent_purpose service granted;
    consent_purpose analysis denied;
    consent_purpose marketing denied gpc;
    consent_purpose personalization granted;
    consent_uid_cookie vid purpose=personalization;
    consent_strip_args marketing utm_*;
    consent_strip_cookies analysis _ga;
"""

SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            consent on;
            proxy_pass http://127.0.0.1:{up};
{headers}
        }}
        location = /status {{ consent_status; }}
        location = /pid {{ return 200 $pid; }}
    }}
"""

# Slowed down (nginx under valgrind), the default connect_timeout (200ms) is
# scaled like every other duration; natively the classes keep the default.
SLOW_CONNECT = "" if H.SLOWDOWN == 1 else " connect_timeout=" + H.slow_ms(200)

# error.log lines that must never appear
BAD_LOG = ("[alert]", "[crit]", "[emerg]", "signal 11", "exited on signal")


def nginx_config(ngx, up_port, redis_directive, on_failure="deny", extra_http=""):
    headers = "".join("            proxy_set_header %s %s;\n" % hv for hv in VARS)
    ngx.write_config(
        HTTP_TEXT.format(d=ngx.dir, redis=redis_directive, on_failure=on_failure)
        + extra_http,
        SERVERS.format(port=ngx.port, up=up_port, headers=headers))


class Result:
    """One request through nginx: status, the consent variables the upstream
    saw, Set-Cookie headers and how long it took."""

    def __init__(self, resp, elapsed):
        self.resp = resp
        self.status = resp.status
        self.elapsed = elapsed
        self.seen = H.Seen(resp) if resp.status == 200 else None

    def var(self, name):
        if self.seen is None:
            raise AssertionError("no upstream view: %r" % self.resp)
        v = self.seen.one("X-Consent-" + name)
        return "" if v is None else v

    @property
    def source(self):
        return self.var("Source")

    @property
    def purposes(self):
        return self.var("Purposes")

    @property
    def version(self):
        return self.var("Version")

    def __repr__(self):
        if self.seen is None:
            return "<Result %d %.3fs>" % (self.status, self.elapsed)
        return ("<Result %d %.3fs source=%r purposes=%r v=%r subject_id=%r>"
                % (self.status, self.elapsed, self.source, self.purposes,
                   self.version, self.var("Subject-Id")))


class RedisStoreBase(unittest.TestCase):
    """One redis-server and one nginx (2 workers) for the class."""

    maxDiff = None
    redis_password = None      # --requirepass
    redis_unix = False         # --unixsocket, and nginx connects through it
    redis_opts = "timeout=" + H.slow_ms(100) + SLOW_CONNECT
    module_password = None     # password= in consent_redis (None: redis_password)
    db = None                  # db= in consent_redis
    on_failure = "deny"
    extra_http = ""            # more http-level directives
    k1 = pk = None
    redis_up = True            # False: consent_redis points at nothing
    wait_subscription = True

    @classmethod
    def setUpClass(cls):
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.redis = H.RedisServer(password=cls.redis_password, unixsocket=cls.redis_unix,
                                  **cls.redis_server_args())
        cls.addClassCleanup(cls.redis.cleanup)
        if cls.redis_up:
            cls.redis.start()
        cls.k1 = cls.pk = None
        cls.ngx = cls.make_nginx()
        cls.addClassCleanup(cls.ngx.cleanup)
        cls.tokens = {}
        cls.ngx.start()
        cls.log_start = len(cls.ngx.error_log())
        if cls.redis_up and cls.wait_subscription:
            cls.wait_gauge(cls.ngx, 1, 5.0)

    @classmethod
    def redis_server_args(cls):
        """More arguments of harness.RedisServer (TLS, ACL users, a host)."""
        return {}

    @classmethod
    def ctl_args(cls):
        """More consentctl options for this class's redis (TLS, a user)."""
        return []

    @classmethod
    def redis_directive(cls, password=None):
        addr = ("unix:" + cls.redis.unixsocket) if cls.redis_unix else cls.redis.address
        parts = [addr]
        if cls.db is not None:
            parts.append("db=%d" % cls.db)
        pw = password or cls.module_password or cls.redis_password
        if pw:
            parts.append("password=" + pw)
        parts.append(cls.redis_opts)
        return " ".join(parts)

    @classmethod
    def make_nginx(cls, password=None):
        """An nginx (not started) with this class's configuration; the first
        one makes the keys, later ones (another password) get copies."""
        ngx = H.Nginx(workers=2, error_log_level="info")
        if getattr(cls, "k1", None) is None:
            cls.k1 = H.keygen(ngx.path("k1.key"), "xchacha20poly1305")
            cls.pk = H.pseudonym_keygen(ngx.path("p.key"))
        else:
            for name, src in (("k1.key", cls.k1), ("p.key", cls.pk)):
                with open(src) as f:
                    ngx.write_file(name, f.read())
        nginx_config(ngx, cls.up.port, cls.redis_directive(password), cls.on_failure,
                     cls.extra_http)
        return ngx

    # -- helpers ------------------------------------------------------------
    @classmethod
    def token(cls, subject, kind="purl"):
        key = (subject, kind)
        if key not in cls.tokens:
            cls.tokens[key] = H.mint(cls.k1, 1, subject, kind=kind)
        return cls.tokens[key]

    def request(self, subject=None, ngx=None, headers=(), target="/p?a=1", uid=False,
                timeout=15.0):
        """A GET carrying a PURL token for subject (uid=True: a vid cookie)."""
        ngx = ngx or self.ngx
        headers = list(headers)
        if subject is not None:
            if uid:
                headers.append(("Cookie", "vid=" + self.token(subject, "uid")))
            else:
                target += ("&" if "?" in target else "?") + "ctk=" + self.token(subject)
        t0 = time.monotonic()
        resp = ngx.get(target, headers, timeout=timeout)
        return Result(resp, time.monotonic() - t0)

    def ok(self, subject=None, **kw):
        """request(), failing the test unless nginx answered 200 from upstream."""
        r = self.request(subject, **kw)
        self.assertEqual(r.status, 200, "%r\n%r" % (r, r.resp.body[:300]))
        return r

    def assertDecision(self, r, source, purposes, version=None, subject=None):
        got = {"source": r.source, "purposes": r.purposes}
        want = {"source": source, "purposes": purposes}
        if version is not None:
            got["version"], want["version"] = r.version, version
        if subject is not None:
            got["subject_id"], want["subject_id"] = r.var("Subject-Id"), subject
        self.assertEqual(got, want, repr(r))

    @staticmethod
    def status_of(ngx):
        resp = ngx.get("/status", timeout=10)
        if resp.status != 200:
            raise AssertionError("/status answered %r" % resp)
        samples, _, _ = H.parse_prometheus(resp.body.decode("latin-1"))
        return samples

    def metrics(self, ngx=None):
        return self.status_of(ngx or self.ngx)

    @staticmethod
    def m(samples, name, **labels):
        return H.metric(samples, name, **labels)

    @classmethod
    def wait_gauge(cls, ngx, value, timeout):
        """Polls consent_subscription_up until it is `value`; the seconds it
        took, or raises. timeout is scaled by H.slow()."""
        timeout = H.slow(timeout)
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            last = cls.status_of(ngx).get("consent_subscription_up")
            if last == value:
                return time.monotonic() - t0
            time.sleep(0.02)
        raise AssertionError("consent_subscription_up stayed %r, not %r, for %.1fs\n%s"
                             % (last, value, timeout, ngx.error_log()[-2000:]))

    def ctl(self, *args):
        """consentctl against this class's redis; returns stdout."""
        addr = ("unix:" + self.redis.unixsocket) if self.redis_unix else self.redis.address
        extra = ["--redis", addr]
        if self.redis_password:
            extra += ["--password", self.redis_password]
        if self.db is not None:
            extra += ["--db", str(self.db)]
        extra += self.ctl_args()
        _, out, _ = H.run_consentctl(args[0], *extra, *args[1:])
        return out.strip()

    def set_record(self, subject, *fields):
        """consentctl set SUBJECT f=1 ...; returns the new version (str).
        While the edge is subscribed, waits (up to 1 s, scaled) until it has
        applied an announcement: a read the next request sends before the
        announcement arrives is not cached (the cache rules), so without the
        wait a test's "cached on the second request" would race consentctl's
        PUBLISH."""
        applied = self.applied_updates()
        out = self.ctl("set", subject, *fields)
        self.assertRegex(out, r"^v=\d+$")
        if applied is not None:
            deadline = time.monotonic() + H.slow(1)
            while time.monotonic() < deadline:
                now = self.applied_updates()
                if now is None or now > applied:
                    break
                time.sleep(0.005)
        return out[2:]

    def applied_updates(self):
        """consent_updates_applied_total of this class's nginx while its
        subscription is up; None when it is not (or nginx does not answer)."""
        ngx = getattr(self, "ngx", None)
        if ngx is None:
            return None
        try:
            m = self.metrics()
        except Exception:  # a best effort: the caller then does not wait
            return None
        if self.m(m, "consent_subscription_up") != 1:
            return None
        return self.m(m, "consent_updates_applied_total")

    def hset(self, subject, *pairs, db=None):
        """A raw HSET of the record (no PUBLISH)."""
        self.redis.cli("HSET", "consent:{%s}" % subject, *pairs, db=db)

    def hgetall_calls(self):
        return self.redis.calls("hgetall")

    def wait_source(self, subject, sources, timeout, **kw):
        """Requests subject until its source is in `sources`; (result,
        seconds) or raises. Every answer must be a 200. timeout is scaled
        by H.slow()."""
        timeout = H.slow(timeout)
        t0 = time.monotonic()
        seen = []
        while True:
            r = self.ok(subject, **kw)
            seen.append(r.source)
            if r.source in sources:
                return r, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError("source never in %r within %.1fs; saw %r\n%s"
                                     % (sources, timeout, seen[-20:],
                                        self.ngx.error_log()[-2000:]))
            time.sleep(0.02)

    def log_since_start(self, ngx=None):
        ngx = ngx or self.ngx
        start = self.log_start if ngx is self.ngx else 0
        return ngx.error_log()[start:]

    def assertLogClean(self, ngx=None):
        ngx = ngx or self.ngx
        bad = [l for l in self.log_since_start(ngx).splitlines()
               if any(b in l for b in BAD_LOG)]
        self.assertEqual(bad, [], "error.log shows a crash or an alert")
        # ./dev test --asan / --valgrind: no sanitizer or memcheck report so far
        self.assertEqual([(name, why) for name, why, _ in ngx.findings()], [])


class LogCheck:
    """16, at the end of every class (tests run in name order)."""

    def test_zz_no_crash_in_error_log(self):
        """16: no [alert]/[crit]/[emerg]/signal 11/exited on signal in error.log
        since the start, and the master and its 2 workers are alive."""
        self.assertTrue(H._alive(self.ngx.master_pid), "nginx master is gone")
        self.assertEqual(len(self.ngx.worker_pids()), 2, "nginx workers: %r"
                         % self.ngx.worker_pids())
        self.assertLogClean()


# ==========================================================================

class T1Store(LogCheck, RedisStoreBase):
    """Lookups, caching, updates, erasure, exp, malformed records, reload and
    a subscription gap, with consent_redis 127.0.0.1:P timeout=100ms."""

    def test_01_lookup_then_cache(self):
        """1: first request source=redis, second source=cache; one HGETALL."""
        s = "cust-lookup-1"
        v = self.set_record(s, "marketing=1")
        before = self.hgetall_calls()
        r1 = self.ok(s)
        r2 = self.ok(s)
        after = self.hgetall_calls()
        self.assertDecision(r1, "redis", ALL.replace("analysis,", ""), v, s)
        self.assertDecision(r2, "cache", ALL.replace("analysis,", ""), v, s)
        self.assertEqual(after - before, 1, "cmdstat_hgetall calls grew by %d for "
                         "two requests of one subject" % (after - before))
        m = self.metrics()
        self.assertGreaterEqual(self.m(m, "consent_cache_hits_total"), 1)
        self.assertGreaterEqual(self.m(m, "consent_cache_misses_total"), 1)
        self.assertGreaterEqual(self.m(m, "consent_redis_lookups_total"), 1)

    def test_02_update_visible_within_1s(self):
        """2: consentctl set is seen by the upstream within 1 s (cached before)."""
        s = "cust-update-2"
        self.set_record(s, "marketing=1", "analysis=0")
        self.assertEqual(self.ok(s).source, "redis")
        self.assertDecision(self.ok(s), "cache", "service,marketing,personalization")
        applied0 = self.m(self.metrics(), "consent_updates_applied_total")

        t0 = time.monotonic()
        v = self.set_record(s, "marketing=0", "analysis=1")
        t_set = time.monotonic()
        want = "service,analysis,personalization"
        while True:
            r = self.ok(s)
            if r.purposes == want:
                break
            self.assertEqual(r.purposes, "service,marketing,personalization", repr(r))
            if time.monotonic() - t0 > H.slow(3):
                break
            time.sleep(0.005)
        latency = time.monotonic() - t0
        sys.stderr.write("\n[update visibility] %.1f ms from starting `consentctl set` "
                         "(%.1f ms after it returned)\n"
                         % (latency * 1000, (time.monotonic() - t_set) * 1000))
        self.assertEqual(r.purposes, want, repr(r))
        self.assertEqual(r.version, v)
        self.assertIn(r.source, ("redis", "cache"))
        self.assertLess(latency, H.slow(1.0), "update became visible after %.3fs" % latency)
        self.assertGreater(self.m(self.metrics(), "consent_updates_applied_total"), applied0)

    def test_02b_raw_hset_and_publish(self):
        """2b: a raw HSET + PUBLISH "SUBJECT V" (what the script does) is seen
        within 1 s; a PUBLISH of an older version changes nothing."""
        s = "cust-raw-2b"
        self.hset(s, "v", "1", "marketing", "1")
        self.assertDecision(self.ok(s), "redis", "service,marketing,personalization", "1")
        self.assertEqual(self.ok(s).source, "cache")
        self.hset(s, "v", "2", "marketing", "0")
        self.assertGreaterEqual(int(self.redis.cli("PUBLISH", CHANNEL, "%s 2" % s)[0]), 1,
                                "nginx is not subscribed to the channel")
        r, took = self.wait_source(s, ("redis",), 1.0)
        self.assertDecision(r, "redis", DEFAULTS, "2")
        self.assertDecision(self.ok(s), "cache", DEFAULTS, "2")
        # an announcement of a version already held is no news
        self.redis.cli("PUBLISH", CHANNEL, "%s 1" % s)
        time.sleep(H.slow(0.1))
        self.assertDecision(self.ok(s), "cache", DEFAULTS, "2")

    def test_03_publish_star_drops_cache(self):
        """3: PUBLISH "*" makes the next request of a cached subject go to Redis."""
        s = "cust-star-3"
        self.set_record(s, "analysis=1")
        self.assertEqual(self.ok(s).source, "redis")
        self.assertEqual(self.ok(s).source, "cache")
        before = self.hgetall_calls()
        self.assertGreaterEqual(int(self.redis.cli("PUBLISH", CHANNEL, "*")[0]), 1,
                                "nginx is not subscribed to the channel")
        # the message reaches worker 0 asynchronously: allow it a moment
        r, took = self.wait_source(s, ("redis",), 1.0)
        self.assertDecision(r, "redis", ALL.replace("marketing,", ""), "1", s)
        # A read sent in the very millisecond the flush was applied counts
        # as stale too (the cache cannot order events within a
        # millisecond), so one more read may follow before it is cached.
        # On a fast machine several requests fit in that millisecond, each
        # one more read: the next one waits until the millisecond is past
        # (the flush was applied before the read above was sent).
        time.sleep(0.005)
        r, took = self.wait_source(s, ("cache",), 1.0)
        self.assertIn(self.hgetall_calls() - before, (1, 2))

    def test_04_erasure(self):
        """4: an erased subject: nothing granted, subject variables empty,
        the vid cookie it carries cleared, no vid cookie set from a PURL."""
        s = "cust-erase-4"
        self.set_record(s, "marketing=1", "analysis=1")
        self.assertDecision(self.ok(s, uid=True), "redis", ALL, "1", s)
        v = self.ctl("erase", s)
        self.assertRegex(v, r"^v=\d+$")
        r, _ = self.wait_source(s, ("redis",), 1.0, uid=True)
        self.assertDecision(r, "redis", "", v[2:], "")
        self.assertEqual(r.var("Subject"), "")
        self.assertEqual(r.var("Status"), "valid")
        vid = [c for c in r.resp.set_cookies() if c.startswith("vid=")]
        self.assertEqual(len(vid), 1, r.resp.set_cookies())
        self.assertTrue(vid[0].startswith("vid=;"), vid[0])
        self.assertIn("max-age=0", vid[0].lower().replace(" ", ""), vid[0])
        self.assertNotIn("vid", (r.seen.one("Cookie") or ""))
        # through a PURL token: the same decision, no cookie set
        r = self.ok(s)
        self.assertDecision(r, "cache", "", v[2:], "")
        self.assertEqual([c for c in r.resp.set_cookies() if c.startswith("vid=")], [])

    def test_05_exp_past_gives_defaults(self):
        """5: a record whose exp is past: defaults, source default, no version."""
        s = "cust-exp-past-5"
        self.hset(s, "v", "3", "marketing", "1", "personalization", "0",
                  "exp", str(int(time.time()) - 60))
        r = self.ok(s)
        self.assertDecision(r, "default", DEFAULTS, "", s)
        r = self.ok(s)  # again, from the cache or not: still defaults
        self.assertEqual(r.purposes, DEFAULTS, repr(r))
        self.assertIn(r.source, ("default",), repr(r))

    def test_05b_exp_future_applies(self):
        """5: exp in the future: the record applies."""
        s = "cust-exp-future-5"
        self.hset(s, "v", "3", "marketing", "1", "personalization", "0",
                  "exp", str(int(time.time()) + 3600))
        self.assertDecision(self.ok(s), "redis", "service,marketing", "3", s)
        self.assertDecision(self.ok(s), "cache", "service,marketing", "3", s)

    def test_05c_exp_passes_while_cached(self):
        """5: a cached record whose exp passes gives the defaults from then on."""
        s = "cust-exp-soon-5"
        exp = int(time.time()) + 2
        self.hset(s, "v", "1", "marketing", "1", "exp", str(exp))
        self.assertDecision(self.ok(s), "redis", "service,marketing,personalization", "1")
        self.assertEqual(self.ok(s).source, "cache")
        while time.time() < exp + 0.05:
            time.sleep(0.05)
        r = self.ok(s)
        self.assertDecision(r, "default", DEFAULTS)

    def test_06a_malformed_version(self):
        """6: v=abc: the read is a failure (deny: nothing granted), kind=malformed."""
        s = "cust-bad-v-6"
        self.hset(s, "v", "abc", "marketing", "1")
        m0 = self.metrics()
        r = self.ok(s)
        self.assertDecision(r, "failure", "", "", s)
        self.assertLess(r.elapsed, H.slow(1.0))
        m1 = self.metrics()
        self.assertEqual(self.m(m1, "consent_redis_errors_total", kind="malformed")
                         - self.m(m0, "consent_redis_errors_total", kind="malformed"), 1)
        # a failure is not cached
        self.assertEqual(self.ok(s).source, "failure")

    def test_06b_malformed_purpose_value(self):
        """6: a purpose field "maybe" is denied, whatever the default."""
        s = "cust-maybe-6"
        self.hset(s, "v", "1", "marketing", "maybe", "personalization", "maybe",
                  "analysis", "1", "service", "yes")
        r = self.ok(s)
        self.assertDecision(r, "redis", "analysis", "1", s)

    def test_06c_wrongtype(self):
        """6: the key is a string: WRONGTYPE, failure, kind=reply counted."""
        s = "cust-string-6"
        self.redis.cli("SET", "consent:{%s}" % s, "granted")
        m0 = self.metrics()
        r = self.ok(s)
        self.assertDecision(r, "failure", "", "", s)
        m1 = self.metrics()
        self.assertEqual(self.m(m1, "consent_redis_errors_total", kind="reply")
                         - self.m(m0, "consent_redis_errors_total", kind="reply"), 1)
        # the connection is still usable afterwards
        s2 = "cust-after-string-6"
        self.set_record(s2, "marketing=1")
        self.assertEqual(self.ok(s2).source, "redis")

    def test_06d_huge_hash(self):
        """6: a hash over 64 KB: failure, kind=protocol counted."""
        s = "cust-huge-6"
        pairs = ["v", "1", "marketing", "1"]
        for i in range(9):
            pairs += ["pad%d" % i, "x" * 8000]  # 72 KB of values
        self.hset(s, *pairs)
        m0 = self.metrics()
        r = self.ok(s)
        self.assertDecision(r, "failure", "", "", s)
        m1 = self.metrics()
        self.assertEqual(self.m(m1, "consent_redis_errors_total", kind="protocol")
                         - self.m(m0, "consent_redis_errors_total", kind="protocol"), 1)
        s2 = "cust-after-huge-6"
        self.set_record(s2, "marketing=1")
        self.assertEqual(self.ok(s2).source, "redis")

    def test_07_metrics_present(self):
        """Every store metric of the contract is exposed."""
        m = self.metrics()
        for name in ("consent_cache_hits_total", "consent_cache_misses_total",
                     "consent_cache_evictions_total", "consent_redis_lookups_total",
                     "consent_redis_merged_total", "consent_redis_timeouts_total",
                     "consent_redis_reconnects_total", "consent_redis_fast_failures_total",
                     "consent_updates_applied_total", "consent_subscription_up"):
            self.assertTrue(H.has_metric(m, name), name)
        for kind in ("connect", "io", "reply", "protocol", "malformed"):
            self.assertTrue(H.has_metric(m, "consent_redis_errors_total", kind=kind), kind)
        self.assertEqual(m["consent_subscription_up"], 1)

    def test_12_reload_keeps_warm_cache(self):
        """12: SIGHUP with a warm cache: the new workers serve it from cache."""
        s = "cust-reload-12"
        self.set_record(s, "marketing=1")
        self.assertEqual(self.ok(s).source, "redis")
        self.assertEqual(self.ok(s).source, "cache")
        before = self.hgetall_calls()
        old = set(self.ngx.worker_pids())
        self.assertTrue(self.ngx.reload(), "no new workers after SIGHUP\n"
                        + self.ngx.error_log()[-2000:])
        # the old workers go; the new ones answer
        deadline = time.monotonic() + H.slow(10)
        while time.monotonic() < deadline and any(H._alive(p) for p in old):
            time.sleep(0.05)
        self.assertFalse(any(H._alive(p) for p in old), "old workers still alive")
        self.wait_gauge(self.ngx, 1, 3.0)
        r = self.ok(s)
        if H.SLOWDOWN > 1:
            # Slowed down (valgrind), the old worker 0 has exited before the
            # new one subscribes: a subscription gap, so the cache rightly
            # goes cold. Only the answer is checked then.
            self.assertDecision(r, r.source if r.source in ("cache", "redis") else "cache",
                                "service,marketing,personalization", "1", s)
            return
        self.assertDecision(r, "cache", "service,marketing,personalization", "1", s)
        self.assertEqual(self.hgetall_calls() - before, 0)

    def test_15_subscription_gap(self):
        """15: CLIENT KILL TYPE pubsub: the cache is not trusted across the gap,
        the subscription comes back within 3 s, and entries cached before the
        gap are read from Redis once more."""
        a, b = "cust-gap-a-15", "cust-gap-b-15"
        for s in (a, b):
            self.set_record(s, "analysis=1")
            self.assertEqual(self.ok(s).source, "redis")
            self.assertEqual(self.ok(s).source, "cache")
        killed = self.redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        self.assertGreaterEqual(int(killed[0]), 1, "no pub/sub client to kill")
        # worker 0 notices the closed connection asynchronously: within 0.5 s
        # either the gauge reads 0 or the cached subject is not served from
        # the cache
        t0 = time.monotonic()
        while True:
            gauge = self.metrics().get("consent_subscription_up")
            ra = self.ok(a)
            if gauge == 0 or ra.source != "cache":
                break
            self.assertLess(time.monotonic() - t0, H.slow(0.5),
                            "after the kill: gauge=%r and %r served from cache" % (gauge, ra))
            time.sleep(0.01)
        took = self.wait_gauge(self.ngx, 1, 3.0)
        sys.stderr.write("\n[subscription gap] right after the kill gauge=%r, %s came "
                         "from %s; gauge back to 1 %.0f ms later\n"
                         % (gauge, a, ra.source, took * 1000))
        rb1 = self.ok(b)
        rb2 = self.ok(b)
        self.assertDecision(rb1, "redis", ALL.replace("marketing,", ""), "1")
        self.assertDecision(rb2, "cache", ALL.replace("marketing,", ""), "1")
        # the subscription is live again: an update is heard
        self.set_record(b, "analysis=0")
        r, took = self.wait_source(b, ("redis",), 1.0)
        self.assertEqual(r.purposes, DEFAULTS)


class T2Outage(LogCheck, RedisStoreBase):
    """Redis killed and restarted, and Redis stopped (SIGSTOP)."""

    redis_opts = "connect_timeout=%s timeout=%s" % (H.slow_ms(150), H.slow_ms(100))

    def tearDown(self):
        self.redis.sigcont()
        if not self.redis.alive():
            self.redis.start()

    def test_07_kill_and_restart(self):
        """7: SIGKILL redis under continuous traffic, restart it on the same
        port: no 5xx, no connection error, failure during the outage, redis
        or cache again within 3 s, reconnects counted."""
        s = "cust-kill-7"
        self.set_record(s, "marketing=1")
        self.assertEqual(self.ok(s).source, "redis")
        m0 = self.metrics()

        samples, errors = [], []
        stop = threading.Event()
        marks = {}

        def client():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = self.request(s, timeout=5)
                    src = r.source if r.status == 200 else None
                    pur = r.purposes if r.status == 200 else None
                    samples.append((t0, time.monotonic(), r.status, src, pur))
                except Exception as e:  # noqa: BLE001 - every failure counts
                    errors.append("%s: %s" % (type(e).__name__, e))
                time.sleep(0.005)

        th = threading.Thread(target=client, daemon=True)
        th.start()
        try:
            time.sleep(0.5)
            marks["kill"] = time.monotonic()
            self.redis.kill()
            time.sleep(H.slow(1.0))
            marks["restart"] = time.monotonic()
            self.redis.start()
            marks["started"] = time.monotonic()
            self.set_record(s, "marketing=1")  # redis keeps nothing (--save '')
            deadline = marks["restart"] + H.slow(3.5)
            while time.monotonic() < deadline:
                if any(t0 > marks["started"] and src in ("redis", "cache")
                       for t0, _, _, src, _ in samples[-5:]):
                    break
                time.sleep(0.05)
            time.sleep(0.2)
        finally:
            stop.set()
            th.join(H.slow(10))

        self.assertEqual(errors, [], "client errors during the outage")
        bad = [x for x in samples if x[2] != 200]
        self.assertEqual(bad, [], "non-200 answers")
        self.assertGreater(len(samples), 20, "too little traffic to mean anything")
        outage = [x for x in samples if x[0] > marks["kill"] + H.slow(0.3)
                  and x[1] < marks["restart"]]
        self.assertGreater(len(outage), 5, "no requests during the outage")
        self.assertEqual(sorted(set((x[3], x[4]) for x in outage)), [("failure", "")],
                         "source/purposes during the outage")
        back = [x for x in samples if x[0] > marks["started"] and x[3] in ("redis", "cache")]
        self.assertTrue(back, "never redis/cache again after the restart; last: %r"
                        % [x[3] for x in samples[-10:]])
        recovered = back[0][1] - marks["started"]
        sys.stderr.write("\n[kill/restart] redis/cache again %.0f ms after restart\n"
                         % (recovered * 1000))
        self.assertLess(recovered, H.slow(3.0))
        self.assertEqual(back[0][4], "service,marketing,personalization")
        self.assertLess(max(x[1] - x[0] for x in samples), H.slow(1.0), "a request was held")
        m1 = self.metrics()
        self.assertGreater(self.m(m1, "consent_redis_reconnects_total"),
                           self.m(m0, "consent_redis_reconnects_total"))
        self.wait_gauge(self.ngx, 1, 3.0)

    def test_08_sigstop(self):
        """8: SIGSTOP: answers within the bound, source failure; after the
        first timeouts later requests fail fast; SIGCONT: back within 3 s."""
        s = "cust-stop-8"
        self.set_record(s, "marketing=1")
        m0 = self.metrics()
        results = []
        self.redis.sigstop()
        try:
            t_end = time.monotonic() + H.slow(1.5)
            while time.monotonic() < t_end:
                results.append(self.request(s, timeout=5))
                time.sleep(0.01)
        finally:
            self.redis.sigcont()
        m1 = self.metrics()
        self.assertEqual([r for r in results if r.status != 200], [])
        self.assertGreater(len(results), 8)
        self.assertEqual(sorted(set((r.source, r.purposes) for r in results)),
                         [("failure", "")])
        slowest = max(r.elapsed for r in results)
        sys.stderr.write("\n[sigstop] %d requests, slowest %.0f ms, median %.1f ms\n"
                         % (len(results), slowest * 1000,
                            statistics.median(r.elapsed for r in results) * 1000))
        self.assertLess(slowest, H.slow(1.0), "a request was held past the bound")
        # at most one timeout per worker; the rest did not wait for one
        later = [r.elapsed for r in results[4:]]
        self.assertLess(statistics.median(later), H.slow(0.1),
                        "later requests still wait: %r" % [round(x, 3) for x in later])
        self.assertGreaterEqual(self.m(m1, "consent_redis_timeouts_total")
                                - self.m(m0, "consent_redis_timeouts_total"), 1)
        self.assertGreaterEqual(self.m(m1, "consent_redis_fast_failures_total")
                                - self.m(m0, "consent_redis_fast_failures_total"),
                                len(results) - 4)
        r, took = self.wait_source(s, ("redis", "cache"), 3.0)
        sys.stderr.write("[sigstop] recovered %.0f ms after SIGCONT\n" % (took * 1000))
        self.assertEqual(r.purposes, "service,marketing,personalization")

    def test_09_on_failure_deny_keeps_subject(self):
        """consent_on_failure deny: on failure nothing is granted, but the
        subject variables stay set."""
        s = "cust-deny-9"
        self.redis.kill()
        try:
            r = self.ok(s)
            self.assertDecision(r, "failure", "", "", s)
            self.assertLess(r.elapsed, H.slow(1.0))
        finally:
            self.redis.start()


class T3OnFailureDefault(LogCheck, RedisStoreBase):
    """consent_on_failure default, with nothing listening at the address."""

    on_failure = "default"
    redis_up = False

    def test_failure_gives_defaults(self):
        s = "cust-default-f"
        m0 = self.metrics()
        for _ in range(4):
            r = self.ok(s)
            self.assertDecision(r, "failure", DEFAULTS, "", s)
            self.assertLess(r.elapsed, H.slow(1.0))
        # without a subject nothing is looked up
        self.assertDecision(self.ok(None), "none", DEFAULTS, "")
        m1 = self.metrics()
        self.assertGreaterEqual(self.m(m1, "consent_redis_errors_total", kind="connect"), 1)
        self.assertGreater(self.m(m1, "consent_redis_fast_failures_total")
                           + self.m(m1, "consent_redis_timeouts_total"),
                           self.m(m0, "consent_redis_fast_failures_total")
                           + self.m(m0, "consent_redis_timeouts_total"))
        self.assertEqual(m1.get("consent_subscription_up"), 0)


class T3bOnFailureDeny(LogCheck, RedisStoreBase):
    """consent_on_failure deny, nothing listening: a failure must not clear
    the visitor's UID cookie (the denial is the edge's caution, not the
    customer's choice), and the cookie still never reaches the upstream."""

    redis_up = False

    def test_failure_keeps_uid_cookie(self):
        s = "cust-deny-keep"
        for _ in range(3):
            r = self.ok(s, uid=True)
            self.assertDecision(r, "failure", "", "", s)
            self.assertEqual([c for c in r.resp.set_cookies() if c.startswith("vid=")], [],
                             "a failure decision cleared or set the UID cookie")
            self.assertNotIn("vid=", " ".join(v for k, v in r.seen.headers
                                               if k.lower() == "cookie"))


class T4Auth(LogCheck, RedisStoreBase):
    """9: redis with --requirepass."""

    redis_password = "right-pass-9f3a"

    def test_right_password(self):
        s = "cust-auth-9"
        self.set_record(s, "marketing=1")
        self.assertDecision(self.ok(s), "redis", "service,marketing,personalization", "1", s)
        self.assertEqual(self.ok(s).source, "cache")

    def test_wrong_password(self):
        wrong = "wrong-pass-77c1"
        s = "cust-auth-wrong-9"
        self.set_record(s, "marketing=1")
        ngx = self.make_nginx(password=wrong)
        self.addCleanup(ngx.cleanup)
        ngx.start()
        self.assertNotEqual(ngx.dir, self.ngx.dir)
        results = []
        t_end = time.monotonic() + H.slow(1.0)
        while time.monotonic() < t_end:
            results.append(self.request(s, ngx=ngx, timeout=5))
            time.sleep(0.02)
        self.assertEqual([r for r in results if r.status != 200], [])
        self.assertEqual(sorted(set((r.source, r.purposes) for r in results)),
                         [("failure", "")])
        self.assertLess(max(r.elapsed for r in results), H.slow(1.0))
        m = self.status_of(ngx)
        self.assertGreaterEqual(self.m(m, "consent_redis_errors_total", kind="reply"), 1)
        self.assertEqual(m.get("consent_subscription_up"), 0)
        log = ngx.error_log()
        self.assertNotIn(wrong, log, "the password is in error.log")
        self.assertLogClean(ngx)


class T5Db3(LogCheck, RedisStoreBase):
    """10: consent_redis ... db=3."""

    db = 3

    def test_records_in_db3(self):
        s = "cust-db3-10"
        self.set_record(s, "marketing=1")              # --db 3
        self.hset(s, "v", "7", "analysis", "1", db=0)  # the same key in db 0
        self.assertDecision(self.ok(s), "redis", "service,marketing,personalization", "1", s)
        self.assertDecision(self.ok(s), "cache", "service,marketing,personalization", "1", s)
        only0 = "cust-db0-only-10"
        self.hset(only0, "v", "1", "marketing", "1", db=0)
        self.assertDecision(self.ok(only0), "default", DEFAULTS, "", only0)
        # updates written to db 3 are heard (the channel is not per db)
        v = self.set_record(s, "marketing=0")
        r, _ = self.wait_source(s, ("redis",), 1.0)
        self.assertDecision(r, "redis", DEFAULTS, v, s)


class T5bBadDb(LogCheck, RedisStoreBase):
    """consent_redis ... db=99, beyond the server's 16 databases: SELECT
    fails. A lookup queued behind the handshake of a worker's first
    connection gets its reply in the same read as SELECT's error; that reply
    comes from database 0 and must not be taken for the subject's record."""

    db = 99
    redis_opts = "timeout=%s connect_timeout=%s" % (H.slow_ms(3000), H.slow_ms(3000))
    wait_subscription = False

    def test_reply_behind_failed_select_is_a_failure(self):
        s = "cust-baddb"
        self.hset(s, "v", "5", "marketing", "1", db=0)
        self.redis.sigstop()
        self.addCleanup(self.redis.sigcont)
        ngx = self.make_nginx()
        self.addCleanup(ngx.cleanup)
        ngx.start()   # each worker connects; AUTH/SELECT/PING wait in Redis
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", self.request(s, ngx=ngx)),
                             daemon=True)
        t.start()
        time.sleep(H.slow(0.5))   # the request's HGETALL is queued behind them
        self.redis.sigcont()
        t.join(H.slow(10))
        r = box.get("r")
        self.assertIsNotNone(r, "the request did not finish")
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(r.version, "5", "database 0's record was taken: %r" % r)
        self.assertDecision(r, "failure", "", "", s)
        m = self.status_of(ngx)
        self.assertGreaterEqual(self.m(m, "consent_redis_errors_total", kind="reply"), 1)
        self.assertLogClean(ngx)


class T6Unix(LogCheck, RedisStoreBase):
    """11: consent_redis unix:/path."""

    redis_unix = True

    def test_unix_socket(self):
        s = "cust-unix-11"
        self.set_record(s, "analysis=1")
        self.assertIn("unix:", self.redis_directive())
        self.assertDecision(self.ok(s), "redis", ALL.replace("marketing,", ""), "1", s)
        self.assertDecision(self.ok(s), "cache", ALL.replace("marketing,", ""), "1", s)
        v = self.set_record(s, "analysis=0")
        r, _ = self.wait_source(s, ("redis",), 1.0)
        self.assertDecision(r, "redis", DEFAULTS, v, s)


class T7SlowTimeout(LogCheck, RedisStoreBase):
    """13 and 14, with timeout=2s."""

    redis_opts = "timeout=" + H.slow_ms(2000) + SLOW_CONNECT

    def tearDown(self):
        self.redis.sigcont()

    def _abort_round(self, tag, cont_after):
        """SIGSTOP, 20 clients that give up after 20 ms while their lookup
        waits, SIGCONT after cont_after seconds."""
        tokens = [self.token("cust-abort-%s-%02d" % (tag, i)) for i in range(20)]
        self.redis.sigstop()
        t0 = time.monotonic()
        try:
            for tok in tokens:
                c = socket.create_connection(("127.0.0.1", self.ngx.port), timeout=5)
                c.sendall(("GET /p?ctk=%s HTTP/1.1\r\nHost: localhost\r\n\r\n" % tok).encode())
                time.sleep(0.02)
                c.close()
            while time.monotonic() - t0 < cont_after:
                time.sleep(0.02)
        finally:
            self.redis.sigcont()

    def test_13_client_aborts_while_waiting(self):
        """13: clients close while their lookup waits (replies arriving after
        the abort, then timeouts firing after the abort): no crash."""
        pids = sorted(self.ngx.worker_pids())
        m0 = self.metrics()
        self._abort_round("a", 0.0)    # the replies come after the aborts
        time.sleep(H.slow(0.3))
        m1 = self.metrics()
        self._abort_round("b", H.slow(2.4))  # the 2 s timeouts fire after the aborts
        time.sleep(H.slow(0.1))
        m2 = self.metrics()

        def delta(a, b, name):
            return self.m(b, name) - self.m(a, name)

        # the scenario really happened: every aborted request had sent its
        # lookup (20 subjects, 20 HGETALLs), and in round b they timed out
        self.assertEqual(delta(m0, m1, "consent_redis_lookups_total"), 20)
        self.assertEqual(delta(m0, m1, "consent_redis_timeouts_total"), 0)
        self.assertEqual(delta(m1, m2, "consent_redis_lookups_total"), 20)
        self.assertGreaterEqual(delta(m1, m2, "consent_redis_timeouts_total"), 1)
        s = "cust-after-abort-13"
        self.set_record(s, "marketing=1")
        r, _ = self.wait_source(s, ("redis", "cache"), 3.0)
        self.assertEqual(r.purposes, "service,marketing,personalization")
        self.assertEqual(sorted(self.ngx.worker_pids()), pids, "a worker was replaced")
        self.assertLogClean()

    def test_13b_no_token_in_error_log_after_abort(self):
        """13: the token never reaches error.log, even for a request whose
        client gave up while its lookup waited (docs/directives.md: access
        and error logs never carry the token)."""
        tokens = [self.token("cust-abort-log-%02d" % i) for i in range(3)]
        self.redis.sigstop()
        try:
            for tok in tokens:
                c = socket.create_connection(("127.0.0.1", self.ngx.port), timeout=5)
                c.sendall(("GET /p?ctk=%s HTTP/1.1\r\nHost: localhost\r\n\r\n" % tok).encode())
                time.sleep(0.05)
                c.close()
            time.sleep(H.slow(0.1))
        finally:
            self.redis.sigcont()
        time.sleep(H.slow(0.2))
        leaked = [l for l in self.ngx.error_log().splitlines()
                  if any(t in l for t in tokens)]
        self.assertEqual(len(leaked), 0, "%d error.log lines carry a token, e.g.\n%s"
                         % (len(leaked), leaked[0][:300] if leaked else ""))

    def wait_lookups_up(self, run=20, timeout=6.0):
        """Until `run` lookups in a row, each on a new connection (so either
        worker may take it), are answered by Redis: the timeouts of earlier
        tests closed the workers' lookup connections, and a worker whose
        reconnect is still in its backoff fails fast."""
        t_end = time.monotonic() + H.slow(timeout)
        i = ok = 0
        while ok < run:
            i += 1
            r = self.ok("cust-settle-14-%04d" % i)
            ok = ok + 1 if r.source == "default" else 0
            if time.monotonic() > t_end:
                raise AssertionError("lookups still failing after %.1fs: %r"
                                     % (H.slow(timeout), r))
            if not ok:
                time.sleep(0.05)

    def test_14_merged_lookups(self):
        """14: 10 concurrent requests for one subject while Redis is paused:
        all redis/cache, merged counted, at most one HGETALL per worker."""
        self.wait_lookups_up()
        s = "cust-merge-14"
        self.set_record(s, "marketing=1")
        tok = self.token(s)
        m0 = self.metrics()
        before = self.hgetall_calls()
        results, errors = [None] * 10, []
        barrier = threading.Barrier(10)

        def one(i):
            try:
                barrier.wait(5)
                results[i] = self.request(s, timeout=10)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        pause_ms = round(H.slow(0.3) * 1000)
        self.assertEqual(self.redis.cli("CLIENT", "PAUSE", str(pause_ms), "ALL"), ["OK"])
        threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(H.slow(15))
        self.assertEqual(tok, self.token(s))
        self.assertEqual(errors, [])
        self.assertEqual([r for r in results if r is None or r.status != 200], [])
        self.assertEqual(set(r.source for r in results) - {"redis", "cache"}, set(),
                         repr(results))
        self.assertEqual(set(r.purposes for r in results),
                         {"service,marketing,personalization"})
        m1 = self.metrics()
        calls = self.hgetall_calls() - before
        merged = (self.m(m1, "consent_redis_merged_total")
                  - self.m(m0, "consent_redis_merged_total"))
        sys.stderr.write("\n[merge] hgetall +%d, merged +%d, sources %r\n"
                         % (calls, merged, sorted(r.source for r in results)))
        self.assertGreater(merged, 0)
        self.assertGreaterEqual(calls, 1)
        self.assertLessEqual(calls, 2, "more HGETALLs than workers")



class T8ReloadReordersPurposes(LogCheck, RedisStoreBase):
    """A reload that declares the purposes in another order reuses the cache
    zone (same name and size): a record cached under the old order must not
    be read under the new one (purposes are bits by declaration order)."""

    def test_reordered_purposes_not_read_from_old_cache(self):
        s = "cust-reorder-1"
        self.set_record(s, "marketing=1", "analysis=0")
        want = "service,marketing,personalization"
        self.assertDecision(self.ok(s), "redis", want, "1", s)
        # consentctl's announcement may reach the subscription after that
        # read was sent: the edge then caches nothing and reads once more
        # (docs/architecture.md, "Updates"), so wait for the cached answer
        r, _ = self.wait_source(s, {"cache"}, 5)
        self.assertDecision(r, "cache", want, "1", s)
        # marketing before analysis now: their bits trade places
        text = HTTP_TEXT.replace(
            "    consent_purpose analysis denied;\n"
            "    consent_purpose marketing denied gpc;\n",
            "    consent_purpose marketing denied gpc;\n"
            "    consent_purpose analysis denied;\n")
        self.assertNotEqual(text, HTTP_TEXT)
        headers = "".join("            proxy_set_header %s %s;\n" % hv for hv in VARS)
        self.ngx.write_config(
            text.format(d=self.ngx.dir, redis=self.redis_directive(),
                        on_failure=self.on_failure),
            SERVERS.format(port=self.ngx.port, up=self.up.port, headers=headers))
        old = set(self.ngx.worker_pids())
        self.assertTrue(self.ngx.reload(), self.ngx.error_log()[-2000:])
        deadline = time.monotonic() + H.slow(10)
        while time.monotonic() < deadline and any(H._alive(p) for p in old):
            time.sleep(0.05)
        self.wait_gauge(self.ngx, 1, 3.0)
        r = self.ok(s)
        # the same record, whatever the source: marketing granted, analysis not
        self.assertEqual((r.purposes, r.version), (want, "1"), repr(r))


class T9PrefixAndChannel(LogCheck, RedisStoreBase):
    """consent_redis_prefix and consent_redis_channel other than the defaults:
    the record is read from PREFIX{subject}, and updates are heard on that
    channel only (interface.md: nginx directives, consent records)."""

    prefix = "app1:"
    channel = "app1:consent-updates"
    extra_http = ("    consent_redis_prefix %s;\n    consent_redis_channel %s;\n"
                  % (prefix, channel))

    def set_here(self, subject, *fields):
        out = self.ctl("set", "--prefix", self.prefix, "--channel", self.channel,
                       subject, *fields)
        self.assertRegex(out, r"^v=\d+$")
        return out[2:]

    def test_01_record_read_from_prefix_key(self):
        s = "cust-prefix-1"
        # a record under the default prefix is not this edge's
        self.set_record(s, "marketing=1")
        self.assertDecision(self.ok(s), "default", DEFAULTS, "", s)
        self.redis.cli("PUBLISH", self.channel, "*")
        v = self.set_here(s, "analysis=1")
        r, _ = self.wait_source(s, ("redis",), 1.0)
        self.assertDecision(r, "redis", ALL.replace("marketing,", ""), v, s)
        self.assertEqual(self.redis.cli("HGET", "%s{%s}" % (self.prefix, s), "v"), [v])

    def test_02_updates_heard_on_the_configured_channel(self):
        s = "cust-channel-2"
        self.set_here(s, "analysis=1")
        self.assertEqual(self.ok(s).source, "redis")
        self.assertEqual(self.ok(s).source, "cache")
        # announced on the default channel: not this edge's channel
        self.hset_here(s, "v", "2", "analysis", "0")
        self.redis.cli("PUBLISH", CHANNEL, "%s 2" % s)
        time.sleep(H.slow(0.2))
        self.assertDecision(self.ok(s), "cache", ALL.replace("marketing,", ""), "1")
        # announced on the configured one: the cached record is dropped
        v = self.set_here(s, "analysis=0")
        r, _ = self.wait_source(s, ("redis",), 1.0)
        self.assertDecision(r, "redis", DEFAULTS, v, s)
        # and "*" there drops the whole cache
        self.assertEqual(self.ok(s).source, "cache")
        self.assertGreaterEqual(int(self.redis.cli("PUBLISH", self.channel, "*")[0]), 1)
        self.wait_source(s, ("redis",), 1.0)

    def hset_here(self, subject, *pairs):
        self.redis.cli("HSET", "%s{%s}" % (self.prefix, subject), *pairs)


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
