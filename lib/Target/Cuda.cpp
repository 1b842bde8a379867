//===- Cuda.cpp - GPU modules -> PTX -> cubins, resource proofs -----------===//

#include "hag/Target/Cuda.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <map>

using namespace mlir;
using namespace mlir::hag;

#ifndef HAG_CUDA_TOOLKIT
#define HAG_CUDA_TOOLKIT ""
#endif

namespace {

/// Per-architecture limits (CUDA C Programming Guide, "Technical
/// Specifications per Compute Capability", 8.0 and 9.0).
struct ArchLimits {
  int64_t maxThreadsPerBlock = 1024;
  int64_t maxThreadsPerSM = 2048;
  int64_t maxBlocksPerSM = 32;
  int64_t registersPerSM = 65536;
  int64_t maxRegistersPerBlock = 65536;
  int64_t maxRegistersPerThread = 255;
  /// Static shared memory per block (more needs the dynamic opt-in).
  int64_t maxStaticShared = 48 * 1024;
  int64_t sharedPerSM = 0;
  /// Shared memory the system reserves per resident block.
  int64_t reservedSharedPerBlock = 1024;
};

ArchLimits limitsFor(StringRef arch) {
  ArchLimits l;
  l.sharedPerSM = arch == "sm_80" ? 164 * 1024 : 228 * 1024;
  return l;
}

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/// Runs `program args`, returning its exit code; stderr (and stdout) go to
/// `output`.
int run(StringRef program, ArrayRef<StringRef> args, std::string &output,
        std::string &error) {
  SmallString<128> logPath;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("hag-ptxas", "log", logPath)) {
    error = "cannot create a temporary file: " + ec.message();
    return -1;
  }
  llvm::scope_exit cleanup([&] { llvm::sys::fs::remove(logPath); });
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(logPath),
                                          StringRef(logPath)};
  std::string msg;
  int rc = llvm::sys::ExecuteAndWait(program, args, std::nullopt, redirects, 0,
                                     0, &msg);
  if (auto buffer = llvm::MemoryBuffer::getFile(logPath))
    output = (*buffer)->getBuffer().str();
  if (rc < 0)
    error = msg.empty() ? "could not run " + program.str() : msg;
  return rc;
}

/// The numbers in `ptxas -v` output, per entry function.
std::map<std::string, KernelResources> parsePtxasInfoMap(StringRef log) {
  std::map<std::string, KernelResources> kernels;
  std::string entry, properties;
  auto number = [](StringRef line, StringRef unit) -> int64_t {
    // "... 24 registers, ..." -> 24 for unit " registers".
    size_t at = line.find(unit);
    if (at == StringRef::npos)
      return -1;
    StringRef before = line.take_front(at).rtrim();
    size_t space = before.find_last_of(" ,:");
    int64_t v = 0;
    if (before.drop_front(space == StringRef::npos ? 0 : space + 1)
            .getAsInteger(10, v))
      return -1;
    return v;
  };
  SmallVector<StringRef> lines;
  log.split(lines, '\n');
  for (StringRef line : lines) {
    auto quoted = [&](StringRef after) {
      size_t at = line.find(after);
      StringRef rest = line.drop_front(at + after.size()).ltrim();
      rest = rest.ltrim('\'');
      return rest.take_until([](char c) { return c == '\''; }).str();
    };
    if (line.contains("Compiling entry function")) {
      entry = quoted("Compiling entry function");
      kernels[entry].name = entry;
      kernels[entry].registers = -1; // until its "Used" line
      continue;
    }
    if (line.contains("Function properties for")) {
      properties = quoted("Function properties for");
      continue;
    }
    if (line.contains("bytes stack frame") && kernels.count(properties)) {
      KernelResources &k = kernels[properties];
      k.stackBytes = std::max<int64_t>(0, number(line, " bytes stack frame"));
      k.spillStoreBytes =
          std::max<int64_t>(0, number(line, " bytes spill stores"));
      k.spillLoadBytes =
          std::max<int64_t>(0, number(line, " bytes spill loads"));
      continue;
    }
    if (line.contains(" registers") && kernels.count(entry)) {
      KernelResources &k = kernels[entry];
      // -1 when unreadable: compileGPUModules then refuses the kernel.
      k.registers = number(line, " registers");
      k.sharedBytes = std::max<int64_t>(0, number(line, " bytes smem"));
    }
  }
  return kernels;
}

} // namespace

