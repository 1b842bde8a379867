//===- SplitTensorParallel.cpp - hag-split-tensor-parallel ----------------===//
//
// Spec section 9's tensor parallelism on the forward graphs: one rank's
// program out of `degree`. Column-parallel weights (W_q, W_k, W_v, the conv
// weights, W_gate, W_up) keep the rank's heads or hidden units; row-parallel
// weights (W_o, W_down) keep the matching input columns, and their partial
// products are summed over the ranks by hag.all_reduce. Everything else
// (embedding, norms, memory gate, loss) is replicated.
//
//===----------------------------------------------------------------------===//

#include "hag/Analysis/PyramidWindows.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGSPLITTENSORPARALLEL
#include "hag/Transforms/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

namespace {

constexpr StringLiteral kShardAttr = "hag.shard";
constexpr StringLiteral kRankProgramAttr = "hag.parallel_rank_program";

/// How an argument is split: the dimension divided by the degree, and
/// whether the rank's slice is a shard of a whole tensor the caller has
/// (a weight, or an attention-core input: marked with hag.shard) or
/// rank-local state (a decoding cache, allocated per rank).
struct ArgSplit {
  int64_t dim;
  bool shard;
};

/// The split of the argument named `name`, if it has one. Names are those of
/// interfaces.md: `layers.<i>.attn.wq`, ... for `kind: lm` and `attn.wq`,
/// ... for `kind: attention`.
std::optional<ArgSplit> argSplit(StringRef name, int64_t rank) {
  // The attention core's inputs (`kind: attention`, @core): [b, N, heads * d].
  if (name == "q" || name == "k" || name == "v")
    return ArgSplit{rank - 1, true};
  // The part after the layer prefix: "attn.wq", "mlp.w_down", ...
  size_t at = name.find("attn.");
  if (at == StringRef::npos)
    at = name.find("mlp.");
  if (at == StringRef::npos)
    return std::nullopt;
  StringRef local = name.substr(at);
  if (local == "attn.wq" || local == "attn.wk" || local == "attn.wv" ||
      local.starts_with("attn.conv.k.") || local.starts_with("attn.conv.v.") ||
      local == "mlp.w_gate" || local == "mlp.w_up")
    return ArgSplit{0, true};
  if (local == "attn.wo" || local == "mlp.w_down")
    return ArgSplit{1, true};
  // Keys and values of the decoding cache: [batch, rows, kv_heads * d].
  if (local == "attn.cache.keys" || local == "attn.cache.values" ||
      local == "attn.cache.prefix_keys" || local == "attn.cache.prefix_values")
    return ArgSplit{rank - 1, false};
  return std::nullopt;
}

/// `shape` with dimension `dim` set to `size`.
SmallVector<int64_t> withDim(ArrayRef<int64_t> shape, int64_t dim,
                             int64_t size) {
  SmallVector<int64_t> r(shape);
  r[dim] = size;
  return r;
}

struct HAGSplitTensorParallelPass
    : mlir::hag::impl::HAGSplitTensorParallelBase<
          HAGSplitTensorParallelPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    auto fail = [&](const Twine &msg) {
      module.emitError() << "hag-split-tensor-parallel: " << msg;
      signalPassFailure();
    };
    if (degree < 1)
      return fail("degree must be >= 1, got " + Twine(degree));
    auto config = module->getAttrOfType<PyramidConfigAttr>("hag.config");
    auto model = module->getAttrOfType<DictionaryAttr>("hag.model");
    if (!config || !model)
      return fail("needs a model module (with hag.config and hag.model "
                  "attributes, as the frontend builds it)");
    if (module->hasAttr(kRankProgramAttr))
      return fail("the module is already one rank's program (" +
                  Twine(kRankProgramAttr) + ")");
    int64_t t = degree;
    auto divides = [&](StringRef what, int64_t n) {
      if (n % t == 0)
        return true;
      fail("degree " + Twine(t) + " does not divide " + what + " (" +
           Twine(n) + ")");
      return false;
    };
    if (!divides("heads", config.getHeads()) ||
        !divides("kv_heads", config.getKvHeads()))
      return;
    if (auto f = model.getAs<IntegerAttr>("mlp_hidden"))
      if (!divides("mlp_hidden", f.getInt()))
        return;
    if (t == 1)
      return;

