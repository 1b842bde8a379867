//===- ApproximateMath.cpp - hag-approximate-math -------------------------===//

#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGAPPROXIMATEMATH
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;

namespace {
struct HAGApproximateMathPass
    : mlir::hag::impl::HAGApproximateMathBase<HAGApproximateMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
      return name == "exp" || name == "math.exp";
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
