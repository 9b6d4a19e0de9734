#!/usr/bin/python3
"""Instructions per request inside nginx, by scenario, from callgrind:
repeatable on a noisy machine where wall time is not (issue 5, item 3).

For each scenario, the front nginx of bench/macro.py runs in one process
(master_process off) under `valgrind --tool=callgrind`, serves N1 and then,
in a second run, N2 sequential keep-alive requests with the scenario's
request; (I(N2) - I(N1)) / (N2 - N1) cancels start-up and shutdown. Only
user-space instructions count: the kernel's share (the network) is the
same for every scenario anyway (same syscalls per request).

  bench/request_icount.py [--scenarios B2,B3,B3N,B4,B5,B6,B7,B4R,B4C] [--n1 300 --n2 1300]
      (B7: a UID cookie of a new subject on every request, so every request
      is a cache miss and a Redis lookup; each run mints its own subjects.
      B4R: B4 with a Referer that has a query but no token, so B4R less B4
      is what checking the Referer for the token costs;
      B4C: B4 with a choice cookie of the same answers instead of the UID
      cookie: no subject, so no cache lookup;
      B3N: B3 without the query, an anonymous visitor with nothing to
      strip: what `consent on` costs when there is nothing to do;
      B4U and B4L: the peers of bench/peers/ on B4's request, nginx's
      userid filter and B4's job in OpenResty Lua, without the module)
      [--annotate]   print the functions that add most per request (the
                     N2 run less the N1 run, less B1's) and keep the four
                     callgrind files in build-release/macro/
      [--cache-sim]  also simulate the caches (callgrind --cache-sim=yes)
                     and print the first-level instruction and data cache
                     misses per request beside the instructions. The
                     process runs alone here, so these are the misses of
                     nginx's own footprint, not of a shared machine.
"""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import macro  # noqa: E402
from peers import confs as peers  # noqa: E402


# B4R's Referer: a page of the site with tracking arguments, no token
REFERER = "https://shop.example.com/offers/summer?page=2&utm_source=newsletter&utm_medium=email&lang=en"

# callgrind's events with --cache-sim=yes, in its order
CACHE_EVENTS = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]


def subscribers(bench):
    """The update channel's subscribers, as Redis counts them."""
    reply = bench.redis.r.call("PUBSUB", "NUMSUB", "consent:updates")
    return int(reply[1])


def wait_subscribers(bench, want, timeout=30):
    """Until the update channel has `want` subscribers. Asked of Redis, not
    of the front's status page: a status request is counted in the run,
    and how many polls the subscription takes differs from run to run
    (80,000 instructions each, which made B3 move by 600 per request)."""
    deadline = time.time() + timeout
    while subscribers(bench) != want:
        if time.time() > deadline:
            raise SystemExit("the update channel has %d subscribers, not %d" % (subscribers(bench), want))
        time.sleep(0.1)


