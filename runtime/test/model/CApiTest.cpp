//===- CApiTest.cpp - the C API (hagrt.h) ---------------------------------===//

#include "hag/runtime/hagrt.h"

#include "ModelTestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <cstring>
#include <thread>

using namespace hag::rt;
using namespace hag::rt::test;
using ::testing::HasSubstr;

namespace {

/// A fake lm artifact written to `dir`.
std::string writeFake(const TempDir &dir) {
  std::string path = dir.path("fake.hag");
  writeBytes(path, packArtifact(fakeLmManifest(), fakeCode()));
  return path;
}

TEST(CApi, VersionAndDTypes) {
  EXPECT_STREQ(hagrt_version(), "0.1.0");
  EXPECT_STREQ(hagrt_dtype_name(HAGRT_F32), "f32");
  EXPECT_STREQ(hagrt_dtype_name(HAGRT_BF16), "bf16");
  EXPECT_STREQ(hagrt_dtype_name(HAGRT_BOOL), "bool");
  EXPECT_EQ(hagrt_dtype_name(10), nullptr);
  EXPECT_EQ(hagrt_dtype_name(-1), nullptr);
}

TEST(CApi, OpenErrorsSetTheLastError) {
  hagrt_model *m = reinterpret_cast<hagrt_model *>(1);
  EXPECT_EQ(hagrt_open("/nonexistent.hag", &m), HAGRT_ERROR_ARTIFACT);
  EXPECT_EQ(m, nullptr);
  EXPECT_THAT(hagrt_last_error(), HasSubstr("/nonexistent.hag"));
  EXPECT_EQ(hagrt_open(nullptr, &m), HAGRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(hagrt_last_error(), "hagrt_open: path is NULL");
  EXPECT_EQ(hagrt_open("x", nullptr), HAGRT_ERROR_INVALID_ARGUMENT);
  // The last error is per thread.
  std::string other;
  std::thread([&] { other = hagrt_last_error(); }).join();
  EXPECT_EQ(other, "");
  hagrt_close(nullptr); // ignored
  hagrt_tensor_free(nullptr);
}

TEST(CApi, ParametersAndFacts) {
  TempDir dir;
  hagrt_model *m = nullptr;
  ASSERT_EQ(hagrt_open(writeFake(dir).c_str(), &m), HAGRT_OK)
      << hagrt_last_error();
  EXPECT_EQ(hagrt_num_parameters(m), 71u);
  EXPECT_STREQ(hagrt_parameter_name(m, 0), "embed");
  EXPECT_STREQ(hagrt_parameter_name(m, 70), "p69");
  EXPECT_EQ(hagrt_parameter_name(m, 71), nullptr);
  int rank = -1;
  const int64_t *shape = nullptr;
  ASSERT_EQ(hagrt_parameter_shape(m, 0, &rank, &shape), HAGRT_OK);
  ASSERT_EQ(rank, 2);
  EXPECT_EQ(shape[0], 8);
  EXPECT_EQ(shape[1], 4);
  EXPECT_EQ(hagrt_parameter_shape(m, 71, &rank, &shape),
            HAGRT_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(hagrt_last_error(), HasSubstr("index 71 is out of range"));
  int64_t v = 0;
  ASSERT_EQ(hagrt_model_fact(m, "vocab", &v), HAGRT_OK);
  EXPECT_EQ(v, 8);
  ASSERT_EQ(hagrt_model_fact(m, "max_seq", &v), HAGRT_OK);
  EXPECT_EQ(v, 16);
  ASSERT_EQ(hagrt_model_fact(m, "is_lm", &v), HAGRT_OK);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(hagrt_model_fact(m, "colour", &v), HAGRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(hagrt_num_parameters(nullptr), 0u);
  hagrt_close(m);
}

TEST(CApi, InitRunSaveLoad) {
  TempDir dir;
  hagrt_model *m = nullptr;
  ASSERT_EQ(hagrt_open(writeFake(dir).c_str(), &m), HAGRT_OK);
  int64_t shape[2] = {1, 3};
  int32_t toks[3] = {1, 2, 3};
  hagrt_tensor in = {HAGRT_I32, 2, shape, toks};
  hagrt_tensor *out = reinterpret_cast<hagrt_tensor *>(1);
  EXPECT_EQ(hagrt_run(m, "forward", &in, &out), HAGRT_ERROR_RUN);
  EXPECT_EQ(out, nullptr);
  EXPECT_THAT(hagrt_last_error(), HasSubstr("no weights bound"));

  ASSERT_EQ(hagrt_init_weights(m, 7), HAGRT_OK);
  ASSERT_EQ(hagrt_run(m, "forward", &in, &out), HAGRT_OK) << hagrt_last_error();
  ASSERT_EQ(out->dtype, HAGRT_F32);
  ASSERT_EQ(out->rank, 3);
  EXPECT_EQ(out->shape[0], 1);
  EXPECT_EQ(out->shape[1], 3);
  EXPECT_EQ(out->shape[2], 8);
  std::vector<float> first(static_cast<float *>(out->data),
                           static_cast<float *>(out->data) + 24);
  hagrt_tensor_free(out);

  hagrt_tensor *loss = nullptr;
  ASSERT_EQ(hagrt_run(m, "loss", &in, &loss), HAGRT_OK);
  EXPECT_EQ(loss->rank, 0);
  hagrt_tensor_free(loss);

  std::string w = dir.path("w.safetensors");
  ASSERT_EQ(hagrt_save_weights(m, w.c_str()), HAGRT_OK);
  EXPECT_EQ(hagrt_save_weights(m, "/nonexistent/dir/w.safetensors"),
            HAGRT_ERROR_IO);
  hagrt_model *m2 = nullptr;
  ASSERT_EQ(hagrt_open(writeFake(dir).c_str(), &m2), HAGRT_OK);
  EXPECT_EQ(hagrt_load_weights(m2, dir.path("none.safetensors").c_str()),
            HAGRT_ERROR_WEIGHTS);
  ASSERT_EQ(hagrt_load_weights(m2, w.c_str()), HAGRT_OK);
  ASSERT_EQ(hagrt_run(m2, "forward", &in, &out), HAGRT_OK);
  EXPECT_EQ(0, std::memcmp(out->data, first.data(), 24 * sizeof(float)));
  hagrt_tensor_free(out);

  // Bad inputs.
  hagrt_tensor bad = in;
  bad.dtype = 42;
  EXPECT_EQ(hagrt_run(m, "forward", &bad, &out), HAGRT_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(hagrt_last_error(), "hagrt_run: unknown dtype code 42");
  bad = in;
  bad.rank = -1;
  EXPECT_EQ(hagrt_run(m, "forward", &bad, &out), HAGRT_ERROR_INVALID_ARGUMENT);
  bad = in;
  bad.data = nullptr;
  EXPECT_EQ(hagrt_run(m, "forward", &bad, &out), HAGRT_ERROR_RUN);
  EXPECT_THAT(hagrt_last_error(), HasSubstr("has no data"));
  int64_t negative[2] = {1, -3};
  bad = in;
  bad.shape = negative;
  EXPECT_EQ(hagrt_run(m, "forward", &bad, &out), HAGRT_ERROR_RUN);
  int32_t big[3] = {1, 9, 3};
  bad = in;
  bad.data = big;
  EXPECT_EQ(hagrt_run(m, "forward", &bad, &out), HAGRT_ERROR_RUN);
  EXPECT_THAT(hagrt_last_error(), HasSubstr("token 9 at [0, 1] is outside"));
  EXPECT_EQ(hagrt_run(m, "forward", nullptr, &out),
            HAGRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(hagrt_run(m, "forward", &in, nullptr),
            HAGRT_ERROR_INVALID_ARGUMENT);
  hagrt_close(m2);
  hagrt_close(m);
}

TEST(CApi, DecoderArgumentsAndErrors) {
  TempDir dir;
  hagrt_model *m = nullptr;
  ASSERT_EQ(hagrt_open(writeFake(dir).c_str(), &m), HAGRT_OK);
  hagrt_decoder *d = reinterpret_cast<hagrt_decoder *>(1);
  EXPECT_EQ(hagrt_decoder_create(nullptr, 1, &d), HAGRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(hagrt_decoder_create(m, 1, nullptr), HAGRT_ERROR_INVALID_ARGUMENT);
  // FakeModel has no "decode" entry (and no weights yet).
  EXPECT_EQ(hagrt_decoder_create(m, 1, &d), HAGRT_ERROR_RUN);
  EXPECT_EQ(d, nullptr);
  EXPECT_THAT(hagrt_last_error(), HasSubstr("cannot decode incrementally"));
  hagrt_tensor *out = nullptr;
  int64_t tok = 1;
  EXPECT_EQ(hagrt_decoder_step(nullptr, &tok, 1, &out),
            HAGRT_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(hagrt_decoder_position(nullptr), -1);
  hagrt_decoder_reset(nullptr);
  hagrt_decoder_free(nullptr);
  hagrt_close(m);
}

} // namespace
