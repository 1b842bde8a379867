//===- JitModel.h - Compile a model description and run it in-process -----===//
//
// Test support: runs the real compiler (frontend, hag phase, CPU lowering) on
// a model description and JIT-compiles the result with MLIR's
// ExecutionEngine, so conformance tests can call the entry points on host
// buffers. Deliberately free of MLIR headers, so that test files that include
// LibTorch do not also parse MLIR's.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_TEST_CONFORMANCE_JITMODEL_H
#define HAG_TEST_CONFORMANCE_JITMODEL_H

#include "hag/Frontend/ModelDescription.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hag::testing {

/// A caller-owned tensor argument: f32 or i32, dense row-major.
struct TensorArg {
  std::vector<int64_t> shape;
  const void *data = nullptr;
};

/// A result copied out of the compiled code.
struct TensorResult {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

/// The collective behind `hag.all_reduce` in compiled code
/// (`hag_all_reduce_f32`): sums `count` floats over the ranks of `group`
/// (0: tensor, 1: data) in place, divided by the group's size when `mean`
/// is 1. Tests install one; compiled code that reaches hag.all_reduce
/// without one aborts with a message.
using AllReduceFn = void (*)(float *data, int64_t count, int32_t group,
                             int32_t mean);
void setAllReduce(AllReduceFn fn);

class JitModel {
public:
  ~JitModel();
  /// Compiles `md`; on failure returns null and sets `error` to the
  /// diagnostics.
  /// `passes` (a pass pipeline, e.g. "hag-autodiff") runs after the hag
  /// phase.
  /// `emulateCuda`: lower through the CUDA emulator pipeline
  /// (hag-pipeline-cuda-emulator: the CUDA kernel library, every launch as
  /// loops with the GPU's numerics) instead of the CPU one.
  static std::unique_ptr<JitModel> compile(const ModelDescription &md,
                                           std::string &error,
                                           const std::string &passes = "",
                                           bool emulateCuda = false);

  /// Compiles MLIR source (hag and upstream ops) with the CPU lowering (or
  /// the CUDA emulator's, `emulateCuda`); every public function becomes
  /// callable. On failure returns null and sets `error`.
  /// `passes` (a pass pipeline, e.g. "hag-autodiff") runs first.
  static std::unique_ptr<JitModel> compileSource(const std::string &source,
                                                 std::string &error,
                                                 const std::string &passes = "",
                                                 bool emulateCuda = false);
  /// The `hag.name` of every argument of `entry`, in order.
  std::vector<std::string> argumentNames(const std::string &entry) const;

  /// Calls `entry` (which returns one f32 tensor of rank `resultRank`).
  bool run(const std::string &entry, const std::vector<TensorArg> &args,
           int64_t resultRank, TensorResult &result, std::string &error);
  /// Calls `entry`, which returns f32 tensors of the given ranks.
  bool runMulti(const std::string &entry, const std::vector<TensorArg> &args,
                const std::vector<int64_t> &resultRanks,
                std::vector<TensorResult> &results, std::string &error);

  /// The compiler state (opaque outside JitModel.cpp).
  struct Impl;

private:
  /// A JitModel with a fresh context holding the HAG dialects.
  static std::unique_ptr<JitModel> create();
  std::unique_ptr<Impl> impl;
};

} // namespace hag::testing

#endif // HAG_TEST_CONFORMANCE_JITMODEL_H
