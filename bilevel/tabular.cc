#include "bilevel/tabular.h"

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "ddn/error.h"
#include "ddn/losses.h"
#include "ddn/params.h"
#include "ddn/random.h"
#include "nodes/regression/regression.h"

namespace ddn::bilevel {
using regression::NewtonMinimize;

// ---- Shared ----------------------------------------------------------------------------------------

std::string RankReport::Describe() const {
  std::string text;
  auto add = [&](const std::string& part) { text += (text.empty() ? "" : "; ") + part; };
  auto quoted = [](const std::vector<std::string>& names) {
    std::string list;
    for (size_t k = 0; k < names.size(); ++k) {
      if (k == 8) {
        list += ", ... (" + std::to_string(names.size()) + " in all)";
        break;
      }
      list += (k ? ", '" : "'") + names[k] + "'";
    }
    return list;
  };
  if (more_features_than_rows()) {
    add(std::to_string(features) + " features and an intercept but only " + std::to_string(rows) + " training rows");
  }
  if (!constant.empty())
    add(std::string(constant.size() == 1 ? "constant column " : "constant columns ") + quoted(constant));
  for (size_t k = 0; k < duplicates.size() && k < 8; ++k) {
    add("'" + duplicates[k].first + "' repeats '" + duplicates[k].second + "' (up to scale and shift)");
  }
  if (duplicates.size() > 8) add("... (" + std::to_string(duplicates.size()) + " repeated columns in all)");
  if (!dependent.empty() && !more_features_than_rows()) add("columns " + quoted(dependent) + " are linearly dependent");
  return text;
}

std::string RankReport::Removable() const {
  std::vector<std::string> names = constant;
  for (const auto& d : duplicates) names.push_back(d.first);
  for (size_t k = 1; k < dependent.size(); ++k) names.push_back(dependent[k]);
  std::string list;
  for (size_t k = 0; k < names.size(); ++k) list += (k ? "," : "") + names[k];
  return list;
}

RankReport CheckRank(const Dataset& train) {
  RankReport r;
  const Eigen::Index n = train.X.rows(), p = train.X.cols();
  r.rows = n;
  r.features = p;
  if (n == 0 || p == 0) return r;
  const Eigen::VectorXd mean = train.X.colwise().mean().transpose();
  // The centred Gram matrix, in blocks of rows (a centred copy of a block only).
  constexpr Eigen::Index kBlock = 4096;
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(p, p), centred;
  for (Eigen::Index b = 0; b < n; b += kBlock) {
    const Eigen::Index rows = std::min(kBlock, n - b);
    centred = train.X.middleRows(b, rows).rowwise() - mean.transpose();
    G.selfadjointView<Eigen::Lower>().rankUpdate(centred.transpose());
  }
  G.triangularView<Eigen::StrictlyUpper>() = G.transpose();
  std::vector<Eigen::Index> live;  // neither constant nor a repeat
  for (Eigen::Index j = 0; j < p; ++j) {
    // Constant: no spread above the rounding of its values.
    const double spread = std::sqrt(std::max(G(j, j), 0.0) / static_cast<double>(n));
    if (!(spread > 1e-13 * std::abs(mean[j])) || spread == 0) {
      r.constant.push_back(train.feature_names[j]);
      continue;
    }
    bool repeat = false;
    for (const Eigen::Index k : live) {
      const double correlation = G(j, k) / std::sqrt(G(j, j) * G(k, k));
      if (std::abs(correlation) >= 1 - 1e-12) {
        r.duplicates.emplace_back(train.feature_names[j], train.feature_names[k]);
        repeat = true;
        break;
      }
    }
    if (!repeat) live.push_back(j);
  }
  // Further dependences: null vectors of the correlation matrix of the remaining columns.
  const Eigen::Index m = static_cast<Eigen::Index>(live.size());
  if (m >= 2) {
    Eigen::MatrixXd C(m, m);
    for (Eigen::Index a = 0; a < m; ++a) {
      for (Eigen::Index b = 0; b < m; ++b) {
        C(a, b) = G(live[a], live[b]) / std::sqrt(G(live[a], live[a]) * G(live[b], live[b]));
      }
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(C);
    std::vector<bool> in(static_cast<size_t>(m), false);
    for (Eigen::Index e = 0; e < m; ++e) {
      if (eigen.eigenvalues()[e] > 1e-10 * static_cast<double>(m)) continue;
      const Eigen::VectorXd v = eigen.eigenvectors().col(e);
      for (Eigen::Index a = 0; a < m; ++a) in[a] = in[a] || std::abs(v[a]) > 1e-3 * v.lpNorm<Eigen::Infinity>();
    }
    for (Eigen::Index a = 0; a < m; ++a) {
      if (in[a]) r.dependent.push_back(train.feature_names[live[a]]);
    }
  }
  return r;
}

int AddTargetOutliers(Dataset* data, double fraction, uint64_t seed) {
  if (!(fraction >= 0 && fraction <= 1)) throw InvalidInput("outlier fraction must be in [0, 1]");
  const Eigen::Index n = data->y.size();
  const int k = static_cast<int>(std::lround(fraction * static_cast<double>(n)));
  if (k == 0) return 0;
  const double mean = data->y.mean();
  const double sd = std::sqrt((data->y.array() - mean).square().sum() / static_cast<double>(n));
  Rng rng(seed);
  std::vector<Eigen::Index> order(n);
  std::iota(order.begin(), order.end(), 0);
  rng.Shuffle(&order);  // uniform (Fisher–Yates with unbiased indices)
  for (int j = 0; j < k; ++j) data->y[order[j]] += (5.0 + 5.0 * rng.Uniform()) * sd;
  return k;
}

TabularProblem::TabularProblem(const Dataset& train, const Dataset& val) : names_(train.feature_names) {
  if (train.X.rows() == 0) throw InvalidInput(train.path + ": no data rows (empty split)");
  if (val.X.rows() == 0) throw InvalidInput(val.path + ": no data rows (empty split)");
  if (val.X.cols() != train.X.cols())
    throw InvalidInput(val.path + ": a different number of features than " + train.path);
  const Eigen::Index p = train.X.cols();
  const double n = static_cast<double>(train.X.rows());
  mean_ = train.X.colwise().mean().transpose();
  scale_.resize(p);
  for (Eigen::Index j = 0; j < p; ++j) {
    const double var = (train.X.col(j).array() - mean_[j]).square().sum() / n;
    scale_[j] = var > 1e-300 ? std::sqrt(var) : 1.0;
  }
  // [Z 1] written column by column into its final matrix (no n × p temporaries: large data sets are held once
  // as X and once as [Z 1]).
  auto standardise = [&](const Eigen::MatrixXd& X) {
    Eigen::MatrixXd A(X.rows(), p + 1);
    for (Eigen::Index j = 0; j < p; ++j) A.col(j) = (X.col(j).array() - mean_[j]) / scale_[j];
    A.col(p).setOnes();
    return A;
  };
  Zt_ = standardise(train.X);
  Zv_ = standardise(val.X);
  yt_ = train.y;
  yv_ = val.y;
}

void TabularProblem::ToColumnUnits(const Eigen::VectorXd& w, double b, Eigen::Ref<Eigen::VectorXd> w_out,
                                   double* b_out) const {
  w_out = w.cwiseQuotient(scale_);
  *b_out = b - w_out.dot(mean_);
}

// ---- Ridge -------------------------------------------------------------------------------------------

RidgeProblem::RidgeProblem(const Dataset& train, const Dataset& val, bool per_feature)
    : TabularProblem(train, val), per_feature_(per_feature) {
  const double n = static_cast<double>(Zt_.rows());
  gram_ = Zt_.transpose() * Zt_ / n;
  zty_ = Zt_.transpose() * yt_ / n;
  u_ = Eigen::VectorXd::Zero(Zt_.cols());
}

std::vector<std::string> RidgeProblem::HyperparameterNames() const {
  if (!per_feature_) return {"lambda"};
  std::vector<std::string> names;
  for (const auto& f : names_) names.push_back("lambda[" + f + "]");
  return names;
}

Eigen::VectorXd RidgeProblem::InitialHyperparameters() const {
  return Eigen::VectorXd::Constant(per_feature_ ? names_.size() : 1, 1e-2);
}
Eigen::VectorXd RidgeProblem::LowerBounds() const {
  return Eigen::VectorXd::Constant(NumHyperparameters(), 1e-6);
}
Eigen::VectorXd RidgeProblem::UpperBounds() const {
  return Eigen::VectorXd::Constant(NumHyperparameters(), 1e4);
}

void RidgeProblem::SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) {
  theta_ = theta;
  regression::SolveRidge(gram_, zty_, theta, &u_, status);
}

double RidgeProblem::OuterLoss(Eigen::VectorXd* grad_w) const {
  return ddn::MeanSquaredError(Zv_, u_, yv_, grad_w);
}

ImplicitSystem RidgeProblem::InnerBlocks() const {
  return regression::RidgeBlocks(gram_, theta_, u_);
}

std::pair<std::string, std::string> RidgeProblem::HyperparameterKey(int k) const {
  if (!per_feature_) return {"lambda", ""};
  return {"lambda", names_[static_cast<size_t>(k)]};
}

LinearModel RidgeProblem::Model() const {
  const Eigen::Index p = static_cast<Eigen::Index>(names_.size());
  LinearModel m;
  m.feature_names = names_;
  m.weights.resize(p, 1);
  m.intercept.resize(1);
  ToColumnUnits(u_.head(p), u_[p], m.weights.col(0), &m.intercept[0]);
  return m;
}

// ---- Logistic ----------------------------------------------------------------------------------------

LogisticProblem::LogisticProblem(const Dataset& train, const Dataset& val) : TabularProblem(train, val) {
  // Class labels are integers: a continuous target with few distinct values is not a set of classes.
  for (const Dataset* d : {&train, &val}) {
    for (Eigen::Index i = 0; i < d->y.size(); ++i) {
      if (d->y[i] != std::round(d->y[i])) {
        throw InvalidInput(d->path + ": " +
                           (i < static_cast<Eigen::Index>(d->lines.size()) ? "row " + std::to_string(d->lines[i]) + ": "
                                                                           : std::string()) +
                           "column '" + d->target_name + "': label " + FormatDouble(d->y[i]) +
                           " is not an integer; logistic regression needs class labels");
      }
    }
  }
  std::map<double, int> index;
  for (Eigen::Index i = 0; i < yt_.size(); ++i) {
    if (index.count(yt_[i]) == 0) {
      index[yt_[i]] = 0;
      if (index.size() > 100) {
        throw InvalidInput(train.path + ": column '" + train.target_name +
                           "' has more than 100 distinct values; logistic regression needs class labels");
      }
    }
  }
  if (index.size() < 2) {
    throw InvalidInput(train.path + ": column '" + train.target_name + "' has a single class; need at least two");
  }
  int k = 0;
  for (auto& [label, i] : index) {
    i = k++;
    classes_.push_back(label);
  }
  lt_.resize(yt_.size());
  for (Eigen::Index i = 0; i < yt_.size(); ++i) lt_[i] = index.at(yt_[i]);
  lv_.resize(yv_.size());
  for (Eigen::Index i = 0; i < yv_.size(); ++i) {
    auto it = index.find(yv_[i]);
    if (it == index.end()) {
      throw InvalidInput(val.path + ": row " + std::to_string(val.lines[i]) + ": class " + FormatDouble(yv_[i]) +
                         " of column '" + val.target_name + "' does not occur in " + train.path);
    }
    lv_[i] = it->second;
  }
  // The labels as the logistic_regression node takes them (0/1, one column) or as the
  // multinomial_logistic_regression node does (one-hot rows): the inner problem is the node's.
  auto labels = [&](const Eigen::VectorXi& classes) {
    if (num_classes() == 2) return Eigen::MatrixXd(classes.cast<double>());
    Eigen::MatrixXd Y = Eigen::MatrixXd::Zero(classes.size(), num_classes());
    for (Eigen::Index i = 0; i < classes.size(); ++i) Y(i, classes[i]) = 1.0;
    return Y;
  };
  Yt_ = labels(lt_);
  Yv_ = labels(lv_);
  u_ = Eigen::VectorXd::Zero(regression::LogisticUnknowns(Zt_.cols(), Yt_.cols()));
  if (num_classes() > 20) {
    warnings_.push_back(train.path + ": column '" + train.target_name + "' has " + std::to_string(num_classes()) +
                        " classes (one weight vector each); is it a class label?");
  }
}

std::vector<Problem::ReportValue> LogisticProblem::ReportValues() const {
  return {{"val_accuracy", ValidationAccuracy(), false}, {"classes", static_cast<double>(num_classes()), true}};
}

Eigen::VectorXd LogisticProblem::InitialHyperparameters() const {
  return Eigen::VectorXd::Constant(1, 1e-2);
}
Eigen::VectorXd LogisticProblem::LowerBounds() const {
  return Eigen::VectorXd::Constant(1, 1e-4);
}
Eigen::VectorXd LogisticProblem::UpperBounds() const {
  return Eigen::VectorXd::Constant(1, 1e2);
}

Eigen::MatrixXd LogisticProblem::Unpack(const Eigen::VectorXd& u) const {
  return regression::UnpackClasses(u, Zt_.cols(), num_classes());
}

double LogisticProblem::InnerObjective(const Eigen::VectorXd& u, double lambda, Eigen::VectorXd* grad,
                                       Eigen::MatrixXd* hess) const {
  return regression::LogisticObjective(Zt_, Yt_, lambda, u, grad, hess);
}

void LogisticProblem::SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) {
  theta_ = theta;
  regression::SolveLogistic(Zt_, Yt_, theta[0], &u_, "logistic", status);
}

