//===- AttentionConformanceTest.cpp - Compiled fp32 vs float64 reference --===//
//
// Runs the real compiler (YAML-equivalent description -> hag -> fused ->
// CPU lowering -> JIT) and compares its fp32 outputs with the LibTorch
// float64 reference on the same weights (spec section 11: max abs error
// <= 1e-4 with inputs ~ N(0, 1) and weights as initialised).
//
//===----------------------------------------------------------------------===//

#include "ConformanceModels.h"
#include "JitModel.h"
#include "hag/Analysis/PyramidWindows.h"
#include "hag/reference/Reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

using hag::testing::JitModel;
using hag::testing::TensorArg;
using hag::testing::TensorResult;
using hag::testing::Case;
using hag::testing::localOnly;
using hag::testing::makeModel;
using hag::testing::makeWeights;
using hag::testing::toF32;

namespace {

class AttentionConformance : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionConformance, MatchesFloat64Reference) {
  const Case &c = GetParam();
  hag::ModelDescription md;
  hag::ref::ModelConfig cfg;
  makeModel(c, md, cfg);
  std::string error;
  std::unique_ptr<JitModel> jit = JitModel::compile(md, error);
  ASSERT_TRUE(jit) << error;
  hag::ref::Weights w64 = makeWeights(cfg);
  std::map<std::string, torch::Tensor> w32 = toF32(w64);

  std::vector<std::string> names = jit->argumentNames("forward");
  ASSERT_FALSE(names.empty());
  for (int64_t batch : {1, 3}) {
    // Around the block size (16 or 64), and long sequences for B = 64.
    std::vector<int64_t> lengths = {1, 15, 16, 17, 63, 200};
    if (c.block == 64)
      lengths = {1, 63, 64, 65, 1000, 4096};
    for (int64_t n : lengths) {
      SCOPED_TRACE("batch " + std::to_string(batch) + ", N " +
                   std::to_string(n));
      torch::manual_seed(100 + n + batch);
      torch::Tensor input64, expected;
      if (c.lm) {
        input64 = torch::randint(0, cfg.vocab, {batch, n}, torch::kInt64);
        // select_k is a top-k over gates: where two gates of a deep layer
        // are closer than fp32 rounding, f32 and f64 legitimately pick
        // different tokens (seen: 2.6e-2 apart while the f32 reference and
        // the compiled code agree to 2e-7). Multi-layer models with
        // select_k are therefore checked against the reference run in f32.
        expected =
            c.selectK > 0
                ? hag::ref::lmForward(cfg, w32, input64).to(torch::kFloat64)
                : hag::ref::lmForward(cfg, w64, input64);
      } else {
        input64 = torch::randn({batch, n, cfg.dModel}, torch::kFloat64);
        expected = hag::ref::attentionLayer(cfg, w64, "attn.", input64);
      }
      torch::Tensor input = c.lm ? input64.to(torch::kInt32).contiguous()
                                 : input64.to(torch::kFloat32).contiguous();
      std::vector<TensorArg> args;
      args.push_back({input.sizes().vec(), input.data_ptr()});
      for (size_t i = 1; i < names.size(); ++i) {
        auto it = w32.find(names[i]);
        ASSERT_NE(it, w32.end()) << "no reference weight " << names[i];
        args.push_back({it->second.sizes().vec(), it->second.data_ptr()});
      }
      TensorResult out;
      ASSERT_TRUE(jit->run("forward", args, 3, out, error)) << error;
      torch::Tensor got =
          torch::from_blob(out.data.data(), out.shape, torch::kFloat32)
              .to(torch::kFloat64);
      ASSERT_EQ(got.sizes(), expected.sizes());
      double err = (got - expected).abs().max().item<double>();
      EXPECT_LE(err, 1e-4) << "max abs error " << err;

      if (c.lm && n > 1) {
        TensorResult loss;
        ASSERT_TRUE(jit->run("loss", args, 0, loss, error)) << error;
        double ref = (c.selectK > 0 ? hag::ref::lmLoss(cfg, w32, input64)
                                    : hag::ref::lmLoss(cfg, w64, input64))
                         .item<double>();
        EXPECT_NEAR(loss.data.at(0), ref, 1e-4);
      }
    }
  }
}

