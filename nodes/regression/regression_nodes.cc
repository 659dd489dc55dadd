// The nodes ridge_regression, logistic_regression, multinomial_logistic_regression and robust_regression: a
// linear model (w, b) fitted to rows x_i (X, N × P) and targets y_i (N) by minimising the regularised mean losses
// of regression.h,
//
//   ridge_regression     (w, b) = argmin 1/(2N) Σ_i (x_iᵀw + b − y_i)² + ½ Σ_j λ_j w_j²  (λ: one or per feature)
//   logistic_regression  (w, b) = argmin 1/N Σ_i [log(1 + e^{s_i}) − y_i s_i] + ½λ‖w‖²   (s_i = x_iᵀw + b)
//   multinomial_logistic_regression
//                        (W, b) = argmin 1/N Σ_i [log Σ_k e^{s_ik} − Σ_k Y_ik s_ik] + ½λ‖W‖²_F
//                        (s_ik = x_iᵀW_k + b_k, W (P × K) one column per class, b_K = 0: the softmax is
//                        invariant to a common shift of the b_k, so the last one is fixed; Y (N × K) the class
//                        probabilities of each row, one-hot for class labels)
//   robust_regression    (w, b) = argmin 1/N Σ_i φ_α(x_iᵀw + b − y_i) + ½μ‖w‖²         (pseudo-Huber φ_α)
//
// with the regularisation weight λ, or the scale α, an input: differentiable, so a bi-level problem (`ddn bilevel
// ridge_regression`, bilevel/) can learn it. Forward: the solves of regression.h (ridge in closed form with one
// refinement step, the others by Newton's method to machine precision). Backward: the implicit function theorem
// with the closed-form H and the data derivatives of regression.h (LinearModelVjp), one Cholesky solve. Each node
// has a declarative form (one term per row), so the generic engine's forward and backward are there to compare
// with (`ddn eval --generic`, the tests and the conformance suite).
//
// GCC 12 warns (-Wnonnull, "'this' pointer is null") inside declarative.h's TermSecondOrder as instantiated for
// these forms: H is null there only when the Hessian is not wanted, which it cannot see. A false positive, silenced
// for this file (before the includes: the warning is located in them) so that DDN_WERROR builds.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnonnull"
#endif

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ddn/declarative.h"
#include "ddn/random.h"
#include "nodes/pooling/penalties.h"
#include "nodes/regression/regression.h"

namespace ddn::regression {
namespace {

enum class Model { kRidge, kLogistic, kMultinomial, kRobust };

constexpr const char* NameOf(Model m) {
  return m == Model::kRidge         ? "ridge_regression"
         : m == Model::kLogistic    ? "logistic_regression"
         : m == Model::kMultinomial ? "multinomial_logistic_regression"
                                    : "robust_regression";
}

// The inputs of every model: X, the targets (y, or Y for the multinomial model) and the hyperparameter (ridge:
// lambda (L = 1 or P); logistic: lambda; robust: alpha).
std::vector<TensorSpec> Inputs(Model m) {
  std::vector<TensorSpec> in = {{"X", {"N", "P"}, "rows x_i (features)"}};
  if (m == Model::kMultinomial) {
    in.push_back({"Y",
                  {"N", "K"},
                  "class probabilities of each row (one-hot rows for class labels), K ≥ 2, every class present"});
  } else {
    in.push_back({"y",
                  {"N"},
                  m == Model::kLogistic ? "labels y_i in [0, 1] (0/1 classes or soft labels), both classes present"
                                        : "targets y_i"});
  }
  if (m == Model::kRidge) {
    in.push_back({"lambda", {"L"}, "ridge weights λ > 0: one (L = 1) or one per feature (L = P)", true, false, true});
  } else if (m == Model::kLogistic || m == Model::kMultinomial) {
    in.push_back(
        {"lambda", {}, m == Model::kLogistic ? "L2 weight λ > 0 on w" : "L2 weight λ > 0 on W", true, false, true});
  } else {
    in.push_back({"alpha", {}, "pseudo-Huber scale α > 0, in the units of y", true, false, true});
  }
  return in;
}

// The declarative form (generic path only): one term per row i, the penalty in term 0, u = (w, b).
template <Model M>
class LinearModelForm : public DeclarativeNode<LinearModelForm<M>> {
 public:
  static NodeSpec Spec() { return {NameOf(M), "declarative form", {}, Inputs(M), {{"u", {"U"}, "(w, b)"}}}; }
  explicit LinearModelForm(double mu) : mu_(mu) {}

