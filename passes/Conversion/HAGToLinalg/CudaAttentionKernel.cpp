//===- CudaAttentionKernel.cpp - the Tensor Core cross-level attention ----===//
//
// Builds `gpu.module @hag_cuda_attention` with the fused cross-level
// attention forward on the Tensor Cores, one kernel per head size d (32, 64,
// 128), and the launchers of attention_vector.mlir's
// @hag_gpu_attention_tc<d>.
//
// One block of 4 warps per (batch, head, 64-query tile); the tile lies in
// one query block (the caller takes this kernel only when B % 64 = 0), so
// all its queries see the same key ranges: row qb of `segs`
// (@hag_gpu_block_segments) -- the raw window (causal: keys past a query
// masked in the kernel), every compressed level's windows, the block's
// summary rows and its select_k picks. Warp w owns queries 16 w .. 16 w +
// 15 of the tile; its q rows are held as f16 A fragments (d / 16 of them)
// for the whole walk. Per key tile of 64 rows of a range the block stages K
// and V as f16 in shared memory (rows padded by 8 halves: the fragment
// loads of a warp's 8 row groups fall into different banks) and the 64
// biases (-inf past the range's end), then each warp
//   - computes S = q k^T for its 16 x 64 scores: 8 column tiles of m16n8,
//     d / 16 `mma.sync` m16n8k16 each (f16 operands, f32 accumulators);
//   - turns them into logits scale s + bias (-inf for a raw key past the
//     query, causal), takes each row's max over the tile (the 4 threads of
//     a row combine theirs with two xor shuffles), rescales its running
//     output and denominator by exp(m_old - m_new), and p = exp(l - m_new);
//   - multiplies P (the accumulators of S reused as A fragments in f16:
//     column tiles 2 j and 2 j + 1 make the m16k16 fragment j) by V:
//     d / 8 output tiles, 4 mma.sync each.
// The fragment layouts are the PTX ISA's m16n8k16 ones, as in the matmul
// kernel (lane = 4 g + t; A rows g, g + 8, columns 2t, 2t + 1, 2t + 8,
// 2t + 9; B column g; C rows g, g + 8, columns 2t, 2t + 1). V's B fragments
// are gathered from the row-major tile with 16-bit loads (the 8 row groups'
// words fall into distinct banks). Each thread keeps its part of the row
// sums and the 4 threads of a row add theirs at the end; the output is
// divided once and stored as pairs of floats.
//
//===----------------------------------------------------------------------===//

#include "CudaKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <functional>

using namespace mlir;

