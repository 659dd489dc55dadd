// ddn-match: learned keypoint matching through the optimal_transport node, tested on the Graffiti pair.
//
// Test: opencv-doc's graf1.png → graf3.png with its true homography (H1to3p.xml); a match is correct when the
// homography maps the first keypoint within 3 px of the second. Methods, on the same SIFT keypoints (the K
// strongest of each image):
//   ratio_test  Lowe's ratio test on RootSIFT distances (ratio 0.8);
//   sinkhorn    the entropic transport plan of the raw descriptor distances (γ chosen on the training pairs),
//               matches = mutual maxima of the plan holding at least `threshold` of a row's mass;
//   learned     the same read-out of the plan of a learned affinity (learned.h), trained end to end through
//               optimal_transport's implicit backward on synthetic homographies of the other opencv-doc images
//               (training never sees the Graffiti pair).
// Also reported for reference: the ratio test with ORB (1000 keypoints) and with all SIFT keypoints.
// Output: a table on stdout (or JSON with --json), a PNG of the pair with correct (green) and incorrect (red)
// matches of the three methods, progress on stderr. Everything is seeded.
#include <Eigen/Core>
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/common/app.h"
#include "apps/match/learned.h"
#include "apps/match/matching.h"
#include "ddn/error.h"
#include "ddn/files.h"
#include "ddn/parallel.h"
#include "ddn/params.h"

namespace po = boost::program_options;

