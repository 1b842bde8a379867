//===- SafeTensorsTest.cpp - safetensors reading, writing, binding --------===//

#include "hag/runtime/SafeTensors.h"

#include "TestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

using namespace hag::rt;
using namespace hag::rt::test;
using ::testing::HasSubstr;

namespace {

/// A safetensors image: length, `header` (padded with spaces to 8 bytes when
/// `pad`), then `data`.
std::vector<uint8_t> image(std::string header, const std::vector<uint8_t> &data,
                           bool pad = true) {
  if (pad)
    header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> out;
  appendLE(out, header.size(), 8);
  appendString(out, header);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string parseError(const std::vector<uint8_t> &bytes) {
  Result<SafeTensorsFile> f =
      parseSafeTensors(bytes.data(), bytes.size(), "w.safetensors");
  EXPECT_FALSE(f.ok());
  return f.ok() ? std::string() : f.message();
}

/// One f32 [2] tensor 'a' described by `entry` over 8 bytes of data.
std::string errorForEntry(const std::string &entry, size_t dataBytes = 8) {
  return parseError(
      image("{\"a\":" + entry + "}", std::vector<uint8_t>(dataBytes, 0)));
}

TensorMap everyDType() {
  TensorMap m;
  uint32_t seed = 1;
  for (DType d : kAllDTypes) {
    std::string name = dtypeName(d);
    m["t." + name] = patternTensor(d, {3, 5}, seed++);
    m["scalar." + name] = patternTensor(d, {}, seed++);
    m["empty." + name] = patternTensor(d, {0, 4}, seed++);
  }
  m["rank4"] = patternTensor(DType::F32, {2, 1, 3, 2}, seed++);
  return m;
}

TEST(SafeTensors, RoundTripEveryDTypeInMemory) {
  TensorMap tensors = everyDType();
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {"note", "q\"\n\xc3\xa9"}};
  Result<std::vector<uint8_t>> bytes = encodeSafeTensors(tensors, meta);
  ASSERT_TRUE(bytes.ok()) << bytes.message();
  // The header is padded so the data starts at a multiple of 8.
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i)
    headerLen = headerLen << 8 | (*bytes)[i];
  EXPECT_EQ(headerLen % 8, 0u);

  Result<SafeTensorsFile> back =
      parseSafeTensors(bytes->data(), bytes->size(), "mem");
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_EQ(back->metadata, meta);
  ASSERT_EQ(back->tensors.size(), tensors.size());
  for (const auto &kv : tensors) {
    auto it = back->tensors.find(kv.first);
    ASSERT_NE(it, back->tensors.end()) << kv.first;
    EXPECT_TRUE(bitwiseEqual(kv.second, it->second)) << kv.first;
  }
}

TEST(SafeTensors, RoundTripEveryDTypeThroughFile) {
  TempDir dir;
  std::string path = dir.path("w.safetensors");
  TensorMap tensors = everyDType();
  Status s = writeSafeTensors(path, tensors);
  ASSERT_TRUE(s.ok()) << s.message();
  Result<SafeTensorsFile> back = readSafeTensors(path);
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_TRUE(back->metadata.empty());
  ASSERT_EQ(back->tensors.size(), tensors.size());
  for (const auto &kv : tensors)
    EXPECT_TRUE(bitwiseEqual(kv.second, back->tensors.at(kv.first)))
        << kv.first;
  // The file is exactly what encodeSafeTensors produces.
  EXPECT_EQ(readBytes(path), *encodeSafeTensors(tensors));
}

TEST(SafeTensors, ReadsOnlyTheTensorsKept) {
  TempDir dir;
  std::string path = dir.path("w.safetensors");
  TensorMap tensors = everyDType();
  ASSERT_TRUE(writeSafeTensors(path, tensors, {{"format", "pt"}}).ok());
  const std::string wanted = tensors.begin()->first;
  Result<SafeTensorsFile> back = readSafeTensors(
      path, [&](const std::string &name) { return name == wanted; });
  ASSERT_TRUE(back.ok()) << back.message();
  ASSERT_EQ(back->tensors.size(), 1u);
  EXPECT_TRUE(bitwiseEqual(tensors.at(wanted), back->tensors.at(wanted)));
  EXPECT_EQ(back->metadata.at("format"), "pt");
  // Tensors that are not kept are still validated: a damaged header is an
  // error whatever is kept.
  std::vector<uint8_t> bytes = readBytes(path);
  bytes[10] = '!';
  std::string bad = dir.path("bad.safetensors");
  writeBytes(bad, bytes);
  EXPECT_FALSE(readSafeTensors(bad, [](const std::string &) {
                 return false;
               }).ok());
}

