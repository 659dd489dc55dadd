#include "nodes/projection/projections.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ddn/error.h"
#include "ddn/lane_sum.h"
#include "ddn/params.h"
#include "ddn/simd.h"

namespace ddn {
namespace projection {
namespace {

// Relative tolerance for "on the boundary" and "tied" (a few dozen roundings).
constexpr double kTieTolerance = 64 * std::numeric_limits<double>::epsilon();

constexpr ProjectionSet kAllSets[] = {ProjectionSet::kSimplex,  ProjectionSet::kL1Sphere, ProjectionSet::kL1Ball,
                                      ProjectionSet::kL2Sphere, ProjectionSet::kL2Ball,   ProjectionSet::kLinfSphere,
                                      ProjectionSet::kLinfBall};

void SetFlag(ProblemStatus* status, StatusFlag flag, const char* why) {
  if (status) status->Set(flag, why);
}

// ---- Rows, four doubles at a time -----------------------------------------------------------------------------
// Every kernel below makes one or two passes over a row (8 KB for D = 1024: in L1 cache once the batch engine's
// finiteness check has read it), and each pass does all that it can: a store and two or three sums at once.
// GCC's auto-vectoriser does not reliably vectorise such fused loops (it left a loop with two sums of 8 lanes each
// 4× slower than two separate passes), so they are written with the GCC/Clang vector extension: V4 holds four
// doubles, one AVX2 register in the x86-64-v3 copy of a kernel (ddn/simd.h) and two SSE2 registers otherwise. Each
// sum keeps four V4 accumulators (16 lanes): an addition waits for the previous one into the same accumulator, and
// fewer lanes leave the adders idle on a row in cache (ddn/lane_sum.h). The lanes a value goes to depend on n
// alone, so results are deterministic.
// The helpers are always inlined into file-local kernels, so GCC's note that passing 32-byte vectors by value
// changed ABI (-Wpsabi) concerns no call that exists.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
using V4 = double __attribute__((vector_size(32)));
using M4 = int64_t __attribute__((vector_size(32)));  // lane masks: all bits set (true) or none

[[gnu::always_inline]] inline V4 Splat(double a) {
  return V4{a, a, a, a};
}
// Lanes [0, m) set.
[[gnu::always_inline]] inline M4 FirstLanes(int64_t m) {
  return (M4)(M4{0, 1, 2, 3} < M4{m, m, m, m});
}
// The m ≤ 4 values at p; lanes past m hold `fill`.
[[gnu::always_inline]] inline V4 Load(const double* p, int64_t m, double fill) {
  V4 v = Splat(fill);
  if (m == 4) {
    std::memcpy(&v, p, sizeof v);
  } else {
    for (int64_t j = 0; j < m; ++j) v[j] = p[j];
  }
  return v;
}
[[gnu::always_inline]] inline void Store(double* p, int64_t m, const V4& v) {
  if (m == 4) {
    std::memcpy(p, &v, sizeof v);
  } else {
    for (int64_t j = 0; j < m; ++j) p[j] = v[j];
  }
}
[[gnu::always_inline]] inline V4 Select(const M4& mask, const V4& a, const V4& b) {
  return (V4)((mask & (M4)a) | (~mask & (M4)b));
}
[[gnu::always_inline]] inline V4 Indicator(const M4& mask) {
  return (V4)(mask & (M4)Splat(1.0));
}  // 1.0 or 0.0
[[gnu::always_inline]] inline V4 SignBit(const V4& a) {
  return (V4)((M4)a & (M4)Splat(-0.0));
}
[[gnu::always_inline]] inline V4 Abs(const V4& a) {
  return (V4)((M4)a & ~(M4)Splat(-0.0));
}
[[gnu::always_inline]] inline V4 Max(const V4& a, const V4& b) {
  return Select((M4)(a > b), a, b);
}
[[gnu::always_inline]] inline V4 Min(const V4& a, const V4& b) {
  return Select((M4)(a < b), a, b);
}

// A hint to fetch the next problem's row: the batch engine's tensors hold the problems' rows one after another,
// so the row after [row, row + n) starts at row + n. Called with each chunk's start i from a pass over a row that is
// already in cache, it asks for one line (8 doubles) every other chunk, so that the next row's memory latency
// overlaps this row's arithmetic instead of following it (-10 % for the simplex and L1 sets, measured). Only a
// hint: an address past the batch is never read (a prefetch does not fault), and the address is formed as an
// integer, not as a pointer past the array.
[[gnu::always_inline]] inline void PrefetchNextRow(const double* row, int64_t n, int64_t i) {
  if ((i & 7) == 0) {
    __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(row + n) + sizeof(double) * i));
  }
}

// Calls chunk(i, m, k) on the chunks [i, i + m) of [0, n), m = 4 except for a shorter last one; k ∈ [0, 4) is the
// accumulator the chunk adds into (four independent chains).
template <typename Chunk>
[[gnu::always_inline]] inline void ForEachChunk(int64_t n, Chunk chunk) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    chunk(i, 4, 0);
    chunk(i + 4, 4, 1);
    chunk(i + 8, 4, 2);
    chunk(i + 12, 4, 3);
  }
  for (; i < n; i += 4) chunk(i, std::min<int64_t>(4, n - i), 0);
}

