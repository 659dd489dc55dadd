// ddn-pose: camera pose from real chessboard photos with corrupted correspondences, by a declarative PnP node whose
// per-correspondence weights a small network learns end to end (Gould, Hartley & Campbell, "Deep Declarative
// Networks", TPAMI 2022, §6.3, the PnP experiment, here on OpenCV's chessboard photos).
//
// For the photos of OpenCV's stereo-calibration sample (chessboard.h) the clean corners give the true pose of the
// board. Each sample displaces a fraction of the corners (outliers); every method then estimates the pose from the
// same corrupted correspondences: OpenCV's solvePnP and solvePnPRansac, the `pnp` node with uniform weights (plain
// and Huber reprojection error), and the `pnp` node with weights from a small network on the image patch around
// each correspondence (weights_net.h), trained on the training photos by backpropagating the pose error through
// the node. Reported on held-out photos: rotation error in degrees and translation error in mm against the clean
// pose; a table (or --json), the learning curve, and a PNG with the board's axes per method (draw.h).
#include <Eigen/Core>
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/common/app.h"
#include "apps/pose/chessboard.h"
#include "apps/pose/draw.h"
#include "apps/pose/weights_net.h"
#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/graph/optim.h"
#include "ddn/node.h"
#include "ddn/parallel.h"
#include "ddn/params.h"
#include "ddn/random.h"

namespace po = boost::program_options;