// A tensor-parallel rank's read: slice `index` of `parts` along a
// dimension, element for element the whole tensor's.
TEST(SafeTensors, ReadsOnlyTheSliceAsked) {
  TempDir dir;
  std::string path = dir.path("w.safetensors");
  TensorMap tensors;
  tensors["rows"] = patternTensor(DType::F32, {6, 5}, 1);
  tensors["cols"] = patternTensor(DType::F32, {3, 8}, 2);
  tensors["mid"] = patternTensor(DType::I32, {2, 4, 3}, 3);
  tensors["odd"] = patternTensor(DType::F32, {5, 2}, 4);
  tensors["whole"] = patternTensor(DType::F64, {4}, 5);
  ASSERT_TRUE(writeSafeTensors(path, tensors).ok());
  const std::map<std::string, TensorSlice> slices = {
      {"rows", {0, 3, 2}},
      {"cols", {1, 4, 1}},
      {"mid", {1, 2, 1}},
      {"odd", {0, 2, 1}}}; // 5 rows do not split in two: read whole
  Result<SafeTensorsFile> back = readSafeTensors(
      path, {},
      [&](const std::string &name, const std::vector<int64_t> &shape) {
        EXPECT_EQ(shape, tensors.at(name).shape) << name;
        auto it = slices.find(name);
        return it == slices.end() ? TensorSlice() : it->second;
      });
  ASSERT_TRUE(back.ok()) << back.message();
  auto element = [](const HostTensor &t, std::vector<int64_t> at) {
    int64_t flat = 0;
    for (size_t d = 0; d < at.size(); ++d)
      flat = flat * t.shape[d] + at[d];
    size_t size = dtypeSize(t.dtype);
    return std::vector<uint8_t>(t.data.begin() + flat * size,
                                t.data.begin() + (flat + 1) * size);
  };
  const HostTensor &rows = back->tensors.at("rows");
  ASSERT_EQ(rows.shape, std::vector<int64_t>({2, 5}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_EQ(element(rows, {i, j}), element(tensors.at("rows"), {4 + i, j}));
  const HostTensor &cols = back->tensors.at("cols");
  ASSERT_EQ(cols.shape, std::vector<int64_t>({3, 2}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j)
      EXPECT_EQ(element(cols, {i, j}), element(tensors.at("cols"), {i, 2 + j}));
  const HostTensor &mid = back->tensors.at("mid");
  ASSERT_EQ(mid.shape, std::vector<int64_t>({2, 2, 3}));
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        EXPECT_EQ(element(mid, {a, i, j}),
                  element(tensors.at("mid"), {a, 2 + i, j}));
  EXPECT_TRUE(bitwiseEqual(back->tensors.at("odd"), tensors.at("odd")));
  EXPECT_TRUE(bitwiseEqual(back->tensors.at("whole"), tensors.at("whole")));
}

TEST(SafeTensors, TensorsAreAlignedInTheFile) {
  TensorMap tensors;
  tensors["a8"] = patternTensor(DType::U8, {3}, 1);
  tensors["b16"] = patternTensor(DType::F16, {3}, 2);
  tensors["c64"] = patternTensor(DType::F64, {3}, 3);
  tensors["d32"] = patternTensor(DType::F32, {3}, 4);
  std::vector<uint8_t> bytes = *encodeSafeTensors(tensors);
  std::string header(bytes.begin() + 8, bytes.end() - (3 * 8 + 3 * 4 + 6 + 3));
  // Larger elements first, then by name.
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1),
            R"({"c64":{"dtype":"F64","shape":[3],"data_offsets":[0,24]},)"
            R"("d32":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},)"
            R"("b16":{"dtype":"F16","shape":[3],"data_offsets":[36,42]},)"
            R"("a8":{"dtype":"U8","shape":[3],"data_offsets":[42,45]}})");
}

/// The bytes the reference writer (safetensors.torch.save_file) produces for
/// {"weight": torch.arange(6.).reshape(2, 3), "bias": torch.tensor([1, 2])}
/// with metadata {"format": "pt"}: compact JSON, metadata first, tensors by
/// decreasing alignment then name, header padded with spaces to 8 bytes.
std::vector<uint8_t> pytorchStyleFile() {
  std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("bias":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
      R"("weight":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]}})";
  std::vector<uint8_t> data;
  appendValues<int64_t>(data, {1, 2});
  appendValues<float>(data, {0, 1, 2, 3, 4, 5});
  return image(header, data);
}

TEST(SafeTensors, ReadsReferenceWriterBytes) {
  TempDir dir;
  std::string path = dir.path("model.safetensors");
  std::vector<uint8_t> bytes = pytorchStyleFile();
  EXPECT_EQ(bytes.size() % 8, 0u);
  writeBytes(path, bytes);
  Result<SafeTensorsFile> f = readSafeTensors(path);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->metadata.at("format"), "pt");
  const HostTensor &w = f->tensors.at("weight");
  EXPECT_EQ(w.describe(), "[2, 3] f32");
  EXPECT_EQ(w.toVector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  const HostTensor &b = f->tensors.at("bias");
  EXPECT_EQ(b.describe(), "[2] i64");
  EXPECT_EQ(b.toVector<int64_t>(), (std::vector<int64_t>{1, 2}));
}

TEST(SafeTensors, WritesReferenceWriterBytes) {
  TensorMap tensors;
  tensors["weight"] =
      *HostTensor::fromValues<float>(DType::F32, {2, 3}, {0, 1, 2, 3, 4, 5});
  tensors["bias"] = *HostTensor::fromValues<int64_t>(DType::I64, {2}, {1, 2});
  EXPECT_EQ(*encodeSafeTensors(tensors, {{"format", "pt"}}),
            pytorchStyleFile());
}

TEST(SafeTensors, AcceptsUnpaddedHeaderAndAnyKeyOrder) {
  std::vector<uint8_t> data;
  appendValues<float>(data, {1, 2});
  std::vector<uint8_t> bytes =
      image(R"({"a":{"shape":[2],"data_offsets":[0,8],"dtype":"F32"}})", data,
            /*pad=*/false);
  Result<SafeTensorsFile> f = parseSafeTensors(bytes.data(), bytes.size(), "x");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->tensors.at("a").toVector<float>(), (std::vector<float>{1, 2}));
  // An empty file (no tensors) is valid.
  std::vector<uint8_t> empty = image("{}", {});
  EXPECT_TRUE(parseSafeTensors(empty.data(), empty.size(), "x").ok());
}

TEST(SafeTensors, FloatDTypesConvertToF32) {
  TensorMap tensors;
  tensors["h"] =
      *HostTensor::fromValues<uint16_t>(DType::F16, {2}, {0x3c00, 0xc000});
  tensors["b"] =
      *HostTensor::fromValues<uint16_t>(DType::BF16, {2}, {0x3f80, 0x4040});
  tensors["d"] = *HostTensor::fromValues<double>(DType::F64, {2}, {0.5, 4});
  std::vector<uint8_t> bytes = *encodeSafeTensors(tensors);
  Result<SafeTensorsFile> f = parseSafeTensors(bytes.data(), bytes.size(), "x");
  ASSERT_TRUE(f.ok()) << f.message();
  std::vector<TensorSpec> expected = {
      {"h", {2}, DType::F32}, {"b", {2}, DType::F32}, {"d", {2}, DType::F32}};
  Status exact = checkTensors(f->tensors, expected, "x");
  EXPECT_THAT(exact.message(), HasSubstr("'h' has dtype f16, expected f32"));
  EXPECT_TRUE(
      checkTensors(f->tensors, expected, "x", DTypeMatch::AnyFloat).ok());
  ASSERT_TRUE(convertFloatTensors(f->tensors, expected).ok());
  EXPECT_TRUE(checkTensors(f->tensors, expected, "x").ok());
  EXPECT_EQ(f->tensors["h"].toVector<float>(), (std::vector<float>{1, -2}));
  EXPECT_EQ(f->tensors["b"].toVector<float>(), (std::vector<float>{1, 3}));
  EXPECT_EQ(f->tensors["d"].toVector<float>(), (std::vector<float>{0.5, 4}));

  TensorMap ints;
  ints["i"] = *HostTensor::fromValues<int32_t>(DType::I32, {1}, {1});
  Status s = convertFloatTensors(ints, {{"i", {1}, DType::F32}});
  EXPECT_THAT(s.message(), HasSubstr("cannot convert tensor 'i' from i32"));
}

TEST(SafeTensors, CheckTensorsReportsEverythingInOneLine) {
  TensorMap tensors;
  tensors["embed"] = *HostTensor::zeros(DType::F32, {255, 128});
  tensors["foo"] = *HostTensor::zeros(DType::F32, {1});
  std::vector<TensorSpec> expected = {
      {"layers.1.attn.wq", {128, 128}, DType::F32},
      {"embed", {256, 128}, DType::F32}};
  Status s = checkTensors(tensors, expected, "weights.safetensors");
  EXPECT_EQ(s.message(),
            "weights.safetensors: missing tensor 'layers.1.attn.wq' [128, 128] "
            "f32; unexpected tensor 'foo'; 'embed' has shape [255, 128], "
            "expected [256, 128]");

  tensors["embed"] = *HostTensor::zeros(DType::F16, {255, 128});
  s = checkTensors(tensors, expected, "w");
  EXPECT_THAT(s.message(),
              HasSubstr("'embed' is [255, 128] f16, expected [256, 128] f32"));

  tensors.erase("foo");
  tensors["embed"] = *HostTensor::zeros(DType::F32, {256, 128});
  tensors["layers.1.attn.wq"] = *HostTensor::zeros(DType::F32, {128, 128});
  EXPECT_TRUE(checkTensors(tensors, expected, "w").ok());
}

TEST(SafeTensors, CheckTensorsCapsTheList) {
  TensorMap none;
  std::vector<TensorSpec> expected;
  for (int i = 0; i < 30; ++i)
    expected.push_back({"t" + std::to_string(i), {1}, DType::F32});
  Status s = checkTensors(none, expected, "w");
  EXPECT_THAT(s.message(), HasSubstr("missing tensor 't19'"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("'t20'")));
  EXPECT_THAT(s.message(), HasSubstr("; and 10 more problems"));
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(SafeTensorsErrors, HeaderBounds) {
  EXPECT_EQ(parseError({1, 2, 3}),
            "w.safetensors: file is 3 bytes, too short for the 8-byte header "
            "length");
  std::vector<uint8_t> bytes;
  appendLE(bytes, 1000, 8);
  appendString(bytes, "{}      ");
  EXPECT_EQ(parseError(bytes), "w.safetensors: header length 1000 runs past "
                               "the end of the file (16 bytes)");
  bytes.clear();
  appendLE(bytes, ~uint64_t(0), 8);
  appendString(bytes, "{}");
  EXPECT_THAT(parseError(bytes), HasSubstr("header length 18446744073709551615 "
                                           "exceeds the limit"));
  EXPECT_THAT(parseError(image("", {})),
              HasSubstr("header does not start with '{'"));
  EXPECT_THAT(parseError(image(" {}", {})),
              HasSubstr("header does not start with '{'"));
  EXPECT_THAT(parseError(image("[]", {})),
              HasSubstr("header does not start with '{'"));
}

TEST(SafeTensorsErrors, MalformedJson) {
  EXPECT_THAT(parseError(image(R"({"a":{"dtype":"F32",})", {})),
              HasSubstr("w.safetensors: malformed header JSON: expected a "
                        "string key in object at byte 20"));
  EXPECT_THAT(parseError(image("{\"a\":1.5}", {})),
              HasSubstr("fraction or exponent"));
  // Padding other than trailing whitespace is not JSON.
  EXPECT_THAT(parseError(image(std::string("{}\0\0\0\0\0\0", 8), {}, false)),
              HasSubstr("unexpected data after the JSON value"));
}

TEST(SafeTensorsErrors, DuplicateNames) {
  std::vector<uint8_t> data(16, 0);
  EXPECT_THAT(parseError(image(
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                  data)),
              HasSubstr("duplicate key 'a'"));
}

TEST(SafeTensorsErrors, DTypes) {
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F99","shape":[2],"data_offsets":[0,8]})"),
      HasSubstr("w.safetensors: tensor 'a' has unknown dtype 'F99'"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"I8","shape":[8],"data_offsets":[0,8]})"),
      HasSubstr("tensor 'a' has dtype I8, which hagrt does not support"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"),
      HasSubstr("unknown dtype 'f32'"));
  EXPECT_THAT(errorForEntry(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"),
              HasSubstr("has a dtype that is an integer"));
}

TEST(SafeTensorsErrors, Shapes) {
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]})"),
      HasSubstr("tensor 'a': shape [2, -1] has a negative dimension"));
  EXPECT_THAT(errorForEntry(R"({"dtype":"F32","shape":[4294967296,)"
                            R"(4294967296],"data_offsets":[0,8]})"),
              HasSubstr("tensor 'a': shape [4294967296, 4294967296] has too "
                        "many elements"));
  EXPECT_THAT(errorForEntry(R"({"dtype":"F64","shape":[2305843009213693952],)"
                            R"("data_offsets":[0,8]})"),
              HasSubstr("is too large"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"),
      HasSubstr("fraction or exponent"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"),
      HasSubstr("has a shape element that is a string"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"),
      HasSubstr("has a shape that is an integer"));
}

TEST(SafeTensorsErrors, Offsets) {
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[0,16]})"),
      HasSubstr("tensor 'a' has data_offsets [0, 16] past the end of the "
                "data (8 bytes)"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"),
      HasSubstr("data_offsets [8, 0] with begin after end"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"),
      HasSubstr("negative data_offsets [-8, 0]"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"),
      HasSubstr("tensor 'a' has 8 bytes (data_offsets [0, 8]) but [3] f32 "
                "needs 12"));
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"),
      HasSubstr("malformed data_offsets"));
  EXPECT_THAT(errorForEntry(R"({"dtype":"F32","shape":[2]})"),
              HasSubstr("tensor 'a' has no data_offsets"));
  EXPECT_THAT(errorForEntry(R"({"shape":[2],"data_offsets":[0,8]})"),
              HasSubstr("tensor 'a' has no dtype"));
  EXPECT_THAT(errorForEntry(R"({"dtype":"F32","data_offsets":[0,8]})"),
              HasSubstr("tensor 'a' has no shape"));
  EXPECT_THAT(errorForEntry(R"({"dtype":"F32","shape":[2],)"
                            R"("data_offsets":[0,8],"extra":1})"),
              HasSubstr("tensor 'a' has unknown field 'extra'"));
  EXPECT_THAT(errorForEntry(R"([1])"),
              HasSubstr("tensor 'a' is an array, expected an object"));
}

TEST(SafeTensorsErrors, OverlapsGapsAndTrailingBytes) {
  std::vector<uint8_t> data(16, 0);
  EXPECT_THAT(
      parseError(
          image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                data)),
      HasSubstr("tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]"));
  EXPECT_THAT(parseError(image(
                  R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                  data)),
              HasSubstr("overlap"));
  EXPECT_THAT(parseError(image(
                  R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                  data)),
              HasSubstr("data bytes [4, 8) belong to no tensor"));
  EXPECT_THAT(
      parseError(image(
          R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data)),
      HasSubstr("data bytes [0, 8) belong to no tensor"));
  EXPECT_THAT(errorForEntry(R"({"dtype":"F32","shape":[1],)"
                            R"("data_offsets":[0,4]})"),
              HasSubstr("w.safetensors: 4 trailing bytes after the last "
                        "tensor's data"));
  EXPECT_THAT(parseError(image("{}", {1, 2})), HasSubstr("2 trailing bytes"));
}

