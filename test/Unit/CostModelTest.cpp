//===- CostModelTest.cpp - The cost model against closed forms ------------===//
//
// Builds models with the frontend's module builder and checks the cost report
// against FLOP counts written out here from first principles: 2*rows*in*out
// per projection, 4*d*sum K(i) per attention head (spec section 6) with the
// key counts of hag::countKeys (themselves checked per query by
// PyramidWindowsTest), and 4*d*N(N+1)/2 for dense causal attention.
//
//===----------------------------------------------------------------------===//

#include "hag/Analysis/CostModel.h"
#include "hag/Analysis/PyramidWindows.h"
#include "hag/Frontend/ModelDescription.h"
#include "hag/InitAll.h"
#include "hag/Pipelines/Pipelines.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::hag;

namespace {

class CostModelTest : public ::testing::Test {
protected:
  CostModelTest() {
    registerHAGDialects(registry);
    ctx = std::make_unique<MLIRContext>(registry);
    ctx->loadAllAvailableDialects();
  }

  ::hag::ModelDescription attentionModel() {
    ::hag::ModelDescription md;
    md.kind = ::hag::ModelKind::Attention;
    md.dModel = 512;
    md.attention.heads = 8;
    md.attention.kvHeads = 8;
    md.attention.headDim = 64;
    md.attention.maxSeq = 65536;
    return md;
  }

  OwningOpRef<ModuleOp> build(const ::hag::ModelDescription &md, bool fuse) {
    OwningOpRef<ModuleOp> m = ::hag::buildModelModule(*ctx, md, "test");
    EXPECT_TRUE(succeeded(verify(*m)));
    if (fuse) {
      PassManager pm(ctx.get());
      buildHAGPhasePipeline(pm);
      EXPECT_TRUE(succeeded(pm.run(*m)));
    }
    return m;
  }