namespace ddn::pose {
namespace {

using Clock = std::chrono::steady_clock;

struct Setting {
  std::string data;
  std::vector<std::string> train_views, test_views;
  double outliers = 0.3, min_px = 10, max_px = 60;
  int epochs = 0, train_samples = 0, test_samples = 0, batch_size = 16, hidden = 32;
  double learning_rate = 3e-3, ransac_px = 8.0, huber_px = 2.0;
  std::string learned_objective = "reproj";
  uint64_t seed = 1;
  int threads = 0;
  std::string png;
  bool json = false, quick = false;
};

// The items of a comma-separated list; InvalidInput if there are none.
std::vector<std::string> ParseNames(const std::string& text, const std::string& option) {
  std::vector<std::string> out = app::SplitList(text);
  if (out.empty()) throw InvalidInput("--" + option + " is empty");
  return out;
}

// ---- Batches --------------------------------------------------------------------------------------------------

graph::TensorMap Feeds(const std::vector<Sample>& samples, const std::vector<View>& views, const Intrinsics& K,
                       size_t begin, size_t end) {
  const int64_t B = static_cast<int64_t>(end - begin);
  Tensor features({B, kCorners, kFeatures}), p2d({B, kCorners, 2}), p3d({B, kCorners, 3}), k({B, 4}), target({B, 6});
  const std::vector<double> board = BoardPoints();
  for (int64_t b = 0; b < B; ++b) {
    const Sample& s = samples[begin + b];
    std::copy(s.features.begin(), s.features.end(), features.problem(b));
    std::copy(s.points.begin(), s.points.end(), p2d.problem(b));
    std::copy(board.begin(), board.end(), p3d.problem(b));
    const double kk[4] = {K.fx, K.fy, K.cx, K.cy};
    std::copy(kk, kk + 4, k.problem(b));
    std::copy(views[s.view].pose.begin(), views[s.view].pose.end(), target.problem(b));
  }
  return {{"features", features}, {"p2d", p2d}, {"p3d", p3d}, {"K", k}, {"target", target}};
}

struct Estimates {
  std::vector<Pose> poses;
  std::vector<char> valid;
  std::vector<std::vector<double>> weights;  // learned weights only
};

// The learned-weights pose of every sample (evaluation mode, chunks of 64).
Estimates RunNet(WeightsNet* net, const std::vector<Sample>& samples, const std::vector<View>& views,
                 const Intrinsics& K) {
  Estimates e;
  for (size_t begin = 0; begin < samples.size(); begin += 64) {
    const size_t end = std::min(samples.size(), begin + 64);
    net->graph.Forward(Feeds(samples, views, K, begin, end), {net->pose}, graph::Mode::kEval);
    const Tensor& y = net->graph.Value(net->pose);
    const Tensor& w = net->graph.Value(net->weights);
    for (int64_t b = 0; b < y.dim(0); ++b) {
      Pose p;
      std::copy(y.problem(b), y.problem(b) + 6, p.begin());
      e.poses.push_back(p);
      e.valid.push_back(1);
      e.weights.emplace_back(w.problem(b), w.problem(b) + kCorners);
    }
  }
  return e;
}

// The pnp node with uniform weights (objective, alpha in pixels) on every sample.
Estimates RunUniform(const std::string& objective, double alpha, const std::vector<Sample>& samples,
                     const std::vector<View>& views, const Intrinsics& K, int threads) {
  const auto node = MakeNode("pnp", {{"objective", objective}, {"alpha", FormatDouble(alpha)}});
  graph::TensorMap feeds = Feeds(samples, views, K, 0, samples.size());
  RunOptions run;
  run.threads = threads;
  const ForwardResult r = Forward(*node, {{"p2d", feeds["p2d"]}, {"p3d", feeds["p3d"]}, {"K", feeds["K"]}}, run);
  Estimates e;
  const Tensor& y = r.outputs.at("pose");
  for (int64_t b = 0; b < y.dim(0); ++b) {
    Pose p;
    std::copy(y.problem(b), y.problem(b) + 6, p.begin());
    e.poses.push_back(p);
    e.valid.push_back(1);
  }
  return e;
}

struct Summary {
  std::string method;
  std::vector<double> rotation_deg, translation_mm;  // per sample (failures: +inf)
  int failures = 0;
};

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double at = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(at)), hi = std::min(v.size() - 1, lo + 1);
  if (!std::isfinite(v[hi])) return v[hi];
  return v[lo] + (at - lo) * (v[hi] - v[lo]);
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

Summary Summarise(const std::string& method, const Estimates& e, const std::vector<Sample>& samples,
                  const std::vector<View>& views) {
  Summary s;
  s.method = method;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!e.valid[i]) {
      s.rotation_deg.push_back(INFINITY);
      s.translation_mm.push_back(INFINITY);
      ++s.failures;
      continue;
    }
    s.rotation_deg.push_back(RotationErrorDeg(e.poses[i], views[samples[i].view].pose));
    s.translation_mm.push_back(TranslationErrorMm(e.poses[i], views[samples[i].view].pose));
  }
  return s;
}

nlohmann::json Stats(const std::vector<double>& v) {
  return {{"median", Percentile(v, 0.5)}, {"mean", Mean(v)}, {"p90", Percentile(v, 0.9)}};
}

// ---- The experiment ---------------------------------------------------------------------------------------------