  static constexpr const char* kTermAxis = "N";
  template <typename T>
  T Term(const Args<T>& in, const T* u) const {
    if constexpr (M == Model::kMultinomial) {
      return MultinomialTerm(in, u);
    } else {
      return LinearTerm(in, u);
    }
  }

 private:
  // Row i's loss (/N) of the one-output models, u = (w, b), and the penalty in term 0.
  template <typename T>
  T LinearTerm(const Args<T>& in, const T* u) const {
    using std::exp;
    using std::log;
    const int64_t p = in.size(0);
    T s = u[p];
    for (int64_t k = 0; k < p; ++k) s += in[0][k] * u[k];
    const T y = in[1][0];
    const T one = Constant<T>(1.0);
    T f;
    if constexpr (M == Model::kRidge) {
      const T r = s - y;
      f = Constant<T>(0.5) * r * r;
    } else if constexpr (M == Model::kLogistic) {
      // log(1 + e^s) without overflow.
      const T softplus = Value(s) > 0 ? s + log(one + exp(-s)) : log(one + exp(s));
      f = softplus - y * s;
    } else {
      const T r = s - y;
      f = pooling::PseudoHuberOfSquare<T>(r * r, in[2][0]);
    }
    f = f * Constant<T>(1.0 / static_cast<double>(in.Dim("N")));
    if (in.term() == 0) {
      T penalty = Constant<T>(0.0);
      for (int64_t k = 0; k < p; ++k) {
        if constexpr (M == Model::kRidge) {
          penalty += in[2][in.size(2) > 1 ? k : 0] * u[k] * u[k];
        } else {
          penalty += u[k] * u[k];
        }
      }
      if constexpr (M == Model::kRidge) {
        f += Constant<T>(0.5) * penalty;
      } else if constexpr (M == Model::kLogistic) {
        f += Constant<T>(0.5) * in[2][0] * penalty;
      } else {
        f += Constant<T>(0.5 * mu_) * penalty;
      }
    }
    return f;
  }

  // Row i's log Σ_k e^{s_ik} − Σ_k Y_ik s_ik (/N), u = (W_1, b_1, …, W_K) by class, and the penalty in term 0.
  template <typename T>
  T MultinomialTerm(const Args<T>& in, const T* u) const {
    using std::exp;
    using std::log;
    const int64_t p = in.size(0), K = in.size(1);
    std::vector<T> s(static_cast<size_t>(K));
    double smax = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < K; ++k) {
      const T* uk = u + k * (p + 1);
      T sk = k + 1 < K ? uk[p] : Constant<T>(0.0);
      for (int64_t j = 0; j < p; ++j) sk += in[0][j] * uk[j];
      smax = std::max(smax, Value(sk));
      s[static_cast<size_t>(k)] = sk;
    }
    // The shift by smax is a constant: log-sum-exp is exactly shift-invariant, derivatives included.
    T sum = Constant<T>(0.0), linear = Constant<T>(0.0);
    for (int64_t k = 0; k < K; ++k) {
      sum += exp(s[static_cast<size_t>(k)] - Constant<T>(smax));
      linear += in[1][k] * s[static_cast<size_t>(k)];
    }
    T f = (Constant<T>(smax) + log(sum) - linear) * Constant<T>(1.0 / static_cast<double>(in.Dim("N")));
    if (in.term() == 0) {
      T penalty = Constant<T>(0.0);
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t j = 0; j < p; ++j) penalty += u[k * (p + 1) + j] * u[k * (p + 1) + j];
      }
      f += Constant<T>(0.5) * in[2][0] * penalty;
    }
    return f;
  }

  double mu_;
};

template <Model M>
class LinearModelNode : public Node {
 public:
  static constexpr bool kLogisticLoss = M == Model::kLogistic || M == Model::kMultinomial;

