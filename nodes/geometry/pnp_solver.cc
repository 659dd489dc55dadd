#include "nodes/geometry/pnp_solver.h"

#include <ceres/jet.h>

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "ddn/error.h"
#include "ddn/implicit.h"
#include "ddn/params.h"
#include "ddn/random.h"
#include "nodes/geometry/rotation.h"

namespace ddn::geometry {
namespace {

using Vec3 = Eigen::Vector3d;
using Mat3 = Eigen::Matrix3d;
using Vec6 = Eigen::Matrix<double, 6, 1>;
using Mat6 = Eigen::Matrix<double, 6, 6>;
using Mat32 = Eigen::Matrix<double, 3, 2>;

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Camera {
  double fx = 1, fy = 1, cx = 0, cy = 0;
};

Camera CameraOf(const PnPProblem& p) {
  Camera c;
  if (p.K) {
    c.fx = p.K[0];
    c.fy = p.K[1];
    c.cx = p.K[2];
    c.cy = p.K[3];
  }
  return c;
}

Vec3 WorldPoint(const PnPProblem& p, int64_t i) {
  return Vec3(p.p3d[3 * i], p.p3d[3 * i + 1], p.p3d[3 * i + 2]);
}

// The image point in normalised coordinates (K⁻¹ applied).
Eigen::Vector2d Normalised(const PnPProblem& p, const Camera& c, int64_t i) {
  return {(p.p2d[2 * i] - c.cx) / c.fx, (p.p2d[2 * i + 1] - c.cy) / c.fy};
}

// ---- R(r) and its first and second derivatives ------------------------------------------------------------

struct RotationDerivatives {
  Mat3 R;
  Mat3 dR[3];      // ∂R/∂r_a
  Mat3 d2R[3][3];  // ∂²R/∂r_a∂r_b
};

// One evaluation of rotation.h's R(r) with nested Jets: outer and inner derivative directions both r.
void Rotation(const double r[3], RotationDerivatives* d) {
  using J1 = ceres::Jet<double, 3>;
  using J2 = ceres::Jet<J1, 3>;
  J2 rj[3];
  for (int k = 0; k < 3; ++k) rj[k] = J2(J1(r[k], k), k);
  J2 R[9];
  AngleAxisToRotationMatrix(rj, R);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      const J2& e = R[3 * i + j];
      d->R(i, j) = e.a.a;
      for (int a = 0; a < 3; ++a) {
        d->dR[a](i, j) = e.a.v[a];
        for (int b = 0; b < 3; ++b) d->d2R[a][b](i, j) = e.v[a].v[b];
      }
    }
  }
}

Mat3 RotationMatrix(const double r[3]) {
  double R[9];
  AngleAxisToRotationMatrix(r, R);
  Mat3 m;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) m(i, j) = R[3 * i + j];
  return m;
}

// The angle-axis vector with θ ∈ [0, π]: r ↦ r (1 − 2π/θ) while θ > π (the same rotation). The node's output is
// this representative, a function of the data only (not of where Levenberg–Marquardt wandered); at θ = π the
// representation itself jumps, as any three-parameter one must somewhere.
void CanonicalAngleAxis(double r[3]) {
  constexpr double kPi = 3.14159265358979323846;
  const double theta = std::sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
  if (!(theta > kPi)) return;
  const double turns = std::floor((theta + kPi) / (2 * kPi));
  const double scale = 1.0 - 2 * kPi * turns / theta;
  for (int k = 0; k < 3; ++k) r[k] *= scale;
}

void PoseFromRotation(const Mat3& R, const Vec3& t, double pose[6]) {
  const Eigen::AngleAxisd aa(R);
  const Vec3 r = aa.angle() * aa.axis();
  for (int k = 0; k < 3; ++k) {
    pose[k] = r[k];
    pose[3 + k] = t[k];
  }
}

// ---- φ(X, q) and its derivatives in X (and q) -----------------------------------------------------------

struct Term {
  double value = 0;
  Vec3 g;    // ∂φ/∂X
  Mat3 H;    // ∂²φ/∂X²
  Mat32 Hq;  // ∂²φ/∂X∂q
};

