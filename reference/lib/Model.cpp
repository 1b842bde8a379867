//===- Model.cpp - The language model (reference) -------------------------===//
//
// Spec section 7: embedding, pre-norm blocks of pyramid attention and a SwiGLU
// MLP, the final RMSNorm, tied or separate output projection, and the mean
// next-token cross-entropy.
//
//===----------------------------------------------------------------------===//

#include "hag/reference/Reference.h"

#include <torch/torch.h>

using namespace hag;
using namespace hag::ref;

namespace {

/// RMSNorm's eps (spec section 7).
constexpr double kNormEps = 1e-5;

const torch::Tensor &weight(const Weights &w, const std::string &name) {
  auto it = w.find(name);
  TORCH_CHECK(it != w.end(), "missing weight '", name, "'");
  return it->second;
}

} // namespace

torch::Tensor hag::ref::rmsNorm(const torch::Tensor &x,
                                const torch::Tensor &scale) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + kNormEps) *
         scale.to(x.options());
}

torch::Tensor hag::ref::lmForward(const ModelConfig &cfg, const Weights &w,
                                  const torch::Tensor &tokens) {
  TORCH_CHECK(cfg.kind == ModelConfig::LM, "lmForward needs an lm model");
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [B, N]");
  const int64_t batch = tokens.size(0), N = tokens.size(1);
  // tokens -> embedding [V, D].
  const torch::Tensor &embed = weight(w, "embed");
  torch::Tensor x = embed.index_select(0, tokens.reshape(-1).to(torch::kLong))
                        .view({batch, N, cfg.dModel});
  auto linear = [&](const torch::Tensor &h, const std::string &name) {
    return torch::linear(h, weight(w, name).to(h.options()));
  };
  for (int64_t i = 0; i < cfg.layers; ++i) {
    const std::string layer = "layers." + std::to_string(i) + ".";
    // h = RMSNorm(x); x = x + PyramidAttention(h)  (the gate reads h too).
    torch::Tensor h = rmsNorm(x, weight(w, layer + "attn_norm.scale"));
    x = x + attentionLayer(cfg, w, layer + "attn.", h);
    // h = RMSNorm(x); x = x + W_down(SiLU(W_gate h) * (W_up h)).
    h = rmsNorm(x, weight(w, layer + "mlp_norm.scale"));
    x = x + linear(torch::silu(linear(h, layer + "mlp.w_gate")) *
                       linear(h, layer + "mlp.w_up"),
                   layer + "mlp.w_down");
  }
  // RMSNorm, then logits = h E^T (tied) or h lm_head^T.
  torch::Tensor h = rmsNorm(x, weight(w, "final_norm.scale"));
  return linear(h, cfg.tieEmbeddings ? "embed" : "lm_head");
}

torch::Tensor hag::ref::lmLoss(const ModelConfig &cfg, const Weights &w,
                               const torch::Tensor &tokens) {
  const int64_t N = tokens.size(1);
  TORCH_CHECK(N >= 2, "lmLoss needs N >= 2 (a position with a next token)");
  torch::Tensor logits = lmForward(cfg, w, tokens);
  const torch::ScalarType type = logits.scalar_type();
  if (type == torch::kHalf || type == torch::kBFloat16)
    logits = logits.to(torch::kFloat);
  // Position t predicts token t+1; mean over all B * (N-1) such positions.
  torch::Tensor logProbs = torch::log_softmax(logits.narrow(1, 0, N - 1), -1);
  torch::Tensor next =
      tokens.narrow(1, 1, N - 1).to(torch::kLong).unsqueeze(-1);
  return (-logProbs.gather(2, next).mean()).to(type);
}
