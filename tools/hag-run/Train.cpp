//===- Train.cpp - hag-run --train and --grads ----------------------------===//
//
// Training through the artifact's train_step entry: batches from a token
// file (BatchSampler: the windows of step s depend only on the seed and s,
// so the data position is the step), a progress line, a CSV log, atomic
// checkpoints holding the whole training state, --resume that continues
// bitwise, and the loss curve through gnuplot.
//
//===----------------------------------------------------------------------===//

#include "HagRun.h"
#include "Parallel.h"

#ifdef HAG_HAVE_MPI
#include "hag/runtime/Mpi.h"
#endif

#include "hag/runtime/FileIO.h"
#include "hag/runtime/Memory.h"
#include "hag/runtime/Model.h"
#include "hag/runtime/Npy.h"
#include "hag/runtime/PipelineSchedule.h"
#include "hag/runtime/SafeTensors.h"
#include "hag/runtime/TokenData.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace hag::rt;
using namespace hag::run;

namespace {

bool isDirectory(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

/// mkdir -p.
Status makeDirectories(const std::string &path) {
  std::string prefix;
  std::stringstream parts(path);
  std::string part;
  if (!path.empty() && path[0] == '/')
    prefix = "/";
  while (std::getline(parts, part, '/')) {
    if (part.empty())
      continue;
    prefix += part;
    if (!isDirectory(prefix) && ::mkdir(prefix.c_str(), 0777) != 0 &&
        errno != EEXIST)
      return Status::error("cannot create the directory '" + prefix +
                           "': " + std::strerror(errno));
    prefix += "/";
  }
  return Status::success();
}

std::string checkpointName(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "step-%08lld.safetensors",
                static_cast<long long>(step));
  return buf;
}

/// The checkpoints in `dir` (step-NNNNNNNN.safetensors), by step.
std::vector<std::pair<int64_t, std::string>>
listCheckpoints(const std::string &dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  DIR *d = ::opendir(dir.c_str());
  if (!d)
    return found;
  while (struct dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    long long step = 0;
    char tail[32] = {0};
    if (name.size() == std::strlen("step-00000000.safetensors") &&
        std::sscanf(name.c_str(), "step-%8lld.%20s", &step, tail) == 2 &&
        std::string(tail) == "safetensors")
      found.push_back({step, dir + "/" + name});
  }
  ::closedir(d);
  std::sort(found.begin(), found.end());
  return found;
}

std::string formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    return "?";
  long long s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", s / 3600,
                  s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", s / 60, s % 60);
  return buf;
}

/// The CSV log: rows of steps after `keepThrough` are dropped on resume
/// (they were computed after the checkpoint and are computed again).
Status openLog(const std::string &path, int64_t keepThrough, bool resuming,
               std::ofstream &log) {
  const char *header =
      "step,loss,grad_norm,lr,loss_scale,tokens_per_s,applied,elapsed_s";
  std::string kept = std::string(header) + "\n";
  if (resuming && exists(path)) {
    std::ifstream in(path);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
      if (first) {
        first = false;
        if (line != header)
          return Status::error(path + ": not a hag-run training log (its "
                                      "header differs)");
        continue;
      }
      long long step = 0;
      if (std::sscanf(line.c_str(), "%lld,", &step) == 1 && step <= keepThrough)
        kept += line + "\n";
    }
  }
  if (Status s = writeFileAtomic(path, kept.data(), kept.size()); !s.ok())
    return s;
  log.open(path, std::ios::app);
  if (!log)
    return Status::error("cannot append to the log '" + path + "'");
  return Status::success();
}

/// Draws the loss column of `csv` into `png` with gnuplot.
Status plotLoss(const std::string &csv, const std::string &png,
                const std::string &title) {
  std::string script = "set terminal pngcairo size 900,540\n"
                       "set output '" + png + "'\n"
                       "set datafile separator ','\n"
                       "set key autotitle columnhead\n"
                       "set title '" + title + "' noenhanced\n"
                       "set xlabel 'step'\n"
                       "set ylabel 'loss (nats)'\n"
                       "set grid\n"
                       "plot '" + csv + "' using 1:2 with lines lw 2 title 'training loss'\n";
  std::FILE *gp = ::popen("gnuplot 2>&1", "w");
  if (!gp)
    return Status::error("--plot: cannot run gnuplot");
  std::fwrite(script.data(), 1, script.size(), gp);
  int rc = ::pclose(gp);
  if (rc != 0 || !exists(png))
    return Status::error("--plot: gnuplot failed (exit status " +
                         std::to_string(rc) +
                         "); is gnuplot installed (Debian: gnuplot-nox)?");
  return Status::success();
}

} // namespace

