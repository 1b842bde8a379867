//===- Attention.cpp - Pyramid attention (reference) ----------------------===//
//
// Spec sections 3-5: RoPE, the cross-level attention of every query block in
// one softmax, and one attention layer with its projections. Plus plain dense
// attention, the limit the pyramid reproduces and the benchmarks' baseline.
//
//===----------------------------------------------------------------------===//

#include "hag/reference/Reference.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

using namespace hag;
using namespace hag::ref;

namespace {

/// Spec section 5: softmax and accumulations in fp32 at least.
torch::ScalarType computeType(torch::ScalarType t) {
  return (t == torch::kHalf || t == torch::kBFloat16) ? torch::kFloat : t;
}

/// The weight `name`, converted to the dtype and device of `like`.
torch::Tensor weight(const Weights &w, const std::string &name,
                     const torch::Tensor &like) {
  auto it = w.find(name);
  TORCH_CHECK(it != w.end(), "missing weight '", name, "'");
  return it->second.to(like.options());
}

} // namespace

//===----------------------------------------------------------------------===//
// Spec section 3: RoPE
//===----------------------------------------------------------------------===//

torch::Tensor hag::ref::rope(const torch::Tensor &x, int64_t headDim,
                             double base, int64_t offset) {
  TORCH_CHECK(headDim % 2 == 0, "RoPE needs an even head dim, got ", headDim);
  const int64_t batch = x.size(0), N = x.size(1);
  const int64_t heads = x.size(2) / headDim, half = headDim / 2;
  // theta_j = i * base^(-2j/d) for raw position i, j < d/2; the angles are
  // computed in float64 and rounded once.
  auto dbl = x.options().dtype(torch::kDouble);
  torch::Tensor pos = torch::arange(offset, offset + N, dbl);
  torch::Tensor invFreq =
      torch::pow(base, -2.0 * torch::arange(0, half, dbl) / double(headDim));
  torch::Tensor theta = torch::outer(pos, invFreq).view({1, N, 1, half});
  torch::Tensor cos = theta.cos().to(x.scalar_type());
  torch::Tensor sin = theta.sin().to(x.scalar_type());
  // Rotate-half: (u_j, u_{j+d/2}) -> (u_j cos - u_{j+d/2} sin,
  //                                   u_{j+d/2} cos + u_j sin).
  torch::Tensor u = x.view({batch, N, heads, headDim});
  torch::Tensor lo = u.narrow(3, 0, half), hi = u.narrow(3, half, half);
  return torch::cat({lo * cos - hi * sin, hi * cos + lo * sin}, 3)
      .view({batch, N, heads * headDim});
}

//===----------------------------------------------------------------------===//
// Spec sections 3-5: the cross-level attention
//===----------------------------------------------------------------------===//