LogicalResult mlir::hag::checkKernelLaunch(KernelResources &k, StringRef arch,
                                           std::string &error) {
  ArchLimits l = limitsFor(arch);
  auto fail = [&](const Twine &why) {
    error = ("kernel '" + k.name + "' (gpu.module @" + k.module +
             ") cannot launch on " + arch + ": " + why)
                .str();
    return failure();
  };
  if (k.threads < 1)
    return fail("its block size is not known at compile time");
  if (k.threads > l.maxThreadsPerBlock)
    return fail(Twine(k.threads) + " threads per block > " +
                Twine(l.maxThreadsPerBlock));
  if (k.registers > l.maxRegistersPerThread)
    return fail(Twine(k.registers) + " registers per thread > " +
                Twine(l.maxRegistersPerThread));
  int64_t warps = (k.threads + 31) / 32;
  // Registers are allocated per warp in units of 256.
  int64_t blockRegisters = warps * roundUp(k.registers * 32, 256);
  if (blockRegisters > l.maxRegistersPerBlock)
    return fail(Twine(k.threads) + " threads x " + Twine(k.registers) +
                " registers = " + Twine(blockRegisters) +
                " registers per block (allocated per warp) > " +
                Twine(l.maxRegistersPerBlock));
  if (k.sharedBytes > l.maxStaticShared)
    return fail(Twine(k.sharedBytes) + " bytes of static shared memory > " +
                Twine(l.maxStaticShared));
  struct Bound {
    int64_t blocks;
    const char *what;
  } bounds[] = {
      {l.maxBlocksPerSM, "blocks"},
      {l.maxThreadsPerSM / (warps * 32), "threads"},
      {blockRegisters ? l.registersPerSM / blockRegisters : l.maxBlocksPerSM,
       "registers"},
      {l.sharedPerSM / (k.sharedBytes + l.reservedSharedPerBlock),
       "shared memory"}};
  k.blocksPerSM = l.maxBlocksPerSM;
  k.limitedBy = "blocks";
  for (const Bound &b : bounds)
    if (b.blocks < k.blocksPerSM) {
      k.blocksPerSM = b.blocks;
      k.limitedBy = b.what;
    }
  if (k.blocksPerSM < 1)
    return fail("not one block fits on a multiprocessor (limited by " +
                k.limitedBy + ")");
  return success();
}

namespace {

/// Threads per block of every kernel of `gpuModule` (nvvm.maxntid, which
/// the lowering derives from the launch's known block size).
std::map<std::string, int64_t> blockSizes(Operation *gpuModule) {
  std::map<std::string, int64_t> sizes;
  gpuModule->walk([&](LLVM::LLVMFuncOp fn) {
    auto dims = fn->getAttrOfType<DenseI32ArrayAttr>("nvvm.maxntid");
    if (!dims)
      dims = fn->getAttrOfType<DenseI32ArrayAttr>("gpu.known_block_size");
    if (!fn->hasAttr("nvvm.kernel") && !fn->hasAttr("gpu.kernel"))
      return;
    int64_t n = dims ? 1 : 0;
    if (dims)
      for (int32_t d : dims.asArrayRef())
        n *= d;
    sizes[fn.getName().str()] = n;
  });
  return sizes;
}

/// "file:line:col" of the model source a location points at: through
/// call sites (a kernel library function inlined into the model) to the
/// outermost caller; "" for none (a library kernel launched from a
/// function every call shares).
std::string modelLocation(Location loc) {
  if (auto call = dyn_cast<CallSiteLoc>(loc))
    return modelLocation(call.getCaller());
  if (auto name = dyn_cast<NameLoc>(loc))
    return modelLocation(name.getChildLoc());
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location l : fused.getLocations())
      if (std::string s = modelLocation(l); !s.empty())
        return s;
    return "";
  }
  if (auto f = dyn_cast<FileLineColLoc>(loc); f && f.getLine() > 0)
    return llvm::formatv("{0}:{1}:{2}",
                         llvm::sys::path::filename(f.getFilename()),
                         f.getLine(), f.getColumn());
  return "";
}

std::string smNumber(StringRef arch) {
  return arch.drop_front(3).str(); // "sm_90a" -> "90a"
}

} // namespace

std::vector<KernelResources> mlir::hag::parsePtxasVerbose(StringRef log) {
  std::vector<KernelResources> out;
  for (auto &entry : parsePtxasInfoMap(log))
    out.push_back(entry.second);
  return out;
}

bool mlir::hag::isSupportedGPUArch(StringRef arch) {
  return arch == "sm_80" || arch == "sm_90a";
}