int Run(const Setting& s) {
  const auto start = Clock::now();
  Eigen::setNbThreads(1);
  if (!s.png.empty()) app::CheckImageOutput("--png", s.png);  // before the training, not after it
  const std::string folder = FindChessboardData(s.data);
  const Intrinsics K = LoadIntrinsics(folder);
  std::vector<std::string> names = s.train_views;
  names.insert(names.end(), s.test_views.begin(), s.test_views.end());
  const std::vector<View> views = LoadViews(folder, names, K);
  const int train_count = static_cast<int>(s.train_views.size());
  std::fprintf(stderr,
               "ddn-pose: %s; %d training and %zu test photos; %.0f%% of the %d corners displaced by %g-%g px\n",
               folder.c_str(), train_count, s.test_views.size(), 100 * s.outliers, kCorners, s.min_px, s.max_px);

  Rng rng(s.seed);
  std::vector<Sample> test;
  for (size_t v = 0; v < s.test_views.size(); ++v)
    for (int k = 0; k < s.test_samples; ++k) {
      const int index = train_count + static_cast<int>(v);
      test.push_back(Corrupt(views[index], index, K, s.outliers, s.min_px, s.max_px, &rng));
    }

  auto net = BuildWeightsNet(s.hidden, s.learned_objective, s.huber_px, s.seed, s.threads);
  graph::AdamOptions adam_options;
  adam_options.learning_rate = s.learning_rate;
  graph::Adam adam(net->graph.TrainableParameters(), adam_options);
  graph::LearningRateSchedule schedule;
  schedule.kind = graph::LearningRateSchedule::kCosine;
  schedule.base = s.learning_rate;
  schedule.minimum = 0.05 * s.learning_rate;
  schedule.total_epochs = s.epochs;

  // Learning curve: test errors of the learned-weights pose before training and after each epoch.
  nlohmann::json curve = nlohmann::json::array();
  auto record = [&](int epoch, double train_loss) {
    const Summary t = Summarise("learned", RunNet(net.get(), test, views, K), test, views);
    curve.push_back({{"epoch", epoch},
                     {"train_loss", train_loss},
                     {"test_rotation_deg_median", Percentile(t.rotation_deg, 0.5)},
                     {"test_translation_mm_median", Percentile(t.translation_mm, 0.5)}});
    return t;
  };
  record(0, NAN);
  const auto train_start = Clock::now();
  for (int epoch = 0; epoch < s.epochs; ++epoch) {
    adam.set_learning_rate(schedule.At(epoch));
    std::vector<Sample> train;
    for (int v = 0; v < train_count; ++v)
      for (int k = 0; k < s.train_samples; ++k)
        train.push_back(Corrupt(views[v], v, K, s.outliers, s.min_px, s.max_px, &rng));
    rng.Shuffle(&train);
    const int batches = static_cast<int>((train.size() + s.batch_size - 1) / s.batch_size);
    char label[64];
    std::snprintf(label, sizeof label, "train epoch %d/%d", epoch + 1, s.epochs);
    app::Progress progress(label, batches, 22);
    double loss_sum = 0;
    size_t seen = 0;
    char extra[128] = "";
    for (int b = 0; b < batches; ++b) {
      const size_t begin = static_cast<size_t>(b) * s.batch_size, end = std::min(train.size(), begin + s.batch_size);
      net->graph.Forward(Feeds(train, views, K, begin, end), {net->loss}, graph::Mode::kTrain);
      net->graph.ZeroGrad();
      net->graph.Backward(net->loss);
      adam.Step();
      loss_sum += net->graph.Value(net->loss)[0] * (end - begin);
      seen += end - begin;
      std::snprintf(extra, sizeof extra, "loss %.4f  %4.0fs", loss_sum / seen, app::SecondsSince(train_start));
      progress.Update(b + 1, extra);
    }
    const Summary t = record(epoch + 1, loss_sum / seen);
    std::snprintf(extra, sizeof extra, "loss %.4f  test median %.2f deg %.1f mm  %4.0fs", loss_sum / seen,
                  Percentile(t.rotation_deg, 0.5), Percentile(t.translation_mm, 0.5), app::SecondsSince(train_start));
    progress.Finish(extra);
  }
  const double train_seconds = app::SecondsSince(train_start);

  // Every method on the test samples.
  app::Progress progress("evaluate", 5, 22);
  std::vector<Summary> results;
  Estimates cv_plain, cv_ransac;
  for (const Sample& smp : test) {
    Pose p;
    const bool ok = OpenCvSolvePnP(smp, K, &p);
    cv_plain.poses.push_back(p);
    cv_plain.valid.push_back(ok);
    const bool ok_r = OpenCvSolvePnPRansac(smp, K, s.ransac_px, &p);
    cv_ransac.poses.push_back(p);
    cv_ransac.valid.push_back(ok_r);
  }
  progress.Update(2, "");
  const Estimates uniform = RunUniform("reproj", 1.0, test, views, K, s.threads);
  const Estimates huber = RunUniform("reproj_huber", s.huber_px, test, views, K, s.threads);
  progress.Update(4, "");
  const Estimates learned = RunNet(net.get(), test, views, K);
  progress.Finish("done");
  char name[128];
  results.push_back(Summarise("OpenCV solvePnP (iterative, all points)", cv_plain, test, views));
  std::snprintf(name, sizeof name, "OpenCV solvePnPRansac (%g px)", s.ransac_px);
  results.push_back(Summarise(name, cv_ransac, test, views));
  results.push_back(Summarise("pnp node, uniform weights, reproj", uniform, test, views));
  std::snprintf(name, sizeof name, "pnp node, uniform weights, reproj_huber %g px", s.huber_px);
  results.push_back(Summarise(name, huber, test, views));
  const std::string learned_name =
      "pnp node, learned weights, " + s.learned_objective +
      (s.learned_objective == "reproj_huber" ? " " + FormatDouble(s.huber_px) + " px" : std::string());
  results.push_back(Summarise(learned_name, learned, test, views));

  // What the network learned: mean weight of correct and displaced corners (test samples).
  double w_in = 0, w_out = 0;
  int n_in = 0, n_out = 0;
  for (size_t i = 0; i < test.size(); ++i)
    for (int c = 0; c < kCorners; ++c) {
      if (test[i].outlier[c]) {
        w_out += learned.weights[i][c];
        ++n_out;
      } else {
        w_in += learned.weights[i][c];
        ++n_in;
      }
    }
  w_in /= std::max(n_in, 1);
  w_out /= std::max(n_out, 1);

  char caption[256];
  std::snprintf(caption, sizeof caption,
                "Board axes per method (grey: pose from clean corners). %.0f%% of corners displaced %g-%g px; "
                "red: displaced, green: correct",
                100 * s.outliers, s.min_px, s.max_px);
  if (!s.png.empty()) {
    // Two test photos (the first sample of the first and the last test photo).
    std::vector<Sample> shown;
    std::vector<std::vector<Tile>> rows;
    for (size_t pick : {size_t{0}, test.size() - static_cast<size_t>(s.test_samples)}) {
      if (!shown.empty() && pick == 0) break;
      shown.push_back(test[pick]);
      std::vector<Tile> row;
      auto tile = [&](const std::string& label, const Estimates& e, bool weights) {
        Tile t;
        t.valid = e.valid[pick];
        t.pose = e.poses[pick];
        char title[160];
        if (t.valid) {
          std::snprintf(title, sizeof title, "%s: %.2f deg, %.1f mm", label.c_str(),
                        RotationErrorDeg(t.pose, views[test[pick].view].pose),
                        TranslationErrorMm(t.pose, views[test[pick].view].pose));
        } else {
          std::snprintf(title, sizeof title, "%s: no pose", label.c_str());
        }
        t.title = title;
        if (weights) t.weights = e.weights[pick];
        return t;
      };
      row.push_back(tile("solvePnP", cv_plain, false));
      row.push_back(tile("solvePnPRansac", cv_ransac, false));
      row.push_back(tile("pnp uniform", uniform, false));
      row.push_back(tile("pnp Huber", huber, false));
      row.push_back(tile("pnp learned w", learned, true));
      rows.push_back(row);
    }
    WritePoseFigure(s.png, caption, views, shown, rows, K);
  }

  if (s.json) {
    nlohmann::json j;
    j["data"] = folder;
    j["setting"] = {{"train_views", s.train_views},
                    {"test_views", s.test_views},
                    {"outlier_fraction", s.outliers},
                    {"outlier_px", {s.min_px, s.max_px}},
                    {"epochs", s.epochs},
                    {"train_samples_per_view", s.train_samples},
                    {"test_samples_per_view", s.test_samples},
                    {"batch_size", s.batch_size},
                    {"hidden", s.hidden},
                    {"learning_rate", s.learning_rate},
                    {"ransac_px", s.ransac_px},
                    {"huber_px", s.huber_px},
                    {"learned_objective", s.learned_objective},
                    {"seed", s.seed}};
    j["results"] = nlohmann::json::array();
    for (const auto& r : results) {
      j["results"].push_back({{"method", r.method},
                              {"rotation_deg", Stats(r.rotation_deg)},
                              {"translation_mm", Stats(r.translation_mm)},
                              {"failures", r.failures}});
    }
    j["learning_curve"] = curve;
    j["learned_weight_mean"] = {{"correct", w_in}, {"displaced", w_out}};
    if (!s.png.empty()) j["png"] = s.png;
    j["train_seconds"] = train_seconds;
    j["seconds"] = app::SecondsSince(start);
    std::cout << j.dump(2) << std::endl;
  } else {
    std::printf(
        "Camera pose on OpenCV's chessboard photos: %zu test samples (%zu held-out photos x %d), %.0f%% of the "
        "%d corners displaced by %g-%g px\n",
        test.size(), s.test_views.size(), s.test_samples, 100 * s.outliers, kCorners, s.min_px, s.max_px);
    std::printf("errors against the pose from the clean corners\n\n");
    std::printf("%-48s %24s   %24s\n", "", "rotation error (deg)", "translation error (mm)");
    std::printf("%-48s %8s %7s %7s   %8s %7s %7s\n", "method", "median", "mean", "p90", "median", "mean", "p90");
    for (const auto& r : results) {
      std::printf("%-48s %8.3f %7.3f %7.3f   %8.2f %7.2f %7.2f", r.method.c_str(), Percentile(r.rotation_deg, 0.5),
                  Mean(r.rotation_deg), Percentile(r.rotation_deg, 0.9), Percentile(r.translation_mm, 0.5),
                  Mean(r.translation_mm), Percentile(r.translation_mm, 0.9));
      if (r.failures) std::printf("  (%d without a pose)", r.failures);
      std::printf("\n");
    }
    std::printf("\nlearning curve (learned weights, test medians):");
    for (const auto& c : curve) {
      std::printf("%s epoch %d: %.3f deg %.2f mm", c["epoch"].get<int>() % 4 == 0 ? "\n " : ";", c["epoch"].get<int>(),
                  c["test_rotation_deg_median"].get<double>(), c["test_translation_mm_median"].get<double>());
    }
    std::printf("\nmean learned weight: correct corners %.3f, displaced corners %.3f\n", w_in, w_out);
    if (!s.png.empty()) std::printf("figure: %s\n", s.png.c_str());
    std::printf("training %.0f s, total %.0f s\n", train_seconds, app::SecondsSince(start));
  }
  return 0;
}

