//===- Passes.td - hag transformation passes ---------------*- tablegen -*-===//

#ifndef HAG_TRANSFORMS_PASSES_TD
#define HAG_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def HAGFusePyramid : Pass<"hag-fuse-pyramid", "::mlir::func::FuncOp"> {
  let summary = "Fuse gate, level building, summary and cross-level attention";
  let description = [{
    Finds every `hag.cross_level_attention` whose gate comes from a
    `hag.memory_gate` of the same configuration, whose compressed levels are
    the chain of `hag.build_level` ops rooted at the attention's own raw keys,
    values and gate (level l built from level l-1), and whose summary is a
    `hag.global_summary` of those raw keys, values and gate; replaces it with
    one `hag.pyramid_attention` that takes the queries, keys, values, the gate
    input and weights, and the conv weights of every level. The producers are
    erased when nothing else uses them. Anything that does not match is left
    unchanged (and counted in the `not-fused` statistic), never half-fused.

    ```mlir
    %g = hag.memory_gate %h, %w1, %b1, %w2, %b2 {config = #cfg}
    %k2, %v2, %m2 = hag.build_level %k, %v, %g {config = #cfg, level = 2}
    %k3, %v3, %m3 = hag.build_level %k2, %v2, %m2 {config = #cfg, level = 3}
    %sk, %sv, %sm = hag.global_summary %k, %v, %g {config = #cfg}
    %o = hag.cross_level_attention %q, %k, %v, %g levels [%k2, %k3] [%v2, %v3]
         [%m2, %m3] summary (%sk, %sv, %sm) {config = #cfg}
    // becomes
    %o = hag.pyramid_attention %q, %k, %v gate (%h, %w1, %b1, %w2, %b2) {config = #cfg}
    ```
  }];
  let dependentDialects = ["::mlir::hag::HAGDialect"];
  let statistics = [
    Statistic<"numFused", "fused", "Cross-level attentions fused">,
    Statistic<"numNotFused", "not-fused",
              "Cross-level attentions left unfused (operands not in the expected form)">
  ];
}

