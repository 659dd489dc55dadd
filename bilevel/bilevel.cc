#include "bilevel/bilevel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>

#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::bilevel {

Eigen::VectorXd Problem::HypergradientVjp(const Eigen::VectorXd& v, ProblemStatus* status) const {
  return ImplicitVjp(InnerBlocks(), v, status);
}

std::pair<std::string, std::string> Problem::HyperparameterKey(int k) const {
  return {HyperparameterNames()[static_cast<size_t>(k)], ""};
}

Evaluation Evaluate(Problem* problem, const Eigen::VectorXd& theta, bool with_gradient) {
  Evaluation e;
  e.theta = theta;
  if (theta.size() != problem->NumHyperparameters()) {
    throw InvalidInput(problem->name() + ": expected " + std::to_string(problem->NumHyperparameters()) +
                       " hyperparameters, got " + std::to_string(theta.size()));
  }
  for (Eigen::Index k = 0; k < theta.size(); ++k) {
    if (!(theta[k] > 0) || !std::isfinite(theta[k])) {
      throw InvalidInput(problem->name() + ": hyperparameter " + problem->HyperparameterNames()[k] +
                         " must be positive and finite");
    }
  }
  problem->SolveInner(theta, &e.status);
  if (!with_gradient) {
    e.loss = problem->OuterLoss(nullptr);
    return e;
  }
  Eigen::VectorXd v;
  e.loss = problem->OuterLoss(&v);
  e.grad_theta = problem->HypergradientVjp(v, &e.status);
  e.grad_log = e.grad_theta.cwiseProduct(theta);
  if (!std::isfinite(e.loss) || !e.grad_log.allFinite()) {
    throw NumericalFailure(problem->name() + ": non-finite outer loss or hypergradient");
  }
  return e;
}

namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The gradient with coordinates frozen at a bound (pointing outwards) set to zero.
Eigen::VectorXd Projected(const Eigen::VectorXd& x, const Eigen::VectorXd& g, const Eigen::VectorXd& lo,
                          const Eigen::VectorXd& hi) {
  Eigen::VectorXd p = g;
  for (Eigen::Index k = 0; k < x.size(); ++k) {
    if ((x[k] <= lo[k] && g[k] > 0) || (x[k] >= hi[k] && g[k] < 0)) p[k] = 0;
  }
  return p;
}

}  // namespace

void CheckBounds(const Problem& problem, const Eigen::VectorXd& lower, const Eigen::VectorXd& upper) {
  const int m = problem.NumHyperparameters();
  const auto names = problem.HyperparameterNames();
  if (lower.size() != m || upper.size() != m) {
    throw InvalidInput(problem.name() + ": expected " + std::to_string(m) + " lower and upper bounds, got " +
                       std::to_string(lower.size()) + " and " + std::to_string(upper.size()));
  }
  for (Eigen::Index k = 0; k < m; ++k) {
    if (!(lower[k] > 0 && std::isfinite(lower[k]) && upper[k] > lower[k] && std::isfinite(upper[k]))) {
      throw InvalidInput(problem.name() + ": the bounds of " + names[k] +
                         " must be finite with 0 < lower < upper, got [" + FormatDouble(lower[k]) + ", " +
                         FormatDouble(upper[k]) + "]");
    }
  }
}

