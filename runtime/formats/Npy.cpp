//===- Npy.cpp - NumPy .npy tensors ---------------------------------------===//

#include "hag/runtime/Npy.h"

#include "hag/runtime/FileIO.h"
#include "support/StringUtil.h"

#include <cstring>

using namespace hag::rt;
using namespace hag::rt::detail;

static const char kMagic[] = "\x93NUMPY";
static constexpr size_t kMagicLen = 6;
/// numpy aligns the data to 64 bytes.
static constexpr size_t kArrayAlign = 64;
/// numpy leaves room in the header for the growth axis to reach this many
/// digits (numpy.lib.format.GROWTH_AXIS_MAX_DIGITS).
static constexpr size_t kGrowthAxisMaxDigits = 21;

const char *hag::rt::npyDescr(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "<f4";
  case DType::F64:
    return "<f8";
  case DType::F16:
    return "<f2";
  case DType::I32:
    return "<i4";
  case DType::I64:
    return "<i8";
  case DType::U16:
    return "<u2";
  case DType::U32:
    return "<u4";
  case DType::U8:
    return "|u1";
  case DType::BOOL:
    return "|b1";
  case DType::BF16:
    return nullptr;
  }
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Header dict parser
//===----------------------------------------------------------------------===//

namespace {

/// The three header fields, after validation.
struct NpyHeader {
  std::optional<DType> dtype;
  std::optional<bool> fortranOrder;
  std::optional<std::vector<int64_t>> shape;
};

/// A strict parser for the Python dict literal numpy writes. It accepts any
/// whitespace and key order Python's literal syntax allows for this dict and
/// nothing else: single- or double-quoted strings without escapes, True,
/// False, and tuples of non-negative decimal integers.
class HeaderParser {
public:
  explicit HeaderParser(std::string_view text) : text(text) {}

  Status parse(NpyHeader &out) {
    skipSpace();
    if (Status s = expect('{', "header dict does not start with '{'"); !s.ok())
      return s;
    skipSpace();
    while (!atEnd() && peek() != '}') {
      std::string key;
      size_t keyPos = pos;
      if (Status s = parseString(key, "a quoted key"); !s.ok())
        return s;
      skipSpace();
      if (Status s = expect(':', "expected ':' after a key"); !s.ok())
        return s;
      skipSpace();
      if (key == "descr") {
        if (out.dtype)
          return errorAt(keyPos, "duplicate key 'descr'");
        if (Status s = parseDescr(out); !s.ok())
          return s;
      } else if (key == "fortran_order") {
        if (out.fortranOrder)
          return errorAt(keyPos, "duplicate key 'fortran_order'");
        if (Status s = parseBool(out); !s.ok())
          return s;
      } else if (key == "shape") {
        if (out.shape)
          return errorAt(keyPos, "duplicate key 'shape'");
        if (Status s = parseShape(out); !s.ok())
          return s;
      } else {
        return errorAt(keyPos, strCat("unexpected key ", quoted(key)));
      }
      skipSpace();
      if (!atEnd() && peek() == ',') {
        ++pos;
        skipSpace();
        continue;
      }
      break;
    }
    if (Status s = expect('}', "expected ',' or '}' in the header dict");
        !s.ok())
      return s;
    skipSpace();
    if (!atEnd())
      return errorHere("unexpected text after the header dict");
    if (!out.dtype)
      return Status::error("header has no 'descr'");
    if (!out.fortranOrder)
      return Status::error("header has no 'fortran_order'");
    if (!out.shape)
      return Status::error("header has no 'shape'");
    return Status::success();
  }

private:
  std::string_view text;
  size_t pos = 0;

  bool atEnd() const { return pos >= text.size(); }
  char peek() const { return text[pos]; }
  Status errorAt(size_t at, std::string_view what) {
    return makeError(what, " at header byte ", at);
  }
  Status errorHere(std::string_view what) { return errorAt(pos, what); }

