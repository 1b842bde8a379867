//===- WeightInit.h - spec section 7 weight initialisation ------*- C++ -*-===//
//
// The initial weights of a model, reproducible from a 64-bit seed on every
// platform:
//
//  - names ending in `gate.b1` or `gate.b2`: zeros;
//  - names ending in `norm.scale` (`*_norm.scale`, `final_norm.scale`) and
//    conv weights (`attn.conv.k.<l>`, `attn.conv.v.<l>`): ones;
//  - names ending in `attn.wo` or `mlp.w_down`: normal(0, 0.02 / sqrt(2 n)),
//    n = model.layers for the lm kind, 1 for the attention kind;
//  - everything else: normal(0, 0.02).
//
// Each parameter draws from its own stream, so its values depend only on the
// seed and its name (not on the other parameters or their order): a
// xoshiro256** generator seeded with splitMix64At(seed, fnv1a64(name)), and
// Box-Muller in double precision (u1 = ((x >> 11) + 1) / 2^53 in (0, 1],
// u2 = (y >> 11) / 2^53, r = sqrt(-2 ln u1), the pair r cos(2 pi u2),
// r sin(2 pi u2) fills two consecutive elements), times the standard
// deviation, rounded to f32.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_WEIGHTINIT_H
#define HAG_RUNTIME_WEIGHTINIT_H

#include "hag/runtime/Artifact.h"
#include "hag/runtime/SafeTensors.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hag::rt {

/// How one parameter is initialised.
struct ParameterInit {
  enum class Kind { Normal, Zeros, Ones };
  Kind kind = Kind::Normal;
  /// The standard deviation (Normal only).
  double stddev = 0.0;
};

/// The initialisation rule of the parameter called `name` (see above).
ParameterInit parameterInit(const std::string &name, const ModelFacts &model);

/// Fills `count` floats with normal(0, stddev) samples from the stream of
/// (`seed`, `name`) described above.
void fillNormal(float *out, size_t count, double stddev, uint64_t seed,
                const std::string &name);

/// The initial value of one parameter. Floating-point dtypes other than f32
/// are drawn in f32 and converted; other dtypes are an error.
Result<HostTensor> initParameter(const TensorSpec &spec,
                                 const ModelFacts &model, uint64_t seed);

/// The initial values of every parameter in `params`.
Result<TensorMap> initialWeights(const std::vector<TensorSpec> &params,
                                 const ModelFacts &model, uint64_t seed);

} // namespace hag::rt

#endif // HAG_RUNTIME_WEIGHTINIT_H
