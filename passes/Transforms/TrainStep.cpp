//===- TrainStep.cpp - hag-train-step: the training step as one entry -----===//
//
// @loss_grad (from hag-autodiff) -> @train_step, which runs forward,
// backward, the found-inf check, clipping, the schedule and AdamW in one
// call on weights and optimizer state passed as memrefs and updated in
// place, and @gradients, which writes the gradients into memrefs (spec
// section 8). The state is read through bufferization.to_tensor and written
// back with bufferization.materialize_in_destination after every read, so
// one-shot bufferization keeps the caller's buffers.
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGTRAINSTEP
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

namespace {

/// The arguments of a new entry point, with their attributes.
struct ArgList {
  SmallVector<Type> types;
  SmallVector<DictionaryAttr> attrs;
  void add(OpBuilder &b, Type type, StringRef name, bool input, bool state,
           Attribute shard = {}) {
    types.push_back(type);
    SmallVector<NamedAttribute> a;
    // A tensor-parallel rank's slice of a weight (and of its moments and
    // gradient): hag-split-tensor-parallel's hag.shard, for the manifest.
    if (shard)
      a.push_back(b.getNamedAttr("hag.shard", shard));
    if (input)
      a.push_back(b.getNamedAttr("hag.input", b.getUnitAttr()));
    if (state)
      a.push_back(b.getNamedAttr("hag.state", b.getUnitAttr()));
    a.push_back(b.getNamedAttr("hag.name", b.getStringAttr(name)));
    attrs.push_back(b.getDictionaryAttr(a));
  }
  /// Inserts the public function `name` taking these arguments and
  /// returning `results` at `b`'s insertion point; returns its entry block.
  Block *defineFunction(OpBuilder &b, Location loc, StringRef name,
                        TypeRange results) const {
    auto fn =
        func::FuncOp::create(loc, name, b.getFunctionType(types, results));
    fn.setAllArgAttrs(attrs);
    b.insert(fn);
    return fn.addEntryBlock();
  }
};

MemRefType memrefOf(Type tensor) {
  auto t = cast<RankedTensorType>(tensor);
  return MemRefType::get(t.getShape(), t.getElementType());
}

/// The state buffer `m` as a tensor (read only through this value).
Value readState(OpBuilder &b, Location loc, Value m) {
  auto type = cast<MemRefType>(m.getType());
  return bufferization::ToTensorOp::create(
      b, loc, RankedTensorType::get(type.getShape(), type.getElementType()), m,
      /*restrict=*/b.getUnitAttr(), /*writable=*/UnitAttr());
}

void writeState(OpBuilder &b, Location loc, Value t, Value m) {
  auto op = bufferization::MaterializeInDestinationOp::create(b, loc, t, m);
  op.setRestrict(true);
  op.setWritable(true);
}

/// A 0-d tensor holding `v`.
Value scalarTensor(OpBuilder &b, Location loc, Value v) {
  return tensor::FromElementsOp::create(
      b, loc, RankedTensorType::get({}, v.getType()), ValueRange{v});
}

Value scalarOf(OpBuilder &b, Location loc, Value t) {
  return tensor::ExtractOp::create(b, loc, t, ValueRange{});
}

struct HAGTrainStepPass
    : mlir::hag::impl::HAGTrainStepBase<HAGTrainStepPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto grad = module.lookupSymbol<func::FuncOp>("loss_grad");
    if (!grad) {
      module.emitError() << "hag-train-step: no @loss_grad (run hag-autodiff "
                            "first)";
      return signalPassFailure();
    }
    if (precision != "fp32" && precision != "bf16-mixed" &&
        precision != "fp16-mixed") {
      module.emitError() << "hag-train-step: precision must be fp32, "
                            "bf16-mixed or fp16-mixed, got '"
                         << precision << "'";
      return signalPassFailure();
    }
    if (schedule != "constant" && schedule != "cosine") {
      module.emitError() << "hag-train-step: schedule must be constant or "
                            "cosine, got '"
                         << schedule << "'";
      return signalPassFailure();
    }
    for (StringRef name : {"train_step", "gradients"})
      if (module.lookupSymbol(name)) {
        module.emitError() << "hag-train-step: @" << name << " already exists";
        return signalPassFailure();
      }

