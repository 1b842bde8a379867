//===- CostModel.h - FLOPs, bytes and keys per query ------------*- C++ -*-===//
//
// The analysis behind `hag-compile --report=cost`: sums the CostOpInterface of
// every op of a module at a given sequence length and batch, and counts the
// keys each query attends to, level by level, with the exact window rules.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_ANALYSIS_COSTMODEL_H
#define HAG_ANALYSIS_COSTMODEL_H

#include "hag/Analysis/PyramidWindows.h"
#include "hag/Dialect/HAG/IR/HAGInterfaces.h"

#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir {
class ModuleOp;
} // namespace mlir

namespace mlir::hag {

/// The cost of one op of the module.
struct OpCostEntry {
  std::string opName;   // e.g. "hag.linear"
  std::string location; // e.g. "layers.0.attn"
  OpCost cost;
};

/// The attention part of the report, summed over every attention op.
struct AttentionCostSummary {
  ::hag::PyramidParams params;
  /// Key counts of one attention op (all attention ops of a model share one
  /// configuration; the counts are per op, per head, per sequence).
  ::hag::KeyCounts keys;
  int64_t attentionOps = 0;
  /// 4 d sum_i K(i) * heads * batch * attentionOps (spec section 6).
  double attentionFlops = 0;
  /// 4 d N^2 (or N(N+1)/2 causal) * heads * batch * attentionOps.
  double denseFlops = 0;
  double denseEquivalentRatio() const {
    return denseFlops > 0 ? attentionFlops / denseFlops : 0;
  }
  double keysPerQueryMean() const {
    return static_cast<double>(keys.totalKeys) / keys.seqLen;
  }
};

struct CostReport {
  CostContext ctx;
  std::vector<OpCostEntry> ops;
  OpCost total;
  /// Empty when the module has no attention op.
  std::vector<AttentionCostSummary> attention;
};

/// Computes the report. Fails (with a diagnostic on the offending op) when the
/// sequence length exceeds an attention op's max_seq or is < 1, or when two
/// attention ops disagree on their configuration.
LogicalResult computeCostReport(ModuleOp module, const CostContext &ctx,
                                CostReport &report);

/// Human-readable tables.
void printCostReportText(const CostReport &report, llvm::raw_ostream &os);
/// JSON with at least seq, keys_per_query_mean, dense_equivalent_ratio,
/// attention_flops, dense_attention_flops (interfaces.md).
void printCostReportJSON(const CostReport &report, llvm::raw_ostream &os);

} // namespace mlir::hag

#endif // HAG_ANALYSIS_COSTMODEL_H
