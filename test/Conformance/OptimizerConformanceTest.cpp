//===- OptimizerConformanceTest.cpp - optimizer ops vs LibTorch -----------===//
//
// The compiled optimizer ops (spec section 8) against their LibTorch
// counterparts: hag.adamw against torch::optim::AdamW over several steps,
// hag.clip_grad_norm against torch::nn::utils::clip_grad_norm_, the
// learning-rate schedule against its formula in double, and dynamic loss
// scaling (all_finite, adamw's skip, loss_scale_update) against the
// GradScaler rules with injected infs.
//
//===----------------------------------------------------------------------===//

#include "JitModel.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

using hag::testing::JitModel;
using hag::testing::TensorArg;
using hag::testing::TensorResult;

namespace {

const char *kSource = R"mlir(
!P = tensor<37x29xf32>
func.func @adamw_p(%p: !P, %g: !P, %m: !P, %v: !P, %t: tensor<i64>, %lr: tensor<f32>) -> !P {
  %a:3 = hag.adamw %p, %g, %m, %v step %t lr %lr {beta1 = 0.9, beta2 = 0.95, eps = 1.0e-08, weight_decay = 0.1}
      : (!P, !P, !P, !P, tensor<i64>, tensor<f32>) -> (!P, !P, !P)
  return %a#0 : !P
}
func.func @adamw_m(%p: !P, %g: !P, %m: !P, %v: !P, %t: tensor<i64>, %lr: tensor<f32>) -> !P {
  %a:3 = hag.adamw %p, %g, %m, %v step %t lr %lr {beta1 = 0.9, beta2 = 0.95, eps = 1.0e-08, weight_decay = 0.1}
      : (!P, !P, !P, !P, tensor<i64>, tensor<f32>) -> (!P, !P, !P)
  return %a#1 : !P
}
func.func @adamw_v(%p: !P, %g: !P, %m: !P, %v: !P, %t: tensor<i64>, %lr: tensor<f32>) -> !P {
  %a:3 = hag.adamw %p, %g, %m, %v step %t lr %lr {beta1 = 0.9, beta2 = 0.95, eps = 1.0e-08, weight_decay = 0.1}
      : (!P, !P, !P, !P, tensor<i64>, tensor<f32>) -> (!P, !P, !P)
  return %a#2 : !P
}
func.func @clip_0(%a: !P, %b: tensor<11xf32>, %c: tensor<3x4x5xf32>) -> !P {
  %r:4 = hag.clip_grad_norm %a, %b, %c {max_norm = 1.5}
      : (!P, tensor<11xf32>, tensor<3x4x5xf32>) -> (!P, tensor<11xf32>, tensor<3x4x5xf32>, tensor<f32>)
  return %r#0 : !P
}
func.func @clip_2(%a: !P, %b: tensor<11xf32>, %c: tensor<3x4x5xf32>) -> tensor<3x4x5xf32> {
  %r:4 = hag.clip_grad_norm %a, %b, %c {max_norm = 1.5}
      : (!P, tensor<11xf32>, tensor<3x4x5xf32>) -> (!P, tensor<11xf32>, tensor<3x4x5xf32>, tensor<f32>)
  return %r#2 : tensor<3x4x5xf32>
}
func.func @clip_norm(%a: !P, %b: tensor<11xf32>, %c: tensor<3x4x5xf32>) -> tensor<f32> {
  %r:4 = hag.clip_grad_norm %a, %b, %c {max_norm = 1.5}
      : (!P, tensor<11xf32>, tensor<3x4x5xf32>) -> (!P, tensor<11xf32>, tensor<3x4x5xf32>, tensor<f32>)
  return %r#3 : tensor<f32>
}
func.func @cosine(%t: tensor<i64>) -> tensor<f32> {
  %l = hag.lr_schedule %t {lr = 3.0e-4, warmup = 10 : i64, total = 100 : i64, schedule = "cosine"} : (tensor<i64>) -> tensor<f32>
  return %l : tensor<f32>
}
func.func @constant(%t: tensor<i64>) -> tensor<f32> {
  %l = hag.lr_schedule %t {lr = 1.0e-3, warmup = 4 : i64} : (tensor<i64>) -> tensor<f32>
  return %l : tensor<f32>
}
// One step of fp16-style training bookkeeping on unscaled gradients:
// the update is skipped when a gradient is not finite.
func.func @guarded_p(%p: !P, %g: !P, %m: !P, %v: !P, %t: tensor<i64>, %lr: tensor<f32>, %g2: tensor<11xf32>) -> !P {
  %ok = hag.all_finite %g, %g2 : (!P, tensor<11xf32>) -> tensor<i1>
  %a:3 = hag.adamw %p, %g, %m, %v step %t lr %lr if %ok {beta1 = 0.9, beta2 = 0.95, eps = 1.0e-08, weight_decay = 0.1}
      : (!P, !P, !P, !P, tensor<i64>, tensor<f32>, tensor<i1>) -> (!P, !P, !P)
  return %a#0 : !P
}
func.func @finite(%g: !P, %g2: tensor<11xf32>) -> tensor<f32> {
  %ok = hag.all_finite %g, %g2 : (!P, tensor<11xf32>) -> tensor<i1>
  %b = tensor.extract %ok[] : tensor<i1>
  %one = arith.constant 1.0 : f32
  %zero = arith.constant 0.0 : f32
  %f = arith.select %b, %one, %zero : f32
  %r = tensor.from_elements %f : tensor<f32>
  return %r : tensor<f32>
}
// The scale and the good-step count (as f32) after one update.
func.func @scale_s(%g: !P, %g2: tensor<11xf32>, %s: tensor<f32>, %n: tensor<i64>) -> tensor<f32> {
  %ok = hag.all_finite %g, %g2 : (!P, tensor<11xf32>) -> tensor<i1>
  %r:2 = hag.loss_scale_update %ok, %s, %n {growth_interval = 3 : i64} : (tensor<i1>, tensor<f32>, tensor<i64>) -> (tensor<f32>, tensor<i64>)
  return %r#0 : tensor<f32>
}
func.func @scale_n(%g: !P, %g2: tensor<11xf32>, %s: tensor<f32>, %n: tensor<i64>) -> tensor<f32> {
  %ok = hag.all_finite %g, %g2 : (!P, tensor<11xf32>) -> tensor<i1>
  %r:2 = hag.loss_scale_update %ok, %s, %n {growth_interval = 3 : i64} : (tensor<i1>, tensor<f32>, tensor<i64>) -> (tensor<f32>, tensor<i64>)
  %i = tensor.extract %r#1[] : tensor<i64>
  %f = arith.sitofp %i : i64 to f32
  %t = tensor.from_elements %f : tensor<f32>
  return %t : tensor<f32>
}
)mlir";

