//===- HAGOps.td - hag operations --------------------------*- tablegen -*-===//

#ifndef HAG_OPS_TD
#define HAG_OPS_TD

include "hag/Dialect/HAG/IR/HAGDialect.td"
include "hag/Dialect/HAG/IR/HAGAttrs.td"
include "hag/Dialect/HAG/IR/HAGInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def HAG_FloatTensor : RankedTensorOf<[AnyFloat]>;
def HAG_TokenTensor : RankedTensorOf<[I32, I64]>;

class HAG_PureOp<string mnemonic, list<Trait> traits = []>
    : HAG_Op<mnemonic, !listconcat(traits, [
        Pure, DeclareOpInterfaceMethods<HAG_CostOpInterface>])> {
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Language-model ops
//===----------------------------------------------------------------------===//

def HAG_EmbeddingOp : HAG_PureOp<"embedding", [DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "token embedding lookup";
  let description = [{
    `result[b, i, :] = table[tokens[b, i], :]`. Made by the frontend for
    `kind: lm`; lowered by the backends to a gather.

    ```mlir
    %x = hag.embedding %tokens, %table
        : (tensor<?x?xi32>, tensor<256x128xf32>) -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_TokenTensor:$tokens, HAG_FloatTensor:$table);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $tokens `,` $table attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_LinearOp : HAG_PureOp<"linear", [DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "y = x W^T (+ b), PyTorch nn.Linear layout";
  let description = [{
    A projection over the last dimension: `weight` is `[out, in]`, the
    optional `bias` is `[out]`. Made by the frontend for Wq, Wk, Wv, Wo and the
    output head (with the embedding table as weight when tied).

    ```mlir
    %q = hag.linear %h, %wq : (tensor<?x?x128xf32>, tensor<128x128xf32>)
                              -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input, HAG_FloatTensor:$weight,
                       Optional<HAG_FloatTensor>:$bias);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_RopeOp : HAG_PureOp<"rope", [DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "rotary position embedding, rotate-half convention";
  let description = [{
    Rotates every head of `input` (`[batch, seq, heads * head_dim]`) by its
    raw position `offset + i` (spec section 3), or `position + offset + i`
    when the optional index operand is given (incremental decoding). With
    `inverse` it rotates by the negated angle (the transpose of the rotation:
    RoPE's vector-Jacobian product): for `j < d/2`,
    `theta_j = pos * base^(-2j/d)` and the pair `(u_j, u_(j+d/2))` becomes
    `(u_j cos - u_(j+d/2) sin, u_(j+d/2) cos + u_j sin)`.

    ```mlir
    %qr = hag.rope %q {head_dim = 32 : i64, base = 10000.0 : f64}
        : (tensor<?x?x128xf32>) -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input,
                       Optional<Index>:$position,
                       ConfinedAttr<I64Attr, [IntPositive]>:$head_dim,
                       DefaultValuedAttr<F64Attr, "10000.0">:$base,
                       DefaultValuedAttr<I64Attr, "0">:$offset,
                       UnitAttr:$inverse);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`at` $position^)? attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_RMSNormOp : HAG_PureOp<"rms_norm", [DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "RMSNorm with a learned scale over the last dimension";
  let description = [{
    `y = x / sqrt(mean(x^2) + eps) * scale`, `scale` of shape `[D]`.

    ```mlir
    %h = hag.rms_norm %x, %scale {eps = 1.0e-05 : f64}
        : (tensor<?x?x128xf32>, tensor<128xf32>) -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input, HAG_FloatTensor:$scale,
                       DefaultValuedAttr<F64Attr, "1.0e-5">:$eps);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_SwiGLUOp : HAG_PureOp<"swiglu", [DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "SwiGLU MLP: W_down(SiLU(W_gate x) * (W_up x))";
  let description = [{
    The feed-forward half of a block (spec section 7). `w_gate` and `w_up` are
    `[F, D]`, `w_down` is `[D, F]`.

    ```mlir
    %y = hag.swiglu %h, %wg, %wu, %wd
        : (tensor<?x?x128xf32>, tensor<512x128xf32>, tensor<512x128xf32>,
           tensor<128x512xf32>) -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input, HAG_FloatTensor:$w_gate,
                       HAG_FloatTensor:$w_up, HAG_FloatTensor:$w_down);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $w_gate `,` $w_up `,` $w_down attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_AddOp : HAG_PureOp<"add", [Commutative, SameOperandsAndResultType,
                                   DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "elementwise sum (the residual connection)";
  let description = [{
    ```mlir
    %x1 = hag.add %x0, %attn : tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$lhs, HAG_FloatTensor:$rhs);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Collectives (spec section 9)
//===----------------------------------------------------------------------===//

def HAG_AllReduceOp : HAG_Op<"all_reduce", [SameOperandsAndResultType,
                      DeclareOpInterfaceMethods<HAG_CostOpInterface>,
                      DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "elementwise sum (or mean) of a tensor over the ranks of a parallel group";
  let description = [{
    Every rank of `group` (`tensor`: the ranks of one tensor-parallel
    split; `data`: the data-parallel replicas; `pipeline`: the stages of
    one pipeline; `embedding`: its first and last stage, which both hold
    tied embeddings) contributes its `input`, and
    every rank receives the elementwise sum, or with `mean` the sum divided
    by the number of ranks in the group. Made by
    `hag-split-tensor-parallel` after the row-parallel products (W_o,
    W_down) and by `hag-data-parallel` on the loss and the gradients. Not
    `Pure`: it communicates, so it is never hoisted, merged or dropped.

    Its VJP (the sum; Megatron's "g") is the identity: the result, and so
    its gradient, is the same on every rank, and each rank's input
    contributed to it with weight one.

    ```mlir
    %y = hag.all_reduce %partial group("tensor") : tensor<?x?x128xf32>
    %g = hag.all_reduce %grad group("data") mean : tensor<64x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input, StrAttr:$group,
                       UnitAttr:$mean);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat =
      "$input `group` `(` $group `)` (`mean` $mean^)? attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def HAG_CopyToGroupOp : HAG_PureOp<"copy_to_group", [SameOperandsAndResultType,
                      DeclareOpInterfaceMethods<HAG_CostOpInterface>,
                      DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "a replicated value entering rank-local computation (identity; its gradient is summed over the group)";
  let description = [{
    Megatron's "f": the identity in the forward pass, placed by
    `hag-split-tensor-parallel` where a value every rank holds in full (the
    normed hidden state, the memory gate's input and weights) enters
    computation over the rank's own heads or hidden units. Each rank's
    gradient with respect to it covers only its heads, so the VJP sums the
    gradients over `group` (`hag.all_reduce`), and every rank continues the
    backward pass with the whole gradient. Lowers to nothing.

    ```mlir
    %x1 = hag.copy_to_group %x group("tensor") : tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input, StrAttr:$group);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = "$input `group` `(` $group `)` attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def HAG_CrossEntropyOp : HAG_PureOp<"cross_entropy", [DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "mean next-token cross-entropy";
  let description = [{
    `loss = mean over b and i < seq-1 of -log softmax(logits[b, i])[tokens[b, i+1]]`:
    every position that has a next token (spec section 7). The result is a
    0-d f32 tensor. Made by the frontend for the `loss` entry of `kind: lm`.

    ```mlir
    %loss = hag.cross_entropy %logits, %tokens
        : (tensor<?x?x256xf32>, tensor<?x?xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$logits, HAG_TokenTensor:$tokens);
  let results = (outs 0DTensorOf<[F32]>:$loss);
  let assemblyFormat = [{
    $logits `,` $tokens attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Pyramid attention: unfused form (made by the frontend)
//===----------------------------------------------------------------------===//

def HAG_MemoryGateOp : HAG_PureOp<"memory_gate"> {
  let summary = "memory importance score g = sigmoid((w2 . SiLU(W1 x + b1) + b2) / tau)";
  let description = [{
    Spec section 2: one score in (0, 1) per token, shared by all heads. `w1` is
    `[Dg, D]`, `b1` and `w2` are `[Dg]`, `b2` is `[1]`; the temperature is the
    config's. Made by the frontend; `hag-fuse-pyramid` folds it into
    `hag.pyramid_attention`.

    ```mlir
    %g = hag.memory_gate %h, %w1, %b1, %w2, %b2 {config = #hag.pyramid<heads = 4, head_dim = 32>}
        : (tensor<?x?x128xf32>, tensor<128x128xf32>, tensor<128xf32>,
           tensor<128xf32>, tensor<1xf32>) -> tensor<?x?xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input, HAG_FloatTensor:$w1,
                       HAG_FloatTensor:$b1, HAG_FloatTensor:$w2,
                       HAG_FloatTensor:$b2, HAG_PyramidConfigAttr:$config);
  let results = (outs HAG_FloatTensor:$gate);
  let assemblyFormat = [{
    $input `,` $w1 `,` $b1 `,` $w2 `,` $b2 attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_BuildLevelOp : HAG_PureOp<"build_level", [AttrSizedOperandSegments]> {
  let summary = "builds compressed level l from level l-1";
  let description = [{
    Spec section 3. Inputs are level `l-1`: keys and values
    `[batch, n_(l-1), kv_heads * head_dim]` and masses `[batch, n_(l-1)]` (for
    `l = 2` the raw keys, values and gate). Token `j` of level `l` has the `r`
    children `j*r .. j*r+r-1` (fewer at the end); `n_l = ceil(n_(l-1) / r)`.

    - mass: `m_l(j) = sum of the children's masses`;
    - `gated_mean`: `K_l(j) = sum_c S_c / (m_l(j) + eps)`, where the child's
      gate-weighted sum is `S_c = m_c k_c` for raw children (l = 2) and
      `S_c = (m_c + eps) K_c` for compressed ones: exactly the spec's mean over
      the raw span;
    - `max`: the elementwise max of the children;
    - `conv`: `K_l(j) = sum_t A[t] * (m_c / (m_l(j) + eps)) K_c` with the
      learned `conv_keys` / `conv_values` weights `A` of shape
      `[kv_heads, r, head_dim]` (required for `conv`, forbidden otherwise).

    Made by the frontend, one per compressed level; folded by
    `hag-fuse-pyramid` into `hag.pyramid_attention`.

    ```mlir
    %k2, %v2, %m2 = hag.build_level %k, %v, %g {config = #hag.pyramid<heads = 4, head_dim = 32>, level = 2 : i64}
        : (tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?xf32>)
        -> (tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$keys, HAG_FloatTensor:$values,
                       HAG_FloatTensor:$mass,
                       Optional<HAG_FloatTensor>:$conv_keys,
                       Optional<HAG_FloatTensor>:$conv_values,
                       HAG_PyramidConfigAttr:$config, I64Attr:$level);
  let results = (outs HAG_FloatTensor:$level_keys, HAG_FloatTensor:$level_values,
                      HAG_FloatTensor:$level_mass);
  let assemblyFormat = [{
    $keys `,` $values `,` $mass (`conv` `(` $conv_keys^ `,` $conv_values `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_GlobalSummaryOp : HAG_PureOp<"global_summary"> {
  let summary = "the global summary tokens of every query block";
  let description = [{
    Spec section 4. From the raw keys, values (`[batch, N, kv_heads *
    head_dim]`) and gate (`[batch, N]`), computes for every query block `b`
    the `T'_b = min(T, |P_b|)` gated means over the floor-rule segments of the
    block's summary prefix `P_b` (causal: `[0, a_(L-1) sigma_(L-1))`;
    bidirectional: `[0, N)`), with their masses. Results are
    `[batch, blocks, T, kv_heads * head_dim]` and `[batch, blocks, T]`, where
    `blocks = ceil(N / B)` when causal and `1` when bidirectional (all blocks
    share one summary); entries `t >= T'_b` are zero and not keys.

    Made by the frontend; folded by `hag-fuse-pyramid` into
    `hag.pyramid_attention`.

    ```mlir
    %sk, %sv, %sm = hag.global_summary %k, %v, %g {config = #hag.pyramid<heads = 4, head_dim = 32>}
        : (tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?xf32>)
        -> (tensor<?x?x64x128xf32>, tensor<?x?x64x128xf32>, tensor<?x?x64xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$keys, HAG_FloatTensor:$values,
                       HAG_FloatTensor:$gate, HAG_PyramidConfigAttr:$config);
  let results = (outs HAG_FloatTensor:$summary_keys,
                      HAG_FloatTensor:$summary_values,
                      HAG_FloatTensor:$summary_mass);
  let assemblyFormat = [{
    $keys `,` $values `,` $gate attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_CrossLevelAttentionOp
    : HAG_PureOp<"cross_level_attention", [AttrSizedOperandSegments]> {
  let summary = "every query attends to its windows of every level and the summary, in one softmax";
  let description = [{
    Spec sections 4 and 5. Operands: queries `[batch, N, heads * d]` (after
    RoPE), raw keys and values `[batch, N, kv_heads * d]`, the gate
    `[batch, N]` (the raw masses, also used by `select_k`), one key, value and
    mass tensor per compressed level `2 .. L-1` (from `hag.build_level`), and
    the summary (from `hag.global_summary`). Applies the window rules of
    section 4 and the mass bias `beta * log(m + eps)` and returns the per-head
    outputs `o` `[batch, N, heads * d]` (before Wo).

    Made by the frontend; `hag-fuse-pyramid` replaces it, together with the
    ops that compute its operands, by `hag.pyramid_attention`.

    ```mlir
    %o = hag.cross_level_attention %q, %k, %v, %g
        levels [%k2, %k3] [%v2, %v3] [%m2, %m3] summary (%sk, %sv, %sm)
        {config = #hag.pyramid<heads = 4, head_dim = 32>} : (...) -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$queries, HAG_FloatTensor:$keys,
                       HAG_FloatTensor:$values, HAG_FloatTensor:$gate,
                       Variadic<HAG_FloatTensor>:$level_keys,
                       Variadic<HAG_FloatTensor>:$level_values,
                       Variadic<HAG_FloatTensor>:$level_masses,
                       HAG_FloatTensor:$summary_keys,
                       HAG_FloatTensor:$summary_values,
                       HAG_FloatTensor:$summary_mass,
                       HAG_PyramidConfigAttr:$config);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $queries `,` $keys `,` $values `,` $gate
    `levels` `[` $level_keys `]` `[` $level_values `]` `[` $level_masses `]`
    `summary` `(` $summary_keys `,` $summary_values `,` $summary_mass `)`
    attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Pyramid attention: fused form (made by hag-fuse-pyramid)
//===----------------------------------------------------------------------===//

def HAG_PyramidAttentionOp
    : HAG_PureOp<"pyramid_attention", [AttrSizedOperandSegments,
                 DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "fused memory gate, level building, summary and cross-level attention";
  let description = [{
    The form the backends consume: computes the gate from `gate_input` and
    the gate weights (spec section 2), builds the compressed levels and the
    summaries once per call (section 3), and runs cross-level attention
    (sections 4-5), returning `o` `[batch, N, heads * d]` before Wo. With
    `compress = conv` it takes one `[kv_heads, r, d]` weight per compressed
    level for keys (`conv_keys`) and for values (`conv_values`).

    Made by `hag-fuse-pyramid` from `hag.memory_gate`, `hag.build_level`,
    `hag.global_summary` and `hag.cross_level_attention`; consumed by the
    CPU and GPU lowerings.

    ```mlir
    %o = hag.pyramid_attention %q, %k, %v gate (%h, %w1, %b1, %w2, %b2)
        {config = #hag.pyramid<heads = 4, head_dim = 32>} : (...) -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$queries, HAG_FloatTensor:$keys,
                       HAG_FloatTensor:$values, HAG_FloatTensor:$gate_input,
                       HAG_FloatTensor:$gate_w1, HAG_FloatTensor:$gate_b1,
                       HAG_FloatTensor:$gate_w2, HAG_FloatTensor:$gate_b2,
                       Variadic<HAG_FloatTensor>:$conv_keys,
                       Variadic<HAG_FloatTensor>:$conv_values,
                       HAG_PyramidConfigAttr:$config);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $queries `,` $keys `,` $values
    `gate` `(` $gate_input `,` $gate_w1 `,` $gate_b1 `,` $gate_w2 `,` $gate_b2 `)`
    (`conv` `[` $conv_keys^ `]` `[` $conv_values `]`)?
    attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_PyramidDecodeOp
    : HAG_Op<"pyramid_decode", [AttrSizedOperandSegments]> {
  let summary = "one incremental-decoding step of causal pyramid attention";
  let description = [{
    Spec section 10: appends the token at raw index `position` (queries,
    keys, values and gate input `[batch, 1, ...]`, RoPE already applied) to
    the layer's cache and returns its attention output `o`
    `[batch, 1, heads * d]` before Wo, equal to row `position` of
    `hag.pyramid_attention` over tokens `0 .. position`. Steps must come in
    order 0, 1, 2, ... on a zeroed cache.

    The cache operands are buffers the op reads and updates in place (the
    layout is `::hag::DecodeCacheLayout`): keys and values
    `[batch, rows, kv_heads * d]` (raw tokens, the compressed levels at their
    `max_seq` lengths, the block's summary tokens and select_k picks), a
    `[batch, 2 * rows]` f32 buffer of mass biases and masses, and the f64
    running prefix sums of g*k, g*v `[batch, max_seq + 1, kv_heads * d]` and
    g `[batch, max_seq + 1]`. A step updates the one token of every level
    that contains `position` and, at the first token of a query block, the
    block's summary tokens and select_k picks; its attention reads
    O(B + (L-2) W + T + select_k) keys.

    ```mlir
    %o = hag.pyramid_decode %q, %k, %v gate (%h, %w1, %b1, %w2, %b2)
        at %pos cache (%ck, %cv, %aux, %pk, %pv, %pg)
        {config = #hag.pyramid<heads = 4, head_dim = 32>} : (...) -> tensor<?x1x128xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$queries, HAG_FloatTensor:$keys,
                       HAG_FloatTensor:$values, HAG_FloatTensor:$gate_input,
                       HAG_FloatTensor:$gate_w1, HAG_FloatTensor:$gate_b1,
                       HAG_FloatTensor:$gate_w2, HAG_FloatTensor:$gate_b2,
                       Variadic<HAG_FloatTensor>:$conv_keys,
                       Variadic<HAG_FloatTensor>:$conv_values,
                       Index:$position,
                       Arg<MemRefRankOf<[F32], [3]>, "cached keys",
                           [MemRead, MemWrite]>:$cache_keys,
                       Arg<MemRefRankOf<[F32], [3]>, "cached values",
                           [MemRead, MemWrite]>:$cache_values,
                       Arg<MemRefRankOf<[F32], [2]>, "mass biases and masses",
                           [MemRead, MemWrite]>:$cache_aux,
                       Arg<MemRefRankOf<[F64], [3]>, "prefix sums of g*k",
                           [MemRead, MemWrite]>:$prefix_keys,
                       Arg<MemRefRankOf<[F64], [3]>, "prefix sums of g*v",
                           [MemRead, MemWrite]>:$prefix_values,
                       Arg<MemRefRankOf<[F64], [2]>, "prefix sums of g",
                           [MemRead, MemWrite]>:$prefix_gate,
                       HAG_PyramidConfigAttr:$config);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $queries `,` $keys `,` $values
    `gate` `(` $gate_input `,` $gate_w1 `,` $gate_b1 `,` $gate_w2 `,` $gate_b2 `)`
    (`conv` `[` $conv_keys^ `]` `[` $conv_values `]`)?
    `at` $position
    `cache` `(` $cache_keys `,` $cache_values `,` $cache_aux `,` $prefix_keys `,`
    $prefix_values `,` $prefix_gate `)`
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Optimizer ops (spec section 8): the update rules of a training step
//===----------------------------------------------------------------------===//

def HAG_ScalarF32 : 0DTensorOf<[F32]>;
def HAG_ScalarI64 : 0DTensorOf<[I64]>;
def HAG_ScalarI1 : 0DTensorOf<[I1]>;

def HAG_AdamWOp : HAG_PureOp<"adamw"> {
  let summary = "one AdamW update of a parameter (decoupled weight decay)";
  let description = [{
    Spec section 8, in the order of PyTorch's `torch::optim::AdamW` for step
    `t` (1-based, `step` holds t) and learning rate `lr`:

    ```
    p  = p * (1 - lr * weight_decay)
    m' = m * beta1 + g * (1 - beta1)
    v' = v * beta2 + g * g * (1 - beta2)
    p' = p - (lr / (1 - beta1^t)) * m' / (sqrt(v') / sqrt(1 - beta2^t) + eps)
    ```

    The scalars are computed in f64 and rounded to the element type. With
    the optional `if %apply` operand false (a step whose gradients were not
    finite), the results are the inputs unchanged. `weight_decay = 0` for
    vectors (norm scales, biases, gates): spec 8 decays matrices only.

    ```mlir
    %p2, %m2, %v2 = hag.adamw %p, %g, %m, %v step %t lr %lr
        {beta1 = 0.9, beta2 = 0.95, eps = 1.0e-08, weight_decay = 0.1}
        : (tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x32xf32>,
           tensor<64x32xf32>, tensor<i64>, tensor<f32>)
        -> (tensor<64x32xf32>, tensor<64x32xf32>, tensor<64x32xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$param, HAG_FloatTensor:$grad,
                       HAG_FloatTensor:$exp_avg, HAG_FloatTensor:$exp_avg_sq,
                       HAG_ScalarI64:$step, HAG_ScalarF32:$lr,
                       Optional<HAG_ScalarI1>:$apply,
                       DefaultValuedAttr<F64Attr, "0.9">:$beta1,
                       DefaultValuedAttr<F64Attr, "0.95">:$beta2,
                       DefaultValuedAttr<F64Attr, "1.0e-8">:$eps,
                       DefaultValuedAttr<F64Attr, "0.1">:$weight_decay);
  let results = (outs HAG_FloatTensor:$new_param, HAG_FloatTensor:$new_exp_avg,
                      HAG_FloatTensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `step` $step `lr` $lr
    (`if` $apply^)? attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_ClipGradNormOp : HAG_PureOp<"clip_grad_norm"> {
  let summary = "global-norm gradient clipping";
  let description = [{
    `norm = sqrt(sum over every element of every gradient of g^2)` (summed
    in f64); when `max_norm / (norm + 1e-6) < 1` every gradient is multiplied
    by that factor (PyTorch's `clip_grad_norm_`). Returns the clipped
    gradients and the norm before clipping.

    ```mlir
    %c:2, %norm = hag.clip_grad_norm %g1, %g2 {max_norm = 1.0}
        : (tensor<8x4xf32>, tensor<4xf32>) -> (tensor<8x4xf32>, tensor<4xf32>, tensor<f32>)
    ```
  }];
  let arguments = (ins Variadic<HAG_FloatTensor>:$grads,
                       DefaultValuedAttr<F64Attr, "1.0">:$max_norm);
  let results = (outs Variadic<HAG_FloatTensor>:$clipped, HAG_ScalarF32:$norm);
  let assemblyFormat = [{
    $grads attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_LRScheduleOp : HAG_PureOp<"lr_schedule"> {
  let summary = "the learning rate of a step: linear warmup, then constant or cosine";
  let description = [{
    For step `t` (1-based): `lr * t / warmup` while `t <= warmup`; after it
    `lr` (`schedule = "constant"`) or
    `lr * 0.5 * (1 + cos(pi * min(1, (t - warmup) / (total - warmup))))`
    (`schedule = "cosine"`, reaching 0 at `t = total`). Computed in f64.

    ```mlir
    %lr = hag.lr_schedule %t {lr = 3.0e-4, warmup = 100 : i64, total = 1000 : i64,
                              schedule = "cosine"} : (tensor<i64>) -> tensor<f32>
    ```
  }];
  let arguments = (ins HAG_ScalarI64:$step, F64Attr:$lr,
                       DefaultValuedAttr<I64Attr, "0">:$warmup,
                       DefaultValuedAttr<I64Attr, "1">:$total,
                       DefaultValuedAttr<StrAttr, "\"constant\"">:$schedule);
  let results = (outs HAG_ScalarF32:$result);
  let assemblyFormat = [{
    $step attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_AllFiniteOp : HAG_PureOp<"all_finite"> {
  let summary = "true when no element of any tensor is inf or NaN";
  let description = [{
    The found-inf check of dynamic loss scaling (spec section 8).

    ```mlir
    %ok = hag.all_finite %g1, %g2 : (tensor<8x4xf32>, tensor<4xf32>) -> tensor<i1>
    ```
  }];
  let arguments = (ins Variadic<HAG_FloatTensor>:$tensors);
  let results = (outs HAG_ScalarI1:$result);
  let assemblyFormat = [{
    $tensors attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_LossScaleUpdateOp : HAG_PureOp<"loss_scale_update"> {
  let summary = "dynamic loss scaling: back off on overflow, grow after a run of finite steps";
  let description = [{
    The GradScaler convention of spec section 8: when `finite` is false,
    `scale * backoff_factor` and a good-step count of 0; otherwise the count
    plus one, and when that reaches `growth_interval`, `scale *
    growth_factor` and a count of 0.

    ```mlir
    %s2, %n2 = hag.loss_scale_update %ok, %scale, %good {growth_interval = 2000 : i64}
        : (tensor<i1>, tensor<f32>, tensor<i64>) -> (tensor<f32>, tensor<i64>)
    ```
  }];
  let arguments = (ins HAG_ScalarI1:$finite, HAG_ScalarF32:$scale,
                       HAG_ScalarI64:$good_steps,
                       DefaultValuedAttr<I64Attr, "2000">:$growth_interval,
                       DefaultValuedAttr<F64Attr, "2.0">:$growth_factor,
                       DefaultValuedAttr<F64Attr, "0.5">:$backoff_factor);
  let results = (outs HAG_ScalarF32:$new_scale, HAG_ScalarI64:$new_good_steps);
  let assemblyFormat = [{
    $finite `,` $scale `,` $good_steps attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Gradient ops (made by hag-autodiff)
//===----------------------------------------------------------------------===//

def HAG_LinearBackwardOp : HAG_PureOp<"linear_backward"> {
  let summary = "the gradients of y = x W^T: dx = dy W, dW = sum over rows of dy^T x";
  let description = [{
    ```mlir
    %dx, %dw = hag.linear_backward %dy, %x, %w
        : (tensor<2x7x16xf32>, tensor<2x7x8xf32>, tensor<16x8xf32>)
        -> (tensor<2x7x8xf32>, tensor<16x8xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$result_grad, HAG_FloatTensor:$input,
                       HAG_FloatTensor:$weight);
  let results = (outs HAG_FloatTensor:$input_grad, HAG_FloatTensor:$weight_grad);
  let assemblyFormat = [{
    $result_grad `,` $input `,` $weight attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_SumRowsOp : HAG_PureOp<"sum_rows"> {
  let summary = "sum over every dimension but the last (a bias or scale gradient)";
  let description = [{
    ```mlir
    %db = hag.sum_rows %dy : (tensor<2x7x16xf32>) -> tensor<16xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $input attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_InnerProductOp : HAG_PureOp<"inner_product", [
    DeclareOpInterfaceMethods<HAG_CostOpInterface>,
    DeclareOpInterfaceMethods<HAG_DifferentiableOpInterface>]> {
  let summary = "sum over every element of lhs * rhs (a 0-d f32)";
  let description = [{
    The objective of a pipeline stage that is not the last:
    `sum(h_out * dh_out)`, whose gradient with respect to the stage's input
    and weights is the stage's vector-Jacobian product with the gradient
    `dh_out` that the next stage sent back (made by `hag-split-pipeline`).

    ```mlir
    %s = hag.inner_product %h, %dh : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$lhs, HAG_FloatTensor:$rhs);
  let results = (outs 0DTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def HAG_ScaleByOp : HAG_PureOp<"scale_by", [AllTypesMatch<["input", "result"]>]> {
  let summary = "every element of a tensor times a 0-d scalar";
  let description = [{
    ```mlir
    %y = hag.scale_by %x, %s : (tensor<?x?x64xf32>, tensor<f32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$input, 0DTensorOf<[F32]>:$scale);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_EmbeddingBackwardOp : HAG_PureOp<"embedding_backward"> {
  let summary = "the table's gradient: the result gradient's rows added at their token ids";
  let description = [{
    `dtable[v, :] = sum over (b, i) with tokens[b, i] = v of dy[b, i, :]`;
    the result has the table's type.

    ```mlir
    %dt = hag.embedding_backward %dy, %tokens
        : (tensor<2x7x8xf32>, tensor<2x7xi32>) -> tensor<16x8xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$result_grad, HAG_TokenTensor:$tokens);
  let results = (outs HAG_FloatTensor:$table_grad);
  let assemblyFormat = [{
    $result_grad `,` $tokens attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_CrossEntropyBackwardOp : HAG_PureOp<"cross_entropy_backward"> {
  let summary = "the logits' gradient of the mean next-token cross-entropy";
  let description = [{
    `dlogits[b, i, v] = dloss * (softmax(logits[b, i])[v] - [v == tokens[b, i+1]]) / count`
    for every position with a next token (`count` of them), 0 at the last
    position.

    ```mlir
    %dl = hag.cross_entropy_backward %dloss, %logits, %tokens
        : (tensor<f32>, tensor<2x7x16xf32>, tensor<2x7xi32>) -> tensor<2x7x16xf32>
    ```
  }];
  let arguments = (ins 0DTensorOf<[F32]>:$loss_grad, HAG_FloatTensor:$logits,
                       HAG_TokenTensor:$tokens);
  let results = (outs HAG_FloatTensor:$logits_grad);
  let assemblyFormat = [{
    $loss_grad `,` $logits `,` $tokens attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_RMSNormBackwardOp : HAG_PureOp<"rms_norm_backward"> {
  let summary = "the gradients of y = x r s, r = 1 / sqrt(mean(x^2) + eps)";
  let description = [{
    Per row: `dx = r (dy s) - x r^3 mean(dy s x)`; `dscale = sum over rows
    of dy x r`.

    ```mlir
    %dx, %ds = hag.rms_norm_backward %dy, %x, %scale {eps = 1.0e-05 : f64}
        : (tensor<2x7x8xf32>, tensor<2x7x8xf32>, tensor<8xf32>)
        -> (tensor<2x7x8xf32>, tensor<8xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$result_grad, HAG_FloatTensor:$input,
                       HAG_FloatTensor:$scale,
                       DefaultValuedAttr<F64Attr, "1.0e-5">:$eps);
  let results = (outs HAG_FloatTensor:$input_grad, HAG_FloatTensor:$scale_grad);
  let assemblyFormat = [{
    $result_grad `,` $input `,` $scale attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_SwiGLUActOp : HAG_PureOp<"swiglu_act", [SameOperandsAndResultType]> {
  let summary = "SwiGLU's activation h = SiLU(a) * u (elementwise)";
  let description = [{
    The middle of `hag.swiglu` (a = x Wg^T, u = x Wu^T), recomputed by its
    vector-Jacobian product.

    ```mlir
    %h = hag.swiglu_act %a, %u : tensor<2x7x32xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$gate, HAG_FloatTensor:$up);
  let results = (outs HAG_FloatTensor:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
}

def HAG_SwiGLUActBackwardOp : HAG_PureOp<"swiglu_act_backward"> {
  let summary = "the gradients of h = SiLU(a) * u";
  let description = [{
    `da = dh u SiLU'(a)` with `SiLU'(a) = sig(a) (1 + a (1 - sig(a)))`,
    `du = dh SiLU(a)`.

    ```mlir
    %da, %du = hag.swiglu_act_backward %dh, %a, %u
        : (tensor<2x7x32xf32>, tensor<2x7x32xf32>, tensor<2x7x32xf32>)
        -> (tensor<2x7x32xf32>, tensor<2x7x32xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$result_grad, HAG_FloatTensor:$gate,
                       HAG_FloatTensor:$up);
  let results = (outs HAG_FloatTensor:$gate_grad, HAG_FloatTensor:$up_grad);
  let assemblyFormat = [{
    $result_grad `,` $gate `,` $up attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_GateActivationOp : HAG_PureOp<"gate_activation"> {
  let summary = "the memory gate after its hidden projection: g = sigmoid((w2 . SiLU(a + b1) + b2) / tau)";
  let description = [{
    `a = x W1^T` is the gate's hidden projection without its bias (spec 2).
    Recomputed by the vector-Jacobian product of `hag.pyramid_attention`,
    which needs `g` and `a` again for the backward pass.

    ```mlir
    %g = hag.gate_activation %a, %b1, %w2, %b2 {temperature = 1.000000e-01 : f64}
        : (tensor<2x64x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<1xf32>) -> tensor<2x64xf32>
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$hidden, HAG_FloatTensor:$b1,
                       HAG_FloatTensor:$w2, HAG_FloatTensor:$b2,
                       F64Attr:$temperature);
  let results = (outs HAG_FloatTensor:$gate);
  let assemblyFormat = [{
    $hidden `,` $b1 `,` $w2 `,` $b2 attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_GateBackwardOp : HAG_PureOp<"gate_backward"> {
  let summary = "the gradients of g = sigmoid((w2 . SiLU(a + b1) + b2) / tau)";
  let description = [{
    With `z = a + b1` and `ds = dg g (1 - g) / tau` per token:
    `da = ds w2 SiLU'(z)` (also the gradient of `b1` once summed over
    tokens), `dw2 = sum over tokens of ds SiLU(z)`, `db2 = sum of ds`.

    ```mlir
    %da, %dw2, %db2 = hag.gate_backward %dg, %a, %b1, %g, %w2 {temperature = 1.000000e-01 : f64}
        : (tensor<2x64xf32>, tensor<2x64x32xf32>, tensor<32xf32>, tensor<2x64xf32>, tensor<32xf32>)
        -> (tensor<2x64x32xf32>, tensor<32xf32>, tensor<1xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$gate_grad, HAG_FloatTensor:$hidden,
                       HAG_FloatTensor:$b1, HAG_FloatTensor:$gate,
                       HAG_FloatTensor:$w2, F64Attr:$temperature);
  let results = (outs HAG_FloatTensor:$hidden_grad, HAG_FloatTensor:$w2_grad,
                      HAG_FloatTensor:$b2_grad);
  let assemblyFormat = [{
    $gate_grad `,` $hidden `,` $b1 `,` $gate `,` $w2 attr-dict `:` functional-type(operands, results)
  }];
}

def HAG_PyramidAttentionBackwardOp
    : HAG_PureOp<"pyramid_attention_backward", [AttrSizedOperandSegments]> {
  let summary = "the gradients of cross-level attention, recomputed per query block";
  let description = [{
    The backward of `hag.pyramid_attention` after its gate (spec section 12):
    given `do` (the gradient of the output `o`), the queries, raw keys and
    values (after RoPE), the gate `g` `[batch, N]`, the forward's output `o`
    and the conv weights, returns the gradients of the queries, keys,
    values, gate and conv weights. Per query block it rebuilds the block's
    key set and probabilities (no stored N x N or per-query buffers),
    accumulates dQ per block and dK/dV/dmass per key of every level, then
    pushes the level and summary gradients back through the compression to
    the raw keys, values and gates (the mass bias sends gradient to g too).
    `conv_grads` holds the gradients of `conv_keys`, then of `conv_values`.

    ```mlir
    %dq, %dk, %dv, %dg = hag.pyramid_attention_backward %do, %q, %k, %v, %g, %o
        {config = #hag.pyramid<heads = 4, head_dim = 32>}
        : (...) -> (tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?x128xf32>, tensor<?x?xf32>)
    ```
  }];
  let arguments = (ins HAG_FloatTensor:$result_grad, HAG_FloatTensor:$queries,
                       HAG_FloatTensor:$keys, HAG_FloatTensor:$values,
                       HAG_FloatTensor:$gate, HAG_FloatTensor:$result,
                       Variadic<HAG_FloatTensor>:$conv_keys,
                       Variadic<HAG_FloatTensor>:$conv_values,
                       HAG_PyramidConfigAttr:$config);
  let results = (outs HAG_FloatTensor:$queries_grad, HAG_FloatTensor:$keys_grad,
                      HAG_FloatTensor:$values_grad, HAG_FloatTensor:$gate_grad,
                      Variadic<HAG_FloatTensor>:$conv_grads);
  let assemblyFormat = [{
    $result_grad `,` $queries `,` $keys `,` $values `,` $gate `,` $result
    (`conv` `[` $conv_keys^ `]` `[` $conv_values `]`)?
    attr-dict `:` functional-type(operands, results)
  }];
}

#endif // HAG_OPS_TD
