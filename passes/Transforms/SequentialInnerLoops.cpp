//===- SequentialInnerLoops.cpp - hag-sequential-inner-loops --------------===//
//
// Linalg's parallel loops give an elementwise op over [batch, N, D] a 3-d
// scf.parallel; convert-scf-to-openmp turns that into one collapsed
// work-sharing loop whose every iteration recovers its indices with integer
// divisions, and LLVM cannot vectorize it. This pass runs the innermost
// dimension of such leaf loops as an scf.for instead: OpenMP shares the
// outer dimensions (a row per iteration) and the contiguous inner loop
// vectorizes.
//
//===----------------------------------------------------------------------===//

#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGSEQUENTIALINNERLOOPS
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;

namespace {

/// A leaf loop: two or more dimensions, no reductions, and a body of
/// straight-line code (no nested loops, regions or calls), so one
/// iteration is a few instructions and the division per iteration of a
/// collapsed loop dominates.
bool isLeafLoop(scf::ParallelOp loop) {
  if (loop.getNumLoops() < 2 || loop.getNumReductions() != 0)
    return false;
  for (Operation &op : loop.getBody()->without_terminator())
    if (op.getNumRegions() != 0 || isa<CallOpInterface>(op))
      return false;
  return true;
}

void sequentializeInnermost(scf::ParallelOp loop) {
  OpBuilder b(loop);
  Location loc = loop.getLoc();
  unsigned n = loop.getNumLoops();
  auto outer = scf::ParallelOp::create(
      b, loc, loop.getLowerBound().drop_back(), loop.getUpperBound().drop_back(),
      loop.getStep().drop_back());
  b.setInsertionPointToStart(outer.getBody());
  auto inner = scf::ForOp::create(b, loc, loop.getLowerBound()[n - 1],
                                  loop.getUpperBound()[n - 1],
                                  loop.getStep()[n - 1]);
  IRMapping map;
  for (unsigned i = 0; i + 1 < n; ++i)
    map.map(loop.getInductionVars()[i], outer.getInductionVars()[i]);
  map.map(loop.getInductionVars()[n - 1], inner.getInductionVar());
  b.setInsertionPointToStart(inner.getBody());
  for (Operation &op : loop.getBody()->without_terminator())
    b.clone(op, map);
  loop.erase();
}

struct HAGSequentialInnerLoopsPass
    : mlir::hag::impl::HAGSequentialInnerLoopsBase<
          HAGSequentialInnerLoopsPass> {
  void runOnOperation() override {
    SmallVector<scf::ParallelOp> leaves;
    getOperation().walk([&](scf::ParallelOp loop) {
      if (isLeafLoop(loop))
        leaves.push_back(loop);
    });
    for (scf::ParallelOp loop : leaves)
      sequentializeInnermost(loop);
  }
};

} // namespace
