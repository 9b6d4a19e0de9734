#!/usr/bin/python3
"""Serves requests through the packaged nginx running conf/debian-site.conf
and checks what reached the upstream. Runs inside the throwaway system view
(tests/package/install_check.sh), after nginx was started.

    serve_check.py --token TOKEN [--nginx 127.0.0.1:80] [--host shop.example.com]
                   [--upstream 127.0.0.1:8081]

The upstream is an echo server in this process (in the style of
tests/e2e/harness.py's EchoUpstream) on the address debian-site.conf's
proxy_pass names. Standard library only: it runs with Debian 12's and
Debian 13's python3.
"""

import argparse
import http.client
import http.server
import re
import sys
import threading


class Echo(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr):
        super().__init__(addr, Handler)
        self.seen = []
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with self.server.lock:
            self.server.seen.append((self.requestline, list(self.headers.items())))
        body = b"upstream\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", required=True)
    ap.add_argument("--nginx", default="127.0.0.1:80")
    ap.add_argument("--host", default="shop.example.com")
    ap.add_argument("--upstream", default="127.0.0.1:8081")
    a = ap.parse_args()

    uhost, uport = a.upstream.rsplit(":", 1)
    echo = Echo((uhost, int(uport)))
    threading.Thread(target=echo.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    nhost, nport = a.nginx.rsplit(":", 1)
    failures = []

    def request(target):
        """GET target through nginx; what the upstream received."""
        with echo.lock:
            before = len(echo.seen)
        conn = http.client.HTTPConnection(nhost, int(nport), timeout=10)
        conn.request("GET", target, headers={"Host": a.host, "Cookie": "lang=en"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        with echo.lock:
            got = echo.seen[before:]
        if resp.status != 200 or body != b"upstream\n" or len(got) != 1:
            raise SystemExit("FAIL: GET %s: status %d, body %r, %d request(s) reached the upstream"
                             % (target, resp.status, body[:80], len(got)))
        line, headers = got[0]
        return line.split(" ")[1], {k.lower(): v for k, v in headers}, line, headers

    def check(cond, what):
        print(("ok: " if cond else "FAIL: ") + what)
        if not cond:
            failures.append(what)

    # A mail link: the token (always removed) and utm_source (marketing is
    # denied) never reach the upstream; page does; the subject's pseudonym
    # shows that the module opened the token.
    target = "/offers?ctk=%s&utm_source=mail&page=2" % a.token
    got, hdrs, line, raw = request(target)
    print("    sent:     GET /offers?ctk=<token>&utm_source=mail&page=2")
    print("    upstream: %s" % line)
    check(got == "/offers?page=2", "the upstream received /offers?page=2 (ctk and utm_source stripped)")
    everything = line + "\n" + "\n".join("%s: %s" % kv for kv in raw)
    check(a.token not in everything and "utm_source" not in everything and "ctk=" not in everything,
          "neither the token nor utm_source appears anywhere in what the upstream received")
    subject = hdrs.get("x-consent-subject", "")
    check(re.fullmatch(r"[0-9a-f]{32}", subject) is not None,
          "X-Consent-Subject is the subject's pseudonym (%s)" % (subject or "missing"))
    check(hdrs.get("cookie") == "lang=en", "the Cookie lang=en is kept")

    # No token: utm_source still goes (no consent), q stays, no subject.
    got, hdrs, line, _ = request("/search?utm_source=mail&q=shoes")
    print("    upstream: %s" % line)
    check(got == "/search?q=shoes", "without a token: /search?q=shoes (utm_source stripped)")
    check("x-consent-subject" not in hdrs, "without a token: no X-Consent-Subject")

    echo.shutdown()
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
