//===- CudaSession.cpp - the GPU behind CUDA artifacts --------------------===//

#include "hag/runtime/CudaSession.h"

#include "support/StringUtil.h"

#include <mutex>
#include <optional>
#include <string>

using namespace hag::rt;
using namespace hag::rt::cuda;
using namespace hag::rt::detail;

namespace {

// Driver API ABI (cuda.h): handles are pointers, device pointers 64-bit.
using CUresult = int;
using CUdevice = int;
using CUcontext = void *;
using CUmodule = void *;
using CUfunction = void *;
using CUstream = void *;
using CUdeviceptr = unsigned long long;
using CUevent = void *;

struct State {
  std::mutex mu;
  std::optional<Driver> driver;
  DeviceInfo info;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
  std::string error; // the first latched error
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice *, int) = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule *, const void *) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule,
                                  const char *) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **) = nullptr;
  CUresult (*cuStreamCreate)(CUstream *, unsigned) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream) = nullptr;
  CUresult (*cuStreamQuery)(CUstream) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
  // Stream-ordered allocation (CUDA 11.2+), when the driver has it: a
  // free neither waits for the device nor blocks the host.
  CUresult (*cuMemAllocAsync)(CUdeviceptr *, size_t, CUstream) = nullptr;
  CUresult (*cuMemFreeAsync)(CUdeviceptr, CUstream) = nullptr;
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t) = nullptr;
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t) = nullptr;
  // Events for markBegin/markEnd (optional: timing only).
  CUresult (*cuEventCreate)(CUevent *, unsigned) = nullptr;
  CUresult (*cuEventRecord)(CUevent, CUstream) = nullptr;
  CUresult (*cuEventSynchronize)(CUevent) = nullptr;
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent) = nullptr;
  CUevent begin = nullptr, end = nullptr;
  bool begun = false, marked = false;

  void latch(const std::string &what) {
    if (error.empty())
      error = what;
  }
  /// Latches a failed driver call; true on success.
  bool ok(CUresult r, const char *call) {
    if (r == 0)
      return true;
    latch(driver ? driver->check(r, call).message()
                 : std::string(call) + " failed");
    return false;
  }
  bool active() const { return driver.has_value() && stream; }
  /// Device memory on the session's stream (stream-ordered where the
  /// driver can); cuMemAlloc rejects 0 bytes, and an empty buffer still
  /// needs an address. Session::allocate and the artifacts' buffers both
  /// come from here, so release frees either.
  CUresult allocate(CUdeviceptr *p, size_t bytes) {
    size_t n = bytes ? bytes : 1;
    return cuMemAllocAsync ? cuMemAllocAsync(p, n, stream) : cuMemAlloc(p, n);
  }
  /// For the Status-returning calls: the session is running and its
  /// context current on this thread (nothing is latched).
  Status enter() {
    if (!active())
      return makeError("no CUDA session (Session::start)");
    return driver->check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  }
  /// Makes the context current on the calling thread.
  bool current() {
    if (!active()) {
      latch("a CUDA artifact's code ran without a CUDA session (hag-run "
            "--device cuda, or hag::rt::cuda::Session::start)");
      return false;
    }
    return ok(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  }
};

State &state() {
  // Never destroyed: artifacts unloaded at exit still call in.
  static State *s = new State;
  return *s;
}

/// A kernel image of a loaded artifact; the driver module is created at
/// the first launch (so artifacts load without a GPU).
struct LazyModule {
  const void *image = nullptr;
  CUmodule module = nullptr;
};

} // namespace