namespace {

constexpr int64_t kRows = 64; // queries per block
constexpr int64_t kWarps = kRows / 16;
constexpr int64_t kThreads = 32 * kWarps;
constexpr int64_t kKeys = 64; // keys per tile
constexpr int64_t kPad = 8;   // halves of padding per shared row
constexpr int64_t kKeyTiles = kKeys / 8;

struct IRHelper {
  OpBuilder &b;
  Location loc;
  int64_t d;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32(float v) {
    return arith::ConstantFloatOp::create(b, loc, b.getF32Type(), APFloat(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value add(Value x, int64_t y) { return y == 0 ? x : add(x, idx(y)); }
  Value mul(Value x, int64_t y) {
    return arith::MulIOp::create(b, loc, x, idx(y));
  }
  Value div(Value x, int64_t y) {
    return arith::DivUIOp::create(b, loc, x, idx(y));
  }
  Value rem(Value x, int64_t y) {
    return arith::RemUIOp::create(b, loc, x, idx(y));
  }
  Value ult(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
  Value fmax(Value x, Value y) {
    return arith::MaximumFOp::create(b, loc, x, y);
  }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  Value exp(Value x) { return math::ExpOp::create(b, loc, x); }
  Value xorShuffle(Value x, int32_t offset) {
    return gpu::ShuffleOp::create(b, loc, x, offset, 32, gpu::ShuffleMode::XOR)
        .getShuffleResult();
  }
  Value half(Value v) {
    return arith::TruncFOp::create(b, loc, b.getF16Type(), v);
  }
  /// Two consecutive halves of a shared tile at (row, col), col even.
  Value pair(Value tile, Value row, Value col) {
    auto t = VectorType::get({2}, b.getF16Type());
    return vector::LoadOp::create(b, loc, t, tile, ValueRange{row, col},
                                  /*nontemporal=*/false, llvm::Align(4));
  }
};

/// The per-thread state of the online softmax carried through the walk:
/// the running max and this thread's part of the denominator of its rows g
/// and g + 8, and the d / 8 output accumulators.
struct State {
  SmallVector<Value> values; // m0, m1, l0, l1, o[0 .. d/8)
  static constexpr int64_t kScalars = 4;
};

/// One key source of a range: K, V [batch, rows, Hkv d] and the biases
/// [batch, rows]; `row` maps a position of the range to a row (the picks
/// read it from sel).
struct Source {
  Value K, V, bias;
  std::function<Value(Value)> row;
  bool causal; // level 1: mask keys past the query when the model is causal
};

struct KernelBody {
  explicit KernelBody(IRHelper &k) : k(k), b(k.b), loc(k.loc), d(k.d) {}
  IRHelper &k;
  OpBuilder &b;
  Location loc;
  int64_t d;
  // Fixed per thread.
  Value tid, g, t2, batch, kcol, causal, scale;
  Value qRow[2];
  SmallVector<Value> qFrag; // d / 16 A fragments
  Value Ks, Vs, Bs;         // shared tiles

  /// Stages rows t0 .. t0 + 63 of the range [s, e) of `src` (f16 K and V,
  /// f32 biases, -inf and zeros past e), between two barriers.
  void stage(const Source &src, Value t0, Value s, Value e) {
    gpu::BarrierOp::create(b, loc);
    FloatType f32 = b.getF32Type(), f16 = b.getF16Type();
    auto v4 = VectorType::get({4}, f32);
    auto h4 = VectorType::get({4}, f16);
    Value zero4 =
        arith::ConstantOp::create(b, loc, v4, DenseElementsAttr::get(v4, 0.0f));
    int64_t chunksPerRow = d / 4;
    int64_t perThread = kKeys * chunksPerRow / kThreads;
    for (int64_t it = 0; it < perThread; ++it) {
      Value c = k.add(tid, it * kThreads);
      Value row = k.div(c, chunksPerRow);
      Value col = k.mul(k.rem(c, chunksPerRow), 4);
      Value pos = k.add(t0, row);
      Value valid = k.ult(pos, e);
      Value srow = src.row(k.select(valid, pos, s));
      Value gcol = k.add(kcol, col);
      for (auto [from, to] : {std::pair{src.K, Ks}, std::pair{src.V, Vs}}) {
        Value x = vector::LoadOp::create(
            b, loc, v4, from, ValueRange{batch, srow, gcol},
            /*nontemporal=*/false, llvm::Align(16));
        x = k.select(valid, x, zero4);
        Value h = arith::TruncFOp::create(b, loc, h4, x);
        vector::StoreOp::create(b, loc, h, to, ValueRange{row, col},
                                /*nontemporal=*/false, llvm::Align(8));
      }
    }
    Value ninf = arith::ConstantFloatOp::create(
        b, loc, f32, APFloat::getInf(APFloat::IEEEsingle(), /*Negative=*/true));
    auto ifOp = scf::IfOp::create(b, loc, k.ult(tid, k.idx(kKeys)), false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      Value pos = k.add(t0, tid);
      Value valid = k.ult(pos, e);
      Value srow = src.row(k.select(valid, pos, s));
      Value bias =
          memref::LoadOp::create(b, loc, src.bias, ValueRange{batch, srow});
      memref::StoreOp::create(b, loc, k.select(valid, bias, ninf), Bs,
                              ValueRange{tid});
    }
    gpu::BarrierOp::create(b, loc);
  }

  /// One key tile (staged) against the warp's 16 queries.
  SmallVector<Value> attendTile(ArrayRef<Value> state, Value t0,
                                bool maybeCausal) {
    FloatType f32 = b.getF32Type(), f16 = b.getF16Type();
    auto accType = VectorType::get({2, 2}, f32);
    Value accZero = arith::ConstantOp::create(
        b, loc, accType, DenseElementsAttr::get(accType, 0.0f));
    Value ninf = arith::ConstantFloatOp::create(
        b, loc, f32, APFloat::getInf(APFloat::IEEEsingle(), /*Negative=*/true));
    // S = q k^T: 8 tiles of 16 x 8.
    SmallVector<Value> S;
    for (int64_t nt = 0; nt < kKeyTiles; ++nt) {
      Value key = k.add(g, nt * 8);
      Value acc = accZero;
      for (int64_t kk = 0; kk < d / 16; ++kk) {
        Value frag = arith::ConstantOp::create(
            b, loc, VectorType::get({2, 2}, f16),
            DenseElementsAttr::get(VectorType::get({2, 2}, f16),
                                   APFloat::getZero(APFloat::IEEEhalf())));
        frag = vector::InsertOp::create(
            b, loc, k.pair(Ks, key, k.add(t2, kk * 16)), frag, 0);
        frag = vector::InsertOp::create(
            b, loc, k.pair(Ks, key, k.add(t2, kk * 16 + 8)), frag, 1);
        acc = nvgpu::MmaSyncOp::create(b, loc, qFrag[kk], frag, acc,
                                       ArrayRef<int64_t>{16, 8, 16});
      }
      S.push_back(acc);
    }
    // Logits, row maxima.
    Value logit[kKeyTiles][2][2];
    Value rowMax[2] = {ninf, ninf};
    for (int64_t nt = 0; nt < kKeyTiles; ++nt)
      for (int64_t j = 0; j < 2; ++j) {
        Value col = k.add(t2, nt * 8 + j);
        Value bias = memref::LoadOp::create(b, loc, Bs, ValueRange{col});
        Value key = k.add(t0, col);
        for (int64_t i = 0; i < 2; ++i) {
          Value s =
              vector::ExtractOp::create(b, loc, S[nt], ArrayRef<int64_t>{i, j});
          Value l = math::FmaOp::create(b, loc, s, scale, bias);
          if (maybeCausal) {
            Value past = arith::CmpIOp::create(
                b, loc, arith::CmpIPredicate::ugt, key, qRow[i]);
            l = k.select(arith::AndIOp::create(b, loc, causal, past), ninf, l);
          }
          logit[nt][i][j] = l;
          rowMax[i] = k.fmax(rowMax[i], l);
        }
      }
    SmallVector<Value> next(state.begin(), state.end());
    Value alpha[2], mUse[2];
    Value zero = k.f32(0.0f);
    for (int64_t i = 0; i < 2; ++i) {
      Value mx = k.fmax(rowMax[i], k.xorShuffle(rowMax[i], 1));
      mx = k.fmax(mx, k.xorShuffle(mx, 2));
      Value mNew = k.fmax(state[i], mx);
      // Nothing seen yet (every logit -inf): subtract 0, so every p and
      // alpha is exp(-inf) = 0 rather than NaN.
      Value none =
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, mNew, ninf);
      mUse[i] = k.select(none, zero, mNew);
      alpha[i] = k.exp(k.fsub(state[i], mUse[i]));
      next[i] = mNew;
    }
    Value p[kKeyTiles][2][2];
    Value rowSum[2] = {zero, zero};
    for (int64_t nt = 0; nt < kKeyTiles; ++nt)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          p[nt][i][j] = k.exp(k.fsub(logit[nt][i][j], mUse[i]));
          rowSum[i] = k.fadd(rowSum[i], p[nt][i][j]);
        }
    for (int64_t i = 0; i < 2; ++i)
      next[2 + i] =
          math::FmaOp::create(b, loc, state[2 + i], alpha[i], rowSum[i]);
    // Rescale the output: row g by alpha0, row g + 8 by alpha1.
    Value scaleVec = vector::FromElementsOp::create(
        b, loc, accType, ValueRange{alpha[0], alpha[0], alpha[1], alpha[1]});
    SmallVector<Value> O;
    for (int64_t dt = 0; dt < d / 8; ++dt)
      O.push_back(
          arith::MulFOp::create(b, loc, state[State::kScalars + dt], scaleVec));
    // O += P V: P's A fragment j from score tiles 2 j and 2 j + 1.
    auto aType = VectorType::get({4, 2}, f16);
    auto bType = VectorType::get({2, 2}, f16);
    for (int64_t kk = 0; kk < kKeys / 16; ++kk) {
      SmallVector<Value> ps;
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j)
            ps.push_back(k.half(p[2 * kk + half][i][j]));
      Value pFrag = vector::FromElementsOp::create(b, loc, aType, ps);
      Value key0 = k.add(t2, kk * 16);
      Value rows[4] = {key0, k.add(key0, 1), k.add(key0, 8), k.add(key0, 9)};
      for (int64_t dt = 0; dt < d / 8; ++dt) {
        Value col = k.add(g, dt * 8);
        SmallVector<Value> vs;
        for (Value r : rows)
          vs.push_back(memref::LoadOp::create(b, loc, Vs, ValueRange{r, col}));
        Value vFrag = vector::FromElementsOp::create(b, loc, bType, vs);
        O[dt] = nvgpu::MmaSyncOp::create(b, loc, pFrag, vFrag, O[dt],
                                         ArrayRef<int64_t>{16, 8, 16});
      }
    }
    for (int64_t dt = 0; dt < d / 8; ++dt)
      next[State::kScalars + dt] = O[dt];
    return next;
  }

  /// Walks the range [s, e) of `src` in key tiles.
  SmallVector<Value> attendRange(ArrayRef<Value> state, const Source &src,
                                 Value s, Value e) {
    auto loop = scf::ForOp::create(b, loc, s, e, k.idx(kKeys), state);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t0 = loop.getInductionVar();
    stage(src, t0, s, e);
    SmallVector<Value> next = attendTile(
        SmallVector<Value>(loop.getRegionIterArgs()), t0, src.causal);
    scf::YieldOp::create(b, loc, next);
    return SmallVector<Value>(loop.getResults());
  }
};

std::string kernelName(int64_t d) {
  return "hag_attention_tc_d" + std::to_string(d);
}

/// The kernel for head size d (see the file comment).
void buildKernel(OpBuilder &b, Location loc, int64_t d) {
  MLIRContext *ctx = b.getContext();
  FloatType f32 = b.getF32Type(), f16 = b.getF16Type();
  Type indexType = b.getIndexType();
  int64_t dyn = ShapedType::kDynamic;
  auto m3 = MemRefType::get({dyn, dyn, dyn}, f32);
  auto m2 = MemRefType::get({dyn, dyn}, f32);
  auto sel = MemRefType::get({dyn, dyn, dyn}, indexType);
  auto segs = MemRefType::get({dyn, dyn}, indexType);
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  auto tileType = MemRefType::get({kKeys, d + kPad}, f16,
                                  MemRefLayoutAttrInterface(), workgroup);
  auto biasType =
      MemRefType::get({kKeys}, f32, MemRefLayoutAttrInterface(), workgroup);
  // q k v gB levK levV levB sumK sumV sumB sel segs out H Hkv B causal scale
  SmallVector<Type> args = {m3,
                            m3,
                            m3,
                            m2,
                            m3,
                            m3,
                            m2,
                            m3,
                            m3,
                            m2,
                            sel,
                            segs,
                            m3,
                            indexType,
                            indexType,
                            indexType,
                            b.getI32Type(),
                            f32};
  auto fn = gpu::GPUFuncOp::create(
      b, loc, kernelName(d), b.getFunctionType(args, {}),
      TypeRange{tileType, tileType, biasType}, TypeRange{});
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  fn.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({int32_t(kThreads), 1, 1}));
  // 16-byte aligned tiles: the fragment loads are 4-byte, the staging
  // stores 8-byte accesses (the globals' default alignment is their
  // element's).
  for (unsigned i = 0; i < 3; ++i)
    fn.setWorkgroupAttributionAttr(i, "llvm.align", b.getI64IntegerAttr(16));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&fn.getBody().front());
  IRHelper k{b, loc, d};
  auto arg = [&](unsigned i) { return fn.getArgument(i); };
  Value q = arg(0), K = arg(1), V = arg(2), gB = arg(3), levK = arg(4),
        levV = arg(5), levB = arg(6), sumK = arg(7), sumV = arg(8),
        sumB = arg(9), selM = arg(10), segM = arg(11), out = arg(12),
        H = arg(13), Hkv = arg(14), B = arg(15);
  Value causal = arith::CmpIOp::create(
      b, loc, arith::CmpIPredicate::ne, arg(16),
      arith::ConstantIntOp::create(b, loc, b.getI32Type(), 0));
  Value scale = arg(17);

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value lane = k.rem(tid, 32), warp = k.div(tid, 32);
  Value g = k.div(lane, 4), t2 = k.mul(k.rem(lane, 4), 2);
  Value n = memref::DimOp::create(b, loc, q, 1);
  Value row0 = k.mul(tile, kRows);
  Value qb = arith::DivUIOp::create(b, loc, row0, B);
  Value kvh =
      arith::DivUIOp::create(b, loc, arith::MulIOp::create(b, loc, h, Hkv), H);
  Value qcol = k.mul(h, d), kcol = k.mul(kvh, d);

