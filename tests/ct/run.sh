#!/bin/bash
# Runs tests/ct/ct_check.cpp's two modes under valgrind's memcheck:
#   check    must pass with no memcheck error (no branch, no address on a key);
#   control  must be reported, twice: a secret-dependent branch and address,
#            so a valgrind that saw nothing cannot pass for constant time.
# usage: tests/ct/run.sh BUILD/ct_check
set -u
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
vg=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --track-origins=yes)

"${vg[@]}" "$bin" check >"$out/check.out" 2>"$out/check.err"
rc=$?
if [ $rc -ne 0 ]; then
    cat "$out/check.out" "$out/check.err" >&2
    echo "ct: the check failed (exit $rc): a key-dependent branch or address, or a wrong result (above)" >&2
    exit 1
fi
grep -q "ERROR SUMMARY: 0 errors" "$out/check.err" || { cat "$out/check.err" >&2; echo "ct: no clean error summary" >&2; exit 1; }
cat "$out/check.out"

"${vg[@]}" "$bin" control >"$out/control.out" 2>"$out/control.err"
rc=$?
if [ $rc -ne 99 ] \
    || ! grep -q "Conditional jump or move depends on uninitialised value" "$out/control.err" \
    || ! grep -q "Use of uninitialised value of size" "$out/control.err"; then
    cat "$out/control.err" >&2
    echo "ct: the control's secret branch and secret address were not both reported (exit $rc)" >&2
    exit 1
fi
echo "ct: the control's secret branch and secret address were reported, as they must be"
