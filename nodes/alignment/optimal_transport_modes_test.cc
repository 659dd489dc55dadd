// Tests of optimal_transport's unrolled and truncated gradient modes (sinkhorn_unrolled.h): the reverse sweep
// against central finite differences of the fixed-sweep map, the unrolled gradient against the implicit one on
// converged solves (and truncated ones away from it), through the node and ddn::Backward, and the flag when the
// recorded iteration stops before converging.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/alignment/sinkhorn_unrolled.h"

namespace ddn::alignment {
namespace {

std::vector<double> Random(size_t n, uint64_t seed, double lo, double hi) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = rng.Uniform(lo, hi);
  return v;
}

double Norm(const std::vector<double>& a) {
  double s = 0;
  for (double x : a) s += x * x;
  return std::sqrt(s);
}

double RelativeDistance(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return Norm(d) / std::max(Norm(b), 1e-300);
}

// L(M, r, c) = Σ V ∘ P after exactly `sweeps` sweeps (tolerance 0, no stall stop).
double FixedSweepLoss(const std::vector<double>& M, const std::vector<double>& r, const std::vector<double>& c,
                      int64_t H, int64_t W, double gamma, int sweeps, const std::vector<double>& V) {
  UnrolledSinkhornOptions o;
  o.tolerance = 0;
  o.stall_sweeps = sweeps + 1;
  o.max_sweeps = sweeps;
  SinkhornTape tape;
  std::vector<double> P(H * W);
  RecordSinkhorn(M.data(), r.data(), c.data(), H, W, gamma, o, &tape, P.data());
  EXPECT_EQ(tape.sweeps, sweeps);
  double l = 0;
  for (int64_t k = 0; k < H * W; ++k) l += V[k] * P[k];
  return l;
}

TEST(OptimalTransportUnrolled, ReverseSweepMatchesFiniteDifferencesOfTheSweepMap) {
  const int64_t H = 4, W = 6;
  const double gamma = 3.0;
  for (int sweeps : {1, 2, 7}) {
    std::vector<double> M = Random(H * W, 1 + sweeps, -1, 1), V = Random(H * W, 11 + sweeps, -1, 1);
    // Marginals that do not sum to the same value: the unrolled map is defined for any positive r, c.
    std::vector<double> r = Random(H, 21 + sweeps, 0.1, 0.4), c = Random(W, 31 + sweeps, 0.05, 0.3);
    UnrolledSinkhornOptions o;
    o.tolerance = 0;
    o.stall_sweeps = sweeps + 1;
    o.max_sweeps = sweeps;
    SinkhornTape tape;
    RecordSinkhorn(M.data(), r.data(), c.data(), H, W, gamma, o, &tape, nullptr);
    ASSERT_EQ(tape.sweeps, sweeps);
    std::vector<double> dM(H * W), dr(H), dc(W);
    SinkhornUnrolledVjp(M.data(), r.data(), c.data(), gamma, tape, sweeps, V.data(), dM.data(), dr.data(), dc.data());
    auto check = [&](std::vector<double>* x, const std::vector<double>& analytic, const char* what) {
      std::vector<double> numeric(x->size());
      for (size_t k = 0; k < x->size(); ++k) {
        const double keep = (*x)[k], h = 1e-5 * std::max(1.0, std::abs(keep));
        (*x)[k] = keep + h;
        const double up = FixedSweepLoss(M, r, c, H, W, gamma, sweeps, V);
        (*x)[k] = keep - h;
        const double down = FixedSweepLoss(M, r, c, H, W, gamma, sweeps, V);
        (*x)[k] = keep;
        numeric[k] = (up - down) / (2 * h);
      }
      EXPECT_LT(RelativeDistance(analytic, numeric), 1e-7) << what << " after " << sweeps << " sweeps";
    };
    check(&M, dM, "dM");
    check(&r, dr, "dr");
    check(&c, dc, "dc");
  }
}

TEST(OptimalTransportUnrolled, TruncatedToAllSweepsIsUnrolledAndFewerIsNot) {
  const int64_t H = 5, W = 5;
  const double gamma = 4.0;
  const std::vector<double> M = Random(H * W, 3, -1, 1), V = Random(H * W, 4, -1, 1);
  const std::vector<double> r(H, 1.0 / H), c(W, 1.0 / W);
  SinkhornTape tape;
  RecordSinkhorn(M.data(), r.data(), c.data(), H, W, gamma, UnrolledSinkhornOptions(), &tape, nullptr);
  ASSERT_TRUE(tape.converged);
  ASSERT_GT(tape.sweeps, 5);
  std::vector<double> all(H * W), truncated(H * W), one(H * W);
  SinkhornUnrolledVjp(M.data(), r.data(), c.data(), gamma, tape, tape.sweeps, V.data(), all.data(), nullptr, nullptr);
  SinkhornUnrolledVjp(M.data(), r.data(), c.data(), gamma, tape, tape.sweeps + 100, V.data(), truncated.data(), nullptr,
                      nullptr);
  EXPECT_EQ(all, truncated);
  SinkhornUnrolledVjp(M.data(), r.data(), c.data(), gamma, tape, 1, V.data(), one.data(), nullptr, nullptr);
  EXPECT_GT(RelativeDistance(one, all), 1e-3);
}

struct Gradients {
  Tensor M, r, c;
};

Gradients NodeGradients(const std::string& mode, const TensorMap& inputs, const Tensor& v, double gamma,
                        std::vector<ProblemStatus>* status = nullptr) {
  auto node = MakeNode("optimal_transport", {{"gamma", std::to_string(gamma)}});
  RunOptions run;
  run.threads = 1;
  run.backward = GradientMode::Parse(mode);
  ForwardResult fwd = Forward(*node, inputs, run);
  const TensorMap g = Backward(*node, inputs, fwd.outputs, {{"P", v}}, &fwd.status, run);
  if (status) *status = fwd.status;
  return {g.at("M"), g.at("r"), g.at("c")};
}

double RelativeDistance(const Tensor& a, const Tensor& b) {
  return RelativeDistance(std::vector<double>(a.values().begin(), a.values().end()),
                          std::vector<double>(b.values().begin(), b.values().end()));
}

TEST(OptimalTransportUnrolled, AgreesWithImplicitOnConvergedSolvesThroughTheNode) {
  Rng rng(7);
  for (double gamma : {1.0, 10.0}) {
    Tensor M({3, 6, 9}), r({3, 6}), c({3, 9}), v({3, 6, 9});
    for (auto& x : M.values()) x = rng.Normal();
    for (auto& x : v.values()) x = rng.Normal();
    for (auto& x : r.values()) x = rng.Uniform(0.5, 1.5);
    for (auto& x : c.values()) x = rng.Uniform(0.5, 1.5);
    const TensorMap inputs{{"M", M}, {"r", r}, {"c", c}};
    const Gradients implicit = NodeGradients("implicit", inputs, v, gamma);
    std::vector<ProblemStatus> status;
    const Gradients unrolled = NodeGradients("unrolled", inputs, v, gamma, &status);
    for (const auto& s : status) EXPECT_FALSE(s.flags & kNotConverged) << s.note;
    EXPECT_LT(RelativeDistance(unrolled.M, implicit.M), 1e-9) << "gamma " << gamma;
    EXPECT_LT(RelativeDistance(unrolled.r, implicit.r), 1e-9) << "gamma " << gamma;
    EXPECT_LT(RelativeDistance(unrolled.c, implicit.c), 1e-9) << "gamma " << gamma;
    const Gradients truncated = NodeGradients("truncated:2", inputs, v, gamma);
    EXPECT_GT(RelativeDistance(truncated.M, implicit.M), 1e-4) << "gamma " << gamma;
  }
}

TEST(OptimalTransportUnrolled, FlagsARecordedIterationThatStopsShort) {
  // γ·range(M) ~ 400: plain Sinkhorn contracts slowly; with a cap of 30 sweeps it is far from converged.
  Tensor M({1, 8, 8}), v({1, 8, 8});
  Rng rng(9);
  for (auto& x : M.values()) x = rng.Normal();
  for (auto& x : v.values()) x = rng.Normal();
  auto node = MakeNode("optimal_transport", {{"gamma", "100"}, {"unrolled_max_sweeps", "30"}});
  RunOptions run;
  run.threads = 1;
  run.backward = GradientMode::Parse("unrolled");
  ForwardResult fwd = Forward(*node, {{"M", M}}, run);
  const TensorMap g = Backward(*node, {{"M", M}}, fwd.outputs, {{"P", v}}, &fwd.status, run);
  EXPECT_TRUE(fwd.status[0].flags & kNotConverged) << fwd.status[0].note;
  for (double x : g.at("M").values()) EXPECT_TRUE(std::isfinite(x));
}

}  // namespace
}  // namespace ddn::alignment
