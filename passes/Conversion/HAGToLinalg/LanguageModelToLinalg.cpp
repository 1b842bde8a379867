//===- LanguageModelToLinalg.cpp - LM ops -> linalg on tensors ------------===//
//
// Every pattern writes its op's math (spec sections 2, 3 and 7) as
// linalg.generic ops on tensors (projections call the kernel library's
// matmul). Accumulations are in the element type (f32), except RoPE's angles,
// which are formed in f64 (a position near 65536 times a frequency near 1
// needs more than f32's 24 bits) in a [N, d/2] cos/sin table shared by every
// batch row and head.
//
//===----------------------------------------------------------------------===//

#include "LinalgBuilders.h"
#include "hag/Conversion/Passes.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "llvm/ADT/StringSwitch.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::hag;
using namespace mlir::hag::lowering;

//===----------------------------------------------------------------------===//
// Builders
//===----------------------------------------------------------------------===//

SmallVector<OpFoldResult> lowering::tensorSizes(OpBuilder &b, Location loc,
                                                Value v) {
  return tensor::getMixedSizes(b, loc, v);
}

Value lowering::floatConst(OpBuilder &b, Location loc, Type t, double v) {
  return arith::ConstantOp::create(b, loc, t, b.getFloatAttr(t, v));
}

Value lowering::filledTensor(OpBuilder &b, Location loc,
                             ArrayRef<OpFoldResult> sizes, Type elementType,
                             std::optional<double> value) {
  Value empty = tensor::EmptyOp::create(b, loc, sizes, elementType);
  if (!value)
    return empty;
  Value c = floatConst(b, loc, elementType, *value);
  return linalg::FillOp::create(b, loc, ValueRange{c}, ValueRange{empty})
      .getResult(0);
}

Value lowering::elementwise(OpBuilder &b, Location loc, Value init,
                            ValueRange inputs, BodyFn body,
                            ArrayRef<AffineMap> inputMaps) {
  auto type = cast<RankedTensorType>(init.getType());
  unsigned rank = type.getRank();
  SmallVector<AffineMap> maps;
  for (unsigned i = 0; i < inputs.size(); ++i)
    maps.push_back(i < inputMaps.size() ? inputMaps[i]
                                        : b.getMultiDimIdentityMap(rank));
  maps.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  return linalg::GenericOp::create(b, loc, TypeRange{type}, inputs,
                                   ValueRange{init}, maps, iters, body)
      .getResult(0);
}

Value lowering::asDynamicBuffer(OpBuilder &b, Location loc, Value tensor) {
  auto t = cast<RankedTensorType>(tensor.getType());
  SmallVector<int64_t> dyn(t.getRank(), ShapedType::kDynamic);
  auto staticType = MemRefType::get(t.getShape(), t.getElementType());
  Value m = bufferization::ToBufferOp::create(b, loc, staticType, tensor,
                                              /*readOnly=*/true);
  auto dynType = MemRefType::get(dyn, t.getElementType());
  if (staticType == dynType)
    return m;
  return memref::CastOp::create(b, loc, dynType, m);
}

SmallVector<ReassociationIndices> lowering::rowsReassociation(unsigned rank) {
  ReassociationIndices lead;
  for (unsigned d = 0; d + 1 < rank; ++d)
    lead.push_back(d);
  return {lead, {static_cast<int64_t>(rank) - 1}};
}

Value lowering::collapseToRows(OpBuilder &b, Location loc, Value x) {
  unsigned rank = cast<RankedTensorType>(x.getType()).getRank();
  if (rank == 2)
    return x;
  return tensor::CollapseShapeOp::create(b, loc, x, rowsReassociation(rank));
}

Value lowering::callMatmulKernel(OpBuilder &b, Location loc, func::FuncOp fn,
                                 Value a, Value bv, RankedTensorType type,
                                 ValueRange dynSizes) {
  // The result is allocated in its final shape and the kernel writes
  // through a collapsed [rows, last] view of it. (Expanding a [rows, last]
  // result instead hits a crash in MLIR 22's expand-strided-metadata on
  // memref.expand_shape with two dynamic dims.)
  Type elt = type.getElementType();
  Value aBuf = asDynamicBuffer(b, loc, a);
  Value bBuf = asDynamicBuffer(b, loc, bv);
  Value c = memref::AllocOp::create(
      b, loc, MemRefType::get(type.getShape(), elt), dynSizes);
  unsigned rank = type.getRank();
  Value c2d = rank == 2 ? c
                        : memref::CollapseShapeOp::create(
                              b, loc, c, rowsReassociation(rank))
                              .getResult();
  Value cDyn = memref::CastOp::create(
      b, loc,
      MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic}, elt), c2d);
  func::CallOp::create(b, loc, fn, ValueRange{aBuf, bBuf, cDyn});
  return bufferization::ToTensorOp::create(b, loc, type, c, b.getUnitAttr(),
                                           b.getUnitAttr());
}

