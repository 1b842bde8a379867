//===- MixedPrecision.cpp - hag-mixed-precision ---------------------------===//
//
// fp16/bf16 inputs, fp32 accumulation (spec section 8): the float operands
// of every matrix product and of the attention in one function are rounded
// to the half type and widened back, so the f32 kernels compute on exactly
// the values a half-precision Tensor Core would read.
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGMIXEDPRECISION
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

namespace {

/// The operand numbers of `op` that feed a product in half precision.
SmallVector<unsigned> productOperands(Operation *op) {
  if (isa<LinearOp>(op))
    return {0, 1}; // input, weight (not the bias)
  if (isa<LinearBackwardOp>(op))
    return {0, 1, 2}; // dy, x, W
  if (isa<SwiGLUOp>(op))
    return {0, 1, 2, 3}; // x, W_gate, W_up, W_down
  if (isa<PyramidAttentionOp>(op))
    return {0, 1, 2, 3, 4}; // q, k, v, gate input, W1
  if (isa<PyramidAttentionBackwardOp>(op))
    return {0, 1, 2, 3}; // dO, q, k, v
  return {};
}

struct HAGMixedPrecisionPass
    : mlir::hag::impl::HAGMixedPrecisionBase<HAGMixedPrecisionPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Type half;
    if (precision == "fp16-mixed")
      half = Float16Type::get(&getContext());
    else if (precision == "bf16-mixed")
      half = BFloat16Type::get(&getContext());
    else {
      module.emitError() << "hag-mixed-precision: precision must be "
                            "fp16-mixed or bf16-mixed, got '"
                         << precision << "'";
      return signalPassFailure();
    }
    auto fn = module.lookupSymbol<func::FuncOp>(entry);
    if (!fn) {
      module.emitError() << "hag-mixed-precision: no function @" << entry;
      return signalPassFailure();
    }
    // One rounded copy per value, made right after its definition.
    DenseMap<Value, Value> rounded;
    auto roundedOf = [&](Value v) -> Value {
      auto type = dyn_cast<RankedTensorType>(v.getType());
      if (!type || !type.getElementType().isF32())
        return v;
      if (Value r = rounded.lookup(v))
        return r;
      OpBuilder b(&getContext());
      if (auto arg = dyn_cast<BlockArgument>(v))
        b.setInsertionPointToStart(arg.getOwner());
      else
        b.setInsertionPointAfter(v.getDefiningOp());
      Location loc = v.getLoc();
      Value low = arith::TruncFOp::create(
          b, loc, RankedTensorType::get(type.getShape(), half), v);
      Value back = arith::ExtFOp::create(b, loc, type, low);
      rounded[v] = back;
      return back;
    };
    fn.walk([&](Operation *op) {
      for (unsigned i : productOperands(op))
        op->setOperand(i, roundedOf(op->getOperand(i)));
    });
  }
};

} // namespace
