// apps/common/app.h: the command-line toolkit every ddn program shares (the `ddn` CLI and the demos).
//
// The CLI contract (docs/design.md §2): options are parsed by Boost.Program_options with the same conventions
// everywhere (long options, no abbreviations: `--lr` never stands for `--lr-decay`); `--help` prints the usage on
// stdout and exits 0; any other failure prints exactly one line on stderr, "<program>: <message>", prints nothing
// on stdout, and exits with
//   kExitBadInput (2)          ddn::InvalidInput, a bad command-line option (boost::program_options::error);
//   kExitNumericalFailure (1)  ddn::NumericalFailure, ddn::InternalError, out of memory, any other exception,
//                              output that cannot be written (stdout on a full disk, a closed pipe).
// A program's main is therefore
//
//   int main(int argc, char** argv) {
//     return ddn::app::RunGuarded("ddn-demo", [&] {
//       po::options_description options("Options");
//       options.add_options()("help,h", "show this help")("lr", po::value<double>(), "learning rate");
//       po::variables_map vm;
//       ddn::app::ParseCommandLine(argc, argv, options, {}, &vm);
//       if (vm.count("help")) return ddn::app::PrintHelp(options);
//       const double lr = ddn::app::InRange<double>(vm, "lr", 0.002, "(0, 10]", ...);
//       ...
//       return ddn::app::kExitOk;
//     });
//   }
//
// with the settings checked (InRange, ParseList, CheckImageOutput, ddn/files.h) before any long work starts, long
// work reported by a Progress bar on stderr, and files written atomically (WriteImage, ddn::WriteFileAtomically).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "ddn/error.h"

namespace cv {
class Mat;
}