FailureOr<std::string>
mlir::hag::findCudaToolkit(const CUDATargetOptions &options,
                           std::string &error) {
  SmallVector<std::string> tried;
  std::string lacking;
  auto has = [&](const std::string &dir) {
    if (dir.empty())
      return false;
    SmallString<128> ptxas(dir), fatbinary(dir), libdevice(dir);
    llvm::sys::path::append(ptxas, "bin", "ptxas");
    llvm::sys::path::append(fatbinary, "bin", "fatbinary");
    // math.exp & co. become libdevice calls that NVPTX links from here.
    llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
    tried.push_back(std::string(ptxas));
    if (!llvm::sys::fs::can_execute(ptxas))
      return false;
    if (!llvm::sys::fs::can_execute(fatbinary))
      lacking = std::string(fatbinary);
    else if (!llvm::sys::fs::exists(libdevice))
      lacking = std::string(libdevice);
    else
      return true;
    return false;
  };
  if (!options.toolkit.empty()) {
    if (has(options.toolkit))
      return options.toolkit;
  } else {
    if (const char *env = std::getenv("HAG_CUDA_PATH"); env && *env) {
      if (has(env))
        return std::string(env);
    } else if (has(HAG_CUDA_TOOLKIT)) {
      return std::string(HAG_CUDA_TOOLKIT);
    }
  }
  if (!lacking.empty()) {
    error = "--target=cuda: the CUDA toolkit at " + llvm::join(tried, ", ") +
            " lacks " + lacking + " (set HAG_CUDA_PATH to a complete toolkit)";
    return failure();
  }
  error = "--target=cuda needs the CUDA toolkit's ptxas, ";
  error += tried.empty() ? std::string("and none was found when HAG was "
                                       "configured")
                         : "not found at " + llvm::join(tried, ", ");
  error += " (set HAG_CUDA_PATH to the toolkit's directory, e.g. "
           "/usr/local/cuda)";
  return failure();
}

LogicalResult mlir::hag::compileGPUModules(ModuleOp module,
                                           const CUDATargetOptions &options,
                                           std::vector<KernelResources> *out,
                                           std::string *ptxOut) {
  if (!isSupportedGPUArch(options.arch))
    return module.emitError() << "--gpu-arch=" << options.arch
                              << " is not supported (sm_80 or sm_90a)";
  std::string error;
  FailureOr<std::string> toolkit = findCudaToolkit(options, error);
  if (failed(toolkit))
    return module.emitError(error);
  SmallString<128> ptxas(*toolkit), fatbinary(*toolkit);
  llvm::sys::path::append(ptxas, "bin", "ptxas");
  llvm::sys::path::append(fatbinary, "bin", "fatbinary");

  std::map<std::string, std::map<std::string, int64_t>> threads;
  for (auto gm : module.getOps<gpu::GPUModuleOp>())
    threads[gm.getName().str()] = blockSizes(gm);
  // The first launch of each kernel names its source.
  std::map<std::string, std::string> sources;
  module.walk([&](gpu::LaunchFuncOp launch) {
    std::string key = (launch.getKernelModuleName().getValue() +
                       "::" + launch.getKernelName().getValue())
                          .str();
    if (sources.count(key))
      return;
    std::string where = modelLocation(launch.getLoc());
    sources[key] = where;
  });

  // LLVM's NVPTX backend: gpu.module -> gpu.binary with PTX.
  PassManager pm(module.getContext());
  GpuModuleToBinaryPassOptions toBinary;
  toBinary.toolkitPath = *toolkit;
  toBinary.compilationTarget = "isa";
  pm.addPass(createGpuModuleToBinaryPass(toBinary));
  if (failed(pm.run(module)))
    return failure();

  SmallString<128> dir;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("hag-cuda", dir))
    return module.emitError()
           << "cannot create a temporary directory: " << ec.message();
  llvm::scope_exit cleanup([&] { llvm::sys::fs::remove_directories(dir); });

  std::string sm = smNumber(options.arch);
  for (auto binary : module.getOps<gpu::BinaryOp>()) {
    std::string name = binary.getName().str();
    if (binary.getObjects().size() != 1)
      return binary.emitError("expected one object per GPU module");
    auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
    StringRef ptx = object.getObject().getValue();
    if (ptxOut)
      *ptxOut += "// gpu.module @" + name + " (" + options.arch + ")\n" +
                 ptx.str() + "\n";

    SmallString<128> ptxPath(dir), cubinPath(dir), fatbinPath(dir);
    llvm::sys::path::append(ptxPath, name + ".ptx");
    llvm::sys::path::append(cubinPath, name + ".cubin");
    llvm::sys::path::append(fatbinPath, name + ".fatbin");
    {
      std::error_code ec;
      llvm::raw_fd_ostream os(ptxPath, ec);
      if (ec)
        return module.emitError()
               << "cannot write " << ptxPath << ": " << ec.message();
      os << ptx;
    }
    std::string archFlag = "-arch=" + options.arch;
    std::string log;
    int rc =
        run(ptxas, {ptxas, archFlag, "-O3", "-v", "-o", cubinPath, ptxPath},
            log, error);
    if (rc != 0)
      return binary.emitError()
             << "ptxas failed on the PTX of gpu.module @" << name << " for "
             << options.arch << (error.empty() ? "" : ": " + error) << "\n"
             << log;
    std::map<std::string, KernelResources> info = parsePtxasInfoMap(log);
    // Every kernel of the module must have been described.
    for (auto &[kernelName, threadCount] : threads[name])
      if (!info.count(kernelName) || info[kernelName].registers < 0)
        return binary.emitError()
               << "ptxas -v did not report the resources of kernel '"
               << kernelName << "' (gpu.module @" << name
               << "): cannot prove it launches\n"
               << log;
    for (auto &[kernelName, k] : info) {
      k.module = name;
      k.source = sources[name + "::" + kernelName];
      auto it = threads[name].find(kernelName);
      k.threads = it == threads[name].end() ? 0 : it->second;
      if (failed(checkKernelLaunch(k, options.arch, error)))
        return binary.emitError(error);
      if (out)
        out->push_back(k);
    }

    std::string elfImage =
        "--image3=kind=elf,sm=" + sm + ",file=" + std::string(cubinPath);
    std::string ptxImage =
        "--image3=kind=ptx,sm=" + sm + ",file=" + std::string(ptxPath);
    std::string create = "--create=" + std::string(fatbinPath);
    rc = run(fatbinary, {fatbinary, create, "-64", elfImage, ptxImage}, log,
             error);
    if (rc != 0)
      return binary.emitError() << "fatbinary failed for gpu.module @" << name
                                << (error.empty() ? "" : ": " + error) << "\n"
                                << log;
    auto fatbin = llvm::MemoryBuffer::getFile(fatbinPath, /*IsText=*/false,
                                              /*RequiresNullTerminator=*/false);
    if (!fatbin)
      return module.emitError() << "cannot read " << fatbinPath << ": "
                                << fatbin.getError().message();
    MLIRContext *ctx = module.getContext();
    auto fat = gpu::ObjectAttr::get(
        ctx, object.getTarget(), gpu::CompilationTarget::Fatbin,
        StringAttr::get(ctx, (*fatbin)->getBuffer()), object.getProperties(),
        object.getKernels());
    binary.setObjectsAttr(ArrayAttr::get(ctx, {fat}));
  }
  return success();
}

