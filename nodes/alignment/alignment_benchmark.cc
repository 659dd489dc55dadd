// Benchmarks of the alignment nodes: forward + backward of one batch through ddn::Forward / ddn::Backward,
// double precision, on one thread (the machine may be shared; read the medians of --benchmark_repetitions=5).
//
//   optimal_transport  M (64, 128, 128) ~ N(0, 1), γ ∈ {1, 10, 100}, uniform marginals: the side-by-side
//                      workload of bench/reference/optimal_transport_side_by_side.py (γ = 10)
//   graph_match        node_affinity (16, 32, 32) ~ N(0, 1), edges Gaussian weights of random points, λ = 0.1,
//                      γ = 10
//   BM_OptimalTransportMode/n/γ/mode   optimal_transport, M (8, n, n) ~ N(0, 1), uniform marginals, forward +
//                      backward in each gradient mode (0 implicit, 1 unrolled, 2 truncated:5; ddn/gradient_mode.h).
//                      Counters: rel_diff_vs_implicit; fd_error, the worst relative error of the gradient's
//                      directional derivative along 3 random directions against central differences of the node's
//                      forward (step 1e-5, computed once, outside the timing); sweeps_recorded and
//                      tape_kb_per_problem, the plain Sinkhorn sweeps the unrolled modes record for problem 0 and
//                      their size (Backward holds one tape per thread at a time).
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/alignment/sinkhorn_unrolled.h"

namespace {

ddn::Tensor Gaussian(const ddn::Shape& shape, uint64_t seed) {
  ddn::Rng rng(seed);
  ddn::Tensor t(shape);
  for (auto& v : t.values()) v = rng.Normal();
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
        const double dx = p.problem(q)[2 * i] - p.problem(q)[2 * k],
                     dy = p.problem(q)[2 * i + 1] - p.problem(q)[2 * k + 1];
        e.problem(q)[i * n + k] = i == k ? 0.0 : std::exp(-(dx * dx + dy * dy));
      }
  return e;
}

void BM_GraphMatch(benchmark::State& state) {
  auto node = ddn::MakeNode("graph_match", {{"lambda", "0.1"}, {"gamma", "10"}});
  const ddn::TensorMap inputs{{"node_affinity", Gaussian({16, 32, 32}, 3)},
                              {"edges_a", PointGraphs(16, 32, 4)},
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

const char* const kModes[] = {"implicit", "unrolled", "truncated:5"};

double Dot(const ddn::Tensor& a, const ddn::Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

void BM_OptimalTransportMode(benchmark::State& state) {
  const int64_t n = state.range(0);
  const double gamma = static_cast<double>(state.range(1));
  const std::string mode = kModes[state.range(2)];
  auto node = ddn::MakeNode("optimal_transport", {{"gamma", std::to_string(gamma)}});
  const ddn::Tensor M = Gaussian({8, n, n}, 11), v = Gaussian({8, n, n}, 12);
  ddn::RunOptions run;
  run.threads = 1;
  run.backward = ddn::GradientMode::Parse(mode);
  ddn::TensorMap g;
  int flagged = 0;
  for (auto _ : state) {
    ddn::ForwardResult fwd = ddn::Forward(*node, {{"M", M}}, run);
    g = ddn::Backward(*node, {{"M", M}}, fwd.outputs, {{"P", v}}, &fwd.status, run);
    benchmark::DoNotOptimize(g.at("M").data());
    flagged = 0;
    for (const auto& s : fwd.status) flagged += s.flags != 0;
  }
  state.counters["flagged"] = flagged;
  // Directional derivatives against central differences of the forward: L(M) = <v, P(M)>.
  ddn::RunOptions plain;
  plain.threads = 1;
  auto loss = [&](const ddn::Tensor& m) { return Dot(v, ddn::Forward(*node, {{"M", m}}, plain).outputs.at("P")); };
  double fd_error = 0;
  for (uint64_t d = 0; d < 3; ++d) {
    const ddn::Tensor dir = Gaussian({8, n, n}, 100 + d);
    const double h = 1e-5;
    ddn::Tensor up = M, down = M;
    for (int64_t i = 0; i < M.size(); ++i) {
      up[i] += h * dir[i];
      down[i] -= h * dir[i];
    }
    const double numeric = (loss(up) - loss(down)) / (2 * h);
    fd_error = std::max(fd_error, std::abs(Dot(g.at("M"), dir) - numeric) / std::abs(numeric));
  }
  state.counters["fd_error"] = fd_error;
  if (mode != "implicit") {
    ddn::ForwardResult f0 = ddn::Forward(*node, {{"M", M}}, plain);
    const ddn::Tensor gi = ddn::Backward(*node, {{"M", M}}, f0.outputs, {{"P", v}}, &f0.status, plain).at("M");
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < gi.size(); ++i) {
      diff += (g.at("M")[i] - gi[i]) * (g.at("M")[i] - gi[i]);
      norm += gi[i] * gi[i];
    }
    state.counters["rel_diff_vs_implicit"] = std::sqrt(diff / norm);
    const std::vector<double> uniform(n, 1.0 / static_cast<double>(n));
    ddn::alignment::SinkhornTape tape;
    ddn::alignment::RecordSinkhorn(M.problem(0), uniform.data(), uniform.data(), n, n, gamma,
                                   ddn::alignment::UnrolledSinkhornOptions(), &tape, nullptr);
    state.counters["sweeps_recorded"] = tape.sweeps;
    state.counters["tape_kb_per_problem"] = tape.Bytes() / 1024.0;
  }
  state.SetLabel("gamma=" + std::to_string(static_cast<int>(gamma)) + " " + mode);
}
BENCHMARK(BM_OptimalTransportMode)
    ->ArgsProduct({{16, 64, 128}, {1}, {0, 1, 2}})
    ->ArgsProduct({{16, 32, 64}, {10}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
