// The `pnp` node: weighted perspective-n-point, pose = argmin_y Σ_i w_i φ(R(r) P_i + t, q_i) (pnp_solver.h has
// the objectives, the forward and the gradient). Inputs p2d (N, 2), p3d (N, 3), optional w (N) (default 1) and
// optional K (4) = (fx, fy, cx, cy) (absent: p2d is in normalised image coordinates); output pose (6): the
// angle-axis rotation, then the translation, mapping world points into the camera frame.
//
// The declarative form below (one scalar-generic term per correspondence, the rotation of rotation.h) is what the
// generic engine solves and differentiates (`ddn eval --generic`): Ceres L-BFGS from the node's initialisation,
// a Newton polish, and the implicit backward with second derivatives by nested Jets. The tests hold the
// specialised forward (EPnP + RANSAC + Levenberg–Marquardt) and closed-form backward against it.
#include <algorithm>
#include <cmath>

#include "ddn/declarative.h"
#include "ddn/random.h"
#include "nodes/geometry/pnp_solver.h"
#include "nodes/geometry/rotation.h"

namespace ddn::geometry {
namespace {

class PnPNode : public DeclarativeNode<PnPNode> {
 public:
  static NodeSpec Spec() {
    return {"pnp",
            "weighted perspective-n-point: pose = argmin Σ_i w_i φ(R(r) P_i + t, q_i) (reproj, reproj_huber, cosine)",
            {{"objective",
              ParamType::kChoice,
              "reproj",
              "φ: reproj ‖π(X) − q‖², reproj_huber ρ_α(‖π(X) − q‖), cosine 1 − bᵀX/‖X‖",
              {"reproj", "reproj_huber", "cosine"}},
             {"alpha", ParamType::kFloat, "1", "Huber threshold α > 0 of reproj_huber, in the units of p2d"},
             {"ransac_iterations", ParamType::kInt, "100",
              "most RANSAC samples of the initialisation (0: EPnP on all points only)"},
             {"ransac_threshold", ParamType::kFloat, "0.02",
              "RANSAC inlier threshold, normalised image units (pixels / focal)"}},
            {{"p2d", {"N", "2"}, "image points q_i (pixels with K, normalised coordinates without)"},
             {"p3d", {"N", "3"}, "world points P_i"},
             {"w", {"N"}, "weights w_i >= 0 (default 1)", true, true},
             {"K", {"4"}, "intrinsics (fx, fy, cx, cy); absent: p2d is normalised", false, true}},
            {{"pose", {"6"}, "angle-axis rotation r, then translation t: X = R(r) P + t"}}};
  }
  explicit PnPNode(const Params& p)
      : objective_(ParsePnPObjective(p.GetString("objective"))), alpha_(p.RequirePositive("alpha")) {
    options_.ransac_iterations = p.RequireIntInRange("ransac_iterations", 0, 1000000);
    options_.ransac_threshold = p.RequirePositive("ransac_threshold");
  }

  // ---- declarative form ----------------------------------------------------------------------------------
  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* y) const {
    using std::sqrt;
    const T* q = in[0];
    T X[3];
    AngleAxisRotatePoint(y, in[1], X);
    for (int k = 0; k < 3; ++k) X[k] += y[3 + k];
    const bool intrinsics = in.has(3);
    const T fx = intrinsics ? in[3][0] : Constant<T>(1.0), fy = intrinsics ? in[3][1] : Constant<T>(1.0);
    const T cx = intrinsics ? in[3][2] : Constant<T>(0.0), cy = intrinsics ? in[3][3] : Constant<T>(0.0);
    T phi;
    if (objective_ == PnPObjective::kCosine) {
      // 1 − bᵀn = ½‖b − n‖² (b, n unit): no cancellation at the minimum.
      const T m0 = (q[0] - cx) / fx, m1 = (q[1] - cy) / fy;
      const T mn = sqrt(m0 * m0 + m1 * m1 + Constant<T>(1.0));
      const T xn = sqrt(X[0] * X[0] + X[1] * X[1] + X[2] * X[2]);
      const T e0 = m0 / mn - X[0] / xn, e1 = m1 / mn - X[1] / xn, e2 = Constant<T>(1.0) / mn - X[2] / xn;
      phi = Constant<T>(0.5) * (e0 * e0 + e1 * e1 + e2 * e2);
    } else {
      const T z0 = fx * X[0] / X[2] + cx - q[0], z1 = fy * X[1] / X[2] + cy - q[1];
      const T s = z0 * z0 + z1 * z1;
      if (objective_ == PnPObjective::kReproj) {
        phi = s;
      } else if (Value(s) <= alpha_ * alpha_) {
        phi = Constant<T>(0.5) * s;
      } else {
        phi = Constant<T>(alpha_) * (sqrt(s) - Constant<T>(0.5 * alpha_));
      }
    }
    return in.has(2) ? in[2][0] * phi : phi;
  }
  // The generic solve starts where the specialised one does.
  void InitialGuess(const ProblemData& p, double* y) const { InitialPose(Problem(p), options_, y); }