torch::Tensor hag::ref::pyramidAttentionCore(
    const PyramidParams &p, const torch::Tensor &qIn, const torch::Tensor &kIn,
    const torch::Tensor &vIn, const torch::Tensor &gIn,
    const std::vector<torch::Tensor> &convK,
    const std::vector<torch::Tensor> &convV) {
  TORCH_CHECK(qIn.dim() == 3 && kIn.dim() == 3 && vIn.dim() == 3 &&
                  gIn.dim() == 2,
              "pyramidAttentionCore: q, k, v [B, N, *] and g [B, N]");
  const int64_t H = p.heads, Hkv = p.kvHeads, d = p.headDim;
  TORCH_CHECK(H % Hkv == 0, "H must be a multiple of Hkv");
  const int64_t batch = qIn.size(0), N = qIn.size(1), G = H / Hkv;
  TORCH_CHECK(N >= 1, "N must be >= 1");
  TORCH_CHECK(qIn.size(2) == H * d && kIn.size(2) == Hkv * d &&
                  vIn.size(2) == Hkv * d,
              "q must be [B, N, H*d] and k, v [B, N, Hkv*d]");
  TORCH_CHECK(gIn.size(0) == batch && gIn.size(1) == N, "g must be [B, N]");
  const torch::ScalarType ioType = qIn.scalar_type();
  const auto opts = qIn.options().dtype(computeType(ioType));

  // Per query head h, key/value head kv(h) = floor(h * Hkv / H) = h / G, so
  // the heads h = c*G .. c*G+G-1 share kv head c. Layouts: q [B, Hkv, G, N, d],
  // k and v [B, Hkv, N, d], g [B, N].
  torch::Tensor q =
      qIn.to(opts).view({batch, N, Hkv, G, d}).permute({0, 2, 3, 1, 4});
  torch::Tensor k =
      kIn.to(opts).view({batch, N, Hkv, d}).permute({0, 2, 1, 3}).contiguous();
  torch::Tensor v =
      vIn.to(opts).view({batch, N, Hkv, d}).permute({0, 2, 1, 3}).contiguous();
  torch::Tensor g = gIn.to(opts);

  // Spec section 1: L (auto resolves against N; see resolveLevels).
  const int64_t L = resolveLevels(p, N);
  const int64_t numBlocks = (N + p.block - 1) / p.block;
  std::vector<BlockWindows> windows;
  for (int64_t b = 0; b < numBlocks; ++b)
    windows.push_back(blockWindows(p, L, N, b));

  // Spec section 3: levels 2..L-1, built once from the level below.
  std::vector<torch::Tensor> massK, massV;
  const bool conv = p.compress == Compress::Conv;
  std::vector<torch::Tensor> levelK = buildLevels(
      p, L, k, g, conv ? convK : std::vector<torch::Tensor>{}, massK);
  std::vector<torch::Tensor> levelV = buildLevels(
      p, L, v, g, conv ? convV : std::vector<torch::Tensor>{}, massV);
  // Spec section 4: the summaries of all blocks.
  Summaries summary = buildSummaries(p, windows, k, v, g);

  const double scale = 1.0 / std::sqrt(double(d));
  const double beta = p.massBias;
  torch::Tensor out = torch::empty({batch, Hkv, G, N, d}, opts);
  for (int64_t b = 0; b < numBlocks; ++b) {
    const BlockWindows &w = windows[b];
    const int64_t nq = w.queryEnd - w.queryBegin;
    // The block's keys: a few contiguous ranges (level 1, one or two windows
    // per compressed level, the summary) plus the select_k tokens, gathered
    // into one [K, d] tensor per (batch, kv head), with their masses.
    std::vector<torch::Tensor> keys, values, masses;
    auto addRange = [&](const torch::Tensor &kk, const torch::Tensor &vv,
                        const torch::Tensor &mm, int64_t lo, int64_t hi) {
      if (hi <= lo)
        return;
      keys.push_back(kk.narrow(2, lo, hi - lo));
      values.push_back(vv.narrow(2, lo, hi - lo));
      masses.push_back(mm.narrow(1, lo, hi - lo));
    };
    // Level 1: raw [a_1, rawEnd), mass g.
    const int64_t numRaw = w.rawEnd - w.a1;
    addRange(k, v, g, w.a1, w.rawEnd);
    // The local_only ablation: level 1 alone.
    const bool far = !p.localOnly;
    // Levels 2..L-1: [a_l, c_l) and, bidirectional, [e'_l, e_l).
    for (size_t l = 0; far && l < w.levels.size(); ++l) {
      const LevelWindow &lw = w.levels[l];
      addRange(levelK[l], levelV[l], massK[l], lw.a, lw.c);
      addRange(levelK[l], levelV[l], massK[l], lw.ePrime, lw.e);
    }
    // The summary: T' gated means.
    if (far)
      addRange(summary.k, summary.v, summary.mass, summary.begin[b],
               summary.begin[b] + summary.count[b]);
    // select_k: raw keys chosen by g, per batch row.
    if (far && p.selectK > 0) {
      torch::Tensor sel = selectTokens(p, w, g); // [B, k']
      const int64_t kPrime = sel.size(1);
      if (kPrime > 0) {
        torch::Tensor index =
            sel.view({batch, 1, kPrime, 1}).expand({batch, Hkv, kPrime, d});
        keys.push_back(k.gather(2, index));
        values.push_back(v.gather(2, index));
        masses.push_back(g.gather(1, sel));
      }
    }
    torch::Tensor K = torch::cat(keys, 2);   // [B, Hkv, K, d]
    torch::Tensor V = torch::cat(values, 2); // [B, Hkv, K, d]
    torch::Tensor m = torch::cat(masses, 1); // [B, K]
    const int64_t numKeys = K.size(2);

    // Spec section 5: logit = q.k / sqrt(d) + beta * log(m + eps), as
    // one [G*nq, d] x [d, K] product per (batch, kv head).
    torch::Tensor qb =
        q.narrow(3, w.queryBegin, nq).reshape({batch * Hkv, G * nq, d});
    torch::Tensor Kt = K.view({batch * Hkv, numKeys, d}).transpose(1, 2);
    torch::Tensor logits;
    if (beta != 0.0) {
      torch::Tensor bias = (beta * torch::log(m + p.eps))
                               .view({batch, 1, 1, numKeys})
                               .expand({batch, Hkv, 1, numKeys})
                               .reshape({batch * Hkv, 1, numKeys});
      logits = torch::baddbmm(bias, qb, Kt, /*beta=*/1.0, /*alpha=*/scale);
    } else {
      logits = torch::bmm(qb, Kt).mul_(scale);
    }
    logits = logits.view({batch, Hkv, G, nq, numKeys});
    // Causal: query i sees raw keys [a_1, i] only; the mask touches level 1's
    // columns on the diagonal block alone.
    if (p.causal) {
      auto idx = opts.dtype(torch::kLong);
      torch::Tensor keyPos =
          torch::arange(w.a1, w.a1 + numRaw, idx).view({1, numRaw});
      torch::Tensor queryPos =
          torch::arange(w.queryBegin, w.queryEnd, idx).view({nq, 1});
      logits.narrow(4, 0, numRaw)
          .masked_fill_(keyPos > queryPos,
                        -std::numeric_limits<double>::infinity());
    }
    // One softmax over the union of all levels, then the values.
    torch::Tensor probs =
        torch::softmax(logits, -1).view({batch, Hkv, G * nq, numKeys});
    out.narrow(3, w.queryBegin, nq)
        .copy_(torch::matmul(probs, V).view({batch, Hkv, G, nq, d}));
  }
  // [B, Hkv, G, N, d] -> [B, N, H*d] with h = c*G + j.
  return out.permute({0, 3, 1, 2, 4}).reshape({batch, N, H * d}).to(ioType);
}

