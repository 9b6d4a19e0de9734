#!/bin/bash
# The example configurations in conf/ pass `nginx -t` with the built module,
# with their key, certificate and module paths pointed at generated files.
set -euo pipefail
. "$(dirname "$0")/nginx_env.sh"
repo=$1
module=$2
consentctl=$3
dir=$(mktemp -d /tmp/consent-confs-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

umask 077
mkdir -p "$dir/consent" "$dir/tls" "$dir/keys" "$dir/logs" "$dir/modules" "$dir/tmp"
"$consentctl" keygen --suite xchacha20poly1305 > "$dir/consent/token-2.key"
"$consentctl" keygen --suite aes256gcm > "$dir/consent/token-1.key"
"$consentctl" pseudonym-keygen > "$dir/consent/pseudonym.key"
cp "$dir/consent/token-2.key" "$dir/keys/token.key"
cp "$dir/consent/pseudonym.key" "$dir/keys/pseudonym.key"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=shop.example.com -days 1 \
    -keyout "$dir/tls/shop.key" -out "$dir/tls/shop.crt" 2>/dev/null
cp "$dir/tls/shop.crt" "$dir/consent/redis-ca.pem"
ln -s "$(readlink -f "$module")" "$dir/modules/ngx_http_consent_module.so"

sed -e "s|/etc/nginx/consent/|$dir/consent/|g" -e "s|/etc/nginx/tls/|$dir/tls/|g" \
    -e "s|/var/log/nginx/|$dir/logs/|g" \
    -e "s|consent-redis.internal.example.com:|localhost:|" \
        -e "s|^\(events {\)|pid $dir/nginx.pid;\n\1|" \
    "$repo/conf/front-proxy.conf" > "$dir/front-proxy.conf"
cp "$repo/conf/demo.conf" "$dir/demo.conf"

for conf in front-proxy.conf demo.conf; do
    nginx_run "$dir" -t -p "$dir/" -c "$conf" > "$dir/out" 2>&1 \
        || { cat "$dir/out"; fail "conf/$conf does not pass nginx -t"; }
    nginx_reports "$dir" "$dir/out"
done
echo "examples pass nginx -t"
