//===- MapLoopsToGPU.cpp - hag-map-loops-to-gpu ---------------------------===//
//
// Host functions of a CUDA artifact after bufferization and
// linalg -> parallel loops: every piece of host code that reads or writes
// buffer elements becomes a `gpu.launch`:
//  - an outermost `scf.parallel` (elementwise ops, norms with their
//    reduction as an inner scf.for, the kernel library's loops) becomes a
//    1-D grid: its iteration space is collapsed to one index, block-size
//    consecutive iterations per block, one per thread (the innermost,
//    contiguous dimension varies fastest, so a warp's loads coalesce);
//  - `memref.copy` becomes such a loop first;
//  - any other result-less host op that touches memory (a loop nest of a
//    full reduction, a store) runs as a one-thread kernel. Correct for the
//    few small ones the graphs have (a loss's final sum); each is worth a
//    real kernel when it shows in a profile;
//  - a load of a device scalar (one element) whose value the host itself
//    needs (a training step's gradient norm, its all-finite flag, the step
//    count) becomes a call of the runtime's hagrt_cuda_read_<type>(address),
//    which waits for the kernels before it and copies the few bytes back.
// `memref.get_global` results used inside are re-created inside so the
// kernel reads the global's device copy (gpu-kernel-outlining copies the
// global into the GPU module).
//
//===----------------------------------------------------------------------===//

#include "../HAGToLinalg/CudaKernels.h"
#include "HostMemory.h"
#include "hag/Conversion/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGMAPLOOPSTOGPU
#include "hag/Conversion/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;

namespace {

/// Whether `op` or an op inside it reads or writes device memory (host
/// stack and host constants stay with the host).
bool touchesMemory(Operation *op) {
  return op
      ->walk([](Operation *o) {
        return hag::elementAccess(o) != hag::ElementAccess::None &&
                       !hag::onlyHostMemory(o)
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      })
      .wasInterrupted();
}

/// Whether `region` uses host stack memory defined outside it.
bool usesHostStack(Region &region) {
  SetVector<Value> above;
  getUsedValuesDefinedAbove(region, above);
  for (Value v : above)
    if (isa<MemRefType>(v.getType()) &&
        hag::memrefRoot(v).getDefiningOp<memref::AllocaOp>())
      return true;
  return false;
}

/// Ops that must stay on the host: launches, calls, allocation, returns.
bool hostOnly(Operation *op) {
  return op
      ->walk([](Operation *o) {
        return isa<gpu::LaunchFuncOp, gpu::LaunchOp, func::CallOp,
                   memref::AllocOp, memref::AllocaOp, memref::DeallocOp,
                   func::ReturnOp>(o)
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      })
      .wasInterrupted();
}

struct Mapper {
  OpBuilder &b;
  int64_t blockSize;
  /// Loops over blocks and threads instead of launches (see the option).
  bool emulate = false;

  Value idx(Location loc, int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  }

  /// Clones the `memref.get_global`s of constant globals defined above the
  /// launch's body and used in it into the body: outlining gives the kernel
  /// module its own copy of the constant. A writable global would be one
  /// copy per kernel: an error.
  LogicalResult sinkGlobals(gpu::LaunchOp launch) {
    Region &region = launch.getBody();
    SetVector<Value> above;
    getUsedValuesDefinedAbove(region, above);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(&region.front());
    for (Value v : above) {
      auto get = v.getDefiningOp<memref::GetGlobalOp>();
      if (!get)
        continue;
      auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
          get, get.getNameAttr());
      if (!global || !global.getConstant())
        return get.emitError()
               << "a GPU kernel uses the writable global @" << get.getName()
               << ": kernels only read constant globals";
      Value inside = b.clone(*get)->getResult(0);
      replaceAllUsesInRegionWith(v, inside, region);
    }
    return success();
  }

