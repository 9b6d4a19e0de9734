"""Bench: one macro benchmark run. It starts the processes every scenario
shares (the upstream, the baseline front B1, Redis) and the keys and
tokens, runs the scenarios B2 to B9, each interleaved with B1, and holds
a front for profiling (--hold). It measures with Measure (measurement.py)
and reports with Report (reporting.py).
"""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from update_latency import percentile
from benchlib import MACRO, NGINX, WRK, fail, say
from benchlib.measurement import Measure, check, counters, delta
from benchlib.processes import (REDIS_TIMEOUT_MS, Nginx, Probe, Redis, Wrk, free_port, front_conf,
                                upstream_conf)
from benchlib.reporting import Report
from peers import confs as peers
from benchlib.scenarios import (CHOICE_COOKIE, CHOICES, DESCRIPTIONS, PATH, RECORD, STRIPPED_B4, STRIPPED_B4C,
                                TARGETS, Keys, fill, forged, garbage, raw_request, request_template,
                                write_entries, write_lua)


def first_request(query, headers, entries):
    """The request template filled with a stream's first entry: what a
    scenario's sanity check sends."""
    return fill(query, *entries[0]), [(k, fill(v, *entries[0])) for k, v in headers]


class Bench(Measure, Report):
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="consent-macro-")
        self.wrk = Wrk(args)
        self.nginxes = []
        self.redis = None
        self.redis_tls = None   # B7T's
        self.publisher = None
        self.runs = []          # every measured run
        self.summary = {}       # scenario -> row
        self.max_rps = 0.0
        self.run_id = secrets.token_hex(3)
        self.noisy_pairs = 0    # rounds during which other processes took too much CPU
        self.retried = 0        # of which were run again
        self.subject_seq = 0

    # -- processes ----------------------------------------------------------
    def start_nginx(self, name, conf, port):
        n = Nginx(name, self.tmp, conf, port)
        self.nginxes.append(n)
        return n.start()

    def stop_nginx(self, n):
        problems = n.log_problems()
        if problems:
            fail("%s error.log: %d [alert]/[crit]/[emerg] lines, first: %s" % (n.name, len(problems), problems[0]))
        n.stop()
        self.nginxes.remove(n)

    def cleanup(self):
        if self.publisher and self.publisher.poll() is None:
            self.publisher.kill()
            self.publisher.wait()
        if self.redis:
            self.redis.sigcont()  # always, before anything else
        for n in list(self.nginxes):
            n.stop()
        if self.redis:
            self.redis.stop()
        if self.redis_tls:
            self.redis_tls.stop()
        if self.args.keep:
            print("kept", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- set-up ------------------------------------------------------------
    def setup(self):
        a = self.args
        for path in (NGINX, WRK, a.module):
            if not os.path.exists(path):
                raise SystemExit("missing %s (the release build makes the module: ./dev bench)" % path)
        self.keys = Keys(self.tmp)
        self.redis = Redis(self.tmp)
        self.up_port = free_port()
        self.start_nginx("upstream", upstream_conf(self.up_port, a.upstream_workers), self.up_port)
        self.b1_port = free_port()
        self.b1 = self.start_nginx("B1", front_conf(self.b1_port, self.up_port, a.workers), self.b1_port)
        # B4, B5 and B8's subject, with a record; B8's probe subject too
        self.subject = "customer-00012345"
        self.redis.r.call("DEL", "consent:{%s}" % self.subject)
        args = ["HSET", "consent:{%s}" % self.subject]
        for k, v in RECORD.items():
            args += [k, v]
        self.redis.r.call(*args)
        self.redis.r.call("HSET", "consent:{bench-probe}", "v", "1", "service", "1")
        self.uid = self.keys.mint("uid", self.subject)
        self.purl = self.keys.mint("purl", self.subject, "newsletter-2026-11")
        self.choice = self.keys.mint_choice(CHOICES)
        self.probe_uid = self.keys.mint("uid", "bench-probe")

    def front(self, name, consent="on", redis_tls=None, choice=False):
        """The module's front; consent "userid" or "lua": a peer's instead
        (bench/peers/), doing B4's job the way an operator would without it."""
        port = free_port()
        if consent == "userid":
            conf = peers.userid_conf(port, self.up_port, self.args.workers)
        elif consent == "lua":
            conf = peers.lua_conf(port, self.up_port, self.args.workers, self.keys.token_file,
                                  self.keys.pseudonym_file, RECORD, subject=self.subject)
        else:
            conf = front_conf(port, self.up_port, self.args.workers, module=os.path.abspath(self.args.module),
                              consent=consent, keys=self.keys, redis_port=self.redis.port, redis_tls=redis_tls,
                              choice=choice)
        n = self.start_nginx(name, conf, port)
        if consent == "on":
            # the cache serves nothing until worker 0's subscription is up
            deadline = time.time() + 10
            while counters(port).get("consent_subscription_up", 0) != 1:
                if time.time() > deadline:
                    fail("%s: the update channel subscription did not come up" % name)
                    break
                time.sleep(0.05)
        return n

    def files(self, name, with_purl, with_cookie, cookie_name="__Host-vid", more_cookies=""):
        query, headers = request_template(with_purl, with_cookie, cookie_name, more_cookies)
        lua = os.path.join(self.tmp, name + ".lua")
        write_lua(lua, raw_request(PATH, query, headers))
        return lua, os.path.join(self.tmp, name + ".entries"), query, headers

    def fresh_subjects(self, n, tag):
        out = []
        for _ in range(n):
            self.subject_seq += 1
            # 17 characters, as long as B4's subject: tokens of the same size
            out.append("%s%011d" % (self.run_id, self.subject_seq))
        return out

    def mint_misses(self, prefix, tag, seconds):
        """Distinct new subjects for one run, one slice per wrk thread:
        enough for the fastest baseline seen so far, with margin."""
        rate = max(self.max_rps, 2000.0)
        n = int(rate * seconds * 1.5) + 200 * self.args.threads
        t0 = time.time()
        subjects = self.fresh_subjects(n, tag)
        write_entries(prefix, [(self.keys.mint("uid", s), "") for s in subjects], threads=self.args.threads)
        if self.args.verbose:
            print("    minted %d tokens in %.1f s" % (n, time.time() - t0))
        return n
    # -- scenarios -------------------------------------------------------------
    def simple(self, scenario, consent, with_purl, with_cookie, entries_list, sanity, choice=False,
               more_cookies=""):
        front = self.front(scenario, consent, choice=choice)
        lua, entries, query, headers = self.files(scenario, with_purl, with_cookie,
                                                  CHOICE_COOKIE if choice else "__Host-vid", more_cookies)
        write_entries(entries, entries_list)
        sanity(front, query, headers, entries_list)
        self.warmup(front, lua, entries)
        pairs, notes = [], []
        hits = reqs = 0
        for rnd in range(1, self.args.rounds + 1):
            c0 = counters(front.port) if consent == "on" else {}
            h0 = self.redis.hgetall_calls()
            pairs.append(self.pair(scenario, rnd, front, lua, entries))
            h1 = self.redis.hgetall_calls()
            if consent == "on":
                c1 = counters(front.port)
                hits += delta(c0, c1, "consent_cache_hits_total")
                reqs += delta(c0, c1, "consent_requests_total")
                if scenario == "B6":
                    lk = delta(c0, c1, "consent_redis_lookups_total")
                    if h1 - h0 or lk:
                        fail("B6 round %d: %d HGETALL in Redis, %d lookups counted; want 0" % (rnd, h1 - h0, lk))
                    notes.append("round %d: HGETALL %d, lookups %d" % (rnd, h1 - h0, lk))
        if scenario in ("B4", "B5") and reqs:
            notes.append("cache hits %.2f%% of %d requests" % (100.0 * hits / reqs, reqs))
            if hits < 0.99 * reqs:
                fail("%s: only %d of %d requests were cache hits" % (scenario, hits, reqs))
        light = self.light(scenario, front, lua, entries) if scenario == "B4" else None
        self.stop_nginx(front)
        row = self.summarize(scenario, pairs, notes)
        if light:
            row["light"] = light
        return row

    def expect(self, what, got, want):
        if got != want:
            fail("%s: %r, want %r" % (what, got, want))

    def run_b2(self):
        def sanity(front, query, headers, entries):
            status, h = check(front.port, *first_request(query, headers, entries))
            self.expect("B2 status", status, 200)
            self.expect("B2 $consent_source (consent off)", h.get("x-source"), None)
        return self.simple("B2", "off", False, True, [(self.uid, "")], sanity)

    def run_b3(self):
        def sanity(front, query, headers, entries):
            status, h = check(front.port, query, headers)
            self.expect("B3 status", status, 200)
            self.expect("B3 $consent_source", h.get("x-source"), "none")
            self.expect("B3 $consent_stripped", h.get("x-stripped"), "utm_source,utm_medium,gclid")
        return self.simple("B3", "on", False, False, [("", "")], sanity)

    def warm(self, front, query, headers):
        deadline = time.time() + 10
        while True:
            status, h = check(front.port, query, headers)
            if h.get("x-source") == "cache" or time.time() > deadline:
                break
            time.sleep(0.05)
        return status, h

    def run_b4(self):
        name = "B4"
        def sanity(front, query, headers, entries):
            q, hs = first_request(query, headers, entries)
            status, h = self.warm(front, q, hs)
            self.expect(name + " status", status, 200)
            self.expect(name + " $consent_source after warming", h.get("x-source"), "cache")
            self.expect(name + " $consent_token_status", h.get("x-token"), "valid")
            self.expect(name + " $consent_stripped", h.get("x-stripped"), STRIPPED_B4)
        return self.simple(name, "on", False, True, [(self.uid, "")], sanity)

    def run_b4c(self):
        name = "B4C"
        def sanity(front, query, headers, entries):
            q, hs = first_request(query, headers, entries)
            status, h = check(front.port, q, hs)
            self.expect(name + " status", status, 200)
            self.expect(name + " $consent_source", h.get("x-source"), "cookie")
            self.expect(name + " $consent_token_status", h.get("x-token"), "none")
            self.expect(name + " $consent_purposes", h.get("x-purposes"), "service,billing,analysis")
            self.expect(name + " $consent_stripped", h.get("x-stripped"), STRIPPED_B4C)
        return self.simple(name, "on", False, True, [(self.choice, "")], sanity, choice=True)

    def run_b4u(self):
        """nginx's userid filter: a returning visitor's uid cookie read, B4's
        request otherwise; nothing decided, nothing stripped."""
        name = "B4U"
        def sanity(front, query, headers, entries):
            q, hs = first_request(query, headers, entries)
            status, h = check(front.port, q, hs)
            self.expect(name + " status", status, 200)
            self.expect(name + " the visitor's uid read", bool(h.get("x-uid")), True)
            self.expect(name + " no new uid cookie", "set-cookie" in h, False)
        return self.simple(name, "userid", False, True, [(self.uid, "")], sanity, more_cookies=peers.USERID_COOKIE)

    def run_b4l(self):
        """B4's job in OpenResty Lua: the same token, cache hit (lua_shared_dict),
        the same arguments and cookies stripped."""
        name = "B4L"
        def sanity(front, query, headers, entries):
            q, hs = first_request(query, headers, entries)
            status, h = check(front.port, q, hs)
            self.expect(name + " status", status, 200)
            self.expect(name + " token", h.get("x-token"), "valid")
            self.expect(name + " purposes", h.get("x-purposes"), "service,billing,analysis")
            self.expect(name + " stripped", h.get("x-stripped"), STRIPPED_B4)
        return self.simple(name, "lua", False, True, [(self.uid, "")], sanity)

    def run_b5(self):
        def sanity(front, query, headers, entries):
            q, hs = first_request(query, headers, entries)
            status, h = self.warm(front, q, hs)
            self.expect("B5 status", status, 200)
            self.expect("B5 $consent_source after warming", h.get("x-source"), "cache")
            self.expect("B5 $consent_token_status", h.get("x-token"), "valid")
            self.expect("B5 $consent_stripped", h.get("x-stripped"), "ctk," + STRIPPED_B4)
        return self.simple("B5", "on", True, True, [(self.purl, self.uid)], sanity)

    def run_b6(self):
        rnd = secrets.token_bytes(4096)
        entries = []
        for k in range(1000):
            kind = k % 4
            if kind == 0:    # forged: a valid token with one character changed, both places
                e = (forged(self.keys.mint("purl", "victim-%05d" % k, "spring")),
                     forged(self.keys.mint("uid", "victim-%05d" % k)))
            elif kind == 1:  # garbage of random length
                n1, n2 = 20 + rnd[k % 4096] % 180, 20 + rnd[(k * 7) % 4096] % 180
                e = (garbage(secrets.token_bytes(n1), n1), garbage(secrets.token_bytes(n2), n2))
            elif kind == 2:  # well formed, under a key id the edge does not have
                e = (self.keys.mint("purl", "victim-%05d" % k, kid=9, key=self.keys.other),
                     self.keys.mint("uid", "victim-%05d" % k, kid=9, key=self.keys.other))
            else:            # sealed with the right key id but another key
                e = (self.keys.mint("purl", "victim-%05d" % k, key=self.keys.other),
                     self.keys.mint("uid", "victim-%05d" % k, key=self.keys.other))
            entries.append(e)

        def sanity(front, query, headers, entries):
            for e in entries[:8]:
                status, h = check(front.port, fill(query, *e), [(k, fill(v, *e)) for k, v in headers])
                self.expect("B6 status", status, 200)
                if h.get("x-token") not in ("invalid", "unknown_key"):
                    fail("B6: a forged token got $consent_token_status %r" % h.get("x-token"))
                self.expect("B6 $consent_source", h.get("x-source"), "none")
        return self.simple("B6", "on", True, True, entries, sanity)

    def misses_round(self, scenario, rnd, front, lua, prefix, redis_stop_at=None):
        """A B7-style run: fresh subjects in the files, baseline first."""
        self.mint_misses(prefix, "%s-r%d" % (scenario.lower(), rnd), self.args.duration)
        c0 = counters(front.port)
        h0 = None if self.redis.stopped else self.redis.hgetall_calls()
        base = self.record("B1", rnd, self.b1_port,
                           self.wrk_run(self.b1_port, lua, prefix, self.args.duration, "B1"), {"block": scenario})
        proc = self.wrk_start(front.port, lua, prefix, self.args.duration)
        if redis_stop_at is not None:
            time.sleep(redis_stop_at)
            self.redis.sigstop()
        res = self.wrk_finish(proc, scenario)
        c1 = counters(front.port)
        h1 = None if self.redis.stopped or h0 is None else self.redis.hgetall_calls()
        extra = {"lookups": delta(c0, c1, "consent_redis_lookups_total"),
                 "hgetall": None if h1 is None else h1 - h0,
                 "cache_hits": delta(c0, c1, "consent_cache_hits_total"),
                 "fast_failures": delta(c0, c1, "consent_redis_fast_failures_total"),
                 "timeouts": delta(c0, c1, "consent_redis_timeouts_total"),
                 "requests_decided": delta(c0, c1, "consent_requests_total")}
        res = self.record(scenario, rnd, front.port, res, extra)
        res["ratio"] = res["rps"] / base["rps"] if base["rps"] else float("nan")
        res["cpu_ratio"] = res["front_cpu_us"] / base["front_cpu_us"] if base["front_cpu_us"] else float("nan")
        base["paired_with"] = scenario
        return base, res

    def run_b7(self):
        front = self.front("B7")
        lua, prefix, query, headers = self.files("B7", False, True)
        # sanity: a new subject is looked up, answered "no record", then cached
        tok = self.keys.mint("uid", self.fresh_subjects(1, "b7-check")[0])
        q, hs = fill(query, tok, ""), [(k, fill(v, tok, "")) for k, v in headers]
        _, h = check(front.port, q, hs)
        self.expect("B7 $consent_source of a new subject", h.get("x-source"), "default")
        self.warmup_misses(front, lua, prefix)
        pairs, notes = [], []
        for rnd in range(1, self.args.rounds + 1):
            for attempt in range(self.args.retries + 1):
                base, res = self.misses_round("B7", rnd, front, lua, prefix)
                if not self.too_busy(base, res) or attempt == self.args.retries:
                    break
                self.retried += 1
                base["discarded"] = res["discarded"] = True
                print("      round %d again (new subjects)" % rnd, flush=True)
            pairs.append((base, res))
            # wrk calls request() once more than it sends, to check the script
            sent, wrapped = max(res.get("sent", 0) - 1, 0), res.get("wrapped", 0)
            line = ("round %d: %d subjects requested, %d lookups counted, %d HGETALL in Redis, %d cache hits"
                    % (rnd, sent, res["lookups"], res["hgetall"], res["cache_hits"]))
            notes.append(line)
            print("      " + line)
            if wrapped:
                fail("B7 round %d: the token files ran out (%d wraps): raise the margin" % (rnd, wrapped))
            if res["hgetall"] != res["lookups"]:
                fail("B7 round %d: HGETALL in Redis %d != lookups counted %d" % (rnd, res["hgetall"], res["lookups"]))
            # requests cut off when wrk stops may never be read by nginx
            if not (sent - self.args.connections <= res["lookups"] <= sent):
                fail("B7 round %d: %d lookups for %d distinct subjects" % (rnd, res["lookups"], sent))
        self.mint_misses(prefix, "light", self.args.duration)
        light = self.light("B7", front, lua, prefix)
        if light["wrapped"]:
            fail("B7 at light load: the token files ran out")
        self.stop_nginx(front)
        row = self.summarize("B7", pairs, notes)
        row["light"] = light
        b4 = self.summary.get("B4")
        if b4:
            row["added_p50"] = row["p50"] - b4["p50"]
            row["added_p99"] = row["p99"] - b4["p99"]
            row["notes"].insert(0, "added vs B4 at full load (mostly queueing): p50 %+.2f ms, p99 %+.2f ms"
                                % (row["added_p50"], row["added_p99"]))
            if b4.get("light"):
                row["added_p50_light"] = light["p50"] - b4["light"]["p50"]
                row["added_p99_light"] = light["p99"] - b4["light"]["p99"]
                row["notes"].insert(0, "added vs B4 at light load (2 connections): p50 %+.3f ms, p99 %+.3f ms "
                                    "(B7 %.3f/%.3f ms, B4 %.3f/%.3f ms)"
                                    % (row["added_p50_light"], row["added_p99_light"], light["p50"], light["p99"],
                                       b4["light"]["p50"], b4["light"]["p99"]))
        return row

    def run_b7t(self):
        """B7 against a Redis over TLS beside B7 against one over TCP, the
        two interleaved (their order alternating by round) on the same fresh
        subjects; the ratio is TLS / TCP."""
        if self.redis_tls is None:
            self.redis_tls = Redis(self.tmp, tls=True)
        plain = self.front("B7T-tcp")
        tls = self.front("B7T", redis_tls=self.redis_tls)
        lua, prefix, query, headers = self.files("B7T", False, True)
        for front in (plain, tls):
            tok = self.keys.mint("uid", self.fresh_subjects(1, "b7t-check")[0])
            _, h = check(front.port, fill(query, tok, ""), [(k, fill(v, tok, "")) for k, v in headers])
            self.expect("B7T $consent_source of a new subject", h.get("x-source"), "default")
        # the token files hold enough new subjects for the fastest rate seen
        self.mint_misses(prefix, "warm", max(self.args.warmup, 1))
        for front in (plain, tls):
            res = self.wrk.run(front.port, lua, prefix, max(self.args.warmup, 1), "warm-up")
            self.max_rps = max(self.max_rps, res["rps"])
        pairs, notes = [], []
        for rnd in range(1, self.args.rounds + 1):
            for attempt in range(self.args.retries + 1):
                self.mint_misses(prefix, "b7t-r%d" % rnd, self.args.duration)
                runs = {}
                for front, redis in ((plain, self.redis), (tls, self.redis_tls))[::1 if rnd % 2 else -1]:
                    c0, h0 = counters(front.port), redis.hgetall_calls()
                    res = self.wrk_run(front.port, lua, prefix, self.args.duration, front.name)
                    c1, h1 = counters(front.port), redis.hgetall_calls()
                    runs[front.name] = self.record("B7T" if front is tls else "B7T-tcp", rnd, front.port, res,
                                                   {"lookups": delta(c0, c1, "consent_redis_lookups_total"),
                                                    "hgetall": h1 - h0,
                                                    "timeouts": delta(c0, c1, "consent_redis_timeouts_total")})
                base, res = runs["B7T-tcp"], runs["B7T"]
                if not self.too_busy(base, res) or attempt == self.args.retries:
                    break
                self.retried += 1
                base["discarded"] = res["discarded"] = True
                print("      round %d again (new subjects)" % rnd, flush=True)
            res["ratio"] = res["rps"] / base["rps"] if base["rps"] else float("nan")
            res["cpu_ratio"] = res["front_cpu_us"] / base["front_cpu_us"] if base["front_cpu_us"] else float("nan")
            for r in (base, res):
                if r["hgetall"] != r["lookups"]:
                    fail("%s round %d: HGETALL in Redis %d != lookups counted %d"
                         % (r["scenario"], rnd, r["hgetall"], r["lookups"]))
                if r.get("wrapped"):
                    fail("%s round %d: the token files ran out (%d wraps): every request must be a miss"
                         % (r["scenario"], rnd, r["wrapped"]))
                sent = max(r.get("sent", 0) - 1, 0)
                if not (sent - self.args.connections <= r["lookups"] <= sent):
                    fail("%s round %d: %d lookups for %d distinct subjects" % (r["scenario"], rnd, r["lookups"], sent))
            line = ("round %d: TCP %.0f req/s, %.1f us/req; TLS %.0f req/s, %.1f us/req; lookups %d / %d"
                    % (rnd, base["rps"], base["front_cpu_us"], res["rps"], res["front_cpu_us"],
                       base["lookups"], res["lookups"]))
            notes.append(line)
            print("      " + line)
            pairs.append((base, res))
        self.stop_nginx(plain)
        self.stop_nginx(tls)
        row = self.summarize("B7T", pairs, notes)
        row["target_text"] = "vs B7 over TCP (the B1 columns)"
        row["verdict"] = "report"
        row["notes"].insert(0, "paired with B7 over TCP, not with B1: 'B1 req/s' and 'B1 p99' are TCP's, "
                               "the ratio is TLS / TCP")
        return row

    def warmup_misses(self, front, lua, prefix):
        if self.args.warmup > 0:
            self.mint_misses(prefix, "warm", self.args.warmup)
            for port in (self.b1_port, front.port):
                res = self.wrk.run(port, lua, prefix, self.args.warmup, "warm-up")
                if port == self.b1_port:
                    self.max_rps = max(self.max_rps, res["rps"])

    def run_b8(self):
        front = self.front("B8")
        lua, entries, query, headers = self.files("B8", False, True)
        write_entries(entries, [(self.uid, "")])
        q, hs = fill(query, self.uid, ""), [(k, fill(v, self.uid, "")) for k, v in headers]
        _, h = self.warm(front, q, hs)
        self.expect("B8 $consent_source after warming", h.get("x-source"), "cache")
        self.warmup(front, lua, entries)
        pairs, notes, samples, published, applied = [], [], [], 0, 0
        state = {}

        # The updates flow whether or not this edge runs the module (the
        # consent service publishes, Redis fans out): the publisher runs
        # through both halves of a round, so that the ratio is what the
        # module costs the proxy, not what a publisher costs this 2-core
        # machine.
        def start_publisher():
            self.publisher = subprocess.Popen(
                [sys.executable, MACRO, "--_publish", str(self.redis.port),
                 str(self.args.update_rate), "consent:updates"], stdout=subprocess.PIPE, text=True)
            if self.publisher.stdout.readline().strip() != "ready":
                fail("B8: the publisher did not start")

        def stop_publisher():
            if self.publisher:
                self.publisher.send_signal(signal.SIGTERM)
                self.publisher.communicate(timeout=10)
                self.publisher = None

        def mark():
            """(messages sent, seconds) so far, from the running publisher."""
            self.publisher.send_signal(signal.SIGUSR1)
            n, seconds = (self.publisher.stdout.readline().split() + ["0", "0"])[:2]
            return int(n), float(seconds)

        def before():
            state["c0"] = counters(front.port)
            state["mark0"] = mark()

        def after(res):
            n1, t1 = mark()
            time.sleep(0.2)  # let the subscriber drain
            c1 = counters(front.port)
            n, seconds = n1 - state["mark0"][0], max(t1 - state["mark0"][1], 1e-3)
            hits = delta(state["c0"], c1, "consent_cache_hits_total")
            reqs = delta(state["c0"], c1, "consent_requests_total")
            return {"published": n, "publish_rate": n / seconds,
                    "applied": delta(state["c0"], c1, "consent_updates_applied_total"),
                    "cache_hits": hits, "requests_decided": reqs}

        for rnd in range(1, self.args.rounds + 1):
            base, res = self.pair("B8", rnd, front, lua, entries, before=before, after=after,
                                  around=(start_publisher, stop_publisher))
            pairs.append((base, res))
            published += res["published"]
            applied += res["applied"]
            if res["publish_rate"] < 0.9 * self.args.update_rate:
                fail("B8 round %d: the publisher reached only %.0f messages/s" % (rnd, res["publish_rate"]))
            if res["requests_decided"] and res["cache_hits"] < 0.99 * res["requests_decided"]:
                fail("B8 round %d: only %d of %d requests were cache hits" % (rnd, res["cache_hits"],
                                                                              res["requests_decided"]))
            print("      round %d: %d updates published (%.0f/s), %d applied"
                  % (rnd, res["published"], res["publish_rate"], res["applied"]))
        if applied < 0.99 * published:
            fail("B8: %d updates published, only %d applied" % (published, applied))

        # Publish-to-visible latency, in a phase of its own after the
        # rounds, under the same load (wrk saturating the front, the
        # publisher running). The probe is a client of this front only, so
        # running it inside a round would load the B8 half and not the B1
        # half, and charge its CPU to the module.
        start_publisher()
        probe = Probe(self.redis.port, front.port, self.probe_uid)
        try:
            probe.start()
            res = self.wrk_run(front.port, lua, entries, self.args.duration * self.args.rounds, "B8 latency")
            if res["non2xx"] or sum(res["errors"].values()):
                fail("B8 latency phase: %d non-2xx responses, socket errors %s" % (res["non2xx"], res["errors"]))
        finally:
            probe.halt.set()
            probe.join(timeout=10)
            stop_publisher()
        samples = probe.samples
        for e in probe.errors:
            fail("B8 latency phase: %s" % e)
        print("      latency phase: publish-to-visible p99 %.2f ms over %d writes (%d probe requests)"
              % (percentile(samples, 99) if samples else -1, len(samples), probe.requests), flush=True)
        self.stop_nginx(front)
        notes = ["%d updates published, %d applied" % (published, applied)]
        row = self.summarize("B8", pairs, notes)
        if samples:
            row["visible_p50"] = percentile(samples, 50)
            row["visible_p99"] = percentile(samples, 99)
            row["visible_max"] = max(samples)
            row["visible_samples"] = len(samples)
            # Reported, not a target: the probe's request queues behind a
            # saturated proxy. The 10 ms goal (issue 4) is for a proxy with
            # room to spare, which bench/update_latency.py measures.
            row["notes"].insert(0, "publish-to-visible under saturation: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
                                "(%d writes; the 10 ms goal is unloaded: bench/update_latency.py)"
                                % (row["visible_p50"], row["visible_p99"], row["visible_max"], len(samples)))
        return row

    def run_b9(self):
        front = self.front("B9")
        lua, prefix, query, headers = self.files("B9", False, True)
        self.warmup_misses(front, lua, prefix)
        pa, pb, notes = [], [], []
        bound = REDIS_TIMEOUT_MS + self.args.p99_margin
        for rnd in range(1, self.args.rounds + 1):
            try:
                base, res = self.misses_round("B9a", rnd, front, lua, prefix, redis_stop_at=self.args.duration / 3)
                pa.append((base, res))
                if res["p99"] > bound:
                    fail("B9a round %d: p99 %.1f ms over the %d ms timeout + %d ms" % (rnd, res["p99"],
                                                                                   REDIS_TIMEOUT_MS,
                                                                                   self.args.p99_margin))
                notes.append("B9a round %d: %d timeouts, %d fast failures, max %.0f ms"
                             % (rnd, res["timeouts"], res["fast_failures"], res.get("max", -1)))
                # Redis still stopped: the breaker is open
                self.too_busy(base, res)
                base, res = self.misses_round("B9b", rnd, front, lua, prefix)
                pb.append((base, res))
                self.too_busy(base, res)
                notes.append("B9b round %d: %d fast failures of %d decided, %d lookups sent"
                             % (rnd, res["fast_failures"], res["requests_decided"], res["lookups"]))
            finally:
                self.redis.sigcont()
            self.recover(front, query, headers)
        self.stop_nginx(front)
        for n in notes:
            print("      " + n)
        a = self.summarize("B9a", pa, [n for n in notes if n.startswith("B9a")],
                           verdict="met" if all(x["p99"] <= bound for _, x in pa) else "MISSED")
        a["target_text"] = "p99 <= %d ms" % bound
        b4 = self.summary.get("B4")
        close_to = b4["ratio"] if b4 else TARGETS["B4"]
        b = self.summarize("B9b", pb, [n for n in notes if n.startswith("B9b")])
        b["target"] = close_to - 0.05
        b["target_text"] = ">= %.2f (B4 %s - 0.05)" % (b["target"], "ratio" if b4 else "target")
        b["verdict"] = "met" if b["ratio"] >= b["target"] else "MISSED"
        return a, b

    def recover(self, front, query, headers):
        """After SIGCONT: wait until a new subject is answered by Redis again."""
        deadline = time.time() + 15
        while time.time() < deadline:
            tok = self.keys.mint("uid", self.fresh_subjects(1, "b9-check")[0])
            _, h = check(front.port, fill(query, tok, ""), [(k, fill(v, tok, "")) for k, v in headers])
            if h.get("x-source") == "default":
                return
            time.sleep(0.2)
        fail("B9: the lookups did not recover within 15 s of SIGCONT")
    # -- for profiling -------------------------------------------------------------
    def hold(self, scenario):
        """Start B1 and one scenario's front (with its request stream), print
        how to drive them, and wait (Ctrl-C stops): for perf or callgrind."""
        specs = {"B2": ("off", False, True, [(self.uid, "")]), "B3": ("on", False, False, [("", "")]),
                 "B4": ("on", False, True, [(self.uid, "")]), "B5": ("on", True, True, [(self.purl, self.uid)]),
                 "B8": ("on", False, True, [(self.uid, "")])}
        if scenario not in specs:
            raise SystemExit("--hold takes one of %s" % ", ".join(specs))
        consent, purl, cookie, entries_list = specs[scenario]
        front = self.front(scenario, consent)
        lua, entries, query, headers = self.files(scenario, purl, cookie)
        write_entries(entries, entries_list)
        if consent == "on" and cookie:
            self.warm(front, fill(query, *entries_list[0]), [(k, fill(v, *entries_list[0])) for k, v in headers])
        for name, n in (("B1", self.b1), (scenario, front)):
            workers = subprocess.run(["pgrep", "-P", str(n.proc.pid)], capture_output=True, text=True).stdout.split()
            print("%s: port %d, master %d, workers %s\n  %s" % (name, n.port, n.proc.pid, ",".join(workers),
                                                              " ".join(self.wrk.cmd(n.port, lua, entries, 5))))
        print("holding; Ctrl-C (or SIGTERM) stops everything", flush=True)
        while True:
            time.sleep(3600)

    # -- all of it ----------------------------------------------------------------
    def main(self):
        a = self.args
        if a.hold:
            self.setup()
            self.hold(a.hold.upper())
        runners = {"B2": self.run_b2, "B3": self.run_b3, "B4": self.run_b4, "B4C": self.run_b4c,
                   "B4U": self.run_b4u, "B4L": self.run_b4l, "B5": self.run_b5, "B6": self.run_b6, "B7": self.run_b7, "B7T": self.run_b7t, "B8": self.run_b8,
                   "B9": self.run_b9}
        self.setup()
        for s in a.scenarios:
            say("%s: %s, interleaved with B1" % (s, DESCRIPTIONS.get(s, DESCRIPTIONS.get(s + "a"))))
            runners[s]()
        self.table()
        self.write()
