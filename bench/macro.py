#!/usr/bin/python3
"""Macro benchmark (issue 5): nginx with the consent module against plain
nginx proxying, side by side in one run, driven by wrk.

The script starts its own processes and stops them at the end:
  - an upstream: a separate /usr/sbin/nginx answering `return 200 "ok"`;
  - a redis-server;
  - the baseline front (B1): plain proxy_pass, module not loaded;
  - for each scenario, a front nginx with the module (worker_processes 2),
    proxying to the upstream through an `upstream {}` block with keepalive.

Every scenario runs interleaved with the baseline, A B A B ..., for
--rounds rounds of --duration seconds; the baseline gets the very same
request stream (same script, same URL, headers and tokens), so a ratio
isolates what the module costs. Quoted figures are medians over the rounds,
and the ratio is the median of the per-round ratios (requests/s of the
scenario / requests/s of the baseline run just before it).

  B1  plain proxy_pass, module not loaded                baseline
  B2  module loaded, `consent off`                       >= 0.99
  B3  consent on, no token, no cookie, tracking args     >= 0.98
  B4  valid UID cookie (1 KB Cookie header), cache hit,
      3 of 10 args and 5 cookies stripped                >= 0.95
  B4C B4 with a choice cookie of the same answers       >= 0.95
      instead of the UID cookie (no subject, no cache
      lookup: the memo and the rewrite)
  B5  valid PURL token + UID cookie (two opens), hit     >= 0.92
  B6  100% forged or garbage tokens                      >= 0.95, zero HGETALL
  B7  100% cache misses: a new subject every request     added p50/p99 vs B4 (also
      (no records in Redis: "no record" answers)         at light load, 2 conns);
                                                         HGETALL == subjects
  B7T B7 with Redis over TLS (verified), interleaved     report: its ratio is
      with B7 over plain TCP (not with B1)               TLS / plain
  B8  B4 under 1,000 updates/s on the channel            >= 0.93; publish-to-
      (the publisher runs through the B1 half too; the   visible p99
      latency probe in a phase of its own after the
      rounds, under the same load)
  B9a B7 with Redis SIGSTOPped a third of the way in     no errors, p99 bounded
                                                         by the lookup timeout
  B9b B7 while Redis stays stopped (breaker open)        close to B4

Prints the table, writes results.json and results.csv into --out, and a
gnuplot PNG (requests/s and p99 per scenario beside its baseline) to
--chart. Exits 1 when a check fails (any non-2xx response or socket error,
a Redis call count that is off, a sanity check); with --strict, also when a
target is missed.

The machine is shared: each run records the share of the CPU that other
processes took meanwhile ("other" in the table), and a round is run again
when it was over --max-other-load. (With the kernel's autogroup scheduling,
`nice` does not rank processes of different sessions: another session's
"nice 19" job competes as an equal.)

  bench/macro.py [--rounds 5] [--duration 5] [--connections 32] [--threads 2]
                 [--scenarios B2,B4,B7] [--quick]
  bench/macro.py --hold B4     B1 and B4's front stay up for perf/callgrind;
                               stop with Ctrl-C or SIGTERM
"""
import argparse
import csv
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"

sys.path.insert(0, os.path.join(REPO, "bench"))
from update_latency import Resp, percentile, write_script  # noqa: E402

# ---------------------------------------------------------------------------
# What the clients send. The query, the Cookie header, the strip rules and
# the record are the ones of bench/path_fixture.h: keep them in step.

PATH = "/products/shoes/running"

# 10 arguments; utm_source, utm_medium (campaigns) and gclid (marketing) go.
QUERY = ("category=running&utm_source=newsletter&size=42&color=blue&utm_medium=email"
         "&sort=price_asc&page=2&gclid=EAIaIQobChMI8rP3k6Ct-gIVDOJ3Ch0XNwFkEAAYASAAEgJx3_D_BwE&ref=home&q=trail+shoes")

# 22 cookies, about 1 KB with the UID token at {VID}.
COOKIE = (
    "_ga=GA1.1.1593746201.1732871234; _ga_7KX2R9ZPQ1=GS1.1.1732871234.12.1.1732874001.0.0.0; "
    "_gid=GA1.2.846213377.1732871234; _fbp=fb.1.1732871234567.1187254930; _gcl_au=1.1.1437788114.1732871234; "
    "lang=en-GB; currency=EUR; session=8f14e45fceea167a5a36dedd4bea2543b1e3c2f9a7d6e5c4b3a29180f7e6d5c4; "
    "cart=c7d2a1e0-5b9f-4e8a-9c3d-2f1e0d9c8b7a; consent_banner=dismissed; ab_checkout=variant_b; "
    "recently_viewed=SKU-48213%2CSKU-10294%2CSKU-77310%2CSKU-55021%2CSKU-90876%2CSKU-31337; "
    "__Host-vid={VID}; _uetsid=3b5a8c10ae1111efb7c2f1a3d9e8c7b6; _uetvid=3b5a9f70ae1111ef9d4e6b2c1a0f9e8d; "
    "_hjSessionUser_2817364=eyJpZCI6IjVmN2E4YjljLTFkMmUtNGYzYS05YjhjIiwiY3JlYXRlZCI6MTczMjg3MTIzNDU2N30; "
    "theme=dark; tz=Europe%2FBerlin; csrftoken=Qm9uam91ciBsZSBtb25kZSwgY2VjaSBlc3QgdW4gamV0b24; "
    "last_search=trail%20running%20shoes%20size%2042; newsletter_seen=1; "
    "prefs=eyJncmlkIjp0cnVlLCJwYWdlU2l6ZSI6NDgsInNvcnQiOiJwcmljZV9hc2MiLCJjb21wYXJlIjpbXX0")

BASE_HEADERS = [
    ("Host", "shop.example.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/131.0.0.0 Safari/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.9"),
    ("Accept-Encoding", "gzip, deflate, br"),
]

# Placeholders for the two per-request fields of a request stream.
F1, F2 = "\x01F1\x01", "\x01F2\x01"

PURPOSES = [("service", "granted"), ("billing", "granted"), ("analysis", "denied gpc"),
            ("marketing", "denied gpc"), ("campaigns", "denied gpc"), ("research", "denied"),
            ("group_sharing", "denied gpc"), ("third_parties", "denied gpc")]
# The record of B4/B5/B8: analysis granted, the rest of the tracking denied.
RECORD = {"v": "7", "service": "1", "billing": "1", "analysis": "1", "marketing": "0",
          "campaigns": "0", "research": "0", "group_sharing": "0", "third_parties": "0"}
STRIPPED_B4 = "utm_source,utm_medium,gclid,_fbp,_gcl_au,__Host-vid,_uetsid,_uetvid"
# B4C: the same answers as RECORD, in the choice cookie instead of a record
CHOICE_COOKIE = "consent_choices"
CHOICES = [(k, v == "1") for k, v in RECORD.items() if k not in ("v", "service", "billing")]
STRIPPED_B4C = STRIPPED_B4.replace("__Host-vid", CHOICE_COOKIE)

REDIS_TIMEOUT_MS = 100
TARGETS = {"B2": 0.99, "B3": 0.98, "B4": 0.95, "B4C": 0.95, "B5": 0.92, "B6": 0.95, "B8": 0.93}
DESCRIPTIONS = {
    "B1": "plain proxy_pass, module not loaded",
    "B2": "module loaded, consent off",
    "B3": "consent on, no token/cookie, 3 of 10 args stripped",
    "B4": "UID cookie (1 KB Cookie), cache hit, args+cookies stripped",
    "B4C": "B4 with a choice cookie instead of the UID cookie",
    "B5": "PURL token + UID cookie, cache hit",
    "B6": "100% forged/garbage tokens",
    "B7": "100% cache misses (new subject each request)",
    "B7T": "B7 with Redis over TLS, paired with B7 over TCP",
    "B8": "B4 + 1,000 updates/s on the channel",
    "B9a": "B7, Redis SIGSTOPped 1/3 in",
    "B9b": "B7, Redis stopped (breaker open)",
}
ALL_SCENARIOS = ["B2", "B3", "B4", "B4C", "B5", "B6", "B7", "B7T", "B8", "B9"]

