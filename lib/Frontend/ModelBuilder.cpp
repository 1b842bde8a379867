//===- ModelBuilder.cpp - Model description -> hag ops --------------------===//
//
// Builds the unfused hag form of spec section 7 from a parsed description.
// Weights are function arguments carrying their interfaces.md name in the
// `hag.name` argument attribute, so later phases and the runtime bind them by
// name. Locations are NameLocs of the weight prefix ("layers.3.attn") so that
// diagnostics in later phases point at the layer.
//
//===----------------------------------------------------------------------===//

#include "hag/Analysis/PyramidWindows.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Frontend/ModelDescription.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

using namespace mlir;
using namespace mlir::hag;

namespace {

/// Collects the weight arguments of a function while its body is built.
class ModelBuilder {
public:
  ModelBuilder(MLIRContext &ctx, const ::hag::ModelDescription &md)
      : ctx(ctx), md(md), b(&ctx), f32(b.getF32Type()),
        config(PyramidConfigAttr::fromParams(&ctx, md.attention)) {}

  OwningOpRef<ModuleOp> build(StringRef name);

private:
  static constexpr int64_t kDyn = ShapedType::kDynamic;

  RankedTensorType tensor(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, f32);
  }
  /// A location named after a weight prefix ("layers.0.attn.").
  Location loc(StringRef scope) {
    return NameLoc::get(b.getStringAttr(scope.rtrim('.')), fileLoc);
  }

  /// Declares a weight argument `name` of `shape` on the function under
  /// construction and returns it.
  Value weight(const std::string &name, ArrayRef<int64_t> shape) {
    Value v = entry->addArgument(tensor(shape), fileLoc);
    argNames.push_back(b.getStringAttr(name));
    return v;
  }

  /// Starts a function: `inputs` are the non-weight arguments.
  void beginFunction(ArrayRef<Type> inputs, ArrayRef<StringRef> inputNames) {
    entry = new Block();
    argNames.clear();
    numInputs = inputs.size();
    for (auto [t, n] : llvm::zip(inputs, inputNames)) {
      entry->addArgument(t, fileLoc);
      argNames.push_back(b.getStringAttr(n));
    }
    b.setInsertionPointToStart(entry);
  }
  /// Finishes the function with `results`, names every argument.
  func::FuncOp endFunction(ModuleOp module, StringRef name,
                           ArrayRef<Value> results);

  Value attentionBlock(Value h, const std::string &prefix);
  Value mlpBlock(Value h, const std::string &prefix);
  Value lmForward(Value tokens);

  MLIRContext &ctx;
  const ::hag::ModelDescription &md;
  OpBuilder b;
  Type f32;
  PyramidConfigAttr config;
  Location fileLoc = UnknownLoc::get(&ctx);
  Block *entry = nullptr;
  SmallVector<Attribute> argNames;
  /// The leading arguments that are model inputs, not weights.
  size_t numInputs = 0;
};

