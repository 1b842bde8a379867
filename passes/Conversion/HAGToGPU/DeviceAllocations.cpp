//===- DeviceAllocations.cpp - hag-device-allocations ---------------------===//

#include "hag/Conversion/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGDEVICEALLOCATIONS
#include "hag/Conversion/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;

namespace {

struct HAGDeviceAllocationsPass
    : mlir::hag::impl::HAGDeviceAllocationsBase<HAGDeviceAllocationsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // The host module's own symbols only: GPU modules and binaries are
    // separate symbol tables and are not walked into.
    // finalize-memref-to-llvm{use-generic-functions} calls these for
    // memref.alloc/dealloc and nothing else (malloc/free of other host
    // code stay as they are).
    const std::pair<StringRef, StringRef> renames[] = {
        {"_mlir_memref_to_llvm_alloc", "hagrt_cuda_alloc"},
        {"_mlir_memref_to_llvm_aligned_alloc", "hagrt_cuda_aligned_alloc"},
        {"_mlir_memref_to_llvm_free", "hagrt_cuda_free"}};
    for (auto [from, to] : renames) {
      auto decl = module.lookupSymbol<LLVM::LLVMFuncOp>(from);
      if (!decl)
        continue;
      if (module.lookupSymbol(to)) {
        decl.emitError() << "hag-device-allocations: the module already "
                            "defines '"
                         << to << "'";
        return signalPassFailure();
      }
      if (failed(SymbolTable::replaceAllSymbolUses(
              decl, StringAttr::get(&getContext(), to), module)))
        return signalPassFailure();
      SymbolTable::setSymbolName(decl, to);
    }
  }
};

} // namespace
