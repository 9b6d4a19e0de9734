#!/bin/bash
# build.sh ROOT BUILD_DIR: configures (once) and builds the libFuzzer targets
# with clang into BUILD_DIR (build-fuzz/ by convention). The normal build
# stays gcc. Exits 77 (ctest: skipped) when clang or its fuzzer runtime
# (libclang-rt-14-dev) is missing; ./dev fuzz and ./dev build install them.
set -euo pipefail
root=$1 dir=$2

cxx= cc=
for v in -14 ""; do
    if command -v "clang++$v" >/dev/null && command -v "clang$v" >/dev/null; then
        cxx=clang++$v cc=clang$v
        break
    fi
done
if [ -z "$cxx" ]; then
    echo "build.sh: clang is not installed; skipping the fuzzers" >&2
    exit 77
fi
# The fuzzer runtime comes with libclang-rt-14-dev, not with clang itself.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$probe/p.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
    echo "build.sh: $cxx cannot link -fsanitize=fuzzer (install libclang-rt-14-dev); skipping the fuzzers" >&2
    sed 's/^/  /' "$probe/err" >&2
    exit 77
fi

if [ ! -f "$dir/CMakeCache.txt" ]; then
    CC=$cc CXX=$cxx cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONSENT_FUZZ=ON \
        -DBUILD_TESTING=OFF -DCONSENT_BENCH=OFF >/dev/null
fi
cmake --build "$dir" --target consent_fuzzers -j "$(nproc 2>/dev/null || echo 2)"