int hag::run::runGradients(const RunOptions &o, std::FILE *out,
                           std::FILE *err) {
  Result<Model> model = Model::open(o.artifact);
  if (!model.ok())
    return printError(err, model.message());
  if (!model->artifact().findEntry("gradients"))
    return printError(err, o.artifact + " has no 'gradients' entry: compile it with "
                                  "hag-compile MODEL.yaml --train -o " +
                         o.artifact);
  if (Status p = startParallel(*model, o); !p.ok())
    return printError(err, p.message());
  Status s = o.initSeed ? model->initWeights(*o.initSeed)
                        : model->loadWeights(o.weights);
  if (!s.ok())
    return printError(err, s.message());
  Result<HostTensor> tokens = readNpy(o.input);
  if (!tokens.ok())
    return printError(err, tokens.message());
  TensorRef ref{tokens->dtype, tokens->shape, tokens->data.data()};
  if (ref.shape.size() == 1)
    ref.shape.insert(ref.shape.begin(), 1);
  auto start = std::chrono::steady_clock::now();
  double loss = 0.0;
  Result<TensorMap> grads = model->gradients(ref, loss);
  if (!grads.ok())
    return printError(err, o.input + ": " + grads.message());
  double ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - start)
                  .count();
  // A tensor-parallel rank's gradients are slices: write the whole ones.
  Result<TensorMap> whole = gatherWhole(model->parameters(), *grads);
  if (!whole.ok())
    return printError(err, whole.message());
  if (worldRank() == 0)
    if (Status w = writeSafeTensors(o.grads, *whole,
                                    {{"format", "pt"},
                                     {"hag_gradients_of",
                                      "mean next-token loss"}});
        !w.ok())
      return printError(err, w.message());
  if (!o.quiet)
    std::fprintf(err, "hag-run: gradients of %zu weights on %s in %.1f ms, "
                      "wrote %s\n",
                 grads->size(), describeShape(ref.shape).c_str(), ms,
                 o.grads.c_str());
  std::fprintf(out, "loss %.6f\n", loss);
  return kExitOk;
}

