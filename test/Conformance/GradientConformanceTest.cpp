//===- GradientConformanceTest.cpp - compiled gradients vs LibTorch -------===//
//
// hag-autodiff on the frontend's language model (the fused pyramid attention
// included: its backward kernel, the gate, levels, summaries, select_k, RoPE,
// norms, MLP, embedding and loss), compiled for the CPU in f32, against
// LibTorch autograd through the float64 reference on the same weights. Spec
// section 11: max relative error <= 1e-3 for every weight (the error over
// the weight's largest gradient element).
//
//===----------------------------------------------------------------------===//

#include "ConformanceModels.h"
#include "JitModel.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

using hag::testing::Case;
using hag::testing::localOnly;
using hag::testing::JitModel;
using hag::testing::TensorArg;
using hag::testing::TensorResult;

namespace {

/// Compares compiled gradients with the reference's: for each, the max
/// error over the gradient's largest element must be <= 1e-3 (spec 11). A
/// gradient that is zero in exact arithmetic (no path from the weight to the
/// loss at this N: empty level windows, or beta = 0) has an undefined
/// reference gradient; and a gradient that cancels to nearly zero (a bias
/// summed over every token) has no meaningful relative error. Both are
/// measured against a floor of 1e-4 times the largest gradient of the whole
/// set, i.e. errors of 1e-7 of it. `requireNonzero` asserts that every
/// weight the reference uses has a nonzero gradient (with `levels: auto`,
/// the conv weights of levels past those N needs are unused).
void expectGradientsMatch(const std::vector<std::string> &names,
                          const std::vector<torch::Tensor> &got,
                          std::vector<torch::Tensor> want,
                          bool requireNonzero) {
  double largest = 0.0;
  std::vector<bool> used(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    used[i] = want[i].defined();
    if (!used[i])
      want[i] = torch::zeros_like(got[i]);
    largest = std::max(largest, want[i].abs().max().item<double>());
  }
  ASSERT_GT(largest, 0.0);
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_EQ(got[i].sizes(), want[i].sizes()) << names[i];
    double own = want[i].abs().max().item<double>();
    if (requireNonzero && used[i])
      EXPECT_GT(own, 0.0) << names[i] << ": the reference gradient is zero";
    double scale = std::max(own, 1e-4 * largest);
    double rel = (got[i] - want[i]).abs().max().item<double>() / scale;
    EXPECT_LE(rel, 1e-3) << names[i] << ": max relative error " << rel
                         << " (largest gradient element " << own << ")";
  }
}

/// An f32 result as an f64 tensor.
torch::Tensor asTensor(TensorResult &r) {
  return torch::from_blob(r.data.data(), r.shape, torch::kFloat32)
      .to(torch::kFloat64);
}

//===----------------------------------------------------------------------===//
// The fused attention backward alone: hag.pyramid_attention_backward's dq,
// dk, dv, dg (and conv weight gradients) against autograd through the
// reference core, for the loss sum(o * dO).
//===----------------------------------------------------------------------===//

class AttentionBackward : public ::testing::TestWithParam<Case> {};

std::string tensorType(std::vector<int64_t> dims) {
  std::string r = "tensor<";
  for (int64_t d : dims)
    r += std::to_string(d) + "x";
  return r + "f32>";
}

/// The #hag.pyramid attribute of `p`.
std::string configAttr(const hag::PyramidParams &p) {
  std::ostringstream cfg;
  cfg << "#hag.pyramid<heads = " << p.heads << ", kv_heads = " << p.kvHeads
      << ", head_dim = " << p.headDim << ", block = " << p.block
      << ", ratio = " << p.ratio << ", levels = " << p.levels
      << ", window = " << p.window << ", summary = " << p.summary
      << ", temperature = " << std::showpoint << p.temperature
      << ", compress = " << hag::compressName(p.compress)
      << ", causal = " << (p.causal ? "true" : "false")
      << ", mass_bias = " << p.massBias << std::noshowpoint
      << ", select_k = " << p.selectK << ", max_seq = " << p.maxSeq
      << (p.localOnly ? ", local_only = true" : "") << ">";
  return cfg.str();
}

