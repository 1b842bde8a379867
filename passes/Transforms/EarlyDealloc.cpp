//===- EarlyDealloc.cpp - hag-early-dealloc -------------------------------===//
//
// Frees each buffer right after its last use instead of at the end of its
// block (where the ownership-based deallocation pipeline puts it): a
// training step's peak memory is then its live set, not every temporary.
//
//===----------------------------------------------------------------------===//

#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGEARLYDEALLOC
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;

namespace {

/// Whether `op` only reads or writes through its memref operands, or makes
/// a view of them (so the buffer does not outlive `op` through it).
bool isViewLike(Operation *op) {
  return isa<ViewLikeOpInterface, memref::CastOp, memref::ExpandShapeOp,
             memref::CollapseShapeOp, memref::ReinterpretCastOp>(op);
}

struct HAGEarlyDeallocPass
    : mlir::hag::impl::HAGEarlyDeallocBase<HAGEarlyDeallocPass> {
  void runOnOperation() override {
    SmallVector<memref::DeallocOp> deallocs;
    getOperation().walk([&](memref::DeallocOp d) { deallocs.push_back(d); });
    for (memref::DeallocOp d : deallocs) {
      auto alloc = d.getMemref().getDefiningOp<memref::AllocOp>();
      Block *block = d->getBlock();
      if (!alloc || alloc->getBlock() != block)
        continue;
      // The buffer and its views.
      SmallVector<Value> aliases = {alloc.getResult()};
      bool escapes = false;
      Operation *last = alloc;
      for (size_t i = 0; i < aliases.size() && !escapes; ++i) {
        for (OpOperand &use : aliases[i].getUses()) {
          Operation *user = use.getOwner();
          if (user == d)
            continue;
          if (user->hasTrait<OpTrait::IsTerminator>() ||
              (isa<memref::StoreOp>(user) && use.getOperandNumber() == 0)) {
            escapes = true;
            break;
          }
          if (isViewLike(user)) {
            for (Value r : user->getResults())
              aliases.push_back(r);
          } else {
            // Any other op with a memref result might return the buffer.
            for (Value r : user->getResults())
              if (isa<BaseMemRefType>(r.getType()))
                escapes = true;
          }
          if (user->getBlock() != block && !block->findAncestorOpInBlock(*user)) {
            escapes = true;
            break;
          }
          Operation *inBlock = block->findAncestorOpInBlock(*user);
          if (last->isBeforeInBlock(inBlock))
            last = inBlock;
        }
      }
      if (escapes || last == d.getOperation() ||
          !last->isBeforeInBlock(d))
        continue;
      d->moveAfter(last);
    }
  }
};

} // namespace