std::vector<Case> cases() {
  std::vector<Case> cs;
  auto add = [&](Case c) { cs.push_back(c); };
  using hag::Compress;
  add({"causal_L4"});
  add({"causal_L3", false, true, 3});
  add({"causal_L5_r2", false, true, 5, 2});
  add({"causal_auto", false, true, 0});
  add({"causal_auto_r2", false, true, 0, 2});
  add({"bidir_L4", false, false, 4});
  add({"bidir_L3_r2", false, false, 3, 2});
  add({"bidir_auto", false, false, 0});
  add({"max", false, true, 4, 4, Compress::Max});
  add({"conv", false, true, 4, 4, Compress::Conv});
  add({"conv_bidir_r2", false, false, 5, 2, Compress::Conv});
  add({"gqa", false, true, 4, 4, Compress::GatedMean, 2});
  add({"mqa_max", false, true, 4, 2, Compress::Max, 1});
  add({"select3", false, true, 4, 4, Compress::GatedMean, 4, 3});
  add({"select3_bidir", false, false, 4, 4, Compress::GatedMean, 4, 3});
  add({"no_mass_bias", false, true, 4, 4, Compress::GatedMean, 4, 0, 0.0});
  add({"block64", false, true, 4, 4, Compress::GatedMean, 4, 0, 1.0, 64});
  add({"block64_bidir_auto_conv", false, false, 0, 4, Compress::Conv, 4, 0, 1.0,
       64});
  add({"block64_gqa_select_r2", false, true, 5, 2, Compress::Max, 2, 4, 1.0, 64,
       24});
  add({"lm_block64", true, true, 4, 4, Compress::GatedMean, 4, 0, 1.0, 64});
  add({"d24", false, true, 4, 4, Compress::GatedMean, 4, 0, 1.0, 16, 24});
  add({"d64_gqa_bidir", false, false, 4, 4, Compress::GatedMean, 2, 0, 1.0, 16,
       64});
  add({"d64_conv_select", false, true, 0, 2, Compress::Conv, 4, 3, 1.0, 16,
       64});
  add({"lm_d24", true, true, 4, 4, Compress::GatedMean, 4, 0, 1.0, 16, 24});
  add({"lm", true});
  add({"lm_conv_gqa_auto", true, true, 0, 4, Compress::Conv, 2, 2});
  // The ablation: level 1 alone, whatever else the configuration names.
  add(localOnly({"local_only_conv_select", false, true, 4, 4, Compress::Conv,
                 4, 3}));
  add(localOnly({"local_only_bidir", false, false, 0, 2}));
  add(localOnly({"lm_local_only_select", true, true, 4, 4, Compress::GatedMean,
                 2, 3}));
  return cs;
}

INSTANTIATE_TEST_SUITE_P(Matrix, AttentionConformance,
                         ::testing::ValuesIn(cases()),
                         [](const auto &info) { return info.param.name; });

//===----------------------------------------------------------------------===//
// Incremental decoding (spec section 10): @decode, one token at a time on
// per-level caches, gives the rows of the full @forward (max abs error
// <= 1e-4, the forward being checked against the float64 reference above),
// and greedy decoding picks the argmax of the full forward's logits.
//===----------------------------------------------------------------------===//

