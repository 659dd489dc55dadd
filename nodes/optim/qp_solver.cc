#include "nodes/optim/qp_solver.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::optim {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

double MaxAbs(const VectorXd& v) {
  return v.size() ? v.cwiseAbs().maxCoeff() : 0.0;
}
double MaxAbs(const MatrixXd& m) {
  return m.size() ? m.cwiseAbs().maxCoeff() : 0.0;
}

// The Newton system of one interior-point iteration (rows d, p, e, c; columns z, s, λ, ν):
//
//   J = [Q 0 Gᵀ Aᵀ; G I 0 0; A 0 0 0; 0 Λ S 0],   J Δ = −r,
//
// reduced to [H Aᵀ; A 0], H = Q + Gᵀ diag(λ/s) G, with Cholesky factors of H and of A H⁻¹ Aᵀ.
class NewtonSystem {
 public:
  // Returns false if a factorisation fails.
  bool Factor(const QpData& d, const VectorXd& s, const VectorXd& lambda) {
    s_ = &s;
    lambda_ = &lambda;
    data_ = &d;
    D_ = lambda.cwiseQuotient(s);
    // H = Q + Gᵀ D G, lower triangle only (what the Cholesky factorisation reads): a rank-m update by √D G.
    MatrixXd H = d.Q;
    if (d.m() > 0) {
      const MatrixXd scaled = D_.cwiseSqrt().asDiagonal() * d.G;
      H.selfadjointView<Eigen::Lower>().rankUpdate(scaled.transpose());
    }
    H_.compute(H);
    if (H_.info() != Eigen::Success) return false;
    if (d.p() > 0) {
      HinvAt_ = H_.solve(d.A.transpose());
      S_.compute(d.A * HinvAt_);
      if (S_.info() != Eigen::Success) return false;
    }
    return true;
  }

  // [H Aᵀ; A 0][x; y] = [a; c].
  void Kkt(const VectorXd& a, const VectorXd& c, VectorXd* x, VectorXd* y) const {
    *x = H_.solve(a);
    if (data_->p() > 0) {
      *y = S_.solve(HinvAt_.transpose() * a - c);
      x->noalias() -= HinvAt_ * *y;
    } else {
      y->resize(0);
    }
  }

  // J Δ = −(r_d, r_p, r_e, r_c).
  void Solve(const VectorXd& rd, const VectorXd& rp, const VectorXd& re, const VectorXd& rc, VectorXd* dz, VectorXd* ds,
             VectorXd* dl, VectorXd* dn) const {
    const QpData& d = *data_;
    VectorXd a = -rd;
    if (d.m() > 0) a.noalias() -= d.G.transpose() * (lambda_->cwiseProduct(rp) - rc).cwiseQuotient(*s_);
    Kkt(a, -re, dz, dn);
    *ds = -rp - d.G * *dz;
    *dl = (-rc - lambda_->cwiseProduct(*ds)).cwiseQuotient(*s_);
  }

  // Jᵀ w = (b_z, b_s, b_λ, b_ν).
  void SolveTransposed(const VectorXd& bz, const VectorXd& bs, const VectorXd& bl, const VectorXd& bn, VectorXd* wd,
                       VectorXd* wp, VectorXd* we, VectorXd* wc) const {
    const QpData& d = *data_;
    VectorXd a = bz;
    if (d.m() > 0) a.noalias() -= d.G.transpose() * (bs - D_.cwiseProduct(bl));
    Kkt(a, bn, wd, we);
    *wc = (bl - d.G * *wd).cwiseQuotient(*s_);
    *wp = bs - lambda_->cwiseProduct(*wc);
  }

  void Export(QpTapeStep* step) const {
    step->H = H_;
    step->S = S_;
    step->HinvAt = HinvAt_;
  }
  void Import(const QpData& d, const QpTapeStep& step) {
    data_ = &d;
    s_ = &step.s;
    lambda_ = &step.lambda;
    D_ = step.lambda.cwiseQuotient(step.s);
    H_ = step.H;
    S_ = step.S;
    HinvAt_ = step.HinvAt;
  }

 private:
  const QpData* data_ = nullptr;
  const VectorXd* s_ = nullptr;
  const VectorXd* lambda_ = nullptr;
  VectorXd D_;
  Eigen::LLT<MatrixXd> H_, S_;
  MatrixXd HinvAt_;
};