namespace {

/// What the training loop drives: one process's share of a step, and the
/// whole state for checkpoints (collective calls: every rank makes them).
class StepEngine {
public:
  virtual ~StepEngine() = default;
  /// One step on this replica's rows of the batch.
  virtual Result<TrainStats> step(const HostTensor &tokens) = 0;
  /// This rank's state (for the start-up check).
  virtual TensorMap localState() const = 0;
  /// The whole state (tensor slices and pipeline stages gathered) on rank
  /// 0; anything elsewhere.
  virtual Result<TensorMap> wholeState() = 0;
  /// The whole weights, likewise.
  virtual Result<TensorMap> wholeWeights() = 0;
  /// Takes this rank's part of a whole state (a checkpoint).
  virtual Status restore(const TensorMap &state, const std::string &source) = 0;
};

/// The artifact's train_step (one process, tensor and data parallelism).
class TrainerEngine : public StepEngine {
public:
  TrainerEngine(const Model &model, Trainer trainer)
      : model(model), trainer(std::move(trainer)) {}
  Result<TrainStats> step(const HostTensor &tokens) override {
    return trainer.step(TensorRef{tokens.dtype, tokens.shape,
                                  tokens.data.data()});
  }
  TensorMap localState() const override { return trainer.state(); }
  Result<TensorMap> wholeState() override {
    return gatherWhole(trainer.stateSpecs(), trainer.state());
  }
  Result<TensorMap> wholeWeights() override {
    return gatherWhole(model.parameters(), trainer.weights());
  }
  Status restore(const TensorMap &state, const std::string &source) override {
    return trainer.restore(state, source);
  }

private:
  const Model &model;
  Trainer trainer;
};

#ifdef HAG_HAVE_MPI
/// One stage of a pipeline (hag-split-pipeline): the stage<s>_* entries
/// run the 1F1B schedule of the artifact's micro-batches, activations go
/// forward and their gradients back to the neighbouring stages, and
/// stage<s>_update applies the step.
class PipelineEngine : public StepEngine {
public:
  static Result<std::unique_ptr<PipelineEngine>>
  create(const Model &model, int64_t microbatches) {
    const ParallelLayout layout = parallelLayout();
    std::unique_ptr<PipelineEngine> e(new PipelineEngine(model));
    e->layout = layout;
    e->m = microbatches;
    e->prefix = "stage" + std::to_string(layout.stage()) + "_";
    e->comm = mpiCommunicator();
    const ArtifactEntry *update = model.artifact().findEntry(e->prefix + "update");
    if (!update || !e->comm)
      return Status::error(model.artifact().source() + " has no '" +
                           e->prefix + "update' entry");
    e->specs = update->state;
    const TensorMap &weights = model.weights();
    const TrainFacts &tf = model.artifact().manifest().train;
    for (const TensorSpec &spec : e->specs) {
      Result<HostTensor> z = HostTensor::zeros(spec.dtype, spec.shape);
      if (!z.ok())
        return z.status();
      auto w = weights.find(spec.name);
      if (w != weights.end())
        *z = w->second;
      else if (spec.name == "train.loss_scale")
        z->dataAs<float>()[0] = static_cast<float>(
            tf.precision == "fp16-mixed" ? tf.lossScaleInit : 1.0);
      e->state[spec.name] = std::move(*z);
    }
    return e;
  }

  Result<TrainStats> step(const HostTensor &tokens) override {
    const int stage = layout.stage(), P = layout.pipeline;
    const int64_t rows = tokens.shape[0], n = tokens.shape[1] - 1;
    if (rows % m != 0)
      return Status::error("the replica's " + std::to_string(rows) +
                           " rows do not split into " + std::to_string(m) +
                           " micro-batches");
    const int64_t mb = rows / m;
    const int64_t d = model.facts().dModel;
    const size_t rowBytes = static_cast<size_t>(tokens.shape[1]) *
                            dtypeSize(tokens.dtype);
    // Micro-batch i: a view of rows [i mb, (i+1) mb) (rows are contiguous).
    auto micro = [&](int64_t i) {
      return TensorRef{tokens.dtype,
                       {mb, tokens.shape[1]},
                       tokens.data.data() + static_cast<size_t>(i * mb) *
                                                rowBytes};
    };
    auto ref = [](const HostTensor &t) {
      return TensorRef{t.dtype, t.shape, t.data.data()};
    };
    std::vector<HostTensor> inputs(static_cast<size_t>(m));
    const std::vector<int64_t> actShape = {mb, n + 1, d};
    // Busy time (the stage's own forwards and backwards) against the
    // schedule's wall time: the measured bubble is the rest.
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    double busy = 0;
    auto timed = [&](const std::string &entry,
                     const std::vector<TensorRef> &args) {
      auto t0 = Clock::now();
      Result<HostTensor> r = model.call(entry, args, state);
      busy += std::chrono::duration<double>(Clock::now() - t0).count();
      return r;
    };
    for (const PipelineWork &work : oneFOneBSchedule(stage, P, m)) {
      int64_t i = work.microbatch;
      std::vector<TensorRef> args = {micro(i)};
      if (work.forward) {
        if (stage > 0) {
          Result<HostTensor> in = HostTensor::zeros(DType::F32, actShape);
          if (!in.ok())
            return in.status();
          comm->receive(in->data.data(), in->data.size(), Group::Pipeline,
                        stage - 1, "an activation");
          inputs[static_cast<size_t>(i)] = std::move(*in);
        }
        if (stage == P - 1)
          continue; // the last stage's backward computes its forward
        if (stage > 0)
          args.push_back(ref(inputs[static_cast<size_t>(i)]));
        Result<HostTensor> h = timed(prefix + "train_forward", args);
        if (!h.ok())
          return h.status();
        comm->send(h->data.data(), h->data.size(), Group::Pipeline, stage + 1);
      } else {
        if (stage > 0)
          args.push_back(ref(inputs[static_cast<size_t>(i)]));
        HostTensor dOut;
        if (stage < P - 1) {
          Result<HostTensor> g = HostTensor::zeros(DType::F32, actShape);
          if (!g.ok())
            return g.status();
          comm->receive(g->data.data(), g->data.size(), Group::Pipeline,
                        stage + 1, "an activation gradient");
          dOut = std::move(*g);
          args.push_back(ref(dOut));
        }
        Result<HostTensor> r = timed(prefix + "backward", args);
        if (!r.ok())
          return r.status();
        if (stage > 0)
          comm->send(r->data.data(), r->data.size(), Group::Pipeline,
                     stage - 1);
        inputs[static_cast<size_t>(i)] = HostTensor();
      }
    }
    comm->waitSends();
    if (const char *path = std::getenv("HAG_PIPELINE_TIMING")) {
      // One line per step: busy and wall seconds of the schedule (the
      // update excluded), for bench/parallel_bench.py.
      double wall =
          std::chrono::duration<double>(Clock::now() - start).count();
      std::FILE *f = std::fopen(
          (std::string(path) + ".rank" + std::to_string(layout.rank)).c_str(),
          "a");
      if (f) {
        std::fprintf(f, "%d %.6f %.6f\n", stage, busy, wall);
        std::fclose(f);
      }
    }
    Result<HostTensor> r = model.call(prefix + "update", {}, state);
    if (!r.ok())
      return r.status();
    return TrainStats::fromResult(
        *r, state["train.loss_scale"].dataAs<float>()[0]);
  }