  static NodeSpec Spec() {
    std::vector<ParamSpec> params;
    if (M == Model::kRobust) params.push_back({"mu", ParamType::kFloat, "0", "fixed L2 weight μ ≥ 0 on w"});
    const char* summary =
        M == Model::kRidge ? "ridge regression (w, b) = argmin 1/(2N) Σ (x_iᵀw + b − y_i)² + ½ Σ λ_j w_j²"
        : M == Model::kLogistic ? "logistic regression (w, b) = argmin 1/N Σ [log(1 + e^s_i) − y_i s_i] + ½λ‖w‖²"
        : M == Model::kMultinomial
            ? "multinomial logistic regression (W, b) = argmin 1/N Σ [log Σ_k e^s_ik − Σ_k Y_ik s_ik] + ½λ‖W‖², "
              "b_K = 0"
            : "robust regression (w, b) = argmin 1/N Σ φ_α(x_iᵀw + b − y_i) + ½μ‖w‖², pseudo-Huber φ";
    std::vector<TensorSpec> outputs = {{"w", {"P"}, "the fitted weights"},
                                       {"bias", {}, "the fitted intercept b (not penalised)"}};
    if (M == Model::kMultinomial) {
      outputs = {{"w", {"P", "K"}, "the fitted weights, column k for class k (logits s_i = x_iᵀw + bias)"},
                 {"bias", {"K"}, "the fitted intercepts b_k (not penalised; the last is fixed at 0)"}};
    }
    return {NameOf(M), summary, params, Inputs(M), outputs};
  }
  explicit LinearModelNode(const Params& p)
      : Node(Spec()), mu_(M == Model::kRobust ? p.RequireNonNegative("mu") : 0.0), form_(mu_) {}

  void Solve(const ProblemData& p, ProblemStatus* s) const override;
  void Backward(const ProblemData& p, ProblemStatus* s) const override;
  bool BackwardAssigns() const override { return true; }

  bool HasGenericPath() const override { return true; }
  void GenericSolve(const ProblemData& p, ProblemStatus* s) const override;
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override;
  void SetSolverOption(const std::string& key, const std::string& value) override { form_.SetSolverOption(key, value); }
  std::vector<std::string> SolverOptions() const override { return form_.SolverOptions(); }

  std::vector<CheckCase> CheckCases(uint64_t seed) const override;

 private:
  // The hyperparameter (checked; the logistic models check their labels too).
  Eigen::VectorXd Hyperparameter(const ProblemData& p) const;
  // The targets as an N × (1 or K) matrix.
  static Eigen::MatrixXd Targets(const ProblemData& p) {
    const int64_t N = p.Dim("N"), K = M == Model::kMultinomial ? p.Dim("K") : 1;
    return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(p.inputs[1], N, K);
  }
  // The number of unknowns u: P + 1, or K(P + 1) − 1 (multinomial, b_K = 0).
  static int64_t Unknowns(const ProblemData& p) {
    return M == Model::kMultinomial ? p.Dim("K") * (p.Dim("P") + 1) - 1 : p.Dim("P") + 1;
  }
  // u from the outputs (w, bias) or their cotangents, and back: u = (w, b), or (W_1, b_1, …, W_K) by class.
  static Eigen::VectorXd Pack(const ProblemData& p, const double* w, const double* bias) {
    const int64_t P = p.Dim("P");
    Eigen::VectorXd u(Unknowns(p));
    if constexpr (M == Model::kMultinomial) {
      const int64_t K = p.Dim("K");
      for (int64_t i = 0; i < u.size(); ++i) {
        const int64_t k = i / (P + 1), j = i % (P + 1);
        u[i] = j < P ? w[j * K + k] : bias[k];
      }
    } else {
      std::copy(w, w + P, u.data());
      u[P] = bias[0];
    }
    return u;
  }
  static void Unpack(const ProblemData& p, const Eigen::VectorXd& u, double* w, double* bias) {
    const int64_t P = p.Dim("P");
    if constexpr (M == Model::kMultinomial) {
      const int64_t K = p.Dim("K");
      bias[K - 1] = 0.0;
      for (int64_t i = 0; i < u.size(); ++i) {
        const int64_t k = i / (P + 1), j = i % (P + 1);
        (j < P ? w[j * K + k] : bias[k]) = u[i];
      }
    } else {
      std::copy(u.data(), u.data() + P, w);
      bias[0] = u[P];
    }
  }
  // The check cases of the multinomial model (K = 3 classes).
  template <typename Gaussian, typename Constant>
  static std::vector<CheckCase> MultinomialCases(Rng* rng, Gaussian gaussian, Constant constant);
  // f's Hessian at u.
  Eigen::MatrixXd Hessian(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y, const Eigen::VectorXd& theta,
                          const Eigen::VectorXd& u) const;
  ProblemData FormProblem(const ProblemData& p, double* u, const double* v, const Shape* shape) const {
    ProblemData q = p;
    q.outputs = {u};
    q.output_shapes = {*shape};
    q.grad_outputs = {v};
    return q;
  }