// Largest α ≤ 1 (times `fraction`) keeping s + αΔs ≥ 0 and λ + αΔλ ≥ 0 (α_max from the blocking ratio).
// *block is the blocking index (s_i: i; λ_i: m + i), or −1 when the step is 1.
double StepLength(const VectorXd& s, const VectorXd& l, const VectorXd& ds, const VectorXd& dl, double fraction,
                  int* block) {
  const int m = static_cast<int>(s.size());
  double amax = std::numeric_limits<double>::infinity();
  *block = -1;
  for (int i = 0; i < m; ++i) {
    if (ds[i] < 0) {
      const double r = -s[i] / ds[i];
      if (r < amax) amax = r, *block = i;
    }
    if (dl[i] < 0) {
      const double r = -l[i] / dl[i];
      if (r < amax) amax = r, *block = m + i;
    }
  }
  if (fraction * amax >= 1.0) {
    *block = -1;
    return 1.0;
  }
  return fraction * amax;
}

struct Residuals {
  VectorXd rd, rp, re;
  double scaled = 0;
};

void ComputeResiduals(const QpData& d, const VectorXd& z, const VectorXd& s, const VectorXd& l, const VectorXd& nu,
                      Residuals* r) {
  const VectorXd Qz = d.Q * z;
  r->rd = Qz + d.q;
  double scale_d = 1.0 + std::max(MaxAbs(d.q), MaxAbs(Qz));
  if (d.m() > 0) {
    const VectorXd Gl = d.G.transpose() * l;
    r->rd += Gl;
    scale_d = std::max(scale_d, 1.0 + MaxAbs(Gl));
    r->rp = d.G * z + s - d.h;
  } else {
    r->rp.resize(0);
  }
  if (d.p() > 0) {
    const VectorXd An = d.A.transpose() * nu;
    r->rd += An;
    scale_d = std::max(scale_d, 1.0 + MaxAbs(An));
    r->re = d.A * z - d.b;
  } else {
    r->re.resize(0);
  }
  const double mu = d.m() > 0 ? s.dot(l) / d.m() : 0.0;
  r->scaled = std::max({MaxAbs(r->rd) / scale_d, MaxAbs(r->rp) / (1.0 + MaxAbs(d.h)),
                        MaxAbs(r->re) / (1.0 + MaxAbs(d.b)), mu / scale_d});
}

// The equality-constrained QP on the rows C = [G_active; A], Qz + Cᵀy = −q, Cz = d, by the null-space method
// (Nocedal & Wright §16.2): Cᵀ = [Y Z][R; 0] (Householder QR with column pivoting to detect rank), z = Y R⁻ᵀ d + Z w
// with (ZᵀQZ) w = −Zᵀ(q + Q Y R⁻ᵀ d), y = R⁻¹ Yᵀ(−Qz − q). Unlike the Schur complement C Q⁻¹ Cᵀ it stays accurate
// when Q is ill-conditioned and gives z exactly on the constraints (when C is square, z = C⁻¹d whatever Q is).
// The same factorisation serves the adjoint (KktAdjoint).
class ActiveSetKkt {
 public:
  // Returns false if C is rank deficient (or has more rows than n) or ZᵀQZ is not positive definite.
  bool Factor(const QpData& d, const std::vector<int>& active) {
    const int n = d.n(), na = static_cast<int>(active.size());
    rows_ = na + d.p();
    C_.resize(rows_, n);
    rhs_.resize(rows_);
    for (int i = 0; i < na; ++i) C_.row(i) = d.G.row(active[i]), rhs_[i] = d.h[active[i]];
    if (d.p() > 0) C_.bottomRows(d.p()) = d.A, rhs_.tail(d.p()) = d.b;
    Q_ = &d.Q;
    if (rows_ > n) return false;
    if (rows_ > 0) {
      qr_.compute(C_.transpose());
      qr_.setThreshold(1e-11);
      if (qr_.rank() < rows_) return false;
      const MatrixXd Qfull = qr_.householderQ();
      Y_ = Qfull.leftCols(rows_);
      Z_ = Qfull.rightCols(n - rows_);
      R_ = qr_.matrixQR().topLeftCorner(rows_, rows_).triangularView<Eigen::Upper>();
    } else {
      Y_.resize(n, 0);
      Z_ = MatrixXd::Identity(n, n);
      R_.resize(0, 0);
    }
    reduced_.compute(Z_.transpose() * d.Q * Z_);
    return reduced_.info() == Eigen::Success;
  }
  // z and multipliers y (in the order of C's rows) of the KKT system with right-hand side (−q, d).
  void Solve(const VectorXd& q, VectorXd* z, VectorXd* y) const {
    // Rᵀ Yᵀ z = Pᵀ d (the QR is of Cᵀ P with P the column permutation).
    VectorXd zp = VectorXd::Zero(q.size());
    if (rows_ > 0) {
      const VectorXd pd = qr_.colsPermutation().transpose() * rhs_;
      zp = Y_ * R_.transpose().triangularView<Eigen::Lower>().solve(pd);
    }
    VectorXd w = Z_.cols() ? VectorXd(reduced_.solve(-(Z_.transpose() * (q + *Q_ * zp)))) : VectorXd(0);
    *z = zp + Z_ * w;
    *y = Multipliers(-(*Q_ * *z + q));
  }
  // [Q Cᵀ; C 0][a; c] = [v; 0].
  void Adjoint(const VectorXd& v, VectorXd* a, VectorXd* c) const {
    *a = Z_.cols() ? VectorXd(Z_ * reduced_.solve(Z_.transpose() * v)) : VectorXd(VectorXd::Zero(v.size()));
    *c = Multipliers(v - *Q_ * *a);
  }
  int rows() const { return rows_; }
  const MatrixXd& C() const { return C_; }

