//===- gpu_bench.cpp - HAG's attention layer on the GPU -------------------===//
//
// hag-bench-gpu: issue 5's benchmark, the HAG half. Runs a CUDA artifact of
// an attention model (hag-compile examples/pyramid_attention.yaml
// --target=cuda --gpu-arch=sm_90a) forward on x [1, N, D] for each N and
// reports, per N, the median over --repeat calls of
//
//  - the GPU time of the entry's kernels (CUDA events around the compiled
//    code, hag::rt::cuda::Session::markedMs), and
//  - the wall time of the call (the upload of x, the kernels, the download
//    of y: what a caller of Model::run waits for today; the weights stay on
//    the GPU after the first call),
//
// and the executed FLOPs (spec section 6: attention core 4 d sum_i K(i) per
// head, plus the projections and the memory gate) over the kernels' time.
// bench/gpu_bench.py runs it next to cuDNN's fused dense attention in the
// same run and prints one table; --json writes the rows for it.
//
// It links only the runtime (no MLIR, no CUDA at link time): it runs on a
// GPU machine that has the driver and nothing else.
//
//===----------------------------------------------------------------------===//

#include "ManifestParams.h"

#include "hag/runtime/CudaSession.h"
#include "hag/runtime/Model.h"
#include "hag/runtime/Random.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace hag;
using namespace hag::rt;

namespace {

struct Options {
  std::string artifact;
  std::vector<int64_t> sizes = {4096, 8192, 16384, 32768, 65536, 131072};
  int repeat = 5;
  int warmup = 1;
  uint64_t seed = 1;
  double peakTflops = 989.0; // H100/H200 dense FP16 Tensor Core peak
  std::string json;
};

int usage(const char *problem) {
  if (problem)
    std::fprintf(stderr, "hag-bench-gpu: %s\n", problem);
  std::fprintf(
      problem ? stderr : stdout,
      "usage: hag-bench-gpu ARTIFACT [--sizes 4K,8K,...] [--repeat R] "
      "[--warmup W]\n"
      "                     [--seed S] [--peak-tflops P] [--json FILE]\n"
      "ARTIFACT: a CUDA artifact of an attention model (hag-compile "
      "--target=cuda).\n"
      "Times forward on x [1, N, D] per N: the GPU kernels (CUDA events) and "
      "the\nwhole call (uploads and download included), median of R calls "
      "after W warm-ups.\n");
  return problem ? 2 : 0;
}

/// "4K" -> 4096, "1000" -> 1000; -1 when it is not a size.
int64_t parseSize(const std::string &s) {
  if (s.empty())
    return -1;
  char *end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (end == s.c_str() || v <= 0)
    return -1;
  std::string suffix(end);
  if (suffix == "K" || suffix == "k")
    v *= 1024;
  else if (!suffix.empty())
    return -1;
  return v;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char * {
      return i + 1 < argc ? argv[++i] : nullptr;
    };
    if (a == "--help" || a == "-h")
      return usage(nullptr);
    if (a == "--sizes") {
      const char *v = value();
      if (!v)
        return usage("--sizes needs a list (4K,8K,...)");
      o.sizes.clear();
      std::string list = v;
      size_t at = 0;
      while (at <= list.size()) {
        size_t comma = list.find(',', at);
        std::string item = list.substr(at, comma - at);
        int64_t n = parseSize(item);
        if (n < 0)
          return usage(("--sizes: '" + item + "' is not a size").c_str());
        o.sizes.push_back(n);
        if (comma == std::string::npos)
          break;
        at = comma + 1;
      }
    } else if (a == "--repeat" || a == "--warmup") {
      const char *v = value();
      int n = v ? std::atoi(v) : 0;
      if (!v || n < (a == "--repeat" ? 1 : 0))
        return usage((a + " needs a count").c_str());
      (a == "--repeat" ? o.repeat : o.warmup) = n;
    } else if (a == "--seed") {
      const char *v = value();
      if (!v)
        return usage("--seed needs a value");
      o.seed = std::strtoull(v, nullptr, 10);
    } else if (a == "--peak-tflops") {
      const char *v = value();
      o.peakTflops = v ? std::atof(v) : 0;
      if (!(o.peakTflops > 0))
        return usage("--peak-tflops needs a positive number");
    } else if (a == "--json") {
      const char *v = value();
      if (!v)
        return usage("--json needs a file");
      o.json = v;
    } else if (!a.empty() && a[0] == '-') {
      return usage(("unknown option " + a).c_str());
    } else if (o.artifact.empty()) {
      o.artifact = a;
    } else {
      return usage("one artifact only");
    }
  }
  if (o.artifact.empty())
    return usage("no artifact given");

