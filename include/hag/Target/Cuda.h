//===- Cuda.h - GPU modules -> PTX -> cubins, resource proofs ---*- C++ -*-===//
//
// The CUDA half of the `artifact` phase (architecture.md phases 5-6): the
// GPU modules that buildCUDALoweringPipeline left in the NVVM dialect are
// translated to PTX by LLVM's NVPTX backend, assembled by the CUDA
// toolkit's ptxas for the requested architecture, checked against the
// architecture's limits at their launch configuration (a kernel that could
// not launch is a compile error naming it and the numbers), and embedded as
// fat binaries (the cubin, plus the PTX for newer GPUs) in the host module,
// whose gpu.launch_func calls then load them through the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_TARGET_CUDA_H
#define HAG_TARGET_CUDA_H

#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/LogicalResult.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir {
class ModuleOp;
} // namespace mlir

namespace mlir::hag {

/// The GPU architectures HAG compiles for.
bool isSupportedGPUArch(StringRef arch);

struct CUDATargetOptions {
  /// "sm_80" (A100: mma.sync) or "sm_90a" (H100/H200).
  std::string arch = "sm_90a";
  /// The CUDA toolkit's directory (bin/ptxas, bin/fatbinary,
  /// nvvm/libdevice). Empty: $HAG_CUDA_PATH, else the one found when HAG
  /// was configured.
  std::string toolkit;
};

/// What ptxas reports for one kernel, and what that means on the target.
struct KernelResources {
  std::string module; ///< The gpu.module (one cubin).
  std::string name;   ///< The kernel's symbol.
  /// Where it comes from: the source location of its (first) launch, the
  /// hag op whose loop it runs ("model.yaml:12:3"), or "".
  std::string source;
  int64_t threads = 0; ///< Threads per block of its launches.
  int64_t registers = 0;
  int64_t sharedBytes = 0; ///< Static shared memory per block.
  int64_t stackBytes = 0;
  int64_t spillStoreBytes = 0, spillLoadBytes = 0;
  /// Resident blocks per multiprocessor the registers, shared memory and
  /// threads allow (occupancy = blocksPerSM * threads / max threads per SM).
  int64_t blocksPerSM = 0;
  /// The limiting resource: "registers", "shared memory", "threads",
  /// "blocks".
  std::string limitedBy;
};

/// The kernels `ptxas -v` describes in `log`, with their registers, shared
/// memory, stack and spills (module, threads and occupancy left unset).
std::vector<KernelResources> parsePtxasVerbose(StringRef log);

/// Proves that kernel `k` (with `k.threads` per block) launches on `arch`:
/// threads, registers per thread and per block (allocated per warp in
/// units of 256), static shared memory. Sets its occupancy (blocks per
/// multiprocessor and the limiting resource), or says in `error` which
/// limit it breaks, naming the kernel and the numbers.
LogicalResult checkKernelLaunch(KernelResources &k, StringRef arch,
                                std::string &error);

/// The toolkit directory to use, or an error that says where it looked.
FailureOr<std::string> findCudaToolkit(const CUDATargetOptions &options,
                                       std::string &error);

/// Serializes every gpu.module of `module` to PTX, assembles it with ptxas,
/// proves every kernel launches (registers, shared memory, threads against
/// the architecture's limits) and replaces the gpu.modules by gpu.binary
/// ops holding fat binaries. Fills `kernels` (when given) with ptxas's
/// numbers and `ptx` (when given) with the PTX of all modules.
LogicalResult compileGPUModules(ModuleOp module,
                                const CUDATargetOptions &options,
                                std::vector<KernelResources> *kernels,
                                std::string *ptx);

/// The `hag-compile --report=kernels` table.
void printKernelReport(ArrayRef<KernelResources> kernels, StringRef arch,
                       llvm::raw_ostream &os);
/// The same as one JSON object.
void printKernelReportJSON(ArrayRef<KernelResources> kernels, StringRef arch,
                           llvm::raw_ostream &os);

} // namespace mlir::hag

#endif // HAG_TARGET_CUDA_H