 private:
  // y with Cᵀy = r (r in the range of Cᵀ): y = P R⁻¹ Yᵀ r.
  VectorXd Multipliers(const VectorXd& r) const {
    if (rows_ == 0) return VectorXd(0);
    const VectorXd t = R_.triangularView<Eigen::Upper>().solve(Y_.transpose() * r);
    return qr_.colsPermutation() * t;
  }
  int rows_ = 0;
  MatrixXd C_, Y_, Z_, R_;
  VectorXd rhs_;
  const MatrixXd* Q_ = nullptr;
  Eigen::ColPivHouseholderQR<MatrixXd> qr_;
  Eigen::LLT<MatrixXd> reduced_;
};

bool SolveActiveSet(const QpData& d, const std::vector<int>& active, VectorXd* z, VectorXd* lambda_active,
                    VectorXd* nu) {
  ActiveSetKkt kkt;
  if (!kkt.Factor(d, active)) return false;
  VectorXd y;
  kkt.Solve(d.q, z, &y);
  const int na = static_cast<int>(active.size());
  *lambda_active = y.head(na);
  *nu = y.tail(d.p());
  return z->allFinite() && y.allFinite();
}

}  // namespace

void QpOptions::Validate() const {
  if (max_iterations < 1) throw InvalidInput("qp: max_iterations must be >= 1, got " + std::to_string(max_iterations));
  if (!(tolerance > 0 && tolerance < 1))
    throw InvalidInput("qp: tolerance must be in (0, 1), got " + FormatDouble(tolerance));
  if (!(step_fraction > 0 && step_fraction < 1)) {
    throw InvalidInput("qp: step_fraction must be in (0, 1), got " + FormatDouble(step_fraction));
  }
}

size_t QpTape::Bytes() const {
  size_t doubles = 0;
  for (const auto& s : steps) {
    doubles += s.z.size() * 3 + s.s.size() * 3 + s.lambda.size() * 3 + s.nu.size() * 3;
    doubles += s.H.matrixLLT().size() + s.S.matrixLLT().size() + s.HinvAt.size() + s.dz_a.size() + s.ds_a.size();
  }
  return doubles * sizeof(double);
}

void ValidateQp(QpData* d) {
  const int n = d->n();
  const double qmax = MaxAbs(d->Q);
  const double asym = MaxAbs(MatrixXd(d->Q - d->Q.transpose()));
  if (asym > 1e-3 * qmax) {
    Eigen::Index i = 0, j = 0;
    (d->Q - d->Q.transpose()).cwiseAbs().maxCoeff(&i, &j);
    throw InvalidInput("input 'Q' is not symmetric: Q[" + std::to_string(i) + "][" + std::to_string(j) +
                       "] = " + FormatDouble(d->Q(i, j)) + " but Q[" + std::to_string(j) + "][" + std::to_string(i) +
                       "] = " + FormatDouble(d->Q(j, i)));
  }
  d->Q = 0.5 * (d->Q + d->Q.transpose()).eval();
  Eigen::LLT<MatrixXd> llt(d->Q);
  if (qmax == 0 || llt.info() != Eigen::Success || llt.rcond() < 1e-14) {
    const double lmin = Eigen::SelfAdjointEigenSolver<MatrixXd>(d->Q, Eigen::EigenvaluesOnly).eigenvalues()[0];
    throw InvalidInput("input 'Q' is not positive definite (smallest eigenvalue " + FormatDouble(lmin) +
                       "): the QP may be unbounded or have many minimisers");
  }
  if (d->p() > 0) {
    if (d->p() > n) {
      throw InvalidInput("input 'A' has more rows (p = " + std::to_string(d->p()) +
                         ") than variables (n = " + std::to_string(n) + ")");
    }
    Eigen::ColPivHouseholderQR<MatrixXd> qr(d->A.transpose());
    qr.setThreshold(1e-12);
    if (qr.rank() < d->p()) {
      throw InvalidInput("input 'A' does not have full row rank (rank " + std::to_string(qr.rank()) +
                         " < p = " + std::to_string(d->p()) + "): remove redundant equalities");
    }
  }
}

