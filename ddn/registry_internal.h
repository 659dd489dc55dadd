// ddn/registry_internal.h: the node registry's hooks for the plugin loader (ddn/plugin.cc); not for node code.
//
// While a plugin's static initialisers run (inside dlopen), DDN_REGISTER_NODE's registrations are staged
// instead of registered, and an ABI mismatch is recorded instead of acted upon. The loader then checks the
// plugin (entry point, ABI, names) and commits the staged nodes with the plugin as their origin, or drops
// them: a refused plugin leaves the registry as it was.
#pragma once

#include <string>
#include <vector>

#include "ddn/node.h"

namespace ddn::internal {

struct StagedNode {
  NodeSpec spec;
  NodeFactory factory;
  std::string definition;  // "Class (file.cc:line)" (RegisterNode's `definition`)
};

struct Staging {
  std::vector<StagedNode> nodes;
  std::string abi_mismatch;  // the first mismatch reported by ddn_registration_abi_matches, "" if none
};

// Between BeginStaging(s) and EndStaging(), RegisterNode appends to s->nodes. Not thread-safe: the loader
// holds a lock.
void BeginStaging(Staging* collect);
void EndStaging();

// Registers `nodes` with `origin`, all or none: throws InvalidInput ("its node 'x' is already registered
// (built-in): by A (a.cc:12), and the plugin's by B (b.cc:34)", "it defines node 'x' twice: by ...") if a name
// is taken.
void CommitStaged(std::vector<StagedNode> nodes, const std::string& origin);

}  // namespace ddn::internal
