// ddn-deq: a deep equilibrium model (Bai, Kolter & Koltun, NeurIPS 2019) on real handwritten digits, against
// explicit networks of the same width unrolled to a range of depths.
//
// Every model is   x (digit, 10×10 average-pooled pixels) → u = Linear(x) → core → Linear → softmax,
// where the core is the cell f(z, u) = tanh(Wz + b + u) of width N:
//   DEQ            z* = f(z*, u) (ddn::graph::FixedPointLayer: Anderson acceleration, implicit backward);
//   explicit L     z_L = f(…f(f(0, u), u)…, u), L weight-tied layers backpropagated through every layer (the same
//                  FixedPointLayer with the Picard solver, a fixed depth and the unrolled backward).
// W is kept at ‖W‖₂ ≤ 0.9 after every optimiser step (a projection, power iteration), so f is a contraction and the
// DEQ always has a unique fixed point. For each model: test accuracy, training time per epoch and the peak resident
// memory while training (VmHWM after resetting it, minus the resident memory before). Then, on the trained DEQ,
// the agreement of the parameter gradients of one batch between the implicit, unrolled and truncated backward
// passes as the forward tolerance varies, against the implicit gradient of a solve to 1e-12.
// Output: tables (or --json) on stdout, a PNG plot (accuracy and memory vs depth), progress on stderr.
#include <malloc.h>

#include <Eigen/Core>
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/common/app.h"
#include "apps/deq/plot.h"
#include "datasets/point_clouds.h"
#include "ddn/error.h"
#include "ddn/graph/elementwise.h"
#include "ddn/graph/fixed_point.h"
#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"
#include "ddn/graph/optim.h"
#include "ddn/parallel.h"
#include "ddn/random.h"
#include "ddn/strings.h"

namespace po = boost::program_options;

namespace ddn::deq {
namespace {

using graph::Graph;
using Clock = std::chrono::steady_clock;

// ---- Settings ------------------------------------------------------------------------------------------

struct Setting {
  std::string data;
  int synthetic = 0;
  bool quick = false, json = false;
  int width = 0, epochs = 0, batch_size = 0, train_per_class = 0, test_per_class = 0, truncate = 0;
  double learning_rate = 0, train_tolerance = 0, max_norm = 0.9;
  std::vector<int> depths;
  std::vector<double> tolerances;
  uint64_t seed = 1;
  int threads = 1;
  std::string plot;
};

// ---- Memory ---------------------------------------------------------------------------------------------

// A field of /proc/self/status in MB (VmRSS, VmHWM), or −1 if unreadable.
double StatusMb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  return -1;
}

// Resets VmHWM to the current resident set (Linux ≥ 4.0: "5" to clear_refs); false if not possible.
bool ResetPeak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  return static_cast<bool>(out);
}

// ---- Data ------------------------------------------------------------------------------------------------

struct Data {
  Tensor x;  // (M, 100): 2×2 average-pooled 20×20 digits in [0, 1]
  std::vector<int> labels;
};

Data Features(const datasets::ImageSet& images, const std::vector<int>& indices) {
  const int h = images.height / 2, w = images.width / 2;
  Data d{Tensor(Shape{static_cast<int64_t>(indices.size()), h * w}), {}};
  for (size_t k = 0; k < indices.size(); ++k) {
    const uint8_t* img = images.image(indices[k]);
    double* out = d.x.problem(static_cast<int64_t>(k));
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        const int s = img[(2 * r) * images.width + 2 * c] + img[(2 * r) * images.width + 2 * c + 1] +
                      img[(2 * r + 1) * images.width + 2 * c] + img[(2 * r + 1) * images.width + 2 * c + 1];
        out[r * w + c] = s / (4.0 * 255.0);
      }
    d.labels.push_back(images.labels[indices[k]]);
  }
  return d;
}

void Gather(const Data& d, const std::vector<int>& order, size_t begin, size_t end, Tensor* x, Tensor* y) {
  const int64_t B = static_cast<int64_t>(end - begin), F = d.x.dim(1);
  *x = Tensor(Shape{B, F});
  *y = Tensor(Shape{B});
  for (int64_t b = 0; b < B; ++b) {
    const int m = order[begin + b];
    std::copy(d.x.problem(m), d.x.problem(m) + F, x->problem(b));
    (*y)[b] = d.labels[m];
  }
}