/// y = x w^T through the kernel library's @hag_matmul_nt on the rows of x
/// (x collapsed to [rows, in]); null when the kernel is not available or x
/// is a vector.
static Value contractWithKernel(OpBuilder &b, Location loc, Value x, Value w) {
  auto xType = cast<RankedTensorType>(x.getType());
  auto wType = cast<RankedTensorType>(w.getType());
  Type elt = xType.getElementType();
  if (!elt.isF32() || !wType.getElementType().isF32())
    return nullptr;
  auto module =
      b.getInsertionBlock()->getParentOp()->getParentOfType<ModuleOp>();
  // The AMX kernel where hag-lower-to-linalg{amx} loaded it.
  func::FuncOp kernel;
  if (module) {
    kernel = module.lookupSymbol<func::FuncOp>("hag_matmul_nt_amx");
    if (!kernel)
      kernel = module.lookupSymbol<func::FuncOp>("hag_matmul_nt");
  }
  if (!kernel)
    return nullptr;
  unsigned rank = xType.getRank();
  if (rank < 2)
    return nullptr;
  int64_t out = wType.getDimSize(0);
  SmallVector<int64_t> shape(xType.getShape());
  shape.back() = out;
  SmallVector<Value> dynSizes;
  for (unsigned d = 0; d + 1 < rank; ++d)
    if (xType.isDynamicDim(d))
      dynSizes.push_back(tensor::DimOp::create(b, loc, x, d));
  if (ShapedType::isDynamic(out))
    dynSizes.push_back(tensor::DimOp::create(b, loc, w, 0));
  return callMatmulKernel(b, loc, kernel, collapseToRows(b, loc, x), w,
                          RankedTensorType::get(shape, elt), dynSizes);
}

Value lowering::contractLastDim(OpBuilder &b, Location loc, Value x, Value w) {
  if (Value y = contractWithKernel(b, loc, x, w))
    return y;
  auto xType = cast<RankedTensorType>(x.getType());
  unsigned rank = xType.getRank();
  // Loops: d0 .. d(rank-2) (x's leading dims), o, i.
  unsigned nLoops = rank + 1;
  SmallVector<AffineExpr> xExprs, wExprs, yExprs;
  for (unsigned d = 0; d + 1 < rank; ++d) {
    xExprs.push_back(b.getAffineDimExpr(d));
    yExprs.push_back(b.getAffineDimExpr(d));
  }
  AffineExpr o = b.getAffineDimExpr(rank - 1), i = b.getAffineDimExpr(rank);
  xExprs.push_back(i);
  wExprs = {o, i};
  yExprs.push_back(o);
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineMap> maps = {AffineMap::get(nLoops, 0, xExprs, ctx),
                                 AffineMap::get(nLoops, 0, wExprs, ctx),
                                 AffineMap::get(nLoops, 0, yExprs, ctx)};
  SmallVector<utils::IteratorType> iters(nLoops, utils::IteratorType::parallel);
  iters.back() = utils::IteratorType::reduction;

  SmallVector<OpFoldResult> sizes = tensorSizes(b, loc, x);
  sizes.back() = tensor::getMixedSize(b, loc, w, 0);
  Value init = filledTensor(b, loc, sizes, xType.getElementType(), 0.0);
  return linalg::GenericOp::create(
             b, loc, TypeRange{init.getType()}, ValueRange{x, w},
             ValueRange{init}, maps, iters,
             [](OpBuilder &nb, Location l, ValueRange args) {
               Value m = arith::MulFOp::create(nb, l, args[0], args[1]);
               Value s = arith::AddFOp::create(nb, l, args[2], m);
               linalg::YieldOp::create(nb, l, s);
             })
      .getResult(0);
}

Value lowering::reduceAll(OpBuilder &b, Location loc, Value x, TypedAttr init,
                function_ref<Value(OpBuilder &, Location, Value, Value)> body) {
  auto type = cast<RankedTensorType>(x.getType());
  unsigned rank = type.getRank();
  Value start = arith::ConstantOp::create(b, loc, init);
  Value acc = tensor::FromElementsOp::create(
      b, loc, RankedTensorType::get({}, init.getType()), ValueRange{start});
  AffineMap id = b.getMultiDimIdentityMap(rank);
  AffineMap scalar = AffineMap::get(rank, 0, {}, b.getContext());
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::reduction);
  return linalg::GenericOp::create(
             b, loc, TypeRange{acc.getType()}, ValueRange{x}, ValueRange{acc},
             ArrayRef<AffineMap>{id, scalar}, iters,
             [&](OpBuilder &nb, Location l, ValueRange a) {
               linalg::YieldOp::create(nb, l, body(nb, l, a[0], a[1]));
             })
      .getResult(0);
}

