#!/usr/bin/python3
"""`nginx -t` with the consent module: every configuration mistake the
contract lists is refused, with a message naming the directive and the
reason; a valid configuration passes.

Run: /usr/bin/python3 tests/e2e/test_config_errors.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import re
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import pki  # noqa: E402

BASE_HTTP = """
    consent_key 1 {d}/k1.key issue;
    consent_key 2 {d}/k2.key;
    consent_pseudonym_key {d}/p.key;
    consent_purpose service granted;
    consent_purpose analysis denied gpc;
    consent_purpose marketing denied;
    consent_purpose personalization granted gpc;
"""

SERVER = """
    server {{
        listen 127.0.0.1:{port};
        {server_text}
        location / {{ consent on; return 200 "ok"; }}
    }}
"""

# A configuration using every directive this work covers, in every context
# it is allowed in.
VALID_HTTP = BASE_HTTP + """
    consent_purpose billing;
    consent_uid_cookie vid purpose=personalization max_age=30d;
    consent_strip_args marketing utm_* gclid fbclid;
    consent_strip_args analysis _ga;
    consent_strip_cookies analysis _ga _ga_* _gid;
    consent_strip_cookies marketing _fbp;
    consent_token_arg ctk;
    consent_dry_run off;
    consent_token_redirect off;
    consent_policy_revision 4294967295;
    consent_choice_cookie __Host-consent max_age=180d samesite=strict;
"""
VALID_SERVER = """
    server {{
        listen 127.0.0.1:{port};
        consent on;
        consent_uid_cookie vid2 purpose=analysis domain=example.test path=/shop max_age=12h samesite=strict secure=off;
        location / {{ consent on; return 200 "ok"; }}
        location /a {{ consent_token_arg t; consent_dry_run on; consent_token_redirect on;
                       consent_strip_args billing invoice_*; consent_strip_cookies marketing ads;
                       consent_uid_cookie v max_age=1y samesite=none secure=on; return 200; }}
        location /b {{ consent off; consent_uid_cookie v samesite=lax; return 200; }}
        location = /status {{ consent_status; }}
        location = /consent {{ consent_choice; consent_choice_cookie cc secure=off domain=example.test path=/; }}
        location /c {{ consent_choice_cookie __Secure-cc samesite=none; return 200; }}
    }}
