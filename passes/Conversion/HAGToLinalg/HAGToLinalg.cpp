//===- HAGToLinalg.cpp - hag-lower-to-linalg ------------------------------===//

#include "CudaKernels.h"
#include "hag/Conversion/Passes.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "mlir/Dialect/AMX/AMXDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::hag {
#define GEN_PASS_DEF_HAGLOWERTOLINALG
#include "hag/Conversion/Passes.h.inc"
} // namespace mlir::hag

using namespace mlir;
using namespace mlir::hag;

LogicalResult mlir::hag::loadKernelLibrary(ModuleOp module, StringRef symbol,
                                           StringRef source,
                                           StringRef fileName) {
  if (module.lookupSymbol(symbol))
    return success();
  ParserConfig config(module.getContext());
  OwningOpRef<ModuleOp> library =
      parseSourceString<ModuleOp>(source, config, fileName);
  if (!library)
    return module.emitError() << "internal error: the kernel library file "
                              << fileName << " does not parse";
  OpBuilder b(module.getContext());
  b.setInsertionPointToEnd(module.getBody());
  for (Operation &op : library->getBody()->getOperations()) {
    auto fn = dyn_cast<func::FuncOp>(op);
    if (fn && module.lookupSymbol(fn.getSymName()))
      continue;
    b.clone(op);
  }
  return success();
}

/// The kernel library (kernels/*.mlir), embedded at build time.
static const char kPyramidKernelSource[] =
#include "PyramidAttentionKernel.inc"
    ;
static const char kPyramidBackwardKernelSource[] =
#include "PyramidAttentionBackwardKernel.inc"
    ;
static const char kMatmulKernelSource[] =
#include "MatmulKernel.inc"
    ;
static const char kMatmulAmxKernelSource[] =
#include "MatmulAmxKernel.inc"
    ;
static const char kCudaPyramidKernelSource[] =
#include "CudaPyramidAttentionKernel.inc"
    ;
static const char kCudaPyramidBackwardKernelSource[] =
#include "CudaPyramidAttentionBackwardKernel.inc"
    ;
/// Templates: instantiated per head size (cudaVectorSource).
static const char kCudaAttentionVectorTemplate[] =
#include "CudaAttentionVectorKernel.inc"
    ;
static const char kCudaAttentionBackwardVectorTemplate[] =
#include "CudaAttentionBackwardVectorKernel.inc"
    ;

/// The register kernels of a template (kernels/cuda/attention_vector.mlir,
/// attention_backward_vector.mlir) for the head sizes the attention's
/// scf.index_switch names: the template with every `__D__` replaced by the
/// size, `__C__` by size / 8 and `__DOT__` by the FMA chain.
static std::string cudaVectorSource(const char *templateText,
                                    ArrayRef<int> sizes = {32, 64, 128}) {
  std::string all;
  for (int size : sizes) {
    int chunks = size / 8;
    // %part = sum_c %q2[c] * %k2[c]: one FMA per chunk.
    std::string dot;
    for (int c = 0; c < chunks; ++c) {
      std::string i = std::to_string(c), ty = "vector<8xf32>";
      std::string from =
          " : " + ty + " from vector<" + std::to_string(chunks) + "x8xf32>\n";
      dot += "    %qc" + i + " = vector.extract %q2[" + i + "]" + from;
      dot += "    %kc" + i + " = vector.extract %k2[" + i + "]" + from;
      std::string out = c + 1 == chunks ? "%part" : "%pc" + i;
      dot += "    " + out +
             (c == 0 ? " = arith.mulf %qc0, %kc0 : "
                     : " = math.fma %qc" + i + ", %kc" + i + ", %pc" +
                           std::to_string(c - 1) + " : ") +
             ty + "\n";
    }
    std::string text = templateText;
    for (auto [key, value] :
         {std::pair<std::string, std::string>{"__DOT__\n", dot},
          std::pair<std::string, std::string>{"__D__", std::to_string(size)},
          std::pair<std::string, std::string>{"__C__", std::to_string(chunks)}})
      for (size_t at = text.find(key); at != std::string::npos;
           at = text.find(key, at + value.size()))
        text.replace(at, key.size(), value);
    all += text;
  }
  return all;
}

