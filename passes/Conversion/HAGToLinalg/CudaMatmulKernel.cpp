//===- CudaMatmulKernel.cpp - the FP16 Tensor Core matmul kernel ----------===//
//
// Builds `gpu.module @hag_cuda_matmul` with the kernel behind every
// projection of a CUDA artifact: C = A B^T, A [M, K], B [N, K], C [M, N],
// f32 in memory, f16 operands on the Tensor Cores, f32 accumulation
// (`nvgpu.mma.sync` m16n8k16,
// `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32` in PTX; sm_80 and later).
//
// One block of 256 threads (8 warps, 2 x 4) computes a 128 x 128 tile of C;
// each warp a 64 x 32 sub-tile, 4 x 4 mma tiles of 16 x 8, 16 accumulators
// of vector<2x2xf32> in registers. Per 32-deep slice of K the block stages
// the A and B tiles in shared memory as f16 (rows padded to 40 halves so
// the fragment loads of the 8 row groups of a warp fall into different
// banks), then each warp loads its fragments in the m16n8k16 register
// layout of the PTX ISA (lane = 4 g + t: A rows g and g + 8, columns 2t,
// 2t + 1, 2t + 8, 2t + 9; B column g, rows 2t, 2t + 1, 2t + 8, 2t + 9) and
// issues 2 x 16 mma.sync. The next slice's global loads are issued before
// those mma's (held in registers as f16, stored to shared memory at the top
// of the next iteration). Global loads are coalesced (a warp reads 32
// consecutive floats of one row) and masked at the edges of M, N and K, so
// any shape is valid; the stores of C are masked per element.
//
//===----------------------------------------------------------------------===//

#include "CudaKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

using namespace mlir;

namespace {

// The tile configuration (see the file comment).
constexpr int64_t kBlockM = 128, kBlockN = 128, kBlockK = 32;
constexpr int64_t kWarpsM = 2, kWarpsN = 4;
constexpr int64_t kThreads = 32 * kWarpsM * kWarpsN;
constexpr int64_t kWarpM = kBlockM / kWarpsM; // 64
constexpr int64_t kWarpN = kBlockN / kWarpsN; // 32
constexpr int64_t kTilesM = kWarpM / 16;      // 4 mma tiles of 16 rows
constexpr int64_t kTilesN = kWarpN / 8;       // 4 mma tiles of 8 columns
constexpr int64_t kPad = 8;                   // halves of padding per row
constexpr int64_t kRowsPerPass = kThreads / kBlockK;     // 8 rows per pass
constexpr int64_t kSliceValues = kBlockM / kRowsPerPass; // 16 per thread
constexpr int64_t kSliceChunks = kBlockM * kBlockK / 4 / kThreads; // 4 x 4

struct KernelBuilder {
  OpBuilder &b;
  Location loc;
  /// Global loads of 4 consecutive floats (needs K % 4 = 0, which makes
  /// every row 16-byte aligned) instead of one float per load.
  bool vec4 = false;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value add(Value x, int64_t y) { return add(x, idx(y)); }
  Value mul(Value x, int64_t y) { return mul(x, idx(y)); }
  Value ult(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }

