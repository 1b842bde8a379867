#!/usr/bin/env bash
# The GPU check (issue 5). Two halves, because a GPU machine need not have
# the compiler's toolchain (LLVM/MLIR 22):
#
#   scripts/gpu-check.sh --prepare DIR [--gpu-arch sm_90a] [BUILD_DIR]
#       on the build machine: compiles the CUDA artifacts of every example
#       and their CPU twins, makes weights and inputs, runs the CPU artifacts
#       (the references), and copies hag-run, hag-bench-gpu, HAGRuntimeTests
#       with the shared libraries they need into DIR (a self-contained
#       bundle, ~20 MB).
#   scripts/gpu-check.sh --run DIR
#       on the GPU machine (needs the NVIDIA driver and python3; PyTorch with
#       cuDNN for the peer of the benchmark): runs the GPU entries against
#       the CPU references within spec section 11's fp16 tolerance (2e-2
#       relative), decoding on the GPU, the runtime's CUDA tests, then the
#       benchmark (bench/gpu_bench.py: HAG vs cuDNN fused attention), and
#       prints one table. Well within 8 minutes on an H100/H200.
#   scripts/gpu-check.sh [BUILD_DIR]
#       both on one machine that has the toolchain and a GPU.
#
# Exit status: 0 when every check passed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

mode=both dir= arch= build=
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) mode=prepare; dir=${2:?--prepare needs a directory}; shift ;;
    --run) mode=run; dir=${2:?--run needs a directory}; shift ;;
    --gpu-arch) arch=${2:?--gpu-arch needs sm_80 or sm_90a}; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
build=${build:-${HAG_BUILD_DIR:-$root/build}}

