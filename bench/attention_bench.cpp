//===- attention_bench.cpp - HAG vs LibTorch on one attention layer -------===//
//
// hag-bench-attention: the benchmark of issue 3. One pyramid attention layer
// (examples/pyramid_attention.yaml: D 512, 8 heads, the spec's defaults),
// forward, x [1, N, 512] f32, for N = 1K .. 64K, three ways in the same run:
//
//  - HAG: the real compiled artifact (hag-compile examples/...yaml -o pa.hag),
//    loaded with hag::rt::Model and called through run("forward", x);
//  - the LibTorch pyramid reference (hag::ref::attentionLayer, float32) on
//    the same weights, which also checks HAG's output once per N;
//  - LibTorch dense causal attention (hag::ref::denseAttention: matmul,
//    softmax, matmul) behind the same projections and RoPE.
//
// The parent process only orchestrates: every measurement (and the BLAS and
// FMA-peak probes) runs in a forked child, so no OpenMP or BLAS thread pool
// exists before a fork, peak memory is per method, and an out-of-memory
// method or a hang becomes a table entry (see BenchProcess.h).
//
// FLOPs are counted as spec section 6 does: attention core 4 * d * sum_i K(i)
// per head with K(i) from hag::countKeys (dense: 4 * d * N(N+1)/2 per head),
// plus the layer's matrix products (Q, K, V, O projections and the memory
// gate); RoPE, the compression and the softmax are not counted.
//
//===----------------------------------------------------------------------===//

#include "BenchProcess.h"
#include "FmaPeak.h"
#include "ManifestParams.h"

#include "hag/Analysis/PyramidParams.h"
#include "hag/Analysis/PyramidWindows.h"
#include "hag/reference/Reference.h"
#include "hag/runtime/Artifact.h"
#include "hag/runtime/Memory.h"
#include "hag/runtime/Model.h"

#include <ATen/Version.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef HAG_COMPILE_PATH
#error "HAG_COMPILE_PATH (the hag-compile binary) must be defined by CMake"
#endif
#ifndef HAG_EXAMPLES_DIR
#error "HAG_EXAMPLES_DIR (the examples/ directory) must be defined by CMake"
#endif

using namespace hag::bench;