/// Greedy decoding on `c` compiled through the CPU lowering or the CUDA
/// emulator: every step's logits are the full forward's row.
void checkDecodeMatchesForward(const Case &c, bool emulateCuda) {
  hag::ModelDescription md;
  hag::ref::ModelConfig cfg;
  makeModel(c, md, cfg);
  md.attention.maxSeq = c.block == 64 ? 512 : 160;
  std::string error;
  std::unique_ptr<JitModel> jit = JitModel::compile(md, error, "", emulateCuda);
  ASSERT_TRUE(jit) << error;
  hag::ref::Weights w64 = makeWeights(cfg);
  std::map<std::string, torch::Tensor> w32 = toF32(w64);

  const int64_t batch = 2, prompt = 5;
  // Past several query blocks, so that every level's window, the summary
  // and the select_k picks are in use.
  const int64_t n = md.attention.maxSeq;
  const hag::PyramidParams &p = md.attention;
  hag::DecodeCacheLayout layout = hag::decodeCacheLayout(p);
  int64_t kvDim = p.kvDim(), prefixRows = p.maxSeq + 1;

  // Zeroed caches, one set per layer, in the entry's argument order.
  std::vector<std::string> names = jit->argumentNames("decode");
  std::vector<torch::Tensor> state;
  for (size_t i = 2; i < names.size() && names[i].find(".cache.") !=
                                             std::string::npos;
       ++i) {
    const std::string &name = names[i];
    auto endsWith = [&](const std::string &suffix) {
      return name.size() >= suffix.size() &&
             name.compare(name.size() - suffix.size(), suffix.size(),
                          suffix) == 0;
    };
    auto f32 = torch::kFloat32, f64 = torch::kFloat64;
    torch::Tensor t;
    if (endsWith(".cache.keys") || endsWith(".cache.values"))
      t = torch::zeros({batch, layout.rows, kvDim}, f32);
    else if (endsWith(".cache.aux"))
      t = torch::zeros({batch, 2 * layout.rows}, f32);
    else if (endsWith(".prefix_gate"))
      t = torch::zeros({batch, prefixRows}, f64);
    else
      t = torch::zeros({batch, prefixRows, kvDim}, f64);
    state.push_back(t);
  }
  ASSERT_EQ(state.size(), 6u * md.layers);

  // Greedy decoding after a random prompt: every step's logits are the
  // full forward's row at that position.
  torch::manual_seed(5);
  torch::Tensor tokens = torch::zeros({batch, n}, torch::kInt32);
  tokens.slice(1, 0, prompt) =
      torch::randint(0, cfg.vocab, {batch, prompt}, torch::kInt32);
  torch::Tensor decoded = torch::zeros({batch, n, cfg.vocab}, torch::kFloat32);
  for (int64_t pos = 0; pos < n; ++pos) {
    torch::Tensor step = tokens.slice(1, pos, pos + 1).contiguous();
    torch::Tensor position = torch::tensor(pos, torch::kInt64);
    std::vector<TensorArg> args;
    args.push_back({step.sizes().vec(), step.data_ptr()});
    args.push_back({{}, position.data_ptr()});
    for (torch::Tensor &t : state)
      args.push_back({t.sizes().vec(), t.data_ptr()});
    for (size_t i = 2 + state.size(); i < names.size(); ++i)
      args.push_back({w32.at(names[i]).sizes().vec(),
                      w32.at(names[i]).data_ptr()});
    TensorResult out;
    ASSERT_TRUE(jit->run("decode", args, 3, out, error)) << error;
    ASSERT_EQ(out.shape, (std::vector<int64_t>{batch, 1, cfg.vocab}));
    torch::Tensor logits =
        torch::from_blob(out.data.data(), {batch, cfg.vocab}, torch::kFloat32)
            .clone();
    decoded.select(1, pos) = logits;
    if (pos + 1 >= prompt && pos + 1 < n)
      tokens.select(1, pos + 1) = logits.argmax(1).to(torch::kInt32);
  }

  std::vector<std::string> fwdNames = jit->argumentNames("forward");
  std::vector<TensorArg> args;
  args.push_back({tokens.sizes().vec(), tokens.data_ptr()});
  for (size_t i = 1; i < fwdNames.size(); ++i)
    args.push_back({w32.at(fwdNames[i]).sizes().vec(),
                    w32.at(fwdNames[i]).data_ptr()});
  TensorResult out;
  ASSERT_TRUE(jit->run("forward", args, 3, out, error)) << error;
  torch::Tensor full =
      torch::from_blob(out.data.data(), out.shape, torch::kFloat32);
  ASSERT_EQ(full.sizes(), decoded.sizes());
  torch::Tensor diff = (full - decoded).abs();
  double err = diff.max().item<double>();
  EXPECT_LE(err, 1e-4) << "max abs error " << err << " at flat index "
                       << diff.argmax().item<int64_t>();

  // Greedy tokens are the argmax of the full forward, except where the top
  // two logits are closer than the tolerance (fp32 may order those either
  // way); such near-ties are counted and must stay rare.
  int64_t ties = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t pos = prompt - 1; pos + 1 < n; ++pos) {
      torch::Tensor row = full[b][pos];
      auto top = row.topk(2);
      float gap = (std::get<0>(top)[0] - std::get<0>(top)[1]).item<float>();
      int64_t want = std::get<1>(top)[0].item<int64_t>();
      int64_t got = tokens[b][pos + 1].item<int32_t>();
      if (gap < 1e-4f) {
        ++ties;
        continue;
      }
      EXPECT_EQ(got, want) << "batch " << b << ", position " << pos + 1;
    }
  EXPECT_LE(ties, 2);
}

