// A libFuzzer entry point for one target of fuzz_targets.h (DDN_FUZZ_TARGET names it). A breach of the contract
// (an unexpected exception, a message of several lines) aborts, which libFuzzer reports with the input; crashes
// and sanitizer reports are its own findings. Built by scripts/fuzz with clang (-DDDN_BUILD_FUZZERS=ON).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string breach = ddn::fuzz::DDN_FUZZ_TARGET(data, size);
  if (!breach.empty()) {
    std::fprintf(stderr, "contract breach: %s\n", breach.c_str());
    std::abort();
  }
  return 0;
}
