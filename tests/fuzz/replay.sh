#!/bin/bash
# replay.sh FUZZER CORPUS_DIR [SECONDS]
#
# Runs every committed input of CORPUS_DIR through FUZZER once, then fuzzes
# from that corpus for SECONDS (default 3). New inputs go to a temporary
# directory, so the committed corpus is never written. Fails on any crash,
# sanitizer report, property failure, timeout or out-of-memory. Exits 77
# (ctest: skipped) when the fuzzer was not built (no clang).
set -euo pipefail
bin=$1 corpus=$2 secs=${3:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=$(basename "$bin")

if [ ! -x "$bin" ]; then
    echo "replay.sh: $bin is not built (no clang?); skipping" >&2
    exit 77
fi
[ -d "$corpus" ] || { echo "replay.sh: no corpus at $corpus" >&2; exit 1; }
max_len=$(awk -v t="$name" '$1 == t { print $2 }' "$here/targets.txt")
[ -n "$max_len" ] || { echo "replay.sh: $name is not in targets.txt" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/new" "$work/artifacts"
opts=(-max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/")
[ -f "$here/$name.dict" ] && opts+=(-dict="$here/$name.dict")

# 1. Each committed input once (libFuzzer's replay mode: file arguments).
mapfile -d '' files < <(find "$corpus" -type f -print0 | sort -z)
echo "== $name: replaying ${#files[@]} committed inputs"
if ! "$bin" "${opts[@]}" "${files[@]}" >"$work/replay.log" 2>&1; then
    cat "$work/replay.log" >&2
    echo "FAIL: $name crashed on a committed input" >&2
    exit 1
fi

# 2. A short fuzzing run seeded with the corpus.
echo "== $name: fuzzing for ${secs}s from the corpus"
if ! "$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 "$work/new" "$corpus" \
        >"$work/fuzz.log" 2>&1; then
    cat "$work/fuzz.log" >&2
    for a in "$work"/artifacts/*; do
        [ -f "$a" ] && { echo "crashing input ($a), base64:" >&2; base64 -w0 "$a" >&2; echo >&2; }
    done
    echo "FAIL: $name crashed while fuzzing" >&2
    exit 1
fi
grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units' "$work/fuzz.log" || true
echo "ok: $name"
