#!/usr/bin/python3
"""End to end: the packaged nginx with the consent module in front of an echo
upstream, checked against /work/shared/interface.md byte for byte.

No Redis here: every subject has no record, so purposes take their defaults
($consent_source is "default" with a subject, "none" without).

Run: /usr/bin/python3 tests/e2e/test_request_path.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import http.client
import os
import re
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

SUBJECT = "cust-e2e-000042"
SUBJECT2 = "cust-e2e-000777"
CAMPAIGN = "2026-11-newsletter"
UID_MAX_AGE = 30 * 86400

VARS = [
    ("X-Consent-Purposes", "$consent_purposes"),
    ("X-Consent-Subject", "$consent_subject"),
    ("X-Consent-Subject-Id", "$consent_subject_id"),
    ("X-Consent-Status", "$consent_token_status"),
    ("X-Consent-Campaign", "$consent_campaign"),
    ("X-Consent-Source", "$consent_source"),
    ("X-Consent-Version", "$consent_version"),
    ("X-Consent-Stripped", "$consent_stripped"),
    ("X-Consent-Marketing", "$consent_purpose_marketing"),
    ("X-Consent-Service", "$consent_purpose_service"),
    ("X-Consent-Analysis", "$consent_purpose_analysis"),
    ("X-Consent-Personalization", "$consent_purpose_personalization"),
]


def proxy_block(up_port):
    return ("proxy_pass http://127.0.0.1:%d;\n" % up_port
            + "".join("        proxy_set_header %s %s;\n" % hv for hv in VARS))


HTTP_TEXT = """
    large_client_header_buffers 4 32k;
    consent_key 1 {d}/k1.key issue;
    consent_key 2 {d}/k2.key;
    consent_pseudonym_key {d}/p.key;
    consent_purpose service granted;
    consent_purpose analysis denied gpc;
    consent_purpose marketing denied;
    consent_purpose personalization granted gpc;
    consent_uid_cookie vid purpose=personalization max_age=30d;
    consent_strip_args marketing utm_* gclid fbclid;
    consent_strip_args analysis _ga;
    consent_strip_cookies analysis _ga _ga_* _gid;
    consent_strip_cookies marketing _fbp;
"""

SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        location / {{ consent on;
            {proxy} }}
        location /off {{ consent off;
            {proxy} }}
{locations}
    }}
"""

# Extra locations, each used by one test class below (a class starts nginx
# with only the locations it needs, so a directive the module lacks fails
# that class alone).
LOC_STATUS = """
        location = /status {{ consent_status; }}
"""
LOC_INTERNAL = LOC_STATUS + """
        location /ir {{ consent on; error_page 404 = @named; return 404; }}
        location /tf/ {{ consent on; try_files /no-such-file-here @named; }}
        location /ep/ {{ consent on; proxy_pass http://127.0.0.1:{dead}; error_page 502 = /fb/; }}
        location /fb/ {{ consent on;
            {proxy} }}
        location @named {{ consent on;
            {proxy} }}
        location /ar/ {{ consent on; auth_request /auth-sub;
            {proxy} }}
        location = /auth-sub {{ consent on; proxy_pass http://127.0.0.1:{up};
            proxy_pass_request_body off; proxy_set_header Content-Length ""; }}
"""
LOC_SATISFY = """
        location /sa/ {{ consent on; satisfy any; allow 127.0.0.1; deny all;
            auth_basic "x"; auth_basic_user_file {d}/htpasswd;
            {proxy} }}
"""
LOC_DRY = """
        location /dry/ {{ consent on; consent_dry_run on;
            {proxy} }}
"""
LOC_REDIRECT = """
        location /r/ {{ consent on; consent_token_redirect on;
            {proxy} }}
"""
LOC_REDIRECT_RELATIVE = """
        location /rr/ {{ consent on; consent_token_redirect on; absolute_redirect off;
            {proxy} }}
"""
LOC_UID_VARIANTS = """
        location /ua/ {{ consent on;
            consent_uid_cookie vid purpose=analysis domain=example.test samesite=strict secure=off;
            {proxy} }}
        location /uc/ {{ consent on;
            consent_uid_cookie vid purpose=personalization domain=example.test path=/uc max_age=1h samesite=strict secure=off;
            {proxy} }}
        location /ud/ {{ consent on; consent_uid_cookie uid2;
            {proxy} }}
"""
LOC_LOGS = """
        location /dead/ {{ consent on; proxy_pass http://127.0.0.1:{dead}; }}
        location /logged/ {{ consent on; access_log {d}/access.log reqline;
            {proxy} }}
"""
LOC_EARLY_VARS = """
        location /ev/ {{ consent on;
            set $early "$request_uri|$request|$http_cookie|$cookie__ga|$cookie_vid";
            proxy_pass http://127.0.0.1:{up}$request_uri;
            proxy_set_header X-Request-Uri $request_uri;
            proxy_set_header X-Request $request;
            proxy_set_header X-Http-Cookie $http_cookie;
            proxy_set_header X-Cookie-Ga $cookie__ga;
            proxy_set_header X-Cookie-Vid $cookie_vid; }}
"""
LOC_FILTER_FINALIZE = """
        location /nm/ {{ consent on; root {d}/www;
            add_header X-Consent-Purposes $consent_purposes always;
            add_header X-Consent-Status $consent_token_status always; }}
"""
LOC_TOKEN_ARG = """
        location /ta/ {{ consent on; consent_token_arg t;
            {proxy} }}
"""


