//===- PipelinePlan.h - pipeline stages by the cost model -------*- C++ -*-===//
//
// Spec section 9's pipeline parallelism, the planning half: which layers
// each of p stages holds (contiguous, balanced by the cost model's FLOPs,
// so stages get different layer counts when the embedding or the LM head
// weigh on the first or last stage) and the 1F1B schedule of m
// micro-batches on every stage. `hag-compile --report=schedule` prints it.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_ANALYSIS_PIPELINEPLAN_H
#define HAG_ANALYSIS_PIPELINEPLAN_H

#include "hag/Dialect/HAG/IR/HAGInterfaces.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir {
class ModuleOp;
} // namespace mlir

namespace mlir::hag {

struct PipelineStage {
  /// Layers [firstLayer, endLayer).
  int64_t firstLayer = 0, endLayer = 0;
  /// Forward FLOPs of one micro-batch, with the embedding (first stage)
  /// and the final norm, LM head and loss (last stage).
  double flops = 0;
  /// The 1F1B order of the stage's work (hag::rt::oneFOneBSchedule): "F0",
  /// "F1", "B0", ...
  std::vector<std::string> schedule;
};

struct PipelinePlan {
  int64_t stages = 1, microbatches = 1, layers = 0;
  CostContext ctx; ///< one micro-batch
  std::vector<double> layerFlops;
  double prologueFlops = 0; ///< embedding
  double epilogueFlops = 0; ///< final norm, LM head, loss
  std::vector<PipelineStage> stage;
  /// (p - 1) / (m + p - 1): the idle share of a 1F1B step with equal
  /// stages.
  double bubbleFraction() const {
    return static_cast<double>(stages - 1) /
           static_cast<double>(microbatches + stages - 1);
  }
  /// Slowest stage's FLOPs over the average: 1 is a perfect balance.
  double imbalance() const;
};

/// The layer ("layers.<i>." weights) of every op of @forward and @loss, the
/// cost of each layer at `ctx` (one micro-batch), and the contiguous
/// partition into `stages` stages (each at least one layer) whose most
/// expensive stage is cheapest; then the 1F1B schedule of `microbatches`.
/// Fails with a located error for a module that is not a language model or
/// a stage count above the layer count.
FailureOr<PipelinePlan> planPipeline(ModuleOp module, int64_t stages,
                                     int64_t microbatches,
                                     const CostContext &ctx);

/// The layer a weight belongs to by its interfaces.md name: i for
/// "layers.<i>.", -1 for the embedding, `layers` for the final norm and the
/// LM head; nothing for other names.
std::optional<int64_t> layerOfWeight(llvm::StringRef name, int64_t layers);

/// The stage of every layer of `plan` (index = layer).
std::vector<int64_t> stageOfLayers(const PipelinePlan &plan);

/// A readable report: stages, layers, FLOPs, balance, schedule, bubble.
void printPipelineReport(const PipelinePlan &plan, llvm::raw_ostream &os);

} // namespace mlir::hag

#endif // HAG_ANALYSIS_PIPELINEPLAN_H