    // @loss_grad's inputs and weights, in order; the seed of the backward
    // pass (hag-autodiff seed-argument) is fed by the step itself.
    SmallVector<unsigned> inputs, weights;
    seedIndex.reset();
    for (unsigned i = 0; i < grad.getNumArguments(); ++i) {
      auto name = grad.getArgAttrOfType<StringAttr>(i, "hag.name");
      if (grad.getArgAttr(i, "hag.input") && name &&
          name.getValue() == "loss_seed")
        seedIndex = i;
      else if (grad.getArgAttr(i, "hag.input"))
        inputs.push_back(i);
      else
        weights.push_back(i);
    }
    if (precision == "fp16-mixed" && !seedIndex) {
      grad.emitError() << "hag-train-step: fp16-mixed scales the loss: "
                          "@loss_grad needs its seed as an argument (run "
                          "hag-autodiff with seed-argument=true)";
      return signalPassFailure();
    }
    if (grad.getNumResults() != weights.size() + 1) {
      grad.emitError() << "hag-train-step: @loss_grad must return the loss "
                          "and one gradient per weight";
      return signalPassFailure();
    }
    auto nameOf = [&](unsigned i) -> std::string {
      if (auto n = grad.getArgAttrOfType<StringAttr>(i, "hag.name"))
        return n.getValue().str();
      return "arg" + std::to_string(i);
    };
    for (unsigned i : weights)
      if (!cast<RankedTensorType>(grad.getArgumentTypes()[i]).hasStaticShape()) {
        grad.emitError() << "hag-train-step: weight '" << nameOf(i)
                         << "' has no static shape";
        return signalPassFailure();
      }

