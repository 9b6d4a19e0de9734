#!/usr/bin/python3
"""End to end: a worker that reads a replica behind the subscription's.

Each worker has its own `read` connection and chooses its replica itself;
worker 0's subscription follows worker 0's `read`. So for a while (a
replica one worker has left and the other has not yet, a replica that
lags) another worker may read a replica that is behind the server where
the update channel is heard. An announcement heard there for a subject the
cache holds no node for leaves only a time stamp. A read of the lagging
replica sent after it returns the older version, and if it were cached,
every worker would serve that version, as fresh, until the cache's ttl,
the exact failure the heartbeat exists to rule out.

The rule: a read is cached only when it came from the primary or from the
server the subscription hears (its stream carries the write before the
announcement), the one the heartbeat vouches for. A read of another replica
is served to the requests that asked, never cached.

The situation, made deterministic with real servers (tests/e2e/topology.py):
primary P, replicas R1 and R2, `consent_redis_read replica`, two workers.
  1. both workers read R1 (the first replica); worker 0 subscribes there;
  2. worker 0's `read` connection on R1 is killed (CLIENT KILL, found through
     /proc): worker 0 leaves R1 for 5 s, reads R2, and its subscription
     follows to R2; worker 1 stays on R1;
  3. R1 stops applying its replication stream (CLIENT PAUSE WRITE: ROLE
     still says "connected", reads are still answered): a lagging replica;
  4. the subject's v2 is written on P; worker 0 hears it on R2;
  5. worker 1 (a keep-alive connection to it) is asked: it reads R1 and
     gets v1, source=redis, as fresh as its replica;
  6. worker 0 is asked: it must not get v1 from the cache (before the rule
     it did), and reads v2 from R2; worker 1, asked again, does not get v1
     from the cache either.
Worker 0 returns to R1 once its 5 s are up, so a run that took longer than
that (a slow machine) is repeated, up to three times, before it fails.

The second test, a slot held only (consent::slot_may_advance): worker 1
caches v1 from R1 while worker 0 is subscribed there; worker 0 leaves R1
and subscribes on R2, so v1 was filled before the resubscription; v2 is
written and announced through R2; worker 1 reads v2 from R1 twice, source
redis both times (newer than the slot, but R1 is not the server the
subscription hears, and an announcement may have been lost in the gap:
held, never served); worker 0 reads v2 from R2, and only then does worker
1 get it from the cache.

Run: /usr/bin/python3 tests/e2e/test_redis_replica_lag.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_redis_race as RR  # noqa: E402  (its KeepAlive)
import test_redis_store as RS  # noqa: E402
from topology import Topology  # noqa: E402

OPTS = "timeout=%s connect_timeout=%s" % (H.slow_ms(100), H.slow_ms(200))
CHANNEL = "consent:updates"

def local_ports_of(pid):
    """The local ports of the IPv4 TCP sockets process `pid` has open (by
    their inodes: a port may also appear on a closed socket in TIME_WAIT,
    whose inode is 0)."""
    inodes = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            m = re.match(r"socket:\[(\d+)\]$", os.readlink(os.path.join(d, fd)))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[9] in inodes:
                ports.add(int(p[1].split(":")[1], 16))
    return ports


class ReplicaBehindTheSubscription(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.topo = Topology(replicas=2, sentinels=1, quorum=1).start()   # (unused: ready needs one)
        cls.addClassCleanup(cls.topo.cleanup)
        cls.ngx = H.Nginx(workers=2, error_log_level="info")
        cls.addClassCleanup(cls.ngx.cleanup)
        cls.k1 = H.keygen(cls.ngx.path("k1.key"))
        H.pseudonym_keygen(cls.ngx.path("p.key"))
        p, r1, r2 = cls.topo.nodes
        RS.nginx_config(cls.ngx, cls.up.port,
                        "%s %s; consent_redis %s role=replica %s; consent_redis %s role=replica %s"
                        % (p.address, OPTS, r1.address, OPTS, r2.address, OPTS),
                        extra_http="consent_redis_read replica;\n")
        cls.ngx.start()
        RS.RedisStoreBase.wait_gauge(cls.ngx, 1, 10.0)

    # -- helpers ------------------------------------------------------------
    def metric(self, name, **labels):
        return H.metric(RS.RedisStoreBase.status_of(self.ngx), name, **labels)

    def ask(self, conn, subject):
        """One request for `subject` on a worker's connection: (source, version)."""
        tok = H.mint(self.k1, 1, subject)
        seen = H.Seen(conn.get("/p?keep=1&ctk=" + tok))
        return seen.one("X-Consent-Source"), seen.one("X-Consent-Version")

    def subscriber_pid(self, node):
        """The pid of the worker 0 subscribed on `node`, from its heartbeat
        channel (CHANNEL:hb:PID); None when none is."""
        chans = self.topo.call(node, "PUBSUB", "CHANNELS", CHANNEL + ":hb:*")
        return int(chans[0].rsplit(":", 1)[1]) if chans else None

    def read_conns_of(self, node, pid):
        """The addresses of `pid`'s connections on `node` that are not the
        subscription (its `read`)."""
        ports = local_ports_of(pid)
        out = []
        for line in self.topo.call(node, "CLIENT", "LIST", "TYPE", "normal").splitlines():
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if int(f["addr"].rsplit(":", 1)[1]) in ports:
                out.append(f["addr"])
        return out

    def wait(self, what, cond, timeout, more=lambda: ""):
        deadline = time.monotonic() + H.slow(timeout)
        while not cond():
            if time.monotonic() > deadline:
                self.fail("%s\n%s\n%s" % (what, more(), self.ngx.error_log()[-3000:]))
            time.sleep(0.02)

    # -- the tests ----------------------------------------------------------
    def up_to_three_runs(self, run, prefix):
        """run(p, r1, r2, conns, subject) until it returns None (checked),
        three times at most: it returns why not when worker 0 went back to
        R1 before it was done (a slow machine)."""
        p, r1, r2 = self.topo.nodes
        conns = RR.keepalive_per_worker(self, self.ngx.port)
        attempts = []
        for attempt in range(3):
            outcome = run(p, r1, r2, conns, "%s-%d" % (prefix, attempt))
            if outcome is None:
                return
            attempts.append(outcome)
            time.sleep(H.slow(7))        # worker 0 back on R1
        self.fail("worker 0 never stayed on R2 long enough: %s" % attempts)

    def v1_with_worker_0_on_r1(self, p, r1, r2, conns, subject):
        """Waits for worker 0 to be subscribed on R1, writes the subject's
        v1 on P and waits for both replicas to have it: (w0, w1, v1)."""
        self.wait("worker 0 is not subscribed on R1", lambda: self.subscriber_pid(r1) in conns, 10)
        w0 = self.subscriber_pid(r1)
        w1 = [pid for pid in conns if pid != w0][0]
        v1 = H.run_consentctl("set", "--redis", p.address, subject, "analysis=1")[1].strip()[2:]
        self.assertEqual(self.topo.call(p, "WAIT", 2, 2000), 2)
        self.wait("R1 and R2 do not have v1", lambda: all(
            self.topo.call(n, "HGET", "consent:{%s}" % subject, "v") == v1 for n in (r1, r2)), 5)
        return w0, w1, v1

    def test_a_read_of_a_lagging_replica_is_not_cached(self):
        self.up_to_three_runs(self.one_run, "lag")

    def one_run(self, p, r1, r2, conns, subject):
        """One run of the situation; None when it was checked, or why it
        could not be (worker 0 went back to R1 meanwhile)."""
        # 1. both workers on R1, worker 0 subscribed there
        w0, w1, v1 = self.v1_with_worker_0_on_r1(p, r1, r2, conns, subject)
        self.ask(conns[w1], subject + "-warm")        # worker 1's read is up
        self.wait("worker 1 does not read R1", lambda: self.read_conns_of(r1, w1) != [], 10,
                  lambda: "workers %s, worker 0 %d; on R1: %s" % (
                      sorted(conns), w0, self.topo.call(r1, "CLIENT", "LIST")))
        # 2. worker 0 leaves R1; its subscription follows to R2
        t_kill = time.monotonic()
        w0_reads = self.read_conns_of(r1, w0)
        self.assertNotEqual(w0_reads, [], "worker 0 has no read on R1: %s" % self.topo.call(r1, "CLIENT", "LIST"))
        for addr in w0_reads:
            self.topo.call(r1, "CLIENT", "KILL", "ADDR", addr)
        self.wait("worker 0's subscription did not move to R2", lambda: self.subscriber_pid(r2) == w0, 3)
        self.wait("the subscription is not up on R2",
                  lambda: self.metric("consent_subscription_up") == 1.0, 3)
        # 3. R1 lags: it answers reads, says its link is up, applies nothing
        self.assertEqual(self.topo.call(r1, "CLIENT", "PAUSE", int(H.slow(3000)), "WRITE"), "OK")
        try:
            # 4. v2, heard by worker 0 on R2
            applied = self.metric("consent_updates_applied_total")
            v2 = H.run_consentctl("set", "--redis", p.address, subject, "analysis=0")[1].strip()[2:]
            self.wait("v2 was not announced", lambda: self.metric("consent_updates_applied_total") > applied, 2)
            # 5. worker 1 reads R1: v1, from Redis
            first = self.ask(conns[w1], subject)
            # 6. worker 0, then worker 1 again
            then = self.ask(conns[w0], subject)
            again = self.ask(conns[w1], subject)
            took = time.monotonic() - t_kill
            on_r2 = self.subscriber_pid(r2) == w0
        finally:
            self.topo.call(r1, "CLIENT", "UNPAUSE")
        if not on_r2 or took > 4.5 or first != ("redis", v1):
            return "worker 1 got %r, %.1f s after the kill, subscription on R2: %s" % (first, took, on_r2)
        self.assertEqual(then, ("redis", v2), "worker 0 served the lagging replica's read")
        self.assertNotEqual(again, ("cache", v1), "worker 1 served its own lagging read from the cache")
        print("\nworker 1 read v%s from the lagging R1 (source=redis); worker 0 then read v%s from R2, "
              "worker 1 again: %r" % (v1, v2, again), file=sys.stderr)
        return None

    def test_b_a_newer_read_of_another_replica_is_held_not_served(self):
        """After a resubscription, a slot filled before it may have missed
        an announcement in the gap. A read of a replica the subscription
        does not hear, newer than the slot, is kept held only: it answers
        the requests that asked, is never served from the cache, and only
        a read of the subscription's own server makes the slot servable
        again (consent::slot_may_advance)."""
        self.up_to_three_runs(self.held_run, "held")

    def held_run(self, p, r1, r2, conns, subject):
        """One run; None when it was checked, or why it could not be."""
        # 1. both workers on R1, worker 0 subscribed there; worker 1 caches v1
        w0, w1, v1 = self.v1_with_worker_0_on_r1(p, r1, r2, conns, subject)
        self.wait("worker 1 does not serve v1 from the cache",
                  lambda: self.ask(conns[w1], subject) == ("cache", v1), 5)
        self.assertNotEqual(self.read_conns_of(r1, w1), [], "worker 1 does not read R1")
        # 2. worker 0 leaves R1; its subscription follows to R2, and
        # everything cached before it (v1) is stale
        t_kill = time.monotonic()
        for addr in self.read_conns_of(r1, w0):
            self.topo.call(r1, "CLIENT", "KILL", "ADDR", addr)
        self.wait("worker 0's subscription did not move to R2", lambda: self.subscriber_pid(r2) == w0, 3)
        self.wait("the subscription is not up on R2",
                  lambda: self.metric("consent_subscription_up") == 1.0, 3)
        # 3. v2, on both replicas, announced through R2
        applied = self.metric("consent_updates_applied_total")
        v2 = H.run_consentctl("set", "--redis", p.address, subject, "analysis=0")[1].strip()[2:]
        self.assertEqual(self.topo.call(p, "WAIT", 2, 2000), 2)
        self.wait("v2 was not announced", lambda: self.metric("consent_updates_applied_total") > applied, 2)
        # 4. worker 1 reads v2 from R1, twice: held, never served
        first = self.ask(conns[w1], subject)
        second = self.ask(conns[w1], subject)
        # 5. worker 0 reads v2 from R2, the subscription's server: servable
        vouched = self.ask(conns[w0], subject)
        after = self.ask(conns[w1], subject)
        took = time.monotonic() - t_kill
        on_r2 = self.subscriber_pid(r2) == w0
        if not on_r2 or took > 4.5 or self.read_conns_of(r1, w1) == []:
            return "%.1f s after the kill, subscription on R2: %s, worker 1 on R1: %s" % (
                took, on_r2, self.read_conns_of(r1, w1) != [])
        self.assertEqual(first, ("redis", v2))
        self.assertEqual(second, ("redis", v2), "a newer read of R1 was served from the cache after "
                                                "the resubscription, before R2 vouched for it")
        self.assertEqual(vouched, ("redis", v2))
        self.assertEqual(after, ("cache", v2), "R2's read did not make the slot servable")
        print("\nworker 1 read v%s from R1 twice (source=redis both times); after worker 0 read it from R2, "
              "worker 1 got it from the cache" % v2, file=sys.stderr)
        return None

    def test_zz_log_clean(self):
        bad = [l for l in self.ngx.error_log().splitlines() if any(b in l for b in RS.BAD_LOG)]
        self.assertEqual(bad, [], "error.log shows a crash or an alert")
        self.assertEqual([(n, w) for n, w, _ in self.ngx.findings()], [])


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
