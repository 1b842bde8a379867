/*===- hagrt.h - the HAG runtime's C API ---------------------------*- C -*-===*
 *
 * A stable C interface to hag::rt::Model (Model.h) for programs in any
 * language: open a compiled model (.hag), bind weights (initialise, load,
 * save), run an entry point on host tensors.
 *
 *   hagrt_model *m;
 *   if (hagrt_open("tiny.hag", &m) != HAGRT_OK ||
 *       hagrt_init_weights(m, 0) != HAGRT_OK) {
 *     fprintf(stderr, "%s\n", hagrt_last_error());
 *     ...
 *   }
 *   int64_t shape[2] = {1, 5};
 *   int32_t tokens[5] = {72, 101, 108, 108, 111};
 *   hagrt_tensor in = {HAGRT_I32, 2, shape, tokens};
 *   hagrt_tensor *logits;
 *   if (hagrt_run(m, "forward", &in, &logits) == HAGRT_OK) {
 *     ... logits->shape is {1, 5, vocab}, logits->data float * ...
 *     hagrt_tensor_free(logits);
 *   }
 *   hagrt_close(m);
 *
 * Every function that can fail returns a hagrt_status; on failure the
 * one-line reason is available from hagrt_last_error() on the same thread.
 * No function throws or aborts on bad input.
 *
 * Thread safety: different models are independent. hagrt_run may be called
 * concurrently on one model; the weight functions must not run concurrently
 * with anything else on the same model.
 *
 *===----------------------------------------------------------------------===*/

#ifndef HAG_RUNTIME_HAGRT_H
#define HAG_RUNTIME_HAGRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A status code: HAGRT_OK (0) or one of the errors below. */
typedef int hagrt_status;

/** Success. */
#define HAGRT_OK 0
/** A null pointer, an index out of range, an unknown dtype code... */
#define HAGRT_ERROR_INVALID_ARGUMENT 1
/** The artifact cannot be read, is corrupt, or its code cannot be loaded. */
#define HAGRT_ERROR_ARTIFACT 2
/** Weights cannot be read, or do not match the model's parameters. */
#define HAGRT_ERROR_WEIGHTS 3
/** Weights cannot be written. */
#define HAGRT_ERROR_IO 4
/** hagrt_run failed: unknown entry, no weights bound, a bad input. */
#define HAGRT_ERROR_RUN 5
/** Memory ran out. */
#define HAGRT_ERROR_OUT_OF_MEMORY 6

/** Element types (the values of hagrt_tensor.dtype). */
#define HAGRT_F32 0
#define HAGRT_F64 1
#define HAGRT_F16 2
#define HAGRT_BF16 3
#define HAGRT_I32 4
#define HAGRT_I64 5
#define HAGRT_U16 6
#define HAGRT_U32 7
#define HAGRT_U8 8
#define HAGRT_BOOL 9

/** A compiled model with its weights (opaque). */
typedef struct hagrt_model hagrt_model;

/** A dense, row-major host tensor. For inputs the caller owns shape and
 * data (data is only read); outputs are allocated by the runtime and
 * released with hagrt_tensor_free. */
typedef struct hagrt_tensor {
  /** HAGRT_F32, HAGRT_I32, ... */
  int dtype;
  /** Number of dimensions (0 for a scalar). */
  int rank;
  /** rank sizes. */
  const int64_t *shape;
  /** The elements, little-endian, in row-major order. */
  void *data;
} hagrt_tensor;

/** The runtime's version, "0.1.0". */
const char *hagrt_version(void);

/** The reason for the last failure on this thread ("" when there was none).
 * Successful calls leave it unchanged. The string stays valid until the next
 * failing call on this thread. */
const char *hagrt_last_error(void);

/** The name of a dtype code ("f32"), or NULL for an unknown code. */
const char *hagrt_dtype_name(int dtype);

/** Opens the artifact at `path`; on success *model owns it (release with
 * hagrt_close). No weights are bound yet. */
hagrt_status hagrt_open(const char *path, hagrt_model **model);

/** Releases a model (NULL is ignored). Its entry points must not be running.
 */
void hagrt_close(hagrt_model *model);

/** Number of parameters (weights) the model expects (0 for NULL). */
size_t hagrt_num_parameters(const hagrt_model *model);

/** The name of parameter `index` ("layers.0.attn.wq"), or NULL when out of
 * range. Valid while the model is open. */
const char *hagrt_parameter_name(const hagrt_model *model, size_t index);

/** The rank and sizes of parameter `index`; *shape stays valid while the
 * model is open. */
hagrt_status hagrt_parameter_shape(const hagrt_model *model, size_t index,
                                   int *rank, const int64_t **shape);

/** An integer fact of the model's manifest: "vocab", "d_model", "layers",
 * "heads", "kv_heads", "head_dim", "mlp_hidden", "gate_hidden", "max_seq"
 * (0 where the model kind has no such fact), or "is_lm" (1 for the lm kind,
 * 0 for the attention kind). */
hagrt_status hagrt_model_fact(const hagrt_model *model, const char *name,
                              int64_t *value);

/** Binds the initial weights for `seed` (spec section 7; WeightInit.h). */
hagrt_status hagrt_init_weights(hagrt_model *model, uint64_t seed);

/** Binds the weights of a safetensors file (f16/bf16/f64 are converted). */
hagrt_status hagrt_load_weights(hagrt_model *model, const char *path);

/** Writes the bound weights as safetensors (atomically). */
hagrt_status hagrt_save_weights(const hagrt_model *model, const char *path);

/** Runs entry `entry` ("forward", "loss") on one input. On success *output
 * is a new tensor to release with hagrt_tensor_free: logits f32 [batch, N,
 * vocab] for an lm's forward, y f32 [batch, N, D] for attention, a 0-d f32
 * for loss. Inputs that leave out the batch dimension give outputs without
 * it (see Model.h). */
hagrt_status hagrt_run(const hagrt_model *model, const char *entry,
                       const hagrt_tensor *input, hagrt_tensor **output);

/** Releases a tensor made by hagrt_run (NULL is ignored). */
void hagrt_tensor_free(hagrt_tensor *tensor);

/** Incremental decoding (spec section 10) of a causal language model's
 * "decode" entry: `batch` sequences advance one token per step on caches the
 * decoder owns, each step's attention work independent of the context's
 * length. The model must outlive the decoder and keep its weights; a
 * decoder is used by one thread at a time. */
typedef struct hagrt_decoder hagrt_decoder;

/** Starts an empty context for `batch` sequences. Fails (HAGRT_ERROR_RUN)
 * for models without a "decode" entry or without weights. */
hagrt_status hagrt_decoder_create(const hagrt_model *model, int64_t batch,
                                  hagrt_decoder **decoder);

/** Appends tokens[b] (`count` = batch ids in [0, vocab)) to sequence b and
 * writes the next-token logits, f32 [batch, vocab], to *logits (release it
 * with hagrt_tensor_free). A full context (max_seq tokens) or a bad id is
 * HAGRT_ERROR_RUN and changes nothing. */
hagrt_status hagrt_decoder_step(hagrt_decoder *decoder, const int64_t *tokens,
                                size_t count, hagrt_tensor **logits);

/** Tokens consumed so far (-1 for NULL). */
int64_t hagrt_decoder_position(const hagrt_decoder *decoder);

/** Empties the context. */
void hagrt_decoder_reset(hagrt_decoder *decoder);

/** Releases a decoder (NULL is ignored). */
void hagrt_decoder_free(hagrt_decoder *decoder);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HAG_RUNTIME_HAGRT_H */
