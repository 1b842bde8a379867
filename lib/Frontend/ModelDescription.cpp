//===- ModelDescription.cpp - Read the YAML model description -------------===//
//
// Reads the model description of shared/design/interfaces.md with LLVM's YAML
// parser. The document is first copied into a small tree that keeps every
// node's location, so that keys can be looked up in any order (`kind` decides
// which other keys are valid) while every error still points at the text that
// caused it, as `file:line:col: error: ...`.
//
//===----------------------------------------------------------------------===//

#include "hag/Frontend/ModelDescription.h"
#include "hag/Analysis/PyramidParams.h"
#include "hag/Analysis/PyramidWindows.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/YAMLParser.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

using llvm::ArrayRef;
using llvm::SMLoc;
using llvm::StringRef;
using llvm::Twine;

namespace hag {
namespace {

/// Sizes (widths, counts, lengths) are capped so that products of a few of
/// them cannot overflow 64-bit shape arithmetic downstream.
constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();
constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
/// Our schema nests three levels deep; anything much deeper is a mistake, and
/// the limit keeps the recursive copy below from exhausting the stack.
constexpr unsigned kMaxNesting = 16;

//===----------------------------------------------------------------------===//
// A YAML tree that keeps locations
//===----------------------------------------------------------------------===//

struct YamlEntry;

/// One YAML node, copied out of llvm::yaml's single-pass parser.
struct YamlValue {
  enum class Kind { Null, Scalar, Mapping, Sequence };
  Kind kind = Kind::Null;
  /// Where the node starts; for a non-scalar value, where its key starts.
  SMLoc loc;
  /// A scalar's text with quotes and escapes resolved.
  std::string text;
  /// A mapping's entries, in document order.
  std::vector<YamlEntry> entries;
  /// A sequence's items.
  std::vector<YamlValue> items;

  bool isScalar() const { return kind == Kind::Scalar; }
  bool isMapping() const { return kind == Kind::Mapping; }
  bool isSequence() const { return kind == Kind::Sequence; }

  /// What the node is, for "got ..." in messages: the scalar text in quotes,
  /// or "a mapping", "a sequence", "nothing".
  std::string describe() const {
    switch (kind) {
    case Kind::Null:
      return "nothing";
    case Kind::Scalar:
      return "'" + text + "'";
    case Kind::Mapping:
      return "a mapping";
    case Kind::Sequence:
      return "a sequence";
    }
    return "?";
  }
};

/// One `key: value` pair of a mapping.
struct YamlEntry {
  std::string key;
  SMLoc keyLoc;
  YamlValue value;
};

//===----------------------------------------------------------------------===//
// Diagnostics
//===----------------------------------------------------------------------===//

/// Prints errors through the SourceMgr, so they read `file:line:col: error:`.
class Diagnostics {
public:
  explicit Diagnostics(llvm::SourceMgr &sourceMgr) : sourceMgr(sourceMgr) {}

  /// Reports an error at `loc`. Always returns false, so that readers can
  /// `return diag.error(...)`.
  bool error(SMLoc loc, const Twine &message) const {
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Error, message);
    return false;
  }

  /// Attaches a note at `loc` to the error just reported.
  void note(SMLoc loc, const Twine &message) const {
    sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Note, message);
  }

private:
  llvm::SourceMgr &sourceMgr;
};

//===----------------------------------------------------------------------===//
// Copying llvm::yaml nodes into the tree
//===----------------------------------------------------------------------===//

/// Walks a document of an llvm::yaml::Stream and copies it into YamlValues.
/// The stream prints its own syntax errors through the SourceMgr; this class
/// adds the errors for YAML features the description does not use.
class TreeBuilder {
public:
  /// `start` is where errors without a better location point.
  TreeBuilder(Diagnostics &diag, llvm::yaml::Stream &stream, SMLoc start)
      : diag(diag), stream(stream), lastLoc(start) {}

