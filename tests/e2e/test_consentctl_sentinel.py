"""consentctl set/get/erase/watch through Redis Sentinel
(--redis sentinel:NAME --sentinels ...), against real redis-server and
Sentinel processes started by topology.py: Sentinels asked in order, each
way one can fail (dead, stopped, not knowing the master, answering an
error or garbage, naming a server that is not the primary), all of them
failing in bounded time, writes during a failover (never a success that is
not on the new primary), a demoted server refusing a write (READONLY), the
replica acknowledgement (WAIT), TLS with the Sentinels checked against
their own names, passwords and ACL users on the Sentinels and the data
nodes, and the usage errors.

Python 3 standard library, redis-server (harness.RedisServer, topology.py)
and the openssl command-line tool (pki.py). Usage:
    test_consentctl_sentinel.py --consentctl PATH [unittest args]
"""
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness
from harness import RedisServer, free_port
from pki import Pki
from test_consentctl_redis import WRITER_RULES, LineReader
from topology import Topology

CONSENTCTL = harness.CONSENTCTL
NAME = "consent"
CHANNEL = "consent:updates"
# Writing through Sentinel also needs ROLE (the primary is checked) and
# WAIT (a replica's acknowledgement).
SENTINEL_WRITER_RULES = WRITER_RULES + " +role +wait"

_PROCS = []  # watch processes, stopped at exit at the latest


def _stop_all():
    for p in _PROCS:
        _stop(p)


atexit.register(_stop_all)


def run_ctl(*args, timeout=30, env=None):
    return harness.run_ctl(*args, timeout=timeout, env=env)


class SentinelHelpers:
    topo = None

    def via(self, sentinels=None, name=NAME):
        return ["--redis", "sentinel:" + name, "--sentinels", sentinels or self.topo.sentinel_addresses]

    def ctl(self, *args, rc=0, sentinels=None, name=NAME, env=None, extra=()):
        """consentctl COMMAND through the Sentinels, then ARGS; checks the
        exit status and that a failure is one line on stderr, nothing on
        stdout."""
        r = run_ctl(args[0], *self.via(sentinels, name), *extra, *args[1:], env=env)
        self.check(r, rc, args)
        return r

    def check(self, r, rc, what=""):
        harness.assert_ctl_exit(self, r, rc, what)

    def record(self, node, subject):
        return self.topo.call(node, "HGETALL", "consent:{%s}" % subject)

    def start_watch(self, *extra, env=None):
        p = subprocess.Popen([CONSENTCTL, "watch", *self.via(), *extra], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, **(env or {})))
        _PROCS.append(p)
        self.addCleanup(_stop, p)
        primary = self.topo.primary
        deadline = time.monotonic() + harness.slow(10)
        while self.topo.call(primary, "PUBSUB", "NUMSUB", CHANNEL)[1] < 1:
            if p.poll() is not None:
                self.fail("watch exited %s: %s" % (p.returncode, p.stderr.read()))
            self.assertLess(time.monotonic(), deadline, "watch did not subscribe")
            time.sleep(0.02)
        return p, LineReader(p.stdout)


def _stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class FakeSentinel:
    """A server that answers every command with `reply` (bytes), or, with
    reply=None, accepts connections and never answers. Stands in for a
    broken Sentinel; the data nodes stay real."""

    def __init__(self, reply):
        self.reply = reply
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.address = "127.0.0.1:%d" % self.srv.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            while conn.recv(65536):
                if self.reply is not None:
                    conn.sendall(self.reply)
        except OSError:
            pass

    def close(self):
        self.srv.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def bulk_array(*items):
    return b"*%d\r\n" % len(items) + b"".join(b"$%d\r\n%s\r\n" % (len(i), i) for i in items)


