#!/usr/bin/python3
"""End to end: the consent choice endpoint (consent_choice), choice cookies
and policy revisions, through the packaged nginx (2 workers) with a private
redis-server, checked against the contract's section "Consent choices at the
edge, and policy revisions".

Run: /usr/bin/python3 tests/e2e/test_choice.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import json
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

CHANNEL = "consent:updates"
FORM = ("Content-Type", "application/x-www-form-urlencoded")
JSON = ("Content-Type", "application/json")

VARS = [
    ("X-Consent-Purposes", "$consent_purposes"),
    ("X-Consent-Source", "$consent_source"),
    ("X-Consent-Version", "$consent_version"),
    ("X-Consent-Reprompt", "$consent_reprompt"),
    ("X-Consent-Revision", "$consent_revision"),
    ("X-Consent-Stripped", "$consent_stripped"),
]

HTTP_TEXT = """
    consent_key 1 {d}/k1.key issue;
    consent_pseudonym_key {d}/p.key;
    consent_redis {redis} timeout={timeout}{auth};
    consent_cache zone=consent:1m ttl=60s;
    consent_policy_revision {revision};
    consent_purpose service granted;
    consent_purpose analysis denied;
    consent_purpose marketing denied gpc;
    consent_uid_cookie vid;
    consent_choice_cookie cc secure=off max_age=30d;
    consent_strip_cookies analysis _ga;
    consent_strip_args marketing utm_*;
"""

SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            consent on;
            proxy_pass http://127.0.0.1:{up};
{headers}
        }}
        location = /consent {{ consent_choice; }}
        location = /status {{ consent_status; }}
    }}
"""


class ChoiceBase(unittest.TestCase):
    """One redis-server and one nginx for the class."""

    maxDiff = None
    revision = 3
    timeout = H.slow_ms(300)
    acl = None            # ACL file lines for the redis-server
    auth = ""             # user= password= for consent_redis

    @classmethod
    def setUpClass(cls):
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.redis = H.RedisServer(acl=cls.acl)
        cls.addClassCleanup(cls.redis.cleanup)
        cls.redis.start()
        cls.ngx = H.Nginx(workers=2, error_log_level="info")
        cls.addClassCleanup(cls.ngx.cleanup)
        cls.k1 = H.keygen(cls.ngx.path("k1.key"))
        H.pseudonym_keygen(cls.ngx.path("p.key"))
        cls.configure(cls.revision)
        cls.ngx.start()
        cls.wait_subscribed()

    @classmethod
    def configure(cls, revision):
        headers = "".join("            proxy_set_header %s %s;\n" % hv for hv in VARS)
        cls.ngx.write_config(
            HTTP_TEXT.format(d=cls.ngx.dir, redis=cls.redis.address, timeout=cls.timeout,
                             auth=cls.auth, revision=revision),
            SERVERS.format(port=cls.ngx.port, up=cls.up.port, headers=headers))

    @classmethod
    def wait_subscribed(cls):
        deadline = time.monotonic() + H.slow(5)
        while time.monotonic() < deadline:
            text = cls.ngx.get("/status").body.decode()
            if "consent_subscription_up 1" in text:
                return
            time.sleep(0.02)
        raise AssertionError("no subscription:\n" + cls.ngx.error_log()[-2000:])

    def tearDown(self):
        self.assertEqual(self.ngx.crash_lines(), [])

    # -- helpers --------------------------------------------------------------
    def uid(self, subject):
        return H.mint(self.k1, 1, subject, kind="uid")

    def endpoint(self, method="GET", body=None, headers=(), cookies=None):
        hdrs = list(headers)
        if cookies:
            hdrs.append(("Cookie", cookies))
        return self.ngx.request(method, "/consent", hdrs, body)

    def document(self, resp, status=200):
        self.assertEqual(resp.status, status, resp.body[:500])
        self.assertEqual(resp.header("Cache-Control"), "no-store")
        self.assertEqual(resp.header("Content-Type"), "application/json")
        return resp.json()

    def choice_cookie(self, resp):
        """The value of the choice cookie the answer sets, checking its attributes."""
        found = [c for c in resp.set_cookies() if c.startswith("cc=")]
        self.assertEqual(len(found), 1, resp.set_cookies())
        attrs = [a.strip() for a in found[0].split(";")]
        self.assertIn("HttpOnly", attrs)
        self.assertIn("Max-Age=%d" % (30 * 86400), attrs)
        self.assertIn("Path=/", attrs)
        self.assertIn("SameSite=Lax", attrs)
        self.assertNotIn("Secure", attrs)
        return attrs[0][len("cc="):]

    def page(self, cookies="", headers=()):
        """A page through `location /`: what the upstream saw."""
        hdrs = list(headers)
        if cookies:
            hdrs.append(("Cookie", cookies))
        seen = H.Seen(self.ngx.get("/page?utm_source=mail&x=1", hdrs))
        return seen

    def var(self, seen, name):
        return seen.one("X-Consent-" + name) or ""

    def record(self, subject):
        items = self.redis.cli("HGETALL", "consent:{%s}" % subject)
        return dict(zip(items[0::2], items[1::2]))


