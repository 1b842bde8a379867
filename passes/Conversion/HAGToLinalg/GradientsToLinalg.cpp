//===- GradientsToLinalg.cpp - hag gradient ops -> linalg and kernels ----===//
//
// The ops hag-autodiff makes: projection gradients through the matmul kernel
// library (dx = dy W with @hag_matmul_nn, dW = dy^T x with @hag_matmul_tn),
// row sums and the cross-entropy gradient in linalg, and the embedding
// gradient through @hag_embedding_backward (a scatter-add, sequential in the
// tokens and parallel over the features, so no two threads add to one row
// element).
//
//===----------------------------------------------------------------------===//

#include "LinalgBuilders.h"
#include "hag/Conversion/Passes.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>

using namespace mlir;
using namespace mlir::hag;
using namespace mlir::hag::lowering;

namespace {

func::FuncOp kernel(Operation *op, StringRef name) {
  return op->getParentOfType<ModuleOp>().lookupSymbol<func::FuncOp>(name);
}

/// The sizes of `type`'s dynamic dimensions, read from `like`.
SmallVector<Value> dynamicSizesOf(OpBuilder &b, Location loc,
                                  RankedTensorType type, Value like) {
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      sizes.push_back(tensor::DimOp::create(b, loc, like, d));
  return sizes;
}

struct LinearBackwardLowering : OpRewritePattern<LinearBackwardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearBackwardOp op,
                                PatternRewriter &rewriter) const override {
    auto nn = kernel(op, "hag_matmul_nn"), tn = kernel(op, "hag_matmul_tn");
    auto xType = cast<RankedTensorType>(op.getInput().getType());
    if (!nn || !tn || !xType.getElementType().isF32())
      return rewriter.notifyMatchFailure(op, "needs the f32 matmul kernels");
    Location loc = op.getLoc();
    Value dy = collapseToRows(rewriter, loc, op.getResultGrad());
    Value x = collapseToRows(rewriter, loc, op.getInput());
    // dx [rows, in] = dy [rows, out] W [out, in].
    Value dx = callMatmulKernel(
        rewriter, loc, nn, dy, op.getWeight(), xType,
        dynamicSizesOf(rewriter, loc, xType, op.getInput()));
    // dW [out, in] = dy^T [out, rows] x [rows, in].
    auto wType = cast<RankedTensorType>(op.getWeight().getType());
    Value dw = callMatmulKernel(
        rewriter, loc, tn, dy, x, wType,
        dynamicSizesOf(rewriter, loc, wType, op.getWeight()));
    rewriter.replaceOp(op, ValueRange{dx, dw});
    return success();
  }
};

/// hag.inner_product: one linalg.generic reducing every dimension.
struct InnerProductLowering : OpRewritePattern<InnerProductOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(InnerProductOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(op.getLhs().getType());
    if (!type.getElementType().isF32())
      return op->emitError() << "hag.inner_product lowers for f32 only";
    unsigned rank = type.getRank();
    Value init = filledTensor(rewriter, loc, {}, rewriter.getF32Type(), 0.0);
    SmallVector<utils::IteratorType> iters(rank,
                                           utils::IteratorType::reduction);
    AffineMap scalar = AffineMap::get(rank, 0, {}, getContext());
    Value sum =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()},
            ValueRange{op.getLhs(), op.getRhs()}, ValueRange{init},
            ArrayRef<AffineMap>{rewriter.getMultiDimIdentityMap(rank),
                                rewriter.getMultiDimIdentityMap(rank), scalar},
            iters,
            [](OpBuilder &nb, Location l, ValueRange a) {
              Value p = arith::MulFOp::create(nb, l, a[0], a[1]);
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[2], p).getResult());
            })
            .getResult(0);
    rewriter.replaceOp(op, sum);
    return success();
  }
};

/// hag.scale_by: x * s with the 0-d s broadcast.
struct ScaleByLowering : OpRewritePattern<ScaleByOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ScaleByOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(op.getType());
    unsigned rank = type.getRank();
    Value init = filledTensor(rewriter, loc,
                              tensorSizes(rewriter, loc, op.getInput()),
                              type.getElementType(), std::nullopt);
    AffineMap scalar = AffineMap::get(rank, 0, {}, getContext());
    rewriter.replaceOp(
        op, elementwise(
                rewriter, loc, init, ValueRange{op.getInput(), op.getScale()},
                [](OpBuilder &nb, Location l, ValueRange a) {
                  linalg::YieldOp::create(
                      nb, l, arith::MulFOp::create(nb, l, a[0], a[1]).getResult());
                },
                {rewriter.getMultiDimIdentityMap(rank), scalar}));
    return success();
  }
};

