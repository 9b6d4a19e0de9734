#!/bin/bash
# Runs the end-to-end suites against a real nginx 1.26, built from Debian 13
# (trixie)'s nginx source package on a Debian 12 machine, with the module
# built against that same configured tree. The system's apt sources, lists,
# caches and installed packages are not touched.
#
#   tests/compat/nginx126_e2e.sh REPO_DIR WORK_DIR [CONSENTCTL]
#
# 1. apt-get update (deb-src, trixie main) with a private apt configuration
#    under WORK_DIR/apt (tests/compat/trixie_apt.sh, shared with
#    nginx126_build.sh), then apt-get source --download-only nginx into
#    WORK_DIR/src: apt checks every file against the signed Sources index;
#    the orig tarball is checked here once more. When the mirror has the
#    .dsc and the Debian tarball, dpkg-source unpacks them (Debian's patches
#    applied); when it has only the orig tarball, that is nginx's own
#    release and is used as it is (said so in the output).
# 2. ./configure --with-compat plus what the e2e configurations use (see
#    NGX_FLAGS), make; the tree is WORK_DIR/nginx, the binary objs/nginx.
# 3. cmake REPO_DIR into WORK_DIR/cmake-build with -DNGINX_BUILD_DIR=that
#    tree, build ngx_http_consent_module (and consentctl unless given), and
#    check that the 1.26 binary loads the module (nginx -t).
# 4. Run tests/e2e/test_SUITE.py (or tests/compat/test_SUITE.py) for each
#    SUITE in NGINX126_E2E_SUITES (default "request_path redis_store
#    cookie_index") with CONSENT_E2E_NGINX_BIN set to the 1.26 binary.
#    cookie_index checks nginx's Cookie index ($http_cookie, $cookie_NAME:
#    the headers_in.cookie chain since 1.23) after stripping, which the
#    e2e suites do not look at. Logs: WORK_DIR/logs/.
#
# The source, the unpacked and built nginx and the module build are cached
# in WORK_DIR; a rerun does not touch the network and rebuilds only the
# module (incrementally). NGINX126_REFRESH=1 fetches trixie's current source
# again. NGINX126_MIRROR=URL overrides the mirror.
#
# Exit status: 0 every suite passed; 77 trixie's archive could not be reached
# at all (treat as skipped); 1 anything else.
set -euo pipefail
export LC_ALL=C

