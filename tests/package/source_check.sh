#!/bin/bash
# Quick checks of the packaging's sources (ctest package.source):
#
#   tests/package/source_check.sh REPO_DIR CONSENTCTL WORK_DIR
#
# 1. tools/debbuild.sh check: debian/changelog's upstream version is
#    CMakeLists.txt's project VERSION, and no generated file is tracked.
# 2. The nginx configuration in README.md's "Install on Debian" section is
#    conf/debian-site.conf (which the package test serves through), comments
#    aside.
# 3. tools/manpage.py makes consentctl(1) from CONSENTCTL and
#    docs/consentctl.md; man(1) reads it without a warning, and it has a
#    section for every command that `consentctl --help` lists.
set -euo pipefail
export LC_ALL=C.UTF-8

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
[ $# -eq 3 ] || { echo "usage: $0 REPO_DIR CONSENTCTL WORK_DIR" >&2; exit 2; }
REPO=$1 CONSENTCTL=$2 W=$3
mkdir -p "$W"

"$REPO/tools/debbuild.sh" check

strip_comments() { sed -e 's/[[:space:]]*#.*$//' -e '/^[[:space:]]*$/d' "$@"; }
readme_conf=$(awk '/^## Install on Debian/ { s = 1; next } s && /^## / { exit }
                   s && /^```nginx/ { c = 1; next } c && /^```/ { exit } c' "$REPO/README.md")
[ -n "$readme_conf" ] || fail "README.md's 'Install on Debian' section has no nginx configuration block"
if ! diff <(strip_comments <<<"$readme_conf") <(strip_comments "$REPO/conf/debian-site.conf") >&2; then
    fail "README.md's minimal site differs from conf/debian-site.conf (above)"
fi
echo "ok: README.md's minimal site is conf/debian-site.conf"

man=$W/consentctl.1
/usr/bin/python3 "$REPO/tools/manpage.py" --consentctl "$CONSENTCTL" --doc "$REPO/docs/consentctl.md" \
    --version test --output "$man"
warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$man" 2>&1 >/dev/null)
[ -z "$warnings" ] || fail "man --warnings on the generated consentctl(1): $warnings"
for c in $("$CONSENTCTL" --help | awk '/^commands:/ { s = 1; next } s && /^  / { print $1 } s && /^$/ { exit }'); do
    grep -qxF ".SS $(sed 's/-/\\-/g' <<<"$c")" "$man" || fail "consentctl(1) has no section for '$c'"
done
echo "ok: consentctl(1) generated ($(wc -l < "$man") lines), no man warnings, a section per command"
