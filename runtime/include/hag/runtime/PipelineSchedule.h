//===- PipelineSchedule.h - the 1F1B order of a pipeline stage --*- C++ -*-===//
//
// One-F-one-B (spec section 9): stage s of p runs min(p - s - 1, m) warm-up
// forwards, then alternates one forward and one backward, then drains the
// backwards. hag-run executes this order; the compiler's
// `--report=schedule` prints it (one definition for both).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_PIPELINESCHEDULE_H
#define HAG_RUNTIME_PIPELINESCHEDULE_H

#include <cstdint>
#include <string>
#include <vector>

namespace hag::rt {

/// One piece of a stage's work: the forward or the backward of a
/// micro-batch.
struct PipelineWork {
  bool forward = true;
  int64_t microbatch = 0;
  /// "F3" or "B3".
  std::string name() const {
    return (forward ? "F" : "B") + std::to_string(microbatch);
  }
};

/// The 1F1B order of `stage`'s work for `microbatches` micro-batches.
std::vector<PipelineWork> oneFOneBSchedule(int64_t stage, int64_t stages,
                                           int64_t microbatches);

} // namespace hag::rt

#endif // HAG_RUNTIME_PIPELINESCHEDULE_H
