# Sourced by the shell e2e scripts: runs the packaged nginx the way
# harness.py does (see "sanitizers and valgrind" there, and docs/testing.md).
#
#   nginx_run DIR ARGS...   /usr/sbin/nginx ARGS, with CONSENT_E2E_NGINX_ENV
#                           added to its environment and under
#                           CONSENT_E2E_NGINX_WRAPPER; "{dir}" in either
#                           stands for DIR, reports go to DIR/reports/
#   nginx_reports DIR [FILE...]
#                           fails (exit 1, printing them) when DIR/reports/
#                           holds an ASan/UBSan report or a valgrind log with
#                           errors, or when DIR/error.log or a FILE has a
#                           sanitizer line. Call it once nginx has exited.
# Unset, nginx runs exactly as /usr/sbin/nginx ARGS.

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

nginx_run() {
    local d=$1 w
    shift
    local -a words=() envs=() wrap=()
    mkdir -p "$d/reports"
    if [ -n "${CONSENT_E2E_NGINX_ENV:-}${CONSENT_E2E_NGINX_WRAPPER:-}" ]; then
        # Workers of an nginx started as root without a `user` directive run
        # as nobody: let them reach DIR/reports (DIR's files keep their modes).
        chmod a+x "$d"
        chmod 1777 "$d/reports"
    fi
    read -r -d "" -a words <<< "${CONSENT_E2E_NGINX_ENV:-}" || true
    for w in "${words[@]}"; do envs+=("${w//\{dir\}/$d}"); done
    read -r -d "" -a words <<< "${CONSENT_E2E_NGINX_WRAPPER:-}" || true
    for w in "${words[@]}"; do wrap+=("${w//\{dir\}/$d}"); done
    env "${envs[@]}" "${wrap[@]}" "$NGINX_BIN" "$@"
}

nginx_reports() {
    local d=$1 f bad=0
    shift
    for f in "$d"/reports/*; do
        [ -s "$f" ] || continue
        case "$(basename "$f")" in
            valgrind*)
                if grep -qE '^==[0-9]+== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|Syscall param|Source and destination overlap|.* are definitely lost)' "$f" \
                    || ! grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
                    echo "valgrind found errors: $f"; cat "$f"; bad=1
                fi ;;
            *) echo "sanitizer report: $f"; cat "$f"; bad=1 ;;
        esac
    done
    for f in "$d/error.log" "$@"; do
        [ -f "$f" ] || continue
        if grep -nE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|ERROR: Sanitizer' "$f"; then
            echo "sanitizer lines in $f"; bad=1
        fi
    done
    [ "$bad" = 0 ] || { echo "FAIL: sanitizer or valgrind findings for nginx in $d"; exit 1; }
}

# nginx_stop DIR: SIGQUIT the nginx whose pid file is DIR/nginx.pid and wait
# (up to 30 s) until it has exited, so its reports are complete.
nginx_stop() {
    local d=$1 pid
    pid=$(cat "$d/nginx.pid" 2>/dev/null) || return 0
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    echo "nginx $pid did not exit within 30 s" >&2
    return 1
}