  Result<Model> model = Model::open(o.artifact);
  if (!model.ok()) {
    std::fprintf(stderr, "hag-bench-gpu: %s\n", model.message().c_str());
    return 1;
  }
  const ArtifactManifest &m = model->artifact().manifest();
  PyramidParams p;
  std::string error;
  if (!bench::pyramidParamsOf(m, o.artifact, p, error)) {
    std::fprintf(stderr, "hag-bench-gpu: %s\n", error.c_str());
    return 1;
  }
  if (!m.target.cuda()) {
    std::fprintf(stderr,
                 "hag-bench-gpu: %s is a CPU artifact (compile it with "
                 "--target=cuda)\n",
                 o.artifact.c_str());
    return 1;
  }
  if (Status s = cuda::Session::start(0); !s.ok()) {
    std::fprintf(stderr, "hag-bench-gpu: %s\n", s.message().c_str());
    return 1;
  }
  const cuda::DeviceInfo &dev = cuda::Session::device();
  if (dev.arch() != m.target.gpuArch)
    std::fprintf(stderr,
                 "hag-bench-gpu: warning: the artifact is for %s, device 0 "
                 "is %s\n",
                 m.target.gpuArch.c_str(), dev.arch().c_str());
  if (Status s = model->initWeights(o.seed); !s.ok()) {
    std::fprintf(stderr, "hag-bench-gpu: %s\n", s.message().c_str());
    return 1;
  }
  const int64_t D = m.model.dModel;
  std::printf("hag-bench-gpu: %s on %s (%s, %d SMs); D %lld, %lld heads of "
              "%lld, block %lld, ratio %lld, window %lld, summary %lld, %s\n",
              o.artifact.c_str(), dev.name.c_str(), dev.arch().c_str(),
              dev.multiprocessors, (long long)D, (long long)p.heads,
              (long long)p.headDim, (long long)p.block, (long long)p.ratio,
              (long long)p.window, (long long)p.summary,
              p.causal ? "causal" : "bidirectional");
  std::printf("median of %d calls after %d warm-up(s); TFLOP/s on executed "
              "FLOPs over the kernels' time; peak %.0f TFLOP/s\n\n",
              o.repeat, o.warmup, o.peakTflops);
  std::printf("%8s %8s %10s %10s %11s %10s %10s %10s %8s %7s\n", "N", "keys/q",
              "core GFLOP", "lyr GFLOP", "kernels ms", "call ms", "core TF/s",
              "lyr TF/s", "core %pk", "finite");