namespace {

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

struct Options {
  std::string artifact;
  std::vector<int64_t> sizes;
  std::string csv;
  uint64_t seed = 1;
  int threads = 0;
  /// Wall-clock limit of one child (setup, warm-up and timed runs).
  double timeout = 600.0;
  /// A LibTorch peer whose child is estimated to need longer is skipped.
  double timeBudget = 150.0;
  RepeatPolicy repeat;
  /// Dense is skipped when its score matrices need more than this fraction
  /// of MemTotal.
  double denseMemoryFraction = 0.6;
  /// A child whose resident memory passes this fraction of MemTotal is
  /// killed and reported as out of memory.
  double memoryBudgetFraction = 0.85;
  /// When > 0, the memory budget in GiB instead of the fraction.
  double memoryBudgetGiB = 0.0;
  bool runReference = true;
  bool runDense = true;
  /// OPENBLAS_CORETYPE for the LibTorch peers: "auto" (correct a generic
  /// detection, see fixOpenBlasCore), "detected" (leave OpenBLAS alone) or a
  /// core name.
  std::string openblasCore = "auto";
};

void printUsage() {
  std::printf(
      "usage: hag-bench-attention [options]\n"
      "\n"
      "One pyramid attention layer (examples/pyramid_attention.yaml), "
      "forward,\nHAG's compiled artifact vs the LibTorch pyramid reference "
      "vs LibTorch\ndense attention.\n"
      "\n"
      "  --artifact PATH     use this .hag instead of compiling the example\n"
      "  --sizes LIST        sequence lengths, e.g. 1024,2048 or 1K,2K "
      "(default 1K..64K)\n"
      "  --quick             N = 1K, 2K, 4K only\n"
      "  --csv FILE          also write one row per (N, method) to FILE\n"
      "  --seed S            weights and input seed (default 1)\n"
      "  --threads T         threads for every method (default: all cores)\n"
      "  --timeout S         wall-clock limit per measurement child "
      "(default 600)\n"
      "  --time-budget S     skip a LibTorch peer estimated to need longer "
      "(default 150)\n"
      "  --min-reps K        timed runs at least (default 3)\n"
      "  --min-time S        timed seconds at least (default 1)\n"
      "  --memory-budget G   kill a measurement whose resident memory passes "
      "G GiB\n"
      "                      (default: 85%% of MemTotal)\n"
      "  --no-reference      skip the LibTorch pyramid reference\n"
      "  --no-dense          skip LibTorch dense attention\n"
      "  --openblas-core C   OPENBLAS_CORETYPE for the LibTorch peers: auto "
      "(default:\n"
      "                      SkylakeX/Haswell when OpenBLAS falls back to its "
      "generic\n"
      "                      Prescott kernels on an AVX-512/AVX2 CPU), "
      "detected, or a name\n"
      "  --help              this text\n");
}

/// "4096", "4K" or "4k" (x 1024).
bool parseSize(std::string s, int64_t &out) {
  int64_t scale = 1;
  if (!s.empty() && (s.back() == 'K' || s.back() == 'k')) {
    scale = 1024;
    s.pop_back();
  }
  if (s.empty() || s.size() > 12 ||
      !std::all_of(s.begin(), s.end(),
                   [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  out = std::stoll(s) * scale;
  return out >= 1;
}

bool parseOptions(int argc, char **argv, Options &o) {
  std::vector<int64_t> defaults;
  for (int64_t n = 1024; n <= 65536; n *= 2)
    defaults.push_back(n);
  o.sizes = defaults;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    size_t eq = arg.find('=');
    bool hasInline = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (hasInline) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto next = [&](std::string &v) {
      if (hasInline) {
        v = value;
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hag-bench-attention: %s needs a value\n",
                     arg.c_str());
        return false;
      }
      v = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--help" || arg == "-h") {
      printUsage();
      std::exit(0);
    } else if (arg == "--quick") {
      o.sizes = {1024, 2048, 4096};
    } else if (arg == "--no-reference") {
      o.runReference = false;
    } else if (arg == "--no-dense") {
      o.runDense = false;
    } else if (arg == "--artifact" || arg == "--csv" || arg == "--sizes" ||
               arg == "--seed" || arg == "--threads" || arg == "--timeout" ||
               arg == "--time-budget" || arg == "--min-reps" ||
               arg == "--min-time" || arg == "--openblas-core" ||
               arg == "--memory-budget") {
      if (!next(v))
        return false;
      try {
        if (arg == "--artifact") {
          o.artifact = v;
        } else if (arg == "--csv") {
          o.csv = v;
        } else if (arg == "--sizes") {
          o.sizes.clear();
          std::stringstream ss(v);
          std::string item;
          while (std::getline(ss, item, ',')) {
            int64_t n = 0;
            if (!parseSize(item, n)) {
              std::fprintf(stderr, "hag-bench-attention: bad size '%s'\n",
                           item.c_str());
              return false;
            }
            o.sizes.push_back(n);
          }
          if (o.sizes.empty())
            return false;
        } else if (arg == "--seed") {
          o.seed = std::stoull(v);
        } else if (arg == "--threads") {
          o.threads = std::stoi(v);
        } else if (arg == "--timeout") {
          o.timeout = std::stod(v);
        } else if (arg == "--time-budget") {
          o.timeBudget = std::stod(v);
        } else if (arg == "--min-reps") {
          o.repeat.minReps = std::max(1, std::stoi(v));
        } else if (arg == "--min-time") {
          o.repeat.minSeconds = std::stod(v);
        } else if (arg == "--openblas-core") {
          o.openblasCore = v;
        } else if (arg == "--memory-budget") {
          o.memoryBudgetGiB = std::stod(v);
        }
      } catch (const std::exception &) {
        std::fprintf(stderr, "hag-bench-attention: bad value '%s' for %s\n",
                     v.c_str(), arg.c_str());
        return false;
      }
    } else {
      std::fprintf(stderr, "hag-bench-attention: unknown option '%s'\n",
                   arg.c_str());
      return false;
    }
  }
  std::sort(o.sizes.begin(), o.sizes.end());
  o.sizes.erase(std::unique(o.sizes.begin(), o.sizes.end()), o.sizes.end());
  return true;
}

//===----------------------------------------------------------------------===//
// The layer and its FLOPs
//===----------------------------------------------------------------------===//

/// The attention layer as the artifact's manifest describes it.
struct Layer {
  hag::PyramidParams params;
  hag::ref::ModelConfig config;
  std::string targetCpu;
  int64_t dModel() const { return config.dModel; }
};

bool readLayer(const std::string &artifactPath, Layer &layer,
               std::string &error) {
  hag::rt::Result<hag::rt::Artifact> art =
      hag::rt::Artifact::open(artifactPath);
  if (!art.ok()) {
    error = art.message();
    return false;
  }
  const hag::rt::ArtifactManifest &m = art->manifest();
  hag::PyramidParams &p = layer.params;
  if (!hag::bench::pyramidParamsOf(m, artifactPath, p, error))
    return false;
  hag::ref::ModelConfig &c = layer.config;
  c.kind = hag::ref::ModelConfig::Attention;
  c.dModel = m.model.dModel;
  c.layers = 1;
  c.gateHidden = m.model.gateHidden;
  c.rope = m.model.rope;
  c.ropeBase = m.model.ropeBase;
  c.attn = p;
  layer.targetCpu = m.target.cpu;
  return true;
}

/// Executed FLOPs of one forward for a batch of one (ManifestParams.h).
struct Flops {
  double keys = 0, core = 0, gate = 0, layer = 0;
  Flops(const hag::bench::LayerFlops &f)
      : keys(f.keys), core(f.core), gate(f.gate), layer(f.layer()) {}
};

Flops pyramidFlops(const Layer &l, int64_t n) {
  return hag::bench::pyramidFlops(l.params, l.dModel(), l.config.gateHidden, n);
}

Flops denseFlops(const Layer &l, int64_t n) {
  return hag::bench::denseFlops(l.params, l.dModel(), n);
}

/// Dense attention's peak memory in bytes, estimated: it runs one head at a
/// time (what a user without a fused kernel does to fit long sequences), so
/// one head's [N, N] f32 scores exist twice at once (logits and their masked
/// copy, then the masked logits and the softmax), plus the [N, N] bool causal
/// mask and the activations.
double denseBytesNeeded(const Layer &l, int64_t n) {
  double N = double(n);
  double scores = N * N * 4.0;
  double mask = l.params.causal ? N * N : 0.0;
  double activations = 8.0 * N * double(l.dModel()) * 4.0;
  return 2.0 * scores + mask + activations;
}

//===----------------------------------------------------------------------===//
// Measurement children
//===----------------------------------------------------------------------===//

enum Method { HAG = 0, Reference = 1, Dense = 2 };
const char *const kMethodNames[] = {"hag", "reference", "dense"};

/// What the table needs of one (method, N).
struct Cell {
  /// Measured, or why not ("does not fit (needs 16.3 GiB)", "OOM", ...).
  bool measured = false;
  bool attempted = false;
  std::string why;
  /// The short text for the time column when not measured.
  std::string shortWhy;
  double medianSeconds = NAN, minSeconds = NAN;
  int reps = 0;
  double peakBytes = NAN;
  bool peakExact = true;
  /// Reference only: max |y_hag - y_ref| (NaN when not checked).
  double maxError = NAN;
  /// Dense: time of denseAttention alone (median over the same runs); HAG:
  /// the artifact's 'core' entry (gate, levels, summaries, attention).
  double coreSeconds = NAN;
  /// HAG only: the artifact's 'gate' entry (the memory gate alone).
  double gateSeconds = NAN;
  /// HAG: the attention without the gate, coreSeconds - gateSeconds (both
  /// medians, timed in the same child); NaN without both entries.
  double attentionSeconds() const { return coreSeconds - gateSeconds; }
  /// HAG: true when both entries were timed (attentionSeconds() > 0).
  bool attentionTimed() const { return attentionSeconds() > 0; }
  /// HAG: the time the attention core's rate is taken on: the attention
  /// without the gate, else the 'core' entry, else the whole layer.
  double coreRateSeconds() const {
    return attentionTimed()           ? attentionSeconds()
           : !std::isnan(coreSeconds) ? coreSeconds
                                      : medianSeconds;
  }
};

/// The per-N input x [1, N, D], identical in every child.
std::vector<float> makeInput(int64_t n, int64_t d, uint64_t seed) {
  std::vector<float> x(static_cast<size_t>(n * d));
  fillStandardNormal(x.data(), n * d, seed * 1000003ull + uint64_t(n));
  return x;
}

hag::rt::Model openModel(const std::string &artifact, uint64_t seed) {
  hag::rt::Result<hag::rt::Model> model = hag::rt::Model::open(artifact);
  if (!model.ok())
    throw std::runtime_error(model.message());
  hag::rt::Status st = model->initWeights(seed);
  if (!st.ok())
    throw std::runtime_error(st.message());
  return std::move(*model);
}

/// The runtime's initial weights as float32 torch tensors, by name (so the
/// reference computes with exactly HAG's weights).
hag::ref::Weights torchWeights(const Layer &layer, const std::string &artifact,
                               uint64_t seed) {
  hag::rt::Model model = openModel(artifact, seed);
  hag::ref::Weights w;
  for (const auto &[name, t] : model.weights()) {
    if (t.dtype != hag::rt::DType::F32)
      throw std::runtime_error("weight " + name + " is not f32");
    w[name] = torch::from_blob(const_cast<uint8_t *>(t.data.data()), t.shape,
                               torch::kFloat32)
                  .clone();
  }
  for (const auto &[name, shape] : hag::ref::weightShapes(layer.config)) {
    auto it = w.find(name);
    if (it == w.end())
      throw std::runtime_error("the artifact has no weight '" + name +
                               "' that the reference needs");
    if (it->second.sizes().vec() != shape)
      throw std::runtime_error("weight '" + name + "' has another shape");
  }
  return w;
}

/// Starts peak-memory tracking; returns the baseline resident size.
int64_t startPeakTracking(ChildReport &report) {
  bool exact = resetPeakRss();
  report.put("peak_exact", exact ? "1" : "0");
  return procStatusBytes("self", "VmRSS");
}

void reportTiming(ChildReport &report, const std::vector<double> &times,
                  int64_t baseline) {
  int64_t hwm = procStatusBytes("self", "VmHWM");
  report.put("median_s", median(times));
  report.put("min_s", *std::min_element(times.begin(), times.end()));
  report.put("reps", double(times.size()));
  report.put("base_bytes", double(baseline));
  report.put("peak_bytes", double(std::max<int64_t>(0, hwm - baseline)));
}

std::string hagOutputPath(const std::string &dir, int64_t n) {
  return dir + "/hag_y_" + std::to_string(n) + ".f32";
}

/// HAG: the compiled artifact through the runtime.
void measureHag(ChildReport &report, const Layer &layer, const Options &o,
                const std::string &artifact, const std::string &workDir,
                int64_t n) {
  hag::rt::Model model = openModel(artifact, o.seed);
  const int64_t D = layer.dModel();
  std::vector<float> x = makeInput(n, D, o.seed);
  std::vector<hag::rt::TensorRef> inputs(1);
  inputs[0].dtype = hag::rt::DType::F32;
  inputs[0].shape = {1, n, D};
  inputs[0].data = x.data();
  hag::rt::HostTensor y;
  auto once = [&] {
    y = hag::rt::HostTensor(); // Drop the last result before the next run.
    hag::rt::Result<hag::rt::HostTensor> r = model.run("forward", inputs);
    if (!r.ok())
      throw std::runtime_error(r.message());
    y = std::move(*r);
  };
  int64_t baseline = startPeakTracking(report);
  std::vector<double> times = timeRepeated(once, o.repeat);
  reportTiming(report, times, baseline);
  // The output, for the reference child's check.
  std::ofstream out(hagOutputPath(workDir, n), std::ios::binary);
  out.write(reinterpret_cast<const char *>(y.data.data()),
            static_cast<std::streamsize>(y.byteSize()));
  if (!out)
    throw std::runtime_error("cannot write " + hagOutputPath(workDir, n));

  // The attention core alone: the artifact's "core" entry (gate, levels,
  // summary, cross-level attention on given q, k, v and gate input), so the
  // core's rate is measured, not bounded by the layer's time.
  if (model.artifact().findEntry("core")) {
    const hag::PyramidParams &p = layer.params;
    std::vector<std::vector<float>> data = {
        makeInput(n, p.modelDim(), o.seed + 1),
        makeInput(n, p.kvDim(), o.seed + 2),
        makeInput(n, p.kvDim(), o.seed + 3), x};
    std::vector<int64_t> widths = {p.modelDim(), p.kvDim(), p.kvDim(), D};
    std::vector<hag::rt::TensorRef> coreInputs(4);
    for (size_t i = 0; i < 4; ++i) {
      coreInputs[i].dtype = hag::rt::DType::F32;
      coreInputs[i].shape = {1, n, widths[i]};
      coreInputs[i].data = data[i].data();
    }
    // Median time of one call of `entry` on `args` (the result is dropped
    // before each call, as for the layer).
    auto timeEntry = [&](const char *entry,
                         const std::vector<hag::rt::TensorRef> &args) {
      auto once = [&] {
        y = hag::rt::HostTensor();
        hag::rt::Result<hag::rt::HostTensor> r = model.run(entry, args);
        if (!r.ok())
          throw std::runtime_error(r.message());
        y = std::move(*r);
      };
      return median(timeRepeated(once, o.repeat));
    };
    report.put("core_s", timeEntry("core", coreInputs));

    // The memory gate alone (the 'gate' entry, on the same gate input), so
    // that the attention's own time is core - gate.
    if (model.artifact().findEntry("gate"))
      report.put("gate_s", timeEntry("gate", {coreInputs[3]}));
  }
  report.put("status", "ok");
}

/// The LibTorch pyramid reference in float32; checks HAG's output.
void measureReference(ChildReport &report, const Layer &layer, const Options &o,
                      const std::string &artifact, const std::string &workDir,
                      int64_t n) {
  torch::set_num_threads(o.threads);
  torch::NoGradGuard noGrad;
  hag::ref::Weights w = torchWeights(layer, artifact, o.seed);
  const int64_t D = layer.dModel();
  std::vector<float> xv = makeInput(n, D, o.seed);
  torch::Tensor x = torch::from_blob(xv.data(), {1, n, D}, torch::kFloat32);
  torch::Tensor y;
  auto once = [&] {
    y = torch::Tensor();
    y = hag::ref::attentionLayer(layer.config, w, "attn.", x);
  };
  int64_t baseline = startPeakTracking(report);
  std::vector<double> times = timeRepeated(once, o.repeat);
  reportTiming(report, times, baseline);

  std::ifstream in(hagOutputPath(workDir, n), std::ios::binary);
  if (in) {
    std::vector<float> hag(static_cast<size_t>(n * D));
    in.read(reinterpret_cast<char *>(hag.data()),
            static_cast<std::streamsize>(hag.size() * sizeof(float)));
    if (in.gcount() ==
        static_cast<std::streamsize>(hag.size() * sizeof(float))) {
      torch::Tensor yh =
          torch::from_blob(hag.data(), {1, n, D}, torch::kFloat32);
      report.put("max_err", (yh - y.contiguous()).abs().max().item<double>());
    }
  }
  report.put("status", "ok");
}

/// LibTorch dense causal attention behind the same projections and RoPE.
void measureDense(ChildReport &report, const Layer &layer, const Options &o,
                  const std::string &artifact, int64_t n) {
  torch::set_num_threads(o.threads);
  torch::NoGradGuard noGrad;
  hag::ref::Weights w = torchWeights(layer, artifact, o.seed);
  const int64_t D = layer.dModel();
  const hag::PyramidParams &p = layer.params;
  std::vector<float> xv = makeInput(n, D, o.seed);
  torch::Tensor x = torch::from_blob(xv.data(), {1, n, D}, torch::kFloat32);
  torch::Tensor y;
  std::vector<double> coreTimes;
  auto once = [&] {
    y = torch::Tensor();
    torch::Tensor q = torch::linear(x, w.at("attn.wq"));
    torch::Tensor k = torch::linear(x, w.at("attn.wk"));
    torch::Tensor v = torch::linear(x, w.at("attn.wv"));
    if (layer.config.rope) {
      q = hag::ref::rope(q, p.headDim, layer.config.ropeBase);
      k = hag::ref::rope(k, p.headDim, layer.config.ropeBase);
    }
    double t0 = nowSeconds();
    // One head at a time: a [N, N] score matrix per head instead of
    // [H, N, N], so dense runs as long as one head's scores fit.
    std::vector<torch::Tensor> heads;
    for (int64_t h = 0; h < p.heads; ++h) {
      int64_t kvh = h * p.kvHeads / p.heads;
      torch::Tensor qh = q.narrow(-1, h * p.headDim, p.headDim);
      torch::Tensor kh = k.narrow(-1, kvh * p.headDim, p.headDim);
      torch::Tensor vh = v.narrow(-1, kvh * p.headDim, p.headDim);
      heads.push_back(hag::ref::denseAttention(qh, kh, vh, 1, 1, p.causal));
    }
    torch::Tensor attn = torch::cat(heads, -1);
    coreTimes.push_back(nowSeconds() - t0);
    y = torch::linear(attn, w.at("attn.wo"));
  };
  int64_t baseline = startPeakTracking(report);
  std::vector<double> times = timeRepeated(once, o.repeat);
  reportTiming(report, times, baseline);
  coreTimes.erase(coreTimes.begin()); // The warm-up.
  report.put("core_s", median(coreTimes));
  report.put("status", "ok");
}

//===----------------------------------------------------------------------===//
// Machine facts
//===----------------------------------------------------------------------===//

std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown";
}

std::string cpuFlagsOfInterest() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      std::set<std::string> flags;
      std::istringstream ss(line.substr(line.find(':') + 1));
      std::string f;
      while (ss >> f)
        flags.insert(f);
      std::string out;
      for (const char *want :
           {"avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})
        if (flags.count(want))
          out += (out.empty() ? "" : " ") + std::string(want);
      return out;
    }
  return "";
}

std::string openblasCoreName();

/// The BLAS facts of LibTorch, measured in a child: the library mapped into
/// the process, show_config's BLAS line and a 1024^3 sgemm rate.
void probeTorch(ChildReport &report, int threads) {
  torch::set_num_threads(threads);
  report.put("torch_threads", double(torch::get_num_threads()));
  std::string config = at::show_config();
  for (const char *key : {"BLAS_INFO=", "LAPACK_INFO="}) {
    size_t at = config.find(key);
    if (at != std::string::npos) {
      size_t end = config.find_first_of(",\n", at);
      report.put(std::string(key, std::strlen(key) - 1),
                 config.substr(at + std::strlen(key),
                               end == std::string::npos
                                   ? std::string::npos
                                   : end - at - std::strlen(key)));
    }
  }
  torch::NoGradGuard noGrad;
  torch::manual_seed(0);
  torch::Tensor a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  torch::Tensor c;
  RepeatPolicy policy;
  policy.minReps = 5;
  policy.minSeconds = 0.5;
  std::vector<double> times =
      timeRepeated([&] { c = torch::mm(a, b); }, policy);
  report.put("sgemm_gflops",
             2.0 * 1024.0 * 1024.0 * 1024.0 / median(times) * 1e-9);
  // Which BLAS library the dynamic loader mapped.
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> libs;
  std::string line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash == std::string::npos)
      continue;
    std::string path = line.substr(slash);
    std::string lower = path;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower.find("blas") != std::string::npos ||
        lower.find("mkl") != std::string::npos)
      libs.insert(path);
  }
  std::string joined;
  for (const std::string &l : libs)
    joined += (joined.empty() ? "" : ", ") + l;
  report.put("blas_libs", joined.empty() ? "none found" : joined);
  std::string core = openblasCoreName();
  report.put("openblas_core", core.empty() ? "none" : core);
  report.put("status", "ok");
}

