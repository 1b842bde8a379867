//===- Pipelines.cpp - hag phase pipelines --------------------------------===//

#include "hag/Pipelines/Pipelines.h"
#include "hag/Conversion/Passes.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;
using namespace mlir::hag;

void mlir::hag::buildHAGPhasePipeline(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addNestedPass<func::FuncOp>(createHAGFusePyramid());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void mlir::hag::buildTrainPhasePipeline(OpPassManager &pm,
                                        DictionaryAttr config,
                                        int64_t dataParallel,
                                        int64_t pipelineStages) {
  std::string precision = "fp32";
  if (auto a = config.getAs<StringAttr>("precision"))
    precision = a.getValue().str();
  if (pipelineStages > 1) {
    // Each stage's backward pass is the gradient of its objective; data
    // parallelism is in the stages' update entries (hag-train-step).
    for (int64_t s = 0; s < pipelineStages; ++s) {
      std::string objective = "stage" + std::to_string(s) + "_objective";
      HAGAutodiffOptions autodiff;
      autodiff.entry = objective;
      // Dynamic loss scaling seeds the last stage's backward with the
      // scale; the gradients it sends back carry the scale to the others.
      autodiff.seedArgument =
          precision == "fp16-mixed" && s == pipelineStages - 1;
      pm.addPass(createHAGAutodiff(autodiff));
      if (precision != "fp32") {
        HAGMixedPrecisionOptions mixed;
        mixed.entry = objective + "_grad";
        mixed.precision = precision;
        pm.addPass(createHAGMixedPrecision(mixed));
      }
    }
  } else {
    HAGAutodiffOptions autodiff;
    autodiff.entry = "loss";
    // Dynamic loss scaling seeds the backward pass with the scale.
    autodiff.seedArgument = precision == "fp16-mixed";
    pm.addPass(createHAGAutodiff(autodiff));
    if (precision != "fp32") {
      HAGMixedPrecisionOptions mixed;
      mixed.entry = "loss_grad";
      mixed.precision = precision;
      pm.addPass(createHAGMixedPrecision(mixed));
    }
    if (dataParallel > 1) {
      HAGDataParallelOptions data;
      data.degree = dataParallel;
      pm.addPass(createHAGDataParallel(data));
    }
  }
  HAGTrainStepOptions o;
  auto f = [&](StringRef key, double &out) {
    if (auto a = config.getAs<FloatAttr>(key))
      out = a.getValueAsDouble();
  };
  auto i = [&](StringRef key, int64_t &out) {
    if (auto a = config.getAs<IntegerAttr>(key))
      out = a.getInt();
  };
  auto s = [&](StringRef key, std::string &out) {
    if (auto a = config.getAs<StringAttr>(key))
      out = a.getValue().str();
  };
  f("lr", o.lr);
  f("beta1", o.beta1);
  f("beta2", o.beta2);
  f("eps", o.eps);
  f("weight_decay", o.weightDecay);
  i("warmup", o.warmup);
  i("steps", o.total);
  s("schedule", o.schedule);
  f("clip", o.clip);
  s("precision", o.precision);
  i("growth_interval", o.growthInterval);
  pm.addPass(createHAGTrainStep(o));
}

/// One-shot bufferization across functions (identity layouts at their
/// boundaries), ownership-based deallocation, cleanup on buffers, and each
/// temporary freed after its last use (hag-early-dealloc).
static void addBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // Free each temporary after its last use, not at the end of the function.
  pm.addNestedPass<func::FuncOp>(createHAGEarlyDealloc());
}