def cookie_attrs(set_cookie):
    """'n=v; A=1; B' -> ('n', 'v', {'a': '1', 'b': None}) (attribute names
    lowercased)."""
    parts = [p.strip() for p in set_cookie.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if not p:
            continue
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else None
    return name.strip(), value.strip(), attrs


class ConsentE2E(unittest.TestCase):
    """One nginx + one echo upstream for the class."""

    maxDiff = None
    http_text = HTTP_TEXT
    locations = ""
    error_log_level = "info"
    workers = 2

    @classmethod
    def setUpClass(cls):
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.ngx = H.Nginx(workers=cls.workers, error_log_level=cls.error_log_level)
        cls.addClassCleanup(cls.ngx.cleanup)
        d = cls.ngx.dir
        cls.k1 = H.keygen(cls.ngx.path("k1.key"), "xchacha20poly1305")
        cls.k2 = H.keygen(cls.ngx.path("k2.key"), "aes256gcm")
        cls.k3 = H.keygen(cls.ngx.path("k3.key"), "xchacha20poly1305")  # not configured
        cls.pk = H.pseudonym_keygen(cls.ngx.path("p.key"))
        # user "u", password "p" ({PLAIN} scheme is understood by nginx)
        cls.ngx.write_file("htpasswd", "u:{PLAIN}p\n", 0o644)
        cls.ngx.write_config(
            cls.http_text.format(d=d),
            SERVERS.format(d=d, port=cls.ngx.port, proxy=proxy_block(cls.up.port),
                           locations=cls.locations.format(d=d, up=cls.up.port, dead=H.free_port(),
                                                          proxy=proxy_block(cls.up.port))))
        cls.tokens_used = set()
        cls.subjects_used = set()
        cls.ngx.start()

    # -- helpers ------------------------------------------------------------
    def mint(self, subject=SUBJECT, kid=1, key=None, kind="purl", campaign=None, ttl=None):
        key = key or {1: self.k1, 2: self.k2}.get(kid, self.k1)
        t = H.mint(key, kid, subject, kind=kind, campaign=campaign, ttl=ttl)
        self.tokens_used.add(t)
        self.subjects_used.add(subject)
        return t

    def py_mint(self, subject=SUBJECT, kid=1, key=None, **kw):
        key = key or {1: self.k1, 2: self.k2}.get(kid, self.k1)
        t = H.py_mint(key, kid, subject, **kw)
        self.tokens_used.add(t)
        self.subjects_used.add(subject)
        return t

    def pseudo(self, subject=SUBJECT):
        return H.pseudonym_from_file(subject, self.pk)

    def get(self, target, headers=(), **kw):
        return self.ngx.get(target, headers, **kw)

    def seen(self, target, headers=(), method="GET", body=None):
        r = self.ngx.request(method, target, headers, body)
        return H.Seen(r)

    def v(self, seen, name):
        """The single value of X-Consent-<name> the upstream got, None if absent."""
        return seen.one("X-Consent-" + name)

    def assertVars(self, seen, **want):
        got = {k: self.v(seen, k.replace("_", "-")) for k in want}
        self.assertEqual(got, want, "upstream saw %r" % (seen,))

    def vid_set_cookies(self, resp, name="vid"):
        return [c for c in resp.set_cookies() if cookie_attrs(c)[0] == name]

    def status(self):
        r = self.get("/status")
        self.assertEqual(r.status, 200, r)
        return H.parse_prometheus(r.body.decode("latin-1"))[0]

    def test_zz_error_log_clean(self):
        # runs last in each class (alphabetical order): nothing crashed, and no
        # token text or subject id was ever logged (error_log ... info)
        t = self.mint("log-probe-subject-4711", campaign="log-probe-campaign")
        u = self.mint("log-probe-subject-4711", kind="uid")
        for target, headers in [("/p?ctk=" + t, []), ("/p", [("Cookie", "vid=" + u)]),
                                ("/r/x?ctk=" + t, []), ("/ua/x", [("Cookie", "vid=" + u)])]:
            self.get(target, headers)
        time.sleep(H.slow(0.3))
        log = self.ngx.error_log()
        self.assertEqual(self.ngx.crash_lines(), [])
        for tok in sorted(self.tokens_used):
            self.assertNotIn(tok, log, "a token appears in error.log")
        for subj in sorted(self.subjects_used):
            self.assertNotIn(subj, log, "a subject id appears in error.log")



class TestArgsAndCookies(ConsentE2E):

    # ---- query arguments -----------------------------------------------------

    def test_args_token_alone_leaves_no_question_mark(self):
        t = self.mint()
        s = self.seen("/p?ctk=" + t)
        self.assertEqual(s.target, "/p")
        self.assertEqual(self.v(s, "Stripped"), "ctk")

    def test_args_token_last_first_middle(self):
        t = self.mint()
        for target, want in [("/p?a=1&ctk=%s" % t, "/p?a=1"),
                             ("/p?ctk=%s&a=1" % t, "/p?a=1"),
                             ("/p?a=1&ctk=%s&b=2" % t, "/p?a=1&b=2"),
                             ("/p/q.html?ctk=%s&ctk=%s" % (t, t), "/p/q.html")]:
            with self.subTest(target=target):
                s = self.seen(target)
                self.assertEqual(s.target, want)
                self.assertEqual(self.v(s, "Stripped"), "ctk")

    def test_args_invalid_token_still_removed(self):
        s = self.seen("/p?x=1&ctk=garbage!!&y=2")
        self.assertEqual(s.target, "/p?x=1&y=2")
        self.assertEqual(self.v(s, "Status"), "invalid")

    def test_args_token_arg_name_percent_encoded(self):
        t = self.mint()
        s = self.seen("/p?k=1&%63tk=" + t)
        self.assertEqual(s.target, "/p?k=1")
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="ctk")

    def test_args_stripped_by_decoded_name_and_prefix(self):
        q = ("utm_source=a&page=2&ut%6D_medium=b&q=a%20b&UTM_CAMPAIGN=c&x=&gclid=1"
             "&=y&fbclid=2&_ga=3&lang=en")
        s = self.seen("/p?" + q)
        self.assertEqual(s.target, "/p?page=2&q=a%20b&x=&=y&lang=en")
        self.assertEqual(self.v(s, "Stripped"),
                         "utm_source,utm_medium,UTM_CAMPAIGN,gclid,fbclid,_ga")

    def test_args_kept_byte_for_byte(self):
        t = self.mint()
        kept = "a=%41&b=+x+&c=%zz&d&e==&f=%E2%82%AC&g=1;2&h=%2526&page=2"
        s = self.seen("/p?" + kept + "&ctk=" + t + "&utm_term=z")
        self.assertEqual(s.target, "/p?" + kept)
        self.assertEqual(self.v(s, "Stripped"), "ctk,utm_term")

    def test_args_odd_targets(self):
        t = self.mint()
        for target, want in [("/p?a=1?b&ctk=%s&c=d?e" % t, "/p?a=1?b&c=d?e"),
                             ("http://localhost/p?ctk=%s&k=1" % t, "/p?k=1"),
                             ("/p?ctk=%s#frag" % t, None)]:
            with self.subTest(target=target):
                r = self.get(target)
                self.assertLess(r.status, 500, r)
                if want is not None:
                    s = H.Seen(r)
                    self.assertEqual(s.target, want)
                    self.assertEqual(self.v(s, "Status"), "valid")

    def test_args_nothing_to_strip_untouched(self):
        for target in ["/p", "/p?", "/p?page=1&lang=en", "/p?a=1&&b=2&", "/p?utm=1&gclidx=2&x_ga=3"]:
            with self.subTest(target=target):
                s = self.seen(target)
                self.assertEqual(s.target, target)
                self.assertIsNone(self.v(s, "Stripped"))

    def test_args_repeated_stripped_name_listed_once(self):
        s = self.seen("/p?utm_source=a&x=1&utm_source=b&gclid=1&utm_source=c")
        self.assertEqual(s.target, "/p?x=1")
        self.assertEqual(self.v(s, "Stripped"), "utm_source,gclid")

    def test_path_unchanged_byte_for_byte(self):
        t = self.mint()
        for path in ["/a%2Fb/%41%7e/c;x=1", "/dir//x", "/caf%C3%A9/%20z"]:
            with self.subTest(path=path):
                s = self.seen(path + "?ctk=" + t + "&k=v&utm_source=1")
                self.assertEqual(s.target, path + "?k=v")

    # ---- cookies -------------------------------------------------------------

    def test_cookies_stripped_others_kept_in_order(self):
        s = self.seen("/p", [("Cookie", "a=1; _ga=GA1.2.3; vid=XYZ; _ga_XYZ=3; b=2; _gid=4; _fbp=5; c=3")])
        self.assertEqual(s.cookies, ["a=1; b=2; c=3"])
        self.assertEqual(self.v(s, "Stripped"), "_ga,vid,_ga_XYZ,_gid,_fbp")

    def test_cookies_multiple_headers_empty_one_disappears(self):
        s = self.seen("/p", [("Cookie", "a=1; _ga=2"), ("Cookie", "_fbp=1; _gid=2"),
                             ("X-Other", "o"), ("Cookie", "vid=abc"), ("Cookie", "b=2; c=3")])
        self.assertEqual(s.cookies, ["a=1", "b=2; c=3"])
        self.assertEqual(s.all("X-Other"), ["o"])
        self.assertEqual(self.v(s, "Stripped"), "_ga,_fbp,_gid,vid")

    def test_cookies_many_headers_across_list_parts(self):
        # nginx keeps request headers in a list of 20-element parts: remove
        # Cookie headers at the start, middle and end of parts, and all of them
        patterns = {
            "every third": lambda i: i % 3 == 0,
            "all but last": lambda i: i != 44,
            "all": lambda i: True,
            "first of each part": lambda i: (i + 2) % 20 == 0,
            "runs": lambda i: (i // 4) % 2 == 0,
        }
        for name, emptied in patterns.items():
            with self.subTest(name):
                headers, want_cookies, want_other = [], [], []
                for i in range(45):
                    if emptied(i):
                        headers.append(("Cookie", "_ga=%d; vid=x%d" % (i, i)))
                    else:
                        headers.append(("Cookie", "k%d=v" % i))
                        want_cookies.append("k%d=v" % i)
                    if i % 7 == 0:
                        headers.append(("X-Other", str(i)))
                        want_other.append(str(i))
                headers.append(("X-Last", "1"))
                r = self.get("/p?k=1", headers)
                s = H.Seen(r)
                self.assertEqual(s.cookies, want_cookies)
                self.assertEqual(s.all("X-Other"), want_other)
                self.assertEqual(s.all("X-Last"), ["1"])
                self.assertEqual(s.all("Host"), ["127.0.0.1:%d" % self.up.port])
                self.assertEqual(self.v(s, "Stripped"), "_ga,vid")
        self.assertEqual(self.ngx.crash_lines(), [])

    def test_cookies_nothing_to_strip_untouched(self):
        for c in ['a=1;b=2;  c="x y"', "session=abc; _gidx=1; x_ga=2; _g=3"]:
            with self.subTest(cookie=c):
                s = self.seen("/p", [("Cookie", c)])
                self.assertEqual(s.cookies, [c])
                self.assertIsNone(self.v(s, "Stripped"))

    def test_cookie_without_equals(self):
        s = self.seen("/p", [("Cookie", "justname; a=1; _ga=1")])
        self.assertIn("a=1", "; ".join(s.cookies))
        self.assertNotIn("_ga", "; ".join(s.cookies))
        for c in ["justname", ";;; ", "=", "=1; ;a", "vid", "vid=", "_ga"]:
            with self.subTest(cookie=c):
                r = self.get("/p", [("Cookie", c)])
                self.assertEqual(r.status, 200, r)

    def test_arg_and_cookie_with_same_name_listed_once(self):
        s = self.seen("/p?_ga=1&x=1", [("Cookie", "_ga=2; y=1")])
        self.assertEqual(s.target, "/p?x=1")
        self.assertEqual(s.cookies, ["y=1"])
        self.assertEqual(self.v(s, "Stripped"), "_ga")

    def test_stripped_order_args_then_cookies(self):
        t = self.mint()
        s = self.seen("/p?utm_source=a&ctk=%s&gclid=x&k=1" % t,
                      [("Cookie", "_fbp=1; vid=zzz; keep=1; _ga=2")])
        self.assertEqual(s.target, "/p?k=1")
        self.assertEqual(s.cookies, ["keep=1"])
        self.assertEqual(self.v(s, "Stripped"), "utm_source,ctk,gclid,_fbp,vid,_ga")

class TestVariables(ConsentE2E):

    def test_vars_without_token(self):
        s = self.seen("/p?a=1")
        self.assertVars(s, Purposes="service,personalization", Subject=None, Subject_Id=None,
                        Status="none", Campaign=None, Source="none", Version=None,
                        Stripped=None, Marketing="0", Service="1", Analysis="0",
                        Personalization="1")

    def test_vars_valid_purl_xchacha_key1(self):
        t = self.mint(campaign=CAMPAIGN)
        s = self.seen("/p?ctk=" + t)
        self.assertVars(s, Purposes="service,personalization", Subject=self.pseudo(),
                        Subject_Id=SUBJECT, Status="valid", Campaign=CAMPAIGN,
                        Source="default", Version=None, Stripped="ctk", Marketing="0",
                        Service="1")

    def test_vars_valid_purl_aes_key2(self):
        t = self.mint(SUBJECT2, kid=2, campaign="c2")
        s = self.seen("/p?ctk=" + t)
        self.assertVars(s, Subject=self.pseudo(SUBJECT2), Subject_Id=SUBJECT2,
                        Status="valid", Campaign="c2", Source="default")
        # and tokens built independently of consentctl, under both suites
        for kid in (1, 2):
            t = self.py_mint(SUBJECT2, kid=kid, campaign="py%d" % kid)
            s = self.seen("/p?ctk=" + t)
            self.assertVars(s, Subject_Id=SUBJECT2, Status="valid", Campaign="py%d" % kid)

    def test_vars_largest_token_with_punctuation(self):
        subject = ("S" * 31) + ' !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'
        campaign = "C" * 64
        self.assertEqual(len(subject), 64)
        t = self.mint(subject, kid=1, campaign=campaign)
        self.assertEqual(len(t), 255)
        s = self.seen("/p?ctk=" + t)
        self.assertVars(s, Status="valid", Subject_Id=subject, Subject=self.pseudo(subject),
                        Campaign=campaign)

    def test_vars_valid_purl_without_campaign(self):
        t = self.mint()
        s = self.seen("/p?ctk=" + t)
        self.assertVars(s, Status="valid", Campaign=None, Subject_Id=SUBJECT)

    def _no_subject(self, s, status):
        self.assertVars(s, Status=status, Subject=None, Subject_Id=None, Campaign=None,
                        Source="none", Purposes="service,personalization")

    def test_vars_invalid_purl(self):
        good = self.mint(campaign=CAMPAIGN)
        i = len(good) // 2
        tampered = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1:]
        uid_kind = self.mint(kind="uid")
        future = self.py_mint(issued_at=int(time.time()) + 3600, expires_at=int(time.time()) + 7200)
        # key 1 is xchacha20poly1305; a token that names aes256gcm under kid 1
        mismatch = self.py_mint(suite="aes256gcm")
        for name, tok in [("garbage", "garbage"), ("tampered", tampered),
                          ("uid kind in ctk", uid_kind), ("padded", good + "=="),
                          ("issued in the future", future), ("suite mismatch", mismatch),
                          ("too long", "A" * 600)]:
            with self.subTest(name):
                s = self.seen("/p?ctk=" + tok + "&k=1")
                self.assertEqual(s.target, "/p?k=1")
                self._no_subject(s, "invalid")

    def test_vars_empty_token_arg_removed(self):
        s = self.seen("/p?ctk=&k=1")
        self.assertEqual(s.target, "/p?k=1")
        self.assertIn(self.v(s, "Status"), ("none", "invalid"))
        self.assertIsNone(self.v(s, "Subject-Id"))

    def test_vars_expired_purl(self):
        now = int(time.time())
        t = self.py_mint(issued_at=now - 7200, expires_at=now - 5, campaign=CAMPAIGN)
        s = self.seen("/p?ctk=" + t)
        self._no_subject(s, "expired")

    def test_vars_time_edges(self):
        now = int(time.time())
        cases = [("issued 200 s ahead (clock skew)", dict(issued_at=now + 200, expires_at=now + 3600), "valid"),
                 ("issued 400 s ahead", dict(issued_at=now + 400, expires_at=now + 3600), "invalid"),
                 ("expires now", dict(issued_at=now - 60, expires_at=now), "expired"),
                 ("expires in 60 s", dict(issued_at=now - 60, expires_at=now + 60), "valid")]
        for name, kw, status in cases:
            with self.subTest(name):
                t = self.py_mint(**kw)
                s = self.seen("/p?ctk=" + t)
                self.assertEqual(self.v(s, "Status"), status)
                self.assertEqual(self.v(s, "Subject-Id"), SUBJECT if status == "valid" else None)

    def test_vars_unknown_key(self):
        t = self.mint(kid=9, key=self.k3)
        s = self.seen("/p?ctk=" + t)
        self._no_subject(s, "unknown_key")

    def test_vars_uid_cookie_alone_gives_subject(self):
        u = self.mint(kind="uid")
        r = self.get("/p?x=1", [("Cookie", "a=1; vid=" + u + "; b=2")])
        s = H.Seen(r)
        self.assertVars(s, Status="valid", Subject=self.pseudo(), Subject_Id=SUBJECT,
                        Source="default", Campaign=None, Stripped="vid",
                        Purposes="service,personalization")
        self.assertEqual(s.cookies, ["a=1; b=2"])
        self.assertEqual(s.target, "/p?x=1")
        self.assertEqual(self.vid_set_cookies(r), [], "no new cookie without a PURL token")

    def test_vars_repeated_tokens_answer_the_same(self):
        """Each worker remembers tokens that opened valid (crypto/token_memo):
        the same UID cookie and PURL token sent again and again, over new
        connections so that every worker sees them, give the same subject,
        pseudonym, campaign and stripping every time; and a token with one
        character changed is still refused after its original was
        remembered."""
        u = self.mint(kind="uid")
        p = self.py_mint(campaign=CAMPAIGN)
        for i in range(8):
            s = H.Seen(self.get("/p?x=1", [("Cookie", "a=1; vid=" + u + "; b=2")]))
            self.assertVars(s, Status="valid", Subject=self.pseudo(), Subject_Id=SUBJECT,
                            Campaign=None, Stripped="vid")
            self.assertEqual(s.cookies, ["a=1; b=2"], "round %d" % i)
            s = self.seen("/p?ctk=" + p)
            self.assertVars(s, Status="valid", Subject=self.pseudo(), Subject_Id=SUBJECT,
                            Campaign=CAMPAIGN)
        i = len(u) * 2 // 3
        forged = u[:i] + ("A" if u[i] != "A" else "B") + u[i + 1:]
        for _ in range(4):
            s = self.seen("/p", [("Cookie", "vid=" + forged)])
            self.assertVars(s, Status="invalid", Subject=None, Subject_Id=None)
            self.assertEqual(s.cookies, [])

    def test_vars_uid_cookie_alone_disappears_from_upstream(self):
        u = self.mint(kind="uid")
        s = self.seen("/p", [("Cookie", "vid=" + u)])
        self.assertEqual(s.cookies, [])
        self.assertEqual(self.v(s, "Subject-Id"), SUBJECT)

    def test_vars_uid_cookie_bad(self):
        now = int(time.time())
        cases = [("purl kind in cookie", self.mint(kind="purl"), "invalid"),
                 ("garbage", "xyz", "invalid"),
                 ("expired", self.py_mint(kind="uid", issued_at=now - 100, expires_at=now - 1), "expired"),
                 ("unknown key", self.mint(kid=9, key=self.k3, kind="uid"), "unknown_key")]
        for name, tok, status in cases:
            with self.subTest(name):
                r = self.get("/p", [("Cookie", "vid=" + tok + "; k=1")])
                s = H.Seen(r)
                self._no_subject(s, status)
                self.assertEqual(s.cookies, ["k=1"])
                self.assertEqual(self.vid_set_cookies(r), [])

    def test_vars_invalid_purl_with_valid_uid_cookie(self):
        u = self.mint(kind="uid")
        s = self.seen("/p?ctk=bogus", [("Cookie", "vid=" + u)])
        # status reports the PURL token; the subject comes from the cookie
        self.assertVars(s, Status="invalid", Subject_Id=SUBJECT, Subject=self.pseudo(),
                        Source="default", Stripped="ctk,vid")

    def test_vars_purl_wins_over_uid_cookie(self):
        u = self.mint(SUBJECT2, kind="uid")
        t = self.mint(SUBJECT, campaign=CAMPAIGN)
        r = self.get("/p?ctk=" + t, [("Cookie", "vid=" + u)])
        s = H.Seen(r)
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Subject=self.pseudo(SUBJECT),
                        Campaign=CAMPAIGN)
        # the carried cookie is for another subject: a fresh one is issued
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        rc, info = H.inspect(cookie_attrs(vc[0])[1], (1, self.k1))
        self.assertEqual((rc, info and info.get("subject")), (0, SUBJECT), info)

    # ---- Sec-GPC ---------------------------------------------------------------

    def test_gpc_denies_gpc_purposes(self):
        s = self.seen("/p?_ga=1&x=1", [("Sec-GPC", "1")])
        self.assertVars(s, Purposes="service", Personalization="0", Analysis="0",
                        Service="1", Marketing="0", Source="none")
        self.assertEqual(s.target, "/p?x=1")

    def test_gpc_other_values_ignored(self):
        s = self.seen("/p", [("Sec-GPC", "0")])
        self.assertEqual(self.v(s, "Purposes"), "service,personalization")

    def test_gpc_no_uid_cookie_set(self):
        t = self.mint()
        r = self.get("/p?ctk=" + t, [("Sec-GPC", "1")])
        s = H.Seen(r)
        self.assertVars(s, Purposes="service", Status="valid", Subject_Id=SUBJECT,
                        Source="default")
        self.assertEqual(self.vid_set_cookies(r), [])

    def test_gpc_carried_uid_cookie_cleared(self):
        u = self.mint(kind="uid")
        r = self.get("/p", [("Sec-GPC", "1"), ("Cookie", "vid=" + u + "; a=1")])
        s = H.Seen(r)
        self.assertVars(s, Purposes="service", Status="valid", Subject_Id=SUBJECT)
        self.assertEqual(s.cookies, ["a=1"])
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        name, value, attrs = cookie_attrs(vc[0])
        self.assertEqual(value, "", vc[0])
        self.assertEqual(attrs.get("max-age"), "0", vc[0])
        self.assertEqual(attrs.get("path"), "/", vc[0])
        self.assertIn("httponly", attrs, vc[0])

    def test_gpc_with_purl_and_carried_cookie_cleared(self):
        t = self.mint()
        u = self.mint(kind="uid")
        r = self.get("/p?ctk=" + t, [("Sec-GPC", "1"), ("Cookie", "vid=" + u)])
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        self.assertTrue(vc[0].startswith("vid=; Max-Age=0"), vc[0])

    # ---- spoofing --------------------------------------------------------------

    def test_spoofed_headers_replaced(self):
        spoof = [("X-Consent-Purposes", "service,analysis,marketing,personalization"),
                 ("X-Consent-Subject", "evil"), ("X-Consent-Subject-Id", "evil-id"),
                 ("X-Consent-Marketing", "1"), ("X-Consent-Source", "redis"),
                 ("X-Consent-Status", "valid"), ("x-consent-purposes", "marketing")]
        s = self.seen("/p", spoof)
        self.assertEqual(s.all("X-Consent-Purposes"), ["service,personalization"])
        self.assertEqual(s.all("X-Consent-Subject"), [])
        self.assertEqual(s.all("X-Consent-Subject-Id"), [])
        self.assertEqual(s.all("X-Consent-Marketing"), ["0"])
        self.assertEqual(s.all("X-Consent-Source"), ["none"])
        self.assertEqual(s.all("X-Consent-Status"), ["none"])
        t = self.mint()
        s = self.seen("/p?ctk=" + t, spoof)
        self.assertEqual(s.all("X-Consent-Subject"), [self.pseudo()])
        self.assertEqual(s.all("X-Consent-Subject-Id"), [SUBJECT])
        self.assertEqual(s.all("X-Consent-Purposes"), ["service,personalization"])

    # ---- response Set-Cookie -------------------------------------------------------

    def test_upstream_set_cookie_name_with_spaces_filtered(self):
        r = self.get("/p", [("X-Test-Set-Cookie", "_ga =1|_fbp\t=2; Path=/|keep=1")])
        self.assertEqual(r.set_cookies(), ["keep=1"])

    def test_upstream_set_cookie_kept_beside_uid_cookie(self):
        t = self.mint()
        r = self.get("/p?ctk=" + t, [("X-Test-Set-Cookie", "session=3|_ga=1|other=4; HttpOnly")])
        others = [c for c in r.set_cookies() if not c.startswith("vid=")]
        self.assertEqual(others, ["session=3", "other=4; HttpOnly"])
        self.assertEqual(len(self.vid_set_cookies(r)), 1, r.set_cookies())

    def test_upstream_many_set_cookies_filtered(self):
        parts, want = [], []
        for i in range(40):
            if i % 2:
                parts.append("keep%d=%d; Path=/" % (i, i))
                want.append(parts[-1])
            else:
                parts.append(("_ga_%d=%d" if i % 4 else "_fbp=%d%d") % (i, i))
        r = self.get("/p", [("X-Test-Set-Cookie", "|".join(parts))])
        self.assertEqual(r.set_cookies(), want)

    def test_upstream_set_cookie_filtered(self):
        r = self.get("/p", [("X-Test-Set-Cookie",
                             "_ga=1; Path=/|_fbp=2|session=3|_ga_ABC=4; Max-Age=10|_gidx=5; Path=/|_gid=6")])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.set_cookies(), ["session=3", "_gidx=5; Path=/"])

    def test_keepalive_requests_are_independent(self):
        t = self.mint(campaign=CAMPAIGN)
        u = self.mint(SUBJECT2, kind="uid")
        conn = http.client.HTTPConnection("127.0.0.1", self.ngx.port, timeout=H.slow(10))
        try:
            def one(target, headers):
                conn.putrequest("GET", target, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.endheaders()
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, 200)
                return H.Seen(H.Response(resp.status, resp.reason, resp.getheaders(), body, "")), \
                    [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
            s, sc = one("/p?ctk=%s&utm_source=1&k=1" % t, [("Cookie", "_ga=1; a=1")])
            self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Campaign=CAMPAIGN,
                            Stripped="ctk,utm_source,_ga")
            self.assertEqual(len([c for c in sc if c.startswith("vid=")]), 1, sc)
            s, sc = one("/p?k=2", [])
            self.assertEqual(s.target, "/p?k=2")
            self.assertVars(s, Status="none", Subject_Id=None, Campaign=None, Stripped=None,
                            Source="none")
            self.assertEqual(sc, [])
            s, sc = one("/p?k=3", [("Cookie", "vid=" + u), ("Sec-GPC", "1")])
            self.assertVars(s, Status="valid", Subject_Id=SUBJECT2, Campaign=None,
                            Stripped="vid", Purposes="service")
            self.assertEqual(s.cookies, [])
            self.assertEqual(len([c for c in sc if c.startswith("vid=;")]), 1, sc)
            s, sc = one("/p?k=4", [("Cookie", "a=1")])
            self.assertVars(s, Status="none", Subject_Id=None, Purposes="service,personalization")
            self.assertEqual(s.cookies, ["a=1"])
        finally:
            conn.close()


