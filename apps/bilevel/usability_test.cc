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

#include "apps/bilevel/app.h"
#include "bilevel/bilevel.h"
#include "bilevel/tabular.h"
#include "datasets/csv.h"
#include "ddn/error.h"
#include "ddn/params.h"
#include "tests/scratch.h"

namespace ddn::bilevel {
namespace {

using Json = nlohmann::json;
using datasets::ReadCsv;
using datasets::SplitTarget;
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
  return ddn::testing::ScratchDir();
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

// Per-feature λ: the bounds and the held ones are keyed like "hyperparameters".
TEST(AtBound, PerFeatureKeysLikeTheHyperparameters) {
  const Outcome r = Bilevel({"ridge", "--data-dir", kData, "--quiet", "--per-feature"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = r.json();
  EXPECT_EQ(j["stop_reason"], "at_bound");
  ASSERT_TRUE(j["at_bound"]["lambda"].is_object()) << j["at_bound"];
  for (const auto& [feature, side] : j["at_bound"]["lambda"].items()) {
    EXPECT_EQ(j["hyperparameters"]["lambda"][feature], j["bounds"][side.get<std::string>()]["lambda"][feature])
        << feature;
  }
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
  const Outcome r2 = Bilevel(
      {"ridge", "--data-dir", kData, "--quiet", "--per-feature", "--eval-at", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"});
  ASSERT_EQ(r2.code, 0) << r2.err;
  EXPECT_EQ(r2.json()["hyperparameters"]["lambda"]["s6"].get<double>(), 1.0);
  const Outcome tv = Bilevel({"tv-denoise", "--data-dir", kData, "--quiet", "--size", "24", "--eval-at", "0.05"});
  ASSERT_EQ(tv.code, 0) << tv.err;
  EXPECT_TRUE(tv.json()["hypergradient"]["lambda"].is_number());
  ExpectBadInput({"ridge", "--data-dir", kData, "--eval-at", "0.1,0.2"}, {"--eval-at: 2 values"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--eval-at", "-1"}, {"--eval-at: '-1' is not a finite number > 0"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--eval-at", "0.1", "--grid", "5"}, {"--grid does not apply"});
}

// ---- CSV dialects and missing values (the reader's own tests: datasets/csv_test.cc) -------------------------

// The shipped diabetes split read as ';'-separated text with decimal commas gives the same numbers.
TEST(Csv, SemicolonFileGivesTheSameAnswer) {
  std::ifstream in(kTrain);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : text) c = c == ',' ? ';' : c == '.' ? ',' : c;
  const std::string semi = WriteFile("semicolon_train.csv", text);
  const Outcome a = Bilevel({"ridge", "--quiet", "--train", kTrain, "--val", kVal, "--target", "progression"});
  const Outcome b = Bilevel({"ridge", "--quiet", "--train", semi, "--val", kVal, "--target", "progression"});
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(a.json()["outer_loss"], b.json()["outer_loss"]);
  EXPECT_EQ(a.json()["hyperparameters"], b.json()["hyperparameters"]);
  EXPECT_EQ(b.json()["data"]["separator"], ";");
}

TEST(Command, NaPolicy) {
  const std::string train = WriteFile("na_train.csv", "id,a,y\nx1,1,2\nx2,NA,3\nx3,2,5\nx4,3,6\nx5,5,9\n");
  const std::string val = WriteFile("na_val.csv", "a,y\n1,2\n?,1\n4,8\n");
  ExpectBadInput({"ridge", "--train", train, "--val", val, "--target", "y"},
                 {"row 2: column 'id': 'x1' is not a number"});
  ExpectBadInput({"ridge", "--train", train, "--val", val, "--target", "y", "--drop", "id"},
                 {"na_train.csv: row 3: column 'a': missing value 'NA' (--na drop"});
  const Outcome r =
      Bilevel({"ridge", "--train", train, "--val", val, "--target", "y", "--drop", "id", "--na", "drop", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.json()["data"]["dropped_rows"]["train"], 1);
  EXPECT_EQ(r.json()["data"]["dropped_rows"]["val"], 1);
  EXPECT_EQ(r.json()["data"]["train_rows"], 4);
  ExpectBadInput({"ridge", "--train", train, "--val", val, "--target", "y", "--na", "zero"},
                 {"--na must be 'refuse' or 'drop'"});
}

// ---- Column choice -------------------------------------------------------------------------------------

TEST(Columns, FeaturesAndDrop) {
  const Outcome two = Bilevel({"ridge", "--data-dir", kData, "-q", "--features", "bmi,s5"});
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_EQ(two.json()["data"]["features"], 2);
  EXPECT_EQ(two.json()["solution"]["weights"].size(), 2u);
  EXPECT_TRUE(two.json()["solution"]["weights"].contains("s5"));
  // The same fit as a file holding only those columns.
  std::ifstream in(kTrain);
  std::string line, text;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    text += f[2] + "," + f[8] + "," + f[10] + "\n";
  }
  const std::string small = WriteFile("bmi_s5_train.csv", text);
  const Outcome same =
      Bilevel({"ridge", "-q", "--train", small, "--val", kVal, "--target", "progression", "--features", "bmi,s5"});
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_EQ(same.json()["outer_loss"], two.json()["outer_loss"]);

  const Outcome dropped = Bilevel({"ridge", "--data-dir", kData, "-q", "--drop", "age,sex"});
  ASSERT_EQ(dropped.code, 0) << dropped.err;
  EXPECT_EQ(dropped.json()["data"]["features"], 8);
  EXPECT_FALSE(dropped.json()["solution"]["weights"].contains("age"));

  ExpectBadInput({"ridge", "--data-dir", kData, "--features", "bmi,nope"}, {"diabetes_train.csv: no column 'nope'"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--drop", "nope"}, {"no column 'nope' to leave out"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--features", "bmi,progression"}, {"--features lists the target"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--drop", "progression"}, {"--drop lists the target"});
  ExpectBadInput({"ridge", "--data-dir", kData, "--drop", "age", "--features", "bmi"}, {"exclude each other"});
}

// ---- Logistic regression needs class labels ----------------------------------------------------------------

TEST(Logistic, RefusesNonIntegerLabelsAndWarnsOnManyClasses) {
  ExpectBadInput({"logistic", "--train", kTrain, "--val", kVal, "--target", "bmi"},
                 {"diabetes_train.csv: row 2: column 'bmi': label 32.1 is not an integer; logistic regression needs "
                  "class labels"});
  // 25 integer classes, 4 rows each: accepted, with a warning on stderr and in the JSON.
  std::string text = "x,y\n";
  for (int i = 0; i < 100; ++i) text += std::to_string(i % 25 + 0.01 * (i % 7)) + "," + std::to_string(i % 25) + "\n";
  const std::string file = WriteFile("many_classes.csv", text);
  const Outcome r =
      Bilevel({"logistic", "--train", file, "--val", file, "--target", "y", "-q", "--max-iterations", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.json()["classes"], 25);
  EXPECT_NE(
      r.err.find("warning: " + file + ": column 'y' has 25 classes (one weight vector each); is it a class label?"),
      std::string::npos)
      << r.err;
  EXPECT_EQ(r.json()["warnings"].size(), 1u);
  // Labels 0/1 written as 0.0/1.0 are integers.
  const std::string binary = WriteFile("binary.csv", "x,y\n1,0.0\n2,1.0\n3,0\n4,1\n5,0\n6,1.0\n");
  EXPECT_EQ(Bilevel({"logistic", "--train", binary, "--val", binary, "--target", "y", "-q"}).code, 0);
}

// ---- Robust regression: explicit corruption, a coarse-grid start -----------------------------------------

// --outliers is an option like any other: the shipped data and the same files given with --train/--val give the
// same answer, corrupted only when asked (default 0).
TEST(RobustRegression, CorruptionIsExplicitAndTheSameEitherWay) {
  auto strip = [](Json j) {
    j.erase("seconds");
    if (j.contains("start")) j["start"]["grid"].erase("seconds");
    j["data"].erase("train");
    j["data"].erase("val");
    return j;
  };
  for (const char* outliers : {"0", "0.1"}) {
    const Outcome shipped = Bilevel({"robust-regression", "--data-dir", kData, "-q", "--outliers", outliers});
    const Outcome files = Bilevel({"robust-regression", "--train", kTrain, "--val", kVal, "--target", "progression",
                                   "-q", "--outliers", outliers});
    ASSERT_EQ(shipped.code, 0) << shipped.err;
    ASSERT_EQ(files.code, 0) << files.err;
    EXPECT_EQ(strip(shipped.json()), strip(files.json())) << "--outliers " << outliers;
    EXPECT_EQ(shipped.json()["data"]["outliers"].get<double>(), std::stod(outliers));
  }
  const Outcome plain = Bilevel({"robust-regression", "--data-dir", kData, "-q"});
  const Outcome zero = Bilevel({"robust-regression", "--data-dir", kData, "-q", "--outliers", "0"});
  EXPECT_EQ(plain.json()["outer_loss"], zero.json()["outer_loss"]);  // the default corrupts nothing
  ExpectBadInput({"ridge", "--data-dir", kData, "--outliers", "0.1"}, {"--outliers applies to robust-regression only"});
  ExpectBadInput({"logistic", "--data-dir", kData, "--ridge", "0.1"}, {"--ridge applies to robust-regression only"});
}

// The outer loss of robust regression on diabetes with 10 % gross errors is not convex (a local maximum near
// α ≈ 1.5, a local minimum at the lower bound, MSE 3500): started at α = 1 the optimiser ends at the bound. The
// default start, the best of a 13-point grid, finds the optimum of a 2000-point grid (MSE 3452).
TEST(RobustRegression, DefaultStartFindsTheGlobalOptimumOfAFineGrid) {
  const Outcome fine =
      Bilevel({"robust-regression", "--data-dir", kData, "-q", "--outliers", "0.1", "--eval-at", "14.3"});
  const Outcome r = Bilevel({"robust-regression", "--data-dir", kData, "-q", "--outliers", "0.1", "--grid", "2000"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = r.json();
  EXPECT_EQ(j["start"]["grid"]["points"], 13);
  EXPECT_LE(j["outer_loss"].get<double>(), j["grid"]["outer_loss"].get<double>() * (1 + 1e-12));
  EXPECT_LT(j["outer_loss"].get<double>(), 3452.0);
  EXPECT_NEAR(j["hyperparameters"]["alpha"].get<double>(), 14.305, 0.01);
  EXPECT_EQ(j["stop_reason"], "gradient");
  EXPECT_EQ(j["inner_solves"].get<int>(),
            13 + j["history"].back()["inner_solves"].get<int>() + (j["stop_reason"] == "line search" ? 1 : 0));
  // Started at α = 1 by hand: the local minimum at the lower bound, said as such.
  const Outcome local = Bilevel({"robust-regression", "--data-dir", kData, "-q", "--outliers", "0.1", "--init", "1"});
  ASSERT_EQ(local.code, 0) << local.err;
  EXPECT_EQ(local.json()["stop_reason"], "at_bound");
  EXPECT_GT(local.json()["outer_loss"].get<double>(), 3499.0);
  EXPECT_FALSE(local.json().contains("start"));
  ExpectBadInput({"robust-regression", "--data-dir", kData, "--init", "1", "--start-grid", "5"},
                 {"exclude each other"});
  // Any problem can start from a grid when asked (tv-denoise too).
  const Outcome tv =
      Bilevel({"tv-denoise", "--data-dir", kData, "-q", "--size", "24", "--start-grid", "5", "--max-iterations", "2"});
  ASSERT_EQ(tv.code, 0) << tv.err;
  EXPECT_EQ(tv.json()["start"]["grid"]["points"], 5);
  EXPECT_EQ(tv.json()["history"][0]["hyperparameters"]["lambda"],
            tv.json()["start"]["grid"]["hyperparameters"]["lambda"]);
  ExpectBadInput({"robust-regression", "--data-dir", kData, "--start-grid", "-2"}, {"--start-grid must be in"});
}

// ---- Rank-deficient data -----------------------------------------------------------------------------------

// diabetes_train.csv with a constant column, a duplicate column, both, or only 8 rows.
std::string Variant(const std::string& name, bool constant, bool duplicate, int rows = -1) {
  std::ifstream in(kTrain);
  std::string line, text;
  int k = 0;
  while (std::getline(in, line) && (rows < 0 || k++ <= rows)) {
    const bool header = text.empty();
    std::string bmi = line.substr(0, line.find(','));  // age, for the duplicate
    text += (constant ? (header ? "c," : "1,") : "") + (duplicate ? (header ? "age2" : bmi) + "," : "") + line + "\n";
  }
  return WriteFile(name, text);
}

TEST(RankDeficient, OneMessageNamingTheColumns) {
  const std::string c = Variant("rank_c.csv", true, false), d = Variant("rank_d.csv", false, true),
                    both = Variant("rank_cd.csv", true, true), wide = Variant("rank_wide.csv", false, false, 8);
  auto robust = [&](const std::string& train) {
    return std::vector<std::string>{"robust-regression",          "--train",  train,        "--val",
                                    train == wide ? kVal : train, "--target", "progression"};
  };
  ExpectBadInput(robust(c), {"rank_c.csv: the features do not determine a unique fit: constant column 'c'; leave out c "
                             "(--drop c), or add a fixed L2 weight (--ridge 1e-6)"});
  ExpectBadInput(robust(d),
                 {"the features do not determine a unique fit: 'age' repeats 'age2' (up to scale and shift); "
                  "leave out age (--drop age), or add a fixed L2 weight (--ridge 1e-6)"});
  ExpectBadInput(robust(both), {"the features do not determine a unique fit: constant column 'c'; 'age' repeats 'age2' "
                                "(up to scale and shift); leave out c,age (--drop c,age), or add a fixed L2 weight"});
  ExpectBadInput(robust(wide), {"10 features and an intercept but only 8 training rows; use fewer features "
                                "(--features/--drop), or add a fixed L2 weight (--ridge 1e-6)"});
  // The advice works: --drop, or --ridge.
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    args.push_back("-q");
    return args;
  };
  const Outcome dropped = Bilevel(with(robust(both), {"--drop", "c,age"}));
  EXPECT_EQ(dropped.code, 0) << dropped.err;
  const Outcome ridged = Bilevel(with(robust(both), {"--ridge", "1e-6"}));
  EXPECT_EQ(ridged.code, 0) << ridged.err;
  EXPECT_TRUE(ridged.json().contains("warnings"));
  // A further linear dependence (x3 = x1 + x2) names its columns.
  std::string text = "x1,x2,x3,y\n";
  for (int i = 0; i < 30; ++i) {
    const double a = std::sin(i), b = std::cos(3.0 * i);
    text +=
        std::to_string(a) + "," + std::to_string(b) + "," + FormatDouble(a + b) + "," + std::to_string(a - b) + "\n";
  }
  const std::string dep = WriteFile("rank_dep.csv", text);
  ExpectBadInput({"robust-regression", "--train", dep, "--val", dep, "--target", "y"},
                 {"columns 'x1', 'x2', 'x3' are linearly dependent"});
  // Ridge and logistic regression are unique through their penalty: a warning naming the same columns.
  const Outcome ridge = Bilevel({"ridge", "--train", both, "--val", both, "--target", "progression", "-q"});
  ASSERT_EQ(ridge.code, 0) << ridge.err;
  EXPECT_NE(ridge.err.find("warning: " + both + ": rank-deficient features: constant column 'c'; 'age' repeats 'age2'"),
            std::string::npos)
      << ridge.err;
}

TEST(RankDeficient, CheckRankOnItsOwn) {
  Dataset d;
  d.X.resize(5, 3);
  d.X << 1, 2, 7, 2, 4, 7, 3, 6, 7, 4, 8, 7, 5, 11, 7;
  d.feature_names = {"a", "b", "k"};
  RankReport r = CheckRank(d);
  EXPECT_EQ(r.constant, std::vector<std::string>{"k"});
  EXPECT_TRUE(r.duplicates.empty());  // b is not exactly 2a
  d.X(4, 1) = 10;
  r = CheckRank(d);
  ASSERT_EQ(r.duplicates.size(), 1u);
  EXPECT_EQ(r.duplicates[0].first, "b");
  EXPECT_EQ(r.duplicates[0].second, "a");
  EXPECT_FALSE(r.more_features_than_rows());
}

// ---- --plot: progress, and its own time ------------------------------------------------------------------

TEST(Plot, ProgressAndItsOwnTime) {
  const std::string png = Scratch() + "/plot.png";
  const Outcome r = Bilevel({"ridge", "--data-dir", kData, "--plot", png, "--max-iterations", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = r.json();
  EXPECT_EQ(j["plot"]["path"], png);
  EXPECT_EQ(j["plot"]["grid_points"], 60);
  EXPECT_EQ(j["plot"]["inner_solves"], 60);
  EXPECT_GE(j["plot"]["seconds"].get<double>(), 0.0);
  EXPECT_NE(r.err.find("plot: outer loss on a 60-point grid 60/60\n"), std::string::npos) << r.err;
  // With --grid, the plot reuses it: no solves of its own.
  const Outcome g = Bilevel({"ridge", "--data-dir", kData, "--plot", png, "--grid", "20", "-q"});
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.json()["plot"]["inner_solves"], 0);
  EXPECT_EQ(g.json()["plot"]["grid_points"], 20);
  EXPECT_TRUE(g.err.empty()) << g.err;
}

// ---- A registered node with a named outer loss ---------------------------------------------------------------

namespace nodes {

// A request for ridge_regression: rows of a random linear model with noise, λ's start, validation rows.
std::string RidgeRequest(const std::string& extra_keys = "") {
  auto rows = [](int n, uint64_t seed, std::string* X, std::string* y) {
    uint64_t state = seed;
    auto uniform = [&state] {  // a small LCG: the test needs fixed, not good, numbers
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return static_cast<double>(state >> 11) * 0x1.0p-53 - 0.5;
    };
    *X = "[[";
    *y = "[[";
    for (int i = 0; i < n; ++i) {
      const double a = uniform(), b = uniform(), c = uniform();
      *X += (i ? ",[" : "[") + FormatDouble(a) + "," + FormatDouble(b) + "," + FormatDouble(c) + "]";
      *y += (i ? "," : "") + FormatDouble(1.5 * a - 2 * b + 0.5 * c + 0.3 + 0.4 * uniform());
    }
    *X += "]]";
    *y += "]]";
  };
  std::string X, y, Xv, yv;
  rows(30, 1, &X, &y);
  rows(20, 2, &Xv, &yv);
  return "{\"node\": \"ridge_regression\", \"inputs\": {\"X\": " + X + ", \"y\": " + y + ", \"lambda\": [[0.01]]}, " +
         "\"validation\": {\"X\": " + Xv + ", \"y\": " + yv + "}" + extra_keys + "}";
}

// The hypergradient of `ddn bilevel NODE --eval-at` against central differences of its outer loss, and an
// optimisation that ends at a zero gradient inside the bounds.
TEST(NodeMode, RidgeRegressionWithAValidationLoss) {
  const std::string request = WriteFile("ridge_request.json", RidgeRequest());
  auto loss_at = [&](double lambda) {
    const Outcome r = Bilevel({"ridge_regression", "--request", request, "--outer-loss", "validation_mse", "-q",
                               "--eval-at", FormatDouble(lambda)});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.json();
  };
  const double lambda = 0.2, h = 1e-4;
  const Json at = loss_at(lambda);
  EXPECT_EQ(at["loss"], "validation_mse");
  EXPECT_EQ(at["solution"]["w"][0].size(), 3u);
  const double fd = (8 * (loss_at(lambda * (1 + h))["outer_loss"].get<double>() -
                          loss_at(lambda * (1 - h))["outer_loss"].get<double>()) -
                     (loss_at(lambda * (1 + 2 * h))["outer_loss"].get<double>() -
                      loss_at(lambda * (1 - 2 * h))["outer_loss"].get<double>())) /
                    (12 * h * lambda);
  EXPECT_NEAR(at["hypergradient"]["lambda"].get<double>(), fd, 1e-6 * std::abs(fd) + 1e-12);

  const Outcome r = Bilevel({"ridge_regression", "--request", request, "--outer-loss", "validation_mse", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = r.json();
  EXPECT_EQ(j["problem"], "ridge_regression");
  EXPECT_TRUE(j["stop_reason"] == "gradient" || j["stop_reason"] == "loss change") << j["stop_reason"];
  EXPECT_LE(j["history"].back()["gradient_norm"].get<double>(), 1e-6 * j["outer_loss"].get<double>());
  EXPECT_LE(j["outer_loss"].get<double>(), at["outer_loss"].get<double>());
}

// The mse loss: a target made of the solution at λ = 0.5 is reached again from λ = 0.01.
TEST(NodeMode, MseAgainstATargetRecoversItsHyperparameter) {
  const std::string request = WriteFile("ridge_request.json", RidgeRequest());
  const Outcome at =
      Bilevel({"ridge_regression", "--request", request, "--outer-loss", "validation_mse", "-q", "--eval-at", "0.5"});
  ASSERT_EQ(at.code, 0) << at.err;
  const std::string target = ", \"target\": " + at.json()["solution"].dump();
  const std::string with_target = WriteFile("ridge_target.json", RidgeRequest(target));
  const Outcome r = Bilevel({"ridge_regression", "--request", with_target, "--outer-loss", "mse", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(r.json()["hyperparameters"]["lambda"].get<double>(), 0.5, 1e-6);
  EXPECT_LT(r.json()["outer_loss"].get<double>(), 1e-20);
}

TEST(NodeMode, BadRequestsAreOneLineWithExitTwo) {
  const std::string request = WriteFile("ridge_request.json", RidgeRequest());
  ExpectBadInput({"ridge_regression", "--outer-loss", "validation_mse"}, {"needs --request"});
  ExpectBadInput({"ridge_regression", "--request", request}, {"needs --outer-loss", "validation_mse"});
  ExpectBadInput({"ridge_regression", "--request", request, "--outer-loss", "nope"}, {"unknown --outer-loss 'nope'"});
  ExpectBadInput({"ridge_regression", "--request", request, "--outer-loss", "mse"}, {"\"target\""});
  ExpectBadInput({"ridge_regression", "--request", WriteFile("bad_key.json", RidgeRequest(", \"extra\": 1")),
                  "--outer-loss", "validation_mse"},
                 {"unknown key 'extra'"});
  ExpectBadInput({"ridge_regression", "--request", request, "--outer-loss", "validation_mse", "--hyperparameters", "X"},
                 {"'X'"});
  ExpectBadInput({"ridge_regression", "--request", request, "--outer-loss", "validation_mse", "--per-feature"},
                 {"--per-feature applies to the built-in problems"});
  ExpectBadInput({"ridge", "--request", request}, {"--request applies to a node"});
  ExpectBadInput({"no_such_node"}, {"unknown problem or node 'no_such_node'"});
  ExpectBadInput({"ridge_regression", "--request", Scratch() + "/missing.json", "--outer-loss", "mse"},
                 {"missing.json"});
}

}  // namespace nodes

}  // namespace
}  // namespace ddn::bilevel