namespace ddn::app {

constexpr int kExitOk = 0;
constexpr int kExitNumericalFailure = 1;
constexpr int kExitBadInput = 2;

// What RunGuarded says besides the message.
struct GuardOptions {
  std::string help_hint;           // after a bad option: " (see <help_hint>)"; empty: "<program> --help"
  std::string out_of_memory_hint;  // after "out of memory": e.g. " (try a smaller --batch-size)"
};

// Runs `body` and turns every exception into its exit code and one line "<program>: <message>" on stderr (see
// above); then flushes stdout (FinishStdout). Returns body's exit code otherwise.
int RunGuarded(const std::string& program, const std::function<int()>& body, const GuardOptions& options = {});
// The same with the output and error streams given (a command run in-process, e.g. by its tests): the message goes
// to `err`, and a failed `out` (after a flush) turns exit 0 into "<program>: cannot write to standard output", 1.
int RunGuarded(const std::string& program, const std::function<int()>& body, std::ostream& out, std::ostream& err,
               const GuardOptions& options = {});

// Flushes stdout. If that (or an earlier write) failed and `code` is 0, prints "<program>: cannot write to standard
// output: <reason>" on stderr and returns kExitNumericalFailure; otherwise returns `code`.
int FinishStdout(const std::string& program, int code);

// `message` with newlines and tabs replaced by spaces, other control characters by '?', trailing spaces removed,
// cut to its first 600 and last 300 bytes when longer than 1000 (Boost names the option at the end).
std::string OneLine(const std::string& message);

// Parses argv (argv[0] is the program or subcommand, skipped) into `vm`: the named `options` and the positional
// arguments, unix style without guessing of abbreviations. Throws boost::program_options::error (exit 2).
void ParseCommandLine(int argc, char** argv, const boost::program_options::options_description& options,
                      const boost::program_options::positional_options_description& positional,
                      boost::program_options::variables_map* vm);

// Prints `options` (its caption first) on stdout and returns kExitOk; with `usage`, "Usage: <usage>\n\n" and
// `description` come first.
int PrintHelp(const boost::program_options::options_description& options);
int PrintHelp(const std::string& usage, const std::string& description,
              const boost::program_options::options_description& options);

// The whole of `file` ("-": standard input). A folder, a file that cannot be opened or read: InvalidInput naming
// `what` ("request file") and the path (quoted, cut, escaped).
std::string ReadTextFile(const std::string& file, const std::string& what);

// Adds --seed to `options`: decimal digits only, at most 2^64 − 1 (ddn::ParseSeed; Boost would read "-1" as
// 2^64 − 1), stored in *seed when the options are notified; its current value is the default.
void AddSeedOption(boost::program_options::options_description* options, uint64_t* seed, const std::string& doc);

// ---- Lists and bounds -----------------------------------------------------------------------------------------

// The non-empty items of a comma-separated list ("a,,b" → {"a", "b"}).
std::vector<std::string> SplitList(const std::string& text);

// The items of a comma-separated list parsed as T (the whole item must parse). Throws InvalidInput
// "--<option>: cannot parse '<item>'" or "--<option> is empty".
template <typename T>
std::vector<T> ParseList(const std::string& text, const std::string& option) {
  std::vector<T> out;
  for (const std::string& item : SplitList(text)) {
    std::istringstream is(item);
    T value;
    if (!(is >> value) || !is.eof()) throw InvalidInput("--" + option + ": cannot parse '" + item.substr(0, 200) + "'");
    out.push_back(value);
  }
  if (out.empty()) throw InvalidInput("--" + option + " is empty");
  return out;
}

// `value` itself if lo <= value <= hi (NaN never is); else InvalidInput "--<option> must be in <range>, got
// <value>", where `range` says the bounds as the user should read them ("[1, 100000]", "(0, 10]").
template <typename T>
T RequireInRange(const std::string& option, T value, T lo, T hi, const std::string& range) {
  if (!(value >= lo && value <= hi)) {
    std::ostringstream text;
    text << "--" << option << " must be in " << range << ", got " << value;
    throw InvalidInput(text.str());
  }
  return value;
}

// The option `name` of `vm` if given (then it must lie in [lo, hi], see RequireInRange), else `fallback`.
template <typename T>
T InRange(const boost::program_options::variables_map& vm, const std::string& name, T fallback, T lo, T hi,
          const std::string& range) {
  if (!vm.count(name)) return fallback;
  return RequireInRange(name, vm[name].as<T>(), lo, hi, range);
}

// The smallest positive double, for open lower bounds: InRange(vm, "lr", 0.002, kTiny, 10.0, "(0, 10]").
constexpr double kTiny = std::numeric_limits<double>::min();

// ---- Outputs ----------------------------------------------------------------------------------------------------

// An image file the program will write: ddn::CheckOutputFile (the folder exists and is writable, the path is not a
// folder) and an extension OpenCV can encode. Throws InvalidInput naming the option and the path.
void CheckImageOutput(const std::string& option, const std::string& path);

// Encodes `image` by the extension of `path` and writes it atomically (ddn::WriteFileAtomically). Throws
// InvalidInput if OpenCV cannot encode it, ddn::Error if the write fails.
void WriteImage(const std::string& path, const cv::Mat& image);

// Seconds of wall-clock time since `start` (std::chrono::steady_clock), for the demos' timings.
double SecondsSince(std::chrono::steady_clock::time_point start);

// ---- Progress -------------------------------------------------------------------------------------------------

// A progress bar on stderr: on a terminal "\r<label> [#####.....]  50% <extra>" redrawn by Update and ended by
// Finish; elsewhere (a log, a test) nothing until Finish prints one line "<label> <extra>".
class Progress {
 public:
  // `label` is padded to `label_width` columns.
  Progress(std::string label, int total, int label_width = 28);
  // `done` of `total` steps; `extra` follows the bar (a loss, an accuracy).
  void Update(int done, const std::string& extra = "");
  void Finish(const std::string& extra = "");

 private:
  std::string label_;
  int total_;
  int label_width_;
  bool tty_;
};

}  // namespace ddn::app
