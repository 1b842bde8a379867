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
int hagRunMain(int argc, const char *const *argv, std::FILE *out,
               std::FILE *err);

} // namespace hag::run

#endif // HAG_TOOLS_HAGRUN_HAGRUN_H
