//===- HAGOps.h - hag operations --------------------------------*- C++ -*-===//

#ifndef HAG_DIALECT_HAG_IR_HAGOPS_H
#define HAG_DIALECT_HAG_IR_HAGOPS_H

#include "hag/Dialect/HAG/IR/HAGAttrs.h"
#include "hag/Dialect/HAG/IR/HAGDialect.h"
#include "hag/Dialect/HAG/IR/HAGInterfaces.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "hag/Dialect/HAG/IR/HAGOps.h.inc"

#endif // HAG_DIALECT_HAG_IR_HAGOPS_H
