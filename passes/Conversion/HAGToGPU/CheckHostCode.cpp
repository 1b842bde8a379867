//===- CheckHostCode.cpp - hag-check-host-code ----------------------------===//

#include "HostMemory.h"
#include "hag/Conversion/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGCHECKHOSTCODE
#include "hag/Conversion/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;

namespace {

struct HAGCheckHostCodePass
    : mlir::hag::impl::HAGCheckHostCodeBase<HAGCheckHostCodePass> {
  void runOnOperation() override {
    bool failedAny = false;
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      fn.walk<WalkOrder::PreOrder>([&](Operation *op) {
        if (isa<gpu::LaunchOp>(op))
          return WalkResult::skip();
        // Host memory handed to a kernel or a launcher.
        if (isa<gpu::LaunchFuncOp, func::CallOp>(op)) {
          for (Value v : op->getOperands())
            if (isa<MemRefType>(v.getType()) && hag::isHostMemory(v)) {
              op->emitError()
                  << "'" << op->getName().getStringRef()
                  << "' in host function '" << fn.getSymName()
                  << "' passes host memory (a stack buffer or host global) "
                     "where device memory is expected";
              failedAny = true;
            }
          return WalkResult::advance();
        }
        StringRef what;
        switch (hag::elementAccess(op)) {
        case hag::ElementAccess::Read:
          what = "reads";
          break;
        case hag::ElementAccess::Write:
          what = "writes";
          break;
        case hag::ElementAccess::Copy:
          what = "copies";
          break;
        case hag::ElementAccess::None:
          if (isa<affine::AffineLoadOp, affine::AffineStoreOp>(op))
            what = "accesses";
          else if (isa<scf::ParallelOp>(op))
            what = "loops over";
          else if (isa<linalg::LinalgOp>(op))
            what = "computes on";
          break;
        }
        if (what.empty())
          return WalkResult::advance();
        // Host stack and host constants are the host's to touch.
        if (!isa<scf::ParallelOp>(op) && hag::onlyHostMemory(op))
          return WalkResult::advance();
        op->emitError() << "'" << op->getName().getStringRef()
                        << "' in host function '" << fn.getSymName() << "' "
                        << what
                        << " device memory on the host: the CUDA lowering "
                           "could not move it into a kernel";
        failedAny = true;
        return WalkResult::skip();
      });
    }
    if (failedAny)
      signalPassFailure();
  }
};

} // namespace
