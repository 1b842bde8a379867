//===- FileIO.cpp - file mapping and atomic writes ------------------------===//

#include "hag/runtime/FileIO.h"

#include "support/StringUtil.h"

#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

using namespace hag::rt;
using namespace hag::rt::detail;

static std::atomic<testing::WriteFault> injectedFault{
    testing::WriteFault::None};

void hag::rt::testing::injectWriteFault(WriteFault fault) {
  injectedFault.store(fault);
}

static bool faultAt(testing::WriteFault point) {
  return injectedFault.load() == point;
}

static int closeNoIntr(int fd) {
  // On Linux the descriptor is released even when close() reports EINTR, so
  // it must not be retried.
  return ::close(fd);
}

//===----------------------------------------------------------------------===//
// MappedFile
//===----------------------------------------------------------------------===//

Result<MappedFile> MappedFile::open(const std::string &path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return makeError(path, ": cannot open: ", errnoMessage(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    closeNoIntr(fd);
    return makeError(path, ": cannot stat: ", errnoMessage(err));
  }
  if (S_ISDIR(st.st_mode)) {
    closeNoIntr(fd);
    return makeError(path, ": is a directory");
  }
  if (!S_ISREG(st.st_mode)) {
    closeNoIntr(fd);
    return makeError(path, ": not a regular file");
  }
  MappedFile file;
  file.length = static_cast<size_t>(st.st_size);
  if (file.length > 0) {
    void *p = ::mmap(nullptr, file.length, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      closeNoIntr(fd);
      return makeError(path, ": cannot map ", file.length,
                       " bytes: ", errnoMessage(err));
    }
    file.base = static_cast<const uint8_t *>(p);
  }
  closeNoIntr(fd);
  return file;
}

MappedFile::MappedFile(MappedFile &&other) noexcept
    : base(std::exchange(other.base, nullptr)),
      length(std::exchange(other.length, 0)) {}

MappedFile &MappedFile::operator=(MappedFile &&other) noexcept {
  if (this != &other) {
    if (base)
      ::munmap(const_cast<uint8_t *>(base), length);
    base = std::exchange(other.base, nullptr);
    length = std::exchange(other.length, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (base)
    ::munmap(const_cast<uint8_t *>(base), length);
}

//===----------------------------------------------------------------------===//
// AtomicFileWriter
//===----------------------------------------------------------------------===//

Result<AtomicFileWriter> AtomicFileWriter::create(const std::string &path) {
  if (path.empty())
    return Status::error("cannot write a file with an empty path");
  AtomicFileWriter w;
  w.target = path;
  w.tempPath = strCat(path, ".tmp.", static_cast<long long>(::getpid()));
  if (faultAt(testing::WriteFault::Create))
    return makeError(path, ": cannot create ", w.tempPath,
                     ": injected failure");
  int fd;
  do {
    fd = ::open(w.tempPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return makeError(path, ": cannot create ", w.tempPath, ": ",
                     errnoMessage(errno));
  w.fd = fd;
  return w;
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter &&other) noexcept
    : target(std::move(other.target)), tempPath(std::move(other.tempPath)),
      fd(std::exchange(other.fd, -1)),
      failed(std::exchange(other.failed, false)) {}

AtomicFileWriter &
AtomicFileWriter::operator=(AtomicFileWriter &&other) noexcept {
  if (this != &other) {
    discard();
    target = std::move(other.target);
    tempPath = std::move(other.tempPath);
    fd = std::exchange(other.fd, -1);
    failed = std::exchange(other.failed, false);
  }
  return *this;
}

AtomicFileWriter::~AtomicFileWriter() { discard(); }

void AtomicFileWriter::discard() {
  if (fd >= 0) {
    closeNoIntr(fd);
    fd = -1;
    ::unlink(tempPath.c_str());
  }
}

Status AtomicFileWriter::write(const void *data, size_t size) {
  if (fd < 0 || failed)
    return makeError(target, ": write after a failed or finished write");
  if (faultAt(testing::WriteFault::Write)) {
    failed = true;
    return makeError(target, ": cannot write ", tempPath, ": injected failure");
  }
  const uint8_t *p = static_cast<const uint8_t *>(data);
  while (size > 0) {
    // Linux writes at most ~2 GiB per call.
    size_t chunk = size < (size_t(1) << 30) ? size : (size_t(1) << 30);
    ssize_t n = ::write(fd, p, chunk);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      failed = true;
      return makeError(target, ": cannot write ", tempPath, ": ",
                       errnoMessage(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::success();
}

/// The directory holding `path` ("." for a bare name).
static std::string parentDirectory(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

Status AtomicFileWriter::commit() {
  if (fd < 0 || failed)
    return makeError(target, ": commit after a failed or finished write");
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 || faultAt(testing::WriteFault::Sync)) {
    int err = rc != 0 ? errno : EIO;
    failed = true;
    discard();
    return makeError(target, ": cannot sync ", tempPath, ": ",
                     rc != 0 ? errnoMessage(err) : "injected failure");
  }
  if (closeNoIntr(fd) != 0) {
    int err = errno;
    fd = -1;
    ::unlink(tempPath.c_str());
    failed = true;
    return makeError(target, ": cannot close ", tempPath, ": ",
                     errnoMessage(err));
  }
  fd = -1;
  if (faultAt(testing::WriteFault::Rename) ||
      ::rename(tempPath.c_str(), target.c_str()) != 0) {
    bool injected = faultAt(testing::WriteFault::Rename);
    int err = errno;
    ::unlink(tempPath.c_str());
    failed = true;
    return makeError(target, ": cannot rename ", tempPath, " over it: ",
                     injected ? "injected failure" : errnoMessage(err));
  }
  // Persist the rename itself. Some file systems cannot sync directories
  // (EINVAL); the data is in place there regardless.
  std::string dir = parentDirectory(target);
  int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    do {
      rc = ::fsync(dirFd);
    } while (rc != 0 && errno == EINTR);
    int err = errno;
    closeNoIntr(dirFd);
    if (rc != 0 && err != EINVAL && err != EROFS)
      return makeError(target, ": written, but syncing directory ", dir,
                       " failed: ", errnoMessage(err));
  }
  return Status::success();
}

Status hag::rt::writeFileAtomic(const std::string &path, const void *data,
                                size_t size) {
  Result<AtomicFileWriter> w = AtomicFileWriter::create(path);
  if (!w.ok())
    return w.status();
  if (Status s = w->write(data, size); !s.ok())
    return s;
  return w->commit();
}
