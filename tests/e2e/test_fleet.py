#!/usr/bin/python3
"""The fleet test (issue 13, part 2): one machine plays a production fleet.

Redis: a primary, two replicas and three Sentinels (topology.py; quorum 2,
down-after-milliseconds 1000). Three nginx edges with the module, each in
front of an echo upstream of its own:

  A  consent_redis sentinel:NAME; consent_redis_sentinels S1 S2 S3;
     consent_redis_read primary;
  B  the same with consent_redis_read replica;
  C  static lines: consent_redis PRIMARY; consent_redis R1 role=replica;
     consent_redis R2 role=replica; consent_redis_read replica;

Each edge: CONSENT_FLEET_WORKERS workers (default 2, as production runs
them: worker 0 follows a failover through +switch-master, worker 1 through
its own connections, and the test sees both), consent_cache,
consent_on_failure deny, timeout=100ms (all durations scaled by
CONSENT_E2E_SLOWDOWN), the purposes and strip rules of test_redis_store.py.

Background traffic runs against all three edges from start to end: requests
carrying a PURL token, utm_* arguments and the _ga/_fbp cookies, for
subjects with records (analysis granted for some), subjects without one,
and the subjects the steps below rewrite. In order:

  1. Updates reach every edge: CONSENT_FLEET_SAMPLES (default 100) writes
     of one subject with the write script on the primary (one persistent
     connection: the time of the acknowledgement is the EVAL reply, without
     consentctl's process start or Sentinel round trips), each edge polled
     until $consent_version shows it: publish-to-visible p50/p99 per edge;
     p99 must be under 50 ms.
  2. Failover: the primary SIGKILLed. A watcher polls the surviving nodes'
     ROLE every 10 ms and, the moment one is master, writes a probe
     subject there. "The first request decided from the new primary" is the
     first response of the edge carrying that probe version (only the new
     primary, or a replica of it, has it); the time from the kill to it is
     reported per edge. No 5xx; every request's wait for the module
     (nginx's $request_time minus $upstream_response_time, from the access
     log) is bounded by timeout; answers without Redis are the failure
     policy (every purpose denied). Then consentctl writes through Sentinel
     (analysis switched off for a subject that had it) and every edge
     serves it; A and B count the failover once, C (static) does not follow
     and from then on serves nothing from its cache.
  3. The old primary comes back as a replica (empty: no persistence, so a
     read from it before its sync would find no records): writes on the
     new primary reach every edge, and nothing stale is served.
  4. The link of the replica C reads (and B, when it reads the same one) is
     broken (REPLICAOF a dead port) and an update written at once (analysis
     off): the edges that read it serve the new state within 5 s.
  5. One Sentinel is SIGKILLed: no failure, no 5xx, and a write through the
     Sentinels (the dead one listed first) reaches every edge.
  6. The run as a whole, then the summary table (printed, for
     docs/deployment.md).

Checked over every request of the run (step 6, and each step for its own
window):
  - every response is a 200 (no 5xx, no socket error);
  - every request the upstreams receive is checked (test_faults.leaks_of):
    never a utm_* argument, the token, _fbp or the vid cookie (marketing is
    denied in every record, by default and by the failure policy); _ga only
    when the record version the edge reports grants analysis;
  - every decision matches the record version it reports (the test keeps
    every version it wrote); a failure denies everything; a subject whose
    record exists never comes back without one;
  - nothing stale: an edge never answers with a version older than one it
    already answered with for a request that had completed before this one
    was sent (all workers together);
  - once an edge has shown a version that denies analysis, no request sent
    to it afterwards carries _ga to the upstream for that subject.

Two more classes hold, in their smallest form, the module bugs the fleet
showed (fixed since): StaticPrimaryNowAReplica (C's static primary line
once it names a replica) and SentinelReplicaBackLater (B reading the
primary for good after a failover). docs/testing.md describes them.

Run: /usr/bin/python3 tests/e2e/test_fleet.py \
        --module build/ngx_http_consent_module.so --consentctl build/consentctl
"""
import bisect
import itertools
import os
import re
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_faults as F  # noqa: E402
import test_redis_store as RS  # noqa: E402
from topology import Topology  # noqa: E402

WORKERS = int(os.environ.get("CONSENT_FLEET_WORKERS") or 2)
SAMPLES = int(os.environ.get("CONSENT_FLEET_SAMPLES") or 100)
TIMEOUT_MS = 100
OPTS = "timeout=%s connect_timeout=%s" % (H.slow_ms(TIMEOUT_MS), H.slow_ms(200))
P99_TARGET = 0.050             # publish-to-visible, seconds, on loopback
# How far past `timeout` nginx's own clock may put a request's wait for the
# module: the timer fires on the event loop, which a loaded 2-core machine
# may run late.
WAIT_MARGIN = 0.100
CHANNEL = "consent:updates"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# declaration order and defaults of test_redis_store.HTTP_TEXT
DECLARED = [("service", True), ("analysis", False), ("marketing", False), ("personalization", True)]
DENY_ALL = ""

LOG_FORMAT = ("log_format fleet '$msec $request_time $upstream_response_time $consent_source "
              "$consent_version $pid $http_x_fleet_id';\n")

SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        access_log {d}/access.log fleet;
        location / {{
            consent on;
            proxy_pass http://127.0.0.1:{up};
            proxy_set_header X-Consent-Pid $pid;
{headers}
        }}
        # the pollers' location: the same decision, answered by nginx itself
        location = /v {{
            consent on;
            add_header X-Consent-Version $consent_version always;
            add_header X-Consent-Source $consent_source always;
            add_header X-Consent-Purposes $consent_purposes always;
            add_header X-Consent-Pid $pid always;
            empty_gif;
        }}
        location = /status {{ consent_status; }}
    }}
"""


def write_script():
    text = open(os.path.join(REPO, "store", "write_script.h")).read()
    start = text.index('R"lua(') + len('R"lua(')
    return text[start:text.index(')lua"', start)]


SCRIPT = write_script()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def expected_purposes(fields):
    """$consent_purposes for a record's fields (erased never written here)."""
    out = []
    for name, default in DECLARED:
        value = fields.get(name)
        granted = default if value is None else value == "1"
        if granted:
            out.append(name)
    return ",".join(out)


