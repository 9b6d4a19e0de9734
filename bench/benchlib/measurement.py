"""What the macro benchmark measures, and one A/B round.

The CPU time of the front's workers per request and the share of the
machine other processes took meanwhile (the machine is shared), wrk's
figures, the module's counters (consent_status) and the upstream's
accepted connections; Measure runs one round, the baseline then the
scenario on the same request stream, and sums the rounds up into a row.
"""
import http.client
import os
import re
import statistics
import time

from benchlib import fail
from benchlib.scenarios import DESCRIPTIONS, TARGETS


# ---------------------------------------------------------------------------
# other processes' CPU: this machine is shared, and with the kernel's
# autogroup scheduling (sched_autogroup_enabled=1) `nice` only ranks
# processes within one session, so a "nice 19" job of another session
# competes with the benchmark as an equal. Each run records the share of
# the machine's CPU that processes outside this script's process tree took.

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            procs[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))  # ppid, utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return time.monotonic(), procs


def other_load(before, after, root=None):
    """Share of all CPUs (0..1) used between two snapshots by processes
    that are neither descendants of `root` nor kernel threads."""
    root = root or os.getpid()
    t0, p0 = before
    t1, p1 = after
    ours = {root}
    children = {}
    for pid, (ppid, _) in list(p1.items()) + list(p0.items()):
        children.setdefault(ppid, set()).add(pid)
    todo = [root]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in ours:
                ours.add(c)
                todo.append(c)
    jiffies = 0
    for pid, (ppid, t) in p1.items():
        if pid in ours or ppid == 2 or pid == 2:
            continue
        jiffies += t - p0.get(pid, (0, 0))[1] if pid in p0 else 0
    return jiffies / float(CLK_TCK) / max(t1 - t0, 1e-3) / (os.cpu_count() or 1)


def cpu_ns(pids):
    """CPU time (ns) the processes have run so far (/proc/PID/schedstat)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/schedstat" % pid) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ---------------------------------------------------------------------------
# wrk's output

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out):
    res = {"rps": 0.0, "requests": 0, "non2xx": 0, "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
    for p in (50, 75, 90, 99):
        m = re.search(r"^\s+%d%%\s+(\S+)" % p, out, re.M)
        res["p%d" % p] = ms(m.group(1)) if m else float("nan")
    m = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        res["avg"], res["max"] = ms(m.group(1)), ms(m.group(3))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"MACRO sent=(\d+) wrapped=(\d+)", out)
    if m:
        res["sent"], res["wrapped"] = int(m.group(1)), int(m.group(2))
    return res


# ---------------------------------------------------------------------------
# nginx's side: the check location and the counters

def check(port, query, headers, path="/__check"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest("GET", path + "?" + query, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def counters(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/__status")
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
            # consent_redis_*{server="..."}: also the sum over servers
            base = name.partition("{")[0]
            if base != name and "server=" in name and "kind=" not in name:
                out[base] = out.get(base, 0.0) + float(value)
    return out


def upstream_accepts(port):
    """Connections the upstream accepted so far (stub_status)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/__stub")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(body.splitlines()[2].split()[0])


def delta(before, after, name):
    return int(after.get(name, 0) - before.get(name, 0))


# ---------------------------------------------------------------------------
# one measured run, one A/B round, a scenario's row

def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


