// nodes/pooling/vector_multistart.cc: vector pooling (pooling_solvers.h): local Newton/IRLS solves from robust
// starts (the coordinate-wise median of a sample, the weighted mean, the best-scoring data points), and the
// truncated quadratic's exact search (truncated_vector.h).
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ddn/error.h"
#include "ddn/lane_sum.h"
#include "nodes/pooling/solver_parts.h"
#include "nodes/pooling/truncated_vector.h"

namespace ddn::pooling::internal {
namespace {

// Local minimisation (all penalties but the truncated quadratic): Newton when H is positive definite, else
// the IRLS step y − g/Σwψ; a step that raises f is replaced by the IRLS step. Returns f(y); *S holds the sums at
// the returned y (*sums_at_y = true) unless the solve stopped at a known minimum; after a final chord step (below)
// the sums are those of the gradient pass one step (below 1e-12·(|y| + α)) before y. An iterate within 1e-2·α of a
// `known` minimum stops there; the solve stops after a step below 1e-12·(|y| + α).
//
// The pass after a Newton step shorter than kChordStep·(|y| + α) computes no Hessian: near the minimum Newton's
// next step is of the order of the square of this one, far below the stopping test's 1e-12, and the previous
// factorisation (of H at a point that close) gives that step to a relative error of the same order (the chord
// method). So the pass that confirms convergence costs a gradient, not a Hessian. If the chord step is not below
// the stopping test, the iteration goes on (with Hessians again once steps are longer).
constexpr double kChordStep = 1e-5;

// A Newton step longer than kTrialStep·α (the redescending penalties' Hessian at a start far from a minimum, nearly
// singular, gives steps of several α that the descent test then rejects) is first tested with a gradient pass:
// only f(y) decides, and a rejected step costs that pass instead of a Hessian pass. An accepted step makes the
// Hessian pass at the same y, so the iterates are those of Hessian passes throughout.
constexpr double kTrialStep = 1.5;

// The factorisation of H at the last Newton step of a converged local solve (valid = false if the solve ended
// otherwise): the screening's steps reuse it (SolveMultiStart). Not copied (Eigen's LLT inside SmallCholesky is
// left uninitialised for small d; copying it would read that).
struct LastFactor {
  SmallCholesky llt;
  bool valid = false;
};

// The minima found so far (MultiStartScratch::found_y and found_f, the first `count`).
struct KnownMinima {
  const Eigen::VectorXd* y = nullptr;
  const double* f = nullptr;
  size_t count = 0;
};

template <PenaltyKind K>
double LocalVector(const VectorPoints& points, Eigen::VectorXd* y, int* iterations, PoolingWorkspace* ws, VectorSums* S,
                   bool* sums_at_y, const KnownMinima* known = nullptr, LastFactor* last = nullptr) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  Eigen::VectorXd& irls_prev = ws->multistart.irls_prev;  // not *y, S: those are the caller's
  Eigen::VectorXd& step = ws->multistart.step;
  irls_prev = *y;
  step.resize(d);
  double f_prev = std::numeric_limits<double>::infinity();
  bool newton_prev = false, chord = false, trial = false;
  SmallCholesky own;
  SmallCholesky& llt = last ? last->llt : own;  // of H = M + Σwψ·I (factorised in place: never copied)
  if (last) last->valid = false;
  *sums_at_y = false;
  for (int it = 0; it < 500; ++it) {
    if (known) {
      // A start that enters the neighbourhood (1e-2·α, deep inside its basin) of a minimum found from an
      // earlier start ends there: it would converge to the same point. Tested before the pass at y (which it
      // makes unnecessary), so also for a Newton step that the descent test below has not yet accepted.
      for (size_t m = 0; m < known->count; ++m) {
        if ((*y - known->y[m]).norm() <= 1e-2 * p.alpha) {
          *y = known->y[m];
          return known->f[m];
        }
      }
    }
    if (chord || trial) {
      VectorPass<K, false>(points, y->data(), S, ws);
    } else {
      VectorPass<K, true>(points, y->data(), S, ws);
    }
    ++*iterations;
    if (newton_prev && S->f > f_prev + 1e-13 * std::abs(f_prev)) {
      *y = irls_prev;
      newton_prev = chord = trial = false;
      continue;
    }
    if (trial) {  // the long Newton step is accepted: the Hessian at y
      trial = false;
      VectorPass<K, true>(points, y->data(), S, ws);
      ++*iterations;
    }
    if (S->spsi <= 0) break;
    irls_prev = *y - S->g / S->spsi;
    if (!chord) {
      newton_prev = llt.Factor(S->M.data(), S->spsi, d) && llt.MinPivot() > 1e-8 * std::sqrt(S->hsum);
    }
    if (newton_prev) {
      llt.Solve(S->g.data(), step.data());
      step = -step;
    } else {
      step = irls_prev - *y;
    }
    f_prev = S->f;
    *y += step;
    const double scale = Norm(*y) + p.alpha, length = Norm(step);
    if (length <= 1e-12 * scale) {
      if (chord) {
        // The gradient pass just made, at one step below 1e-12·(|y| + α) before y, stands for the sums at y:
        // f changes by O(step²·H) there, far below rounding, and the residual is the one at the last evaluated
        // iterate (as in the scalar solves), an upper bound of the one at y. No confirming pass.
        *sums_at_y = true;
        if (last) last->valid = true;
        return S->f;
      }
      if (last && newton_prev) last->valid = true;
      break;
    }
    chord = newton_prev && length <= kChordStep * scale;
    trial = newton_prev && !IsConvex(K) && length > kTrialStep * p.alpha;
  }
  VectorPass<K, false>(points, y->data(), S, ws);
  *sums_at_y = true;
  return S->f;
}

// The coordinate-wise (weighted, lower) median of a stride sample of about `sample` points: a robust start for the
// local solves, which need not be exact (N selections of N values cost more than the solve itself). The non-convex
// penalties' starts use 64 points (their basins depend on it: kStartSample); the convex ones', whose minimum is
// unique, 32 (kConvexStartSample: the Newton passes from it are as many, the selections half as long; vector
// pseudo-Huber, (64, 256, 8), 0.964× the time, measured).
constexpr int64_t kStartSample = 64, kConvexStartSample = 32;
// Samples from this many points have their medians from SampleMedians (pooling_kernels.h), shorter ones from
// SelectKth per coordinate.
constexpr int64_t kNetworkMedianMin = 16;

void CoordinateMedian(const VectorPoints& points, PoolingWorkspace* ws, Eigen::VectorXd* median,
                      int64_t sample = kStartSample) {
  const PoolingProblem& p = *points.problem;
  const int64_t stride = std::max<int64_t>(1, p.n / sample);
  std::vector<double>&col = ws->sample_x, &weights = ws->sample_w;
  Eigen::VectorXd& m = *median;
  m.resize(p.d);
  if (!p.w) {
    // Unweighted: the lower median (SelectKth: the value WeightedMedian selects), of eight coordinates at a time
    // from the rows of x (SampleMedians), or for short samples each coordinate's values in the selection's buffer.
    const int64_t count = (p.n + stride - 1) / stride;
    std::vector<double>& buf = ws->select;
    buf.resize(static_cast<size_t>(2 * count));
    if (count >= kNetworkMedianMin && p.d >= 2) {
      SampleMedians(p.x, p.d, stride, count, m.data(), buf.data());
      return;
    }
    for (int64_t k = 0; k < p.d; ++k) {
      const double* ck = points.cols + k * p.n;
      for (int64_t i = 0, j = 0; i < p.n; i += stride, ++j) buf[j] = ck[i];
      m[k] = SelectKth(buf.data(), buf.data() + count, count, (count - 1) / 2);
    }
    return;
  }
  for (int64_t k = 0; k < p.d; ++k) {
    col.clear();
    weights.clear();
    for (int64_t i = 0; i < p.n; i += stride) {
      col.push_back(points.cols[k * p.n + i]);
      weights.push_back(Weight(p.w, i));
    }
    PoolingProblem q = p;
    q.x = col.data();
    q.w = p.w ? weights.data() : nullptr;
    q.n = static_cast<int64_t>(col.size());
    q.d = 1;
    m[k] = WeightedMedian(q, ws);
  }
}

// The weighted mean, with one correcting pass (m + Σ w_i (x_i − m)/W), over the points stored by coordinate: each
// coordinate's sums are contiguous eight-lane loops (ddn/lane_sum.h; the row-major loop over p.x was 2.7 % of
// vector welsch's time, a scalar chain per coordinate).
void WeightedMeanVector(const VectorPoints& points, Eigen::VectorXd* mean) {
  const PoolingProblem& p = *points.problem;
  const double W = TotalWeight(p);
  const double* w = p.w;
  Eigen::VectorXd& m = *mean;
  m.resize(p.d);
  for (int64_t k = 0; k < p.d; ++k) {
    const double* c = points.cols + k * p.n;
    const double sum =
        w ? LaneSum(p.n, [&](int64_t i) { return w[i] * c[i]; }) : LaneSum(p.n, [&](int64_t i) { return c[i]; });
    const double mk = sum / W;
    const double correction = w ? LaneSum(p.n, [&](int64_t i) { return w[i] * (c[i] - mk); })
                                : LaneSum(p.n, [&](int64_t i) { return c[i] - mk; });
    m[k] = mk + correction / W;
  }
}

void FlagVectorKinks(const PoolingProblem& p, const double* y, ProblemStatus* s) {
  if (p.kind != PenaltyKind::kHuber && p.kind != PenaltyKind::kTruncatedQuadratic) return;
  double ymax = 0;
  for (int64_t k = 0; k < p.d; ++k) ymax = std::max(ymax, std::abs(y[k]));
  const double tol = 1e-9 * (p.alpha + ymax);
  for (int64_t i = 0; i < p.n; ++i) {
    if (Weight(p.w, i) == 0) continue;
    double z2 = 0;
    for (int64_t k = 0; k < p.d; ++k) z2 += (y[k] - p.x[i * p.d + k]) * (y[k] - p.x[i * p.d + k]);
    if (std::abs(std::sqrt(z2) - p.alpha) <= tol) {
      s->Set(kNonSmooth, "a point sits at the penalty's kink |y - x_i| = alpha: one-sided derivatives");
      return;
    }
  }
}

// Truncated quadratic, exact (truncated_vector.h): every data point and the median and mean start the inlier-mean
// iteration, then a branch and bound certifies the best fixed point.
Eigen::VectorXd SolveTruncatedExactly(const VectorPoints& points, const PoolingOptions& o, ProblemStatus* s,
                                      int* iterations, PoolingWorkspace* ws) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  Eigen::VectorXd median, mean;
  CoordinateMedian(points, ws, &median);
  WeightedMeanVector(points, &mean);
  const std::vector<std::vector<double>> starts{{median.data(), median.data() + d}, {mean.data(), mean.data() + d}};
  TruncatedVectorOptions to;
  to.max_cells = o.vector_max_cells;
  Eigen::VectorXd best(d);
  const TruncatedVectorResult r = SolveTruncatedVector(p, points.cols, starts, best.data(), to);
  *iterations = static_cast<int>(std::min<int64_t>(r.iterations + r.cells, std::numeric_limits<int>::max()));
  if (r.tie) {
    s->Set(kNonUnique, "truncated_quadratic: distinct minima with equal objective; the first found is returned");
  }
  if (!r.certified) {
    s->Set(kNotCertified, "truncated_quadratic (vector): best of " + std::to_string(r.starts) +
                              " inlier-mean iterations; the branch and bound ran out of its budget of " +
                              std::to_string(o.vector_max_cells) +
                              " cells, or N is too large to start from every point");
  }
  return best;
}

