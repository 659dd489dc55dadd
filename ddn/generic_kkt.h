// ddn/generic_kkt.h: the KKT factorisation of the generic engine (engine internal; generic_solver.h is the
// interface). Exposed in a header of its own so that it is unit-tested on its own (generic_solver_test.cc).
//
// A Kkt object factorises the symmetric saddle-point matrices of the generic solver,
//
//   K = [H + τ·S⁻²,  A_Wᵀ;  A_W,  −D]   ((m + w) × (m + w)),
//
// H the m × m Hessian (its lower triangle given as entries, duplicates summed), A_W the rows W of the constraint
// Jacobian A (w rows), D ≥ 0 a diagonal (1/ρ in the augmented Lagrangian, empty = 0 in Newton–KKT) and τ ≥ 0 an
// inertia correction on the equilibrated diagonal. It reports K's inertia (positive, negative and zero
// eigenvalues, relative to options.rcond), solves K z = b (refined), and gives minimum-norm solutions of a
// singular K. Three factorisations, chosen per call: a dense eigendecomposition for tiny systems (≤ kTinySystem
// rows), the Schur complement on the constraints when H is diagonal and w ≤ 64, and otherwise a sparse LDLᵀ
// (Eigen's SimplicialLDLT, AMD ordering) whose symbolic analysis is reused while the sparsity pattern stays the
// same. One object may be used for a sequence of systems of any sizes and patterns (the solver keeps one per
// Newton loop while the working set changes): every call to Factorize stands on its own.
//
// Use: Kkt kkt; if (kkt.Factorize(m, H, A, W, D, tau, options)) { kkt.inertia(); z = kkt.Solve(b); }
#pragma once

#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <Eigen/SparseCholesky>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/generic_solver.h"

namespace ddn {
namespace internal {

using Entries = std::vector<SparseEntry>;
using SpMat = Eigen::SparseMatrix<double>;
using SpRow = Eigen::SparseMatrix<double, Eigen::RowMajor>;
constexpr double kEps = std::numeric_limits<double>::epsilon();
// Numerical regularisation of the equilibrated KKT matrix: it keeps an LDLᵀ without pivoting stable (pivot growth
// at most ~1/kRegularisation); iterative refinement against the exact matrix removes it.
constexpr double kRegularisation = 1e-8;
// Systems up to this size are factorised by a dense eigendecomposition (exact inertia and minimum-norm).
constexpr int kTinySystem = 8;

inline double MaxAbs(const Eigen::VectorXd& v) {
  return v.size() ? v.cwiseAbs().maxCoeff() : 0.0;
}

// DDN_SOLVER_TRACE=1 prints the iterations on stderr (for debugging the engine, never in normal use).
inline bool Tracing() {
  static const bool on = [] {
    const char* e = std::getenv("DDN_SOLVER_TRACE");
    return e && std::string(e) == "1";
  }();
  return on;
}

// K = [H + τ·S⁻²,  A_Wᵀ;  A_W,  −D] with H symmetric (lower entries), A_W the rows W of A and D ≥ 0 diagonal
// (1/ρ in the augmented Lagrangian, 0 in Newton–KKT). K is equilibrated symmetrically, K̂ = S K S (Ruiz: every
// row's largest entry ≈ 1), so that pivots, eigenvalues, τ and the regularisation are relative and do not change
// when f or a constraint is rescaled. The factorisation is of K̂ + diag(ε, −ε) (ε = kRegularisation, which keeps a
// quasi-definite matrix factorisable without pivoting); iterative refinement against K̂ removes it.
class Kkt {
 public:
  using MatrixXd = Eigen::MatrixXd;
  using VectorXd = Eigen::VectorXd;

  struct Inertia {
    int positive = 0, negative = 0, zero = 0;
  };