/// The CPU lowering from bufferized parallel loops to the LLVM dialect.
static void addCPULoopsToLLVM(OpPassManager &pm, bool amx = false) {
  pm.addNestedPass<func::FuncOp>(createHAGSequentialInnerLoops());
  pm.addPass(createHAGApproximateMath());
  // Parallel loops (batch x head x query block, matmul row tiles, level
  // building) become OpenMP work-sharing loops; libomp runs them on all
  // cores (OMP_NUM_THREADS to limit). Canonicalization after the conversion
  // is required (it merges the blocks an alloca_scope may not have).
  pm.addPass(createConvertSCFToOpenMPPass());
  pm.addPass(createCanonicalizerPass());
  // AMX accumulators carried by loops become LLVM's tile type first.
  if (amx)
    pm.addPass(createHAGAMXTilesToLLVMTypes());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.amx = amx;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::hag::buildCPULoweringPipeline(OpPassManager &pm, bool amx) {
  HAGLowerToLinalgOptions lowerOptions;
  lowerOptions.amx = amx;
  pm.addPass(createHAGLowerToLinalg(lowerOptions));
  // Elementwise arith on tensors (mixed precision's casts, the loss-scale
  // unscaling) becomes linalg.generic.
  pm.addPass(createConvertElementwiseToLinalgPass());
  // The kernel helpers are small private functions: inline them so the
  // configuration constants reach the loops.
  pm.addPass(createInlinerPass());
  pm.addPass(createCanonicalizerPass());
  // Kernels that are never inlined (@hag_attend_block runs once per
  // (batch, query block, head) from an OpenMP loop) get the configuration
  // constants of their call sites: interprocedural SCCP specialises them
  // when every call agrees, so their loops over d, B, W, ... have constant
  // trip counts (before it, LLVM turned the per-row copies and zero fills
  // into ~1M memcpy/memset calls per layer at N = 16K).
  pm.addPass(createSCCPPass());
  pm.addPass(createCanonicalizerPass());
  // No CSE on tensors here: it would merge two bufferization.to_buffer of
  // one tensor (they are pure), and one-shot bufferization would then see
  // only the first read and let an op in between reuse the buffer in place
  // (seen: a gradient overwriting the RoPE'd queries that the attention
  // backward reads later). CSE runs on the bufferized form below.

  addBufferization(pm);

  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  addCPULoopsToLLVM(pm, amx);
}

/// The CUDA lowering up to bufferized loops: hag -> linalg with the CUDA
/// kernel library, bufferization, deallocation, linalg -> parallel loops.
static void addCUDAFrontHalf(OpPassManager &pm) {
  HAGLowerToLinalgOptions lowerOptions;
  lowerOptions.target = "cuda";
  pm.addPass(createHAGLowerToLinalg(lowerOptions));
  pm.addPass(createConvertElementwiseToLinalgPass());
  // The CPU library functions the CUDA attention does not use (its own
  // attend loop, decoding) go before anything maps their loops.
  pm.addPass(createSymbolDCEPass());
  pm.addPass(createInlinerPass());
  pm.addPass(createCanonicalizerPass());
  // Bufferization as on the CPU (see there for why no CSE before it).
  // Kernels run one after the other on one stream: freeing a temporary
  // after its last use is safe there too.
  addBufferization(pm);
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToParallelLoopsPass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::hag::buildCUDALoweringPipeline(OpPassManager &pm,
                                          const std::string &chip) {
  addCUDAFrontHalf(pm);
  pm.addPass(createHAGMapLoopsToGPU());
  // Drops the host's dead copies of what moved into kernels.
  pm.addPass(createCanonicalizerPass());
  // Constants and dims the kernels use go into them before outlining, which
  // no longer sinks anything itself: a loop's static trip counts, block
  // size and the body's constants are then immediates in the kernel (a
  // division by 512 is a shift, not a division by a parameter).
  pm.addPass(createGpuLaunchSinkIndexComputationsPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createHAGCheckHostCode());
  pm.addPass(createSymbolDCEPass());

  GpuNVVMAttachTargetOptions attach;
  attach.chip = chip;
  attach.features = "+ptx80";
  attach.optLevel = 3;
  pm.addPass(createGpuNVVMAttachTarget(attach));
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createLowerAffinePass());
  kernels.addPass(createSCFToControlFlowPass());
  ConvertGpuOpsToNVVMOpsOptions toNVVM;
  kernels.addPass(createConvertGpuOpsToNVVMOps(toNVVM));
  kernels.addPass(createConvertNVGPUToNVVMPass());
  kernels.addPass(createConvertVectorToLLVMPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());

  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  // Buffers through the generic allocation functions, which
  // hag-device-allocations points at device memory (before gpu-to-llvm,
  // whose own memref patterns would call malloc).
  FinalizeMemRefToLLVMConversionPassOptions memrefToLLVM;
  memrefToLLVM.useGenericFunctions = true;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefToLLVM));
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createHAGDeviceAllocations());
  pm.addPass(createCanonicalizerPass());
}

void mlir::hag::buildCUDAEmulationPipeline(OpPassManager &pm) {
  addCUDAFrontHalf(pm);
  HAGMapLoopsToGPUOptions map;
  map.emulate = true;
  pm.addPass(createHAGMapLoopsToGPU(map));
  pm.addPass(createCanonicalizerPass());
  addCPULoopsToLLVM(pm);
}

void mlir::hag::registerHAGPipelines() {
  PassPipelineRegistration<>(
      "hag-pipeline-cpu",
      "The CPU lowering: hag -> linalg/scf -> bufferized loops -> LLVM dialect",
      [](OpPassManager &pm) { buildCPULoweringPipeline(pm); });
  PassPipelineRegistration<>(
      "hag-pipeline-hag",
      "The hag phase: canonicalize, fuse pyramid attention, CSE",
      [](OpPassManager &pm) { buildHAGPhasePipeline(pm); });
  struct CUDAPipelineOptions : public PassPipelineOptions<CUDAPipelineOptions> {
    Option<std::string> chip{*this, "chip",
                             llvm::cl::desc("GPU architecture: sm_80, sm_90a"),
                             llvm::cl::init("sm_80")};
  };
  PassPipelineRegistration<CUDAPipelineOptions>(
      "hag-pipeline-cuda",
      "The CUDA lowering: hag -> linalg with Tensor Core kernels -> "
      "bufferized loops -> GPU kernels in NVVM, host code in LLVM",
      [](OpPassManager &pm, const CUDAPipelineOptions &o) {
        buildCUDALoweringPipeline(pm, o.chip);
      });
  PassPipelineRegistration<>(
      "hag-pipeline-cuda-emulator",
      "The CUDA lowering's kernels as CPU loops (blocks x threads), the "
      "Tensor Core matmul as loops with its numerics: tests the CUDA path "
      "without a GPU",
      [](OpPassManager &pm) { buildCUDAEmulationPipeline(pm); });
}
