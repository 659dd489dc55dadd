#include "ddn/params.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "ddn/error.h"

namespace ddn {
namespace {

bool ParseDouble(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool ParseInt(const std::string& text, int* out) {
  if (text.empty()) return false;
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

std::string Join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

}  // namespace

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
  for (const auto& [name, value] : given) {
    auto it = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == name; });
    if (it == specs.end()) {
      throw InvalidInput("unknown parameter '" + name + "' for node '" + node + "'" +
                         (known.empty() ? " (it takes no parameters)" : " (known: " + Join(known) + ")"));
    }
  }
  for (const auto& spec : specs) {
    auto it = given.find(spec.name);
    const std::string value = it == given.end() ? spec.default_value : it->second;
    const std::string where = "parameter '" + spec.name + "' of node '" + node + "'";
    if (spec.type == "float") {
      double v;
      if (!ParseDouble(value, &v)) throw InvalidInput(where + " must be a finite number, got '" + value + "'");
    } else if (spec.type == "int") {
      int v;
      if (!ParseInt(value, &v)) throw InvalidInput(where + " must be an integer, got '" + value + "'");
    } else if (spec.type == "bool") {
      bool v;
      if (!ParseBool(value, &v)) throw InvalidInput(where + " must be true or false, got '" + value + "'");
    } else if (spec.type == "choice") {
      if (std::find(spec.choices.begin(), spec.choices.end(), value) == spec.choices.end()) {
        throw InvalidInput(where + " must be one of " + Join(spec.choices) + ", got '" + value + "'");
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
    throw InvalidInput("parameter '" + name + "' of node '" + node_ + "' must be in [" + std::to_string(lo) +
                       ", " + std::to_string(hi) + "], got " + std::to_string(v));
  }
  return v;
}

}  // namespace ddn
