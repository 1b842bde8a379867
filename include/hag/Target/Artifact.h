//===- Artifact.h - LLVM dialect -> object code -> .hag artifact -*- C++
//-*-===//
//
// The `artifact` phase (architecture.md phase 6): translates a module in the
// LLVM dialect to LLVM IR, optimizes and compiles it for the host CPU (or the
// one given), links it into a position-independent shared object, and writes
// the container of docs/artifact-format.md with a manifest describing the
// model, its parameters and its entry points.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_TARGET_ARTIFACT_H
#define HAG_TARGET_ARTIFACT_H

#include "hag/runtime/Artifact.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir {
class ModuleOp;
} // namespace mlir

namespace mlir::hag {

/// The artifact format this compiler writes (docs/artifact-format.md): the
/// one the runtime reads.
constexpr uint32_t kArtifactFormatVersion = ::hag::rt::kArtifactFormatVersion;

struct CPUTargetOptions {
  /// An LLVM CPU name; "native" (the default) is the build machine's CPU
  /// with all its features (AVX-512 where present).
  std::string cpu = "native";
  /// LLVM optimization level for the generated code.
  unsigned optLevel = 3;
  /// Where the model's kernels run: "cpu", or "cuda" (the host code
  /// launches GPU kernels embedded in it; the manifest says so).
  std::string device = "cpu";
  /// For "cuda": the GPU architecture ("sm_80", "sm_90a").
  std::string gpuArch;
};

/// Whether LLVM CPU `cpu` ("native": this machine, as LLVM detects it) has
/// AMX tiles with bf16 products (amx-tile and amx-bf16): the CPU lowering
/// then runs the projections' matmuls on AMX (buildCPULoweringPipeline).
bool cpuHasAMX(StringRef cpu);

/// What the manifest says about the code: the module *before* lowering
/// (hag phase), whose functions carry `hag.name`/`hag.input` argument
/// attributes and whose `hag.model`/`hag.config` attributes describe the
/// model. Returns the manifest JSON.
std::string buildManifest(ModuleOp hagModule, const CPUTargetOptions &target);

/// Translates an LLVM-dialect module to LLVM IR, optimized, and prints it.
LogicalResult emitLLVMIR(ModuleOp llvmModule, const CPUTargetOptions &target,
                         llvm::raw_ostream &os);

/// Compiles an LLVM-dialect module and writes the artifact to `path`
/// atomically (temporary file, fsync, rename).
LogicalResult writeArtifact(ModuleOp llvmModule, const std::string &manifest,
                            const CPUTargetOptions &target, StringRef path);

} // namespace mlir::hag

#endif // HAG_TARGET_ARTIFACT_H
