//===- Json.cpp - a small strict JSON parser ------------------------------===//

#include "formats/Json.h"

#include "support/StringUtil.h"

#include <charconv>
#include <cmath>
#include <unordered_set>

using namespace hag::rt;
using namespace hag::rt::detail;
using namespace hag::rt::json;

const Value *Value::find(std::string_view key) const {
  for (const auto &m : members)
    if (m.first == key)
      return &m.second;
  return nullptr;
}

const char *hag::rt::json::kindName(Value::Kind kind) {
  switch (kind) {
  case Value::Kind::Null:
    return "null";
  case Value::Kind::Bool:
    return "a boolean";
  case Value::Kind::Integer:
    return "an integer";
  case Value::Kind::Real:
    return "a real number";
  case Value::Kind::String:
    return "a string";
  case Value::Kind::Array:
    return "an array";
  case Value::Kind::Object:
    return "an object";
  }
  return "a value";
}

/// Length of the valid UTF-8 sequence starting at `pos` (lead byte >= 0x80),
/// or 0 when it is invalid (overlong, surrogate, beyond U+10FFFF, cut).
static size_t utf8SequenceLength(std::string_view text, size_t pos) {
  auto byte = [&](size_t i) -> uint32_t {
    return pos + i < text.size() ? static_cast<uint8_t>(text[pos + i]) : 0;
  };
  uint32_t b0 = byte(0);
  auto cont = [&](size_t i) { return (byte(i) & 0xc0) == 0x80; };
  if (b0 >= 0xc2 && b0 <= 0xdf)
    return cont(1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    uint32_t b1 = byte(1);
    if (!cont(1) || !cont(2))
      return 0;
    if (b0 == 0xe0 && b1 < 0xa0) // overlong
      return 0;
    if (b0 == 0xed && b1 >= 0xa0) // UTF-16 surrogate
      return 0;
    return 3;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    uint32_t b1 = byte(1);
    if (!cont(1) || !cont(2) || !cont(3))
      return 0;
    if (b0 == 0xf0 && b1 < 0x90) // overlong
      return 0;
    if (b0 == 0xf4 && b1 >= 0x90) // beyond U+10FFFF
      return 0;
    return 4;
  }
  return 0;
}

bool hag::rt::json::isValidUtf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    size_t n = utf8SequenceLength(text, pos);
    if (n == 0)
      return false;
    pos += n;
  }
  return true;
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
public:
  Parser(std::string_view text, const ParseOptions &options)
      : text(text), options(options) {}

  Result<Value> parseDocument() {
    skipSpace();
    Value v;
    if (Status s = parseValue(v, 0); !s.ok())
      return s;
    skipSpace();
    if (pos != text.size())
      return errorHere("unexpected data after the JSON value");
    return v;
  }

