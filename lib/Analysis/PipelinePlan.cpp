//===- PipelinePlan.cpp - pipeline stages by the cost model ----------------===//

#include "hag/Analysis/PipelinePlan.h"

#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/runtime/PipelineSchedule.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <limits>

using namespace mlir;
using namespace mlir::hag;

std::optional<int64_t> mlir::hag::layerOfWeight(StringRef name,
                                                int64_t layers) {
  if (name.consume_front("layers.")) {
    int64_t i = 0;
    if (name.consumeInteger(10, i) || !name.starts_with("."))
      return std::nullopt;
    return i;
  }
  if (name == "embed")
    return -1;
  if (name == "final_norm.scale" || name == "lm_head")
    return layers;
  return std::nullopt;
}

double PipelinePlan::imbalance() const {
  double total = 0, worst = 0;
  for (const PipelineStage &s : stage) {
    total += s.flops;
    worst = std::max(worst, s.flops);
  }
  return total > 0 ? worst / (total / static_cast<double>(stage.size())) : 1;
}

std::vector<int64_t> mlir::hag::stageOfLayers(const PipelinePlan &plan) {
  std::vector<int64_t> out(static_cast<size_t>(plan.layers), 0);
  for (size_t s = 0; s < plan.stage.size(); ++s)
    for (int64_t l = plan.stage[s].firstLayer; l < plan.stage[s].endLayer; ++l)
      out[static_cast<size_t>(l)] = static_cast<int64_t>(s);
  return out;
}

FailureOr<PipelinePlan> mlir::hag::planPipeline(ModuleOp module,
                                                int64_t stages,
                                                int64_t microbatches,
                                                const CostContext &ctx) {
  auto model = module->getAttrOfType<DictionaryAttr>("hag.model");
  auto layersAttr = model ? model.getAs<IntegerAttr>("layers") : IntegerAttr();
  auto forward = module.lookupSymbol<func::FuncOp>("forward");
  auto loss = module.lookupSymbol<func::FuncOp>("loss");
  if (!layersAttr || !forward || !loss || forward.isExternal())
    return module.emitError()
           << "pipeline parallelism needs a language model (kind: lm) with "
              "@forward and @loss";
  PipelinePlan plan;
  plan.layers = layersAttr.getInt();
  plan.stages = stages;
  plan.microbatches = microbatches;
  plan.ctx = ctx;
  if (stages < 1 || stages > plan.layers)
    return module.emitError() << "pipeline stages (" << stages
                              << ") must be between 1 and the number of "
                                 "layers ("
                              << plan.layers << ")";
  if (microbatches < 1)
    return module.emitError() << "pipeline micro-batches must be >= 1, got "
                              << microbatches;
  plan.layerFlops.assign(static_cast<size_t>(plan.layers), 0.0);

  // The layer of every value: weights by name, ops by the latest layer of
  // what they read (the residual stream carries the order).
  DenseMap<Value, int64_t> layerOf;
  for (BlockArgument arg : forward.getArguments()) {
    auto name =
        forward.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "hag.name");
    std::optional<int64_t> l;
    if (name && !forward.getArgAttr(arg.getArgNumber(), "hag.input"))
      l = layerOfWeight(name.getValue(), plan.layers);
    layerOf[arg] = l ? *l : -1;
  }
  auto account = [&](int64_t layer, double flops) {
    if (layer < 0)
      plan.prologueFlops += flops;
    else if (layer >= plan.layers)
      plan.epilogueFlops += flops;
    else
      plan.layerFlops[static_cast<size_t>(layer)] += flops;
  };
  WalkResult walked = forward.walk([&](Operation *op) {
    if (isa<func::ReturnOp>(op))
      return WalkResult::advance();
    int64_t layer = -1;
    for (Value v : op->getOperands())
      layer = std::max(layer, layerOf.lookup(v));
    for (Value r : op->getResults())
      layerOf[r] = layer;
    auto cost = dyn_cast<CostOpInterface>(op);
    if (!cost) {
      if (op->getDialect() && op->getDialect()->getNamespace() == "hag") {
        op->emitError() << "pipeline planning: no cost for this op";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    }
    account(layer, cost.estimateCost(ctx).flops);
    return WalkResult::advance();
  });
  if (walked.wasInterrupted())
    return failure();
  // The loss (after @forward's logits) belongs to the last stage.
  loss.walk([&](CostOpInterface op) {
    account(plan.layers, op.estimateCost(ctx).flops);
  });

  // Contiguous stages, each at least one layer, minimising the most
  // expensive stage (dynamic programming over the split points).
  const int64_t L = plan.layers, P = stages;
  std::vector<double> prefix(static_cast<size_t>(L + 1), 0.0);
  for (int64_t l = 0; l < L; ++l)
    prefix[static_cast<size_t>(l + 1)] =
        prefix[static_cast<size_t>(l)] + plan.layerFlops[static_cast<size_t>(l)];
  auto stageCost = [&](int64_t s, int64_t a, int64_t b) {
    double c = prefix[static_cast<size_t>(b)] - prefix[static_cast<size_t>(a)];
    if (s == 0)
      c += plan.prologueFlops;
    if (s == P - 1)
      c += plan.epilogueFlops;
    return c;
  };
  const double inf = std::numeric_limits<double>::infinity();
  // best[s][b]: stages 0..s cover layers [0, b); cut[s][b]: where s starts.
  std::vector<std::vector<double>> best(
      static_cast<size_t>(P), std::vector<double>(static_cast<size_t>(L + 1), inf));
  std::vector<std::vector<int64_t>> cut(
      static_cast<size_t>(P), std::vector<int64_t>(static_cast<size_t>(L + 1), 0));
  for (int64_t b = 1; b <= L; ++b)
    best[0][static_cast<size_t>(b)] = stageCost(0, 0, b);
  for (int64_t s = 1; s < P; ++s)
    for (int64_t b = s + 1; b <= L; ++b)
      for (int64_t a = s; a < b; ++a) {
        double c = std::max(best[static_cast<size_t>(s - 1)][static_cast<size_t>(a)],
                            stageCost(s, a, b));
        // Ties go to the later cut (more layers on earlier stages, which
        // keep fewer micro-batches in flight at the end of a step).
        if (c <= best[static_cast<size_t>(s)][static_cast<size_t>(b)]) {
          best[static_cast<size_t>(s)][static_cast<size_t>(b)] = c;
          cut[static_cast<size_t>(s)][static_cast<size_t>(b)] = a;
        }
      }
  plan.stage.resize(static_cast<size_t>(P));
  int64_t end = L;
  for (int64_t s = P - 1; s >= 0; --s) {
    int64_t begin = s == 0 ? 0 : cut[static_cast<size_t>(s)][static_cast<size_t>(end)];
    PipelineStage &st = plan.stage[static_cast<size_t>(s)];
    st.firstLayer = begin;
    st.endLayer = end;
    st.flops = stageCost(s, begin, end);
    for (const ::hag::rt::PipelineWork &w :
         ::hag::rt::oneFOneBSchedule(s, P, microbatches))
      st.schedule.push_back(w.name());
    end = begin;
  }
  return plan;
}

