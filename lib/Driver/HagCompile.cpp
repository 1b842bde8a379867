//===- HagCompile.cpp - The hag-compile driver ----------------------------===//

#include "hag/Driver/HagCompile.h"
#include "hag/Analysis/CostModel.h"
#include "hag/Analysis/PipelinePlan.h"
#include "hag/Frontend/ModelDescription.h"
#include "hag/InitAll.h"
#include "hag/Pipelines/Pipelines.h"
#include "hag/Target/Artifact.h"
#include "hag/Target/Cuda.h"
#include "hag/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
namespace cl = llvm::cl;

namespace {

/// Phases of architecture.md, in order. Only those implemented so far are
/// accepted on the command line (partition comes later).
enum class Phase { Input, HAG, Train, Lower, Artifact };
enum class Emit { Default, MLIR, LLVM, PTX, Artifact };
enum class Report { None, Cost, Schedule, Kernels };
enum class Format { Text, JSON };

struct Options {
  cl::OptionCategory category{"hag-compile options"};
  cl::opt<std::string> input{cl::Positional,
                             cl::desc("<model.yaml|model.mlir>"), cl::init("-"),
                             cl::cat(category)};
  cl::opt<std::string> output{"o", cl::desc("Output file ('-' for stdout)"),
                              cl::value_desc("file"), cl::init("-"),
                              cl::cat(category)};
  cl::opt<Phase> compileTo{
      "compile-to",
      cl::desc("Stop after this phase (default: artifact when -o ends in "
               ".hag, else hag)"),
      cl::values(clEnumValN(Phase::Input, "input",
                            "the model as unfused hag ops on tensors"),
                 clEnumValN(Phase::HAG, "hag",
                            "verified, canonicalized and fused hag ops"),
                 clEnumValN(Phase::Train, "train",
                            "plus @train_step and @gradients (implies "
                            "--train)"),
                 clEnumValN(Phase::Lower, "lower",
                            "lowered to the LLVM dialect for the CPU"),
                 clEnumValN(Phase::Artifact, "artifact",
                            "compiled code and manifest in one .hag file")),
      cl::cat(category)};
  cl::opt<Emit> emit{
      "emit", cl::desc("What to write"), cl::init(Emit::Default),
      cl::values(clEnumValN(Emit::MLIR, "mlir", "MLIR after the last phase"),
                 clEnumValN(Emit::LLVM, "llvm",
                            "optimized LLVM IR for the target CPU"),
                 clEnumValN(Emit::PTX, "ptx",
                            "the PTX of every GPU kernel (--target=cuda; "
                            "assembled by ptxas as a check)"),
                 clEnumValN(Emit::Artifact, "artifact", "the .hag artifact")),
      cl::cat(category)};
  cl::opt<bool> train{
      "train",
      cl::desc("Compile the training step too (autodiff, clipping, AdamW, "
               "the schedule; settings from the description's train: "
               "section, else its defaults)"),
      cl::init(false), cl::cat(category)};
  cl::opt<std::string> target{
      "target",
      cl::desc("Device: cpu or cuda (default: the description's "
               "target.device, else cpu); cuda-emulator: the CUDA "
               "lowering's kernels as CPU loops with the GPU's numerics, "
               "to test the CUDA path without a GPU"),
      cl::init("cpu"), cl::cat(category)};
  cl::opt<std::string> gpuArch{
      "gpu-arch",
      cl::desc("GPU architecture for --target=cuda: sm_80 or sm_90a "
               "(default: the description's target.gpu_arch, else sm_90a)"),
      cl::init("sm_90a"), cl::cat(category)};
  cl::opt<std::string> cpu{
      "cpu",
      cl::desc("LLVM CPU name for the generated code ('native': this "
               "machine, with AVX-512 where it has it)"),
      cl::init("native"), cl::cat(category)};
  cl::opt<Report> report{
      "report", cl::desc("Print a report instead of IR"),
      cl::init(Report::None),
      cl::values(clEnumValN(Report::Cost, "cost",
                            "FLOPs and bytes per op, keys per query per "
                            "level, dense-equivalent ratio"),
                 clEnumValN(Report::Schedule, "schedule",
                            "pipeline stages (parallel.pipeline) balanced by "
                            "the cost model, and their 1F1B schedule of "
                            "parallel.microbatches"),
                 clEnumValN(Report::Kernels, "kernels",
                            "every GPU kernel's registers, shared memory and "
                            "occupancy from ptxas (--target=cuda)")),
      cl::cat(category)};
  cl::opt<int64_t> seq{"seq", cl::desc("Sequence length of the report"),
                       cl::init(0), cl::cat(category)};
  cl::opt<int64_t> batch{"batch", cl::desc("Batch size of the report"),
                         cl::init(1), cl::cat(category)};
  cl::opt<Format> format{
      "format", cl::desc("Report format"), cl::init(Format::Text),
      cl::values(clEnumValN(Format::Text, "text", "tables"),
                 clEnumValN(Format::JSON, "json", "one JSON object")),
      cl::cat(category)};
};

int fail(const llvm::Twine &msg) {
  llvm::errs() << "hag-compile: error: " << msg << "\n";
  return 1;
}

/// Reads `opts.input` into `sourceMgr` and builds the module.
OwningOpRef<ModuleOp> loadInput(const Options &opts, MLIRContext &ctx,
                                llvm::SourceMgr &sourceMgr) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer =
      openInputFile(opts.input, &error);
  if (!buffer) {
    fail(error);
    return {};
  }
  StringRef name = opts.input == "-" ? "<stdin>" : StringRef(opts.input);
  unsigned id = sourceMgr.AddNewSourceBuffer(std::move(buffer), SMLoc());
  if (llvm::sys::path::extension(name) == ".mlir")
    return parseSourceFile<ModuleOp>(sourceMgr, &ctx);

