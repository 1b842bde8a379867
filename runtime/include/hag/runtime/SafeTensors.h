//===- SafeTensors.h - safetensors weights files ----------------*- C++ -*-===//
//
// Reading and writing the safetensors format (weights and checkpoints):
//
//   u64 little-endian N | N bytes of JSON header | data
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets into the data section) and may hold a
// "__metadata__" object of string values. The reader validates everything
// (header bounds, JSON syntax, dtypes, shapes, that the tensors tile the data
// exactly) and reports the first problem as "<file>: <what>".
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_SAFETENSORS_H
#define HAG_RUNTIME_SAFETENSORS_H

#include "hag/runtime/Tensor.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace hag::rt {

/// Named tensors, sorted by name.
using TensorMap = std::map<std::string, HostTensor>;

/// The contents of a safetensors file.
struct SafeTensorsFile {
  TensorMap tensors;
  /// The "__metadata__" string map (empty when the file has none).
  std::map<std::string, std::string> metadata;
};

/// The largest header the reader accepts (the reference implementation's
/// limit): 100,000,000 bytes.
inline constexpr uint64_t kSafeTensorsMaxHeaderSize = 100000000;

/// A part of a tensor: slice `index` of `parts` equal slices along `dim`
/// (a tensor-parallel rank's shard). dim -1: the whole tensor.
struct TensorSlice {
  int64_t dim = -1;
  int64_t parts = 1;
  int64_t index = 0;
};

/// For a kept tensor's name and shape in the file, the part to read.
using SliceSelector = std::function<TensorSlice(
    const std::string &name, const std::vector<int64_t> &shape)>;

/// Reads a safetensors file. Supported dtypes: F32, F64, F16, BF16, I32, I64,
/// U16, U32, U8, BOOL; others (I8, F8_*, ...) are reported by name. With
/// `keep`, only the tensors it accepts are read into memory (the whole
/// header is still validated): a pipeline stage reads its own weights.
/// With `slice`, a tensor it gives a slice of (one that divides the
/// dimension evenly) is read as that slice only: a tensor-parallel rank
/// reads its shard. The file is mapped, so bytes of other tensors and
/// slices are never read.
Result<SafeTensorsFile>
readSafeTensors(const std::string &path,
                const std::function<bool(const std::string &)> &keep = {},
                const SliceSelector &slice = {});

/// Parses a safetensors image held in memory; `source` names it in errors.
Result<SafeTensorsFile> parseSafeTensors(const uint8_t *data, size_t size,
                                         const std::string &source);

/// Serializes tensors the way the reference writer does: compact JSON header
/// ("__metadata__" first when non-empty) padded with spaces to a multiple of
/// 8 bytes, tensors ordered by decreasing element size and then by name, so
/// every tensor is aligned to its element size in the file.
Result<std::vector<uint8_t>>
encodeSafeTensors(const TensorMap &tensors,
                  const std::map<std::string, std::string> &metadata = {});

/// Writes a safetensors file atomically (see AtomicFileWriter): on any error
/// the previous file at `path`, if any, is left untouched.
Status
writeSafeTensors(const std::string &path, const TensorMap &tensors,
                 const std::map<std::string, std::string> &metadata = {});

/// One tensor a consumer expects: name, shape and dtype.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  /// A tensor-parallel rank's weight: `shape` is the rank's slice, the
  /// whole tensor has shardParts times as much along shardDim (-1: whole).
  int64_t shardDim = -1;
  int64_t shardParts = 1;
};

/// How checkTensors compares dtypes.
enum class DTypeMatch {
  /// The dtype must be the expected one.
  Exact,
  /// A floating-point tensor (f16, bf16, f32, f64) also matches an expected
  /// floating-point dtype; the caller converts (convertFloatTensors).
  AnyFloat,
};

/// Checks `tensors` against `expected` and reports every problem in one line:
/// "<source>: missing tensor 'w' [128, 128] f32; unexpected tensor 'foo';
/// 'embed' has shape [255, 128], expected [256, 128]" (missing tensors in
/// the order of `expected`, then unexpected ones by name, then shape and
/// dtype mismatches; at most 20 problems are listed).
Status checkTensors(const TensorMap &tensors,
                    const std::vector<TensorSpec> &expected,
                    const std::string &source,
                    DTypeMatch dtypeMatch = DTypeMatch::Exact);

/// Converts every floating-point tensor of `tensors` whose dtype differs from
/// the one `expected` names for it to that dtype (through f32). Tensors not
/// in `expected` are left alone.
Status convertFloatTensors(TensorMap &tensors,
                           const std::vector<TensorSpec> &expected);

} // namespace hag::rt

#endif // HAG_RUNTIME_SAFETENSORS_H