OptimizeResult Optimize(Problem* problem, const OptimizerOptions& options, const Eigen::VectorXd& theta0_in) {
  const auto start = std::chrono::steady_clock::now();
  const int m = problem->NumHyperparameters();
  const auto names = problem->HyperparameterNames();
  const Eigen::VectorXd lower = options.lower.size() ? options.lower : problem->LowerBounds();
  const Eigen::VectorXd upper = options.upper.size() ? options.upper : problem->UpperBounds();
  CheckBounds(*problem, lower, upper);
  const Eigen::VectorXd lo = lower.array().log();
  const Eigen::VectorXd hi = upper.array().log();
  Eigen::VectorXd theta0 = theta0_in;
  if (theta0.size() == 0) {
    theta0 = problem->InitialHyperparameters().cwiseMax(lower).cwiseMin(upper);
  } else if (theta0.size() != m) {
    throw InvalidInput(problem->name() + ": expected " + std::to_string(m) + " starting values, got " +
                       std::to_string(theta0.size()));
  }
  for (Eigen::Index k = 0; k < m; ++k) {
    if (!(theta0[k] >= lower[k] && theta0[k] <= upper[k])) {
      throw InvalidInput(problem->name() + ": the start " + names[k] + " = " + FormatDouble(theta0[k]) +
                         " is outside its bounds [" + FormatDouble(lower[k]) + ", " + FormatDouble(upper[k]) + "]");
    }
  }
  Eigen::VectorXd x = theta0.array().log().matrix().cwiseMax(lo).cwiseMin(hi);
  // θ of x: a coordinate at a bound is the bound itself (exp(log(1e-4)) is 0.00010000000000000009).
  auto theta_of = [&](const Eigen::VectorXd& point) {
    Eigen::VectorXd theta = point.array().exp();
    for (Eigen::Index k = 0; k < m; ++k) {
      if (point[k] <= lo[k]) theta[k] = lower[k];
      if (point[k] >= hi[k]) theta[k] = upper[k];
    }
    return theta;
  };

  OptimizeResult r;
  r.lower = lower;
  r.upper = upper;
  Evaluation cur = Evaluate(problem, theta_of(x));
  r.inner_solves = 1;
  auto record = [&](int it, const Evaluation& e) {
    IterationRecord rec;
    rec.iteration = it;
    rec.theta = e.theta;
    rec.loss = e.loss;
    rec.grad_norm = Projected(x, e.grad_log, lo, hi).lpNorm<Eigen::Infinity>();
    rec.inner_solves = r.inner_solves;
    r.history.push_back(rec);
    if (options.on_iterate) options.on_iterate(it, e, r.inner_solves);
  };
  record(0, cur);

  std::deque<std::pair<Eigen::VectorXd, Eigen::VectorXd>> pairs;  // (s, y)
  r.stop_reason = "max iterations";
  int it = 0;
  for (it = 1; it <= options.max_iterations; ++it) {
    const Eigen::VectorXd pg = Projected(x, cur.grad_log, lo, hi);
    if (pg.lpNorm<Eigen::Infinity>() <= options.gradient_tolerance * std::max(std::abs(cur.loss), 1e-12)) {
      r.stop_reason = "gradient";
      break;
    }
    // Two-loop recursion on the free coordinates.
    Eigen::VectorXd q = pg;
    std::vector<double> alpha(pairs.size());
    for (int i = static_cast<int>(pairs.size()) - 1; i >= 0; --i) {
      const auto& [s, y] = pairs[i];
      alpha[i] = s.dot(q) / y.dot(s);
      q -= alpha[i] * y;
    }
    if (!pairs.empty()) {
      const auto& [s, y] = pairs.back();
      q *= s.dot(y) / y.dot(y);
    }
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto& [s, y] = pairs[i];
      const double beta = y.dot(q) / y.dot(s);
      q += (alpha[i] - beta) * s;
    }
    Eigen::VectorXd d = -q;
    for (Eigen::Index k = 0; k < d.size(); ++k) {
      if (pg[k] == 0) d[k] = 0;
    }
    if (d.dot(pg) >= 0) {  // not a descent direction: restart from steepest descent
      pairs.clear();
      d = -pg;
    }
    if (pairs.empty()) d *= 1.0 / std::max(d.lpNorm<Eigen::Infinity>(), 1e-300);  // first step: unit in log θ
    const double dmax = d.lpNorm<Eigen::Infinity>();
    if (dmax > options.max_step) d *= options.max_step / dmax;

    // Backtracking Armijo line search along the projected path.
    double t = 1.0;
    bool accepted = false;
    Eigen::VectorXd x_new;
    Evaluation next;
    for (int b = 0; b <= options.max_backtracks; ++b, t *= 0.5) {
      x_new = (x + t * d).cwiseMax(lo).cwiseMin(hi);
      if ((x_new - x).lpNorm<Eigen::Infinity>() == 0) break;
      next = Evaluate(problem, theta_of(x_new));
      ++r.inner_solves;
      if (next.loss <= cur.loss + options.armijo * cur.grad_log.dot(x_new - x)) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      r.stop_reason = "line search";
      // Leave the problem solved at the current answer.
      cur = Evaluate(problem, theta_of(x));
      ++r.inner_solves;
      break;
    }
    const Eigen::VectorXd s = x_new - x, y = next.grad_log - cur.grad_log;
    if (s.dot(y) > 1e-12 * s.norm() * y.norm()) {
      pairs.emplace_back(s, y);
      if (static_cast<int>(pairs.size()) > options.memory) pairs.pop_front();
    }
    const double previous = cur.loss;
    x = x_new;
    cur = next;
    record(it, cur);
    if (std::abs(previous - cur.loss) <= options.loss_tolerance * std::max(std::abs(cur.loss), 1e-300)) {
      r.stop_reason = "loss change";
      ++it;
      break;
    }
    if (s.lpNorm<Eigen::Infinity>() <= options.step_tolerance) {
      r.stop_reason = "step";
      ++it;
      break;
    }
  }
  r.iterations = it - 1;
  // Which hyperparameters the bounds hold (their gradient points outwards).
  r.at_bound.assign(static_cast<size_t>(m), 0);
  bool held = false;
  for (Eigen::Index k = 0; k < m; ++k) {
    if (x[k] <= lo[k] && cur.grad_log[k] > 0) r.at_bound[k] = -1;
    if (x[k] >= hi[k] && cur.grad_log[k] < 0) r.at_bound[k] = 1;
    held = held || r.at_bound[k] != 0;
  }
  if (held && (r.stop_reason == "gradient" || r.stop_reason == "loss change" || r.stop_reason == "step")) {
    r.stop_reason = "at_bound";
  }
  r.theta = cur.theta;
  r.loss = cur.loss;
  r.grad_log = cur.grad_log;
  r.status = cur.status;
  r.seconds = Seconds(start);
  return r;
}

