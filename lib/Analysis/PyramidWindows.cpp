//===- PyramidWindows.cpp - Window rules of spec section 4 ----------------===//

#include "hag/Analysis/PyramidWindows.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace hag {

static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
/// Floor division that is correct for negative numerators.
static int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t levelSpan(int64_t ratio, int64_t level) {
  // Saturates instead of overflowing (r = 1024 with 12 levels is valid): a
  // span beyond INT64_MAX only ever multiplies a window start of 0, since a
  // non-empty window's tokens lie inside the sequence.
  int64_t span = 1;
  for (int64_t l = 1; l < level; ++l) {
    if (span > std::numeric_limits<int64_t>::max() / ratio)
      return std::numeric_limits<int64_t>::max();
    span *= ratio;
  }
  return span;
}

int64_t levelLength(int64_t ratio, int64_t level, int64_t seqLen) {
  // Repeated ceil division equals ceil(N / r^(l-1)) and cannot overflow.
  int64_t n = seqLen;
  for (int64_t l = 1; l < level; ++l)
    n = ceilDiv(n, ratio);
  return n;
}

int64_t numQueryBlocks(int64_t block, int64_t seqLen) {
  return ceilDiv(seqLen, block);
}

TokenRange summarySegment(int64_t prefix, int64_t tokens, int64_t t) {
  assert(tokens > 0 && t >= 0 && t < tokens);
  return {t * prefix / tokens, (t + 1) * prefix / tokens};
}

BlockWindows computeBlockWindows(const PyramidParams &p, int64_t seqLen,
                                 int64_t levels, int64_t b) {
  const int64_t n = seqLen, r = p.ratio, w = p.window, bs = p.block;
  BlockWindows bw;
  bw.blockIndex = b;
  bw.queryBegin = b * bs;
  bw.queryEnd = std::min(n, (b + 1) * bs);

  // Left side, level 1 .. L-1. Level 1 ends at the block end (causal: the
  // per-query end i + 1 is applied by the consumer).
  int64_t a = std::max<int64_t>(0, (b - 1) * bs);
  int64_t level1End = p.causal ? bw.queryEnd : std::min(n, (b + 2) * bs);
  bw.left.push_back({a, level1End});
  for (int64_t l = 2; l <= levels - 1; ++l) {
    int64_t c = a / r; // exact: a is a multiple of r
    int64_t al = (l < levels - 1) ? std::max<int64_t>(0, r * floorDiv(c - w, r))
                                  : std::max<int64_t>(0, c - w);
    bw.left.push_back({al, c});
    a = al;
  }
  int64_t lastSpan = levelSpan(r, levels - 1);

  if (p.causal) {
    bw.summaryPrefix = a * lastSpan;
  } else {
    // Right side: e'_l = ceil(e_{l-1} / r), e_l rounded up to a multiple of r
    // below the last compressed level.
    bw.right.push_back({level1End, level1End}); // level 1: folded into left
    int64_t e = level1End;
    for (int64_t l = 2; l <= levels - 1; ++l) {
      int64_t nl = levelLength(r, l, n);
      int64_t ep = ceilDiv(e, r);
      int64_t el = (l < levels - 1) ? std::min(nl, r * ceilDiv(ep + w, r))
                                    : std::min(nl, ep + w);
      bw.right.push_back({ep, el});
      e = el;
    }
    bw.summaryPrefix = n;
  }
  bw.summaryTokens = std::min<int64_t>(p.summary, bw.summaryPrefix);

  // select_k candidates: raw tokens outside the level-1 window.
  bw.selectCandidates = bw.left[0].begin + (p.causal ? 0 : n - level1End);
  bw.selectTokens = std::min<int64_t>(p.selectK, bw.selectCandidates);
  return bw;
}

