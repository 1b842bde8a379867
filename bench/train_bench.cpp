//===- train_bench.cpp - training step: HAG vs LibTorch eager -------------===//
//
// Issue 4's benchmark: one training step (forward, backward, clipping,
// AdamW) of a small pyramid-attention language model at sequence lengths
// 2K and 8K (batch 1), two ways in one run, each (method, N) in its own
// forked child so peak memory is per method:
//
//  - HAG: the artifact of `hag-compile MODEL.yaml --train` through
//    hag::rt::Trainer (one compiled call per step);
//  - torch: the same model in LibTorch eager: the float32 pyramid reference
//    (hag::ref::lmLoss) + autograd + torch::nn::utils::clip_grad_norm_ +
//    torch::optim::AdamW (decay on matrices only), on the same weights.
//
// Prints a table (ms per step, tokens/s, peak working memory, HAG's speedup).
// A benchmark, not a test: it asserts nothing.
//
//===----------------------------------------------------------------------===//

#include "BenchProcess.h"

#include "hag/reference/Reference.h"
#include "hag/runtime/Memory.h"
#include "hag/runtime/Model.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#ifndef HAG_COMPILE_PATH
#error "HAG_COMPILE_PATH (the hag-compile binary) must be defined by CMake"
#endif

using namespace hag::bench;

namespace {

/// The benchmarked model: tiny_lm's shape (2 layers, d_model 128, 4 heads,
/// byte vocabulary, the spec's attention defaults) with max_seq 16384.
const char *kModel = R"(model:
  kind: lm
  vocab: 256
  d_model: 128
  layers: 2
  heads: 4
  max_seq: 16384
attention:
  block: 64
  ratio: 4
  levels: 4
  window: 64
  summary: 64
train:
  batch: 1
  seq: 2048
  steps: 1000
  optimizer: {lr: 3.0e-4, betas: [0.9, 0.95], eps: 1.0e-8, weight_decay: 0.1, clip: 1.0}
)";

hag::ref::ModelConfig referenceConfig() {
  hag::ref::ModelConfig c;
  c.kind = hag::ref::ModelConfig::LM;
  c.vocab = 256;
  c.dModel = 128;
  c.layers = 2;
  c.mlpHidden = 512;
  c.gateHidden = 128;
  c.tieEmbeddings = true;
  c.rope = true;
  c.ropeBase = 10000.0;
  hag::PyramidParams &p = c.attn;
  p.heads = 4;
  p.kvHeads = 4;
  p.headDim = 32;
  p.block = 64;
  p.ratio = 4;
  p.levels = 4;
  p.window = 64;
  p.summary = 64;
  p.maxSeq = 16384;
  return c;
}

std::vector<int32_t> randomTokens(int64_t count, uint64_t seed) {
  std::vector<int32_t> t(count);
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (int32_t &x : t) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<int32_t>((s >> 33) % 256);
  }
  return t;
}

hag::rt::Model openModel(const std::string &artifact) {
  hag::rt::Result<hag::rt::Model> model = hag::rt::Model::open(artifact);
  if (!model.ok())
    throw std::runtime_error(model.message());
  if (hag::rt::Status s = model->initWeights(0); !s.ok())
    throw std::runtime_error(s.message());
  return std::move(*model);
}

int64_t startPeak(ChildReport &report) {
  report.put("peak_exact", resetPeakRss() ? "1" : "0");
  return procStatusBytes("self", "VmRSS");
}

void finish(ChildReport &report, const std::vector<double> &times,
            int64_t baseline, double loss) {
  int64_t hwm = procStatusBytes("self", "VmHWM");
  report.put("median_s", median(times));
  report.put("peak_bytes", double(std::max<int64_t>(0, hwm - baseline)));
  report.put("loss", loss);
  report.put("status", "ok");
}

void measureHag(ChildReport &report, const std::string &artifact, int64_t n,
                const RepeatPolicy &repeat) {
  hag::rt::Model model = openModel(artifact);
  hag::rt::Result<hag::rt::Trainer> trainer = hag::rt::Trainer::create(model);
  if (!trainer.ok())
    throw std::runtime_error(trainer.message());
  std::vector<int32_t> tokens = randomTokens(n + 1, 1);
  hag::rt::TensorRef ref{hag::rt::DType::I32, {1, n + 1}, tokens.data()};
  double loss = NAN;
  int64_t baseline = startPeak(report);
  std::vector<double> times = timeRepeated(
      [&] {
        hag::rt::Result<hag::rt::TrainStats> s = trainer->step(ref);
        if (!s.ok())
          throw std::runtime_error(s.message());
        if (std::isnan(loss))
          loss = s->loss; // the first step's, from the initial weights
      },
      repeat);
  finish(report, times, baseline, loss);
}

