// Forward + backward of the projection nodes through ddn::Forward / ddn::Backward (batched, all cores),
// x (1024, 1024) Gaussian, radius 1: the workload of DESIGN.md §3.
//
//   projection_benchmark --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <random>

#include "ddn/batch.h"
#include "ddn/node.h"

namespace {

ddn::TensorMap GaussianInputs(int64_t batch, int64_t dim) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> normal;
  ddn::Tensor x({batch, dim});
  for (auto& v : x.values()) v = normal(rng);
  return {{"x", x}};
}

void BM_Project(benchmark::State& state, const std::string& shape, bool backward) {
  const int64_t batch = state.range(0), dim = state.range(1);
  const auto node = ddn::MakeNode("project", {{"shape", shape}, {"radius", "1"}});
  const ddn::TensorMap inputs = GaussianInputs(batch, dim);
  ddn::TensorMap v = GaussianInputs(batch, dim);
  ddn::TensorMap grad_outputs{{"y", v.at("x")}};
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

void BM_Ellipsoid(benchmark::State& state) {
  const int64_t batch = state.range(0), dim = state.range(1);
  const auto node = ddn::MakeNode("project_ellipsoid");
  ddn::TensorMap inputs = GaussianInputs(batch, dim);
  ddn::Tensor a({batch, dim});
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> axis(0.5, 2.0);
  for (auto& e : a.values()) e = axis(rng);
  inputs["a"] = a;
  ddn::TensorMap grad_outputs{{"y", GaussianInputs(batch, dim).at("x")}};
  for (auto _ : state) {
    ddn::ForwardResult r = ddn::Forward(*node, inputs);
    ddn::TensorMap g = ddn::Backward(*node, inputs, r.outputs, grad_outputs, &r.status);
    benchmark::DoNotOptimize(g.at("x").data());
  }
  state.SetItemsProcessed(state.iterations() * batch * dim);
}

}  // namespace

#define DDN_PROJECTION_BENCH(shape)                                                                           \
  BENCHMARK_CAPTURE(BM_Project, shape##_forward_backward, #shape, true)->Args({1024, 1024})->Unit(benchmark::kMillisecond)->UseRealTime(); \
  BENCHMARK_CAPTURE(BM_Project, shape##_forward, #shape, false)->Args({1024, 1024})->Unit(benchmark::kMillisecond)->UseRealTime()

DDN_PROJECTION_BENCH(simplex);
DDN_PROJECTION_BENCH(l1_sphere);
DDN_PROJECTION_BENCH(l1_ball);
DDN_PROJECTION_BENCH(l2_sphere);
DDN_PROJECTION_BENCH(l2_ball);
DDN_PROJECTION_BENCH(linf_sphere);
DDN_PROJECTION_BENCH(linf_ball);
BENCHMARK(BM_Ellipsoid)->Args({1024, 1024})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
