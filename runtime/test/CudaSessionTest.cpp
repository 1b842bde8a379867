//===- CudaSessionTest.cpp - the entry points of CUDA artifacts -----------===//
//
// What a CUDA artifact's code does on a machine without a GPU: its kernel
// images register without the driver (so it loads), and anything that
// would touch the GPU is latched as one error that the caller collects,
// instead of crashing. On a machine with a driver the session starts.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/CudaSession.h"

#include "TestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <cstdlib>
#include <dlfcn.h>
#include <string>
#include <vector>

using namespace hag::rt;
using ::testing::HasSubstr;

namespace {

TEST(CudaSession, KernelImagesRegisterWithoutADriver) {
  static const char image[] = "not a cubin: never read without a session";
  void *module = mgpuModuleLoad(const_cast<char *>(image), sizeof(image));
  ASSERT_NE(module, nullptr);
  if (!cuda::Session::active()) {
    // The first launch attempt latches one error; what follows is skipped.
    EXPECT_EQ(mgpuModuleGetFunction(module, "k"), nullptr);
    mgpuLaunchKernel(nullptr, 1, 1, 1, 32, 1, 1, 0, mgpuStreamCreate(), nullptr,
                     nullptr, 0);
    EXPECT_EQ(hagrt_cuda_alloc(64), nullptr);
    hagrt_cuda_free(nullptr);
    // A device scalar's read-back after the failure: 0, no crash.
    EXPECT_EQ(hagrt_cuda_read_f32(4096), 0.0f);
    EXPECT_EQ(hagrt_cuda_read_i8(4096), 0);
    Status s = cuda::Session::takeError();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message(),
              "a CUDA artifact's code ran without a CUDA session (hag-run "
              "--device cuda, or hag::rt::cuda::Session::start)");
    // Collected: the next call starts clean.
    EXPECT_TRUE(cuda::Session::takeError().ok());
  }
  mgpuModuleUnload(module);
}

TEST(CudaSession, StartingWithoutADriverIsOneLine) {
  if (test::haveCudaDriver())
    GTEST_SKIP() << "this machine has an NVIDIA driver";
  setenv("HAGRT_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
  Status s = cuda::Session::start(0);
  unsetenv("HAGRT_LIBCUDA");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("/nonexistent/libcuda.so.1 cannot be "
                                     "loaded (no NVIDIA driver on this "
                                     "machine?)"));
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_FALSE(cuda::Session::active());
  Result<void *> p = cuda::Session::allocate(16);
  EXPECT_FALSE(p.ok());
}

TEST(CudaSession, StartsWhereThereIsAGPU) {
  if (!test::haveCudaDriver())
    GTEST_SKIP() << "no NVIDIA driver on this machine";
  Status s = cuda::Session::start(0);
  if (!s.ok())
    GTEST_SKIP() << s.message();
  // Device memory round trip.
  Result<void *> p = cuda::Session::allocate(4 * sizeof(float));
  ASSERT_TRUE(p.ok()) << p.message();
  const float in[4] = {1.0f, -2.0f, 3.5f, 0.25f};
  float out[4] = {};
  ASSERT_TRUE(cuda::Session::upload(*p, in, sizeof(in)).ok());
  ASSERT_TRUE(cuda::Session::download(out, *p, sizeof(out)).ok());
  cuda::Session::release(*p);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(out[i], in[i]);
  EXPECT_TRUE(cuda::Session::takeError().ok());
  // Timing: events around work on the stream (a 64 MiB upload here) give
  // a positive time.
  std::vector<char> big(64 << 20, 1);
  Result<void *> q = cuda::Session::allocate(big.size());
  ASSERT_TRUE(q.ok()) << q.message();
  cuda::Session::markBegin();
  ASSERT_TRUE(cuda::Session::upload(*q, big.data(), big.size()).ok());
  cuda::Session::markEnd();
  Result<double> ms = cuda::Session::markedMs();
  cuda::Session::release(*q);
  ASSERT_TRUE(ms.ok()) << ms.message();
  EXPECT_GT(*ms, 0.0);
  EXPECT_TRUE(cuda::Session::takeError().ok());
}

TEST(CudaSession, TimingNeedsASession) {
  if (cuda::Session::active())
    GTEST_SKIP() << "a CUDA session is running";
  // Marks without a session record nothing; the time is an error, not a
  // number.
  cuda::Session::markBegin();
  cuda::Session::markEnd();
  Result<double> ms = cuda::Session::markedMs();
  ASSERT_FALSE(ms.ok());
  EXPECT_THAT(ms.message(), HasSubstr("no CUDA session"));
  EXPECT_TRUE(cuda::Session::takeError().ok());
}

} // namespace
