#include "apps/ddn/command.h"

#include <algorithm>

#include "ddn/error.h"

namespace ddn::cli {
namespace {
std::vector<Command>& Registry() {
  static std::vector<Command> commands;
  return commands;
}
}  // namespace

bool RegisterCommand(const Command& command) {
  auto& commands = Registry();
  auto it = std::find_if(commands.begin(), commands.end(), [&](const Command& c) { return c.name == command.name; });
  // Two commands under one name are a bug of the build (one would silently answer for the other).
  DDN_CHECK(it == commands.end(), "the command '" + command.name + "' is registered twice");
  commands.push_back(command);
  std::sort(commands.begin(), commands.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  return true;
}

const std::vector<Command>& Commands() {
  return Registry();
}

}  // namespace ddn::cli
