//===- HAGAttrs.h - hag attributes ------------------------------*- C++ -*-===//

#ifndef HAG_DIALECT_HAG_IR_HAGATTRS_H
#define HAG_DIALECT_HAG_IR_HAGATTRS_H

#include "hag/Analysis/PyramidParams.h"
#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"

#include "hag/Dialect/HAG/IR/HAGEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "hag/Dialect/HAG/IR/HAGAttrs.h.inc"

#endif // HAG_DIALECT_HAG_IR_HAGATTRS_H
