//===- HAGVJP.cpp - vector-Jacobian products of hag ops -------------------===//
//
// DifferentiableOpInterface implementations: each op builds the gradients of
// its operands from the gradients of its results (reverse mode, used by
// hag-autodiff). A gradient has the type of its primal value.
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace mlir::hag;

LogicalResult AddOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &operandGrads) {
  Value dy = resultGrads[0];
  operandGrads.assign({dy, dy});
  return success();
}

LogicalResult AllReduceOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  if (getMean())
    return emitOpError() << "has no VJP with 'mean' (hag-data-parallel "
                            "averages gradients after hag-autodiff)";
  // The sum's gradient reaches every rank's input unchanged.
  operandGrads.assign({resultGrads[0]});
  return success();
}

LogicalResult CopyToGroupOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                      SmallVectorImpl<Value> &operandGrads) {
  Value dy = resultGrads[0];
  if (!dy) {
    operandGrads.assign({Value()});
    return success();
  }
  // Each rank's gradient covers its own heads: sum them.
  operandGrads.assign({AllReduceOp::create(b, getLoc(), dy.getType(), dy,
                                           getGroupAttr(), UnitAttr())
                           .getResult()});
  return success();
}

LogicalResult InnerProductOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  Value ds = resultGrads[0];
  if (!ds) {
    operandGrads.assign({Value(), Value()});
    return success();
  }
  operandGrads.assign(
      {ScaleByOp::create(b, getLoc(), getLhs().getType(), getRhs(), ds)
           .getResult(),
       ScaleByOp::create(b, getLoc(), getRhs().getType(), getLhs(), ds)
           .getResult()});
  return success();
}

LogicalResult LinearOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &operandGrads) {
  Value dy = resultGrads[0];
  auto back = LinearBackwardOp::create(
      b, getLoc(), TypeRange{getInput().getType(), getWeight().getType()}, dy,
      getInput(), getWeight());
  operandGrads.assign({back.getInputGrad(), back.getWeightGrad()});
  if (Value bias = getBias())
    operandGrads.push_back(
        SumRowsOp::create(b, getLoc(), bias.getType(), dy).getResult());
  return success();
}

LogicalResult EmbeddingOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                    SmallVectorImpl<Value> &operandGrads) {
  Value dt = EmbeddingBackwardOp::create(b, getLoc(), getTable().getType(),
                                         resultGrads[0], getTokens());
  operandGrads.assign({Value(), dt});
  return success();
}

LogicalResult CrossEntropyOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                       SmallVectorImpl<Value> &operandGrads) {
  Value dl = CrossEntropyBackwardOp::create(
      b, getLoc(), getLogits().getType(), resultGrads[0], getLogits(),
      getTokens());
  operandGrads.assign({dl, Value()});
  return success();
}

LogicalResult RopeOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                               SmallVectorImpl<Value> &operandGrads) {
  // The rotation is orthogonal: its transpose rotates by the negated angle.
  auto inv = RopeOp::create(b, getLoc(), getInput().getType(), resultGrads[0],
                            getPosition(), getHeadDimAttr(), getBaseAttr(),
                            getOffsetAttr(), getInverse() ? UnitAttr() : b.getUnitAttr());
  operandGrads.assign({inv.getResult()});
  if (getPosition())
    operandGrads.push_back(Value());
  return success();
}

LogicalResult RMSNormOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &operandGrads) {
  auto back = RMSNormBackwardOp::create(
      b, getLoc(), TypeRange{getInput().getType(), getScale().getType()},
      resultGrads[0], getInput(), getScale(), getEpsAttr());
  operandGrads.assign({back.getInputGrad(), back.getScaleGrad()});
  return success();
}

