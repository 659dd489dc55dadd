// The `ddn` command-line tool: `ddn COMMAND [options]`. The commands register themselves
// (apps/ddn/command.h); see the README's "The ddn command line" for the reference.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include <glog/logging.h>

#include "apps/ddn/cli_util.h"
#include "apps/ddn/command.h"
#include "ddn/error.h"
#include "ddn/params.h"
#include "ddn/plugin.h"
#include "ddn/strings.h"

#ifndef DDN_VERSION
#define DDN_VERSION "unknown"
#endif

namespace {

void PrintUsage() {
  std::cout << "Usage: ddn [--plugin LIB.so ...] COMMAND [options]\n\n"
               "ddn: deep declarative networks. Layers whose output is y(x) = argmin_y f(x, y) subject to\n"
               "constraints, differentiated by the implicit function theorem.\n\n"
               "Commands:\n";
  for (const auto& c : ddn::cli::Commands()) {
    std::string name = c.name;
    name.resize(std::max<size_t>(name.size() + 2, 10), ' ');
    std::cout << "  " << name << c.summary << "\n";
  }
  std::cout << "\n--plugin LIB.so (repeatable, before the command) loads a shared library of nodes, as do the paths\n"
               "in $DDN_PLUGINS (separated by ':'); `ddn nodes` shows where each node comes from.\n"
               "`ddn COMMAND --help` (or `ddn help COMMAND`) describes a command.\n"
               "Exit codes: 0 ok, 1 numerical failure, 2 bad input; errors are one line on stderr.\n"
            << std::flush;
}

const ddn::cli::Command* Find(const std::string& name) {
  for (const auto& c : ddn::cli::Commands())
    if (c.name == name) return &c;
  return nullptr;
}

int UnknownCommand(const std::string& name) {
  const std::string known = ddn::Join(ddn::cli::Commands(), ", ", [](const ddn::cli::Command& c) { return c.name; });
  std::cerr << "ddn: unknown command " << ddn::QuoteForMessage(name) << " (commands: " << known << "; see ddn --help)"
            << std::endl;
  return ddn::cli::kExitBadInput;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  // Errors are one line on stderr (docs/design.md §2): keep Ceres' glog warnings off it, unless asked.
  if (!std::getenv("DDN_LOG")) FLAGS_minloglevel = google::GLOG_FATAL;
  // Libraries of nodes (ddn/plugin.h): those of $DDN_PLUGINS, then each leading --plugin PATH.
  int skip = 0;
  try {
    ddn::LoadPluginsFromEnvironment();
    while (1 + skip < argc) {
      const std::string arg = argv[1 + skip];
      if (arg == "--plugin") {
        if (2 + skip >= argc) throw ddn::InvalidInput("--plugin needs the path of a library of nodes");
        ddn::LoadPlugin(argv[2 + skip]);
        skip += 2;
      } else if (arg.rfind("--plugin=", 0) == 0) {
        ddn::LoadPlugin(arg.substr(9));
        skip += 1;
      } else {
        break;
      }
    }
  } catch (const ddn::InvalidInput& e) {
    std::cerr << "ddn: " << ddn::cli::OneLine(e.what()) << std::endl;
    return ddn::cli::kExitBadInput;
  } catch (const std::exception& e) {
    // A library whose static initialisers throw, memory exhausted: still one line, exit 1.
    std::cerr << "ddn: loading plugins: " << ddn::cli::OneLine(e.what()) << std::endl;
    return ddn::cli::kExitNumericalFailure;
  }
  argv[skip] = argv[0];
  argv += skip;
  argc -= skip;
  if (argc < 2) {
    std::cerr << "ddn: no command given (see ddn --help)" << std::endl;
    return ddn::cli::kExitBadInput;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h") {
    PrintUsage();
    return ddn::app::FinishStdout("ddn", ddn::cli::kExitOk);
  }
  if (first == "--version") {
    std::cout << "ddn " << DDN_VERSION << std::endl;
    return ddn::app::FinishStdout("ddn", ddn::cli::kExitOk);
  }
  if (first == "help") {
    if (argc < 3) {
      PrintUsage();
      return ddn::app::FinishStdout("ddn", ddn::cli::kExitOk);
    }
    const ddn::cli::Command* c = Find(argv[2]);
    if (!c) return UnknownCommand(argv[2]);
    char help[] = "--help";
    char* args[] = {argv[2], help, nullptr};
    return c->run(2, args);
  }
  if (!first.empty() && first[0] == '-') {
    std::cerr << "ddn: unknown option " << ddn::QuoteForMessage(first) << " before the command (see ddn --help)"
              << std::endl;
    return ddn::cli::kExitBadInput;
  }
  const ddn::cli::Command* c = Find(first);
  if (!c) return UnknownCommand(first);
  return c->run(argc - 1, argv + 1);
}
