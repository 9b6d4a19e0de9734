#!/usr/bin/python3
"""End to end: the edge against Redis as production runs it. Real
redis-server processes (TLS from Debian's build, ACL users), the packaged
nginx with the module, a throwaway PKI made with openssl (pki.py), and a
small DNS server written here.

- TLS with verification works: lookups, the cache, updates, the counters.
- Each way TLS goes wrong (a wrong CA, a wrong name, an expired
  certificate, mutual TLS without a client certificate, TLS expected but
  not spoken, and the reverse): no 5xx, the failure policy, no tracking
  data upstream, a clear line in error.log, and recovery once the
  configuration (or the server) is fixed.
- ACL users: the edge under exactly the rules docs/redis-schema.md
  documents, a wrong password, a user missing a permission (an error reply
  is a failure, never a grant), a user that may not publish the heartbeat.
- A host name follows DNS: with nginx's `resolver` set, a reconnect
  resolves the name again.

Run: /usr/bin/python3 tests/e2e/test_redis_deploy.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import pki as PKI  # noqa: E402
import test_faults as F  # noqa: E402
import test_redis_store as RS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRANTED = "service,analysis,personalization"   # a record with analysis=1
TRACK = "/p?utm_source=mail&keep=1"             # utm_*: marketing, never granted here

EDGE_PASSWORD = "edge-s3cret"
WRITER_PASSWORD = "writer-s3cret"


SENTINEL_PASSWORD = "edge-sentinel-s3cret"


def documented_acl(user, sentinel=False):
    """The `ACL SETUSER <user> ...` rule docs/redis-schema.md gives (for the
    data nodes, or with sentinel=True the one for the Sentinels), as a line
    of an ACL file ("user <user> ..."), with the test's passwords."""
    with open(os.path.join(ROOT, "docs", "redis-schema.md")) as f:
        text = f.read()
    for m in re.finditer(r"^ACL SETUSER %s (.+)$" % re.escape(user), text, re.M):
        if ("+sentinel|" in m.group(1)) == sentinel:
            break
    else:
        raise AssertionError("docs/redis-schema.md gives no ACL SETUSER %s line%s"
                             % (user, " for the Sentinels" if sentinel else ""))
    rules = m.group(1).replace(">EDGE_SECRET", ">" + EDGE_PASSWORD)
    rules = rules.replace(">WRITER_SECRET", ">" + WRITER_PASSWORD)
    rules = rules.replace(">EDGE_SENTINEL_SECRET", ">" + SENTINEL_PASSWORD)
    return "user %s %s" % (user, rules)


class DeployBase(F.LeakChecks, RS.RedisStoreBase):
    """A Redis and an nginx for the class (RS.RedisStoreBase), a PKI made
    before either, and every upstream request checked for tracking data
    (F.LeakWatch: utm_* and ctk arguments; records here never grant
    marketing)."""

    tls_cert = None         # which of the PKI's certificates Redis serves; None: plain
    auth_clients = "no"
    acl = None              # ACL file lines
    host_in_conf = None     # the host consent_redis names (default: the server's address)

    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="consent-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki_dir, True)
        cls.pki = PKI.Pki(cls.pki_dir)
        cls.extra_http = cls.http_extra()
        super().setUpClass()
        cls.watch = F.LeakWatch(cls.up)

    @classmethod
    def http_extra(cls):
        return ""

    @classmethod
    def redis_server_args(cls):
        args = {}
        if cls.tls_cert:
            args["tls"] = cls.pki.redis_tls(getattr(cls.pki, cls.tls_cert),
                                            auth_clients=cls.auth_clients)
        if cls.acl is not None:
            args["acl"] = cls.acl
        return args

    @classmethod
    def conf_address(cls):
        if cls.host_in_conf:
            return "%s:%d" % (cls.host_in_conf, cls.redis.port)
        return cls.redis.address

    @classmethod
    def redis_directive(cls, password=None):
        return " ".join([cls.conf_address()] + cls.credentials() + [cls.redis_opts])

    @classmethod
    def credentials(cls):
        return ["password=" + cls.redis_password] if cls.redis_password else []

    @classmethod
    def ctl_args(cls):
        if not cls.tls_cert:
            return []
        args = ["--tls", "--cacert", cls.pki.ca.cert]
        if cls.auth_clients == "yes":
            args += ["--cert", cls.pki.client.cert, "--key", cls.pki.client.key]
        return args

    def track(self, subject, **kw):
        """A request with a token (or vid cookie) and a tracking argument."""
        return self.request(subject, target=TRACK, **kw)


