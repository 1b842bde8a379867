//===- HagRun.cpp - the hag-run command line ------------------------------===//

#include "HagRun.h"
#include "Parallel.h"
#include "PipelineInference.h"

#include "hag/runtime/CudaDriver.h"
#include "hag/runtime/CudaSession.h"
#include "hag/runtime/Model.h"
#include "hag/runtime/Npy.h"
#include "hag/runtime/Random.h"
#include "hag/runtime/Tokenizer.h"
#include "hag/runtime/hagrt.h"

#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>

using namespace hag::rt;
using namespace hag::run;

namespace {

/// Flags of interfaces.md that need entry points the compiler does not emit
/// yet, with whether they take a value.
struct FutureFlag {
  const char *name;
  bool takesValue;
};
constexpr FutureFlag kFutureFlags[] = {
    {"--dy", true},
};

/// Parses a decimal uint64 (digits only, no sign, no overflow).
std::optional<uint64_t> parseUnsigned(const std::string &s) {
  if (s.empty() || s.size() > 20)
    return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    if (__builtin_mul_overflow(v, 10, &v) ||
        __builtin_add_overflow(v, static_cast<uint64_t>(c - '0'), &v))
      return std::nullopt;
  }
  return v;
}

ParsedArgs usageError(std::string message) {
  ParsedArgs p;
  p.error = std::move(message);
  p.exitCode = kExitUsage;
  return p;
}


double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

/// Makes a message one line (the runtime's messages already are).
std::string oneLine(std::string s) {
  for (char &c : s)
    if (c == '\n' || c == '\r')
      c = ' ';
  return s;
}

} // namespace

namespace {
std::string &errorPrefix() {
  static std::string prefix;
  return prefix;
}
} // namespace

void hag::run::setErrorPrefix(const std::string &prefix) {
  errorPrefix() = prefix;
}

int hag::run::printError(std::FILE *err, const std::string &message) {
  std::fprintf(err, "hag-run: error: %s%s\n", errorPrefix().c_str(),
               oneLine(message).c_str());
  return kExitFailure;
}

