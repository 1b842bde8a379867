//===- CudaKernels.cpp - the CUDA kernel library --------------------------===//

#include "CudaKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;
using namespace mlir::hag;

/// kernels/cuda/library.mlir, embedded at build time.
static const char kCudaLibrarySource[] =
#include "CudaLibrary.inc"
    ;

/// `func.func private @hag_matmul_nt(memref<?x?xf32> A [M, K], B [N, K],
/// C [M, N])`, without a body.
static func::FuncOp createMatmulFunction(OpBuilder &b, Location loc) {
  auto dyn2 = MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                              b.getF32Type());
  auto fn = func::FuncOp::create(b, loc, "hag_matmul_nt",
                                 b.getFunctionType({dyn2, dyn2, dyn2}, {}));
  fn.setPrivate();
  return fn;
}

/// func.func private @hag_matmul_nt(A [M, K], B [N, K], C [M, N]): launches
/// the Tensor Core kernel (its 16-byte-load version when K % 4 = 0) on a grid
/// of ceil(N / 128) x ceil(M / 128) blocks (nothing to launch when C is empty).
/// The grid's y extent (M / 128 < 65536) allows 8M rows.
static void buildMatmulWrapper(OpBuilder &b, Location loc,
                               gpu::GPUModuleOp kernels) {
  func::FuncOp fn = createMatmulFunction(b, loc);
  Block *entry = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(entry);
  Value A = entry->getArgument(0), B = entry->getArgument(1),
        C = entry->getArgument(2);
  auto idx = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  Value M = memref::DimOp::create(b, loc, A, 0);
  Value N = memref::DimOp::create(b, loc, B, 0);
  auto ceilDiv = [&](Value x, int64_t d) {
    Value s = arith::AddIOp::create(b, loc, x, idx(d - 1));
    return arith::DivUIOp::create(b, loc, s, idx(d)).getResult();
  };
  Value gx = ceilDiv(N, cudaMatmulBlockN());
  Value gy = ceilDiv(M, cudaMatmulBlockM());
  Value zero = idx(0);
  Value any = arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, M, zero),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, N, zero));
  auto ifOp = scf::IfOp::create(b, loc, any, /*withElse=*/false);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    // K % 4 = 0 (every model width in practice): the kernel with 16-byte
    // loads, whose rows are then 16-byte aligned.
    Value K = memref::DimOp::create(b, loc, A, 1);
    Value rem = arith::RemUIOp::create(b, loc, K, idx(4));
    Value aligned =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, rem, zero);
    auto pick = scf::IfOp::create(b, loc, aligned, /*withElse=*/true);
    for (auto [block, name] :
         {std::pair{pick.thenBlock(), "hag_matmul_nt_f16_v4"},
          std::pair{pick.elseBlock(), "hag_matmul_nt_f16"}}) {
      b.setInsertionPointToStart(block);
      auto kernel = kernels.lookupSymbol<gpu::GPUFuncOp>(name);
      Value one = idx(1);
      gpu::LaunchFuncOp::create(
          b, loc, kernel, gpu::KernelDim3{gx, gy, one},
          gpu::KernelDim3{idx(cudaMatmulThreads()), one, one},
          /*dynamicSharedMemorySize=*/Value(), ValueRange{A, B, C});
    }
  }
  func::ReturnOp::create(b, loc);
}

Location mlir::hag::cudaLibraryLoc(MLIRContext *ctx) {
  return NameLoc::get(StringAttr::get(ctx, "hag CUDA kernel library"));
}

LogicalResult mlir::hag::loadCudaKernelLibrary(ModuleOp module) {
  MLIRContext *ctx = module.getContext();
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  UnitAttr::get(ctx));
  if (failed(loadKernelLibrary(module, "hag_gate_epilogue", kCudaLibrarySource,
                               "cuda/library.mlir")))
    return failure();
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  // The library's own code has no place in the model's source.
  Location loc = cudaLibraryLoc(ctx);
  // Declared only: the launches' memory effects are unknown to buffer
  // deallocation; defineCudaKernelLaunchers adds the bodies after it.
  // library.mlir declares it for its callers (the gradients' products);
  // its launches are the library's, not a line of that file.
  if (auto decl = module.lookupSymbol<func::FuncOp>("hag_matmul_nt"))
    decl->setLoc(loc);
  else
    createMatmulFunction(b, loc);
  return success();
}

