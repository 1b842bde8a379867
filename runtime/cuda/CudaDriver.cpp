//===- CudaDriver.cpp - the CUDA driver API, loaded at run time -----------===//

#include "hag/runtime/CudaDriver.h"

#include "support/StringUtil.h"

#include <cstdlib>
#include <dlfcn.h>
#include <type_traits>

using namespace hag::rt;
using namespace hag::rt::cuda;
using namespace hag::rt::detail;

namespace {
// Driver API ABI (cuda.h): CUresult and CUdevice are ints.
using CUresult = int;
using CUdevice = int;
constexpr int kAttrMultiprocessors = 16;   // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
constexpr int kAttrCcMajor = 75;           // ..._COMPUTE_CAPABILITY_MAJOR
constexpr int kAttrCcMinor = 76;           // ..._COMPUTE_CAPABILITY_MINOR
} // namespace

struct Driver::Api {
  void *handle = nullptr;
  int version = 0;
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDriverGetVersion)(int *) = nullptr;
  CUresult (*cuDeviceGetCount)(int *) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice *, int) = nullptr;
  CUresult (*cuDeviceGetName)(char *, int, CUdevice) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice) = nullptr;
  CUresult (*cuDeviceTotalMem)(size_t *, CUdevice) = nullptr;
  CUresult (*cuGetErrorName)(CUresult, const char **) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char **) = nullptr;

  ~Api() {
    if (handle)
      dlclose(handle);
  }

  /// "cuInit: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)".
  Status check(CUresult r, const char *call) const {
    if (r == 0)
      return Status::success();
    const char *name = nullptr, *text = nullptr;
    if (cuGetErrorName && cuGetErrorName(r, &name) != 0)
      name = nullptr;
    if (cuGetErrorString && cuGetErrorString(r, &text) != 0)
      text = nullptr;
    if (!name) {
      // The stub library and failed initialisations cannot name their
      // errors: the codes of cuda.h that matter here.
      switch (r) {
      case 3:
        name = "CUDA_ERROR_NOT_INITIALIZED";
        break;
      case 34:
        name = "CUDA_ERROR_STUB_LIBRARY";
        text = "the CUDA toolkit's stub libcuda, not a driver";
        break;
      case 35:
        name = "CUDA_ERROR_INSUFFICIENT_DRIVER";
        text = "the driver is older than the CUDA runtime";
        break;
      case 100:
        name = "CUDA_ERROR_NO_DEVICE";
        text = "no CUDA-capable device is detected";
        break;
      default:
        break;
      }
    }
    return makeError(call, ": ", name ? name : "CUDA error " + std::to_string(r),
                     text ? strCat(" (", text, ")") : std::string());
  }
};

Driver::Driver(std::unique_ptr<Api> a) : api(std::move(a)) {}
Driver::Driver(Driver &&) noexcept = default;
Driver &Driver::operator=(Driver &&) noexcept = default;
Driver::~Driver() = default;

Result<Driver> Driver::load() {
  const char *override = std::getenv("HAGRT_LIBCUDA");
  std::string lib = override && *override ? override : "libcuda.so.1";
  auto api = std::make_unique<Api>();
  api->handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!api->handle) {
    const char *why = dlerror();
    return makeError(lib, " cannot be loaded (no NVIDIA driver on this "
                          "machine?): ",
                     why ? why : "unknown dlopen error");
  }
  auto resolve = [&](auto &fn, const char *name) -> Status {
    void *sym = dlsym(api->handle, name);
    if (!sym)
      return makeError(lib, " lacks ", name, " (driver too old?)");
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(sym);
    return Status::success();
  };
  for (Status s :
       {resolve(api->cuInit, "cuInit"),
        resolve(api->cuDriverGetVersion, "cuDriverGetVersion"),
        resolve(api->cuDeviceGetCount, "cuDeviceGetCount"),
        resolve(api->cuDeviceGet, "cuDeviceGet"),
        resolve(api->cuDeviceGetName, "cuDeviceGetName"),
        resolve(api->cuDeviceGetAttribute, "cuDeviceGetAttribute"),
        resolve(api->cuDeviceTotalMem, "cuDeviceTotalMem_v2"),
        resolve(api->cuGetErrorName, "cuGetErrorName"),
        resolve(api->cuGetErrorString, "cuGetErrorString")})
    if (!s.ok())
      return s;
  if (Status s = api->check(api->cuInit(0), "cuInit"); !s.ok())
    return s;
  if (Status s =
          api->check(api->cuDriverGetVersion(&api->version), "cuDriverGetVersion");
      !s.ok())
    return s;
  return Driver(std::move(api));
}

int Driver::version() const { return api->version; }

Result<int> Driver::deviceCount() const {
  int n = 0;
  if (Status s = api->check(api->cuDeviceGetCount(&n), "cuDeviceGetCount");
      !s.ok())
    return s;
  return n;
}

Result<DeviceInfo> Driver::device(int ordinal) const {
  Result<int> count = deviceCount();
  if (!count.ok())
    return count.status();
  if (ordinal < 0 || ordinal >= *count)
    return makeError("CUDA device ", ordinal, " does not exist (", *count,
                     " visible)");
  CUdevice dev = 0;
  if (Status s = api->check(api->cuDeviceGet(&dev, ordinal), "cuDeviceGet");
      !s.ok())
    return s;
  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {0};
  for (Status s :
       {api->check(api->cuDeviceGetName(name, sizeof(name) - 1, dev),
                   "cuDeviceGetName"),
        api->check(api->cuDeviceGetAttribute(&info.ccMajor, kAttrCcMajor, dev),
                   "cuDeviceGetAttribute"),
        api->check(api->cuDeviceGetAttribute(&info.ccMinor, kAttrCcMinor, dev),
                   "cuDeviceGetAttribute"),
        api->check(api->cuDeviceGetAttribute(&info.multiprocessors,
                                             kAttrMultiprocessors, dev),
                   "cuDeviceGetAttribute"),
        api->check(api->cuDeviceTotalMem(&info.totalMemory, dev),
                   "cuDeviceTotalMem")})
    if (!s.ok())
      return s;
  info.name = name;
  return info;
}

void *Driver::entryPoint(const char *name) const {
  return dlsym(api->handle, name);
}

Status Driver::check(int result, const char *call) const {
  return api->check(result, call);
}

std::string DeviceInfo::arch() const {
  return "sm_" + std::to_string(ccMajor) + std::to_string(ccMinor) +
         (ccMajor == 9 ? "a" : "");
}