/// True when every block's windows reach raw position 0 (and N when
/// bidirectional) with `levels` levels.
static bool windowsReachEnds(const PyramidParams &p, int64_t seqLen,
                             int64_t levels) {
  int64_t blocks = numQueryBlocks(p.block, seqLen);
  // Left windows only grow with the block index, right windows only shrink
  // towards the end: the last block bounds the left side, the first the right.
  BlockWindows last = computeBlockWindows(p, seqLen, levels, blocks - 1);
  if (last.left.back().begin != 0)
    return false;
  if (!p.causal) {
    BlockWindows first = computeBlockWindows(p, seqLen, levels, 0);
    int64_t lastLevel = levels - 1;
    int64_t endOfLevel = levelLength(p.ratio, lastLevel, seqLen);
    int64_t reached =
        lastLevel == 1 ? first.left[0].end : first.right.back().end;
    if (reached != endOfLevel)
      return false;
  }
  return true;
}

int64_t resolveLevels(const PyramidParams &p, int64_t seqLen) {
  if (!p.isAutoLevels())
    return p.levels;
  for (int64_t levels = kMinLevels; levels <= kMaxLevels; ++levels)
    if (windowsReachEnds(p, seqLen, levels))
      return levels;
  return -1;
}

int64_t staticLevels(const PyramidParams &p) {
  return resolveLevels(p, p.maxSeq);
}

KeyCounts countKeys(const PyramidParams &p, int64_t seqLen) {
  KeyCounts kc;
  kc.seqLen = seqLen;
  kc.levels = resolveLevels(p, seqLen);
  assert(kc.levels >= kMinLevels && "invalid configuration");
  size_t entries = kc.levels + 1; // L-1 levels, summary, select_k
  kc.sumPerLevel.assign(entries, 0);
  kc.maxPerLevel.assign(entries, 0);
  int64_t blocks = numQueryBlocks(p.block, seqLen);
  for (int64_t b = 0; b < blocks; ++b) {
    BlockWindows bw = computeBlockWindows(p, seqLen, kc.levels, b);
    int64_t q = bw.queryEnd - bw.queryBegin;
    std::vector<int64_t> perQuery(entries,
                                  0); // keys of every query but level 1
    int64_t level1Sum, level1Max;
    if (p.causal) {
      // Query i sees raw [a_1, i + 1).
      int64_t first = bw.queryBegin + 1 - bw.left[0].begin;
      int64_t lastCount = bw.queryEnd - bw.left[0].begin;
      level1Sum = (first + lastCount) * q / 2;
      level1Max = lastCount;
    } else {
      level1Sum = bw.left[0].size() * q;
      level1Max = bw.left[0].size();
    }
    for (int64_t l = 1; l < kc.levels - 1; ++l)
      perQuery[l] = bw.left[l].size() + (p.causal ? 0 : bw.right[l].size());
    perQuery[kc.summaryIndex()] = bw.summaryTokens;
    perQuery[kc.selectIndex()] = bw.selectTokens;
    if (p.localOnly) // level 1 alone
      std::fill(perQuery.begin(), perQuery.end(), 0);

    kc.sumPerLevel[0] += level1Sum;
    kc.maxPerLevel[0] = std::max(kc.maxPerLevel[0], level1Max);
    int64_t others = 0;
    for (size_t e = 1; e < entries; ++e) {
      kc.sumPerLevel[e] += perQuery[e] * q;
      kc.maxPerLevel[e] = std::max(kc.maxPerLevel[e], perQuery[e]);
      others += perQuery[e];
    }
    kc.totalKeys += level1Sum + others * q;
    kc.maxKeys = std::max(kc.maxKeys, level1Max + others);
  }
  return kc;
}

int64_t denseKeys(bool causal, int64_t seqLen) {
  return causal ? seqLen * (seqLen + 1) / 2 : seqLen * seqLen;
}

DecodeCacheLayout decodeCacheLayout(const PyramidParams &p) {
  DecodeCacheLayout c;
  c.maxSeq = p.maxSeq;
  c.levels = p.attendedLevels(staticLevels(p));
  int64_t row = p.maxSeq;
  for (int64_t l = 2; l < c.levels; ++l) {
    c.levelOffset.push_back(row);
    row += levelLength(p.ratio, l, p.maxSeq);
  }
  c.summaryOffset = row;
  c.selectOffset = row + p.attendedSummary();
  c.rows = c.selectOffset + p.attendedSelectK();
  return c;
}

} // namespace hag