class Optimizer : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    std::string error;
    jit = JitModel::compileSource(kSource, error).release();
    ASSERT_NE(jit, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete jit;
    jit = nullptr;
  }

  static TensorArg arg(const torch::Tensor &t) {
    return {t.sizes().vec(), t.data_ptr()};
  }
  /// Calls `entry` and returns its f32 result as a tensor.
  static torch::Tensor call(const std::string &entry,
                            const std::vector<torch::Tensor> &args,
                            int64_t rank) {
    std::vector<TensorArg> a;
    for (const torch::Tensor &t : args)
      a.push_back(arg(t));
    TensorResult out;
    std::string error;
    EXPECT_TRUE(jit->run(entry, a, rank, out, error)) << error;
    return torch::from_blob(out.data.data(), out.shape, torch::kFloat32)
        .clone();
  }
  static double maxAbs(const torch::Tensor &a, const torch::Tensor &b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64))
        .abs()
        .max()
        .item<double>();
  }

  static JitModel *jit;
};
JitModel *Optimizer::jit = nullptr;

TEST_F(Optimizer, AdamWMatchesTorchOverSteps) {
  torch::manual_seed(3);
  torch::Tensor p0 = torch::randn({37, 29});
  const double lr = 1e-2;
  torch::Tensor tp = p0.clone().set_requires_grad(true);
  torch::optim::AdamW opt(std::vector<torch::Tensor>{tp},
                          torch::optim::AdamWOptions(lr)
                              .betas({0.9, 0.95})
                              .eps(1e-8)
                              .weight_decay(0.1));
  torch::Tensor p = p0.clone(), m = torch::zeros_like(p0),
                v = torch::zeros_like(p0);
  torch::Tensor lrT = torch::tensor(static_cast<float>(lr));
  for (int64_t step = 1; step <= 6; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    torch::Tensor g = torch::randn({37, 29}) * (step % 2 ? 1.0 : 1e-3);
    tp.mutable_grad() = g.clone();
    opt.step();
    torch::Tensor t = torch::tensor(step, torch::kInt64);
    torch::Tensor np = call("adamw_p", {p, g, m, v, t, lrT}, 2);
    torch::Tensor nm = call("adamw_m", {p, g, m, v, t, lrT}, 2);
    torch::Tensor nv = call("adamw_v", {p, g, m, v, t, lrT}, 2);
    p = np, m = nm, v = nv;
    double err = maxAbs(p, tp.detach());
    EXPECT_LE(err, 2e-6) << "max |p - p_torch| " << err;
    // The update really moved the weights (a check that could fail).
    EXPECT_GT(maxAbs(p, p0), 1e-3);
  }
}

