#include "apps/normals/shapes.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nanoflann.hpp>

#include "datasets/ply.h"
#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn::normals {

struct NeighbourIndex::Impl {
  // nanoflann's dataset adaptor over a V × 3 array.
  struct Cloud {
    const std::vector<double>* points;
    size_t kdtree_get_point_count() const { return points->size() / 3; }
    double kdtree_get_pt(size_t i, size_t dim) const { return (*points)[3 * i + dim]; }
    template <class Box>
    bool kdtree_get_bbox(Box&) const {
      return false;
    }
  };
  using Tree = nanoflann::KDTreeSingleIndexAdaptor<nanoflann::L2_Simple_Adaptor<double, Cloud>, Cloud, 3, uint32_t>;
  Cloud cloud;
  std::unique_ptr<Tree> tree;
};

NeighbourIndex::NeighbourIndex(const std::vector<double>& points) : impl_(std::make_unique<Impl>()) {
  impl_->cloud.points = &points;
  impl_->tree = std::make_unique<Impl::Tree>(3, impl_->cloud, nanoflann::KDTreeSingleIndexAdaptorParams(16));
}

NeighbourIndex::~NeighbourIndex() = default;

void NeighbourIndex::Query(const double* query, int k, int64_t* out) const {
  std::vector<uint32_t> idx(k);
  std::vector<double> dist(k);
  const size_t found = impl_->tree->knnSearch(query, k, idx.data(), dist.data());
  if (found < static_cast<size_t>(k)) throw InvalidInput("fewer points than the neighbourhood size k");
  for (int j = 0; j < k; ++j) out[j] = idx[j];
}

Scan LoadScan(const std::string& path) {
  const datasets::PlyMesh mesh = datasets::ReadPly(path);
  if (mesh.num_vertices() < 64) {
    throw InvalidInput("PLY file '" + path + "' has " + std::to_string(mesh.num_vertices()) +
                       " vertices; a shape needs at least 64");
  }
  if (mesh.num_triangles() == 0) {
    throw InvalidInput("PLY file '" + path + "' has no faces: the true normals come from the mesh faces");
  }
  Scan s;
  s.path = path;
  s.name = std::filesystem::path(path).stem().string();
  s.normals = datasets::VertexNormalsFromFaces(mesh, &s.valid);
  s.points = mesh.points;
  double lo[3], hi[3];
  for (int c = 0; c < 3; ++c) lo[c] = hi[c] = s.points[c];
  for (int64_t v = 0; v < s.size(); ++v)
    for (int c = 0; c < 3; ++c) {
      lo[c] = std::min(lo[c], s.points[3 * v + c]);
      hi[c] = std::max(hi[c], s.points[3 * v + c]);
    }
  const double diag = std::sqrt((hi[0] - lo[0]) * (hi[0] - lo[0]) + (hi[1] - lo[1]) * (hi[1] - lo[1]) +
                                (hi[2] - lo[2]) * (hi[2] - lo[2]));
  if (!(diag > 0)) throw InvalidInput("PLY file '" + path + "': all vertices coincide");
  for (int64_t v = 0; v < s.size(); ++v)
    for (int c = 0; c < 3; ++c) s.points[3 * v + c] = (s.points[3 * v + c] - 0.5 * (lo[c] + hi[c])) / diag;
  // Spacing: the median distance to the nearest other vertex, over a stride sample of ≤ 2000 vertices.
  const NeighbourIndex index(s.points);
  std::vector<double> nearest;
  const int64_t stride = std::max<int64_t>(1, s.size() / 2000);
  int64_t nn[2];
  for (int64_t v = 0; v < s.size(); v += stride) {
    index.Query(&s.points[3 * v], 2, nn);
    double d2 = 0;
    for (int c = 0; c < 3; ++c) d2 += std::pow(s.points[3 * nn[1] + c] - s.points[3 * v + c], 2);
    if (d2 > 0) nearest.push_back(std::sqrt(d2));
  }
  if (nearest.empty()) throw InvalidInput("PLY file '" + path + "': no two distinct vertices");
  std::nth_element(nearest.begin(), nearest.begin() + nearest.size() / 2, nearest.end());
  s.spacing = nearest[nearest.size() / 2];
  return s;
}

