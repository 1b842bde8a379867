//===- OptimizerToLinalg.cpp - hag optimizer ops -> linalg/tensor/arith ---===//
//
// The update rules of a training step (spec section 8): AdamW, global-norm
// clipping, the learning-rate schedule and dynamic loss scaling. Scalars
// (step, lr, bias corrections, the norm) are computed in f64 and rounded to
// the element type once, as PyTorch passes its double scalars to f32
// kernels; the elementwise work is one linalg.generic per tensor.
//
//===----------------------------------------------------------------------===//

#include "LinalgBuilders.h"
#include "hag/Conversion/Passes.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

#include <limits>
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::hag;
using namespace mlir::hag::lowering;

namespace {

/// The element of a 0-d tensor.
Value scalarOf(OpBuilder &b, Location loc, Value tensor0d) {
  return tensor::ExtractOp::create(b, loc, tensor0d, ValueRange{});
}

/// A 0-d tensor holding `v`.
Value tensorOf(OpBuilder &b, Location loc, Value v) {
  return tensor::FromElementsOp::create(
      b, loc, RankedTensorType::get({}, v.getType()), ValueRange{v});
}

Value f64Const(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v));
}

/// An i64 scalar as f64.
Value toF64(OpBuilder &b, Location loc, Value i) {
  return arith::SIToFPOp::create(b, loc, b.getF64Type(), i);
}

/// An f64 scalar rounded to `elt` (or extended when `elt` is wider).
Value toElement(OpBuilder &b, Location loc, Value x, Type elt) {
  if (elt.isF64())
    return x;
  return arith::TruncFOp::create(b, loc, elt, x);
}

struct AdamWLowering : OpRewritePattern<AdamWOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AdamWOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(op.getParam().getType());
    Type elt = type.getElementType();
    double beta1 = op.getBeta1().convertToDouble();
    double beta2 = op.getBeta2().convertToDouble();
    OpBuilder &b = rewriter;

    // Scalars, in f64 as torch::optim::AdamW computes them.
    Value t = toF64(b, loc, scalarOf(b, loc, op.getStep()));
    Value lr = arith::ExtFOp::create(b, loc, b.getF64Type(),
                                     scalarOf(b, loc, op.getLr()));
    Value one = f64Const(b, loc, 1.0);
    auto bias = [&](double beta) {
      Value pw = math::PowFOp::create(b, loc, f64Const(b, loc, beta), t);
      return arith::SubFOp::create(b, loc, one, pw).getResult();
    };
    Value bc1 = bias(beta1), bc2 = bias(beta2);
    Value decay = arith::SubFOp::create(
        b, loc, one,
        arith::MulFOp::create(
            b, loc, lr,
            f64Const(b, loc, op.getWeightDecay().convertToDouble())));
    Value stepSize = arith::DivFOp::create(b, loc, lr, bc1);
    Value sqrtBc2 = math::SqrtOp::create(b, loc, bc2);
    Value decayE = toElement(b, loc, decay, elt);
    Value stepE = toElement(b, loc, stepSize, elt);
    Value sqrtBc2E = toElement(b, loc, sqrtBc2, elt);
    Value b1 = floatConst(b, loc, elt, beta1);
    Value omb1 = floatConst(b, loc, elt, 1.0 - beta1);
    Value b2 = floatConst(b, loc, elt, beta2);
    Value omb2 = floatConst(b, loc, elt, 1.0 - beta2);
    Value eps = floatConst(b, loc, elt, op.getEps().convertToDouble());
    Value apply = op.getApply() ? scalarOf(b, loc, op.getApply()) : Value();

    SmallVector<OpFoldResult> sizes = tensorSizes(b, loc, op.getParam());
    SmallVector<Value> inits;
    for (int i = 0; i < 3; ++i)
      inits.push_back(filledTensor(b, loc, sizes, elt, std::nullopt));
    unsigned rank = type.getRank();
    AffineMap id = b.getMultiDimIdentityMap(rank);
    SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{type, type, type},
        ValueRange{op.getParam(), op.getGrad(), op.getExpAvg(),
                   op.getExpAvgSq()},
        inits, SmallVector<AffineMap>(7, id), iters,
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value p = a[0], g = a[1], m = a[2], v = a[3];
          // p.mul_(1 - lr * wd)
          Value p1 = arith::MulFOp::create(nb, l, p, decayE);
          // exp_avg.mul_(beta1).add_(grad, 1 - beta1)
          Value m2 = arith::AddFOp::create(
              nb, l, arith::MulFOp::create(nb, l, m, b1),
              arith::MulFOp::create(nb, l, g, omb1));
          // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
          Value v2 = arith::AddFOp::create(
              nb, l, arith::MulFOp::create(nb, l, v, b2),
              arith::MulFOp::create(nb, l, arith::MulFOp::create(nb, l, g, g),
                                    omb2));
          // denom = sqrt(v) / sqrt(bc2) + eps; p.addcdiv_(m, denom, -step)
          Value denom = arith::AddFOp::create(
              nb, l,
              arith::DivFOp::create(nb, l, math::SqrtOp::create(nb, l, v2),
                                    sqrtBc2E),
              eps);
          Value p2 = arith::SubFOp::create(
              nb, l, p1,
              arith::MulFOp::create(nb, l, stepE,
                                    arith::DivFOp::create(nb, l, m2, denom)));
          if (apply) {
            p2 = arith::SelectOp::create(nb, l, apply, p2, p);
            m2 = arith::SelectOp::create(nb, l, apply, m2, m);
            v2 = arith::SelectOp::create(nb, l, apply, v2, v);
          }
          linalg::YieldOp::create(nb, l, ValueRange{p2, m2, v2});
        });
    rewriter.replaceOp(op, generic.getResults());
    return success();
  }
};

