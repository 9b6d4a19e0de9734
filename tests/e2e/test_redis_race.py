#!/usr/bin/python3
"""End to end: a lookup that races an update.

The rule (/work/shared/interface.md, "Consent records in Redis"): "a read
that returns an older version than one already announced never replaces the
newer one".

nginx (worker_processes 1) reaches a private redis-server only through
RespProxy, a threaded TCP proxy in this process. The proxy parses the RESP
commands each connection sends and the replies it gets back, so it can hold
the reply to one chosen HGETALL: it captures the reply bytes when Redis
sends them and forwards them only when the test says so. The subscriber
connection (the one that sent SUBSCRIBE) is never held, so an announcement
published while a lookup is held reaches nginx at once.

The race, made deterministic:
  1. the record holds v=1 (marketing=0);
  2. the proxy is armed; request A starts the lookup; Redis answers with v=1
     and the proxy captures that reply;
  3. consentctl writes v=2 (marketing=1) straight to Redis; its PUBLISH
     reaches nginx through the undelayed subscriber connection; the test
     waits until /status counts it applied (consent_updates_applied_total);
  4. the held v=1 reply is released: A is answered with it (documented:
     "The request that asked is still answered with it");
  5. request B must read Redis again and see v=2: the stale v=1 was not cached.

The same race when the subject's node is evicted while the reply is held
(RedisRaceEviction: its own nginx, worker_processes 2, the smallest cache
zone). An announcement for a subject with a node goes into the node; one
for a subject without a node stamps the subject's slot of announced_ms, and
a read sent no later than that stamp is not cached. Evicting a node forgets
the version announced into it, so eviction stamps the slot too:
  1. v=1 is cached (the subject has a node); v=2 is written and announced
     into the node, which goes stale;
  2. the proxy is armed; request A (on a keep-alive connection to worker P)
     reads Redis again; Redis answers with v=2 and the proxy captures it;
  3. v=3 is written and announced into the node (/status counts it);
  4. requests for new subjects, on a keep-alive connection to the other
     worker Q (worker P's one lookup connection is stuck behind the held
     reply; RESP replies come in order), fill the zone until the subject's
     node is evicted (consent_cache_evictions_total);
  5. the held v=2 reply is released: A is answered with it;
  6. request B must read Redis again and see v=3: the v=2 read, sent before
     the eviction, was not cached in a new node.

Run: /usr/bin/python3 tests/e2e/test_redis_race.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl

The waits, and the module's Redis timeout in nginx.conf, are scaled by
CONSENT_E2E_SLOWDOWN (H.slow, H.slow_ms) for ./dev test --valgrind; HOLD_S,
a lower bound on how long a reply is held, is not.
"""
import collections
import http.client
import os
import signal
import socket
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_redis_store as RS  # noqa: E402  (its Result)

HOLD_S = 0.5  # how long a held reply is kept at least

VARS = [
    ("X-Consent-Version", "$consent_version"),
    ("X-Consent-Source", "$consent_source"),
    ("X-Consent-Purposes", "$consent_purposes"),
    ("X-Consent-Subject-Id", "$consent_subject_id"),
]

HTTP_TEXT = """
    consent_key 1 {d}/k1.key issue;
    consent_pseudonym_key {d}/p.key;
    consent_redis 127.0.0.1:{proxy_port} timeout={timeout};
    consent_cache zone={zone} ttl=60s;
    consent_purpose service granted;
    consent_purpose marketing denied;
"""

SERVERS = """
    server {{
        listen 127.0.0.1:{port}{listen};
        location / {{
            consent on;
            proxy_pass http://127.0.0.1:{up};
{headers}
        }}
        location = /status {{ consent_status; }}
        location = /pid {{ return 200 $pid; }}
    }}
"""

BAD_LOG = ("[alert]", "[crit]", "[emerg]", "signal 11", "exited on signal")


# --------------------------------------------------------------------------
# RESP