  void skipSpace() {
    while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == '\n' ||
                        peek() == '\r'))
      ++pos;
  }

  Status expect(char c, std::string_view what) {
    if (atEnd() || peek() != c)
      return errorHere(what);
    ++pos;
    return Status::success();
  }

  Status parseString(std::string &out, std::string_view what) {
    if (atEnd() || (peek() != '\'' && peek() != '"'))
      return errorHere(strCat("expected ", what));
    char quote = peek();
    size_t start = pos++;
    while (!atEnd() && peek() != quote) {
      if (peek() == '\\' || peek() == '\n')
        return errorHere("unsupported character in a header string");
      out += peek();
      ++pos;
    }
    if (atEnd())
      return errorAt(start, "unterminated string");
    ++pos;
    return Status::success();
  }

  Status parseDescr(NpyHeader &out) {
    size_t at = pos;
    if (!atEnd() && peek() == '[')
      return errorHere("structured dtypes are not supported");
    std::string descr;
    if (Status s = parseString(descr, "a quoted descr"); !s.ok())
      return s;
    for (DType d : kAllDTypes) {
      const char *name = npyDescr(d);
      if (name && descr == name) {
        out.dtype = d;
        return Status::success();
      }
    }
    if (!descr.empty() && descr[0] == '>')
      return errorAt(
          at, strCat("big-endian descr ", quoted(descr), " is not supported"));
    return errorAt(at, strCat("unsupported descr ", quoted(descr),
                              " (supported: '<f4' '<f8' '<f2' '<i4' '<i8' "
                              "'<u2' '<u4' '|u1' '|b1')"));
  }

  Status parseBool(NpyHeader &out) {
    if (text.substr(pos, 4) == "True") {
      pos += 4;
      out.fortranOrder = true;
    } else if (text.substr(pos, 5) == "False") {
      pos += 5;
      out.fortranOrder = false;
    } else {
      return errorHere("fortran_order must be True or False");
    }
    return Status::success();
  }

  Status parseShape(NpyHeader &out) {
    if (Status s = expect('(', "shape must be a tuple"); !s.ok())
      return s;
    std::vector<int64_t> dims;
    skipSpace();
    bool sawComma = false;
    while (!atEnd() && peek() != ')') {
      size_t at = pos;
      if (peek() == '-')
        return errorAt(at, "negative dimension in shape");
      if (peek() < '0' || peek() > '9')
        return errorHere("expected an integer in shape");
      if (peek() == '0' && pos + 1 < text.size() && text[pos + 1] >= '0' &&
          text[pos + 1] <= '9')
        return errorAt(at, "dimension with a leading zero in shape");
      int64_t v = 0;
      while (!atEnd() && peek() >= '0' && peek() <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, peek() - '0', &v))
          return errorAt(at, "dimension too large in shape");
        ++pos;
      }
      dims.push_back(v);
      skipSpace();
      sawComma = false;
      if (!atEnd() && peek() == ',') {
        ++pos;
        sawComma = true;
        skipSpace();
        continue;
      }
      break;
    }
    if (Status s = expect(')', "expected ',' or ')' in shape"); !s.ok())
      return s;
    // (5) is the integer 5 in Python, not a tuple.
    if (dims.size() == 1 && !sawComma)
      return Status::error("shape must be a tuple (a 1-D shape is written "
                           "'(5,)')");
    out.shape = std::move(dims);
    return Status::success();
  }
};

} // namespace

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

static Result<HostTensor> parseImpl(const uint8_t *data, size_t size) {
  if (size < kMagicLen + 2 || std::memcmp(data, kMagic, kMagicLen) != 0)
    return Status::error("not a .npy file (bad magic string)");
  uint8_t major = data[6], minor = data[7];
  size_t lenBytes;
  if (major == 1 && minor == 0)
    lenBytes = 2;
  else if ((major == 2 || major == 3) && minor == 0)
    lenBytes = 4;
  else
    return makeError("unsupported .npy format version ", int(major), ".",
                     int(minor));
  size_t prefix = kMagicLen + 2 + lenBytes;
  if (size < prefix)
    return makeError("file is ", size,
                     " bytes, too short for the header "
                     "length");
  uint32_t headerLen = 0;
  for (size_t i = 0; i < lenBytes; ++i)
    headerLen |= static_cast<uint32_t>(data[8 + i]) << (8 * i);
  if (headerLen > kNpyMaxHeaderSize)
    return makeError("header length ", headerLen, " exceeds the limit of ",
                     kNpyMaxHeaderSize, " bytes");
  if (headerLen > size - prefix)
    return makeError("header length ", headerLen,
                     " runs past the end of the file (", size, " bytes)");
  std::string_view header(reinterpret_cast<const char *>(data + prefix),
                          headerLen);
  if (header.empty() || header.back() != '\n')
    return Status::error("header does not end with a newline");

  NpyHeader h;
  if (Status s = HeaderParser(header).parse(h); !s.ok())
    return s.withPrefix("malformed header");
  if (*h.fortranOrder)
    return Status::error(
        "fortran_order is True; only C-order arrays are supported "
        "(save with np.ascontiguousarray)");

  // Exactly byteSize() bytes are copied in below (or an error returned).
  Result<HostTensor> t = HostTensor::uninitialized(*h.dtype, *h.shape);
  if (!t.ok())
    return t;
  size_t dataOffset = prefix + headerLen;
  size_t available = size - dataOffset;
  size_t need = t->byteSize();
  if (available < need)
    return makeError("data is ", available, " bytes, but shape ",
                     shapeToString(*h.shape), " ", npyDescr(*h.dtype),
                     " needs ", need);
  if (available > need)
    return makeError(available - need, " trailing bytes after the data of ",
                     "shape ", shapeToString(*h.shape), " ",
                     npyDescr(*h.dtype));
  if (need)
    std::memcpy(t->data.data(), data + dataOffset, need);
  if (t->dtype == DType::BOOL)
    for (size_t i = 0; i < need; ++i)
      if (t->data[i] > 1)
        return makeError("bool array holds byte ", int(t->data[i]),
                         " at element ", i);
  return t;
}

