//===- AutodiffConformanceTest.cpp - hag-autodiff vs LibTorch autograd ----===//
//
// hag-autodiff's gradients, compiled for the CPU, against LibTorch autograd
// in float64 on the same weights: a tied-embedding model with a residual
// projection (embedding, linear with bias, add, linear, cross-entropy; the
// ops that have VJPs so far). Spec section 11: max relative error <= 1e-3
// (measured: ~1e-6).
//
//===----------------------------------------------------------------------===//

#include "JitModel.h"

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
                         ::testing::Values(Shape{2, 7, 16, 8},
                                           Shape{3, 21, 80, 64}),
                         [](const auto &info) {
                           const Shape &s = info.param;
                           return "b" + std::to_string(s.batch) + "_n" +
                                  std::to_string(s.seq) + "_v" +
                                  std::to_string(s.vocab) + "_d" +
                                  std::to_string(s.width);
                         });

} // namespace
