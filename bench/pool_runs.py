#!/usr/bin/python3
"""Pools the rounds of several bench/macro.py runs (their results.json):
on a shared machine one round's ratio moves by 10 to 20%, so the median
of many rounds, from several runs, says more than any one run's median.

  bench/pool_runs.py RESULTS.json [RESULTS.json ...]

For each scenario: the number of rounds, the median of the per-round
requests/s ratios to B1 with the quartiles, and the median of the
per-round front-CPU-per-request ratios (scenario / B1); then, when B4
and a peer (B4U, B4L) are among them, B4's added front CPU as a multiple
of the peer's (benchlib.reporting.against_peers).
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib.reporting import against_peers  # noqa: E402


def quantile(xs, q):
    xs = sorted(xs)
    return xs[int(q * (len(xs) - 1))] if xs else float("nan")


def main(paths):
    rps, cpu = {}, {}
    for path in paths:
        with open(path) as f:
            runs = json.load(f)["runs"]
        for r in runs:
            if r.get("scenario", "B1") == "B1" or r.get("discarded") or "ratio" not in r:
                continue
            rps.setdefault(r["scenario"], []).append(r["ratio"])
            c = r.get("cpu_ratio")
            if c is not None and c == c:
                cpu.setdefault(r["scenario"], []).append(c)
    print("%-5s %6s  %-28s %s" % ("", "rounds", "req/s ratio: median (IQR)", "front CPU/request ratio: median"))
    for s in sorted(rps):
        xs = rps[s]
        print("%-5s %6d  %.3f (%.3f .. %.3f)          %.3f" % (
            s, len(xs), statistics.median(xs), quantile(xs, .25), quantile(xs, .75),
            statistics.median(cpu[s]) if cpu.get(s) else float("nan")))
    for line in against_peers({s: statistics.median(xs) for s, xs in cpu.items() if xs}):
        print(line)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
