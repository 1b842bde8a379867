//===- TokenizerTest.cpp - the byte-level tokenizer -----------------------===//

#include "hag/runtime/Tokenizer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

using namespace hag::rt;
using ::testing::HasSubstr;

namespace {

TEST(ByteTokenizer, EveryByteRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b)
    all += static_cast<char>(b);
  all += std::string("\0\xff\0", 3); // NUL and 0xff again, mid-string
  std::vector<int32_t> ids = ByteTokenizer::encode(all);
  ASSERT_EQ(ids.size(), all.size());
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(ids[b], b);
  EXPECT_EQ(ids[256], 0);
  EXPECT_EQ(ids[257], 255);
  Result<std::string> back = ByteTokenizer::decode(ids);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(*back, all);

  std::vector<int64_t> ids64(ids.begin(), ids.end());
  Result<std::string> back64 = ByteTokenizer::decode(ids64);
  ASSERT_TRUE(back64.ok());
  EXPECT_EQ(*back64, all);
}

TEST(ByteTokenizer, TextAndEmpty) {
  EXPECT_EQ(ByteTokenizer::encode("h\xc3\xa9"),
            (std::vector<int32_t>{104, 0xc3, 0xa9}));
  EXPECT_TRUE(ByteTokenizer::encode("").empty());
  Result<std::string> empty = ByteTokenizer::decode(std::vector<int32_t>{});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
  EXPECT_EQ(ByteTokenizer::kVocabSize, 256);
}

TEST(ByteTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  Result<std::string> r =
      ByteTokenizer::decode(std::vector<int32_t>{104, 105, 256});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), "token id 256 at position 2 is outside the byte "
                         "vocabulary [0, 256)");
  r = ByteTokenizer::decode(std::vector<int32_t>{-1});
  EXPECT_THAT(r.message(), HasSubstr("token id -1 at position 0"));
  r = ByteTokenizer::decode(std::vector<int64_t>{1, int64_t(1) << 40});
  EXPECT_THAT(r.message(), HasSubstr("token id 1099511627776 at position 1"));
}

} // namespace