LogicalResult SwiGLUOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &operandGrads) {
  // Recompute a = x Wg^T, u = x Wu^T and h = SiLU(a) u, then go back
  // through W_down, the activation, and both input projections.
  Location loc = getLoc();
  auto xType = cast<RankedTensorType>(getInput().getType());
  SmallVector<int64_t> hidden(xType.getShape());
  hidden.back() = cast<RankedTensorType>(getWGate().getType()).getDimSize(0);
  auto hType = RankedTensorType::get(hidden, xType.getElementType());
  Value a = LinearOp::create(b, loc, hType, getInput(), getWGate(), Value());
  Value u = LinearOp::create(b, loc, hType, getInput(), getWUp(), Value());
  Value h = SwiGLUActOp::create(b, loc, hType, a, u);
  auto down = LinearBackwardOp::create(
      b, loc, TypeRange{hType, getWDown().getType()}, resultGrads[0], h,
      getWDown());
  auto act = SwiGLUActBackwardOp::create(b, loc, TypeRange{hType, hType},
                                         down.getInputGrad(), a, u);
  auto viaGate = LinearBackwardOp::create(
      b, loc, TypeRange{xType, getWGate().getType()}, act.getGateGrad(),
      getInput(), getWGate());
  auto viaUp = LinearBackwardOp::create(
      b, loc, TypeRange{xType, getWUp().getType()}, act.getUpGrad(),
      getInput(), getWUp());
  Value dx = AddOp::create(b, loc, viaGate.getInputGrad(), viaUp.getInputGrad());
  operandGrads.assign({dx, viaGate.getWeightGrad(), viaUp.getWeightGrad(),
                       down.getWeightGrad()});
  return success();
}

LogicalResult PyramidAttentionOp::buildVJP(OpBuilder &b, ValueRange resultGrads,
                                           SmallVectorImpl<Value> &operandGrads) {
  // Recompute the gate's hidden projection a = x W1^T and g (the backward
  // needs both), run the fused attention backward, then go back through the
  // gate's activation and its projection.
  Location loc = getLoc();
  PyramidConfigAttr config = getConfig();
  auto xType = cast<RankedTensorType>(getGateInput().getType());
  SmallVector<int64_t> hiddenShape(xType.getShape());
  hiddenShape.back() = cast<RankedTensorType>(getGateW1().getType()).getDimSize(0);
  auto hiddenType = RankedTensorType::get(hiddenShape, xType.getElementType());
  auto gateType = RankedTensorType::get(xType.getShape().drop_back(),
                                        xType.getElementType());
  FloatAttr tau = b.getF64FloatAttr(config.getTemperature().convertToDouble());
  Value hidden = LinearOp::create(b, loc, hiddenType, getGateInput(),
                                  getGateW1(), Value());
  Value g = GateActivationOp::create(b, loc, gateType, hidden, getGateB1(),
                                     getGateW2(), getGateB2(), tau);
  SmallVector<Type> convTypes(getConvKeys().getTypes());
  llvm::append_range(convTypes, getConvValues().getTypes());
  auto back = PyramidAttentionBackwardOp::create(
      b, loc, getQueries().getType(), getKeys().getType(),
      getValues().getType(), gateType, convTypes, resultGrads[0],
      getQueries(), getKeys(), getValues(), g, getResult(), getConvKeys(),
      getConvValues(), config);
  auto gate = GateBackwardOp::create(
      b, loc,
      TypeRange{hiddenType, getGateW2().getType(), getGateB2().getType()},
      back.getGateGrad(), hidden, getGateB1(), g, getGateW2(), tau);
  auto proj = LinearBackwardOp::create(
      b, loc, TypeRange{xType, getGateW1().getType()}, gate.getHiddenGrad(),
      getGateInput(), getGateW1());
  Value db1 = SumRowsOp::create(b, loc, getGateB1().getType(),
                                gate.getHiddenGrad());
  operandGrads.assign({back.getQueriesGrad(), back.getKeysGrad(),
                       back.getValuesGrad(), proj.getInputGrad(),
                       proj.getWeightGrad(), db1, gate.getW2Grad(),
                       gate.getB2Grad()});
  llvm::append_range(operandGrads, back.getConvGrads());
  return success();
}
