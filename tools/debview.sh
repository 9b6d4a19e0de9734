#!/bin/bash
# Runs a command in a throwaway system view: new mount, network and PID
# namespaces, with copy-on-write overlays whose upper layers live in a tmpfs
# that disappears with the namespaces. Nothing the command changes reaches
# the real system, and every process it starts dies with it.
#
#   tools/debview.sh --host [--bind SRC:DST]... -- CMD [ARG...]
#       overlays over this system's /etc, /usr and /var (so dpkg, apt and
#       nginx see a copy of the installed system), a fresh tmpfs on /run.
#   tools/debview.sh --root DIR [--bind SRC:DST]... -- CMD [ARG...]
#       an overlay over the whole tree DIR (e.g. a Debian 13 chroot made by
#       mmdebstrap, which stays pristine), with /proc, /dev, /run and /tmp,
#       and chroot into it.
#
# --bind mounts SRC (a directory of the real system) read-write on DST in
# the view. The network namespace has only a loopback interface: the command
# can listen on any port (80 included) without meeting anything else, and
# can reach nothing outside. The environment is reset (PATH, HOME=/root,
# LC_ALL=C.UTF-8) plus any VAR=VALUE given with --env.
#
# Needs root (or sudo), unshare(1) from util-linux, overlayfs and ip(8).
# Exit status: the command's.
set -euo pipefail

usage() { sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

if [ "${1:-}" != --inside ]; then
    [ "$(id -u)" = 0 ] || exec sudo -n "$0" "$@"
    t=$(mktemp -d "${TMPDIR:-/tmp}/debview.XXXXXX")
    set +e
    unshare --mount --net --pid --fork --kill-child --propagation private -- "$0" --inside "$t" "$@"
    rc=$?
    set -e
    rm -rf "$t"
    exit "$rc"
fi
shift
t=$1
shift

mode= root= binds=() envs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --host) mode=host ;;
        --root) mode=root; root=$(cd "$2" && pwd -P); shift ;;
        --bind) binds+=("$2"); shift ;;
        --env) envs+=("$2"); shift ;;
        --) shift; break ;;
        *) usage ;;
    esac
    shift
done
[ -n "$mode" ] && [ $# -gt 0 ] || usage

# Upper layers in memory: the view's changes vanish with the namespace.
mount -t tmpfs -o mode=0755 debview "$t"

overlay() {  # LOWER TARGET NAME
    mkdir -p "$t/$3.up" "$t/$3.work"
    mount -t overlay overlay -o "lowerdir=$1,upperdir=$t/$3.up,workdir=$t/$3.work" "$2"
}

ip link set lo up

cleanenv=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
          LC_ALL=C.UTF-8 TERM=dumb "${envs[@]}")

if [ "$mode" = host ]; then
    for d in etc usr var; do
        overlay "/$d" "/$d" "$d"
    done
    mount -t tmpfs -o mode=0755 run /run
    mount -t proc proc /proc
    for b in "${binds[@]}"; do
        mkdir -p "${b#*:}"
        mount --bind "${b%%:*}" "${b#*:}"
    done
    cd /
    exec env -i "${cleanenv[@]}" "$@"
fi

[ -x "$root/usr/bin/env" ] || { echo "debview.sh: $root is not a system tree" >&2; exit 1; }
mkdir -p "$t/root"
overlay "$root" "$t/root" root
r=$t/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount --make-rslave "$r/dev"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
mount -t tmpfs -o mode=0755 run "$r/run"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
for b in "${binds[@]}"; do
    mkdir -p "$r${b#*:}"
    mount --bind "${b%%:*}" "$r${b#*:}"
done
exec chroot "$r" /usr/bin/env -i "${cleanenv[@]}" "$@"
