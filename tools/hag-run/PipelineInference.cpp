//===- PipelineInference.cpp - inference through pipeline stages ----------===//

#include "PipelineInference.h"

#include "Parallel.h"

#include "hag/runtime/Artifact.h"

#ifdef HAG_HAVE_MPI
#include "hag/runtime/Mpi.h"
#endif

#include <algorithm>
#include <cstring>

using namespace hag::rt;

namespace hag::run {

namespace {

std::string stageEntry(int stage, const char *what) {
  return "stage" + std::to_string(stage) + "_" + what;
}

/// The entry the last stage runs for `entry`.
std::string lastStageEntry(const Model &model, const std::string &entry) {
  int last =
      static_cast<int>(model.artifact().manifest().parallel.pipeline) - 1;
  return stageEntry(last, entry == "loss" ? "forward" : "logits");
}

} // namespace

bool isPipelineArtifact(const Model &model) {
  return model.artifact().manifest().parallel.pipeline > 1;
}

Result<const ArtifactEntry *> pipelineEntry(const Model &model,
                                            const std::string &entry) {
  const std::string &source = model.artifact().source();
  if (entry != "forward" && entry != "loss")
    return Status::error(source +
                         " is split into pipeline stages: it runs 'forward' "
                         "(the logits) or 'loss' through the stages, not '" +
                         entry + "'");
  std::string name = lastStageEntry(model, entry);
  const ArtifactEntry *e = model.artifact().findEntry(name);
  if (!e)
    return Status::error(source + " has no '" + name +
                         "' entry (compiled by an older hag-compile: compile "
                         "the model again to run it through its stages)");
  return e;
}

#ifdef HAG_HAVE_MPI

Result<HostTensor> runPipeline(const Model &model, const std::string &entry,
                               const HostTensor &input) {
  mpi::MpiCommunicator *comm = mpiCommunicator();
  Result<const ArtifactEntry *> last = pipelineEntry(model, entry);
  if (!last.ok())
    return last.status();
  if (!comm)
    return Status::error(model.artifact().source() +
                         " is split into pipeline stages: run it under "
                         "mpirun");
  if (Status s = input.validate(); !s.ok())
    return s.withPrefix("the tokens");
  const ParallelLayout layout = parallelLayout();
  const int stage = layout.stage(), P = layout.pipeline;
  const bool lastStage = stage == P - 1;

  std::vector<int64_t> shape = input.shape;
  const bool addedBatch = shape.size() == 1;
  if (addedBatch)
    shape.insert(shape.begin(), 1);
  if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1)
    return Status::error("the tokens have shape " + describeShape(input.shape) +
                         "; a pipeline takes [batch, N] or [N] with N >= 1");
  const int64_t rows = shape[0], n = shape[1];
  const int64_t m = std::min<int64_t>(
      std::max<int64_t>(1, model.artifact().manifest().parallel.microbatches),
      rows);
  const size_t rowBytes = static_cast<size_t>(n) * dtypeSize(input.dtype);
  auto firstRow = [&](int64_t i) { return i * rows / m; };

  const std::string name =
      lastStage ? (*last)->name : stageEntry(stage, "forward");
  const ArtifactEntry *here = model.artifact().findEntry(name);
  if (!here)
    return Status::error(model.artifact().source() + " has no '" + name +
                         "' entry");
  // The activation's width: the stage input [batch, N, d_model].
  int64_t width = 0;
  if (stage > 0) {
    if (here->inputs.size() != 2 || here->inputs[1].shape.size() != 3 ||
        here->inputs[1].shape[2] < 1)
      return Status::error("entry '" + name +
                           "' does not take (tokens, [batch, N, d] "
                           "activation)");
    width = here->inputs[1].shape[2];
  }