double QpResidual(const QpData& d, const VectorXd& z, const VectorXd& lambda, const VectorXd& nu) {
  const VectorXd Qz = d.Q * z;
  VectorXd rd = Qz + d.q;
  double scale_d = 1.0 + std::max(MaxAbs(d.q), MaxAbs(Qz));
  double primal = 0, comp = 0, dual = 0;
  if (d.m() > 0) {
    const VectorXd Gl = d.G.transpose() * lambda;
    rd += Gl;
    scale_d = std::max(scale_d, 1.0 + MaxAbs(Gl));
    const VectorXd slack = d.h - d.G * z;
    for (int i = 0; i < d.m(); ++i) {
      primal = std::max(primal, -slack[i]);
      comp = std::max(comp, std::abs(lambda[i] * slack[i]));
      dual = std::max(dual, -lambda[i]);
    }
    primal /= 1.0 + MaxAbs(d.h);
  }
  if (d.p() > 0) {
    const VectorXd An = d.A.transpose() * nu;
    rd += An;
    scale_d = std::max(scale_d, 1.0 + MaxAbs(An));
    primal = std::max(primal, MaxAbs(VectorXd(d.A * z - d.b)) / (1.0 + MaxAbs(d.b)));
  }
  return std::max({MaxAbs(rd) / scale_d, primal, comp / scale_d, dual / scale_d});
}

