#!/bin/bash
# Instructions per call of the token check and of the bare AEAD call, from
# callgrind at two iteration counts (the difference cancels setup).
set -euo pipefail
bin=$1
count() {  # op n -> total instructions
    local f
    f=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" "$1" "$2" >/dev/null 2>&1
    grep -m1 '^summary:' "$f" | awk '{print $2}'
    rm -f "$f"
}
per_call() { echo $(( ($(count "$1" 3000) - $(count "$1" 1000)) / 2000 )); }
printf '\n%-40s %10s %10s %7s\n' "instructions per call (callgrind)" ours bare ratio
for suite in xchacha aes; do
    ours=$(per_call check-$suite)
    bare=$(per_call bare-$suite)
    printf '%-40s %10d %10d %6.2fx\n' "token check / bare $suite open" "$ours" "$bare" "$(echo "$ours / $bare" | bc -l)"
done
