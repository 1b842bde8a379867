#!/usr/bin/env bash
# The main job: builds HAG, compiles examples/tiny_lm.yaml through the hag
# phase and prints its cost report at a 2048-token context.
# Usage: scripts/run-example.sh [MODEL.yaml] [SEQ]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${HAG_BUILD_DIR:-$root/build}
model=${1:-$root/examples/tiny_lm.yaml}
seq=${2:-2048}

"$root/scripts/build.sh" "$build" >&2
out=$(mktemp -d)
"$build/bin/hag-compile" "$model" --compile-to=hag -o "$out/model.mlir"
echo "compiled $model -> $out/model.mlir ($(grep -c 'hag\.' "$out/model.mlir") hag ops)"
"$build/bin/hag-compile" "$model" --report=cost --seq "$seq"
