#!/bin/bash
# The `config` shim builds the module through nginx's own build system
# (./configure --with-compat --add-dynamic-module), and the packaged nginx
# loads the result.
set -euo pipefail
. "$(dirname "$0")/nginx_env.sh"
repo=$1
consentctl=$2
src=${NGINX_DEV_SOURCE:-/usr/share/nginx/src}
dir=$(mktemp -d /tmp/consent-shim-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cp -r "$src" "$dir/nginx"
cd "$dir/nginx"
./configure --with-compat --add-dynamic-module="$repo" > "$dir/configure.log" 2>&1 || { tail -20 "$dir/configure.log"; fail "configure"; }
make -f objs/Makefile modules > "$dir/make.log" 2>&1 || { tail -40 "$dir/make.log"; fail "make modules"; }
[ -f objs/ngx_http_consent_module.so ] || fail "no module built"

umask 077
"$consentctl" keygen > "$dir/token.key"
cat > "$dir/nginx.conf" <<CONF
load_module $dir/nginx/objs/ngx_http_consent_module.so;
pid $dir/nginx.pid;
error_log stderr;
events {}
http { consent_key 1 $dir/token.key; }
CONF
nginx_run "$dir" -t -p "$dir" -c "$dir/nginx.conf" 2> "$dir/t.out" || { cat "$dir/t.out"; fail "nginx -t"; }
grep -q "test is successful" "$dir/t.out" || fail "nginx -t"
nginx_reports "$dir" "$dir/t.out"
echo "shim build loads"
