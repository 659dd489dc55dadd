// The arithmetic limits of robust pooling's standard workloads (README "Performance"): minimal kernels that do
// only the arithmetic of a local solve from a start already close, on one thread, to which `ddn bench` is compared
// (the convex scalar penalties' limits are in bench/limits_benchmark.cc). Each runs Newton steps until one is below
// 1e-12·(|y| + α), the nodes' stopping rule (counter passes_per_problem: the passes this took on average), so that
// its answer is as accurate as the node's; a fixed three steps, as these kernels did first, left vector welsch at
// |∇f| ≈ 1e-7.
//
//   BM_WelschNewton       robust_pool welsch, α = 1, x (1024, 1024): per problem Newton steps
//                         y ← y − Σφ'(y − x_i)/Σφ''(y − x_i) from the median of the problem (computed before the
//                         timing: not counted), then the backward's pass dx_i = v φ''(y − x_i)/Σφ''. Per point and
//                         step: one exponential (the same polynomial as the node's, ddn/fast_exp.h), ~25 flops.
//                         The node does more: a certificate of global optimality (a histogram of the points and
//                         bounds over cells), the value f for its descent test, and a residual.
//   BM_VectorNewton       robust_vector_pool, α = 1, x (64, 256, 8): per problem the points by coordinate (one
//                         transpose), Newton steps from the coordinate-wise median (not counted), each one pass for
//                         g = Σ ψ r_i and the lower triangle of H = Σ ψ I + c r_i r_iᵀ (D(D+1)/2 + D multiply–adds
//                         per point) and an 8 × 8 Cholesky solve; then the backward with the last pass's H (one
//                         step below the tolerance away): a solve and one pass for dx. Pseudo-Huber (one square
//                         root, one division per point) and welsch (one exponential). The node does more for welsch:
//                         several starts (median, mean, the four best-scoring data points) and their scoring, for
//                         the best of several local minima.
//
// All loops are compiled for AVX2 + FMA with independent accumulators (the way the node's kernels are); the
// Hessian's multiply–adds in tiles of four rows by two columns. A node cannot beat these figures without skipping
// work.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ddn/fast_exp.h"
#include "ddn/workload.h"

namespace {

#define DDN_LIMIT_TARGET __attribute__((target("avx2,fma")))

constexpr int kLanes = 8;
constexpr int kMaxPasses = 50;  // Newton passes per problem at most (none needs more than a few)

// ---- Scalar welsch ------------------------------------------------------------------------------------------

// Σ φ'(y − x_i) and Σ φ''(y − x_i) for welsch with α = 1: φ' = z e, φ'' = (1 − z²) e, e = exp(−z²/2).
DDN_LIMIT_TARGET void WelschSums(const double* x, int64_t n, double y, double* g, double* h) {
  double ga[kLanes] = {}, ha[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double z = y - x[i + j], u = z * z, e = ddn::ExpNonPositive(-0.5 * u);
      ga[j] += z * e;
      ha[j] += (1.0 - u) * e;
    }
  }
  double gs = 0, hs = 0;
  for (; i < n; ++i) {
    const double z = y - x[i], u = z * z, e = ddn::ExpNonPositive(-0.5 * u);
    gs += z * e;
    hs += (1.0 - u) * e;
  }
  for (int j = 0; j < kLanes; ++j) {
    gs += ga[j];
    hs += ha[j];
  }
  *g = gs;
  *h = hs;
}

DDN_LIMIT_TARGET void WelschVjp(const double* x, int64_t n, double y, double v_over_h, double* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const double z = y - x[i], u = z * z;
    dx[i] = v_over_h * (1.0 - u) * ddn::ExpNonPositive(-0.5 * u);
  }
}