class TestUidCookie(ConsentE2E):

    def test_uid_cookie_set_after_valid_purl(self):
        t = self.mint(campaign=CAMPAIGN)
        t0 = int(time.time())
        r = self.get("/p?ctk=" + t)
        self.assertEqual(r.status, 200)
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        m = re.fullmatch(r"vid=([A-Za-z0-9_-]+); Max-Age=2592000; Path=/; HttpOnly; Secure; SameSite=Lax", vc[0])
        self.assertIsNotNone(m, vc[0])
        tok = m.group(1)
        self.assertNotEqual(tok, t)
        self.tokens_used.add(tok)
        rc, info = H.inspect(tok, (1, self.k1))
        self.assertEqual(rc, 0, info)
        self.assertEqual(info["kind"], "uid")
        self.assertEqual(info["kid"], 1)
        self.assertEqual(info["subject"], SUBJECT)
        self.assertEqual(info["expires_at"] - info["issued_at"], UID_MAX_AGE)
        self.assertLessEqual(abs(info["issued_at"] - t0), 5)
        # the issued cookie identifies the visitor on the next request
        r2 = self.get("/p", [("Cookie", "vid=" + tok)])
        self.assertVars(H.Seen(r2), Status="valid", Subject_Id=SUBJECT)
        self.assertEqual(self.vid_set_cookies(r2), [])

    def test_uid_cookie_issued_by_issue_key_after_key2_purl(self):
        t = self.mint(SUBJECT2, kid=2)
        r = self.get("/p?ctk=" + t)
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        rc, info = H.inspect(cookie_attrs(vc[0])[1], (1, self.k1))
        self.assertEqual(rc, 0, info)
        self.assertEqual((info["kid"], info["suite"], info["kind"], info["subject"]),
                         (1, "xchacha20poly1305", "uid", SUBJECT2))

    def test_uid_cookie_not_reissued_when_valid_for_same_subject(self):
        t = self.mint()
        u = self.mint(kind="uid")
        r = self.get("/p?ctk=" + t, [("Cookie", "vid=" + u)])
        s = H.Seen(r)
        self.assertEqual(self.vid_set_cookies(r), [])
        self.assertEqual(s.cookies, [])
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="ctk,vid")

    def test_uid_cookie_reissued_when_carried_one_invalid(self):
        t = self.mint()
        r = self.get("/p?ctk=" + t, [("Cookie", "vid=junk")])
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        self.assertNotEqual(cookie_attrs(vc[0])[1], "")

    def test_uid_cookie_not_set_for_bad_purl(self):
        now = int(time.time())
        for name, tok in [("invalid", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                          ("expired", self.py_mint(issued_at=now - 100, expires_at=now - 1)),
                          ("unknown_key", self.mint(kid=9, key=self.k3))]:
            with self.subTest(name):
                r = self.get("/p?ctk=" + tok)
                self.assertEqual(r.status, 200)
                self.assertEqual(self.vid_set_cookies(r), [])
                self.assertEqual(H.Seen(r).target, "/p")

class TestUidCookieVariants(ConsentE2E):
    locations = LOC_UID_VARIANTS

    def test_uid_cookie_purpose_denied_variant(self):
        # /ua/: consent_uid_cookie vid purpose=analysis domain=example.test samesite=strict secure=off
        t = self.mint()
        r = self.get("/ua/x?ctk=" + t)
        s = H.Seen(r)
        self.assertEqual(self.vid_set_cookies(r), [], "analysis is denied: no cookie")
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT)
        self.assertEqual(s.target, "/ua/x")
        u = self.mint(kind="uid")
        r = self.get("/ua/x", [("Cookie", "k=1; vid=" + u)])
        s = H.Seen(r)
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="vid")
        self.assertEqual(s.cookies, ["k=1"])
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        self.assertTrue(vc[0].startswith("vid=; Max-Age=0;"), vc[0])
        name, value, attrs = cookie_attrs(vc[0])
        self.assertEqual(attrs, {"max-age": "0", "path": "/", "domain": "example.test",
                                 "httponly": None, "samesite": "Strict"}, vc[0])

    def test_uid_cookie_attributes_variant(self):
        # /uc/: purpose=personalization domain=example.test path=/uc max_age=1h samesite=strict secure=off
        t = self.mint()
        r = self.get("/uc/x?ctk=" + t)
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        name, value, attrs = cookie_attrs(vc[0])
        self.assertEqual(attrs, {"max-age": "3600", "path": "/uc", "domain": "example.test",
                                 "httponly": None, "samesite": "Strict"}, vc[0])
        rc, info = H.inspect(value, (1, self.k1))
        self.assertEqual(rc, 0, info)
        self.assertEqual(info["expires_at"] - info["issued_at"], 3600)

    def test_uid_cookie_defaults(self):
        # /ud/: consent_uid_cookie uid2; (no purpose: always allowed)
        t = self.mint()
        r = self.get("/ud/x?ctk=" + t, [("Sec-GPC", "1")])
        vc = self.vid_set_cookies(r, "uid2")
        self.assertEqual(len(vc), 1, r.set_cookies())
        self.assertRegex(vc[0], r"^uid2=[A-Za-z0-9_-]+; Max-Age=15552000; Path=/; HttpOnly; Secure; SameSite=Lax$")
        rc, info = H.inspect(cookie_attrs(vc[0])[1], (1, self.k1))
        self.assertEqual((rc, info["kind"], info["expires_at"] - info["issued_at"]),
                         (0, "uid", 180 * 86400), info)
        # in this location the UID cookie is uid2: vid is an ordinary cookie
        u = self.mint(kind="uid")
        r = self.get("/ud/x", [("Cookie", "vid=%s; uid2=%s" % (u, u))])
        s = H.Seen(r)
        self.assertEqual(s.cookies, ["vid=" + u])
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="uid2")