"""


# a reason, in whatever words
REASON = r"(?i)invalid|unknown|expected|not declared|undeclared|bad|must"


class TestConfigErrors(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.ngx = H.Nginx(workers=1)
        cls.addClassCleanup(cls.ngx.cleanup)
        cls.d = cls.ngx.dir
        H.keygen(cls.ngx.path("k1.key"), "xchacha20poly1305")
        H.keygen(cls.ngx.path("k2.key"), "aes256gcm")
        H.keygen(cls.ngx.path("k3.key"), "xchacha20poly1305")
        H.pseudonym_keygen(cls.ngx.path("p.key"))

    def config(self, http_text, server_text="", servers=None):
        d, port = self.d, self.ngx.port
        if servers is None:
            servers = SERVER.format(port=port, server_text=server_text)
        self.ngx.write_config(http_text.format(d=d), servers)

    def assertRefused(self, http_text, must, server_text="", servers=None):
        """nginx -t fails, and its output matches every regex in must."""
        self.config(http_text, server_text, servers)
        rc, out = self.ngx.test_config()
        conf = self.ngx.config_text()
        self.assertNotEqual(rc, 0, "nginx -t accepted:\n%s\n%s" % (out, conf))
        self.assertNotIn("test is successful", out)
        self.assertIn("[emerg]", out)
        for rx in must:
            self.assertRegex(out, rx, "nginx -t output lacks %r" % rx)

    def test_valid_config_passes(self):
        self.config(VALID_HTTP, servers=VALID_SERVER.format(port=self.ngx.port))
        rc, out = self.ngx.test_config()
        self.assertEqual(rc, 0, out + self.ngx.config_text())
        self.assertIn("test is successful", out)

    def test_minimal_configs_pass(self):
        for name, http_text in [
            ("keys only", "consent_key 1 {d}/k1.key;"),
            ("no purposes", "consent_key 7 {d}/k2.key issue; consent_pseudonym_key {d}/p.key;"),
            ("32 purposes", "consent_key 1 {d}/k1.key; consent_pseudonym_key {d}/p.key;\n"
             + "".join("consent_purpose p%02d;\n" % i for i in range(32))),
        ]:
            with self.subTest(name):
                if name == "keys only":
                    # no `consent on` anywhere: no pseudonym key needed
                    self.ngx.write_config(http_text.format(d=self.d),
                                          "server { listen 127.0.0.1:%d; }" % self.ngx.port)
                else:
                    self.config(http_text)
                rc, out = self.ngx.test_config()
                self.assertEqual(rc, 0, out + self.ngx.config_text())

    # ---- consent_key --------------------------------------------------------------

    def test_key_file_missing(self):
        self.assertRefused(BASE_HTTP + "consent_key 3 {d}/no-such.key;",
                           [r"consent_key", r"no-such\.key", r"(?i)no such file|cannot open|not found"])

    def test_key_file_not_a_file(self):
        os.makedirs(self.ngx.path("keydir"), mode=0o700, exist_ok=True)
        self.assertRefused(BASE_HTTP + "consent_key 3 {d}/keydir;",
                           [r"consent_key", r"keydir", r"(?i)regular file|directory|cannot read|cannot open"])

    def test_key_file_fifo_refused_without_hanging(self):
        # opening a FIFO waits for a writer: nginx -t (or a reload) hung
        if not os.path.exists(self.ngx.path("fifo.key")):
            os.mkfifo(self.ngx.path("fifo.key"), 0o600)
        for line in ("consent_key 3 {d}/fifo.key;", None):
            http_text = BASE_HTTP + line if line else BASE_HTTP.replace("{d}/p.key", "{d}/fifo.key")
            with self.subTest(line or "consent_pseudonym_key"):
                self.assertRefused(http_text, [r"consent_(pseudonym_)?key", r"fifo\.key",
                                               r"(?i)regular file"])

    def test_key_file_malformed(self):
        cases = [
            ("short hex", "xchacha20poly1305 abcdef\n", r"(?i)64 hex|hex|malformed|invalid"),
            ("non-hex", "aes256gcm " + "zz" * 32 + "\n", r"(?i)hex|malformed|invalid"),
            ("unknown suite", "rot13 " + "ab" * 32 + "\n", r"(?i)suite"),
            ("empty", "", r"(?i)expected|empty|malformed|invalid"),
            ("two lines", "aes256gcm " + "ab" * 32 + "\naes256gcm " + "cd" * 32 + "\n",
             r"(?i)expected|one line|malformed|invalid|trailing"),
            ("pseudonym key as token key", "ab" * 32 + "\n", r"(?i)expected|suite|malformed|invalid"),
        ]
        for name, text, reason in cases:
            with self.subTest(name):
                self.ngx.write_file("bad.key", text, 0o600)
                self.assertRefused(BASE_HTTP + "consent_key 3 {d}/bad.key;",
                                   [r"consent_key", r"bad\.key", reason])

    def test_key_file_readable_by_group_or_others(self):
        for mode in (0o640, 0o604, 0o644):
            with self.subTest(mode=oct(mode)):
                H.keygen(self.ngx.path("open.key"))
                os.chmod(self.ngx.path("open.key"), mode)
                self.assertRefused(BASE_HTTP + "consent_key 3 {d}/open.key;",
                                   [r"consent_key", r"open\.key", r"readable by group or others"])

    def test_duplicate_key_id(self):
        self.assertRefused(BASE_HTTP + "consent_key 2 {d}/k3.key;",
                           [r"consent_key", r"(?i)duplicate key id 2"])

    def test_bad_key_id(self):
        for kid in ("0", "65536", "x"):
            with self.subTest(kid=kid):
                self.assertRefused(BASE_HTTP + "consent_key %s {d}/k3.key;" % kid,
                                   [r"consent_key", r"(?i)key id"])

    def test_pseudonym_key_bad(self):
        self.ngx.write_file("badp.key", "xyz\n", 0o600)
        self.assertRefused(BASE_HTTP.replace("{d}/p.key", "{d}/badp.key"),
                           [r"consent_pseudonym_key", r"badp\.key"])
        H.pseudonym_keygen(self.ngx.path("openp.key"))
        os.chmod(self.ngx.path("openp.key"), 0o644)
        self.assertRefused(BASE_HTTP.replace("{d}/p.key", "{d}/openp.key"),
                           [r"consent_pseudonym_key", r"readable by group or others"])

    def test_consent_on_without_pseudonym_key(self):
        http_text = BASE_HTTP.replace("consent_pseudonym_key {d}/p.key;", "")
        self.assertRefused(http_text, [r"consent_pseudonym_key", r"consent on"])

    # ---- consent_purpose ----------------------------------------------------------

    def test_duplicate_purpose(self):
        self.assertRefused(BASE_HTTP + "consent_purpose marketing granted;",
                           [r"consent_purpose", r"marketing", r"(?i)duplicate"])

    def test_invalid_purpose_name(self):
        for name in ("Marketing!", "Marketing", "a-b", "x.y"):
            with self.subTest(name=name):
                self.assertRefused(BASE_HTTP + 'consent_purpose "%s" denied;' % name,
                                   [r"consent_purpose", re.escape(name),
                                    r"(?i)invalid|\[a-z0-9_\]|name"])

    def test_invalid_purpose_default(self):
        self.assertRefused(BASE_HTTP + "consent_purpose x maybe;",
                           [r"consent_purpose", r"maybe", REASON])

    def test_too_many_purposes(self):
        http_text = BASE_HTTP + "".join("consent_purpose extra%02d;\n" % i for i in range(29))
        self.assertRefused(http_text, [r"consent_purpose", r"(?i)32|too many"])

    # ---- purposes used before or without consent_purpose ----------------------------

    def test_strip_args_undeclared_purpose(self):
        self.assertRefused(BASE_HTTP + "consent_strip_args ads utm_*;",
                           [r"consent_strip_args", r"\bads\b",
                            r"(?i)unknown|undeclared|not declared|no such|without|before"])

    def test_strip_cookies_undeclared_purpose(self):
        self.assertRefused(BASE_HTTP + "consent_strip_cookies ads _fbp;",
                           [r"consent_strip_cookies", r"\bads\b",
                            r"(?i)unknown|undeclared|not declared|no such|without|before"])

    def test_purpose_used_in_server_before_declared_later_in_http(self):
        servers = SERVER.format(port=self.ngx.port,
                                server_text="consent_strip_args later utm_*;")
        http_text = BASE_HTTP
        # the declaration follows the server block, in the same http block
        self.ngx.write_config(http_text.format(d=self.d),
                              servers + "\n    consent_purpose later denied;\n")
        rc, out = self.ngx.test_config()
        self.assertNotEqual(rc, 0, out + self.ngx.config_text())
        self.assertIn("[emerg]", out)
        self.assertRegex(out, r"consent_strip_args")
        self.assertRegex(out, r"\blater\b")
        self.assertRegex(out, REASON)

    def test_purpose_used_in_http_before_declared(self):
        http_text = BASE_HTTP + "consent_strip_cookies later x_*;\nconsent_purpose later denied;"
        self.assertRefused(http_text, [r"consent_strip_cookies", r"\blater\b", REASON])

    def test_uid_cookie_undeclared_purpose(self):
        self.assertRefused(BASE_HTTP + "consent_uid_cookie vid purpose=undeclared;",
                           [r"consent_uid_cookie", r"\bundeclared\b.*(?i:not declared|undeclared|unknown)"])

    # ---- consent_uid_cookie parameters -------------------------------------------------

    def test_uid_cookie_bad_duration(self):
        for value in ("abc", "-5", "10x", ""):
            with self.subTest(max_age=value):
                self.assertRefused(BASE_HTTP + 'consent_uid_cookie vid "max_age=%s";' % value,
                                   [r"consent_uid_cookie", r"max_age", REASON])

    def test_uid_cookie_bad_samesite(self):
        self.assertRefused(BASE_HTTP + "consent_uid_cookie vid samesite=sometimes;",
                           [r"consent_uid_cookie", r"(?i)samesite", r"sometimes", REASON])

    def test_uid_cookie_bad_secure(self):
        self.assertRefused(BASE_HTTP + "consent_uid_cookie vid secure=maybe;",
                           [r"consent_uid_cookie", r"secure", r"maybe", REASON])

    def test_uid_cookie_unknown_parameter(self):
        self.assertRefused(BASE_HTTP + "consent_uid_cookie vid colour=blue;",
                           [r"consent_uid_cookie", r"colour", REASON])

    # ---- cookie names: the browsers' prefix rules, for every cookie directive ----------

    def test_cookie_prefix_rules(self):
        for directive in ("consent_uid_cookie", "consent_choice_cookie"):
            for args, why in (("__Host-v secure=off", r"__Host-.*secure=on"),
                              ("__Host-v path=/shop", r"__Host-.*path=/"),
                              ("__Host-v domain=example.test", r"__Host-.*domain"),
                              ("__host-v secure=off", r"__Host-"),
                              ("__Secure-v secure=off", r"__Secure-.*secure=on"),
                              ("v samesite=none secure=off", r"samesite=none.*secure=on"),
                              ('"v,x"', r"(?i)invalid cookie name"),
                              ("v max_age=0", r"max_age")):
                with self.subTest(directive=directive, args=args):
                    self.assertRefused(BASE_HTTP + "%s %s;" % (directive, args), [directive, why])

    # ---- consent_choice_cookie, consent_choice, consent_policy_revision --------------------

    def test_choice_cookie_parameters(self):
        self.assertRefused(BASE_HTTP + "consent_choice_cookie cc purpose=analysis;",
                           [r"consent_choice_cookie", r"purpose=analysis", REASON])
        self.assertRefused(BASE_HTTP + "consent_choice_cookie cc; consent_choice_cookie dd;",
                           [r"consent_choice_cookie", r"(?i)duplicate"])

    def test_choice_cookie_that_cannot_hold_every_purpose(self):
        many = "".join("consent_purpose %s_%02d;\n" % ("x" * 20, i) for i in range(20))
        self.assertRefused("consent_key 1 {d}/k1.key; consent_pseudonym_key {d}/p.key;\n" + many
                           + "consent_choice_cookie cc;", [r"consent_choice_cookie", r"(?i)shorter names"])
        rc_ok = "consent_key 1 {d}/k1.key; consent_pseudonym_key {d}/p.key;\n" + many
        self.config(rc_ok)  # the same purposes without a choice cookie are fine
        rc, out = self.ngx.test_config()
        self.assertEqual(rc, 0, out)

    def test_policy_revision(self):
        for value in ("-1", "4294967296", "abc", "1.5", "99999999999"):
            with self.subTest(value=value):
                self.assertRefused(BASE_HTTP + "consent_policy_revision %s;" % value,
                                   [r"consent_policy_revision", re.escape(value), r"0\.\.4294967295"])
        self.assertRefused(BASE_HTTP + "consent_policy_revision 1; consent_policy_revision 2;",
                           [r"consent_policy_revision", r"(?i)duplicate"])

    def test_choice_endpoint_contexts_and_keys(self):
        self.assertRefused(BASE_HTTP + "consent_choice;", [r"consent_choice", r"(?i)not allowed here"])
        # like `consent on`, the endpoint needs the pseudonym key
        servers = SERVER.format(port=self.ngx.port, server_text="location = /c { consent_choice; }")
        servers = servers.replace("location / { consent on; return 200 \"ok\"; }", "")
        self.ngx.write_config("consent_key 1 %s/k1.key;" % self.d, servers)
        rc, out = self.ngx.test_config()
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"consent_pseudonym_key")

    def test_choice_endpoint_needs_a_choice_cookie(self):
        self.assertRefused(BASE_HTTP, [r"consent_choice", r"consent_choice_cookie"],
                           server_text="location = /c { consent_choice; }")

    def test_choice_and_uid_cookie_of_one_name(self):
        self.assertRefused(BASE_HTTP + "consent_uid_cookie vid; consent_choice_cookie VID;",
                           [r"consent_choice_cookie", r"consent_uid_cookie", r"same cookie"])

    def test_rev_is_not_a_purpose_name(self):
        self.assertRefused(BASE_HTTP + "consent_purpose rev;", [r"consent_purpose", r"\brev\b"])

    # ---- patterns -----------------------------------------------------------------------

    def test_lone_star_pattern(self):
        for directive in ("consent_strip_args", "consent_strip_cookies"):
            with self.subTest(directive):
                self.assertRefused(BASE_HTTP + "%s marketing utm_x *;" % directive,
                                   [directive, r"(?i)pattern", r'"\*"'])

    def test_star_not_last(self):
        self.assertRefused(BASE_HTTP + "consent_strip_args marketing ut*m;",
                           [r"consent_strip_args", r"ut\*m", REASON])

    def test_cookie_pattern_that_can_never_match(self):
        # a cookie name ends at '=' or ';' and is trimmed: accepted before,
        # and silently never matched
        for pattern in ("a;b", "a=b", "_ga=*", " _ga", "_ga "):
            with self.subTest(pattern=pattern):
                self.assertRefused(BASE_HTTP + 'consent_strip_cookies analysis "%s";' % pattern,
                                   [r"consent_strip_cookies", re.escape(pattern), r"(?i)invalid pattern"])
        # the same names are fine as arguments (they may come percent-encoded)
        self.config(BASE_HTTP + 'consent_strip_args analysis "a;b" "a=b";')
        rc, out = self.ngx.test_config()
        self.assertEqual(rc, 0, out)

    def test_strip_without_pattern(self):
        self.assertRefused(BASE_HTTP + "consent_strip_args marketing;",
                           [r"consent_strip_args"])

    # ---- consent_redis and empty names -----------------------------------------------------

    def test_redis_empty_password(self):
        # accepted before, and then no AUTH was sent at all
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6379 password=;",
                           [r"consent_redis", r"(?i)empty password", r'"password="'])

    def test_redis_unix_path_too_long(self):
        # accepted before; hiredis cut the path at 107 bytes and connected there
        path = "/tmp/" + "s" * 120 + ".sock"
        self.assertRefused(BASE_HTTP + "consent_redis unix:%s;" % path,
                           [r"consent_redis", re.escape(path), r"(?i)too long"])
        self.config(BASE_HTTP + "consent_redis unix:/tmp/%s;" % ("s" * 102))  # 107 bytes: fine
        rc, out = self.ngx.test_config()
        self.assertEqual(rc, 0, out)

    def test_empty_token_arg_and_channel(self):
        # an empty token argument matched nothing: tokens silently ignored;
        # an empty channel is one consentctl cannot publish to
        for directive, where in (("consent_token_arg", "http"), ("consent_token_arg", "location"),
                                 ("consent_redis_channel", "http")):
            with self.subTest(directive=directive, where=where):
                line = '%s "";' % directive
                if where == "http":
                    self.assertRefused(BASE_HTTP + line, [directive, r"(?i)empty"])
                else:
                    servers = SERVER.format(port=self.ngx.port, server_text="").replace(
                        "location / {", "location / { " + line, 1)
                    self.assertRefused(BASE_HTTP, [directive, r"(?i)empty"], servers=servers)

    # ---- consent_redis user= and consent_redis_ssl* -----------------------------------------

    def test_redis_user_needs_a_password(self):
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6379 user=edge;",
                           [r"consent_redis", r'"user=" requires "password="'])
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6379 user= password=x;",
                           [r"consent_redis", r"(?i)empty user"])

    def test_redis_address_forms_pass(self):
        for addr in ("127.0.0.1", "127.0.0.1:6380", "localhost:6380", "[::1]:6380", "unix:/run/r.sock"):
            with self.subTest(addr=addr):
                self.config(BASE_HTTP + "consent_redis %s user=u password=p;" % addr)
                rc, out = self.ngx.test_config()
                self.assertEqual(rc, 0, out + self.ngx.config_text())
        for addr in ("[::1", "127.0.0.1:0", "127.0.0.1:99999", "unix:", "127.0.0.1:6379/db"):
            with self.subTest(addr=addr):
                self.assertRefused(BASE_HTTP + "consent_redis %s;" % addr,
                                   [r"consent_redis", r"(?i)invalid"])

    # ---- replicas and Sentinel ------------------------------------------------------------

    def test_redis_topologies_pass(self):
        for name, lines in (
                ("primary and replicas, read a replica",
                 "consent_redis 127.0.0.1:6379 role=primary user=u password=p;"
                 "consent_redis unix:/run/redis/replica.sock role=replica;"
                 "consent_redis 127.0.0.1:6380 role=replica timeout=50ms;"
                 "consent_redis_read replica;"),
                ("replicas listed before the primary",
                 "consent_redis 127.0.0.1:6380 role=replica;"
                 "consent_redis localhost:6379;"
                 "consent_redis_read primary;"),
                ("sentinel",
                 "consent_redis sentinel:consent user=edge password=p db=2 timeout=50ms;"
                 "consent_redis_sentinels 127.0.0.1:26379 localhost:26380 [::1]:26381 "
                 "user=sentinel-user password=sp;"
                 "consent_redis_read replica;")):
            with self.subTest(name):
                self.config(BASE_HTTP + lines)
                rc, out = self.ngx.test_config()
                self.assertEqual(rc, 0, out + self.ngx.config_text())

    def test_redis_two_primaries(self):
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6379; "
                           "consent_redis 127.0.0.1:6380 role=primary;",
                           [r"consent_redis", r"(?i)second role=primary", r"127\.0\.0\.1:6379"])

    def test_redis_replicas_without_primary(self):
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6380 role=replica;",
                           [r"consent_redis", r"role=replica lines need a role=primary line"])

    def test_redis_sentinel_beside_another_line(self):
        for lines in ("consent_redis 127.0.0.1:6379; consent_redis sentinel:m;",
                      "consent_redis sentinel:m; consent_redis 127.0.0.1:6380 role=replica;",
                      "consent_redis sentinel:m; consent_redis sentinel:n;"):
            with self.subTest(lines=lines):
                self.assertRefused(BASE_HTTP + lines + " consent_redis_sentinels 127.0.0.1:26379;",
                                   [r"consent_redis", r"sentinel: line must be the only"])

    def test_redis_sentinel_needs_sentinels_and_back(self):
        self.assertRefused(BASE_HTTP + "consent_redis sentinel:m;",
                           [r'"consent_redis sentinel:m" requires "consent_redis_sentinels"'])
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6379; "
                           "consent_redis_sentinels 127.0.0.1:26379;",
                           [r'"consent_redis_sentinels" requires a "consent_redis '
                            r'sentinel:MASTER_NAME" line'])

    def test_redis_bad_roles_and_reads(self):
        for lines, must in (
                ("consent_redis 127.0.0.1:6379 role=leader;",
                 [r"consent_redis", r"role=leader", r"role=primary or role=replica"]),
                ("consent_redis sentinel:m role=primary; consent_redis_sentinels 127.0.0.1:26379;",
                 [r"consent_redis", r"role=primary", r"sentinel: line names"]),
                ("consent_redis sentinel:;", [r"consent_redis", r"without a master name"]),
                ("consent_redis 127.0.0.1:6379; consent_redis_read nearest;",
                 [r"consent_redis_read", r"nearest", r"primary or replica"]),
                ("consent_redis 127.0.0.1:6379; consent_redis_read replica; "
                 "consent_redis_read primary;", [r"consent_redis_read", r"(?i)duplicate"]),
                ("consent_redis sentinel:m; consent_redis_sentinels user=u password=p;",
                 [r"consent_redis_sentinels", r"no Sentinel address"]),
                ("consent_redis sentinel:m; consent_redis_sentinels 127.0.0.1:26379 user=u;",
                 [r"consent_redis_sentinels", r'"user=" requires "password="']),
                ("consent_redis sentinel:m; consent_redis_sentinels 127.0.0.1:26379 db=1;",
                 [r"consent_redis_sentinels", r"(?i)invalid address"])):
            with self.subTest(lines=lines):
                self.assertRefused(BASE_HTTP + lines, must)

    def test_redis_host_name_that_does_not_resolve(self):
        self.assertRefused(BASE_HTTP + "consent_redis no-such-host.invalid:6379;",
                           [r"consent_redis", r"no-such-host\.invalid", r"(?i)host not found|invalid"])

    def tls_files(self):
        if not hasattr(self, "_pki"):
            os.makedirs(self.ngx.path("pki"), exist_ok=True)
            type(self)._pki = pki.Pki(self.ngx.path("pki"))
        return self._pki

    def test_redis_tls_valid_config_passes(self):
        p = self.tls_files()
        for extra in ("", "consent_redis_ssl_verify off;", "consent_redis_ssl_name redis.example;",
                      "consent_redis_ssl_certificate %s; consent_redis_ssl_certificate_key %s;"
                      % (p.client.cert, p.client.key)):
            with self.subTest(extra=extra):
                self.config(BASE_HTTP + "consent_redis localhost:6380 user=edge password=s3cret; "
                            "consent_redis_ssl on; consent_redis_ssl_trusted_certificate %s; %s"
                            % (p.ca.cert, extra))
                rc, out = self.ngx.test_config()
                self.assertEqual(rc, 0, out + self.ngx.config_text())
        # without a CA file: the system's store
        self.config(BASE_HTTP + "consent_redis 127.0.0.1:6380; consent_redis_ssl on;")
        rc, out = self.ngx.test_config()
        self.assertEqual(rc, 0, out)

    def test_redis_tls_files_missing_or_not_files(self):
        p = self.tls_files()
        fifo = self.ngx.path("a.fifo")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        good = {"consent_redis_ssl_trusted_certificate": p.ca.cert,
                "consent_redis_ssl_certificate": p.client.cert,
                "consent_redis_ssl_certificate_key": p.client.key}
        for directive in good:
            for bad, why in (("%s/no-such.pem" % self.d, r"(?i)no such file|cannot open"),
                             (self.d, r"(?i)not a regular file"),
                             (fifo, r"(?i)not a regular file")):
                with self.subTest(directive=directive, bad=bad):
                    files = dict(good, **{directive: bad})
                    lines = "".join("%s %s; " % kv for kv in files.items())
                    self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6380; "
                                       "consent_redis_ssl on; " + lines,
                                       [re.escape('"%s"' % directive), re.escape(bad), why])

    def test_redis_tls_files_that_are_not_pem(self):
        p = self.tls_files()
        junk = self.ngx.path("junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        for lines, directive in (
                ("consent_redis_ssl_trusted_certificate %s;" % junk,
                 "consent_redis_ssl_trusted_certificate"),
                ("consent_redis_ssl_certificate %s; consent_redis_ssl_certificate_key %s;"
                 % (junk, p.client.key), "consent_redis_ssl_certificate"),
                ("consent_redis_ssl_certificate %s; consent_redis_ssl_certificate_key %s;"
                 % (p.client.cert, junk), "consent_redis_ssl_certificate"),
                # a key that is not the certificate's
                ("consent_redis_ssl_certificate %s; consent_redis_ssl_certificate_key %s;"
                 % (p.client.cert, p.server.key), "consent_redis_ssl_certificate")):
            with self.subTest(lines=lines):
                self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6380; consent_redis_ssl on; "
                                   + lines, [re.escape('"%s"' % directive), re.escape(junk)
                                             if junk in lines else directive])

    def test_redis_tls_certificate_needs_its_key(self):
        p = self.tls_files()
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6380; consent_redis_ssl on; "
                           "consent_redis_ssl_certificate %s;" % p.client.cert,
                           [r'"consent_redis_ssl_certificate" requires '
                            r'"consent_redis_ssl_certificate_key"'])
        self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6380; consent_redis_ssl on; "
                           "consent_redis_ssl_certificate_key %s;" % p.client.key,
                           [r'"consent_redis_ssl_certificate_key" requires '
                            r'"consent_redis_ssl_certificate"'])

    def test_redis_tls_without_redis(self):
        self.assertRefused(BASE_HTTP + "consent_redis_ssl on;",
                           [r'"consent_redis_ssl" requires "consent_redis"'])

    def test_redis_tls_directives_without_ssl_on_warn(self):
        p = self.tls_files()
        self.config(BASE_HTTP + "consent_redis 127.0.0.1:6380; "
                    "consent_redis_ssl_trusted_certificate %s;" % p.ca.cert)
        rc, out = self.ngx.test_config()
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r'\[warn\].*consent_redis_ssl_\* directives are ignored without '
                              r'"consent_redis_ssl on"')

    def test_redis_tls_duplicates_and_empty_values(self):
        for line in ("consent_redis_ssl on; consent_redis_ssl off;",
                     "consent_redis_ssl_name a; consent_redis_ssl_name b;"):
            with self.subTest(line=line):
                self.assertRefused(BASE_HTTP + "consent_redis 127.0.0.1:6380; " + line,
                                   [r"(?i)duplicate"])
        self.assertRefused(BASE_HTTP + 'consent_redis 127.0.0.1:6380; consent_redis_ssl on; '
                           'consent_redis_ssl_name "";',
                           [r"consent_redis_ssl_name", r"(?i)empty"])

    # ---- contexts -------------------------------------------------------------------------

    def test_http_only_directives_refused_in_location(self):
        for line in ("consent_purpose late denied;", "consent_key 9 %s/k3.key;" % self.d):
            with self.subTest(line):
                servers = SERVER.format(port=self.ngx.port, server_text="").replace(
                    'location / {', 'location / { ' + line, 1)
                self.ngx.write_config(BASE_HTTP.format(d=self.d), servers)
                rc, out = self.ngx.test_config()
                self.assertNotEqual(rc, 0, out)
                self.assertRegex(out, r"(?i)not allowed here")


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
