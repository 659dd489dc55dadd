#include "ddn/node.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "ddn/error.h"
#include "ddn/random.h"
#include "ddn/registry_internal.h"

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

double Node::ObjectiveValue(const ProblemData&) const {
  return std::numeric_limits<double>::quiet_NaN();
}

void Node::SetSolverOption(const std::string& key, const std::string&) {
  throw InvalidInput("node '" + name() + "' has no generic solver: solver option '" + key + "' does not apply");
}

std::vector<CheckCase> Node::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  CheckCase c;
  c.name = "random";
  const int64_t batch = 3;
  for (const auto& in : spec_.inputs) {
    if (in.optional) continue;
    Shape shape{batch};
    for (const auto& d : in.dims) shape.push_back(std::isdigit(static_cast<unsigned char>(d[0])) ? std::stoll(d) : 4);
    Tensor t(shape);
    for (auto& v : t.values()) v = rng.Normal();
    c.inputs[in.name] = std::move(t);
  }
  return {c};
}

namespace {
struct Entry {
  NodeSpec spec;
  NodeFactory factory;
  std::string origin;      // "built-in" or a plugin's path
  std::string definition;  // "Class (file.cc:line)", or "" if the registration did not say
};
std::map<std::string, Entry>& Registry() {
  static std::map<std::string, Entry> registry;
  return registry;
}
// Non-null while a plugin loads (internal::BeginStaging .. EndStaging): registrations are collected here.
internal::Staging* staging = nullptr;
std::string Named(const std::string& definition) {
  return definition.empty() ? "a registration that does not name its code" : definition;
}
}  // namespace

std::string NodeDefinition(const char* class_name, const char* file, int line) {
  std::string path = file ? file : "?";
  const size_t slash = path.find_last_of("/\\");
  if (slash != std::string::npos) path = path.substr(slash + 1);
  return std::string(class_name ? class_name : "?") + " (" + path + ":" + std::to_string(line) + ")";
}

bool RegisterNode(const NodeSpec& spec, NodeFactory factory, const std::string& definition) {
  if (staging) {
    staging->nodes.push_back({spec, std::move(factory), definition});
    return true;
  }
  auto it = Registry().find(spec.name);
  if (it != Registry().end()) {
    throw InvalidInput("node '" + spec.name + "' is registered twice: by " + Named(it->second.definition) + " and by " +
                       Named(definition) + " (node names must be unique)");
  }
  Registry().emplace(spec.name, Entry{spec, std::move(factory), "built-in", definition});
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
    throw InvalidInput("unknown node " + QuoteForMessage(name) + " (known: " + known + ")");
  }
  return it->second.spec;
}

const std::vector<std::string>& ParamChoices(const std::string& node, const std::string& param) {
  const NodeSpec& spec = GetNodeSpec(node);
  for (const ParamSpec& p : spec.params)
    if (p.name == param) return p.choices;
  throw InvalidInput("node '" + node + "' has no parameter '" + param + "'");
}

std::unique_ptr<Node> MakeNode(const std::string& name, const std::map<std::string, std::string>& params) {
  const NodeSpec& spec = GetNodeSpec(name);
  return Registry().at(name).factory(Params(name, spec.params, params));
}

std::string NodeOrigin(const std::string& name) {
  GetNodeSpec(name);  // throws "unknown node"
  return Registry().at(name).origin;
}

namespace internal {

void BeginStaging(Staging* collect) {
  staging = collect;
}
void EndStaging() {
  staging = nullptr;
}

void CommitStaged(std::vector<StagedNode> nodes, const std::string& origin) {
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string& name = nodes[i].spec.name;
    for (size_t j = 0; j < i; ++j)
      if (nodes[j].spec.name == name)
        throw InvalidInput("it defines node '" + name + "' twice: by " + Named(nodes[j].definition) + " and by " +
                           Named(nodes[i].definition));
    auto it = Registry().find(name);
    if (it != Registry().end()) {
      const std::string& other = it->second.origin;
      throw InvalidInput("its node '" + name + "' is already registered (" +
                         (other == "built-in" ? other : "by plugin '" + other + "'") + "): by " +
                         Named(it->second.definition) + ", and the plugin's by " + Named(nodes[i].definition));
    }
  }
  for (auto& node : nodes) {
    std::string name = node.spec.name;  // not the moved-from spec's
    Registry().emplace(std::move(name), Entry{std::move(node.spec), std::move(node.factory), origin, node.definition});
  }
}

}  // namespace internal

}  // namespace ddn

extern "C" int ddn_registration_abi_matches(int abi_version, int cxx_stdlib_abi, const char* version) {
  if (abi_version == DDN_ABI_VERSION && cxx_stdlib_abi == DDN_CXX_STDLIB_ABI) return 1;
  const std::string mismatch = "it was built for ddn " + std::string(version ? version : "?") + " (ABI " +
                               std::to_string(abi_version) + ", C++ library ABI " + std::to_string(cxx_stdlib_abi) +
                               "), this is ddn " DDN_VERSION " (ABI " + std::to_string(DDN_ABI_VERSION) +
                               ", C++ library ABI " + std::to_string(DDN_CXX_STDLIB_ABI) +
                               "): rebuild it against this ddn";
  if (ddn::staging) {
    if (ddn::staging->abi_mismatch.empty()) ddn::staging->abi_mismatch = mismatch;
  } else {
    std::fprintf(stderr, "ddn: node code linked into this program: %s\n", mismatch.c_str());
  }
  return 0;
}
