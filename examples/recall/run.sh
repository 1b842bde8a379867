#!/usr/bin/env bash
# Long-range recall: trains the pyramid model (pyramid.yaml) and the same
# model with its raw window alone (local_only.yaml) on the task of
# make_recall.py, then reports each one's accuracy on the first questions of
# 64 held-out examples (answers more than 1024 tokens back). About 20
# minutes of CPU per model on a 2-core machine; see README.md.
# Usage: examples/recall/run.sh [OUT_DIR] [STEPS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${HAG_BUILD_DIR:-$root/build}
out=${1:-recall-out}
steps=${2:-}
mkdir -p "$out"
"$root/scripts/build.sh" "$build" >&2
bin=$build/bin

echo "== data: 16384 training examples, 64 evaluation examples"
python3 "$here/make_recall.py" "$out/train.bin" --examples 16384 --seed 1
python3 "$here/make_recall.py" "$out/eval.npy" --examples 64 --seed 2

for model in pyramid local_only; do
  echo "== $model: compile, train${steps:+ $steps steps}, evaluate"
  "$bin/hag-compile" "$here/$model.yaml" --train -o "$out/$model.hag"
  "$bin/hag-run" "$out/$model.hag" --train --data "$out/train.bin" \
    ${steps:+--steps "$steps"} --log "$out/$model.csv" \
    --checkpoint-dir "$out/checkpoints-$model" \
    --save-weights "$out/$model.safetensors"
  python3 "$here/evaluate.py" "$out/$model.hag" "$out/$model.safetensors" \
    "$out/eval.npy" --hag-run "$bin/hag-run" | tee "$out/$model.accuracy"
done

echo "== recall accuracy, answers > 1024 tokens back (chance 1/16 = 0.062)"
for model in pyramid local_only; do
  printf '%-11s %s\n' "$model" "$(cat "$out/$model.accuracy")"
done
