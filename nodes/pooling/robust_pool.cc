// The robust pooling nodes (docs/design.md §2):
//
//   robust_pool         x (B, N), optional w (B, N)     → y (B)     y = argmin_y Σ_i w_i φ(y − x_i; α)
//   robust_vector_pool  x (B, N, D), optional w (B, N)  → y (B, D)  y = argmin_y Σ_i w_i φ(‖y − x_i‖; α)
//
// Parameters: penalty ∈ quadratic, pseudo_huber (default), huber, welsch, truncated_quadratic, cauchy,
// geman_mcclure (penalties.h); alpha > 0 (default 1). Weights w ≥ 0, not all zero, with their own gradient.
// robust_vector_pool also has point_starts (0…64, default 4): how many data points (the best-scoring) start local
// solves of welsch, cauchy and geman_mcclure besides the coordinate-wise median and the weighted mean; 0 keeps those
// two, the reference library's starts, and skips the scoring (pooling_solvers.h).
//
// Both nodes are DeclarativeNodes written as a sum of terms over "N" (so the generic Ceres forward and the
// nested-Jet implicit backward exist and are tested against the specialised ones), with Solve, Backward and
// ObjectiveValue overridden by the specialised solvers and closed-form gradients of pooling_solvers.h, which
// documents the guarantees (certified global minima of the scalar node for every penalty; best of several
// local solves, kNotCertified, for the vector node's non-convex penalties). robust_vector_pool also has the
// unrolled and truncated:K gradient modes (through the winning local solve; vector_pool_unrolled.h).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ddn/declarative.h"
#include "ddn/finiteness.h"
#include "ddn/random.h"
#include "nodes/pooling/penalties.h"
#include "nodes/pooling/pooling_solvers.h"
#include "nodes/pooling/pooling_workspace.h"
#include "nodes/pooling/vector_pool_unrolled.h"

namespace ddn::pooling {
namespace {

std::vector<ParamSpec> PoolingParams() {
  return {{"penalty", ParamType::kChoice, "pseudo_huber",
           "robust penalty phi: quadratic, pseudo_huber, huber, welsch, truncated_quadratic, cauchy, geman_mcclure",
           PenaltyNames()},
          {"alpha", ParamType::kFloat, "1", "scale alpha > 0 of the penalty", {}}};
}

// Gaussian cluster (σ = 1 around a random centre) with about 20 % far outliers (uniform, 4..9 away).
void FillCluster(Rng* rng, double* x, int64_t n, int64_t d, bool outliers = true) {
  std::vector<double> centre(d);
  for (auto& c : centre) c = rng->Normal();
  for (int64_t i = 0; i < n; ++i) {
    const bool out = outliers && i > 0 && (rng->Uniform() < 0.2);
    for (int64_t k = 0; k < d; ++k) {
      x[i * d + k] = centre[k] + (out ? ((rng->Uniform() < 0.5) ? 1 : -1) * rng->Uniform(4.0, 9.0) : rng->Normal());
    }
  }
}

// Scalar pooling (robust_pool) checks x, w, y, v and dx for NaN/Inf in its own passes (ddn/finiteness.h): Σx in
// the pass that finds the range of x, Σ(y − x_i) and Σ|w φ''| in the backward's pass. The backward of the welsch
// workload, (1024, 1024), took 3.05 ms with the engine's separate checks and 2.65 ms without; the forward's time
// did not change (its first pass over x is memory-bound either way). Vector pooling (robust_vector_pool) tests x
// exactly in the transpose that stores it by coordinate (forward and backward), y, v and w directly (D and N
// values), and dx and dw as the vector–Jacobian product writes them: on (64, 256, 8) welsch the engine's three
// checks of 2,048 values per problem were 3.3 % of the time; its other gradient modes (unrolled, truncated:K) make
// the engine's checks before and after.
template <class Derived>
class PoolingNodeBase : public DeclarativeNode<Derived>, public ChecksOwnFiniteness {
 public:
  explicit PoolingNodeBase(const Params& p, bool checks_own_finiteness = false)
      : kind_(ParsePenalty(p.GetString("penalty"))),
        alpha_(p.RequirePositive("alpha")),
        own_finiteness_(checks_own_finiteness) {}

  static constexpr const char* kTermAxis = "N";

  bool ChecksFinitenessInKernels() const override { return own_finiteness_; }