// The sum of four accumulators' lanes (pairwise) and their maximum.
[[gnu::always_inline]] inline double Total(const V4 (&acc)[4]) {
  const V4 s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}
[[gnu::always_inline]] inline double Largest2(const V4 (&acc)[2]) {
  const V4 s = Max(acc[0], acc[1]);
  return std::max(std::max(s[0], s[1]), std::max(s[2], s[3]));
}
[[gnu::always_inline]] inline double Largest(const V4 (&acc)[4]) {
  const V4 s = Max(Max(acc[0], acc[1]), Max(acc[2], acc[3]));
  return std::max(std::max(s[0], s[1]), std::max(s[2], s[3]));
}

// Σ x_i² (one pass).
[[gnu::always_inline]] inline double SumOfSquares(const double* x, int64_t n) {
  V4 ss[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    const V4 xi = Load(x + i, m, 0.0);
    ss[k] += xi * xi;
  });
  return Total(ss);
}

// ‖x‖₂ from Σ x_i² when that neither overflowed nor underflowed, else by rescaling with max |x_i|.
[[gnu::always_inline]] inline double L2NormFrom(double ss, const double* x, int64_t n) {
  if (std::isfinite(ss) && ss > 1e-280) return std::sqrt(ss);
  double mx = 0;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, std::abs(x[i]));
  if (mx == 0) return 0;
  ss = LaneSum(n, [&](int64_t i) {
    const double t = x[i] / mx;
    return t * t;
  });
  return mx * std::sqrt(ss);
}

// max_i |x_i|, and in *finite whether every x_i is finite (ddn/finiteness.h: x_i − x_i is 0 for a finite value and
// NaN otherwise, and a sum of them stays 0 or becomes NaN).
[[gnu::always_inline]] inline double MaxAbs(const double* x, int64_t n, bool* finite) {
  V4 top[4] = {}, probe[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    const V4 xi = Load(x + i, m, 0.0);
    top[k] = Max(top[k], Abs(xi));
    probe[k] += xi - xi;
  });
  *finite = Total(probe) == 0;
  return Largest(top);
}

// Whether every value of a row is finite, for the rare paths that make no pass of their own over it.
[[gnu::always_inline]] inline bool AllFinite(const double* x, int64_t n) {
  V4 probe[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    const V4 xi = Load(x + i, m, 0.0);
    probe[k] += xi - xi;
  });
  return Total(probe) == 0;
}

int64_t FirstArgMaxAbs(const double* x, int64_t n, double m) {
  for (int64_t i = 0; i < n; ++i)
    if (std::abs(x[i]) == m) return i;
  return 0;
}

