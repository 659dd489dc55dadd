// nodes/pooling/pooling_kernels.cc: SelectKth and the copies of the
// points that the vector passes run over (pooling_kernels.h).
#include "nodes/pooling/pooling_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

namespace ddn::pooling {

// SelectKth (pooling_solvers.h): the k-th smallest of v[0..n) by a quickselect whose
// partition has no data-dependent branch: every value is written to both ends of `scratch` and kept at the end
// whose cursor it advances, so that values below, above and equal to the pivot (a median of three) separate in
// one pass without mispredicted branches (on 64 normal values about half the time of std::nth_element). The
// answer is the order statistic itself, so the result is exactly nth_element's. `v` and `scratch` (both of n
// values) are overwritten. Worst case O(n²) (pivots at the extremes every time): meant for short arrays (the
// ≤ 127-point samples of SampleMedian; WeightedMedian uses std::nth_element above 256 values).
double SelectKth(double* v, double* scratch, int64_t n, int64_t k) {
  while (n > 16) {
    const double a = v[0], b = v[n / 2], c = v[n - 1];
    const double pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    int64_t lo = 0, hi = n - 1;
    for (int64_t i = 0; i < n; ++i) {
      const double x = v[i];
      scratch[lo] = x;
      scratch[hi] = x;
      lo += x < pivot;
      hi -= x > pivot;
    }
    // scratch[0, lo) < pivot, scratch(hi, n) > pivot, everything else equals it.
    if (k < lo) {
      n = lo;
      std::swap(v, scratch);
    } else if (k > hi) {
      k -= hi + 1;
      n -= hi + 1;
      double* rest = scratch + hi + 1;
      scratch = v;
      v = rest;
    } else {
      return pivot;
    }
  }
  // Insertion sort of the last few.
  for (int64_t i = 1; i < n; ++i) {
    const double x = v[i];
    int64_t j = i;
    for (; j > 0 && v[j - 1] > x; --j) v[j] = v[j - 1];
    v[j] = x;
  }
  return v[k];
}

namespace internal {

namespace {

// cols[k·n + i] = x[i·d + k] in tiles of four points by four coordinates: four loads of four doubles, a 4 × 4
// transpose in registers (Transpose4), four stores of four doubles; max |x| from the same loads, and whether every
// value is finite (Σ (x − x) is 0 if so and NaN if any is ±Inf or NaN: an exact test, the engine's NaN and Inf
// check folded into this pass, ddn/finiteness.h; a compare per vector instead took 1.17× the pass's time). Pure data
// movement and an exact maximum: both copies give the bits of a plain loop.
[[gnu::always_inline]] inline double TransposeLoop(const double* x, int64_t n, int64_t d, double* cols, bool* finite) {
  V4 m4 = {0, 0, 0, 0};
  const I4 abs_mask = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
  V4 zero4 = {0, 0, 0, 0};
  double zero = 0;
  double m = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    int64_t k = 0;
    for (; k + 4 <= d; k += 4) {
      DDN_LOAD_V4(a, x + i * d + k);
      DDN_LOAD_V4(b, x + (i + 1) * d + k);
      DDN_LOAD_V4(c, x + (i + 2) * d + k);
      DDN_LOAD_V4(e, x + (i + 3) * d + k);
      const V4 in[4] = {a, b, c, e};
      for (int t = 0; t < 4; ++t) {
        const V4 v = (V4)((I4)in[t] & abs_mask);
        m4 = m4 > v ? m4 : v;
      }
      zero4 += ((a - a) + (b - b)) + ((c - c) + (e - e));
      V4 r[4];
      Transpose4(in, r);
      for (int t = 0; t < 4; ++t) __builtin_memcpy(cols + (k + t) * n + i, &r[t], sizeof(V4));
    }
    for (; k < d; ++k) {
      for (int64_t t = 0; t < 4; ++t) {
        const double v = x[(i + t) * d + k];
        cols[k * n + i + t] = v;
        m = std::max(m, std::abs(v));
        zero += v - v;
      }
    }
  }
  for (; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) {
      const double v = x[i * d + k];
      cols[k * n + i] = v;
      m = std::max(m, std::abs(v));
      zero += v - v;
    }
  }
  *finite = zero + ((zero4[0] + zero4[1]) + (zero4[2] + zero4[3])) == 0;
  return std::max(std::max(m, std::max(m4[0], m4[1])), std::max(m4[2], m4[3]));
}

double TransposeBaseline(const double* x, int64_t n, int64_t d, double* cols, bool* finite) {
  return TransposeLoop(x, n, d, cols, finite);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
[[gnu::target("avx2,fma")]] double TransposeAvx2(const double* x, int64_t n, int64_t d, double* cols, bool* finite) {
  return TransposeLoop(x, n, d, cols, finite);
}
#endif

}  // namespace

VectorPoints ByCoordinate(const PoolingProblem& p, PoolingWorkspace* ws) {
  std::vector<double>& cols = ws->cols;
  cols.resize(static_cast<size_t>(p.n * p.d));
  VectorPoints points{&p, cols.data()};
#if defined(DDN_HAVE_SIMD_DISPATCH)
  if (::ddn::UseAvx2()) {
    points.xmax = TransposeAvx2(p.x, p.n, p.d, cols.data(), &points.finite);
    return points;
  }
#endif
  points.xmax = TransposeBaseline(p.x, p.n, p.d, cols.data(), &points.finite);
  return points;
}

namespace {

// d rows of n values (row k at in + k·n) into `frame`'s floats (row k at out + k·out_stride): FloatFrame::ToFloat
// written out so that the loop vectorises, and without the clamp when no point can reach it (max|x| + max|center|
// within kFloatReach·α, `xmax` bounding |x|: the usual case).
void FloatRows(const double* in, int64_t n, int64_t d, const FloatFrame& frame, double xmax, float* out,
               int64_t out_stride) {
  constexpr double kReach = FloatFrame::kFloatReach;
  const double inv_alpha = frame.inv_alpha;
  double cmax = 0;
  for (int64_t k = 0; k < d; ++k) cmax = std::max(cmax, std::abs(frame.center[k]));
  const bool clamp = !((xmax + cmax) * inv_alpha < kReach);
  for (int64_t k = 0; k < d; ++k) {
    const double c = frame.center[k];
    const double* __restrict row = in + k * n;
    float* __restrict o = out + k * out_stride;
    if (!clamp) {
      for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>((row[i] - c) * inv_alpha);
      continue;
    }
    for (int64_t i = 0; i < n; ++i) {
      double v = (row[i] - c) * inv_alpha;
      v = v > -kReach ? v : -kReach;  // selects in the order of the vector max and min instructions
      v = v < kReach ? v : kReach;
      o[i] = static_cast<float>(v);
    }
  }
}

}  // namespace

void BuildScoreSample(const VectorPoints& points, const double* center, ScoreSample* S) {
  const PoolingProblem& p = *points.problem;
  const int64_t stride = std::max<int64_t>(1, p.n / kScoreSample);
  S->m = (p.n + stride - 1) / stride;  // < 2·kScoreSample
  S->stride = stride;
  S->cols.resize(static_cast<size_t>(S->m * p.d));
  S->w.resize(static_cast<size_t>(S->m));
  for (int64_t j = 0; j < S->m; ++j) S->w[j] = Weight(p.w, j * stride);
  for (int64_t k = 0; k < p.d; ++k)
    for (int64_t j = 0; j < S->m; ++j) S->cols[k * S->m + j] = points.cols[k * p.n + j * stride];
  S->m_f = (S->m + 7) / 8 * 8;
  S->frame.center.assign(center, center + p.d);
  S->frame.inv_alpha = 1 / p.alpha;
  const double wmax = p.w ? MaxWeight(p) : 1.0;
  S->frame.wmax = wmax > 0 ? wmax : 1.0;
  S->cols_f.assign(static_cast<size_t>(S->m_f * p.d), 0.0f);
  S->w_f.assign(static_cast<size_t>(S->m_f), 0.0f);
  FloatRows(S->cols.data(), S->m, p.d, S->frame, points.xmax, S->cols_f.data(), S->m_f);
  for (int64_t j = 0; j < S->m; ++j) S->w_f[j] = static_cast<float>(S->w[j] / S->frame.wmax);
}

void BuildFloatPoints(const VectorPoints& points, const FloatFrame& frame, FloatPoints* F) {
  const PoolingProblem& p = *points.problem;
  F->n = p.n;
  F->n_pad = (p.n + 7) / 8 * 8;
  F->cols.assign(static_cast<size_t>(F->n_pad * p.d), 0.0f);
  F->w.assign(static_cast<size_t>(F->n_pad), 0.0f);
  FloatRows(points.cols, p.n, p.d, frame, points.xmax, F->cols.data(), F->n_pad);
  if (!p.w) {
    std::fill(F->w.begin(), F->w.begin() + p.n, 1.0f);  // wmax = 1
    F->wsum = static_cast<double>(p.n);
    return;
  }
  F->wsum = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    F->w[i] = static_cast<float>(p.w[i] / frame.wmax);
    F->wsum += F->w[i];
  }
}