struct SumRowsLowering : OpRewritePattern<SumRowsOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SumRowsOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(op.getInput().getType());
    unsigned rank = type.getRank();
    Value init = filledTensor(
        rewriter, loc, {tensor::getMixedSize(rewriter, loc, op.getInput(),
                                             rank - 1)},
        type.getElementType(), 0.0);
    SmallVector<utils::IteratorType> iters(rank,
                                           utils::IteratorType::reduction);
    iters.back() = utils::IteratorType::parallel;
    AffineMap last =
        AffineMap::get(rank, 0, rewriter.getAffineDimExpr(rank - 1),
                       getContext());
    Value sum =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{init.getType()},
            ValueRange{op.getInput()}, ValueRange{init},
            ArrayRef<AffineMap>{rewriter.getMultiDimIdentityMap(rank), last},
            iters,
            [](OpBuilder &nb, Location l, ValueRange a) {
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
            })
            .getResult(0);
    rewriter.replaceOp(op, tensor::CastOp::create(rewriter, loc,
                                                  op.getType(), sum));
    return success();
  }
};

struct EmbeddingBackwardLowering : OpRewritePattern<EmbeddingBackwardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(EmbeddingBackwardOp op,
                                PatternRewriter &rewriter) const override {
    auto fn = kernel(op, "hag_embedding_backward");
    auto tType = cast<RankedTensorType>(op.getType());
    if (!fn || !tType.getElementType().isF32())
      return rewriter.notifyMatchFailure(op, "needs the f32 kernel");
    Location loc = op.getLoc();
    Value tokens = op.getTokens();
    auto tokType = cast<RankedTensorType>(tokens.getType());
    if (!tokType.getElementType().isInteger(32)) {
      // i64 ids as i32 (ids are < vocab).
      Value init = filledTensor(rewriter, loc, tensorSizes(rewriter, loc, tokens),
                                rewriter.getI32Type(), std::nullopt);
      tokens = elementwise(rewriter, loc, init, ValueRange{tokens},
                           [](OpBuilder &nb, Location l, ValueRange a) {
                             linalg::YieldOp::create(
                                 nb, l,
                                 arith::TruncIOp::create(
                                     nb, l, nb.getI32Type(), a[0])
                                     .getResult());
                           });
    }
    SmallVector<Value> dynSizes;
    for (int64_t d = 0; d < 2; ++d)
      if (tType.isDynamicDim(d))
        return rewriter.notifyMatchFailure(op, "the table has a static shape");
    Value dt = memref::AllocOp::create(
        rewriter, loc,
        MemRefType::get(tType.getShape(), tType.getElementType()), dynSizes);
    Value dtDyn = memref::CastOp::create(
        rewriter, loc,
        MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                        tType.getElementType()),
        dt);
    func::CallOp::create(
        rewriter, loc, fn,
        ValueRange{asDynamicBuffer(rewriter, loc, op.getResultGrad()),
                   asDynamicBuffer(rewriter, loc, tokens), dtDyn});
    rewriter.replaceOp(op, bufferization::ToTensorOp::create(
                               rewriter, loc, tType, dt, rewriter.getUnitAttr(),
                               rewriter.getUnitAttr()));
    return success();
  }
};