/// hag.pyramid_attention_backward alone, compiled for the CPU or through the
/// CUDA emulator (the CUDA kernel library's backward as loops), against
/// autograd through the f64 reference core.
void checkCoreBackward(const Case &c, bool emulateCuda) {
  hag::PyramidParams p = hag::testing::pyramidParams(c);
  const int64_t batch = 2, H = p.heads, d = p.headDim, Hkv = p.kvHeads;
  const bool conv = c.compress == hag::Compress::Conv;
  for (int64_t n : {23, 150}) {
    SCOPED_TRACE("N " + std::to_string(n));
    // Dynamic batch and length, as the frontend's functions have them.
    std::string q = "tensor<?x?x" + std::to_string(H * d) + "xf32>",
                kv = "tensor<?x?x" + std::to_string(Hkv * d) + "xf32>",
                g = "tensor<?x?xf32>", a = tensorType({Hkv, p.ratio, d});
    int64_t nConv = conv ? p.levels - 2 : 0;
    std::string args = "%do: " + q + ", %q: " + q + ", %k: " + kv + ", %v: " + kv +
                       ", %g: " + g + ", %o: " + q;
    std::string convOps, convTypes, gradTypes = q + ", " + kv + ", " + kv + ", " + g;
    for (int64_t i = 0; i < 2 * nConv; ++i) {
      args += ", %a" + std::to_string(i) + ": " + a;
      convOps += (i == 0 ? "" : (i == nConv ? "] [" : ", ")) + std::string("%a") +
                 std::to_string(i);
      convTypes += ", " + a;
      gradTypes += ", " + a;
    }
    std::string src =
        "func.func @core_grad(" + args + ") -> (" + gradTypes + ") {\n" +
        "  %r:" + std::to_string(4 + 2 * nConv) +
        " = hag.pyramid_attention_backward %do, %q, %k, %v, %g, %o" +
        (conv ? " conv [" + convOps + "]" : std::string()) + " {config = " +
        configAttr(p) + "} : (" + q + ", " + q + ", " + kv + ", " + kv + ", " + g +
        ", " + q + convTypes + ") -> (" + gradTypes + ")\n  return";
    for (int64_t i = 0; i < 4 + 2 * nConv; ++i)
      src += (i ? ", %r#" : " %r#") + std::to_string(i);
    src += " : " + gradTypes + "\n}\n";
    std::string error;
    std::unique_ptr<JitModel> jit =
        JitModel::compileSource(src, error, "", emulateCuda);
    ASSERT_TRUE(jit) << error << "\n" << src;

    torch::manual_seed(500 + n);
    auto f64 = torch::kFloat64;
    auto r32 = [](torch::Tensor t) {
      return t.to(torch::kFloat32).to(torch::kFloat64);
    };
    torch::Tensor qt = r32(torch::randn({batch, n, H * d}, f64));
    torch::Tensor kt = r32(torch::randn({batch, n, Hkv * d}, f64));
    torch::Tensor vt = r32(torch::randn({batch, n, Hkv * d}, f64));
    torch::Tensor gt = r32(torch::sigmoid(2.0 * torch::randn({batch, n}, f64)));
    torch::Tensor dot = r32(torch::randn({batch, n, H * d}, f64));
    std::vector<torch::Tensor> convK, convV;
    for (int64_t i = 0; i < nConv; ++i) {
      convK.push_back(r32(1.0 + 0.3 * torch::randn({Hkv, p.ratio, d}, f64)));
      convV.push_back(r32(1.0 + 0.3 * torch::randn({Hkv, p.ratio, d}, f64)));
    }
    std::vector<torch::Tensor> leaves = {qt, kt, vt, gt};
    for (auto &t : convK)
      leaves.push_back(t);
    for (auto &t : convV)
      leaves.push_back(t);
    for (auto &t : leaves)
      t.set_requires_grad(true);
    std::vector<torch::Tensor> ck(leaves.begin() + 4, leaves.begin() + 4 + nConv),
        cv(leaves.begin() + 4 + nConv, leaves.end());
    torch::Tensor o = hag::ref::pyramidAttentionCore(p, leaves[0], leaves[1],
                                                     leaves[2], leaves[3], ck, cv);
    (o * dot).sum().backward();

    std::vector<torch::Tensor> inputs32 = {dot, qt, kt, vt, gt, o.detach()};
    for (auto &t : ck)
      inputs32.push_back(t.detach());
    for (auto &t : cv)
      inputs32.push_back(t.detach());
    for (auto &t : inputs32)
      t = t.detach().to(torch::kFloat32).contiguous();
    std::vector<TensorArg> targs;
    std::vector<int64_t> ranks;
    for (auto &t : inputs32)
      targs.push_back({t.sizes().vec(), t.data_ptr()});
    for (size_t i = 0; i < leaves.size(); ++i)
      ranks.push_back(leaves[i].dim());
    std::vector<TensorResult> out;
    ASSERT_TRUE(jit->runMulti("core_grad", targs, ranks, out, error)) << error;
    std::vector<std::string> names = {"dq", "dk", "dv", "dg"};
    std::vector<torch::Tensor> got, want;
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (i >= 4)
        names.push_back("dconv" + std::to_string(i - 4));
      got.push_back(asTensor(out[i]));
      want.push_back(leaves[i].grad());
    }
    expectGradientsMatch(names, got, want, /*requireNonzero=*/false);
  }
}

