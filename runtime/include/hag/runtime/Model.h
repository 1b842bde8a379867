//===- Model.h - a loaded artifact with its weights -------------*- C++ -*-===//
//
// hag::rt::Model is the C++ interface to a compiled model: it owns an
// Artifact and the weights bound to it, and calls the artifact's entry
// points ("forward", "loss") on host tensors. The C API (hagrt.h) wraps it.
//
// Inputs are checked against the entry's input spec before any code runs:
//
//  - rank and static dimensions; dynamic dimensions (batch, sequence) must be
//    at least 1, and the sequence (dimension 1) at most the model's max_seq;
//  - an input may leave out a dynamic leading (batch) dimension, e.g. an
//    attention input x [N, D] for the entry's [batch, N, D]: it runs as a
//    batch of one and the result loses its leading dimension again
//    ([N, D] in, [N, D] out); lm tokens [N] work the same way;
//  - f32 inputs must be f32; i32 inputs (token ids) may be any integer dtype
//    (i64, u32, u16, u8 are converted), and for the lm kind every id must be
//    in [0, vocab);
//  - "loss" needs at least 2 tokens per sequence (it predicts the next one).
//
// Concurrency: run() is const and may be called from several threads at
// once; initWeights/loadWeights/setWeights must not race with run().
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_MODEL_H
#define HAG_RUNTIME_MODEL_H

#include "hag/runtime/Artifact.h"
#include "hag/runtime/SafeTensors.h"
#include "hag/runtime/Status.h"
#include "hag/runtime/Tensor.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hag::rt {

namespace detail {
struct DeviceWeights;
struct DeviceState;
} // namespace detail

/// A non-owning view of a dense, row-major tensor the caller keeps alive
/// during a call (an input that need not be copied into a HostTensor).
struct TensorRef {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  /// numel(shape) elements of `dtype`.
  const void *data = nullptr;
};

/// "[2, 5]", or for a spec shape "[batch, seq, 256]": dimensions of -1 are
/// named batch (first), seq (second) or "?".
std::string describeShape(const std::vector<int64_t> &shape);

/// Slice `index` of `whole` along `spec`'s shard dimension (a
/// tensor-parallel rank's part of a whole tensor); `whole` as is when
/// `spec` is not sharded.
Result<HostTensor> sliceShard(const HostTensor &whole, const TensorSpec &spec,
                              int64_t index);

/// A compiled model and its weights.
class Model {
public:
  /// Opens the artifact at `path` (see Artifact::open); no weights yet.
  static Result<Model> open(const std::string &path);

  /// Wraps an already loaded artifact; no weights yet.
  explicit Model(Artifact artifact);

  Model(Model &&) noexcept;
  Model &operator=(Model &&) noexcept;
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;
  ~Model();

  /// The artifact (its manifest, the file it came from).
  const Artifact &artifact() const { return code; }

  /// The manifest's model facts.
  const ModelFacts &facts() const { return code.manifest().model; }

  /// Every parameter the artifact expects, in the manifest's order (after
  /// selectEntries, those of the selected entries only).
  const std::vector<TensorSpec> &parameters() const {
    return selected ? active : code.manifest().parameters;
  }

  /// Binds only the parameters of the entries whose names start with
  /// `prefix` (a pipeline stage's "stage<s>_"): weights of other stages in
  /// a file are skipped, and initWeights makes only these. Call it before
  /// binding weights.
  Status selectEntries(const std::string &prefix);

  /// Calls entry `entry` on `inputs` and on the state buffers it keeps
  /// between calls (`state`, by the names of the entry's state specs;
  /// updated in place). For training loops outside Trainer (pipeline
  /// stages).
  Result<HostTensor> call(const std::string &entry,
                          const std::vector<TensorRef> &inputs,
                          TensorMap &state) const;

  /// True once weights are bound.
  bool hasWeights() const { return bound; }

  /// For one rank's program of a tensor-parallel split (manifest
  /// "parallel"): which of the `tensor` ranks this is (default 0). Weights
  /// bound afterwards are sliced to this rank's shard (see setWeights); call
  /// it before binding any.
  Status setTensorRank(int64_t index);
  int64_t tensorRank() const { return tensorIndex; }

  /// The bound weights (empty before any are bound).
  const TensorMap &weights() const { return tensors; }

  /// Binds spec section 7's initial weights for `seed` (see WeightInit.h).
  Status initWeights(uint64_t seed);

  /// Binds the weights of a safetensors file. Missing, unexpected and
  /// mis-shaped tensors are all reported in one message naming the file;
  /// f16, bf16 and f64 tensors are converted to the expected f32. On error
  /// the previously bound weights stay bound.
  /// A hag-run training checkpoint (metadata format "hag-checkpoint") gives
  /// its parameters; its optimizer and run state are ignored.
  Status loadWeights(const std::string &path);

