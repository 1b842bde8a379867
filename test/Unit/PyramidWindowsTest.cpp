//===- PyramidWindowsTest.cpp - Window rules vs. a per-query brute force --===//
//
// Checks hag::countKeys, hag::resolveLevels, hag::computeBlockWindows,
// hag::summarySegment and hag::validatePyramidParams against an independent,
// deliberately naive reference written from the text of spec sections 1, 4
// and 6 (shared/design/pyramid-attention.md). The reference works query by
// query: it derives the windows by the spec recurrences, materialises every
// key as a (kind, index) pair, and counts the distinct keys. It shares no code
// with PyramidWindows.cpp, so a slip in either shows up as a mismatch.
//
//===----------------------------------------------------------------------===//

#include "hag/Analysis/PyramidWindows.h"
#include "hag/Analysis/PyramidParams.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using hag::PyramidParams;

//===----------------------------------------------------------------------===//
// The naive reference
//===----------------------------------------------------------------------===//

// Integer rounding via long double (exact for the small values used here), so
// the reference shares no rounding code with the implementation.
int64_t refFloorDiv(int64_t a, int64_t b) {
  return static_cast<int64_t>(
      std::floor(static_cast<long double>(a) / static_cast<long double>(b)));
}
int64_t refCeilDiv(int64_t a, int64_t b) {
  return static_cast<int64_t>(
      std::ceil(static_cast<long double>(a) / static_cast<long double>(b)));
}

/// sigma_l = r^(l-1).
int64_t refSigma(int64_t r, int64_t l) {
  int64_t s = 1;
  for (int64_t k = 0; k < l - 1; ++k)
    s *= r;
  return s;
}

/// n_l = ceil(N / sigma_l), straight from the definition.
int64_t refLength(int64_t r, int64_t l, int64_t n) {
  return refCeilDiv(n, refSigma(r, l));
}

/// The windows of one query, in the notation of spec section 4. Vectors are
/// indexed by level l = 1..L-1 (index 0 unused) so they read like the spec.
struct RefQuery {
  int64_t query = 0, block = 0, levels = 0;
  std::vector<int64_t> a, c;  // left window [a_l, c_l)
  std::vector<int64_t> ep, e; // right window [e'_l, e_l), bidirectional only
  int64_t prefix = 0;         // summary covers raw [0, prefix)
  int64_t summaryTokens = 0;  // T'
  int64_t selectCandidates = 0;
};

RefQuery refQuery(const PyramidParams &p, int64_t n, int64_t levels,
                  int64_t i) {
  const int64_t bs = p.block, r = p.ratio, w = p.window;
  RefQuery q;
  q.query = i;
  q.levels = levels;
  q.block = i / bs;
  q.a.assign(levels, 0);
  q.c.assign(levels, 0);
  q.ep.assign(levels, 0);
  q.e.assign(levels, 0);
  const int64_t e1 = std::min(n, (q.block + 2) * bs);

  // Level 1: raw tokens a_1 .. i (causal) or [a_1, e_1) (bidirectional).
  q.a[1] = std::max<int64_t>(0, (q.block - 1) * bs);
  q.c[1] = p.causal ? i + 1 : e1;
  for (int64_t l = 2; l <= levels - 1; ++l) {
    q.c[l] = q.a[l - 1] / r;
    if (l < levels - 1)
      q.a[l] = std::max<int64_t>(0, r * refFloorDiv(q.c[l] - w, r));
    else
      q.a[l] = std::max<int64_t>(0, q.c[l] - w);
  }

  if (p.causal) {
    q.prefix = q.a[levels - 1] * refSigma(r, levels - 1);
  } else {
    q.ep[1] = e1;
    q.e[1] = e1;
    for (int64_t l = 2; l <= levels - 1; ++l) {
      int64_t nl = refLength(r, l, n);
      q.ep[l] = refCeilDiv(q.e[l - 1], r);
      if (l < levels - 1)
        q.e[l] = std::min(nl, r * refCeilDiv(q.ep[l] + w, r));
      else
        q.e[l] = std::min(nl, q.ep[l] + w);
    }
    q.prefix = n;
  }
  q.summaryTokens = std::min(p.summary, q.prefix);
  // Raw tokens left of the level-1 window, plus right of it when
  // bidirectional.
  q.selectCandidates = q.a[1] + (p.causal ? 0 : n - e1);
  return q;
}

/// Summary segment t of a prefix of `prefix` tokens cut into `tokens` pieces.
std::pair<int64_t, int64_t> refSegment(int64_t prefix, int64_t tokens,
                                       int64_t t) {
  return {refFloorDiv(t * prefix, tokens),
          refFloorDiv((t + 1) * prefix, tokens)};
}

/// Key kinds besides the levels 1..L-1 (which use their level number).
constexpr int kSummaryKind = 1000, kSelectKind = 1001;
using Key = std::pair<int, int64_t>;