class TestTokenArgName(ConsentE2E):
    locations = LOC_TOKEN_ARG

    def test_custom_token_arg(self):
        t = self.mint(campaign=CAMPAIGN)
        s = self.seen("/ta/x?ctk=keep&t=%s&k=1" % t)
        self.assertEqual(s.target, "/ta/x?ctk=keep&k=1")
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Campaign=CAMPAIGN, Stripped="t")
        s = self.seen("/ta/x?ctk=" + t)
        self.assertEqual(s.target, "/ta/x?ctk=" + t)
        self.assertVars(s, Status="none", Subject_Id=None, Stripped=None)


class TestLogs(ConsentE2E):
    http_text = HTTP_TEXT + "    log_format reqline '$request';\n"
    locations = LOC_LOGS

    def test_error_log_line_with_request_has_no_token(self):
        # an upstream that refuses connections: nginx logs an [error] line
        # naming the request; the token must not be in it
        t = self.mint("log-dead-subject-0815", campaign="c")
        r = self.get("/dead/x?ctk=%s&utm_source=1&k=1" % t)
        self.assertEqual(r.status, 502)
        time.sleep(H.slow(0.2))
        log = self.ngx.error_log()
        self.assertRegex(log, r"\[error\].*/dead/x", "nginx logged no error line for the request")
        self.assertNotIn(t, log)
        self.assertNotIn("log-dead-subject-0815", log)

    def test_access_log_request_line_has_no_token(self):
        t = self.mint("log-access-subject-0816")
        self.seen("/logged/x?ctk=%s&k=1" % t)
        deadline = time.time() + H.slow(5)
        text = ""
        while time.time() < deadline and "/logged/x" not in text:
            time.sleep(0.1)
            try:
                with open(self.ngx.path("access.log")) as f:
                    text = f.read()
            except OSError:
                pass
        self.assertIn("/logged/x", text)
        self.assertNotIn(t, text)


