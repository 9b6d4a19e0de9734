#!/bin/bash
# The package test's steps, run as root inside a throwaway system view
# (tools/debview.sh: this machine's Debian 12 behind overlays, or the
# Debian 13 environment), never on a real system:
#
#   install_check.sh STAGE
#
# STAGE holds debs/ (the two packages), src/debian/ and debian-tests/ (debian/tests),
# debian-site.conf (conf/debian-site.conf) and serve_check.py.
#
#  1. apt-get install ./*.deb, offline; the module's nginx-abi dependency is
#     the one the view's nginx provides.
#  2. The modules-enabled link; nginx -t and nginx -T with Debian's stock
#     nginx.conf; the manual page.
#  3. debian/tests: autopkgtest with the null runner (this view is the
#     testbed), then each test directly, as autopkgtest would run it.
#  4. Keys made by consentctl (mode 0600), conf/debian-site.conf in
#     conf.d/, nginx started with the stock nginx.conf, and a request served
#     through `consent on` to a real upstream (serve_check.py).
#  5. An upgrade in place (apt-get install --reinstall) while nginx runs: a
#     reload keeps the replaced module mapped, a restart maps the new file
#     (docs/debian.md, "Upgrade").
#  6. apt-get remove: the link becomes .removed, the module is gone, and
#     nginx -t passes; apt-get purge: the .removed link is gone too.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

S=$1
MOD=libnginx-mod-http-consent
LINK=/etc/nginx/modules-enabled/50-mod-http-consent.conf
AVAIL=/usr/share/nginx/modules-available/mod-http-consent.conf
SO=/usr/lib/nginx/modules/ngx_http_consent_module.so
LOAD='load_module modules/ngx_http_consent_module.so;'

say()  { printf '==> %s\n' "$*"; }
ok()   { printf 'ok: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    if [ -s /var/log/nginx/error.log ]; then
        echo "---- tail of /var/log/nginx/error.log" >&2
        tail -n 20 /var/log/nginx/error.log >&2
    fi
    exit 1
}
status() { dpkg-query -W -f '${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' ' || true; }
nginx_t() {  # nginx -t, its output indented; fails the test when it fails
    local out
    out=$(nginx -t 2>&1) || { printf '%s\n' "$out" >&2; fail "nginx -t fails ($*)"; }
    printf '%s\n' "$out" | sed 's/^/    /'
}
master_pid() { cat /run/nginx.pid 2>/dev/null; }
start_nginx() {
    nginx || fail "nginx did not start"
    local i
    for i in $(seq 50); do [ -s /run/nginx.pid ] && return 0; sleep 0.1; done
    fail "nginx wrote no /run/nginx.pid"
}
stop_nginx() {
    local pid i
    pid=$(master_pid) || return 0
    [ -n "$pid" ] || return 0
    nginx -s quit 2>&1 | sed 's/^/    /'
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    fail "nginx (pid $pid) did not stop"
}
workers_of() {  # the live child processes of PID (nginx's workers)
    local f k v st pp out=
    for f in /proc/[0-9]*/status; do
        st= pp=
        { while read -r k v _; do
            case "$k" in State:) st=$v ;; PPid:) pp=$v; break ;; esac
        done < "$f"; } 2>/dev/null || continue
        if [ "$pp" = "$1" ] && [ "$st" != Z ]; then out+="${f:6:-7} "; fi
    done
    printf '%s' "$out"
}
maps_module() {  # the module file the master process maps: "PATH" or "PATH (deleted)"
    awk '/ngx_http_consent_module\.so/ { s = $6; if ($7 != "") s = s " " $7; print s }' \
        "/proc/$(master_pid)/maps" | sort -u
}

# No service may start or reload from a maintainer script (there is no init
# system in the view anyway; this makes it explicit).
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

. /etc/os-release
abi=$(dpkg-query -W -f '${Provides}' nginx | grep -o 'nginx-abi-[^ ,]*' || true)
[ -n "$abi" ] || fail "the view's nginx provides no nginx-abi-*"
say "system view: $PRETTY_NAME, $(nginx -v 2>&1 | sed 's|^nginx version: ||') ($abi)"
[ -z "$(status "$MOD")" ] || [ "$(status "$MOD")" = un ] || fail "$MOD is already known to dpkg here: $(status "$MOD")"
[ ! -e "$LINK" ] && [ ! -L "$LINK" ] || fail "$LINK exists before the install"

