// Benchmarks of the pnp node on the workload of issue 14 (64 problems of 100 correspondences, the data of the
// reference library's own test: points at depth 1–3 in front of a random pose, normalised image coordinates with
// noise 0.01, uniform weights), 1 thread: the whole forward + backward, the forward alone, and the refinement
// alone by the node's Levenberg–Marquardt (exact Hessian) and by Ceres' LM from the same starts (the reason the
// node uses its own). Run with --benchmark_repetitions=5 and read the medians.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/geometry/pnp_ceres.h"
#include "nodes/geometry/pnp_solver.h"
#include "nodes/geometry/rotation.h"

namespace {

struct Workload {
  ddn::Tensor p2d, p3d, w;
};

Workload MakeWorkload(int64_t b, int64_t n, uint64_t seed) {
  ddn::Rng rng(seed);
  Workload wl{ddn::Tensor({b, n, 2}), ddn::Tensor({b, n, 3}), ddn::Tensor({b, n}, 1.0 / n)};
  for (int64_t e = 0; e < b; ++e) {
    double pose[6];
    for (double& v : pose) v = rng.Normal();
    double R[9];
    ddn::geometry::AngleAxisToRotationMatrix(pose, R);
    for (int64_t i = 0; i < n; ++i) {
      const double x = 2 * rng.Uniform(0.0, 1.0) - 1, y = 2 * rng.Uniform(0.0, 1.0) - 1,
                   z = 2 * rng.Uniform(0.0, 1.0) + 1;
      const double X[3] = {z * x - pose[3], z * y - pose[4], z - pose[5]};
      double* P = wl.p3d.problem(e) + 3 * i;
      for (int r = 0; r < 3; ++r) P[r] = R[r] * X[0] + R[3 + r] * X[1] + R[6 + r] * X[2];  // Rᵀ (X − t)
      wl.p2d.problem(e)[2 * i] = x + 0.01 * rng.Normal();
      wl.p2d.problem(e)[2 * i + 1] = y + 0.01 * rng.Normal();
    }
  }
  return wl;
}

ddn::RunOptions OneThread() {
  ddn::RunOptions run;
  run.threads = 1;
  return run;
}

void BM_Pnp(benchmark::State& state) {
  const char* objectives[] = {"reproj", "reproj_huber", "cosine"};
  const auto node = ddn::MakeNode("pnp", {{"objective", objectives[state.range(0)]}, {"alpha", "0.02"}});
  const Workload wl = MakeWorkload(64, 100, 1);
  const ddn::TensorMap in{{"p2d", wl.p2d}, {"p3d", wl.p3d}, {"w", wl.w}};
  ddn::Tensor v({64, 6}, 1.0);
  for (auto _ : state) {
    ddn::ForwardResult r = ddn::Forward(*node, in, OneThread());
    benchmark::DoNotOptimize(ddn::Backward(*node, in, r.outputs, {{"pose", v}}, &r.status, OneThread()));
  }
  state.SetLabel(objectives[state.range(0)]);
}
BENCHMARK(BM_Pnp)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PnpForward(benchmark::State& state) {
  const auto node = ddn::MakeNode("pnp");
  const Workload wl = MakeWorkload(64, 100, 1);
  const ddn::TensorMap in{{"p2d", wl.p2d}, {"p3d", wl.p3d}, {"w", wl.w}};
  for (auto _ : state) benchmark::DoNotOptimize(ddn::Forward(*node, in, OneThread()));
}
BENCHMARK(BM_PnpForward)->Unit(benchmark::kMillisecond)->UseRealTime();

// The refinement alone, from EPnP's start: ours (range 0) or Ceres' LM (range 1), reproj objective.
void BM_Refine(benchmark::State& state) {
  const bool ceres = state.range(0) != 0;
  const Workload wl = MakeWorkload(64, 100, 1);
  std::vector<ddn::geometry::PnPProblem> problems(64);
  std::vector<std::vector<double>> starts(64, std::vector<double>(6));
  ddn::geometry::PnPOptions options;
  for (int e = 0; e < 64; ++e) {
    auto& p = problems[e];
    p.n = 100;
    p.p2d = wl.p2d.problem(e);
    p.p3d = wl.p3d.problem(e);
    p.w = wl.w.problem(e);
    ddn::geometry::EPnP(p, {}, starts[e].data());
  }
  for (auto _ : state) {
    for (int e = 0; e < 64; ++e) {
      double pose[6];
      std::copy(starts[e].begin(), starts[e].end(), pose);
      if (ceres) {
        benchmark::DoNotOptimize(ddn::geometry::RefinePoseCeres(problems[e], pose));
      } else {
        benchmark::DoNotOptimize(ddn::geometry::RefinePose(problems[e], options, pose));
      }
    }
  }
  state.SetLabel(ceres ? "ceres LM" : "own LM (exact Hessian)");
}
BENCHMARK(BM_Refine)->Arg(0)->Arg(1)->ArgName("ceres")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
