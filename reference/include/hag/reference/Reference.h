//===- Reference.h - LibTorch reference implementation of the spec -*- C++
//-*-===//
//
// The executable form of ../shared/design/pyramid-attention.md ("the spec"):
// the conformance oracle for HAG's code generators and the peer in benchmarks.
//
// Everything here is written from the spec alone; it shares nothing with the
// compiler but the parameter struct hag::PyramidParams. Names follow the spec's
// symbols (sigma_l, n_l, a_l, c_l, e'_l, e_l, T', m, g, ...), and every
// function cites the spec section it implements.
//
// All tensor functions are dtype-generic: they compute in the dtype of their
// inputs (float64 for conformance, float32 for benchmarks); half and bfloat16
// inputs are computed in float32 (spec section 5: softmax and accumulations in
// fp32 at least) and cast back. Devices follow the inputs too.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_REFERENCE_REFERENCE_H
#define HAG_REFERENCE_REFERENCE_H

#include "hag/Analysis/PyramidParams.h"

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hag::ref {

//===----------------------------------------------------------------------===//
// Configuration and weights
//===----------------------------------------------------------------------===//

/// A model of interfaces.md: `kind: lm` (spec section 7) or `kind: attention`
/// (one pyramid attention layer, x [N, D] -> y [N, D]). All sizes resolved.
struct ModelConfig {
  enum Kind { LM, Attention } kind = LM;
  /// V; lm only.
  int64_t vocab = 256;
  /// D (the spec has D = H * d; the projections only need [H*d, D]).
  int64_t dModel = 512;
  /// n_layers; lm only (the attention kind has one layer).
  int64_t layers = 6;
  /// F of the SwiGLU MLP (4 * D unless given); lm only.
  int64_t mlpHidden = 2048;
  /// Dg of the memory gate (D unless given).
  int64_t gateHidden = 512;
  bool tieEmbeddings = true;
  bool rope = true;
  double ropeBase = 10000.0;
  /// heads, kvHeads, headDim and maxSeq filled in.
  hag::PyramidParams attn;
};

/// Weights keyed by their interfaces.md names ("attn.wq",
/// "layers.0.attn.gate.w1", "attn.conv.k.2", "embed", "final_norm.scale",
/// "lm_head", ...), in PyTorch nn.Linear layout [out, in].
using Weights = std::map<std::string, torch::Tensor>;

/// The interfaces.md names and shapes of every weight of `cfg`, in a fixed
/// order (the order initWeights draws them in). For `levels: auto` with conv,
/// the compressed levels are those of resolveLevels(cfg.attn, cfg.attn.maxSeq).
std::vector<std::pair<std::string, std::vector<int64_t>>>
weightShapes(const ModelConfig &cfg);

/// Spec section 7 initialisation: normal(0, 0.02) for every matrix and vector,
/// W_o and W_down normal(0, 0.02 / sqrt(2 * n_layers)) (n_layers = 1 for the
/// attention kind), gate b1 = b2 = 0, conv weights 1, norm scales 1.
/// Deterministic in `seed`. Samples are drawn in float32 and then converted to
/// `dtype`, so float64 weights hold exactly the float32 weights of the same
/// seed (a float64 oracle and an fp32 implementation then share weights).
Weights initWeights(const ModelConfig &cfg, uint64_t seed,
                    torch::ScalarType dtype);

//===----------------------------------------------------------------------===//
// Levels and windows (spec sections 1 and 4)
//===----------------------------------------------------------------------===//

/// sigma_l = r^(l-1): raw tokens behind one level-l token (spec section 1).
int64_t sigma(int64_t r, int64_t l);
/// n_l = ceil(N / sigma_l): the length of level l (spec section 1).
int64_t levelLength(int64_t r, int64_t l, int64_t N);

/// L for sequence length N: p.levels when fixed, else spec section 1's `auto`,
/// the smallest L >= 3 for which every query block's left windows reach raw
/// position 0 (and, bidirectional, its right windows reach N). Not clamped to
/// 12. The keys a query sees are the same for every L >= that smallest one, so
/// resolving against N or against any maxSeq >= N gives the same outputs.
int64_t resolveLevels(const hag::PyramidParams &p, int64_t N);

/// The windows of one compressed level l (2 <= l <= L-1) in level-l tokens.
struct LevelWindow {
  /// Left window [a_l, c_l).
  int64_t a = 0, c = 0;
  /// Right window [e'_l, e_l); empty when causal.
  int64_t ePrime = 0, e = 0;
};

/// Everything spec section 4 assigns to query block b (the same for all its
/// queries but level 1's causal end c_1 = i + 1).
struct BlockWindows {
  /// The block's queries [queryBegin, queryEnd).
  int64_t queryBegin = 0, queryEnd = 0;
  /// Level 1: raw keys [a1, rawEnd). Causal: rawEnd = queryEnd and query i
  /// sees [a1, i] (mask on the diagonal block); bidirectional: rawEnd = e_1.
  int64_t a1 = 0, rawEnd = 0;
  /// Index l-2 for the compressed level l = 2..L-1.
  std::vector<LevelWindow> levels;
  /// The summary covers raw [0, summaryPrefix) in T' = summaryTokens
  /// segments: causal P = a_{L-1} * sigma_{L-1}; bidirectional N.
  int64_t summaryPrefix = 0, summaryTokens = 0;
};

/// Spec section 4's windows for block b of a sequence of N tokens with L
/// levels (L already resolved).
BlockWindows blockWindows(const hag::PyramidParams &p, int64_t L, int64_t N,
                          int64_t b);

/// Summary segment t of T' over a prefix of `prefix` raw tokens:
/// [floor(t * |P| / T'), floor((t + 1) * |P| / T')) (spec section 4).
std::pair<int64_t, int64_t> summarySegment(int64_t prefix, int64_t tPrime,
                                           int64_t t);

//===----------------------------------------------------------------------===//
// The pieces of one attention layer
//===----------------------------------------------------------------------===//

/// Spec section 2: g_i = sigmoid((w2 . SiLU(W1 x_i + b1) + b2) / tau).
/// x [B, N, D], w1 [Dg, D], b1 [Dg], w2 [Dg], b2 [1] -> g [B, N].
torch::Tensor memoryGate(const torch::Tensor &x, const torch::Tensor &w1,
                         const torch::Tensor &b1, const torch::Tensor &w2,
                         const torch::Tensor &b2, double tau);

/// Spec section 3's RoPE, rotate-half convention, per head of headDim (even)
/// channels: raw position i + offset, theta_j = pos * base^(-2j/d).
/// x [B, N, heads * headDim] -> same shape.
torch::Tensor rope(const torch::Tensor &x, int64_t headDim, double base,
                   int64_t offset = 0);

/// The compressed levels 2..L-1 of spec section 3, from raw k or v
/// [B, Hkv, N, d] and g [B, N]. Returns, per level (index l-2), the level's
/// tokens [B, Hkv, n_l, d]; `masses` receives m_l [B, n_l] per level.
/// `convA` holds A_l [Hkv, r, d] per level (conv only, else empty).
std::vector<torch::Tensor> buildLevels(const hag::PyramidParams &p, int64_t L,
                                       const torch::Tensor &kv,
                                       const torch::Tensor &g,
                                       const std::vector<torch::Tensor> &convA,
                                       std::vector<torch::Tensor> &masses);

/// The summary tokens of every query block (spec section 4): the gated mean
/// of k and v over each segment, its mass the sum of g there.
struct Summaries {
  /// [B, Hkv, S, d] for all blocks' segments together.
  torch::Tensor k, v;
  /// [B, S].
  torch::Tensor mass;
  /// Block b's T' tokens are [begin[b], begin[b] + count[b]).
  std::vector<int64_t> begin, count;
};

/// Builds the summaries of all `windows` from k, v [B, Hkv, N, d] and g
/// [B, N], through prefix sums of g*k, g*v and g kept in float64.
Summaries buildSummaries(const hag::PyramidParams &p,
                         const std::vector<BlockWindows> &windows,
                         const torch::Tensor &k, const torch::Tensor &v,
                         const torch::Tensor &g);

/// select_k of spec section 4 for one block: per batch row, the raw positions
/// of the min(k, #candidates) tokens with the largest g among [0, a_1) (plus
/// [e_1, N) when bidirectional), ties to the lower index, in order of
/// decreasing g. g [B, N] -> int64 [B, k'].
torch::Tensor selectTokens(const hag::PyramidParams &p, const BlockWindows &w,
                           const torch::Tensor &g);

/// Spec sections 3-5 after the projections: q [B, N, H*d] (RoPE applied),
/// k and v [B, N, Hkv*d] (RoPE applied to k), g [B, N]; convK and convV hold
/// A_l [Hkv, r, d] for l = 2..L-1 (conv only, else empty; extra trailing
/// levels are ignored). Returns o [B, N, H*d] (before W_o). L is resolved
/// against N. Works per query block without materialising N x N.
torch::Tensor pyramidAttentionCore(const hag::PyramidParams &p,
                                   const torch::Tensor &q,
                                   const torch::Tensor &k,
                                   const torch::Tensor &v,
                                   const torch::Tensor &g,
                                   const std::vector<torch::Tensor> &convK,
                                   const std::vector<torch::Tensor> &convV);

/// One pyramid attention layer (spec sections 2-5): the projections, RoPE
/// when cfg.rope, the gate on the same input x, the core, then W_o. `prefix`
/// is "attn." or "layers.<i>.attn.". x [B, N, D] -> y [B, N, D].
torch::Tensor attentionLayer(const ModelConfig &cfg, const Weights &w,
                             const std::string &prefix, const torch::Tensor &x);

//===----------------------------------------------------------------------===//
// The language model (spec section 7)
//===----------------------------------------------------------------------===//

/// RMSNorm with eps 1e-5 and a learned scale over the last dimension.
torch::Tensor rmsNorm(const torch::Tensor &x, const torch::Tensor &scale);

/// tokens [B, N] int64 -> logits [B, N, V], computed in the weights' dtype.
torch::Tensor lmForward(const ModelConfig &cfg, const Weights &w,
                        const torch::Tensor &tokens);

/// Mean next-token cross-entropy over the B * (N - 1) positions that have a
/// next token (requires N >= 2). A scalar in the weights' dtype.
torch::Tensor lmLoss(const ModelConfig &cfg, const Weights &w,
                     const torch::Tensor &tokens);

/// Plain dense attention softmax(Q K^T / sqrt(d)) V for benchmarks and as the
/// limit the pyramid reproduces (spec section 5): q [B, N, H*d], k and v
/// [B, N, Hkv*d], GQA kv(h) = floor(h * Hkv / H). Materialises N x N.
torch::Tensor denseAttention(const torch::Tensor &q, const torch::Tensor &k,
                             const torch::Tensor &v, int64_t heads,
                             int64_t kvHeads, bool causal);

} // namespace hag::ref

#endif // HAG_REFERENCE_REFERENCE_H
