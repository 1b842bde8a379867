//===- embed.cpp - embedding a compiled HAG model through the C API -------===//
//
// Loads a language-model artifact, initialises its weights (or loads them),
// runs "forward" on the bytes of a text and prints the most likely next
// token after the last position; with --generate K it then continues the
// text greedily for K tokens through the incremental decoder. Uses only
// hagrt.h, the runtime's C API.
//
//   hag-embed-example MODEL.hag [--seed N | --weights W.safetensors]
//                     [--generate K] [TEXT]
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/hagrt.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int fail(const char *what) {
  std::fprintf(stderr, "hag-embed-example: error: %s%s%s\n", what,
               hagrt_last_error()[0] ? ": " : "", hagrt_last_error());
  return 1;
}

int usage() {
  std::fprintf(stderr, "usage: hag-embed-example MODEL.hag [--seed N | "
                       "--weights W.safetensors] [--generate K] [TEXT]\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2)
    return usage();
  const char *artifact = argv[1];
  const char *weights = nullptr;
  uint64_t seed = 0;
  int64_t generate = 0;
  std::string text = "Hello, pyramid!";
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      char *end = nullptr;
      seed = std::strtoull(argv[++i], &end, 10);
      if (!*argv[i] || *end)
        return usage();
    } else if (std::strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
      weights = argv[++i];
    } else if (std::strcmp(argv[i], "--generate") == 0 && i + 1 < argc) {
      char *end = nullptr;
      generate = std::strtoll(argv[++i], &end, 10);
      if (!*argv[i] || *end || generate < 0)
        return usage();
    } else if (argv[i][0] == '-') {
      return usage();
    } else {
      text = argv[i];
    }
  }
  if (text.empty())
    return usage();

  hagrt_model *model = nullptr;
  if (hagrt_open(artifact, &model) != HAGRT_OK)
    return fail("cannot open the model");
  int64_t isLm = 0, vocab = 0;
  hagrt_model_fact(model, "is_lm", &isLm);
  hagrt_model_fact(model, "vocab", &vocab);
  if (!isLm) {
    hagrt_close(model);
    std::fprintf(stderr,
                 "hag-embed-example: error: %s is not a language "
                 "model\n",
                 artifact);
    return 1;
  }
  hagrt_status st = weights ? hagrt_load_weights(model, weights)
                            : hagrt_init_weights(model, seed);
  if (st != HAGRT_OK) {
    hagrt_close(model);
    return fail("cannot bind weights");
  }

  // One sequence: the text's bytes (folded into the vocabulary).
  std::vector<int32_t> tokens;
  for (unsigned char c : text)
    tokens.push_back(static_cast<int32_t>(c % vocab));
  int64_t shape[2] = {1, static_cast<int64_t>(tokens.size())};
  hagrt_tensor input = {HAGRT_I32, 2, shape, tokens.data()};
  hagrt_tensor *logits = nullptr;
  if (hagrt_run(model, "forward", &input, &logits) != HAGRT_OK) {
    hagrt_close(model);
    return fail("forward failed");
  }

  // logits is [1, N, vocab]: the argmax of the last row.
  const float *last = static_cast<const float *>(logits->data) +
                      (logits->shape[1] - 1) * logits->shape[2];
  int64_t best = 0;
  for (int64_t v = 1; v < logits->shape[2]; ++v)
    if (last[v] > last[best])
      best = v;
  std::printf("model: %s (vocab %" PRId64 ", %zu parameters)\n", artifact,
              vocab, hagrt_num_parameters(model));
  std::printf("logits: [%" PRId64 ", %" PRId64 ", %" PRId64 "]\n",
              logits->shape[0], logits->shape[1], logits->shape[2]);
  std::printf("argmax of the last position: %" PRId64 " (logit %.6f)\n", best,
              static_cast<double>(last[best]));
  hagrt_tensor_free(logits);

  // Greedy continuation with the incremental decoder: the text one token
  // per step, then each step's argmax fed back.
  if (generate > 0) {
    hagrt_decoder *decoder = nullptr;
    if (hagrt_decoder_create(model, 1, &decoder) != HAGRT_OK) {
      hagrt_close(model);
      return fail("cannot start decoding");
    }
    std::vector<int64_t> out;
    int64_t next = 0;
    for (size_t i = 0; i < tokens.size() + size_t(generate) - 1; ++i) {
      int64_t id = i < tokens.size() ? tokens[i] : next;
      hagrt_tensor *step = nullptr;
      if (hagrt_decoder_step(decoder, &id, 1, &step) != HAGRT_OK) {
        hagrt_decoder_free(decoder);
        hagrt_close(model);
        return fail("decoding failed");
      }
      const float *row = static_cast<const float *>(step->data);
      next = 0;
      for (int64_t v = 1; v < step->shape[1]; ++v)
        if (row[v] > row[next])
          next = v;
      hagrt_tensor_free(step);
      if (i + 1 >= tokens.size())
        out.push_back(next);
    }
    std::printf("generated %" PRId64 " tokens:", generate);
    for (int64_t id : out)
      std::printf(" %" PRId64, id);
    std::printf("\n");
    hagrt_decoder_free(decoder);
  }
  hagrt_close(model);
  return 0;
}