// Condat's algorithm (Math. Program. 158, 2016) on the values c[0..n), n ≥ 1. `active` holds the current
// candidate support, whose running threshold is rho = (Σ active − r)/|active|; `waiting` holds earlier
// candidates that a large value displaced (they may rejoin). Then elements ≤ rho are removed until the
// support is consistent, and τ is recomputed exactly from it.
double CondatThreshold(const double* c, size_t n, double r) {
  thread_local std::vector<double> active, waiting;
  active.clear();
  waiting.clear();
  active.push_back(c[0]);
  double rho = c[0] - r;
  for (size_t i = 1; i < n; ++i) {
    const double ui = c[i];
    if (ui <= rho) continue;
    rho += (ui - rho) / static_cast<double>(active.size() + 1);
    if (rho > ui - r) {
      active.push_back(ui);
    } else {
      waiting.insert(waiting.end(), active.begin(), active.end());
      active.clear();
      active.push_back(ui);
      rho = ui - r;
    }
  }
  for (double w : waiting) {
    if (w > rho) {
      active.push_back(w);
      rho += (w - rho) / static_cast<double>(active.size());
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    size_t kept = 0;
    size_t count = active.size();
    for (size_t j = 0; j < active.size(); ++j) {
      const double w = active[j];
      if (w > rho || count == 1) {
        active[kept++] = w;
      } else {
        --count;
        rho += (rho - w) / static_cast<double>(count);
        changed = true;
      }
    }
    active.resize(kept);
  }
  double sum = 0;
  for (double w : active) sum += w;
  return (sum - r) / static_cast<double>(active.size());
}

// Michelot's iteration (C. Michelot, J. Optim. Theory Appl. 50, 1986) on a few candidates c[0..n), n ≥ 1, which
// it reorders: τ = (Σ c − r)/|c|, drop the c_i ≤ τ, repeat until none is dropped. τ only increases and never passes
// the answer, so a dropped value is never in the support; each round costs one division and a pass over the
// remaining values, against a division per accepted value in Condat's first pass (dependent, ~13 cycles each).
// For the few dozen candidates of a typical row it ends in two to four rounds.
double MichelotThreshold(double* c, size_t n, double r) {
  for (;;) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += c[i];
    const double tau = (sum - r) / static_cast<double>(n);
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) {
      c[kept] = c[i];
      kept += c[i] > tau;
    }
    if (kept == n || kept == 0) return tau;  // kept = 0 only by rounding (τ < max c in exact arithmetic)
    n = kept;
  }
}

// The simplex threshold τ for u_i = x_i or |x_i|, as top + shift: top = max_i u_i and shift = τ − top ∈ [−r, 0).
// Every support element satisfies u_i > top − r (the largest one is in the support with y ≤ r). Two passes over the
// cached row: the first finds top (and ‖x‖₁ for the L1 ball), the second collects the candidates u_i − top > −r,
// testing four at a time and looking at single values only where one passes: for Gaussian x ∈ R^1024 and r = 1
// about twenty of 1024. Condat's algorithm then finds τ among the candidates alone (expected linear time, no sort).
// The search runs on u_i − top, which is exact for every candidate when r ≤ top/2 (Sterbenz) and rounded at the
// scale of r otherwise, so that y_i = (u_i − top) − shift is accurate relative to r even when r is far below the
// precision of max|x| (x = [5e15, 0, 1e16], r = 1: y = e_3; u_i − τ computed directly would round τ at the scale of
// 1e16).
struct ShiftedThreshold {
  double top = 0, shift = 0;
  double tau() const { return top + shift; }
};

