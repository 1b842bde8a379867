//===- hag-compile.cpp - Model description -> compiled model --------------===//

#include "hag/Driver/HagCompile.h"

int main(int argc, char **argv) {
  return mlir::hag::hagCompileMain(argc, argv);
}
