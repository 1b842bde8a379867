//===- hagrt.cpp - the HAG runtime's C API --------------------------------===//
//
// Thin wrappers over hag::rt::Model: argument checks, status codes, the
// thread-local last error, and a catch-all so that no exception crosses the
// C boundary.
//
//===----------------------------------------------------------------------===//

#include "hag/runtime/hagrt.h"

#include "hag/runtime/Model.h"

#include "support/StringUtil.h"

#include <cstring>
#include <exception>
#include <new>

using namespace hag::rt;
using namespace hag::rt::detail;

#ifndef HAGRT_VERSION_STRING
#define HAGRT_VERSION_STRING "0.1.0"
#endif

struct hagrt_model {
  explicit hagrt_model(Model m) : model(std::move(m)) {}
  Model model;
};

struct hagrt_decoder {
  explicit hagrt_decoder(Decoder d) : decoder(std::move(d)) {}
  Decoder decoder;
};

// The C dtype codes are the DType enumerators in order.
static_assert(HAGRT_F32 == static_cast<int>(DType::F32) &&
                  HAGRT_F64 == static_cast<int>(DType::F64) &&
                  HAGRT_F16 == static_cast<int>(DType::F16) &&
                  HAGRT_BF16 == static_cast<int>(DType::BF16) &&
                  HAGRT_I32 == static_cast<int>(DType::I32) &&
                  HAGRT_I64 == static_cast<int>(DType::I64) &&
                  HAGRT_U16 == static_cast<int>(DType::U16) &&
                  HAGRT_U32 == static_cast<int>(DType::U32) &&
                  HAGRT_U8 == static_cast<int>(DType::U8) &&
                  HAGRT_BOOL == static_cast<int>(DType::BOOL),
              "hagrt.h dtype codes must match hag::rt::DType");

namespace {

/// The largest rank a C tensor may declare.
constexpr int kMaxRank = 16;

thread_local std::string lastError;

hagrt_status fail(hagrt_status code, std::string message) {
  try {
    lastError = std::move(message);
  } catch (...) {
    // Keep whatever message was there; the code still says what failed.
  }
  return code;
}

hagrt_status fail(hagrt_status code, const Status &status) {
  return fail(code, status.message());
}

/// Runs `body`, turning escaped exceptions into status codes.
template <typename F> hagrt_status guarded(const char *what, F &&body) {
  try {
    return body();
  } catch (const std::bad_alloc &) {
    return fail(HAGRT_ERROR_OUT_OF_MEMORY, strCat(what, ": out of memory"));
  } catch (const std::exception &e) {
    return fail(HAGRT_ERROR_INVALID_ARGUMENT, strCat(what, ": ", e.what()));
  } catch (...) {
    return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                strCat(what, ": unknown exception"));
  }
}

/// An output tensor with its shape and data in one allocation.
struct OwnedTensor {
  hagrt_tensor view;
  HostTensor tensor;
};

static_assert(offsetof(OwnedTensor, view) == 0,
              "hagrt_tensor_free casts the view back to its owner");

/// Hands `tensor` to the C caller (freed with hagrt_tensor_free).
hagrt_tensor *release(HostTensor tensor) {
  auto owned = std::make_unique<OwnedTensor>();
  owned->tensor = std::move(tensor);
  owned->view.dtype = static_cast<int>(owned->tensor.dtype);
  owned->view.rank = static_cast<int>(owned->tensor.shape.size());
  owned->view.shape = owned->tensor.shape.data();
  owned->view.data = owned->tensor.data.data();
  return &owned.release()->view;
}

} // namespace

extern "C" {

const char *hagrt_version(void) { return HAGRT_VERSION_STRING; }

const char *hagrt_last_error(void) { return lastError.c_str(); }

const char *hagrt_dtype_name(int dtype) {
  if (dtype < 0 || dtype > HAGRT_BOOL)
    return nullptr;
  return dtypeName(static_cast<DType>(dtype));
}

hagrt_status hagrt_open(const char *path, hagrt_model **model) {
  return guarded("hagrt_open", [&]() -> hagrt_status {
    if (!model)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT, "hagrt_open: model is NULL");
    *model = nullptr;
    if (!path)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT, "hagrt_open: path is NULL");
    Result<Model> m = Model::open(path);
    if (!m.ok())
      return fail(HAGRT_ERROR_ARTIFACT, m.status());
    *model = new hagrt_model(std::move(*m));
    return HAGRT_OK;
  });
}

void hagrt_close(hagrt_model *model) { delete model; }

size_t hagrt_num_parameters(const hagrt_model *model) {
  return model ? model->model.parameters().size() : 0;
}

const char *hagrt_parameter_name(const hagrt_model *model, size_t index) {
  if (!model || index >= model->model.parameters().size())
    return nullptr;
  return model->model.parameters()[index].name.c_str();
}

hagrt_status hagrt_parameter_shape(const hagrt_model *model, size_t index,
                                   int *rank, const int64_t **shape) {
  if (!model || !rank || !shape)
    return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                "hagrt_parameter_shape: a pointer argument is NULL");
  const std::vector<TensorSpec> &params = model->model.parameters();
  if (index >= params.size())
    return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                strCat("hagrt_parameter_shape: index ", index,
                       " is out of range (", params.size(), " parameters)"));
  *rank = static_cast<int>(params[index].shape.size());
  *shape = params[index].shape.data();
  return HAGRT_OK;
}

