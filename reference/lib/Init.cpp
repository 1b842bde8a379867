//===- Init.cpp - Weight names, shapes and initialisation (reference) -----===//
//
// The weights of interfaces.md and spec section 7's initialisation.
//
//===----------------------------------------------------------------------===//

#include "hag/reference/Reference.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

using namespace hag;
using namespace hag::ref;

namespace {

using Shapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

/// The attention weights of interfaces.md under `prefix`.
void addAttention(const ModelConfig &cfg, const std::string &prefix,
                  Shapes &shapes) {
  const PyramidParams &p = cfg.attn;
  const int64_t D = cfg.dModel, Dg = cfg.gateHidden;
  const int64_t qDim = p.heads * p.headDim, kvDim = p.kvHeads * p.headDim;
  shapes.push_back({prefix + "wq", {qDim, D}});
  shapes.push_back({prefix + "wk", {kvDim, D}});
  shapes.push_back({prefix + "wv", {kvDim, D}});
  shapes.push_back({prefix + "wo", {D, qDim}});
  shapes.push_back({prefix + "gate.w1", {Dg, D}});
  shapes.push_back({prefix + "gate.b1", {Dg}});
  shapes.push_back({prefix + "gate.w2", {Dg}});
  shapes.push_back({prefix + "gate.b2", {1}});
  if (p.compress == Compress::Conv) {
    // A_l [Hkv, r, d] for every compressed level l = 2..L-1; `auto`
    // resolves against the longest sequence served.
    const int64_t L = resolveLevels(p, p.maxSeq);
    for (int64_t l = 2; l <= L - 1; ++l) {
      shapes.push_back({prefix + "conv.k." + std::to_string(l),
                        {p.kvHeads, p.ratio, p.headDim}});
      shapes.push_back({prefix + "conv.v." + std::to_string(l),
                        {p.kvHeads, p.ratio, p.headDim}});
    }
  }
}

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

} // namespace

Shapes hag::ref::weightShapes(const ModelConfig &cfg) {
  Shapes shapes;
  if (cfg.kind == ModelConfig::Attention) {
    addAttention(cfg, "attn.", shapes);
    return shapes;
  }
  const int64_t D = cfg.dModel, F = cfg.mlpHidden, V = cfg.vocab;
  shapes.push_back({"embed", {V, D}});
  for (int64_t i = 0; i < cfg.layers; ++i) {
    const std::string layer = "layers." + std::to_string(i) + ".";
    shapes.push_back({layer + "attn_norm.scale", {D}});
    addAttention(cfg, layer + "attn.", shapes);
    shapes.push_back({layer + "mlp_norm.scale", {D}});
    shapes.push_back({layer + "mlp.w_gate", {F, D}});
    shapes.push_back({layer + "mlp.w_up", {F, D}});
    shapes.push_back({layer + "mlp.w_down", {D, F}});
  }
  shapes.push_back({"final_norm.scale", {D}});
  if (!cfg.tieEmbeddings)
    shapes.push_back({"lm_head", {V, D}});
  return shapes;
}

Weights hag::ref::initWeights(const ModelConfig &cfg, uint64_t seed,
                              torch::ScalarType dtype) {
  // Spec section 7: normal(0, 0.02); W_o and W_down normal(0, 0.02 /
  // sqrt(2 n_layers)); gate biases 0; conv weights and norm scales 1.
  const int64_t numLayers = cfg.kind == ModelConfig::Attention ? 1 : cfg.layers;
  const double stdDev = 0.02;
  const double residualStd = stdDev / std::sqrt(2.0 * double(numLayers));
  torch::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  Weights w;
  for (const auto &[name, shape] : weightShapes(cfg)) {
    torch::Tensor t;
    if (endsWith(name, "gate.b1") || endsWith(name, "gate.b2"))
      t = torch::zeros(shape, torch::kFloat);
    else if (endsWith(name, ".scale") || contains(name, ".conv."))
      t = torch::ones(shape, torch::kFloat);
    else if (endsWith(name, "attn.wo") || endsWith(name, "mlp.w_down"))
      t = torch::empty(shape, torch::kFloat).normal_(0.0, residualStd, gen);
    else
      t = torch::empty(shape, torch::kFloat).normal_(0.0, stdDev, gen);
    // Drawn in float32, then converted: float64 weights equal the float32
    // weights of the same seed exactly.
    w[name] = t.to(dtype);
  }
  return w;
}
