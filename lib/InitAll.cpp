//===- InitAll.cpp - Register hag dialects and passes ---------------------===//

#include "hag/InitAll.h"
#include "hag/Dialect/HAG/IR/HAGDialect.h"
#include "hag/Pipelines/Pipelines.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void mlir::hag::registerHAGDialects(DialectRegistry &registry) {
  registry.insert<HAGDialect, func::FuncDialect, tensor::TensorDialect,
                  arith::ArithDialect>();
}

void mlir::hag::registerHAGPasses() {
  registerHAGTransformsPasses();
  registerHAGPipelines();
  // Upstream passes used by HAG's pipelines, for hag-opt.
  registerCanonicalizerPass();
  registerCSEPass();
  registerInlinerPass();
  registerSymbolDCEPass();
}
