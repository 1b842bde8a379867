//===- TensorTest.cpp - HostTensor, dtypes, conversions, Random -----------===//

#include "hag/runtime/Tensor.h"
#include "hag/runtime/Random.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <set>

using namespace hag::rt;
using ::testing::HasSubstr;

namespace {

TEST(Status, SuccessAndError) {
  Status ok = Status::success();
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.message(), "");
  Status bad = Status::error("x.bin: broken");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.message(), "x.bin: broken");
  EXPECT_EQ(bad.withPrefix("ctx").message(), "ctx: x.bin: broken");
  EXPECT_TRUE(ok.withPrefix("ctx").ok());
  // An empty message still fails.
  EXPECT_FALSE(Status::error("").ok());
  EXPECT_EQ(Status::error("").message(), "unknown error");
}

TEST(Status, Result) {
  Result<int> r = 42;
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 42);
  Result<int> e = Status::error("nope");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.message(), "nope");
}

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtypeSize(DType::F32), 4u);
  EXPECT_EQ(dtypeSize(DType::F64), 8u);
  EXPECT_EQ(dtypeSize(DType::F16), 2u);
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::I32), 4u);
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
  EXPECT_EQ(dtypeSize(DType::U16), 2u);
  EXPECT_EQ(dtypeSize(DType::U32), 4u);
  EXPECT_EQ(dtypeSize(DType::U8), 1u);
  EXPECT_EQ(dtypeSize(DType::BOOL), 1u);
  std::set<std::string> names;
  for (DType d : kAllDTypes) {
    names.insert(dtypeName(d));
    EXPECT_EQ(parseDTypeName(dtypeName(d)), d);
  }
  EXPECT_EQ(names.size(), 10u);
  EXPECT_EQ(std::string(dtypeName(DType::BF16)), "bf16");
  EXPECT_FALSE(parseDTypeName("float32").has_value());
}

TEST(HostTensor, ZerosShapeAndAlignment) {
  Result<HostTensor> t = HostTensor::zeros(DType::F32, {2, 3});
  ASSERT_TRUE(t.ok()) << t.message();
  EXPECT_EQ(t->numel(), 6);
  EXPECT_EQ(t->byteSize(), 24u);
  EXPECT_EQ(t->rank(), 2);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data.data()) % 64, 0u);
  EXPECT_EQ(t->describe(), "[2, 3] f32");
  for (float v : t->toVector<float>())
    EXPECT_EQ(v, 0.0f);

  Result<HostTensor> scalar = HostTensor::zeros(DType::I64, {});
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(scalar->numel(), 1);
  EXPECT_EQ(scalar->byteSize(), 8u);
  EXPECT_EQ(scalar->describe(), "[] i64");

  Result<HostTensor> empty = HostTensor::zeros(DType::U8, {4, 0});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_EQ(empty->byteSize(), 0u);
}

TEST(HostTensor, BadShapes) {
  Result<HostTensor> neg = HostTensor::zeros(DType::F32, {2, -1});
  ASSERT_FALSE(neg.ok());
  EXPECT_THAT(neg.message(), HasSubstr("[2, -1] has a negative dimension"));
  Result<HostTensor> big =
      HostTensor::zeros(DType::F32, {int64_t(1) << 40, int64_t(1) << 40});
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.message(), HasSubstr("too many elements"));
  Result<HostTensor> bytes = HostTensor::zeros(DType::F64, {int64_t(1) << 61});
  ASSERT_FALSE(bytes.ok());
  EXPECT_THAT(bytes.message(), HasSubstr("too large"));
}

// The allocator default-initialises, so zeros() must fill: reuse memory
// that held 0xff bytes and check every byte of the new tensor.
TEST(HostTensor, ZerosFillsReusedMemoryUninitializedSizes) {
  for (int round = 0; round < 4; ++round) {
    {
      Result<HostTensor> dirty = HostTensor::uninitialized(DType::F32, {4096});
      ASSERT_TRUE(dirty.ok());
      std::memset(dirty->data.data(), 0xff, dirty->data.size());
    }
    Result<HostTensor> z = HostTensor::zeros(DType::F32, {4096});
    ASSERT_TRUE(z.ok());
    for (uint8_t byte : z->data)
      ASSERT_EQ(byte, 0);
  }
  Result<HostTensor> u = HostTensor::uninitialized(DType::F64, {3, 5});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->byteSize(), 120u);
  EXPECT_EQ(u->data.size(), 120u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(u->data.data()) % 64, 0u);
  Result<HostTensor> neg = HostTensor::uninitialized(DType::F32, {-1});
  ASSERT_FALSE(neg.ok());
  EXPECT_THAT(neg.message(), HasSubstr("negative dimension"));
}

