// tests/cli/spawn.h: run a built binary with arguments and stdin, capture its exit code, stdout and stderr.
//
// stdout and stderr go to files in a private scratch folder (no pipe deadlocks); `stdout_path` may name another
// file to write stdout to (/dev/full, to test a failing stdout); `environment`, if given, replaces the process's
// environment ("NAME=value" strings). A signal shows as exit code 128 + signal. Shared by the CLI and plugin
// tests.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/scratch.h"

extern char** environ;

namespace ddn::testing {

struct Outcome {
  int code = -1;
  std::string out, err;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The current environment without the variable `name`, plus "name=value" if `value` is not null.
inline std::vector<std::string> EnvironmentWith(const std::string& name, const char* value) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind(name + "=", 0) != 0) env.push_back(*e);
  if (value) env.push_back(name + "=" + value);
  return env;
}

inline Outcome Spawn(const std::string& binary, const std::vector<std::string>& args, const std::string& input = "",
                     const std::string& stdout_path = "", const std::vector<std::string>* environment = nullptr) {
  const std::string dir = ScratchDir();
  const std::string in_path = dir + "/stdin", out_path = dir + "/stdout", err_path = dir + "/stderr";
  {
    std::ofstream in(in_path, std::ios::binary | std::ios::trunc);
    in << input;
  }
  std::vector<std::string> argv_storage{binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
  const std::string stdout_target = stdout_path.empty() ? out_path : stdout_path;
  posix_spawn_file_actions_addopen(&actions, 1, stdout_target.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid;
  Outcome r;
  std::vector<std::string> env_storage = environment ? *environment : std::vector<std::string>{};
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environment ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    r.err = "posix_spawn failed";
    return r;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = stdout_path.empty() ? ReadWholeFile(out_path) : "";
  r.err = ReadWholeFile(err_path);
  return r;
}

}  // namespace ddn::testing