namespace {

// The interior-point iterations from the start `u`; returns the final scaled residual (before polishing).
double InteriorPoint(const QpData& d, const QpOptions& o, QpSolution* u, QpTape* tape) {
  const int m = d.m();
  NewtonSystem sys;
  Residuals r;
  VectorXd dz_a, ds_a, dl_a, dn_a, dz, ds, dl, dn;
  u->iterations = 0;
  for (int k = 0; k < o.max_iterations; ++k) {
    ComputeResiduals(d, u->z, u->s, u->lambda, u->nu, &r);
    if (r.scaled <= o.tolerance) break;
    if (!sys.Factor(d, u->s, u->lambda)) break;
    const double mu = u->s.dot(u->lambda) / m;
    // Predictor (affine scaling): target s∘λ = 0.
    const VectorXd rc_a = u->s.cwiseProduct(u->lambda);
    sys.Solve(r.rd, r.rp, r.re, rc_a, &dz_a, &ds_a, &dl_a, &dn_a);
    int block_a = -1;
    const double alpha_a = StepLength(u->s, u->lambda, ds_a, dl_a, 1.0, &block_a);
    const double mu_a = (u->s + alpha_a * ds_a).dot(u->lambda + alpha_a * dl_a) / m;
    const bool clamped = mu_a >= mu;
    const double sigma = clamped ? 1.0 : std::pow(mu_a / mu, 3);
    // Corrector: target σμ, second-order term Δs_aff∘Δλ_aff.
    const VectorXd rc = rc_a + ds_a.cwiseProduct(dl_a) - VectorXd::Constant(m, sigma * mu);
    sys.Solve(r.rd, r.rp, r.re, rc, &dz, &ds, &dl, &dn);
    int block = -1;
    const double alpha = StepLength(u->s, u->lambda, ds, dl, o.step_fraction, &block);
    if (!(alpha > 0) || !dz.allFinite() || !dl.allFinite()) break;
    if (tape) {
      QpTapeStep st;
      st.z = u->z, st.s = u->s, st.lambda = u->lambda, st.nu = u->nu;
      sys.Export(&st);
      st.dz_a = dz_a, st.ds_a = ds_a, st.dl_a = dl_a, st.dn_a = dn_a;
      st.dz = dz, st.ds = ds, st.dl = dl, st.dn = dn;
      st.alpha_a = alpha_a, st.alpha = alpha, st.block_a = block_a, st.block = block;
      st.mu = mu, st.mu_a = mu_a, st.sigma_clamped = clamped;
      tape->steps.push_back(std::move(st));
    }
    u->z += alpha * dz;
    u->s += alpha * ds;
    u->lambda += alpha * dl;
    u->nu += alpha * dn;
    ++u->iterations;
    // Safeguard against round-off driving a slack or multiplier to exactly zero.
    if (u->s.minCoeff() <= 0 || u->lambda.minCoeff() <= 0) break;
  }
  ComputeResiduals(d, u->z, u->s, u->lambda, u->nu, &r);
  return r.scaled;
}

// Mehrotra-style starting point: z from the regularised KKT system with D = I, then s, λ shifted positive.
void StartingPoint(const QpData& d, QpSolution* u) {
  const int m = d.m(), n = d.n();
  MatrixXd H = d.Q + d.G.transpose() * d.G;
  Eigen::LLT<MatrixXd> Hllt(H);
  VectorXd a = -d.q + d.G.transpose() * d.h;
  if (d.p() > 0) {
    const MatrixXd HinvAt = Hllt.solve(d.A.transpose());
    Eigen::LLT<MatrixXd> S(d.A * HinvAt);
    u->nu = S.solve(HinvAt.transpose() * a - d.b);
    u->z = Hllt.solve(a) - HinvAt * u->nu;
  } else {
    u->z = Hllt.solve(a);
    u->nu.resize(0);
  }
  if (!u->z.allFinite()) u->z = VectorXd::Zero(n);
  if (d.p() > 0 && !u->nu.allFinite()) u->nu = VectorXd::Zero(d.p());
  VectorXd s = d.h - d.G * u->z;
  VectorXd l = -s;
  const double as = -s.minCoeff(), al = -l.minCoeff();
  if (as >= 0) s.array() += 1.0 + as;
  if (al >= 0) l.array() += 1.0 + al;
  u->s = s;
  u->lambda = l;
  (void)m;
}

// Phase I: the least achievable max_i (G_i z − h_i) subject to Az = b, by the same method on the strictly
// convex QP min ε‖z‖²/2 + εt²/2 + t s.t. Gz − t1 ≤ h, −t ≤ 1, Az = b.
double LeastViolation(const QpData& d) {
  const int n = d.n(), m = d.m(), p = d.p();
  QpData f;
  const double eps = 1e-8;
  f.Q = eps * MatrixXd::Identity(n + 1, n + 1);
  f.q = VectorXd::Zero(n + 1);
  f.q[n] = 1.0;
  f.G = MatrixXd::Zero(m + 1, n + 1);
  f.G.topLeftCorner(m, n) = d.G;
  f.G.block(0, n, m, 1).setConstant(-1.0);
  f.G(m, n) = -1.0;
  f.h.resize(m + 1);
  f.h.head(m) = d.h;
  f.h[m] = 1.0;
  f.A = MatrixXd::Zero(p, n + 1);
  if (p > 0) f.A.leftCols(n) = d.A;
  f.b = d.b;
  QpOptions o;
  o.max_iterations = 100;
  o.tolerance = 1e-10;
  QpSolution u;
  StartingPoint(f, &u);
  InteriorPoint(f, o, &u, nullptr);
  return u.z[n];
}

}  // namespace

