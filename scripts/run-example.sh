#!/usr/bin/env bash
# The main job: builds HAG, compiles examples/tiny_lm.yaml into an artifact
# with its training step, trains it on the CPU (train: section: 300 steps of
# 8 x 256 byte tokens from a generated text; the loss falls from ln 256 =
# 5.55), runs the trained model (loss, incremental generation), and prints
# the cost report. Other models are compiled and run with initial weights.
# Usage: scripts/run-example.sh [MODEL.yaml] [SEQ]
# HAG_EXAMPLE_OUT=DIR keeps the artifact, weights, log and loss plot there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${HAG_BUILD_DIR:-$root/build}
model=${1:-$root/examples/tiny_lm.yaml}
seq=${2:-2048}

"$root/scripts/build.sh" "$build" >&2
if [ -n "${HAG_EXAMPLE_OUT:-}" ]; then
  out=$HAG_EXAMPLE_OUT
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
bin=$build/bin
npy=$root/test/Tools/Inputs/npy.py

train=
if grep -q "^train:" "$model" && grep -q "kind: lm" "$model"; then
  train=--train
fi
echo "== compile: $model -> model.hag ${train:+(with the training step)}"
"$bin/hag-compile" "$model" $train -o "$out/model.hag"
"$bin/hag-run" "$out/model.hag" | head -n 12

if [ -n "$train" ]; then
  echo "== train: generated text (examples/data/make_corpus.py), log, loss plot, checkpoints"
  python3 "$root/examples/data/make_corpus.py" "$out/corpus.txt"
  "$bin/hag-run" "$out/model.hag" --train --data "$out/corpus.txt" \
    --log "$out/train.csv" --plot "$out/loss.png" \
    --checkpoint-dir "$out/checkpoints" --save-weights "$out/weights.safetensors"
  echo "   log: $out/train.csv, loss curve: $out/loss.png"
else
  echo "== weights: --init-weights 0"
  "$bin/hag-run" "$out/model.hag" --init-weights 0 --save-weights "$out/weights.safetensors"
fi

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
    if [ -n "$train" ]; then
      echo "== generate: 120 tokens after a prompt, incremental decoding (trained weights)"
      "$bin/hag-run" "$out/model.hag" --weights "$out/weights.safetensors" \
        --generate --prompt "The pyramid" --max-tokens 120 --temperature 0.7 --seed 1
      echo
    else
      echo "== generate: 64 tokens after a prompt, incremental decoding (untrained weights)"
      "$bin/hag-run" "$out/model.hag" --weights "$out/weights.safetensors" \
        --generate --prompt "Pyramid attention" --max-tokens 64 --temperature 1.0 --seed 1 \
        | od -c | head -n 6
    fi
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
