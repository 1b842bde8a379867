//===- NpyTest.cpp - NumPy .npy reading and writing -----------------------===//

#include "hag/runtime/Npy.h"

#include "TestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

using namespace hag::rt;
using namespace hag::rt::test;
using ::testing::HasSubstr;

namespace {

/// "\x93NUMPY", version, header length (2 bytes for 1.0, else 4), header.
std::vector<uint8_t> npyPrefix(int major, const std::string &header) {
  std::vector<uint8_t> out = toBytes(std::string("\x93NUMPY", 6));
  out.push_back(static_cast<uint8_t>(major));
  out.push_back(0);
  appendLE(out, header.size(), major == 1 ? 2 : 4);
  appendString(out, header);
  return out;
}

/// A version 1.0 file with `dict`, padded with spaces and '\n' to 64 bytes
/// like numpy, followed by `data`.
std::vector<uint8_t> npyFile(const std::string &dict,
                             const std::vector<uint8_t> &data) {
  std::string header = dict;
  size_t hlen = header.size() + 1;
  header.append(64 - (10 + hlen) % 64, ' ');
  header += '\n';
  std::vector<uint8_t> out = npyPrefix(1, header);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string parseError(const std::vector<uint8_t> &bytes) {
  Result<HostTensor> t = parseNpy(bytes.data(), bytes.size(), "x.npy");
  EXPECT_FALSE(t.ok());
  return t.ok() ? std::string() : t.message();
}

/// An f4 file with header dict `dict` and 24 bytes of data.
std::string errorForDict(const std::string &dict, size_t dataBytes = 24) {
  return parseError(npyFile(dict, std::vector<uint8_t>(dataBytes, 0)));
}

//===----------------------------------------------------------------------===//
// Files as numpy writes them
//===----------------------------------------------------------------------===//

/// np.save of np.arange(6, dtype=np.float32).reshape(2, 3): version 1.0,
/// header length 118, data at byte 128. numpy >= 1.24 adds 21 - len("2")
/// spaces after the dict for in-place growth; older numpy pads the same
/// total, so the bytes are identical either way.
std::vector<uint8_t> numpyF32x2x3() {
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(dict.size(), 59u);
  std::string header = dict + std::string(58, ' ') + "\n";
  std::vector<uint8_t> out =
      toBytes(std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  appendString(out, header);
  EXPECT_EQ(out.size(), 128u);
  appendValues<float>(out, {0, 1, 2, 3, 4, 5});
  return out;
}

TEST(Npy, ReadsNumpyBytes) {
  TempDir dir;
  std::string path = dir.path("x.npy");
  writeBytes(path, numpyF32x2x3());
  Result<HostTensor> t = readNpy(path);
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->describe(), "[2, 3] f32");
  EXPECT_EQ(t->toVector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
}

TEST(Npy, WritesNumpyBytes) {
  HostTensor t =
      *HostTensor::fromValues<float>(DType::F32, {2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(*encodeNpy(t), numpyF32x2x3());

  // np.save(np.arange(5)) (int64, 1-D): "(5,)", 20 growth spaces + 40 pad.
  std::string dict1 =
      "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }";
  std::vector<uint8_t> expect1 =
      toBytes(std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  appendString(expect1, dict1 + std::string(60, ' ') + "\n");
  appendValues<int64_t>(expect1, {0, 1, 2, 3, 4});
  HostTensor i =
      *HostTensor::fromValues<int64_t>(DType::I64, {5}, {0, 1, 2, 3, 4});
  EXPECT_EQ(*encodeNpy(i), expect1);

  // np.save(np.float64(2.5)): a 0-d array, no growth axis.
  std::string dict0 = "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
  std::vector<uint8_t> expect0 =
      toBytes(std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  appendString(expect0, dict0 + std::string(62, ' ') + "\n");
  appendValues<double>(expect0, {2.5});
  HostTensor s = *HostTensor::fromValues<double>(DType::F64, {}, {2.5});
  EXPECT_EQ(*encodeNpy(s), expect0);

  // A large leading dimension eats into the growth space.
  HostTensor wide = *HostTensor::zeros(DType::U8, {1234567, 0});
  std::vector<uint8_t> bytes = *encodeNpy(wide);
  std::string header(bytes.begin() + 10, bytes.end());
  EXPECT_EQ(header.substr(0, 85),
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1234567, 0), "
            "}" +
                std::string(21 - 7, ' ') + "      ");
  EXPECT_EQ(bytes.size() % 64, 0u);
}

TEST(Npy, ReadsOtherVersionsAndLayouts) {
  std::vector<uint8_t> data;
  appendValues<double>(data, {1.5, -2, 3});
  std::string dict =
      "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  for (int major : {1, 2, 3}) {
    // Old numpy aligned to 16 bytes; any padding is accepted.
    std::string header = dict + "    \n";
    std::vector<uint8_t> bytes = npyPrefix(major, header);
    bytes.insert(bytes.end(), data.begin(), data.end());
    Result<HostTensor> t = parseNpy(bytes.data(), bytes.size(), "v");
    ASSERT_TRUE(t.ok()) << major << ": " << t.message();
    EXPECT_EQ(t->toVector<double>(), (std::vector<double>{1.5, -2, 3}));
  }
  // Other key orders, double quotes, no trailing comma, spare whitespace.
  Result<HostTensor> t = [] {
    std::vector<uint8_t> b = npyFile(
        "{ \"shape\" : ( 2 , 2 ) ,\"fortran_order\":False, \"descr\":\"|u1\"}",
        {1, 2, 3, 4});
    return parseNpy(b.data(), b.size(), "y");
  }();
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->describe(), "[2, 2] u8");
  // Scalars and empty arrays.
  std::vector<uint8_t> scalar = npyFile(
      "{'descr': '<i4', 'fortran_order': False, 'shape': (), }", {7, 0, 0, 0});
  Result<HostTensor> s = parseNpy(scalar.data(), scalar.size(), "s");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(s->toVector<int32_t>(), std::vector<int32_t>{7});
  std::vector<uint8_t> empty = npyFile(
      "{'descr': '<f2', 'fortran_order': False, 'shape': (0, 5), }", {});
  Result<HostTensor> e = parseNpy(empty.data(), empty.size(), "e");
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_EQ(e->describe(), "[0, 5] f16");
}

TEST(Npy, RoundTripEveryDType) {
  TempDir dir;
  uint32_t seed = 10;
  for (DType d : kAllDTypes) {
    if (d == DType::BF16)
      continue;
    for (std::vector<int64_t> shape :
         {std::vector<int64_t>{4, 3}, std::vector<int64_t>{},
          std::vector<int64_t>{7}, std::vector<int64_t>{2, 0, 3},
          std::vector<int64_t>{2, 1, 3, 2}}) {
      HostTensor t = patternTensor(d, shape, seed++);
      std::string path = dir.path(std::string(dtypeName(d)) + ".npy");
      Status s = writeNpy(path, t);
      ASSERT_TRUE(s.ok()) << s.message();
      Result<HostTensor> back = readNpy(path);
      ASSERT_TRUE(back.ok()) << back.message();
      EXPECT_TRUE(bitwiseEqual(t, *back)) << t.describe();
      std::vector<uint8_t> bytes = readBytes(path);
      EXPECT_EQ(bytes, *encodeNpy(t));
      EXPECT_EQ((bytes.size() - t.byteSize()) % 64, 0u);
    }
  }
}

TEST(Npy, Version2ForHugeHeaders) {
  // 30000 dimensions of size 1 need a header beyond 65535 bytes.
  HostTensor t = patternTensor(DType::F32, std::vector<int64_t>(30000, 1), 3);
  std::vector<uint8_t> bytes = *encodeNpy(t);
  EXPECT_EQ(bytes[6], 2);
  EXPECT_EQ(bytes[7], 0);
  EXPECT_EQ((bytes.size() - 4) % 64, 0u);
  Result<HostTensor> back = parseNpy(bytes.data(), bytes.size(), "big");
  ASSERT_TRUE(back.ok()) << back.message();
  EXPECT_TRUE(bitwiseEqual(t, *back));
}

TEST(Npy, Bf16CannotBeWritten) {
  HostTensor t = *HostTensor::zeros(DType::BF16, {2});
  Result<std::vector<uint8_t>> r = encodeNpy(t);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("bf16 has no NumPy equivalent"));
  TempDir dir;
  Status s = writeNpy(dir.path("b.npy"), t);
  EXPECT_THAT(s.message(), HasSubstr("b.npy: dtype bf16"));
  EXPECT_TRUE(readBytes(dir.path("b.npy")).empty());
}

//===----------------------------------------------------------------------===//
// Errors
//===----------------------------------------------------------------------===//

TEST(NpyErrors, MagicVersionAndLengths) {
  EXPECT_EQ(parseError(toBytes("PK\x03\x04 not npy")),
            "x.npy: not a .npy file (bad magic string)");
  EXPECT_EQ(parseError({}), "x.npy: not a .npy file (bad magic string)");
  std::vector<uint8_t> v4 = npyPrefix(1, "{}\n");
  v4[6] = 4;
  EXPECT_EQ(parseError(v4), "x.npy: unsupported .npy format version 4.0");
  std::vector<uint8_t> v11 = npyPrefix(1, "{}\n");
  v11[7] = 1;
  EXPECT_THAT(parseError(v11), HasSubstr("version 1.1"));
  std::vector<uint8_t> longHeader = npyPrefix(1, "{}\n");
  longHeader[8] = 0xff;
  EXPECT_EQ(parseError(longHeader),
            "x.npy: header length 255 runs past the end of the file (13 "
            "bytes)");
  std::vector<uint8_t> huge = npyPrefix(2, "{}\n");
  huge[11] = 0x7f;
  EXPECT_THAT(parseError(huge), HasSubstr("exceeds the limit"));
  std::vector<uint8_t> cut = toBytes(std::string("\x93NUMPY\x02\x00\x10", 9));
  EXPECT_THAT(parseError(cut), HasSubstr("too short for the header length"));
}

TEST(NpyErrors, HeaderDictSyntax) {
  std::string ok =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  {
    std::vector<uint8_t> good = npyFile(ok, std::vector<uint8_t>(24, 0));
    EXPECT_TRUE(parseNpy(good.data(), good.size(), "g").ok());
  }
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2, 3), 'extra': 1, }"),
              HasSubstr("x.npy: malformed header: unexpected key 'extra' at "
                        "header byte 58"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'shape': (2, 3), }"),
              HasSubstr("header has no 'fortran_order'"));
  EXPECT_THAT(errorForDict("{'fortran_order': False, 'shape': (2, 3), }"),
              HasSubstr("header has no 'descr'"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, }"),
              HasSubstr("header has no 'shape'"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'descr': '<f4', "
                           "'fortran_order': False, 'shape': (2, 3), }"),
              HasSubstr("duplicate key 'descr'"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': false, "
                           "'shape': (2, 3), }"),
              HasSubstr("fortran_order must be True or False"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': [2, 3], }"),
              HasSubstr("shape must be a tuple"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (6), }"),
              HasSubstr("shape must be a tuple (a 1-D shape is written "
                        "'(5,)')"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2, -3), }"),
              HasSubstr("negative dimension in shape"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2, 03), }"),
              HasSubstr("leading zero"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2 3), }"),
              HasSubstr("expected ',' or ')' in shape"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2,, 3), }"),
              HasSubstr("expected an integer in shape"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (99999999999999999999,), }"),
              HasSubstr("dimension too large"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (4294967296, 4294967296), }"),
              HasSubstr("too many elements"));
  EXPECT_THAT(errorForDict("{'descr': '<f4' 'fortran_order': False, "
                           "'shape': (2, 3), }"),
              HasSubstr("expected ',' or '}' in the header dict"));
  EXPECT_THAT(errorForDict("{descr: '<f4', 'fortran_order': False, "
                           "'shape': (2, 3), }"),
              HasSubstr("expected a quoted key"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2, 3), } x"),
              HasSubstr("unexpected text after the header dict"));
  EXPECT_THAT(errorForDict("['descr']"),
              HasSubstr("header dict does not start with '{'"));
  EXPECT_THAT(errorForDict("{'descr': '<f4\\n', 'fortran_order': False, "
                           "'shape': (2, 3), }"),
              HasSubstr("unsupported character in a header string"));
  EXPECT_THAT(errorForDict("{'descr: '<f4', 'fortran_order': False, "
                           "'shape': (2, 3), }"),
              HasSubstr("expected ':' after a key"));
  // The header must end with a newline.
  std::vector<uint8_t> noNewline = npyPrefix(1, ok + "    ");
  EXPECT_THAT(parseError(noNewline),
              HasSubstr("header does not end with a newline"));
}