GridResult GridSearch(Problem* problem, int points, double lo, double hi,
                      const std::function<void(int done, int total)>& progress) {
  if (points < 1) throw InvalidInput(problem->name() + ": grid needs at least 1 point");
  const auto start = std::chrono::steady_clock::now();
  if (lo <= 0 || hi <= 0) {
    lo = problem->LowerBounds().maxCoeff();
    hi = problem->UpperBounds().minCoeff();
  }
  const int k = problem->NumHyperparameters();
  GridResult g;
  g.best_loss = std::numeric_limits<double>::infinity();
  g.values.resize(points);
  g.losses.resize(points);
  // From the largest value down, each solve warm-started from its neighbour: for the built-in problems
  // the large end is the well-conditioned one (strong regularisation, or least squares for robust
  // regression), and Newton's method is slowest when started far away at the nearly singular end.
  for (int i = points - 1; i >= 0; --i) {
    const double value =
        points == 1 ? std::sqrt(lo * hi) : std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * i / (points - 1));
    ProblemStatus status;
    problem->SolveInner(Eigen::VectorXd::Constant(k, value), &status);
    ++g.inner_solves;
    const double loss = problem->OuterLoss(nullptr);
    g.values[i] = value;
    g.losses[i] = loss;
    if (loss <= g.best_loss) {
      g.best_loss = loss;
      g.best_value = value;
    }
    if (progress) progress(points - i, points);
  }
  g.seconds = Seconds(start);
  return g;
}

}  // namespace ddn::bilevel
