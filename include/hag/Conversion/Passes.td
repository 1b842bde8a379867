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
    "::mlir::func::FuncDialect", "::mlir::vector::VectorDialect",
    "::mlir::gpu::GPUDialect", "::mlir::nvgpu::NVGPUDialect",
    "::mlir::amx::AMXDialect"
  ];
  let options = [
    Option<"amx", "amx", "bool", /*default=*/"false",
           "cpu: the projections' matmuls run on AMX tiles with bf16x3 "
           "operands (f32 accuracy; kernels/matmul_amx.mlir), where the "
           "process may use AMX and the shapes tile (else the AVX-512 "
           "kernel). Only for a target CPU with AMX-BF16: hag-compile "
           "sets it from the target's features">,
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "The device the kernel library is for: cpu (vectorized loops "
           "for the host) or cuda (GPU kernels: matmuls on FP16 Tensor "
           "Cores, the rest as parallel loops that hag-map-loops-to-gpu "
           "turns into kernels)">
  ];
}

def HAGMapLoopsToGPU : Pass<"hag-map-loops-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Map the host functions' parallel loops to GPU blocks and "
                "threads";
  let description = [{
    The CUDA lowering's step from bufferized loops to kernels. Every
    outermost `scf.parallel` of a host function (elementwise ops, norms,
    reductions, the kernel library's bandwidth-bound loops) is collapsed to
    one dimension, tiled by `block-size` and mapped: tiles to `block_x`,
    the iterations of a tile to `thread_x` (consecutive threads take
    consecutive elements of the innermost, contiguous dimension, so loads
    coalesce). `memref.get_global` results and constants the loop uses are
    moved into it, so the kernel reads the constant from device memory.
    Memory copies become such loops; other host code that touches memory
    (a full reduction's loop nest) runs as a one-thread kernel. The kernel
    library's launchers that hag-lower-to-linalg declared (the Tensor Core
    matmul's) get their bodies here, after buffer deallocation.
    `gpu-kernel-outlining` then makes the kernels.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block of the generated kernels">,
    Option<"emulate", "emulate", "bool", /*default=*/"false",
           "Test mode: instead of gpu.launch, an scf.parallel over the "
           "blocks with a loop over each block's threads, the same index "
           "arithmetic; the launchers become loops with the kernels' "
           "numerics (the Tensor Core matmul: f16 operands, f32 "
           "accumulation). The CPU lowering then runs the CUDA path's "
           "kernels (hag-compile --target=cuda-emulator)">
  ];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect", "::mlir::scf::SCFDialect",
    "::mlir::arith::ArithDialect", "::mlir::affine::AffineDialect"
  ];
}

def HAGCheckHostCode : Pass<"hag-check-host-code", "::mlir::ModuleOp"> {
  let summary = "Reject host code that would touch device memory";
  let description = [{
    In a CUDA artifact, every buffer lives in device memory: the host
    functions may only allocate, reshape and pass buffers and launch
    kernels. This pass (after kernel outlining) reports, with its location,
    any host operation that would read or write a buffer's elements (a
    `memref.load`, `memref.store`, `memref.copy`, vector transfer, or a
    loop that was not mapped to the GPU): such a program would crash on
    the GPU, so it is a compile error.
  }];
}

def HAGDeviceAllocations : Pass<"hag-device-allocations", "::mlir::ModuleOp"> {
  let summary = "Host buffer allocations of a CUDA artifact go to device "
                "memory";
  let description = [{
    After the host code is in the LLVM dialect: the calls that
    `finalize-memref-to-llvm{use-generic-functions=true}` made for the
    host functions' `memref.alloc`/`memref.dealloc`
    (`_mlir_memref_to_llvm_alloc`, `_mlir_memref_to_llvm_aligned_alloc`,
    `_mlir_memref_to_llvm_free`) become calls to the runtime's
    `hagrt_cuda_alloc`, `hagrt_cuda_aligned_alloc` and `hagrt_cuda_free`
    (device memory on the session's context). Other `malloc`/`free` calls
    and the kernels' own code (inside `gpu.module`/`gpu.binary`) are not
    touched.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // HAG_CONVERSION_PASSES_TD
