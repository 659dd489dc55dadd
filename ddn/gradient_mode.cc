#include "ddn/gradient_mode.h"

#include <algorithm>
#include <cstdlib>

#include "ddn/error.h"

namespace ddn {

int GradientMode::StepsOf(int recorded) const {
  switch (kind) {
    case kImplicit:
      return 0;
    case kUnrolled:
      return recorded;
    case kTruncated:
      return std::min(steps, recorded);
  }
  return 0;
}

std::string GradientMode::ToString() const {
  switch (kind) {
    case kImplicit:
      return "implicit";
    case kUnrolled:
      return "unrolled";
    case kTruncated:
      return "truncated:" + std::to_string(steps);
  }
  return "implicit";
}

GradientMode GradientMode::Parse(const std::string& text) {
  GradientMode mode;
  if (text == "implicit") return mode;
  if (text == "unrolled") {
    mode.kind = kUnrolled;
    return mode;
  }
  const std::string prefix = "truncated:";
  if (text.compare(0, prefix.size(), prefix) == 0) {
    const std::string k = text.substr(prefix.size());
    char* end = nullptr;
    const long value = k.empty() ? 0 : std::strtol(k.c_str(), &end, 10);
    if (!k.empty() && *end == '\0' && value >= 1 && value <= 1000000) {
      mode.kind = kTruncated;
      mode.steps = static_cast<int>(value);
      return mode;
    }
  }
  throw InvalidInput("gradient mode '" + text + "' must be implicit, unrolled or truncated:K with an integer K >= 1");
}

}  // namespace ddn