  if (!o.json.empty() && !std::ofstream(o.json)) {
    std::fprintf(stderr, "hag-bench-gpu: cannot write %s\n", o.json.c_str());
    return 1;
  }
  // The JSON (--json) is written once, at the end, also when a size fails:
  // the layer's facts (for the peer's shape) and the rows measured.
  std::string rows;
  auto writeJson = [&]() -> bool {
    if (o.json.empty())
      return true;
    std::ofstream json(o.json);
    json << "{\"layer\": {\"d_model\": " << D << ", \"heads\": " << p.heads
         << ", \"kv_heads\": " << p.kvHeads << ", \"head_dim\": " << p.headDim
         << ", \"causal\": " << (p.causal ? "true" : "false")
         << "},\n \"rows\": [\n"
         << rows << "\n]}\n";
    json.close();
    if (!json) {
      std::fprintf(stderr, "hag-bench-gpu: cannot write %s\n", o.json.c_str());
      return false;
    }
    return true;
  };
  bool allFinite = true;
  for (int64_t n : o.sizes) {
    if (n > p.maxSeq) {
      std::printf("%8lld  skipped: N > the artifact's max_seq %lld\n",
                  (long long)n, (long long)p.maxSeq);
      continue;
    }
    Result<HostTensor> x = HostTensor::uninitialized(DType::F32, {1, n, D});
    if (!x.ok()) {
      std::fprintf(stderr, "hag-bench-gpu: %s\n", x.message().c_str());
      writeJson();
      return 1;
    }
    SplitMix64 rng(o.seed * 7919 + uint64_t(n));
    float *xs = x->dataAs<float>();
    for (int64_t i = 0; i < n * D; ++i)
      xs[i] = float(double(rng.next() >> 11) * 0x1p-53 * 2.0 - 1.0);
    std::vector<double> kernels, wall;
    bool finite = true;
    for (int r = 0; r < o.warmup + o.repeat; ++r) {
      auto start = std::chrono::steady_clock::now();
      Result<HostTensor> y = model->run("forward", *x);
      double ms = std::chrono::duration<double, std::milli>(
                      std::chrono::steady_clock::now() - start)
                      .count();
      if (!y.ok()) {
        std::fprintf(stderr, "hag-bench-gpu: forward at N = %lld: %s\n",
                     (long long)n, y.message().c_str());
        writeJson();
        return 1;
      }
      Result<double> k = cuda::Session::markedMs();
      if (!k.ok()) {
        std::fprintf(stderr, "hag-bench-gpu: %s\n", k.message().c_str());
        writeJson();
        return 1;
      }
      if (r == 0) {
        const float *ys = y->dataAs<float>();
        for (int64_t i = 0; i < y->numel(); ++i)
          finite = finite && std::isfinite(ys[i]);
      }
      if (r >= o.warmup) {
        kernels.push_back(*k);
        wall.push_back(ms);
      }
    }
    allFinite = allFinite && finite;
    bench::LayerFlops f = bench::pyramidFlops(p, D, m.model.gateHidden, n);
    double km = median(kernels), wm = median(wall);
    double coreTf = f.core / (km * 1e-3) * 1e-12;
    double layerTf = f.layer() / (km * 1e-3) * 1e-12;
    std::printf("%8lld %8.1f %10.3f %10.3f %11.3f %10.2f %10.2f %10.2f "
                "%7.2f%% %7s\n",
                (long long)n, f.keys / double(n), f.core * 1e-9,
                f.layer() * 1e-9, km, wm, coreTf, layerTf,
                100.0 * coreTf / o.peakTflops, finite ? "yes" : "NO");
    std::fflush(stdout);
    std::ostringstream row;
    row << (rows.empty() ? "" : ",\n") << "  {\"n\": " << n
        << ", \"keys\": " << f.keys << ", \"core_flops\": " << f.core
        << ", \"layer_flops\": " << f.layer()
        << ", \"projection_flops\": " << f.projections
        << ", \"kernels_ms\": " << km << ", \"call_ms\": " << wm
        << ", \"finite\": " << (finite ? "true" : "false") << "}";
    rows += row.str();
  }
  if (!writeJson())
    return 1;
  std::printf("\ncore TF/s: attention-core FLOPs over the whole layer's "
              "kernel time (a lower bound on the core's own rate); call ms: "
              "the Model::run call, the upload of x and the download of y "
              "included (the weights stay on the GPU after the warm-up).\n");
  return allFinite ? 0 : 1;
}