/// OpenBLAS's name for the kernels it picked ("SkylakeX", "Prescott"), or
/// "" when the process has no OpenBLAS (LibTorch on another BLAS).
std::string openblasCoreName() {
  using CoreNameFn = char *(*)();
  auto fn = reinterpret_cast<CoreNameFn>(
      ::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char *name = fn ? fn() : nullptr;
  return name ? name : "";
}

/// The first field of /proc/loadavg (the 1-minute load), or -1.
double loadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = -1.0;
  in >> load;
  return load;
}

/// OpenBLAS picks its kernels once, when the library loads (libtorch loads
/// it with this program), from the CPU model. OpenBLAS 0.3.21 (Debian 12)
/// does not know recent Xeons (this machine's Emerald Rapids) and falls back
/// to its generic "Prescott" SSE kernels, 5-6x slower than its AVX-512
/// ones: a LibTorch peer measured that way is not LibTorch on OpenBLAS at
/// its best. The choice can only be changed through OPENBLAS_CORETYPE
/// before the library loads, so this sets the environment (threads too) and
/// re-executes the program once. Returns a line for the report.
std::string fixOpenBlasCore(const Options &o, char **argv) {
  if (const char *done = std::getenv("HAG_BENCH_OPENBLAS_NOTE"))
    return done; // The re-executed process: the environment is set.
  std::string detected = openblasCoreName();
  std::string note;
  std::string want;
  if (o.openblasCore == "detected" || detected.empty()) {
    note = detected.empty() ? "no OpenBLAS in the process"
                            : "OpenBLAS's own choice (--openblas-core "
                              "detected)";
  } else if (o.openblasCore != "auto") {
    want = o.openblasCore;
    note = "set by --openblas-core (OpenBLAS detected '" + detected + "')";
  } else if (const char *user = std::getenv("OPENBLAS_CORETYPE")) {
    note = std::string("OPENBLAS_CORETYPE=") + user + " from the environment";
  } else if (detected == "Prescott") {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
      want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2"))
      want = "Haswell";
    if (!want.empty())
      note = "OPENBLAS_CORETYPE=" + want +
             " set by the bench: OpenBLAS detected 'Prescott' (its generic "
             "kernels) on this CPU (--openblas-core detected to keep that)";
    else
      note = "OpenBLAS's own choice";
  } else {
    note = "OpenBLAS's own choice";
  }
  if (!want.empty())
    ::setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
  ::setenv("HAG_BENCH_OPENBLAS_NOTE", note.c_str(), 1);
  std::fflush(stdout);
  std::fflush(stderr);
  ::execv("/proc/self/exe", argv);
  // Could not re-execute: the OpenBLAS already loaded keeps its choice.
  return "OpenBLAS's own choice ('" + detected +
         "'; re-executing with OPENBLAS_CORETYPE failed)";
}