LOC_TRACE = LOC_STATUS + """
        location /ret/ {{ consent on; return 204; }}
"""


class TestTokenLeavesNoTrace(ConsentE2E):
    """The token in the Referer, upstream, and in an access log written with
    $consent_request and $consent_http_referer, whichever phase answered."""
    http_text = HTTP_TEXT + (
        "    log_format trace '$status|$consent_request|$consent_http_referer';\n"
        "    access_log {d}/trace.log trace;\n")
    locations = LOC_TRACE
    # As docs/security.md recommends for front proxies: nginx's own info
    # line for a bad request line prints it whole, token and all (the
    # test_zz check of this class would find it at info).
    error_log_level = "notice"

    def referer_seen(self, referer, target="/t/img.png"):
        s = self.seen(target, [("Referer", referer)])
        return s, [v for k, v in s.headers if k.lower() == "referer"]

    def test_referer_token_removed_byte_for_byte(self):
        t = self.mint()
        for ref, want in [
                ("https://shop.example/offers/?page=2&ctk=%s&utm_source=mail&a=%%41+b" % t,
                 "https://shop.example/offers/?page=2&utm_source=mail&a=%41+b"),
                ("https://shop.example/offers?ctk=%s" % t, "https://shop.example/offers"),
                ("https://other.example/p?%%63tk=%s&k=1" % t, "https://other.example/p?k=1"),
                ("https://shop.example/p?ctk=%s&k=1&CTK=%s" % (t, t), "https://shop.example/p?k=1"),
                ("https://shop.example/p?k=1&ctk=%s#frag" % t, "https://shop.example/p?k=1#frag")]:
            with self.subTest(referer=ref):
                s, got = self.referer_seen(ref)
                self.assertEqual(got, [want])
                self.assertNotIn(t, repr(s))

    def test_referer_without_token_untouched(self):
        for ref in ["https://shop.example/offers?page=2&utm_source=mail&&x=%zz",
                    "https://shop.example/", "not a url ? at all", "https://a/x#ctk=1"]:
            with self.subTest(referer=ref):
                _, got = self.referer_seen(ref)
                self.assertEqual(got, [ref])

    def test_referer_token_counted_with_stripped_args(self):
        t = self.mint()
        before = self.stripped_total()
        self.referer_seen("https://shop.example/p?ctk=%s&ctk=%s" % (t, t))
        self.assertEqual(self.stripped_total() - before, 2)

    def stripped_total(self):
        text = self.get("/status").body.decode()
        m = re.search(r"^consent_stripped_args_total (\d+)$", text, re.M)
        self.assertIsNotNone(m, text)
        return int(m.group(1))

    def logged(self, marker):
        """The trace.log line holding marker, once nginx has written it."""
        deadline = time.time() + H.slow(5)
        while time.time() < deadline:
            try:
                with open(self.ngx.path("trace.log")) as f:
                    for line in f:
                        if marker in line:
                            return line.rstrip("\n")
            except OSError:
                pass
            time.sleep(0.05)
        self.fail("no access log line with %r" % marker)

    def test_log_of_every_early_answer_has_no_token(self):
        t = self.mint()
        ref = "https://shop.example/offers?k=1&ctk=%s" % t
        cases = [
            # nginx's own 400: a bad escape in the path
            ("/bad1/x%%ZZ?ctk=%s&k=1" % t, 400, "GET /bad1/x%ZZ?k=1 HTTP/1.1"),
            # a return in the rewrite phase, before the module's phase
            ("/ret/x?k=1&ctk=%s" % t, 204, "GET /ret/x?k=1 HTTP/1.1"),
            # consent off
            ("/off/x?ctk=%s" % t, 200, "GET /off/x HTTP/1.1"),
            # consent on, for comparison
            ("/on1/x?ctk=%s&k=2" % t, 200, "GET /on1/x?k=2 HTTP/1.1"),
        ]
        for target, status, line in cases:
            with self.subTest(target=target):
                r = self.get(target, [("Referer", ref)])
                self.assertEqual(r.status, status)
                got = self.logged(target.split("?")[0])
                # a bad request line is answered before any header is read
                want_ref = "-" if status == 400 else "https://shop.example/offers?k=1"
                self.assertEqual(got, "%d|%s|%s" % (status, line, want_ref))
                self.assertNotIn(t, got)

    def test_log_of_a_bad_header_has_no_token(self):
        # answered after the headers were read: both variables have values
        t = self.mint()
        r = self.get("/badh/x?ctk=%s&k=3" % t, [("Referer", "https://s/p?ctk=%s&r=1" % t),
                                                 ("Host", "a b")])
        self.assertEqual(r.status, 400)
        got = self.logged("/badh/x")
        self.assertEqual(got, "400|GET /badh/x?k=3 HTTP/1.1|https://s/p?r=1")

    def test_log_without_referer_or_token(self):
        self.get("/off/plain?x=1")
        self.assertEqual(self.logged("/off/plain"), "200|GET /off/plain?x=1 HTTP/1.1|-")


