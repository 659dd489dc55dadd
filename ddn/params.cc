#include "ddn/params.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "ddn/error.h"
#include "ddn/strings.h"

namespace ddn {

const char* ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kFloat:
      return "float";
    case ParamType::kInt:
      return "int";
    case ParamType::kBool:
      return "bool";
    case ParamType::kChoice:
      return "choice";
  }
  return "?";
}
namespace {

// A decimal number as a user writes one: [+-]digits[.digits][(e|E)[+-]digits], with digits on at least one
// side of the point. strtod alone would also take hexadecimal ("0x10"), "inf", "nan" and leading spaces.
bool IsDecimalNumber(const std::string& text) {
  size_t i = 0;
  const size_t n = text.size();
  auto digits = [&]() {
    const size_t start = i;
    while (i < n && text[i] >= '0' && text[i] <= '9') ++i;
    return i - start;
  };
  if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
  size_t mantissa = digits();
  if (i < n && text[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == n;
}

bool ParseDouble(const std::string& text, double* out) {
  if (!IsDecimalNumber(text)) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  // ERANGE also marks an underflow (5e-324 is subnormal, 1e-400 rounds to 0): those are numbers; an overflow is
  // not finite.
  if (end != text.c_str() + text.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool ParseInt(const std::string& text, int* out) {
  size_t i = (!text.empty() && (text[0] == '+' || text[0] == '-')) ? 1 : 0;
  if (i == text.size()) return false;
  for (; i < text.size(); ++i)
    if (text[i] < '0' || text[i] > '9') return false;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (end != text.c_str() + text.size() || errno == ERANGE || v < -2147483647L || v > 2147483647L) {
    return false;
  }
  *out = static_cast<int>(v);
  return true;
}

bool ParseBool(const std::string& text, bool* out) {
  if (text == "true" || text == "1") return *out = true, true;
  if (text == "false" || text == "0") return *out = false, true;
  return false;
}

// The length of the valid UTF-8 sequence starting at text[i] (2 to 4 bytes), or 0 if there is none.
size_t Utf8SequenceLength(const std::string& text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t len = 0;
  uint32_t code = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    code = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    code = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    code = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, UTF-16 surrogates and code points beyond U+10FFFF are not valid UTF-8.
  if ((len == 3 && code < 0x800) || (len == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
      (code >= 0xD800 && code <= 0xDFFF)) {
    return 0;
  }
  return len;
}

}  // namespace

namespace {

// The escaped text of at most max_bytes bytes of `value`; *consumed = the bytes of `value` it covers.
std::string Escape(const std::string& value, size_t max_bytes, size_t* consumed) {
  std::string out;
  size_t i = 0;
  while (i < value.size() && i < max_bytes) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else if (const size_t len = c >= 0x80 ? Utf8SequenceLength(value, i) : 0; len > 0) {
      if (i + len > max_bytes) break;  // a multi-byte character that does not fit: cut before it
      out.append(value, i, len);
      i += len;
      continue;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
    ++i;
  }
  *consumed = i;
  return out;
}

}  // namespace

std::string QuoteForMessage(const std::string& value, size_t max_bytes) {
  size_t consumed = 0;
  std::string out = "'" + Escape(value, max_bytes, &consumed) + "'";
  if (consumed < value.size()) out += "... (" + std::to_string(value.size()) + " bytes)";
  return out;
}

uint64_t ParseSeed(const std::string& text, const std::string& option) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos) {
    throw InvalidInput(option + " must be an integer from 0 to 2^64 - 1, got " + QuoteForMessage(text));
  }
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE) throw InvalidInput(option + " must be at most 2^64 - 1, got " + QuoteForMessage(text));
  return static_cast<uint64_t>(v);
}

std::string EscapeForMessage(const std::string& value, size_t max_bytes) {
  size_t consumed = 0;
  std::string out = Escape(value, max_bytes, &consumed);
  if (consumed < value.size()) out += "...";
  return out;
}

std::string FormatDouble(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  // Prefer the shortest text that round-trips.
  for (int precision = 1; precision < 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, value);
    if (std::strtod(shorter, nullptr) == value) return shorter;
  }
  return buf;
}

Params::Params(const std::string& node, const std::vector<ParamSpec>& specs,
               const std::map<std::string, std::string>& given)
    : node_(node) {
  std::vector<std::string> known;
  for (const auto& spec : specs) known.push_back(spec.name);
  for (const auto& entry : given) {
    const std::string& name = entry.first;  // (a lambda cannot capture a structured binding in C++17)
    auto it = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == name; });
    if (it == specs.end()) {
      throw InvalidInput("unknown parameter " + QuoteForMessage(name) + " for node '" + node + "'" +
                         (known.empty() ? " (it takes no parameters)" : " (known: " + Join(known) + ")"));
    }
  }
  for (const auto& spec : specs) {
    auto it = given.find(spec.name);
    const std::string value = it == given.end() ? spec.default_value : it->second;
    const std::string where = "parameter '" + spec.name + "' of node '" + node + "'";
    if (spec.type == ParamType::kFloat) {
      double v;
      if (!ParseDouble(value, &v)) {
        throw InvalidInput(where + " must be a finite decimal number, got " + QuoteForMessage(value));
      }
    } else if (spec.type == ParamType::kInt) {
      int v;
      if (!ParseInt(value, &v)) throw InvalidInput(where + " must be an integer, got " + QuoteForMessage(value));
    } else if (spec.type == ParamType::kBool) {
      bool v;
      if (!ParseBool(value, &v)) throw InvalidInput(where + " must be true or false, got " + QuoteForMessage(value));
    } else if (spec.type == ParamType::kChoice) {
      if (std::find(spec.choices.begin(), spec.choices.end(), value) == spec.choices.end()) {
        throw InvalidInput(where + " must be one of " + Join(spec.choices) + ", got " + QuoteForMessage(value));
      }
    }
    values_[spec.name] = value;
  }
}

const std::string& Params::GetString(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw InvalidInput("node '" + node_ + "' has no parameter '" + name + "'");
  return it->second;
}

double Params::GetDouble(const std::string& name) const {
  double v = 0;
  if (!ParseDouble(GetString(name), &v)) {
    throw InvalidInput("parameter '" + name + "' of node '" + node_ + "' is not a finite number");
  }
  return v;
}

int Params::GetInt(const std::string& name) const {
  int v = 0;
  if (!ParseInt(GetString(name), &v)) {
    throw InvalidInput("parameter '" + name + "' of node '" + node_ + "' is not an integer");
  }
  return v;
}

bool Params::GetBool(const std::string& name) const {
  bool v = false;
  if (!ParseBool(GetString(name), &v)) {
    throw InvalidInput("parameter '" + name + "' of node '" + node_ + "' is not true or false");
  }
  return v;
}

double Params::RequirePositive(const std::string& name) const {
  const double v = GetDouble(name);
  if (!(v > 0)) {
    throw InvalidInput("parameter '" + name + "' of node '" + node_ + "' must be > 0, got " + FormatDouble(v));
  }
  return v;
}

double Params::RequireNonNegative(const std::string& name) const {
  const double v = GetDouble(name);
  if (!(v >= 0)) {
    throw InvalidInput("parameter '" + name + "' of node '" + node_ + "' must be >= 0, got " + FormatDouble(v));
  }
  return v;
}

int Params::RequireIntInRange(const std::string& name, int lo, int hi) const {
  const int v = GetInt(name);
  if (v < lo || v > hi) {
    throw InvalidInput("parameter '" + name + "' of node '" + node_ + "' must be in [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "], got " + std::to_string(v));
  }
  return v;
}

}  // namespace ddn
