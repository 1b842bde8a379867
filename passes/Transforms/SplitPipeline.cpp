//===- SplitPipeline.cpp - hag-split-pipeline ------------------------------===//
//
// Spec section 9's pipeline parallelism on the forward graphs: the ops of
// @loss (with @forward inlined) are assigned to layers by dataflow, the
// layers to the stages PipelinePlan balanced by the cost model, and each
// stage becomes @stage<s>_forward plus the objective whose gradient is its
// backward pass (the surrogate sum(h_out * dh_out), or the loss).
//
//===----------------------------------------------------------------------===//

#include "hag/Analysis/PipelinePlan.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGSPLITPIPELINE
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

namespace {

constexpr StringLiteral kRankProgramAttr = "hag.parallel_rank_program";

/// Inlines every call in `fn`'s single block; returns the value that
/// replaced the first result of the call to `@<track>` (or null).
FailureOr<Value> inlineCalls(ModuleOp module, func::FuncOp fn, StringRef track,
                             function_ref<void(const Twine &)> fail) {
  Value tracked;
  Block &body = fn.getBody().front();
  for (Operation &op : llvm::make_early_inc_range(body)) {
    auto call = dyn_cast<func::CallOp>(&op);
    if (!call)
      continue;
    auto callee = module.lookupSymbol<func::FuncOp>(call.getCallee());
    if (!callee || callee.isExternal() || !callee.getBody().hasOneBlock()) {
      fail("cannot inline the call to @" + call.getCallee());
      return failure();
    }
    IRMapping map;
    map.map(callee.getArguments(), call.getOperands());
    OpBuilder ib(call);
    for (Operation &inner : callee.getBody().front().without_terminator())
      ib.clone(inner, map);
    auto ret = cast<func::ReturnOp>(callee.getBody().front().getTerminator());
    if (call.getCallee() == track && !tracked && ret.getNumOperands() > 0)
      tracked = map.lookup(ret.getOperand(0));
    for (auto [r, v] : llvm::zip(call.getResults(), ret.getOperands()))
      r.replaceAllUsesWith(map.lookup(v));
    call.erase();
  }
  return tracked;
}

/// One stage's share of a flat function (a single block over inputs,
/// weights and state, no calls).
struct StageCut {
  /// The ops to clone, in the block's order: the stage's own and the
  /// input-only ones it reads (recomputed on every stage that needs them,
  /// e.g. the decoding position as an index).
  SmallVector<Operation *> ops;
  /// The activation read from the previous stage (null on stage 0) and the
  /// value passed on (the next stage's input, or the function's result).
  Value input, output;
  /// The flat arguments (not inputs) the ops read, in argument order.
  SmallVector<unsigned> args;
};

/// A flat function cut into stages, and its arguments read by several
/// stages (hag.pipeline_shared = the first of them).
struct StageSplit {
  std::vector<StageCut> cuts;
  DenseMap<unsigned, int64_t> shared;
};

/// The flat arguments (not inputs) that `ops` read, in argument order.
SmallVector<unsigned> argumentsRead(func::FuncOp flat,
                                    ArrayRef<Operation *> ops) {
  llvm::SmallDenseSet<unsigned, 32> read;
  for (Operation *op : ops)
    for (Value v : op->getOperands())
      if (auto arg = dyn_cast<BlockArgument>(v))
        if (arg.getOwner()->getParentOp() == flat.getOperation() &&
            !flat.getArgAttr(arg.getArgNumber(), "hag.input"))
          read.insert(arg.getArgNumber());
  SmallVector<unsigned> out;
  for (unsigned i = 0; i < flat.getNumArguments(); ++i)
    if (read.contains(i))
      out.push_back(i);
  return out;
}

/// The arguments read by more than one stage, mapped to the first such
/// stage; only the first and the last stage may share one (tied
/// embeddings).
FailureOr<DenseMap<unsigned, int64_t>>
sharedArguments(ArrayRef<SmallVector<unsigned>> argsOfStage,
                function_ref<void(const Twine &)> fail) {
  DenseMap<unsigned, SmallVector<int64_t>> users;
  for (auto [s, args] : llvm::enumerate(argsOfStage))
    for (unsigned w : args)
      users[w].push_back(static_cast<int64_t>(s));
  DenseMap<unsigned, int64_t> shared;
  const int64_t P = static_cast<int64_t>(argsOfStage.size());
  for (auto &[w, u] : users) {
    if (u.size() < 2)
      continue;
    if (u.size() != 2 || u[0] != 0 || u[1] != P - 1) {
      fail("weight " + Twine(w) +
           " is read by stages other than the first and the last");
      return failure();
    }
    shared[w] = u[0];
  }
  return shared;
}

/// Cuts `flat` into the stages of `stageOf` (by the latest layer each op
/// reads; arguments are placed by their names). Each cut must be crossed
/// by one activation, from the stage just before.
FailureOr<StageSplit> cutStages(func::FuncOp flat, int64_t P, int64_t L,
                                function_ref<int64_t(int64_t)> stageOf,
                                ArrayRef<PipelineStage> plan,
                                function_ref<void(const Twine &)> fail) {
  Block &body = flat.getBody().front();
  DenseMap<Value, int64_t> layerOf;
  DenseSet<Value> inputOnly;
  for (BlockArgument arg : flat.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto name = flat.getArgAttrOfType<StringAttr>(i, "hag.name");
    if (flat.getArgAttr(i, "hag.input")) {
      layerOf[arg] = -1;
      inputOnly.insert(arg);
      continue;
    }
    std::optional<int64_t> l =
        name ? layerOfWeight(name.getValue(), L) : std::nullopt;
    if (!l) {
      fail("cannot place the weight '" +
           (name ? name.getValue() : StringRef("?")) + "' in a layer");
      return failure();
    }
    layerOf[arg] = *l;
  }
  DenseMap<Operation *, int64_t> stageOfOp;
  for (Operation &op : body.without_terminator()) {
    if (isMemoryEffectFree(&op) && op.getNumRegions() == 0 &&
        llvm::all_of(op.getOperands(),
                     [&](Value v) { return inputOnly.contains(v); })) {
      for (Value r : op.getResults())
        inputOnly.insert(r);
      continue;
    }
    int64_t layer = -1;
    for (Value v : op.getOperands())
      layer = std::max(layer, layerOf.lookup(v));
    for (Value r : op.getResults())
      layerOf[r] = layer;
    stageOfOp[&op] = stageOf(layer);
  }

  std::vector<StageCut> cuts(static_cast<size_t>(P));
  Value result = body.getTerminator()->getOperand(0);
  if (inputOnly.contains(result) ||
      stageOfOp.lookup(result.getDefiningOp()) != P - 1) {
    fail("@" + flat.getName() + "'s result is not computed on the last stage");
    return failure();
  }
  for (int64_t s = 0; s < P; ++s) {
    StageCut &cut = cuts[static_cast<size_t>(s)];
    llvm::SetVector<Value> crossing;
    DenseSet<Operation *> recomputed;
    std::function<void(Value)> recompute = [&](Value v) {
      Operation *def = v.getDefiningOp();
      if (!def || !recomputed.insert(def).second)
        return;
      for (Value o : def->getOperands())
        recompute(o);
    };
    for (Operation &op : body.without_terminator()) {
      auto it = stageOfOp.find(&op);
      if (it == stageOfOp.end() || it->second != s)
        continue;
      for (Value v : op.getOperands()) {
        if (isa<BlockArgument>(v))
          continue;
        if (inputOnly.contains(v)) {
          recompute(v);
          continue;
        }
        if (stageOfOp.lookup(v.getDefiningOp()) != s)
          crossing.insert(v);
      }
    }
    for (Operation &op : body.without_terminator()) {
      auto it = stageOfOp.find(&op);
      if ((it != stageOfOp.end() && it->second == s) || recomputed.count(&op))
        cut.ops.push_back(&op);
    }
    if (s == 0 && !crossing.empty()) {
      fail("stage 0 of @" + flat.getName() + " reads a value of a later stage");
      return failure();
    }
    if (s > 0) {
      if (crossing.size() != 1) {
        fail("the cut of @" + flat.getName() + " before stage " + Twine(s) +
             " (layer " + Twine(plan[static_cast<size_t>(s)].firstLayer) +
             ") is crossed by " + Twine(crossing.size()) +
             " values; a pipeline cut must carry one activation");
        return failure();
      }
      cut.input = crossing.front();
      if (stageOfOp.lookup(cut.input.getDefiningOp()) != s - 1) {
        fail("stage " + Twine(s) + " of @" + flat.getName() +
             " reads an activation of a stage before the previous one");
        return failure();
      }
      cuts[static_cast<size_t>(s - 1)].output = cut.input;
    }
  }
  cuts.back().output = result;
  std::vector<SmallVector<unsigned>> argsOf;
  for (StageCut &cut : cuts)
    argsOf.push_back(cut.args = argumentsRead(flat, cut.ops));
  FailureOr<DenseMap<unsigned, int64_t>> shared = sharedArguments(argsOf, fail);
  if (failed(shared))
    return failure();
  return StageSplit{std::move(cuts), std::move(*shared)};
}

/// The ops of `ops` that `value` needs, in order.
SmallVector<Operation *> sliceFor(ArrayRef<Operation *> ops, Value value) {
  DenseSet<Value> needed{value};
  SmallVector<Operation *> kept;
  for (Operation *op : llvm::reverse(ops)) {
    if (llvm::none_of(op->getResults(),
                      [&](Value r) { return needed.contains(r); }))
      continue;
    kept.push_back(op);
    needed.insert(op->operand_begin(), op->operand_end());
  }
  std::reverse(kept.begin(), kept.end());
  return kept;
}

/// `@name(<flat's inputs>, [stage.input], <args>)` computing `output` from
/// `ops` (cloned from `flat`). `shared` marks the arguments that several
/// stages read (hag.pipeline_shared = the first of them).
func::FuncOp buildStageFunction(OpBuilder &b, func::FuncOp flat, StringRef name,
                                ArrayRef<Operation *> ops, Value input,
                                Value output, ArrayRef<unsigned> args,
                                const DenseMap<unsigned, int64_t> &shared) {
  MLIRContext *ctx = b.getContext();
  SmallVector<Type> types;
  SmallVector<DictionaryAttr> attrs;
  SmallVector<unsigned> inputs;
  for (unsigned i = 0; i < flat.getNumArguments(); ++i)
    if (flat.getArgAttr(i, "hag.input")) {
      inputs.push_back(i);
      types.push_back(flat.getArgumentTypes()[i]);
      attrs.push_back(flat.getArgAttrDict(i));
    }
  if (input) {
    types.push_back(input.getType());
    attrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("hag.input", b.getUnitAttr()),
         b.getNamedAttr("hag.name", b.getStringAttr("stage.input"))}));
  }
  for (unsigned w : args) {
    types.push_back(flat.getArgumentTypes()[w]);
    NamedAttrList a(flat.getArgAttrDict(w));
    if (auto it = shared.find(w); it != shared.end())
      a.set("hag.pipeline_shared", b.getI64IntegerAttr(it->second));
    attrs.push_back(a.getDictionary(ctx));
  }
  auto fn = func::FuncOp::create(flat.getLoc(), name,
                                 b.getFunctionType(types, {output.getType()}));
  fn.setAllArgAttrs(attrs);
  b.insert(fn);
  Block *entry = fn.addEntryBlock();
  OpBuilder fb = OpBuilder::atBlockEnd(entry);
  IRMapping map;
  unsigned next = 0;
  for (unsigned i : inputs)
    map.map(flat.getArgument(i), entry->getArgument(next++));
  if (input)
    map.map(input, entry->getArgument(next++));
  for (unsigned w : args)
    map.map(flat.getArgument(w), entry->getArgument(next++));
  for (Operation *op : ops)
    fb.clone(*op, map);
  func::ReturnOp::create(fb, flat.getLoc(), map.lookup(output));
  return fn;
}