TEST_P(AttentionBackward, MatchesTorchAutogradFloat64) {
  checkCoreBackward(GetParam(), /*emulateCuda=*/false);
}

// The CUDA library's backward (one thread per query for dq, per key row of
// every source for dk, dv and the masses, the summaries' differences, the
// levels' backward per parent token) run by the emulator: f32 throughout,
// so the CPU kernel's tolerance.
class CudaEmulatorAttentionBackward : public ::testing::TestWithParam<Case> {};

TEST_P(CudaEmulatorAttentionBackward, MatchesTorchAutogradFloat64) {
  checkCoreBackward(GetParam(), /*emulateCuda=*/true);
}

/// hag.pyramid_attention's vector-Jacobian product (the gate recomputed,
/// the backward kernel, the gate's backward) inside hag-autodiff, after RoPE
/// on q and k: the loss is a cross-entropy over o's features (as if they
/// were logits), every operand but the tokens a weight. (RoPE's buffers are
/// read again by the backward: this caught a buffer reused too early.)
TEST_P(AttentionBackward, FusedOpGradientsMatchTorchAutograd) {
  const Case &c = GetParam();
  hag::PyramidParams p = hag::testing::pyramidParams(c);
  const int64_t batch = 2, H = p.heads, d = p.headDim, Hkv = p.kvHeads,
                D = H * d, Dg = 12, n = 150;
  const bool conv = c.compress == hag::Compress::Conv;
  const int64_t nConv = conv ? p.levels - 2 : 0;
  std::string tq = tensorType({batch, n, D}), tk = tensorType({batch, n, Hkv * d}),
              tok = "tensor<" + std::to_string(batch) + "x" + std::to_string(n) +
                    "xi32>",
              a = tensorType({Hkv, p.ratio, d});
  struct Arg {
    std::string name, type;
    std::vector<int64_t> shape;
  };
  std::vector<Arg> weights = {{"q", tq, {batch, n, D}},
                              {"k", tk, {batch, n, Hkv * d}},
                              {"v", tk, {batch, n, Hkv * d}},
                              {"x", tq, {batch, n, D}},
                              {"w1", tensorType({Dg, D}), {Dg, D}},
                              {"b1", tensorType({Dg}), {Dg}},
                              {"w2", tensorType({Dg}), {Dg}},
                              {"b2", tensorType({1}), {1}}};
  for (int64_t i = 0; i < 2 * nConv; ++i)
    weights.push_back({"a" + std::to_string(i), a, {Hkv, p.ratio, d}});
  std::string args = "%tokens: " + tok + " {hag.input}", types;
  for (const Arg &w : weights) {
    args += ", %" + w.name + ": " + w.type + " {hag.name = \"" + w.name + "\"}";
    types += (types.empty() ? "" : ", ") + w.type;
  }
  std::string convOps;
  for (int64_t i = 0; i < 2 * nConv; ++i)
    convOps += (i == 0 ? "" : (i == nConv ? "] [" : ", ")) + std::string("%a") +
               std::to_string(i);
  std::string src =
      "func.func @loss(" + args + ") -> tensor<f32> {\n" +
      "  %qr = hag.rope %q {head_dim = " + std::to_string(d) + " : i64} : (" +
      tq + ") -> " + tq + "\n" + "  %kr = hag.rope %k {head_dim = " +
      std::to_string(d) + " : i64} : (" + tk + ") -> " + tk + "\n" +
      "  %o = hag.pyramid_attention %qr, %kr, %v gate (%x, %w1, %b1, %w2, %b2)" +
      (conv ? " conv [" + convOps + "]" : std::string()) + " {config = " +
      configAttr(p) + "} : (" + types + ") -> " + tq + "\n" +
      "  %l = hag.cross_entropy %o, %tokens : (" + tq + ", " + tok +
      ") -> tensor<f32>\n  return %l : tensor<f32>\n}\n";
  std::string error;
  std::unique_ptr<JitModel> jit =
      JitModel::compileSource(src, error, "hag-autodiff{entry=loss}");
  ASSERT_TRUE(jit) << error << "\n" << src;

  torch::manual_seed(900);
  auto f64 = torch::kFloat64;
  std::map<std::string, torch::Tensor> w;
  for (const Arg &arg : weights) {
    torch::Tensor t = torch::randn(arg.shape, f64);
    if (arg.name == "w1")
      t = t / std::sqrt(double(D));
    else if (arg.name == "b1" || arg.name == "b2")
      t = 0.1 * t;
    else if (arg.name == "w2")
      t = 0.2 * t;
    else if (arg.name[0] == 'a')
      t = 1.0 + 0.3 * t;
    w[arg.name] = t.to(torch::kFloat32).to(f64).set_requires_grad(true);
  }
  torch::Tensor tokens = torch::randint(0, D, {batch, n}, torch::kInt64);
  torch::Tensor g = hag::ref::memoryGate(w["x"], w["w1"], w["b1"], w["w2"],
                                         w["b2"], p.temperature);
  std::vector<torch::Tensor> ck, cv;
  for (int64_t i = 0; i < nConv; ++i) {
    ck.push_back(w["a" + std::to_string(i)]);
    cv.push_back(w["a" + std::to_string(nConv + i)]);
  }
  torch::Tensor o = hag::ref::pyramidAttentionCore(
      p, hag::ref::rope(w["q"], d, 10000.0), hag::ref::rope(w["k"], d, 10000.0),
      w["v"], g, ck, cv);
  torch::Tensor logProbs = torch::log_softmax(o.narrow(1, 0, n - 1), -1);
  torch::Tensor loss =
      -logProbs.gather(2, tokens.narrow(1, 1, n - 1).unsqueeze(-1)).mean();
  loss.backward();

  torch::Tensor tokens32 = tokens.to(torch::kInt32).contiguous();
  std::vector<torch::Tensor> w32;
  std::vector<TensorArg> targs = {{tokens32.sizes().vec(), tokens32.data_ptr()}};
  std::vector<int64_t> ranks = {0};
  for (const Arg &arg : weights)
    w32.push_back(w[arg.name].detach().to(torch::kFloat32).contiguous());
  for (torch::Tensor &t : w32) {
    targs.push_back({t.sizes().vec(), t.data_ptr()});
    ranks.push_back(t.dim());
  }
  std::vector<TensorResult> out;
  ASSERT_TRUE(jit->runMulti("loss_grad", targs, ranks, out, error)) << error;
  EXPECT_NEAR(out[0].data.at(0), loss.item<double>(), 1e-5);
  std::vector<std::string> names;
  std::vector<torch::Tensor> got, want;
  for (size_t i = 0; i < weights.size(); ++i) {
    names.push_back(weights[i].name);
    got.push_back(asTensor(out[i + 1]));
    want.push_back(w[weights[i].name].grad());
  }
  expectGradientsMatch(names, got, want, /*requireNonzero=*/true);
}

