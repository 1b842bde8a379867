//===- Status.h - hagrt error reporting -------------------------*- C++ -*-===//
//
// Errors in the runtime are values, never exceptions: every fallible function
// returns a Status or a Result<T> carrying a one-line message that names the
// file (or other input) and what is wrong with it.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_STATUS_H
#define HAG_RUNTIME_STATUS_H

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace hag::rt {

/// Success, or failure with a one-line human-readable message.
class [[nodiscard]] Status {
public:
  /// A successful status.
  Status() = default;

  /// A successful status (spelled out for readability at return sites).
  static Status success() { return Status(); }

  /// A failed status. An empty message is replaced by "unknown error" so a
  /// failure can never be mistaken for success.
  static Status error(std::string message) {
    Status s;
    s.failed = true;
    s.msg = message.empty() ? std::string("unknown error") : std::move(message);
    return s;
  }

  /// True on success.
  bool ok() const { return !failed; }

  /// The error message; empty on success.
  const std::string &message() const { return msg; }

  /// Returns this error with `prefix` and ": " in front of the message, for
  /// callers that add context (a file name). Success stays success.
  Status withPrefix(const std::string &prefix) const {
    if (ok())
      return *this;
    return error(prefix + ": " + msg);
  }

private:
  bool failed = false;
  std::string msg;
};

/// A value of type T, or a failed Status explaining why there is none.
template <typename T> class [[nodiscard]] Result {
public:
  /// A successful result holding `value`.
  Result(T value) : val(std::move(value)) {}

  /// A failed result. Constructing one from a successful Status is a
  /// programming error; it is turned into a failure rather than an empty
  /// success.
  Result(Status error) : st(std::move(error)) {
    assert(!st.ok() && "Result constructed from a successful Status");
    if (st.ok())
      st = Status::error("internal error: Result built from a success status");
  }

  /// True when a value is present.
  bool ok() const { return val.has_value(); }

  /// The status: success when a value is present, else the error.
  const Status &status() const { return st; }

  /// The error message; empty on success.
  const std::string &message() const { return st.message(); }

  /// The value. Must only be called when ok().
  T &value() & {
    assert(ok());
    return *val;
  }
  const T &value() const & {
    assert(ok());
    return *val;
  }
  T &&value() && {
    assert(ok());
    return std::move(*val);
  }

  T &operator*() & { return value(); }
  const T &operator*() const & { return value(); }
  T &&operator*() && { return std::move(*this).value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }

private:
  std::optional<T> val;
  Status st;
};

} // namespace hag::rt

#endif // HAG_RUNTIME_STATUS_H