  TensorMap localState() const override { return state; }

  Result<TensorMap> wholeState() override { return gatherStages(false); }
  Result<TensorMap> wholeWeights() override { return gatherStages(true); }

  Status restore(const TensorMap &whole, const std::string &source) override {
    TensorMap next = state;
    for (const TensorSpec &spec : specs) {
      if (isTransient(spec.name))
        continue;
      auto it = whole.find(spec.name);
      if (it == whole.end())
        return Status::error(source + ": not a training state of this model: "
                                      "missing '" + spec.name + "'");
      HostTensor t = it->second;
      if (spec.shardParts > 1 && t.shape != spec.shape) {
        // The tensor-parallel rank's slice of the whole tensor.
        Result<HostTensor> slice =
            sliceShard(t, spec, layout.tensorIndex());
        if (!slice.ok())
          return slice.status().withPrefix(source);
        t = std::move(*slice);
      }
      if (t.dtype != spec.dtype || t.shape != spec.shape)
        return Status::error(source + ": '" + spec.name + "' is " +
                             describeShape(t.shape) + ", expected " +
                             describeShape(spec.shape));
      next[spec.name] = std::move(t);
    }
    state = std::move(next);
    return Status::success();
  }

private:
  explicit PipelineEngine(const Model &model) : model(model) {}

  /// Gradient accumulators and the loss sum: zero between steps, not in
  /// checkpoints.
  static bool isTransient(const std::string &name) {
    return name.rfind("grad.", 0) == 0 || name == "train.loss_sum";
  }

