"""The processes a macro benchmark run starts, and their configurations:
nginx (the upstream, the baseline front B1, the fronts with the module),
Redis (plain, or over TLS for B7T), wrk, and B8's publisher and
publish-to-visible probe. We hold each one's pid and stop exactly it.
"""
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time

from update_latency import Resp, write_script
from benchlib import NGINX, WRK, fail
from benchlib.measurement import parse_wrk
from benchlib.scenarios import BASE_HEADERS, CHOICE_COOKIE, PURPOSES

# the fronts' consent_redis lookup timeout; B9a's p99 bound is this plus --p99-margin
REDIS_TIMEOUT_MS = 100


# ---------------------------------------------------------------------------
# processes

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Nginx:
    """An nginx we started, in the foreground (daemon off), so we hold its
    master's pid and stop exactly it."""

    def __init__(self, name, tmp, conf_text, port):
        self.name = name
        self.dir = os.path.join(tmp, name)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.port = port
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text.replace("@DIR@", self.dir))
        self.proc = None

    def start(self):
        t = subprocess.run([NGINX, "-t", "-q", "-p", self.dir + "/", "-c", self.conf],
                           capture_output=True, text=True)
        if t.returncode != 0:
            raise SystemExit("nginx -t failed for %s:\n%s" % (self.name, t.stderr))
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-c", self.conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise SystemExit("%s did not listen on %d; see %s/error.log" % (self.name, self.port, self.dir))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def log_problems(self):
        """[alert], [crit] and [emerg] lines of the error log."""
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return [line.rstrip() for line in f if re.search(r"\[(alert|crit|emerg)\]", line)]
        except OSError:
            return []


def upstream_conf(port, workers):
    return """
worker_processes %d;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path @DIR@/tmp; proxy_temp_path @DIR@/tmp; fastcgi_temp_path @DIR@/tmp;
    uwsgi_temp_path @DIR@/tmp; scgi_temp_path @DIR@/tmp;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:%d backlog=4096;
        location / { return 200 "ok"; }
        location = /__stub { stub_status; }
    }
}
""" % (workers, port)


def front_conf(port, up_port, workers, module=None, consent=None, keys=None, redis_port=None, redis_tls=None,
               choice=False):
    """B1 when module is None; else the module with conf/front-proxy.conf's
    purposes and rules, `consent on|off` in the server. redis_tls: a Redis
    object serving TLS: consent_redis goes to its TLS port, verified.
    choice: a choice cookie (B4C) and policy revision 1."""
    redis = "127.0.0.1:%s" % redis_port
    tls = []
    if redis_tls is not None:
        redis = "127.0.0.1:%d" % redis_tls.tls_port
        tls = ["    consent_redis_ssl on;",
               "    consent_redis_ssl_trusted_certificate %s;" % redis_tls.ca]
    http_consent = server_consent = headers = check = status = ""
    if module:
        load = "load_module %s;\n" % module
        http_consent = "\n".join(
            ["    consent_key 1 %s issue;" % keys.token_file,
             "    consent_pseudonym_key %s;" % keys.pseudonym_file]
            + ["    consent_purpose %s %s;" % p for p in PURPOSES]
            + ["    consent_uid_cookie __Host-vid purpose=analysis max_age=180d;",
               "    consent_strip_args    campaigns utm_* mc_cid mc_eid;",
               "    consent_strip_args    marketing gclid dclid fbclid msclkid ttclid;",
               "    consent_strip_args    analysis  _ga _gl;",
               "    consent_strip_cookies analysis  _ga _ga_* _gid _gat*;",
               "    consent_strip_cookies marketing _fbp _fbc _gcl_* IDE;",
               "    consent_strip_cookies third_parties _pin_unauth _uetsid _uetvid;",
               "    consent_redis %s timeout=%dms connect_timeout=200ms;" % (redis, REDIS_TIMEOUT_MS)]
            + tls + ["    consent_cache zone=consent:16m ttl=60s;"]
            + (["    consent_choice_cookie %s max_age=180d;" % CHOICE_COOKIE,
                "    consent_policy_revision 1;"] if choice else [])) + "\n"
        server_consent = "        consent %s;\n" % consent
        headers = ("            proxy_set_header X-Consent-Purposes $consent_purposes;\n"
                   "            proxy_set_header X-Consent-Subject $consent_subject;\n")
        check = ("            add_header X-Source $consent_source always;\n"
                 "            add_header X-Token $consent_token_status always;\n"
                 "            add_header X-Version $consent_version always;\n"
                 "            add_header X-Purposes $consent_purposes always;\n"
                 "            add_header X-Stripped $consent_stripped always;\n")
        status = "        location = /__status { consent_status; }\n"
    else:
        load = ""
    return front_shell(port, up_port, workers, load=load, http=http_consent, server=server_consent,
                       root=headers, check=check, status=status)


def front_shell(port, up_port, workers, load="", http="", server="", root="", check="", status=""):
    """The front nginx every scenario and peer runs in: a keepalive upstream,
    `location /` and `location = /__check` proxying to it; the pieces fill
    in the main context (load), http, server, each location and the status
    location."""
    return """%(load)s
worker_processes %(workers)d;
worker_rlimit_nofile 16384;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path @DIR@/tmp; proxy_temp_path @DIR@/tmp; fastcgi_temp_path @DIR@/tmp;
    uwsgi_temp_path @DIR@/tmp; scgi_temp_path @DIR@/tmp;
    keepalive_requests 1000000;
%(http)s
    upstream backend {
        server 127.0.0.1:%(up)d;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:%(port)d backlog=4096 reuseport;
%(server)s
        proxy_http_version 1.1;
        location / {
            # every level that sets a header must repeat this one: a
            # proxy_set_header at a level drops all inherited ones
            proxy_set_header Connection "";
%(root)s            proxy_pass http://backend;
        }
        location = /__check {
            proxy_set_header Connection "";
%(check)s            proxy_pass http://backend;
        }
%(status)s    }
}
""" % dict(load=load, workers=workers, http=http, up=up_port, port=port, server=server, root=root,
           check=check, status=status)


