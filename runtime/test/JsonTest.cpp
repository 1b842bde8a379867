//===- JsonTest.cpp - the strict JSON parser behind safetensors -----------===//

#include "formats/Json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

using namespace hag::rt;
using ::testing::HasSubstr;

namespace {

std::string parseError(std::string_view text) {
  Result<json::Value> v = json::parse(text);
  EXPECT_FALSE(v.ok()) << "parsed: " << text;
  return v.ok() ? std::string() : v.message();
}

TEST(Json, ParsesValues) {
  Result<json::Value> v = json::parse(
      R"( {"a": [1, -2, 0, 9223372036854775807, -9223372036854775808],
           "b": {"c": "d"}, "t": true, "f": false, "n": null, "e": [], "o": {}} )");
  ASSERT_TRUE(v.ok()) << v.message();
  ASSERT_TRUE(v->isObject());
  ASSERT_EQ(v->members.size(), 7u);
  EXPECT_EQ(v->members[0].first, "a"); // file order kept
  const json::Value *a = v->find("a");
  ASSERT_TRUE(a && a->isArray());
  ASSERT_EQ(a->elements.size(), 5u);
  EXPECT_EQ(a->elements[1].integer, -2);
  EXPECT_EQ(a->elements[3].integer, INT64_MAX);
  EXPECT_EQ(a->elements[4].integer, INT64_MIN);
  EXPECT_EQ(v->find("b")->find("c")->string, "d");
  EXPECT_TRUE(v->find("t")->boolean);
  EXPECT_EQ(v->find("n")->kind, json::Value::Kind::Null);
  EXPECT_TRUE(v->find("e")->elements.empty());
  EXPECT_TRUE(v->find("o")->members.empty());
  EXPECT_EQ(v->find("missing"), nullptr);
}

TEST(Json, StringEscapes) {
  Result<json::Value> v = json::parse(
      R"("q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u20ac\ud83d\ude00 \u0000 é")");
  ASSERT_TRUE(v.ok()) << v.message();
  EXPECT_EQ(v->string, std::string("q\" b\\ s/ \b\f\n\r\t A\xc3\xa9\xe2\x82\xac"
                                   "\xf0\x9f\x98\x80 ") +
                           std::string(1, '\0') + " \xc3\xa9");
}

TEST(Json, QuoteRoundTrip) {
  std::string s = "a\"b\\c\n\x01\x1f z \xc3\xa9";
  std::string quoted;
  json::appendQuoted(quoted, s);
  EXPECT_EQ(quoted, "\"a\\\"b\\\\c\\n\\u0001\\u001f z \xc3\xa9\"");
  Result<json::Value> v = json::parse(quoted);
  ASSERT_TRUE(v.ok()) << v.message();
  EXPECT_EQ(v->string, s);
}

TEST(Json, Utf8Validation) {
  EXPECT_TRUE(json::isValidUtf8("plain \xc3\xa9 \xf0\x9f\x98\x80"));
  EXPECT_FALSE(json::isValidUtf8("\xc0\xaf"));         // overlong
  EXPECT_FALSE(json::isValidUtf8("\xed\xa0\x80"));     // surrogate
  EXPECT_FALSE(json::isValidUtf8("\xf4\x90\x80\x80")); // > U+10FFFF
  EXPECT_FALSE(json::isValidUtf8("\xe2\x82"));         // cut short
  EXPECT_FALSE(json::isValidUtf8("\x80"));
}

