//===- TensorParallelTest.cpp - split rank programs vs the whole model ----===//
//
// hag-split-tensor-parallel (spec section 9) on the language model: the rank
// programs, compiled for the CPU and run by `degree` threads, each with its
// shard of every split weight, and with hag.all_reduce summing over the
// threads, must give the float64 reference's logits (and the unsplit
// compiled model's) on every rank.
//
//===----------------------------------------------------------------------===//

#include "ConformanceModels.h"
#include "JitModel.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <condition_variable>
#include <mutex>
#include <thread>

using hag::testing::Case;
using hag::testing::JitModel;
using hag::testing::TensorArg;
using hag::testing::TensorResult;

namespace {

/// An all-reduce among the threads of one test: every rank deposits its
/// buffer; the last to arrive sums them in rank order (the same result on
/// every rank) and writes the sum into each, then releases the others.
struct ThreadGroup {
  std::mutex mutex;
  std::condition_variable released;
  std::vector<float *> buffers;
  std::vector<int64_t> counts;
  int arrived = 0;
  int64_t generation = 0;
  bool mismatch = false;

  explicit ThreadGroup(int ranks) : buffers(ranks), counts(ranks) {}

  void allReduce(int rank, float *data, int64_t count) {
    std::unique_lock<std::mutex> lock(mutex);
    int64_t mine = generation;
    buffers[rank] = data;
    counts[rank] = count;
    if (++arrived < static_cast<int>(buffers.size())) {
      released.wait(lock, [&] { return generation != mine; });
      return;
    }
    for (int64_t c : counts)
      mismatch |= c != count;
    std::vector<float> sum(count, 0.0f);
    if (!mismatch)
      for (float *b : buffers)
        for (int64_t i = 0; i < count; ++i)
          sum[i] += b[i];
    for (float *b : buffers)
      std::copy(sum.begin(), sum.end(), b);
    arrived = 0;
    ++generation;
    released.notify_all();
  }
};

ThreadGroup *group = nullptr;
thread_local int threadRank = -1;

void threadAllReduce(float *data, int64_t count, int32_t groupKind,
                     int32_t mean) {
  ASSERT_EQ(groupKind, 0) << "only the tensor group exists here";
  ASSERT_EQ(mean, 0) << "the tensor split sums partial products";
  group->allReduce(threadRank, data, count);
}

/// The dimension a weight is split along (interfaces.md's names), or -1.
int64_t shardDim(const std::string &name) {
  auto ends = [&](const std::string &s) {
    return name.size() >= s.size() &&
           name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends("attn.wq") || ends("attn.wk") || ends("attn.wv") ||
      ends("mlp.w_gate") || ends("mlp.w_up") ||
      name.find("attn.conv.") != std::string::npos)
    return 0;
  if (ends("attn.wo") || ends("mlp.w_down"))
    return 1;
  return -1;
}

class TensorParallel : public ::testing::TestWithParam<Case> {};

TEST_P(TensorParallel, RanksMatchTheWholeModel) {
  const Case &c = GetParam();
  const int degree = 2;
  hag::ModelDescription md;
  hag::ref::ModelConfig cfg;
  hag::testing::makeModel(c, md, cfg);
  hag::ref::Weights w64 = hag::testing::makeWeights(cfg);
  std::map<std::string, torch::Tensor> w32 = hag::testing::toF32(w64);

  const int64_t batch = 2, n = 150;
  torch::manual_seed(7);
  torch::Tensor tokens = torch::randint(0, cfg.vocab, {batch, n}, torch::kInt64);
  torch::Tensor tokens32 = tokens.to(torch::kInt32).contiguous();
  torch::Tensor want = hag::ref::lmForward(cfg, w64, tokens);

  std::string error;
  std::unique_ptr<JitModel> whole = JitModel::compile(md, error);
  ASSERT_TRUE(whole) << error;
  std::vector<std::string> names = whole->argumentNames("forward");
  std::vector<TensorArg> args = {{tokens32.sizes().vec(), tokens32.data_ptr()}};
  for (size_t i = 1; i < names.size(); ++i)
    args.push_back({w32.at(names[i]).sizes().vec(), w32.at(names[i]).data_ptr()});
  TensorResult unsplit;
  ASSERT_TRUE(whole->run("forward", args, 3, unsplit, error)) << error;
  auto asTensor = [](TensorResult &r) {
    return torch::from_blob(r.data.data(), r.shape, torch::kFloat32)
        .to(torch::kFloat64);
  };
  double scale = want.abs().max().item<double>();
  EXPECT_LE((asTensor(unsplit) - want).abs().max().item<double>(), 1e-4 * scale);

  // One program (and JIT instance) per rank; each gets its weight shards.
  std::vector<std::unique_ptr<JitModel>> ranks;
  std::vector<std::vector<torch::Tensor>> shards(degree);
  std::vector<std::vector<TensorArg>> rankArgs(degree);
  int splitWeights = 0;
  for (int r = 0; r < degree; ++r) {
    ranks.push_back(JitModel::compile(
        md, error,
        "hag-split-tensor-parallel{degree=" + std::to_string(degree) + "}"));
    ASSERT_TRUE(ranks.back()) << error;
    ASSERT_EQ(ranks.back()->argumentNames("forward"), names);
    rankArgs[r].push_back(args[0]);
    for (size_t i = 1; i < names.size(); ++i) {
      torch::Tensor t = w32.at(names[i]);
      if (int64_t dim = shardDim(names[i]); dim >= 0) {
        int64_t part = t.size(dim) / degree;
        t = t.narrow(dim, r * part, part).contiguous();
        splitWeights += r == 0;
      }
      shards[r].push_back(t);
      rankArgs[r].push_back({t.sizes().vec(), t.data_ptr()});
    }
  }
  // 2 layers x (wq, wk, wv, wo, w_gate, w_up, w_down) + conv weights.
  EXPECT_GE(splitWeights, 14);

  ThreadGroup threads(degree);
  group = &threads;
  hag::testing::setAllReduce(&threadAllReduce);
  std::vector<TensorResult> out(degree);
  std::vector<std::string> errors(degree);
  std::vector<char> ok(degree, 0);
  std::vector<std::thread> workers;
  for (int r = 0; r < degree; ++r)
    workers.emplace_back([&, r] {
      threadRank = r;
      ok[r] = ranks[r]->run("forward", rankArgs[r], 3, out[r], errors[r]);
    });
  for (std::thread &t : workers)
    t.join();
  hag::testing::setAllReduce(nullptr);
  group = nullptr;
  EXPECT_FALSE(threads.mismatch) << "ranks reduced buffers of different sizes";
  for (int r = 0; r < degree; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(ok[r]) << errors[r];
    torch::Tensor got = asTensor(out[r]);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * scale);
    EXPECT_LE((got - asTensor(unsplit)).abs().max().item<double>(), 1e-5 * scale);
  }
}

std::vector<Case> tensorParallelCases() {
  Case gqa{"lm_gqa_conv_select", true};
  gqa.kvHeads = 2;
  gqa.compress = hag::Compress::Conv;
  gqa.selectK = 3;
  Case mha{"lm_mha_gated_mean", true};
  return {gqa, mha};
}

INSTANTIATE_TEST_SUITE_P(Split, TensorParallel,
                         ::testing::ValuesIn(tensorParallelCases()),
                         [](const auto &info) { return info.param.name; });

} // namespace
