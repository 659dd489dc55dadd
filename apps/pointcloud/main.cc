// ddn-pointcloud: the DDN paper's robust-pooling experiment (Gould, Hartley & Campbell, TPAMI 2022, §6.1) on
// 2-D point clouds of real handwritten digits.
//
// For each pooling (max, mean, and the penalties of the declarative node robust_pool) a PointNet-style
// classifier (pointnet.h) is trained on clean clouds (optionally with outliers), then evaluated on the test
// clouds with a fraction of their points replaced by outliers uniform in the unit disc. The result is a table
// of test accuracy (pooling × outlier fraction) on stdout (or JSON with --json) and a PNG plot. Everything is
// seeded: the same command gives the same table.
#include <time.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <string>
#include <vector>

#include "apps/common/app.h"
#include "apps/pointcloud/plot.h"
#include "apps/pointcloud/pointnet.h"
#include "datasets/point_clouds.h"
#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/files.h"
#include "ddn/graph/optim.h"
#include "ddn/parallel.h"
#include "ddn/params.h"
#include "ddn/random.h"
#include "ddn/strings.h"

namespace po = boost::program_options;

namespace ddn::pointcloud {
namespace {

using Clock = std::chrono::steady_clock;

// CPU seconds of this process (all threads): with --threads 1 the time the training really took, less
// sensitive than the wall clock to other work on a shared machine.
double CpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// ---- Settings ------------------------------------------------------------------------------------------

struct Setting {
  std::string data;   // digits.png path or folder; empty: search
  int synthetic = 0;  // > 0: generated digits, this many per class (no data file needed)
  bool quick = false;
  std::vector<std::string> poolings;
  double alpha = 1.0;
  std::vector<double> outliers;  // test-time outlier fractions
  double train_outliers = 0.0;   // training-time outlier fraction
  int points = 0, epochs = 0, batch_size = 0, train_per_class = 0, test_per_class = 0;
  double learning_rate = 0;
  std::vector<int> point_widths, head_widths;
  uint64_t seed = 1;
  int threads = 0;
  std::string plot, save_dir;
  std::string trace;  // --trace: JSON of the training run (data, initial parameters, batches, losses)
  bool json = false;
};

// ---- Training and evaluation ---------------------------------------------------------------------------

struct Batch {
  Tensor points, labels;
};

Batch Gather(const datasets::PointClouds& clouds, const std::vector<int>& order, size_t begin, size_t end) {
  const int64_t N = clouds.points.dim(1), B = static_cast<int64_t>(end - begin);
  Batch batch{Tensor({B, N, 2}), Tensor({B})};
  for (int64_t b = 0; b < B; ++b) {
    const int m = order[begin + b];
    std::copy(clouds.points.problem(m), clouds.points.problem(m) + N * 2, batch.points.problem(b));
    batch.labels[b] = clouds.labels[m];
  }
  return batch;
}

int CountCorrect(const Tensor& logits, const Tensor& labels) {
  const int64_t B = logits.dim(0), C = logits.dim(1);
  int correct = 0;
  for (int64_t b = 0; b < B; ++b) {
    const double* z = logits.data() + b * C;
    correct += (std::max_element(z, z + C) - z) == static_cast<int64_t>(labels[b]);
  }
  return correct;
}

// Trains `net` in place. With `trace`, records per epoch the learning rate, the order of the training clouds,
// every step's loss and the epoch's wall and CPU time (bench/train_vs_pytorch.py replays the same run in
// PyTorch from it).
void Train(PointNet* net, const datasets::PointClouds& train, const Setting& s, const std::string& name,
           nlohmann::json* trace) {
  graph::AdamOptions adam_options;
  adam_options.learning_rate = s.learning_rate;
  graph::Adam adam(net->graph.TrainableParameters(), adam_options);
  graph::LearningRateSchedule schedule;
  schedule.kind = graph::LearningRateSchedule::kCosine;
  schedule.base = s.learning_rate;
  schedule.minimum = 0.01 * s.learning_rate;
  schedule.total_epochs = s.epochs;
  const int M = static_cast<int>(train.labels.size());
  const int batches = (M + s.batch_size - 1) / s.batch_size;
  std::vector<int> order(M);
  for (int i = 0; i < M; ++i) order[i] = i;
  Rng rng(s.seed * 7919 + 17);
  const auto start = Clock::now();
  for (int epoch = 0; epoch < s.epochs; ++epoch) {
    adam.set_learning_rate(schedule.At(epoch));
    rng.Shuffle(&order);
    const auto epoch_start = Clock::now();
    const double epoch_cpu = CpuSeconds();
    std::vector<double> losses;
    char label[64];
    std::snprintf(label, sizeof(label), "%s epoch %d/%d", name.c_str(), epoch + 1, s.epochs);
    app::Progress progress(label, batches);
    double loss_sum = 0;
    int correct = 0, seen = 0;
    char extra[96] = "";
    for (int k = 0; k < batches; ++k) {
      const size_t begin = static_cast<size_t>(k) * s.batch_size, end = std::min<size_t>(M, begin + s.batch_size);
      if (end - begin < 2) continue;  // batch norm needs two rows
      Batch batch = Gather(train, order, begin, end);
      if (s.train_outliers > 0) datasets::AddOutliers(s.train_outliers, rng.Below(~uint64_t{0}), &batch.points);
      net->graph.Forward({{"points", batch.points}, {"labels", batch.labels}}, {net->loss}, graph::Mode::kTrain);
      net->graph.ZeroGrad();
      net->graph.Backward(net->loss);
      adam.Step();
      const int B = static_cast<int>(end - begin);
      loss_sum += net->graph.Value(net->loss)[0] * B;
      if (trace) losses.push_back(net->graph.Value(net->loss)[0]);
      correct += CountCorrect(net->graph.Value(net->logits), batch.labels);
      seen += B;
      std::snprintf(extra, sizeof(extra), "loss %.3f  train acc %5.1f%%  %5.0fs", loss_sum / seen,
                    100.0 * correct / seen, app::SecondsSince(start));
      progress.Update(k + 1, extra);
    }
    const double cpu = CpuSeconds() - epoch_cpu, wall = app::SecondsSince(epoch_start);
    progress.Finish(extra);
    if (trace) {
      (*trace)["epochs"].push_back({{"learning_rate", schedule.At(epoch)},
                                    {"order", order},
                                    {"losses", losses},
                                    {"seconds", wall},
                                    {"cpu_seconds", cpu}});
    }
  }
}

double Evaluate(PointNet* net, const datasets::PointClouds& test, const Tensor& points) {
  const int M = static_cast<int>(test.labels.size());
  std::vector<int> order(M);
  for (int i = 0; i < M; ++i) order[i] = i;
  datasets::PointClouds view;
  view.points = points;
  view.labels = test.labels;
  int correct = 0;
  const int chunk = 250;
  for (int begin = 0; begin < M; begin += chunk) {
    const int end = std::min(M, begin + chunk);
    Batch batch = Gather(view, order, begin, end);
    net->graph.Forward({{"points", batch.points}}, {net->logits}, graph::Mode::kEval);
    correct += CountCorrect(net->graph.Value(net->logits), batch.labels);
  }
  return static_cast<double>(correct) / M;
}

// ---- The experiment ------------------------------------------------------------------------------------

std::string SavePath(const Setting& s, const std::string& pooling) {
  return (std::filesystem::path(s.save_dir) / ("pointnet_" + pooling + ".txt")).string();
}

int Run(const Setting& s) {
  const auto start = Clock::now();
  // --threads for everything: robust_pool's B·F problems and the dense layers' row blocks (ddn/parallel.h).
  ddn::SetDefaultThreadCount(s.threads);
  // Every output is checked before any work: a plot or a folder that cannot be written must not cost a training
  // run (the files are then written atomically, ddn/files.h).
  const std::string data_file = s.synthetic > 0 ? "" : datasets::FindOpenCvDigits(s.data);
  ddn::NamedPaths outputs;
  if (!s.plot.empty()) {
    app::CheckImageOutput("--plot", s.plot);
    outputs.push_back({"--plot", s.plot});
  }
  if (!s.save_dir.empty()) {
    ddn::CheckOutputFolder("--save-dir", s.save_dir);
    for (const std::string& pooling : s.poolings) outputs.push_back({"--save-dir", SavePath(s, pooling)});
  }
  if (!s.trace.empty()) {
    ddn::CheckOutputFile("--trace", s.trace);
    outputs.push_back({"--trace", s.trace});
  }
  ddn::RequireDistinctOutputs({{"--data", data_file}}, outputs);
  datasets::ImageSet images;
  std::string source;
  if (s.synthetic > 0) {
    images = datasets::MakeSyntheticDigits(s.synthetic, s.seed);
    source = "synthetic digits (" + std::to_string(s.synthetic) + " per class)";
  } else {
    source = data_file;
    images = datasets::LoadOpenCvDigits(source);
  }
  std::vector<int> train_index, test_index;
  datasets::SplitTrainTest(images, s.test_per_class, s.seed, &train_index, &test_index);
  if (s.train_per_class > 0) {
    // Keep the first train_per_class of each class (the split is already shuffled).
    std::vector<int> taken(images.num_classes, 0), kept;
    for (int i : train_index)
      if (taken[images.labels[i]]++ < s.train_per_class) kept.push_back(i);
    train_index = kept;
  }
  if (train_index.size() < 2 || test_index.empty()) throw InvalidInput("too few images for a train/test split");
  datasets::CloudOptions cloud_options;
  cloud_options.num_points = s.points;
  cloud_options.seed = s.seed + 1;
  const datasets::PointClouds train = datasets::MakePointClouds(images, train_index, cloud_options);
  cloud_options.seed = s.seed + 2;
  const datasets::PointClouds test = datasets::MakePointClouds(images, test_index, cloud_options);
  std::fprintf(stderr, "ddn-pointcloud: %s; %zu training and %zu test clouds of %d points\n", source.c_str(),
               train.labels.size(), test.labels.size(), s.points);

  // The same outliers for every pooling.
  std::vector<Tensor> noisy_test;
  for (size_t k = 0; k < s.outliers.size(); ++k) {
    Tensor t = test.points;
    datasets::AddOutliers(s.outliers[k], s.seed * 1000003 + 101 * (k + 1), &t);
    noisy_test.push_back(std::move(t));
  }

  // --trace: the training set and settings, then one entry per pooling (filled by Train).
  nlohmann::json trace;
  if (!s.trace.empty()) {
    trace["format"] = "ddn-pointcloud-trace 1";
    trace["setting"] = {{"points", s.points},
                        {"epochs", s.epochs},
                        {"batch_size", s.batch_size},
                        {"learning_rate", s.learning_rate},
                        {"alpha", s.alpha},
                        {"point_widths", s.point_widths},
                        {"head_widths", s.head_widths},
                        {"num_classes", images.num_classes},
                        {"seed", s.seed},
                        {"threads", s.threads}};
    trace["train_points"] = {{"shape", train.points.shape()}, {"values", train.points.values()}};
    trace["train_labels"] = train.labels;
    trace["runs"] = nlohmann::json::array();
  }

  std::vector<std::vector<double>> accuracy;
  std::vector<double> train_seconds;
  for (const std::string& pooling : s.poolings) {
    PointNetOptions options;
    options.point_widths = s.point_widths;
    options.head_widths = s.head_widths;
    options.num_classes = images.num_classes;
    options.pooling = pooling;
    options.alpha = s.alpha;
    options.seed = s.seed;
    options.threads = s.threads;
    auto net = BuildPointNet(options);
    nlohmann::json* run_trace = nullptr;
    if (!s.trace.empty()) {
      nlohmann::json initial = nlohmann::json::object();
      for (const graph::Parameter* p : net->graph.Parameters())
        initial[p->name] = {{"shape", p->value.shape()}, {"values", p->value.values()}};
      trace["runs"].push_back(
          {{"pooling", pooling}, {"initial_parameters", initial}, {"epochs", nlohmann::json::array()}});
      run_trace = &trace["runs"].back();
    }
    const auto t0 = Clock::now();
    Train(net.get(), train, s, pooling, run_trace);
    train_seconds.push_back(app::SecondsSince(t0));
    std::vector<double> row;
    for (const Tensor& points : noisy_test) row.push_back(Evaluate(net.get(), test, points));
    accuracy.push_back(row);
    std::string line;
    for (double a : row) {
      char cell[16];
      std::snprintf(cell, sizeof(cell), " %5.1f", 100 * a);
      line += cell;
    }
    std::fprintf(stderr, "%-28s test acc %%:%s  (%.0f s)\n", pooling.c_str(), line.c_str(), app::SecondsSince(t0));
    if (!s.save_dir.empty()) graph::SaveParameters(net->graph, SavePath(s, pooling));
  }

  if (!s.trace.empty()) ddn::WriteFileAtomically(s.trace, trace.dump());  // checked before training

  // The plot.
  std::vector<PlotSeries> series;
  for (size_t p = 0; p < s.poolings.size(); ++p) {
    series.push_back({s.poolings[p], accuracy[p]});
  }
  PlotOptions plot_options;
  plot_options.title = "Digit point clouds: test accuracy vs outliers";
  const std::string subtitle = StrFormat(
      "PointNet-style; %zu train / %zu test clouds of %d points; %d epochs; robust penalties alpha = %g; "
      "train outliers %g%%; seed %llu",
      train.labels.size(), test.labels.size(), s.points, s.epochs, s.alpha, 100 * s.train_outliers,
      static_cast<unsigned long long>(s.seed));
  plot_options.subtitle = subtitle;
  if (!s.plot.empty()) WriteAccuracyPlot(s.plot, s.outliers, series, plot_options);

  if (s.json) {
    nlohmann::json j;
    j["data"] = source;
    j["setting"] = {{"points", s.points},
                    {"epochs", s.epochs},
                    {"batch_size", s.batch_size},
                    {"learning_rate", s.learning_rate},
                    {"train_clouds", train.labels.size()},
                    {"test_clouds", test.labels.size()},
                    {"point_widths", s.point_widths},
                    {"head_widths", s.head_widths},
                    {"alpha", s.alpha},
                    {"train_outliers", s.train_outliers},
                    {"seed", s.seed}};
    j["outlier_fractions"] = s.outliers;
    j["results"] = nlohmann::json::array();
    for (size_t p = 0; p < s.poolings.size(); ++p) {
      j["results"].push_back(
          {{"pooling", s.poolings[p]}, {"accuracy", accuracy[p]}, {"train_seconds", train_seconds[p]}});
    }
    if (!s.plot.empty()) j["plot"] = s.plot;
    j["seconds"] = app::SecondsSince(start);
    std::cout << j.dump(2) << std::endl;
  } else {
    std::printf("Test accuracy (%%) by pooling and test-time outlier fraction (%s, %zu test clouds, alpha = %g)\n",
                source.c_str(), test.labels.size(), s.alpha);
    std::printf("%-21s", "outlier fraction");
    for (double f : s.outliers) std::printf(" %7g", f);
    std::printf("\n%-21s", "points replaced");
    for (double f : s.outliers) std::printf(" %7ld", std::lround(f * s.points));
    std::printf("\n");
    for (size_t p = 0; p < s.poolings.size(); ++p) {
      std::printf("%-21s", series[p].label.c_str());
      for (double a : accuracy[p]) std::printf(" %7.1f", 100 * a);
      std::printf("\n");
    }
    if (!s.plot.empty()) std::printf("plot: %s\n", s.plot.c_str());
    std::printf("total time: %.0f s\n", app::SecondsSince(start));
  }
  return app::kExitOk;
}

std::vector<int> Widths(const std::string& text, const std::string& option) {
  const std::vector<int> widths = app::ParseList<int>(text, option);
  if (widths.size() > 16) throw InvalidInput("--" + option + ": at most 16 layers");
  for (int w : widths) {
    if (w < 1 || w > 4096)
      throw InvalidInput("--" + option + ": widths must be in [1, 4096], got " + std::to_string(w));
  }
  return widths;
}

int Main(int argc, char** argv) {
  Setting s;
  std::string poolings, outliers, point_widths, head_widths;
  po::options_description desc(
      "ddn-pointcloud: the DDN paper's robust-pooling experiment on 2-D point clouds of handwritten digits.\n"
      "Trains a PointNet-style classifier per pooling, evaluates it with test-time outliers, prints a table\n"
      "of test accuracy (pooling x outlier fraction) and writes a PNG plot.\n\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("quick", "the quick setting (about a minute on 2 cores): fewer clouds, epochs and poolings")
    ("data", po::value(&s.data), "OpenCV's digits.png (or .png.gz), or a folder holding it; default: search the "
                                 "opencv-doc install, $DDN_DIGITS, $OPENCV_SAMPLES_DATA_PATH")
    ("synthetic", po::value<int>(), "use N generated digits per class instead of the data file (smoke tests; "
                                    "1 to 10000)")
    ("pooling", po::value(&poolings), "comma-separated poolings: max, mean, quadratic, pseudo_huber, huber, welsch, "
                                      "truncated_quadratic, cauchy, geman_mcclure; default all (quick: max, mean, "
                                      "pseudo_huber, huber, welsch, truncated_quadratic)")
    ("alpha", po::value<double>(), "alpha of the robust penalties (default 1)")
    ("outliers", po::value(&outliers)->default_value("0,0.01,0.05,0.1,0.2,0.3,0.5"),
     "comma-separated test-time outlier fractions")
    ("train-outliers", po::value<double>(),
     "outlier fraction in training clouds (fresh outliers every batch); default 0 as in the paper")
    ("points", po::value<int>(), "points per cloud, 1 to 100000 (default 64)")
    ("epochs", po::value<int>(), "training epochs per pooling, 1 to 100000 (default 12, quick 8)")
    ("batch-size", po::value<int>(), "training batch size, 2 to 100000 (default 32)")
    ("lr", po::value<double>(), "Adam learning rate, cosine schedule, in (0, 10] (default 0.002)")
    ("train-per-class", po::value<int>(), "training digits per class, at most 500 - test (default all; quick 150)")
    ("test-per-class", po::value<int>(), "test digits per class (default 100, quick 50)")
    ("point-widths", po::value(&point_widths), "widths of the shared per-point layers (default 32,64)")
    ("head-widths", po::value(&head_widths), "widths of the hidden layers after pooling (default 64)")
    ("threads", po::value<int>(),
     "threads, 0 to 256 (0, the default: all cores): robust_pool's batch and the dense layers")
    ("plot", po::value(&s.plot)->default_value("pointcloud_accuracy.png"),
     "plot to write, an image format OpenCV writes (.png); '' for none")
    ("save-dir", po::value(&s.save_dir), "save each trained network's parameters in this (existing) folder")
    ("trace", po::value(&s.trace), "write a JSON trace of training to this file: training clouds, initial "
                                   "parameters, per epoch the learning rate, batch order, step losses and times")
    ("json", "print the table as JSON on stdout");
  // clang-format on
  app::AddSeedOption(&desc, &s.seed, "seed of the split, sampling, outliers and initialisation");
  po::variables_map vm;
  app::ParseCommandLine(argc, argv, desc, {}, &vm);
  if (vm.count("help")) return app::PrintHelp(desc);
  s.quick = vm.count("quick") > 0;
  s.json = vm.count("json") > 0;
  const bool q = s.quick;
  s.points = app::InRange(vm, "points", 64, 1, 100000, "[1, 100000]");
  s.epochs = app::InRange(vm, "epochs", q ? 8 : 12, 1, 100000, "[1, 100000]");
  s.batch_size = app::InRange(vm, "batch-size", 32, 2, 100000, "[2, 100000]");
  s.learning_rate = app::InRange(vm, "lr", 0.002, app::kTiny, 10.0, "(0, 10]");
  s.train_per_class = app::InRange(vm, "train-per-class", q ? 150 : 0, 1, 100000, "[1, 100000]");
  s.test_per_class = app::InRange(vm, "test-per-class", q ? 50 : 100, 1, 100000, "[1, 100000]");
  s.synthetic = app::InRange(vm, "synthetic", 0, 0, 10000, "[0, 10000]");
  s.alpha = app::InRange(vm, "alpha", 1.0, app::kTiny, 1e300, "(0, 1e300]");
  s.train_outliers = app::InRange(vm, "train-outliers", 0.0, 0.0, 1.0, "[0, 1]");
  s.threads = app::InRange(vm, "threads", 0, 0, ddn::kMaxThreads, "[0, " + std::to_string(ddn::kMaxThreads) + "]");
  s.point_widths = Widths(point_widths.empty() ? "32,64" : point_widths, "point-widths");
  s.head_widths = head_widths.empty() ? std::vector<int>{64} : Widths(head_widths, "head-widths");
  if (poolings.empty()) {
    s.poolings = q ? std::vector<std::string>{"max", "mean", "pseudo_huber", "huber", "welsch", "truncated_quadratic"}
                   : std::vector<std::string>{"max", "mean"};
    if (!q)
      for (const auto& p : RobustPenalties()) s.poolings.push_back(p);
  } else {
    s.poolings = app::SplitList(poolings);
  }
  if (s.poolings.empty()) throw InvalidInput("--pooling is empty");
  for (const auto& p : s.poolings)
    if (!IsKnownPooling(p)) throw InvalidInput("--pooling: unknown pooling " + ddn::QuoteForMessage(p));
  s.outliers = app::ParseList<double>(outliers, "outliers");
  for (double f : s.outliers)
    if (!(f >= 0 && f <= 1)) throw InvalidInput("--outliers: fractions must be in [0, 1]");
  return Run(s);
}

}  // namespace
}  // namespace ddn::pointcloud

int main(int argc, char** argv) {
  // Errors are one line on stderr: OpenCV's own log lines (a warning from a codec) are silenced.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  ddn::app::GuardOptions guard;
  guard.out_of_memory_hint = " (try fewer --points, narrower --point-widths or a smaller --batch-size)";
  return ddn::app::RunGuarded(
      "ddn-pointcloud", [&] { return ddn::pointcloud::Main(argc, argv); }, guard);
}
