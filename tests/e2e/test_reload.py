#!/usr/bin/python3
"""Reloads (SIGHUP) under continuous traffic: no request fails, and tokens
under a key that stays configured keep working while the key set changes.

Run: /usr/bin/python3 tests/e2e/test_reload.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SUBJECT = "cust-reload-0001"

HTTP = """
    consent_key 1 {d}/k1.key{issue};
    consent_key 2 {d}/k2.key;
    {extra_keys}
    consent_pseudonym_key {d}/p.key;
    consent_purpose service granted;
    consent_purpose analysis denied gpc;
    consent_purpose marketing denied;
    consent_purpose personalization granted gpc;
    consent_uid_cookie vid purpose=personalization max_age=30d;
    consent_strip_args marketing utm_* gclid fbclid;
    consent_strip_cookies analysis _ga _ga_* _gid;
"""

SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            consent on;
            proxy_pass http://127.0.0.1:{up};
            proxy_set_header X-Consent-Status $consent_token_status;
            proxy_set_header X-Consent-Subject-Id $consent_subject_id;
            proxy_set_header X-Consent-Stripped $consent_stripped;
        }}
    }}
"""


class TestReload(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.up = H.EchoUpstream().start()
        self.addCleanup(self.up.stop)
        self.ngx = H.Nginx(workers=2, error_log_level="info")
        self.addCleanup(self.ngx.cleanup)
        self.k1 = H.keygen(self.ngx.path("k1.key"), "xchacha20poly1305")
        self.k2 = H.keygen(self.ngx.path("k2.key"), "aes256gcm")
        self.k3 = H.keygen(self.ngx.path("k3.key"), "aes256gcm")
        H.pseudonym_keygen(self.ngx.path("p.key"))
        self.configure("")
        self.ngx.start()

    def configure(self, extra_keys, issue=" issue"):
        d = self.ngx.dir
        self.ngx.write_config(HTTP.format(d=d, issue=issue, extra_keys=extra_keys.format(d=d)),
                              SERVERS.format(port=self.ngx.port, up=self.up.port))

    def check(self, token, want_status, want_subject):
        """One request; None when it went as expected, else a description."""
        try:
            r = self.ngx.get("/p?ctk=%s&utm_source=x&k=1" % token,
                             [("Cookie", "_ga=1; a=1")], timeout=10)
        except Exception as e:  # noqa: BLE001 - any failure counts
            return "%s: %s" % (type(e).__name__, e)
        if r.status != 200:
            return "status %d" % r.status
        try:
            s = H.Seen(r)
        except AssertionError as e:
            return str(e)
        got = (s.target, s.one("X-Consent-Status"), s.one("X-Consent-Subject-Id"), s.cookies)
        want = ("/p?k=1", want_status, want_subject, ["a=1"])
        return None if got == want else "got %r, want %r" % (got, want)

    def test_reload_under_traffic(self):
        t1 = H.mint(self.k1, 1, SUBJECT, campaign="reload")
        t3 = H.mint(self.k3, 3, SUBJECT)
        self.assertIsNone(self.check(t1, "valid", SUBJECT))
        self.assertIsNone(self.check(t3, "unknown_key", None))

        stop = threading.Event()
        lock = threading.Lock()
        failures, done = [], [0]

        def client():
            while not stop.is_set():
                err = self.check(t1, "valid", SUBJECT)
                with lock:
                    done[0] += 1
                    if err and len(failures) < 20:
                        failures.append(err)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for th in threads:
            th.start()
        try:
            time.sleep(0.6)
            # 1: the same configuration
            self.assertTrue(self.ngx.reload(), "first reload did not start new workers\n"
                            + self.ngx.error_log()[-2000:])
            time.sleep(0.6)
            # 2: a changed key set: key 3 added
            self.configure("consent_key 3 {d}/k3.key;")
            rc, out = self.ngx.test_config()
            self.assertEqual(rc, 0, out)
            self.assertTrue(self.ngx.reload(), "second reload did not start new workers\n"
                            + self.ngx.error_log()[-2000:])
            time.sleep(1.2)
        finally:
            stop.set()
            for th in threads:
                th.join(H.slow(15))
        self.assertEqual(failures, [], "requests failed during the reloads")
        self.assertGreater(done[0], 20, "too little traffic to mean anything")
        # after the second reload: key 3 opens, key 1 still does
        self.assertIsNone(self.check(t3, "valid", SUBJECT))
        self.assertIsNone(self.check(t1, "valid", SUBJECT))
        self.assertEqual(self.ngx.crash_lines(), [])

    def test_uid_cookie_survives_reload(self):
        t1 = H.mint(self.k1, 1, SUBJECT)
        r = self.ngx.get("/p?ctk=" + t1)
        vid = [c for c in r.set_cookies() if c.startswith("vid=")]
        self.assertEqual(len(vid), 1, r.set_cookies())
        value = vid[0].split(";")[0][len("vid="):]
        self.configure("consent_key 3 {d}/k3.key;")
        self.assertTrue(self.ngx.reload())
        s = H.Seen(self.ngx.get("/p", [("Cookie", "a=1; vid=" + value)]))
        self.assertEqual((s.one("X-Consent-Status"), s.one("X-Consent-Subject-Id")),
                         ("valid", SUBJECT))

    def uid_cookie_key_id(self):
        """The key id of the UID cookie set after a PURL visit."""
        t1 = H.mint(self.k1, 1, SUBJECT)
        r = self.ngx.get("/p?ctk=" + t1)
        vid = [c for c in r.set_cookies() if c.startswith("vid=")]
        self.assertEqual(len(vid), 1, r.set_cookies())
        rc, js = H.inspect(vid[0].split(";")[0][len("vid="):],
                           (1, self.k1), (2, self.k2), (3, self.k3))
        self.assertEqual((rc, js["status"], js["kind"]), (0, "valid", "uid"), js)
        return js["kid"]

    def reload_and_settle(self):
        self.assertTrue(self.ngx.reload_settled(), self.ngx.error_log()[-2000:])

    def test_issuing_key_is_marked_else_last_declared(self):
        """consent_key: the key marked `issue`, else the last declared one,
        signs new UID cookies (interface.md, nginx directives)."""
        self.assertEqual(self.uid_cookie_key_id(), 1)      # 1 marked issue
        self.configure("", issue="")                       # keys 1, 2: none marked
        self.reload_and_settle()
        self.assertEqual(self.uid_cookie_key_id(), 2)
        self.configure("consent_key 3 {d}/k3.key;", issue="")
        self.reload_and_settle()
        self.assertEqual(self.uid_cookie_key_id(), 3)
        self.configure("consent_key 3 {d}/k3.key;")        # 1 marked again
        self.reload_and_settle()
        self.assertEqual(self.uid_cookie_key_id(), 1)

    def test_bad_reload_keeps_old_configuration(self):
        t1 = H.mint(self.k1, 1, SUBJECT)
        H.keygen(self.ngx.path("k4.key"))
        os.chmod(self.ngx.path("k4.key"), 0o644)
        self.configure("consent_key 4 {d}/k4.key;")
        self.assertFalse(self.ngx.reload(timeout=3), "a reload with a bad key file took effect")
        self.assertIn("readable by group or others", self.ngx.error_log())
        self.assertIsNone(self.check(t1, "valid", SUBJECT))
        self.assertEqual(self.ngx.crash_lines(), [])


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
