//===- TokenDataTest.cpp - token datasets and the batch sampler -----------===//

#include "hag/runtime/TokenData.h"
#include "hag/runtime/Random.h"

#include "TestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <set>

using namespace hag::rt;
using namespace hag::rt::test;
using ::testing::HasSubstr;

namespace {

/// A uint16 file holding 0, 1, ..., n-1 (times `scale`, mod 65536).
std::string writeU16(const TempDir &dir, const std::string &name, int n,
                     int scale = 1) {
  std::vector<uint16_t> ids(n);
  for (int i = 0; i < n; ++i)
    ids[i] = static_cast<uint16_t>(i * scale);
  std::vector<uint8_t> bytes;
  appendValues(bytes, ids);
  writeBytes(dir.path(name), bytes);
  return dir.path(name);
}

TEST(TokenData, U16FileBatches) {
  TempDir dir;
  std::string path = writeU16(dir, "train.bin", 100, 3);
  Result<TokenDataset> data = TokenDataset::open(path);
  ASSERT_TRUE(data.ok()) << data.message();
  EXPECT_EQ(data->format(), TokenFileFormat::U16);
  EXPECT_EQ(data->size(), 100);
  EXPECT_EQ(data->token(99), 297);
  EXPECT_EQ(data->name(), path);

  Result<HostTensor> b = data->batch({0, 10, 95}, 4);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_EQ(b->describe(), "[3, 5] i32");
  EXPECT_EQ(b->toVector<int32_t>(),
            (std::vector<int32_t>{0, 3, 6, 9, 12, 30, 33, 36, 39, 42, 285, 288,
                                  291, 294, 297}));
  Result<HostTensor> none = data->batch({}, 4);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->describe(), "[0, 5] i32");
}

TEST(TokenData, LargeU16Values) {
  TempDir dir;
  std::vector<uint8_t> bytes;
  appendValues<uint16_t>(bytes, {65535, 0, 40000});
  writeBytes(dir.path("x.bin"), bytes);
  Result<TokenDataset> data = TokenDataset::open(dir.path("x.bin"));
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->batch({0}, 2)->toVector<int32_t>(),
            (std::vector<int32_t>{65535, 0, 40000}));
}

TEST(TokenData, U32BySuffixOrArgument) {
  TempDir dir;
  std::vector<uint8_t> bytes;
  appendValues<uint32_t>(bytes, {70000, 1, 2, 100000});
  writeBytes(dir.path("d.u32.bin"), bytes);
  Result<TokenDataset> bySuffix = TokenDataset::open(dir.path("d.u32.bin"));
  ASSERT_TRUE(bySuffix.ok()) << bySuffix.message();
  EXPECT_EQ(bySuffix->format(), TokenFileFormat::U32);
  EXPECT_EQ(bySuffix->size(), 4);
  EXPECT_EQ(bySuffix->batch({0}, 3)->toVector<int32_t>(),
            (std::vector<int32_t>{70000, 1, 2, 100000}));

  writeBytes(dir.path("tokens.dat"), bytes);
  TokenDataOptions opts;
  opts.format = TokenFileFormat::U32;
  Result<TokenDataset> byArg = TokenDataset::open(dir.path("tokens.dat"), opts);
  ASSERT_TRUE(byArg.ok()) << byArg.message();
  EXPECT_EQ(byArg->token(3), 100000);
  // The same bytes read as uint16 are 8 different tokens.
  opts.format = TokenFileFormat::U16;
  EXPECT_EQ(TokenDataset::open(dir.path("d.u32.bin"), opts)->size(), 8);
}

TEST(TokenData, TextThroughTheByteTokenizer) {
  TempDir dir;
  std::string text = std::string("hi\0\xff\n\xc3\xa9", 7);
  writeText(dir.path("corpus.txt"), text);
  Result<TokenDataset> data = TokenDataset::open(dir.path("corpus.txt"));
  ASSERT_TRUE(data.ok()) << data.message();
  EXPECT_EQ(data->format(), TokenFileFormat::Text);
  EXPECT_EQ(data->size(), 7);
  EXPECT_EQ(data->batch({0}, 6)->toVector<int32_t>(),
            (std::vector<int32_t>{'h', 'i', 0, 255, '\n', 0xc3, 0xa9}));
  // Text is bytes whatever the suffix when asked for explicitly.
  writeText(dir.path("corpus.bin"), "abc");
  TokenDataOptions opts;
  opts.format = TokenFileFormat::Text;
  EXPECT_EQ(TokenDataset::open(dir.path("corpus.bin"), opts)->size(), 3);
}

