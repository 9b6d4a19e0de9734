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
SUITE=trixie

say()  { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'SKIP: %s\n' "$*" >&2; exit 77; }

[ -f "$REPO/CMakeLists.txt" ] && [ -d "$REPO/ngx_module" ] || fail "$REPO is not the module repository"
for tool in apt-get dpkg-deb cmake; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done

t_start=$SECONDS

# ---- 1. trixie's nginx-dev .deb ------------------------------------------------

# The Debian mirror this machine uses: the first enabled "deb" entry for the
# system's own codename, in sources.list (one-line format) or in
# sources.list.d/*.list / *.sources (deb822).
system_mirror() {
    local codename f
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || codename=bookworm
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v cn="$codename" '
            { sub(/#.*/, "") }
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == cn) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v cn="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    k = tolower(line); sub(/:.*/, "", k)
                    v = line; sub(/^[^:]*:[ \t]*/, "", v)
                    if (k == "types") types = v
                    else if (k == "uris") uris = v
                    else if (k == "suites") suites = v
                    else if (k == "enabled") enabled = tolower(v)
                }
                if (enabled == "no" || (" " types " ") !~ / deb /) next
                if ((" " suites " ") !~ (" " cn " ")) next
                split(uris, u, /[ \t]+/); print u[1]; exit
            }' "$f"
    done
}

MIRROR=${NGINX126_MIRROR:-$(system_mirror | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}

# The keyring that verifies trixie's Release file. Debian 12's
# debian-archive-keyring ships the trixie keys both in the combined keyring
# and as separate files.
KEYRING=
for k in /usr/share/keyrings/debian-archive-keyring.gpg \
         /usr/share/keyrings/debian-archive-$SUITE-automatic.gpg; do
    [ -f "$k" ] || continue
    if command -v gpg >/dev/null; then
        gpg --batch --no-default-keyring --keyring "$k" --list-keys 2>/dev/null \
            | grep -q "(13/$SUITE)" || continue
    fi
    KEYRING=$k
    break
done
[ -n "$KEYRING" ] || fail "no keyring with Debian 13/$SUITE archive keys in /usr/share/keyrings (is debian-archive-keyring up to date?)"

A=$W/apt
APTCONF=$A/apt.conf
mkdir -p "$A/sources.list.d" "$A/lists/partial" "$A/cache/archives/partial" "$W/deb"
: > "$A/status"
cat > "$A/sources.list.d/$SUITE.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE
Components: main
Signed-By: $KEYRING
EOF
# Read with apt-get -c, i.e. after the system's apt.conf.d: keeps the system's
# proxy settings, replaces everything that points at system state, and drops
# the system's update hooks (they would act on the system's lists).
cat > "$APTCONF" <<EOF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$A/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State::Lists "$A/lists";
Dir::State::status "$A/status";
Dir::State::extended_states "$A/extended_states";
Dir::Cache "$A/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::http::Timeout "30";
Acquire::https::Timeout "30";
Acquire::Retries "1";
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
EOF
# apt refuses to sandbox into directories _apt cannot write; we run as root.
[ "$(id -u)" = 0 ] || sed -i '/APT::Sandbox::User/d' "$APTCONF"

apt_() { apt-get -c "$APTCONF" "$@"; }

find_deb() { find "$W/deb" -maxdepth 1 -name 'nginx-dev_*_all.deb' -printf '%f\n' | sort -V | tail -n1; }

DEB=$(find_deb)
if [ -z "$DEB" ] || [ "${NGINX126_REFRESH:-0}" = 1 ]; then
    say "apt-get update: $MIRROR $SUITE main (private lists in $A)"
    set +e
    upd=$(apt_ update 2>&1)
    rc=$?
    set -e
    printf '%s\n' "$upd" > "$A/update.log"
    reached=$(grep -cE '^(Hit|Get):' <<<"$upd" || true)
    # Nothing fetched from the archive at all: a network failure or a refusal
    # (proxy 403/407...) means skip; any other answer (404, 400...) means the
    # mirror is there but has no usable trixie, which is an error.
    if [ "$reached" = 0 ]; then
        grep -E '^(Err|W|E):' <<<"$upd" >&2 || true
        if grep -qiE "Could not resolve|Temporary failure resolving|Could not connect|Connection refused|Connection timed out|timed out|Network is unreachable|No route to host|Unable to connect|Connection failed|Could not handshake|Forbidden|Proxy Authentication|[^0-9](403|407|451|502|503|504)[^0-9]" <<<"$upd"; then
            skip "Debian $SUITE archive at $MIRROR cannot be reached (see above); nginx 1.26 compatibility not checked"
        fi
        fail "could not fetch $SUITE's Release file from $MIRROR (see above; log: $A/update.log)"
    fi
    if grep -qiE 'NO_PUBKEY|EXPKEYSIG|BADSIG|not signed|signatures (couldn.t be verified|were invalid)' <<<"$upd"; then
        printf '%s\n' "$upd" >&2
        fail "$SUITE's Release file failed signature verification with $KEYRING"
    fi
    if [ "$rc" != 0 ] || grep -q '^Err:' <<<"$upd"; then
        printf '%s\n' "$upd" >&2
        fail "apt-get update for $SUITE at $MIRROR failed"
    fi
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
if [ -f "$B/CMakeCache.txt" ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$REPO" "$B/CMakeCache.txt"; then
    rm -rf "$B"
fi
gen=()
if [ ! -f "$B/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
say "cmake configure $REPO -> $B"
cmake "${gen[@]}" -S "$REPO" -B "$B" -DNGINX_BUILD_DIR="$NGX" \
    -DBUILD_TESTING=OFF -DCONSENT_BENCH=OFF > "$W/cmake.log" 2>&1 \
    || { cat "$W/cmake.log" >&2; fail "cmake configure failed"; }
grep -qF "Building against nginx $NGINX_VERSION headers in $NGX" "$W/cmake.log" \
    || { cat "$W/cmake.log" >&2; fail "cmake did not pick up nginx $NGINX_VERSION from $NGX"; }

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
