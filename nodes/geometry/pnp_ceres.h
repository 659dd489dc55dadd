// nodes/geometry/pnp_ceres.h: the PnP refinement by Ceres' Levenberg–Marquardt, for comparison.
//
// The node refines with its own Levenberg–Marquardt on the exact Hessian (pnp_solver.h, RefinePose). This is the
// same refinement written as a Ceres least-squares problem (one residual block per correspondence, automatic
// derivatives, ceres::AngleAxisRotatePoint; reproj_huber through a scaled Huber loss, cosine as ½‖b − X/‖X‖‖²),
// which Ceres solves by Gauss–Newton-type LM. Tests hold the two to the same minimum; the benchmark times both
// (pnp_benchmark.cc), which is why the node uses its own.
#pragma once

#include "nodes/geometry/pnp_solver.h"

namespace ddn::geometry {

struct CeresRefineResult {
  int iterations = 0;
  double final_cost = 0;  // Ceres' cost, ½ Σ‖residual‖² (= f for every objective)
  bool converged = false;
};

// Ceres LM from *pose with tight tolerances (function, gradient and parameter tolerance 1e-16, at most
// `max_iterations`), dense QR, one thread.
CeresRefineResult RefinePoseCeres(const PnPProblem& problem, double pose[6], int max_iterations = 200);

}  // namespace ddn::geometry