TEST(TokenData, FromTokens) {
  Result<TokenDataset> data = TokenDataset::fromTokens({5, 6, 7}, "prompt");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->batch({1}, 1)->toVector<int32_t>(),
            (std::vector<int32_t>{6, 7}));
  EXPECT_THAT(TokenDataset::fromTokens({1, -2}, "p").message(),
              HasSubstr("p: token -2 at index 1 is negative"));
  EXPECT_THAT(TokenDataset::fromTokens({}, "p").message(),
              HasSubstr("p: no tokens"));
  EXPECT_THAT(TokenDataset::fromTokens({1, 300}, "p", 256).message(),
              HasSubstr("token 300 at index 1 is not below the vocabulary "
                        "size 256"));
}

TEST(TokenDataErrors, FileShapes) {
  TempDir dir;
  writeBytes(dir.path("empty.bin"), {});
  EXPECT_EQ(TokenDataset::open(dir.path("empty.bin")).message(),
            dir.path("empty.bin") + ": empty token file");
  writeBytes(dir.path("odd.bin"), {1, 0, 2});
  EXPECT_EQ(TokenDataset::open(dir.path("odd.bin")).message(),
            dir.path("odd.bin") +
                ": 3 bytes is not a whole number of uint16 tokens");
  writeBytes(dir.path("x.u32.bin"), {1, 0, 0, 0, 2, 0});
  EXPECT_THAT(TokenDataset::open(dir.path("x.u32.bin")).message(),
              HasSubstr("6 bytes is not a whole number of uint32 tokens"));
  EXPECT_THAT(TokenDataset::open(dir.path("missing.bin")).message(),
              HasSubstr("missing.bin: cannot open"));
  writeText(dir.path("empty.txt"), "");
  EXPECT_THAT(TokenDataset::open(dir.path("empty.txt")).message(),
              HasSubstr("empty token file"));
}

TEST(TokenDataErrors, Vocabulary) {
  TempDir dir;
  std::string path = writeU16(dir, "v.bin", 300);
  TokenDataOptions opts;
  opts.vocabSize = 256;
  EXPECT_EQ(TokenDataset::open(path, opts).message(),
            path + ": token 256 at index 256 is not below the vocabulary size "
                   "256");
  opts.vocabSize = 300;
  EXPECT_TRUE(TokenDataset::open(path, opts).ok());

  writeText(dir.path("t.txt"), "abc\x80");
  opts.vocabSize = 128;
  EXPECT_THAT(TokenDataset::open(dir.path("t.txt"), opts).message(),
              HasSubstr("token 128 at index 3 is not below the vocabulary "
                        "size 128"));

  std::vector<uint8_t> bytes;
  appendValues<uint32_t>(bytes, {1, 0x80000000u});
  writeBytes(dir.path("big.u32.bin"), bytes);
  EXPECT_THAT(TokenDataset::open(dir.path("big.u32.bin")).message(),
              HasSubstr("token 2147483648 at index 1 does not fit in int32"));
}

TEST(TokenDataErrors, Windows) {
  TempDir dir;
  std::string path = writeU16(dir, "short.bin", 10);
  Result<TokenDataset> data = TokenDataset::open(path);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->batch({0}, 10).message(),
            path + ": 10 tokens, fewer than seq + 1 = 11");
  EXPECT_TRUE(data->batch({0}, 9).ok());
  EXPECT_EQ(data->batch({0, 1}, 9).message(),
            path + ": batch row 1 starts at 1; a window of 10 tokens must "
                   "start in [0, 0]");
  EXPECT_THAT(data->batch({-1}, 2).message(), HasSubstr("starts at -1"));
  EXPECT_THAT(data->batch({0}, 0).message(),
              HasSubstr("seq must be positive, got 0"));
  EXPECT_THAT(BatchSampler::create(*data, 10, 0).message(),
              HasSubstr("10 tokens, fewer than seq + 1 = 11"));
}

//===----------------------------------------------------------------------===//
// BatchSampler
//===----------------------------------------------------------------------===//

