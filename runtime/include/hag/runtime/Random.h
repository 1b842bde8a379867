//===- Random.h - reproducible random numbers -------------------*- C++ -*-===//
//
// The runtime's own generators, so results are identical on every platform
// and standard library (std::mt19937 is portable, but the std distributions
// are not):
//
//  - SplitMix64 (Steele, Lea, Flood 2014; Vigna's reference constants):
//      state += 0x9e3779b97f4a7c15
//      z = state
//      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
//      z = (z ^ (z >> 27)) * 0x94d049bb133111eb
//      return z ^ (z >> 31)
//    Its n-th output (n = 0, 1, ...) is mix(seed + (n + 1) * gamma), so any
//    output can be computed directly: splitMix64At(seed, n).
//  - xoshiro256** 1.0 (Blackman and Vigna 2018), seeded with four SplitMix64
//    outputs, for long sequential streams.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_RANDOM_H
#define HAG_RUNTIME_RANDOM_H

#include <cstdint>

namespace hag::rt {

namespace detail {
/// 128-bit unsigned integer (a GCC/Clang extension; __extension__ keeps
/// -pedantic quiet in user code).
__extension__ typedef unsigned __int128 Uint128;
} // namespace detail

/// SplitMix64's output function (a bijective 64-bit mix).
inline uint64_t splitMix64Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// The `index`-th output (0-based) of SplitMix64 seeded with `seed`.
inline uint64_t splitMix64At(uint64_t seed, uint64_t index) {
  return splitMix64Mix(seed + (index + 1) * 0x9e3779b97f4a7c15ULL);
}

/// Maps a uniform 64-bit value to [0, bound) by a 128-bit multiply (Lemire);
/// the bias is below bound / 2^64.
inline uint64_t scaleToRange(uint64_t x, uint64_t bound) {
  return static_cast<uint64_t>((static_cast<detail::Uint128>(x) * bound) >> 64);
}

/// The SplitMix64 generator.
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    state += 0x9e3779b97f4a7c15ULL;
    return splitMix64Mix(state);
  }

private:
  uint64_t state;
};

/// The xoshiro256** 1.0 generator.
class Xoshiro256 {
public:
  /// Seeds the four state words with the first four SplitMix64(seed) outputs
  /// (the seeding its authors recommend; never all zero).
  explicit Xoshiro256(uint64_t seed) {
    SplitMix64 sm(seed);
    for (uint64_t &w : s)
      w = sm.next();
  }

  /// The next 64 random bits.
  uint64_t next() {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }

  /// Uniform in [0, bound) without bias (Lemire's method with rejection);
  /// bound must be positive.
  uint64_t uniform(uint64_t bound) {
    detail::Uint128 m = static_cast<detail::Uint128>(next()) * bound;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < bound) {
      uint64_t threshold = -bound % bound;
      while (low < threshold) {
        m = static_cast<detail::Uint128>(next()) * bound;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniformDouble() {
    return static_cast<double>(next() >> 11) * 0x1.0p-53;
  }

private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s[4];
};

} // namespace hag::rt

#endif // HAG_RUNTIME_RANDOM_H