class SentinelBasics(SentinelHelpers, unittest.TestCase):
    """A primary, two replicas, three Sentinels, shared; nothing here
    changes the primary (a 5 s down-after-milliseconds keeps a loaded
    machine from failing it over by accident)."""

    @classmethod
    def setUpClass(cls):
        cls.topo = Topology(replicas=2, sentinels=3, down_after_ms=5000).start()

    @classmethod
    def tearDownClass(cls):
        cls.topo.cleanup()

    def tearDown(self):
        for s in self.topo.sentinels + self.topo.nodes:
            if s.stopped:
                s.sigcont()

    def fake(self, reply):
        f = FakeSentinel(reply)
        self.addCleanup(f.close)
        return f.address

    def test_set_get_erase_watch(self):
        topo = self.topo
        primary = topo.primary
        watch, lines = self.start_watch()
        waits = primary.calls("wait")
        self.assertEqual(self.ctl("set", "sn-1", "analysis=1", "marketing=0").stdout, "v=1\n")
        self.assertEqual(lines.next(), "sn-1 1")
        self.assertEqual(self.record(primary, "sn-1"), ["v", "1", "analysis", "1", "marketing", "0"])
        # A replica acknowledged it before set returned (WAIT 1): one of
        # them has it already.
        self.assertEqual(primary.calls("wait"), waits + 1)
        self.assertTrue(any(self.record(r, "sn-1") for r in topo.replicas))
        r = self.ctl("get", "sn-1")
        self.assertEqual(json.loads(r.stdout), {"analysis": 1, "marketing": 0, "v": 1})
        self.assertEqual(self.ctl("erase", "sn-1").stdout, "v=2\n")
        self.assertEqual(lines.next(), "sn-1 2")
        self.assertEqual(self.ctl("get", "sn-1").stdout, '{"erased":1,"v":2}\n')
        self.assertEqual(primary.calls("wait"), waits + 2)
        self.assertIsNone(watch.poll())

    def test_db_prefix_and_channel(self):
        primary = self.topo.primary
        self.assertEqual(self.ctl("set", "--db", "3", "--prefix", "t7:", "sn-db", "ads=1").stdout, "v=1\n")
        self.assertEqual(self.topo.pipeline(primary, [("SELECT", 3), ("HGETALL", "t7:{sn-db}")])[1],
                         ["v", "1", "ads", "1"])
        self.assertEqual(self.ctl("get", "--db=3", "--prefix=t7:", "sn-db").stdout, '{"ads":1,"v":1}\n')
        self.assertEqual(self.ctl("get", "sn-db").stdout, "{}\n")

    def test_bare_host_and_ipv6_and_unix_sentinels(self):
        """A Sentinel given without a port is on 26379 (nobody here: the next
        one answers); one on a unix socket answers."""
        sock_sentinel = RedisServer(sentinel=True, unixsocket=True, name="unix-sentinel", config=[
            "sentinel monitor %s %s %d 2" % (NAME, self.topo.primary.host, self.topo.primary.port)])
        self.addCleanup(sock_sentinel.cleanup)
        sock_sentinel.start()
        r = self.ctl("get", "sn-none", sentinels="unix:" + sock_sentinel.unixsocket)
        self.assertEqual(r.stdout, "{}\n")
        r = self.ctl("get", "sn-none", sentinels="127.0.0.1,[::1]:%d,%s" % (free_port("::1"),
                                                                          self.topo.sentinel_addresses))
        self.assertEqual(r.stdout, "{}\n")

    def test_first_sentinel_failing_the_next_answers(self):
        primary = self.topo.primary
        first = self.topo.sentinel_addresses.split(",")[0]
        # A Sentinel of another master (it does not know this one).
        other = RedisServer(sentinel=True, name="other-sentinel", config=[
            "sentinel monitor elsewhere 127.0.0.1 %d 2" % free_port()])
        self.addCleanup(other.cleanup)
        other.start()
        cases = {
            "dead": "127.0.0.1:%d" % free_port(),
            "unknown master": other.address,
            "error reply": self.fake(b"-ERR unknown command 'SENTINEL'\r\n"),
            "garbage": self.fake(b"+OK\r\n"),
            "not an address": self.fake(bulk_array(b"127.0.0.1", b"0")),
            "not RESP": self.fake(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            # names a replica: ROLE says slave, so not this answer
            "names a replica": self.fake(bulk_array(b"127.0.0.1", str(self.topo.replicas[0].port).encode())),
            # names the Sentinel itself
            "names a sentinel": self.fake(bulk_array(b"127.0.0.1", first.split(":")[1].encode())),
        }
        for why, bad in cases.items():
            with self.subTest(why):
                r = self.ctl("set", "sn-order", "ads=1", sentinels=bad + "," + self.topo.sentinel_addresses)
                self.assertRegex(r.stdout, r"^v=\d+\n$")
                self.assertLess(r.took, harness.slow(4))
        self.assertEqual(self.record(primary, "sn-order")[:2], ["v", str(len(cases))])

    def test_every_sentinel_failing_exits_1_naming_each(self):
        dead1, dead2 = "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()
        r = self.ctl("set", "sn-dead", "ads=1", sentinels=dead1 + "," + dead2, rc=1)
        self.assertIn("no primary for sentinel:consent: cannot connect to Sentinel at %s: Connection refused; "
                      "cannot connect to Sentinel at %s: Connection refused" % (dead1, dead2), r.stderr)
        self.assertLess(r.took, harness.slow(2))
        r = self.ctl("get", "sn-dead", name="nope", rc=1)
        self.assertEqual(r.stderr.count("does not know master nope"), 3, r.stderr)
        self.assertLess(r.took, harness.slow(2))
        garbage = self.fake(b"+OK\r\n")
        error = self.fake(b"-NOAUTH Authentication required.\r\n")
        r = self.ctl("get", "sn-dead", sentinels=garbage + "," + error, rc=1)
        self.assertIn("Sentinel at %s answered get-master-addr-by-name with something that is not an address"
                      % garbage, r.stderr)
        self.assertIn("Sentinel at %s: SENTINEL failed: NOAUTH Authentication required." % error, r.stderr)
        self.assertEqual(self.record(self.topo.primary, "sn-dead"), [])

    def test_a_named_server_that_is_not_the_primary_is_asked_again_then_fails(self):
        """A Sentinel that keeps naming a replica (a failover that never
        ends): asked again within the 5 s budget, then exit 1 saying what
        it named and what that server's ROLE is."""
        replica = self.topo.replicas[0]
        liar = self.fake(bulk_array(b"127.0.0.1", str(replica.port).encode()))
        r = self.ctl("set", "sn-liar", "ads=1", sentinels=liar, rc=1)
        self.assertRegex(r.stderr, r"no primary for sentinel:consent within 5s \(\d+ rounds\): Sentinel at %s "
                         r"named 127\.0\.0\.1:%d, whose ROLE is replica of 127\.0\.0\.1:%d \(link connected\)"
                         % (liar, replica.port, self.topo.primary.port))
        self.assertGreater(r.took, 4.5)
        self.assertLess(r.took, harness.slow(7))
        self.assertEqual(self.record(self.topo.primary, "sn-liar"), [])

    def test_a_stopped_sentinel_costs_at_most_2s(self):
        self.topo.stop(self.topo.sentinels[0])
        r = self.ctl("get", "sn-stopped")
        self.assertEqual(r.stdout, "{}\n")
        self.assertGreater(r.took, 1.8)
        self.assertLess(r.took, harness.slow(4))
        # All of them stopped: the budget bounds the whole search.
        silent = self.fake(None)
        r = self.ctl("get", "sn-stopped", sentinels=",".join([silent] * 4), rc=1)
        self.assertIn("Sentinel at %s: no reply to SENTINEL within 2s" % silent, r.stderr)
        self.assertLess(r.took, harness.slow(7))

    def test_a_write_to_a_replica_is_refused_with_readonly(self):
        """A static --redis pointing at a replica (what a demoted primary is):
        exit 1, READONLY, and nothing changed anywhere."""
        replica = self.topo.replicas[0]
        primary = self.topo.primary
        for cmd in (("set", "sn-ro", "ads=1"), ("erase", "sn-ro")):
            with self.subTest(cmd[0]):
                r = run_ctl(cmd[0], "--redis", replica.address, *cmd[1:])
                self.check(r, 1, cmd)
                self.assertIn("Redis at %s is a replica, not the primary (READONLY You can't write against a read "
                              "only replica): the record was not changed; give the primary's address, or --redis "
                              "sentinel:MASTER_NAME" % replica.address, r.stderr)
        self.assertEqual(self.record(replica, "sn-ro"), [])
        self.assertEqual(self.record(primary, "sn-ro"), [])
        # Reads from a replica work as before.
        self.topo.pipeline(primary, [("HSET", "consent:{sn-ro2}", "v", "1"), ("WAIT", 2, 5000)])
        self.assertEqual(run_ctl("get", "--redis", replica.address, "sn-ro2").stdout, '{"v":1}\n')

    def test_usage_errors_exit_2(self):
        s = self.topo.sentinel_addresses
        cases = [
            (("--redis", "sentinel:consent"), "--redis sentinel:consent needs --sentinels HOST:PORT,HOST:PORT,..."),
            (("--sentinels", s), "--sentinels needs --redis sentinel:MASTER_NAME"),
            (("--redis", self.topo.primary.address, "--sentinels", s), "--sentinels needs --redis sentinel:MASTER_NAME"),
            (("--sentinel-password", "x"), "--sentinel-password needs --redis sentinel:MASTER_NAME"),
            (("--sentinel-user", "x"), "--sentinel-user needs --redis sentinel:MASTER_NAME"),
            (("--redis", "sentinel:", "--sentinels", s), "--redis sentinel: needs a master name"),
            (("--redis", "sentinel:a b", "--sentinels", s), "the master name must be printable, without spaces"),
            (("--redis", "sentinel:consent", "--sentinels", ""), "--sentinels '': an empty address"),
            (("--redis", "sentinel:consent", "--sentinels", s + ","), "an empty address"),
            (("--redis", "sentinel:consent", "--sentinels", "127.0.0.1:0"), "--sentinels '127.0.0.1:0': port must be 1..65535"),
            (("--redis", "sentinel:consent", "--sentinels", "host:port"), "port must be 1..65535"),
            (("--redis", "sentinel:consent", "--sentinels", "[::1"), "--sentinels '[::1': missing ']'"),
            (("--redis", "sentinel:consent", "--sentinels", "unix:"), "missing socket path after unix:"),
            (("--redis", "sentinel:consent", "--sentinels", s, "--sentinels", s), "--sentinels given more than once"),
            (("--redis", "sentinel:consent", "--sentinels", s, "--sentinel-user", "ctl"),
             "--sentinel-user needs a password: give --sentinel-password or set CONSENTCTL_SENTINEL_AUTH"),
            (("--redis", "sentinel:consent", "--sentinels", s, "--sentinel-user", "", "--sentinel-password", "x"),
             "--sentinel-user must not be empty"),
            (("--redis", "sentinel:consent", "--sentinels", "unix:/tmp/s.sock", "--tls"),
             "--tls takes HOST:PORT Sentinels"),
            (("--redis", "sentinel:consent", "--sentinels", s, "--cacert", "x"), "--cacert needs --tls"),
        ]
        for cmd in (("set", "u-1", "ads=1"), ("get", "u-1"), ("erase", "u-1"), ("watch",)):
            for opts, message in cases:
                with self.subTest(cmd=cmd[0], opts=opts):
                    r = run_ctl(cmd[0], *opts, *cmd[1:])
                    self.check(r, 2, (cmd, opts))
                    self.assertIn(message, r.stderr)
        self.assertEqual(self.record(self.topo.primary, "u-1"), [])

    def test_help(self):
        for cmd in ("set", "get", "erase", "watch"):
            r = run_ctl(cmd, "--help")
            self.assertEqual(r.returncode, 0)
            for text in ("sentinel:MASTER_NAME", "--sentinels LIST", "--sentinel-user NAME",
                         "--sentinel-password SECRET", "CONSENTCTL_SENTINEL_AUTH"):
                self.assertIn(text, r.stdout, cmd)


class SentinelFailover(SentinelHelpers, unittest.TestCase):
    """Writes while the primary dies and the Sentinels fail over; then the
    old primary back as a replica, and WAIT when no replica answers.
    down-after-milliseconds is 6 s here, longer than consentctl's 5 s
    budget, so that the writes see both outcomes: the first gives up while
    the Sentinels still name the dead primary, a later one lands on the new
    one."""

    @classmethod
    def setUpClass(cls):
        cls.topo = Topology(replicas=2, sentinels=3, down_after_ms=6000).start()

    @classmethod
    def tearDownClass(cls):
        cls.topo.cleanup()

    def test_writes_during_a_failover(self):
        """Writes start the moment the primary is SIGKILLed and go on until
        one has succeeded after the failover. Each exits 0 or 1 with one
        line; every one that reported v=1 is on the new primary; the failed
        ones say why (no primary yet, or the primary lost mid-way)."""
        topo = self.topo
        watch, _ = self.start_watch()
        old = topo.kill_primary()
        results = []
        failover_done = threading.Event()
        outcome = {}

        def wait():
            try:
                outcome["new"], outcome["took"] = topo.wait_failover(old)
            except Exception as e:  # noqa: BLE001 - reported below
                outcome["error"] = e
            failover_done.set()
        threading.Thread(target=wait, daemon=True).start()
        i = 0
        deadline = time.monotonic() + harness.slow(60)
        while time.monotonic() < deadline:
            i += 1
            subject = "fo-%d" % i
            r = run_ctl("set", *self.via(), subject, "ads=1")
            results.append((subject, r))
            if failover_done.is_set() and r.returncode == 0:
                break
        self.assertTrue(failover_done.wait(harness.slow(60)))
        self.assertNotIn("error", outcome)
        new = outcome["new"]
        ok = [s for s, r in results if r.returncode == 0]
        self.assertTrue(ok)
        for subject, r in results:
            with self.subTest(subject):
                if r.returncode == 0:
                    self.assertEqual(r.stdout, "v=1\n")
                    self.assertEqual(self.record(new, subject), ["v", "1", "ads", "1"],
                                     "reported written, not on the new primary")
                else:
                    self.check(r, 1)
                    self.assertRegex(r.stderr, r"no primary for sentinel:consent|may or may not have been applied|"
                                     r"is a replica, not the primary|no replica acknowledged")
        # watch was subscribed on the old primary: it ends, saying so.
        watch.wait(timeout=harness.slow(10))
        self.assertEqual(watch.returncode, 1)
        err = watch.stderr.read()
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn(old.address, err)
        # Reads and a new watch follow the new primary.
        _, lines = self.start_watch()
        self.assertEqual(self.ctl("set", ok[-1], "ads=0").stdout, "v=2\n")
        self.assertEqual(lines.next(), "%s 2" % ok[-1])
        self.assertEqual(self.ctl("get", ok[-1]).stdout, '{"ads":0,"v":2}\n')
        # The first write gave up after the 5 s budget, saying that every
        # Sentinel still named the dead primary.
        first = results[0][1]
        self.assertEqual(first.returncode, 1)
        self.assertIn("no primary for sentinel:consent within 5s (", first.stderr)
        self.assertIn("named %s: cannot connect to Redis at %s: Connection refused" % (old.address, old.address),
                      first.stderr)
        self.assertGreater(first.took, 4.5)
        self.assertLess(first.took, harness.slow(7))
        sys.stderr.write("\n  writes during the failover (%.1fs): %d tried, %d succeeded, first success %s\n"
                         % (outcome["took"], len(results), len(ok), ok[0]))

        # The old primary comes back as a replica of the new one: a write
        # sent to it directly is refused (READONLY); through the Sentinels it
        # goes to the new primary.
        topo.restart(old)
        r = run_ctl("set", "--redis", old.address, "fo-demoted", "ads=1")
        self.check(r, 1)
        self.assertIn("Redis at %s is a replica, not the primary (READONLY" % old.address, r.stderr)
        self.assertEqual(self.ctl("set", "fo-demoted", "ads=1").stdout, "v=1\n")
        self.assertEqual(self.record(new, "fo-demoted"), ["v", "1", "ads", "1"])
        topo.wait_ready()

    def test_z_no_replica_acknowledges(self):
        """(After the failover test.) Both replicas SIGSTOPped: the primary
        still lists them, WAIT gets no acknowledgement within 2 s, and set
        exits 1 saying the primary has the write. With no replica online at
        all, there is nothing to wait for."""
        topo = self.topo
        primary = topo.primary
        replicas = topo.replicas
        for r in replicas:
            topo.stop(r)
        try:
            r = self.ctl("set", "nw-1", "ads=1", rc=1)
        finally:
            for rep in replicas:
                topo.cont(rep)
        self.assertIn("the record was written as v=1 on the primary %s, but no replica acknowledged it within 2s"
                      % primary.address, r.stderr)
        self.assertGreater(r.took, 1.9)
        self.assertEqual(self.record(primary, "nw-1"), ["v", "1", "ads", "1"])
        topo.wait_ready()
        for rep in replicas:
            topo.break_link(rep)
        try:
            self.assertEqual(self.ctl("set", "nw-2", "ads=1").stdout, "v=1\n")
        finally:
            for rep in replicas:
                topo.restore_link(rep)


class SentinelTls(SentinelHelpers, unittest.TestCase):
    """Every node and Sentinel on TLS only."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="consentctl-sentinel-tls-")
        cls.pki = Pki(cls.tmp)
        cls.topo = Topology(replicas=1, sentinels=2, tls=cls.pki, down_after_ms=5000).start()

    @classmethod
    def tearDownClass(cls):
        cls.topo.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_tls_through_sentinel(self):
        tls = ("--tls", "--cacert", self.pki.ca.cert)
        _, lines = self.start_watch(*tls)
        self.assertEqual(self.ctl("set", "tls-1", "ads=1", extra=tls).stdout, "v=1\n")
        self.assertEqual(lines.next(), "tls-1 1")
        self.assertEqual(self.ctl("get", "tls-1", extra=tls).stdout, '{"ads":1,"v":1}\n')
        # With a client certificate too.
        tls_cert = tls + ("--cert", self.pki.client.cert, "--key", self.pki.client.key)
        self.assertEqual(self.ctl("erase", "tls-1", extra=tls_cert).stdout, "v=2\n")

    def test_tls_failures_name_the_sentinel(self):
        first = self.topo.sentinels[0].address
        r = self.ctl("get", "tls-2", extra=("--tls", "--cacert", self.pki.wrong_ca.cert), rc=1)
        self.assertIn("TLS handshake with Sentinel at %s failed: certificate verify failed" % first, r.stderr)
        r = self.ctl("get", "tls-2", rc=1)  # no --tls
        self.assertIn("Sentinel at %s" % first, r.stderr)
        self.assertIn("(a TLS port? then add --tls)", r.stderr)

    def test_sni_names_the_data_nodes_only(self):
        """--sni applies to the server a Sentinel names, never to the
        Sentinels: with --sni other.example (which pki.server's certificate
        does not name) the Sentinels still verify against 127.0.0.1, answer,
        and the primary then fails verification."""
        primary = self.topo.primary
        r = self.ctl("get", "tls-3", extra=("--tls", "--cacert", self.pki.ca.cert, "--sni", "other.example"), rc=1)
        self.assertIn("Sentinel at %s named %s: TLS handshake with Redis at %s failed: certificate verify failed: "
                      "hostname mismatch" % (self.topo.sentinels[0].address, primary.address, primary.address),
                      r.stderr)
        r = self.ctl("get", "tls-3", extra=("--tls", "--cacert", self.pki.ca.cert, "--sni", "localhost"))
        self.assertEqual(r.stdout, "{}\n")


class SentinelAuth(SentinelHelpers, unittest.TestCase):
    """A password on the Sentinels, an ACL user on them for consentctl, and
    ACL users on the data nodes."""

    SENTINEL_PW = "sentinels-pw"

    @classmethod
    def setUpClass(cls):
        cls.topo = Topology(replicas=1, sentinels=2, down_after_ms=5000, password="admin-pw",
                            acl=["user writer on >writer-pw " + SENTINEL_WRITER_RULES,
                                 "user no-role on >pw " + WRITER_RULES + " +wait",
                                 "user no-wait on >pw " + WRITER_RULES + " +role"],
                            sentinel_password=cls.SENTINEL_PW,
                            sentinel_acl=["user ctl on >ctl-pw -@all +sentinel|get-master-addr-by-name"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.topo.cleanup()

    WRITER = ("--user", "writer", "--password", "writer-pw")

    def test_sentinel_password(self):
        r = self.ctl("set", "auth-1", "ads=1", extra=self.WRITER + ("--sentinel-password", self.SENTINEL_PW))
        self.assertEqual(r.stdout, "v=1\n")
        env = {"CONSENTCTL_SENTINEL_AUTH": self.SENTINEL_PW, "REDISCLI_AUTH": "writer-pw"}
        self.assertEqual(self.ctl("get", "auth-1", extra=("--user", "writer"), env=env).stdout, '{"ads":1,"v":1}\n')
        first = self.topo.sentinels[0].address
        # None, or a wrong one: the Sentinels refuse, and say so.
        r = self.ctl("get", "auth-1", extra=self.WRITER, rc=1)
        self.assertIn("Sentinel at %s: SENTINEL failed: NOAUTH" % first, r.stderr)
        r = self.ctl("get", "auth-1", extra=self.WRITER + ("--sentinel-password", "wrong"), rc=1)
        self.assertIn("Sentinel at %s: AUTH failed: WRONGPASS" % first, r.stderr)
        self.assertNotIn("wrong", r.stderr.replace("WRONGPASS", ""))
        # --password is the data nodes' only: it does not open the Sentinels.
        r = self.ctl("get", "auth-1", extra=("--user", "writer", "--password", self.SENTINEL_PW), rc=1)
        self.assertIn("NOAUTH", r.stderr)

    def test_sentinel_acl_user(self):
        sentinel_user = ("--sentinel-user", "ctl", "--sentinel-password", "ctl-pw")
        self.assertEqual(self.ctl("set", "auth-2", "ads=1", extra=self.WRITER + sentinel_user).stdout, "v=1\n")
        r = self.ctl("get", "auth-2", extra=self.WRITER + ("--sentinel-user", "ctl", "--sentinel-password", "x"),
                     rc=1)
        self.assertIn("AUTH failed: WRONGPASS", r.stderr)

    def test_data_node_users(self):
        sentinel = ("--sentinel-password", self.SENTINEL_PW)
        primary = self.topo.primary
        r = self.ctl("get", "auth-3", extra=("--user", "writer", "--password", "wrong") + sentinel, rc=1)
        self.assertIn("named %s: Redis AUTH failed: WRONGPASS" % primary.address, r.stderr)
        self.assertLess(r.took, harness.slow(2), "a refusal is not worth asking again")
        # ROLE and WAIT are part of a Sentinel writer's rules.
        r = self.ctl("set", "auth-3", "ads=1", extra=("--user", "no-role", "--password", "pw") + sentinel, rc=1)
        self.assertIn("named %s: Redis ROLE failed: NOPERM" % primary.address, r.stderr)
        self.assertEqual(self.record(primary, "auth-3"), [])
        r = self.ctl("set", "auth-3", "ads=1", extra=("--user", "no-wait", "--password", "pw") + sentinel, rc=1)
        self.assertIn("the record was written as v=1 on the primary %s, but WAIT failed: NOPERM" % primary.address,
                      r.stderr)
        self.assertEqual(self.record(primary, "auth-3"), ["v", "1", "ads", "1"])


def main():
    global CONSENTCTL
    argv = harness.parse_args()
    CONSENTCTL = harness.CONSENTCTL
    os.environ.pop("REDISCLI_AUTH", None)
    os.environ.pop("CONSENTCTL_SENTINEL_AUTH", None)
    for tool in (harness.REDIS_SERVER, harness.OPENSSL, CONSENTCTL):
        if not os.access(tool, os.X_OK):
            sys.exit("missing %s" % tool)
    unittest.main(argv=argv, verbosity=2)


if __name__ == "__main__":
    main()
