#!/bin/bash
# Builds the Debian packages (debian/) from the repository's tracked files,
# then checks them with lintian. `./dev deb` runs it after installing what it
# needs; tests/package/ runs `./dev deb`.
#
#   tools/debbuild.sh bookworm    Debian 12, on this machine: build/deb/
#   tools/debbuild.sh trixie      Debian 13, in a throwaway Debian 13
#                                 environment: build/deb/trixie/
#   tools/debbuild.sh check       only step 1's checks of the source tree
#
# For each release, build/deb-build/RELEASE/ keeps the source package
# (orig tarball, .dsc, debian tarball), the .changes and .buildinfo, the
# -dbgsym packages, build.log and lintian.txt.
#
# 1. The source tree is exported from `git ls-files` (the working copy's
#    content of every tracked file; untracked and ignored files, build trees
#    included, never enter it). A tracked file that looks generated (bytecode,
#    objects, a build tree) stops the build, and so does a debian/changelog
#    whose upstream version is not CMakeLists.txt's project VERSION.
# 2. bookworm: dpkg-buildpackage on this machine. trixie: the changelog of
#    the exported tree gets an entry VERSION+deb13u1 ("rebuilt for Debian
#    13", so that a dist-upgrade from 12 replaces the Debian 12 build), and
#    dpkg-buildpackage runs in a Debian 13 chroot: mmdebstrap of trixie main
#    with the Build-Depends of debian/control, lintian, python3, nginx and
#    autopkgtest, cached in build/deb-build/trixie-root/ (made again after
#    7 days, when debian/control's Build-Depends change, or with
#    CONSENT_DEB_REFRESH=1) and used through tools/debview.sh (an overlay,
#    no network), so it stays pristine. The mirror is the one this machine
#    uses (tests/compat/trixie_apt.sh); NGINX126_MIRROR=URL overrides it.
#    The Debian 13 build needs root, and re-executes itself with sudo.
# 3. lintian on the .changes (source and binaries) with that release's
#    lintian, every tag shown: any error or warning fails, except the
#    archive-only initial-upload-closes-no-bugs.
#
# Exit status: 0 built and lintian clean; 77 (trixie only) Debian 13's
# archive cannot be reached and no environment is cached; 1 anything else.
set -euo pipefail
export LC_ALL=C.UTF-8

say()  { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() { printf 'debbuild: FAIL: %s\n' "$*" >&2; exit 1; }
skip() { printf 'debbuild: SKIP: %s\n' "$*" >&2; exit 77; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
RELEASE=${1:-bookworm}
case "$RELEASE" in
    bookworm|12) RELEASE=bookworm ;;
    trixie|13) RELEASE=trixie ;;
    check) ;;
    *) echo "usage: $0 bookworm|trixie|check" >&2; exit 2 ;;
esac
# The Debian 13 environment needs root (mmdebstrap --mode=root, overlays).
if [ "$RELEASE" = trixie ] && [ "$(id -u)" != 0 ]; then
    exec sudo -n --preserve-env=NGINX126_MIRROR,CONSENT_DEB_REFRESH "$0" "$@"
fi
OUT=$REPO/build/deb
[ "$RELEASE" = trixie ] && OUT=$REPO/build/deb/trixie
WORK=$REPO/build/deb-build
W=$WORK/$RELEASE
JOBS=$(nproc 2>/dev/null || echo 2)
[ "$JOBS" -gt 2 ] && JOBS=2          # a shared 2-core machine
LINTIAN_ALLOWED=initial-upload-closes-no-bugs
t_start=$SECONDS

command -v dpkg-parsechangelog >/dev/null || fail "dpkg-parsechangelog not found (dpkg-dev)"
command -v git >/dev/null || fail "git not found"

# ---- 1. the source tree ---------------------------------------------------------