TEST(Json, Errors) {
  EXPECT_THAT(parseError(""), HasSubstr("expected a value but the text ended"));
  EXPECT_THAT(parseError(R"({"a":1,"a":2})"),
              HasSubstr("duplicate key 'a' at byte 7"));
  EXPECT_THAT(parseError("[01]"), HasSubstr("leading zero at byte 1"));
  EXPECT_THAT(parseError("[1.5]"), HasSubstr("fraction or exponent"));
  EXPECT_THAT(parseError("[1e3]"), HasSubstr("fraction or exponent"));
  EXPECT_THAT(parseError("[9223372036854775808]"),
              HasSubstr("integer out of range"));
  EXPECT_THAT(parseError("[-9223372036854775809]"),
              HasSubstr("integer out of range"));
  EXPECT_THAT(parseError("[-]"), HasSubstr("invalid number"));
  EXPECT_THAT(parseError("{} x"), HasSubstr("unexpected data after"));
  EXPECT_THAT(parseError("{\"a\" 1}"), HasSubstr("expected ':'"));
  EXPECT_THAT(parseError("{\"a\":1,}"), HasSubstr("expected a string key"));
  EXPECT_THAT(parseError("[1,]"), HasSubstr("expected a value"));
  EXPECT_THAT(parseError("[1 2]"), HasSubstr("expected ',' or ']'"));
  EXPECT_THAT(parseError("{\"a\":1"), HasSubstr("unterminated object"));
  EXPECT_THAT(parseError("[1"), HasSubstr("unterminated array"));
  EXPECT_THAT(parseError("\"abc"), HasSubstr("unterminated string"));
  EXPECT_THAT(parseError("\"a\nb\""), HasSubstr("control character"));
  EXPECT_THAT(parseError("\"\\x\""), HasSubstr("invalid escape"));
  EXPECT_THAT(parseError("\"\\u12g4\""), HasSubstr("invalid hex digit"));
  EXPECT_THAT(parseError("\"\\u12\""), HasSubstr("truncated \\u escape"));
  EXPECT_THAT(parseError("\"\\ud800\""), HasSubstr("unpaired high surrogate"));
  EXPECT_THAT(parseError("\"\\ud800\\u0041\""),
              HasSubstr("unpaired high surrogate"));
  EXPECT_THAT(parseError("\"\\udc00\""), HasSubstr("unpaired low surrogate"));
  EXPECT_THAT(parseError("\"\xff\""), HasSubstr("invalid UTF-8"));
  EXPECT_THAT(parseError("tru"), HasSubstr("invalid literal"));
  EXPECT_THAT(parseError("'a'"), HasSubstr("expected a value at byte 0"));
  EXPECT_THAT(parseError(std::string(100, '[') + std::string(100, ']')),
              HasSubstr("nested too deeply"));
  EXPECT_THAT(parseError(std::string(100000, '[')),
              HasSubstr("nested too deeply"));
}

TEST(Json, RealsOnlyWhenAllowed) {
  json::ParseOptions reals;
  reals.allowReals = true;
  Result<json::Value> v = json::parse(
      R"([1.5, -0.25, 1e-06, 9.9999999999999995e-07, 2E+3, 7, -0.0])", reals);
  ASSERT_TRUE(v.ok()) << v.message();
  const std::vector<json::Value> &e = v->elements;
  ASSERT_EQ(e.size(), 7u);
  EXPECT_EQ(e[0].kind, json::Value::Kind::Real);
  EXPECT_EQ(e[0].real, 1.5);
  EXPECT_EQ(e[1].real, -0.25);
  EXPECT_EQ(e[2].real, 1e-06);
  EXPECT_EQ(e[3].real, 1e-06); // the shortest round trip of the same double
  EXPECT_EQ(e[4].real, 2000.0);
  EXPECT_EQ(e[5].kind, json::Value::Kind::Integer); // integers stay integers
  EXPECT_EQ(e[5].asDouble(), 7.0);
  EXPECT_TRUE(e[6].isNumber());

  auto realError = [&](std::string_view text) {
    Result<json::Value> r = json::parse(text, reals);
    EXPECT_FALSE(r.ok()) << "parsed: " << text;
    return r.ok() ? std::string() : r.message();
  };
  EXPECT_THAT(realError("[1.]"), HasSubstr("no digit after '.' at byte 1"));
  EXPECT_THAT(realError("[.5]"), HasSubstr("expected a value"));
  EXPECT_THAT(realError("[1e]"), HasSubstr("no digit in the exponent"));
  EXPECT_THAT(realError("[01.5]"), HasSubstr("leading zero"));
  EXPECT_THAT(realError("[1e999]"), HasSubstr("number out of range"));
  EXPECT_THAT(realError("[+1.0]"), HasSubstr("expected a value"));
  // The strict default is unchanged.
  EXPECT_THAT(parseError("[1.5]"), HasSubstr("fraction or exponent"));
}

TEST(Json, NestingLimitIsGenerous) {
  EXPECT_TRUE(json::parse(std::string(64, '[') + std::string(64, ']')).ok());
}

} // namespace