  // ddn::Forward has checked that every value of x is finite (before Validate), or Solve does: not here. The
  // weights (N values) with the engine's own message.
  void Validate(const ProblemData& p) const override {
    if (own_finiteness_ && p.inputs.size() > 1) RequireFiniteInput(*this, p, 1);
    ValidatePoolingProblem(Problem(p), /*check_x_finite=*/false);
  }

  void Solve(const ProblemData& p, ProblemStatus* s) const override {
    const PoolingProblem problem = Problem(p);
    PoolingWorkspace* ws = &p.workspace.Get<PoolingWorkspace>();  // this batch worker's own
    if (problem.d == 1) {  // D = 1 is the scalar problem: use its certified solvers
      if (!SolveScalarPoolFolded(problem, p.outputs[0], s, options_, ws, /*x_checked=*/!own_finiteness_)) {
        RequireFiniteInput(*this, p, 0);  // throws for a non-finite x; returns if Σx only overflowed (y is unwritten)
        SolveScalarPoolFolded(problem, p.outputs[0], s, options_, ws, /*x_checked=*/true);
      }
      if (own_finiteness_ && !std::isfinite(p.outputs[0][0])) RecheckForward(*this, p);
      return;
    }
    if (!SolveVectorPoolFolded(problem, p.outputs[0], s, options_, nullptr, ws, /*x_checked=*/!own_finiteness_)) {
      RequireFiniteInput(*this, p, 0);  // throws: the transpose's test is exact
      SolveVectorPool(problem, p.outputs[0], s, options_, nullptr, ws);
    }
    if (own_finiteness_) {
      for (int64_t k = 0; k < p.OutputSize(0); ++k) {
        if (!std::isfinite(p.outputs[0][k])) {
          RecheckForward(*this, p);
          break;
        }
      }
    }
  }

  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    const bool finite =
        PoolingBackward(Problem(p), p.outputs[0], p.grad_outputs[0], p.grad_inputs[0],
                        p.grad_inputs.size() > 1 ? p.grad_inputs[1] : nullptr, s, &p.workspace.Get<PoolingWorkspace>(),
                        /*assign=*/true);
    if (own_finiteness_ && !finite) {
      RecheckBackward(*this, p);  // the engine's checks of x, w, dL/dy and the gradients, and its messages
      RequireFiniteY(p);
    }
  }

  // The engine does not check the y it is given; a NaN or Inf y would give a gradient of 0 (flagged non_regular).
  void RequireFiniteY(const ProblemData& p) const {
    for (int64_t k = 0; k < p.OutputSize(0); ++k) {
      if (!std::isfinite(p.outputs[0][k])) {
        throw InvalidInput("output 'y' given to the backward contains a non-finite value (" +
                           FormatDouble(p.outputs[0][k]) + ")");
      }
    }
  }
  // Backward writes every element of dx and dw (the engine need not zero them first).
  bool BackwardAssigns() const override { return true; }

  double ObjectiveValue(const ProblemData& p) const override { return PoolingObjective(Problem(p), p.outputs[0]); }

  // Start of the generic (Ceres) solve: the weighted mean, as the reference library does.
  void InitialGuess(const ProblemData& p, double* y) const {
    const PoolingProblem q = Problem(p);
    double total = 0;
    for (int64_t k = 0; k < q.d; ++k) y[k] = 0;
    for (int64_t i = 0; i < q.n; ++i) {
      const double wi = q.w ? q.w[i] : 1.0;
      total += wi;
      for (int64_t k = 0; k < q.d; ++k) y[k] += wi * q.x[i * q.d + k];
    }
    for (int64_t k = 0; k < q.d; ++k) y[k] /= total;
  }

  // Quadratic, pseudo-Huber and Huber are convex; the other penalties give problems with several local minima
  // (the generic path's answers are then flagged not_certified; the specialised solvers certify their own).
  bool IsConvex(const ProblemData&) const {
    return kind_ == PenaltyKind::kQuadratic || kind_ == PenaltyKind::kPseudoHuber || kind_ == PenaltyKind::kHuber;
  }

  PenaltyKind kind() const { return kind_; }
  double alpha() const { return alpha_; }
  PoolingOptions* mutable_options() { return &options_; }

 protected:
  PoolingProblem Problem(const ProblemData& p) const {
    PoolingProblem q;
    q.kind = kind_;
    q.alpha = alpha_;
    q.x = p.inputs[0];
    q.w = p.inputs.size() > 1 ? p.inputs[1] : nullptr;
    q.n = p.input_shapes[0].empty() ? 0 : p.input_shapes[0][0];
    q.d = p.input_shapes[0].size() > 1 ? p.input_shapes[0][1] : 1;
    return q;
  }

