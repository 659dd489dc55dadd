// Benchmarks of the linear-algebra nodes on the workloads of issue 14 (the sizes the reference library is timed
// at, side by side, by bench/reference/side_by_side.py): forward + backward of one batch through ddn::Forward and
// ddn::Backward, double precision, at the thread count given by --threads (default 1: the quoted figures are
// single-threaded; the machine is shared).
//
//   least_squares  A (256, 512, 64), b (256, 512), β = 1e-3, bias; unweighted and weighted
//   eigen          X (256, 32, 32), top_k 4 and all 32
//
// Run with --benchmark_repetitions=5 and read the medians.
#include <benchmark/benchmark.h>

#include <string>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"

namespace {

ddn::Tensor Gaussian(ddn::Shape shape, uint64_t seed) {
  ddn::Rng rng(seed);
  ddn::Tensor t(shape);
  for (auto& v : t.values()) v = rng.Normal();
  return t;
}

ddn::RunOptions Threads() {
  ddn::RunOptions run;
  run.threads = 1;
  return run;
}

void RunBoth(benchmark::State& state, const ddn::Node& node, const ddn::TensorMap& in) {
  const ddn::RunOptions run = Threads();
  ddn::TensorMap v;
  {
    const ddn::ForwardResult r = ddn::Forward(node, in, run);
    uint64_t seed = 9;
    for (const auto& [name, y] : r.outputs) v[name] = Gaussian(y.shape(), seed++);
  }
  for (auto _ : state) {
    ddn::ForwardResult r = ddn::Forward(node, in, run);
    ddn::TensorMap g = ddn::Backward(node, in, r.outputs, v, &r.status, run);
    benchmark::DoNotOptimize(g);
  }
}

void BM_LeastSquares(benchmark::State& state) {
  const bool weighted = state.range(0) != 0;
  const auto node = ddn::MakeNode("least_squares");
  ddn::TensorMap in{{"A", Gaussian({256, 512, 64}, 1)}, {"b", Gaussian({256, 512}, 2)}};
  if (weighted) {
    ddn::Rng rng(3);
    ddn::Tensor w({256, 512});
    for (auto& e : w.values()) e = rng.Uniform(0.0, 1.0);
    in["w"] = w;
  }
  RunBoth(state, *node, in);
}
BENCHMARK(BM_LeastSquares)->Arg(0)->Arg(1)->ArgName("weighted")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_LeastSquaresForward(benchmark::State& state) {
  const auto node = ddn::MakeNode("least_squares");
  const ddn::TensorMap in{{"A", Gaussian({256, 512, 64}, 1)}, {"b", Gaussian({256, 512}, 2)}};
  for (auto _ : state) benchmark::DoNotOptimize(ddn::Forward(*node, in, Threads()));
}
BENCHMARK(BM_LeastSquaresForward)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Eigen(benchmark::State& state) {
  const auto node = ddn::MakeNode("eigen", {{"top_k", std::to_string(state.range(0))}});
  RunBoth(state, *node, {{"X", Gaussian({256, 32, 32}, 4)}});
}
BENCHMARK(BM_Eigen)->Arg(4)->Arg(0)->ArgName("top_k")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_EigenForward(benchmark::State& state) {
  const auto node = ddn::MakeNode("eigen", {{"top_k", "4"}});
  const ddn::TensorMap in{{"X", Gaussian({256, 32, 32}, 4)}};
  for (auto _ : state) benchmark::DoNotOptimize(ddn::Forward(*node, in, Threads()));
}
BENCHMARK(BM_EigenForward)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