  double mu_;
  LinearModelForm<M> form_;
};

template <Model M>
Eigen::VectorXd LinearModelNode<M>::Hyperparameter(const ProblemData& p) const {
  const int64_t size = p.InputSize(2), P = p.Dim("P");
  const Eigen::VectorXd theta = Eigen::Map<const Eigen::VectorXd>(p.inputs[2], size);
  const std::string name = spec().inputs[2].name;
  if (M == Model::kRidge && size != 1 && size != P) {
    throw InvalidInput("node '" + spec().name + "': lambda has " + std::to_string(size) +
                       " values; give one, or one per "
                       "feature (" +
                       std::to_string(P) + ")");
  }
  for (int64_t k = 0; k < size; ++k) {
    if (!(theta[k] > 0)) {
      throw InvalidInput("node '" + spec().name + "': " + name + " must be > 0, got " + FormatDouble(theta[k]));
    }
  }
  if (M == Model::kLogistic) {
    // Labels are meant to be in [0, 1]; f is defined for any y and differentiable across 0 and 1 (finite
    // differences step there), and has a minimiser while the mean label is inside (0, 1) (the intercept is not
    // penalised: f → −∞ along b otherwise).
    double mean = 0;
    for (int64_t i = 0; i < p.Dim("N"); ++i) mean += p.inputs[1][i];
    mean /= static_cast<double>(p.Dim("N"));
    if (!(mean > 0 && mean < 1)) {
      throw InvalidInput("node 'logistic_regression': the mean label is " + FormatDouble(mean) +
                         ", not inside (0, 1): labels y in [0, 1] of both classes are needed");
    }
  }
  if (M == Model::kMultinomial) {
    // The intercepts are not penalised: along b (b_K = 0) f grows like max(max_k b_k, 0) − Σ_{k<K} m_k b_k with
    // m_k the mean of Y's column k, which has a minimiser iff (m_1, …, m_{K−1}, 1 − Σ_{k<K} m_k) is inside the
    // simplex: every class present (with rows that sum to 1 the last entry is the last column's mean). Rows that
    // do not sum to 1 are accepted (finite differences step off the simplex).
    const int64_t N = p.Dim("N"), K = p.Dim("K");
    if (K < 2) throw InvalidInput("node '" + spec().name + "': Y has " + std::to_string(K) + " class; need K ≥ 2");
    const Eigen::MatrixXd Y = Targets(p);
    double rest = 1.0;
    for (int64_t k = 0; k < K; ++k) {
      const double mean = k + 1 < K ? Y.col(k).sum() / static_cast<double>(N) : rest;
      if (!(mean > 0 && mean < 1)) {
        throw InvalidInput("node '" + spec().name + "': class " + std::to_string(k) + " has mean probability " +
                           FormatDouble(mean) + ", not inside (0, 1): every class must occur in Y");
      }
      rest -= mean;
    }
  }
  return theta;
}

template <Model M>
Eigen::MatrixXd LinearModelNode<M>::Hessian(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& Y,
                                            const Eigen::VectorXd& theta, const Eigen::VectorXd& u) const {
  Eigen::MatrixXd H;
  if constexpr (M == Model::kRidge) {
    H = RidgeHessian(Z.transpose() * Z / static_cast<double>(Z.rows()), theta);
  } else if constexpr (kLogisticLoss) {
    LogisticObjective(Z, Y, theta[0], u, nullptr, &H);
  } else {
    RobustObjective(Z, Y.col(0), u, theta[0], mu_, nullptr, &H);
  }
  return H;
}

