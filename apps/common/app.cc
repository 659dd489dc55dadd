#include "apps/common/app.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "ddn/files.h"
#include "ddn/params.h"

namespace po = boost::program_options;

namespace ddn::app {

std::string OneLine(const std::string& message) {
  // Messages quote what a user gave through ddn::QuoteForMessage; this is the last guard for text from elsewhere
  // (Boost's option errors echo the argument whole): other control characters become '?', and a long line is cut
  // to its first 600 and last 300 bytes (Boost names the option at the end: "the argument ('...') for option
  // '--threads' is invalid").
  std::string line =
      message.size() > 1000 ? message.substr(0, 600) + " ... " + message.substr(message.size() - 300) : message;
  for (char& c : line) {
    if (c == '\n' || c == '\r' || c == '\t') {
      c = ' ';
    } else if ((c >= 0 && c < 0x20) || c == 0x7F) {
      c = '?';
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line.empty() ? "unknown error" : line;
}

int FinishStdout(const std::string& program, int code) {
  errno = 0;
  std::cout.flush();
  const bool failed = !std::cout || std::fflush(stdout) != 0 || std::ferror(stdout);
  if (!failed || code != kExitOk) return code;
  const int error = errno;
  std::cerr << program << ": cannot write to standard output" << (error ? std::string(": ") + std::strerror(error) : "")
            << std::endl;
  return kExitNumericalFailure;
}

namespace {

// Runs `body`, every exception to its exit code and one line on `err`.
int Guard(const std::string& program, const std::function<int()>& body, std::ostream& err,
          const GuardOptions& options) {
  // Every branch prints one line; what a handler itself might throw (a failed write to stderr) is not caught.
  try {
    return body();
  } catch (const InvalidInput& e) {
    err << program << ": " << OneLine(e.what()) << std::endl;
    return kExitBadInput;
  } catch (const po::error& e) {
    err << program << ": " << OneLine(e.what()) << " (see "
        << (options.help_hint.empty() ? program + " --help" : options.help_hint) << ")" << std::endl;
    return kExitBadInput;
  } catch (const NumericalFailure& e) {
    err << program << ": numerical failure: " << OneLine(e.what()) << std::endl;
  } catch (const InternalError& e) {
    err << program << ": internal error (a bug, please report it): " << OneLine(e.what()) << std::endl;
  } catch (const std::bad_alloc&) {
    err << program << ": out of memory" << options.out_of_memory_hint << std::endl;
  } catch (const std::exception& e) {
    err << program << ": failure: " << OneLine(e.what()) << std::endl;
  } catch (...) {
    err << program << ": failure: an exception of unknown type" << std::endl;
  }
  return kExitNumericalFailure;
}

}  // namespace

int RunGuarded(const std::string& program, const std::function<int()>& body, const GuardOptions& options) {
  return FinishStdout(program, Guard(program, body, std::cerr, options));
}

int RunGuarded(const std::string& program, const std::function<int()>& body, std::ostream& out, std::ostream& err,
               const GuardOptions& options) {
  const int code = Guard(program, body, err, options);
  out.flush();
  if (code != kExitOk || out) return code;
  err << program << ": cannot write to standard output" << std::endl;
  return kExitNumericalFailure;
}

void ParseCommandLine(int argc, char** argv, const po::options_description& options,
                      const po::positional_options_description& positional, po::variables_map* vm) {
  // argv[0] is the program's or subcommand's name; command_line_parser skips it.
  po::store(po::command_line_parser(argc, argv)
                .options(options)
                .positional(positional)
                .style(po::command_line_style::unix_style ^ po::command_line_style::allow_guessing)
                .run(),
            *vm);
  po::notify(*vm);
}

int PrintHelp(const po::options_description& options) {
  std::cout << options << "\n" << std::flush;
  return kExitOk;
}

int PrintHelp(const std::string& usage, const std::string& description, const po::options_description& options) {
  std::cout << "Usage: " << usage << "\n\n" << description << "\n\n" << options << std::flush;
  return kExitOk;
}

void AddSeedOption(po::options_description* options, uint64_t* seed, const std::string& doc) {
  options->add_options()(
      "seed", po::value<std::string>()->default_value(std::to_string(*seed))->notifier([seed](const std::string& text) {
        *seed = ParseSeed(text, "--seed");
      }),
      doc.c_str());
}

std::string ReadTextFile(const std::string& file, const std::string& what) {
  std::string text;
  if (file == "-") {
    std::ostringstream buffer;
    buffer << std::cin.rdbuf();
    if (std::cin.bad()) throw InvalidInput("cannot read the " + what + " from standard input");
    return buffer.str();
  }
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw InvalidInput(what + " " + QuoteForMessage(file) + " is a directory");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InvalidInput("cannot read " + what + " " + QuoteForMessage(file) + ": " + std::strerror(errno));
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) text.append(chunk, static_cast<size_t>(in.gcount()));
  if (in.bad()) throw InvalidInput("cannot read " + what + " " + QuoteForMessage(file));
  return text;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void CheckImageOutput(const std::string& option, const std::string& path) {
  CheckOutputFile(option, path);
  bool writable = false;
  try {
    writable = cv::haveImageWriter(path);
  } catch (const cv::Exception&) {
    writable = false;
  }
  if (!writable) {
    const std::string extension = FileExtension(path);
    throw InvalidInput(option + " " + QuoteForMessage(path) + ": OpenCV cannot write images of type " +
                       (extension.empty() ? std::string("(no extension)") : QuoteForMessage(extension)) + "; use .png");
  }
}

void WriteImage(const std::string& path, const cv::Mat& image) {
  std::vector<uchar> bytes;
  bool encoded = false;
  try {
    encoded = cv::imencode(FileExtension(path), image, bytes);
  } catch (const cv::Exception&) {
    encoded = false;
  }
  if (!encoded) throw InvalidInput("cannot encode the image " + QuoteForMessage(path));
  WriteFileAtomically(path, std::string(bytes.begin(), bytes.end()));
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Progress::Progress(std::string label, int total, int label_width)
    : label_(std::move(label)), total_(total), label_width_(label_width), tty_(isatty(2)) {}

void Progress::Update(int done, const std::string& extra) {
  if (!tty_) return;
  const int width = 30;
  const int shown = total_ > 0 ? std::clamp(done, 0, total_) : 1;
  const int whole = total_ > 0 ? total_ : 1;
  const int filled = width * shown / whole;
  std::fprintf(stderr, "\r%-*s [%s%s] %3d%% %s", label_width_, label_.c_str(), std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), 100 * shown / whole, extra.c_str());
  std::fflush(stderr);
}

void Progress::Finish(const std::string& extra) {
  if (tty_) {
    Update(total_, extra);
    std::fprintf(stderr, "\n");
  } else {
    std::fprintf(stderr, "%-*s %s\n", label_width_, label_.c_str(), extra.c_str());
  }
  std::fflush(stderr);
}

}  // namespace ddn::app
