//===- Levels.cpp - Gate, levels, windows and summaries (reference) -------===//
//
// Spec sections 1-4: the memory gate, the compressed levels, which window of
// every level a query block sees, the global summary and select_k. Written
// from ../shared/design/pyramid-attention.md alone.
//
//===----------------------------------------------------------------------===//

#include "hag/reference/Reference.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

using namespace hag;
using namespace hag::ref;

namespace {

/// floor(a / b) for b > 0 and any sign of a.
int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/// ceil(a / b) for b > 0 and any sign of a.
int64_t ceilDiv(int64_t a, int64_t b) { return -floorDiv(-a, b); }

/// sigma_l saturates here, far above any sequence length.
constexpr int64_t kSigmaCap = int64_t(1) << 62;

} // namespace

//===----------------------------------------------------------------------===//
// Spec section 1: sizes of the levels, L = auto
//===----------------------------------------------------------------------===//

int64_t hag::ref::sigma(int64_t r, int64_t l) {
  int64_t s = 1;
  for (int64_t i = 1; i < l; ++i)
    s = s > kSigmaCap / r ? kSigmaCap : s * r;
  return s;
}

int64_t hag::ref::levelLength(int64_t r, int64_t l, int64_t N) {
  return ceilDiv(N, sigma(r, l));
}

int64_t hag::ref::resolveLevels(const PyramidParams &p, int64_t N) {
  if (!p.isAutoLevels())
    return p.levels;
  TORCH_CHECK(N >= 1, "resolveLevels: N must be >= 1, got ", N);
  int64_t numBlocks = ceilDiv(N, p.block);
  // Spec section 1: the smallest L >= 3 for which, for every query block, the
  // left windows reach raw position 0 (a_{L-1} = 0) and, bidirectional, the
  // right windows reach N (e_{L-1} = n_{L-1}).
  for (int64_t L = 3;; ++L) {
    TORCH_CHECK(L < 64, "resolveLevels: no L reaches the whole sequence");
    int64_t nTop = levelLength(p.ratio, L - 1, N);
    bool reaches = true;
    for (int64_t b = 0; b < numBlocks && reaches; ++b) {
      BlockWindows w = blockWindows(p, L, N, b);
      const LevelWindow &top = w.levels.back();
      reaches = top.a == 0 && (p.causal || top.e == nTop);
    }
    if (reaches)
      return L;
  }
}

//===----------------------------------------------------------------------===//
// Spec section 4: the windows of a query block
//===----------------------------------------------------------------------===//

BlockWindows hag::ref::blockWindows(const PyramidParams &p, int64_t L,
                                    int64_t N, int64_t b) {
  TORCH_CHECK(L >= 3, "blockWindows: L must be >= 3, got ", L);
  TORCH_CHECK(p.block % p.ratio == 0, "B must be a multiple of r");
  const int64_t B = p.block, r = p.ratio, W = p.window;
  BlockWindows w;
  w.queryBegin = b * B;
  w.queryEnd = std::min(N, (b + 1) * B);
  // Level 1: a_1 = max(0, (b-1) B); causal c_1 = i + 1 (the mask on the
  // diagonal block), bidirectional e_1 = min(N, (b+2) B).
  w.a1 = std::max<int64_t>(0, (b - 1) * B);
  w.rawEnd = p.causal ? w.queryEnd : std::min(N, (b + 2) * B);

  int64_t aPrev = w.a1, ePrev = w.rawEnd;
  for (int64_t l = 2; l <= L - 1; ++l) {
    LevelWindow lw;
    // c_l = a_{l-1} / r, exact: a_1 = (b-1) B and the a_l below are
    // multiples of r.
    TORCH_CHECK(aPrev % r == 0, "a_", l - 1, " = ", aPrev,
                " is not a multiple of r");
    lw.c = aPrev / r;
    if (l < L - 1)
      lw.a = std::max<int64_t>(0, r * floorDiv(lw.c - W, r));
    else
      lw.a = std::max<int64_t>(0, lw.c - W);
    if (!p.causal) {
      int64_t nl = levelLength(r, l, N);
      lw.ePrime = ceilDiv(ePrev, r);
      lw.e = l < L - 1 ? std::min(nl, r * ceilDiv(lw.ePrime + W, r))
                       : std::min(nl, lw.ePrime + W);
      ePrev = lw.e;
    }
    aPrev = lw.a;
    w.levels.push_back(lw);
  }
  // The summary: causal, the prefix [0, a_{L-1} sigma_{L-1}); bidirectional,
  // the whole sequence. T' = min(T, |P|).
  w.summaryPrefix = p.causal ? aPrev * sigma(r, L - 1) : N;
  w.summaryTokens = std::min(p.summary, w.summaryPrefix);
  return w;
}