std::string hag::run::runUsage() {
  return "usage: hag-run ARTIFACT [options]\n"
         "\n"
         "Loads a compiled HAG model (hag-compile MODEL.yaml -o ARTIFACT),\n"
         "binds weights and runs an entry point.\n"
         "\n"
         "  hag-run ARTIFACT --init-weights SEED --save-weights W.safetensors\n"
         "  hag-run ARTIFACT --weights W.safetensors --input X.npy --output "
         "Y.npy\n"
         "  hag-run ARTIFACT --weights W.safetensors --input TOKENS.npy "
         "--entry loss\n"
         "  hag-run ARTIFACT --weights W.safetensors --generate --prompt "
         "TEXT\n"
         "          [--max-tokens K] [--temperature T] [--seed S] "
         "[--output IDS.npy]\n"
         "  hag-run ARTIFACT --train --data FILE [--steps S] [--resume DIR]\n"
         "          [--log LOG.csv] [--plot LOSS.png] [--init-weights SEED]\n"
         "  hag-run ARTIFACT --weights W.safetensors --input TOKENS.npy "
         "--grads G.safetensors\n"
         "  hag-run ARTIFACT                  (describe the artifact)\n"
         "\n"
         "options:\n"
         "  --init-weights SEED     initial weights (spec section 7) for "
         "SEED\n"
         "  --weights FILE          weights from a safetensors file\n"
         "  --save-weights FILE     write the weights (safetensors)\n"
         "  --input FILE            the entry's input (.npy): lm tokens "
         "int32/int64\n"
         "                          [batch, N] or [N]; attention x f32 "
         "[batch, N, D]\n"
         "                          or [N, D]\n"
         "  --output FILE           write the result (.npy): lm logits f32\n"
         "                          [batch, N, vocab]; attention y like x\n"
         "  --entry NAME            the entry point: forward (default) or "
         "loss\n"
         "                          (prints the mean next-token loss)\n"
         "  --generate              incremental decoding (causal lm): "
         "prints the\n"
         "                          continuation of --prompt on stdout as "
         "it is made\n"
         "  --prompt TEXT           the prompt (byte-level tokens)\n"
         "  --max-tokens K          tokens to generate (default 64; at "
         "most\n"
         "                          max_seq minus the prompt's length)\n"
         "  --temperature T         0 (default): greedy, the argmax; T > 0: "
         "sample\n"
         "                          softmax(logits / T)\n"
         "  --seed S                the sampler's seed (default 0)\n"
         "  --output FILE           with --generate: the token ids, int32 "
         "[prompt + K]\n"
         "  --train                 train (an artifact from hag-compile "
         "--train):\n"
         "                          batches of the artifact's train.batch x\n"
         "                          train.seq from --data, a progress line, a\n"
         "                          checkpoint every train.checkpoint.every "
         "steps\n"
         "  --data FILE             training tokens: .bin uint16 (.u32.bin "
         "uint32)\n"
         "                          or text (byte-level)\n"
         "  --steps S               train until S steps are done (default: "
         "the\n"
         "                          artifact's train.steps)\n"
         "  --resume PATH           continue from a checkpoint file, or the "
         "newest\n"
         "                          in a directory (bitwise the same run)\n"
         "  --log FILE              CSV: step, loss, grad_norm, lr, "
         "loss_scale,\n"
         "                          tokens_per_s, applied, elapsed_s\n"
         "  --plot FILE             the loss curve as PNG (gnuplot)\n"
         "  --checkpoint-dir DIR    where checkpoints go (default: the "
         "artifact's)\n"
         "  --checkpoint-every N    steps between checkpoints (default: the\n"
         "                          artifact's)\n"
         "  --save-weights FILE     with --train: the trained weights at the "
         "end\n"
         "  --grads FILE            the loss's gradient of every weight on "
         "--input\n"
         "                          tokens, as safetensors (hag-compile "
         "--train)\n"
         "  --collective-timeout S  under mpirun: how long a collective waits "
         "for\n"
         "                          the other ranks before the job ends with "
         "a\n"
         "                          message naming the missing rank (default:\n"
         "                          $HAG_COLLECTIVE_TIMEOUT, else 60)\n"
         "  --device cpu|cuda       where to run (default cpu); cuda needs "
         "the\n"
         "                          NVIDIA driver (loaded at run time) and a "
         "CUDA\n"
         "                          artifact\n"
         "  --quiet                 no progress lines on stderr\n"
         "  --help                  this text\n"
         "  --version               the version\n"
         "\n"
         "A parallel artifact (hag-compile with 'parallel:') runs as one\n"
         "process per rank: mpirun -np P hag-run ARTIFACT ... (P = tensor x\n"
         "pipeline x data). Rank 0 prints and writes files; every rank reads\n"
         "the same weights file (each its stage's, and its slice of them)\n"
         "and data (each replica its rows). Pipeline artifacts train\n"
         "(--train), run --entry forward (the logits) or loss, and --generate\n"
         "through their stages; checkpoints always hold the whole model.\n"
         "\n"
         "Options take their value as the next argument or after '='.\n"
         "Progress and timing go to stderr when the command succeeds; a\n"
         "failure prints one line, \"hag-run: error: <reason>\".\n"
         "Exit status: 0 on success, 1 on failure, 2 on a usage error.\n";
}

