//===- JitModel.cpp - Compile a model description and run it in-process ---===//

#include "JitModel.h"

#include "hag/InitAll.h"
#include "hag/Pipelines/Pipelines.h"
#include "hag/Target/Artifact.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/Support/TargetSelect.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <cstring>
#include <map>

using namespace mlir;

namespace hag::testing {

struct JitModel::Impl {
  DialectRegistry registry;
  std::unique_ptr<MLIRContext> ctx;
  OwningOpRef<ModuleOp> hagModule; // after the hag phase, for argument names
  std::unique_ptr<ExecutionEngine> engine;
};

JitModel::~JitModel() = default;

namespace {
std::atomic<AllReduceFn> allReduceFn{nullptr};

/// What compiled code calls for hag.all_reduce.
void allReduceTrampoline(float *data, int64_t count, int32_t group,
                         int32_t mean) {
  AllReduceFn fn = allReduceFn.load();
  if (!fn) {
    std::fprintf(stderr, "hag_all_reduce_f32: no collective installed "
                         "(hag::testing::setAllReduce)\n");
    std::abort();
  }
  fn(data, count, group, mean);
}

void initializeOnce() {
  static bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    mlir::hag::registerHAGPasses();
    return true;
  }();
  (void)initialized;
}
} // namespace

/// Runs `passes` (a pass pipeline, may be empty) on `module` (after the hag
/// phase), then lowers it for the CPU and JIT-compiles it.
static bool lowerAndJit(JitModel::Impl &impl, OwningOpRef<ModuleOp> module,
                        const std::string &passes, std::string &diagnostics,
                        std::string &error, bool emulateCuda = false) {
  if (!passes.empty()) {
    PassManager pm(impl.ctx.get());
    if (failed(parsePassPipeline(passes, pm)) || failed(pm.run(*module))) {
      error = "passes '" + passes + "' failed: " + diagnostics;
      return false;
    }
  }
  impl.hagModule = module->clone();
  PassManager lower(impl.ctx.get());
  if (emulateCuda)
    mlir::hag::buildCUDAEmulationPipeline(lower);
  else
    mlir::hag::buildCPULoweringPipeline(lower, mlir::hag::cpuHasAMX("native"));
  if (failed(lower.run(*module))) {
    error = std::string(emulateCuda ? "CUDA emulator" : "CPU") +
            " lowering failed: " + diagnostics;
    return false;
  }
  ExecutionEngineOptions options;
  // The parallel loops call LLVM's OpenMP runtime.
  static const std::string libomp = HAG_OMP_LIB_DIR "/libomp.so";
  static llvm::StringRef libs[] = {libomp};
  options.sharedLibPaths = libs;
  // options.transformer is a function_ref: the function must outlive create.
  std::function<llvm::Error(llvm::Module *)> optimize =
      makeOptimizingTransformer(/*optLevel=*/2, 0, nullptr);
  options.transformer = optimize;
  auto engine = ExecutionEngine::create(*module, options);
  if (!engine) {
    error = "JIT failed: " + llvm::toString(engine.takeError());
    return false;
  }
  impl.engine = std::move(*engine);
  impl.engine->registerSymbols([](llvm::orc::MangleAndInterner interner) {
    llvm::orc::SymbolMap symbols;
    symbols[interner("hag_all_reduce_f32")] = {
        llvm::orc::ExecutorAddr::fromPtr(&allReduceTrampoline),
        llvm::JITSymbolFlags::Exported};
    return symbols;
  });
  return true;
}

void setAllReduce(AllReduceFn fn) { allReduceFn.store(fn); }

std::unique_ptr<JitModel> JitModel::create() {
  initializeOnce();
  auto model = std::unique_ptr<JitModel>(new JitModel());
  model->impl = std::make_unique<Impl>();
  mlir::hag::registerHAGDialects(model->impl->registry);
  model->impl->ctx = std::make_unique<MLIRContext>(model->impl->registry);
  model->impl->ctx->loadAllAvailableDialects();
  return model;
}

std::unique_ptr<JitModel> JitModel::compile(const ModelDescription &md,
                                            std::string &error,
                                            const std::string &passes,
                                            bool emulateCuda) {
  std::unique_ptr<JitModel> model = create();
  Impl &impl = *model->impl;
  std::string diagnostics;
  ScopedDiagnosticHandler handler(impl.ctx.get(), [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });

  OwningOpRef<ModuleOp> module = buildModelModule(*impl.ctx, md, "test");
  PassManager hagPhase(impl.ctx.get());
  mlir::hag::buildHAGPhasePipeline(hagPhase);
  if (failed(verify(*module)) || failed(hagPhase.run(*module))) {
    error = "hag phase failed: " + diagnostics;
    return nullptr;
  }
  if (!lowerAndJit(impl, std::move(module), passes, diagnostics, error,
                   emulateCuda))
    return nullptr;
  return model;
}

