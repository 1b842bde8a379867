//===- ReferenceTest.cpp - Tests of the LibTorch reference ----------------===//
//
// The reference against (1) the spec's sanity property (section 5: with all
// g = 1 and equal keys inside every compressed span the pyramid is dense
// attention), (2) a naive per-query float64 implementation written here
// straight from spec sections 3-5 with explicit key lists and a scalar
// softmax, (3) the language model's shapes, weights and initial loss, and (4)
// float32 against float64.
//
//===----------------------------------------------------------------------===//

#include "hag/reference/Reference.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

using hag::Compress;
using hag::PyramidParams;
using namespace hag::ref;

namespace {

const char *name(Compress c) {
  switch (c) {
  case Compress::GatedMean:
    return "gated_mean";
  case Compress::Max:
    return "max";
  case Compress::Conv:
    return "conv";
  }
  return "?";
}

std::string describe(const PyramidParams &p, int64_t N) {
  std::ostringstream os;
  os << "N=" << N << " H=" << p.heads << " Hkv=" << p.kvHeads
     << " d=" << p.headDim << " B=" << p.block << " r=" << p.ratio << " L="
     << (p.isAutoLevels() ? std::string("auto") : std::to_string(p.levels))
     << " W=" << p.window << " T=" << p.summary << " " << name(p.compress)
     << (p.causal ? " causal" : " bidirectional") << " beta=" << p.massBias
     << " select_k=" << p.selectK;
  return os.str();
}

double maxAbsDiff(const torch::Tensor &a, const torch::Tensor &b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble))
      .abs()
      .max()
      .item<double>();
}

//===----------------------------------------------------------------------===//
// A naive per-query implementation of spec sections 3-5
//===----------------------------------------------------------------------===//

/// One key of a query's explicit key list.
struct NaiveKey {
  std::vector<double> k, v;
  double m;
};

/// Spec sections 3-5 query by query: the windows from section 4's formulas
/// (floating-point floor/ceil), every level token from its raw span (conv by
/// its recursion), the summary by direct sums, select_k by an explicit sort,
/// and a scalar softmax. No tensors in the arithmetic.
class NaivePyramid {
public:
  NaivePyramid(const PyramidParams &p, torch::Tensor q, torch::Tensor k,
               torch::Tensor v, torch::Tensor g,
               std::vector<torch::Tensor> convK,
               std::vector<torch::Tensor> convV)
      : p(p), q(q.contiguous()), k(k.contiguous()), v(v.contiguous()),
        g(g.contiguous()), convK(std::move(convK)), convV(std::move(convV)),
        N(q.size(1)), d(p.headDim) {
    L = p.isAutoLevels() ? autoLevels() : p.levels;
  }

  int64_t levels() const { return L; }

  /// o [B, N, H*d].
  torch::Tensor run() {
    torch::Tensor out = torch::zeros_like(q);
    auto o = out.accessor<double, 3>();
    for (int64_t bt = 0; bt < q.size(0); ++bt)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t h = 0; h < p.heads; ++h) {
          std::vector<double> oi = attend(bt, i, h);
          for (int64_t e = 0; e < d; ++e)
            o[bt][i][h * d + e] = oi[e];
        }
    return out;
  }

  /// The windows of query i, per spec section 4.
  struct Windows {
    int64_t rawLo, rawHi;                      // level 1: raw [rawLo, rawHi)
    std::vector<std::array<int64_t, 4>> level; // l-2: a, c, e', e
    int64_t prefix, tPrime;                    // summary
    std::vector<int64_t> select;               // raw positions
    int64_t e1;
  };

  Windows windows(int64_t i, int64_t numLevels, int64_t bt = 0) const {
    const int64_t B = p.block, r = p.ratio, W = p.window;
    Windows w;
    int64_t b = i / B;
    int64_t a1 = std::max<int64_t>(0, (b - 1) * B);
    w.rawLo = a1;
    w.e1 = p.causal ? i + 1 : std::min(N, (b + 2) * B);
    w.rawHi = w.e1;
    int64_t aPrev = a1, ePrev = w.e1;
    for (int64_t l = 2; l <= numLevels - 1; ++l) {
      int64_t c = aPrev / r;
      EXPECT_EQ(aPrev % r, 0);
      int64_t a = l < numLevels - 1
                      ? std::max<int64_t>(0, r * (int64_t)std::floor(
                                                     double(c - W) / double(r)))
                      : std::max<int64_t>(0, c - W);
      int64_t eP = 0, e = 0;
      if (!p.causal) {
        int64_t nl = (int64_t)std::ceil(double(N) / double(sig(l)));
        eP = (int64_t)std::ceil(double(ePrev) / double(r));
        e = l < numLevels - 1
                ? std::min<int64_t>(
                      nl, r * (int64_t)std::ceil(double(eP + W) / double(r)))
                : std::min<int64_t>(nl, eP + W);
        ePrev = e;
      }
      w.level.push_back({a, c, eP, e});
      aPrev = a;
    }
    w.prefix = p.causal ? aPrev * sig(numLevels - 1) : N;
    w.tPrime = std::min(p.summary, w.prefix);
    if (p.selectK > 0) {
      std::vector<int64_t> cand;
      for (int64_t j = 0; j < a1; ++j)
        cand.push_back(j);
      if (!p.causal)
        for (int64_t j = std::min(N, (b + 2) * B); j < N; ++j)
          cand.push_back(j);
      auto ga = g.accessor<double, 2>();
      std::sort(cand.begin(), cand.end(), [&](int64_t x, int64_t y) {
        if (ga[bt][x] != ga[bt][y])
          return ga[bt][x] > ga[bt][y];
        return x < y;
      });
      cand.resize(std::min<int64_t>(p.selectK, cand.size()));
      w.select = cand;
    }
    return w;
  }