SOURCE=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Source)
VERSION=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Version)
UPSTREAM=${VERSION%-*}
CMAKE_VERSION=$(sed -n 's/^project([^)]*VERSION \([0-9][0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
[ -n "$CMAKE_VERSION" ] || fail "no project(... VERSION x.y.z) in CMakeLists.txt"
[ "$UPSTREAM" = "$CMAKE_VERSION" ] \
    || fail "debian/changelog is at $VERSION but CMakeLists.txt's project VERSION is $CMAKE_VERSION: add a changelog entry ${CMAKE_VERSION}-1 (or bump CMakeLists.txt)"

git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    || fail "$REPO is not a git checkout: the packages are built from its tracked files"
# Generated files never belong in the source package.
generated=$(git -C "$REPO" ls-files | grep -E '(^|/)(__pycache__/|build/|build-[^/]*/|obj-[^/]*/)|\.(pyc|pyo|o|a|so|deb|ddeb)$|^debian/(\.debhelper|tmp|files|[^/]*\.substvars|debhelper-build-stamp)' || true)
[ -z "$generated" ] || fail "generated files are tracked in git (remove them with git rm --cached): $(tr '\n' ' ' <<<"$generated")"

if [ "$RELEASE" = check ]; then
    echo "ok: debian/changelog ($VERSION) follows CMakeLists.txt's project VERSION $CMAKE_VERSION"
    echo "ok: no generated file is tracked in git ($(git -C "$REPO" ls-files | wc -l) files)"
    exit 0
fi

say "exporting the tracked files of $REPO ($SOURCE $VERSION, $RELEASE)"
rm -rf "$W"
mkdir -p "$W"
SRC=$W/$SOURCE-$UPSTREAM
mkdir "$SRC"
# A tracked file deleted in the working copy is left out, as git would.
(cd "$REPO" && git ls-files -z | while IFS= read -r -d '' f; do
    if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null --no-recursion -T - -cf -) | tar -xf - -C "$SRC"
changed=$(git -C "$REPO" status --porcelain --untracked-files=no | wc -l)
[ "$changed" = 0 ] || say "note: $changed tracked file(s) differ from HEAD; their working-copy content is packaged"

# Timestamps from the changelog, for reproducible tarballs and a dated man page.
EPOCH=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Timestamp)
ORIG=${SOURCE}_$UPSTREAM.orig.tar.xz
tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner \
    --exclude="$SOURCE-$UPSTREAM/debian" -C "$W" -cJf "$W/$ORIG" "$SOURCE-$UPSTREAM"

# ---- 2. build --------------------------------------------------------------------

BUILD_ENV=(DEB_BUILD_OPTIONS="parallel=$JOBS")
DPKG_BUILD=(nice -n 10 dpkg-buildpackage -us -uc --build=full)

# lintian on a .changes: every tag is shown; an error or warning fails but
# for the allowed tags ($1, a regex). As nobody when this runs as root and
# nobody can reach and read the files (lintian advises against root); the
# check takes the absolute path, as lintian does: a checkout under a
# private directory (mktemp -d is 0700) is readable from its own
# directory, but not by that path.
LINTIAN_SH='
    cmd=(lintian --fail-on none --display-info "$2")
    nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=/tmp TMPDIR=/tmp LC_ALL=C.UTF-8)
    echo "lintian $(lintian --version | sed "s/^Lintian v//")"
    if [ "$(id -u)" = 0 ] && "${nobody[@]}" test -r "$PWD/$2"; then cmd=("${nobody[@]}" "${cmd[@]}"); fi
    out=$("${cmd[@]}" 2>&1) || { printf "%s\n" "$out"; echo "lintian itself failed"; exit 1; }
    printf "%s\n" "$out"
    bad=$(printf "%s\n" "$out" | grep -E "^[EW]: " | grep -vE "^[EW]: [^:]+: ($1)( |\$)" || true)
    allowed=$(printf "%s\n" "$out" | grep -cE "^[EW]: [^:]+: ($1)( |\$)" || true)
    [ "$allowed" = 0 ] || echo "($allowed allowed: $1)"
    [ -z "$bad" ] || exit 2'
