// Benchmarks of the optimisation-layer family through ddn::Forward / ddn::Backward (double precision).
//
//   BM_Qp/n/threads          qp, B = 256 problems of n variables, m = 2n inequalities, p = n/4 equalities (n = 20:
//                            the (256, 20, 40, 5) workload), built around a known solution with n/4
//                            strongly active inequalities; forward + implicit backward.
//   BM_QpMode/mode           the (256, 20, 40, 5) workload, forward + backward in each gradient mode
//                            (0 implicit, 1 unrolled, 2 truncated:3), one thread.
//   BM_DeqTanh/N/mode        deq_tanh, B = 64, ‖W‖₂ = 0.9, x ~ N(0, 1); forward + backward in each gradient mode
//                            (0 implicit, 1 unrolled, 2 truncated:5), one thread.
// Counters: flagged problems and, for non-implicit modes, the relative difference of the gradient from the
// implicit one (rel_diff_vs_implicit), whose own error against finite differences `ddn check` measures, and the
// memory the unrolled backward records for one problem (tape_kb_per_problem; Backward holds one tape per thread).
// Run with --benchmark_repetitions=5 and read the medians (the machine may be shared).
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <cmath>
#include <string>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/optim/deq_solver.h"
#include "nodes/optim/qp_problems.h"

namespace {

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
const char* kQpModes[] = {"implicit", "unrolled", "truncated:3"};
const char* kDeqModes[] = {"implicit", "unrolled", "truncated:5"};

ddn::TensorMap QpWorkload(int64_t B, int n, uint64_t seed) {
  ddn::Rng rng(seed);
  ddn::optim::KnownQpOptions o;
  o.n = n, o.m = 2 * n, o.p = n / 4, o.strongly_active = n / 4;
  ddn::Tensor Q({B, n, n}), q({B, n}), G({B, o.m, n}), h({B, o.m}), A({B, o.p, n}), b({B, o.p});
  for (int64_t k = 0; k < B; ++k) {
    const ddn::optim::KnownQp p = ddn::optim::MakeKnownQp(o, &rng);
    Eigen::Map<RowMajor>(Q.problem(k), n, n) = p.data.Q;
    Eigen::Map<Eigen::VectorXd>(q.problem(k), n) = p.data.q;
    Eigen::Map<RowMajor>(G.problem(k), o.m, n) = p.data.G;
    Eigen::Map<Eigen::VectorXd>(h.problem(k), o.m) = p.data.h;
    Eigen::Map<RowMajor>(A.problem(k), o.p, n) = p.data.A;
    Eigen::Map<Eigen::VectorXd>(b.problem(k), o.p) = p.data.b;
  }
  return {{"Q", Q}, {"q", q}, {"G", G}, {"h", h}, {"A", A}, {"b", b}};
}

ddn::TensorMap DeqWorkload(int64_t B, int N, uint64_t seed) {
  ddn::Rng rng(seed);
  ddn::Tensor x({B, N}), W({B, N, N});
  for (auto& v : x.values()) v = rng.Normal();
  for (int64_t k = 0; k < B; ++k) {
    Eigen::MatrixXd M(N, N);
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) M(i, j) = rng.Normal();
    M *= 0.9 / Eigen::JacobiSVD<Eigen::MatrixXd>(M).singularValues()[0];
    Eigen::Map<RowMajor>(W.problem(k), N, N) = M;
  }
  return {{"x", x}, {"W", W}};
}

double RelDiff(const ddn::TensorMap& a, const ddn::TensorMap& b) {
  double d = 0, n = 0;
  for (const auto& [name, t] : a) {
    const ddn::Tensor& u = b.at(name);
    for (int64_t i = 0; i < t.size(); ++i) d += (t[i] - u[i]) * (t[i] - u[i]), n += t[i] * t[i];
  }
  return std::sqrt(d / n);
}