Result<HostTensor> hag::rt::parseNpy(const uint8_t *data, size_t size,
                                     const std::string &source) {
  Result<HostTensor> t = parseImpl(data, size);
  if (!t.ok())
    return t.status().withPrefix(source);
  return t;
}

Result<HostTensor> hag::rt::readNpy(const std::string &path) {
  Result<MappedFile> file = MappedFile::open(path);
  if (!file.ok())
    return file.status();
  return parseNpy(file->data(), file->size(), path);
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// The magic, version, length and header numpy writes for `t`.
static Result<std::string> buildHeader(const HostTensor &t) {
  const char *descr = npyDescr(t.dtype);
  if (!descr)
    return makeError("dtype ", dtypeName(t.dtype),
                     " has no NumPy equivalent (convert to f32 first)");
  if (Status s = t.validate(); !s.ok())
    return s;

  // numpy: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
  // (keys sorted, repr of each value, a ", " after every item).
  std::string dict =
      strCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (");
  for (size_t i = 0; i < t.shape.size(); ++i)
    dict += strCat(i ? ", " : "", t.shape[i]);
  if (t.shape.size() == 1)
    dict += ',';
  dict += "), }";
  if (!t.shape.empty()) {
    size_t digits = strCat(t.shape[0]).size();
    if (digits < kGrowthAxisMaxDigits)
      dict.append(kGrowthAxisMaxDigits - digits, ' ');
  }

  // numpy's _wrap_header: pad with 1..64 spaces, then '\n', so that the data
  // starts at a multiple of 64; version 1.0 unless the length needs 4 bytes.
  for (int version = 1; version <= 2; ++version) {
    size_t lenBytes = version == 1 ? 2 : 4;
    size_t hlen = dict.size() + 1;
    size_t pad =
        kArrayAlign - ((kMagicLen + 2 + lenBytes + hlen) % kArrayAlign);
    size_t total = hlen + pad;
    if (version == 1 && total > 0xffff)
      continue;
    std::string out(kMagic, kMagicLen);
    out += static_cast<char>(version);
    out += '\0';
    for (size_t i = 0; i < lenBytes; ++i)
      out += static_cast<char>((total >> (8 * i)) & 0xff);
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  }
  return Status::error("header too large"); // unreachable for real shapes
}

Result<std::vector<uint8_t>> hag::rt::encodeNpy(const HostTensor &t) {
  Result<std::string> header = buildHeader(t);
  if (!header.ok())
    return header.status();
  std::vector<uint8_t> out(header->begin(), header->end());
  out.insert(out.end(), t.data.begin(), t.data.end());
  return out;
}

Status hag::rt::writeNpy(const std::string &path, const HostTensor &t) {
  Result<std::string> header = buildHeader(t);
  if (!header.ok())
    return header.status().withPrefix(path);
  Result<AtomicFileWriter> w = AtomicFileWriter::create(path);
  if (!w.ok())
    return w.status();
  if (Status s = w->write(header->data(), header->size()); !s.ok())
    return s;
  if (Status s = w->write(t.data.data(), t.data.size()); !s.ok())
    return s;
  return w->commit();
}