private:
  int64_t sig(int64_t l) const {
    int64_t s = 1;
    for (int64_t i = 1; i < l; ++i)
      s *= p.ratio;
    return s;
  }
  int64_t len(int64_t l) const { return (N + sig(l) - 1) / sig(l); }

  /// Spec section 1's auto, checked query by query.
  int64_t autoLevels() const {
    for (int64_t numLevels = 3;; ++numLevels) {
      bool ok = true;
      for (int64_t i = 0; i < N && ok; ++i) {
        Windows w = windows(i, numLevels);
        ok = w.level.back()[0] == 0 &&
             (p.causal || w.level.back()[3] == len(numLevels - 1));
      }
      if (ok)
        return numLevels;
    }
  }

  double rawMass(int64_t bt, int64_t l, int64_t j) const {
    auto ga = g.accessor<double, 2>();
    double m = 0;
    for (int64_t i = j * sig(l); i < std::min(N, (j + 1) * sig(l)); ++i)
      m += ga[bt][i];
    return m;
  }

  /// K_l(j) (or V_l(j)) of kv head c, per spec section 3.
  std::vector<double> levelToken(bool isV, int64_t bt, int64_t c, int64_t l,
                                 int64_t j) const {
    auto x = (isV ? v : k).accessor<double, 3>();
    auto ga = g.accessor<double, 2>();
    std::vector<double> out(d, 0.0);
    if (l == 1) {
      for (int64_t e = 0; e < d; ++e)
        out[e] = x[bt][j][c * d + e];
      return out;
    }
    const int64_t lo = j * sig(l), hi = std::min(N, (j + 1) * sig(l));
    const double m = rawMass(bt, l, j);
    switch (p.compress) {
    case Compress::GatedMean:
      for (int64_t i = lo; i < hi; ++i)
        for (int64_t e = 0; e < d; ++e)
          out[e] += ga[bt][i] * x[bt][i][c * d + e];
      for (int64_t e = 0; e < d; ++e)
        out[e] /= m + p.eps;
      break;
    case Compress::Max:
      for (int64_t e = 0; e < d; ++e) {
        out[e] = x[bt][lo][c * d + e];
        for (int64_t i = lo + 1; i < hi; ++i)
          out[e] = std::max(out[e], x[bt][i][c * d + e]);
      }
      break;
    case Compress::Conv: {
      auto A = (isV ? convV : convK)[l - 2].accessor<double, 3>();
      for (int64_t t = 0; t < p.ratio; ++t) {
        int64_t child = j * p.ratio + t;
        if (child >= len(l - 1))
          continue; // past the end: mass 0
        double wt = rawMass(bt, l - 1, child) / (m + p.eps);
        std::vector<double> kc = levelToken(isV, bt, c, l - 1, child);
        for (int64_t e = 0; e < d; ++e)
          out[e] += A[c][t][e] * wt * kc[e];
      }
      break;
    }
    }
    return out;
  }

  std::vector<double> attend(int64_t bt, int64_t i, int64_t h) const {
    const int64_t c = h * p.kvHeads / p.heads; // kv(h)
    auto ga = g.accessor<double, 2>();
    Windows w = windows(i, L, bt);
    std::vector<NaiveKey> keys;
    auto raw = [&](int64_t j) {
      keys.push_back({levelToken(false, bt, c, 1, j),
                      levelToken(true, bt, c, 1, j), ga[bt][j]});
    };
    for (int64_t j = w.rawLo; j < w.rawHi; ++j)
      raw(j);
    for (int64_t l = 2; l <= L - 1; ++l) {
      auto [a, cc, eP, e] = w.level[l - 2];
      auto tok = [&](int64_t j) {
        keys.push_back({levelToken(false, bt, c, l, j),
                        levelToken(true, bt, c, l, j), rawMass(bt, l, j)});
      };
      for (int64_t j = a; j < cc; ++j)
        tok(j);
      for (int64_t j = eP; j < e; ++j)
        tok(j);
    }
    auto ka = k.accessor<double, 3>(), va = v.accessor<double, 3>();
    for (int64_t t = 0; t < w.tPrime; ++t) {
      int64_t lo = (int64_t)std::floor(double(t) * w.prefix / w.tPrime + 1e-9);
      int64_t hi =
          (int64_t)std::floor(double(t + 1) * w.prefix / w.tPrime + 1e-9);
      EXPECT_LT(lo, hi);
      NaiveKey key{std::vector<double>(d, 0.0), std::vector<double>(d, 0.0),
                   0.0};
      for (int64_t j = lo; j < hi; ++j) {
        key.m += ga[bt][j];
        for (int64_t e = 0; e < d; ++e) {
          key.k[e] += ga[bt][j] * ka[bt][j][c * d + e];
          key.v[e] += ga[bt][j] * va[bt][j][c * d + e];
        }
      }
      for (int64_t e = 0; e < d; ++e) {
        key.k[e] /= key.m + p.eps;
        key.v[e] /= key.m + p.eps;
      }
      keys.push_back(key);
    }
    for (int64_t j : w.select)
      raw(j);

    // One scalar softmax over every key.
    auto qa = q.accessor<double, 3>();
    std::vector<double> logit(keys.size());
    double mx = -INFINITY;
    for (size_t n = 0; n < keys.size(); ++n) {
      double dot = 0;
      for (int64_t e = 0; e < d; ++e)
        dot += qa[bt][i][h * d + e] * keys[n].k[e];
      logit[n] =
          dot / std::sqrt(double(d)) + p.massBias * std::log(keys[n].m + p.eps);
      mx = std::max(mx, logit[n]);
    }
    double z = 0;
    for (double &x : logit)
      z += (x = std::exp(x - mx));
    std::vector<double> o(d, 0.0);
    for (size_t n = 0; n < keys.size(); ++n)
      for (int64_t e = 0; e < d; ++e)
        o[e] += logit[n] / z * keys[n].v[e];
    return o;
  }

  const PyramidParams &p;
  torch::Tensor q, k, v, g;
  std::vector<torch::Tensor> convK, convV;
  int64_t N, d, L;
};