  /// Loads this thread's part of rows [row0, row0 + 128) x columns [k0,
  /// k0 + 32) of `src` (f32) as f16, zeros outside [0, rows) x [0, K) (so
  /// a slice past K loads zeros): 16 values, one per row r0 + 8 i at
  /// column tid % 32; with vec4, 4 vector<4xf16>, row (tid + 256 i) / 8 at
  /// columns 4 (tid % 8) .. + 3 (a warp reads 4 rows of 128 bytes).
  SmallVector<Value> loadSlice(Value src, Value row0, Value rows, Value k0,
                               Value K, Value tid) {
    Value zero = idx(0);
    SmallVector<Value> values;
    if (vec4) {
      auto v4 = VectorType::get({4}, b.getF32Type());
      auto h4 = VectorType::get({4}, b.getF16Type());
      Value zeros = arith::ConstantOp::create(b, loc, v4,
                                              DenseElementsAttr::get(v4, 0.0f));
      for (int64_t i = 0; i < kSliceChunks; ++i) {
        Value c = add(tid, i * kThreads);
        Value r = arith::DivUIOp::create(b, loc, c, idx(kBlockK / 4));
        Value col = mul(arith::RemUIOp::create(b, loc, c, idx(kBlockK / 4)), 4);
        Value gr = add(row0, r), gk = add(k0, col);
        // K % 4 = 0: a chunk is wholly inside or outside [0, K).
        Value in = arith::AndIOp::create(b, loc, ult(gr, rows), ult(gk, K));
        Value sr = arith::SelectOp::create(b, loc, in, gr, zero);
        Value sk = arith::SelectOp::create(b, loc, in, gk, zero);
        Value v =
            vector::LoadOp::create(b, loc, v4, src, ValueRange{sr, sk},
                                   /*nontemporal=*/false, llvm::Align(16));
        v = arith::SelectOp::create(b, loc, in, v, zeros);
        values.push_back(arith::TruncFOp::create(b, loc, h4, v).getResult());
      }
      return values;
    }
    Value col = arith::RemUIOp::create(b, loc, tid, idx(kBlockK));
    Value r0 = arith::DivUIOp::create(b, loc, tid, idx(kBlockK));
    Value gk = add(k0, col);
    Value kIn = ult(gk, K);
    Value fzero =
        arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(0.0f));
    for (int64_t i = 0; i < kBlockM / kRowsPerPass; ++i) {
      Value gr = add(row0, add(r0, i * kRowsPerPass));
      Value in = arith::AndIOp::create(b, loc, ult(gr, rows), kIn);
      // Out-of-range elements read element (0, 0), which exists whenever
      // the kernel runs (M, N >= 1; K >= 1 as every projection's K is a
      // model dimension, which the verifiers keep >= 1), and are replaced
      // by 0. The prologue loads slice 0 before the K loop, so K = 0 would
      // read it too.
      Value sr = arith::SelectOp::create(b, loc, in, gr, zero);
      Value sk = arith::SelectOp::create(b, loc, in, gk, zero);
      Value v = memref::LoadOp::create(b, loc, src, ValueRange{sr, sk});
      v = arith::SelectOp::create(b, loc, in, v, fzero);
      values.push_back(
          arith::TruncFOp::create(b, loc, b.getF16Type(), v).getResult());
    }
    return values;
  }

  /// Stores loadSlice's values into `tile` (f16, 128 x 40).
  void storeSlice(Value tile, ArrayRef<Value> values, Value tid) {
    if (vec4) {
      for (int64_t i = 0; i < kSliceChunks; ++i) {
        Value c = add(tid, i * kThreads);
        Value r = arith::DivUIOp::create(b, loc, c, idx(kBlockK / 4));
        Value col = mul(arith::RemUIOp::create(b, loc, c, idx(kBlockK / 4)), 4);
        vector::StoreOp::create(b, loc, values[i], tile, ValueRange{r, col},
                                /*nontemporal=*/false, llvm::Align(8));
      }
      return;
    }
    Value col = arith::RemUIOp::create(b, loc, tid, idx(kBlockK));
    Value r0 = arith::DivUIOp::create(b, loc, tid, idx(kBlockK));
    for (int64_t i = 0; i < kBlockM / kRowsPerPass; ++i)
      memref::StoreOp::create(b, loc, values[i], tile,
                              ValueRange{add(r0, i * kRowsPerPass), col});
  }

  /// Two consecutive halves of `tile` at (row, col): one 32-bit shared
  /// load (col is even and rows are 80 bytes apart).
  Value pair(Value tile, Value row, Value col) {
    auto t = VectorType::get({2}, b.getF16Type());
    return vector::LoadOp::create(b, loc, t, tile, ValueRange{row, col},
                                  /*nontemporal=*/false, llvm::Align(4));
  }
};

} // namespace