  // Assembles and factorises. Returns false if the sparse factorisation broke down and no dense fallback fits.
  bool Factorize(int m, const Entries& H, const SpRow& A, const std::vector<int>& W, const VectorXd& D, double tau,
                 const GenericSolverOptions& o) {
    m_ = m;
    w_ = static_cast<int>(W.size());
    n_ = m_ + w_;
    rcond_ = o.rcond;
    dense_limit_ = o.dense_limit;
    std::vector<Eigen::Triplet<double>>& t = triplets_;
    t.clear();
    t.reserve(H.size() + n_ + 4 * w_);
    for (const auto& e : H) {
      if (e.row >= e.col) {
        t.emplace_back(e.row, e.col, e.value);
      } else {
        t.emplace_back(e.col, e.row, e.value);
      }
    }
    for (int j = 0; j < w_; ++j) {
      for (SpRow::InnerIterator it(A, W[j]); it; ++it) t.emplace_back(m_ + j, it.col(), it.value());
      t.emplace_back(m_ + j, m_ + j, D.size() ? -D[j] : 0.0);
    }
    for (int k = 0; k < m_; ++k) t.emplace_back(k, k, 0.0);  // keep the diagonal in the pattern
    K_.resize(n_, n_);
    K_.setFromTriplets(t.begin(), t.end());
    K_.makeCompressed();
    Equilibrate();
    // τ and the numerical regularisation on the equilibrated diagonal (the first entry of each column of the
    // lower triangle: every diagonal entry is in the pattern).
    const bool same = SamePattern(K_);
    if (!same) {
      Kreg_ = K_;
      // Kreg_ now has a pattern the sparse LDLᵀ was not analysed for. Until it is (below), no later call may
      // take the copy-values path: a Schur-complement or dense factorisation returns before the analysis, and a
      // later K_ with the old pattern would otherwise have its values copied into a Kreg_ of another pattern
      // and size (found by the sanitizer build: an out-of-range index in the LDLᵀ's permutation).
      analysed_ = false;
    } else {
      // (The saved pattern is that of Kreg_: a stale one would copy values into a matrix of another size.)
      DDN_CHECK(Kreg_.rows() == K_.rows() && Kreg_.nonZeros() == K_.nonZeros(),
                "the KKT factorisation's saved pattern does not match its regularised matrix");
      std::copy(K_.valuePtr(), K_.valuePtr() + K_.nonZeros(), Kreg_.valuePtr());
    }
    for (int k = 0; k < n_; ++k) {
      const int first = K_.outerIndexPtr()[k];
      const double shift = k < m_ ? tau : 0.0;
      K_.valuePtr()[first] += shift;
      Kreg_.valuePtr()[first] += shift + (k < m_ ? kRegularisation : -kRegularisation);
    }
    dense_ = n_ <= kTinySystem;
    have_cod_ = false;
    schur_ = !dense_ && TrySchur();
    if (schur_) return true;
    if (!dense_) {
      if (!same || !analysed_) {
        ldlt_.analyzePattern(Kreg_);
        SavePattern();
      }
      ldlt_.factorize(Kreg_);
      if (ldlt_.info() != Eigen::Success) {
        if (n_ > dense_limit_) return false;
        dense_ = true;
      }
    }
    if (dense_) {
      const MatrixXd full = FullDense(K_);
      if (Tracing()) {
        std::ostringstream os;
        os << "K^ =\n" << full << "\ns = " << s_.transpose();
        std::fprintf(stderr, "%s\n", os.str().c_str());
      }
      eig_.compute(full);
      const VectorXd& ev = eig_.eigenvalues();
      const double top = MaxAbs(ev);
      inertia_ = Inertia();
      for (int k = 0; k < n_; ++k) {
        if (top == 0 || std::abs(ev[k]) <= rcond_ * top) {
          ++inertia_.zero;
        } else if (ev[k] > 0) {
          ++inertia_.positive;
        } else {
          ++inertia_.negative;
        }
      }
    } else {
      const VectorXd d = ldlt_.vectorD();
      const double top = MaxAbs(d);
      inertia_ = Inertia();
      // A pivot at the level of the regularisation is a zero eigenvalue for all we know (Singular() confirms).
      const double zero = std::max(rcond_ * top, 100 * kRegularisation);
      for (int k = 0; k < n_; ++k) {
        if (top == 0 || std::abs(d[k]) <= zero) {
          ++inertia_.zero;
        } else if (d[k] > 0) {
          ++inertia_.positive;
        } else {
          ++inertia_.negative;
        }
      }
    }
    return true;
  }

  const Inertia& inertia() const { return inertia_; }
  int size() const { return n_; }
  // Which factorisation the last Factorize used: dense eigendecomposition, Schur complement, or else sparse LDLᵀ.
  bool dense() const { return dense_; }
  bool schur() const { return schur_; }

