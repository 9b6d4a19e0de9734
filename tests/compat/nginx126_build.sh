#!/bin/bash
# Builds the module against Debian 13 (trixie)'s nginx-dev headers (nginx 1.26)
# on a Debian 12 machine, without touching the system's apt sources, lists,
# caches or installed packages.
#
#   tests/compat/nginx126_build.sh REPO_DIR WORK_DIR
#
# 1. apt-get update / apt-get download nginx-dev from trixie, with a private
#    apt configuration (sources, lists, cache, status) under WORK_DIR/apt.
#    The mirror is the one this machine already uses for Debian.
# 2. dpkg -x the .deb, copy its /usr/share/nginx/src to WORK_DIR/nginx and run
#    ./configure with the flags from its conf_flags (as cmake/nginx.cmake does).
# 3. Configure REPO_DIR into WORK_DIR/cmake-build with -DNGINX_BUILD_DIR and
#    build only ngx_http_consent_module (from clean, so every warning shows).
#    Any compile error, or any compiler warning in a file of REPO_DIR, fails.
#
# The .deb, the unpacked package and the configured nginx tree are cached in
# WORK_DIR; a rerun does not touch the network. NGINX126_REFRESH=1 fetches
# trixie's current nginx-dev again. NGINX126_MIRROR=URL overrides the mirror.
#
# Exit status: 0 built cleanly; 77 trixie's archive could not be reached at
# all (network failure or refusal: treat as skipped); 1 anything else.
set -euo pipefail
export LC_ALL=C

