//===- Passes.h - hag transformation passes ---------------------*- C++ -*-===//

#ifndef HAG_TRANSFORMS_PASSES_H
#define HAG_TRANSFORMS_PASSES_H

#include "mlir/Pass/Pass.h"

namespace mlir {
class RewritePatternSet;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace mlir::hag {

#define GEN_PASS_DECL
#include "hag/Transforms/Passes.h.inc"

/// Adds the pattern that turns an unfused pyramid (gate, levels, summary,
/// cross-level attention) into one hag.pyramid_attention.
void populateFusePyramidPatterns(RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "hag/Transforms/Passes.h.inc"

} // namespace mlir::hag

#endif // HAG_TRANSFORMS_PASSES_H
