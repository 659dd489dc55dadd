#include "ddn/gradient_mode.h"

#include <algorithm>
#include <cstdlib>

#include "ddn/error.h"
#include "ddn/params.h"

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
    // Digits only (strtol alone would take " 3" and "+3"), at most 7 of them.
    const bool digits = !k.empty() && k.size() <= 7 && k.find_first_not_of("0123456789") == std::string::npos;
    const long value = digits ? std::strtol(k.c_str(), &end, 10) : 0;
    if (digits && value >= 1 && value <= 1000000) {
      mode.kind = kTruncated;
      mode.steps = static_cast<int>(value);
      return mode;
    }
  }
  throw InvalidInput("gradient mode " + QuoteForMessage(text) +
                     " must be implicit, unrolled or truncated:K with an integer K from 1 to 1000000");
}

}  // namespace ddn
