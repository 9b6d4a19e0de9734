#!/usr/bin/env python3
"""Prints each of our operations as a ratio to the bare library call beside it,
from one Google Benchmark JSON run (medians of interleaved repetitions)."""
import json, sys

PAIRS = [
    ("BM_TokenCheckXChaCha", "BM_BareXChaChaOpen", "whole token check / bare XChaCha20-Poly1305 open", 1.5),
    ("BM_TokenCheckAesGcm", "BM_BareAesGcmOpen", "whole token check / bare AES-256-GCM open", 1.5),
    ("BM_Base64urlDecode", "BM_SodiumBase642Bin", "our base64url decode / sodium_base642bin", None),
    ("BM_Pseudonym", "BM_BareGenericHash", "pseudonym / bare crypto_generichash", None),
]

runs = json.load(open(sys.argv[1]))["benchmarks"]
median = {b["run_name"]: b["cpu_time"] for b in runs if b.get("aggregate_name") == "median"}
if not median:  # no repetitions: single runs
    median = {b["name"]: b["cpu_time"] for b in runs}
print("\n%-52s %9s %9s %7s  %s" % ("ratio", "ours ns", "bare ns", "ratio", "target"))
for ours, bare, label, target in PAIRS:
    if ours in median and bare in median:
        r = median[ours] / median[bare]
        verdict = "" if target is None else ("<= %.1fx %s" % (target, "met" if r <= target else "MISSED"))
        print("%-52s %9.0f %9.0f %6.2fx  %s" % (label, median[ours], median[bare], r, verdict))
for name in ("BM_TokenCheckXChaCha", "BM_TokenCheckAesGcm"):
    if name in median:
        print("%-52s %9.0f ns  (target < 1000 ns: %s)" % (name, median[name], "met" if median[name] < 1000 else "MISSED"))