std::pair<int64_t, int64_t>
hag::ref::summarySegment(int64_t prefix, int64_t tPrime, int64_t t) {
  return {t * prefix / tPrime, (t + 1) * prefix / tPrime};
}

//===----------------------------------------------------------------------===//
// Spec section 2: the memory gate
//===----------------------------------------------------------------------===//

torch::Tensor hag::ref::memoryGate(const torch::Tensor &x,
                                   const torch::Tensor &w1,
                                   const torch::Tensor &b1,
                                   const torch::Tensor &w2,
                                   const torch::Tensor &b2, double tau) {
  // s_i = w2 . SiLU(W1 x_i + b1) + b2;  g_i = sigmoid(s_i / tau).
  torch::Tensor hidden = torch::silu(torch::linear(x, w1, b1)); // [B, N, Dg]
  torch::Tensor s = torch::matmul(hidden, w2) + b2;             // [B, N]
  return torch::sigmoid(s / tau);
}

//===----------------------------------------------------------------------===//
// Spec section 3: the compressed levels
//===----------------------------------------------------------------------===//

std::vector<torch::Tensor>
hag::ref::buildLevels(const PyramidParams &p, int64_t L,
                      const torch::Tensor &kv, const torch::Tensor &g,
                      const std::vector<torch::Tensor> &convA,
                      std::vector<torch::Tensor> &masses) {
  const int64_t r = p.ratio, N = kv.size(2);
  const int64_t batch = kv.size(0), Hkv = kv.size(1), d = kv.size(3);
  const double eps = p.eps;
  torch::Tensor gw = g.to(kv.scalar_type());
  masses.clear();
  std::vector<torch::Tensor> levels;

  // Level 1: the raw tokens, mass m_i = g_i. `prevSum` carries
  // sum_{i in P} g_i k_i for gated_mean (the sums over a level-l span are the
  // sums of its r children's sums); `prevKey` and `prevMass` carry K_{l-1}
  // and m_{l-1}.
  torch::Tensor prevKey = kv, prevMass = gw;
  torch::Tensor prevSum;
  if (p.compress == Compress::GatedMean)
    prevSum = gw.view({batch, 1, N, 1}) * kv;

  for (int64_t l = 2; l <= L - 1; ++l) {
    const int64_t nl = levelLength(r, l, N);
    const int64_t nPrev = prevMass.size(1);
    // Children j*r .. j*r+r-1 of token j; those past the end have mass 0.
    const int64_t pad = nl * r - nPrev;
    // m_l(j) = sum_{i in P} g_i = the sum of the children's masses.
    torch::Tensor childMass =
        torch::constant_pad_nd(prevMass, {0, pad}).view({batch, nl, r});
    torch::Tensor mass = childMass.sum(-1); // [B, n_l]
    torch::Tensor massDen = (mass + eps).view({batch, 1, nl, 1});

    torch::Tensor key;
    switch (p.compress) {
    case Compress::GatedMean: {
      // K_l(j) = sum_{i in P} g_i k_i / (m_l(j) + eps).
      torch::Tensor sum = torch::constant_pad_nd(prevSum, {0, 0, 0, pad})
                              .view({batch, Hkv, nl, r, d})
                              .sum(3);
      key = sum / massDen;
      prevSum = sum;
      break;
    }
    case Compress::Max: {
      // K_l(j) = elementwise max_{i in P} k_i (max of the children's maxima).
      key = torch::constant_pad_nd(prevKey, {0, 0, 0, pad},
                                   -std::numeric_limits<double>::infinity())
                .view({batch, Hkv, nl, r, d})
                .amax(3);
      break;
    }
    case Compress::Conv: {
      // K_l(j) = sum_t A_l[t] (*) (w_t K_{l-1}(j r + t)),
      // w_t = m_{l-1}(j r + t) / (m_l(j) + eps).
      TORCH_CHECK(static_cast<int64_t>(convA.size()) >= l - 1,
                  "conv compression needs A_", l);
      torch::Tensor A = convA[l - 2].to(kv.options());
      TORCH_CHECK(A.dim() == 3 && A.size(0) == Hkv && A.size(1) == r &&
                      A.size(2) == d,
                  "A_", l, " must be [Hkv, r, d]");
      torch::Tensor wt = childMass / (mass + eps).unsqueeze(-1); // [B, n_l, r]
      torch::Tensor child = torch::constant_pad_nd(prevKey, {0, 0, 0, pad})
                                .view({batch, Hkv, nl, r, d});
      key = (A.view({1, Hkv, 1, r, d}) * wt.view({batch, 1, nl, r, 1}) * child)
                .sum(3);
      break;
    }
    }
    levels.push_back(key);
    masses.push_back(mass);
    prevKey = key;
    prevMass = mass;
  }
  return levels;
}

