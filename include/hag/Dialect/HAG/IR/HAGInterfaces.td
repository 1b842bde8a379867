//===- HAGInterfaces.td - hag op interfaces ----------------*- tablegen -*-===//

#ifndef HAG_INTERFACES_TD
#define HAG_INTERFACES_TD

include "mlir/IR/OpBase.td"

def HAG_CostOpInterface : OpInterface<"CostOpInterface"> {
  let cppNamespace = "::mlir::hag";
  let description = [{
    An op that can say how much work it does for a given batch size and
    sequence length: floating-point operations (a multiply-add counts 2) and
    the bytes it must read and write at least once (operands and results).
    The cost model (`hag-compile --report=cost`) sums these over a function.
  }];
  let methods = [
    InterfaceMethod<
      "The FLOPs and bytes of this op at the given batch size and length.",
      "::mlir::hag::OpCost", "estimateCost",
      (ins "const ::mlir::hag::CostContext &":$ctx)>
  ];
}

def HAG_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::mlir::hag";
  let description = [{
    An op that declares its vector-Jacobian product for reverse-mode
    autodiff (`hag-autodiff`): given the gradients of the loss with respect
    to its results, it builds (after the op, with `b`) the gradients with
    respect to its operands. A null result gradient means the result does
    not reach the loss; a null operand gradient means the operand gets none
    (token ids).
  }];
  let methods = [
    InterfaceMethod<
      "Builds the operands' gradients into `operandGrads` (one per operand).",
      "::llvm::LogicalResult", "buildVJP",
      (ins "::mlir::OpBuilder &":$b, "::mlir::ValueRange":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // HAG_INTERFACES_TD