[ $# -eq 2 ] || { echo "usage: $0 REPO_DIR WORK_DIR" >&2; exit 1; }
mkdir -p "$2"
REPO=$(cd "$1" && pwd -P)
W=$(cd "$2" && pwd -P)
JOBS=$(nproc 2>/dev/null || echo 2)

say()  { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'SKIP: %s\n' "$*" >&2; exit 77; }

[ -f "$REPO/CMakeLists.txt" ] && [ -d "$REPO/ngx_module" ] || fail "$REPO is not the module repository"
for tool in apt-get dpkg-deb cmake; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done

t_start=$SECONDS

# ---- 1. trixie's nginx-dev .deb ------------------------------------------------

. "$(dirname "${BASH_SOURCE[0]}")/trixie_apt.sh"
. "$(dirname "${BASH_SOURCE[0]}")/module_cmake.sh"
trixie_apt_setup "$W/apt" deb
mkdir -p "$W/deb"

find_deb() { find "$W/deb" -maxdepth 1 -name 'nginx-dev_*_all.deb' -printf '%f\n' | sort -V | tail -n1; }

DEB=$(find_deb)
if [ -z "$DEB" ] || [ "${NGINX126_REFRESH:-0}" = 1 ]; then
    trixie_apt_update "nginx 1.26 compatibility not checked"
    ver=$(apt-cache -c "$APTCONF" policy nginx-dev | awk '/Candidate:/ { print $2 }')
    [ -n "$ver" ] && [ "$ver" != "(none)" ] || fail "no nginx-dev in $MIRROR $SUITE main"
    say "apt-get download nginx-dev=$ver"
    rm -f "$W"/deb/*.deb
    (cd "$W/deb" && apt_ download "nginx-dev=$ver") > "$A/download.log" 2>&1 \
        || { cat "$A/download.log" >&2; fail "apt-get download nginx-dev=$ver failed"; }
    DEB=$(find_deb)
    [ -n "$DEB" ] || fail "apt-get download left no nginx-dev .deb in $W/deb"
else
    say "using cached $W/deb/$DEB (NGINX126_REFRESH=1 to fetch again)"
fi

# ---- 2. unpack and configure ---------------------------------------------------

NGX=$W/nginx
stamp="$DEB $(md5sum < "$W/deb/$DEB" | cut -d' ' -f1)"
if [ -f "$NGX/objs/ngx_auto_config.h" ] && [ "$(cat "$NGX/.configured-from" 2>/dev/null)" = "$stamp" ]; then
    say "using configured nginx tree $NGX"
else
    say "unpacking $DEB"
    rm -rf "$W/pkg" "$NGX"
    dpkg-deb -x "$W/deb/$DEB" "$W/pkg"
    [ -f "$W/pkg/usr/share/nginx/src/conf_flags" ] || fail "$DEB has no /usr/share/nginx/src/conf_flags"
    cp -r "$W/pkg/usr/share/nginx/src" "$NGX"
    chmod -R u+w "$NGX"
    say "configuring nginx headers in $NGX (log: $NGX/configure.log)"
    if ! (cd "$NGX" && bash -c 'source ./conf_flags && ./configure "${NGX_CONF_FLAGS[@]}"') > "$NGX/configure.log" 2>&1; then
        echo "---- tail of $NGX/configure.log" >&2
        tail -n 25 "$NGX/configure.log" >&2
        err=$(grep -E 'error:' "$NGX/configure.log" | tail -n1)
        hint=
        case "$err" in
            *PCRE*)          hint="libpcre2-dev" ;;
            *OpenSSL*)       hint="libssl-dev" ;;
            *zlib*)          hint="zlib1g-dev" ;;
            *libxslt*|*XSLT*) hint="libxml2-dev libxslt1-dev" ;;
            *GD*)            hint="libgd-dev" ;;
            *GeoIP*)         hint="libgeoip-dev" ;;
            *perl*|*Perl*)   hint="libperl-dev" ;;
        esac
        [ -n "$hint" ] && echo "missing Debian 12 dev package(s), probably: $hint" >&2
        fail "nginx ./configure failed${err:+: $err} (see also $NGX/objs/autoconf.err)"
    fi
    printf '%s\n' "$stamp" > "$NGX/.configured-from"
fi
NGINX_VERSION=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$NGX/src/core/nginx.h")
[ -n "$NGINX_VERSION" ] || fail "no NGINX_VERSION in $NGX/src/core/nginx.h"
say "nginx $NGINX_VERSION (from $DEB)"

# ---- 3. build the module -------------------------------------------------------

B=$W/cmake-build
say "cmake configure $REPO -> $B"
module_cmake_configure "$REPO" "$NGX" "$NGINX_VERSION" "$B" "$W/cmake.log"

say "building ngx_http_consent_module from clean (log: $W/build.log)"
t_build=$SECONDS
set +e
cmake --build "$B" --target ngx_http_consent_module --clean-first -j "$JOBS" > "$W/build.log" 2>&1
rc=$?
set -e
t_build=$((SECONDS - t_build))

warnings=$(grep -E 'warning:' "$W/build.log" || true)
# Warnings in the repository's own files; WORK_DIR may lie inside REPO_DIR
# (build-compat/), and the nginx headers there are not ours.
ours=$(awk -v repo="$REPO/" -v work="$W/" 'index($0, repo) == 1 && index($0, work) != 1' <<<"$warnings")
if [ -n "$warnings" ]; then
    echo "---- compiler/linker warnings"
    printf '%s\n' "$warnings"
fi
if [ "$rc" != 0 ]; then
    if grep -qE '(fatal )?error:' "$W/build.log"; then
        echo "---- compile errors (count, message)" >&2
        grep -E '(fatal )?error:' "$W/build.log" | sort | uniq -c >&2
        echo "---- first error in context" >&2
        grep -m1 -B4 -A4 -E '(fatal )?error:' "$W/build.log" >&2
    else
        tail -n 60 "$W/build.log" >&2
    fi
    # A header nginx has but the build cannot find: name the directory that
    # cmake/nginx.cmake's NGINX_INCLUDE_DIRS lacks (nginx's own list is
    # ALL_INCS in objs/Makefile).
    for h in $(sed -n 's/.*fatal error: \([^:]*\.h\): No such file or directory.*/\1/p' "$W/build.log" | sort -u); do
        d=$(find "$NGX/src" -name "$h" -printf '%h\n' | head -n1)
        [ -n "$d" ] && echo "hint: $h is in \${_ngx_root}/${d#"$NGX/"}, which NGINX_INCLUDE_DIRS in cmake/nginx.cmake does not list (nginx's ALL_INCS: $(sed -n '/^ALL_INCS/,/^$/p' "$NGX/objs/Makefile" | grep -o '\-I [^ ]*' | cut -c4- | tr '\n' ' '))" >&2
    done
    fail "ngx_http_consent_module does not build against nginx $NGINX_VERSION (full log: $W/build.log)"
fi
[ -f "$B/ngx_http_consent_module.so" ] || fail "no $B/ngx_http_consent_module.so after the build"
if [ -n "$ours" ]; then
    fail "$(wc -l <<<"$ours") warning(s) in $REPO building against nginx $NGINX_VERSION (full log: $W/build.log)"
fi
say "compiled in ${t_build}s; total $((SECONDS - t_start))s"
echo "module builds against nginx $NGINX_VERSION headers"
