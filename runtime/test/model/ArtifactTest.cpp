//===- ArtifactTest.cpp - the .hag reader: container, manifest, code ------===//

#include "hag/runtime/Artifact.h"

#include "ModelTestUtil.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include <dirent.h>

using namespace hag::rt;
using namespace hag::rt::test;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

/// The error of loading `image` (saved as `name` in a fresh directory).
std::string openError(const std::vector<uint8_t> &image,
                      const std::string &name = "m.hag") {
  Result<Artifact> a = Artifact::load(image.data(), image.size(), name);
  EXPECT_FALSE(a.ok());
  return a.ok() ? std::string() : a.message();
}

std::string manifestError(const std::string &manifest) {
  return openError(packArtifact(manifest, fakeCode()));
}

/// `text` with the first `from` replaced by `to` (which must occur).
std::string replaced(std::string text, const std::string &from,
                     const std::string &to) {
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos)
    text.replace(at, from.size(), to);
  return text;
}

/// Number of open file descriptors of this process.
int openDescriptors() {
  int n = 0;
  if (DIR *d = ::opendir("/proc/self/fd")) {
    while (::readdir(d))
      ++n;
    ::closedir(d);
  }
  return n;
}

TEST(Artifact, OpensAndParsesTheManifest) {
  TempDir dir;
  std::string path = dir.path("fake.hag");
  writeBytes(path, packArtifact(fakeLmManifest(), fakeCode()));
  Result<Artifact> a = Artifact::open(path);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->source(), path);
  const ArtifactManifest &m = a->manifest();
  EXPECT_EQ(m.formatVersion, 1u);
  EXPECT_EQ(m.hagVersion, "0.1.0");
  EXPECT_EQ(m.target.triple, "x86_64-unknown-linux-gnu");
  EXPECT_EQ(m.model.kind, ModelFacts::Kind::LM);
  EXPECT_EQ(m.model.vocab, 8);
  EXPECT_EQ(m.model.dModel, 4);
  EXPECT_EQ(m.model.maxSeq, 16);
  EXPECT_TRUE(m.model.tieEmbeddings);
  EXPECT_EQ(m.model.ropeBase, 10000.0);
  EXPECT_EQ(m.attention.compress, "gated_mean");
  EXPECT_EQ(m.attention.eps, 1e-06);
  EXPECT_EQ(m.attention.temperature, 0.1);
  EXPECT_EQ(m.attention.massBias, 1.0);
  ASSERT_EQ(m.parameters.size(), 71u);
  EXPECT_EQ(m.parameters[0].name, "embed");
  EXPECT_EQ(m.parameters[0].shape, (std::vector<int64_t>{8, 4}));
  ASSERT_EQ(m.entries.size(), 5u);
  const ArtifactEntry *fwd = a->findEntry("forward");
  ASSERT_NE(fwd, nullptr);
  EXPECT_EQ(fwd->symbol, "_mlir_ciface_forward");
  ASSERT_EQ(fwd->inputs.size(), 1u);
  EXPECT_EQ(fwd->inputs[0].name, "tokens");
  EXPECT_EQ(fwd->inputs[0].dtype, DType::I32);
  EXPECT_EQ(fwd->inputs[0].shape, (std::vector<int64_t>{-1, -1}));
  EXPECT_EQ(fwd->parameters, (std::vector<std::string>{"embed"}));
  EXPECT_EQ(fwd->resultShape, (std::vector<int64_t>{-1, -1, 8}));
  EXPECT_NE(fwd->address, nullptr);
  EXPECT_TRUE(a->findEntry("loss")->resultShape.empty());
  EXPECT_EQ(a->findEntry("nope"), nullptr);
  EXPECT_THAT(a->manifestText(), StartsWith("{"));
}

TEST(Artifact, MissingFileNamesIt) {
  Result<Artifact> a = Artifact::open("/nonexistent/dir/m.hag");
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.message(), HasSubstr("/nonexistent/dir/m.hag"));
  EXPECT_THAT(a.message(), HasSubstr("No such file or directory"));
}