// φ at the camera point X for image point q; derivatives up to `order` (0, 1, 2; 2 includes Hq). Returns false
// where φ is undefined (depth 0 for the reprojection objectives, X = 0 for cosine).
bool EvalTerm(const PnPProblem& p, const Camera& c, const Vec3& X, const double* q, int order, Term* t) {
  if (p.objective == PnPObjective::kCosine) {
    const Vec3 m((q[0] - c.cx) / c.fx, (q[1] - c.cy) / c.fy, 1.0);
    const double mn = m.norm();
    const Vec3 b = m / mn;
    const double rho = X.norm();
    if (!(rho > 0)) return false;
    const Vec3 n = X / rho;
    // 1 − bᵀn = ½‖b − n‖² for unit b and n: no cancellation when b ≈ n (the usual case at the minimum).
    const Vec3 e = b - n;
    const double one_minus_a = 0.5 * e.squaredNorm(), a = 1.0 - one_minus_a;
    t->value = one_minus_a;
    if (order < 1) return true;
    const Vec3 h = (e + one_minus_a * n) / rho;  // ∂(bᵀn)/∂X = (b − a n)/‖X‖
    t->g = -h;
    if (order < 2) return true;
    const Mat3 Pn = (Mat3::Identity() - n * n.transpose()) / rho;
    t->H = (n * h.transpose() + h * n.transpose()) / rho + a * Pn / rho;
    const Mat3 Pb = (Mat3::Identity() - b * b.transpose()) / mn;
    Mat32 Dm = Mat32::Zero();
    Dm(0, 0) = 1.0 / c.fx;
    Dm(1, 1) = 1.0 / c.fy;
    t->Hq = -Pn * Pb * Dm;
    return true;
  }
  if (X[2] == 0.0) return false;
  const double inv = 1.0 / X[2];
  const double u = X[0] * inv, v = X[1] * inv;
  const double z0 = c.fx * u + c.cx - q[0], z1 = c.fy * v + c.cy - q[1];
  const double s = z0 * z0 + z1 * z1;
  double rho1 = 1.0, rho2 = 0.0;
  if (p.objective == PnPObjective::kReproj) {
    t->value = s;
  } else if (s <= p.alpha * p.alpha) {
    t->value = 0.5 * s;
    rho1 = 0.5;
  } else {
    const double r = std::sqrt(s);
    t->value = p.alpha * (r - 0.5 * p.alpha);
    rho1 = p.alpha / (2.0 * r);
    rho2 = -p.alpha / (4.0 * s * r);
  }
  if (order < 1) return true;
  const Vec3 a0(c.fx * inv, 0.0, -c.fx * u * inv);  // ∇π₀
  const Vec3 a1(0.0, c.fy * inv, -c.fy * v * inv);  // ∇π₁
  const Vec3 sX = 2.0 * (z0 * a0 + z1 * a1);        // ∇s, s = ‖z‖²
  t->g = rho1 * sX;
  if (order < 2) return true;
  // ∇²π₀ = fx/X₃² [[0,0,−1],[0,0,0],[−1,0,2u]],  ∇²π₁ = fy/X₃² [[0,0,0],[0,0,−1],[0,−1,2v]].
  const double inv2 = inv * inv;
  Mat3 sXX = 2.0 * (a0 * a0.transpose() + a1 * a1.transpose());
  const double k0 = 2.0 * z0 * c.fx * inv2, k1 = 2.0 * z1 * c.fy * inv2;
  sXX(0, 2) -= k0;
  sXX(2, 0) -= k0;
  sXX(2, 2) += 2.0 * u * k0;
  sXX(1, 2) -= k1;
  sXX(2, 1) -= k1;
  sXX(2, 2) += 2.0 * v * k1;
  t->H = rho1 * sXX + rho2 * sX * sX.transpose();
  Mat32 sXq;
  sXq.col(0) = -2.0 * a0;
  sXq.col(1) = -2.0 * a1;
  const Eigen::Vector2d sq(-2.0 * z0, -2.0 * z1);
  t->Hq = rho1 * sXq + rho2 * sX * sq.transpose();
  return true;
}

// Squared reprojection error in normalised coordinates (for RANSAC scoring); +∞ behind the camera.
double NormalisedError(const Mat3& R, const Vec3& t, const Vec3& P, const Eigen::Vector2d& q) {
  const Vec3 X = R * P + t;
  if (!(X[2] > 0)) return kInf;
  const double du = X[0] / X[2] - q[0], dv = X[1] / X[2] - q[1];
  return du * du + dv * dv;
}

uint64_t Mix(uint64_t h, const double* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint64_t b;
    std::memcpy(&b, v + i, 8);
    h = (h ^ b) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  return h;
}

// Absolute orientation (Umeyama 1991 without scale, weighted): R, t minimising Σ w ‖R P_i + t − X_i‖².
void AbsoluteOrientation(const std::vector<Vec3>& P, const std::vector<Vec3>& X, const std::vector<double>& w, Mat3* R,
                         Vec3* t) {
  double W = 0;
  Vec3 mp = Vec3::Zero(), mx = Vec3::Zero();
  for (size_t i = 0; i < P.size(); ++i) {
    W += w[i];
    mp += w[i] * P[i];
    mx += w[i] * X[i];
  }
  mp /= W;
  mx /= W;
  Mat3 S = Mat3::Zero();
  for (size_t i = 0; i < P.size(); ++i) S += w[i] * (X[i] - mx) * (P[i] - mp).transpose();
  const Eigen::JacobiSVD<Mat3> svd(S, Eigen::ComputeFullU | Eigen::ComputeFullV);
  Mat3 D = Mat3::Identity();
  if ((svd.matrixU() * svd.matrixV().transpose()).determinant() < 0) D(2, 2) = -1;
  *R = svd.matrixU() * D * svd.matrixV().transpose();
  *t = mx - *R * mp;
}

// The world points' weighted principal axes: centroid, eigenvalues (ascending) and eigenvectors.
struct Principal {
  Vec3 centroid;
  Vec3 lambda;
  Mat3 axes;
};
Principal PrincipalAxes(const std::vector<Vec3>& P, const std::vector<double>& w) {
  double W = 0;
  Principal pa;
  pa.centroid.setZero();
  for (size_t i = 0; i < P.size(); ++i) {
    W += w[i];
    pa.centroid += w[i] * P[i];
  }
  pa.centroid /= W;
  Mat3 C = Mat3::Zero();
  for (size_t i = 0; i < P.size(); ++i) C += w[i] * (P[i] - pa.centroid) * (P[i] - pa.centroid).transpose();
  C /= W;
  const Eigen::SelfAdjointEigenSolver<Mat3> eig(C);
  pa.lambda = eig.eigenvalues().cwiseMax(0.0);
  pa.axes = eig.eigenvectors();
  return pa;
}

constexpr double kCollinear = 1e-12;  // λ₂/λ₃ below this: collinear world points
constexpr double kPlanar = 1e-10;     // λ₁/λ₃ below this: planar world points (three control points)
constexpr size_t kFewPoints = 10;     // below this many points every EPnP candidate is a start (and no RANSAC)

struct Candidate {
  Mat3 R;
  Vec3 t;
  double error;  // Σ w ‖reprojection error‖², normalised coordinates
};