class Redis:
    """A redis-server; with tls, it also serves TLS on tls_port with a
    certificate for 127.0.0.1 from a CA of its own (ca), and the plain
    port stays for the benchmark's own checks."""

    def __init__(self, tmp, tls=False):
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis-tls" if tls else "redis")
        os.makedirs(self.dir)
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")]
        if tls:
            self.tls_port = free_port()
            self.ca, cert, key = self.make_pki()
            cmd += ["--tls-port", str(self.tls_port), "--tls-cert-file", cert, "--tls-key-file", key,
                    "--tls-ca-cert-file", self.ca, "--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        self.stopped = False
        if not wait_port(self.port):
            raise SystemExit("redis-server did not start")
        self.r = Resp(self.port)
        self.r.sock.settimeout(10)  # never wait forever, e.g. on a stopped Redis

    def make_pki(self):
        """A CA and a server certificate for 127.0.0.1 (EC P-256, as a
        managed service would present: a leaf signed by a CA)."""
        d = self.dir

        def run(*args):
            subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        ca, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
        cert, key, csr = os.path.join(d, "server.crt"), os.path.join(d, "server.key"), os.path.join(d, "server.csr")
        ext = os.path.join(d, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=bench CA", "-keyout", ca_key, "-out", ca)
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", key, "-out", csr)
        run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", cert)
        return ca, cert, key

    def hgetall_calls(self):
        info = self.r.call("INFO", "commandstats").decode()
        m = re.search(r"cmdstat_hgetall:calls=(\d+)", info)
        return int(m.group(1)) if m else 0

    def sigstop(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        if self.stopped and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def stop(self):
        self.sigcont()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------
# wrk (measurement.py parses its output)

class Wrk:
    def __init__(self, args):
        self.args = args

    def cmd(self, port, lua, entries, duration, light=False):
        threads, conns = (1, 2) if light else (self.args.threads, self.args.connections)
        return [WRK, "-t", str(threads), "-c", str(conns), "-d", "%gs" % duration,
                "--latency", "--timeout", "2s", "-s", lua, "http://127.0.0.1:%d/" % port, "--", entries]

    def start(self, port, lua, entries, duration, light=False):
        return subprocess.Popen(self.cmd(port, lua, entries, duration, light), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    @staticmethod
    def finish(proc, what):
        out, _ = proc.communicate()
        if proc.returncode != 0:
            fail("%s: wrk exited %d: %s" % (what, proc.returncode, out.strip()[-500:]))
        res = parse_wrk(out)
        res["raw"] = out
        return res

    def run(self, port, lua, entries, duration, what, light=False):
        return self.finish(self.start(port, lua, entries, duration, light), what)


# ---------------------------------------------------------------------------
# B8: the publisher (a process of its own) and the publish-to-visible probe

def publisher_main(port, rate, channel):
    """--_publish: PUBLISH `<other subject> <v>` at `rate` per second, in
    batches every 10 ms, until SIGTERM; prints the count and the seconds
    then, and on each SIGUSR1 as well (a mark)."""
    stop, marks = [], []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGUSR1, lambda *a: marks.append(1))
    sock = socket.create_connection(("127.0.0.1", port))
    rfile = sock.makefile("rb")
    print("ready", flush=True)
    sent, t0, k = 0, time.monotonic(), 0
    while not stop:
        due = int((time.monotonic() - t0) * rate)
        n = due - sent
        if n > 0:
            out = []
            for _ in range(n):
                k += 1
                msg = "bench-other-%06d %d" % (k % 50000, 1 + k // 50000)
                out.append("*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                           % (len(channel), channel, len(msg), msg))
            sock.sendall("".join(out).encode())
            for _ in range(n):
                rfile.readline()
            sent += n
        while marks:
            marks.pop()
            print(sent, time.monotonic() - t0, flush=True)
        time.sleep(0.01)
    print(sent, time.monotonic() - t0, flush=True)


class Probe(threading.Thread):
    """Publish-to-visible latency in B8's latency phase: every 100 ms, write a new
    version of the probe subject's record (the published Lua script), then
    ask nginx every 0.5 ms until a request reports it (bench/update_latency.py's
    way, paced: a busy loop would add its own load to the front)."""

    def __init__(self, redis_port, front_port, token):
        super().__init__(daemon=True)
        self.r = Resp(redis_port)
        self.port = front_port
        self.headers = BASE_HEADERS + [("Cookie", "__Host-vid=" + token)]
        self.script = write_script()
        self.samples, self.errors = [], []
        self.halt = threading.Event()
        self.n = 0
        self.requests = 0

    def version(self, conn):
        self.requests += 1
        conn.putrequest("GET", "/__check", skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        v = resp.getheader("X-Version")
        return int(v) if v else 0

    def write(self):
        self.n += 1
        return int(self.r.call("EVAL", self.script, 1, "consent:{bench-probe}", "consent:updates",
                               "bench-probe", "merge", "marketing", self.n % 2))

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            while not self.halt.is_set():
                self.version(conn)  # the current version is cached
                v = self.write()
                t0 = time.perf_counter()
                while self.version(conn) < v:
                    if time.perf_counter() - t0 > 2:
                        self.errors.append("version %d not visible after 2 s" % v)
                        break
                    time.sleep(0.0005)
                else:
                    self.samples.append((time.perf_counter() - t0) * 1000)
                self.halt.wait(0.1)
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            self.errors.append("probe: %s" % e)
        finally:
            conn.close()