#===------------------------------------------------------------------------===#
# Prepare: everything that needs the compiler.
#===------------------------------------------------------------------------===#
prepare() {
  local out=$1
  if [ -z "$arch" ]; then
    arch=sm_90a
    if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q 'GPU 0'; then
      [ "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader -i 0)" = 9.0 ] || arch=sm_80
    fi
  fi
  if [ ! -f "$build/build.ninja" ]; then
    "$root/scripts/build.sh" "$build" || return 1
  fi
  ninja -C "$build" hag-compile hag-run hag-bench-gpu HAGRuntimeTests \
    HAGRuntimeModelTests >/dev/null ||
    { echo "gpu-check: build failed" >&2; return 1; }
  rm -rf "$out" && mkdir -p "$out"/{bin,lib,lib-cxx,art,art-test,data,py} || return 1
  local b=$build/bin compile=$build/bin/hag-compile run=$build/bin/hag-run
  local npy="python3 $root/test/Tools/Inputs/npy.py"
  echo "gpu-check: preparing $out for $arch" >&2

  # Models: NAME SOURCE INPUT(shape or "x") [extra entries].
  # lm inputs are token ids; "xB,N,D" is an f32 input x [B, N, D].
  local -a models=(
    "mlp_lm $root/test/Tools/Inputs/mlp_lm.mlir 3,300"
    "tiny_lm $root/examples/tiny_lm.yaml 2,700"
    "conv_gqa_lm $root/examples/conv_gqa_lm.yaml 2,500"
    "bidirectional_encoder $root/examples/bidirectional_encoder.yaml x2,400,256"
    "pyramid_attention $root/examples/pyramid_attention.yaml x1,2000,512"
    "pyramid_bidirectional $out/data/pyramid_bidirectional.yaml x2,1000,512"
  )
  # The example layer bidirectional with select_k: the Tensor Core
  # attention's right windows and picks from both sides.
  { cat "$root/examples/pyramid_attention.yaml" &&
      printf 'attention:\n  causal: false\n  select_k: 3\n'; } \
    >"$out/data/pyramid_bidirectional.yaml" || return 1
  local seed=3 line name src shape
  for line in "${models[@]}"; do
    read -r name src shape <<<"$line"
    seed=$((seed + 1))
    "$compile" "$src" -o "$out/art/$name.cpu.hag" &&
      "$compile" "$src" --target=cuda --gpu-arch=$arch -o "$out/art/$name.gpu.hag" ||
      { echo "gpu-check: compiling $name failed" >&2; return 1; }
    # Spec section 7's initialisation is deterministic: the GPU side makes
    # the same weights from the seed (no weight files to carry).
    echo $seed >"$out/data/$name.seed"
    if [ "${shape:0:1}" = x ]; then
      $npy sine "$out/data/$name.in.npy" "${shape:1}" || return 1
    else
      $npy tokens "$out/data/$name.in.npy" '<i4' "$shape" 256 $seed || return 1
    fi
    "$run" "$out/art/$name.cpu.hag" --init-weights $seed \
      --input "$out/data/$name.in.npy" --output "$out/data/$name.cpu.npy" --quiet ||
      return 1
    if [ "${shape:0:1}" != x ]; then
      "$run" "$out/art/$name.cpu.hag" --init-weights $seed \
        --input "$out/data/$name.in.npy" --entry loss 2>/dev/null |
        sed -n 's/^loss //p' >"$out/data/$name.cpu.loss" || return 1
    fi
    rm -f "$out/art/$name.cpu.hag"
    # f32 inputs are regenerated on the GPU side (the same bits): the
    # bundle travels in 64 MiB.
    if [ "${shape:0:1}" = x ]; then
      echo "${shape:1}" >"$out/data/$name.sine" && rm -f "$out/data/$name.in.npy" || return 1
    fi
  done
  # Training on the GPU: the CPU artifact's first steps are the reference
  # (same seed, same corpus): train_lm (every level, the summary and
  # select_k at seq 48) in fp32 and fp16-mixed, and tiny_lm.
  python3 "$root/examples/data/make_corpus.py" "$out/data/corpus.txt" --bytes 200000 >/dev/null ||
    return 1
  sed -e 's/^train:/train:\n  precision: fp16-mixed/' "$root/test/Tools/Inputs/train_lm.yaml" \
    >"$out/data/train_lm_fp16.yaml" || return 1
  local tname tsrc
  for line in "train_lm $root/test/Tools/Inputs/train_lm.yaml" \
    "train_lm_fp16 $out/data/train_lm_fp16.yaml" "tiny_lm_train $root/examples/tiny_lm.yaml"; do
    read -r tname tsrc <<<"$line"
    "$compile" "$tsrc" --train -o "$out/art/$tname.cpu.train.hag" &&
      "$compile" "$tsrc" --train --target=cuda --gpu-arch=$arch -o "$out/art/$tname.gpu.train.hag" ||
      { echo "gpu-check: compiling $tname --train failed" >&2; return 1; }
    "$run" "$out/art/$tname.cpu.train.hag" --train --data "$out/data/corpus.txt" --steps 6 \
      --init-weights 3 --log "$out/data/$tname.cpu.csv" --checkpoint-dir "$out/ckpt-$tname" --quiet ||
      return 1
    rm -rf "$out/art/$tname.cpu.train.hag" "$out/ckpt-$tname"
  done
  # The benchmark's artifact: the example layer with max_seq 128K.
  sed 's/max_seq: 65536/max_seq: 131072/' "$root/examples/pyramid_attention.yaml" \
    >"$out/data/pa128k.yaml"
  grep -q 'max_seq: 131072' "$out/data/pa128k.yaml" ||
    { echo "gpu-check: examples/pyramid_attention.yaml has no 'max_seq: 65536' to raise to 128K" >&2; return 1; }
  "$compile" "$out/data/pa128k.yaml" --target=cuda --gpu-arch=$arch \
    -o "$out/art/bench.gpu.hag" || return 1
  "$compile" "$out/data/pa128k.yaml" --target=cuda --gpu-arch=$arch \
    --report=kernels >"$out/data/bench.kernels.txt" 2>&1 || true
  # The runtime's ModelCuda.* tests take their artifact from art-test.
  for name in pyramid_attention tiny_lm; do
    "$compile" "$root/examples/$name.yaml" --target=cuda --gpu-arch=$arch \
      -o "$out/art-test/${name}_cuda.hag" || return 1
  done

  # Programs and the libraries they need beyond the C runtime (libstdc++ and
  # libgcc_s go to lib-cxx: used only when the GPU machine's are older).
  cp "$b/hag-run" "$b/hag-bench-gpu" "$b/HAGRuntimeTests" "$b/HAGRuntimeModelTests" \
    "$out/bin/" || return 1
  local lib
  for lib in $(ldd "$out"/bin/* | awk '/=> \//{print $3}' | sort -u); do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*) ;;
      libstdc++.so*|libgcc_s.so*) cp -L "$lib" "$out/lib-cxx/" ;;
      *) cp -L "$lib" "$out/lib/" ;;
    esac
  done
  # The artifacts' host code needs the OpenMP runtime it was compiled for.
  local omp
  omp=$(ls /usr/lib/llvm-22/lib/libomp.so.5 /usr/lib/x86_64-linux-gnu/libomp.so.5 2>/dev/null | head -1)
  [ -n "$omp" ] && cp -L "$omp" "$out/lib/" ||
    { echo "gpu-check: libomp.so.5 not found (the artifacts need it)" >&2; return 1; }
  cp "$root/test/Tools/Inputs/npy.py" "$root/test/Tools/Inputs/train_log.py" \
    "$root/bench/gpu_bench.py" "$out/py/" &&
    cp "$0" "$out/gpu-check.sh" || return 1
  echo "$arch" >"$out/arch"
  echo "gpu-check: bundle ready: $out ($(du -sh "$out" | cut -f1))" >&2
}

#===------------------------------------------------------------------------===#
# Run: everything that needs the GPU (and nothing of the compiler).
#===------------------------------------------------------------------------===#
run_checks() {
  local d=$1 start
  start=$(date +%s)
  if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L | grep -q 'GPU 0'; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L lists none)" >&2
    return 1
  fi
  local gpu
  gpu=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader -i 0)
  echo "gpu-check: $gpu; bundle for $(cat "$d/arch")" >&2
  export LD_LIBRARY_PATH=$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  [ -d /usr/local/cuda/bin ] && export PATH=$PATH:/usr/local/cuda/bin
  if ! "$d/bin/hag-run" --version >/dev/null 2>&1; then
    export LD_LIBRARY_PATH=$d/lib-cxx:$LD_LIBRARY_PATH
    "$d/bin/hag-run" --version >/dev/null ||
      { ldd "$d/bin/hag-run" >&2; echo "gpu-check: hag-run does not start here" >&2; return 1; }
  fi
  # Every GPU call has a time limit: a hang is a failed check, not a stuck
  # script.
  hr() { timeout 120 "$d/bin/hag-run" "$@"; }
  local npy="python3 $d/py/npy.py" tmp
  tmp=$(mktemp -d)
  declare -a rows=()
  record() { rows+=("$(printf '%-46s %-6s %s' "$1" "$2" "$3")"); }

  # 1. The runtime's CUDA session and NCCL (PyTorch's wheel carries
  #    libnccl.so.2 where the system has none).
  local out nccl
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
  [ -n "$nccl" ] && [ -e "$nccl/libnccl.so.2" ] && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$nccl
  out=$(timeout 120 "$d/bin/HAGRuntimeTests" --gtest_filter='CudaSession.*:Nccl.*:CudaDriver*' 2>&1)
  if echo "$out" | grep -q '\[  PASSED  \]' && ! echo "$out" | grep -q '\[  FAILED  \]'; then
    local skipped
    skipped=$(echo "$out" | sed -n 's/^\[  SKIPPED \] \([A-Za-z]*\.[A-Za-z]*\).*/\1/p' | sort -u | tr '\n' ' ')
    record "HAGRuntimeTests CudaSession.* Nccl.*" PASS \
      "$(echo "$out" | grep -oE 'PASSED  \] [0-9]+ tests?' | tail -1)${skipped:+; skipped: $skipped}"
  else
    record "HAGRuntimeTests CudaSession.* Nccl.*" FAIL ""
    echo "$out" | tail -30 >&2
  fi

  # 1b. The runtime's Model on CUDA artifacts (weights and decoding caches
  # kept on the device).
  out=$(HAGRT_TEST_ARTIFACT_DIR=$d/art-test timeout 120 "$d/bin/HAGRuntimeModelTests" \
    --gtest_filter='ModelCuda.*' 2>&1)
  if echo "$out" | grep -q '\[  PASSED  \] [1-9][0-9]* test' && ! echo "$out" | grep -q 'SKIPPED\|FAILED'; then
    record "HAGRuntimeModelTests ModelCuda.*" PASS "weights rebound on the device; decoding caches kept there"
  else
    record "HAGRuntimeModelTests ModelCuda.*" FAIL ""
    echo "$out" | tail -20 >&2
  fi

  # 2. Every model: the GPU forward (and loss) against the CPU artifact.
  local f name w in log rel loss ref ms
  for f in "$d"/art/*.gpu.hag; do
    name=$(basename "$f" .gpu.hag)
    [ "$name" = bench ] && continue
    w=$(cat "$d/data/$name.seed") in=$d/data/$name.in.npy
    if [ -f "$d/data/$name.sine" ]; then
      in=$tmp/$name.in.npy
      $npy sine "$in" "$(cat "$d/data/$name.sine")"
    fi
    log=$(hr "$f" --device cuda --init-weights "$w" --input "$in" \
      --output "$tmp/$name.gpu.npy" 2>&1)
    if [ $? -ne 0 ]; then
      record "forward $name" FAIL "$(echo "$log" | tail -1)"
      echo "$log" | tail -5 >&2
      continue
    fi
    ms=$(echo "$log" | sed -n 's/.*forward \(\[[^]]*\]\) in \([0-9.]*\) ms\(.*\)/\1 \2 ms\3/p')
    rel=$($npy rel-diff "$tmp/$name.gpu.npy" "$d/data/$name.cpu.npy")
    if python3 -c "import sys; sys.exit(0 if float('$rel') <= 2e-2 else 1)" 2>/dev/null; then
      record "forward $name vs CPU (rel. max diff)" PASS "$rel; $ms"
    else
      record "forward $name vs CPU (rel. max diff)" FAIL "$rel; $ms"
      # Where the GPU's memory checker is at hand, say what it sees.
      if command -v compute-sanitizer >/dev/null; then
        timeout 90 compute-sanitizer --tool memcheck --print-limit 5 "$d/bin/hag-run" "$f" --device cuda \
          --init-weights "$w" --input "$in" --output "$tmp/$name.san.npy" --quiet 2>&1 |
          tail -25 >&2
      fi
    fi
    # A second call gives the same bits.
    hr "$f" --device cuda --init-weights "$w" --input "$in" \
      --output "$tmp/$name.gpu2.npy" --quiet 2>/dev/null
    if [ "$($npy close "$tmp/$name.gpu2.npy" "$tmp/$name.gpu.npy" 0)" = close ]; then
      record "forward $name: second call identical" PASS ""
    else
      record "forward $name: second call identical" FAIL ""
    fi
    if [ -s "$d/data/$name.cpu.loss" ]; then
      ref=$(cat "$d/data/$name.cpu.loss")
      loss=$(hr "$f" --device cuda --init-weights "$w" --input "$in" --entry loss 2>/dev/null |
        sed -n 's/^loss //p')
      if [ -n "$loss" ] && python3 -c "import sys; sys.exit(0 if abs($loss - $ref) <= 2e-2 * abs($ref) else 1)"; then
        record "loss $name vs CPU" PASS "$loss vs $ref"
      else
        record "loss $name vs CPU" FAIL "${loss:-error} vs $ref"
      fi
    fi
  done

  # 3. Decoding on the GPU: greedy tokens are the argmax of the GPU
  #    forward's logits over the generated sequence.
  for name in tiny_lm conv_gqa_lm; do
    f=$d/art/$name.gpu.hag w=$(cat "$d/data/$name.seed" 2>/dev/null)
    [ -f "$f" ] || continue
    log=$(hr "$f" --device cuda --init-weights "$w" --generate --prompt "The pyramid" \
      --max-tokens 60 --output "$tmp/$name.ids.npy" 2>&1 >/dev/null)
    if [ $? -ne 0 ]; then
      record "generate $name (60 tokens)" FAIL "$(echo "$log" | tail -1)"
      continue
    fi
    hr "$f" --device cuda --init-weights "$w" --input "$tmp/$name.ids.npy" \
      --output "$tmp/$name.glog.npy" --quiet
    out=$($npy greedy "$tmp/$name.ids.npy" "$tmp/$name.glog.npy" 11)
    if echo "$out" | grep -q '^position'; then
      record "generate $name: greedy = argmax of forward" FAIL "$(echo "$out" | head -1)"
    else
      record "generate $name: greedy = argmax of forward" PASS \
        "$(echo "$out" | tail -1); $(echo "$log" | grep -o 'generated.*' | head -1)"
    fi
  done

  # 3b. Training on the GPU (the backward kernels, the optimizer, the
  #     step's scalars read back) against the CPU artifact's steps, within
  #     the fp16 tolerance.
  for f in "$d"/art/*.gpu.train.hag; do
    name=$(basename "$f" .gpu.train.hag)
    log=$(timeout 300 "$d/bin/hag-run" "$f" --device cuda --train --data "$d/data/corpus.txt" \
      --steps 6 --init-weights 3 --log "$tmp/$name.csv" --checkpoint-dir "$tmp/ckpt-$name" 2>&1)
    if [ $? -ne 0 ]; then
      record "train $name (6 steps)" FAIL "$(echo "$log" | tail -1)"
      echo "$log" | tail -5 >&2
      continue
    fi
    out=$(python3 "$d/py/train_log.py" close "$d/data/$name.cpu.csv" "$tmp/$name.csv" 2e-2)
    record "train $name: 6 GPU steps vs CPU" "$([ $? = 0 ] && echo PASS || echo FAIL)" \
      "$out; $(echo "$log" | grep -o 'trained.*tok/s' | tail -1)"
  done

  # 4. The benchmark (HAG vs cuDNN).
  echo >&2
  timeout 300 python3 "$d/py/gpu_bench.py" --hag-bench "$d/bin/hag-bench-gpu" \
    --artifact "$d/art/bench.gpu.hag" ${GPU_CHECK_SIZES:+--sizes $GPU_CHECK_SIZES} \
    ${GPU_CHECK_REPEAT:+--repeat $GPU_CHECK_REPEAT}
  local bench_rc=$?
  record "benchmark (bench/gpu_bench.py)" "$([ $bench_rc = 0 ] && echo PASS || echo FAIL)" \
    "$([ $bench_rc = 0 ] && echo "HAG's outputs finite, every cuDNN measurement ran" || echo "see the benchmark's output above")"

  echo
  echo "gpu-check on $gpu ($(cat "$d/arch")), $(( $(date +%s) - start )) s"
  printf '%-46s %-6s %s\n' "check" "result" "detail"
  local r
  for r in "${rows[@]}"; do echo "$r"; done
  local failed
  failed=$(printf '%s\n' "${rows[@]}" | grep -c ' FAIL ')
  echo "$failed failed"
  rm -rf "$tmp"
  [ "$failed" = 0 ]
}

case $mode in
  prepare) prepare "$dir" ;;
  run) run_checks "$dir" ;;
  both)
    bundle=$(mktemp -d)
    trap 'rm -rf "$bundle"' EXIT
    prepare "$bundle" && run_checks "$bundle" ;;
esac