PyramidParams smallParams() {
  PyramidParams p;
  p.heads = 4;
  p.kvHeads = 2;
  p.headDim = 4;
  p.block = 8;
  p.ratio = 2;
  p.levels = 4;
  p.window = 2;
  p.summary = 3;
  p.eps = 1e-6;
  p.maxSeq = 4096;
  return p;
}

/// g with ties (quarter steps) to exercise select_k's tie rule.
torch::Tensor tiedGates(int64_t batch, int64_t N) {
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  return (torch::randint(1, 5, {batch, N}, opts) / 4.0);
}

} // namespace

//===----------------------------------------------------------------------===//
// Windows, levels and select_k
//===----------------------------------------------------------------------===//

// The windows of spec section 4 tile the sequence: causal, level 1, the
// compressed windows and the summary prefix cover [0, i] once each;
// bidirectional, the level windows cover one contiguous range once each
// ([0, N) with auto), and the summary covers [0, N) on top.
TEST(ReferenceWindows, TileTheSequence) {
  for (bool causal : {true, false})
    for (int64_t r : {2, 3, 4})
      for (int64_t W : {1, 2, 5})
        for (int64_t levels :
             {int64_t(3), int64_t(4), int64_t(6), hag::kAutoLevels})
          for (int64_t N : {1, 11, 12, 13, 100, 397}) {
            PyramidParams p = smallParams();
            p.causal = causal;
            p.ratio = r;
            p.block = 4 * r;
            p.window = W;
            p.levels = levels;
            SCOPED_TRACE(describe(p, N));
            int64_t L = resolveLevels(p, N);
            for (int64_t b = 0; b * p.block < N; ++b) {
              BlockWindows w = blockWindows(p, L, N, b);
              ASSERT_EQ((int64_t)w.levels.size(), L - 2);
              std::vector<int> cover(N, 0);
              int64_t end = causal ? w.queryBegin + 1 : N;
              for (int64_t i = w.a1; i < w.rawEnd; ++i)
                ++cover[i];
              for (int64_t l = 2; l <= L - 1; ++l) {
                const LevelWindow &lw = w.levels[l - 2];
                int64_t s = sigma(r, l);
                for (int64_t j = lw.a; j < lw.c; ++j)
                  for (int64_t i = j * s; i < std::min(N, (j + 1) * s); ++i)
                    ++cover[i];
                for (int64_t j = lw.ePrime; j < lw.e; ++j)
                  for (int64_t i = j * s; i < std::min(N, (j + 1) * s); ++i)
                    ++cover[i];
              }
              if (causal) {
                for (int64_t i = 0; i < w.summaryPrefix; ++i)
                  ++cover[i];
                // The first query of the block sees raw [a_1, queryBegin].
                for (int64_t i = w.queryBegin + 1; i < w.rawEnd; ++i)
                  --cover[i];
                // Summary segments: disjoint, non-empty, exact cover.
                int64_t next = 0;
                for (int64_t t = 0; t < w.summaryTokens; ++t) {
                  auto [lo, hi] =
                      summarySegment(w.summaryPrefix, w.summaryTokens, t);
                  EXPECT_EQ(lo, next);
                  EXPECT_LT(lo, hi);
                  next = hi;
                }
                EXPECT_EQ(next, w.summaryPrefix);
              } else {
                EXPECT_EQ(w.summaryPrefix, N);
              }
              // Causal: [0, i] exactly. Bidirectional (the summary overlaps
              // the windows): the windows alone tile [a_{L-1} sigma_{L-1},
              // min(N, e_{L-1} sigma_{L-1})), all of [0, N) with auto.
              int64_t begin = 0;
              if (!causal) {
                const LevelWindow &top = w.levels.back();
                int64_t s = sigma(r, L - 1);
                begin = top.a * s;
                end = std::min(N, top.e * s);
                if (levels == hag::kAutoLevels)
                  EXPECT_TRUE(begin == 0 && end == N);
              }
              for (int64_t i = 0; i < N; ++i)
                ASSERT_EQ(cover[i], i >= begin && i < end ? 1 : 0)
                    << "block " << b << " raw " << i;
              if (levels == hag::kAutoLevels && causal)
                EXPECT_EQ(w.summaryPrefix, 0);
            }
            // auto is the smallest L that reaches the ends.
            if (levels == hag::kAutoLevels && L > 3) {
              bool shorterReaches = true;
              int64_t nTop = levelLength(r, L - 2, N);
              for (int64_t b = 0; b * p.block < N; ++b) {
                BlockWindows w = blockWindows(p, L - 1, N, b);
                shorterReaches &= w.levels.back().a == 0 &&
                                  (causal || w.levels.back().e == nTop);
              }
              EXPECT_FALSE(shorterReaches);
            }
          }
}

