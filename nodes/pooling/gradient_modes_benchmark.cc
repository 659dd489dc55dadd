// robust_vector_pool's gradient modes (ddn/gradient_mode.h), on its specialised path (vector_pool_unrolled.h: the
// winning start's Newton/IRLS iterations) and on the generic engine's (ddn/generic_unrolled.h: a Newton replay):
// the batched backward of x (64, 256, 8), α = 1, one thread, in each mode (the forward is run once, outside the
// timing). Counters: fd_error, the worst relative error of the gradient's directional derivative along 3 random
// directions against central differences of the node's forward (step 1e-5, so ~1e-9 is the differences' floor);
// vs_implicit, the relative distance ‖g − g_implicit‖/‖g_implicit‖ from the same path's implicit gradient;
// steps (specialised path), the local Newton/IRLS steps replayed per problem, averaged over the batch.
//
//   build/nodes/pooling/gradient_modes_benchmark --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "nodes/pooling/vector_pool_unrolled.h"

namespace {

// Per problem a Gaussian cluster (σ = 1 around a N(0, 1) centre) with 20 % outliers at ±U(5, 10) per coordinate.
ddn::Tensor Points(int64_t b, int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> far(5.0, 10.0);
  std::bernoulli_distribution outlier(0.2), sign(0.5);
  ddn::Tensor x(ddn::Shape{b, n, d});
  for (int64_t r = 0; r < b; ++r) {
    std::vector<double> centre(d);
    for (double& c : centre) c = normal(rng);
    for (int64_t i = 0; i < n; ++i) {
      const bool out = outlier(rng);
      for (int64_t k = 0; k < d; ++k) {
        x.problem(r)[i * d + k] = centre[k] + (out ? (sign(rng) ? far(rng) : -far(rng)) : normal(rng));
      }
    }
  }
  return x;
}

ddn::Tensor Gaussian(const ddn::Shape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  ddn::Tensor t(shape);
  for (double& v : t.values()) v = normal(rng);
  return t;
}

double Dot(const ddn::Tensor& a, const ddn::Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

const char* const kPenalties[] = {"pseudo_huber", "welsch"};
const char* const kModes[] = {"implicit", "unrolled", "truncated:1", "truncated:3"};

void BM_VectorPoolMode(benchmark::State& state) {
  const std::string penalty = kPenalties[state.range(0)], mode = kModes[state.range(1)];
  const bool generic = state.range(2) != 0;
  const int64_t B = 64, N = 256, D = 8;
  auto node = ddn::MakeNode("robust_vector_pool", {{"penalty", penalty}});
  const ddn::Tensor x = Points(B, N, D, 5), v = Gaussian({B, D}, 6);
  ddn::RunOptions run, implicit_run;
  run.threads = implicit_run.threads = 1;
  run.generic = implicit_run.generic = generic;
  run.backward = ddn::GradientMode::Parse(mode);
  ddn::ForwardResult fwd = ddn::Forward(*node, {{"x", x}}, run);
  ddn::Tensor g;
  for (auto _ : state) {
    g = ddn::Backward(*node, {{"x", x}}, fwd.outputs, {{"y", v}}, &fwd.status, run).at("x");
    benchmark::DoNotOptimize(g.data());
  }
  // L(x) = <v, y(x)> by the same path's forward.
  auto loss = [&](const ddn::Tensor& xx) {
    return Dot(v, ddn::Forward(*node, {{"x", xx}}, implicit_run).outputs.at("y"));
  };
  double fd_error = 0;
  for (uint64_t k = 0; k < 3; ++k) {
    const ddn::Tensor dir = Gaussian(x.shape(), 100 + k);
    const double h = 1e-5;
    ddn::Tensor up = x, down = x;
    for (int64_t i = 0; i < x.size(); ++i) {
      up[i] += h * dir[i];
      down[i] -= h * dir[i];
    }
    const double numeric = (loss(up) - loss(down)) / (2 * h);
    fd_error = std::max(fd_error, std::abs(Dot(g, dir) - numeric) / std::abs(numeric));
  }
  state.counters["fd_error"] = fd_error;
  ddn::ForwardResult f0 = ddn::Forward(*node, {{"x", x}}, implicit_run);
  const ddn::Tensor gi = ddn::Backward(*node, {{"x", x}}, f0.outputs, {{"y", v}}, &f0.status, implicit_run).at("x");
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < gi.size(); ++i) {
    diff += (g[i] - gi[i]) * (g[i] - gi[i]);
    norm += gi[i] * gi[i];
  }
  state.counters["vs_implicit"] = std::sqrt(diff / norm);
  if (!generic) {
    // The local steps the specialised modes replay, averaged over the batch.
    double steps = 0;
    for (int64_t b = 0; b < B; ++b) {
      ddn::pooling::PoolingProblem q;
      q.kind = ddn::pooling::ParsePenalty(penalty);
      q.x = x.problem(b);
      q.n = N;
      q.d = D;
      std::vector<double> y(D);
      ddn::ProblemStatus st;
      ddn::pooling::VectorStart start;
      ddn::pooling::SolveVectorPool(q, y.data(), &st, {}, &start);
      ddn::pooling::VectorPoolTape tape;
      ddn::pooling::RecordVectorPoolSolve(q, start, y.data(), &tape);
      steps += tape.steps();
    }
    state.counters["steps"] = steps / B;
  }
  state.SetLabel(penalty + (generic ? " generic " : " specialised ") + mode);
}
BENCHMARK(BM_VectorPoolMode)->ArgsProduct({{0, 1}, {0, 1, 2, 3}, {0, 1}})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
