//===- HAG.td - Umbrella for the hag dialect ---------------*- tablegen -*-===//

#ifndef HAG_TD
#define HAG_TD

include "hag/Dialect/HAG/IR/HAGDialect.td"
include "hag/Dialect/HAG/IR/HAGAttrs.td"
include "hag/Dialect/HAG/IR/HAGInterfaces.td"
include "hag/Dialect/HAG/IR/HAGOps.td"

#endif // HAG_TD