  /// Binds `weights` (checked and converted like loadWeights; `source`
  /// names them in messages). A weight the manifest shards (tensor
  /// parallelism) may come whole, as the unsplit model has it: this rank's
  /// slice is kept. initWeights likewise initialises the whole tensor and
  /// keeps the slice, so every split starts from the unsplit model's
  /// weights.
  Status setWeights(TensorMap weights, const std::string &source);

  /// Writes the bound weights as safetensors, atomically, with metadata
  /// {"format": "pt", "hag_artifact": <artifact file name>,
  /// "hag_version": <the compiler's version>}.
  Status saveWeights(const std::string &path) const;

  /// Calls entry `entry` on one input (see the file comment for the
  /// checks). The result is an owning copy of the code's result; "forward"
  /// of an lm gives logits f32 [batch, N, vocab], of the attention kind
  /// y f32 [batch, N, D]; "loss" gives a 0-d f32.
  Result<HostTensor> run(const std::string &entry,
                         const HostTensor &input) const;

  /// Calls entry `entry` on all its inputs, in the manifest's order.
  Result<HostTensor> run(const std::string &entry,
                         const std::vector<HostTensor> &inputs) const;

  /// Calls entry `entry` on inputs the caller owns (no copy is made unless
  /// a dtype conversion is needed).
  Result<HostTensor> run(const std::string &entry,
                         const std::vector<TensorRef> &inputs) const;

  /// Calls the artifact's "gradients" entry (hag-compile --train) on lm
  /// tokens [batch, N]: the mean next-token loss's gradient of every weight,
  /// by weight name, and the loss in `loss`.
  Result<TensorMap> gradients(const TensorRef &tokens, double &loss) const;

private:
  friend class Decoder;
  friend class Trainer;
  /// Appends the descriptors of `entry`'s weights (after the result, the
  /// inputs and any state the caller put in `descriptors`) and calls the
  /// entry's code; `what` prefixes errors.
  /// `resident` (a CUDA artifact's Decoder): the entry's state lives in
  /// these device buffers between calls (see callOnDevice).
  Status callWithWeights(const ArtifactEntry &entry,
                         std::vector<std::vector<int64_t>> &descriptors,
                         std::vector<const void *> &argBases,
                         const std::string &what,
                         detail::DeviceState *resident = nullptr) const;
  /// callWithWeights' last step for a CUDA artifact: the arguments are
  /// copied to device memory, the entry runs on the session's GPU, state
  /// and the result come back to the host. With `resident`, the state is
  /// uploaded only when `resident` has no copy of it yet and stays on the
  /// device afterwards (its host buffers are not updated).
  Status callOnDevice(const ArtifactEntry &entry,
                      std::vector<std::vector<int64_t>> &descriptors,
                      const std::vector<const void *> &argBases,
                      detail::DeviceState *resident) const;

  /// Checks and converts `inputs`, calls `entry` on them, `state` (its
  /// state tensors by name; null when it has none) and the bound weights,
  /// and returns the result (run() and call() after their own checks).
  Result<HostTensor> invoke(const ArtifactEntry &entry,
                            const std::vector<TensorRef> &inputs,
                            TensorMap *state) const;

  /// Replaces each whole tensor of a sharded weight by this rank's slice.
  Status takeShards(TensorMap &weights, const std::string &source) const;

  /// Forgets the device copies of the weights (after new ones are bound).
  void dropDeviceWeights();

  Artifact code;
  TensorMap tensors;
  /// A CUDA artifact's weights in device memory, uploaded at their first
  /// use and kept until other weights are bound or the Model goes.
  std::unique_ptr<detail::DeviceWeights> deviceWeights;
  bool bound = false;
  int64_t tensorIndex = 0;
  bool selected = false;
  std::vector<TensorSpec> active;
};

/// Incremental decoding (spec section 10) through the artifact's "decode"
/// entry (causal language models): `batch` sequences advance one token per
/// step() on per-layer caches the Decoder owns (the raw tokens, every
/// compressed level, the query block's summary tokens and select_k picks,
/// f64 running prefix sums); each step does O(B + (L-2)W + T + select_k)
/// attention work per head and gives the logits the full forward gives at
/// that position.
///
/// The Model must outlive the Decoder and keep its weights bound. A Decoder
/// is not thread-safe; several Decoders may share one Model.
///
/// On a CUDA artifact the caches live in device memory from the first step
/// on (nothing on the host reads them), so a step copies only the tokens in
/// and the logits out. A step that fails on the GPU leaves them unknown:
/// later steps fail until reset().
class Decoder {
public:
  Decoder(Decoder &&) noexcept;
  Decoder &operator=(Decoder &&) noexcept;
  ~Decoder();