TEST(Artifact, WrongMagic) {
  std::vector<uint8_t> image = packArtifact(fakeLmManifest(), fakeCode());
  image[3] = 'X';
  EXPECT_EQ(openError(image),
            "m.hag: not a HAG artifact (wrong magic; expected "
            "\"HAGARTF\\0\")");
  EXPECT_EQ(openError(toBytes("PK\x03\x04")),
            "m.hag: not a HAG artifact (wrong magic; expected "
            "\"HAGARTF\\0\")");
  EXPECT_EQ(openError({}), "m.hag: empty file, not a HAG artifact");
}

TEST(Artifact, OtherFormatVersion) {
  for (uint32_t version : {0u, 2u, 7u}) {
    std::vector<uint8_t> image =
        packArtifact(fakeLmManifest(), fakeCode(), version);
    EXPECT_EQ(openError(image), "m.hag: artifact format " +
                                    std::to_string(version) +
                                    ", this runtime reads 1");
  }
  EXPECT_THAT(openError(packArtifact(fakeLmManifest(), fakeCode(), 1, 4)),
              HasSubstr("m.hag: artifact flags 4 are not supported"));
}

TEST(Artifact, EveryTruncation) {
  std::vector<uint8_t> image = packArtifact(fakeLmManifest(), fakeCode());
  for (size_t len = 0; len < image.size(); ++len) {
    std::vector<uint8_t> cut(image.begin(), image.begin() + len);
    std::string e = openError(cut);
    ASSERT_THAT(e, StartsWith("m.hag: ")) << "length " << len;
    if (len == 0)
      EXPECT_THAT(e, HasSubstr("empty file"));
    else if (len < 40)
      EXPECT_THAT(e, HasSubstr("truncated artifact: " + std::to_string(len) +
                               " bytes, but the header and checksum alone "
                               "take 40"))
          << "length " << len;
    else
      EXPECT_THAT(e, HasSubstr("truncated artifact: " + std::to_string(len) +
                               " bytes, but manifest_size"))
          << "length " << len;
  }
}

TEST(Artifact, ExtendedFile) {
  std::vector<uint8_t> image = packArtifact(fakeLmManifest(), fakeCode());
  size_t size = image.size();
  image.push_back(0);
  EXPECT_THAT(openError(image),
              HasSubstr("m.hag: 1 unexpected bytes after the checksum (" +
                        std::to_string(size + 1) + " bytes"));
  // A header that claims more than there is reads as truncated.
  std::vector<uint8_t> bigger = packArtifact(fakeLmManifest(), fakeCode());
  bigger[24] += 1; // code_size
  EXPECT_THAT(openError(bigger), HasSubstr("truncated artifact"));
  std::vector<uint8_t> huge = bigger;
  for (int i = 16; i < 32; ++i)
    huge[i] = 0xff;
  EXPECT_THAT(openError(huge), HasSubstr("overflow"));
}

TEST(Artifact, FlippedByteAnywhereIsCaught) {
  std::vector<uint8_t> image = packArtifact(fakeLmManifest(), fakeCode());
  for (size_t i = 0; i < image.size(); ++i) {
    std::vector<uint8_t> bad = image;
    bad[i] ^= 0x20;
    std::string e = openError(bad);
    ASSERT_THAT(e, StartsWith("m.hag: ")) << "byte " << i;
    if (i >= kArtifactHeaderSize)
      ASSERT_EQ(e, "m.hag: checksum mismatch: the file was modified or "
                   "corrupted")
          << "byte " << i;
  }
}

