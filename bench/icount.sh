#!/bin/bash
# Instructions per call of the token check and of the bare AEAD call, from
# callgrind at two iteration counts (the difference cancels setup). With a
# second argument (path_icount), also the request path without nginx:
# the rewrites beside a memcpy of the same bytes, and the whole hit path.
#   bench/icount.sh build-release/bench/token_icount [build-release/bench/path_icount]
set -euo pipefail
bin=$1
path_bin=${2:-}
count() {  # binary op n -> total instructions
    local f
    f=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$f" "$1" "$2" "$3" >/dev/null 2>&1
    grep -m1 '^summary:' "$f" | awk '{print $2}'
    rm -f "$f"
}
per_call() { echo $(( ($(count "$1" "$2" 3000) - $(count "$1" "$2" 1000)) / 2000 )); }
printf '\n%-40s %10s %10s %7s\n' "instructions per call (callgrind)" ours bare ratio
for suite in xchacha aes; do
    ours=$(per_call "$bin" check-$suite)
    bare=$(per_call "$bin" bare-$suite)
    printf '%-40s %10d %10d %6.2fx\n' "token check / bare $suite open" "$ours" "$bare" "$(echo "$ours / $bare" | bc -l)"
done
[ -n "$path_bin" ] || exit 0
for pair in arg-rewrite:memcpy-query cookie-rewrite:memcpy-cookie; do
    ours=$(per_call "$path_bin" "${pair%%:*}")
    bare=$(per_call "$path_bin" "${pair##*:}")
    printf '%-40s %10d %10d %6.2fx\n' "${pair%%:*} / ${pair##*:}" "$ours" "$bare" "$(echo "$ours / $bare" | bc -l)"
done
for op in find-cookie open-uid hit-uid hit-purl hit-uid-memo hit-purl-memo; do
    printf '%-40s %10d\n' "$op" "$(per_call "$path_bin" "$op")"
done
