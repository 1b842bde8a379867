//===- ConformanceModels.cpp - the models the conformance tests share -----===//

#include "ConformanceModels.h"

#include <torch/torch.h>

#include <cmath>

namespace hag::testing {

std::ostream &operator<<(std::ostream &os, const Case &c) {
  return os << c.name;
}

hag::PyramidParams pyramidParams(const Case &c) {
  hag::PyramidParams p;
  p.heads = 4;
  p.kvHeads = c.kvHeads;
  p.headDim = c.headDim;
  p.block = c.block;
  p.ratio = c.ratio;
  p.levels = c.levels;
  p.window = 3;
  p.summary = 5;
  p.compress = c.compress;
  p.causal = c.causal;
  p.massBias = c.massBias;
  p.selectK = c.selectK;
  p.maxSeq = 4096;
  p.localOnly = c.localOnly;
  return p;
}

/// The same model for the compiler and for the reference.
void makeModel(const Case &c, hag::ModelDescription &md,
               hag::ref::ModelConfig &cfg) {
  md = hag::ModelDescription();
  md.kind = c.lm ? hag::ModelKind::LM : hag::ModelKind::Attention;
  md.vocab = 64;
  md.dModel = 4 * c.headDim;
  md.layers = 2;
  md.mlpHidden = 48;
  md.gateHidden = 3 * c.headDim;
  md.tieEmbeddings = true;
  md.rope = true;
  md.attention = pyramidParams(c);

  cfg.kind =
      c.lm ? hag::ref::ModelConfig::LM : hag::ref::ModelConfig::Attention;
  cfg.vocab = md.vocab;
  cfg.dModel = md.dModel;
  cfg.layers = c.lm ? md.layers : 1;
  cfg.mlpHidden = md.resolvedMlpHidden();
  cfg.gateHidden = md.resolvedGateHidden();
  cfg.tieEmbeddings = md.tieEmbeddings;
  cfg.rope = md.rope;
  cfg.ropeBase = md.ropeBase;
  cfg.attn = md.attention;
}

/// Weights in f64 for the reference; gate biases and conv weights are
/// perturbed so the gate varies and conv differs from gated_mean, and Wq, Wk
/// are scaled up so the logits are O(1). With the initialisation's std 0.02
/// the logits are ~0, every key weighs its mass, and the output is the
/// gated mean of everything in view whatever the windows are (spec 5's
/// exactness property): a test at init would barely see a window bug.
hag::ref::Weights makeWeights(const hag::ref::ModelConfig &cfg) {
  hag::ref::Weights w = hag::ref::initWeights(cfg, /*seed=*/7, torch::kFloat64);
  torch::manual_seed(11);
  for (auto &[name, t] : w) {
    // Gate logits s / tau of a few units: g spread over (0, 1) without
    // saturating. Saturated gates tie at 1.0f in fp32 but not in f64, and
    // select_k's top-k would then legitimately pick different tokens.
    if (name.find("gate.b1") != std::string::npos)
      t = 0.1 * torch::randn_like(t);
    else if (name.find("gate.b2") != std::string::npos)
      t = 0.05 * torch::randn_like(t);
    else if (name.find("gate.w2") != std::string::npos)
      t = 0.2 * std::sqrt(24.0 / cfg.gateHidden) * torch::randn_like(t);
    else if (name.find(".conv.") != std::string::npos)
      t = 1.0 + 0.3 * torch::randn_like(t);
    else if (name.find("attn.wq") != std::string::npos ||
             name.find("attn.wk") != std::string::npos)
      t = std::sqrt(2.0 / cfg.dModel) * torch::randn_like(t); // q_j ~ N(0, 2)
    // The compiler runs in f32: give both sides the same (f32) values.
    t = t.to(torch::kFloat32).to(torch::kFloat64).contiguous();
  }
  return w;
}

/// The weights in f32, as the compiled code takes them.
std::map<std::string, torch::Tensor> toF32(const hag::ref::Weights &w64) {
  std::map<std::string, torch::Tensor> w32;
  for (auto &[name, t] : w64)
    w32[name] = t.to(torch::kFloat32).contiguous();
  return w32;
}


} // namespace hag::testing