//===----------------------------------------------------------------------===//
// Formatting
//===----------------------------------------------------------------------===//

std::string fmt(const char *format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string sizeLabel(int64_t n) {
  return n % 1024 == 0 ? std::to_string(n / 1024) + "K" : std::to_string(n);
}

std::string gib(double bytes) {
  return fmt("%.1f GiB", bytes / double(1 << 30));
}

std::string msText(const Cell &c) {
  if (!c.measured)
    return c.shortWhy;
  return c.medianSeconds * 1e3 >= 1000.0 ? fmt("%.0f", c.medianSeconds * 1e3)
                                         : fmt("%.2f", c.medianSeconds * 1e3);
}

std::string mibText(const Cell &c) {
  if (!c.measured || std::isnan(c.peakBytes))
    return "-";
  return fmt("%.0f", c.peakBytes / double(1 << 20)) + (c.peakExact ? "" : "*");
}

std::string ratioText(const Cell &hag, const Cell &other) {
  if (!hag.measured || !other.measured)
    return "-";
  return fmt("%.1fx", other.medianSeconds / hag.medianSeconds);
}

std::string csvQuote(const std::string &s) {
  std::string out = "\"";
  for (char c : s)
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

} // namespace

//===----------------------------------------------------------------------===//
// main
//===----------------------------------------------------------------------===//

int main(int argc, char **argv) {
  Options o;
  if (!parseOptions(argc, argv, o)) {
    printUsage();
    return 2;
  }
  const int cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  if (o.threads <= 0)
    o.threads = std::max(1, cores);
  // Every method gets the same threads: HAG's OpenMP (libomp), LibTorch's
  // intra-op pool (set again with torch::set_num_threads in the children)
  // and OpenBLAS's own pool.
  const std::string threadText = std::to_string(o.threads);
  ::setenv("OMP_NUM_THREADS", threadText.c_str(), 1);
  ::setenv("OPENBLAS_NUM_THREADS", threadText.c_str(), 1);
  // May re-execute this program (with the same arguments) once.
  const std::string openblasNote = fixOpenBlasCore(o, argv);
  const double loadAtStart = loadAverage();
  const int64_t memTotal = memTotalBytes();
  const int64_t memoryBudget =
      o.memoryBudgetGiB > 0 ? int64_t(o.memoryBudgetGiB * double(1 << 30))
      : memTotal > 0        ? int64_t(o.memoryBudgetFraction * double(memTotal))
                            : 0;

  // The work directory: the artifact and HAG's outputs for the check.
  char dirTemplate[] = "/tmp/hag-bench-XXXXXX";
  if (!::mkdtemp(dirTemplate)) {
    std::fprintf(stderr, "hag-bench-attention: mkdtemp: %s\n",
                 std::strerror(errno));
    return 1;
  }
  const std::string workDir = dirTemplate;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{workDir};

  std::string artifact = o.artifact;
  if (artifact.empty()) {
    artifact = workDir + "/pa.hag";
    const std::string yaml =
        std::string(HAG_EXAMPLES_DIR) + "/pyramid_attention.yaml";
    std::fprintf(stderr, "compiling %s\n", yaml.c_str());
    int rc = runProgram({HAG_COMPILE_PATH, yaml, "-o", artifact});
    if (rc != 0) {
      std::fprintf(stderr, "hag-bench-attention: %s failed (status %d)\n",
                   HAG_COMPILE_PATH, rc);
      return 1;
    }
  }
  Layer layer;
  std::string error;
  if (!readLayer(artifact, layer, error)) {
    std::fprintf(stderr, "hag-bench-attention: %s\n", error.c_str());
    return 1;
  }
  const hag::PyramidParams &p = layer.params;

  // Machine facts and the two peaks, each probe in its own child.
  std::fprintf(stderr, "probing LibTorch's BLAS and the FMA peak\n");
  ChildOutcome torchInfo = runInChild(
      [&](ChildReport &r) { probeTorch(r, o.threads); }, 300.0, memoryBudget);
  ChildOutcome fmaInfo = runInChild(
      [&](ChildReport &r) {
        FmaPeak one = measureFmaPeak(1, 1.0);
        FmaPeak all = measureFmaPeak(o.threads, 1.0);
        r.put("kernel", one.kernel);
        r.put("one", one.gflops);
        r.put("all", all.gflops);
        r.put("status", "ok");
      },
      120.0, memoryBudget);
  const double peakOne = fmaInfo.number("one", NAN);
  const double peakAll = fmaInfo.number("all", NAN);

  struct utsname un;
  ::uname(&un);
  std::printf("HAG attention benchmark: one pyramid attention layer, forward, "
              "x [1, N, %lld] f32\n",
              (long long)layer.dModel());
  std::printf(
      "  model: %s (D %lld, H %lld, Hkv %lld, d %lld, B %lld, r %lld, "
      "L %s, W %lld, T %lld, %s, %s, rope %s)\n",
      artifact.c_str(), (long long)layer.dModel(), (long long)p.heads,
      (long long)p.kvHeads, (long long)p.headDim, (long long)p.block,
      (long long)p.ratio,
      p.isAutoLevels() ? "auto" : std::to_string(p.levels).c_str(),
      (long long)p.window, (long long)p.summary, hag::compressName(p.compress),
      p.causal ? "causal" : "bidirectional", layer.config.rope ? "on" : "off");
  std::printf("  machine: %s, %d cores online, %.1f GiB MemTotal, %s %s; "
              "CPU flags: %s\n",
              cpuModel().c_str(), cores, double(memTotal) / double(1 << 30),
              un.sysname, un.release, cpuFlagsOfInterest().c_str());
  std::printf("  threads: %d for every method (HAG: OMP_NUM_THREADS=%d, "
              "artifact built for cpu '%s'; LibTorch: set_num_threads(%d), "
              "get_num_threads() = %s; OPENBLAS_NUM_THREADS=%d)\n",
              o.threads, o.threads, layer.targetCpu.c_str(), o.threads,
              torchInfo.ok()
                  ? fmt("%.0f", torchInfo.number("torch_threads")).c_str()
                  : "?",
              o.threads);
  if (torchInfo.ok())
    std::printf("  LibTorch %d.%d.%d BLAS: BLAS_INFO=%s; mapped: %s; OpenBLAS "
                "kernels: %s (%s); sgemm 1024^3 through torch::mm: %.1f "
                "GFLOP/s on %d threads\n",
                TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH,
                torchInfo.values["BLAS_INFO"].c_str(),
                torchInfo.values["blas_libs"].c_str(),
                torchInfo.values["openblas_core"].c_str(), openblasNote.c_str(),
                torchInfo.number("sgemm_gflops"), o.threads);
  else
    std::printf("  LibTorch probe failed: %s\n", torchInfo.message.c_str());
  if (fmaInfo.ok())
    std::printf("  fp32 FMA peak (%s loop): %.1f GFLOP/s on 1 thread, %.1f "
                "GFLOP/s on %d threads\n",
                fmaInfo.values["kernel"].c_str(), peakOne, peakAll, o.threads);
  else
    std::printf("  FMA peak probe failed: %s\n", fmaInfo.message.c_str());
  std::printf("  load average (1 min) at start: %.2f%s\n", loadAtStart,
              loadAtStart > 0.5 ? " -- other processes are running; "
                                  "times are noisy and rates low"
                                : "");
  std::printf("  timing: 1 warm-up run, then the median of >= %d runs and >= "
              "%.1f s; each (method, N) in its own process (timeout %.0f s, "
              "memory budget %.1f GiB)\n\n",
              o.repeat.minReps, o.repeat.minSeconds, o.timeout,
              double(memoryBudget) / double(1 << 30));
  std::fflush(stdout);

  // The measurements.
  std::vector<std::array<Cell, 3>> cells(o.sizes.size());
  auto measure = [&](Method m, size_t i) {
    int64_t n = o.sizes[i];
    Cell &c = cells[i][m];
    c.attempted = true;
    std::fprintf(stderr, "N %-6lld %-9s ...", (long long)n, kMethodNames[m]);
    std::fflush(stderr);
    ChildOutcome out = runInChild(
        [&](ChildReport &r) {
          // Every method gets the allocator settings the runtime uses
          // (freed large blocks are reused, not page-faulted in again).
          hag::rt::retainLargeAllocations();
          if (m == HAG)
            measureHag(r, layer, o, artifact, workDir, n);
          else if (m == Reference)
            measureReference(r, layer, o, artifact, workDir, n);
          else
            measureDense(r, layer, o, artifact, n);
        },
        o.timeout, memoryBudget);
    if (out.ok()) {
      c.measured = true;
      c.medianSeconds = out.number("median_s", NAN);
      c.minSeconds = out.number("min_s", NAN);
      c.reps = int(out.number("reps", 0));
      c.peakBytes = out.number("peak_bytes", NAN);
      c.peakExact = out.values["peak_exact"] == "1";
      c.maxError = out.number("max_err", NAN);
      c.coreSeconds = out.number("core_s", NAN);
      c.gateSeconds = out.number("gate_s", NAN);
      std::fprintf(stderr, " %.2f ms (%d runs, %.0f s in all)\n",
                   c.medianSeconds * 1e3, c.reps, out.wallSeconds);
    } else {
      c.shortWhy = out.shortStatus();
      c.why = out.message;
      if (out.end == ChildOutcome::End::MemoryBudget ||
          out.end == ChildOutcome::End::OomKilled)
        c.why += fmt(" (peak resident %.1f GiB seen)",
                     double(out.polledPeakRss) / double(1 << 30));
      std::fprintf(stderr, " %s: %s\n", c.shortWhy.c_str(), c.why.c_str());
    }
  };
  // Whether a LibTorch peer is skipped at sizes[i]: memory (dense), an
  // earlier failure, or the estimated time of its child (its last measured
  // time scaled by (N / N_last)^exponent).
  auto skipPeer = [&](Method m, size_t i, double exponent) -> bool {
    int64_t n = o.sizes[i];
    Cell &c = cells[i][m];
    if (m == Dense && memTotal > 0) {
      double need = denseBytesNeeded(layer, n);
      if (need > o.denseMemoryFraction * double(memTotal)) {
        c.shortWhy = "skipped: needs " + gib(need);
        c.why = "does not fit (needs " + gib(need) + " for the scores, > " +
                fmt("%.0f", o.denseMemoryFraction * 100) + "% of MemTotal)";
        return true;
      }
    }
    for (size_t j = i; j-- > 0;) {
      const Cell &prev = cells[j][m];
      if (!prev.attempted)
        continue;
      if (!prev.measured) {
        c.shortWhy = "skipped (failed at " + sizeLabel(o.sizes[j]) + ")";
        c.why = "skipped: it failed (" + prev.shortWhy +
                ") at N = " + std::to_string(o.sizes[j]);
        return true;
      }
      double t = prev.medianSeconds *
                 std::pow(double(n) / double(o.sizes[j]), exponent);
      double runs = 1.0 + std::max<double>(o.repeat.minReps,
                                           std::ceil(o.repeat.minSeconds / t));
      double estimate = runs * t;
      if (estimate > o.timeBudget) {
        c.shortWhy = "skipped: > time budget";
        c.why = "skipped: estimated " + fmt("%.0f", estimate) +
                " s > time budget " + fmt("%.0f", o.timeBudget) + " s";
        return true;
      }
      break;
    }
    return false;
  };
  for (size_t i = 0; i < o.sizes.size(); ++i) {
    int64_t n = o.sizes[i];
    if (n > p.maxSeq) {
      for (Method m : {HAG, Reference, Dense}) {
        cells[i][m].shortWhy = "skipped: N > max_seq";
        cells[i][m].why = "N > the artifact's max_seq";
      }
      continue;
    }
    measure(HAG, i);
    if (o.runReference) {
      if (!skipPeer(Reference, i, 1.0))
        measure(Reference, i);
    } else {
      cells[i][Reference].shortWhy = "not run";
    }
    if (o.runDense) {
      if (!skipPeer(Dense, i, 2.0))
        measure(Dense, i);
    } else {
      cells[i][Dense].shortWhy = "not run";
    }
    std::error_code ec;
    std::filesystem::remove(hagOutputPath(workDir, n), ec);
  }

  // Table 1: times, ratios, memory, error.
  std::printf("Forward of the layer, median time (ms), peak memory (MiB over "
              "the process's resident size before the runs)\n");
  // Prints a header line and a rule as wide as it.
  auto header = [](const std::string &line) {
    std::printf("%s\n%s\n", line.c_str(),
                std::string(line.size(), '-').c_str());
  };
  char line[512];
  std::snprintf(line, sizeof(line),
                "%6s | %9s | %24s | %24s | %8s | %8s | %8s | %8s | %8s | %9s "
                "| %9s",
                "N", "HAG ms", "ref ms", "dense ms", "HAG GF/s", "vs ref",
                "vs dense", "HAG MiB", "ref MiB", "dense MiB", "max err");
  header(line);
  bool anyInexact = false;
  for (size_t i = 0; i < o.sizes.size(); ++i) {
    int64_t n = o.sizes[i];
    const Cell &h = cells[i][HAG], &r = cells[i][Reference],
               &d = cells[i][Dense];
    Flops pf = pyramidFlops(layer, n);
    for (const Cell &c : cells[i])
      anyInexact |= c.measured && !c.peakExact;
    std::printf(
        "%6s | %9s | %24s | %24s | %8s | %8s | %8s | %8s | %8s | %9s | %9s\n",
        sizeLabel(n).c_str(), msText(h).c_str(), msText(r).c_str(),
        msText(d).c_str(),
        h.measured ? fmt("%.1f", pf.layer / h.medianSeconds * 1e-9).c_str()
                   : "-",
        ratioText(h, r).c_str(), ratioText(h, d).c_str(), mibText(h).c_str(),
        mibText(r).c_str(), mibText(d).c_str(),
        std::isnan(r.maxError) ? "-" : fmt("%.2e", r.maxError).c_str());
  }
  std::printf("HAG GF/s: executed layer FLOPs (attention core + projections + "
              "gate) / HAG's layer time. vs ref, vs dense: their time / HAG's "
              "time (all three compute the whole layer). max err: max |y_HAG - "
              "y_ref| with the f32 reference on the same weights and input.\n");
  if (anyInexact)
    std::printf("*: the kernel refused to reset VmHWM; that peak is an upper "
                "bound (it may include setup).\n");
  for (size_t i = 0; i < o.sizes.size(); ++i)
    for (Method m : {HAG, Reference, Dense}) {
      const Cell &c = cells[i][m];
      if (!c.measured && !c.why.empty())
        std::printf("  N %s, %s: %s\n", sizeLabel(o.sizes[i]).c_str(),
                    kMethodNames[m], c.why.c_str());
    }

  // Table 2: FLOPs and rates.
  std::printf("\nExecuted FLOPs and rates (GFLOP = 1e9 FLOPs; core = "
              "4 d sum K(i) H, dense core = 4 d N(N+1)/2 H; layer = core + "
              "Q/K/V/O projections (+ gate for the pyramid))\n");
  std::snprintf(line, sizeof(line),
                "%6s | %7s | %7s | %9s | %9s | %10s | %10s | %9s | %9s | %9s "
                "| %9s | %9s | %6s | %9s | %9s | %9s | %4s",
                "N", "keys/q", "dense%", "core GF", "layer GF", "dns core GF",
                "dns layer", "HAG lyr/s", "core ms", "gate ms", "HAG core",
                "HAG attn", "%peak", "ref lyr/s", "dns lyr/s", "dns core",
                "reps");
  header(line);
  for (size_t i = 0; i < o.sizes.size(); ++i) {
    int64_t n = o.sizes[i];
    const Cell &h = cells[i][HAG], &r = cells[i][Reference],
               &d = cells[i][Dense];
    Flops pf = pyramidFlops(layer, n), df = denseFlops(layer, n);
    auto rate = [](double flops, const Cell &c, double seconds) {
      return c.measured && seconds > 0 ? fmt("%.1f", flops / seconds * 1e-9)
                                       : std::string("-");
    };
    double hs = h.medianSeconds;
    // The core's own time (the artifact's "core" entry), or the layer's
    // when the artifact has no such entry (then a lower bound on the rate).
    double cs = std::isnan(h.coreSeconds) ? hs : h.coreSeconds;
    // The attention without the gate (core - gate) when both were timed.
    bool attnTimed = h.measured && h.attentionTimed();
    std::printf(
        "%6s | %7.1f | %6.2f%% | %9.2f | %9.2f | %10.1f | %10.1f | %9s | %9s "
        "| %9s | %9s | %9s | %5s%% | %9s | %9s | %9s | %4s\n",
        sizeLabel(n).c_str(), pf.keys / double(n), 100.0 * pf.core / df.core,
        pf.core * 1e-9, pf.layer * 1e-9, df.core * 1e-9, df.layer * 1e-9,
        rate(pf.layer, h, hs).c_str(),
        h.measured ? fmt("%.2f", cs * 1e3).c_str() : "-",
        h.measured && !std::isnan(h.gateSeconds)
            ? fmt("%.2f", h.gateSeconds * 1e3).c_str()
            : "-",
        rate(pf.core, h, cs).c_str(),
        attnTimed ? rate(pf.core, h, h.attentionSeconds()).c_str() : "-",
        h.measured && peakAll > 0
            ? fmt("%.1f", pf.core / h.coreRateSeconds() * 1e-9 / peakAll * 100)
                  .c_str()
            : "-",
        rate(pf.layer, r, r.medianSeconds).c_str(),
        rate(df.layer, d, d.medianSeconds).c_str(),
        rate(df.core, d, d.coreSeconds).c_str(),
        h.measured ? std::to_string(h.reps).c_str() : "-");
  }
  std::printf(
      "keys/q: mean keys per query (hag::countKeys); dense%%: pyramid core "
      "FLOPs / dense causal core FLOPs. HAG lyr/s: layer GFLOP/s. core ms: "
      "the artifact's 'core' entry: gate, levels, summaries, cross-level "
      "attention, without the projections. gate ms: the artifact's 'gate' "
      "entry (the memory gate alone: its [D, Dg] matmul and epilogue). HAG "
      "core: core FLOPs / core ms. HAG attn: core FLOPs / (core ms - gate "
      "ms), the levels, summaries and cross-level attention. %%peak: HAG "
      "attn (HAG core without a gate entry) / the %d-thread FMA "
      "peak (the fp32 FMA loop above). dns core: dense core "
      "FLOPs / time of denseAttention alone (LibTorch executes the full "
      "N x N products and masks; the count is the causal half). reps: HAG's "
      "timed runs.\n",
      o.threads);

  // Scaling exponents over 4K..64K.
  auto exponentOf = [&](Method m, bool memory, int64_t lo, int64_t hi,
                        int *points) {
    std::vector<double> xs, ys;
    for (size_t i = 0; i < o.sizes.size(); ++i) {
      const Cell &c = cells[i][m];
      if (!c.measured || o.sizes[i] < lo || o.sizes[i] > hi)
        continue;
      double y = memory ? c.peakBytes : c.medianSeconds;
      if (!(y > 0))
        continue;
      xs.push_back(double(o.sizes[i]));
      ys.push_back(y);
    }
    if (points)
      *points = int(xs.size());
    return fitExponent(xs, ys);
  };
  std::printf("\nScaling (least squares of log y on log N over the measured N "
              "in 4K..64K):\n");
  int hagPoints = 0;
  double hagExp = exponentOf(HAG, false, 4096, 65536, &hagPoints);
  for (Method m : {HAG, Reference, Dense}) {
    int pts = 0, mpts = 0;
    double te = exponentOf(m, false, 4096, 65536, &pts);
    double me = exponentOf(m, true, 4096, 65536, &mpts);
    std::printf("  %-9s time ~ N^%s (%d points), peak memory ~ N^%s (%d "
                "points)\n",
                kMethodNames[m], std::isnan(te) ? "?" : fmt("%.3f", te).c_str(),
                pts, std::isnan(me) ? "?" : fmt("%.3f", me).c_str(), mpts);
  }

  // The targets of issue 3 (reported, not asserted).
  std::printf("\nTargets (issue 3; reported, not asserted):\n");
  auto verdict = [](bool met) { return met ? "met" : "NOT met"; };
  size_t at16 = o.sizes.size();
  for (size_t i = 0; i < o.sizes.size(); ++i)
    if (o.sizes[i] == 16384)
      at16 = i;
  if (at16 == o.sizes.size()) {
    std::printf("  N=16K HAG vs LibTorch pyramid reference >= 5x: not "
                "measured (16384 not in --sizes)\n");
    std::printf("  N=16K HAG vs LibTorch dense >= 20x: not measured (16384 "
                "not in --sizes)\n");
  } else {
    const Cell &h = cells[at16][HAG], &r = cells[at16][Reference],
               &d = cells[at16][Dense];
    if (h.measured && r.measured) {
      double s = r.medianSeconds / h.medianSeconds;
      std::printf("  N=16K HAG vs LibTorch pyramid reference: %.1fx "
                  "(target >= 5x): %s\n",
                  s, verdict(s >= 5.0));
    } else {
      std::printf("  N=16K HAG vs LibTorch pyramid reference >= 5x: not "
                  "measured (%s)\n",
                  (!h.measured ? h.why : r.why).c_str());
    }
    if (h.measured && d.measured) {
      double s = d.medianSeconds / h.medianSeconds;
      std::printf("  N=16K HAG vs LibTorch dense: %.1fx (target >= 20x): "
                  "%s\n",
                  s, verdict(s >= 20.0));
    } else {
      std::string note = !h.measured ? h.why : d.why;
      // Extrapolate dense from its own fit over the sizes it ran at, from
      // 4K up where it has two such sizes (small sizes are overhead-bound).
      int pts = 0;
      double e = exponentOf(Dense, false, 4096, 65536, &pts);
      if (pts < 2)
        e = exponentOf(Dense, false, 1, 65536, &pts);
      const Cell *last = nullptr;
      int64_t lastN = 0;
      for (size_t i = 0; i < o.sizes.size(); ++i)
        if (cells[i][Dense].measured) {
          last = &cells[i][Dense];
          lastN = o.sizes[i];
        }
      if (h.measured && last && pts >= 2 && !std::isnan(e)) {
        double t = last->medianSeconds * std::pow(16384.0 / lastN, e);
        double s = t / h.medianSeconds;
        std::printf("  N=16K HAG vs LibTorch dense >= 20x: not measured "
                    "(dense %s); extrapolated from dense's time ~ N^%.2f "
                    "fit: ~%.0fx (would be %s)\n",
                    note.c_str(), e, s, verdict(s >= 20.0));
      } else {
        std::printf("  N=16K HAG vs LibTorch dense >= 20x: not measured "
                    "(dense %s)\n",
                    note.c_str());
      }
    }
  }
  if (hagPoints >= 2)
    std::printf("  HAG time exponent 4K..64K: %.3f over %d sizes (target <= "
                "1.15): %s\n",
                hagExp, hagPoints, verdict(hagExp <= 1.15));
  else
    std::printf("  HAG time exponent 4K..64K <= 1.15: not measured (needs two "
                "sizes in 4K..64K)\n");
  {
    // The attention core's rate at the largest measured N, as a fraction of
    // the all-thread FMA peak.
    size_t best = o.sizes.size();
    for (size_t i = 0; i < o.sizes.size(); ++i)
      if (cells[i][HAG].measured)
        best = i;
    if (best == o.sizes.size() || !(peakAll > 0)) {
      std::printf("  attention core >= 40%% of fp32 FMA peak: not measured\n");
    } else {
      int64_t n = o.sizes[best];
      const Cell &h = cells[best][HAG];
      Flops pf = pyramidFlops(layer, n);
      bool alone = !std::isnan(h.coreSeconds);
      bool attnTimed = h.attentionTimed();
      double coreRate = pf.core / h.coreRateSeconds() * 1e-9;
      double layerRate = pf.layer / h.medianSeconds * 1e-9;
      std::string how =
          attnTimed
              ? "levels, summaries and cross-level attention: the 'core' "
                "entry " +
                    fmt("%.2f", h.coreSeconds * 1e3) +
                    " ms minus the 'gate' entry " +
                    fmt("%.2f", h.gateSeconds * 1e3) +
                    " ms = " + fmt("%.2f", h.attentionSeconds() * 1e3) + " ms"
          : alone ? fmt("the core timed alone with its gate, %.2f ms",
                        h.coreSeconds * 1e3)
                  : std::string("core FLOPs / the layer's time: the artifact "
                                "has no 'core' entry");
      std::printf(
          "  attention core at N=%s: %.1f GFLOP/s = %.1f%% of the %d-thread "
          "fp32 FMA peak %.1f GFLOP/s (1 thread: %.1f) (target >= 40%%): %s\n"
          "    (%s)\n",
          sizeLabel(n).c_str(), coreRate, 100.0 * coreRate / peakAll, o.threads,
          peakAll, peakOne, verdict(coreRate >= 0.4 * peakAll), how.c_str());
      if (attnTimed) {
        double withGate = (pf.core + pf.gate) / h.coreSeconds * 1e-9;
        std::printf("    (the whole 'core' entry, gate included, core + gate "
                    "FLOPs: %.1f GFLOP/s = %.1f%% of that peak)\n",
                    withGate, 100.0 * withGate / peakAll);
      }
      std::printf("    (the whole layer: %.1f GFLOP/s = %.1f%% of that peak)\n",
                  layerRate, 100.0 * layerRate / peakAll);
    }
  }
  {
    bool any = false, ok = true;
    double worst = 0.0;
    for (size_t i = 0; i < o.sizes.size(); ++i) {
      double e = cells[i][Reference].maxError;
      if (std::isnan(e)) {
        if (cells[i][Reference].measured && cells[i][HAG].measured)
          ok = false; // Both ran but nothing was compared (or NaN).
        continue;
      }
      any = true;
      worst = std::max(worst, e);
      ok &= e < 1e-3;
    }
    if (any)
      std::printf("  check: HAG vs the f32 reference, worst max abs error "
                  "%.2e (expected < 1e-3): %s\n",
                  worst, ok ? "ok" : "FAILED");
  }

  std::printf("\nload average (1 min) at the end: %.2f\n", loadAverage());

  // CSV: one row per (N, method).
  if (!o.csv.empty()) {
    std::ofstream csv(o.csv);
    csv << "n,method,status,median_ms,min_ms,reps,peak_mib,core_gflop,"
           "layer_gflop,layer_gflops,core_gflops,max_abs_err,note\n";
    for (size_t i = 0; i < o.sizes.size(); ++i) {
      int64_t n = o.sizes[i];
      for (Method m : {HAG, Reference, Dense}) {
        const Cell &c = cells[i][m];
        Flops f = m == Dense ? denseFlops(layer, n) : pyramidFlops(layer, n);
        auto num = [&](double v, const char *format) {
          return std::isnan(v) ? std::string() : fmt(format, v);
        };
        double coreSeconds = m == Dense ? c.coreSeconds : c.medianSeconds;
        csv << n << ',' << kMethodNames[m] << ','
            << (c.measured ? "ok" : csvQuote(c.shortWhy)) << ','
            << num(c.medianSeconds * 1e3, "%.4f") << ','
            << num(c.minSeconds * 1e3, "%.4f") << ',' << c.reps << ','
            << num(c.peakBytes / double(1 << 20), "%.1f") << ','
            << fmt("%.4f", f.core * 1e-9) << ',' << fmt("%.4f", f.layer * 1e-9)
            << ',' << num(f.layer / c.medianSeconds * 1e-9, "%.2f") << ','
            << num(f.core / coreSeconds * 1e-9, "%.2f") << ','
            << num(c.maxError, "%.3e") << ',' << csvQuote(c.why) << '\n';
      }
    }
    if (!csv)
      std::fprintf(stderr, "hag-bench-attention: cannot write %s\n",
                   o.csv.c_str());
    else
      std::printf("\nwrote %s\n", o.csv.c_str());
  }
  return 0;
}