FAILURES = []  # checks that failed: the run exits 1


def fail(msg):
    FAILURES.append(msg)
    print("  !! CHECK FAILED: " + msg, flush=True)


def say(msg):
    print("==> " + msg, flush=True)


# ---------------------------------------------------------------------------
# tokens (the independent implementation of tests/interop/token_interop.py)

_interop = None


def interop():
    global _interop
    if _interop is None:
        sys.path.insert(0, os.path.join(REPO, "tests", "interop"))
        try:
            import token_interop
        except ImportError as e:
            raise SystemExit("macro.py needs python3-nacl and python3-cryptography (%s); "
                             "run it with /usr/bin/python3" % e)
        _interop = token_interop
    return _interop


class Keys:
    def __init__(self, tmp):
        self.key = secrets.token_bytes(32)
        self.other = secrets.token_bytes(32)
        old = os.umask(0o077)
        try:
            self.token_file = os.path.join(tmp, "token.key")
            with open(self.token_file, "w") as f:
                f.write("xchacha20poly1305 %s\n" % self.key.hex())
            self.pseudonym_file = os.path.join(tmp, "pseudonym.key")
            with open(self.pseudonym_file, "w") as f:
                f.write(secrets.token_bytes(32).hex() + "\n")
        finally:
            os.umask(old)

    def mint(self, kind, subject, campaign="", kid=1, key=None, ttl=86400):
        now = int(time.time())
        return interop().mint("xchacha20poly1305", kid, key or self.key, kind, subject, campaign,
                              now - 60, now + ttl)

    def mint_choice(self, choices, revision=1, ttl=86400):
        now = int(time.time())
        return interop().mint_choice("xchacha20poly1305", 1, self.key, now - 60, now + ttl, revision, choices)


def forged(token):
    """The same token with one base64url character changed in the ciphertext."""
    i = len(token) * 2 // 3
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def garbage(rng_bytes, n):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[b % 64] for b in rng_bytes[:n])


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
%(http_consent)s
    upstream backend {
        server 127.0.0.1:%(up)d;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:%(port)d backlog=4096 reuseport;
%(server_consent)s
        proxy_http_version 1.1;
        location / {
            # every level that sets a header must repeat this one: a
            # proxy_set_header at a level drops all inherited ones
            proxy_set_header Connection "";
%(headers)s            proxy_pass http://backend;
        }
        location = /__check {
            proxy_set_header Connection "";
%(check)s            proxy_pass http://backend;
        }
%(status)s    }
}
""" % dict(load=load, workers=workers, http_consent=http_consent, up=up_port, port=port,
           server_consent=server_consent, headers=headers, check=check, status=status)


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
# requests: one template per scenario, two per-request fields (F1, F2)

def request_template(with_purl, with_cookie, cookie_name="__Host-vid"):
    """(path+query, headers) with the placeholders F1 (the PURL token or the
    UID token) and F2 (the UID token when there is a PURL token).
    cookie_name: the cookie that carries the token (B4C: the choice cookie)."""
    query = ("ctk=%s&" % F1 + QUERY) if with_purl else QUERY
    headers = list(BASE_HEADERS)
    if with_cookie:
        cookie = COOKIE.replace("{VID}", F2 if with_purl else F1).replace("__Host-vid=", cookie_name + "=")
        headers.append(("Cookie", cookie))
    return query, headers


def fill(s, f1, f2):
    return s.replace(F1, f1).replace(F2, f2)


def raw_request(path, query, headers):
    text = "GET %s?%s HTTP/1.1\r\n" % (path, query)
    text += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    if F1 not in text:
        text += F1
    if F2 not in text:
        text += F2
    return text


def lua_quote(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif 0x20 <= o < 0x7f:
            out.append(ch)
        else:
            out.append("\\%03d" % o)
    return '"' + "".join(out) + '"'


LUA = r"""-- generated by bench/macro.py: one request per entry, cycling; thread i
-- reads ENTRIES.i when it exists (disjoint slices), else ENTRIES.
local P1, P2, P3 = %(p1)s, %(p2)s, %(p3)s
local threads, nthreads = {}, 0
function setup(thread)
    nthreads = nthreads + 1
    thread:set("tid", nthreads)
    table.insert(threads, thread)
end
local f1, f2, n, i = {}, {}, 0, 0
sent, wrapped = 0, 0
function init(args)
    local f = io.open(args[1] .. "." .. tid) or io.open(args[1])
    for line in f:lines() do
        local a, b = line:match("^([^\t]*)\t?(.*)$")
        n = n + 1
        f1[n], f2[n] = a, b
    end
    f:close()
end
function request()
    i = i + 1
    if i > n then i = 1; wrapped = wrapped + 1 end
    sent = sent + 1
    return P1 .. f1[i] .. P2 .. f2[i] .. P3
end
function done(summary, latency, requests)
    local s, w = 0, 0
    for _, t in ipairs(threads) do s = s + t:get("sent"); w = w + t:get("wrapped") end
    io.write(string.format("MACRO sent=%%d wrapped=%%d\n", s, w))
end
"""


def write_lua(path, raw):
    a, rest = raw.split(F1, 1)
    b, c = rest.split(F2, 1)
    with open(path, "w") as f:
        f.write(LUA % dict(p1=lua_quote(a), p2=lua_quote(b), p3=lua_quote(c)))


def write_entries(prefix, entries, threads=None):
    """entries: [(f1, f2)]; with threads, one disjoint slice per thread."""
    if threads is None:
        with open(prefix, "w") as f:
            f.writelines("%s\t%s\n" % e for e in entries)
        return
    for t in range(threads):
        with open("%s.%d" % (prefix, t + 1), "w") as f:
            f.writelines("%s\t%s\n" % e for e in entries[t::threads])


# ---------------------------------------------------------------------------
# other processes' CPU: this machine is shared, and with the kernel's
# autogroup scheduling (sched_autogroup_enabled=1) `nice` only ranks
# processes within one session, so a "nice 19" job of another session
# competes with the benchmark as an equal. Each run records the share of
# the machine's CPU that processes outside this script's process tree took.

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            procs[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))  # ppid, utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return time.monotonic(), procs


def other_load(before, after, root=None):
    """Share of all CPUs (0..1) used between two snapshots by processes
    that are neither descendants of `root` nor kernel threads."""
    root = root or os.getpid()
    t0, p0 = before
    t1, p1 = after
    ours = {root}
    children = {}
    for pid, (ppid, _) in list(p1.items()) + list(p0.items()):
        children.setdefault(ppid, set()).add(pid)
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in ours:
                ours.add(c)
                todo.append(c)
    jiffies = 0
    for pid, (ppid, t) in p1.items():
        if pid in ours or ppid == 2 or pid == 2:
            continue
        jiffies += t - p0.get(pid, (0, 0))[1] if pid in p0 else 0
    return jiffies / float(CLK_TCK) / max(t1 - t0, 1e-3) / (os.cpu_count() or 1)


def cpu_ns(pids):
    """CPU time (ns) the processes have run so far (/proc/PID/schedstat)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/schedstat" % pid) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ---------------------------------------------------------------------------
# wrk

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out):
    res = {"rps": 0.0, "requests": 0, "non2xx": 0, "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
    for p in (50, 75, 90, 99):
        m = re.search(r"^\s+%d%%\s+(\S+)" % p, out, re.M)
        res["p%d" % p] = ms(m.group(1)) if m else float("nan")
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        res["avg"], res["max"] = ms(m.group(1)), ms(m.group(3))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"MACRO sent=(\d+) wrapped=(\d+)", out)
    if m:
        res["sent"], res["wrapped"] = int(m.group(1)), int(m.group(2))
    return res


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
# nginx's side: the check location and the counters

