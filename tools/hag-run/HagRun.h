//===- HagRun.h - the hag-run command line, as a library --------*- C++ -*-===//
//
// hag-run loads a compiled model (.hag), binds weights and runs an entry
// point on .npy inputs. The logic lives here so that it can be tested and
// embedded; hag-run.cpp only calls hagRunMain. Like the runtime it uses, it
// has no MLIR or LLVM dependency (arguments are parsed by hand).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_TOOLS_HAGRUN_HAGRUN_H
#define HAG_TOOLS_HAGRUN_HAGRUN_H

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace hag::run {

/// Exit codes: success, a failure while working, a usage error (unknown or
/// malformed arguments, a feature this build lacks).
enum ExitCode : int { kExitOk = 0, kExitFailure = 1, kExitUsage = 2 };

/// What the command line asks for.
struct RunOptions {
  std::string artifact;
  /// --init-weights SEED
  std::optional<uint64_t> initSeed;
  /// --weights FILE
  std::string weights;
  /// --save-weights FILE
  std::string saveWeights;
  /// --input FILE.npy
  std::string input;
  /// --output FILE.npy
  std::string output;
  /// --entry NAME
  std::string entry = "forward";
  bool entryGiven = false;
  /// --generate: incremental decoding after --prompt.
  bool generate = false;
  /// --prompt TEXT (byte-level tokens).
  std::optional<std::string> prompt;
  /// --max-tokens K: tokens to generate.
  int64_t maxTokens = 64;
  /// --temperature T: 0 is greedy (argmax); > 0 samples softmax(logits / T).
  double temperature = 0.0;
  /// --seed S: the sampler's seed.
  uint64_t seed = 0;
  /// --train: training through the artifact's train_step (hag-compile
  /// --train) on --data.
  bool train = false;
  /// --data FILE: .bin uint16 (.u32.bin uint32) tokens, or text (bytes).
  std::string data;
  /// --steps S: train until S steps are done (default: the artifact's
  /// train.steps).
  std::optional<int64_t> steps;
  /// --resume PATH: a checkpoint file, or a directory (its newest one).
  std::string resume;
  /// --log FILE.csv: one row per step.
  std::string log;
  /// --plot FILE.png: the loss curve (gnuplot).
  std::string plot;
  /// --checkpoint-dir DIR, --checkpoint-every N: override the artifact's.
  std::string checkpointDir;
  std::optional<int64_t> checkpointEvery;
  /// --grads FILE.safetensors: the gradients of the loss on --input.
  std::string grads;
  /// --collective-timeout SECONDS: how long a collective of a parallel run
  /// waits for the other ranks before the job ends (default: the
  /// environment's HAG_COLLECTIVE_TIMEOUT, else 60).
  std::optional<double> collectiveTimeout;
  /// --device cpu|cuda.
  std::string device = "cpu";
  bool help = false;
  bool version = false;
  /// --quiet: no progress lines on stderr.
  bool quiet = false;
};

/// A parse result: options, or a one-line error and the exit code to use.
struct ParsedArgs {
  RunOptions options;
  std::string error;
  int exitCode = kExitOk;
  bool ok() const { return error.empty(); }
};

/// Parses `args` (without the program name).
ParsedArgs parseRunArgs(const std::vector<std::string> &args);

/// The --help text.
std::string runUsage();

/// Runs hag-run: results to `out`, progress and the error line to `err`.
/// Returns the process exit code; never throws.
/// Writes "hag-run: error: <message>" as one line to `err`; returns
/// kExitFailure.
int printError(std::FILE *err, const std::string &message);

/// Text printError puts before every message ("rank 1: " under mpirun).
void setErrorPrefix(const std::string &prefix);

/// The --train and --grads modes (Train.cpp); return the exit code.
int runTraining(const RunOptions &options, std::FILE *out, std::FILE *err);
int runGradients(const RunOptions &options, std::FILE *out, std::FILE *err);

int hagRunMain(int argc, const char *const *argv, std::FILE *out,
               std::FILE *err);

} // namespace hag::run

#endif // HAG_TOOLS_HAGRUN_HAGRUN_H