def resp_parse(buf, i=0):
    """One RESP value from buf[i:]: (value, end) or None while incomplete.
    Bulk strings come back as bytes, arrays as lists, simple strings and
    errors as ('+', bytes) / ('-', bytes), integers as int."""
    if i >= len(buf):
        return None
    j = buf.find(b"\r\n", i)
    if j < 0:
        return None
    t, line = buf[i:i + 1], buf[i + 1:j]
    end = j + 2
    if t in (b"+", b"-"):
        return (t.decode(), line), end
    if t in (b":", b"(", b","):
        return int(line) if t == b":" else line, end
    if t == b"_":
        return None, end
    if t == b"#":
        return line == b"t", end
    if t in (b"$", b"=", b"!"):
        n = int(line)
        if n < 0:
            return None, end
        if len(buf) < end + n + 2:
            return None
        return buf[end:end + n], end + n + 2
    if t in (b"*", b"~", b">", b"%", b"|"):
        n = int(line)
        if n < 0:
            return None, end
        if t in (b"%", b"|"):
            n *= 2
        out = []
        for _ in range(n):
            r = resp_parse(buf, end)
            if r is None:
                return None
            v, end = r
            out.append(v)
        return out, end
    raise ValueError("not RESP at %d: %r" % (i, buf[i:i + 40]))


class _Held:
    """The reply the proxy holds back: captured when Redis sent it, forwarded
    on release()."""

    def __init__(self):
        self.captured = threading.Event()
        self.released = threading.Event()
        self.forwarded = threading.Event()
        self.key = None          # the HGETALL's key
        self.reply = None        # the decoded reply
        self.t_captured = None

    def release(self):
        self.released.set()


class _Conn:
    def __init__(self, proxy, client):
        self.proxy = proxy
        self.client = client
        self.server = socket.create_connection(("127.0.0.1", proxy.redis_port), timeout=5)
        self.server.settimeout(None)
        self.lock = threading.Lock()
        self.pending = collections.deque()  # (command, key, _Held or None)
        self.commands = []                  # every command name sent, in order
        self.subscriber = False
        self.closed = False

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def c2s(self):
        buf = b""
        try:
            while True:
                data = self.client.recv(65536)
                if not data:
                    break
                buf += data
                # Register the commands before Redis can answer them.
                while True:
                    r = resp_parse(buf)
                    if r is None:
                        break
                    cmd, end = r
                    buf = buf[end:]
                    name = (cmd[0].decode("latin-1").upper()
                            if isinstance(cmd, list) and cmd and isinstance(cmd[0], bytes)
                            else "?")
                    key = cmd[1] if isinstance(cmd, list) and len(cmd) > 1 else None
                    with self.lock:
                        self.commands.append(name)
                        if name in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"):
                            self.subscriber = True
                        held = None
                        if name == "HGETALL" and not self.subscriber:
                            held = self.proxy._take_arm()
                            if held is not None:
                                held.key = key
                        if not self.subscriber:
                            self.pending.append((name, key, held))
                self.server.sendall(data)
        except OSError:
            pass
        finally:
            self.close()

    def s2c(self):
        buf = b""
        try:
            while True:
                data = self.server.recv(65536)
                if not data:
                    break
                with self.lock:
                    subscriber = self.subscriber
                if subscriber:
                    # Pub/sub: pushes carry no command; forward as they come.
                    self.client.sendall(buf + data)
                    buf = b""
                    continue
                buf += data
                while True:
                    r = resp_parse(buf)
                    if r is None:
                        break
                    reply, end = r
                    with self.lock:
                        entry = self.pending.popleft() if self.pending else ("?", None, None)
                    held = entry[2]
                    if held is None:
                        self.client.sendall(buf[:end])
                        buf = buf[end:]
                        continue
                    # Hold this reply (and, behind it, everything after it).
                    held.reply = reply
                    held.t_captured = time.monotonic()
                    held.captured.set()
                    held.released.wait()
                    self.client.sendall(buf[:end])
                    buf = buf[end:]
                    held.forwarded.set()
        except OSError:
            pass
        finally:
            self.close()


