//===- HAGOps.cpp - hag operations and their verifiers --------------------===//
//
// Every shape relation between operands is checked here with a message that
// names the operand and the numbers that disagree. Dynamic dimensions (`?`)
// are compatible with anything; a relation is checked as soon as both sides
// are static.
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Analysis/PyramidWindows.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::hag;

#include "hag/Dialect/HAG/IR/HAGInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "hag/Dialect/HAG/IR/HAGOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Shape-checking helpers
//===----------------------------------------------------------------------===//

namespace {

/// Checks shape relations of one op; every failure names the values involved.
class ShapeChecker {
public:
  explicit ShapeChecker(Operation *op) : op(op) {}

  /// `v` (called `name`) must have rank `rank`.
  LogicalResult rank(Value v, StringRef name, int64_t rank) {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() != rank)
      return op->emitOpError() << "expects " << name << " to have rank " << rank
                               << ", got " << t.getRank() << " (" << t << ")";
    return success();
  }

  /// Dimension `da` of `a` must equal dimension `db` of `b` (when both static).
  LogicalResult sameDim(Value a, StringRef nameA, int64_t da, StringRef whatA,
                        Value b, StringRef nameB, int64_t db, StringRef whatB) {
    int64_t x = dim(a, da), y = dim(b, db);
    if (ShapedType::isDynamic(x) || ShapedType::isDynamic(y) || x == y)
      return success();
    return op->emitOpError()
           << "expects " << whatA << " of " << nameA << " (" << x
           << ") to equal " << whatB << " of " << nameB << " (" << y << ")";
  }

  /// Dimension `d` of `v` must equal `expected` (when static).
  LogicalResult dimIs(Value v, StringRef name, int64_t d, StringRef what,
                      int64_t expected, StringRef because) {
    int64_t x = dim(v, d);
    if (ShapedType::isDynamic(x) || ShapedType::isDynamic(expected) ||
        x == expected)
      return success();
    return op->emitOpError()
           << "expects " << what << " of " << name << " (" << x << ") to equal "
           << because << " (" << expected << ")";
  }

  /// All float tensors of the op share the element type of the first one.
  LogicalResult sameElementType() {
    Type first;
    auto check = [&](Value v, StringRef kind, unsigned idx) -> LogicalResult {
      auto t = dyn_cast<RankedTensorType>(v.getType());
      if (!t || !isa<FloatType>(t.getElementType()))
        return success();
      if (!first) {
        first = t.getElementType();
        return success();
      }
      if (t.getElementType() != first)
        return op->emitOpError()
               << "expects every floating-point operand and result to have "
                  "element type "
               << first << ", but " << kind << " #" << idx << " has "
               << t.getElementType();
      return success();
    };
    for (auto [i, v] : llvm::enumerate(op->getOperands()))
      if (failed(check(v, "operand", i)))
        return failure();
    for (auto [i, v] : llvm::enumerate(op->getResults()))
      if (failed(check(v, "result", i)))
        return failure();
    return success();
  }

  static int64_t dim(Value v, int64_t d) {
    auto t = cast<RankedTensorType>(v.getType());
    if (d < 0)
      d += t.getRank();
    return t.getDimSize(d);
  }

private:
  Operation *op;
};

int64_t ceilDivDyn(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) ? ShapedType::kDynamic : (a + b - 1) / b;
}

/// The sequence length must not exceed the configured max_seq.
LogicalResult checkMaxSeq(Operation *op, int64_t seq, StringRef name,
                          PyramidConfigAttr config) {
  if (!ShapedType::isDynamic(seq) && seq > config.getMaxSeq())
    return op->emitOpError()
           << "sequence length of " << name << " (" << seq
           << ") exceeds max_seq (" << config.getMaxSeq() << ")";
  return success();
}

/// Checks raw keys/values [b, N, kv_dim] and a [b, N] mass or gate operand.
LogicalResult checkRawKV(ShapeChecker &sc, Value keys, Value values, Value mass,
                         StringRef massName, PyramidConfigAttr config) {
  if (failed(sc.rank(keys, "keys", 3)) ||
      failed(sc.rank(values, "values", 3)) ||
      failed(sc.rank(mass, massName, 2)))
    return failure();
  if (failed(sc.dimIs(keys, "keys", 2, "feature size", config.getKvDim(),
                      "kv_heads * head_dim")) ||
      failed(sc.dimIs(values, "values", 2, "feature size", config.getKvDim(),
                      "kv_heads * head_dim")))
    return failure();
  for (int64_t d : {0, 1})
    if (failed(sc.sameDim(values, "values", d, d == 0 ? "batch" : "length",
                          keys, "keys", d, d == 0 ? "batch" : "length")) ||
        failed(sc.sameDim(mass, massName, d, d == 0 ? "batch" : "length", keys,
                          "keys", d, d == 0 ? "batch" : "length")))
      return failure();
  return success();
}