/// Attention-kind cases (the backward op takes q, k, v directly).
std::vector<Case> coreCases() {
  using hag::Compress;
  return {
      {"causal_L4"},
      {"causal_L3", false, true, 3},
      {"causal_L5_r2", false, true, 5, 2},
      {"bidir_L4", false, false, 4},
      {"max", false, true, 4, 4, Compress::Max},
      {"conv", false, true, 4, 4, Compress::Conv},
      {"conv_bidir_r2", false, false, 4, 2, Compress::Conv},
      {"gqa", false, true, 4, 4, Compress::GatedMean, 2},
      {"mqa_max_bidir", false, false, 4, 4, Compress::Max, 1},
      {"select3", false, true, 4, 4, Compress::GatedMean, 4, 3},
      {"select3_bidir", false, false, 4, 4, Compress::GatedMean, 4, 3},
      {"no_mass_bias", false, true, 4, 4, Compress::GatedMean, 4, 0, 0.0},
      {"d24", false, true, 4, 4, Compress::GatedMean, 4, 0, 1.0, 16, 24},
      {"d64_gqa_B64", false, true, 4, 4, Compress::GatedMean, 2, 0, 1.0, 64, 64},
      // The ablation: the conv weights the attention never reads get zero
      // gradients (autograd: none).
      localOnly({"local_only_conv_select", false, true, 4, 4, Compress::Conv,
                 4, 3}),
      localOnly({"local_only_bidir", false, false, 4}),
  };
}

