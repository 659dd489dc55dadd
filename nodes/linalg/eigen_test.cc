// Tests of the `eigen` node: the decomposition itself (eigen-equation, orthonormality, order, the sign rule and
// its ties), gradients against finite differences, the closed-form backward against the generic implicit
// backward of the declarative form (each eigenvector a stationary point of −½yᵀSy on the unit sphere),
// repeated eigenvalues (flags, the reference's degenerate-subspace gradient, exactness for subspace losses), bad
// input and the reference library's answers.
#include <gtest/gtest.h>

#include <ceres/sphere_manifold.h>

#include <Eigen/Dense>
#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/declarative.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "tests/compare.h"
#include "tests/reference/fixtures.h"

namespace ddn {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The declarative form of one eigenvector: y = argmin −½ yᵀSy s.t. yᵀy = 1, S = ½(X + Xᵀ) (the minimiser is the
// top eigenvector; every other unit eigenvector is a KKT point, which is all the implicit backward needs).
class EigenvectorForm : public DeclarativeNode<EigenvectorForm> {
 public:
  static NodeSpec Spec() {
    return {
        "eigenvector_form", "−½yᵀSy on the unit sphere", {}, {{"X", {"M", "M"}, "matrix"}}, {{"y", {"M"}, "vector"}}};
  }
  template <typename T>
  T Objective(const Args<T>& in, const T* y) const {
    const int64_t m = in.Dim("M");
    T f = Constant<T>(0.0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < m; ++j) f += Constant<T>(-0.25) * (in[0][i * m + j] + in[0][j * m + i]) * y[i] * y[j];
    return f;
  }
  int NumEqualities(const ProblemData&) const { return 1; }
  template <typename T>
  void Equalities(const Args<T>& in, const T* y, T* h) const {
    T s = Constant<T>(-1.0);
    for (int64_t i = 0; i < in.Dim("M"); ++i) s += y[i] * y[i];
    h[0] = s;
  }
  ceres::Manifold* MakeManifold(const ProblemData& p) const {
    return new ceres::SphereManifold<ceres::DYNAMIC>(static_cast<int>(p.Dim("M")));
  }
  void InitialGuess(const ProblemData& p, double* y) const {
    const int64_t m = p.Dim("M");
    for (int64_t i = 0; i < m; ++i) y[i] = 1.0 / std::sqrt(static_cast<double>(m));
  }
};

Tensor RandomMatrices(int64_t b, int64_t m, Rng* rng) {
  Tensor t({b, m, m});
  for (auto& v : t.values()) v = rng->Normal();
  return t;
}

// Q diag(λ) Qᵀ for a random orthogonal Q.
Tensor WithSpectrum(const std::vector<double>& lambda, Rng* rng) {
  const int64_t m = static_cast<int64_t>(lambda.size());
  Eigen::MatrixXd Z(m, m);
  for (int64_t i = 0; i < m * m; ++i) Z.data()[i] = rng->Normal();
  const Eigen::MatrixXd Q = Eigen::HouseholderQR<Eigen::MatrixXd>(Z).householderQ();
  const Eigen::MatrixXd S = Q * Eigen::Map<const Eigen::VectorXd>(lambda.data(), m).asDiagonal() * Q.transpose();
  Tensor X({1, m, m});
  Eigen::Map<RowMatrix>(X.data(), m, m) = S;
  return X;
}

std::unique_ptr<Node> Eigen(int top_k) {
  return MakeNode("eigen", {{"top_k", std::to_string(top_k)}});
}

TEST(EigenNode, ShapesFollowTopK) {
  const NodeSpec& spec = GetNodeSpec("eigen");
  EXPECT_EQ(spec.outputs[0].name, "vectors");
  EXPECT_EQ(spec.outputs[0].dims, (std::vector<std::string>{"M", "K"}));
  EXPECT_EQ(spec.outputs[1].name, "values");
  Rng rng(1);
  const Tensor X = RandomMatrices(2, 6, &rng);
  EXPECT_EQ(Forward(*Eigen(0), {{"X", X}}).outputs["vectors"].shape(), (Shape{2, 6, 6}));
  EXPECT_EQ(Forward(*Eigen(2), {{"X", X}}).outputs["vectors"].shape(), (Shape{2, 6, 2}));
  EXPECT_EQ(Forward(*Eigen(2), {{"X", X}}).outputs["values"].shape(), (Shape{2, 2}));
}

TEST(EigenNode, ReturnsTheLargestEigenpairsInAscendingOrderWithTheSignRule) {
  Rng rng(2);
  const int64_t m = 7;
  const Tensor X = RandomMatrices(4, m, &rng);
  const ForwardResult all = Forward(*Eigen(0), {{"X", X}});
  for (int k : {1, 3, 7}) {
    const ForwardResult r = Forward(*Eigen(k), {{"X", X}});
    for (int64_t e = 0; e < 4; ++e) {
      const Eigen::Map<const RowMatrix> Xe(X.problem(e), m, m);
      const Eigen::MatrixXd S = 0.5 * (Xe + Xe.transpose());
      const Eigen::Map<const RowMatrix> Y(r.outputs.at("vectors").problem(e), m, k);
      const double* lambda = r.outputs.at("values").problem(e);
      EXPECT_LT((Y.transpose() * Y - Eigen::MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff(), 1e-14);
      for (int c = 0; c < k; ++c) {
        EXPECT_LT((S * Y.col(c) - lambda[c] * Y.col(c)).cwiseAbs().maxCoeff(), 1e-13);
        if (c > 0) {
          EXPECT_LT(lambda[c - 1], lambda[c]);
        }
        Eigen::Index arg;
        Y.col(c).cwiseAbs().maxCoeff(&arg);
        EXPECT_GT(Y(arg, c), 0.0);
        // The same columns as the last k of the full decomposition.
        for (int64_t i = 0; i < m; ++i) EXPECT_EQ(Y(i, c), all.outputs.at("vectors").problem(e)[i * m + (m - k + c)]);
      }
      EXPECT_LT(r.status[e].residual, 1e-14);
      EXPECT_TRUE(r.status[e].ok());
      // The largest eigenvalue is the maximum of the Rayleigh quotient: no unit vector does better.
      const Eigen::VectorXd probe = Eigen::VectorXd::Random(m).normalized();
      EXPECT_LE(probe.dot(S * probe), lambda[k - 1] + 1e-12);
    }
  }
}

// Ties of the sign rule: the first entry of largest magnitude is made positive.
TEST(EigenNode, SignTiesGoToTheFirstEntry) {
  // S = [[0, 1], [1, 0]]: eigenvectors (1, −1)/√2 (λ = −1) and (1, 1)/√2 (λ = 1), each a tie.
  const ForwardResult r = Forward(*Eigen(0), {{"X", Tensor({1, 2, 2}, {0, 1, 1, 0})}});
  const Tensor& Y = r.outputs.at("vectors");  // row-major (2, 2): Y[i*2 + c]
  for (int c = 0; c < 2; ++c) {
    const double a = Y[c], b = Y[2 + c];
    if (std::abs(a) == std::abs(b)) {
      EXPECT_GT(a, 0.0) << "column " << c;
    } else {
      EXPECT_GT(std::abs(a) > std::abs(b) ? a : b, 0.0) << "column " << c;
    }
  }
  EXPECT_NEAR(r.outputs.at("values")[0], -1.0, 1e-15);
  EXPECT_NEAR(r.outputs.at("values")[1], 1.0, 1e-15);
}

TEST(EigenNode, GradientsMatchFiniteDifferences) {
  for (int k : {0, 1, 2, 4}) {
    const auto node = Eigen(k);
    const CheckReport report = CheckGradients(*node);
    EXPECT_TRUE(report.passed) << "top_k " << k << "\n" << report.ToString();
    for (const auto& e : report.entries) EXPECT_EQ(e.flags, 0u) << e.case_name;
  }
}

// As the reference's own gradient checks (tests/testEigenDecomposition.py, eigen_decomposition.py): random
// symmetric matrices of sizes 5, 8 and 16, all eigenvectors and the top one, and for 8 every top_k.
TEST(EigenNode, GradientsMatchFiniteDifferencesAtTheReferenceSizes) {
  Rng rng(11);
  for (int64_t m : {5, 8, 16}) {
    Tensor X = RandomMatrices(2, m, &rng);
    for (int64_t e = 0; e < 2; ++e) {
      Eigen::Map<RowMatrix> Xe(X.problem(e), m, m);
      Xe = (0.5 * (Xe + Xe.transpose())).eval();
    }
    std::vector<int> ks = {0, 1};
    if (m == 8) ks = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int k : ks) {
      const auto node = Eigen(k);
      CheckReport report;
      CheckGradients(*node, {"reference_sizes", {{"X", X}}}, CheckOptions(), &report);
      EXPECT_TRUE(report.passed) << "M " << m << " top_k " << k << "\n" << report.ToString();
    }
  }
}

// The closed-form backward against the generic implicit backward of the declarative form, one eigenvector at a
// time (dL/dX is the sum over the returned eigenvectors), and the generic forward's minimiser against the top
// eigenvector.
TEST(EigenNode, BackwardMatchesTheImplicitGradientOfTheDeclarativeForm) {
  Rng rng(3);
  const int64_t m = 5;
  EigenvectorForm form;
  for (int k : {1, 3, 5}) {
    const auto node = Eigen(k);
    const Tensor X = RandomMatrices(3, m, &rng);
    ForwardResult r = Forward(*node, {{"X", X}});
    Tensor V({3, m, k});
    for (auto& v : V.values()) v = rng.Normal();
    const TensorMap g = Backward(*node, {{"X", X}}, r.outputs, {{"vectors", V}}, &r.status);
    for (int64_t e = 0; e < 3; ++e) {
      Dims dims{{"M", m}};
      std::vector<double> dX(m * m, 0.0);
      for (int c = 0; c < k; ++c) {
        std::vector<double> y(m), v(m);
        for (int64_t i = 0; i < m; ++i) {
          y[i] = r.outputs.at("vectors").problem(e)[i * k + c];
          v[i] = V.problem(e)[i * k + c];
        }
        ProblemData p;
        p.index = e;
        p.dims = &dims;
        p.inputs = {X.problem(e)};
        p.input_shapes = {{m, m}};
        p.outputs = {y.data()};
        p.output_shapes = {{m}};
        p.grad_outputs = {v.data()};
        p.grad_inputs = {dX.data()};
        ProblemStatus s;
        form.GenericBackward(p, &s);
        EXPECT_TRUE(s.ok()) << s.note;
      }
      for (int64_t i = 0; i < m * m; ++i) EXPECT_NEAR(g.at("X").problem(e)[i], dX[i], 1e-10) << "k " << k;
      // The generic forward (L-BFGS on the sphere + KKT polish) finds the top eigenvector, up to sign.
      std::vector<double> top(m);
      ProblemData p;
      p.dims = &dims;
      p.inputs = {X.problem(e)};
      p.input_shapes = {{m, m}};
      p.outputs = {top.data()};
      p.output_shapes = {{m}};
      ProblemStatus s;
      form.GenericSolve(p, &s);
      double dot = 0;
      for (int64_t i = 0; i < m; ++i) dot += top[i] * r.outputs.at("vectors").problem(e)[i * k + (k - 1)];
      EXPECT_NEAR(std::abs(dot), 1.0, 1e-10);
    }
  }
}

// A repeated eigenvalue inside the returned set: flagged, finite, the reference's gradient (couplings between
// the equal eigenvalues dropped), which is exact for a loss of the eigenspace: L = tr(G P), P = Σ_c y_c y_cᵀ over
// the repeated pair, is a smooth function of X, and its finite differences match.
TEST(EigenNode, RepeatedEigenvaluesInsideTheSet) {
  Rng rng(4);
  const Tensor X = WithSpectrum({-1.0, 0.5, 2.0, 2.0, 3.5}, &rng);
  const auto node = Eigen(3);  // returns λ = 2, 2, 3.5
  ForwardResult r = Forward(*node, {{"X", X}});
  EXPECT_TRUE(r.status[0].flags & kNonUnique) << r.status[0].note;
  const int64_t m = 5, k = 3;
  Eigen::MatrixXd Gs = Eigen::MatrixXd::Random(m, m);
  Gs = 0.5 * (Gs + Gs.transpose()).eval();
  // dL/dy_c = 2 G y_c for the two eigenvectors of λ = 2; 0 for the third.
  Tensor V({1, m, k});
  const Eigen::Map<const RowMatrix> Y(r.outputs.at("vectors").data(), m, k);
  for (int c = 0; c < 2; ++c) {
    const Eigen::VectorXd gy = 2.0 * Gs * Y.col(c);
    for (int64_t i = 0; i < m; ++i) V[i * k + c] = gy[i];
  }
  const TensorMap g = Backward(*node, {{"X", X}}, r.outputs, {{"vectors", V}}, &r.status);
  for (double v : g.at("X").values()) EXPECT_TRUE(std::isfinite(v));
  auto loss = [&](const Tensor& Xp) {
    const ForwardResult rp = Forward(*node, {{"X", Xp}});
    const Eigen::Map<const RowMatrix> Yp(rp.outputs.at("vectors").data(), m, k);
    const Eigen::MatrixXd P = Yp.leftCols(2) * Yp.leftCols(2).transpose();
    return (Gs * P).trace();
  };
  const double h = 1e-5;
  double err = 0, norm = 0;
  for (int64_t j = 0; j < m * m; ++j) {
    Tensor p2 = X, p1 = X, m1 = X, m2 = X;
    p2[j] += 2 * h;
    p1[j] += h;
    m1[j] -= h;
    m2[j] -= 2 * h;
    const double fd = CentralDifference(loss(p2), loss(p1), loss(m1), loss(m2), h);
    err = std::max(err, std::abs(fd - g.at("X")[j]));
    norm = std::max(norm, std::abs(fd));
  }
  EXPECT_LT(err, 1e-7 * std::max(1.0, norm));
  // The sum of the repeated eigenvalues is smooth too: dL/dλ = (1, 1, 0) gives P = Σ y_c y_cᵀ.
  const TensorMap gv = Backward(*node, {{"X", X}}, r.outputs, {{"values", Tensor({1, 3}, {1.0, 1.0, 0.0})}}, &r.status);
  const Eigen::MatrixXd P = Y.leftCols(2) * Y.leftCols(2).transpose();
  const Eigen::Map<const RowMatrix> dX(gv.at("X").data(), m, m);
  EXPECT_LT((dX - P).cwiseAbs().maxCoeff(), 1e-13);
}

// The reference's gradient with equal eigenvalues: Y (F ∘ YᵀV) Y_Kᵀ symmetrised, F zero between equal ones.
TEST(EigenNode, RepeatedEigenvaluesGiveTheReferenceGradient) {
  Rng rng(5);
  const int64_t m = 5;
  for (int k : {2, 3}) {  // k = 2: the pair λ = 2, 2 straddles the edge of the set {2, 3.5}
    const Tensor X = WithSpectrum({-1.0, 0.5, 2.0, 2.0, 3.5}, &rng);
    const auto node = Eigen(k);
    const auto full = Eigen(0);
    ForwardResult r = Forward(*node, {{"X", X}});
    EXPECT_TRUE(r.status[0].flags & kNonUnique);
    if (k == 2) {
      EXPECT_NE(r.status[0].note.find("edge"), std::string::npos) << r.status[0].note;
    }
    const ForwardResult rf = Forward(*full, {{"X", X}});
    Tensor V({1, m, k});
    for (auto& v : V.values()) v = rng.Normal();
    const TensorMap g = Backward(*node, {{"X", X}}, r.outputs, {{"vectors", V}}, &r.status);
    const Eigen::Map<const RowMatrix> Y(rf.outputs.at("vectors").data(), m, m);
    const double* lambda = rf.outputs.at("values").data();
    const Eigen::Map<const RowMatrix> Vm(V.data(), m, k);
    Eigen::MatrixXd W = Y.transpose() * Vm;
    for (int c = 0; c < k; ++c)
      for (int64_t j = 0; j < m; ++j) {
        const double gap = lambda[m - k + c] - lambda[j];
        W(j, c) = std::abs(gap) < 1e-9 ? 0.0 : W(j, c) / gap;
      }
    const Eigen::MatrixXd G = Y * W * Y.rightCols(k).transpose();
    const Eigen::MatrixXd want = 0.5 * (G + G.transpose());
    const Eigen::Map<const RowMatrix> dX(g.at("X").data(), m, m);
    EXPECT_LT((dX - want).cwiseAbs().maxCoeff(), 1e-12) << "k " << k;
  }
}

TEST(EigenNode, RepeatedEigenvaluesBelowTheSetAreNotFlagged) {
  Rng rng(6);
  const Tensor X = WithSpectrum({1.0, 1.0, 2.0, 3.0, 4.0}, &rng);
  const ForwardResult r = Forward(*Eigen(2), {{"X", X}});
  EXPECT_TRUE(r.status[0].ok()) << r.status[0].note;
  // X = 0: every eigenvalue equal.
  const ForwardResult z = Forward(*Eigen(0), {{"X", Tensor({1, 3, 3})}});
  EXPECT_TRUE(z.status[0].flags & kNonUnique);
}

TEST(EigenNode, BadInputIsRefused) {
  EXPECT_THROW(MakeNode("eigen", {{"top_k", "-1"}}), InvalidInput);
  EXPECT_THROW(Forward(*Eigen(5), {{"X", Tensor({1, 3, 3})}}), InvalidInput);
  EXPECT_THROW(Forward(*Eigen(0), {{"X", Tensor({1, 3, 2})}}), InvalidInput);
  try {
    Forward(*Eigen(5), {{"X", Tensor({1, 3, 3})}});
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("top_k"), std::string::npos) << e.what();
  }
}

// The reference library's EigenDecompositionFcn on random matrices. Its eigenvectors' signs are LAPACK's: the
// fixture script applies our sign rule to its answer and flips the matching columns of dL/dY, so outputs and
// gradients compare directly. torch.linalg.eigh is accurate to ~1e-14 here; agree to 1e-10.
TEST(EigenNode, AgreesWithTheReferenceLibrary) {
  const auto cases = testing::LoadCases(DDN_LINALG_CASES, "eigen");
  ASSERT_FALSE(cases.empty()) << DDN_LINALG_CASES;
  for (const auto& c : cases) {
    const auto node = MakeNode("eigen", testing::CaseParams(c));
    const TensorMap in = testing::TensorsFromJson(c["inputs"]);
    ForwardResult r = Forward(*node, in);
    for (const auto& [name, t] : testing::TensorsFromJson(c["want"]["outputs"])) {
      EXPECT_LT(MaxAbsDiff(r.outputs.at(name), t), 1e-10 * std::max(1.0, MaxAbs(t))) << c["label"] << " " << name;
    }
    const TensorMap g = Backward(*node, in, r.outputs, testing::TensorsFromJson(c["grad_outputs"]), &r.status);
    const Tensor want = testing::TensorFromJson(c["want"]["grad_inputs"]["X"]);
    EXPECT_LT(MaxAbsDiff(g.at("X"), want), 1e-10 * std::max(1.0, MaxAbs(want))) << c["label"];
  }
}

}  // namespace
}  // namespace ddn
