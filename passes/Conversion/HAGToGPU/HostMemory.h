//===- HostMemory.h - which buffers of a CUDA host function are on the host //
//
// In a CUDA artifact's host functions every buffer is in device memory
// (arguments, memref.alloc, results of calls) except those rooted in a
// memref.alloca (the host stack), a memref.get_global (a host constant;
// kernels get their own copy) or an entry point's argument marked
// `hagrt.host` (a scalar input such as the decoding position, which the
// runtime passes in host memory). Shared by hag-map-loops-to-gpu and
// hag-check-host-code.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_CONVERSION_HAGTOGPU_HOSTMEMORY_H
#define HAG_CONVERSION_HAGTOGPU_HOSTMEMORY_H

#include "hag/Conversion/Passes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::hag {

/// The buffer a memref value views (through casts, reshapes, subviews).
inline Value memrefRoot(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (auto view = dyn_cast<ViewLikeOpInterface>(def)) {
      v = view.getViewSource();
      continue;
    }
    if (auto cast = dyn_cast<memref::CastOp>(def)) {
      v = cast.getSource();
      continue;
    }
    break;
  }
  return v;
}

/// Whether `v` (a memref) is host memory: the stack, a host global or a
/// host argument.
inline bool isHostMemory(Value v) {
  Value root = memrefRoot(v);
  if (auto arg = dyn_cast<BlockArgument>(root))
    if (auto fn = dyn_cast<FunctionOpInterface>(arg.getOwner()->getParentOp()))
      return arg.getOwner()->isEntryBlock() &&
             fn.getArgAttr(arg.getArgNumber(), kHostArgumentAttr);
  return root.getDefiningOp<memref::AllocaOp>() ||
         root.getDefiningOp<memref::GetGlobalOp>();
}

/// How an op itself touches the elements of its memref operands.
enum class ElementAccess { None, Read, Write, Copy };

inline ElementAccess elementAccess(Operation *op) {
  if (isa<memref::LoadOp, vector::LoadOp, vector::TransferReadOp,
          vector::MaskedLoadOp, vector::GatherOp, vector::ExpandLoadOp>(op))
    return ElementAccess::Read;
  if (isa<memref::StoreOp, memref::AtomicRMWOp, memref::GenericAtomicRMWOp,
          vector::StoreOp, vector::TransferWriteOp, vector::MaskedStoreOp,
          vector::ScatterOp, vector::CompressStoreOp>(op))
    return ElementAccess::Write;
  if (isa<memref::CopyOp>(op))
    return ElementAccess::Copy;
  return ElementAccess::None;
}

/// Whether every memref operand of `op` is host memory (false when it has
/// none).
inline bool onlyHostMemory(Operation *op) {
  bool any = false;
  for (Value v : op->getOperands())
    if (isa<MemRefType>(v.getType())) {
      if (!isHostMemory(v))
        return false;
      any = true;
    }
  return any;
}

} // namespace mlir::hag

#endif // HAG_CONVERSION_HAGTOGPU_HOSTMEMORY_H