/// Checks the gate weights: w1 [Dg, D], b1 [Dg], w2 [Dg], b2 [1], against the
/// gate input `input` [b, N, D].
LogicalResult checkGateWeights(ShapeChecker &sc, Value input, Value w1,
                               Value b1, Value w2, Value b2) {
  if (failed(sc.rank(w1, "w1", 2)) || failed(sc.rank(b1, "b1", 1)) ||
      failed(sc.rank(w2, "w2", 1)) || failed(sc.rank(b2, "b2", 1)))
    return failure();
  if (failed(sc.sameDim(w1, "w1", 1, "in-features", input, "the gate input", -1,
                        "feature size")) ||
      failed(sc.sameDim(b1, "b1", 0, "size", w1, "w1", 0, "out-features")) ||
      failed(sc.sameDim(w2, "w2", 0, "size", w1, "w1", 0, "out-features")) ||
      failed(sc.dimIs(b2, "b2", 0, "size", 1, "one")))
    return failure();
  return success();
}

/// Checks a conv weight [kv_heads, r, head_dim].
LogicalResult checkConvWeight(Operation *op, ShapeChecker &sc, Value w,
                              StringRef name, PyramidConfigAttr config) {
  if (failed(sc.rank(w, name, 3)))
    return failure();
  if (failed(sc.dimIs(w, name, 0, "dim 0", config.getKvHeads(), "kv_heads")) ||
      failed(sc.dimIs(w, name, 1, "dim 1", config.getRatio(), "ratio")) ||
      failed(sc.dimIs(w, name, 2, "dim 2", config.getHeadDim(), "head_dim")))
    return failure();
  return success();
}

/// Checks summary keys and values [b, blocks, T, kv_dim] and masses
/// [b, blocks, T] against the raw sequence length `seq`, the batch of `ref`
/// (called `refName`) and the configuration (one block when bidirectional).
LogicalResult checkSummaryTensors(ShapeChecker &sc, Value keys, Value values,
                                  Value mass, Value ref, StringRef refName,
                                  int64_t seq, PyramidConfigAttr config) {
  if (failed(sc.rank(keys, "summary keys", 4)) ||
      failed(sc.rank(values, "summary values", 4)) ||
      failed(sc.rank(mass, "summary mass", 3)))
    return failure();
  int64_t blocks = config.getCausal() ? ceilDivDyn(seq, config.getBlock()) : 1;
  if (failed(sc.sameDim(keys, "summary keys", 0, "batch", ref, refName, 0,
                        "batch")) ||
      failed(sc.dimIs(keys, "summary keys", 1, "block count", blocks,
                      config.getCausal() ? "ceil(length / block)"
                                         : "one block when bidirectional")) ||
      failed(sc.dimIs(keys, "summary keys", 2, "token count",
                      config.getSummary(), "summary")) ||
      failed(sc.dimIs(keys, "summary keys", 3, "feature size",
                      config.getKvDim(), "kv_heads * head_dim")))
    return failure();
  for (int64_t d : {0, 1, 2, 3})
    if (failed(sc.sameDim(values, "summary values", d,
                          "dim " + std::to_string(d), keys, "summary keys", d,
                          "dim " + std::to_string(d))))
      return failure();
  for (int64_t d : {0, 1, 2})
    if (failed(sc.sameDim(mass, "summary mass", d, "dim " + std::to_string(d),
                          keys, "summary keys", d, "dim " + std::to_string(d))))
      return failure();
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Language-model ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getTokens(), "tokens", 2)) ||
      failed(sc.rank(getTable(), "table", 2)) ||
      failed(sc.rank(getResult(), "result", 3)) || failed(sc.sameElementType()))
    return failure();
  if (failed(sc.sameDim(getResult(), "result", 0, "batch", getTokens(),
                        "tokens", 0, "batch")) ||
      failed(sc.sameDim(getResult(), "result", 1, "length", getTokens(),
                        "tokens", 1, "length")) ||
      failed(sc.sameDim(getResult(), "result", 2, "feature size", getTable(),
                        "table", 1, "width")))
    return failure();
  return success();
}

LogicalResult LinearOp::verify() {
  ShapeChecker sc(*this);
  auto inTy = getInput().getType();
  if (inTy.getRank() < 1)
    return emitOpError() << "expects input to have rank >= 1, got " << inTy;
  if (failed(sc.rank(getWeight(), "weight", 2)) ||
      failed(sc.rank(getResult(), "result", inTy.getRank())) ||
      failed(sc.sameElementType()))
    return failure();
  if (failed(sc.sameDim(getWeight(), "weight", 1, "in-features", getInput(),
                        "input", -1, "feature size")) ||
      failed(sc.sameDim(getResult(), "result", -1, "feature size", getWeight(),
                        "weight", 0, "out-features")))
    return failure();
  for (int64_t d = 0; d + 1 < inTy.getRank(); ++d)
    if (failed(sc.sameDim(getResult(), "result", d, "dim " + std::to_string(d),
                          getInput(), "input", d, "dim " + std::to_string(d))))
      return failure();
  if (Value bias = getBias()) {
    if (failed(sc.rank(bias, "bias", 1)) ||
        failed(sc.sameDim(bias, "bias", 0, "size", getWeight(), "weight", 0,
                          "out-features")))
      return failure();
  }
  return success();
}

