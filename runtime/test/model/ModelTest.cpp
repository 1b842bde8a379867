//===- ModelTest.cpp - weights binding, inputs, calls into the code -------===//
//
// The first half runs on FakeModel (exactly checkable entry points); the
// second on artifacts hag-compile built from examples/*.yaml.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/Model.h"
#include "hag/runtime/Collectives.h"
#include "hag/runtime/CudaSession.h"

#include "hag/runtime/SafeTensors.h"
#include "hag/runtime/WeightInit.h"

#include "ModelTestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <cmath>
#include <random>
#include <thread>

using namespace hag::rt;
using namespace hag::rt::test;
using ::testing::HasSubstr;

namespace {

/// A Model over FakeModel with `manifest`, weights not bound.
Model fakeModel(const std::string &manifest) {
  std::vector<uint8_t> image = packArtifact(manifest, fakeCode());
  Result<Artifact> a = Artifact::load(image.data(), image.size(), "fake.hag");
  EXPECT_TRUE(a.ok()) << a.message();
  return Model(std::move(*a));
}

HostTensor tokens(std::vector<int64_t> shape, std::vector<int32_t> values) {
  return *HostTensor::fromValues(DType::I32, std::move(shape), values);
}

HostTensor floats(std::vector<int64_t> shape, std::vector<float> values) {
  return *HostTensor::fromValues(DType::F32, std::move(shape), values);
}

std::string runError(const Model &m, const std::string &entry,
                     const HostTensor &input) {
  Result<HostTensor> r = m.run(entry, input);
  EXPECT_FALSE(r.ok());
  return r.ok() ? std::string() : r.message();
}

/// Fake weights: embed[v, d] = v + d / 10, p_i = 0.
TensorMap fakeWeights() {
  TensorMap w;
  std::vector<float> e;
  for (int v = 0; v < 8; ++v)
    for (int d = 0; d < 4; ++d)
      e.push_back(static_cast<float>(v) + static_cast<float>(d) / 10.0f);
  w["embed"] = floats({8, 4}, e);
  for (int i = 0; i < 70; ++i)
    w["p" + std::to_string(i)] = floats({1}, {0.0f});
  return w;
}

//===----------------------------------------------------------------------===//
// FakeModel: the calling convention
//===----------------------------------------------------------------------===//

TEST(ModelFake, ForwardPassesTokensAndWeights) {
  Model m = fakeModel(fakeLmManifest());
  ASSERT_TRUE(m.setWeights(fakeWeights(), "w").ok());
  Result<HostTensor> r = m.run("forward", tokens({2, 3}, {0, 1, 2, 7, 6, 5}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->shape, (std::vector<int64_t>{2, 3, 8}));
  const float *p = r->dataAs<float>();
  const std::vector<int32_t> t = {0, 1, 2, 7, 6, 5};
  for (int i = 0; i < 6; ++i)
    for (int v = 0; v < 8; ++v) {
      float want = 0;
      for (int d = 0; d < 4; ++d)
        want += (t[i] + d / 10.0f) * (v + d / 10.0f);
      EXPECT_FLOAT_EQ(p[i * 8 + v], want) << i << " " << v;
    }
  Result<HostTensor> loss = m.run("loss", tokens({1, 3}, {1, 2, 3}));
  ASSERT_TRUE(loss.ok()) << loss.message();
  EXPECT_EQ(loss->rank(), 0);
  EXPECT_FLOAT_EQ(loss->dataAs<float>()[0], 6.0f); // 1+2+3 + embed[0,0]=0
}

TEST(ModelFake, SeventyParametersArriveInOrder) {
  Model m = fakeModel(fakeLmManifest());
  TensorMap w = fakeWeights();
  float want = 0.5f;
  for (int i = 0; i < 70; ++i) {
    float v = static_cast<float>(i % 7) - 3.0f;
    w["p" + std::to_string(i)] = floats({1}, {v});
    want += static_cast<float>(i + 1) * v;
  }
  ASSERT_TRUE(m.setWeights(std::move(w), "w").ok());
  Result<HostTensor> r = m.run("many", floats({1, 1}, {0.5f}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_FLOAT_EQ(r->dataAs<float>()[0], want);
}

//===----------------------------------------------------------------------===//
// One rank's program of a parallel split (manifest "parallel", "shard")
//===----------------------------------------------------------------------===//

namespace {

/// fakeLmManifest() as rank program of a tensor-parallel split in two, with
/// p5 sharded (its rank slice [1] of a whole [2]).
std::string splitManifest() {
  std::string m = fakeLmManifest();
  std::string p5 = R"({"name": "p5", "dtype": "f32", "shape": [1]})";
  size_t at = m.find(p5);
  EXPECT_NE(at, std::string::npos);
  m.replace(at, p5.size(),
            R"({"name": "p5", "dtype": "f32", "shape": [1],
                "shard": {"dim": 0, "parts": 2}})");
  m.replace(m.find("\"parameters\": ["), 0,
            "\"parallel\": {\"tensor\": 2, \"data\": 1},\n  ");
  return m;
}

/// A communicator for one process that claims a place in a layout; these
/// tests' entries never call it.
struct FakeCommunicator : Communicator {
  ParallelLayout place;
  explicit FakeCommunicator(ParallelLayout l) : place(l) {}
  const ParallelLayout &layout() const override { return place; }
  void allReduce(float *, int64_t, Group, bool) override {
    ADD_FAILURE() << "unexpected collective";
  }
};

/// Installs a communicator for the scope.
struct Installed {
  explicit Installed(Communicator *c) { setCommunicator(c); }
  ~Installed() { setCommunicator(nullptr); }
};

} // namespace

TEST(ModelFake, ParallelManifestIsParsed) {
  Model m = fakeModel(splitManifest());
  const ArtifactManifest &a = m.artifact().manifest();
  EXPECT_EQ(a.parallel.tensor, 2);
  EXPECT_EQ(a.parallel.data, 1);
  EXPECT_TRUE(a.parallel.parallel());
  for (const TensorSpec &p : a.parameters) {
    EXPECT_EQ(p.shardDim, p.name == "p5" ? 0 : -1) << p.name;
    EXPECT_EQ(p.shardParts, p.name == "p5" ? 2 : 1) << p.name;
  }
  Model whole = fakeModel(fakeLmManifest());
  EXPECT_FALSE(whole.artifact().manifest().parallel.parallel());
}

TEST(ModelFake, ShardedWeightsKeepTheRanksSlice) {
  for (int64_t rank : {0, 1}) {
    Model m = fakeModel(splitManifest());
    ASSERT_TRUE(m.setTensorRank(rank).ok());
    TensorMap w = fakeWeights();
    w["p5"] = floats({2}, {10.0f, 20.0f}); // the whole tensor
    ASSERT_TRUE(m.setWeights(std::move(w), "w").ok());
    EXPECT_EQ(m.weights().at("p5").shape, std::vector<int64_t>({1}));
    EXPECT_EQ(m.weights().at("p5").dataAs<float>()[0], rank ? 20.0f : 10.0f);
    // The right layout runs; p5 enters "many" with weight 6.
    ParallelLayout l;
    l.tensor = 2;
    l.rank = static_cast<int>(rank);
    FakeCommunicator c(l);
    Installed scope(&c);
    Result<HostTensor> r = m.run("many", floats({1, 1}, {0.5f}));
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_FLOAT_EQ(r->dataAs<float>()[0], 0.5f + 6.0f * (rank ? 20 : 10));
  }
  // A slice already is taken as is; a tensor of neither shape is an error.
  Model m = fakeModel(splitManifest());
  TensorMap w = fakeWeights();
  w["p5"] = floats({1}, {3.0f});
  ASSERT_TRUE(m.setWeights(std::move(w), "w").ok());
  EXPECT_EQ(m.weights().at("p5").dataAs<float>()[0], 3.0f);
  TensorMap bad = fakeWeights();
  bad["p5"] = floats({3}, {1, 2, 3});
  EXPECT_EQ(m.setWeights(std::move(bad), "w").message(),
            "w: 'p5' has shape [3], expected [1]");
  // The rank is chosen before weights are bound, and must exist.
  EXPECT_THAT(m.setTensorRank(1).message(),
              HasSubstr("set the tensor rank before binding weights"));
  Model other = fakeModel(splitManifest());
  EXPECT_THAT(other.setTensorRank(2).message(),
              HasSubstr("tensor rank 2 is out of range: the program is split "
                        "2 ways"));
}

TEST(ModelFake, LoadedShardsAreReadAsSlices) {
  // The whole model's file: each tensor-parallel rank reads its slice of
  // p5 from it (and the whole of the replicated weights).
  TempDir dir;
  std::string path = dir.path("whole.safetensors");
  TensorMap whole = fakeWeights();
  whole["p5"] = floats({2}, {10.0f, 20.0f});
  ASSERT_TRUE(writeSafeTensors(path, whole).ok());
  for (int64_t rank : {0, 1}) {
    Model m = fakeModel(splitManifest());
    ASSERT_TRUE(m.setTensorRank(rank).ok());
    Status s = m.loadWeights(path);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(m.weights().at("p5").shape, std::vector<int64_t>({1}));
    EXPECT_EQ(m.weights().at("p5").dataAs<float>()[0], rank ? 20.0f : 10.0f);
    EXPECT_TRUE(bitwiseEqual(m.weights().at("p1"), whole.at("p1")));
  }
  // A tensor of neither shape is still an error naming it.
  TensorMap bad = fakeWeights();
  bad["p5"] = floats({3}, {1, 2, 3});
  ASSERT_TRUE(writeSafeTensors(dir.path("bad.safetensors"), bad).ok());
  Model m = fakeModel(splitManifest());
  EXPECT_THAT(m.loadWeights(dir.path("bad.safetensors")).message(),
              HasSubstr("'p5' has shape [3], expected [1]"));
}

TEST(ModelFake, InitialisedShardsAreSlicesOfTheWholeInit) {
  // p5 is initialised whole ([2], as the unsplit model has it) and sliced.
  TensorSpec whole{"p5", {2}, DType::F32};
  ModelFacts facts = fakeModel(fakeLmManifest()).facts();
  Result<HostTensor> w = initParameter(whole, facts, 11);
  ASSERT_TRUE(w.ok());
  for (int64_t rank : {0, 1}) {
    Model m = fakeModel(splitManifest());
    ASSERT_TRUE(m.setTensorRank(rank).ok());
    ASSERT_TRUE(m.initWeights(11).ok());
    EXPECT_EQ(m.weights().at("p5").dataAs<float>()[0],
              w->dataAs<float>()[rank]);
  }
}

TEST(ModelFake, RankProgramNeedsItsCommunicator) {
  Model m = fakeModel(splitManifest());
  ASSERT_TRUE(m.setWeights(fakeWeights(), "w").ok());
  EXPECT_EQ(runError(m, "many", floats({1, 1}, {0.5f})),
            "many: fake.hag is one rank's program of a parallel split "
            "(tensor 2 x data 1 = 2 ranks): run it with mpirun -np 2 "
            "hag-run ...");
  ParallelLayout four;
  four.tensor = 4;
  FakeCommunicator wrong(four);
  Installed scope(&wrong);
  EXPECT_THAT(runError(m, "many", floats({1, 1}, {0.5f})),
              HasSubstr("the communicator's layout (rank 0 (tensor 0 of 4, "
                        "data 0 of 1)) does not match the program's split "
                        "(tensor 2 x data 1"));
}

TEST(ModelFake, ResultAliasingTheInputIsCopiedNotFreed) {
  Model m = fakeModel(fakeLmManifest());
  ASSERT_TRUE(m.setWeights(fakeWeights(), "w").ok());
  HostTensor x = floats({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  for (int i = 0; i < 3; ++i) { // a wrong free() would show under ASan
    Result<HostTensor> r = m.run("alias", x);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_TRUE(bitwiseEqual(*r, x));
  }
}

TEST(ModelFake, StridedResultIsCopiedInRowMajorOrder) {
  Model m = fakeModel(fakeLmManifest());
  ASSERT_TRUE(m.setWeights(fakeWeights(), "w").ok());
  Result<HostTensor> r = m.run("transpose", floats({2, 3}, {1, 2, 3, 4, 5, 6}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(r->toVector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(ModelFake, AttentionInputWithoutBatch) {
  Model m = fakeModel(fakeAttentionManifest());
  ASSERT_TRUE(m.setWeights({}, "w").ok());
  std::vector<float> x(3 * 4);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(i);
  Result<HostTensor> batched = m.run("forward", floats({1, 3, 4}, x));
  Result<HostTensor> plain = m.run("forward", floats({3, 4}, x));
  ASSERT_TRUE(batched.ok() && plain.ok()) << plain.message();
  EXPECT_EQ(batched->shape, (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(plain->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(plain->toVector<float>(), batched->toVector<float>());
  EXPECT_EQ(plain->dataAs<float>()[5], 10.0f);
}

TEST(ModelFake, WrongResultShapeIsAnError) {
  Model m = fakeModel(fakeAttentionManifest());
  ASSERT_TRUE(m.setWeights({}, "w").ok());
  EXPECT_EQ(runError(m, "badshape", floats({1, 1, 4}, {1, 2, 3, 4})),
            "badshape: the code returned shape [1, 1, 3], expected "
            "[batch, seq, 4]");
}

TEST(ModelFake, InputErrors) {
  Model m = fakeModel(fakeLmManifest());
  EXPECT_EQ(runError(m, "forward", tokens({1, 2}, {1, 2})),
            "fake.hag: no weights bound (initialise or load weights before "
            "running 'forward')");
  ASSERT_TRUE(m.setWeights(fakeWeights(), "w").ok());
  EXPECT_EQ(runError(m, "backward", tokens({1, 2}, {1, 2})),
            "fake.hag has no entry 'backward' (it has: forward, loss, many, "
            "alias, transpose)");
  EXPECT_EQ(runError(m, "forward", tokens({1, 1, 2}, {1, 2})),
            "forward: input 'tokens' has shape [1, 1, 2], expected "
            "[batch, seq]");
  EXPECT_EQ(runError(m, "forward", floats({1, 2}, {1, 2})),
            "forward: input 'tokens' has dtype f32, expected integer token "
            "ids (i32 or i64)");
  EXPECT_EQ(runError(m, "forward", tokens({1, 17}, std::vector<int32_t>(17))),
            "forward: sequence length 17 exceeds max_seq 16");
  EXPECT_EQ(runError(m, "forward", tokens({1, 3}, {1, 8, 2})),
            "forward: input 'tokens': token 8 at [0, 1] is outside the "
            "vocabulary [0, 8)");
  EXPECT_EQ(runError(m, "forward", tokens({2, 2}, {1, 2, 3, -1})),
            "forward: input 'tokens': token -1 at [1, 1] is outside the "
            "vocabulary [0, 8)");
  EXPECT_EQ(runError(m, "forward", tokens({0, 2}, {})),
            "forward: input 'tokens' has shape [0, 2]: the batch must be at "
            "least 1");
  EXPECT_EQ(runError(m, "forward", tokens({1, 0}, {})),
            "forward: input 'tokens' has shape [1, 0]: every dynamic "
            "dimension must be at least 1 (an empty sequence)");
  EXPECT_THAT(runError(m, "loss", tokens({1, 1}, {3})),
              HasSubstr("loss: loss needs at least 2 tokens per sequence"));
  EXPECT_EQ(runError(m, "alias", floats({2, 3}, {1, 2, 3, 4, 5, 6})),
            "alias: input 'x' has shape [2, 3], expected [batch, 4]");
  EXPECT_EQ(runError(m, "alias",
                     *HostTensor::fromValues<double>(DType::F64, {1, 4},
                                                     {1, 2, 3, 4})),
            "alias: input 'x' has dtype f64, expected f32");
  // A hand-built tensor whose bytes do not match its shape.
  HostTensor broken = tokens({1, 2}, {1, 2});
  broken.shape = {1, 3};
  EXPECT_THAT(runError(m, "forward", broken), HasSubstr("forward: input"));
  EXPECT_EQ(m.run("forward", std::vector<HostTensor>{}).message(),
            "forward: the entry takes 1 inputs, got 0");
}

TEST(ModelFake, IntegerTokenTypesAreConverted) {
  Model m = fakeModel(fakeLmManifest());
  ASSERT_TRUE(m.setWeights(fakeWeights(), "w").ok());
  Result<HostTensor> want = m.run("forward", tokens({1, 3}, {3, 0, 7}));
  ASSERT_TRUE(want.ok());
  std::vector<HostTensor> variants = {
      *HostTensor::fromValues<int64_t>(DType::I64, {1, 3}, {3, 0, 7}),
      *HostTensor::fromValues<uint32_t>(DType::U32, {1, 3}, {3, 0, 7}),
      *HostTensor::fromValues<uint16_t>(DType::U16, {1, 3}, {3, 0, 7}),
      *HostTensor::fromValues<uint8_t>(DType::U8, {1, 3}, {3, 0, 7}),
  };
  for (const HostTensor &t : variants) {
    Result<HostTensor> r = m.run("forward", t);
    ASSERT_TRUE(r.ok()) << dtypeName(t.dtype) << ": " << r.message();
    EXPECT_TRUE(bitwiseEqual(*r, *want)) << dtypeName(t.dtype);
  }
  // An i64 id beyond i32 is still reported as itself.
  EXPECT_EQ(runError(m, "forward",
                     *HostTensor::fromValues<int64_t>(DType::I64, {1, 1},
                                                      {1LL << 40})),
            "forward: input 'tokens': token 1099511627776 at [0, 0] is "
            "outside the vocabulary [0, 8)");
  // Tokens without a batch dimension.
  Result<HostTensor> plain = m.run("forward", tokens({3}, {3, 0, 7}));
  ASSERT_TRUE(plain.ok()) << plain.message();
  EXPECT_EQ(plain->shape, (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(plain->toVector<float>(), want->toVector<float>());
}

TEST(ModelFake, WeightsBindingErrors) {
  Model m = fakeModel(fakeLmManifest());
  TensorMap w = fakeWeights();
  w.erase("p3");
  w["extra"] = floats({1}, {0});
  w["embed"] = floats({4, 8}, std::vector<float>(32));
  Status s = m.setWeights(std::move(w), "w.safetensors");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "w.safetensors: missing tensor 'p3' [1] f32; unexpected tensor "
            "'extra'; 'embed' has shape [4, 8], expected [8, 4]");
  EXPECT_FALSE(m.hasWeights());
  // Integer weights are not floats.
  TensorMap ints = fakeWeights();
  ints["p0"] = *HostTensor::fromValues<int32_t>(DType::I32, {1}, {1});
  EXPECT_EQ(m.setWeights(std::move(ints), "w").message(),
            "w: 'p0' has dtype i32, expected f32");
}

TEST(ModelFake, SaveAndLoadWeights) {
  TempDir dir;
  Model m = fakeModel(fakeLmManifest());
  EXPECT_THAT(m.saveWeights(dir.path("none.safetensors")).message(),
              HasSubstr("no weights to save"));
  ASSERT_TRUE(m.initWeights(5).ok());
  std::string path = dir.path("w.safetensors");
  ASSERT_TRUE(m.saveWeights(path).ok());
  Result<SafeTensorsFile> f = readSafeTensors(path);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(f->metadata.at("format"), "pt");
  EXPECT_EQ(f->metadata.at("hag_artifact"), "fake.hag");
  EXPECT_EQ(f->metadata.at("hag_version"), "0.1.0");

  // Other float dtypes load and convert to f32.
  TensorMap halves;
  for (const auto &kv : f->tensors)
    halves[kv.first] = *convertFromF32(kv.second, DType::BF16);
  std::string bf16Path = dir.path("bf16.safetensors");
  ASSERT_TRUE(writeSafeTensors(bf16Path, halves).ok());
  Model other = fakeModel(fakeLmManifest());
  ASSERT_TRUE(other.loadWeights(bf16Path).ok());
  const HostTensor &embed = other.weights().at("embed");
  EXPECT_EQ(embed.dtype, DType::F32);
  EXPECT_NEAR(embed.dataAs<float>()[0],
              f->tensors.at("embed").dataAs<float>()[0], 1e-3);

  // A failed load keeps the bound weights.
  TensorMap bad = f->tensors;
  bad.erase("embed");
  ASSERT_TRUE(writeSafeTensors(dir.path("bad.safetensors"), bad).ok());
  Status s = other.loadWeights(dir.path("bad.safetensors"));
  EXPECT_THAT(s.message(), HasSubstr("bad.safetensors: missing tensor "
                                     "'embed' [8, 4] f32"));
  EXPECT_TRUE(other.hasWeights());
  EXPECT_EQ(other.weights().count("embed"), 1u);
  EXPECT_THAT(other.loadWeights(dir.path("absent.safetensors")).message(),
              HasSubstr("absent.safetensors"));
}

//===----------------------------------------------------------------------===//
// Initialisation rules (no artifact needed)
//===----------------------------------------------------------------------===//

TEST(WeightInit, Rules) {
  ModelFacts lm;
  lm.kind = ModelFacts::Kind::LM;
  lm.layers = 8;
  ModelFacts att;
  att.kind = ModelFacts::Kind::Attention;
  using K = ParameterInit::Kind;
  EXPECT_EQ(parameterInit("embed", lm).kind, K::Normal);
  EXPECT_DOUBLE_EQ(parameterInit("embed", lm).stddev, 0.02);
  EXPECT_DOUBLE_EQ(parameterInit("lm_head", lm).stddev, 0.02);
  EXPECT_DOUBLE_EQ(parameterInit("layers.3.attn.wq", lm).stddev, 0.02);
  EXPECT_DOUBLE_EQ(parameterInit("layers.3.attn.gate.w2", lm).stddev, 0.02);
  EXPECT_DOUBLE_EQ(parameterInit("layers.3.attn.wo", lm).stddev, 0.005);
  EXPECT_DOUBLE_EQ(parameterInit("layers.3.mlp.w_down", lm).stddev, 0.005);
  EXPECT_DOUBLE_EQ(parameterInit("layers.3.mlp.w_up", lm).stddev, 0.02);
  EXPECT_DOUBLE_EQ(parameterInit("attn.wo", att).stddev, 0.02 / std::sqrt(2.0));
  EXPECT_EQ(parameterInit("attn.gate.b1", att).kind, K::Zeros);
  EXPECT_EQ(parameterInit("layers.0.attn.gate.b2", lm).kind, K::Zeros);
  EXPECT_EQ(parameterInit("layers.0.attn_norm.scale", lm).kind, K::Ones);
  EXPECT_EQ(parameterInit("layers.0.mlp_norm.scale", lm).kind, K::Ones);
  EXPECT_EQ(parameterInit("final_norm.scale", lm).kind, K::Ones);
  EXPECT_EQ(parameterInit("attn.conv.k.2", att).kind, K::Ones);
  EXPECT_EQ(parameterInit("layers.1.attn.conv.v.5", lm).kind, K::Ones);
}

TEST(WeightInit, StreamsDependOnSeedAndNameOnly) {
  std::vector<float> a(1001), b(1001), c(1001), d(1001);
  fillNormal(a.data(), a.size(), 1.0, 42, "x");
  fillNormal(b.data(), b.size(), 1.0, 42, "x");
  fillNormal(c.data(), c.size(), 1.0, 43, "x");
  fillNormal(d.data(), d.size(), 1.0, 42, "y");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  // A prefix of a longer draw is the shorter draw.
  std::vector<float> shorter(10);
  fillNormal(shorter.data(), shorter.size(), 1.0, 42, "x");
  EXPECT_TRUE(std::equal(shorter.begin(), shorter.end(), a.begin()));
  // Standard normal moments over 10^5 samples.
  std::vector<float> big(100000);
  fillNormal(big.data(), big.size(), 1.0, 7, "big");
  double sum = 0, sq = 0, quart = 0;
  for (float v : big) {
    sum += v;
    sq += double(v) * v;
    quart += double(v) * v * v * v;
  }
  double n = double(big.size());
  EXPECT_NEAR(sum / n, 0.0, 0.015);
  EXPECT_NEAR(sq / n, 1.0, 0.015);
  EXPECT_NEAR(quart / n, 3.0, 0.1); // kurtosis of a normal
  // Other float dtypes are drawn in f32 and converted; integers are refused.
  ModelFacts lm;
  Result<HostTensor> h = initParameter({"w", {4}, DType::F64}, lm, 1);
  Result<HostTensor> f = initParameter({"w", {4}, DType::F32}, lm, 1);
  ASSERT_TRUE(h.ok() && f.ok());
  EXPECT_EQ(h->dtype, DType::F64);
  EXPECT_EQ(float(h->dataAs<double>()[3]), f->dataAs<float>()[3]);
  EXPECT_THAT(initParameter({"w", {4}, DType::I32}, lm, 1).message(),
              HasSubstr("only floating-point weights are initialised"));
}

//===----------------------------------------------------------------------===//
// Compiled artifacts
//===----------------------------------------------------------------------===//

Model openCompiled(const std::string &path) {
  Result<Model> m = Model::open(path);
  EXPECT_TRUE(m.ok()) << m.message();
  return std::move(*m);
}

double stdOf(const HostTensor &t) {
  const float *p = t.dataAs<float>();
  double sum = 0, sq = 0;
  int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    sum += p[i];
    sq += double(p[i]) * p[i];
  }
  double mean = sum / double(n);
  return std::sqrt(sq / double(n) - mean * mean);
}

/// The largest |a - b| over two f32 tensors of the same size (results of
/// parallel code may differ in the order of their sums).
double maxAbsDifference(const HostTensor &a, const HostTensor &b) {
  std::vector<float> x = a.toVector<float>(), y = b.toVector<float>();
  double worst = x.size() == y.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    worst = std::max(worst, std::fabs(double(x[i]) - double(y[i])));
  return worst;
}

bool allEqual(const HostTensor &t, float value) {
  for (float v : t.toVector<float>())
    if (v != value)
      return false;
  return true;
}

/// Random tokens in [0, vocab) from a simple generator.
HostTensor randomTokens(int64_t batch, int64_t n, int64_t vocab,
                        uint32_t seed) {
  std::vector<int32_t> t(static_cast<size_t>(batch * n));
  uint32_t x = seed * 2654435761u + 1;
  for (int32_t &v : t) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v = static_cast<int32_t>(x % static_cast<uint32_t>(vocab));
  }
  return tokens({batch, n}, t);
}

TEST(ModelCompiled, InitIsDeterministic) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model a = openCompiled(path), b = openCompiled(path);
  ASSERT_TRUE(a.initWeights(1234).ok());
  ASSERT_TRUE(b.initWeights(1234).ok());
  ASSERT_EQ(a.weights().size(), a.parameters().size());
  for (const auto &kv : a.weights())
    EXPECT_TRUE(bitwiseEqual(kv.second, b.weights().at(kv.first))) << kv.first;
  ASSERT_TRUE(b.initWeights(1235).ok());
  EXPECT_FALSE(bitwiseEqual(a.weights().at("embed"), b.weights().at("embed")));
  EXPECT_FALSE(bitwiseEqual(a.weights().at("layers.1.attn.wo"),
                            b.weights().at("layers.1.attn.wo")));
  // Same-shaped parameters get different values.
  EXPECT_FALSE(bitwiseEqual(a.weights().at("layers.0.attn.wq"),
                            a.weights().at("layers.0.attn.wk")));
}

TEST(ModelCompiled, InitStatistics) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(0).ok());
  const TensorMap &w = m.weights();
  // 32768 samples: the standard error of the std is about 0.02 / 256.
  EXPECT_NEAR(stdOf(w.at("embed")), 0.02, 0.0005);
  EXPECT_NEAR(stdOf(w.at("layers.0.mlp.w_up")), 0.02, 0.0005);
  // layers = 2: 0.02 / sqrt(4).
  EXPECT_NEAR(stdOf(w.at("layers.1.attn.wo")), 0.01, 0.0005);
  EXPECT_NEAR(stdOf(w.at("layers.1.mlp.w_down")), 0.01, 0.0003);
  EXPECT_TRUE(allEqual(w.at("layers.0.attn_norm.scale"), 1.0f));
  EXPECT_TRUE(allEqual(w.at("layers.1.mlp_norm.scale"), 1.0f));
  EXPECT_TRUE(allEqual(w.at("final_norm.scale"), 1.0f));
  EXPECT_TRUE(allEqual(w.at("layers.0.attn.gate.b1"), 0.0f));
  EXPECT_TRUE(allEqual(w.at("layers.1.attn.gate.b2"), 0.0f));
}

// The attention kind's 'gate' entry (the benchmark's way of timing the gate
// apart from 'core') computes spec section 2's memory gate: checked against
// the formula in double, with nonzero biases so that they are exercised.
TEST(ModelCompiled, GateEntryIsTheSpecGate) {
  std::string path = compiledArtifact("pyramid_attention");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(4).ok());
  const int64_t D = m.facts().dModel, n = 37;
  TensorMap w = m.weights();
  const int64_t dg = w.at("attn.gate.w1").shape[0];
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill = [&](HostTensor &t, float sd) {
    float *p = t.dataAs<float>();
    for (int64_t i = 0; i < t.numel(); ++i)
      p[i] = sd * normal(rng);
  };
  fill(w.at("attn.gate.b1"), 0.1f);
  fill(w.at("attn.gate.b2"), 0.1f);
  fill(w.at("attn.gate.w2"), 0.2f);
  ASSERT_TRUE(m.setWeights(w, "test").ok());
  Result<HostTensor> h = HostTensor::zeros(DType::F32, {1, n, D});
  ASSERT_TRUE(h.ok());
  fill(*h, 1.0f);
  Result<HostTensor> g = m.run("gate", *h);
  ASSERT_TRUE(g.ok()) << g.message();
  ASSERT_EQ(g->shape, (std::vector<int64_t>{1, n}));
  const double tau = m.artifact().manifest().attention.temperature;
  ASSERT_GT(tau, 0.0);
  const float *x = h->dataAs<float>(), *w1 = w.at("attn.gate.w1").dataAs<float>(),
              *b1 = w.at("attn.gate.b1").dataAs<float>(),
              *w2 = w.at("attn.gate.w2").dataAs<float>();
  const double b2 = w.at("attn.gate.b2").dataAs<float>()[0];
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double s = b2;
    for (int64_t j = 0; j < dg; ++j) {
      double a = b1[j];
      for (int64_t k = 0; k < D; ++k)
        a += double(w1[j * D + k]) * x[i * D + k];
      s += w2[j] * (a / (1.0 + std::exp(-a)));
    }
    double expect = 1.0 / (1.0 + std::exp(-s / tau));
    worst = std::max(worst, std::abs(expect - g->dataAs<float>()[i]));
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(ModelCompiled, InitStatisticsAttentionAndConv) {
  std::string att = compiledArtifact("pyramid_attention");
  HAGRT_REQUIRE_COMPILED(att);
  Model a = openCompiled(att);
  ASSERT_TRUE(a.initWeights(3).ok());
  EXPECT_NEAR(stdOf(a.weights().at("attn.wq")), 0.02, 0.0003);
  EXPECT_NEAR(stdOf(a.weights().at("attn.wo")), 0.02 / std::sqrt(2.0), 0.0003);
  Model c = openCompiled(compiledArtifact("conv_gqa_lm"));
  ASSERT_TRUE(c.initWeights(3).ok());
  EXPECT_TRUE(allEqual(c.weights().at("layers.0.attn.conv.k.2"), 1.0f));
  EXPECT_TRUE(allEqual(c.weights().at("layers.3.attn.conv.v.5"), 1.0f));
  EXPECT_NEAR(stdOf(c.weights().at("lm_head")), 0.02, 0.0005);
  // layers = 4: 0.02 / sqrt(8).
  EXPECT_NEAR(stdOf(c.weights().at("layers.2.mlp.w_down")),
              0.02 / std::sqrt(8.0), 0.0003);
}

TEST(ModelCompiled, SaveLoadRoundTripIsBitwise) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  TempDir dir;
  Model a = openCompiled(path);
  ASSERT_TRUE(a.initWeights(99).ok());
  std::string w = dir.path("w.safetensors");
  ASSERT_TRUE(a.saveWeights(w).ok());
  Model b = openCompiled(path);
  ASSERT_TRUE(b.loadWeights(w).ok());
  ASSERT_EQ(a.weights().size(), b.weights().size());
  for (const auto &kv : a.weights())
    EXPECT_TRUE(bitwiseEqual(kv.second, b.weights().at(kv.first))) << kv.first;
  Result<SafeTensorsFile> f = readSafeTensors(w);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->metadata.at("hag_artifact"), "tiny_lm.hag");
  // Weights of another model do not bind.
  Model c = openCompiled(compiledArtifact("conv_gqa_lm"));
  Status s = c.loadWeights(w);
  EXPECT_THAT(s.message(),
              HasSubstr("w.safetensors: missing tensor "
                        "'layers.0.attn.conv.k.2' [2, 4, 32] f32"));
  EXPECT_THAT(s.message(), HasSubstr("more problems"));
}

TEST(ModelCompiled, ForwardShapeAndFiniteValues) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(0).ok());
  for (int64_t n : {1, 7, 64, 130}) {
    Result<HostTensor> r = m.run("forward", randomTokens(2, n, 256, 1));
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->shape, (std::vector<int64_t>{2, n, 256}));
    for (float v : r->toVector<float>())
      ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(ModelCompiled, BatchRowsAreIndependent) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(0).ok());
  HostTensor both = randomTokens(2, 20, 256, 5);
  std::vector<int32_t> t = both.toVector<int32_t>();
  Result<HostTensor> r = m.run("forward", both);
  Result<HostTensor> second =
      m.run("forward",
            tokens({1, 20}, std::vector<int32_t>(t.begin() + 20, t.end())));
  ASSERT_TRUE(r.ok() && second.ok());
  std::vector<float> all = r->toVector<float>(),
                     two = second->toVector<float>();
  for (size_t i = 0; i < two.size(); ++i)
    ASSERT_NEAR(all[two.size() + i], two[i], 1e-5) << i;
}

TEST(ModelCompiled, ForwardMatchesAHandComputationWithBlocksSwitchedOff) {
  // With attn.wo = 0 and mlp.w_down = 0 every block adds zero, so the
  // logits are RMSNorm(embed[token]) * final_norm.scale . embed^T.
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  Result<TensorMap> w = initialWeights(m.parameters(), m.facts(), 11);
  ASSERT_TRUE(w.ok());
  for (auto &kv : *w) {
    const std::string &name = kv.first;
    if (name.find("attn.wo") != std::string::npos ||
        name.find("mlp.w_down") != std::string::npos)
      std::fill(kv.second.data.begin(), kv.second.data.end(), 0);
  }
  std::vector<float> scale(128);
  for (int d = 0; d < 128; ++d)
    scale[d] = 0.5f + 0.01f * static_cast<float>(d);
  (*w)["final_norm.scale"] = floats({128}, scale);
  TensorMap weights = *w;
  ASSERT_TRUE(m.setWeights(std::move(*w), "w").ok());
  HostTensor t = tokens({1, 4}, {65, 0, 255, 65});
  Result<HostTensor> r = m.run("forward", t);
  ASSERT_TRUE(r.ok()) << r.message();
  const float *e = weights.at("embed").dataAs<float>();
  const float *logits = r->dataAs<float>();
  for (int i = 0; i < 4; ++i) {
    const float *x = e + 128 * t.dataAs<int32_t>()[i];
    double ms = 0;
    for (int d = 0; d < 128; ++d)
      ms += double(x[d]) * x[d];
    double inv = 1.0 / std::sqrt(ms / 128 + 1e-5);
    for (int v = 0; v < 256; ++v) {
      double want = 0;
      for (int d = 0; d < 128; ++d)
        want += x[d] * inv * scale[d] * e[128 * v + d];
      ASSERT_NEAR(logits[i * 256 + v], want, 1e-4) << i << " " << v;
    }
  }
}

TEST(ModelCompiled, LossAtInitIsNearLogVocab) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(0).ok());
  Result<HostTensor> loss = m.run("loss", randomTokens(4, 100, 256, 9));
  ASSERT_TRUE(loss.ok()) << loss.message();
  ASSERT_EQ(loss->rank(), 0);
  EXPECT_NEAR(loss->dataAs<float>()[0], std::log(256.0), 0.3);
}

TEST(ModelCompiled, InputErrors) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(0).ok());
  EXPECT_EQ(runError(m, "forward", randomTokens(1, 5000, 256, 1)),
            "forward: sequence length 5000 exceeds max_seq 2048");
  EXPECT_EQ(runError(m, "forward", tokens({1, 2}, {1, 256})),
            "forward: input 'tokens': token 256 at [0, 1] is outside the "
            "vocabulary [0, 256)");
  EXPECT_EQ(runError(m, "forward", floats({1, 2}, {1, 2})),
            "forward: input 'tokens' has dtype f32, expected integer token "
            "ids (i32 or i64)");
  EXPECT_EQ(runError(m, "forward", tokens({1, 1, 2}, {1, 2})),
            "forward: input 'tokens' has shape [1, 1, 2], expected "
            "[batch, seq]");
  EXPECT_THAT(runError(m, "loss", tokens({2, 1}, {1, 2})),
              HasSubstr("loss needs at least 2 tokens per sequence"));

  std::string att = compiledArtifact("pyramid_attention");
  Model a = openCompiled(att);
  ASSERT_TRUE(a.initWeights(0).ok());
  EXPECT_EQ(runError(a, "forward", floats({2, 256}, std::vector<float>(512))),
            "forward: input 'x' has shape [2, 256], expected "
            "[batch, seq, 512]");
}

