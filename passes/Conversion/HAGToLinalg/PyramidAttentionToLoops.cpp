//===- PyramidAttentionToLoops.cpp - hag.pyramid_attention -> kernel call -===//
//
// The memory gate becomes linalg on tensors (it is a matmul, spec 2); the
// rest of the fused op becomes a call to @hag_pyramid_attention, the kernel
// on memrefs in kernels/pyramid_attention.mlir, with the configuration passed
// as constants (they fold into the kernel once it is inlined).
//
//===----------------------------------------------------------------------===//

#include "LinalgBuilders.h"
#include "hag/Analysis/PyramidWindows.h"
#include "hag/Conversion/Passes.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::hag;
using namespace mlir::hag::lowering;

namespace {

/// g = sigmoid((w2 . SiLU(a + b1) + b2) / tau) [batch, N] from the gate's
/// hidden projection a [batch, N, Dg], through @hag_gate_epilogue
/// (vectorised over the hidden features). Null when the kernel library is
/// not loaded.
Value buildGateEpilogue(OpBuilder &b, Location loc, Value hidden, Value b1,
                        Value w2, Value b2, double tau) {
  auto hType = cast<RankedTensorType>(hidden.getType());
  Type elt = hType.getElementType();
  auto module = b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
  auto kernel = module.lookupSymbol<func::FuncOp>("hag_gate_epilogue");
  if (!kernel)
    return Value(); // The kernel library is not loaded.
  SmallVector<Value> dynSizes;
  for (int64_t i = 0; i < 2; ++i)
    if (hType.isDynamicDim(i))
      dynSizes.push_back(tensor::DimOp::create(b, loc, hidden, i));
  auto gType = RankedTensorType::get(hType.getShape().drop_back(), elt);
  Value g = memref::AllocOp::create(
      b, loc, MemRefType::get(gType.getShape(), elt), dynSizes);
  Value gDyn = memref::CastOp::create(
      b, loc, MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic}, elt),
      g);
  func::CallOp::create(
      b, loc, kernel,
      ValueRange{asDynamicBuffer(b, loc, hidden), asDynamicBuffer(b, loc, b1),
                 asDynamicBuffer(b, loc, w2), asDynamicBuffer(b, loc, b2),
                 floatConst(b, loc, elt, 1.0 / tau), gDyn});
  return bufferization::ToTensorOp::create(b, loc, gType, g,
                                           b.getUnitAttr(), b.getUnitAttr());
}

/// g = sigmoid((w2 . SiLU(W1 x + b1) + b2) / tau)   [batch, N]   (spec 2):
/// the hidden projection through the matmul kernel, then the epilogue.
Value buildMemoryGate(OpBuilder &b, Location loc, Value x, Value w1, Value b1,
                      Value w2, Value b2, double tau) {
  Value hidden = contractLastDim(b, loc, x, w1); // [b, n, Dg]
  return buildGateEpilogue(b, loc, hidden, b1, w2, b2, tau);
}

struct GateActivationLowering : OpRewritePattern<GateActivationOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GateActivationOp op,
                                PatternRewriter &rewriter) const override {
    Value g = buildGateEpilogue(rewriter, op.getLoc(), op.getHidden(),
                                op.getB1(), op.getW2(), op.getB2(),
                                op.getTemperature().convertToDouble());
    if (!g)
      return rewriter.notifyMatchFailure(op, "kernel library not loaded");
    rewriter.replaceOp(op, g);
    return success();
  }
};

struct MemoryGateLowering : OpRewritePattern<MemoryGateOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MemoryGateOp op,
                                PatternRewriter &rewriter) const override {
    Value g = buildMemoryGate(rewriter, op.getLoc(), op.getInput(), op.getW1(),
                              op.getB1(), op.getW2(), op.getB2(),
                              op.getConfig().getTemperature().convertToDouble());
    if (!g)
      return rewriter.notifyMatchFailure(op, "kernel library not loaded");
    rewriter.replaceOp(op, g);
    return success();
  }
};

/// Packs the per-level conv weights [Hkv, r, d] into [L-2, Hkv, r, d]; an
/// empty [0, Hkv, r, d] tensor when the op has none.
Value packConvWeights(OpBuilder &b, Location loc, ValueRange weights,
                      PyramidConfigAttr config, Type elt) {
  int64_t hkv = config.getKvHeads(), r = config.getRatio(),
          d = config.getHeadDim();
  auto packed = RankedTensorType::get(
      {static_cast<int64_t>(weights.size()), hkv, r, d}, elt);
  Value acc = tensor::EmptyOp::create(b, loc, packed.getShape(), elt);
  for (auto [i, w] : llvm::enumerate(weights)) {
    SmallVector<OpFoldResult> offsets = {b.getIndexAttr(i), b.getIndexAttr(0),
                                         b.getIndexAttr(0), b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), b.getIndexAttr(hkv),
                                       b.getIndexAttr(r), b.getIndexAttr(d)};
    SmallVector<OpFoldResult> strides(4, b.getIndexAttr(1));
    acc =
        tensor::InsertSliceOp::create(b, loc, w, acc, offsets, sizes, strides);
  }
  return acc;
}