namespace {

/// Loads the CPU kernel library files the module's ops need.
LogicalResult loadCPUKernelLibraries(ModuleOp module, bool needsAttention,
                                     bool needsBackward, bool needsMatmul,
                                     bool amx) {
  if (needsAttention &&
      failed(loadKernelLibrary(module, "hag_pyramid_attention",
                               kPyramidKernelSource, "pyramid_attention.mlir")))
    return failure();
  // The backward kernel calls the forward's functions: parsed together.
  if (needsBackward &&
      failed(loadKernelLibrary(module, "hag_pyramid_attention_backward",
                               std::string(kPyramidKernelSource) +
                                   kPyramidBackwardKernelSource,
                               "pyramid_attention_backward.mlir")))
    return failure();
  if (needsMatmul &&
      failed(loadKernelLibrary(module, "hag_matmul_nt", kMatmulKernelSource,
                               "matmul.mlir")))
    return failure();
  // The AMX kernel falls back on @hag_matmul_nt: parsed together.
  if (needsMatmul && amx &&
      failed(loadKernelLibrary(module, "hag_matmul_nt_amx",
                               std::string(kMatmulKernelSource) +
                                   kMatmulAmxKernelSource,
                               "matmul_amx.mlir")))
    return failure();

  return success();
}

struct HAGLowerToLinalgPass
    : mlir::hag::impl::HAGLowerToLinalgBase<HAGLowerToLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (target != "cpu" && target != "cuda") {
      module.emitError() << "hag-lower-to-linalg: unknown target '" << target
                         << "' (expected cpu or cuda)";
      return signalPassFailure();
    }
    // Public entry points get a C ABI wrapper (_mlir_ciface_<name>) that
    // takes memref descriptors by pointer: the runtime calls those.
    // The hag.* argument attributes (weight names) have been read by the
    // manifest writer; LLVM does not know them.
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isPublic() && !func.isExternal())
        func->setAttr("llvm.emit_c_interface", UnitAttr::get(&getContext()));
      for (unsigned i = 0; i < func.getNumArguments(); ++i) {
        // On CUDA, a scalar input (the decoding position) is read by the
        // host code: the runtime passes it in host memory (see
        // HAGToGPU/HostMemory.h).
        auto scalar = dyn_cast<RankedTensorType>(func.getArgumentTypes()[i]);
        if (target == "cuda" && func.isPublic() && scalar &&
            scalar.getRank() == 0 && func.getArgAttr(i, "hag.input"))
          func.setArgAttr(i, kHostArgumentAttr, UnitAttr::get(&getContext()));
        SmallVector<StringAttr> hagAttrs;
        if (DictionaryAttr attrs = func.getArgAttrDict(i))
          for (NamedAttribute a : attrs)
            if (a.getName().getValue().starts_with("hag."))
              hagAttrs.push_back(a.getName());
        for (StringAttr name : hagAttrs)
          func.removeArgAttr(i, name);
      }
    }
    // The unfused pyramid has no CPU lowering of its own: say what to run.
    WalkResult unfused = module.walk([&](Operation *op) {
      if (!isa<BuildLevelOp, GlobalSummaryOp, CrossLevelAttentionOp>(op))
        return WalkResult::advance();
      op->emitError() << "cannot lower the unfused '"
                      << op->getName().getStringRef()
                      << "' to CPU code: run hag-fuse-pyramid first "
                         "(hag-compile does)";
      return WalkResult::interrupt();
    });
    if (unfused.wasInterrupted())
      return signalPassFailure();

    bool needsAttention = false, needsBackward = false, needsMatmul = false;
    module.walk([&](Operation *op) {
      needsAttention |= isa<PyramidAttentionOp, PyramidDecodeOp>(op);
      needsBackward |= isa<PyramidAttentionBackwardOp>(op);
      needsMatmul |= isa<LinearOp, SwiGLUOp, MemoryGateOp, GateActivationOp,
                         PyramidAttentionOp, PyramidDecodeOp, LinearBackwardOp,
                         EmbeddingBackwardOp>(op);
    });
    if (target == "cuda") {
      if (needsMatmul && failed(loadCudaKernelLibrary(module)))
        return signalPassFailure();
      // The CPU library's level builder, mass biases and level backward
      // (parallel loops, scalar code) with the CUDA attention: its own
      // @hag_pyramid_attention, @hag_pyramid_decode and
      // @hag_pyramid_attention_backward replace the CPU ones, renamed away
      // before parsing them together.
      if (needsAttention || needsBackward) {
        std::string cpu = kPyramidKernelSource;
        if (needsBackward)
          cpu += kPyramidBackwardKernelSource;
        for (StringRef name : {"hag_pyramid_attention", "hag_pyramid_decode",
                               "hag_pyramid_attention_backward"}) {
          const std::string def = ("func.func private @" + name + "(").str();
          size_t at = cpu.find(def);
          if (at != std::string::npos)
            cpu.replace(at, def.size(),
                        ("func.func private @" + name + "_cpu(").str());
        }
        std::string cuda = cpu + kCudaPyramidKernelSource +
                           cudaVectorSource(kCudaAttentionVectorTemplate);
        if (needsBackward)
          cuda += kCudaPyramidBackwardKernelSource +
                  cudaVectorSource(kCudaAttentionBackwardVectorTemplate, {32});
        if (failed(loadKernelLibrary(module, "hag_gpu_prefix_sums", cuda,
                                     "cuda/pyramid_attention.mlir")))
          return signalPassFailure();
      }
    } else {
      if (failed(loadCPUKernelLibraries(module, needsAttention, needsBackward,
                                        needsMatmul, amx)))
        return signalPassFailure();
    }

    ConversionTarget legality(getContext());
    legality.addIllegalDialect<HAGDialect>();
    legality.addLegalDialect<linalg::LinalgDialect, tensor::TensorDialect,
                             arith::ArithDialect, math::MathDialect,
                             scf::SCFDialect, memref::MemRefDialect,
                             bufferization::BufferizationDialect,
                             func::FuncDialect, vector::VectorDialect>();
    RewritePatternSet patterns(&getContext());
    populateLanguageModelToLinalgPatterns(patterns);
    populatePyramidAttentionToLoopsPatterns(patterns);
    populateOptimizerToLinalgPatterns(patterns);
    populateGradientsToLinalgPatterns(patterns);
    if (failed(applyPartialConversion(module, legality, std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
