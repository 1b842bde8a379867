//===- HAGDialect.h - The hag dialect ---------------------------*- C++ -*-===//

#ifndef HAG_DIALECT_HAG_IR_HAGDIALECT_H
#define HAG_DIALECT_HAG_IR_HAGDIALECT_H

#include "mlir/IR/Dialect.h"

#include "hag/Dialect/HAG/IR/HAGDialect.h.inc"

#endif // HAG_DIALECT_HAG_IR_HAGDIALECT_H
