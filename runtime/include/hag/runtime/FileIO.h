//===- FileIO.h - file mapping and atomic writes ----------------*- C++ -*-===//
//
// POSIX file helpers shared by the format readers and writers: a read-only
// memory mapping, and an atomic writer that never leaves a half-written file
// at the target path (write `path.tmp.<pid>`, fsync it, rename it over the
// target, fsync the directory).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_FILEIO_H
#define HAG_RUNTIME_FILEIO_H

#include "hag/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace hag::rt {

/// A read-only, private memory mapping of a whole file. Move-only; unmaps on
/// destruction. An empty file has size() == 0 and a null data().
///
/// As with any mapping, a file truncated by another process while mapped
/// raises SIGBUS on access; the runtime's own writers never truncate in
/// place (they replace files by rename).
class MappedFile {
public:
  /// Maps `path`; errors name the path and the system error.
  static Result<MappedFile> open(const std::string &path);

  MappedFile() = default;
  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  const uint8_t *data() const { return base; }
  size_t size() const { return length; }

private:
  const uint8_t *base = nullptr;
  size_t length = 0;
};

/// Writes a file atomically: data goes to `path.tmp.<pid>`; commit() fsyncs
/// it, renames it over `path` and fsyncs the directory. Destroying a writer
/// that was not committed (or whose commit failed) removes the temporary
/// file, so the previous contents of `path` are left intact on any error.
/// Two writers to the same path in one process share the temporary name and
/// must not run at once. A symlink at `path` is replaced, not followed.
class AtomicFileWriter {
public:
  /// Creates the temporary file next to `path`.
  static Result<AtomicFileWriter> create(const std::string &path);

  AtomicFileWriter(AtomicFileWriter &&other) noexcept;
  AtomicFileWriter &operator=(AtomicFileWriter &&other) noexcept;
  AtomicFileWriter(const AtomicFileWriter &) = delete;
  AtomicFileWriter &operator=(const AtomicFileWriter &) = delete;
  ~AtomicFileWriter();

  /// Appends `size` bytes. After a failure the writer is unusable.
  Status write(const void *data, size_t size);

  /// Makes the file visible at the target path.
  Status commit();

  /// The target path.
  const std::string &path() const { return target; }

private:
  AtomicFileWriter() = default;
  void discard();

  std::string target;
  std::string tempPath;
  int fd = -1;
  bool failed = false;
};

/// Writes `size` bytes to `path` atomically (see AtomicFileWriter).
Status writeFileAtomic(const std::string &path, const void *data, size_t size);

namespace testing {

/// Points in an atomic write where a test can inject a failure.
enum class WriteFault {
  None,
  /// Creating the temporary file fails.
  Create,
  /// The first write() fails.
  Write,
  /// The fsync of the temporary file fails.
  Sync,
  /// The rename over the target fails.
  Rename,
};

/// Makes every later atomic write in this process fail at `fault` (None
/// disables injection). For tests only; not thread-safe with concurrent
/// writers.
void injectWriteFault(WriteFault fault);

} // namespace testing

} // namespace hag::rt

#endif // HAG_RUNTIME_FILEIO_H