def run_once(bench, name, conf, query, headers, n, keep_out=None, cache_sim=False, fields=None):
    """Totals of the run's events: [Ir], or CACHE_EVENTS with cache_sim.
    fields: (f1, f2) per request, filled into query and headers (B7: a new
    subject every request); else query and headers are sent as they are."""
    port = int(re.search(r"listen 127.0.0.1:(\d+)", conf).group(1))
    d = os.path.join(bench.tmp, "%s-%d" % (name, n))
    os.makedirs(os.path.join(d, "tmp"))
    conf = conf.replace("@DIR@", d).replace("worker_processes", "master_process off;\nworker_processes")
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    out = keep_out or os.path.join(d, "callgrind.out")
    if "consent on" in conf:
        wait_subscribers(bench, 0)  # the run before has gone from Redis too
    p = subprocess.Popen(["valgrind", "--tool=callgrind"] + (["--cache-sim=yes"] if cache_sim else [])
                         + ["--callgrind-out-file=" + out,
                          macro.NGINX, "-p", d + "/", "-c", os.path.join(d, "nginx.conf"), "-g", "daemon off;"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not macro.wait_port(port, 60):
            raise SystemExit("nginx under valgrind did not listen; see %s" % d)
        if "consent on" in conf and fields is None:
            wait_subscribers(bench, 1)
            # warm the cache (B4, B5): until a request is served from it
            for _ in range(50):
                _, h = macro.check(port, query, headers)
                if h.get("x-source") in ("cache", "none", "cookie", None):
                    break
                time.sleep(0.05)
        elif "consent on" in conf:
            wait_subscribers(bench, 1)
        conn = macro.http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(n):
            q, hs = query, headers
            if fields is not None:
                q, hs = macro.fill(q, *fields[i]), [(k, macro.fill(v, *fields[i])) for k, v in hs]
            conn.putrequest("GET", macro.PATH + ("?" + q if q else ""), skip_host=True, skip_accept_encoding=True)
            for k, v in hs:
                conn.putheader(k, v)
            conn.endheaders()
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit("%s: status %d" % (name, r.status))
        conn.close()
    finally:
        # graceful, then fast shutdown (callgrind writes its file either way)
        for sig, wait in ((macro.signal.SIGQUIT, 20), (macro.signal.SIGTERM, 20), (macro.signal.SIGKILL, 60)):
            p.send_signal(sig)
            try:
                p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return [int(x) for x in line.split()[1:]]
    raise SystemExit("no callgrind summary in " + out)


def functions(path):
    """Exclusive instructions by function, from callgrind_annotate. Only Ir
    is asked for: a --cache-sim file has nine events per line otherwise."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--show=Ir", path],
                         capture_output=True, text=True).stdout
    funcs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = re.sub(r"\s*\[[^\]]*\]$", "", m.group(2))
            name = re.sub(r"^\S*:(?=[^:])", "", name, count=1) if not name.startswith("???:") else name[4:]
            funcs[name] = funcs.get(name, 0) + int(m.group(1).replace(",", ""))
    return funcs


def annotate(paths, n, top=25):
    """The functions whose exclusive instructions grew most over B1, per
    request. paths: {(name, run): file} for name B1 and the scenario and
    run 1 (N1 requests) and 2 (N2); the difference of the two runs cancels
    start-up (dynamic linking, configuration, zone set-up) exactly as the
    totals do."""
    f = {k: functions(v) for k, v in paths.items()}
    names = set().union(*f.values())
    sc = [k for k in paths if k[0] != "B1"][0][0]

    def per_request(name, fn):
        return f[(name, 2)].get(fn, 0) - f[(name, 1)].get(fn, 0)
    diff = sorted(((per_request(sc, g) - per_request("B1", g)) / float(n), g) for g in names)
    diff.reverse()
    print("     top added instructions per request (exclusive, vs B1 on the same request):")
    for d, g in diff[:top]:
        if d < 20:
            break
        print("     %+8.0f  %s" % (d, g[:110]))
    print("     files: %s" % ", ".join(sorted(paths.values())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", default=os.path.join(macro.REPO, "build-release", "ngx_http_consent_module.so"))
    ap.add_argument("--scenarios", default="B2,B3,B4,B5,B6", help="each beside B1 on the same request")
    ap.add_argument("--n1", type=int, default=300)
    ap.add_argument("--n2", type=int, default=1300)
    ap.add_argument("--annotate", action="store_true",
                    help="print the functions (exclusive) that add most per request")
    ap.add_argument("--cache-sim", action="store_true",
                    help="also count simulated L1 instruction and data cache misses per request")
    a = ap.parse_args()
    args = macro.parse_args(["--workers", "1", "--module", a.module])
    bench = macro.Bench(args)
    try:
        bench.setup()
        b6 = (macro.forged(bench.keys.mint("purl", "victim", "x")), macro.forged(bench.keys.mint("uid", "victim")))
        specs = {"B1": (None, False, True, (bench.uid, "")), "B2": ("off", False, True, (bench.uid, "")),
                 "B3": ("on", False, False, ("", "")), "B4": ("on", False, True, (bench.uid, "")),
                 # B3 without the query: nothing to find, open or strip (the
                 # most a fast path for anonymous visitors could save)
                 "B3N": ("on", False, False, ("", "")),
                 "B5": ("on", True, True, (bench.purl, bench.uid)), "B6": ("on", True, True, b6),
                 # a UID cookie of a new subject every request: a cache miss, a lookup
                 "B7": ("on", False, True, None),
                 # B4 from a page with a query but no token (issue 17: the
                 # Referer is checked for the token; B4R less B4 is its cost)
                 "B4R": ("on", False, True, (bench.uid, "")),
                 # B4's answers in a choice cookie instead of a record (issue 15)
                 "B4C": ("on", False, True, (bench.keys.mint_choice(macro.CHOICES), "")),
                 # the peers (bench/peers/): nginx's userid filter on B4's
                 # request with a returning visitor's uid cookie, and B4's
                 # job in OpenResty Lua
                 "B4U": ("userid", False, True, (bench.uid, "")), "B4L": ("lua", False, True, (bench.uid, ""))}
        print("%-4s %16s %16s %16s" % ("", "instr/request", "B1, same request", "added")
              + ("   L1i misses (B1, added)   L1d misses (B1, added)" if a.cache_sim else ""))
        for s in [x.strip().upper() for x in a.scenarios.split(",")]:
            if s == "B1":
                continue
            consent, purl, cookie, fields = specs[s]
            q, hs = macro.request_template(purl, cookie, macro.CHOICE_COOKIE if s == "B4C" else "__Host-vid",
                                           peers.USERID_COOKIE if s == "B4U" else "")
            if s == "B4R":
                hs = hs + [("Referer", REFERER)]
            if s == "B3N":
                q = ""
            every = fields is None
            if not every:
                q, hs = macro.fill(q, *fields), [(k, macro.fill(v, *fields)) for k, v in hs]
            per, kept = {}, {}
            for name in ("B1", s):
                port = macro.free_port()
                if name == "B1":
                    conf = macro.front_conf(port, bench.up_port, 1)
                elif consent == "userid":
                    conf = peers.userid_conf(port, bench.up_port, 1)
                elif consent == "lua":
                    conf = peers.lua_conf(port, bench.up_port, 1, bench.keys.token_file, bench.keys.pseudonym_file,
                                          macro.RECORD, subject=bench.subject)
                else:
                    conf = macro.front_conf(port, bench.up_port, 1, module=os.path.abspath(a.module),
                                            consent=consent, keys=bench.keys, redis_port=bench.redis.port,
                                            choice=s == "B4C")
                for run in (1, 2):
                    if a.annotate:
                        os.makedirs(args.out, exist_ok=True)
                        kept[(name, run)] = os.path.join(args.out, "callgrind.%s%s.n%d.out"
                                                         % (s, ".B1" if name == "B1" else "", run))
                # B7: each run its own subjects, none of them cached by an earlier run
                f1 = f2 = None
                if every:
                    f1 = [(bench.keys.mint("uid", sub), "") for sub in bench.fresh_subjects(a.n1, s)]
                    f2 = [(bench.keys.mint("uid", sub), "") for sub in bench.fresh_subjects(a.n2, s)]
                i1 = run_once(bench, name + s, conf, q, hs, a.n1, kept.get((name, 1)), cache_sim=a.cache_sim,
                              fields=f1)
                i2 = run_once(bench, name + s, conf, q, hs, a.n2, kept.get((name, 2)), cache_sim=a.cache_sim,
                              fields=f2)
                per[name] = [(y - x) / float(a.n2 - a.n1) for x, y in zip(i1, i2)]
            line = "%-4s %16.0f %16.0f %+16.0f" % (s, per[s][0], per["B1"][0], per[s][0] - per["B1"][0])
            if a.cache_sim:
                ev = {e: k for k, e in enumerate(CACHE_EVENTS)}

                def misses(name, *events):
                    return sum(per[name][ev[e]] for e in events)
                i1b, i1s = misses("B1", "I1mr"), misses(s, "I1mr")
                d1b, d1s = misses("B1", "D1mr", "D1mw"), misses(s, "D1mr", "D1mw")
                line += "   %8.0f %+8.0f            %8.0f %+8.0f" % (i1b, i1s - i1b, d1b, d1s - d1b)
            print(line, flush=True)
            if a.annotate:
                annotate(kept, a.n2 - a.n1)
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
