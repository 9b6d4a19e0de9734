#!/usr/bin/python3
"""End to end: the edge against a primary with replicas and Sentinels
(tests/e2e/topology.py starts them: real redis-server and Sentinel
processes), through the packaged nginx with the module.

- Static replicas (`role=replica`, `consent_redis_read replica`): lookups go
  to the first replica, the liveness proof is published on the primary; a
  replica whose link breaks is left within 3 s for the next one, the edge
  goes back once it is healthy again, and with no replica left it reads the
  primary.
- Sentinel (`consent_redis sentinel:NAME`): the primary and replicas it
  names; a failover (the primary SIGKILLed) is followed with no 5xx and no
  tracking data upstream, logged once and counted; a dead or unknowing
  Sentinel is passed over for the next.

Run: /usr/bin/python3 tests/e2e/test_redis_replicas.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_faults as F  # noqa: E402
import test_redis_deploy as D  # noqa: E402
import test_redis_store as RS  # noqa: E402
from topology import Topology  # noqa: E402

GRANTED = "service,analysis,personalization"   # a record with analysis=1
TRACK = "/p?utm_source=mail&keep=1"             # utm_*: marketing, never granted here
OPTS = "timeout=%s connect_timeout=%s" % (H.slow_ms(100), H.slow_ms(200))


def hgetalls(node):
    """HGETALL calls a node has answered so far (0 when it is down)."""
    try:
        return node.calls("hgetall")
    except Exception:  # noqa: BLE001 - a dead node answers nothing
        return 0


class TopologyBase(F.LeakChecks, unittest.TestCase):
    """A topology and an nginx (2 workers) for the class; every upstream
    request checked for tracking data."""

    maxDiff = None
    replicas = 2
    sentinels = 3
    topo = None

    @classmethod
    def setUpClass(cls):
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.watch = F.LeakWatch(cls.up)
        cls.topo = Topology(replicas=cls.replicas, sentinels=cls.sentinels,
                            **cls.topology_args()).start()
        cls.addClassCleanup(cls.topo.cleanup)
        cls.ngx = H.Nginx(workers=2, error_log_level="info")
        cls.addClassCleanup(cls.ngx.cleanup)
        cls.k1 = H.keygen(cls.ngx.path("k1.key"))
        H.pseudonym_keygen(cls.ngx.path("p.key"))
        RS.nginx_config(cls.ngx, cls.up.port, cls.redis_lines(), extra_http=cls.http_extra())
        cls.ngx.start()
        cls.tokens = {}
        RS.RedisStoreBase.wait_gauge(cls.ngx, 1, 10.0)

    @classmethod
    def redis_lines(cls):
        raise NotImplementedError

    @classmethod
    def http_extra(cls):
        return ""

    @classmethod
    def topology_args(cls):
        return {}

    def setUp(self):
        self.watch.reset()

    # -- helpers ------------------------------------------------------------
    def token(self, subject):
        if subject not in self.tokens:
            self.tokens[subject] = H.mint(self.k1, 1, subject)
        return self.tokens[subject]

    def track(self, subject, timeout=15.0):
        t0 = time.monotonic()
        resp = self.ngx.get(TRACK + "&ctk=" + self.token(subject), timeout=timeout)
        return RS.Result(resp, time.monotonic() - t0)

    def metrics(self):
        return RS.RedisStoreBase.status_of(self.ngx)

    def write(self, subject, *fields, primary=None):
        """The write script on the primary, as consentctl does it."""
        node = primary or self.topo.nodes[0]
        _, out, _ = H.run_consentctl("set", "--redis", node.address, subject, *fields)
        self.assertRegex(out.strip(), r"^v=\d+$")
        return out.strip()[2:]

    def wait_version(self, subject, version, timeout):
        deadline = time.monotonic() + H.slow(timeout)
        while True:
            r = self.track_ok(subject)
            if r.version == version:
                return r
            if time.monotonic() > deadline:
                raise AssertionError("version %s never served (last %r)\n%s"
                                     % (version, r, self.ngx.error_log()[-3000:]))
            time.sleep(0.02)

    def reads_go_to(self, node, subjects, timeout=5.0):
        """Sends lookups of new subjects until they reach `node` (its HGETALL
        count grows and no other node's does); the seconds it took."""
        deadline = time.monotonic() + H.slow(timeout)
        t0 = time.monotonic()
        n = 0
        while True:
            before = {id(x): hgetalls(x) for x in self.topo.nodes}
            for _ in range(5):
                n += 1
                self.track_ok("%s-%d" % (subjects, n))
            after = {id(x): hgetalls(x) for x in self.topo.nodes}
            grew = [x for x in self.topo.nodes if after[id(x)] > before[id(x)]]
            if grew == [node]:
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                raise AssertionError("lookups never all went to %s (they went to %s)\n%s\n%s"
                                     % (node.name, [x.name for x in grew], self.topo.describe(),
                                        self.ngx.error_log()[-3000:]))
            time.sleep(0.1)

    def assertLogClean(self):
        bad = [l for l in self.ngx.error_log().splitlines() if any(b in l for b in RS.BAD_LOG)]
        self.assertEqual(bad, [], "error.log shows a crash or an alert")
        self.assertEqual([(n, w) for n, w, _ in self.ngx.findings()], [])


class T1StaticReplicas(TopologyBase):
    """consent_redis PRIMARY; consent_redis R1 role=replica; consent_redis R2
    role=replica; consent_redis_read replica."""

    @classmethod
    def redis_lines(cls):
        p, r1, r2 = cls.topo.nodes
        return "%s %s; consent_redis %s role=replica %s; consent_redis %s role=replica %s" % (
            p.address, OPTS, r1.address, OPTS, r2.address, OPTS)

    @classmethod
    def http_extra(cls):
        return "consent_redis_read replica;\n"

    def test_01_reads_from_the_first_replica(self):
        p, r1, r2 = self.topo.nodes
        self.reads_go_to(r1, "first")
        s = "rep-1"
        v = self.write(s, "analysis=1")
        self.assertDecision(self.wait_version(s, v, 3.0), GRANTED)
        # the liveness proof is published on the primary, heard on r1: the cache serves
        r = self.wait_cache(s)
        self.assertEqual(r.version, v)
        # (replicas count the PUBLISHes they replay from the primary too)
        self.assertGreater(p.calls("publish"), 0)
        m = self.metrics()
        self.assertEqual(m.get(H.series("consent_redis_up", server=r1.address, role="replica")), 1.0)
        self.assertEqual(m.get(H.series("consent_redis_up", server=p.address, role="primary")), 1.0)
        self.assertNoLeaks()

    def test_02_broken_link_is_left_and_the_edge_comes_back(self):
        p, r1, r2 = self.topo.nodes
        self.reads_go_to(r1, "before-break")
        s = "rep-2"
        v1 = self.write(s, "analysis=1")
        self.wait_version(s, v1, 3.0)
        t0 = time.monotonic()
        self.topo.break_link(r1)
        # an update written now never reaches r1: the edge must not serve
        # the old version past 3 s (it leaves r1 for r2, and the cache
        # stops without heartbeats through r1)
        v2 = self.write(s, "analysis=0")
        r = self.wait_version(s, v2, 5.0)
        took = time.monotonic() - t0
        self.assertLess(took, H.slow(4.0), "the new version took %.1fs" % took)
        self.assertDecision(r, RS.DEFAULTS)
        self.reads_go_to(r2, "after-break")
        self.assertRegex(self.ngx.error_log(), r"consent: redis %s .*its link (connect|connecting)"
                         % re.escape(r1.address))
        # healthy again: the edge goes back to r1 (probed every 2 s once
        # its 5 s are up)
        self.topo.restore_link(r1)
        self.reads_go_to(r1, "after-restore", timeout=15.0)
        self.assertRegex(self.ngx.error_log(), r"consent: redis %s: a replica again"
                         % re.escape(r1.address))
        self.assertGreaterEqual(H.metric(self.metrics(), "consent_redis_errors_total",
                                         server=r1.address, kind="role"), 1)
        self.assertNoLeaks()

    def test_03_no_replica_left_reads_the_primary(self):
        p, r1, r2 = self.topo.nodes
        r1.kill()
        r2.kill()
        try:
            self.reads_go_to(p, "no-replica", timeout=8.0)
            s = "rep-3"
            v = self.write(s, "analysis=1")
            self.assertDecision(self.wait_version(s, v, 3.0), GRANTED)
        finally:
            r1.start()
            r2.start()
            self.topo.wait_ready()
        self.reads_go_to(r1, "replicas-back", timeout=15.0)
        self.assertNoLeaks()

    def test_zz_log_clean(self):
        self.assertLogClean()

    # -- helpers ------------------------------------------------------------
    def assertDecision(self, r, purposes):
        self.assertEqual((r.status, r.purposes), (200, purposes), repr(r))

    def wait_cache(self, subject, timeout=5.0):
        deadline = time.monotonic() + H.slow(timeout)
        while True:
            r = self.track_ok(subject)
            if r.source == "cache":
                return r
            self.assertLess(time.monotonic(), deadline, "never served from the cache: %r" % r)
            time.sleep(0.05)


class SentinelBase(TopologyBase):
    read = "primary"

    @classmethod
    def redis_lines(cls):
        return "sentinel:%s %s; consent_redis_sentinels %s" % (
            cls.topo.master_name, OPTS, " ".join(s.address for s in cls.topo.sentinels))

    @classmethod
    def http_extra(cls):
        return "consent_redis_read %s;\n" % cls.read


class T2SentinelFailover(SentinelBase):
    """sentinel:NAME, reading the primary: the primary SIGKILLed under
    traffic, the failover followed."""

    def test_01_reads_and_counters(self):
        p = self.topo.primary
        self.reads_go_to(p, "sentinel-first")
        m = self.metrics()
        self.assertEqual(m.get(H.series("consent_redis_up", server=p.address, role="primary")), 1.0)
        self.assertEqual(m.get("consent_redis_failovers_total"), 0.0)
        for s in self.topo.sentinels:
            self.assertIn(H.series("consent_redis_up", server=s.address, role="sentinel"), m)

    def test_02_failover_under_traffic(self):
        s = "fo-1"
        v1 = self.write(s, "analysis=1", primary=self.topo.primary)
        self.wait_version(s, v1, 3.0)
        results, stop = [], threading.Event()

        def client():
            while not stop.is_set():
                try:
                    results.append(self.track(s, timeout=10))
                except Exception as e:  # noqa: BLE001 - counted below
                    results.append(e)
                time.sleep(0.01)
        th = threading.Thread(target=client, daemon=True)
        th.start()
        try:
            old, new, took = self.topo.failover()
            # a write through the Sentinels reaches the edge
            _, out, _ = H.run_consentctl("set", "--redis", "sentinel:" + self.topo.master_name,
                                         "--sentinels", self.topo.sentinel_addresses, s,
                                         "analysis=0")
            v2 = out.strip()[2:]
            r = self.wait_version(s, v2, 10.0)
        finally:
            stop.set()
            th.join(15)
        bad = [x for x in results if not isinstance(x, RS.Result) or x.status != 200]
        self.assertEqual(bad, [])
        timeouts = [x for x in results if x.elapsed > H.slow(1.0)]
        self.assertEqual(timeouts, [], "requests waited past the timeout")
        self.assertEqual(r.purposes, RS.DEFAULTS)
        sources = set(x.source for x in results)
        self.assertTrue(sources <= {"redis", "cache", "failure"}, sources)
        m = self.metrics()
        self.assertEqual(m.get("consent_redis_failovers_total"), 1.0)
        log = self.ngx.error_log()
        self.assertEqual(len(re.findall(r"\[notice\].*consent: redis sentinel:%s: the primary is %s "
                                        r"now, was %s" % (self.topo.master_name, re.escape(new.address),
                                                          re.escape(old.address)), log)), 1, log[-3000:])
        self.reads_go_to(new, "after-failover")
        self.assertNoLeaks()
        # the old primary comes back as a replica: nothing stale is served
        self.topo.restart(old)
        v3 = self.write(s, "analysis=1", primary=new)
        self.assertEqual(self.wait_version(s, v3, 5.0).purposes, GRANTED)

    def test_zz_log_clean(self):
        self.assertLogClean()


class T3SentinelReplica(SentinelBase):
    """sentinel:NAME, reading a replica the Sentinels name."""

    read = "replica"

    def test_01_reads_a_replica(self):
        p = self.topo.primary
        grew = {}
        for n in self.topo.nodes:
            grew[n.name] = hgetalls(n)
        for i in range(20):
            self.track_ok("sr-%d" % i)
        reps = [n for n in self.topo.nodes if n is not p and hgetalls(n) > grew[n.name]]
        self.assertTrue(reps, "no lookup reached a replica\n" + self.ngx.error_log()[-2000:])
        self.assertEqual(hgetalls(p), grew[p.name], "lookups reached the primary")
        s = "sr-upd"
        v = self.write(s, "analysis=1", primary=p)
        self.assertEqual(self.wait_version(s, v, 3.0).purposes, GRANTED)
        self.assertGreater(p.calls("publish"), 0)   # the heartbeat, on the primary
        self.assertNoLeaks()

    def test_zz_log_clean(self):
        self.assertLogClean()


class T3bSentinelAcl(SentinelBase):
    """The edge logs in as consent-edge on the data nodes and on the
    Sentinels, under exactly the rules docs/redis-schema.md gives for each,
    and reads a replica."""

    read = "replica"

    @classmethod
    def topology_args(cls):
        return {"acl": [D.documented_acl("consent-edge")],
                "sentinel_acl": [D.documented_acl("consent-edge", sentinel=True)]}

    @classmethod
    def redis_lines(cls):
        return ("sentinel:%s user=consent-edge password=%s %s; consent_redis_sentinels %s "
                "user=consent-edge password=%s" % (
                    cls.topo.master_name, D.EDGE_PASSWORD, OPTS,
                    " ".join(s.address for s in cls.topo.sentinels), D.SENTINEL_PASSWORD))

    def test_01_reads_caches_and_hears_updates(self):
        s = "sacl-1"
        v1 = self.write(s, "analysis=1", primary=self.topo.primary)
        self.assertEqual(self.wait_version(s, v1, 5.0).purposes, GRANTED)
        deadline = time.monotonic() + H.slow(5.0)
        while self.track_ok(s).source != "cache":   # the heartbeat, on the primary
            self.assertLess(time.monotonic(), deadline, "never served from the cache\n"
                            + self.ngx.error_log()[-2000:])
            time.sleep(0.05)
        v2 = self.write(s, "analysis=0", primary=self.topo.primary)
        self.assertEqual(self.wait_version(s, v2, 3.0).purposes, RS.DEFAULTS)
        self.assertNotRegex(self.ngx.error_log(), r"NOPERM|WRONGPASS|NOAUTH")
        self.assertNoLeaks()

    def test_zz_log_clean(self):
        self.assertLogClean()


class ScriptedSentinel:
    """A Sentinel of the test's: answers get-master-addr-by-name with the
    primary, and SENTINEL replicas with the replicas in the order given
    (Redis's own Sentinel lists them in its hash table's order, which a test
    cannot choose); PING, and SUBSCRIBE's confirmation, as Sentinel does."""

    def __init__(self, primary, replicas):
        self.primary, self.replicas = primary, replicas
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(c,), daemon=True).start()

    @staticmethod
    def _bulk(items):
        return b"*%d\r\n" % len(items) + b"".join(
            b"$%d\r\n%s\r\n" % (len(x), x.encode()) for x in items)

    def _answer(self, cmd):
        words = [w.lower() for w in cmd]
        if words[:1] == ["ping"]:
            return b"+PONG\r\n"
        if words[:2] == ["sentinel", "get-master-addr-by-name"]:
            return self._bulk([self.primary.host, str(self.primary.port)])
        if words[:2] == ["sentinel", "replicas"]:
            out = b"*%d\r\n" % len(self.replicas)
            for r in self.replicas:
                out += self._bulk(["ip", r.host, "port", str(r.port), "flags", "slave",
                                   "master-link-status", "ok"])
            return out
        if words[:1] == ["subscribe"]:
            ch = cmd[1].encode()
            return b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(ch), ch)
        return b"-ERR unknown command\r\n"

    def _client(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line.startswith(b"*"):
                    return
                cmd = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    cmd.append(f.read(n + 2)[:-2].decode("latin-1"))
                c.sendall(self._answer(cmd))
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def stop(self):
        self.sock.close()


class T3cSentinelReplicaOnThisHost(SentinelBase):
    """Sentinel names two replicas, first one at 127.0.0.2 (for this host,
    another host: it is none of its interface addresses), then one at
    127.0.0.1. The edge reads the one on this host."""

    read = "replica"

    @classmethod
    def topology_args(cls):
        return {"node_hosts": {1: "127.0.0.2"}}

    @classmethod
    def redis_lines(cls):
        cls.scripted = ScriptedSentinel(cls.topo.nodes[0], [cls.topo.nodes[1], cls.topo.nodes[2]])
        return "sentinel:%s %s; consent_redis_sentinels %s" % (cls.topo.master_name, OPTS,
                                                                cls.scripted.address)

    @classmethod
    def tearDownClass(cls):
        cls.scripted.stop()

    def test_01_reads_the_local_replica(self):
        far, local = self.topo.nodes[1], self.topo.nodes[2]
        self.assertEqual((far.host, local.host), ("127.0.0.2", "127.0.0.1"))
        self.reads_go_to(local, "local-first")
        self.assertNoLeaks()

    def test_zz_log_clean(self):
        self.assertLogClean()


class FakeSentinel:
    """A TCP server that answers every command with the same bytes."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(c,), daemon=True).start()

    def _client(self, c):
        try:
            while True:
                data = c.recv(4096)
                if not data:
                    return
                # PING from the handshake: +PONG; anything else: the answer
                c.sendall(b"+PONG\r\n" if b"PING" in data.upper() else self.answer)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


class T4SentinelsInTurn(SentinelBase):
    """The first Sentinel listed is dead, the second answers garbage, the
    third does not know the master: each is passed over, with a clear line
    in error.log, until a real one answers."""

    sentinels = 3

    @classmethod
    def setUpClass(cls):
        cls.fakes = [FakeSentinel(b"*1\r\n:42\r\n"), FakeSentinel(b"$-1\r\n")]
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        cls.dead_port = dead.getsockname()[1]
        dead.close()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        for f in cls.fakes:
            f.stop()

    @classmethod
    def redis_lines(cls):
        listed = ["127.0.0.1:%d" % cls.dead_port] + [f.address for f in cls.fakes] \
            + [s.address for s in cls.topo.sentinels]
        return "sentinel:%s %s; consent_redis_sentinels %s" % (cls.topo.master_name, OPTS,
                                                                " ".join(listed))

    def test_01_a_real_one_answers(self):
        s = "turn-1"
        v = self.write(s, "analysis=1", primary=self.topo.primary)
        self.assertEqual(self.wait_version(s, v, 10.0).purposes, GRANTED)
        log = self.ngx.error_log()
        self.assertRegex(log, r"Sentinel 127\.0\.0\.1:%d answered something else; asking the next"
                         % self.fakes[0].port)
        self.assertRegex(log, r"Sentinel 127\.0\.0\.1:%d does not know the master; asking the next"
                         % self.fakes[1].port)
        self.assertNoLeaks()

    def test_zz_log_clean(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
