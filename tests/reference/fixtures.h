// tests/reference/fixtures.h: reading the reference library's answers (tests/reference/*.json) in tests.
//
// A fixture file is {"cases": [case, ...]} and a case is a `ddn eval` request with the reference's answer,
//   {"node": NAME, "params": {...}, "inputs": {NAME: nested array}, "grad_outputs": {NAME: nested array},
//    "want": {"outputs": {...}, "grad_inputs": {...}}, ...}
// (bench/reference/make_fixtures.py writes them; tests/reference/README.md says how exact they are).
// Header-only, for tests.
#pragma once

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ddn/params.h"
#include "ddn/tensor.h"

namespace ddn::testing {

// A nested JSON array of numbers as a row-major Tensor (a number is a scalar of shape ()).
inline Tensor TensorFromJson(const nlohmann::json& j) {
  Shape shape;
  const nlohmann::json* level = &j;
  while (level->is_array()) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->empty()) break;
    level = &(*level)[0];
  }
  std::vector<double> values;
  // Depth-first, left to right: row-major order.
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& v) {
    if (v.is_array()) {
      for (const auto& e : v) walk(e);
    } else {
      values.push_back(v.get<double>());
    }
  };
  walk(j);
  return Tensor(shape, values);
}

// The cases of a fixture file whose "node" is `node` (all cases if `node` is empty).
inline std::vector<nlohmann::json> LoadCases(const std::string& path, const std::string& node = "") {
  std::ifstream file(path);
  if (!file) return {};
  const nlohmann::json all = nlohmann::json::parse(file);
  std::vector<nlohmann::json> cases;
  for (const auto& c : all.at("cases"))
    if (node.empty() || c.at("node") == node) cases.push_back(c);
  return cases;
}

// A case's parameters as the strings ddn::MakeNode takes.
inline std::map<std::string, std::string> CaseParams(const nlohmann::json& c) {
  std::map<std::string, std::string> params;
  if (!c.contains("params")) return params;
  for (const auto& [k, v] : c.at("params").items()) {
    if (v.is_string()) {
      params[k] = v.get<std::string>();
    } else if (v.is_boolean()) {
      params[k] = v.get<bool>() ? "true" : "false";
    } else {
      params[k] = FormatDouble(v.get<double>());
    }
  }
  return params;
}

// A JSON object of nested arrays as a map of Tensors.
inline std::map<std::string, Tensor> TensorsFromJson(const nlohmann::json& object) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, v] : object.items()) out[k] = TensorFromJson(v);
  return out;
}

}  // namespace ddn::testing