class TestConsentOff(ConsentE2E):

    def test_consent_off_passes_everything(self):
        t = self.mint()
        u = self.mint(kind="uid")
        target = "/off/x?ctk=%s&utm_source=a&page=2&_ga=1" % t
        cookie = "_ga=1; vid=%s; a=1; _fbp=2" % u
        r = self.get(target, [("Cookie", cookie), ("X-Test-Set-Cookie", "_ga=1|session=3|_fbp=2"),
                              ("Sec-GPC", "1")])
        s = H.Seen(r)
        self.assertEqual(s.target, target)
        self.assertEqual(s.cookies, [cookie])
        self.assertEqual(r.set_cookies(), ["_ga=1", "session=3", "_fbp=2"])
        self.assertEqual([h for h in s.headers if h[0].lower().startswith("x-consent-")], [],
                         "variables are empty when consent is off")

class TestCounterSets(ConsentE2E):
    """Each worker counts in a set of counters it holds alone, with plain
    adds; past 64 processes the others share one set, with atomic adds.
    With 66 workers two share. Either way every request is counted exactly
    once, and a killed worker's set goes to its replacement."""
    locations = LOC_STATUS
    workers = 66

    def shared_pids(self):
        """The pids of the workers that logged that they count in the shared set."""
        with open(self.ngx.path("error.log"), errors="replace") as f:
            return [int(m) for m in re.findall(r"\] (\d+)#\d+: consent: all 64 counter sets are held "
                                               r"by other processes", f.read())]

    def wait_shared(self, n):
        deadline = time.time() + H.slow(15)
        while len(self.shared_pids()) < n and time.time() < deadline:
            time.sleep(0.05)
        return self.shared_pids()

    def count_requests(self, n):
        """Sends n requests, each on a connection of its own (so the
        kernel hands them to many workers); the counter's growth."""
        before = H.metric(self.status(), "consent_requests_total")
        for i in range(n):
            r = self.get("/p?utm_source=x&i=%d" % i)
            self.assertEqual(r.status, 200)
        return H.metric(self.status(), "consent_requests_total") - before

    def test_counts_exact_with_sets_held_alone_and_shared(self):
        self.assertEqual(len(self.wait_shared(2)), 2, "64 sets held alone, then two workers share")
        self.assertEqual(self.count_requests(300), 300)

    def test_killed_workers_set_goes_to_its_replacement(self):
        shared = self.wait_shared(2)
        self.assertEqual(len(shared), 2)
        alone = [pid for pid in self.ngx.worker_pids() if pid not in shared]
        self.assertEqual(len(alone), 64)
        victim = alone[len(alone) // 2]
        self.ngx.kill_worker(victim)
        self.assertTrue(self.ngx.wait_respawned(victim, 66, 15), "the master did not respawn it")
        time.sleep(H.slow(0.5))
        self.assertEqual(self.shared_pids(), shared, "the replacement took the dead worker's set")
        self.assertEqual(self.count_requests(200), 200)


class TestDryRun(ConsentE2E):
    locations = LOC_DRY + LOC_STATUS

    def test_dry_run_removes_nothing(self):
        t = self.mint(campaign=CAMPAIGN)
        u = self.mint(SUBJECT2, kind="uid")
        target = "/dry/x?ctk=%s&utm_source=a&page=2" % t
        cookie = "_ga=1; a=2; vid=%s" % u
        counters = ["consent_requests_total", "consent_stripped_args_total",
                    "consent_stripped_cookies_total", "consent_stripped_set_cookies_total"]
        before = [H.metric(self.status(), c) for c in counters]
        r = self.get(target, [("Cookie", cookie), ("X-Test-Set-Cookie", "_ga=1|session=3")])
        s = H.Seen(r)
        self.assertEqual(s.target, target)
        self.assertEqual(s.cookies, [cookie])
        self.assertVars(s, Stripped="ctk,utm_source,_ga,vid", Status="valid", Subject_Id=SUBJECT,
                        Campaign=CAMPAIGN, Purposes="service,personalization")
        self.assertEqual(r.set_cookies(), ["_ga=1", "session=3"])
        # the request is counted, but nothing was stripped, so no stripped
        # counter moves
        self.assertEqual([H.metric(self.status(), c) for c in counters],
                         [before[0] + 1] + before[1:])

    def test_dry_run_sets_no_uid_cookie(self):
        t = self.mint()
        r = self.get("/dry/x?ctk=" + t)
        self.assertEqual(r.set_cookies(), [])
        u = self.mint(kind="uid")
        r = self.get("/dry/x", [("Cookie", "vid=" + u), ("Sec-GPC", "1")])
        self.assertEqual(r.set_cookies(), [], "dry run clears no cookie either")

class TestTokenRedirect(ConsentE2E):
    locations = LOC_REDIRECT

    def test_redirect_get(self):
        t = self.mint()
        before = self.up.count
        r = self.get("/r/landing?ctk=%s&utm_source=x&page=2" % t)
        self.assertEqual(r.status, 302, r)
        self.assertTrue((r.header("Location") or "").endswith("/r/landing?page=2"), r)
        self.assertEqual(self.up.count, before, "the upstream must not be contacted")
        vc = self.vid_set_cookies(r)
        self.assertEqual(len(vc), 1, r.set_cookies())
        rc, info = H.inspect(cookie_attrs(vc[0])[1], (1, self.k1))
        self.assertEqual((rc, info["subject"], info["kind"]), (0, SUBJECT, "uid"), info)

    def test_redirect_token_only_and_path_kept(self):
        t = self.mint()
        for target, tail in [("/r/landing?ctk=" + t, "/r/landing"),
                             ("/r/x?a=%41&ctk=" + t + "&b=+&utm_source=1&=&c", "/r/x?a=%41&b=+&=&c"),
                             ("/r/a%2Fb/c?k=1&ctk=" + t, "/r/a%2Fb/c?k=1")]:
            with self.subTest(target=target):
                r = self.get(target)
                self.assertEqual(r.status, 302, r)
                loc = r.header("Location") or ""
                self.assertTrue(loc.endswith(tail), loc)

    def test_redirect_head(self):
        t = self.mint()
        before = self.up.count
        r = self.ngx.request("HEAD", "/r/landing?ctk=%s&utm_source=x&page=2" % t)
        self.assertEqual(r.status, 302, r)
        self.assertTrue((r.header("Location") or "").endswith("/r/landing?page=2"), r)
        self.assertEqual(self.up.count, before)
        self.assertEqual(len(self.vid_set_cookies(r)), 1, r.set_cookies())

    def test_redirect_other_methods_are_proxied(self):
        t = self.mint()
        for method in ("PUT", "DELETE", "OPTIONS"):
            with self.subTest(method):
                r = self.ngx.request(method, "/r/x?ctk=%s&k=1" % t, body="" if method == "PUT" else None)
                s = H.Seen(r)
                self.assertEqual((s.method, s.target), (method, "/r/x?k=1"))

    def test_redirect_post_is_proxied(self):
        t = self.mint()
        r = self.ngx.request("POST", "/r/landing?ctk=%s&utm_source=x&page=2" % t,
                             [("Content-Type", "application/x-www-form-urlencoded")], body="a=1&ctk=zz")
        s = H.Seen(r)
        self.assertEqual(s.method, "POST")
        self.assertEqual(s.target, "/r/landing?page=2")
        self.assertEqual(s.js["body"], "a=1&ctk=zz")
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="ctk,utm_source")
        self.assertEqual(len(self.vid_set_cookies(r)), 1, r.set_cookies())

    def test_redirect_invalid_token(self):
        before = self.up.count
        r = self.get("/r/landing?ctk=bogus&page=2")
        self.assertEqual(r.status, 302, r)
        self.assertTrue((r.header("Location") or "").endswith("/r/landing?page=2"), r)
        self.assertEqual(self.vid_set_cookies(r), [])
        self.assertEqual(self.up.count, before)

    def test_redirect_not_without_token(self):
        s = self.seen("/r/landing?utm_source=x&page=2")
        self.assertEqual(s.target, "/r/landing?page=2")

