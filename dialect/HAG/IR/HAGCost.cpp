//===- HAGCost.cpp - CostOpInterface implementations ----------------------===//
//
// FLOPs count a multiply-add as 2. Bytes are the operands and results read or
// written once, at their element type. Dynamic dimensions resolve through the
// CostContext: dim 0 of an activation is the batch, dim 1 the sequence (or,
// for levels and summaries, the length derived from it).
//
//===----------------------------------------------------------------------===//

#include "hag/Analysis/PyramidWindows.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

using namespace mlir;
using namespace mlir::hag;

namespace {

/// Resolves the dynamic dims of `t`: dim 0 -> batch, dim 1 -> `dim1`, and any
/// other dynamic dim -> 1.
double numElements(Type type, const CostContext &ctx, int64_t dim1) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t)
    return 0;
  double n = 1;
  for (int64_t i = 0; i < t.getRank(); ++i) {
    int64_t d = t.getDimSize(i);
    if (ShapedType::isDynamic(d))
      d = i == 0 ? ctx.batch : (i == 1 ? dim1 : 1);
    n *= static_cast<double>(d);
  }
  return n;
}

double elementBytes(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t)
    return 0;
  return (t.getElementType().getIntOrFloatBitWidth() + 7) / 8;
}

double bytesOf(Value v, const CostContext &ctx, int64_t dim1) {
  return numElements(v.getType(), ctx, dim1) * elementBytes(v.getType());
}

/// Bytes of every operand and result, all with the sequence length as dim 1.
double ioBytes(Operation *op, const CostContext &ctx) {
  double bytes = 0;
  for (Value v : op->getOperands())
    bytes += bytesOf(v, ctx, ctx.seqLen);
  for (Value v : op->getResults())
    bytes += bytesOf(v, ctx, ctx.seqLen);
  return bytes;
}

/// Rows of an activation [batch, seq, ...features]: all dims but the last.
double rows(Value v, const CostContext &ctx) {
  auto t = cast<RankedTensorType>(v.getType());
  double n = numElements(t, ctx, ctx.seqLen);
  int64_t last = t.getDimSize(t.getRank() - 1);
  return ShapedType::isDynamic(last) ? n : n / static_cast<double>(last);
}

int64_t staticDim(Value v, int64_t d) {
  int64_t x = cast<RankedTensorType>(v.getType()).getDimSize(d);
  return ShapedType::isDynamic(x) ? 1 : x;
}

/// Gate: W1 x (2 D Dg), bias + SiLU (~5 Dg), w2 dot (2 Dg), sigmoid (~5).
double gateFlops(double tokens, int64_t d, int64_t dg) {
  return tokens * (2.0 * d * dg + 7.0 * dg + 6.0);
}

/// Building level `level` from level-1 inputs: per child and feature a
/// multiply-add (mean, conv) or a compare (max), plus the mass sums.
double levelFlops(const ::hag::PyramidParams &p, int64_t level,
                  const CostContext &ctx) {
  double below = ::hag::levelLength(p.ratio, level - 1, ctx.seqLen);
  double perChild = p.compress == ::hag::Compress::Max ? 1.0 : 2.0;
  if (p.compress == ::hag::Compress::Conv)
    perChild = 3.0;
  return ctx.batch * (below * 2.0 * p.kvDim() * perChild + below);
}

/// Summaries from running prefix sums of g*k, g*v and g (spec section 12):
/// 2 multiply-adds per raw token and feature, then one division per summary
/// token and feature.
double summaryFlops(const ::hag::PyramidParams &p, const CostContext &ctx) {
  int64_t levels = ::hag::staticLevels(p);
  double tokens = 0;
  int64_t blocks = ::hag::numQueryBlocks(p.block, ctx.seqLen);
  if (p.causal) {
    for (int64_t b = 0; b < blocks; ++b)
      tokens +=
          ::hag::computeBlockWindows(p, ctx.seqLen, levels, b).summaryTokens;
  } else {
    tokens = std::min<int64_t>(p.summary, ctx.seqLen);
  }
  return ctx.batch *
         (ctx.seqLen * (4.0 * p.kvDim() + 1) + tokens * (2.0 * p.kvDim() + 1));
}

/// The spec's attention FLOPs: 4 d sum_i K(i) per head (QK^T and PV).
double attentionFlops(const ::hag::PyramidParams &p, const CostContext &ctx) {
  ::hag::KeyCounts kc = ::hag::countKeys(p, ctx.seqLen);
  return 4.0 * p.headDim * static_cast<double>(kc.totalKeys) * p.heads *
         ctx.batch;
}

} // namespace