/// The kernel `name` (see the file comment); vec4: 16-byte global loads.
static void buildMatmulKernel(OpBuilder &b, Location loc, StringRef name,
                              bool vec4) {
  MLIRContext *ctx = b.getContext();
  OpBuilder::InsertionGuard guard(b);

  Type f32 = b.getF32Type(), f16 = b.getF16Type();
  auto dyn2 =
      MemRefType::get({ShapedType::kDynamic, ShapedType::kDynamic}, f32);
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  auto tileType = MemRefType::get({kBlockM, kBlockK + kPad}, f16,
                                  MemRefLayoutAttrInterface(), workgroup);
  static_assert(kBlockM == kBlockN, "one shared tile type for A and B");

  auto fnType = b.getFunctionType({dyn2, dyn2, dyn2}, {});
  auto fn = gpu::GPUFuncOp::create(b, loc, name, fnType,
                                   TypeRange{tileType, tileType}, TypeRange{});
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  fn.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(kThreads), 1, 1}));
  b.setInsertionPointToStart(&fn.getBody().front());
  KernelBuilder k{b, loc, vec4};

  Value A = fn.getArgument(0), B = fn.getArgument(1), C = fn.getArgument(2);
  // 16-byte aligned tiles (the fragment loads are 4-byte accesses; the
  // globals' default alignment is their element's).
  for (unsigned i = 0; i < 2; ++i)
    fn.setWorkgroupAttributionAttr(i, "llvm.align", b.getI64IntegerAttr(16));
  Value As = fn.getWorkgroupAttributions()[0];
  Value Bs = fn.getWorkgroupAttributions()[1];
  Value M = memref::DimOp::create(b, loc, A, 0);
  Value K = memref::DimOp::create(b, loc, A, 1);
  Value N = memref::DimOp::create(b, loc, B, 0);

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value by = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value lane = arith::RemUIOp::create(b, loc, tid, k.idx(32));
  Value warp = arith::DivUIOp::create(b, loc, tid, k.idx(32));
  Value g = arith::DivUIOp::create(b, loc, lane, k.idx(4));
  Value t2 = k.mul(arith::RemUIOp::create(b, loc, lane, k.idx(4)), 2);
  Value wm = arith::DivUIOp::create(b, loc, warp, k.idx(kWarpsN));
  Value wn = arith::RemUIOp::create(b, loc, warp, k.idx(kWarpsN));
  Value bm = k.mul(by, kBlockM), bn = k.mul(bx, kBlockN);
  // This warp's first row and column inside the block's tile.
  Value wRow = k.mul(wm, kWarpM), wCol = k.mul(wn, kWarpN);

  auto accType = VectorType::get({2, 2}, f32);
  Value accZero = arith::ConstantOp::create(
      b, loc, accType, DenseElementsAttr::get(accType, 0.0f));
  SmallVector<Value> init(kTilesM * kTilesN, accZero);
  // Software pipelining through registers: slice 0 is loaded before the
  // loop; each iteration stores the slice it carries into shared memory,
  // then issues the global loads of the next slice before its mma's, so
  // their latency overlaps the Tensor Core work.
  {
    SmallVector<Value> a0 = k.loadSlice(A, bm, M, k.idx(0), K, tid);
    SmallVector<Value> b0 = k.loadSlice(B, bn, N, k.idx(0), K, tid);
    init.append(a0.begin(), a0.end());
    init.append(b0.begin(), b0.end());
  }

  // ceil(K / 32) slices of K.
  Value kTiles =
      arith::DivUIOp::create(b, loc, k.add(K, kBlockK - 1), k.idx(kBlockK));
  auto loop = scf::ForOp::create(b, loc, k.idx(0), kTiles, k.idx(1), init);
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(loop.getBody());
    auto args = loop.getRegionIterArgs();
    constexpr int64_t nAcc = kTilesM * kTilesN;
    int64_t perSlice = vec4 ? kSliceChunks : kSliceValues;
    k.storeSlice(
        As,
        SmallVector<Value>(args.begin() + nAcc, args.begin() + nAcc + perSlice),
        tid);
    k.storeSlice(Bs,
                 SmallVector<Value>(args.begin() + nAcc + perSlice, args.end()),
                 tid);
    gpu::BarrierOp::create(b, loc);
    // The next slice (zeros past K).
    Value k1 = k.mul(k.add(loop.getInductionVar(), 1), kBlockK);
    SmallVector<Value> aNext = k.loadSlice(A, bm, M, k1, K, tid);
    SmallVector<Value> bNext = k.loadSlice(B, bn, N, k1, K, tid);

    SmallVector<Value> acc(args.begin(), args.begin() + nAcc);
    auto aType = VectorType::get({4, 2}, f16);
    auto bType = VectorType::get({2, 2}, f16);
    Value aZero = arith::ConstantOp::create(
        b, loc, aType,
        DenseElementsAttr::get(aType, APFloat::getZero(APFloat::IEEEhalf())));
    Value bZero = arith::ConstantOp::create(
        b, loc, bType,
        DenseElementsAttr::get(bType, APFloat::getZero(APFloat::IEEEhalf())));
    for (int64_t kk = 0; kk < kBlockK; kk += 16) {
      Value c0 = k.add(t2, kk), c8 = k.add(t2, kk + 8);
      SmallVector<Value> aFrag, bFrag;
      for (int64_t mt = 0; mt < kTilesM; ++mt) {
        Value r = k.add(k.add(wRow, g), mt * 16);
        Value r8 = k.add(r, 8);
        Value frag = aZero;
        Value parts[4] = {k.pair(As, r, c0), k.pair(As, r8, c0),
                          k.pair(As, r, c8), k.pair(As, r8, c8)};
        for (int64_t i = 0; i < 4; ++i)
          frag = vector::InsertOp::create(b, loc, parts[i], frag, i);
        aFrag.push_back(frag);
      }
      for (int64_t nt = 0; nt < kTilesN; ++nt) {
        Value n = k.add(k.add(wCol, g), nt * 8);
        Value frag = bZero;
        frag = vector::InsertOp::create(b, loc, k.pair(Bs, n, c0), frag, 0);
        frag = vector::InsertOp::create(b, loc, k.pair(Bs, n, c8), frag, 1);
        bFrag.push_back(frag);
      }
      for (int64_t mt = 0; mt < kTilesM; ++mt)
        for (int64_t nt = 0; nt < kTilesN; ++nt) {
          Value &c = acc[mt * kTilesN + nt];
          c = nvgpu::MmaSyncOp::create(b, loc, aFrag[mt], bFrag[nt], c,
                                       ArrayRef<int64_t>{16, 8, 16});
        }
    }
    gpu::BarrierOp::create(b, loc);
    acc.append(aNext.begin(), aNext.end());
    acc.append(bNext.begin(), bNext.end());
    scf::YieldOp::create(b, loc, acc);
  }

  // Masked stores: c[i][j] is row g + 8 i, column 2 t + j of the mma tile.
  for (int64_t mt = 0; mt < kTilesM; ++mt)
    for (int64_t nt = 0; nt < kTilesN; ++nt) {
      Value c = loop.getResult(mt * kTilesN + nt);
      for (int64_t i = 0; i < 2; ++i) {
        Value row = k.add(k.add(k.add(bm, wRow), g), mt * 16 + i * 8);
        for (int64_t j = 0; j < 2; ++j) {
          Value col = k.add(k.add(k.add(bn, wCol), t2), nt * 8 + j);
          Value in =
              arith::AndIOp::create(b, loc, k.ult(row, M), k.ult(col, N));
          auto ifOp = scf::IfOp::create(b, loc, in, /*withElse=*/false);
          OpBuilder::InsertionGuard g3(b);
          b.setInsertionPointToStart(ifOp.thenBlock());
          Value v =
              vector::ExtractOp::create(b, loc, c, ArrayRef<int64_t>{i, j});
          memref::StoreOp::create(b, loc, v, C, ValueRange{row, col});
        }
      }
    }
  gpu::ReturnOp::create(b, loc);
}

gpu::GPUModuleOp mlir::hag::buildCudaMatmulKernels(OpBuilder &b, Location loc) {
  auto module = gpu::GPUModuleOp::create(b, loc, "hag_cuda_matmul");
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  buildMatmulKernel(b, loc, "hag_matmul_nt_f16", /*vec4=*/false);
  buildMatmulKernel(b, loc, "hag_matmul_nt_f16_v4", /*vec4=*/true);
  return module;
}

int64_t mlir::hag::cudaMatmulBlockM() { return kBlockM; }
int64_t mlir::hag::cudaMatmulBlockN() { return kBlockN; }
int64_t mlir::hag::cudaMatmulThreads() { return kThreads; }
