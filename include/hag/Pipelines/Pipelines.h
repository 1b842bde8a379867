//===- Pipelines.h - hag phase pipelines ------------------------*- C++ -*-===//

#ifndef HAG_PIPELINES_PIPELINES_H
#define HAG_PIPELINES_PIPELINES_H

#include <cstdint>
#include <string>

namespace mlir {
class DictionaryAttr;
class OpPassManager;
} // namespace mlir

namespace mlir::hag {

/// The `hag` phase (architecture.md phase 2): canonicalize, fuse the pyramid
/// into hag.pyramid_attention, CSE. Anchored on the module.
void buildHAGPhasePipeline(OpPassManager &pm);

/// The `train` phase (architecture.md phase 3): hag-autodiff on @loss
/// (hag-mixed-precision for the mixed precisions, hag-data-parallel when
/// `dataParallel` > 1), then hag-train-step with the settings of `config`
/// (the module's `hag.train` attribute, see hag::trainConfigAttr).
/// With `pipelineStages` > 1 (a module split by hag-split-pipeline) the
/// autodiff and mixed precision run on every stage's objective instead.
void buildTrainPhasePipeline(OpPassManager &pm, DictionaryAttr config,
                             std::int64_t dataParallel = 1,
                             std::int64_t pipelineStages = 1);

/// The CPU part of the `lower` phase: hag -> linalg/scf/memref (kernel
/// library inlined) -> one-shot bufferization with buffer deallocation ->
/// loops -> the LLVM dialect, with C-interface wrappers on entry points.
/// `amx`: the target CPU has AMX-BF16 (hag::cpuHasAMX): the projections'
/// matmuls use the AMX kernel (hag-lower-to-linalg{amx}).
void buildCPULoweringPipeline(OpPassManager &pm, bool amx = false);

/// The CUDA part of the `lower` phase (architecture.md phase 5), up to GPU
/// modules in the NVVM dialect inside a host module in the LLVM dialect:
/// hag -> linalg with the CUDA kernel library (Tensor Core matmuls) ->
/// bufferization -> loops mapped to kernels (hag-map-loops-to-gpu) ->
/// outlined `gpu.module`s with an `#nvvm.target` for `chip` (sm_80, sm_90a)
/// -> NVVM; host code -> the LLVM dialect with `gpu.launch_func`s and its
/// buffers in device memory (hag-device-allocations). The PTX and cubins
/// are made by the artifact phase (hag/Target/Cuda.h).
void buildCUDALoweringPipeline(OpPassManager &pm, const std::string &chip);

/// The CUDA lowering run on the CPU, for testing it without a GPU: the same
/// kernel library, bufferization and hag-map-loops-to-gpu as the CUDA
/// pipeline, but every launch becomes parallel loops over blocks and
/// threads with the same index arithmetic, and the Tensor Core matmul loops
/// with its numerics (f16 operands, f32 accumulation); then the CPU
/// lowering to the LLVM dialect (`hag-compile --target=cuda-emulator`).
void buildCUDAEmulationPipeline(OpPassManager &pm);

/// Registers `hag-pipeline-hag` (and later phase pipelines) with the global
/// pass-pipeline registry, for hag-opt.
void registerHAGPipelines();

} // namespace mlir::hag

#endif // HAG_PIPELINES_PIPELINES_H