void BM_WelschNewton(benchmark::State& state) {
  const int64_t batch = state.range(0), n = state.range(1);
  const ddn::Tensor t = ddn::ClusteredPoints(batch, n, 1, 0.2, 1);
  const double* x = t.values().data();
  std::vector<double> dx(batch * n), y(batch), start(batch);
  std::vector<int> passes(batch);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> row(x + b * n, x + (b + 1) * n);
    std::nth_element(row.begin(), row.begin() + n / 2, row.end());
    start[b] = row[n / 2];
  }
  for (auto _ : state) {
    for (int64_t b = 0; b < batch; ++b) {
      const double* xb = x + b * n;
      double yb = start[b], g = 0, h = 1;
      for (passes[b] = 1; passes[b] <= kMaxPasses; ++passes[b]) {
        WelschSums(xb, n, yb, &g, &h);
        const double step = g / h;
        yb -= step;
        if (std::abs(step) <= 1e-12 * (std::abs(yb) + 1.0)) break;
      }
      y[b] = yb;
      WelschVjp(xb, n, yb, 1.0 / h, dx.data() + b * n);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch * n);
  state.counters["passes_per_problem"] = static_cast<double>(std::accumulate(passes.begin(), passes.end(), 0)) / batch;
}
BENCHMARK(BM_WelschNewton)->Args({1024, 1024})->Unit(benchmark::kMillisecond);

// ---- Vector pooling -----------------------------------------------------------------------------------------

constexpr int kD = 8;  // the standard workload's D

// ψ = φ'/z and c = (φ'' − ψ)/z² from z² (α = 1).
template <bool kWelsch>
DDN_LIMIT_TARGET inline void Weights(double zz, double* psi, double* c) {
  if (kWelsch) {
    const double e = ddn::ExpNonPositive(-0.5 * zz);
    *psi = e;
    *c = -e;
  } else {
    const double iq = 1.0 / std::sqrt(1.0 + zz);
    *psi = iq;
    *c = -iq * iq * iq;
  }
}

// One pass at y over n points stored by coordinate (cols[k·n + i]): g (D values) and the lower triangle of H
// (column-major D × D). R and CR: scratch of D·n values each.
template <bool kWelsch>
DDN_LIMIT_TARGET void VectorSums(const double* cols, int64_t n, const double* y, double* R, double* CR, double* g,
                                 double* H) {
  double z2[256], wpsi[256], cw[256];
  for (int64_t j = 0; j < n; ++j) z2[j] = 0;
  for (int k = 0; k < kD; ++k) {
    for (int64_t j = 0; j < n; ++j) {
      R[k * n + j] = y[k] - cols[k * n + j];
      z2[j] += R[k * n + j] * R[k * n + j];
    }
  }
  double spsi = 0;
  for (int64_t j = 0; j < n; ++j) {
    Weights<kWelsch>(z2[j], &wpsi[j], &cw[j]);
    spsi += wpsi[j];
  }
  for (int k = 0; k < kD; ++k) {
    double acc[kLanes] = {};
    for (int64_t j = 0; j < n; j += kLanes)
      for (int t = 0; t < kLanes; ++t) acc[t] += wpsi[j + t] * R[k * n + j + t];
    double s = 0;
    for (int t = 0; t < kLanes; ++t) s += acc[t];
    g[k] = s;
    for (int64_t j = 0; j < n; ++j) CR[k * n + j] = cw[j] * R[k * n + j];
  }
  // H's lower triangle in tiles of 4 rows × 2 columns, four points per vector.
  typedef double V4 __attribute__((vector_size(32)));
  for (int k0 = 0; k0 < kD; k0 += 4) {
    for (int l0 = 0; l0 <= k0 + 2; l0 += 2) {
      V4 a[4][2] = {};
      for (int64_t j = 0; j < n; j += 4) {
        V4 x0, x1;
        __builtin_memcpy(&x0, R + l0 * n + j, sizeof x0);
        __builtin_memcpy(&x1, R + (l0 + 1) * n + j, sizeof x1);
        for (int t = 0; t < 4; ++t) {
          V4 c;
          __builtin_memcpy(&c, CR + (k0 + t) * n + j, sizeof c);
          a[t][0] += c * x0;
          a[t][1] += c * x1;
        }
      }
      for (int t = 0; t < 4; ++t)
        for (int e = 0; e < 2; ++e)
          if (l0 + e <= k0 + t) H[(k0 + t) + (l0 + e) * kD] = (a[t][e][0] + a[t][e][1]) + (a[t][e][2] + a[t][e][3]);
    }
  }
  for (int k = 0; k < kD; ++k) H[k + k * kD] += spsi;
}

