//===- Nccl.cpp - NCCL, loaded at run time --------------------------------===//

#include "hag/runtime/Nccl.h"
#include "hag/runtime/CudaSession.h"

#include "support/StringUtil.h"

#include <chrono>
#include <cstdlib>
#include <dlfcn.h>
#include <thread>
#include <type_traits>

using namespace hag::rt;
using namespace hag::rt::nccl;
using namespace hag::rt::detail;

namespace {
// nccl.h's ABI: ncclResult_t is an int enum, ncclComm_t a pointer.
using ncclResult = int;
constexpr int kSuccess = 0, kInProgress = 7;
constexpr int kFloat32 = 7; // ncclFloat32
constexpr int kSum = 0, kAvg = 4;
struct RawId {
  char internal[128];
};
static_assert(sizeof(RawId) == sizeof(UniqueId), "ncclUniqueId is 128 bytes");
} // namespace

struct Library::Api {
  void *handle = nullptr;
  int version = 0;
  ncclResult (*ncclGetVersion)(int *) = nullptr;
  ncclResult (*ncclGetUniqueId)(RawId *) = nullptr;
  ncclResult (*ncclCommInitRank)(void **, int, RawId, int) = nullptr;
  ncclResult (*ncclAllReduce)(const void *, void *, size_t, int, int, void *,
                              void *) = nullptr;
  ncclResult (*ncclCommDestroy)(void *) = nullptr;
  ncclResult (*ncclCommAbort)(void *) = nullptr;
  ncclResult (*ncclCommGetAsyncError)(void *, ncclResult *) = nullptr;
  const char *(*ncclGetErrorString)(ncclResult) = nullptr;

  // The library stays loaded for the process: ncclGetUniqueId starts a
  // bootstrap thread inside it that outlives any one caller.
  ~Api() = default;
  Status check(ncclResult r, const char *call) const {
    if (r == kSuccess)
      return Status::success();
    const char *text = ncclGetErrorString ? ncclGetErrorString(r) : nullptr;
    return makeError(call, ": NCCL error ", r,
                     text ? strCat(" (", text, ")") : std::string());
  }
};

Library::Library(std::unique_ptr<Api> a) : impl(std::move(a)) {}
Library::Library(Library &&) noexcept = default;
Library &Library::operator=(Library &&) noexcept = default;
Library::~Library() = default;

Result<Library> Library::load() {
  auto api = std::make_unique<Api>();
  const char *override = std::getenv("HAGRT_LIBNCCL");
  std::string tried;
  for (const char *name :
       {override && *override ? override : "libnccl.so.2",
        override && *override ? nullptr
                              : "/usr/local/cuda/lib64/libnccl.so.2"}) {
    if (!name)
      continue;
    api->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (api->handle)
      break;
    const char *why = dlerror();
    tried += strCat(tried.empty() ? "" : "; ", why ? why : name);
  }
  if (!api->handle)
    return makeError("NCCL cannot be loaded (libnccl.so.2, from the CUDA "
                     "toolkit or libnccl2): ",
                     tried);
  auto resolve = [&](auto &fn, const char *name) -> Status {
    void *sym = dlsym(api->handle, name);
    if (!sym)
      return makeError("libnccl lacks ", name, " (NCCL too old?)");
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(sym);
    return Status::success();
  };
  for (Status s : {resolve(api->ncclGetVersion, "ncclGetVersion"),
                   resolve(api->ncclGetUniqueId, "ncclGetUniqueId"),
                   resolve(api->ncclCommInitRank, "ncclCommInitRank"),
                   resolve(api->ncclAllReduce, "ncclAllReduce"),
                   resolve(api->ncclCommDestroy, "ncclCommDestroy"),
                   resolve(api->ncclCommAbort, "ncclCommAbort"),
                   resolve(api->ncclCommGetAsyncError, "ncclCommGetAsyncError"),
                   resolve(api->ncclGetErrorString, "ncclGetErrorString")})
    if (!s.ok())
      return s;
  if (Status s =
          api->check(api->ncclGetVersion(&api->version), "ncclGetVersion");
      !s.ok())
    return s;
  // ncclAvg (used for mean all-reduces) arrived in NCCL 2.10.
  if (api->version < 21000)
    return makeError("NCCL ", api->version, " is too old (2.10 or later)");
  return Library(std::move(api));
}

int Library::version() const { return impl->version; }

Result<UniqueId> Library::uniqueId() const {
  RawId raw{};
  if (Status s = impl->check(impl->ncclGetUniqueId(&raw), "ncclGetUniqueId");
      !s.ok())
    return s;
  UniqueId id;
  static_assert(sizeof(id.bytes) == sizeof(raw.internal), "same size");
  for (size_t i = 0; i < sizeof(raw.internal); ++i)
    id.bytes[i] = raw.internal[i];
  return id;
}

Result<Comm> Comm::create(const Library &library, int ranks, const UniqueId &id,
                          int rank, const std::string &what) {
  if (ranks < 1 || rank < 0 || rank >= ranks)
    return makeError(what, ": rank ", rank, " of ", ranks, " is out of range");
  const Library::Api &api = library.api();
  RawId raw;
  for (size_t i = 0; i < sizeof(raw.internal); ++i)
    raw.internal[i] = id.bytes[i];
  Comm c;
  c.api = &api;
  c.what = what;
  if (Status s = api.check(api.ncclCommInitRank(&c.comm, ranks, raw, rank),
                           "ncclCommInitRank");
      !s.ok())
    return s.withPrefix(what);
  return c;
}

Comm::Comm(Comm &&o) noexcept
    : api(o.api), comm(o.comm), what(std::move(o.what)) {
  o.comm = nullptr;
}

Comm &Comm::operator=(Comm &&o) noexcept {
  std::swap(api, o.api);
  std::swap(comm, o.comm);
  std::swap(what, o.what);
  return *this;
}

Comm::~Comm() {
  if (comm && api)
    api->ncclCommDestroy(comm);
}

Status Comm::allReduce(float *data, int64_t count, bool mean, void *stream,
                       double timeoutSeconds) {
  if (!comm)
    return makeError(what, ": the NCCL communicator was aborted");
  if (Status s =
          api->check(api->ncclAllReduce(data, data, size_t(count), kFloat32,
                                        mean ? kAvg : kSum, comm, stream),
                     "ncclAllReduce");
      !s.ok())
    return s.withPrefix(what);
  // Wait for the stream, watching NCCL's asynchronous errors (a peer that
  // died shows as a remote error or never arrives).
  auto start = std::chrono::steady_clock::now();
  for (int spins = 0;; ++spins) {
    Result<bool> done = cuda::Session::query();
    if (!done.ok())
      return done.status().withPrefix(what);
    if (*done)
      return Status::success();
    ncclResult async = kSuccess;
    api->ncclCommGetAsyncError(comm, &async);
    double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if ((async != kSuccess && async != kInProgress) ||
        waited > timeoutSeconds) {
      api->ncclCommAbort(comm);
      comm = nullptr;
      if (async != kSuccess && async != kInProgress)
        return api->check(async, "all_reduce (NCCL)").withPrefix(what);
      return makeError(what, ": all_reduce (NCCL) of ", count,
                       " floats did not finish within ", timeoutSeconds,
                       " s (a rank died or stopped answering)");
    }
    if (spins > 100)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}