  // Check cases shared by both nodes; d = 0 for the scalar node.
  std::vector<CheckCase> MakeCheckCases(uint64_t seed, int64_t d) const {
    Rng rng(seed);
    const int64_t dd = std::max<int64_t>(d, 1);
    auto shape = [&](int64_t b, int64_t n) { return d == 0 ? Shape{b, n} : Shape{b, n, d}; };
    std::vector<CheckCase> cases;
    const int64_t batch = 3, n = d == 0 ? 12 : 10;
    // Cluster spread relative to α: in 3-D a tighter cluster keeps the inliers within reach of each other.
    const double cluster_scale = d == 0 ? 1.0 : 0.3;
    {
      CheckCase c{"random", {}};
      Tensor x(shape(batch, n));
      for (int64_t b = 0; b < batch; ++b) FillCluster(&rng, x.problem(b), n, dd);
      for (auto& v : x.values()) v *= cluster_scale * alpha_;  // the cluster at the penalty's scale
      c.inputs["x"] = std::move(x);
      cases.push_back(std::move(c));
    }
    {
      CheckCase c{"weighted", {}};
      Tensor x(shape(batch, n)), w(Shape{batch, n});
      for (int64_t b = 0; b < batch; ++b) FillCluster(&rng, x.problem(b), n, dd);
      for (auto& v : x.values()) v *= cluster_scale * alpha_;
      for (auto& v : w.values()) v = rng.Uniform(0.2, 2.0);
      c.inputs["x"] = std::move(x);
      c.inputs["w"] = std::move(w);
      cases.push_back(std::move(c));
    }
    {
      // Duplicated points: every point of the cluster appears twice.
      CheckCase c{"duplicates", {}};
      Tensor x(shape(batch, n));
      for (int64_t b = 0; b < batch; ++b) {
        FillCluster(&rng, x.problem(b), n / 2, dd);
        double* xb = x.problem(b);
        for (int64_t i = n / 2; i < n; ++i)
          for (int64_t k = 0; k < dd; ++k) xb[i * dd + k] = xb[(i - n / 2) * dd + k];
      }
      for (auto& v : x.values()) v *= cluster_scale * alpha_;
      c.inputs["x"] = std::move(x);
      cases.push_back(std::move(c));
    }
    if (kind_ == PenaltyKind::kHuber || kind_ == PenaltyKind::kTruncatedQuadratic) {
      // Near the kink: solve a tight cluster of 7 points, then add points at distance (1 ∓ 1e-2)·α from the
      // answer y in symmetric pairs (so y stays the answer; see below for the truncated quadratic). The
      // derivative exists there: finite differences (steps ≤ 1e-3·α here) stay on one side of the kink.
      CheckCase c{"near_kink", {}};
      const int64_t n0 = 7, m = n0 + 4;
      Tensor x(shape(batch, m));
      for (int64_t b = 0; b < batch; ++b) {
        double* xb = x.problem(b);
        FillCluster(&rng, xb, n0, dd, /*outliers=*/false);  // a tight cluster: a clear global minimum
        for (int64_t k = 0; k < n0 * dd; ++k) xb[k] *= 0.2 * alpha_;
        PoolingProblem q;
        q.kind = kind_;
        q.alpha = alpha_;
        q.x = xb;
        q.n = n0;
        q.d = dd;
        std::vector<double> y(dd);
        ProblemStatus st;
        if (dd == 1) {
          SolveScalarPool(q, y.data(), &st);
        } else {
          SolveVectorPool(q, y.data(), &st);
        }
        const double radius[2] = {1 - 1e-2, 1 + 1e-2};
        for (int j = 0; j < 2; ++j) {
          std::vector<double> dir(dd);
          double nrm = 0;
          for (auto& v : dir) {
            v = rng.Normal();
            nrm += v * v;
          }
          nrm = std::sqrt(nrm);
          // The truncated quadratic ignores points beyond α, so its outer point has no mirror partner (a
          // symmetric outer pair would make two mirror-image global minima); a far point takes its place.
          const double other = (j == 1 && kind_ == PenaltyKind::kTruncatedQuadratic) ? -3.0 : -radius[j];
          for (int64_t k = 0; k < dd; ++k) {
            xb[(n0 + 2 * j) * dd + k] = y[k] + radius[j] * alpha_ * dir[k] / nrm;
            xb[(n0 + 2 * j + 1) * dd + k] = y[k] + other * alpha_ * dir[k] / nrm;
          }
        }
      }
      c.inputs["x"] = std::move(x);
      cases.push_back(std::move(c));
    }
    if (kind_ == PenaltyKind::kTruncatedQuadratic && d == 0) {
      // Every point farther than 2α from every other: each point alone is a global minimum (ties, kNonUnique);
      // the smallest is returned and follows its point (dy/dx = 1 there, 0 elsewhere).
      CheckCase c{"isolated_points", {}};
      Tensor x(shape(batch, 5));
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < 5; ++i) x.problem(b)[i] = alpha_ * (3.0 * i + rng.Uniform(0.0, 0.5));
      c.inputs["x"] = std::move(x);
      cases.push_back(std::move(c));
    }
    return cases;
  }