/// The distinct keys of one query: (level, token), (summary, t), (select, raw).
std::vector<Key> refKeys(const PyramidParams &p, int64_t n, const RefQuery &q) {
  std::vector<Key> keys;
  for (int64_t l = 1; l <= q.levels - 1; ++l) {
    for (int64_t t = q.a[l]; t < q.c[l]; ++t)
      keys.push_back({static_cast<int>(l), t});
    if (!p.causal && l >= 2)
      for (int64_t t = q.ep[l]; t < q.e[l]; ++t)
        keys.push_back({static_cast<int>(l), t});
  }
  for (int64_t t = 0; t < q.summaryTokens; ++t)
    keys.push_back({kSummaryKind, t});
  // select_k picks depend on g; only their number matters here, so take the
  // first candidates in raw order.
  int64_t picked = 0;
  for (int64_t t = 0; t < q.a[1] && picked < p.selectK; ++t, ++picked)
    keys.push_back({kSelectKind, t}); // left of the level-1 window
  if (!p.causal)
    for (int64_t t = q.c[1]; t < n && picked < p.selectK; ++t, ++picked)
      keys.push_back({kSelectKind, t}); // right of it: [e_1, N)
  // K(i) counts the union, so duplicates (if any window overlapped) collapse.
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

/// Raw half-open spans [begin, end), checked to tile a range exactly.
using Span = std::pair<int64_t, int64_t>;

/// Succeeds when `spans` are non-empty, pairwise disjoint and their union is
/// exactly [lo, hi).
::testing::AssertionResult tilesExactly(std::vector<Span> spans, int64_t lo,
                                        int64_t hi) {
  std::sort(spans.begin(), spans.end());
  int64_t at = lo;
  for (const Span &s : spans) {
    if (s.second <= s.first)
      return ::testing::AssertionFailure()
             << "empty span [" << s.first << ", " << s.second << ")";
    if (s.first != at)
      return ::testing::AssertionFailure()
             << "span [" << s.first << ", " << s.second << ") starts at "
             << s.first << ", expected " << at << " (gap or overlap)";
    at = s.second;
  }
  if (at != hi)
    return ::testing::AssertionFailure()
           << "spans end at " << at << ", expected " << hi;
  return ::testing::AssertionSuccess();
}

/// Raw spans behind the tokens [begin, end) of level l.
void addLevelSpans(const PyramidParams &p, int64_t n, int64_t l, int64_t begin,
                   int64_t end, std::vector<Span> &spans) {
  int64_t sigma = refSigma(p.ratio, l);
  for (int64_t j = begin; j < end; ++j)
    spans.push_back({j * sigma, std::min(n, (j + 1) * sigma)});
}

/// The structural invariants of spec section 4 for one query.
::testing::AssertionResult checkInvariants(const PyramidParams &p, int64_t n,
                                           const RefQuery &q) {
  const int64_t top = q.levels - 1;
  for (int64_t l = 1; l <= top; ++l) {
    int64_t nl = refLength(p.ratio, l, n);
    if (q.a[l] > q.c[l] || q.c[l] > nl)
      return ::testing::AssertionFailure()
             << "level " << l << " left window [" << q.a[l] << ", " << q.c[l]
             << ") is not inside [0, " << nl << ")";
    if (!p.causal && (q.ep[l] > q.e[l] || q.e[l] > nl || q.c[l] > q.ep[l]))
      return ::testing::AssertionFailure()
             << "level " << l << " right window [" << q.ep[l] << ", " << q.e[l]
             << ") is not inside [" << q.c[l] << ", " << nl << ")";
  }

  std::vector<Span> summary;
  for (int64_t t = 0; t < q.summaryTokens; ++t)
    summary.push_back(refSegment(q.prefix, q.summaryTokens, t));

  if (p.causal) {
    // Level 1, every compressed level and the summary prefix tile [0, i+1).
    std::vector<Span> spans = summary;
    for (int64_t l = 1; l <= top; ++l)
      addLevelSpans(p, n, l, q.a[l], q.c[l], spans);
    if (auto r = tilesExactly(spans, 0, q.query + 1); !r)
      return r << " (causal levels + summary prefix)";
    return ::testing::AssertionSuccess();
  }

  // Bidirectional: the level windows tile one contiguous raw range, which is
  // [0, N) exactly when the outermost windows reach both ends.
  std::vector<Span> spans;
  for (int64_t l = 1; l <= top; ++l) {
    addLevelSpans(p, n, l, q.a[l], q.c[l], spans);
    if (l >= 2)
      addLevelSpans(p, n, l, q.ep[l], q.e[l], spans);
  }
  int64_t topSigma = refSigma(p.ratio, top);
  int64_t lo = q.a[top] * topSigma;
  int64_t hi = std::min(n, q.e[top] * topSigma);
  if (auto r = tilesExactly(spans, lo, hi); !r)
    return r << " (bidirectional level windows)";
  bool reachEnds = q.a[top] == 0 && q.e[top] == refLength(p.ratio, top, n);
  if (reachEnds != (lo == 0 && hi == n))
    return ::testing::AssertionFailure()
           << "windows reach the ends: " << reachEnds << ", but cover [" << lo
           << ", " << hi << ")";
  // The summary always covers the whole sequence.
  if (q.summaryTokens != std::min(p.summary, n))
    return ::testing::AssertionFailure()
           << "T' = " << q.summaryTokens << ", expected min(T, N)";
  if (auto r = tilesExactly(summary, 0, n); !r)
    return r << " (bidirectional summary)";
  return ::testing::AssertionSuccess();
}

/// Per-level key counts in the layout of hag::KeyCounts.
struct RefCounts {
  int64_t levels = 0;
  std::vector<int64_t> sum, max;
  int64_t total = 0, maxTotal = 0;
};

/// Counts the keys of every query by materialising them; with `invariants`
/// also checks the structure of every query's windows.
::testing::AssertionResult refCountKeys(const PyramidParams &p, int64_t n,
                                        int64_t levels, RefCounts &out,
                                        bool invariants) {
  out = RefCounts();
  out.levels = levels;
  out.sum.assign(levels + 1, 0);
  out.max.assign(levels + 1, 0);
  std::vector<int64_t> perQuery(levels + 1);
  for (int64_t i = 0; i < n; ++i) {
    RefQuery q = refQuery(p, n, levels, i);
    if (invariants)
      if (auto r = checkInvariants(p, n, q); !r)
        return r << " at query " << i;
    std::vector<Key> keys = refKeys(p, n, q);
    std::fill(perQuery.begin(), perQuery.end(), 0);
    for (const Key &k : keys) {
      if (k.first == kSummaryKind)
        ++perQuery[levels - 1];
      else if (k.first == kSelectKind)
        ++perQuery[levels];
      else
        ++perQuery[k.first - 1];
    }
    for (int64_t e = 0; e <= levels; ++e) {
      out.sum[e] += perQuery[e];
      out.max[e] = std::max(out.max[e], perQuery[e]);
    }
    int64_t total = static_cast<int64_t>(keys.size());
    out.total += total;
    out.maxTotal = std::max(out.maxTotal, total);
  }
  return ::testing::AssertionSuccess();
}

/// `levels: auto` by brute force: the smallest L in 3..12 for which every
/// query's left windows reach raw 0 and (bidirectional) its right windows
/// reach the end of the last compressed level. -1 when none does.
int64_t refResolveLevels(const PyramidParams &p, int64_t n) {
  if (!p.isAutoLevels())
    return p.levels;
  for (int64_t levels = 3; levels <= 12; ++levels) {
    bool reaches = true;
    int64_t top = levels - 1;
    int64_t topLength = refLength(p.ratio, top, n);
    for (int64_t i = 0; i < n && reaches; ++i) {
      RefQuery q = refQuery(p, n, levels, i);
      reaches = q.a[top] == 0 && (p.causal || q.e[top] == topLength);
    }
    if (reaches)
      return levels;
  }
  return -1;
}

std::string formatVector(const std::vector<int64_t> &v) {
  std::ostringstream os;
  os << "[";
  for (size_t k = 0; k < v.size(); ++k)
    os << (k ? ", " : "") << v[k];
  os << "]";
  return os.str();
}

::testing::AssertionResult sameCounts(const RefCounts &want,
                                      const hag::KeyCounts &got) {
  if (got.levels != want.levels || got.sumPerLevel != want.sum ||
      got.maxPerLevel != want.max || got.totalKeys != want.total ||
      got.maxKeys != want.maxTotal)
    return ::testing::AssertionFailure()
           << "countKeys: levels " << got.levels << " sum "
           << formatVector(got.sumPerLevel) << " max "
           << formatVector(got.maxPerLevel) << " total " << got.totalKeys
           << " maxKeys " << got.maxKeys << "\n brute force: levels "
           << want.levels << " sum " << formatVector(want.sum) << " max "
           << formatVector(want.max) << " total " << want.total << " maxKeys "
           << want.maxTotal;
  return ::testing::AssertionSuccess();
}

/// Compares computeBlockWindows with the per-query reference for every query
/// of every block (all queries of a block must agree with their block).
::testing::AssertionResult sameBlockWindows(const PyramidParams &p, int64_t n,
                                            int64_t levels) {
  const int64_t blocks = refCeilDiv(n, p.block);
  for (int64_t b = 0; b < blocks; ++b) {
    hag::BlockWindows bw = hag::computeBlockWindows(p, n, levels, b);
    auto fail = [&](int64_t i) {
      return ::testing::AssertionFailure()
             << "block " << b << ", query " << i << ": ";
    };
    int64_t qBegin = b * p.block, qEnd = std::min(n, (b + 1) * p.block);
    if (bw.blockIndex != b || bw.queryBegin != qBegin || bw.queryEnd != qEnd)
      return fail(qBegin) << "queries [" << bw.queryBegin << ", " << bw.queryEnd
                          << "), expected [" << qBegin << ", " << qEnd << ")";
    if (static_cast<int64_t>(bw.left.size()) != levels - 1 ||
        bw.right.size() != (p.causal ? 0u : bw.left.size()))
      return fail(qBegin) << "left/right have " << bw.left.size() << "/"
                          << bw.right.size() << " levels";
    for (int64_t i = qBegin; i < qEnd; ++i) {
      RefQuery q = refQuery(p, n, levels, i);
      // Level 1 ends at the block end; a causal query stops at i + 1.
      int64_t level1End = p.causal ? qEnd : q.c[1];
      if (bw.left[0].begin != q.a[1] || bw.left[0].end != level1End)
        return fail(i) << "level 1 [" << bw.left[0].begin << ", "
                       << bw.left[0].end << "), expected [" << q.a[1] << ", "
                       << level1End << ")";
      for (int64_t l = 2; l <= levels - 1; ++l) {
        const hag::TokenRange &left = bw.left[l - 1];
        if (left.begin != q.a[l] || left.end != q.c[l])
          return fail(i) << "level " << l << " left [" << left.begin << ", "
                         << left.end << "), expected [" << q.a[l] << ", "
                         << q.c[l] << ")";
        if (!p.causal) {
          const hag::TokenRange &right = bw.right[l - 1];
          if (right.begin != q.ep[l] || right.end != q.e[l])
            return fail(i) << "level " << l << " right [" << right.begin << ", "
                           << right.end << "), expected [" << q.ep[l] << ", "
                           << q.e[l] << ")";
        }
      }
      if (!p.causal && !bw.right[0].empty())
        return fail(i) << "level 1 right window is not empty";
      if (bw.summaryPrefix != q.prefix || bw.summaryTokens != q.summaryTokens)
        return fail(i) << "summary prefix/tokens " << bw.summaryPrefix << "/"
                       << bw.summaryTokens << ", expected " << q.prefix << "/"
                       << q.summaryTokens;
      int64_t picks = std::min(p.selectK, q.selectCandidates);
      if (bw.selectCandidates != q.selectCandidates || bw.selectTokens != picks)
        return fail(i) << "select candidates/tokens " << bw.selectCandidates
                       << "/" << bw.selectTokens << ", expected "
                       << q.selectCandidates << "/" << picks;
    }
  }
  return ::testing::AssertionSuccess();
}

//===----------------------------------------------------------------------===//
// Hand-worked examples: pin the reference itself to the spec text
//===----------------------------------------------------------------------===//

PyramidParams smallParams(bool causal, int64_t levels) {
  PyramidParams p;
  p.block = 4;
  p.ratio = 2;
  p.window = 2;
  p.summary = 3;
  p.levels = levels;
  p.causal = causal;
  return p;
}

// N = 20, B = 4, r = 2, W = 2, L = 4, causal, query 19 (block 4):
// a_1 = 12 (8 raw keys), c_2 = 6, a_2 = 2*floor(4/2) = 4 (2 keys),
// c_3 = 2, a_3 = max(0, 0) = 0 (2 keys), empty summary: K = 12.
TEST(PyramidWindowsExample, CausalLastQuery) {
  PyramidParams p = smallParams(/*causal=*/true, 4);
  RefQuery q = refQuery(p, 20, 4, 19);
  EXPECT_EQ(q.a[1], 12);
  EXPECT_EQ(q.a[2], 4);
  EXPECT_EQ(q.c[2], 6);
  EXPECT_EQ(q.a[3], 0);
  EXPECT_EQ(q.c[3], 2);
  EXPECT_EQ(q.prefix, 0);
  EXPECT_EQ(refKeys(p, 20, q).size(), 12u);

  hag::BlockWindows bw = hag::computeBlockWindows(p, 20, 4, 4);
  ASSERT_EQ(bw.left.size(), 3u);
  EXPECT_EQ(bw.left[0].begin, 12);
  EXPECT_EQ(bw.left[0].end, 20);
  EXPECT_EQ(bw.left[1].begin, 4);
  EXPECT_EQ(bw.left[1].end, 6);
  EXPECT_EQ(bw.left[2].begin, 0);
  EXPECT_EQ(bw.left[2].end, 2);
  EXPECT_EQ(bw.summaryPrefix, 0);
  EXPECT_EQ(bw.summaryTokens, 0);
}

// Same with L = 3: level 2 is the last compressed level, a_2 = 6 - 2 = 4, so
// the summary prefix is [0, 8) in T' = 3 segments [0,2) [2,5) [5,8).
TEST(PyramidWindowsExample, CausalSummaryPrefix) {
  PyramidParams p = smallParams(/*causal=*/true, 3);
  RefQuery q = refQuery(p, 20, 3, 19);
  EXPECT_EQ(q.a[2], 4);
  EXPECT_EQ(q.prefix, 8);
  EXPECT_EQ(q.summaryTokens, 3);
  EXPECT_EQ(refKeys(p, 20, q).size(), 8u + 2u + 3u);

  hag::BlockWindows bw = hag::computeBlockWindows(p, 20, 3, 4);
  EXPECT_EQ(bw.summaryPrefix, 8);
  EXPECT_EQ(bw.summaryTokens, 3);
  const int64_t bounds[] = {0, 2, 5, 8};
  for (int64_t t = 0; t < 3; ++t) {
    hag::TokenRange s = hag::summarySegment(8, 3, t);
    EXPECT_EQ(s.begin, bounds[t]) << "t = " << t;
    EXPECT_EQ(s.end, bounds[t + 1]) << "t = " << t;
  }
}

// The local_only ablation counts level 1 alone: causal, query i of block b
// sees raw [max(0, (b-1) B), i]; with N = 20 and B = 4 that is 1..4 keys in
// block 0 and 5..8 in every later block.
TEST(PyramidWindowsExample, LocalOnlyCountsLevelOne) {
  PyramidParams p = smallParams(/*causal=*/true, 4);
  p.selectK = 3;
  p.localOnly = true;
  hag::KeyCounts kc = hag::countKeys(p, 20);
  EXPECT_EQ(kc.totalKeys, (1 + 2 + 3 + 4) + 4 * (5 + 6 + 7 + 8));
  EXPECT_EQ(kc.maxKeys, 8);
  for (size_t e = 1; e < kc.sumPerLevel.size(); ++e) {
    EXPECT_EQ(kc.sumPerLevel[e], 0) << "entry " << e;
    EXPECT_EQ(kc.maxPerLevel[e], 0) << "entry " << e;
  }
  // What a run-time walk sees, and the decoding cache it needs: the raw
  // tokens alone.
  EXPECT_EQ(p.attendedLevels(4), 2);
  EXPECT_EQ(p.attendedSummary(), 0);
  EXPECT_EQ(p.attendedSelectK(), 0);
  p.maxSeq = 64;
  hag::DecodeCacheLayout layout = hag::decodeCacheLayout(p);
  EXPECT_TRUE(layout.levelOffset.empty());
  EXPECT_EQ(layout.rows, 64);
}

// Bidirectional, N = 20, query 0 (block 0): level 1 [0, 8); level 2 right
// e'_2 = 4, e_2 = min(10, 2*ceil(6/2)) = 6; level 3 right e'_3 = 3,
// e_3 = min(5, 3 + 2) = 5; summary T' = 3: K = 8 + 2 + 2 + 3 = 15.
TEST(PyramidWindowsExample, BidirectionalFirstQuery) {
  PyramidParams p = smallParams(/*causal=*/false, 4);
  RefQuery q = refQuery(p, 20, 4, 0);
  EXPECT_EQ(q.c[1], 8);
  EXPECT_EQ(q.ep[2], 4);
  EXPECT_EQ(q.e[2], 6);
  EXPECT_EQ(q.ep[3], 3);
  EXPECT_EQ(q.e[3], 5);
  EXPECT_EQ(refKeys(p, 20, q).size(), 15u);

  hag::BlockWindows bw = hag::computeBlockWindows(p, 20, 4, 0);
  ASSERT_EQ(bw.right.size(), 3u);
  EXPECT_EQ(bw.left[0].end, 8);
  EXPECT_EQ(bw.right[1].begin, 4);
  EXPECT_EQ(bw.right[1].end, 6);
  EXPECT_EQ(bw.right[2].begin, 3);
  EXPECT_EQ(bw.right[2].end, 5);
  EXPECT_EQ(bw.summaryTokens, 3);
}

//===----------------------------------------------------------------------===//
// The parameter matrix
//===----------------------------------------------------------------------===//

struct MatrixCase {
  bool causal;
  int64_t levels; // hag::kAutoLevels for auto
  int64_t ratio, block, window, summary, selectK;
};

// Longer than every N below, so the static auto level count serves them all.
constexpr int64_t kMatrixMaxSeq = 2048;

PyramidParams toParams(const MatrixCase &m) {
  PyramidParams p;
  p.causal = m.causal;
  p.levels = m.levels;
  p.ratio = m.ratio;
  p.block = m.block;
  p.window = m.window;
  p.summary = m.summary;
  p.selectK = m.selectK;
  p.maxSeq = kMatrixMaxSeq;
  return p;
}

/// Short, long, around one block, and not multiples of the block.
std::vector<int64_t> seqLens(int64_t block) {
  std::vector<int64_t> ns = {1, 2, 7, 37, 301, 1999};
  for (int64_t n : {block - 1, block, block + 1, 3 * block + 2, 8 * block})
    ns.push_back(n);
  ns.erase(
      std::remove_if(ns.begin(), ns.end(), [](int64_t n) { return n < 1; }),
      ns.end());
  std::sort(ns.begin(), ns.end());
  ns.erase(std::unique(ns.begin(), ns.end()), ns.end());
  return ns;
}

class PyramidWindowsMatrix : public ::testing::TestWithParam<MatrixCase> {};

TEST_P(PyramidWindowsMatrix, MatchesPerQueryBruteForce) {
  const PyramidParams p = toParams(GetParam());
  const int64_t staticRef = refResolveLevels(p, p.maxSeq);
  // Auto is valid exactly when it resolves at max_seq within 12 levels.
  EXPECT_EQ(hag::validatePyramidParams(p).empty(), staticRef > 0)
      << hag::validatePyramidParams(p);
  EXPECT_EQ(hag::staticLevels(p), staticRef);

  for (int64_t n : seqLens(p.block)) {
    SCOPED_TRACE("N = " + std::to_string(n));
    const int64_t levels = refResolveLevels(p, n);
    ASSERT_EQ(hag::resolveLevels(p, n), levels);
    if (levels < 0)
      continue; // auto needs more than 12 levels: countKeys has no answer

    RefCounts want;
    ASSERT_TRUE(refCountKeys(p, n, levels, want, /*invariants=*/true));
    // The brute force always sees something: level 1 holds at least query i.
    ASSERT_GE(want.total, n);
    ASSERT_TRUE(sameCounts(want, hag::countKeys(p, n)));
    ASSERT_TRUE(sameBlockWindows(p, n, levels));

    if (!p.isAutoLevels() || staticRef < 0)
      continue;
    // An artifact built for max_seq runs N <= max_seq with the static level
    // count; the extra levels must hold no keys, so every count is the same.
    ASSERT_GE(staticRef, levels);
    RefCounts atStatic;
    ASSERT_TRUE(refCountKeys(p, n, staticRef, atStatic, /*invariants=*/false));
    EXPECT_EQ(atStatic.total, want.total);
    EXPECT_EQ(atStatic.maxTotal, want.maxTotal);
    for (int64_t e = 0; e <= staticRef; ++e) {
      // Map the static layout onto the resolved one: levels 1..L_N-1 match,
      // the extra levels are empty, summary and select_k line up at the end.
      int64_t expectSum = 0, expectMax = 0;
      if (e < levels - 1) {
        expectSum = want.sum[e];
        expectMax = want.max[e];
      } else if (e >= staticRef - 1) {
        int64_t shifted = e - (staticRef - levels);
        expectSum = want.sum[shifted];
        expectMax = want.max[shifted];
      }
      EXPECT_EQ(atStatic.sum[e], expectSum) << "entry " << e;
      EXPECT_EQ(atStatic.max[e], expectMax) << "entry " << e;
    }
    ASSERT_TRUE(sameBlockWindows(p, n, staticRef));
  }
}

// Ratio 2 with a tiny block and window needs ~log2(N) levels: past some N
// auto must report -1 rather than a wrong level count.
class AutoLevelLimitTest : public ::testing::TestWithParam<bool> {};

TEST_P(AutoLevelLimitTest, ReportsMinusOneBeyondTwelve) {
  PyramidParams p;
  p.causal = GetParam();
  p.levels = hag::kAutoLevels;
  p.ratio = 2;
  p.block = 2;
  p.window = 1;
  bool sawTooDeep = false;
  for (int64_t n : {1, 3, 100, 1000, 2047, 2048, 2049, 4000, 4097, 8191, 8193,
                    16000, 30000}) {
    SCOPED_TRACE("N = " + std::to_string(n));
    int64_t want = refResolveLevels(p, n);
    EXPECT_EQ(hag::resolveLevels(p, n), want);
    p.maxSeq = n;
    EXPECT_EQ(hag::staticLevels(p), want);
    EXPECT_EQ(hag::validatePyramidParams(p).empty(), want > 0)
        << hag::validatePyramidParams(p);
    sawTooDeep |= want < 0;
  }
  EXPECT_TRUE(sawTooDeep) << "no N needed more than 12 levels";
}

INSTANTIATE_TEST_SUITE_P(Windows, AutoLevelLimitTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "Causal" : "Bidir";
                         });

