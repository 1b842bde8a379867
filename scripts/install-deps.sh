#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of HAG from Debian's packages.
# Idempotent: packages already present are skipped by apt-get. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

PKGS=(
  # LLVM/MLIR 22: libMLIR.so, TableGen, lit, FileCheck, mlir-opt.
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools clang-22 libomp-22-dev
  # Build system.
  cmake ninja-build ccache
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev
  # Reference implementation and benchmark peer; OpenBLAS so LibTorch's BLAS is not the reference one.
  libtorch-dev libopenblas0-pthread
  # Multi-process runtime.
  libopenmpi-dev openmpi-bin
  # Misc tools used by tests and training plots.
  python3 zlib1g-dev libzstd-dev gnuplot-nox
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present" >&2
fi
