//===- NcclTest.cpp - NCCL loaded at run time -----------------------------===//
//
// What runs without a GPU: loading NCCL, unique ids (the bytes hag-run
// sends from a group's first rank to the others over MPI), and a clear
// error from making a communicator. With a GPU, the communicator is made
// (one rank) and an all-reduce of one rank leaves the data as it was.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/Nccl.h"
#include "hag/runtime/CudaSession.h"

#include "TestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>

using namespace hag::rt;
using ::testing::HasSubstr;

namespace {

TEST(Nccl, LoadsAndMakesUniqueIds) {
  Result<nccl::Library> lib = nccl::Library::load();
  if (!lib.ok())
    GTEST_SKIP() << "no NCCL here: " << lib.message();
  EXPECT_GE(lib->version(), 21000);
  Result<nccl::UniqueId> a = lib->uniqueId();
  Result<nccl::UniqueId> b = lib->uniqueId();
  ASSERT_TRUE(a.ok()) << a.message();
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_NE(std::memcmp(a->bytes, b->bytes, sizeof(a->bytes)), 0);
}

TEST(Nccl, MissingLibraryIsNamed) {
  setenv("HAGRT_LIBNCCL", "/nonexistent/libnccl.so.2", 1);
  Result<nccl::Library> lib = nccl::Library::load();
  unsetenv("HAGRT_LIBNCCL");
  ASSERT_FALSE(lib.ok());
  EXPECT_THAT(lib.message(), HasSubstr("NCCL cannot be loaded"));
  EXPECT_THAT(lib.message(), HasSubstr("/nonexistent/libnccl.so.2"));
}

TEST(Nccl, CommunicatorWithoutAGpuIsAnError) {
  if (test::haveCudaDriver())
    GTEST_SKIP() << "this machine has an NVIDIA driver";
  Result<nccl::Library> lib = nccl::Library::load();
  if (!lib.ok())
    GTEST_SKIP() << "no NCCL here: " << lib.message();
  Result<nccl::UniqueId> id = lib->uniqueId();
  ASSERT_TRUE(id.ok());
  Result<nccl::Comm> c = nccl::Comm::create(*lib, 1, *id, 0, "tensor group");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.message(), HasSubstr("tensor group: ncclCommInitRank: NCCL "
                                     "error"));
  EXPECT_EQ(c.message().find('\n'), std::string::npos);
  Result<nccl::Comm> bad = nccl::Comm::create(*lib, 2, *id, 2, "data group");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message(), "data group: rank 2 of 2 is out of range");
}

TEST(Nccl, OneRankAllReduceOnTheGpu) {
  if (!test::haveCudaDriver() || !cuda::Session::start(0).ok())
    GTEST_SKIP() << "no GPU here";
  Result<nccl::Library> lib = nccl::Library::load();
  ASSERT_TRUE(lib.ok()) << lib.message();
  Result<nccl::UniqueId> id = lib->uniqueId();
  ASSERT_TRUE(id.ok());
  Result<nccl::Comm> c = nccl::Comm::create(*lib, 1, *id, 0, "tensor group");
  ASSERT_TRUE(c.ok()) << c.message();
  const float in[3] = {1.5f, -2.0f, 4.0f};
  Result<void *> p = cuda::Session::allocate(sizeof(in));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(cuda::Session::upload(*p, in, sizeof(in)).ok());
  Status s = c->allReduce(static_cast<float *>(*p), 3, /*mean=*/false,
                          cuda::Session::stream(), 30.0);
  ASSERT_TRUE(s.ok()) << s.message();
  float out[3] = {};
  ASSERT_TRUE(cuda::Session::download(out, *p, sizeof(out)).ok());
  cuda::Session::release(*p);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(out[i], in[i]);
}

} // namespace