// Configurations where, bidirectional, the right windows need more levels
// than the left ones for some N (e.g. r = 2, B = 4, W = 8, N = 121): the
// right-side condition of `auto` must be checked, not just the left one.
struct RightBindsCase {
  int64_t ratio, block, window;
};

class AutoRightSideTest : public ::testing::TestWithParam<RightBindsCase> {};

TEST_P(AutoRightSideTest, BidirectionalRightWindowsDecideLevels) {
  PyramidParams p;
  p.levels = hag::kAutoLevels;
  p.ratio = GetParam().ratio;
  p.block = GetParam().block;
  p.window = GetParam().window;
  p.summary = 3;
  p.selectK = 2;
  int64_t rightBinds = 0;
  for (int64_t n = 1; n <= 300; ++n) {
    SCOPED_TRACE("N = " + std::to_string(n));
    p.causal = true;
    int64_t causalLevels = refResolveLevels(p, n);
    ASSERT_EQ(hag::resolveLevels(p, n), causalLevels);
    p.causal = false;
    int64_t bidirLevels = refResolveLevels(p, n);
    ASSERT_EQ(hag::resolveLevels(p, n), bidirLevels);
    // Left windows do not depend on the mode, so bidirectional never needs
    // fewer levels.
    ASSERT_GE(bidirLevels, causalLevels);
    if (bidirLevels == causalLevels)
      continue;
    ++rightBinds;
    RefCounts want;
    ASSERT_TRUE(refCountKeys(p, n, bidirLevels, want, /*invariants=*/true));
    ASSERT_TRUE(sameCounts(want, hag::countKeys(p, n)));
    ASSERT_TRUE(sameBlockWindows(p, n, bidirLevels));
  }
  EXPECT_GT(rightBinds, 0) << "the right side never decided the level count";
}