template <bool kAbs>
[[gnu::always_inline]] inline ShiftedThreshold Threshold(const double* x, int64_t n, double r, double* sum_u) {
  // Pass 1, in blocks of 16: the largest u of each block (kept) and of the row, and Σ u_i (‖x‖₁ for the L1 ball;
  // finite only if every x_i is: the finiteness check, ddn/finiteness.h).
  constexpr int64_t kBlock = 16;
  const int64_t blocks = n / kBlock;
  thread_local std::vector<double> block_tops, candidates;
  if (block_tops.size() < static_cast<size_t>(blocks + 1)) block_tops.resize(blocks + 1);
  if (candidates.size() < static_cast<size_t>(n + 1)) candidates.resize(n + 1);
  double* block_top = block_tops.data();
  V4 tops[2], sums[4] = {};
  tops[0] = tops[1] = Splat(-std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < blocks; ++b) {
    V4 u[4];
    for (int k = 0; k < 4; ++k) {
      const V4 xi = Load(x + b * kBlock + 4 * k, 4, 0.0);
      u[k] = kAbs ? Abs(xi) : xi;
      sums[k] += u[k];
    }
    const V4 most = Max(Max(u[0], u[1]), Max(u[2], u[3]));
    tops[b & 1] = Max(tops[b & 1], most);
    block_top[b] = std::max(std::max(most[0], most[1]), std::max(most[2], most[3]));
  }
  double top = std::max(Largest2(tops), -std::numeric_limits<double>::infinity()), tail_sum = 0;
  double tail_top = -std::numeric_limits<double>::infinity();
  for (int64_t i = blocks * kBlock; i < n; ++i) {
    const double u = kAbs ? std::abs(x[i]) : x[i];
    tail_top = std::max(tail_top, u);
    tail_sum += u;
  }
  block_top[blocks] = tail_top;
  top = std::max(top, tail_top);
  *sum_u = Total(sums) + tail_sum;

  // Pass 2, only over the blocks whose largest u passes: the candidates u_i − top > −r (≤ 0, 0 for the largest),
  // collected without branches (each value is written, the count advances when it passes).
  double* c = candidates.data();
  size_t kept = 0;
  for (int64_t b = 0; b <= blocks; ++b) {
    if (!(block_top[b] - top > -r)) continue;
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) {
      const double shifted = (kAbs ? std::abs(x[i]) : x[i]) - top;
      c[kept] = shifted;
      kept += shifted > -r;
    }
  }
  // No candidate only for a non-finite x (reported by the caller through *sum_u): τ is then NaN as y will be.
  if (kept == 0) return {top, std::numeric_limits<double>::quiet_NaN()};
  // Condat for many candidates (x far inside the scale of r: the whole row), Michelot for a few.
  constexpr size_t kFewCandidates = 64;
  return {top, kept <= kFewCandidates ? MichelotThreshold(c, kept, r) : CondatThreshold(c, kept, r)};
}

// y = s ⊙ max(u − τ, 0) for the simplex (u = x, s = 1) or the L1 sets (u = |x|, s = sign x), with τ as top + shift
// (see Threshold), and the count of coordinates at the threshold, in one pass. Returns whether Σ y_i is finite.
template <bool kAbs>
[[gnu::always_inline]] inline bool ProjectSimplexLike(const double* x, int64_t n, double r, ShiftedThreshold t,
                                                      double* y, ProblemStatus* status) {
  // "At the threshold" at the scale of r (the shifted coordinates are exact or rounded at that scale).
  const V4 top = Splat(t.top), shift = Splat(t.shift), tol = Splat(kTieTolerance * (std::abs(t.shift) + r));
  V4 at[4] = {}, ys[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    PrefetchNextRow(x, n, i);
    const V4 xi = Load(x + i, m, 0.0);
    const V4 d = ((kAbs ? Abs(xi) : xi) - top) - shift;
    V4 yi = Max(d, V4{});  // d is never −0 (shift < 0), so y_i ≥ +0 and copysign is an OR of x's sign bit
    ys[k] += yi;           // before the sign: Σ|y_i| cannot cancel
    if (kAbs) yi = (V4)((M4)yi | (M4)SignBit(xi));
    Store(y + i, m, yi);
    at[k] += Indicator((M4)(Abs(d) <= tol) & FirstLanes(m));
  });
  // Max drops a NaN d (for a NaN x, which *sum_u reports); shift and top are finite when x is.
  const bool finite = std::isfinite(Total(ys));
  if (Total(at) > 0) {
    SetFlag(status, kDegenerate, "a coordinate sits exactly at the threshold (zero multiplier of y_i >= 0)");
  }
  if (kAbs && t.tau() < 0) {
    bool zero = false;
    for (int64_t i = 0; i < n; ++i) zero |= x[i] == 0;
    if (zero) {
      SetFlag(status, kNonUnique, "L1 sphere from inside with x_i = 0: the sign of y_i is a free choice (+)");
      for (int64_t i = 0; i < n; ++i)
        if (x[i] == 0) y[i] = std::abs(y[i]);  // x_i = −0.0 too: choose +
    }
  }
  return finite;
}

