//===- Tokenizer.h - the byte-level tokenizer -------------------*- C++ -*-===//
//
// HAG's tokenizer maps text to tokens one byte at a time: the vocabulary has
// 256 entries and token id = byte value. Any byte string (not only UTF-8)
// round-trips exactly.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_TOKENIZER_H
#define HAG_RUNTIME_TOKENIZER_H

#include "hag/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hag::rt {

/// The byte-level tokenizer.
class ByteTokenizer {
public:
  /// Number of token ids: one per byte value.
  static constexpr int64_t kVocabSize = 256;

  /// One token per byte of `text`, each in [0, 256).
  static std::vector<int32_t> encode(std::string_view text);

  /// The bytes for `ids`; fails on an id outside [0, 256), naming its value
  /// and position.
  static Result<std::string> decode(const int32_t *ids, size_t count);
  static Result<std::string> decode(const int64_t *ids, size_t count);
  static Result<std::string> decode(const std::vector<int32_t> &ids) {
    return decode(ids.data(), ids.size());
  }
  static Result<std::string> decode(const std::vector<int64_t> &ids) {
    return decode(ids.data(), ids.size());
  }
};

} // namespace hag::rt

#endif // HAG_RUNTIME_TOKENIZER_H