# ==========================================================================
# TLS

class T1TlsVerified(RS.LogCheck, DeployBase):
    """consent_redis localhost:PORT over TLS, the chain verified against the
    test CA and the name against the certificate's DNS name."""

    tls_cert = "server"
    host_in_conf = "localhost"

    @classmethod
    def http_extra(cls):
        return ("consent_redis_ssl on;\n"
                "consent_redis_ssl_trusted_certificate %s;\n" % cls.pki.ca.cert)

    def test_01_lookup_cache_and_update(self):
        s = "tls-1"
        v1 = self.set_record(s, "analysis=1")
        r = self.track_ok(s)
        self.assertDecision(r, "redis", GRANTED, v1)
        r, _ = self.wait_source(s, ("cache",), 3.0)
        self.assertDecision(r, "cache", GRANTED, v1)
        v2 = self.set_record(s, "analysis=0")
        deadline = time.monotonic() + H.slow(3.0)
        while self.track_ok(s).version != v2:
            self.assertLess(time.monotonic(), deadline, "the update never arrived")
            time.sleep(0.02)
        self.assertDecision(self.track_ok(s), "cache", RS.DEFAULTS, v2)

    def test_02_counters_carry_the_server(self):
        m = self.metrics()
        server = self.conf_address()
        self.assertEqual(m.get(H.series("consent_redis_up", server=server, role="primary")), 1.0,
                         sorted(k for k in m if "redis_up" in k))
        self.assertGreaterEqual(m.get(H.series("consent_redis_lookups_total", server=server), 0), 1)
        self.assertEqual(m.get(H.series("consent_redis_errors_total", server=server,
                                        kind="connect")), 0.0)
        self.assertEqual(m.get("consent_subscription_up"), 1.0)

    def test_03_no_tls_error_logged(self):
        log = self.log_since_start()
        # (a first attempt may still time out on a loaded machine: that is
        # logged too, and is not a TLS failure)
        for bad in ("verify error", "does not match", "SSL_", "closed the connection"):
            self.assertNotIn(bad, log)
        self.assertNoLeaks()


class T1bMutualTls(RS.LogCheck, DeployBase):
    """tls-auth-clients yes: the edge presents its client certificate; the
    address is an IP, verified against the certificate's IP address."""

    tls_cert = "server"
    auth_clients = "yes"

    @classmethod
    def http_extra(cls):
        return ("consent_redis_ssl on;\n"
                "consent_redis_ssl_trusted_certificate %s;\n"
                "consent_redis_ssl_certificate %s;\n"
                "consent_redis_ssl_certificate_key %s;\n"
                % (cls.pki.ca.cert, cls.pki.client.cert, cls.pki.client.key))

    def test_01_works(self):
        s = "mtls-1"
        v = self.set_record(s, "analysis=1")
        self.assertDecision(self.track_ok(s), "redis", GRANTED, v)
        r, _ = self.wait_source(s, ("cache",), 3.0)
        self.assertDecision(r, "cache", GRANTED, v)
        self.assertNoLeaks()