struct ClipGradNormLowering : OpRewritePattern<ClipGradNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(ClipGradNormOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    // sum of squares over every gradient, in f64.
    Value total = f64Const(b, loc, 0.0);
    for (Value g : op.getGrads()) {
      Value sq = reduceAll(
          b, loc, g, b.getF64FloatAttr(0.0),
          [](OpBuilder &nb, Location l, Value x, Value acc) -> Value {
            Value xd = x;
            if (!x.getType().isF64())
              xd = arith::ExtFOp::create(nb, l, nb.getF64Type(), x);
            return math::FmaOp::create(nb, l, xd, xd, acc);
          });
      total = arith::AddFOp::create(b, loc, total, scalarOf(b, loc, sq));
    }
    Value norm = math::SqrtOp::create(b, loc, total);
    // clip_coef = max_norm / (norm + 1e-6), applied when below 1.
    Value coef = arith::DivFOp::create(
        b, loc, f64Const(b, loc, op.getMaxNorm().convertToDouble()),
        arith::AddFOp::create(b, loc, norm, f64Const(b, loc, 1e-6)));
    Value below = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT,
                                        coef, f64Const(b, loc, 1.0));
    SmallVector<Value> results;
    for (Value g : op.getGrads()) {
      Type elt = cast<RankedTensorType>(g.getType()).getElementType();
      Value factor = toElement(b, loc, coef, elt);
      Value init = filledTensor(b, loc, tensorSizes(b, loc, g), elt,
                                std::nullopt);
      results.push_back(elementwise(
          b, loc, init, ValueRange{g},
          [&](OpBuilder &nb, Location l, ValueRange a) {
            Value scaled = arith::MulFOp::create(nb, l, a[0], factor);
            linalg::YieldOp::create(
                nb, l,
                arith::SelectOp::create(nb, l, below, scaled, a[0])
                    .getResult());
          }));
    }
    results.push_back(
        tensorOf(b, loc, toElement(b, loc, norm, b.getF32Type())));
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct LRScheduleLowering : OpRewritePattern<LRScheduleOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LRScheduleOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value t = toF64(b, loc, scalarOf(b, loc, op.getStep()));
    double lr = op.getLr().convertToDouble();
    int64_t warmup = op.getWarmup(), total = op.getTotal();
    Value lrC = f64Const(b, loc, lr);
    Value after = lrC;
    if (op.getSchedule() == "cosine") {
      // progress = min(1, (t - warmup) / (total - warmup)), from 0.
      Value progress = arith::DivFOp::create(
          b, loc,
          arith::SubFOp::create(b, loc, t,
                                f64Const(b, loc, static_cast<double>(warmup))),
          f64Const(b, loc, static_cast<double>(total - warmup)));
      progress = arith::MinimumFOp::create(
          b, loc, arith::MaximumFOp::create(b, loc, progress,
                                            f64Const(b, loc, 0.0)),
          f64Const(b, loc, 1.0));
      Value c = math::CosOp::create(
          b, loc,
          arith::MulFOp::create(b, loc, progress,
                                f64Const(b, loc, llvm::numbers::pi)));
      after = arith::MulFOp::create(
          b, loc, f64Const(b, loc, 0.5 * lr),
          arith::AddFOp::create(b, loc, f64Const(b, loc, 1.0), c));
    }
    Value result = after;
    if (warmup > 0) {
      Value warm = arith::DivFOp::create(
          b, loc, arith::MulFOp::create(b, loc, lrC, t),
          f64Const(b, loc, static_cast<double>(warmup)));
      Value inWarmup =
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLE, t,
                                f64Const(b, loc, static_cast<double>(warmup)));
      result = arith::SelectOp::create(b, loc, inWarmup, warm, after);
    }
    rewriter.replaceOp(
        op, tensorOf(b, loc, toElement(b, loc, result, b.getF32Type())));
    return success();
  }
};

