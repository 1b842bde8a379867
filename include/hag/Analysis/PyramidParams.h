//===- PyramidParams.h - Pyramid attention configuration --------*- C++ -*-===//
//
// The parameters of spec section 1 as a plain struct, with no MLIR dependency,
// so the dialect, the cost model, the frontend and (later) the runtime share
// one definition and one validation routine.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_ANALYSIS_PYRAMIDPARAMS_H
#define HAG_ANALYSIS_PYRAMIDPARAMS_H

#include <cstdint>
#include <string>

namespace hag {

/// How a compressed level is built from the level below (spec section 3).
enum class Compress : uint32_t { GatedMean = 0, Max = 1, Conv = 2 };

/// Returns "gated_mean", "max" or "conv".
const char *compressName(Compress mode);
/// Parses a compress mode name; returns false when `name` is none of them.
bool parseCompress(const std::string &name, Compress &mode);

/// The number of levels stored for `levels: auto`.
constexpr int64_t kAutoLevels = 0;
/// Bounds of spec section 1.
constexpr int64_t kMinLevels = 3, kMaxLevels = 12, kMaxSummary = 1024;

/// Every parameter of spec section 1 that is not a per-input value (N is).
struct PyramidParams {
  int64_t heads = 8;
  int64_t kvHeads = 8;
  int64_t headDim = 64;
  int64_t block = 64;
  int64_t ratio = 4;
  /// 3..12, or kAutoLevels.
  int64_t levels = 4;
  int64_t window = 64;
  int64_t summary = 64;
  double temperature = 0.1;
  Compress compress = Compress::GatedMean;
  bool causal = true;
  double massBias = 1.0;
  int64_t selectK = 0;
  double eps = 1e-6;
  /// The longest sequence an artifact serves; `levels: auto` resolves against
  /// it.
  int64_t maxSeq = 8192;
  /// An ablation (an extension of spec section 4): every query attends only
  /// to its level-1 window -- no compressed levels, no summary, no select_k.
  /// The weights are those of the full layer (the gate still sets the raw
  /// keys' mass bias), so a model trained either way has the same parameters.
  bool localOnly = false;

  bool isAutoLevels() const { return levels == kAutoLevels; }
  int64_t modelDim() const { return heads * headDim; }
  int64_t kvDim() const { return kvHeads * headDim; }

  /// What the attention walks at run time: L, T and select_k, or 2, 0 and 0
  /// for `localOnly` (level 1 alone; the level-building loops run over
  /// levels 2 .. L-1, so L = 2 builds none). `levels` is the resolved L.
  int64_t attendedLevels(int64_t levels) const {
    return localOnly ? 2 : levels;
  }
  int64_t attendedSummary() const { return localOnly ? 0 : summary; }
  int64_t attendedSelectK() const { return localOnly ? 0 : selectK; }
};

/// Checks every constraint of spec section 1. Returns an empty string when
/// `p` is valid, else a message naming the offending parameter and its value.
std::string validatePyramidParams(const PyramidParams &p);

} // namespace hag

#endif // HAG_ANALYSIS_PYRAMIDPARAMS_H
