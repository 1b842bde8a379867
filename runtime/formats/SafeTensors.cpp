//===- SafeTensors.cpp - safetensors weights files ------------------------===//

#include "hag/runtime/SafeTensors.h"

#include <functional>

#include "formats/Json.h"
#include "hag/runtime/FileIO.h"
#include "support/StringUtil.h"

#include <algorithm>
#include <cstring>

using namespace hag::rt;
using namespace hag::rt::detail;

static constexpr const char *kMetadataKey = "__metadata__";

/// The safetensors dtype names hagrt reads and writes.
static const char *safeTensorsDTypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "F32";
  case DType::F64:
    return "F64";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::I32:
    return "I32";
  case DType::I64:
    return "I64";
  case DType::U16:
    return "U16";
  case DType::U32:
    return "U32";
  case DType::U8:
    return "U8";
  case DType::BOOL:
    return "BOOL";
  }
  return "?";
}

static std::optional<DType> parseSafeTensorsDType(std::string_view name) {
  for (DType d : kAllDTypes)
    if (name == safeTensorsDTypeName(d))
      return d;
  return std::nullopt;
}

/// Dtypes of the format that hagrt does not represent.
static bool isKnownUnsupportedDType(std::string_view name) {
  static const char *const names[] = {"I8",      "I16",     "U64",     "C64",
                                      "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",
                                      "F6_E2M3", "F6_E3M2"};
  for (const char *n : names)
    if (name == n)
      return true;
  return false;
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

namespace {
/// A header entry after validation, before its data is copied.
struct Entry {
  const std::string *name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};
} // namespace

static uint64_t readLE64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

/// Validates one tensor entry of the header.
static Status parseEntry(const std::string &name, const json::Value &v,
                         uint64_t dataSize, Entry &out) {
  std::string what = strCat("tensor ", quoted(name));
  if (!v.isObject())
    return makeError(what, " is ", json::kindName(v.kind),
                     ", expected an object with dtype, shape and "
                     "data_offsets");
  for (const auto &m : v.members)
    if (m.first != "dtype" && m.first != "shape" && m.first != "data_offsets")
      return makeError(what, " has unknown field ", quoted(m.first));
  const json::Value *dtype = v.find("dtype");
  const json::Value *shape = v.find("shape");
  const json::Value *offsets = v.find("data_offsets");
  if (!dtype)
    return makeError(what, " has no dtype");
  if (!shape)
    return makeError(what, " has no shape");
  if (!offsets)
    return makeError(what, " has no data_offsets");

  if (!dtype->isString())
    return makeError(what, " has a dtype that is ", json::kindName(dtype->kind),
                     ", expected a string");
  std::optional<DType> dt = parseSafeTensorsDType(dtype->string);
  if (!dt) {
    if (isKnownUnsupportedDType(dtype->string))
      return makeError(what, " has dtype ", dtype->string,
                       ", which hagrt does not support");
    return makeError(what, " has unknown dtype ", quoted(dtype->string));
  }
  out.dtype = *dt;

  if (!shape->isArray())
    return makeError(what, " has a shape that is ", json::kindName(shape->kind),
                     ", expected an array of integers");
  out.shape.clear();
  for (const json::Value &d : shape->elements) {
    if (!d.isInteger())
      return makeError(what, " has a shape element that is ",
                       json::kindName(d.kind), ", expected an integer");
    out.shape.push_back(d.integer);
  }
  Result<int64_t> numel = checkedNumElements(out.shape, dtypeSize(out.dtype));
  if (!numel.ok())
    return makeError(what, ": ", numel.message());

  if (!offsets->isArray() || offsets->elements.size() != 2 ||
      !offsets->elements[0].isInteger() || !offsets->elements[1].isInteger())
    return makeError(what, " has malformed data_offsets, expected "
                           "[begin, end] integers");
  int64_t begin = offsets->elements[0].integer;
  int64_t end = offsets->elements[1].integer;
  std::string offStr = strCat("data_offsets [", begin, ", ", end, "]");
  if (begin < 0 || end < 0)
    return makeError(what, " has negative ", offStr);
  if (begin > end)
    return makeError(what, " has ", offStr, " with begin after end");
  if (static_cast<uint64_t>(end) > dataSize)
    return makeError(what, " has ", offStr, " past the end of the data (",
                     dataSize, " bytes)");
  uint64_t need = static_cast<uint64_t>(*numel) * dtypeSize(out.dtype);
  if (static_cast<uint64_t>(end - begin) != need)
    return makeError(what, " has ", end - begin, " bytes (", offStr, ") but ",
                     shapeToString(out.shape), " ", dtypeName(out.dtype),
                     " needs ", need);
  out.begin = static_cast<uint64_t>(begin);
  out.end = static_cast<uint64_t>(end);
  return Status::success();
}

static Status parseMetadata(const json::Value &v,
                            std::map<std::string, std::string> &out) {
  if (!v.isObject())
    return makeError("__metadata__ is ", json::kindName(v.kind),
                     ", expected an object of strings");
  for (const auto &m : v.members) {
    if (!m.second.isString())
      return makeError("__metadata__ value for ", quoted(m.first), " is ",
                       json::kindName(m.second.kind), ", expected a string");
    out[m.first] = m.second.string;
  }
  return Status::success();
}

/// Checks that the entries tile [0, dataSize) exactly: no gaps, overlaps or
/// trailing bytes (the reference implementation's rule).
static Status checkCoverage(std::vector<Entry> &entries, uint64_t dataSize) {
  std::sort(entries.begin(), entries.end(), [](const Entry &a, const Entry &b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry *prev = nullptr;
  for (const Entry &e : entries) {
    if (e.begin < covered)
      return makeError("tensor ", quoted(*e.name), " data_offsets [", e.begin,
                       ", ", e.end, "] overlap tensor ", quoted(*prev->name),
                       " [", prev->begin, ", ", prev->end, "]");
    if (e.begin > covered)
      return makeError("data bytes [", covered, ", ", e.begin,
                       ") belong to no tensor");
    covered = e.end;
    prev = &e;
  }
  if (covered != dataSize)
    return makeError(dataSize - covered,
                     " trailing bytes after the last tensor's data");
  return Status::success();
}

static Status parseImpl(const uint8_t *data, size_t size,
                        SafeTensorsFile &result,
                        const std::function<bool(const std::string &)> &keep,
                        const SliceSelector &sliceOf = {}) {
  if (size < 8)
    return makeError("file is ", size,
                     " bytes, too short for the 8-byte header length");
  uint64_t headerLen = readLE64(data);
  if (headerLen > kSafeTensorsMaxHeaderSize)
    return makeError("header length ", headerLen, " exceeds the limit of ",
                     kSafeTensorsMaxHeaderSize, " bytes");
  if (headerLen > size - 8)
    return makeError("header length ", headerLen,
                     " runs past the end of the file (", size, " bytes)");
  if (headerLen == 0 || data[8] != '{')
    return makeError("header does not start with '{'");
  std::string_view header(reinterpret_cast<const char *>(data + 8),
                          static_cast<size_t>(headerLen));
  const uint8_t *payload = data + 8 + headerLen;
  uint64_t dataSize = size - 8 - headerLen;

  Result<json::Value> root = json::parse(header);
  if (!root.ok())
    return makeError("malformed header JSON: ", root.message());
  if (!root->isObject())
    return makeError("header is not a JSON object");

  std::vector<Entry> entries;
  entries.reserve(root->members.size());
  for (const auto &m : root->members) {
    if (m.first == kMetadataKey) {
      if (Status s = parseMetadata(m.second, result.metadata); !s.ok())
        return s;
      continue;
    }
    Entry e;
    e.name = &m.first;
    if (Status s = parseEntry(m.first, m.second, dataSize, e); !s.ok())
      return s;
    entries.push_back(std::move(e));
  }
  if (Status s = checkCoverage(entries, dataSize); !s.ok())
    return s;

  for (const Entry &e : entries) {
    // Every entry is validated; only those kept are copied out (pages of
    // the mapped file that no kept tensor touches are never read).
    if (keep && !keep(*e.name))
      continue;
    TensorSlice part = sliceOf ? sliceOf(*e.name, e.shape) : TensorSlice();
    const size_t rank = e.shape.size();
    const bool sliced =
        part.dim >= 0 && static_cast<size_t>(part.dim) < rank &&
        part.parts > 1 && part.index >= 0 && part.index < part.parts &&
        e.shape[static_cast<size_t>(part.dim)] % part.parts == 0;
    std::vector<int64_t> shape = e.shape;
    if (sliced)
      shape[static_cast<size_t>(part.dim)] /= part.parts;
    Result<HostTensor> t = HostTensor::uninitialized(e.dtype, shape);
    if (!t.ok())
      return makeError("tensor ", quoted(*e.name), ": ", t.message());
    size_t n = t->data.size();
    if (sliced) {
      // outer x (the slice's rows of the dimension x inner) bytes.
      const size_t dim = static_cast<size_t>(part.dim);
      size_t outer = 1, inner = dtypeSize(e.dtype);
      for (size_t d = 0; d < dim; ++d)
        outer *= static_cast<size_t>(e.shape[d]);
      for (size_t d = dim + 1; d < rank; ++d)
        inner *= static_cast<size_t>(e.shape[d]);
      const size_t chunk = static_cast<size_t>(shape[dim]) * inner;
      const size_t stride = static_cast<size_t>(e.shape[dim]) * inner;
      const uint8_t *src =
          payload + e.begin + static_cast<size_t>(part.index) * chunk;
      for (size_t o = 0; o < outer; ++o)
        std::memcpy(t->data.data() + o * chunk, src + o * stride, chunk);
    } else if (n) {
      std::memcpy(t->data.data(), payload + e.begin, n);
    }
    if (e.dtype == DType::BOOL)
      for (size_t i = 0; i < n; ++i)
        if (t->data[i] > 1)
          return makeError("bool tensor ", quoted(*e.name), " holds byte ",
                           int(t->data[i]), " at element ", i);
    result.tensors.emplace(*e.name, std::move(*t));
  }
  return Status::success();
}

Result<SafeTensorsFile> hag::rt::parseSafeTensors(const uint8_t *data,
                                                  size_t size,
                                                  const std::string &source) {
  SafeTensorsFile result;
  if (Status s = parseImpl(data, size, result, nullptr); !s.ok())
    return s.withPrefix(source);
  return result;
}

Result<SafeTensorsFile>
hag::rt::readSafeTensors(const std::string &path,
                         const std::function<bool(const std::string &)> &keep,
                         const SliceSelector &slice) {
  Result<MappedFile> file = MappedFile::open(path);
  if (!file.ok())
    return file.status();
  SafeTensorsFile result;
  if (Status s = parseImpl(file->data(), file->size(), result, keep, slice);
      !s.ok())
    return s.withPrefix(path);
  return result;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

namespace {
/// The header and the tensors in file order.
struct Layout {
  std::string header; // padded to a multiple of 8
  std::vector<const TensorMap::value_type *> order;
  uint64_t dataSize = 0;
};
} // namespace

static Status planLayout(const TensorMap &tensors,
                         const std::map<std::string, std::string> &metadata,
                         Layout &layout) {
  for (const auto &kv : tensors) {
    const HostTensor &t = kv.second;
    std::string what = strCat("tensor ", quoted(kv.first));
    if (kv.first == kMetadataKey)
      return makeError("a tensor cannot be called ", kMetadataKey);
    if (!json::isValidUtf8(kv.first))
      return makeError(what, " has a name that is not valid UTF-8");
    if (Status s = t.validate(); !s.ok())
      return s.withPrefix(what);
    layout.order.push_back(&kv);
  }
  for (const auto &kv : metadata)
    if (!json::isValidUtf8(kv.first) || !json::isValidUtf8(kv.second))
      return makeError("metadata entry ", quoted(kv.first),
                       " is not valid UTF-8");
  // Larger elements first keeps every tensor aligned to its element size;
  // ties by name.
  std::sort(layout.order.begin(), layout.order.end(),
            [](const auto *a, const auto *b) {
              size_t sa = dtypeSize(a->second.dtype);
              size_t sb = dtypeSize(b->second.dtype);
              return sa != sb ? sa > sb : a->first < b->first;
            });

  std::string &h = layout.header;
  h = "{";
  bool first = true;
  if (!metadata.empty()) {
    json::appendQuoted(h, kMetadataKey);
    h += ":{";
    for (const auto &kv : metadata) {
      if (!first)
        h += ',';
      first = false;
      json::appendQuoted(h, kv.first);
      h += ':';
      json::appendQuoted(h, kv.second);
    }
    h += '}';
    first = false;
  }
  uint64_t offset = 0;
  for (const auto *kv : layout.order) {
    const HostTensor &t = kv->second;
    if (!first)
      h += ',';
    first = false;
    json::appendQuoted(h, kv->first);
    h += strCat(":{\"dtype\":\"", safeTensorsDTypeName(t.dtype),
                "\",\"shape\":[");
    for (size_t i = 0; i < t.shape.size(); ++i)
      h += strCat(i ? "," : "", t.shape[i]);
    uint64_t end = offset + t.data.size();
    h += strCat("],\"data_offsets\":[", offset, ",", end, "]}");
    offset = end;
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  if (h.size() > kSafeTensorsMaxHeaderSize)
    return makeError("header of ", h.size(), " bytes exceeds the limit of ",
                     kSafeTensorsMaxHeaderSize);
  layout.dataSize = offset;
  return Status::success();
}

static void appendLE64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xff);
}

Result<std::vector<uint8_t>>
hag::rt::encodeSafeTensors(const TensorMap &tensors,
                           const std::map<std::string, std::string> &metadata) {
  Layout layout;
  if (Status s = planLayout(tensors, metadata, layout); !s.ok())
    return s;
  std::string prefix;
  appendLE64(prefix, layout.header.size());
  std::vector<uint8_t> out;
  try {
    out.reserve(prefix.size() + layout.header.size() + layout.dataSize);
  } catch (const std::exception &) {
    return makeError("out of memory encoding ", layout.dataSize,
                     " bytes of tensors");
  }
  out.insert(out.end(), prefix.begin(), prefix.end());
  out.insert(out.end(), layout.header.begin(), layout.header.end());
  for (const auto *kv : layout.order)
    out.insert(out.end(), kv->second.data.begin(), kv->second.data.end());
  return out;
}

Status
hag::rt::writeSafeTensors(const std::string &path, const TensorMap &tensors,
                          const std::map<std::string, std::string> &metadata) {
  Layout layout;
  if (Status s = planLayout(tensors, metadata, layout); !s.ok())
    return s.withPrefix(path);
  Result<AtomicFileWriter> w = AtomicFileWriter::create(path);
  if (!w.ok())
    return w.status();
  std::string prefix;
  appendLE64(prefix, layout.header.size());
  prefix += layout.header;
  if (Status s = w->write(prefix.data(), prefix.size()); !s.ok())
    return s;
  for (const auto *kv : layout.order)
    if (Status s = w->write(kv->second.data.data(), kv->second.data.size());
        !s.ok())
      return s;
  return w->commit();
}

//===----------------------------------------------------------------------===//
// Binding
//===----------------------------------------------------------------------===//

Status hag::rt::checkTensors(const TensorMap &tensors,
                             const std::vector<TensorSpec> &expected,
                             const std::string &source, DTypeMatch dtypeMatch) {
  constexpr size_t kMaxListed = 20;
  std::vector<std::string> missing, unexpected, mismatched;
  std::map<std::string_view, const TensorSpec *> byName;
  for (const TensorSpec &spec : expected)
    byName.emplace(spec.name, &spec);

  for (const TensorSpec &spec : expected) {
    auto it = tensors.find(spec.name);
    if (it == tensors.end()) {
      missing.push_back(strCat("missing tensor ", quoted(spec.name), " ",
                               shapeToString(spec.shape), " ",
                               dtypeName(spec.dtype)));
      continue;
    }
    const HostTensor &t = it->second;
    bool shapeOk = t.shape == spec.shape;
    bool dtypeOk = t.dtype == spec.dtype ||
                   (dtypeMatch == DTypeMatch::AnyFloat &&
                    isFloatDType(t.dtype) && isFloatDType(spec.dtype));
    if (!shapeOk && !dtypeOk)
      mismatched.push_back(strCat(quoted(spec.name), " is ", t.describe(),
                                  ", expected ", shapeToString(spec.shape), " ",
                                  dtypeName(spec.dtype)));
    else if (!shapeOk)
      mismatched.push_back(strCat(quoted(spec.name), " has shape ",
                                  shapeToString(t.shape), ", expected ",
                                  shapeToString(spec.shape)));
    else if (!dtypeOk)
      mismatched.push_back(strCat(quoted(spec.name), " has dtype ",
                                  dtypeName(t.dtype), ", expected ",
                                  dtypeName(spec.dtype)));
  }
  for (const auto &kv : tensors)
    if (!byName.count(kv.first))
      unexpected.push_back(strCat("unexpected tensor ", quoted(kv.first)));

  size_t total = missing.size() + unexpected.size() + mismatched.size();
  if (total == 0)
    return Status::success();
  std::string msg = source + ": ";
  size_t listed = 0;
  for (const auto *group : {&missing, &unexpected, &mismatched})
    for (const std::string &problem : *group) {
      if (listed == kMaxListed)
        break;
      if (listed)
        msg += "; ";
      msg += problem;
      ++listed;
    }
  if (total > listed)
    msg += strCat("; and ", total - listed, " more problems");
  return Status::error(std::move(msg));
}

Status hag::rt::convertFloatTensors(TensorMap &tensors,
                                    const std::vector<TensorSpec> &expected) {
  for (const TensorSpec &spec : expected) {
    auto it = tensors.find(spec.name);
    if (it == tensors.end() || it->second.dtype == spec.dtype)
      continue;
    if (!isFloatDType(it->second.dtype) || !isFloatDType(spec.dtype))
      return makeError("cannot convert tensor ", quoted(spec.name), " from ",
                       dtypeName(it->second.dtype), " to ",
                       dtypeName(spec.dtype));
    Result<HostTensor> f32 = convertToF32(it->second);
    if (!f32.ok())
      return f32.status().withPrefix(strCat("tensor ", quoted(spec.name)));
    Result<HostTensor> converted = convertFromF32(*f32, spec.dtype);
    if (!converted.ok())
      return converted.status().withPrefix(
          strCat("tensor ", quoted(spec.name)));
    it->second = std::move(*converted);
  }
  return Status::success();
}