// EPnP on given points (world P, normalised image q, weights w > 0): one candidate pose per initial β (one, two
// and three null vectors), best first; none if the configuration is degenerate.
std::vector<Candidate> EPnPCandidates(const std::vector<Vec3>& P, const std::vector<Eigen::Vector2d>& q,
                                      const std::vector<double>& w) {
  std::vector<Candidate> out;
  const int n = static_cast<int>(P.size());
  if (n < 4) return out;
  const Principal pa = PrincipalAxes(P, w);
  const double top = pa.lambda[2];
  if (!(top > 0) || pa.lambda[1] <= kCollinear * top) return out;
  const bool planar = pa.lambda[0] <= kPlanar * top;
  const int nc = planar ? 3 : 4;  // control points
  // Control points c_0 = centroid, c_j = centroid + √λ e for the principal axes, largest first.
  std::vector<Vec3> C(nc);
  std::vector<Vec3> axis(nc - 1);
  std::vector<double> len(nc - 1);
  C[0] = pa.centroid;
  for (int j = 1; j < nc; ++j) {
    len[j - 1] = std::sqrt(pa.lambda[3 - j]);
    axis[j - 1] = pa.axes.col(3 - j);
    C[j] = pa.centroid + len[j - 1] * axis[j - 1];
  }
  // Barycentric coordinates α_ij: P_i = Σ_j α_ij c_j, Σ_j α_ij = 1.
  Eigen::MatrixXd alpha(n, nc);
  for (int i = 0; i < n; ++i) {
    double rest = 1.0;
    for (int j = 1; j < nc; ++j) {
      alpha(i, j) = axis[j - 1].dot(P[i] - pa.centroid) / len[j - 1];
      rest -= alpha(i, j);
    }
    alpha(i, 0) = rest;
  }
  // MᵀM: two equations per point in the 3·nc camera coordinates of the control points (IJCV 2009, eq. 7),
  // each scaled by √w_i.
  const int m = 3 * nc;
  Eigen::MatrixXd MtM = Eigen::MatrixXd::Zero(m, m);
  Eigen::VectorXd r1(m), r2(m);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < nc; ++j) {
      const double a = alpha(i, j);
      r1.segment<3>(3 * j) << a, 0.0, -a * q[i][0];
      r2.segment<3>(3 * j) << 0.0, a, -a * q[i][1];
    }
    MtM.selfadjointView<Eigen::Lower>().rankUpdate(r1, w[i]);
    MtM.selfadjointView<Eigen::Lower>().rankUpdate(r2, w[i]);
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(MtM.selfadjointView<Eigen::Lower>());
  const int nb = planar ? 3 : 4;  // null vectors combined (β's)
  const Eigen::MatrixXd N = eig.eigenvectors().leftCols(nb);
  // Pairs of control points and their world distances².
  std::vector<std::pair<int, int>> pairs;
  for (int a = 0; a < nc; ++a)
    for (int b = a + 1; b < nc; ++b) pairs.emplace_back(a, b);
  const int np = static_cast<int>(pairs.size());
  Eigen::VectorXd d2(np);
  // Δ_k^{ab} = N_k(a) − N_k(b): the difference of control points a and b in null vector k.
  std::vector<std::vector<Vec3>> delta(np, std::vector<Vec3>(nb));
  for (int e = 0; e < np; ++e) {
    const auto [a, b] = pairs[e];
    d2[e] = (C[a] - C[b]).squaredNorm();
    for (int k = 0; k < nb; ++k) delta[e][k] = N.col(k).segment<3>(3 * a) - N.col(k).segment<3>(3 * b);
  }
  // Initial β's from one, two and three null vectors (distance constraints linearised in the products β_k β_l).
  std::vector<Eigen::VectorXd> candidates;
  {
    double num = 0, den = 0;
    for (int e = 0; e < np; ++e) {
      const double l = delta[e][0].norm();
      num += l * std::sqrt(d2[e]);
      den += l * l;
    }
    Eigen::VectorXd beta = Eigen::VectorXd::Zero(nb);
    if (den > 0) beta[0] = num / den;
    candidates.push_back(beta);
  }
  for (int used = 2; used <= 3 && used <= nb; ++used) {
    const int products = used * (used + 1) / 2;
    if (products > np) break;
    Eigen::MatrixXd L(np, products);
    for (int e = 0; e < np; ++e) {
      int col = 0;
      for (int k = 0; k < used; ++k)
        for (int l = k; l < used; ++l) L(e, col++) = (k == l ? 1.0 : 2.0) * delta[e][k].dot(delta[e][l]);
    }
    const Eigen::VectorXd rho = L.colPivHouseholderQr().solve(d2);
    Eigen::VectorXd beta = Eigen::VectorXd::Zero(nb);
    // rho holds β_kβ_l in the order (0,0), (0,1), …, (0,used−1), (1,1), …: β_0 = √β_00, β_k = sign(β_0k)√β_kk.
    beta[0] = std::sqrt(std::abs(rho[0]));
    int diag = used;  // index of (1,1)
    for (int k = 1; k < used; ++k) {
      beta[k] = (rho[k] < 0 ? -1.0 : 1.0) * std::sqrt(std::abs(rho[diag]));
      diag += used - k;
    }
    candidates.push_back(beta);
  }
  if (nb == 4 && np >= 4) {
    // Four null vectors (few points): the products β₁β_k only, β₁ = √β₁₁, β_k = β₁β_k / β₁ (OpenCV's first
    // approximation for N = 4).
    Eigen::MatrixXd L(np, 4);
    for (int e = 0; e < np; ++e)
      for (int k = 0; k < 4; ++k) L(e, k) = (k == 0 ? 1.0 : 2.0) * delta[e][0].dot(delta[e][k]);
    const Eigen::VectorXd rho = L.colPivHouseholderQr().solve(d2);
    Eigen::VectorXd beta = Eigen::VectorXd::Zero(4);
    beta[0] = std::sqrt(std::abs(rho[0]));
    if (beta[0] > 0)
      for (int k = 1; k < 4; ++k) beta[k] = rho[k] / beta[0];
    candidates.push_back(beta);
  }
  for (Eigen::VectorXd beta : candidates) {
    // Gauss–Newton (lightly damped) on Σ_e (‖Σ_k β_k Δ_k‖² − d_e²)².
    for (int it = 0; it < 10; ++it) {
      Eigen::MatrixXd J(np, nb);
      Eigen::VectorXd res(np);
      for (int e = 0; e < np; ++e) {
        Vec3 c = Vec3::Zero();
        for (int k = 0; k < nb; ++k) c += beta[k] * delta[e][k];
        res[e] = c.squaredNorm() - d2[e];
        for (int k = 0; k < nb; ++k) J(e, k) = 2.0 * c.dot(delta[e][k]);
      }
      Eigen::MatrixXd JtJ = J.transpose() * J;
      JtJ.diagonal().array() += 1e-12 * (1.0 + JtJ.diagonal().maxCoeff());
      const Eigen::VectorXd step = JtJ.ldlt().solve(-J.transpose() * res);
      if (!step.allFinite()) break;
      beta += step;
      if (step.norm() <= 1e-14 * (1.0 + beta.norm())) break;
    }
    const Eigen::VectorXd x = N * beta;
    std::vector<Vec3> Xc(n);
    double depth = 0;
    for (int i = 0; i < n; ++i) {
      Xc[i].setZero();
      for (int j = 0; j < nc; ++j) Xc[i] += alpha(i, j) * x.segment<3>(3 * j);
      depth += w[i] * Xc[i][2];
    }
    if (depth < 0)
      for (auto& X : Xc) X = -X;
    Mat3 R;
    Vec3 t;
    AbsoluteOrientation(P, Xc, w, &R, &t);
    if (!R.allFinite() || !t.allFinite()) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) err += w[i] * std::min(NormalisedError(R, t, P[i], q[i]), 1e6);
    out.push_back({R, t, err});
  }
  std::sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.error < b.error; });
  return out;
}