QpSolution SolveQp(const QpData& d, const QpOptions& o, ProblemStatus* status, QpTape* tape, const QpSolution* start) {
  const int n = d.n(), m = d.m(), p = d.p();
  QpSolution u;
  if (m == 0) {
    // No inequalities: the KKT system is linear; no iterations to differentiate.
    std::vector<int> none;
    VectorXd la;
    SolveActiveSet(d, none, &u.z, &la, &u.nu);
    u.s.resize(0);
    u.lambda.resize(0);
    u.residual = QpResidual(d, u.z, u.lambda, u.nu);
    u.polished = true;
    if (status) status->residual = u.residual, status->iterations = 0;
    return u;
  }
  if (start) {
    u = *start;
  } else {
    StartingPoint(d, &u);
  }
  const double ipm_residual = InteriorPoint(d, o, &u, tape);

  // Polish on the identified active set.
  double best = ipm_residual;
  const VectorXd slack_ipm = d.h - d.G * u.z;
  double feas_scale = 1.0 + MaxAbs(d.h);
  if (o.polish) {
    std::vector<int> active;
    for (int i = 0; i < m; ++i)
      if (u.lambda[i] > u.s[i]) active.push_back(i);
    VectorXd z, la, nu;
    const double tol_p = 1e-9 * feas_scale;
    bool ok = false;
    for (int round = 0; round <= m + 1; ++round) {
      if (!SolveActiveSet(d, active, &z, &la, &nu)) break;
      const double scale_l = 1.0 + std::max(MaxAbs(d.q), MaxAbs(la));
      int drop = -1, add = -1;
      double worst_l = -1e-9 * scale_l, worst_v = tol_p;
      for (size_t i = 0; i < active.size(); ++i)
        if (la[i] < worst_l) worst_l = la[i], drop = static_cast<int>(i);
      std::vector<char> in(m, 0);
      for (int i : active) in[i] = 1;
      const VectorXd viol = d.G * z - d.h;
      for (int i = 0; i < m; ++i)
        if (!in[i] && viol[i] > worst_v) worst_v = viol[i], add = i;
      if (drop < 0 && add < 0) {
        ok = true;
        break;
      }
      if (drop >= 0) active.erase(active.begin() + drop);
      if (add >= 0) active.push_back(add);
      std::sort(active.begin(), active.end());
    }
    if (ok) {
      VectorXd lambda = VectorXd::Zero(m);
      for (size_t i = 0; i < active.size(); ++i) lambda[active[i]] = std::max(la[i], 0.0);
      const double res = QpResidual(d, z, lambda, nu);
      if (res <= std::max(best, 1e-12)) {
        u.z = z;
        u.nu = nu;
        u.lambda = lambda;
        u.s = (d.h - d.G * z).cwiseMax(0.0);
        u.active = active;
        u.polished = true;
        best = res;
      }
    }
  }
  if (!u.polished) {
    for (int i = 0; i < m; ++i)
      if (u.lambda[i] > u.s[i]) u.active.push_back(i);
    best = std::max(ipm_residual, QpResidual(d, u.z, u.lambda, u.nu));
  }
  u.residual = best;
  if (status) status->residual = best, status->iterations = u.iterations;
  if (!(best <= std::max(1e-8, o.tolerance))) {
    const double t = LeastViolation(d);
    if (t > 1e-7 * feas_scale) {
      throw InvalidInput(
          "qp: the constraints are infeasible: no z satisfies Gz <= h and Az = b (the least achievable "
          "max_i (G_i z - h_i) is " +
          FormatDouble(t) + ")");
    }
    throw NumericalFailure("qp: the interior-point method did not converge (scaled KKT residual " + FormatDouble(best) +
                           " after " + std::to_string(u.iterations) + " iterations)");
  }
  (void)n, (void)p, (void)slack_ipm;
  return u;
}

// ---- Implicit backward ---------------------------------------------------------------------------------

void QpImplicitVjp(const QpData& d, const VectorXd& z, const VectorXd& v, QpGradient* g, ProblemStatus* status) {
  const int n = d.n(), m = d.m(), p = d.p();
  g->Q = MatrixXd::Zero(n, n);
  g->q = VectorXd::Zero(n);
  g->G = MatrixXd::Zero(m, n);
  g->h = VectorXd::Zero(m);
  g->A = MatrixXd::Zero(p, n);
  g->b = VectorXd::Zero(p);
  // Active rows: on the boundary to within the forward's accuracy (the polish puts them at ~1e-16).
  const VectorXd slack = d.h - d.G * z;
  std::vector<int> active;
  for (int i = 0; i < m; ++i) {
    const double tau = 1e-9 * (1.0 + std::abs(d.h[i]) + d.G.row(i).cwiseAbs().sum() * MaxAbs(z));
    if (slack[i] <= tau) active.push_back(i);
  }
  const double scale = 1.0 + std::max(MaxAbs(d.q), MaxAbs(VectorXd(d.Q * z)));
  // Multipliers from the same factorisation as the adjoint; rows with clearly negative λ are not binding.
  ActiveSetKkt kkt;
  VectorXd la, nu, zz, y;
  int na = 0;
  bool singular = false;
  for (int round = 0; round <= m; ++round) {
    na = static_cast<int>(active.size());
    singular = !kkt.Factor(d, active);
    if (singular) break;
    kkt.Solve(d.q, &zz, &y);
    la = y.head(na);
    nu = y.tail(p);
    int drop = -1;
    double worst = -1e-7 * scale;
    for (int i = 0; i < na; ++i)
      if (la[i] < worst) worst = la[i], drop = i;
    if (drop < 0) break;
    active.erase(active.begin() + drop);
  }
  VectorXd a, c;
  if (singular) {
    // Dependent active rows (or more of them than n): the minimum-norm solution of the full KKT system.
    const int rows = na + p;
    MatrixXd K = MatrixXd::Zero(n + rows, n + rows);
    const MatrixXd& C = kkt.C();
    K.topLeftCorner(n, n) = d.Q;
    K.topRightCorner(n, rows) = C.transpose();
    K.bottomLeftCorner(rows, n) = C;
    Eigen::CompleteOrthogonalDecomposition<MatrixXd> cod;
    cod.setThreshold(1e-10);
    cod.compute(K);
    VectorXd rhs = VectorXd::Zero(n + rows);
    rhs.head(n) = -d.q;
    for (int i = 0; i < na; ++i) rhs[n + i] = d.h[active[i]];
    rhs.tail(p) = d.b;
    y = cod.solve(rhs).tail(rows);
    la = y.head(na);
    nu = y.tail(p);
    rhs.setZero();
    rhs.head(n) = v;
    const VectorXd ac = cod.solve(rhs);
    a = ac.head(n);
    c = ac.tail(rows);
    if (status) status->Set(kNonRegular, "active constraint rows are linearly dependent: minimum-norm gradient");
    if (status && rows > n) status->Set(kDegenerate, "more active constraints than variables");
  } else {
    kkt.Adjoint(v, &a, &c);
  }
  for (int i = 0; i < na; ++i) {
    if (std::abs(la[i]) <= 1e-9 * scale && status) {
      status->Set(kDegenerate, "weakly active inequality " + std::to_string(active[i]) +
                                   " (zero multiplier): one-sided derivative of the active set as identified");
      break;
    }
  }
  const VectorXd dz = -a;
  g->q = dz;
  g->Q = 0.5 * (dz * z.transpose() + z * dz.transpose());
  for (int i = 0; i < na; ++i) {
    const double dl = -c[i];
    g->G.row(active[i]) = dl * z.transpose() + la[i] * dz.transpose();
    g->h[active[i]] = -dl;
  }
  if (p > 0) {
    const VectorXd dn = -c.tail(p);
    g->A = dn * z.transpose() + nu * dz.transpose();
    g->b = -dn;
  }
}

