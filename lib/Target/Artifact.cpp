//===- Artifact.cpp - LLVM dialect -> object code -> .hag artifact --------===//

#include "hag/Target/Artifact.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"
#include "hag/runtime/Artifact.h"
#include "hag/runtime/FileIO.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/X86TargetParser.h"

#include <cstdio>

using namespace mlir;
using namespace mlir::hag;

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

static std::string dtypeName(Type t) {
  if (t.isF32())
    return "f32";
  if (t.isF64())
    return "f64";
  if (t.isF16())
    return "f16";
  if (t.isBF16())
    return "bf16";
  if (t.isInteger(32))
    return "i32";
  if (t.isInteger(64))
    return "i64";
  std::string s;
  llvm::raw_string_ostream os(s);
  t.print(os);
  return s;
}

static llvm::json::Object tensorJson(StringRef name, Type type) {
  auto t = cast<ShapedType>(type);
  llvm::json::Array shape;
  for (int64_t d : t.getShape())
    shape.push_back(ShapedType::isDynamic(d) ? int64_t(-1) : d);
  llvm::json::Object o{{"dtype", dtypeName(t.getElementType())},
                       {"shape", std::move(shape)}};
  if (!name.empty())
    o["name"] = name.str();
  return o;
}

/// The host (or requested) CPU and its features, as LLVM names them.
static std::pair<std::string, std::string>
resolveCPU(const CPUTargetOptions &target) {
  if (target.cpu != "native")
    return {target.cpu, ""};
  llvm::SubtargetFeatures features;
  for (const auto &f : llvm::sys::getHostCPUFeatures())
    features.AddFeature(f.getKey(), f.getValue());
  return {llvm::sys::getHostCPUName().str(), features.getString()};
}

bool mlir::hag::cpuHasAMX(StringRef cpu) {
  bool tile = false, bf16 = false;
  if (cpu == "native") {
    llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
    tile = host.lookup("amx-tile");
    bf16 = host.lookup("amx-bf16");
  } else {
    SmallVector<StringRef> features;
    llvm::X86::getFeaturesForCPU(cpu, features);
    tile = llvm::is_contained(features, "amx-tile");
    bf16 = llvm::is_contained(features, "amx-bf16");
  }
  return tile && bf16;
}

