// nodes/surface/node_support.h: what the three surface nodes share (internal to nodes/surface): their parameters,
// the PointCloud view of one problem, and the generators of their gradient-check inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddn/node.h"
#include "ddn/random.h"
#include "ddn/tensor.h"
#include "nodes/surface/surface_fits.h"

namespace ddn::surface::internal {

// penalty (default quadratic) and alpha (default 1), as robust pooling's.
std::vector<ParamSpec> RobustFitParams();

// Input 0 = points (N, D), input 1 = optional weights (N).
PointCloud CloudOf(const ProblemData& p);

// The inputs ("points" and, if weights is not empty, "weights") of a check case.
CheckCase MakeCase(const std::string& name, Tensor points, Tensor weights = Tensor());

// Random unit vector in R^d.
std::vector<double> RandomDirection(Rng* rng, int64_t d);

// B problems of N points in R^D near a random hyperplane through a random point (|centre_k| ≤ far): in-plane
// standard deviation 2, normal noise `noise`, a fraction `outliers` of points moved 1–1.5 away from the plane;
// then every coordinate is multiplied by `scale`. The normals have |n_D| ≥ 0.3, away from the sign rule's tie
// (where the output flips sign).
Tensor NoisyPlanes(Rng* rng, int64_t b, int64_t n, int64_t d, double noise, double outliers, double far = 0.5,
                   double scale = 1.0);
// B problems of N points near spheres (radius 1.5–2.5, random centre |c_k| ≤ far) covering a cap of half-angle
// `cap` (π: the whole sphere) around a random axis, radial noise `noise`, a fraction `outliers` moved 1–1.5
// radially (outwards, or inwards when the radius allows); then scaled by `scale`.
Tensor NoisySpheres(Rng* rng, int64_t b, int64_t n, int64_t d, double noise, double outliers, double cap = M_PI,
                    double far = 0.5, double scale = 1.0);
// B problems of N points near ellipses (semi-axes 2 and 1, random centre and angle) on the arc of parameter
// angles [0, arc), with normal noise `noise`.
Tensor NoisyEllipses(Rng* rng, int64_t b, int64_t n, double noise, double arc = 2 * M_PI);
// Weights U(lo, hi), shape (B, N).
Tensor RandomWeights(Rng* rng, int64_t b, int64_t n, double lo = 0.3, double hi = 2.0);

}  // namespace ddn::surface::internal