Value ModelBuilder::attentionBlock(Value h, const std::string &prefix) {
  const ::hag::PyramidParams &p = md.attention;
  int64_t d = md.dModel, qDim = p.modelDim(), kvDim = p.kvDim();
  int64_t dg = md.resolvedGateHidden();
  Location l = loc(prefix);
  auto act = [&](int64_t features) { return tensor({kDyn, kDyn, features}); };

  Value wq = weight(prefix + "wq", {qDim, d});
  Value wk = weight(prefix + "wk", {kvDim, d});
  Value wv = weight(prefix + "wv", {kvDim, d});
  Value wo = weight(prefix + "wo", {d, qDim});
  Value w1 = weight(prefix + "gate.w1", {dg, d});
  Value b1 = weight(prefix + "gate.b1", {dg});
  Value w2 = weight(prefix + "gate.w2", {dg});
  Value b2 = weight(prefix + "gate.b2", {1});

  Value q = LinearOp::create(b, l, act(qDim), h, wq, Value());
  Value k = LinearOp::create(b, l, act(kvDim), h, wk, Value());
  Value v = LinearOp::create(b, l, act(kvDim), h, wv, Value());
  if (md.rope) {
    auto rope = [&](Value x) {
      return RopeOp::create(
          b, l, x.getType(), x, b.getI64IntegerAttr(p.headDim),
          b.getF64FloatAttr(md.ropeBase), b.getI64IntegerAttr(0));
    };
    q = rope(q);
    k = rope(k);
  }
  Value g = MemoryGateOp::create(b, l, tensor({kDyn, kDyn}), h, w1, b1, w2, b2,
                                 config);

  SmallVector<Value> levelK, levelV, levelM;
  Value belowK = k, belowV = v, belowM = g;
  int64_t levels = ::hag::staticLevels(p);
  for (int64_t level = 2; level < levels; ++level) {
    Value convK, convV;
    if (p.compress == ::hag::Compress::Conv) {
      std::string suffix = "." + std::to_string(level);
      convK =
          weight(prefix + "conv.k" + suffix, {p.kvHeads, p.ratio, p.headDim});
      convV =
          weight(prefix + "conv.v" + suffix, {p.kvHeads, p.ratio, p.headDim});
    }
    auto build = BuildLevelOp::create(
        b, l, TypeRange{act(kvDim), act(kvDim), tensor({kDyn, kDyn})}, belowK,
        belowV, belowM, convK, convV, config, b.getI64IntegerAttr(level));
    belowK = build.getLevelKeys();
    belowV = build.getLevelValues();
    belowM = build.getLevelMass();
    levelK.push_back(belowK);
    levelV.push_back(belowV);
    levelM.push_back(belowM);
  }

  int64_t blocks = p.causal ? kDyn : 1;
  auto summary = GlobalSummaryOp::create(
      b, l,
      TypeRange{tensor({kDyn, blocks, p.summary, kvDim}),
                tensor({kDyn, blocks, p.summary, kvDim}),
                tensor({kDyn, blocks, p.summary})},
      k, v, g, config);
  Value o = CrossLevelAttentionOp::create(
      b, l, act(qDim), q, k, v, g, levelK, levelV, levelM,
      summary.getSummaryKeys(), summary.getSummaryValues(),
      summary.getSummaryMass(), config);
  return LinearOp::create(b, l, act(d), o, wo, Value());
}

Value ModelBuilder::mlpBlock(Value h, const std::string &prefix) {
  int64_t d = md.dModel, f = md.resolvedMlpHidden();
  Value wg = weight(prefix + "w_gate", {f, d});
  Value wu = weight(prefix + "w_up", {f, d});
  Value wd = weight(prefix + "w_down", {d, f});
  return SwiGLUOp::create(b, loc(prefix), h.getType(), h, wg, wu, wd);
}

Value ModelBuilder::lmForward(Value tokens) {
  int64_t d = md.dModel;
  auto act = tensor({kDyn, kDyn, d});
  auto rmsNorm = [&](Value x, const std::string &scaleName) {
    Value scale = weight(scaleName, {d});
    return RMSNormOp::create(b, loc(scaleName), act, x, scale,
                             b.getF64FloatAttr(1e-5));
  };
  Value embed = weight("embed", {md.vocab, d});
  Value x = EmbeddingOp::create(b, loc("embed"), act, tokens, embed);
  for (int64_t i = 0; i < md.layers; ++i) {
    std::string layer = "layers." + std::to_string(i) + ".";
    Value h = rmsNorm(x, layer + "attn_norm.scale");
    x = AddOp::create(b, loc(layer + "attn"), x,
                      attentionBlock(h, layer + "attn."));
    h = rmsNorm(x, layer + "mlp_norm.scale");
    x = AddOp::create(b, loc(layer + "mlp"), x, mlpBlock(h, layer + "mlp."));
  }
  Value h = rmsNorm(x, "final_norm.scale");
  Value head = md.tieEmbeddings ? embed : weight("lm_head", {md.vocab, d});
  return LinearOp::create(b, loc("lm_head"), tensor({kDyn, kDyn, md.vocab}), h,
                          head, Value());
}