INSTANTIATE_TEST_SUITE_P(
    Windows, AutoRightSideTest,
    ::testing::Values(RightBindsCase{2, 4, 8}, RightBindsCase{2, 2, 2},
                      RightBindsCase{4, 4, 1}, RightBindsCase{3, 3, 1}),
    [](const ::testing::TestParamInfo<RightBindsCase> &info) {
      return "R" + std::to_string(info.param.ratio) + "_B" +
             std::to_string(info.param.block) + "_W" +
             std::to_string(info.param.window);
    });

std::vector<MatrixCase> matrixCases() {
  std::vector<MatrixCase> cases;
  for (bool causal : {true, false})
    for (int64_t levels :
         {int64_t(3), int64_t(4), int64_t(5), hag::kAutoLevels})
      for (int64_t ratio : {2, 4})
        for (int64_t block : {4, 8, 16})
          for (int64_t window : {2, 3, 8})
            for (int64_t summary : {1, 3, 8})
              for (int64_t selectK : {0, 3})
                cases.push_back(
                    {causal, levels, ratio, block, window, summary, selectK});
  return cases;
}

std::string matrixName(const ::testing::TestParamInfo<MatrixCase> &info) {
  const MatrixCase &m = info.param;
  std::ostringstream os;
  os << (m.causal ? "Causal" : "Bidir") << "_L";
  if (m.levels == hag::kAutoLevels)
    os << "auto";
  else
    os << m.levels;
  os << "_R" << m.ratio << "_B" << m.block << "_W" << m.window << "_T"
     << m.summary << "_K" << m.selectK;
  return os.str();
}

