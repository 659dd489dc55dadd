// The generic engine's gradient modes on constrained declarative nodes (ddn/generic_unrolled.h: a Newton–KKT replay
// from the node's InitialGuess): the batched backward of (64, D) points, D = 16 and 128, one thread, in each mode
// (the forward is run once, outside the timing), for an equality (sphere_projection, a nonlinear constraint;
// plane_projection, a linear one with inputs in it) and inequalities (ball_projection of radius √D, about half the
// points inside; box_projection [−1, 1]^D, about a third of the coordinates at a bound). Counters: fd_error, the worst
// relative error of the gradient's directional derivative along 3 random directions against central differences of the
// node's forward (step 1e-6); vs_implicit, ‖g − g_implicit‖/‖g_implicit‖; from the replays' counters
// (GenericUnrolledTotals): steps, the replayed Newton–KKT steps per problem (all of them are replayed; truncated:K runs
// back through K), fixed_set, the share of problems whose replay was the fixed-active-set one, tape_kb, the largest
// tape of one problem, kkt_kb, its largest dense KKT matrix (the replay holds a few of that size at a time).
//
//   build/nodes/examples/constrained_modes_benchmark --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cmath>
#include <map>
#include <random>
#include <string>

#include "ddn/batch.h"
#include "ddn/generic_unrolled.h"
#include "ddn/node.h"

namespace {

ddn::Tensor Gaussian(const ddn::Shape& shape, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  ddn::Tensor t(shape);
  for (double& v : t.values()) v = scale * normal(rng);
  return t;
}

double Dot(const ddn::Tensor& a, const ddn::Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

struct Workload {
  const char* node;
  std::map<std::string, std::string> params;
};
const Workload kWorkloads[] = {
    {"sphere_projection", {}},
    {"plane_projection", {}},
    {"ball_projection", {}},  // radius √D: about half of x ~ N(0, I_D) inside
    {"box_projection", {}},
};
const char* const kModes[] = {"implicit", "unrolled", "truncated:1", "truncated:3"};

void BM_ConstrainedMode(benchmark::State& state) {
  const Workload& work = kWorkloads[state.range(0)];
  const std::string mode = kModes[state.range(1)];
  const int64_t B = 64, D = state.range(2);
  std::map<std::string, std::string> params = work.params;
  if (std::string(work.node) == "ball_projection") params["radius"] = std::to_string(std::sqrt(double(D)));
  auto node = ddn::MakeNode(work.node, params);
  ddn::TensorMap in{{"x", Gaussian({B, D}, 5)}};
  if (std::string(work.node) == "plane_projection") {
    in["a"] = Gaussian({B, D}, 7);
    in["b"] = Gaussian({B}, 8);
  }
  const ddn::Tensor v = Gaussian({B, D}, 6);
  ddn::RunOptions run, implicit_run;
  run.threads = implicit_run.threads = 1;
  run.backward = ddn::GradientMode::Parse(mode);
  ddn::ForwardResult fwd = ddn::Forward(*node, in, run);
  ddn::TensorMap g;
  ddn::GenericUnrolledCounters& totals = ddn::GenericUnrolledTotals();
  totals.Reset();
  for (auto _ : state) {
    g = ddn::Backward(*node, in, fwd.outputs, {{"y", v}}, &fwd.status, run);
    benchmark::DoNotOptimize(g.at("x").data());
  }
  const double problems = static_cast<double>(totals.problems[0] + totals.problems[1] + totals.problems[2]);
  if (problems > 0) {
    state.counters["steps"] = static_cast<double>(totals.steps) / problems;
    state.counters["fixed_set"] = static_cast<double>(totals.problems[ddn::GenericNewtonTape::kFixedSet]) / problems;
    state.counters["tape_kb"] = static_cast<double>(totals.max_tape_bytes) / 1024.0;
    state.counters["kkt_kb"] = static_cast<double>(totals.max_kkt_bytes) / 1024.0;
  }
  // L(inputs) = <v, y(inputs)> by the forward; directions in every differentiable input.
  auto loss = [&](const ddn::TensorMap& inputs) {
    return Dot(v, ddn::Forward(*node, inputs, implicit_run).outputs.at("y"));
  };
  double fd_error = 0;
  for (uint64_t k = 0; k < 3; ++k) {
    const double h = 1e-6;
    ddn::TensorMap up = in, down = in;
    double analytic = 0;
    for (auto& [name, t] : in) {
      const ddn::Tensor dir = Gaussian(t.shape(), 100 + 10 * k + name.size());
      for (int64_t i = 0; i < t.size(); ++i) {
        up[name][i] += h * dir[i];
        down[name][i] -= h * dir[i];
      }
      analytic += Dot(g.at(name), dir);
    }
    const double numeric = (loss(up) - loss(down)) / (2 * h);
    fd_error = std::max(fd_error, std::abs(analytic - numeric) / std::abs(numeric));
  }
  state.counters["fd_error"] = fd_error;
  ddn::ForwardResult f0 = ddn::Forward(*node, in, implicit_run);
  const ddn::TensorMap gi = ddn::Backward(*node, in, f0.outputs, {{"y", v}}, &f0.status, implicit_run);
  double diff = 0, norm = 0;
  for (const auto& [name, t] : gi) {
    for (int64_t i = 0; i < t.size(); ++i) {
      diff += (g.at(name)[i] - t[i]) * (g.at(name)[i] - t[i]);
      norm += t[i] * t[i];
    }
  }
  state.counters["vs_implicit"] = std::sqrt(diff / norm);
  state.SetLabel(std::string(work.node) + " D=" + std::to_string(D) + " " + mode);
}
BENCHMARK(BM_ConstrainedMode)->ArgsProduct({{0, 1, 2, 3}, {0, 1, 2, 3}, {16, 128}})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