TEST(NpyErrors, DescrsAndOrder) {
  EXPECT_THAT(errorForDict("{'descr': '>f4', 'fortran_order': False, "
                           "'shape': (2, 3), }"),
              HasSubstr("big-endian descr '>f4' is not supported"));
  EXPECT_THAT(errorForDict("{'descr': '<c8', 'fortran_order': False, "
                           "'shape': (3,), }"),
              HasSubstr("unsupported descr '<c8'"));
  EXPECT_THAT(errorForDict("{'descr': '|i1', 'fortran_order': False, "
                           "'shape': (24,), }"),
              HasSubstr("unsupported descr '|i1'"));
  EXPECT_THAT(errorForDict("{'descr': [('a', '<f4')], 'fortran_order': False, "
                           "'shape': (6,), }"),
              HasSubstr("structured dtypes are not supported"));
  EXPECT_THAT(errorForDict("{'descr': '<f4', 'fortran_order': True, "
                           "'shape': (2, 3), }"),
              HasSubstr("x.npy: fortran_order is True; only C-order arrays "
                        "are supported"));
}

TEST(NpyErrors, DataSize) {
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(errorForDict(dict, 20),
            "x.npy: data is 20 bytes, but shape [2, 3] <f4 needs 24");
  EXPECT_EQ(errorForDict(dict, 28),
            "x.npy: 4 trailing bytes after the data of shape [2, 3] <f4");
  EXPECT_THAT(parseError(npyFile("{'descr': '|b1', 'fortran_order': False, "
                                 "'shape': (3,), }",
                                 {0, 1, 7})),
              HasSubstr("bool array holds byte 7 at element 2"));
}