# ---- 1. install ------------------------------------------------------------------
debs=("$S"/debs/*.deb)
say "apt-get install ${debs[*]##*/} (offline)"
apt-get install -y -q --no-install-recommends "${debs[@]}" > /tmp/apt-install.log 2>&1 \
    || { cat /tmp/apt-install.log >&2; fail "apt-get install of the packages failed"; }
grep -E '^(Setting up|Unpacking) ' /tmp/apt-install.log | sed 's/^/    /'
[ "$(status "$MOD")" = ii ] || fail "$MOD is not installed ($(status "$MOD"))"
[ "$(status consentctl)" = ii ] || fail "consentctl is not installed ($(status consentctl))"
dep=$(dpkg-query -W -f '${Depends}' "$MOD" | grep -o 'nginx-abi-[^ ,]*' || true)
[ "$dep" = "$abi" ] || fail "$MOD depends on '${dep:-no nginx-abi}', the view's nginx provides $abi"
ok "installed $MOD $(dpkg-query -W -f '${Version}' "$MOD") and consentctl; $MOD depends on $dep, which nginx provides"

# ---- 2. enabled -----------------------------------------------------------------
[ -f "$SO" ] || fail "$SO is missing"
[ -L "$LINK" ] || fail "$LINK is not a symlink"
[ "$(readlink "$LINK")" = "$AVAIL" ] || fail "$LINK points to $(readlink "$LINK"), not $AVAIL"
[ "$(cat "$AVAIL")" = "$LOAD" ] || fail "$AVAIL is not '$LOAD': $(cat "$AVAIL")"
ok "modules-enabled link: $LINK -> $(readlink "$LINK") ($LOAD)"
nginx_t "with the module enabled"
nginx -T > /tmp/nginx-T.txt 2>&1 || fail "nginx -T"
grep -qxF "$LOAD" /tmp/nginx-T.txt || fail "nginx -T does not show '$LOAD'"
ok "nginx -t passes with Debian's stock nginx.conf, which loads the module"
man=/usr/share/man/man1/consentctl.1.gz
[ -f "$man" ] && zcat "$man" | grep -q '^\.TH CONSENTCTL 1 ' || fail "no consentctl(1) at $man"
ok "consentctl(1) at $man"

# ---- 3. debian/tests ---------------------------------------------------------------
# autopkgtest itself (the null runner: this view is the testbed) reads
# debian/tests/control and runs what the null runner may run; it cannot run
# "generic" (isolation-container), so every test then also runs directly.
say "autopkgtest --no-built-binaries ${debs[*]##*/} src/ -- null"
set +e
(cd "$S" && autopkgtest --no-built-binaries "${debs[@]}" src/ -- null) > /tmp/autopkgtest.log 2>&1
rc=$?
set -e
summary=$(sed -n '/@@@@ summary/,$p' /tmp/autopkgtest.log | grep -E '^[a-z0-9-]+ +(PASS|FAIL|SKIP|FLAKY)' | awk '!seen[$0]++' || true)
printf '%s\n' "$summary" | sed 's/^/    /'
if [ "$rc" != 0 ] && [ "$rc" != 2 ] || ! grep -qE '^consent +PASS' <<<"$summary" \
        || ! grep -qE '^generic +(PASS|SKIP Test restriction "isolation-container")' <<<"$summary" \
        || grep -qE ' (FAIL|FLAKY)' <<<"$summary"; then
    tail -n 40 /tmp/autopkgtest.log >&2
    fail "autopkgtest (exit $rc)"
fi
ok "autopkgtest (exit $rc): $(awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }' <<<"$summary")"
for t in $(sed -n 's/^Tests: *//p' "$S/debian-tests/control"); do
    say "debian/tests/$t (as autopkgtest runs it)"
    tmp=$(mktemp -d)
    AUTOPKGTEST_TMP=$tmp "$S/debian-tests/$t" 2>&1 | sed 's/^/    /' || fail "debian/tests/$t failed"
    rm -rf "$tmp"
    ok "debian/tests/$t"
done

# ---- 4. serve ---------------------------------------------------------------------
say "keys, conf/debian-site.conf as /etc/nginx/conf.d/consent.conf, nginx with the stock nginx.conf"
install -d -m 0700 -o root -g root /etc/nginx/consent
(
    umask 077
    consentctl keygen > /etc/nginx/consent/token-1.key
    consentctl pseudonym-keygen > /etc/nginx/consent/pseudonym.key
)
for k in token-1.key pseudonym.key; do
    m=$(stat -c '%a %U' "/etc/nginx/consent/$k")
    [ "$m" = "600 root" ] || fail "/etc/nginx/consent/$k is '$m', not '600 root'"
