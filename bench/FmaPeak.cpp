//===- FmaPeak.cpp - the machine's fp32 FMA peak --------------------------===//
//
// Each kernel keeps 16 independent accumulator chains acc = acc * a + b in
// registers; with a < 1 the chains converge to b / (1 - a), so there are no
// overflows or denormals to slow them down. Without -ffast-math the compiler
// may not fold or reassociate the chains, but it does see that the chains
// are independent copies of one recurrence: clang 22 kept 9 of the 16 (its
// loop ran 9 FMAs per iteration while the rate counted 16, so the "peak"
// came out 16/9 too high). An empty asm statement makes each initial value
// opaque, so all 16 chains exist in the loop (16 vfmadd per iteration in
// the disassembly; 213 GFLOP/s per core here, i.e. 64 flops per cycle at
// 3.3 GHz).
//
//===----------------------------------------------------------------------===//

#include "FmaPeak.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace hag::bench;

namespace {

constexpr int kChains = 16;

double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

#if defined(__x86_64__)
/// `iters` x 16 x 16 fp32 FMAs; returns a value that depends on all of them.
__attribute__((target("avx512f"), noinline)) float
fmaLoopAvx512(int64_t iters) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) {
    acc[j] = _mm512_set1_ps(0.5f + 0.01f * j);
    asm volatile("" : "+v"(acc[j]));
  }
  const __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j)
      acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  __m512 sum = acc[0];
  for (int j = 1; j < kChains; ++j)
    sum = _mm512_add_ps(sum, acc[j]);
  return _mm512_reduce_add_ps(sum);
}

/// `iters` x 16 x 8 fp32 FMAs.
__attribute__((target("avx2,fma"), noinline)) float fmaLoopAvx2(int64_t iters) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) {
    acc[j] = _mm256_set1_ps(0.5f + 0.01f * j);
    asm volatile("" : "+v"(acc[j]));
  }
  const __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j)
      acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  __m256 sum = acc[0];
  for (int j = 1; j < kChains; ++j)
    sum = _mm256_add_ps(sum, acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float s = 0;
  for (float v : lanes)
    s += v;
  return s;
}
#endif

/// The portable fallback (whatever the compiler makes of it).
__attribute__((noinline)) float fmaLoopScalar(int64_t iters) {
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) {
    acc[j] = 0.5f + 0.01f * j;
#if defined(__GNUC__)
    asm volatile("" : "+m"(acc[j]));
#endif
  }
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j)
      acc[j] = acc[j] * 0.9999999f + 1e-7f;
  float s = 0;
  for (float v : acc)
    s += v;
  return s;
}

} // namespace

FmaPeak hag::bench::measureFmaPeak(int threads, double seconds) {
  FmaPeak peak;
  peak.threads = threads < 1 ? 1 : threads;
  float (*loop)(int64_t) = fmaLoopScalar;
  peak.kernel = "scalar";
  peak.lanes = 1;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    loop = fmaLoopAvx512;
    peak.kernel = "avx512f (16 x __m512)";
    peak.lanes = 16;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    loop = fmaLoopAvx2;
    peak.kernel = "avx2+fma (16 x __m256)";
    peak.lanes = 8;
  }
#endif
  const double flopsPerIter = 2.0 * kChains * peak.lanes;
  std::vector<double> rates(peak.threads, 0.0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<float> sink{0.0f};
  auto worker = [&](int t) {
    ready.fetch_add(1);
    while (!go.load())
      std::this_thread::yield();
    // Calibrate a chunk of about 10 ms, then run chunks until `seconds`.
    int64_t chunk = 1 << 16;
    float s = loop(chunk);
    double start = now(), flops = 0.0;
    while (true) {
      double t0 = now();
      s += loop(chunk);
      double dt = now() - t0;
      flops += flopsPerIter * static_cast<double>(chunk);
      if (dt < 0.005)
        chunk *= 2;
      if (now() - start >= seconds)
        break;
    }
    rates[t] = flops / (now() - start) * 1e-9;
    float expected = sink.load();
    while (!sink.compare_exchange_weak(expected, expected + s))
      ;
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < peak.threads; ++t)
    pool.emplace_back(worker, t);
  while (ready.load() < peak.threads)
    std::this_thread::yield();
  go.store(true);
  for (std::thread &th : pool)
    th.join();
  for (double r : rates)
    peak.gflops += r;
  return peak;
}