ParsedArgs hag::run::parseRunArgs(const std::vector<std::string> &args) {
  ParsedArgs parsed;
  RunOptions &o = parsed.options;
  bool optionsEnded = false;
  /// The first option given that only --generate takes.
  std::string generateOnlyFlag;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (optionsEnded || arg.empty() || arg[0] != '-' || arg == "-") {
      if (!o.artifact.empty())
        return usageError("unexpected argument '" + arg +
                          "' (the artifact is '" + o.artifact + "')");
      o.artifact = arg;
      continue;
    }
    if (arg == "--") {
      optionsEnded = true;
      continue;
    }
    // --name=value or --name value.
    std::string name = arg;
    std::optional<std::string> inlineValue;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      inlineValue = arg.substr(eq + 1);
    }
    auto flagWithoutValue = [&](bool &flag) -> std::string {
      if (inlineValue)
        return name + " does not take a value";
      flag = true;
      return "";
    };
    std::string value;
    auto takeValue = [&]() -> std::string {
      if (inlineValue) {
        value = *inlineValue;
        if (value.empty())
          return name + " needs a value";
        return "";
      }
      if (i + 1 >= args.size())
        return name + " needs a value";
      const std::string &next = args[i + 1];
      if (next.size() > 1 && next[0] == '-' && next[1] == '-')
        return name + " needs a value (got '" + next + "')";
      value = args[++i];
      return "";
    };

    std::string problem;
    if (generateOnlyFlag.empty() &&
        (name == "--prompt" || name == "--max-tokens" ||
         name == "--temperature" || name == "--seed"))
      generateOnlyFlag = name;
    if (name == "--help" || name == "-h") {
      problem = flagWithoutValue(o.help);
    } else if (name == "--version") {
      problem = flagWithoutValue(o.version);
    } else if (name == "--quiet" || name == "-q") {
      problem = flagWithoutValue(o.quiet);
    } else if (name == "--init-weights") {
      problem = takeValue();
      if (problem.empty()) {
        o.initSeed = parseUnsigned(value);
        if (!o.initSeed)
          problem = "--init-weights: '" + value +
                    "' is not a seed (a decimal integer in [0, 2^64))";
      }
    } else if (name == "--weights") {
      problem = takeValue();
      o.weights = value;
    } else if (name == "--save-weights") {
      problem = takeValue();
      o.saveWeights = value;
    } else if (name == "--input") {
      problem = takeValue();
      o.input = value;
    } else if (name == "--output") {
      problem = takeValue();
      o.output = value;
    } else if (name == "--collective-timeout") {
      problem = takeValue();
      if (problem.empty()) {
        char *end = nullptr;
        double v = std::strtod(value.c_str(), &end);
        if (value.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
          problem = "--collective-timeout: '" + value +
                    "' is not a positive number of seconds";
        else
          o.collectiveTimeout = v;
      }
    } else if (name == "--device") {
      problem = takeValue();
      if (problem.empty()) {
        if (value != "cpu" && value != "cuda")
          problem = "--device: '" + value + "' is not a device (cpu or cuda)";
        else
          o.device = value;
      }
    } else if (name == "--generate") {
      problem = flagWithoutValue(o.generate);
    } else if (name == "--prompt") {
      // The prompt may start with "--": take the next argument as is.
      if (inlineValue) {
        o.prompt = *inlineValue;
      } else if (i + 1 < args.size()) {
        o.prompt = args[++i];
      } else {
        problem = "--prompt needs a value";
      }
    } else if (name == "--max-tokens") {
      problem = takeValue();
      if (problem.empty()) {
        std::optional<uint64_t> k = parseUnsigned(value);
        if (!k || *k > (uint64_t(1) << 40))
          problem = "--max-tokens: '" + value + "' is not a token count";
        else
          o.maxTokens = static_cast<int64_t>(*k);
      }
    } else if (name == "--temperature") {
      problem = takeValue();
      if (problem.empty()) {
        char *end = nullptr;
        double t = std::strtod(value.c_str(), &end);
        if (end != value.c_str() + value.size() || !(t >= 0.0) ||
            !std::isfinite(t))
          problem = "--temperature: '" + value +
                    "' is not a temperature (a number >= 0; 0 is greedy)";
        else
          o.temperature = t;
      }
    } else if (name == "--seed") {
      problem = takeValue();
      if (problem.empty()) {
        std::optional<uint64_t> seed = parseUnsigned(value);
        if (!seed)
          problem = "--seed: '" + value +
                    "' is not a seed (a decimal integer in [0, 2^64))";
        else
          o.seed = *seed;
      }
    } else if (name == "--entry") {
      problem = takeValue();
      o.entry = value;
      o.entryGiven = true;
    } else if (name == "--train") {
      problem = flagWithoutValue(o.train);
    } else if (name == "--data") {
      problem = takeValue();
      o.data = value;
    } else if (name == "--steps" || name == "--checkpoint-every") {
      problem = takeValue();
      if (problem.empty()) {
        std::optional<uint64_t> n = parseUnsigned(value);
        if (!n || *n < 1 || *n > (uint64_t(1) << 40))
          problem = name + ": '" + value + "' is not a step count (>= 1)";
        else if (name == "--steps")
          o.steps = static_cast<int64_t>(*n);
        else
          o.checkpointEvery = static_cast<int64_t>(*n);
      }
    } else if (name == "--resume") {
      problem = takeValue();
      o.resume = value;
    } else if (name == "--log") {
      problem = takeValue();
      o.log = value;
    } else if (name == "--plot") {
      problem = takeValue();
      o.plot = value;
    } else if (name == "--checkpoint-dir") {
      problem = takeValue();
      o.checkpointDir = value;
    } else if (name == "--grads") {
      problem = takeValue();
      o.grads = value;
    } else {
      bool future = false;
      for (const FutureFlag &f : kFutureFlags)
        if (name == f.name)
          future = true;
      if (future)
        return usageError(name + " is not available in this build yet");
      return usageError("unknown option '" + name + "' (see --help)");
    }
    if (!problem.empty())
      return usageError(problem);
  }
  if (o.help || o.version)
    return parsed;
  if (o.artifact.empty())
    return usageError("no artifact given (usage: hag-run ARTIFACT "
                      "[options]; see --help)");
  bool haveWeights = o.initSeed.has_value() || !o.weights.empty();
  if (o.initSeed && !o.weights.empty())
    return usageError("--weights and --init-weights cannot be used together");
  if (!o.saveWeights.empty() && !haveWeights && !o.train)
    return usageError(
        "--save-weights needs --init-weights SEED or --weights FILE");
  if (!o.input.empty() && !haveWeights)
    return usageError(
        "--input needs weights: give --weights FILE or --init-weights SEED");
  if (o.entryGiven && o.input.empty())
    return usageError("--entry needs --input");
  bool trainOnly = !o.data.empty() || o.steps || !o.resume.empty() ||
                   !o.log.empty() || !o.plot.empty() ||
                   !o.checkpointDir.empty() || o.checkpointEvery;
  if (o.train) {
    if (o.generate || !o.input.empty() || !o.grads.empty())
      return usageError("--train cannot be combined with --generate, --input "
                        "or --grads");
    if (o.data.empty())
      return usageError("--train needs --data FILE (.bin uint16 tokens, or "
                        "text)");
    if (!o.plot.empty() && o.log.empty())
      return usageError("--plot draws the training log: give --log FILE.csv "
                        "too");
    if (!o.resume.empty() && haveWeights)
      return usageError("--resume restores the weights: drop --weights and "
                        "--init-weights");
    return parsed;
  }
  if (trainOnly)
    return usageError("--data, --steps, --resume, --log, --plot, "
                      "--checkpoint-dir and --checkpoint-every need --train");
  if (!o.grads.empty()) {
    if (o.input.empty() || !haveWeights)
      return usageError("--grads needs --input TOKENS.npy and weights "
                        "(--weights FILE or --init-weights SEED)");
    if (o.generate || o.entryGiven || !o.output.empty())
      return usageError("--grads cannot be combined with --generate, --entry "
                        "or --output");
    return parsed;
  }
  if (o.generate) {
    if (!o.input.empty())
      return usageError("--generate and --input cannot be used together");
    if (!haveWeights)
      return usageError("--generate needs weights: give --weights FILE or "
                        "--init-weights SEED");
    if (!o.prompt || o.prompt->empty())
      return usageError("--generate needs a non-empty --prompt TEXT");
  } else {
    if (!generateOnlyFlag.empty())
      return usageError(generateOnlyFlag + " needs --generate");
    if (!o.output.empty() && o.input.empty())
      return usageError("--output needs --input");
  }
  return parsed;
}

