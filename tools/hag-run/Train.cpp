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

#include "hag/runtime/FileIO.h"
#include "hag/runtime/Memory.h"
#include "hag/runtime/Model.h"
#include "hag/runtime/Npy.h"
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

int hag::run::runTraining(const RunOptions &o, std::FILE *out, std::FILE *err) {
  retainLargeAllocations();
  Result<Model> opened = Model::open(o.artifact);
  if (!opened.ok())
    return printError(err, opened.message());
  Model &model = *opened;
  const TrainFacts &tf = model.artifact().manifest().train;
  if (!tf.present || !model.artifact().findEntry("train_step"))
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

  Result<Trainer> created = Trainer::create(model);
  if (!created.ok())
    return printError(err, created.message());
  Trainer &trainer = *created;

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
    TensorMap st = trainer.state();
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
    Result<TensorMap> gathered =
        gatherWhole(trainer.stateSpecs(), trainer.state());
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
    Result<TrainStats> stats = trainer.step(
        TensorRef{tokens->dtype, tokens->shape, tokens->data.data()});
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
  if (!o.saveWeights.empty() && layout.tensor > 1) {
    // The whole weights, gathered from the tensor-parallel slices.
    Result<TensorMap> whole =
        gatherWhole(model.parameters(), trainer.weights());
    if (!whole.ok())
      return printError(err, whole.message());
    if (primary)
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
  } else if (!o.saveWeights.empty() && primary) {
    if (Status w = model.setWeights(trainer.weights(), "the trained weights");
        !w.ok())
      return printError(err, w.message());
    if (Status w = model.saveWeights(o.saveWeights); !w.ok())
      return printError(err, w.message());
    if (!o.quiet)
      std::fprintf(err, "hag-run: saved the trained weights to %s\n",
                   o.saveWeights.c_str());
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