OpCost EmbeddingOp::estimateCost(const CostContext &ctx) {
  // A gather: read one table row per token, write it.
  double out = bytesOf(getResult(), ctx, ctx.seqLen);
  return {0, bytesOf(getTokens(), ctx, ctx.seqLen) + 2 * out};
}

OpCost LinearOp::estimateCost(const CostContext &ctx) {
  double r = rows(getInput(), ctx);
  double out = staticDim(getWeight(), 0), in = staticDim(getWeight(), 1);
  return {r * out * (2.0 * in + (getBias() ? 1.0 : 0.0)), ioBytes(*this, ctx)};
}

OpCost RopeOp::estimateCost(const CostContext &ctx) {
  // Per pair: 4 multiplies, 2 adds; cos/sin per pair and position.
  double n = numElements(getInput().getType(), ctx, ctx.seqLen);
  return {n * 3.0, ioBytes(*this, ctx)};
}

OpCost RMSNormOp::estimateCost(const CostContext &ctx) {
  double n = numElements(getInput().getType(), ctx, ctx.seqLen);
  return {n * 4.0, ioBytes(*this, ctx)};
}

OpCost SwiGLUOp::estimateCost(const CostContext &ctx) {
  double r = rows(getInput(), ctx);
  double d = staticDim(getWGate(), 1), f = staticDim(getWGate(), 0);
  return {r * (3 * 2.0 * d * f + 6.0 * f), ioBytes(*this, ctx)};
}

