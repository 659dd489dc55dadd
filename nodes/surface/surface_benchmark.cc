// Benchmarks of the surface fitting nodes: forward + backward of one batch through ddn::Forward / ddn::Backward,
// double precision, on one thread and on all cores.
//
//   fit_plane   points (4096, 32, 3): 32 points near a random plane (in-plane spread 1, normal noise 0.05) with
//               20 % outliers 1.5–3 off the plane; every penalty, α = 0.5
//   fit_sphere  points (4096, 32, 3): points near a sphere of radius 1.5–2.5, radial noise 0.05, 20 % outliers
//   fit_ellipse points (4096, 32, 2): points near an ellipse (semi-axes 2, 1), noise 0.05
//
// The *Generic benchmarks run the nodes' generic path (the declarative form through the generic engine) on the first
// 256 problems of the same batches, at 1 thread; divide by 256 and compare per problem with the Serial ones (4096).
//
// Run with --benchmark_repetitions=5 and read the medians (the machine may be shared: on a loaded machine the CPU
// time column is the better measure of the work done at 1 thread).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/pooling/penalties.h"
#include "nodes/surface/node_support.h"

namespace {

// Every penalty of the surface fits (their spec lists the pooling family's, penalties.h).
const std::vector<std::string>& kPenalties = ddn::pooling::PenaltyNames();

void Run(benchmark::State& state, const std::string& node_name, int threads, bool generic = false) {
  const std::string penalty = node_name == "fit_ellipse" ? "" : kPenalties[state.range(0)];
  ddn::Rng rng(42);
  const int64_t batch = generic ? 256 : 4096;
  std::unique_ptr<ddn::Node> node;
  ddn::Tensor points;
  if (node_name == "fit_plane") {
    node = ddn::MakeNode(node_name, {{"penalty", penalty}, {"alpha", "0.5"}});
    points = ddn::surface::internal::NoisyPlanes(&rng, batch, 32, 3, 0.05, 0.2);
  } else if (node_name == "fit_sphere") {
    node = ddn::MakeNode(node_name, {{"penalty", penalty}, {"alpha", "0.5"}});
    points = ddn::surface::internal::NoisySpheres(&rng, batch, 32, 3, 0.05, 0.2);
  } else {
    node = ddn::MakeNode(node_name);
    points = ddn::surface::internal::NoisyEllipses(&rng, batch, 32, 0.05);
  }
  const ddn::TensorMap inputs{{"points", points}};
  ddn::RunOptions run;
  run.threads = threads;
  run.generic = generic;
  ddn::TensorMap v;
  {
    const ddn::ForwardResult fwd = ddn::Forward(*node, inputs, run);
    for (const auto& [name, y] : fwd.outputs) v[name] = ddn::Tensor(y.shape(), 1.0);
  }
  int flagged = 0;
  for (auto _ : state) {
    ddn::ForwardResult fwd = ddn::Forward(*node, inputs, run);
    const ddn::TensorMap g = ddn::Backward(*node, inputs, fwd.outputs, v, &fwd.status, run);
    benchmark::DoNotOptimize(g.at("points").data());
    flagged = 0;
    for (const auto& s : fwd.status) flagged += (s.flags & ~ddn::kNotCertified) != 0;
  }
  state.SetLabel(penalty + " flagged=" + std::to_string(flagged));
}

void BM_FitPlane(benchmark::State& state) {
  Run(state, "fit_plane", 0);
}
void BM_FitPlaneSerial(benchmark::State& state) {
  Run(state, "fit_plane", 1);
}
void BM_FitSphere(benchmark::State& state) {
  Run(state, "fit_sphere", 0);
}
void BM_FitSphereSerial(benchmark::State& state) {
  Run(state, "fit_sphere", 1);
}
void BM_FitEllipseSerial(benchmark::State& state) {
  Run(state, "fit_ellipse", 1);
}
void BM_FitPlaneGeneric(benchmark::State& state) {
  Run(state, "fit_plane", 1, true);
}
void BM_FitSphereGeneric(benchmark::State& state) {
  Run(state, "fit_sphere", 1, true);
}
void BM_FitEllipseGeneric(benchmark::State& state) {
  Run(state, "fit_ellipse", 1, true);
}

}  // namespace

BENCHMARK(BM_FitPlane)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FitPlaneSerial)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FitSphere)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FitSphereSerial)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FitEllipseSerial)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FitPlaneGeneric)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FitSphereGeneric)->DenseRange(0, 6)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FitEllipseGeneric)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