class RespProxy:
    """A threaded TCP proxy 127.0.0.1:port -> redis 127.0.0.1:redis_port that
    can hold the reply to the next HGETALL (arm())."""

    def __init__(self, redis_port):
        self.redis_port = redis_port
        self.lock = threading.Lock()
        self.conns = []
        self._armed = None
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(64)
        self.port = self._lsock.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stopped:
            try:
                client, _ = self._lsock.accept()
            except OSError:
                return
            try:
                conn = _Conn(self, client)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=conn.c2s, daemon=True).start()
            threading.Thread(target=conn.s2c, daemon=True).start()

    def arm(self):
        """The next HGETALL sent on a lookup connection will have its reply
        held; returns the _Held to wait on and release."""
        held = _Held()
        with self.lock:
            if self._armed is not None:
                raise RuntimeError("already armed")
            self._armed = held
        return held

    def disarm(self):
        with self.lock:
            held, self._armed = self._armed, None
        if held is not None:
            held.release()

    def _take_arm(self):
        with self.lock:
            held, self._armed = self._armed, None
            return held

    def subscriber_conns(self):
        with self.lock:
            return [c for c in self.conns if c.subscriber and not c.closed]

    def stop(self):
        self._stopped = True
        self.disarm()
        try:
            self._lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.close()


def ctl_set(redis, subject, *fields):
    """consentctl set straight to Redis; the new version (int)."""
    _, out, _ = H.run_consentctl("set", "--redis", redis.address, subject, *fields)
    out = out.strip()
    if not out.startswith("v=") or not out[2:].isdigit():
        raise AssertionError("consentctl set printed %r" % out)
    return int(out[2:])


# Subjects whose v=1 record is written before nginx starts: nginx has never
# heard of them (no cache node, nothing announced) when the test begins.
PRELOADED = ("cust-race-control", "cust-race-new")


def record_of(reply):
    """HGETALL's array reply -> {field: value} (str)."""
    if not isinstance(reply, list) or len(reply) % 2:
        raise AssertionError("not an HGETALL reply: %r" % (reply,))
    return {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply), 2)}


# --------------------------------------------------------------------------

class Result(RS.Result):
    """test_redis_store's Result, with the purposes as a list; anything but
    a 200 from the echo upstream fails at once."""

    def __init__(self, resp, elapsed):
        super().__init__(resp, elapsed)
        if self.seen is None:
            H.Seen(resp)  # raises: not a 200 from the echo upstream

    @property
    def purposes(self):
        return [p for p in self.var("Purposes").split(",") if p]


