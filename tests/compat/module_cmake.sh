# Sourced by nginx126_build.sh and nginx126_e2e.sh: configure the repository
# against a configured nginx tree, in a build directory of its own.
#
#   module_cmake_configure REPO NGX NGINX_VERSION B LOG
#       cmake -S REPO -B B -DNGINX_BUILD_DIR=NGX (Ninja when there is one and
#       B is new), output in LOG; fails unless cmake reports building against
#       NGINX_VERSION's headers in NGX. A B configured from another source
#       tree is removed first.
#
# The caller sets -euo pipefail and defines fail.

module_cmake_configure() {
    local repo=$1 ngx=$2 version=$3 b=$4 log=$5 gen=()
    if [ -f "$b/CMakeCache.txt" ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$repo" "$b/CMakeCache.txt"; then
        rm -rf "$b"
    fi
    if [ ! -f "$b/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
    cmake "${gen[@]}" -S "$repo" -B "$b" -DNGINX_BUILD_DIR="$ngx" \
        -DBUILD_TESTING=OFF -DCONSENT_BENCH=OFF > "$log" 2>&1 \
        || { cat "$log" >&2; fail "cmake configure failed"; }
    grep -qF "Building against nginx $version headers in $ngx" "$log" \
        || { cat "$log" >&2; fail "cmake did not pick up nginx $version from $ngx"; }
}