OpCost AddOp::estimateCost(const CostContext &ctx) {
  return {numElements(getResult().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost AllReduceOp::estimateCost(const CostContext &ctx) {
  // One addition per element and rank; the bytes are this rank's own
  // input and result (the traffic on the wire depends on the algorithm).
  return {numElements(getResult().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost CopyToGroupOp::estimateCost(const CostContext &ctx) {
  // The identity: no work in the forward pass.
  return {0.0, 0.0};
}

OpCost ScaleByOp::estimateCost(const CostContext &ctx) {
  return {numElements(getResult().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost InnerProductOp::estimateCost(const CostContext &ctx) {
  return {2.0 * numElements(getLhs().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost CrossEntropyOp::estimateCost(const CostContext &ctx) {
  // max, exp-sum and log per row: ~4 flops per logit.
  return {numElements(getLogits().getType(), ctx, ctx.seqLen) * 4.0,
          ioBytes(*this, ctx)};
}

OpCost MemoryGateOp::estimateCost(const CostContext &ctx) {
  double tokens = rows(getInput(), ctx);
  return {gateFlops(tokens, staticDim(getW1(), 1), staticDim(getW1(), 0)),
          ioBytes(*this, ctx)};
}

OpCost BuildLevelOp::estimateCost(const CostContext &ctx) {
  ::hag::PyramidParams p = getConfig().toParams();
  int64_t level = getLevelAttr().getInt();
  int64_t below = ::hag::levelLength(p.ratio, level - 1, ctx.seqLen);
  int64_t above = ::hag::levelLength(p.ratio, level, ctx.seqLen);
  double bytes = 0;
  for (Value v : {getKeys(), getValues(), getMass()})
    bytes += bytesOf(v, ctx, below);
  for (Value v : getResults())
    bytes += bytesOf(v, ctx, above);
  if (getConvKeys())
    bytes += bytesOf(getConvKeys(), ctx, 1) + bytesOf(getConvValues(), ctx, 1);
  return {levelFlops(p, level, ctx), bytes};
}

OpCost GlobalSummaryOp::estimateCost(const CostContext &ctx) {
  ::hag::PyramidParams p = getConfig().toParams();
  int64_t blocks = p.causal ? ::hag::numQueryBlocks(p.block, ctx.seqLen) : 1;
  double bytes = 0;
  for (Value v : getOperands())
    bytes += bytesOf(v, ctx, ctx.seqLen);
  for (Value v : getResults())
    bytes += bytesOf(v, ctx, blocks);
  return {summaryFlops(p, ctx), bytes};
}

OpCost CrossLevelAttentionOp::estimateCost(const CostContext &ctx) {
  ::hag::PyramidParams p = getConfig().toParams();
  double bytes = 0;
  for (Value v : {getQueries(), getKeys(), getValues(), getGate(), getResult()})
    bytes += bytesOf(v, ctx, ctx.seqLen);
  for (auto [i, k] : llvm::enumerate(getLevelKeys())) {
    int64_t n = ::hag::levelLength(p.ratio, i + 2, ctx.seqLen);
    bytes += bytesOf(k, ctx, n) + bytesOf(getLevelValues()[i], ctx, n) +
             bytesOf(getLevelMasses()[i], ctx, n);
  }
  int64_t blocks = p.causal ? ::hag::numQueryBlocks(p.block, ctx.seqLen) : 1;
  for (Value v : {getSummaryKeys(), getSummaryValues(), getSummaryMass()})
    bytes += bytesOf(v, ctx, blocks);
  return {attentionFlops(p, ctx), bytes};
}

OpCost PyramidAttentionOp::estimateCost(const CostContext &ctx) {
  ::hag::PyramidParams p = getConfig().toParams();
  double flops = attentionFlops(p, ctx) + summaryFlops(p, ctx) +
                 gateFlops(rows(getGateInput(), ctx), staticDim(getGateW1(), 1),
                           staticDim(getGateW1(), 0));
  int64_t levels = ::hag::staticLevels(p);
  for (int64_t l = 2; l < levels; ++l)
    flops += levelFlops(p, l, ctx);
  // Levels and summaries stay on chip in the fused form: only the inputs,
  // the weights and the output move.
  return {flops, ioBytes(*this, ctx)};
}

//===----------------------------------------------------------------------===//
// Optimizer ops: elementwise over the parameters (static shapes)
//===----------------------------------------------------------------------===//

OpCost AdamWOp::estimateCost(const CostContext &ctx) {
  // Decay, two moment updates, sqrt, divide, update: about 12 per element.
  double n = numElements(getParam().getType(), ctx, ctx.seqLen);
  return {12.0 * n, ioBytes(*this, ctx)};
}

OpCost ClipGradNormOp::estimateCost(const CostContext &ctx) {
  double n = 0;
  for (Value g : getGrads())
    n += numElements(g.getType(), ctx, ctx.seqLen);
  return {3.0 * n, ioBytes(*this, ctx)};
}

OpCost LRScheduleOp::estimateCost(const CostContext &ctx) {
  return {10.0, ioBytes(*this, ctx)};
}

OpCost AllFiniteOp::estimateCost(const CostContext &ctx) {
  double n = 0;
  for (Value t : getTensors())
    n += numElements(t.getType(), ctx, ctx.seqLen);
  return {n, ioBytes(*this, ctx)};
}

OpCost LossScaleUpdateOp::estimateCost(const CostContext &ctx) {
  return {4.0, ioBytes(*this, ctx)};
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

OpCost LinearBackwardOp::estimateCost(const CostContext &ctx) {
  // Two products of the forward's size: dy W and dy^T x.
  double r = rows(getInput(), ctx);
  double out = staticDim(getWeight(), 0), in = staticDim(getWeight(), 1);
  return {2.0 * 2.0 * r * out * in, ioBytes(*this, ctx)};
}

OpCost SumRowsOp::estimateCost(const CostContext &ctx) {
  return {numElements(getInput().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost EmbeddingBackwardOp::estimateCost(const CostContext &ctx) {
  return {numElements(getResultGrad().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost CrossEntropyBackwardOp::estimateCost(const CostContext &ctx) {
  return {4.0 * numElements(getLogits().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost RMSNormBackwardOp::estimateCost(const CostContext &ctx) {
  return {8.0 * numElements(getInput().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost SwiGLUActOp::estimateCost(const CostContext &ctx) {
  return {6.0 * numElements(getGate().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost SwiGLUActBackwardOp::estimateCost(const CostContext &ctx) {
  return {12.0 * numElements(getGate().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost GateActivationOp::estimateCost(const CostContext &ctx) {
  // Per hidden feature: the bias, SiLU and the dot with w2.
  return {6.0 * numElements(getHidden().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost GateBackwardOp::estimateCost(const CostContext &ctx) {
  return {10.0 * numElements(getHidden().getType(), ctx, ctx.seqLen),
          ioBytes(*this, ctx)};
}

OpCost PyramidAttentionBackwardOp::estimateCost(const CostContext &ctx) {
  // Recomputed scores and P V-shaped products: dP = dO V^T, dQ = dS K,
  // dK = dS^T Q, dV = P^T dO, plus the forward's QK^T: 2.5x the forward's
  // attention work; the level and summary gradients are O(N d).
  ::hag::PyramidParams p = getConfig().toParams();
  double flops = 2.5 * attentionFlops(p, ctx) + 2.0 * summaryFlops(p, ctx);
  int64_t levels = ::hag::staticLevels(p);
  for (int64_t l = 2; l < levels; ++l)
    flops += 2.0 * levelFlops(p, l, ctx);
  return {flops, ioBytes(*this, ctx)};
}