namespace {

/// One hag-run invocation: the work after parsing.
class Runner {
public:
  Runner(const RunOptions &options, std::FILE *out, std::FILE *err)
      : o(options), out(out), err(err) {}

  int run();

private:
  int fail(const std::string &message) {
    return printError(err, message);
  }
  /// Records a progress line for stderr (unless --quiet). The lines are
  /// written when the command succeeds: a failing command writes only its
  /// one error line.
  __attribute__((format(printf, 2, 3))) void progress(const char *format, ...) {
    if (o.quiet)
      return;
    char buf[1024];
    std::va_list args;
    va_start(args, format);
    std::vsnprintf(buf, sizeof(buf), format, args);
    va_end(args);
    pending += std::string("hag-run: ") + buf + "\n";
  }
  int succeed() {
    std::fputs(pending.c_str(), err);
    std::fputs(results.c_str(), out);
    return kExitOk;
  }
  void describe(const Model &model);
  int generate(const Model &model);

  const RunOptions &o;
  std::FILE *out;
  std::FILE *err;
  /// Progress lines (stderr) and results (stdout) of a successful run.
  std::string pending;
  std::string results;
};

void Runner::describe(const Model &model) {
  const ArtifactManifest &m = model.artifact().manifest();
  const ModelFacts &f = m.model;
  int64_t weights = 0;
  for (const TensorSpec &p : m.parameters) {
    int64_t n = 1;
    for (int64_t d : p.shape)
      n *= d;
    weights += n;
  }
  std::fprintf(out, "artifact: %s (format %u, hag %s, %s, cpu %s)\n",
               model.artifact().source().c_str(), m.formatVersion,
               m.hagVersion.c_str(), m.target.triple.c_str(),
               m.target.cpu.empty() ? "generic" : m.target.cpu.c_str());
  std::fprintf(out, "model: %s, d_model %lld, heads %lld, kv_heads %lld",
               f.kindName(), static_cast<long long>(f.dModel),
               static_cast<long long>(f.heads),
               static_cast<long long>(f.kvHeads));
  if (f.kind == ModelFacts::Kind::LM)
    std::fprintf(out, ", vocab %lld, layers %lld",
                 static_cast<long long>(f.vocab),
                 static_cast<long long>(f.layers));
  std::fprintf(out, ", max_seq %lld\n", static_cast<long long>(f.maxSeq));
  std::fprintf(out, "parameters: %zu tensors, %lld weights\n",
               m.parameters.size(), static_cast<long long>(weights));
  for (const ArtifactEntry &e : m.entries) {
    std::string inputs;
    for (const TensorSpec &in : e.inputs)
      inputs += (inputs.empty() ? "" : ", ") + in.name + " " +
                dtypeName(in.dtype) + " " + describeShape(in.shape);
    std::fprintf(out, "entry: %s (%s) -> %s %s\n", e.name.c_str(),
                 inputs.c_str(), dtypeName(e.resultDType),
                 describeShape(e.resultShape).c_str());
  }
}

/// The next token from `logits` [vocab]: the argmax (lowest index on ties)
/// at temperature 0, else a sample of softmax(logits / T).
int64_t pickToken(const float *logits, int64_t vocab, double temperature,
                  Xoshiro256 &rng) {
  int64_t best = 0;
  for (int64_t v = 1; v < vocab; ++v)
    if (logits[v] > logits[best])
      best = v;
  if (temperature == 0.0)
    return best;
  std::vector<double> p(vocab);
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) {
    p[v] = std::exp((static_cast<double>(logits[v]) - logits[best]) /
                    temperature);
    sum += p[v];
  }
  double u = rng.uniformDouble() * sum;
  for (int64_t v = 0; v < vocab; ++v) {
    u -= p[v];
    if (u < 0.0)
      return v;
  }
  return best;
}

