//===- TestUtil.h - helpers for the hagrt unit tests ------------*- C++ -*-===//

#ifndef HAG_RUNTIME_TEST_TESTUTIL_H
#define HAG_RUNTIME_TEST_TESTUTIL_H

#include "hag/runtime/Tensor.h"

#include <cstdint>
#include <cstdlib>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace hag::rt::test {

/// Whether an NVIDIA driver (libcuda.so.1) can be loaded here.
inline bool haveCudaDriver() {
  void *h = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h)
    ::dlclose(h);
  return h != nullptr;
}

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base && *base ? base : "/tmp") + "/hagrt-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (char *p = ::mkdtemp(buf.data()))
      dir = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!dir.empty())
      std::filesystem::remove_all(dir, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  /// `name` inside the directory.
  std::string path(const std::string &name) const { return dir + "/" + name; }
  const std::string &str() const { return dir; }

private:
  std::string dir;
};

/// Writes `bytes` to `path` (plainly, for building test inputs).
inline void writeBytes(const std::string &path,
                       const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline void writeText(const std::string &path, const std::string &text) {
  writeBytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

/// The contents of `path` (empty when it cannot be read).
inline std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
                              std::istreambuf_iterator<char>());
}

/// The bytes of a string literal (which may hold NULs: pass its size).
inline std::vector<uint8_t> toBytes(const std::string &s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

inline void appendLE(std::vector<uint8_t> &out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

inline void appendString(std::vector<uint8_t> &out, const std::string &s) {
  out.insert(out.end(), s.begin(), s.end());
}

template <typename T>
void appendValues(std::vector<uint8_t> &out, const std::vector<T> &values) {
  const uint8_t *p = reinterpret_cast<const uint8_t *>(values.data());
  out.insert(out.end(), p, p + values.size() * sizeof(T));
}

/// A tensor of `dtype` and `shape` whose bytes come from a simple generator
/// (any bit pattern for numeric types, 0/1 for BOOL).
inline HostTensor patternTensor(DType dtype, std::vector<int64_t> shape,
                                uint32_t seed) {
  HostTensor t = std::move(*HostTensor::zeros(dtype, std::move(shape)));
  uint32_t x = seed * 2654435761u + 12345u;
  for (uint8_t &b : t.data) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = dtype == DType::BOOL ? (x & 1) : static_cast<uint8_t>(x >> 8);
  }
  return t;
}

/// True when two tensors have the same dtype, shape and bytes.
inline bool bitwiseEqual(const HostTensor &a, const HostTensor &b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.data == b.data;
}

} // namespace hag::rt::test

#endif // HAG_RUNTIME_TEST_TESTUTIL_H
