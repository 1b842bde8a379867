//===- Tokenizer.cpp - the byte-level tokenizer ---------------------------===//

#include "hag/runtime/Tokenizer.h"

#include "support/StringUtil.h"

using namespace hag::rt;
using namespace hag::rt::detail;

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i)
    ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

template <typename Int>
static Result<std::string> decodeImpl(const Int *ids, size_t count) {
  std::string out(count, '\0');
  for (size_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || ids[i] >= ByteTokenizer::kVocabSize)
      return makeError("token id ", ids[i], " at position ", i,
                       " is outside the byte vocabulary [0, 256)");
    out[i] = static_cast<char>(static_cast<unsigned char>(ids[i]));
  }
  return out;
}

Result<std::string> ByteTokenizer::decode(const int32_t *ids, size_t count) {
  return decodeImpl(ids, count);
}

Result<std::string> ByteTokenizer::decode(const int64_t *ids, size_t count) {
  return decodeImpl(ids, count);
}