class KeepAlive:
    """One keep-alive HTTP/1.1 connection to nginx, so one worker serves
    every request sent on it. Fails rather than reconnect (http.client would
    reconnect silently, perhaps to another worker)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=H.slow(15))
        self.conn.connect()
        self.sock = self.conn.sock
        self.pid = int(self.get("/pid").body)

    def get(self, target):
        if self.conn.sock is not self.sock:
            raise AssertionError("nginx closed the keep-alive connection")
        self.conn.request("GET", target)
        r = self.conn.getresponse()
        body = r.read()
        head = "HTTP/1.1 %d %s\r\n%s" % (r.status, r.reason, r.msg)
        return H.Response(r.status, r.reason, r.getheaders(), body, head)

    def close(self):
        self.conn.close()


def keepalive_per_worker(tc, port, workers=2, tries=50):
    """{pid: KeepAlive}: one connection served by each of `workers`
    workers, closed when the test `tc` ends."""
    conns = {}
    for _ in range(tries):
        c = KeepAlive(port)
        tc.addCleanup(c.close)
        conns.setdefault(c.pid, c)
        if len(conns) == workers:
            return conns
    tc.fail("%d connections all went to worker(s) %r" % (tries, sorted(conns)))


class _RaceCase(unittest.TestCase):
    """A redis-server, a RespProxy in front of it and one nginx for the class;
    the helpers. No tests of its own."""

    maxDiff = None
    WORKERS = 1
    ZONE = "c:1m"
    TIMEOUT_MS = 2000     # the module's Redis timeout, before H.slow_ms()
    LISTEN = ""           # more parameters of the listen directive
    MAIN = ""             # main-context directives of nginx.conf

    @classmethod
    def setUpClass(cls):
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.redis = H.RedisServer()
        cls.addClassCleanup(cls.redis.cleanup)
        cls.redis.start()
        for s in PRELOADED:
            if ctl_set(cls.redis, s, "marketing=0") != 1:
                raise AssertionError("%s: not a fresh record" % s)
        cls.proxy = RespProxy(cls.redis.port)
        cls.addClassCleanup(cls.proxy.stop)
        cls.ngx = H.Nginx(workers=cls.WORKERS, error_log_level="info")
        cls.addClassCleanup(cls.ngx.cleanup)
        cls.k1 = H.keygen(cls.ngx.path("k1.key"))
        H.pseudonym_keygen(cls.ngx.path("p.key"))
        headers = "".join("            proxy_set_header %s %s;\n" % hv for hv in VARS)
        cls.ngx.write_config(
            HTTP_TEXT.format(d=cls.ngx.dir, proxy_port=cls.proxy.port,
                             timeout=H.slow_ms(cls.TIMEOUT_MS), zone=cls.ZONE),
            SERVERS.format(port=cls.ngx.port, up=cls.up.port, headers=headers,
                           listen=cls.LISTEN),
            main_text=cls.MAIN)
        cls.ngx.start()
        cls.tokens = {}
        t0 = time.monotonic()
        while cls.metric("consent_subscription_up") != 1:
            if time.monotonic() - t0 > H.slow(10):
                raise AssertionError("the subscription never came up\n"
                                     + cls.ngx.error_log()[-3000:])
            time.sleep(0.02)
        if not cls.proxy.subscriber_conns():
            raise AssertionError("the subscriber does not go through the proxy")

    # -- helpers ------------------------------------------------------------
    @classmethod
    def metrics(cls):
        resp = cls.ngx.get("/status", timeout=10)
        if resp.status != 200:
            raise AssertionError("/status answered %r" % resp)
        return H.parse_prometheus(resp.body.decode("latin-1"))[0]

    @classmethod
    def metric(cls, name, **labels):
        return H.metric(cls.metrics(), name, **labels)

    def token(self, subject):
        if subject not in self.tokens:
            self.tokens[subject] = H.mint(self.k1, 1, subject)
        return self.tokens[subject]

    def request(self, subject, conn=None):
        """A request for subject on a new connection, or on conn (KeepAlive)."""
        target = "/p?a=1&ctk=" + self.token(subject)
        t0 = time.monotonic()
        resp = conn.get(target) if conn else self.ngx.get(target, timeout=15)
        return Result(resp, time.monotonic() - t0)

    def request_in_thread(self, subject, conn=None):
        """Starts request(subject, conn) in a thread; returns join() -> Result."""
        box = {}

        def run():
            try:
                box["r"] = self.request(subject, conn)
            except BaseException as e:  # noqa: BLE001 - handed to the test
                box["e"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()

        def join(timeout=15):
            t.join(H.slow(timeout))
            if t.is_alive():
                raise AssertionError("request for %s did not finish" % subject)
            if "e" in box:
                raise box["e"]
            return box["r"]
        return join

    def set_record(self, subject, *fields):
        """consentctl set straight to Redis (its PUBLISH reaches nginx through
        the proxy's subscriber connection); the new version."""
        return ctl_set(self.redis, subject, *fields)

    def wait_applied(self, above, timeout=1.2):
        """Waits until consent_updates_applied_total > above; returns it.
        timeout is scaled by H.slow()."""
        timeout = H.slow(timeout)
        t0 = time.monotonic()
        while True:
            n = self.metric("consent_updates_applied_total")
            if n > above:
                return n
            if time.monotonic() - t0 > timeout:
                raise AssertionError(
                    "consent_updates_applied_total stayed %r for %.1fs after a write\n%s"
                    % (n, timeout, self.ngx.error_log()[-2000:]))
            time.sleep(0.01)

    def write_and_wait(self, subject, *fields):
        before = self.metric("consent_updates_applied_total")
        v = self.set_record(subject, *fields)
        after = self.wait_applied(before)
        return v, before, after

    def hold_lookup(self, subject, conn=None):
        """Arms the proxy, starts a request for subject (on conn, a KeepAlive,
        when given) and waits until the proxy captured Redis' reply to its
        HGETALL. (held, join)."""
        held = self.proxy.arm()
        self.addCleanup(held.release)
        self.addCleanup(self.proxy.disarm)
        join = self.request_in_thread(subject, conn)
        if not held.captured.wait(H.slow(5)):
            self.proxy.disarm()
            held.release()
            r = join()
            self.fail("no HGETALL reply was captured; the request got %r\n%s"
                      % (r, self.ngx.error_log()[-2000:]))
        self.assertEqual(held.key, ("consent:{%s}" % subject).encode())
        return held, join

    def release_after(self, held, seconds=HOLD_S):
        left = held.t_captured + seconds - time.monotonic()
        if left > 0:
            time.sleep(left)
        held.release()
        self.assertTrue(held.forwarded.wait(H.slow(5)), "the proxy did not forward the held reply")

    def assertLogClean(self):
        bad = [l for l in self.ngx.error_log().splitlines() if any(b in l for b in BAD_LOG)]
        self.assertEqual(bad, [], "error.log shows a crash or an alert")

    def assertRecord(self, r, source, version, marketing, why=""):
        got = (r.source, r.version, "marketing" in r.purposes, "service" in r.purposes)
        self.assertEqual(got, (source, str(version), marketing, True),
                         "%s%r\nerror.log tail:\n%s"
                         % (why and why + "\n", r, self.ngx.error_log()[-2000:]))


class RedisRace(_RaceCase):

    # -- tests --------------------------------------------------------------
    def test_1_control_held_reply_is_cached(self):
        """Without a write during the hold, the (late) reply is cached: the
        next request is served from the cache."""
        s = "cust-race-control"  # v=1 written before nginx started
        held, join = self.hold_lookup(s)
        self.assertEqual(record_of(held.reply), {"v": "1", "marketing": "0"})
        applied = self.metric("consent_updates_applied_total")
        self.release_after(held)
        a = join()
        self.assertGreaterEqual(a.elapsed, HOLD_S - 0.05, "the proxy did not hold the reply: %r" % a)
        self.assertRecord(a, "redis", 1, False)
        b = self.request(s)
        self.assertRecord(b, "cache", 1, False)
        self.assertEqual(self.metric("consent_updates_applied_total"), applied)
        self.assertLogClean()

    def test_2_race_new_subject(self):
        """A lookup of a subject nginx never heard of reads v=1; v=2 is written and
        announced while the reply is held; the v=1 reply must not be cached:
        the next request reads v=2 from Redis."""
        s = "cust-race-new"  # v=1 written before nginx started
        held, join = self.hold_lookup(s)
        self.assertEqual(record_of(held.reply), {"v": "1", "marketing": "0"})

        v2, before, after = self.write_and_wait(s, "marketing=1")
        self.assertEqual(v2, 2)
        self.assertGreater(after, before)
        self.assertFalse(held.forwarded.is_set())
        self.release_after(held)

        a = join()
        self.assertGreaterEqual(a.elapsed, HOLD_S - 0.05, "the proxy did not hold the reply: %r" % a)
        # Documented: "The request that asked is still answered with it."
        self.assertRecord(a, "redis", 1, False)
        b = self.request(s)
        self.assertRecord(b, "redis", 2, True)  # the stale v=1 was not cached
        c = self.request(s)
        self.assertRecord(c, "cache", 2, True)  # and v=2 is
        self.assertLogClean()

    def test_3_race_cached_subject(self):
        """The same race on a subject whose cached record went stale: cached
        v=1, v=2 announced, the refresh reads v=2 and is held while v=3 is
        written and announced; the next request must read v=3."""
        s = "cust-race-cached"
        self.write_and_wait(s, "marketing=0")
        self.assertRecord(self.request(s), "redis", 1, False)
        self.assertRecord(self.request(s), "cache", 1, False)
        v2, _, _ = self.write_and_wait(s, "marketing=1")
        self.assertEqual(v2, 2)

        held, join = self.hold_lookup(s)  # the cached v=1 is stale: a read
        self.assertEqual(record_of(held.reply), {"v": "2", "marketing": "1"})
        v3, before, after = self.write_and_wait(s, "marketing=0")
        self.assertEqual(v3, 3)
        self.assertGreater(after, before)
        self.release_after(held)

        a = join()
        self.assertRecord(a, "redis", 2, True)
        b = self.request(s)
        self.assertRecord(b, "redis", 3, False)
        self.assertRecord(self.request(s), "cache", 3, False)
        self.assertLogClean()

    def test_4_merge_after_announce(self):
        """A request that arrives after v=2 was announced must not be merged
        into a lookup sent before it: it would be answered with v=1."""
        s = "cust-race-merge"
        self.write_and_wait(s, "marketing=0")
        held, join_a = self.hold_lookup(s)
        self.assertEqual(record_of(held.reply), {"v": "1", "marketing": "0"})
        v2, _, _ = self.write_and_wait(s, "marketing=1")
        self.assertEqual(v2, 2)
        join_b = self.request_in_thread(s)   # after the announcement
        time.sleep(0.1)
        self.release_after(held)
        a, b = join_a(), join_b()
        self.assertRecord(a, "redis", 1, False)
        self.assertRecord(b, "redis", 2, True, "a request that came after v=2 was "
                          "announced was answered with the v=1 read sent before")
        self.assertLogClean()

    def test_5_merge_after_announce_cached_subject(self):
        """test_4 for a subject with a node: the announcement goes into the
        node (its version and time), not into the slot table, and must keep
        a later request out of the lookup sent before it all the same."""
        s = "cust-race-merge-node"
        self.write_and_wait(s, "marketing=0")
        self.assertRecord(self.request(s), "redis", 1, False)
        self.assertRecord(self.request(s), "cache", 1, False)   # s has a node
        v2, _, _ = self.write_and_wait(s, "marketing=1")        # the node goes stale
        self.assertEqual(v2, 2)
        held, join_a = self.hold_lookup(s)
        self.assertEqual(record_of(held.reply), {"v": "2", "marketing": "1"})
        v3, _, _ = self.write_and_wait(s, "marketing=0")
        self.assertEqual(v3, 3)
        join_b = self.request_in_thread(s)   # after the announcement of v=3
        time.sleep(0.1)
        self.release_after(held)
        a, b = join_a(), join_b()
        self.assertRecord(a, "redis", 2, True)
        self.assertRecord(b, "redis", 3, False, "a request that came after v=3 was "
                          "announced into the node was answered with the v=2 read sent before")
        self.assertLogClean()


class RedisRaceEviction(_RaceCase):
    """The race when the subject's node is evicted while its read is held
    (see the module docstring). Two workers, so that the zone can be filled
    through the worker whose lookup connection is not held; the smallest
    zone the module accepts (8 pages), so that a few dozen subjects fill it;
    a Redis timeout that outlasts the fill; reuseport, so that each new
    connection lands on either worker."""

    WORKERS = 2
    ZONE_BYTES = 8 * os.sysconf("SC_PAGESIZE")
    ZONE = "c:%dk" % (ZONE_BYTES // 1024)
    TIMEOUT_MS = 30000    # outlasts the fill behind the held read (over 10 s once, under ASan and load)
    LISTEN = " reuseport"

    def worker_connections(self):
        """Two KeepAlive connections served by different workers."""
        return list(keepalive_per_worker(self, self.ngx.port).values())

    def fill_subjects(self, subject):
        """Subjects for the fill, none sharing subject's slot of announced_ms
        (1024 slots by crc32, as ngx_crc32_short): their own evictions must
        not stamp it."""
        slot = zlib.crc32(subject.encode()) & 1023
        i = 0
        while True:
            i += 1
            s = "cust-fill-%05d" % i
            if zlib.crc32(s.encode()) & 1023 != slot:
                yield s

    def test_race_evicted_subject(self):
        """A subject's node is evicted while a read of it, sent before an
        announced update, is held; the read must not be cached when its reply
        comes: the next request must read the newer version from Redis."""
        s = "cust-race-evicted"
        conn_a, conn_fill = self.worker_connections()  # workers P and Q

        self.write_and_wait(s, "marketing=0")
        self.assertRecord(self.request(s), "redis", 1, False)
        self.assertRecord(self.request(s), "cache", 1, False)  # s has a node
        v2, _, _ = self.write_and_wait(s, "marketing=1")       # announced into it
        self.assertEqual(v2, 2)

        # Only a lookup's reply makes a node, so the zone holds at most
        # lookups - evictions nodes now. A's lookup moves s's node to the head
        # of the LRU and the fill adds only new subjects, each at the head:
        # once consent_cache_evictions_total reaches this count of lookups,
        # every node older than the fill, s's included, has been evicted.
        lookups = self.metric("consent_redis_lookups_total")

        held, join = self.hold_lookup(s, conn_a)  # the cached v=1 is stale: a read
        self.assertEqual(record_of(held.reply), {"v": "2", "marketing": "1"})
        v3, before, after = self.write_and_wait(s, "marketing=0")
        self.assertEqual(v3, 3)
        self.assertGreater(after, before)

        names = self.fill_subjects(s)
        limit = self.ZONE_BYTES // 64  # more nodes than the zone can hold
        filled = 0
        while self.metric("consent_cache_evictions_total") < lookups:
            if filled >= limit:
                self.fail("%d subjects did not evict %d nodes from zone %s\n%s"
                          % (filled, lookups, self.ZONE, self.ngx.error_log()[-2000:]))
            f = self.request(next(names), conn_fill)
            filled += 1
            # No record: a negative entry. "failure" would be a lookup that
            # waited behind the held reply (worker P) and timed out.
            self.assertEqual(f.source, "default", "fill request %d: %r" % (filled, f))
        self.assertFalse(held.forwarded.is_set())
        self.assertEqual(int(conn_fill.get("/pid").body), conn_fill.pid)
        waited = time.monotonic() - held.t_captured
        self.assertLess(waited, H.slow(self.TIMEOUT_MS / 1000.0) - 2,
                        "the fill (%d subjects) took %.1f s: the module's Redis timeout would close the "
                        "held read's connection" % (filled, waited))
        self.release_after(held)

        a = join()
        self.assertRecord(a, "redis", 2, True)  # A is answered with what it read
        self.assertEqual(int(conn_a.get("/pid").body), conn_a.pid)
        b = self.request(s)
        self.assertRecord(b, "redis", 3, False,
                          "the v=2 read, sent before %s's node was evicted, was cached: the "
                          "eviction did not stamp %s's slot of announced_ms" % (s, s))
        self.assertRecord(self.request(s), "cache", 3, False)  # and v=3 is cached
        self.assertLogClean()


FLUSH_TRIES = 6


def resp_command(*args):
    return b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args))