class Records:
    """Every version the test wrote, per subject: its fields (merged as the
    script merges) and when the write was acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.fields = {}     # subject -> current fields
        self.versions = {}   # subject -> {v: fields}
        self.acked = {}      # subject -> [(t_ack, v)]

    def add(self, subject, v, fields, t_ack):
        with self.lock:
            cur = dict(self.fields.get(subject, {}))
            cur.update(fields)
            self.fields[subject] = cur
            self.versions.setdefault(subject, {})[v] = dict(cur)
            self.acked.setdefault(subject, []).append((t_ack, v))

    def has_record_before(self, subject, t):
        """Whether a write of subject was acknowledged before t."""
        with self.lock:
            return any(ta < t for ta, _ in self.acked.get(subject, []))

    def state(self, subject, v):
        with self.lock:
            return self.versions.get(subject, {}).get(v)


class Req:
    __slots__ = ("edge", "fid", "subject", "kind", "t_send", "t_recv", "status", "source", "version",
                 "purposes", "pid", "error")

    def __repr__(self):
        return ("<%s %s %s %s +%.3fs..%.3fs status=%s source=%s v=%s purposes=%r pid=%s%s>"
                % (self.edge, self.fid, self.kind, self.subject, self.t_send - T0, self.t_recv - T0,
                   self.status, self.source, self.version, self.purposes, self.pid,
                   " error=%s" % self.error if self.error else ""))


T0 = time.monotonic()
_ids = itertools.count(1)


class Edge:
    """One nginx of the fleet, its upstream, and everything sent to both."""

    def __init__(self, name, ngx, up):
        self.name = name
        self.ngx = ngx
        self.up = up
        self.lock = threading.Lock()
        self.reqs = []        # Req, in the order they completed
        self.seen = []        # (fleet id, leaks, has _ga, subject id, version, purposes, source)
        self.by_fid = {}
        orig = up.record

        def record(rec):
            found = F.leaks_of(rec)
            hdr = {}
            for k, v in rec["headers"]:
                hdr.setdefault(k.lower(), v)
            ga = "cookie _ga" in found
            entry = (hdr.get("x-fleet-id"), [f for f in found if f != "cookie _ga"], ga,
                     hdr.get("x-consent-subject-id", ""), hdr.get("x-consent-version", ""),
                     hdr.get("x-consent-purposes", ""), hdr.get("x-consent-source", ""))
            with self.lock:
                self.seen.append(entry)
            orig(rec)
        up.record = record
        self.tokens = {}

    def token(self, subject):
        if subject not in self.tokens:
            raise KeyError("no token minted for %s" % subject)
        return self.tokens[subject]

    def send(self, subject, kind="track", timeout=10.0):
        """One request: kind "track" through the upstream with tracking data
        (utm_*, _ga, _fbp), "poll" to /v. Recorded, and returned."""
        r = Req()
        r.edge, r.subject, r.kind = self.name, subject, kind
        r.fid = "%s-%d" % (self.name, next(_ids))
        r.error = None
        r.source = r.version = r.purposes = r.pid = ""
        if kind == "track":
            target = "/p?keep=1&%s&ctk=%s" % (F.TRACK_ARGS, self.token(subject))
            headers = [("Cookie", F.TRACK_COOKIES), ("X-Fleet-Id", r.fid)]
        else:
            target = "/v?ctk=" + self.token(subject)
            headers = [("X-Fleet-Id", r.fid)]
        r.t_send = time.monotonic()
        try:
            resp = self.ngx.get(target, headers, timeout=timeout)
            r.status = resp.status
            if kind == "track" and resp.status == 200:
                seen = H.Seen(resp)

                def var(n):
                    return seen.one("X-Consent-" + n) or ""
            else:
                def var(n):
                    return resp.header("X-Consent-" + n) or ""
            if resp.status == 200:
                r.source, r.version, r.purposes, r.pid = var("Source"), var("Version"), var("Purposes"), \
                    var("Pid")
        except Exception as e:  # noqa: BLE001 - counted as a failed request
            r.status, r.error = 0, "%s: %s" % (type(e).__name__, e)
        r.t_recv = time.monotonic()
        with self.lock:
            self.reqs.append(r)
            self.by_fid[r.fid] = r
        return r

    def status(self):
        return RS.RedisStoreBase.status_of(self.ngx)

    def access_log(self):
        """[(msec, wait for the module in seconds, source, version, pid, fid)]."""
        out = []
        try:
            with open(self.ngx.path("access.log")) as f:
                lines = f.read().splitlines()
        except OSError:
            return out
        for line in lines:
            p = line.split(" ")
            if len(p) < 7:
                continue
            try:
                rt = float(p[1])
                urt = sum(float(x) for x in re.findall(r"[0-9.]+", p[2])) if p[2] != "-" else 0.0
            except ValueError:
                continue
            out.append((float(p[0]), rt - urt, p[3], p[4], p[5], p[6]))
        return out

    def reqs_between(self, t_from, t_to=None):
        with self.lock:
            return [r for r in self.reqs if r.t_send >= t_from and (t_to is None or r.t_send <= t_to)]


class Traffic(threading.Thread):
    """Requests to one edge until stopped: round robin over a subject list
    (which the test may change), a pause between requests."""

    def __init__(self, edge, subjects, kind="track", pause=0.01):
        super().__init__(daemon=True)
        self.edge, self.subjects, self.kind, self.pause = edge, list(subjects), kind, pause
        self.stop_ev = threading.Event()

    def run(self):
        i = 0
        while not self.stop_ev.is_set():
            subjects = self.subjects
            self.edge.send(subjects[i % len(subjects)], self.kind)
            i += 1
            self.stop_ev.wait(self.pause)

    def stop(self):
        self.stop_ev.set()
        self.join(30)


class Fleet(unittest.TestCase):
    maxDiff = None
    topo = None
    edges = []
    traffic = []
    summary = {}

    # subjects
    STEADY = ["steady-%d" % i for i in range(8)]      # records; even ones grant analysis
    NOBODY = ["nobody-%d" % i for i in range(3)]      # no record
    LAT = "latency"                                   # step 1's writes
    TOGGLE1, TOGGLE2, TOGGLE4 = "toggle-1", "toggle-2", "toggle-4"   # analysis 1 then 0
    PROBE = "probe"                                   # step 2's probe
    BACK = "back"                                     # step 3
    SENT = "sentinel-kill"                            # step 5

    @classmethod
    def setUpClass(cls):
        cls.records = Records()
        cls.conns = {}
        cls.topo = Topology(replicas=2, sentinels=3, quorum=2, down_after_ms=1000).start()
        cls.addClassCleanup(cls.topo.cleanup)
        cls.nodes = list(cls.topo.nodes)
        p, r1, r2 = cls.nodes
        sentinel = "sentinel:%s %s; consent_redis_sentinels %s" % (
            cls.topo.master_name, OPTS, " ".join(cls.topo.sentinel_address_list))
        static = "%s %s; consent_redis %s role=replica %s; consent_redis %s role=replica %s" % (
            p.address, OPTS, r1.address, OPTS, r2.address, OPTS)
        configs = [("A", sentinel, "primary"), ("B", sentinel, "replica"), ("C", static, "replica")]
        subjects = cls.STEADY + cls.NOBODY + [cls.LAT, cls.TOGGLE1, cls.TOGGLE2, cls.TOGGLE4, cls.PROBE,
                                              cls.BACK, cls.SENT]
        key = pkey = None
        cls.edges = []
        for name, redis, read in configs:
            up = H.EchoUpstream().start()
            cls.addClassCleanup(up.stop)
            ngx = H.Nginx(workers=WORKERS, error_log_level="info")
            cls.addClassCleanup(ngx.cleanup)
            if key is None:
                key = H.keygen(ngx.path("k1.key"))
                pkey = H.pseudonym_keygen(ngx.path("p.key"))
            else:
                for n, src in (("k1.key", key), ("p.key", pkey)):
                    with open(src) as f:
                        ngx.write_file(n, f.read())
            headers = "".join("            proxy_set_header %s %s;\n" % hv for hv in RS.VARS)
            ngx.write_config(
                RS.HTTP_TEXT.format(d=ngx.dir, redis=redis, on_failure="deny")
                # _fbp as test_faults.py has it: a marketing cookie that
                # must never reach an upstream
                + "    consent_strip_cookies marketing _fbp;\n"
                + "    consent_redis_read %s;\n    " % read + LOG_FORMAT,
                SERVERS.format(port=ngx.port, up=up.port, headers=headers, d=ngx.dir))
            cls.edges.append(Edge(name, ngx, up))
        cls.key = key
        cls.tokens = {s: H.py_mint(key, 1, s) for s in subjects}
        for e in cls.edges:
            e.tokens = cls.tokens
            e.ngx.start()
        for e in cls.edges:
            RS.RedisStoreBase.wait_gauge(e.ngx, 1, 15.0)
        cls.A, cls.B, cls.C = cls.edges
        # the records: even steady subjects grant analysis, odd ones deny
        # it; marketing is denied in every record
        for i, s in enumerate(cls.STEADY):
            cls.write(s, analysis="1" if i % 2 == 0 else "0", marketing="0")
        for s in (cls.TOGGLE1, cls.TOGGLE2, cls.TOGGLE4):
            cls.write(s, analysis="1", marketing="0")
        for s in (cls.LAT, cls.PROBE, cls.BACK, cls.SENT):
            cls.write(s, marketing="0")
        mix = cls.STEADY + cls.NOBODY + [cls.TOGGLE1, cls.TOGGLE2, cls.TOGGLE4, cls.BACK]
        cls.traffic = [Traffic(e, mix) for e in cls.edges]
        for t in cls.traffic:
            t.start()
        cls.started = time.monotonic()

    @classmethod
    def tearDownClass(cls):
        for t in cls.traffic:
            t.stop()
        for c in cls.conns.values():
            c.close()

    @classmethod
    def drop_conn(cls, node):
        c = cls.conns.pop(node.port, None)
        if c is not None:
            c.close()

    _fresh = itertools.count(1)

    @classmethod
    def fresh(cls):
        """A subject nobody asked for before (with its token)."""
        s = "fresh-%d" % next(cls._fresh)
        cls.tokens[s] = H.py_mint(cls.key, 1, s)
        return s

    # -- writes -------------------------------------------------------------
    @classmethod
    def conn(cls, node):
        c = cls.conns.get(node.port)
        if c is None:
            c = F.Resp(node.port)
            cls.conns[node.port] = c
        return c

    @classmethod
    def write(cls, subject, node=None, **fields):
        """The write script on `node` (default: the primary the Sentinels
        name) over a persistent connection; the new version, recorded with
        the time of its acknowledgement."""
        node = node or cls.topo.primary
        args = []
        for k, v in fields.items():
            args += [k, v]
        try:
            v = cls.conn(node).cmd("EVAL", SCRIPT, 1, "consent:{%s}" % subject, CHANNEL, subject, "merge", *args)
        except (OSError, ConnectionError):
            cls.drop_conn(node)
            raise
        t_ack = time.monotonic()
        if not isinstance(v, int):
            raise AssertionError("the write script on %s answered %r" % (node.name, v))
        cls.records.add(subject, str(v), fields, t_ack)
        return str(v)

    @classmethod
    def ctl_write(cls, subject, **fields):
        """consentctl set through the Sentinels (the write waits for one
        replica); the new version."""
        args = ["%s=%s" % kv for kv in fields.items()]
        _, out, _ = H.run_consentctl("set", "--redis", "sentinel:" + cls.topo.master_name,
                                     "--sentinels", cls.topo.sentinel_addresses, subject, *args)
        t_ack = time.monotonic()
        m = re.match(r"^v=(\d+)$", out.strip())
        if not m:
            raise AssertionError("consentctl set printed %r" % out)
        cls.records.add(subject, m.group(1), fields, t_ack)
        return m.group(1)

    def wait_replicated(self, timeout=10.0):
        """Until every live replica has the primary's replication offset."""
        p = self.topo.primary
        target = int(self.topo.replication(p).get("master_repl_offset", "0"))
        deadline = time.monotonic() + H.slow(timeout)
        for n in self.topo.replicas:
            while int(self.topo.replication(n).get("slave_repl_offset", "-1") or -1) < target:
                self.assertLess(time.monotonic(), deadline, "%s never caught up\n%s"
                                % (n.name, self.topo.describe()))
                time.sleep(0.01)

    # -- waiting for an edge --------------------------------------------------
    def wait_visible(self, edge, subject, v, t_from, timeout, pause=0.002):
        """Polls /v until the edge answers with version >= v; the Req."""
        deadline = t_from + H.slow(timeout)
        while True:
            r = edge.send(subject, "poll")
            if r.status == 200 and r.version and int(r.version) >= int(v):
                return r
            if time.monotonic() > deadline:
                raise AssertionError("edge %s: version %s of %s not served within %.1fs (last %r)\n%s"
                                     % (edge.name, v, subject, H.slow(timeout), r,
                                        edge.ngx.error_log()[-3000:]))
            time.sleep(pause)

    def visible_everywhere(self, subject, v, t_from, timeout):
        """wait_visible on every edge at once; {edge name: seconds from
        t_from to the response that showed it}."""
        out, errors = {}, []

        def one(e):
            try:
                out[e.name] = self.wait_visible(e, subject, v, t_from, timeout).t_recv - t_from
            except AssertionError as ex:
                errors.append(str(ex))
        ths = [threading.Thread(target=one, args=(e,)) for e in self.edges]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        self.assertEqual(errors, [])
        return out

    @staticmethod
    def lookups(edge):
        """{server: HGETALLs the edge sent it}."""
        out = {}
        for k, v in edge.status().items():
            m = re.match(r'consent_redis_lookups_total\{.*server="([^"]+)"', k)
            if m:
                out[m.group(1)] = v
        return out

    def node_names(self, before, after):
        """The nodes whose lookup counts grew from `before` to `after`, by name."""
        names = {n.address: n.name for n in self.nodes}
        return sorted(names.get(a, a) for a in after if after[a] > before.get(a, 0))

    def reads_of(self, edge, seconds=1.5):
        """The servers whose lookups counter grew on the edge over `seconds`
        of traffic (at least 20 of the edge's own lookups of new subjects)."""
        before = self.lookups(edge)
        deadline = time.monotonic() + H.slow(seconds)
        while time.monotonic() < deadline:
            edge.send(self.fresh(), "poll")     # a subject never asked for: a lookup
            time.sleep(0.02)
        after = self.lookups(edge)
        return sorted(s for s in after if after[s] > before.get(s, 0))

    # -- checks ---------------------------------------------------------------
    def audit(self, t_from=0.0, t_to=None, what="run"):
        """Every check of the module's promises over requests sent in
        [t_from, t_to]; returns {edge: problems} (empty lists when all is
        well)."""
        out = {}
        for e in self.edges:
            probs = []
            reqs = e.reqs_between(t_from, t_to)
            for r in reqs:
                if r.status != 200:
                    probs.append("not a 200: %r" % r)
                    continue
                if r.source == "failure":
                    if r.purposes != DENY_ALL or r.version:
                        probs.append("a failure that is not the failure policy: %r" % r)
                elif r.source in ("redis", "cache"):
                    st = self.records.state(r.subject, r.version)
                    if st is None:
                        probs.append("a version nobody wrote: %r" % r)
                    elif r.purposes != expected_purposes(st):
                        probs.append("decision %r does not match v%s (%r): %r"
                                     % (r.purposes, r.version, st, r))
                elif r.source == "default":
                    if self.records.has_record_before(r.subject, r.t_send):
                        probs.append("a subject with a record served without it: %r" % r)
                    elif r.purposes != expected_purposes({}):
                        probs.append("defaults wrong: %r" % r)
                else:
                    probs.append("unexpected source: %r" % r)
            # what the upstream received
            with e.lock:
                seen = list(e.seen)
            for fid, leaks, ga, subj, ver, purposes, source in seen:
                req = e.by_fid.get(fid)
                if req is not None and (req.t_send < t_from or (t_to is not None and req.t_send > t_to)):
                    continue
                if leaks:
                    probs.append("tracking data upstream: %s %s" % (fid, leaks))
                if ga:
                    st = self.records.state(subj, ver) if source in ("redis", "cache") else None
                    if st is None or st.get("analysis") != "1" or "analysis" not in purposes.split(","):
                        probs.append("_ga upstream, not allowed by the record in force: %s %s v%s %s %r"
                                     % (fid, subj, ver, source, purposes))
            probs += self.stale(reqs)
            probs += self.ga_after_off(e, reqs)
            out[e.name] = probs
        return out

    @staticmethod
    def stale(reqs):
        """Older versions served after a newer one was seen, per subject."""
        probs = []
        by_subject = {}
        for r in reqs:
            if r.status == 200 and r.source in ("redis", "cache") and r.version:
                by_subject.setdefault(r.subject, []).append(r)
        for subject, rs in by_subject.items():
            done = sorted(rs, key=lambda r: r.t_recv)
            recv_times = [r.t_recv for r in done]
            best = []   # running max version over `done`
            m = None
            for r in done:
                if m is None or int(r.version) > int(m.version):
                    m = r
                best.append(m)
            for r in rs:
                i = bisect.bisect_left(recv_times, r.t_send)
                if i > 0 and int(best[i - 1].version) > int(r.version):
                    probs.append("stale: %r after %r" % (r, best[i - 1]))
        return probs[:20]

    def ga_after_off(self, e, reqs):
        """For subjects switched to analysis=0: once the edge has shown that
        version, no later request for them carries _ga upstream."""
        probs = []
        with self.records.lock:
            offs = {}
            for s, vs in self.records.versions.items():
                for v, st in vs.items():
                    if st.get("analysis") == "0":
                        offs.setdefault(s, []).append(int(v))
        with e.lock:
            ga_fids = set(fid for fid, _, ga, *_ in e.seen if ga)
        for s, vs in offs.items():
            shown = [r for r in reqs if r.subject == s and r.status == 200 and r.version
                     and int(r.version) in vs]
            if not shown:
                continue
            first = min(shown, key=lambda r: r.t_recv)
            for r in reqs:
                if r.subject == s and r.t_send > first.t_recv and r.fid in ga_fids:
                    st = self.records.state(s, r.version) or {}
                    if st.get("analysis") != "1" or int(r.version or 0) < int(first.version):
                        probs.append("_ga upstream after analysis=0 was shown: %r (shown in %r)" % (r, first))
        return probs[:20]

    def assertClean(self, t_from=0.0, t_to=None, what="run"):
        problems = self.audit(t_from, t_to, what)
        bad = {k: v[:10] for k, v in problems.items() if v}
        self.assertEqual(bad, {}, "%s: the fleet broke a promise" % what)

    def lookup_waits(self, edge, t_from_msec=0.0):
        """The edge's waits for the module (access log) since a wall-clock
        time: (max over all, max over failures, count)."""
        rows = [x for x in edge.access_log() if x[0] >= t_from_msec]
        if not rows:
            return 0.0, 0.0, 0
        return (max(x[1] for x in rows), max([x[1] for x in rows if x[2] == "failure"] or [0.0]), len(rows))

    # -- the steps ------------------------------------------------------------
    def test_1_updates_reach_every_edge(self):
        t_start = time.monotonic()
        # one toggle under way: analysis off for TOGGLE1
        t1 = time.monotonic()
        v_off = self.write(self.TOGGLE1, analysis="0")
        took = self.visible_everywhere(self.TOGGLE1, v_off, t1, 5.0)
        lat = {e.name: [] for e in self.edges}
        v = self.write(self.LAT, marketing="0")
        self.visible_everywhere(self.LAT, v, time.monotonic(), 5.0)
        for i in range(SAMPLES):
            # the current version is cached (or read) everywhere before the write
            for e in self.edges:
                e.send(self.LAT, "poll")
            v = self.write(self.LAT, marketing="0")
            t_ack = time.monotonic()
            for name, s in self.visible_everywhere(self.LAT, v, t_ack, 2.0).items():
                lat[name].append(s)
        report = {}
        for e in self.edges:
            xs = lat[e.name]
            report[e.name] = (pct(xs, 50), pct(xs, 99), max(xs))
            self.summary.setdefault(e.name, {})["p50"] = pct(xs, 50)
            self.summary[e.name]["p99"] = pct(xs, 99)
        print("\npublish-to-visible over %d writes (the write script on the primary, ack to first "
              "response showing it):" % SAMPLES, file=sys.stderr)
        for name, (p50, p99, mx) in report.items():
            print("  edge %s: p50 %.1f ms  p99 %.1f ms  max %.1f ms" % (name, p50 * 1e3, p99 * 1e3, mx * 1e3),
                  file=sys.stderr)
        print("  analysis=0 for %s visible after %s" % (self.TOGGLE1, {k: "%.1f ms" % (x * 1e3)
                                                                         for k, x in took.items()}),
              file=sys.stderr)
        for name, (p50, p99, mx) in report.items():
            self.assertLess(p99, H.slow(P99_TARGET), "edge %s: publish-to-visible p99 %.1f ms" % (name, p99 * 1e3))
        self.assertClean(t_start, what="step 1")

    def test_2_failover(self):
        old = self.topo.primary
        survivors = [n for n in self.nodes if n is not old]
        # TOGGLE2 grants analysis (the traffic sends _ga for it); the probe
        # is visible everywhere; every replica has everything
        v0 = self.write(self.PROBE, marketing="0")
        self.visible_everywhere(self.PROBE, v0, time.monotonic(), 5.0)
        self.wait_replicated()
        failovers0 = {e.name: H.metric(e.status(), "consent_redis_failovers_total") for e in self.edges}
        # pollers of the probe on every edge, from before the kill
        probes = [Traffic(e, [self.PROBE], kind="poll", pause=0.005) for e in self.edges]
        for p in probes:
            p.start()
        promoted = {}

        def watch_promotion():
            deadline = time.monotonic() + H.slow(30)
            while time.monotonic() < deadline:
                for n in survivors:
                    role = self.topo.role(n) if n.alive() else None
                    if role and role[0] == "master":
                        promoted["t"] = time.monotonic()
                        promoted["node"] = n
                        try:
                            promoted["v"] = self.write(self.PROBE, node=n, marketing="0")
                            promoted["t_ack"] = time.monotonic()
                        except Exception as ex:  # noqa: BLE001 - reported below
                            promoted["error"] = repr(ex)
                        return
                time.sleep(0.01)
        watcher = threading.Thread(target=watch_promotion, daemon=True)
        t_wall = time.time()
        time.sleep(0.3)                     # traffic before the kill
        t_kill = time.monotonic()
        watcher.start()
        self.topo.kill_primary()
        self.drop_conn(old)
        new, agreed = self.topo.wait_failover(old)
        watcher.join(H.slow(30))
        self.assertNotIn("error", promoted, "the probe write on the new primary failed")
        self.assertIs(promoted.get("node"), new, "the node promoted first is not the one the Sentinels agree on")
        vp = promoted["v"]
        first = {}
        for e in self.edges:
            r = self.wait_visible(e, self.PROBE, vp, t_kill, 20.0, pause=0.005)
            # the first response of this edge that showed the probe version
            shown = [x for x in e.reqs_between(t_kill) if x.status == 200 and x.version
                     and int(x.version) >= int(vp)]
            first[e.name] = min(x.t_recv for x in shown + [r]) - t_kill
        for p in probes:
            p.stop()
        # afterwards, consentctl through the Sentinels: analysis off for TOGGLE2
        self.topo.wait_ready()
        t_ctl = time.monotonic()
        v_off = self.ctl_write(self.TOGGLE2, analysis="0")
        after = self.visible_everywhere(self.TOGGLE2, v_off, t_ctl, 5.0)
        time.sleep(0.3)   # traffic after it
        t_end = time.monotonic()

        # the failover was followed once by the Sentinel edges, not by C
        for e in self.edges:
            n = H.metric(e.status(), "consent_redis_failovers_total") - failovers0[e.name]
            self.assertEqual(n, 0.0 if e is self.C else 1.0, "edge %s counted %s failovers" % (e.name, n))
        for e in (self.A, self.B):
            self.assertEqual(len(re.findall(r"\[notice\].*consent: redis sentinel:%s: the primary is %s now, was %s"
                                            % (self.topo.master_name, re.escape(new.address),
                                               re.escape(old.address)), e.ngx.error_log())), 1)
        # every request's wait for the module is bounded by timeout
        bound = H.slow(TIMEOUT_MS / 1000.0 + WAIT_MARGIN)
        waits = {}
        for e in self.edges:
            mx, mx_fail, n = self.lookup_waits(e, t_wall)
            waits[e.name] = (mx, mx_fail, n)
            self.assertLessEqual(mx, bound, "edge %s: a request waited %.3fs for the module" % (e.name, mx))
        # failures: only between the kill and the edge's first answer from the new primary
        stats = {}
        for e in self.edges:
            rs = e.reqs_between(t_kill, t_end)
            fails = [r for r in rs if r.source == "failure"]
            stats[e.name] = (len(rs), len(fails),
                             (min(r.t_send for r in fails) - t_kill) if fails else None,
                             (max(r.t_recv for r in fails) - t_kill) if fails else None)
        # per worker: the first probe answer from the new primary, the last failure
        workers = {}
        for e in self.edges:
            m = re.search(r"\[notice\] (\d+)#\d+: .*the primary is %s now" % re.escape(new.address),
                          e.ngx.error_log())
            w0 = m.group(1) if m else None
            rows = []
            rs = e.reqs_between(t_kill, t_end)
            for pid in sorted(set(r.pid for r in rs if r.pid)):
                mine = [r for r in rs if r.pid == pid]
                got = [r.t_recv - t_kill for r in mine if r.subject == self.PROBE and r.version
                       and int(r.version) >= int(vp)]
                failed = [r.t_recv - t_kill for r in mine if r.source == "failure"]
                rows.append("%s%s: new primary +%s s, last failure %s" % (
                    pid, " (worker 0)" if pid == w0 else "", "%.2f" % min(got) if got else "-",
                    ("+%.2f s" % max(failed)) if failed else "none"))
            workers[e.name] = rows
        # no request waited long on the client's side either (a blocked worker)
        for e in self.edges:
            slowest = max(r.t_recv - r.t_send for r in e.reqs_between(t_kill, t_end))
            self.assertLess(slowest, H.slow(2.0), "edge %s: a request took %.2f s" % (e.name, slowest))
        # C no longer has a liveness proof (its primary is dead): from a
        # few seconds after the kill, nothing from its cache
        c_cached = [r for r in self.C.reqs_between(t_kill + H.slow(4.0), t_end) if r.source == "cache"]
        self.assertEqual(c_cached[:5], [], "C served from its cache with its primary dead")
        c_redis = [r for r in self.C.reqs_between(t_kill + H.slow(4.0), t_end) if r.source == "redis"]
        self.assertGreater(len(c_redis), 20)

        print("\nfailover: %s killed; %s answered ROLE master after %.2f s (probe v%s written %.0f ms later); "
              "the Sentinels agreed after %.2f s" % (old.name, new.name, promoted["t"] - t_kill, vp,
                                                      (promoted["t_ack"] - promoted["t"]) * 1e3, agreed),
              file=sys.stderr)
        for e in self.edges:
            n, nf, f0, f1 = stats[e.name]
            print("  edge %s: first answer from the new primary %.2f s after the kill; %d requests, %d failures%s; "
                  "longest wait for the module %.0f ms (failures: %.0f ms); consentctl write visible after %.0f ms"
                  % (e.name, first[e.name], n, nf,
                     (" from +%.2f to +%.2f s" % (f0, f1)) if nf else "",
                     waits[e.name][0] * 1e3, waits[e.name][1] * 1e3, after[e.name] * 1e3), file=sys.stderr)
            print("    workers: " + "; ".join(workers[e.name]), file=sys.stderr)
            s = self.summary.setdefault(e.name, {})
            s["failover"] = first[e.name]
            s["failures"] = nf
            s["wait"] = waits[e.name][0]
        self.summary["_failover"] = (promoted["t"] - t_kill, agreed)
        self.__class__.old, self.__class__.new = old, new
        self.assertClean(t_kill - 0.3, t_end, what="step 2 (failover)")

    def test_3_old_primary_back(self):
        old, new = self.old, self.new
        t_start = time.monotonic()
        before = {e.name: self.lookups(e) for e in self.edges}
        # extra traffic on BACK during the restart: reads hit whatever the edges read
        hammer = [Traffic(e, [self.BACK], kind="poll", pause=0.005) for e in self.edges]
        for h in hammer:
            h.start()
        try:
            self.topo.restart(old)
            self.drop_conn(old)
            took = {}
            for i in range(10):
                t = time.monotonic()
                v = self.write(self.BACK, node=new, marketing="0")
                for name, s in self.visible_everywhere(self.BACK, v, t, 5.0).items():
                    took[name] = max(took.get(name, 0), s)
                time.sleep(0.2)
            self.topo.wait_ready()
            t = time.monotonic()
            v = self.ctl_write(self.BACK, marketing="0")
            self.visible_everywhere(self.BACK, v, t, 5.0)
        finally:
            for h in hammer:
                h.stop()
        read = {e.name: self.node_names(before[e.name], self.lookups(e)) for e in self.edges}
        print("\n%s back as a replica of %s: writes on the new primary visible within %s; lookups went to %s"
              % (old.name, new.name, {k: "%.0f ms" % (x * 1e3) for k, x in took.items()}, read),
              file=sys.stderr)
        self.assertClean(t_start, what="step 3 (old primary back)")

    def test_4_broken_replica_link(self):
        primary = self.topo.primary
        replica_addrs = {n.address: n for n in self.topo.replicas}
        # C's two workers choose their replica each: after step 3 one may
        # still be on the other replica until its 5 s of avoidance are up
        deadline = time.monotonic() + H.slow(15.0)
        while True:
            reads = {e.name: self.reads_of(e) for e in (self.B, self.C)}
            c_reads = [replica_addrs[a] for a in reads["C"] if a in replica_addrs]
            if len(c_reads) == 1 or time.monotonic() > deadline:
                break
        self.assertEqual(len(c_reads), 1, "C reads %s (replicas: %s)" % (reads["C"], list(replica_addrs)))
        victim = c_reads[0]
        affected = [e for e in (self.B, self.C) if victim.address in reads[e.name]]
        t_start = time.monotonic()
        self.topo.break_link(victim)
        t_write = time.monotonic()
        v_off = self.write(self.TOGGLE4, node=primary, analysis="0")
        took = self.visible_everywhere(self.TOGGLE4, v_off, t_write, 5.0)
        time.sleep(0.3)
        self.topo.restore_link(victim)
        self.topo.wait_ready()
        print("\n%s's link broken (read by %s); analysis=0 written on %s, served after %s"
              % (victim.name, [e.name for e in affected], primary.name,
                 {k: "%.0f ms" % (x * 1e3) for k, x in took.items()}), file=sys.stderr)
        for e in affected:
            self.summary.setdefault(e.name, {})["link"] = took[e.name]
        for name, s in took.items():
            self.assertLess(s, H.slow(5.0))
        self.assertClean(t_start, what="step 4 (broken link)")

    def watchers(self):
        """{Sentinel index: connections subscribed on it} over the live
        Sentinels: the edges' worker 0 of A and B follow +switch-master there."""
        out = {}
        for i, sn in enumerate(self.topo.sentinels):
            r = self.topo.try_call(sn, "CLIENT", "LIST", "TYPE", "pubsub")
            if isinstance(r, str):
                out[i] = len([l for l in r.splitlines() if l.strip()])
        return out

    def test_5_one_sentinel_killed(self):
        # the Sentinel that A's or B's worker 0 follows +switch-master on
        before = self.watchers()
        self.assertEqual(sum(before.values()), 2, "A and B each follow +switch-master once: %r" % before)
        victim = max(before, key=lambda i: before[i])
        t_start = time.monotonic()
        self.topo.kill_sentinel(victim)
        # the edges that watched it watch another one
        deadline = time.monotonic() + H.slow(10.0)
        while sum(self.watchers().values()) != 2:
            self.assertLess(time.monotonic(), deadline, "the +switch-master watchers did not move: %r"
                            % self.watchers())
            time.sleep(0.1)
        moved = time.monotonic() - t_start
        while time.monotonic() < t_start + H.slow(3.0):
            time.sleep(0.1)
        t = time.monotonic()
        v = self.ctl_write(self.SENT, marketing="0")     # the dead Sentinel may be first in the list
        took = self.visible_everywhere(self.SENT, v, t, 5.0)
        time.sleep(0.3)
        t_end = time.monotonic()
        for e in self.edges:
            rs = e.reqs_between(t_start, t_end)
            self.assertGreater(len(rs), 20)
            fails = [r for r in rs if r.source == "failure"]
            self.assertEqual(fails[:5], [], "edge %s: failures with one Sentinel dead" % e.name)
        print("\nsentinel%d killed (%d edge(s) watched it): the watchers moved within %.1f s; no failure; "
              "a write through the Sentinels visible after %s"
              % (victim, before[victim], moved, {k: "%.0f ms" % (x * 1e3) for k, x in took.items()}),
              file=sys.stderr)
        self.assertClean(t_start, t_end, what="step 5 (a Sentinel killed)")

    def test_6_the_whole_run(self):
        for t in self.traffic:
            t.stop()
        problems = self.audit(0.0, what="the whole run")
        bad = {k: v[:10] for k, v in problems.items() if v}
        for e in self.edges:
            s = self.summary.setdefault(e.name, {})
            with e.lock:
                s["requests"] = len(e.reqs)
                s["5xx"] = len([r for r in e.reqs if r.status >= 500 or r.status == 0])
                s["leaks"] = len([x for x in e.seen if x[1]])
                s["upstream"] = len(e.seen)
            s["failures_all"] = len([r for r in e.reqs if r.source == "failure"])
            lines = [l for l in e.ngx.error_log().splitlines() if any(b in l for b in RS.BAD_LOG)]
            self.assertEqual(lines, [], "edge %s: error.log shows a crash or an alert" % e.name)
            self.assertEqual([(n, w) for n, w, _ in e.ngx.findings()], [])
            self.assertEqual(len(e.ngx.worker_pids()), WORKERS)
        self.print_summary()
        self.assertEqual(bad, {}, "the fleet broke a promise")
        for e in self.edges:
            s = self.summary[e.name]
            self.assertEqual((s["5xx"], s["leaks"]), (0, 0))
            self.assertGreater(s["upstream"], 500)

    def print_summary(self):
        fo = self.summary.get("_failover")
        out = ["", "fleet summary (%d workers per edge, %d publish-to-visible samples, %.0f s of traffic):"
               % (WORKERS, SAMPLES, time.monotonic() - self.started)]
        if fo:
            out.append("  failover: new primary answered ROLE master %.2f s after the kill; Sentinels agreed "
                       "after %.2f s" % fo)
        out.append("  edge  reads             p50 ms  p99 ms  failover s  link s  requests  failures  5xx  leaks")
        kinds = {"A": "Sentinel, primary", "B": "Sentinel, replica", "C": "static, replica"}
        for e in self.edges:
            s = self.summary.get(e.name, {})

            def f(key, fmt, scale=1.0):
                return (fmt % (s[key] * scale)) if key in s else "-"
            out.append("  %-4s  %-17s %6s  %6s  %10s  %6s  %8s  %8s  %3s  %5s"
                       % (e.name, kinds[e.name], f("p50", "%.1f", 1e3), f("p99", "%.1f", 1e3),
                          f("failover", "%.2f"), f("link", "%.2f"), s.get("requests", "-"),
                          s.get("failures_all", "-"), s.get("5xx", "-"), s.get("leaks", "-")))
        print("\n".join(out), file=sys.stderr)


