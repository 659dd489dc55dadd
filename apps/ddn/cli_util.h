// apps/ddn/cli_util.h: what every `ddn` subcommand shares, on top of the toolkit of every ddn program
// (apps/common/app.h: parsing, exit codes, one-line errors).
//
// Exit codes and errors (docs/design.md §2): a subcommand's body runs inside RunGuarded, which maps
//   ddn::InvalidInput, bad command-line options                      → exit 2 (kExitBadInput)
//   ddn::NumericalFailure, internal errors, other runtime failures   → exit 1 (kExitNumericalFailure)
// and prints exactly one line on stderr, "ddn <command>: <message>", with any newline of the message
// folded into the line. Nothing else is ever written to stderr by a subcommand. Output that cannot be written
// (stdout on a full disk, a closed pipe) is a failure too: exit 1, one line (app::FinishStdout).
//
// Options shared by eval, check and bench: `--param KEY=VALUE` (repeatable), `--threads N` (0 to kMaxThreads),
// `--generic`, `--backward implicit|unrolled|truncated:K` (ddn/gradient_mode.h), `--solver KEY=VALUE` (repeatable:
// an option of the node's generic solver, ddn/generic_solver.h). Values echoed in messages go through
// ddn::QuoteForMessage (at most ~200 bytes, escaped).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "apps/common/app.h"
#include "ddn/batch.h"
#include "ddn/node.h"

namespace ddn::cli {

using app::kExitBadInput;
using app::kExitNumericalFailure;
using app::kExitOk;
using app::OneLine;
using app::ParseCommandLine;
using app::PrintHelp;
using app::ReadTextFile;

// app::RunGuarded for the subcommand `command`: messages start with "ddn <command>: ".
int RunGuarded(const std::string& command, const std::function<int()>& body);

// ParseCommandLine for `ddn COMMAND NODE [options]` (check, bench): the one positional argument is the node's
// name, stored in *node_name ("" if none was given).
void ParseNodeCommandLine(int argc, char** argv, const boost::program_options::options_description& options,
                          std::string* node_name, boost::program_options::variables_map* vm);

// "k=v" strings (from repeated --param) as a map. Throws InvalidInput on a missing '=', an empty key
// or a key given twice.
std::map<std::string, std::string> ParseParamAssignments(const std::vector<std::string>& assignments);

// Adds --threads, --generic and --backward to `options`, bound to `run`.
void AddRunOptions(boost::program_options::options_description* options, RunOptions* run);
// Throws InvalidInput unless 0 <= run.threads <= kMaxThreads.
void CheckRunOptions(const RunOptions& run);

// Adds --solver KEY=VALUE (repeatable) to `options`, collected in `assignments`.
void AddSolverOptions(boost::program_options::options_description* options, std::vector<std::string>* assignments);
// Sets each KEY=VALUE on the node's generic solver (Node::SetSolverOption). Throws InvalidInput naming a malformed
// assignment, an unknown key or a bad value, or a node without a generic solver.
void ApplySolverOptions(Node* node, const std::vector<std::string>& assignments);

}  // namespace ddn::cli
