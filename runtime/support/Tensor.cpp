//===- Tensor.cpp - owning host tensors -----------------------------------===//
//
// DType tables, shape arithmetic with overflow checks, and the f16/bf16
// conversions.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/Tensor.h"

#include "support/StringUtil.h"

#include <cmath>
#include <limits>
#include <system_error>

using namespace hag::rt;
using namespace hag::rt::detail;

//===----------------------------------------------------------------------===//
// Messages
//===----------------------------------------------------------------------===//

std::string hag::rt::detail::quoted(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  constexpr size_t kMaxShown = 200;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown)
    out += "...";
  out += '\'';
  return out;
}

std::string hag::rt::detail::errnoMessage(int err) {
  return std::error_code(err, std::generic_category()).message();
}

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

size_t hag::rt::dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
    return 8;
  case DType::F32:
  case DType::I32:
  case DType::U32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::U16:
    return 2;
  case DType::U8:
  case DType::BOOL:
    return 1;
  }
  return 1;
}

const char *hag::rt::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  case DType::U16:
    return "u16";
  case DType::U32:
    return "u32";
  case DType::U8:
    return "u8";
  case DType::BOOL:
    return "bool";
  }
  return "invalid";
}

std::optional<DType> hag::rt::parseDTypeName(std::string_view name) {
  for (DType d : kAllDTypes)
    if (name == dtypeName(d))
      return d;
  return std::nullopt;
}

bool hag::rt::isFloatDType(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F64 || dtype == DType::F16 ||
         dtype == DType::BF16;
}

//===----------------------------------------------------------------------===//
// Shapes
//===----------------------------------------------------------------------===//

std::string hag::rt::shapeToString(const std::vector<int64_t> &shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      out += ", ";
    appendPiece(out, shape[i]);
  }
  out += ']';
  return out;
}

Result<int64_t> hag::rt::checkedNumElements(const std::vector<int64_t> &shape,
                                            size_t elementSize) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return makeError("shape ", shapeToString(shape),
                       " has a negative dimension");
    if (__builtin_mul_overflow(n, d, &n))
      return makeError("shape ", shapeToString(shape),
                       " has too many elements");
  }
  int64_t bytes;
  if (__builtin_mul_overflow(n, static_cast<int64_t>(elementSize), &bytes) ||
      static_cast<uint64_t>(bytes) > std::numeric_limits<size_t>::max())
    return makeError("shape ", shapeToString(shape), " is too large");
  return n;
}

//===----------------------------------------------------------------------===//
// HostTensor
//===----------------------------------------------------------------------===//

Result<HostTensor> HostTensor::uninitialized(DType dtype,
                                             std::vector<int64_t> shape) {
  Result<int64_t> n = checkedNumElements(shape, dtypeSize(dtype));
  if (!n.ok())
    return n.status();
  HostTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  size_t bytes = static_cast<size_t>(*n) * dtypeSize(dtype);
  // Vectors throw on allocation failure; the runtime reports it instead.
  if (bytes > t.data.max_size())
    return makeError("tensor ", shapeToString(t.shape), " is too large");
  try {
    t.data.resize(bytes); // default-initialised (AlignedAllocator)
  } catch (const std::bad_alloc &) {
    return makeError("out of memory allocating ", bytes, " bytes for tensor ",
                     shapeToString(t.shape));
  }
  return t;
}

