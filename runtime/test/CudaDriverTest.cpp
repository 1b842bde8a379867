//===- CudaDriverTest.cpp - the driver API loaded at run time -------------===//
//
// Without an NVIDIA driver (this development machine, CI) loading fails with
// one line that says why; with the toolkit's stub libcuda the failure names
// CUDA_ERROR_STUB_LIBRARY. On a machine with a driver the device is
// described instead.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/CudaDriver.h"

#include "TestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <cstdlib>
#include <dlfcn.h>
#include <fstream>
#include <string>

using namespace hag::rt;
using ::testing::HasSubstr;

namespace {

/// Sets HAGRT_LIBCUDA for the scope.
struct LibcudaOverride {
  explicit LibcudaOverride(const std::string &path) {
    setenv("HAGRT_LIBCUDA", path.c_str(), 1);
  }
  ~LibcudaOverride() { unsetenv("HAGRT_LIBCUDA"); }
};

bool haveDriver() { return test::haveCudaDriver(); }

TEST(CudaDriver, WithoutADriverLoadingFailsWithOneLine) {
  if (haveDriver())
    GTEST_SKIP() << "this machine has an NVIDIA driver";
  Result<cuda::Driver> d = cuda::Driver::load();
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.message(),
              HasSubstr("libcuda.so.1 cannot be loaded (no NVIDIA driver on "
                        "this machine?)"));
  EXPECT_EQ(d.message().find('\n'), std::string::npos);
}

TEST(CudaDriver, AMissingLibraryIsNamed) {
  LibcudaOverride env("/nonexistent/libcuda.so.1");
  Result<cuda::Driver> d = cuda::Driver::load();
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.message(), HasSubstr("/nonexistent/libcuda.so.1 cannot be "
                                     "loaded"));
}

TEST(CudaDriver, TheToolkitStubIsNotADriver) {
  const std::string stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
  if (!std::ifstream(stub))
    GTEST_SKIP() << stub << " is not installed";
  LibcudaOverride env(stub);
  Result<cuda::Driver> d = cuda::Driver::load();
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.message(), HasSubstr("cuInit: CUDA_ERROR_STUB_LIBRARY"));
}

TEST(CudaDriver, WithADriverTheDeviceIsDescribed) {
  if (!haveDriver())
    GTEST_SKIP() << "no NVIDIA driver on this machine";
  Result<cuda::Driver> d = cuda::Driver::load();
  ASSERT_TRUE(d.ok()) << d.message();
  Result<int> n = d->deviceCount();
  ASSERT_TRUE(n.ok()) << n.message();
  ASSERT_GE(*n, 1);
  Result<cuda::DeviceInfo> dev = d->device(0);
  ASSERT_TRUE(dev.ok()) << dev.message();
  EXPECT_FALSE(dev->name.empty());
  EXPECT_GE(dev->ccMajor, 3);
  EXPECT_GT(dev->totalMemory, 0u);
  EXPECT_FALSE(d->device(*n).ok());
}

TEST(CudaDriver, ArchNames) {
  cuda::DeviceInfo a;
  a.ccMajor = 8;
  a.ccMinor = 0;
  EXPECT_EQ(a.arch(), "sm_80");
  a.ccMajor = 9;
  EXPECT_EQ(a.arch(), "sm_90a");
}

} // namespace