INSTANTIATE_TEST_SUITE_P(Windows, PyramidWindowsMatrix,
                         ::testing::ValuesIn(matrixCases()), matrixName);

//===----------------------------------------------------------------------===//
// Summary segments
//===----------------------------------------------------------------------===//

class SummarySegmentTest : public ::testing::TestWithParam<int64_t> {};

// Every T' = min(T, P) for P = the parameter: non-empty, disjoint, exact cover
// of [0, P), and equal to the floor rule.
TEST_P(SummarySegmentTest, FloorRuleTilesThePrefix) {
  const int64_t prefix = GetParam();
  for (int64_t summary : {1, 2, 3, 7, 8, 64, 1024}) {
    const int64_t tokens = std::min(summary, prefix);
    SCOPED_TRACE("T' = " + std::to_string(tokens));
    std::vector<Span> spans;
    for (int64_t t = 0; t < tokens; ++t) {
      hag::TokenRange got = hag::summarySegment(prefix, tokens, t);
      Span want = refSegment(prefix, tokens, t);
      ASSERT_EQ(got.begin, want.first) << "t = " << t;
      ASSERT_EQ(got.end, want.second) << "t = " << t;
      spans.push_back({got.begin, got.end});
    }
    ASSERT_TRUE(tilesExactly(spans, 0, prefix));
  }
}