    OpBuilder b(&getContext());
    b.setInsertionPointAfter(grad);
    buildTrainStep(b, grad, inputs, weights, nameOf);
    buildGradients(b, grad, inputs, weights, nameOf);
    grad.setPrivate();
  }

  /// Where @loss_grad takes the seed of its backward pass, if it does.
  std::optional<unsigned> seedIndex;

  /// Calls @loss_grad on the entry's inputs and weights (as tensors), with
  /// `seed` (a 0-d f32; 1 when null) as d loss if it takes one.
  func::CallOp callGrad(OpBuilder &b, Location loc, func::FuncOp grad,
                        ArrayRef<Value> inputs, ArrayRef<Value> weights,
                        ArrayRef<unsigned> inputIdx,
                        ArrayRef<unsigned> weightIdx, Value seed = Value()) {
    SmallVector<Value> args(grad.getNumArguments());
    if (seedIndex) {
      if (!seed)
        seed = arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(RankedTensorType::get({}, b.getF32Type()),
                                   b.getF32FloatAttr(1.0f)));
      args[*seedIndex] = seed;
    }
    for (auto [i, v] : llvm::zip(inputIdx, inputs))
      args[i] = v;
    for (auto [i, v] : llvm::zip(weightIdx, weights))
      args[i] = v;
    return func::CallOp::create(b, loc, grad, args);
  }

  void buildTrainStep(OpBuilder &b, func::FuncOp grad,
                      ArrayRef<unsigned> inputIdx,
                      ArrayRef<unsigned> weightIdx,
                      function_ref<std::string(unsigned)> nameOf) {
    Location loc = grad.getLoc();
    Type f32 = b.getF32Type(), i64 = b.getI64Type();
    ArgList args;
    for (unsigned i : inputIdx)
      args.add(b, grad.getArgumentTypes()[i], nameOf(i), true, false);
    args.add(b, MemRefType::get({}, i64), "train.step", false, true);
    args.add(b, MemRefType::get({}, f32), "train.loss_scale", false, true);
    args.add(b, MemRefType::get({}, i64), "train.good_steps", false, true);
    for (StringRef prefix : {"", "opt.exp_avg.", "opt.exp_avg_sq."})
      for (unsigned i : weightIdx)
        args.add(b, memrefOf(grad.getArgumentTypes()[i]),
                 (prefix + nameOf(i)).str(), false, true,
                 grad.getArgAttr(i, "hag.shard"));
    auto statsType = RankedTensorType::get({4}, f32);
    Block *body = args.defineFunction(b, loc, "train_step", statsType);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(body);

    size_t nIn = inputIdx.size(), nW = weightIdx.size();
    SmallVector<Value> in(body->getArguments().take_front(nIn));
    Value stepM = body->getArgument(nIn), scaleM = body->getArgument(nIn + 1),
          goodM = body->getArgument(nIn + 2);
    auto stateArgs = body->getArguments().drop_front(nIn + 3);
    SmallVector<Value> paramM(stateArgs.take_front(nW)),
        avgM(stateArgs.slice(nW, nW)), avgSqM(stateArgs.slice(2 * nW, nW));

    // Read every piece of state before any is written.
    Value step = readState(b, loc, stepM), scale = readState(b, loc, scaleM),
          good = readState(b, loc, goodM);
    SmallVector<Value> params, avg, avgSq;
    for (size_t i = 0; i < nW; ++i) {
      params.push_back(readState(b, loc, paramM[i]));
      avg.push_back(readState(b, loc, avgM[i]));
      avgSq.push_back(readState(b, loc, avgSqM[i]));
    }

    // t = step + 1 (AdamW's bias correction and the schedule are 1-based).
    Value one = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(1));
    Value t = scalarTensor(
        b, loc, arith::AddIOp::create(b, loc, scalarOf(b, loc, step), one));

    // fp16-mixed: the backward pass starts from d loss = the loss scale, so
    // small gradients survive fp16; the weights' gradients are unscaled
    // before anything looks at them.
    bool scaled = precision == "fp16-mixed";
    auto call = callGrad(b, loc, grad, in, params, inputIdx, weightIdx,
                         scaled ? scale : Value());
    Value loss = call.getResult(0);
    SmallVector<Value> grads(call.getResults().drop_front());
    if (scaled) {
      Value inv = arith::DivFOp::create(
          b, loc, arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0f)),
          scalarOf(b, loc, scale));
      for (Value &g : grads) {
        Value splat = tensor::SplatOp::create(b, loc, inv, g.getType());
        g = arith::MulFOp::create(b, loc, g, splat);
      }
    }
    Value finite, norm;
    SmallVector<Value> sharded, replicated;
    for (size_t i = 0; i < grads.size(); ++i)
      (grad.getArgAttr(weightIdx[i], "hag.shard") ? sharded : replicated)
          .push_back(grads[i]);
    if (sharded.empty()) {
      finite = AllFiniteOp::create(
          b, loc, RankedTensorType::get({}, b.getI1Type()), grads);
      SmallVector<Type> gradTypes(ValueRange(grads).getTypes());
      // Without clipping (clip = 0) the norm is still reported: an infinite
      // threshold, and the gradients are used as they are.
      gradTypes.push_back(RankedTensorType::get({}, f32));
      auto clipped = ClipGradNormOp::create(
          b, loc, gradTypes, grads,
          b.getF64FloatAttr(clip > 0.0
                                ? clip.getValue()
                                : std::numeric_limits<double>::infinity()));
      if (clip > 0.0)
        grads.assign(clipped.getClipped().begin(), clipped.getClipped().end());
      norm = clipped.getNorm();
    } else {
      std::tie(finite, norm) =
          tensorParallelNorm(b, loc, grads, sharded, replicated);
    }
    Value lr = LRScheduleOp::create(
        b, loc, RankedTensorType::get({}, f32), t, b.getF64FloatAttr(this->lr),
        b.getI64IntegerAttr(warmup), b.getI64IntegerAttr(std::max<int64_t>(total, 1)),
        b.getStringAttr(schedule));
    for (size_t i = 0; i < nW; ++i) {
      auto type = cast<RankedTensorType>(params[i].getType());
      // Spec 8: weight decay on matrices only.
      double wd = type.getRank() >= 2 ? weightDecay.getValue() : 0.0;
      auto upd = AdamWOp::create(
          b, loc, TypeRange{type, type, type}, params[i], grads[i], avg[i],
          avgSq[i], t, lr, finite, b.getF64FloatAttr(beta1),
          b.getF64FloatAttr(beta2), b.getF64FloatAttr(eps),
          b.getF64FloatAttr(wd));
      writeState(b, loc, upd.getNewParam(), paramM[i]);
      writeState(b, loc, upd.getNewExpAvg(), avgM[i]);
      writeState(b, loc, upd.getNewExpAvgSq(), avgSqM[i]);
    }
    // The step counts applied updates.
    Value ok = scalarOf(b, loc, finite);
    Value newStep = arith::SelectOp::create(b, loc, ok, scalarOf(b, loc, t),
                                            scalarOf(b, loc, step));
    writeState(b, loc, scalarTensor(b, loc, newStep), stepM);
    if (precision == "fp16-mixed") {
      auto upd = LossScaleUpdateOp::create(
          b, loc,
          TypeRange{RankedTensorType::get({}, f32), RankedTensorType::get({}, i64)},
          finite, scale, good, b.getI64IntegerAttr(growthInterval),
          b.getF64FloatAttr(2.0), b.getF64FloatAttr(0.5));
      writeState(b, loc, upd.getNewScale(), scaleM);
      writeState(b, loc, upd.getNewGoodSteps(), goodM);
    }
    Value applied = arith::SelectOp::create(
        b, loc, ok, arith::ConstantOp::create(b, loc, b.getF32FloatAttr(1.0)),
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0)));
    Value stats = tensor::FromElementsOp::create(
        b, loc, statsType,
        ValueRange{scalarOf(b, loc, loss), scalarOf(b, loc, norm),
                   scalarOf(b, loc, lr), applied});
    func::ReturnOp::create(b, loc, stats);
  }

  /// The global gradient norm of a tensor-parallel rank, whose `sharded`
  /// gradients are its slices and whose `replicated` ones every rank holds
  /// in full: norm^2 = (sum over ranks of |sharded|^2) + |replicated|^2.
  /// Clips `grads` (all of them) by it when clipping is on. A non-finite
  /// gradient on any rank makes the norm non-finite on every rank, so the
  /// norm's finiteness is the found-inf flag all ranks agree on. Returns
  /// (finite i1 tensor, norm f32 tensor).
  std::pair<Value, Value> tensorParallelNorm(OpBuilder &b, Location loc,
                                             SmallVector<Value> &grads,
                                             ArrayRef<Value> sharded,
                                             ArrayRef<Value> replicated) {
    Type f32 = b.getF32Type();
    auto scalarType = RankedTensorType::get({}, f32);
    auto constant = [&](float v) -> Value {
      return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
    };
    auto normOf = [&](ArrayRef<Value> gs) -> Value {
      if (gs.empty())
        return constant(0.0f);
      SmallVector<Type> types(ValueRange(gs).getTypes());
      types.push_back(scalarType);
      auto op = ClipGradNormOp::create(
          b, loc, types, gs,
          b.getF64FloatAttr(std::numeric_limits<double>::infinity()));
      return scalarOf(b, loc, op.getNorm());
    };
    Value s = normOf(sharded), r = normOf(replicated);
    Value s2 = scalarTensor(b, loc, arith::MulFOp::create(b, loc, s, s));
    Value s2all = scalarOf(
        b, loc,
        AllReduceOp::create(b, loc, scalarType, s2, b.getStringAttr("tensor"),
                            UnitAttr()));
    Value total = math::SqrtOp::create(
        b, loc,
        arith::AddFOp::create(b, loc, s2all,
                              arith::MulFOp::create(b, loc, r, r)));
    // Ordered "less than infinity": false for inf and NaN.
    Value finite = arith::CmpFOp::create(
        b, loc, arith::CmpFPredicate::OLT, total,
        constant(std::numeric_limits<float>::infinity()));
    if (clip > 0.0) {
      // PyTorch's clip_grad_norm_: factor max_norm / (norm + 1e-6), at most 1.
      Value factor = arith::MinimumFOp::create(
          b, loc, constant(1.0f),
          arith::DivFOp::create(
              b, loc, constant(static_cast<float>(clip.getValue())),
              arith::AddFOp::create(b, loc, total, constant(1e-6f))));
      for (Value &g : grads) {
        Value splat = tensor::SplatOp::create(b, loc, factor, g.getType());
        g = arith::MulFOp::create(b, loc, g, splat);
      }
    }
    return {scalarTensor(b, loc, finite), scalarTensor(b, loc, total)};
  }

  void buildGradients(OpBuilder &b, func::FuncOp grad,
                      ArrayRef<unsigned> inputIdx,
                      ArrayRef<unsigned> weightIdx,
                      function_ref<std::string(unsigned)> nameOf) {
    Location loc = grad.getLoc();
    ArgList args;
    for (unsigned i : inputIdx)
      args.add(b, grad.getArgumentTypes()[i], nameOf(i), true, false);
    for (unsigned i : weightIdx)
      args.add(b, memrefOf(grad.getArgumentTypes()[i]), "grad." + nameOf(i),
               false, true, grad.getArgAttr(i, "hag.shard"));
    for (unsigned i : weightIdx)
      args.add(b, grad.getArgumentTypes()[i], nameOf(i), false, false,
               grad.getArgAttr(i, "hag.shard"));
    auto lossType = grad.getResultTypes()[0];
    Block *body = args.defineFunction(b, loc, "gradients", lossType);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(body);
    size_t nIn = inputIdx.size(), nW = weightIdx.size();
    SmallVector<Value> in(body->getArguments().take_front(nIn));
    auto out = body->getArguments().slice(nIn, nW);
    SmallVector<Value> w(body->getArguments().drop_front(nIn + nW));
    auto call = callGrad(b, loc, grad, in, w, inputIdx, weightIdx);
    for (size_t i = 0; i < nW; ++i)
      writeState(b, loc, call.getResult(i + 1), out[i]);
    func::ReturnOp::create(b, loc, call.getResult(0));
  }
};

} // namespace
