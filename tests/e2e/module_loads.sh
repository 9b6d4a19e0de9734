#!/bin/bash
# The packaged nginx loads the module, accepts a configuration using its
# directives (nginx -t), serves with it, and rejects a bad key file.
set -euo pipefail
. "$(dirname "$0")/nginx_env.sh"
module=$1
consentctl=$2
dir=$(mktemp -d /tmp/consent-e2e-XXXXXX)
trap 'kill $(cat "$dir/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

umask 077
"$consentctl" keygen --suite aes256gcm > "$dir/token.key"
"$consentctl" pseudonym-keygen > "$dir/pseudonym.key"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

write_conf() {  # $1: extra http directives
cat > "$dir/nginx.conf" <<CONF
load_module $module;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir;
    proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
    consent_key 3 $dir/token.key issue;
    consent_pseudonym_key $dir/pseudonym.key;
    $1
    server {
        listen 127.0.0.1:$port;
        location / { consent on; return 200 "ok\n"; }
    }
}
CONF
}

write_conf ""
nginx_run "$dir" -t -p "$dir" -c "$dir/nginx.conf" 2> "$dir/t.out" || { cat "$dir/t.out"; fail "nginx -t"; }
grep -q "test is successful" "$dir/t.out" || fail "nginx -t did not succeed"

nginx_run "$dir" -p "$dir" -c "$dir/nginx.conf"
for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
body=$(curl -fsS "http://127.0.0.1:$port/")
[ "$body" = "ok" ] || fail "unexpected body '$body'"
nginx_stop "$dir" || fail "nginx did not stop"

# A group-readable key file is refused, naming the directive and the reason.
chmod 0640 "$dir/token.key"
if nginx_run "$dir" -t -p "$dir" -c "$dir/nginx.conf" 2> "$dir/t.out"; then fail "group-readable key accepted"; fi
grep -q '"consent_key": key file .*readable by group or others' "$dir/t.out" || { cat "$dir/t.out"; fail "no clear error"; }
chmod 0600 "$dir/token.key"

# A duplicate key id is refused.
write_conf "consent_key 3 $dir/token.key;"
if nginx_run "$dir" -t -p "$dir" -c "$dir/nginx.conf" 2> "$dir/t.out"; then fail "duplicate key id accepted"; fi
grep -q 'duplicate key id 3' "$dir/t.out" || { cat "$dir/t.out"; fail "no duplicate error"; }

nginx_reports "$dir" "$dir/t.out"
echo "1 passed, 0 failed"