// ‖x‖₁ summed exactly as Threshold's pass 1 sums it (blocks of 16 into four V4 accumulators, then the tail), so
// that the L1 ball's backward takes the forward's side of ‖x‖₁ < r to the last bit; or DBL_MAX (finite, ≥ r) as soon
// as the leading blocks alone prove ‖x‖₁ > r: every term is ≥ 0, so a partial sum is below the total, and the margin
// 4nε covers the rounding of both sums. The backward then reads x only until it is known to be outside (for
// Gaussian x ∈ R^1024 and r = 1, its first 16 values), and checks the values it read: a non-finite partial sum
// proves nothing and the whole sum follows, non-finite.
[[gnu::always_inline]] inline double L1NormOrOutside(const double* x, int64_t n, double r) {
  constexpr int64_t kBlock = 16;
  const int64_t blocks = n / kBlock;
  const double enough = r * (1 + 4 * static_cast<double>(n) * std::numeric_limits<double>::epsilon());
  V4 sums[4] = {};
  for (int64_t b = 0; b < blocks; ++b) {
    for (int k = 0; k < 4; ++k) sums[k] += Abs(Load(x + b * kBlock + 4 * k, 4, 0.0));
    const double partial = Total(sums);
    if (partial >= enough && partial <= std::numeric_limits<double>::max()) return std::numeric_limits<double>::max();
  }
  double tail_sum = 0;
  for (int64_t i = blocks * kBlock; i < n; ++i) tail_sum += std::abs(x[i]);
  return Total(sums) + tail_sum;
}

// dx = vᵀ∂y/∂x, dr = vᵀ∂y/∂r on the support S = {y_i ≠ 0}, signs s_i = sign(y_i) ∈ {−1, 0, 1} (s_i² is the support
// indicator). Two passes: Σ s_i v_i and |S| = Σ s_i², then dx; for the L1 ball (`ball_radius` > 0) first ‖x‖₁ or
// enough of it to know x outside (L1NormOrOutside; inside the ball dx = v). The row of y is read, of x only what
// the ball's test needs. Returns whether v, the x it read, dx and dr are
// finite: Σ s_i v_i is finite only if every v_i is (s_i = 0 gives 0·v_i, NaN for an infinite v_i).
[[gnu::always_inline]] inline V4 SignOf(const V4& a) {
  return Indicator((M4)(a > V4{})) - Indicator((M4)(a < V4{}));
}

[[gnu::always_inline]] inline bool SimplexLikeVjp(const double* x, const double* y, int64_t n, const double* v,
                                                  double* dx, double* dr, double ball_radius = 0) {
  const bool ball = ball_radius > 0;
  const double norm = ball ? L1NormOrOutside(x, n, ball_radius) : 0.0;
  if (ball && norm < ball_radius) {  // inside the ball, as the forward decided: y = x, dx = v
    std::copy(v, v + n, dx);
    if (dr) *dr = 0;
    return std::isfinite(norm) && AllFinite(v, n);
  }
  // The first pass also writes dx_i = s_i² v_i (exact), so that the row of dx is fetched for writing while the
  // row of y is read; the second pass, on cached rows, subtracts s_i m.
  V4 sums[4] = {}, counts[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    const V4 s = SignOf(Load(y + i, m, 0.0)), vi = Load(v + i, m, 0.0);
    Store(dx + i, m, s * s * vi);
    sums[k] += s * vi;
    counts[k] += s * s;
  });
  const double sv = Total(sums);
  const bool inputs_finite = std::isfinite(sv) && std::isfinite(norm);
  const double count = Total(counts);
  const double mean = count > 0 ? sv / count : 0.0;  // count = 0 cannot happen for r > 0
  const V4 vmean = Splat(mean);
  V4 dxs[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    PrefetchNextRow(y, n, i);
    PrefetchNextRow(v, n, i);
    const V4 s = SignOf(Load(y + i, m, 0.0));
    const V4 dxi = Load(dx + i, m, 0.0) - s * vmean;
    Store(dx + i, m, dxi);
    dxs[k] += dxi;
  });
  if (dr) *dr = mean;
  return inputs_finite && std::isfinite(Total(dxs));
}

void CopyInto(const double* x, int64_t n, double* y) {
  std::copy(x, x + n, y);
}