/// The configuration as the kernels' trailing arguments: H, Hkv, d, B, r,
/// L, W, T (index), causal (i1), select_k, compress (index), beta, eps (f32).
/// L, T and select_k are what the attention walks: 2, 0 and 0 for the
/// local_only ablation (level 1 alone).
void appendConfigArgs(OpBuilder &b, Location loc, PyramidConfigAttr config,
                      SmallVectorImpl<Value> &args) {
  auto index = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  ::hag::PyramidParams p = config.toParams();
  args.append({index(config.getHeads()), index(config.getKvHeads()),
               index(config.getHeadDim()), index(config.getBlock()),
               index(config.getRatio()),
               index(p.attendedLevels(config.getStaticLevels())),
               index(config.getWindow()), index(p.attendedSummary())});
  args.push_back(
      arith::ConstantOp::create(b, loc, b.getBoolAttr(config.getCausal())));
  args.push_back(index(p.attendedSelectK()));
  args.push_back(index(static_cast<int64_t>(config.getCompress())));
  args.push_back(floatConst(b, loc, b.getF32Type(),
                            config.getMassBias().convertToDouble()));
  args.push_back(
      floatConst(b, loc, b.getF32Type(), config.getEps().convertToDouble()));
}

/// A buffer of `like`'s tensor type (its dynamic sizes read from `like`).
Value allocLike(OpBuilder &b, Location loc, Value like) {
  auto type = cast<RankedTensorType>(like.getType());
  SmallVector<Value> dynSizes;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      dynSizes.push_back(tensor::DimOp::create(b, loc, like, i));
  return memref::AllocOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType()),
      dynSizes);
}

/// `buffer` with every dimension dynamic (the kernels' signatures).
Value dynamicOf(OpBuilder &b, Location loc, Value buffer) {
  auto type = cast<MemRefType>(buffer.getType());
  return memref::CastOp::create(
      b, loc,
      MemRefType::get(SmallVector<int64_t>(type.getRank(), ShapedType::kDynamic),
                      type.getElementType()),
      buffer);
}

/// Lowers the fused forms (pyramid_attention, pyramid_decode) to a call of
/// their kernel: the gate in linalg, the tensors and the output as dynamic
/// buffers, then `extraBuffers` (the decoding cache, also cast to dynamic
/// shapes), `extraIndices`, and the configuration as constants.
template <typename FusedOp>
LogicalResult lowerToKernelCall(FusedOp op, PatternRewriter &rewriter,
                                StringRef kernelName, ValueRange extraBuffers,
                                ValueRange extraIndices) {
  Location loc = op.getLoc();
  PyramidConfigAttr config = op.getConfig();
  auto qType = cast<RankedTensorType>(op.getQueries().getType());
  Type elt = qType.getElementType();
  if (!elt.isF32())
    return rewriter.notifyMatchFailure(op, "the CPU kernel is f32 only");
  auto module = op->template getParentOfType<ModuleOp>();
  auto kernel = module.template lookupSymbol<func::FuncOp>(kernelName);
  if (!kernel)
    return rewriter.notifyMatchFailure(op, "kernel library not loaded");

  Value g = buildMemoryGate(rewriter, loc, op.getGateInput(), op.getGateW1(),
                            op.getGateB1(), op.getGateW2(), op.getGateB2(),
                            config.getTemperature().convertToDouble());
  if (!g)
    return rewriter.notifyMatchFailure(op, "kernel library not loaded");
  Value convK = packConvWeights(rewriter, loc, op.getConvKeys(), config, elt);
  Value convV = packConvWeights(rewriter, loc, op.getConvValues(), config, elt);

  SmallVector<Value> args;
  for (Value t : {Value(op.getQueries()), Value(op.getKeys()),
                  Value(op.getValues()), g, convK, convV})
    args.push_back(asDynamicBuffer(rewriter, loc, t));
  // The output buffer: [batch, N, H*d].
  Value out = allocLike(rewriter, loc, op.getQueries());
  args.push_back(dynamicOf(rewriter, loc, out));
  for (Value buffer : extraBuffers)
    args.push_back(dynamicOf(rewriter, loc, buffer));
  llvm::append_range(args, extraIndices);

  appendConfigArgs(rewriter, loc, config, args);
  func::CallOp::create(rewriter, loc, kernel, args);
  Value result = bufferization::ToTensorOp::create(rewriter, loc, qType, out,
                                                   rewriter.getUnitAttr(),
                                                   rewriter.getUnitAttr());
  rewriter.replaceOp(op, result);
  return success();
}

struct PyramidAttentionLowering : OpRewritePattern<PyramidAttentionOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PyramidAttentionOp op,
                                PatternRewriter &rewriter) const override {
    return lowerToKernelCall(op, rewriter, "hag_pyramid_attention", {}, {});
  }
};