private:
  std::string_view text;
  ParseOptions options;
  size_t pos = 0;

  Status errorAt(size_t offset, std::string_view what) {
    return makeError(what, " at byte ", offset);
  }
  Status errorHere(std::string_view what) { return errorAt(pos, what); }

  bool atEnd() const { return pos >= text.size(); }
  char peek() const { return text[pos]; }

  void skipSpace() {
    while (!atEnd()) {
      char c = peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
        break;
      ++pos;
    }
  }

  Status expect(char c) {
    if (atEnd())
      return errorHere(strCat("expected '", c, "' but the text ended"));
    if (peek() != c)
      return errorHere(strCat("expected '", c, "'"));
    ++pos;
    return Status::success();
  }

  Status parseValue(Value &out, int depth) {
    if (atEnd())
      return errorHere("expected a value but the text ended");
    out.offset = pos;
    char c = peek();
    switch (c) {
    case '{':
      return parseObject(out, depth + 1);
    case '[':
      return parseArray(out, depth + 1);
    case '"':
      out.kind = Value::Kind::String;
      return parseString(out.string);
    case 't':
      out.kind = Value::Kind::Bool;
      out.boolean = true;
      return parseKeyword("true");
    case 'f':
      out.kind = Value::Kind::Bool;
      return parseKeyword("false");
    case 'n':
      out.kind = Value::Kind::Null;
      return parseKeyword("null");
    default:
      if (c == '-' || (c >= '0' && c <= '9'))
        return parseNumber(out);
      return errorHere("expected a value");
    }
  }

  Status parseKeyword(std::string_view word) {
    if (text.substr(pos, word.size()) != word)
      return errorHere("invalid literal");
    pos += word.size();
    return Status::success();
  }

  /// An integer, or with allowReals a number with a fraction or exponent.
  Status parseNumber(Value &out) {
    size_t start = pos;
    if (!options.allowReals || !isRealAhead()) {
      out.kind = Value::Kind::Integer;
      return parseInteger(out.integer);
    }
    // RFC 8259: -? int frac? exp?
    if (peek() == '-')
      ++pos;
    if (atEnd() || !isDigit(peek()))
      return errorAt(start, "invalid number");
    if (peek() == '0' && pos + 1 < text.size() && isDigit(text[pos + 1]))
      return errorAt(start, "number with a leading zero");
    skipDigits();
    if (!atEnd() && peek() == '.') {
      ++pos;
      if (atEnd() || !isDigit(peek()))
        return errorAt(start, "invalid number: no digit after '.'");
      skipDigits();
    }
    if (!atEnd() && (peek() == 'e' || peek() == 'E')) {
      ++pos;
      if (!atEnd() && (peek() == '+' || peek() == '-'))
        ++pos;
      if (atEnd() || !isDigit(peek()))
        return errorAt(start, "invalid number: no digit in the exponent");
      skipDigits();
    }
    // from_chars is locale-independent; it rejects a leading '+' only, which
    // the grammar above already excludes.
    double value = 0.0;
    auto r = std::from_chars(text.data() + start, text.data() + pos, value);
    if (r.ec != std::errc() || r.ptr != text.data() + pos ||
        !std::isfinite(value))
      return errorAt(start, "number out of range");
    out.kind = Value::Kind::Real;
    out.real = value;
    return Status::success();
  }

  static bool isDigit(char c) { return c >= '0' && c <= '9'; }

  void skipDigits() {
    while (!atEnd() && isDigit(peek()))
      ++pos;
  }

  /// True when the number starting at `pos` has a fraction or an exponent.
  bool isRealAhead() const {
    size_t i = pos;
    if (i < text.size() && text[i] == '-')
      ++i;
    while (i < text.size() && isDigit(text[i]))
      ++i;
    return i < text.size() &&
           (text[i] == '.' || text[i] == 'e' || text[i] == 'E');
  }

  Status parseInteger(int64_t &out) {
    size_t start = pos;
    bool negative = false;
    if (peek() == '-') {
      negative = true;
      ++pos;
    }
    if (atEnd() || peek() < '0' || peek() > '9')
      return errorAt(start, "invalid number");
    if (peek() == '0' && pos + 1 < text.size() && text[pos + 1] >= '0' &&
        text[pos + 1] <= '9')
      return errorAt(start, "number with a leading zero");
    // Accumulate negatively so INT64_MIN is representable.
    int64_t value = 0;
    while (!atEnd() && peek() >= '0' && peek() <= '9') {
      int digit = peek() - '0';
      if (__builtin_mul_overflow(value, 10, &value) ||
          __builtin_sub_overflow(value, digit, &value))
        return errorAt(start, "integer out of range");
      ++pos;
    }
    if (!atEnd() && (peek() == '.' || peek() == 'e' || peek() == 'E'))
      return errorAt(start,
                     "numbers with a fraction or exponent are not supported");
    if (!negative) {
      if (value == INT64_MIN)
        return errorAt(start, "integer out of range");
      value = -value;
    }
    out = value;
    return Status::success();
  }

  Status parseHex4(uint32_t &out) {
    if (text.size() - pos < 4)
      return errorHere("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text[pos + i];
      uint32_t d;
      if (c >= '0' && c <= '9')
        d = c - '0';
      else if (c >= 'a' && c <= 'f')
        d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        d = c - 'A' + 10;
      else
        return errorAt(pos + i, "invalid hex digit in \\u escape");
      out = out * 16 + d;
    }
    pos += 4;
    return Status::success();
  }

  static void appendUtf8(std::string &out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  Status parseString(std::string &out) {
    size_t start = pos;
    ++pos; // opening quote
    out.clear();
    while (true) {
      if (atEnd())
        return errorAt(start, "unterminated string");
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos;
        return Status::success();
      }
      if (c < 0x20)
        return errorHere("control character in string");
      if (c >= 0x80) {
        size_t n = utf8SequenceLength(text, pos);
        if (n == 0)
          return errorHere("invalid UTF-8 in string");
        out.append(text.data() + pos, n);
        pos += n;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos;
        continue;
      }
      size_t escape = pos;
      ++pos;
      if (atEnd())
        return errorAt(start, "unterminated string");
      char e = peek();
      ++pos;
      switch (e) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (Status s = parseHex4(cp); !s.ok())
          return s;
        if (cp >= 0xdc00 && cp <= 0xdfff)
          return errorAt(escape, "unpaired low surrogate in \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (text.substr(pos, 2) != "\\u")
            return errorAt(escape, "unpaired high surrogate in \\u escape");
          pos += 2;
          uint32_t low;
          if (Status s = parseHex4(low); !s.ok())
            return s;
          if (low < 0xdc00 || low > 0xdfff)
            return errorAt(escape, "unpaired high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        return errorAt(escape, "invalid escape in string");
      }
    }
  }

  Status parseArray(Value &out, int depth) {
    if (depth > kMaxDepth)
      return errorHere("JSON nested too deeply");
    out.kind = Value::Kind::Array;
    ++pos; // '['
    skipSpace();
    if (!atEnd() && peek() == ']') {
      ++pos;
      return Status::success();
    }
    while (true) {
      skipSpace();
      Value element;
      if (Status s = parseValue(element, depth); !s.ok())
        return s;
      out.elements.push_back(std::move(element));
      skipSpace();
      if (atEnd())
        return errorHere("unterminated array");
      if (peek() == ',') {
        ++pos;
        continue;
      }
      if (peek() == ']') {
        ++pos;
        return Status::success();
      }
      return errorHere("expected ',' or ']' in array");
    }
  }

  Status parseObject(Value &out, int depth) {
    if (depth > kMaxDepth)
      return errorHere("JSON nested too deeply");
    out.kind = Value::Kind::Object;
    ++pos; // '{'
    skipSpace();
    if (!atEnd() && peek() == '}') {
      ++pos;
      return Status::success();
    }
    std::unordered_set<std::string> seen;
    while (true) {
      skipSpace();
      if (atEnd())
        return errorHere("unterminated object");
      if (peek() != '"')
        return errorHere("expected a string key in object");
      size_t keyOffset = pos;
      std::string key;
      if (Status s = parseString(key); !s.ok())
        return s;
      if (!seen.insert(key).second)
        return errorAt(keyOffset, strCat("duplicate key ", quoted(key)));
      skipSpace();
      if (Status s = expect(':'); !s.ok())
        return s;
      skipSpace();
      Value member;
      if (Status s = parseValue(member, depth); !s.ok())
        return s;
      out.members.emplace_back(std::move(key), std::move(member));
      skipSpace();
      if (atEnd())
        return errorHere("unterminated object");
      if (peek() == ',') {
        ++pos;
        continue;
      }
      if (peek() == '}') {
        ++pos;
        return Status::success();
      }
      return errorHere("expected ',' or '}' in object");
    }
  }
};

} // namespace

Result<Value> hag::rt::json::parse(std::string_view text,
                                   const ParseOptions &options) {
  return Parser(text, options).parseDocument();
}

void hag::rt::json::appendQuoted(std::string &out, std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
}