TEST(ReferenceWindows, SelectKTiesGoToTheLowerIndex) {
  PyramidParams p = smallParams();
  p.selectK = 3;
  const int64_t N = 24;
  torch::Tensor g = torch::full({1, N}, 0.25, torch::kDouble);
  // Block 2 (queries 16..23) has a_1 = 8: candidates 0..7.
  g[0][1] = 0.5;
  g[0][6] = 0.75;
  g[0][4] = 0.5;
  g[0][12] = 1.0; // inside the window: not a candidate
  BlockWindows w = blockWindows(p, resolveLevels(p, N), N, 2);
  torch::Tensor sel = selectTokens(p, w, g);
  ASSERT_EQ(sel.size(1), 3);
  EXPECT_EQ(sel[0][0].item<int64_t>(), 6);
  EXPECT_EQ(sel[0][1].item<int64_t>(), 1);
  EXPECT_EQ(sel[0][2].item<int64_t>(), 4);
  // Fewer candidates than k: all of them.
  p.selectK = 100;
  EXPECT_EQ(selectTokens(p, w, g).size(1), 8);
  // Bidirectional block 0 (e_1 = 16): candidates 16..23.
  p.causal = false;
  p.selectK = 2;
  w = blockWindows(p, 4, N, 0);
  sel = selectTokens(p, w, g);
  EXPECT_EQ(sel[0][0].item<int64_t>(), 16);
  EXPECT_EQ(sel[0][1].item<int64_t>(), 17);
}