TEST(SafeTensorsErrors, MetadataAndBools) {
  EXPECT_THAT(parseError(image(R"({"__metadata__":{"k":1}})", {})),
              HasSubstr("__metadata__ value for 'k' is an integer, expected "
                        "a string"));
  EXPECT_THAT(parseError(image(R"({"__metadata__":[]})", {})),
              HasSubstr("__metadata__ is an array"));
  EXPECT_THAT(parseError(image(R"({"m":{"dtype":"BOOL","shape":[3],)"
                               R"("data_offsets":[0,3]}})",
                               {1, 0, 2})),
              HasSubstr("bool tensor 'm' holds byte 2 at element 2"));
}

TEST(SafeTensorsErrors, NamesInMessagesAreEscaped) {
  EXPECT_THAT(
      errorForEntry(R"({"dtype":"X","shape":[2],"data_offsets":[0,8]})"),
      HasSubstr("'a'"));
  std::string msg = parseError(image(
      "{\"a\\nb'\":{\"dtype\":\"X\",\"shape\":[2],\"data_offsets\":[0,8]}}",
      std::vector<uint8_t>(8, 0)));
  EXPECT_THAT(msg, HasSubstr("tensor 'a\\nb\\''"));
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(SafeTensorsErrors, MissingFile) {
  TempDir dir;
  Result<SafeTensorsFile> f = readSafeTensors(dir.path("nope.safetensors"));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.message(), HasSubstr("nope.safetensors: cannot open: No such "
                                     "file or directory"));
  f = readSafeTensors(dir.str());
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.message(), HasSubstr("is a directory"));
  writeBytes(dir.path("empty.safetensors"), {});
  f = readSafeTensors(dir.path("empty.safetensors"));
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.message(), HasSubstr("empty.safetensors: file is 0 bytes"));
}

