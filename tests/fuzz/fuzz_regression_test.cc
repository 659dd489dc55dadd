// The fuzz targets (fuzz_targets.h) under GoogleTest, for every build (and the sanitizer build): the corpus of
// regression cases in tests/fuzz/corpus, then seeded mutations of it (byte flips, insertions of JSON/CSV tokens
// and extreme numbers, deletions, duplications, splices of two inputs). Deterministic and bounded:
// DDN_FUZZ_ITERATIONS mutations per target (default 2000); scripts/fuzz runs libFuzzer for longer when clang is
// there, and this test with more iterations when it is not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ddn/random.h"
#include "tests/fuzz/fuzz_targets.h"

namespace ddn::fuzz {
namespace {

using Target = std::string (*)(const uint8_t*, size_t);

std::vector<std::string> Corpus(const std::string& folder) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(DDN_FUZZ_CORPUS) + "/" + folder)) {
    files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Run(Target target, const std::string& input) {
  return target(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

// One random edit of `text` (`other` is another corpus input, for splices).
std::string Mutate(std::string text, const std::string& other, Rng* rng) {
  static const char* const kTokens[] = {"[",          "]",
                                        "{",          "}",
                                        "\"",         ",",
                                        ":",          "1e999",
                                        "-1e308",     "5e-324",
                                        "0x10",       "null",
                                        "true",       "1.0",
                                        "[[",         "]]",
                                        "\"x\"",      "\"w\"",
                                        "\"params\"", "\"grad_outputs\"",
                                        "\\u0000",    "\n",
                                        "\r\n",       "nan",
                                        "inf",        "\xef\xbb\xbf",
                                        "-0",         "1e-320",
                                        "4294967296", "\"node\": \"robust_pool\"",
                                        ",,",         "\\"};
  auto pick = [&](size_t n) { return static_cast<size_t>((*rng)() % (n ? n : 1)); };
  const size_t pos = pick(text.size() + 1);
  switch ((*rng)() % 7) {
    case 0:
      if (!text.empty()) text[pick(text.size())] ^= static_cast<char>(1u << ((*rng)() % 8));
      break;
    case 1:
      text.insert(pos, 1, static_cast<char>((*rng)() & 0xFF));
      break;
    case 2:
      text.insert(pos, kTokens[pick(sizeof kTokens / sizeof kTokens[0])]);
      break;
    case 3:
      if (!text.empty()) text.erase(pos == text.size() ? pos - 1 : pos, 1 + pick(16));
      break;
    case 4:
      if (!text.empty() && text.size() < 100000) {
        const size_t start = pick(text.size()), len = 1 + pick(std::min<size_t>(64, text.size() - start));
        text.insert(pos, text.substr(start, len));
      }
      break;
    case 5:
      if (!other.empty()) text = text.substr(0, pos) + other.substr(pick(other.size()));
      break;
    default: {
      // Replace a run of digits by an extreme number.
      const size_t d = text.find_first_of("0123456789", pos);
      if (d != std::string::npos) {
        const size_t e = text.find_first_not_of("0123456789.eE+-", d);
        static const char* const kNumbers[] = {"1e308",
                                               "1.8e308",
                                               "1e-308",
                                               "5e-324",
                                               "1e155",
                                               "1e-160",
                                               "9007199254740993",
                                               "0",
                                               "-0.0",
                                               "1e16",
                                               "123456789012345678901234"};
        text.replace(d, (e == std::string::npos ? text.size() : e) - d, kNumbers[pick(11)]);
      }
    }
  }
  return text;
}

int Iterations() {
  const char* env = std::getenv("DDN_FUZZ_ITERATIONS");
  return env ? std::max(0, std::atoi(env)) : 2000;
}

void RunCorpusAndMutations(Target target, const std::string& folder, uint64_t seed) {
  const std::vector<std::string> files = Corpus(folder);
  ASSERT_FALSE(files.empty());
  std::vector<std::string> inputs;
  for (const auto& f : files) {
    inputs.push_back(Read(f));
    EXPECT_EQ(Run(target, inputs.back()), "") << f;
  }
  Rng rng(seed);
  const int n = Iterations();
  for (int i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(rng() % inputs.size());
    std::string input = inputs[k];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) input = Mutate(std::move(input), inputs[rng() % inputs.size()], &rng);
    const std::string breach = Run(target, input);
    if (!breach.empty()) {
      ADD_FAILURE() << "mutation " << i << " of " << files[k] << ": " << breach << "\ninput (" << input.size()
                    << " bytes): " << input.substr(0, 2000);
      return;
    }
  }
}

// The corpus holds the regression cases of issue 18 (deep nesting, many keys, ragged arrays that claim more
// numbers than a size can count, "0x10", a number for a bool, numeric extremes for every node, bad CSVs).
TEST(Fuzz, EvalRequestCorpusAndMutations) {
  RunCorpusAndMutations(&FuzzEvalRequest, "eval", 1);
}
TEST(Fuzz, CsvCorpusAndMutations) {
  RunCorpusAndMutations(&FuzzCsv, "csv", 2);
}

}  // namespace
}  // namespace ddn::fuzz