done
ok "keys made by consentctl, mode 600, owner root"
token=$(consentctl mint --key /etc/nginx/consent/token-1.key --kid 1 --subject cust-000042 --ttl 1h)
cp "$S/debian-site.conf" /etc/nginx/conf.d/consent.conf
nginx_t "with conf/debian-site.conf"
start_nginx
python3 "$S/serve_check.py" --token "$token" || fail "serving through consent on"
ok "served through consent on with $(nginx -v 2>&1 | sed 's|^nginx version: ||')"

# ---- 5. upgrade in place ---------------------------------------------------------------
say "apt-get install --reinstall $MOD while nginx runs (an upgrade in place)"
old=$(maps_module)
[ "$old" = "$SO" ] || fail "the running nginx maps '$old', not $SO"
apt-get install -y -q --reinstall "$S"/debs/${MOD}_*.deb > /tmp/apt-reinstall.log 2>&1 \
    || { cat /tmp/apt-reinstall.log >&2; fail "apt-get install --reinstall failed"; }
workers=$(workers_of "$(master_pid)")
nginx -s reload 2>&1 | sed 's/^/    /'
# The reload is done when none of the old workers is left.
for i in $(seq 100); do
    now=$(workers_of "$(master_pid)")
    [ -n "$now" ] && [ -z "$(comm -12 <(tr ' ' '\n' <<<"$workers" | sort) <(tr ' ' '\n' <<<"$now" | sort))" ] && break
    [ "$i" -lt 100 ] || fail "nginx did not reload: workers still $now"
    sleep 0.1
done
after_reload=$(maps_module)
[ "$after_reload" = "$SO (deleted)" ] \
    || fail "after a reload the master maps '$after_reload'; expected the replaced file, '$SO (deleted)'"
ok "after a reload nginx still runs the replaced module: '$after_reload'"
stop_nginx
start_nginx
new=$(maps_module)
[ "$new" = "$SO" ] || fail "after a restart the master maps '$new', not the installed $SO"
python3 "$S/serve_check.py" --token "$token" > /tmp/serve2.log 2>&1 || { cat /tmp/serve2.log >&2; fail "serving after the restart"; }
ok "after a restart nginx runs the new module file and serves again"
stop_nginx

# ---- 6. remove and purge -------------------------------------------------------------
say "rm conf.d/consent.conf; apt-get remove $MOD"
rm /etc/nginx/conf.d/consent.conf
apt-get remove -y -q "$MOD" > /tmp/apt-remove.log 2>&1 || { cat /tmp/apt-remove.log >&2; fail "apt-get remove failed"; }
[ "$(status "$MOD")" = rc ] || fail "after remove, $MOD is '$(status "$MOD")', expected rc"
[ ! -e "$LINK" ] && [ ! -L "$LINK" ] || fail "$LINK is still there after remove"
[ -L "$LINK.removed" ] || fail "no $LINK.removed after remove"
[ ! -e "$SO" ] || fail "$SO is still there after remove"
ok "removed: the module is disabled ($LINK.removed -> $(readlink "$LINK.removed")), its file is gone"
nginx_t "after remove"
nginx -T > /tmp/nginx-T.txt 2>&1 || fail "nginx -T after remove"
! grep -qF 'ngx_http_consent_module' /tmp/nginx-T.txt || fail "nginx -T still loads the module after remove"
ok "nginx -t passes after remove, without the module"

say "apt-get purge $MOD consentctl"
apt-get purge -y -q "$MOD" consentctl > /tmp/apt-purge.log 2>&1 || { cat /tmp/apt-purge.log >&2; fail "apt-get purge failed"; }
[ -z "$(status "$MOD")" ] || [ "$(status "$MOD")" = un ] || fail "after purge, $MOD is '$(status "$MOD")'"
[ ! -e "$LINK.removed" ] && [ ! -L "$LINK.removed" ] || fail "$LINK.removed is still there after purge"
[ ! -e /usr/bin/consentctl ] || fail "/usr/bin/consentctl is still there after purge"
nginx_t "after purge"
ok "purged: no link left, consentctl gone, nginx -t passes"
