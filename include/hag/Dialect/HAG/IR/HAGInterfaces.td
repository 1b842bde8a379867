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

#endif // HAG_INTERFACES_TD