  DialectRegistry registry;
  std::unique_ptr<MLIRContext> ctx;
};

double sumFlops(const CostReport &r, StringRef opName) {
  double f = 0;
  for (const OpCostEntry &e : r.ops)
    if (e.opName == opName)
      f += e.cost.flops;
  return f;
}

TEST_F(CostModelTest, AttentionLayerMatchesClosedForms) {
  ::hag::ModelDescription md = attentionModel();
  for (bool fuse : {false, true}) {
    OwningOpRef<ModuleOp> m = build(md, fuse);
    for (int64_t n : {1, 63, 64, 65, 1000, 8192}) {
      for (int64_t batch : {1, 3}) {
        CostReport r;
        ASSERT_TRUE(succeeded(computeCostReport(*m, {n, batch}, r)));
        // Wq, Wk, Wv, Wo: 2 * rows * 512 * 512 each.
        EXPECT_DOUBLE_EQ(sumFlops(r, "hag.linear"),
                         4 * 2.0 * n * batch * 512 * 512);
        ASSERT_EQ(r.attention.size(), 1u);
        const AttentionCostSummary &a = r.attention[0];
        ::hag::KeyCounts kc = ::hag::countKeys(md.attention, n);
        double keys = static_cast<double>(kc.totalKeys);
        EXPECT_DOUBLE_EQ(a.attentionFlops, 4.0 * 64 * keys * 8 * batch);
        EXPECT_DOUBLE_EQ(a.denseFlops,
                         4.0 * 64 * (n * (n + 1) / 2.0) * 8 * batch);
        EXPECT_DOUBLE_EQ(a.denseEquivalentRatio(), keys / (n * (n + 1) / 2.0));
        EXPECT_DOUBLE_EQ(a.keysPerQueryMean(), keys / n);
        if (!fuse)
          EXPECT_DOUBLE_EQ(sumFlops(r, "hag.cross_level_attention"),
                           a.attentionFlops);
      }
    }
  }
}

TEST_F(CostModelTest, DefaultsAt8KAreUnderFifteenPercentOfDense) {
  // Spec section 6: ~1.5B + 2W + T keys per query, well under 15% of dense.
  OwningOpRef<ModuleOp> m = build(attentionModel(), true);
  CostReport r;
  ASSERT_TRUE(succeeded(computeCostReport(*m, {8192, 1}, r)));
  const AttentionCostSummary &a = r.attention[0];
  EXPECT_LT(a.denseEquivalentRatio(), 0.15);
  EXPECT_NEAR(a.keysPerQueryMean(), 1.5 * 64 + 2 * 64 + 64, 64);
  EXPECT_EQ(a.keys.maxKeys, 2 * 64 + 64 + 64 + 64); // full windows + T
}

TEST_F(CostModelTest, FusedAndUnfusedCountTheSameAttention) {
  ::hag::ModelDescription md = attentionModel();
  md.attention.compress = ::hag::Compress::Conv;
  md.attention.selectK = 5;
  md.attention.levels = ::hag::kAutoLevels;
  OwningOpRef<ModuleOp> unfused = build(md, false), fused = build(md, true);
  for (int64_t n : {100, 4096, 65536}) {
    CostReport ru, rf;
    ASSERT_TRUE(succeeded(computeCostReport(*unfused, {n, 2}, ru)));
    ASSERT_TRUE(succeeded(computeCostReport(*fused, {n, 2}, rf)));
    EXPECT_DOUBLE_EQ(ru.attention[0].attentionFlops,
                     rf.attention[0].attentionFlops);
    EXPECT_EQ(ru.attention[0].keys.levels, rf.attention[0].keys.levels);
    // The fused op also does the gate, levels and summaries: more FLOPs
    // than the attention core alone, and the same total as the unfused ops.
    EXPECT_GT(sumFlops(rf, "hag.pyramid_attention"),
              rf.attention[0].attentionFlops);
    double unfusedPyramid = sumFlops(ru, "hag.memory_gate") +
                            sumFlops(ru, "hag.build_level") +
                            sumFlops(ru, "hag.global_summary") +
                            sumFlops(ru, "hag.cross_level_attention");
    EXPECT_DOUBLE_EQ(sumFlops(rf, "hag.pyramid_attention"), unfusedPyramid);
  }
}

TEST_F(CostModelTest, LanguageModelCountsEveryLayerOnce) {
  ::hag::ModelDescription md;
  md.kind = ::hag::ModelKind::LM;
  md.vocab = 256;
  md.dModel = 128;
  md.layers = 2;
  md.attention.heads = 4;
  md.attention.kvHeads = 4;
  md.attention.headDim = 32;
  md.attention.maxSeq = 2048;
  OwningOpRef<ModuleOp> m = build(md, true);
  CostReport r;
  const int64_t n = 2048;
  ASSERT_TRUE(succeeded(computeCostReport(*m, {n, 1}, r)));
  // Per layer 4 projections of 128x128, plus the tied output head 256x128;
  // @loss calls @forward and must not be counted again.
  EXPECT_DOUBLE_EQ(sumFlops(r, "hag.linear"),
                   2 * 4 * 2.0 * n * 128 * 128 + 2.0 * n * 128 * 256);
  // SwiGLU: three 128x512 matmuls per layer, plus 6 flops per hidden unit.
  EXPECT_DOUBLE_EQ(sumFlops(r, "hag.swiglu"),
                   2 * (3 * 2.0 * n * 128 * 512 + 6.0 * n * 512));
  ASSERT_EQ(r.attention.size(), 1u);
  EXPECT_EQ(r.attention[0].attentionOps, 2);
  ::hag::KeyCounts kc = ::hag::countKeys(md.attention, n);
  EXPECT_DOUBLE_EQ(r.attention[0].attentionFlops,
                   2 * 4.0 * 32 * double(kc.totalKeys) * 4);
}

TEST_F(CostModelTest, JsonHasTheInterfaceFields) {
  OwningOpRef<ModuleOp> m = build(attentionModel(), true);
  CostReport r;
  ASSERT_TRUE(succeeded(computeCostReport(*m, {8192, 1}, r)));
  std::string s;
  llvm::raw_string_ostream os(s);
  printCostReportJSON(r, os);
  llvm::Expected<llvm::json::Value> v = llvm::json::parse(s);
  ASSERT_TRUE(static_cast<bool>(v)) << llvm::toString(v.takeError());
  const llvm::json::Object *o = v->getAsObject();
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->getInteger("seq"), 8192);
  for (StringRef key : {"keys_per_query_mean", "dense_equivalent_ratio",
                        "attention_flops", "dense_attention_flops"})
    EXPECT_TRUE(o->getNumber(key).has_value()) << key.str();
  EXPECT_DOUBLE_EQ(*o->getNumber("dense_equivalent_ratio"),
                   r.attention[0].denseEquivalentRatio());
}

TEST_F(CostModelTest, RejectsLengthsBeyondMaxSeq) {
  ::hag::ModelDescription md = attentionModel();
  md.attention.maxSeq = 1024;
  OwningOpRef<ModuleOp> m = build(md, true);
  std::string diag;
  ScopedDiagnosticHandler handler(ctx.get(), [&](Diagnostic &d) {
    diag = d.str();
    return success();
  });
  CostReport r;
  EXPECT_TRUE(failed(computeCostReport(*m, {1025, 1}, r)));
  EXPECT_NE(diag.find("exceeds the attention's max_seq (1024)"),
            std::string::npos)
      << diag;
  EXPECT_TRUE(failed(computeCostReport(*m, {0, 1}, r)));
}

} // namespace
