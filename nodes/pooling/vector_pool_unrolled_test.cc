// The unrolled and truncated:K gradient modes of robust_vector_pool (vector_pool_unrolled.h): the reverse mode of
// the replayed local solve against central finite differences of the same fixed-branch map (including early,
// far-from-converged steps, where the third-derivative terms matter), unrolled against implicit on converged
// solves, the node's check in unrolled mode, and bad requests.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/gradient_mode.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/pooling/pooling_solvers.h"
#include "nodes/pooling/vector_pool_unrolled.h"

namespace ddn::pooling {
namespace {

const PenaltyKind kIterative[] = {PenaltyKind::kPseudoHuber, PenaltyKind::kHuber, PenaltyKind::kWelsch,
                                  PenaltyKind::kCauchy, PenaltyKind::kGemanMcClure};

// A cluster around a random centre with a few far outliers (n points in R^d).
std::vector<double> Cluster(Rng* rng, int64_t n, int64_t d, double spread) {
  std::vector<double> x(n * d), centre(d);
  for (double& c : centre) c = rng->Normal();
  for (int64_t i = 0; i < n; ++i) {
    const bool out = i % 5 == 4;
    for (int64_t k = 0; k < d; ++k) x[i * d + k] = centre[k] + (out ? rng->Uniform(3.0, 6.0) : spread * rng->Normal());
  }
  return x;
}

struct Solved {
  PoolingProblem problem;
  std::vector<double> x, w, y;
  VectorPoolTape tape;
};

Solved SolveAndRecord(PenaltyKind kind, double alpha, int64_t n, int64_t d, uint64_t seed, bool weighted) {
  Rng rng(seed);
  Solved s;
  s.x = Cluster(&rng, n, d, 0.6 * alpha);
  if (weighted) {
    s.w.resize(n);
    for (double& v : s.w) v = rng.Uniform(0.3, 2.0);
  }
  s.problem.kind = kind;
  s.problem.alpha = alpha;
  s.problem.x = s.x.data();
  s.problem.w = weighted ? s.w.data() : nullptr;
  s.problem.n = n;
  s.problem.d = d;
  s.y.resize(d);
  ProblemStatus status;
  VectorStart start;
  SolveVectorPool(s.problem, s.y.data(), &status, {}, &start);
  RecordVectorPoolSolve(s.problem, start, s.y.data(), &s.tape);
  return s;
}

// y_T of the tape's map from its step `first` (y_first held fixed), or from the start (first < 0), at (x, w).
std::vector<double> Map(const Solved& s, const std::vector<double>& x, const std::vector<double>& w, int first,
                        const std::vector<double>& y_first) {
  PoolingProblem q = s.problem;
  q.x = x.data();
  q.w = s.problem.w ? w.data() : nullptr;
  std::vector<double> y0(q.d), out(q.d);
  if (first < 0) {
    VectorPoolStartOf(q, s.tape, y0.data());
    first = 0;
  } else {
    y0 = y_first;
  }
  ReplayVectorPoolSteps(q, s.tape, first, y0.data(), out.data());
  return out;
}

// Relative error of the VJP through the steps first … end−1 of a tape cut to `end` steps (and through the start
// when first < 0), against central differences of that map, for a random v.
double MapError(const Solved& full, int first, int end, uint64_t seed) {
  // A window from step 0 is every step of the cut tape: the VJP then runs through the start too.
  if (first == 0) first = -1;
  Solved s = full;
  s.tape.newton.resize(end);
  s.tape.iterates.resize((end + 1) * s.problem.d);
  const int64_t n = s.problem.n, d = s.problem.d;
  Rng rng(seed);
  std::vector<double> v(d);
  for (double& e : v) e = rng.Normal();
  std::vector<double> dx(n * d, 0.0), dw(n, 0.0);
  const int steps = first < 0 ? end : end - first;
  VectorPoolUnrolledVjp(s.problem, s.tape, steps, v.data(), dx.data(), s.problem.w ? dw.data() : nullptr);
  const std::vector<double> y_first(s.tape.iterates.begin() + std::max(first, 0) * d,
                                    s.tape.iterates.begin() + (std::max(first, 0) + 1) * d);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& w) {
    const std::vector<double> y = Map(s, x, w, first, y_first);
    double l = 0;
    for (int64_t k = 0; k < d; ++k) l += v[k] * y[k];
    return l;
  };
  const double h = 1e-5 * s.problem.alpha;
  double err = 0, scale = 0;
  std::vector<double> fd(n * d), fdw(n);
  for (int64_t j = 0; j < n * d; ++j) {
    std::vector<double> xp = s.x, xm = s.x;
    xp[j] += h;
    xm[j] -= h;
    fd[j] = (loss(xp, s.w) - loss(xm, s.w)) / (2 * h);
    scale = std::max(scale, std::abs(fd[j]));
  }
  for (int64_t j = 0; j < n * d; ++j) err = std::max(err, std::abs(fd[j] - dx[j]));
  if (s.problem.w) {
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> wp = s.w, wm = s.w;
      wp[i] += h;
      wm[i] -= h;
      fdw[i] = (loss(s.x, wp) - loss(s.x, wm)) / (2 * h);
      scale = std::max(scale, std::abs(fdw[i]));
    }
    for (int64_t i = 0; i < n; ++i) err = std::max(err, std::abs(fdw[i] - dw[i]));
  }
  return err / std::max(scale, 1e-300);
}

