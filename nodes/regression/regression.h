// nodes/regression/regression.h: linear models fitted by minimising a regularised mean loss — ridge, logistic
// (binary and multinomial) and robust (pseudo-Huber) regression — with their Newton solves and the blocks of
// their implicit derivatives. The nodes ridge_regression, logistic_regression, multinomial_logistic_regression
// and robust_regression (regression_nodes.cc) and the tabular bi-level problems (bilevel/tabular.h) are built on these
// functions.
//
// The data are a design [Z 1] (n × (p+1), row-major in the nodes, an Eigen matrix here: the intercept column
// last) with rows z̃_i, targets y_i, and the unknowns u = (w, b) (w ∈ Rᵖ, the intercept b not penalised):
//
//   ridge:     f(u, λ) = 1/(2n) Σ_i (z̃_iᵀu − y_i)² + ½ Σ_j λ_j w_j²          (one λ: λ_j = λ for every j)
//              H = Z̃ᵀZ̃/n + diag(λ, 0),   ∂∇_u f/∂λ_j = w_j e_j
//   logistic:  binary, y_i ∈ [0, 1] (class labels 0/1, or soft labels):
//                f = 1/n Σ_i [log(1 + e^{s_i}) − y_i s_i] + ½λ‖w‖²,   s_i = z̃_iᵀu
//              multinomial, K ≥ 2 classes, one (w_k, b_k) per class with b_K = 0 (the softmax is invariant to a
//              common shift of the b_k), u = (w_1, b_1, …, w_K) stacked by class, labels Y (n × K) the class
//              probabilities of each row (one-hot rows Y_ik = [k = y_i] for class labels):
//                f = 1/n Σ_i [log Σ_k e^{s_ik} − Σ_k Y_ik s_ik] + ½λ Σ_k ‖w_k‖²,   s_ik = z̃_iᵀ(w_k, b_k)
//              ∂∇_u f/∂λ = (w, 0) per class
//   robust:    f(u, α) = 1/n Σ_i φ_α(z̃_iᵀu − y_i) + ½μ‖w‖²  with the pseudo-Huber penalty of
//              nodes/pooling/penalties.h, φ_α(r) = α²(√(1 + (r/α)²) − 1) (μ ≥ 0 fixed):
//              H = Z̃ᵀ diag(φ'') Z̃/n + μ diag(1, 0),   ∂∇_u f/∂α = Z̃ᵀ ∂φ'/∂α / n,  ∂φ'/∂α = r³/(α² + r²)^{3/2}
//
// Every model's gradient is ∇_u f = Z̃ᵀ c/n + (penalty) with a per-row coefficient c_i(s_i, y_i) (ridge: the
// residual, logistic: σ(s_i) − y_i, robust: φ'(r_i)), so the implicit derivatives with respect to the data
// share one form (Gould et al., DDN TPAMI 2022, Prop. 4.3, dθ = −Bᵀ H⁻¹ v): with q = H⁻¹ v and t_i = z̃_iᵀq,
//
//   dL/dy_i  = −t_i ∂c_i/∂y_i / n,    dL/dZ_ij = −(q_j c_i + t_i (∂c_i/∂s_i) w_j) / n        (LinearModelVjp).
//
// Inner solves: ridge is one Cholesky solve and one refinement step; the others are Newton's method with a
// backtracking line search (NewtonMinimize), run until a full Newton step is below 1e-10 of the solution's
// scale (quadratic convergence puts the error then at machine precision), or, once the decrease the quadratic
// model predicts is below the rounding of f (large data: f sums 1e6 rows), until full Newton steps stop
// shrinking the gradient.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <string>

#include "ddn/implicit.h"
#include "ddn/status.h"

