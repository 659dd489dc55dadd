// Forward + backward of the projection nodes on x (1024, 1024) Gaussian, radius 1 (docs/design.md §3):
//
//   BM_Node     through ddn::Forward / ddn::Backward (validation, batching over both cores, allocation of
//               the output and gradient tensors): what a user of the library gets;
//   BM_Kernel   the per-problem kernels of projections.h alone, ddn::ParallelFor over the batch: the cost that is
//               the projection's own.
//
//   projection_benchmark --benchmark_repetitions=5 [--benchmark_filter=l1_ball]
//
// Allocation: every call allocates fresh 8 MB output/gradient tensors. By default glibc returns such
// blocks to the OS when freed, and on a virtual machine each first touch of a page then costs ~10 µs
// (~40 ms per 8 MB tensor), which would dominate the measurement. main() therefore asks malloc to keep
// freed memory (mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD), as a long-running training process does
// after its first iteration; set DDN_BENCH_MALLOC_DEFAULTS=1 to measure with glibc's defaults.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include "ddn/parallel.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/projection/ellipsoid.h"
#include "nodes/projection/projections.h"

namespace {

ddn::Tensor Gaussian(int64_t batch, int64_t dim, uint64_t seed) {
  ddn::Rng rng(seed);
  ddn::Tensor x({batch, dim});
  for (auto& v : x.values()) v = rng.Normal();
  return x;
}

void BM_Node(benchmark::State& state, const std::string& shape, bool backward) {
  const int64_t batch = state.range(0), dim = state.range(1);
  const auto node = ddn::MakeNode("project", {{"shape", shape}, {"radius", "1"}});
  const ddn::TensorMap inputs{{"x", Gaussian(batch, dim, 42)}};
  const ddn::TensorMap grad_outputs{{"y", Gaussian(batch, dim, 43)}};
  for (auto _ : state) {
    ddn::ForwardResult r = ddn::Forward(*node, inputs);
    if (backward) {
      ddn::TensorMap g = ddn::Backward(*node, inputs, r.outputs, grad_outputs, &r.status);
      benchmark::DoNotOptimize(g.at("x").data());
    }
    benchmark::DoNotOptimize(r.outputs.at("y").data());
  }
  state.SetItemsProcessed(state.iterations() * batch * dim);
}

void BM_Kernel(benchmark::State& state, const std::string& shape) {
  const int64_t batch = state.range(0), dim = state.range(1);
  const ddn::projection::ProjectionSet set = ddn::projection::ParseProjectionSet(shape);
  const ddn::Tensor x = Gaussian(batch, dim, 42), v = Gaussian(batch, dim, 43);
  ddn::Tensor y({batch, dim}), dx({batch, dim});
  for (auto _ : state) {
    ddn::ParallelFor(batch, 0, 1, [&](int64_t begin, int64_t end, int) {
      for (int64_t b = begin; b < end; ++b) {
        ddn::projection::Project(set, x.problem(b), dim, 1.0, y.problem(b), nullptr);
        double* g = dx.problem(b);
        for (int64_t i = 0; i < dim; ++i) g[i] = 0;
        ddn::projection::ProjectVjp(set, x.problem(b), y.problem(b), dim, 1.0, v.problem(b), g, nullptr);
      }
    });
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * batch * dim);
}

void BM_Ellipsoid(benchmark::State& state) {
  const int64_t batch = state.range(0), dim = state.range(1);
  const auto node = ddn::MakeNode("project_ellipsoid");
  ddn::Tensor a({batch, dim});
  ddn::Rng rng(7);
  for (auto& e : a.values()) e = rng.Uniform(0.5, 2.0);
  const ddn::TensorMap inputs{{"x", Gaussian(batch, dim, 42)}, {"a", a}};
  const ddn::TensorMap grad_outputs{{"y", Gaussian(batch, dim, 43)}};
  for (auto _ : state) {
    ddn::ForwardResult r = ddn::Forward(*node, inputs);
    ddn::TensorMap g = ddn::Backward(*node, inputs, r.outputs, grad_outputs, &r.status);
    benchmark::DoNotOptimize(g.at("x").data());
  }
  state.SetItemsProcessed(state.iterations() * batch * dim);
}

}  // namespace

#define DDN_PROJECTION_BENCH(shape)                                  \
  BENCHMARK_CAPTURE(BM_Node, shape##_forward_backward, #shape, true) \
      ->Args({1024, 1024})                                           \
      ->Unit(benchmark::kMillisecond)                                \
      ->UseRealTime();                                               \
  BENCHMARK_CAPTURE(BM_Node, shape##_forward, #shape, false)         \
      ->Args({1024, 1024})                                           \
      ->Unit(benchmark::kMillisecond)                                \
      ->UseRealTime();                                               \
  BENCHMARK_CAPTURE(BM_Kernel, shape##_forward_backward, #shape)     \
      ->Args({1024, 1024})                                           \
      ->Unit(benchmark::kMillisecond)                                \
      ->UseRealTime()

DDN_PROJECTION_BENCH(simplex);
DDN_PROJECTION_BENCH(l1_sphere);
DDN_PROJECTION_BENCH(l1_ball);
DDN_PROJECTION_BENCH(l2_sphere);
DDN_PROJECTION_BENCH(l2_ball);
DDN_PROJECTION_BENCH(linf_sphere);
DDN_PROJECTION_BENCH(linf_ball);
BENCHMARK(BM_Ellipsoid)->Args({1024, 1024})->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  if (!std::getenv("DDN_BENCH_MALLOC_DEFAULTS")) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum: 8 MB blocks come from the heap...
    mallopt(M_TRIM_THRESHOLD, 1 << 30);   // ...which is not trimmed back to the OS
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