  KernelBody body(k);
  body.tid = tid;
  body.g = g;
  body.t2 = t2;
  body.batch = batch;
  body.kcol = kcol;
  body.causal = causal;
  body.scale = scale;
  body.qRow[0] = k.add(k.add(row0, k.mul(warp, 16)), g);
  body.qRow[1] = k.add(body.qRow[0], 8);
  body.Ks = fn.getWorkgroupAttributions()[0];
  body.Vs = fn.getWorkgroupAttributions()[1];
  body.Bs = fn.getWorkgroupAttributions()[2];

  // q fragments (rows past N read row N - 1; their results are not stored).
  Value last = arith::SubIOp::create(b, loc, n, k.idx(1));
  Value qr[2] = {arith::MinUIOp::create(b, loc, body.qRow[0], last),
                 arith::MinUIOp::create(b, loc, body.qRow[1], last)};
  auto v2 = VectorType::get({2}, f32);
  auto h2 = VectorType::get({2}, f16);
  auto aType = VectorType::get({4, 2}, f16);
  for (int64_t kk = 0; kk < d / 16; ++kk) {
    Value c0 = k.add(k.add(qcol, t2), kk * 16), c8 = k.add(c0, 8);
    SmallVector<Value> parts;
    for (auto [r, c] : {std::pair{qr[0], c0}, std::pair{qr[1], c0},
                        std::pair{qr[0], c8}, std::pair{qr[1], c8}}) {
      Value x = vector::LoadOp::create(b, loc, v2, q, ValueRange{batch, r, c},
                                       /*nontemporal=*/false, llvm::Align(8));
      parts.push_back(arith::TruncFOp::create(b, loc, h2, x));
    }
    Value frag = arith::ConstantOp::create(
        b, loc, aType,
        DenseElementsAttr::get(aType, APFloat::getZero(APFloat::IEEEhalf())));
    for (int64_t i = 0; i < 4; ++i)
      frag = vector::InsertOp::create(b, loc, parts[i], frag, i);
    body.qFrag.push_back(frag);
  }