std::string mlir::hag::buildManifest(ModuleOp module,
                                     const CPUTargetOptions &target) {
  llvm::json::Object root;
  root["format_version"] = int64_t(kArtifactFormatVersion);
  root["hag_version"] = HAG_VERSION;
  auto [cpu, features] = resolveCPU(target);
  llvm::json::Object targetJson{{"triple", llvm::sys::getDefaultTargetTriple()},
                                {"cpu", cpu},
                                {"features", features},
                                {"device", target.device}};
  if (!target.gpuArch.empty())
    targetJson["gpu_arch"] = target.gpuArch;
  root["target"] = std::move(targetJson);

  llvm::json::Object model;
  if (auto dict = module->getAttrOfType<DictionaryAttr>("hag.model")) {
    for (NamedAttribute a : dict) {
      if (auto i = dyn_cast<IntegerAttr>(a.getValue()))
        model[a.getName().str()] =
            i.getType().isInteger(1)
                ? llvm::json::Value(i.getValue().getBoolValue())
                : llvm::json::Value(i.getInt());
      else if (auto f = dyn_cast<FloatAttr>(a.getValue()))
        model[a.getName().str()] = f.getValueAsDouble();
      else if (auto s = dyn_cast<StringAttr>(a.getValue()))
        model[a.getName().str()] = s.getValue().str();
      else if (auto b = dyn_cast<BoolAttr>(a.getValue()))
        model[a.getName().str()] = b.getValue();
    }
  }
  if (auto config = module->getAttrOfType<PyramidConfigAttr>("hag.config")) {
    model["heads"] = config.getHeads();
    model["kv_heads"] = config.getKvHeads();
    model["head_dim"] = config.getHeadDim();
    model["max_seq"] = config.getMaxSeq();
    root["attention"] = llvm::json::Object{
        {"block", config.getBlock()},
        {"ratio", config.getRatio()},
        {"levels", config.getStaticLevels()},
        {"levels_auto", config.isAutoLevels()},
        {"window", config.getWindow()},
        {"summary", config.getSummary()},
        {"compress", stringifyCompressMode(config.getCompress()).str()},
        {"causal", config.getCausal()},
        {"mass_bias", config.getMassBias().convertToDouble()},
        {"select_k", config.getSelectK()},
        {"temperature", config.getTemperature().convertToDouble()},
        {"eps", config.getEps().convertToDouble()},
        {"local_only", config.getLocalOnly()}};
  }
  root["model"] = std::move(model);
  // The training settings compiled into @train_step, and those hag-run
  // --train reads (batch, seq, steps, checkpoints, seed).
  if (auto train = module->getAttrOfType<DictionaryAttr>("hag.train")) {
    llvm::json::Object t;
    for (NamedAttribute a : train) {
      if (auto i = dyn_cast<IntegerAttr>(a.getValue()))
        t[a.getName().str()] = i.getInt();
      else if (auto f = dyn_cast<FloatAttr>(a.getValue()))
        t[a.getName().str()] = f.getValueAsDouble();
      else if (auto s = dyn_cast<StringAttr>(a.getValue()))
        t[a.getName().str()] = s.getValue().str();
    }
    root["train"] = std::move(t);
  }

  // The parallel split this program is one rank of (hag-run starts one
  // process per rank under mpirun).
  if (auto split =
          module->getAttrOfType<DictionaryAttr>("hag.parallel_rank_program")) {
    llvm::json::Object p{{"tensor", int64_t(1)}, {"data", int64_t(1)}};
    for (NamedAttribute a : split)
      if (auto i = dyn_cast<IntegerAttr>(a.getValue()))
        p[a.getName().str()] = i.getInt();
    if (auto pipe = module->getAttrOfType<DictionaryAttr>("hag.pipeline"))
      if (auto m = pipe.getAs<IntegerAttr>("microbatches"))
        p["microbatches"] = m.getInt();
    root["parallel"] = std::move(p);
  }

  llvm::json::Array parameters, entries;
  llvm::StringSet<> seen;
  for (auto func : module.getOps<func::FuncOp>()) {
    if (!func.isPublic() || func.isExternal())
      continue;
    llvm::json::Array inputs, state, params;
    for (unsigned i = 0; i < func.getNumArguments(); ++i) {
      auto name = func.getArgAttrOfType<StringAttr>(i, "hag.name");
      Type type = func.getArgumentTypes()[i];
      bool isInput = !name || func.getArgAttr(i, "hag.input");
      std::string argName =
          name ? name.getValue().str() : "arg" + std::to_string(i);
      // A tensor-parallel rank holds one slice of this tensor.
      llvm::json::Object spec = tensorJson(argName, type);
      if (auto shard = func.getArgAttrOfType<DictionaryAttr>(i, "hag.shard")) {
        auto dim = shard.getAs<IntegerAttr>("dim");
        auto parts = shard.getAs<IntegerAttr>("parts");
        if (dim && parts)
          spec["shard"] = llvm::json::Object{{"dim", dim.getInt()},
                                             {"parts", parts.getInt()}};
      }
      if (isInput) {
        inputs.push_back(std::move(spec));
        continue;
      }
      if (func.getArgAttr(i, "hag.state")) {
        state.push_back(std::move(spec));
        continue;
      }
      params.push_back(argName);
      if (seen.insert(argName).second)
        parameters.push_back(std::move(spec));
    }
    llvm::json::Object entry{{"name", func.getName().str()},
                             {"symbol", "_mlir_ciface_" + func.getName().str()},
                             {"inputs", std::move(inputs)},
                             {"parameters", std::move(params)}};
    if (!state.empty())
      entry["state"] = std::move(state);
    if (func.getNumResults() == 1)
      entry["result"] = tensorJson("", func.getResultTypes()[0]);
    entries.push_back(std::move(entry));
  }
  root["parameters"] = std::move(parameters);
  root["entries"] = std::move(entries);
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(root)));
  return s;
}

