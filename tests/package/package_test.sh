#!/bin/bash
# The package test (ctest label `package`): builds the Debian packages,
# installs them into a throwaway system view, and runs the packaged nginx
# with them there (tests/package/install_check.sh).
#
#   tests/package/package_test.sh bookworm|trixie REPO_DIR
#
# bookworm: `./dev deb`, then this machine's own Debian 12 seen through
#   overlays over /etc, /usr and /var in private mount, network and PID
#   namespaces (tools/debview.sh --host). Afterwards the test checks that
#   this machine's installed packages, /etc/nginx and nginx's module
#   directories are exactly as before.
# trixie: `./dev deb --release trixie` (a Debian 13 chroot made with
#   mmdebstrap, cached in build/deb-build/trixie-root/), then an overlay over
#   that chroot (tools/debview.sh --root), with its nginx 1.26. Afterwards
#   the cached chroot must be unchanged.
#
# Needs root (or passwordless sudo). Exit status: 0 passed; 77 (trixie only)
# Debian 13's archive cannot be reached and no environment is cached; 1 failed.
set -euo pipefail
export LC_ALL=C.UTF-8

say()  { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || { echo "usage: $0 bookworm|trixie REPO_DIR" >&2; exit 2; }
RELEASE=$1
REPO=$(cd "$2" && pwd -P)
case "$RELEASE" in
    bookworm) DEBDIR=$REPO/build/deb; VIEW=(--host); INSIDE= ;;
    trixie) DEBDIR=$REPO/build/deb/trixie; ROOT=$REPO/build/deb-build/trixie-root
            VIEW=(--root "$ROOT"); INSIDE=/pkgtest ;;
    *) fail "unknown release $RELEASE" ;;
esac
if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
    fail "the package test needs root or passwordless sudo (unshare, overlayfs, mmdebstrap)"
fi
t0=$SECONDS

# ---- build -----------------------------------------------------------------------
say "./dev deb --release $RELEASE"
rc=0
"$REPO/dev" deb --release "$RELEASE" 2>&1 || rc=$?
[ "$rc" = 77 ] && { echo "SKIP: Debian 13's archive cannot be reached and no Debian 13 environment is cached: the Debian 13 packages were neither built nor tested"; exit 77; }
[ "$rc" = 0 ] || fail "./dev deb --release $RELEASE failed (exit $rc)"
t_build=$((SECONDS - t0))

mapfile -t debs < <(find "$DEBDIR" -maxdepth 1 -name '*.deb' | sort)
[ ${#debs[@]} -eq 2 ] || fail "expected 2 packages in $DEBDIR, found ${#debs[@]}"
stage=$(mktemp -d /tmp/consent-pkgtest.XXXXXX)
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
mkdir "$stage/debs"
cp "${debs[@]}" "$stage/debs/"
cp -r "$REPO/debian/tests" "$stage/debian-tests"
mkdir "$stage/src"
cp -r "$REPO/debian" "$stage/src/debian"
cp "$REPO/conf/debian-site.conf" "$REPO/tests/package/install_check.sh" "$REPO/tests/package/serve_check.py" "$stage/"

# ---- what must not change ------------------------------------------------------------
state() {  # a missing path is part of the state, not an error
    if [ "$RELEASE" = bookworm ]; then
        dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' | sort
        sha256sum /var/lib/dpkg/status
        for p in /etc/nginx /usr/lib/nginx/modules /usr/share/nginx/modules-available \
                 /usr/bin/consentctl; do
            { find "$p" -printf '%p %y %m %u %l %s\n' 2>&1 || true; } | sort
        done
    else
        sha256sum "$ROOT/var/lib/dpkg/status"
        for p in etc/nginx usr/lib/nginx/modules usr/share/nginx/modules-available \
                 usr/bin/consentctl usr/sbin/policy-rc.d; do
            (cd "$ROOT" && { find "$p" -printf '%p %y %m %u %l %s\n' 2>&1 || true; } | sort)
        done
    fi
}
before=$(state)

# ---- install, serve, remove, purge in the view ----------------------------------------------
say "into a throwaway system view (tools/debview.sh ${VIEW[*]})"
t1=$SECONDS
if [ -n "$INSIDE" ]; then
    "$REPO/tools/debview.sh" "${VIEW[@]}" --bind "$stage:$INSIDE" -- bash "$INSIDE/install_check.sh" "$INSIDE" \
        || fail "the package test failed in the Debian 13 view"
else
    "$REPO/tools/debview.sh" "${VIEW[@]}" -- bash "$stage/install_check.sh" "$stage" \
        || fail "the package test failed in the Debian 12 view"
fi
t_view=$((SECONDS - t1))

after=$(state)
if [ "$before" != "$after" ]; then
    diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
    fail "the real system changed during the test (above)"
fi
if [ "$RELEASE" = bookworm ]; then
    [ "$(dpkg-query -W -f '${db:Status-Abbrev}' libnginx-mod-http-consent 2>/dev/null | tr -d ' ')" != ii ] \
        || say "note: libnginx-mod-http-consent is installed on this machine itself (not by this test)"
    echo "ok: this machine's packages, /etc/nginx and nginx module directories are unchanged"
else
    echo "ok: the cached Debian 13 environment is unchanged"
fi
say "package test ($RELEASE) passed: build ${t_build}s, install test ${t_view}s"
