"""End-to-end harness: the packaged nginx with the consent module, an echo
upstream that reports exactly what it received, keys, tokens and a raw
HTTP/1.1 client.

Python 3 standard library only, except py_mint() (PyNaCl and
python3-cryptography, imported lazily) which builds tokens with chosen
issued_at/expires_at (expired or future-dated ones consentctl cannot mint).

Every test program takes `--module PATH --consentctl PATH` (parse_args()).

Sanitizer and valgrind legs (./dev test --asan / --valgrind, docs/testing.md)
steer how nginx is started through the environment; see "sanitizers and
valgrind" below (CONSENT_E2E_NGINX_ENV, CONSENT_E2E_NGINX_WRAPPER,
CONSENT_E2E_SLOWDOWN). Unset, nginx runs exactly as before.
"""
import argparse
import atexit
import base64
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# CONSENT_E2E_NGINX_BIN: another nginx binary to run (e.g. nginx 1.26 built
# from source by tests/compat/nginx126_e2e.sh); the module must be built
# against the same configured nginx tree. Unset: Debian's packaged nginx.
NGINX = os.environ.get("CONSENT_E2E_NGINX_BIN") or "/usr/sbin/nginx"
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))

# Filled by parse_args(); defaults point at the usual build directory so a
# test file can also be run by hand.
MODULE = os.path.join(_ROOT, "build", "ngx_http_consent_module.so")
CONSENTCTL = os.path.join(_ROOT, "build", "consentctl")


_LIVE = set()  # Nginx objects not cleaned up yet


def _cleanup_all():
    for n in list(_LIVE):
        try:
            n.cleanup()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt  # unittest lets it through; atexit stops every nginx


atexit.register(_cleanup_all)


def parse_args(argv=None):
    """Takes --module and --consentctl out of argv; returns the argv left for
    unittest.main(). Also makes SIGTERM (ctest's timeout) stop every nginx."""
    global MODULE, CONSENTCTL
    signal.signal(signal.SIGTERM, _on_sigterm)
    argv = list(sys.argv if argv is None else argv)
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--module", default=MODULE)
    p.add_argument("--consentctl", default=CONSENTCTL)
    ns, rest = p.parse_known_args(argv[1:])
    MODULE = os.path.abspath(ns.module)
    CONSENTCTL = os.path.abspath(ns.consentctl)
    return [argv[0]] + rest


# --------------------------------------------------------------------------
# sanitizers and valgrind
#
# CONSENT_E2E_NGINX_ENV      NAME=VALUE words added to the environment of
#                            every nginx the harness runs (nginx -t too), e.g.
#                            LD_PRELOAD=/usr/lib/gcc/x86_64-linux-gnu/12/libasan.so
#                            ASAN_OPTIONS=detect_leaks=0:log_path={dir}/reports/asan
#                            (the packaged nginx is not instrumented, so the
#                            ASan runtime must be preloaded for it to load an
#                            instrumented module).
# CONSENT_E2E_NGINX_WRAPPER  a command line nginx runs under, e.g.
#                            valgrind --tool=memcheck --log-file={dir}/reports/valgrind.%p ...
# CONSENT_E2E_SLOWDOWN       factor for every time bound of the harness and the
#                            tests (slow(), default 1): nginx under valgrind
#                            is many times slower.
#
# ASan reads ASAN_OPTIONS when the preloaded runtime starts. UBSan (libubsan,
# loaded with the module) reads UBSAN_OPTIONS from /proc/self/environ only at
# its first report, and nginx's process titles have overwritten that by then
# (`env` directives do not help): a UBSan report from a running nginx goes
# to stderr, which nginx sends to error.log, without a stack trace, and the
# worker exits with code 1. error.log is therefore checked as well.
#
# "{dir}" stands for the directory of the nginx instance. Whatever lands in
# {dir}/reports/ is checked when the instance is cleaned up (check_reports()):
# any ASan/UBSan log there, a valgrind log whose ERROR SUMMARY is not 0 (or
# that has no summary), or a sanitizer report in error.log (nginx sends
# stderr there) fails the test or class that owned the instance.

SLOWDOWN = max(1.0, float(os.environ.get("CONSENT_E2E_SLOWDOWN") or 1))
_NGINX_ENV = os.environ.get("CONSENT_E2E_NGINX_ENV", "").split()
_NGINX_WRAPPER = os.environ.get("CONSENT_E2E_NGINX_WRAPPER", "").split()
# Lines that only a sanitizer writes.
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:", "ERROR: Sanitizer")