// Returns whether x and y are finite (Σ x_i² is finite only if every x_i is).
[[gnu::always_inline]] inline bool ProjectL2(bool sphere, const double* x, int64_t n, double r, double* y,
                                             ProblemStatus* status) {
  const double squares = SumOfSquares(x, n);
  if (!std::isfinite(squares) && !AllFinite(x, n)) return false;  // (an overflow of finite values goes on)
  const double norm = L2NormFrom(squares, x, n);
  if (std::abs(norm - r) <= kTieTolerance * r && !sphere) {
    SetFlag(status, kDegenerate, "x is on the L2 sphere: the ball constraint is active with a zero multiplier");
  }
  if (!sphere && norm < r) {
    CopyInto(x, n, y);
    return true;
  }
  if (norm == 0) {
    SetFlag(status, kNonUnique, "x = 0: every point of the L2 sphere is nearest; y = r e_1");
    SetFlag(status, kNonRegular, "x = 0 on the L2 sphere: y(x) is discontinuous; gradient wrt x set to 0");
    std::fill(y, y + n, 0.0);
    y[0] = r;
    return true;
  }
  const V4 scale = Splat(r / norm);
  V4 ys[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    PrefetchNextRow(x, n, i);
    const V4 yi = scale * Load(x + i, m, 0.0);
    Store(y + i, m, yi);
    ys[k] += Abs(yi);
  });
  return std::isfinite(Total(ys));
}

// dx = (r/‖x‖)(v − u uᵀv), u = x/‖x‖: one pass for Σ x_i² and xᵀv, one for dx. Returns whether x, v, dx and dr
// are finite: xᵀv is finite only if every v_i is (x_i = 0 gives 0·v_i, NaN for an infinite v_i).
[[gnu::always_inline]] inline bool L2Vjp(bool sphere, const double* x, int64_t n, double r, const double* v, double* dx,
                                         double* dr) {
  V4 squares[4] = {}, dots[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    const V4 xi = Load(x + i, m, 0.0);
    squares[k] += xi * xi;
    dots[k] += xi * Load(v + i, m, 0.0);
  });
  const double sum_squares = Total(squares), xv = Total(dots);
  if (!(std::isfinite(sum_squares) && std::isfinite(xv)) && !(AllFinite(x, n) && AllFinite(v, n))) return false;
  const double norm = L2NormFrom(sum_squares, x, n);
  if (!sphere && norm < r) {
    std::copy(v, v + n, dx);
    if (dr) *dr = 0;
    return true;
  }
  if (norm == 0) {
    std::fill(dx, dx + n, 0.0);
    if (dr) *dr = v[0];
    return true;
  }
  const double uv = xv / norm;         // uᵀv, u = x/‖x‖
  const double scale = r / norm;       // r/‖x‖
  const double c = scale * uv / norm;  // (r/‖x‖)·uᵀv/‖x‖
  const V4 vscale = Splat(scale), vc = Splat(c);
  V4 dxs[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    PrefetchNextRow(x, n, i);
    PrefetchNextRow(v, n, i);
    const V4 dxi = vscale * Load(v + i, m, 0.0) - vc * Load(x + i, m, 0.0);
    Store(dx + i, m, dxi);
    dxs[k] += dxi - dxi;
  });
  if (dr) *dr = uv;
  return Total(dxs) == 0 && std::isfinite(uv);
}

// Returns whether x is finite (y then is: a clamp, or a copy with one coordinate moved to ±r).
[[gnu::always_inline]] inline bool ProjectLinf(bool sphere, const double* x, int64_t n, double r, double* y,
                                               ProblemStatus* status) {
  const double tol = kTieTolerance * r;
  if (sphere) {
    bool finite = true;
    const double m = MaxAbs(x, n, &finite);
    if (!finite) return false;
    if (m < r) {
      // From inside: push the (first) largest coordinate to the nearest face.
      const int64_t k = FirstArgMaxAbs(x, n, m);
      int64_t tied = 0;
      for (int64_t i = 0; i < n; ++i) tied += std::abs(x[i]) >= m - tol;
      if (tied > 1) {
        SetFlag(status, kNonUnique, "L-inf sphere from inside with a tie for max |x_i|: the first one moves");
      }
      CopyInto(x, n, y);
      y[k] = x[k] < 0 ? -r : r;
      return true;
    }
  }
  // y = clamp(x, −r, r), and the counts of coordinates at |x_i| = r (within tol) and at or beyond r − tol.
  const V4 upper = Splat(r), lower = Splat(-r), vtol = Splat(tol), near = Splat(r - tol);
  V4 at[4] = {}, beyond[4] = {}, probe[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    const V4 xi = Load(x + i, m, 0.0);
    Store(y + i, m, Min(Max(xi, lower), upper));
    probe[k] += xi - xi;  // the clamp maps NaN to −r: x's own finiteness is what counts
    const M4 valid = FirstLanes(m);
    at[k] += Indicator((M4)(Abs(Abs(xi) - upper) <= vtol) & valid);
    if (sphere) beyond[k] += Indicator((M4)(Abs(xi) >= near) & valid);
  });
  if (sphere) {
    const double many = Total(beyond);
    if (Total(at) > 0 && many > 1) {
      SetFlag(status, kDegenerate, "a coordinate is exactly at |x_i| = r: one-sided derivative (clamped)");
    }
    if (many > 1) {
      SetFlag(status, kNonSmooth, "y is on an edge or corner of the L-inf sphere; derivative of the clamp");
    }
  } else if (Total(at) > 0) {
    SetFlag(status, kDegenerate, "a coordinate is exactly at |x_i| = r: one-sided derivative (clamped)");
  }
  return Total(probe) == 0;
}