// The starts of the non-convex penalties: the coordinate-wise median, the weighted mean, and the data points of
// lowest f (on the score sample) among a stride sample of `vector_candidates`, in ws->multistart.starts (the first
// ones: their number is returned), with the index of each data point start (in order, after the first two) in
// ws->multistart.point_index.
template <PenaltyKind K>
size_t CandidateStarts(const VectorPoints& points, const PoolingOptions& o, PoolingWorkspace* ws) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  MultiStartScratch& ms = ws->multistart;
  std::vector<Eigen::VectorXd>& starts = ms.starts;
  const size_t most = 2 + static_cast<size_t>(std::max(o.vector_starts, 0));
  if (starts.size() < most) starts.resize(most);
  CoordinateMedian(points, ws, &starts[0]);
  WeightedMeanVector(points, &starts[1]);
  ms.point_index.clear();
  ws->points_f.n = 0;                  // no float copy (LeadsToKnownMinimum) unless built below
  if (o.vector_starts <= 0) return 2;  // the median and the mean only: nothing to score
  const int64_t m = std::min<int64_t>(p.n, o.vector_candidates);
  std::vector<std::pair<double, int64_t>>& scored = ms.scored;
  scored.clear();
  ScoreSample& sample = ws->score_sample;
  BuildScoreSample(points, starts[0].data(), &sample);  // centred on the median
  if (FloatScores<K>() && d <= kFloatScreeningMaxDim) BuildFloatPoints(points, sample.frame, &ws->points_f);
  // The candidates are often the sample's own points (N = 256 with the default 64 candidates, N ≤ 64): then
  // each pair's penalty is evaluated once (SampleObjectivesAtSample; the same scores up to the order of a sum).
  bool at_sample = m == sample.m;
  for (int64_t c = 0; c < m && at_sample; ++c) at_sample = (c * p.n) / m == c * sample.stride;
  if (at_sample) SampleObjectivesAtSample<K>(p, &sample);
  for (int64_t c = 0; c < m; ++c) {
    const int64_t i = (c * p.n) / m;
    if (Weight(p.w, i) == 0) continue;
    scored.push_back({at_sample ? sample.f[c] : SampleObjective<K>(p, sample, p.x + i * d), i});
  }
  // The best vector_starts in order (pairs compare by score, then index: a total order, as a full sort gives).
  const size_t best = std::min(scored.size(), static_cast<size_t>(std::max(o.vector_starts, 0)));
  std::partial_sort(scored.begin(), scored.begin() + best, scored.end());
  size_t count = 2;
  for (size_t k = 0; k < best; ++k) {
    starts[count++] = Eigen::Map<const Eigen::VectorXd>(p.x + scored[k].second * d, d);
    ms.point_index.push_back(scored[k].second);
  }
  return count;
}