Result<HostTensor> HostTensor::zeros(DType dtype, std::vector<int64_t> shape) {
  Result<HostTensor> t = uninitialized(dtype, std::move(shape));
  if (t.ok() && !t->data.empty())
    std::memset(t->data.data(), 0, t->data.size());
  return t;
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

Status HostTensor::validate() const {
  Result<int64_t> n = checkedNumElements(shape, dtypeSize(dtype));
  if (!n.ok())
    return n.status();
  uint64_t need = static_cast<uint64_t>(*n) * dtypeSize(dtype);
  if (need != data.size())
    return makeError(describe(), " holds ", data.size(),
                     " bytes of data, expected ", need);
  return Status::success();
}

std::string HostTensor::describe() const {
  return shapeToString(shape) + " " + dtypeName(dtype);
}

//===----------------------------------------------------------------------===//
// f16 / bf16
//===----------------------------------------------------------------------===//

static uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

static float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float hag::rt::halfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) // Inf or NaN; keep the payload.
    return bitsToFloat(sign | 0x7f800000 | (mant << 13));
  if (exp == 0) {
    if (mant == 0)
      return bitsToFloat(sign);
    // Subnormal: mant * 2^-24, exact in f32.
    float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t hag::rt::floatToHalf(float f) {
  uint32_t u = floatBits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  uint32_t abs = u & 0x7fffffff;
  if (abs > 0x7f800000) // NaN: keep the top payload bits, force quiet.
    return sign | 0x7e00 | static_cast<uint16_t>((abs >> 13) & 0x3ff);
  if (abs >= 0x477ff000) // >= 65520 rounds to infinity (and Inf itself).
    return sign | 0x7c00;
  if (abs < 0x38800000) {
    // Result is subnormal (or zero): value / 2^-24, rounded to nearest even.
    // Adding 0.5 (as 2^-1 in a float whose ulp is 2^-1 at this magnitude)
    // lets the FPU do the rounding.
    float a = bitsToFloat(abs);
    float scaled = a * 0x1p24f; // in [0, 1024), exact
    float r = std::nearbyint(scaled);
    return sign | static_cast<uint16_t>(r);
  }
  // Normal: rebias the exponent and round the 13 dropped bits to even.
  uint32_t mantOdd = (abs >> 13) & 1;
  abs += 0xfff + mantOdd;
  return sign | static_cast<uint16_t>((abs - 0x38000000) >> 13);
}

float hag::rt::bf16ToFloat(uint16_t b) {
  return bitsToFloat(static_cast<uint32_t>(b) << 16);
}

uint16_t hag::rt::floatToBf16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffff) > 0x7f800000) // NaN: quiet it, keep the sign.
    return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

//===----------------------------------------------------------------------===//
// Conversions
//===----------------------------------------------------------------------===//

template <typename T>
static void convertLoop(const HostTensor &in, float *out, int64_t n) {
  const T *p = reinterpret_cast<const T *>(in.data.data());
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(p[i]);
}

Result<HostTensor> hag::rt::convertToF32(const HostTensor &in) {
  if (Status s = in.validate(); !s.ok())
    return s;
  Result<HostTensor> result = HostTensor::zeros(DType::F32, in.shape);
  if (!result.ok())
    return result;
  int64_t n = in.numel();
  float *o = result->dataAs<float>();
  const uint16_t *p16 = reinterpret_cast<const uint16_t *>(in.data.data());
  switch (in.dtype) {
  case DType::F32:
    if (n)
      std::memcpy(o, in.data.data(), static_cast<size_t>(n) * 4);
    break;
  case DType::F16:
    for (int64_t i = 0; i < n; ++i)
      o[i] = halfToFloat(p16[i]);
    break;
  case DType::BF16:
    for (int64_t i = 0; i < n; ++i)
      o[i] = bf16ToFloat(p16[i]);
    break;
  case DType::F64:
    convertLoop<double>(in, o, n);
    break;
  case DType::I32:
    convertLoop<int32_t>(in, o, n);
    break;
  case DType::I64:
    convertLoop<int64_t>(in, o, n);
    break;
  case DType::U16:
    convertLoop<uint16_t>(in, o, n);
    break;
  case DType::U32:
    convertLoop<uint32_t>(in, o, n);
    break;
  case DType::U8:
  case DType::BOOL:
    convertLoop<uint8_t>(in, o, n);
    break;
  }
  return result;
}

Result<HostTensor> hag::rt::convertFromF32(const HostTensor &in, DType target) {
  if (in.dtype != DType::F32)
    return makeError("convertFromF32 needs an f32 tensor, got ", in.describe());
  if (Status s = in.validate(); !s.ok())
    return s;
  Result<HostTensor> out = HostTensor::zeros(target, in.shape);
  if (!out.ok())
    return out;
  int64_t n = in.numel();
  const float *p = in.dataAs<float>();
  switch (target) {
  case DType::F32:
    if (n)
      std::memcpy(out->data.data(), p, static_cast<size_t>(n) * 4);
    return out;
  case DType::F64: {
    double *o = out->dataAs<double>();
    for (int64_t i = 0; i < n; ++i)
      o[i] = p[i];
    return out;
  }
  case DType::F16:
  case DType::BF16: {
    uint16_t *o = out->dataAs<uint16_t>();
    for (int64_t i = 0; i < n; ++i)
      o[i] = target == DType::F16 ? floatToHalf(p[i]) : floatToBf16(p[i]);
    return out;
  }
  default:
    return makeError("cannot convert f32 to ", dtypeName(target));
  }
}