bool EPnPPoints(const std::vector<Vec3>& P, const std::vector<Eigen::Vector2d>& q, const std::vector<double>& w,
                Mat3* R, Vec3* t) {
  const std::vector<Candidate> c = EPnPCandidates(P, q, w);
  if (c.empty()) return false;
  *R = c[0].R;
  *t = c[0].t;
  return true;
}

// The positive-weight points of `subset` (all if empty), as EPnP's inputs.
void Gather(const PnPProblem& p, const Camera& c, const std::vector<int>& subset, std::vector<Vec3>* P,
            std::vector<Eigen::Vector2d>* q, std::vector<double>* w) {
  P->clear();
  q->clear();
  w->clear();
  auto add = [&](int64_t i) {
    if (!(p.weight(i) > 0)) return;
    P->push_back(WorldPoint(p, i));
    q->push_back(Normalised(p, c, i));
    w->push_back(p.weight(i));
  };
  if (subset.empty()) {
    for (int64_t i = 0; i < p.n; ++i) add(i);
  } else {
    for (int i : subset) add(i);
  }
}

// RANSAC over EPnP; false if it found nothing better than EPnP on all points could.
bool Ransac(const PnPProblem& p, const PnPOptions& o, double pose[6]) {
  const Camera cam = CameraOf(p);
  std::vector<int> idx;
  for (int64_t i = 0; i < p.n; ++i)
    if (p.weight(i) > 0) idx.push_back(static_cast<int>(i));
  std::vector<Vec3> P, sp;
  std::vector<Eigen::Vector2d> q, sq;
  std::vector<double> w, sw;
  Gather(p, cam, {}, &P, &q, &w);
  const Principal pa = PrincipalAxes(P, w);
  const int s = pa.lambda[0] <= kPlanar * pa.lambda[2] ? 4 : 5;  // minimal set
  const int m = static_cast<int>(idx.size());
  if (m < 2 * s) return false;  // too few points to tell inliers by consensus (every EPnP candidate is tried)
  Rng rng(Mix(Mix(0x51ED270B, p.p2d, 2 * p.n), p.p3d, 3 * p.n));
  const double thr2 = o.ransac_threshold * o.ransac_threshold;
  double best_cost = kInf;
  std::vector<int> best_inliers;
  std::vector<int> order(m);
  std::iota(order.begin(), order.end(), 0);
  int64_t max_iterations = o.ransac_iterations;
  for (int64_t it = 0; it < max_iterations; ++it) {
    for (int k = 0; k < s; ++k) {
      std::swap(order[k], order[static_cast<int>((k) + rng.Below(static_cast<uint64_t>((m - 1) - (k) + 1)))]);
    }
    sp.clear();
    sq.clear();
    sw.clear();
    for (int k = 0; k < s; ++k) {
      sp.push_back(P[order[k]]);
      sq.push_back(q[order[k]]);
      sw.push_back(1.0);
    }
    Mat3 R;
    Vec3 t;
    if (!EPnPPoints(sp, sq, sw, &R, &t)) continue;
    double cost = 0;
    std::vector<int> inliers;
    for (int i = 0; i < m; ++i) {
      const double e = NormalisedError(R, t, P[i], q[i]);
      cost += w[i] * std::min(e, thr2);
      if (e < thr2) inliers.push_back(i);
    }
    if (cost < best_cost) {
      best_cost = cost;
      best_inliers = inliers;
      PoseFromRotation(R, t, pose);
      const double ratio = static_cast<double>(inliers.size()) / m;
      const double all_in = std::pow(ratio, s);
      if (all_in >= 1.0) {
        max_iterations = std::min<int64_t>(max_iterations, it + 1);
      } else if (all_in > 0) {
        const double needed = std::log(1.0 - o.ransac_confidence) / std::log(1.0 - all_in);
        max_iterations = std::min<int64_t>(max_iterations, static_cast<int64_t>(std::ceil(needed)));
      }
    }
  }
  if (best_cost == kInf) return false;
  if (static_cast<int>(best_inliers.size()) >= s) {
    std::vector<int> subset;
    for (int i : best_inliers) subset.push_back(idx[i]);
    double refit[6];
    if (EPnP(p, subset, refit)) std::copy(refit, refit + 6, pose);
  }
  return true;
}

