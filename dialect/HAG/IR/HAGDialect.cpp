//===- HAGDialect.cpp - The hag dialect -----------------------------------===//

#include "hag/Dialect/HAG/IR/HAGDialect.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Transforms/InliningUtils.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::hag;

#include "hag/Dialect/HAG/IR/HAGDialect.cpp.inc"

namespace {
/// Prints every pyramid configuration once, as `#pyramid = #hag.pyramid<...>`
/// at the top of the module, and `#pyramid` at its uses: a model repeats one
/// configuration on every attention op.
struct HAGOpAsmInterface : OpAsmDialectInterface {
  using OpAsmDialectInterface::OpAsmDialectInterface;
  AliasResult getAlias(Attribute attr, raw_ostream &os) const override {
    if (isa<PyramidConfigAttr>(attr)) {
      os << "pyramid";
      return AliasResult::OverridableAlias;
    }
    return AliasResult::NoAlias;
  }
};
/// Every hag op may be inlined (they have no regions and no dependence on
/// their enclosing function): @loss calls @forward, and hag-autodiff inlines
/// it before differentiating.
struct HAGInlinerInterface : DialectInlinerInterface {
  using DialectInlinerInterface::DialectInlinerInterface;
  bool isLegalToInline(Operation *, Region *, bool,
                       IRMapping &) const override {
    return true;
  }
};
} // namespace

void HAGDialect::initialize() {
  addInterfaces<HAGOpAsmInterface, HAGInlinerInterface>();
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "hag/Dialect/HAG/IR/HAGOps.cpp.inc"
      >();
}
