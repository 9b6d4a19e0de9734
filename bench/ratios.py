#!/usr/bin/env python3
"""Prints each of our operations as a ratio to the bare call beside it, from
Google Benchmark JSON runs (medians of interleaved repetitions); each pair
is taken from one file, i.e. from one run.
  bench/ratios.py token_bench.json [path_bench.json ...]"""
import json, sys

PAIRS = [
    ("BM_TokenCheckXChaCha", "BM_BareXChaChaOpen", "whole token check / bare XChaCha20-Poly1305 open", 1.5),
    ("BM_TokenCheckAesGcm", "BM_BareAesGcmOpen", "whole token check / bare AES-256-GCM open", 1.5),
    ("BM_Base64urlDecode", "BM_SodiumBase642Bin", "our base64url decode / sodium_base642bin", None),
    ("BM_Pseudonym", "BM_BareGenericHash", "pseudonym / bare crypto_generichash", None),
    # path_bench
    ("BM_ArgRewrite", "BM_MemcpyQuery", "arg rewrite (10 args, 3 stripped) / memcpy", None),
    ("BM_ArgRewriteKeepAll", "BM_MemcpyQuery", "arg rewrite (nothing stripped) / memcpy", None),
    ("BM_CookieRewrite", "BM_MemcpyCookie", "Cookie rewrite (1 KB, 5 stripped) / memcpy", None),
    ("BM_FindUidCookie", "BM_MemcpyCookie", "find the UID cookie in 1 KB / memcpy", None),
    ("BM_CacheSlotCheckLocked", "BM_MemcpySlot", "cache-hit check (CAS lock, copy, state) / memcpy", None),
    ("BM_HitPathUid", "BM_OpenUid", "whole hit path B4 / the UID token open alone", None),
    ("BM_HitPathPurlUid", "BM_OpenUid", "whole hit path B5 / the UID token open alone", None),
]
# absolute figures with a target, in ns
LIMITS = [
    ("BM_TokenCheckXChaCha", 1000, "token check"),
    ("BM_TokenCheckAesGcm", 1000, "token check"),
    ("BM_HitPathUid", 2000, "hit path, B4"),
    ("BM_HitPathUidPseudonym", 2000, "hit path, B4 + $consent_subject"),
    ("BM_HitPathPurlUid", 2000, "hit path, B5"),
    ("BM_HitPathPurlUidPseudonym", 2000, "hit path, B5 + $consent_subject"),
]


def medians(path):
    runs = json.load(open(path))["benchmarks"]
    median = {b["run_name"]: b["cpu_time"] for b in runs if b.get("aggregate_name") == "median"}
    if not median:  # no repetitions: single runs
        median = {b["name"]: b["cpu_time"] for b in runs if b.get("run_type", "iteration") == "iteration"}
    return median


files = [medians(p) for p in sys.argv[1:]]
print("\n%-52s %9s %9s %7s  %s" % ("ratio", "ours ns", "bare ns", "ratio", "target"))
for ours, bare, label, target in PAIRS:
    for median in files:
        if ours in median and bare in median:
            r = median[ours] / median[bare]
            verdict = "" if target is None else ("<= %.1fx %s" % (target, "met" if r <= target else "MISSED"))
            print("%-52s %9.0f %9.0f %6.2fx  %s" % (label, median[ours], median[bare], r, verdict))
for name, limit, label in LIMITS:
    for median in files:
        if name in median:
            print("%-62s %9.0f ns  (target < %d ns: %s)" % (name + " (" + label + ")", median[name], limit,
                                                            "met" if median[name] < limit else "MISSED"))
