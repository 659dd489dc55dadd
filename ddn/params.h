// ddn/params.h: a node's parameters, declared once, validated once.
//
// A node declares its parameters as ParamSpecs (name, type, default, meaning). A request gives some of
// them as strings (the CLI and JSON layer turn numbers into strings with full precision); Params
// checks the names against the spec, fills in defaults and parses values on access. Every parameter
// has a default, so a request without parameters is valid. Range checks that depend on the node
// (α > 0, radius > 0) are done by the node's constructor with the Require* helpers below, which
// throw InvalidInput with a message that names the node, the parameter and the value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ddn {

// What a parameter's text must parse as: a finite decimal number, an integer, true/false, or one of `choices`.
enum class ParamType { kFloat, kInt, kBool, kChoice };

// "float", "int", "bool" or "choice": the name `ddn nodes` and the JSON description show.
const char* ParamTypeName(ParamType type);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kFloat;
  std::string default_value;         // as text, e.g. "1", "pseudo_huber"
  std::string doc;                   // one line: what it means
  std::vector<std::string> choices;  // for ParamType::kChoice
};

class Params {
 public:
  Params() = default;
  // Validates `given` against `specs` (unknown names, unparsable values, values outside `choices`)
  // and fills defaults. `node` names the node in error messages. Throws InvalidInput.
  Params(const std::string& node, const std::vector<ParamSpec>& specs, const std::map<std::string, std::string>& given);

  double GetDouble(const std::string& name) const;
  int GetInt(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  const std::string& GetString(const std::string& name) const;
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  const std::map<std::string, std::string>& values() const { return values_; }
  const std::string& node() const { return node_; }

  // Range checks for constructors; throw InvalidInput naming node, parameter and value.
  double RequirePositive(const std::string& name) const;
  double RequireNonNegative(const std::string& name) const;
  int RequireIntInRange(const std::string& name, int lo, int hi) const;

 private:
  std::string node_;
  std::map<std::string, std::string> values_;
};

// Formats a double so that it parses back to the same value ("%.17g", trimmed).
std::string FormatDouble(double value);

// A value given by a user, made safe to echo in a one-line error message: in single quotes, at most
// `max_bytes` bytes of it (then "..." and its full length), control characters, quotes, backslashes and
// bytes that are not valid UTF-8 escaped (\n, \t, \', \\, \xHH). QuoteForMessage("a\nb") is 'a\nb'.
std::string QuoteForMessage(const std::string& value, size_t max_bytes = 200);
// A seed given as text (a command-line option): decimal digits only, at most 2^64 − 1. Boost.Program_options and
// strtoull would read "-1" as 2^64 − 1. Throws InvalidInput naming `option` and the text.
uint64_t ParseSeed(const std::string& text, const std::string& option);

// The same escaping without the quotes (and "..." when cut): for text that is not one value, such as a JSON path
// or a parser's message.
std::string EscapeForMessage(const std::string& value, size_t max_bytes = 200);

}  // namespace ddn