namespace ddn::match {
namespace {

using Clock = std::chrono::steady_clock;

struct Setting {
  std::string data, png, save;
  bool quick = false, json = false;
  int keypoints = 0, orb_keypoints = 1000;
  SyntheticOptions synthetic;
  LearnedOptions learned;
  double ratio = 0.8, threshold = 0.5;
  std::vector<double> gamma_grid{2, 5, 10, 20, 50, 100};
  double learned_gamma = 0;  // 0: the baseline's
  uint64_t seed = 1;
  int threads = 0;
};

struct Result {
  std::string name, description;
  std::vector<Match> matches;
  std::vector<bool> correct;
  const Keypoints* a = nullptr;
  const Keypoints* b = nullptr;
  double precision_at_count = -1;  // OT methods: precision of the top mutual matches, as many as the ratio test's
  double precision() const { return Precision(correct); }
  int count() const { return static_cast<int>(matches.size()); }
  int correct_count() const { return static_cast<int>(std::count(correct.begin(), correct.end(), true)); }
};

int Run(const Setting& s) {
  const auto start = Clock::now();
  Eigen::setNbThreads(1);
  // Every output is checked before the work (a picture that cannot be written must not cost a training run).
  if (!s.png.empty()) app::CheckImageOutput("--png", s.png);
  if (!s.save.empty()) CheckOutputFile("--save", s.save);
  RequireDistinctOutputs({}, {{"--png", s.png}, {"--save", s.save}});
  const TestPair test = FindGraffiti(s.data);
  const std::string folder = DataFolder(s.data);

  // Training pairs (never the Graffiti images).
  app::Progress make_progress("synthetic pairs", s.synthetic.pairs, 26);
  const std::vector<TrainingPair> pairs = MakeSyntheticPairs(folder, s.synthetic, [&](int done, int total) {
    make_progress.Update(done, std::to_string(done) + "/" + std::to_string(total));
  });
  double truth = 0;
  for (const auto& p : pairs) truth += static_cast<double>(p.truth.size());
  char line[256];
  std::snprintf(line, sizeof line, "%zu pairs of %d keypoints, %.1f true correspondences each, %.0f s", pairs.size(),
                s.synthetic.keypoints, truth / static_cast<double>(pairs.size()), app::SecondsSince(start));
  make_progress.Finish(line);

  // The Sinkhorn baseline's γ, by the ground-truth likelihood on the training pairs.
  const auto t_gamma = Clock::now();
  const double sinkhorn_gamma = ChooseSinkhornGamma(pairs, s.gamma_grid, s.threads);
  std::fprintf(stderr, "%-26s gamma = %g (of %zu values, %.0f s)\n", "sinkhorn baseline", sinkhorn_gamma,
               s.gamma_grid.size(), app::SecondsSince(t_gamma));

  // The learned matcher.
  const auto t_train = Clock::now();
  LearnedOptions learned_options = s.learned;
  learned_options.gamma = s.learned_gamma > 0 ? s.learned_gamma : sinkhorn_gamma;
  LearnedMatcher learned(static_cast<int>(pairs[0].a.descriptors.cols()), learned_options);
  const double loss_before = learned.Loss(pairs);
  std::vector<double> losses;
  {
    std::unique_ptr<app::Progress> bar;
    int current = -1;
    losses = learned.Train(pairs, [&](int epoch, int step, int steps, double loss) {
      if (epoch != current) {
        if (bar) bar->Finish(line);
        current = epoch;
        char label[64];
        std::snprintf(label, sizeof label, "training epoch %d/%d", epoch + 1, s.learned.epochs);
        bar = std::make_unique<app::Progress>(label, steps, 26);
      }
      std::snprintf(line, sizeof line, "loss %.4f  %4.0f s", loss, app::SecondsSince(t_train));
      bar->Update(step, line);
    });
    if (bar) bar->Finish(line);
  }
  const double train_seconds = app::SecondsSince(t_train);
  if (!s.save.empty()) learned.Save(s.save);

  // Test on Graffiti.
  const auto t_test = Clock::now();
  app::Progress test_progress("testing on graf1 -> graf3", 5, 26);
  const Keypoints a = DetectSift(test.image_a, s.keypoints), b = DetectSift(test.image_b, s.keypoints);
  test_progress.Update(1);
  std::vector<Result> results;
  auto add = [&](const std::string& name, const std::string& description, std::vector<Match> matches,
                 const Keypoints* ka, const Keypoints* kb) {
    Result r{name, description, std::move(matches), {}, ka, kb};
    r.correct = Correct(*ka, *kb, r.matches, test.homography);
    results.push_back(std::move(r));
  };
  add("ratio_test", "ratio test " + FormatDouble(s.ratio) + ", SIFT", RatioTest(a, b, s.ratio), &a, &b);
  const RowMatrix sinkhorn_plan = SinkhornPlan(a, b, sinkhorn_gamma, s.threads);
  test_progress.Update(2);
  const int ratio_count = results[0].count();
  add("sinkhorn", "Sinkhorn on raw distances", MutualMatches(sinkhorn_plan, s.threshold), &a, &b);
  results.back().precision_at_count =
      Precision(Correct(a, b, TopMutualMatches(sinkhorn_plan, ratio_count), test.homography));
  const RowMatrix learned_plan = learned.Plan(a, b);
  test_progress.Update(3);
  add("learned", "learned affinity + OT", MutualMatches(learned_plan, s.threshold), &a, &b);
  results.back().precision_at_count =
      Precision(Correct(a, b, TopMutualMatches(learned_plan, ratio_count), test.homography));
  Keypoints orb_a, orb_b;
  const std::vector<Match> orb = OrbRatioTest(test.image_a, test.image_b, s.orb_keypoints, s.ratio, &orb_a, &orb_b);
  add("ratio_test_orb", "ratio test " + FormatDouble(s.ratio) + ", ORB", orb, &orb_a, &orb_b);
  const Keypoints all_a = DetectSift(test.image_a, 0), all_b = DetectSift(test.image_b, 0);
  test_progress.Update(4);
  add("ratio_test_sift_all", "ratio test " + FormatDouble(s.ratio) + ", SIFT", RatioTest(all_a, all_b, s.ratio), &all_a,
      &all_b);
  const int matchable = Matchable(a, b, test.homography);
  std::snprintf(line, sizeof line, "%.0f s", app::SecondsSince(t_test));
  test_progress.Finish(line);

  if (!s.png.empty()) {
    std::vector<DrawnMethod> drawn;
    for (const char* name : {"ratio_test", "sinkhorn", "learned"}) {
      for (const Result& r : results) {
        if (r.name != name) continue;
        char caption[200];
        std::snprintf(caption, sizeof caption, "%s: %d matches, %d correct (%.2f)%s", r.description.c_str(), r.count(),
                      r.correct_count(), r.precision(), drawn.empty() ? "; green right, red wrong" : "");
        drawn.push_back({caption, r.a, r.b, r.matches, r.correct});
      }
    }
    DrawMatches(s.png, test, drawn);
  }

  const double total = app::SecondsSince(start);
  if (s.json) {
    nlohmann::json j;
    j["methods"] = nlohmann::json::object();
    for (const Result& r : results) {
      j["methods"][r.name] = {{"precision", r.precision()},
                              {"matches", r.count()},
                              {"correct", r.correct_count()},
                              {"keypoints", {r.a->size(), r.b->size()}},
                              {"description", r.description}};
      if (r.precision_at_count >= 0) {
        j["methods"][r.name]["precision_at_ratio_test_count"] = r.precision_at_count;
        j["methods"][r.name]["ratio_test_count"] = ratio_count;
      }
    }
    j["test"] = {{"images", {test.image_a, test.image_b}},
                 {"correct_within_pixels", kCorrectPixels},
                 {"keypoints", s.keypoints},
                 {"matchable", matchable}};
    j["setting"] = {{"training_pairs", s.synthetic.pairs},
                    {"training_keypoints", s.synthetic.keypoints},
                    {"epochs", s.learned.epochs},
                    {"batch_size", s.learned.batch_size},
                    {"learning_rate", s.learned.learning_rate},
                    {"gamma", learned_options.gamma},
                    {"map", s.learned.diagonal ? "diagonal" : "full"},
                    {"sinkhorn_gamma", sinkhorn_gamma},
                    {"ratio", s.ratio},
                    {"threshold", s.threshold},
                    {"seed", s.seed},
                    {"quick", s.quick}};
    j["training"] = {{"loss_before", loss_before}, {"loss_per_epoch", losses}, {"seconds", train_seconds}};
    if (!s.png.empty()) j["png"] = s.png;
    j["seconds"] = total;
    std::cout << j.dump(2) << std::endl;
  } else {
    std::printf("Graffiti graf1 -> graf3: match precision (correct = within %g px of the true homography)\n",
                kCorrectPixels);
    std::printf("%-21s %-27s %11s %8s %9s %11s\n", "method", "", "keypoints", "matches", "precision",
                ("prec@" + std::to_string(ratio_count)).c_str());
    for (const Result& r : results) {
      char kp[32], at[32] = "-";
      std::snprintf(kp, sizeof kp, "%d/%d", r.a->size(), r.b->size());
      if (r.precision_at_count >= 0) std::snprintf(at, sizeof at, "%.3f", r.precision_at_count);
      std::printf("%-21s %-27s %11s %8d %9.3f %11s\n", r.name.c_str(), r.description.c_str(), kp, r.count(),
                  r.precision(), at);
    }
    std::printf(
        "prec@%d: precision of the %d mutual maxima of a plan holding the most mass (as many matches as the "
        "ratio test)\n",
        ratio_count, ratio_count);
    std::printf(
        "%d of the %d SIFT keypoints of graf1 have a keypoint of graf3 within %g px (an upper bound on correct "
        "one-to-one matches)\n",
        matchable, a.size(), kCorrectPixels);
    std::printf("training: %d synthetic pairs x %d epochs, loss %.4f -> %.4f (%.0f s); sinkhorn gamma %g\n",
                s.synthetic.pairs, s.learned.epochs, loss_before, losses.empty() ? loss_before : losses.back(),
                train_seconds, sinkhorn_gamma);
    if (!s.png.empty()) std::printf("picture: %s\n", s.png.c_str());
    std::printf("total time: %.0f s\n", total);
  }
  return 0;
}

int Main(int argc, char** argv) {
  Setting s;
  double gamma = 0;
  std::string map_kind;
  po::options_description desc(
      "ddn-match: learned keypoint matching through the optimal_transport node, tested on the Graffiti pair\n"
      "(opencv-doc graf1.png -> graf3.png, true homography H1to3p.xml) against the ratio test and plain Sinkhorn.\n"
      "Prints a precision table (or JSON) and draws the matches in a PNG.\n\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("quick", "the quick setting (well under 2 minutes on 2 cores): fewer pairs, keypoints and epochs")
    ("data", po::value(&s.data), "the opencv-doc data folder (graf1.png, graf3.png, H1to3p.xml and the training "
                                 "images); default: $OPENCV_SAMPLES_DATA_PATH, then Debian's opencv-doc folder")
    ("keypoints", po::value<int>(), "SIFT keypoints per test image (default 1000, quick 500)")
    ("train-pairs", po::value<int>(), "synthetic training pairs (default 300, quick 80)")
    ("train-keypoints", po::value<int>(), "SIFT keypoints per training image (default 128, quick 96)")
    ("epochs", po::value<int>(), "training epochs (default 10, quick 6)")
    ("batch-size", po::value(&s.learned.batch_size)->default_value(8), "training pairs per step")
    ("lr", po::value(&s.learned.learning_rate)->default_value(3e-3, "0.003"), "Adam learning rate (cosine schedule)")
    ("gamma", po::value(&gamma), "gamma of optimal_transport in the learned matcher (default: the Sinkhorn "
                                 "baseline's, chosen on the training pairs)")
    ("map", po::value(&map_kind)->default_value("diagonal"), "the learned map: diagonal (a weight per descriptor "
                                                                "coordinate) or full (a 128x128 matrix)")
    ("ratio", po::value(&s.ratio)->default_value(0.8, "0.8"), "Lowe's ratio of the ratio test")
    ("threshold", po::value(&s.threshold)->default_value(0.5, "0.5"),
     "a mutual maximum of a plan is a match if it holds at least this share of a row's mass")
    ("threads", po::value(&s.threads)->default_value(0), "threads of the optimal_transport batch layer (0: all cores)")
    ("png", po::value(&s.png)->default_value("match_graffiti.png"), "PNG of the matches to write ('' for none)")
    ("save", po::value(&s.save), "save the learned map's parameters to this file")
    ("json", "print the results as JSON on stdout");
  // clang-format on
  app::AddSeedOption(&desc, &s.seed, "seed of the synthetic homographies, shuffling and initialisation");
  po::variables_map vm;
  app::ParseCommandLine(argc, argv, desc, {}, &vm);
  if (vm.count("help")) return app::PrintHelp(desc);
  s.quick = vm.count("quick") > 0;
  s.json = vm.count("json") > 0;
  const bool q = s.quick;
  s.keypoints = app::InRange(vm, "keypoints", q ? 500 : 1000, 2, 1000000, "[2, 1000000]");
  s.synthetic.pairs = app::InRange(vm, "train-pairs", q ? 80 : 300, 1, 1000000, "[1, 1000000]");
  s.synthetic.keypoints = app::InRange(vm, "train-keypoints", q ? 96 : 128, 8, 1000000, "[8, 1000000]");
  s.learned.epochs = app::InRange(vm, "epochs", q ? 6 : 10, 1, 100000, "[1, 100000]");
  s.synthetic.seed = s.seed;
  s.learned.seed = s.seed;
  s.learned.threads = s.threads;
  if (s.learned.batch_size < 1) throw InvalidInput("--batch-size must be at least 1");
  if (!(s.learned.learning_rate > 0)) throw InvalidInput("--lr must be > 0");
  if (vm.count("gamma") && !(gamma > 0 && std::isfinite(gamma))) throw InvalidInput("--gamma must be > 0");
  s.learned_gamma = gamma;
  if (map_kind != "diagonal" && map_kind != "full")
    throw InvalidInput("--map must be diagonal or full, got '" + map_kind + "'");
  s.learned.diagonal = map_kind == "diagonal";
  if (!(s.ratio > 0 && s.ratio <= 1)) throw InvalidInput("--ratio must be in (0, 1]");
  if (!(s.threshold >= 0 && s.threshold <= 1)) throw InvalidInput("--threshold must be in [0, 1]");
  app::RequireInRange("threads", s.threads, 0, kMaxThreads, "[0, " + std::to_string(kMaxThreads) + "]");
  s.synthetic.min_truth = std::max(4, s.synthetic.keypoints / 10);
  return Run(s);
}

}  // namespace
}  // namespace ddn::match

int main(int argc, char** argv) {
  return ddn::app::RunGuarded("ddn-match", [&] { return ddn::match::Main(argc, argv); });
}