  Value ninf = arith::ConstantFloatOp::create(
      b, loc, f32, APFloat::getInf(APFloat::IEEEsingle(), /*Negative=*/true));
  auto accType = VectorType::get({2, 2}, f32);
  Value accZero = arith::ConstantOp::create(
      b, loc, accType, DenseElementsAttr::get(accType, 0.0f));
  SmallVector<Value> state = {ninf, ninf, k.f32(0.0f), k.f32(0.0f)};
  state.append(d / 8, accZero);

  auto load = [&](Value slotCol) {
    return memref::LoadOp::create(b, loc, segM, ValueRange{qb, slotCol})
        .getResult();
  };
  auto identity = [](Value pos) { return pos; };
  // Range 0, level 1: causal, keys past the tile's last query are masked
  // for every query of the tile, so the walk stops there.
  {
    Value s = load(k.idx(0)), e = load(k.idx(1));
    Value tileEnd = k.add(row0, kRows);
    Value eC = arith::MinUIOp::create(b, loc, e, tileEnd);
    e = k.select(causal, eC, e);
    state = body.attendRange(state, Source{K, V, gB, identity, true}, s, e);
  }
  Value width = memref::DimOp::create(b, loc, segM, 1);
  Value slots = k.div(width, 2);
  Value sumSlot = arith::SubIOp::create(b, loc, slots, k.idx(2));
  // Ranges 1 .. S - 3: the compressed levels' windows.
  {
    auto loop = scf::ForOp::create(b, loc, k.idx(1), sumSlot, k.idx(1), state);
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(loop.getBody());
    Value col = k.mul(loop.getInductionVar(), 2);
    Value s = load(col), e = load(k.add(col, 1));
    SmallVector<Value> next =
        body.attendRange(SmallVector<Value>(loop.getRegionIterArgs()),
                         Source{levK, levV, levB, identity, false}, s, e);
    scf::YieldOp::create(b, loc, next);
    b.setInsertionPointAfter(loop);
    state = SmallVector<Value>(loop.getResults());
  }
  // Range S - 2: the summary rows; S - 1: the picks.
  {
    Value col = k.mul(sumSlot, 2);
    Value s = load(col), e = load(k.add(col, 1));
    state = body.attendRange(state, Source{sumK, sumV, sumB, identity, false},
                             s, e);
    Value pcol = k.add(col, 2);
    Value ps = load(pcol), pe = load(k.add(pcol, 1));
    auto pickRow = [&, selM, batch, qb](Value pos) {
      return memref::LoadOp::create(b, loc, selM, ValueRange{batch, qb, pos})
          .getResult();
    };
    state = body.attendRange(state, Source{K, V, gB, pickRow, false}, ps, pe);
  }