TEST(ModelCompiled, AttentionWithAndWithoutBatch) {
  std::string path = compiledArtifact("pyramid_attention");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(2).ok());
  std::vector<float> x(70 * 512);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = std::sin(0.01f * static_cast<float>(i));
  Result<HostTensor> plain = m.run("forward", floats({70, 512}, x));
  Result<HostTensor> batched = m.run("forward", floats({1, 70, 512}, x));
  ASSERT_TRUE(plain.ok()) << plain.message();
  ASSERT_TRUE(batched.ok()) << batched.message();
  EXPECT_EQ(plain->shape, (std::vector<int64_t>{70, 512}));
  EXPECT_EQ(batched->shape, (std::vector<int64_t>{1, 70, 512}));
  std::vector<float> a = plain->toVector<float>(),
                     b = batched->toVector<float>();
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i]));
    ASSERT_NEAR(a[i], b[i], 1e-5) << i;
  }
}

TEST(ModelCompiled, ConcurrentRunsAgree) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(0).ok());
  HostTensor in = randomTokens(1, 40, 256, 3);
  Result<HostTensor> want = m.run("forward", in);
  ASSERT_TRUE(want.ok());
  std::vector<char> same(4, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      Result<HostTensor> r = m.run("forward", in);
      same[i] = r.ok() && r->shape == want->shape &&
                maxAbsDifference(*r, *want) <= 1e-5;
    });
  for (std::thread &t : threads)
    t.join();
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(same[i]) << "thread " << i;
}

