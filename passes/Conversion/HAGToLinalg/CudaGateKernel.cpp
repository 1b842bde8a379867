//===- CudaGateKernel.cpp - the memory gate's epilogue, a warp per row ----===//
//
// The CUDA library's @hag_gate_epilogue (spec section 2, after the hidden
// projection hid = x W1^T): g[b, i] = sigmoid((w2 . SiLU(hid[b, i, :] + b1)
// + b2) / tau). One warp per row: lane l sums features l, l + 32, ... (so a
// warp's loads are 32 consecutive floats of the row), the lanes' partial
// sums meet through xor shuffles, lane 0 applies the sigmoid and stores.
// 8 rows per block of 256 threads. (The loop version in cuda/library.mlir,
// one thread per row, read 32 rows 2 KiB apart per warp load; it remains
// the emulator's.)
//
//===----------------------------------------------------------------------===//

#include "CudaKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

using namespace mlir;

static constexpr int64_t kThreads = 256;
static constexpr int64_t kRowsPerBlock = kThreads / 32;
static constexpr const char *kKernelName = "hag_gate_epilogue_warp";

/// sigmoid(x) = 1 / (1 + exp(-x)), as the loop version computes it.
static Value sigmoid(OpBuilder &b, Location loc, Value x) {
  Value one =
      arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(1.0f));
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, one,
                               arith::AddFOp::create(b, loc, one, e));
}

gpu::GPUModuleOp mlir::hag::buildCudaGateKernel(OpBuilder &b, Location loc,
                                                func::FuncOp decl) {
  auto module = gpu::GPUModuleOp::create(b, loc, "hag_cuda_gate");
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  auto fn = gpu::GPUFuncOp::create(b, loc, kKernelName, decl.getFunctionType(),
                                   TypeRange{}, TypeRange{});
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  fn.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(kThreads), 1, 1}));
  b.setInsertionPointToStart(&fn.getBody().front());
  auto idx = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  Value hid = fn.getArgument(0), b1 = fn.getArgument(1), w2 = fn.getArgument(2),
        b2 = fn.getArgument(3), invTau = fn.getArgument(4),
        g = fn.getArgument(5);
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value block = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, loc, tid, idx(32));
  Value warp = arith::DivUIOp::create(b, loc, tid, idx(32));
  Value row = arith::AddIOp::create(
      b, loc, arith::MulIOp::create(b, loc, block, idx(kRowsPerBlock)), warp);
  Value bt = memref::DimOp::create(b, loc, hid, 0);
  Value n = memref::DimOp::create(b, loc, hid, 1);
  Value dg = memref::DimOp::create(b, loc, hid, 2);
  Value rows = arith::MulIOp::create(b, loc, bt, n);
  // The condition is the same for a warp's 32 lanes: the shuffles inside
  // see every lane.
  auto inRange = scf::IfOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, row, rows),
      /*withElse=*/false);
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(inRange.thenBlock());
    Value bi = arith::DivUIOp::create(b, loc, row, n);
    Value i = arith::RemUIOp::create(b, loc, row, n);
    Value zero =
        arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(0.0f));
    auto loop = scf::ForOp::create(b, loc, lane, dg, idx(32), ValueRange{zero});
    {
      OpBuilder::InsertionGuard g3(b);
      b.setInsertionPointToStart(loop.getBody());
      Value j = loop.getInductionVar();
      Value h = memref::LoadOp::create(b, loc, hid, ValueRange{bi, i, j});
      Value x = arith::AddFOp::create(
          b, loc, h, memref::LoadOp::create(b, loc, b1, ValueRange{j}));
      Value s = arith::MulFOp::create(b, loc, x, sigmoid(b, loc, x));
      Value w = memref::LoadOp::create(b, loc, w2, ValueRange{j});
      scf::YieldOp::create(b, loc,
                           ValueRange{math::FmaOp::create(
                               b, loc, s, w, loop.getRegionIterArgs()[0])});
    }
    Value sum = loop.getResult(0);
    for (int32_t offset : {16, 8, 4, 2, 1})
      sum = arith::AddFOp::create(
          b, loc, sum,
          gpu::ShuffleOp::create(b, loc, sum, offset, 32, gpu::ShuffleMode::XOR)
              .getShuffleResult());
    auto first = scf::IfOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane, idx(0)),
        /*withElse=*/false);
    b.setInsertionPointToStart(first.thenBlock());
    Value z = arith::AddFOp::create(
        b, loc, sum, memref::LoadOp::create(b, loc, b2, ValueRange{idx(0)}));
    z = arith::MulFOp::create(b, loc, z, invTau);
    memref::StoreOp::create(b, loc, sigmoid(b, loc, z), g, ValueRange{bi, i});
  }
  gpu::ReturnOp::create(b, loc);
  return module;
}

void mlir::hag::buildCudaGateLauncher(OpBuilder &b, func::FuncOp decl,
                                      gpu::GPUModuleOp kernels) {
  Location loc = hag::cudaLibraryLoc(decl.getContext());
  Block *entry = decl.addEntryBlock();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(entry);
  auto idx = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v).getResult();
  };
  Value hid = entry->getArgument(0);
  Value rows =
      arith::MulIOp::create(b, loc, memref::DimOp::create(b, loc, hid, 0),
                            memref::DimOp::create(b, loc, hid, 1));
  Value blocks = arith::DivUIOp::create(
      b, loc, arith::AddIOp::create(b, loc, rows, idx(kRowsPerBlock - 1)),
      idx(kRowsPerBlock));
  auto any = scf::IfOp::create(
      b, loc,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, rows, idx(0)),
      /*withElse=*/false);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(any.thenBlock());
    Value one = idx(1);
    gpu::LaunchFuncOp::create(
        b, loc, kernels.lookupSymbol<gpu::GPUFuncOp>(kKernelName),
        gpu::KernelDim3{blocks, one, one},
        gpu::KernelDim3{idx(kThreads), one, one},
        /*dynamicSharedMemorySize=*/Value(), ValueRange(entry->getArguments()));
  }
  func::ReturnOp::create(b, loc);
}