  /// Copies `node` into `out`. Returns false after an error.
  bool build(llvm::yaml::Node *node, YamlValue &out, unsigned depth = 0) {
    if (!checkNode(node))
      return false;
    out.loc = lastLoc = node->getSourceRange().Start;
    if (depth > kMaxNesting)
      return diag.error(out.loc, "the model description nests deeper than " +
                                     Twine(kMaxNesting) + " levels");

    if (auto *scalar = llvm::dyn_cast<llvm::yaml::ScalarNode>(node)) {
      llvm::SmallString<32> storage;
      out.kind = YamlValue::Kind::Scalar;
      out.text = scalar->getValue(storage).str();
      return !stream.failed();
    }
    if (auto *block = llvm::dyn_cast<llvm::yaml::BlockScalarNode>(node)) {
      out.kind = YamlValue::Kind::Scalar;
      out.text = block->getValue().str();
      return !stream.failed();
    }
    if (llvm::isa<llvm::yaml::NullNode>(node)) {
      out.kind = YamlValue::Kind::Null;
      return true;
    }
    if (auto *mapping = llvm::dyn_cast<llvm::yaml::MappingNode>(node)) {
      out.kind = YamlValue::Kind::Mapping;
      for (llvm::yaml::KeyValueNode &pair : *mapping)
        if (!buildEntry(pair, out, depth))
          return false;
      return !stream.failed();
    }
    if (auto *sequence = llvm::dyn_cast<llvm::yaml::SequenceNode>(node)) {
      out.kind = YamlValue::Kind::Sequence;
      for (llvm::yaml::Node &item : *sequence) {
        out.items.emplace_back();
        if (!build(&item, out.items.back(), depth + 1))
          return false;
      }
      return !stream.failed();
    }
    if (auto *alias = llvm::dyn_cast<llvm::yaml::AliasNode>(node)) {
      // The node's own location is the token after it; the name follows '*'.
      SMLoc star = SMLoc::getFromPointer(alias->getName().data() - 1);
      return diag.error(star, "YAML aliases are not supported in the model "
                              "description");
    }
    return diag.error(out.loc, "unexpected YAML node");
  }

private:
  /// False when the parser gave up on `node`. It prints its own message for
  /// syntax errors, but not for everything it rejects (an unknown directive
  /// such as `%FOO` gives a null root and no message).
  bool checkNode(llvm::yaml::Node *node) {
    if (stream.failed())
      return false;
    if (!node)
      return diag.error(lastLoc, "malformed YAML");
    return true;
  }

  /// Appends one `key: value` pair of a mapping to `mapping.entries`.
  bool buildEntry(llvm::yaml::KeyValueNode &pair, YamlValue &mapping,
                  unsigned depth) {
    llvm::yaml::Node *keyNode = pair.getKey();
    if (!checkNode(keyNode))
      return false;
    auto *scalarKey = llvm::dyn_cast<llvm::yaml::ScalarNode>(keyNode);
    if (!scalarKey)
      return diag.error(pair.getSourceRange().Start,
                        "expected a plain name as a mapping key");
    YamlEntry entry;
    llvm::SmallString<32> storage;
    entry.key = scalarKey->getValue(storage).str();
    entry.keyLoc = keyNode->getSourceRange().Start;
    if (!build(pair.getValue(), entry.value, depth + 1))
      return false;
    // The parser places an empty value, a flow mapping and a flow sequence
    // at the token after their start (for an empty value, often on another
    // line); the key is the better place to point at.
    if (!entry.value.isScalar())
      entry.value.loc = entry.keyLoc;
    mapping.entries.push_back(std::move(entry));
    return true;
  }

  Diagnostics &diag;
  llvm::yaml::Stream &stream;
  /// The start of the last node visited.
  SMLoc lastLoc;
};

//===----------------------------------------------------------------------===//
// Scalar conversions
//===----------------------------------------------------------------------===//

enum class IntParse { Ok, NotAnInteger, OutOfRange };

/// Parses a decimal integer with an optional sign and nothing else around it.
IntParse parseInteger(StringRef text, int64_t &value) {
  StringRef digits = text;
  if (digits.starts_with("+") || digits.starts_with("-"))
    digits = digits.drop_front();
  if (digits.empty() || !llvm::all_of(digits, llvm::isDigit))
    return IntParse::NotAnInteger;
  StringRef signedDigits = text.starts_with("+") ? digits : text;
  // getAsInteger fails here only when the value does not fit.
  if (signedDigits.getAsInteger(10, value))
    return IntParse::OutOfRange;
  return IntParse::Ok;
}

/// Inclusive bounds on an integer key, and how to word a violation.
struct IntBounds {
  int64_t min;
  int64_t max = kMaxInt64;
  /// Word a violation as "in [min, max]" rather than ">= min" or "<= max".
  bool interval = false;
};

/// The bounds of a size: at least `min`, at most kMaxSize.
IntBounds sizeAtLeast(int64_t min) { return {min, kMaxSize}; }

/// What a real-valued key must satisfy (every real must also be finite).
enum class RealBounds { Positive, NonNegative, UnitInterval, AboveOne };