TEST(HostTensor, FromValuesAndAccessors) {
  Result<HostTensor> t =
      HostTensor::fromValues<int32_t>(DType::I32, {3}, {1, -2, 3});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->dataAs<int32_t>()[1], -2);
  EXPECT_EQ(t->toVector<int32_t>(), (std::vector<int32_t>{1, -2, 3}));

  Result<HostTensor> wrongType =
      HostTensor::fromValues<float>(DType::I32, {1}, {1.0f});
  ASSERT_FALSE(wrongType.ok());
  EXPECT_THAT(wrongType.message(), HasSubstr("does not match dtype i32"));
  Result<HostTensor> wrongCount =
      HostTensor::fromValues<float>(DType::F32, {2, 2}, {1.0f});
  ASSERT_FALSE(wrongCount.ok());
  EXPECT_THAT(wrongCount.message(), HasSubstr("holds 4 elements, got 1"));

  EXPECT_TRUE(isViewableAs<uint16_t>(DType::BF16));
  EXPECT_TRUE(isViewableAs<bool>(DType::BOOL));
  EXPECT_FALSE(isViewableAs<float>(DType::F64));
}

//===----------------------------------------------------------------------===//
// f16 / bf16
//===----------------------------------------------------------------------===//

static uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(Half, KnownValues) {
  EXPECT_EQ(halfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(halfToFloat(0xc000), -2.0f);
  EXPECT_EQ(halfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(halfToFloat(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(halfToFloat(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(halfToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7e00)));
  EXPECT_EQ(bitsOf(halfToFloat(0x8000)), 0x80000000u);

  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff); // below the rounding midpoint
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00); // rounds to infinity
  EXPECT_EQ(floatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(floatToHalf(-INFINITY), 0xfc00);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000); // tie to even (0)
  EXPECT_EQ(floatToHalf(std::ldexp(3.0f, -25)), 0x0002); // tie to even (2)
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -26)), 0x0000);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)),
            0x0400); // rounds up into the normal range
  uint16_t nan = floatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x3ff, 0);
}

TEST(Half, EveryValueRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = halfToFloat(static_cast<uint16_t>(h));
    uint16_t back = floatToHalf(f);
    bool isNan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    if (isNan) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE((back & 0x7c00) == 0x7c00 && (back & 0x3ff)) << h;
      EXPECT_EQ(back & 0x8000, h & 0x8000) << h;
    } else {
      EXPECT_EQ(back, h) << "half bits " << h;
    }
  }
}

TEST(Half, RoundsToNearest) {
  // Every float between two adjacent positive halves rounds to the nearer
  // one; sample the gap between each pair.
  for (uint32_t h = 0; h < 0x7bff; h += 7) {
    double lo = halfToFloat(static_cast<uint16_t>(h));
    double hi = halfToFloat(static_cast<uint16_t>(h + 1));
    for (double frac : {0.1, 0.49, 0.51, 0.9}) {
      float x = static_cast<float>(lo + (hi - lo) * frac);
      uint16_t expect = static_cast<uint16_t>(frac < 0.5 ? h : h + 1);
      EXPECT_EQ(floatToHalf(x), expect) << h << " " << frac;
    }
  }
}

TEST(BFloat16, KnownValuesAndRounding) {
  EXPECT_EQ(bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xc040), -3.0f);
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBf16(-3.0f), 0xc040);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even.
  EXPECT_EQ(floatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(floatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(floatToBf16(1.0f + std::ldexp(1.0f, -9)), 0x3f80);
  EXPECT_EQ(floatToBf16(std::numeric_limits<float>::max()), 0x7f80); // inf
  uint16_t nan = floatToBf16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(bf16ToFloat(nan)));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    bool isNan = (b & 0x7f80) == 0x7f80 && (b & 0x7f);
    if (!isNan) {
      EXPECT_EQ(floatToBf16(bf16ToFloat(static_cast<uint16_t>(b))), b);
    }
  }
}