  // The micro-batches in order: stage s runs i while s + 1 runs i - 1.
  std::vector<HostTensor> results;
  double lossSum = 0;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t begin = firstRow(i), mb = firstRow(i + 1) - begin;
    std::vector<TensorRef> args = {
        TensorRef{input.dtype,
                  {mb, n},
                  input.data.data() + static_cast<size_t>(begin) * rowBytes}};
    HostTensor activation;
    if (stage > 0) {
      Result<HostTensor> in =
          HostTensor::uninitialized(DType::F32, {mb, n, width});
      if (!in.ok())
        return in.status();
      activation = std::move(*in);
      comm->receive(activation.data.data(), activation.data.size(),
                    Group::Pipeline, stage - 1, "an activation");
      args.push_back(
          TensorRef{DType::F32, activation.shape, activation.data.data()});
    }
    Result<HostTensor> r = model.run(name, args);
    if (!r.ok())
      return r.status();
    if (!lastStage) {
      if (r->dtype != DType::F32 || r->shape.size() != 3 || r->shape[0] != mb ||
          r->shape[1] != n)
        return Status::error("'" + name + "' returned " +
                             describeShape(r->shape) + " for " +
                             std::to_string(mb) + " rows");
      comm->send(r->data.data(), r->data.size(), Group::Pipeline, stage + 1);
      continue;
    }
    if (entry == "loss")
      lossSum +=
          static_cast<double>(r->dataAs<float>()[0]) * static_cast<double>(mb);
    else
      results.push_back(std::move(*r));
  }
  comm->waitSends();

  // The result goes from the replica's last stage to its first (both
  // tensor index 0; the other tensor ranks hold the same result).
  const bool sender = lastStage && layout.tensorIndex() == 0;
  const bool root = stage == 0 && layout.tensorIndex() == 0;
  std::vector<int64_t> resultShape;
  if (entry == "forward") {
    const std::vector<int64_t> &spec = (*last)->resultShape;
    if (spec.size() != 3 || spec[2] < 1)
      return Status::error("'" + (*last)->name +
                           "' does not return [batch, N, vocab]");
    resultShape = {rows, n, spec[2]};
  }
  if (!sender && !root)
    return HostTensor();
  Result<HostTensor> out = HostTensor::uninitialized(DType::F32, resultShape);
  if (!out.ok())
    return out.status();
  if (sender) {
    if (entry == "loss") {
      out->dataAs<float>()[0] =
          static_cast<float>(lossSum / static_cast<double>(rows));
    } else {
      size_t offset = 0;
      for (const HostTensor &t : results) {
        if (offset + t.data.size() > out->data.size() || t.shape.size() != 3 ||
            t.shape[2] != resultShape[2])
          return Status::error("'" + (*last)->name + "' returned " +
                               describeShape(t.shape));
        std::memcpy(out->data.data() + offset, t.data.data(), t.data.size());
        offset += t.data.size();
      }
    }
    comm->send(out->data.data(), out->data.size(), Group::Pipeline, 0);
    comm->waitSends();
    return HostTensor();
  }
  comm->receive(out->data.data(), out->data.size(), Group::Pipeline, P - 1,
                "the result of the last stage");
  if (addedBatch && out->rank() > 0)
    out->shape.erase(out->shape.begin());
  return out;
}

Result<HostTensor> runOverReplicas(
    const ArtifactEntry &entry, const std::string &entryName,
    const HostTensor &input,
    const std::function<Result<HostTensor>(const HostTensor &)> &run,
    bool &split) {
  const ParallelLayout layout = parallelLayout();
  mpi::MpiCommunicator *comm = mpiCommunicator();
  const int D = layout.data;
  const bool loss = entryName == "loss" && entry.resultShape.empty();
  const bool batched = !entry.inputs.empty() && !entry.resultShape.empty() &&
                       entry.resultShape[0] < 0 &&
                       !entry.inputs[0].shape.empty() &&
                       entry.inputs[0].shape[0] < 0 &&
                       input.shape.size() == entry.inputs[0].shape.size();
  split = comm && D > 1 && (batched || loss) && input.rank() >= 2 &&
          input.shape[0] >= D && input.validate().ok();
  if (!split)
    return run(input);

  // Replica r's rows [first(r), first(r + 1)).
  const int64_t rows = input.shape[0];
  auto first = [&](int64_t r) { return r * rows / D; };
  const int64_t r = layout.dataIndex();
  const size_t rowBytes = input.data.size() / static_cast<size_t>(rows);
  HostTensor mine;
  mine.dtype = input.dtype;
  mine.shape = input.shape;
  mine.shape[0] = first(r + 1) - first(r);
  mine.data.assign(input.data.begin() + first(r) * rowBytes,
                   input.data.begin() + first(r + 1) * rowBytes);
  Result<HostTensor> local = run(mine);
  if (!local.ok())
    return local;
  // The replica's first rank holds its result: the others are done.
  if (layout.stage() != 0 || layout.tensorIndex() != 0)
    return HostTensor();
  if (r != 0) {
    comm->send(local->data.data(), local->data.size(), Group::Data, 0);
    comm->waitSends();
    return HostTensor();
  }
  // World rank 0: its own rows, then each replica's, from its first rank
  // (member r of rank 0's data group).
  if (loss) {
    if (local->numel() != 1 || local->dtype != DType::F32)
      return Status::error("'" + entryName + "' returned " +
                           describeShape(local->shape) + ", not the loss");
    double sum = static_cast<double>(local->dataAs<float>()[0]) *
                 static_cast<double>(first(1));
    for (int64_t q = 1; q < D; ++q) {
      float part = 0;
      comm->receive(&part, sizeof(part), Group::Data, static_cast<int>(q),
                    "a replica's loss");
      sum += static_cast<double>(part) *
             static_cast<double>(first(q + 1) - first(q));
    }
    local->dataAs<float>()[0] =
        static_cast<float>(sum / static_cast<double>(rows));
    return local;
  }
  if (local->rank() == 0 || local->shape[0] != first(1))
    return Status::error("'" + entryName + "' returned " +
                         describeShape(local->shape) + " for " +
                         std::to_string(first(1)) + " rows");
  std::vector<int64_t> shape = local->shape;
  shape[0] = rows;
  Result<HostTensor> all = HostTensor::uninitialized(local->dtype, shape);
  if (!all.ok())
    return all.status();
  const size_t outRow = local->data.size() / static_cast<size_t>(first(1));
  std::memcpy(all->data.data(), local->data.data(), local->data.size());
  for (int64_t q = 1; q < D; ++q)
    comm->receive(all->data.data() + static_cast<size_t>(first(q)) * outRow,
                  static_cast<size_t>(first(q + 1) - first(q)) * outRow,
                  Group::Data, static_cast<int>(q), "a replica's rows");
  return all;
}

