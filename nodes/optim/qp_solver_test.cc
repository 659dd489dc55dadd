// Tests of the QP solver: known solutions, the unrolled adjoint against finite differences of the
// fixed-iteration map, unrolled against implicit, infeasibility and bad data.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/random.h"
#include "nodes/optim/qp_problems.h"
#include "nodes/optim/qp_solver.h"

namespace ddn::optim {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

double RelErr(const VectorXd& a, const VectorXd& b) {
  return (a - b).norm() / std::max({a.norm(), b.norm(), 1e-300});
}

TEST(QpSolver, RecoversKnownSolutionActiveSetAndMultipliers) {
  Rng rng(3);
  for (int trial = 0; trial < 40; ++trial) {
    KnownQpOptions o;
    o.n = 4 + trial % 7;
    o.p = trial % 3;
    o.m = 3 + trial % 11;
    o.strongly_active = std::min(o.m, (trial % 4) * (o.n - o.p) / 3);
    KnownQp k = MakeKnownQp(o, &rng);
    ValidateQp(&k.data);
    ProblemStatus status;
    const QpSolution s = SolveQp(k.data, QpOptions(), &status);
    EXPECT_LT(RelErr(s.z, k.z), 1e-12) << trial;
    EXPECT_LT(RelErr(s.lambda, k.lambda), 1e-10) << trial;
    if (o.p > 0) {
      EXPECT_LT(RelErr(s.nu, k.nu), 1e-10) << trial;
    }
    std::vector<int> want;
    for (int i = 0; i < o.strongly_active; ++i) want.push_back(i);
    EXPECT_EQ(s.active, want) << trial;
    EXPECT_TRUE(s.polished);
    EXPECT_LT(status.residual, 1e-13) << trial;
  }
}

TEST(QpSolver, WeaklyActiveConstraintIsDegenerate) {
  Rng rng(5);
  KnownQpOptions o;
  o.n = 6, o.m = 8, o.p = 1, o.strongly_active = 2, o.weakly_active = 1;
  KnownQp k = MakeKnownQp(o, &rng);
  ValidateQp(&k.data);
  ProblemStatus forward;
  const QpSolution s = SolveQp(k.data, QpOptions(), &forward);
  EXPECT_LT(RelErr(s.z, k.z), 1e-9);
  ProblemStatus backward;
  QpGradient g;
  QpImplicitVjp(k.data, s.z, VectorXd::Ones(o.n), &g, &backward);
  EXPECT_TRUE(backward.flags & kDegenerate) << backward.note;
  EXPECT_TRUE(g.Q.allFinite() && g.G.allFinite());
}

TEST(QpSolver, UnrolledAdjointMatchesFiniteDifferencesOfTheIterationMap) {
  Rng rng(11);
  KnownQpOptions o;
  o.n = 5, o.m = 7, o.p = 2, o.strongly_active = 2;
  KnownQp k = MakeKnownQp(o, &rng);
  ValidateQp(&k.data);
  QpSolution start;
  start.z = VectorXd::Zero(o.n);
  start.s = VectorXd::Constant(o.m, 1.0) + (k.data.h - k.data.G * start.z).cwiseAbs();
  start.lambda = VectorXd::Constant(o.m, 1.0);
  start.nu = VectorXd::Zero(o.p);
  const int T = 5;
  // The unconverged map: run the interior point directly through the option without tolerance stop.
  auto map = [&](const QpData& d, QpTape* tape) {
    QpOptions opt;
    opt.max_iterations = T;
    opt.tolerance = 1e-300;
    opt.polish = false;
    ProblemStatus st;
    QpSolution out;
    try {
      out = SolveQp(d, opt, &st, tape, &start);
    } catch (const Error&) {
    }
    return out;
  };
  QpTape tape;
  map(k.data, &tape);
  ASSERT_EQ(static_cast<int>(tape.steps.size()), T);
  VectorXd v(o.n);
  for (auto& e : v) e = rng.Normal();
  QpGradient g;
  QpUnrolledVjp(k.data, tape, T, v, &g);
  // z_T itself: the tape's last step plus its update.
  auto zT = [&](const QpData& d) {
    QpTape t;
    map(d, &t);
    const QpTapeStep& st = t.steps.back();
    return VectorXd(st.z + st.alpha * st.dz);
  };
  auto fd = [&](auto&& perturb) {
    const double h = 1e-5;
    double phi[4];
    const double steps[4] = {2 * h, h, -h, -2 * h};
    for (int i = 0; i < 4; ++i) {
      QpData d = k.data;
      perturb(&d, steps[i]);
      phi[i] = v.dot(zT(d));
    }
    return CentralDifference(phi[0], phi[1], phi[2], phi[3], h);
  };
  for (int j = 0; j < o.n; ++j) {
    EXPECT_NEAR(g.q[j], fd([&](QpData* d, double e) { d->q[j] += e; }), 1e-7 * (1 + std::abs(g.q[j]))) << "q" << j;
    for (int l = 0; l < o.n; ++l) {
      // Q enters through its symmetric part: perturb Q_jl and Q_lj by e/2 each (Q_jj by e), whose derivative is
      // the symmetric gradient's entry (j, l).
      const double fdQ = fd([&](QpData* d, double e) {
        d->Q(j, l) += 0.5 * e;
        d->Q(l, j) += 0.5 * e;
      });
      EXPECT_NEAR(g.Q(j, l), fdQ, 1e-6 * (1 + std::abs(g.Q(j, l)))) << "Q" << j << l;
    }
  }
  for (int i = 0; i < o.m; ++i) {
    EXPECT_NEAR(g.h[i], fd([&](QpData* d, double e) { d->h[i] += e; }), 1e-7 * (1 + std::abs(g.h[i]))) << "h" << i;
    for (int j = 0; j < o.n; ++j)
      EXPECT_NEAR(g.G(i, j), fd([&](QpData* d, double e) { d->G(i, j) += e; }), 1e-6 * (1 + std::abs(g.G(i, j))))
          << "G" << i << j;
  }
  for (int i = 0; i < o.p; ++i) {
    EXPECT_NEAR(g.b[i], fd([&](QpData* d, double e) { d->b[i] += e; }), 1e-7 * (1 + std::abs(g.b[i]))) << "b" << i;
    for (int j = 0; j < o.n; ++j)
      EXPECT_NEAR(g.A(i, j), fd([&](QpData* d, double e) { d->A(i, j) += e; }), 1e-6 * (1 + std::abs(g.A(i, j))))
          << "A" << i << j;
  }
}

TEST(QpSolver, UnrolledAgreesWithImplicitOnConvergedSolves) {
  Rng rng(17);
  for (int trial = 0; trial < 10; ++trial) {
    KnownQpOptions o;
    o.n = 8, o.m = 12, o.p = 2, o.strongly_active = trial % 5;
    KnownQp k = MakeKnownQp(o, &rng);
    ValidateQp(&k.data);
    QpTape tape;
    ProblemStatus status;
    QpOptions opt;
    opt.tolerance = 1e-13;
    const QpSolution s = SolveQp(k.data, opt, &status, &tape);
    VectorXd v = VectorXd::LinSpaced(o.n, -1.0, 1.0);
    QpGradient gi, gu;
    QpImplicitVjp(k.data, s.z, v, &gi, &status);
    QpUnrolledVjp(k.data, tape, 1 << 20, v, &gu);
    auto flat = [](const QpGradient& g) {
      VectorXd all(g.Q.size() + g.q.size() + g.G.size() + g.h.size() + g.A.size() + g.b.size());
      all << g.Q.reshaped(), g.q, g.G.reshaped(), g.h, g.A.reshaped(), g.b;
      return all;
    };
    EXPECT_LT(RelErr(flat(gu), flat(gi)), 1e-6) << trial;
    // Truncated through the last step only is further away than the full unrolled gradient.
    QpGradient gt;
    QpUnrolledVjp(k.data, tape, 1, v, &gt);
    EXPECT_GE(RelErr(flat(gt), flat(gi)), RelErr(flat(gu), flat(gi))) << trial;
  }
}

TEST(QpSolver, InfeasibleConstraintsAreReported) {
  QpData d;
  d.Q = MatrixXd::Identity(2, 2);
  d.q = VectorXd::Zero(2);
  d.G.resize(2, 2);
  d.G << 1, 0, -1, 0;  // z0 <= -1 and -z0 <= -1 (z0 >= 1)
  d.h = VectorXd::Constant(2, -1.0);
  d.A.resize(0, 2);
  d.b.resize(0);
  ValidateQp(&d);
  ProblemStatus s;
  try {
    SolveQp(d, QpOptions(), &s);
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("infeasible"), std::string::npos) << e.what();
  }
}

TEST(QpSolver, BadDataIsRefused) {
  QpData d;
  d.Q = MatrixXd::Identity(3, 3);
  d.q = VectorXd::Zero(3);
  d.G.resize(0, 3);
  d.h.resize(0);
  d.A.resize(0, 3);
  d.b.resize(0);
  QpData asym = d;
  asym.Q(0, 1) = 0.5;
  EXPECT_THROW(ValidateQp(&asym), InvalidInput);
  QpData indefinite = d;
  indefinite.Q(2, 2) = -1;
  EXPECT_THROW(ValidateQp(&indefinite), InvalidInput);
  QpData singular = d;
  singular.Q(2, 2) = 0;
  EXPECT_THROW(ValidateQp(&singular), InvalidInput);
  QpData rank = d;
  rank.A.resize(2, 3);
  rank.A << 1, 2, 3, 2, 4, 6;
  rank.b = VectorXd::Ones(2);
  EXPECT_THROW(ValidateQp(&rank), InvalidInput);
}

}  // namespace
}  // namespace ddn::optim
