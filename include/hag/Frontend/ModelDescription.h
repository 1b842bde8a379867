//===- ModelDescription.h - The YAML model description ----------*- C++ -*-===//
//
// The model description of shared/design/interfaces.md as a plain struct, the
// YAML reader that fills it (errors as file:line:col), and the builder that
// turns it into a module of hag ops on tensors (spec section 7).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_FRONTEND_MODELDESCRIPTION_H
#define HAG_FRONTEND_MODELDESCRIPTION_H

#include "hag/Analysis/PyramidParams.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace llvm {
class SourceMgr;
class StringRef;
} // namespace llvm

namespace mlir {
class MLIRContext;
class ModuleOp;
class DictionaryAttr;
template <typename OpTy> class OwningOpRef;
} // namespace mlir

namespace hag {

enum class ModelKind { LM, Attention };

/// The optional `train:` section.
struct TrainConfig {
  std::string precision = "fp32"; // fp32 | bf16-mixed | fp16-mixed
  int64_t batch = 8;
  int64_t seq = 1024;
  int64_t steps = 1000;
  double lr = 3.0e-4;
  std::array<double, 2> betas = {0.9, 0.95};
  double adamEps = 1.0e-8;
  double weightDecay = 0.1;
  int64_t warmup = 0;
  std::string schedule = "constant"; // constant | cosine
  double clip = 1.0;
  double lossScaleInit = 65536;
  int64_t lossScaleGrowthInterval = 2000;
  int64_t checkpointEvery = 100;
  std::string checkpointDir = "checkpoints";
  int64_t seed = 0;
  /// random | examples: how hag-run cuts windows from the data (interfaces
  /// extension, see README).
  std::string sampling = "random";
};

/// The optional `parallel:` section.
struct ParallelConfig {
  int64_t tensor = 1, pipeline = 1, data = 1, microbatches = 1;
};

/// The optional `target:` section.
struct TargetConfig {
  std::string device = "cpu";     // cpu | cuda
  std::string gpuArch = "sm_90a"; // sm_80 | sm_90a
};

/// A whole model description. Every field holds its default until the YAML
/// sets it; `attention` carries heads, kv_heads, head_dim and max_seq too.
struct ModelDescription {
  ModelKind kind = ModelKind::LM;
  int64_t vocab = 256;
  int64_t dModel = 512;
  int64_t layers = 6;
  int64_t mlpHidden = 0; // 0: 4 * d_model
  bool tieEmbeddings = true;
  bool rope = true;
  double ropeBase = 10000.0;
  /// Gate hidden size Dg; 0: d_model.
  int64_t gateHidden = 0;
  PyramidParams attention;
  std::optional<TrainConfig> train;
  std::optional<ParallelConfig> parallel;
  TargetConfig target;

  int64_t resolvedMlpHidden() const {
    return mlpHidden ? mlpHidden : 4 * dModel;
  }
  int64_t resolvedGateHidden() const {
    return gateHidden ? gateHidden : dModel;
  }
};

/// Parses the YAML in buffer `bufferId` of `sourceMgr`. Every error (syntax,
/// unknown key, wrong type, out-of-range value, missing required key,
/// inconsistent configuration) is reported through the SourceMgr as
/// `file:line:col: error: ...`; returns std::nullopt after the first error.
std::optional<ModelDescription>
parseModelDescription(llvm::SourceMgr &sourceMgr, unsigned bufferId);

/// Builds the module of spec section 7: for `kind: lm`, `func.func @forward`
/// (tokens [batch, seq] i32 -> logits [batch, seq, vocab]) and
/// `func.func @loss` (tokens -> mean next-token cross-entropy); for
/// `kind: attention`, `func.func @forward` (x [batch, seq, d_model] ->
/// y [batch, seq, d_model]). Weights are function arguments named by the
/// `hag.name` argument attribute with the names of interfaces.md. Batch and
/// sequence dimensions are dynamic. The description must have been parsed
/// (and so validated) by parseModelDescription.
mlir::OwningOpRef<mlir::ModuleOp> buildModelModule(mlir::MLIRContext &ctx,
                                                   const ModelDescription &md,
                                                   llvm::StringRef name);

/// The `train:` section as the module attribute `hag.train` (what
/// hag-compile --train compiles in and the artifact manifest's "train"
/// object): precision, batch, seq, steps, lr, beta1, beta2, eps,
/// weight_decay, warmup, schedule, clip, loss_scale_init, growth_interval,
/// checkpoint_every, checkpoint_dir, seed.
mlir::DictionaryAttr trainConfigAttr(mlir::MLIRContext &ctx,
                                     const TrainConfig &config);

} // namespace hag

#endif // HAG_FRONTEND_MODELDESCRIPTION_H
