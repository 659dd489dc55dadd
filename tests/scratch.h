// tests/scratch.h: a private scratch folder for the test process, removed at exit.
//
// ctest runs every test case as its own process and several at once (`ctest -j`), and some test programs run twice
// side by side (once more with DDN_DISABLE_AVX2=1). A file name fixed in a shared folder such as /tmp or
// ::testing::TempDir() is then written by one process while another reads it: a test that fails one run in many.
// Every test that writes a file writes it here instead: mkdtemp makes the folder unique to this process.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace ddn::testing {

inline const std::string& ScratchDir() {
  struct Scratch {
    std::string path;
    Scratch() {
      const char* base = std::getenv("TMPDIR");
      std::string pattern = std::string(base && *base ? base : "/tmp") + "/ddn_test_XXXXXX";
      std::vector<char> buf(pattern.begin(), pattern.end());
      buf.push_back('\0');
      if (!mkdtemp(buf.data())) std::abort();
      path = buf.data();
    }
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Scratch scratch;
  return scratch.path;
}

}  // namespace ddn::testing
