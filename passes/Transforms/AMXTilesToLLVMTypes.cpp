//===- AMXTilesToLLVMTypes.cpp - hag-amx-tiles-to-llvm-types --------------===//
//
// The AMX matmul kernel keeps its four accumulator tiles in an scf.for over
// K. MLIR lowers amx ops with convert-vector-to-llvm{enable-amx}, but the
// scf -> cf -> llvm conversions have no rule for !amx.tile: the loop's
// block arguments would stay tiles and cf.br would not lower. This pass
// retypes the scf ops' tiles as !llvm.x86_amx (LLVM's tile type, which
// LLVM carries through phis to its tile register allocator) with
// unrealized casts at the amx ops; the AMX lowering consumes them.
//
//===----------------------------------------------------------------------===//

#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMTypes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Patterns.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGAMXTILESTOLLVMTYPES
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;

namespace {

struct AMXTilesToLLVMTypesPass
    : mlir::hag::impl::HAGAMXTilesToLLVMTypesBase<AMXTilesToLLVMTypesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    bool anyTile = false;
    module.walk([&](scf::ForOp loop) {
      for (Type t : loop.getResultTypes())
        anyTile |= isa<amx::TileType>(t);
    });
    module.walk([&](scf::IfOp branch) {
      for (Type t : branch.getResultTypes())
        anyTile |= isa<amx::TileType>(t);
    });
    if (!anyTile)
      return;

    MLIRContext *ctx = &getContext();
    TypeConverter converter;
    converter.addConversion([](Type t) { return t; });
    converter.addConversion([ctx](amx::TileType) -> Type {
      return LLVM::LLVMX86AMXType::get(ctx);
    });
    auto cast = [](OpBuilder &b, Type type, ValueRange inputs,
                   Location loc) -> Value {
      return UnrealizedConversionCastOp::create(b, loc, type, inputs)
          .getResult(0);
    };
    converter.addSourceMaterialization(cast);
    converter.addTargetMaterialization(cast);

    ConversionTarget target(*ctx);
    RewritePatternSet patterns(ctx);
    scf::populateSCFStructuralTypeConversionsAndLegality(converter, patterns,
                                                         target);
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