int Main(int argc, char** argv) {
  Setting s;
  std::string train_views, test_views, outlier_px;
  po::options_description desc(
      "ddn-pose: camera pose from OpenCV's chessboard photos with corrupted corners. A small network learns a\n"
      "weight per correspondence from its image patch, trained end to end through the declarative `pnp` node;\n"
      "compared with OpenCV's solvePnP and solvePnPRansac and the node with uniform weights on held-out photos.\n"
      "Prints a table (or --json) and writes a PNG with the board's axes per method.\n\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("quick", "the quick setting (well under 2 minutes on 2 cores): fewer epochs and samples")
    ("data", po::value(&s.data), "folder with left01.jpg ... left14.jpg and left_intrinsics.yml; default: search "
                                 "$OPENCV_SAMPLES_DATA_PATH and the opencv-doc install")
    ("train-views", po::value(&train_views)->default_value("left01,left02,left03,left04,left05,left06,left07,left08,"
                                                           "left09"), "photos to train on")
    ("test-views", po::value(&test_views)->default_value("left11,left12,left13,left14"), "held-out photos")
    ("outliers", po::value(&s.outliers)->default_value(0.3, "0.3"), "fraction of the 54 corners displaced")
    ("outlier-px", po::value(&outlier_px)->default_value("10,60"), "MIN,MAX displacement of an outlier, pixels")
    ("epochs", po::value<int>(), "training epochs (default 60, quick 20)")
    ("train-samples", po::value<int>(), "corruptions per training photo per epoch (default 24, quick 12)")
    ("test-samples", po::value<int>(), "corruptions per test photo (default 50, quick 25)")
    ("batch-size", po::value(&s.batch_size)->default_value(16), "training batch size")
    ("hidden", po::value(&s.hidden)->default_value(32), "width of the network's hidden layers")
    ("lr", po::value(&s.learning_rate)->default_value(3e-3, "0.003"), "Adam learning rate (cosine schedule)")
    ("ransac-px", po::value(&s.ransac_px)->default_value(8.0, "8"), "solvePnPRansac's reprojection threshold, pixels")
    ("huber-px", po::value(&s.huber_px)->default_value(2.0, "2"), "Huber threshold of the reproj_huber objectives, pixels")
    ("learned-objective", po::value(&s.learned_objective)->default_value("reproj"),
     "objective of the pnp node with learned weights: reproj or reproj_huber")
    ("threads", po::value(&s.threads)->default_value(0), "threads of the pnp node's batch layer (0: all cores)")
    ("png", po::value(&s.png)->default_value("pose_axes.png"), "figure to write ('' for none)")
    ("json", "print the results as JSON on stdout");
  // clang-format on
  app::AddSeedOption(&desc, &s.seed, "seed of the corruptions and the initialisation");
  po::variables_map vm;
  app::ParseCommandLine(argc, argv, desc, {}, &vm);
  if (vm.count("help")) return app::PrintHelp(desc);
  s.quick = vm.count("quick") > 0;
  s.json = vm.count("json") > 0;
  s.epochs = app::InRange(vm, "epochs", s.quick ? 20 : 60, 0, 100000, "[0, 100000]");
  s.train_samples = app::InRange(vm, "train-samples", s.quick ? 12 : 24, 1, 1000000, "[1, 1000000]");
  s.test_samples = app::InRange(vm, "test-samples", s.quick ? 25 : 50, 1, 1000000, "[1, 1000000]");
  s.train_views = ParseNames(train_views, "train-views");
  s.test_views = ParseNames(test_views, "test-views");
  const std::vector<double> px = app::ParseList<double>(outlier_px, "outlier-px");
  if (px.size() != 2) throw InvalidInput("--outlier-px must be MIN,MAX");
  s.min_px = px[0];
  s.max_px = px[1];
  if (!(s.min_px >= 0 && s.max_px >= s.min_px)) throw InvalidInput("--outlier-px needs 0 <= MIN <= MAX");
  if (!(s.outliers >= 0 && s.outliers < 0.9)) throw InvalidInput("--outliers must be in [0, 0.9)");
  if (s.batch_size < 1 || s.hidden < 1) throw InvalidInput("--batch-size and --hidden must be >= 1");
  if (!(s.learning_rate > 0)) throw InvalidInput("--lr must be > 0");
  if (!(s.ransac_px > 0) || !(s.huber_px > 0)) throw InvalidInput("--ransac-px and --huber-px must be > 0");
  app::RequireInRange("threads", s.threads, 0, kMaxThreads, "[0, " + std::to_string(kMaxThreads) + "]");
  if (s.learned_objective != "reproj" && s.learned_objective != "reproj_huber") {
    throw InvalidInput("--learned-objective must be reproj or reproj_huber, got '" + s.learned_objective + "'");
  }
  return Run(s);
}

}  // namespace
}  // namespace ddn::pose

int main(int argc, char** argv) {
  return ddn::app::RunGuarded("ddn-pose", [&] { return ddn::pose::Main(argc, argv); });
}
