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

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
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
    numState = 0;
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

  /// The projections (RoPE applied, at `position` when given) and the
  /// weights of one attention layer.
  struct AttentionInputs {
    Value q, k, v, wo, w1, b1, w2, b2;
  };
  AttentionInputs attentionInputs(Value h, const std::string &prefix,
                                  Value position);
  /// The conv weights ("k" or "v") of every compressed level, if any.
  SmallVector<Value> convWeights(const std::string &prefix, StringRef which);
  /// Spec sections 2-5 on projected q, k, v (RoPE applied) and the gate
  /// input h: the gate, the levels, the summary and cross-level attention;
  /// o before Wo.
  Value pyramidCore(Value h, Value q, Value k, Value v, Value w1, Value b1,
                    Value w2, Value b2, const std::string &prefix);
  Value attentionBlock(Value h, const std::string &prefix);
  /// One decoding step of an attention layer, with its cache arguments.
  Value attentionDecode(Value h, const std::string &prefix, Value position);
  Value mlpBlock(Value h, const std::string &prefix);
  /// The language model over `tokens` [batch, seq]; `position` (an index)
  /// makes it one incremental-decoding step of a [batch, 1] token.
  Value lmForward(Value tokens, Value position = Value());

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
  /// The arguments after the inputs that are state buffers (the decoding
  /// cache), in front of the weights.
  unsigned numState = 0;
};

ModelBuilder::AttentionInputs
ModelBuilder::attentionInputs(Value h, const std::string &prefix,
                              Value position) {
  const ::hag::PyramidParams &p = md.attention;
  int64_t d = md.dModel, qDim = p.modelDim(), kvDim = p.kvDim();
  int64_t dg = md.resolvedGateHidden();
  Location l = loc(prefix);
  int64_t seq = cast<RankedTensorType>(h.getType()).getDimSize(1);
  auto act = [&](int64_t features) { return tensor({kDyn, seq, features}); };

  AttentionInputs in;
  Value wq = weight(prefix + "wq", {qDim, d});
  Value wk = weight(prefix + "wk", {kvDim, d});
  Value wv = weight(prefix + "wv", {kvDim, d});
  in.wo = weight(prefix + "wo", {d, qDim});
  in.w1 = weight(prefix + "gate.w1", {dg, d});
  in.b1 = weight(prefix + "gate.b1", {dg});
  in.w2 = weight(prefix + "gate.w2", {dg});
  in.b2 = weight(prefix + "gate.b2", {1});

  in.q = LinearOp::create(b, l, act(qDim), h, wq, Value());
  in.k = LinearOp::create(b, l, act(kvDim), h, wk, Value());
  in.v = LinearOp::create(b, l, act(kvDim), h, wv, Value());
  if (md.rope) {
    auto rope = [&](Value x) {
      return RopeOp::create(b, l, x.getType(), x, position,
                            b.getI64IntegerAttr(p.headDim),
                            b.getF64FloatAttr(md.ropeBase),
                            b.getI64IntegerAttr(0));
    };
    in.q = rope(in.q);
    in.k = rope(in.k);
  }
  return in;
}

SmallVector<Value> ModelBuilder::convWeights(const std::string &prefix,
                                             StringRef which) {
  const ::hag::PyramidParams &p = md.attention;
  SmallVector<Value> ws;
  if (p.compress != ::hag::Compress::Conv)
    return ws;
  for (int64_t level = 2; level < ::hag::staticLevels(p); ++level)
    ws.push_back(weight(prefix + "conv." + which.str() + "." +
                            std::to_string(level),
                        {p.kvHeads, p.ratio, p.headDim}));
  return ws;
}

Value ModelBuilder::attentionDecode(Value h, const std::string &prefix,
                                    Value position) {
  const ::hag::PyramidParams &p = md.attention;
  int64_t d = md.dModel, qDim = p.modelDim(), kvDim = p.kvDim();
  Location l = loc(prefix);
  AttentionInputs in = attentionInputs(h, prefix, position);
  SmallVector<Value> convK = convWeights(prefix, "k");
  SmallVector<Value> convV = convWeights(prefix, "v");

  // The layer's cache: function arguments the step updates in place.
  ::hag::DecodeCacheLayout layout = ::hag::decodeCacheLayout(p);
  Type f64 = b.getF64Type();
  auto buffer = [&](StringRef name, ArrayRef<int64_t> shape, Type elt) {
    // After the inputs and the earlier buffers, before every weight.
    unsigned at = numInputs + numState++;
    Value v = entry->insertArgument(at, MemRefType::get(shape, elt), fileLoc);
    argNames.insert(argNames.begin() + at,
                    b.getStringAttr(prefix + "cache." + name.str()));
    return v;
  };
  int64_t prefixRows = p.maxSeq + 1;
  Value cacheK = buffer("keys", {kDyn, layout.rows, kvDim}, f32);
  Value cacheV = buffer("values", {kDyn, layout.rows, kvDim}, f32);
  Value cacheAux = buffer("aux", {kDyn, 2 * layout.rows}, f32);
  Value prefixK = buffer("prefix_keys", {kDyn, prefixRows, kvDim}, f64);
  Value prefixV = buffer("prefix_values", {kDyn, prefixRows, kvDim}, f64);
  Value prefixG = buffer("prefix_gate", {kDyn, prefixRows}, f64);

  Value o = PyramidDecodeOp::create(
      b, l, tensor({kDyn, 1, qDim}), in.q, in.k, in.v, h, in.w1, in.b1, in.w2,
      in.b2, convK, convV, position, cacheK, cacheV, cacheAux, prefixK,
      prefixV, prefixG, config);
  return LinearOp::create(b, l, tensor({kDyn, 1, d}), o, in.wo, Value());
}