def check(port, query, headers, path="/__check"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest("GET", path + "?" + query, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def counters(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/__status")
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
            # consent_redis_*{server="..."}: also the sum over servers
            base = name.partition("{")[0]
            if base != name and "server=" in name and "kind=" not in name:
                out[base] = out.get(base, 0.0) + float(value)
    return out


def upstream_accepts(port):
    """Connections the upstream accepted so far (stub_status)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/__stub")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(body.splitlines()[2].split()[0])


def delta(before, after, name):
    return int(after.get(name, 0) - before.get(name, 0))


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


# ---------------------------------------------------------------------------
# the benchmark

def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="consent-macro-")
        self.wrk = Wrk(args)
        self.nginxes = []
        self.redis = None
        self.redis_tls = None   # B7T's
        self.publisher = None
        self.runs = []          # every measured run
        self.summary = {}       # scenario -> row
        self.max_rps = 0.0
        self.run_id = secrets.token_hex(3)
        self.noisy_pairs = 0    # rounds during which other processes took too much CPU
        self.retried = 0        # of which were run again
        self.subject_seq = 0

    # -- processes ----------------------------------------------------------
    def start_nginx(self, name, conf, port):
        n = Nginx(name, self.tmp, conf, port)
        self.nginxes.append(n)
        return n.start()

    def stop_nginx(self, n):
        problems = n.log_problems()
        if problems:
            fail("%s error.log: %d [alert]/[crit]/[emerg] lines, first: %s" % (n.name, len(problems), problems[0]))
        n.stop()
        self.nginxes.remove(n)

    def cleanup(self):
        if self.publisher and self.publisher.poll() is None:
            self.publisher.kill()
            self.publisher.wait()
        if self.redis:
            self.redis.sigcont()  # always, before anything else
        for n in list(self.nginxes):
            n.stop()
        if self.redis:
            self.redis.stop()
        if self.redis_tls:
            self.redis_tls.stop()
        if self.args.keep:
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- set-up ------------------------------------------------------------
    def setup(self):
        a = self.args
        for path in (NGINX, WRK, a.module):
            if not os.path.exists(path):
                raise SystemExit("missing %s (the release build makes the module: ./dev bench)" % path)
        self.keys = Keys(self.tmp)
        self.redis = Redis(self.tmp)
        self.up_port = free_port()
        self.start_nginx("upstream", upstream_conf(self.up_port, a.upstream_workers), self.up_port)
        self.b1_port = free_port()
        self.b1 = self.start_nginx("B1", front_conf(self.b1_port, self.up_port, a.workers), self.b1_port)
        # B4, B5 and B8's subject, with a record; B8's probe subject too
        self.subject = "customer-00012345"
        self.redis.r.call("DEL", "consent:{%s}" % self.subject)
        args = ["HSET", "consent:{%s}" % self.subject]
        for k, v in RECORD.items():
            args += [k, v]
        self.redis.r.call(*args)
        self.redis.r.call("HSET", "consent:{bench-probe}", "v", "1", "service", "1")
        self.uid = self.keys.mint("uid", self.subject)
        self.purl = self.keys.mint("purl", self.subject, "newsletter-2026-11")
        self.choice = self.keys.mint_choice(CHOICES)
        self.probe_uid = self.keys.mint("uid", "bench-probe")

    def front(self, name, consent="on", redis_tls=None, choice=False):
        port = free_port()
        conf = front_conf(port, self.up_port, self.args.workers, module=os.path.abspath(self.args.module),
                          consent=consent, keys=self.keys, redis_port=self.redis.port, redis_tls=redis_tls,
                          choice=choice)
        n = self.start_nginx(name, conf, port)
        if consent == "on":
            # the cache serves nothing until worker 0's subscription is up
            deadline = time.time() + 10
            while counters(port).get("consent_subscription_up", 0) != 1:
                if time.time() > deadline:
                    fail("%s: the update channel subscription did not come up" % name)
                    break
                time.sleep(0.05)
        return n

    def files(self, name, with_purl, with_cookie, cookie_name="__Host-vid"):
        query, headers = request_template(with_purl, with_cookie, cookie_name)
        lua = os.path.join(self.tmp, name + ".lua")
        write_lua(lua, raw_request(PATH, query, headers))
        return lua, os.path.join(self.tmp, name + ".entries"), query, headers

    def fresh_subjects(self, n, tag):
        out = []
        for _ in range(n):
            self.subject_seq += 1
            # 17 characters, as long as B4's subject: tokens of the same size
            out.append("%s%011d" % (self.run_id, self.subject_seq))
        return out

    def mint_misses(self, prefix, tag, seconds):
        """Distinct new subjects for one run, one slice per wrk thread:
        enough for the fastest baseline seen so far, with margin."""
        rate = max(self.max_rps, 2000.0)
        n = int(rate * seconds * 1.5) + 200 * self.args.threads
        t0 = time.time()
        subjects = self.fresh_subjects(n, tag)
        write_entries(prefix, [(self.keys.mint("uid", s), "") for s in subjects], threads=self.args.threads)
        if self.args.verbose:
            print("    minted %d tokens in %.1f s" % (n, time.time() - t0))
        return n

    # -- one measured run ------------------------------------------------------
    def wrk_start(self, port, lua, entries, duration):
        self._accepts = upstream_accepts(self.up_port)
        self._cpu = cpu_snapshot()
        # the front's workers: the CPU time they spend per request
        front = next(n for n in self.nginxes if n.port == port)
        self._workers = children(front.proc.pid)
        self._front_ns = cpu_ns(self._workers)
        return self.wrk.start(port, lua, entries, duration)

    def wrk_finish(self, proc, what):
        res = Wrk.finish(proc, what)
        front_ns = cpu_ns(self._workers) - self._front_ns
        res["front_cpu_us"] = front_ns / 1000.0 / res["requests"] if res["requests"] else float("nan")
        res["other_load"] = other_load(self._cpu, cpu_snapshot())
        # new connections to the upstream, less the one that asks
        res["upstream_conns"] = upstream_accepts(self.up_port) - self._accepts - 1
        return res

    def too_busy(self, *runs):
        """True (and says so) when other processes took more of the machine
        than --max-other-load during one of these runs."""
        worst = max(r.get("other_load", 0) for r in runs)
        if worst > self.args.max_other_load:
            self.noisy_pairs += 1
            print("      other processes took %.0f%% of the CPU (over %.0f%%)"
                  % (100 * worst, 100 * self.args.max_other_load), flush=True)
            return True
        return False

    def wrk_run(self, port, lua, entries, duration, what):
        return self.wrk_finish(self.wrk_start(port, lua, entries, duration), what)

    def record(self, scenario, rnd, port, res, extra=None):
        res = dict(res)
        res.update(scenario=scenario, round=rnd, port=port)
        if extra:
            res.update(extra)
        self.runs.append(res)
        if scenario == "B1":
            self.max_rps = max(self.max_rps, res["rps"])
        if res.get("upstream_conns", 0) > max(100, 0.01 * res["requests"]):
            fail("%s round %d: %d new upstream connections for %d requests: keepalive to the upstream is "
                 "not in effect" % (scenario, rnd, res["upstream_conns"], res["requests"]))
        errs = sum(res["errors"].values())
        tail = ""
        if res["non2xx"] or errs:
            tail = "  non-2xx %d, socket errors %s" % (res["non2xx"], res["errors"])
            fail("%s round %d: %d non-2xx responses, socket errors %s" % (scenario, rnd, res["non2xx"],
                                                                          res["errors"]))
        print("    %-4s round %d: %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  front %5.1f us CPU/req"
              "  (other load %2.0f%%)%s"
              % (scenario, rnd, res["rps"], res["p50"], res["p99"], res.get("front_cpu_us", float("nan")),
                 100 * res.get("other_load", 0), tail), flush=True)
        return res

    def pair(self, scenario, rnd, front, lua, entries, before=None, after=None, around=None):
        """One round: the baseline, then the scenario, on the same stream;
        run again (up to --retries times) while other processes load the
        machine more than --max-other-load. `around` = (start, stop) runs
        around both halves: load that exists whether or not the module is
        loaded (B8's publisher)."""
        for attempt in range(self.args.retries + 1):
            if around:
                around[0]()
            try:
                base, res = self.pair_once(scenario, rnd, front, lua, entries, before, after)
            finally:
                if around:
                    around[1]()
            if not self.too_busy(base, res):
                break
            if attempt < self.args.retries:
                self.retried += 1
                base["discarded"] = res["discarded"] = True
                print("      round %d again" % rnd, flush=True)
        return base, res

    def pair_once(self, scenario, rnd, front, lua, entries, before, after):
        d = self.args.duration
        base = self.record("B1", rnd, self.b1_port, self.wrk_run(self.b1_port, lua, entries, d, "B1"),
                           {"block": scenario})
        if before:
            before()
        res = self.wrk_run(front.port, lua, entries, d, scenario)
        extra = after(res) if after else None
        res = self.record(scenario, rnd, front.port, res, extra)
        res["ratio"] = res["rps"] / base["rps"] if base["rps"] else float("nan")
        res["cpu_ratio"] = res["front_cpu_us"] / base["front_cpu_us"] if base["front_cpu_us"] else float("nan")
        base["paired_with"] = scenario
        return base, res

    def warmup(self, front, lua, entries):
        if self.args.warmup > 0:
            for port in (self.b1_port, front.port):
                self.wrk.run(port, lua, entries, self.args.warmup, "warm-up")
            # the baseline's rate sizes the token files of B7/B9
            res = self.wrk.run(self.b1_port, lua, entries, 1, "warm-up")
            self.max_rps = max(self.max_rps, res["rps"])

    def light(self, scenario, front, lua, entries):
        """Latency at light load (1 thread, 2 connections): the service time
        without the queueing of a saturated closed loop."""
        res = self.wrk.run(front.port, lua, entries, self.args.duration, scenario + " light", light=True)
        for k in ("non2xx",):
            if res[k]:
                fail("%s at light load: %d non-2xx responses" % (scenario, res[k]))
        if sum(res["errors"].values()):
            fail("%s at light load: socket errors %s" % (scenario, res["errors"]))
        print("    %-4s light load (2 connections): %7.0f req/s  p50 %6.3f ms  p99 %6.3f ms"
              % (scenario, res["rps"], res["p50"], res["p99"]), flush=True)
        return {"rps": res["rps"], "p50": res["p50"], "p99": res["p99"], "sent": res.get("sent", 0),
                "wrapped": res.get("wrapped", 0)}

    def summarize(self, scenario, pairs, notes=None, target=None, verdict=None):
        bases = [b for b, _ in pairs]
        xs = [x for _, x in pairs]
        row = {
            "scenario": scenario,
            "description": DESCRIPTIONS[scenario],
            "rounds": len(pairs),
            "rps": med([x["rps"] for x in xs]),
            "p50": med([x["p50"] for x in xs]),
            "p99": med([x["p99"] for x in xs]),
            "max": med([x.get("max", float("nan")) for x in xs]),
            "b1_rps": med([b["rps"] for b in bases]),
            "b1_p50": med([b["p50"] for b in bases]),
            "b1_p99": med([b["p99"] for b in bases]),
            "ratio": med([x["ratio"] for x in xs]),
            "ratios": [round(x["ratio"], 4) for x in xs],
            "other_load": med([max(b.get("other_load", 0), x.get("other_load", 0)) for b, x in pairs]),
            "cpu_us": med([x.get("front_cpu_us", float("nan")) for x in xs]),
            "b1_cpu_us": med([b.get("front_cpu_us", float("nan")) for b in bases]),
            "cpu_ratio": med([x.get("cpu_ratio", float("nan")) for x in xs]),
            "target": target if target is not None else TARGETS.get(scenario),
            "notes": notes or [],
        }
        if verdict is not None:
            row["verdict"] = verdict
        elif row["target"] is not None:
            row["verdict"] = "met" if row["ratio"] >= row["target"] else "MISSED"
        else:
            row["verdict"] = ""
        self.summary[scenario] = row
        return row

    # -- scenarios -------------------------------------------------------------
    def simple(self, scenario, consent, with_purl, with_cookie, entries_list, sanity, choice=False):
        front = self.front(scenario, consent, choice=choice)
        lua, entries, query, headers = self.files(scenario, with_purl, with_cookie,
                                                  CHOICE_COOKIE if choice else "__Host-vid")
        write_entries(entries, entries_list)
        sanity(front, query, headers, entries_list)
        self.warmup(front, lua, entries)
        pairs, notes = [], []
        hits = reqs = 0
        for rnd in range(1, self.args.rounds + 1):
            c0 = counters(front.port) if consent == "on" else {}
            h0 = self.redis.hgetall_calls()
            pairs.append(self.pair(scenario, rnd, front, lua, entries))
            h1 = self.redis.hgetall_calls()
            if consent == "on":
                c1 = counters(front.port)
                hits += delta(c0, c1, "consent_cache_hits_total")
                reqs += delta(c0, c1, "consent_requests_total")
                if scenario == "B6":
                    lk = delta(c0, c1, "consent_redis_lookups_total")
                    if h1 - h0 or lk:
                        fail("B6 round %d: %d HGETALL in Redis, %d lookups counted; want 0" % (rnd, h1 - h0, lk))
                    notes.append("round %d: HGETALL %d, lookups %d" % (rnd, h1 - h0, lk))
        if scenario in ("B4", "B5") and reqs:
            notes.append("cache hits %.2f%% of %d requests" % (100.0 * hits / reqs, reqs))
            if hits < 0.99 * reqs:
                fail("%s: only %d of %d requests were cache hits" % (scenario, hits, reqs))
        light = self.light(scenario, front, lua, entries) if scenario == "B4" else None
        self.stop_nginx(front)
        row = self.summarize(scenario, pairs, notes)
        if light:
            row["light"] = light
        return row

    def expect(self, what, got, want):
        if got != want:
            fail("%s: %r, want %r" % (what, got, want))

    def run_b2(self):
        def sanity(front, query, headers, entries):
            status, h = check(front.port, fill(query, *entries[0]), [(k, fill(v, *entries[0])) for k, v in headers])
            self.expect("B2 status", status, 200)
            self.expect("B2 $consent_source (consent off)", h.get("x-source"), None)
        return self.simple("B2", "off", False, True, [(self.uid, "")], sanity)

    def run_b3(self):
        def sanity(front, query, headers, entries):
            status, h = check(front.port, query, headers)
            self.expect("B3 status", status, 200)
            self.expect("B3 $consent_source", h.get("x-source"), "none")
            self.expect("B3 $consent_stripped", h.get("x-stripped"), "utm_source,utm_medium,gclid")
        return self.simple("B3", "on", False, False, [("", "")], sanity)

    def warm(self, front, query, headers):
        deadline = time.time() + 10
        while True:
            status, h = check(front.port, query, headers)
            if h.get("x-source") == "cache" or time.time() > deadline:
                break
            time.sleep(0.05)
        return status, h

    def run_b4(self):
        name = "B4"
        def sanity(front, query, headers, entries):
            q, hs = fill(query, *entries[0]), [(k, fill(v, *entries[0])) for k, v in headers]
            status, h = self.warm(front, q, hs)
            self.expect(name + " status", status, 200)
            self.expect(name + " $consent_source after warming", h.get("x-source"), "cache")
            self.expect(name + " $consent_token_status", h.get("x-token"), "valid")
            self.expect(name + " $consent_stripped", h.get("x-stripped"), STRIPPED_B4)
        return self.simple(name, "on", False, True, [(self.uid, "")], sanity)

    def run_b4c(self):
        name = "B4C"
        def sanity(front, query, headers, entries):
            q, hs = fill(query, *entries[0]), [(k, fill(v, *entries[0])) for k, v in headers]
            status, h = check(front.port, q, hs)
            self.expect(name + " status", status, 200)
            self.expect(name + " $consent_source", h.get("x-source"), "cookie")
            self.expect(name + " $consent_token_status", h.get("x-token"), "none")
            self.expect(name + " $consent_purposes", h.get("x-purposes"), "service,billing,analysis")
            self.expect(name + " $consent_stripped", h.get("x-stripped"), STRIPPED_B4C)
        return self.simple(name, "on", False, True, [(self.choice, "")], sanity, choice=True)

    def run_b5(self):
        def sanity(front, query, headers, entries):
            q, hs = fill(query, *entries[0]), [(k, fill(v, *entries[0])) for k, v in headers]
            status, h = self.warm(front, q, hs)
            self.expect("B5 status", status, 200)
            self.expect("B5 $consent_source after warming", h.get("x-source"), "cache")
            self.expect("B5 $consent_token_status", h.get("x-token"), "valid")
            self.expect("B5 $consent_stripped", h.get("x-stripped"), "ctk," + STRIPPED_B4)
        return self.simple("B5", "on", True, True, [(self.purl, self.uid)], sanity)

    def run_b6(self):
        rnd = secrets.token_bytes(4096)
        entries = []
        for k in range(1000):
            kind = k % 4
            if kind == 0:    # forged: a valid token with one character changed, both places
                e = (forged(self.keys.mint("purl", "victim-%05d" % k, "spring")),
                     forged(self.keys.mint("uid", "victim-%05d" % k)))
            elif kind == 1:  # garbage of random length
                n1, n2 = 20 + rnd[k % 4096] % 180, 20 + rnd[(k * 7) % 4096] % 180
                e = (garbage(secrets.token_bytes(n1), n1), garbage(secrets.token_bytes(n2), n2))
            elif kind == 2:  # well formed, under a key id the edge does not have
                e = (self.keys.mint("purl", "victim-%05d" % k, kid=9, key=self.keys.other),
                     self.keys.mint("uid", "victim-%05d" % k, kid=9, key=self.keys.other))
            else:            # sealed with the right key id but another key
                e = (self.keys.mint("purl", "victim-%05d" % k, key=self.keys.other),
                     self.keys.mint("uid", "victim-%05d" % k, key=self.keys.other))
            entries.append(e)

        def sanity(front, query, headers, entries):
            for e in entries[:8]:
                status, h = check(front.port, fill(query, *e), [(k, fill(v, *e)) for k, v in headers])
                self.expect("B6 status", status, 200)
                if h.get("x-token") not in ("invalid", "unknown_key"):
                    fail("B6: a forged token got $consent_token_status %r" % h.get("x-token"))
                self.expect("B6 $consent_source", h.get("x-source"), "none")
        return self.simple("B6", "on", True, True, entries, sanity)

    def misses_round(self, scenario, rnd, front, lua, prefix, redis_stop_at=None):
        """A B7-style run: fresh subjects in the files, baseline first."""
        self.mint_misses(prefix, "%s-r%d" % (scenario.lower(), rnd), self.args.duration)
        c0 = counters(front.port)
        h0 = None if self.redis.stopped else self.redis.hgetall_calls()
        base = self.record("B1", rnd, self.b1_port,
                           self.wrk_run(self.b1_port, lua, prefix, self.args.duration, "B1"), {"block": scenario})
        proc = self.wrk_start(front.port, lua, prefix, self.args.duration)
        if redis_stop_at is not None:
            time.sleep(redis_stop_at)
            self.redis.sigstop()
        res = self.wrk_finish(proc, scenario)
        c1 = counters(front.port)
        h1 = None if self.redis.stopped or h0 is None else self.redis.hgetall_calls()
        extra = {"lookups": delta(c0, c1, "consent_redis_lookups_total"),
                 "hgetall": None if h1 is None else h1 - h0,
                 "cache_hits": delta(c0, c1, "consent_cache_hits_total"),
                 "fast_failures": delta(c0, c1, "consent_redis_fast_failures_total"),
                 "timeouts": delta(c0, c1, "consent_redis_timeouts_total"),
                 "requests_decided": delta(c0, c1, "consent_requests_total")}
        res = self.record(scenario, rnd, front.port, res, extra)
        res["ratio"] = res["rps"] / base["rps"] if base["rps"] else float("nan")
        res["cpu_ratio"] = res["front_cpu_us"] / base["front_cpu_us"] if base["front_cpu_us"] else float("nan")
        base["paired_with"] = scenario
        return base, res

    def run_b7(self):
        front = self.front("B7")
        lua, prefix, query, headers = self.files("B7", False, True)
        # sanity: a new subject is looked up, answered "no record", then cached
        tok = self.keys.mint("uid", self.fresh_subjects(1, "b7-check")[0])
        q, hs = fill(query, tok, ""), [(k, fill(v, tok, "")) for k, v in headers]
        _, h = check(front.port, q, hs)
        self.expect("B7 $consent_source of a new subject", h.get("x-source"), "default")
        self.warmup_misses(front, lua, prefix)
        pairs, notes = [], []
        for rnd in range(1, self.args.rounds + 1):
            for attempt in range(self.args.retries + 1):
                base, res = self.misses_round("B7", rnd, front, lua, prefix)
                if not self.too_busy(base, res) or attempt == self.args.retries:
                    break
                self.retried += 1
                base["discarded"] = res["discarded"] = True
                print("      round %d again (new subjects)" % rnd, flush=True)
            pairs.append((base, res))
            # wrk calls request() once more than it sends, to check the script
            sent, wrapped = max(res.get("sent", 0) - 1, 0), res.get("wrapped", 0)
            line = ("round %d: %d subjects requested, %d lookups counted, %d HGETALL in Redis, %d cache hits"
                    % (rnd, sent, res["lookups"], res["hgetall"], res["cache_hits"]))
            notes.append(line)
            print("      " + line)
            if wrapped:
                fail("B7 round %d: the token files ran out (%d wraps): raise the margin" % (rnd, wrapped))
            if res["hgetall"] != res["lookups"]:
                fail("B7 round %d: HGETALL in Redis %d != lookups counted %d" % (rnd, res["hgetall"], res["lookups"]))
            # requests cut off when wrk stops may never be read by nginx
            if not (sent - self.args.connections <= res["lookups"] <= sent):
                fail("B7 round %d: %d lookups for %d distinct subjects" % (rnd, res["lookups"], sent))
        self.mint_misses(prefix, "light", self.args.duration)
        light = self.light("B7", front, lua, prefix)
        if light["wrapped"]:
            fail("B7 at light load: the token files ran out")
        self.stop_nginx(front)
        row = self.summarize("B7", pairs, notes)
        row["light"] = light
        b4 = self.summary.get("B4")
        if b4:
            row["added_p50"] = row["p50"] - b4["p50"]
            row["added_p99"] = row["p99"] - b4["p99"]
            row["notes"].insert(0, "added vs B4 at full load (mostly queueing): p50 %+.2f ms, p99 %+.2f ms"
                                % (row["added_p50"], row["added_p99"]))
            if b4.get("light"):
                row["added_p50_light"] = light["p50"] - b4["light"]["p50"]
                row["added_p99_light"] = light["p99"] - b4["light"]["p99"]
                row["notes"].insert(0, "added vs B4 at light load (2 connections): p50 %+.3f ms, p99 %+.3f ms "
                                    "(B7 %.3f/%.3f ms, B4 %.3f/%.3f ms)"
                                    % (row["added_p50_light"], row["added_p99_light"], light["p50"], light["p99"],
                                       b4["light"]["p50"], b4["light"]["p99"]))
        return row

    def run_b7t(self):
        """B7 against a Redis over TLS beside B7 against one over TCP, the
        two interleaved (their order alternating by round) on the same fresh
        subjects; the ratio is TLS / TCP."""
        if self.redis_tls is None:
            self.redis_tls = Redis(self.tmp, tls=True)
        plain = self.front("B7T-tcp")
        tls = self.front("B7T", redis_tls=self.redis_tls)
        lua, prefix, query, headers = self.files("B7T", False, True)
        for front in (plain, tls):
            tok = self.keys.mint("uid", self.fresh_subjects(1, "b7t-check")[0])
            _, h = check(front.port, fill(query, tok, ""), [(k, fill(v, tok, "")) for k, v in headers])
            self.expect("B7T $consent_source of a new subject", h.get("x-source"), "default")
        # the token files hold enough new subjects for the fastest rate seen
        self.mint_misses(prefix, "warm", max(self.args.warmup, 1))
        for front in (plain, tls):
            res = self.wrk.run(front.port, lua, prefix, max(self.args.warmup, 1), "warm-up")
            self.max_rps = max(self.max_rps, res["rps"])
        pairs, notes = [], []
        for rnd in range(1, self.args.rounds + 1):
            for attempt in range(self.args.retries + 1):
                self.mint_misses(prefix, "b7t-r%d" % rnd, self.args.duration)
                runs = {}
                for front, redis in ((plain, self.redis), (tls, self.redis_tls))[::1 if rnd % 2 else -1]:
                    c0, h0 = counters(front.port), redis.hgetall_calls()
                    res = self.wrk_run(front.port, lua, prefix, self.args.duration, front.name)
                    c1, h1 = counters(front.port), redis.hgetall_calls()
                    runs[front.name] = self.record("B7T" if front is tls else "B7T-tcp", rnd, front.port, res,
                                                   {"lookups": delta(c0, c1, "consent_redis_lookups_total"),
                                                    "hgetall": h1 - h0,
                                                    "timeouts": delta(c0, c1, "consent_redis_timeouts_total")})
                base, res = runs["B7T-tcp"], runs["B7T"]
                if not self.too_busy(base, res) or attempt == self.args.retries:
                    break
                self.retried += 1
                base["discarded"] = res["discarded"] = True
                print("      round %d again (new subjects)" % rnd, flush=True)
            res["ratio"] = res["rps"] / base["rps"] if base["rps"] else float("nan")
            res["cpu_ratio"] = res["front_cpu_us"] / base["front_cpu_us"] if base["front_cpu_us"] else float("nan")
            for r in (base, res):
                if r["hgetall"] != r["lookups"]:
                    fail("%s round %d: HGETALL in Redis %d != lookups counted %d"
                         % (r["scenario"], rnd, r["hgetall"], r["lookups"]))
                if r.get("wrapped"):
                    fail("%s round %d: the token files ran out (%d wraps): every request must be a miss"
                         % (r["scenario"], rnd, r["wrapped"]))
                sent = max(r.get("sent", 0) - 1, 0)
                if not (sent - self.args.connections <= r["lookups"] <= sent):
                    fail("%s round %d: %d lookups for %d distinct subjects" % (r["scenario"], rnd, r["lookups"], sent))
            line = ("round %d: TCP %.0f req/s, %.1f us/req; TLS %.0f req/s, %.1f us/req; lookups %d / %d"
                    % (rnd, base["rps"], base["front_cpu_us"], res["rps"], res["front_cpu_us"],
                       base["lookups"], res["lookups"]))
            notes.append(line)
            print("      " + line)
            pairs.append((base, res))
        self.stop_nginx(plain)
        self.stop_nginx(tls)
        row = self.summarize("B7T", pairs, notes)
        row["target_text"] = "vs B7 over TCP (the B1 columns)"
        row["verdict"] = "report"
        row["notes"].insert(0, "paired with B7 over TCP, not with B1: 'B1 req/s' and 'B1 p99' are TCP's, "
                               "the ratio is TLS / TCP")
        return row

    def warmup_misses(self, front, lua, prefix):
        if self.args.warmup > 0:
            self.mint_misses(prefix, "warm", self.args.warmup)
            for port in (self.b1_port, front.port):
                res = self.wrk.run(port, lua, prefix, self.args.warmup, "warm-up")
                if port == self.b1_port:
                    self.max_rps = max(self.max_rps, res["rps"])

    def run_b8(self):
        front = self.front("B8")
        lua, entries, query, headers = self.files("B8", False, True)
        write_entries(entries, [(self.uid, "")])
        q, hs = fill(query, self.uid, ""), [(k, fill(v, self.uid, "")) for k, v in headers]
        _, h = self.warm(front, q, hs)
        self.expect("B8 $consent_source after warming", h.get("x-source"), "cache")
        self.warmup(front, lua, entries)
        pairs, notes, samples, published, applied = [], [], [], 0, 0
        state = {}

        # The updates flow whether or not this edge runs the module (the
        # consent service publishes, Redis fans out): the publisher runs
        # through both halves of a round, so that the ratio is what the
        # module costs the proxy, not what a publisher costs this 2-core
        # machine.
        def start_publisher():
            self.publisher = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--_publish", str(self.redis.port),
                 str(self.args.update_rate), "consent:updates"], stdout=subprocess.PIPE, text=True)
            if self.publisher.stdout.readline().strip() != "ready":
                fail("B8: the publisher did not start")

        def stop_publisher():
            if self.publisher:
                self.publisher.send_signal(signal.SIGTERM)
                self.publisher.communicate(timeout=10)
                self.publisher = None

        def mark():
            """(messages sent, seconds) so far, from the running publisher."""
            self.publisher.send_signal(signal.SIGUSR1)
            n, seconds = (self.publisher.stdout.readline().split() + ["0", "0"])[:2]
            return int(n), float(seconds)

        def before():
            state["c0"] = counters(front.port)
            state["mark0"] = mark()

        def after(res):
            n1, t1 = mark()
            time.sleep(0.2)  # let the subscriber drain
            c1 = counters(front.port)
            n, seconds = n1 - state["mark0"][0], max(t1 - state["mark0"][1], 1e-3)
            hits = delta(state["c0"], c1, "consent_cache_hits_total")
            reqs = delta(state["c0"], c1, "consent_requests_total")
            return {"published": n, "publish_rate": n / seconds,
                    "applied": delta(state["c0"], c1, "consent_updates_applied_total"),
                    "cache_hits": hits, "requests_decided": reqs}

        for rnd in range(1, self.args.rounds + 1):
            base, res = self.pair("B8", rnd, front, lua, entries, before=before, after=after,
                                  around=(start_publisher, stop_publisher))
            pairs.append((base, res))
            published += res["published"]
            applied += res["applied"]
            if res["publish_rate"] < 0.9 * self.args.update_rate:
                fail("B8 round %d: the publisher reached only %.0f messages/s" % (rnd, res["publish_rate"]))
            if res["requests_decided"] and res["cache_hits"] < 0.99 * res["requests_decided"]:
                fail("B8 round %d: only %d of %d requests were cache hits" % (rnd, res["cache_hits"],
                                                                              res["requests_decided"]))
            print("      round %d: %d updates published (%.0f/s), %d applied"
                  % (rnd, res["published"], res["publish_rate"], res["applied"]))
        if applied < 0.99 * published:
            fail("B8: %d updates published, only %d applied" % (published, applied))

        # Publish-to-visible latency, in a phase of its own after the
        # rounds, under the same load (wrk saturating the front, the
        # publisher running). The probe is a client of this front only, so
        # running it inside a round would load the B8 half and not the B1
        # half, and charge its CPU to the module.
        start_publisher()
        probe = Probe(self.redis.port, front.port, self.probe_uid)
        try:
            probe.start()
            res = self.wrk_run(front.port, lua, entries, self.args.duration * self.args.rounds, "B8 latency")
            if res["non2xx"] or sum(res["errors"].values()):
                fail("B8 latency phase: %d non-2xx responses, socket errors %s" % (res["non2xx"], res["errors"]))
        finally:
            probe.halt.set()
            probe.join(timeout=10)
            stop_publisher()
        samples = probe.samples
        for e in probe.errors:
            fail("B8 latency phase: %s" % e)
        print("      latency phase: publish-to-visible p99 %.2f ms over %d writes (%d probe requests)"
              % (percentile(samples, 99) if samples else -1, len(samples), probe.requests), flush=True)
        self.stop_nginx(front)
        notes = ["%d updates published, %d applied" % (published, applied)]
        row = self.summarize("B8", pairs, notes)
        if samples:
            row["visible_p50"] = percentile(samples, 50)
            row["visible_p99"] = percentile(samples, 99)
            row["visible_max"] = max(samples)
            row["visible_samples"] = len(samples)
            # Reported, not a target: the probe's request queues behind a
            # saturated proxy. The 10 ms goal (issue 4) is for a proxy with
            # room to spare, which bench/update_latency.py measures.
            row["notes"].insert(0, "publish-to-visible under saturation: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
                                "(%d writes; the 10 ms goal is unloaded: bench/update_latency.py)"
                                % (row["visible_p50"], row["visible_p99"], row["visible_max"], len(samples)))
        return row

    def run_b9(self):
        front = self.front("B9")
        lua, prefix, query, headers = self.files("B9", False, True)
        self.warmup_misses(front, lua, prefix)
        pa, pb, notes = [], [], []
        bound = REDIS_TIMEOUT_MS + self.args.p99_margin
        for rnd in range(1, self.args.rounds + 1):
            try:
                base, res = self.misses_round("B9a", rnd, front, lua, prefix, redis_stop_at=self.args.duration / 3)
                pa.append((base, res))
                if res["p99"] > bound:
                    fail("B9a round %d: p99 %.1f ms over the %d ms timeout + %d ms" % (rnd, res["p99"],
                                                                                   REDIS_TIMEOUT_MS,
                                                                                   self.args.p99_margin))
                notes.append("B9a round %d: %d timeouts, %d fast failures, max %.0f ms"
                             % (rnd, res["timeouts"], res["fast_failures"], res.get("max", -1)))
                # Redis still stopped: the breaker is open
                self.too_busy(base, res)
                base, res = self.misses_round("B9b", rnd, front, lua, prefix)
                pb.append((base, res))
                self.too_busy(base, res)
                notes.append("B9b round %d: %d fast failures of %d decided, %d lookups sent"
                             % (rnd, res["fast_failures"], res["requests_decided"], res["lookups"]))
            finally:
                self.redis.sigcont()
            self.recover(front, query, headers)
        self.stop_nginx(front)
        for n in notes:
            print("      " + n)
        a = self.summarize("B9a", pa, [n for n in notes if n.startswith("B9a")],
                           verdict="met" if all(x["p99"] <= bound for _, x in pa) else "MISSED")
        a["target_text"] = "p99 <= %d ms" % bound
        b4 = self.summary.get("B4")
        close_to = b4["ratio"] if b4 else TARGETS["B4"]
        b = self.summarize("B9b", pb, [n for n in notes if n.startswith("B9b")])
        b["target"] = close_to - 0.05
        b["target_text"] = ">= %.2f (B4 %s - 0.05)" % (b["target"], "ratio" if b4 else "target")
        b["verdict"] = "met" if b["ratio"] >= b["target"] else "MISSED"
        return a, b

    def recover(self, front, query, headers):
        """After SIGCONT: wait until a new subject is answered by Redis again."""
        deadline = time.time() + 15
        while time.time() < deadline:
            tok = self.keys.mint("uid", self.fresh_subjects(1, "b9-check")[0])
            _, h = check(front.port, fill(query, tok, ""), [(k, fill(v, tok, "")) for k, v in headers])
            if h.get("x-source") == "default":
                return
            time.sleep(0.2)
        fail("B9: the lookups did not recover within 15 s of SIGCONT")

    # -- output -----------------------------------------------------------------
    def rows(self):
        order = ["B2", "B3", "B4", "B4C", "B5", "B6", "B7", "B7T", "B8", "B9a", "B9b"]
        return [self.summary[s] for s in order if s in self.summary]

    def table(self):
        b1 = [r for r in self.runs if r["scenario"] == "B1" and not r.get("discarded")]
        print("\nMedians of %d round(s) of %g s, %d connections, %d wrk threads; ratio = median of per-round "
              "requests/s ratios to the B1 run just before (same request stream)."
              % (self.args.rounds, self.args.duration, self.args.connections, self.args.threads))
        hdr = "%-4s %-56s %9s %8s %8s %9s %8s %7s %14s %6s  %s" % (
            "", "scenario", "req/s", "p50 ms", "p99 ms", "B1 req/s", "B1 p99", "ratio", "front us/req", "other",
            "target")
        print(hdr)
        print("-" * len(hdr))
        print("%-4s %-56s %9.0f %8.2f %8.2f %9s %8s %7s %14s %6s  %s" % (
            "B1", DESCRIPTIONS["B1"] + " (all runs)", med([r["rps"] for r in b1]), med([r["p50"] for r in b1]),
            med([r["p99"] for r in b1]), "", "", "1.00x",
            "%.1f" % med([r.get("front_cpu_us", float("nan")) for r in b1]), "", "baseline"))
        for r in self.rows():
            if r.get("target_text"):
                tgt = "%s: %s" % (r["target_text"], r["verdict"])
            elif r["target"] is not None:
                tgt = ">= %.2f: %s" % (r["target"], r["verdict"])
            else:
                tgt = "report"
            print("%-4s %-56s %9.0f %8.2f %8.2f %9.0f %8.2f %6.3fx %14s %5.0f%%  %s" % (
                r["scenario"], r["description"], r["rps"], r["p50"], r["p99"], r["b1_rps"], r["b1_p99"],
                r["ratio"], "%.1f/%.1f %.2fx" % (r["cpu_us"], r["b1_cpu_us"], r["cpu_ratio"]),
                100 * r["other_load"], tgt))
            for n in r["notes"]:
                if not n.startswith("round") and not n.startswith("B9"):
                    print("     %s" % n)
        print("'front us/req': CPU time of the front's workers per request, scenario/B1 (medians), and the "
              "median per-round ratio: what the module costs the proxy itself, less sensitive to other load "
              "than requests/s.")
        print("'other': the median share of the machine's CPU that processes outside this benchmark took "
              "during a round (the worse of its two runs).")
        if self.noisy_pairs:
            print("WARNING: during %d round(s) other processes took more than %.0f%% of the CPU; %d of them were "
                  "run again. Ratios from a loaded machine understate or overstate the module's cost."
                  % (self.noisy_pairs, 100 * self.args.max_other_load, self.retried))

    def machine(self):
        def first(cmd):
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (p.stdout + p.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return ""
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
        except OSError:
            pass
        return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu": cpu, "cpus": os.cpu_count(),
                "kernel": platform.release(), "nginx": first([NGINX, "-v"]), "wrk": first([WRK, "-v"]),
                "redis": first(["redis-server", "--version"]),
                "commit": first(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
                "loadavg": open("/proc/loadavg").read().split()[:3]}

    def write(self):
        a = self.args
        os.makedirs(a.out, exist_ok=True)
        doc = {"machine": self.machine(),
               "settings": {k: v for k, v in vars(a).items() if not k.startswith("_")},
               "summary": self.rows(), "runs": [{k: v for k, v in r.items() if k != "raw"} for r in self.runs],
               "failures": FAILURES, "noisy_rounds": self.noisy_pairs, "rounds_run_again": self.retried}
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(doc, f, indent=1, default=str)
        fields = ["scenario", "description", "rounds", "rps", "p50", "p99", "b1_rps", "b1_p50", "b1_p99", "ratio",
                  "cpu_us", "b1_cpu_us", "cpu_ratio", "other_load", "target", "verdict", "added_p50", "added_p99",
                  "added_p50_light", "added_p99_light", "visible_p99"]
        with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for r in self.rows():
                w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
        with open(os.path.join(a.out, "raw-wrk.txt"), "w") as f:
            for r in self.runs:
                f.write("### %s round %d (port %d)\n%s\n" % (r["scenario"], r["round"], r["port"], r.get("raw", "")))
        print("\nresults: %s/results.json, results.csv, raw-wrk.txt" % a.out)
        if a.chart and self.rows():
            self.chart(doc["machine"])

    def chart(self, machine):
        a = self.args
        dat = os.path.join(a.out, "bench.dat")
        with open(dat, "w") as f:
            f.write("# scenario b1_rps rps b1_p99 p99 ratio\n")
            for r in self.rows():
                f.write("%s %.1f %.1f %.3f %.3f %.4f\n" % (r["scenario"], r["b1_rps"], r["rps"], r["b1_p99"],
                                                           r["p99"], r["ratio"]))
        title = ("consent module vs plain nginx proxy_pass (B1): medians of %d x %gs, %d conns, %s, %s"
                 % (a.rounds, a.duration, a.connections, machine["date"][:10], machine["cpu"][:40]))
        gp = os.path.join(a.out, "bench.gp")
        with open(gp, "w") as f:
            f.write("""set terminal pngcairo size 1200,860 font ",10" noenhanced
set output '%(png)s'
set multiplot layout 2,1 title "%(title)s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set ylabel "requests/s"
plot '%(dat)s' using 2:xtic(1) title "B1 baseline (same round, same requests)" lc rgb "#9e9e9e", \\
     '' using 3 title "scenario" lc rgb "#1f77b4", \\
     '' using ($0+0.17):3:(sprintf("%%.2fx", $6)) with labels offset 0,0.8 notitle
set ylabel "p99 latency (ms)"
set logscale y
set yrange [*:*]
set offsets 0, 0, 0, 0
plot '%(dat)s' using 4:xtic(1) title "B1 baseline p99" lc rgb "#9e9e9e", \\
     '' using 5 title "scenario p99" lc rgb "#d62728"
unset multiplot
""" % dict(png=os.path.abspath(a.chart), title=title.replace('"', "'"), dat=dat))
        p = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
        if p.returncode != 0:
            fail("gnuplot: %s" % p.stderr.strip()[-300:])
        else:
            print("chart: %s" % a.chart)

    # -- for profiling -------------------------------------------------------------
    def hold(self, scenario):
        """Start B1 and one scenario's front (with its request stream), print
        how to drive them, and wait (Ctrl-C stops): for perf or callgrind."""
        specs = {"B2": ("off", False, True, [(self.uid, "")]), "B3": ("on", False, False, [("", "")]),
                 "B4": ("on", False, True, [(self.uid, "")]), "B5": ("on", True, True, [(self.purl, self.uid)]),
                 "B8": ("on", False, True, [(self.uid, "")])}
        if scenario not in specs:
            raise SystemExit("--hold takes one of %s" % ", ".join(specs))
        consent, purl, cookie, entries_list = specs[scenario]
        front = self.front(scenario, consent)
        lua, entries, query, headers = self.files(scenario, purl, cookie)
        write_entries(entries, entries_list)
        if consent == "on" and cookie:
            self.warm(front, fill(query, *entries_list[0]), [(k, fill(v, *entries_list[0])) for k, v in headers])
        for name, n in (("B1", self.b1), (scenario, front)):
            workers = subprocess.run(["pgrep", "-P", str(n.proc.pid)], capture_output=True, text=True).stdout.split()
            print("%s: port %d, master %d, workers %s\n  %s" % (name, n.port, n.proc.pid, ",".join(workers),
                                                              " ".join(self.wrk.cmd(n.port, lua, entries, 5))))
        print("holding; Ctrl-C (or SIGTERM) stops everything", flush=True)
        while True:
            time.sleep(3600)

    # -- all of it ----------------------------------------------------------------
    def main(self):
        a = self.args
        if a.hold:
            self.setup()
            self.hold(a.hold.upper())
        runners = {"B2": self.run_b2, "B3": self.run_b3, "B4": self.run_b4, "B4C": self.run_b4c, "B5": self.run_b5,
                   "B6": self.run_b6, "B7": self.run_b7, "B7T": self.run_b7t, "B8": self.run_b8,
                   "B9": self.run_b9}
        self.setup()
        for s in a.scenarios:
            say("%s: %s, interleaved with B1" % (s, DESCRIPTIONS.get(s, DESCRIPTIONS.get(s + "a"))))
            runners[s]()
        self.table()
        self.write()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--module", default=os.path.join(REPO, "build-release", "ngx_http_consent_module.so"))
    ap.add_argument("--rounds", type=int, default=5, help="A B rounds per scenario (default 5)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="front nginx worker_processes (default 2)")
    ap.add_argument("--upstream-workers", type=int, default=1, help="upstream worker_processes (default 1)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per front, 0 for none (default 1)")
    ap.add_argument("--update-rate", type=int, default=1000, help="B8 updates per second (default 1000)")
    ap.add_argument("--p99-margin", type=int, default=50,
                    help="B9a: p99 may exceed the %d ms lookup timeout by this (ms, default 50)" % REDIS_TIMEOUT_MS)
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS), help="comma-separated, e.g. B4,B7")
    ap.add_argument("--max-other-load", type=float, default=0.15,
                    help="run a round again when other processes took more than this share of all CPUs "
                         "during it (default 0.15)")
    ap.add_argument("--retries", type=int, default=None,
                    help="times a round may be run again (default 2; 0 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 2 s, 1 s warm-up, no re-runs")
    ap.add_argument("--out", default=os.path.join(REPO, "build-release", "macro"))
    ap.add_argument("--chart", default=os.path.join(REPO, "docs", "bench.png"), help="PNG to write ('' for none)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, too")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    ap.add_argument("--hold", metavar="SCENARIO",
                    help="start B1 and SCENARIO's front, print wrk commands and wait (for profiling)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.duration, a.warmup = 1, 2, 1
    if a.retries is None:
        a.retries = 0 if a.quick else 2
    a.scenarios = [s.strip().upper() for s in a.scenarios.split(",") if s.strip()]
    for s in a.scenarios:
        if s not in ALL_SCENARIOS:
            ap.error("unknown scenario %s (B1 runs with every scenario)" % s)
    if a.duration < 1:
        ap.error("--duration is whole seconds, at least 1 (wrk's unit)")
    if a.connections < a.threads:
        ap.error("--connections must be at least --threads")
    return a


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--_publish":
        publisher_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    args = parse_args()
    bench = Bench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        bench.main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        bench.cleanup()
    missed = [r["scenario"] for r in bench.rows() if r.get("verdict") == "MISSED"]
    if missed:
        print("\ntargets MISSED: %s" % ", ".join(missed))
    if FAILURES:
        print("\nFAILED CHECKS (%d):" % len(FAILURES))
        for f in FAILURES:
            print("  - " + f)
        return 1
    if missed and args.strict:
        return 1
    print("\nall checks passed (no non-2xx responses, no socket errors, Redis call counts as required)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
