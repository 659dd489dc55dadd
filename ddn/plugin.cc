#include "ddn/plugin.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "ddn/error.h"
#include "ddn/params.h"
#include "ddn/registry_internal.h"

namespace ddn {
namespace {

std::mutex& LoadMutex() {
  static std::mutex mutex;
  return mutex;
}

std::vector<PluginInfo>& Loaded() {
  static std::vector<PluginInfo> loaded;
  return loaded;
}

// dlerror()'s text on one line ("" if none).
std::string DlError() {
  const char* e = dlerror();
  // It names the file: escaped and cut like every echoed value.
  return e ? EscapeForMessage(e, 400) : "";
}

// Closes a refused library after its staged registrations (whose factories point into it) are gone.
struct Handle {
  void* handle = nullptr;
  ~Handle() {
    if (handle) dlclose(handle);
  }
};

}  // namespace

PluginInfo LoadPlugin(const std::string& path) {
  const std::string what = "plugin " + QuoteForMessage(path);
  if (path.empty()) throw InvalidInput("plugin '': empty path");
  std::error_code error;
  const std::filesystem::path file(path);
  if (!std::filesystem::exists(file, error)) throw InvalidInput(what + ": no such file");
  if (!std::filesystem::is_regular_file(file, error)) throw InvalidInput(what + ": not a regular file");
  const std::string canonical = std::filesystem::canonical(file, error).string();
  if (error) throw InvalidInput(what + ": " + error.message());

  std::lock_guard<std::mutex> lock(LoadMutex());
  for (const auto& p : Loaded())
    if (p.path == canonical) return p;

  Handle library;
  internal::Staging staged;
  {
    internal::BeginStaging(&staged);
    dlerror();
    library.handle = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
    internal::EndStaging();
  }
  if (!library.handle) throw InvalidInput(what + ": cannot load it: " + DlError());

  dlerror();
  void* entry = dlsym(library.handle, "ddn_plugin_info");
  if (!entry) {
    staged.nodes.clear();
    throw InvalidInput(what +
                       " is not a ddn node library: it has no symbol ddn_plugin_info (build it with "
                       "ddn_add_node_library(NAME PLUGIN ...), or put DDN_PLUGIN() in one of its source files)");
  }
  using InfoFunction = const ddn_plugin_info_t* (*)();
  const ddn_plugin_info_t* info = reinterpret_cast<InfoFunction>(entry)();
  if (!info || info->abi_version != DDN_ABI_VERSION || info->cxx_stdlib_abi != DDN_CXX_STDLIB_ABI) {
    staged.nodes.clear();
    const std::string version = info && info->ddn_version ? info->ddn_version : "?";
    throw InvalidInput(what + " was built for ddn " + version + " (ABI " +
                       (info ? std::to_string(info->abi_version) : "?") + ", C++ library ABI " +
                       (info ? std::to_string(info->cxx_stdlib_abi) : "?") + "), this is ddn " DDN_VERSION " (ABI " +
                       std::to_string(DDN_ABI_VERSION) + ", C++ library ABI " + std::to_string(DDN_CXX_STDLIB_ABI) +
                       "): rebuild it against this ddn");
  }
  if (!staged.abi_mismatch.empty()) {
    staged.nodes.clear();
    throw InvalidInput(what + ": " + staged.abi_mismatch);
  }

  PluginInfo result;
  result.path = canonical;
  for (const auto& n : staged.nodes) result.nodes.push_back(n.spec.name);
  std::sort(result.nodes.begin(), result.nodes.end());
  try {
    internal::CommitStaged(std::move(staged.nodes), canonical);
  } catch (const InvalidInput& e) {
    staged.nodes.clear();
    throw InvalidInput(what + ": " + e.what());
  }
  library.handle = nullptr;  // its nodes are registered: keep it loaded for the life of the process
  Loaded().push_back(result);
  return result;
}

std::vector<PluginInfo> LoadPluginsFromEnvironment() {
  std::vector<PluginInfo> loaded;
  const char* env = std::getenv("DDN_PLUGINS");
  if (!env) return loaded;
  const std::string list = env;
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t end = list.find(':', begin);
    if (end == std::string::npos) end = list.size();
    const std::string path = list.substr(begin, end - begin);
    if (!path.empty()) {
      try {
        loaded.push_back(LoadPlugin(path));
      } catch (const InvalidInput& e) {
        throw InvalidInput(std::string("DDN_PLUGINS: ") + e.what());
      }
    }
    begin = end + 1;
  }
  return loaded;
}

std::vector<PluginInfo> LoadedPlugins() {
  std::lock_guard<std::mutex> lock(LoadMutex());
  return Loaded();
}

}  // namespace ddn