def slow(seconds):
    """A time bound in seconds, scaled by CONSENT_E2E_SLOWDOWN."""
    return seconds * SLOWDOWN


def slow_ms(ms):
    """A duration for nginx.conf ("100ms"), scaled by CONSENT_E2E_SLOWDOWN, so
    that the module's own timeouts keep their ratio to the tests' bounds."""
    return "%dms" % round(ms * SLOWDOWN)


def under_wrapper():
    """True when nginx runs under CONSENT_E2E_NGINX_WRAPPER (valgrind)."""
    return bool(_NGINX_WRAPPER)


def nginx_env(directory):
    """os.environ plus CONSENT_E2E_NGINX_ENV ({dir} -> directory)."""
    env = dict(os.environ)
    for word in _NGINX_ENV:
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise SystemExit("CONSENT_E2E_NGINX_ENV: %r is not NAME=VALUE" % word)
        env[name] = value.replace("{dir}", directory)
    return env


def nginx_argv(directory, args):
    """[wrapper..., nginx, args...] ({dir} -> directory)."""
    wrapper = [w.replace("{dir}", directory) for w in _NGINX_WRAPPER]
    return wrapper + [NGINX] + list(args)


# Headings of memcheck's error reports (a log may be read while the process
# still runs, before its ERROR SUMMARY).
_VALGRIND_ERRORS = re.compile(
    r"^==\d+== (Invalid (read|write|free)|Mismatched free|Conditional jump|"
    r"Use of uninitialised|Syscall param|Source and destination overlap|"
    r".* bytes in .* are definitely lost|Process terminating)", re.M)


def _valgrind_verdict(text, final):
    """None when a valgrind log is clean, else why it is not. final: the
    process has exited, so the log must end in an ERROR SUMMARY of 0."""
    if _VALGRIND_ERRORS.search(text):
        return "memcheck error: " + _VALGRIND_ERRORS.search(text).group(1)
    if not final:
        return None
    m = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
    if not m:
        return "no ERROR SUMMARY (the process did not exit normally)"
    if int(m[-1]) != 0:
        return "ERROR SUMMARY: %s errors" % m[-1]
    return None


def check_reports(directory, error_log_text="", final=True, killed=()):
    """[(name, reason, text)] for every sanitizer or valgrind finding of the
    nginx instance in directory: files in directory/reports and sanitizer
    lines in its error.log. final=False while nginx still runs (valgrind logs
    have no summary yet). killed: pids a test SIGKILLed on purpose
    (Nginx.kill_worker); valgrind cannot end their logs with a summary, so
    those are read like the log of a live process (any error heading in
    them still counts)."""
    found = []
    killed_logs = set("valgrind.%d" % pid for pid in killed)
    rdir = os.path.join(directory, "reports")
    names = sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []
    for name in names:
        p = os.path.join(rdir, name)
        try:
            with open(p, "rb") as f:
                text = f.read().decode("latin-1")
        except OSError:
            continue
        if name.startswith("valgrind"):
            why = _valgrind_verdict(text, final and name not in killed_logs)
            if why:
                found.append((name, why, text))
        elif text.strip():
            found.append((name, "sanitizer report", text))
    bad = [l for l in error_log_text.splitlines() if any(m in l for m in SANITIZER_MARKS)]
    if bad:
        found.append(("error.log", "sanitizer lines in error.log", "\n".join(bad[:40])))
    return found


def _keep_reports(directory, found):
    """Copies the instance's reports to CONSENT_E2E_REPORT_DIR (if set), so
    they outlive the instance's temp directory. The new path, or None."""
    dest_root = os.environ.get("CONSENT_E2E_REPORT_DIR")
    if not dest_root:
        return None
    dest = os.path.join(dest_root, os.path.basename(directory.rstrip("/")))
    os.makedirs(dest, exist_ok=True)
    rdir = os.path.join(directory, "reports")
    if os.path.isdir(rdir):
        for name in os.listdir(rdir):
            shutil.copy(os.path.join(rdir, name), dest)
    for name in ("error.log", "nginx.conf"):
        if os.path.exists(os.path.join(directory, name)):
            shutil.copy(os.path.join(directory, name), dest)
    return dest


def reports_failure(directory, found):
    """The AssertionError text for check_reports() findings."""
    kept = _keep_reports(directory, found)
    parts = ["%d sanitizer/valgrind finding(s) for nginx in %s%s:"
             % (len(found), directory, (" (copied to %s)" % kept) if kept else "")]
    for name, why, text in found:
        parts.append("--- %s: %s\n%s" % (name, why, text[-6000:]))
    return "\n".join(parts)