TEST_F(Optimizer, ClipGradNormMatchesTorch) {
  torch::manual_seed(5);
  for (double scale : {1.0, 0.01}) {
    SCOPED_TRACE("scale " + std::to_string(scale));
    std::vector<torch::Tensor> g = {torch::randn({37, 29}) * scale,
                                    torch::randn({11}) * scale,
                                    torch::randn({3, 4, 5}) * scale};
    std::vector<torch::Tensor> params;
    for (const torch::Tensor &x : g) {
      torch::Tensor q = torch::zeros_like(x).set_requires_grad(true);
      q.mutable_grad() = x.clone();
      params.push_back(q);
    }
    double norm = torch::nn::utils::clip_grad_norm_(params, 1.5);
    torch::Tensor ours = call("clip_norm", g, 0);
    EXPECT_NEAR(ours.item<float>(), norm, 1e-6 * norm);
    torch::Tensor c0 = call("clip_0", g, 2), c2 = call("clip_2", g, 3);
    EXPECT_LE(maxAbs(c0, params[0].grad()), 1e-6);
    EXPECT_LE(maxAbs(c2, params[2].grad()), 1e-6);
    if (scale < 0.1) // Below max_norm: untouched, bit for bit.
      EXPECT_TRUE(torch::equal(c0, g[0]));
    else
      EXPECT_LT(c0.norm().item<double>(), g[0].norm().item<double>());
  }
}

TEST_F(Optimizer, LearningRateSchedules) {
  const double pi = 3.14159265358979323846;
  for (int64_t t : {1, 5, 10, 11, 40, 99, 100, 130}) {
    double want = t <= 10 ? 3e-4 * t / 10.0
                          : 3e-4 * 0.5 *
                                (1 + std::cos(pi * std::min(1.0, (t - 10) / 90.0)));
    torch::Tensor got = call("cosine", {torch::tensor(t, torch::kInt64)}, 0);
    EXPECT_NEAR(got.item<float>(), want, 1e-7 * 3e-4 + 1e-12) << "t " << t;
  }
  for (int64_t t : {1, 2, 4, 5, 1000}) {
    double want = t <= 4 ? 1e-3 * t / 4.0 : 1e-3;
    torch::Tensor got = call("constant", {torch::tensor(t, torch::kInt64)}, 0);
    EXPECT_FLOAT_EQ(got.item<float>(), static_cast<float>(want)) << "t " << t;
  }
}

TEST_F(Optimizer, NonFiniteGradientsSkipTheStepAndBackOff) {
  torch::manual_seed(9);
  torch::Tensor p = torch::randn({37, 29}), m = torch::randn({37, 29}) * 0.1,
                v = torch::rand({37, 29}) * 0.1;
  torch::Tensor lr = torch::tensor(1e-2f), t = torch::tensor(int64_t(3));
  torch::Tensor g = torch::randn({37, 29}), g2 = torch::randn({11});
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();

  // Finite: the step is applied.
  EXPECT_EQ(call("finite", {g, g2}, 0).item<float>(), 1.0f);
  torch::Tensor stepped = call("guarded_p", {p, g, m, v, t, lr, g2}, 2);
  EXPECT_GT(maxAbs(stepped, p), 1e-4);
  EXPECT_TRUE(torch::equal(stepped, call("adamw_p", {p, g, m, v, t, lr}, 2)));

  // An inf or a NaN anywhere (in either tensor): skipped, weights unchanged
  // bit for bit, the scale halved and the good-step count reset.
  for (int where = 0; where < 4; ++where) {
    SCOPED_TRACE("injection " + std::to_string(where));
    torch::Tensor gb = g.clone(), g2b = g2.clone();
    if (where == 0)
      gb[0][0] = inf;
    else if (where == 1)
      gb[36][28] = -inf;
    else if (where == 2)
      g2b[5] = nan;
    else
      gb[17][3] = nan;
    EXPECT_EQ(call("finite", {gb, g2b}, 0).item<float>(), 0.0f);
    torch::Tensor kept = call("guarded_p", {p, gb, m, v, t, lr, g2b}, 2);
    EXPECT_TRUE(torch::equal(kept, p));
    torch::Tensor s = torch::tensor(65536.0f), n = torch::tensor(int64_t(2));
    EXPECT_EQ(call("scale_s", {gb, g2b, s, n}, 0).item<float>(), 32768.0f);
    EXPECT_EQ(call("scale_n", {gb, g2b, s, n}, 0).item<float>(), 0.0f);
  }

  // The GradScaler rule over a sequence (growth_interval 3): finite steps
  // count up, the third doubles the scale; an overflow halves it.
  float scale = 65536.0f;
  int64_t good = 0;
  const bool overflow[] = {false, false, false, true, false, false,
                           false, false, true,  true, false};
  for (bool bad : overflow) {
    torch::Tensor gb = g.clone();
    if (bad)
      gb[1][1] = inf;
    torch::Tensor s = torch::tensor(scale), n = torch::tensor(good);
    float gotScale = call("scale_s", {gb, g2, s, n}, 0).item<float>();
    float gotGood = call("scale_n", {gb, g2, s, n}, 0).item<float>();
    // GradScaler: backoff on inf; else count, and grow at the interval.
    if (bad) {
      scale *= 0.5f;
      good = 0;
    } else if (++good == 3) {
      scale *= 2.0f;
      good = 0;
    }
    EXPECT_EQ(gotScale, scale);
    EXPECT_EQ(gotGood, static_cast<float>(good));
  }
}

} // namespace
