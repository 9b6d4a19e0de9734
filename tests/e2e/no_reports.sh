#!/bin/bash
# no_reports.sh DIR: fails, printing them, when DIR holds sanitizer reports
# (the ASan build's log_path files of consentctl and copies of nginx's; see
# tests/CMakeLists.txt). A missing or empty DIR passes.
set -euo pipefail
dir=$1
[ -d "$dir" ] || { echo "no sanitizer reports ($dir does not exist)"; exit 0; }
mapfile -t files < <(find "$dir" -type f -size +0 | sort)
if [ ${#files[@]} -eq 0 ]; then
    echo "no sanitizer reports in $dir"
    exit 0
fi
for f in "${files[@]}"; do
    echo "=== $f"
    head -c 20000 "$f"
done
echo "FAIL: ${#files[@]} sanitizer report file(s) in $dir"
exit 1