// ---- The gradient in extended precision (the final polish) ---------------------------------------------
//
// In double, the gradient at the minimum is a sum of terms that cancel; its rounding error u·Σ_i |w_i ∇φ_i|,
// through H⁻¹, blurs the minimiser by up to κ(H)·u (1e-12 on an outlier or a narrow field of view): the forward
// would be a noisy function of the data at that level, and finite differences of it useless below ~1e-6. The
// same gradient in long double, followed by Newton steps with the double Hessian, pins the minimiser to the
// rounding of its double representation.

using Extended = long double;

// ∂φ/∂X at the camera point X (extended precision; the same formulas as EvalTerm's first order). False where φ
// is undefined.
bool ExtendedTermGradient(const PnPProblem& p, const Camera& c, const Extended X[3], const double* q, Extended g[3]) {
  using std::sqrt;
  if (p.objective == PnPObjective::kCosine) {
    const Extended m[3] = {(Extended(q[0]) - c.cx) / c.fx, (Extended(q[1]) - c.cy) / c.fy, 1};
    const Extended mn = sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]);
    const Extended rho = sqrt(X[0] * X[0] + X[1] * X[1] + X[2] * X[2]);
    if (!(rho > 0)) return false;
    Extended e[3], n[3], half = 0;
    for (int k = 0; k < 3; ++k) {
      n[k] = X[k] / rho;
      e[k] = m[k] / mn - n[k];
      half += e[k] * e[k];
    }
    half *= 0.5L;
    for (int k = 0; k < 3; ++k) g[k] = -(e[k] + half * n[k]) / rho;
    return true;
  }
  if (X[2] == 0) return false;
  const Extended inv = 1 / X[2];
  const Extended u = X[0] * inv, v = X[1] * inv;
  const Extended z0 = c.fx * u + c.cx - q[0], z1 = c.fy * v + c.cy - q[1];
  const Extended s = z0 * z0 + z1 * z1;
  Extended rho1 = 1;
  if (p.objective == PnPObjective::kReprojHuber) {
    rho1 = s <= Extended(p.alpha) * p.alpha ? Extended(0.5) : p.alpha / (2 * sqrt(s));
  }
  // ∇s = 2 (z0 ∇π₀ + z1 ∇π₁), ∇π₀ = fx/X₃ (1, 0, −u), ∇π₁ = fy/X₃ (0, 1, −v).
  const Extended k0 = 2 * rho1 * z0 * c.fx * inv, k1 = 2 * rho1 * z1 * c.fy * inv;
  g[0] = k0;
  g[1] = k1;
  g[2] = -(k0 * u + k1 * v);
  return true;
}

// ∇f(y) in extended precision; false where f is undefined.
bool ExtendedGradient(const PnPProblem& p, const double pose[6], Vec6* gradient) {
  using J1 = ceres::Jet<Extended, 3>;
  J1 rj[3];
  for (int k = 0; k < 3; ++k) rj[k] = J1(Extended(pose[k]), k);
  J1 R[9];
  AngleAxisToRotationMatrix(rj, R);
  const Camera cam = CameraOf(p);
  Extended g[6] = {0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < p.n; ++i) {
    const double w = p.weight(i);
    if (w == 0) continue;
    const double* P = p.p3d + 3 * i;
    Extended X[3], dX[3][3];  // X and ∂X/∂r_a
    for (int row = 0; row < 3; ++row) {
      X[row] = pose[3 + row];
      for (int a = 0; a < 3; ++a) dX[a][row] = 0;
      for (int col = 0; col < 3; ++col) {
        const J1& e = R[3 * row + col];
        X[row] += e.a * P[col];
        for (int a = 0; a < 3; ++a) dX[a][row] += e.v[a] * P[col];
      }
    }
    Extended gX[3];
    if (!ExtendedTermGradient(p, cam, X, p.p2d + 2 * i, gX)) return false;
    for (int a = 0; a < 3; ++a) g[a] += w * (gX[0] * dX[a][0] + gX[1] * dX[a][1] + gX[2] * dX[a][2]);
    for (int k = 0; k < 3; ++k) g[3 + k] += w * gX[k];
  }
  for (int k = 0; k < 6; ++k) (*gradient)[k] = static_cast<double>(g[k]);
  return true;
}

// Newton steps y ← y − H⁻¹ ∇f(y) with the extended gradient (minimum-norm on a singular H, as StepResidual),
// from a refined pose. Returns the last step relative to the pose.
double PolishExtended(const PnPProblem& p, double pose[6]) {
  double last = 0;
  for (int iteration = 0; iteration < 3; ++iteration) {
    Vec6 g;
    Eigen::Matrix<double, 6, 6, Eigen::RowMajor> Hr;
    if (!std::isfinite(PnPObjectiveValue(p, pose, g.data(), Hr.data())) || !ExtendedGradient(p, pose, &g)) break;
    const Mat6 H = Hr;
    const Vec6 d = H.diagonal().cwiseAbs();
    const double top = d.maxCoeff();
    if (!(top > 0)) break;
    Vec6 sc;
    for (int k = 0; k < 6; ++k) sc[k] = 1.0 / std::sqrt(std::max(d[k], 1e-300 + 1e-14 * top));
    const Mat6 Hs = sc.asDiagonal() * H * sc.asDiagonal();
    const Vec6 step = sc.asDiagonal() * Hs.completeOrthogonalDecomposition().solve(Vec6(sc.asDiagonal() * g));
    if (!step.allFinite()) break;
    last = 0;
    for (int k = 0; k < 6; ++k) {
      pose[k] -= step[k];
      last = std::max(last, std::abs(step[k]) / (1.0 + std::abs(pose[k])));
    }
    if (last <= 1e-16) break;
  }
  return last;
}