TEST(SafeTensorsErrors, WriterRejectsBadInput) {
  TensorMap tensors;
  HostTensor bad = *HostTensor::zeros(DType::F32, {2, 3});
  bad.data.resize(20);
  tensors["bad"] = bad;
  Result<std::vector<uint8_t>> r = encodeSafeTensors(tensors);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("tensor 'bad': [2, 3] f32 holds 20 bytes "
                                     "of data, expected 24"));
  TensorMap reserved;
  reserved["__metadata__"] = *HostTensor::zeros(DType::F32, {1});
  EXPECT_THAT(encodeSafeTensors(reserved).message(),
              HasSubstr("cannot be called __metadata__"));
  TensorMap badName;
  badName["\xff"] = *HostTensor::zeros(DType::F32, {1});
  EXPECT_THAT(encodeSafeTensors(badName).message(),
              HasSubstr("not valid UTF-8"));

  TempDir dir;
  Status s = writeSafeTensors(dir.path("w.safetensors"), tensors);
  EXPECT_THAT(s.message(), HasSubstr("w.safetensors: tensor 'bad'"));
}

//===----------------------------------------------------------------------===//
// Robustness
//===----------------------------------------------------------------------===//

std::vector<uint8_t> smallValidFile() {
  TensorMap tensors;
  tensors["w"] = patternTensor(DType::F32, {2, 2}, 1);
  tensors["m"] = patternTensor(DType::BOOL, {3}, 2);
  tensors["h"] = patternTensor(DType::BF16, {2}, 3);
  return *encodeSafeTensors(tensors, {{"k", "v"}});
}

