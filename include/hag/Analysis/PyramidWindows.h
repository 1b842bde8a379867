//===- PyramidWindows.h - Which keys a query sees (spec 4) ------*- C++ -*-===//
//
// The window rules of spec section 4, computed per query block. This is the one
// implementation the compiler uses (cost model, verifiers, code generators);
// the tests check it against an independent per-query brute force.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_ANALYSIS_PYRAMIDWINDOWS_H
#define HAG_ANALYSIS_PYRAMIDWINDOWS_H

#include "hag/Analysis/PyramidParams.h"

#include <cstdint>
#include <vector>

namespace hag {

/// sigma_l = r^(l-1): raw tokens behind one level-l token (level 1 -> 1),
/// saturated at INT64_MAX.
int64_t levelSpan(int64_t ratio, int64_t level);
/// n_l = ceil(N / sigma_l).
int64_t levelLength(int64_t ratio, int64_t level, int64_t seqLen);
/// Number of query blocks, ceil(N / B).
int64_t numQueryBlocks(int64_t block, int64_t seqLen);

/// A half-open range [begin, end) of tokens of one level.
struct TokenRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end > begin ? end - begin : 0; }
  bool empty() const { return size() == 0; }
};

/// The keys of one query block, level by level (spec section 4).
struct BlockWindows {
  int64_t blockIndex = 0;
  /// Queries of the block: raw [queryBegin, queryEnd).
  int64_t queryBegin = 0, queryEnd = 0;
  /// Index 0 is level 1 ... index L-2 is level L-1. Level 1's left range ends
  /// at the block end: in causal mode query i sees level 1 [left.begin, i + 1).
  std::vector<TokenRange> left;
  /// Bidirectional only (empty vector when causal): the right windows,
  /// [e'_l, e_l) per level; level 1 is folded into `left` (it is [a_1, e_1)).
  std::vector<TokenRange> right;
  /// The summary covers raw [0, summaryPrefix) with summaryTokens segments.
  int64_t summaryPrefix = 0;
  int64_t summaryTokens = 0;
  /// Raw tokens eligible for select_k (outside the level-1 window), and how
  /// many are picked: min(select_k, candidates).
  int64_t selectCandidates = 0;
  int64_t selectTokens = 0;
};

/// The number of levels used for sequence length `seqLen`: the fixed value,
/// or for `auto` the smallest L >= 3 whose windows reach position 0 (and N
/// when bidirectional) for every query block. Returns -1 when auto needs more
/// than kMaxLevels levels.
int64_t resolveLevels(const PyramidParams &p, int64_t seqLen);

/// The number of levels an artifact is built with: resolveLevels at max_seq.
/// For auto this serves every N <= max_seq: the extra levels hold empty
/// windows.
int64_t staticLevels(const PyramidParams &p);

/// Windows of query block `blockIndex` for a sequence of `seqLen` tokens and
/// `levels` levels (as returned by resolveLevels or staticLevels).
BlockWindows computeBlockWindows(const PyramidParams &p, int64_t seqLen,
                                 int64_t levels, int64_t blockIndex);

/// The segment [begin, end) of summary token t over a prefix of `prefix` raw
/// tokens split into `tokens` segments (spec section 4, floor rule).
TokenRange summarySegment(int64_t prefix, int64_t tokens, int64_t t);

/// Keys per query, per level: index 0 is level 1 ... L-2 is level L-1, then
/// the summary, then select_k. Sum and max are over all N queries.
struct KeyCounts {
  int64_t seqLen = 0;
  int64_t levels = 0;
  std::vector<int64_t> sumPerLevel;
  std::vector<int64_t> maxPerLevel;
  /// Total keys over all queries (sum of K(i)) and the largest K(i).
  int64_t totalKeys = 0;
  int64_t maxKeys = 0;
  /// The index of the summary and select_k entries in the vectors above.
  size_t summaryIndex() const { return levels - 1; }
  size_t selectIndex() const { return levels; }
};

/// Exact key counts for every query of a length-`seqLen` sequence, computed
/// per block in O(N/B * L) time.
KeyCounts countKeys(const PyramidParams &p, int64_t seqLen);

/// Dense attention's keys over all queries: N^2, or N(N+1)/2 when causal.
int64_t denseKeys(bool causal, int64_t seqLen);

/// The rows of one layer's incremental-decoding cache (spec section 10),
/// shared by the `hag.pyramid_decode` verifier, its CPU lowering and the
/// model builder. Keys and values are [batch, rows, kv_heads * head_dim]
/// buffers holding, one after the other: the raw tokens [0, max_seq), the
/// compressed levels 2 .. L-1 at their max_seq lengths, the current query
/// block's summary tokens (T) and its select_k picks. A [batch, 2 * rows]
/// f32 buffer holds every row's mass bias (first half) and the raw and level
/// masses (second half); three f64 buffers hold the running prefix sums of
/// g*k, g*v ([batch, max_seq + 1, kv_dim]) and g ([batch, max_seq + 1]).
struct DecodeCacheLayout {
  int64_t maxSeq = 0;
  int64_t levels = 0;
  /// levelOffset[l - 2] is the first row of level l (2 <= l < L).
  std::vector<int64_t> levelOffset;
  int64_t summaryOffset = 0;
  int64_t selectOffset = 0;
  int64_t rows = 0;
};
DecodeCacheLayout decodeCacheLayout(const PyramidParams &p);

} // namespace hag

#endif // HAG_ANALYSIS_PYRAMIDWINDOWS_H
