#!/usr/bin/env bash
# The GPU check (issue 5): on a machine with an NVIDIA GPU, builds what the
# GPU tests need, runs them (the CUDA artifacts against the CPU artifacts
# within spec section 11's fp16 tolerance, the runtime's CUDA session) and
# times the GPU forward against the CPU's in the same run, then prints one
# table. Meant to finish within 8 minutes on a warm build directory.
#
#   scripts/gpu-check.sh [BUILD_DIR]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${HAG_BUILD_DIR:-$root/build}}
start=$(date +%s)

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L | grep -q 'GPU 0'; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L lists none)" >&2
  exit 1
fi
gpu=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader -i 0)
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader -i 0)
arch=sm_80
[ "$cap" = "9.0" ] && arch=sm_90a
echo "gpu-check: $gpu -> $arch" >&2

# Build (configure if needed) only what the GPU tests use.
if [ ! -f "$build/build.ninja" ]; then
  "$root/scripts/install-deps.sh" || exit 1
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit >/dev/null || exit 1
fi
ninja -C "$build" hag-opt hag-compile hag-run HAGRuntimeTests HAGCudaTargetTests \
  >/dev/null || { echo "gpu-check: build failed" >&2; exit 1; }

declare -a rows
record() { rows+=("$(printf '%-44s %-6s %s' "$1" "$2" "$3")"); }

# 1. The lit tests that need a GPU or ptxas (REQUIRES: cuda / ptxas).
lit=/usr/lib/llvm-22/bin/lit
command -v lit >/dev/null && lit=$(command -v lit)
for t in Integration/cuda-forward.test Integration/cuda-tensor-parallel.test \
    Tools/hag-compile-cuda.test Tools/cuda-emulator.test Conversion/cuda-pipeline.mlir; do
  out=$("$lit" -v "$build/test/$t" 2>&1)
  status=$(echo "$out" | grep -oE '^(PASS|FAIL|UNSUPPORTED|XFAIL|UNRESOLVED)' | head -1)
  record "lit $t" "${status:-ERROR}" ""
  [ "$status" = PASS ] || echo "$out" | tail -40 >&2
done

# 2. The runtime's CUDA session (device memory round trip).
out=$("$build/bin/HAGRuntimeTests" --gtest_filter='CudaSession.*:Nccl.*' 2>&1)
if echo "$out" | grep -q '\[  PASSED  \]' && ! echo "$out" | grep -q 'FAILED'; then
  record "HAGRuntimeTests CudaSession.* Nccl.*" PASS "$(echo "$out" | grep -c '\[  SKIPPED \] [A-Z]') skipped"
else
  record "HAGRuntimeTests CudaSession.* Nccl.*" FAIL ""
  echo "$out" | tail -20 >&2
fi

# 3. Forward of the attention-free LM on the GPU and on the CPU, same run.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$root/test/Tools/Inputs/mlp_lm.mlir
"$build/bin/hag-compile" "$model" -o "$tmp/cpu.hag" &&
"$build/bin/hag-compile" "$model" --target=cuda --gpu-arch=$arch -o "$tmp/gpu.hag" &&
"$build/bin/hag-run" "$tmp/cpu.hag" --init-weights 1 --save-weights "$tmp/w.safetensors" --quiet ||
  { echo "gpu-check: compiling the benchmark model failed" >&2; exit 1; }
python3 "$root/test/Tools/Inputs/npy.py" tokens "$tmp/tok.npy" '<i4' 8,2048 256
timeit() { # artifact device -> ms of the forward as hag-run reports it
  "$build/bin/hag-run" "$1" --device "$2" --weights "$tmp/w.safetensors" \
    --input "$tmp/tok.npy" --output "$tmp/out-$2.npy" 2>&1 |
    sed -n 's/.*forward \[8, 2048\] in \([0-9.]*\) ms.*/\1/p'
}
cpu_ms=$(timeit "$tmp/cpu.hag" cpu)
gpu_ms=$(timeit "$tmp/gpu.hag" cuda)
close=$(python3 "$root/test/Tools/Inputs/npy.py" close-rel "$tmp/out-cuda.npy" "$tmp/out-cpu.npy" 2e-2)
record "forward mlp_lm [8, 2048]: GPU vs CPU logits" "$([ "$close" = close ] && echo PASS || echo FAIL)" "$close"
record "forward mlp_lm [8, 2048]: CPU ms" "-" "${cpu_ms:-?}"
record "forward mlp_lm [8, 2048]: GPU ms (incl. weight upload)" "-" "${gpu_ms:-?}"

echo
echo "gpu-check on $gpu ($arch), $(( $(date +%s) - start )) s"
printf '%-44s %-6s %s\n' "check" "result" "detail"
for r in "${rows[@]}"; do echo "$r"; done
echo "$(printf '%s\n' "${rows[@]}" | grep -c ' FAIL ') failed"
printf '%s\n' "${rows[@]}" | grep -q ' FAIL \| ERROR ' && exit 1
exit 0
