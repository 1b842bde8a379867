//===- CudaTargetTest.cpp - ptxas reports and the launch proofs -----------===//
//
// The resource proofs of hag-compile --target=cuda on ptxas -v output of
// the shape ptxas 13 prints, and on kernels that break each limit of sm_80
// and sm_90a.
//
//===----------------------------------------------------------------------===//

#include "hag/Target/Cuda.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

using namespace mlir;
using namespace mlir::hag;
using ::testing::HasSubstr;

namespace {

// Two entries; the first spills, and the libdevice helper between them has
// properties of its own that belong to no kernel.
const char *kLog =
    "ptxas info    : 0 bytes gmem\n"
    "ptxas info    : Compiling entry function 'hag_matmul_nt_f16' for "
    "'sm_80'\n"
    "ptxas info    : Function properties for hag_matmul_nt_f16\n"
    "    8 bytes stack frame, 12 bytes spill stores, 8 bytes spill loads\n"
    "ptxas info    : Used 128 registers, used 1 barriers, 8 bytes cumulative "
    "stack size, 20480 bytes smem, 520 bytes cmem[0], 8 bytes cmem[2]\n"
    "ptxas info    : Function properties for __internal_trig_reduction\n"
    "    40 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
    "ptxas info    : Compiling entry function 'forward_kernel' for 'sm_80'\n"
    "ptxas info    : Function properties for forward_kernel\n"
    "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
    "ptxas info    : Used 24 registers, used 0 barriers, 592 bytes cmem[0]\n";

KernelResources kernel(int64_t threads, int64_t registers, int64_t shared) {
  KernelResources k;
  k.module = "m";
  k.name = "k";
  k.threads = threads;
  k.registers = registers;
  k.sharedBytes = shared;
  return k;
}

TEST(CudaTarget, ParsesPtxasVerboseOutput) {
  std::vector<KernelResources> ks = parsePtxasVerbose(kLog);
  ASSERT_EQ(ks.size(), 2u);
  // Sorted by name.
  EXPECT_EQ(ks[0].name, "forward_kernel");
  EXPECT_EQ(ks[0].registers, 24);
  EXPECT_EQ(ks[0].sharedBytes, 0);
  EXPECT_EQ(ks[0].stackBytes, 0);
  EXPECT_EQ(ks[1].name, "hag_matmul_nt_f16");
  EXPECT_EQ(ks[1].registers, 128);
  EXPECT_EQ(ks[1].sharedBytes, 20480);
  EXPECT_EQ(ks[1].stackBytes, 8);
  EXPECT_EQ(ks[1].spillStoreBytes, 12);
  EXPECT_EQ(ks[1].spillLoadBytes, 8);
}

TEST(CudaTarget, UnreadableRegisterCountsStayUnknown) {
  // A kernel whose "Used" line cannot be read keeps registers = -1, which
  // compileGPUModules refuses (it cannot prove the kernel launches).
  std::vector<KernelResources> ks = parsePtxasVerbose(
      "ptxas info    : Compiling entry function 'k' for 'sm_80'\n"
      "ptxas info    : Used many registers, used 0 barriers\n");
  ASSERT_EQ(ks.size(), 1u);
  EXPECT_EQ(ks[0].registers, -1);
  ks = parsePtxasVerbose(
      "ptxas info    : Compiling entry function 'k' for 'sm_80'\n");
  ASSERT_EQ(ks.size(), 1u);
  EXPECT_EQ(ks[0].registers, -1);
}

TEST(CudaTarget, OccupancyOfTheMatmulKernel) {
  std::string error;
  // 8 warps x 128 registers = 32768 of 65536: two blocks per SM.
  KernelResources k = kernel(256, 128, 20480);
  ASSERT_TRUE(succeeded(checkKernelLaunch(k, "sm_80", error))) << error;
  EXPECT_EQ(k.blocksPerSM, 2);
  EXPECT_EQ(k.limitedBy, "registers");
  // 142 registers round up to 144 per thread: 36864 per block, one block.
  k = kernel(256, 142, 20480);
  ASSERT_TRUE(succeeded(checkKernelLaunch(k, "sm_90a", error))) << error;
  EXPECT_EQ(k.blocksPerSM, 1);
  // Few registers: the 2048 threads per SM bound.
  k = kernel(256, 24, 0);
  ASSERT_TRUE(succeeded(checkKernelLaunch(k, "sm_80", error))) << error;
  EXPECT_EQ(k.blocksPerSM, 8);
  EXPECT_EQ(k.limitedBy, "threads");
  // Shared memory: (40 KiB + 1 KiB reserved) per block, 164 KiB on sm_80
  // (4 blocks) and 228 KiB on sm_90a (5 blocks).
  k = kernel(128, 32, 40 * 1024);
  ASSERT_TRUE(succeeded(checkKernelLaunch(k, "sm_80", error))) << error;
  EXPECT_EQ(k.blocksPerSM, 4);
  EXPECT_EQ(k.limitedBy, "shared memory");
  ASSERT_TRUE(succeeded(checkKernelLaunch(k, "sm_90a", error))) << error;
  EXPECT_EQ(k.blocksPerSM, 5);
}

TEST(CudaTarget, KernelsThatCannotLaunchAreErrorsWithTheNumbers) {
  std::string error;
  KernelResources k = kernel(1024, 128, 0);
  EXPECT_TRUE(failed(checkKernelLaunch(k, "sm_80", error)));
  EXPECT_EQ(error, "kernel 'k' (gpu.module @m) cannot launch on sm_80: 1024 "
                   "threads x 128 registers = 131072 registers per block "
                   "(allocated per warp) > 65536");
  k = kernel(2048, 16, 0);
  EXPECT_TRUE(failed(checkKernelLaunch(k, "sm_90a", error)));
  EXPECT_THAT(error, HasSubstr("2048 threads per block > 1024"));
  k = kernel(128, 32, 64 * 1024);
  EXPECT_TRUE(failed(checkKernelLaunch(k, "sm_90a", error)));
  EXPECT_THAT(error, HasSubstr("65536 bytes of static shared memory > 49152"));
  k = kernel(128, 300, 0);
  EXPECT_TRUE(failed(checkKernelLaunch(k, "sm_80", error)));
  EXPECT_THAT(error, HasSubstr("300 registers per thread > 255"));
  k = kernel(0, 32, 0);
  EXPECT_TRUE(failed(checkKernelLaunch(k, "sm_80", error)));
  EXPECT_THAT(error, HasSubstr("block size is not known at compile time"));
}

TEST(CudaTarget, SupportedArchitectures) {
  EXPECT_TRUE(isSupportedGPUArch("sm_80"));
  EXPECT_TRUE(isSupportedGPUArch("sm_90a"));
  EXPECT_FALSE(isSupportedGPUArch("sm_90"));
  EXPECT_FALSE(isSupportedGPUArch("sm_70"));
}

TEST(CudaTarget, MissingToolkitIsNamed) {
  CUDATargetOptions o;
  o.toolkit = "/nonexistent/cuda";
  std::string error;
  EXPECT_TRUE(failed(findCudaToolkit(o, error)));
  EXPECT_THAT(error, HasSubstr("/nonexistent/cuda/bin/ptxas"));
  EXPECT_THAT(error, HasSubstr("HAG_CUDA_PATH"));
}

} // namespace