INSTANTIATE_TEST_SUITE_P(Core, AttentionBackward,
                         ::testing::ValuesIn(coreCases()),
                         [](const auto &info) { return info.param.name; });
/// The core matrix (generic loops: d 8, 24, 64) plus head size 32 (the
/// register version, attention_backward_vector.mlir) and 128.
std::vector<Case> cudaCoreCases() {
  using hag::Compress;
  std::vector<Case> cases = coreCases();
  cases.push_back({"d32_select3_bidir", false, false, 4, 4, Compress::GatedMean,
                   4, 3, 1.0, 16, 32});
  cases.push_back(
      {"d128_conv_gqa", false, true, 4, 4, Compress::Conv, 2, 2, 1.0, 16, 128});
  cases.push_back(
      {"d32_max_B64", false, true, 5, 2, Compress::Max, 4, 0, 1.0, 64, 32});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Core, CudaEmulatorAttentionBackward,
                         ::testing::ValuesIn(cudaCoreCases()),
                         [](const auto &info) { return info.param.name; });

class GradientConformance : public ::testing::TestWithParam<Case> {};

TEST_P(GradientConformance, MatchesTorchAutogradFloat64) {
  const Case &c = GetParam();
  hag::ModelDescription md;
  hag::ref::ModelConfig cfg;
  hag::testing::makeModel(c, md, cfg);
  std::string error;
  std::unique_ptr<JitModel> jit =
      JitModel::compile(md, error, "hag-autodiff{entry=loss}");
  ASSERT_TRUE(jit) << error;
  hag::ref::Weights w64 = hag::testing::makeWeights(cfg);
  std::map<std::string, torch::Tensor> w32 = hag::testing::toF32(w64);
  std::vector<std::string> names = jit->argumentNames("loss_grad");
  ASSERT_EQ(names.size(), w64.size() + 1);

  const int64_t batch = 2;
  // Not a multiple of the block; past several blocks so that every level's
  // window, the summaries and the select_k picks carry gradient.
  for (int64_t n : {23, 150}) {
    SCOPED_TRACE("N " + std::to_string(n));
    torch::manual_seed(300 + n);
    torch::Tensor tokens =
        torch::randint(0, cfg.vocab, {batch, n}, torch::kInt64);
    torch::Tensor tokens32 = tokens.to(torch::kInt32).contiguous();
    std::vector<TensorArg> args = {{tokens32.sizes().vec(), tokens32.data_ptr()}};
    std::vector<int64_t> ranks = {0};
    for (size_t i = 1; i < names.size(); ++i) {
      const torch::Tensor &t = w32.at(names[i]);
      args.push_back({t.sizes().vec(), t.data_ptr()});
      ranks.push_back(t.dim());
    }
    std::vector<TensorResult> out;
    ASSERT_TRUE(jit->runMulti("loss_grad", args, ranks, out, error)) << error;

    hag::ref::Weights p;
    for (auto &[name, t] : w64)
      p[name] = t.clone().set_requires_grad(true);
    torch::Tensor loss = hag::ref::lmLoss(cfg, p, tokens);
    loss.backward();
    EXPECT_NEAR(out[0].data.at(0), loss.item<double>(),
                1e-5 * std::abs(loss.item<double>()));
    std::vector<std::string> weightNames(names.begin() + 1, names.end());
    std::vector<torch::Tensor> got, want;
    for (size_t i = 1; i < names.size(); ++i) {
      got.push_back(asTensor(out[i]));
      want.push_back(p.at(names[i]).grad());
    }
    // Short sequences leave the compressed levels out of every window.
    expectGradientsMatch(weightNames, got, want, /*requireNonzero=*/n > 100);
  }
}

