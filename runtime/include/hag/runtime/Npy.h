//===- Npy.h - NumPy .npy tensors -------------------------------*- C++ -*-===//
//
// Reading and writing NumPy's .npy format: "\x93NUMPY", a version (1.0, 2.0
// or 3.0), a little-endian header length (2 bytes in 1.0, 4 in 2.0/3.0), a
// Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}
// padded with spaces and ending in '\n', then the raw elements.
//
// Supported descrs: '<f4' '<f8' '<f2' '<i4' '<i8' '<u2' '<u4' '|u1' '|b1'
// (C order only). bf16 has no NumPy dtype and cannot be written.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_NPY_H
#define HAG_RUNTIME_NPY_H

#include "hag/runtime/Tensor.h"

#include <string>
#include <vector>

namespace hag::rt {

/// The largest header the reader accepts (bytes of the dict and padding).
inline constexpr uint32_t kNpyMaxHeaderSize = 1 << 20;

/// Reads a .npy file (format 1.0, 2.0 or 3.0).
Result<HostTensor> readNpy(const std::string &path);

/// Parses a .npy image held in memory; `source` names it in errors.
Result<HostTensor> parseNpy(const uint8_t *data, size_t size,
                            const std::string &source);

/// The NumPy descr of `dtype` ("<f4"), or nullptr for BF16.
const char *npyDescr(DType dtype);

/// The bytes numpy.save writes for `tensor` (byte for byte, including
/// numpy's spare header space and 64-byte alignment): format 1.0, or 2.0
/// when the header does not fit in 65535 bytes. Fails for BF16 and for a
/// tensor whose data size does not match its shape.
Result<std::vector<uint8_t>> encodeNpy(const HostTensor &tensor);

/// Writes `tensor` as .npy atomically (see AtomicFileWriter).
Status writeNpy(const std::string &path, const HostTensor &tensor);

} // namespace hag::rt

#endif // HAG_RUNTIME_NPY_H