  // True if the pivots say K may be singular and a dense check (if it fits) confirms it.
  bool Singular() {
    if (inertia_.zero == 0) return false;
    if (dense_) return true;
    if (n_ <= dense_limit_) {
      // Pivots of an LDLᵀ without pivoting can be tiny for a regular matrix: confirm on the eigenvalues.
      ConfirmDense();
      return inertia_.zero > 0;
    }
    // Large: a regular K̂ lets iterative refinement converge to a small residual with a bounded solution.
    VectorXd b(n_);
    for (int k = 0; k < n_; ++k) b[k] = 1.0 + 0.5 * std::sin(1.0 + 7.0 * k);
    const VectorXd x = Refined(b);
    const double res = (b - K_.selfadjointView<Eigen::Lower>() * x).norm() / b.norm();
    const bool singular = !(res < 1e-10) || !(x.norm() <= b.norm() / rcond_);
    if (!singular) inertia_.zero = 0;  // (the signs of the suspect pivots stand as they are)
    return singular;
  }

  // z = K⁻¹ b (original units), refined. For a singular K: the dense minimum-norm least-squares solution when
  // n ≤ dense_limit, else the regularised one.
  VectorXd Solve(const VectorXd& b, bool refine = true) const {
    const VectorXd bs = s_.cwiseProduct(b);
    return s_.cwiseProduct(refine ? Refined(bs) : Raw(bs));
  }

  // K̂⁻¹ bs by the regularised factorisation and iterative refinement against K̂ (equilibrated units).
  VectorXd Refined(const VectorXd& bs) const {
    VectorXd z = Raw(bs);
    if (!dense_) {
      VectorXd r = bs - K_.selfadjointView<Eigen::Lower>() * z;
      double rn = r.norm();
      const double floor = 4 * kEps * bs.norm();
      for (int it = 0; it < 10 && rn > floor; ++it) {
        const VectorXd dz = Raw(r);
        const VectorXd z2 = z + dz;
        VectorXd r2 = bs - K_.selfadjointView<Eigen::Lower>() * z2;
        const double rn2 = r2.norm();
        // Accept a clear improvement only: near a singular K the correction can be a large null-space vector.
        if (!(rn2 < 0.5 * rn) || !(dz.norm() <= z.norm())) break;
        z = z2;
        r.swap(r2);
        rn = rn2;
      }
    }
    return z;
  }

  // The minimum-norm least-squares solution of the (singular) K z = b, in equilibrated coordinates.
  VectorXd MinNormSolve(const VectorXd& b) {
    const VectorXd bs = s_.cwiseProduct(b);
    if (dense_) return s_.cwiseProduct(Raw(bs));
    if (n_ <= dense_limit_) {
      if (!have_cod_) {
        cod_.setThreshold(rcond_);
        cod_.compute(FullDense(K_));
        have_cod_ = true;
      }
      return s_.cwiseProduct(cod_.solve(bs));
    }
    // Large: z = R K̂ R b with R the regularised inverse (a least-squares solution that damps the null space).
    const VectorXd r1 = Raw(bs);
    const VectorXd k1 = K_.selfadjointView<Eigen::Lower>() * r1;
    return s_.cwiseProduct(Raw(k1));
  }

  // Solve, or MinNormSolve when K is singular.
  VectorXd SolveAny(const VectorXd& b) {
    if (inertia_.zero > 0 && Singular()) return MinNormSolve(b);
    return Solve(b);
  }

 private:
  static MatrixXd FullDense(const SpMat& L) {
    MatrixXd D = MatrixXd::Zero(L.rows(), L.cols());
    for (int j = 0; j < L.outerSize(); ++j) {
      for (SpMat::InnerIterator it(L, j); it; ++it) {
        D(it.row(), j) += it.value();
        if (it.row() != j) D(j, it.row()) += it.value();
      }
    }
    return D;
  }