class Measure:
    """Bench's measuring part (a mixin): it uses Bench's args, wrk,
    nginxes, b1_port, up_port, runs, summary, max_rps, noisy_pairs and
    retried."""

    # -- one measured run ------------------------------------------------------
    def wrk_start(self, port, lua, entries, duration):
        self._accepts = upstream_accepts(self.up_port)
        self._cpu = cpu_snapshot()
        # the front's workers: the CPU time they spend per request
        front = next(n for n in self.nginxes if n.port == port)
        self._workers = children(front.proc.pid)
        self._front_ns = cpu_ns(self._workers)
        return self.wrk.start(port, lua, entries, duration)

    def wrk_finish(self, proc, what):
        res = self.wrk.finish(proc, what)
        front_ns = cpu_ns(self._workers) - self._front_ns
        res["front_cpu_us"] = front_ns / 1000.0 / res["requests"] if res["requests"] else float("nan")
        res["other_load"] = other_load(self._cpu, cpu_snapshot())
        # new connections to the upstream, less the one that asks
        res["upstream_conns"] = upstream_accepts(self.up_port) - self._accepts - 1
        return res

    def too_busy(self, *runs):
        """True (and says so) when other processes took more of the machine
        than --max-other-load during one of these runs."""
        worst = max(r.get("other_load", 0) for r in runs)
        if worst > self.args.max_other_load:
            self.noisy_pairs += 1
            print("      other processes took %.0f%% of the CPU (over %.0f%%)"
                  % (100 * worst, 100 * self.args.max_other_load), flush=True)
            return True
        return False

    def wrk_run(self, port, lua, entries, duration, what):
        return self.wrk_finish(self.wrk_start(port, lua, entries, duration), what)

    def record(self, scenario, rnd, port, res, extra=None):
        res = dict(res)
        res.update(scenario=scenario, round=rnd, port=port)
        if extra:
            res.update(extra)
        self.runs.append(res)
        if scenario == "B1":
            self.max_rps = max(self.max_rps, res["rps"])
        if res.get("upstream_conns", 0) > max(100, 0.01 * res["requests"]):
            fail("%s round %d: %d new upstream connections for %d requests: keepalive to the upstream is "
                 "not in effect" % (scenario, rnd, res["upstream_conns"], res["requests"]))
        errs = sum(res["errors"].values())
        tail = ""
        if res["non2xx"] or errs:
            tail = "  non-2xx %d, socket errors %s" % (res["non2xx"], res["errors"])
            fail("%s round %d: %d non-2xx responses, socket errors %s" % (scenario, rnd, res["non2xx"],
                                                                          res["errors"]))
        print("    %-4s round %d: %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  front %5.1f us CPU/req"
              "  (other load %2.0f%%)%s"
              % (scenario, rnd, res["rps"], res["p50"], res["p99"], res.get("front_cpu_us", float("nan")),
                 100 * res.get("other_load", 0), tail), flush=True)
        return res

    def pair(self, scenario, rnd, front, lua, entries, before=None, after=None, around=None):
        """One round: the baseline, then the scenario, on the same stream;
        run again (up to --retries times) while other processes load the
        machine more than --max-other-load. `around` = (start, stop) runs
        around both halves: load that exists whether or not the module is
        loaded (B8's publisher)."""
        for attempt in range(self.args.retries + 1):
            if around:
                around[0]()
            try:
                base, res = self.pair_once(scenario, rnd, front, lua, entries, before, after)
            finally:
                if around:
                    around[1]()
            if not self.too_busy(base, res):
                break
            if attempt < self.args.retries:
                self.retried += 1
                base["discarded"] = res["discarded"] = True
                print("      round %d again" % rnd, flush=True)
        return base, res

    def pair_once(self, scenario, rnd, front, lua, entries, before, after):
        d = self.args.duration
        base = self.record("B1", rnd, self.b1_port, self.wrk_run(self.b1_port, lua, entries, d, "B1"),
                           {"block": scenario})
        if before:
            before()
        res = self.wrk_run(front.port, lua, entries, d, scenario)
        extra = after(res) if after else None
        res = self.record(scenario, rnd, front.port, res, extra)
        res["ratio"] = res["rps"] / base["rps"] if base["rps"] else float("nan")
        res["cpu_ratio"] = res["front_cpu_us"] / base["front_cpu_us"] if base["front_cpu_us"] else float("nan")
        base["paired_with"] = scenario
        return base, res

    def warmup(self, front, lua, entries):
        if self.args.warmup > 0:
            for port in (self.b1_port, front.port):
                self.wrk.run(port, lua, entries, self.args.warmup, "warm-up")
            # the baseline's rate sizes the token files of B7/B9
            res = self.wrk.run(self.b1_port, lua, entries, 1, "warm-up")
            self.max_rps = max(self.max_rps, res["rps"])

    def light(self, scenario, front, lua, entries):
        """Latency at light load (1 thread, 2 connections): the service time
        without the queueing of a saturated closed loop."""
        res = self.wrk.run(front.port, lua, entries, self.args.duration, scenario + " light", light=True)
        for k in ("non2xx",):
            if res[k]:
                fail("%s at light load: %d non-2xx responses" % (scenario, res[k]))
        if sum(res["errors"].values()):
            fail("%s at light load: socket errors %s" % (scenario, res["errors"]))
        print("    %-4s light load (2 connections): %7.0f req/s  p50 %6.3f ms  p99 %6.3f ms"
              % (scenario, res["rps"], res["p50"], res["p99"]), flush=True)
        return {"rps": res["rps"], "p50": res["p50"], "p99": res["p99"], "sent": res.get("sent", 0),
                "wrapped": res.get("wrapped", 0)}

    def summarize(self, scenario, pairs, notes=None, target=None, verdict=None):
        bases = [b for b, _ in pairs]
        xs = [x for _, x in pairs]
        row = {
            "scenario": scenario,
            "description": DESCRIPTIONS[scenario],
            "rounds": len(pairs),
            "rps": med([x["rps"] for x in xs]),
            "p50": med([x["p50"] for x in xs]),
            "p99": med([x["p99"] for x in xs]),
            "max": med([x.get("max", float("nan")) for x in xs]),
            "b1_rps": med([b["rps"] for b in bases]),
            "b1_p50": med([b["p50"] for b in bases]),
            "b1_p99": med([b["p99"] for b in bases]),
            "ratio": med([x["ratio"] for x in xs]),
            "ratios": [round(x["ratio"], 4) for x in xs],
            "other_load": med([max(b.get("other_load", 0), x.get("other_load", 0)) for b, x in pairs]),
            "cpu_us": med([x.get("front_cpu_us", float("nan")) for x in xs]),
            "b1_cpu_us": med([b.get("front_cpu_us", float("nan")) for b in bases]),
            "cpu_ratio": med([x.get("cpu_ratio", float("nan")) for x in xs]),
            "target": target if target is not None else TARGETS.get(scenario),
            "notes": notes or [],
        }
        if verdict is not None:
            row["verdict"] = verdict
        elif row["target"] is not None:
            row["verdict"] = "met" if row["ratio"] >= row["target"] else "MISSED"
        else:
            row["verdict"] = ""
        self.summary[scenario] = row
        return row