  /// The stages' whole tensors (weights only, or the checkpoint state) on
  /// rank 0: each stage gathers its tensor slices, then stages > 0 send
  /// theirs to stage 0 of the first replica.
  Result<TensorMap> gatherStages(bool weightsOnly) {
    TensorMap mine;
    std::vector<TensorSpec> mySpecs;
    const TensorMap &bound = model.weights();
    for (const TensorSpec &spec : specs) {
      if (isTransient(spec.name) || (weightsOnly && !bound.count(spec.name)))
        continue;
      mine[spec.name] = state.at(spec.name);
      mySpecs.push_back(spec);
    }
    Result<TensorMap> whole = gatherWhole(mySpecs, mine);
    if (!whole.ok())
      return whole.status();
    if (layout.dataIndex() != 0 || layout.tensorIndex() != 0)
      return TensorMap();
    const int stage = layout.stage();
    if (stage > 0) {
      for (const TensorSpec &spec : mySpecs) {
        const HostTensor &t = whole->at(spec.name);
        comm->send(t.data.data(), t.data.size(), Group::Pipeline, 0);
      }
      comm->waitSends();
      return TensorMap();
    }
    TensorMap all = std::move(*whole);
    for (int s = 1; s < layout.pipeline; ++s) {
      const ArtifactEntry *e =
          model.artifact().findEntry("stage" + std::to_string(s) + "_update");
      if (!e)
        return Status::error("no stage" + std::to_string(s) + "_update entry");
      for (const TensorSpec &spec : e->state) {
        if (isTransient(spec.name) ||
            (weightsOnly && !isWeightName(spec.name)))
          continue;
        std::vector<int64_t> shape = spec.shape;
        if (spec.shardParts > 1)
          shape[static_cast<size_t>(spec.shardDim)] *= spec.shardParts;
        Result<HostTensor> t = HostTensor::zeros(spec.dtype, shape);
        if (!t.ok())
          return t.status();
        comm->receive(t->data.data(), t->data.size(), Group::Pipeline, s,
                      "checkpoint tensors");
        // A tied weight: stage 0's copy (the same values) is kept.
        all.emplace(spec.name, std::move(*t));
      }
    }
    return all;
  }

  /// Whether the state tensor `name` of an update entry is a weight (the
  /// state also holds moments, counters and accumulators).
  static bool isWeightName(const std::string &name) {
    return name.rfind("opt.", 0) != 0 && name.rfind("train.", 0) != 0 &&
           name.rfind("grad.", 0) != 0;
  }

  const Model &model;
  ParallelLayout layout;
  int64_t m = 1;
  std::string prefix;
  hag::rt::mpi::MpiCommunicator *comm = nullptr;
  std::vector<TensorSpec> specs;
  TensorMap state;
};
#endif

} // namespace

