//===- FmaPeak.h - the machine's fp32 FMA peak ------------------*- C++ -*-===//
//
// Measures the fp32 FMA throughput the cores can sustain: a loop of
// independent vector FMAs (16 accumulators, enough to cover the FMA latency
// on two ports), the widest vectors the CPU has (AVX-512 or AVX2+FMA, picked
// at run time with __builtin_cpu_supports), on one thread and on several.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_BENCH_FMAPEAK_H
#define HAG_BENCH_FMAPEAK_H

#include <string>

namespace hag::bench {

/// One measurement of the FMA peak.
struct FmaPeak {
  /// "avx512f (16 x __m512)", "avx2+fma (16 x __m256)" or "scalar".
  std::string kernel;
  /// fp32 lanes per vector.
  int lanes = 1;
  int threads = 1;
  /// 2 FLOPs per FMA per lane.
  double gflops = 0.0;
};

/// Runs the FMA loop on `threads` threads at once for about `seconds` and
/// returns the sum of their rates.
FmaPeak measureFmaPeak(int threads, double seconds);

} // namespace hag::bench

#endif // HAG_BENCH_FMAPEAK_H