//===----------------------------------------------------------------------===//
// Decoder: incremental decoding through the compiled "decode" entry
//===----------------------------------------------------------------------===//

TEST(DecoderCompiled, StepsGiveTheForwardRows) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(5).ok());
  // Two sequences over more than two query blocks (B = 64), so that the
  // compressed levels are in use.
  const int64_t batch = 2, n = 150, vocab = 256;
  HostTensor in = randomTokens(batch, n, vocab, 11);
  Result<HostTensor> full = m.run("forward", in);
  ASSERT_TRUE(full.ok()) << full.message();

  Result<Decoder> d = Decoder::create(m, batch);
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(d->capacity(), 2048);
  EXPECT_GT(d->cacheBytes(), 0u);
  const int32_t *ids = in.dataAs<int32_t>();
  const float *want = full->dataAs<float>();
  double worst = 0.0;
  std::vector<float> first;
  for (int64_t pos = 0; pos < n; ++pos) {
    Result<HostTensor> logits = d->step({ids[pos], ids[n + pos]});
    ASSERT_TRUE(logits.ok()) << logits.message();
    ASSERT_EQ(logits->shape, (std::vector<int64_t>{batch, vocab}));
    EXPECT_EQ(d->position(), pos + 1);
    const float *got = logits->dataAs<float>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t v = 0; v < vocab; ++v)
        worst = std::max(worst, std::abs(double(got[b * vocab + v]) -
                                         want[(b * n + pos) * vocab + v]));
    if (pos == 0)
      first.assign(got, got + batch * vocab);
  }
  EXPECT_LE(worst, 1e-4);

  // reset() empties the context: the first step again.
  d->reset();
  EXPECT_EQ(d->position(), 0);
  Result<HostTensor> again = d->step({ids[0], ids[n]});
  ASSERT_TRUE(again.ok());
  for (size_t i = 0; i < first.size(); ++i)
    ASSERT_NEAR(again->dataAs<float>()[i], first[i], 1e-6) << i;
}

