#!/usr/bin/env bash
# The main job: builds HAG, compiles examples/tiny_lm.yaml into an artifact,
# initialises its weights (spec section 7), runs the compiled model on the
# CPU over a text (logits and the mean next-token loss, which at
# initialisation is about ln 256 = 5.55), and prints the cost report.
# Usage: scripts/run-example.sh [MODEL.yaml] [SEQ]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${HAG_BUILD_DIR:-$root/build}
model=${1:-$root/examples/tiny_lm.yaml}
seq=${2:-2048}

"$root/scripts/build.sh" "$build" >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bin=$build/bin
npy=$root/test/Tools/Inputs/npy.py

echo "== compile: $model -> model.hag"
"$bin/hag-compile" "$model" -o "$out/model.hag"
"$bin/hag-run" "$out/model.hag" | head -n 12

echo "== weights: --init-weights 0"
"$bin/hag-run" "$out/model.hag" --init-weights 0 --save-weights "$out/weights.safetensors"

if grep -q "kind: lm" "$model"; then
  text="HAG compiles pyramid attention: every query sees a window of every level and a global summary."
  python3 "$npy" text "$out/tokens.npy" "<i4" "$text"
  echo "== run: forward and loss over $(printf %s "$text" | wc -c) byte tokens"
  "$bin/hag-run" "$out/model.hag" --weights "$out/weights.safetensors" \
    --input "$out/tokens.npy" --output "$out/logits.npy"
  python3 "$npy" show "$out/logits.npy"
  "$bin/hag-run" "$out/model.hag" --weights "$out/weights.safetensors" \
    --input "$out/tokens.npy" --entry loss
  if grep -q "causal: false" "$model"; then
    echo "== generate: skipped (bidirectional attention has no incremental decoding)"
  else
    echo "== generate: 64 tokens after a prompt, incremental decoding (untrained weights)"
    "$bin/hag-run" "$out/model.hag" --weights "$out/weights.safetensors" \
      --generate --prompt "Pyramid attention" --max-tokens 64 --temperature 1.0 --seed 1 \
      | od -c | head -n 6
  fi
else
  python3 "$npy" sine "$out/x.npy" "1,$seq,$(grep -m1 d_model "$model" | awk '{print $2}')"
  echo "== run: forward over x [1, $seq, D]"
  "$bin/hag-run" "$out/model.hag" --weights "$out/weights.safetensors" \
    --input "$out/x.npy" --output "$out/y.npy"
  python3 "$npy" show "$out/y.npy"
fi

echo "== cost report at N = $seq"
"$bin/hag-compile" "$model" --report=cost --seq "$seq"
