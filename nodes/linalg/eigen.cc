// The `eigen` node: the eigenvectors of the K largest eigenvalues of a symmetric matrix.
//
// X (M, M) is symmetrised, S = ½(X + Xᵀ), and decomposed S = Y Λ Yᵀ with λ_1 ≤ … ≤ λ_M (Eigen's
// SelfAdjointEigenSolver: Householder tridiagonalisation and implicit symmetric QR). The outputs are the last
// K columns, in ascending order of eigenvalue as in the reference library's EigenDecompositionFcn:
// vectors (M, K) with column k the eigenvector of λ_{M−K+k}, and values (K). Parameter top_k = K (0, the
// default: K = M).
//
// Declaratively (Gould et al., TPAMI 2022, §4.4): each y_k is a stationary point of f(S, y) = −½ yᵀSy subject
// to yᵀy = 1, the largest one its minimiser. An eigenvector is defined up to sign; the node returns the one whose
// entry of largest magnitude is positive. Ties (two entries of equal magnitude, up to the last bit) go to the
// first such entry, the lowest index; near a tie the sign, like any sign rule, is discontinuous in X.
//
// Backward. For dL/dY_K = V (M, K) and dL/dλ = g (K), with the full decomposition of the forward pass
// (kept by factor_cache.h),
//   G = Y (F ∘ YᵀV) Y_Kᵀ + Y_K diag(g) Y_Kᵀ,   F_jk = 1/(λ_k − λ_j) for |λ_k − λ_j| > τ, else 0,
//   dL/dX = ½(G + Gᵀ)
// (the first-order perturbation of a simple eigenpair, dy_k = Σ_{j≠k} y_j y_jᵀ dS y_k /(λ_k − λ_j), dλ_k = y_kᵀ dS y_k;
// the ½(G + Gᵀ) is the derivative of the symmetrisation). τ = 1e-9·max|λ| (the reference uses 1e-9 absolute).
//
// Repeated eigenvalues. When an eigenvalue of the returned set equals another one (|λ_k − λ_j| ≤ τ), inside the
// set or just outside it (at its edge), the eigenvectors of that eigenvalue are not unique: the status says
// non_unique, the returned vectors are one orthonormal basis of the eigenspace, and the gradient is the
// reference library's: the couplings between equal eigenvalues (F_jk above) are dropped. That gradient is exact
// for any loss that depends on the eigenspace only (on the projector Σ y_k y_kᵀ over a whole cluster inside the
// set, or on the sum of its eigenvalues): the dropped terms cancel in ½(G + Gᵀ) for such losses. It is never NaN.
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/linalg/factor_cache.h"

namespace ddn::linalg {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMatrix>;
using RowMap = Eigen::Map<RowMatrix>;

constexpr double kEqualRelative = 1e-9;

class EigenNode : public Node {
 public:
  // The registry's spec names the output axis K; an instance's spec fixes it to top_k (or M).
  static NodeSpec Spec() { return MakeSpec("K"); }
  explicit EigenNode(const Params& p) : Node(MakeSpec(TopK(p) > 0 ? std::to_string(TopK(p)) : "M")), top_k_(TopK(p)) {}

  void Validate(const ProblemData& p) const override {
    const int64_t m = p.Dim("M");
    if (top_k_ > m) {
      throw InvalidInput("node 'eigen': parameter 'top_k' = " + std::to_string(top_k_) +
                         " exceeds the matrix size M = " + std::to_string(m));
    }
  }
  void Solve(const ProblemData& p, ProblemStatus* s) const override;
  void Backward(const ProblemData& p, ProblemStatus* s) const override;
  bool BackwardAssigns() const override { return true; }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  static NodeSpec MakeSpec(const std::string& k) {
    return {
        "eigen",
        "eigenvectors and eigenvalues of the K largest eigenvalues of ½(X + Xᵀ), in ascending order",
        {{"top_k", ParamType::kInt, "0", "K, the number of largest eigenpairs returned, 1 ≤ K ≤ M; 0: all (K = M)"}},
        {{"X", {"M", "M"}, "square matrices, symmetrised as ½(X + Xᵀ)"}},
        {{"vectors", {"M", k}, "unit eigenvectors as columns, ascending eigenvalue; largest-magnitude entry > 0"},
         {"values", {k}, "the eigenvalues, ascending"}}};
  }
  static int TopK(const Params& p) { return p.RequireIntInRange("top_k", 0, 1 << 20); }
  int64_t K(const ProblemData& p) const { return top_k_ > 0 ? top_k_ : p.Dim("M"); }
  // The full decomposition of ½(X + Xᵀ), with the sign rule applied to the returned columns: Y (M×M, column
  // major) then λ (M) in *out.
  void Decompose(const ProblemData& p, std::vector<double>* out) const;
  uint64_t Key(const ProblemData& p) const {
    Fingerprint f;
    f.Add(p.inputs[0], p.InputSize(0)).Add(p.outputs[0], p.OutputSize(0)).Add(p.outputs[1], p.OutputSize(1));
    return f.value();
  }
  // Flags repeated eigenvalues in or at the edge of the returned set; returns τ.
  double FlagRepeated(const double* lambda, int64_t m, int64_t k, ProblemStatus* s) const;