TEST(DecoderCompiled, Errors) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  Result<Decoder> noWeights = Decoder::create(m);
  ASSERT_FALSE(noWeights.ok());
  EXPECT_THAT(noWeights.message(), HasSubstr("no weights bound"));
  ASSERT_TRUE(m.initWeights(1).ok());
  EXPECT_FALSE(Decoder::create(m, 0).ok());

  Result<Decoder> d = Decoder::create(m, 2);
  ASSERT_TRUE(d.ok());
  Result<HostTensor> r = d->step({1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), "decode: got 1 tokens for a batch of 2");
  r = d->step({1, 256});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), "decode: token 256 of sequence 1 is outside the "
                         "vocabulary [0, 256)");
  EXPECT_EQ(d->position(), 0);

  // The entry cannot be called statelessly.
  EXPECT_THAT(runError(m, "decode", randomTokens(1, 1, 256, 1)),
              HasSubstr("keeps state between calls"));

  // Models without a decode entry say why.
  Model att = openCompiled(compiledArtifact("pyramid_attention"));
  ASSERT_TRUE(att.initWeights(1).ok());
  Result<Decoder> none = Decoder::create(att);
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.message(),
              HasSubstr("cannot decode incrementally: it has no 'decode' "
                        "entry"));
}

TEST(DecoderCompiled, FullContextIsAnError) {
  std::string path = compiledArtifact("tiny_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(2).ok());
  Result<Decoder> d = Decoder::create(m);
  ASSERT_TRUE(d.ok());
  for (int64_t pos = 0; pos < d->capacity(); ++pos)
    ASSERT_TRUE(d->step({pos % 256}).ok()) << pos;
  Result<HostTensor> r = d->step({0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), "decode: the context is full (max_seq 2048 tokens)");
  EXPECT_EQ(d->position(), 2048);
}

// A pipeline split's stage decoders (stage<s>_decode, each on its own
// layers' caches) chained by hand give the whole model's logits, token by
// token; the forward's stage entries likewise.
TEST(DecoderCompiled, PipelineStagesChainToTheWholeModel) {
  std::string wholePath = compiledArtifact("whole_lm");
  HAGRT_REQUIRE_COMPILED(wholePath);
  Model whole = openCompiled(wholePath);
  Model split = openCompiled(compiledArtifact("pipeline_lm"));
  ASSERT_EQ(split.artifact().manifest().parallel.pipeline, 2);
  ASSERT_TRUE(whole.initWeights(5).ok());
  ASSERT_TRUE(split.setWeights(whole.weights(), "whole").ok());
  ParallelLayout layout;
  layout.pipeline = 2;
  FakeCommunicator c(layout);
  Installed scope(&c);

  Result<Decoder> d = Decoder::create(whole);
  Result<Decoder> s0 = Decoder::createStage(split, 0);
  Result<Decoder> s1 = Decoder::createStage(split, 1);
  ASSERT_TRUE(d.ok() && s0.ok() && s1.ok()) << s1.message();
  EXPECT_LT(s0->cacheBytes(), d->cacheBytes());
  EXPECT_EQ(s0->cacheBytes() + s1->cacheBytes(), d->cacheBytes());
  std::vector<int64_t> tokens;
  for (int64_t t = 0; t < 40; ++t)
    tokens.push_back((t * 37 + 11) % 256);
  for (int64_t t : tokens) {
    Result<HostTensor> want = d->step({t});
    Result<HostTensor> h = s0->stepStage({t}, nullptr);
    ASSERT_TRUE(want.ok() && h.ok()) << h.message();
    EXPECT_EQ(h->shape, std::vector<int64_t>({1, 1, 32}));
    Result<HostTensor> got = s1->stepStage({t}, &*h);
    ASSERT_TRUE(got.ok()) << got.message();
    ASSERT_EQ(got->shape, std::vector<int64_t>({1, 1, 256}));
    for (int64_t v = 0; v < 256; ++v)
      ASSERT_NEAR(got->dataAs<float>()[v], want->dataAs<float>()[v], 1e-5)
          << "token " << t << " logit " << v;
  }

  // The forward: stage0_forward, then stage1_logits, = the whole forward.
  HostTensor ids = randomTokens(2, 33, 256, 4);
  Result<HostTensor> logits = whole.run("forward", ids);
  Result<HostTensor> h = split.run("stage0_forward", ids);
  ASSERT_TRUE(logits.ok() && h.ok()) << h.message();
  Result<HostTensor> got =
      split.run("stage1_logits", std::vector<HostTensor>{ids, *h});
  ASSERT_TRUE(got.ok()) << got.message();
  ASSERT_EQ(got->shape, logits->shape);
  for (int64_t i = 0; i < got->numel(); ++i)
    ASSERT_NEAR(got->dataAs<float>()[i], logits->dataAs<float>()[i], 1e-5) << i;
}

TEST(DecoderCompiled, PipelineStageErrors) {
  std::string path = compiledArtifact("pipeline_lm");
  HAGRT_REQUIRE_COMPILED(path);
  Model split = openCompiled(path);
  ASSERT_TRUE(split.initWeights(5).ok());
  ParallelLayout layout;
  layout.pipeline = 2;
  FakeCommunicator c(layout);
  Installed scope(&c);
  // A split model has no whole-model decoder, and no third stage.
  EXPECT_THAT(Decoder::create(split).message(),
              HasSubstr("it has no 'decode' entry"));
  EXPECT_THAT(Decoder::createStage(split, 2).message(),
              HasSubstr("it has no 'stage2_decode' entry"));
  Result<Decoder> s0 = Decoder::createStage(split, 0);
  Result<Decoder> s1 = Decoder::createStage(split, 1);
  ASSERT_TRUE(s0.ok() && s1.ok());
  EXPECT_EQ(s1->step({1}).message(),
            "decode: 'stage1_decode' is a pipeline stage's; call stepStage "
            "with the previous stage's activation");
  EXPECT_EQ(s1->stepStage({1}, nullptr).message(),
            "decode: 'stage1_decode' needs the previous stage's activation");
  Result<HostTensor> h = s0->stepStage({1}, nullptr);
  ASSERT_TRUE(h.ok()) << h.message();
  EXPECT_EQ(s0->stepStage({1}, &*h).message(),
            "decode: 'stage0_decode' takes no activation");
  HostTensor wrong = floats({1, 1, 31}, std::vector<float>(31, 0.0f));
  EXPECT_EQ(s1->stepStage({1}, &wrong).message(),
            "decode: the activation is f32 [1, 1, 31], 'stage1_decode' takes "
            "f32 [1, 1, 32]");
  // Nothing advanced on the failed steps.
  EXPECT_EQ(s1->position(), 0);
  EXPECT_EQ(s0->position(), 1);
}

} // namespace