run_lintian() {  # in the build environment
    bash -c "$LINTIAN_SH" _ "$LINTIAN_ALLOWED" "$1"
}

if [ "$RELEASE" = bookworm ]; then
    missing=$(cd "$SRC" && dpkg-checkbuilddeps 2>&1) \
        || fail "build dependencies missing (./dev deb installs them): $(sed 's/.*Unmet build dependencies: //' <<<"$missing")"
    say "dpkg-buildpackage (Debian 12, log: $W/build.log)"
    t_build=$SECONDS
    if ! (cd "$SRC" && env "${BUILD_ENV[@]}" "${DPKG_BUILD[@]}") > "$W/build.log" 2>&1; then
        tail -n 40 "$W/build.log" >&2
        fail "dpkg-buildpackage failed (log: $W/build.log)"
    fi
    t_build=$((SECONDS - t_build))
    say "lintian (Debian 12)"
    set +e
    (cd "$W" && run_lintian "${SOURCE}_${VERSION}_$(dpkg --print-architecture).changes") > "$W/lintian.txt" 2>&1
    lrc=$?
    set -e
else
    # ---- the Debian 13 environment ----
    . "$REPO/tests/compat/trixie_apt.sh"
    ROOT=$WORK/trixie-root
    # What the chroot holds: debian/control's Build-Depends (names only),
    # lintian, and python3, nginx and autopkgtest for the package test.
    bdeps=$(cd "$REPO" && perl -MDpkg::Control::Info -e '
        my $bd = Dpkg::Control::Info->new("debian/control")->get_source()->{"Build-Depends"};
        $bd =~ s/\s+/ /g;
        print join(",", map { (my $d = (split /\|/)[0]) =~ s/\(.*?\)|\[.*?\]|<.*?>|:\w+//g; $d =~ s/\s//g; $d } grep { /\S/ } split /,/, $bd);')
    INCLUDE="$bdeps,lintian,python3,nginx,autopkgtest"
    exec 9> "$WORK/trixie-root.lock"
    flock 9
    stamp_want="mmdebstrap buildd trixie main include=$INCLUDE"
    fresh=
    if [ -x "$ROOT/usr/bin/env" ] && [ -f "$ROOT.stamp" ] && [ "$(head -n1 "$ROOT.stamp")" = "$stamp_want" ] \
        && [ "${CONSENT_DEB_REFRESH:-0}" != 1 ]; then
        age=$(( $(date +%s) - $(stat -c %Y "$ROOT.stamp") ))
        [ "$age" -lt $((7 * 86400)) ] && fresh=1
    fi
    if [ -z "$fresh" ]; then
        trixie_apt_setup "$WORK/trixie-apt" deb
        if [ -x "$ROOT/usr/bin/env" ] && [ -f "$ROOT.stamp" ] && [ "$(head -n1 "$ROOT.stamp")" = "$stamp_want" ]; then
            # Due for a refresh, but a stale environment still builds: use it
            # when the archive cannot be reached.
            set +e
            ( trixie_apt_update "the cached environment is used" ) > "$WORK/trixie-apt.log" 2>&1
            urc=$?
            set -e
            if [ "$urc" != 0 ]; then
                cat "$WORK/trixie-apt.log" >&2
                say "using the Debian 13 environment made $(date -r "$ROOT.stamp" +%F), as the archive cannot be reached"
                fresh=1
            fi
        else
            trixie_apt_update "Debian 13 packages not built"
        fi
    fi
    if [ -z "$fresh" ]; then
        command -v mmdebstrap >/dev/null || fail "mmdebstrap not found (./dev deb installs it)"
        say "mmdebstrap: a Debian 13 build environment from $MIRROR (log: $WORK/trixie-root.log)"
        rm -rf "$ROOT" "$ROOT.new" "$ROOT.stamp"
        t_root=$SECONDS
        if ! nice -n 10 mmdebstrap --variant=buildd --mode=root --keyring="$KEYRING" \
                --include="$INCLUDE" --aptopt='Acquire::Retries "3"' \
                trixie "$ROOT.new" "deb $MIRROR trixie main" > "$WORK/trixie-root.log" 2>&1; then
            tail -n 30 "$WORK/trixie-root.log" >&2
            rm -rf "$ROOT.new"
            fail "mmdebstrap of Debian 13 failed (log: $WORK/trixie-root.log)"
        fi
        mv "$ROOT.new" "$ROOT"
        { echo "$stamp_want"; echo "made $(date -u +%FT%TZ) from $MIRROR in $((SECONDS - t_root))s"; } > "$ROOT.stamp"
        say "Debian 13 environment made in $((SECONDS - t_root))s"
    else
        say "using the Debian 13 environment in $ROOT ($(sed -n 2p "$ROOT.stamp"); CONSENT_DEB_REFRESH=1 makes it again)"
    fi
    flock -u 9

    # The Debian 13 build: VERSION+deb13u1.
    VERSION13=$VERSION+deb13u1
    {
        printf '%s (%s) trixie; urgency=medium\n\n' "$SOURCE" "$VERSION13"
        printf '  * Rebuild of %s for Debian 13 (trixie): nginx 1.26 ABI, hiredis 1.x.\n\n' "$VERSION"
        # One second after the entry it rebuilds: reproducible, and newer.
        printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Maintainer)" \
            "$(date -u -R -d "@$((EPOCH + 1))")"
        cat "$REPO/debian/changelog"
    } > "$SRC/debian/changelog"
    VERSION=$VERSION13

    say "dpkg-buildpackage in Debian 13 (no network; log: $W/build.log)"
    t_build=$SECONDS
    if ! "$REPO/tools/debview.sh" --root "$ROOT" --bind "$W:/build" --env "${BUILD_ENV[0]}" -- \
            bash -c 'cd "/build/$1" && dpkg-checkbuilddeps && shift && exec "$@"' _ \
            "$SOURCE-$UPSTREAM" "${DPKG_BUILD[@]}" > "$W/build.log" 2>&1; then
        tail -n 40 "$W/build.log" >&2
        fail "dpkg-buildpackage in Debian 13 failed (log: $W/build.log)"
    fi
    t_build=$((SECONDS - t_build))
    say "lintian (Debian 13)"
    set +e
    "$REPO/tools/debview.sh" --root "$ROOT" --bind "$W:/build" -- bash -c "cd /build && $LINTIAN_SH" _ \
        "$LINTIAN_ALLOWED" "${SOURCE}_${VERSION}_$(dpkg --print-architecture).changes" > "$W/lintian.txt" 2>&1
    lrc=$?
    set -e
fi

echo "---- lintian ($RELEASE): $W/lintian.txt"
cat "$W/lintian.txt"
[ "$lrc" = 0 ] || fail "lintian reports errors or warnings for the $RELEASE packages (exit $lrc)"

# ---- 3. the packages -------------------------------------------------------------

mkdir -p "$OUT"
find "$OUT" -maxdepth 1 -name '*.deb' -delete
debs=()
for f in "$W"/*_"$VERSION"_*.deb; do
    case "$f" in *-dbgsym_*) continue ;; esac
    cp "$f" "$OUT/"
    debs+=("$OUT/$(basename "$f")")
done
[ ${#debs[@]} -eq 2 ] || fail "expected 2 packages from the $RELEASE build, found ${#debs[@]} in $W"
say "$RELEASE packages (built in ${t_build}s, ${SECONDS}s in all; lintian clean):"
for f in "${debs[@]}"; do
    printf '    %s\n' "${f#"$REPO"/}" >&2
    dpkg-deb -f "$f" Package Version Depends | sed 's/^/        /' >&2
done
