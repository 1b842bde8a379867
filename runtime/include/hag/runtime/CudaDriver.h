//===- CudaDriver.h - the CUDA driver API, loaded at run time ---*- C++ -*-===//
//
// The runtime reaches the GPU through the CUDA driver API (libcuda.so.1,
// installed with the NVIDIA driver), loaded with dlopen: no binary links
// against CUDA, so everything runs on a machine without a GPU, where asking
// for the GPU fails with one clear line. The ABI facts used here (CUresult
// and CUdevice as int, the attribute codes) are stable across driver
// versions, so no CUDA header is needed to build the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_CUDADRIVER_H
#define HAG_RUNTIME_CUDADRIVER_H

#include "hag/runtime/Status.h"

#include <cstddef>
#include <memory>
#include <string>

namespace hag::rt::cuda {

/// What the runtime needs to know about one device.
struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  /// Compute capability, e.g. 9.0 for the H100/H200 (sm_90a).
  int ccMajor = 0, ccMinor = 0;
  size_t totalMemory = 0;
  int multiprocessors = 0;
  /// "sm_80", "sm_90a" (9.x: the Hopper features), ...
  std::string arch() const;
};

/// The loaded driver library with the entry points the runtime uses.
/// Move-only; the library stays loaded while a Driver lives.
class Driver {
public:
  /// Loads libcuda.so.1 (or the file named by HAGRT_LIBCUDA), resolves the
  /// entry points and calls cuInit(0). Errors say which step failed:
  /// "libcuda.so.1 cannot be loaded (no NVIDIA driver on this machine?):
  /// <dlerror>", "libcuda.so.1 lacks cuDeviceGetName (driver too old?)",
  /// "cuInit: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)".
  static Result<Driver> load();

  Driver(Driver &&) noexcept;
  Driver &operator=(Driver &&) noexcept;
  ~Driver();

  /// The driver's CUDA version, e.g. 13000 for 13.0.
  int version() const;
  /// The number of visible devices.
  Result<int> deviceCount() const;
  /// Facts about device `ordinal`.
  Result<DeviceInfo> device(int ordinal) const;

  /// The driver's entry point `name` ("cuLaunchKernel"), or null.
  void *entryPoint(const char *name) const;
  /// Success for CUDA_SUCCESS, else "<call>: CUDA_ERROR_... (text)".
  Status check(int result, const char *call) const;

private:
  struct Api;
  explicit Driver(std::unique_ptr<Api> api);
  std::unique_ptr<Api> api;
};

} // namespace hag::rt::cuda

#endif // HAG_RUNTIME_CUDADRIVER_H