class TestTokenRedirectRelative(ConsentE2E):
    """absolute_redirect off: the Location is the path as the client sent it.
    nginx matches locations on the normalized path (merged slashes, dot
    segments resolved), so a raw path may start with "//" or "/\\" and still
    reach a location with consent_token_redirect."""
    locations = LOC_REDIRECT_RELATIVE

    def test_redirect_location_is_never_scheme_relative(self):
        t = self.mint()
        for path in ["//evil.example/../rr/x", "/\\evil.example/../rr/x",
                     "///evil.example/../rr/x", "/\\\\evil.example/../rr/x"]:
            with self.subTest(path=path):
                r = self.get(path + "?ctk=%s&k=1" % t)
                self.assertEqual(r.status, 302, r)
                loc = r.header("Location") or ""
                # browsers read "//host" and "/\\host" as another host
                self.assertTrue(loc.startswith("/"), loc)
                self.assertNotIn(loc[1:2], ("/", "\\"), loc)
                self.assertTrue(loc.endswith("/../rr/x?k=1"), loc)

    def test_redirect_relative_keeps_path(self):
        t = self.mint()
        r = self.get("/rr/a%2Fb/c?k=1&ctk=" + t)
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("Location"), "/rr/a%2Fb/c?k=1")


class TestSatisfyAny(ConsentE2E):
    locations = LOC_SATISFY

    def test_satisfy_any_does_not_skip_module(self):
        t = self.mint()
        s = self.seen("/sa/x?ctk=%s&utm_source=a&k=1" % t, [("Cookie", "_ga=1; a=1")])
        self.assertEqual(s.target, "/sa/x?k=1")
        self.assertEqual(s.cookies, ["a=1"])
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="ctk,utm_source,_ga")

class TestInternalRedirectsAndSubrequests(ConsentE2E):
    locations = LOC_INTERNAL

    def test_auth_request_does_not_skip_module_and_is_not_counted(self):
        t = self.mint()
        before = self.status()
        s = self.seen("/ar/x?ctk=%s&utm_source=a&k=1" % t)
        after = self.status()
        self.assertEqual(s.target, "/ar/x?k=1")
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="ctk,utm_source")
        key = "consent_requests_total"
        self.assertEqual(after.get(key, 0) - before.get(key, 0), 1,
                         "the auth subrequest is not a main request")


    def _internal_redirect(self, prefix):
        t = self.mint()
        key = "consent_requests_total"
        tok = H.series("consent_tokens_total", source="purl", status="valid")
        before = self.status()
        s = self.seen(prefix + "?ctk=%s&utm_source=a&page=2" % t, [("Cookie", "_ga=1; a=1")])
        after = self.status()
        self.assertEqual(s.target, prefix + "?page=2")
        self.assertEqual(s.cookies, ["a=1"])
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="ctk,utm_source,_ga")
        self.assertEqual(after.get(key, 0) - before.get(key, 0), 1)
        self.assertEqual(after.get(tok, 0) - before.get(tok, 0), 1)

    def test_internal_redirect_error_page_named(self):
        self._internal_redirect("/ir")

    def test_internal_redirect_after_decision(self):
        # the module decides in /tf/ (preaccess), then try_files jumps to @named
        self._internal_redirect("/tf/x")

    def test_internal_redirect_after_upstream_error(self):
        # /ep/ decides and proxies to a dead port; error_page 502 = /fb/
        # redirects internally: still one decision, one UID cookie
        t = self.mint()
        before = self.status()
        r = self.get("/ep/x?ctk=%s&utm_source=a&page=2" % t,
                     [("Cookie", "_ga=1; a=1"), ("X-Test-Set-Cookie", "_fbp=1|s=2")])
        after = self.status()
        s = H.Seen(r)
        self.assertEqual(s.target.split("?")[0], "/fb/")
        self.assertNotIn("ctk=", s.target)
        self.assertNotIn("utm_source", s.target)
        self.assertEqual(s.cookies, ["a=1"])
        self.assertVars(s, Status="valid", Subject_Id=SUBJECT, Stripped="ctk,utm_source,_ga")
        vids = [c for c in r.set_cookies() if c.startswith("vid=")]
        self.assertEqual(len(vids), 1, r.set_cookies())
        self.assertEqual([c for c in r.set_cookies() if not c.startswith("vid=")], ["s=2"])

        def d(name, **labels):
            k = H.series(name, **labels)
            return after.get(k, 0) - before.get(k, 0)
        self.assertEqual(d("consent_requests_total"), 1)
        self.assertEqual(d("consent_tokens_total", source="purl", status="valid"), 1)
        self.assertEqual(d("consent_uid_cookies_total", action="set"), 1)
        self.assertEqual(d("consent_stripped_args_total"), 2)
        self.assertEqual(d("consent_stripped_cookies_total"), 1)

class TestVariablesReadBeforeDecision(ConsentE2E):
    """nginx keeps the value of $request_uri, $request, $http_cookie and
    $cookie_NAME from their first read (they are cacheable variables). A read
    in the rewrite phase (set, if, return) comes before the module's
    preaccess rewrite; later reads must still see the rewritten request."""
    locations = LOC_EARLY_VARS

    def test_cacheable_variables_read_early_see_the_rewrite(self):
        t = self.mint()
        u = self.mint(kind="uid")
        r = self.get("/ev/x?ctk=%s&utm_source=a&k=1" % t, [("Cookie", "_ga=1; a=1; vid=" + u)])
        s = H.Seen(r)
        self.assertEqual(s.target, "/ev/x?k=1")
        self.assertEqual(s.cookies, ["a=1"])
        self.assertEqual(s.one("X-Request-Uri"), "/ev/x?k=1")
        self.assertEqual(s.one("X-Request"), "GET /ev/x?k=1 HTTP/1.1")
        self.assertEqual(s.one("X-Http-Cookie"), "a=1")
        self.assertIsNone(s.one("X-Cookie-Ga"))
        self.assertIsNone(s.one("X-Cookie-Vid"))