Value lowering::reduceLastDim(OpBuilder &b, Location loc, Value x, double init,
                              BodyFn body) {
  auto xType = cast<RankedTensorType>(x.getType());
  unsigned rank = xType.getRank();
  SmallVector<AffineExpr> outExprs;
  for (unsigned d = 0; d + 1 < rank; ++d)
    outExprs.push_back(b.getAffineDimExpr(d));
  SmallVector<AffineMap> maps = {
      b.getMultiDimIdentityMap(rank),
      AffineMap::get(rank, 0, outExprs, b.getContext())};
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  iters.back() = utils::IteratorType::reduction;
  SmallVector<OpFoldResult> sizes = tensorSizes(b, loc, x);
  sizes.pop_back();
  Value out = filledTensor(b, loc, sizes, xType.getElementType(), init);
  return linalg::GenericOp::create(b, loc, TypeRange{out.getType()},
                                   ValueRange{x}, ValueRange{out}, maps, iters,
                                   body)
      .getResult(0);
}

AffineMap lowering::leadingDimsMap(OpBuilder &b, unsigned rank) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d = 0; d + 1 < rank; ++d)
    exprs.push_back(b.getAffineDimExpr(d));
  return AffineMap::get(rank, 0, exprs, b.getContext());
}

AffineMap lowering::lastDimMap(OpBuilder &b, unsigned rank) {
  return AffineMap::get(rank, 0, b.getAffineDimExpr(rank - 1), b.getContext());
}

Value lowering::rmsInverse(OpBuilder &b, Location loc, Value x, double eps) {
  auto type = cast<RankedTensorType>(x.getType());
  unsigned rank = type.getRank();
  Type elt = type.getElementType();
  Value sumSq = reduceLastDim(
      b, loc, x, 0.0, [](OpBuilder &nb, Location l, ValueRange a) {
        Value sq = arith::MulFOp::create(nb, l, a[0], a[0]);
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, a[1], sq).getResult());
      });
  // D as a float: from the static size, or tensor.dim at run time.
  Value width = arith::IndexCastOp::create(
      b, loc, b.getI64Type(),
      getValueOrCreateConstantIndexOp(
          b, loc, tensor::getMixedSize(b, loc, x, rank - 1)));
  Value widthF = arith::SIToFPOp::create(b, loc, elt, width);
  Value epsC = floatConst(b, loc, elt, eps);
  SmallVector<OpFoldResult> rows = tensorSizes(b, loc, x);
  rows.pop_back();
  Value init = filledTensor(b, loc, rows, elt, std::nullopt);
  return elementwise(b, loc, init, ValueRange{sumSq},
                     [&](OpBuilder &nb, Location l, ValueRange a) {
                       Value mean = arith::DivFOp::create(nb, l, a[0], widthF);
                       linalg::YieldOp::create(
                           nb, l,
                           math::RsqrtOp::create(
                               nb, l, arith::AddFOp::create(nb, l, mean, epsC))
                               .getResult());
                     });
}

std::pair<Value, Value> lowering::nextTokenId(OpBuilder &b, Location loc,
                                              Value tokens, Value seq) {
  Value bIdx = linalg::IndexOp::create(b, loc, 0);
  Value i = linalg::IndexOp::create(b, loc, 1);
  Value next =
      arith::AddIOp::create(b, loc, i, arith::ConstantIndexOp::create(b, loc, 1));
  Value hasNext =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, next, seq);
  Value nextIdx = arith::SelectOp::create(b, loc, hasNext, next, i);
  Value tok =
      tensor::ExtractOp::create(b, loc, tokens, ValueRange{bIdx, nextIdx});
  Value id = arith::IndexCastOp::create(b, loc, b.getIndexType(), tok);
  return {hasNext, id};
}

