//===- FileIOTest.cpp - mappings and atomic writes ------------------------===//

#include "hag/runtime/FileIO.h"
#include "hag/runtime/Npy.h"
#include "hag/runtime/SafeTensors.h"

#include "TestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <algorithm>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

using namespace hag::rt;
using namespace hag::rt::test;
using hag::rt::testing::WriteFault;
using ::testing::HasSubstr;

namespace {

/// Injects a write fault for the lifetime of the guard.
struct FaultGuard {
  explicit FaultGuard(WriteFault f) { hag::rt::testing::injectWriteFault(f); }
  ~FaultGuard() { hag::rt::testing::injectWriteFault(WriteFault::None); }
};

/// Names of the entries of `dir`.
std::vector<std::string> listDir(const std::string &dir) {
  std::vector<std::string> names;
  for (const auto &e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(MappedFile, MapsContentsAndEmptyFiles) {
  TempDir dir;
  writeText(dir.path("a"), "hello");
  Result<MappedFile> f = MappedFile::open(dir.path("a"));
  ASSERT_TRUE(f.ok()) << f.message();
  ASSERT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(f->data()), 5), "hello");
  MappedFile moved = std::move(*f);
  EXPECT_EQ(moved.size(), 5u);
  EXPECT_EQ(f->size(), 0u);

  writeText(dir.path("empty"), "");
  Result<MappedFile> e = MappedFile::open(dir.path("empty"));
  ASSERT_TRUE(e.ok()) << e.message();
  EXPECT_EQ(e->size(), 0u);
  EXPECT_EQ(e->data(), nullptr);

  Result<MappedFile> missing = MappedFile::open(dir.path("nope"));
  EXPECT_THAT(missing.message(),
              HasSubstr("nope: cannot open: No such file or directory"));
}

TEST(AtomicWrite, CreatesAndReplaces) {
  TempDir dir;
  std::string path = dir.path("f.bin");
  ASSERT_TRUE(writeFileAtomic(path, "one", 3).ok());
  EXPECT_EQ(readBytes(path), toBytes("one"));
  ASSERT_TRUE(writeFileAtomic(path, "second", 6).ok());
  EXPECT_EQ(readBytes(path), toBytes("second"));
  ASSERT_TRUE(writeFileAtomic(path, nullptr, 0).ok());
  EXPECT_TRUE(readBytes(path).empty());
  EXPECT_EQ(listDir(dir.str()), std::vector<std::string>{"f.bin"});
}

TEST(AtomicWrite, TempFileNameAndDiscard) {
  TempDir dir;
  std::string path = dir.path("f.bin");
  {
    Result<AtomicFileWriter> w = AtomicFileWriter::create(path);
    ASSERT_TRUE(w.ok()) << w.message();
    ASSERT_TRUE(w->write("abc", 3).ok());
    EXPECT_EQ(
        listDir(dir.str()),
        std::vector<std::string>{"f.bin.tmp." + std::to_string(::getpid())});
    // Destroyed without commit: nothing appears, the temp file goes.
  }
  EXPECT_TRUE(listDir(dir.str()).empty());
  Result<AtomicFileWriter> w = AtomicFileWriter::create(path);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->commit().ok());
  EXPECT_THAT(w->commit().message(), HasSubstr("commit after a failed or "
                                               "finished write"));
  EXPECT_THAT(w->write("x", 1).message(), HasSubstr("write after"));
}

TEST(AtomicWrite, InjectedFailuresKeepThePreviousFile) {
  TempDir dir;
  TensorMap tensors;
  tensors["w"] = patternTensor(DType::F32, {4, 4}, 1);
  HostTensor t = patternTensor(DType::F32, {3}, 2);
  for (WriteFault fault : {WriteFault::Create, WriteFault::Write,
                           WriteFault::Sync, WriteFault::Rename}) {
    for (const char *name : {"w.safetensors", "x.npy", "raw.bin"}) {
      std::string path = dir.path(name);
      writeText(path, "previous contents");
      Status s;
      {
        FaultGuard guard(fault);
        if (std::string(name) == "w.safetensors")
          s = writeSafeTensors(path, tensors);
        else if (std::string(name) == "x.npy")
          s = writeNpy(path, t);
        else
          s = writeFileAtomic(path, "new", 3);
      }
      ASSERT_FALSE(s.ok()) << name << " fault " << int(fault);
      EXPECT_THAT(s.message(), HasSubstr(path + ": "));
      EXPECT_THAT(s.message(), HasSubstr("injected failure"));
      EXPECT_EQ(readBytes(path), toBytes("previous contents"))
          << name << " fault " << int(fault);
    }
    EXPECT_EQ(listDir(dir.str()),
              (std::vector<std::string>{"raw.bin", "w.safetensors", "x.npy"}))
        << "temporary file left behind, fault " << int(fault);
  }
  // With injection off again, the writes succeed.
  ASSERT_TRUE(writeSafeTensors(dir.path("w.safetensors"), tensors).ok());
  EXPECT_TRUE(readSafeTensors(dir.path("w.safetensors")).ok());
}

TEST(AtomicWrite, RenameOverADirectoryFails) {
  TempDir dir;
  std::string target = dir.path("sub");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  writeText(dir.path("sub/keep"), "x");
  Status s = writeNpy(target, patternTensor(DType::U8, {2}, 1));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(target + ": cannot rename"));
  EXPECT_EQ(readBytes(dir.path("sub/keep")), toBytes("x"));
  EXPECT_EQ(listDir(dir.str()), std::vector<std::string>{"sub"});
}

TEST(AtomicWrite, MissingDirectoryFails) {
  TempDir dir;
  std::string path = dir.path("no/such/dir/w.safetensors");
  Status s = writeSafeTensors(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(),
              HasSubstr(path + ": cannot create " + path + ".tmp."));
  EXPECT_THAT(s.message(), HasSubstr("No such file or directory"));
  EXPECT_THAT(writeFileAtomic("", "x", 1).message(), HasSubstr("empty path"));
}

TEST(AtomicWrite, ReadOnlyDirectoryKeepsPreviousFile) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root ignores directory permissions";
  TempDir dir;
  std::string sub = dir.path("ro");
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  std::string path = sub + "/x.npy";
  writeText(path, "previous");
  ASSERT_EQ(::chmod(sub.c_str(), 0555), 0);
  Status s = writeNpy(path, patternTensor(DType::F32, {2}, 1));
  ::chmod(sub.c_str(), 0755);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("Permission denied"));
  EXPECT_EQ(readBytes(path), toBytes("previous"));
}

TEST(AtomicWrite, RelativePath) {
  TempDir dir;
  char old[4096];
  ASSERT_NE(::getcwd(old, sizeof(old)), nullptr);
  ASSERT_EQ(::chdir(dir.str().c_str()), 0);
  Status s = writeFileAtomic("rel.bin", "abc", 3);
  ASSERT_EQ(::chdir(old), 0);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(readBytes(dir.path("rel.bin")), toBytes("abc"));
}

} // namespace
