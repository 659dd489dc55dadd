// The physical limits of the standard workloads: minimal kernels that do only the unavoidable work, on one
// thread, to which the nodes' own timings are compared (README "Performance").
//
//   BM_FivePasses          a projection must read x and write y, and its backward read y and v and write dx:
//                          five passes over B·D doubles, here as the cheapest loops that do them (a scale,
//                          a dot product, an axpy). Memory-bound: the limit of every `project` workload.
//   BM_PseudoHuberNewton   robust pooling with pseudo-Huber, α = 1, x (B, N): per problem Newton steps
//                          y ← y − Σφ'(y − x_i) / Σφ''(y − x_i) from a start already close (the median of
//                          the problem: not counted) until a step is below 1e-12·(|y| + α), the nodes' stopping
//                          rule (counter passes_per_problem), then the backward's pass dx_i = v φ''(y − x_i) / Σφ''.
//                          Per point and step: one square root, one division, ~6 flops.
//                          Arithmetic-bound: the limit of the convex `robust_pool` workloads.
//   BM_HuberNewton         the same for Huber (φ' = clamp(z, −α, α), φ'' = [|z| ≤ α]): compare-and-select.
//
// All loops are compiled for AVX2 + FMA (the machine's widest vectors) with eight accumulators, the way the
// nodes' kernels are; a node cannot beat these figures without skipping work.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ddn/workload.h"

namespace {

#define DDN_LIMIT_TARGET __attribute__((target("avx2,fma")))

constexpr int kLanes = 8;

// The benchmarks' one workload (ddn/workload.h), 20 % outliers, as one array of batch × n values.
std::vector<double> Clusters(int64_t batch, int64_t n, uint64_t seed) {
  const ddn::Tensor t = ddn::ClusteredPoints(batch, n, 1, 0.2, seed);
  return std::vector<double>(t.values().begin(), t.values().end());
}

DDN_LIMIT_TARGET void FivePasses(const double* x, const double* v, double* y, double* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5 * x[i];  // forward: read x, write y
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)  // backward: read y and v ...
    for (int j = 0; j < kLanes; ++j) acc[j] += y[i + j] * v[i + j];
  double s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; i < n; ++i) s += y[i] * v[i];
  const double c = 1e-9 * s;
  for (int64_t k = 0; k < n; ++k) dx[k] = 0.5 * v[k] - c * y[k];  // ... and write dx (y, v in cache or not)
}

void BM_FivePasses(benchmark::State& state) {
  const int64_t n = state.range(0) * state.range(1);
  std::vector<double> x = Clusters(1, n, 1), v = Clusters(1, n, 2), y(n), dx(n);
  for (auto _ : state) {
    FivePasses(x.data(), v.data(), y.data(), dx.data(), n);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 5 * n * sizeof(double));
}
BENCHMARK(BM_FivePasses)->Args({1024, 1024})->Unit(benchmark::kMillisecond);

// Σ φ'(y − x_i) and Σ φ''(y − x_i) for pseudo-Huber with α = 1: φ'(z) = z/√(1+z²), φ''(z) = (1+z²)^(−3/2).
DDN_LIMIT_TARGET void PseudoHuberSums(const double* x, int64_t n, double y, double* g, double* h) {
  double ga[kLanes] = {}, ha[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double z = y - x[i + j];
      const double r = 1.0 / std::sqrt(1.0 + z * z);
      ga[j] += z * r;
      ha[j] += r * r * r;
    }
  }
  double gs = 0, hs = 0;
  for (; i < n; ++i) {
    const double z = y - x[i];
    const double r = 1.0 / std::sqrt(1.0 + z * z);
    gs += z * r;
    hs += r * r * r;
  }
  for (int j = 0; j < kLanes; ++j) {
    gs += ga[j];
    hs += ha[j];
  }
  *g = gs;
  *h = hs;
}

DDN_LIMIT_TARGET void PseudoHuberVjp(const double* x, int64_t n, double y, double v_over_h, double* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const double z = y - x[i];
    const double r = 1.0 / std::sqrt(1.0 + z * z);
    dx[i] = v_over_h * r * r * r;
  }
}

DDN_LIMIT_TARGET void HuberSums(const double* x, int64_t n, double y, double* g, double* h) {
  double ga[kLanes] = {}, ha[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double z = y - x[i + j];
      ga[j] += std::min(std::max(z, -1.0), 1.0);
      ha[j] += std::abs(z) <= 1.0 ? 1.0 : 0.0;
    }
  }
  double gs = 0, hs = 0;
  for (; i < n; ++i) {
    const double z = y - x[i];
    gs += std::min(std::max(z, -1.0), 1.0);
    hs += std::abs(z) <= 1.0 ? 1.0 : 0.0;
  }
  for (int j = 0; j < kLanes; ++j) {
    gs += ga[j];
    hs += ha[j];
  }
  *g = gs;
  *h = hs;
}

DDN_LIMIT_TARGET void HuberVjp(const double* x, int64_t n, double y, double v_over_h, double* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const double z = y - x[i];
    dx[i] = std::abs(z) <= 1.0 ? v_over_h : 0.0;
  }
}

// Newton steps from `y` until one is below 1e-12·(|y| + α) (the nodes' stopping rule; α = 1 here), at most 50;
// *h is Σφ'' of the last pass, for the backward. Returns the passes made.
template <void (*Sums)(const double*, int64_t, double, double*, double*)>
int NewtonToConvergence(const double* x, int64_t n, double* y, double* h) {
  double g = 0;
  for (int pass = 1; pass <= 50; ++pass) {
    Sums(x, n, *y, &g, h);
    const double step = g / *h;
    *y -= step;
    if (std::abs(step) <= 1e-12 * (std::abs(*y) + 1.0)) return pass;
  }
  return 50;
}

template <void (*Sums)(const double*, int64_t, double, double*, double*),
          void (*Vjp)(const double*, int64_t, double, double, double*)>
void BM_Newton(benchmark::State& state) {
  const int64_t batch = state.range(0), n = state.range(1);
  const std::vector<double> x = Clusters(batch, n, 1);
  std::vector<double> dx(batch * n), y(batch);
  std::vector<int> passes(batch);
  // The start: each cluster's centre region (what a median of a sample gives), not timed.
  std::vector<double> start(batch);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<double> row(x.begin() + b * n, x.begin() + (b + 1) * n);
    std::nth_element(row.begin(), row.begin() + n / 2, row.end());
    start[b] = row[n / 2];
  }
  for (auto _ : state) {
    for (int64_t b = 0; b < batch; ++b) {
      const double* xb = x.data() + b * n;
      double yb = start[b], h = 1;
      passes[b] = NewtonToConvergence<Sums>(xb, n, &yb, &h);
      y[b] = yb;
      Vjp(xb, n, yb, 1.0 / h, dx.data() + b * n);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch * n);
  state.counters["passes_per_problem"] = static_cast<double>(std::accumulate(passes.begin(), passes.end(), 0)) / batch;
}
BENCHMARK_TEMPLATE(BM_Newton, PseudoHuberSums, PseudoHuberVjp)
    ->Name("BM_PseudoHuberNewton")
    ->Args({1024, 1024})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Newton, HuberSums, HuberVjp)
    ->Name("BM_HuberNewton")
    ->Args({1024, 1024})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
