#include "ddn/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "ddn/error.h"
#include "ddn/params.h"

namespace fs = std::filesystem;

namespace ddn {
namespace {

// The folder a file would be written to ("." for a bare name).
fs::path ParentFolder(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

void RequireWritableFolder(const std::string& option, const std::string& shown, const fs::path& folder) {
  std::error_code ec;
  if (!fs::exists(folder, ec)) {
    throw InvalidInput(option + " " + QuoteForMessage(shown) + ": the folder " + QuoteForMessage(folder.string()) +
                       " does not exist");
  }
  if (!fs::is_directory(folder, ec)) {
    throw InvalidInput(option + " " + QuoteForMessage(shown) + ": " + QuoteForMessage(folder.string()) +
                       " is not a folder");
  }
  if (access(folder.c_str(), W_OK | X_OK) != 0) {
    throw InvalidInput(option + " " + QuoteForMessage(shown) + ": the folder " + QuoteForMessage(folder.string()) +
                       " is not writable (" + std::strerror(errno) + ")");
  }
}

}  // namespace

std::string FileExtension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

void CheckOutputFile(const std::string& option, const std::string& path) {
  if (path.empty()) throw InvalidInput(option + " is empty");
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InvalidInput(option + " " + QuoteForMessage(path) + " is a folder, not a file");
  if (fs::path(path).filename().empty()) {
    throw InvalidInput(option + " " + QuoteForMessage(path) + " names a folder, not a file");
  }
  RequireWritableFolder(option, path, ParentFolder(path));
  if (fs::exists(path, ec) && access(path.c_str(), W_OK) != 0) {
    throw InvalidInput(option + " " + QuoteForMessage(path) + " exists and is not writable");
  }
}

void CheckOutputFolder(const std::string& option, const std::string& folder) {
  if (folder.empty()) throw InvalidInput(option + " is empty");
  RequireWritableFolder(option, folder, fs::path(folder));
}

void RequireDistinctOutputs(const NamedPaths& inputs, const NamedPaths& outputs) {
  auto resolve = [](const std::string& path) {
    std::error_code ec;
    const fs::path absolute = fs::absolute(path, ec);
    if (ec) return fs::path(path).lexically_normal();
    const fs::path p = fs::weakly_canonical(absolute, ec);
    return ec ? absolute.lexically_normal() : p;
  };
  NamedPaths seen = inputs;  // every output is compared with the inputs and the outputs before it
  for (const auto& [option, path] : outputs) {
    if (path.empty()) continue;
    const fs::path resolved = resolve(path);
    for (const auto& [other_option, other] : seen) {
      if (other.empty() || resolve(other) != resolved) continue;
      throw InvalidInput(option + " " + QuoteForMessage(path) + " is the same file as " + other_option + " " +
                         QuoteForMessage(other));
    }
    seen.push_back({option, path});
  }
}

void WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const fs::path target(path);
  std::string temp = (ParentFolder(path) / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = mkstemp(temp.data());
  if (fd < 0) throw Error("cannot write " + QuoteForMessage(path) + ": " + std::strerror(errno));
  size_t written = 0;
  int error = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (!error && fsync(fd) != 0) error = errno;
  if (close(fd) != 0 && !error) error = errno;
  // mkstemp creates the file 0600; give it the usual permissions of a new file.
  if (!error) {
    const mode_t mask = umask(0);
    umask(mask);
    if (chmod(temp.c_str(), 0666 & ~mask) != 0) error = errno;
  }
  if (!error && std::rename(temp.c_str(), path.c_str()) != 0) error = errno;
  if (error) {
    unlink(temp.c_str());
    throw Error("cannot write " + QuoteForMessage(path) + ": " + std::strerror(error));
  }
}

}  // namespace ddn
