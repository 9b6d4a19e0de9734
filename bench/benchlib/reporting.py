"""The macro benchmark's output: the table on stdout; results.json,
results.csv and raw-wrk.txt in --out; and the gnuplot chart (--chart,
docs/bench.png by default).
"""
import csv
import json
import os
import platform
import subprocess
import time

from benchlib import FAILURES, NGINX, REPO, WRK, fail
from benchlib.measurement import med
from benchlib.scenarios import DESCRIPTIONS


PEERS = (("B4U", "nginx's userid filter"), ("B4L", "the Lua version"))


def against_peers(cpu):
    """Lines that give B4's added front CPU (its per-request ratio to B1,
    less 1) as a multiple of each peer's that ran beside it. Both are
    costs added to the same nginx on the same requests, so their quotient
    does not carry the machine's speed at nginx's own work the way a
    ratio to B1 does (issue 16: B4 1.04 to 1.12 to B1 from one machine to
    the next, with the same code). cpu: scenario -> front CPU ratio."""
    out = []
    for peer, what in PEERS:
        # NaN (no CPU figure) fails both comparisons
        if cpu.get("B4", float("nan")) > 0 and cpu.get(peer, float("nan")) - 1 > 0.005:
            out.append("B4 adds %.2fx the front CPU that %s (%s) adds" % ((cpu["B4"] - 1) / (cpu[peer] - 1), peer, what))
    return out


