// Benchmarks of the alignment nodes: forward + backward of one batch through ddn::Forward / ddn::Backward,
// double precision, on one thread (the machine may be shared; read the medians of --benchmark_repetitions=5).
//
//   optimal_transport  M (64, 128, 128) ~ N(0, 1), γ ∈ {1, 10, 100}, uniform marginals: the side-by-side
//                      workload of bench/reference/optimal_transport_side_by_side.py (γ = 10)
//   graph_match        node_affinity (16, 32, 32) ~ N(0, 1), edges Gaussian weights of random points, λ = 0.1,
//                      γ = 10
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>

#include "ddn/batch.h"
#include "ddn/node.h"

namespace {

ddn::Tensor Gaussian(const ddn::Shape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  ddn::Tensor t(shape);
  for (auto& v : t.values()) v = normal(rng);
  return t;
}

void BM_OptimalTransport(benchmark::State& state) {
  const double gamma = static_cast<double>(state.range(0));
  auto node = ddn::MakeNode("optimal_transport", {{"gamma", std::to_string(gamma)}});
  const ddn::TensorMap inputs{{"M", Gaussian({64, 128, 128}, 1)}};
  const ddn::Tensor v = Gaussian({64, 128, 128}, 2);
  ddn::RunOptions run;
  run.threads = 1;
  int iterations = 0;
  for (auto _ : state) {
    ddn::ForwardResult fwd = ddn::Forward(*node, inputs, run);
    const ddn::TensorMap g = ddn::Backward(*node, inputs, fwd.outputs, {{"P", v}}, &fwd.status, run);
    benchmark::DoNotOptimize(g.at("M").data());
    iterations = 0;
    for (const auto& s : fwd.status) iterations += s.iterations;
  }
  state.SetLabel("gamma=" + std::to_string(static_cast<int>(gamma)) +
                 " mean_iterations=" + std::to_string(iterations / 64));
}
BENCHMARK(BM_OptimalTransport)->Arg(1)->Arg(10)->Arg(100)->Unit(benchmark::kMillisecond)->UseRealTime();

// Edge weights exp(−‖p_i − p_k‖²) of n random points, per problem.
ddn::Tensor PointGraphs(int64_t b, int64_t n, uint64_t seed) {
  const ddn::Tensor p = Gaussian({b, n, 2}, seed);
  ddn::Tensor e({b, n, n});
  for (int64_t q = 0; q < b; ++q)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < n; ++k) {
        const double dx = p.problem(q)[2 * i] - p.problem(q)[2 * k], dy = p.problem(q)[2 * i + 1] - p.problem(q)[2 * k + 1];
        e.problem(q)[i * n + k] = i == k ? 0.0 : std::exp(-(dx * dx + dy * dy));
      }
  return e;
}

void BM_GraphMatch(benchmark::State& state) {
  auto node = ddn::MakeNode("graph_match", {{"lambda", "0.1"}, {"gamma", "10"}});
  const ddn::TensorMap inputs{{"node_affinity", Gaussian({16, 32, 32}, 3)}, {"edges_a", PointGraphs(16, 32, 4)},
                              {"edges_b", PointGraphs(16, 32, 5)}};
  const ddn::Tensor v = Gaussian({16, 32, 32}, 6);
  ddn::RunOptions run;
  run.threads = 1;
  int flagged = 0;
  for (auto _ : state) {
    ddn::ForwardResult fwd = ddn::Forward(*node, inputs, run);
    const ddn::TensorMap g = ddn::Backward(*node, inputs, fwd.outputs, {{"X", v}}, &fwd.status, run);
    benchmark::DoNotOptimize(g.at("node_affinity").data());
    flagged = 0;
    for (const auto& s : fwd.status) flagged += s.flags != 0;
  }
  state.SetLabel("lambda=0.1 gamma=10 flagged=" + std::to_string(flagged));
}
BENCHMARK(BM_GraphMatch)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