// welsch, cauchy, geman_mcclure: the best local minimum from the candidate starts (not certified); a start that
// comes near a minimum found before stops there. kNonUnique for distinct minima tied within 1e-12.
//
// Screening. The first start (the median) is solved by LocalVector. Every other start is first followed by chord steps
// y ← y − H⁻¹g, with g the gradient at y (a gradient pass: no Hessian, no factorisation; for welsch and Geman–McClure
// in single precision when point starts are scored, FloatScreeningSums in pooling_kernels.h: the paths only decide
// which starts are solved, and on 5,760 random clustered problems they decided as the double passes did; vector
// welsch (64, 256, 8) forward 1.78–1.83 → 1.64–1.68 ms) and H the Hessian factorised
// at the last Newton step of the minimum found so far nearest the start, or by the IRLS step y − g/Σwψ (a
// majorise-minimise step for these penalties, φ concave in z²) where there is no such factor, the chord step is longer
// than kTrialStep·α, or it raised f. These are descent steps on the same objective, so a path that comes within
// kScreenRadius·α of a minimum found before is taken to lead there, and the start's solve is skipped; otherwise (a step
// below kScreenSettle·α elsewhere, or kScreenSteps steps) it is solved by LocalVector from the start itself, exactly as
// without screening (so that the winning start replays, vector_pool_unrolled.h). Near a minimum the chord steps
// contract by about the relative change of H over the step: on the standard workload (B, N, D) = (64, 256, 8) the
// starts after the median reach a known minimum after 1–6 gradient passes (2.5 on average), against 1–19 passes (135
// once) with Hessians for the local solves on a 64-point sample that screened them before (forward 4.1 → 2.6 ms,
// measured). Like the starts themselves, a heuristic: a start whose path enters a known minimum's neighbourhood while
// Newton from it would end elsewhere is not followed; an undecided start costs its solve, never a skipped minimum.
// kScreenRadius was 0.1 when the screening was introduced; 0.3 gives the same answers on 5,760 random clustered
// problems (bench/vector_starts_quality.py's generator, 40 seeds: identical objectives on every one) with fewer
// passes: on (64, 256, 8) welsch 15.3 passes of all kinds per problem instead of 17.6, forward 2.07–2.16 → 1.99 ms.
// Distinct minima lie well apart on the scale of α (for welsch, two equal point masses give two minima only when
// more than 2α apart: closer, Σ φ has one), so a descent path 0.3α from a minimum is deep inside its basin.
constexpr double kScreenRadius = 0.3;   // in α
constexpr double kScreenSettle = 1e-3;  // a path's last step, in α: settled away from every known minimum
constexpr int kScreenSteps = 12;        // gradient passes per start

