// Benchmarks of robust pooling on the workloads of docs/design.md §3: forward + backward of one batch through
// ddn::Forward / ddn::Backward (all cores), double precision.
//
//   robust_pool        x (1024, 1024), α = 1, every penalty
//   robust_vector_pool x (64, 256, 8), α = 1, pseudo_huber and welsch (and the other penalties)
//
// Data: per row a Gaussian cluster (σ = 1 around a N(0, 1) centre) with 20 % outliers at ±U(5, 10) from the
// centre. Run with --benchmark_repetitions=5 and read the medians (the machine may be shared).
#include <benchmark/benchmark.h>

#include <string>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "ddn/workload.h"
#include "nodes/pooling/penalties.h"

namespace {

// The benchmarks' one workload (ddn/workload.h), 20 % outliers: the data `ddn bench robust_pool` times.
ddn::Tensor Workload(int64_t b, int64_t n, int64_t d, uint64_t seed) {
  return ddn::ClusteredPoints(b, n, d, 0.2, seed);
}

// Every penalty of the family (penalties.h), as robust_pool's spec lists them.
const std::vector<std::string>& kPenalties = ddn::pooling::PenaltyNames();

void Run(benchmark::State& state, const std::string& node_name, int64_t b, int64_t n, int64_t d, int threads = 0) {
  const std::string penalty = kPenalties[state.range(0)];
  auto node = ddn::MakeNode(node_name, {{"penalty", penalty}, {"alpha", "1"}});
  const ddn::TensorMap inputs{{"x", Workload(b, n, d, 42)}};
  ddn::Tensor v(d == 1 ? ddn::Shape{b} : ddn::Shape{b, d}, 1.0);
  ddn::RunOptions run;
  run.threads = threads;
  int flagged = 0;
  for (auto _ : state) {
    ddn::ForwardResult fwd = ddn::Forward(*node, inputs, run);
    const ddn::TensorMap g = ddn::Backward(*node, inputs, fwd.outputs, {{"y", v}}, &fwd.status, run);
    benchmark::DoNotOptimize(g.at("x").data());
    flagged = 0;
    for (const auto& s : fwd.status) flagged += s.flags != 0;
  }
  state.SetLabel(penalty + " flagged=" + std::to_string(flagged));
}

void BM_RobustPool(benchmark::State& state) {
  Run(state, "robust_pool", 1024, 1024, 1);
}
void BM_RobustVectorPool(benchmark::State& state) {
  Run(state, "robust_vector_pool", 64, 256, 8);
}
// One thread: on a shared machine the two-thread wall time also measures the neighbours; half of this is the
// two-core figure on an idle machine.
void BM_RobustPoolSerial(benchmark::State& state) {
  Run(state, "robust_pool", 1024, 1024, 1, 1);
}
void BM_RobustVectorPoolSerial(benchmark::State& state) {
  Run(state, "robust_vector_pool", 64, 256, 8, 1);
}

void BM_RobustPoolForward(benchmark::State& state) {
  const std::string penalty = kPenalties[state.range(0)];
  auto node = ddn::MakeNode("robust_pool", {{"penalty", penalty}, {"alpha", "1"}});
  const ddn::TensorMap inputs{{"x", Workload(1024, 1024, 1, 42)}};
  for (auto _ : state) benchmark::DoNotOptimize(ddn::Forward(*node, inputs).outputs.at("y").data());
  state.SetLabel(penalty);
}

}  // namespace

BENCHMARK(BM_RobustPool)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RobustPoolForward)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RobustVectorPool)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RobustPoolSerial)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RobustVectorPoolSerial)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
