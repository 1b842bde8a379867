//===- HostMemory.h - which buffers of a CUDA host function are on the host //
//
// In a CUDA artifact's host functions every buffer is in device memory
// (arguments, memref.alloc, results of calls) except those rooted in a
// memref.alloca (the host stack) or a memref.get_global (a host constant;
// kernels get their own copy). Shared by hag-map-loops-to-gpu and
// hag-check-host-code.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_CONVERSION_HAGTOGPU_HOSTMEMORY_H
#define HAG_CONVERSION_HAGTOGPU_HOSTMEMORY_H

#include "mlir/Dialect/MemRef/IR/MemRef.h"
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

/// Whether `v` (a memref) is host memory: the stack or a host global.
inline bool isHostMemory(Value v) {
  Value root = memrefRoot(v);
  return root.getDefiningOp<memref::AllocaOp>() ||
         root.getDefiningOp<memref::GetGlobalOp>();
}

} // namespace mlir::hag

#endif // HAG_CONVERSION_HAGTOGPU_HOSTMEMORY_H