bool satisfies(double value, RealBounds bounds) {
  switch (bounds) {
  case RealBounds::Positive:
    return value > 0;
  case RealBounds::NonNegative:
    return value >= 0;
  case RealBounds::UnitInterval:
    return value >= 0 && value < 1;
  case RealBounds::AboveOne:
    return value > 1;
  }
  return false;
}

const char *describeBounds(RealBounds bounds) {
  switch (bounds) {
  case RealBounds::Positive:
    return "> 0";
  case RealBounds::NonNegative:
    return ">= 0";
  case RealBounds::UnitInterval:
    return "in [0, 1)";
  case RealBounds::AboveOne:
    return "> 1";
  }
  return "?";
}

/// True when base^exponent fits in an int64_t (base >= 1, exponent >= 0).
bool powerFits(int64_t base, int64_t exponent) {
  int64_t power = 1;
  for (int64_t i = 0; i < exponent; ++i) {
    if (power > kMaxInt64 / base)
      return false;
    power *= base;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// SectionReader
//===----------------------------------------------------------------------===//

/// Reads the keys of one mapping of the description (the top level, `model`,
/// `train.optimizer`, ...). It checks that every key is allowed and given once
/// and that the required keys are there, then converts values key by key; the
/// value readers leave their output untouched when the key is absent, so the
/// defaults of the struct being filled stay in place.
class SectionReader {
public:
  /// `path` is the section's dotted name ("" for the top level); `nameLoc` is
  /// where errors about the section as a whole point (its key).
  SectionReader(Diagnostics &diag, const YamlValue &mapping, std::string path,
                SMLoc nameLoc)
      : diag(diag), mapping(mapping), path(std::move(path)), nameLoc(nameLoc) {}

  /// Checks that every key is one of `allowed` and that no key repeats.
  bool checkKeys(ArrayRef<StringRef> allowed) const {
    for (auto it = mapping.entries.begin(); it != mapping.entries.end(); ++it) {
      if (!llvm::is_contained(allowed, StringRef(it->key)))
        return diag.error(
            it->keyLoc, "unknown key '" + it->key + "' " + where() +
                            "; expected one of: " + llvm::join(allowed, ", "));
      auto first = llvm::find_if(mapping.entries, [&](const YamlEntry &e) {
        return e.key == it->key;
      });
      if (first != it) {
        diag.error(it->keyLoc, "duplicate key '" + it->key + "' " + where());
        diag.note(first->keyLoc, "first given here");
        return false;
      }
    }
    return true;
  }

  /// Checks that every key of `required` is given.
  bool checkRequired(ArrayRef<StringRef> required) const {
    for (StringRef key : required)
      if (!has(key))
        return diag.error(nameLoc,
                          "missing required key '" + key + "' " + where());
    return true;
  }

  bool has(StringRef key) const { return lookup(key) != nullptr; }

  const YamlEntry *lookup(StringRef key) const {
    auto it = llvm::find_if(mapping.entries,
                            [&](const YamlEntry &e) { return e.key == key; });
    return it == mapping.entries.end() ? nullptr : &*it;
  }

  /// Where a value error about `key` points: its value, or this section's
  /// name when the key is absent (its default is in use).
  SMLoc valueLoc(StringRef key) const {
    const YamlEntry *entry = lookup(key);
    return entry ? entry->value.loc : nameLoc;
  }

  SMLoc keyLoc(StringRef key) const {
    const YamlEntry *entry = lookup(key);
    return entry ? entry->keyLoc : nameLoc;
  }

  SMLoc getNameLoc() const { return nameLoc; }

  /// The dotted name of `key` in this section, as messages quote it.
  std::string qualify(StringRef key) const {
    return path.empty() ? key.str() : path + "." + key.str();
  }

  /// Reads an integer key within `bounds`.
  bool readInt(StringRef key, int64_t &out, IntBounds bounds) const {
    const YamlEntry *entry = lookup(key);
    if (!entry)
      return true;
    const YamlValue &value = entry->value;
    int64_t parsed = 0;
    IntParse status = value.isScalar() ? parseInteger(value.text, parsed)
                                       : IntParse::NotAnInteger;
    if (status == IntParse::NotAnInteger)
      return diag.error(value.loc, "expected an integer for '" + qualify(key) +
                                       "', got " + value.describe());
    if (status == IntParse::OutOfRange)
      return diag.error(value.loc, "integer " + value.describe() + " for '" +
                                       qualify(key) +
                                       "' does not fit in 64 bits");
    if (parsed < bounds.min || parsed > bounds.max) {
      std::string range;
      if (bounds.interval)
        range = "in [" + std::to_string(bounds.min) + ", " +
                std::to_string(bounds.max) + "]";
      else if (parsed < bounds.min)
        range = ">= " + std::to_string(bounds.min);
      else
        range = "<= " + std::to_string(bounds.max);
      return diag.error(value.loc, "'" + qualify(key) + "' must be " + range +
                                       ", got " + value.text);
    }
    out = parsed;
    return true;
  }

  /// Reads a finite real-valued key within `bounds`.
  bool readReal(StringRef key, double &out, RealBounds bounds) const {
    const YamlEntry *entry = lookup(key);
    return !entry || convertReal(entry->value, qualify(key), out, bounds);
  }

  /// Converts `value` to a finite real within `bounds`; `name` is how
  /// messages refer to it.
  bool convertReal(const YamlValue &value, const std::string &name, double &out,
                   RealBounds bounds) const {
    double parsed = 0;
    if (!value.isScalar() || StringRef(value.text).getAsDouble(parsed))
      return diag.error(value.loc, "expected a number for '" + name +
                                       "', got " + value.describe());
    if (!std::isfinite(parsed))
      return diag.error(value.loc, "expected a finite number for '" + name +
                                       "', got " + value.describe());
    if (!satisfies(parsed, bounds))
      return diag.error(value.loc, "'" + name + "' must be " +
                                       describeBounds(bounds) + ", got " +
                                       value.text);
    out = parsed;
    return true;
  }

  /// Reads a boolean key: true/false (also True/False, TRUE/FALSE).
  bool readBool(StringRef key, bool &out) const {
    const YamlEntry *entry = lookup(key);
    if (!entry)
      return true;
    const YamlValue &value = entry->value;
    if (value.isScalar()) {
      StringRef text = value.text;
      if (text == "true" || text == "True" || text == "TRUE") {
        out = true;
        return true;
      }
      if (text == "false" || text == "False" || text == "FALSE") {
        out = false;
        return true;
      }
    }
    return diag.error(value.loc, "expected true or false for '" + qualify(key) +
                                     "', got " + value.describe());
  }

  /// Reads a key whose value is one of `choices`.
  bool readChoice(StringRef key, ArrayRef<StringRef> choices,
                  std::string &out) const {
    const YamlEntry *entry = lookup(key);
    if (!entry)
      return true;
    const YamlValue &value = entry->value;
    if (!value.isScalar() ||
        !llvm::is_contained(choices, StringRef(value.text)))
      return diag.error(
          value.loc, "expected one of " + llvm::join(choices, ", ") + " for '" +
                         qualify(key) + "', got " + value.describe());
    out = value.text;
    return true;
  }

  /// Reads a non-empty string key.
  bool readString(StringRef key, std::string &out) const {
    const YamlEntry *entry = lookup(key);
    if (!entry)
      return true;
    const YamlValue &value = entry->value;
    if (!value.isScalar() || value.text.empty())
      return diag.error(value.loc, "expected a non-empty string for '" +
                                       qualify(key) + "', got " +
                                       value.describe());
    out = value.text;
    return true;
  }

  /// Opens the nested mapping `key` as a reader with `allowed` keys. `out` is
  /// left empty when the key is absent.
  bool readSection(StringRef key, ArrayRef<StringRef> allowed,
                   std::optional<SectionReader> &out) const {
    const YamlEntry *entry = lookup(key);
    if (!entry)
      return true;
    if (!entry->value.isMapping())
      return diag.error(entry->value.loc, "expected a mapping for '" +
                                              qualify(key) + "', got " +
                                              entry->value.describe());
    out.emplace(diag, entry->value, qualify(key), entry->keyLoc);
    return out->checkKeys(allowed);
  }

private:
  /// "in 'model'" or "at the top level".
  std::string where() const {
    return path.empty() ? "at the top level" : "in '" + path + "'";
  }

  Diagnostics &diag;
  const YamlValue &mapping;
  std::string path;
  SMLoc nameLoc;
};

//===----------------------------------------------------------------------===//
// The description, section by section
//===----------------------------------------------------------------------===//

const StringRef kTopLevelKeys[] = {"model", "attention", "train", "parallel",
                                   "target"};
const StringRef kModelKeys[] = {
    "kind",       "vocab",   "d_model",        "layers", "heads",    "kv_heads",
    "mlp_hidden", "max_seq", "tie_embeddings", "rope",   "rope_base"};
const StringRef kModelRequiredKeys[] = {"kind", "d_model", "heads"};
const StringRef kLMOnlyKeys[] = {"vocab", "layers", "mlp_hidden",
                                 "tie_embeddings"};
const StringRef kModelKinds[] = {"lm", "attention"};
const StringRef kAttentionKeys[] = {
    "block",  "ratio",     "levels",   "window", "summary", "compress",
    "causal", "mass_bias", "select_k", "gate",   "eps",     "local_only"};
const StringRef kGateKeys[] = {"temperature", "hidden"};
const StringRef kCompressModes[] = {"gated_mean", "max", "conv"};
const StringRef kTrainKeys[] = {"precision",  "batch",     "seq",
                                "steps",      "optimizer", "loss_scale",
                                "checkpoint", "seed",      "sampling"};
const StringRef kPrecisions[] = {"fp32", "bf16-mixed", "fp16-mixed"};
const StringRef kOptimizerKeys[] = {"lr",     "betas",    "eps", "weight_decay",
                                    "warmup", "schedule", "clip"};
const StringRef kSchedules[] = {"constant", "cosine"};
const StringRef kSamplings[] = {"random", "examples"};
const StringRef kLossScaleKeys[] = {"init", "growth_interval"};
const StringRef kCheckpointKeys[] = {"every", "dir"};
const StringRef kParallelKeys[] = {"tensor", "pipeline", "data",
                                   "microbatches"};
const StringRef kTargetKeys[] = {"device", "gpu_arch"};
const StringRef kDevices[] = {"cpu", "cuda"};
const StringRef kGpuArchs[] = {"sm_80", "sm_90a"};

/// Fills a ModelDescription from the top-level mapping, section by section,
/// then checks the rules that tie sections together.
class DescriptionReader {
public:
  DescriptionReader(Diagnostics &diag, const YamlValue &root)
      : diag(diag), top(diag, root, "", root.loc) {}

  bool read(ModelDescription &md) {
    if (!top.checkKeys(kTopLevelKeys) || !top.checkRequired({"model"}))
      return false;
    std::optional<SectionReader> model, attention, train, parallel, target;
    if (!top.readSection("model", kModelKeys, model) || !readModel(*model, md))
      return false;
    if (!top.readSection("attention", kAttentionKeys, attention) ||
        !readAttention(*model, attention, md))
      return false;
    if (!top.readSection("train", kTrainKeys, train) ||
        (train && !readTrain(*train, md)))
      return false;
    if (!top.readSection("parallel", kParallelKeys, parallel) ||
        (parallel && !readParallel(*parallel, md)))
      return false;
    return top.readSection("target", kTargetKeys, target) &&
           (!target || readTarget(*target, md));
  }

private:
  bool readModel(const SectionReader &model, ModelDescription &md) {
    if (!model.checkRequired(kModelRequiredKeys))
      return false;
    std::string kind;
    if (!model.readChoice("kind", kModelKinds, kind))
      return false;
    md.kind = kind == "lm" ? ModelKind::LM : ModelKind::Attention;
    if (md.kind == ModelKind::Attention)
      for (StringRef key : kLMOnlyKeys)
        if (model.has(key))
          return diag.error(model.keyLoc(key), "'" + model.qualify(key) +
                                                   "' is only valid for "
                                                   "kind: lm");

    PyramidParams &p = md.attention;
    if (!model.readInt("d_model", md.dModel, sizeAtLeast(1)) ||
        !model.readInt("heads", p.heads, sizeAtLeast(1)))
      return false;
    if (md.dModel % p.heads != 0)
      return diag.error(model.valueLoc("heads"),
                        "'model.heads' (" + Twine(p.heads) +
                            ") must divide 'model.d_model' (" +
                            Twine(md.dModel) + ")");
    p.headDim = md.dModel / p.heads;
    p.kvHeads = p.heads;
    if (!model.readInt("kv_heads", p.kvHeads, sizeAtLeast(1)))
      return false;
    if (p.heads % p.kvHeads != 0)
      return diag.error(model.valueLoc("kv_heads"),
                        "'model.kv_heads' (" + Twine(p.kvHeads) +
                            ") must divide 'model.heads' (" + Twine(p.heads) +
                            ")");

    if (!model.readInt("vocab", md.vocab, sizeAtLeast(2)) ||
        !model.readInt("layers", md.layers, sizeAtLeast(1)) ||
        !model.readInt("mlp_hidden", md.mlpHidden, sizeAtLeast(1)) ||
        !model.readInt("max_seq", p.maxSeq, sizeAtLeast(1)) ||
        !model.readBool("tie_embeddings", md.tieEmbeddings) ||
        !model.readBool("rope", md.rope) ||
        !model.readReal("rope_base", md.ropeBase, RealBounds::AboveOne))
      return false;
    // Rotate-half RoPE pairs element j with j + d/2 (spec section 3).
    if (md.rope && p.headDim % 2 != 0) {
      SMLoc loc =
          model.has("rope") ? model.valueLoc("rope") : model.valueLoc("heads");
      return diag.error(loc, "rope needs an even head dim, but 'model.d_model' "
                             "/ 'model.heads' = " +
                                 Twine(p.headDim) +
                                 "; change 'model.heads' or set 'model.rope' "
                                 "to false");
    }
    return true;
  }

  bool readAttention(const SectionReader &model,
                     const std::optional<SectionReader> &attention,
                     ModelDescription &md) {
    PyramidParams &p = md.attention;
    if (attention && !readAttentionKeys(*attention, md))
      return false;

    // Every level's token span must stay within 64-bit arithmetic.
    auto checkSpan = [&](int64_t levels) {
      if (powerFits(p.ratio, levels - 1))
        return true;
      SMLoc loc = !attention                 ? model.getNameLoc()
                  : attention->has("levels") ? attention->valueLoc("levels")
                                             : attention->valueLoc("ratio");
      return diag.error(loc, "'attention.ratio' (" + Twine(p.ratio) +
                                 ") to the power levels - 1 (" +
                                 Twine(levels - 1) +
                                 ") overflows 64-bit integers; use fewer "
                                 "levels or a smaller ratio");
    };
    if (!p.isAutoLevels() && !checkSpan(p.levels))
      return false;
    if (p.isAutoLevels()) {
      int64_t levels = resolveLevels(p, p.maxSeq);
      if (levels < 0)
        return diag.error(
            attention->valueLoc("levels"),
            "'attention.levels: auto' needs more than " + Twine(kMaxLevels) +
                " levels at 'model.max_seq' (" + Twine(p.maxSeq) +
                ") with block " + Twine(p.block) + ", ratio " + Twine(p.ratio) +
                " and window " + Twine(p.window) +
                "; give a larger ratio or window, or a smaller max_seq");
      if (!checkSpan(levels))
        return false;
    }

    // The last line of defence: the analysis library's own checks.
    std::string problem = validatePyramidParams(p);
    if (!problem.empty())
      return diag.error(attention ? attention->getNameLoc()
                                  : model.getNameLoc(),
                        "invalid pyramid attention configuration: " + problem);
    return true;
  }

  bool readAttentionKeys(const SectionReader &attention, ModelDescription &md) {
    PyramidParams &p = md.attention;
    if (!attention.readInt("ratio", p.ratio, sizeAtLeast(2)) ||
        !attention.readInt("block", p.block, sizeAtLeast(1)))
      return false;
    if (p.block % p.ratio != 0)
      return diag.error(attention.has("block") ? attention.valueLoc("block")
                                               : attention.valueLoc("ratio"),
                        "'attention.block' (" + Twine(p.block) +
                            ") must be a multiple of 'attention.ratio' (" +
                            Twine(p.ratio) + ")");
    if (!readLevels(attention, p.levels))
      return false;

    std::string compress;
    if (!attention.readInt("window", p.window, sizeAtLeast(1)) ||
        !attention.readInt("summary", p.summary,
                           {1, kMaxSummary, /*interval=*/true}) ||
        !attention.readChoice("compress", kCompressModes, compress) ||
        !attention.readBool("causal", p.causal) ||
        !attention.readReal("mass_bias", p.massBias, RealBounds::NonNegative) ||
        !attention.readInt("select_k", p.selectK, sizeAtLeast(0)) ||
        !attention.readReal("eps", p.eps, RealBounds::Positive) ||
        !attention.readBool("local_only", p.localOnly))
      return false;
    if (!compress.empty())
      parseCompress(compress, p.compress);

    std::optional<SectionReader> gate;
    if (!attention.readSection("gate", kGateKeys, gate))
      return false;
    return !gate || (gate->readReal("temperature", p.temperature,
                                    RealBounds::Positive) &&
                     gate->readInt("hidden", md.gateHidden, sizeAtLeast(1)));
  }

  /// `levels`: an integer in [kMinLevels, kMaxLevels] or `auto`.
  bool readLevels(const SectionReader &attention, int64_t &levels) {
    const YamlEntry *entry = attention.lookup("levels");
    if (!entry)
      return true;
    const YamlValue &value = entry->value;
    if (value.isScalar() && value.text == "auto") {
      levels = kAutoLevels;
      return true;
    }
    int64_t parsed = 0;
    bool isInteger =
        value.isScalar() && parseInteger(value.text, parsed) == IntParse::Ok;
    if (!isInteger || parsed < kMinLevels || parsed > kMaxLevels)
      return diag.error(value.loc,
                        "'attention.levels' must be an integer in [" +
                            Twine(kMinLevels) + ", " + Twine(kMaxLevels) +
                            "] or auto, got " +
                            (isInteger ? value.text : value.describe()));
    levels = parsed;
    return true;
  }

  bool readTrain(const SectionReader &train, ModelDescription &md) {
    TrainConfig &config = md.train.emplace();
    if (!train.readChoice("precision", kPrecisions, config.precision) ||
        !train.readInt("batch", config.batch, sizeAtLeast(1)) ||
        !train.readInt("seq", config.seq, sizeAtLeast(1)) ||
        !train.readInt("steps", config.steps, {1}) ||
        !train.readInt("seed", config.seed, {0}) ||
        !train.readChoice("sampling", kSamplings, config.sampling))
      return false;
    int64_t maxSeq = md.attention.maxSeq;
    // A training window holds seq + 1 tokens (seq predictions), and the
    // model reads at most max_seq.
    if (config.seq >= maxSeq) {
      if (train.has("seq"))
        return diag.error(train.valueLoc("seq"),
                          "'train.seq' (" + Twine(config.seq) +
                              ") must be below 'model.max_seq' (" +
                              Twine(maxSeq) +
                              "): a training window holds seq + 1 tokens");
      return diag.error(train.getNameLoc(),
                        "'train.seq' defaults to " + Twine(config.seq) +
                            ", not below 'model.max_seq' (" + Twine(maxSeq) +
                            "); give 'train.seq'");
    }

    std::optional<SectionReader> optimizer, lossScale, checkpoint;
    if (!train.readSection("optimizer", kOptimizerKeys, optimizer) ||
        (optimizer && !readOptimizer(*optimizer, config)))
      return false;
    if (!train.readSection("loss_scale", kLossScaleKeys, lossScale) ||
        (lossScale &&
         (!lossScale->readReal("init", config.lossScaleInit,
                               RealBounds::Positive) ||
          !lossScale->readInt("growth_interval", config.lossScaleGrowthInterval,
                              {1}))))
      return false;
    return train.readSection("checkpoint", kCheckpointKeys, checkpoint) &&
           (!checkpoint ||
            (checkpoint->readInt("every", config.checkpointEvery, {1}) &&
             checkpoint->readString("dir", config.checkpointDir)));
  }

  bool readOptimizer(const SectionReader &optimizer, TrainConfig &config) {
    if (!optimizer.readReal("lr", config.lr, RealBounds::Positive) ||
        !readBetas(optimizer, config.betas) ||
        !optimizer.readReal("eps", config.adamEps, RealBounds::Positive) ||
        !optimizer.readReal("weight_decay", config.weightDecay,
                            RealBounds::NonNegative) ||
        !optimizer.readInt("warmup", config.warmup, {0}) ||
        !optimizer.readChoice("schedule", kSchedules, config.schedule))
      return false;
    return optimizer.readReal("clip", config.clip, RealBounds::Positive);
  }

  /// `betas`: a sequence of two numbers in [0, 1).
  bool readBetas(const SectionReader &optimizer, std::array<double, 2> &betas) {
    const YamlEntry *entry = optimizer.lookup("betas");
    if (!entry)
      return true;
    const YamlValue &value = entry->value;
    std::string name = optimizer.qualify("betas");
    if (!value.isSequence() || value.items.size() != 2)
      return diag.error(value.loc,
                        "expected a sequence of two numbers for '" + name +
                            "', got " +
                            (value.isSequence()
                                 ? std::to_string(value.items.size()) + " items"
                                 : value.describe()));
    for (size_t i = 0; i < 2; ++i)
      if (!optimizer.convertReal(value.items[i],
                                 name + "[" + std::to_string(i) + "]", betas[i],
                                 RealBounds::UnitInterval))
        return false;
    return true;
  }

  bool readParallel(const SectionReader &parallel, ModelDescription &md) {
    ParallelConfig &config = md.parallel.emplace();
    if (!parallel.readInt("tensor", config.tensor, sizeAtLeast(1)) ||
        !parallel.readInt("pipeline", config.pipeline, sizeAtLeast(1)) ||
        !parallel.readInt("data", config.data, sizeAtLeast(1)) ||
        !parallel.readInt("microbatches", config.microbatches, sizeAtLeast(1)))
      return false;

    // Tensor parallelism splits heads and the MLP's hidden units (spec 9).
    const PyramidParams &p = md.attention;
    auto checkTensorDivides = [&](int64_t size, const Twine &what) {
      if (size % config.tensor == 0)
        return true;
      return diag.error(parallel.valueLoc("tensor"),
                        "'parallel.tensor' (" + Twine(config.tensor) +
                            ") must divide " + what + " (" + Twine(size) + ")");
    };
    if (!checkTensorDivides(p.heads, "'model.heads'") ||
        !checkTensorDivides(p.kvHeads, "'model.kv_heads'"))
      return false;
    if (md.kind == ModelKind::LM &&
        !checkTensorDivides(md.resolvedMlpHidden(), "the MLP hidden size"))
      return false;

    // Pipeline stages split each replica's share into micro-batches.
    if (config.pipeline > 1) {
      int64_t batch = md.train ? md.train->batch : TrainConfig().batch;
      if (batch % (config.data * config.microbatches) != 0)
        return diag.error(parallel.valueLoc("microbatches"),
                          "'parallel.data' x 'parallel.microbatches' (" +
                              Twine(config.data * config.microbatches) +
                              ") must divide 'train.batch' (" + Twine(batch) +
                              "): every micro-batch has the same rows");
    }
    // Data-parallel replicas each take an equal share of the global batch.
    if (config.data > 1) {
      int64_t batch = md.train ? md.train->batch : TrainConfig().batch;
      if (batch % config.data != 0)
        return diag.error(parallel.valueLoc("data"),
                          "'parallel.data' (" + Twine(config.data) +
                              ") must divide 'train.batch' (" + Twine(batch) +
                              "): each replica trains on an equal share of "
                              "the batch");
    }

    // Pipeline stages hold at least one layer each.
    int64_t layers = md.kind == ModelKind::LM ? md.layers : 1;
    if (config.pipeline > layers)
      return diag.error(parallel.valueLoc("pipeline"),
                        "'parallel.pipeline' (" + Twine(config.pipeline) +
                            ") must be <= the number of layers (" +
                            Twine(layers) + ")");
    return true;
  }

  bool readTarget(const SectionReader &target, ModelDescription &md) {
    return target.readChoice("device", kDevices, md.target.device) &&
           target.readChoice("gpu_arch", kGpuArchs, md.target.gpuArch);
  }

  Diagnostics &diag;
  SectionReader top;
};

} // namespace

std::optional<ModelDescription>
parseModelDescription(llvm::SourceMgr &sourceMgr, unsigned bufferId) {
  Diagnostics diag(sourceMgr);
  const llvm::MemoryBuffer *buffer = sourceMgr.getMemoryBuffer(bufferId);
  SMLoc bufferStart = SMLoc::getFromPointer(buffer->getBufferStart());

  // The stream prints its syntax errors through `sourceMgr` itself.
  llvm::yaml::Stream stream(buffer->getMemBufferRef(), sourceMgr);
  auto reportEmpty = [&] {
    diag.error(bufferStart, "the model description is empty; expected a "
                            "mapping with at least a 'model' key");
    return std::nullopt;
  };
  llvm::yaml::document_iterator document = stream.begin();
  if (document == stream.end())
    return reportEmpty();

  YamlValue root;
  if (!TreeBuilder(diag, stream, bufferStart).build(document->getRoot(), root))
    return std::nullopt;
  ++document;
  if (stream.failed())
    return std::nullopt;
  if (document != stream.end()) {
    llvm::yaml::Node *next = document->getRoot();
    if (stream.failed())
      return std::nullopt;
    diag.error(next ? next->getSourceRange().Start : bufferStart,
               "expected a single YAML document in the model description");
    return std::nullopt;
  }

  if (root.kind == YamlValue::Kind::Null)
    return reportEmpty();
  if (!root.isMapping()) {
    diag.error(root.loc, "expected a mapping at the top level of the model "
                         "description, got " +
                             root.describe());
    return std::nullopt;
  }

  ModelDescription md;
  if (!DescriptionReader(diag, root).read(md))
    return std::nullopt;
  return md;
}

} // namespace hag