// The memory the unrolled backward records for one problem (problem 0 of the batch), in KB.
double QpTapeKb(const ddn::TensorMap& in) {
  const int n = static_cast<int>(in.at("q").dim(1)), m = static_cast<int>(in.at("h").dim(1)),
            p = static_cast<int>(in.at("b").dim(1));
  ddn::optim::QpData d;
  d.Q = Eigen::Map<const RowMajor>(in.at("Q").problem(0), n, n);
  d.q = Eigen::Map<const Eigen::VectorXd>(in.at("q").problem(0), n);
  d.G = Eigen::Map<const RowMajor>(in.at("G").problem(0), m, n);
  d.h = Eigen::Map<const Eigen::VectorXd>(in.at("h").problem(0), m);
  d.A = Eigen::Map<const RowMajor>(in.at("A").problem(0), p, n);
  d.b = Eigen::Map<const Eigen::VectorXd>(in.at("b").problem(0), p);
  ddn::optim::ValidateQp(&d);
  ddn::optim::QpTape tape;
  ddn::ProblemStatus s;
  ddn::optim::SolveQp(d, ddn::optim::QpOptions(), &s, &tape);
  return tape.Bytes() / 1024.0;
}
double DeqTapeKb(const ddn::TensorMap& in) {
  const int N = static_cast<int>(in.at("x").dim(1));
  ddn::optim::DeqTape tape;
  ddn::optim::SolveDeq(Eigen::Map<const RowMajor>(in.at("W").problem(0), N, N),
                       Eigen::Map<const Eigen::VectorXd>(in.at("x").problem(0), N), ddn::optim::DeqOptions(), &tape);
  return tape.Bytes() / 1024.0;
}

void Run(benchmark::State& state, const std::string& node_name, const ddn::TensorMap& inputs, const std::string& mode,
         int threads) {
  auto node = ddn::MakeNode(node_name);
  ddn::RunOptions run;
  run.threads = threads;
  run.backward = ddn::GradientMode::Parse(mode);
  ddn::ForwardResult f0 = ddn::Forward(*node, inputs, run);
  const ddn::Tensor v(f0.outputs.at("z").shape(), 1.0);
  int flagged = 0;
  ddn::TensorMap g;
  for (auto _ : state) {
    ddn::ForwardResult fwd = ddn::Forward(*node, inputs, run);
    g = ddn::Backward(*node, inputs, fwd.outputs, {{"z", v}}, &fwd.status, run);
    benchmark::DoNotOptimize(g.begin()->second.data());
    flagged = 0;
    for (const auto& s : fwd.status) flagged += s.flags != 0;
  }
  state.counters["flagged"] = flagged;
  if (mode != "implicit") {
    ddn::RunOptions implicit = run;
    implicit.backward = ddn::GradientMode();
    const ddn::TensorMap gi = ddn::Backward(*node, inputs, f0.outputs, {{"z", v}}, &f0.status, implicit);
    state.counters["rel_diff_vs_implicit"] = RelDiff(g, gi);
    state.counters["tape_kb_per_problem"] = node_name == "qp" ? QpTapeKb(inputs) : DeqTapeKb(inputs);
  }
  state.SetLabel(mode);
}

void BM_Qp(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Run(state, "qp", QpWorkload(256, n, 42), "implicit", static_cast<int>(state.range(1)));
}
void BM_QpMode(benchmark::State& state) {
  Run(state, "qp", QpWorkload(256, 20, 42), kQpModes[state.range(0)], 1);
}
void BM_DeqTanh(benchmark::State& state) {
  Run(state, "deq_tanh", DeqWorkload(64, static_cast<int>(state.range(0)), 7), kDeqModes[state.range(1)], 1);
}

}  // namespace

BENCHMARK(BM_Qp)->ArgsProduct({{10, 20, 40, 80}, {1, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_QpMode)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DeqTanh)->ArgsProduct({{16, 64, 256}, {0, 1, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
