// Issue 17, "the bi-level CLI, tried as a new user would": answers on a box bound, --eval-at, column choice,
// class labels, the robust-regression corruption and start, rank-deficient data, --plot's cost and CSV dialects.
// Each test runs the `ddn bilevel` command in-process and reads its JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "bilevel/app.h"
#include "bilevel/bilevel.h"
#include "bilevel/csv.h"
#include "bilevel/tabular.h"
#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::bilevel {
namespace {

using Json = nlohmann::json;
const std::string kData = DDN_TEST_DATA_DIR;
const std::string kTrain = kData + "/tabular/diabetes_train.csv";
const std::string kVal = kData + "/tabular/diabetes_val.csv";

struct Outcome {
  int code = 0;
  std::string out, err;
  Json json() const { return Json::parse(out); }
};

Outcome Bilevel(std::vector<std::string> args) {
  args.insert(args.begin(), "bilevel");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream o, e;
  Outcome r;
  r.code = RunBilevelCommand(static_cast<int>(argv.size()), argv.data(), o, e);
  r.out = o.str();
  r.err = e.str();
  return r;
}

// Exit 2, nothing on stdout, exactly one line on stderr holding every part.
void ExpectBadInput(const std::vector<std::string>& args, const std::vector<std::string>& parts) {
  const Outcome r = Bilevel(args);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  for (const auto& part : parts) EXPECT_NE(r.err.find(part), std::string::npos) << "'" << part << "' not in: " << r.err;
}

std::string Scratch() {
  static const std::string dir = [] {
    const std::string d = ::testing::TempDir() + "/ddn_bilevel_usability";
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = Scratch() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// ---- Answers on a box bound ---------------------------------------------------------------------------

// The optimum of ridge on diabetes is λ ≈ 0.087: with --upper 0.001 the answer is the bound, exactly, reported as
// at_bound with the (negative: the loss decreases above the bound) unprojected hypergradient.
TEST(AtBound, RidgeHeldAtAnUpperBoundSaysSo) {
  const Outcome r = Bilevel({"ridge", "--data-dir", kData, "--quiet", "--upper", "0.001"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = r.json();
  EXPECT_EQ(j["stop_reason"], "at_bound");
  EXPECT_EQ(j["at_bound"]["lambda"], "upper");
  EXPECT_EQ(j["hyperparameters"]["lambda"].get<double>(), 0.001);  // the bound itself, not exp(log(0.001))
  EXPECT_NE(r.out.find("\"lambda\": 0.001\n"), std::string::npos) << r.out;
  EXPECT_EQ(j["bounds"]["upper"]["lambda"].get<double>(), 0.001);
  EXPECT_EQ(j["bounds"]["lower"]["lambda"].get<double>(), 1e-6);
  EXPECT_LT(j["hypergradient"]["lambda"].get<double>(), 0);
  EXPECT_GT(j["history"].back()["gradient_norm"].get<double>(), -1);  // projected: 0 at the bound
}

// Issue 17's case: robust regression started at α = 1 runs down to its lower bound (a local minimum of a
// non-convex outer loss at the bound): at_bound, the bound printed exactly, and a line on stderr.
TEST(AtBound, RobustRegressionAtItsLowerBound) {
  const Outcome r = Bilevel({"robust-regression", "--data-dir", kData, "--outliers", "0.1", "--init", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = r.json();
  EXPECT_EQ(j["stop_reason"], "at_bound");
  EXPECT_EQ(j["at_bound"]["alpha"], "lower");
  EXPECT_EQ(j["hyperparameters"]["alpha"].get<double>(), j["bounds"]["lower"]["alpha"].get<double>());
  EXPECT_GT(j["hypergradient"]["alpha"].get<double>(), 0);
  EXPECT_NE(r.err.find("alpha stopped at its lower bound"), std::string::npos) << r.err;
}

TEST(AtBound, InitOutsideTheBoundsIsAnError) {
  ExpectBadInput({"ridge", "--data-dir", kData, "--init", "1e9"}, {"--init 1e+09 is outside the bounds of lambda"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--init", "0.5", "--upper", "0.1"}, {"outside the bounds"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--lower", "1", "--upper", "0.1"}, {"--lower 1 must be below --upper"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--upper", "1e-7"}, {"the bounds of lambda are empty"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--lower", "-1"}, {"--lower must be a finite number"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--upper", "inf"}, {"--upper must be a finite number"});
}

// Bounds given by the user are honoured (and the default start is clamped into them).
TEST(AtBound, UserBoundsAreUsed) {
  const Outcome r = Bilevel({"ridge", "--data-dir", kData, "--quiet", "--lower", "0.5", "--upper", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = r.json();
  EXPECT_EQ(j["history"][0]["hyperparameters"]["lambda"].get<double>(), 0.5);
  EXPECT_EQ(j["hyperparameters"]["lambda"].get<double>(), 0.5);
  EXPECT_EQ(j["stop_reason"], "at_bound");
}

// ---- --eval-at ------------------------------------------------------------------------------------------

// The outer loss and the signed hypergradient at a given θ, against the library's Evaluate and central
// differences of the outer loss (the sign matters: above the optimum dL/dλ > 0).
TEST(EvalAt, LossAndSignedHypergradient) {
  for (const double lambda : {0.01, 0.1, 3.0}) {
    const Outcome r = Bilevel({"ridge", "--data-dir", kData, "--quiet", "--eval-at", FormatDouble(lambda)});
    ASSERT_EQ(r.code, 0) << r.err;
    const Json j = r.json();
    EXPECT_EQ(j["inner_solves"], 1);
    EXPECT_EQ(j.count("history"), 0u);
    RidgeProblem p(SplitTarget(ReadCsv(kTrain), "progression"), SplitTarget(ReadCsv(kVal), "progression"), false);
    const Evaluation e = Evaluate(&p, Eigen::VectorXd::Constant(1, lambda));
    EXPECT_EQ(j["outer_loss"].get<double>(), e.loss);
    const double g = j["hypergradient"]["lambda"].get<double>();
    EXPECT_EQ(g, e.grad_theta[0]);
    const double h = 1e-4 * lambda;
    auto loss = [&](double l) { return Evaluate(&p, Eigen::VectorXd::Constant(1, l), false).loss; };
    const double fd = (loss(lambda + h) - loss(lambda - h)) / (2 * h);
    EXPECT_NEAR(g, fd, 1e-6 * std::abs(fd) + 1e-9) << "lambda " << lambda;
    EXPECT_EQ(g > 0, lambda > 0.087) << "lambda " << lambda;
    EXPECT_DOUBLE_EQ(j["hypergradient_log"]["lambda"].get<double>(), lambda * g);
  }
}

TEST(EvalAt, PerFeatureAndTvDenoise) {
  const Outcome r = Bilevel({"ridge", "--data-dir", kData, "--quiet", "--per-feature", "--eval-at", "0.1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.json()["hypergradient"]["lambda"].size(), 10u);
  const Outcome r2 = Bilevel({"ridge", "--data-dir", kData, "--quiet", "--per-feature", "--eval-at",
                          "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"});
  ASSERT_EQ(r2.code, 0) << r2.err;
  EXPECT_EQ(r2.json()["hyperparameters"]["lambda"]["s6"].get<double>(), 1.0);
  const Outcome tv = Bilevel({"tv-denoise", "--data-dir", kData, "--quiet", "--size", "24", "--eval-at", "0.05"});
  ASSERT_EQ(tv.code, 0) << tv.err;
  EXPECT_TRUE(tv.json()["hypergradient"]["lambda"].is_number());
  ExpectBadInput({"ridge", "--data-dir", kData, "--eval-at", "0.1,0.2"}, {"--eval-at: 2 values"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--eval-at", "-1"}, {"--eval-at: '-1' is not a finite number > 0"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--eval-at", "0.1", "--grid", "5"}, {"--grid does not apply"});
}

}  // namespace
}  // namespace ddn::bilevel