Status Session::start(int ordinal) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.active())
    return s.info.ordinal == ordinal
               ? Status::success()
               : makeError("the CUDA session runs on device ", s.info.ordinal,
                           ", not ", ordinal);
  Result<Driver> d = Driver::load();
  if (!d.ok())
    return d.status();
  Result<DeviceInfo> info = d->device(ordinal);
  if (!info.ok())
    return info.status();
  auto resolve = [&](auto &fn, const char *name) -> Status {
    void *sym = d->entryPoint(name);
    if (!sym)
      return makeError("libcuda lacks ", name, " (driver too old?)");
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(sym);
    return Status::success();
  };
  for (Status st :
       {resolve(s.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
        resolve(s.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
        resolve(s.cuCtxSetCurrent, "cuCtxSetCurrent"),
        resolve(s.cuDeviceGet, "cuDeviceGet"),
        resolve(s.cuModuleLoadData, "cuModuleLoadData"),
        resolve(s.cuModuleUnload, "cuModuleUnload"),
        resolve(s.cuModuleGetFunction, "cuModuleGetFunction"),
        resolve(s.cuLaunchKernel, "cuLaunchKernel"),
        resolve(s.cuStreamCreate, "cuStreamCreate"),
        resolve(s.cuStreamSynchronize, "cuStreamSynchronize"),
        resolve(s.cuStreamQuery, "cuStreamQuery"),
        resolve(s.cuMemAlloc, "cuMemAlloc_v2"),
        resolve(s.cuMemFree, "cuMemFree_v2"),
        resolve(s.cuMemcpyHtoD, "cuMemcpyHtoD_v2"),
        resolve(s.cuMemcpyDtoH, "cuMemcpyDtoH_v2")})
    if (!st.ok())
      return st;
  CUdevice dev = 0;
  if (Status st = d->check(s.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
      !st.ok())
    return st;
  CUcontext ctx = nullptr;
  if (Status st = d->check(s.cuDevicePrimaryCtxRetain(&ctx, dev),
                           "cuDevicePrimaryCtxRetain");
      !st.ok())
    return st;
  CUstream stream = nullptr;
  Status st = d->check(s.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  if (st.ok())
    st = d->check(s.cuStreamCreate(&stream, 0), "cuStreamCreate");
  if (!st.ok()) {
    s.cuDevicePrimaryCtxRelease(dev);
    return st;
  }
  s.cuMemAllocAsync = reinterpret_cast<decltype(s.cuMemAllocAsync)>(
      d->entryPoint("cuMemAllocAsync"));
  s.cuMemFreeAsync = reinterpret_cast<decltype(s.cuMemFreeAsync)>(
      d->entryPoint("cuMemFreeAsync"));
  if (!s.cuMemAllocAsync || !s.cuMemFreeAsync)
    s.cuMemAllocAsync = nullptr, s.cuMemFreeAsync = nullptr;
  // Timing events, where the driver has them (cuEventElapsedTime_v2 since
  // CUDA 12.8; the first version stays exported).
  s.cuEventCreate = reinterpret_cast<decltype(s.cuEventCreate)>(
      d->entryPoint("cuEventCreate"));
  s.cuEventRecord = reinterpret_cast<decltype(s.cuEventRecord)>(
      d->entryPoint("cuEventRecord"));
  s.cuEventSynchronize = reinterpret_cast<decltype(s.cuEventSynchronize)>(
      d->entryPoint("cuEventSynchronize"));
  void *elapsed = d->entryPoint("cuEventElapsedTime_v2");
  s.cuEventElapsedTime = reinterpret_cast<decltype(s.cuEventElapsedTime)>(
      elapsed ? elapsed : d->entryPoint("cuEventElapsedTime"));
  if (!s.cuEventCreate || !s.cuEventRecord || !s.cuEventSynchronize ||
      !s.cuEventElapsedTime || s.cuEventCreate(&s.begin, 0) != 0 ||
      s.cuEventCreate(&s.end, 0) != 0)
    s.cuEventRecord = nullptr;
  s.info = *info;
  s.context = ctx;
  s.stream = stream;
  s.driver.emplace(std::move(*d));
  return Status::success();
}

bool Session::active() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.active();
}

const DeviceInfo &Session::device() { return state().info; }

Result<void *> Session::allocate(size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (Status st = s.enter(); !st.ok())
    return st;
  CUdeviceptr p = 0;
  if (Status st = s.driver->check(s.allocate(&p, bytes), "cuMemAlloc");
      !st.ok())
    return st.withPrefix(strCat(bytes, " bytes of device memory"));
  return reinterpret_cast<void *>(p);
}

void Session::release(void *device) { hagrt_cuda_free(device); }

namespace {
/// A synchronous copy between host and device memory.
Status copyBytes(void *dst, const void *src, size_t bytes, bool toDevice) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (bytes == 0)
    return Status::success();
  if (Status st = s.enter(); !st.ok())
    return st;
  if (toDevice)
    return s.driver->check(
        s.cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(dst), src, bytes),
        "cuMemcpyHtoD");
  return s.driver->check(
      s.cuMemcpyDtoH(dst, reinterpret_cast<CUdeviceptr>(src), bytes),
      "cuMemcpyDtoH");
}
} // namespace