std::vector<Case> gradientCases() {
  std::vector<Case> cs;
  using hag::Compress;
  auto lm = [&](Case c) {
    c.lm = true;
    cs.push_back(c);
  };
  lm({"causal_L4"});
  lm({"causal_L3", true, true, 3});
  lm({"causal_auto", true, true, 0});
  lm({"causal_L5_r2", true, true, 5, 2});
  lm({"bidir_L4", true, false, 4});
  lm({"bidir_auto_r2", true, false, 0, 2});
  lm({"max", true, true, 4, 4, Compress::Max});
  lm({"max_bidir_L3", true, false, 3, 4, Compress::Max});
  lm({"conv", true, true, 4, 4, Compress::Conv});
  lm({"conv_bidir_auto", true, false, 0, 4, Compress::Conv});
  lm({"gqa", true, true, 4, 4, Compress::GatedMean, 2});
  lm({"mqa_conv", true, true, 4, 2, Compress::Conv, 1});
  lm({"select3", true, true, 4, 4, Compress::GatedMean, 4, 3});
  lm({"select3_bidir_gqa", true, false, 4, 4, Compress::GatedMean, 2, 3});
  lm({"no_mass_bias", true, true, 4, 4, Compress::GatedMean, 4, 0, 0.0});
  lm({"d24", true, true, 4, 4, Compress::GatedMean, 4, 0, 1.0, 16, 24});
  lm(localOnly({"local_only_conv_select", true, true, 4, 4, Compress::Conv, 2,
                3}));
  return cs;
}

INSTANTIATE_TEST_SUITE_P(LM, GradientConformance,
                         ::testing::ValuesIn(gradientCases()),
                         [](const auto &info) { return info.param.name; });


//===----------------------------------------------------------------------===//
// Finite differences on a tiny model: the compiled gradients against the
// compiled loss itself, independent of LibTorch's autograd. Central
// differences in f32 with h = 1e-2 on the largest-gradient elements of every
// weight (where the truncation error O(h^2) and the f32 rounding of the loss
// are small against the gradient).
//===----------------------------------------------------------------------===//

TEST(GradientFiniteDifferences, TinyModel) {
  // No select_k: its top-k is not differentiable in g, and a step of h can
  // change the picks (autograd, like the compiled code, holds them fixed).
  Case c{"tiny", true, true, 4, 2, hag::Compress::Conv, 1, 0};
  c.headDim = 4;
  c.block = 4;
  hag::ModelDescription md;
  hag::ref::ModelConfig cfg;
  hag::testing::makeModel(c, md, cfg);
  md.layers = cfg.layers = 1;
  std::string error;
  std::unique_ptr<JitModel> jit =
      JitModel::compile(md, error, "hag-autodiff{entry=loss}");
  ASSERT_TRUE(jit) << error;
  std::map<std::string, torch::Tensor> w =
      hag::testing::toF32(hag::testing::makeWeights(cfg));
  std::vector<std::string> names = jit->argumentNames("loss_grad");
  torch::manual_seed(77);
  torch::Tensor tokens = torch::randint(0, cfg.vocab, {2, 30}, torch::kInt32);
  auto args = [&]() {
    std::vector<TensorArg> a = {{tokens.sizes().vec(), tokens.data_ptr()}};
    for (size_t i = 1; i < names.size(); ++i)
      a.push_back({w.at(names[i]).sizes().vec(), w.at(names[i]).data_ptr()});
    return a;
  };
  std::vector<int64_t> ranks = {0};
  for (size_t i = 1; i < names.size(); ++i)
    ranks.push_back(w.at(names[i]).dim());
  std::vector<TensorResult> grads;
  ASSERT_TRUE(jit->runMulti("loss_grad", args(), ranks, grads, error)) << error;
  auto loss = [&]() {
    TensorResult l;
    EXPECT_TRUE(jit->run("loss", args(), 0, l, error)) << error;
    return static_cast<double>(l.data.at(0));
  };
  const float h = 1e-2f;
  int checked = 0;
  for (size_t i = 1; i < names.size(); ++i) {
    const std::string &name = names[i];
    torch::Tensor g = asTensor(grads[i]).flatten();
    torch::Tensor order = g.abs().argsort(0, /*descending=*/true);
    float *data = w.at(name).data_ptr<float>();
    for (int k = 0; k < std::min<int64_t>(2, g.numel()); ++k) {
      int64_t j = order[k].item<int64_t>();
      double want = g[j].item<double>();
      if (std::abs(want) < 3e-4)
        continue; // too small for an f32 difference quotient
      float saved = data[j];
      data[j] = saved + h;
      double up = loss();
      data[j] = saved - h;
      double down = loss();
      data[j] = saved;
      double fd = (up - down) / (2.0 * h);
      EXPECT_NEAR(fd, want, 0.03 * std::abs(want) + 2e-4)
          << name << "[" << j << "]: finite difference " << fd
          << ", compiled gradient " << want;
      ++checked;
    }
  }
  // Every kind of weight with a sizeable gradient took part.
  EXPECT_GE(checked, 20);
}

} // namespace
