#include "nodes/geometry/pnp_ceres.h"

#include <ceres/ceres.h>
#include <ceres/rotation.h>

#include <cmath>

namespace ddn::geometry {
namespace {

struct Intrinsics {
  double fx = 1, fy = 1, cx = 0, cy = 0;
};

// Reprojection residual z = π(R P + t) − q (2 values), scaled by `scale`.
struct ReprojResidual {
  ReprojResidual(const double* q, const double* world, const Intrinsics& intrinsics, double weight)
      : q0(q[0]), q1(q[1]), P{world[0], world[1], world[2]}, k(intrinsics), scale(weight) {}
  template <typename T>
  bool operator()(const T* pose, T* residual) const {
    const T p[3] = {T(P[0]), T(P[1]), T(P[2])};
    T X[3];
    ceres::AngleAxisRotatePoint(pose, p, X);
    for (int c = 0; c < 3; ++c) X[c] += pose[3 + c];
    residual[0] = T(scale) * (T(k.fx) * X[0] / X[2] + T(k.cx) - T(q0));
    residual[1] = T(scale) * (T(k.fy) * X[1] / X[2] + T(k.cy) - T(q1));
    return true;
  }
  double q0, q1, P[3];
  Intrinsics k;
  double scale;
};

// Cosine residual √w (b − X/‖X‖) (3 values): ½‖b − n‖² = 1 − bᵀn for unit b and n.
struct CosineResidual {
  CosineResidual(const double* q, const double* world, const Intrinsics& k, double weight)
      : P{world[0], world[1], world[2]}, scale(weight) {
    const double m[3] = {(q[0] - k.cx) / k.fx, (q[1] - k.cy) / k.fy, 1.0};
    const double norm = std::sqrt(m[0] * m[0] + m[1] * m[1] + 1.0);
    for (int c = 0; c < 3; ++c) b[c] = m[c] / norm;
  }
  template <typename T>
  bool operator()(const T* pose, T* residual) const {
    using std::sqrt;
    const T p[3] = {T(P[0]), T(P[1]), T(P[2])};
    T X[3];
    ceres::AngleAxisRotatePoint(pose, p, X);
    for (int c = 0; c < 3; ++c) X[c] += pose[3 + c];
    const T norm = sqrt(X[0] * X[0] + X[1] * X[1] + X[2] * X[2]);
    for (int c = 0; c < 3; ++c) residual[c] = T(scale) * (T(b[c]) - X[c] / norm);
    return true;
  }
  double P[3], b[3];
  double scale;
};

}  // namespace

CeresRefineResult RefinePoseCeres(const PnPProblem& p, double pose[6], int max_iterations) {
  ceres::Problem::Options problem_options;
  ceres::Problem problem(problem_options);
  Intrinsics k;
  if (p.K) k = {p.K[0], p.K[1], p.K[2], p.K[3]};
  for (int64_t i = 0; i < p.n; ++i) {
    const double w = p.weight(i);
    if (w == 0) continue;
    const double* q = p.p2d + 2 * i;
    const double* P = p.p3d + 3 * i;
    switch (p.objective) {
      case PnPObjective::kReproj:  // w‖z‖² = ½‖√(2w) z‖²
        problem.AddResidualBlock(
            new ceres::AutoDiffCostFunction<ReprojResidual, 2, 6>(new ReprojResidual(q, P, k, std::sqrt(2.0 * w))),
            nullptr, pose);
        break;
      case PnPObjective::kReprojHuber:  // w ρ_α(‖z‖) = ½ w HuberLoss_α(‖z‖²)
        problem.AddResidualBlock(
            new ceres::AutoDiffCostFunction<ReprojResidual, 2, 6>(new ReprojResidual(q, P, k, 1.0)),
            new ceres::ScaledLoss(new ceres::HuberLoss(p.alpha), w, ceres::TAKE_OWNERSHIP), pose);
        break;
      case PnPObjective::kCosine:  // w(1 − bᵀn) = ½‖√w (b − n)‖²
        problem.AddResidualBlock(
            new ceres::AutoDiffCostFunction<CosineResidual, 3, 6>(new CosineResidual(q, P, k, std::sqrt(w))), nullptr,
            pose);
        break;
    }
  }
  ceres::Solver::Options options;
  options.minimizer_type = ceres::TRUST_REGION;
  options.trust_region_strategy_type = ceres::LEVENBERG_MARQUARDT;
  options.linear_solver_type = ceres::DENSE_QR;
  options.max_num_iterations = max_iterations;
  options.function_tolerance = 1e-16;
  options.gradient_tolerance = 1e-16;
  options.parameter_tolerance = 1e-16;
  options.num_threads = 1;
  options.logging_type = ceres::SILENT;
  ceres::Solver::Summary summary;
  ceres::Solve(options, &problem, &summary);
  CeresRefineResult r;
  r.iterations = static_cast<int>(summary.iterations.size());
  r.final_cost = summary.final_cost;
  r.converged = summary.termination_type == ceres::CONVERGENCE;
  return r;
}

}  // namespace ddn::geometry