TEST(Artifact, ManifestErrorsNameTheField) {
  std::string good = fakeLmManifest();
  EXPECT_THAT(manifestError("{"), HasSubstr("m.hag: manifest: invalid JSON"));
  EXPECT_THAT(manifestError("[]"),
              HasSubstr("m.hag: manifest: the manifest is an array"));
  EXPECT_THAT(manifestError(replaced(good, "\"d_model\": 4,", "")),
              HasSubstr("m.hag: manifest: model.d_model is missing"));
  EXPECT_THAT(
      manifestError(replaced(good, "\"d_model\": 4", "\"d_model\": \"4\"")),
      HasSubstr("model.d_model is a string, expected an integer"));
  EXPECT_THAT(
      manifestError(replaced(good, "\"max_seq\": 16", "\"max_seq\": 0")),
      HasSubstr("model.max_seq is 0, expected at least 1"));
  EXPECT_THAT(
      manifestError(replaced(good, "\"kind\": \"lm\"", "\"kind\": \"cnn\"")),
      HasSubstr("model.kind is 'cnn', expected 'lm' or 'attention'"));
  EXPECT_THAT(manifestError(replaced(good, "\"vocab\": 8,", "")),
              HasSubstr("model.vocab is missing"));
  EXPECT_THAT(manifestError(replaced(good, "\"eps\": 1e-06", "\"eps\": true")),
              HasSubstr("attention.eps is a boolean, expected a real number"));
  EXPECT_THAT(manifestError(replaced(good, "\"format_version\": 1",
                                     "\"format_version\": 2")),
              HasSubstr("format_version is 2 but the header says 1"));
  EXPECT_THAT(
      manifestError(replaced(good, "\"shape\": [8, 4]", "\"shape\": [8, -1]")),
      HasSubstr("parameters[0].shape[1] is -1, expected a size"));
  EXPECT_THAT(
      manifestError(replaced(good, "\"dtype\": \"f32\", \"shape\": [8, 4]",
                             "\"dtype\": \"f8\", \"shape\": [8, 4]")),
      HasSubstr("parameters[0].dtype is 'f8'"));
  EXPECT_THAT(
      manifestError(replaced(good, "\"name\": \"p1\"", "\"name\": \"p0\"")),
      HasSubstr("parameter 'p0' is declared twice"));
  EXPECT_THAT(manifestError(replaced(good, "\"parameters\": [\"embed\"]",
                                     "\"parameters\": [\"embedding\"]")),
              HasSubstr("entry 'forward' uses parameter 'embedding' that the "
                        "manifest does not declare"));
  EXPECT_THAT(manifestError(replaced(good, "\"name\": \"loss\"",
                                     "\"name\": \"forward\"")),
              HasSubstr("entry 'forward' is declared twice"));
  EXPECT_THAT(manifestError(replaced(
                  good, "\"result\": {\"dtype\": \"f32\", \"shape\": []}",
                  "\"result\": {\"dtype\": \"f32\"}")),
              HasSubstr("entries[1].result.shape is missing"));
}

TEST(Artifact, ParallelManifestErrorsNameTheField) {
  std::string good = fakeLmManifest();
  auto withParallel = [&](const std::string &parallel) {
    return replaced(good, "\"parameters\": [",
                    "\"parallel\": " + parallel + ",\n  \"parameters\": [");
  };
  EXPECT_THAT(manifestError(withParallel("{\"tensor\": 0, \"data\": 1}")),
              HasSubstr("parallel.tensor is 0, expected at least 1"));
  EXPECT_THAT(manifestError(withParallel("{\"tensor\": 2}")),
              HasSubstr("parallel.data is missing"));
  EXPECT_THAT(manifestError(withParallel("[2, 1]")),
              HasSubstr("parallel is an array, expected an object"));
  const std::string embed = "\"dtype\": \"f32\", \"shape\": [8, 4]";
  EXPECT_THAT(manifestError(replaced(good, embed,
                                     embed + ", \"shard\": {\"dim\": 2, "
                                             "\"parts\": 2}")),
              HasSubstr("parameters[0].shard.dim is 2 but 'embed' has rank 2"));
  EXPECT_THAT(manifestError(replaced(good, embed,
                                     embed + ", \"shard\": {\"dim\": 0}")),
              HasSubstr("parameters[0].shard.parts is missing"));
  EXPECT_THAT(manifestError(replaced(good, embed, embed + ", \"shard\": 3")),
              HasSubstr("parameters[0].shard is an integer, expected an "
                        "object"));
}