Status Session::upload(void *device, const void *host, size_t bytes) {
  return copyBytes(device, host, bytes, /*toDevice=*/true);
}

Status Session::download(void *host, const void *device, size_t bytes) {
  return copyBytes(host, device, bytes, /*toDevice=*/false);
}

Status Session::synchronize() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (Status st = s.enter(); !st.ok())
    return st;
  return s.driver->check(s.cuStreamSynchronize(s.stream),
                         "cuStreamSynchronize");
}

Result<bool> Session::query() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.active())
    return makeError("no CUDA session (Session::start)");
  CUresult r = s.cuStreamQuery(s.stream);
  constexpr CUresult kNotReady = 600; // CUDA_ERROR_NOT_READY
  if (r == kNotReady)
    return false;
  if (Status st = s.driver->check(r, "cuStreamQuery"); !st.ok())
    return st;
  return true;
}

void *Session::stream() { return state().stream; }

// Timing is best effort: a failed record leaves nothing marked (markedMs
// says so) and latches no error, so it never fails the entry it times.
void Session::markBegin() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.marked = false;
  s.begun = s.cuEventRecord && s.active() &&
            s.cuCtxSetCurrent(s.context) == 0 &&
            s.cuEventRecord(s.begin, s.stream) == 0;
}

void Session::markEnd() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.marked = s.begun && s.cuCtxSetCurrent(s.context) == 0 &&
             s.cuEventRecord(s.end, s.stream) == 0;
  s.begun = false;
}

Result<double> Session::markedMs() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (Status st = s.enter(); !st.ok())
    return st;
  if (!s.cuEventRecord)
    return makeError("the CUDA driver has no event timing");
  if (!s.marked)
    return makeError("no GPU work was marked for timing");
  if (Status st =
          s.driver->check(s.cuEventSynchronize(s.end), "cuEventSynchronize");
      !st.ok())
    return st;
  float ms = 0;
  if (Status st = s.driver->check(s.cuEventElapsedTime(&ms, s.begin, s.end),
                                  "cuEventElapsedTime");
      !st.ok())
    return st;
  return double(ms);
}

Status Session::takeError() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.error.empty())
    return Status::success();
  std::string e = std::move(s.error);
  s.error.clear();
  return Status::error(e);
}

//===----------------------------------------------------------------------===//
// The C entry points
//===----------------------------------------------------------------------===//

extern "C" void *mgpuModuleLoad(void *data, size_t) {
  // cuModuleLoadData reads the fat binary's own header for its size.
  return new LazyModule{data, nullptr};
}

extern "C" void *mgpuModuleLoadJIT(void *data, int) {
  // PTX: cuModuleLoadData JIT-compiles it (NUL-terminated in the image).
  return new LazyModule{data, nullptr};
}

extern "C" void mgpuModuleUnload(void *module) {
  auto *m = static_cast<LazyModule *>(module);
  if (!m)
    return;
  State &s = state();
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (m->module && s.active() && s.current())
      s.ok(s.cuModuleUnload(m->module), "cuModuleUnload");
  }
  delete m;
}