/// Token `id` as text: its byte when the vocabulary is byte-level, else
/// "<|id|>".
std::string tokenText(int64_t id) {
  if (id >= 0 && id < 256)
    return std::string(1, static_cast<char>(id));
  return "<|" + std::to_string(id) + "|>";
}

int Runner::generate(const Model &model) {
  const ModelFacts &f = model.facts();
  // One step: the token at the next position, and the logits [1, vocab]
  // for the one after (when asked; a pipeline skips them inside the prompt).
  std::function<Result<HostTensor>(int64_t, bool)> step;
  std::unique_ptr<Decoder> decoder;
  std::unique_ptr<PipelineDecoder> stages;
  size_t cacheBytes = 0;
  if (isPipelineArtifact(model)) {
    Result<std::unique_ptr<PipelineDecoder>> created =
        PipelineDecoder::create(model);
    if (!created.ok())
      return fail(created.message());
    stages = std::move(*created);
    cacheBytes = stages->cacheBytes();
    step = [&](int64_t id, bool want) { return stages->step(id, want); };
  } else {
    Result<Decoder> created = Decoder::create(model, 1);
    if (!created.ok())
      return fail(created.message());
    decoder = std::make_unique<Decoder>(std::move(*created));
    cacheBytes = decoder->cacheBytes();
    step = [&](int64_t id, bool) { return decoder->step({id}); };
  }
  std::vector<int32_t> ids = ByteTokenizer::encode(*o.prompt);
  int64_t promptLen = static_cast<int64_t>(ids.size());
  for (int32_t id : ids)
    if (id >= f.vocab)
      return fail("--prompt: byte " + std::to_string(id) +
                  " is outside the model's vocabulary of " +
                  std::to_string(f.vocab));
  if (promptLen + o.maxTokens > f.maxSeq)
    return fail("--prompt (" + std::to_string(promptLen) +
                " tokens) plus --max-tokens " + std::to_string(o.maxTokens) +
                " exceed the model's max_seq of " + std::to_string(f.maxSeq));
  progress("decoding cache: %.1f MiB for max_seq %lld%s",
           cacheBytes / 1048576.0, static_cast<long long>(f.maxSeq),
           stages ? " (stage 0's layers)" : "");

  // The prompt, one step per token; the last step's logits give the first
  // new token.
  auto start = std::chrono::steady_clock::now();
  Result<HostTensor> logits = Status::error("empty prompt");
  for (size_t i = 0; i < ids.size(); ++i) {
    logits = step(ids[i], i + 1 == ids.size());
    if (!logits.ok())
      return fail(logits.message());
  }
  double promptMs = millisecondsSince(start);

  Xoshiro256 rng(o.seed);
  start = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < o.maxTokens; ++k) {
    int64_t next =
        pickToken(logits->dataAs<float>(), f.vocab, o.temperature, rng);
    ids.push_back(static_cast<int32_t>(next));
    // The continuation streams to stdout as it is made.
    std::string text = tokenText(next);
    std::fwrite(text.data(), 1, text.size(), out);
    std::fflush(out);
    if (k + 1 == o.maxTokens)
      break;
    logits = step(next, true);
    if (!logits.ok())
      return fail(logits.message());
  }
  double genMs = millisecondsSince(start);
  if (o.maxTokens > 0)
    std::fputc('\n', out);
  progress("prompt: %lld tokens in %.1f ms (%.1f tokens/s)",
           static_cast<long long>(promptLen), promptMs,
           promptLen / std::max(promptMs, 1e-3) * 1e3);
  progress("generated %lld tokens (%s) in %.1f ms (%.1f tokens/s)",
           static_cast<long long>(o.maxTokens),
           o.temperature == 0.0 ? "greedy" : "sampled", genMs,
           o.maxTokens / std::max(genMs, 1e-3) * 1e3);
  if (!o.output.empty() && worldRank() == 0) {
    Result<HostTensor> t =
        HostTensor::zeros(DType::I32, {static_cast<int64_t>(ids.size())});
    if (!t.ok())
      return fail(t.message());
    std::memcpy(t->data.data(), ids.data(), ids.size() * sizeof(int32_t));
    if (Status s = writeNpy(o.output, *t); !s.ok())
      return fail(s.message());
    progress("wrote %zu token ids to %s", ids.size(), o.output.c_str());
  }
  return succeed();
}

