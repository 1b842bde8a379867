//===- FusePyramid.cpp - hag-fuse-pyramid ---------------------------------===//
//
// Turns the unfused pyramid (memory gate, build_level chain, global summary,
// cross-level attention) into the single hag.pyramid_attention the backends
// consume. The match is all-or-nothing: a partially matching graph is left as
// it is, so the result always computes the same function.
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGFUSEPYRAMID
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

namespace {

/// True when `results` are exactly the results of one op, in order.
bool areResultsOf(Operation *op, ArrayRef<Value> values) {
  if (!op || op->getNumResults() != values.size())
    return false;
  for (auto [r, v] : llvm::zip(op->getResults(), values))
    if (r != v)
      return false;
  return true;
}

struct FuseCrossLevelAttention : OpRewritePattern<CrossLevelAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CrossLevelAttentionOp op,
                                PatternRewriter &rewriter) const override {
    PyramidConfigAttr config = op.getConfig();

    auto gate = op.getGate().getDefiningOp<MemoryGateOp>();
    if (!gate)
      return rewriter.notifyMatchFailure(op, "gate is not a hag.memory_gate");
    if (gate.getConfig() != config)
      return rewriter.notifyMatchFailure(op, "gate has another configuration");

    auto summary = op.getSummaryKeys().getDefiningOp<GlobalSummaryOp>();
    if (!summary ||
        !areResultsOf(summary, {op.getSummaryKeys(), op.getSummaryValues(),
                                op.getSummaryMass()}))
      return rewriter.notifyMatchFailure(
          op, "summary is not the results of one hag.global_summary");
    if (summary.getConfig() != config || summary.getKeys() != op.getKeys() ||
        summary.getValues() != op.getValues() ||
        summary.getGate() != op.getGate())
      return rewriter.notifyMatchFailure(
          op, "summary is not built from the attention's raw keys and gate");

    // Walk the build_level chain from level 2 up.
    SmallVector<Value> convKeys, convValues;
    Value belowK = op.getKeys(), belowV = op.getValues(), belowM = op.getGate();
    for (auto [i, levelK] : llvm::enumerate(op.getLevelKeys())) {
      auto build = levelK.getDefiningOp<BuildLevelOp>();
      if (!build || !areResultsOf(build, {levelK, op.getLevelValues()[i],
                                          op.getLevelMasses()[i]}))
        return rewriter.notifyMatchFailure(
            op, "a level is not the results of one hag.build_level");
      if (build.getConfig() != config ||
          build.getLevelAttr().getInt() != static_cast<int64_t>(i) + 2)
        return rewriter.notifyMatchFailure(
            op, "a level has another configuration or level index");
      if (build.getKeys() != belowK || build.getValues() != belowV ||
          build.getMass() != belowM)
        return rewriter.notifyMatchFailure(
            op, "a level is not built from the level below it");
      if (build.getConvKeys()) {
        convKeys.push_back(build.getConvKeys());
        convValues.push_back(build.getConvValues());
      }
      belowK = build.getLevelKeys();
      belowV = build.getLevelValues();
      belowM = build.getLevelMass();
    }

    rewriter.replaceOpWithNewOp<PyramidAttentionOp>(
        op, op.getResult().getType(), op.getQueries(), op.getKeys(),
        op.getValues(), gate.getInput(), gate.getW1(), gate.getB1(),
        gate.getW2(), gate.getB2(), convKeys, convValues, config);
    return success();
  }
};

struct HAGFusePyramidPass
    : mlir::hag::impl::HAGFusePyramidBase<HAGFusePyramidPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    auto count = [&] {
      int64_t n = 0;
      func.walk([&](CrossLevelAttentionOp) { ++n; });
      return n;
    };
    int64_t before = count();
    RewritePatternSet patterns(&getContext());
    populateFusePyramidPatterns(patterns);
    // Dead producers (all Pure) are erased by the driver.
    if (failed(applyPatternsGreedily(func, std::move(patterns))))
      return signalPassFailure();
    int64_t after = count();
    numFused += before - after;
    numNotFused += after;
  }
};

} // namespace

void mlir::hag::populateFusePyramidPatterns(RewritePatternSet &patterns) {
  patterns.add<FuseCrossLevelAttention>(patterns.getContext());
}