std::pair<Value, Value> lowering::softmaxStats(OpBuilder &b, Location loc,
                                               Value logits) {
  Type elt = cast<RankedTensorType>(logits.getType()).getElementType();
  double lowest = -std::numeric_limits<double>::infinity();
  Value rowMax = reduceLastDim(
      b, loc, logits, lowest, [](OpBuilder &nb, Location l, ValueRange a) {
        linalg::YieldOp::create(
            nb, l, arith::MaximumFOp::create(nb, l, a[0], a[1]).getResult());
      });
  // sum_v exp(logit - max), with the max broadcast along v.
  MLIRContext *ctx = b.getContext();
  AffineMap id3 = b.getMultiDimIdentityMap(3);
  AffineMap row3 =
      AffineMap::get(3, 0, {b.getAffineDimExpr(0), b.getAffineDimExpr(1)}, ctx);
  SmallVector<OpFoldResult> rows = tensorSizes(b, loc, logits);
  rows.pop_back();
  Value sumInit = filledTensor(b, loc, rows, elt, 0.0);
  Value sumExp =
      linalg::GenericOp::create(
          b, loc, TypeRange{sumInit.getType()}, ValueRange{logits, rowMax},
          ValueRange{sumInit}, ArrayRef<AffineMap>{id3, row3, row3},
          ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                        utils::IteratorType::parallel,
                                        utils::IteratorType::reduction},
          [](OpBuilder &nb, Location l, ValueRange a) {
            Value e = math::ExpOp::create(
                nb, l, arith::SubFOp::create(nb, l, a[0], a[1]));
            linalg::YieldOp::create(
                nb, l, arith::AddFOp::create(nb, l, a[2], e).getResult());
          })
          .getResult(0);
  return {rowMax, sumExp};
}

Value lowering::nextTokenCount(OpBuilder &b, Location loc, Value tokens,
                               Type elt) {
  Value seq = getValueOrCreateConstantIndexOp(
      b, loc, tensor::getMixedSize(b, loc, tokens, 1));
  Value batch = getValueOrCreateConstantIndexOp(
      b, loc, tensor::getMixedSize(b, loc, tokens, 0));
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value positions = arith::MulIOp::create(
      b, loc, batch,
      arith::MaxUIOp::create(b, loc, arith::SubIOp::create(b, loc, seq, one),
                             one));
  return arith::SIToFPOp::create(
      b, loc, elt,
      arith::IndexCastOp::create(b, loc, b.getI64Type(), positions));
}

Value lowering::sigmoid(OpBuilder &b, Location loc, Value x) {
  Value one = floatConst(b, loc, x.getType(), 1.0);
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, one,
                               arith::AddFOp::create(b, loc, one, e));
}

Value lowering::silu(OpBuilder &b, Location loc, Value x) {
  return arith::MulFOp::create(b, loc, x, sigmoid(b, loc, x));
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

/// Adds a bias [out] to y [..., out].
Value addBias(OpBuilder &b, Location loc, Value y, Value bias) {
  auto type = cast<RankedTensorType>(y.getType());
  unsigned rank = type.getRank();
  AffineMap biasMap =
      AffineMap::get(rank, 0, b.getAffineDimExpr(rank - 1), b.getContext());
  Value init = filledTensor(b, loc, tensorSizes(b, loc, y),
                            type.getElementType(), std::nullopt);
  return elementwise(
      b, loc, init, ValueRange{y, bias},
      [](OpBuilder &nb, Location l, ValueRange a) {
        linalg::YieldOp::create(
            nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
      },
      {b.getMultiDimIdentityMap(rank), biasMap});
}

struct LinearLowering : OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value y = contractLastDim(rewriter, loc, op.getInput(), op.getWeight());
    if (op.getBias())
      y = addBias(rewriter, loc, y, op.getBias());
    rewriter.replaceOp(op, y);
    return success();
  }
};

/// hag.all_reduce: a call into the runtime's collective,
/// `void hag_all_reduce_f32(float *data, int64_t count, int32_t group,
/// int32_t mean)` (group 0: tensor, 1: data, 2: pipeline, 3: embedding),
/// which sums `count` contiguous
/// floats over the group's ranks in place (and divides them by the group's
/// size when `mean` is 1). The input is copied into a fresh contiguous
/// buffer that the call overwrites and the result then owns.
struct AllReduceLowering : OpRewritePattern<AllReduceOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AllReduceOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = cast<RankedTensorType>(op.getType());
    if (!type.getElementType().isF32())
      return op->emitError() << "hag.all_reduce lowers for f32 only, got "
                             << type.getElementType();
    auto module = op->getParentOfType<ModuleOp>();
    constexpr StringLiteral callee = "hag_all_reduce_f32";
    Type i64 = rewriter.getI64Type(), i32 = rewriter.getI32Type();
    if (!module.lookupSymbol<func::FuncOp>(callee)) {
      OpBuilder::InsertionGuard guard(rewriter);
      rewriter.setInsertionPointToStart(module.getBody());
      auto decl = func::FuncOp::create(rewriter, loc, callee,
                                       rewriter.getFunctionType({i64, i64, i32, i32}, {}));
      decl.setPrivate();
    }
    SmallVector<Value> dynamic;
    Value count = arith::ConstantIndexOp::create(rewriter, loc, 1);
    for (int64_t d = 0; d < type.getRank(); ++d) {
      Value size = tensor::DimOp::create(rewriter, loc, op.getInput(), d);
      if (type.isDynamicDim(d))
        dynamic.push_back(size);
      count = arith::MulIOp::create(rewriter, loc, count, size);
    }
    auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
    Value buffer = memref::AllocOp::create(rewriter, loc, memrefType, dynamic);
    Value source = bufferization::ToBufferOp::create(
        rewriter, loc, memrefType, op.getInput(), /*readOnly=*/true);
    memref::CopyOp::create(rewriter, loc, source, buffer);
    Value address =
        memref::ExtractAlignedPointerAsIndexOp::create(rewriter, loc, buffer);
    Value args[] = {
        arith::IndexCastOp::create(rewriter, loc, i64, address),
        arith::IndexCastOp::create(rewriter, loc, i64, count),
        arith::ConstantIntOp::create(
            rewriter, loc, i32,
            llvm::StringSwitch<int64_t>(op.getGroup())
                .Case("tensor", 0)
                .Case("data", 1)
                .Case("pipeline", 2)
                .Case("embedding", 3)
                .Default(-1)),
        arith::ConstantIntOp::create(rewriter, loc, i32, op.getMean() ? 1 : 0)};
    func::CallOp::create(rewriter, loc, callee, TypeRange{}, args);
    rewriter.replaceOpWithNewOp<bufferization::ToTensorOp>(
        op, type, buffer, /*restrict=*/true, /*writable=*/true);
    return success();
  }
};