  // The 4 threads of a row add their parts of the denominator; stores.
  for (int64_t i = 0; i < 2; ++i) {
    Value l = state[2 + i];
    l = k.fadd(l, k.xorShuffle(l, 1));
    l = k.fadd(l, k.xorShuffle(l, 2));
    Value inv = arith::DivFOp::create(b, loc, k.f32(1.0f), l);
    Value invs = vector::BroadcastOp::create(b, loc, v2, inv);
    auto ifOp = scf::IfOp::create(b, loc, k.ult(body.qRow[i], n), false);
    OpBuilder::InsertionGuard g3(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    for (int64_t dt = 0; dt < d / 8; ++dt) {
      Value row = vector::ExtractOp::create(b, loc, state[State::kScalars + dt],
                                            ArrayRef<int64_t>{i});
      Value x = arith::MulFOp::create(b, loc, row, invs);
      Value col = k.add(k.add(qcol, t2), dt * 8);
      vector::StoreOp::create(b, loc, x, out,
                              ValueRange{batch, body.qRow[i], col},
                              /*nontemporal=*/false, llvm::Align(8));
    }
  }
  gpu::ReturnOp::create(b, loc);
}

} // namespace

gpu::GPUModuleOp mlir::hag::buildCudaAttentionKernels(OpBuilder &b,
                                                      Location loc,
                                                      ArrayRef<int64_t> sizes) {
  auto module = gpu::GPUModuleOp::create(b, loc, "hag_cuda_attention");
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(module.getBody());
  for (int64_t d : sizes)
    buildKernel(b, loc, d);
  return module;
}