TEST(ReferenceLevels, GateAndRope) {
  torch::manual_seed(1);
  auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  const int64_t D = 6, Dg = 5, N = 7, d = 4, heads = 2;
  torch::Tensor x = torch::randn({2, N, D}, dbl),
                w1 = torch::randn({Dg, D}, dbl);
  torch::Tensor b1 = torch::randn({Dg}, dbl), w2 = torch::randn({Dg}, dbl);
  torch::Tensor b2 = torch::randn({1}, dbl);
  torch::Tensor g = memoryGate(x, w1, b1, w2, b2, 0.1);
  ASSERT_EQ(g.sizes(), torch::IntArrayRef({2, N}));
  for (int64_t bt = 0; bt < 2; ++bt)
    for (int64_t i = 0; i < N; ++i) {
      double s = b2.item<double>();
      for (int64_t u = 0; u < Dg; ++u) {
        double a = b1[u].item<double>();
        for (int64_t e = 0; e < D; ++e)
          a += w1[u][e].item<double>() * x[bt][i][e].item<double>();
        s += w2[u].item<double>() * a / (1 + std::exp(-a));
      }
      EXPECT_NEAR(g[bt][i].item<double>(), 1 / (1 + std::exp(-s / 0.1)), 1e-12);
    }

  torch::Tensor y = torch::randn({2, N, heads * d}, dbl);
  const int64_t offset = 3;
  torch::Tensor ry = rope(y, d, 10000.0, offset);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < d / 2; ++j) {
        double theta = double(i + offset) * std::pow(10000.0, -2.0 * j / d);
        double u0 = y[1][i][h * d + j].item<double>();
        double u1 = y[1][i][h * d + j + d / 2].item<double>();
        EXPECT_NEAR(ry[1][i][h * d + j].item<double>(),
                    u0 * std::cos(theta) - u1 * std::sin(theta), 1e-12);
        EXPECT_NEAR(ry[1][i][h * d + j + d / 2].item<double>(),
                    u1 * std::cos(theta) + u0 * std::sin(theta), 1e-12);
      }
}

//===----------------------------------------------------------------------===//
// Spec section 5's sanity property
//===----------------------------------------------------------------------===//

// With all g = 1, beta = 1, a tiny eps, causal and select_k = 0, a compressed
// token (or summary segment) over s equal keys has logit q.k/sqrt(d) +
// log(s) and value v: exactly the s raw tokens behind it. The windows and the
// summary prefix tile [0, i], so the pyramid is dense causal attention when
// k and v are equal inside every compressed token's span and every summary
// segment: we make them constant over sigma_{L-1}-aligned chunks (every
// compressed span lies in one) and over the largest summary prefix of any
// block (every segment lies in it). Bidirectional never qualifies: its summary
// always covers the whole sequence, on top of the windows.
TEST(ReferenceSanity, EqualKeysInsideSpansGiveDenseAttention) {
  torch::manual_seed(2);
  auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  int cases = 0;
  for (Compress mode : {Compress::GatedMean, Compress::Max, Compress::Conv})
    for (int64_t r : {2, 4})
      for (int64_t levels : {int64_t(3), int64_t(4), hag::kAutoLevels})
        for (int64_t N : {5, 16, 33, 100, 257}) {
          PyramidParams p = smallParams();
          p.compress = mode;
          p.ratio = r;
          p.block = 8;
          p.window = 2;
          p.summary = 3;
          p.levels = levels;
          p.eps = 1e-12;
          p.massBias = 1.0;
          SCOPED_TRACE(describe(p, N));
          const int64_t L = resolveLevels(p, N);
          const int64_t chunk = sigma(r, L - 1), batch = 2;
          int64_t maxPrefix = 0;
          for (int64_t b = 0; b * p.block < N; ++b)
            maxPrefix =
                std::max(maxPrefix, blockWindows(p, L, N, b).summaryPrefix);
          // Chunk c of the raw tokens; all of [0, maxPrefix) is chunk 0.
          torch::Tensor pos = torch::arange(N, dbl.dtype(torch::kLong));
          torch::Tensor chunkOf =
              torch::where(pos < maxPrefix, torch::zeros_like(pos),
                           torch::div(pos, chunk, "floor") + 1);
          const int64_t numChunks = chunkOf.max().item<int64_t>() + 1;
          auto expand = [&](int64_t width) {
            return torch::randn({batch, numChunks, width}, dbl)
                .index_select(1, chunkOf);
          };
          torch::Tensor q = torch::randn({batch, N, p.modelDim()}, dbl);
          torch::Tensor k = expand(p.kvDim()), v = expand(p.kvDim());
          torch::Tensor g = torch::ones({batch, N}, dbl);
          std::vector<torch::Tensor> convK, convV;
          if (mode == Compress::Conv)
            for (int64_t l = 2; l <= L - 1; ++l) {
              convK.push_back(torch::ones({p.kvHeads, r, p.headDim}, dbl));
              convV.push_back(torch::ones({p.kvHeads, r, p.headDim}, dbl));
            }
          torch::Tensor pyramid =
              pyramidAttentionCore(p, q, k, v, g, convK, convV);
          torch::Tensor dense =
              denseAttention(q, k, v, p.heads, p.kvHeads, /*causal=*/true);
          EXPECT_LT(maxAbsDiff(pyramid, dense), 1e-9);
          ++cases;
        }
  EXPECT_EQ(cases, 90);
}