  // ---- specialised forward and backward ----------------------------------------------------------------
  void Validate(const ProblemData& p) const override { ValidatePnPProblem(Problem(p)); }
  void Solve(const ProblemData& p, ProblemStatus* s) const override { SolvePnP(Problem(p), options_, p.outputs[0], s); }
  void Backward(const ProblemData& p, ProblemStatus* s) const override {
    PnPVjp(Problem(p), p.outputs[0], p.grad_outputs[0], p.grad_inputs[0], p.grad_inputs[1], p.grad_inputs[2], s);
  }
  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  PnPProblem Problem(const ProblemData& p) const {
    PnPProblem q;
    q.n = p.Dim("N");
    q.p2d = p.inputs[0];
    q.p3d = p.inputs[1];
    q.w = p.inputs[2];
    q.K = p.inputs[3];
    q.objective = objective_;
    q.alpha = alpha_;
    return q;
  }

  PnPObjective objective_;
  double alpha_;
  PnPOptions options_;
};

// Synthetic problems: a camera 3–4 units in front of points in [−1, 1]³ (or the plane z = 0), a random rotation,
// image points with Gaussian noise and, optionally, one gross outlier. Close enough for strong perspective: a
// distant planar scene has two nearly equal minima (the flip ambiguity), between which finite differences would
// jump.
struct Synthetic {
  int batch = 2, points = 7;
  bool tetrahedron = false;               // four points at alternate corners of the cube (with points = 4)
  const double* rotation_mean = nullptr;  // rotations around this one (else around 0)
  double rotation = 0.6;                  // standard deviation of each angle-axis component
  double noise = 0.01;                    // normalised image units
  double outlier = 0.0;                   // displacement of point 0 (normalised), 0: none
  bool planar = false;
  bool intrinsics = false;  // p2d in pixels with K = (500, 520, 320, 240)
  bool weights = true;
};

CheckCase MakeCase(const std::string& name, const Synthetic& s, Rng* rng) {
  const int64_t b = s.batch, n = s.points;
  Tensor p2d({b, n, 2}), p3d({b, n, 3}), w({b, n}), K({b, 4});
  const double k[4] = {500.0, 520.0, 320.0, 240.0};
  for (int64_t e = 0; e < b; ++e) {
    double r[3] = {s.rotation * rng->Normal(), s.rotation * rng->Normal(), s.rotation * rng->Normal()};
    if (s.rotation_mean)
      for (int a = 0; a < 3; ++a) r[a] += s.rotation_mean[a];
    const double t[3] = {0.3 * rng->Normal(), 0.3 * rng->Normal(), 3.5 + 0.5 * rng->Uniform(-1.0, 1.0)};
    for (int64_t i = 0; i < n; ++i) {
      double* P = p3d.problem(e) + 3 * i;
      P[0] = rng->Uniform(-1.0, 1.0);
      P[1] = rng->Uniform(-1.0, 1.0);
      P[2] = s.planar ? 0.0 : rng->Uniform(-1.0, 1.0);
      if (s.tetrahedron) {
        constexpr double kCorners[4][3] = {{-1, -1, -1}, {1, -1, 1}, {-1, 1, 1}, {1, 1, -1}};
        for (int c = 0; c < 3; ++c) P[c] = kCorners[i % 4][c] + 0.1 * rng->Uniform(-1.0, 1.0);
      }
      double X[3];
      AngleAxisRotatePoint(r, P, X);
      for (int c = 0; c < 3; ++c) X[c] += t[c];
      double u = X[0] / X[2] + s.noise * rng->Normal(), v = X[1] / X[2] + s.noise * rng->Normal();
      if (i == 0 && s.outlier > 0) {
        const double angle = 6.283185307179586 * 0.5 * (rng->Uniform(-1.0, 1.0) + 1.0);
        u += s.outlier * std::cos(angle);
        v += s.outlier * std::sin(angle);
      }
      p2d.problem(e)[2 * i] = s.intrinsics ? k[0] * u + k[2] : u;
      p2d.problem(e)[2 * i + 1] = s.intrinsics ? k[1] * v + k[3] : v;
      w.problem(e)[i] = rng->Uniform(0.5, 1.5);
    }
    std::copy(k, k + 4, K.problem(e));
  }
  CheckCase c{name, {{"p2d", p2d}, {"p3d", p3d}}};
  if (s.weights) c.inputs["w"] = w;
  if (s.intrinsics) c.inputs["K"] = K;
  return c;
}

std::vector<CheckCase> PnPNode::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  // For reproj_huber, noise and outliers on the scale of α (α is in the units of p2d: normalised, or pixels for
  // the case with K, focal length ~500): the inliers well inside the quadratic zone, the outlier well beyond,
  // nobody near the kink. On the image's scale otherwise.
  const bool huber = objective_ == PnPObjective::kReprojHuber;
  Synthetic base;
  base.noise = huber ? std::min(0.01, 0.1 * alpha_) : 0.01;
  std::vector<CheckCase> cases;
  cases.push_back(MakeCase("random", base, &rng));
  Synthetic unweighted = base;
  unweighted.weights = false;
  unweighted.points = 6;
  cases.push_back(MakeCase("unweighted", unweighted, &rng));
  // A plane seen at about 35° (random planar scenes are often seen nearly frontally, where the flip ambiguity
  // leaves two minima of almost equal f).
  static constexpr double kTilt[3] = {0.5, -0.3, 0.2};
  Synthetic planar = base;
  planar.planar = true;
  planar.points = 12;
  planar.rotation = 0.1;
  planar.rotation_mean = kTilt;
  cases.push_back(MakeCase("planar", planar, &rng));
  Synthetic small = base;
  small.rotation = 1e-3;  // θ² ~ 1e-6: the series branch of rotation.h
  cases.push_back(MakeCase("small_rotation", small, &rng));
  // In pixels (K given) the checker's step is 10⁻⁴ of a coordinate (≈ 0.03 px): a Huber threshold α below a
  // pixel would be crossed by the step itself, so reproj_huber gets this case only for α ≥ 0.5 (px).
  if (!huber || alpha_ >= 0.5) {
    Synthetic pixels = base;
    pixels.intrinsics = true;
    pixels.noise = huber ? std::min(0.002, 0.1 * alpha_ / 500.0) : 0.002;
    cases.push_back(MakeCase("pixels", pixels, &rng));
  }
  Synthetic outlier = base;
  // For a small α the outlier sits in Huber's linear zone; for a large one (α = 1 is 45° of view) it stays in
  // the quadratic zone: an outlier far beyond α = 1 would be 80° off, with several local minima.
  outlier.outlier = huber && alpha_ <= 0.06 ? 5.0 * alpha_ : 0.3;
  outlier.points = 12;  // enough for RANSAC (at least twice its sample)
  cases.push_back(MakeCase("outlier", outlier, &rng));
  // Four points, the fewest allowed (a tetrahedron, little noise: P4P's other local minima lie far above).
  Synthetic four = base;
  four.points = 4;
  four.tetrahedron = true;
  four.noise = std::min(base.noise, 0.003);
  cases.push_back(MakeCase("four_points", four, &rng));
  return cases;
}

}  // namespace
DDN_REGISTER_NODE(PnPNode);
}  // namespace ddn::geometry
