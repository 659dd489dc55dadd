// The `ddn bilevel` runner: one JSON object on stdout, exit codes and one-line errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/bilevel/app.h"
#include "tests/scratch.h"

namespace ddn::bilevel {
namespace {

const std::string kData = DDN_TEST_DATA_DIR;

// ---- The runner (what `ddn bilevel` does) ----------------------------------------------------------

int RunCommand(std::vector<std::string> args, std::string* out, std::string* err) {
  args.insert(args.begin(), "bilevel");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream o, e;
  const int code = RunBilevelCommand(static_cast<int>(argv.size()), argv.data(), o, e);
  *out = o.str();
  *err = e.str();
  return code;
}

TEST(Command, RidgeOnShippedDataPrintsOneJsonObject) {
  std::string out, err;
  ASSERT_EQ(RunCommand({"ridge", "--data-dir", kData, "--quiet", "--grid", "20"}, &out, &err), 0) << err;
  for (const char* key : {"\"problem\": \"ridge\"", "\"hyperparameters\"", "\"outer_loss\"", "\"solution\"",
                          "\"weights\"", "\"intercept\"", "\"history\"", "\"inner_solves\"", "\"grid\"", "\"bmi\""}) {
    EXPECT_NE(out.find(key), std::string::npos) << key;
  }
  EXPECT_TRUE(err.empty());
}

TEST(Command, BadInputExitsWithTwoAndOneLine) {
  const std::string dir = ddn::testing::ScratchDir();
  const std::string bad = dir + "/bilevel_bad.csv", good = kData + "/tabular/diabetes_val.csv";
  {
    std::ofstream f(bad);
    f << "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression\n1,2,3,4,5,6,7,8,9,10,11\n1,2,x,4,5,6,7,8,9,10,11\n";
  }
  std::string out, err;
  EXPECT_EQ(RunCommand({"ridge", "--train", bad, "--val", good, "--target", "progression"}, &out, &err), 2);
  EXPECT_EQ(err, "ddn bilevel: " + bad + ": row 3: column 'bmi': 'x' is not a number\n");
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(RunCommand({"ridge", "--train", good, "--val", good, "--target", "nope"}, &out, &err), 2);
  EXPECT_NE(err.find("no column 'nope'"), std::string::npos) << err;
  EXPECT_EQ(RunCommand({"lasso"}, &out, &err), 2);
  EXPECT_EQ(RunCommand({"ridge", "--bogus"}, &out, &err), 2);
  EXPECT_EQ(
      RunCommand({"ridge", "--train", dir + "/missing.csv", "--val", good, "--target", "progression"}, &out, &err), 2);
  EXPECT_NE(err.find("missing.csv: cannot open"), std::string::npos) << err;
  std::remove(bad.c_str());
}

TEST(Command, HelpListsTheRegisteredProblems) {
  std::string out, err;
  ASSERT_EQ(RunCommand({"--help"}, &out, &err), 0) << err;
  for (const char* name : {"ridge", "logistic", "robust-regression", "tv-denoise"}) {
    EXPECT_NE(out.find(std::string("\n  ") + name + " "), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace ddn::bilevel
