"""The Redis topology harness itself (tests/e2e/topology.py), against real
redis-server and Sentinel processes: readiness, replication, a failover
detected and agreed on, the old primary back as a replica, a broken replica
link, SIGSTOP, a Sentinel killed and restarted, TLS everywhere, ACL users
and passwords everywhere, and nothing left running after cleanup.

Python 3 standard library and redis-server. Usage:
    test_topology.py [unittest args]
"""
import os
import socket
import sys
import tempfile
import shutil
import time
import unittest

import harness
from pki import Pki
from topology import RespError, Topology, call


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


WAIT_MS = int(harness.slow(5) * 1000)


def plain_ping(host, port):
    """PING in plain text; what comes back (b"" when the server hangs up or
    says nothing within a second)."""
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.settimeout(1)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        try:
            return sock.recv(64)
        except OSError:
            return b""


class Replicated(unittest.TestCase):
    """A primary, two replicas and three Sentinels, shared by the tests; each
    test leaves it ready again."""

    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.topo = Topology(replicas=2, sentinels=3).start()
        cls.start_time = time.monotonic() - t0

    @classmethod
    def tearDownClass(cls):
        cls.topo.cleanup()

    def tearDown(self):
        for n in self.topo.nodes + self.topo.sentinels:
            if n.stopped:
                n.sigcont()
        self.topo.wait_ready()

    def test_ready(self):
        topo = self.topo
        self.assertLess(self.start_time, harness.slow(60))
        self.assertEqual(len(topo.nodes), 3)
        self.assertEqual(len(topo.sentinels), 3)
        primary = topo.primary
        self.assertEqual(topo.call(primary, "ROLE")[0], "master")
        # Every Sentinel names the same primary and knows its replicas and
        # the two other Sentinels.
        self.assertEqual(topo.sentinel_views(), [(primary.host, primary.port)] * 3)
        for s in topo.sentinels:
            self.assertEqual(len(topo.call(s, "SENTINEL", "replicas", topo.master_name)), 2)
            self.assertEqual(len(topo.call(s, "SENTINEL", "sentinels", topo.master_name)), 2)
            self.assertEqual(topo.call(s, "ROLE")[0], "sentinel")
        # Replication works: a write on the primary reaches both replicas.
        self.assertEqual(topo.pipeline(primary, [("SET", "topo:ready", "1"), ("WAIT", 2, WAIT_MS)]), ["OK", 2])
        for r in topo.replicas:
            self.assertEqual(topo.call(r, "GET", "topo:ready"), "1")
            self.assertEqual(topo.replication(r)["master_link_status"], "up")
            self.assertIsInstance(topo.call(r, "SET", "x", "1"), RespError)  # read-only
        self.assertEqual(topo.sentinel_addresses, ",".join("127.0.0.1:%d" % s.port for s in topo.sentinels))
        self.assertEqual(topo.sentinel_address_list, ["127.0.0.1:%d" % s.port for s in topo.sentinels])

    def test_broken_link_shows_down_and_comes_back(self):
        topo = self.topo
        replica = topo.replicas[0]
        topo.break_link(replica)
        info = topo.replication(replica)
        self.assertEqual(info["role"], "slave")
        self.assertEqual(info["master_link_status"], "down")
        role = topo.call(replica, "ROLE")
        self.assertEqual(role[0], "slave")
        self.assertNotEqual(role[3], "connected")
        self.assertFalse(topo.ready())
        # A write made while the link is down reaches the replica once it is back.
        self.assertEqual(topo.call(topo.primary, "SET", "topo:during-break", "2"), "OK")
        self.assertIsNone(topo.call(replica, "GET", "topo:during-break"))
        topo.restore_link(replica)
        self.assertTrue(topo.link_up(replica, topo.primary))
        deadline = time.monotonic() + harness.slow(10)
        while topo.call(replica, "GET", "topo:during-break") != "2":
            self.assertLess(time.monotonic(), deadline, "the write did not arrive")
            time.sleep(0.05)

    def test_sigstop_and_sigcont(self):
        topo = self.topo
        replica = topo.replicas[-1]
        topo.stop(replica)
        with self.assertRaises(OSError):
            call(replica, "PING", timeout=0.5)
        self.assertIsNone(topo.try_call(replica, "PING"))
        topo.cont(replica)
        self.assertEqual(topo.call(replica, "PING"), "PONG")

    def test_z_failover_and_the_old_primary_returns(self):
        """(Runs last: it changes the primary.) With one Sentinel dead as
        well: two of three still make the quorum and the majority."""
        topo = self.topo
        old = topo.primary
        self.assertEqual(topo.pipeline(old, [("SET", "topo:before", "kept"), ("WAIT", 2, WAIT_MS)]), ["OK", 2])
        dead_sentinel = topo.kill_sentinel(2)
        self.assertFalse(dead_sentinel.alive())
        self.assertEqual(topo.sentinel_views()[2], "no answer")

        killed = topo.kill_primary()
        self.assertIs(killed, old)
        self.assertFalse(old.alive())
        new, took = topo.wait_failover()
        self.assertIsNot(new, old)
        self.assertIn(new, topo.nodes)
        self.assertEqual(topo.call(new, "ROLE")[0], "master")
        self.assertEqual(topo.sentinel_views()[:2], [(new.host, new.port)] * 2)
        self.assertIs(topo.primary, new)
        # down-after-milliseconds (1 s) at least; bounded well below the wait.
        self.assertGreater(took, 1.0)
        self.assertLess(took, harness.slow(30))
        # The write acknowledged by both replicas survived.
        self.assertEqual(topo.call(new, "GET", "topo:before"), "kept")
        self.assertEqual(topo.call(new, "SET", "topo:after", "new"), "OK")

        # The old primary comes back empty (no persistence) as a master; the
        # Sentinels make it a replica of the new one, and it resyncs.
        topo.restart(old)
        role = topo.call(old, "ROLE")
        self.assertEqual(role[0], "slave")
        self.assertEqual((role[1], role[2]), (new.host, new.port))
        self.assertEqual(topo.call(old, "GET", "topo:after"), "new")
        self.assertEqual(topo.call(old, "GET", "topo:before"), "kept")

        topo.restart_sentinel(2)
        self.assertEqual(topo.sentinel_views(), [(new.host, new.port)] * 3, topo.describe(30))
        self.assertIn(old, topo.replicas)


