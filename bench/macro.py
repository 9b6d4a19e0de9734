#!/usr/bin/python3
"""Macro benchmark (issue 5): nginx with the consent module against plain
nginx proxying, side by side in one run, driven by wrk.

The script starts its own processes and stops them at the end:
  - an upstream: a separate /usr/sbin/nginx answering `return 200 "ok"`;
  - a redis-server;
  - the baseline front (B1): plain proxy_pass, module not loaded;
  - for each scenario, a front nginx with the module (worker_processes 2),
    proxying to the upstream through an `upstream {}` block with keepalive.

Every scenario runs interleaved with the baseline, A B A B ..., for
--rounds rounds of --duration seconds; the baseline gets the very same
request stream (same script, same URL, headers and tokens), so a ratio
isolates what the module costs. Quoted figures are medians over the rounds,
and the ratio is the median of the per-round ratios (requests/s of the
scenario / requests/s of the baseline run just before it).

  B1  plain proxy_pass, module not loaded                baseline
  B2  module loaded, `consent off`                       >= 0.99
  B3  consent on, no token, no cookie, tracking args     >= 0.98
  B4  valid UID cookie (1 KB Cookie header), cache hit,
      3 of 10 args and 5 cookies stripped                >= 0.95
  B4C B4 with a choice cookie of the same answers       >= 0.95
      instead of the UID cookie (no subject, no cache
      lookup: the memo and the rewrite)
  B4U peer: nginx's own userid filter reading a         report: the lower
      returning visitor's uid cookie, B4's request       bound of nginx
      otherwise; nothing decided or stripped             touching a cookie
  B4L peer: B4's job in OpenResty Lua (bench/peers/:      report
      libsodium through LuaJIT's FFI, lua_shared_dict
      cache hit, the same stripping)
  B5  valid PURL token + UID cookie (two opens), hit     >= 0.92
  B6  100% forged or garbage tokens                      >= 0.95, zero HGETALL
  B7  100% cache misses: a new subject every request     added p50/p99 vs B4 (also
      (no records in Redis: "no record" answers)         at light load, 2 conns);
                                                         HGETALL == subjects
  B7T B7 with Redis over TLS (verified), interleaved     report: its ratio is
      with B7 over plain TCP (not with B1)               TLS / plain
  B8  B4 under 1,000 updates/s on the channel            >= 0.93; publish-to-
      (the publisher runs through the B1 half too; the   visible p99
      latency probe in a phase of its own after the
      rounds, under the same load)
  B9a B7 with Redis SIGSTOPped a third of the way in     no errors, p99 bounded
                                                         by the lookup timeout
  B9b B7 while Redis stays stopped (breaker open)        close to B4

Prints the table, writes results.json and results.csv into --out, and a
gnuplot PNG (requests/s and p99 per scenario beside its baseline) to
--chart. Exits 1 when a check fails (any non-2xx response or socket error,
a Redis call count that is off, a sanity check); with --strict, also when a
target is missed.

The machine is shared: each run records the share of the CPU that other
processes took meanwhile ("other" in the table), and a round is run again
when it was over --max-other-load. (With the kernel's autogroup scheduling,
`nice` does not rank processes of different sessions: another session's
"nice 19" job competes as an equal.)

  bench/macro.py [--rounds 5] [--duration 5] [--connections 32] [--threads 2]
                 [--scenarios B2,B4,B7] [--quick]
  bench/macro.py --hold B4     B1 and B4's front stay up for perf/callgrind;
                               stop with Ctrl-C or SIGTERM
"""
import argparse
import http.client
import os
import signal
import sys

# benchlib/ and update_latency.py live beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from update_latency import Resp, percentile, write_script  # noqa: E402
from benchlib import FAILURES, MACRO, NGINX, REPO, WRK, fail, say  # noqa: E402
from benchlib.scenarios import (  # noqa: E402
    ALL_SCENARIOS, BASE_HEADERS, CHOICE_COOKIE, CHOICES, COOKIE, DESCRIPTIONS, F1, F2, LUA, PATH, PURPOSES, QUERY,
    RECORD, STRIPPED_B4, STRIPPED_B4C, TARGETS, Keys, fill, forged, garbage, interop, lua_quote, raw_request,
    request_template, write_entries, write_lua)
