//===- Pipelines.cpp - hag phase pipelines --------------------------------===//

#include "hag/Pipelines/Pipelines.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlir::hag::buildHAGPhasePipeline(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addNestedPass<func::FuncOp>(createHAGFusePyramid());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void mlir::hag::registerHAGPipelines() {
  PassPipelineRegistration<>(
      "hag-pipeline-hag",
      "The hag phase: canonicalize, fuse pyramid attention, CSE",
      [](OpPassManager &pm) { buildHAGPhasePipeline(pm); });
}