INSTANTIATE_TEST_SUITE_P(Prefixes, SummarySegmentTest,
                         ::testing::Values(1, 2, 3, 7, 8, 9, 63, 64, 65, 100,
                                           1000, 1023, 1024, 1025, 4097,
                                           int64_t(1) << 20),
                         [](const ::testing::TestParamInfo<int64_t> &info) {
                           return "P" + std::to_string(info.param);
                         });

//===----------------------------------------------------------------------===//
// Validation of spec section 1
//===----------------------------------------------------------------------===//

/// A change to the default parameters, and for an invalid one the names the
/// error message may use for the offending parameter.
struct ParamsCase {
  const char *name;
  std::function<void(PyramidParams &)> mutate;
  /// The message must name one of these (the spec's name or the code's).
  std::vector<std::string> mentions;
};

class InvalidParamsTest : public ::testing::TestWithParam<ParamsCase> {};

TEST_P(InvalidParamsTest, RejectedWithParameterName) {
  PyramidParams p;
  GetParam().mutate(p);
  std::string message = hag::validatePyramidParams(p);
  ASSERT_FALSE(message.empty());
  bool named = false;
  for (const std::string &m : GetParam().mentions)
    named |= message.find(m) != std::string::npos;
  EXPECT_TRUE(named) << "message: " << message;
}

