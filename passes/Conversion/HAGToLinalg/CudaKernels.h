//===- CudaKernels.h - the CUDA kernel library -----------------*- C++ -*-===//
//
// The CUDA counterpart of kernels/*.mlir: functions with the same names and
// signatures as the CPU kernel library (so the hag -> linalg patterns are
// shared), whose bodies launch GPU kernels or are parallel loops that
// hag-map-loops-to-gpu turns into kernels.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_CONVERSION_HAGTOLINALG_CUDAKERNELS_H
#define HAG_CONVERSION_HAGTOLINALG_CUDAKERNELS_H

#include "mlir/Support/LLVM.h"

#include <cstdint>

namespace mlir {
class Location;
class MLIRContext;
class OpBuilder;
class ModuleOp;
namespace func {
class FuncOp;
} // namespace func
namespace gpu {
class GPUModuleOp;
} // namespace gpu

namespace hag {

/// Parses `source` (one or more files of a kernel library, CPU or CUDA)
/// and copies into `module` every function it does not have yet, unless
/// `symbol` is already there (defined in HAGToLinalg.cpp).
LogicalResult loadKernelLibrary(ModuleOp module, StringRef symbol,
                                StringRef source, StringRef fileName);

/// `gpu.module @hag_cuda_matmul` with `@hag_matmul_nt_f16`, the FP16 Tensor
/// Core kernel of C = A B^T (f32 in memory); see CudaMatmulKernel.cpp.
gpu::GPUModuleOp buildCudaMatmulKernels(OpBuilder &b, Location loc);
/// Its launch configuration: a block computes a cudaMatmulBlockM() x
/// cudaMatmulBlockN() tile of C with cudaMatmulThreads() threads.
int64_t cudaMatmulBlockM();
int64_t cudaMatmulBlockN();
int64_t cudaMatmulThreads();

/// Adds to `module` the CUDA kernel library functions it does not have yet:
/// the loops (`hag_gate_epilogue`) with their bodies, the functions that
/// launch hand-written kernels (`hag_matmul_nt`) as declarations, and marks
/// the module `gpu.container_module`.
/// `gpu.module @hag_cuda_attention`: the Tensor Core cross-level attention
/// kernel for each head size of `sizes` (32, 64 or 128).
gpu::GPUModuleOp buildCudaAttentionKernels(OpBuilder &b, Location loc,
                                           ArrayRef<int64_t> sizes);
/// Gives `decl` (@hag_gpu_attention_tc<d>, attention_vector.mlir) the body
/// that launches the head size d kernel of `kernels`.
void buildCudaAttentionLauncher(OpBuilder &b, func::FuncOp decl, int64_t d,
                                gpu::GPUModuleOp kernels);

/// `gpu.module @hag_cuda_gate`: the gate epilogue with a warp per row, for
/// @hag_gate_epilogue (`decl`, cuda/library.mlir), and its launcher.
gpu::GPUModuleOp buildCudaGateKernel(OpBuilder &b, Location loc,
                                     func::FuncOp decl);
void buildCudaGateLauncher(OpBuilder &b, func::FuncOp decl,
                           gpu::GPUModuleOp kernels);

/// The location of everything the CUDA kernel library adds (its functions,
/// launchers and C++-built kernels): not a line of the model's source.
Location cudaLibraryLoc(MLIRContext *ctx);

LogicalResult loadCudaKernelLibrary(ModuleOp module);

/// Gives the declared launchers their bodies (gpu.launch_func of the
/// Tensor Core kernels) and adds the GPU modules they launch. Runs after
/// bufferization and buffer deallocation, which cannot see through a
/// launch's memory effects. With `emulate`, the bodies are parallel loops
/// with the kernels' numerics instead (hag-map-loops-to-gpu{emulate}).
LogicalResult defineCudaKernelLaunchers(ModuleOp module, bool emulate = false);

} // namespace hag
} // namespace mlir

#endif // HAG_CONVERSION_HAGTOLINALG_CUDAKERNELS_H