class Secured(unittest.TestCase):
    """TLS on every link, ACL users and passwords on the data nodes and a
    password on the Sentinels: the topology gets ready and fails over."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="consent-topology-")
        cls.pki = Pki(cls.tmp)
        cls.topo = Topology(replicas=1, sentinels=3, tls=cls.pki, password="admin-pw",
                            replication_user=("repl", "repl-pw"), monitor_user=("sentinel", "sentinel-pw"),
                            sentinel_password="sentinels-pw").start()

    @classmethod
    def tearDownClass(cls):
        cls.topo.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_tls_acl_and_a_failover(self):
        topo = self.topo
        primary = topo.primary
        replica = topo.replicas[0]
        # TLS only: no plain-text port, and a plain connection gets no answer.
        for srv in topo.nodes:
            self.assertEqual(topo.call(srv, "CONFIG", "GET", "port")[1], "0")
            self.assertEqual(topo.call(srv, "CONFIG", "GET", "tls-replication")[1], "yes")
        for srv in topo.nodes + topo.sentinels:
            with self.subTest(srv.name):
                self.assertNotEqual(plain_ping(srv.host, srv.port), b"+PONG\r\n")
        # Passwords: the Sentinels and the data nodes refuse a wrong one.
        for srv in (primary, topo.sentinels[0]):
            with self.assertRaisesRegex(ConnectionError, "WRONGPASS"):
                call(srv, "PING", password="wrong")
        # Replication runs as the ACL user `repl`; Sentinels log in as `sentinel`.
        self.assertEqual(topo.call(replica, "CONFIG", "GET", "masteruser")[1], "repl")
        clients = topo.call(primary, "CLIENT", "LIST")
        self.assertIn("user=repl", clients)
        self.assertIn("user=sentinel", clients)
        self.assertEqual(call(primary, "PING", user="repl", password="repl-pw"), "PONG")
        self.assertRegex(str(call(primary, "GET", "k", user="repl", password="repl-pw")), "^NOPERM")

        self.assertEqual(topo.pipeline(primary, [("SET", "tls:k", "v"), ("WAIT", 1, WAIT_MS)]), ["OK", 1])
        old, new, took = topo.failover()
        self.assertIs(new, replica)
        self.assertEqual(topo.call(new, "GET", "tls:k"), "v")
        self.assertLess(took, harness.slow(30))
        topo.restart(old)
        self.assertEqual(topo.call(old, "ROLE")[0], "slave")


class Lifecycle(unittest.TestCase):
    def test_cleanup_stops_every_process(self):
        topo = Topology(replicas=1, sentinels=1, quorum=1).start()
        pids = [s.pid() for s in topo.nodes + topo.sentinels]
        dirs = [s.dir for s in topo.nodes + topo.sentinels]
        self.assertTrue(all(_alive(p) for p in pids))
        self.assertEqual(topo.sentinel_views(), [(topo.nodes[0].host, topo.nodes[0].port)])
        topo.stop(topo.nodes[1])  # a stopped process is stopped too
        topo.cleanup()
        self.assertEqual([p for p in pids if _alive(p)], [])
        if not os.environ.get("E2E_KEEP"):
            self.assertEqual([d for d in dirs if os.path.exists(d)], [])

    def test_readiness_failure_says_what_it_saw(self):
        """A topology that cannot become ready (a Sentinel watching a port
        where nobody listens) fails its wait with the picture, in bounded
        time."""
        topo = Topology(replicas=0, sentinels=1, quorum=1)
        self.addCleanup(topo.cleanup)
        for n in topo.nodes:
            n.start()
        s = topo.sentinels[0]
        with open(s.conffile, "w") as f:
            f.write("sentinel monitor %s 127.0.0.1 %d 1\n" % (topo.master_name, harness.free_port()))
        topo._start_sentinel(s)
        t0 = time.monotonic()
        with self.assertRaises(AssertionError) as cm:
            topo.wait_ready(timeout=2)
        self.assertLess(time.monotonic() - t0, harness.slow(2) + 5)
        self.assertIn("topology ready: not within", str(cm.exception))
        self.assertIn("sentinel0", str(cm.exception))
        self.assertIn("node0 127.0.0.1:%d: master" % topo.nodes[0].port, str(cm.exception))


if __name__ == "__main__":
    argv = harness.parse_args()
    for tool in (harness.REDIS_SERVER, harness.OPENSSL):
        if not os.access(tool, os.X_OK):
            sys.exit("missing %s" % tool)
    unittest.main(argv=argv, verbosity=2)
