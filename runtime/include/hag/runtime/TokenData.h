//===- TokenData.h - token datasets for training ----------------*- C++ -*-===//
//
// A TokenDataset is a read-only sequence of token ids: a flat little-endian
// uint16 or uint32 `.bin` file (memory-mapped, never copied), or a text file
// read through the byte-level tokenizer (each byte is a token). Training
// draws windows of seq + 1 tokens from it (inputs and shifted targets);
// BatchSampler picks their start positions reproducibly from a seed.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_TOKENDATA_H
#define HAG_RUNTIME_TOKENDATA_H

#include "hag/runtime/Tensor.h"

#include <memory>
#include <string>
#include <vector>

namespace hag::rt {

/// How a token file is stored.
enum class TokenFileFormat {
  /// By suffix: ".u32.bin" is U32, any other ".bin" is U16, anything else
  /// is Text.
  Auto,
  /// Flat little-endian uint16 ids.
  U16,
  /// Flat little-endian uint32 ids.
  U32,
  /// Bytes, through the byte-level tokenizer (ids 0..255).
  Text,
};

/// Options for TokenDataset::open.
struct TokenDataOptions {
  TokenFileFormat format = TokenFileFormat::Auto;
  /// When positive, every id must be below it (checked once at open).
  int64_t vocabSize = 0;
};

/// A read-only sequence of token ids. Copies share the underlying storage.
class TokenDataset {
public:
  /// Opens (memory-maps) a token file. Errors name the file: empty file,
  /// a byte length that is not a whole number of tokens, an id >= vocabSize,
  /// a uint32 id that does not fit in int32.
  static Result<TokenDataset> open(const std::string &path,
                                   const TokenDataOptions &options = {});

  /// A dataset over ids held in memory (a prompt, tests); `name` is used in
  /// messages.
  static Result<TokenDataset> fromTokens(const std::vector<int32_t> &ids,
                                         const std::string &name = "<memory>",
                                         int64_t vocabSize = 0);

  /// Number of tokens.
  int64_t size() const;

  /// The id at `index` (0 <= index < size()).
  int32_t token(int64_t index) const;

  /// The file name (or the name given to fromTokens).
  const std::string &name() const;

  /// The storage format (never Auto).
  TokenFileFormat format() const;

  /// Fails unless the data holds at least seq + 1 tokens (one window).
  Status checkWindow(int64_t seq) const;

  /// The windows tokens[start, start + seq + 1) for each start, as an int32
  /// tensor [starts.size(), seq + 1]. Fails (naming the start) when a window
  /// does not fit or seq is not positive.
  Result<HostTensor> batch(const std::vector<int64_t> &starts,
                           int64_t seq) const;

private:
  struct Storage;
  std::shared_ptr<const Storage> storage;
};

/// How training windows are cut from a token file.
enum class Sampling {
  /// Any position starts a window (a running text).
  Random,
  /// The file is a sequence of examples of exactly seq + 1 tokens each; a
  /// window is one whole example.
  Examples,
};

/// Deterministic start positions for training batches.
///
/// With S = size - seq valid starts (windows of seq + 1 tokens), element i
/// of step `step`'s batch starts at
///
///   scaleToRange(splitMix64At(seed, step * batch + i), S)
///
/// With Sampling::Examples, S = size / (seq + 1) examples and the start is
/// that draw times seq + 1.
///
/// (Random.h): the (step * batch + i)-th output of SplitMix64 seeded with
/// `seed`, scaled to [0, S) by a 128-bit multiply. Any step can be computed
/// without replaying earlier ones, so a resumed run sees the same batches.
/// For data parallelism with R ranks and b rows each, call starts(step, R*b)
/// and give rank r the rows [r*b, (r+1)*b).
class BatchSampler {
public:
  /// A sampler over `data` for windows of seq + 1 tokens; fails when the
  /// data is shorter than one window.
  /// With Sampling::Examples the data must hold a whole number of examples.
  static Result<BatchSampler> create(const TokenDataset &data, int64_t seq,
                                     uint64_t seed,
                                     Sampling sampling = Sampling::Random);

  /// The `batch` start positions of step `step`.
  std::vector<int64_t> starts(uint64_t step, int64_t batch) const;

  /// Number of distinct start positions (size - seq, or the number of
  /// examples).
  int64_t numStarts() const { return validStarts; }

private:
  BatchSampler(int64_t numStarts, int64_t startStride, uint64_t seedValue)
      : validStarts(numStarts), stride(startStride), seed(seedValue) {}
  int64_t validStarts;
  /// Distance between neighbouring starts: 1, or seq + 1 for examples.
  int64_t stride;
  uint64_t seed;
};

} // namespace hag::rt

#endif // HAG_RUNTIME_TOKENDATA_H