// Newton step relative to the pose: max_k |(H⁻¹g)_k| / (1 + |y_k|) (minimum-norm on a singular H).
double StepResidual(const Mat6& H, const Vec6& g, const double pose[6]) {
  const Vec6 d = H.diagonal().cwiseAbs();
  const double top = d.maxCoeff();
  if (!(top > 0)) return g.cwiseAbs().maxCoeff() > 0 ? kInf : 0.0;
  Vec6 s;
  for (int k = 0; k < 6; ++k) s[k] = 1.0 / std::sqrt(std::max(d[k], 1e-300 + 1e-14 * top));
  const Mat6 Hs = s.asDiagonal() * H * s.asDiagonal();
  const Vec6 step = s.asDiagonal() * Hs.completeOrthogonalDecomposition().solve(s.asDiagonal() * g);
  double r = 0;
  for (int k = 0; k < 6; ++k) r = std::max(r, std::abs(step[k]) / (1.0 + std::abs(pose[k])));
  return r;
}

}  // namespace

PnPObjective ParsePnPObjective(const std::string& name) {
  if (name == "reproj") return PnPObjective::kReproj;
  if (name == "reproj_huber") return PnPObjective::kReprojHuber;
  if (name == "cosine") return PnPObjective::kCosine;
  throw InvalidInput("unknown PnP objective '" + name + "' (reproj, reproj_huber, cosine)");
}

const char* PnPObjectiveName(PnPObjective objective) {
  switch (objective) {
    case PnPObjective::kReproj:
      return "reproj";
    case PnPObjective::kReprojHuber:
      return "reproj_huber";
    case PnPObjective::kCosine:
      return "cosine";
  }
  return "?";
}

void PnPOptions::Validate() const {
  if (ransac_iterations < 0) throw InvalidInput("PnP: ransac_iterations must be >= 0");
  if (!(ransac_threshold > 0)) throw InvalidInput("PnP: ransac_threshold must be > 0");
  if (!(ransac_confidence > 0 && ransac_confidence < 1)) throw InvalidInput("PnP: ransac_confidence must be in (0, 1)");
  if (max_iterations < 1) throw InvalidInput("PnP: max_iterations must be >= 1");
  if (!(tolerance > 0) || !(failure_residual >= tolerance)) {
    throw InvalidInput("PnP: need 0 < tolerance <= failure_residual");
  }
}

void ValidatePnPProblem(const PnPProblem& p) {
  if (p.n < 4) {
    throw InvalidInput("node 'pnp' needs at least 4 correspondences, got N = " + std::to_string(p.n));
  }
  if (p.K && !(p.K[0] > 0 && p.K[1] > 0)) {
    throw InvalidInput("node 'pnp': input 'K' must have focal lengths fx, fy > 0, got fx = " + FormatDouble(p.K[0]) +
                       ", fy = " + FormatDouble(p.K[1]));
  }
  int positive = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    const double w = p.weight(i);
    if (w < 0) {
      throw InvalidInput("node 'pnp': input 'w' must be >= 0, got " + FormatDouble(w) + " at index " +
                         std::to_string(i));
    }
    if (w > 0) ++positive;
  }
  if (positive < 4) {
    throw InvalidInput("node 'pnp' needs at least 4 correspondences with positive weight, got " +
                       std::to_string(positive));
  }
  std::vector<Vec3> P;
  std::vector<double> w;
  for (int64_t i = 0; i < p.n; ++i) {
    if (p.weight(i) > 0) {
      P.push_back(WorldPoint(p, i));
      w.push_back(p.weight(i));
    }
  }
  const Principal pa = PrincipalAxes(P, w);
  if (!(pa.lambda[2] > 0) || pa.lambda[1] <= kCollinear * pa.lambda[2]) {
    throw InvalidInput(
        "node 'pnp': the 3-D points (of positive weight) are collinear or coincide: the rotation about "
        "their line is not determined");
  }
}

bool EPnP(const PnPProblem& p, const std::vector<int>& subset, double pose[6]) {
  std::vector<Vec3> P;
  std::vector<Eigen::Vector2d> q;
  std::vector<double> w;
  Gather(p, CameraOf(p), subset, &P, &q, &w);
  Mat3 R;
  Vec3 t;
  if (!EPnPPoints(P, q, w, &R, &t)) return false;
  PoseFromRotation(R, t, pose);
  return true;
}

double PnPObjectiveValue(const PnPProblem& p, const double pose[6], double* gradient, double* hessian, double* scale) {
  const Camera cam = CameraOf(p);
  const int order = hessian ? 2 : (gradient || scale) ? 1 : 0;
  RotationDerivatives D;
  if (order > 0) {
    Rotation(pose, &D);
  } else {
    D.R = RotationMatrix(pose);
  }
  const Vec3 t(pose[3], pose[4], pose[5]);
  double f = 0;
  Vec6 g = Vec6::Zero(), sc = Vec6::Zero();
  Mat6 H = Mat6::Zero();
  Term term;
  Eigen::Matrix<double, 3, 6> J;
  J.rightCols<3>().setIdentity();
  for (int64_t i = 0; i < p.n; ++i) {
    const double w = p.weight(i);
    if (w == 0) continue;
    const Vec3 P = WorldPoint(p, i);
    const Vec3 X = D.R * P + t;
    if (!EvalTerm(p, cam, X, p.p2d + 2 * i, order, &term)) return kInf;
    f += w * term.value;
    if (order == 0) continue;
    for (int a = 0; a < 3; ++a) J.col(a) = D.dR[a] * P;
    const Vec6 gi = J.transpose() * term.g;
    g += w * gi;
    sc += (w * gi).cwiseAbs();
    if (order < 2) continue;
    H.noalias() += w * (J.transpose() * term.H * J);
    for (int a = 0; a < 3; ++a)
      for (int b = a; b < 3; ++b) {
        const double h = w * term.g.dot(D.d2R[a][b] * P);
        H(a, b) += h;
        if (b != a) H(b, a) += h;
      }
  }
  if (gradient) std::copy(g.data(), g.data() + 6, gradient);
  if (hessian) {
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 6; ++b) hessian[6 * a + b] = H(a, b);
  }
  if (scale) *scale = sc.maxCoeff();
  return f;
}