// ---- Models ----------------------------------------------------------------------------------------------

struct Model {
  std::string name;
  int depth = 0;  // 0: DEQ
  Graph graph;
  Graph::NodeId logits = -1, loss = -1;
  graph::FixedPointLayer* core = nullptr;
  graph::Parameter* W = nullptr;
  Eigen::VectorXd power;  // warm start of the spectral-norm estimate
};

// ‖W‖₂ by power iteration (warm-started), then W ← W·min(1, max_norm/‖W‖₂).
void ProjectSpectralNorm(Model* m, double max_norm) {
  Tensor& W = m->W->value;
  const int64_t n = W.dim(0);
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> w(W.data(), n, W.dim(1));
  if (m->power.size() != w.cols()) m->power = Eigen::VectorXd::Ones(w.cols()).normalized();
  double sigma = 0;
  for (int it = 0; it < 30; ++it) {
    Eigen::VectorXd v = w.transpose() * (w * m->power);
    const double norm = v.norm();
    if (!(norm > 0)) return;
    const double next = std::sqrt(norm);
    m->power = v / norm;
    if (std::abs(next - sigma) <= 1e-6 * next) {
      sigma = next;
      break;
    }
    sigma = next;
  }
  if (sigma > max_norm) w *= max_norm / sigma;
}

std::unique_ptr<Model> MakeModel(int depth, int features, const Setting& s) {
  auto m = std::make_unique<Model>();
  m->depth = depth;
  m->name = depth == 0 ? "DEQ (implicit)" : "explicit L=" + std::to_string(depth);
  Graph& g = m->graph;
  auto x = g.Input("x");
  auto labels = g.Input("labels");
  auto u = g.Add("inject", std::make_unique<graph::Linear>(features, s.width, s.seed), {x});
  auto cell = std::make_unique<Graph>();
  auto cz = cell->Input("z");
  auto cx = cell->Input("x");
  auto wz = cell->Add("W", std::make_unique<graph::Linear>(s.width, s.width, s.seed + 1), {cz});
  cell->Add("f", std::make_unique<graph::Tanh>(), {cell->Add("sum", std::make_unique<graph::Add>(), {wz, cx})});
  graph::FixedPointOptions o;
  o.features = s.width;
  if (depth == 0) {
    o.tolerance = s.train_tolerance;
    o.max_iterations = 500;
  } else {
    o.solver = graph::FixedPointOptions::kPicard;
    o.tolerance = 0;
    o.require_convergence = false;
    o.max_iterations = depth;
    o.backward = GradientMode::Parse("unrolled");
  }
  auto core = std::make_unique<graph::FixedPointLayer>(std::move(cell), o);
  m->core = core.get();
  auto z = g.Add("core", std::move(core), {u});
  m->logits = g.Add("head", std::make_unique<graph::Linear>(s.width, 10, s.seed + 2), {z});
  m->loss = g.Add("loss", std::make_unique<graph::SoftmaxCrossEntropy>(), {m->logits, labels});
  for (graph::Parameter* p : g.Parameters())
    if (p->name == "core.W.weight") m->W = p;
  DDN_CHECK(m->W, "the cell's weight core.W.weight was not found");
  ProjectSpectralNorm(m.get(), 0.5);  // start well inside the contraction region
  return m;
}

struct TrainResult {
  double accuracy = 0, epoch_seconds = 0, epoch_cpu_seconds = 0, peak_mb = 0, mean_iterations = 0, stored_mb = 0;
};

