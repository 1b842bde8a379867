//===- Model.cpp - a loaded artifact with its weights ---------------------===//
//
// Weight binding, input checks and the call into compiled code through
// MLIR's C interface (docs/artifact-format.md, "Calling convention").
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/Model.h"

#include "hag/runtime/Collectives.h"
#include "hag/runtime/CudaSession.h"

#include "hag/runtime/Memory.h"
#include "hag/runtime/WeightInit.h"

#include "support/StringUtil.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <utility>

using namespace hag::rt;
using namespace hag::rt::detail;

static_assert(sizeof(void *) == sizeof(int64_t),
              "memref descriptors are built for 64-bit pointers");

//===----------------------------------------------------------------------===//
// Calling a C-interface function with any number of pointer arguments
//===----------------------------------------------------------------------===//

namespace {

/// The most arguments (result descriptor included) an entry may take.
constexpr size_t kMaxArguments = 6 + 4096;

// The callee's declared type differs from the one it is called through by
// design (see callPacked), so clang's -fsanitize=function must not check.
#if defined(__clang__)
#define HAGRT_NO_SANITIZE_FUNCTION __attribute__((no_sanitize("function")))
#else
#define HAGRT_NO_SANITIZE_FUNCTION
#endif

#if defined(__x86_64__)
/// The stack-passed arguments of a call, as one by-value aggregate.
template <size_t K> struct StackArgs {
  static_assert(K >= 4, "an aggregate of 16 bytes or less may use registers");
  void *slots[K];
};

template <size_t K>
HAGRT_NO_SANITIZE_FUNCTION void callWithStack(void *fn, void *const *args) {
  using Fn =
      void (*)(void *, void *, void *, void *, void *, void *, StackArgs<K>);
  StackArgs<K> rest;
  std::memcpy(rest.slots, args + 6, sizeof(rest.slots));
  reinterpret_cast<Fn>(fn)(args[0], args[1], args[2], args[3], args[4], args[5],
                           rest);
}
#endif

/// Calls `fn(args[0], ..., args[n-1])`, where fn takes n pointers and
/// returns nothing (MLIR's C interface with memref descriptors).
///
/// The SysV x86-64 convention passes the first six pointer arguments in
/// registers and the rest in consecutive 8-byte stack slots, the first at
/// the lowest address; an aggregate larger than 16 bytes passed by value
/// goes in memory at that same place. So a call with six pointers and a
/// by-value array of K >= n - 6 pointers is, to the callee, exactly the call
/// it expects (plus unused slots above its own, in the caller-owned area).
/// K takes a few sizes, so any arity is callable without libffi and without
/// an instantiation per arity.
Status callPacked(void *fn, std::vector<void *> args) {
#if defined(__x86_64__)
  size_t stackSlots = args.size() > 6 ? args.size() - 6 : 0;
  size_t k = 4;
  while (k < stackSlots)
    k *= 4;
  args.resize(6 + k, nullptr);
  switch (k) {
  case 4:
    callWithStack<4>(fn, args.data());
    break;
  case 16:
    callWithStack<16>(fn, args.data());
    break;
  case 64:
    callWithStack<64>(fn, args.data());
    break;
  case 256:
    callWithStack<256>(fn, args.data());
    break;
  case 1024:
    callWithStack<1024>(fn, args.data());
    break;
  case 4096:
    callWithStack<4096>(fn, args.data());
    break;
  default:
    return Status::error("too many arguments"); // callers check first
  }
  return Status::success();
#else
  (void)fn;
  (void)args;
  return Status::error("calling compiled code is only implemented for the "
                       "x86-64 SysV calling convention");
#endif
}

/// A ranked memref descriptor {allocated, aligned, offset, sizes[r],
/// strides[r]} as 64-bit words, for a dense row-major buffer.
std::vector<int64_t> makeDescriptor(const void *data,
                                    const std::vector<int64_t> &shape) {
  size_t rank = shape.size();
  std::vector<int64_t> words(3 + 2 * rank, 0);
  int64_t address = static_cast<int64_t>(reinterpret_cast<intptr_t>(data));
  words[0] = address;
  words[1] = address;
  int64_t stride = 1;
  for (size_t i = rank; i-- > 0;) {
    words[3 + i] = shape[i];
    words[3 + rank + i] = stride;
    stride *= shape[i];
  }
  return words;
}


/// Appends the descriptors of `buffers` (state the code updates in place)
/// and records their bases (results that alias them must not be freed).
void appendBuffers(std::vector<HostTensor> &buffers,
                   std::vector<std::vector<int64_t>> &descriptors,
                   std::vector<const void *> &argBases) {
  for (HostTensor &t : buffers) {
    descriptors.push_back(makeDescriptor(t.data.data(), t.shape));
    argBases.push_back(t.data.data());
  }
}

/// Copies the code's result out of `words` (a descriptor of `rank`) and
/// frees its buffer unless it is one of `argBases` (a result that aliases an
/// argument must not be freed).
Result<HostTensor> takeResult(const std::vector<int64_t> &words,
                              const ArtifactEntry &entry,
                              const std::vector<const void *> &argBases) {
  size_t rank = entry.resultShape.size();
  void *allocated = reinterpret_cast<void *>(static_cast<intptr_t>(words[0]));
  const uint8_t *aligned =
      reinterpret_cast<const uint8_t *>(static_cast<intptr_t>(words[1]));
  int64_t offset = words[2];
  struct FreeGuard {
    void *p;
    ~FreeGuard() { std::free(p); }
  } guard{allocated};
  if (std::find(argBases.begin(), argBases.end(), allocated) != argBases.end())
    guard.p = nullptr;

  std::vector<int64_t> sizes(words.begin() + 3, words.begin() + 3 + rank);
  std::vector<int64_t> strides(words.begin() + 3 + rank,
                               words.begin() + 3 + 2 * rank);
  for (size_t i = 0; i < rank; ++i)
    if (sizes[i] < 0 ||
        (entry.resultShape[i] >= 0 && sizes[i] != entry.resultShape[i]))
      return makeError(entry.name, ": the code returned shape ",
                       shapeToString(sizes), ", expected ",
                       describeShape(entry.resultShape));
  // Every element is copied below.
  Result<HostTensor> out = HostTensor::uninitialized(entry.resultDType, sizes);
  if (!out.ok())
    return out.status().withPrefix(entry.name + ": result");
  int64_t n = out->numel();
  if (n == 0)
    return out;
  if (!aligned)
    return makeError(entry.name, ": the code returned a null buffer");
  size_t elem = dtypeSize(entry.resultDType);
  const uint8_t *base = aligned + offset * static_cast<int64_t>(elem);
  bool dense = true;
  int64_t expect = 1;
  for (size_t i = rank; i-- > 0;) {
    if (sizes[i] != 1 && strides[i] != expect)
      dense = false;
    expect *= sizes[i];
  }
  uint8_t *dst = out->data.data();
  if (dense) {
    std::memcpy(dst, base, static_cast<size_t>(n) * elem);
    return out;
  }
  // General strided copy, odometer over the indices.
  std::vector<int64_t> index(rank, 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t at = 0;
    for (size_t i = 0; i < rank; ++i)
      at += index[i] * strides[i];
    std::memcpy(dst + k * static_cast<int64_t>(elem),
                base + at * static_cast<int64_t>(elem), elem);
    for (size_t i = rank; i-- > 0;) {
      if (++index[i] < sizes[i])
        break;
      index[i] = 0;
    }
  }
  return out;
}

/// Reads element `i` of an integer tensor as int64 (I32, I64, U16, U32, U8).
int64_t integerAt(const TensorRef &t, int64_t i) {
  const uint8_t *p = static_cast<const uint8_t *>(t.data);
  switch (t.dtype) {
  case DType::I32: {
    int32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  case DType::I64: {
    int64_t v;
    std::memcpy(&v, p + 8 * i, 8);
    return v;
  }
  case DType::U32: {
    uint32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  case DType::U16: {
    uint16_t v;
    std::memcpy(&v, p + 2 * i, 2);
    return v;
  }
  case DType::U8:
    return p[i];
  default:
    return 0;
  }
}

bool isIntegerDType(DType d) {
  return d == DType::I32 || d == DType::I64 || d == DType::U32 ||
         d == DType::U16 || d == DType::U8;
}

/// "[0, 2]": the multi-index of flat element `flat` in `shape`.
std::string indexToString(int64_t flat, const std::vector<int64_t> &shape) {
  std::vector<int64_t> index(shape.size(), 0);
  for (size_t i = shape.size(); i-- > 0;) {
    index[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return shapeToString(index);
}

/// One checked input, in the dtype and rank the code takes.
struct PreparedInput {
  /// The elements passed to the code: the caller's, or `converted`'s when
  /// the dtype had to change.
  const void *data = nullptr;
  /// The shape passed to the code (with the batch dimension).
  std::vector<int64_t> shape;
  HostTensor converted;
  /// True when the caller left out the batch dimension.
  bool addedBatch = false;
};

Status prepareInput(const ArtifactEntry &entry, const TensorSpec &spec,
                    const ModelFacts &model, const TensorRef &given,
                    PreparedInput &out) {
  std::string what = strCat(entry.name, ": input ", quoted(spec.name));
  Result<int64_t> numel =
      checkedNumElements(given.shape, dtypeSize(given.dtype));
  if (!numel.ok())
    return numel.status().withPrefix(what);
  if (*numel > 0 && !given.data)
    return makeError(what, " has no data");
  size_t rank = spec.shape.size();
  std::vector<int64_t> shape = given.shape;
  if (shape.size() + 1 == rank && rank >= 2 && spec.shape[0] < 0) {
    shape.insert(shape.begin(), 1);
    out.addedBatch = true;
  }
  if (shape.size() != rank)
    return makeError(what, " has shape ", shapeToString(given.shape),
                     ", expected ", describeShape(spec.shape));
  for (size_t i = 0; i < rank; ++i)
    if (spec.shape[i] >= 0 && shape[i] != spec.shape[i])
      return makeError(what, " has shape ", shapeToString(given.shape),
                       ", expected ", describeShape(spec.shape));
  for (size_t i = 0; i < rank; ++i)
    if (spec.shape[i] < 0 && shape[i] < 1)
      return makeError(what, " has shape ", shapeToString(given.shape), ": ",
                       i == 0 ? "the batch" : "every dynamic dimension",
                       " must be at least 1",
                       i == 1 ? " (an empty sequence)" : "");
  if (rank >= 2 && spec.shape[1] < 0 && shape[1] > model.maxSeq)
    return makeError(entry.name, ": sequence length ", shape[1],
                     " exceeds max_seq ", model.maxSeq);
  if (entry.name == "loss" && rank >= 2 && spec.shape[1] < 0 &&
      isIntegerDType(spec.dtype) && shape[1] < 2)
    return makeError(entry.name,
                     ": loss needs at least 2 tokens per sequence (it "
                     "predicts each next token), got ",
                     shape[1]);

  out.shape = shape;
  bool convert = false;
  if (spec.dtype == DType::I32) {
    if (!isIntegerDType(given.dtype))
      return makeError(what, " has dtype ", dtypeName(given.dtype),
                       ", expected integer token ids (i32 or i64)");
    int64_t lo = std::numeric_limits<int32_t>::min();
    int64_t hi = std::numeric_limits<int32_t>::max();
    bool vocabCheck = model.kind == ModelFacts::Kind::LM && model.vocab > 0;
    if (vocabCheck) {
      lo = 0;
      hi = model.vocab - 1;
    }
    for (int64_t i = 0; i < *numel; ++i) {
      int64_t v = integerAt(given, i);
      if (v < lo || v > hi) {
        if (vocabCheck)
          return makeError(what, ": token ", v, " at ",
                           indexToString(i, given.shape),
                           " is outside the vocabulary [0, ", model.vocab, ")");
        return makeError(what, ": value ", v, " at ",
                         indexToString(i, given.shape), " does not fit in i32");
      }
    }
    convert = given.dtype != DType::I32;
  } else if (given.dtype != spec.dtype) {
    return makeError(what, " has dtype ", dtypeName(given.dtype), ", expected ",
                     dtypeName(spec.dtype));
  }

  if (!convert) {
    out.data = given.data;
    return Status::success();
  }
  Result<HostTensor> copy = HostTensor::zeros(DType::I32, shape);
  if (!copy.ok())
    return copy.status().withPrefix(what);
  int32_t *dst = copy->dataAs<int32_t>();
  for (int64_t i = 0; i < *numel; ++i)
    dst[i] = static_cast<int32_t>(integerAt(given, i));
  out.converted = std::move(*copy);
  out.data = out.converted.data.data();
  return Status::success();
}

std::string baseName(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

//===----------------------------------------------------------------------===//
// Model
//===----------------------------------------------------------------------===//

/// Device copies of a CUDA artifact's weights, by name (see callOnDevice).
struct hag::rt::detail::DeviceWeights {
  std::mutex mu;
  struct Copy {
    void *device = nullptr;
    size_t bytes = 0;
  };
  std::map<std::string, Copy> copies;
  ~DeviceWeights() {
    for (auto &[name, c] : copies)
      cuda::Session::release(c.device);
  }
};

/// A Decoder's caches in device memory, by state index (see callOnDevice).
struct hag::rt::detail::DeviceState {
  std::vector<DeviceWeights::Copy> copies;
  /// Set while a call's code may be changing the copies (from the launch
  /// until the call's errors are known): a failure then leaves them unknown.
  bool inFlight = false;
  ~DeviceState() {
    for (DeviceWeights::Copy &c : copies)
      cuda::Session::release(c.device);
  }
};

Model::Model(Artifact artifact)
    : code(std::move(artifact)),
      deviceWeights(std::make_unique<detail::DeviceWeights>()) {}
Model::Model(Model &&) noexcept = default;
Model &Model::operator=(Model &&) noexcept = default;
Model::~Model() = default;

void Model::dropDeviceWeights() {
  deviceWeights = std::make_unique<detail::DeviceWeights>();
}

Result<Model> Model::open(const std::string &path) {
  retainLargeAllocations();
  try {
    Result<Artifact> a = Artifact::open(path);
    if (!a.ok())
      return a.status();
    return Model(std::move(*a));
  } catch (const std::bad_alloc &) {
    return makeError(path, ": out of memory");
  }
}

namespace {

/// `spec`'s shape with the sharded dimension whole.
std::vector<int64_t> wholeShape(const TensorSpec &spec) {
  std::vector<int64_t> shape = spec.shape;
  if (spec.shardDim >= 0 && spec.shardParts > 1 &&
      spec.shardDim < static_cast<int64_t>(shape.size()) &&
      shape[static_cast<size_t>(spec.shardDim)] >= 0)
    shape[static_cast<size_t>(spec.shardDim)] *= spec.shardParts;
  return shape;
}

/// Slice `index` of `parts` equal slices of `whole` along `dim`.
Result<HostTensor> sliceAlong(const HostTensor &whole, int64_t dim,
                              int64_t parts, int64_t index) {
  std::vector<int64_t> shape = whole.shape;
  shape[static_cast<size_t>(dim)] /= parts;
  Result<HostTensor> out = HostTensor::zeros(whole.dtype, shape);
  if (!out.ok())
    return out.status();
  size_t elem = dtypeSize(whole.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d)
    outer *= shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(dim) + 1; d < shape.size(); ++d)
    inner *= shape[d];
  const size_t chunk =
      static_cast<size_t>(shape[static_cast<size_t>(dim)] * inner) * elem;
  const uint8_t *src = whole.data.data();
  uint8_t *dst = out->data.data();
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(dst + static_cast<size_t>(o) * chunk,
                src + (static_cast<size_t>(o * parts + index)) * chunk, chunk);
  return out;
}

} // namespace

Result<HostTensor> hag::rt::sliceShard(const HostTensor &whole,
                                       const TensorSpec &spec,
                                       int64_t index) {
  if (spec.shardParts <= 1 || spec.shardDim < 0)
    return whole;
  if (whole.shape != wholeShape(spec))
    return makeError(quoted(spec.name), " has shape ",
                     shapeToString(whole.shape), ", expected ",
                     shapeToString(wholeShape(spec)));
  return sliceAlong(whole, spec.shardDim, spec.shardParts, index);
}

Status Model::selectEntries(const std::string &prefix) {
  if (bound)
    return makeError(code.source(),
                     ": select the entries before binding weights");
  std::set<std::string> used;
  bool any = false;
  for (const ArtifactEntry &e : code.manifest().entries)
    if (e.name.rfind(prefix, 0) == 0) {
      any = true;
      used.insert(e.parameters.begin(), e.parameters.end());
    }
  if (!any)
    return makeError(code.source(), ": no entry starts with ",
                     quoted(prefix));
  active.clear();
  for (const TensorSpec &p : code.manifest().parameters)
    if (used.count(p.name))
      active.push_back(p);
  selected = true;
  return Status::success();
}

Result<HostTensor> Model::call(const std::string &entryName,
                               const std::vector<TensorRef> &inputs,
                               TensorMap &state) const {
  try {
    const ArtifactEntry *entry = code.findEntry(entryName);
    if (!entry)
      return makeError(code.source(), " has no entry ", quoted(entryName));
    if (!entry->parameters.empty() && !bound)
      return makeError(code.source(), ": no weights bound for ",
                       quoted(entryName));
    return invoke(*entry, inputs, &state);
  } catch (const std::bad_alloc &) {
    return makeError(entryName, ": out of memory");
  }
}

Result<HostTensor> Model::invoke(const ArtifactEntry &entry,
                                 const std::vector<TensorRef> &inputs,
                                 TensorMap *state) const {
  const std::string &entryName = entry.name;
  size_t numInputs = inputs.size();
  if (numInputs != entry.inputs.size())
    return makeError(entryName, ": the entry takes ", entry.inputs.size(),
                     " inputs, got ", numInputs);
  size_t numArgs = 1 + entry.inputs.size() + entry.state.size() +
                   entry.parameters.size();
  if (numArgs > kMaxArguments)
    return makeError(entryName, ": the entry takes ", numArgs,
                     " arguments; this runtime calls at most ", kMaxArguments);

  std::vector<PreparedInput> prepared(numInputs);
  for (size_t i = 0; i < numInputs; ++i)
    if (Status s = prepareInput(entry, entry.inputs[i], facts(), inputs[i],
                                prepared[i]);
        !s.ok())
      return s;
  bool addedBatch = !prepared.empty() && prepared[0].addedBatch;
  for (const PreparedInput &p : prepared)
    if (p.addedBatch != addedBatch)
      return makeError(entryName, ": either every input or none may "
                                  "leave out the batch dimension");

  // Descriptors: result first, then inputs, state and parameters.
  std::vector<std::vector<int64_t>> descriptors;
  descriptors.reserve(numArgs);
  std::vector<const void *> argBases;
  descriptors.emplace_back(3 + 2 * entry.resultShape.size(), 0);
  for (const PreparedInput &p : prepared) {
    descriptors.push_back(makeDescriptor(p.data, p.shape));
    argBases.push_back(p.data);
  }
  for (const TensorSpec &spec : entry.state) {
    auto it = state->find(spec.name);
    if (it == state->end())
      return makeError(entryName, ": no state tensor ", quoted(spec.name));
    if (it->second.dtype != spec.dtype || it->second.shape != spec.shape)
      return makeError(entryName, ": state ", quoted(spec.name), " is ",
                       dtypeName(it->second.dtype), " ",
                       shapeToString(it->second.shape), ", expected ",
                       dtypeName(spec.dtype), " ", shapeToString(spec.shape));
    descriptors.push_back(
        makeDescriptor(it->second.data.data(), it->second.shape));
    argBases.push_back(it->second.data.data());
  }
  if (Status s = callWithWeights(entry, descriptors, argBases, entryName);
      !s.ok())
    return s;

  Result<HostTensor> result = takeResult(descriptors[0], entry, argBases);
  if (!result.ok() || !addedBatch || result->rank() == 0)
    return result;
  if (result->shape[0] != 1)
    return makeError(entryName, ": the code returned shape ",
                     shapeToString(result->shape), " for a batch of one");
  result->shape.erase(result->shape.begin());
  return result;
}

Status Model::setTensorRank(int64_t index) {
  const ParallelFacts &p = code.manifest().parallel;
  if (index < 0 || index >= p.tensor)
    return makeError(code.source(), ": tensor rank ", index,
                     " is out of range: the program is split ", p.tensor,
                     " ways");
  if (bound)
    return makeError(code.source(),
                     ": set the tensor rank before binding weights");
  tensorIndex = index;
  return Status::success();
}

Status Model::takeShards(TensorMap &weights, const std::string &source) const {
  for (const TensorSpec &spec : parameters()) {
    if (spec.shardParts <= 1 || spec.shardDim < 0)
      continue;
    auto it = weights.find(spec.name);
    if (it == weights.end() || it->second.shape != wholeShape(spec))
      continue; // a slice already, or an error checkTensors reports
    Result<HostTensor> slice = sliceAlong(it->second, spec.shardDim,
                                          spec.shardParts, tensorIndex);
    if (!slice.ok())
      return slice.status().withPrefix(source + ": " + quoted(spec.name));
    it->second = std::move(*slice);
  }
  return Status::success();
}

Status Model::initWeights(uint64_t seed) {
  try {
    // Sharded weights are initialised whole (the values depend on the
    // name, the seed and the size) and then sliced.
    std::vector<TensorSpec> whole = parameters();
    for (TensorSpec &spec : whole)
      spec.shape = wholeShape(spec);
    Result<TensorMap> w = initialWeights(whole, facts(), seed);
    if (!w.ok())
      return w.status().withPrefix(code.source());
    if (Status s = takeShards(*w, code.source()); !s.ok())
      return s;
    tensors = std::move(*w);
    bound = true;
    dropDeviceWeights();
    return Status::success();
  } catch (const std::bad_alloc &) {
    return makeError(code.source(), ": out of memory initialising weights");
  }
}

Status Model::setWeights(TensorMap weights, const std::string &source) {
  try {
    // A pipeline stage keeps its own weights of a whole model's file.
    if (selected)
      for (auto it = weights.begin(); it != weights.end();)
        it = std::any_of(active.begin(), active.end(),
                         [&](const TensorSpec &p) {
                           return p.name == it->first;
                         })
                 ? std::next(it)
                 : weights.erase(it);
    if (Status s = takeShards(weights, source); !s.ok())
      return s;
    if (Status s =
            checkTensors(weights, parameters(), source, DTypeMatch::AnyFloat);
        !s.ok())
      return s;
    if (Status s = convertFloatTensors(weights, parameters()); !s.ok())
      return s.withPrefix(source);
    tensors = std::move(weights);
    bound = true;
    dropDeviceWeights();
    return Status::success();
  } catch (const std::bad_alloc &) {
    return makeError(source, ": out of memory binding weights");
  }
}

Status Model::loadWeights(const std::string &path) {
  try {
    // A pipeline stage reads its own weights only.
    std::function<bool(const std::string &)> keep;
    if (selected)
      keep = [this](const std::string &name) {
        return std::any_of(active.begin(), active.end(),
                           [&](const TensorSpec &p) { return p.name == name; });
      };
    // A tensor-parallel rank reads only its slice of each sharded weight
    // stored whole (a tensor of another shape is read as it is, for
    // setWeights to judge).
    SliceSelector slice;
    if (tensorIndex > 0 ||
        std::any_of(parameters().begin(), parameters().end(),
                    [](const TensorSpec &p) { return p.shardParts > 1; }))
      slice = [this](const std::string &name,
                     const std::vector<int64_t> &shape) {
        for (const TensorSpec &p : parameters())
          if (p.name == name && p.shardParts > 1 && p.shardDim >= 0 &&
              shape == wholeShape(p))
            return TensorSlice{p.shardDim, p.shardParts, tensorIndex};
        return TensorSlice();
      };
    Result<SafeTensorsFile> file = readSafeTensors(path, keep, slice);
    if (!file.ok())
      return file.status();
    // A training checkpoint (hag-run --train) also holds the optimizer and
    // run state: take the parameters from it.
    auto format = file->metadata.find("format");
    if (format != file->metadata.end() && format->second == "hag-checkpoint") {
      TensorMap weights;
      for (const TensorSpec &p : parameters()) {
        auto it = file->tensors.find(p.name);
        if (it != file->tensors.end())
          weights.emplace(p.name, std::move(it->second));
      }
      return setWeights(std::move(weights), path);
    }
    return setWeights(std::move(file->tensors), path);
  } catch (const std::bad_alloc &) {
    return makeError(path, ": out of memory reading weights");
  }
}

Status Model::saveWeights(const std::string &path) const {
  if (!bound)
    return makeError(path, ": no weights to save: ", code.source(),
                     " has no weights bound yet");
  try {
    std::map<std::string, std::string> metadata = {
        {"format", "pt"},
        {"hag_artifact", baseName(code.source())},
        {"hag_version", code.manifest().hagVersion}};
    return writeSafeTensors(path, tensors, metadata);
  } catch (const std::bad_alloc &) {
    return makeError(path, ": out of memory writing weights");
  }
}

namespace {

/// A view of `t`, after checking its invariants.
Result<TensorRef> refOf(const HostTensor &t) {
  if (Status s = t.validate(); !s.ok())
    return s;
  return TensorRef{t.dtype, t.shape, t.data.data()};
}

} // namespace

Result<HostTensor> Model::run(const std::string &entryName,
                              const HostTensor &input) const {
  try {
    Result<TensorRef> r = refOf(input);
    if (!r.ok())
      return r.status().withPrefix(entryName + ": input");
    return run(entryName, std::vector<TensorRef>{std::move(*r)});
  } catch (const std::bad_alloc &) {
    return makeError(entryName, ": out of memory");
  }
}

Result<HostTensor> Model::run(const std::string &entryName,
                              const std::vector<HostTensor> &inputs) const {
  try {
    std::vector<TensorRef> refs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Result<TensorRef> r = refOf(inputs[i]);
      if (!r.ok())
        return r.status().withPrefix(strCat(entryName, ": input ", i));
      refs.push_back(std::move(*r));
    }
    return run(entryName, refs);
  } catch (const std::bad_alloc &) {
    return makeError(entryName, ": out of memory");
  }
}

Result<HostTensor> Model::run(const std::string &entryName,
                              const std::vector<TensorRef> &inputs) const {
  try {
    const ArtifactEntry *entry = code.findEntry(entryName);
    if (!entry) {
      std::string names;
      for (const ArtifactEntry &e : code.manifest().entries)
        names += strCat(names.empty() ? "" : ", ", e.name);
      return makeError(code.source(), " has no entry ", quoted(entryName),
                       " (it has: ", names, ")");
    }
    if (!bound)
      return makeError(code.source(),
                       ": no weights bound (initialise or load weights "
                       "before running ",
                       quoted(entryName), ")");
    if (!entry->state.empty())
      return makeError(entryName, ": the entry keeps state between calls (a ",
                       "decoding cache); call it through a Decoder");
    return invoke(*entry, inputs, nullptr);
  } catch (const std::bad_alloc &) {
    return makeError(entryName, ": out of memory");
  }
}

//===----------------------------------------------------------------------===//
// Decoder
//===----------------------------------------------------------------------===//

Decoder::Decoder(const Model &model, const ArtifactEntry &entry, int64_t batch)
    : model(&model), entry(&entry), batch(batch) {}
Decoder::Decoder(Decoder &&) noexcept = default;
Decoder &Decoder::operator=(Decoder &&) noexcept = default;
Decoder::~Decoder() = default;

Result<Decoder> Decoder::create(const Model &model, int64_t batch) {
  return forEntry(model, "decode", batch);
}

Result<Decoder> Decoder::createStage(const Model &model, int stage,
                                     int64_t batch) {
  return forEntry(model, strCat("stage", stage, "_decode"), batch);
}

Result<Decoder> Decoder::forEntry(const Model &model, const std::string &name,
                                  int64_t batch) {
  try {
    const std::string &source = model.artifact().source();
    const ArtifactEntry *entry = model.artifact().findEntry(name);
    if (!entry)
      return makeError(source, " cannot decode incrementally: it has no ",
                       quoted(name),
                       " entry (only causal language models have one)");
    if (!model.hasWeights())
      return makeError(source, ": no weights bound (initialise or load "
                               "weights before decoding)");
    if (batch < 1)
      return makeError("decoding needs a batch of at least 1, got ", batch);
    // (tokens, position) or, on a pipeline stage after the first, (tokens,
    // position, the previous stage's activation [batch, 1, d_model]).
    size_t inputs = entry->inputs.size();
    if ((inputs != 2 && inputs != 3) || entry->resultShape.size() != 3 ||
        entry->resultDType != DType::F32 ||
        (inputs == 3 && (entry->inputs[2].dtype != DType::F32 ||
                         entry->inputs[2].shape.size() != 3)))
      return makeError(source, ": entry ", quoted(name),
                       " does not take (tokens, position[, activation]) and "
                       "return f32 [batch, 1, n]");
    if (1 + inputs + entry->state.size() + entry->parameters.size() >
        kMaxArguments)
      return makeError(source, ": entry ", quoted(name),
                       " takes too many arguments");
    Decoder d(model, *entry, batch);
    for (const TensorSpec &spec : entry->state) {
      std::vector<int64_t> shape = spec.shape;
      if (shape.empty() || shape[0] != -1)
        return makeError(source, ": decoding cache ", quoted(spec.name),
                         " has no batch dimension");
      shape[0] = batch;
      for (size_t i = 1; i < shape.size(); ++i)
        if (shape[i] < 0)
          return makeError(source, ": decoding cache ", quoted(spec.name),
                           " has a dynamic dimension ", i);
      Result<HostTensor> t = HostTensor::zeros(spec.dtype, shape);
      if (!t.ok())
        return t.status().withPrefix(strCat("decoding cache ",
                                            quoted(spec.name)));
      d.state.push_back(std::move(*t));
    }
    if (model.artifact().manifest().target.cuda())
      d.deviceState = std::make_unique<detail::DeviceState>();
    return d;
  } catch (const std::bad_alloc &) {
    return makeError("decoding caches for a batch of ", batch,
                     ": out of memory");
  }
}

int64_t Decoder::capacity() const { return model->facts().maxSeq; }

size_t Decoder::cacheBytes() const {
  size_t bytes = 0;
  for (const HostTensor &t : state)
    bytes += t.data.size();
  return bytes;
}

void Decoder::reset() {
  for (HostTensor &t : state)
    std::fill(t.data.begin(), t.data.end(), uint8_t(0));
  // The device copies go: the next step uploads the zeroed caches.
  if (deviceState)
    deviceState = std::make_unique<detail::DeviceState>();
  lostDeviceState = false;
  pos = 0;
}

Result<HostTensor> Decoder::step(const std::vector<int64_t> &tokens) {
  if (entry->inputs.size() != 2)
    return makeError("decode: ", quoted(entry->name),
                     " is a pipeline stage's; call stepStage with the "
                     "previous stage's activation");
  Result<HostTensor> result = stepStage(tokens, nullptr);
  if (!result.ok())
    return result;
  int64_t vocab = model->facts().vocab;
  if (result->shape != std::vector<int64_t>{batch, 1, vocab})
    return makeError("decode: the code returned shape ",
                     shapeToString(result->shape));
  result->shape = {batch, vocab};
  return result;
}

Result<HostTensor> Decoder::stepStage(const std::vector<int64_t> &tokens,
                                      const HostTensor *activation) {
  try {
    if (static_cast<int64_t>(tokens.size()) != batch)
      return makeError("decode: got ", tokens.size(), " tokens for a batch of ",
                       batch);
    if (lostDeviceState)
      return makeError("decode: an earlier step failed on the GPU and left "
                       "the caches unknown; reset() the decoder");
    if (pos >= capacity())
      return makeError("decode: the context is full (max_seq ", capacity(),
                       " tokens)");
    bool takesActivation = entry->inputs.size() == 3;
    if (takesActivation != (activation != nullptr))
      return makeError("decode: ", quoted(entry->name),
                       takesActivation
                           ? " needs the previous stage's activation"
                           : " takes no activation");
    if (activation) {
      std::vector<int64_t> want = {batch, 1, entry->inputs[2].shape[2]};
      if (activation->dtype != DType::F32 || activation->shape != want)
        return makeError(
            "decode: the activation is ", dtypeName(activation->dtype), " ",
            shapeToString(activation->shape), ", ", quoted(entry->name),
            " takes f32 ", shapeToString(want));
    }
    int64_t vocab = model->facts().vocab;
    std::vector<int32_t> ids(batch);
    for (int64_t b = 0; b < batch; ++b) {
      if (tokens[b] < 0 || tokens[b] >= vocab)
        return makeError("decode: token ", tokens[b], " of sequence ", b,
                         " is outside the vocabulary [0, ", vocab, ")");
      ids[b] = static_cast<int32_t>(tokens[b]);
    }
    int64_t position = pos;

    // Descriptors: result, tokens [batch, 1], position [], [the activation],
    // the caches, the weights.
    std::vector<std::vector<int64_t>> descriptors;
    std::vector<const void *> argBases;
    descriptors.emplace_back(3 + 2 * entry->resultShape.size(), 0);
    descriptors.push_back(makeDescriptor(ids.data(), {batch, 1}));
    descriptors.push_back(makeDescriptor(&position, {}));
    argBases = {ids.data(), &position};
    if (activation) {
      descriptors.push_back(
          makeDescriptor(activation->data.data(), activation->shape));
      argBases.push_back(activation->data.data());
    }
    appendBuffers(state, descriptors, argBases);
    if (Status s = model->callWithWeights(*entry, descriptors, argBases,
                                          "decode", deviceState.get());
        !s.ok()) {
      // Only a failure once the code ran leaves the device caches unknown.
      lostDeviceState = deviceState && deviceState->inFlight;
      return s;
    }
    ++pos;
    Result<HostTensor> result = takeResult(descriptors[0], *entry, argBases);
    if (!result.ok())
      return result;
    if (result->shape.size() != 3 || result->shape[0] != batch ||
        result->shape[1] != 1)
      return makeError("decode: the code returned shape ",
                       shapeToString(result->shape));
    return result;
  } catch (const std::bad_alloc &) {
    return makeError("decode: out of memory");
  }
}

Status Model::callWithWeights(const ArtifactEntry &entry,
                              std::vector<std::vector<int64_t>> &descriptors,
                              std::vector<const void *> &argBases,
                              const std::string &what,
                              detail::DeviceState *resident) const {
  // One rank's program of a parallel split: its collectives need the other
  // ranks (hag-run under mpirun installs the communicator).
  const ParallelFacts &split = code.manifest().parallel;
  if (split.parallel()) {
    const Communicator *c = communicator();
    if (!c)
      return makeError(what, ": ", baseName(code.source()),
                       " is one rank's program of a parallel split (tensor ",
                       split.tensor, " x data ", split.data, " = ",
                       split.ranks(), " ranks): run it with mpirun -np ",
                       split.ranks(), " hag-run ...");
    if (c->layout().tensor != split.tensor || c->layout().data != split.data ||
        c->layout().tensorIndex() != tensorIndex)
      return makeError(what, ": the communicator's layout (",
                       c->layout().describe(),
                       ") does not match the program's split (tensor ",
                       split.tensor, " x data ", split.data,
                       ", weights of tensor rank ", tensorIndex, ")");
  }
  for (const std::string &name : entry.parameters) {
    auto it = tensors.find(name);
    if (it == tensors.end()) // setWeights checked every name
      return makeError(what, ": weight ", quoted(name), " is not bound");
    descriptors.push_back(
        makeDescriptor(it->second.data.data(), it->second.shape));
    argBases.push_back(it->second.data.data());
  }
  if (code.manifest().target.cuda()) {
    if (Status s = callOnDevice(entry, descriptors, argBases, resident);
        !s.ok())
      return s.withPrefix(what);
    return Status::success();
  }
  std::vector<void *> args;
  args.reserve(descriptors.size());
  for (std::vector<int64_t> &d : descriptors)
    args.push_back(d.data());
  if (Status s = callPacked(entry.address, std::move(args)); !s.ok())
    return s.withPrefix(what);
  return Status::success();
}

namespace {

/// Elements a descriptor's strided view spans from its first element.
int64_t spanOf(const std::vector<int64_t> &words) {
  size_t rank = (words.size() - 3) / 2;
  int64_t span = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (words[3 + i] == 0)
      return 0;
    span += (words[3 + i] - 1) * words[3 + rank + i];
  }
  return span;
}

/// Device buffers of one call, freed when it ends.
struct DeviceBuffers {
  std::vector<void *> buffers;
  ~DeviceBuffers() {
    for (void *p : buffers)
      cuda::Session::release(p);
  }
};

} // namespace

Status Model::callOnDevice(const ArtifactEntry &entry,
                           std::vector<std::vector<int64_t>> &descriptors,
                           const std::vector<const void *> &argBases,
                           detail::DeviceState *resident) const {
  const TargetFacts &target = code.manifest().target;
  if (!cuda::Session::active())
    return makeError(baseName(code.source()), " holds GPU code (cuda ",
                     target.gpuArch,
                     "): run it on the GPU (hag-run --device cuda)");
  // Arguments come in the entry's order: inputs, state, parameters.
  std::vector<DType> types;
  for (const TensorSpec &t : entry.inputs)
    types.push_back(t.dtype);
  for (const TensorSpec &t : entry.state)
    types.push_back(t.dtype);
  for (const std::string &name : entry.parameters)
    types.push_back(tensors.at(name).dtype);
  if (types.size() + 1 != descriptors.size())
    return makeError("the call passes ", descriptors.size() - 1,
                     " arguments, the entry takes ", types.size());
  if (Status s = cuda::Session::takeError(); !s.ok())
    return s.withPrefix("an earlier GPU call");
  // Bytes of argument a's buffer, from its first element's offset.
  auto argBytes = [&](size_t a) {
    const std::vector<int64_t> &d = descriptors[a + 1];
    return size_t(spanOf(d) + d[2]) * dtypeSize(types[a]);
  };
  // Upload the inputs and state to device memory, but the scalar inputs
  // (the decoding position): the host code reads those (hag-compile marks
  // them so), they stay where they are. The weights are uploaded once and
  // kept (CUDA artifacts have no training entries: no entry writes them).
  DeviceBuffers device;
  std::vector<void *> deviceBases(types.size());
  const size_t firstWeight = entry.inputs.size() + entry.state.size();
  if (!deviceWeights)
    return makeError("a moved-from Model was called");
  std::unique_lock<std::mutex> weightsLock(deviceWeights->mu);
  // Argument i from a copy kept on the device between calls (a weight, a
  // Decoder's cache), uploaded when there is none of this size yet.
  auto keep = [&](detail::DeviceWeights::Copy &c, size_t i,
                  size_t bytes) -> Status {
    if (!c.device || c.bytes != bytes) {
      if (c.device)
        cuda::Session::release(c.device);
      c = {};
      Result<void *> p = cuda::Session::allocate(bytes);
      if (!p.ok())
        return p.status();
      if (Status s = cuda::Session::upload(*p, argBases[i], bytes); !s.ok()) {
        cuda::Session::release(*p);
        return s;
      }
      c = {*p, bytes};
    }
    deviceBases[i] = c.device;
    std::vector<int64_t> &d = descriptors[i + 1];
    d[0] = d[1] = static_cast<int64_t>(reinterpret_cast<intptr_t>(c.device));
    return Status::success();
  };
  for (size_t i = 0; i < types.size(); ++i) {
    if (i < entry.inputs.size() && entry.inputs[i].shape.empty())
      continue;
    std::vector<int64_t> &d = descriptors[i + 1];
    size_t bytes = argBytes(i);
    if (i >= firstWeight) {
      if (Status s =
              keep(deviceWeights->copies[entry.parameters[i - firstWeight]], i,
                   bytes);
          !s.ok())
        return s;
      continue;
    }
    if (resident && i < firstWeight && i >= entry.inputs.size()) {
      // A Decoder's cache: uploaded once, then kept on the device (its
      // size is fixed when the Decoder is made; a new size would replace
      // the context by the host's stale copy).
      if (resident->copies.size() != entry.state.size())
        resident->copies.resize(entry.state.size());
      detail::DeviceWeights::Copy &c =
          resident->copies[i - entry.inputs.size()];
      if (c.device && c.bytes != bytes)
        return makeError("decoding cache ",
                         quoted(entry.state[i - entry.inputs.size()].name),
                         " changed size on the device (", c.bytes, " -> ",
                         bytes, " bytes)");
      if (Status s = keep(c, i, bytes); !s.ok())
        return s;
      continue;
    }
    Result<void *> p = cuda::Session::allocate(bytes);
    if (!p.ok())
      return p.status();
    device.buffers.push_back(*p);
    deviceBases[i] = *p;
    if (Status s = cuda::Session::upload(*p, argBases[i], bytes); !s.ok())
      return s;
    d[0] = d[1] = static_cast<int64_t>(reinterpret_cast<intptr_t>(*p));
  }
  std::vector<void *> args;
  for (std::vector<int64_t> &d : descriptors)
    args.push_back(d.data());
  if (resident)
    resident->inFlight = true;
  cuda::Session::markBegin();
  Status called = callPacked(entry.address, std::move(args));
  cuda::Session::markEnd();
  if (!called.ok())
    return called;
  // A buffer the code allocated for the result is ours to free, whatever
  // happens below (an argument returned as is belongs to `device`).
  std::vector<int64_t> &r = descriptors[0];
  void *allocated = reinterpret_cast<void *>(static_cast<intptr_t>(r[0]));
  bool isArgument = std::find(deviceBases.begin(), deviceBases.end(),
                              allocated) != deviceBases.end();
  struct ResultGuard {
    void *p;
    ~ResultGuard() {
      if (p)
        cuda::Session::release(p);
    }
  } resultGuard{isArgument ? nullptr : allocated};
  if (Status s = cuda::Session::synchronize(); !s.ok())
    return s;
  if (Status s = cuda::Session::takeError(); !s.ok())
    return s;
  if (resident)
    resident->inFlight = false;
  // State the entry updated in place comes back (resident state stays).
  for (size_t i = 0; !resident && i < entry.state.size(); ++i) {
    size_t a = entry.inputs.size() + i;
    if (Status s = cuda::Session::download(const_cast<void *>(argBases[a]),
                                           deviceBases[a], argBytes(a));
        !s.ok())
      return s;
  }
  // The result: an argument returned as is maps back to its host buffer;
  // a buffer the code allocated is copied to the host (and freed by the
  // guard).
  for (size_t i = 0; i < types.size(); ++i)
    if (deviceBases[i] && allocated == deviceBases[i]) {
      r[0] = r[1] =
          static_cast<int64_t>(reinterpret_cast<intptr_t>(argBases[i]));
      return Status::success();
    }
  size_t elem = dtypeSize(entry.resultDType);
  int64_t span = spanOf(r);
  void *host = std::malloc(std::max<size_t>(1, size_t(span) * elem));
  if (!host)
    return makeError("out of memory for the result (", span * elem, " bytes)");
  const uint8_t *first =
      reinterpret_cast<const uint8_t *>(static_cast<intptr_t>(r[1])) +
      r[2] * int64_t(elem);
  Status copied =
      span ? cuda::Session::download(host, first, size_t(span) * elem)
           : Status::success();
  if (!copied.ok()) {
    std::free(host);
    return copied;
  }
  r[0] = r[1] = static_cast<int64_t>(reinterpret_cast<intptr_t>(host));
  r[2] = 0;
  return Status::success();
}

std::string hag::rt::describeShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ", ";
    if (shape[i] >= 0)
      s += std::to_string(shape[i]);
    else
      s += i == 0 ? "batch" : i == 1 ? "seq" : "?";
  }
  return s + "]";
}

//===----------------------------------------------------------------------===//
// Gradients and training
//===----------------------------------------------------------------------===//

namespace {

/// Checks lm tokens for a gradient or training entry: [batch, N] with
/// N >= 2, converted to i32 ids in [0, vocab).
Status prepareTokens(const ArtifactEntry &entry, const ModelFacts &facts,
                     const TensorRef &tokens, PreparedInput &out) {
  if (entry.inputs.size() != 1)
    return makeError(entry.name, ": the entry takes ", entry.inputs.size(),
                     " inputs, expected the tokens alone");
  if (tokens.shape.size() != 2)
    return makeError(entry.name, ": tokens have shape ",
                     shapeToString(tokens.shape),
                     ", expected [batch, sequence]");
  if (tokens.shape[1] < 2)
    return makeError(entry.name, ": the loss needs at least 2 tokens per "
                                 "sequence (it predicts each next one), got ",
                     tokens.shape[1]);
  return prepareInput(entry, entry.inputs[0], facts, tokens, out);
}

} // namespace

Result<TensorMap> Model::gradients(const TensorRef &tokens,
                                   double &loss) const {
  try {
    const ArtifactEntry *entry = code.findEntry("gradients");
    if (!entry)
      return makeError(code.source(), " has no 'gradients' entry (compile "
                                      "the model with hag-compile --train)");
    if (!bound)
      return makeError(code.source(), ": no weights bound");
    PreparedInput in;
    if (Status s = prepareTokens(*entry, facts(), tokens, in); !s.ok())
      return s;
    std::vector<HostTensor> grads;
    for (const TensorSpec &spec : entry->state) {
      Result<HostTensor> t = HostTensor::zeros(spec.dtype, spec.shape);
      if (!t.ok())
        return t.status().withPrefix("gradient " + quoted(spec.name));
      grads.push_back(std::move(*t));
    }
    std::vector<std::vector<int64_t>> descriptors;
    std::vector<const void *> argBases = {in.data};
    descriptors.emplace_back(3 + 2 * entry->resultShape.size(), 0);
    descriptors.push_back(makeDescriptor(in.data, in.shape));
    appendBuffers(grads, descriptors, argBases);
    if (Status s = callWithWeights(*entry, descriptors, argBases, "gradients");
        !s.ok())
      return s;
    Result<HostTensor> l = takeResult(descriptors[0], *entry, argBases);
    if (!l.ok())
      return l.status();
    loss = l->dataAs<float>()[0];
    TensorMap out;
    for (size_t i = 0; i < grads.size(); ++i) {
      std::string name = entry->state[i].name;
      if (name.rfind("grad.", 0) == 0)
        name = name.substr(5);
      out[name] = std::move(grads[i]);
    }
    return out;
  } catch (const std::bad_alloc &) {
    return makeError("gradients: out of memory");
  }
}

Result<Trainer> Trainer::create(const Model &model) {
  try {
    const std::string &source = model.artifact().source();
    const ArtifactEntry *entry = model.artifact().findEntry("train_step");
    if (!entry)
      return makeError(source, " cannot train: it has no 'train_step' entry "
                               "(compile the model with hag-compile --train)");
    if (!model.hasWeights())
      return makeError(source, ": no weights bound (initialise or load "
                               "weights before training)");
    if (entry->resultShape != std::vector<int64_t>{4} ||
        entry->resultDType != DType::F32 || !entry->parameters.empty())
      return makeError(source, ": entry 'train_step' does not have the "
                               "layout of hag-train-step");
    if (2 + entry->state.size() > kMaxArguments)
      return makeError(source, ": entry 'train_step' takes too many arguments");
    Trainer t(model, *entry);
    const TensorMap &weights = model.weights();
    // Only fp16-mixed scales the loss (a manifest without "train" says fp32).
    const TrainFacts &tf = model.artifact().manifest().train;
    double scale = tf.precision == "fp16-mixed" ? tf.lossScaleInit : 1.0;
    for (const TensorSpec &spec : entry->state) {
      for (int64_t d : spec.shape)
        if (d < 0)
          return makeError(source, ": training state ", quoted(spec.name),
                           " has a dynamic dimension");
      Result<HostTensor> z = HostTensor::zeros(spec.dtype, spec.shape);
      if (!z.ok())
        return z.status().withPrefix(strCat("training state ",
                                            quoted(spec.name)));
      HostTensor x = std::move(*z);
      auto w = weights.find(spec.name);
      if (w != weights.end()) {
        if (w->second.shape != spec.shape || w->second.dtype != spec.dtype)
          return makeError(source, ": weight ", quoted(spec.name),
                           " does not match the training state's shape");
        x = w->second;
      } else if (spec.name == "train.loss_scale") {
        x.dataAs<float>()[0] = static_cast<float>(scale);
      } else if (spec.name.rfind("opt.", 0) != 0 &&
                 spec.name.rfind("train.", 0) != 0) {
        return makeError(source, ": training state ", quoted(spec.name),
                         " is neither a weight, an optimizer moment nor a "
                         "counter");
      }
      t.tensors.push_back(std::move(x));
    }
    return t;
  } catch (const std::bad_alloc &) {
    return makeError("training state: out of memory");
  }
}

Result<TrainStats> Trainer::step(const TensorRef &tokens) {
  try {
    PreparedInput in;
    if (Status s = prepareTokens(*entry, model->facts(), tokens, in); !s.ok())
      return s;
    std::vector<std::vector<int64_t>> descriptors;
    std::vector<const void *> argBases = {in.data};
    descriptors.emplace_back(3 + 2 * entry->resultShape.size(), 0);
    descriptors.push_back(makeDescriptor(in.data, in.shape));
    appendBuffers(tensors, descriptors, argBases);
    if (Status s = model->callWithWeights(*entry, descriptors, argBases,
                                          "train_step");
        !s.ok())
      return s;
    Result<HostTensor> r = takeResult(descriptors[0], *entry, argBases);
    if (!r.ok())
      return r.status();
    return TrainStats::fromResult(*r, lossScale());
  } catch (const std::bad_alloc &) {
    return makeError("train_step: out of memory");
  }
}

TrainStats TrainStats::fromResult(const HostTensor &result, double scale) {
  const float *v = result.dataAs<float>();
  TrainStats stats;
  stats.loss = v[0];
  stats.gradNorm = v[1];
  stats.lr = v[2];
  stats.applied = v[3] != 0.0f;
  stats.lossScale = scale;
  return stats;
}

int64_t Trainer::updates() const {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (entry->state[i].name == "train.step")
      return tensors[i].dataAs<int64_t>()[0];
  return 0;
}

double Trainer::lossScale() const {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (entry->state[i].name == "train.loss_scale")
      return tensors[i].dataAs<float>()[0];
  return 1.0;
}

TensorMap Trainer::state() const {
  TensorMap out;
  for (size_t i = 0; i < tensors.size(); ++i)
    out[entry->state[i].name] = tensors[i];
  return out;
}

TensorMap Trainer::weights() const {
  TensorMap out;
  const TensorMap &bound = model->weights();
  for (size_t i = 0; i < tensors.size(); ++i)
    if (bound.count(entry->state[i].name))
      out[entry->state[i].name] = tensors[i];
  return out;
}

Status Trainer::restore(const TensorMap &state, const std::string &source) {
  std::vector<HostTensor> next;
  std::string problems;
  for (const TensorSpec &spec : entry->state) {
    auto it = state.find(spec.name);
    if (it == state.end()) {
      problems += strCat(problems.empty() ? "" : "; ", "missing ",
                         quoted(spec.name));
      continue;
    }
    // A tensor-parallel rank takes its slice of a whole tensor (checkpoints
    // hold the whole state, whatever the split that wrote them).
    if (spec.shardParts > 1 && it->second.dtype == spec.dtype &&
        it->second.shape == wholeShape(spec)) {
      Result<HostTensor> slice =
          sliceAlong(it->second, spec.shardDim, spec.shardParts,
                     model->tensorRank());
      if (!slice.ok())
        return slice.status().withPrefix(source);
      next.push_back(std::move(*slice));
      continue;
    }
    if (it->second.dtype != spec.dtype || it->second.shape != spec.shape) {
      problems += strCat(problems.empty() ? "" : "; ", quoted(spec.name),
                         " is ", dtypeName(it->second.dtype), " ",
                         shapeToString(it->second.shape), ", expected ",
                         dtypeName(spec.dtype), " ",
                         shapeToString(spec.shape));
      continue;
    }
    next.push_back(it->second);
  }
  for (const auto &[name, t] : state) {
    bool known = false;
    for (const TensorSpec &spec : entry->state)
      known |= spec.name == name;
    if (!known && name.rfind("run.", 0) != 0)
      problems += strCat(problems.empty() ? "" : "; ", "unexpected ",
                         quoted(name));
  }
  if (!problems.empty())
    return makeError(source, ": not a training state of this model: ",
                     problems);
  tensors = std::move(next);
  return Status::success();
}
