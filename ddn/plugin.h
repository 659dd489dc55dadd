// ddn/plugin.h: libraries of nodes loaded at run time.
//
// A plugin is a shared library whose nodes register themselves with DDN_REGISTER_NODE, exactly as built-in
// nodes do, plus one entry point, ddn_plugin_info(), that says which ddn it was built against. Programs load
// plugins by path: the `ddn` tool with `ddn --plugin lib.so COMMAND ...` or the DDN_PLUGINS environment
// variable (paths separated by ':'), the Python module `ddn` with ddn.load_plugin(path) or DDN_PLUGINS. Every
// registered node, built-in or loaded, is then available by name (ddn::MakeNode, `ddn nodes`, `ddn eval`,
// ddn.Node(...)), and ddn::NodeOrigin tells which plugin brought it.
//
// Building one. With CMake, `ddn_add_node_library(mynodes PLUGIN a.cc b.cc)` after `find_package(ddn)` (or
// inside ddn's tree) builds libmynodes.so with the entry point added. Without it: compile the sources against
// ddn's headers, put DDN_PLUGIN() in one of them, link libddn (never ddn::nodes: the built-in nodes are already
// in the program that loads the plugin, and a second copy would register their names twice).
//
// Loading is all or nothing. LoadPlugin opens the library (dlopen: its static initialisers run and its nodes'
// registrations are held back, ddn/registry_internal.h), then refuses it with ddn::InvalidInput, leaving the
// registry unchanged, when
//   - the file does not exist or cannot be loaded (not a shared library, an undefined symbol: dlerror's text),
//   - it has no ddn_plugin_info symbol (not a ddn plugin),
//   - it was built for another ddn ABI (DDN_ABI_VERSION, ddn/version.h: major.minor) or another C++ library
//     ABI; DDN_REGISTER_NODE checks this before calling anything of the library, by a C function,
//   - one of its node names is already registered (built-in or by another plugin) or appears twice.
// The message is one line and starts with "plugin 'PATH'". Loading the same file again does nothing.
// Plugins are never unloaded. Load plugins before using the registry from several threads: loading is
// serialised, but lookups do not wait for it.
#pragma once

#include <string>
#include <vector>

#include "ddn/node.h"
#include "ddn/version.h"

namespace ddn {

struct PluginInfo {
  std::string path;                // canonical absolute path of the library
  std::vector<std::string> nodes;  // the names it registered, sorted
};

// Loads the plugin at `path` (a file path; the library search path is not used). Returns what it registered.
// Throws InvalidInput (see above).
PluginInfo LoadPlugin(const std::string& path);

// Loads every plugin named in the environment variable DDN_PLUGINS (paths separated by ':', empty entries
// skipped). Throws InvalidInput at the first one refused.
std::vector<PluginInfo> LoadPluginsFromEnvironment();

// The plugins loaded so far, in load order.
std::vector<PluginInfo> LoadedPlugins();

}  // namespace ddn

// The entry point of a plugin, a C struct so that reading it does not depend on the ABI being checked.
extern "C" {
struct ddn_plugin_info_t {
  int abi_version;          // DDN_ABI_VERSION the plugin was compiled with
  int cxx_stdlib_abi;       // DDN_CXX_STDLIB_ABI (ddn/node.h)
  const char* ddn_version;  // DDN_VERSION
};
}

// In exactly one source file of a plugin (ddn_add_node_library(... PLUGIN ...) generates it).
#define DDN_PLUGIN()                                                                             \
  extern "C" __attribute__((visibility("default"))) const ddn_plugin_info_t* ddn_plugin_info() { \
    static const ddn_plugin_info_t info{DDN_ABI_VERSION, DDN_CXX_STDLIB_ABI, DDN_VERSION};       \
    return &info;                                                                                \
  }
