# Sourced by nginx126_build.sh and nginx126_e2e.sh: a private apt
# configuration for Debian 13 (trixie) on a Debian 12 machine, touching none
# of the system's apt sources, lists, caches or installed packages.
#
#   trixie_apt_setup APT_DIR "deb" | "deb-src" | "deb deb-src"
#       sets MIRROR, KEYRING, A (=APT_DIR) and APTCONF; defines apt_ (apt-get
#       with that configuration). NGINX126_MIRROR=URL overrides the mirror.
#   trixie_apt_update "WHAT IS NOT CHECKED"
#       apt-get update; exit 77 (skip) when the archive cannot be reached at
#       all, fail on anything else that goes wrong.
#
# The caller sets -euo pipefail and defines say, fail and skip.

SUITE=trixie

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

trixie_apt_setup() {
    A=$1
    local types=$2 k

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

    APTCONF=$A/apt.conf
    mkdir -p "$A/sources.list.d" "$A/lists/partial" "$A/cache/archives/partial"
    : > "$A/status"
    cat > "$A/sources.list.d/$SUITE.sources" <<EOF
Types: $types
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
}

apt_() { apt-get -c "$APTCONF" "$@"; }

trixie_apt_update() {
    local what=$1 upd rc reached
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
            skip "Debian $SUITE archive at $MIRROR cannot be reached (see above); $what"
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
}