// A CUDA artifact keeps its weights on the device between calls
// (Model::callOnDevice): binding other weights must replace them there. On
// a GPU only (scripts/gpu-check.sh runs it with the bundle's artifact for
// the device, HAGRT_TEST_ARTIFACT_DIR); the build compiles one for sm_80.
TEST(ModelCuda, RebindingWeightsReachesTheDevice) {
  std::string path = compiledArtifact("pyramid_attention_cuda");
  HAGRT_REQUIRE_COMPILED(path);
  if (!test::haveCudaDriver())
    GTEST_SKIP() << "no NVIDIA driver on this machine";
  if (Status s = cuda::Session::start(0); !s.ok())
    GTEST_SKIP() << s.message();
  Model a = openCompiled(path);
  const int64_t D = a.facts().dModel, n = 100;
  Result<HostTensor> x = HostTensor::uninitialized(DType::F32, {1, n, D});
  ASSERT_TRUE(x.ok());
  for (int64_t i = 0; i < n * D; ++i)
    x->dataAs<float>()[i] = float(std::sin(0.01 * double(i)));
  auto forward = [&](Model &m) {
    Result<HostTensor> y = m.run("forward", *x);
    EXPECT_TRUE(y.ok()) << y.message();
    return y.ok() ? y->toVector<float>() : std::vector<float>();
  };
  ASSERT_TRUE(a.initWeights(1).ok());
  std::vector<float> y1 = forward(a);
  ASSERT_TRUE(a.initWeights(2).ok());
  std::vector<float> y2 = forward(a);
  Model b = openCompiled(path);
  ASSERT_TRUE(b.initWeights(2).ok());
  std::vector<float> y2Fresh = forward(b);
  ASSERT_FALSE(y1.empty());
  EXPECT_NE(y1, y2) << "the second weights did not reach the device";
  EXPECT_EQ(y2, y2Fresh);
  // And back: the first weights give the first result again, bit for bit.
  ASSERT_TRUE(a.initWeights(1).ok());
  EXPECT_EQ(forward(a), y1);
}