TEST(SafeTensorsRobustness, EveryTruncationFails) {
  std::vector<uint8_t> full = smallValidFile();
  ASSERT_TRUE(parseSafeTensors(full.data(), full.size(), "t").ok());
  TempDir dir;
  std::string path = dir.path("t.safetensors");
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    Result<SafeTensorsFile> mem = parseSafeTensors(cut.data(), n, "t");
    EXPECT_FALSE(mem.ok()) << "prefix of " << n << " bytes parsed";
    writeBytes(path, cut);
    Result<SafeTensorsFile> file = readSafeTensors(path);
    ASSERT_FALSE(file.ok()) << "prefix of " << n << " bytes read";
    EXPECT_THAT(file.message(), HasSubstr(path + ": "));
  }
}

TEST(SafeTensorsRobustness, RandomMutationsNeverCrash) {
  std::vector<uint8_t> full = smallValidFile();
  uint64_t x = 0x1234567;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  int failures = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<uint8_t> bytes = full;
    int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = next() % bytes.size();
      switch (next() % 4) {
      case 0:
        bytes[at] = static_cast<uint8_t>(next());
        break;
      case 1:
        bytes[at] ^= static_cast<uint8_t>(1u << (next() % 8));
        break;
      case 2: // a digit in the header becomes another digit
        if (bytes[at] >= '0' && bytes[at] <= '9')
          bytes[at] = static_cast<uint8_t>('0' + next() % 10);
        break;
      case 3:
        bytes.erase(bytes.begin() + at);
        break;
      }
    }
    Result<SafeTensorsFile> f =
        parseSafeTensors(bytes.data(), bytes.size(), "fuzz");
    if (!f.ok()) {
      ++failures;
      EXPECT_THAT(f.message(), HasSubstr("fuzz: "));
      EXPECT_EQ(f.message().find('\n'), std::string::npos);
      continue;
    }
    for (const auto &kv : f->tensors)
      EXPECT_EQ(kv.second.byteSize(), static_cast<size_t>(kv.second.numel()) *
                                          dtypeSize(kv.second.dtype));
  }
  EXPECT_GT(failures, 1000);
}

} // namespace