template <Model M>
void LinearModelNode<M>::Solve(const ProblemData& p, ProblemStatus* s) const {
  const int64_t N = p.Dim("N"), P = p.Dim("P");
  if (N == 0) throw InvalidInput("node '" + spec().name + "': no rows (N = 0)");
  const Eigen::VectorXd theta = Hyperparameter(p);
  const Eigen::MatrixXd Z = DesignWithIntercept(p.inputs[0], N, P);
  const Eigen::MatrixXd Y = Targets(p);
  const double n = static_cast<double>(N);
  Eigen::VectorXd u;
  s->residual = 0;
  s->iterations = 0;
  if constexpr (M == Model::kRidge) {
    SolveRidge(Z.transpose() * Z / n, Z.transpose() * Y.col(0) / n, theta, &u, s);
  } else if constexpr (kLogisticLoss) {
    u = Eigen::VectorXd::Zero(Unknowns(p));
    SolveLogistic(Z, Y, theta[0], &u, "node '" + spec().name + "'", s);
  } else {
    // From least squares (a tiny ridge keeps collinear features solvable).
    const Eigen::VectorXd y = Y.col(0);
    Eigen::MatrixXd G = Z.transpose() * Z / n;
    G.diagonal().head(P).array() += std::max(mu_, 1e-12);
    u = G.ldlt().solve(Z.transpose() * y / n);
    const double alpha = theta[0];
    NewtonMinimize([&](const Eigen::VectorXd& x, Eigen::VectorXd* g,
                       Eigen::MatrixXd* H) { return RobustObjective(Z, y, x, alpha, mu_, g, H); },
                   &u, "node 'robust_regression'", s, 500);
  }
  Unpack(p, u, p.outputs[0], p.outputs[1]);
}

template <Model M>
void LinearModelNode<M>::Backward(const ProblemData& p, ProblemStatus* s) const {
  const int64_t N = p.Dim("N"), P = p.Dim("P");
  const Eigen::VectorXd theta = Hyperparameter(p);
  const Eigen::MatrixXd Z = DesignWithIntercept(p.inputs[0], N, P);
  const Eigen::MatrixXd Y = Targets(p);
  const Eigen::VectorXd u = Pack(p, p.outputs[0], p.outputs[1]);
  const Eigen::VectorXd v = Pack(p, p.grad_outputs[0], p.grad_outputs[1]);
  // q = H⁻¹ v (Cholesky; a pivoted LDLᵀ where H is not numerically positive definite).
  const Eigen::MatrixXd H = Hessian(Z, Y, theta, u);
  Eigen::VectorXd q;
  const Eigen::LLT<Eigen::MatrixXd> llt(H);
  if (llt.info() == Eigen::Success) {
    q = llt.solve(v);
  } else {
    q = H.ldlt().solve(v);
    s->Set(kNonRegular, "the Hessian is not numerically positive definite");
  }
  if constexpr (M == Model::kMultinomial) {
    const int64_t K = p.Dim("K");
    const Eigen::MatrixXd U = UnpackClasses(u, P + 1, static_cast<int>(K));
    const Eigen::MatrixXd S = Z * U;
    Eigen::MatrixXd Prob(N, K);
    for (int64_t i = 0; i < N; ++i) {
      const Eigen::RowVectorXd e = (S.row(i).array() - S.row(i).maxCoeff()).exp();
      Prob.row(i) = e / e.sum();
    }
    MultinomialVjp(Z, U.topRows(P), UnpackClasses(q, P + 1, static_cast<int>(K)), Prob, Prob - Y, p.grad_inputs[1],
                   p.grad_inputs[0]);
    if (double* dtheta = p.grad_inputs[2]) dtheta[0] = -q.dot(WeightPenaltyColumn(u, P + 1));
    return;
  }
  // The per-row coefficient of the gradient, c_i, and its derivatives in s_i and y_i.
  const Eigen::VectorXd y = Y.col(0);
  const Eigen::VectorXd sv = Z * u;
  Eigen::VectorXd c(N), dc_ds(N), dc_dy(N);
  for (int64_t i = 0; i < N; ++i) {
    if constexpr (M == Model::kRidge) {
      c[i] = sv[i] - y[i], dc_ds[i] = 1.0, dc_dy[i] = -1.0;
    } else if constexpr (M == Model::kLogistic) {
      const double sigma = 1.0 / (1.0 + std::exp(-sv[i]));
      c[i] = sigma - y[i], dc_ds[i] = sigma * (1.0 - sigma), dc_dy[i] = -1.0;
    } else {
      const double a = theta[0];
      const pooling::PenaltyValues e =
          pooling::EvaluatePenalty<pooling::PenaltyKind::kPseudoHuber>(sv[i] - y[i], a, 1.0 / (a * a));
      c[i] = e.d1, dc_ds[i] = e.d2, dc_dy[i] = -e.d2;
    }
  }
  const Eigen::VectorXd w = u.head(P);
  LinearModelVjp(Z, w, q, c, dc_ds, dc_dy, p.grad_inputs[1], p.grad_inputs[0]);
  if (double* dtheta = p.grad_inputs[2]) {
    if constexpr (M == Model::kRidge) {
      if (theta.size() > 1) {
        for (int64_t j = 0; j < P; ++j) dtheta[j] = -q[j] * w[j];
      } else {
        dtheta[0] = -q.head(P).dot(w);
      }
    } else if constexpr (M == Model::kLogistic) {
      dtheta[0] = -q.head(P).dot(w);
    } else {
      dtheta[0] = -q.dot(RobustAlphaColumn(Z, y, u, theta[0]));
    }
  }
}