int Runner::run() {
  auto start = std::chrono::steady_clock::now();
  Result<Model> opened = Model::open(o.artifact);
  if (!opened.ok())
    return fail(opened.message());
  Model &model = *opened;
  double loadMs = millisecondsSince(start);

  // Check the entry before any expensive work.
  const ArtifactEntry *entry = nullptr;
  const bool pipelined = isPipelineArtifact(model);
  if (!o.input.empty() && pipelined) {
    // "forward" and "loss" run through the stages.
    Result<const ArtifactEntry *> last = pipelineEntry(model, o.entry);
    if (!last.ok())
      return fail(last.message());
    entry = *last;
    if (o.entry == "forward" && o.output.empty())
      return fail("--output is required: 'forward' returns the logits f32 "
                  "[batch, seq, vocab] (give --output FILE.npy)");
  } else if (!o.input.empty()) {
    entry = model.artifact().findEntry(o.entry);
    if (!entry) {
      std::string names;
      for (const ArtifactEntry &e : model.artifact().manifest().entries)
        names += (names.empty() ? "" : ", ") + e.name;
      return fail(o.artifact + " has no entry '" + o.entry +
                  "' (it has: " + names + ")");
    }
    if (entry->inputs.size() != 1)
      return fail("entry '" + o.entry + "' takes " +
                  std::to_string(entry->inputs.size()) +
                  " inputs; hag-run gives it one (--input)");
    if (!entry->resultShape.empty() && o.output.empty())
      return fail("--output is required: '" + o.entry + "' returns " +
                  dtypeName(entry->resultDType) + " " +
                  describeShape(entry->resultShape) +
                  " (give --output FILE.npy)");
  }
  progress("loaded %s (%s, %zu parameters) in %.1f ms", o.artifact.c_str(),
           model.facts().kindName(), model.parameters().size(), loadMs);
  if (Status s = startParallel(model, o); !s.ok())
    return fail(s.message());
  const ParallelLayout layout = parallelLayout();
  if (layout.size() > 1)
    progress("parallel: %d ranks (tensor %d x pipeline %d x data %d), one "
             "process each",
             layout.size(), layout.tensor, layout.pipeline, layout.data);

  const TargetFacts &target = model.artifact().manifest().target;
  if (target.cuda() && o.device != "cuda")
    return fail(o.artifact + " holds GPU code (hag-compile --target=cuda, " +
                target.gpuArch + "): run it with --device cuda");
  if (o.device == "cuda") {
    if (!target.cuda())
      return fail("--device cuda: " + o.artifact + " holds " + target.triple +
                  " code; compile the model with hag-compile --target=cuda "
                  "for the GPU");
    // One GPU per process: a multi-process job's ranks on one machine take
    // the devices in order of their local rank (mpirun's
    // OMPI_COMM_WORLD_LOCAL_RANK).
    int ordinal = 0;
    if (const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK"))
      ordinal = std::atoi(local);
    // The driver is loaded at run time: without one this is the only line.
    if (Status s = cuda::Session::start(ordinal); !s.ok())
      return fail("--device cuda: " + s.message());
    const cuda::DeviceInfo &dev = cuda::Session::device();
    progress("CUDA device %d: %s (%s, %d SMs, %.1f GiB)", ordinal,
             dev.name.c_str(), dev.arch().c_str(), dev.multiprocessors,
             dev.totalMemory / 1073741824.0);
    // A cubin runs on its major architecture (sm_90a: 9.0 only); the PTX
    // beside it lets a newer driver compile sm_80 code for newer GPUs.
    bool fits = target.gpuArch == "sm_90a"
                    ? dev.ccMajor == 9 && dev.ccMinor == 0
                    : dev.ccMajor * 10 + dev.ccMinor >= 80;
    if (!fits)
      return fail("--device cuda: " + o.artifact + " was compiled for " +
                  target.gpuArch + ", device " + std::to_string(ordinal) +
                  " is " + dev.arch());
    if (Status s = startDeviceCollectives(); !s.ok())
      return fail("--device cuda: " + s.message());
  }

  if (o.initSeed) {
    start = std::chrono::steady_clock::now();
    if (Status s = model.initWeights(*o.initSeed); !s.ok())
      return fail(s.message());
    progress("initialised %zu weights (seed %llu) in %.1f ms",
             model.parameters().size(),
             static_cast<unsigned long long>(*o.initSeed),
             millisecondsSince(start));
  } else if (!o.weights.empty()) {
    start = std::chrono::steady_clock::now();
    if (Status s = model.loadWeights(o.weights); !s.ok())
      return fail(s.message());
    progress("loaded weights %s in %.1f ms", o.weights.c_str(),
             millisecondsSince(start));
  }

  if (!o.saveWeights.empty() && (layout.tensor > 1 || layout.pipeline > 1))
    return fail(std::string("--save-weights: each rank of a ") +
                (layout.tensor > 1 ? "tensor-parallel run holds only its "
                                     "slice of the weights"
                                   : "pipeline holds only its stage's "
                                     "weights") +
                "; save them from the unsplit artifact (or with --train, "
                "which gathers them)");
  if (!o.saveWeights.empty() && layout.rank == 0) {
    start = std::chrono::steady_clock::now();
    if (Status s = model.saveWeights(o.saveWeights); !s.ok())
      return fail(s.message());
    progress("saved weights to %s in %.1f ms", o.saveWeights.c_str(),
             millisecondsSince(start));
  }

  // Every rank must run the same artifact, weights and request.
  std::string settings = o.entry + "\n" + o.input + "\n" +
                         (o.generate ? "generate\n" : "") +
                         o.prompt.value_or("") + "\n" +
                         std::to_string(o.maxTokens) + "\n" +
                         std::to_string(o.temperature) + "\n" +
                         std::to_string(o.seed);
  if (Status s = checkParallelStart(model, settings); !s.ok())
    return fail(s.message());

  if (o.generate)
    return generate(model);

  if (!entry) {
    // Nothing to run: describe the artifact unless weights were the point.
    if (o.saveWeights.empty() && !model.hasWeights())
      describe(model);
    return succeed();
  }

  Result<HostTensor> input = readNpy(o.input);
  if (!input.ok())
    return fail(input.message());
  start = std::chrono::steady_clock::now();
  // Each data-parallel replica runs its rows (through the pipeline stages
  // when split so); rank 0 gathers the result.
  bool splitRows = false;
  Result<HostTensor> result = runOverReplicas(
      *entry, o.entry, *input,
      [&](const HostTensor &rows) {
        return pipelined ? runPipeline(model, o.entry, rows)
                         : model.run(o.entry, rows);
      },
      splitRows);
  if (!result.ok())
    return fail(o.input + ": " + result.message());
  std::string how = pipelined ? "through the pipeline stages" : "";
  if (splitRows)
    how += (how.empty() ? "" : ", ") + std::string("each of ") +
           std::to_string(layout.data) + " replicas its rows";
  // On the GPU, the entry's kernels alone (the uploads of the inputs and
  // weights and the download of the result are the rest of the time).
  if (model.artifact().manifest().target.cuda() && !pipelined && !splitRows)
    if (Result<double> gpu = cuda::Session::markedMs(); gpu.ok()) {
      char kernels[64];
      std::snprintf(kernels, sizeof(kernels), "GPU kernels %.2f ms", *gpu);
      how += (how.empty() ? "" : ", ") + std::string(kernels);
    }
  if (!how.empty())
    how = " (" + how + ")";
  progress("%s %s in %.1f ms%s", o.entry.c_str(),
           describeShape(input->shape).c_str(), millisecondsSince(start),
           how.c_str());
  if (layout.rank != 0)
    return succeed(); // rank 0 holds the result

  if (result->rank() == 0 && result->dtype == DType::F32) {
    char line[256];
    std::snprintf(line, sizeof(line), "%s %.6f\n", o.entry.c_str(),
                  static_cast<double>(result->dataAs<float>()[0]));
    results += line;
  }
  if (!o.output.empty()) {
    if (Status s = writeNpy(o.output, *result); !s.ok())
      return fail(s.message());
    progress("wrote %s %s to %s", dtypeName(result->dtype),
             describeShape(result->shape).c_str(), o.output.c_str());
  }
  return succeed();
}

} // namespace