/// hag.copy_to_group is the identity in the forward pass (its VJP, built
/// before lowering, is where the communication is).
struct CopyToGroupLowering : OpRewritePattern<CopyToGroupOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CopyToGroupOp op,
                                PatternRewriter &rewriter) const override {
    rewriter.replaceOp(op, op.getInput());
    return success();
  }
};

struct AddLowering : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AddOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto type = op.getType();
    Value init =
        filledTensor(rewriter, loc, tensorSizes(rewriter, loc, op.getLhs()),
                     type.getElementType(), std::nullopt);
    rewriter.replaceOp(
        op,
        elementwise(rewriter, loc, init, ValueRange{op.getLhs(), op.getRhs()},
                    [](OpBuilder &nb, Location l, ValueRange a) {
                      linalg::YieldOp::create(
                          nb, l,
                          arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
                    }));
    return success();
  }
};

struct RMSNormLowering : OpRewritePattern<RMSNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RMSNormOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    auto type = cast<RankedTensorType>(x.getType());
    unsigned rank = type.getRank();
    Value r = rmsInverse(rewriter, loc, x, op.getEps().convertToDouble());
    Value init = filledTensor(rewriter, loc, tensorSizes(rewriter, loc, x),
                              type.getElementType(), std::nullopt);
    Value y = elementwise(
        rewriter, loc, init, ValueRange{x, r, op.getScale()},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value n = arith::MulFOp::create(nb, l, a[0], a[1]);
          linalg::YieldOp::create(
              nb, l, arith::MulFOp::create(nb, l, n, a[2]).getResult());
        },
        {rewriter.getMultiDimIdentityMap(rank), leadingDimsMap(rewriter, rank),
         lastDimMap(rewriter, rank)});
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct RopeLowering : OpRewritePattern<RopeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(RopeOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value x = op.getInput();
    auto type = cast<RankedTensorType>(x.getType());
    Type elt = type.getElementType();
    int64_t hd = op.getHeadDimAttr().getInt(), half = hd / 2;
    double base = op.getBase().convertToDouble();
    int64_t offset = op.getOffsetAttr().getInt();
    Type f64 = rewriter.getF64Type();

    // cos and sin of theta = a * base^(-2 j / d) for the absolute position
    // a = position + offset + i of every row i, [N, d/2], shared by every
    // batch row and head (the frequencies are compile-time constants).
    // With a = 64 c + l (0 <= l < 64) the table comes from sincos of the
    // 64 c parts and of the l parts, in f64:
    //   cos = cos_c cos_l - sin_c sin_l,   sin = sin_c cos_l + cos_c sin_l,
    // about (N / 64 + min(N, 64)) d/2 libm sincos calls instead of N d/2
    // (they were ~4% of the 16K attention layer). A row's value depends on
    // its absolute position only, so decoding one token at position P
    // gets the bits of row P of the full forward.
    SmallVector<double> freqs;
    for (int64_t j = 0; j < half; ++j)
      freqs.push_back(std::pow(base, -2.0 * static_cast<double>(j) / hd));
    auto freqType = RankedTensorType::get({half}, f64);
    Value invFreqs = arith::ConstantOp::create(
        rewriter, loc, DenseElementsAttr::get(freqType, ArrayRef<double>(freqs)));
    auto cIdx = [&](int64_t v) {
      return arith::ConstantIndexOp::create(rewriter, loc, v).getResult();
    };
    const int64_t span = 64;
    Value n = tensor::DimOp::create(rewriter, loc, x, 1);
    Value a0 = cIdx(offset);
    if (Value start = op.getPosition())
      a0 = arith::AddIOp::create(rewriter, loc, start, a0);
    Value cFirst = arith::FloorDivSIOp::create(rewriter, loc, a0, cIdx(span));
    Value aLast = arith::SubIOp::create(
        rewriter, loc, arith::AddIOp::create(rewriter, loc, a0, n), cIdx(1));
    Value cLast = arith::FloorDivSIOp::create(rewriter, loc, aLast, cIdx(span));
    Value nCoarse = arith::AddIOp::create(
        rewriter, loc, arith::SubIOp::create(rewriter, loc, cLast, cFirst),
        cIdx(1));
    Value nFine = arith::MinSIOp::create(rewriter, loc, n, cIdx(span));
    AffineMap id2 = rewriter.getMultiDimIdentityMap(2);
    SmallVector<utils::IteratorType> iters(2, utils::IteratorType::parallel);
    auto toF64 = [&](OpBuilder &nb, Location l, Value i) {
      Value i64 = arith::IndexCastOp::create(nb, l, nb.getI64Type(), i);
      return arith::SIToFPOp::create(nb, l, f64, i64).getResult();
    };
    // One f64 [rows, d/2] cos and sin table of sincos(angle(row) * freq_j):
    // math.sincos is one libm call per angle.
    auto sincosTable =
        [&](Value rows,
            function_ref<Value(OpBuilder &, Location, Value)> angle) {
          SmallVector<OpFoldResult> sizes = {rows, rewriter.getIndexAttr(half)};
          Value cosInit = filledTensor(rewriter, loc, sizes, f64, std::nullopt);
          Value sinInit = filledTensor(rewriter, loc, sizes, f64, std::nullopt);
          return linalg::GenericOp::create(
              rewriter, loc, TypeRange{cosInit.getType(), sinInit.getType()},
              ValueRange{invFreqs}, ValueRange{cosInit, sinInit},
              {lastDimMap(rewriter, 2), id2, id2}, iters,
              [&](OpBuilder &nb, Location l, ValueRange a) {
                Value row = linalg::IndexOp::create(nb, l, 0);
                Value theta =
                    arith::MulFOp::create(nb, l, angle(nb, l, row), a[0]);
                auto sc = math::SincosOp::create(nb, l, theta);
                linalg::YieldOp::create(nb, l,
                                        ValueRange{sc.getCos(), sc.getSin()});
              });
        };
    // Coarse row c: the angle's 64 (cFirst + c) part.
    auto coarse = sincosTable(nCoarse, [&](OpBuilder &nb, Location l, Value c) {
      Value block = arith::AddIOp::create(nb, l, cFirst, c);
      Value spanC = arith::ConstantIndexOp::create(nb, l, span);
      return toF64(nb, l, arith::MulIOp::create(nb, l, block, spanC));
    });
    // Fine row k: (a0 + k) mod 64, the l part of every row i = k (mod 64).
    auto fine = sincosTable(nFine, [&](OpBuilder &nb, Location l, Value k) {
      Value spanC = arith::ConstantIndexOp::create(nb, l, span);
      Value a = arith::AddIOp::create(nb, l, a0, k);
      Value q = arith::FloorDivSIOp::create(nb, l, a, spanC);
      return toF64(nb, l,
                   arith::SubIOp::create(
                       nb, l, a, arith::MulIOp::create(nb, l, q, spanC)));
    });
    SmallVector<OpFoldResult> tableSizes = {n, rewriter.getIndexAttr(half)};
    Value cosInit = filledTensor(rewriter, loc, tableSizes, elt, std::nullopt);
    Value sinInit = filledTensor(rewriter, loc, tableSizes, elt, std::nullopt);
    auto tables = linalg::GenericOp::create(
        rewriter, loc, TypeRange{cosInit.getType(), sinInit.getType()},
        ValueRange{}, ValueRange{cosInit, sinInit}, {id2, id2}, iters,
        [&](OpBuilder &nb, Location l, ValueRange) {
          Value spanC = arith::ConstantIndexOp::create(nb, l, span);
          Value i = linalg::IndexOp::create(nb, l, 0);
          Value j = linalg::IndexOp::create(nb, l, 1);
          Value a = arith::AddIOp::create(nb, l, a0, i);
          Value c = arith::SubIOp::create(
              nb, l, arith::FloorDivSIOp::create(nb, l, a, spanC), cFirst);
          Value k = arith::RemUIOp::create(nb, l, i, spanC);
          auto at = [&](Value t, Value row) {
            return tensor::ExtractOp::create(nb, l, t, ValueRange{row, j})
                .getResult();
          };
          Value cc = at(coarse.getResult(0), c),
                sc = at(coarse.getResult(1), c);
          Value cl = at(fine.getResult(0), k), sl = at(fine.getResult(1), k);
          auto mul = [&](Value u, Value v) {
            return arith::MulFOp::create(nb, l, u, v).getResult();
          };
          Value cosA = arith::SubFOp::create(nb, l, mul(cc, cl), mul(sc, sl));
          Value sinA = arith::AddFOp::create(nb, l, mul(sc, cl), mul(cc, sl));
          linalg::YieldOp::create(
              nb, l,
              ValueRange{
                  arith::TruncFOp::create(nb, l, elt, cosA).getResult(),
                  arith::TruncFOp::create(nb, l, elt, sinA).getResult()});
        });
    Value cosT = tables.getResult(0), sinT = tables.getResult(1);

    Value init = filledTensor(rewriter, loc, tensorSizes(rewriter, loc, x), elt,
                              std::nullopt);
    Value y = elementwise(
        rewriter, loc, init, ValueRange{x},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          auto idx = [&](int64_t v) {
            return arith::ConstantIndexOp::create(nb, l, v).getResult();
          };
          Value bIdx = linalg::IndexOp::create(nb, l, 0);
          Value pos = linalg::IndexOp::create(nb, l, 1);
          Value f = linalg::IndexOp::create(nb, l, 2);
          Value j = arith::RemUIOp::create(nb, l, f, idx(hd));
          Value lowHalf = arith::CmpIOp::create(
              nb, l, arith::CmpIPredicate::ult, j, idx(half));
          Value jj = arith::RemUIOp::create(nb, l, j, idx(half));
          // Partner element: f + d/2 in the low half, f - d/2 in the high half.
          Value partnerIdx = arith::SelectOp::create(
              nb, l, lowHalf, arith::AddIOp::create(nb, l, f, idx(half)),
              arith::SubIOp::create(nb, l, f, idx(half)));
          Value partner = tensor::ExtractOp::create(
              nb, l, x, ValueRange{bIdx, pos, partnerIdx});
          Value c = tensor::ExtractOp::create(nb, l, cosT, ValueRange{pos, jj});
          Value s = tensor::ExtractOp::create(nb, l, sinT, ValueRange{pos, jj});
          // low:  u_j cos - u_{j+d/2} sin;  high: u_j cos + u_{j-d/2} sin.
          Value ps = arith::MulFOp::create(nb, l, partner, s);
          // The inverse rotation (RoPE's VJP) flips the sine's sign.
          Value negPs = arith::NegFOp::create(nb, l, ps);
          Value signedPs =
              op.getInverse()
                  ? arith::SelectOp::create(nb, l, lowHalf, ps, negPs)
                  : arith::SelectOp::create(nb, l, lowHalf, negPs, ps);
          Value r = arith::AddFOp::create(
              nb, l, arith::MulFOp::create(nb, l, a[0], c), signedPs);
          linalg::YieldOp::create(nb, l, r);
        });
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct SwiGLULowering : OpRewritePattern<SwiGLUOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SwiGLUOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value gate = contractLastDim(rewriter, loc, op.getInput(), op.getWGate());
    Value up = contractLastDim(rewriter, loc, op.getInput(), op.getWUp());
    auto type = cast<RankedTensorType>(gate.getType());
    Value init = filledTensor(rewriter, loc, tensorSizes(rewriter, loc, gate),
                              type.getElementType(), std::nullopt);
    Value act = elementwise(
        rewriter, loc, init, ValueRange{gate, up},
        [](OpBuilder &nb, Location l, ValueRange a) {
          Value s = silu(nb, l, a[0]);
          linalg::YieldOp::create(
              nb, l, arith::MulFOp::create(nb, l, s, a[1]).getResult());
        });
    rewriter.replaceOp(op, contractLastDim(rewriter, loc, act, op.getWDown()));
    return success();
  }
};