    // Training graphs carry gradients of the full weights: split the
    // forward first, then differentiate.
    WalkResult trained = module.walk([&](Operation *op) {
      if (isa<LinearBackwardOp, PyramidAttentionBackwardOp, AdamWOp,
              ClipGradNormOp>(op)) {
        op->emitError() << "hag-split-tensor-parallel runs on forward graphs "
                           "(before hag-autodiff)";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (trained.wasInterrupted())
      return signalPassFailure();

    ::hag::PyramidParams params = config.toParams();
    params.heads /= t;
    params.kvHeads /= t;
    auto rankConfig = PyramidConfigAttr::fromParams(ctx, params);

    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal())
        continue;
      if (failed(splitFunction(fn, config, rankConfig)))
        return signalPassFailure();
    }
    module->setAttr("hag.config", rankConfig);
    Builder b(ctx);
    module->setAttr(kRankProgramAttr,
                    b.getDictionaryAttr(
                        b.getNamedAttr("tensor", b.getI64IntegerAttr(t))));
  }

  LogicalResult splitFunction(func::FuncOp fn, PyramidConfigAttr config,
                              PyramidConfigAttr rankConfig) {
    MLIRContext *ctx = &getContext();
    Builder b(ctx);
    int64_t t = degree;
    // Values whose type this pass changed: every op reading one must be one
    // the pass knows how to split.
    DenseSet<Value> changed;
    // Row-parallel weights, whose products need the all-reduce.
    DenseSet<Value> rowParallel;

    if (!fn.getBody().hasOneBlock())
      return fn.emitError() << "hag-split-tensor-parallel: expects functions "
                               "of one block";
    Block &entry = fn.getBody().front();
    for (BlockArgument arg : entry.getArguments()) {
      auto name = fn.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  "hag.name");
      auto shaped = dyn_cast<ShapedType>(arg.getType());
      if (!name || !shaped || !shaped.hasRank())
        continue;
      std::optional<ArgSplit> split =
          argSplit(name.getValue(), shaped.getRank());
      if (!split)
        continue;
      int64_t size = shaped.getDimSize(split->dim);
      if (ShapedType::isDynamic(size))
        return fn.emitError()
               << "hag-split-tensor-parallel: argument '" << name.getValue()
               << "': dimension " << split->dim << " is dynamic";
      if (size % t != 0)
        return fn.emitError()
               << "hag-split-tensor-parallel: argument '" << name.getValue()
               << "': dimension " << split->dim << " (" << size
               << ") is not divisible by degree " << t;
      arg.setType(shaped.clone(withDim(shaped.getShape(), split->dim, size / t)));
      changed.insert(arg);
      if (split->shard) {
        fn.setArgAttr(arg.getArgNumber(), kShardAttr,
                      b.getDictionaryAttr(
                          {b.getNamedAttr("dim",
                                          b.getI64IntegerAttr(split->dim)),
                           b.getNamedAttr("parts", b.getI64IntegerAttr(t))}));
        if (split->dim == 1)
          rowParallel.insert(arg);
      }
    }