std::vector<ParamsCase> invalidCases() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return {
      {"BlockNotMultipleOfRatio",
       [](PyramidParams &p) { p.block = 6; },
       {"block"}},
      {"BlockNotMultipleOfRatio2",
       [](PyramidParams &p) {
         p.ratio = 3;
         p.block = 64;
       },
       {"block"}},
      {"RatioOne", [](PyramidParams &p) { p.ratio = 1; }, {"ratio"}},
      {"RatioZero", [](PyramidParams &p) { p.ratio = 0; }, {"ratio"}},
      {"LevelsTwo", [](PyramidParams &p) { p.levels = 2; }, {"levels"}},
      {"LevelsThirteen", [](PyramidParams &p) { p.levels = 13; }, {"levels"}},
      {"LevelsNegative", [](PyramidParams &p) { p.levels = -1; }, {"levels"}},
      {"WindowZero", [](PyramidParams &p) { p.window = 0; }, {"window"}},
      {"SummaryZero", [](PyramidParams &p) { p.summary = 0; }, {"summary"}},
      {"Summary1025", [](PyramidParams &p) { p.summary = 1025; }, {"summary"}},
      {"TauZero",
       [](PyramidParams &p) { p.temperature = 0; },
       {"tau", "temperature"}},
      {"TauNegative",
       [](PyramidParams &p) { p.temperature = -0.5; },
       {"tau", "temperature"}},
      {"TauNaN",
       [nan](PyramidParams &p) { p.temperature = nan; },
       {"tau", "temperature"}},
      {"HeadsNotMultipleOfKvHeads",
       [](PyramidParams &p) {
         p.heads = 8;
         p.kvHeads = 3;
       },
       {"heads"}},
      {"SelectKNegative",
       [](PyramidParams &p) { p.selectK = -1; },
       {"select_k"}},
      {"EpsZero", [](PyramidParams &p) { p.eps = 0; }, {"eps"}},
      {"EpsNegative", [](PyramidParams &p) { p.eps = -1e-6; }, {"eps"}},
      {"AutoNeedsMoreThan12Levels",
       [](PyramidParams &p) {
         p.levels = hag::kAutoLevels;
         p.ratio = 2;
         p.block = 2;
         p.window = 1;
         p.maxSeq = int64_t(1) << 30;
       },
       {"levels"}},
  };
}