namespace ddn::regression {

// [X 1] from a row-major n × p array.
Eigen::MatrixXd DesignWithIntercept(const double* X, int64_t n, int64_t p);

// Zᵀ diag(w) Z, in blocks of rows (a scaled copy of one block at a time).
Eigen::MatrixXd WeightedGram(const Eigen::MatrixXd& Z, const Eigen::VectorXd& w);

// Newton's method with a backtracking line search for a smooth strictly convex f (dense Hessian):
// `fn(u, grad, hess)` returns f(u) and fills the gradient and, if `hess` is not null, the Hessian.
// Stops after a step whose max-norm is ≤ 1e-10 · (1 + ‖u‖∞), or when −gᵀH⁻¹g ≤ 64ε|f| (f cannot tell better
// from worse any more) and a full step no longer halves ‖g‖∞ (full steps are taken, without line search, while
// they do); throws NumericalFailure naming `what` after `max_iterations` or a failed line search. Returns the
// iterations taken; status->residual = max(residual, ‖g‖∞ at the answer), status->iterations += iterations.
int NewtonMinimize(const std::function<double(const Eigen::VectorXd&, Eigen::VectorXd*, Eigen::MatrixXd*)>& fn,
                   Eigen::VectorXd* u, const std::string& what, ProblemStatus* status, int max_iterations = 200);

// ---- ridge ------------------------------------------------------------------------------------------------------

// H = gram + diag(λ, 0): `gram` = Z̃ᵀZ̃/n ((p+1) × (p+1)), `lambda` one value or one per feature (p).
Eigen::MatrixXd RidgeHessian(const Eigen::MatrixXd& gram, const Eigen::VectorXd& lambda);
// u = H⁻¹ Z̃ᵀy/n (`zty`), one Cholesky solve and one refinement step. Throws NumericalFailure if H is not
// positive definite. status (if given): iterations += 2, residual = max(residual, ‖Hu − Z̃ᵀy/n‖∞).
void SolveRidge(const Eigen::MatrixXd& gram, const Eigen::VectorXd& zty, const Eigen::VectorXd& lambda,
                Eigen::VectorXd* u, ProblemStatus* status);
// H and B = ∂∇_u f/∂λ ((p+1) × size(λ)) at u.
ImplicitSystem RidgeBlocks(const Eigen::MatrixXd& gram, const Eigen::VectorXd& lambda, const Eigen::VectorXd& u);

// ---- logistic ---------------------------------------------------------------------------------------------------

// The labels Y of the logistic models: one column (binary, y_i ∈ [0, 1]) or K ≥ 2 columns (multinomial, row i the
// class probabilities of row i, one-hot for class labels). The number of unknowns: p+1 (binary) or K(p+1) − 1.
Eigen::Index LogisticUnknowns(Eigen::Index columns, Eigen::Index label_columns);
// The mean log-loss of the rows of Z (intercept column included) at u, without penalty, its gradient and Hessian
// (either may be null): binary 1/n Σ [log(1 + e^{s_i}) − y_i s_i], multinomial 1/n Σ [log Σ_k e^{s_ik} − Σ_k Y_ik
// s_ik].
double LogisticLoss(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, const Eigen::VectorXd& u, Eigen::VectorXd* grad,
                    Eigen::MatrixXd* hess);
// The penalised objective f(u, λ) = LogisticLoss + ½λ Σ_k ‖w_k‖², its gradient and Hessian (either may be null).
double LogisticObjective(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, double lambda, const Eigen::VectorXd& u,
                         Eigen::VectorXd* grad, Eigen::MatrixXd* hess);
// Minimises LogisticObjective by NewtonMinimize from *u (a warm start, or zeros), errors naming `what`.
void SolveLogistic(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, double lambda, Eigen::VectorXd* u,
                   const std::string& what, ProblemStatus* status);
// H and B = ∂∇_u f/∂λ (one column: u with the intercepts zeroed) at u.
ImplicitSystem LogisticBlocks(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, double lambda,
                              const Eigen::VectorXd& u);

// Binary: the mean log-loss 1/n Σ [log(1 + e^{s_i}) − y_i s_i] of the rows of Z (intercept column included) at u,
// its gradient and Hessian (either may be null; no penalty).
double BinaryLogLoss(const Eigen::MatrixXd& Z, const Eigen::Ref<const Eigen::VectorXd>& y, const Eigen::VectorXd& u,
                     Eigen::VectorXd* grad, Eigen::MatrixXd* hess);
// Multinomial (K ≥ 2 columns of class probabilities Y, u of size K(p+1) − 1): the mean log-loss, gradient, Hessian.
double MultinomialLogLoss(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, const Eigen::VectorXd& u,
                          Eigen::VectorXd* grad, Eigen::MatrixXd* hess);
// The (p+1) × K coefficients of a multinomial u (column k = (w_k, b_k); b_K = 0).
Eigen::MatrixXd UnpackClasses(const Eigen::VectorXd& u, Eigen::Index columns, int classes);
// Adds ½λ‖w‖² over every class (the entries of u but the intercepts, every `columns`-th) to f, grad, hess.
void AddWeightPenalty(const Eigen::VectorXd& u, Eigen::Index columns, double lambda, double* f, Eigen::VectorXd* grad,
                      Eigen::MatrixXd* hess);
// B = ∂∇_u f/∂λ of the penalty above: u with the intercepts zeroed.
Eigen::VectorXd WeightPenaltyColumn(const Eigen::VectorXd& u, Eigen::Index columns);

// ---- robust -----------------------------------------------------------------------------------------------------

// f(u, α) of robust regression on the rows of Z (intercept last) with the fixed weight μ on ‖w‖², its gradient
// and Hessian (either may be null).
double RobustObjective(const Eigen::MatrixXd& Z, const Eigen::VectorXd& y, const Eigen::VectorXd& u, double alpha,
                       double mu, Eigen::VectorXd* grad, Eigen::MatrixXd* hess);
// B = ∂∇_u f/∂α = Z̃ᵀ ∂φ'/∂α / n at u.
Eigen::VectorXd RobustAlphaColumn(const Eigen::MatrixXd& Z, const Eigen::VectorXd& y, const Eigen::VectorXd& u,
                                  double alpha);

// ---- the implicit derivatives with respect to the data -------------------------------------------------------------

// With q = H⁻¹ v, the per-row coefficient c_i of the gradient, its derivatives dc_ds_i = ∂c_i/∂s_i and
// dc_dy_i = ∂c_i/∂y_i, the weights w (the first p entries of u): dL/dy (n, may be null) and dL/dX (n × p
// row-major, may be null) by the formula of the header.
void LinearModelVjp(const Eigen::MatrixXd& Z, const Eigen::VectorXd& w, const Eigen::VectorXd& q,
                    const Eigen::VectorXd& c, const Eigen::VectorXd& dc_ds, const Eigen::VectorXd& dc_dy, double* dy,
                    double* dX);

// The multinomial form of the above: with Q = H⁻¹ v unpacked per class ((p+1) × K, Q(p, K−1) = 0 as b_K is fixed),
// t_i = (z̃_iᵀQ)ᵀ, the probabilities P (n × K), the coefficients C = P − Y and the weights W (p × K),
//   dL/dY_ik = t_ik / n,   dL/dX_ij = −(Q_j·C_i + W_j·A_i t_i) / n,   A_i = diag(p_i) − p_i p_iᵀ
// (row-major n × K and n × p; either may be null).
void MultinomialVjp(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& W, const Eigen::MatrixXd& Q,
                    const Eigen::MatrixXd& P, const Eigen::MatrixXd& C, double* dY, double* dX);

}  // namespace ddn::regression
