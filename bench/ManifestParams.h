//===- ManifestParams.h - an artifact's attention layer, for the benches -===//
//
// The pyramid parameters of an attention-kind artifact, read from its
// manifest, so that a benchmark counts the FLOPs of exactly the layer it
// runs (hag::countKeys over these parameters).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_BENCH_MANIFESTPARAMS_H
#define HAG_BENCH_MANIFESTPARAMS_H

#include "hag/Analysis/PyramidParams.h"

#include <string>

namespace hag::rt {
struct ArtifactManifest;
} // namespace hag::rt

namespace hag::bench {

/// The attention of `manifest`'s model (kind attention); false with `error`
/// naming `source` when it is not one.
bool pyramidParamsOf(const hag::rt::ArtifactManifest &manifest,
                     const std::string &source, hag::PyramidParams &params,
                     std::string &error);

/// Executed FLOPs of one forward of a batch of one, counted as spec section
/// 6 does.
struct LayerFlops {
  /// sum_i K(i) over the N queries (per head).
  double keys = 0;
  /// Attention core: 4 * d * keys * heads (QK^T and PV).
  double core = 0;
  /// The memory gate: 2 N D Dg + 2 N Dg (pyramid only).
  double gate = 0;
  /// The Q, K, V and O projections.
  double projections = 0;
  double layer() const { return core + gate + projections; }
};

/// The Q, K, V and O projections of N tokens: 2 N D (H d + 2 Hkv d) +
/// 2 N H d D.
double projectionFlops(const hag::PyramidParams &p, int64_t dModel, int64_t n);

/// The pyramid layer's FLOPs at N = n (gate hidden width `gateHidden`).
LayerFlops pyramidFlops(const hag::PyramidParams &p, int64_t dModel,
                        int64_t gateHidden, int64_t n);

/// Dense attention's FLOPs at N = n (no gate).
LayerFlops denseFlops(const hag::PyramidParams &p, int64_t dModel, int64_t n);

} // namespace hag::bench

#endif // HAG_BENCH_MANIFESTPARAMS_H