func::FuncOp ModelBuilder::endFunction(ModuleOp module, StringRef name,
                                       ArrayRef<Value> results) {
  func::ReturnOp::create(b, fileLoc, results);
  auto type = FunctionType::get(&ctx, entry->getArgumentTypes(),
                                ValueRange(results).getTypes());
  auto func = func::FuncOp::create(fileLoc, name, type);
  func.getBody().push_back(entry);
  for (auto [i, n] : llvm::enumerate(argNames)) {
    func.setArgAttr(i, "hag.name", n);
    if (i < numInputs)
      func.setArgAttr(i, "hag.input", UnitAttr::get(&ctx));
  }
  module.push_back(func);
  return func;
}

OwningOpRef<ModuleOp> ModelBuilder::build(StringRef name) {
  // Line 0: errors after the frontend concern the model, not a line of
  // its description (line 1 would make the handler quote that line).
  fileLoc = FileLineColLoc::get(&ctx, name, 0, 0);
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc, name);
  module->getOperation()->setAttr("hag.config", config);
  // The non-attention half of the description, for the artifact manifest.
  SmallVector<NamedAttribute> model = {
      b.getNamedAttr("kind", b.getStringAttr(md.kind == ::hag::ModelKind::LM
                                                 ? "lm"
                                                 : "attention")),
      b.getNamedAttr("d_model", b.getI64IntegerAttr(md.dModel)),
      b.getNamedAttr("gate_hidden",
                     b.getI64IntegerAttr(md.resolvedGateHidden())),
      b.getNamedAttr("rope", b.getBoolAttr(md.rope)),
      b.getNamedAttr("rope_base", b.getF64FloatAttr(md.ropeBase))};
  if (md.kind == ::hag::ModelKind::LM) {
    model.push_back(b.getNamedAttr("vocab", b.getI64IntegerAttr(md.vocab)));
    model.push_back(b.getNamedAttr("layers", b.getI64IntegerAttr(md.layers)));
    model.push_back(b.getNamedAttr(
        "mlp_hidden", b.getI64IntegerAttr(md.resolvedMlpHidden())));
    model.push_back(
        b.getNamedAttr("tie_embeddings", b.getBoolAttr(md.tieEmbeddings)));
  }
  module->getOperation()->setAttr("hag.model", b.getDictionaryAttr(model));
  int64_t d = md.dModel;

  if (md.kind == ::hag::ModelKind::Attention) {
    Type x = tensor({kDyn, kDyn, d});
    beginFunction({x}, {"x"});
    Value y = attentionBlock(entry->getArgument(0), "attn.");
    endFunction(*module, "forward", {y});
    return module;
  }

  Type tokens = RankedTensorType::get({kDyn, kDyn}, b.getI32Type());
  beginFunction({tokens}, {"tokens"});
  Value logits = lmForward(entry->getArgument(0));
  func::FuncOp forward = endFunction(*module, "forward", {logits});

  // @loss takes the same arguments and calls @forward: one copy of the model.
  beginFunction({tokens}, {"tokens"});
  SmallVector<Value> args{entry->getArgument(0)};
  for (unsigned i = 1; i < forward.getNumArguments(); ++i) {
    args.push_back(entry->addArgument(forward.getArgumentTypes()[i], fileLoc));
    argNames.push_back(forward.getArgAttr(i, "hag.name"));
  }
  auto call = func::CallOp::create(b, fileLoc, forward, args);
  Value loss =
      CrossEntropyOp::create(b, loc("loss"), RankedTensorType::get({}, f32),
                             call.getResult(0), args[0]);
  endFunction(*module, "loss", {loss});
  return module;
}

} // namespace

namespace hag {
OwningOpRef<ModuleOp>
buildModelModule(MLIRContext &ctx, const ModelDescription &md, StringRef name) {
  ctx.loadDialect<HAGDialect, func::FuncDialect>();
  return ModelBuilder(ctx, md).build(name);
}
} // namespace hag