class TestFilterFinalize(ConsentE2E):
    """A header filter after the module's can replace the response with an
    error: the not_modified filter answers 412 to a failed If-Match on a
    static file (ngx_http_filter_finalize_request). nginx then cleans the
    response headers and clears every module's r->ctx, without an internal
    redirect, and sends the error page (or runs error_page) through the
    header filters again: the decision must hold for it."""
    locations = LOC_FILTER_FINALIZE

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        os.makedirs(cls.ngx.path("www", "nm"))
        for p in (cls.ngx.path("www"), cls.ngx.path("www", "nm")):
            os.chmod(p, 0o755)
        cls.ngx.write_file(os.path.join("www", "nm", "x.html"), "static\n", 0o644)

    def test_error_page_of_filter_keeps_decision(self):
        t = self.mint()
        r = self.get("/nm/x.html?ctk=%s&k=1" % t, [("If-Match", '"nope"')])
        self.assertEqual(r.status, 412, r)
        self.assertEqual(r.header("X-Consent-Status"), "valid", r)
        self.assertEqual(r.header("X-Consent-Purposes"), "service,personalization", r)
        self.assertEqual(len(self.vid_set_cookies(r)), 1, r.set_cookies())


class TestStatus(ConsentE2E):
    locations = LOC_STATUS + LOC_REDIRECT

    METRICS = ["consent_requests_total", "consent_tokens_total", "consent_decisions_total",
               "consent_stripped_args_total", "consent_stripped_cookies_total",
               "consent_stripped_set_cookies_total", "consent_redirects_total",
               "consent_uid_cookies_total"]

    def test_status_exposition_format(self):
        self.get("/p?ctk=" + self.mint())
        r = self.get("/status")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/plain"), r)
        text = r.body.decode("latin-1")
        samples, helps, types = H.parse_prometheus(text)
        for m in self.METRICS:
            with self.subTest(metric=m):
                self.assertIn(m, helps, text)
                self.assertEqual(types.get(m), "counter", text)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, r'^[a-z_]+(\{[a-z_]+="[a-z_]+"(,[a-z_]+="[a-z_]+")*\})? [0-9]+$')
        self.assertIn(H.series("consent_tokens_total", source="purl", status="valid"), samples, text)
        self.assertIn(H.series("consent_decisions_total", purpose="marketing", result="denied"),
                      samples, text)
        for lbl in ("source", "status"):
            vals = {re.search(lbl + r'="([a-z_]+)"', k).group(1) for k in samples
                    if k.startswith("consent_tokens_total{")}
            allowed = {"source": {"purl", "uid"},
                       "status": {"valid", "invalid", "expired", "unknown_key"}}[lbl]
            self.assertLessEqual(vals, allowed, text)
        for k in samples:
            if k.startswith("consent_decisions_total{"):
                self.assertRegex(k, r'purpose="(service|analysis|marketing|personalization)",'
                                    r'result="(granted|denied)"')
            if k.startswith("consent_uid_cookies_total{"):
                self.assertRegex(k, r'action="(set|clear)"')

    def test_status_counters_summed_across_workers(self):
        before = self.status()
        n = 20
        errors = []

        def one(i):
            try:
                t = self.mint("cust-sum-%d" % i)
                r = self.get("/p?ctk=%s&utm_source=x&k=%d" % (t, i),
                             [("Cookie", "_ga=1; _fbp=2; a=1"),
                              ("X-Test-Set-Cookie", "_ga=1|session=2")])
                if r.status != 200:
                    errors.append(r)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        after = self.status()

        def d(name, **labels):
            k = H.series(name, **labels)
            return after.get(k, 0) - before.get(k, 0)
        self.assertEqual(d("consent_requests_total"), n)
        self.assertEqual(d("consent_tokens_total", source="purl", status="valid"), n)
        self.assertEqual(d("consent_decisions_total", purpose="marketing", result="denied"), n)
        self.assertEqual(d("consent_decisions_total", purpose="service", result="granted"), n)
        self.assertEqual(d("consent_decisions_total", purpose="personalization", result="granted"), n)
        self.assertEqual(d("consent_stripped_args_total"), 2 * n)
        self.assertEqual(d("consent_stripped_cookies_total"), 2 * n)
        self.assertEqual(d("consent_stripped_set_cookies_total"), n)
        self.assertEqual(d("consent_uid_cookies_total", action="set"), n)
        self.assertEqual(d("consent_redirects_total"), 0)

    def test_status_counters_tokens_redirects_clears(self):
        now = int(time.time())
        before = self.status()
        self.get("/p?ctk=bogus")
        self.get("/p?ctk=" + self.py_mint(issued_at=now - 100, expires_at=now - 1))
        self.get("/p?ctk=" + self.mint(kid=9, key=self.k3))
        self.get("/p", [("Cookie", "vid=" + self.mint(kind="uid"))])
        self.get("/p", [("Cookie", "vid=" + self.mint(kind="uid")), ("Sec-GPC", "1")])
        self.get("/r/x?ctk=" + self.mint())
        after = self.status()

        def d(name, **labels):
            k = H.series(name, **labels)
            return after.get(k, 0) - before.get(k, 0)
        self.assertEqual(d("consent_requests_total"), 6)
        self.assertEqual(d("consent_tokens_total", source="purl", status="invalid"), 1)
        self.assertEqual(d("consent_tokens_total", source="purl", status="expired"), 1)
        self.assertEqual(d("consent_tokens_total", source="purl", status="unknown_key"), 1)
        self.assertEqual(d("consent_tokens_total", source="purl", status="valid"), 1)
        self.assertEqual(d("consent_tokens_total", source="uid", status="valid"), 2)
        self.assertEqual(d("consent_redirects_total"), 1)
        self.assertEqual(d("consent_uid_cookies_total", action="clear"), 1)
        self.assertEqual(d("consent_uid_cookies_total", action="set"), 1)
        self.assertEqual(d("consent_decisions_total", purpose="personalization", result="denied"), 1)
        self.assertEqual(d("consent_decisions_total", purpose="personalization", result="granted"), 5)

class TestHostileInput(ConsentE2E):

    def test_bad_input_never_5xx(self):
        t = self.mint()
        many = "&".join("a%d=%d" % (i, i) for i in range(320))
        cases = [
            ("garbage ctk", "/p?ctk=%%%%zz!!", []),
            ("10 KB ctk", "/p?ctk=" + "A" * 10240 + "&k=1", []),
            ("6 KB cookie", "/p", [("Cookie", "; ".join("c%d=%s" % (i, "x" * 50) for i in range(115)))]),
            ("320 args", "/p?" + many + "&utm_source=1&ctk=" + t, []),
            ("%00 in names", "/p?a%00b=1&utm%00_x=2&ctk%00=3&%00=4&ut%00m_a=5", []),
            ("empty names and values", "/p?=&=&&=x&y=&ctk=&utm_=", []),
            ("repeated", "/p?" + "&".join(["utm_source=1", "k=2"] * 100), []),
            ("ctk twice", "/p?ctk=%s&ctk=%s" % (t, "bogus"), []),
            ("ctk twice bad first", "/p?ctk=bogus&ctk=" + t, []),
            ("cookie without =", "/p", [("Cookie", "vid"), ("Cookie", "noeq; _ga"), ("Cookie", ";")]),
            ("vid garbage", "/p", [("Cookie", "vid=%%%; vid=" + "B" * 5000)]),
            ("percent junk", "/p?%=1&%%=2&%2=3&utm%5=4&%75tm_x=5", []),
            ("long name", "/p?" + "u" * 3000 + "=1&utm_" + "x" * 3000 + "=2", []),
            ("control bytes", "/p?utm_a%0d%0a=1&a%0d%0aX-Injected:%20yes=2&ctk=1", []),
            ("gpc junk", "/p", [("Sec-GPC", "1, 1"), ("Sec-GPC", "")]),
            ("uid in ctk", "/p?ctk=" + self.mint(kind="uid"), []),
        ]
        for name, target, headers in cases:
            with self.subTest(name):
                r = self.get(target, headers)
                self.assertLess(r.status, 500, r)
                if r.status == 200:
                    s = H.Seen(r)
                    self.assertNotRegex(s.target, r"[?&]ctk=")
                    for k, v in s.headers:
                        self.assertNotEqual(k.lower(), "x-injected")
                    for v in s.all("X-Consent-Stripped"):
                        self.assertNotRegex(v, r"[\r\n]")
        s = self.seen("/p?" + many + "&utm_source=1&ctk=" + t)
        self.assertEqual(s.target, "/p?" + many)
        s = self.seen("/p?ctk=%s&ctk=bogus&k=1" % t)
        self.assertEqual(s.target, "/p?k=1")
        r = self.get("/p?ok=1")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.ngx.crash_lines(), [])


def load_tests(loader, tests, pattern):
    # every concrete class, not the base
    suite = unittest.TestSuite()
    for cls in ConsentE2E.__subclasses__():
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