void mlir::hag::printKernelReport(ArrayRef<KernelResources> kernels,
                                  StringRef arch, llvm::raw_ostream &os) {
  os << "GPU kernels for " << arch << " (ptxas -v; a block's registers are "
     << "allocated per warp)\n";
  const char *row =
      "{0,-24} {1,7} {2,5} {3,9} {4,6} {5,6} {6,10} {7,-14} {8}\n";
  os << llvm::formatv(row, "kernel (gpu.module)", "threads", "regs", "smem [B]",
                      "stack", "spill", "blocks/SM", "limited by",
                      "launched from");
  for (const KernelResources &k : kernels) {
    // Outlined kernels share their function's name; the module is unique.
    std::string name =
        StringRef(k.module).starts_with(k.name) ? k.module : k.name;
    os << llvm::formatv(row, name, k.threads, k.registers, k.sharedBytes,
                        k.stackBytes, k.spillStoreBytes + k.spillLoadBytes,
                        k.blocksPerSM, k.limitedBy,
                        k.source.empty() ? "(kernel library)" : k.source);
  }
  os << kernels.size() << " kernels, all within the limits of " << arch << "\n";
}

void mlir::hag::printKernelReportJSON(ArrayRef<KernelResources> kernels,
                                      StringRef arch, llvm::raw_ostream &os) {
  llvm::json::Array list;
  for (const KernelResources &k : kernels)
    list.push_back(llvm::json::Object{{"module", k.module},
                                      {"name", k.name},
                                      {"source", k.source},
                                      {"threads", k.threads},
                                      {"registers", k.registers},
                                      {"shared_bytes", k.sharedBytes},
                                      {"stack_bytes", k.stackBytes},
                                      {"spill_store_bytes", k.spillStoreBytes},
                                      {"spill_load_bytes", k.spillLoadBytes},
                                      {"blocks_per_sm", k.blocksPerSM},
                                      {"limited_by", k.limitedBy}});
  os << llvm::formatv("{0:2}\n",
                      llvm::json::Value(llvm::json::Object{
                          {"arch", arch.str()}, {"kernels", std::move(list)}}))
            .str();
}