TEST(VectorPoolUnrolled, ReplayEndsAtTheForwardAnswer) {
  for (PenaltyKind kind : kIterative) {
    const Solved s = SolveAndRecord(kind, 1.0, 40, 3, 11, false);
    EXPECT_TRUE(s.tape.converged) << PenaltyName(kind);
    EXPECT_GE(s.tape.steps(), 2) << PenaltyName(kind);
    for (int64_t k = 0; k < 3; ++k)
      EXPECT_NEAR(s.tape.iterates[s.tape.steps() * 3 + k], s.y[k], 1e-12) << PenaltyName(kind);
  }
}

// The reverse mode of the first, far-from-converged steps (with the start) and of every window of K steps against
// finite differences of the same map: exact third derivatives, IRLS and Newton steps, weights.
TEST(VectorPoolUnrolled, AdjointMatchesFiniteDifferencesOfTheStepMap) {
  int checked = 0;
  for (PenaltyKind kind : kIterative) {
    for (bool weighted : {false, true}) {
      for (uint64_t seed : {3u, 4u}) {
        const Solved s = SolveAndRecord(kind, 1.0, 12, 3, seed, weighted);
        const int T = s.tape.steps();
        // From the start through the first 1, 2, 3 steps (far from the answer) and through all of them.
        for (int end : {1, 2, 3, T}) {
          if (end > T) continue;
          EXPECT_LT(MapError(s, -1, end, seed + end), 1e-6)
              << PenaltyName(kind) << " weighted=" << weighted << " seed=" << seed << " start..step " << end;
          ++checked;
        }
        // Windows of one and two steps in the middle (y_first fixed).
        for (int first = 0; first + 2 <= T; ++first) {
          EXPECT_LT(MapError(s, first, first + 2, seed + 7 * first), 1e-6)
              << PenaltyName(kind) << " weighted=" << weighted << " steps " << first << ".." << first + 2;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 40);
}

// An IRLS step is exercised: a redescending penalty from a start between two clusters (H indefinite there).
TEST(VectorPoolUnrolled, IrlsStepsAreDifferentiated) {
  int irls = 0;
  for (PenaltyKind kind : {PenaltyKind::kWelsch, PenaltyKind::kCauchy, PenaltyKind::kGemanMcClure}) {
    for (uint64_t seed = 1; seed <= 40 && irls < 6; ++seed) {
      const Solved s = SolveAndRecord(kind, 0.5, 12, 2, seed, seed % 2 == 0);
      for (int t = 0; t < s.tape.steps(); ++t) {
        if (s.tape.newton[t]) continue;
        ++irls;
        EXPECT_LT(MapError(s, t, t + 1, seed), 1e-6) << PenaltyName(kind) << " seed " << seed << " step " << t;
      }
    }
  }
  EXPECT_GT(irls, 0) << "no IRLS step found";
}

// Converged solves: unrolled (and truncated:K for K ≥ 2) equal the implicit gradient to rounding.
TEST(VectorPoolUnrolled, UnrolledAgreesWithImplicitOnConvergedSolves) {
  const char* penalties[] = {"quadratic",           "pseudo_huber", "huber",        "welsch",
                             "truncated_quadratic", "cauchy",       "geman_mcclure"};
  for (const char* penalty : penalties) {
    auto node = MakeNode("robust_vector_pool", {{"penalty", penalty}, {"alpha", "1.5"}});
    Rng rng(5);
    const int64_t B = 3, N = 30, D = 4;
    Tensor x(Shape{B, N, D}), w(Shape{B, N}), v(Shape{B, D});
    for (int64_t b = 0; b < B; ++b) {
      const std::vector<double> c = Cluster(&rng, N, D, 0.5);
      std::copy(c.begin(), c.end(), x.problem(b));
    }
    for (double& e : w.values()) e = 0.5 + std::abs(rng.Normal());
    for (double& e : v.values()) e = rng.Normal();
    const TensorMap in{{"x", x}, {"w", w}};
    const ForwardResult fwd = Forward(*node, in);
    std::vector<ProblemStatus> st;
    RunOptions implicit_run, unrolled_run, truncated_run;
    unrolled_run.backward = GradientMode::Parse("unrolled");
    truncated_run.backward = GradientMode::Parse("truncated:2");
    const TensorMap g0 = Backward(*node, in, fwd.outputs, {{"y", v}}, &st, implicit_run);
    const TensorMap g1 = Backward(*node, in, fwd.outputs, {{"y", v}}, &st, unrolled_run);
    const TensorMap g2 = Backward(*node, in, fwd.outputs, {{"y", v}}, &st, truncated_run);
    for (const char* name : {"x", "w"}) {
      const auto& a = g0.at(name).values();
      double scale = 0, e1 = 0, e2 = 0;
      for (size_t j = 0; j < a.size(); ++j) {
        scale = std::max(scale, std::abs(a[j]));
        e1 = std::max(e1, std::abs(g1.at(name).values()[j] - a[j]));
        e2 = std::max(e2, std::abs(g2.at(name).values()[j] - a[j]));
      }
      EXPECT_LT(e1 / scale, 1e-9) << penalty << " " << name << " unrolled vs implicit";
      EXPECT_LT(e2 / scale, 1e-9) << penalty << " " << name << " truncated:2 vs implicit";
    }
  }
}

// truncated:1 on a Newton solve is the implicit gradient at y_{T−1} (one step before the answer): close to, but
// not the same as, the implicit gradient at y_T; truncated:K → unrolled as K grows.
TEST(VectorPoolUnrolled, TruncatedApproachesUnrolled) {
  const Solved s = SolveAndRecord(PenaltyKind::kWelsch, 1.0, 30, 3, 9, true);
  const int T = s.tape.steps();
  ASSERT_GE(T, 3);
  std::vector<double> v{0.3, -1.2, 0.8};
  auto vjp = [&](int steps) {
    std::vector<double> dx(s.problem.n * 3, 0.0);
    VectorPoolUnrolledVjp(s.problem, s.tape, steps, v.data(), dx.data(), nullptr);
    return dx;
  };
  const std::vector<double> full = vjp(T);
  double previous = std::numeric_limits<double>::infinity();
  for (int K = 1; K <= T; ++K) {
    const std::vector<double> g = vjp(K);
    double e = 0, scale = 0;
    for (size_t j = 0; j < g.size(); ++j) {
      e = std::max(e, std::abs(g[j] - full[j]));
      scale = std::max(scale, std::abs(full[j]));
    }
    EXPECT_LE(e / scale, std::max(previous, 1e-12)) << "K = " << K;
    previous = e / scale;
  }
  EXPECT_EQ(previous, 0.0);
}

TEST(VectorPoolUnrolled, NodeGradientCheckInUnrolledAndTruncatedModes) {
  for (const char* penalty : {"pseudo_huber", "huber", "welsch", "cauchy", "geman_mcclure", "truncated_quadratic"}) {
    for (const char* mode : {"unrolled", "truncated:3"}) {
      auto node = MakeNode("robust_vector_pool", {{"penalty", penalty}, {"alpha", "1"}});
      CheckOptions options;
      options.seed = 3;
      options.run.backward = GradientMode::Parse(mode);
      const CheckReport report = CheckGradients(*node, options);
      EXPECT_TRUE(report.passed) << penalty << " " << mode << "\n" << report.ToString();
    }
  }
}

TEST(VectorPoolUnrolled, BadRequestsAreRefused) {
  auto node = MakeNode("robust_vector_pool", {{"penalty", "welsch"}});
  Tensor x(Shape{1, 5, 1}), v(Shape{1, 1});
  for (int i = 0; i < 5; ++i) x.values()[i] = i;
  v.values()[0] = 1;
  const TensorMap in{{"x", x}};
  const ForwardResult fwd = Forward(*node, in);
  std::vector<ProblemStatus> st;
  RunOptions run;
  run.backward = GradientMode::Parse("unrolled");
  try {
    Backward(*node, in, fwd.outputs, {{"y", v}}, &st, run);
    ADD_FAILURE() << "D = 1 accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("D >= 2"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
  for (const char* bad :
       {"truncated:0", "truncated:-1", "truncated:1.5", "truncated:99999999", "truncated:", "truncated:K", "unroled"}) {
    try {
      GradientMode::Parse(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace ddn::pooling

namespace ddn::pooling {
namespace {

// The generic path's modes (ddn/generic_unrolled.h: Newton replayed from the weighted mean) on the same node:
// unrolled agrees with the generic implicit gradient and with the specialised unrolled one on converged solves.
TEST(VectorPoolUnrolled, GenericPathModesAgree) {
  for (const char* penalty : {"pseudo_huber", "welsch"}) {
    auto node = MakeNode("robust_vector_pool", {{"penalty", penalty}, {"alpha", "1.5"}});
    Rng rng(8);
    const int64_t B = 2, N = 20, D = 3;
    Tensor x(Shape{B, N, D}), v(Shape{B, D});
    for (int64_t b = 0; b < B; ++b) {
      const std::vector<double> c = Cluster(&rng, N, D, 0.5);
      std::copy(c.begin(), c.end(), x.problem(b));
    }
    for (double& e : v.values()) e = rng.Normal();
    const TensorMap in{{"x", x}};
    RunOptions generic, generic_unrolled, unrolled;
    generic.generic = generic_unrolled.generic = true;
    generic_unrolled.backward = unrolled.backward = GradientMode::Parse("unrolled");
    const ForwardResult fwd = Forward(*node, in);
    const ForwardResult gfwd = Forward(*node, in, generic);
    std::vector<ProblemStatus> st;
    const TensorMap ga = Backward(*node, in, gfwd.outputs, {{"y", v}}, &st, generic);
    const TensorMap gb = Backward(*node, in, gfwd.outputs, {{"y", v}}, &st, generic_unrolled);
    const TensorMap gc = Backward(*node, in, fwd.outputs, {{"y", v}}, &st, unrolled);
    const auto& a = ga.at("x").values();
    const auto& b = gb.at("x").values();
    const auto& c = gc.at("x").values();
    double scale = 0, e1 = 0, e2 = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      scale = std::max(scale, std::abs(a[j]));
      e1 = std::max(e1, std::abs(b[j] - a[j]));
      e2 = std::max(e2, std::abs(c[j] - a[j]));
    }
    EXPECT_LT(e1 / scale, 1e-9) << penalty << " generic unrolled vs generic implicit";
    EXPECT_LT(e2 / scale, 1e-8) << penalty << " specialised unrolled vs generic implicit";
  }
}

}  // namespace
}  // namespace ddn::pooling