TEST(Artifact, ResealedManifestMutationsNeverCrash) {
  // Random byte edits in the manifest with a valid checksum: the reader
  // either accepts the result or names the file in an error.
  std::string manifest = fakeAttentionManifest();
  std::vector<uint8_t> code = fakeCode();
  uint32_t x = 12345;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  const char kBytes[] = "{}[]\",:0123456789-.eE tfn\\x";
  int accepted = 0;
  for (int round = 0; round < 1500; ++round) {
    std::string m = manifest;
    int edits = 1 + next() % 3;
    for (int e = 0; e < edits; ++e)
      m[next() % m.size()] = kBytes[next() % (sizeof(kBytes) - 1)];
    std::vector<uint8_t> image = packArtifact(m, code);
    Result<Artifact> a = Artifact::load(image.data(), image.size(), "m.hag");
    if (a.ok())
      ++accepted;
    else
      ASSERT_THAT(a.message(), StartsWith("m.hag: ")) << m;
  }
  EXPECT_GT(accepted, 0); // some edits land in strings and stay valid
}

TEST(Artifact, MissingSymbolIsNamed) {
  std::string m =
      replaced(fakeLmManifest(), "\"symbol\": \"_mlir_ciface_loss\"",
               "\"symbol\": \"_mlir_ciface_ghost\"");
  EXPECT_EQ(manifestError(m), "m.hag: the code has no symbol "
                              "'_mlir_ciface_ghost' (entry 'loss')");
  // A symbol of libc (a dependency of the code) is not an entry point.
  std::string libc =
      replaced(fakeLmManifest(), "\"symbol\": \"_mlir_ciface_loss\"",
               "\"symbol\": \"malloc\"");
  EXPECT_EQ(manifestError(libc),
            "m.hag: the code has no symbol 'malloc' (entry 'loss')");
}

TEST(Artifact, CodeMustBeASharedObject) {
  std::vector<uint8_t> notElf(100, 'x');
  EXPECT_EQ(openError(packArtifact(fakeLmManifest(), notElf)),
            "m.hag: the code section is not an ELF file");
  std::vector<uint8_t> exec = fakeCode();
  exec[16] = 2; // ET_EXEC
  EXPECT_THAT(openError(packArtifact(fakeLmManifest(), exec)),
              HasSubstr("not a shared object"));
  std::vector<uint8_t> arm = fakeCode();
  arm[18] = 183; // EM_AARCH64
  arm[19] = 0;
  EXPECT_THAT(openError(packArtifact(fakeLmManifest(), arm)),
              HasSubstr("the code is for ELF machine 183"));
}

TEST(Artifact, ManyLoadsAreIndependentAndLeakNothing) {
  std::vector<uint8_t> lm = packArtifact(fakeLmManifest(), fakeCode());
  std::vector<uint8_t> att = packArtifact(fakeAttentionManifest(), fakeCode());
  int before = openDescriptors();
  for (int round = 0; round < 20; ++round) {
    Result<Artifact> a = Artifact::load(lm.data(), lm.size(), "a.hag");
    Result<Artifact> b = Artifact::load(att.data(), att.size(), "b.hag");
    ASSERT_TRUE(a.ok() && b.ok());
    // Two loads of the same code are two objects.
    Result<Artifact> c = Artifact::load(lm.data(), lm.size(), "c.hag");
    ASSERT_TRUE(c.ok());
    EXPECT_NE(a->findEntry("forward")->address,
              c->findEntry("forward")->address);
    Artifact moved = std::move(*a);
    EXPECT_NE(moved.findEntry("forward"), nullptr);
  }
  EXPECT_EQ(openDescriptors(), before);
}

TEST(Artifact, CodeThatCannotBeUnloadedStillLoadsAgain) {
  // dlclose leaves a -z nodelete object (and its name) loaded; each later
  // load must still get its own, fresh object.
  std::vector<uint8_t> image =
      packArtifact(fakeLmManifest(), readBytes(HAGRT_FAKE_MODEL_NODELETE));
  void *previous = nullptr;
  for (int round = 0; round < 40; ++round) {
    Result<Artifact> a = Artifact::load(image.data(), image.size(), "n.hag");
    ASSERT_TRUE(a.ok()) << round << ": " << a.message();
    void *address = a->findEntry("forward")->address;
    EXPECT_NE(address, previous) << round;
    previous = address;
  }
}

} // namespace