//===----------------------------------------------------------------------===//
// Spec section 4: the summary and select_k
//===----------------------------------------------------------------------===//

Summaries hag::ref::buildSummaries(const PyramidParams &p,
                                   const std::vector<BlockWindows> &windows,
                                   const torch::Tensor &k,
                                   const torch::Tensor &v,
                                   const torch::Tensor &g) {
  const int64_t batch = k.size(0), Hkv = k.size(1), d = k.size(3);
  Summaries s;
  // Every segment of every block, as raw [start, end); bidirectional blocks
  // all share the segments of [0, N).
  std::vector<int64_t> starts, ends;
  int64_t maxEnd = 0;
  for (const BlockWindows &w : windows) {
    if (!p.causal && !s.begin.empty()) {
      s.begin.push_back(s.begin.front());
      s.count.push_back(s.count.front());
      continue;
    }
    s.begin.push_back(static_cast<int64_t>(starts.size()));
    s.count.push_back(w.summaryTokens);
    for (int64_t t = 0; t < w.summaryTokens; ++t) {
      auto [lo, hi] = summarySegment(w.summaryPrefix, w.summaryTokens, t);
      starts.push_back(lo);
      ends.push_back(hi);
    }
    maxEnd = std::max(maxEnd, w.summaryPrefix);
  }
  const int64_t S = static_cast<int64_t>(starts.size());
  if (S == 0) {
    s.k = k.new_empty({batch, Hkv, 0, d});
    s.v = v.new_empty({batch, Hkv, 0, d});
    s.mass = g.new_empty({batch, 0}).to(k.scalar_type());
    return s;
  }

  // Running prefix sums of g*k, g*v and g over [0, maxEnd), in float64 (spec
  // section 12: mind the precision of long prefix sums). With the inclusive
  // prefix C(x) = sum_{i <= x}, a segment [lo, hi) sums to
  // C(hi - 1) - C(lo - 1), C(-1) = 0.
  auto dbl = k.options().dtype(torch::kDouble);
  auto idx = k.options().dtype(torch::kLong);
  torch::Tensor gd = g.narrow(1, 0, maxEnd).to(dbl);
  torch::Tensor hi = torch::tensor(ends, idx) - 1;
  torch::Tensor lo = torch::tensor(starts, idx) - 1;
  torch::Tensor hasLo = (lo >= 0).to(dbl);
  torch::Tensor both = torch::cat({hi, lo.clamp_min(0)});
  auto segmentSums = [&](torch::Tensor prefix, int64_t dim) {
    torch::Tensor bounds = prefix.index_select(dim, both);
    torch::Tensor atLo = bounds.narrow(dim, S, S);
    if (dim == 2)
      atLo = atLo * hasLo.view({1, 1, S, 1});
    else
      atLo = atLo * hasLo.view({1, S});
    return bounds.narrow(dim, 0, S) - atLo;
  };
  // A summary token is the gated mean over its segment, sum g k / (m + eps),
  // its mass m the sum of g there.
  torch::Tensor mass = segmentSums(gd.cumsum(1), 1); // [B, S]
  torch::Tensor den = (mass + p.eps).view({batch, 1, S, 1});
  auto segmentMean = [&](const torch::Tensor &x) {
    torch::Tensor gx = x.narrow(2, 0, maxEnd).to(torch::kDouble) *
                       gd.view({batch, 1, maxEnd, 1});
    return (segmentSums(gx.cumsum_(2), 2) / den).to(x.scalar_type());
  };
  s.k = segmentMean(k);
  s.v = segmentMean(v);
  s.mass = mass.to(k.scalar_type());
  return s;
}

torch::Tensor hag::ref::selectTokens(const PyramidParams &p,
                                     const BlockWindows &w,
                                     const torch::Tensor &g) {
  const int64_t batch = g.size(0), N = g.size(1);
  auto idx = g.options().dtype(torch::kLong);
  // The candidates, in increasing raw position: [0, a_1), plus [e_1, N) when
  // bidirectional.
  std::vector<torch::Tensor> ranges{torch::arange(0, w.a1, idx)};
  if (!p.causal)
    ranges.push_back(torch::arange(w.rawEnd, N, idx));
  torch::Tensor candidates = torch::cat(ranges);
  const int64_t kPrime = std::min(p.selectK, candidates.size(0));
  if (kPrime == 0)
    return torch::empty({batch, 0}, idx);
  // A stable descending sort keeps equal g in increasing position: ties go to
  // the lower index.
  torch::Tensor order = std::get<1>(torch::sort(g.index_select(1, candidates),
                                                /*stable=*/true, /*dim=*/1,
                                                /*descending=*/true));
  return candidates.index_select(0, order.narrow(1, 0, kPrime).reshape(-1))
      .view({batch, kPrime});
}