struct CrossEntropyBackwardLowering
    : OpRewritePattern<CrossEntropyBackwardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CrossEntropyBackwardOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value logits = op.getLogits(), tokens = op.getTokens();
    Type elt = cast<RankedTensorType>(logits.getType()).getElementType();
    auto [rowMax, sumExp] = softmaxStats(rewriter, loc, logits);
    AffineMap id3 = rewriter.getMultiDimIdentityMap(3);
    AffineMap row3 = AffineMap::get(
        3, 0, {rewriter.getAffineDimExpr(0), rewriter.getAffineDimExpr(1)},
        getContext());
    Value seq = getValueOrCreateConstantIndexOp(
        rewriter, loc, tensor::getMixedSize(rewriter, loc, tokens, 1));
    // scale = dloss / count, as the forward's mean.
    Value count = nextTokenCount(rewriter, loc, tokens, elt);
    Value dloss = tensor::ExtractOp::create(rewriter, loc, op.getLossGrad(),
                                            ValueRange{});
    Value scale = arith::DivFOp::create(rewriter, loc, dloss, count);
    Value init = filledTensor(rewriter, loc, tensorSizes(rewriter, loc, logits),
                              elt, std::nullopt);
    Value grad = elementwise(
        rewriter, loc, init, ValueRange{logits, rowMax, sumExp},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value v = linalg::IndexOp::create(nb, l, 2);
          auto [hasNext, id] = nextTokenId(nb, l, tokens, seq);
          Value isTarget =
              arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, id, v);
          Value p = arith::DivFOp::create(
              nb, l,
              math::ExpOp::create(nb, l,
                                  arith::SubFOp::create(nb, l, a[0], a[1])),
              a[2]);
          Value oneF = floatConst(nb, l, elt, 1.0);
          Value zeroF = floatConst(nb, l, elt, 0.0);
          Value d = arith::SubFOp::create(
              nb, l, p, arith::SelectOp::create(nb, l, isTarget, oneF, zeroF));
          Value g = arith::MulFOp::create(nb, l, d, scale);
          linalg::YieldOp::create(
              nb, l,
              arith::SelectOp::create(nb, l, hasNext, g, zeroF).getResult());
        },
        {id3, row3, row3});
    rewriter.replaceOp(op, grad);
    return success();
  }
};

/// Per row r = 1 / sqrt(sum(x^2) / D + eps) (as the forward computes it);
/// t = sum(dy s x); dx = r dy s - x r^3 t / D; dscale = sum over rows of
/// dy x r.
struct RMSNormBackwardLowering : OpRewritePattern<RMSNormBackwardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RMSNormBackwardOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput(), dy = op.getResultGrad(), scale = op.getScale();
    auto type = cast<RankedTensorType>(x.getType());
    unsigned rank = type.getRank();
    Type elt = type.getElementType();
    Value r = rmsInverse(rewriter, loc, x, op.getEps().convertToDouble());
    Value widthF = arith::SIToFPOp::create(
        rewriter, loc, elt,
        arith::IndexCastOp::create(
            rewriter, loc, rewriter.getI64Type(),
            getValueOrCreateConstantIndexOp(
                rewriter, loc,
                tensor::getMixedSize(rewriter, loc, x, rank - 1))));
    AffineMap id = rewriter.getMultiDimIdentityMap(rank);
    AffineMap rowMap = leadingDimsMap(rewriter, rank);
    AffineMap lastMap = lastDimMap(rewriter, rank);
    SmallVector<OpFoldResult> rowSizes = tensorSizes(rewriter, loc, x);
    rowSizes.pop_back();
    // t = sum over the row of dy s x.
    Value tInit = filledTensor(rewriter, loc, rowSizes, elt, 0.0);
    SmallVector<utils::IteratorType> rowIters(rank,
                                              utils::IteratorType::parallel);
    rowIters.back() = utils::IteratorType::reduction;
    Value t = linalg::GenericOp::create(
                  rewriter, loc, TypeRange{tInit.getType()},
                  ValueRange{dy, scale, x}, ValueRange{tInit},
                  ArrayRef<AffineMap>{id, lastMap, id, rowMap}, rowIters,
                  [](OpBuilder &nb, Location l, ValueRange a) {
                    Value v = arith::MulFOp::create(
                        nb, l, arith::MulFOp::create(nb, l, a[0], a[1]), a[2]);
                    linalg::YieldOp::create(
                        nb, l, arith::AddFOp::create(nb, l, a[3], v).getResult());
                  })
                  .getResult(0);
    Value dxInit = filledTensor(rewriter, loc, tensorSizes(rewriter, loc, x),
                                elt, std::nullopt);
    Value dx = elementwise(
        rewriter, loc, dxInit, ValueRange{dy, scale, x, r, t},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value rr = a[3];
          Value r3 = arith::MulFOp::create(
              nb, l, arith::MulFOp::create(nb, l, rr, rr), rr);
          Value first = arith::MulFOp::create(
              nb, l, rr, arith::MulFOp::create(nb, l, a[0], a[1]));
          Value second = arith::DivFOp::create(
              nb, l,
              arith::MulFOp::create(nb, l,
                                    arith::MulFOp::create(nb, l, a[2], r3),
                                    a[4]),
              widthF);
          linalg::YieldOp::create(
              nb, l, arith::SubFOp::create(nb, l, first, second).getResult());
        },
        {id, lastMap, id, rowMap, rowMap});
    // dscale[j] = sum over rows of dy x r.
    Value dsInit = filledTensor(
        rewriter, loc, {tensor::getMixedSize(rewriter, loc, x, rank - 1)}, elt,
        0.0);
    SmallVector<utils::IteratorType> colIters(rank,
                                              utils::IteratorType::reduction);
    colIters.back() = utils::IteratorType::parallel;
    Value ds = linalg::GenericOp::create(
                   rewriter, loc, TypeRange{dsInit.getType()},
                   ValueRange{dy, x, r}, ValueRange{dsInit},
                   ArrayRef<AffineMap>{id, id, rowMap, lastMap}, colIters,
                   [](OpBuilder &nb, Location l, ValueRange a) {
                     Value v = arith::MulFOp::create(
                         nb, l, arith::MulFOp::create(nb, l, a[0], a[1]), a[2]);
                     linalg::YieldOp::create(
                         nb, l,
                         arith::AddFOp::create(nb, l, a[3], v).getResult());
                   })
                   .getResult(0);
    rewriter.replaceOp(
        op, ValueRange{dx, tensor::CastOp::create(rewriter, loc,
                                                  op.getScaleGrad().getType(),
                                                  ds)
                               .getResult()});
    return success();
  }
};