class T2TlsFailures(unittest.TestCase):
    """Each case: a Redis, an nginx configured wrong for it, then fixed. While
    wrong: every request 200, decided by the failure policy (deny), fast, no
    tracking data upstream, consent_redis_up 0, and error.log says why in
    the words given. After the fix (and a reload): records served again."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.mkdtemp(prefix="consent-pki-")
        cls.addClassCleanup(shutil.rmtree, cls.pki_dir, True)
        cls.pki = PKI.Pki(cls.pki_dir)
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.watch = F.LeakWatch(cls.up)

    def case(self, redis_args, bad, good, log_rx, address=None, fix_redis=None):
        """bad/good: consent_redis_ssl* lines; address: consent_redis's host
        (default the server's address); fix_redis: fix the server instead
        of nginx (good is then None)."""
        redis = H.RedisServer(**redis_args).start()
        self.addCleanup(redis.cleanup)
        subject = "tls-fail"
        redis.cli("HSET", "consent:{%s}" % subject, "v", "3", "analysis", "1")
        addr = (address or "127.0.0.1") + ":%d" % redis.port
        ngx = H.Nginx(workers=2, error_log_level="info")
        self.addCleanup(ngx.cleanup)
        k1 = H.keygen(ngx.path("k1.key"))
        H.pseudonym_keygen(ngx.path("p.key"))
        directive = addr + " " + RS.RedisStoreBase.redis_opts

        RS.nginx_config(ngx, self.up.port, directive, extra_http=bad)
        ngx.start()
        token = H.mint(k1, 1, subject)
        self.watch.reset()
        rs = []
        deadline = time.monotonic() + H.slow(1.5)
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            resp = ngx.get(TRACK + "&ctk=" + token, timeout=10)
            rs.append(RS.Result(resp, time.monotonic() - t0))
            time.sleep(0.05)
        self.assertEqual([r.status for r in rs if r.status != 200], [])
        self.assertEqual(set((r.source, r.purposes) for r in rs), {("failure", "")}, rs[-3:])
        self.assertLess(max(r.elapsed for r in rs), H.slow(1.0))
        self.assertEqual(self.watch.leaks, [], "tracking data reached the upstream")
        m = RS.RedisStoreBase.status_of(ngx)
        self.assertEqual(m.get(H.series("consent_redis_up", server=addr, role="primary")), 0.0)
        self.assertGreaterEqual(H.metric(m, "consent_redis_errors_total", kind="connect")
                                + H.metric(m, "consent_redis_timeouts_total"), 1)
        log = ngx.error_log()
        self.assertRegex(log, log_rx)
        self.assertEqual(self.bad_lines(log), [])

        if fix_redis:
            fix_redis(redis)
        else:
            RS.nginx_config(ngx, self.up.port, directive, extra_http=good)
            self.assertTrue(ngx.reload(), ngx.error_log()[-2000:])
        deadline = time.monotonic() + H.slow(5.0)
        while True:
            resp = ngx.get(TRACK + "&ctk=" + token, timeout=10)
            self.assertEqual(resp.status, 200)
            r = RS.Result(resp, 0)
            if r.source in ("redis", "cache"):
                break
            self.assertLess(time.monotonic(), deadline, "never recovered: %r\n%s"
                            % (r, ngx.error_log()[-2000:]))
            time.sleep(0.05)
        self.assertEqual((r.purposes, r.version), (GRANTED, "3"))
        self.assertEqual(self.watch.leaks, [], "tracking data reached the upstream")
        self.assertEqual(self.bad_lines(ngx.error_log()), [])
        self.assertEqual([(n, w) for n, w, _ in ngx.findings()], [])

    @staticmethod
    def bad_lines(log):
        """Lines of a crash, an alert or a critical error. nginx's SSL layer
        logs the TLS 1.3 alert "certificate required" (the server wants a
        client certificate) at [crit], as for any upstream: expected here."""
        return [l for l in log.splitlines()
                if any(b in l for b in RS.BAD_LOG)
                and not ("[crit]" in l and "alert certificate required" in l)]

    def tls_lines(self, ca=None, extra=""):
        return ("consent_redis_ssl on;\nconsent_redis_ssl_trusted_certificate %s;\n%s"
                % (ca or self.pki.ca.cert, extra))

    def test_wrong_ca(self):
        self.case({"tls": self.pki.redis_tls()},
                  bad=self.tls_lines(self.pki.wrong_ca.cert), good=self.tls_lines(),
                  log_rx=r"\[error\].*consent: redis 127\.0\.0\.1:\d+: TLS certificate verify "
                         r"error: \(\d+:[^)]+\)")

    def test_wrong_name(self):
        # the certificate names other.example only
        self.case({"tls": self.pki.redis_tls(self.pki.other)},
                  bad=self.tls_lines(),
                  good=self.tls_lines(extra="consent_redis_ssl_name other.example;\n"),
                  log_rx=r'\[error\].*TLS certificate does not match "127\.0\.0\.1"')

    def test_expired_certificate(self):
        def renew(redis):
            # the server gets a valid certificate; the edge reconnects by itself
            self.assertEqual(redis.cli("CONFIG", "SET", "tls-cert-file", self.pki.server.cert,
                                       "tls-key-file", self.pki.server.key), ["OK"])
        self.case({"tls": self.pki.redis_tls(self.pki.expired)},
                  bad=self.tls_lines(), good=None, fix_redis=renew,
                  log_rx=r"TLS certificate verify error: \(10:certificate has expired\)")

    def test_mutual_tls_without_client_certificate(self):
        client = ("consent_redis_ssl_certificate %s;\nconsent_redis_ssl_certificate_key %s;\n"
                  % (self.pki.client.cert, self.pki.client.key))
        self.case({"tls": self.pki.redis_tls(auth_clients="yes")},
                  bad=self.tls_lines(), good=self.tls_lines(extra=client),
                  log_rx=r"\[(error|crit)\].*[Cc]ertificate required.*consent redis: 127\.0\.0\.1:\d+")

    def test_tls_server_reached_without_tls(self):
        self.case({"tls": self.pki.redis_tls()},
                  bad="", good=self.tls_lines(),
                  log_rx=r"\[error\].*(Connection reset by peer.*consent redis: 127\.0\.0\.1"
                         r"|the server closed the connection before the handshake completed)")

    def test_plain_server_reached_with_tls(self):
        self.case({}, bad=self.tls_lines(), good="",
                  log_rx=r"\[error\].*(no answer within connect_timeout while TLS handshaking"
                         r"|SSL_do_handshake\(\) failed .*consent redis: 127\.0\.0\.1)")


# ==========================================================================
# ACL users

class AclBase(DeployBase):
    """The documented users; with `without`, the edge logs in as another user
    whose rules are the documented edge's but that one."""

    without = None      # a rule of the edge's to leave out, e.g. "+hgetall"
    edge_password = EDGE_PASSWORD

    @classmethod
    def setUpClass(cls):
        cls.acl = [documented_acl("consent-edge"), documented_acl("consent-writer")]
        if cls.without:
            rules = documented_acl("consent-edge").replace("user consent-edge ", "user edge-less ")
            cls.acl.append(rules.replace(cls.without, "")
                           .replace(">" + EDGE_PASSWORD, ">" + cls.edge_password))
        super().setUpClass()

    @classmethod
    def credentials(cls):
        user = "edge-less" if cls.without else "consent-edge"
        return ["user=" + user, "password=" + cls.edge_password]

    @classmethod
    def ctl_args(cls):
        # consentctl writes as the documented writer
        return ["--user", "consent-writer", "--password", WRITER_PASSWORD]


class T3AclDocumentedRules(RS.LogCheck, AclBase):
    """The edge as consent-edge, the writer as consent-writer, both under
    exactly the rules docs/redis-schema.md gives (db=0, the default prefix
    and channel)."""

    def test_01_lookup_cache_update(self):
        s = "acl-1"
        v1 = self.set_record(s, "analysis=1")
        self.assertDecision(self.track_ok(s), "redis", GRANTED, v1)
        r, _ = self.wait_source(s, ("cache",), 3.0)  # heartbeat and subscription allowed
        self.assertDecision(r, "cache", GRANTED, v1)
        v2 = self.set_record(s, "analysis=0")
        deadline = time.monotonic() + H.slow(3.0)
        while self.track_ok(s).version != v2:
            self.assertLess(time.monotonic(), deadline, "the update never arrived")
            time.sleep(0.02)

    def test_02_edge_user_cannot_write(self):
        # what the edge may do is what it needs: no write, no other keys
        out = self.redis.cli("HSET", "consent:{x}", "v", "1", user="consent-edge",
                             password=EDGE_PASSWORD)
        self.assertRegex(" ".join(out), r"NOPERM")
        out = self.redis.cli("HGETALL", "other:{x}", user="consent-edge", password=EDGE_PASSWORD)
        self.assertRegex(" ".join(out), r"NOPERM")

    def test_03_no_error_logged(self):
        self.assertNotRegex(self.log_since_start(), r"NOPERM|WRONGPASS|refused")
        self.assertNoLeaks()


class T3bAclWrongPassword(RS.LogCheck, AclBase):
    """consent-edge with a wrong password: every request decided by the
    failure policy, the reply error logged (never the password), counted;
    fixed and reloaded, records are served."""

    wait_subscription = False
    edge_password = "wrong-pw-42"

    def test_01_failure_then_fixed(self):
        s = "acl-wrongpw"
        self.set_record(s, "analysis=1")
        rs = [self.track_ok(s) for _ in range(10)]
        self.assertEqual(set((r.source, r.purposes) for r in rs), {("failure", "")})
        m = self.metrics()
        self.assertGreaterEqual(self.m(m, "consent_redis_errors_total", kind="reply"), 1)
        log = self.ngx.error_log()
        self.assertRegex(log, r"\[error\].*consent: redis 127\.0\.0\.1:\d+: WRONGPASS")
        self.assertNotIn("wrong-pw-42", log)
        self.assertNoLeaks()

        type(self).edge_password = EDGE_PASSWORD
        RS.nginx_config(self.ngx, self.up.port, self.redis_directive(), self.on_failure,
                        self.extra_http)
        self.assertTrue(self.ngx.reload(), self.ngx.error_log()[-2000:])
        r, _ = self.wait_source(s, ("redis", "cache"), 5.0, target=TRACK)
        self.assertEqual(r.purposes, GRANTED)
        self.assertNoLeaks()


class T3cAclMissingPermission(RS.LogCheck, AclBase):
    """A user with the documented rules but HGETALL: the NOPERM reply is a
    failure, never a grant, though the record grants analysis."""

    without = "+hgetall"

    def test_01_error_reply_is_a_failure(self):
        s = "acl-noperm"
        self.set_record(s, "analysis=1")
        m0 = self.metrics()
        rs = [self.track_ok(s) for _ in range(8)] + [self.track_ok(s, uid=True)]
        self.assertEqual(set((r.source, r.purposes) for r in rs), {("failure", "")}, rs)
        m1 = self.metrics()
        self.assertGreater(self.m(m1, "consent_redis_errors_total", kind="reply"),
                           self.m(m0, "consent_redis_errors_total", kind="reply"))
        self.assertRegex(self.log_since_start(), r"\[error\].*lookup: NOPERM")
        self.assertNoLeaks()


class T3dAclNoHeartbeat(RS.LogCheck, AclBase):
    """A user that may read and subscribe to the update channel but not
    publish the heartbeat: records are read from Redis on every request
    (the cache cannot prove it hears updates), and error.log says why."""

    wait_subscription = False
    without = "+publish"

    def test_01_never_from_cache(self):
        s = "acl-nohb"
        v = self.set_record(s, "analysis=1")
        refused = re.compile(r"\[error\].*the heartbeat's PUBLISH to \"consent:updates:hb:\d+\" "
                             r"was refused: NOPERM")
        rs = []
        deadline = time.monotonic() + H.slow(4.0)   # past the first heartbeats
        while time.monotonic() < deadline:
            rs.append(self.track_ok(s))
            time.sleep(0.05)
        self.assertEqual(set((r.source, r.purposes, r.version) for r in rs),
                         {("redis", GRANTED, v)})
        self.assertRegex(self.ngx.error_log(), refused)
        self.assertEqual(self.metrics().get("consent_subscription_up"), 0.0)
        self.assertNoLeaks()


# ==========================================================================
# host names through nginx's resolver

class DnsServer:
    """A DNS server on 127.0.0.1 (UDP) for one test: every A query is answered
    with `address` (TTL 1 s), every other query with no answer. `queries`
    lists (name, type) as they come."""

    def __init__(self, address):
        self.address = address
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped = True
        self.thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self.stopped:
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(query)
            if reply:
                self.sock.sendto(reply, peer)

    def answer(self, q):
        if len(q) < 12:
            return None
        qid, _, qdcount = struct.unpack("!HHH", q[:6])
        if qdcount != 1:
            return None
        i, labels = 12, []
        while i < len(q) and q[i]:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n].decode("latin-1"))
            i += 1 + n
        i += 1
        if i + 4 > len(q):
            return None
        qtype, _ = struct.unpack("!HH", q[i:i + 4])
        question = q[12:i + 4]
        self.queries.append((".".join(labels), qtype))
        answer, count = b"", 0
        if qtype == 1:
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) + socket.inet_aton(self.address)
            count = 1
        # a response, recursion desired and available, no error
        return struct.pack("!HHHHHH", qid, 0x8180, 1, count, 0, 0) + question + answer


