"""The parts of the macro benchmark (bench/macro.py), one module per job.

bench/macro.py stays the entry point: its docstring is the user-facing
help, it parses the arguments, and it re-exports these modules' names so
that the scripts beside it keep doing `import macro; macro.front_conf(...)`.

  scenarios.py    the workload: what the clients send, the tokens, the
                  request streams, the scenarios' descriptions and targets
  processes.py    the processes and their configurations: nginx, Redis,
                  wrk, B8's publisher and publish-to-visible probe
  measurement.py  what a run measures (CPU, wrk's figures, the module's
                  counters) and one A/B round, baseline then scenario
  reporting.py    the table, results.json/csv and the gnuplot chart
  runners.py      Bench: the set-up and the scenario runners B2 to B9

This module holds what they all share: the paths, and the list of failed
checks (one list object: the run exits 1 when it is not empty).
"""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
# the entry point: B8's publisher is `macro.py --_publish ...`
MACRO = os.path.join(REPO, "bench", "macro.py")

FAILURES = []  # checks that failed: the run exits 1


def fail(msg):
    FAILURES.append(msg)
    print("  !! CHECK FAILED: " + msg, flush=True)


def say(msg):
    print("==> " + msg, flush=True)
