//===- Nccl.h - NCCL, loaded at run time ------------------------*- C++ -*-===//
//
// The GPU collectives of multi-process CUDA runs: NCCL (libnccl.so.2 from
// the CUDA toolkit or the system), loaded with dlopen like the driver, so
// nothing links against it. A group's communicator is made from a unique
// id that its first rank creates and sends to the others (over MPI, see
// hag-run's Parallel.cpp); all-reduces run on the CUDA session's stream and
// are waited for with a timeout, after which the communicator is aborted
// and the error names the collective, so a dead rank never hangs the job.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_NCCL_H
#define HAG_RUNTIME_NCCL_H

#include "hag/runtime/Status.h"

#include <cstdint>
#include <memory>
#include <string>

namespace hag::rt::nccl {

/// ncclUniqueId (NCCL_UNIQUE_ID_BYTES = 128): plain bytes, sent as is.
struct UniqueId {
  char bytes[128];
};

class Library {
public:
  /// Loads libnccl.so.2 (HAGRT_LIBNCCL overrides; the CUDA toolkit's
  /// /usr/local/cuda/lib64 is tried after the loader's paths) and resolves
  /// the entry points. Errors say which step failed.
  static Result<Library> load();
  Library(Library &&) noexcept;
  Library &operator=(Library &&) noexcept;
  ~Library();

  /// NCCL's version code, e.g. 22803 for 2.28.3.
  int version() const;
  /// A fresh unique id (ncclGetUniqueId; needs no GPU).
  Result<UniqueId> uniqueId() const;

  struct Api;
  const Api &api() const { return *impl; }

private:
  explicit Library(std::unique_ptr<Api> api);
  std::unique_ptr<Api> impl;
};

/// One communicator over `ranks` processes (a parallel group).
class Comm {
public:
  /// ncclCommInitRank on the calling thread's current CUDA context (start
  /// the CUDA session first). Collective: every member calls it with the
  /// same id. `what` names the group in messages.
  static Result<Comm> create(const Library &library, int ranks,
                             const UniqueId &id, int rank,
                             const std::string &what);
  Comm(Comm &&) noexcept;
  Comm &operator=(Comm &&) noexcept;
  ~Comm();

  /// Sums (or averages) `count` floats at device address `data` in place
  /// over the group on `stream`, then waits for it at most
  /// `timeoutSeconds`; on a timeout or an asynchronous NCCL error the
  /// communicator is aborted and the error names the group.
  Status allReduce(float *data, int64_t count, bool mean, void *stream,
                   double timeoutSeconds);

private:
  Comm() = default;
  const Library::Api *api = nullptr;
  void *comm = nullptr;
  std::string what;
};

} // namespace hag::rt::nccl

#endif // HAG_RUNTIME_NCCL_H
