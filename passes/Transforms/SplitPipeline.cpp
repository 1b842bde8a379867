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

struct SplitPipelinePass
    : mlir::hag::impl::HAGSplitPipelineBase<SplitPipelinePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    auto fail = [&](const Twine &msg) {
      module.emitError() << "hag-split-pipeline: " << msg;
      signalPassFailure();
    };
    if (module->hasAttr("hag.pipeline"))
      return fail("the module is already split into pipeline stages");
    auto loss = module.lookupSymbol<func::FuncOp>("loss");
    auto config = module->getAttrOfType<PyramidConfigAttr>("hag.config");
    if (!loss || loss.isExternal() || !config)
      return fail("needs a language model module with @loss");
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

    // @loss with @forward inlined: a flat list of ops over @loss's
    // arguments (cloned into a scratch function, erased at the end).
    OpBuilder b(ctx);
    b.setInsertionPointToEnd(module.getBody());
    auto flat = cast<func::FuncOp>(b.clone(*loss));
    flat.setName("__hag_pipeline_flat");
    flat.setPrivate();
    llvm::scope_exit eraseFlat([&] { flat.erase(); });
    Block &body = flat.getBody().front();
    for (Operation &op : llvm::make_early_inc_range(body)) {
      auto call = dyn_cast<func::CallOp>(&op);
      if (!call)
        continue;
      auto callee = module.lookupSymbol<func::FuncOp>(call.getCallee());
      if (!callee || callee.isExternal() || !callee.getBody().hasOneBlock())
        return fail("cannot inline the call to @" + call.getCallee());
      IRMapping map;
      map.map(callee.getArguments(), call.getOperands());
      OpBuilder ib(call);
      for (Operation &inner : callee.getBody().front().without_terminator())
        ib.clone(inner, map);
      auto ret = cast<func::ReturnOp>(callee.getBody().front().getTerminator());
      for (auto [r, v] : llvm::zip(call.getResults(), ret.getOperands()))
        r.replaceAllUsesWith(map.lookup(v));
      call.erase();
    }

    // The stage of every op, by the latest layer it reads.
    DenseMap<Value, int64_t> layerOf;
    std::optional<unsigned> tokensArg;
    for (BlockArgument arg : flat.getArguments()) {
      unsigned i = arg.getArgNumber();
      auto name = flat.getArgAttrOfType<StringAttr>(i, "hag.name");
      if (flat.getArgAttr(i, "hag.input")) {
        if (name && name.getValue() == "tokens")
          tokensArg = i;
        layerOf[arg] = -1;
        continue;
      }
      std::optional<int64_t> l =
          name ? layerOfWeight(name.getValue(), L) : std::nullopt;
      if (!l)
        return fail("cannot place the weight '" +
                    (name ? name.getValue() : StringRef("?")) +
                    "' in a layer");
      layerOf[arg] = *l;
    }
    if (!tokensArg)
      return fail("@loss has no 'tokens' input");
    DenseMap<Operation *, int64_t> stageOfOp;
    for (Operation &op : body.without_terminator()) {
      int64_t layer = -1;
      for (Value v : op.getOperands())
        layer = std::max(layer, layerOf.lookup(v));
      for (Value r : op.getResults())
        layerOf[r] = layer;
      stageOfOp[&op] = stageOf(layer);
    }

    // Per stage: its ops, weights, the activation it reads and the one it
    // passes on.
    struct Stage {
      SmallVector<Operation *> ops;
      SmallVector<unsigned> weights; // flat argument numbers, in order
      Value input, output;
    };
    std::vector<Stage> st(static_cast<size_t>(P));
    for (Operation &op : body.without_terminator())
      st[static_cast<size_t>(stageOfOp[&op])].ops.push_back(&op);
    Value lossValue = body.getTerminator()->getOperand(0);
    for (int64_t s = 0; s < P; ++s) {
      Stage &stage = st[static_cast<size_t>(s)];
      llvm::SetVector<Value> crossing;
      llvm::SmallSetVector<unsigned, 16> weights;
      for (Operation *op : stage.ops)
        for (Value v : op->getOperands()) {
          if (auto arg = dyn_cast<BlockArgument>(v)) {
            if (arg.getArgNumber() != *tokensArg)
              weights.insert(arg.getArgNumber());
            continue;
          }
          int64_t from = stageOfOp.lookup(v.getDefiningOp());
          if (from != s)
            crossing.insert(v);
        }
      for (unsigned i = 0; i < flat.getNumArguments(); ++i)
        if (weights.contains(i))
          stage.weights.push_back(i);
      if (s == 0 && !crossing.empty())
        return fail("stage 0 reads a value of a later stage");
      if (s > 0) {
        if (crossing.size() != 1)
          return fail("the cut before stage " + Twine(s) + " (layer " +
                      Twine(plan->stage[static_cast<size_t>(s)].firstLayer) +
                      ") is crossed by " + Twine(crossing.size()) +
                      " values; a pipeline cut must carry one activation");
        stage.input = crossing.front();
        if (stageOfOp.lookup(stage.input.getDefiningOp()) != s - 1)
          return fail("stage " + Twine(s) +
                      " reads an activation of a stage before the previous "
                      "one");
        st[static_cast<size_t>(s - 1)].output = stage.input;
      }
    }
    if (stageOfOp.lookup(lossValue.getDefiningOp()) != P - 1)
      return fail("the loss is not computed on the last stage");
    st[static_cast<size_t>(P - 1)].output = lossValue;

    // Weights read by several stages (tied embeddings).
    DenseMap<unsigned, SmallVector<int64_t>> users;
    for (int64_t s = 0; s < P; ++s)
      for (unsigned w : st[static_cast<size_t>(s)].weights)
        users[w].push_back(s);

    // The stage functions and their objectives.
    Type f32 = Float32Type::get(ctx);
    b.setInsertionPoint(loss);
    for (int64_t s = 0; s < P; ++s) {
      Stage &stage = st[static_cast<size_t>(s)];
      SmallVector<Type> types;
      SmallVector<DictionaryAttr> attrs;
      types.push_back(flat.getArgumentTypes()[*tokensArg]);
      attrs.push_back(flat.getArgAttrDict(*tokensArg));
      if (s > 0) {
        types.push_back(stage.input.getType());
        attrs.push_back(b.getDictionaryAttr(
            {b.getNamedAttr("hag.input", b.getUnitAttr()),
             b.getNamedAttr("hag.name", b.getStringAttr("stage.input"))}));
      }
      for (unsigned w : stage.weights) {
        types.push_back(flat.getArgumentTypes()[w]);
        NamedAttrList a(flat.getArgAttrDict(w));
        const SmallVector<int64_t> &u = users[w];
        if (u.size() > 1) {
          if (u.size() != 2 || u[0] != 0 || u[1] != P - 1) {
            fail("weight " + Twine(w) +
                 " is read by stages other than the first and the last");
            return;
          }
          a.set("hag.pipeline_shared", b.getI64IntegerAttr(u[0]));
        }
        attrs.push_back(a.getDictionary(ctx));
      }
      auto fwd = func::FuncOp::create(
          loss.getLoc(), ("stage" + Twine(s) + "_forward").str(),
          b.getFunctionType(types, {stage.output.getType()}));
      fwd.setAllArgAttrs(attrs);
      b.insert(fwd);
      Block *entry = fwd.addEntryBlock();
      {
        OpBuilder fb = OpBuilder::atBlockEnd(entry);
        IRMapping map;
        map.map(flat.getArgument(*tokensArg), entry->getArgument(0));
        unsigned next = 1;
        if (s > 0)
          map.map(stage.input, entry->getArgument(next++));
        for (unsigned w : stage.weights)
          map.map(flat.getArgument(w), entry->getArgument(next++));
        for (Operation *op : stage.ops)
          fb.clone(*op, map);
        func::ReturnOp::create(fb, loss.getLoc(), map.lookup(stage.output));
      }

      // The objective: stage.input differentiable, and for stages before
      // the last, the output's inner product with stage.output_grad.
      SmallVector<Type> otypes(types);
      SmallVector<DictionaryAttr> oattrs(attrs);
      if (s > 0)
        oattrs[1] = b.getDictionaryAttr(
            {b.getNamedAttr("hag.name", b.getStringAttr("stage.input"))});
      bool last = s == P - 1;
      if (!last) {
        otypes.push_back(stage.output.getType());
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
          oentry->getArguments().take_front(types.size()));
      Value result = call.getResult(0);
      if (!last)
        result = InnerProductOp::create(ob, loss.getLoc(), scalar, result,
                                        oentry->getArguments().back());
      func::ReturnOp::create(ob, loss.getLoc(), result);
    }

    for (StringRef name : {"forward", "loss", "decode"})
      if (auto fn = module.lookupSymbol<func::FuncOp>(name))
        fn.erase();

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
};

} // namespace
