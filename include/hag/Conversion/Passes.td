//===- Passes.td - hag conversion passes -------------------*- tablegen -*-===//

#ifndef HAG_CONVERSION_PASSES_TD
#define HAG_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def HAGLowerToLinalg : Pass<"hag-lower-to-linalg", "::mlir::ModuleOp"> {
  let summary = "Lower hag ops to linalg, tensor, scf, memref, arith and math";
  let description = [{
    The first step of the CPU lowering (architecture.md phase `lower`).
    Language-model ops (embedding, linear, RoPE, RMSNorm, SwiGLU, add,
    cross-entropy) and the memory gate become `linalg.generic` ops on
    tensors. `hag.pyramid_attention` becomes the gate plus a call to a
    pyramid-attention kernel: a private function on memrefs, generated once
    per configuration, that builds the compressed levels and the summaries
    once per call and runs every (batch, head, query block) with one online
    softmax across all levels (spec sections 3-5 and 12). The unfused
    attention ops must have been fused first (`hag-fuse-pyramid`); anything
    left is an error that names the op.
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect", "::mlir::tensor::TensorDialect",
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect", "::mlir::vector::VectorDialect"
  ];
}

#endif // HAG_CONVERSION_PASSES_TD