// While every query block still reaches raw position 0 (N <= 2B), every key
// is raw: the pyramid is dense causal attention for any k and v.
TEST(ReferenceSanity, ShortSequencesAreDense) {
  torch::manual_seed(3);
  auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  PyramidParams p = smallParams();
  p.eps = 1e-12;
  for (int64_t N : {1, 9, 16}) {
    torch::Tensor q = torch::randn({2, N, p.modelDim()}, dbl);
    torch::Tensor k = torch::randn({2, N, p.kvDim()}, dbl);
    torch::Tensor v = torch::randn({2, N, p.kvDim()}, dbl);
    torch::Tensor g = torch::ones({2, N}, dbl);
    EXPECT_LT(maxAbsDiff(pyramidAttentionCore(p, q, k, v, g, {}, {}),
                         denseAttention(q, k, v, p.heads, p.kvHeads, true)),
              1e-9)
        << "N=" << N;
  }
}

//===----------------------------------------------------------------------===//
// Against the naive per-query implementation
//===----------------------------------------------------------------------===//

namespace {

void checkAgainstNaive(const PyramidParams &p, int64_t N, uint64_t seed) {
  SCOPED_TRACE(describe(p, N));
  torch::manual_seed(seed);
  auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  const int64_t batch = 2;
  torch::Tensor q = torch::randn({batch, N, p.modelDim()}, dbl);
  torch::Tensor k = torch::randn({batch, N, p.kvDim()}, dbl);
  torch::Tensor v = torch::randn({batch, N, p.kvDim()}, dbl);
  torch::Tensor g = tiedGates(batch, N);
  std::vector<torch::Tensor> convK, convV;
  const int64_t L = resolveLevels(p, N);
  if (p.compress == Compress::Conv)
    for (int64_t l = 2; l <= L - 1; ++l) {
      convK.push_back(torch::randn({p.kvHeads, p.ratio, p.headDim}, dbl));
      convV.push_back(torch::randn({p.kvHeads, p.ratio, p.headDim}, dbl));
    }
  NaivePyramid naive(p, q, k, v, g, convK, convV);
  ASSERT_EQ(naive.levels(), L);
  torch::Tensor expected = naive.run();
  torch::Tensor actual = pyramidAttentionCore(p, q, k, v, g, convK, convV);
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_LT(maxAbsDiff(actual, expected), 1e-10);
}

} // namespace

TEST(ReferenceNaive, MatchesPerQueryImplementation) {
  uint64_t seed = 10;
  int cases = 0;
  const int64_t B = 8;
  for (Compress mode : {Compress::GatedMean, Compress::Max, Compress::Conv})
    for (bool causal : {true, false})
      for (int64_t levels : {int64_t(3), int64_t(4), hag::kAutoLevels})
        for (int64_t r : {2, 4})
          for (int64_t N : {int64_t(1), int64_t(7), B - 1, B, B + 1, 3 * B + 5,
                            int64_t(77)}) {
            PyramidParams p = smallParams();
            p.compress = mode;
            p.causal = causal;
            p.levels = levels;
            p.ratio = r;
            p.block = B;
            p.summary = 3;
            // Cycle through W, GQA, select_k and beta.
            p.window = 2 + seed % 3;
            p.kvHeads = (seed / 3) % 2 ? 2 : 4;
            p.selectK = (seed / 2) % 2 ? 3 : 0;
            p.massBias = (seed / 5) % 2 ? 0.0 : 1.0;
            checkAgainstNaive(p, N, seed++);
            ++cases;
          }
  EXPECT_EQ(cases, 252);
}

TEST(ReferenceNaive, AllOptionCombinations) {
  uint64_t seed = 1000;
  for (Compress mode : {Compress::GatedMean, Compress::Max, Compress::Conv})
    for (bool causal : {true, false})
      for (int64_t kvHeads : {1, 2, 4})
        for (int64_t selectK : {0, 3})
          for (double beta : {0.0, 1.0}) {
            PyramidParams p = smallParams();
            p.compress = mode;
            p.causal = causal;
            p.kvHeads = kvHeads;
            p.selectK = selectK;
            p.massBias = beta;
            p.window = 3;
            p.levels = 5;
            checkAgainstNaive(p, 45, seed++);
          }
}

// Larger blocks and sequences, as the compiler's conformance matrix uses.
TEST(ReferenceNaive, LongerSequences) {
  uint64_t seed = 2000;
  for (Compress mode : {Compress::GatedMean, Compress::Max, Compress::Conv})
    for (bool causal : {true, false})
      for (int64_t r : {2, 4}) {
        PyramidParams p = smallParams();
        p.compress = mode;
        p.causal = causal;
        p.headDim = 8;
        p.kvHeads = 1 + seed % 2;
        p.block = 16;
        p.ratio = r;
        p.window = 3;
        p.summary = 5;
        p.levels = 4;
        p.selectK = seed % 3 == 0 ? 2 : 0;
        for (int64_t N : {63, 200})
          checkAgainstNaive(p, N, seed++);
      }
}

//===----------------------------------------------------------------------===//
// The language model and the weights
//===----------------------------------------------------------------------===//

