//===- Autodiff.cpp - hag-autodiff: reverse-mode gradients ----------------===//
//
// @loss -> @loss_grad (loss, d loss / d weight for every weight argument).
// The VJP of each op lives with the op (DifferentiableOpInterface, see
// dialect/HAG/IR/HAGVJP.cpp); this pass orders them: it inlines calls,
// seeds d loss = 1, walks the ops backwards, sums fan-in with hag.add, and
// returns the weights' gradients.
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Transforms/Inliner.h"
#include "mlir/Transforms/InliningUtils.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGAUTODIFF
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

namespace {

/// Inlines every func.call in `fn` (transitively). Fails on recursion.
LogicalResult inlineCalls(func::FuncOp fn) {
  InlinerInterface interface(fn.getContext());
  InlinerConfig config;
  for (int round = 0; round < 64; ++round) {
    SmallVector<func::CallOp> calls;
    fn.walk([&](func::CallOp call) { calls.push_back(call); });
    if (calls.empty())
      return success();
    for (func::CallOp call : calls) {
      auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          call, call.getCalleeAttr());
      if (!callee || callee.isExternal())
        return call.emitError() << "hag-autodiff: cannot inline the call to "
                                << call.getCalleeAttr();
      if (failed(inlineCall(interface, config.getCloneCallback(), call,
                            callee, &callee.getBody())))
        return call.emitError() << "hag-autodiff: inlining " << callee.getName()
                                << " failed";
      call.erase();
    }
  }
  return fn.emitError() << "hag-autodiff: calls nested deeper than 64 "
                           "(recursion?)";
}

struct HAGAutodiffPass : mlir::hag::impl::HAGAutodiffBase<HAGAutodiffPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = module.lookupSymbol<func::FuncOp>(entry);
    if (!fn) {
      module.emitError() << "hag-autodiff: no function @" << entry;
      return signalPassFailure();
    }
    auto lossType = fn.getNumResults() == 1
                        ? dyn_cast<RankedTensorType>(fn.getResultTypes()[0])
                        : RankedTensorType();
    if (!lossType || lossType.getRank() != 0 ||
        !lossType.getElementType().isF32()) {
      fn.emitError() << "hag-autodiff: @" << entry
                     << " must return one 0-d f32 loss";
      return signalPassFailure();
    }
    std::string gradName = entry + "_grad";
    if (module.lookupSymbol(gradName)) {
      fn.emitError() << "hag-autodiff: @" << gradName << " already exists";
      return signalPassFailure();
    }
    if (!fn.getBody().hasOneBlock()) {
      fn.emitError() << "hag-autodiff: @" << entry
                     << " must be one block (no control flow)";
      return signalPassFailure();
    }

    func::FuncOp grad = fn.clone();
    grad.setName(gradName);
    module.insert(std::next(Block::iterator(fn)), grad);
    if (failed(inlineCalls(grad)) || !grad.getBody().hasOneBlock()) {
      grad.erase();
      return signalPassFailure();
    }

    Block &body = grad.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss = ret.getOperand(0);
    OpBuilder b(ret);
    Location loc = grad.getLoc();

    // d loss / d value, summed over uses.
    DenseMap<Value, Value> grads;
    auto accumulate = [&](Value v, Value g) {
      auto [it, inserted] = grads.try_emplace(v, g);
      if (!inserted)
        it->second = AddOp::create(b, loc, it->second, g);
    };
    if (seedArgument) {
      unsigned n = grad.getNumArguments();
      (void)grad.insertArgument(
          n, lossType,
          b.getDictionaryAttr({b.getNamedAttr("hag.input", b.getUnitAttr()),
                               b.getNamedAttr("hag.name",
                                              b.getStringAttr("loss_seed"))}),
          loc);
      grads[loss] = grad.getArgument(n);
    } else {
      grads[loss] = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(lossType, b.getF32FloatAttr(1.0f)));
    }

    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops)) {
      SmallVector<Value> resultGrads;
      bool any = false;
      for (Value r : op->getResults()) {
        Value g = grads.lookup(r);
        any |= static_cast<bool>(g);
        resultGrads.push_back(g);
      }
      if (!any)
        continue;
      auto diff = dyn_cast<DifferentiableOpInterface>(op);
      if (!diff) {
        if (isa<MemoryGateOp, BuildLevelOp, GlobalSummaryOp,
                CrossLevelAttentionOp>(op))
          op->emitError() << "hag-autodiff: '" << op->getName()
                          << "' has no vector-Jacobian product: differentiate "
                             "the fused hag.pyramid_attention (run "
                             "hag-fuse-pyramid first; hag-compile does)";
        else
          op->emitError() << "hag-autodiff: '" << op->getName()
                          << "' has no vector-Jacobian product yet, and it "
                             "lies on the path to the loss";
        grad.erase();
        return signalPassFailure();
      }
      for (auto [i, g] : llvm::enumerate(resultGrads))
        if (!g) {
          // A result that does not reach the loss contributes zeros.
          auto t = dyn_cast<RankedTensorType>(op->getResult(i).getType());
          if (!t || !t.hasStaticShape()) {
            op->emitError() << "hag-autodiff: result " << i
                            << " does not reach the loss and has no static "
                               "shape for its zero gradient";
            grad.erase();
            return signalPassFailure();
          }
          resultGrads[i] = arith::ConstantOp::create(
              b, loc, DenseElementsAttr::get(t, b.getZeroAttr(t.getElementType())));
        }
      SmallVector<Value> operandGrads;
      if (failed(diff.buildVJP(b, resultGrads, operandGrads))) {
        grad.erase();
        return signalPassFailure();
      }
      for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads))
        if (g)
          accumulate(operand, g);
    }

    // Return the loss and the gradient of every weight argument.
    SmallVector<Value> results = {loss};
    SmallVector<Attribute> resultAttrs = {b.getDictionaryAttr({})};
    for (BlockArgument arg : body.getArguments()) {
      if (grad.getArgAttr(arg.getArgNumber(), "hag.input"))
        continue;
      Value g = grads.lookup(arg);
      if (!g) {
        auto t = dyn_cast<RankedTensorType>(arg.getType());
        if (!t || !t.hasStaticShape()) {
          grad.emitError() << "hag-autodiff: argument " << arg.getArgNumber()
                           << " gets no gradient and has no static shape";
          grad.erase();
          return signalPassFailure();
        }
        g = arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(t, b.getZeroAttr(t.getElementType())));
      }
      results.push_back(g);
      SmallVector<NamedAttribute> attrs;
      if (auto name = grad.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                        "hag.name"))
        attrs.push_back(b.getNamedAttr("hag.grad_of", name));
      resultAttrs.push_back(b.getDictionaryAttr(attrs));
    }
    func::ReturnOp::create(b, ret.getLoc(), results);
    ret.erase();
    grad.setFunctionType(FunctionType::get(
        &getContext(), grad.getArgumentTypes(), ValueRange(results).getTypes()));
    grad.setAllResultAttrs(resultAttrs);
  }
};

} // namespace