hagrt_status hagrt_model_fact(const hagrt_model *model, const char *name,
                              int64_t *value) {
  if (!model || !name || !value)
    return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                "hagrt_model_fact: a pointer argument is NULL");
  const ModelFacts &f = model->model.facts();
  const struct {
    const char *name;
    int64_t value;
  } facts[] = {{"vocab", f.vocab},
               {"d_model", f.dModel},
               {"layers", f.layers},
               {"heads", f.heads},
               {"kv_heads", f.kvHeads},
               {"head_dim", f.headDim},
               {"mlp_hidden", f.mlpHidden},
               {"gate_hidden", f.gateHidden},
               {"max_seq", f.maxSeq},
               {"is_lm", f.kind == ModelFacts::Kind::LM ? 1 : 0}};
  for (const auto &fact : facts)
    if (std::strcmp(fact.name, name) == 0) {
      *value = fact.value;
      return HAGRT_OK;
    }
  return fail(HAGRT_ERROR_INVALID_ARGUMENT,
              strCat("hagrt_model_fact: unknown fact ", quoted(name)));
}

hagrt_status hagrt_init_weights(hagrt_model *model, uint64_t seed) {
  return guarded("hagrt_init_weights", [&]() -> hagrt_status {
    if (!model)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_init_weights: model is NULL");
    if (Status s = model->model.initWeights(seed); !s.ok())
      return fail(HAGRT_ERROR_WEIGHTS, s);
    return HAGRT_OK;
  });
}

hagrt_status hagrt_load_weights(hagrt_model *model, const char *path) {
  return guarded("hagrt_load_weights", [&]() -> hagrt_status {
    if (!model || !path)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_load_weights: a pointer argument is NULL");
    if (Status s = model->model.loadWeights(path); !s.ok())
      return fail(HAGRT_ERROR_WEIGHTS, s);
    return HAGRT_OK;
  });
}

hagrt_status hagrt_save_weights(const hagrt_model *model, const char *path) {
  return guarded("hagrt_save_weights", [&]() -> hagrt_status {
    if (!model || !path)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_save_weights: a pointer argument is NULL");
    if (Status s = model->model.saveWeights(path); !s.ok())
      return fail(HAGRT_ERROR_IO, s);
    return HAGRT_OK;
  });
}

hagrt_status hagrt_run(const hagrt_model *model, const char *entry,
                       const hagrt_tensor *input, hagrt_tensor **output) {
  return guarded("hagrt_run", [&]() -> hagrt_status {
    if (!output)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT, "hagrt_run: output is NULL");
    *output = nullptr;
    if (!model || !entry || !input)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_run: a pointer argument is NULL");
    if (!hagrt_dtype_name(input->dtype))
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  strCat("hagrt_run: unknown dtype code ", input->dtype));
    if (input->rank < 0 || input->rank > kMaxRank)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  strCat("hagrt_run: rank ", input->rank,
                         " is out of range [0, ", kMaxRank, "]"));
    if (input->rank > 0 && !input->shape)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT, "hagrt_run: shape is NULL");
    TensorRef ref;
    ref.dtype = static_cast<DType>(input->dtype);
    ref.shape.assign(input->shape, input->shape + input->rank);
    ref.data = input->data;
    Result<HostTensor> result =
        model->model.run(entry, std::vector<TensorRef>{std::move(ref)});
    if (!result.ok())
      return fail(HAGRT_ERROR_RUN, result.status());
    *output = release(std::move(*result));
    return HAGRT_OK;
  });
}

void hagrt_tensor_free(hagrt_tensor *tensor) {
  delete reinterpret_cast<OwnedTensor *>(tensor);
}

hagrt_status hagrt_decoder_create(const hagrt_model *model, int64_t batch,
                                  hagrt_decoder **decoder) {
  return guarded("hagrt_decoder_create", [&]() -> hagrt_status {
    if (!decoder)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_decoder_create: decoder is NULL");
    *decoder = nullptr;
    if (!model)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_decoder_create: model is NULL");
    Result<Decoder> d = Decoder::create(model->model, batch);
    if (!d.ok())
      return fail(HAGRT_ERROR_RUN, d.status());
    *decoder = new hagrt_decoder(std::move(*d));
    return HAGRT_OK;
  });
}

hagrt_status hagrt_decoder_step(hagrt_decoder *decoder, const int64_t *tokens,
                                size_t count, hagrt_tensor **logits) {
  return guarded("hagrt_decoder_step", [&]() -> hagrt_status {
    if (!logits)
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_decoder_step: logits is NULL");
    *logits = nullptr;
    if (!decoder || (!tokens && count))
      return fail(HAGRT_ERROR_INVALID_ARGUMENT,
                  "hagrt_decoder_step: a pointer argument is NULL");
    Result<HostTensor> r = decoder->decoder.step(
        std::vector<int64_t>(tokens, tokens + count));
    if (!r.ok())
      return fail(HAGRT_ERROR_RUN, r.status());
    *logits = release(std::move(*r));
    return HAGRT_OK;
  });
}

int64_t hagrt_decoder_position(const hagrt_decoder *decoder) {
  return decoder ? decoder->decoder.position() : -1;
}

void hagrt_decoder_reset(hagrt_decoder *decoder) {
  if (decoder)
    decoder->decoder.reset();
}

void hagrt_decoder_free(hagrt_decoder *decoder) { delete decoder; }

} // extern "C"