double LogisticProblem::OuterLoss(Eigen::VectorXd* grad_w) const {
  return regression::LogisticLoss(Zv_, Yv_, u_, grad_w, nullptr);
}

ImplicitSystem LogisticProblem::InnerBlocks() const {
  return regression::LogisticBlocks(Zt_, Yt_, theta_[0], u_);
}

double LogisticProblem::ValidationAccuracy() const {
  const Eigen::Index n = Zv_.rows();
  int correct = 0;
  if (num_classes() == 2) {
    const Eigen::VectorXd s = Zv_ * u_;
    for (Eigen::Index i = 0; i < n; ++i) correct += (s[i] > 0 ? 1 : 0) == lv_[i];
  } else {
    const Eigen::MatrixXd S = Zv_ * Unpack(u_);
    for (Eigen::Index i = 0; i < n; ++i) {
      Eigen::Index k;
      S.row(i).maxCoeff(&k);
      correct += k == lv_[i];
    }
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

LinearModel LogisticProblem::Model() const {
  const Eigen::Index p = static_cast<Eigen::Index>(names_.size());
  const Eigen::MatrixXd U = num_classes() == 2 ? Eigen::MatrixXd(u_) : Unpack(u_);
  LinearModel m;
  m.feature_names = names_;
  m.classes = classes_;
  m.weights.resize(p, U.cols());
  m.intercept.resize(U.cols());
  for (Eigen::Index k = 0; k < U.cols(); ++k) {
    ToColumnUnits(U.col(k).head(p), U(p, k), m.weights.col(k), &m.intercept[k]);
  }
  return m;
}

// ---- Robust regression --------------------------------------------------------------------------------

RobustRegressionProblem::RobustRegressionProblem(const Dataset& train, const Dataset& val, double ridge)
    : TabularProblem(train, val), ridge_(ridge) {
  if (!(ridge >= 0)) throw InvalidInput("robust-regression: ridge must be >= 0");
  const double n = static_cast<double>(yt_.size());
  const double mean = yt_.mean();
  target_scale_ = std::sqrt((yt_.array() - mean).square().sum() / n);
  if (!(target_scale_ > 0)) target_scale_ = 1.0;
  // Start from least squares (with a tiny ridge if the features are collinear).
  Eigen::MatrixXd G = Zt_.transpose() * Zt_ / n;
  G.diagonal().head(G.rows() - 1).array() += std::max(ridge_, 1e-12);
  u_ = G.ldlt().solve(Zt_.transpose() * yt_ / n);
}

Eigen::VectorXd RobustRegressionProblem::InitialHyperparameters() const {
  return Eigen::VectorXd::Constant(1, target_scale_);
}
Eigen::VectorXd RobustRegressionProblem::LowerBounds() const {
  return Eigen::VectorXd::Constant(1, 1e-3 * target_scale_);
}
Eigen::VectorXd RobustRegressionProblem::UpperBounds() const {
  return Eigen::VectorXd::Constant(1, 1e3 * target_scale_);
}

double RobustRegressionProblem::InnerObjective(const Eigen::VectorXd& u, double alpha, Eigen::VectorXd* grad,
                                               Eigen::MatrixXd* hess) const {
  return regression::RobustObjective(Zt_, yt_, u, alpha, ridge_, grad, hess);
}

void RobustRegressionProblem::SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) {
  theta_ = theta;
  const double alpha = theta[0];
  NewtonMinimize(
      [&](const Eigen::VectorXd& u, Eigen::VectorXd* g, Eigen::MatrixXd* H) { return InnerObjective(u, alpha, g, H); },
      &u_, "robust-regression", status, 500);
}

double RobustRegressionProblem::OuterLoss(Eigen::VectorXd* grad_w) const {
  return ddn::MeanSquaredError(Zv_, u_, yv_, grad_w);
}

ImplicitSystem RobustRegressionProblem::InnerBlocks() const {
  ImplicitSystem s;
  InnerObjective(u_, theta_[0], nullptr, &s.H);
  s.B = regression::RobustAlphaColumn(Zt_, yt_, u_, theta_[0]);
  return s;
}

LinearModel RobustRegressionProblem::Model() const {
  const Eigen::Index p = static_cast<Eigen::Index>(names_.size());
  LinearModel m;
  m.feature_names = names_;
  m.weights.resize(p, 1);
  m.intercept.resize(1);
  ToColumnUnits(u_.head(p), u_[p], m.weights.col(0), &m.intercept[0]);
  return m;
}

}  // namespace ddn::bilevel