// The chord and IRLS steps from y; true if the path entered kScreenRadius·α of a minimum in `found`. `factor` is
// the nearest minimum's (may be null or invalid: IRLS steps only).
template <PenaltyKind K>
bool LeadsToKnownMinimum(const VectorPoints& points, const Eigen::VectorXd& start, const KnownMinima& found,
                         const LastFactor* factor, PoolingWorkspace* ws, int* iterations) {
  const double alpha = points.problem->alpha;
  const bool chord = factor && factor->valid;
  MultiStartScratch& ms = ws->multistart;
  Eigen::VectorXd& y = ms.screen_y;
  y = start;
  VectorSums& S = ms.screen_sums;
  // Welsch and Geman–McClure screen in single precision when CandidateStarts built the float copy of the points.
  const bool float_pass = FloatScores<K>() && ws->points_f.n == points.problem->n;
  std::vector<float>& y_f = ms.screen_y_f;
  if (float_pass) S.g.resize(y.size());
  Eigen::VectorXd& irls_prev = ms.screen_irls_prev;
  Eigen::VectorXd& step = ms.screen_step;
  irls_prev = y;
  step.resize(y.size());
  double f_prev = std::numeric_limits<double>::infinity();
  bool chord_prev = false;
  for (int it = 0; it < kScreenSteps; ++it) {
    for (size_t m = 0; m < found.count; ++m) {
      if ((y - found.y[m]).norm() <= kScreenRadius * alpha) return true;
    }
    if (float_pass) {
      FloatScreeningSums<K>(ws->points_f, ws->score_sample.frame, alpha, y.size(), y.data(), &y_f, &S.f, S.g.data(),
                            &S.spsi);
    } else {
      VectorPass<K, false, false>(points, y.data(), &S, ws);  // f, g, Σwψ only
    }
    ++*iterations;
    if (chord_prev && S.f > f_prev) {  // the chord step raised f: the IRLS step from the previous iterate instead
      y = irls_prev;
      chord_prev = false;
      continue;
    }
    if (!(S.spsi > 0)) return false;  // no point within reach (or a non-finite sum): left to LocalVector
    irls_prev = y - S.g / S.spsi;
    chord_prev = false;
    if (chord) {
      factor->llt.Solve(S.g.data(), step.data());
      step = -step;
      chord_prev = step.norm() <= kTrialStep * alpha;
    }
    if (!chord_prev) step = irls_prev - y;
    f_prev = S.f;
    y += step;
    if (step.norm() <= kScreenSettle * alpha) return false;
  }
  return false;
}