template <Model M>
void LinearModelNode<M>::GenericSolve(const ProblemData& p, ProblemStatus* s) const {
  Hyperparameter(p);
  const Shape shape{Unknowns(p)};
  Eigen::VectorXd u = Eigen::VectorXd::Zero(Unknowns(p));
  form_.GenericSolve(FormProblem(p, u.data(), nullptr, &shape), s);
  Unpack(p, u, p.outputs[0], p.outputs[1]);
}

template <Model M>
void LinearModelNode<M>::GenericBackward(const ProblemData& p, ProblemStatus* s) const {
  const Shape shape{Unknowns(p)};
  Eigen::VectorXd u = Pack(p, p.outputs[0], p.outputs[1]), v = Pack(p, p.grad_outputs[0], p.grad_outputs[1]);
  form_.GenericBackward(FormProblem(p, u.data(), v.data(), &shape), s);
}

template <Model M>
std::vector<CheckCase> LinearModelNode<M>::CheckCases(uint64_t seed) const {
  Rng rng(seed);
  auto gaussian = [&](Shape shape, double scale = 1.0) {
    Tensor t(shape);
    for (auto& v : t.values()) v = scale * rng.Normal();
    return t;
  };
  auto constant = [](Shape shape, double value) {
    Tensor t(shape);
    for (auto& v : t.values()) v = value;
    return t;
  };
  const int64_t B = 2, N = 12, P = 3;
  // Targets of a linear model with noise (labels: Bernoulli of its sigmoid).
  auto targets = [&](const Tensor& X) {
    Tensor y({B, N});
    for (int64_t b = 0; b < B; ++b) {
      double w[P];
      for (double& wk : w) wk = rng.Normal();
      for (int64_t i = 0; i < N; ++i) {
        double s = 0.3;
        for (int64_t k = 0; k < P; ++k) s += X.problem(b)[i * P + k] * w[k];
        if (M == Model::kLogistic) {
          y.problem(b)[i] = rng.Uniform(0.0, 1.0) < 1.0 / (1.0 + std::exp(-s)) ? 1.0 : 0.0;
        } else {
          y.problem(b)[i] = s + 0.3 * rng.Normal();
        }
      }
    }
    return y;
  };
  if (M == Model::kMultinomial) return MultinomialCases(&rng, gaussian, constant);
  const std::string hyper = spec().inputs[2].name;
  const double value = M == Model::kRobust ? 0.5 : 0.3;
  std::vector<CheckCase> cases;
  {
    Tensor X = gaussian({B, N, P});
    Tensor y = targets(X);
    cases.push_back(
        {"random", {{"X", X}, {"y", y}, {hyper, constant(M == Model::kRidge ? Shape{B, 1} : Shape{B}, value)}}});
  }
  if (M == Model::kRidge) {
    Tensor X = gaussian({B, N, P});
    Tensor y = targets(X);
    Tensor lambda({B, P});
    for (auto& v : lambda.values()) v = rng.Uniform(0.05, 2.0);
    cases.push_back({"per_feature", {{"X", X}, {"y", y}, {"lambda", lambda}}});
  }
  if (M == Model::kLogistic) {
    // Soft labels, one of them at the boundary 0 and one at 1.
    Tensor X = gaussian({B, N, P});
    Tensor y({B, N});
    for (auto& v : y.values()) v = rng.Uniform(0.0, 1.0);
    y[0] = 0.0;
    y[1] = 1.0;
    cases.push_back({"soft_labels", {{"X", X}, {"y", y}, {"lambda", constant({B}, 0.1)}}});
  }
  if (M == Model::kRobust) {
    // Gross outliers (far in the linear zone of φ) and a small α.
    Tensor X = gaussian({B, N, P});
    Tensor y = targets(X);
    y[2] += 8.0;
    y[N + 5] -= 6.0;
    cases.push_back({"outliers", {{"X", X}, {"y", y}, {"alpha", constant({B}, 0.2)}}});
  }
  // Nearly collinear features (columns 0 and 1 differ by 1e-2 noise) with a weak penalty: a near-singular H.
  {
    Tensor X = gaussian({B, N, P});
    for (int64_t r = 0; r < B * N; ++r) X[r * P + 1] = X[r * P] + 1e-2 * rng.Normal();
    Tensor y = targets(X);
    cases.push_back(
        {"nearly_collinear",
         {{"X", X},
          {"y", y},
          {hyper, constant(M == Model::kRidge ? Shape{B, 1} : Shape{B}, M == Model::kRobust ? 1.0 : 1e-3)}}});
  }
  return cases;
}