LogicalResult RopeOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getInput(), "input", 3)))
    return failure();
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "expects result type " << getResult().getType()
                         << " to equal input type " << getInput().getType();
  int64_t hd = getHeadDim();
  if (hd % 2 != 0)
    return emitOpError() << "expects an even head_dim, got " << hd;
  int64_t features = ShapeChecker::dim(getInput(), 2);
  if (!ShapedType::isDynamic(features) && features % hd != 0)
    return emitOpError() << "expects the feature size of input (" << features
                         << ") to be a multiple of head_dim (" << hd << ")";
  if (!(getBase().convertToDouble() > 1.0))
    return emitOpError() << "expects base > 1, got "
                         << getBase().convertToDouble();
  if (getOffsetAttr().getInt() < 0)
    return emitOpError() << "expects offset >= 0, got "
                         << getOffsetAttr().getInt();
  return success();
}

LogicalResult RMSNormOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getScale(), "scale", 1)) || failed(sc.sameElementType()))
    return failure();
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "expects result type " << getResult().getType()
                         << " to equal input type " << getInput().getType();
  if (failed(sc.sameDim(getScale(), "scale", 0, "size", getInput(), "input", -1,
                        "feature size")))
    return failure();
  if (!(getEps().convertToDouble() > 0))
    return emitOpError() << "expects eps > 0, got "
                         << getEps().convertToDouble();
  return success();
}

LogicalResult SwiGLUOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getInput(), "input", 3)) ||
      failed(sc.rank(getWGate(), "w_gate", 2)) ||
      failed(sc.rank(getWUp(), "w_up", 2)) ||
      failed(sc.rank(getWDown(), "w_down", 2)) || failed(sc.sameElementType()))
    return failure();
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "expects result type " << getResult().getType()
                         << " to equal input type " << getInput().getType();
  if (failed(sc.sameDim(getWGate(), "w_gate", 1, "in-features", getInput(),
                        "input", 2, "feature size")) ||
      failed(sc.sameDim(getWUp(), "w_up", 0, "hidden size", getWGate(),
                        "w_gate", 0, "hidden size")) ||
      failed(sc.sameDim(getWUp(), "w_up", 1, "in-features", getInput(), "input",
                        2, "feature size")) ||
      failed(sc.sameDim(getWDown(), "w_down", 1, "in-features", getWGate(),
                        "w_gate", 0, "hidden size")) ||
      failed(sc.sameDim(getWDown(), "w_down", 0, "out-features", getInput(),
                        "input", 2, "feature size")))
    return failure();
  return success();
}

LogicalResult AddOp::verify() { return success(); }

/// The parallel groups of hag.all_reduce and hag.copy_to_group.
static LogicalResult verifyGroup(Operation *op, StringRef g) {
  if (g == "tensor" || g == "data" || g == "pipeline" || g == "embedding")
    return success();
  return op->emitOpError() << "group must be \"tensor\", \"data\", "
                              "\"pipeline\" or \"embedding\", got \""
                           << g << "\"";
}

LogicalResult AllReduceOp::verify() { return verifyGroup(*this, getGroup()); }

LogicalResult ScaleByOp::verify() { return success(); }

LogicalResult InnerProductOp::verify() {
  if (getLhs().getType() != getRhs().getType())
    return emitOpError() << "operands must have the same type, got "
                         << getLhs().getType() << " and "
                         << getRhs().getType();
  return success();
}

LogicalResult CopyToGroupOp::verify() {
  return verifyGroup(*this, getGroup());
}

LogicalResult CrossEntropyOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getLogits(), "logits", 3)) ||
      failed(sc.rank(getTokens(), "tokens", 2)))
    return failure();
  if (failed(sc.sameDim(getTokens(), "tokens", 0, "batch", getLogits(),
                        "logits", 0, "batch")) ||
      failed(sc.sameDim(getTokens(), "tokens", 1, "length", getLogits(),
                        "logits", 1, "length")))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Pyramid attention ops
//===----------------------------------------------------------------------===//

LogicalResult MemoryGateOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getInput(), "input", 3)) ||
      failed(sc.rank(getGate(), "result", 2)) || failed(sc.sameElementType()) ||
      failed(
          checkGateWeights(sc, getInput(), getW1(), getB1(), getW2(), getB2())))
    return failure();
  for (int64_t d : {0, 1})
    if (failed(sc.sameDim(getGate(), "result", d, d ? "length" : "batch",
                          getInput(), "input", d, d ? "length" : "batch")))
      return failure();
  // The gate reads the attention input: D = heads * head_dim (spec 1).
  if (failed(sc.dimIs(getInput(), "input", 2, "feature size",
                      getConfig().getQueryDim(), "heads * head_dim")))
    return failure();
  return checkMaxSeq(*this, ShapeChecker::dim(getInput(), 1), "input",
                     getConfig());
}

