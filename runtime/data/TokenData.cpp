//===- TokenData.cpp - token datasets for training ------------------------===//

#include "hag/runtime/TokenData.h"

#include "hag/runtime/FileIO.h"
#include "hag/runtime/Random.h"
#include "support/StringUtil.h"

#include <cstring>
#include <limits>

using namespace hag::rt;
using namespace hag::rt::detail;

/// The bytes of a dataset: a file mapping, or ids owned in memory.
struct TokenDataset::Storage {
  std::string name;
  TokenFileFormat format = TokenFileFormat::U16;
  MappedFile file;
  std::vector<uint32_t> owned;
  const uint8_t *bytes = nullptr;
  int64_t count = 0;
  int width = 2; // bytes per token

  uint32_t at(int64_t i) const {
    const uint8_t *p = bytes + static_cast<size_t>(i) * width;
    switch (width) {
    case 1:
      return p[0];
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    default: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    }
  }
};

static bool endsWith(const std::string &s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

static const char *formatName(TokenFileFormat f) {
  switch (f) {
  case TokenFileFormat::U16:
    return "uint16";
  case TokenFileFormat::U32:
    return "uint32";
  case TokenFileFormat::Text:
    return "text";
  case TokenFileFormat::Auto:
    break;
  }
  return "auto";
}

/// Checks every id once: below vocabSize (when positive) and within int32.
static Status validateIds(const TokenDataset &data, int64_t vocabSize) {
  uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
  if (vocabSize > 0 && static_cast<uint64_t>(vocabSize) - 1 < limit)
    limit = static_cast<uint64_t>(vocabSize) - 1;
  if (data.format() == TokenFileFormat::Text && limit >= 255)
    return Status::success();
  if (data.format() == TokenFileFormat::U16 && limit >= 65535)
    return Status::success();
  for (int64_t i = 0, n = data.size(); i < n; ++i) {
    uint32_t id = static_cast<uint32_t>(data.token(i));
    if (id <= limit)
      continue;
    if (vocabSize > 0 && id >= static_cast<uint64_t>(vocabSize))
      return makeError(data.name(), ": token ", id, " at index ", i,
                       " is not below the vocabulary size ", vocabSize);
    return makeError(data.name(), ": token ", id, " at index ", i,
                     " does not fit in int32");
  }
  return Status::success();
}

Result<TokenDataset> TokenDataset::open(const std::string &path,
                                        const TokenDataOptions &options) {
  TokenFileFormat format = options.format;
  if (format == TokenFileFormat::Auto)
    format = endsWith(path, ".u32.bin")
                 ? TokenFileFormat::U32
                 : (endsWith(path, ".bin") ? TokenFileFormat::U16
                                           : TokenFileFormat::Text);
  Result<MappedFile> file = MappedFile::open(path);
  if (!file.ok())
    return file.status();
  auto storage = std::make_shared<Storage>();
  storage->name = path;
  storage->format = format;
  storage->width = format == TokenFileFormat::U32   ? 4
                   : format == TokenFileFormat::U16 ? 2
                                                    : 1;
  size_t bytes = file->size();
  if (bytes == 0)
    return makeError(path, ": empty token file");
  if (bytes % storage->width != 0)
    return makeError(path, ": ", bytes, " bytes is not a whole number of ",
                     formatName(format), " tokens");
  storage->bytes = file->data();
  storage->count = static_cast<int64_t>(bytes / storage->width);
  storage->file = std::move(*file);
  TokenDataset data;
  data.storage = std::move(storage);
  if (Status s = validateIds(data, options.vocabSize); !s.ok())
    return s;
  return data;
}

Result<TokenDataset> TokenDataset::fromTokens(const std::vector<int32_t> &ids,
                                              const std::string &name,
                                              int64_t vocabSize) {
  if (ids.empty())
    return makeError(name, ": no tokens");
  auto storage = std::make_shared<Storage>();
  storage->name = name;
  storage->format = TokenFileFormat::U32;
  storage->width = 4;
  storage->owned.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0)
      return makeError(name, ": token ", ids[i], " at index ", i,
                       " is negative");
    storage->owned[i] = static_cast<uint32_t>(ids[i]);
  }
  storage->bytes = reinterpret_cast<const uint8_t *>(storage->owned.data());
  storage->count = static_cast<int64_t>(ids.size());
  TokenDataset data;
  data.storage = std::move(storage);
  if (Status s = validateIds(data, vocabSize); !s.ok())
    return s;
  return data;
}

int64_t TokenDataset::size() const { return storage ? storage->count : 0; }

int32_t TokenDataset::token(int64_t index) const {
  return static_cast<int32_t>(storage->at(index));
}

const std::string &TokenDataset::name() const {
  static const std::string empty = "<empty>";
  return storage ? storage->name : empty;
}

TokenFileFormat TokenDataset::format() const {
  return storage ? storage->format : TokenFileFormat::U16;
}

Status TokenDataset::checkWindow(int64_t seq) const {
  if (seq <= 0)
    return makeError(name(), ": seq must be positive, got ", seq);
  if (size() < seq + 1)
    return makeError(name(), ": ", size(),
                     " tokens, fewer than seq + 1 = ", seq + 1);
  return Status::success();
}

Result<HostTensor> TokenDataset::batch(const std::vector<int64_t> &starts,
                                       int64_t seq) const {
  if (Status s = checkWindow(seq); !s.ok())
    return s;
  int64_t window = seq + 1;
  for (size_t b = 0; b < starts.size(); ++b)
    if (starts[b] < 0 || starts[b] > size() - window)
      return makeError(name(), ": batch row ", b, " starts at ", starts[b],
                       "; a window of ", window, " tokens must start in [0, ",
                       size() - window, "]");
  Result<HostTensor> out = HostTensor::zeros(
      DType::I32, {static_cast<int64_t>(starts.size()), window});
  if (!out.ok())
    return out;
  int32_t *dst = out->dataAs<int32_t>();
  for (size_t b = 0; b < starts.size(); ++b)
    for (int64_t j = 0; j < window; ++j)
      *dst++ = static_cast<int32_t>(storage->at(starts[b] + j));
  return out;
}

Result<BatchSampler> BatchSampler::create(const TokenDataset &data, int64_t seq,
                                          uint64_t seed,
                                          Sampling sampling) {
  if (Status s = data.checkWindow(seq); !s.ok())
    return s;
  if (sampling == Sampling::Random)
    return BatchSampler(data.size() - seq, 1, seed);
  int64_t example = seq + 1;
  if (data.size() % example != 0)
    return makeError(data.name(), ": ", data.size(),
                     " tokens are not whole examples of seq + 1 = ", example,
                     " tokens (", data.size() / example, " examples and ",
                     data.size() % example, " tokens left over)");
  return BatchSampler(data.size() / example, example, seed);
}

std::vector<int64_t> BatchSampler::starts(uint64_t step, int64_t batch) const {
  std::vector<int64_t> out(batch > 0 ? static_cast<size_t>(batch) : 0);
  uint64_t base = step * static_cast<uint64_t>(batch);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = stride * static_cast<int64_t>(scaleToRange(
                          splitMix64At(seed, base + i),
                          static_cast<uint64_t>(validStarts)));
  return out;
}