void mlir::hag::buildCudaAttentionLauncher(OpBuilder &b, func::FuncOp decl,
                                           int64_t d,
                                           gpu::GPUModuleOp kernels) {
  // The launches are the library's, as the matmul's (the decl's location
  // is a line of the instantiated library text).
  Location loc = hag::cudaLibraryLoc(decl.getContext());
  Block *entry = decl.addEntryBlock();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(entry);
  IRHelper k{b, loc, d};
  SmallVector<Value> args(entry->getArguments());
  Value q = args[0], H = args[13];
  Value bt = memref::DimOp::create(b, loc, q, 0);
  Value n = memref::DimOp::create(b, loc, q, 1);
  Value tiles = k.div(k.add(n, kRows - 1), kRows);
  // causal (i1) travels as an i32.
  args[16] = arith::ExtUIOp::create(b, loc, b.getI32Type(), args[16]);
  Value zero = k.idx(0);
  Value any = arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, n, zero),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, bt, zero));
  auto ifOp = scf::IfOp::create(b, loc, any, /*withElse=*/false);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    auto kernel = kernels.lookupSymbol<gpu::GPUFuncOp>(kernelName(d));
    Value one = k.idx(1);
    gpu::LaunchFuncOp::create(b, loc, kernel, gpu::KernelDim3{tiles, H, bt},
                              gpu::KernelDim3{k.idx(kThreads), one, one},
                              /*dynamicSharedMemorySize=*/Value(), args);
  }
  func::ReturnOp::create(b, loc);
}
