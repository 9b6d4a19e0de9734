"""consentctl set/get/erase/watch against private redis-servers, and the Lua
write script published in docs/redis-schema.md run through redis-cli; Redis
as production runs it: TLS (verification, names, expiry, client
certificates) and ACL users, with the minimal rules for a writer.

Python 3 standard library, redis-server/redis-cli (harness.RedisServer) and
the openssl command-line tool (pki.py). Usage:
    test_consentctl_redis.py --consentctl PATH [unittest args]
"""
import argparse
import atexit
import json
import os
import queue
import re
import shutil
import signal
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

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
SCHEMA_DOC = os.path.join(_ROOT, "docs", "redis-schema.md")
CONSENTCTL = os.path.join(_ROOT, "build", "consentctl")
PASSWORD = "s3cret-pass"
CHANNEL = "consent:updates"

_PROCS = []  # consentctl and redis-cli processes this test started, stopped at exit


def _stop_all():
    for p in _PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


atexit.register(_stop_all)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt  # ctest's timeout: unwind, atexit stops the servers


class LineReader:
    """Reads a subprocess's stdout lines on a thread, for reading with a timeout."""

    def __init__(self, stream):
        self.q = queue.Queue()
        t = threading.Thread(target=self._run, args=(stream,), daemon=True)
        t.start()

    def _run(self, stream):
        for line in iter(stream.readline, ""):
            self.q.put(line.rstrip("\n"))
        self.q.put(None)  # EOF

    def next(self, timeout=10):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line within %ss" % timeout)

    def until(self, wanted, timeout=10):
        """Skips lines until `wanted`; returns the lines skipped."""
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, deadline - time.monotonic()))
            if line == wanted:
                return skipped
            if line is None:
                raise AssertionError("EOF before %r (after %r)" % (wanted, skipped))
            skipped.append(line)


def doc_script():
    """The ```lua block of docs/redis-schema.md."""
    with open(SCHEMA_DOC) as f:
        text = f.read()
    blocks = re.findall(r"^```lua\n(.*?)^```$", text, re.M | re.S)
    assert len(blocks) == 1, "expected one ```lua block in docs/redis-schema.md"
    return blocks[0]


run_ctl = harness.run_ctl


class CtlHelpers:
    """Running consentctl against a RedisServer (self.redis by default)."""

    def ctl(self, *args, rc=0, server=None, env=None):
        """Runs consentctl COMMAND --redis SERVER ARGS...; checks the exit
        status, and that a failure is one line on stderr and nothing on
        stdout. env: as for run_ctl()."""
        server = server or self.redis
        cmd, rest = args[0], args[1:]
        r = run_ctl(cmd, "--redis", server.address, *rest, env=env)
        harness.assert_ctl_exit(self, r, rc, args)
        return r

    def get(self, subject, *extra, server=None, env=None):
        out = self.ctl("get", *extra, subject, server=server, env=env).stdout
        self.assertTrue(out.endswith("\n") and out.count("\n") == 1, out)
        return json.loads(out)

    def start_watch(self, *extra, server=None, env=None):
        """consentctl watch, once subscribed; (process, LineReader)."""
        server = server or self.redis
        channel = CHANNEL
        if "--channel" in extra:
            channel = extra[extra.index("--channel") + 1]
        before = server.numsub(channel)
        p = subprocess.Popen([CONSENTCTL, "watch", "--redis", server.address] + list(extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, **(env or {})))
        _PROCS.append(p)
        self.addCleanup(self._stop_proc, p)
        self.wait_subscribed(server, channel, before + 1, p)
        return p, LineReader(p.stdout)

    def start_cli_subscriber(self, channel=CHANNEL, server=None):
        server = server or self.redis
        before = server.numsub(channel)
        p = subprocess.Popen(server.cli_cmd("SUBSCRIBE", channel), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        _PROCS.append(p)
        self.addCleanup(self._stop_proc, p)
        self.wait_subscribed(server, channel, before + 1, p)
        return LineReader(p.stdout)

    def wait_subscribed(self, server, channel, count, proc):
        deadline = time.monotonic() + 10
        while server.numsub(channel) < count:
            if proc.poll() is not None:
                self.fail("subscriber exited %s: %s" % (proc.returncode, proc.stderr.read() if proc.stderr else ""))
            if time.monotonic() > deadline:
                self.fail("subscriber did not subscribe to %s" % channel)
            time.sleep(0.02)

    @staticmethod
    def _stop_proc(p):
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=5)