void mlir::hag::printPipelineReport(const PipelinePlan &plan,
                                    llvm::raw_ostream &os) {
  os << llvm::format("HAG pipeline schedule: %lld stages, %lld micro-batches "
                     "(1F1B), micro-batch %lld x %lld tokens\n\n",
                     static_cast<long long>(plan.stages),
                     static_cast<long long>(plan.microbatches),
                     static_cast<long long>(plan.ctx.batch),
                     static_cast<long long>(plan.ctx.seqLen));
  os << llvm::format("%-6s %-12s %8s %14s %8s\n", "stage", "layers", "count",
                     "fwd GFLOP/mb", "share");
  double total = 0;
  for (const PipelineStage &s : plan.stage)
    total += s.flops;
  for (size_t i = 0; i < plan.stage.size(); ++i) {
    const PipelineStage &s = plan.stage[i];
    std::string layers = std::to_string(s.firstLayer) + ".." +
                         std::to_string(s.endLayer - 1);
    if (i == 0)
      layers = "embed+" + layers;
    if (i + 1 == plan.stage.size())
      layers += "+head";
    os << llvm::format("%-6zu %-12s %8lld %14.4f %7.1f%%\n", i,
                       layers.c_str(),
                       static_cast<long long>(s.endLayer - s.firstLayer),
                       s.flops * 1e-9, total > 0 ? 100.0 * s.flops / total : 0);
  }
  os << llvm::format("\nslowest stage / mean: %.3f\n", plan.imbalance());
  os << llvm::format("bubble fraction (p-1)/(m+p-1): %.3f\n\n",
                     plan.bubbleFraction());
  os << "schedule (F<i>: forward of micro-batch i, B<i>: its backward):\n";
  for (size_t i = 0; i < plan.stage.size(); ++i) {
    os << "  stage " << i << ":";
    for (const std::string &w : plan.stage[i].schedule)
      os << " " << w;
    os << "\n";
  }
}