int hag::run::runTraining(const RunOptions &o, std::FILE *out, std::FILE *err) {
  retainLargeAllocations();
  Result<Model> opened = Model::open(o.artifact);
  if (!opened.ok())
    return printError(err, opened.message());
  Model &model = *opened;
  const TrainFacts &tf = model.artifact().manifest().train;
  const bool pipelined = model.artifact().manifest().parallel.pipeline > 1;
  if (!tf.present ||
      (!pipelined && !model.artifact().findEntry("train_step")))
    return printError(err, o.artifact + " has no training step: compile it with "
                                  "hag-compile MODEL.yaml --train -o " +
                         o.artifact);
  if (Status p = startParallel(model, o); !p.ok())
    return printError(err, p.message());
  // Data parallelism: replica r trains on rows [r b/d, (r+1) b/d) of each
  // global batch of b rows, and the graph averages the gradients.
  const ParallelLayout layout = parallelLayout();
  const bool primary = layout.rank == 0;
  const int64_t batch = tf.batch, seq = tf.seq;
  if (batch % layout.data != 0)
    return printError(err, "train.batch " + std::to_string(batch) +
                               " is not divisible by the " +
                               std::to_string(layout.data) +
                               " data-parallel replicas");
  const int64_t localBatch = batch / layout.data;
  const int64_t firstRow = localBatch * layout.dataIndex();
  const int64_t steps = o.steps ? *o.steps : tf.steps;
  const int64_t every = o.checkpointEvery ? *o.checkpointEvery
                                          : tf.checkpointEvery;
  std::string ckptDir = !o.checkpointDir.empty() ? o.checkpointDir
                        : (!o.resume.empty() && isDirectory(o.resume))
                            ? o.resume
                            : tf.checkpointDir;
  if (seq + 1 > model.facts().maxSeq)
    return printError(err, "train.seq " + std::to_string(seq) +
                         " needs windows of seq + 1 tokens, more than max_seq " +
                         std::to_string(model.facts().maxSeq));

  // Weights: a checkpoint, a file, a seed (default: train.seed).
  Status s;
  if (o.resume.empty())
    s = !o.weights.empty()
            ? model.loadWeights(o.weights)
            : model.initWeights(o.initSeed ? *o.initSeed
                                           : static_cast<uint64_t>(tf.seed));
  else
    s = model.initWeights(0); // replaced by the checkpoint below
  if (!s.ok())
    return printError(err, s.message());

  // Data.
  TokenDataOptions dataOptions;
  dataOptions.vocabSize = model.facts().vocab;
  Result<TokenDataset> data = TokenDataset::open(o.data, dataOptions);
  if (!data.ok())
    return printError(err, data.message());
  Result<BatchSampler> sampler =
      BatchSampler::create(*data, seq, static_cast<uint64_t>(tf.seed),
                           tf.sampling == "examples" ? Sampling::Examples
                                                     : Sampling::Random);
  if (!sampler.ok())
    return printError(err, sampler.message());

  std::unique_ptr<StepEngine> engine;
  if (pipelined) {
#ifdef HAG_HAVE_MPI
    Result<std::unique_ptr<PipelineEngine>> p =
        PipelineEngine::create(model,
                               model.artifact().manifest().parallel.microbatches);
    if (!p.ok())
      return printError(err, p.message());
    engine = std::move(*p);
#else
    return printError(err, o.artifact + " is a pipeline split, but this "
                                        "hag-run was built without MPI");
#endif
  } else {
    Result<Trainer> created = Trainer::create(model);
    if (!created.ok())
      return printError(err, created.message());
    engine = std::make_unique<TrainerEngine>(model, std::move(*created));
  }
  StepEngine &trainer = *engine;

  // Resume: the newest checkpoint of a directory, or the file given.
  int64_t done = 0;
  std::string dataName = o.data.substr(o.data.find_last_of('/') + 1);
  if (!o.resume.empty()) {
    std::string path = o.resume;
    // For a directory, a damaged newest checkpoint names the one before it.
    std::string hint;
    if (isDirectory(o.resume)) {
      auto found = listCheckpoints(o.resume);
      if (found.empty())
        return printError(err, "--resume: no checkpoint (step-NNNNNNNN.safetensors) "
                         "in '" + o.resume + "'");
      path = found.back().second;
      if (found.size() >= 2)
        hint = "; the previous checkpoint " + found[found.size() - 2].second +
               " is intact: resume from it with --resume " +
               found[found.size() - 2].second;
    }
    Result<SafeTensorsFile> f = readSafeTensors(path);
    if (!f.ok())
      return printError(err, "--resume: " + f.message() + hint);
    auto meta = [&](const char *key) -> std::string {
      auto it = f->metadata.find(key);
      return it == f->metadata.end() ? "" : it->second;
    };
    if (meta("format") != "hag-checkpoint")
      return printError(err, "--resume: " + path + " is not a hag-run checkpoint");
    std::string sampling = meta("sampling").empty() ? "random" : meta("sampling");
    if (meta("batch") != std::to_string(batch) ||
        meta("seq") != std::to_string(seq) ||
        meta("seed") != std::to_string(tf.seed) || sampling != tf.sampling)
      return printError(err, "--resume: " + path + " was written with batch " +
                           meta("batch") + ", seq " + meta("seq") + ", seed " +
                           meta("seed") + ", sampling " + sampling +
                           "; this artifact trains with batch " +
                           std::to_string(batch) + ", seq " +
                           std::to_string(seq) + ", seed " +
                           std::to_string(tf.seed) + ", sampling " +
                           tf.sampling);
    auto it = f->tensors.find("run.step");
    if (it == f->tensors.end() || it->second.dtype != DType::I64 ||
        it->second.numel() != 1)
      return printError(err, "--resume: " + path + " has no run.step");
    done = it->second.dataAs<int64_t>()[0];
    if (Status r = trainer.restore(f->tensors, path); !r.ok())
      return printError(err, "--resume: " + r.message());
    if (meta("data") != dataName)
      std::fprintf(err, "hag-run: note: %s was trained on '%s', continuing "
                        "on '%s'\n",
                   path.c_str(), meta("data").c_str(), dataName.c_str());
    if (!o.quiet)
      std::fprintf(err, "hag-run: resumed from %s at step %lld\n",
                   path.c_str(), static_cast<long long>(done));
  }
  // Every rank must run the same artifact, settings, data and state.
  {
    std::string settings = std::to_string(steps) + "\n" + dataName + "\n" +
                           std::to_string(data->size()) + "\n" +
                           std::to_string(done);
    TensorMap st = trainer.localState();
    if (Status c = checkParallelStart(model, settings, &st); !c.ok())
      return printError(err, c.message());
  }
  if (done >= steps) {
    std::fprintf(err, "hag-run: nothing to do: %lld of %lld steps are done\n",
                 static_cast<long long>(done), static_cast<long long>(steps));
    return kExitOk;
  }
  if (primary)
    if (Status m = makeDirectories(ckptDir); !m.ok())
      return printError(err, m.message());

  std::ofstream log;
  if (!o.log.empty() && primary)
    if (Status l = openLog(o.log, done, !o.resume.empty(), log); !l.ok())
      return printError(err, l.message());

  // Every rank calls save (tensor-parallel slices are gathered to whole
  // tensors, so a checkpoint is the whole state whatever the split); rank 0
  // writes it.
  auto save = [&](int64_t step) -> Status {
    Result<TensorMap> gathered = trainer.wholeState();
    if (!gathered.ok())
      return gathered.status();
    if (!primary)
      return Status::success();
    TensorMap state = std::move(*gathered);
    Result<HostTensor> runStep = HostTensor::zeros(DType::I64, {});
    if (!runStep.ok())
      return runStep.status();
    runStep->dataAs<int64_t>()[0] = step;
    state["run.step"] = std::move(*runStep);
    std::string path = ckptDir + "/" + checkpointName(step);
    if (Status w = writeSafeTensors(
            path, state,
            {{"format", "hag-checkpoint"},
             {"hag_artifact",
              o.artifact.substr(o.artifact.find_last_of('/') + 1)},
             {"data", dataName},
             {"batch", std::to_string(batch)},
             {"seq", std::to_string(seq)},
             {"seed", std::to_string(tf.seed)},
             {"sampling", tf.sampling}});
        !w.ok())
      return w;
    // Keep the newest three.
    auto found = listCheckpoints(ckptDir);
    for (size_t i = 0; i + 3 < found.size(); ++i)
      ::unlink(found[i].second.c_str());
    return Status::success();
  };

  bool tty = ::isatty(::fileno(err));
  int64_t killAfter = -1;
  if (const char *k = std::getenv("HAG_RUN_TEST_KILL_AFTER_STEP"))
    killAfter = std::atoll(k);
  int64_t stallAfter = -1;
  if (const char *k = std::getenv("HAG_RUN_TEST_STALL_AFTER_STEP"))
    stallAfter = std::atoll(k);
  if (!o.quiet)
    std::fprintf(err,
                 "hag-run: training %s: %lld steps of %lld x %lld tokens (%s), "
                 "data %s (%lld tokens), checkpoints every %lld steps in %s\n",
                 o.artifact.c_str(), static_cast<long long>(steps - done),
                 static_cast<long long>(batch), static_cast<long long>(seq),
                 tf.precision.c_str(), o.data.c_str(),
                 static_cast<long long>(data->size()),
                 static_cast<long long>(every), ckptDir.c_str());
  if (!o.quiet && layout.size() > 1)
    std::fprintf(err,
                 "hag-run: parallel: %d ranks (tensor %d x data %d), %lld "
                 "rows of each batch per replica, collectives time out "
                 "after %g s\n",
                 layout.size(), layout.tensor, layout.data,
                 static_cast<long long>(localBatch), collectiveTimeout());
  auto runStart = std::chrono::steady_clock::now();
  double firstLoss = NAN, lastLoss = NAN, tokensPerS = 0.0;
  int64_t reportEvery = std::max<int64_t>(1, (steps - done) / 25);
  for (int64_t step = done; step < steps; ++step) {
    std::vector<int64_t> starts =
        sampler->starts(static_cast<uint64_t>(step), batch);
    if (layout.data > 1)
      starts = std::vector<int64_t>(starts.begin() + firstRow,
                                    starts.begin() + firstRow + localBatch);
    Result<HostTensor> tokens = data->batch(starts, seq);
    if (!tokens.ok())
      return printError(err, tokens.message());
    auto t0 = std::chrono::steady_clock::now();
    Result<TrainStats> stats = trainer.step(*tokens);
    if (!stats.ok())
      return printError(err, "step " + std::to_string(step + 1) + ": " +
                           stats.message());
    double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                      runStart)
            .count();
    tokensPerS = static_cast<double>(batch * seq) / secs;
    if (std::isnan(firstLoss))
      firstLoss = stats->loss;
    lastLoss = stats->loss;
    int64_t n = step + 1;
    if (log.is_open()) {
      char row[256];
      std::snprintf(row, sizeof(row), "%lld,%.9g,%.9g,%.9g,%.9g,%.1f,%d,%.3f\n",
                    static_cast<long long>(n), stats->loss, stats->gradNorm,
                    stats->lr, stats->lossScale, tokensPerS,
                    stats->applied ? 1 : 0, elapsed);
      log << row;
      log.flush();
    }
    if (!o.quiet && (tty || n % reportEvery == 0 || n == steps || n == done + 1)) {
      double eta = elapsed / static_cast<double>(n - done) *
                   static_cast<double>(steps - n);
      int width = 24;
      int filled = static_cast<int>(width * n / steps);
      std::string bar = "[" + std::string(filled, '#') +
                        std::string(width - filled, '.') + "]";
      std::fprintf(err,
                   "%s%s step %lld/%lld | loss %.4f | %.0f tok/s | scale %g | "
                   "lr %.2e%s | ETA %s%s",
                   tty ? "\r" : "", bar.c_str(), static_cast<long long>(n),
                   static_cast<long long>(steps), stats->loss, tokensPerS,
                   stats->lossScale, stats->lr,
                   stats->applied ? "" : " | skipped (non-finite gradient)",
                   formatDuration(eta).c_str(), tty ? "   " : "\n");
      std::fflush(err);
    }
    if (n % every == 0 || n == steps)
      if (Status c = save(n); !c.ok())
        return printError(err, (tty ? "\n" : std::string()) + "checkpoint: " +
                             c.message());
    // Test hook: die as a crash would (no cleanup, no flush) after step n.
    // HAG_RUN_TEST_RANK limits both to one rank of a parallel job; the
    // stall stops answering without dying (as a hung rank would).
    const char *testRank = std::getenv("HAG_RUN_TEST_RANK");
    bool thisRank = !testRank || std::atoi(testRank) == layout.rank;
    if (killAfter == n && thisRank)
      ::raise(SIGKILL);
    if (stallAfter == n && thisRank)
      for (;;)
        ::pause();
  }
  if (!o.quiet && tty)
    std::fprintf(err, "\n");
  log.close();
  double total = std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - runStart)
                     .count();
  std::fprintf(out,
               "trained %lld steps in %s: loss %.4f -> %.4f, last %.0f tok/s, "
               "checkpoint %s/%s\n",
               static_cast<long long>(steps - done),
               formatDuration(total).c_str(), firstLoss, lastLoss, tokensPerS,
               ckptDir.c_str(), checkpointName(steps).c_str());
  if (!o.saveWeights.empty()) {
    // The whole weights (slices and stages gathered), written by rank 0.
    Result<TensorMap> whole = trainer.wholeWeights();
    if (!whole.ok())
      return printError(err, whole.message());
    if (primary) {
      if (Status w = writeSafeTensors(
              o.saveWeights, *whole,
              {{"format", "pt"},
               {"hag_artifact",
                o.artifact.substr(o.artifact.find_last_of('/') + 1)},
               {"hag_version", model.artifact().manifest().hagVersion}});
          !w.ok())
        return printError(err, w.message());
      if (!o.quiet)
        std::fprintf(err, "hag-run: saved the trained weights to %s\n",
                     o.saveWeights.c_str());
    }
  }
  if (!o.plot.empty() && primary) {
    if (Status p = plotLoss(o.log, o.plot, model.artifact().source()); !p.ok())
      return printError(err, p.message());
    if (!o.quiet)
      std::fprintf(err, "hag-run: plotted the loss curve to %s\n",
                   o.plot.c_str());
  }
  return kExitOk;
}