LogicalResult BuildLevelOp::verify() {
  ShapeChecker sc(*this);
  PyramidConfigAttr config = getConfig();
  int64_t levels = config.getStaticLevels();
  int64_t level = getLevelAttr().getInt();
  if (level < 2 || level > levels - 1)
    return emitOpError() << "expects a compressed level in [2, " << levels - 1
                         << "] (the config has " << levels
                         << " levels), got level " << level;
  if (failed(sc.sameElementType()) ||
      failed(
          checkRawKV(sc, getKeys(), getValues(), getMass(), "mass", config)) ||
      failed(checkRawKV(sc, getLevelKeys(), getLevelValues(), getLevelMass(),
                        "result mass", config)))
    return failure();
  bool isConv = config.getCompress() == CompressMode::conv;
  bool hasConv = static_cast<bool>(getConvKeys());
  if (isConv != hasConv)
    return emitOpError() << (isConv ? "expects conv weights for compress = conv"
                                    : "expects no conv weights for compress = ")
                         << (isConv
                                 ? ""
                                 : stringifyCompressMode(config.getCompress()));
  if (hasConv &&
      (failed(checkConvWeight(*this, sc, getConvKeys(), "conv_keys", config)) ||
       failed(
           checkConvWeight(*this, sc, getConvValues(), "conv_values", config))))
    return failure();
  if (failed(sc.sameDim(getLevelKeys(), "result keys", 0, "batch", getKeys(),
                        "keys", 0, "batch")))
    return failure();
  int64_t below = ShapeChecker::dim(getKeys(), 1);
  int64_t expected = ceilDivDyn(below, config.getRatio());
  if (failed(sc.dimIs(getLevelKeys(), "result keys", 1, "length", expected,
                      "ceil(input length / ratio)")))
    return failure();
  // The level below cannot be longer than level l-1 at max_seq.
  int64_t maxBelow =
      ::hag::levelLength(config.getRatio(), level - 1, config.getMaxSeq());
  if (!ShapedType::isDynamic(below) && below > maxBelow)
    return emitOpError() << "input length (" << below << ") exceeds level "
                         << level - 1 << "'s length at max_seq (" << maxBelow
                         << ")";
  return success();
}

LogicalResult GlobalSummaryOp::verify() {
  ShapeChecker sc(*this);
  PyramidConfigAttr config = getConfig();
  if (failed(sc.sameElementType()) ||
      failed(checkRawKV(sc, getKeys(), getValues(), getGate(), "gate", config)))
    return failure();
  if (getSummaryKeys().getType() != getSummaryValues().getType())
    return emitOpError() << "expects summary keys and values of one type, got "
                         << getSummaryKeys().getType() << " and "
                         << getSummaryValues().getType();
  int64_t seq = ShapeChecker::dim(getKeys(), 1);
  if (failed(checkSummaryTensors(sc, getSummaryKeys(), getSummaryValues(),
                                 getSummaryMass(), getKeys(), "keys", seq,
                                 config)))
    return failure();
  return checkMaxSeq(*this, seq, "keys", config);
}

/// Checks the operands shared by the unfused and the fused attention: queries,
/// raw keys/values and the result.
static LogicalResult checkAttentionIO(Operation *op, ShapeChecker &sc,
                                      Value queries, Value keys, Value values,
                                      Value result, PyramidConfigAttr config) {
  if (failed(sc.rank(queries, "queries", 3)) ||
      failed(sc.rank(keys, "keys", 3)) || failed(sc.rank(values, "values", 3)))
    return failure();
  if (result.getType() != queries.getType())
    return op->emitOpError()
           << "expects result type " << result.getType()
           << " to equal the queries' type " << queries.getType();
  if (failed(sc.dimIs(queries, "queries", 2, "feature size",
                      config.getQueryDim(), "heads * head_dim")) ||
      failed(sc.dimIs(keys, "keys", 2, "feature size", config.getKvDim(),
                      "kv_heads * head_dim")) ||
      failed(sc.dimIs(values, "values", 2, "feature size", config.getKvDim(),
                      "kv_heads * head_dim")))
    return failure();
  for (int64_t d : {0, 1}) {
    StringRef what = d ? "length" : "batch";
    if (failed(
            sc.sameDim(keys, "keys", d, what, queries, "queries", d, what)) ||
        failed(
            sc.sameDim(values, "values", d, what, queries, "queries", d, what)))
      return failure();
  }
  return checkMaxSeq(op, ShapeChecker::dim(queries, 1), "queries", config);
}

