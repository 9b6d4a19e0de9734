#!/usr/bin/python3
"""The demo of `./dev run` shows the module's main job: conf/demo.conf as
shipped (only its ports moved to free ones), its Redis, and the walk-through
`./dev run` prints, step 5: a consent change written with consentctl
changes how the same mail link is decided, first from Redis, then from the
cache; a withdrawal reaches the edge at once.

Run: /usr/bin/python3 tests/e2e/test_demo.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import re
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBJECT = "cust-000042"   # the walk-through's customer


class TestDemoWalkThrough(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.redis = H.RedisServer().start()
        cls.addClassCleanup(cls.redis.cleanup)
        cls.ngx = H.Nginx(workers=2)
        cls.addClassCleanup(cls.ngx.cleanup)
        d = cls.ngx.dir
        for sub in ("keys", "logs", "tmp", "modules"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        H.keygen(os.path.join(d, "keys", "token.key"))
        H.pseudonym_keygen(os.path.join(d, "keys", "pseudonym.key"))
        os.symlink(H.MODULE,
                   os.path.join(d, "modules", "ngx_http_consent_module.so"))
        cls.backend = H.free_port()
        with open(os.path.join(ROOT, "conf", "demo.conf")) as f:
            conf = f.read()
        for old, new in (("127.0.0.1:8080", "127.0.0.1:%d" % cls.ngx.port),
                         ("127.0.0.1:8081", "127.0.0.1:%d" % cls.backend),
                         ("consent_redis 127.0.0.1:6379", "consent_redis " + cls.redis.address)):
            cls.assertIn(cls, old, conf)
            conf = conf.replace(old, new)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        cls.proc = subprocess.Popen(H.nginx_argv(d, ["-p", d + "/", "-c", "nginx.conf",
                                                     "-g", "daemon off;"]),
                                    env=H.nginx_env(d))
        cls.addClassCleanup(cls.stop)
        H.wait_port(cls.ngx.port)
        H.wait_port(cls.backend)
        cls.token = H.mint(os.path.join(d, "keys", "token.key"), 1, SUBJECT,
                           campaign="2026-11-newsletter", ttl="7d")
        # as a person typing the walk-through would: the edge has heard its
        # first heartbeat, so a second request can come from the cache
        deadline = time.monotonic() + 10
        while True:
            samples, _, _ = H.parse_prometheus(cls.ngx.get("/consent-status").body.decode())
            if samples.get("consent_subscription_up") == 1:
                break
            if time.monotonic() > deadline:
                raise AssertionError("the demo's subscription never came up")
            time.sleep(0.05)

    @classmethod
    def stop(cls):
        cls.proc.terminate()
        cls.proc.wait(15)

    def ctl(self, *args):
        _, out, _ = H.run_consentctl(args[0], "--redis", self.redis.address, *args[1:])
        return out.strip()

    def mail_link(self):
        """Step 1's request; the backend's view and the response."""
        resp = self.ngx.get("/offers?ctk=%s&utm_source=mail&page=2" % self.token)
        self.assertEqual(resp.status, 200, resp)
        body = resp.body.decode()
        source = re.search(r"X-Consent-Source: +(\S*)", body).group(1)
        purposes = re.search(r"X-Consent-Purposes: +(\S*)", body).group(1)
        request_line = body.splitlines()[1].strip()
        return source, purposes, request_line, resp

    def test_walk_through(self):
        # 1: Redis has no record yet: the defaults
        source, purposes, line, resp = self.mail_link()
        self.assertEqual((source, purposes), ("default", "service,billing"))
        self.assertEqual(line, "GET /offers?page=2 HTTP/1.0")
        self.assertFalse([c for c in resp.set_cookies() if c.startswith("vid=")])

        # 5: the customer grants analysis and campaigns
        self.assertRegex(self.ctl("set", SUBJECT, "analysis=1", "campaigns=1"), r"^v=\d+$")
        deadline = time.monotonic() + 3
        while True:
            source, purposes, line, resp = self.mail_link()
            if "campaigns" in purposes:
                break
            self.assertLess(time.monotonic(), deadline, "the change never reached the edge")
            time.sleep(0.02)
        self.assertEqual((source, purposes), ("redis", "service,billing,analysis,campaigns"))
        self.assertEqual(line, "GET /offers?utm_source=mail&page=2 HTTP/1.0")
        self.assertTrue([c for c in resp.set_cookies() if c.startswith("vid=")], resp.set_cookies())
        source, purposes, _, _ = self.mail_link()
        self.assertEqual((source, purposes), ("cache", "service,billing,analysis,campaigns"))

        # ... and withdraws campaigns: heard at once
        self.ctl("set", SUBJECT, "campaigns=0")
        deadline = time.monotonic() + 3
        while True:
            source, purposes, line, _ = self.mail_link()
            if "campaigns" not in purposes:
                break
            self.assertLess(time.monotonic(), deadline, "the withdrawal never reached the edge")
            time.sleep(0.02)
        self.assertEqual(line, "GET /offers?page=2 HTTP/1.0")
        self.assertIn('"campaigns":0', self.ctl("get", SUBJECT))
        self.assertEqual([(n, w) for n, w, _ in self.ngx.findings()], [])


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
