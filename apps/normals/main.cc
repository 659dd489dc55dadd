// ddn-normals: learned per-point normal estimation on real scans (DeepFit, Ben-Shabat & Gould, ECCV 2020, with the
// declarative node fit_plane as the fitting layer).
//
// For each query point, its k nearest neighbours; a small shared network (weight_net.h) gives each neighbour a
// weight; fit_plane with those weights gives the normal; the loss 1 − |n·n_true| is minimised end to end through the
// node's implicit backward. Data: the meshes Debian's opencv-doc ships (surface_matching/data/*.ply and
// viz/data/bunny.ply), true normals from their faces (shapes.h), Gaussian noise at several levels and outliers;
// trained on some shapes, tested on others, against unweighted PCA normals and a robust fit with a fixed Huber
// penalty (α chosen on the training shapes) on the same neighbourhoods. Prints a table (or JSON) of the RMS angle
// error and the fractions under 5° and 10° per condition, and writes a PNG of a test shape coloured by error.
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/common/app.h"
#include "apps/normals/render.h"
#include "apps/normals/shapes.h"
#include "apps/normals/weight_net.h"
#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/graph/optim.h"
#include "ddn/node.h"
#include "ddn/parallel.h"
#include "ddn/random.h"

namespace po = boost::program_options;