RefineResult RefinePose(const PnPProblem& p, const PnPOptions& o, double pose[6]) {
  RefineResult result;
  Vec6 g, g_trial;
  Eigen::Matrix<double, 6, 6, Eigen::RowMajor> H, H_trial;
  double f = PnPObjectiveValue(p, pose, g.data(), H.data());
  if (!std::isfinite(f)) {
    result.f = f;
    result.residual = kInf;
    return result;
  }
  double mu = 1e-3, nu = 2.0;
  double y_trial[6];
  result.residual = StepResidual(H, g, pose);
  for (int it = 0; it < o.max_iterations && result.residual > o.tolerance; ++it) {
    ++result.iterations;
    Vec6 d = H.diagonal().cwiseAbs();
    const double top = d.maxCoeff();
    d = d.cwiseMax(1e-12 * top + 1e-300);
    Mat6 A = H;
    A.diagonal() += mu * d;
    const Eigen::LLT<Mat6> llt(A);
    if (llt.info() != Eigen::Success) {
      mu = std::max(mu * nu, 1e-8);
      nu *= 2;
      continue;
    }
    const Vec6 step = llt.solve(-g);
    for (int k = 0; k < 6; ++k) y_trial[k] = pose[k] + step[k];
    const double f_trial = PnPObjectiveValue(p, y_trial, g_trial.data(), H_trial.data());
    const double predicted = -(g.dot(step) + 0.5 * step.dot(H * step));
    // Accept a decrease of f. Once the predicted decrease is below what rounding blurs in f (the last Newton
    // steps), f no longer tells better from worse: accept a smaller gradient instead, if f did not visibly grow.
    const double blur = 1e-10 * std::abs(f);
    const bool rounding = predicted <= blur;
    const bool better =
        f_trial < f || (rounding && f_trial <= f + blur && g_trial.cwiseAbs().maxCoeff() < g.cwiseAbs().maxCoeff());
    if (std::isfinite(f_trial) && better) {
      const double rho = predicted > 0 ? (f - f_trial) / predicted : 1.0;
      mu *= std::max(1.0 / 3.0, 1.0 - std::pow(2.0 * rho - 1.0, 3));
      nu = 2.0;
      std::copy(y_trial, y_trial + 6, pose);
      f = f_trial;
      g = g_trial;
      H = H_trial;
      result.residual = StepResidual(H, g, pose);
    } else {
      mu = std::max(mu * nu, 1e-12);
      nu *= 2;
      if (mu > 1e20) break;  // no descent left: at a minimum to rounding, or stuck
    }
  }
  result.f = f;
  return result;
}

void InitialPose(const PnPProblem& p, const PnPOptions& o, double pose[6]) {
  double a[6], b[6];
  const bool have_a = EPnP(p, {}, a);
  const bool have_b = o.ransac && o.ransac_iterations > 0 && Ransac(p, o, b);
  if (!have_a && !have_b) {
    throw NumericalFailure("node 'pnp': no initial pose (EPnP failed on a degenerate configuration)");
  }
  const double fa = have_a ? PnPObjectiveValue(p, a) : kInf, fb = have_b ? PnPObjectiveValue(p, b) : kInf;
  std::copy(fa <= fb ? a : b, (fa <= fb ? a : b) + 6, pose);
}