  PenaltyKind kind_;
  double alpha_;
  bool own_finiteness_;  // robust_pool: Solve and Backward check finiteness (ddn/finiteness.h)
  PoolingOptions options_;
};

class RobustPool : public PoolingNodeBase<RobustPool> {
 public:
  static NodeSpec Spec() {
    return {"robust_pool",
            "robust pooling y = argmin_y sum_i w_i phi(y - x_i; alpha) over the last axis",
            PoolingParams(),
            {{"x", {"N"}, "points to pool"}, {"w", {"N"}, "non-negative point weights (default 1)", true, true}},
            {{"y", {}, "the robust mean"}}};
  }
  explicit RobustPool(const Params& p) : PoolingNodeBase(p, /*checks_own_finiteness=*/true) {}

  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    const T phi = Penalty<T>(kind_, y[0] - in[0][0], alpha_);
    return in.has(1) ? in[1][0] * phi : phi;
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override { return MakeCheckCases(seed, 0); }
};
DDN_REGISTER_NODE(RobustPool);

class RobustVectorPool : public PoolingNodeBase<RobustVectorPool> {
 public:
  static NodeSpec Spec() {
    std::vector<ParamSpec> params = PoolingParams();
    params.push_back({"point_starts",
                      ParamType::kInt,
                      std::to_string(PoolingOptions().vector_starts),
                      "welsch, cauchy, geman_mcclure: data points (of best sampled objective) that start local solves "
                      "besides the median and the mean, 0..64 (0: the reference library's two starts)",
                      {}});
    return {"robust_vector_pool",
            "robust vector pooling y = argmin_y sum_i w_i phi(||y - x_i||; alpha) over the points axis N",
            std::move(params),
            {{"x", {"N", "D"}, "points to pool (N points in R^D)"},
             {"w", {"N"}, "non-negative point weights (default 1)", true, true}},
            {{"y", {"D"}, "the robust mean"}}};
  }
  explicit RobustVectorPool(const Params& p) : PoolingNodeBase(p, /*checks_own_finiteness=*/true) {
    options_.vector_starts = p.RequireIntInRange("point_starts", 0, options_.vector_candidates);
  }

  // Unrolled and truncated:K: through the winning start's local Newton/IRLS iterations (vector_pool_unrolled.h).
  bool HasIterativeForward() const override { return true; }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    if (p.gradient_mode.implicit()) return PoolingNodeBase::Backward(p, s);
    // The unrolled and truncated modes add to dx, dw: zero them first (BackwardAssigns). The engine's checks
    // (this node makes them itself, ddn/finiteness.h): x, w, dL/dy and y before, the gradients after.
    const PoolingProblem q = Problem(p);
    std::fill_n(p.grad_inputs[0], q.n * q.d, 0.0);
    if (p.grad_inputs.size() > 1 && p.grad_inputs[1]) std::fill_n(p.grad_inputs[1], q.n, 0.0);
    RecheckBackward(*this, p);
    RequireFiniteY(p);
    VectorPoolBackwardInMode(Problem(p), options_, p.outputs[0], p.gradient_mode, p.grad_outputs[0], p.grad_inputs[0],
                             p.grad_inputs.size() > 1 ? p.grad_inputs[1] : nullptr, s);
    RecheckBackward(*this, p);
  }

  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    T s = Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) {
      const T r = y[k] - in[0][k];
      s += r * r;
    }
    const T phi = PenaltyOfSquare<T>(kind_, s, alpha_);
    return in.has(1) ? in[1][0] * phi : phi;
  }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override { return MakeCheckCases(seed, 3); }
};
DDN_REGISTER_NODE(RobustVectorPool);

}  // namespace
}  // namespace ddn::pooling
