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

}  // namespace

BENCHMARK_MAIN();