/// hag.pyramid_decode -> @hag_pyramid_decode: the cache buffers are updated
/// in place by the kernel (they are function arguments, never copied).
struct PyramidDecodeLowering : OpRewritePattern<PyramidDecodeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PyramidDecodeOp op,
                                PatternRewriter &rewriter) const override {
    Value maxSeq = arith::ConstantIndexOp::create(rewriter, op.getLoc(),
                                                  op.getConfig().getMaxSeq());
    return lowerToKernelCall(
        op, rewriter, "hag_pyramid_decode",
        ValueRange{op.getCacheKeys(), op.getCacheValues(), op.getCacheAux(),
                   op.getPrefixKeys(), op.getPrefixValues(),
                   op.getPrefixGate()},
        ValueRange{op.getPosition(), maxSeq});
  }
};

/// hag.pyramid_attention_backward -> @hag_pyramid_attention_backward
/// (kernels/pyramid_attention_backward.mlir): the gradients are allocated
/// here and filled by the kernel; the conv weights' gradients come back
/// packed [L-2, Hkv, r, d] and are sliced per level.
struct PyramidAttentionBackwardLowering
    : OpRewritePattern<PyramidAttentionBackwardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(PyramidAttentionBackwardOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    PyramidConfigAttr config = op.getConfig();
    auto qType = cast<RankedTensorType>(op.getQueries().getType());
    Type elt = qType.getElementType();
    if (!elt.isF32())
      return rewriter.notifyMatchFailure(op, "the CPU kernel is f32 only");
    auto module = op->getParentOfType<ModuleOp>();
    auto kernel =
        module.lookupSymbol<func::FuncOp>("hag_pyramid_attention_backward");
    if (!kernel)
      return rewriter.notifyMatchFailure(op, "kernel library not loaded");
    Value convK = packConvWeights(rewriter, loc, op.getConvKeys(), config, elt);
    Value convV =
        packConvWeights(rewriter, loc, op.getConvValues(), config, elt);
    SmallVector<Value> args;
    for (Value t : {Value(op.getQueries()), Value(op.getKeys()),
                    Value(op.getValues()), Value(op.getGate()), convK, convV,
                    Value(op.getResult()), Value(op.getResultGrad())})
      args.push_back(asDynamicBuffer(rewriter, loc, t));
    SmallVector<Value> grads = {
        allocLike(rewriter, loc, op.getQueries()),
        allocLike(rewriter, loc, op.getKeys()),
        allocLike(rewriter, loc, op.getValues()),
        allocLike(rewriter, loc, op.getGate())};
    auto packedType = cast<RankedTensorType>(convK.getType());
    Value dConvK = memref::AllocOp::create(
        rewriter, loc, MemRefType::get(packedType.getShape(), elt));
    Value dConvV = memref::AllocOp::create(
        rewriter, loc, MemRefType::get(packedType.getShape(), elt));
    for (Value buffer : grads)
      args.push_back(dynamicOf(rewriter, loc, buffer));
    args.push_back(dynamicOf(rewriter, loc, dConvK));
    args.push_back(dynamicOf(rewriter, loc, dConvV));
    appendConfigArgs(rewriter, loc, config, args);
    func::CallOp::create(rewriter, loc, kernel, args);

    auto asTensor = [&](Value buffer, Type type) -> Value {
      return bufferization::ToTensorOp::create(rewriter, loc, type, buffer,
                                               rewriter.getUnitAttr(),
                                               rewriter.getUnitAttr());
    };
    SmallVector<Value> results = {
        asTensor(grads[0], op.getQueriesGrad().getType()),
        asTensor(grads[1], op.getKeysGrad().getType()),
        asTensor(grads[2], op.getValuesGrad().getType()),
        asTensor(grads[3], op.getGateGrad().getType())};
    size_t levels = op.getConvKeys().size();
    ValueRange convGrads = op.getConvGrads();
    for (auto [packed, perLevel] :
         {std::pair<Value, ValueRange>{dConvK, convGrads.take_front(levels)},
          {dConvV, convGrads.drop_front(levels)}}) {
      Value all = asTensor(packed, packedType);
      for (auto [i, g] : llvm::enumerate(perLevel)) {
        auto type = cast<RankedTensorType>(g.getType());
        SmallVector<OpFoldResult> offsets = {
            rewriter.getIndexAttr(i), rewriter.getIndexAttr(0),
            rewriter.getIndexAttr(0), rewriter.getIndexAttr(0)};
        SmallVector<OpFoldResult> sizes = {rewriter.getIndexAttr(1)};
        for (int64_t d : type.getShape())
          sizes.push_back(rewriter.getIndexAttr(d));
        SmallVector<OpFoldResult> strides(4, rewriter.getIndexAttr(1));
        results.push_back(tensor::ExtractSliceOp::create(
            rewriter, loc, type, all, offsets, sizes, strides));
      }
    }
    rewriter.replaceOp(op, results);
    return success();
  }
};

} // namespace

void mlir::hag::populatePyramidAttentionToLoopsPatterns(
    RewritePatternSet &patterns) {
  patterns.add<MemoryGateLowering, GateActivationLowering,
               PyramidAttentionLowering, PyramidDecodeLowering,
               PyramidAttentionBackwardLowering>(
      patterns.getContext());
}