from benchlib.processes import (  # noqa: E402
    REDIS_TIMEOUT_MS, Nginx, Probe, Redis, Wrk, free_port, front_conf, publisher_main, upstream_conf, wait_port)
from benchlib.measurement import (  # noqa: E402
    CLK_TCK, UNITS, Measure, check, children, counters, cpu_ns, cpu_snapshot, delta, med, ms, other_load, parse_wrk,
    upstream_accepts)
from benchlib.reporting import Report  # noqa: E402
from benchlib.runners import Bench  # noqa: E402

# Everything the single-file macro.py had, for the scripts beside it
# (request_icount.py, redis_capacity.py: `import macro; macro.front_conf(...)`,
# macro.http.client, macro.signal); FAILURES is benchlib's one list.
__all__ = [
    "http", "signal", "Resp", "percentile", "write_script",
    "FAILURES", "MACRO", "NGINX", "REPO", "WRK", "fail", "say",
    "ALL_SCENARIOS", "BASE_HEADERS", "CHOICE_COOKIE", "CHOICES", "COOKIE", "DESCRIPTIONS", "F1", "F2", "LUA", "PATH",
    "PURPOSES", "QUERY", "RECORD", "STRIPPED_B4", "STRIPPED_B4C", "TARGETS", "Keys", "fill", "forged", "garbage",
    "interop", "lua_quote", "raw_request", "request_template", "write_entries", "write_lua",
    "REDIS_TIMEOUT_MS", "Nginx", "Probe", "Redis", "Wrk", "free_port", "front_conf", "publisher_main",
    "upstream_conf", "wait_port",
    "CLK_TCK", "UNITS", "Measure", "check", "children", "counters", "cpu_ns", "cpu_snapshot", "delta", "med", "ms",
    "other_load", "parse_wrk", "upstream_accepts",
    "Report", "Bench", "parse_args", "main",
]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--module", default=os.path.join(REPO, "build-release", "ngx_http_consent_module.so"))
    ap.add_argument("--rounds", type=int, default=5, help="A B rounds per scenario (default 5)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="front nginx worker_processes (default 2)")
    ap.add_argument("--upstream-workers", type=int, default=1, help="upstream worker_processes (default 1)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per front, 0 for none (default 1)")
    ap.add_argument("--update-rate", type=int, default=1000, help="B8 updates per second (default 1000)")
    ap.add_argument("--p99-margin", type=int, default=50,
                    help="B9a: p99 may exceed the %d ms lookup timeout by this (ms, default 50)" % REDIS_TIMEOUT_MS)
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS), help="comma-separated, e.g. B4,B7")
    ap.add_argument("--max-other-load", type=float, default=0.15,
                    help="run a round again when other processes took more than this share of all CPUs "
                         "during it (default 0.15)")
    ap.add_argument("--retries", type=int, default=None,
                    help="times a round may be run again (default 2; 0 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 2 s, 1 s warm-up, no re-runs")
    ap.add_argument("--out", default=os.path.join(REPO, "build-release", "macro"))
    ap.add_argument("--chart", default=os.path.join(REPO, "docs", "bench.png"), help="PNG to write ('' for none)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, too")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    ap.add_argument("--hold", metavar="SCENARIO",
                    help="start B1 and SCENARIO's front, print wrk commands and wait (for profiling)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.duration, a.warmup = 1, 2, 1
    if a.retries is None:
        a.retries = 0 if a.quick else 2
    a.scenarios = [s.strip().upper() for s in a.scenarios.split(",") if s.strip()]
    for s in a.scenarios:
        if s not in ALL_SCENARIOS:
            ap.error("unknown scenario %s (B1 runs with every scenario)" % s)
    if a.duration < 1:
        ap.error("--duration is whole seconds, at least 1 (wrk's unit)")
    if a.connections < a.threads:
        ap.error("--connections must be at least --threads")
    return a


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--_publish":
        publisher_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    args = parse_args()
    bench = Bench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        bench.main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        bench.cleanup()
    missed = [r["scenario"] for r in bench.rows() if r.get("verdict") == "MISSED"]
    if missed:
        print("\ntargets MISSED: %s" % ", ".join(missed))
    if FAILURES:
        print("\nFAILED CHECKS (%d):" % len(FAILURES))
        for f in FAILURES:
            print("  - " + f)
        return 1
    if missed and args.strict:
        return 1
    print("\nall checks passed (no non-2xx responses, no socket errors, Redis call counts as required)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