  // Symmetric scaling K̂ = S K S that makes pivots, eigenvalues, τ and the regularisation relative, whatever the
  // units of f and of each constraint. Variable j is scaled by 1/√d_j with d_j = max_k |H_jk| + γ Σ_i A_ij², the
  // row size of the Hessian of the augmented Lagrangian f + (γ/2)‖c_W‖² with γ = max|H| / max_i ‖A_i‖² (so the
  // two parts weigh alike): a variable whose curvature is tiny but which a constraint fixes is scaled by the
  // constraint, one free of constraints by its curvature. Each constraint row is then scaled to a largest entry
  // of 1. (Plain Ruiz equilibration of K would balance a uniformly tiny H against a large A by making H's block
  // vanish; scaling by H alone would blow up the right-hand side of a variable that only a constraint fixes.)
  void Equilibrate() {
    s_.setOnes(n_);
    VectorXd hrow = VectorXd::Zero(m_), asq = VectorXd::Zero(m_), arow = VectorXd::Zero(n_);
    for (int j = 0; j < m_; ++j) {
      for (SpMat::InnerIterator it(K_, j); it; ++it) {
        const double v = std::abs(it.value());
        if (it.row() < m_) {
          hrow[it.row()] = std::max(hrow[it.row()], v);
          hrow[j] = std::max(hrow[j], v);
        } else {
          asq[j] += v * v;
          arow[it.row()] += v * v;
        }
      }
    }
    const double hmax = MaxAbs(hrow), amax = w_ > 0 ? MaxAbs(arow.tail(w_)) : 0.0;
    const double gamma = hmax > 0 && amax > 0 ? hmax / amax : 1.0;
    for (int j = 0; j < m_; ++j) {
      const double d = hrow[j] + gamma * asq[j];
      s_[j] = d > 0 && std::isfinite(d) ? 1.0 / std::sqrt(d) : 1.0;
    }
    VectorXd rowmax = VectorXd::Zero(n_);
    for (int j = 0; j < m_; ++j) {
      for (SpMat::InnerIterator it(K_, j); it; ++it) {
        if (it.row() >= m_) rowmax[it.row()] = std::max(rowmax[it.row()], std::abs(it.value()) * s_[j]);
      }
    }
    for (int i = m_; i < n_; ++i) s_[i] = rowmax[i] > 0 && std::isfinite(rowmax[i]) ? 1.0 / rowmax[i] : 1.0;
    for (int j = 0; j < n_; ++j)
      for (SpMat::InnerIterator it(K_, j); it; ++it) it.valueRef() *= s_[it.row()] * s_[j];
  }

  void ConfirmDense() {
    const MatrixXd full = FullDense(K_);
    Eigen::SelfAdjointEigenSolver<MatrixXd> e(full, Eigen::EigenvaluesOnly);
    const VectorXd& ev = e.eigenvalues();
    const double top = MaxAbs(ev);
    Inertia in;
    for (int k = 0; k < n_; ++k) {
      if (top == 0 || std::abs(ev[k]) <= rcond_ * top) {
        ++in.zero;
      } else if (ev[k] > 0) {
        ++in.positive;
      } else {
        ++in.negative;
      }
    }
    inertia_ = in;
  }

  // Solve with the factorisation of the equilibrated matrix (equilibrated units).
  // A diagonal Hessian block D with few constraint rows (a separable objective and separable curvature, as in
  // projections): K̂ = [D Âᵀ; Â −E] is solved through the Schur complement S = Â D⁻¹ Âᵀ + E (w × w, dense), in
  // O(nnz(Â)·w + w³) instead of a sparse factorisation; inertia(K̂) = inertia(D) + inertia(−S) (Haynsworth).
  // Not used when a diagonal entry is at the level of the regularisation (then the general path decides).
  bool TrySchur() {
    if (w_ > 64) return false;
    diag_.resize(m_);
    for (int j = 0; j < m_; ++j) {
      const int first = K_.outerIndexPtr()[j], last = K_.outerIndexPtr()[j + 1];
      diag_[j] = K_.valuePtr()[first];
      for (int k = first + 1; k < last; ++k)
        if (K_.innerIndexPtr()[k] < m_) return false;  // an off-diagonal Hessian entry
    }
    const double top = MaxAbs(diag_);
    if (!(top > 0)) return false;
    for (int j = 0; j < m_; ++j)
      if (!(std::abs(diag_[j]) > std::max(1e3 * kRegularisation, rcond_) * top)) return false;
    // Â (w × m) dense rows and E = −(constraint block diagonal).
    Ahat_.setZero(w_, m_);
    E_.resize(w_);
    for (int j = 0; j < m_; ++j) {
      for (SpMat::InnerIterator it(K_, j); it; ++it)
        if (it.row() >= m_) Ahat_(it.row() - m_, j) = it.value();
    }
    for (int i = 0; i < w_; ++i) E_[i] = -K_.valuePtr()[K_.outerIndexPtr()[m_ + i]];
    const MatrixXd AD = Ahat_ * diag_.cwiseInverse().asDiagonal();
    MatrixXd S = AD * Ahat_.transpose();
    S.diagonal() += E_;
    inertia_ = Inertia();
    for (int j = 0; j < m_; ++j) (diag_[j] > 0 ? inertia_.positive : inertia_.negative)++;
    if (w_ > 0) {
      schur_eig_.compute(S);
      const VectorXd& ev = schur_eig_.eigenvalues();
      const double stop = std::max(MaxAbs(ev), 1.0);
      for (int i = 0; i < w_; ++i) {
        if (std::abs(ev[i]) <= rcond_ * stop) {
          ++inertia_.zero;
        } else if (ev[i] > 0) {
          ++inertia_.negative;  // −S
        } else {
          ++inertia_.positive;
        }
      }
      if (inertia_.zero > 0) return false;  // rank-deficient constraints: the general path (and its checks)
    }
    return true;
  }