LogicalResult CrossLevelAttentionOp::verify() {
  ShapeChecker sc(*this);
  PyramidConfigAttr config = getConfig();
  if (failed(sc.sameElementType()) ||
      failed(checkAttentionIO(*this, sc, getQueries(), getKeys(), getValues(),
                              getResult(), config)) ||
      failed(checkRawKV(sc, getKeys(), getValues(), getGate(), "gate", config)))
    return failure();

  int64_t compressed = config.getNumCompressedLevels();
  int64_t nk = getLevelKeys().size(), nv = getLevelValues().size(),
          nm = getLevelMasses().size();
  if (nk != compressed || nv != compressed || nm != compressed)
    return emitOpError() << "expects " << compressed
                         << " compressed levels (levels 2.." << compressed + 1
                         << " of " << config.getStaticLevels() << "), got "
                         << nk << " keys, " << nv << " values and " << nm
                         << " masses";
  int64_t seq = ShapeChecker::dim(getQueries(), 1);
  for (int64_t i = 0; i < compressed; ++i) {
    int64_t level = i + 2;
    std::string kName = "level " + std::to_string(level) + " keys";
    if (failed(checkRawKV(
            sc, getLevelKeys()[i], getLevelValues()[i], getLevelMasses()[i],
            "level " + std::to_string(level) + " mass", config)) ||
        failed(sc.sameDim(getLevelKeys()[i], kName, 0, "batch", getQueries(),
                          "queries", 0, "batch")))
      return failure();
    int64_t expected = ShapedType::isDynamic(seq)
                           ? ShapedType::kDynamic
                           : ::hag::levelLength(config.getRatio(), level, seq);
    if (failed(
            sc.dimIs(getLevelKeys()[i], kName, 1, "length", expected,
                     "ceil(length / ratio^" + std::to_string(level - 1) + ")")))
      return failure();
  }

  return checkSummaryTensors(sc, getSummaryKeys(), getSummaryValues(),
                             getSummaryMass(), getQueries(), "queries", seq,
                             config);
}

/// The conv weights of the fused forms and of the attention backward: one
/// [kv_heads, r, head_dim] tensor per compressed level for keys and for
/// values when compress = conv, none otherwise.
static LogicalResult checkConvWeights(Operation *op, ShapeChecker &sc,
                                      ValueRange convKeys,
                                      ValueRange convValues,
                                      PyramidConfigAttr config) {
  int64_t compressed = config.getNumCompressedLevels();
  bool isConv = config.getCompress() == CompressMode::conv;
  int64_t expected = isConv ? compressed : 0;
  int64_t nk = convKeys.size(), nv = convValues.size();
  if (nk != expected || nv != expected)
    return op->emitOpError()
           << "expects " << expected
           << " conv weights for keys and for values (compress = "
           << stringifyCompressMode(config.getCompress()) << ", " << compressed
           << " compressed levels), got " << nk << " and " << nv;
  for (int64_t i = 0; i < nk; ++i) {
    std::string suffix = " of level " + std::to_string(i + 2);
    if (failed(checkConvWeight(op, sc, convKeys[i], "conv_keys" + suffix,
                               config)) ||
        failed(checkConvWeight(op, sc, convValues[i], "conv_values" + suffix,
                               config)))
      return failure();
  }
  return success();
}

/// The gate inputs and conv weights of the fused forms (pyramid_attention,
/// pyramid_decode).
template <typename FusedOp>
static LogicalResult checkFusedGateAndConv(FusedOp op, ShapeChecker &sc,
                                           PyramidConfigAttr config) {
  if (failed(sc.rank(op.getGateInput(), "gate input", 3)) ||
      failed(checkGateWeights(sc, op.getGateInput(), op.getGateW1(),
                              op.getGateB1(), op.getGateW2(), op.getGateB2())))
    return failure();
  for (int64_t d : {0, 1}) {
    StringRef what = d ? "length" : "batch";
    if (failed(sc.sameDim(op.getGateInput(), "gate input", d, what,
                          op.getQueries(), "queries", d, what)))
      return failure();
  }
  // The gate input is the layer's input x [b, N, D]: D is W1's in-features
  // (checked above), not heads * head_dim (a tensor-parallel rank holds
  // heads / t of the heads and the whole x).
  return checkConvWeights(op, sc, op.getConvKeys(), op.getConvValues(),
                          config);
}

LogicalResult PyramidAttentionOp::verify() {
  ShapeChecker sc(*this);
  PyramidConfigAttr config = getConfig();
  if (failed(sc.sameElementType()) ||
      failed(checkAttentionIO(*this, sc, getQueries(), getKeys(), getValues(),
                              getResult(), config)))
    return failure();
  return checkFusedGateAndConv(*this, sc, config);
}

