// nodes/optim/qp_problems.h: quadratic programmes built around a known solution (tests, checks, benchmarks).
//
// MakeKnownQp draws Q = MᵀM/n + δI (eigenvalues in [δ, δ + O(1)]), G, A with N(0, 1) entries, a solution z*,
// multipliers ν* ~ N(0, 1) and, for each inequality, one of three roles:
//   strongly active   slack 0, λ* ~ U(0.5, 2)
//   weakly active     slack 0, λ* = 0           (degenerate: z(θ) is not differentiable there)
//   inactive          slack ~ U(0.5, 2), λ* = 0
// and then sets h = Gz* + s*, b = Az*, q = −(Qz* + Gᵀλ* + Aᵀν*), so that (z*, λ*, ν*) satisfies the KKT
// conditions exactly (up to the rounding of those products): z* is the unique minimiser.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "ddn/random.h"
#include "nodes/optim/qp_solver.h"

namespace ddn::optim {

struct KnownQpOptions {
  int n = 5, m = 8, p = 2;
  int strongly_active = 2;  // the first rows of G
  int weakly_active = 0;    // the next rows
  double delta = 0.5;       // δ, the smallest eigenvalue's floor of Q
};

struct KnownQp {
  QpData data;
  Eigen::VectorXd z, lambda, nu;  // the solution and its multipliers
};

inline KnownQp MakeKnownQp(const KnownQpOptions& o, Rng* rng) {
  KnownQp k;
  QpData& d = k.data;
  Eigen::MatrixXd M(o.n, o.n);
  for (int i = 0; i < o.n; ++i)
    for (int j = 0; j < o.n; ++j) M(i, j) = rng->Normal();
  d.Q = M.transpose() * M / o.n + o.delta * Eigen::MatrixXd::Identity(o.n, o.n);
  d.G.resize(o.m, o.n);
  d.A.resize(o.p, o.n);
  for (int i = 0; i < o.m; ++i)
    for (int j = 0; j < o.n; ++j) d.G(i, j) = rng->Normal();
  for (int i = 0; i < o.p; ++i)
    for (int j = 0; j < o.n; ++j) d.A(i, j) = rng->Normal();
  k.z.resize(o.n);
  for (int j = 0; j < o.n; ++j) k.z[j] = rng->Normal();
  k.nu.resize(o.p);
  for (int i = 0; i < o.p; ++i) k.nu[i] = rng->Normal();
  k.lambda = Eigen::VectorXd::Zero(o.m);
  Eigen::VectorXd slack = Eigen::VectorXd::Zero(o.m);
  for (int i = 0; i < o.m; ++i) {
    if (i < o.strongly_active) {
      k.lambda[i] = rng->Uniform(0.5, 2.0);
    } else if (i >= o.strongly_active + o.weakly_active) {
      slack[i] = rng->Uniform(0.5, 2.0);
    }
  }
  d.h = d.G * k.z + slack;
  d.b = d.A * k.z;
  d.q = -(d.Q * k.z + d.G.transpose() * k.lambda + d.A.transpose() * k.nu);
  return k;
}

}  // namespace ddn::optim
