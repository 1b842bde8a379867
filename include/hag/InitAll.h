//===- InitAll.h - Register hag dialects and passes -------------*- C++ -*-===//

#ifndef HAG_INITALL_H
#define HAG_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace mlir::hag {

/// The hag dialect and the upstream dialects HAG's IR uses (func, tensor,
/// arith). Not registerAllDialects: tools stay small and start fast.
void registerHAGDialects(DialectRegistry &registry);

/// HAG's passes and pipelines plus the upstream passes its pipelines use.
void registerHAGPasses();

} // namespace mlir::hag

#endif // HAG_INITALL_H