class StaticPrimaryNowAReplica(unittest.TestCase):
    """Edge C's situation once the old primary is back (step 4 of Fleet
    reaches it): its static `consent_redis PRIMARY` line names a server that
    is now a replica, and its `role=replica` line names the server that is
    now the primary (ROLE master: avoided).

    The smallest case: X the primary, P a replica of X; nginx (1 worker)
    with `consent_redis P; consent_redis X role=replica; consent_redis_read
    replica;`. The edge reads P while P's link is up (ROLE_READABLE), but
    never serves from its cache: its liveness proof must be published on a
    server whose ROLE says master, and the listed primary is not one, so the
    proof would say nothing about what P receives. P's link breaks, analysis
    is withdrawn on X: the edge serves the new record, or the failure
    policy, within 5 s (the contract: a replica whose link is down is left
    within 3 s; cache hits stop within 3 s when updates cannot arrive).

    (Found by this fleet test: the module used to trust a listed primary
    without asking its ROLE, publish the proof on P, hear it there, and
    serve the withdrawn consent from its cache for as long as P's link
    stayed down.)"""

    @classmethod
    def setUpClass(cls):
        cls.x = H.RedisServer(name="X").start()
        cls.addClassCleanup(cls.x.cleanup)
        cls.p = H.RedisServer(name="P", args=["--replicaof", cls.x.host, str(cls.x.port)]).start()
        cls.addClassCleanup(cls.p.cleanup)
        deadline = time.monotonic() + H.slow(10)
        while "master_link_status:up" not in "\n".join(cls.p.cli("INFO", "replication")):
            if time.monotonic() > deadline:
                raise AssertionError("P never linked to X")
            time.sleep(0.05)
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.ngx = H.Nginx(workers=1)
        cls.addClassCleanup(cls.ngx.cleanup)
        key = H.keygen(cls.ngx.path("k1.key"))
        H.pseudonym_keygen(cls.ngx.path("p.key"))
        RS.nginx_config(cls.ngx, cls.up.port, "%s %s; consent_redis %s role=replica %s"
                        % (cls.p.address, OPTS, cls.x.address, OPTS), extra_http="consent_redis_read replica;\n")
        cls.ngx.start()
        cls.token = H.py_mint(key, 1, "s1")

    def get(self):
        r = RS.Result(self.ngx.get("/p?ctk=" + self.token), 0.0)
        self.assertEqual(r.status, 200, repr(r))
        return r

    def set(self, *fields):
        _, out, _ = H.run_consentctl("set", "--redis", self.x.address, "s1", *fields)
        return out.strip()[2:]

    def test_withdrawn_consent_is_served_within_5s(self):
        v1 = self.set("analysis=1")
        deadline = time.monotonic() + H.slow(10)
        while True:     # read through P
            r = self.get()
            if (r.source, r.version) == ("redis", v1):
                break
            self.assertLess(time.monotonic(), deadline, "v%s never read: %r" % (v1, r))
            time.sleep(0.05)
        # past two heartbeat periods: still nothing from the cache
        seen = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < H.slow(2.5):
            seen.add(self.get().source)
            time.sleep(0.05)
        self.assertEqual(seen, {"redis"}, "the proof was published on a server that is no primary")
        self.p.cli("REPLICAOF", "127.0.0.1", str(H.free_port()))
        v2 = self.set("analysis=0")
        t0 = time.monotonic()
        while time.monotonic() - t0 < H.slow(5):
            r = self.get()
            if r.version == v2 or r.source == "failure":
                break
            time.sleep(0.1)
        r = self.get()
        self.assertTrue(r.version == v2 or r.source == "failure",
                        "%.1f s after analysis was withdrawn (v%s), the edge still serves %r"
                        % (time.monotonic() - t0, v2, r))
        self.assertNotIn("analysis", r.purposes)


