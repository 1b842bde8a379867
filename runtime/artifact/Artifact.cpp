//===- Artifact.cpp - reading .hag artifacts ------------------------------===//
//
// Container validation, manifest parsing and code loading for the format of
// docs/artifact-format.md.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/Artifact.h"

#include "hag/runtime/FileIO.h"

#include "formats/Json.h"
#include "support/StringUtil.h"

#include <cerrno>
#include <cstring>
#include <set>
#include <string_view>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

using namespace hag::rt;
using namespace hag::rt::detail;

uint64_t hag::rt::fnv1a64(const uint8_t *data, size_t size, uint64_t h) {
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

namespace {

/// Reads typed fields out of manifest objects; messages read
/// "<source>: manifest: <path> is missing" and the like.
class ManifestReader {
public:
  explicit ManifestReader(const std::string &source)
      : prefix(source + ": manifest: ") {}

  Status error(const std::string &what) const {
    return Status::error(prefix + what);
  }

  static std::string join(const std::string &path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  /// The member `key` of object `obj` at `path`; null with `st` set when
  /// missing (and required) or of another kind.
  const json::Value *member(const json::Value &obj, const std::string &path,
                            std::string_view key, json::Value::Kind kind,
                            Status &st, bool required = true) const {
    const json::Value *v = obj.find(key);
    if (!v) {
      if (required)
        st = error(join(path, key) + " is missing");
      return nullptr;
    }
    bool kindOk =
        v->kind == kind || (kind == json::Value::Kind::Real && v->isNumber());
    if (!kindOk) {
      st = error(strCat(join(path, key), " is ", json::kindName(v->kind),
                        ", expected ", json::kindName(kind)));
      return nullptr;
    }
    return v;
  }

  Status getInt(const json::Value &obj, const std::string &path,
                std::string_view key, int64_t &out, int64_t min,
                bool required = true) const {
    Status st;
    const json::Value *v =
        member(obj, path, key, json::Value::Kind::Integer, st, required);
    if (!v)
      return st;
    if (v->integer < min)
      return error(strCat(join(path, key), " is ", v->integer,
                          ", expected at least ", min));
    out = v->integer;
    return Status::success();
  }

  Status getBool(const json::Value &obj, const std::string &path,
                 std::string_view key, bool &out, bool required = true) const {
    Status st;
    const json::Value *v =
        member(obj, path, key, json::Value::Kind::Bool, st, required);
    if (v)
      out = v->boolean;
    return st;
  }

  Status getNumber(const json::Value &obj, const std::string &path,
                   std::string_view key, double &out,
                   bool required = true) const {
    Status st;
    const json::Value *v =
        member(obj, path, key, json::Value::Kind::Real, st, required);
    if (v)
      out = v->asDouble();
    return st;
  }

  Status getString(const json::Value &obj, const std::string &path,
                   std::string_view key, std::string &out, bool required = true,
                   bool nonEmpty = true) const {
    Status st;
    const json::Value *v =
        member(obj, path, key, json::Value::Kind::String, st, required);
    if (!v)
      return st;
    if (nonEmpty && v->string.empty())
      return error(join(path, key) + " is empty");
    out = v->string;
    return Status::success();
  }

  Status getDType(const json::Value &obj, const std::string &path,
                  DType &out) const {
    std::string name;
    if (Status s = getString(obj, path, "dtype", name); !s.ok())
      return s;
    std::optional<DType> d = parseDTypeName(name);
    if (!d)
      return error(strCat(join(path, "dtype"), " is ", quoted(name),
                          ", not a dtype this runtime knows"));
    out = *d;
    return Status::success();
  }

  /// A shape array; dimensions must be >= `minDim` (-1 allows dynamic).
  Status getShape(const json::Value &obj, const std::string &path,
                  std::vector<int64_t> &out, int64_t minDim) const {
    Status st;
    const json::Value *v =
        member(obj, path, "shape", json::Value::Kind::Array, st);
    if (!v)
      return st;
    out.clear();
    for (size_t i = 0; i < v->elements.size(); ++i) {
      const json::Value &d = v->elements[i];
      std::string where = strCat(join(path, "shape"), "[", i, "]");
      if (!d.isInteger())
        return error(strCat(where, " is ", json::kindName(d.kind),
                            ", expected an integer"));
      if (d.integer < minDim)
        return error(strCat(where, " is ", d.integer,
                            minDim < 0 ? ", expected -1 (dynamic) or a size"
                                       : ", expected a size (>= 0)"));
      out.push_back(d.integer);
    }
    std::vector<int64_t> sizes = out;
    for (int64_t &d : sizes)
      d = d < 0 ? 1 : d;
    if (!checkedNumElements(sizes, 8).ok())
      return error(join(path, "shape") + " " + shapeToString(out) +
                   " is too large");
    return Status::success();
  }

private:
  std::string prefix;
};

Status parseModel(const ManifestReader &r, const json::Value &root,
                  ModelFacts &m) {
  Status st;
  const json::Value *obj =
      r.member(root, "", "model", json::Value::Kind::Object, st);
  if (!obj)
    return st;
  std::string kind;
  if (Status s = r.getString(*obj, "model", "kind", kind); !s.ok())
    return s;
  if (kind == "lm")
    m.kind = ModelFacts::Kind::LM;
  else if (kind == "attention")
    m.kind = ModelFacts::Kind::Attention;
  else
    return r.error("model.kind is " + quoted(kind) +
                   ", expected 'lm' or 'attention'");
  bool lm = m.kind == ModelFacts::Kind::LM;
  for (Status s : {
           r.getInt(*obj, "model", "d_model", m.dModel, 1),
           r.getInt(*obj, "model", "heads", m.heads, 1),
           r.getInt(*obj, "model", "kv_heads", m.kvHeads, 1),
           r.getInt(*obj, "model", "head_dim", m.headDim, 1),
           r.getInt(*obj, "model", "gate_hidden", m.gateHidden, 1),
           r.getInt(*obj, "model", "max_seq", m.maxSeq, 1),
           r.getBool(*obj, "model", "rope", m.rope),
           r.getNumber(*obj, "model", "rope_base", m.ropeBase),
           r.getInt(*obj, "model", "vocab", m.vocab, 1, lm),
           r.getInt(*obj, "model", "layers", m.layers, 1, lm),
           r.getInt(*obj, "model", "mlp_hidden", m.mlpHidden, 1, lm),
           r.getBool(*obj, "model", "tie_embeddings", m.tieEmbeddings, lm),
       })
    if (!s.ok())
      return s;
  return Status::success();
}

Status parseAttention(const ManifestReader &r, const json::Value &root,
                      AttentionFacts &a) {
  Status st;
  const json::Value *obj =
      r.member(root, "", "attention", json::Value::Kind::Object, st);
  if (!obj)
    return st;
  const std::string p = "attention";
  for (Status s : {
           r.getInt(*obj, p, "block", a.block, 1),
           r.getInt(*obj, p, "ratio", a.ratio, 1),
           r.getInt(*obj, p, "levels", a.levels, 1),
           r.getBool(*obj, p, "levels_auto", a.levelsAuto),
           r.getInt(*obj, p, "window", a.window, 0),
           r.getInt(*obj, p, "summary", a.summary, 0),
           r.getString(*obj, p, "compress", a.compress),
           r.getBool(*obj, p, "causal", a.causal),
           r.getNumber(*obj, p, "mass_bias", a.massBias),
           r.getInt(*obj, p, "select_k", a.selectK, 0),
           r.getNumber(*obj, p, "temperature", a.temperature),
           r.getNumber(*obj, p, "eps", a.eps),
           r.getBool(*obj, p, "local_only", a.localOnly, /*required=*/false),
       })
    if (!s.ok())
      return s;
  return Status::success();
}

Status parseTrain(const ManifestReader &r, const json::Value &root,
                  TrainFacts &t) {
  Status st;
  const json::Value *obj = r.member(root, "", "train", json::Value::Kind::Object,
                                    st, /*required=*/false);
  if (!obj)
    return st;
  t.present = true;
  const std::string p = "train";
  for (Status s : {
           r.getString(*obj, p, "precision", t.precision),
           r.getInt(*obj, p, "batch", t.batch, 1),
           r.getInt(*obj, p, "seq", t.seq, 1),
           r.getInt(*obj, p, "steps", t.steps, 1),
           r.getNumber(*obj, p, "lr", t.lr),
           r.getInt(*obj, p, "warmup", t.warmup, 0),
           r.getString(*obj, p, "schedule", t.schedule),
           r.getNumber(*obj, p, "clip", t.clip),
           r.getNumber(*obj, p, "loss_scale_init", t.lossScaleInit),
           r.getInt(*obj, p, "checkpoint_every", t.checkpointEvery, 1),
           r.getString(*obj, p, "checkpoint_dir", t.checkpointDir),
           r.getInt(*obj, p, "seed", t.seed, 0),
           r.getString(*obj, p, "sampling", t.sampling, /*required=*/false),
       })
    if (!s.ok())
      return s;
  if (t.sampling != "random" && t.sampling != "examples")
    return r.error("train.sampling must be \"random\" or \"examples\", got \"" +
                   t.sampling + "\"");
  return Status::success();
}

Status parseParallel(const ManifestReader &r, const json::Value &root,
                     ParallelFacts &p) {
  Status st;
  const json::Value *obj = r.member(root, "", "parallel",
                                    json::Value::Kind::Object, st,
                                    /*required=*/false);
  if (!obj)
    return st;
  for (Status s : {r.getInt(*obj, "parallel", "tensor", p.tensor, 1),
                   r.getInt(*obj, "parallel", "data", p.data, 1),
                   r.getInt(*obj, "parallel", "pipeline", p.pipeline, 1,
                            /*required=*/false),
                   r.getInt(*obj, "parallel", "microbatches", p.microbatches,
                            1, /*required=*/false)})
    if (!s.ok())
      return s;
  if (p.ranks() > 65536)
    return r.error(strCat("parallel: ", p.ranks(), " ranks is too many"));
  return Status::success();
}

/// The optional "shard": {dim, parts} of a tensor spec (a tensor-parallel
/// rank's slice).
Status parseShard(const ManifestReader &r, const json::Value &v,
                  const std::string &path, TensorSpec &spec) {
  Status st;
  const json::Value *shard = r.member(v, path, "shard",
                                      json::Value::Kind::Object, st,
                                      /*required=*/false);
  if (!shard)
    return st;
  std::string sp = path + ".shard";
  for (Status s : {r.getInt(*shard, sp, "dim", spec.shardDim, 0),
                   r.getInt(*shard, sp, "parts", spec.shardParts, 1)})
    if (!s.ok())
      return s;
  if (spec.shardDim >= static_cast<int64_t>(spec.shape.size()))
    return r.error(strCat(sp, ".dim is ", spec.shardDim, " but ",
                          quoted(spec.name), " has rank ", spec.shape.size()));
  return Status::success();
}

Status parseParameters(const ManifestReader &r, const json::Value &root,
                       std::vector<TensorSpec> &params) {
  Status st;
  const json::Value *arr =
      r.member(root, "", "parameters", json::Value::Kind::Array, st);
  if (!arr)
    return st;
  std::set<std::string> seen;
  for (size_t i = 0; i < arr->elements.size(); ++i) {
    const json::Value &v = arr->elements[i];
    std::string path = strCat("parameters[", i, "]");
    if (!v.isObject())
      return r.error(
          strCat(path, " is ", json::kindName(v.kind), ", expected an object"));
    TensorSpec spec;
    for (Status s :
         {r.getString(v, path, "name", spec.name),
          r.getDType(v, path, spec.dtype), r.getShape(v, path, spec.shape, 0)})
      if (!s.ok())
        return s;
    if (!seen.insert(spec.name).second)
      return r.error("parameter " + quoted(spec.name) + " is declared twice");
    if (Status s = parseShard(r, v, path, spec); !s.ok())
      return s;
    params.push_back(std::move(spec));
  }
  return Status::success();
}

Status parseEntry(const ManifestReader &r, const json::Value &v,
                  const std::string &path,
                  const std::set<std::string> &paramNames, ArtifactEntry &e) {
  if (!v.isObject())
    return r.error(
        strCat(path, " is ", json::kindName(v.kind), ", expected an object"));
  for (Status s : {r.getString(v, path, "name", e.name),
                   r.getString(v, path, "symbol", e.symbol)})
    if (!s.ok())
      return s;
  Status st;
  // An array of {name, dtype, shape} specs ("inputs", "state").
  auto specs = [&](const json::Value &arr, const char *key,
                   std::vector<TensorSpec> &out) -> Status {
    for (size_t i = 0; i < arr.elements.size(); ++i) {
      const json::Value &in = arr.elements[i];
      std::string inPath = strCat(path, ".", key, "[", i, "]");
      if (!in.isObject())
        return r.error(strCat(inPath, " is ", json::kindName(in.kind),
                              ", expected an object"));
      TensorSpec spec;
      for (Status s : {r.getString(in, inPath, "name", spec.name),
                       r.getDType(in, inPath, spec.dtype),
                       r.getShape(in, inPath, spec.shape, -1),
                       parseShard(r, in, inPath, spec)})
        if (!s.ok())
          return s;
      out.push_back(std::move(spec));
    }
    return Status::success();
  };
  const json::Value *inputs =
      r.member(v, path, "inputs", json::Value::Kind::Array, st);
  if (!inputs)
    return st;
  if (Status s = specs(*inputs, "inputs", e.inputs); !s.ok())
    return s;
  // "state" is optional: the buffers an entry updates in place.
  if (const json::Value *state = v.find("state")) {
    if (!state->isArray())
      return r.error(strCat(path, ".state is ", json::kindName(state->kind),
                            ", expected an array"));
    if (Status s = specs(*state, "state", e.state); !s.ok())
      return s;
  }
  const json::Value *params =
      r.member(v, path, "parameters", json::Value::Kind::Array, st);
  if (!params)
    return st;
  for (size_t i = 0; i < params->elements.size(); ++i) {
    const json::Value &p = params->elements[i];
    if (!p.isString())
      return r.error(strCat(path, ".parameters[", i, "] is ",
                            json::kindName(p.kind), ", expected a string"));
    if (!paramNames.count(p.string))
      return r.error(strCat("entry ", quoted(e.name), " uses parameter ",
                            quoted(p.string),
                            " that the manifest does not declare"));
    e.parameters.push_back(p.string);
  }
  const json::Value *result =
      r.member(v, path, "result", json::Value::Kind::Object, st);
  if (!result)
    return st;
  std::string resultPath = path + ".result";
  for (Status s : {r.getDType(*result, resultPath, e.resultDType),
                   r.getShape(*result, resultPath, e.resultShape, -1)})
    if (!s.ok())
      return s;
  return Status::success();
}

Status parseEntries(const ManifestReader &r, const json::Value &root,
                    const std::vector<TensorSpec> &params,
                    std::vector<ArtifactEntry> &entries) {
  Status st;
  const json::Value *arr =
      r.member(root, "", "entries", json::Value::Kind::Array, st);
  if (!arr)
    return st;
  if (arr->elements.empty())
    return r.error("entries is empty: the artifact has nothing to run");
  std::set<std::string> paramNames;
  for (const TensorSpec &p : params)
    paramNames.insert(p.name);
  std::set<std::string> seen;
  for (size_t i = 0; i < arr->elements.size(); ++i) {
    ArtifactEntry e;
    if (Status s = parseEntry(r, arr->elements[i], strCat("entries[", i, "]"),
                              paramNames, e);
        !s.ok())
      return s;
    if (!seen.insert(e.name).second)
      return r.error("entry " + quoted(e.name) + " is declared twice");
    entries.push_back(std::move(e));
  }
  return Status::success();
}

} // namespace

Result<ArtifactManifest>
hag::rt::parseArtifactManifest(const std::string &text,
                               const std::string &source) {
  ManifestReader r(source);
  if (!json::isValidUtf8(text))
    return r.error("not valid UTF-8");
  json::ParseOptions options;
  options.allowReals = true;
  Result<json::Value> root = json::parse(text, options);
  if (!root.ok())
    return r.error("invalid JSON: " + root.message());
  if (!root->isObject())
    return r.error(strCat("the manifest is ", json::kindName(root->kind),
                          ", expected an object"));
  ArtifactManifest m;
  int64_t version = 0;
  if (Status s = r.getInt(*root, "", "format_version", version, 0); !s.ok())
    return s;
  if (version != kArtifactFormatVersion)
    return r.error(strCat("format_version is ", version,
                          " but the header says ", kArtifactFormatVersion));
  m.formatVersion = static_cast<uint32_t>(version);
  Status st;
  const json::Value *target =
      r.member(*root, "", "target", json::Value::Kind::Object, st);
  if (!target)
    return st;
  for (Status s :
       {r.getString(*root, "", "hag_version", m.hagVersion),
        r.getString(*target, "target", "triple", m.target.triple),
        r.getString(*target, "target", "cpu", m.target.cpu, false, false),
        r.getString(*target, "target", "features", m.target.features, false,
                    false),
        r.getString(*target, "target", "device", m.target.device, false, false),
        r.getString(*target, "target", "gpu_arch", m.target.gpuArch, false,
                    false),
        parseModel(r, *root, m.model), parseAttention(r, *root, m.attention),
        parseTrain(r, *root, m.train), parseParallel(r, *root, m.parallel),
        parseParameters(r, *root, m.parameters),
        parseEntries(r, *root, m.parameters, m.entries)})
    if (!s.ok())
      return s;
  if (m.target.device != "cpu" && m.target.device != "cuda")
    return r.error(strCat("target.device is ", quoted(m.target.device),
                          ", not cpu or cuda"));
  if (m.target.cuda() && m.target.gpuArch.empty())
    return r.error("target.gpu_arch is missing for a cuda artifact");
  return m;
}

//===----------------------------------------------------------------------===//
// Host compatibility
//===----------------------------------------------------------------------===//

namespace {

/// The ELF header facts the loader cares about.
Status checkElf(const uint8_t *code, size_t size, const std::string &source) {
  if (size < 64 || std::memcmp(code,
                               "\x7f"
                               "ELF",
                               4) != 0)
    return makeError(source, ": the code section is not an ELF file");
  if (code[4] != 2 || code[5] != 1)
    return makeError(source,
                     ": the code is not a 64-bit little-endian ELF file");
  uint16_t type = static_cast<uint16_t>(code[16] | (code[17] << 8));
  uint16_t machine = static_cast<uint16_t>(code[18] | (code[19] << 8));
  if (type != 3) // ET_DYN
    return makeError(source, ": the code is an ELF file of type ", type,
                     ", not a shared object");
#if defined(__x86_64__)
  constexpr uint16_t kHostMachine = 62; // EM_X86_64
  constexpr const char *kHostName = "x86-64";
#elif defined(__aarch64__)
  constexpr uint16_t kHostMachine = 183; // EM_AARCH64
  constexpr const char *kHostName = "aarch64";
#else
  constexpr uint16_t kHostMachine = 0;
  constexpr const char *kHostName = "this";
#endif
  if (kHostMachine != 0 && machine != kHostMachine)
    return makeError(source, ": the code is for ELF machine ", machine,
                     ", this host is ", kHostName);
  return Status::success();
}

/// Fails, naming the features, when the code was compiled for CPU features
/// this machine lacks (it would die of SIGILL otherwise). Only features the
/// compiler's __builtin_cpu_supports knows are checked.
Status checkCpuFeatures(const TargetFacts &target, const std::string &source) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
#define HAGRT_FEATURE(name)                                                    \
  { name, __builtin_cpu_supports(name) != 0 }
  const struct {
    const char *name;
    bool present;
  } known[] = {
      HAGRT_FEATURE("popcnt"),
      HAGRT_FEATURE("sse4.1"),
      HAGRT_FEATURE("sse4.2"),
      HAGRT_FEATURE("avx"),
      HAGRT_FEATURE("avx2"),
      HAGRT_FEATURE("fma"),
      HAGRT_FEATURE("bmi"),
      HAGRT_FEATURE("bmi2"),
      HAGRT_FEATURE("aes"),
      HAGRT_FEATURE("pclmul"),
      HAGRT_FEATURE("gfni"),
      HAGRT_FEATURE("vpclmulqdq"),
      HAGRT_FEATURE("avx512f"),
      HAGRT_FEATURE("avx512bw"),
      HAGRT_FEATURE("avx512dq"),
      HAGRT_FEATURE("avx512vl"),
      HAGRT_FEATURE("avx512cd"),
      HAGRT_FEATURE("avx512vbmi"),
      HAGRT_FEATURE("avx512vbmi2"),
      HAGRT_FEATURE("avx512ifma"),
      HAGRT_FEATURE("avx512vnni"),
      HAGRT_FEATURE("avx512bitalg"),
      HAGRT_FEATURE("avx512vpopcntdq"),
      HAGRT_FEATURE("avx512bf16"),
  };
#undef HAGRT_FEATURE
  std::string missing;
  std::string_view features = target.features;
  while (!features.empty()) {
    size_t comma = features.find(',');
    std::string_view f = features.substr(0, comma);
    features = comma == std::string_view::npos ? std::string_view()
                                               : features.substr(comma + 1);
    if (f.size() < 2 || f[0] != '+')
      continue;
    f.remove_prefix(1);
    for (const auto &k : known)
      if (f == k.name && !k.present)
        missing += strCat(missing.empty() ? "" : ", ", k.name);
  }
  if (!missing.empty())
    return makeError(source, ": the code was compiled for CPU ",
                     quoted(target.cpu), " and needs ", missing,
                     ", which this machine lacks (recompile with "
                     "hag-compile --cpu=native or an older --cpu)");
#else
  (void)target;
  (void)source;
#endif
  return Status::success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Code loading
//===----------------------------------------------------------------------===//

/// The loaded shared object and the memfd behind it. The memfd stays open
/// while the object is loaded: its number is part of the dlopen name, and a
/// reused number would make dlopen hand back a stale object.
struct Artifact::CodeHandle {
  void *handle = nullptr;
  int fd = -1;
  std::string dlName;

  ~CodeHandle() {
    if (handle)
      ::dlclose(handle);
    if (fd >= 0)
      ::close(fd);
  }
};

namespace {

/// dlerror() as a string (or a fallback).
std::string lastDlError() {
  const char *e = ::dlerror();
  return e ? std::string(e) : std::string("unknown dlopen error");
}

Status writeAll(int fd, const uint8_t *data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return Status::error(errnoMessage(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::success();
}

/// Last component of a path, for the memfd's name (shown in /proc/PID/maps).
std::string baseName(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

} // namespace

Artifact::Artifact(Artifact &&) noexcept = default;
Artifact &Artifact::operator=(Artifact &&) noexcept = default;
Artifact::~Artifact() = default;

const ArtifactEntry *Artifact::findEntry(const std::string &name) const {
  for (const ArtifactEntry &e : info.entries)
    if (e.name == name)
      return &e;
  return nullptr;
}

Result<Artifact> Artifact::open(const std::string &path) {
  Result<MappedFile> file = MappedFile::open(path);
  if (!file.ok())
    return file.status();
  return load(file->data(), file->size(), path);
}

Result<Artifact> Artifact::load(const uint8_t *data, size_t size,
                                const std::string &source) {
  static const uint8_t kMagic[8] = {'H', 'A', 'G', 'A', 'R', 'T', 'F', 0};
  auto readLE = [&](size_t offset, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= static_cast<uint64_t>(data[offset + i]) << (8 * i);
    return v;
  };

  // Magic first (on whatever prefix there is), so that a random file reads
  // as "not an artifact" rather than "truncated".
  size_t magicBytes = size < 8 ? size : 8;
  if (size == 0)
    return makeError(source, ": empty file, not a HAG artifact");
  if (std::memcmp(data, kMagic, magicBytes) != 0)
    return makeError(source, ": not a HAG artifact (wrong magic; expected "
                             "\"HAGARTF\\0\")");
  if (size < kArtifactHeaderSize + 8)
    return makeError(source, ": truncated artifact: ", size,
                     " bytes, but the header and checksum alone take ",
                     kArtifactHeaderSize + 8);
  uint32_t version = static_cast<uint32_t>(readLE(8, 4));
  if (version != kArtifactFormatVersion)
    return makeError(source, ": artifact format ", version,
                     ", this runtime reads ", kArtifactFormatVersion);
  uint32_t flags = static_cast<uint32_t>(readLE(12, 4));
  if (flags != 0)
    return makeError(source, ": artifact flags ", flags,
                     " are not supported (reserved, must be 0)");
  uint64_t manifestSize = readLE(16, 8);
  uint64_t codeSize = readLE(24, 8);
  uint64_t expected = 0;
  if (__builtin_add_overflow(manifestSize, codeSize, &expected) ||
      __builtin_add_overflow(expected, kArtifactHeaderSize + 8, &expected))
    return makeError(source, ": manifest_size ", manifestSize,
                     " and code_size ", codeSize, " overflow");
  if (size < expected)
    return makeError(source, ": truncated artifact: ", size,
                     " bytes, but manifest_size ", manifestSize,
                     " and code_size ", codeSize, " need ", expected);
  if (size > expected)
    return makeError(source, ": ", size - expected,
                     " unexpected bytes after the checksum (", size,
                     " bytes, but manifest_size ", manifestSize,
                     " and code_size ", codeSize, " need ", expected, ")");
  uint64_t stored = readLE(size - 8, 8);
  uint64_t computed = fnv1a64(data, size - 8);
  if (stored != computed)
    return makeError(source,
                     ": checksum mismatch: the file was modified or corrupted");

  Artifact a;
  a.path = source;
  a.json.assign(reinterpret_cast<const char *>(data) + kArtifactHeaderSize,
                manifestSize);
  Result<ArtifactManifest> manifest = parseArtifactManifest(a.json, source);
  if (!manifest.ok())
    return manifest.status();
  a.info = std::move(*manifest);

  const uint8_t *code = data + kArtifactHeaderSize + manifestSize;
  if (Status s = checkElf(code, codeSize, source); !s.ok())
    return s;
  if (Status s = checkCpuFeatures(a.info.target, source); !s.ok())
    return s;

  // Load the code from an anonymous in-memory file.
  auto handle = std::make_unique<CodeHandle>();
  std::string memName = "hag:" + baseName(source);
  handle->fd = ::memfd_create(memName.c_str(), MFD_CLOEXEC);
  if (handle->fd < 0)
    return makeError(source, ": cannot create an in-memory file for the code ",
                     "(memfd_create: ", errnoMessage(errno), ")");
  if (Status s = writeAll(handle->fd, code, codeSize); !s.ok())
    return makeError(source,
                     ": cannot write the code to memory: ", s.message());
  // A name dlopen already knows would return that object instead of ours
  // (an object that could not be unloaded, e.g. one linked with -z nodelete,
  // keeps its name); move to another descriptor number until it is fresh.
  for (int attempt = 0;; ++attempt) {
    handle->dlName = strCat("/proc/self/fd/", handle->fd);
    void *stale = ::dlopen(handle->dlName.c_str(), RTLD_NOLOAD | RTLD_LAZY);
    if (!stale)
      break;
    ::dlclose(stale);
    int other = ::fcntl(handle->fd, F_DUPFD_CLOEXEC, handle->fd + 1);
    if (other < 0 || attempt == 4096) {
      if (other >= 0)
        ::close(other);
      return makeError(source,
                       ": cannot find a fresh name to load the code under");
    }
    // Keep the old descriptor open until we are done, so dup does not
    // hand the same number back; it is closed below.
    int old = handle->fd;
    handle->fd = other;
    ::close(old);
  }
  ::dlerror(); // clear
  handle->handle = ::dlopen(handle->dlName.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle->handle) {
    std::string why = lastDlError();
    // A parallel artifact's code calls the runtime's collective, which it
    // finds only in a program that exports its symbols.
    if (why.find("hag_all_reduce_f32") != std::string::npos)
      return makeError(source, ": cannot load the code: ", why,
                       " (a parallel artifact needs the program that loads "
                       "it to export the runtime's hag_all_reduce_f32: link "
                       "it with -rdynamic, or run it with hag-run)");
    return makeError(source, ": cannot load the code: ", why);
  }

  for (ArtifactEntry &e : a.info.entries) {
    ::dlerror();
    void *addr = ::dlsym(handle->handle, e.symbol.c_str());
    Dl_info where;
    // dlsym also searches the object's dependencies (libc, libm): accept
    // only a definition inside the artifact's own code.
    if (addr && (!::dladdr(addr, &where) || !where.dli_fname ||
                 handle->dlName != where.dli_fname))
      addr = nullptr;
    if (!addr)
      return makeError(source, ": the code has no symbol ", quoted(e.symbol),
                       " (entry ", quoted(e.name), ")");
    e.address = addr;
  }
  a.code = std::move(handle);
  return a;
}
