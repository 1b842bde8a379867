//===- FakeModel.cpp - hand-written entry points for artifact tests -------===//
//
// A shared object with the calling convention of docs/artifact-format.md but
// trivial, exactly checkable bodies, so the artifact reader and Model::run can
// be tested without the compiler. ModelTestUtil.h packs it into a .hag file
// with a matching manifest.
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

struct Desc0 {
  float *allocated;
  float *aligned;
  int64_t offset;
};

template <typename T, int R> struct Desc {
  T *allocated;
  T *aligned;
  int64_t offset;
  int64_t sizes[R];
  int64_t strides[R];

  /// Element [i, j] / [i, j, k] through the strides.
  T at(int64_t i, int64_t j) const {
    return aligned[offset + i * strides[0] + j * strides[1]];
  }
  T at(int64_t i, int64_t j, int64_t k) const {
    return aligned[offset + i * strides[0] + j * strides[1] + k * strides[2]];
  }
};

template <typename T, int R>
void allocate(Desc<T, R> *d, const int64_t (&sizes)[R]) {
  int64_t n = 1;
  for (int i = R - 1; i >= 0; --i) {
    d->sizes[i] = sizes[i];
    d->strides[i] = n;
    n *= sizes[i];
  }
  d->allocated = static_cast<T *>(std::malloc(sizeof(T) * (n ? n : 1)));
  d->aligned = d->allocated;
  d->offset = 0;
}

} // namespace

extern "C" {

/// logits[b, n, v] = dot(embed[tokens[b, n]], embed[v]); embed is [V, D].
void _mlir_ciface_forward(Desc<float, 3> *result, Desc<int32_t, 2> *tokens,
                          Desc<float, 2> *embed) {
  int64_t B = tokens->sizes[0], N = tokens->sizes[1];
  int64_t V = embed->sizes[0], D = embed->sizes[1];
  allocate(result, {B, N, V});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) {
      int32_t t = tokens->at(b, n);
      for (int64_t v = 0; v < V; ++v) {
        float s = 0;
        for (int64_t d = 0; d < D; ++d)
          s += embed->at(t, d) * embed->at(v, d);
        result->aligned[(b * N + n) * V + v] = s;
      }
    }
}

/// A 0-d result: the sum of the tokens plus embed[0, 0].
void _mlir_ciface_loss(Desc0 *result, Desc<int32_t, 2> *tokens,
                       Desc<float, 2> *embed) {
  float s = embed->at(0, 0);
  for (int64_t b = 0; b < tokens->sizes[0]; ++b)
    for (int64_t n = 0; n < tokens->sizes[1]; ++n)
      s += static_cast<float>(tokens->at(b, n));
  result->allocated = static_cast<float *>(std::malloc(sizeof(float)));
  result->aligned = result->allocated;
  result->offset = 0;
  result->aligned[0] = s;
}

#define HAGRT_P10(b)                                                           \
  Desc<float, 1> *p##b##0, Desc<float, 1> *p##b##1, Desc<float, 1> *p##b##2,   \
      Desc<float, 1> *p##b##3, Desc<float, 1> *p##b##4,                        \
      Desc<float, 1> *p##b##5, Desc<float, 1> *p##b##6,                        \
      Desc<float, 1> *p##b##7, Desc<float, 1> *p##b##8,                        \
      Desc<float, 1> *p##b##9
#define HAGRT_A10(b)                                                           \
  p##b##0, p##b##1, p##b##2, p##b##3, p##b##4, p##b##5, p##b##6, p##b##7,      \
      p##b##8, p##b##9

/// 70 parameters (more than the argument registers, more than 64): a 0-d
/// result x[0, 0] + sum_i (i + 1) * p_i[0], so order mistakes show.
void _mlir_ciface_many(Desc0 *result, Desc<float, 2> *x, HAGRT_P10(0),
                       HAGRT_P10(1), HAGRT_P10(2), HAGRT_P10(3), HAGRT_P10(4),
                       HAGRT_P10(5), HAGRT_P10(6)) {
  Desc<float, 1> *ps[] = {HAGRT_A10(0), HAGRT_A10(1), HAGRT_A10(2),
                          HAGRT_A10(3), HAGRT_A10(4), HAGRT_A10(5),
                          HAGRT_A10(6)};
  float s = x->at(0, 0);
  for (int i = 0; i < 70; ++i)
    s += static_cast<float>(i + 1) * ps[i]->aligned[ps[i]->offset];
  result->allocated = static_cast<float *>(std::malloc(sizeof(float)));
  result->aligned = result->allocated;
  result->offset = 0;
  result->aligned[0] = s;
}

/// Returns its input itself (a result aliasing an argument must not be
/// freed by the runtime).
void _mlir_ciface_alias(Desc<float, 2> *result, Desc<float, 2> *x) {
  *result = *x;
}

/// y = x^T as a strided view of a fresh column-major buffer: x [R, C] ->
/// y [C, R] with strides [1, C] and offset 1 (one unused leading element).
void _mlir_ciface_transpose(Desc<float, 2> *result, Desc<float, 2> *x) {
  int64_t R = x->sizes[0], C = x->sizes[1];
  float *buf = static_cast<float *>(std::malloc(sizeof(float) * (R * C + 1)));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j)
      buf[1 + i * C + j] = x->at(i, j);
  result->allocated = buf;
  result->aligned = buf;
  result->offset = 1;
  result->sizes[0] = C;
  result->sizes[1] = R;
  result->strides[0] = 1;
  result->strides[1] = C;
}

/// y = 2 x for x [B, N, D] (the attention kind's shapes).
void _mlir_ciface_twice(Desc<float, 3> *result, Desc<float, 3> *x) {
  int64_t B = x->sizes[0], N = x->sizes[1], D = x->sizes[2];
  allocate(result, {B, N, D});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d)
        result->aligned[(b * N + n) * D + d] = 2 * x->at(b, n, d);
}

/// Returns a result whose static dimension is wrong ([B, N, 3] for a
/// declared [B, N, 4]).
void _mlir_ciface_badshape(Desc<float, 3> *result, Desc<float, 3> *x) {
  allocate(result, {x->sizes[0], x->sizes[1], 3});
  std::memset(result->aligned, 0,
              sizeof(float) * x->sizes[0] * x->sizes[1] * 3);
}

} // extern "C"
