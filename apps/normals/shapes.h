// apps/normals/shapes.h: the scans of ddn-normals, their corrupted copies, neighbourhoods and per-neighbour features.
//
// A Scan is a PLY mesh (datasets/ply.h) whose vertices are the points and whose face normals at the vertices are
// the true normals (vertices in no face are kept as points but never queried). Coordinates are centred at the
// bounding box's centre and scaled so that its diagonal is 1; `spacing` is the median distance from a vertex to its
// nearest neighbour, the scan's resolution, in which noise levels are expressed.
//
// Corruption (seeded): Gaussian noise of standard deviation noise·spacing on every coordinate of every point, then a
// fraction `outliers` of the points displaced by a distance U(2, 6)·spacing in a uniformly random direction (off the
// surface, into the neighbourhoods of their neighbours). Outliers are never query points (their true normal is
// meaningless) but they are in the other points' neighbourhoods.
//
// A neighbourhood is the k nearest points (nanoflann k-d tree) of a query point q, the query included, in local
// coordinates u_j = (p_j − q)/R with R the distance to the farthest of them: the plane fit is translation- and
// scale-equivariant, so the normal is unchanged, and every neighbourhood has the same scale.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ddn::normals {

struct Scan {
  std::string name;  // the file's stem, e.g. "bunny"
  std::string path;
  std::vector<double> points;   // V × 3, normalised (unit bounding-box diagonal, centred)
  std::vector<double> normals;  // V × 3 unit normals from the faces (0 where !valid)
  std::vector<uint8_t> valid;   // vertex has a normal
  double spacing = 0;           // median nearest-neighbour distance
  int64_t size() const { return static_cast<int64_t>(points.size() / 3); }
};

// Reads and normalises a PLY mesh. Throws InvalidInput (one line naming the file) if it cannot be read, has fewer
// than 64 vertices or no faces.
Scan LoadScan(const std::string& path);

struct Corrupted {
  std::vector<double> points;    // V × 3
  std::vector<uint8_t> outlier;  // V
};

Corrupted Corrupt(const Scan& shape, double noise, double outliers, uint64_t seed);

// k nearest neighbours in a point set (a nanoflann k-d tree over V × 3 points held by reference).
class NeighbourIndex {
 public:
  explicit NeighbourIndex(const std::vector<double>& points);
  ~NeighbourIndex();
  // The k nearest points to `query` (ascending distance) into `out` (k entries).
  void Query(const double* query, int k, int64_t* out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Per-neighbour features (all invariant to rotations, translations and scaling of the neighbourhood, and to the
// sign of any normal): with the unweighted PCA plane (centroid c, normal n₀, eigenvalues λ₁ ≤ λ₂ ≤ λ₃ of the
// scatter), the residual r_j = n₀ᵀ(u_j − c) (u in local coordinates), and the least-squares quadric ("jet") over the
// PCA frame, z = a₀ + a₁x + a₂y + a₃x² + a₄xy + a₅y² with (x, y, z) the coordinates of u_j − c along the
// eigenvectors, whose residuals ρ_j separate noise (ρ large) from curvature (r large, ρ small):
//   0  ‖u_j‖                          distance to the query (≤ 1)
//   1  |n₀ᵀu_j|                       height over the PCA plane through the query
//   2  |r_j|                          distance to the PCA plane
//   3  |r_j| / (rms r + 1e-12)        the same relative to the neighbourhood's RMS residual
//   4  √(‖u_j − c‖² − r_j²)           distance from the centroid within the plane
//   5  λ₁ / (λ₁ + λ₂ + λ₃)            surface variation of the neighbourhood (the same for every j)
//   6  λ₂ / λ₃                        its flatness within the plane (the same for every j)
//   7  log(rms ρ + 1e-6)              the jet's RMS residual, the noise level, on a log scale (the same for every j)
//   8  |ρ_j| / (rms ρ + 1e-12)        how far the point is off the jet, relative to the noise
//   9  log(1 + √(a₃² + a₄²/2 + a₅²))  the jet's curvature (the same for every j)
constexpr int kNumFeatures = 10;

// One neighbourhood: local coordinates (k × 3) and features (k × kNumFeatures) written at the given pointers.
void Neighbourhood(const std::vector<double>& points, const NeighbourIndex& index, int64_t query, int k, double* local,
                   double* features);

}  // namespace ddn::normals
