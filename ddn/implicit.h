// ddn/implicit.h: the implicit function theorem as a vector–Jacobian product.
//
// At a solution y of  min_y f(x, y)  s.t.  h(x, y) = 0  (p constraints, including the active
// inequalities, see below), with Lagrangian  L = f − νᵀh  and ν solving  Aᵀν = (D_y f)ᵀ, the blocks
//
//   H = D²_yy f − Σ_i ν_i D²_yy h_i   (m×m)        A = D_y h   (p×m)
//   B = D²_xy f − Σ_i ν_i D²_xy h_i   (m×n)        C = D_x h   (p×n)
//
// give the derivative of y(x) (Gould et al., TPAMI 2022, Prop. 4.5):
//
//   Dy = H⁻¹Aᵀ(AH⁻¹Aᵀ)⁻¹(AH⁻¹B − C) − H⁻¹B          (Dy = −H⁻¹B when p = 0, Prop. 4.3).
//
// Backward passes never form Dy. For an upstream gradient v = (dL/dy)ᵀ they solve
//
//   unconstrained:  H w = v,                               dx = −Bᵀ w
//   constrained:    [H Aᵀ; A 0] [w; μ] = [v; 0],           dx = −(Bᵀ w + Cᵀ μ)
//
// (expand the Schur complement of the KKT matrix to recover the line above). One factorisation per
// problem, cost O((m + p)³ + (m + p)·n).
//
// Inequalities g(x, y) ≤ 0 enter as rows of h when active (Prop. 4.6); inactive ones are dropped.
// Non-regular points: when H (unconstrained) or the KKT matrix is singular or ill-conditioned
// (reciprocal condition below `rcond`), the solve returns the minimum-norm least-squares solution
// (complete orthogonal decomposition) and sets kNonRegular on the status. Never a NaN.
#pragma once

#include <Eigen/Core>

#include "ddn/status.h"

namespace ddn {

struct ImplicitSystem {
  Eigen::MatrixXd H;  // m×m, symmetric
  Eigen::MatrixXd B;  // m×n
  Eigen::MatrixXd A;  // p×m (p = 0: unconstrained)
  Eigen::MatrixXd C;  // p×n
};

struct ImplicitOptions {
  // Reciprocal condition number below which H or the KKT matrix counts as singular.
  double rcond = 1e-10;
  // Use the pseudo-inverse only: skip the fast Cholesky attempt (tests use this to compare).
  bool force_least_squares = false;
};

// dx = vᵀ Dy (a row vector stored as a column of length n). Sets kNonRegular on `status` when the
// minimum-norm solution was used. `w_out`, if given, receives w (length m).
Eigen::VectorXd ImplicitVjp(const ImplicitSystem& system, const Eigen::VectorXd& v, ProblemStatus* status,
                            const ImplicitOptions& options = {}, Eigen::VectorXd* w_out = nullptr);

// The full Jacobian Dy (m×n), for tests and small problems only.
Eigen::MatrixXd ImplicitJacobian(const ImplicitSystem& system, ProblemStatus* status,
                                 const ImplicitOptions& options = {});

// Solves the (possibly singular) symmetric system K z = r: Cholesky when K is positive definite and
// well conditioned, else the minimum-norm least-squares solution. Returns false if it fell back.
bool SolveSymmetric(const Eigen::MatrixXd& K, const Eigen::MatrixXd& r, Eigen::MatrixXd* z, double rcond,
                    bool allow_cholesky = true);

}  // namespace ddn