// Returns whether x, v, dx and dr are finite: dx_i = [free]·v_i is 0·v_i on clamped coordinates, NaN for an
// infinite v_i, so the sum of dx_i − dx_i and x_i − x_i is 0 exactly when x and v are finite.
[[gnu::always_inline]] inline bool LinfVjp(bool sphere, const double* x, int64_t n, double r, const double* v,
                                           double* dx, double* dr) {
  if (sphere) {
    bool finite = true;
    const double m = MaxAbs(x, n, &finite);
    if (!finite) return false;
    if (m < r) {
      const int64_t k = FirstArgMaxAbs(x, n, m);
      std::copy(v, v + n, dx);
      dx[k] = 0;
      if (dr) *dr = x[k] < 0 ? -v[k] : v[k];
      return AllFinite(v, n);
    }
  }
  // Free coordinates (|x_i| < r) pass v_i through; clamped ones (y_i = ±r) feed dL/dr = Σ_clamped s_i v_i.
  const V4 upper = Splat(r);
  V4 probe[4] = {};
  if (!dr) {
    ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
      const V4 xi = Load(x + i, m, 0.0), dxi = Indicator((M4)(Abs(xi) < upper)) * Load(v + i, m, 0.0);
      Store(dx + i, m, dxi);
      probe[k] += (xi - xi) + (dxi - dxi);
    });
    return Total(probe) == 0;
  }
  V4 sums[4] = {};
  ForEachChunk(n, [&](int64_t i, int64_t m, int k) {
    const V4 xi = Load(x + i, m, 0.0), vi = Load(v + i, m, 0.0);
    const M4 free = (M4)(Abs(xi) < upper);
    const V4 dxi = Indicator(free) * vi;
    Store(dx + i, m, dxi);
    probe[k] += (xi - xi) + (dxi - dxi);
    // s_i v_i = ±v_i: v's sign bit flipped where x is negative; padded lanes have v = 0.
    sums[k] += (V4)(~free & (M4)((V4)((M4)vi ^ (M4)SignBit(xi))));
  });
  *dr = Total(sums);
  return Total(probe) == 0 && std::isfinite(*dr);
}

}  // namespace

const char* ProjectionSetName(ProjectionSet set) {
  switch (set) {
    case ProjectionSet::kSimplex:
      return "simplex";
    case ProjectionSet::kL1Sphere:
      return "l1_sphere";
    case ProjectionSet::kL1Ball:
      return "l1_ball";
    case ProjectionSet::kL2Sphere:
      return "l2_sphere";
    case ProjectionSet::kL2Ball:
      return "l2_ball";
    case ProjectionSet::kLinfSphere:
      return "linf_sphere";
    case ProjectionSet::kLinfBall:
      return "linf_ball";
  }
  return "?";
}

std::vector<std::string> ProjectionSetNames() {
  std::vector<std::string> names;
  for (ProjectionSet s : kAllSets) names.push_back(ProjectionSetName(s));
  return names;
}