namespace {

// Sorts a[0..M) lane by lane, ascending: Batcher's bitonic network (M/2 · log M · (log M + 1)/2 compare–exchanges,
// each a vector min and max over eight lanes; no branch on the data).
template <int M>
[[gnu::always_inline]] inline void BitonicSortLanes(::ddn::Float8* a) {
  for (int k = 2; k <= M; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int base = 0; base < M; base += 2 * j) {
        const bool ascending = (base & k) == 0;
        for (int t = 0; t < j; ++t) {
          const ::ddn::Float8 x = a[base + t], y = a[base + t + j];
          const ::ddn::Float8 lo = x < y ? x : y, hi = x < y ? y : x;
          a[base + t] = ascending ? lo : hi;
          a[base + t + j] = ascending ? hi : lo;
        }
      }
    }
  }
}

// row[0..lanes) in single precision, zeros in the other lanes.
[[gnu::always_inline]] inline void LoadLanes(const double* row, int64_t lanes, ::ddn::Float8* v) {
  *v = ::ddn::Float8{};
  for (int64_t l = 0; l < lanes; ++l) (*v)[l] = static_cast<float>(row[l]);
}

// SampleMedians for the coordinates k0 .. k0 + lanes − 1 (lanes ≤ 8), M ≥ count a power of two.
template <int M>
[[gnu::always_inline]] inline void SampleMediansLoop(const double* x, int64_t d, int64_t stride, int64_t count,
                                                     int64_t k0, int64_t lanes, double* median, double* scratch) {
  using ::ddn::Float8;
  using ::ddn::Int8;
  alignas(32) Float8 a[M];
  for (int64_t j = 0; j < count; ++j) LoadLanes(x + j * stride * d + k0, lanes, &a[j]);
  for (int64_t j = count; j < M; ++j) a[j] = Float8{} + std::numeric_limits<float>::infinity();
  BitonicSortLanes<M>(a);
  const int64_t kth = (count - 1) / 2;
  const Float8 mf = a[kth];
  // Rounding to float is monotone: the points whose float is below mf are below the one whose float is mf. So a
  // lane where exactly one point has mf (and kth below it) has its k-th smallest double there, exactly.
  Int8 below = {}, equal = {}, at = {};
  for (int64_t j = 0; j < count; ++j) {
    Float8 v;
    LoadLanes(x + j * stride * d + k0, lanes, &v);
    const Int8 same = v == mf;
    below -= v < mf;  // a true comparison is −1
    equal -= same;
    at = same ? Int8{} + static_cast<int32_t>(j) : at;
  }
  for (int64_t l = 0; l < lanes; ++l) {
    if (equal[l] == 1 && below[l] == kth) {
      median[k0 + l] = x[at[l] * stride * d + k0 + l];
      continue;
    }
    for (int64_t j = 0; j < count; ++j) scratch[j] = x[j * stride * d + k0 + l];  // ties in float: select in double
    median[k0 + l] = SelectKth(scratch, scratch + count, count, kth);
  }
}