    auto setResultType = [&](Operation *op, Type type) {
      if (op->getResult(0).getType() == type)
        return;
      op->getResult(0).setType(type);
      changed.insert(op->getResult(0));
    };
    auto withLastDim = [](Value like, int64_t size) -> Type {
      auto ty = cast<RankedTensorType>(like.getType());
      return ty.clone(withDim(ty.getShape(), ty.getRank() - 1, size));
    };
    // Megatron's "f": a replicated value read by rank-local computation
    // goes through hag.copy_to_group (once per value), whose VJP sums the
    // ranks' partial gradients.
    DenseMap<Value, Value> copies;
    auto copyOperand = [&](OpOperand &operand) {
      Value v = operand.get();
      if (changed.contains(v) || !isa<RankedTensorType>(v.getType()))
        return;
      Value &copy = copies[v];
      if (!copy) {
        OpBuilder ob(ctx);
        ob.setInsertionPointAfterValue(v);
        copy = CopyToGroupOp::create(ob, v.getLoc(), v.getType(), v,
                                     ob.getStringAttr("tensor"));
      }
      operand.set(copy);
    };
    auto allReduceAfter = [&](Operation *op) {
      OpBuilder ob(op->getContext());
      ob.setInsertionPointAfter(op);
      Value partial = op->getResult(0);
      auto sum = AllReduceOp::create(ob, op->getLoc(), partial.getType(),
                                     partial, ob.getStringAttr("tensor"));
      partial.replaceAllUsesExcept(sum.getResult(), sum);
    };

    WalkResult result = fn.walk([&](Operation *op) -> WalkResult {
      if (auto cfg = op->getAttrOfType<PyramidConfigAttr>("config");
          cfg && cfg == config)
        op->setAttr("config", rankConfig);
      bool readsChanged = llvm::any_of(op->getOperands(), [&](Value v) {
        return changed.contains(v);
      });
      if (!readsChanged)
        return WalkResult::advance();
      if (auto linear = dyn_cast<LinearOp>(op)) {
        Value w = linear.getWeight();
        if (rowParallel.contains(w)) {
          if (linear.getBias()) {
            op->emitError() << "hag-split-tensor-parallel: a row-parallel "
                               "linear with a bias (the bias would be added "
                            << t << " times)";
            return WalkResult::interrupt();
          }
          allReduceAfter(op);
          return WalkResult::advance();
        }
        copyOperand(linear.getInputMutable());
        setResultType(op, withLastDim(
                              linear.getInput(),
                              cast<ShapedType>(w.getType()).getDimSize(0)));
        return WalkResult::advance();
      }
      if (auto rope = dyn_cast<RopeOp>(op)) {
        setResultType(op, rope.getInput().getType());
        return WalkResult::advance();
      }
      if (auto attn = dyn_cast<PyramidAttentionOp>(op)) {
        // The gate is computed in full on every rank and feeds the rank's
        // heads only.
        for (OpOperand *o :
             {&attn.getGateInputMutable(), &attn.getGateW1Mutable(),
              &attn.getGateB1Mutable(), &attn.getGateW2Mutable(),
              &attn.getGateB2Mutable()})
          copyOperand(*o);
        setResultType(op, attn.getQueries().getType());
        return WalkResult::advance();
      }
      if (auto decode = dyn_cast<PyramidDecodeOp>(op)) {
        setResultType(op, decode.getQueries().getType());
        return WalkResult::advance();
      }
      if (auto mlp = dyn_cast<SwiGLUOp>(op)) {
        copyOperand(mlp.getInputMutable());
        allReduceAfter(op);
        return WalkResult::advance();
      }
      if (isa<func::CallOp>(op))
        return WalkResult::advance(); // the callee is split alike
      if (isa<func::ReturnOp>(op))
        return WalkResult::advance(); // the results take the new types
      op->emitError() << "hag-split-tensor-parallel: cannot split '"
                      << op->getName().getStringRef()
                      << "' (it reads a value the split changed)";
      return WalkResult::interrupt();
    });
    if (result.wasInterrupted())
      return failure();
    // The new argument types; a function returning a split value (the
    // attention core's output: the rank's heads) returns the rank's slice.
    auto ret = cast<func::ReturnOp>(entry.getTerminator());
    fn.setType(FunctionType::get(ctx, entry.getArgumentTypes(),
                                 ret.getOperandTypes()));
    return success();
  }
};

} // namespace