class TestRefusals(ChoiceBase):
    """Every refusal status, each with {"error": ...}, no-store, and nothing changed."""

    def error(self, resp, status):
        doc = self.document(resp, status)
        self.assertEqual(list(doc), ["error"])
        self.assertEqual([c for c in resp.set_cookies() if c.startswith("cc=")], [])
        return doc["error"]

    def test_405_other_methods(self):
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
            r = self.endpoint(method, body="analysis=1", headers=[FORM])
            self.error(r, 405)
            self.assertEqual(r.header("Allow"), "GET, POST")

    def test_415_other_content_types(self):
        for headers in ([], [("Content-Type", "text/plain")], [("Content-Type", "multipart/form-data; boundary=x")],
                        [("Content-Type", "application/json; boundary=x")],
                        [("Content-Type", "application/jsonx")]):
            self.error(self.endpoint("POST", "analysis=1", headers), 415)
        # a charset parameter is allowed, in either case
        for ct in ("application/json; charset=utf-8", "Application/JSON;charset=UTF-8",
                   "application/x-www-form-urlencoded; charset=UTF-8"):
            body = '{"analysis":true}' if "json" in ct.lower() else "analysis=1"
            self.document(self.endpoint("POST", body, [("Content-Type", ct)]))

    def test_413_over_4096_bytes(self):
        big = "analysis=1&" + "x" * 4090
        self.assertIn("4096", self.error(self.endpoint("POST", big, [FORM]), 413))
        # the same without Content-Length: chunked
        chunked = ("%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)).encode()
        raw = (b"POST /consent HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        self.error(self.ngx.request("POST", "/consent", raw=raw), 413)
        # exactly 4096 bytes is taken
        exact = "analysis=1" + "&" * (4096 - len("analysis=1"))
        self.assertEqual(len(exact), 4096)
        self.document(self.endpoint("POST", exact, [FORM]))

    def test_400_names_the_unknown_purpose_and_bad_values(self):
        e = self.error(self.endpoint("POST", "analysis=1&ads=1", [FORM]), 400)
        self.assertIn("ads", e)
        e = self.error(self.endpoint("POST", '{"analysis":true,"tracking\\"x":false}', [JSON]), 400)
        self.assertIn('tracking"x', e)
        for body, headers in (("analysis=yes", [FORM]), ("analysis=", [FORM]), ("analysis=2", [FORM]),
                              ('{"analysis":1}', [JSON]), ('{"analysis":"true"}', [JSON]),
                              ('{"analysis":null}', [JSON])):
            self.assertIn("analysis", self.error(self.endpoint("POST", body, headers), 400), body)
        for body, headers in (("analysis", [FORM]), ("analysis=1&analysis=0", [FORM]),
                              ('{"analysis":true', [JSON]), ('["analysis"]', [JSON]),
                              ('{"analysis":{"x":true}}', [JSON]), ('{"analysis":true} x', [JSON]),
                              ('{"analysis":true,"analysis":false}', [JSON]), ("", [JSON])):
            self.assertIn("malformed", self.error(self.endpoint("POST", body, headers), 400), body)

    def test_403_cross_site_posts(self):
        for headers in ([("Origin", "https://evil.example")], [("Origin", "null")],
                        [("Origin", "http://localhost:1")], [("Origin", "http://localhost.evil")],
                        [("Sec-Fetch-Site", "cross-site")],
                        [("Origin", "http://localhost"), ("Sec-Fetch-Site", "cross-site")]):
            self.error(self.endpoint("POST", "analysis=1", [FORM] + headers), 403)
        # same host and port, whatever the scheme; same-site; neither header
        for headers in ([("Origin", "http://localhost")], [("Origin", "https://LOCALHOST:443")],
                        [("Origin", "https://localhost:443")], [("Sec-Fetch-Site", "same-site")],
                        [("Sec-Fetch-Site", "same-origin"), ("Origin", "http://localhost")], []):
            self.document(self.endpoint("POST", "analysis=1", [FORM] + headers))
        # a GET is never refused for its Origin
        self.document(self.endpoint("GET", headers=[("Origin", "https://evil.example")]))

    def test_409_erased_subject_nothing_written(self):
        s = "cust-choice-erased"
        H.run_ctl("erase", "--redis", self.redis.address, s)
        before = self.record(s)
        vid = self.uid(s)
        self.assertIn("erased", self.error(self.endpoint("POST", "analysis=1", [FORM], "vid=" + vid), 409))
        self.assertEqual(self.record(s), before)
        doc = self.document(self.endpoint("GET", cookies="vid=" + vid))
        self.assertFalse(doc["identified"])
        self.assertEqual(doc["purposes"], {"service": False, "analysis": False, "marketing": False})


class TestAnonymous(ChoiceBase):
    """A visitor without token or UID cookie: choices in the sealed choice cookie."""

    def test_get_without_anything_takes_the_defaults(self):
        doc = self.document(self.endpoint())
        self.assertEqual(list(doc), ["purposes", "source", "revision", "reprompt", "identified"])
        self.assertEqual(list(doc["purposes"]), ["service", "analysis", "marketing"])
        self.assertEqual(doc, {"purposes": {"service": True, "analysis": False, "marketing": False},
                               "source": "none", "revision": None, "reprompt": True, "identified": False})
        self.assertEqual(self.endpoint("HEAD").body, b"")

    def test_accept_then_reject_analysis(self):
        r = self.endpoint("POST", "analysis=1", [FORM])
        doc = self.document(r)
        self.assertEqual(doc, {"purposes": {"service": True, "analysis": True, "marketing": False},
                               "source": "cookie", "revision": self.revision, "reprompt": False,
                               "identified": False})
        cc = self.choice_cookie(r)
        rc, fields = H.inspect(cc, (1, self.k1))
        self.assertEqual(rc, 0, fields)
        self.assertEqual(fields["kind"], "choice")
        self.assertEqual(fields["revision"], self.revision)
        self.assertEqual(fields["choices"], {"analysis": True})

        # the page: _ga reaches the upstream, the choice cookie never does
        seen = self.page("cc=%s; _ga=GA1.2.3; other=1" % cc)
        self.assertEqual(seen.cookies, ["_ga=GA1.2.3; other=1"])
        self.assertEqual(self.var(seen, "Source"), "cookie")
        self.assertEqual(self.var(seen, "Purposes"), "service,analysis")
        self.assertEqual(self.var(seen, "Reprompt"), "0")
        self.assertEqual(self.var(seen, "Revision"), str(self.revision))
        self.assertEqual(self.var(seen, "Stripped"), "utm_source,cc")
        self.assertEqual(self.var(seen, "Version"), "")

        # GET with the cookie says the same
        doc = self.document(self.endpoint(cookies="cc=" + cc))
        self.assertEqual(doc["source"], "cookie")
        self.assertTrue(doc["purposes"]["analysis"])

        # a partial POST keeps the other answers; JSON this time
        r = self.endpoint("POST", '{ "marketing" : true }', [JSON], "cc=" + cc)
        doc = self.document(r)
        self.assertEqual(doc["purposes"], {"service": True, "analysis": True, "marketing": True})
        cc2 = self.choice_cookie(r)
        self.assertEqual(H.inspect(cc2, (1, self.k1))[1]["choices"], {"analysis": True, "marketing": True})

        # rejecting analysis: _ga is stripped again
        r = self.endpoint("POST", "analysis=0", [FORM], "cc=" + cc2)
        self.assertFalse(self.document(r)["purposes"]["analysis"])
        cc3 = self.choice_cookie(r)
        seen = self.page("cc=%s; _ga=GA1.2.3" % cc3)
        self.assertEqual(seen.cookies, [])
        self.assertEqual(self.var(seen, "Purposes"), "service,marketing")
        self.assertEqual(self.var(seen, "Stripped"), "cc,_ga")

    def test_service_can_be_refused_and_gpc_applies_on_top(self):
        r = self.endpoint("POST", "service=0&marketing=1&analysis=1", [FORM])
        cc = self.choice_cookie(r)
        self.assertEqual(self.document(r)["purposes"], {"service": False, "analysis": True, "marketing": True})
        seen = self.page("cc=" + cc, [("Sec-GPC", "1")])
        self.assertEqual(self.var(seen, "Purposes"), "analysis")
        self.assertEqual(self.var(seen, "Source"), "cookie")

    def test_tampered_or_foreign_cookie_is_ignored_and_still_stripped(self):
        cc = self.choice_cookie(self.endpoint("POST", "analysis=1", [FORM]))
        flipped = cc[:40] + ("A" if cc[40] != "A" else "B") + cc[41:]
        uid_as_choice = self.uid("cust-choice-x")
        for bad in (flipped, uid_as_choice, "garbage", ""):
            seen = self.page("cc=%s; _ga=1" % bad)
            self.assertEqual(seen.cookies, [], bad)
            self.assertEqual(self.var(seen, "Source"), "none")
            self.assertEqual(self.var(seen, "Reprompt"), "1")
            self.assertEqual(self.var(seen, "Revision"), "")
            doc = self.document(self.endpoint(cookies="cc=" + bad))
            self.assertEqual(doc["source"], "none")
            self.assertFalse(doc["purposes"]["analysis"])
        # nor does a choice token pass as a visitor-ID cookie
        seen = self.page("vid=" + cc)
        self.assertEqual(self.var(seen, "Source"), "none")

    def test_consentctl_minted_choice_cookie(self):
        r = H.run_ctl("mint", "--key", self.k1, "--kid", "1", "--kind", "choice",
                      "--choices", "analysis=1,marketing=0,retired_purpose=1", "--revision", str(self.revision))
        H.assert_ctl_exit(self, r, 0, "mint --kind choice")
        seen = self.page("cc=%s; _ga=1" % r.stdout.strip())
        self.assertEqual(self.var(seen, "Purposes"), "service,analysis")
        self.assertEqual(seen.cookies, ["_ga=1"])
        for bad in (["--choices", "Analysis=1"], ["--choices", "analysis=2"], ["--choices", "a=1,a=0"],
                    ["--revision", "4294967296"], ["--subject", "x"]):
            r = H.run_ctl("mint", "--key", self.k1, "--kid", "1", "--kind", "choice", *bad)
            H.assert_ctl_exit(self, r, 2, " ".join(bad))


class TestIdentified(ChoiceBase):
    """A visitor with a UID cookie: the record in Redis, through the write script."""

    def test_post_writes_the_record_and_the_next_request_sees_it(self):
        s = "cust-choice-000001"
        vid = "vid=" + self.uid(s)
        doc = self.document(self.endpoint(cookies=vid))
        self.assertTrue(doc["identified"])
        self.assertTrue(doc["reprompt"])
        self.assertIsNone(doc["revision"])
        r = self.endpoint("POST", "analysis=1&marketing=0", [FORM], vid)
        doc = self.document(r)
        self.assertEqual(r.set_cookies(), [])  # no choice cookie for an identified visitor
        self.assertEqual(doc, {"purposes": {"service": True, "analysis": True, "marketing": False},
                               "source": "redis", "revision": self.revision, "reprompt": False,
                               "identified": True})
        self.assertEqual(self.record(s), {"v": "1", "rev": str(self.revision), "analysis": "1",
                                          "marketing": "0"})
        # the very next request, to either worker
        for _ in range(6):
            seen = self.page(vid + "; _ga=1")
            self.assertEqual(self.var(seen, "Purposes"), "service,analysis")
            self.assertEqual(self.var(seen, "Version"), "1")
            self.assertEqual(seen.cookies, ["_ga=1"])

    def test_precedence_record_over_cookie_over_default(self):
        s = "cust-choice-000002"
        vid = "vid=" + self.uid(s)
        # the cookie grants analysis and marketing; the record denies analysis only
        cc = self.choice_cookie(self.endpoint("POST", "analysis=1&marketing=1", [FORM]))
        H.run_ctl("set", "--redis", self.redis.address, s, "analysis=0", "--revision", str(self.revision))
        seen = self.page("%s; cc=%s" % (vid, cc))
        self.assertEqual(self.var(seen, "Purposes"), "service,marketing")
        self.assertIn(self.var(seen, "Source"), ("redis", "cache"))
        self.assertEqual(self.var(seen, "Stripped"), "vid,cc")
        # GPC on top of the cookie's marketing
        seen = self.page("%s; cc=%s" % (vid, cc), [("Sec-GPC", "1")])
        self.assertEqual(self.var(seen, "Purposes"), "service")
        # erasure on top of everything
        H.run_ctl("erase", "--redis", self.redis.address, s)
        deadline = time.monotonic() + H.slow(2)
        while time.monotonic() < deadline:
            seen = self.page("%s; cc=%s" % (vid, cc))
            if self.var(seen, "Purposes") == "":
                break
            time.sleep(0.02)
        self.assertEqual(self.var(seen, "Purposes"), "")
        self.assertEqual(self.var(seen, "Reprompt"), "0")

    def test_concurrent_posts_keep_v_monotonic(self):
        s = "cust-choice-000003"
        vid = "vid=" + self.uid(s)
        results = []

        def post(i):
            body = "analysis=%d" % (i % 2)
            results.append(self.endpoint("POST", body, [FORM], vid))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r.status for r in results), [200] * 16)
        self.assertEqual(self.record(s)["v"], "16")
        seen = self.page(vid)
        self.assertEqual(self.var(seen, "Version"), "16")

    def test_redis_down_identified_503_anonymous_200(self):
        s = "cust-choice-000004"
        vid = "vid=" + self.uid(s)
        self.redis.kill()
        try:
            t0 = time.monotonic()
            r = self.endpoint("POST", "analysis=1", [FORM], vid)
            self.assertLess(time.monotonic() - t0, H.slow(2))
            doc = self.document(r, 503)
            self.assertIn("error", doc)
            r = self.endpoint("POST", "analysis=1", [FORM])
            self.assertTrue(self.document(r)["purposes"]["analysis"])
        finally:
            self.redis.start()
            self.wait_subscribed()
        self.assertEqual(self.record(s), {})

    def test_a_change_that_reaches_redis_late_is_not_applied(self):
        s = "cust-choice-000005"
        vid = "vid=" + self.uid(s)
        H.run_ctl("set", "--redis", self.redis.address, s, "marketing=1", "--revision", str(self.revision))
        # cached: the POST's own decision needs no Redis read, only its write
        deadline = time.monotonic() + H.slow(2)
        while self.var(self.page(vid), "Source") != "cache" and time.monotonic() < deadline:
            time.sleep(0.01)
        before = self.eval_stats()
        self.redis.sigstop()
        try:
            r = self.endpoint("POST", "analysis=1", [FORM], vid)
            self.document(r, 503)
            time.sleep(H.slow(0.5))
        finally:
            self.redis.sigcont()
        # the script ran once Redis woke, and refused: its deadline had passed
        deadline = time.monotonic() + H.slow(3)
        while self.eval_stats()["calls"] == before["calls"] and time.monotonic() < deadline:
            time.sleep(0.02)
        after = self.eval_stats()
        self.assertEqual(after["calls"], before["calls"] + 1)
        self.assertEqual(after["failed_calls"], before["failed_calls"] + 1)
        self.assertEqual(self.record(s), {"v": "1", "rev": str(self.revision), "marketing": "1"})
        self.wait_subscribed()

    def eval_stats(self):
        for line in self.redis.cli("INFO", "commandstats"):
            if line.startswith("cmdstat_eval:"):
                return {k: int(v) for k, v in (kv.split("=") for kv in line.split(":", 1)[1].split(","))
                        if k in ("calls", "failed_calls")}
        return {"calls": 0, "failed_calls": 0}