//===----------------------------------------------------------------------===//
// Code generation
//===----------------------------------------------------------------------===//

namespace {

/// Translates, sets up the target and optimizes; returns null after emitting
/// a diagnostic on `module`.
std::unique_ptr<llvm::Module>
translateAndOptimize(ModuleOp module, llvm::LLVMContext &llvmCtx,
                     const CPUTargetOptions &target,
                     std::unique_ptr<llvm::TargetMachine> &tm) {
  static bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;
  registerBuiltinDialectTranslation(*module.getContext());
  registerLLVMDialectTranslation(*module.getContext());
  registerOpenMPDialectTranslation(*module.getContext());

  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmCtx);
  if (!llvmModule) {
    module.emitError("translation to LLVM IR failed");
    return nullptr;
  }
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string error;
  const llvm::Target *llvmTarget =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!llvmTarget) {
    module.emitError() << "no LLVM target for " << triple.str() << ": "
                       << error;
    return nullptr;
  }
  auto [cpu, features] = resolveCPU(target);
  // LLVM aborts on CPU names it does not know: check first.
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      llvmTarget->createMCSubtargetInfo(triple, "", ""));
  if (!sti || !sti->isCPUStringValid(cpu)) {
    module.emitError() << "unknown CPU '" << cpu << "' for " << triple.str()
                       << " (use --cpu=native, or an LLVM CPU name such as "
                          "x86-64-v3, skylake-avx512, sapphirerapids)";
    return nullptr;
  }
  llvm::TargetOptions options;
  tm.reset(llvmTarget->createTargetMachine(triple, cpu, features, options,
                                           llvm::Reloc::PIC_, std::nullopt,
                                           llvm::CodeGenOptLevel::Aggressive));
  if (!tm) {
    module.emitError() << "cannot create a target machine for CPU '" << cpu
                       << "'";
    return nullptr;
  }
  llvmModule->setDataLayout(tm->createDataLayout());
  llvmModule->setTargetTriple(triple);
  // Tell the IR optimizers the CPU too (the loop vectorizer reads these),
  // and use full 512-bit vectors where the CPU has AVX-512: LLVM defaults to
  // 256 on Intel server cores.
  bool avx512 = tm->getMCSubtargetInfo()->checkFeatures("+avx512f");
  for (llvm::Function &f : *llvmModule) {
    if (f.isDeclaration())
      continue;
    f.addFnAttr("target-cpu", cpu);
    if (!features.empty())
      f.addFnAttr("target-features", features);
    if (avx512)
      f.addFnAttr("prefer-vector-width", "512");
  }
  auto optimize = makeOptimizingTransformer(target.optLevel, 0, tm.get());
  if (llvm::Error e = optimize(llvmModule.get())) {
    module.emitError() << "LLVM optimization failed: "
                       << llvm::toString(std::move(e));
    return nullptr;
  }
  return llvmModule;
}