LogicalResult PyramidDecodeOp::verify() {
  ShapeChecker sc(*this);
  PyramidConfigAttr config = getConfig();
  if (!config.getCausal())
    return emitOpError() << "incremental decoding needs causal attention "
                            "(spec section 10), the config is bidirectional";
  if (failed(sc.sameElementType()) ||
      failed(checkAttentionIO(*this, sc, getQueries(), getKeys(), getValues(),
                              getResult(), config)) ||
      failed(sc.dimIs(getQueries(), "queries", 1, "length", 1,
                      "one token per decoding step")) ||
      failed(checkFusedGateAndConv(*this, sc, config)))
    return failure();

  // The cache buffers: [batch, rows, kv_dim] and friends (DecodeCacheLayout).
  ::hag::DecodeCacheLayout layout = ::hag::decodeCacheLayout(config.toParams());
  int64_t kvDim = config.getKvDim(), prefixRows = config.getMaxSeq() + 1;
  struct Expected {
    Value buffer;
    StringRef name;
    SmallVector<int64_t> shape; // without the batch dimension
  };
  Expected buffers[] = {
      {getCacheKeys(), "cache keys", {layout.rows, kvDim}},
      {getCacheValues(), "cache values", {layout.rows, kvDim}},
      {getCacheAux(), "cache aux", {2 * layout.rows}},
      {getPrefixKeys(), "prefix keys", {prefixRows, kvDim}},
      {getPrefixValues(), "prefix values", {prefixRows, kvDim}},
      {getPrefixGate(), "prefix gate", {prefixRows}}};
  int64_t batch = ShapeChecker::dim(getQueries(), 0);
  for (const Expected &e : buffers) {
    auto type = cast<MemRefType>(e.buffer.getType());
    int64_t b = type.getDimSize(0);
    if (!ShapedType::isDynamic(b) && !ShapedType::isDynamic(batch) &&
        b != batch)
      return emitOpError() << "expects the batch of " << e.name << " (" << b
                           << ") to equal the queries' batch (" << batch << ")";
    for (auto [i, want] : llvm::enumerate(e.shape)) {
      int64_t got = type.getDimSize(i + 1);
      if (got != want)
        return emitOpError()
               << "expects dimension " << i + 1 << " of " << e.name << " to be "
               << want << " (the decoding cache of this config at max_seq = "
               << config.getMaxSeq() << "), got "
               << (ShapedType::isDynamic(got) ? std::string("?")
                                              : std::to_string(got));
    }
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Optimizer ops
//===----------------------------------------------------------------------===//

LogicalResult AdamWOp::verify() {
  Type type = getParam().getType();
  struct Named {
    Value v;
    StringRef name;
  };
  for (Named n : {Named{getGrad(), "grad"}, Named{getExpAvg(), "exp_avg"},
                  Named{getExpAvgSq(), "exp_avg_sq"},
                  Named{getNewParam(), "new_param"},
                  Named{getNewExpAvg(), "new_exp_avg"},
                  Named{getNewExpAvgSq(), "new_exp_avg_sq"}})
    if (n.v.getType() != type)
      return emitOpError() << "expects " << n.name << " to have the parameter's "
                           << "type " << type << ", got " << n.v.getType();
  double b1 = getBeta1().convertToDouble(), b2 = getBeta2().convertToDouble();
  if (!(b1 >= 0.0 && b1 < 1.0) || !(b2 >= 0.0 && b2 < 1.0))
    return emitOpError() << "expects betas in [0, 1), got (" << b1 << ", "
                         << b2 << ")";
  if (!(getEps().convertToDouble() > 0.0))
    return emitOpError() << "expects eps > 0, got "
                         << getEps().convertToDouble();
  if (!(getWeightDecay().convertToDouble() >= 0.0))
    return emitOpError() << "expects weight_decay >= 0, got "
                         << getWeightDecay().convertToDouble();
  return success();
}

LogicalResult ClipGradNormOp::verify() {
  if (getGrads().empty())
    return emitOpError() << "expects at least one gradient";
  for (auto [i, pair] :
       llvm::enumerate(llvm::zip(getGrads().getTypes(), getClipped().getTypes())))
    if (std::get<0>(pair) != std::get<1>(pair))
      return emitOpError() << "expects result " << i << " to have the type of "
                           << "gradient " << i << " (" << std::get<0>(pair)
                           << "), got " << std::get<1>(pair);
  if (getGrads().size() != getClipped().size())
    return emitOpError() << "expects one clipped result per gradient ("
                         << getGrads().size() << "), got "
                         << getClipped().size();
  if (!(getMaxNorm().convertToDouble() > 0.0))
    return emitOpError() << "expects max_norm > 0, got "
                         << getMaxNorm().convertToDouble();
  return success();
}

LogicalResult LRScheduleOp::verify() {
  StringRef schedule = getSchedule();
  if (schedule != "constant" && schedule != "cosine")
    return emitOpError() << "expects schedule 'constant' or 'cosine', got '"
                         << schedule << "'";
  if (!(getLr().convertToDouble() > 0.0))
    return emitOpError() << "expects lr > 0, got " << getLr().convertToDouble();
  if (getWarmup() < 0)
    return emitOpError() << "expects warmup >= 0, got " << getWarmup();
  if (schedule == "cosine" && getTotal() <= getWarmup())
    return emitOpError() << "expects total (" << getTotal()
                         << ") > warmup (" << getWarmup()
                         << ") for the cosine schedule";
  return success();
}

LogicalResult AllFiniteOp::verify() {
  if (getTensors().empty())
    return emitOpError() << "expects at least one tensor";
  return success();
}

LogicalResult LossScaleUpdateOp::verify() {
  if (getGrowthInterval() < 1)
    return emitOpError() << "expects growth_interval >= 1, got "
                         << getGrowthInterval();
  if (!(getGrowthFactor().convertToDouble() > 1.0))
    return emitOpError() << "expects growth_factor > 1, got "
                         << getGrowthFactor().convertToDouble();
  double backoff = getBackoffFactor().convertToDouble();
  if (!(backoff > 0.0 && backoff < 1.0))
    return emitOpError() << "expects backoff_factor in (0, 1), got " << backoff;
  return success();
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

/// `got` must have the type `want` (a gradient has its primal's type).
static LogicalResult sameTypeAs(Operation *op, Value got, StringRef gotName,
                                Value want, StringRef wantName) {
  if (got.getType() == want.getType())
    return success();
  return op->emitOpError() << "expects " << gotName << " to have the type of "
                           << wantName << " (" << want.getType() << "), got "
                           << got.getType();
}

LogicalResult LinearBackwardOp::verify() {
  ShapeChecker sc(*this);
  auto inTy = cast<RankedTensorType>(getInput().getType());
  if (failed(sc.sameElementType()) || failed(sc.rank(getWeight(), "weight", 2)) ||
      failed(sc.rank(getResultGrad(), "result gradient", inTy.getRank())) ||
      failed(sc.sameDim(getWeight(), "weight", 1, "in-features", getInput(),
                        "input", -1, "feature size")) ||
      failed(sc.sameDim(getResultGrad(), "result gradient", -1, "feature size",
                        getWeight(), "weight", 0, "out-features")))
    return failure();
  return failure(
      failed(sameTypeAs(*this, getInputGrad(), "input_grad", getInput(),
                        "input")) ||
      failed(sameTypeAs(*this, getWeightGrad(), "weight_grad", getWeight(),
                        "weight")));
}

LogicalResult SumRowsOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getResult(), "result", 1)) || failed(sc.sameElementType()))
    return failure();
  return sc.sameDim(getResult(), "result", 0, "size", getInput(), "input", -1,
                    "feature size");
}

