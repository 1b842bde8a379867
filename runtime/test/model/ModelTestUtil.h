//===- ModelTestUtil.h - artifacts for the model tests ----------*- C++ -*-===//
//
// Builds .hag files around the hand-written FakeModel shared object (always
// available) and locates the artifacts hag-compile produced at build time
// (only in the full HAG tree; tests that need them skip otherwise).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_TEST_MODEL_MODELTESTUTIL_H
#define HAG_RUNTIME_TEST_MODEL_MODELTESTUTIL_H

#include "hag/runtime/Artifact.h"

#include "../TestUtil.h"

#include <string>
#include <vector>

namespace hag::rt::test {

/// A .hag image: header, `manifest`, `code`, FNV-1a checksum.
inline std::vector<uint8_t> packArtifact(const std::string &manifest,
                                         const std::vector<uint8_t> &code,
                                         uint32_t version = 1,
                                         uint32_t flags = 0) {
  std::vector<uint8_t> out;
  appendString(out, std::string("HAGARTF\0", 8));
  appendLE(out, version, 4);
  appendLE(out, flags, 4);
  appendLE(out, manifest.size(), 8);
  appendLE(out, code.size(), 8);
  appendString(out, manifest);
  out.insert(out.end(), code.begin(), code.end());
  appendLE(out, fnv1a64(out.data(), out.size()), 8);
  return out;
}

/// Recomputes the checksum of an image after an edit.
inline void resealArtifact(std::vector<uint8_t> &image) {
  uint64_t h = fnv1a64(image.data(), image.size() - 8);
  for (int i = 0; i < 8; ++i)
    image[image.size() - 8 + i] = static_cast<uint8_t>(h >> (8 * i));
}

/// The FakeModel shared object's bytes.
inline std::vector<uint8_t> fakeCode() { return readBytes(HAGRT_FAKE_MODEL); }

/// The names p0..p69 of the "many" entry's parameters, quoted, joined.
inline std::string manyParameterNames() {
  std::string s;
  for (int i = 0; i < 70; ++i)
    s += (i ? ",\"p" : "\"p") + std::to_string(i) + "\"";
  return s;
}

/// The manifest's common tail: target and attention facts.
inline std::string fakeTargetAndAttention() {
  return R"("format_version": 1, "hag_version": "0.1.0",
  "target": {"triple": "x86_64-unknown-linux-gnu", "cpu": "x86-64", "features": ""},
  "attention": {"block": 4, "ratio": 2, "levels": 3, "levels_auto": false, "window": 4,
                "summary": 4, "compress": "gated_mean", "causal": true, "mass_bias": 1.0,
                "select_k": 0, "temperature": 0.1, "eps": 1e-06},)";
}

/// An lm manifest for FakeModel: vocab 8, d_model 4, max_seq 16; parameters
/// embed [8, 4] and p0..p69 [1]; entries forward, loss, many, alias,
/// transpose.
inline std::string fakeLmManifest() {
  std::string params = R"({"name": "embed", "dtype": "f32", "shape": [8, 4]})";
  for (int i = 0; i < 70; ++i)
    params += ", {\"name\": \"p" + std::to_string(i) +
              "\", \"dtype\": \"f32\", \"shape\": [1]}";
  return "{" + fakeTargetAndAttention() + R"(
  "model": {"kind": "lm", "vocab": 8, "d_model": 4, "layers": 1, "heads": 1,
            "kv_heads": 1, "head_dim": 4, "mlp_hidden": 8, "gate_hidden": 4,
            "max_seq": 16, "tie_embeddings": true, "rope": true, "rope_base": 10000.0},
  "parameters": [)" +
         params + R"(],
  "entries": [
    {"name": "forward", "symbol": "_mlir_ciface_forward",
     "inputs": [{"name": "tokens", "dtype": "i32", "shape": [-1, -1]}],
     "parameters": ["embed"], "result": {"dtype": "f32", "shape": [-1, -1, 8]}},
    {"name": "loss", "symbol": "_mlir_ciface_loss",
     "inputs": [{"name": "tokens", "dtype": "i32", "shape": [-1, -1]}],
     "parameters": ["embed"], "result": {"dtype": "f32", "shape": []}},
    {"name": "many", "symbol": "_mlir_ciface_many",
     "inputs": [{"name": "x", "dtype": "f32", "shape": [-1, -1]}],
     "parameters": [)" +
         manyParameterNames() + R"(],
     "result": {"dtype": "f32", "shape": []}},
    {"name": "alias", "symbol": "_mlir_ciface_alias",
     "inputs": [{"name": "x", "dtype": "f32", "shape": [-1, 4]}],
     "parameters": [], "result": {"dtype": "f32", "shape": [-1, 4]}},
    {"name": "transpose", "symbol": "_mlir_ciface_transpose",
     "inputs": [{"name": "x", "dtype": "f32", "shape": [-1, 3]}],
     "parameters": [], "result": {"dtype": "f32", "shape": [3, -1]}}
  ]
})";
}

/// An attention manifest for FakeModel: d_model 4, max_seq 16, no
/// parameters; forward is y = 2 x, badshape returns [B, N, 3].
inline std::string fakeAttentionManifest() {
  return "{" + fakeTargetAndAttention() + R"(
  "model": {"kind": "attention", "d_model": 4, "heads": 1, "kv_heads": 1,
            "head_dim": 4, "gate_hidden": 4, "max_seq": 16, "rope": false,
            "rope_base": 10000},
  "parameters": [],
  "entries": [
    {"name": "forward", "symbol": "_mlir_ciface_twice",
     "inputs": [{"name": "x", "dtype": "f32", "shape": [-1, -1, 4]}],
     "parameters": [], "result": {"dtype": "f32", "shape": [-1, -1, 4]}},
    {"name": "badshape", "symbol": "_mlir_ciface_badshape",
     "inputs": [{"name": "x", "dtype": "f32", "shape": [-1, -1, 4]}],
     "parameters": [], "result": {"dtype": "f32", "shape": [-1, -1, 4]}}
  ]
})";
}

/// The path of an artifact hag-compile built from examples/NAME.yaml, or ""
/// when this build has no compiler. The environment variable
/// HAGRT_TEST_ARTIFACT_DIR overrides the directory (to run these tests from
/// a standalone runtime build, e.g. under sanitizers).
inline std::string compiledArtifact(const std::string &name) {
  if (const char *dir = std::getenv("HAGRT_TEST_ARTIFACT_DIR"); dir && *dir)
    return std::string(dir) + "/" + name + ".hag";
#ifdef HAGRT_TEST_ARTIFACT_DIR
  return std::string(HAGRT_TEST_ARTIFACT_DIR) + "/" + name + ".hag";
#else
  (void)name;
  return "";
#endif
}

} // namespace hag::rt::test

/// Skips the current test when hag-compile's artifacts are not available.
#define HAGRT_REQUIRE_COMPILED(path)                                           \
  do {                                                                         \
    if ((path).empty())                                                        \
      GTEST_SKIP() << "built without hag-compile: no compiled artifacts";      \
  } while (0)

#endif // HAG_RUNTIME_TEST_MODEL_MODELTESTUTIL_H