TEST(NpyErrors, Files) {
  TempDir dir;
  Result<HostTensor> t = readNpy(dir.path("missing.npy"));
  EXPECT_THAT(t.message(), HasSubstr("missing.npy: cannot open: No such file"));
  HostTensor bad = *HostTensor::zeros(DType::F32, {2});
  bad.data.resize(3);
  EXPECT_THAT(encodeNpy(bad).message(),
              HasSubstr("holds 3 bytes of data, expected 8"));
}

//===----------------------------------------------------------------------===//
// Robustness
//===----------------------------------------------------------------------===//

TEST(NpyRobustness, EveryTruncationFails) {
  std::vector<uint8_t> full = numpyF32x2x3();
  TempDir dir;
  std::string path = dir.path("t.npy");
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    EXPECT_FALSE(parseNpy(cut.data(), n, "t").ok()) << n;
    writeBytes(path, cut);
    Result<HostTensor> file = readNpy(path);
    ASSERT_FALSE(file.ok()) << n;
    EXPECT_THAT(file.message(), HasSubstr(path + ": "));
  }
}

TEST(NpyRobustness, RandomMutationsNeverCrash) {
  std::vector<uint8_t> full = numpyF32x2x3();
  uint64_t x = 0xabcdef;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<uint8_t> bytes = full;
    int edits = 1 + static_cast<int>(next() % 3);
    for (int e = 0; e < edits; ++e) {
      // Mostly hit the prefix and header, where the parsing happens.
      size_t at = next() % (next() % 4 ? 128 : bytes.size());
      if (at >= bytes.size())
        continue;
      if (next() % 5 == 0)
        bytes.erase(bytes.begin() + at);
      else
        bytes[at] = static_cast<uint8_t>(next());
    }
    Result<HostTensor> t = parseNpy(bytes.data(), bytes.size(), "fuzz");
    if (t.ok())
      EXPECT_EQ(t->byteSize(),
                static_cast<size_t>(t->numel()) * dtypeSize(t->dtype));
    else
      EXPECT_EQ(t.message().find('\n'), std::string::npos) << t.message();
  }
}

} // namespace