class Report:
    """Bench's output part (a mixin): it reads Bench's args, runs, summary,
    noisy_pairs and retried."""

    # -- output -----------------------------------------------------------------
    def rows(self):
        order = ["B2", "B3", "B4", "B4C", "B4U", "B4L", "B5", "B6", "B7", "B7T", "B8", "B9a", "B9b"]
        return [self.summary[s] for s in order if s in self.summary]

    def table(self):
        b1 = [r for r in self.runs if r["scenario"] == "B1" and not r.get("discarded")]
        print("\nMedians of %d round(s) of %g s, %d connections, %d wrk threads; ratio = median of per-round "
              "requests/s ratios to the B1 run just before (same request stream)."
              % (self.args.rounds, self.args.duration, self.args.connections, self.args.threads))
        hdr = "%-4s %-56s %9s %8s %8s %9s %8s %7s %14s %6s  %s" % (
            "", "scenario", "req/s", "p50 ms", "p99 ms", "B1 req/s", "B1 p99", "ratio", "front us/req", "other",
            "target")
        print(hdr)
        print("-" * len(hdr))
        print("%-4s %-56s %9.0f %8.2f %8.2f %9s %8s %7s %14s %6s  %s" % (
            "B1", DESCRIPTIONS["B1"] + " (all runs)", med([r["rps"] for r in b1]), med([r["p50"] for r in b1]),
            med([r["p99"] for r in b1]), "", "", "1.00x",
            "%.1f" % med([r.get("front_cpu_us", float("nan")) for r in b1]), "", "baseline"))
        for r in self.rows():
            if r.get("target_text"):
                tgt = "%s: %s" % (r["target_text"], r["verdict"])
            elif r["target"] is not None:
                tgt = ">= %.2f: %s" % (r["target"], r["verdict"])
            else:
                tgt = "report"
            print("%-4s %-56s %9.0f %8.2f %8.2f %9.0f %8.2f %6.3fx %14s %5.0f%%  %s" % (
                r["scenario"], r["description"], r["rps"], r["p50"], r["p99"], r["b1_rps"], r["b1_p99"],
                r["ratio"], "%.1f/%.1f %.2fx" % (r["cpu_us"], r["b1_cpu_us"], r["cpu_ratio"]),
                100 * r["other_load"], tgt))
            for n in r["notes"]:
                if not n.startswith("round") and not n.startswith("B9"):
                    print("     %s" % n)
        for line in against_peers({r["scenario"]: r["cpu_ratio"] for r in self.rows()}):
            print(line)
        print("'front us/req': CPU time of the front's workers per request, scenario/B1 (medians), and the "
              "median per-round ratio: what the module costs the proxy itself, less sensitive to other load "
              "than requests/s.")
        print("'other': the median share of the machine's CPU that processes outside this benchmark took "
              "during a round (the worse of its two runs).")
        if self.noisy_pairs:
            print("WARNING: during %d round(s) other processes took more than %.0f%% of the CPU; %d of them were "
                  "run again. Ratios from a loaded machine understate or overstate the module's cost."
                  % (self.noisy_pairs, 100 * self.args.max_other_load, self.retried))

    def machine(self):
        def first(cmd):
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (p.stdout + p.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return ""
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
        except OSError:
            pass
        return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu": cpu, "cpus": os.cpu_count(),
                "kernel": platform.release(), "nginx": first([NGINX, "-v"]), "wrk": first([WRK, "-v"]),
                "redis": first(["redis-server", "--version"]),
                "commit": first(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
                "loadavg": open("/proc/loadavg").read().split()[:3]}

    def write(self):
        a = self.args
        os.makedirs(a.out, exist_ok=True)
        doc = {"machine": self.machine(),
               "settings": {k: v for k, v in vars(a).items() if not k.startswith("_")},
               "summary": self.rows(), "runs": [{k: v for k, v in r.items() if k != "raw"} for r in self.runs],
               "failures": FAILURES, "noisy_rounds": self.noisy_pairs, "rounds_run_again": self.retried}
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(doc, f, indent=1, default=str)
        fields = ["scenario", "description", "rounds", "rps", "p50", "p99", "b1_rps", "b1_p50", "b1_p99", "ratio",
                  "cpu_us", "b1_cpu_us", "cpu_ratio", "other_load", "target", "verdict", "added_p50", "added_p99",
                  "added_p50_light", "added_p99_light", "visible_p99"]
        with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            for r in self.rows():
                w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
        with open(os.path.join(a.out, "raw-wrk.txt"), "w") as f:
            for r in self.runs:
                f.write("### %s round %d (port %d)\n%s\n" % (r["scenario"], r["round"], r["port"], r.get("raw", "")))
        print("\nresults: %s/results.json, results.csv, raw-wrk.txt" % a.out)
        if a.chart and self.rows():
            self.chart(doc["machine"])

    def chart(self, machine):
        a = self.args
        dat = os.path.join(a.out, "bench.dat")
        with open(dat, "w") as f:
            f.write("# scenario b1_rps rps b1_p99 p99 ratio\n")
            for r in self.rows():
                f.write("%s %.1f %.1f %.3f %.3f %.4f\n" % (r["scenario"], r["b1_rps"], r["rps"], r["b1_p99"],
                                                           r["p99"], r["ratio"]))
        title = ("consent module vs plain nginx proxy_pass (B1): medians of %d x %gs, %d conns, %s, %s"
                 % (a.rounds, a.duration, a.connections, machine["date"][:10], machine["cpu"][:40]))
        gp = os.path.join(a.out, "bench.gp")
        with open(gp, "w") as f:
            f.write("""set terminal pngcairo size 1200,860 font ",10" noenhanced
set output '%(png)s'
set multiplot layout 2,1 title "%(title)s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set ylabel "requests/s"
plot '%(dat)s' using 2:xtic(1) title "B1 baseline (same round, same requests)" lc rgb "#9e9e9e", \\
     '' using 3 title "scenario" lc rgb "#1f77b4", \\
     '' using ($0+0.17):3:(sprintf("%%.2fx", $6)) with labels offset 0,0.8 notitle
set ylabel "p99 latency (ms)"
set logscale y
set yrange [*:*]
set offsets 0, 0, 0, 0
plot '%(dat)s' using 4:xtic(1) title "B1 baseline p99" lc rgb "#9e9e9e", \\
     '' using 5 title "scenario p99" lc rgb "#d62728"
unset multiplot
""" % dict(png=os.path.abspath(a.chart), title=title.replace('"', "'"), dat=dat))
        p = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
        if p.returncode != 0:
            fail("gnuplot: %s" % p.stderr.strip()[-300:])
        else:
            print("chart: %s" % a.chart)
