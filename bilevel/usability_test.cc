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

// ---- CSV dialects and missing values --------------------------------------------------------------------

std::string CsvError(const std::string& text, const CsvOptions& options = {}) {
  try {
    ParseCsv(text, "f.csv", options);
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}

TEST(Csv, QuotedFields) {
  const CsvTable t = ParseCsv("\"a,b\",\"say \"\"hi\"\"\", y\n\"1.5\", 2 ,\"3\"\n", "f.csv");
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[0], "a,b");
  EXPECT_EQ(t.columns[1], "say \"hi\"");
  EXPECT_EQ(t.values(0, 0), 1.5);
  EXPECT_EQ(t.values(0, 2), 3.0);
  EXPECT_EQ(CsvError("a,y\n\"1,2\n"), "f.csv: row 2: field 1: a quoted field does not close on its line (fields spanning lines are not supported)");
  EXPECT_EQ(CsvError("a,y\n\"1\"x,2\n"), "f.csv: row 2: field 1: text after the closing quote");
  EXPECT_EQ(CsvError("a,y\n\"1,5\",2\n"), "f.csv: row 2: column 'a': '1,5' is not a number");
}

TEST(Csv, MissingValuesAreRefusedNamingRowAndColumnOrDropped) {
  for (const char* token : {"", "NA", "na", "N/A", "NaN", "null", "?"}) {
    EXPECT_EQ(CsvError(std::string("a,y\n1,2\n3,") + token + "\n"),
              std::string("f.csv: row 3: column 'y': missing value '") + token +
                  "' (--na drop skips rows with missing values)");
  }
  CsvOptions drop;
  drop.missing = MissingValues::kDrop;
  const CsvTable t = ParseCsv("a,y\n1,2\nNA,4\n5,?\n7,8\n", "f.csv", drop);
  EXPECT_EQ(t.dropped_rows, 2);
  ASSERT_EQ(t.values.rows(), 2);
  EXPECT_EQ(t.values(1, 0), 7.0);
  EXPECT_EQ(t.lines[1], 5);
  EXPECT_EQ(CsvError("a,y\nNA,1\n", drop), "f.csv: no data rows left: all 1 have missing values (--na drop)");
  // A missing value in a column that is not read does not count.
  CsvOptions skip = drop;
  skip.skip = {"a"};
  EXPECT_EQ(ParseCsv("a,y\nNA,4\n", "f.csv", skip).dropped_rows, 0);
}

TEST(Csv, SemicolonsAndTabsAreDetected) {
  const CsvTable semi = ParseCsv("a;b;y\n1,5;2;3\n", "f.csv");
  EXPECT_EQ(semi.separator, ';');
  EXPECT_EQ(semi.values(0, 0), 1.5);  // a decimal comma
  const CsvTable tabs = ParseCsv("a\tb\ty\n1.5\t2\t3\n", "f.csv");
  EXPECT_EQ(tabs.separator, '\t');
  EXPECT_EQ(tabs.values(0, 2), 3.0);
  EXPECT_EQ(CsvError("a,b;c\n1,2;3\n"), "f.csv: row 1: cannot tell the separator: the header has as many of two of ',', ';' and tabs (1, 1, 0)");
  EXPECT_EQ(CsvError("a,b,y\n1;2;3\n"), "f.csv: row 2: column 'a': '1;2;3' is not a number");
  CsvOptions text_column;
  text_column.skip = {"a"};
  EXPECT_EQ(CsvError("a,b,y\n1;2;3\n", text_column),
            "f.csv: row 2: 1 fields, the header has 3 (a ';'-separated row in a ','-separated file?)");
}

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
  ExpectBadInput({"ridge", "--train", train, "--val", val, "--target", "y"}, {"row 2: column 'id': 'x1' is not a number"});
  ExpectBadInput({"ridge", "--train", train, "--val", val, "--target", "y", "--drop", "id"},
                 {"na_train.csv: row 3: column 'a': missing value 'NA' (--na drop"});
  const Outcome r = Bilevel({"ridge", "--train", train, "--val", val, "--target", "y", "--drop", "id", "--na", "drop", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.json()["data"]["dropped_rows"]["train"], 1);
  EXPECT_EQ(r.json()["data"]["dropped_rows"]["val"], 1);
  EXPECT_EQ(r.json()["data"]["train_rows"], 4);
  ExpectBadInput({"ridge", "--train", train, "--val", val, "--target", "y", "--na", "zero"}, {"--na must be 'refuse' or 'drop'"});
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
  const Outcome same = Bilevel({"ridge", "-q", "--train", small, "--val", kVal, "--target", "progression", "--features", "bmi,s5"});
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

}  // namespace
}  // namespace ddn::bilevel