// ---- Unrolled backward ---------------------------------------------------------------------------------

namespace {

// Adjoint of α = min(1, f·r), r = −x_j/Δx_j at the blocking index: adds ᾱ ∂α/∂(x, Δx).
void StepLengthAdjoint(double abar, int block, double fraction, const VectorXd& s, const VectorXd& l,
                       const VectorXd& ds, const VectorXd& dl, VectorXd* sbar, VectorXd* lbar, VectorXd* dsbar,
                       VectorXd* dlbar) {
  if (block < 0 || abar == 0) return;
  const int m = static_cast<int>(s.size());
  const bool on_s = block < m;
  const int i = on_s ? block : block - m;
  const double x = on_s ? s[i] : l[i], dx = on_s ? ds[i] : dl[i];
  const double dx_bar = abar * fraction * x / (dx * dx);
  const double x_bar = -abar * fraction / dx;
  if (on_s) {
    (*sbar)[i] += x_bar;
    (*dsbar)[i] += dx_bar;
  } else {
    (*lbar)[i] += x_bar;
    (*dlbar)[i] += dx_bar;
  }
}

}  // namespace

void QpUnrolledVjp(const QpData& d, const QpTape& tape, int steps, const VectorXd& v, QpGradient* g) {
  const int n = d.n(), m = d.m(), p = d.p();
  MatrixXd Qb = MatrixXd::Zero(n, n), Gb = MatrixXd::Zero(m, n), Ab = MatrixXd::Zero(p, n);
  VectorXd qb = VectorXd::Zero(n), hb = VectorXd::Zero(m), bb = VectorXd::Zero(p);
  // Adjoint of the final iterate: only z is an output.
  VectorXd zb = v, sb = VectorXd::Zero(m), lb = VectorXd::Zero(m), nb = VectorXd::Zero(p);
  const int T = static_cast<int>(tape.steps.size());
  const int K = std::min(std::max(steps, 0), T);
  NewtonSystem sys;
  const double fraction = QpOptions().step_fraction;
  for (int k = T - 1; k >= T - K; --k) {
    const QpTapeStep& st = tape.steps[k];
    sys.Import(d, st);
    // u_{k+1} = u_k + α Δ.
    const double abar = zb.dot(st.dz) + sb.dot(st.ds) + lb.dot(st.dl) + nb.dot(st.dn);
    VectorXd dzb = st.alpha * zb, dsb = st.alpha * sb, dlb = st.alpha * lb, dnb = st.alpha * nb;
    StepLengthAdjoint(abar, st.block, fraction, st.s, st.lambda, st.ds, st.dl, &sb, &lb, &dsb, &dlb);
    // Accumulated residual adjoints (r_d, r_p, r_e are shared by both solves).
    VectorXd rdb = VectorXd::Zero(n), rpb = VectorXd::Zero(m), reb = VectorXd::Zero(p);
    // Corrector solve J Δ = −r: w = J⁻ᵀ Δ̄, r̄ = −w, J̄ = −w Δᵀ.
    VectorXd wd, wp, we, wc;
    sys.SolveTransposed(dzb, dsb, dlb, dnb, &wd, &wp, &we, &wc);
    auto add_jacobian = [&](const VectorXd& dz, const VectorXd& ds, const VectorXd& dl, const VectorXd& dn) {
      Qb.noalias() -= wd * dz.transpose();
      Gb.noalias() -= dl * wd.transpose();
      Gb.noalias() -= wp * dz.transpose();
      if (p > 0) {
        Ab.noalias() -= dn * wd.transpose();
        Ab.noalias() -= we * dz.transpose();
      }
      lb -= wc.cwiseProduct(ds);
      sb -= wc.cwiseProduct(dl);
    };
    add_jacobian(st.dz, st.ds, st.dl, st.dn);
    rdb -= wd;
    rpb -= wp;
    reb -= we;
    const VectorXd rcb = -wc;
    // r_c = s∘λ + Δs_a∘Δλ_a − σμ 1.
    sb += rcb.cwiseProduct(st.lambda);
    lb += rcb.cwiseProduct(st.s);
    VectorXd dsab = rcb.cwiseProduct(st.dl_a), dlab = rcb.cwiseProduct(st.ds_a);
    VectorXd dzab = VectorXd::Zero(n), dnab = VectorXd::Zero(p);
    const double tb = -rcb.sum();  // adjoint of t = σμ
    double mub = 0, muab = 0;
    if (st.sigma_clamped) {
      mub += tb;
    } else {
      // t = μ_a³ / μ².
      muab += tb * 3 * st.mu_a * st.mu_a / (st.mu * st.mu);
      mub += tb * (-2) * std::pow(st.mu_a / st.mu, 3);
    }
    // μ = sᵀλ/m.
    sb += (mub / m) * st.lambda;
    lb += (mub / m) * st.s;
    // μ_a = (s + α_a Δs_a)ᵀ(λ + α_a Δλ_a)/m.
    const VectorXd s1 = st.s + st.alpha_a * st.ds_a, l1 = st.lambda + st.alpha_a * st.dl_a;
    const VectorXd s1b = (muab / m) * l1, l1b = (muab / m) * s1;
    sb += s1b;
    lb += l1b;
    dsab += st.alpha_a * s1b;
    dlab += st.alpha_a * l1b;
    const double aab = s1b.dot(st.ds_a) + l1b.dot(st.dl_a);
    StepLengthAdjoint(aab, st.block_a, 1.0, st.s, st.lambda, st.ds_a, st.dl_a, &sb, &lb, &dsab, &dlab);
    // Predictor solve.
    sys.SolveTransposed(dzab, dsab, dlab, dnab, &wd, &wp, &we, &wc);
    add_jacobian(st.dz_a, st.ds_a, st.dl_a, st.dn_a);
    rdb -= wd;
    rpb -= wp;
    reb -= we;
    // r_c,a = s∘λ.
    sb -= wc.cwiseProduct(st.lambda);
    lb -= wc.cwiseProduct(st.s);
    // r_d = Qz + q + Gᵀλ + Aᵀν; r_p = Gz + s − h; r_e = Az − b.
    Qb.noalias() += rdb * st.z.transpose();
    zb.noalias() += d.Q * rdb;
    qb += rdb;
    Gb.noalias() += st.lambda * rdb.transpose();
    lb.noalias() += d.G * rdb;
    if (p > 0) {
      Ab.noalias() += st.nu * rdb.transpose();
      nb.noalias() += d.A * rdb;
    }
    Gb.noalias() += rpb * st.z.transpose();
    zb.noalias() += d.G.transpose() * rpb;
    sb += rpb;
    hb -= rpb;
    if (p > 0) {
      Ab.noalias() += reb * st.z.transpose();
      zb.noalias() += d.A.transpose() * reb;
      bb -= reb;
    }
  }
  g->Q = 0.5 * (Qb + Qb.transpose());
  g->q = qb;
  g->G = Gb;
  g->h = hb;
  g->A = Ab;
  g->b = bb;
}

}  // namespace ddn::optim