template <Model M>
template <typename Gaussian, typename Constant>
std::vector<CheckCase> LinearModelNode<M>::MultinomialCases(Rng* rng, Gaussian gaussian, Constant constant) {
  const int64_t B = 2, N = 15, P = 3, K = 3;
  // One-hot labels drawn from the softmax of a random linear model; rows 0..K−1 take classes 0..K−1 so that every
  // class occurs.
  auto labels = [&](const Tensor& X) {
    Tensor Y({B, N, K});
    for (int64_t b = 0; b < B; ++b) {
      double W[P][K];
      for (auto& row : W) {
        for (double& v : row) v = rng->Normal();
      }
      for (int64_t i = 0; i < N; ++i) {
        double e[K], sum = 0;
        for (int64_t k = 0; k < K; ++k) {
          double s = 0.2 * static_cast<double>(k);
          for (int64_t j = 0; j < P; ++j) s += X.problem(b)[i * P + j] * W[j][k];
          sum += e[k] = std::exp(s);
        }
        int64_t label = i < K ? i : K - 1;
        if (i >= K) {
          double r = rng->Uniform(0.0, sum);
          for (int64_t k = 0; k < K; ++k) {
            if (r < e[k]) {
              label = k;
              break;
            }
            r -= e[k];
          }
        }
        Y.problem(b)[i * K + label] = 1.0;
      }
    }
    return Y;
  };
  std::vector<CheckCase> cases;
  {
    Tensor X = gaussian(Shape{B, N, P}, 1.0);
    cases.push_back({"random", {{"X", X}, {"Y", labels(X)}, {"lambda", constant(Shape{B}, 0.3)}}});
  }
  {
    // Soft labels (random points of the simplex), one row at a vertex and one on an edge.
    Tensor X = gaussian(Shape{B, N, P}, 1.0);
    Tensor Y({B, N, K});
    for (int64_t r = 0; r < B * N; ++r) {
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += Y[r * K + k] = -std::log(rng->Uniform(1e-3, 1.0));
      for (int64_t k = 0; k < K; ++k) Y[r * K + k] /= sum;
    }
    for (int64_t k = 0; k < K; ++k) Y[k] = k == 0 ? 1.0 : 0.0;
    Y[K] = 0.5, Y[K + 1] = 0.5, Y[K + 2] = 0.0;
    cases.push_back({"soft_labels", {{"X", X}, {"Y", Y}, {"lambda", constant(Shape{B}, 0.1)}}});
  }
  {
    // Nearly collinear features (columns 0 and 1 differ by 1e-2 noise) with a weak penalty: a near-singular H.
    Tensor X = gaussian(Shape{B, N, P}, 1.0);
    for (int64_t r = 0; r < B * N; ++r) X[r * P + 1] = X[r * P] + 1e-2 * rng->Normal();
    cases.push_back({"nearly_collinear", {{"X", X}, {"Y", labels(X)}, {"lambda", constant(Shape{B}, 1e-3)}}});
  }
  return cases;
}

using RidgeRegressionNode = LinearModelNode<Model::kRidge>;
using LogisticRegressionNode = LinearModelNode<Model::kLogistic>;
using MultinomialLogisticRegressionNode = LinearModelNode<Model::kMultinomial>;
using RobustRegressionNode = LinearModelNode<Model::kRobust>;

}  // namespace
DDN_REGISTER_NODE(RidgeRegressionNode);
DDN_REGISTER_NODE(LogisticRegressionNode);
DDN_REGISTER_NODE(MultinomialLogisticRegressionNode);
DDN_REGISTER_NODE(RobustRegressionNode);
}  // namespace ddn::regression