  int top_k_;
  FactorCache cache_;
};

void EigenNode::Decompose(const ProblemData& p, std::vector<double>* out) const {
  const int64_t m = p.Dim("M"), k = K(p);
  const ConstRowMap X(p.inputs[0], m, m);
  thread_local Eigen::MatrixXd S;
  S = 0.5 * (X + X.transpose());
  thread_local Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver;
  solver.compute(S, Eigen::ComputeEigenvectors);
  if (solver.info() != Eigen::Success) {
    throw NumericalFailure("node 'eigen': the symmetric eigensolver did not converge");
  }
  out->resize(m * m + m);
  Eigen::Map<Eigen::MatrixXd> Y(out->data(), m, m);
  Y = solver.eigenvectors();
  Eigen::Map<Eigen::VectorXd>(out->data() + m * m, m) = solver.eigenvalues();
  for (int64_t j = m - k; j < m; ++j) {
    int64_t arg = 0;
    double best = -1;
    for (int64_t i = 0; i < m; ++i) {
      const double a = std::abs(Y(i, j));
      if (a > best) {
        best = a;
        arg = i;
      }
    }
    if (Y(arg, j) < 0) Y.col(j) = -Y.col(j);
  }
}

double EigenNode::FlagRepeated(const double* lambda, int64_t m, int64_t k, ProblemStatus* s) const {
  const double scale = std::max(std::abs(lambda[0]), std::abs(lambda[m - 1]));
  const double tau = kEqualRelative * scale;
  // Sorted eigenvalues: a repeat touching the set is a pair (j, j + 1) with j + 1 ≥ m − k.
  for (int64_t j = std::max<int64_t>(m - k - 1, 0); j + 1 < m; ++j) {
    if (lambda[j + 1] - lambda[j] <= tau) {
      s->Set(kNonUnique, "repeated eigenvalue " + FormatDouble(lambda[j]) +
                             (j + 1 == m - k ? " at the edge of the returned set" : " in the returned set") +
                             ": one basis of its eigenspace; couplings between equal eigenvalues are dropped from "
                             "the gradient");
      break;
    }
  }
  return tau;
}

void EigenNode::Solve(const ProblemData& p, ProblemStatus* s) const {
  const int64_t m = p.Dim("M"), k = K(p);
  thread_local std::vector<double> decomposition;
  Decompose(p, &decomposition);
  const Eigen::Map<const Eigen::MatrixXd> Y(decomposition.data(), m, m);
  const double* lambda = decomposition.data() + m * m;
  RowMap vectors(p.outputs[0], m, k);
  vectors = Y.rightCols(k);
  std::copy(lambda + m - k, lambda + m, p.outputs[1]);
  FlagRepeated(lambda, m, k, s);
  // Residual max_k ‖S y_k − λ_k y_k‖∞ / max|S|.
  const ConstRowMap X(p.inputs[0], m, m);
  const Eigen::MatrixXd S = 0.5 * (X + X.transpose());
  Eigen::MatrixXd R = S * Y.rightCols(k);
  for (int64_t j = 0; j < k; ++j) R.col(j) -= lambda[m - k + j] * Y.col(m - k + j);
  const double scale = S.cwiseAbs().maxCoeff();
  s->residual = scale > 0 ? R.cwiseAbs().maxCoeff() / scale : 0.0;
  s->iterations = 0;
  cache_.Store(p.index, Key(p), decomposition.data(), static_cast<int64_t>(decomposition.size()));
}

void EigenNode::Backward(const ProblemData& p, ProblemStatus* s) const {
  const int64_t m = p.Dim("M"), k = K(p);
  thread_local std::vector<double> decomposition;
  if (!cache_.Lookup(p.index, Key(p), &decomposition)) Decompose(p, &decomposition);
  const Eigen::Map<const Eigen::MatrixXd> Y(decomposition.data(), m, m);
  const double* lambda = decomposition.data() + m * m;
  const double tau = FlagRepeated(lambda, m, k, s);
  const ConstRowMap V(p.grad_outputs[0], m, k);
  const double* g = p.grad_outputs[1];
  // W = F ∘ (Yᵀ V) + E diag(g), E placing g in the rows of the returned set.
  Eigen::MatrixXd W = Y.transpose() * V;
  for (int64_t c = 0; c < k; ++c) {
    const double lk = lambda[m - k + c];
    for (int64_t j = 0; j < m; ++j) {
      const double gap = lk - lambda[j];
      W(j, c) = std::abs(gap) > tau ? W(j, c) / gap : 0.0;
    }
    W(m - k + c, c) = g[c];
  }
  const Eigen::MatrixXd G = (Y * W) * Y.rightCols(k).transpose();
  RowMap dX(p.grad_inputs[0], m, m);
  dX = 0.5 * (G + G.transpose());
}

std::vector<CheckCase> EigenNode::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  const int64_t m = std::max<int64_t>(5, top_k_);
  // A batch of matrices Q diag(λ) Qᵀ (+ an antisymmetric part, which the symmetrisation removes) with Q a random
  // orthogonal matrix.
  auto with_spectrum = [&](const std::vector<std::vector<double>>& spectra, double antisymmetric) {
    const int64_t b = static_cast<int64_t>(spectra.size());
    Tensor X({b, m, m});
    for (int64_t e = 0; e < b; ++e) {
      Eigen::MatrixXd Z(m, m);
      for (int64_t i = 0; i < m * m; ++i) Z.data()[i] = rng.Normal();
      const Eigen::MatrixXd Q = Eigen::HouseholderQR<Eigen::MatrixXd>(Z).householderQ();
      Eigen::VectorXd lambda(m);
      for (int64_t i = 0; i < m; ++i) lambda[i] = spectra[e][i];
      Eigen::MatrixXd S = Q * lambda.asDiagonal() * Q.transpose();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = i + 1; j < m; ++j) {
          const double a = antisymmetric * rng.Normal();
          S(i, j) += a;
          S(j, i) -= a;
        }
      RowMap(X.problem(e), m, m) = S;
    }
    return X;
  };
  std::vector<CheckCase> cases;
  Tensor random({3, m, m});
  for (auto& v : random.values()) v = rng.Normal();
  cases.push_back({"random", {{"X", random}}});
  // Eigenvalues of both signs and a zero one (a singular matrix), well separated.
  std::vector<double> mixed;
  for (int64_t i = 0; i < m; ++i) mixed.push_back(static_cast<double>(i) - 2.0);
  cases.push_back({"singular_matrix", {{"X", with_spectrum({mixed}, 0.3)}}});
  // A repeated eigenvalue below the returned set (K < M − 1 only; with K ≥ M − 1 it would touch the set):
  // the returned eigenvectors are unique and differentiable.
  const int64_t k = top_k_ > 0 ? top_k_ : m;
  if (k < m - 1) {
    std::vector<double> repeated;
    for (int64_t i = 0; i < m; ++i) repeated.push_back(i < 2 ? 1.0 : 1.0 + static_cast<double>(i));
    cases.push_back({"repeated_outside_set", {{"X", with_spectrum({repeated}, 0.0)}}});
  }
  // Close eigenvalues (gap 0.05 of a spread of 4): large but finite derivatives.
  std::vector<double> close;
  for (int64_t i = 0; i < m; ++i)
    close.push_back(i == m - 1 ? static_cast<double>(m - 2) + 0.05 : static_cast<double>(i));
  cases.push_back({"close_eigenvalues", {{"X", with_spectrum({close}, 0.1)}}});
  return cases;
}

}  // namespace
DDN_REGISTER_NODE(EigenNode);
}  // namespace ddn::linalg