class FlushClock(_RaceCase):
    """A "*" must make stale every read sent before it, whichever worker sent
    it. The subscriber (worker 0) stamps valid_since with its clock; under
    timer_resolution a worker's cached ngx_current_msec is its last tick, up
    to the resolution old, so worker 0's could lag behind the clock another
    worker stamped its read with. Two workers; in each round, each reads a
    subject of its own right after a SIGALRM (a tick at a chosen moment),
    worker 0 first or last; then a raw HSET of both records and a "*";
    then neither may be served from the cache. Unfixed, a round with
    worker 0 first failed (the "*" stamped worker 0's tick, older than the
    other worker's read)."""

    WORKERS = 2
    LISTEN = " reuseport"
    MAIN = "timer_resolution 500ms;\n"

    def test_flush_makes_earlier_reads_stale(self):
        conns = {}
        for _ in range(50):
            c = KeepAlive(self.ngx.port)
            self.addCleanup(c.close)
            conns.setdefault(c.pid, c)
            if len(conns) == 2:
                break
        self.assertEqual(len(conns), 2, "all connections went to one worker")
        rs = socket.create_connection(("127.0.0.1", self.redis.port), timeout=5)
        self.addCleanup(rs.close)
        stale = []
        for i in range(FLUSH_TRIES):
            # idle for a tick: a tick that comes while a worker is busy leaves
            # its clock updated after every event until one comes while idle
            time.sleep(0.6)
            subjects = {}
            order = sorted(conns.items(), reverse=i % 2 == 1)  # worker 0 first, or last
            for pid, c in order:
                # a tick of this worker's timer_resolution now (SIGALRM is
                # what nginx's interval timer sends): its clock is current,
                # worker 0's is as old as its last tick
                sub = "cust-flush-%02d-%d" % (i, pid)
                # raw: an announcement would make worker 0 read the clock
                self.redis.cli("HSET", "consent:{%s}" % sub, "marketing", "0", "v", "1")
                os.kill(pid, signal.SIGALRM)
                time.sleep(0.002)
                self.assertRecord(self.request(sub, c), "redis", 1, False)
                subjects[pid] = sub
            before = self.metric("consent_updates_applied_total")
            # the records change without an announcement of their own, then "*"
            rs.sendall(b"".join(resp_command("HSET", "consent:{%s}" % sub,
                                              "marketing", "1", "v", "2")
                                 for sub in subjects.values())
                       + resp_command("PUBLISH", "consent:updates", "*"))
            self.wait_applied(before)
            for pid, c in conns.items():
                r = self.request(subjects[pid], c)
                if r.source == "cache":
                    stale.append((i, pid, r))
        self.assertEqual(stale, [], "reads sent before the \"*\" were served "
                         "from the cache after it")
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
