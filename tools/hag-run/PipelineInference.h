//===- PipelineInference.h - inference through pipeline stages --*- C++ -*-===//
//
// Inference on a pipeline artifact (hag-split-pipeline): each process runs
// its stage's entries and passes activations to the next stage point to
// point.
//
//  - The forward splits the batch into the artifact's micro-batches (at
//    most one per row) and streams them through the stages, so stage s
//    works on micro-batch i while stage s + 1 works on i - 1; the last
//    stage runs stage<P-1>_logits (or stage<P-1>_forward for the loss) and
//    sends the result to world rank 0.
//  - Incremental decoding runs stage<s>_decode on each stage's own caches;
//    the last stage sends the logits back to every stage, so every rank
//    picks the same next token.
//
// The tensor-parallel ranks of a stage work on their slices of the weights;
// data-parallel replicas take their rows of the batch (runOverReplicas) and
// world rank 0 gathers the results.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_TOOLS_HAGRUN_PIPELINEINFERENCE_H
#define HAG_TOOLS_HAGRUN_PIPELINEINFERENCE_H

#include "hag/runtime/Model.h"
#include "hag/runtime/Status.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace hag::run {

/// True when `model` is one stage of a pipeline split.
bool isPipelineArtifact(const rt::Model &model);

/// What `entry` ("forward": the logits, or "loss") returns when run through
/// the pipeline, or an error naming the entries a pipeline artifact runs.
rt::Result<const rt::ArtifactEntry *> pipelineEntry(const rt::Model &model,
                                                    const std::string &entry);

/// Runs `entry` ("forward" or "loss") on `tokens` ([batch, N] or [N])
/// through the stages. The replica's first rank (stage 0, tensor index 0)
/// gets the result (the loss is the mean over the micro-batches weighted
/// by their rows, as the unsplit loss); other ranks get an empty tensor.
rt::Result<rt::HostTensor> runPipeline(const rt::Model &model,
                                       const std::string &entry,
                                       const rt::HostTensor &tokens);

/// Data-parallel inference: replica r of d runs `run` on its rows
/// [r B / d, (r + 1) B / d) of `input` when `entry` takes a batch
/// dimension and returns one (or is the loss) and B >= d, and world rank 0
/// gathers the replicas' results from their first ranks: rows in order, or
/// the loss as the mean weighted by rows. Otherwise (one replica, fewer
/// rows than replicas, another result) every replica runs the whole input.
/// `run` must return the result on the replica's first rank (stage 0,
/// tensor index 0). `split` tells whether the rows were split; then ranks
/// other than world rank 0 get an empty tensor.
rt::Result<rt::HostTensor> runOverReplicas(
    const rt::ArtifactEntry &entry, const std::string &entryName,
    const rt::HostTensor &input,
    const std::function<rt::Result<rt::HostTensor>(const rt::HostTensor &)>
        &run,
    bool &split);

/// Incremental decoding of one sequence through the stages.
class PipelineDecoder {
public:
  static rt::Result<std::unique_ptr<PipelineDecoder>>
  create(const rt::Model &model);
  ~PipelineDecoder();

  /// Appends `token` on every stage; when `wantLogits`, returns the logits
  /// f32 [1, vocab] for the next token on every rank (else an empty
  /// tensor: the prompt's tokens before the last need none).
  rt::Result<rt::HostTensor> step(int64_t token, bool wantLogits);

  /// Bytes of this stage's caches.
  size_t cacheBytes() const;

private:
  PipelineDecoder();
  struct Impl;
  std::unique_ptr<Impl> impl;
};

} // namespace hag::run

#endif // HAG_TOOLS_HAGRUN_PIPELINEINFERENCE_H