namespace {

ModelConfig tinyLm(bool tied, Compress mode) {
  ModelConfig cfg;
  cfg.kind = ModelConfig::LM;
  cfg.vocab = 256;
  cfg.dModel = 32;
  cfg.layers = 2;
  cfg.mlpHidden = 128;
  cfg.gateHidden = 32;
  cfg.tieEmbeddings = tied;
  cfg.attn = smallParams();
  cfg.attn.heads = 4;
  cfg.attn.kvHeads = 2;
  cfg.attn.headDim = 8;
  cfg.attn.compress = mode;
  cfg.attn.levels = 4;
  cfg.attn.maxSeq = 256;
  return cfg;
}

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

/// interfaces.md's attention weights, written out by hand.
void expectedAttention(ShapeMap &m, const std::string &pre, int64_t D,
                       int64_t H, int64_t Hkv, int64_t d, int64_t Dg,
                       int64_t convLevels, int64_t r) {
  m[pre + "wq"] = {H * d, D};
  m[pre + "wk"] = {Hkv * d, D};
  m[pre + "wv"] = {Hkv * d, D};
  m[pre + "wo"] = {D, H * d};
  m[pre + "gate.w1"] = {Dg, D};
  m[pre + "gate.b1"] = {Dg};
  m[pre + "gate.w2"] = {Dg};
  m[pre + "gate.b2"] = {1};
  for (int64_t l = 2; l < 2 + convLevels; ++l) {
    m[pre + "conv.k." + std::to_string(l)] = {Hkv, r, d};
    m[pre + "conv.v." + std::to_string(l)] = {Hkv, r, d};
  }
}

void expectShapes(const Weights &w, const ShapeMap &expected) {
  ASSERT_EQ(w.size(), expected.size());
  for (const auto &[n, shape] : expected) {
    auto it = w.find(n);
    ASSERT_NE(it, w.end()) << n;
    EXPECT_EQ(it->second.sizes(), torch::IntArrayRef(shape)) << n;
  }
}

} // namespace

TEST(ReferenceModel, WeightNamesAndShapes) {
  for (bool tied : {true, false})
    for (Compress mode : {Compress::GatedMean, Compress::Conv}) {
      ModelConfig cfg = tinyLm(tied, mode);
      ShapeMap m;
      m["embed"] = {256, 32};
      for (int i = 0; i < 2; ++i) {
        std::string pre = "layers." + std::to_string(i) + ".";
        m[pre + "attn_norm.scale"] = {32};
        m[pre + "mlp_norm.scale"] = {32};
        m[pre + "mlp.w_gate"] = {128, 32};
        m[pre + "mlp.w_up"] = {128, 32};
        m[pre + "mlp.w_down"] = {32, 128};
        expectedAttention(m, pre + "attn.", 32, 4, 2, 8, 32,
                          mode == Compress::Conv ? 2 : 0, 2);
      }
      m["final_norm.scale"] = {32};
      if (!tied)
        m["lm_head"] = {256, 32};
      expectShapes(initWeights(cfg, 0, torch::kFloat), m);
    }

  // The attention kind, conv with auto levels (resolved against maxSeq:
  // B = 8, r = 2, W = 2, causal, maxSeq = 100 needs L = 7: the last block
  // has a_1 = 88, then a_2 = 42, a_3 = 18, a_4 = 6, a_5 = 0 and a_6 = 0).
  ModelConfig cfg = tinyLm(true, Compress::Conv);
  cfg.kind = ModelConfig::Attention;
  cfg.gateHidden = 16;
  cfg.attn.levels = hag::kAutoLevels;
  cfg.attn.maxSeq = 100;
  ASSERT_EQ(resolveLevels(cfg.attn, 100), 7);
  ShapeMap m;
  expectedAttention(m, "attn.", 32, 4, 2, 8, 16, 5, 2);
  expectShapes(initWeights(cfg, 0, torch::kDouble), m);
}