  /// Creates `if (n > 0) gpu.launch blocks(ceil(n / bs)) threads(bs)` (one
  /// block of one thread when `single`) before `at`, and returns the
  /// builder positioned inside `if (linear < n)` in the launch body, with
  /// the linear index.
  Value openLaunch(Operation *at, Value n, bool single) {
    Location loc = at->getLoc();
    b.setInsertionPoint(at);
    int64_t bs = single ? 1 : blockSize;
    Value zero = idx(loc, 0), one = idx(loc, 1), bsv = idx(loc, bs);
    Value any =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, n, zero);
    auto ifAny = scf::IfOp::create(b, loc, any, /*withElse=*/false);
    b.setInsertionPointToStart(ifAny.thenBlock());
    Value blocks = arith::DivUIOp::create(
        b, loc, arith::AddIOp::create(b, loc, n, idx(loc, bs - 1)), bsv);
    Value blockId, threadId;
    if (emulate) {
      // The grid as loops: blocks in parallel, a block's threads in order.
      auto grid = scf::ParallelOp::create(b, loc, ValueRange{zero},
                                          ValueRange{blocks}, ValueRange{one});
      b.setInsertionPointToStart(grid.getBody());
      auto threads = scf::ForOp::create(b, loc, zero, bsv, one);
      b.setInsertionPointToStart(threads.getBody());
      blockId = grid.getInductionVars()[0];
      threadId = threads.getInductionVar();
    } else {
      auto launch =
          gpu::LaunchOp::create(b, loc, blocks, one, one, bsv, one, one);
      b.setInsertionPointToStart(&launch.getBody().front());
      gpu::TerminatorOp::create(b, loc);
      b.setInsertionPointToStart(&launch.getBody().front());
      blockId = launch.getBlockIds().x;
      threadId = launch.getThreadIds().x;
    }
    Value linear = arith::AddIOp::create(
        b, loc, arith::MulIOp::create(b, loc, blockId, bsv), threadId);
    Value in =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, linear, n);
    auto ifIn = scf::IfOp::create(b, loc, in, /*withElse=*/false);
    b.setInsertionPointToStart(ifIn.thenBlock());
    return linear;
  }

  /// An outermost scf.parallel -> a 1-D grid.
  LogicalResult mapParallel(scf::ParallelOp loop) {
    if (loop.getNumResults() != 0)
      return loop.emitError()
             << "a parallel loop with reductions cannot run on the GPU yet";
    if (hostOnly(loop))
      return loop.emitError()
             << "a parallel loop that allocates, calls or launches cannot "
                "become a GPU kernel";
    if (usesHostStack(loop.getRegion()))
      return loop.emitError() << "a parallel loop over host stack memory "
                                 "cannot become a GPU kernel";
    Location loc = loop.getLoc();
    b.setInsertionPoint(loop);
    // Trip counts and their product.
    SmallVector<Value> trips;
    Value total = idx(loc, 1);
    for (auto [lb, ub, step] : llvm::zip(
             loop.getLowerBound(), loop.getUpperBound(), loop.getStep())) {
      Value span = arith::SubIOp::create(b, loc, ub, lb);
      Value pos = arith::MaxSIOp::create(b, loc, span, idx(loc, 0));
      Value t = arith::CeilDivUIOp::create(b, loc, pos, step);
      trips.push_back(t);
      total = arith::MulIOp::create(b, loc, total, t);
    }
    Value linear = openLaunch(loop, total, /*single=*/false);
    // Recover the indices, innermost fastest.
    SmallVector<Value> ivs(trips.size());
    Value rest = linear;
    for (int64_t d = int64_t(trips.size()) - 1; d >= 0; --d) {
      Value i =
          d == 0 ? rest
                 : arith::RemUIOp::create(b, loc, rest, trips[d]).getResult();
      if (d > 0)
        rest = arith::DivUIOp::create(b, loc, rest, trips[d]);
      ivs[d] = arith::AddIOp::create(
          b, loc, loop.getLowerBound()[d],
          arith::MulIOp::create(b, loc, i, loop.getStep()[d]));
    }
    IRMapping map;
    Block *body = loop.getBody();
    for (auto [arg, iv] : llvm::zip(body->getArguments(), ivs))
      map.map(arg, iv);
    for (Operation &op : body->without_terminator())
      b.clone(op, map);
    loop.erase();
    return success();
  }

  /// memref.copy -> a parallel loop over the target's elements.
  scf::ParallelOp copyToLoop(memref::CopyOp copy) {
    Location loc = copy.getLoc();
    b.setInsertionPoint(copy);
    auto type = cast<MemRefType>(copy.getTarget().getType());
    SmallVector<Value> lbs, ubs, steps;
    for (int64_t d = 0; d < type.getRank(); ++d) {
      lbs.push_back(idx(loc, 0));
      ubs.push_back(memref::DimOp::create(b, loc, copy.getTarget(), d));
      steps.push_back(idx(loc, 1));
    }
    if (type.getRank() == 0) {
      lbs.push_back(idx(loc, 0));
      ubs.push_back(idx(loc, 1));
      steps.push_back(idx(loc, 1));
    }
    Value src = copy.getSource(), dst = copy.getTarget();
    bool scalar = type.getRank() == 0;
    auto loop =
        scf::ParallelOp::create(b, loc, lbs, ubs, steps,
                                [&](OpBuilder &nb, Location l, ValueRange ivs) {
                                  ValueRange at = scalar ? ValueRange{} : ivs;
                                  Value v =
                                      memref::LoadOp::create(nb, l, src, at);
                                  memref::StoreOp::create(nb, l, v, dst, at);
                                });
    copy.erase();
    return loop;
  }

  /// The ops of `op`'s block that compute its operands and can run in a
  /// kernel instead (pure ops, and loads of device memory no op between
  /// them and `op` may write), in order; empty if some operand needs the
  /// host.
  SmallVector<Operation *> computeSlice(Operation *op) {
    SetVector<Operation *> slice;
    SmallVector<Value> work(op->getOperands().begin(), op->getOperands().end());
    while (!work.empty()) {
      Value v = work.pop_back_val();
      Operation *def = v.getDefiningOp();
      if (!def || def->getBlock() != op->getBlock() || slice.contains(def))
        continue;
      bool load = isa<memref::LoadOp>(def) &&
                  !hag::isHostMemory(cast<memref::LoadOp>(def).getMemref());
      if (!load && !isMemoryEffectFree(def))
        continue; // computed on the host, passed to the kernel
      if (load) {
        for (Operation *o = def->getNextNode(); o != op; o = o->getNextNode())
          if (!slice.contains(o) && !isMemoryEffectFree(o) &&
              !isa<memref::AllocOp, memref::DimOp, memref::LoadOp>(o))
            return {};
      }
      slice.insert(def);
      work.append(def->getOperands().begin(), def->getOperands().end());
    }
    SmallVector<Operation *> ordered(slice.begin(), slice.end());
    llvm::sort(ordered, [](Operation *a, Operation *c) {
      return a->isBeforeInBlock(c);
    });
    return ordered;
  }

  /// A result-less op that touches memory -> a one-thread kernel, with the
  /// straight-line code that computes its operands (a 0-d op's load and
  /// arithmetic before its store); the host's copies die in canonicalize.
  void wrapSingle(Operation *op) {
    SmallVector<Operation *> slice = computeSlice(op);
    Location loc = op->getLoc();
    b.setInsertionPoint(op);
    Value one = idx(loc, 1);
    openLaunch(op, one, /*single=*/true);
    IRMapping map;
    for (Operation *o : slice)
      b.clone(*o, map);
    op->moveBefore(b.getInsertionBlock()->getTerminator());
    for (OpOperand &use : op->getOpOperands())
      use.set(map.lookupOrDefault(use.get()));
  }

  LogicalResult process(Block &block) {
    for (Operation &op : llvm::make_early_inc_range(block)) {
      if (auto copy = dyn_cast<memref::CopyOp>(op)) {
        if (!touchesMemory(copy))
          continue; // host to host
        if (failed(mapParallel(copyToLoop(copy))))
          return failure();
        continue;
      }
      if (auto loop = dyn_cast<scf::ParallelOp>(op)) {
        if (failed(mapParallel(loop)))
          return failure();
        continue;
      }
      if (isa<gpu::LaunchOp>(op) || !touchesMemory(&op))
        continue;
      bool hasParallel = false;
      op.walk([&](scf::ParallelOp) { hasParallel = true; });
      if (op.getNumResults() == 0 && !hostOnly(&op) && !hasParallel) {
        bool stack = false;
        for (Region &r : op.getRegions())
          stack |= usesHostStack(r);
        for (Value v : op.getOperands())
          stack |= isa<MemRefType>(v.getType()) &&
                   hag::memrefRoot(v).getDefiningOp<memref::AllocaOp>();
        if (stack)
          return op.emitError() << "host code that touches both device and "
                                   "host stack memory cannot become a GPU "
                                   "kernel";
        wrapSingle(&op);
        continue;
      }
      // Host control flow around launches: map what is inside.
      for (Region &r : op.getRegions())
        for (Block &inner : r)
          if (failed(process(inner)))
            return failure();
    }
    return success();
  }
};