// The answer in ws->multistart.answer; the sums at it in ws->multistart.answer_sums if *have_sums.
template <PenaltyKind K>
void SolveMultiStart(const VectorPoints& points, const PoolingOptions& o, VectorStart* start, ProblemStatus* s,
                     int* iterations, bool* have_sums, PoolingWorkspace* ws) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  MultiStartScratch& ms = ws->multistart;
  const size_t count = CandidateStarts<K>(points, o, ws);
  const std::vector<Eigen::VectorXd>& starts = ms.starts;
  if (ms.found_y.size() < count) {
    ms.found_y.resize(count);
    ms.found_f.resize(count);
  }
  size_t found = 0;                // distinct minima in ms.found_y, ms.found_f
  std::deque<LastFactor> factors;  // of those minima (a deque: appended in place, never moved)
  Eigen::VectorXd& best = ms.answer;
  bool have_best = false;
  double best_f = std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < count; ++j) {
    const KnownMinima known{ms.found_y.data(), ms.found_f.data(), found};
    if (j > 0) {
      // Screened with the Hessian of the minimum nearest the start.
      const LastFactor* nearest = nullptr;
      double nearest_distance = std::numeric_limits<double>::infinity();
      for (size_t k = 0; k < found; ++k) {
        const double distance = (starts[j] - ms.found_y[k]).norm();
        if (distance < nearest_distance) nearest_distance = distance, nearest = &factors[k];
      }
      if (LeadsToKnownMinimum<K>(points, starts[j], known, nearest, ws, iterations)) continue;
    }
    Eigen::VectorXd& y = ms.y;
    y = starts[j];
    bool sums_at_y = false;
    LastFactor& factor = factors.emplace_back();
    const double f = LocalVector<K>(points, &y, iterations, ws, &ms.sums, &sums_at_y, &known, &factor);
    bool dup = false;
    for (size_t k = 0; k < found; ++k) dup |= (y - ms.found_y[k]).norm() <= 1e-7 * (p.alpha + Norm(y));
    if (dup) {
      factors.pop_back();
    } else {
      ms.found_y[found] = y;
      ms.found_f[found] = f;
      ++found;
    }
    if (f < best_f) {
      best_f = f;
      best = y;
      have_best = true;
      *have_sums = sums_at_y;
      if (sums_at_y) ms.answer_sums = ms.sums;
      if (start) {
        *start = {j == 0   ? VectorStart::kMedian
                  : j == 1 ? VectorStart::kMean
                           : VectorStart::kPoint,
                  j < 2 ? -1 : ms.point_index[j - 2], std::vector<double>(starts[j].data(), starts[j].data() + d)};
      }
    }
  }
  if (!have_best) {
    // No start reached a finite objective (cannot happen inside the scale envelope; kept as a guard).
    throw NumericalFailure(PenaltyName(p.kind) + " (vector): no local solve reached a finite objective");
  }
  const double tie_tol = 1e-12 * (std::abs(best_f) + TotalWeight(p) * PenaltyEval(p.kind, p.alpha).Phi(p.alpha));
  for (size_t k = 0; k < found; ++k) {
    if ((ms.found_y[k] - best).norm() > 1e-7 * (p.alpha + Norm(best)) && ms.found_f[k] <= best_f + tie_tol) {
      s->Set(kNonUnique, PenaltyName(p.kind) + ": distinct minima with equal objective; the first found is returned");
      break;
    }
  }
  s->Set(kNotCertified, PenaltyName(p.kind) + " (vector): best of " + std::to_string(count) +
                            " local solves; global optimality is not certified");
}

