#!/usr/bin/python3
"""Publish-to-visible latency: how long after a consent write (the published
Lua script: fields, v+1, PUBLISH) the first request through nginx sees it.

Starts its own redis-server and nginx (2 workers, the built module, a shared
cache), then repeats: write a new version of one subject's record, and from
the moment the write's reply arrives, send requests on a keep-alive
connection until one reports the new version ($consent_version). Prints
p50/p90/p99/max over the runs.

  bench/update_latency.py --module build/ngx_http_consent_module.so \
      --consentctl build/consentctl [--runs 500]
"""
import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_script():
    text = open(os.path.join(REPO, "store", "write_script.h")).read()
    start = text.index('R"lua(') + len('R"lua(')
    return text[start:text.index(')lua"', start)]


class Resp:
    """A minimal RESP client on one persistent connection."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()

    def read(self):
        line = self.file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", required=True)
    ap.add_argument("--consentctl", required=True)
    ap.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="consent-latency-")
    redis_port, nginx_port, up_port = free_port(), free_port(), free_port()
    procs = []
    try:
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", tmp],
                                 stdout=subprocess.DEVNULL)
        procs.append(redis)
        old = os.umask(0o077)
        with open(os.path.join(tmp, "token.key"), "w") as f:
            f.write(subprocess.check_output([args.consentctl, "keygen"]).decode())
        with open(os.path.join(tmp, "pseudonym.key"), "w") as f:
            f.write(subprocess.check_output([args.consentctl, "pseudonym-keygen"]).decode())
        os.umask(old)
        token = subprocess.check_output([args.consentctl, "mint", "--key", os.path.join(tmp, "token.key"),
                                         "--kid", "1", "--subject", "bench-subject"]).decode().strip()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
load_module %(module)s;
worker_processes 2;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(tmp)s; proxy_temp_path %(tmp)s; fastcgi_temp_path %(tmp)s;
    uwsgi_temp_path %(tmp)s; scgi_temp_path %(tmp)s;
    consent_key 1 %(tmp)s/token.key;
    consent_pseudonym_key %(tmp)s/pseudonym.key;
    consent_redis 127.0.0.1:%(redis)d timeout=200ms;
    consent_cache zone=consent:4m ttl=60s;
    consent_purpose service granted;
    consent_purpose marketing denied;
    server {
        listen 127.0.0.1:%(port)d;
        location / { consent on; add_header X-V $consent_version; empty_gif; }
    }
}
""" % {"module": os.path.abspath(args.module), "tmp": tmp, "redis": redis_port, "port": nginx_port})
        subprocess.check_call(["/usr/sbin/nginx", "-p", tmp, "-c", conf])
        time.sleep(0.5)

        r = Resp(redis_port)
        script = write_script()
        key = "consent:{bench-subject}"

        def write(value):
            return int(r.call("EVAL", script, 1, key, "consent:updates", "bench-subject", "merge",
                              "marketing", value))

        conn = http.client.HTTPConnection("127.0.0.1", nginx_port)

        def version():
            conn.request("GET", "/?ctk=" + token)
            resp = conn.getresponse()
            resp.read()
            return resp.getheader("X-V")

        write(0)
        deadline = time.time() + 5
        while version() in (None, "") and time.time() < deadline:
            time.sleep(0.01)

        samples, polls = [], 0
        for i in range(args.runs):
            # make sure the current version is cached before the write
            version()
            v = write(i % 2)
            t0 = time.perf_counter()
            while True:
                polls += 1
                seen = version()
                if seen and int(seen) >= v:
                    break
                if time.perf_counter() - t0 > 2:
                    raise SystemExit("version %d not visible after 2 s" % v)
            samples.append((time.perf_counter() - t0) * 1000)

        print("publish-to-visible latency over %d writes (%d requests):" % (len(samples), polls))
        for p in (50, 90, 99):
            print("  p%-3d %7.3f ms" % (p, percentile(samples, p)))
        print("  max  %7.3f ms" % max(samples))
        print("  target: p99 < 10 ms: %s" % ("met" if percentile(samples, 99) < 10 else "MISSED"))
    finally:
        pidfile = os.path.join(tmp, "nginx.pid")
        if os.path.exists(pidfile):
            try:
                os.kill(int(open(pidfile).read()), signal.SIGQUIT)
                time.sleep(0.5)
            except (OSError, ValueError):
                pass
        for p in procs:
            p.terminate()
            p.wait()
        if os.environ.get("KEEP_TMP"):
            print("kept", tmp)
        else:
            subprocess.call(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