# --------------------------------------------------------------------------
# ports

def free_port(host="127.0.0.1"):
    """A TCP port on host (an IPv4 or IPv6 address) that nobody listens on
    right now."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# echo upstream

class _EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo"
    sys_version = ""

    def log_message(self, *args):  # quiet
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length > 0 else b""
        record = {
            "request_line": self.requestline,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body_in.decode("latin-1"),
        }
        self.server.echo.record(record)
        body = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for v in self.headers.get_all("X-Test-Set-Cookie") or []:
            for part in v.split("|"):
                self.send_header("Set-Cookie", part)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _answer


class _EchoServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128   # nginx may open many connections at once
    daemon_threads = True


class EchoUpstream:
    """A threaded HTTP server on 127.0.0.1 answering every request with 200 and
    {"request_line": ..., "headers": [[name, value], ...], "body": ...}."""

    def __init__(self):
        self.port = None
        self.count = 0
        self.requests = []
        self._lock = threading.Lock()
        self._srv = None
        self._thread = None

    def record(self, rec):
        with self._lock:
            self.count += 1
            self.requests.append(rec)
            if len(self.requests) > 1000:
                del self.requests[:500]

    def start(self):
        self._srv = _EchoServer(("127.0.0.1", 0), _EchoHandler)
        self._srv.echo = self
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# nginx

def _children(ppid):
    """(pid, cmdline) of the live processes whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            # pid (comm) state ppid ...
            rest = stat[stat.rindex(")") + 2:].split()
            if rest[0] == "Z" or int(rest[1]) != ppid:
                continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("latin-1").strip()
            out.append((int(d), cmd))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2:].split()[0] != "Z"
    except (OSError, ValueError, IndexError):
        return False