class T4HostNameFollowsDns(RS.LogCheck, DeployBase):
    """consent_redis localhost:PORT with `resolver` set: nginx -t resolves
    localhost as usual, and every connect resolves it again through the
    resolver, here a DNS server of the test's. Redis A listens on
    127.0.0.1:PORT, Redis B on 127.0.0.2:PORT. The answer changes from A to
    B, A dies, and after the reconnect the edge reads (and hears updates
    from) B."""

    host_in_conf = "localhost"

    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer("127.0.0.1")
        cls.addClassCleanup(cls.dns.stop)
        super().setUpClass()
        cls.redis_b = H.RedisServer(host="127.0.0.2", port=cls.redis.port).start()
        cls.addClassCleanup(cls.redis_b.cleanup)

    @classmethod
    def http_extra(cls):
        return "resolver 127.0.0.1:%d valid=1s ipv6=off;\n" % cls.dns.port

    def test_01_follows_a_dns_change(self):
        s = "dns-1"
        v_a = self.set_record(s, "analysis=1")
        self.redis_b.cli("HSET", "consent:{%s}" % s, "v", "17", "analysis", "0")
        self.assertDecision(self.track_ok(s), "redis", GRANTED, v_a)
        self.assertIn(("localhost", 1), self.dns.queries, "nginx's resolver was never asked")

        asked = len(self.dns.queries)
        self.dns.address = "127.0.0.2"
        self.redis.kill()   # both connections of every worker drop
        deadline = time.monotonic() + H.slow(6.0)
        seen = []
        while True:
            r = self.track_ok(s)
            seen.append((r.source, r.version))
            if r.version == "17":
                break
            self.assertIn(r.source, ("failure", "redis", "cache"))
            self.assertLess(time.monotonic(), deadline, "still not on B: %r\n%s"
                            % (seen[-10:], self.ngx.error_log()[-2000:]))
            time.sleep(0.05)
        self.assertDecision(r, r.source, RS.DEFAULTS, "17")
        self.assertGreater(len(self.dns.queries), asked)

        # the subscription moved too: an update written on B reaches the edge
        self.wait_gauge(self.ngx, 1, 5.0)
        _, out, _ = H.run_consentctl("set", "--redis", self.redis_b.address, s, "analysis=1")
        self.assertEqual(out.strip(), "v=18")
        deadline = time.monotonic() + H.slow(3.0)
        while self.track_ok(s).version != "18":
            self.assertLess(time.monotonic(), deadline, "B's update never arrived")
            time.sleep(0.02)
        self.assertRegex(self.log_since_start(),
                         r"consent: redis localhost:\d+: connected again \(127\.0\.0\.2:\d+\)")
        self.assertNoLeaks()

    def assertLogClean(self, ngx=None):
        # A's death is logged as connect errors (refused), at [error]
        super().assertLogClean(ngx)


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