def HAGApproximateMath : Pass<"hag-approximate-math", "::mlir::ModuleOp"> {
  let summary = "Rewrite f32 math.exp into a polynomial approximation";
  let description = [{
    The attention kernel exponentiates a vector<16xf32> of scores per query
    and key tile. LLVM lowers a vector `llvm.exp` to one libm call per lane;
    the polynomial approximation (Cephes-style range reduction, ~1 ulp in
    f32) stays in vector registers. Only `math.exp` is rewritten: the mass
    bias logs are computed once per key and stay exact.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
}

def HAGAutodiff : Pass<"hag-autodiff", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode autodiff: @<entry>_grad returns the loss and every weight's gradient";
  let description = [{
    Takes the function `entry` (default `loss`), which returns a 0-d f32
    loss, and adds `@<entry>_grad` with the same arguments, returning the
    loss followed by the gradient of the loss with respect to every
    argument that is not a model input (`hag.input`), in argument order.
    Each result carries `hag.grad_of = "<weight name>"`.

    Calls are inlined into the new function first; then the ops are visited
    in reverse and each builds its vector-Jacobian product through
    `DifferentiableOpInterface`; gradients reaching a value from several
    uses are summed with `hag.add`. A weight that does not reach the loss
    gets zeros. An op on the path to the loss without a VJP is an error that
    names it.
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"loss\"",
           "The function to differentiate">,
    Option<"seedArgument", "seed-argument", "bool", /*default=*/"false",
           "Take d loss (the seed of the backward pass, 1 by default) as a "
           "last argument 'loss_seed' (dynamic loss scaling passes the scale)">
  ];
  let dependentDialects = ["::mlir::hag::HAGDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::func::FuncDialect"];
}

def HAGSplitTensorParallel
    : Pass<"hag-split-tensor-parallel", "::mlir::ModuleOp"> {
  let summary = "Megatron-style tensor-parallel split of the forward graphs";
  let description = [{
    Rewrites a language model's forward functions (`forward`, `loss`,
    `decode`, and any other function over the same weights) into the
    program of one of `degree` ranks (spec section 9): W_q, W_k, W_v and the
    conv weights are split by heads and W_gate, W_up by rows (column
    parallel: each rank computes its own heads and hidden units), W_o and
    W_down by columns (row parallel) followed by `hag.all_reduce` over the
    `tensor` group; the memory gate, the norms and the embedding are
    replicated. Replicated values read by the rank-local computation (the
    projections' and the MLP's input, the gate's input and weights) go
    through `hag.copy_to_group`, so that after `hag-autodiff` their
    gradients are summed over the ranks (Megatron's f and g). Each split weight argument gets
    `hag.shard = {dim = D, parts = degree}`: rank r holds the r-th of
    `degree` equal slices along dimension D. The attention configuration
    (module `hag.config` and every op's) becomes the rank's:
    `heads / degree` query heads, `kv_heads / degree` key/value heads; the
    decoding caches shrink to the rank's key/value heads. The module gets
    `hag.parallel_rank_program = {tensor = degree}`.

    `degree` must divide `heads`, `kv_heads` and `mlp_hidden`; the pass runs
    on forward graphs (before `hag-autodiff`) and rejects any op it does not
    know how to split with an error naming it.
  }];
  let options = [
    Option<"degree", "degree", "int64_t", /*default=*/"2",
           "Number of tensor-parallel ranks">
  ];
}

def HAGSplitPipeline : Pass<"hag-split-pipeline", "::mlir::ModuleOp"> {
  let summary = "Pipeline parallelism: the layers of a language model as contiguous stages";
  let description = [{
    Spec section 9's pipeline split, on the forward graphs (after the hag
    phase and hag-split-tensor-parallel, before hag-autodiff). The stages
    are planned by the cost model (see PipelinePlan.h: contiguous layers,
    the most expensive stage as cheap as possible, the embedding on the
    first stage and the final norm, head and loss on the last); every op
    of `@loss` (with `@forward` inlined) goes to the stage of its layer.
    Each cut must be crossed by one activation, the residual stream.

    For each stage s it adds `@stage<s>_forward(tokens, [stage.input],
    <the stage's weights>)` returning the activation the next stage reads
    (`[batch, N, d_model]`) or, on the last stage, the loss; and the
    private objective `@stage<s>_objective`, whose gradient is the stage's
    backward pass: `hag.inner_product` of the output with
    `stage.output_grad` (the gradient the next stage sends back), the loss
    on the last stage, with `stage.input` differentiable. A weight read by
    two stages (tied embeddings: the first and the last) is marked
    `hag.pipeline_shared = <first stage>` on both. For inference it adds
    `@stage<P-1>_logits(tokens, stage.input, <weights>)`, the last stage's
    ops up to `@forward`'s result, and, when the module has `@decode`,
    `@stage<s>_decode(tokens, position, [stage.input], <the stage's caches
    and weights>)` cut at the same layers (ops that read only the inputs,
    like the position as an index, are recomputed on every stage that needs
    them). `@forward`, `@loss` and `@decode` are removed; the module gets `hag.pipeline = {stages,
    microbatches, first_layers}` and `hag.parallel_rank_program`'s
    `pipeline`.
  }];
  let options = [
    Option<"stages", "stages", "int64_t", /*default=*/"2",
           "Number of pipeline stages">,
    Option<"microbatches", "microbatches", "int64_t", /*default=*/"1",
           "Micro-batches per step (1F1B)">,
    Option<"seq", "seq", "int64_t", /*default=*/"0",
           "Sequence length the stages are balanced at (0: train.seq, "
           "else max_seq)">
  ];
  let dependentDialects = ["::mlir::hag::HAGDialect",
                           "::mlir::func::FuncDialect"];
}

def HAGDataParallel : Pass<"hag-data-parallel", "::mlir::ModuleOp"> {
  let summary = "Data parallelism: average the loss and the gradients over the data-parallel replicas";
  let description = [{
    Runs after `hag-autodiff` (and `hag-mixed-precision`), before
    `hag-train-step`: every result of `@loss_grad` (the loss and the
    gradient of every weight) goes through
    `hag.all_reduce group("data") mean`, so each of `degree` replicas,
    given its own rows of the global batch, continues with the global
    batch's mean loss and gradients (spec section 9): the found-inf check,
    the clipping norm and AdamW then see the same numbers on every replica
    and the weights stay identical. The module's
    `hag.parallel_rank_program` gets `data = degree`.
  }];
  let options = [
    Option<"degree", "degree", "int64_t", /*default=*/"2",
           "Number of data-parallel replicas">
  ];
  let dependentDialects = ["::mlir::hag::HAGDialect"];
}

def HAGTrainStep : Pass<"hag-train-step", "::mlir::ModuleOp"> {
  let summary = "The training step as one entry point: @train_step and @gradients from @loss_grad";
  let description = [{
    Runs after `hag-autodiff` (it needs `@loss_grad`) and adds two public
    entry points whose weights and optimizer state are `memref` arguments
    marked `hag.state`, updated in place (so one call per step, no copies
    through the caller):

    - `@train_step(inputs..., train.step, train.loss_scale,
      train.good_steps, <weights>..., opt.exp_avg.<w>...,
      opt.exp_avg_sq.<w>...) -> tensor<4xf32>`: forward and backward
      (`@loss_grad`), the found-inf check (`hag.all_finite`), global-norm
      clipping, the learning-rate schedule for step t = train.step + 1, and
      AdamW on every weight (weight decay on matrices only, spec 8), all
      skipped when a gradient is not finite. `train.step` counts the
      updates applied. With `precision = fp16-mixed`, `train.loss_scale`
      follows dynamic loss scaling (`hag.loss_scale_update`); otherwise it
      stays as it is. Returns `[loss, gradient norm, learning rate,
      applied (1 or 0)]`.
    - `@gradients(inputs..., grad.<w>..., <weights>...) -> loss`: writes the
      loss's gradient of every weight into `grad.<w>` (for `hag-run
      --grads`).

    `@loss_grad` becomes private (it returns many tensors; the entry points
    above are what the runtime calls).

    On a tensor-parallel rank program (weights with `hag.shard`), the
    state and gradient arguments keep their weight's `hag.shard`, and the
    global norm adds the ranks' shares of the sharded gradients
    (`hag.all_reduce` over the `tensor` group of their squared norm) to the
    replicated gradients' once; its finiteness is the found-inf flag, the
    same on every rank.
  }];
  let options = [
    Option<"lr", "lr", "double", /*default=*/"3.0e-4", "Peak learning rate">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", /*default=*/"0.95", "AdamW beta2">,
    Option<"eps", "eps", "double", /*default=*/"1.0e-8", "AdamW eps">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.1",
           "Decoupled weight decay of matrices">,
    Option<"warmup", "warmup", "int64_t", /*default=*/"0",
           "Linear warmup steps">,
    Option<"total", "total", "int64_t", /*default=*/"1000",
           "Steps of the whole run (the cosine schedule ends there)">,
    Option<"schedule", "schedule", "std::string", /*default=*/"\"constant\"",
           "constant or cosine">,
    Option<"clip", "clip", "double", /*default=*/"1.0",
           "Global gradient-norm clipping threshold (0: off)">,
    Option<"precision", "precision", "std::string", /*default=*/"\"fp32\"",
           "fp32, bf16-mixed or fp16-mixed">,
    Option<"growthInterval", "growth-interval", "int64_t",
           /*default=*/"2000",
           "Finite steps before the loss scale doubles (fp16-mixed)">
  ];
  let dependentDialects = ["::mlir::hag::HAGDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::bufferization::BufferizationDialect",
                           "::mlir::func::FuncDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::tensor::TensorDialect"];
}

def HAGMixedPrecision : Pass<"hag-mixed-precision", "::mlir::ModuleOp"> {
  let summary = "Round matmul and attention inputs to fp16 or bf16 (fp32 accumulation)";
  let description = [{
    Spec section 8's mixed precision on one function (`entry`, default
    `loss_grad`: the forward and backward of a training step): every float
    input of a matrix product or of the attention (hag.linear,
    hag.linear_backward, hag.swiglu, the queries, keys, values, gate input
    and gate weights of hag.pyramid_attention, the output gradient, queries,
    keys and values of hag.pyramid_attention_backward) is rounded to `f16`
    (`precision = fp16-mixed`) or `bf16` (`bf16-mixed`) with `arith.truncf`
    and widened back with `arith.extf`: the products then see exactly the
    half-precision operands and accumulate in fp32, as Tensor Cores do.
    Softmax, norms, the loss and the optimizer stay in fp32, and the master
    weights are the fp32 arguments. Values beyond the half type's range
    become infinities, which dynamic loss scaling detects.
  }];
  let options = [
    Option<"entry", "entry", "std::string", /*default=*/"\"loss_grad\"",
           "The function to convert">,
    Option<"precision", "precision", "std::string",
           /*default=*/"\"fp16-mixed\"", "fp16-mixed or bf16-mixed">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def HAGEarlyDealloc : Pass<"hag-early-dealloc", "::mlir::func::FuncOp"> {
  let summary = "Move each memref.dealloc right after the last use of its buffer";
  let description = [{
    MLIR's ownership-based buffer deallocation frees a block's buffers at
    the end of the block, so a long straight-line function (a training
    step: forward, backward, optimizer) keeps every temporary until it
    returns. This pass moves an unconditional `memref.dealloc` of a
    `memref.alloc` of the same block to just after the last operation of
    that block that uses the buffer or a view of it (view-like ops, casts,
    reshapes; a use inside a nested region counts as a use by its ancestor
    in the block). Buffers that may escape (yielded from a region, returned,
    stored, passed to an op that returns a memref other than a view) keep
    their place.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def HAGSequentialInnerLoops
    : Pass<"hag-sequential-inner-loops", "::mlir::func::FuncOp"> {
  let summary = "Run the innermost dimension of leaf scf.parallel loops sequentially";
  let description = [{
    An `scf.parallel` of two or more dimensions without reductions whose
    body is straight-line code (no nested regions or calls: the elementwise
    loops of `convert-linalg-to-parallel-loops`) becomes an `scf.parallel`
    over all but the innermost dimension around an `scf.for` over it.
    `convert-scf-to-openmp` then shares rows among threads instead of
    collapsing every dimension into one loop that recomputes each index with
    a division, and LLVM vectorizes the contiguous inner loop. Loops with
    nested loops or calls (the kernels' batch x head x block loops, whose
    iterations are large) are left alone.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect"];
}

def HAGAMXTilesToLLVMTypes
    : Pass<"hag-amx-tiles-to-llvm-types", "::mlir::ModuleOp"> {
  let summary = "Carry AMX tiles through scf loops and branches as LLVM's x86_amx";
  let description = [{
    `convert-vector-to-llvm{enable-amx}` lowers the `amx` ops and their
    `!amx.tile` values, but the control-flow conversions do not know that
    type: a tile carried by an `scf.for` (an accumulator over K) would leave
    a `cf.br` that cannot be lowered. This pass, run before
    `convert-scf-to-cf`, gives the `scf` ops' tile-typed results, block
    arguments and yields the type `!llvm.x86_amx` (with
    `unrealized_conversion_cast`s at the `amx` ops, which the AMX lowering
    and `reconcile-unrealized-casts` remove), so the loops lower like any
    other. A module without tiles is unchanged.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

#endif // HAG_TRANSFORMS_PASSES_TD