LogicalResult EmbeddingBackwardOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getResultGrad(), "result gradient", 3)) ||
      failed(sc.rank(getTokens(), "tokens", 2)) ||
      failed(sc.rank(getTableGrad(), "table gradient", 2)) ||
      failed(sc.sameElementType()) ||
      failed(sc.sameDim(getTableGrad(), "table gradient", 1, "width",
                        getResultGrad(), "result gradient", 2, "width")))
    return failure();
  for (int64_t d : {0, 1})
    if (failed(sc.sameDim(getTokens(), "tokens", d, "dim " + std::to_string(d),
                          getResultGrad(), "result gradient", d,
                          "dim " + std::to_string(d))))
      return failure();
  return success();
}

LogicalResult CrossEntropyBackwardOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getLogits(), "logits", 3)) ||
      failed(sc.rank(getTokens(), "tokens", 2)))
    return failure();
  for (int64_t d : {0, 1})
    if (failed(sc.sameDim(getTokens(), "tokens", d, "dim " + std::to_string(d),
                          getLogits(), "logits", d,
                          "dim " + std::to_string(d))))
      return failure();
  return sameTypeAs(*this, getLogitsGrad(), "logits_grad", getLogits(),
                    "logits");
}

LogicalResult RMSNormBackwardOp::verify() {
  ShapeChecker sc(*this);
  if (failed(sc.rank(getScale(), "scale", 1)) || failed(sc.sameElementType()) ||
      failed(sc.sameDim(getScale(), "scale", 0, "size", getInput(), "input",
                        -1, "feature size")) ||
      failed(sameTypeAs(*this, getResultGrad(), "result_grad", getInput(),
                        "input")) ||
      failed(sameTypeAs(*this, getInputGrad(), "input_grad", getInput(),
                        "input")))
    return failure();
  return sameTypeAs(*this, getScaleGrad(), "scale_grad", getScale(), "scale");
}

LogicalResult SwiGLUActOp::verify() {
  if (failed(sameTypeAs(*this, getUp(), "up", getGate(), "gate")))
    return failure();
  return sameTypeAs(*this, getResult(), "result", getGate(), "gate");
}