std::unique_ptr<JitModel> JitModel::compileSource(const std::string &source,
                                                  std::string &error,
                                                  const std::string &passes,
                                                  bool emulateCuda) {
  std::unique_ptr<JitModel> model = create();
  Impl &impl = *model->impl;
  std::string diagnostics;
  ScopedDiagnosticHandler handler(impl.ctx.get(), [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(source, ParserConfig(impl.ctx.get()));
  if (!module) {
    error = "parse failed: " + diagnostics;
    return nullptr;
  }
  if (!lowerAndJit(impl, std::move(module), passes, diagnostics, error,
                   emulateCuda))
    return nullptr;
  return model;
}

std::vector<std::string>
JitModel::argumentNames(const std::string &entry) const {
  std::vector<std::string> names;
  auto func = impl->hagModule->lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return names;
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    names.push_back(
        cast<StringAttr>(func.getArgAttr(i, "hag.name")).getValue().str());
  return names;
}

namespace {
/// A ranked memref descriptor as the C interface passes it: base pointer,
/// aligned pointer, offset, sizes[rank], strides[rank].
std::vector<int64_t> makeDescriptor(const TensorArg &arg) {
  size_t rank = arg.shape.size();
  std::vector<int64_t> desc(3 + 2 * rank);
  auto *ptr = const_cast<void *>(arg.data);
  std::memcpy(&desc[0], &ptr, sizeof(void *));
  std::memcpy(&desc[1], &ptr, sizeof(void *));
  desc[2] = 0;
  int64_t stride = 1;
  for (size_t i = rank; i-- > 0;) {
    desc[3 + i] = arg.shape[i];
    desc[3 + rank + i] = stride;
    stride *= arg.shape[i];
  }
  return desc;
}
} // namespace

bool JitModel::run(const std::string &entry, const std::vector<TensorArg> &args,
                   int64_t resultRank, TensorResult &result,
                   std::string &error) {
  std::vector<TensorResult> results;
  if (!runMulti(entry, args, {resultRank}, results, error))
    return false;
  result = std::move(results[0]);
  return true;
}

bool JitModel::runMulti(const std::string &entry,
                        const std::vector<TensorArg> &args,
                        const std::vector<int64_t> &resultRanks,
                        std::vector<TensorResult> &results,
                        std::string &error) {
  // The C interface returns several results through one struct of their
  // descriptors (all 8-byte fields, laid out one after the other).
  size_t words = 0;
  for (int64_t r : resultRanks)
    words += 3 + 2 * r;
  std::vector<int64_t> resultDesc(words, 0);
  std::vector<std::vector<int64_t>> descs;
  descs.reserve(args.size());
  for (const TensorArg &a : args)
    descs.push_back(makeDescriptor(a));
  // invokePacked takes a pointer to each argument; each argument of the C
  // interface is itself a pointer to a descriptor (the result's first).
  std::vector<void *> argPtrs;
  std::vector<void *> values;
  values.reserve(descs.size() + 1);
  values.push_back(resultDesc.data());
  for (auto &d : descs)
    values.push_back(d.data());
  for (void *&v : values)
    argPtrs.push_back(&v);
  if (llvm::Error e =
          impl->engine->invokePacked("_mlir_ciface_" + entry, argPtrs)) {
    error = llvm::toString(std::move(e));
    return false;
  }
  results.clear();
  size_t at = 0;
  for (int64_t rank : resultRanks) {
    const int64_t *d = resultDesc.data() + at;
    void *base, *aligned;
    std::memcpy(&base, &d[0], sizeof(void *));
    std::memcpy(&aligned, &d[1], sizeof(void *));
    int64_t offset = d[2];
    TensorResult r;
    r.shape.assign(d + 3, d + 3 + rank);
    int64_t numel = 1;
    for (int64_t s : r.shape)
      numel *= s;
    r.data.resize(numel);
    // Contiguous (identity layout), malloc'ed by the compiled code: copy
    // it out and free it (results may share a buffer only if the code
    // returned one value twice, which these tests do not).
    std::memcpy(r.data.data(), static_cast<float *>(aligned) + offset,
                numel * sizeof(float));
    std::free(base);
    results.push_back(std::move(r));
    at += 3 + 2 * rank;
  }
  return true;
}

} // namespace hag::testing
