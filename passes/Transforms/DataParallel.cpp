//===- DataParallel.cpp - hag-data-parallel -------------------------------===//
//
// Spec section 9's data parallelism: each replica computes the loss and the
// gradients of its own rows of the global batch, and @loss_grad's results
// are averaged over the replicas (hag.all_reduce group("data") mean) before
// anything else uses them. With equal rows per replica, the mean of the
// replicas' mean losses is the global batch's mean loss, and likewise for
// the gradients, so the optimizer that follows computes what one process
// with the whole batch computes (up to the order of the additions).
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGDATAPARALLEL
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

namespace {

constexpr StringLiteral kRankProgramAttr = "hag.parallel_rank_program";

struct DataParallelPass
    : mlir::hag::impl::HAGDataParallelBase<DataParallelPass> {
  using HAGDataParallelBase::HAGDataParallelBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (degree < 1) {
      module.emitError() << "hag-data-parallel: degree must be >= 1, got "
                         << static_cast<int64_t>(degree);
      return signalPassFailure();
    }
    if (degree == 1)
      return;
    auto lossGrad = module.lookupSymbol<func::FuncOp>("loss_grad");
    if (!lossGrad || lossGrad.isExternal()) {
      module.emitError() << "hag-data-parallel needs @loss_grad: run "
                            "hag-autodiff first";
      return signalPassFailure();
    }
    auto rankProgram =
        module->getAttrOfType<DictionaryAttr>(kRankProgramAttr);
    if (rankProgram && rankProgram.get("data")) {
      module.emitError() << "hag-data-parallel: the module is already split "
                            "for data parallelism ("
                         << kRankProgramAttr << " = " << rankProgram << ")";
      return signalPassFailure();
    }
    OpBuilder b(module.getContext());
    WalkResult walked = lossGrad.walk([&](func::ReturnOp ret) {
      b.setInsertionPoint(ret);
      for (OpOperand &operand : ret->getOpOperands()) {
        Value v = operand.get();
        auto type = dyn_cast<RankedTensorType>(v.getType());
        if (!type || !type.getElementType().isF32()) {
          ret.emitError() << "hag-data-parallel: result #"
                          << operand.getOperandNumber()
                          << " of @loss_grad is " << v.getType()
                          << ", expected an f32 tensor";
          return WalkResult::interrupt();
        }
        auto mean = AllReduceOp::create(b, ret.getLoc(), type, v,
                                        b.getStringAttr("data"),
                                        b.getUnitAttr());
        operand.set(mean);
      }
      return WalkResult::advance();
    });
    if (walked.wasInterrupted())
      return signalPassFailure();

    SmallVector<NamedAttribute> entries;
    if (rankProgram)
      entries.append(rankProgram.begin(), rankProgram.end());
    entries.push_back(b.getNamedAttr(
        "data", b.getI64IntegerAttr(static_cast<int64_t>(degree))));
    module->setAttr(kRankProgramAttr, b.getDictionaryAttr(entries));
  }
};

} // namespace