template <bool kWelsch>
DDN_LIMIT_TARGET void VectorVjp(const double* cols, int64_t n, const double* y, const double* u, double* dx) {
  for (int64_t j = 0; j < n; ++j) {
    double zz = 0, ru = 0, r[kD];
    for (int k = 0; k < kD; ++k) {
      r[k] = y[k] - cols[k * n + j];
      zz += r[k] * r[k];
      ru += r[k] * u[k];
    }
    double psi, c;
    Weights<kWelsch>(zz, &psi, &c);
    for (int k = 0; k < kD; ++k) dx[j * kD + k] = psi * u[k] + c * ru * r[k];
  }
}

template <bool kWelsch>
void BM_VectorNewton(benchmark::State& state) {
  const int64_t batch = state.range(0), n = state.range(1);
  const ddn::Tensor t = ddn::ClusteredPoints(batch, n, kD, 0.2, 1);
  const double* x = t.values().data();
  std::vector<double> starts(batch * kD), cols(n * kD), R(n * kD), CR(n * kD), dx(batch * n * kD), ys(batch * kD);
  std::vector<int> passes(batch);
  for (int64_t b = 0; b < batch; ++b) {
    for (int k = 0; k < kD; ++k) {
      std::vector<double> col(n);
      for (int64_t i = 0; i < n; ++i) col[i] = x[(b * n + i) * kD + k];
      std::nth_element(col.begin(), col.begin() + n / 2, col.end());
      starts[b * kD + k] = col[n / 2];
    }
  }
  Eigen::Matrix<double, kD, kD> H;
  Eigen::Matrix<double, kD, 1> g, y, u, step, v = Eigen::Matrix<double, kD, 1>::Ones();
  Eigen::LLT<Eigen::Matrix<double, kD, kD>> llt;
  for (auto _ : state) {
    for (int64_t b = 0; b < batch; ++b) {
      const double* xb = x + b * n * kD;
      for (int64_t i = 0; i < n; ++i)
        for (int k = 0; k < kD; ++k) cols[k * n + i] = xb[i * kD + k];
      for (int k = 0; k < kD; ++k) y[k] = starts[b * kD + k];
      // Newton until a step is below 1e-12·(|y|∞ + α); the last pass's H (one tiny step from y) serves the backward.
      for (passes[b] = 1; passes[b] <= kMaxPasses; ++passes[b]) {
        VectorSums<kWelsch>(cols.data(), n, y.data(), R.data(), CR.data(), g.data(), H.data());
        llt.compute(H.selfadjointView<Eigen::Lower>());
        step = llt.solve(g);
        y -= step;
        if (step.lpNorm<Eigen::Infinity>() <= 1e-12 * (y.lpNorm<Eigen::Infinity>() + 1.0)) break;
      }
      u = llt.solve(v);
      VectorVjp<kWelsch>(cols.data(), n, y.data(), u.data(), dx.data() + b * n * kD);
      for (int k = 0; k < kD; ++k) ys[b * kD + k] = y[k];
    }
    benchmark::DoNotOptimize(ys.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch * n);
  state.counters["passes_per_problem"] = static_cast<double>(std::accumulate(passes.begin(), passes.end(), 0)) / batch;
}
BENCHMARK_TEMPLATE(BM_VectorNewton, false)
    ->Name("BM_VectorNewton/pseudo_huber")
    ->Args({64, 256})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_VectorNewton, true)
    ->Name("BM_VectorNewton/welsch")
    ->Args({64, 256})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
