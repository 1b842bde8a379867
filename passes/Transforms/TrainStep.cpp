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
    if (auto pipe = module->getAttrOfType<DictionaryAttr>("hag.pipeline"))
      return buildPipeline(module, pipe);
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
    StepState st =
        readStepState(b, loc, body->getArguments().drop_front(nIn), nW);
    Value scale = st.scale;
    ArrayRef<Value> params = st.params;

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
    finishStep(b, loc, st, loss, finite, norm, grads, statsType);
  }

  //===--------------------------------------------------------------------===//
  // Pipeline stages (hag-split-pipeline)
  //===--------------------------------------------------------------------===//

  /// For each stage s, from @stage<s>_objective_grad (hag-autodiff):
  ///  - @stage<s>_train_forward(tokens, [stage.input], state: weights)
  ///    -> the activation for the next stage (or the loss);
  ///  - @stage<s>_backward(tokens, [stage.input], [stage.output_grad],
  ///    state: weights, grad.<w>, train.loss_sum) -> d stage.input (or the
  ///    objective on stage 0): adds the micro-batch's weight gradients to
  ///    grad.<w> and, on the last stage, its loss to train.loss_sum;
  ///  - @stage<s>_update(state: counters, weights, moments, grad.<w>,
  ///    train.loss_sum) -> [loss, norm, lr, applied]: the micro-batch mean
  ///    of the accumulated gradients (tied weights summed over the
  ///    `embedding` group, replicas averaged over `data`), the global norm
  ///    over the stages (`pipeline`) and tensor slices, clipping, AdamW,
  ///    and the accumulators zeroed.
  void buildPipeline(ModuleOp module, DictionaryAttr pipe) {
    auto fail = [&](const Twine &msg) {
      module.emitError() << "hag-train-step: " << msg;
      signalPassFailure();
    };
    if (precision != "fp32" && precision != "bf16-mixed" &&
        precision != "fp16-mixed")
      return fail("precision must be fp32, bf16-mixed or fp16-mixed, got '" +
                  precision + "'");
    auto stagesAttr = pipe.getAs<IntegerAttr>("stages");
    auto microAttr = pipe.getAs<IntegerAttr>("microbatches");
    if (!stagesAttr || !microAttr)
      return fail("hag.pipeline needs stages and microbatches");
    int64_t P = stagesAttr.getInt(), m = microAttr.getInt();
    int64_t data = 1;
    if (auto par = module->getAttrOfType<DictionaryAttr>("hag.parallel"))
      if (auto d = par.getAs<IntegerAttr>("data"))
        data = d.getInt();
    OpBuilder b(&getContext());
    if (data > 1) {
      // The stages' update entries average over the replicas.
      SmallVector<NamedAttribute> rank;
      if (auto r = module->getAttrOfType<DictionaryAttr>(
              "hag.parallel_rank_program"))
        for (NamedAttribute a : r)
          if (a.getName() != "data")
            rank.push_back(a);
      rank.push_back(b.getNamedAttr("data", b.getI64IntegerAttr(data)));
      module->setAttr("hag.parallel_rank_program",
                      b.getDictionaryAttr(rank));
    }
    for (int64_t s = 0; s < P; ++s) {
      std::string prefix = "stage" + std::to_string(s);
      auto grad = module.lookupSymbol<func::FuncOp>(prefix + "_objective_grad");
      auto fwd = module.lookupSymbol<func::FuncOp>(prefix + "_forward");
      if (!grad || !fwd)
        return fail("no @" + prefix + "_objective_grad or @" + prefix +
                    "_forward (run hag-split-pipeline, then hag-autodiff on "
                    "every stage objective)");
      b.setInsertionPointAfter(grad);
      if (failed(buildStage(b, grad, fwd, s, P, m, data)))
        return signalPassFailure();
      grad.setPrivate();
    }
  }

  LogicalResult buildStage(OpBuilder &b, func::FuncOp grad, func::FuncOp fwd,
                           int64_t s, int64_t P, int64_t m, int64_t data) {
    Location loc = grad.getLoc();
    Type f32 = b.getF32Type(), i64 = b.getI64Type();
    std::string prefix = "stage" + std::to_string(s);
    auto nameOf = [&](unsigned i) -> std::string {
      if (auto n = grad.getArgAttrOfType<StringAttr>(i, "hag.name"))
        return n.getValue().str();
      return "arg" + std::to_string(i);
    };
    // @<objective>_grad's arguments: tokens, [stage.input], weights...,
    // [stage.output_grad]; results: objective, [d stage.input], d weights.
    std::optional<unsigned> tokens, stageIn, outGrad, seed;
    SmallVector<unsigned> weights;
    for (unsigned i = 0; i < grad.getNumArguments(); ++i) {
      std::string n = nameOf(i);
      if (n == "tokens")
        tokens = i;
      else if (n == "stage.input")
        stageIn = i;
      else if (n == "stage.output_grad")
        outGrad = i;
      else if (n == "loss_seed" && grad.getArgAttr(i, "hag.input"))
        seed = i;
      else
        weights.push_back(i);
    }
    const bool scaled = precision == "fp16-mixed";
    if (scaled && s == P - 1 && !seed)
      return grad.emitError()
             << "hag-train-step: fp16-mixed scales the loss: @"
             << grad.getName()
             << " needs its seed as an argument (hag-autodiff "
                "seed-argument=true)";
    if (!tokens || (s > 0) != stageIn.has_value() ||
        (s < P - 1) != outGrad.has_value() ||
        grad.getNumResults() != weights.size() + 1 + (stageIn ? 1 : 0))
      return grad.emitError() << "hag-train-step: @" << grad.getName()
                              << " does not have a pipeline stage's layout";
    auto attrOf = [&](unsigned i, StringRef name) {
      return grad.getArgAttr(i, name);
    };
    auto scalarF32 = RankedTensorType::get({}, f32);
    auto addWeightState = [&](ArgList &args, StringRef pre) {
      for (unsigned i : weights)
        args.add(b, memrefOf(grad.getArgumentTypes()[i]),
                 (pre + nameOf(i)).str(), false, true,
                 attrOf(i, "hag.shard"));
    };
    // Calls `grad` (or `fwd`) with the entry's arguments mapped by role.
    auto callWith = [&](func::FuncOp callee, Value tok, Value in, Value dOut,
                        ArrayRef<Value> w, Value lossSeed = Value()) {
      SmallVector<Value> a;
      size_t wi = 0;
      for (unsigned i = 0; i < callee.getNumArguments(); ++i) {
        auto n = callee.getArgAttrOfType<StringAttr>(i, "hag.name");
        StringRef name = n ? n.getValue() : "";
        bool isSeed = name == "loss_seed" && callee.getArgAttr(i, "hag.input");
        a.push_back(name == "tokens"              ? tok
                    : name == "stage.input"       ? in
                    : name == "stage.output_grad" ? dOut
                    : isSeed                      ? lossSeed
                                                  : w[wi++]);
      }
      return func::CallOp::create(b, loc, callee, a);
    };

    // @stage<s>_train_forward: the forward on the state's weights.
    {
      ArgList args;
      args.add(b, grad.getArgumentTypes()[*tokens], "tokens", true, false);
      if (stageIn)
        args.add(b, grad.getArgumentTypes()[*stageIn], "stage.input", true,
                 false);
      addWeightState(args, "");
      Block *body = args.defineFunction(b, loc, prefix + "_train_forward",
                                        fwd.getResultTypes());
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(body);
      unsigned k = 0;
      Value tok = body->getArgument(k++);
      Value in = stageIn ? body->getArgument(k++) : Value();
      SmallVector<Value> w;
      for (size_t i = 0; i < weights.size(); ++i)
        w.push_back(readState(b, loc, body->getArgument(k++)));
      auto call = callWith(fwd, tok, in, Value(), w);
      func::ReturnOp::create(b, loc, call.getResults());
    }

    // @stage<s>_backward: recompute, differentiate, accumulate.
    {
      ArgList args;
      args.add(b, grad.getArgumentTypes()[*tokens], "tokens", true, false);
      if (stageIn)
        args.add(b, grad.getArgumentTypes()[*stageIn], "stage.input", true,
                 false);
      if (outGrad)
        args.add(b, grad.getArgumentTypes()[*outGrad], "stage.output_grad",
                 true, false);
      addWeightState(args, "");
      addWeightState(args, "grad.");
      args.add(b, MemRefType::get({}, f32), "train.loss_sum", false, true);
      if (seed)
        args.add(b, MemRefType::get({}, f32), "train.loss_scale", false, true);
      Type result = stageIn ? grad.getArgumentTypes()[*stageIn] : scalarF32;
      Block *body =
          args.defineFunction(b, loc, prefix + "_backward", {result});
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(body);
      unsigned k = 0;
      Value tok = body->getArgument(k++);
      Value in = stageIn ? body->getArgument(k++) : Value();
      Value dOut = outGrad ? body->getArgument(k++) : Value();
      size_t nW = weights.size();
      SmallVector<Value> w, accM, acc;
      for (size_t i = 0; i < nW; ++i)
        w.push_back(readState(b, loc, body->getArgument(k++)));
      for (size_t i = 0; i < nW; ++i) {
        accM.push_back(body->getArgument(k++));
        acc.push_back(readState(b, loc, accM.back()));
      }
      Value lossSumM = body->getArgument(k++);
      Value lossSum = readState(b, loc, lossSumM);
      // fp16-mixed: the last stage's backward starts from d loss = scale.
      Value lossSeed = seed ? readState(b, loc, body->getArgument(k++)) : Value();
      auto call = callWith(grad, tok, in, dOut, w, lossSeed);
      Value objective = call.getResult(0);
      unsigned first = stageIn ? 2 : 1;
      for (size_t i = 0; i < nW; ++i)
        writeState(b, loc,
                   arith::AddFOp::create(b, loc, acc[i],
                                         call.getResult(first + i)),
                   accM[i]);
      if (s == P - 1)
        writeState(b, loc, arith::AddFOp::create(b, loc, lossSum, objective),
                   lossSumM);
      func::ReturnOp::create(b, loc,
                             stageIn ? call.getResult(1) : objective);
    }

    // @stage<s>_update.
    {
      ArgList args;
      args.add(b, MemRefType::get({}, i64), "train.step", false, true);
      args.add(b, MemRefType::get({}, f32), "train.loss_scale", false, true);
      args.add(b, MemRefType::get({}, i64), "train.good_steps", false, true);
      for (StringRef pre : {"", "opt.exp_avg.", "opt.exp_avg_sq.", "grad."})
        addWeightState(args, pre);
      args.add(b, MemRefType::get({}, f32), "train.loss_sum", false, true);
      auto statsType = RankedTensorType::get({4}, f32);
      Block *body = args.defineFunction(b, loc, prefix + "_update", statsType);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(body);
      size_t nW = weights.size();
      StepState st = readStepState(b, loc, body->getArguments(), nW);
      auto accArgs = body->getArguments().slice(3 + 3 * nW, nW);
      Value lossSumM = body->getArguments().back();
      SmallVector<Value> grads;
      for (Value a : accArgs)
        grads.push_back(readState(b, loc, a));
      Value lossSum = readState(b, loc, lossSumM);
      auto constant = [&](float v) -> Value {
        return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
      };
      auto allReduce = [&](Value v, StringRef group, bool mean) -> Value {
        return AllReduceOp::create(b, loc, v.getType(), v,
                                   b.getStringAttr(group),
                                   mean ? b.getUnitAttr() : UnitAttr());
      };
      // The mean over the micro-batches (and, fp16-mixed, the loss scale
      // divided out); tied weights' two copies summed; the replicas
      // averaged.
      Value invM = constant(1.0f / static_cast<float>(m));
      Value gradScale = invM;
      if (scaled)
        gradScale = arith::DivFOp::create(
            b, loc, invM, scalarOf(b, loc, st.scale));
      SmallVector<Value> sharded, counted;
      for (size_t i = 0; i < nW; ++i) {
        Value g = arith::MulFOp::create(
            b, loc, grads[i],
            tensor::SplatOp::create(b, loc, gradScale, grads[i].getType()));
        auto shared = grad.getArgAttrOfType<IntegerAttr>(weights[i],
                                                         "hag.pipeline_shared");
        if (shared)
          g = allReduce(g, "embedding", false);
        if (data > 1)
          g = allReduce(g, "data", true);
        grads[i] = g;
        // A tied weight counts once in the norm, on its first stage.
        if (shared && shared.getInt() != s)
          continue;
        (attrOf(weights[i], "hag.shard") ? sharded : counted).push_back(g);
      }
      Value loss = allReduce(
          scalarTensor(b, loc,
                       arith::MulFOp::create(b, loc, scalarOf(b, loc, lossSum),
                                             invM)),
          "pipeline", false);
      if (data > 1)
        loss = allReduce(loss, "data", true);
      auto [finite, norm] = tensorParallelNorm(b, loc, grads, sharded, counted,
                                               /*overPipeline=*/true);
      // The accumulators start the next step at zero.
      for (Value a : accArgs) {
        auto type = cast<MemRefType>(a.getType());
        Value zeros = arith::ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(
                RankedTensorType::get(type.getShape(), f32),
                b.getF32FloatAttr(0.0f)));
        writeState(b, loc, zeros, a);
      }
      writeState(b, loc,
                 arith::ConstantOp::create(
                     b, loc, DenseElementsAttr::get(scalarF32,
                                                    b.getF32FloatAttr(0.0f))),
                 lossSumM);
      finishStep(b, loc, st, loss, finite, norm, grads, statsType);
    }
    return success();
  }

  /// The state a step reads (the counters, weights and moments, as
  /// buffers and as the tensors read from them) and t = step + 1.
  struct StepState {
    Value stepM, scaleM, goodM, step, scale, good, t;
    SmallVector<Value> paramM, avgM, avgSqM, params, avg, avgSq;
  };

  /// Reads the counters and `nW` weights, moments (buffers `state`: step,
  /// loss scale, good steps, then weights, first and second moments).
  StepState readStepState(OpBuilder &b, Location loc, ValueRange state,
                          size_t nW) {
    StepState st;
    st.stepM = state[0];
    st.scaleM = state[1];
    st.goodM = state[2];
    auto rest = state.drop_front(3);
    st.paramM.assign(rest.begin(), rest.begin() + nW);
    st.avgM.assign(rest.begin() + nW, rest.begin() + 2 * nW);
    st.avgSqM.assign(rest.begin() + 2 * nW, rest.begin() + 3 * nW);
    // Read every piece of state before any is written.
    st.step = readState(b, loc, st.stepM);
    st.scale = readState(b, loc, st.scaleM);
    st.good = readState(b, loc, st.goodM);
    for (size_t i = 0; i < nW; ++i) {
      st.params.push_back(readState(b, loc, st.paramM[i]));
      st.avg.push_back(readState(b, loc, st.avgM[i]));
      st.avgSq.push_back(readState(b, loc, st.avgSqM[i]));
    }
    // t = step + 1 (AdamW's bias correction and the schedule are 1-based).
    Value one = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(1));
    st.t = scalarTensor(
        b, loc, arith::AddIOp::create(b, loc, scalarOf(b, loc, st.step), one));
    return st;
  }

  /// The rest of a step once the loss, the (clipped) gradients, the
  /// found-inf flag and the norm are known: the schedule, AdamW on every
  /// weight, the counters, the loss scale, and `return [loss, norm, lr,
  /// applied]`.
  void finishStep(OpBuilder &b, Location loc, StepState &st, Value loss,
                  Value finite, Value norm, ArrayRef<Value> grads,
                  RankedTensorType statsType) {
    Type f32 = b.getF32Type(), i64 = b.getI64Type();
    size_t nW = st.params.size();
    Value t = st.t, step = st.step, scale = st.scale, good = st.good;
    Value stepM = st.stepM, scaleM = st.scaleM, goodM = st.goodM;
    ArrayRef<Value> params = st.params, avg = st.avg, avgSq = st.avgSq,
                    paramM = st.paramM, avgM = st.avgM, avgSqM = st.avgSqM;
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
  /// With `overPipeline`, the squared norms of the stages are summed over
  /// the `pipeline` group as well (each stage holds its layers' gradients;
  /// `grads` may hold more than the norm counts: a tied embedding's second
  /// copy is clipped but counted on the first stage only).
  std::pair<Value, Value> tensorParallelNorm(OpBuilder &b, Location loc,
                                             SmallVector<Value> &grads,
                                             ArrayRef<Value> sharded,
                                             ArrayRef<Value> replicated,
                                             bool overPipeline = false) {
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
    auto sumOver = [&](Value v, StringRef group) -> Value {
      return scalarOf(b, loc,
                      AllReduceOp::create(b, loc, scalarType,
                                          scalarTensor(b, loc, v),
                                          b.getStringAttr(group), UnitAttr()));
    };
    Value s = normOf(sharded), r = normOf(replicated);
    Value s2 = arith::MulFOp::create(b, loc, s, s);
    if (!sharded.empty())
      s2 = sumOver(s2, "tensor");
    Value sq = arith::AddFOp::create(b, loc, s2,
                                     arith::MulFOp::create(b, loc, r, r));
    if (overPipeline)
      sq = sumOver(sq, "pipeline");
    Value total = math::SqrtOp::create(b, loc, sq);
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