[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: $0 REPO_DIR WORK_DIR [CONSENTCTL]" >&2; exit 1; }
mkdir -p "$2"
REPO=$(cd "$1" && pwd -P)
W=$(cd "$2" && pwd -P)
CONSENTCTL=${3:-}
JOBS=$(nproc 2>/dev/null || echo 2)
SUITES=${NGINX126_E2E_SUITES:-request_path redis_store cookie_index}
PYTHON=/usr/bin/python3

# What the e2e configurations need beyond nginx's default modules:
# auth_request (test_request_path.py). --with-compat as any nginx that loads
# third-party dynamic modules is built.
NGX_FLAGS=(--prefix="$W/nginx-prefix" --with-compat --with-http_auth_request_module)

say()  { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'SKIP: %s\n' "$*" >&2; exit 77; }

[ -f "$REPO/CMakeLists.txt" ] && [ -d "$REPO/ngx_module" ] || fail "$REPO is not the module repository"
for tool in apt-get apt-cache cmake make tar sha256sum "$PYTHON"; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done
[ -z "$CONSENTCTL" ] || [ -x "$CONSENTCTL" ] || fail "$CONSENTCTL is not an executable"

t_start=$SECONDS

# ---- 1. trixie's nginx source package ------------------------------------------

. "$(dirname "${BASH_SOURCE[0]}")/trixie_apt.sh"
. "$(dirname "${BASH_SOURCE[0]}")/module_cmake.sh"
trixie_apt_setup "$W/apt" deb-src
S=$W/src
mkdir -p "$S"

find_orig() { find "$S" -maxdepth 1 -name 'nginx_*.orig.tar.*' ! -name '*.asc' -printf '%f\n' | sort -V | tail -n1; }

ORIG=$(find_orig)
if [ -z "$ORIG" ] || [ ! -f "$S/version" ] || [ ! -s "$A/nginx.sha256" ] || [ "${NGINX126_REFRESH:-0}" = 1 ]; then
    trixie_apt_update "nginx 1.26 end-to-end suites not run"
    ver=$(apt-cache -c "$APTCONF" showsrc nginx | awk '/^Version:/ { print $2 }' | sort -V | tail -n1)
    [ -n "$ver" ] || fail "no nginx source package in $MIRROR $SUITE main"
    # The files of that version and their SHA-256 from the (signed) Sources index.
    apt-cache -c "$APTCONF" showsrc nginx | awk -v ver="$ver" '
        /^$/ { v = ""; in_sums = 0; next }
        /^Version:/ { v = $2 }
        /^[^ ]/ { in_sums = ($1 == "Checksums-Sha256:") }
        in_sums && /^ / && v == ver { print $1 "  " $3 }' | sort -u > "$A/nginx.sha256"
    [ -s "$A/nginx.sha256" ] || fail "no Checksums-Sha256 for nginx $ver in $SUITE's Sources"
    say "apt-get source --download-only nginx=$ver"
    rm -f "$S"/nginx_* "$S/version"
    set +e
    (cd "$S" && apt_ source --download-only "nginx=$ver") > "$A/source.log" 2>&1
    rc=$?
    set -e
    ORIG=$(find_orig)
    if [ -z "$ORIG" ]; then
        cat "$A/source.log" >&2
        fail "apt-get source left no nginx orig tarball in $S"
    fi
    if [ "$rc" != 0 ]; then
        # Some mirrors (or proxies) serve the orig tarball but not the
        # Debian-specific files. nginx's orig tarball is nginx's release.
        grep -E '^(Err|E):' "$A/source.log" | sed 's/^/    /' || true
        say "the mirror lacks part of the source package: building nginx's own $ORIG without Debian's patches"
        rm -f "$S"/*.dsc "$S"/*.debian.tar.*
    fi
    printf '%s\n' "$ver" > "$S/version"
else
    say "using cached source in $S (NGINX126_REFRESH=1 to fetch again)"
fi
VER=$(cat "$S/version")
# Verify again what is used (apt did while downloading; this catches a
# cache that changed since).
(cd "$S" && grep -F " $ORIG" "$A/nginx.sha256" | sha256sum -c --quiet -) \
    || fail "$ORIG does not match the SHA-256 in $SUITE's Sources index"
DSC=$(find "$S" -maxdepth 1 -name 'nginx_*.dsc' -printf '%f\n' | head -n1)
if [ -n "$DSC" ]; then
    (cd "$S" && grep -F -e " $DSC" -e ".debian.tar." "$A/nginx.sha256" | sha256sum -c --quiet -) \
        || fail "$DSC or its Debian tarball does not match $SUITE's Sources index"
fi

# ---- 2. unpack, configure, build nginx ------------------------------------------

NGX=$W/nginx
stamp="$VER $(cd "$S" && sha256sum nginx_* | sha256sum | cut -d' ' -f1) ${NGX_FLAGS[*]}"
if [ -x "$NGX/objs/nginx" ] && [ "$(cat "$NGX/.built-from" 2>/dev/null)" = "$stamp" ]; then
    say "using built nginx tree $NGX"
else
    rm -rf "$NGX" "$W/unpack" "$W/cmake-build"
    if [ -n "$DSC" ]; then
        command -v dpkg-source >/dev/null || fail "dpkg-source not found (dpkg-dev)"
        say "dpkg-source -x $DSC (Debian's patches applied)"
        (cd "$S" && dpkg-source --no-check -x "$DSC" "$NGX") > "$W/unpack.log" 2>&1 \
            || { cat "$W/unpack.log" >&2; fail "dpkg-source -x $DSC failed"; }
    else
        say "unpacking $ORIG"
        mkdir -p "$W/unpack"
        tar -xf "$S/$ORIG" -C "$W/unpack"
        top=$(find "$W/unpack" -mindepth 1 -maxdepth 1 -type d | head -n1)
        [ -n "$top" ] && [ -x "$top/configure" ] || fail "$ORIG holds no nginx source tree"
        mv "$top" "$NGX"
        rm -rf "$W/unpack"
    fi
    say "configuring nginx in $NGX: ${NGX_FLAGS[*]} (log: $W/configure.log)"
    (cd "$NGX" && ./configure "${NGX_FLAGS[@]}") > "$W/configure.log" 2>&1 \
        || { tail -n 25 "$W/configure.log" >&2; fail "nginx ./configure failed (see $W/configure.log, $NGX/objs/autoconf.err)"; }
    say "building nginx (log: $W/nginx-build.log)"
    t_build=$SECONDS
    make -C "$NGX" -j "$JOBS" > "$W/nginx-build.log" 2>&1 \
        || { tail -n 40 "$W/nginx-build.log" >&2; fail "building nginx failed (see $W/nginx-build.log)"; }
    [ -x "$NGX/objs/nginx" ] || fail "no $NGX/objs/nginx after make"
    say "nginx built in $((SECONDS - t_build))s"
    printf '%s\n' "$stamp" > "$NGX/.built-from"
fi
NGINX_BIN=$NGX/objs/nginx
NGINX_VERSION=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$NGX/src/core/nginx.h")
"$NGINX_BIN" -v 2>&1 | grep -qF "nginx/$NGINX_VERSION" || fail "$NGINX_BIN -v does not say nginx/$NGINX_VERSION"
[ "$(printf '1.26.0\n%s\n' "$NGINX_VERSION" | sort -V | head -n1)" = 1.26.0 ] \
    || fail "expected nginx >= 1.26 from $SUITE, got $NGINX_VERSION"
say "nginx $NGINX_VERSION ($SUITE source $VER): $NGINX_BIN"

# ---- 3. the module (and consentctl) against that tree ----------------------------

B=$W/cmake-build
module_cmake_configure "$REPO" "$NGX" "$NGINX_VERSION" "$B" "$W/cmake.log"
targets=(ngx_http_consent_module)
[ -n "$CONSENTCTL" ] || targets+=(consentctl)
say "building ${targets[*]} against nginx $NGINX_VERSION (log: $W/module-build.log)"
cmake --build "$B" --target "${targets[@]}" -j "$JOBS" > "$W/module-build.log" 2>&1 \
    || { grep -E '(fatal )?error:' "$W/module-build.log" >&2 || tail -n 40 "$W/module-build.log" >&2
         fail "building ${targets[*]} against nginx $NGINX_VERSION failed (see $W/module-build.log)"; }
MODULE=$B/ngx_http_consent_module.so
[ -f "$MODULE" ] || fail "no $MODULE after the build"
CONSENTCTL=${CONSENTCTL:-$B/consentctl}
[ -x "$CONSENTCTL" ] || fail "no $CONSENTCTL after the build"

# The binary loads the module (same configured tree: same signature).
T=$(mktemp -d "$W/loadcheck.XXXXXX")
trap 'rm -rf "$T"' EXIT
printf 'load_module %s;\nerror_log %s/error.log;\npid %s/nginx.pid;\nevents {}\nhttp { access_log off; server { listen 127.0.0.1:1; } }\n' \
    "$MODULE" "$T" "$T" > "$T/nginx.conf"
"$NGINX_BIN" -t -p "$T/" -e "$T/error.log" -c "$T/nginx.conf" > "$T/t.log" 2>&1 \
    || { cat "$T/t.log" >&2; fail "nginx $NGINX_VERSION does not load $MODULE"; }
say "nginx $NGINX_VERSION loads $MODULE"

# ---- 4. the end-to-end suites ------------------------------------------------------

L=$W/logs
mkdir -p "$L"
export CONSENT_E2E_NGINX_BIN=$NGINX_BIN
failed=()
results=()
for suite in $SUITES; do
    script=$REPO/tests/e2e/test_$suite.py
    [ -f "$script" ] || script=$REPO/tests/compat/test_$suite.py
    [ -f "$script" ] || fail "no test_$suite.py in $REPO/tests/e2e or $REPO/tests/compat"
    say "e2e.$suite against nginx $NGINX_VERSION (log: $L/$suite.log)"
    t_suite=$SECONDS
    set +e
    "$PYTHON" "$script" --module "$MODULE" --consentctl "$CONSENTCTL" > "$L/$suite.log" 2>&1
    rc=$?
    set -e
    summary=$(grep -E '^(Ran [0-9]+ tests|OK|FAILED)' "$L/$suite.log" | tr '\n' ' ')
    if [ "$rc" = 0 ]; then
        results+=("PASS e2e.$suite ($((SECONDS - t_suite))s): $summary")
    else
        failed+=("$suite")
        results+=("FAIL e2e.$suite ($((SECONDS - t_suite))s, rc=$rc): $summary")
        echo "---- $L/$suite.log (failures)"
        awk '/^(ERROR|FAIL): /{p=1} p' "$L/$suite.log" | head -n 300
        grep -qE '^(ERROR|FAIL): ' "$L/$suite.log" || tail -n 60 "$L/$suite.log"
    fi
done

echo "---- nginx $NGINX_VERSION ($SUITE source $VER), module $MODULE"
printf '%s\n' "${results[@]}"
say "total $((SECONDS - t_start))s"
[ ${#failed[@]} = 0 ] || fail "${#failed[@]} suite(s) failed against nginx $NGINX_VERSION: ${failed[*]}"
echo "end-to-end suites pass against nginx $NGINX_VERSION"