  /// An empty context for `batch` sequences. Fails when the artifact has no
  /// "decode" entry (attention-only or bidirectional models) or no weights
  /// are bound.
  static Result<Decoder> create(const Model &model, int64_t batch = 1);
  /// The decoder of one pipeline stage (hag-split-pipeline's
  /// "stage<s>_decode": that stage's layers and caches). Stages after the
  /// first take the previous stage's activation; see stepStage.
  static Result<Decoder> createStage(const Model &model, int stage,
                                     int64_t batch = 1);

  /// Appends tokens[b] to sequence b (tokens.size() == batch, each in
  /// [0, vocab)) and returns the logits f32 [batch, vocab] for the next
  /// token. Fails, changing nothing, when the context already holds max_seq
  /// tokens.
  Result<HostTensor> step(const std::vector<int64_t> &tokens);
  /// A pipeline stage's step: tokens[b] at the next position through the
  /// stage's layers, from `activation` (the previous stage's result, f32
  /// [batch, 1, d_model]; null on the first stage). Returns the activation
  /// for the next stage, or the logits f32 [batch, 1, vocab] on the last.
  Result<HostTensor> stepStage(const std::vector<int64_t> &tokens,
                               const HostTensor *activation);

  /// Tokens consumed so far (the position of the next one).
  int64_t position() const { return pos; }
  /// The most tokens a context holds: the model's max_seq.
  int64_t capacity() const;
  int64_t batchSize() const { return batch; }
  /// Bytes held by the caches.
  size_t cacheBytes() const;
  /// Empties the context (zeroes the caches).
  void reset();

private:
  static Result<Decoder> forEntry(const Model &model, const std::string &name,
                                  int64_t batch);
  Decoder(const Model &model, const ArtifactEntry &entry, int64_t batch);
  const Model *model;
  const ArtifactEntry *entry;
  int64_t batch;
  int64_t pos = 0;
  std::vector<HostTensor> state;
  /// A CUDA artifact's caches on the device (null on the CPU).
  std::unique_ptr<detail::DeviceState> deviceState;
  /// A step failed on the GPU after the caches were handed to it.
  bool lostDeviceState = false;
};

/// One training step's report.
struct TrainStats {
  double loss = 0.0;
  /// The global gradient norm before clipping.
  double gradNorm = 0.0;
  double lr = 0.0;
  /// False when a gradient was not finite and the update was skipped.
  bool applied = false;
  /// The loss scale after the step (fp16-mixed; 1 otherwise).
  double lossScale = 1.0;

  /// From a step entry's result f32 [4] = [loss, norm, lr, applied]
  /// (hag-train-step's train_step and pipeline update entries).
  static TrainStats fromResult(const HostTensor &result, double lossScale);
};

/// Training through the artifact's "train_step" entry (hag-compile
/// --train): one call per step runs forward, backward, clipping, the
/// schedule and AdamW on the state the Trainer owns: the weights, AdamW's
/// moments (opt.exp_avg.<w>, opt.exp_avg_sq.<w>), train.step (updates
/// applied), train.loss_scale and train.good_steps, updated in place.
class Trainer {
public:
  /// Starts from `model`'s bound weights, zero moments, step 0 and the
  /// artifact's initial loss scale (1 unless fp16-mixed). The Model must
  /// outlive the Trainer.
  static Result<Trainer> create(const Model &model);
  /// One step on lm tokens [batch, N + 1] (N predictions per sequence).
  Result<TrainStats> step(const TensorRef &tokens);
  /// Updates applied so far (train.step).
  int64_t updates() const;
  double lossScale() const;
  /// The state entries' specs, in the entry's order.
  const std::vector<TensorSpec> &stateSpecs() const { return entry->state; }
  /// Every state tensor by name (copies): weights, moments, counters.
  TensorMap state() const;
  /// The current weights by name (copies).
  TensorMap weights() const;
  /// Replaces the whole state (a checkpoint; for a tensor-parallel rank,
  /// whole tensors are sliced to the rank's shard): every name of stateSpecs()
  /// with its dtype and shape, nothing else; `source` names it in errors.
  /// On error nothing changes.
  Status restore(const TensorMap &state, const std::string &source);

private:
  Trainer(const Model &model, const ArtifactEntry &entry)
      : model(&model), entry(&entry) {}
  const Model *model;
  const ArtifactEntry *entry;
  std::vector<HostTensor> tensors;
};

} // namespace hag::rt

#endif // HAG_RUNTIME_MODEL_H
