// apps/ddn/command.h: subcommands of the `ddn` CLI.
//
// Each subcommand lives in its own apps/ddn/*_command.cc file and registers itself with
// DDN_REGISTER_COMMAND. `run` receives the arguments after the subcommand's name (argv[0] is the
// subcommand's name) and returns the process exit code: 0 ok, 1 numerical failure, 2 bad input.
// Every subcommand answers --help.
#pragma once

#include <string>
#include <vector>

namespace ddn::cli {

struct Command {
  std::string name;     // "eval"
  std::string summary;  // one line for `ddn --help`
  int (*run)(int argc, char** argv) = nullptr;
};

// Adds `command` (kept sorted by name). A name registered twice throws ddn::InternalError: at start-up, from a
// static initialiser, that ends the program with the message, as a duplicate must not ship.
bool RegisterCommand(const Command& command);
const std::vector<Command>& Commands();

}  // namespace ddn::cli

#define DDN_REGISTER_COMMAND(id, name, summary, fn) \
  static const bool ddn_command_##id [[maybe_unused]] = ::ddn::cli::RegisterCommand({name, summary, fn})