template <PenaltyKind K>
void SolveVectorT(const VectorPoints& points, double* y_out, ProblemStatus* s, const PoolingOptions& o,
                  VectorStart* start, PoolingWorkspace* ws) {
  const PoolingProblem& p = *points.problem;
  const int64_t d = p.d;
  int iterations = 0;
  Eigen::VectorXd& best = ws->multistart.answer;
  VectorSums& S = ws->multistart.answer_sums;  // the sums at the answer, for the residual
  bool have_sums = false;                      // S was left by the local solve that returned the answer
  if constexpr (K == PenaltyKind::kQuadratic) {
    WeightedMeanVector(points, &best);
  } else if constexpr (K == PenaltyKind::kPseudoHuber || K == PenaltyKind::kHuber) {
    CoordinateMedian(points, ws, &best, kConvexStartSample);
    if (start) *start = {VectorStart::kMedian, -1, std::vector<double>(best.data(), best.data() + d)};
    LocalVector<K>(points, &best, &iterations, ws, &S, &have_sums);
  } else if constexpr (K == PenaltyKind::kTruncatedQuadratic) {
    best = SolveTruncatedExactly(points, o, s, &iterations, ws);
  } else {
    SolveMultiStart<K>(points, o, start, s, &iterations, &have_sums, ws);
  }
  for (int64_t k = 0; k < d; ++k) y_out[k] = best[k];
  s->iterations = iterations;
  if (!have_sums) VectorPass<K, false>(points, y_out, &S, ws);  // else the local solve's last pass, at y
  s->residual = ScaledResidual(Norm(S.g), S.gabs, S.hsum, points.xmax + p.alpha);
  FlagVectorKinks(p, y_out, s);
}

}  // namespace

void SolveVectorScaled(const VectorPoints& points, double* y, ProblemStatus* s, const PoolingOptions& o,
                       VectorStart* start, PoolingWorkspace* ws) {
  DispatchPenalty(points.problem->kind, [&](auto k) { SolveVectorT<decltype(k)::value>(points, y, s, o, start, ws); });
}

}  // namespace ddn::pooling::internal
