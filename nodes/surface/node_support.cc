#include "nodes/surface/node_support.h"

#include <cmath>

#include "ddn/random.h"
#include "nodes/pooling/penalties.h"

namespace ddn::surface::internal {

std::vector<ParamSpec> RobustFitParams() {
  return {{"penalty", ParamType::kChoice, "quadratic",
           "robust penalty phi of the residuals: quadratic, pseudo_huber, huber, welsch, truncated_quadratic, "
           "cauchy, geman_mcclure",
           pooling::PenaltyNames()},
          {"alpha", ParamType::kFloat, "1", "scale alpha > 0 of the penalty", {}}};
}

PointCloud CloudOf(const ProblemData& p) {
  PointCloud c;
  c.points = p.inputs[0];
  c.weights = p.inputs.size() > 1 ? p.inputs[1] : nullptr;
  c.n = p.input_shapes[0].empty() ? 0 : p.input_shapes[0][0];
  c.d = p.input_shapes[0].size() > 1 ? p.input_shapes[0][1] : 0;
  return c;
}

CheckCase MakeCase(const std::string& name, Tensor points, Tensor weights) {
  CheckCase c{name, {}};
  c.inputs["points"] = std::move(points);
  if (!weights.empty()) c.inputs["weights"] = std::move(weights);
  return c;
}

std::vector<double> RandomDirection(Rng* rng, int64_t d) {
  std::vector<double> v(d);
  double norm = 0;
  while (norm < 1e-3) {
    norm = 0;
    for (auto& x : v) {
      x = rng->Normal();
      norm += x * x;
    }
    norm = std::sqrt(norm);
  }
  for (auto& x : v) x /= norm;
  return v;
}

Tensor NoisyPlanes(Rng* rng, int64_t b, int64_t n, int64_t d, double noise, double outliers, double far, double scale) {
  Tensor t({b, n, d});
  for (int64_t k = 0; k < b; ++k) {
    std::vector<double> nrm = RandomDirection(rng, d);
    while (std::abs(nrm[d - 1]) < 0.3) nrm = RandomDirection(rng, d);
    std::vector<double> centre(d);
    for (auto& c : centre) c = far * rng->Uniform(-1.0, 1.0);
    double* x = t.problem(k);
    for (int64_t i = 0; i < n; ++i) {
      // A Gaussian point projected onto the plane, then moved along the normal.
      std::vector<double> g(d);
      double along = 0;
      for (int64_t j = 0; j < d; ++j) {
        g[j] = 2 * rng->Normal();
        along += g[j] * nrm[j];
      }
      const double h = (i > d && (rng->Uniform() < outliers))
                           ? ((rng->Uniform() < 0.5) ? 1 : -1) * rng->Uniform(1.0, 1.5)
                           : noise * rng->Normal();
      for (int64_t j = 0; j < d; ++j) x[i * d + j] = scale * (centre[j] + g[j] - along * nrm[j] + h * nrm[j]);
    }
  }
  return t;
}

Tensor NoisySpheres(Rng* rng, int64_t b, int64_t n, int64_t d, double noise, double outliers, double cap, double far,
                    double scale) {
  Tensor t({b, n, d});
  for (int64_t k = 0; k < b; ++k) {
    const std::vector<double> axis = RandomDirection(rng, d);
    std::vector<double> centre(d);
    for (auto& c : centre) c = far * rng->Uniform(-1.0, 1.0);
    const double r = rng->Uniform(1.5, 2.5);
    double* x = t.problem(k);
    for (int64_t i = 0; i < n; ++i) {
      // Directions within the cap: rejection sampling around the axis.
      std::vector<double> u;
      for (int tries = 0; tries < 1000; ++tries) {
        u = RandomDirection(rng, d);
        double c = 0;
        for (int64_t j = 0; j < d; ++j) c += u[j] * axis[j];
        if (std::acos(std::max(-1.0, std::min(1.0, c))) <= cap) break;
      }
      const double dist = rng->Uniform(1.0, 1.5);
      const double h = (i > d + 1 && (rng->Uniform() < outliers))
                           ? ((rng->Uniform() < 0.5) || dist > 0.7 * r ? 1 : -1) * dist
                           : noise * rng->Normal();
      for (int64_t j = 0; j < d; ++j) x[i * d + j] = scale * (centre[j] + (r + h) * u[j]);
    }
  }
  return t;
}

Tensor NoisyEllipses(Rng* rng, int64_t b, int64_t n, double noise, double arc) {
  Tensor t({b, n, 2});
  for (int64_t k = 0; k < b; ++k) {
    const double cx = rng->Uniform(-1.0, 1.0), cy = rng->Uniform(-1.0, 1.0), phi = rng->Uniform(0.0, M_PI);
    double* x = t.problem(k);
    for (int64_t i = 0; i < n; ++i) {
      const double s = arc * (i + 0.5 * (1 + rng->Uniform(-1.0, 1.0)) * 0.8) / n;
      const double ex = 2.0 * std::cos(s) + noise * rng->Normal(), ey = 1.0 * std::sin(s) + noise * rng->Normal();
      x[2 * i] = cx + std::cos(phi) * ex - std::sin(phi) * ey;
      x[2 * i + 1] = cy + std::sin(phi) * ex + std::cos(phi) * ey;
    }
  }
  return t;
}

Tensor RandomWeights(Rng* rng, int64_t b, int64_t n, double lo, double hi) {
  Tensor w({b, n});
  for (auto& v : w.values()) v = rng->Uniform(lo, hi);
  return w;
}

}  // namespace ddn::surface::internal
