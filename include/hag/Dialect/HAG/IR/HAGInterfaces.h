//===- HAGInterfaces.h - hag op interfaces ----------------------*- C++ -*-===//

#ifndef HAG_DIALECT_HAG_IR_HAGINTERFACES_H
#define HAG_DIALECT_HAG_IR_HAGINTERFACES_H

#include "mlir/IR/OpDefinition.h"

#include <cstdint>

namespace mlir::hag {

/// The sizes a cost is evaluated at: dynamic batch dimensions (dim 0 of an
/// activation) take `batch`, dynamic sequence dimensions (dim 1) `seqLen`.
struct CostContext {
  int64_t seqLen = 1;
  int64_t batch = 1;
};

/// Work of one op: FLOPs (a multiply-add is 2) and the bytes its operands and
/// results occupy (each read or written once: a lower bound on traffic).
struct OpCost {
  double flops = 0;
  double bytes = 0;
  OpCost &operator+=(const OpCost &o) {
    flops += o.flops;
    bytes += o.bytes;
    return *this;
  }
};

} // namespace mlir::hag

#include "hag/Dialect/HAG/IR/HAGInterfaces.h.inc"

#endif // HAG_DIALECT_HAG_IR_HAGINTERFACES_H
