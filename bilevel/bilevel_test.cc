// Tests of the bi-level problems: hypergradients against finite differences of the outer loss, the
// optimiser against fine grid searches, per-feature ridge against the best single λ (the CSV reader's tests are
// datasets/csv_test.cc, the `ddn bilevel` runner's apps/bilevel/). Small subsets of the shipped data keep them fast.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bilevel/bilevel.h"
#include "bilevel/node_problem.h"
#include "bilevel/outer_loss.h"
#include "bilevel/registry.h"
#include "bilevel/tabular.h"
#include "bilevel/tv_denoise.h"
#include "datasets/image_io.h"
#include "ddn/check.h"
#include "ddn/error.h"

namespace ddn::bilevel {
namespace {

using datasets::LoadImage;
using datasets::ReadCsv;
using datasets::SplitTarget;

const std::string kData = DDN_TEST_DATA_DIR;

Dataset Load(const std::string& name, const std::string& split, const std::string& target, int rows = -1) {
  Dataset d = SplitTarget(ReadCsv(kData + "/tabular/" + name + "_" + split + ".csv"), target);
  if (rows > 0 && rows < d.X.rows()) {
    d.X = d.X.topRows(rows).eval();
    d.y = d.y.head(rows).eval();
    d.lines.resize(rows);
  }
  return d;
}

// dL/d log θ by 4th-order central differences of the outer loss (each point a fresh inner solve).
Eigen::VectorXd FiniteDifferenceHypergradient(Problem* problem, const Eigen::VectorXd& theta, double h = 1e-3) {
  auto loss = [&](const Eigen::VectorXd& x) {
    ProblemStatus s;
    problem->SolveInner(x.array().exp().matrix(), &s);
    return problem->OuterLoss(nullptr);
  };
  const Eigen::VectorXd x = theta.array().log();
  Eigen::VectorXd g(x.size());
  for (Eigen::Index k = 0; k < x.size(); ++k) {
    auto at = [&](double t) {
      Eigen::VectorXd y = x;
      y[k] += t;
      return loss(y);
    };
    g[k] = CentralDifference(at, h);
  }
  return g;
}

double RelativeError(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  return (a - b).norm() / std::max({a.norm(), b.norm(), 1e-12});
}

void ExpectHypergradient(Problem* problem, const Eigen::VectorXd& theta, double tolerance = 1e-6) {
  const Evaluation e = Evaluate(problem, theta);
  const Eigen::VectorXd fd = FiniteDifferenceHypergradient(problem, theta);
  const double err = RelativeError(e.grad_log, fd);
  EXPECT_LE(err, tolerance) << problem->name() << " at theta[0] = " << theta[0] << ": implicit "
                            << e.grad_log.transpose() << " vs finite differences " << fd.transpose();
  EXPECT_TRUE(e.status.ok()) << e.status.note;
}

// The optimiser's answer against a fine grid of one hyperparameter: within 0.05 %.
void ExpectMatchesGrid(Problem* problem, int points, double lo = 0, double hi = 0) {
  const OptimizeResult r = Optimize(problem);
  const GridResult g = GridSearch(problem, points, lo, hi);
  EXPECT_LE(r.loss, g.best_loss * (1 + 5e-4)) << problem->name() << ": optimiser " << r.theta[0] << " → " << r.loss
                                              << ", grid " << g.best_value << " → " << g.best_loss;
  // And the optimiser's answer is a stationary point (or at a bound).
  EXPECT_LE(std::abs(r.grad_log[0]), 1e-4 * std::abs(r.loss) + 1e-12) << r.stop_reason;
}

// ---- Hypergradients vs finite differences ----------------------------------------------------------

TEST(Hypergradient, RidgeSingleLambda) {
  RidgeProblem p(Load("diabetes", "train", "progression"), Load("diabetes", "val", "progression"), false);
  for (double lambda : {1e-4, 0.08, 3.0}) ExpectHypergradient(&p, Eigen::VectorXd::Constant(1, lambda));
}

TEST(Hypergradient, RidgePerFeature) {
  RidgeProblem p(Load("diabetes", "train", "progression"), Load("diabetes", "val", "progression"), true);
  Eigen::VectorXd theta(10);
  theta << 1e-3, 0.1, 0.01, 1.0, 0.3, 3e-4, 0.05, 2.0, 0.02, 0.7;
  ExpectHypergradient(&p, theta);
}

TEST(Hypergradient, LogisticBinary) {
  LogisticProblem p(Load("breast_cancer", "train", "benign", 120), Load("breast_cancer", "val", "benign", 120));
  EXPECT_EQ(p.num_classes(), 2);
  for (double lambda : {1e-3, 0.03, 1.0}) ExpectHypergradient(&p, Eigen::VectorXd::Constant(1, lambda));
}

// Every 4th pixel of the digits (16 features, 10 classes: 169 inner variables) keeps the test fast.
Dataset EveryFourthPixel(Dataset d) {
  Eigen::MatrixXd X(d.X.rows(), 16);
  std::vector<std::string> names;
  for (int j = 0; j < 16; ++j) {
    X.col(j) = d.X.col(4 * j);
    names.push_back(d.feature_names[4 * j]);
  }
  d.X = X;
  d.feature_names = names;
  return d;
}

TEST(Hypergradient, LogisticMultinomial) {
  LogisticProblem p(EveryFourthPixel(Load("digits", "train", "digit", 150)),
                    EveryFourthPixel(Load("digits", "val", "digit", 150)));
  EXPECT_EQ(p.num_classes(), 10);
  for (double lambda : {3e-3, 0.1}) ExpectHypergradient(&p, Eigen::VectorXd::Constant(1, lambda));
}

TEST(Hypergradient, RobustRegression) {
  Dataset train = Load("diabetes", "train", "progression");
  AddTargetOutliers(&train, 0.1, 1);
  RobustRegressionProblem p(train, Load("diabetes", "val", "progression"));
  for (double alpha : {2.0, 30.0, 400.0}) ExpectHypergradient(&p, Eigen::VectorXd::Constant(1, alpha));
  RobustRegressionProblem with_ridge(train, Load("diabetes", "val", "progression"), 0.5);
  ExpectHypergradient(&with_ridge, Eigen::VectorXd::Constant(1, 30.0));
}

Image TinyImage(int side) {
  Image im = LoadImage(kData + "/images/camera.png", side);
  return im;
}

TEST(Hypergradient, TvDenoise) {
  const Image clean = TinyImage(24);
  TvDenoiseProblem p(clean, AddNoise(clean, 0.1, 7), 0.01);
  for (double lambda : {3e-3, 0.05, 0.5}) ExpectHypergradient(&p, Eigen::VectorXd::Constant(1, lambda));
}

TEST(Hypergradient, TvDenoiseSparseMatchesDenseImplicitVjp) {
  const Image clean = TinyImage(16);
  TvDenoiseProblem p(clean, AddNoise(clean, 0.1, 3), 0.05);
  ProblemStatus s;
  p.SolveInner(Eigen::VectorXd::Constant(1, 0.07), &s);
  Eigen::VectorXd v;
  p.OuterLoss(&v);
  const Eigen::VectorXd sparse = p.HypergradientVjp(v, &s);
  const Eigen::VectorXd dense = ImplicitVjp(p.InnerBlocks(), v, &s);
  EXPECT_LE(RelativeError(sparse, dense), 1e-10);
}

// The inner problem is the node tv_denoise's: from the same start (the noisy image) the problem's solve and the
// node's forward are the same computation, and the node's backward for λ with v = ∂L/∂u is the hypergradient.
TEST(Hypergradient, TvDenoiseIsTheTvDenoiseNode) {
  const Image clean = TinyImage(20), noisy = AddNoise(clean, 0.1, 5);
  TvDenoiseProblem p(clean, noisy, 0.02);
  const double lambda = 0.06;
  ProblemStatus s;
  p.SolveInner(Eigen::VectorXd::Constant(1, lambda), &s);
  const auto node = MakeNode("tv_denoise", {{"epsilon", "0.02"}});
  const TensorMap inputs = {
      {"g", Tensor({1, noisy.rows, noisy.cols},
                   std::vector<double>(noisy.pixels.data(), noisy.pixels.data() + noisy.pixels.size()))},
      {"lambda", Tensor({1}, {lambda})}};
  ForwardResult r = Forward(*node, inputs);
  const Eigen::VectorXd u = Eigen::Map<const Eigen::VectorXd>(r.outputs.at("u").data(), noisy.pixels.size());
  EXPECT_EQ((u - p.InnerSolution()).lpNorm<Eigen::Infinity>(), 0.0);
  Eigen::VectorXd v;
  p.OuterLoss(&v);
  const Eigen::VectorXd hypergradient = p.HypergradientVjp(v, &s);
  const TensorMap grads = Backward(
      *node, inputs, r.outputs,
      {{"u", Tensor({1, noisy.rows, noisy.cols}, std::vector<double>(v.data(), v.data() + v.size()))}}, &r.status);
  EXPECT_NEAR(grads.at("lambda")[0], hypergradient[0], 1e-12 * std::abs(hypergradient[0]));
}

// ---- Inner solves ---------------------------------------------------------------------------------

TEST(InnerSolve, ReachesMachinePrecision) {
  LogisticProblem p(EveryFourthPixel(Load("digits", "train", "digit", 100)),
                    EveryFourthPixel(Load("digits", "val", "digit", 50)));
  ProblemStatus s;
  p.SolveInner(Eigen::VectorXd::Constant(1, 0.01), &s);
  Eigen::VectorXd g;
  p.InnerObjective(p.InnerSolution(), 0.01, &g, nullptr);
  EXPECT_LE(g.lpNorm<Eigen::Infinity>(), 1e-13);

  const Image clean = TinyImage(20);
  TvDenoiseProblem tv(clean, AddNoise(clean, 0.1, 1), 0.01);
  ProblemStatus st;
  tv.SolveInner(Eigen::VectorXd::Constant(1, 0.1), &st);
  EXPECT_LE(st.residual, 1e-12);
  // Perturbing the answer increases the objective (it is the minimiser).
  const double f = tv.InnerObjective(tv.InnerSolution(), 0.1);
  Eigen::VectorXd u = tv.InnerSolution();
  u[37] += 1e-4;
  EXPECT_GT(tv.InnerObjective(u, 0.1), f);
}

// ---- The optimiser against grid searches ----------------------------------------------------------

TEST(Optimize, RidgeMatchesFineGrid) {
  RidgeProblem p(Load("diabetes", "train", "progression"), Load("diabetes", "val", "progression"), false);
  ExpectMatchesGrid(&p, 2000);
}

TEST(Optimize, LogisticMatchesFineGrid) {
  LogisticProblem p(Load("breast_cancer", "train", "benign", 150), Load("breast_cancer", "val", "benign", 150));
  ExpectMatchesGrid(&p, 300, 1e-4, 10.0);
}

TEST(Optimize, RobustRegressionMatchesFineGrid) {
  Dataset train = Load("diabetes", "train", "progression");
  AddTargetOutliers(&train, 0.1, 1);
  RobustRegressionProblem p(train, Load("diabetes", "val", "progression"));
  ExpectMatchesGrid(&p, 400, 1.0, 1e4);
}

TEST(Optimize, TvDenoiseMatchesFineGrid) {
  const Image clean = TinyImage(24);
  TvDenoiseProblem p(clean, AddNoise(clean, 0.1, 7), 0.01);
  ExpectMatchesGrid(&p, 150, 0.01, 0.5);
}

TEST(Optimize, PerFeatureRidgeNoWorseThanBestSingleLambda) {
  const Dataset train = Load("diabetes", "train", "progression"), val = Load("diabetes", "val", "progression");
  RidgeProblem single(train, val, false);
  const GridResult g = GridSearch(&single, 1000);
  const OptimizeResult r1 = Optimize(&single);
  RidgeProblem per(train, val, true);
  const OptimizeResult r = Optimize(&per, {}, Eigen::VectorXd::Constant(10, r1.theta[0]));
  EXPECT_LE(r.loss, g.best_loss * (1 + 1e-12));
  EXPECT_LE(r.loss, r1.loss);
}

TEST(Optimize, StopsAtABoundWhenTheOptimumIsOutside) {
  // Robust regression on clean data prefers least squares: α runs to its upper bound and stops there.
  RobustRegressionProblem p(Load("diabetes", "train", "progression", 100), Load("diabetes", "val", "progression", 100));
  const OptimizeResult r = Optimize(&p);
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_LE(r.history.back().grad_norm, 1e-6 * r.loss);
}

// ---- Bi-level problems of nodes: the tabular problems are the regression nodes ---------------------------------

// The features standardised as TabularProblem does (training mean and standard deviation), as a batch of one.
Tensor Standardised(const Eigen::MatrixXd& X, const Eigen::MatrixXd& reference) {
  const Eigen::Index n = X.rows(), p = X.cols();
  Tensor t({1, n, p});
  for (Eigen::Index j = 0; j < p; ++j) {
    const double mean = reference.col(j).mean();
    const double var = (reference.col(j).array() - mean).square().sum() / static_cast<double>(reference.rows());
    const double sd = var > 1e-300 ? std::sqrt(var) : 1.0;  // a constant column is only centred (as tabular.h)
    for (Eigen::Index i = 0; i < n; ++i) t[i * p + j] = (X(i, j) - mean) / sd;
  }
  return t;
}
Tensor Column(const Eigen::VectorXd& y) {
  return Tensor({1, y.size()}, std::vector<double>(y.data(), y.data() + y.size()));
}

// ridge_regression with the validation_mse loss is the ridge problem: the same hypergradient and the same answer.
TEST(NodeProblems, RidgeRegressionNodeIsTheRidgeProblem) {
  const Dataset train = Load("diabetes", "train", "progression"), val = Load("diabetes", "val", "progression");
  RidgeProblem tabular(train, val, false);
  OuterLossData data;
  data.validation = {{"X", Standardised(val.X, train.X)}, {"y", Column(val.y)}};
  const NodeSpec& spec = GetNodeSpec("ridge_regression");
  NodeProblem node(MakeNode("ridge_regression", {}),
                   {{"X", Standardised(train.X, train.X)}, {"y", Column(train.y)}, {"lambda", Tensor({1, 1}, {1e-2})}},
                   {"lambda"}, FindOuterLoss("validation_mse")->make(spec, data), 1e-6, 1e4);
  for (double lambda : {1e-3, 0.1, 10.0}) {
    const Evaluation a = Evaluate(&tabular, Eigen::VectorXd::Constant(1, lambda));
    const Evaluation b = Evaluate(&node, Eigen::VectorXd::Constant(1, lambda));
    EXPECT_NEAR(a.loss, b.loss, 1e-12 * a.loss) << lambda;
    EXPECT_LT(RelativeError(a.grad_theta, b.grad_theta), 1e-8) << lambda;
  }
  const OptimizeResult a = Optimize(&tabular), b = Optimize(&node);
  EXPECT_NEAR(a.theta[0], b.theta[0], 1e-6 * a.theta[0]);
  EXPECT_NEAR(a.loss, b.loss, 1e-12 * a.loss);
}

// logistic_regression with validation_log_loss is the binary logistic problem; robust_regression with
// validation_mse the robust one (hypergradients at a few points).
TEST(NodeProblems, LogisticAndRobustRegressionNodesAreTheTabularProblems) {
  {
    const Dataset train = Load("breast_cancer", "train", "benign", 150),
                  val = Load("breast_cancer", "val", "benign", 150);
    LogisticProblem tabular(train, val);
    OuterLossData data;
    data.validation = {{"X", Standardised(val.X, train.X)}, {"y", Column(val.y)}};
    NodeProblem node(MakeNode("logistic_regression", {}),
                     {{"X", Standardised(train.X, train.X)}, {"y", Column(train.y)}, {"lambda", Tensor({1}, {1e-2})}},
                     {"lambda"}, FindOuterLoss("validation_log_loss")->make(GetNodeSpec("logistic_regression"), data));
    for (double lambda : {1e-3, 0.1, 3.0}) {
      const Evaluation a = Evaluate(&tabular, Eigen::VectorXd::Constant(1, lambda));
      const Evaluation b = Evaluate(&node, Eigen::VectorXd::Constant(1, lambda));
      EXPECT_NEAR(a.loss, b.loss, 1e-10 * a.loss) << lambda;
      EXPECT_LT(RelativeError(a.grad_theta, b.grad_theta), 1e-7) << lambda;
    }
  }
  {
    Dataset train = Load("diabetes", "train", "progression");
    AddTargetOutliers(&train, 0.1, 1);
    const Dataset val = Load("diabetes", "val", "progression");
    RobustRegressionProblem tabular(train, val);
    OuterLossData data;
    data.validation = {{"X", Standardised(val.X, train.X)}, {"y", Column(val.y)}};
    NodeProblem node(MakeNode("robust_regression", {}),
                     {{"X", Standardised(train.X, train.X)}, {"y", Column(train.y)}, {"alpha", Tensor({1}, {10.0})}},
                     {"alpha"}, FindOuterLoss("validation_mse")->make(GetNodeSpec("robust_regression"), data));
    for (double alpha : {3.0, 14.3, 100.0}) {
      const Evaluation a = Evaluate(&tabular, Eigen::VectorXd::Constant(1, alpha));
      const Evaluation b = Evaluate(&node, Eigen::VectorXd::Constant(1, alpha));
      EXPECT_NEAR(a.loss, b.loss, 1e-10 * a.loss) << alpha;
      EXPECT_NEAR(a.grad_theta[0], b.grad_theta[0], 1e-7 * std::abs(a.grad_theta[0]) + 1e-9 * a.loss) << alpha;
    }
  }
}

// multinomial_logistic_regression with validation_log_loss (one-hot Y) is the multinomial logistic problem of
// `ddn bilevel logistic --dataset digits`: the same loss and hypergradient, the same answer.
TEST(NodeProblems, MultinomialLogisticRegressionNodeIsTheMultinomialProblem) {
  const Dataset train = EveryFourthPixel(Load("digits", "train", "digit", 150));
  const Dataset val = EveryFourthPixel(Load("digits", "val", "digit", 150));
  LogisticProblem tabular(train, val);
  ASSERT_EQ(tabular.num_classes(), 10);
  auto one_hot = [](const Eigen::VectorXd& labels) {  // the digits' labels are the classes 0..9
    Tensor Y({1, labels.size(), 10});
    for (Eigen::Index i = 0; i < labels.size(); ++i) Y[i * 10 + static_cast<int64_t>(labels[i])] = 1.0;
    return Y;
  };
  OuterLossData data;
  data.validation = {{"X", Standardised(val.X, train.X)}, {"Y", one_hot(val.y)}};
  NodeProblem node(
      MakeNode("multinomial_logistic_regression", {}),
      {{"X", Standardised(train.X, train.X)}, {"Y", one_hot(train.y)}, {"lambda", Tensor({1}, {1e-2})}}, {"lambda"},
      FindOuterLoss("validation_log_loss")->make(GetNodeSpec("multinomial_logistic_regression"), data), 1e-4, 1e2);
  for (double lambda : {3e-3, 0.1, 3.0}) {
    const Evaluation a = Evaluate(&tabular, Eigen::VectorXd::Constant(1, lambda));
    const Evaluation b = Evaluate(&node, Eigen::VectorXd::Constant(1, lambda));
    EXPECT_NEAR(a.loss, b.loss, 1e-10 * a.loss) << lambda;
    EXPECT_LT(RelativeError(a.grad_theta, b.grad_theta), 1e-7) << lambda;
  }
  const OptimizeResult a = Optimize(&tabular), b = Optimize(&node);
  EXPECT_NEAR(a.theta[0], b.theta[0], 1e-6 * a.theta[0]);
  EXPECT_NEAR(a.loss, b.loss, 1e-10 * a.loss);
}

TEST(NodeProblems, OuterLossesRefuseWhatTheyCannotUse) {
  EXPECT_EQ(OuterLossNames(), "mse, validation_mse, validation_log_loss");
  EXPECT_EQ(FindOuterLoss("nope"), nullptr);
  OuterLossData empty;
  try {
    FindOuterLoss("validation_mse")->make(GetNodeSpec("ridge_regression"), empty);
    ADD_FAILURE() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("\"validation\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(FindOuterLoss("mse")->make(GetNodeSpec("ridge_regression"), empty), InvalidInput);
  try {
    FindOuterLoss("validation_mse")->make(GetNodeSpec("multinomial_logistic_regression"), empty);
    ADD_FAILURE() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("use validation_log_loss"), std::string::npos) << e.what();
  }
}

// ---- The registry and the report hook -------------------------------------------------------------

TEST(Registry, ListsTheProblemsAndMakesTheTabularOnes) {
  EXPECT_EQ(ProblemNames(), "ridge, logistic, robust-regression, tv-denoise");
  EXPECT_EQ(FindProblem("lasso"), nullptr);
  EXPECT_EQ(FindProblem("tv-denoise")->data, ProblemInfo::Data::kImages);
  EXPECT_FALSE(FindProblem("tv-denoise")->make_tabular);
  EXPECT_EQ(FindProblem("robust-regression")->default_start_grid, 13);
  const Dataset train = Load("breast_cancer", "train", "benign", 60), val = Load("breast_cancer", "val", "benign", 60);
  for (const char* name : {"ridge", "logistic", "robust-regression"}) {
    const ProblemInfo* info = FindProblem(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->data, ProblemInfo::Data::kTables);
    auto p = info->make_tabular(train, val, TabularSettings{});
    EXPECT_EQ(p->name(), name);
  }
  TabularSettings settings;
  settings.per_feature = true;
  auto per = FindProblem("ridge")->make_tabular(train, val, settings);
  EXPECT_EQ(per->NumHyperparameters(), static_cast<int>(train.feature_names.size()));
  // The report hook: per-feature λ form one family, logistic regression reports accuracy and classes.
  EXPECT_EQ(per->HyperparameterKey(2), std::make_pair(std::string("lambda"), train.feature_names[2]));
  auto single = FindProblem("ridge")->make_tabular(train, val, TabularSettings{});
  EXPECT_EQ(single->HyperparameterKey(0), std::make_pair(std::string("lambda"), std::string()));
  auto logistic = FindProblem("logistic")->make_tabular(train, val, TabularSettings{});
  ProblemStatus status;
  logistic->SolveInner(Eigen::VectorXd::Constant(1, 0.1), &status);
  const auto values = logistic->ReportValues();
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values[0].name, "val_accuracy");
  EXPECT_GT(values[0].value, 0.8);
  EXPECT_EQ(values[1].name, "classes");
  EXPECT_EQ(values[1].value, 2.0);
  EXPECT_TRUE(values[1].integer);
  EXPECT_TRUE(logistic->Warnings().empty());
  EXPECT_FALSE(FindProblem("robust-regression")->make_tabular(train, val, TabularSettings{})->UniqueThroughPenalty());
}

}  // namespace
}  // namespace ddn::bilevel