def documented_choice_edge_acl():
    """The edge's ACL rule docs/redis-schema.md gives for an edge with a
    consent_choice endpoint, as an ACL file line."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                           "redis-schema.md")) as f:
        lines = [l for l in f.read().splitlines()
                 if l.startswith("ACL SETUSER consent-edge ") and "+time" in l]
    if len(lines) != 1:
        raise AssertionError("docs/redis-schema.md: %d consent_choice edge rules" % len(lines))
    return "user consent-edge " + lines[0][len("ACL SETUSER consent-edge "):].replace(">EDGE_SECRET", ">edge-pw")


class TestIdentifiedUnderTheDocumentedAcl(ChoiceBase):
    """The edge's user has exactly the rules docs/redis-schema.md gives."""

    acl = [documented_choice_edge_acl()]
    auth = " user=consent-edge password=edge-pw"

    def test_post_is_written(self):
        s = "cust-choice-acl"
        vid = "vid=" + self.uid(s)
        doc = self.document(self.endpoint("POST", "analysis=1", [FORM], vid))
        self.assertEqual(doc["source"], "redis")
        self.assertEqual(self.record(s), {"v": "1", "rev": str(self.revision), "analysis": "1"})
        self.assertEqual(self.var(self.page(vid), "Purposes"), "service,analysis")

    def test_without_time_the_write_fails_closed(self):
        self.redis.cli("ACL", "SETUSER", "consent-edge", "-time")
        try:
            s = "cust-choice-acl-2"
            vid = "vid=" + self.uid(s)
            self.document(self.endpoint("POST", "analysis=1", [FORM], vid), 503)
            self.assertEqual(self.record(s), {})
            self.assertIn("a consent_choice write was refused", self.ngx.error_log())
        finally:
            self.redis.cli("ACL", "SETUSER", "consent-edge", "+time")


