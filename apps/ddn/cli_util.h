// apps/ddn/cli_util.h: what every `ddn` subcommand shares.
//
// Exit codes and errors (docs/design.md §2): a subcommand's body runs inside RunGuarded, which maps
//   ddn::InvalidInput, bad command-line options     → exit 2 (kExitBadInput)
//   ddn::NumericalFailure, other runtime failures   → exit 1 (kExitNumericalFailure)
// and prints exactly one line on stderr, "ddn <command>: <message>", with any newline of the message
// folded into the line. Nothing else is ever written to stderr by a subcommand. Output that cannot be written
// (stdout on a full disk, a closed pipe) is a failure too: exit 1, one line (FinishStdout).
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

#include "ddn/batch.h"
#include "ddn/node.h"

namespace ddn::cli {

constexpr int kExitOk = 0;
constexpr int kExitNumericalFailure = 1;
constexpr int kExitBadInput = 2;

// Runs `body` and turns exceptions into an exit code and one line on stderr; then FinishStdout.
int RunGuarded(const std::string& command, const std::function<int()>& body);

// Flushes stdout. If that (or an earlier write) failed and `code` is 0, prints "<prefix>cannot write to standard
// output: <reason>" on stderr and returns 1; otherwise returns `code`.
int FinishStdout(const std::string& prefix, int code);


// The whole of `file` ("-": standard input). A folder, a file that cannot be opened or read: InvalidInput naming
// `what` ("request file") and the path (quoted, cut, escaped).
std::string ReadTextFile(const std::string& file, const std::string& what);

// `message` with newlines and tabs replaced by spaces, other control characters by '?', cut to
// its first 600 and last 300 bytes when longer than 1000.
std::string OneLine(const std::string& message);

// Parses argv (argv[0] is the subcommand) into `vm` with the named options of `options` and the given
// positional arguments. Throws boost::program_options::error (RunGuarded reports it, exit 2).
void ParseCommandLine(int argc, char** argv, const boost::program_options::options_description& options,
                      const boost::program_options::positional_options_description& positional,
                      boost::program_options::variables_map* vm);

// ParseCommandLine for `ddn COMMAND NODE [options]` (check, bench): the one positional argument is the node's
// name, stored in *node_name ("" if none was given).
void ParseNodeCommandLine(int argc, char** argv, const boost::program_options::options_description& options,
                          std::string* node_name, boost::program_options::variables_map* vm);

// Prints "Usage: <usage>\n\n<description>\n\n<options>" on stdout.
void PrintHelp(const std::string& usage, const std::string& description,
               const boost::program_options::options_description& options);

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