ProjectionSet ParseProjectionSet(const std::string& name) {
  for (ProjectionSet s : kAllSets)
    if (name == ProjectionSetName(s)) return s;
  std::string known;
  for (const auto& n : ProjectionSetNames()) known += (known.empty() ? "" : ", ") + n;
  throw InvalidInput("unknown projection shape '" + name + "' (known: " + known + ")");
}

bool IsConvex(ProjectionSet set) {
  return set == ProjectionSet::kSimplex || set == ProjectionSet::kL1Ball || set == ProjectionSet::kL2Ball ||
         set == ProjectionSet::kLinfBall;
}

double SimplexThreshold(const double* x, int64_t dim, double radius, bool use_abs) {
  double sum = 0;
  return use_abs ? Threshold<true>(x, dim, radius, &sum).tau() : Threshold<false>(x, dim, radius, &sum).tau();
}

DDN_SIMD_BODY bool ProjectBody(ProjectionSet set, const double* x, int64_t n, double r, double* y,
                               ProblemStatus* status) {
  if (n < 1) throw InvalidInput("projection of an empty vector");
  if (!(r > 0) || !std::isfinite(r)) {
    throw InvalidInput("projection radius must be finite and > 0, got " + FormatDouble(r));
  }
  double sum = 0;  // Σ x_i or ‖x‖₁: finite only if every x_i is
  switch (set) {
    case ProjectionSet::kSimplex: {
      const ShiftedThreshold tau = Threshold<false>(x, n, r, &sum);
      return ProjectSimplexLike<false>(x, n, r, tau, y, status) && std::isfinite(sum);
    }
    case ProjectionSet::kL1Ball: {
      const ShiftedThreshold tau = Threshold<true>(x, n, r, &sum);
      if (!std::isfinite(sum)) {
        if (!AllFinite(x, n)) return false;
        sum = std::numeric_limits<double>::infinity();  // finite values whose sum overflowed: far outside the ball
      }
      if (std::abs(sum - r) <= kTieTolerance * r) {
        SetFlag(status, kDegenerate, "x is on the L1 sphere: the ball constraint is active with a zero multiplier");
      }
      if (sum < r) {
        CopyInto(x, n, y);
        return true;
      }
      return ProjectSimplexLike<true>(x, n, r, tau, y, status);
    }
    case ProjectionSet::kL1Sphere: {
      const ShiftedThreshold tau = Threshold<true>(x, n, r, &sum);
      return ProjectSimplexLike<true>(x, n, r, tau, y, status) && std::isfinite(sum);
    }
    case ProjectionSet::kL2Sphere:
    case ProjectionSet::kL2Ball:
      return ProjectL2(set == ProjectionSet::kL2Sphere, x, n, r, y, status);
    case ProjectionSet::kLinfSphere:
    case ProjectionSet::kLinfBall:
      return ProjectLinf(set == ProjectionSet::kLinfSphere, x, n, r, y, status);
  }
  return false;
}
DDN_SIMD_DISPATCH(bool, Project,
                  (ProjectionSet set, const double* x, int64_t n, double r, double* y, ProblemStatus* status),
                  (set, x, n, r, y, status))

DDN_SIMD_BODY bool ProjectVjpBody(ProjectionSet set, const double* x, const double* y, int64_t n, double r,
                                  const double* v, double* dx, double* dr) {
  switch (set) {
    case ProjectionSet::kSimplex:
    case ProjectionSet::kL1Sphere:
      return SimplexLikeVjp(x, y, n, v, dx, dr);
    case ProjectionSet::kL1Ball:
      return SimplexLikeVjp(x, y, n, v, dx, dr, r);
    case ProjectionSet::kL2Sphere:
    case ProjectionSet::kL2Ball:
      return L2Vjp(set == ProjectionSet::kL2Sphere, x, n, r, v, dx, dr);
    case ProjectionSet::kLinfSphere:
    case ProjectionSet::kLinfBall:
      return LinfVjp(set == ProjectionSet::kLinfSphere, x, n, r, v, dx, dr);
  }
  return false;
}
DDN_SIMD_DISPATCH(bool, ProjectVjp,
                  (ProjectionSet set, const double* x, const double* y, int64_t n, double r, const double* v,
                   double* dx, double* dr),
                  (set, x, y, n, r, v, dx, dr))

}  // namespace projection
}  // namespace ddn
