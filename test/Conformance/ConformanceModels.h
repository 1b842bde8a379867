//===- ConformanceModels.h - the models the conformance tests share --*- C++ -*-===//
//
// One configuration of the test matrix (an attention layer or a small LM),
// the same model for the compiler (a ModelDescription) and for the LibTorch
// reference, and weights that make the pyramid's windows matter.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_TEST_CONFORMANCE_CONFORMANCEMODELS_H
#define HAG_TEST_CONFORMANCE_CONFORMANCEMODELS_H

#include "hag/Frontend/ModelDescription.h"
#include "hag/reference/Reference.h"

#include <map>
#include <ostream>
#include <string>

namespace hag::testing {

/// One configuration of the matrix: an attention layer or a small LM.
struct Case {
  std::string name;
  bool lm = false;
  bool causal = true;
  int64_t levels = 4; // 0: auto
  int64_t ratio = 4;
  hag::Compress compress = hag::Compress::GatedMean;
  int64_t kvHeads = 4;
  int64_t selectK = 0;
  double massBias = 1.0;
  int64_t block = 16;
  /// 8 exercises the kernels' scalar tails, 24 the 16-lane vector path and
  /// a tail, 64 the vector path alone.
  int64_t headDim = 8;
  /// The raw-window-only ablation.
  bool localOnly = false;
};

/// `c` with the local_only ablation on.
inline Case localOnly(Case c) {
  c.localOnly = true;
  return c;
}

std::ostream &operator<<(std::ostream &os, const Case &c);

/// The attention configuration of `c`: 4 heads, window 3, 5 summary tokens,
/// max_seq 4096, the rest from the case.
hag::PyramidParams pyramidParams(const Case &c);

/// The same model for the compiler and for the reference: 4 heads, window 3,
/// 5 summary tokens, D = 4 head_dim, 2 layers (LM).
void makeModel(const Case &c, hag::ModelDescription &md,
               hag::ref::ModelConfig &cfg);

/// Weights in f64 for the reference (f32-representable values); see the
/// definition for how they differ from the initialisation.
hag::ref::Weights makeWeights(const hag::ref::ModelConfig &cfg);

/// The weights in f32, as the compiled code takes them.
std::map<std::string, torch::Tensor> toF32(const hag::ref::Weights &w64);

} // namespace hag::testing

#endif // HAG_TEST_CONFORMANCE_CONFORMANCEMODELS_H