Value ModelBuilder::pyramidCore(Value h, Value q, Value k, Value v, Value w1,
                                Value b1, Value w2, Value b2,
                                const std::string &prefix) {
  const ::hag::PyramidParams &p = md.attention;
  int64_t qDim = p.modelDim(), kvDim = p.kvDim();
  Location l = loc(prefix);
  auto act = [&](int64_t features) { return tensor({kDyn, kDyn, features}); };
  Value g =
      MemoryGateOp::create(b, l, tensor({kDyn, kDyn}), h, w1, b1, w2, b2, config);

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
  return CrossLevelAttentionOp::create(
      b, l, act(qDim), q, k, v, g, levelK, levelV, levelM,
      summary.getSummaryKeys(), summary.getSummaryValues(),
      summary.getSummaryMass(), config);
}

Value ModelBuilder::attentionBlock(Value h, const std::string &prefix) {
  int64_t d = md.dModel;
  AttentionInputs in = attentionInputs(h, prefix, Value());
  Value o = pyramidCore(h, in.q, in.k, in.v, in.w1, in.b1, in.w2, in.b2, prefix);
  return LinearOp::create(b, loc(prefix), tensor({kDyn, kDyn, d}), o, in.wo,
                          Value());
}

Value ModelBuilder::mlpBlock(Value h, const std::string &prefix) {
  int64_t d = md.dModel, f = md.resolvedMlpHidden();
  Value wg = weight(prefix + "w_gate", {f, d});
  Value wu = weight(prefix + "w_up", {f, d});
  Value wd = weight(prefix + "w_down", {d, f});
  return SwiGLUOp::create(b, loc(prefix), h.getType(), h, wg, wu, wd);
}

