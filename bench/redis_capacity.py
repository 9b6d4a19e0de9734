#!/usr/bin/python3
"""Capacity figures for docs/deployment.md, measured here (issue 13):

1. Records per GB of Redis: N records written as the write script leaves
   them (eight purposes of conf/front-proxy.conf, v, exp; subjects of 17
   characters), and Redis's used_memory before and after.
2. Update messages per second one edge's subscriber keeps up with: an
   nginx with the module (2 workers, a cache) subscribed to the channel,
   and redis-benchmark publishing `<subject> <v>` messages (random subjects)
   as fast as it can, with pipelining, for a few seconds; the edge's
   consent_updates_applied_total against what was published, and how much
   Redis held for the subscriber (its output buffer, CLIENT LIST omem) at
   the worst moment. When the subscriber keeps up, applied equals published
   and the buffer stays small; when it does not, the buffer grows until
   Redis drops the subscriber (client-output-buffer-limit pubsub).
   On a small machine the publishers and Redis saturate first, so the rate
   is a floor; the edge's CPU time over the run (its workers' schedstat)
   gives what a subscriber costs: messages per CPU-second of the edge.

  bench/redis_capacity.py [--module build-release/ngx_http_consent_module.so]
      [--records 200000] [--seconds 5] [--publishers 4]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import macro  # noqa: E402
from update_latency import Resp  # noqa: E402

PURPOSES = [p for p, _ in macro.PURPOSES]


def info(r, section):
    text = r.call("INFO", section).decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def records_per_gb(redis, n):
    """Writes n records in pipelined batches; (bytes per record, records/GB)."""
    r = redis.r
    r.call("FLUSHALL")
    before = int(info(r, "memory")["used_memory"])
    now = int(time.time())
    batch = 1000
    for start in range(0, n, batch):
        out = []
        for i in range(start, min(n, start + batch)):
            args = ["HSET", "consent:{cust-%012d}" % i, "v", str(1 + i % 7)]
            for k, p in enumerate(PURPOSES):
                args += [p, "1" if (i >> k) & 1 else "0"]
            args += ["exp", str(now + 3 * 365 * 86400)]
            out.append("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
        r.sock.sendall("".join(out).encode())
        for _ in range(len(out)):
            r.read()
    after = int(info(r, "memory")["used_memory"])
    encoding = r.call("OBJECT", "ENCODING", "consent:{cust-%012d}" % 0).decode()
    per = (after - before) / float(n)
    return per, (1 << 30) / per, encoding


def subscriber_rate(bench, seconds, publishers, channel="consent:updates"):
    """redis-benchmark publishes for `seconds`; what the edge applied."""
    front = bench.front("capacity")
    admin = Resp(bench.redis.port)
    c0 = macro.counters(front.port)
    worst = {"omem": 0}
    stop = threading.Event()

    def watch():
        # the subscriber's output buffer on Redis, sampled every 50 ms
        mon = Resp(bench.redis.port)
        while not stop.is_set():
            text = mon.call("CLIENT", "LIST", "TYPE", "pubsub").decode()
            for m in re.finditer(r"omem=(\d+)", text):
                worst["omem"] = max(worst["omem"], int(m.group(1)))
            time.sleep(0.05)
    th = threading.Thread(target=watch, daemon=True)
    th.start()

    # as many messages as the publishers can send in `seconds`, then stop
    cmd = ["redis-benchmark", "-p", str(bench.redis.port), "-c", str(publishers), "-P", "64",
           "-n", "100000000", "-r", "1000000", "-q", "PUBLISH", channel, "cust-__rand_int__ 7"]
    def publishes():
        m = re.search(r"cmdstat_publish:calls=(\d+)", admin.call("INFO", "commandstats").decode())
        return int(m.group(1)) if m else 0
    workers = macro.children(front.proc.pid)
    redis_pid = bench.redis.proc.pid
    cpu0, rcpu0 = macro.cpu_ns(workers), macro.cpu_ns([redis_pid])
    p0 = publishes()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    proc.terminate()
    proc.wait()
    published_in = time.monotonic() - t0
    # the edge's own heartbeats are PUBLISHes too, one a second, on another
    # channel: not update messages
    published = publishes() - p0 - int(time.monotonic() - t0 + 1)
    applied_at_stop = macro.delta(c0, macro.counters(front.port), "consent_updates_applied_total")
    # the subscriber drains what Redis still holds for it
    deadline = time.monotonic() + 60
    applied = 0
    while time.monotonic() < deadline:
        applied = macro.delta(c0, macro.counters(front.port), "consent_updates_applied_total")
        if applied >= published:
            break
        time.sleep(0.05)
    drained_in = time.monotonic() - t0
    edge_cpu = (macro.cpu_ns(workers) - cpu0) / 1e9
    redis_cpu = (macro.cpu_ns([redis_pid]) - rcpu0) / 1e9
    stop.set()
    th.join(5)
    dropped = "output buffer limits" in open(os.path.join(bench.redis.dir, "redis.log")).read()
    bench.stop_nginx(front)
    return {"published": published, "published_in": published_in, "applied": applied,
            "applied_at_stop": applied_at_stop,
            "drained_in": drained_in, "worst_omem": worst["omem"], "dropped": dropped,
            "edge_cpu": edge_cpu, "redis_cpu": redis_cpu}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--module", default=os.path.join(macro.REPO, "build-release", "ngx_http_consent_module.so"))
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--publishers", type=int, default=4)
    a = ap.parse_args()
    args = macro.parse_args(["--workers", "2", "--module", a.module])
    bench = macro.Bench(args)
    try:
        bench.setup()
        per, per_gb, enc = records_per_gb(bench.redis, a.records)
        print("records: %d written; %.0f bytes each in Redis (%s); %.2f million per GB of used_memory"
              % (a.records, per, enc, per_gb / 1e6))
        res = subscriber_rate(bench, a.seconds, a.publishers)
        print("updates: %d published in %.1f s (%.0f/s); the edge had applied %d when publishing "
              "stopped, %d in all after %.1f s (%.0f/s); Redis held at most %.1f MB for the "
              "subscriber; subscriber %s"
              % (res["published"], res["published_in"], res["published"] / res["published_in"],
                 res["applied_at_stop"], res["applied"], res["drained_in"],
                 res["applied"] / res["drained_in"], res["worst_omem"] / 1e6,
                 "DROPPED by Redis" if res["dropped"] else "kept"))
        print("cost: the edge's workers used %.2f CPU-seconds (%.0f%% of one core), %.2f million messages "
              "per CPU-second; Redis used %.2f CPU-seconds"
              % (res["edge_cpu"], 100 * res["edge_cpu"] / res["drained_in"],
                 res["applied"] / max(res["edge_cpu"], 1e-9) / 1e6, res["redis_cpu"]))
        if res["applied"] < res["published"]:
            print("  !! the edge applied %d of %d messages" % (res["applied"], res["published"]))
            return 1
        if macro.FAILURES:
            return 1
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