Corrupted Corrupt(const Scan& shape, double noise, double outliers, uint64_t seed) {
  Rng rng(seed);
  Corrupted out;
  out.points = shape.points;
  out.outlier.assign(shape.size(), 0);
  const double sigma = noise * shape.spacing;
  for (double& x : out.points) x += sigma * rng.Normal();
  if (outliers > 0) {
    for (int64_t v = 0; v < shape.size(); ++v) {
      if (rng.Uniform() >= outliers) continue;
      double dir[3], norm = 0;
      while (norm < 1e-6) {
        norm = 0;
        for (double& d : dir) {
          d = rng.Normal();
          norm += d * d;
        }
        norm = std::sqrt(norm);
      }
      const double dist = rng.Uniform(2.0, 6.0) * shape.spacing;
      for (int c = 0; c < 3; ++c) out.points[3 * v + c] += dist * dir[c] / norm;
      out.outlier[v] = 1;
    }
  }
  return out;
}

void Neighbourhood(const std::vector<double>& points, const NeighbourIndex& index, int64_t query, int k, double* local,
                   double* features) {
  std::vector<int64_t> nb(k);
  index.Query(&points[3 * query], k, nb.data());
  const double* q = &points[3 * query];
  double R = 0;
  for (int j = 0; j < k; ++j) {
    double d2 = 0;
    for (int c = 0; c < 3; ++c) d2 += std::pow(points[3 * nb[j] + c] - q[c], 2);
    R = std::max(R, std::sqrt(d2));
  }
  if (!(R > 0)) R = 1;  // all neighbours at the query: any scale will do
  Eigen::Vector3d c = Eigen::Vector3d::Zero();
  for (int j = 0; j < k; ++j) {
    for (int a = 0; a < 3; ++a) local[3 * j + a] = (points[3 * nb[j] + a] - q[a]) / R;
    c += Eigen::Map<const Eigen::Vector3d>(local + 3 * j);
  }
  c /= k;
  Eigen::Matrix3d S = Eigen::Matrix3d::Zero();
  for (int j = 0; j < k; ++j) {
    const Eigen::Vector3d u = Eigen::Map<const Eigen::Vector3d>(local + 3 * j) - c;
    S += u * u.transpose();
  }
  Eigen::SelfAdjointEigenSolver<Eigen::Matrix3d> es;
  es.computeDirect(S);
  const Eigen::Vector3d n0 = es.eigenvectors().col(0);
  const Eigen::Vector3d lambda = es.eigenvalues().cwiseMax(0.0);
  const double total = lambda.sum();
  const double variation = total > 0 ? lambda[0] / total : 0.0;
  const double flatness = lambda[2] > 0 ? lambda[1] / lambda[2] : 1.0;
  double rms = 0;
  std::vector<double> r(k);
  Eigen::MatrixXd A(k, 6);
  Eigen::VectorXd z(k);
  for (int j = 0; j < k; ++j) {
    const Eigen::Vector3d v = Eigen::Map<const Eigen::Vector3d>(local + 3 * j) - c;
    r[j] = n0.dot(v);
    rms += r[j] * r[j];
    const double x = es.eigenvectors().col(2).dot(v), y = es.eigenvectors().col(1).dot(v);
    A.row(j) << 1.0, x, y, x * x, x * y, y * y;
    z[j] = r[j];
  }
  rms = std::sqrt(rms / k);
  const Eigen::VectorXd a = A.colPivHouseholderQr().solve(z);
  const Eigen::VectorXd rho = z - A * a;
  const double rms_jet = std::sqrt(rho.squaredNorm() / std::max(1, k - 6));
  const double curvature = std::sqrt(a[3] * a[3] + 0.5 * a[4] * a[4] + a[5] * a[5]);
  for (int j = 0; j < k; ++j) {
    const Eigen::Map<const Eigen::Vector3d> u(local + 3 * j);
    double* f = features + kNumFeatures * j;
    f[0] = u.norm();
    f[1] = std::abs(n0.dot(u));
    f[2] = std::abs(r[j]);
    f[3] = std::abs(r[j]) / (rms + 1e-12);
    f[4] = std::sqrt(std::max(0.0, (u - c).squaredNorm() - r[j] * r[j]));
    f[5] = variation;
    f[6] = flatness;
    f[7] = std::log(rms_jet + 1e-6);
    f[8] = std::abs(rho[j]) / (rms_jet + 1e-12);
    f[9] = std::log1p(curvature);
  }
}

}  // namespace ddn::normals