class SentinelReplicaBackLater(unittest.TestCase):
    """Edge B's situation after the failover (step 3 of Fleet shows it in
    "lookups went to"): `consent_redis sentinel:NAME; consent_redis_read
    replica;` asks `SENTINEL replicas` only when its read connection
    connects. When no replica was healthy then (during a failover, the
    surviving replica is still being pointed at the new primary), it reads
    the primary, and keeps reading it once the replicas are healthy again:
    its list of replicas is empty, so the probe every 2 s has nothing to try.

    The smallest case: a primary, one replica whose link is broken, one
    Sentinel; nginx (1 worker) starts while the Sentinel reports the replica
    unhealthy; the link is restored. The contract (consent_redis_read
    replica: "a healthy replica ..., else the primary") and directives.md
    ("every 2 s a worker tries the replicas it prefers to the one it reads")
    say the lookups move to the replica; within 10 s here.

    (Found by this fleet test: the module asked for the replicas only when
    its read connection connected, so the lookups stayed on the primary for
    as long as that connection lived. Every 2 s a worker not on its first
    replica now asks the Sentinels again.)"""

    @classmethod
    def setUpClass(cls):
        cls.topo = Topology(replicas=1, sentinels=1, quorum=1, down_after_ms=5000).start()
        cls.addClassCleanup(cls.topo.cleanup)
        cls.p, cls.r = cls.topo.nodes
        cls.topo.break_link(cls.r)
        deadline = time.monotonic() + H.slow(10)
        while True:
            entries = cls.topo.call(cls.topo.sentinels[0], "SENTINEL", "replicas", cls.topo.master_name)
            status = [dict(zip(e[0::2], e[1::2])).get("master-link-status") for e in entries or []]
            if status and status[0] != "ok":
                break
            if time.monotonic() > deadline:
                raise AssertionError("the Sentinel never saw the link down: %r" % status)
            time.sleep(0.1)
        cls.up = H.EchoUpstream().start()
        cls.addClassCleanup(cls.up.stop)
        cls.ngx = H.Nginx(workers=1)
        cls.addClassCleanup(cls.ngx.cleanup)
        cls.key = H.keygen(cls.ngx.path("k1.key"))
        H.pseudonym_keygen(cls.ngx.path("p.key"))
        RS.nginx_config(cls.ngx, cls.up.port, "sentinel:%s %s; consent_redis_sentinels %s"
                        % (cls.topo.master_name, OPTS, cls.topo.sentinels[0].address),
                        extra_http="consent_redis_read replica;\n")
        cls.ngx.start()
        cls.n = 0

    def reads(self):
        """(primary, replica) HGETALLs for 5 lookups of new subjects."""
        before = (self.p.calls("hgetall"), self.r.calls("hgetall"))
        for _ in range(5):
            self.__class__.n += 1
            r = self.ngx.get("/p?ctk=" + H.py_mint(self.key, 1, "b%d" % self.n))
            self.assertEqual(r.status, 200)
        after = (self.p.calls("hgetall"), self.r.calls("hgetall"))
        return after[0] - before[0], after[1] - before[1]

    def test_reads_move_to_the_replica_once_healthy(self):
        self.assertEqual(self.reads(), (5, 0), "with no healthy replica, the primary")
        self.topo.restore_link(self.r)
        t0 = time.monotonic()
        got = None
        while time.monotonic() - t0 < H.slow(10):
            got = self.reads()
            if got == (0, 5):
                break
            time.sleep(0.5)
        self.assertEqual(got, (0, 5), "%.1f s after the replica became healthy, lookups still go to the "
                         "primary" % (time.monotonic() - t0))


if __name__ == "__main__":
    unittest.main(argv=H.parse_args(), verbosity=2)
