//===- WeightInit.cpp - spec section 7 weight initialisation --------------===//

#include "hag/runtime/WeightInit.h"

#include "hag/runtime/Random.h"

#include "support/StringUtil.h"

#include <cmath>

using namespace hag::rt;
using namespace hag::rt::detail;

namespace {

bool endsWith(const std::string &s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

ParameterInit hag::rt::parameterInit(const std::string &name,
                                     const ModelFacts &model) {
  constexpr double kStd = 0.02;
  ParameterInit init;
  if (endsWith(name, "gate.b1") || endsWith(name, "gate.b2")) {
    init.kind = ParameterInit::Kind::Zeros;
  } else if (endsWith(name, "norm.scale") ||
             name.find("attn.conv.") != std::string::npos) {
    init.kind = ParameterInit::Kind::Ones;
  } else if (endsWith(name, "attn.wo") || endsWith(name, "mlp.w_down")) {
    int64_t layers = model.kind == ModelFacts::Kind::LM && model.layers > 0
                         ? model.layers
                         : 1;
    init.stddev = kStd / std::sqrt(2.0 * static_cast<double>(layers));
  } else {
    init.stddev = kStd;
  }
  return init;
}

void hag::rt::fillNormal(float *out, size_t count, double stddev, uint64_t seed,
                         const std::string &name) {
  const uint8_t *bytes = reinterpret_cast<const uint8_t *>(name.data());
  Xoshiro256 rng(splitMix64At(seed, fnv1a64(bytes, name.size())));
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (size_t i = 0; i < count; i += 2) {
    double u1 = static_cast<double>((rng.next() >> 11) + 1) * 0x1.0p-53;
    double u2 = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
    double r = std::sqrt(-2.0 * std::log(u1));
    double theta = kTwoPi * u2;
    out[i] = static_cast<float>(stddev * r * std::cos(theta));
    if (i + 1 < count)
      out[i + 1] = static_cast<float>(stddev * r * std::sin(theta));
  }
}

Result<HostTensor> hag::rt::initParameter(const TensorSpec &spec,
                                          const ModelFacts &model,
                                          uint64_t seed) {
  if (!isFloatDType(spec.dtype))
    return makeError("cannot initialise parameter ", quoted(spec.name),
                     " of dtype ", dtypeName(spec.dtype),
                     ": only floating-point weights are initialised");
  Result<HostTensor> t = HostTensor::zeros(DType::F32, spec.shape);
  if (!t.ok())
    return t.status().withPrefix("parameter " + quoted(spec.name));
  float *p = t->dataAs<float>();
  size_t n = static_cast<size_t>(t->numel());
  ParameterInit init = parameterInit(spec.name, model);
  switch (init.kind) {
  case ParameterInit::Kind::Zeros:
    break;
  case ParameterInit::Kind::Ones:
    for (size_t i = 0; i < n; ++i)
      p[i] = 1.0f;
    break;
  case ParameterInit::Kind::Normal:
    fillNormal(p, n, init.stddev, seed, spec.name);
    break;
  }
  if (spec.dtype == DType::F32)
    return t;
  return convertFromF32(*t, spec.dtype);
}

Result<TensorMap> hag::rt::initialWeights(const std::vector<TensorSpec> &params,
                                          const ModelFacts &model,
                                          uint64_t seed) {
  TensorMap weights;
  for (const TensorSpec &spec : params) {
    Result<HostTensor> t = initParameter(spec, model, seed);
    if (!t.ok())
      return t.status();
    weights[spec.name] = std::move(*t);
  }
  return weights;
}