void SolvePnP(const PnPProblem& p, const PnPOptions& o, double pose[6], ProblemStatus* s) {
  // Starts: EPnP on all points (its best candidate; every candidate when there are few points, where EPnP's
  // null space is wide and its best candidate may sit in the wrong basin, each also depth-reversed: with four
  // points every EPnP candidate can land in the basin of the mirrored pose), then RANSAC's.
  std::vector<std::array<double, 6>> starts;
  auto add = [&](const double* y) {
    for (const auto& other : starts) {
      bool same = true;
      for (int k = 0; k < 6 && same; ++k) same = std::abs(y[k] - other[k]) <= 1e-9 * (1 + std::abs(other[k]));
      if (same) return;
    }
    std::array<double, 6> a;
    std::copy(y, y + 6, a.begin());
    starts.push_back(a);
  };
  {
    std::vector<Vec3> P;
    std::vector<Eigen::Vector2d> q;
    std::vector<double> w;
    Gather(p, CameraOf(p), {}, &P, &q, &w);
    const std::vector<Candidate> candidates = EPnPCandidates(P, q, w);
    const size_t use = P.size() < kFewPoints ? candidates.size() : std::min<size_t>(1, candidates.size());
    for (size_t c = 0; c < use; ++c) {
      double y[6];
      PoseFromRotation(candidates[c].R, candidates[c].t, y);
      add(y);
      if (P.size() < kFewPoints) {
        // The depth-reversed start: the camera-frame points mirrored in the plane through their centroid normal
        // to the viewing ray (the same image up to perspective), fitted by a rotation.
        std::vector<Vec3> X(P.size());
        Vec3 centre = Vec3::Zero();
        double W = 0;
        for (size_t i = 0; i < P.size(); ++i) {
          X[i] = candidates[c].R * P[i] + candidates[c].t;
          centre += w[i] * X[i];
          W += w[i];
        }
        centre /= W;
        const Vec3 ray = centre.normalized();
        for (auto& x : X) x -= 2.0 * (x - centre).dot(ray) * ray;
        Mat3 R;
        Vec3 t;
        AbsoluteOrientation(P, X, w, &R, &t);
        if (R.allFinite() && t.allFinite()) {
          PoseFromRotation(R, t, y);
          add(y);
        }
      }
    }
  }
  double ransac_pose[6];
  if (o.ransac && o.ransac_iterations > 0 && Ransac(p, o, ransac_pose)) add(ransac_pose);
  if (starts.empty()) throw NumericalFailure("node 'pnp': no initial pose (EPnP failed on a degenerate configuration)");
  std::vector<std::array<double, 6>> result = starts;
  std::vector<RefineResult> refined(starts.size());
  int best = -1, iterations = 0;
  for (size_t k = 0; k < starts.size(); ++k) {
    refined[k] = RefinePose(p, o, result[k].data());
    iterations += refined[k].iterations;
    if (!std::isfinite(refined[k].f)) continue;
    if (best < 0 || refined[k].f < refined[best].f) best = static_cast<int>(k);
  }
  if (best < 0 || !(refined[best].residual <= o.failure_residual)) {
    throw NumericalFailure("node 'pnp': Levenberg–Marquardt did not converge (optimality residual " +
                           FormatDouble(best < 0 ? kInf : refined[best].residual) + ")");
  }
  std::copy(result[best].begin(), result[best].end(), pose);
  PolishExtended(p, pose);
  CanonicalAngleAxis(pose);
  s->residual = refined[best].residual;
  s->iterations = iterations;
  for (size_t k = 0; k < starts.size(); ++k) {
    if (static_cast<int>(k) == best || !(refined[k].residual <= o.failure_residual)) continue;
    double diff = 0;
    for (int c = 0; c < 6; ++c) diff = std::max(diff, std::abs(result[k][c] - pose[c]) / (1 + std::abs(pose[c])));
    if (diff > 1e-6) {
      s->Set(kNotCertified,
             "the starts (EPnP, RANSAC) reached different local minima (f = " + FormatDouble(refined[best].f) +
                 " and " + FormatDouble(refined[k].f) + "): the lowest is returned");
      break;
    }
  }
  // What the answer is: a singular Hessian (a flat direction), a point at the Huber threshold.
  Vec6 g;
  Eigen::Matrix<double, 6, 6, Eigen::RowMajor> H;
  PnPObjectiveValue(p, pose, g.data(), H.data());
  const Vec6 d = H.diagonal().cwiseAbs();
  Vec6 sc;
  for (int k = 0; k < 6; ++k) sc[k] = 1.0 / std::sqrt(std::max(d[k], 1e-300));
  const Mat6 Hs = sc.asDiagonal() * Mat6(H) * sc.asDiagonal();
  const Vec6 eig = Eigen::SelfAdjointEigenSolver<Mat6>(Hs, Eigen::EigenvaluesOnly).eigenvalues();
  if (!(eig[0] > 1e-10 * eig[5])) {
    s->Set(kNonUnique, "the Hessian at the solution is singular: the pose is not locally unique");
  }
  if (p.objective == PnPObjective::kReprojHuber) {
    const Camera cam = CameraOf(p);
    const Mat3 R = RotationMatrix(pose);
    const Vec3 t(pose[3], pose[4], pose[5]);
    for (int64_t i = 0; i < p.n; ++i) {
      if (!(p.weight(i) > 0)) continue;
      const Vec3 X = R * WorldPoint(p, i) + t;
      const double z0 = cam.fx * X[0] / X[2] + cam.cx - p.p2d[2 * i],
                   z1 = cam.fy * X[1] / X[2] + cam.cy - p.p2d[2 * i + 1];
      if (std::abs(std::sqrt(z0 * z0 + z1 * z1) - p.alpha) <= 1e-9 * p.alpha) {
        s->Set(kNonSmooth,
               "correspondence " + std::to_string(i) + " sits at the Huber threshold: one-sided derivatives");
        break;
      }
    }
  }
}

void PnPVjp(const PnPProblem& p, const double pose[6], const double v[6], double* grad_p2d, double* grad_p3d,
            double* grad_w, ProblemStatus* s) {
  Eigen::Matrix<double, 6, 6, Eigen::RowMajor> Hr;
  Vec6 g;
  PnPObjectiveValue(p, pose, g.data(), Hr.data());
  const Mat6 H = Hr;
  // u = H⁻¹ v on the Jacobi-scaled system (rotation in radians, translation in the world's units).
  const Vec6 d = H.diagonal().cwiseAbs();
  const double top = d.maxCoeff();
  Vec6 sc;
  for (int k = 0; k < 6; ++k) sc[k] = 1.0 / std::sqrt(std::max(d[k], 1e-300 + 1e-14 * top));
  Eigen::MatrixXd z;
  const Eigen::MatrixXd Hs = sc.asDiagonal() * H * sc.asDiagonal();
  const Eigen::MatrixXd rhs = sc.asDiagonal() * Eigen::Map<const Vec6>(v);
  if (!SolveSymmetric(Hs, rhs, &z, 1e-12)) {
    s->Set(kNonRegular, "singular Hessian at the pose: minimum-norm least-squares gradient");
  }
  const Vec6 u = sc.asDiagonal() * Vec6(z.col(0));
  RotationDerivatives D;
  Rotation(pose, &D);
  const Camera cam = CameraOf(p);
  const Vec3 t(pose[3], pose[4], pose[5]), ut(u[3], u[4], u[5]);
  const Mat3 Ru = u[0] * D.dR[0] + u[1] * D.dR[1] + u[2] * D.dR[2];
  Term term;
  for (int64_t i = 0; i < p.n; ++i) {
    const double w = p.weight(i);
    const Vec3 P = WorldPoint(p, i);
    const Vec3 X = D.R * P + t;
    if (!EvalTerm(p, cam, X, p.p2d + 2 * i, 2, &term)) {
      if (w == 0) continue;
      throw NumericalFailure("node 'pnp': correspondence " + std::to_string(i) + " is at depth 0 of the solved pose");
    }
    const Vec3 dX = Ru * P + ut;  // J_X u
    if (grad_w) grad_w[i] -= term.g.dot(dX);
    if (w == 0) continue;
    if (grad_p2d) {
      const Eigen::Vector2d dq = -w * term.Hq.transpose() * dX;
      grad_p2d[2 * i] += dq[0];
      grad_p2d[2 * i + 1] += dq[1];
    }
    if (grad_p3d) {
      const Vec3 dP = -w * (Ru.transpose() * term.g + D.R.transpose() * (term.H * dX));
      for (int k = 0; k < 3; ++k) grad_p3d[3 * i + k] += dP[k];
    }
  }
}

}  // namespace ddn::geometry