struct EmbeddingLowering : OpRewritePattern<EmbeddingOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(EmbeddingOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value table = op.getTable();
    auto type = cast<RankedTensorType>(op.getResult().getType());
    SmallVector<OpFoldResult> sizes =
        tensorSizes(rewriter, loc, op.getTokens());
    sizes.push_back(tensor::getMixedSize(rewriter, loc, table, 1));
    Value init =
        filledTensor(rewriter, loc, sizes, type.getElementType(), std::nullopt);
    Value vocab = getValueOrCreateConstantIndexOp(
        rewriter, loc, tensor::getMixedSize(rewriter, loc, table, 0));
    AffineMap tokMap = AffineMap::get(
        3, 0, {rewriter.getAffineDimExpr(0), rewriter.getAffineDimExpr(1)},
        getContext());
    Value y = elementwise(
        rewriter, loc, init, ValueRange{op.getTokens()},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          // The runtime rejects out-of-range tokens before the call; the
          // clamp only keeps a bad id from reading outside the table.
          Value id = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[0]);
          Value zero = arith::ConstantIndexOp::create(nb, l, 0);
          Value last = arith::SubIOp::create(
              nb, l, vocab, arith::ConstantIndexOp::create(nb, l, 1));
          id = arith::MaxSIOp::create(nb, l, zero,
                                      arith::MinSIOp::create(nb, l, id, last));
          Value j = linalg::IndexOp::create(nb, l, 2);
          linalg::YieldOp::create(
              nb, l,
              tensor::ExtractOp::create(nb, l, table, ValueRange{id, j})
                  .getResult());
        },
        {tokMap});
    rewriter.replaceOp(op, y);
    return success();
  }
};

