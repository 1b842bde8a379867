//===- HagCompile.h - The hag-compile driver --------------------*- C++ -*-===//

#ifndef HAG_DRIVER_HAGCOMPILE_H
#define HAG_DRIVER_HAGCOMPILE_H

namespace mlir::hag {

/// The whole of hag-compile: parses the command line, reads a model
/// description (.yaml) or hag IR (.mlir), runs the phases up to
/// --compile-to, and emits IR or a report. Returns the process exit code.
int hagCompileMain(int argc, char **argv);

} // namespace mlir::hag

#endif // HAG_DRIVER_HAGCOMPILE_H
