// bilevel/tabular.h: hyperparameter optimisation for linear models on tabular data.
//
// Three bi-level problems (bilevel.h) over a training set (X, y) and a validation set (X_v, y_v). The
// features are standardised with the training set's mean and standard deviation (a constant column is
// only centred), z = (x − m) / s, so one regularisation weight means the same for every feature; the
// answer is reported back in the units of the CSV columns (w_x = w_z / s, b_x = b_z − Σ w_z m / s). Each
// model has an unpenalised intercept b; u = (w, b) are the inner variables, n the training rows.
//
// The inner problems are those of nodes/regression/regression.h (the math, the Newton solves and the blocks H and
// B; the nodes ridge_regression, logistic_regression, multinomial_logistic_regression and robust_regression are
// the same problems on a batch),
// here on the standardised features, with u = (w, b):
//
//   ridge:     f(u, λ) = 1/(2n) Σ_i (z_iᵀw + b − y_i)² + ½ Σ_j λ_j w_j²   (one λ, or one λ_j per feature).
//              Outer loss: validation mean squared error.
//   logistic:  binary (two classes, labels mapped to 0/1 in sorted order: the logistic_regression node's problem)
//              or multinomial (K > 2 classes as one-hot rows, b_K = 0: the multinomial_logistic_regression
//              node's problem), penalty ½λ Σ_k ‖w_k‖². Outer loss: validation mean log-loss.
//   robust regression: the pseudo-Huber loss φ_α of nodes/pooling/penalties.h with a learned scale α > 0 (in
//              the target's units), f = 1/n Σ_i φ_α(z_iᵀw + b − y_i) + ½μ‖w‖² (μ fixed, default 0).
//              Outer loss: validation MSE.
//
// Inner solves (regression.h) are warm-started from the previous θ; the hypergradient is ddn::ImplicitVjp with
// the closed-form H and B.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bilevel/bilevel.h"
#include "datasets/csv.h"

namespace ddn::bilevel {

// The tabular data (datasets/csv.h).
using datasets::Dataset;

// The answer of a linear model in the units of the CSV columns: weights (features × outputs) and
// intercepts (outputs); one output for ridge, robust and binary logistic regression, one per class for
// multinomial logistic regression.
struct LinearModel {
  std::vector<std::string> feature_names;
  Eigen::MatrixXd weights;
  Eigen::VectorXd intercept;
  std::vector<double> classes;  // logistic: the label of each class (sorted); empty otherwise
};

// Base of the tabular problems: standardised copies of the data and the map back to column units.
class TabularProblem : public Problem {
 public:
  TabularProblem(const Dataset& train, const Dataset& val);
  const Eigen::VectorXd& InnerSolution() const override { return u_; }
  // w*(θ) of the last SolveInner in the CSV columns' units.
  virtual LinearModel Model() const = 0;
  // Name of the outer loss for reports: "val_mse" or "val_log_loss".
  virtual std::string LossName() const = 0;
  // Whether the fit is unique even if the features are rank-deficient (CheckRank): true when a penalty on every
  // weight makes the inner problem strictly convex.
  virtual bool UniqueThroughPenalty() const = 0;
  const std::vector<std::string>& feature_names() const { return names_; }

 protected:
  // Maps standardised weights/intercept of one output (column) to column units.
  void ToColumnUnits(const Eigen::VectorXd& w, double b, Eigen::Ref<Eigen::VectorXd> w_out, double* b_out) const;

  std::vector<std::string> names_;
  Eigen::VectorXd mean_, scale_;  // standardisation of the features (training set)
  Eigen::MatrixXd Zt_, Zv_;       // [Z 1] of training and validation rows
  Eigen::VectorXd yt_, yv_;
  Eigen::VectorXd u_;      // current inner solution
  Eigen::VectorXd theta_;  // θ of the current inner solution
};

class RidgeProblem : public TabularProblem {
 public:
  RidgeProblem(const Dataset& train, const Dataset& val, bool per_feature);
  std::string name() const override { return "ridge"; }
  std::vector<std::string> HyperparameterNames() const override;
  Eigen::VectorXd InitialHyperparameters() const override;
  Eigen::VectorXd LowerBounds() const override;
  Eigen::VectorXd UpperBounds() const override;
  void SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) override;
  double OuterLoss(Eigen::VectorXd* grad_w) const override;
  ImplicitSystem InnerBlocks() const override;
  LinearModel Model() const override;
  std::string LossName() const override { return "val_mse"; }
  bool UniqueThroughPenalty() const override { return true; }
  bool per_feature() const { return per_feature_; }
  std::pair<std::string, std::string> HyperparameterKey(int k) const override;

 private:
  bool per_feature_;
  Eigen::MatrixXd gram_;  // Z̃ᵀZ̃/n
  Eigen::VectorXd zty_;   // Z̃ᵀy/n
};

