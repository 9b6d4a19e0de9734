#!/bin/bash
# The example configurations in conf/, and the nginx snippets of
# docs/deployment.md, pass `nginx -t` with the built module, with their key,
# certificate and module paths pointed at generated files.
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
# The nginx snippets of docs/deployment.md, each inside a minimal http
# block, with the example host names pointed at localhost (nginx -t
# resolves them).
awk -v dir="$dir" '/^```nginx$/ { n++; f = dir "/deployment-" n ".snippet"; next }
                   /^```$/ { f = ""; next }
                   f { print > f }' "$repo/docs/deployment.md"
snippets=("$dir"/deployment-*.snippet)
[ -e "${snippets[0]}" ] || fail "docs/deployment.md has no nginx snippet"
for snip in "${snippets[@]}"; do
    conf=${snip%.snippet}.conf
    {
        echo "load_module $dir/modules/ngx_http_consent_module.so;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/logs/error.log;"
        echo "events {}"
        echo "http {"
        echo "    consent_key 1 $dir/consent/token-2.key issue;"
        echo "    consent_pseudonym_key $dir/consent/pseudonym.key;"
        echo "    consent_purpose marketing denied;"
        sed -e 's|[a-z0-9.]*\.example\.com:|localhost:|' -e "s|/etc/nginx/consent/|$dir/consent/|g" "$snip"
        echo "    server { listen 127.0.0.1:8; location / { consent on; proxy_pass http://127.0.0.1:9; } }"
        echo "}"
    } > "$conf"
    nginx_run "$dir" -t -p "$dir/" -c "$conf" > "$dir/out" 2>&1 \
        || { cat "$dir/out"; cat "$conf"; fail "docs/deployment.md: snippet $(basename "$snip") does not pass nginx -t"; }
    nginx_reports "$dir" "$dir/out"
done
echo "examples pass nginx -t (conf/ and ${#snippets[@]} snippets of docs/deployment.md)"