TEST(BatchSampler, DeterministicAndInRange) {
  Result<TokenDataset> data =
      TokenDataset::fromTokens(std::vector<int32_t>(1000, 1));
  ASSERT_TRUE(data.ok());
  Result<BatchSampler> a = BatchSampler::create(*data, 100, 42);
  Result<BatchSampler> b = BatchSampler::create(*data, 100, 42);
  Result<BatchSampler> c = BatchSampler::create(*data, 100, 43);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->numStarts(), 900);
  std::set<int64_t> seen;
  for (uint64_t step = 0; step < 200; ++step) {
    std::vector<int64_t> s = a->starts(step, 8);
    ASSERT_EQ(s.size(), 8u);
    EXPECT_EQ(s, b->starts(step, 8));
    EXPECT_NE(s, c->starts(step, 8));
    for (int64_t p : s) {
      ASSERT_GE(p, 0);
      ASSERT_LE(p, 900 - 1); // the last window is [899, 1000)
      seen.insert(p);
    }
    EXPECT_TRUE(data->batch(s, 100).ok());
  }
  // 1600 draws over 900 starts cover most of them.
  EXPECT_GT(seen.size(), 700u);
}

TEST(BatchSampler, MatchesTheDocumentedFormula) {
  Result<TokenDataset> data =
      TokenDataset::fromTokens(std::vector<int32_t>(5000, 0));
  Result<BatchSampler> s = BatchSampler::create(*data, 64, 7);
  ASSERT_TRUE(s.ok());
  // starts(step, batch)[i] uses the (step * batch + i)-th SplitMix64 output.
  SplitMix64 g(7);
  for (uint64_t step = 0; step < 5; ++step) {
    std::vector<int64_t> starts = s->starts(step, 4);
    for (int64_t p : starts)
      EXPECT_EQ(p, static_cast<int64_t>(scaleToRange(g.next(), 5000 - 64)));
  }
  // Any step can be computed directly (a resumed run sees the same data).
  EXPECT_EQ(s->starts(3, 4), s->starts(3, 4));
  EXPECT_TRUE(s->starts(0, 0).empty());
}

TEST(BatchSampler, SmallestDataset) {
  Result<TokenDataset> data = TokenDataset::fromTokens({1, 2, 3});
  Result<BatchSampler> s = BatchSampler::create(*data, 2, 0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->numStarts(), 1);
  EXPECT_EQ(s->starts(5, 3), (std::vector<int64_t>{0, 0, 0}));
}

TEST(BatchSampler, ExamplesAreWholeAndFollowTheFormula) {
  // 7 examples of 11 tokens; token value = example index, so a window is one
  // whole example exactly when all its tokens are equal.
  std::vector<int32_t> tokens;
  for (int32_t e = 0; e < 7; ++e)
    tokens.insert(tokens.end(), 11, e);
  Result<TokenDataset> data = TokenDataset::fromTokens(tokens);
  ASSERT_TRUE(data.ok());
  Result<BatchSampler> s =
      BatchSampler::create(*data, 10, 3, Sampling::Examples);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(s->numStarts(), 7);
  SplitMix64 g(3);
  std::set<int64_t> seen;
  for (uint64_t step = 0; step < 20; ++step) {
    std::vector<int64_t> starts = s->starts(step, 4);
    for (int64_t p : starts) {
      EXPECT_EQ(p, 11 * static_cast<int64_t>(scaleToRange(g.next(), 7)));
      seen.insert(p);
    }
    Result<HostTensor> batch = data->batch(starts, 10);
    ASSERT_TRUE(batch.ok()) << batch.message();
    const int32_t *t = batch->dataAs<int32_t>();
    for (size_t row = 0; row < starts.size(); ++row)
      for (int64_t i = 0; i < 11; ++i)
        ASSERT_EQ(t[row * 11 + i], starts[row] / 11);
  }
  EXPECT_EQ(seen.size(), 7u);
}

TEST(BatchSampler, ExamplesMustBeWhole) {
  Result<TokenDataset> data =
      TokenDataset::fromTokens(std::vector<int32_t>(25, 0));
  ASSERT_TRUE(data.ok());
  EXPECT_THAT(BatchSampler::create(*data, 9, 0, Sampling::Examples).message(),
              HasSubstr("25 tokens are not whole examples of seq + 1 = 10 "
                        "tokens (2 examples and 5 tokens left over)"));
  EXPECT_TRUE(BatchSampler::create(*data, 4, 0, Sampling::Examples).ok());
}

} // namespace