int hag::run::hagRunMain(int argc, const char *const *argv, std::FILE *out,
                         std::FILE *err) {
  try {
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i)
      args.emplace_back(argv[i]);
    ParsedArgs parsed = parseRunArgs(args);
    if (!parsed.ok()) {
      std::fprintf(err, "hag-run: error: %s\n", oneLine(parsed.error).c_str());
      return parsed.exitCode;
    }
    if (parsed.options.help) {
      std::fputs(runUsage().c_str(), out);
      return kExitOk;
    }
    if (parsed.options.version) {
      std::fprintf(out, "hag-run %s\n", hagrt_version());
      return kExitOk;
    }
    // Under mpirun: MPI, the rank's share of the cores, quiet ranks > 0.
    if (std::string e = enterParallelProcess(parsed.options, out); !e.empty())
      return leaveParallelProcess(printError(err, e));
    int code = parsed.options.train
                   ? runTraining(parsed.options, out, err)
                   : !parsed.options.grads.empty()
                         ? runGradients(parsed.options, out, err)
                         : Runner(parsed.options, out, err).run();
    if (std::fflush(out) != 0 && code == kExitOk) {
      std::fprintf(err, "hag-run: error: cannot write the output\n");
      code = kExitFailure;
    }
    return leaveParallelProcess(code);
  } catch (const std::bad_alloc &) {
    std::fprintf(err, "hag-run: error: out of memory\n");
  } catch (const std::exception &e) {
    std::fprintf(err, "hag-run: error: %s\n", oneLine(e.what()).c_str());
  } catch (...) {
    std::fprintf(err, "hag-run: error: unknown failure\n");
  }
  return kExitFailure;
}
