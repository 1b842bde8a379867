#!/usr/bin/env bash
# Installs, builds and runs every test: lit (FileCheck) and the GoogleTest
# suites, all through ctest, which ends with its passed/failed summary line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${HAG_BUILD_DIR:-$root/build}

"$root/scripts/build.sh" "$build"
start=$(date +%s)
cd "$build"
status=0
ctest --output-on-failure -j "$(nproc)" || status=$?
echo "tests: done in $(( $(date +%s) - start )) s" >&2
exit $status