/// The emulator's hag_matmul_nt: C = A B^T as a parallel loop over C with
/// the Tensor Core kernel's numerics (operands rounded to f16, products
/// summed in f32), which hag-map-loops-to-gpu{emulate} maps like any loop.
static void buildEmulatedMatmul(OpBuilder &b, Location loc) {
  func::FuncOp fn = createMatmulFunction(b, loc);
  Block *entry = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(entry);
  Value A = entry->getArgument(0), B = entry->getArgument(1),
        C = entry->getArgument(2);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value M = memref::DimOp::create(b, loc, A, 0);
  Value K = memref::DimOp::create(b, loc, A, 1);
  Value N = memref::DimOp::create(b, loc, B, 0);
  Value fzero =
      arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(0.0f));
  auto toHalf = [&](OpBuilder &nb, Location l, Value v) {
    Value h = arith::TruncFOp::create(nb, l, nb.getF16Type(), v);
    return arith::ExtFOp::create(nb, l, nb.getF32Type(), h).getResult();
  };
  scf::ParallelOp::create(
      b, loc, ValueRange{zero, zero}, ValueRange{M, N}, ValueRange{one, one},
      [&](OpBuilder &nb, Location l, ValueRange ij) {
        auto dot = scf::ForOp::create(
            nb, l, zero, K, one, ValueRange{fzero},
            [&](OpBuilder &kb, Location kl, Value k, ValueRange acc) {
              Value a = memref::LoadOp::create(kb, kl, A, ValueRange{ij[0], k});
              Value w = memref::LoadOp::create(kb, kl, B, ValueRange{ij[1], k});
              Value p = math::FmaOp::create(kb, kl, toHalf(kb, kl, a),
                                            toHalf(kb, kl, w), acc[0]);
              scf::YieldOp::create(kb, kl, p);
            });
        memref::StoreOp::create(nb, l, dot.getResult(0), C, ij);
      });
  func::ReturnOp::create(b, loc);
}

/// The library's kernels declared with `hag.emulated_by` (the Tensor Core
/// attention @hag_gpu_attention_tc<d> of attention_vector.mlir, the gate
/// epilogue of library.mlir): bodies that launch the C++-built kernels, or
/// in the emulator (which cannot run warp-level code) bodies that call the
/// function `hag.emulated_by` names (the same computation as loops). The
/// emulation functions are erased when unused, before any of their loops
/// is mapped.
static LogicalResult defineDeclaredKernels(ModuleOp module, bool emulate) {
  SmallVector<std::pair<func::FuncOp, func::FuncOp>> decls; // (decl, by)
  llvm::SetVector<func::FuncOp> emulations;
  for (auto fn : module.getOps<func::FuncOp>()) {
    auto by = fn->getAttrOfType<FlatSymbolRefAttr>("hag.emulated_by");
    if (!by || !fn.isExternal())
      continue;
    auto emulation = module.lookupSymbol<func::FuncOp>(by.getAttr());
    if (!emulation)
      return fn.emitError() << "hag.emulated_by names " << by
                            << ", which the module does not define";
    emulations.insert(emulation);
    decls.push_back({fn, emulation});
  }
  OpBuilder b(module.getContext());
  SmallVector<std::pair<func::FuncOp, int64_t>> attention;
  SmallVector<func::FuncOp> gates;
  for (auto [decl, emulation] : decls) {
    decl->removeAttr("hag.emulated_by");
    if (SymbolTable::symbolKnownUseEmpty(decl, module)) {
      decl.erase();
      continue;
    }
    if (emulate) {
      Block *entry = decl.addEntryBlock();
      b.setInsertionPointToStart(entry);
      func::CallOp::create(b, decl.getLoc(), emulation,
                           ValueRange(entry->getArguments()));
      func::ReturnOp::create(b, decl.getLoc());
      continue;
    }
    StringRef name = decl.getSymName();
    int64_t d = 0;
    if (name == "hag_gate_epilogue")
      gates.push_back(decl);
    else if (name.consume_front("hag_gpu_attention_tc") &&
             !name.getAsInteger(10, d))
      attention.push_back({decl, d});
  }
  for (func::FuncOp emulation : emulations)
    if (SymbolTable::symbolKnownUseEmpty(emulation, module))
      emulation.erase();
  Location loc = cudaLibraryLoc(module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  for (func::FuncOp gate : gates)
    buildCudaGateLauncher(b, gate, buildCudaGateKernel(b, loc, gate));
  if (attention.empty())
    return success();
  SmallVector<int64_t> sizes;
  for (auto [decl, d] : attention)
    sizes.push_back(d);
  auto kernels = buildCudaAttentionKernels(b, loc, sizes);
  for (auto [decl, d] : attention)
    buildCudaAttentionLauncher(b, decl, d, kernels);
  return success();
}

LogicalResult mlir::hag::defineCudaKernelLaunchers(ModuleOp module,
                                                   bool emulate) {
  if (failed(defineDeclaredKernels(module, emulate)))
    return failure();
  auto decl = module.lookupSymbol<func::FuncOp>("hag_matmul_nt");
  if (!decl || !decl.isExternal())
    return success();
  OpBuilder b(module.getContext());
  b.setInsertionPoint(decl);
  if (emulate) {
    buildEmulatedMatmul(b, decl.getLoc());
    decl.erase();
    return success();
  }
  b.setInsertionPointToEnd(module.getBody());
  auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("hag_cuda_matmul");
  if (!kernels)
    kernels = buildCudaMatmulKernels(b, decl.getLoc());
  b.setInsertionPoint(decl);
  buildMatmulWrapper(b, decl.getLoc(), kernels);
  decl.erase();
  return success();
}
