//===- Tensor.h - owning host tensors ---------------------------*- C++ -*-===//
//
// HostTensor is the runtime's plain, owning, row-major (C order) tensor in
// host memory: a dtype, a shape and 64-byte aligned bytes. The format readers
// (safetensors, .npy) produce it and the writers consume it.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_TENSOR_H
#define HAG_RUNTIME_TENSOR_H

#include "hag/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hagrt supports little-endian hosts only (every file format is LE)"
#endif

namespace hag::rt {

/// Element types of host tensors. F16 is IEEE binary16, BF16 is bfloat16
/// (the upper half of an f32); both are stored as raw 16-bit patterns. BOOL
/// is one byte holding 0 or 1.
enum class DType : uint8_t {
  F32,
  F64,
  F16,
  BF16,
  I32,
  I64,
  U16,
  U32,
  U8,
  BOOL
};

/// Every DType, in declaration order (for tests and tables).
inline constexpr DType kAllDTypes[] = {
    DType::F32, DType::F64, DType::F16, DType::BF16, DType::I32,
    DType::I64, DType::U16, DType::U32, DType::U8,   DType::BOOL};

/// Size of one element in bytes.
size_t dtypeSize(DType dtype);

/// Lower-case name used in messages and the C API: "f32", "bf16", "bool"...
const char *dtypeName(DType dtype);

/// Parses a name produced by dtypeName().
std::optional<DType> parseDTypeName(std::string_view name);

/// True for F32, F64, F16 and BF16.
bool isFloatDType(DType dtype);

/// Formats a shape as "[2, 3]" ("[]" for a scalar).
std::string shapeToString(const std::vector<int64_t> &shape);

/// Number of elements of `shape`, or an error naming the shape when a
/// dimension is negative or the product (or its byte size for elements of
/// `elementSize` bytes) overflows.
Result<int64_t> checkedNumElements(const std::vector<int64_t> &shape,
                                   size_t elementSize = 1);

/// Minimal allocator returning `Align`-byte aligned storage.
template <typename T, size_t Align> struct AlignedAllocator {
  using value_type = T;
  template <typename U> struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Align> &) noexcept {}
  T *allocate(size_t n) {
    return static_cast<T *>(
        ::operator new(n * sizeof(T), std::align_val_t(Align)));
  }
  void deallocate(T *p, size_t) noexcept {
    ::operator delete(p, std::align_val_t(Align));
  }
  /// Default-initialises: resize() leaves bytes as they are (HostTensor::
  /// zeros fills them; HostTensor::uninitialized serves buffers the caller
  /// overwrites whole, such as an entry's result).
  template <typename U> void construct(U *p) noexcept {
    ::new (static_cast<void *>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U *p, Args &&...args) {
    ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const AlignedAllocator<U, Align> &) const {
    return true;
  }
  template <typename U>
  bool operator!=(const AlignedAllocator<U, Align> &) const {
    return false;
  }
};

/// Byte storage aligned to 64 bytes (a cache line, an AVX-512 vector).
using AlignedBytes = std::vector<uint8_t, AlignedAllocator<uint8_t, 64>>;

/// True when C++ type T may view elements of `dtype`: float/F32,
/// double/F64, int32_t/I32, int64_t/I64, uint32_t/U32, uint16_t for
/// U16, F16 and BF16 (raw bits), uint8_t for U8 and BOOL, bool for BOOL.
template <typename T> bool isViewableAs(DType dtype) {
  if constexpr (std::is_same_v<T, float>)
    return dtype == DType::F32;
  else if constexpr (std::is_same_v<T, double>)
    return dtype == DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return dtype == DType::I32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return dtype == DType::I64;
  else if constexpr (std::is_same_v<T, uint32_t>)
    return dtype == DType::U32;
  else if constexpr (std::is_same_v<T, uint16_t>)
    return dtype == DType::U16 || dtype == DType::F16 || dtype == DType::BF16;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return dtype == DType::U8 || dtype == DType::BOOL;
  else if constexpr (std::is_same_v<T, bool>)
    return dtype == DType::BOOL;
  else
    return false;
}

/// An owning, row-major tensor in host memory.
struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  /// numel() * dtypeSize(dtype) bytes, little-endian elements.
  AlignedBytes data;