//===----------------------------------------------------------------------===//
// One attention layer
//===----------------------------------------------------------------------===//

torch::Tensor hag::ref::attentionLayer(const ModelConfig &cfg, const Weights &w,
                                       const std::string &prefix,
                                       const torch::Tensor &x) {
  const PyramidParams &p = cfg.attn;
  // Spec section 3: q_i = Wq x_i, k_i = Wk x_i, v_i = Wv x_i (nn.Linear
  // layout), RoPE by raw position before anything else.
  torch::Tensor q = torch::linear(x, weight(w, prefix + "wq", x));
  torch::Tensor k = torch::linear(x, weight(w, prefix + "wk", x));
  torch::Tensor v = torch::linear(x, weight(w, prefix + "wv", x));
  if (cfg.rope) {
    q = rope(q, p.headDim, cfg.ropeBase);
    k = rope(k, p.headDim, cfg.ropeBase);
  }
  // Spec section 2: the gate reads the same input x.
  torch::Tensor g = memoryGate(x, weight(w, prefix + "gate.w1", x),
                               weight(w, prefix + "gate.b1", x),
                               weight(w, prefix + "gate.w2", x),
                               weight(w, prefix + "gate.b2", x), p.temperature);
  // Conv compression: A_l for the levels this N uses.
  std::vector<torch::Tensor> convK, convV;
  if (p.compress == Compress::Conv) {
    const int64_t L = resolveLevels(p, x.size(1));
    for (int64_t l = 2; l <= L - 1; ++l) {
      convK.push_back(weight(w, prefix + "conv.k." + std::to_string(l), x));
      convV.push_back(weight(w, prefix + "conv.v." + std::to_string(l), x));
    }
  }
  torch::Tensor o = pyramidAttentionCore(p, q, k, v, g, convK, convV);
  // Spec section 5: out_i = Wo [o_i for all heads].
  return torch::linear(o, weight(w, prefix + "wo", x));
}

//===----------------------------------------------------------------------===//
// Dense attention
//===----------------------------------------------------------------------===//

torch::Tensor hag::ref::denseAttention(const torch::Tensor &qIn,
                                       const torch::Tensor &kIn,
                                       const torch::Tensor &vIn, int64_t heads,
                                       int64_t kvHeads, bool causal) {
  TORCH_CHECK(heads % kvHeads == 0, "heads must be a multiple of kvHeads");
  const int64_t batch = qIn.size(0), N = qIn.size(1), Nk = kIn.size(1);
  const int64_t d = qIn.size(2) / heads, G = heads / kvHeads;
  const torch::ScalarType ioType = qIn.scalar_type();
  const auto opts = qIn.options().dtype(computeType(ioType));
  // q [B, Hkv, G*N, d]; k, v [B, Hkv, Nk, d] (head h reads kv head h / G).
  torch::Tensor q = qIn.to(opts)
                        .view({batch, N, kvHeads, G, d})
                        .permute({0, 2, 3, 1, 4})
                        .reshape({batch, kvHeads, G * N, d});
  torch::Tensor k =
      kIn.to(opts).view({batch, Nk, kvHeads, d}).permute({0, 2, 1, 3});
  torch::Tensor v =
      vIn.to(opts).view({batch, Nk, kvHeads, d}).permute({0, 2, 1, 3});
  torch::Tensor logits = torch::matmul(q, k.transpose(2, 3)) /
                         std::sqrt(double(d)); // [B, Hkv, G*N, Nk]
  if (causal) {
    torch::Tensor future =
        torch::ones({N, Nk}, opts.dtype(torch::kBool)).triu(1);
    logits = logits.view({batch, kvHeads, G, N, Nk})
                 .masked_fill(future, -std::numeric_limits<double>::infinity())
                 .view({batch, kvHeads, G * N, Nk});
  }
  torch::Tensor o = torch::matmul(torch::softmax(logits, -1), v);
  return o.view({batch, kvHeads, G, N, d})
      .permute({0, 3, 1, 2, 4})
      .reshape({batch, N, heads * d})
      .to(ioType);
}
