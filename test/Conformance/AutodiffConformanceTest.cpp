//===- AutodiffConformanceTest.cpp - hag-autodiff vs LibTorch autograd ----===//
//
// hag-autodiff's gradients, compiled for the CPU, against LibTorch autograd
// in float64 on the same weights: a tied-embedding model with a residual
// projection (embedding, linear with bias, add, linear, cross-entropy), and
// a pre-norm block without attention (RMSNorm, a projection with RoPE, the
// SwiGLU MLP): every op that has a VJP so far. Spec section 11: max relative
// error <= 1e-3 (measured: ~1e-6).
//
//===----------------------------------------------------------------------===//

#include "JitModel.h"
#include "hag/reference/Reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

using hag::testing::JitModel;
using hag::testing::TensorArg;
using hag::testing::TensorResult;

namespace {

struct Shape {
  int64_t batch, seq, vocab, width;
};

/// The model as hag ops, @loss calling @forward (hag-autodiff inlines it).
std::string source(const Shape &s) {
  auto t = [](std::vector<int64_t> dims) {
    std::string r = "tensor<";
    for (int64_t d : dims)
      r += std::to_string(d) + "x";
    return r + "f32>";
  };
  std::string tok = "tensor<" + std::to_string(s.batch) + "x" +
                    std::to_string(s.seq) + "xi32>";
  std::string act = t({s.batch, s.seq, s.width});
  std::string logits = t({s.batch, s.seq, s.vocab});
  std::string emb = t({s.vocab, s.width}), w = t({s.width, s.width}),
              bias = t({s.width});
  std::string args = "%tokens: " + tok + " {hag.input, hag.name = \"tokens\"}, " +
                     "%embed: " + emb + " {hag.name = \"embed\"}, %w: " + w +
                     " {hag.name = \"w\"}, %bias: " + bias +
                     " {hag.name = \"bias\"}";
  return "func.func @forward(" + args + ") -> " + logits + " {\n" +
         "  %x = hag.embedding %tokens, %embed : (" + tok + ", " + emb +
         ") -> " + act + "\n" + "  %h = hag.linear %x, %w, %bias : (" + act +
         ", " + w + ", " + bias + ") -> " + act + "\n" +
         "  %r = hag.add %x, %h : " + act + "\n" +
         "  %l = hag.linear %r, %embed : (" + act + ", " + emb + ") -> " +
         logits + "\n" + "  return %l : " + logits + "\n}\n" +
         "func.func @loss(" + args + ") -> tensor<f32> {\n" +
         "  %l = func.call @forward(%tokens, %embed, %w, %bias) : (" + tok +
         ", " + emb + ", " + w + ", " + bias + ") -> " + logits + "\n" +
         "  %c = hag.cross_entropy %l, %tokens : (" + logits + ", " + tok +
         ") -> tensor<f32>\n  return %c : tensor<f32>\n}\n";
}

class Autodiff : public ::testing::TestWithParam<Shape> {};

TEST_P(Autodiff, MatchesTorchAutogradFloat64) {
  const Shape &s = GetParam();
  std::string error;
  std::unique_ptr<JitModel> jit =
      JitModel::compileSource(source(s), error, "hag-autodiff");
  ASSERT_TRUE(jit) << error;

  torch::manual_seed(17);
  torch::Tensor tokens =
      torch::randint(0, s.vocab, {s.batch, s.seq}, torch::kInt32);
  torch::Tensor embed = torch::randn({s.vocab, s.width}) * 0.5;
  torch::Tensor w = torch::randn({s.width, s.width}) / std::sqrt(s.width);
  torch::Tensor bias = torch::randn({s.width}) * 0.1;

  std::vector<TensorArg> args = {
      {tokens.sizes().vec(), tokens.data_ptr()},
      {embed.sizes().vec(), embed.data_ptr()},
      {w.sizes().vec(), w.data_ptr()},
      {bias.sizes().vec(), bias.data_ptr()}};
  std::vector<TensorResult> out;
  ASSERT_TRUE(jit->runMulti("loss_grad", args, {0, 2, 2, 1}, out, error))
      << error;

  // LibTorch autograd in float64 on the same (f32-representable) values.
  auto e64 = embed.to(torch::kFloat64).set_requires_grad(true);
  auto w64 = w.to(torch::kFloat64).set_requires_grad(true);
  auto b64 = bias.to(torch::kFloat64).set_requires_grad(true);
  torch::Tensor ids = tokens.to(torch::kInt64);
  torch::Tensor x = e64.index_select(0, ids.flatten()).view({s.batch, s.seq, s.width});
  torch::Tensor r = x + torch::nn::functional::linear(x, w64, b64);
  torch::Tensor logits = torch::nn::functional::linear(r, e64);
  torch::Tensor loss = torch::nn::functional::cross_entropy(
      logits.slice(1, 0, s.seq - 1).reshape({-1, s.vocab}),
      ids.slice(1, 1, s.seq).reshape({-1}));
  loss.backward();

  EXPECT_NEAR(out[0].data.at(0), loss.item<double>(),
              1e-5 * std::abs(loss.item<double>()));
  const char *names[] = {"embed", "w", "bias"};
  torch::Tensor want[] = {e64.grad(), w64.grad(), b64.grad()};
  for (int i = 0; i < 3; ++i) {
    torch::Tensor got =
        torch::from_blob(out[i + 1].data.data(), out[i + 1].shape,
                         torch::kFloat32)
            .to(torch::kFloat64);
    ASSERT_EQ(got.sizes(), want[i].sizes()) << names[i];
    double scale = want[i].abs().max().item<double>();
    ASSERT_GT(scale, 0.0) << names[i];
    double rel = (got - want[i]).abs().max().item<double>() / scale;
    EXPECT_LE(rel, 1e-3) << names[i] << ": max relative error " << rel;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Autodiff,
                         // Odd vocab and width: the matmul kernels' rows
                         // past the last 4-row tile in dx = dy W and in
                         // dW = dy^T x (13 rows of the head's gradient).
                         ::testing::Values(Shape{2, 7, 16, 8},
                                           Shape{3, 21, 80, 64},
                                           Shape{2, 5, 13, 6}),
                         [](const auto &info) {
                           const Shape &s = info.param;
                           return "b" + std::to_string(s.batch) + "_n" +
                                  std::to_string(s.seq) + "_v" +
                                  std::to_string(s.vocab) + "_d" +
                                  std::to_string(s.width);
                         });

/// embedding -> RMSNorm -> projection + RoPE (2 heads) -> residual ->
/// RMSNorm -> SwiGLU -> residual -> tied head -> cross-entropy.
const char *kBlockSource = R"mlir(
!A = tensor<3x19x32xf32>
!T = tensor<3x19xi32>
func.func @loss(%tokens: !T {hag.input}, %embed: tensor<40x32xf32> {hag.name = "embed"},
                %s1: tensor<32xf32> {hag.name = "s1"}, %wq: tensor<32x32xf32> {hag.name = "wq"},
                %s2: tensor<32xf32> {hag.name = "s2"}, %wg: tensor<48x32xf32> {hag.name = "wg"},
                %wu: tensor<48x32xf32> {hag.name = "wu"}, %wd: tensor<32x48xf32> {hag.name = "wd"}) -> tensor<f32> {
  %x = hag.embedding %tokens, %embed : (!T, tensor<40x32xf32>) -> !A
  %n1 = hag.rms_norm %x, %s1 : (!A, tensor<32xf32>) -> !A
  %q = hag.linear %n1, %wq : (!A, tensor<32x32xf32>) -> !A
  %qr = hag.rope %q {head_dim = 16 : i64} : (!A) -> !A
  %x1 = hag.add %x, %qr : !A
  %n2 = hag.rms_norm %x1, %s2 : (!A, tensor<32xf32>) -> !A
  %m = hag.swiglu %n2, %wg, %wu, %wd : (!A, tensor<48x32xf32>, tensor<48x32xf32>, tensor<32x48xf32>) -> !A
  %x2 = hag.add %x1, %m : !A
  %logits = hag.linear %x2, %embed : (!A, tensor<40x32xf32>) -> tensor<3x19x40xf32>
  %l = hag.cross_entropy %logits, %tokens : (tensor<3x19x40xf32>, !T) -> tensor<f32>
  return %l : tensor<f32>
}
)mlir";

TEST(AutodiffBlock, NormRopeSwiGLUMatchTorchAutogradFloat64) {
  std::string error;
  std::unique_ptr<JitModel> jit =
      JitModel::compileSource(kBlockSource, error, "hag-autodiff");
  ASSERT_TRUE(jit) << error;
  torch::manual_seed(23);
  torch::Tensor tokens = torch::randint(0, 40, {3, 19}, torch::kInt32);
  std::vector<std::pair<std::string, torch::Tensor>> w = {
      {"embed", torch::randn({40, 32}) * 0.5},
      {"s1", 1.0 + 0.2 * torch::randn({32})},
      {"wq", torch::randn({32, 32}) / std::sqrt(32.0)},
      {"s2", 1.0 + 0.2 * torch::randn({32})},
      {"wg", torch::randn({48, 32}) / std::sqrt(32.0)},
      {"wu", torch::randn({48, 32}) / std::sqrt(32.0)},
      {"wd", torch::randn({32, 48}) / std::sqrt(48.0)}};
  std::vector<TensorArg> args = {{tokens.sizes().vec(), tokens.data_ptr()}};
  std::vector<int64_t> ranks = {0};
  for (auto &[name, t] : w) {
    args.push_back({t.sizes().vec(), t.data_ptr()});
    ranks.push_back(t.dim());
  }
  std::vector<TensorResult> out;
  ASSERT_TRUE(jit->runMulti("loss_grad", args, ranks, out, error)) << error;

  std::map<std::string, torch::Tensor> p;
  for (auto &[name, t] : w)
    p[name] = t.to(torch::kFloat64).set_requires_grad(true);
  namespace F = torch::nn::functional;
  torch::Tensor ids = tokens.to(torch::kInt64);
  torch::Tensor x = p["embed"].index_select(0, ids.flatten()).view({3, 19, 32});
  torch::Tensor q = F::linear(hag::ref::rmsNorm(x, p["s1"]), p["wq"]);
  torch::Tensor x1 = x + hag::ref::rope(q, 16, 10000.0);
  torch::Tensor n2 = hag::ref::rmsNorm(x1, p["s2"]);
  torch::Tensor m = F::linear(torch::silu(F::linear(n2, p["wg"])) *
                                  F::linear(n2, p["wu"]),
                              p["wd"]);
  torch::Tensor logits = F::linear(x1 + m, p["embed"]);
  torch::Tensor loss =
      F::cross_entropy(logits.slice(1, 0, 18).reshape({-1, 40}),
                       ids.slice(1, 1, 19).reshape({-1}));
  loss.backward();
  EXPECT_NEAR(out[0].data.at(0), loss.item<double>(),
              1e-5 * std::abs(loss.item<double>()));
  for (size_t i = 0; i < w.size(); ++i) {
    const std::string &name = w[i].first;
    torch::Tensor got = torch::from_blob(out[i + 1].data.data(),
                                         out[i + 1].shape, torch::kFloat32)
                            .to(torch::kFloat64);
    torch::Tensor want = p[name].grad();
    ASSERT_EQ(got.sizes(), want.sizes()) << name;
    double scale = want.abs().max().item<double>();
    ASSERT_GT(scale, 0.0) << name;
    double rel = (got - want).abs().max().item<double>() / scale;
    EXPECT_LE(rel, 1e-3) << name << ": max relative error " << rel;
  }
}

} // namespace