class DecodeConformance : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeConformance, MatchesFullForward) {
  checkDecodeMatchesForward(GetParam(), /*emulateCuda=*/false);
}

// The CUDA kernel library's decoding (kernels/cuda/pyramid_attention.mlir,
// every launch emulated as loops) against the same library's forward.
class CudaEmulatorDecodeConformance : public ::testing::TestWithParam<Case> {};

TEST_P(CudaEmulatorDecodeConformance, MatchesFullForward) {
  checkDecodeMatchesForward(GetParam(), /*emulateCuda=*/true);
}

std::vector<Case> decodeCases() {
  std::vector<Case> cs;
  using hag::Compress;
  cs.push_back({"lm", true});
  cs.push_back({"lm_L3", true, true, 3});
  cs.push_back({"lm_L5_r2_max", true, true, 5, 2, Compress::Max});
  cs.push_back({"lm_conv_gqa_auto", true, true, 0, 4, Compress::Conv, 2, 2});
  cs.push_back({"lm_select3_mqa", true, true, 4, 4, Compress::GatedMean, 1, 3});
  cs.push_back({"lm_no_mass_bias_d24", true, true, 4, 4, Compress::GatedMean,
                4, 0, 0.0, 16, 24});
  cs.push_back({"lm_block64_r2_auto", true, true, 0, 2, Compress::GatedMean, 4,
                0, 1.0, 64});
  // Head sizes 32 and 64: the CUDA library's forward (block 16) and
  // decoding take their register kernels (attention_vector.mlir) there; 8
  // and 24 the generic loops.
  cs.push_back({"lm_d32_gqa_select2", true, true, 4, 4, Compress::GatedMean, 2,
                2, 1.0, 16, 32});
  cs.push_back({"lm_d64_conv_auto", true, true, 0, 4, Compress::Conv, 4, 0, 1.0,
                16, 64});
  // Block 64 with head size 64: the CUDA forward takes the Tensor Core
  // kernel, whose emulation walks @hag_gpu_block_segments' key ranges.
  cs.push_back({"lm_d64_block64_gqa_select2", true, true, 4, 4,
                Compress::GatedMean, 2, 2, 1.0, 64, 64});
  cs.push_back(localOnly({"lm_local_only_conv_select", true, true, 4, 4,
                          Compress::Conv, 2, 3}));
  return cs;
}

INSTANTIATE_TEST_SUITE_P(Matrix, DecodeConformance,
                         ::testing::ValuesIn(decodeCases()),
                         [](const auto &info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Matrix, CudaEmulatorDecodeConformance,
                         ::testing::ValuesIn(decodeCases()),
                         [](const auto &info) { return info.param.name; });

} // namespace
