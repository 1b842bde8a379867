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