struct PipelineDecoder::Impl {
  const Model *model = nullptr;
  mpi::MpiCommunicator *comm = nullptr;
  ParallelLayout layout;
  std::unique_ptr<Decoder> decoder;
  int64_t width = 0; ///< the activation's d_model (stages after the first)
  int64_t vocab = 0;
};

PipelineDecoder::PipelineDecoder() : impl(std::make_unique<Impl>()) {}
PipelineDecoder::~PipelineDecoder() = default;

Result<std::unique_ptr<PipelineDecoder>>
PipelineDecoder::create(const Model &model) {
  std::unique_ptr<PipelineDecoder> d(new PipelineDecoder());
  Impl &p = *d->impl;
  p.model = &model;
  p.comm = mpiCommunicator();
  p.layout = parallelLayout();
  if (!p.comm || p.layout.pipeline < 2)
    return Status::error(model.artifact().source() +
                         " is split into pipeline stages: run it under "
                         "mpirun");
  const int stage = p.layout.stage();
  Result<Decoder> decoder = Decoder::createStage(model, stage, 1);
  if (!decoder.ok())
    return decoder.status();
  p.decoder = std::make_unique<Decoder>(std::move(*decoder));
  p.vocab = model.facts().vocab;
  if (stage > 0) {
    const ArtifactEntry *e =
        model.artifact().findEntry(stageEntry(stage, "decode"));
    if (!e || e->inputs.size() != 3 || e->inputs[2].shape.size() != 3 ||
        e->inputs[2].shape[2] < 1)
      return Status::error(model.artifact().source() + ": '" +
                           stageEntry(stage, "decode") +
                           "' does not take the previous stage's activation");
    p.width = e->inputs[2].shape[2];
  }
  return d;
}

Result<HostTensor> PipelineDecoder::step(int64_t token, bool wantLogits) {
  Impl &p = *impl;
  const int stage = p.layout.stage(), P = p.layout.pipeline;
  HostTensor activation;
  if (stage > 0) {
    Result<HostTensor> in =
        HostTensor::uninitialized(DType::F32, {1, 1, p.width});
    if (!in.ok())
      return in.status();
    activation = std::move(*in);
    p.comm->receive(activation.data.data(), activation.data.size(),
                    Group::Pipeline, stage - 1, "an activation");
  }
  Result<HostTensor> r =
      p.decoder->stepStage({token}, stage > 0 ? &activation : nullptr);
  if (!r.ok())
    return r.status();
  if (stage < P - 1)
    p.comm->send(r->data.data(), r->data.size(), Group::Pipeline, stage + 1);
  if (!wantLogits) {
    p.comm->waitSends();
    return HostTensor();
  }
  // The logits, from the last stage to every other stage.
  HostTensor logits;
  if (stage == P - 1) {
    if (r->shape != std::vector<int64_t>{1, 1, p.vocab})
      return Status::error("decode: the last stage returned " +
                           describeShape(r->shape));
    logits = std::move(*r);
    for (int s = 0; s < P - 1; ++s)
      p.comm->send(logits.data.data(), logits.data.size(), Group::Pipeline, s);
  } else {
    Result<HostTensor> in =
        HostTensor::uninitialized(DType::F32, {1, 1, p.vocab});
    if (!in.ok())
      return in.status();
    logits = std::move(*in);
    p.comm->receive(logits.data.data(), logits.data.size(), Group::Pipeline,
                    P - 1, "the logits");
  }
  p.comm->waitSends();
  logits.shape = {1, p.vocab};
  return logits;
}

size_t PipelineDecoder::cacheBytes() const {
  return impl->decoder->cacheBytes();
}

#else // !HAG_HAVE_MPI

Result<HostTensor> runOverReplicas(
    const ArtifactEntry &, const std::string &, const HostTensor &input,
    const std::function<Result<HostTensor>(const HostTensor &)> &run,
    bool &split) {
  split = false;
  return run(input);
}

Result<HostTensor> runPipeline(const Model &model, const std::string &,
                               const HostTensor &) {
  return Status::error(model.artifact().source() +
                       " is split into pipeline stages, but this hag-run was "
                       "built without MPI");
}

struct PipelineDecoder::Impl {};
PipelineDecoder::PipelineDecoder() : impl(std::make_unique<Impl>()) {}
PipelineDecoder::~PipelineDecoder() = default;
Result<std::unique_ptr<PipelineDecoder>>
PipelineDecoder::create(const Model &model) {
  return Status::error(model.artifact().source() +
                       " is split into pipeline stages, but this hag-run was "
                       "built without MPI");
}
Result<HostTensor> PipelineDecoder::step(int64_t, bool) {
  return Status::error("no MPI");
}
size_t PipelineDecoder::cacheBytes() const { return 0; }

#endif

} // namespace hag::run