class Nginx:
    """One nginx master (daemon mode) in its own temp directory.

    http_text and servers are inserted verbatim into the http block; they may
    use the paths from self.path(...) and the port self.port."""

    def __init__(self, workers=2, error_log_level="info", module=None):
        self.dir = tempfile.mkdtemp(prefix="consent-e2e-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.workers = workers
        self.error_log_level = error_log_level
        self.module = module or MODULE
        self.master_pid = None
        self._known_pids = set()
        self._retired = set()   # workers told to go by a reload
        self._killed = set()    # workers SIGKILLed on purpose (kill_worker)
        self.conf = self.path("nginx.conf")
        # where sanitizer (log_path) and valgrind (--log-file) reports go
        os.mkdir(self.path("reports"))
        os.chmod(self.path("reports"), 0o1777)  # whatever user the workers run as
        _LIVE.add(self)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # -- files --------------------------------------------------------------
    def write_file(self, name, text, mode=0o600):
        p = self.path(name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def write_config(self, http_text="", servers="", main_text=""):
        d = self.dir
        user = "user root root;\n" if os.geteuid() == 0 else ""
        text = (
            "load_module %s;\n" % self.module
            + user
            + "worker_processes %d;\n" % self.workers
            + "pid %s/nginx.pid;\n" % d
            + "error_log %s/error.log %s;\n" % (d, self.error_log_level)
            + main_text
            + "events { worker_connections 512; }\n"
            + "http {\n"
            + ("" if "access_log" in http_text else "    access_log off;\n")
            + "    client_body_temp_path %s/client_body;\n" % d
            + "    proxy_temp_path %s/proxy;\n" % d
            + "    fastcgi_temp_path %s/fastcgi;\n" % d
            + "    uwsgi_temp_path %s/uwsgi;\n" % d
            + "    scgi_temp_path %s/scgi;\n" % d
            + http_text + "\n"
            + servers + "\n"
            + "}\n")
        with open(self.conf, "w") as f:
            f.write(text)
        return text

    def config_text(self):
        with open(self.conf) as f:
            return f.read()

    # -- lifecycle ----------------------------------------------------------
    def _cmd(self, *extra):
        return nginx_argv(self.dir, ["-p", self.dir + "/", "-e", self.path("error.log"),
                                     "-c", self.conf, *extra])

    def test_config(self):
        """`nginx -t`: (returncode, combined output)."""
        p = subprocess.run(self._cmd("-t"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=slow(60),
                           env=nginx_env(self.dir))
        return p.returncode, p.stdout.decode("latin-1")

    def start(self, timeout=10.0):
        timeout = slow(timeout)
        p = subprocess.run(self._cmd(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=slow(60),
                           env=nginx_env(self.dir))
        out = p.stdout.decode("latin-1")
        if p.returncode != 0:
            raise RuntimeError("nginx failed to start (rc=%d):\n%s\n%s"
                               % (p.returncode, out, self.error_log()[-3000:]))
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(self.path("nginx.pid")) as f:
                    self.master_pid = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        if self.master_pid is None:
            raise RuntimeError("nginx wrote no pid file:\n" + out)
        self._known_pids.add(self.master_pid)
        if not wait_port(self.port, timeout):
            raise RuntimeError("nginx does not answer on port %d:\n%s"
                               % (self.port, self.error_log()[-3000:]))
        self._wait_workers(set(), timeout)
        return self

    def worker_pids(self):
        if self.master_pid is None:
            return []
        if under_wrapper():
            # Under valgrind /proc/PID/cmdline shows valgrind's command line,
            # not nginx's process titles: every child of the master that no
            # reload retired is a worker (the harness configures no cache
            # manager or loader).
            pids = [pid for pid, _ in _children(self.master_pid)
                    if pid not in self._retired]
        else:
            pids = [pid for pid, cmd in _children(self.master_pid)
                    if "worker process" in cmd and "shutting down" not in cmd]
        self._known_pids.update(pids)
        return pids

    def _wait_workers(self, old, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            new = [p for p in self.worker_pids() if p not in old]
            if len(new) >= self.workers:
                return True
            time.sleep(0.05)
        return False

    def reload(self, timeout=10.0):
        """SIGHUP; True once a full set of new workers runs (False when the
        reload did not take, e.g. a bad configuration)."""
        timeout = slow(timeout)
        old = set(self.worker_pids())
        self._retired |= old
        os.kill(self.master_pid, signal.SIGHUP)
        if self._wait_workers(old, timeout):
            return True
        self._retired -= old  # the reload did not take: they still serve
        return False

    def reload_settled(self, timeout=15.0):
        """A reload, then until the old workers are gone: until they have
        closed their listening sockets, they may still take a connection.
        False when the reload did not take."""
        old = set(self.worker_pids())
        if not self.reload():
            return False
        deadline = time.time() + slow(timeout)
        while any(_alive(pid) for pid in old) and time.time() < deadline:
            time.sleep(0.02)
        return True

    def kill_worker(self, pid, sig=signal.SIGKILL):
        """Kills one worker on purpose (a fault test). Under valgrind a
        SIGKILLed process leaves a log without an ERROR SUMMARY; cleanup()
        accepts that for the pids killed here, and only for them."""
        self._killed.add(pid)
        os.kill(pid, sig)

    def wait_respawned(self, victim, workers, timeout=5.0):
        """Until the master has replaced the worker `victim` that a test
        killed and runs `workers` again; False if not within timeout
        (scaled by slow())."""
        deadline = time.monotonic() + slow(timeout)
        while time.monotonic() < deadline:
            now = self.worker_pids()
            if victim not in now and len(now) == workers:
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout=15.0):
        """SIGQUIT (graceful), wait for the master to exit; SIGKILL the
        processes this object started if it does not."""
        if self.master_pid is None:
            return
        timeout = slow(timeout)
        pid = self.master_pid
        self.worker_pids()
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while time.time() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            for p in sorted(self._known_pids):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # workers (even orphaned ones) of this instance
        deadline = time.time() + slow(5)
        while time.time() < deadline and any(_alive(p) for p in self._known_pids):
            time.sleep(0.05)
        for p in self._known_pids:
            if _alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.master_pid = None

    def cleanup(self):
        """Stops nginx and removes its directory; raises AssertionError (the
        test or class that owns the instance fails) when a sanitizer or
        valgrind reported anything. The directory is then kept."""
        _LIVE.discard(self)
        found = []
        try:
            self.stop()
        finally:
            found = check_reports(self.dir, self.error_log(), killed=self._killed)
            if os.environ.get("E2E_KEEP") or found:
                sys.stderr.write("E2E_KEEP: kept %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        if found:
            raise AssertionError(reports_failure(self.dir, found))

    def findings(self):
        """Sanitizer/valgrind findings so far (nginx may still run)."""
        return check_reports(self.dir, self.error_log(), final=False)

    def error_log(self):
        try:
            with open(self.path("error.log"), "rb") as f:
                return f.read().decode("latin-1")
        except OSError:
            return ""

    def crash_lines(self):
        """error.log lines that show a crash or an alert (a worker that exited
        with a non-zero code, e.g. killed by a sanitizer report, included),
        and a line per sanitizer or valgrind report so far. The master's
        line about a worker that kill_worker() SIGKILLed is not one."""
        def expected(line):
            m = re.search(r"worker process (\d+) exited on signal 9$", line)
            return m is not None and int(m.group(1)) in self._killed
        lines = [l for l in self.error_log().splitlines()
                 if ("[alert]" in l or re.search(r"exited on signal|signal \d+ \(SIG(SEGV|ABRT|BUS|FPE|ILL)"
                                                 r"|exited with code [1-9]", l))
                 and not expected(l)]
        return lines + ["%s: %s" % (name, why) for name, why, _ in self.findings()]

    # -- requests -----------------------------------------------------------
    def request(self, method, target, headers=(), body=None, **kw):
        return http_request(self.port, method, target, headers, body, **kw)

    def get(self, target, headers=(), **kw):
        return http_request(self.port, "GET", target, headers, None, **kw)


# --------------------------------------------------------------------------
# keys and tokens

def run_ctl(*args, timeout=15, env=None):
    """consentctl ARGS, text in and out; env: variables to set (None values:
    to unset). The result's .took is the run time in seconds."""
    full = None
    if env is not None:
        full = dict(os.environ)
        for k, v in env.items():
            if v is None:
                full.pop(k, None)
            else:
                full[k] = v
    t0 = time.monotonic()
    r = subprocess.run([CONSENTCTL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=full)
    r.took = time.monotonic() - t0
    return r


def assert_ctl_exit(tc, r, rc, what=""):
    """consentctl's convention: exit status rc; on success nothing on
    stderr, on failure nothing on stdout and one line on stderr."""
    tc.assertEqual(r.returncode, rc, "consentctl %s: stdout %r stderr %r" % (what, r.stdout, r.stderr))
    if rc == 0:
        tc.assertEqual(r.stderr, "")
    else:
        tc.assertEqual(r.stdout, "")
        tc.assertEqual(r.stderr.count("\n"), 1, "one line on stderr: %r" % r.stderr)
        tc.assertTrue(r.stderr.startswith("consentctl "), r.stderr)


def run_consentctl(*args, check=True):
    p = subprocess.run([CONSENTCTL, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    out, err = p.stdout.decode(), p.stderr.decode()
    if check and p.returncode != 0:
        raise RuntimeError("consentctl %s: rc=%d %s" % (" ".join(args), p.returncode, err))
    return p.returncode, out, err


def _write_secret(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(line.strip() + "\n")
    os.chmod(path, 0o600)
    return path


def keygen(path, suite="xchacha20poly1305"):
    """A token key file (mode 0600) from `consentctl keygen`."""
    _, out, _ = run_consentctl("keygen", "--suite", suite)
    return _write_secret(path, out)


def pseudonym_keygen(path):
    """A pseudonym key file (mode 0600) from `consentctl pseudonym-keygen`."""
    _, out, _ = run_consentctl("pseudonym-keygen")
    return _write_secret(path, out)


def mint(key, kid, subject, kind="purl", campaign=None, ttl=None):
    args = ["mint", "--key", key, "--kid", str(kid), "--kind", kind, "--subject", subject]
    if campaign is not None:
        args += ["--campaign", campaign]
    if ttl is not None:
        args += ["--ttl", ttl]
    _, out, _ = run_consentctl(*args)
    return out.strip()


def inspect(token, *keys):
    """consentctl inspect --key ID=FILE ...; returns (rc, parsed JSON or None)."""
    args = ["inspect"]
    for kid, path in keys:
        args += ["--key", "%d=%s" % (kid, path)]
    rc, out, _ = run_consentctl(*(args + [token]), check=False)
    try:
        return rc, json.loads(out)
    except ValueError:
        return rc, None


def read_key_file(path):
    with open(path) as f:
        suite, hexkey = f.read().split()
    return suite, bytes.fromhex(hexkey)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def py_mint(key_path, kid, subject, kind="purl", campaign="", issued_at=None,
            expires_at=None, suite=None):
    """A token built here (independent of consentctl), with any timestamps.
    suite overrides the header's suite byte (the key bytes stay those of the
    file) to make a suite-mismatch token."""
    fsuite, key = read_key_file(key_path)
    suite = suite or fsuite
    now = int(time.time())
    iat = now if issued_at is None else issued_at
    exp = now + 3600 if expires_at is None else expires_at
    sid, nlen = {"xchacha20poly1305": (1, 24), "aes256gcm": (2, 12)}[suite]
    header = bytes([1, {"purl": 1, "uid": 2}[kind], sid]) + struct.pack(">H", kid)
    nonce = secrets.token_bytes(nlen)
    s, c = subject.encode("ascii"), campaign.encode("ascii")
    pt = struct.pack(">QQ", iat, exp) + bytes([len(s)]) + s + bytes([len(c)]) + c
    if suite == "xchacha20poly1305":
        from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt
        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(pt, header, nonce, key)
    else:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        ct = AESGCM(key).encrypt(nonce, pt, header)
    return b64u(header + nonce + ct)


def pseudonym(subject, pseudonym_key_hex):
    return hashlib.blake2b(subject.encode(), digest_size=16,
                           key=bytes.fromhex(pseudonym_key_hex)).hexdigest()


def pseudonym_from_file(subject, path):
    with open(path) as f:
        return pseudonym(subject, f.read().strip())


# --------------------------------------------------------------------------
# raw HTTP/1.1 client

class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)] in order
        self.body = body
        self.raw_head = raw_head

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name):
        vs = self.header_all(name)
        return vs[0] if vs else None

    def set_cookies(self):
        return self.header_all("Set-Cookie")

    def json(self):
        return json.loads(self.body.decode("latin-1"))

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.raw_head[:2000])


def _read_chunked(buf):
    out = b""
    while True:
        i = buf.index(b"\r\n")
        size = int(buf[:i].split(b";")[0], 16)
        buf = buf[i + 2:]
        if size == 0:
            return out
        out += buf[:size]
        buf = buf[size + 2:]


def http_request(port, method, target, headers=(), body=None, host="localhost",
                 timeout=15.0, raw=None):
    """Sends one request on a fresh connection (Connection: close) exactly as
    given: `target` and every header (duplicates included) go out byte for
    byte. `raw` sends those bytes instead of building a request. timeout is
    scaled by slow()."""
    timeout = slow(timeout)
    if isinstance(target, str):
        target = target.encode("latin-1")
    if raw is None:
        lines = [method.encode() + b" " + target + b" HTTP/1.1"]
        names = [k.lower() for k, _ in headers]
        if "host" not in names:
            lines.append(b"Host: " + host.encode())
        for k, v in headers:
            k = k.encode("latin-1") if isinstance(k, str) else k
            v = v.encode("latin-1") if isinstance(v, str) else v
            lines.append(k + b": " + v)
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            if "content-length" not in names:
                lines.append(b"Content-Length: " + str(len(body)).encode())
        if "connection" not in names:
            lines.append(b"Connection: close")
        raw = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                if data:
                    break
                raise
            if not chunk:
                break
            data += chunk
    if b"\r\n\r\n" not in data:
        raise ConnectionError("incomplete response: %r" % data[:500])
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    hdrs = []
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs.append((k.strip(), v.strip()))
    te = [v.lower() for k, v in hdrs if k.lower() == "transfer-encoding"]
    if method != "HEAD" and te and "chunked" in te[0]:
        rest = _read_chunked(rest)
    return Response(status, reason, hdrs, rest, head.decode("latin-1"))


# --------------------------------------------------------------------------
# the upstream's view of a proxied request

class Seen:
    """What the echo upstream reported for one proxied request."""

    def __init__(self, resp):
        if resp.status != 200:
            raise AssertionError("expected 200 from the upstream, got %r\n%r"
                                 % (resp, resp.body[:500]))
        try:
            self.js = resp.json()
        except ValueError:
            raise AssertionError("response is not the echo upstream's JSON: %r %r"
                                 % (resp, resp.body[:500]))
        self.resp = resp
        self.request_line = self.js["request_line"]
        self.method, self.target, self.version = self.request_line.split(" ")
        self.headers = [tuple(h) for h in self.js["headers"]]

    def all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def one(self, name):
        """The single value of a header, None when absent; fails when repeated."""
        vs = self.all(name)
        if len(vs) > 1:
            raise AssertionError("header %s repeated: %r" % (name, vs))
        return vs[0] if vs else None

    @property
    def cookies(self):
        return self.all("Cookie")

    def __repr__(self):
        return "<Seen %r %r>" % (self.request_line, self.headers)


def parse_prometheus(text):
    """{'name{labels}': value} for every sample, and the sets of names with
    # HELP and # TYPE lines."""
    samples, helps, types = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            f = line.split()
            types[f[2]] = f[3] if len(f) > 3 else ""
        elif line.strip() and not line.startswith("#"):
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if m:
                name = m.group(1)
                labels = m.group(2) or ""
                if labels:
                    pairs = sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
                    labels = "{" + ",".join('%s="%s"' % p for p in pairs) + "}"
                samples[name + labels] = float(m.group(3))
    return samples, helps, types


def metric(samples, name, **labels):
    """The sum of every series of `name` whose labels include `labels`:
    consent_redis_* counters carry a server label (one series per Redis
    server), which a test that does not name the server adds up."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if all(have.get(k) == str(v) for k, v in labels.items()):
            total += value
    return total


def has_metric(samples, name, **labels):
    """A series of `name` with (at least) these labels is exposed."""
    for key in samples:
        base, _, rest = key.partition("{")
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if base == name and all(have.get(k) == str(v) for k, v in labels.items()):
            return True
    return False


def series(name, **labels):
    """Canonical key of one series for parse_prometheus's samples."""
    if not labels:
        return name
    return name + "{" + ",".join('%s="%s"' % (k, labels[k]) for k in sorted(labels)) + "}"


# --------------------------------------------------------------------------
# a private redis-server

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

_LIVE_REDIS = set()  # RedisServer objects not cleaned up yet


def _cleanup_redis():
    for r in list(_LIVE_REDIS):
        try:
            r.cleanup()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_cleanup_redis)


def _verifies(cert, ca):
    """Whether `openssl verify` accepts cert against ca (chain and dates)."""
    r = subprocess.run([OPENSSL, "verify", "-CAfile", ca, cert], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0


class RedisServer:
    """A private redis-server (no persistence) in its own temp directory.
    kill() and start() again keep the same port, socket path and settings.

    password    AUTH password of the `default` user (requirepass; with acl=,
                the default user's password in the ACL file instead, since
                redis-server ignores requirepass when it has an ACL file)
    unixsocket  also listen on DIR/redis.sock (mode 777)
    port        the port (default: a free one)
    host        the loopback address to bind (default 127.0.0.1; e.g.
                127.0.0.2, or ::1). `address` and redis-cli use it.
    tls         serve TLS only, on `port` (--tls-port PORT --port 0): a dict
                  cert, key     the server's certificate and key (PEM)
                  ca            CA file: verifies clients' certificates, and
                                is what the harness's redis-cli trusts
                  auth_clients  "no" (default), "yes" or "optional"
                  client_cert, client_key   what the harness's redis-cli
                                presents (needed with auth_clients yes)
                pki.Pki.redis_tls() makes one. The harness's redis-cli skips
                verification (--insecure) only when `cert` does not verify
                against `ca` (an expired certificate, one of another CA); it
                never checks the name, so any certificate works for it.
    acl         ACL file lines, e.g. ["user edge on >pw ~consent:* &consent:updates
                -@all +hgetall"], written to DIR/users.acl (--aclfile).
                Unless a line defines `default`, the file gets
                "user default on nopass|>PASSWORD ~* &* +@all" so that cli()
                stays an administrator. cli(user=..., password=...) runs as
                another user.
    config      configuration file lines, written to DIR/redis.conf and
                given as redis-server's first argument (the command-line
                settings above still apply on top). A Sentinel needs one:
                it records what it learns there (CONFIG REWRITE).
    sentinel    run as a Sentinel (`redis-server FILE --sentinel`); config
                holds its `sentinel monitor ...` lines.
    args        more command-line arguments, e.g. ["--replicaof",
                "127.0.0.1", "6379"]; they come last.
    name        what log() and messages call it (default: redis PORT).
    topology.py builds primaries, replicas and Sentinels from these.
    """

    def __init__(self, password=None, unixsocket=False, port=None, host="127.0.0.1", tls=None, acl=None,
                 config=None, sentinel=False, args=None, name=None):
        self.dir = tempfile.mkdtemp(prefix="consent-redis-")
        os.chmod(self.dir, 0o755)
        self.host = host
        self.port = port or free_port(host)
        self.password = password
        self.unixsocket = os.path.join(self.dir, "redis.sock") if unixsocket else None
        self.tls = dict(tls) if tls else None
        if self.tls:
            self.tls.setdefault("auth_clients", "no")
            self._cli_insecure = not _verifies(self.tls["cert"], self.tls["ca"])
        self.aclfile = None
        if acl is not None:
            lines = list(acl)
            if not any(l.split()[:2] == ["user", "default"] for l in lines):
                pw = (">" + password) if password else "nopass"
                lines.insert(0, "user default on %s ~* &* +@all" % pw)
            self.aclfile = os.path.join(self.dir, "users.acl")
            with open(self.aclfile, "w") as f:
                f.write("\n".join(lines) + "\n")
        self.sentinel = sentinel
        self.conffile = None
        if config is not None or sentinel:
            self.conffile = os.path.join(self.dir, "sentinel.conf" if sentinel else "redis.conf")
            with open(self.conffile, "w") as f:
                f.write("".join(line + "\n" for line in (config or [])))
        self.args = [str(a) for a in (args or [])]
        self.name = name or ("%s %d" % ("sentinel" if sentinel else "redis", self.port))
        self.proc = None
        self.stopped = False  # SIGSTOP sent and no SIGCONT yet
        _LIVE_REDIS.add(self)

    @property
    def address(self):
        """The address for consent_redis / consentctl --redis (TCP; the TLS
        port when tls=)."""
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def log(self, limit=3000):
        """The end of the server's log (at most `limit` characters)."""
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-limit:]
        except OSError:
            return ""

    def start(self, timeout=10.0):
        cmd = [REDIS_SERVER]
        if self.conffile:
            # The file first: redis-server reads it, then applies the
            # command line on top.
            cmd += [self.conffile] + (["--sentinel"] if self.sentinel else [])
        cmd += ["--bind", self.host,
               "--save", "", "--appendonly", "no", "--dir", self.dir,
               "--logfile", os.path.join(self.dir, "redis.log")]
        if self.tls:
            cmd += ["--port", "0", "--tls-port", str(self.port),
                    "--tls-cert-file", self.tls["cert"], "--tls-key-file", self.tls["key"],
                    "--tls-ca-cert-file", self.tls["ca"], "--tls-auth-clients", self.tls["auth_clients"]]
        else:
            cmd += ["--port", str(self.port)]
        if self.aclfile:
            cmd += ["--aclfile", self.aclfile]
        elif self.password:
            cmd += ["--requirepass", self.password]
        if self.unixsocket:
            cmd += ["--unixsocket", self.unixsocket, "--unixsocketperm", "777"]
        cmd += self.args
        deadline = time.time() + timeout
        while True:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    if self.cli("PING", timeout=2) == ["PONG"]:
                        return self
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                time.sleep(0.02)
            if self.proc.poll() is None or time.time() >= deadline:
                self.kill()
                raise RuntimeError("%s did not start:\n%s" % (self.name, self.log()))
            time.sleep(0.1)  # exited (e.g. port briefly busy): try again

    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, and wait for the process to be gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.stopped = False

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = False

    def cleanup(self):
        _LIVE_REDIS.discard(self)
        try:
            self.sigcont()
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            if os.environ.get("E2E_KEEP"):
                sys.stderr.write("E2E_KEEP: kept %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def cli_cmd(self, *args, db=None, password=None, user=None):
        """The redis-cli command line for a command: over TLS when the server
        is, as the default user with the server's password, or as `user`
        with `password`."""
        cmd = [REDIS_CLI, "-h", self.host, "-p", str(self.port)]
        if self.tls:
            cmd += ["--tls", "--cacert", self.tls["ca"]]
            if self.tls.get("client_cert"):
                cmd += ["--cert", self.tls["client_cert"], "--key", self.tls["client_key"]]
            if self._cli_insecure:
                cmd += ["--insecure"]
        pw = self.password if password is None else password
        if user is not None:
            cmd += ["--user", user]
        if pw:
            cmd += ["-a", pw, "--no-auth-warning"]
        if db is not None:
            cmd += ["-n", str(db)]
        return cmd + [str(a) for a in args]

    def cli(self, *args, db=None, timeout=10, password=None, user=None):
        """redis-cli (raw output when not a tty); its output lines. An error
        reply comes back as a line starting with ERR / WRONGTYPE ..."""
        r = subprocess.run(self.cli_cmd(*args, db=db, password=password, user=user), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("redis-cli %s: rc=%d %s" % (args[:3], r.returncode,
                                                            r.stderr.decode("latin-1")))
        out = r.stdout.decode("latin-1")
        if out.endswith("\n"):
            out = out[:-1]
        return out.split("\n") if out else []

    def hgetall(self, key, db=None):
        """A hash as a dict of str (latin-1)."""
        lines = self.cli("HGETALL", key, db=db)
        return dict(zip(lines[0::2], lines[1::2]))

    def numsub(self, channel):
        """How many clients are subscribed to channel."""
        return int(self.cli("PUBSUB", "NUMSUB", channel)[1])

    def commandstats(self):
        """{'hgetall': calls, ...} from INFO commandstats."""
        stats = {}
        for line in self.cli("INFO", "commandstats"):
            m = re.match(r"^cmdstat_([^:]+):calls=(\d+)", line.strip())
            if m:
                stats[m.group(1)] = int(m.group(2))
        return stats

    def calls(self, command):
        return self.commandstats().get(command.lower(), 0)