  /// A zero-filled tensor; fails (naming the shape) on a negative dimension
  /// or a size that overflows.
  static Result<HostTensor> zeros(DType dtype, std::vector<int64_t> shape);

  /// Like zeros() without the fill: for a caller that writes every byte.
  static Result<HostTensor> uninitialized(DType dtype,
                                          std::vector<int64_t> shape);

  /// A tensor holding a copy of `values`; fails when T cannot view `dtype`
  /// or the element count does not match the shape.
  template <typename T>
  static Result<HostTensor> fromValues(DType dtype, std::vector<int64_t> shape,
                                       const std::vector<T> &values) {
    if (!isViewableAs<T>(dtype))
      return Status::error(std::string("element type does not match dtype ") +
                           dtypeName(dtype));
    Result<HostTensor> t = zeros(dtype, std::move(shape));
    if (!t.ok())
      return t;
    if (static_cast<uint64_t>(t->numel()) != values.size())
      return Status::error("shape " + shapeToString(t->shape) + " holds " +
                           std::to_string(t->numel()) + " elements, got " +
                           std::to_string(values.size()));
    if (!values.empty())
      std::memcpy(t->data.data(), values.data(), values.size() * sizeof(T));
    return t;
  }

  /// Number of elements (1 for a scalar, 0 when a dimension is 0).
  int64_t numel() const;

  /// Checks the invariants a hand-built tensor may break: no negative
  /// dimension, no overflow, data.size() == numel() * dtypeSize(dtype).
  Status validate() const;

  /// Size of the data in bytes.
  size_t byteSize() const { return data.size(); }

  /// Number of dimensions.
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }

  /// Typed pointer to the elements, or nullptr when T cannot view the dtype
  /// (see isViewableAs).
  template <typename T> T *dataAs() {
    assert(isViewableAs<T>(dtype) && "element type does not match dtype");
    return isViewableAs<T>(dtype) ? reinterpret_cast<T *>(data.data())
                                  : nullptr;
  }
  template <typename T> const T *dataAs() const {
    assert(isViewableAs<T>(dtype) && "element type does not match dtype");
    return isViewableAs<T>(dtype) ? reinterpret_cast<const T *>(data.data())
                                  : nullptr;
  }

  /// Copies the elements out as a vector of T (empty on a dtype mismatch).
  template <typename T> std::vector<T> toVector() const {
    const T *p = dataAs<T>();
    if (!p)
      return {};
    return std::vector<T>(p, p + numel());
  }

  /// "[2, 3] f32": shape and dtype, as used in messages.
  std::string describe() const;
};

/// IEEE binary16 bits to float (exact).
float halfToFloat(uint16_t bits);
/// Float to IEEE binary16 bits, round to nearest even; overflow gives
/// infinity, NaN stays NaN.
uint16_t floatToHalf(float value);
/// bfloat16 bits to float (exact).
float bf16ToFloat(uint16_t bits);
/// Float to bfloat16 bits, round to nearest even; NaN stays NaN.
uint16_t floatToBf16(float value);

/// Converts any tensor to F32 (F16, BF16 and F32 exactly; F64 and 64/32-bit
/// integers rounded to nearest; BOOL to 0 or 1). Fails only when the input
/// breaks the HostTensor invariants (see validate()).
Result<HostTensor> convertToF32(const HostTensor &tensor);

/// Converts an F32 tensor to F16 or BF16 (round to nearest even), F64
/// (exact) or F32 (copy). Other targets, a non-F32 input or an invalid
/// tensor are errors.
Result<HostTensor> convertFromF32(const HostTensor &tensor, DType target);

} // namespace hag::rt

#endif // HAG_RUNTIME_TENSOR_H