class LogisticProblem : public TabularProblem {
 public:
  // Classes are the distinct values of the training target: integers (a non-integer label is an InvalidInput
  // naming its file and row), at most 100 of them; validation labels must be among them.
  LogisticProblem(const Dataset& train, const Dataset& val);
  std::string name() const override { return "logistic"; }
  std::vector<std::string> HyperparameterNames() const override { return {"lambda"}; }
  Eigen::VectorXd InitialHyperparameters() const override;
  Eigen::VectorXd LowerBounds() const override;
  Eigen::VectorXd UpperBounds() const override;
  void SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) override;
  double OuterLoss(Eigen::VectorXd* grad_w) const override;
  ImplicitSystem InnerBlocks() const override;
  LinearModel Model() const override;
  std::string LossName() const override { return "val_log_loss"; }
  bool UniqueThroughPenalty() const override { return true; }
  // Validation accuracy and the number of classes.
  std::vector<ReportValue> ReportValues() const override;
  // More than 20 classes: is the target a class label?
  std::vector<std::string> Warnings() const override { return warnings_; }
  int num_classes() const { return static_cast<int>(classes_.size()); }
  // The inner objective f(u, λ), its gradient and Hessian (for tests).
  double InnerObjective(const Eigen::VectorXd& u, double lambda, Eigen::VectorXd* grad, Eigen::MatrixXd* hess) const;
  // Validation accuracy at the current solution.
  double ValidationAccuracy() const;

 private:
  // The per-class (p+1) × K coefficient matrix of u (multinomial: last intercept 0).
  Eigen::MatrixXd Unpack(const Eigen::VectorXd& u) const;
  std::vector<double> classes_;
  Eigen::VectorXi lt_, lv_;  // class indices of the rows
  Eigen::MatrixXd Yt_, Yv_;  // the labels as the nodes take them: 0/1 (two classes) or one-hot rows
  std::vector<std::string> warnings_;
};

class RobustRegressionProblem : public TabularProblem {
 public:
  // `ridge` is the fixed μ ≥ 0 on ‖w‖² (0: none).
  RobustRegressionProblem(const Dataset& train, const Dataset& val, double ridge = 0.0);
  std::string name() const override { return "robust-regression"; }
  std::vector<std::string> HyperparameterNames() const override { return {"alpha"}; }
  Eigen::VectorXd InitialHyperparameters() const override;
  Eigen::VectorXd LowerBounds() const override;
  Eigen::VectorXd UpperBounds() const override;
  void SolveInner(const Eigen::VectorXd& theta, ProblemStatus* status) override;
  double OuterLoss(Eigen::VectorXd* grad_w) const override;
  ImplicitSystem InnerBlocks() const override;
  LinearModel Model() const override;
  std::string LossName() const override { return "val_mse"; }
  double InnerObjective(const Eigen::VectorXd& u, double alpha, Eigen::VectorXd* grad, Eigen::MatrixXd* hess) const;
  bool UniqueThroughPenalty() const override { return ridge_ > 0; }

 private:
  double ridge_;
  double target_scale_;  // standard deviation of the training target (sets α's bounds)
};

// Why the training features do not determine a unique linear fit (with an intercept): constant columns,
// columns that repeat an earlier one up to scale and shift (correlation ±1), further linear dependences among
// the remaining columns (a null vector of their correlation matrix), and more features than rows. Ridge and
// logistic regression stay unique through their penalty; robust regression needs its fixed μ > 0 (--ridge).
struct RankReport {
  std::vector<std::string> constant;                            // columns with a single value
  std::vector<std::pair<std::string, std::string>> duplicates;  // (column, the earlier column it repeats)
  std::vector<std::string> dependent;                           // columns of a further linear dependence
  Eigen::Index rows = 0, features = 0;
  bool more_features_than_rows() const { return features + 1 > rows; }
  bool deficient() const {
    return !constant.empty() || !duplicates.empty() || !dependent.empty() || more_features_than_rows();
  }
  // One phrase naming every cause: "constant column 'c'; 'bmi2' repeats 'bmi' (up to scale and shift)".
  std::string Describe() const;
  // The columns a user could leave out to make the design full rank (constant, repeating, and all but the first
  // of a dependent group), comma-separated.
  std::string Removable() const;
};
// Column statistics in blocks of rows (no copy of X): O(n p²).
RankReport CheckRank(const Dataset& train);

// Replaces round(fraction · n) training targets, chosen by a seeded shuffle (ddn::Rng, the same on every platform), by
// gross errors y_i + (5 + 5u)·sd(y), u uniform in [0, 1): one-sided, so they bias least squares. For showing what a
// learned robust scale does on real data (the validation set stays clean). Returns the rows changed.
int AddTargetOutliers(Dataset* data, double fraction, uint64_t seed);

}  // namespace ddn::bilevel