/// The remaining host loads of device scalars (buffers of one element) ->
/// hagrt_cuda_read_<type> calls (dead host copies of what the kernels took over
/// are erased first). Loads of device buffers of higher rank stay:
/// hag-check-host-code names them.
LogicalResult readScalarsBack(ModuleOp module, func::FuncOp fn, OpBuilder &b) {
  // The slices wrapSingle cloned into kernels leave dead host copies.
  bool erased = true;
  while (erased) {
    erased = false;
    SmallVector<Operation *> dead;
    fn.walk([&](Operation *op) {
      if (op->getParentOfType<gpu::LaunchOp>() || op == fn)
        return;
      if (isOpTriviallyDead(op))
        dead.push_back(op);
    });
    // Post-order: an op's nested ops come before it, so none is visited
    // after its parent is erased; users erased first free their operands
    // for the next round.
    for (Operation *op : dead)
      if (isOpTriviallyDead(op)) {
        op->erase();
        erased = true;
      }
  }
  SmallVector<memref::LoadOp> loads;
  fn.walk([&](memref::LoadOp load) {
    // 0-d, or one element (a [1] bias whose update folded to scalars):
    // the only in-bounds index is 0.
    MemRefType type = load.getMemRefType();
    bool scalar = type.hasStaticShape() && type.getNumElements() == 1;
    if (!load->getParentOfType<gpu::LaunchOp>() && scalar &&
        !hag::isHostMemory(load.getMemref()))
      loads.push_back(load);
  });
  for (memref::LoadOp load : loads) {
    Type type = load.getType();
    // Booleans are a byte in memory; index is 64 bits.
    Type carried = type.isInteger(1) ? b.getI8Type()
                   : type.isIndex()  ? b.getI64Type()
                                     : type;
    // The types the runtime defines a read for (CudaSession.cpp).
    if (!(carried.isF64() || carried.isF32() || carried.isInteger(64) ||
          carried.isInteger(32) || carried.isInteger(8)))
      return load.emitError() << "host code reads a device scalar of type "
                              << type << ", which the runtime cannot copy back";
    unsigned bytes = carried.getIntOrFloatBitWidth() / 8;
    std::string name;
    llvm::raw_string_ostream os(name);
    os << "hagrt_cuda_read_" << carried;
    auto callee = module.lookupSymbol<func::FuncOp>(name);
    if (!callee) {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToEnd(module.getBody());
      callee =
          func::FuncOp::create(b, load.getLoc(), name,
                               b.getFunctionType({b.getI64Type()}, {carried}));
      callee.setPrivate();
    }
    Location loc = load.getLoc();
    b.setInsertionPoint(load);
    auto meta =
        memref::ExtractStridedMetadataOp::create(b, loc, load.getMemref());
    Value base = memref::ExtractAlignedPointerAsIndexOp::create(
        b, loc, load.getMemref());
    Value offset =
        arith::MulIOp::create(b, loc, meta.getOffset(),
                              arith::ConstantIndexOp::create(b, loc, bytes));
    Value address = arith::IndexCastOp::create(
        b, loc, b.getI64Type(), arith::AddIOp::create(b, loc, base, offset));
    Value value =
        func::CallOp::create(b, loc, callee, ValueRange{address}).getResult(0);
    if (type.isInteger(1))
      value = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::ne, value,
          arith::ConstantIntOp::create(b, loc, b.getI8Type(), 0));
    else if (type.isIndex())
      value = arith::IndexCastOp::create(b, loc, type, value);
    load.replaceAllUsesWith(value);
    load.erase();
  }
  return success();
}

struct HAGMapLoopsToGPUPass
    : mlir::hag::impl::HAGMapLoopsToGPUBase<HAGMapLoopsToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    if (blockSize < 1 || blockSize > 1024) {
      getOperation().emitError()
          << "hag-map-loops-to-gpu: block-size " << int64_t(blockSize)
          << " is not in [1, 1024]";
      return signalPassFailure();
    }
    if (failed(hag::defineCudaKernelLaunchers(getOperation(), emulate)))
      return signalPassFailure();
    OpBuilder b(&getContext());
    Mapper mapper{b, int64_t(blockSize), emulate};
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      if (fn.isExternal())
        continue;
      for (Block &block : fn.getBody())
        if (failed(mapper.process(block)))
          return signalPassFailure();
      // Constants the kernels read come with them.
      WalkResult sunk = fn.walk([&](gpu::LaunchOp launch) {
        return failed(mapper.sinkGlobals(launch)) ? WalkResult::interrupt()
                                                  : WalkResult::advance();
      });
      if (sunk.wasInterrupted())
        return signalPassFailure();
      if (!emulate && failed(readScalarsBack(getOperation(), fn, b)))
        return signalPassFailure();
    }
  }
};

} // namespace
