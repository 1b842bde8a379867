//===- StringUtil.h - message formatting for hagrt --------------*- C++ -*-===//
//
// Internal helpers that build one-line error messages without iostreams (so
// a user's global locale cannot put thousands separators into numbers).
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_SUPPORT_STRINGUTIL_H
#define HAG_RUNTIME_SUPPORT_STRINGUTIL_H

#include "hag/runtime/Status.h"

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace hag::rt::detail {

inline void appendPiece(std::string &out, std::string_view s) { out += s; }
inline void appendPiece(std::string &out, const char *s) { out += s; }
inline void appendPiece(std::string &out, const std::string &s) { out += s; }
inline void appendPiece(std::string &out, char c) { out += c; }

template <typename T>
std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, char> &&
                 !std::is_same_v<T, bool>>
appendPiece(std::string &out, T value) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, r.ptr);
}

/// Concatenates strings, characters and integers.
template <typename... Args> std::string strCat(const Args &...args) {
  std::string out;
  (appendPiece(out, args), ...);
  return out;
}

/// A failed Status whose message is the concatenation of `args`.
template <typename... Args> Status makeError(const Args &...args) {
  return Status::error(strCat(args...));
}

/// `s` in single quotes, with quotes, backslashes and non-printable bytes
/// escaped (\n, \xNN) so the message stays on one line, and cut after 200
/// bytes.
std::string quoted(std::string_view s);

/// The message of errno value `err` ("No such file or directory").
std::string errnoMessage(int err);

} // namespace hag::rt::detail

#endif // HAG_RUNTIME_SUPPORT_STRINGUTIL_H