TEST(ReferenceModel, InitialisationFollowsSection7) {
  ModelConfig cfg = tinyLm(true, Compress::Conv);
  cfg.dModel = 64;
  cfg.attn.headDim = 16;
  cfg.mlpHidden = 256;
  cfg.gateHidden = 64;
  cfg.layers = 8;
  Weights w = initWeights(cfg, 7, torch::kDouble);
  Weights w32 = initWeights(cfg, 7, torch::kFloat);
  Weights again = initWeights(cfg, 7, torch::kDouble);
  Weights other = initWeights(cfg, 8, torch::kDouble);
  for (const auto &[n, t] : w) {
    EXPECT_EQ(t.scalar_type(), torch::kDouble) << n;
    EXPECT_EQ(w32.at(n).scalar_type(), torch::kFloat) << n;
    EXPECT_TRUE(torch::equal(t, w32.at(n).to(torch::kDouble))) << n;
    EXPECT_TRUE(torch::equal(t, again.at(n))) << n;
  }
  EXPECT_FALSE(torch::equal(w.at("embed"), other.at("embed")));
  auto stdOf = [&](const std::string &n) {
    return w.at(n).std().item<double>();
  };
  EXPECT_NEAR(stdOf("embed"), 0.02, 0.001);
  EXPECT_NEAR(stdOf("layers.3.mlp.w_up"), 0.02, 0.001);
  EXPECT_NEAR(stdOf("layers.3.attn.wq"), 0.02, 0.002);
  EXPECT_NEAR(stdOf("layers.3.attn.gate.w2"), 0.02, 0.006);
  EXPECT_NEAR(stdOf("layers.3.attn.wo"), 0.02 / 4, 0.0004);
  EXPECT_NEAR(stdOf("layers.3.mlp.w_down"), 0.02 / 4, 0.0003);
  for (const char *n : {"layers.1.attn.gate.b1", "layers.1.attn.gate.b2"})
    EXPECT_EQ(w.at(n).abs().max().item<double>(), 0.0) << n;
  for (const char *n : {"layers.1.attn.conv.k.2", "layers.1.attn.conv.v.3",
                        "layers.0.attn_norm.scale", "final_norm.scale"})
    EXPECT_TRUE(torch::equal(w.at(n), torch::ones_like(w.at(n)))) << n;
}

TEST(ReferenceModel, ForwardShapesAndInitialLoss) {
  torch::manual_seed(4);
  for (bool tied : {true, false}) {
    ModelConfig cfg = tinyLm(tied, Compress::GatedMean);
    Weights w = initWeights(cfg, 1, torch::kDouble);
    torch::Tensor tokens = torch::randint(0, cfg.vocab, {2, 40}, torch::kLong);
    torch::Tensor logits = lmForward(cfg, w, tokens);
    ASSERT_EQ(logits.sizes(), torch::IntArrayRef({2, 40, 256}));
    torch::Tensor loss = lmLoss(cfg, w, tokens);
    ASSERT_EQ(loss.dim(), 0);
    EXPECT_NEAR(loss.item<double>(), std::log(256.0), 0.1);
    // The loss is the mean next-token cross-entropy of the logits.
    torch::Tensor ce = torch::nll_loss(
        torch::log_softmax(logits.narrow(1, 0, 39).reshape({-1, 256}), -1),
        tokens.narrow(1, 1, 39).reshape(-1));
    EXPECT_NEAR(loss.item<double>(), ce.item<double>(), 1e-12);
    // Causal: logits at position t do not depend on later tokens.
    torch::Tensor changed = tokens.clone();
    changed[0][30] = (changed[0][30].item<int64_t>() + 1) % 256;
    torch::Tensor logits2 = lmForward(cfg, w, changed);
    EXPECT_LT(maxAbsDiff(logits.narrow(1, 0, 30), logits2.narrow(1, 0, 30)),
              1e-12);
    EXPECT_GT(maxAbsDiff(logits.narrow(1, 30, 10), logits2.narrow(1, 30, 10)),
              0.0);
  }
}

//===----------------------------------------------------------------------===//
// float32 against float64 (spec section 11)
//===----------------------------------------------------------------------===//

TEST(ReferencePrecision, Float32MatchesFloat64) {
  torch::manual_seed(5);
  for (Compress mode : {Compress::GatedMean, Compress::Max, Compress::Conv})
    for (bool causal : {true, false}) {
      ModelConfig cfg;
      cfg.kind = ModelConfig::Attention;
      cfg.dModel = 64;
      cfg.gateHidden = 64;
      cfg.attn = smallParams();
      cfg.attn.heads = 4;
      cfg.attn.kvHeads = 2;
      cfg.attn.headDim = 16;
      cfg.attn.block = 16;
      cfg.attn.ratio = 4;
      cfg.attn.window = 3;
      cfg.attn.summary = 8;
      cfg.attn.levels = 4;
      cfg.attn.selectK = 2;
      cfg.attn.compress = mode;
      cfg.attn.causal = causal;
      SCOPED_TRACE(describe(cfg.attn, 300));
      Weights w64 = initWeights(cfg, 3, torch::kDouble);
      Weights w32 = initWeights(cfg, 3, torch::kFloat);
      torch::Tensor x = torch::randn({2, 300, 64}, torch::kDouble);
      torch::Tensor y64 = attentionLayer(cfg, w64, "attn.", x);
      torch::Tensor y32 =
          attentionLayer(cfg, w32, "attn.", x.to(torch::kFloat));
      EXPECT_EQ(y32.scalar_type(), torch::kFloat);
      EXPECT_GT(y64.abs().max().item<double>(), 1e-3);
      EXPECT_LT(maxAbsDiff(y32, y64), 1e-4);
    }
}