INSTANTIATE_TEST_SUITE_P(Spec1, InvalidParamsTest,
                         ::testing::ValuesIn(invalidCases()),
                         [](const ::testing::TestParamInfo<ParamsCase> &info) {
                           return std::string(info.param.name);
                         });

class ValidParamsTest : public ::testing::TestWithParam<ParamsCase> {};

TEST_P(ValidParamsTest, Accepted) {
  PyramidParams p;
  GetParam().mutate(p);
  EXPECT_EQ(hag::validatePyramidParams(p), "");
}

std::vector<ParamsCase> validCases() {
  // The boundary values of spec section 1 are allowed; `mentions` is unused.
  return {
      {"Defaults", [](PyramidParams &) {}, {}},
      {"LevelsThree", [](PyramidParams &p) { p.levels = 3; }, {}},
      {"LevelsTwelve", [](PyramidParams &p) { p.levels = 12; }, {}},
      {"LevelsAuto", [](PyramidParams &p) { p.levels = hag::kAutoLevels; }, {}},
      {"SummaryOne", [](PyramidParams &p) { p.summary = 1; }, {}},
      {"Summary1024", [](PyramidParams &p) { p.summary = 1024; }, {}},
      {"WindowOne", [](PyramidParams &p) { p.window = 1; }, {}},
      {"GqaRatioTwo",
       [](PyramidParams &p) {
         p.kvHeads = 4;
         p.ratio = 2;
         p.block = 2;
       },
       {}},
  };
}

INSTANTIATE_TEST_SUITE_P(Spec1, ValidParamsTest,
                         ::testing::ValuesIn(validCases()),
                         [](const ::testing::TestParamInfo<ParamsCase> &info) {
                           return std::string(info.param.name);
                         });

} // namespace