double Accuracy(Model* m, const Data& test, int batch) {
  std::vector<int> order(test.labels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  int correct = 0;
  Tensor x, y;
  for (size_t b = 0; b < order.size(); b += batch) {
    Gather(test, order, b, std::min(order.size(), b + batch), &x, &y);
    m->graph.Forward({{"x", x}, {"labels", y}}, {m->logits}, graph::Mode::kEval);
    const Tensor& z = m->graph.Value(m->logits);
    for (int64_t i = 0; i < y.size(); ++i) {
      const double* row = z.problem(i);
      correct += (std::max_element(row, row + z.dim(1)) - row) == static_cast<int>(y[i]);
    }
  }
  return static_cast<double>(correct) / order.size();
}

TrainResult Train(Model* m, const Data& train, const Data& test, const Setting& s) {
  TrainResult r;
  graph::AdamOptions ao;
  ao.learning_rate = s.learning_rate;
  graph::Adam adam(m->graph.TrainableParameters(), ao);
  graph::LearningRateSchedule schedule;
  schedule.base = s.learning_rate;
  schedule.total_epochs = s.epochs;
  Rng rng(s.seed + 17);
  std::vector<int> order(train.labels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  const int batches = static_cast<int>((order.size() + s.batch_size - 1) / s.batch_size);
  malloc_trim(0);  // freed memory of earlier models back to the system: the baseline is what is alive
  const double rss_before = StatusMb("VmRSS");
  const bool can_reset = ResetPeak();
  double seconds = 0;
  const std::clock_t cpu0 = std::clock();
  long iterations = 0, solves = 0;
  Tensor x, y;
  for (int e = 0; e < s.epochs; ++e) {
    adam.set_learning_rate(schedule.At(e));
    rng.Shuffle(&order);
    app::Progress progress(m->name + " epoch " + std::to_string(e + 1) + "/" + std::to_string(s.epochs), batches, 24);
    const auto t0 = Clock::now();
    double loss = 0;
    for (int k = 0; k < batches; ++k) {
      Gather(train, order, static_cast<size_t>(k) * s.batch_size,
             std::min(order.size(), static_cast<size_t>(k + 1) * s.batch_size), &x, &y);
      m->graph.Forward({{"x", x}, {"labels", y}}, {m->loss}, graph::Mode::kTrain);
      iterations += m->core->stats().forward_iterations;
      r.stored_mb = std::max(r.stored_mb, m->core->stats().tape_bytes / (1024.0 * 1024.0));
      ++solves;
      loss += m->graph.Value(m->loss)[0];
      m->graph.ZeroGrad();
      m->graph.Backward(m->loss);
      adam.Step();
      ProjectSpectralNorm(m, s.max_norm);
      char extra[64];
      std::snprintf(extra, sizeof(extra), "loss %.3f", loss / (k + 1));
      progress.Update(k + 1, extra);
    }
    seconds += app::SecondsSince(t0);
    char extra[96];
    std::snprintf(extra, sizeof(extra), "loss %.3f, %.2f s", loss / batches, app::SecondsSince(t0));
    progress.Finish(extra);
  }
  r.epoch_seconds = seconds / s.epochs;
  r.epoch_cpu_seconds = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC / s.epochs;
  r.peak_mb = can_reset ? StatusMb("VmHWM") - rss_before : -1;
  r.mean_iterations = static_cast<double>(iterations) / std::max(1L, solves);
  r.accuracy = Accuracy(m, test, s.batch_size);
  return r;
}

// All trainable parameter gradients of one batch, concatenated.
Eigen::VectorXd Gradient(Model* m, const Tensor& x, const Tensor& y, double tolerance, const std::string& mode,
                         int* iterations) {
  graph::FixedPointOptions* o = m->core->mutable_options();
  o->tolerance = tolerance;
  o->max_iterations = 2000;
  o->backward = GradientMode::Parse(mode);
  o->backward_tolerance = 1e-12;
  o->backward_max_iterations = 2000;
  m->graph.Forward({{"x", x}, {"labels", y}}, {m->loss}, graph::Mode::kTrain);
  if (iterations) *iterations = m->core->stats().forward_iterations;
  m->graph.ZeroGrad();
  m->graph.Backward(m->loss);
  Eigen::VectorXd all(0);
  for (graph::Parameter* p : m->graph.TrainableParameters()) {
    Eigen::VectorXd next(all.size() + p->grad.size());
    next << all, Eigen::Map<const Eigen::VectorXd>(p->grad.data(), p->grad.size());
    all.swap(next);
  }
  return all;
}

struct Agreement {
  double tolerance = 0;
  int iterations = 0;
  double implicit = 0, unrolled = 0, truncated = 0;
};

int Run(const Setting& s) {
  const auto start = Clock::now();
  // A fixed mmap threshold (glibc otherwise raises it as blocks are freed) and eager trimming, so that resident
  // memory follows what is alive; one thread by default (small matrices: threads only add synchronisation).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  ddn::SetDefaultThreadCount(s.threads);
  if (!s.plot.empty()) app::CheckImageOutput("--plot", s.plot);  // before the training, not after it
  datasets::ImageSet images;
  std::string source;
  if (s.synthetic > 0) {
    images = datasets::MakeSyntheticDigits(s.synthetic, s.seed);
    source = "synthetic digits (" + std::to_string(s.synthetic) + " per class)";
  } else {
    const std::string path = datasets::FindOpenCvDigits(s.data);
    images = datasets::LoadOpenCvDigits(path);
    source = "OpenCV digits.png";
  }
  std::vector<int> train_idx, test_idx;
  datasets::SplitTrainTest(images, s.test_per_class, s.seed, &train_idx, &test_idx);
  if (s.train_per_class > 0) {
    std::vector<int> kept, count(10, 0);
    for (int i : train_idx)
      if (count[images.labels[i]]++ < s.train_per_class) kept.push_back(i);
    train_idx = kept;
  }
  if (train_idx.empty() || test_idx.empty()) throw InvalidInput("no training or test digits: lower --test-per-class");
  const Data train = Features(images, train_idx), test = Features(images, test_idx);
  const int features = static_cast<int>(train.x.dim(1));

  {
    // Warm-up: one batch through a throwaway model, so that one-time allocations (thread pools, first touches)
    // are not charged to the first model measured.
    auto warm = MakeModel(0, features, s);
    Tensor x, y;
    std::vector<int> order(std::min<size_t>(train.labels.size(), s.batch_size));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    Gather(train, order, 0, order.size(), &x, &y);
    warm->graph.Forward({{"x", x}, {"labels", y}}, {warm->loss}, graph::Mode::kTrain);
    warm->graph.ZeroGrad();
    warm->graph.Backward(warm->loss);
  }
  std::vector<TrainResult> results;
  std::vector<std::string> names;
  std::vector<double> depths;
  for (int L : s.depths) {
    auto m = MakeModel(L, features, s);
    results.push_back(Train(m.get(), train, test, s));
    names.push_back(m->name);
    depths.push_back(L);
  }
  auto deq = MakeModel(0, features, s);
  const TrainResult deq_result = Train(deq.get(), train, test, s);

  // Gradient agreement on the trained DEQ: one batch of test digits.
  Tensor x, y;
  std::vector<int> order(test.labels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  Gather(test, order, 0, std::min(order.size(), static_cast<size_t>(s.batch_size)), &x, &y);
  const std::string truncated = "truncated:" + std::to_string(s.truncate);
  const Eigen::VectorXd reference = Gradient(deq.get(), x, y, 1e-12, "implicit", nullptr);
  std::vector<Agreement> agreement;
  app::Progress progress("gradient agreement", static_cast<int>(s.tolerances.size()), 24);
  for (size_t t = 0; t < s.tolerances.size(); ++t) {
    Agreement a;
    a.tolerance = s.tolerances[t];
    auto err = [&](const std::string& mode, int* it) {
      return (Gradient(deq.get(), x, y, a.tolerance, mode, it) - reference).norm() / reference.norm();
    };
    a.implicit = err("implicit", &a.iterations);
    a.unrolled = err("unrolled", nullptr);
    a.truncated = err(truncated, nullptr);
    agreement.push_back(a);
    progress.Update(static_cast<int>(t + 1), "");
  }
  progress.Finish("done");

  const std::string subtitle =
      StrFormat("%s; %zu train / %zu test; width %d; %d epochs; batch %d; ||W||2 <= %g; DEQ tolerance %g; seed %llu",
                source.c_str(), train.labels.size(), test.labels.size(), s.width, s.epochs, s.batch_size, s.max_norm,
                s.train_tolerance, static_cast<unsigned long long>(s.seed));
  if (!s.plot.empty()) {
    std::vector<DepthPoint> points;
    for (size_t i = 0; i < results.size(); ++i) points.push_back({depths[i], results[i].accuracy, results[i].peak_mb});
    WriteDepthPlot(s.plot, points, {deq_result.mean_iterations, deq_result.accuracy, deq_result.peak_mb}, subtitle);
  }
  if (s.json) {
    nlohmann::json j;
    j["data"] = source;
    j["setting"] = {{"width", s.width},
                    {"threads", s.threads},
                    {"epochs", s.epochs},
                    {"batch_size", s.batch_size},
                    {"learning_rate", s.learning_rate},
                    {"train", train.labels.size()},
                    {"test", test.labels.size()},
                    {"max_norm", s.max_norm},
                    {"train_tolerance", s.train_tolerance},
                    {"truncate", s.truncate},
                    {"seed", s.seed}};
    j["models"] = nlohmann::json::array();
    for (size_t i = 0; i < results.size(); ++i) {
      j["models"].push_back({{"model", names[i]},
                             {"depth", depths[i]},
                             {"accuracy", results[i].accuracy},
                             {"epoch_seconds", results[i].epoch_seconds},
                             {"epoch_cpu_seconds", results[i].epoch_cpu_seconds},
                             {"peak_rss_mb", results[i].peak_mb},
                             {"stored_iterates_mb", results[i].stored_mb}});
    }
    j["models"].push_back({{"model", deq->name},
                           {"depth", deq_result.mean_iterations},
                           {"accuracy", deq_result.accuracy},
                           {"epoch_seconds", deq_result.epoch_seconds},
                           {"epoch_cpu_seconds", deq_result.epoch_cpu_seconds},
                           {"peak_rss_mb", deq_result.peak_mb},
                           {"stored_iterates_mb", deq_result.stored_mb}});
    j["gradient_agreement"] = nlohmann::json::array();
    for (const auto& a : agreement) {
      j["gradient_agreement"].push_back({{"tolerance", a.tolerance},
                                         {"forward_iterations", a.iterations},
                                         {"implicit", a.implicit},
                                         {"unrolled", a.unrolled},
                                         {truncated, a.truncated}});
    }
    if (!s.plot.empty()) j["plot"] = s.plot;
    j["seconds"] = app::SecondsSince(start);
    std::cout << j.dump(2) << std::endl;
  } else {
    std::printf("%s\n\n", subtitle.c_str());
    std::printf("%-20s %8s %10s %10s %10s %12s %10s\n", "model", "depth", "test acc", "s/epoch", "cpu s/ep",
                "peak RSS MB", "stored MB");
    auto row = [](const std::string& name, double depth, const TrainResult& r) {
      std::printf("%-20s %8.1f %9.1f%% %10.3f %10.3f %12.2f %10.2f\n", name.c_str(), depth, 100 * r.accuracy,
                  r.epoch_seconds, r.epoch_cpu_seconds, r.peak_mb, r.stored_mb);
    };
    for (size_t i = 0; i < results.size(); ++i) row(names[i], depths[i], results[i]);
    row(deq->name, deq_result.mean_iterations, deq_result);
    std::printf("(DEQ depth: mean forward iterations while training; stored: iterates kept for the backward pass)\n");
    std::printf("\n");
    std::printf(
        "Gradient agreement on one batch of the trained DEQ: ||g - g_ref|| / ||g_ref||, g_ref implicit at 1e-12\n");
    std::printf("%-12s %10s %12s %12s %14s\n", "forward tol", "iterations", "implicit", "unrolled", truncated.c_str());
    for (const auto& a : agreement) {
      std::printf("%-12g %10d %12.3e %12.3e %14.3e\n", a.tolerance, a.iterations, a.implicit, a.unrolled, a.truncated);
    }
    if (!s.plot.empty()) std::printf("\nplot: %s\n", s.plot.c_str());
    std::printf("total time: %.0f s\n", app::SecondsSince(start));
  }
  return 0;
}

int Main(int argc, char** argv) {
  Setting s;
  std::string depths, tolerances;
  po::options_description desc(
      "ddn-deq: a deep equilibrium (DEQ) classifier on handwritten digits against explicit weight-tied networks of\n"
      "the same width at several depths: test accuracy, training time per epoch, peak memory; then the agreement\n"
      "of implicit, unrolled and truncated gradients as the forward tolerance varies. Tables (or --json) on stdout,\n"
      "a PNG plot, progress on stderr.\n\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("quick", "the quick setting (under 2 minutes on 2 cores): fewer digits, epochs and depths")
    ("data", po::value(&s.data), "OpenCV's digits.png (or .png.gz), or a folder holding it; default: search the "
                                 "opencv-doc install, $DDN_DIGITS, $OPENCV_SAMPLES_DATA_PATH")
    ("synthetic", po::value(&s.synthetic)->default_value(0), "use N generated digits per class (smoke tests)")
    ("width", po::value<int>(), "width N of the cell (default 64)")
    ("depths", po::value(&depths), "depths L of the explicit networks (default 1,2,4,8,16,32)")
    ("epochs", po::value<int>(), "training epochs per model (default 15, quick 5)")
    ("batch-size", po::value<int>(), "batch size (default 100)")
    ("lr", po::value(&s.learning_rate)->default_value(0.003, "0.003"), "Adam learning rate, cosine schedule")
    ("train-per-class", po::value<int>(), "training digits per class (default all: 400; quick 150)")
    ("test-per-class", po::value<int>(), "test digits per class (default 100, quick 50)")
    ("tolerance", po::value(&s.train_tolerance)->default_value(1e-8, "1e-8"), "DEQ forward tolerance while training")
    ("tolerances", po::value(&tolerances)->default_value("1e-2,1e-4,1e-6,1e-8,1e-10"),
     "forward tolerances of the gradient-agreement table")
    ("truncate", po::value(&s.truncate)->default_value(5), "K of the truncated:K gradient")
    ("max-norm", po::value(&s.max_norm)->default_value(0.9, "0.9"), "bound on ||W||_2 kept after every step (< 1)")
    ("threads", po::value(&s.threads)->default_value(1), "threads of the dense layers and batched calls (ddn/parallel.h)")
    ("plot", po::value(&s.plot)->default_value("deq_depth.png"), "PNG plot to write ('' for none)")
    ("json", "print the results as JSON on stdout");
  // clang-format on
  app::AddSeedOption(&desc, &s.seed, "seed of the split, initialisation and shuffling");
  po::variables_map vm;
  app::ParseCommandLine(argc, argv, desc, {}, &vm);
  if (vm.count("help")) return app::PrintHelp(desc);
  s.quick = vm.count("quick") > 0;
  s.json = vm.count("json") > 0;
  const bool q = s.quick;
  // Given values must lie in range (a negative width is an error, not the default).
  s.width = app::InRange(vm, "width", 64, 1, 4096, "[1, 4096]");
  s.epochs = app::InRange(vm, "epochs", q ? 5 : 15, 1, 100000, "[1, 100000]");
  s.batch_size = app::InRange(vm, "batch-size", 100, 1, 100000, "[1, 100000]");
  s.train_per_class = app::InRange(vm, "train-per-class", q ? 150 : 0, 1, 100000, "[1, 100000]");
  s.test_per_class = app::InRange(vm, "test-per-class", q ? 50 : 100, 1, 100000, "[1, 100000]");
  s.depths = app::ParseList<int>(depths.empty() ? "1,2,4,8,16,32" : depths, "depths");
  for (int d : s.depths)
    if (d < 1 || d > 1000) throw InvalidInput("--depths: every depth must be in [1, 1000], got " + std::to_string(d));
  std::sort(s.depths.begin(), s.depths.end());
  s.tolerances = app::ParseList<double>(tolerances, "tolerances");
  for (double t : s.tolerances)
    if (!(t > 0 && t < 1)) throw InvalidInput("--tolerances must be in (0, 1)");
  if (!(s.learning_rate > 0)) throw InvalidInput("--lr must be > 0");
  if (!(s.train_tolerance > 0 && s.train_tolerance < 1)) throw InvalidInput("--tolerance must be in (0, 1)");
  if (!(s.max_norm > 0 && s.max_norm < 1)) throw InvalidInput("--max-norm must be in (0, 1)");
  if (s.truncate < 1) throw InvalidInput("--truncate must be >= 1");
  if (s.synthetic < 0) throw InvalidInput("--synthetic must be >= 0");
  if (s.threads < 1 || s.threads > 256) throw InvalidInput("--threads must be in [1, 256]");
  return Run(s);
}

}  // namespace
}  // namespace ddn::deq

int main(int argc, char** argv) {
  return ddn::app::RunGuarded("ddn-deq", [&] { return ddn::deq::Main(argc, argv); });
}