  VectorXd SchurSolve(const VectorXd& bs) const {
    const VectorXd b1 = bs.head(m_);
    const VectorXd u0 = b1.cwiseQuotient(diag_);
    if (w_ == 0) return u0;
    const VectorXd rhs = Ahat_ * u0 - bs.tail(w_);
    const VectorXd c = schur_eig_.eigenvectors().transpose() * rhs;
    const VectorXd v = schur_eig_.eigenvectors() * c.cwiseQuotient(schur_eig_.eigenvalues());
    VectorXd z(n_);
    z.head(m_) = (b1 - Ahat_.transpose() * v).cwiseQuotient(diag_);
    z.tail(w_) = v;
    return z;
  }

  VectorXd Raw(const VectorXd& bs) const {
    if (schur_) return SchurSolve(bs);
    if (dense_) {
      const VectorXd& ev = eig_.eigenvalues();
      const double top = MaxAbs(ev);
      VectorXd c = eig_.eigenvectors().transpose() * bs;
      for (int k = 0; k < n_; ++k) c[k] = (top == 0 || std::abs(ev[k]) <= rcond_ * top) ? 0.0 : c[k] / ev[k];
      return eig_.eigenvectors() * c;
    }
    return ldlt_.solve(bs);
  }

  bool SamePattern(const SpMat& M) const {
    if (!analysed_ || pattern_outer_.size() != static_cast<size_t>(M.outerSize() + 1)) return false;
    if (!std::equal(pattern_outer_.begin(), pattern_outer_.end(), M.outerIndexPtr())) return false;
    const int nnz = M.outerIndexPtr()[M.outerSize()];
    return static_cast<int>(pattern_inner_.size()) == nnz &&
           std::equal(pattern_inner_.begin(), pattern_inner_.end(), M.innerIndexPtr());
  }
  void SavePattern() {
    pattern_outer_.assign(Kreg_.outerIndexPtr(), Kreg_.outerIndexPtr() + Kreg_.outerSize() + 1);
    pattern_inner_.assign(Kreg_.innerIndexPtr(), Kreg_.innerIndexPtr() + Kreg_.outerIndexPtr()[Kreg_.outerSize()]);
    analysed_ = true;
  }

  int m_ = 0, w_ = 0, n_ = 0, dense_limit_ = 0;
  double rcond_ = 1e-10;
  SpMat K_, Kreg_;
  VectorXd s_;
  bool dense_ = false, analysed_ = false, have_cod_ = false;
  std::vector<int> pattern_outer_, pattern_inner_;
  std::vector<Eigen::Triplet<double>> triplets_;
  bool schur_ = false;
  VectorXd diag_, E_;
  MatrixXd Ahat_;
  Eigen::SelfAdjointEigenSolver<MatrixXd> schur_eig_;
  Eigen::SimplicialLDLT<SpMat, Eigen::Lower, Eigen::AMDOrdering<int>> ldlt_;
  Eigen::SelfAdjointEigenSolver<MatrixXd> eig_;
  Eigen::CompleteOrthogonalDecomposition<MatrixXd> cod_;
  Inertia inertia_;
};

}  // namespace internal
}  // namespace ddn
