#!/usr/bin/python3
"""The demo of `./dev run` shows the module's main job: conf/demo.conf as
shipped (only its ports moved to free ones), its site (conf/demo-site/), its
Redis, and the walk-through `./dev run` prints:

- step 5: a consent change written with consentctl changes how the same
  mail link is decided, first from Redis, then from the cache; a withdrawal
  reaches the edge at once;
- step 0: the front page's banner, in a real browser (headless Chromium
  through Selenium, from Debian): accepting analysis lets _ga reach the
  backend, rejecting it strips _ga again. Browsers send Origin and
  Sec-Fetch-Site and enforce SameSite; curl does not.

Run: /usr/bin/python3 tests/e2e/test_demo.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBJECT = "cust-000042"   # the walk-through's customer


class DemoBase(unittest.TestCase):
    """conf/demo.conf and its site in a directory of their own, on free ports."""
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
        shutil.copytree(os.path.join(ROOT, "conf", "demo-site"), os.path.join(d, "site"))
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


class TestDemoWalkThrough(DemoBase):

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
        self.assertRegex(self.ctl("set", SUBJECT, "analysis=1", "campaigns=1", "--revision", "1"), r"^v=\d+$")
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
        self.ctl("set", SUBJECT, "campaigns=0", "--revision", "1")
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


class TestBannerEndpoint(DemoBase):
    """Step 0 from a shell: the endpoint behind the banner, and the page."""

    def test_front_page_and_banner_files(self):
        page = self.ngx.get("/")
        self.assertEqual(page.status, 200)
        self.assertIn(b'<script src="/site/banner.js">', page.body)
        for path in ("/site/banner.js", "/site/banner.css"):
            self.assertEqual(self.ngx.get(path).status, 200, path)

    def test_anonymous_and_identified_choices(self):
        doc = self.ngx.get("/consent").json()
        self.assertTrue(doc["reprompt"])
        self.assertEqual(doc["revision"], None)
        r = self.ngx.request("POST", "/consent", [("Content-Type", "application/json")], '{"analysis":true}')
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["revision"], 1)
        cookie = [c for c in r.set_cookies() if c.startswith("consent_choices=")]
        self.assertEqual(len(cookie), 1, r.set_cookies())
        uid = H.mint(os.path.join(self.ngx.dir, "keys", "token.key"), 1, "cust-000077", kind="uid")
        r = self.ngx.request("POST", "/consent", [("Content-Type", "application/x-www-form-urlencoded"),
                                                  ("Cookie", "vid=" + uid)], "research=1")
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["identified"])
        self.assertIn('"research":1', self.ctl("get", "cust-000077"))
        self.assertIn('"rev":1', self.ctl("get", "cust-000077"))

    def test_limit_req_in_front_of_the_endpoint(self):
        statuses = [self.ngx.get("/consent").status for _ in range(40)]
        self.assertIn(429, statuses)
        self.assertEqual(statuses[0], 200)


class TestBannerInChromium(DemoBase):
    """The banner as users have it: headless Chromium (Debian's chromium,
    chromium-driver and python3-selenium, which ./dev installs)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--user-data-dir=" + os.path.join(cls.ngx.dir, "chromium")):
            opts.add_argument(arg)
        opts.binary_location = "/usr/bin/chromium"
        cls.browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        cls.addClassCleanup(cls.browser.quit)
        cls.browser.set_page_load_timeout(H.slow(30))

    def open_page(self):
        from selenium.webdriver.support.ui import WebDriverWait
        self.browser.get("http://127.0.0.1:%d/" % self.ngx.port)
        wait = WebDriverWait(self.browser, H.slow(10))
        wait.until(lambda b: b.find_element("tag name", "body").get_attribute("data-consent-ready") == "1")
        wait.until(lambda b: "backend received" in b.find_element("id", "echo").text)
        return self.browser.find_element("id", "echo").text

    def cookie_line(self, echo):
        return [l for l in echo.splitlines() if l.strip().startswith("Cookie:")][0]

    def choose(self, analysis):
        from selenium.webdriver.support.ui import WebDriverWait
        banner = self.browser.find_element("id", "consent-banner")
        if not banner.is_displayed():
            self.browser.find_element("id", "consent-open").click()
        box = self.browser.find_element("id", "consent-analysis")
        if box.is_selected() != analysis:
            box.click()
        self.browser.find_element("id", "consent-save").click()
        WebDriverWait(self.browser, H.slow(10)).until(lambda b: not b.find_element("id", "consent-banner").is_displayed())

    def test_accept_then_reject_analysis(self):
        echo = self.open_page()
        self.assertTrue(self.browser.find_element("id", "consent-banner").is_displayed(), "no banner on a first visit")
        self.assertNotIn("_ga=", self.cookie_line(echo))

        self.choose(analysis=True)
        self.assertIsNotNone(self.browser.get_cookie("consent_choices"))
        self.assertTrue(self.browser.get_cookie("consent_choices")["httpOnly"])
        self.assertIsNotNone(self.browser.get_cookie("_ga"), "the analytics stand-in set no _ga")
        echo = self.open_page()
        self.assertFalse(self.browser.find_element("id", "consent-banner").is_displayed(), "asked again")
        self.assertIn("_ga=GA1.2.3", self.cookie_line(echo))
        # the choice cookie never reaches the backend
        self.assertNotIn("consent_choices", self.cookie_line(echo))
        self.assertIn("consent_choices", [l for l in echo.splitlines() if "X-Consent-Stripped" in l][0])
        self.assertIn("analysis", [l for l in echo.splitlines() if "X-Consent-Purposes" in l][0])

        self.choose(analysis=False)
        echo = self.open_page()
        self.assertIsNotNone(self.browser.get_cookie("_ga"), "the browser still has _ga")
        self.assertNotIn("_ga=", self.cookie_line(echo))
        self.assertIn("_ga", [l for l in echo.splitlines() if "X-Consent-Stripped" in l][0])
        print("\nbrowser: %s\n%s" % (self.browser.capabilities.get("browserVersion"), echo))


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
