//===- Artifact.h - reading .hag artifacts ----------------------*- C++ -*-===//
//
// The reader side of docs/artifact-format.md: a .hag file holds a JSON
// manifest (model facts, parameters, entry points) and an ELF shared object
// with the compiled code. Artifact::open validates the container (magic,
// format version, sizes, FNV-1a 64 checksum), parses the manifest, loads the
// code from memory (memfd_create + dlopen of /proc/self/fd/N, no temporary
// file) and resolves every entry's symbol.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_ARTIFACT_H
#define HAG_RUNTIME_ARTIFACT_H

#include "hag/runtime/SafeTensors.h"
#include "hag/runtime/Status.h"
#include "hag/runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hag::rt {

/// The artifact format version this runtime reads.
inline constexpr uint32_t kArtifactFormatVersion = 1;

/// Size of the fixed container header (magic, version, flags, two sizes).
inline constexpr size_t kArtifactHeaderSize = 32;

/// FNV-1a 64's offset basis: the hash of no bytes.
inline constexpr uint64_t kFnv1a64Basis = 0xcbf29ce484222325ULL;

/// FNV-1a 64 over `size` bytes (the artifact checksum); `hash` continues
/// from an earlier call's result, so that pieces hash as their
/// concatenation.
uint64_t fnv1a64(const uint8_t *data, size_t size,
                 uint64_t hash = kFnv1a64Basis);

/// The manifest's "model" object. Fields that only the lm kind has are 0 /
/// false for the attention kind.
struct ModelFacts {
  enum class Kind { LM, Attention };
  Kind kind = Kind::LM;
  int64_t vocab = 0; ///< lm only
  int64_t dModel = 0;
  int64_t layers = 0; ///< lm only
  int64_t heads = 0;
  int64_t kvHeads = 0;
  int64_t headDim = 0;
  int64_t mlpHidden = 0; ///< lm only
  int64_t gateHidden = 0;
  int64_t maxSeq = 0;
  bool tieEmbeddings = false; ///< lm only
  bool rope = false;
  double ropeBase = 0.0;

  /// "lm" or "attention".
  const char *kindName() const { return kind == Kind::LM ? "lm" : "attention"; }
};

/// The manifest's "attention" object (spec section 1).
struct AttentionFacts {
  int64_t block = 0;
  int64_t ratio = 0;
  int64_t levels = 0; ///< resolved at max_seq when levelsAuto
  bool levelsAuto = false;
  int64_t window = 0;
  int64_t summary = 0;
  std::string compress; ///< gated_mean | max | conv
  bool causal = true;
  double massBias = 0.0;
  int64_t selectK = 0;
  double temperature = 0.0;
  double eps = 0.0;
  /// The raw-window-only ablation (absent in older artifacts: false).
  bool localOnly = false;
};

/// The manifest's optional "train" object: the settings compiled into the
/// "train_step" entry (hag-compile --train) and those hag-run --train uses.
struct TrainFacts {
  bool present = false;
  std::string precision = "fp32";
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t steps = 0;
  double lr = 0.0;
  int64_t warmup = 0;
  std::string schedule;
  double clip = 0.0;
  double lossScaleInit = 1.0;
  int64_t checkpointEvery = 0;
  std::string checkpointDir;
  int64_t seed = 0;
  /// "random" or "examples" (absent in older artifacts: random).
  std::string sampling = "random";
};

/// The manifest's "target" object.
struct TargetFacts {
  std::string triple;
  std::string cpu;
  /// LLVM feature string: "+avx512f,-xop,...".
  std::string features;
  /// Where the model's kernels run: "cpu", or "cuda" (the host code above
  /// launches GPU kernels for `gpuArch`; running it needs a CUDA session).
  std::string device = "cpu";
  /// "sm_80", "sm_90a" for cuda.
  std::string gpuArch;
  bool cuda() const { return device == "cuda"; }
};

/// One entry point (a compiled function).
struct ArtifactEntry {
  /// "forward", "loss", ...
  std::string name;
  /// The C-interface symbol in the code ("_mlir_ciface_forward").
  std::string symbol;
  /// The data inputs; -1 in a shape marks a dynamic dimension.
  std::vector<TensorSpec> inputs;
  /// Buffers the entry reads and updates in place, passed after the inputs
  /// (the decoding cache of "decode"); -1 marks the batch dimension.
  std::vector<TensorSpec> state;
  /// Names of the parameters passed after the inputs and the state, in
  /// order.
  std::vector<std::string> parameters;
  /// The result's dtype and shape (-1: dynamic; [] for a scalar).
  DType resultDType = DType::F32;
  std::vector<int64_t> resultShape;
  /// The resolved address of `symbol` (valid while the Artifact lives).
  void *address = nullptr;
};

/// Everything the manifest says.
/// The manifest's optional "parallel" object: the split this program is one
/// rank of (hag-run runs it with one process per rank under mpirun).
struct ParallelFacts {
  int64_t tensor = 1;
  int64_t data = 1;
  int64_t pipeline = 1;
  /// Micro-batches per step of a pipeline (1F1B).
  int64_t microbatches = 1;
  bool parallel() const { return tensor > 1 || data > 1 || pipeline > 1; }
  int64_t ranks() const { return tensor * data * pipeline; }
};

struct ArtifactManifest {
  uint32_t formatVersion = 0;
  std::string hagVersion;
  TargetFacts target;
  ModelFacts model;
  AttentionFacts attention;
  TrainFacts train;
  ParallelFacts parallel;
  /// Every weight with its dtype and shape, in the manifest's order.
  std::vector<TensorSpec> parameters;
  std::vector<ArtifactEntry> entries;
};

/// A loaded artifact: its manifest and its code, mapped into the process.
/// Move-only; the code is unloaded (dlclose) when the Artifact is destroyed,
/// after which entry addresses must not be called.
class Artifact {
public:
  /// Reads, validates and loads `path`. Every error message starts with
  /// the path: "m.hag: artifact format 2, this runtime reads 1",
  /// "m.hag: checksum mismatch: the file was modified or corrupted",
  /// "m.hag: manifest: model.d_model is missing", "m.hag: the code has no
  /// symbol '_mlir_ciface_forward' (entry 'forward')".
  static Result<Artifact> open(const std::string &path);

  /// Like open(), from an image already in memory; `source` names it in
  /// messages (and in saved weights' metadata).
  static Result<Artifact> load(const uint8_t *data, size_t size,
                               const std::string &source);

  Artifact(Artifact &&) noexcept;
  Artifact &operator=(Artifact &&) noexcept;
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;
  ~Artifact();

  /// The file the artifact came from (or the `source` given to load()).
  const std::string &source() const { return path; }

  /// The parsed manifest; entries carry resolved addresses.
  const ArtifactManifest &manifest() const { return info; }

  /// The entry called `name`, or nullptr.
  const ArtifactEntry *findEntry(const std::string &name) const;

  /// The manifest text (JSON) as stored in the file.
  const std::string &manifestText() const { return json; }

private:
  Artifact() = default;
  struct CodeHandle;

  std::string path;
  std::string json;
  ArtifactManifest info;
  std::unique_ptr<CodeHandle> code;
};

/// Parses and checks a manifest (everything but loading code); `source`
/// prefixes messages. Exposed for tests and tools that only inspect.
Result<ArtifactManifest> parseArtifactManifest(const std::string &text,
                                               const std::string &source);

} // namespace hag::rt

#endif // HAG_RUNTIME_ARTIFACT_H
