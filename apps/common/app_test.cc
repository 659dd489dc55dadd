// The command-line toolkit: exit codes and one-line messages for every kind of failure, option parsing without
// guessing, lists and bounds.
#include "apps/common/app.h"

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddn::app {
namespace {

namespace po = boost::program_options;

// Runs RunGuarded around `body`, returns the exit code and what it wrote on stderr.
int Guarded(const std::function<int()>& body, std::string* err, const GuardOptions& options = {}) {
  ::testing::internal::CaptureStderr();
  const int code = RunGuarded("prog", body, options);
  *err = ::testing::internal::GetCapturedStderr();
  return code;
}

TEST(RunGuarded, MapsEachFailureToItsExitCodeWithOneLine) {
  struct Case {
    std::function<int()> body;
    int code;
    std::string line;
  };
  const std::vector<Case> cases = {
      {[] { return 0; }, kExitOk, ""},
      {[]() -> int { throw InvalidInput("bad\nthing"); }, kExitBadInput, "prog: bad thing\n"},
      {[]() -> int { throw po::unknown_option("--nope"); }, kExitBadInput,
       "prog: unrecognised option '--nope' (see prog --help)\n"},
      {[]() -> int { throw NumericalFailure("diverged"); }, kExitNumericalFailure,
       "prog: numerical failure: diverged\n"},
      {[]() -> int { throw InternalError("x.cc:1: check 'p' failed"); }, kExitNumericalFailure,
       "prog: internal error (a bug, please report it): x.cc:1: check 'p' failed\n"},
      {[]() -> int { throw std::bad_alloc(); }, kExitNumericalFailure, "prog: out of memory\n"},
      {[]() -> int { throw std::runtime_error("odd"); }, kExitNumericalFailure, "prog: failure: odd\n"},
      {[]() -> int { throw 42; }, kExitNumericalFailure, "prog: failure: an exception of unknown type\n"},
  };
  for (const Case& c : cases) {
    std::string err;
    EXPECT_EQ(Guarded(c.body, &err), c.code) << c.line;
    EXPECT_EQ(err, c.line);
  }
  std::string err;
  GuardOptions options;
  options.help_hint = "prog sub --help";
  options.out_of_memory_hint = " (try fewer points)";
  EXPECT_EQ(Guarded([]() -> int { throw po::unknown_option("--x"); }, &err, options), kExitBadInput);
  EXPECT_EQ(err, "prog: unrecognised option '--x' (see prog sub --help)\n");
  EXPECT_EQ(Guarded([]() -> int { throw std::bad_alloc(); }, &err, options), kExitNumericalFailure);
  EXPECT_EQ(err, "prog: out of memory (try fewer points)\n");
}

TEST(ParseCommandLine, RefusesAbbreviations) {
  po::options_description options;
  options.add_options()("learning-rate", po::value<double>(), "rate")("json", "json");
  po::variables_map vm;
  const char* argv[] = {"prog", "--learning", "0.1"};
  EXPECT_THROW(ParseCommandLine(3, const_cast<char**>(argv), options, {}, &vm), po::error);
  po::variables_map vm2;
  const char* argv2[] = {"prog", "--learning-rate", "0.1", "--json"};
  ParseCommandLine(4, const_cast<char**>(argv2), options, {}, &vm2);
  EXPECT_EQ(vm2["learning-rate"].as<double>(), 0.1);
  EXPECT_EQ(vm2.count("json"), 1u);
}

TEST(Lists, SplitAndParse) {
  EXPECT_EQ(SplitList("a,,b,"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ParseList<int>("1,2,3", "depths"), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(ParseList<double>("0.5,1e-3", "noise"), (std::vector<double>{0.5, 1e-3}));
  try {
    ParseList<int>("1,x", "depths");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_STREQ(e.what(), "--depths: cannot parse 'x'");
  }
  EXPECT_THROW(ParseList<int>("1.5", "depths"), InvalidInput);
  EXPECT_THROW(ParseList<int>(",", "depths"), InvalidInput);
}

TEST(Bounds, NamesTheOptionTheRangeAndTheValue) {
  EXPECT_EQ(RequireInRange("points", 5, 1, 10, "[1, 10]"), 5);
  try {
    RequireInRange("points", 0, 1, 10, "[1, 10]");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_STREQ(e.what(), "--points must be in [1, 10], got 0");
  }
  EXPECT_THROW(RequireInRange("lr", std::nan(""), kTiny, 10.0, "(0, 10]"), InvalidInput);
  EXPECT_THROW(RequireInRange("lr", 0.0, kTiny, 10.0, "(0, 10]"), InvalidInput);
}

TEST(OneLine, FoldsControlCharactersAndCutsLongMessages) {
  EXPECT_EQ(OneLine("a\nb\tc\x01"), "a b c?");
  EXPECT_EQ(OneLine(""), "unknown error");
  const std::string long_message(2000, 'x');
  EXPECT_LT(OneLine(long_message).size(), 1000u);
}

}  // namespace
}  // namespace ddn::app
