// The `ddn` command-line tool: `ddn COMMAND [options]`. The commands register themselves
// (apps/ddn/command.h); see the README's "The ddn command line" for the reference.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <glog/logging.h>

#include "apps/ddn/cli_util.h"
#include "apps/ddn/command.h"

#ifndef DDN_VERSION
#define DDN_VERSION "unknown"
#endif

namespace {

void PrintUsage() {
  std::cout << "Usage: ddn COMMAND [options]\n\n"
               "ddn: deep declarative networks. Layers whose output is y(x) = argmin_y f(x, y) subject to\n"
               "constraints, differentiated by the implicit function theorem.\n\n"
               "Commands:\n";
  for (const auto& c : ddn::cli::Commands()) {
    std::string name = c.name;
    name.resize(std::max<size_t>(name.size() + 2, 10), ' ');
    std::cout << "  " << name << c.summary << "\n";
  }
  std::cout << "\n`ddn COMMAND --help` (or `ddn help COMMAND`) describes a command.\n"
               "Exit codes: 0 ok, 1 numerical failure, 2 bad input; errors are one line on stderr.\n"
            << std::flush;
}

const ddn::cli::Command* Find(const std::string& name) {
  for (const auto& c : ddn::cli::Commands())
    if (c.name == name) return &c;
  return nullptr;
}

int UnknownCommand(const std::string& name) {
  std::string known;
  for (const auto& c : ddn::cli::Commands()) known += (known.empty() ? "" : ", ") + c.name;
  std::cerr << "ddn: unknown command '" << name << "' (commands: " << known << "; see ddn --help)" << std::endl;
  return ddn::cli::kExitBadInput;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  // Errors are one line on stderr (docs/design.md §2): keep Ceres' glog warnings off it, unless asked.
  if (!std::getenv("DDN_LOG")) FLAGS_minloglevel = google::GLOG_FATAL;
  if (argc < 2) {
    std::cerr << "ddn: no command given (see ddn --help)" << std::endl;
    return ddn::cli::kExitBadInput;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h") {
    PrintUsage();
    return ddn::cli::kExitOk;
  }
  if (first == "--version") {
    std::cout << "ddn " << DDN_VERSION << std::endl;
    return ddn::cli::kExitOk;
  }
  if (first == "help") {
    if (argc < 3) {
      PrintUsage();
      return ddn::cli::kExitOk;
    }
    const ddn::cli::Command* c = Find(argv[2]);
    if (!c) return UnknownCommand(argv[2]);
    char help[] = "--help";
    char* args[] = {argv[2], help, nullptr};
    return c->run(2, args);
  }
  if (!first.empty() && first[0] == '-') {
    std::cerr << "ddn: unknown option '" << first << "' before the command (see ddn --help)" << std::endl;
    return ddn::cli::kExitBadInput;
  }
  const ddn::cli::Command* c = Find(first);
  if (!c) return UnknownCommand(first);
  return c->run(argc - 1, argv + 1);
}