struct SwiGLUActLowering : OpRewritePattern<SwiGLUActOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SwiGLUActOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(op.getType());
    Value init = filledTensor(rewriter, loc,
                              tensorSizes(rewriter, loc, op.getGate()),
                              type.getElementType(), std::nullopt);
    rewriter.replaceOp(
        op, elementwise(rewriter, loc, init,
                        ValueRange{op.getGate(), op.getUp()},
                        [](OpBuilder &nb, Location l, ValueRange a) {
                          linalg::YieldOp::create(
                              nb, l,
                              arith::MulFOp::create(nb, l, silu(nb, l, a[0]),
                                                    a[1])
                                  .getResult());
                        }));
    return success();
  }
};

struct SwiGLUActBackwardLowering : OpRewritePattern<SwiGLUActBackwardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SwiGLUActBackwardOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(op.getGate().getType());
    unsigned rank = type.getRank();
    SmallVector<OpFoldResult> sizes = tensorSizes(rewriter, loc, op.getGate());
    Value init1 =
        filledTensor(rewriter, loc, sizes, type.getElementType(), std::nullopt);
    Value init2 =
        filledTensor(rewriter, loc, sizes, type.getElementType(), std::nullopt);
    AffineMap id = rewriter.getMultiDimIdentityMap(rank);
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{type, type},
        ValueRange{op.getResultGrad(), op.getGate(), op.getUp()},
        ValueRange{init1, init2}, SmallVector<AffineMap>(5, id), iters,
        [](OpBuilder &nb, Location l, ValueRange a) {
          Value dh = a[0], g = a[1], u = a[2];
          Value sig = sigmoid(nb, l, g);
          Value one = floatConst(nb, l, g.getType(), 1.0);
          // SiLU'(g) = sig (1 + g (1 - sig)).
          Value dsilu = arith::MulFOp::create(
              nb, l, sig,
              arith::AddFOp::create(
                  nb, l, one,
                  arith::MulFOp::create(
                      nb, l, g, arith::SubFOp::create(nb, l, one, sig))));
          Value da = arith::MulFOp::create(
              nb, l, arith::MulFOp::create(nb, l, dh, u), dsilu);
          Value du = arith::MulFOp::create(
              nb, l, dh, arith::MulFOp::create(nb, l, g, sig));
          linalg::YieldOp::create(nb, l, ValueRange{da, du});
        });
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