class TestRevisionBump(ChoiceBase):
    """Raising consent_policy_revision makes older records and cookies count as none."""

    revision = 1

    def test_bump_invalidates_records_and_cookies(self):
        s = "cust-choice-rev"
        vid = "vid=" + self.uid(s)
        self.document(self.endpoint("POST", "analysis=1&marketing=1", [FORM], vid))
        cc = self.choice_cookie(self.endpoint("POST", "analysis=1", [FORM]))
        # an old record without rev keeps working at revision >= its own (0)
        H.run_ctl("set", "--redis", self.redis.address, "cust-choice-norev", "analysis=1")
        legacy = "vid=" + self.uid("cust-choice-norev")

        self.configure(2)
        self.assertTrue(self.ngx.reload_settled(), self.ngx.error_log()[-2000:])
        self.wait_subscribed()

        seen = self.page(vid + "; _ga=1")
        self.assertEqual(self.var(seen, "Purposes"), "service")
        self.assertEqual(self.var(seen, "Reprompt"), "1")
        self.assertEqual(self.var(seen, "Revision"), "")
        self.assertEqual(self.var(seen, "Source"), "default")
        self.assertEqual(seen.cookies, [])
        seen = self.page("cc=%s; _ga=1" % cc)
        self.assertEqual(self.var(seen, "Purposes"), "service")
        self.assertEqual(self.var(seen, "Source"), "none")
        self.assertEqual(self.var(seen, "Reprompt"), "1")
        self.assertEqual(self.var(self.page(legacy), "Purposes"), "service")

        # an anonymous POST now starts from nothing: the old answers do not come back
        r = self.endpoint("POST", "marketing=1", [FORM], "cc=" + cc)
        self.assertEqual(self.document(r)["purposes"], {"service": True, "analysis": False, "marketing": True})
        self.assertEqual(H.inspect(self.choice_cookie(r), (1, self.k1))[1]["choices"], {"marketing": True})

        # an identified POST drops the older revision's purpose fields in the same step
        doc = self.document(self.endpoint("POST", "analysis=0", [FORM], vid))
        self.assertEqual(doc["revision"], 2)
        self.assertEqual(self.record(s), {"v": "2", "rev": "2", "analysis": "0"})
        self.assertEqual(self.var(self.page(vid), "Reprompt"), "0")

        # consentctl set --revision, and the script refuses to go back
        r = H.run_ctl("set", "--redis", self.redis.address, s, "marketing=1", "--revision", "1")
        H.assert_ctl_exit(self, r, 1, "set --revision 1 over rev 2")
        self.assertIn("newer policy revision", r.stderr)
        r = H.run_ctl("set", "--redis", self.redis.address, s, "marketing=1", "--revision", "2")
        H.assert_ctl_exit(self, r, 0, "set --revision 2")
        self.assertEqual(self.record(s)["marketing"], "1")


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