// A CUDA artifact's Decoder keeps its caches on the device between steps
// (Decoder::deviceState): its steps must still give the forward's rows
// (fp16 tolerance: the forward's attention runs on the Tensor Cores, the
// step's in f32), reset() must drop the device copies (the same steps again
// give the same bits), and two Decoders on one Model must not share them.
// On a GPU only, like the test above.
TEST(ModelCuda, DecoderCachesStayOnTheDevice) {
  std::string path = compiledArtifact("tiny_lm_cuda");
  HAGRT_REQUIRE_COMPILED(path);
  if (!test::haveCudaDriver())
    GTEST_SKIP() << "no NVIDIA driver on this machine";
  if (Status s = cuda::Session::start(0); !s.ok())
    GTEST_SKIP() << s.message();
  Model m = openCompiled(path);
  ASSERT_TRUE(m.initWeights(5).ok());
  // Past two query blocks (B = 64): the compressed levels are in use.
  const int64_t n = 150, vocab = m.facts().vocab;
  HostTensor in = randomTokens(1, n, vocab, 11);
  Result<HostTensor> full = m.run("forward", in);
  ASSERT_TRUE(full.ok()) << full.message();
  const int32_t *ids = in.dataAs<int32_t>();
  auto decode = [&](Decoder &d, int64_t from, int64_t to,
                    std::vector<float> &out) {
    for (int64_t pos = from; pos < to; ++pos) {
      Result<HostTensor> logits = d.step({ids[pos]});
      ASSERT_TRUE(logits.ok()) << logits.message();
      const float *got = logits->dataAs<float>();
      out.insert(out.end(), got, got + vocab);
    }
  };
  Result<Decoder> d = Decoder::create(m);
  ASSERT_TRUE(d.ok()) << d.message();
  std::vector<float> steps;
  decode(*d, 0, n, steps);
  ASSERT_EQ(steps.size(), size_t(n * vocab));
  const float *want = full->dataAs<float>();
  double worst = 0.0, scale = 0.0;
  for (int64_t i = 0; i < n * vocab; ++i) {
    worst = std::max(worst, std::abs(double(steps[i]) - want[i]));
    scale = std::max(scale, std::abs(double(want[i])));
  }
  EXPECT_LE(worst, 2e-2 * scale) << "decoding on the device drifted from "
                                    "the forward";

  d->reset();
  std::vector<float> again;
  decode(*d, 0, n, again);
  EXPECT_EQ(again, steps) << "reset() kept the device caches";

  // Two decoders stepped in turns, each on its own caches.
  Result<Decoder> d1 = Decoder::create(m), d2 = Decoder::create(m);
  ASSERT_TRUE(d1.ok() && d2.ok());
  std::vector<float> s1, s2;
  for (int64_t pos = 0; pos < n; pos += 10) {
    decode(*d1, pos, pos + 10, s1);
    decode(*d2, pos, pos + 10, s2);
  }
  EXPECT_EQ(s1, steps);
  EXPECT_EQ(s2, steps);
}