Value ModelBuilder::lmForward(Value tokens, Value position) {
  int64_t d = md.dModel;
  int64_t seq = cast<RankedTensorType>(tokens.getType()).getDimSize(1);
  auto act = tensor({kDyn, seq, d});
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
    Value attn = position ? attentionDecode(h, layer + "attn.", position)
                          : attentionBlock(h, layer + "attn.");
    x = AddOp::create(b, loc(layer + "attn"), x, attn);
    h = rmsNorm(x, layer + "mlp_norm.scale");
    x = AddOp::create(b, loc(layer + "mlp"), x, mlpBlock(h, layer + "mlp."));
  }
  Value h = rmsNorm(x, "final_norm.scale");
  Value head = md.tieEmbeddings ? embed : weight("lm_head", {md.vocab, d});
  return LinearOp::create(b, loc("lm_head"), tensor({kDyn, seq, md.vocab}), h,
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
  for (unsigned i = numInputs; i < numInputs + numState; ++i)
    func.setArgAttr(i, "hag.state", UnitAttr::get(&ctx));
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
  // The description's `target:` (hag-compile's --target/--gpu-arch win).
  module->getOperation()->setAttr(
      "hag.target",
      b.getDictionaryAttr(
          {b.getNamedAttr("device", b.getStringAttr(md.target.device)),
           b.getNamedAttr("gpu_arch", b.getStringAttr(md.target.gpuArch))}));
  if (md.train)
    module->getOperation()->setAttr("hag.train",
                                    ::hag::trainConfigAttr(ctx, *md.train));
  if (md.parallel) {
    const ::hag::ParallelConfig &p = *md.parallel;
    module->getOperation()->setAttr(
        "hag.parallel",
        b.getDictionaryAttr(
            {b.getNamedAttr("tensor", b.getI64IntegerAttr(p.tensor)),
             b.getNamedAttr("pipeline", b.getI64IntegerAttr(p.pipeline)),
             b.getNamedAttr("data", b.getI64IntegerAttr(p.data)),
             b.getNamedAttr("microbatches",
                            b.getI64IntegerAttr(p.microbatches))}));
  }
  int64_t d = md.dModel;

  if (md.kind == ::hag::ModelKind::Attention) {
    Type x = tensor({kDyn, kDyn, d});
    beginFunction({x}, {"x"});
    Value y = attentionBlock(entry->getArgument(0), "attn.");
    endFunction(*module, "forward", {y});

    // @core: the pyramid alone (gate, levels, summary, cross-level
    // attention) on given q, k, v and gate input, so that benchmarks and
    // users can time and call it without the projections.
    const ::hag::PyramidParams &p = md.attention;
    beginFunction({tensor({kDyn, kDyn, p.modelDim()}),
                   tensor({kDyn, kDyn, p.kvDim()}),
                   tensor({kDyn, kDyn, p.kvDim()}), x},
                  {"q", "k", "v", "h"});
    int64_t dg = md.resolvedGateHidden();
    Value w1 = weight("attn.gate.w1", {dg, d});
    Value b1 = weight("attn.gate.b1", {dg});
    Value w2 = weight("attn.gate.w2", {dg});
    Value b2 = weight("attn.gate.b2", {1});
    Value o = pyramidCore(entry->getArgument(3), entry->getArgument(0),
                          entry->getArgument(1), entry->getArgument(2), w1,
                          b1, w2, b2, "attn.");
    endFunction(*module, "core", {o});

    // @gate: the memory gate alone (g [batch, N] from the gate input), so
    // that the benchmark can tell the gate's matmul from the rest of @core.
    beginFunction({x}, {"h"});
    Value gw1 = weight("attn.gate.w1", {dg, d});
    Value gb1 = weight("attn.gate.b1", {dg});
    Value gw2 = weight("attn.gate.w2", {dg});
    Value gb2 = weight("attn.gate.b2", {1});
    // As a projection and the activation (no pyramid configuration, so a
    // tensor-parallel split leaves the replicated gate whole).
    Location gl = loc("attn.");
    Value hidden = LinearOp::create(b, gl, tensor({kDyn, kDyn, dg}),
                                    entry->getArgument(0), gw1, Value());
    Value g = GateActivationOp::create(
        b, gl, tensor({kDyn, kDyn}), hidden, gb1, gw2, gb2,
        b.getF64FloatAttr(config.getTemperature().convertToDouble()));
    endFunction(*module, "gate", {g});
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

  // @decode: one incremental-decoding step (spec section 10), causal only.
  if (md.attention.causal) {
    Type stepTokens = RankedTensorType::get({kDyn, 1}, b.getI32Type());
    Type position = RankedTensorType::get({}, b.getI64Type());
    beginFunction({stepTokens, position}, {"tokens", "position"});
    Value pos = tensor::ExtractOp::create(b, fileLoc, entry->getArgument(1),
                                          ValueRange{});
    pos = arith::IndexCastOp::create(b, fileLoc, b.getIndexType(), pos);
    endFunction(*module, "decode",
                {lmForward(entry->getArgument(0), pos)});
  }
  return module;
}

} // namespace

namespace hag {
OwningOpRef<ModuleOp>
buildModelModule(MLIRContext &ctx, const ModelDescription &md, StringRef name) {
  ctx.loadDialect<HAGDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect, memref::MemRefDialect>();
  return ModelBuilder(ctx, md).build(name);
}
} // namespace hag

namespace hag {
mlir::DictionaryAttr trainConfigAttr(MLIRContext &ctx, const TrainConfig &c) {
  Builder b(&ctx);
  auto i = [&](int64_t v) { return b.getI64IntegerAttr(v); };
  auto f = [&](double v) { return b.getF64FloatAttr(v); };
  return b.getDictionaryAttr({
      b.getNamedAttr("precision", b.getStringAttr(c.precision)),
      b.getNamedAttr("batch", i(c.batch)),
      b.getNamedAttr("seq", i(c.seq)),
      b.getNamedAttr("steps", i(c.steps)),
      b.getNamedAttr("lr", f(c.lr)),
      b.getNamedAttr("beta1", f(c.betas[0])),
      b.getNamedAttr("beta2", f(c.betas[1])),
      b.getNamedAttr("eps", f(c.adamEps)),
      b.getNamedAttr("weight_decay", f(c.weightDecay)),
      b.getNamedAttr("warmup", i(c.warmup)),
      b.getNamedAttr("schedule", b.getStringAttr(c.schedule)),
      b.getNamedAttr("clip", f(c.clip)),
      b.getNamedAttr("loss_scale_init", f(c.lossScaleInit)),
      b.getNamedAttr("growth_interval", i(c.lossScaleGrowthInterval)),
      b.getNamedAttr("checkpoint_every", i(c.checkpointEvery)),
      b.getNamedAttr("checkpoint_dir", b.getStringAttr(c.checkpointDir)),
      b.getNamedAttr("seed", i(c.seed)),
      b.getNamedAttr("sampling", b.getStringAttr(c.sampling)),
  });
}
} // namespace hag