LogicalResult SwiGLUActBackwardOp::verify() {
  for (auto [v, name] :
       {std::pair<Value, StringRef>{getResultGrad(), "result_grad"},
        {getUp(), "up"},
        {getGateGrad(), "gate_grad"},
        {getUpGrad(), "up_grad"}})
    if (failed(sameTypeAs(*this, v, name, getGate(), "gate")))
      return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Gate and pyramid-attention gradients
//===----------------------------------------------------------------------===//

/// The gate's hidden activations a [batch, N, Dg] against b1 and w2 [Dg].
static LogicalResult checkGateHidden(ShapeChecker &sc, Value hidden, Value b1,
                                     Value w2) {
  if (failed(sc.rank(hidden, "hidden", 3)) || failed(sc.rank(b1, "b1", 1)) ||
      failed(sc.rank(w2, "w2", 1)) ||
      failed(sc.sameDim(b1, "b1", 0, "size", hidden, "hidden", 2,
                        "feature size")) ||
      failed(sc.sameDim(w2, "w2", 0, "size", hidden, "hidden", 2,
                        "feature size")))
    return failure();
  return success();
}

/// A per-token tensor [batch, N] named `name` against hidden [batch, N, Dg].
static LogicalResult checkPerToken(ShapeChecker &sc, Value v, StringRef name,
                                   Value hidden) {
  if (failed(sc.rank(v, name, 2)))
    return failure();
  for (int64_t d : {0, 1})
    if (failed(sc.sameDim(v, name, d, d ? "length" : "batch", hidden, "hidden",
                          d, d ? "length" : "batch")))
      return failure();
  return success();
}

LogicalResult GateActivationOp::verify() {
  ShapeChecker sc(*this);
  if (!(getTemperature().convertToDouble() > 0.0))
    return emitOpError() << "expects temperature > 0, got "
                         << getTemperature().convertToDouble();
  if (failed(sc.sameElementType()) ||
      failed(checkGateHidden(sc, getHidden(), getB1(), getW2())) ||
      failed(sc.rank(getB2(), "b2", 1)) ||
      failed(sc.dimIs(getB2(), "b2", 0, "size", 1, "one")))
    return failure();
  return checkPerToken(sc, getGate(), "result", getHidden());
}

LogicalResult GateBackwardOp::verify() {
  ShapeChecker sc(*this);
  if (!(getTemperature().convertToDouble() > 0.0))
    return emitOpError() << "expects temperature > 0, got "
                         << getTemperature().convertToDouble();
  if (failed(sc.sameElementType()) ||
      failed(checkGateHidden(sc, getHidden(), getB1(), getW2())) ||
      failed(checkPerToken(sc, getGateGrad(), "gate_grad", getHidden())) ||
      failed(checkPerToken(sc, getGate(), "gate", getHidden())) ||
      failed(sameTypeAs(*this, getHiddenGrad(), "hidden_grad", getHidden(),
                        "hidden")) ||
      failed(sameTypeAs(*this, getW2Grad(), "w2_grad", getW2(), "w2")) ||
      failed(sc.rank(getB2Grad(), "b2_grad", 1)) ||
      failed(sc.dimIs(getB2Grad(), "b2_grad", 0, "size", 1, "one")))
    return failure();
  return success();
}

LogicalResult PyramidAttentionBackwardOp::verify() {
  ShapeChecker sc(*this);
  PyramidConfigAttr config = getConfig();
  if (failed(sc.sameElementType()) ||
      failed(checkAttentionIO(*this, sc, getQueries(), getKeys(), getValues(),
                              getResult(), config)) ||
      failed(sameTypeAs(*this, getResultGrad(), "result_grad", getQueries(),
                        "queries")) ||
      failed(checkRawKV(sc, getKeys(), getValues(), getGate(), "gate", config)))
    return failure();
  if (failed(checkConvWeights(*this, sc, getConvKeys(), getConvValues(),
                              config)))
    return failure();
  if (getConvGrads().size() != getConvKeys().size() + getConvValues().size())
    return emitOpError() << "expects one gradient per conv weight ("
                         << getConvKeys().size() + getConvValues().size()
                         << "), got " << getConvGrads().size();
  struct Pair {
    Value grad;
    StringRef gradName;
    Value primal;
    StringRef primalName;
  };
  SmallVector<Pair> pairs = {
      {getQueriesGrad(), "queries_grad", getQueries(), "queries"},
      {getKeysGrad(), "keys_grad", getKeys(), "keys"},
      {getValuesGrad(), "values_grad", getValues(), "values"},
      {getGateGrad(), "gate_grad", getGate(), "gate"}};
  for (auto [g, w] : llvm::zip(getConvGrads(), llvm::concat<Value>(
                                                   getConvKeys(),
                                                   getConvValues())))
    pairs.push_back({g, "conv_grads", w, "its conv weight"});
  for (const Pair &p : pairs)
    if (failed(sameTypeAs(*this, p.grad, p.gradName, p.primal, p.primalName)))
      return failure();
  return success();
}