/// Links an object file into a shared object with the host C driver.
LogicalResult linkSharedObject(ArrayRef<char> object, std::string &so,
                               std::string &error) {
  SmallString<128> objPath, soPath;
  int objFd;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("hag", "o", objFd, objPath)) {
    error = "cannot create a temporary object file: " + ec.message();
    return failure();
  }
  {
    llvm::raw_fd_ostream os(objFd, /*shouldClose=*/true);
    os.write(object.data(), object.size());
  }
  llvm::sys::fs::createTemporaryFile("hag", "so", soPath);
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove(objPath);
    llvm::sys::fs::remove(soPath);
  });

  std::string linker;
  if (const char *env = std::getenv("HAG_LINKER"))
    linker = env;
  else
    linker = HAG_DEFAULT_LINKER;
  llvm::ErrorOr<std::string> program = llvm::sys::findProgramByName(linker);
  if (!program) {
    for (const char *fallback : {"cc", "clang", "gcc"})
      if ((program = llvm::sys::findProgramByName(fallback)))
        break;
  }
  if (!program) {
    error = "no C compiler driver to link the shared object (tried '" + linker +
            "', cc, clang, gcc; set HAG_LINKER)";
    return failure();
  }
  // The parallel loops run on LLVM's OpenMP runtime (libomp-22-dev).
  SmallVector<StringRef> args = {*program,
                                 "-shared",
                                 "-o",
                                 soPath,
                                 objPath,
                                 "-L" HAG_OMP_LIB_DIR,
                                 "-Wl,-rpath," HAG_OMP_LIB_DIR,
                                 "-lomp",
                                 "-lm"};
  std::string errMsg;
  int rc = llvm::sys::ExecuteAndWait(*program, args, std::nullopt, {}, 0, 0,
                                     &errMsg);
  if (rc != 0) {
    error = "linking the shared object with '" + *program + "' failed" +
            (errMsg.empty() ? "" : ": " + errMsg);
    return failure();
  }
  auto buffer = llvm::MemoryBuffer::getFile(soPath);
  if (!buffer) {
    error =
        "cannot read the linked shared object: " + buffer.getError().message();
    return failure();
  }
  so = (*buffer)->getBuffer().str();
  return success();
}

void appendU32(std::string &s, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void appendU64(std::string &s, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}


} // namespace

LogicalResult mlir::hag::emitLLVMIR(ModuleOp module,
                                    const CPUTargetOptions &target,
                                    llvm::raw_ostream &os) {
  llvm::LLVMContext llvmCtx;
  std::unique_ptr<llvm::TargetMachine> tm;
  std::unique_ptr<llvm::Module> llvmModule =
      translateAndOptimize(module, llvmCtx, target, tm);
  if (!llvmModule)
    return failure();
  llvmModule->print(os, nullptr);
  return success();
}

LogicalResult mlir::hag::writeArtifact(ModuleOp module,
                                       const std::string &manifest,
                                       const CPUTargetOptions &target,
                                       StringRef path) {
  llvm::LLVMContext llvmCtx;
  std::unique_ptr<llvm::TargetMachine> tm;
  std::unique_ptr<llvm::Module> llvmModule =
      translateAndOptimize(module, llvmCtx, target, tm);
  if (!llvmModule)
    return failure();

  SmallVector<char> object;
  {
    llvm::raw_svector_ostream os(object);
    llvm::legacy::PassManager pm;
    if (tm->addPassesToEmitFile(pm, os, nullptr,
                                llvm::CodeGenFileType::ObjectFile))
      return module.emitError("the target cannot emit object files");
    pm.run(*llvmModule);
  }
  std::string so, error;
  if (failed(linkSharedObject(object, so, error)))
    return module.emitError(error);

  std::string file = "HAGARTF";
  file.push_back('\0');
  appendU32(file, kArtifactFormatVersion);
  appendU32(file, 0);
  appendU64(file, manifest.size());
  appendU64(file, so.size());
  file += manifest;
  file += so;
  // The runtime's checksum and atomic writer: one implementation of the
  // format on both sides (temporary file, fsync, rename, directory fsync).
  appendU64(file, ::hag::rt::fnv1a64(
                      reinterpret_cast<const uint8_t *>(file.data()),
                      file.size()));
  ::hag::rt::Status written =
      ::hag::rt::writeFileAtomic(path.str(), file.data(), file.size());
  if (!written.ok())
    return module.emitError(written.message());
  return success();
}