class ConsentctlRedis(CtlHelpers, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="consentctl-redis-")
        cls.redis = RedisServer().start()
        cls.locked = RedisServer(password=PASSWORD).start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()
        cls.locked.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- round trips -------------------------------------------------------------------

    def test_set_get_round_trip(self):
        r = self.ctl("set", "rt-1", "analysis=1", "marketing=0", "--exp", "1790000000")
        self.assertEqual(r.stdout, "v=1\n")
        self.assertEqual(self.get("rt-1"), {"analysis": 1, "exp": 1790000000, "marketing": 0, "v": 1})
        # The exact output form: sorted fields, digits as numbers, no spaces.
        self.assertEqual(self.ctl("get", "rt-1").stdout,
                         '{"analysis":1,"exp":1790000000,"marketing":0,"v":1}\n')
        # Stored where the contract says: PREFIX{subject}, a hash.
        self.assertEqual(self.redis.hgetall("consent:{rt-1}"),
                         {"v": "1", "analysis": "1", "marketing": "0", "exp": "1790000000"})

    def test_no_record_prints_empty_object(self):
        self.assertEqual(self.ctl("get", "nobody-here").stdout, "{}\n")

    def test_version_increments_and_merge_keeps_fields(self):
        self.assertEqual(self.ctl("set", "inc-1", "analysis=1").stdout, "v=1\n")
        self.assertEqual(self.ctl("set", "inc-1", "marketing=1").stdout, "v=2\n")
        self.assertEqual(self.ctl("set", "inc-1", "analysis=0").stdout, "v=3\n")
        self.assertEqual(self.ctl("set", "inc-1", "--exp", "1800000000").stdout, "v=4\n")
        self.assertEqual(self.get("inc-1"), {"analysis": 0, "marketing": 1, "exp": 1800000000, "v": 4})

    def test_get_value_forms(self):
        key = "consent:{forms}"
        self.redis.cli("HSET", key, "v", "7", "odd", "maybe", "zero", "007", "quote", 'a"b\\c', "big",
                       "123456789012345678901234567890")
        rec = self.get("forms")
        self.assertEqual(rec, {"v": 7, "odd": "maybe", "zero": "007", "quote": 'a"b\\c',
                               "big": 123456789012345678901234567890})
        self.assertEqual(list(rec), sorted(rec))

    def test_prefix_and_db(self):
        self.assertEqual(self.ctl("set", "--prefix", "tenant7:", "--db", "3", "pfx-1", "ads=1").stdout, "v=1\n")
        self.assertEqual(self.redis.hgetall("tenant7:{pfx-1}", db=3), {"v": "1", "ads": "1"})
        self.assertEqual(self.redis.hgetall("tenant7:{pfx-1}"), {})
        self.assertEqual(self.redis.hgetall("consent:{pfx-1}", db=3), {})
        self.assertEqual(self.get("pfx-1", "--prefix=tenant7:", "--db=3"), {"ads": 1, "v": 1})
        self.assertEqual(self.get("pfx-1"), {})

    def test_subject_with_spaces_and_braces(self):
        self.assertEqual(self.ctl("set", "Jane Doe {x}", "service=1").stdout, "v=1\n")
        self.assertEqual(self.redis.hgetall("consent:{Jane Doe {x}}"), {"v": "1", "service": "1"})
        self.assertEqual(self.get("Jane Doe {x}"), {"service": 1, "v": 1})

    # ---- announcements --------------------------------------------------------------------

    def test_publish_seen_by_watch_and_redis_cli(self):
        watch, lines = self.start_watch()
        raw = self.start_cli_subscriber()
        self.assertEqual(self.ctl("set", "pub-1", "marketing=1").stdout, "v=1\n")
        self.assertEqual(lines.next(), "pub-1 1")
        raw.until("pub-1 1")
        self.assertEqual(self.ctl("set", "pub-1", "marketing=0").stdout, "v=2\n")
        self.assertEqual(lines.next(), "pub-1 2")
        raw.until("pub-1 2")
        self.assertEqual(self.ctl("set", "a b c", "marketing=0").stdout, "v=1\n")
        self.assertEqual(lines.next(), "a b c 1")
        raw.until("a b c 1")
        self.assertEqual(self.ctl("erase", "pub-1").stdout, "v=3\n")
        self.assertEqual(lines.next(), "pub-1 3")
        raw.until("pub-1 3")
        # Whatever anyone publishes, watch prints it, "*" included.
        self.redis.cli("PUBLISH", CHANNEL, "*")
        self.assertEqual(lines.next(), "*")
        self.assertIsNone(watch.poll())

    def test_custom_channel(self):
        _, lines = self.start_watch("--channel", "tenant7:updates")
        _, default_lines = self.start_watch()
        self.assertEqual(self.ctl("set", "--channel", "tenant7:updates", "ch-1", "ads=0").stdout, "v=1\n")
        self.assertEqual(lines.next(), "ch-1 1")
        self.assertEqual(self.ctl("set", "ch-1", "ads=1").stdout, "v=2\n")
        self.assertEqual(default_lines.next(), "ch-1 2")  # and nothing of v1 before it

    def test_watch_exits_1_when_redis_goes_away(self):
        server = RedisServer().start()
        watch, lines = self.start_watch(server=server)
        server.cleanup()
        self.assertIsNone(lines.next())
        watch.wait(timeout=10)
        self.assertEqual(watch.returncode, 1)
        err = watch.stderr.read()
        self.assertEqual(err.count("\n"), 1, err)

    # ---- erase ------------------------------------------------------------------------------

    def test_erase(self):
        self.ctl("set", "er-1", "analysis=1", "marketing=1", "--exp", "1790000000")
        self.ctl("set", "er-1", "service=1")
        self.assertEqual(self.ctl("erase", "er-1").stdout, "v=3\n")
        self.assertEqual(self.redis.hgetall("consent:{er-1}"), {"v": "3", "erased": "1"})
        self.assertEqual(self.get("er-1"), {"erased": 1, "v": 3})
        # Erasing again keeps it erased and still announces a new version.
        self.assertEqual(self.ctl("erase", "er-1").stdout, "v=4\n")
        self.assertEqual(self.get("er-1"), {"erased": 1, "v": 4})
        # A subject never seen gets an erased record.
        self.assertEqual(self.ctl("erase", "er-never").stdout, "v=1\n")
        self.assertEqual(self.get("er-never"), {"erased": 1, "v": 1})

    # ---- usage errors: exit 2, Redis untouched --------------------------------------------

    def test_invalid_usage_exits_2(self):
        self.ctl("set", "bad-1", "analysis=1")
        bad = [
            ("set", "bad-1", "analytics=maybe"),
            ("set", "bad-1", "analytics=2"),
            ("set", "bad-1", "analytics=01"),
            ("set", "bad-1", "analytics="),
            ("set", "bad-1", "analytics"),
            ("set", "bad-1", "Analytics=1"),
            ("set", "bad-1", "ana-lytics=1"),
            ("set", "bad-1", "=1"),
            ("set", "bad-1", "v=5"),
            ("set", "bad-1", "exp=5"),
            ("set", "bad-1", "erased=1"),
            ("set", "bad-1", "analysis=1", "analysis=0"),
            ("set", "bad-1", "analysis=1", "--exp", "soon"),
            ("set", "bad-1", "analysis=1", "--exp", "-1"),
            ("set", "bad-1", "analysis=1", "--exp", "18446744073709551616"),
            ("set", "bad-1"),
            ("set",),
            ("set", "x" * 65, "analysis=1"),
            ("set", "", "analysis=1"),
            ("set", "bad\x01", "analysis=1"),
            ("set", "bad-1", "analysis=1", "--nope", "1"),
            ("set", "bad-1", "analysis=1", "--db", "three"),
            ("get",),
            ("get", "a", "b"),
            ("erase",),
            ("erase", "a", "b"),
            ("watch", "extra"),
        ]
        for args in bad:
            with self.subTest(args=args):
                self.ctl(*args, rc=2)
        for args in [("get", "--redis", "nohost:", "x"), ("get", "--redis", "127.0.0.1:99999", "x"),
                     ("get", "--redis", "unix:", "x"), ("set", "--redis", "host:port", "x", "a=1"),
                     # longer than sun_path: hiredis would connect to a cut-short path
                     ("get", "--redis", "unix:/tmp/" + "s" * 120 + ".sock", "x")]:
            with self.subTest(args=args):
                r = run_ctl(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stderr.count("\n"), 1)
        self.assertEqual(self.redis.hgetall("consent:{bad-1}"), {"v": "1", "analysis": "1"})
        self.assertEqual(self.redis.cli("EXISTS", "consent:{bad\x01}"), ["0"])

    def test_help(self):
        r = run_ctl("--help")
        self.assertEqual(r.returncode, 0)
        for name in ("keygen", "mint", "inspect", "set", "get", "erase", "watch"):
            self.assertRegex(r.stdout, r"(?m)^  %s " % name)
        for name in ("set", "get", "erase", "watch"):
            with self.subTest(name=name):
                r = run_ctl(name, "--help")
                self.assertEqual(r.returncode, 0)
                self.assertTrue(r.stdout.startswith("usage: consentctl %s" % name), r.stdout)
                self.assertIn("--redis", r.stdout)

    # ---- failed operations: exit 1 ------------------------------------------------------

    def test_connection_refused_exits_1(self):
        port = free_port()  # nobody listens there
        for args in [("set", "x", "a=1"), ("get", "x"), ("erase", "x"), ("watch",)]:
            with self.subTest(args=args):
                r = run_ctl(args[0], "--redis", "127.0.0.1:%d" % port, *args[1:])
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
                self.assertIn("127.0.0.1:%d" % port, r.stderr)
        r = run_ctl("get", "--redis", "unix:" + os.path.join(self.tmp, "no.sock"), "x")
        self.assertEqual(r.returncode, 1, r.stderr)

    def test_redis_error_exits_1(self):
        self.redis.cli("SET", "consent:{str-1}", "not a hash")
        self.assertIn("WRONGTYPE", self.ctl("set", "str-1", "a=1", rc=1).stderr)
        self.assertIn("WRONGTYPE", self.ctl("get", "str-1", rc=1).stderr)
        self.assertEqual(self.redis.cli("GET", "consent:{str-1}"), ["not a hash"])
        # A v that is not an integer: the script fails before writing anything.
        self.redis.cli("HSET", "consent:{badv-1}", "v", "abc")
        self.ctl("set", "badv-1", "marketing=1", rc=1)
        self.ctl("erase", "badv-1", rc=1)
        self.assertEqual(self.redis.hgetall("consent:{badv-1}"), {"v": "abc"})

    def test_silent_server_times_out_and_says_what_it_means(self):
        """A server that accepts and never answers: exit 1 after the 5 s
        reply timeout, with a message that says so. A write whose reply was
        lost may have been applied, and the message says that too."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)  # the kernel completes the handshake; nobody reads
        self.addCleanup(srv.close)
        address = "127.0.0.1:%d" % srv.getsockname()[1]
        cmds = {"get": ("get", "x"), "set": ("set", "x", "a=1"), "erase": ("erase", "x")}
        procs = {name: subprocess.Popen([CONSENTCTL, args[0], "--redis", address] + list(args[1:]),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, args in cmds.items()}
        for name, p in procs.items():
            with self.subTest(name):
                out, err = p.communicate(timeout=30)
                self.assertEqual(p.returncode, 1, err)
                self.assertEqual(out, "")
                self.assertEqual(err.count("\n"), 1, err)
                self.assertIn(address, err)
                self.assertRegex(err, r"no reply to \w+ within 5s")
                self.assertNotIn("Resource temporarily unavailable", err)
                if name in ("set", "erase"):
                    self.assertIn("may or may not have been applied", err)

    def test_trickled_reply_times_out_as_a_whole(self):
        """A server that answers, but one byte every 0.4 s (a reply of 40
        bytes would take 16 s): the 5 s timeout bounds the whole reply, not
        each read, so get gives up after about 5 s."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)
        reply = b"*2\r\n$9\r\nmarketing\r\n$1\r\n1\r\n*2\r\n$1\r\nv\r\n$1\r\n1\r\n"
        stop = threading.Event()
        self.addCleanup(stop.set)

        def serve():
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)   # the HGETALL
                for b in reply:
                    if stop.wait(0.4):
                        return
                    try:
                        conn.sendall(bytes([b]))
                    except OSError:
                        return
        threading.Thread(target=serve, daemon=True).start()
        address = "127.0.0.1:%d" % srv.getsockname()[1]
        t0 = time.monotonic()
        p = subprocess.run([CONSENTCTL, "get", "--redis", address, "x"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertRegex(p.stderr, r"no reply to HGETALL within 5s")
        self.assertGreater(took, 4.5)
        self.assertLess(took, 8.0, "the timeout was per read, not for the whole reply")

    def hostile_server(self, reply):
        """A server that answers the first command with reply() (an
        iterable of byte strings, sent until the client goes away); its
        address."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)

        def serve():
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)
                try:
                    for chunk in reply():
                        conn.sendall(chunk)
                except OSError:
                    return
        threading.Thread(target=serve, daemon=True).start()
        return "127.0.0.1:%d" % srv.getsockname()[1]

    def test_reply_larger_than_16mb_is_refused(self):
        """A reply may not make consentctl eat memory: a bulk string of
        20 MB (bytes on the wire), an array that claims 2e9 elements (hiredis
        would allocate 16 GB of pointers for it up front), and an array of
        nils (small on the wire, large in memory) all end the command with
        exit 1 once past 16 MB, without waiting for the rest."""
        chunk = b"x" * 65536

        def bulk():
            yield b"$20000000\r\n"
            while True:
                yield chunk

        def claims():
            yield b"*2000000000\r\n"
            time.sleep(30)

        def nils():
            yield b"*2000000\r\n"
            while True:
                yield b"$-1\r\n" * 10000
        for name, reply in (("bulk", bulk), ("claims", claims), ("nils", nils)):
            with self.subTest(name):
                address = self.hostile_server(reply)
                t0 = time.monotonic()
                r = run_ctl("get", "--redis", address, "x", timeout=30)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertIn("%s: reply larger than 16 MB" % address, r.stderr)
                self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
                self.assertLess(time.monotonic() - t0, 4.5)

    @unittest.skipUnless(os.path.exists("/dev/full"), "needs /dev/full")
    def test_stdout_write_failure_exits_1(self):
        """A result that cannot be written (full disk, closed stdout) is a
        failed operation: `keygen > key` on a full disk must not exit 0
        with an empty key file. set and erase say the record was changed."""
        def ctl_to(stdout, *args):
            return subprocess.run([CONSENTCTL] + list(args), stdout=stdout, stderr=subprocess.PIPE,
                                  text=True, timeout=15)
        with open("/dev/full", "w") as full:
            for args in [("keygen",), ("pseudonym-keygen",), ("--help",), ("get", "--help"),
                         ("get", "--redis", self.redis.address, "full-1")]:
                with self.subTest(args=args):
                    r = ctl_to(full, *args)
                    self.assertEqual(r.returncode, 1, r.stderr)
                    self.assertIn("cannot write to stdout", r.stderr)
                    self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
            r = ctl_to(full, "set", "--redis", self.redis.address, "full-1", "analysis=1")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("cannot write to stdout", r.stderr)
            self.assertIn("the record was written as v=1", r.stderr)
            r = ctl_to(full, "erase", "--redis", self.redis.address, "full-1")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("the record was erased as v=2", r.stderr)
        self.assertEqual(self.get("full-1"), {"erased": 1, "v": 2})
        # a closed stdout
        r = subprocess.run([CONSENTCTL, "keygen"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=15, pass_fds=(), preexec_fn=lambda: os.close(1))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot write to stdout", r.stderr)

    def test_password(self):
        self.ctl("set", "pw-1", "analysis=1", server=self.locked, rc=1)  # NOAUTH
        r = self.ctl("set", "--password", "not-the-password", "pw-1", "analysis=1", server=self.locked, rc=1)
        self.assertNotIn("not-the-password", r.stderr)
        _, lines = self.start_watch("--password", PASSWORD, server=self.locked)
        self.assertEqual(self.ctl("set", "--password", PASSWORD, "pw-1", "analysis=1",
                                  server=self.locked).stdout, "v=1\n")
        self.assertEqual(lines.next(), "pw-1 1")
        self.assertEqual(self.get("pw-1", "--password=" + PASSWORD, server=self.locked), {"analysis": 1, "v": 1})
        self.assertEqual(self.ctl("erase", "--password", PASSWORD, "pw-1", server=self.locked).stdout, "v=2\n")
        self.assertEqual(lines.next(), "pw-1 2")
        self.assertEqual(self.locked.hgetall("consent:{pw-1}"), {"v": "2", "erased": "1"})
        self.ctl("get", "pw-1", server=self.locked, rc=1)

    # ---- the published script ---------------------------------------------------------------

    def test_doc_sed_recipe_extracts_the_script(self):
        r = subprocess.run(["sed", "-n", "/^```lua$/,/^```$/{/^```/d;p}", SCHEMA_DOC],
                           capture_output=True, text=True, check=True)
        self.assertEqual(r.stdout, doc_script())

    def test_doc_script_through_redis_cli_behaves_like_consentctl(self):
        script = doc_script()
        raw = self.start_cli_subscriber()

        def cli_eval(subject, mode, *pairs):
            return self.redis.cli("EVAL", script, "1", "consent:{%s}" % subject, CHANNEL, subject, mode, *pairs)

        steps = [
            (("set", "{s}", "marketing=1", "analysis=0"), ("merge", "marketing", "1", "analysis", "0")),
            (("set", "{s}", "marketing=0"), ("merge", "marketing", "0")),
            (("set", "{s}", "--exp", "1790000000"), ("merge", "exp", "1790000000")),
            (("erase", "{s}"), ("replace", "erased", "1")),
            (("set", "{s}", "ads=1"), ("merge", "ads", "1")),
        ]
        for n, (ctl_args, eval_args) in enumerate(steps, start=1):
            with self.subTest(step=n):
                out = self.ctl(*[a.replace("{s}", "doc-ctl") for a in ctl_args]).stdout
                self.assertEqual(out, "v=%d\n" % n)
                raw.until("doc-ctl %d" % n)
                self.assertEqual(cli_eval("doc-cli", *eval_args), [str(n)])
                raw.until("doc-cli %d" % n)
                self.assertEqual(self.redis.hgetall("consent:{doc-ctl}"), self.redis.hgetall("consent:{doc-cli}"))
                self.assertEqual(self.get("doc-ctl"), self.get("doc-cli"))
        self.assertEqual(self.get("doc-cli"), {"ads": 1, "erased": 1, "v": 5})

        # replace drops every field but v; the script refuses what it must.
        self.assertEqual(cli_eval("doc-cli", "replace", "service", "1"), ["6"])
        self.assertEqual(self.redis.hgetall("consent:{doc-cli}"), {"v": "6", "service": "1"})
        for args in [("bogus", "a", "1"), ("merge", "a"), ("merge", "v", "100")]:
            with self.subTest(refused=args):
                r = subprocess.run(self.redis.cli_cmd("EVAL", script, "1", "consent:{doc-cli}", CHANNEL,
                                                      "doc-cli", *args), capture_output=True, text=True)
                self.assertIn("ERR consent:", r.stdout + r.stderr)
        self.assertEqual(self.redis.hgetall("consent:{doc-cli}"), {"v": "6", "service": "1"})

    def test_script_publishes_large_versions_exactly(self):
        self.redis.cli("HSET", "consent:{big-1}", "v", "123456789012344")
        raw = self.start_cli_subscriber()
        self.assertEqual(self.ctl("set", "big-1", "ads=1").stdout, "v=123456789012345\n")
        raw.until("big-1 123456789012345")


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class TlsRedis(CtlHelpers, unittest.TestCase):
    """consentctl against redis-servers that speak only TLS (pki.py): one
    with a certificate for localhost/127.0.0.1/::1, one for other.example
    only, one expired, one that requires client certificates; and a plain
    one."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="consentctl-tls-")
        cls.pki = pki = Pki(cls.tmp)
        cls.redis = RedisServer(tls=pki.redis_tls()).start()
        cls.other = RedisServer(tls=pki.redis_tls(pki.other)).start()
        cls.expired = RedisServer(tls=pki.redis_tls(pki.expired)).start()
        cls.mtls = RedisServer(tls=pki.redis_tls(auth_clients="yes")).start()
        cls.plain = RedisServer().start()
        cls.ca = ("--tls", "--cacert", pki.ca.cert)

    @classmethod
    def tearDownClass(cls):
        for r in (cls.redis, cls.other, cls.expired, cls.mtls, cls.plain):
            r.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def handshake_failed(self, server, *args, reason):
        """get over TLS must fail: exit 1, one line naming the server and
        OpenSSL's reason."""
        r = self.ctl("get", *args, "x", server=server, rc=1)
        self.assertIn("TLS handshake with Redis at %s failed: " % server.address, r.stderr)
        self.assertIn(reason, r.stderr)
        return r

    def test_set_get_erase_watch_verified(self):
        _, lines = self.start_watch(*self.ca)
        self.assertEqual(self.ctl("set", *self.ca, "tls-1", "analysis=1").stdout, "v=1\n")
        self.assertEqual(lines.next(), "tls-1 1")
        self.assertEqual(self.get("tls-1", *self.ca), {"analysis": 1, "v": 1})
        self.assertEqual(self.ctl("erase", *self.ca, "tls-1").stdout, "v=2\n")
        self.assertEqual(lines.next(), "tls-1 2")
        self.assertEqual(self.redis.hgetall("consent:{tls-1}"), {"v": "2", "erased": "1"})

    def test_names_the_certificate_lists(self):
        """The host of --redis is what must be in the certificate: a DNS
        name (localhost) or an IP address (127.0.0.1, ::1)."""
        host_port = "localhost:%d" % self.redis.port
        r = run_ctl("get", "--redis", host_port, *self.ca, "x")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "{}\n", ""))

    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6_address_verified(self):
        v6 = RedisServer(host="::1", tls=self.pki.redis_tls()).start()
        self.addCleanup(v6.cleanup)
        self.assertEqual(v6.address, "[::1]:%d" % v6.port)
        self.assertEqual(self.ctl("set", *self.ca, "v6-1", "ads=1", server=v6).stdout, "v=1\n")
        # The same server, but the certificate names other.example only.
        v6other = RedisServer(host="::1", tls=self.pki.redis_tls(self.pki.other)).start()
        self.addCleanup(v6other.cleanup)
        self.handshake_failed(v6other, *self.ca, reason="certificate verify failed: IP address mismatch")

    def test_wrong_ca_fails(self):
        self.handshake_failed(self.redis, "--tls", "--cacert", self.pki.wrong_ca.cert,
                              reason="certificate verify failed: ")
        # The system's CA store (no --cacert) does not know the test CA.
        self.handshake_failed(self.redis, "--tls", reason="certificate verify failed: ")

    def test_insecure_gives_up_verification(self):
        for server in (self.redis, self.other, self.expired):
            with self.subTest(server=server.tls["cert"]):
                self.assertEqual(self.get("x", "--tls", "--cacert", self.pki.wrong_ca.cert, "--insecure",
                                          server=server), {})
        self.assertEqual(self.ctl("set", "--tls", "--insecure", "ins-1", "ads=1", server=self.expired).stdout,
                         "v=1\n")

    def test_wrong_name_fails_and_sni_names_the_right_one(self):
        self.handshake_failed(self.other, *self.ca, reason="certificate verify failed: IP address mismatch")
        r = run_ctl("get", "--redis", "localhost:%d" % self.other.port, *self.ca, "x")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("certificate verify failed: hostname mismatch", r.stderr)
        self.assertEqual(self.get("x", *self.ca, "--sni", "other.example", server=self.other), {})
        self.assertEqual(self.ctl("set", *self.ca, "--sni", "other.example", "sni-1", "ads=0",
                                  server=self.other).stdout, "v=1\n")
        self.handshake_failed(self.other, *self.ca, "--sni", "wrong.example",
                              reason="certificate verify failed: hostname mismatch")
        # --sni is verified as well as sent: the right CA is still needed
        self.handshake_failed(self.other, "--tls", "--cacert", self.pki.wrong_ca.cert, "--sni", "other.example",
                              reason="certificate verify failed: ")

    def test_expired_certificate_fails(self):
        self.handshake_failed(self.expired, *self.ca, reason="certificate verify failed: certificate has expired")
        self.ctl("set", *self.ca, "exp-1", "ads=1", server=self.expired, rc=1)
        self.assertEqual(self.expired.hgetall("consent:{exp-1}"), {})

    def test_mutual_tls(self):
        """tls-auth-clients yes: refused without a client certificate (TLS
        1.3 refuses after the client's handshake; consentctl waits for the
        verdict, so the reason is not lost), accepted with one."""
        for cmd in (("get", "x"), ("set", "mtls-1", "ads=1")):
            with self.subTest(cmd=cmd[0]):
                r = self.ctl(cmd[0], *self.ca, *cmd[1:], server=self.mtls, rc=1)
                self.assertIn("TLS handshake with Redis at %s failed: " % self.mtls.address, r.stderr)
                self.assertIn("certificate required", r.stderr)
                self.assertIn("give --cert and --key", r.stderr)
                self.assertNotIn("may or may not", r.stderr)  # refused before any command
        client = ("--cert", self.pki.client.cert, "--key", self.pki.client.key)
        _, lines = self.start_watch(*self.ca, *client, server=self.mtls)
        self.assertEqual(self.ctl("set", *self.ca, *client, "mtls-1", "ads=1", server=self.mtls).stdout, "v=1\n")
        self.assertEqual(lines.next(), "mtls-1 1")
        self.assertEqual(self.get("mtls-1", *self.ca, *client, server=self.mtls), {"ads": 1, "v": 1})
        # TLS 1.2: the refusal comes inside the handshake
        tls12 = RedisServer(tls=dict(self.pki.redis_tls(auth_clients="yes"))).start()
        self.addCleanup(tls12.cleanup)
        tls12.cli("CONFIG", "SET", "tls-protocols", "TLSv1.2")
        r = self.handshake_failed(tls12, *self.ca, reason="alert")
        self.assertIn("give --cert and --key", r.stderr)
        self.assertEqual(self.get("x", *self.ca, *client, server=tls12), {})

    def test_tls_against_plain_server_fails_within_connect_timeout(self):
        """A plain Redis never answers a ClientHello (it waits for a newline
        that may never come): the 2 s connect timeout covers the handshake."""
        for cmd in (("get", "x"), ("set", "pl-1", "ads=1"), ("watch",)):
            with self.subTest(cmd=cmd[0]):
                t0 = time.monotonic()
                r = self.ctl(cmd[0], *self.ca, *cmd[1:], server=self.plain, rc=1)
                took = time.monotonic() - t0
                self.assertIn("TLS handshake with Redis at %s" % self.plain.address, r.stderr)
                self.assertIn("is it a TLS port?", r.stderr)
                self.assertLess(took, 4.0)
        self.assertEqual(self.plain.hgetall("consent:{pl-1}"), {})

    def test_tls_against_a_server_answering_in_plain_text(self):
        """What a plain Redis does when the ClientHello happens to hold a
        newline: it answers with an error line, which is not TLS."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        self.addCleanup(srv.close)

        def serve():
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"-ERR unknown command '\x16\x03\x01', with args beginning with: \r\n")
        threading.Thread(target=serve, daemon=True).start()
        address = "127.0.0.1:%d" % srv.getsockname()[1]
        r = run_ctl("get", "--redis", address, *self.ca, "x")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertIn("TLS handshake with Redis at %s failed: wrong version number (is it a TLS port?)" % address,
                      r.stderr)

    def test_plain_against_tls_server_fails_fast(self):
        for cmd in (("get", "x"), ("set", "pl-2", "ads=1"), ("watch",)):
            with self.subTest(cmd=cmd[0]):
                t0 = time.monotonic()
                r = self.ctl(*cmd, rc=1)
                self.assertLess(time.monotonic() - t0, 4.0)
                self.assertIn("Redis at %s" % self.redis.address, r.stderr)
                self.assertIn("add --tls", r.stderr)
        self.assertEqual(self.redis.hgetall("consent:{pl-2}"), {})

    def test_stalled_handshake_times_out_in_2s(self):
        """A TLS server that accepts (the kernel does) but never answers:
        the handshake is part of the 2 s connect timeout."""
        self.mtls.sigstop()
        try:
            t0 = time.monotonic()
            r = self.ctl("get", *self.ca, "x", server=self.mtls, rc=1)
            took = time.monotonic() - t0
        finally:
            self.mtls.sigcont()
        self.assertIn("TLS handshake with Redis at %s: no answer within 2s" % self.mtls.address, r.stderr)
        self.assertGreater(took, 1.8)
        self.assertLess(took, 4.0)

    def test_unusable_tls_files_exit_1(self):
        """Each message names the option, the file and why; nothing is sent."""
        missing = os.path.join(self.tmp, "missing.pem")
        p = self.pki
        cases = [
            (("--cacert", missing), "--cacert %s: No such file or directory" % missing),
            (("--cacert", self.tmp), "--cacert %s: not a regular file" % self.tmp),
            (("--cacert", p.ca.key), "--cacert %s: no CA certificate in it" % p.ca.key),
            (("--cacert", p.ca.cert, "--cert", missing, "--key", p.client.key),
             "--cert %s: No such file or directory" % missing),
            (("--cacert", p.ca.cert, "--cert", p.client.cert, "--key", missing),
             "--key %s: No such file or directory" % missing),
            (("--cacert", p.ca.cert, "--cert", p.client.key, "--key", p.client.key),
             "--cert %s: no certificate in it" % p.client.key),
            (("--cacert", p.ca.cert, "--cert", p.client.cert, "--key", p.client.cert),
             "--key %s: cannot load" % p.client.cert),
            (("--cacert", p.ca.cert, "--cert", p.client.cert, "--key", p.server.key),
             "--key %s: not the key of --cert %s" % (p.server.key, p.client.cert)),
        ]
        unreadable = os.path.join(self.tmp, "unreadable.pem")
        shutil.copy(p.ca.cert, unreadable)
        os.chmod(unreadable, 0)
        if os.geteuid() != 0:  # root reads it anyway
            cases.append((("--cacert", unreadable), "--cacert %s: Permission denied" % unreadable))
        for opts, message in cases:
            with self.subTest(opts=opts):
                r = self.ctl("set", "--tls", *opts, "files-1", "ads=1", server=self.mtls, rc=1)
                self.assertIn(message, r.stderr)
        self.assertEqual(self.mtls.hgetall("consent:{files-1}"), {})


# The rules a consentctl user needs, exactly, with Redis 7 ACLs (no more:
# test_writer_rules_are_minimal drops each and sees a command fail). set and
# erase run EVAL, and the script's HINCRBY, HKEYS (erase), HDEL (erase), HSET
# and PUBLISH are checked too, keys and channel included; get runs HGETALL,
# watch SUBSCRIBE. resetchannels and -@all are Redis 7's defaults for a new
# user, written out so that the line means the same on Redis 6.2 (whose
# default is allchannels) and on an existing user.
WRITER_RULES = ("resetchannels -@all +eval +hincrby +hkeys +hdel +hset +hget +publish +hgetall +subscribe "
                "~consent:* &consent:updates")
# What the edge sends (AUTH, SELECT, PING, HGETALL, SUBSCRIBE CHANNEL and
# CHANNEL:hb:PID, PUBLISH on CHANNEL:hb:PID): reads only.
EDGE_RULES = ("resetchannels -@all +select +ping +hgetall +subscribe +publish "
              "%R~consent:* &consent:updates &consent:updates:hb:*")


class AclRedis(CtlHelpers, unittest.TestCase):
    """ACL users (Redis 6+): --user with --password or REDISCLI_AUTH, and the
    minimal rules for a consentctl user."""

    ADMIN = "admin-pw"

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="consentctl-acl-")
        cls.redis = RedisServer(password=cls.ADMIN, acl=[
            "user writer on >writer-pw " + WRITER_RULES,
            "user reader on >reader-pw resetchannels -@all +hgetall ~consent:*",
            "user edge on >edge-pw " + EDGE_RULES,
        ]).start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_user_and_password(self):
        writer = ("--user", "writer", "--password", "writer-pw")
        _, lines = self.start_watch(*writer)
        self.assertEqual(self.ctl("set", *writer, "acl-1", "ads=1").stdout, "v=1\n")
        self.assertEqual(lines.next(), "acl-1 1")
        self.assertEqual(self.get("acl-1", *writer), {"ads": 1, "v": 1})
        self.assertEqual(self.ctl("erase", "--user=writer", "--password=writer-pw", "acl-1").stdout, "v=2\n")
        self.assertEqual(lines.next(), "acl-1 2")

    def test_wrong_password_exits_1_with_wrongpass(self):
        r = self.ctl("set", "--user", "writer", "--password", "not-it", "acl-2", "ads=1", rc=1)
        self.assertIn("Redis AUTH failed: WRONGPASS", r.stderr)
        self.assertNotIn("not-it", r.stderr)
        r = self.ctl("get", "--user", "nobody", "--password", "writer-pw", "acl-2", rc=1)
        self.assertIn("WRONGPASS", r.stderr)
        self.assertEqual(self.redis.hgetall("consent:{acl-2}"), {})

    def test_rediscli_auth_supplies_the_password(self):
        env = {"REDISCLI_AUTH": "writer-pw"}
        self.assertEqual(self.ctl("set", "--user", "writer", "acl-3", "ads=1", env=env).stdout, "v=1\n")
        _, lines = self.start_watch("--user", "writer", env=env)
        self.assertEqual(self.ctl("set", "--user", "writer", "acl-3", "ads=0", env=env).stdout, "v=2\n")
        self.assertEqual(lines.next(), "acl-3 2")
        # Without --user it is the default user's password
        self.assertEqual(self.get("acl-3", env={"REDISCLI_AUTH": self.ADMIN}), {"ads": 0, "v": 2})
        # --password wins over REDISCLI_AUTH, either way round
        self.assertEqual(self.get("acl-3", "--user", "writer", "--password", "writer-pw",
                                  env={"REDISCLI_AUTH": "wrong"}), {"ads": 0, "v": 2})
        r = self.ctl("get", "--user", "writer", "--password", "wrong", "acl-3", env=env, rc=1)
        self.assertIn("WRONGPASS", r.stderr)
        # An empty REDISCLI_AUTH is no password
        r = self.ctl("get", "--user", "writer", "acl-3", env={"REDISCLI_AUTH": ""}, rc=2)
        self.assertIn("--user needs a password", r.stderr)
        r = self.ctl("get", "acl-3", env={"REDISCLI_AUTH": ""}, rc=1)
        self.assertIn("NOAUTH", r.stderr)

    def test_noperm(self):
        reader = ("--user", "reader", "--password", "reader-pw")
        self.assertEqual(self.get("acl-4", *reader), {})
        r = self.ctl("set", *reader, "acl-4", "ads=1", rc=1)
        self.assertIn("Redis EVAL failed: NOPERM", r.stderr)
        self.assertIn("'eval'", r.stderr)
        r = self.ctl("watch", *reader, rc=1)
        self.assertIn("Redis SUBSCRIBE failed: NOPERM", r.stderr)
        # keys outside ~consent:*
        r = self.ctl("get", *reader, "--prefix", "other:", "acl-4", rc=1)
        self.assertIn("NOPERM", r.stderr)
        self.assertEqual(self.redis.hgetall("consent:{acl-4}"), {})

    def run_as_writer(self, rules):
        """set, erase, get and watch as a user with exactly `rules`; the
        results that differ from what they should be."""
        server = RedisServer(acl=["user w on >pw " + rules]).start()
        self.addCleanup(server.cleanup)
        env = {"REDISCLI_AUTH": "pw"}
        wrong = []
        watch = subprocess.Popen([CONSENTCTL, "watch", "--redis", server.address, "--user", "w"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, **env))
        _PROCS.append(watch)
        self.addCleanup(self._stop_proc, watch)
        try:
            self.wait_subscribed(server, CHANNEL, 1, watch)
        except AssertionError:
            wrong.append("watch")
        for args, out in ((("set", "m-1", "ads=1", "--revision", "1"), "v=1\n"), (("erase", "m-1"), "v=2\n"),
                          (("get", "m-1"), '{"erased":1,"v":2}\n')):
            r = run_ctl(args[0], "--redis", server.address, "--user", "w", *args[1:], env=env)
            if (r.returncode, r.stdout) != (0, out):
                wrong.append(args[0])
        if "watch" not in wrong and "set" not in wrong:
            try:
                first = LineReader(watch.stdout).next(timeout=5)
            except AssertionError:
                first = None
            if first != "m-1 1":
                wrong.append("watch")
        return wrong

    def test_writer_rules_work(self):
        self.assertEqual(self.run_as_writer(WRITER_RULES), [])

    def test_writer_rules_are_minimal(self):
        """Each rule that grants something is needed by at least one of set,
        erase, get and watch."""
        rules = WRITER_RULES.split()
        for i, rule in enumerate(rules):
            if rule in ("resetchannels", "-@all"):
                continue
            with self.subTest(without=rule):
                self.assertNotEqual(self.run_as_writer(" ".join(rules[:i] + rules[i + 1:])), [])

    def test_edge_rules(self):
        """The rules for the edge's user allow what the edge sends, and no
        write (checked with redis-cli here; the module's suites check the
        edge itself)."""
        def as_edge(*args):
            return self.redis.cli(*args, user="edge", password="edge-pw")
        self.redis.cli("HSET", "consent:{edge-1}", "v", "1", "ads", "1")
        self.assertEqual(as_edge("PING"), ["PONG"])
        self.assertEqual(as_edge("SELECT", "0"), ["OK"])
        self.assertEqual(as_edge("HGETALL", "consent:{edge-1}"), ["v", "1", "ads", "1"])
        self.assertEqual(as_edge("PUBLISH", "consent:updates:hb:1234", "hb"), ["0"])
        sub = subprocess.Popen(self.redis.cli_cmd("SUBSCRIBE", CHANNEL, "consent:updates:hb:1234",
                                                  user="edge", password="edge-pw"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _PROCS.append(sub)
        self.addCleanup(self._stop_proc, sub)
        self.wait_subscribed(self.redis, "consent:updates:hb:1234", 1, sub)
        self.assertEqual(self.redis.numsub(CHANNEL), 1)
        for denied in (("HSET", "consent:{edge-1}", "ads", "0"), ("HGETALL", "other:{edge-1}"),
                       ("EVAL", "return 1", "0"), ("PUBLISH", "consent:other", "x")):
            with self.subTest(denied=denied[0]):
                self.assertTrue(as_edge(*denied)[0].startswith("NOPERM"), denied)
        # A limit of Redis ACLs, for the docs: a channel the user may
        # subscribe to is one it may publish on. The edge's user can send
        # '*' (every edge drops its cache), though not change a record.
        self.assertEqual(as_edge("PUBLISH", CHANNEL, "*"), ["1"])

    def test_tls_and_acl_together(self):
        """A managed Redis: TLS with a verified certificate, and an ACL user."""
        pki = Pki(self.tmp)
        server = RedisServer(tls=pki.redis_tls(), acl=["user writer on >writer-pw " + WRITER_RULES]).start()
        self.addCleanup(server.cleanup)
        args = ("--tls", "--cacert", pki.ca.cert, "--user", "writer")
        env = {"REDISCLI_AUTH": "writer-pw"}
        _, lines = self.start_watch(*args, server=server, env=env)
        self.assertEqual(self.ctl("set", *args, "both-1", "ads=1", server=server, env=env).stdout, "v=1\n")
        self.assertEqual(lines.next(), "both-1 1")
        self.assertEqual(self.get("both-1", *args, server=server, env=env), {"ads": 1, "v": 1})
        r = self.ctl("get", *args, "both-1", server=server, env={"REDISCLI_AUTH": "wrong"}, rc=1)
        self.assertIn("WRONGPASS", r.stderr)


class RedisOptionUsage(CtlHelpers, unittest.TestCase):
    """The connection options' usage errors: exit 2, one line, nothing sent."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="consentctl-usage-")
        cls.pki = Pki(cls.tmp)
        cls.redis = RedisServer(tls=cls.pki.redis_tls()).start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_usage_errors_exit_2(self):
        ca, cert, key = self.pki.ca.cert, self.pki.client.cert, self.pki.client.key
        cases = [
            (("--tls=yes",), "--tls takes no value"),
            (("--tls=",), "--tls takes no value"),
            (("--tls", "--insecure=1"), "--insecure takes no value"),
            (("--tls", "--tls"), "--tls given more than once"),
            (("--tls", "--insecure", "--insecure"), "--insecure given more than once"),
            (("--tls", "--cacert", ca, "--cert", cert), "--cert and --key go together"),
            (("--tls", "--cacert", ca, "--key", key), "--cert and --key go together"),
            (("--cacert", ca), "--cacert needs --tls"),
            (("--cert", cert, "--key", key), "--cert needs --tls"),
            (("--sni", "localhost"), "--sni needs --tls"),
            (("--insecure",), "--insecure needs --tls"),
            (("--tls", "--sni", ""), "--sni must not be empty"),
            (("--tls", "--cacert", ""), "--cacert must not be empty"),
            (("--tls", "--cacert", ca, "--cacert", ca), "--cacert given more than once"),
            (("--user", "writer"), "--user needs a password: give --password or set REDISCLI_AUTH"),
            (("--user", "", "--password", "x"), "--user must not be empty"),
            (("--tls", "--cacert"), "--cacert needs a value"),
        ]
        for cmd in (("set", "u-1", "ads=1"), ("get", "u-1"), ("erase", "u-1"), ("watch",)):
            for opts, message in cases:
                with self.subTest(cmd=cmd[0], opts=opts):
                    # options last, so that one needing a value finds none
                    r = self.ctl(*cmd, *opts, rc=2)
                    self.assertIn(message, r.stderr)
        r = run_ctl("get", "--redis", "unix:/tmp/redis.sock", "--tls", "x")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--tls takes a HOST:PORT address", r.stderr)
        # the token commands have no Redis options
        r = run_ctl("keygen", "--tls")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("unknown option --tls", r.stderr)
        self.assertEqual(self.redis.hgetall("consent:{u-1}"), {})

    def test_help_lists_the_options(self):
        for cmd in ("set", "get", "erase", "watch"):
            r = run_ctl(cmd, "--help")
            self.assertEqual(r.returncode, 0)
            for opt in ("--user NAME", "--password SECRET", "REDISCLI_AUTH", "--tls ", "--cacert FILE",
                        "--cert FILE", "--key FILE", "--sni NAME", "--insecure"):
                self.assertIn(opt, r.stdout, cmd)


def main():
    signal.signal(signal.SIGTERM, _on_sigterm)
    global CONSENTCTL
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--consentctl", default=CONSENTCTL)
    ns, rest = p.parse_known_args(sys.argv[1:])
    CONSENTCTL = harness.CONSENTCTL = os.path.abspath(ns.consentctl)
    # Tests choose the password: one from the caller's environment would
    # authenticate where a test expects NOAUTH.
    os.environ.pop("REDISCLI_AUTH", None)
    for tool in (harness.REDIS_SERVER, harness.REDIS_CLI, harness.OPENSSL, CONSENTCTL):
        if not os.access(tool, os.X_OK):
            sys.exit("missing %s" % tool)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