struct SplitPipelinePass
    : mlir::hag::impl::HAGSplitPipelineBase<SplitPipelinePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    auto fail = [&](const Twine &msg) {
      module.emitError() << "hag-split-pipeline: " << msg;
    };
    if (module->hasAttr("hag.pipeline")) {
      fail("the module is already split into pipeline stages");
      return signalPassFailure();
    }
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    auto config = module->getAttrOfType<PyramidConfigAttr>("hag.config");
    if (!loss || loss.isExternal() || !config) {
      fail("needs a language model module with @loss");
      return signalPassFailure();
    }
    int64_t length = seq;
    if (length <= 0) {
      length = config.getMaxSeq();
      if (auto t = module->getAttrOfType<DictionaryAttr>("hag.train"))
        if (auto q = t.getAs<IntegerAttr>("seq"))
          length = q.getInt();
    }
    FailureOr<PipelinePlan> plan = planPipeline(
        module, stages, microbatches, CostContext{length, /*batch=*/1});
    if (failed(plan))
      return signalPassFailure();
    const int64_t P = plan->stages, L = plan->layers;
    std::vector<int64_t> stageOfLayer = stageOfLayers(*plan);
    auto stageOf = [&](int64_t layer) -> int64_t {
      if (layer < 0)
        return 0;
      if (layer >= L)
        return P - 1;
      return stageOfLayer[static_cast<size_t>(layer)];
    };
    if (failed(splitModule(module, P, L, stageOf, *plan, fail)))
      return signalPassFailure();

    OpBuilder b(ctx);
    SmallVector<Attribute> firsts;
    for (const PipelineStage &ps : plan->stage)
      firsts.push_back(b.getI64IntegerAttr(ps.firstLayer));
    module->setAttr(
        "hag.pipeline",
        b.getDictionaryAttr(
            {b.getNamedAttr("stages", b.getI64IntegerAttr(P)),
             b.getNamedAttr("microbatches", b.getI64IntegerAttr(microbatches)),
             b.getNamedAttr("first_layers", b.getArrayAttr(firsts))}));
    SmallVector<NamedAttribute> rank;
    if (auto r = module->getAttrOfType<DictionaryAttr>(kRankProgramAttr))
      rank.append(r.begin(), r.end());
    rank.push_back(b.getNamedAttr("pipeline", b.getI64IntegerAttr(P)));
    module->setAttr(kRankProgramAttr, b.getDictionaryAttr(rank));
  }

  LogicalResult splitModule(ModuleOp module, int64_t P, int64_t L,
                            function_ref<int64_t(int64_t)> stageOf,
                            const PipelinePlan &plan,
                            function_ref<void(const Twine &)> fail) {
    MLIRContext *ctx = module.getContext();
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    auto decode = module.lookupSymbol<func::FuncOp>("decode");
    OpBuilder b(ctx);

    // @loss with @forward inlined (and @decode): flat functions over their
    // arguments, cloned into scratch functions erased at the end.
    b.setInsertionPointToEnd(module.getBody());
    auto scratch = [&](func::FuncOp fn, StringRef name) {
      auto flat = cast<func::FuncOp>(b.clone(*fn));
      flat.setName(name);
      flat.setPrivate();
      return flat;
    };
    SmallVector<func::FuncOp> flats;
    llvm::scope_exit eraseFlats([&] {
      for (func::FuncOp f : flats)
        f.erase();
    });
    func::FuncOp flat =
        flats.emplace_back(scratch(loss, "__hag_pipeline_loss"));
    FailureOr<Value> logits = inlineCalls(module, flat, "forward", fail);
    if (failed(logits))
      return failure();
    func::FuncOp flatDecode;
    if (decode) {
      flatDecode = flats.emplace_back(scratch(decode, "__hag_pipeline_decode"));
      if (failed(inlineCalls(module, flatDecode, "", fail)))
        return failure();
    }
    if (!llvm::any_of(flat.getArguments(), [&](BlockArgument a) {
          auto n =
              flat.getArgAttrOfType<StringAttr>(a.getArgNumber(), "hag.name");
          return flat.getArgAttr(a.getArgNumber(), "hag.input") && n &&
                 n.getValue() == "tokens";
        })) {
      fail("@loss has no 'tokens' input");
      return failure();
    }
    FailureOr<StageSplit> split =
        cutStages(flat, P, L, stageOf, plan.stage, fail);
    if (failed(split))
      return failure();

    // The stage functions and their objectives.
    Type f32 = Float32Type::get(ctx);
    b.setInsertionPoint(loss);
    for (int64_t s = 0; s < P; ++s) {
      const StageCut &cut = split->cuts[static_cast<size_t>(s)];
      auto fwd = buildStageFunction(
          b, flat, ("stage" + Twine(s) + "_forward").str(), cut.ops, cut.input,
          cut.output, cut.args, split->shared);

      // The objective: stage.input differentiable, and for stages before
      // the last, the output's inner product with stage.output_grad.
      SmallVector<Type> otypes(fwd.getArgumentTypes());
      SmallVector<DictionaryAttr> oattrs;
      for (unsigned i = 0; i < fwd.getNumArguments(); ++i)
        oattrs.push_back(fwd.getArgAttrDict(i));
      if (s > 0)
        oattrs[1] = b.getDictionaryAttr(
            {b.getNamedAttr("hag.name", b.getStringAttr("stage.input"))});
      bool last = s == P - 1;
      if (!last) {
        otypes.push_back(cut.output.getType());
        oattrs.push_back(b.getDictionaryAttr(
            {b.getNamedAttr("hag.input", b.getUnitAttr()),
             b.getNamedAttr("hag.name",
                            b.getStringAttr("stage.output_grad"))}));
      }
      auto scalar = RankedTensorType::get({}, f32);
      auto obj = func::FuncOp::create(
          loss.getLoc(), ("stage" + Twine(s) + "_objective").str(),
          b.getFunctionType(otypes, {scalar}));
      obj.setAllArgAttrs(oattrs);
      obj.setPrivate();
      b.insert(obj);
      Block *oentry = obj.addEntryBlock();
      OpBuilder ob = OpBuilder::atBlockEnd(oentry);
      auto call = func::CallOp::create(
          ob, loss.getLoc(), fwd,
          oentry->getArguments().take_front(fwd.getNumArguments()));
      Value result = call.getResult(0);
      if (!last)
        result = InnerProductOp::create(ob, loss.getLoc(), scalar, result,
                                        oentry->getArguments().back());
      func::ReturnOp::create(ob, loss.getLoc(), result);
    }

    // Inference on the last stage: @stage<P-1>_logits, the forward's
    // result from the stage's input (the loss's ops without the loss).
    if (*logits) {
      const StageCut &cut = split->cuts.back();
      if (!llvm::is_contained(cut.ops, (*logits).getDefiningOp())) {
        fail("the logits are not computed on the last stage");
        return failure();
      }
      SmallVector<Operation *> ops = sliceFor(cut.ops, *logits);
      buildStageFunction(b, flat, ("stage" + Twine(P - 1) + "_logits").str(),
                         ops, cut.input, *logits, argumentsRead(flat, ops),
                         split->shared);
    }

    // Incremental decoding: @stage<s>_decode(tokens, position,
    // [stage.input], the stage's caches, its weights), the same layers.
    if (flatDecode) {
      FailureOr<StageSplit> decoding =
          cutStages(flatDecode, P, L, stageOf, plan.stage, fail);
      if (failed(decoding))
        return failure();
      for (auto [s, cut] : llvm::enumerate(decoding->cuts))
        buildStageFunction(b, flatDecode,
                           ("stage" + Twine(s) + "_decode").str(), cut.ops,
                           cut.input, cut.output, cut.args, decoding->shared);
    }

    for (StringRef name : {"forward", "loss", "decode"})
      if (auto fn = module.lookupSymbol<func::FuncOp>(name))
        fn.erase();
    return success();
  }
};

} // namespace