struct CrossEntropyLowering : OpRewritePattern<CrossEntropyOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(CrossEntropyOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    Value logits = op.getLogits(), tokens = op.getTokens();
    Type elt = cast<RankedTensorType>(logits.getType()).getElementType();
    auto [rowMax, sumExp] = softmaxStats(rewriter, loc, logits);
    AffineMap row2 = rewriter.getMultiDimIdentityMap(2);
    SmallVector<OpFoldResult> rows = tensorSizes(rewriter, loc, tokens);
    // Per position: log-sum-exp minus the next token's logit; 0 for the last.
    Value seq = getValueOrCreateConstantIndexOp(
        rewriter, loc, tensor::getMixedSize(rewriter, loc, tokens, 1));
    Value vocab = getValueOrCreateConstantIndexOp(
        rewriter, loc, tensor::getMixedSize(rewriter, loc, logits, 2));
    Value lossInit = filledTensor(rewriter, loc, rows, elt, std::nullopt);
    Value perPos = elementwise(
        rewriter, loc, lossInit, ValueRange{rowMax, sumExp},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value bIdx = linalg::IndexOp::create(nb, l, 0);
          Value i = linalg::IndexOp::create(nb, l, 1);
          Value one = arith::ConstantIndexOp::create(nb, l, 1);
          Value zero = arith::ConstantIndexOp::create(nb, l, 0);
          auto [hasNext, id] = nextTokenId(nb, l, tokens, seq);
          Value last = arith::SubIOp::create(nb, l, vocab, one);
          id = arith::MaxSIOp::create(nb, l, zero,
                                      arith::MinSIOp::create(nb, l, id, last));
          Value target =
              tensor::ExtractOp::create(nb, l, logits, ValueRange{bIdx, i, id});
          Value lse = arith::AddFOp::create(nb, l, a[0],
                                            math::LogOp::create(nb, l, a[1]));
          Value loss = arith::SubFOp::create(nb, l, lse, target);
          Value zeroF = floatConst(nb, l, loss.getType(), 0.0);
          linalg::YieldOp::create(
              nb, l,
              arith::SelectOp::create(nb, l, hasNext, loss, zeroF).getResult());
        },
        {row2, row2});
    // Mean over batch * (seq - 1) positions (0 when there are none).
    Value totalInit = filledTensor(rewriter, loc, {}, elt, 0.0);
    Value total =
        linalg::GenericOp::create(
            rewriter, loc, TypeRange{totalInit.getType()}, ValueRange{perPos},
            ValueRange{totalInit},
            ArrayRef<AffineMap>{row2, AffineMap::get(2, 0, {}, getContext())},
            ArrayRef<utils::IteratorType>{utils::IteratorType::reduction,
                                          utils::IteratorType::reduction},
            [](OpBuilder &nb, Location l, ValueRange a) {
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, a[0], a[1]).getResult());
            })
            .getResult(0);
    Value count = nextTokenCount(rewriter, loc, tokens, elt);
    Value meanInit = filledTensor(rewriter, loc, {}, elt, std::nullopt);
    Value mean = elementwise(
        rewriter, loc, meanInit, ValueRange{total},
        [&](OpBuilder &nb, Location l, ValueRange a) {
          linalg::YieldOp::create(
              nb, l, arith::DivFOp::create(nb, l, a[0], count).getResult());
        });
    rewriter.replaceOp(op, mean);
    return success();
  }
};

} // namespace

void mlir::hag::populateLanguageModelToLinalgPatterns(
    RewritePatternSet &patterns) {
  patterns.add<LinearLowering, AddLowering, AllReduceLowering, CopyToGroupLowering, RMSNormLowering, RopeLowering,
               SwiGLULowering, EmbeddingLowering, CrossEntropyLowering>(
      patterns.getContext());
}