namespace ddn::normals {
namespace {

using Clock = std::chrono::steady_clock;

// ---- Settings ----------------------------------------------------------------------------------------------

struct Condition {
  std::string name;
  double noise = 0;     // σ in units of the scan's spacing
  double outliers = 0;  // fraction of points
};

struct Setting {
  std::string data;
  std::vector<std::string> train, test;  // PLY paths
  bool quick = false;
  int k = 32;
  std::vector<Condition> conditions;
  int train_samples = 0, test_samples = 0, epochs = 0, batch_size = 128;
  double learning_rate = 2e-3;
  std::vector<double> huber_alphas;
  uint64_t seed = 1;
  int threads = 0;
  std::string png, render_shape;
  int render_condition = -1;
  bool json = false;
};

// The folders a shape name is looked for in: --data, $DDN_OPENCV_EXAMPLES, then opencv-doc's install folder.
std::vector<std::string> SearchFolders(const std::string& data) {
  std::vector<std::string> roots;
  if (!data.empty()) roots.push_back(data);
  if (const char* env = std::getenv("DDN_OPENCV_EXAMPLES"); env && *env) roots.push_back(env);
  roots.push_back("/usr/share/doc/opencv-doc/examples");
  std::vector<std::string> folders;
  for (const auto& r : roots) {
    folders.push_back(r);
    folders.push_back(r + "/surface_matching/data");
    folders.push_back(r + "/viz/data");
  }
  return folders;
}

// A shape given as a path (anything with '/' or ending in .ply) or as a name found in the search folders.
std::string ResolveShape(const std::string& item, const std::string& data) {
  const bool is_path =
      item.find('/') != std::string::npos || (item.size() > 4 && item.compare(item.size() - 4, 4, ".ply") == 0);
  if (is_path) return item;  // ReadPly reports a missing or unreadable file
  std::string tried;
  for (const auto& folder : SearchFolders(data)) {
    const std::string path = folder + "/" + item + ".ply";
    if (std::filesystem::exists(path)) return path;
    tried += (tried.empty() ? "" : ", ") + folder;
  }
  throw InvalidInput("shape '" + item + "' not found (looked for " + item + ".ply in " + tried +
                     "; install Debian's opencv-doc or give --data)");
}

// ---- Samples ---------------------------------------------------------------------------------------------------

// Neighbourhoods of query points: features (M, k, F), local points (M, k, 3), true normals (M, 3).
struct Samples {
  Tensor features, points, normals;
  std::vector<int> condition;   // per sample
  std::vector<int> shape;       // per sample (index into the list of shapes it came from)
  std::vector<int64_t> vertex;  // per sample
};

// One corrupted copy of a shape and its k-d tree.
struct Scene {
  Corrupted cloud;
  std::unique_ptr<NeighbourIndex> index;
};

// `per_pair` query points (valid, not outliers) per (shape, condition), or every such vertex if per_pair ≤ 0.
Samples MakeSamples(const std::vector<Scan>& shapes, const std::vector<Condition>& conditions, int per_pair, int k,
                    uint64_t seed, int threads, const std::string& label,
                    std::vector<std::vector<int>> only_conditions = {}) {
  struct Job {
    int shape, condition;
    int64_t vertex;
  };
  std::vector<Job> jobs;
  std::vector<std::vector<Scene>> scenes(shapes.size());
  for (size_t s = 0; s < shapes.size(); ++s) {
    scenes[s].resize(conditions.size());
    for (size_t c = 0; c < conditions.size(); ++c) {
      if (!only_conditions.empty() && std::find(only_conditions[s].begin(), only_conditions[s].end(),
                                                static_cast<int>(c)) == only_conditions[s].end())
        continue;
      Scene& scene = scenes[s][c];
      scene.cloud =
          Corrupt(shapes[s], conditions[c].noise, conditions[c].outliers, seed * 1000003 + 7919 * s + 104729 * c + 1);
      scene.index = std::make_unique<NeighbourIndex>(scene.cloud.points);
      std::vector<int64_t> candidates;
      for (int64_t v = 0; v < shapes[s].size(); ++v)
        if (shapes[s].valid[v] && !scene.cloud.outlier[v]) candidates.push_back(v);
      if (static_cast<int64_t>(candidates.size()) < k) {
        throw InvalidInput("shape '" + shapes[s].name + "' has fewer usable points than k = " + std::to_string(k));
      }
      Rng rng(seed * 31 + 1009 * s + 17 * c + 5);
      if (per_pair > 0 && per_pair < static_cast<int>(candidates.size())) {
        rng.Shuffle(&candidates);
        candidates.resize(per_pair);
      }
      for (int64_t v : candidates) jobs.push_back({static_cast<int>(s), static_cast<int>(c), v});
    }
  }
  const int64_t M = static_cast<int64_t>(jobs.size());
  Samples out;
  out.features = Tensor({M, k, kNumFeatures});
  out.points = Tensor({M, k, 3});
  out.normals = Tensor({M, 3});
  out.condition.resize(M);
  out.shape.resize(M);
  out.vertex.resize(M);
  app::Progress progress(label, static_cast<int>(M), 30);
  std::atomic<int64_t> done{0};
  ParallelFor(M, threads, 64, [&](int64_t begin, int64_t end, int worker) {
    for (int64_t m = begin; m < end; ++m) {
      const Job& j = jobs[m];
      const Scene& scene = scenes[j.shape][j.condition];
      Neighbourhood(scene.cloud.points, *scene.index, j.vertex, k, out.points.problem(m), out.features.problem(m));
      for (int c = 0; c < 3; ++c) out.normals[3 * m + c] = shapes[j.shape].normals[3 * j.vertex + c];
      out.condition[m] = j.condition;
      out.shape[m] = j.shape;
      out.vertex[m] = j.vertex;
    }
    const int64_t now = done += end - begin;
    if (worker == 0) progress.Update(static_cast<int>(now));
  });
  progress.Finish(std::to_string(M) + " neighbourhoods");
  return out;
}

Tensor Rows(const Tensor& t, const std::vector<int64_t>& rows) {
  Shape shape = t.shape();
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out(shape);
  const int64_t size = t.problem_size();
  for (size_t r = 0; r < rows.size(); ++r) std::copy(t.problem(rows[r]), t.problem(rows[r]) + size, out.problem(r));
  return out;
}

// Feature standardisation (part of the model): per feature, the mean and standard deviation over the training
// neighbourhoods; applied to training and test features alike.
struct Standardiser {
  std::vector<double> mean, inv_std;
  explicit Standardiser(const Tensor& features) : mean(kNumFeatures, 0.0), inv_std(kNumFeatures, 0.0) {
    const int64_t rows = features.size() / kNumFeatures;
    std::vector<double> sq(kNumFeatures, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int f = 0; f < kNumFeatures; ++f) mean[f] += features[r * kNumFeatures + f] / rows;
    for (int64_t r = 0; r < rows; ++r)
      for (int f = 0; f < kNumFeatures; ++f) sq[f] += std::pow(features[r * kNumFeatures + f] - mean[f], 2) / rows;
    for (int f = 0; f < kNumFeatures; ++f) inv_std[f] = 1.0 / std::sqrt(sq[f] + 1e-12);
  }
  void Apply(Tensor* features) const {
    const int64_t rows = features->size() / kNumFeatures;
    for (int64_t r = 0; r < rows; ++r)
      for (int f = 0; f < kNumFeatures; ++f) {
        double& x = (*features)[r * kNumFeatures + f];
        x = (x - mean[f]) * inv_std[f];
      }
  }
};

// Angle between unoriented normals, degrees.
double AngleDeg(const double* n, const double* t) {
  double dot = 0, nn = 0, tt = 0;
  for (int c = 0; c < 3; ++c) {
    dot += n[c] * t[c];
    nn += n[c] * n[c];
    tt += t[c] * t[c];
  }
  return std::acos(std::min(1.0, std::abs(dot) / std::sqrt(nn * tt))) * 180.0 / M_PI;
}

// Normals of every sample by fit_plane with the given penalty (unweighted), in chunks.
std::vector<double> FitErrors(const Samples& s, const std::string& penalty, double alpha, int threads) {
  auto node = MakeNode("fit_plane", {{"penalty", penalty}, {"alpha", FormatDouble(alpha)}});
  RunOptions run;
  run.threads = threads;
  const int64_t M = s.points.dim(0);
  std::vector<double> errors(M);
  const int64_t chunk = 4096;
  for (int64_t b0 = 0; b0 < M; b0 += chunk) {
    std::vector<int64_t> rows;
    for (int64_t m = b0; m < std::min(M, b0 + chunk); ++m) rows.push_back(m);
    const ForwardResult r = Forward(*node, {{"points", Rows(s.points, rows)}}, run);
    const Tensor& n = r.outputs.at("normal");
    for (size_t i = 0; i < rows.size(); ++i) errors[rows[i]] = AngleDeg(n.problem(i), s.normals.problem(rows[i]));
  }
  return errors;
}

std::vector<double> LearnedErrors(WeightNet* net, const Samples& s) {
  const int64_t M = s.points.dim(0);
  std::vector<double> errors(M);
  const int64_t chunk = 1024;
  for (int64_t b0 = 0; b0 < M; b0 += chunk) {
    std::vector<int64_t> rows;
    for (int64_t m = b0; m < std::min(M, b0 + chunk); ++m) rows.push_back(m);
    net->graph.Forward({{"features", Rows(s.features, rows)}, {"points", Rows(s.points, rows)}}, {net->normal},
                       graph::Mode::kEval);
    const Tensor& n = net->graph.Value(net->normal);
    for (size_t i = 0; i < rows.size(); ++i) errors[rows[i]] = AngleDeg(n.problem(i), s.normals.problem(rows[i]));
  }
  return errors;
}

struct Metrics {
  double rms = 0, under5 = 0, under10 = 0;
  int64_t count = 0;
};

Metrics Summarise(const std::vector<double>& errors, const std::vector<int64_t>& which) {
  Metrics m;
  for (int64_t i : which) {
    m.rms += errors[i] * errors[i];
    m.under5 += errors[i] < 5.0;
    m.under10 += errors[i] < 10.0;
  }
  m.count = static_cast<int64_t>(which.size());
  if (m.count) {
    m.rms = std::sqrt(m.rms / m.count);
    m.under5 /= m.count;
    m.under10 /= m.count;
  }
  return m;
}

nlohmann::json ToJson(const Metrics& m) {
  return {{"rms_angle_deg", m.rms}, {"under_5_deg", m.under5}, {"under_10_deg", m.under10}, {"points", m.count}};
}

void Train(WeightNet* net, const Samples& train, const Setting& s) {
  graph::AdamOptions adam_options;
  adam_options.learning_rate = s.learning_rate;
  graph::Adam adam(net->graph.TrainableParameters(), adam_options);
  graph::LearningRateSchedule schedule;
  schedule.kind = graph::LearningRateSchedule::kCosine;
  schedule.base = s.learning_rate;
  schedule.minimum = 0.02 * s.learning_rate;
  schedule.total_epochs = s.epochs;
  const int64_t M = train.points.dim(0);
  std::vector<int64_t> order(M);
  for (int64_t m = 0; m < M; ++m) order[m] = m;
  Rng rng(s.seed * 7919 + 3);
  const auto start = Clock::now();
  const int batches = static_cast<int>((M + s.batch_size - 1) / s.batch_size);
  for (int epoch = 0; epoch < s.epochs; ++epoch) {
    adam.set_learning_rate(schedule.At(epoch));
    rng.Shuffle(&order);
    char label[64];
    std::snprintf(label, sizeof label, "training epoch %d/%d", epoch + 1, s.epochs);
    app::Progress progress(label, batches, 30);
    double loss_sum = 0;
    int64_t seen = 0;
    char extra[96] = "";
    for (int b = 0; b < batches; ++b) {
      std::vector<int64_t> rows(order.begin() + static_cast<int64_t>(b) * s.batch_size,
                                order.begin() + std::min<int64_t>(M, static_cast<int64_t>(b + 1) * s.batch_size));
      net->graph.Forward({{"features", Rows(train.features, rows)},
                          {"points", Rows(train.points, rows)},
                          {"target", Rows(train.normals, rows)}},
                         {net->loss}, graph::Mode::kTrain);
      net->graph.ZeroGrad();
      net->graph.Backward(net->loss);
      adam.Step();
      loss_sum += net->graph.Value(net->loss)[0] * static_cast<double>(rows.size());
      seen += static_cast<int64_t>(rows.size());
      std::snprintf(extra, sizeof extra, "loss %.5f  %4.0fs", loss_sum / seen, app::SecondsSince(start));
      progress.Update(b + 1, extra);
    }
    progress.Finish(extra);
  }
}

std::string ConditionLabel(double noise, double outliers) {
  char s[64];
  if (noise == 0 && outliers == 0) return "clean";
  std::snprintf(s, sizeof s, "noise %gh", noise);
  std::string out = s;
  if (outliers > 0) {
    std::snprintf(s, sizeof s, " + %g%% outliers", 100 * outliers);
    out += s;
  }
  return out;
}

int Run(const Setting& s) {
  const auto start = Clock::now();
  // The graph's dense layers and every batched node call use this count.
  SetDefaultThreadCount(s.threads);
  // Eigen's threaded products spin-wait: on a loaded machine two threads made training 4× slower than one.
  Eigen::setNbThreads(1);
  if (!s.png.empty()) app::CheckImageOutput("--png", s.png);  // before the training, not after it
  std::vector<Scan> train_shapes, test_shapes;
  for (const auto& p : s.train) train_shapes.push_back(LoadScan(p));
  for (const auto& p : s.test) test_shapes.push_back(LoadScan(p));
  std::string train_names, test_names;
  for (const auto& sh : train_shapes) train_names += (train_names.empty() ? "" : ", ") + sh.name;
  for (const auto& sh : test_shapes) test_names += (test_names.empty() ? "" : ", ") + sh.name;
  std::fprintf(stderr, "ddn-normals: train on %s; test on %s (%.1f s to load)\n", train_names.c_str(),
               test_names.c_str(), app::SecondsSince(start));

  // Training samples: the same number from every (shape, condition).
  const int pairs_train = static_cast<int>(train_shapes.size() * s.conditions.size());
  Samples train = MakeSamples(train_shapes, s.conditions, std::max(1, s.train_samples / pairs_train), s.k, s.seed,
                              s.threads, "training neighbourhoods");
  const Standardiser standardiser(train.features);
  standardiser.Apply(&train.features);
  // The Huber baseline's α (in units of the neighbourhood radius): the best on the training samples.
  double huber_alpha = s.huber_alphas[0], best = 1e300;
  {
    std::vector<int64_t> all(train.points.dim(0));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    app::Progress progress("choosing Huber's alpha", static_cast<int>(s.huber_alphas.size()), 30);
    std::string extra;
    for (size_t a = 0; a < s.huber_alphas.size(); ++a) {
      const double rms = Summarise(FitErrors(train, "huber", s.huber_alphas[a], s.threads), all).rms;
      if (rms < best) {
        best = rms;
        huber_alpha = s.huber_alphas[a];
      }
      char e[64];
      std::snprintf(e, sizeof e, "alpha %g: RMS %.2f deg", s.huber_alphas[a], rms);
      extra = e;
      progress.Update(static_cast<int>(a + 1), extra);
    }
    char e[64];
    std::snprintf(e, sizeof e, "alpha = %g (training RMS %.2f deg)", huber_alpha, best);
    progress.Finish(e);
  }

  auto net = BuildWeightNet(s.k, kNumFeatures, s.seed, s.threads);
  const auto train_start = Clock::now();
  Train(net.get(), train, s);
  const double train_seconds = app::SecondsSince(train_start);

  // Test: every method on the same neighbourhoods.
  Samples test =
      MakeSamples(test_shapes, s.conditions, s.test_samples, s.k, s.seed + 1000, s.threads, "test neighbourhoods");
  standardiser.Apply(&test.features);
  const std::vector<std::string> methods = {"pca", "huber", "learned"};
  std::map<std::string, std::vector<double>> errors;
  errors["pca"] = FitErrors(test, "quadratic", 1.0, s.threads);
  errors["huber"] = FitErrors(test, "huber", huber_alpha, s.threads);
  errors["learned"] = LearnedErrors(net.get(), test);
  const int64_t M = test.points.dim(0);
  std::vector<std::vector<int64_t>> by_condition(s.conditions.size());
  std::vector<std::vector<std::vector<int64_t>>> by_shape_condition(
      test_shapes.size(), std::vector<std::vector<int64_t>>(s.conditions.size()));
  std::vector<int64_t> all, noisy;
  for (int64_t m = 0; m < M; ++m) {
    by_condition[test.condition[m]].push_back(m);
    by_shape_condition[test.shape[m]][test.condition[m]].push_back(m);
    all.push_back(m);
    const Condition& c = s.conditions[test.condition[m]];
    if (c.noise > 0 || c.outliers > 0) noisy.push_back(m);
  }

  // The picture: every usable vertex of one test shape under one condition.
  std::string png_note;
  if (!s.png.empty()) {
    int shape_index = 0;
    for (size_t i = 0; i < test_shapes.size(); ++i)
      if (test_shapes[i].name == s.render_shape) shape_index = static_cast<int>(i);
    const int cond = s.render_condition >= 0 ? s.render_condition : static_cast<int>(s.conditions.size()) - 1;
    Samples pic =
        MakeSamples({test_shapes[shape_index]}, s.conditions, 0, s.k, s.seed + 2000, s.threads, "rendering", {{cond}});
    standardiser.Apply(&pic.features);
    std::vector<int64_t> rows;
    for (int64_t m = 0; m < pic.points.dim(0); ++m)
      if (pic.condition[m] == cond) rows.push_back(m);
    Samples view;
    view.points = Rows(pic.points, rows);
    view.features = Rows(pic.features, rows);
    view.normals = Rows(pic.normals, rows);
    std::vector<double> xyz;
    for (int64_t m : rows)
      for (int c = 0; c < 3; ++c) xyz.push_back(test_shapes[shape_index].points[3 * pic.vertex[m] + c]);
    std::vector<int64_t> every(rows.size());
    for (size_t i = 0; i < every.size(); ++i) every[i] = static_cast<int64_t>(i);
    std::vector<ErrorPanel> panels;
    const std::map<std::string, std::string> titles = {
        {"pca", "PCA"}, {"huber", "Huber"}, {"learned", "learned weights"}};
    for (const auto& method : methods) {
      std::vector<double> e = method == "pca"     ? FitErrors(view, "quadratic", 1.0, s.threads)
                              : method == "huber" ? FitErrors(view, "huber", huber_alpha, s.threads)
                                                  : LearnedErrors(net.get(), view);
      char title[96];
      std::snprintf(title, sizeof title, "%s: RMS %.1f deg", titles.at(method).c_str(), Summarise(e, every).rms);
      panels.push_back({title, e});
    }
    RenderErrorPanels(s.png, xyz, panels,
                      "ddn-normals: " + test_shapes[shape_index].name + ", " + s.conditions[cond].name +
                          ", k = " + std::to_string(s.k) + " (test shape, not seen in training)");
    png_note = test_shapes[shape_index].name + ", " + s.conditions[cond].name;
  }

  if (s.json) {
    nlohmann::json j;
    for (const auto& method : methods) {
      nlohmann::json m = ToJson(Summarise(errors[method], all));
      m["noisy"] = ToJson(Summarise(errors[method], noisy));
      for (size_t c = 0; c < s.conditions.size(); ++c) {
        m["by_condition"][s.conditions[c].name] = ToJson(Summarise(errors[method], by_condition[c]));
        for (size_t sh = 0; sh < test_shapes.size(); ++sh) {
          m["by_shape"][test_shapes[sh].name][s.conditions[c].name] =
              ToJson(Summarise(errors[method], by_shape_condition[sh][c]));
        }
      }
      j["methods"][method] = m;
    }
    j["methods"]["huber"]["alpha"] = huber_alpha;
    j["conditions"] = nlohmann::json::array();
    for (const auto& c : s.conditions)
      j["conditions"].push_back({{"name", c.name}, {"noise_spacings", c.noise}, {"outlier_fraction", c.outliers}});
    j["train_shapes"] = nlohmann::json::array();
    for (const auto& sh : train_shapes) j["train_shapes"].push_back({{"name", sh.name}, {"vertices", sh.size()}});
    j["test_shapes"] = nlohmann::json::array();
    for (const auto& sh : test_shapes) j["test_shapes"].push_back({{"name", sh.name}, {"vertices", sh.size()}});
    j["setting"] = {{"k", s.k},
                    {"train_samples", train.points.dim(0)},
                    {"test_samples_per_shape_and_condition", s.test_samples},
                    {"epochs", s.epochs},
                    {"batch_size", s.batch_size},
                    {"learning_rate", s.learning_rate},
                    {"seed", s.seed},
                    {"quick", s.quick}};
    j["train_seconds"] = train_seconds;
    if (!s.png.empty()) j["png"] = {{"path", s.png}, {"shows", png_note}};
    j["seconds"] = app::SecondsSince(start);
    std::cout << j.dump(2) << std::endl;
  } else {
    std::printf("Unoriented normal error on real scans: RMS angle (degrees), %% of points under 5 and 10 degrees\n");
    std::printf("train: %s; test: %s; k = %d; %lld test points; h = scan spacing\n", train_names.c_str(),
                test_names.c_str(), s.k, static_cast<long long>(M));
    std::printf("%-28s %-24s %-24s %-24s\n", "", "PCA", ("Huber (alpha " + FormatDouble(huber_alpha) + ")").c_str(),
                "learned weights");
    std::printf("%-28s", "condition");
    for (int i = 0; i < 3; ++i) std::printf(" %7s %7s %7s  ", "RMS", "<5", "<10");
    std::printf("\n");
    auto row = [&](const std::string& name, const std::vector<int64_t>& which) {
      std::printf("%-28s", name.c_str());
      for (const auto& method : methods) {
        const Metrics m = Summarise(errors[method], which);
        std::printf(" %7.2f %6.1f%% %6.1f%%  ", m.rms, 100 * m.under5, 100 * m.under10);
      }
      std::printf("\n");
    };
    for (size_t c = 0; c < s.conditions.size(); ++c) row(s.conditions[c].name, by_condition[c]);
    row("all noisy conditions", noisy);
    if (!s.png.empty()) std::printf("picture: %s (%s)\n", s.png.c_str(), png_note.c_str());
    std::printf("training %.0f s, total %.0f s\n", train_seconds, app::SecondsSince(start));
  }
  return 0;
}

int Main(int argc, char** argv) {
  Setting s;
  std::string train, test, noise;
  double outliers = 0.1, outlier_noise = 0.25;
  int render_condition = -1;
  std::string huber_alphas;
  po::options_description desc(
      "ddn-normals: learned per-point normal estimation (DeepFit-style weights + the declarative node fit_plane) on\n"
      "the real scans of Debian's opencv-doc. Trains on some shapes, tests on others against PCA and a Huber fit;\n"
      "prints a table (or JSON) of angle errors per noise condition and writes a PNG.\n\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("quick", "the quick setting (under 2 minutes on 2 cores): fewer samples and epochs")
    ("data", po::value(&s.data), "folder holding the PLY files (or opencv-doc's examples folder); default: "
                                 "$DDN_OPENCV_EXAMPLES, then opencv-doc's install folder")
    ("train", po::value(&train)->default_value("parasaurolophus_low_normals2,rs22_proc2"),
     "training shapes: comma-separated names (found under --data) or PLY paths")
    ("test", po::value(&test)->default_value("bunny,rs1_normals"), "test shapes, as --train")
    ("k", po::value<int>(), "neighbourhood size (default 64)")
    ("noise", po::value(&noise)->default_value("0,0.25,0.5,1"),
     "Gaussian noise levels, standard deviation in units of the scan's spacing h")
    ("outliers", po::value(&outliers)->default_value(0.1, "0.1"),
     "fraction of outliers (moved 2h-6h) in the extra outlier condition; 0 for none")
    ("outlier-noise", po::value(&outlier_noise)->default_value(0.25, "0.25"), "noise level of the outlier condition")
    ("train-samples", po::value<int>(), "training neighbourhoods in all (default 24000, quick 8000)")
    ("test-samples", po::value<int>(), "test points per shape and condition (default 3000, quick 1000)")
    ("epochs", po::value<int>(), "training epochs (default 24, quick 10)")
    ("batch-size", po::value<int>(), "training batch size (default 128)")
    ("lr", po::value<double>(), "Adam learning rate, cosine schedule (default 0.002)")
    ("huber-alphas", po::value(&huber_alphas)->default_value("0.02,0.05,0.1,0.2"),
     "Huber's alpha candidates (units of the neighbourhood radius); the best on the training shapes is used")
    ("threads", po::value(&s.threads)->default_value(0), "threads (0: all cores)")
    ("png", po::value(&s.png)->default_value("normals_error.png"), "PNG to write ('' for none)")
    ("render-shape", po::value(&s.render_shape)->default_value("bunny"), "test shape shown in the PNG")
    ("render-condition", po::value(&render_condition), "index of the condition shown in the PNG (default: the last)")
    ("json", "print the results as JSON on stdout");
  // clang-format on
  app::AddSeedOption(&desc, &s.seed, "seed of the noise, sampling and initialisation");
  po::variables_map vm;
  app::ParseCommandLine(argc, argv, desc, {}, &vm);
  if (vm.count("help")) return app::PrintHelp(desc);
  s.quick = vm.count("quick") > 0;
  s.json = vm.count("json") > 0;
  const bool q = s.quick;
  s.k = app::InRange(vm, "k", 64, 8, 100000, "[8, 100000]");
  s.train_samples = app::InRange(vm, "train-samples", q ? 8000 : 24000, 1, 100000000, "[1, 1e8]");
  s.test_samples = app::InRange(vm, "test-samples", q ? 1000 : 3000, 1, 100000000, "[1, 1e8]");
  s.epochs = app::InRange(vm, "epochs", q ? 10 : 24, 1, 100000, "[1, 100000]");
  s.batch_size = app::InRange(vm, "batch-size", 128, 1, 100000, "[1, 100000]");
  s.learning_rate = app::InRange(vm, "lr", 2e-3, app::kTiny, 10.0, "(0, 10]");
  if (!(outliers >= 0 && outliers < 1)) throw InvalidInput("--outliers must be in [0, 1)");
  if (!(outlier_noise >= 0)) throw InvalidInput("--outlier-noise must be >= 0");
  for (double n : app::ParseList<double>(noise, "noise")) {
    if (!(n >= 0 && n <= 10)) throw InvalidInput("--noise levels must be in [0, 10] spacings");
    s.conditions.push_back({ConditionLabel(n, 0), n, 0});
  }
  if (outliers > 0) s.conditions.push_back({ConditionLabel(outlier_noise, outliers), outlier_noise, outliers});
  s.huber_alphas = app::ParseList<double>(huber_alphas, "huber-alphas");
  for (double a : s.huber_alphas)
    if (!(a > 0)) throw InvalidInput("--huber-alphas must be > 0");
  app::RequireInRange("threads", s.threads, 0, kMaxThreads, "[0, " + std::to_string(kMaxThreads) + "]");
  if (render_condition >= static_cast<int>(s.conditions.size()) || render_condition < -1) {
    throw InvalidInput("--render-condition must be in [0, " + std::to_string(s.conditions.size() - 1) + "]");
  }
  s.render_condition = render_condition;
  for (const auto& name : app::ParseList<std::string>(train, "train")) s.train.push_back(ResolveShape(name, s.data));
  for (const auto& name : app::ParseList<std::string>(test, "test")) s.test.push_back(ResolveShape(name, s.data));
  return Run(s);
}

}  // namespace
}  // namespace ddn::normals

int main(int argc, char** argv) {
  return ddn::app::RunGuarded("ddn-normals", [&] { return ddn::normals::Main(argc, argv); });
}