template <int M>
void SampleMediansBaseline(const double* x, int64_t d, int64_t stride, int64_t count, int64_t k0, int64_t lanes,
                           double* median, double* scratch) {
  SampleMediansLoop<M>(x, d, stride, count, k0, lanes, median, scratch);
}

#if defined(DDN_HAVE_SIMD_DISPATCH)
template <int M>
[[gnu::target("avx2,fma")]] void SampleMediansAvx2(const double* x, int64_t d, int64_t stride, int64_t count,
                                                   int64_t k0, int64_t lanes, double* median, double* scratch) {
  SampleMediansLoop<M>(x, d, stride, count, k0, lanes, median, scratch);
}
#endif

template <int M>
void SampleMediansOf(const double* x, int64_t d, int64_t stride, int64_t count, double* median, double* scratch) {
  for (int64_t k0 = 0; k0 < d; k0 += 8) {
    const int64_t lanes = std::min<int64_t>(8, d - k0);
#if defined(DDN_HAVE_SIMD_DISPATCH)
    if (::ddn::UseAvx2()) {
      SampleMediansAvx2<M>(x, d, stride, count, k0, lanes, median, scratch);
      continue;
    }
#endif
    SampleMediansBaseline<M>(x, d, stride, count, k0, lanes, median, scratch);
  }
}

}  // namespace

void SampleMedians(const double* x, int64_t d, int64_t stride, int64_t count, double* median, double* scratch) {
  if (count <= 16) return SampleMediansOf<16>(x, d, stride, count, median, scratch);
  if (count <= 32) return SampleMediansOf<32>(x, d, stride, count, median, scratch);
  if (count <= 64) return SampleMediansOf<64>(x, d, stride, count, median, scratch);
  SampleMediansOf<128>(x, d, stride, count, median, scratch);
}

}  // namespace internal
}  // namespace ddn::pooling
