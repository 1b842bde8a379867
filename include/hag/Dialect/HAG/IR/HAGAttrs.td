//===- HAGAttrs.td - hag attributes and enums --------------*- tablegen -*-===//

#ifndef HAG_ATTRS_TD
#define HAG_ATTRS_TD

include "hag/Dialect/HAG/IR/HAGDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def HAG_CompressMode : I32EnumAttr<"CompressMode",
    "how a compressed level is built from the level below", [
      I32EnumAttrCase<"gated_mean", 0>,
      I32EnumAttrCase<"max", 1>,
      I32EnumAttrCase<"conv", 2>
    ]> {
  let cppNamespace = "::mlir::hag";
  let genSpecializedAttr = 0;
}

def HAG_PyramidConfigAttr : AttrDef<HAG_Dialect, "PyramidConfig"> {
  let mnemonic = "pyramid";
  let summary = "every parameter of a pyramid attention layer (spec section 1)";
  let description = [{
    The static configuration of one pyramid attention layer. Written with
    `key = value` pairs in any order; every key but `heads` and `head_dim` may
    be left out and then takes the default of spec section 1
    (`kv_heads` defaults to `heads`):

    ```mlir
    #hag.pyramid<heads = 8, kv_heads = 2, head_dim = 64, block = 64, ratio = 4,
                 levels = auto, window = 64, summary = 64, compress = gated_mean,
                 causal = true, mass_bias = 1.0, select_k = 0,
                 temperature = 0.1, eps = 1.0e-06, max_seq = 8192>
    ```

    `local_only = true` (printed only when set) is an ablation: each query
    attends to its level-1 window alone (no compressed levels, no summary, no
    select_k) with the same parameters.

    The verifier checks every constraint of spec section 1: `heads %
    kv_heads == 0`, `block % ratio == 0`, `ratio >= 2`, `3 <= levels <= 12` (or
    `auto`, which must resolve to at most 12 levels at `max_seq`), `window >= 1`,
    `1 <= summary <= 1024`, `temperature > 0`, `mass_bias >= 0`,
    `select_k >= 0`, `eps > 0`, `max_seq >= 1`.
  }];
  let parameters = (ins
    "int64_t":$heads,
    "int64_t":$kvHeads,
    "int64_t":$headDim,
    "int64_t":$block,
    "int64_t":$ratio,
    "int64_t":$levels,
    "int64_t":$window,
    "int64_t":$summary,
    APFloatParameter<"gate temperature">:$temperature,
    "::mlir::hag::CompressMode":$compress,
    "bool":$causal,
    APFloatParameter<"weight of the mass bias">:$massBias,
    "int64_t":$selectK,
    APFloatParameter<"guard in divisions and logs">:$eps,
    "int64_t":$maxSeq,
    "bool":$localOnly
  );
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The configuration as the plain struct shared with the analyses.
    ::hag::PyramidParams toParams() const;
    /// Builds the attribute from the plain struct (which must be valid).
    static PyramidConfigAttr fromParams(::mlir::MLIRContext *ctx,
                                        const ::hag::PyramidParams &params);
    /// The number of levels the IR carries: `levels`, or auto resolved at
    /// `max_seq`. Compressed levels are 2 .. getStaticLevels() - 1.
    int64_t getStaticLevels() const;
    int64_t getNumCompressedLevels() const { return getStaticLevels() - 2; }
    bool isAutoLevels() const { return getLevels() == 0; }
    int64_t getQueryDim() const { return getHeads() * getHeadDim(); }
    int64_t getKvDim() const { return getKvHeads() * getHeadDim(); }
  }];
}

#endif // HAG_ATTRS_TD
