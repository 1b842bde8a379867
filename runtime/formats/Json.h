//===- Json.h - a small strict JSON parser (internal) -----------*- C++ -*-===//
//
// Just enough JSON for safetensors headers and artifact manifests, and strict
// about it: RFC 8259 objects, arrays, strings (all escapes, surrogate pairs,
// UTF-8 validated), integers that fit int64_t, true, false and null.
// Fractions and exponents are rejected unless ParseOptions::allowReals is set
// (artifact manifests hold reals such as "eps": 1e-06); duplicate object
// keys, leading zeros, control characters in strings and nesting deeper than
// 64 are always rejected. Errors give the byte offset. Not part of the public
// runtime API.
//
//===----------------------------------------------------------------------===//

#ifndef HAG_RUNTIME_FORMATS_JSON_H
#define HAG_RUNTIME_FORMATS_JSON_H

#include "hag/runtime/Status.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hag::rt::json {

/// One parsed JSON value. Objects keep their members in file order.
struct Value {
  enum class Kind { Null, Bool, Integer, Real, String, Array, Object };

  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;
  /// The value of a Real (a number with a fraction or an exponent; only
  /// produced with ParseOptions::allowReals).
  double real = 0.0;
  std::string string;
  std::vector<Value> elements;
  std::vector<std::pair<std::string, Value>> members;
  /// Byte offset of the value's first character in the parsed text.
  size_t offset = 0;

  bool isObject() const { return kind == Kind::Object; }
  bool isArray() const { return kind == Kind::Array; }
  bool isString() const { return kind == Kind::String; }
  bool isInteger() const { return kind == Kind::Integer; }
  /// True for an Integer or a Real.
  bool isNumber() const { return kind == Kind::Integer || kind == Kind::Real; }
  /// An Integer or Real as a double (0 for other kinds).
  double asDouble() const {
    return kind == Kind::Real      ? real
           : kind == Kind::Integer ? static_cast<double>(integer)
                                   : 0.0;
  }

  /// The member called `key`, or nullptr (objects only).
  const Value *find(std::string_view key) const;
};

/// Name of a kind for messages: "an object", "a string"...
const char *kindName(Value::Kind kind);

/// What parse() accepts beyond the strict default.
struct ParseOptions {
  /// Accept numbers with a fraction or an exponent (RFC 8259 syntax) as
  /// Kind::Real; numbers without either stay Kind::Integer. A real that
  /// overflows a double is an error.
  bool allowReals = false;
};

/// Parses exactly one value; only whitespace may surround it. Errors read
/// "<what> at byte <offset>".
Result<Value> parse(std::string_view text, const ParseOptions &options = {});

/// True when `text` is valid UTF-8 (no overlong forms or surrogates).
bool isValidUtf8(std::string_view text);

/// Appends `s` as a JSON string literal (quotes, escapes for '"', '\\' and
/// control characters; other bytes verbatim).
void appendQuoted(std::string &out, std::string_view s);

} // namespace hag::rt::json

#endif // HAG_RUNTIME_FORMATS_JSON_H
