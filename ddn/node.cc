#include "ddn/node.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "ddn/error.h"

namespace ddn {

int NodeSpec::InputIndex(const std::string& n) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == n) return static_cast<int>(i);
  return -1;
}

int NodeSpec::OutputIndex(const std::string& n) const {
  for (size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].name == n) return static_cast<int>(i);
  return -1;
}

int64_t ProblemData::Dim(const std::string& symbol) const {
  auto it = dims->find(symbol);
  if (it == dims->end()) throw InvalidInput("shape symbol '" + symbol + "' is not bound");
  return it->second;
}

void Node::GenericSolve(const ProblemData&, ProblemStatus*) const {
  throw InvalidInput("node '" + name() + "' has no generic (Ceres) forward path");
}

void Node::GenericBackward(const ProblemData&, ProblemStatus*) const {
  throw InvalidInput("node '" + name() + "' has no generic implicit backward");
}

double Node::Objective(const ProblemData&) const { return std::numeric_limits<double>::quiet_NaN(); }

std::vector<CheckCase> Node::CheckCases(uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  CheckCase c;
  c.name = "random";
  const int64_t batch = 3;
  for (const auto& in : spec_.inputs) {
    if (in.optional) continue;
    Shape shape{batch};
    for (const auto& d : in.dims) shape.push_back(std::isdigit(static_cast<unsigned char>(d[0])) ? std::stoll(d) : 4);
    Tensor t(shape);
    for (auto& v : t.values()) v = normal(rng);
    c.inputs[in.name] = std::move(t);
  }
  return {c};
}

namespace {
struct Entry {
  NodeSpec spec;
  NodeFactory factory;
};
std::map<std::string, Entry>& Registry() {
  static std::map<std::string, Entry> registry;
  return registry;
}
}  // namespace

bool RegisterNode(const NodeSpec& spec, NodeFactory factory) {
  Registry()[spec.name] = Entry{spec, std::move(factory)};
  return true;
}

std::vector<std::string> NodeNames() {
  std::vector<std::string> names;
  for (const auto& [name, entry] : Registry()) names.push_back(name);
  return names;
}

const NodeSpec& GetNodeSpec(const std::string& name) {
  auto it = Registry().find(name);
  if (it == Registry().end()) {
    std::string known;
    for (const auto& n : NodeNames()) known += (known.empty() ? "" : ", ") + n;
    throw InvalidInput("unknown node '" + name + "' (known: " + known + ")");
  }
  return it->second.spec;
}

std::unique_ptr<Node> MakeNode(const std::string& name, const std::map<std::string, std::string>& params) {
  const NodeSpec& spec = GetNodeSpec(name);
  return Registry().at(name).factory(Params(name, spec.params, params));
}

}  // namespace ddn
