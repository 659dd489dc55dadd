// ddn/anderson.h: the mixing step of Anderson acceleration, and its adjoint.
//
// Anderson acceleration (type II; Walker & Ni, SIAM J. Numer. Anal. 2011) solves z = f(z) by mixing the last c
// iterates: with residuals g_j = f(z_j) − z_j as the columns of G (n×c),
//
//   α = argmin ‖Gα‖₂  s.t.  Σ_j α_j = 1,     solved as (GᵀG + ρI) a = 1, α = a / Σ_j a_j,
//   z_next = Σ_j α_j ((1 − β) z_j + β f(z_j)),
//
// with a small Tikhonov term ρ = rho_scale·tr(GᵀG)/c that keeps the c×c system solvable when residuals are
// nearly collinear (near convergence). Used by deq_tanh (nodes/optim) and the graph's FixedPointLayer, whose
// unrolled backward (ddn/gradient_mode.h) runs AndersonWeightsAdjoint: for an upstream ᾱ it returns
// Ḡ = ∂⟨ᾱ, α⟩/∂G, through α = a/Σa, the solve and ρ's dependence on G.
#pragma once

#include <Eigen/Core>

namespace ddn {

constexpr double kAndersonRhoScale = 1e-10;

// The mixing weights α (length c, Σα = 1). If the system breaks down (Σa = 0 or non-finite), α = e_c (the last
// iterate alone).
Eigen::VectorXd AndersonWeights(const Eigen::MatrixXd& G, double rho_scale = kAndersonRhoScale);

// Ḡ (n×c) for an upstream gradient ᾱ of the weights AndersonWeights(G) returned; zero where it fell back.
Eigen::MatrixXd AndersonWeightsAdjoint(const Eigen::MatrixXd& G, const Eigen::VectorXd& alpha_bar,
                                       double rho_scale = kAndersonRhoScale);

}  // namespace ddn