void measureTorch(ChildReport &report, const std::string &artifact, int64_t n,
                  const RepeatPolicy &repeat) {
  hag::ref::ModelConfig cfg = referenceConfig();
  hag::rt::Model model = openModel(artifact);
  hag::ref::Weights w;
  std::vector<torch::Tensor> decay, noDecay;
  for (const auto &[name, t] : model.weights()) {
    torch::Tensor x =
        torch::from_blob(const_cast<uint8_t *>(t.data.data()), t.shape,
                         torch::kFloat32)
            .clone()
            .set_requires_grad(true);
    w[name] = x;
    (x.dim() >= 2 ? decay : noDecay).push_back(x);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(3e-4)
                                     .betas({0.9, 0.95})
                                     .eps(1e-8)
                                     .weight_decay(0.1)));
  groups.emplace_back(noDecay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(3e-4)
                                       .betas({0.9, 0.95})
                                       .eps(1e-8)
                                       .weight_decay(0.0)));
  torch::optim::AdamW opt(groups);
  std::vector<torch::Tensor> all = decay;
  all.insert(all.end(), noDecay.begin(), noDecay.end());
  std::vector<int32_t> ids = randomTokens(n + 1, 1);
  torch::Tensor tokens =
      torch::from_blob(ids.data(), {1, n + 1}, torch::kInt32).to(torch::kInt64);
  double loss = NAN;
  int64_t baseline = startPeak(report);
  std::vector<double> times = timeRepeated(
      [&] {
        opt.zero_grad();
        torch::Tensor l = hag::ref::lmLoss(cfg, w, tokens);
        l.backward();
        torch::nn::utils::clip_grad_norm_(all, 1.0);
        opt.step();
        if (std::isnan(loss))
          loss = l.item<double>();
      },
      repeat);
  finish(report, times, baseline, loss);
}

std::string cell(const ChildOutcome &c, const char *key, double scale,
                 const char *format) {
  if (!c.ok())
    return c.shortStatus();
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, c.number(key) * scale);
  return buf;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<int64_t> sizes = {2048, 8192};
  RepeatPolicy repeat;
  repeat.minReps = 3;
  repeat.minSeconds = 2.0;
  repeat.maxReps = 20;
  std::string artifact;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      sizes = {2048};
      repeat.minSeconds = 0.5;
    } else if (a == "--artifact" && i + 1 < argc) {
      artifact = argv[++i];
    } else if (a == "--help") {
      std::puts("usage: hag-bench-train [--quick] [--artifact PATH]\n"
                "One training step of a 2-layer pyramid LM (d_model 128) at\n"
                "N = 2K and 8K, batch 1: HAG's compiled train_step vs LibTorch\n"
                "eager (reference + autograd + AdamW); ms/step, tokens/s, peak\n"
                "working memory.");
      return 0;
    } else {
      std::fprintf(stderr, "hag-bench-train: unknown argument '%s'\n",
                   a.c_str());
      return 2;
    }
  }
  char dirTemplate[] = "/tmp/hag-bench-train-XXXXXX";
  std::string dir = ::mkdtemp(dirTemplate);
  if (artifact.empty()) {
    std::ofstream(dir + "/model.yaml") << kModel;
    artifact = dir + "/model.hag";
    std::fprintf(stderr, "compiling the model with --train ...\n");
    if (runProgram({HAG_COMPILE_PATH, dir + "/model.yaml", "--train", "-o",
                    artifact}) != 0) {
      std::fprintf(stderr, "hag-bench-train: hag-compile failed\n");
      return 1;
    }
  }
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) > 0)
    std::printf("load average (1 min) at start: %.2f\n", load[0]);
  std::printf("training step, 2-layer pyramid LM (d_model 128, 4 heads, B=W=T=64, "
              "L=4), batch 1, f32, %ld cores\n\n",
              ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("%7s | %10s %10s %9s | %10s %10s %9s | %7s\n", "N",
              "HAG ms", "HAG tok/s", "HAG MiB", "torch ms", "torch tok/s",
              "torch MiB", "speedup");
  int64_t budget = memTotalBytes() / 100 * 85;
  for (int64_t n : sizes) {
    ChildOutcome hag = runInChild(
        [&](ChildReport &r) {
          hag::rt::retainLargeAllocations();
          measureHag(r, artifact, n, repeat);
        },
        900, budget);
    ChildOutcome ref = runInChild(
        [&](ChildReport &r) {
          hag::rt::retainLargeAllocations();
          measureTorch(r, artifact, n, repeat);
        },
        900, budget);
    double speedup = hag.ok() && ref.ok()
                         ? ref.number("median_s") / hag.number("median_s")
                         : NAN;
    char hagRate[32] = "-", refRate[32] = "-";
    if (hag.ok())
      std::snprintf(hagRate, sizeof(hagRate), "%.0f",
                    double(n) / hag.number("median_s"));
    if (ref.ok())
      std::snprintf(refRate, sizeof(refRate), "%.0f",
                    double(n) / ref.number("median_s"));
    std::printf("%7ld | %10s %10s %9s | %10s %10s %9s | %6.2fx\n", long(n),
                cell(hag, "median_s", 1e3, "%.1f").c_str(), hagRate,
                cell(hag, "peak_bytes", 1.0 / 1048576, "%.0f").c_str(),
                cell(ref, "median_s", 1e3, "%.1f").c_str(), refRate,
                cell(ref, "peak_bytes", 1.0 / 1048576, "%.0f").c_str(),
                speedup);
    std::fflush(stdout);
    if (!hag.ok())
      std::fprintf(stderr, "HAG at N=%ld: %s\n", long(n), hag.message.c_str());
    if (!ref.ok())
      std::fprintf(stderr, "torch at N=%ld: %s\n", long(n), ref.message.c_str());
    if (hag.ok() && ref.ok())
      std::printf("          first-step loss: HAG %.4f, torch %.4f (same weights and tokens)\n",
                  hag.number("loss"), ref.number("loss"));
  }
  if (::getloadavg(load, 3) > 0)
    std::printf("\nload average (1 min) at end: %.2f\n", load[0]);
  return 0;
}