struct AllFiniteLowering : OpRewritePattern<AllFiniteOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AllFiniteOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value all = arith::ConstantOp::create(b, loc, b.getBoolAttr(true));
    for (Value x : op.getTensors()) {
      Value ok = reduceAll(
          b, loc, x, b.getBoolAttr(true),
          [](OpBuilder &nb, Location l, Value v, Value acc) -> Value {
            // |v| < inf is false for inf and for NaN.
            Value inf = floatConst(nb, l, v.getType(),
                                   std::numeric_limits<double>::infinity());
            Value finite =
                arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OLT,
                                      math::AbsFOp::create(nb, l, v), inf);
            return arith::AndIOp::create(nb, l, acc, finite);
          });
      all = arith::AndIOp::create(b, loc, all, scalarOf(b, loc, ok));
    }
    rewriter.replaceOp(op, tensorOf(b, loc, all));
    return success();
  }
};

struct LossScaleUpdateLowering : OpRewritePattern<LossScaleUpdateOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LossScaleUpdateOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    OpBuilder &b = rewriter;
    Value finite = scalarOf(b, loc, op.getFinite());
    Value scale = scalarOf(b, loc, op.getScale());
    Value good = scalarOf(b, loc, op.getGoodSteps());
    Type f32 = b.getF32Type();
    Value zero = arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(0));
    Value good1 = arith::AddIOp::create(
        b, loc, good, arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(1)));
    Value grow = arith::CmpIOp::create(
        b, loc, arith::CmpIPredicate::sge, good1,
        arith::ConstantOp::create(
            b, loc, b.getI64IntegerAttr(op.getGrowthInterval())));
    Value grown = arith::MulFOp::create(
        b, loc, scale,
        floatConst(b, loc, f32, op.getGrowthFactor().convertToDouble()));
    Value backedOff = arith::MulFOp::create(
        b, loc, scale,
        floatConst(b, loc, f32, op.getBackoffFactor().convertToDouble()));
    Value okScale = arith::SelectOp::create(b, loc, grow, grown, scale);
    Value newScale = arith::SelectOp::create(b, loc, finite, okScale, backedOff);
    Value okGood = arith::SelectOp::create(b, loc, grow, zero, good1);
    Value newGood = arith::SelectOp::create(b, loc, finite, okGood, zero);
    rewriter.replaceOp(op, ValueRange{tensorOf(b, loc, newScale),
                                      tensorOf(b, loc, newGood)});
    return success();
  }
};

} // namespace

void mlir::hag::populateOptimizerToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<AdamWLowering, ClipGradNormLowering, LRScheduleLowering,
               AllFiniteLowering, LossScaleUpdateLowering>(
      patterns.getContext());
}
