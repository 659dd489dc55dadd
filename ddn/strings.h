// ddn/strings.h: joining and formatting text for messages, tables and labels.
//
//   Join({"a", "b"})                      "a, b"       (the separator is ", " unless given)
//   Join(spec.inputs, ", ", [](const TensorSpec& t) { return t.name; })
//                                         the same over any range, each item turned into text by a function
//   StrFormat("%.1f%% of %d", 12.5, 8)    "12.5% of 8" (printf's format, checked by the compiler, into a string
//                                         of any length: no fixed-size buffer to truncate)
#pragma once

#include <cstdarg>
#include <string>
#include <utility>
#include <vector>

namespace ddn {

// The items of `range` turned into text by `to_text` and separated by `separator`.
template <class Range, class ToText>
std::string Join(const Range& range, const std::string& separator, ToText&& to_text) {
  std::string text;
  bool first = true;
  for (const auto& item : range) {
    if (!first) text += separator;
    text += to_text(item);
    first = false;
  }
  return text;
}

// The strings of `items` separated by `separator`.
inline std::string Join(const std::vector<std::string>& items, const std::string& separator = ", ") {
  return Join(items, separator, [](const std::string& s) -> const std::string& { return s; });
}

// printf into a std::string.
std::string StrFormat(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace ddn