TEST(Convert, EveryDTypeToF32) {
  auto check = [](HostTensor t, std::vector<float> expect) {
    HostTensor f = *convertToF32(t);
    EXPECT_EQ(f.dtype, DType::F32);
    EXPECT_EQ(f.shape, t.shape);
    EXPECT_EQ(f.toVector<float>(), expect) << dtypeName(t.dtype);
  };
  check(*HostTensor::fromValues<float>(DType::F32, {2}, {1.5f, -2.0f}),
        {1.5f, -2.0f});
  check(*HostTensor::fromValues<double>(DType::F64, {2}, {1.5, -2.0}),
        {1.5f, -2.0f});
  check(*HostTensor::fromValues<uint16_t>(DType::F16, {2}, {0x3e00, 0xc000}),
        {1.5f, -2.0f});
  check(*HostTensor::fromValues<uint16_t>(DType::BF16, {2}, {0x3fc0, 0xc000}),
        {1.5f, -2.0f});
  check(*HostTensor::fromValues<int32_t>(DType::I32, {2}, {7, -9}),
        {7.0f, -9.0f});
  check(*HostTensor::fromValues<int64_t>(DType::I64, {2}, {7, -9}),
        {7.0f, -9.0f});
  check(*HostTensor::fromValues<uint16_t>(DType::U16, {1}, {65535}),
        {65535.0f});
  check(*HostTensor::fromValues<uint32_t>(DType::U32, {1}, {7}), {7.0f});
  check(*HostTensor::fromValues<uint8_t>(DType::U8, {2}, {0, 255}),
        {0.0f, 255.0f});
  check(*HostTensor::fromValues<uint8_t>(DType::BOOL, {2}, {0, 1}),
        {0.0f, 1.0f});
}

TEST(Convert, InvalidTensorsAreErrors) {
  HostTensor t = *HostTensor::zeros(DType::F16, {4});
  EXPECT_TRUE(t.validate().ok());
  t.data.resize(6);
  EXPECT_EQ(t.validate().message(),
            "[4] f16 holds 6 bytes of data, expected 8");
  EXPECT_THAT(convertToF32(t).message(), HasSubstr("holds 6 bytes"));
  t.shape = {-4};
  EXPECT_THAT(t.validate().message(), HasSubstr("negative dimension"));
  HostTensor f = *HostTensor::zeros(DType::F32, {2});
  f.data.clear();
  EXPECT_THAT(convertFromF32(f, DType::F16).message(),
              HasSubstr("holds 0 bytes of data, expected 8"));
}

TEST(Convert, FromF32) {
  HostTensor f =
      *HostTensor::fromValues<float>(DType::F32, {3}, {1.0f, -2.0f, 0.5f});
  Result<HostTensor> h = convertFromF32(f, DType::F16);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->toVector<uint16_t>(),
            (std::vector<uint16_t>{0x3c00, 0xc000, 0x3800}));
  Result<HostTensor> b = convertFromF32(f, DType::BF16);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->toVector<uint16_t>(),
            (std::vector<uint16_t>{0x3f80, 0xc000, 0x3f00}));
  Result<HostTensor> d = convertFromF32(f, DType::F64);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->toVector<double>(), (std::vector<double>{1.0, -2.0, 0.5}));
  Result<HostTensor> i = convertFromF32(f, DType::I32);
  ASSERT_FALSE(i.ok());
  EXPECT_THAT(i.message(), HasSubstr("cannot convert f32 to i32"));
  Result<HostTensor> notF32 = convertFromF32(*d, DType::F16);
  ASSERT_FALSE(notF32.ok());
  EXPECT_THAT(notF32.message(), HasSubstr("needs an f32 tensor"));
}

//===----------------------------------------------------------------------===//
// Random
//===----------------------------------------------------------------------===//

TEST(Random, SplitMix64ReferenceOutputs) {
  // Outputs of Vigna's splitmix64.c seeded with 0.
  SplitMix64 g(0);
  EXPECT_EQ(g.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(g.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(g.next(), 0x06c45d188009454fULL);
}

TEST(Random, SplitMix64AtMatchesSequence) {
  for (uint64_t seed :
       {uint64_t(0), uint64_t(1), uint64_t(0xdeadbeef), ~uint64_t(0)}) {
    SplitMix64 g(seed);
    for (uint64_t i = 0; i < 100; ++i)
      EXPECT_EQ(splitMix64At(seed, i), g.next());
  }
}

TEST(Random, XoshiroDeterministicAndBounded) {
  Xoshiro256 a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
  std::vector<int> counts(10);
  for (int i = 0; i < 10000; ++i) {
    uint64_t v = a.uniform(10);
    ASSERT_LT(v, 10u);
    ++counts[v];
    double d = a.uniformDouble();
    ASSERT_GE(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
  for (int n : counts)
    EXPECT_GT(n, 800); // each bucket expects 1000
  EXPECT_EQ(a.uniform(1), 0u);
}

TEST(Random, ScaleToRange) {
  EXPECT_EQ(scaleToRange(0, 10), 0u);
  EXPECT_EQ(scaleToRange(~uint64_t(0), 10), 9u);
  EXPECT_EQ(scaleToRange(uint64_t(1) << 63, 10), 5u);
}

} // namespace
