//===- hag-opt.cpp - mlir-opt for the hag dialect and passes --------------===//

#include "hag/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::hag::registerHAGDialects(registry);
  mlir::hag::registerHAGPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "HAG optimizer driver\n", registry));
}