  std::optional<::hag::ModelDescription> md =
      ::hag::parseModelDescription(sourceMgr, id);
  if (!md)
    return {};
  return ::hag::buildModelModule(ctx, *md, name);
}

} // namespace

int mlir::hag::hagCompileMain(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  Options opts;
  cl::HideUnrelatedOptions(opts.category);
  cl::SetVersionPrinter([](llvm::raw_ostream &os) {
    os << "hag-compile " << HAG_VERSION << " (LLVM/MLIR " << LLVM_VERSION_STRING
       << ")\n";
  });
  cl::ParseCommandLineOptions(
      argc, argv,
      "HAG compiler: model description or hag IR -> compiled model\n\n"
      "  hag-compile MODEL.yaml -o model.mlir --compile-to=hag\n"
      "  hag-compile MODEL.yaml --report=cost --seq 8192 --format=json\n");

  if (opts.target != "cpu" && opts.target != "cuda" &&
      opts.target != "cuda-emulator")
    return fail("--target=" + opts.target +
                " is not a target (cpu, cuda, or cuda-emulator)");
  if (!isSupportedGPUArch(opts.gpuArch))
    return fail("--gpu-arch=" + opts.gpuArch +
                " is not supported (sm_80 or sm_90a)");
  // Resolve the phase and what to emit from each other and from -o.
  Phase phase = opts.compileTo.getNumOccurrences() ? opts.compileTo.getValue()
                                                   : Phase::HAG;
  Emit emit = opts.emit;
  if (!opts.compileTo.getNumOccurrences()) {
    if (emit == Emit::Artifact ||
        (emit == Emit::Default && StringRef(opts.output).ends_with(".hag")))
      phase = Phase::Artifact;
    else if (emit == Emit::LLVM)
      phase = Phase::Lower;
  }
  if (emit == Emit::Default)
    emit = phase == Phase::Artifact ? Emit::Artifact : Emit::MLIR;
  if (emit == Emit::PTX && !opts.compileTo.getNumOccurrences())
    phase = Phase::Lower;
  if ((emit == Emit::LLVM || emit == Emit::PTX) && phase < Phase::Lower)
    return fail(std::string("--emit=") + (emit == Emit::LLVM ? "llvm" : "ptx") +
                " needs --compile-to=lower or later");
  if ((emit == Emit::Artifact) != (phase == Phase::Artifact))
    return fail("--emit=artifact goes with --compile-to=artifact");
  if (phase == Phase::Artifact && opts.output == "-")
    return fail("an artifact is a binary file: give it a name with -o "
                "(e.g. -o model.hag)");
  if (opts.report == Report::Kernels) {
    if (opts.compileTo.getNumOccurrences() || emit != Emit::MLIR)
      return fail("--report=kernels compiles to the kernels itself: drop "
                  "--compile-to and --emit");
    phase = Phase::Lower;
  } else if (opts.report != Report::None) {
    phase = Phase::HAG;
  }
  if (opts.report == Report::Cost && opts.seq < 1)
    return fail("--report=cost needs --seq N with N >= 1");
  if (opts.batch < 1)
    return fail("--batch must be >= 1");

  DialectRegistry registry;
  registerHAGDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  // Diagnostics name the op and its location; the op's full generic form
  // buries the message.
  ctx.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagHandler(sourceMgr, &ctx);

  OwningOpRef<ModuleOp> module = loadInput(opts, ctx, sourceMgr);
  if (!module || failed(verify(*module)))
    return 1;

  // The device: the command line, else the description's `target:`.
  std::string device = opts.target, gpuArch = opts.gpuArch;
  if (auto t =
          module->getOperation()->getAttrOfType<DictionaryAttr>("hag.target")) {
    if (auto d = t.getAs<StringAttr>("device");
        d && !opts.target.getNumOccurrences())
      device = d.getValue().str();
    if (auto a = t.getAs<StringAttr>("gpu_arch");
        a && !opts.gpuArch.getNumOccurrences())
      gpuArch = a.getValue().str();
  }
  bool cuda = device == "cuda";
  bool emulator = device == "cuda-emulator";
  if (!cuda && (emit == Emit::PTX || opts.report == Report::Kernels))
    return fail(
        std::string(emit == Emit::PTX ? "--emit=ptx" : "--report=kernels") +
        " needs --target=cuda (the model's target is " + device + ")");
  CUDATargetOptions cudaOptions;
  cudaOptions.arch = gpuArch;
  if (cuda) {
    // Before any work: without ptxas nothing can be compiled.
    std::string error;
    if (phase >= Phase::Lower && failed(findCudaToolkit(cudaOptions, error)))
      return fail(error);
  }

  // `parallel.tensor: t` (t > 1): the program of one tensor-parallel rank;
  // `parallel.data: d` (d > 1, training): the gradients are averaged over d
  // replicas.
  int64_t tensorParallel = 1, dataParallel = 1, pipelineParallel = 1,
          microbatches = 1;
  if (auto p = module->getOperation()->getAttrOfType<DictionaryAttr>(
          "hag.parallel")) {
    if (auto m = p.getAs<IntegerAttr>("microbatches"))
      microbatches = m.getInt();
    if (auto t = p.getAs<IntegerAttr>("tensor"))
      tensorParallel = t.getInt();
    if (auto d = p.getAs<IntegerAttr>("data"))
      dataParallel = d.getInt();
    if (auto pp = p.getAs<IntegerAttr>("pipeline"))
      pipelineParallel = pp.getInt();
  }
  if (opts.report == Report::Schedule) {
    // A micro-batch: the replica's rows of train.batch, split m ways.
    ::hag::TrainConfig defaults;
    int64_t batch = defaults.batch, seq = defaults.seq;
    if (auto t =
            module->getOperation()->getAttrOfType<DictionaryAttr>("hag.train")) {
      if (auto b = t.getAs<IntegerAttr>("batch"))
        batch = b.getInt();
      if (auto q = t.getAs<IntegerAttr>("seq"))
        seq = q.getInt();
    }
    if (opts.seq.getNumOccurrences())
      seq = opts.seq;
    if (batch % (dataParallel * microbatches) != 0)
      return fail("--report=schedule: train.batch (" + std::to_string(batch) +
                  ") is not divisible by parallel.data x "
                  "parallel.microbatches (" +
                  std::to_string(dataParallel * microbatches) + ")");
    PassManager pm(&ctx);
    buildHAGPhasePipeline(pm);
    if (failed(pm.run(*module)))
      return 1;
    FailureOr<PipelinePlan> plan = planPipeline(
        *module, pipelineParallel, microbatches,
        CostContext{seq, batch / (dataParallel * microbatches)});
    if (failed(plan))
      return 1;
    std::string error;
    std::unique_ptr<llvm::ToolOutputFile> out =
        openOutputFile(opts.output, &error);
    if (!out)
      return fail(error);
    printPipelineReport(*plan, out->os());
    out->keep();
    return 0;
  }
  // An .mlir input may already be a rank program (of this YAML's split).
  auto splitAttr = module->getOperation()->getAttrOfType<DictionaryAttr>(
      "hag.parallel_rank_program");
  bool alreadySplit = splitAttr && splitAttr.get("tensor");
  if (phase >= Phase::HAG) {
    PassManager pm(&ctx);
    buildHAGPhasePipeline(pm);
    if (tensorParallel > 1 && !alreadySplit) {
      HAGSplitTensorParallelOptions split;
      split.degree = tensorParallel;
      pm.addPass(createHAGSplitTensorParallel(split));
    }
    if (pipelineParallel > 1 &&
        !module->getOperation()->hasAttr("hag.pipeline")) {
      HAGSplitPipelineOptions split;
      split.stages = pipelineParallel;
      split.microbatches = microbatches;
      pm.addPass(createHAGSplitPipeline(split));
    }
    if (failed(pm.run(*module)))
      return 1;
  }
  bool train = opts.train || phase == Phase::Train;
  if (train && phase >= Phase::Train) {
    Operation *m = module->getOperation();
    auto config = m->getAttrOfType<DictionaryAttr>("hag.train");
    if (!config) {
      config = ::hag::trainConfigAttr(ctx, ::hag::TrainConfig());
      m->setAttr("hag.train", config);
    }
    if (!module->lookupSymbol("loss") &&
        !module->getOperation()->hasAttr("hag.pipeline"))
      return fail("--train needs a language model (kind: lm): the model has "
                  "no loss");
    // The CUDA library's products (gradients too) round their operands to
    // f16 for the Tensor Cores: without a loss scale, gradients under f16's
    // range are lost.
    auto precision = config.getAs<StringAttr>("precision");
    if ((cuda || emulator) && (!precision || precision.getValue() == "fp32"))
      llvm::errs() << "hag-compile: warning: --target=" << device
                   << " --train: precision fp32 has no loss scale, but the "
                      "GPU's products (gradients too) take f16 operands: "
                      "gradients below ~6e-8 flush to zero; train.precision: "
                      "fp16-mixed scales the loss\n";
    PassManager pm(&ctx);
    buildTrainPhasePipeline(pm, config, dataParallel, pipelineParallel);
    if (failed(pm.run(*module)))
      return 1;
  }
  CPUTargetOptions targetOptions;
  targetOptions.cpu = opts.cpu;
  // The emulator's code is CPU code.
  targetOptions.device = emulator ? "cpu" : device;
  targetOptions.gpuArch = cuda ? gpuArch : "";
  // The manifest describes the hag-level functions (names, shapes).
  std::string manifest;
  if (phase == Phase::Artifact)
    manifest = buildManifest(*module, targetOptions);
  std::vector<KernelResources> kernels;
  std::string ptx;
  if (phase >= Phase::Lower) {
    PassManager pm(&ctx);
    if (cuda)
      buildCUDALoweringPipeline(pm, gpuArch);
    else if (emulator)
      buildCUDAEmulationPipeline(pm);
    else
      buildCPULoweringPipeline(pm, cpuHasAMX(opts.cpu));
    if (failed(pm.run(*module)))
      return 1;
    // PTX -> cubins with their resource proofs; --compile-to=lower keeps
    // the GPU modules in NVVM for reading unless PTX or a report is asked.
    if (cuda &&
        (phase == Phase::Artifact || emit == Emit::PTX || emit == Emit::LLVM ||
         opts.report == Report::Kernels) &&
        failed(compileGPUModules(*module, cudaOptions, &kernels,
                                 emit == Emit::PTX ? &ptx : nullptr)))
      return 1;
  }
  if (phase == Phase::Artifact)
    return failed(writeArtifact(*module, manifest, targetOptions, opts.output))
               ? 1
               : 0;

  std::string error;
  std::unique_ptr<llvm::ToolOutputFile> out =
      openOutputFile(opts.output, &error);
  if (!out)
    return fail(error);
  if (opts.report == Report::Kernels) {
    if (opts.format == Format::JSON)
      printKernelReportJSON(kernels, gpuArch, out->os());
    else
      printKernelReport(kernels, gpuArch, out->os());
    out->keep();
    return 0;
  }
  if (emit == Emit::PTX) {
    out->os() << ptx;
    out->keep();
    return 0;
  }
  if (emit == Emit::LLVM) {
    if (failed(emitLLVMIR(*module, targetOptions, out->os())))
      return 1;
    out->keep();
    return 0;
  }

  if (opts.report == Report::Cost) {
    CostReport report;
    CostContext costCtx{opts.seq, opts.batch};
    if (failed(computeCostReport(*module, costCtx, report)))
      return 1;
    if (opts.format == Format::JSON)
      printCostReportJSON(report, out->os());
    else
      printCostReportText(report, out->os());
  } else {
    module->print(out->os());
    out->os() << "\n";
  }
  out->keep();
  return 0;
}
