"""consentctl set/get/erase/watch against private redis-servers, and the Lua
write script published in docs/redis-schema.md run through redis-cli.

Python 3 standard library only. Usage:
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

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
SCHEMA_DOC = os.path.join(_ROOT, "docs", "redis-schema.md")
CONSENTCTL = os.path.join(_ROOT, "build", "consentctl")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
PASSWORD = "s3cret-pass"
CHANNEL = "consent:updates"

_PROCS = []  # processes this test started, stopped at exit


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


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class RedisServer:
    """A private redis-server on 127.0.0.1, no persistence."""

    def __init__(self, tmpdir, password=None):
        self.port = free_port()
        self.password = password
        self.dir = tempfile.mkdtemp(dir=tmpdir)
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")]
        if password:
            cmd += ["--requirepass", password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _PROCS.append(self.proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + self.log())
            r = subprocess.run(self.cli_cmd("PING"), capture_output=True, text=True)
            if r.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start: " + self.log())

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def cli_cmd(self, *args, db=None):
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port)]
        if self.password:
            cmd += ["-a", self.password, "--no-auth-warning"]
        if db is not None:
            cmd += ["-n", str(db)]
        return cmd + list(args)

    def cli(self, *args, db=None):
        """Runs redis-cli; returns its raw output lines."""
        r = subprocess.run(self.cli_cmd(*args, db=db), capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError("redis-cli %s: %s" % (args, r.stderr))
        out = r.stdout
        if out.endswith("\n"):
            out = out[:-1]
        return out.split("\n") if out else []

    def hgetall(self, key, db=None):
        lines = self.cli("HGETALL", key, db=db)
        return dict(zip(lines[0::2], lines[1::2]))

    def numsub(self, channel):
        lines = self.cli("PUBSUB", "NUMSUB", channel)
        return int(lines[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


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


def run_ctl(*args, timeout=15):
    return subprocess.run([CONSENTCTL] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


class ConsentctlRedis(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="consentctl-redis-")
        cls.redis = RedisServer(cls.tmp)
        cls.locked = RedisServer(cls.tmp, password=PASSWORD)

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.locked.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ---------------------------------------------------------------------

    def ctl(self, *args, rc=0, server=None):
        """Runs consentctl COMMAND --redis SERVER ARGS...; checks the exit status."""
        server = server or self.redis
        cmd, rest = args[0], args[1:]
        r = run_ctl(cmd, "--redis", server.address, *rest)
        self.assertEqual(r.returncode, rc, "consentctl %s: stdout %r stderr %r" % (args, r.stdout, r.stderr))
        if rc == 0:
            self.assertEqual(r.stderr, "")
        else:
            self.assertEqual(r.stdout, "")
            self.assertEqual(r.stderr.count("\n"), 1, "one line on stderr: %r" % r.stderr)
            self.assertTrue(r.stderr.startswith("consentctl "), r.stderr)
        return r

    def get(self, subject, *extra, server=None):
        out = self.ctl("get", *extra, subject, server=server).stdout
        self.assertTrue(out.endswith("\n") and out.count("\n") == 1, out)
        return json.loads(out)

    def start_watch(self, *extra, server=None):
        server = server or self.redis
        channel = CHANNEL
        if "--channel" in extra:
            channel = extra[extra.index("--channel") + 1]
        before = server.numsub(channel)
        p = subprocess.Popen([CONSENTCTL, "watch", "--redis", server.address] + list(extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        server = RedisServer(self.tmp)
        watch, lines = self.start_watch(server=server)
        server.stop()
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


def main():
    signal.signal(signal.SIGTERM, _on_sigterm)
    global CONSENTCTL
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--consentctl", default=CONSENTCTL)
    ns, rest = p.parse_known_args(sys.argv[1:])
    CONSENTCTL = os.path.abspath(ns.consentctl)
    for tool in (REDIS_SERVER, REDIS_CLI, CONSENTCTL):
        if not os.access(tool, os.X_OK):
            sys.exit("missing %s" % tool)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
