//===- LinalgBuilders.h - Small helpers for the hag lowerings ---*- C++ -*-===//
//
// Internal to passes/Conversion/HAGToLinalg: builders for the linalg.generic
// shapes the lowerings use over and over (elementwise maps, contractions over
// the last dimension, reductions), so each op's lowering reads like its math.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_PASSES_CONVERSION_HAGTOLINALG_LINALGBUILDERS_H
#define HAG_PASSES_CONVERSION_HAGTOLINALG_LINALGBUILDERS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"

namespace mlir::hag::lowering {

using BodyFn = function_ref<void(OpBuilder &, Location, ValueRange)>;

/// The sizes of tensor `v`, static or `tensor.dim`.
SmallVector<OpFoldResult> tensorSizes(OpBuilder &b, Location loc, Value v);

/// A tensor.empty of `sizes` filled with `value` (or left empty if null).
Value filledTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                   Type elementType, std::optional<double> value);

/// A float constant of type `t`.
Value floatConst(OpBuilder &b, Location loc, Type t, double v);

/// out[..] = body(inputs[..]) over the full shape of `init`, all maps the
/// identity except those given in `inputMaps` (defaults: identity).
Value elementwise(OpBuilder &b, Location loc, Value init, ValueRange inputs,
                  BodyFn body, ArrayRef<AffineMap> inputMaps = {});

/// y[..., o] = sum_i x[..., i] * w[o, i]  (x of any rank >= 1, w [out, in]).
/// f32 contractions call the register-tiled @hag_matmul_nt of the kernel
/// library (kernels/matmul.mlir) on the rows of x; others are one
/// linalg.generic.
Value contractLastDim(OpBuilder &b, Location loc, Value x, Value w);

/// [[0, ..., rank-2], [rank-1]]: folds the leading dimensions into rows.
SmallVector<ReassociationIndices> rowsReassociation(unsigned rank);

/// `x` (rank >= 2) with its leading dimensions folded into rows.
Value collapseToRows(OpBuilder &b, Location loc, Value x);

/// Calls the matmul-shaped kernel `fn(a, b, c)` with c allocated in `type`
/// (`dynSizes` for its dynamic dimensions) and passed as a [rows, last]
/// view; returns c as a tensor.
Value callMatmulKernel(OpBuilder &b, Location loc, func::FuncOp fn, Value a,
                       Value bv, RankedTensorType type, ValueRange dynSizes);

/// A dynamic-shaped memref view of `tensor` (read only), for kernel calls.
Value asDynamicBuffer(OpBuilder &b, Location loc, Value tensor);

/// r[...] = sum over the last dimension of f(x[..., j]) (body maps the
/// element and the accumulator to the new accumulator); result rank - 1.
Value reduceLastDim(OpBuilder &b, Location loc, Value x, double init,
                    BodyFn body);

/// Reduces every element of `x` (any rank) into a 0-d tensor of `init`'s
/// type: acc = body(x[...], acc), starting at `init`.
Value reduceAll(OpBuilder &b, Location loc, Value x, TypedAttr init,
                function_ref<Value(OpBuilder &, Location, Value, Value)> body);

/// Per position of logits [batch, seq, vocab]: the row max and
/// sum_v exp(logit - max), both [batch, seq] (the log-sum-exp's parts).
std::pair<Value, Value> softmaxStats(OpBuilder &b, Location loc, Value logits);

/// batch * max(seq - 1, 1) for tokens [batch, seq], as a float of type `elt`:
/// the positions the mean next-token loss averages over.
Value nextTokenCount(OpBuilder &b, Location loc, Value tokens, Type elt);

/// Inside a linalg body whose loops 0 and 1 run over tokens [batch, seq]:
/// whether this position has a next token, and that token's id as an index
/// (the position's own token when there is none).
std::pair<Value, Value> nextTokenId(OpBuilder &b, Location loc, Value tokens,
                                    Value seq);

/// RMSNorm's per-row factor r = 1 / sqrt(sum(x^2) / D + eps) over the last
/// dimension of x: a tensor of x's leading dimensions.
Value rmsInverse(OpBuilder &b, Location loc, Value x, double eps);

/// The map from x's loops (rank dims) to its leading dimensions, and to its
/// last dimension.
AffineMap leadingDimsMap(OpBuilder &b, unsigned rank);
AffineMap lastDimMap(OpBuilder &b, unsigned rank);

/// SiLU(x) = x * sigmoid(x).
Value silu(OpBuilder &b, Location loc, Value x);
/// sigmoid(x) = 1 / (1 + exp(-x)).
Value sigmoid(OpBuilder &b, Location loc, Value x);

} // namespace mlir::hag::lowering

#endif // HAG_PASSES_CONVERSION_HAGTOLINALG_LINALGBUILDERS_H