/// ds = dg g (1 - g) / tau per token; da = ds w2 SiLU'(a + b1);
/// dw2 = sum over tokens of ds SiLU(a + b1); db2 = sum of ds.
struct GateBackwardLowering : OpRewritePattern<GateBackwardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GateBackwardOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    auto hType = cast<RankedTensorType>(op.getHidden().getType());
    Type elt = hType.getElementType();
    double invTau = 1.0 / op.getTemperature().convertToDouble();
    // ds [batch, N].
    Value dsInit = filledTensor(rewriter, loc,
                                tensorSizes(rewriter, loc, op.getGate()), elt,
                                std::nullopt);
    Value ds = elementwise(
        rewriter, loc, dsInit, ValueRange{op.getGateGrad(), op.getGate()},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value one = floatConst(nb, l, elt, 1.0);
          Value gg = arith::MulFOp::create(
              nb, l, a[1], arith::SubFOp::create(nb, l, one, a[1]));
          Value y = arith::MulFOp::create(
              nb, l, arith::MulFOp::create(nb, l, a[0], gg),
              floatConst(nb, l, elt, invTau));
          linalg::YieldOp::create(nb, l, y);
        });
    // Maps of the [batch, N, Dg] loops to the token and to the feature.
    AffineExpr d0, d1, d2;
    bindDims(ctx, d0, d1, d2);
    AffineMap id = AffineMap::getMultiDimIdentityMap(3, ctx);
    AffineMap token = AffineMap::get(3, 0, {d0, d1}, ctx);
    AffineMap feature = AffineMap::get(3, 0, {d2}, ctx);
    auto z = [&](OpBuilder &nb, Location l, Value a, Value b1) {
      return arith::AddFOp::create(nb, l, a, b1).getResult();
    };
    Value daInit = filledTensor(rewriter, loc,
                                tensorSizes(rewriter, loc, op.getHidden()), elt,
                                std::nullopt);
    Value da = elementwise(
        rewriter, loc, daInit,
        ValueRange{ds, op.getHidden(), op.getB1(), op.getW2()},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value x = z(nb, l, a[1], a[2]);
          Value sig = sigmoid(nb, l, x);
          Value one = floatConst(nb, l, elt, 1.0);
          // SiLU'(x) = sig (1 + x (1 - sig)).
          Value dsilu = arith::MulFOp::create(
              nb, l, sig,
              arith::AddFOp::create(
                  nb, l, one,
                  arith::MulFOp::create(
                      nb, l, x, arith::SubFOp::create(nb, l, one, sig))));
          Value y = arith::MulFOp::create(
              nb, l, arith::MulFOp::create(nb, l, a[0], a[3]), dsilu);
          linalg::YieldOp::create(nb, l, y);
        },
        {token, id, feature, feature});
    // dw2 [Dg]: a reduction over the tokens.
    Value dw2Init = filledTensor(
        rewriter, loc, {tensor::getMixedSize(rewriter, loc, op.getHidden(), 2)},
        elt, 0.0);
    Value dw2 =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{dw2Init.getType()},
            ValueRange{ds, op.getHidden(), op.getB1()}, ValueRange{dw2Init},
            ArrayRef<AffineMap>{token, id, feature, feature},
            {utils::IteratorType::reduction, utils::IteratorType::reduction,
             utils::IteratorType::parallel},
            [&](OpBuilder &nb, Location l, ValueRange a) {
              Value y = arith::MulFOp::create(
                  nb, l, a[0], silu(nb, l, z(nb, l, a[1], a[2])));
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[3], y).getResult());
            })
            .getResult(0);
    // db2 [1] = sum of ds.
    Value sum = reduceAll(rewriter, loc, ds, rewriter.getFloatAttr(elt, 0.0),
                          [](OpBuilder &nb, Location l, Value x, Value acc) {
                            return arith::AddFOp::create(nb, l, acc, x)
                                .getResult();
                          });
    Value db2 = tensor::ExpandShapeOp::create(
        rewriter, loc, RankedTensorType::get({1}, elt), sum,
        ArrayRef<ReassociationIndices>{});
    rewriter.replaceOp(
        op, ValueRange{da,
                       tensor::CastOp::create(rewriter, loc,
                                              op.getW2Grad().getType(), dw2)
                           .getResult(),
                       tensor::CastOp::create(rewriter, loc,
                                              op.getB2Grad().getType(), db2)
                           .getResult()});
    return success();
  }
};

} // namespace

void mlir::hag::populateGradientsToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<LinearBackwardLowering, SumRowsLowering, InnerProductLowering,
               ScaleByLowering,
               EmbeddingBackwardLowering, CrossEntropyBackwardLowering,
               RMSNormBackwardLowering, SwiGLUActLowering,
               SwiGLUActBackwardLowering, GateBackwardLowering>(
      patterns.getContext());
}
