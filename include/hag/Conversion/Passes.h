//===- Passes.h - hag conversion passes -------------------------*- C++ -*-===//

#ifndef HAG_CONVERSION_PASSES_H
#define HAG_CONVERSION_PASSES_H

#include "mlir/Pass/Pass.h"
#include "llvm/ADT/StringRef.h"

namespace mlir {
class RewritePatternSet;
} // namespace mlir

namespace mlir::hag {

#define GEN_PASS_DECL
#include "hag/Conversion/Passes.h.inc"

/// On CUDA, the argument attribute of an entry point's input that stays in
/// host memory: hag-lower-to-linalg{target=cuda} marks the scalar inputs
/// (the decoding position, read by the host code), the runtime passes them
/// without copying them to the device, and the host-memory rules of
/// hag-map-loops-to-gpu and hag-check-host-code count them as host memory.
inline constexpr llvm::StringLiteral kHostArgumentAttr = "hagrt.host";

/// Patterns lowering the language-model ops (embedding, linear, rope,
/// rms_norm, swiglu, add, cross_entropy, memory_gate) to linalg on tensors.
void populateLanguageModelToLinalgPatterns(RewritePatternSet &patterns);

/// The pattern lowering hag.pyramid_attention to the gate and a call to a
/// generated kernel function on memrefs.
void populatePyramidAttentionToLoopsPatterns(RewritePatternSet &patterns);

/// The optimizer ops (adamw, clip_grad_norm, lr_schedule, all_finite,
/// loss_scale_update) as linalg/tensor/arith.
void populateOptimizerToLinalgPatterns(RewritePatternSet &patterns);

/// The gradient ops hag-autodiff makes (linear_backward, sum_rows,
/// embedding_backward, cross_entropy_backward).
void populateGradientsToLinalgPatterns(RewritePatternSet &patterns);

#define GEN_PASS_REGISTRATION
#include "hag/Conversion/Passes.h.inc"

} // namespace mlir::hag

#endif // HAG_CONVERSION_PASSES_H
