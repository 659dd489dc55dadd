// Regression tests of issue 18 for the engine: tensor sizes that overflow, parameter values that parse as
// something else, values echoed in messages (cut and escaped), and output files (checked first, written
// atomically, never equal to an input).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/files.h"
#include "ddn/gradient_mode.h"
#include "ddn/params.h"
#include "ddn/tensor.h"
#include "tests/scratch.h"

namespace ddn {
namespace {

// The engine's finiteness check (sixteen values per step, then a scalar tail) must find a NaN or an infinity at
// every position of a row, in the unrolled body and in the tail, and pass the extreme finite values. ctest runs
// this binary with the AVX2 copy and with DDN_DISABLE_AVX2=1 (the baseline copy).
TEST(FinitenessCheck, FindsEveryNonFiniteValueAndPassesExtremeFiniteOnes) {
  const double extremes[] = {std::numeric_limits<double>::max(),
                             -std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::denorm_min(),
                             -0.0,
                             0.0,
                             1e308};
  const double bad[] = {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::quiet_NaN(),
                        std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (int64_t n : {1, 3, 15, 16, 17, 31, 32, 33, 47, 1027}) {
    Tensor t({1, n});
    for (int64_t i = 0; i < n; ++i) t.values()[i] = extremes[i % 6];
    EXPECT_NO_THROW(RequireFinite(t, "x")) << "n = " << n;
    for (int64_t i = 0; i < n; ++i) {
      for (double b : bad) {
        const double saved = t.values()[i];
        t.values()[i] = b;
        try {
          RequireFinite(t, "x");
          ADD_FAILURE() << "n = " << n << ": " << b << " at " << i << " was not found";
        } catch (const InvalidInput& e) {
          EXPECT_NE(std::string(e.what()).find("at flat index " + std::to_string(i)), std::string::npos) << e.what();
        }
        t.values()[i] = saved;
      }
    }
  }
}

// Item 4: NumElements overflowed (UBSan) and a tensor of 2^64 elements was allocated as an empty one.
TEST(TensorSizes, OverflowIsAClearError) {
  EXPECT_EQ(NumElements({1024, 1024}), 1024 * 1024);
  EXPECT_EQ(NumElements({}), 1);
  EXPECT_EQ(NumElements({0, 5}), 0);
  EXPECT_THROW(NumElements({4294967296, 4294967296}), InvalidInput);
  EXPECT_THROW(NumElements({65536, 65536, 65536, 65536}), InvalidInput);
  EXPECT_THROW(NumElements({0, int64_t{1} << 40, int64_t{1} << 40}), InvalidInput);  // an empty batch of huge problems
  EXPECT_THROW(NumElements({3, -1}), InvalidInput);
  try {
    Tensor t(Shape{4294967296, 4294967296});
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("(4294967296, 4294967296)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tensor::Uninitialized({int64_t{1} << 62, 4}), InvalidInput);
}

// Item 15: "alpha": "0x10" read as 16 (strtod takes hexadecimal, "inf", "nan" and leading spaces).
TEST(ParamValues, OnlyDecimalNumbersAreNumbers) {
  const std::vector<ParamSpec> specs{{"alpha", ParamType::kFloat, "1", "a float", {}},
                                     {"n", ParamType::kInt, "3", "an int", {}},
                                     {"flag", ParamType::kBool, "false", "a bool", {}}};
  // Underflow is a number (5e-324 is subnormal, 1e-400 rounds to 0); overflow is not.
  for (const char* good : {"16", "-1.5", "+2", ".5", "5.", "1e-3", "2E+10", "0", "5e-324", "1e-400"}) {
    EXPECT_NO_THROW(Params("node", specs, {{"alpha", good}})) << good;
  }
  for (const char* bad : {"0x10", "inf", "nan", " 1", "1 ", "", "1e", ".", "e5", "1,5", "--1", "1e999"}) {
    EXPECT_THROW(Params("node", specs, {{"alpha", bad}}), InvalidInput) << bad;
  }
  EXPECT_NO_THROW(Params("node", specs, {{"n", "-7"}}));
  for (const char* bad : {" 7", "7.0", "0x7", "99999999999"})
    EXPECT_THROW(Params("node", specs, {{"n", bad}}), InvalidInput);
  EXPECT_EQ(Params("node", specs, {{"alpha", "16"}}).GetDouble("alpha"), 16.0);
  EXPECT_EQ(Params("node", specs, {{"alpha", "5e-324"}}).GetDouble("alpha"), 5e-324);
}

// --backward truncated:K takes digits only (strtol alone read " 3" and "+3").
TEST(GradientModes, TruncationCountsAreDigitsOnly) {
  EXPECT_EQ(GradientMode::Parse("truncated:3").steps, 3);
  EXPECT_EQ(GradientMode::Parse("truncated:1000000").steps, 1000000);
  for (const char* bad : {"truncated: 3", "truncated:+3", "truncated:0", "truncated:-1", "truncated:1e3",
                          "truncated:1000001", "truncated:99999999999999999999", "truncated:", "Unrolled"}) {
    EXPECT_THROW(GradientMode::Parse(bad), InvalidInput) << bad;
  }
  try {
    GradientMode::Parse(std::string("truncated:\n") + std::string(5000, '7'));
    ADD_FAILURE() << "accepted";
  } catch (const InvalidInput& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

// Item 15: messages echo at most ~200 bytes of a value, escaped.
TEST(Messages, EchoedValuesAreCutAndEscaped) {
  EXPECT_EQ(QuoteForMessage("abc"), "'abc'");
  EXPECT_EQ(QuoteForMessage("a\nb\tc'\\"), "'a\\nb\\tc\\'\\\\'");
  EXPECT_EQ(QuoteForMessage("\x1b[31m"), "'\\x1B[31m'");
  EXPECT_EQ(QuoteForMessage("gr\xc3\xb6\xc3\x9f"
                            "e"),
            "'gr\xc3\xb6\xc3\x9f"
            "e'");                                // valid UTF-8 passes
  EXPECT_EQ(QuoteForMessage("\xc3"), "'\\xC3'");  // a cut sequence is escaped
  const std::string quoted = QuoteForMessage(std::string(1 << 20, 'x'));
  EXPECT_LT(quoted.size(), 240u);
  EXPECT_NE(quoted.find("(1048576 bytes)"), std::string::npos);
  // A multi-byte character is never cut in two.
  const std::string cut = QuoteForMessage(std::string(199, 'x') + "\xc3\xb6" + "tail");
  EXPECT_EQ(cut.substr(0, 201), "'" + std::string(199, 'x') + "'");
  try {
    Params("node", {{"alpha", ParamType::kFloat, "1", "", {}}}, {{"alpha", std::string(100000, '7') + "x\n"}});
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

// Items 5, 15: seeds are decimal digits up to 2^64 − 1 ("-1" was read as 2^64 − 1).
TEST(ParamValues, SeedsAreNonNegativeIntegers) {
  EXPECT_EQ(ParseSeed("0", "--seed"), 0u);
  EXPECT_EQ(ParseSeed("18446744073709551615", "--seed"), UINT64_MAX);
  for (const char* bad : {"-1", "18446744073709551616", "1e3", "", " 1", "0x1"}) {
    EXPECT_THROW(ParseSeed(bad, "--seed"), InvalidInput) << bad;
  }
}

std::string Folder() {
  return ddn::testing::ScratchDir();
}

// Item 14: output paths were checked only after the work.
TEST(OutputFiles, AreCheckedBeforeTheWork) {
  EXPECT_NO_THROW(CheckOutputFile("--plot", Folder() + "/p.png"));
  EXPECT_THROW(CheckOutputFile("--plot", "/nonexistent/p.png"), InvalidInput);
  EXPECT_THROW(CheckOutputFile("--plot", Folder()), InvalidInput);
  EXPECT_THROW(CheckOutputFile("--plot", ""), InvalidInput);
  EXPECT_THROW(CheckOutputFile("--plot", Folder() + "/"), InvalidInput);
  EXPECT_NO_THROW(CheckOutputFolder("--save-dir", Folder()));
  EXPECT_THROW(CheckOutputFolder("--save-dir", Folder() + "/missing"), InvalidInput);
  if (geteuid() != 0) {  // root may write anywhere
    const std::string locked = Folder() + "/locked";
    std::filesystem::create_directories(locked);
    chmod(locked.c_str(), 0500);
    EXPECT_THROW(CheckOutputFile("--plot", locked + "/p.png"), InvalidInput);
    chmod(locked.c_str(), 0700);
  }
  try {
    CheckOutputFile("--plot", "/nonexistent/" + std::string(5000, 'q') + "/p.png");
    FAIL();
  } catch (const InvalidInput& e) {
    EXPECT_LT(std::string(e.what()).size(), 600u);
  }
}

TEST(OutputFiles, MustDifferFromInputsAndFromEachOther) {
  const std::string a = Folder() + "/a.csv", b = Folder() + "/b.png";
  std::ofstream(a) << "x\n";
  EXPECT_NO_THROW(RequireDistinctOutputs({{"--train", a}, {"--val", a}}, {{"--plot", b}}));  // inputs may repeat
  const std::string folder_name = std::filesystem::path(Folder()).filename().string();
  EXPECT_THROW(RequireDistinctOutputs({{"--train", a}}, {{"--plot", Folder() + "/../" + folder_name + "/a.csv"}}),
               InvalidInput);
  EXPECT_THROW(RequireDistinctOutputs({}, {{"--plot", b}, {"--output", Folder() + "/./b.png"}}), InvalidInput);
  const std::string link = Folder() + "/link.csv";
  std::filesystem::remove(link);
  std::filesystem::create_symlink(a, link);
  EXPECT_THROW(RequireDistinctOutputs({{"--train", a}}, {{"--plot", link}}), InvalidInput);
  EXPECT_NO_THROW(RequireDistinctOutputs({{"--train", a}}, {{"--plot", ""}}));
}

TEST(OutputFiles, AreWrittenAtomically) {
  const std::string path = Folder() + "/out.txt";
  WriteFileAtomically(path, "first");
  WriteFileAtomically(path, "second version");
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "second version");
  for (const auto& entry : std::filesystem::directory_iterator(Folder())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }
  EXPECT_THROW(WriteFileAtomically("/nonexistent/out.txt", "x"), Error);
  EXPECT_EQ(FileExtension("a/b.PNG"), ".png");
  EXPECT_EQ(FileExtension("a/b"), "");
}

}  // namespace
}  // namespace ddn