extern "C" void *mgpuModuleGetFunction(void *module, const char *name) {
  auto *m = static_cast<LazyModule *>(module);
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.error.empty() || !m || !s.current())
    return nullptr;
  if (!m->module &&
      !s.ok(s.cuModuleLoadData(&m->module, m->image), "cuModuleLoadData"))
    return nullptr;
  CUfunction f = nullptr;
  if (s.cuModuleGetFunction(&f, m->module, name) != 0) {
    s.latch(strCat("the artifact's GPU code has no kernel ", quoted(name)));
    return nullptr;
  }
  return f;
}

extern "C" void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                 intptr_t gridZ, intptr_t blockX,
                                 intptr_t blockY, intptr_t blockZ,
                                 int32_t sharedMemBytes, void *, void **params,
                                 void **extra, size_t) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.error.empty() || !function || !s.current())
    return;
  s.ok(s.cuLaunchKernel(function, unsigned(gridX), unsigned(gridY),
                        unsigned(gridZ), unsigned(blockX), unsigned(blockY),
                        unsigned(blockZ), unsigned(sharedMemBytes), s.stream,
                        params, extra),
       "cuLaunchKernel");
}

// One stream for everything: kernels of a call run in order, and the
// buffers a call frees (stream-ordered) are no longer used by the kernels
// before. The host code never reads device memory (hag-check-host-code)
// except device scalars through hagrt_cuda_read_* (which wait for the
// stream themselves), so the synchronization MLIR's launch lowering asks
// for after every launch is not needed: the caller (Model) waits once,
// after the entry.
extern "C" void *mgpuStreamCreate() { return state().stream; }
extern "C" void mgpuStreamDestroy(void *) {}
extern "C" void mgpuStreamSynchronize(void *) {}

extern "C" void *hagrt_cuda_alloc(size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.current())
    return nullptr;
  CUdeviceptr p = 0;
  if (CUresult r = s.allocate(&p, bytes); r != 0) {
    s.latch(strCat(s.driver->check(r, "cuMemAlloc").message(), " (", bytes,
                   " bytes)"));
    return nullptr;
  }
  return reinterpret_cast<void *>(p);
}

extern "C" void *hagrt_cuda_aligned_alloc(size_t alignment, size_t bytes) {
  // cuMemAlloc aligns to at least 256 bytes.
  if (alignment > 256) {
    State &s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.latch(strCat("a buffer aligned to ", alignment,
                   " bytes (device allocations align to 256)"));
    return nullptr;
  }
  return hagrt_cuda_alloc(bytes);
}

extern "C" void hagrt_cuda_free(void *device) {
  if (!device)
    return;
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.active() || !s.current())
    return;
  auto p = reinterpret_cast<CUdeviceptr>(device);
  if (s.cuMemFreeAsync)
    s.ok(s.cuMemFreeAsync(p, s.stream), "cuMemFreeAsync");
  else
    s.ok(s.cuMemFree(p), "cuMemFree");
}

// A device scalar the host code needs (a training step's gradient norm,
// all-finite flag, step count; hag-map-loops-to-gpu): wait for the kernels
// before it, then copy its bytes back. After a failure (latched) the value
// is 0 and the call reports the failure as usual.
namespace {
template <typename T> T readDeviceScalar(int64_t address) {
  T value{};
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.error.empty() || !s.current())
    return value;
  if (!s.ok(s.cuStreamSynchronize(s.stream), "cuStreamSynchronize"))
    return value;
  s.ok(s.cuMemcpyDtoH(&value, static_cast<CUdeviceptr>(address), sizeof(T)),
       "cuMemcpyDtoH");
  return value;
}
} // namespace

extern "C" double hagrt_cuda_read_f64(int64_t address) {
  return readDeviceScalar<double>(address);
}
extern "C" float hagrt_cuda_read_f32(int64_t address) {
  return readDeviceScalar<float>(address);
}
extern "C" int64_t hagrt_cuda_read_i64(int64_t address) {
  return readDeviceScalar<int64_t>(address);
}
extern "C" int32_t hagrt_cuda_read_i32(int64_t address) {
  return readDeviceScalar<int32_t>(address);
}
extern "C" int8_t hagrt_cuda_read_i8(int64_t address) {
  return readDeviceScalar<int8_t>(address);
}
