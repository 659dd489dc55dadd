// `ddn bilevel`: bi-level hyperparameter optimisation (apps/bilevel/app.h has the options and the output).
//
// The work is done by the `ddn-bilevel` executable next to `ddn` (apps/bilevel/main.cc), which this command
// replaces itself with (execv, same arguments, same stdout/stderr and exit code): `ddn` then does not link
// OpenCV's image codecs, whose ~150 shared libraries would add ~0.1 s to the start of every `ddn eval`.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "apps/ddn/cli_util.h"
#include "apps/ddn/command.h"

namespace {

// The folder of the running executable ("" if unknown).
std::string ExecutableFolder() {
  std::vector<char> path(4096);
  const ssize_t n = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (n <= 0) return "";
  const std::string exe(path.data(), static_cast<size_t>(n));
  const size_t slash = exe.find_last_of('/');
  return slash == std::string::npos ? "" : exe.substr(0, slash);
}

int RunBilevel(int argc, char** argv) {
  const std::string folder = ExecutableFolder();
  const std::string exe = (folder.empty() ? std::string(".") : folder) + "/ddn-bilevel";
  if (access(exe.c_str(), X_OK) != 0) {
    std::cerr << "ddn bilevel: " << exe << " is missing; it is built with ddn (cmake --build build)" << std::endl;
    return ddn::cli::kExitNumericalFailure;
  }
  std::vector<char*> args{const_cast<char*>(exe.c_str())};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);  // argv[0] is "bilevel"
  args.push_back(nullptr);
  std::cout.flush();
  execv(exe.c_str(), args.data());
  std::cerr << "ddn bilevel: cannot run " << exe << ": " << std::strerror(errno) << std::endl;
  return ddn::cli::kExitNumericalFailure;
}

}  // namespace

DDN_REGISTER_COMMAND(bilevel, "bilevel",
                     "hyperparameter optimisation by implicit hypergradients: ridge, logistic, tv-denoise, "
                     "robust-regression, or any node with a named outer loss",
                     RunBilevel);
