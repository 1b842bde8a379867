//===- CudaSession.h - the GPU behind CUDA artifacts ------------*- C++ -*-===//
//
// A CUDA artifact's host code (hag-compile --target=cuda) launches its
// kernels through C entry points with the names MLIR's GPU lowering calls
// (mgpuModuleLoad, mgpuLaunchKernel, ...) and allocates its buffers with
// hagrt_cuda_alloc/free. This runtime defines them over the driver API
// (CudaDriver.h), on one process-wide session: device 0's primary context
// and one stream, on which every kernel runs in order.
//
// Loading an artifact registers its kernel images without touching the
// driver, so a CUDA artifact loads (and describes itself) on a machine
// without a GPU; only running it needs Session::start. The entry points
// cannot return errors: the first failure (a launch, an allocation, the
// call of an artifact without a session) is latched, the launches after it
// are skipped, and the caller collects it with Session::takeError() after
// the entry returns.
//
// Programs that load CUDA artifacts must export these symbols (hag-run is
// linked with ENABLE_EXPORTS; the CMake target hagrt adds the linker
// options that keep them).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_CUDASESSION_H
#define HAG_RUNTIME_CUDASESSION_H

#include "hag/runtime/CudaDriver.h"
#include "hag/runtime/Status.h"

#include <cstddef>
#include <cstdint>

namespace hag::rt::cuda {

class Session {
public:
  /// Loads the driver, makes device `ordinal`'s primary context current on
  /// this thread and creates the stream. Idempotent for the same device.
  static Status start(int ordinal = 0);
  /// Whether start() succeeded.
  static bool active();
  /// The device's facts (after start()).
  static const DeviceInfo &device();

  /// Device memory (cuMemAlloc); null with an error for failures.
  static Result<void *> allocate(size_t bytes);
  static void release(void *device);
  /// Synchronous copies on the session's stream.
  static Status upload(void *device, const void *host, size_t bytes);
  static Status download(void *host, const void *device, size_t bytes);
  /// Waits for the stream.
  static Status synchronize();
  /// Whether the stream's work is done (cuStreamQuery), without waiting.
  static Result<bool> query();
  /// The session's stream (a CUstream), for libraries that enqueue on it.
  static void *stream();

  /// GPU time of an entry's kernels: markBegin() and markEnd() record CUDA
  /// events on the stream around the work to time (Model does it around
  /// every entry's code, after the uploads and before the downloads);
  /// markedMs() gives the time between the last pair, once the stream has
  /// passed markEnd() (it waits for it). An error when the driver has no
  /// events or nothing was marked. Best effort: a failed mark latches no
  /// error. One pair for the process: concurrent entries share it.
  static void markBegin();
  static void markEnd();
  static Result<double> markedMs();

  /// The first error latched by the C entry points since the last call,
  /// then clears it; success when there was none.
  static Status takeError();
};

} // namespace hag::rt::cuda

extern "C" {
// The entry points of MLIR's gpu-to-llvm lowering and SelectObjectAttr's
// module loading, as the LLVM IR of a CUDA artifact declares them.
void *mgpuModuleLoad(void *data, size_t size);
void *mgpuModuleLoadJIT(void *data, int optLevel);
void mgpuModuleUnload(void *module);
void *mgpuModuleGetFunction(void *module, const char *name);
void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t sharedMemBytes, void *stream,
                      void **params, void **extra, size_t paramsCount);
void *mgpuStreamCreate();
void mgpuStreamDestroy(void *stream);
void mgpuStreamSynchronize(void *stream);
// The buffers of a CUDA artifact's host functions (hag-device-allocations).
void *hagrt_cuda_alloc(size_t bytes);
void *hagrt_cuda_aligned_alloc(size_t alignment, size_t bytes);
void hagrt_cuda_free(void *device);
// A device scalar the host code reads (hag-map-loops-to-gpu): waits for the
// session's stream and copies it back; 0 after a failure (latched).
double hagrt_cuda_read_f64(int64_t address);
float hagrt_cuda_read_f32(int64_t address);
int64_t hagrt_cuda_read_i64(int64_t address);
int32_t hagrt_cuda_read_i32(int64_t address);
int8_t hagrt_cuda_read_i8(int64_t address);
}

#endif // HAG_RUNTIME_CUDASESSION_H
