#include "apps/bilevel/app.h"

#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "apps/bilevel/plot.h"
#include "apps/common/app.h"
#include "apps/ddn/json_io.h"
#include "bilevel/bilevel.h"
#include "bilevel/node_problem.h"
#include "bilevel/outer_loss.h"
#include "bilevel/registry.h"
#include "bilevel/tabular.h"
#include "bilevel/tv_denoise.h"
#include "datasets/csv.h"
#include "datasets/image_io.h"
#include "ddn/error.h"
#include "ddn/files.h"
#include "ddn/node.h"
#include "ddn/params.h"
#include "ddn/strings.h"

namespace ddn::bilevel {
namespace {

namespace po = boost::program_options;
using datasets::AlignColumns;
using datasets::CsvOptions;
using datasets::CsvTable;
using datasets::LoadImage;
using datasets::MissingValues;
using datasets::ReadCsv;
using datasets::SaveImage;
using datasets::SplitTarget;
using Json = nlohmann::ordered_json;

constexpr int kMaxGrid = 10000;
constexpr int kMaxIterations = 100000;

struct Settings {
  std::string problem;
  std::string train, val, target, dataset, data_dir;
  std::string features, drop;  // column choice (comma-separated); empty: every column but the target
  std::string na = "refuse";   // missing values: refuse or drop (the row)
  bool per_feature = false;
  int grid = 0;
  std::string plot;
  int max_iterations = 100;
  double init = 0;
  double lower = 0, upper = 0;  // bounds of every hyperparameter; 0: the problem's
  std::string eval_at;          // evaluate L and dL/dθ here instead of optimising
  double ridge = 0;
  double outliers = 0;  // robust-regression: fraction of training targets replaced by gross errors
  int start_grid = -1;  // points of the coarse grid the optimiser starts from; < 0: the problem's default
  bool quiet = false;
  // tv-denoise
  std::string train_image, val_images, output;
  double noise = 0.1, epsilon = 0.01;
  uint64_t seed = 1;
  int size = 0;
  // a registered node with a named outer loss
  std::string request, outer_loss, hyperparameters;
};

std::string JoinPath(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

Json ThetaJson(const Problem& problem, const Eigen::VectorXd& theta) {
  // Families of hyperparameters are one object each (the report hook: Problem::HyperparameterKey).
  Json j = Json::object();
  for (int k = 0; k < problem.NumHyperparameters(); ++k) {
    const auto [family, member] = problem.HyperparameterKey(k);
    if (member.empty()) {
      j[family] = theta[k];
    } else {
      if (!j.contains(family)) j[family] = Json::object();
      j[family][member] = theta[k];
    }
  }
  return j;
}

// Per-hyperparameter bounds, the gradient and which bound holds a hyperparameter (JSON "bounds", "hypergradient",
// "at_bound"): the answer's signed, unprojected dL/dθ, so that a hyperparameter held at a bound shows how hard it
// pushes.
void BoundsJson(const Problem& problem, const OptimizeResult& r, const Eigen::VectorXd& grad_theta, Json* j) {
  (*j)["bounds"] = {{"lower", ThetaJson(problem, r.lower)}, {"upper", ThetaJson(problem, r.upper)}};
  (*j)["hypergradient"] = ThetaJson(problem, grad_theta);
  Json held = Json::object();  // keyed like "hyperparameters" (per-feature λ: "lambda": {"age": "upper", ...})
  for (size_t k = 0; k < r.at_bound.size(); ++k) {
    if (r.at_bound[k] == 0) continue;
    const auto [family, member] = problem.HyperparameterKey(static_cast<int>(k));
    const char* side = r.at_bound[k] < 0 ? "lower" : "upper";
    if (member.empty()) {
      held[family] = side;
    } else {
      held[family][member] = side;
    }
  }
  if (!held.empty()) (*j)["at_bound"] = held;
}

// One stderr line per hyperparameter held at a bound: its value, its gradient and how to move the bound.
void ReportBounds(const Problem& problem, const OptimizeResult& r, std::ostream& err, bool quiet) {
  if (quiet) return;
  const auto names = problem.HyperparameterNames();
  int shown = 0;
  for (size_t k = 0; k < r.at_bound.size(); ++k) {
    if (r.at_bound[k] == 0) continue;
    if (++shown > 3) {
      err << "ddn bilevel " << problem.name() << ": (more hyperparameters at bounds: see \"at_bound\" in the JSON)\n";
      break;
    }
    const Eigen::Index i = static_cast<Eigen::Index>(k);
    err << "ddn bilevel " << problem.name() << ": " << names[k] << " stopped at its "
        << (r.at_bound[k] < 0 ? "lower" : "upper") << " bound "
        << FormatDouble(r.at_bound[k] < 0 ? r.lower[i] : r.upper[i]) << ", where the loss still decreases"
        << " (dL/d" << names[k] << " = " << FormatDouble(r.grad_log[i] / r.theta[i]) << "; move the bound with --"
        << (r.at_bound[k] < 0 ? "lower" : "upper") << ")\n";
  }
}

// The problem's own report values (Problem::ReportValues: e.g. logistic regression's accuracy and classes).
void AddReportValues(const Problem& problem, Json* j) {
  for (const auto& v : problem.ReportValues()) {
    if (v.integer) {
      (*j)[v.name] = static_cast<long long>(v.value);
    } else {
      (*j)[v.name] = v.value;
    }
  }
}

Json HistoryJson(const Problem& problem, const OptimizeResult& r, const std::string& phase, int solves_before) {
  Json h = Json::array();
  for (const auto& rec : r.history) {
    Json e;
    if (!phase.empty()) e["phase"] = phase;
    e["iteration"] = rec.iteration;
    e["hyperparameters"] = ThetaJson(problem, rec.theta);
    e["outer_loss"] = rec.loss;
    e["gradient_norm"] = rec.grad_norm;
    e["inner_solves"] = solves_before + rec.inner_solves;
    h.push_back(e);
  }
  return h;
}

Json ModelJson(const LinearModel& m) {
  Json weights = Json::object();
  const bool multi = m.weights.cols() > 1;
  for (size_t j = 0; j < m.feature_names.size(); ++j) {
    const Eigen::Index r = static_cast<Eigen::Index>(j);
    if (multi) {
      std::vector<double> per(m.weights.cols());
      for (Eigen::Index k = 0; k < m.weights.cols(); ++k) per[k] = m.weights(r, k);
      weights[m.feature_names[j]] = per;
    } else {
      weights[m.feature_names[j]] = m.weights(r, 0);
    }
  }
  Json s;
  s["weights"] = weights;
  if (multi) {
    s["intercept"] = std::vector<double>(m.intercept.data(), m.intercept.data() + m.intercept.size());
  } else {
    s["intercept"] = m.intercept[0];
  }
  if (!m.classes.empty()) s["classes"] = m.classes;
  return s;
}

Json GridJson(const GridResult& g, const std::string& name) {
  Json j;
  j["points"] = g.values.size();
  j["range"] = {g.values.front(), g.values.back()};
  j["hyperparameters"] = {{name, g.best_value}};
  j["outer_loss"] = g.best_loss;
  j["inner_solves"] = g.inner_solves;
  j["seconds"] = g.seconds;
  return j;
}

OptimizerOptions MakeOptions(const Settings& s, const Problem& problem, std::ostream& err) {
  OptimizerOptions o;
  o.max_iterations = s.max_iterations;
  o.lower = problem.LowerBounds();
  o.upper = problem.UpperBounds();
  if (s.lower > 0) o.lower.setConstant(s.lower);
  if (s.upper > 0) o.upper.setConstant(s.upper);
  if (s.lower > 0 || s.upper > 0) {
    for (Eigen::Index k = 0; k < o.lower.size(); ++k) {
      if (!(o.lower[k] < o.upper[k])) {
        throw InvalidInput("the bounds of " + problem.HyperparameterNames()[k] + " are empty: lower " +
                           FormatDouble(o.lower[k]) + " >= upper " + FormatDouble(o.upper[k]) + " (--lower/--upper)");
      }
    }
  }
  if (!s.quiet) {
    const auto names = problem.HyperparameterNames();
    o.on_iterate = [&err, names](int it, const Evaluation& e, int solves) {
      std::ostringstream line;
      line << "  iter " << std::setw(3) << it << "  loss " << std::setprecision(10) << e.loss;
      if (e.theta.size() == 1) {
        line << "  " << names[0] << " " << std::setprecision(6) << e.theta[0];
      } else {
        line << "  " << names.size() << " hyperparameters in [" << std::setprecision(3) << e.theta.minCoeff() << ", "
             << e.theta.maxCoeff() << "]";
      }
      line << "  |dL/dlog(theta)| " << std::setprecision(3) << e.grad_log.lpNorm<Eigen::Infinity>() << "  inner solves "
           << solves << " (last: " << e.status.iterations << " Newton steps)\n";
      err << line.str() << std::flush;
    };
  }
  return o;
}

// --init (one value for every hyperparameter) or the problem's default start clamped into the bounds; --init
// outside the bounds is an error, not a silent clamp.
Eigen::VectorXd StartingPoint(const Settings& s, const Problem& problem, const OptimizerOptions& o) {
  if (!(s.init > 0)) return problem.InitialHyperparameters().cwiseMax(o.lower).cwiseMin(o.upper);
  const auto names = problem.HyperparameterNames();
  for (Eigen::Index k = 0; k < o.lower.size(); ++k) {
    if (!(s.init >= o.lower[k] && s.init <= o.upper[k])) {
      throw InvalidInput("--init " + FormatDouble(s.init) + " is outside the bounds of " + names[k] + ", [" +
                         FormatDouble(o.lower[k]) + ", " + FormatDouble(o.upper[k]) + "] (--lower/--upper)");
    }
  }
  return Eigen::VectorXd::Constant(problem.NumHyperparameters(), s.init);
}

// --eval-at: one value for every hyperparameter, or one each ("0.1" or "0.1,0.2,...").
Eigen::VectorXd ParseEvalAt(const std::string& text, const Problem& problem) {
  std::vector<double> values;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !(v > 0) || !std::isfinite(v)) {
      throw InvalidInput("--eval-at: " + QuoteForMessage(item) + " is not a finite number > 0");
    }
    values.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const int m = problem.NumHyperparameters();
  if (values.size() == 1) return Eigen::VectorXd::Constant(m, values[0]);
  if (static_cast<int>(values.size()) != m) {
    throw InvalidInput("--eval-at: " + std::to_string(values.size()) + " values, " + problem.name() + " has " +
                       std::to_string(m) + " hyperparameters (give one value, or one each)");
  }
  return Eigen::Map<const Eigen::VectorXd>(values.data(), m);
}

// --eval-at: the outer loss and the signed hypergradient at θ (one inner solve and one implicit backward; no
// optimisation). The problem is left solved at θ.
Json EvaluateAt(const Settings& s, Problem* problem, const Eigen::VectorXd& theta, std::ostream& err) {
  const auto start = std::chrono::steady_clock::now();
  const Evaluation e = Evaluate(problem, theta);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Json j;
  j["problem"] = s.problem;
  j["hyperparameters"] = ThetaJson(*problem, theta);
  j["outer_loss"] = e.loss;
  j["hypergradient"] = ThetaJson(*problem, e.grad_theta);
  j["hypergradient_log"] = ThetaJson(*problem, e.grad_log);
  j["inner_solves"] = 1;
  j["newton_steps"] = e.status.iterations;
  if (!e.status.ok()) j["status"] = e.status.note;
  j["seconds"] = seconds;
  if (!s.quiet) {
    std::ostringstream line;
    line << "ddn bilevel " << s.problem << ": at the given hyperparameters the outer loss is " << std::setprecision(10)
         << e.loss << ", |dL/dtheta| " << std::setprecision(3) << e.grad_theta.lpNorm<Eigen::Infinity>() << "\n";
    err << line.str();
  }
  return j;
}

void Progress(const Settings& s, std::ostream& err, const std::string& text) {
  if (!s.quiet) err << "ddn bilevel " << s.problem << ": " << text << "\n" << std::flush;
}

// The curve of the plot's right panel: the --grid search if there is one, else a 60-point grid of its own (60
// inner solves: reported on stderr as they go, and in the JSON's "plot" with their time, apart from the
// optimisation's "seconds").
PlotCurve CurveFor(const Settings& s, Problem* problem, const GridResult* grid, double lo, double hi, std::ostream& err,
                   Json* plot) {
  PlotCurve c;
  if (grid) {
    c.values = grid->values;
    c.losses = grid->losses;
    return c;
  }
  constexpr int kPoints = 60;
  const std::string label =
      "ddn bilevel " + s.problem + ": plot: outer loss on a " + std::to_string(kPoints) + "-point grid";
  std::function<void(int, int)> progress;
  if (!s.quiet) {
    progress = [&err, &label](int done, int total) {
      err << "\r" << label << " " << done << "/" << total << (done == total ? "\n" : "") << std::flush;
    };
  }
  const GridResult g = GridSearch(problem, kPoints, lo, hi, progress);
  (*plot)["grid_points"] = kPoints;
  (*plot)["inner_solves"] = g.inner_solves;
  c.values = g.values;
  c.losses = g.losses;
  return c;
}

// What the JSON reports of a file beyond its rows (the table itself is not kept: large files are held once, as X).
struct CsvFacts {
  char separator = ',';
  int dropped_rows = 0;
};

Dataset LoadDataset(const std::string& path, const CsvOptions& options, const std::string& target, CsvFacts* facts) {
  const CsvTable table = ReadCsv(path, options);
  facts->separator = table.separator;
  facts->dropped_rows = table.dropped_rows;
  return SplitTarget(table, target);
}

Json DataJson(const Settings& s, const CsvFacts& train_table, const CsvFacts& val_table, const Dataset& train,
              const Dataset& val) {
  Json d = {{"train", s.train},         {"val", s.val},
            {"target", s.target},       {"train_rows", train.X.rows()},
            {"val_rows", val.X.rows()}, {"features", train.feature_names.size()}};
  if (s.problem == "robust-regression") d["outliers"] = std::max(s.outliers, 0.0);
  if (!s.features.empty() || !s.drop.empty()) d["feature_names"] = train.feature_names;
  if (train_table.separator != ',') d["separator"] = std::string(1, train_table.separator);
  if (s.na == "drop") {
    d["dropped_rows"] = {{"train", train_table.dropped_rows}, {"val", val_table.dropped_rows}};
  }
  return d;
}

// The columns to read (--features, --drop: the validation file may lack a dropped column) and the missing-value
// policy (--na).
CsvOptions ColumnChoice(const Settings& s, bool validation) {
  CsvOptions o;
  o.missing = s.na == "drop" ? MissingValues::kDrop : MissingValues::kRefuse;
  const std::vector<std::string> features = app::SplitList(s.features), drop = app::SplitList(s.drop);
  for (const auto& name : features) {
    if (name == s.target) throw InvalidInput("--features lists the target " + QuoteForMessage(s.target));
  }
  for (const auto& name : drop) {
    if (name == s.target) throw InvalidInput("--drop lists the target " + QuoteForMessage(s.target));
  }
  if (!features.empty()) {
    o.columns = features;
    o.columns.push_back(s.target);
  }
  o.skip = drop;
  o.skip_absent_ok = validation;
  return o;
}

int RunTabular(const Settings& s, std::ostream& out, std::ostream& err) {
  CsvFacts train_table, val_table;
  Dataset train = LoadDataset(s.train, ColumnChoice(s, false), s.target, &train_table);
  Dataset val = LoadDataset(s.val, ColumnChoice(s, true), s.target, &val_table);
  AlignColumns(train, &val);
  int corrupted = 0;
  if (s.problem == "robust-regression" && s.outliers > 0) corrupted = AddTargetOutliers(&train, s.outliers, s.seed);
  const ProblemInfo& info = *FindProblem(s.problem);
  TabularSettings settings;
  settings.per_feature = s.per_feature && !s.eval_at.empty();  // optimising: one λ first, then one per feature
  settings.ridge = s.ridge;
  std::unique_ptr<TabularProblem> problem = info.make_tabular(train, val, settings);
  std::vector<std::string> warnings;
  // Rank-deficient features: robust regression (without --ridge) has no unique fit, ridge and logistic regression
  // are unique through their penalty alone. One message names every cause.
  const RankReport rank = CheckRank(train);
  if (rank.deficient()) {
    const std::string removable = rank.Removable();
    const std::string advice = rank.more_features_than_rows() || removable.empty()
                                   ? "use fewer features (--features/--drop)"
                                   : "leave out " + removable + " (--drop " + removable + ")";
    if (!problem->UniqueThroughPenalty()) {
      throw InvalidInput(s.train + ": the features do not determine a unique fit: " + rank.Describe() + "; " + advice +
                         ", or add a fixed L2 weight (--ridge 1e-6)");
    }
    warnings.push_back(s.train + ": rank-deficient features: " + rank.Describe() +
                       "; the fit is unique only through the penalty (" + advice + ")");
  }
  for (const auto& w : problem->Warnings()) warnings.push_back(w);
  // Every option is checked before the first line of progress (an error is one line on stderr).
  Eigen::VectorXd theta0;
  OptimizerOptions options;
  if (s.eval_at.empty()) {
    options = MakeOptions(s, *problem, err);
    theta0 = StartingPoint(s, *problem, options);
  } else {
    theta0 = ParseEvalAt(s.eval_at, *problem);
  }
  for (const auto& w : warnings) err << "ddn bilevel " << s.problem << ": warning: " << app::OneLine(w) << "\n";
  Progress(s, err,
           "train " + s.train + " (" + std::to_string(train.X.rows()) + " rows), val " + s.val + " (" +
               std::to_string(val.X.rows()) + " rows), target '" + s.target + "', " +
               std::to_string(train.feature_names.size()) + " features");
  if (train_table.dropped_rows + val_table.dropped_rows > 0) {
    Progress(s, err,
             "--na drop: left out " + std::to_string(train_table.dropped_rows) + " training and " +
                 std::to_string(val_table.dropped_rows) + " validation rows with missing values");
  }
  if (corrupted > 0) {
    Progress(s, err,
             std::to_string(corrupted) + " training targets replaced by gross errors (--outliers " +
                 FormatDouble(s.outliers) + ", seed " + std::to_string(s.seed) + ")");
  }
  if (!s.eval_at.empty()) {
    Json j = EvaluateAt(s, problem.get(), theta0, err);
    if (!warnings.empty()) j["warnings"] = warnings;
    j["loss"] = problem->LossName();
    j["solution"] = ModelJson(problem->Model());
    AddReportValues(*problem, &j);
    j["data"] = DataJson(s, train_table, val_table, train, val);
    out << j.dump(2) << "\n";
    return 0;
  }
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<GridResult> start_grid;
  if (s.start_grid > 0) {
    Progress(s, err, "start: the best of a coarse grid of " + std::to_string(s.start_grid) + " points");
    start_grid = std::make_unique<GridResult>(
        GridSearch(problem.get(), s.start_grid, options.lower.maxCoeff(), options.upper.minCoeff()));
    theta0.setConstant(start_grid->best_value);
    theta0 = theta0.cwiseMax(options.lower).cwiseMin(options.upper);  // exp(log(bound)) may be 1 ulp outside
  }
  OptimizeResult r = Optimize(problem.get(), options, theta0);
  Json history = HistoryJson(*problem, r, s.per_feature ? "single" : "", 0);
  int inner_solves = r.inner_solves + (start_grid ? start_grid->inner_solves : 0);
  std::vector<IterationRecord> plot_history = r.history;
  Problem* answer_problem = problem.get();
  std::unique_ptr<TabularProblem> per_feature;
  if (s.per_feature) {
    Progress(s, err, "per-feature weights, starting from the single lambda " + std::to_string(r.theta[0]));
    TabularSettings per = settings;
    per.per_feature = true;
    per_feature = info.make_tabular(train, val, per);
    const Eigen::VectorXd start_theta = Eigen::VectorXd::Constant(per_feature->NumHyperparameters(), r.theta[0]);
    OptimizeResult rp = Optimize(per_feature.get(), MakeOptions(s, *per_feature, err), start_theta);
    for (auto& e : HistoryJson(*per_feature, rp, "per_feature", inner_solves)) history.push_back(e);
    for (auto rec : rp.history) {
      rec.iteration += r.history.back().iteration;
      plot_history.push_back(rec);
    }
    inner_solves += rp.inner_solves;
    r = rp;
    answer_problem = per_feature.get();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto* tab = static_cast<TabularProblem*>(answer_problem);

  Json j;
  j["problem"] = s.problem;
  j["hyperparameters"] = ThetaJson(*answer_problem, r.theta);
  j["outer_loss"] = r.loss;
  j["loss"] = tab->LossName();
  j["solution"] = ModelJson(tab->Model());
  AddReportValues(*answer_problem, &j);
  j["history"] = history;
  j["inner_solves"] = inner_solves;
  if (start_grid) j["start"] = {{"grid", GridJson(*start_grid, problem->HyperparameterNames()[0])}};
  j["iterations"] = static_cast<int>(plot_history.size()) - 1;
  j["stop_reason"] = r.stop_reason;
  BoundsJson(*answer_problem, r, r.grad_log.cwiseQuotient(r.theta), &j);
  j["seconds"] = seconds;
  j["data"] = DataJson(s, train_table, val_table, train, val);
  if (!r.status.ok()) j["status"] = r.status.note;
  if (!warnings.empty()) j["warnings"] = warnings;

  std::unique_ptr<GridResult> grid;
  if (s.grid > 0) {
    Progress(s, err, "grid search, " + std::to_string(s.grid) + " points");
    grid = std::make_unique<GridResult>(GridSearch(problem.get(), s.grid, r.lower.maxCoeff(), r.upper.minCoeff()));
    j["grid"] =
        GridJson(*grid, "lambda" == problem->HyperparameterNames()[0] ? "lambda" : problem->HyperparameterNames()[0]);
  }
  ReportBounds(*answer_problem, r, err, s.quiet);
  if (!s.plot.empty()) {
    const auto plot_start = std::chrono::steady_clock::now();
    Json plot = {{"path", s.plot}, {"grid_points", grid ? s.grid : 0}, {"inner_solves", 0}};
    std::unique_ptr<PlotCurve> curve;
    if (problem->NumHyperparameters() == 1) {
      curve = std::make_unique<PlotCurve>(
          CurveFor(s, problem.get(), grid.get(), options.lower.maxCoeff(), options.upper.minCoeff(), err, &plot));
    }
    PlotOptimization(plot_history, curve.get(), "ddn bilevel " + s.problem + (s.per_feature ? " --per-feature" : ""),
                     tab->LossName(), problem->HyperparameterNames()[0], s.plot);
    plot["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - plot_start).count();
    j["plot"] = plot;
    Progress(s, err, "plot written to " + s.plot);
  }
  Progress(s, err,
           "done: " + tab->LossName() + " " + std::to_string(r.loss) + " after " + std::to_string(inner_solves) +
               " inner solves (" + r.stop_reason + ")");
  out << j.dump(2) << "\n";
  return 0;
}

int RunTvDenoise(const Settings& s, std::ostream& out, std::ostream& err) {
  if (!(s.noise > 0)) throw InvalidInput("--noise must be > 0");
  const Image clean = LoadImage(s.train_image, s.size);
  const Image noisy = AddNoise(clean, s.noise, s.seed);
  std::vector<Image> val_clean;
  for (const auto& path : app::SplitList(s.val_images)) val_clean.push_back(LoadImage(path, s.size));

  TvDenoiseProblem problem(clean, noisy, s.epsilon);
  // Every option is checked before the first line of progress.
  Eigen::VectorXd theta0;
  OptimizerOptions options;
  if (s.eval_at.empty()) {
    options = MakeOptions(s, problem, err);
    theta0 = StartingPoint(s, problem, options);
  } else {
    theta0 = ParseEvalAt(s.eval_at, problem);
  }
  Progress(s, err,
           "train image " + s.train_image + " (" + std::to_string(clean.cols) + "x" + std::to_string(clean.rows) +
               "), noise sigma " + std::to_string(s.noise) + ", seed " + std::to_string(s.seed));
  // The image, the noise and the quality of the denoised image against the clean one (both outputs report it).
  const auto solution_json = [&](const Image& denoised) {
    return Json{{"image", s.train_image},
                {"rows", clean.rows},
                {"cols", clean.cols},
                {"noise", s.noise},
                {"seed", s.seed},
                {"epsilon", s.epsilon},
                {"mse_noisy", MeanSquaredError(noisy, clean)},
                {"mse_denoised", MeanSquaredError(denoised, clean)},
                {"psnr_noisy", Psnr(noisy, clean)},
                {"psnr_denoised", Psnr(denoised, clean)}};
  };
  if (!s.eval_at.empty()) {
    Json j = EvaluateAt(s, &problem, theta0, err);
    j["loss"] = "train_image_mse";
    const Image denoised = problem.Denoised();
    if (!s.output.empty()) SaveImage(denoised, s.output);
    j["solution"] = solution_json(denoised);
    out << j.dump(2) << "\n";
    return 0;
  }
  std::unique_ptr<GridResult> start_grid;
  if (s.start_grid > 0) {
    Progress(s, err, "start: the best of a coarse grid of " + std::to_string(s.start_grid) + " points");
    start_grid = std::make_unique<GridResult>(GridSearch(&problem, s.start_grid, options.lower[0], options.upper[0]));
    theta0.setConstant(start_grid->best_value);
    theta0 = theta0.cwiseMax(options.lower).cwiseMin(options.upper);  // exp(log(bound)) may be 1 ulp outside
  }
  OptimizeResult r = Optimize(&problem, options, theta0);
  const Image denoised = problem.Denoised();
  if (!s.output.empty()) SaveImage(denoised, s.output);

  Json j;
  j["problem"] = s.problem;
  j["hyperparameters"] = {{"lambda", r.theta[0]}};
  j["outer_loss"] = r.loss;
  j["loss"] = "train_image_mse";
  j["solution"] = solution_json(denoised);
  j["history"] = HistoryJson(problem, r, "", 0);
  j["inner_solves"] = r.inner_solves + (start_grid ? start_grid->inner_solves : 0);
  if (start_grid) j["start"] = {{"grid", GridJson(*start_grid, "lambda")}};
  j["iterations"] = r.iterations;
  j["stop_reason"] = r.stop_reason;
  BoundsJson(problem, r, r.grad_log.cwiseQuotient(r.theta), &j);
  j["seconds"] = r.seconds;
  Json validation = Json::array();
  int extra_solves = 0;
  for (size_t k = 0; k < val_clean.size(); ++k) {
    const Image vn = AddNoise(val_clean[k], s.noise, s.seed + 1 + k);
    TvDenoiseProblem vp(val_clean[k], vn, s.epsilon);
    ProblemStatus status;
    vp.SolveInner(r.theta, &status);
    ++extra_solves;
    const Image vd = vp.Denoised();
    validation.push_back({{"image", val_clean[k].name},
                          {"rows", vn.rows},
                          {"cols", vn.cols},
                          {"seed", s.seed + 1 + k},
                          {"mse_noisy", MeanSquaredError(vn, val_clean[k])},
                          {"mse_denoised", MeanSquaredError(vd, val_clean[k])},
                          {"psnr_noisy", Psnr(vn, val_clean[k])},
                          {"psnr_denoised", Psnr(vd, val_clean[k])}});
    Progress(s, err,
             "validation " + val_clean[k].name + ": PSNR " + std::to_string(Psnr(vn, val_clean[k])) + " dB -> " +
                 std::to_string(Psnr(vd, val_clean[k])) + " dB");
  }
  j["validation"] = validation;
  j["validation_inner_solves"] = extra_solves;
  std::unique_ptr<GridResult> grid;
  if (s.grid > 0) {
    Progress(s, err, "grid search, " + std::to_string(s.grid) + " points");
    grid = std::make_unique<GridResult>(GridSearch(&problem, s.grid, r.lower[0], r.upper[0]));
    j["grid"] = GridJson(*grid, "lambda");
  }
  ReportBounds(problem, r, err, s.quiet);
  if (!s.plot.empty()) {
    const auto plot_start = std::chrono::steady_clock::now();
    Json plot = {{"path", s.plot}, {"grid_points", grid ? s.grid : 0}, {"inner_solves", 0}};
    const PlotCurve curve = CurveFor(s, &problem, grid.get(), r.lower[0], r.upper[0], err, &plot);
    PlotOptimization(r.history, &curve, "ddn bilevel tv-denoise (" + clean.name + ")", "train image MSE", "lambda",
                     s.plot);
    plot["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - plot_start).count();
    j["plot"] = plot;
    Progress(s, err, "plot written to " + s.plot);
  }
  Progress(s, err,
           "done: lambda " + std::to_string(r.theta[0]) + ", MSE " + std::to_string(r.loss) + " after " +
               std::to_string(r.inner_solves) + " inner solves (" + r.stop_reason + ")");
  out << j.dump(2) << "\n";
  return 0;
}

// ---- A registered node with a named outer loss ---------------------------------------------------------------

// The request of a node run: {"node"?, "params"?, "inputs", "target"? | "validation"?}, arrays batch-first with
// batch size 1 (apps/ddn/json_io.h's format for the arrays and parameters).
struct NodeRequest {
  std::map<std::string, std::string> params;
  TensorMap inputs;
  OuterLossData data;
};

NodeRequest ReadNodeRequest(const Settings& s) {
  const cli::RequestJson j = cli::ParseJson(app::ReadTextFile(s.request, "request file"));
  if (!j.is_object())
    throw InvalidInput("--request " + QuoteForMessage(s.request) + ": the top level must be an object");
  static const std::vector<std::string> kKeys = {"node", "params", "inputs", "target", "validation"};
  for (const auto& [key, value] : j.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      throw InvalidInput("--request: unknown key " + QuoteForMessage(key) + " (allowed: " + Join(kKeys) + ")");
    }
  }
  if (j.contains("node") && (!j["node"].is_string() || j["node"].get<std::string>() != s.problem)) {
    throw InvalidInput("--request names node " + QuoteForMessage(j["node"].dump()) + ", not " +
                       QuoteForMessage(s.problem));
  }
  NodeRequest r;
  auto arrays = [&](const char* key, TensorMap* out) {
    if (!j.contains(key)) return;
    if (!j[key].is_object()) throw InvalidInput(std::string("--request: \"") + key + "\" must be an object of arrays");
    for (const auto& [name, value] : j[key].items()) {
      Tensor t = cli::JsonToTensor(value, std::string(key) + " '" + name + "'");
      if (t.shape().empty() || t.dim(0) != 1) {
        throw InvalidInput(std::string("--request: ") + key + " '" + name +
                           "' must have batch size 1 (one problem), got " + ShapeString(t.shape()));
      }
      (*out)[name] = std::move(t);
    }
  };
  if (j.contains("params")) {
    if (!j["params"].is_object()) throw InvalidInput("--request: \"params\" must be an object");
    for (const auto& [name, value] : j["params"].items())
      r.params[name] = cli::ParamValueToString(value, name, s.problem);
  }
  arrays("inputs", &r.inputs);
  arrays("target", &r.data.target);
  arrays("validation", &r.data.validation);
  return r;
}

// The hyperparameters: --hyperparameters, else every differentiable input marked positive in the node's spec.
std::vector<std::string> NodeHyperparameters(const Settings& s, const NodeSpec& spec) {
  if (!s.hyperparameters.empty()) return app::SplitList(s.hyperparameters);
  std::vector<std::string> names;
  for (const auto& in : spec.inputs) {
    if (in.differentiable && in.positive) names.push_back(in.name);
  }
  if (names.empty()) {
    throw InvalidInput("node " + QuoteForMessage(s.problem) +
                       " has no positive differentiable input: name the "
                       "hyperparameters with --hyperparameters");
  }
  return names;
}

Json OutputsJson(const NodeProblem& problem) {
  Json j = Json::object();
  for (const auto& out : problem.node().spec().outputs) j[out.name] = cli::TensorToJson(problem.outputs().at(out.name));
  return j;
}

int RunNode(const Settings& s, std::ostream& out, std::ostream& err) {
  const OuterLossInfo* loss = FindOuterLoss(s.outer_loss);
  if (!loss) {
    throw InvalidInput("unknown --outer-loss " + QuoteForMessage(s.outer_loss) + " (" + OuterLossNames() + ")");
  }
  NodeRequest request = ReadNodeRequest(s);
  std::unique_ptr<Node> node = MakeNode(s.problem, request.params);
  const NodeSpec spec = node->spec();
  const std::vector<std::string> hyper = NodeHyperparameters(s, spec);
  NodeProblem problem(std::move(node), std::move(request.inputs), hyper, loss->make(spec, request.data),
                      s.lower > 0 ? s.lower : 1e-6, s.upper > 0 ? s.upper : 1e6);
  Eigen::VectorXd theta0;
  OptimizerOptions options;
  if (s.eval_at.empty()) {
    options = MakeOptions(s, problem, err);
    theta0 = StartingPoint(s, problem, options);
  } else {
    theta0 = ParseEvalAt(s.eval_at, problem);
  }
  Progress(s, err, "node " + s.problem + ", hyperparameters " + Join(hyper) + ", outer loss " + loss->name);
  if (!s.eval_at.empty()) {
    Json j = EvaluateAt(s, &problem, theta0, err);
    j["loss"] = loss->name;
    j["solution"] = OutputsJson(problem);
    out << j.dump(2) << "\n";
    return 0;
  }
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<GridResult> start_grid;
  if (s.start_grid > 0) {
    Progress(s, err, "start: the best of a coarse grid of " + std::to_string(s.start_grid) + " points");
    start_grid = std::make_unique<GridResult>(
        GridSearch(&problem, s.start_grid, options.lower.maxCoeff(), options.upper.minCoeff()));
    theta0.setConstant(start_grid->best_value);
    theta0 = theta0.cwiseMax(options.lower).cwiseMin(options.upper);
  }
  const OptimizeResult r = Optimize(&problem, options, theta0);
  Json j;
  j["problem"] = s.problem;
  j["hyperparameters"] = ThetaJson(problem, r.theta);
  j["outer_loss"] = r.loss;
  j["loss"] = loss->name;
  j["solution"] = OutputsJson(problem);
  j["history"] = HistoryJson(problem, r, "", 0);
  j["inner_solves"] = r.inner_solves + (start_grid ? start_grid->inner_solves : 0);
  if (start_grid) j["start"] = {{"grid", GridJson(*start_grid, problem.HyperparameterNames()[0])}};
  j["iterations"] = r.iterations;
  j["stop_reason"] = r.stop_reason;
  BoundsJson(problem, r, r.grad_log.cwiseQuotient(r.theta), &j);
  j["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!r.status.ok()) j["status"] = r.status.note;
  std::unique_ptr<GridResult> grid;
  if (s.grid > 0) {
    Progress(s, err, "grid search, " + std::to_string(s.grid) + " points");
    grid = std::make_unique<GridResult>(GridSearch(&problem, s.grid, r.lower.maxCoeff(), r.upper.minCoeff()));
    j["grid"] = GridJson(*grid, problem.HyperparameterNames()[0]);
  }
  ReportBounds(problem, r, err, s.quiet);
  if (!s.plot.empty()) {
    Json plot = {{"path", s.plot}, {"grid_points", grid ? s.grid : 0}, {"inner_solves", 0}};
    std::unique_ptr<PlotCurve> curve;
    if (problem.NumHyperparameters() == 1) {
      curve = std::make_unique<PlotCurve>(
          CurveFor(s, &problem, grid.get(), options.lower.maxCoeff(), options.upper.minCoeff(), err, &plot));
    }
    PlotOptimization(r.history, curve.get(), "ddn bilevel " + s.problem, loss->name, problem.HyperparameterNames()[0],
                     s.plot);
    j["plot"] = plot;
  }
  Progress(s, err,
           "done: " + loss->name + " " + std::to_string(r.loss) + " after " + std::to_string(r.inner_solves) +
               " inner solves (" + r.stop_reason + ")");
  out << j.dump(2) << "\n";
  return 0;
}

// Every output (--plot, --output) is checked before any work: a writable folder, an image format OpenCV writes,
// and not the same file as an input or as the other output. The files are then written atomically.
void CheckOutputs(const Settings& s, const NamedPaths& inputs) {
  NamedPaths outputs;
  if (!s.plot.empty()) {
    app::CheckImageOutput("--plot", s.plot);
    outputs.push_back({"--plot", s.plot});
  }
  if (!s.output.empty()) {
    if (s.problem != "tv-denoise") throw InvalidInput("--output applies to tv-denoise only");
    app::CheckImageOutput("--output", s.output);
    outputs.push_back({"--output", s.output});
  }
  RequireDistinctOutputs(inputs, outputs);
}

// Options that belong to a node run, or to the built-in problems only.
void CheckNodeOptions(const Settings& s, const po::variables_map& vm, bool is_node) {
  for (const char* node_only : {"request", "outer-loss", "hyperparameters"}) {
    if (!is_node && vm.count(node_only)) {
      throw InvalidInput(std::string("--") + node_only + " applies to a node (ddn bilevel NODE), not to " + s.problem);
    }
  }
  if (is_node) {
    for (const char* problem_only : {"train", "val", "target", "features", "drop", "dataset", "per-feature", "ridge",
                                     "outliers", "train-image", "val-images", "size", "output"}) {
      if (vm.count(problem_only) && !vm[problem_only].defaulted()) {
        throw InvalidInput(std::string("--") + problem_only + " applies to the built-in problems, not to node " +
                           s.problem);
      }
    }
    if (s.request.empty()) throw InvalidInput("ddn bilevel " + s.problem + " needs --request FILE");
    if (s.outer_loss.empty())
      throw InvalidInput("ddn bilevel " + s.problem + " needs --outer-loss (" + OuterLossNames() + ")");
  }
}

// Every size and value a user gives is bounded and finite (--grid 2147483647 asked for 32 GB), and options that
// exclude each other are not both given.
void CheckValues(const Settings& s, const po::variables_map& vm) {
  if (s.grid < 0 || s.grid > kMaxGrid) {
    throw InvalidInput("--grid must be in [0, " + std::to_string(kMaxGrid) + "], got " + std::to_string(s.grid));
  }
  if (s.max_iterations < 0 || s.max_iterations > kMaxIterations) {
    throw InvalidInput("--max-iterations must be in [0, " + std::to_string(kMaxIterations) + "], got " +
                       std::to_string(s.max_iterations));
  }
  if (!(s.init >= 0) || !std::isfinite(s.init)) {
    throw InvalidInput("--init must be a finite number > 0 (or 0: the problem's default), got " + FormatDouble(s.init));
  }
  if (!(s.lower >= 0) || !std::isfinite(s.lower)) {
    throw InvalidInput("--lower must be a finite number > 0 (or 0: the problem's bound), got " + FormatDouble(s.lower));
  }
  if (!(s.upper >= 0) || !std::isfinite(s.upper)) {
    throw InvalidInput("--upper must be a finite number > 0 (or 0: the problem's bound), got " + FormatDouble(s.upper));
  }
  if (s.lower > 0 && s.upper > 0 && !(s.lower < s.upper)) {
    throw InvalidInput("--lower " + FormatDouble(s.lower) + " must be below --upper " + FormatDouble(s.upper));
  }
  if (!s.eval_at.empty()) {
    for (const char* excluded : {"init", "grid", "plot", "lower", "upper"}) {
      if (vm.count(excluded) && !vm[excluded].defaulted()) {
        throw InvalidInput(std::string("--eval-at evaluates one point: --") + excluded + " does not apply");
      }
    }
  }
  if (!(s.ridge >= 0) || !std::isfinite(s.ridge)) {
    throw InvalidInput("--ridge must be a finite number >= 0, got " + FormatDouble(s.ridge));
  }
  if (!(s.outliers >= 0 && s.outliers <= 1)) {
    throw InvalidInput("--outliers must be in [0, 1], got " + FormatDouble(s.outliers));
  }
  if (!(s.noise > 0) || !std::isfinite(s.noise)) {
    throw InvalidInput("--noise must be a finite number > 0, got " + FormatDouble(s.noise));
  }
  if (!(s.epsilon > 0) || !std::isfinite(s.epsilon)) {
    throw InvalidInput("--epsilon must be a finite number > 0, got " + FormatDouble(s.epsilon));
  }
  if (vm.count("start-grid") && (s.start_grid < 0 || s.start_grid > kMaxGrid)) {
    throw InvalidInput("--start-grid must be in [0, " + std::to_string(kMaxGrid) + "], got " +
                       std::to_string(s.start_grid));
  }
  if (vm.count("start-grid") && s.start_grid > 0 && s.init > 0) {
    throw InvalidInput("--start-grid and --init exclude each other (both choose the start)");
  }
}

}  // namespace

std::string DefaultDataDir() {
  if (const char* env = std::getenv("DDN_DATA_DIR"); env && *env) return env;
#ifdef DDN_BILEVEL_INSTALLED_DATA_DIR
  // An installed ddn-bilevel: PREFIX/bin/ddn-bilevel and PREFIX/share/ddn/datasets.
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    const std::filesystem::path installed = exe.parent_path().parent_path() / DDN_BILEVEL_INSTALLED_DATA_DIR;
    if (std::filesystem::is_directory(installed, error)) return installed.string();
  }
#endif
#ifdef DDN_BILEVEL_DATA_DIR
  if (std::filesystem::is_directory(DDN_BILEVEL_DATA_DIR)) return DDN_BILEVEL_DATA_DIR;
#endif
  return "datasets";
}

int RunBilevelCommand(int argc, char** argv, std::ostream& out, std::ostream& err) {
  Settings s;
  std::string seed;
  po::options_description visible(
      "Usage: ddn bilevel ridge|logistic|tv-denoise|robust-regression [options]\n"
      "       ddn bilevel NODE --request FILE --outer-loss NAME [options]\n\n"
      "Bi-level hyperparameter optimisation: the hyperparameters minimise a validation loss of the inner\n"
      "problem's solution; the hypergradient comes from the inner optimality conditions (implicit function\n"
      "theorem), the outer optimiser is L-BFGS on log-hyperparameters. JSON result on stdout, progress on\n"
      "stderr. Without --train/--val, tabular problems use the shipped data in <data-dir>/tabular:\n"
      "ridge and robust-regression: diabetes (target progression); logistic: breast_cancer (target benign);\n"
      "--dataset digits for 10-class (multinomial) logistic regression.\n"
      "Any registered node (`ddn nodes`) is a bi-level problem too: its positive differentiable inputs (or\n"
      "--hyperparameters) are learned, its outputs are scored by a named outer loss; --request gives its params,\n"
      "inputs (batch size 1; the hyperparameters' values are the start) and the loss's \"target\" or "
      "\"validation\".\n\n"
      "Options");
  visible.add_options()("help,h", "show this help")("train", po::value(&s.train),
                                                    "training CSV (header row; features = all columns but --target)")(
      "val", po::value(&s.val), "validation CSV (same columns)")("target", po::value(&s.target), "target column")(
      "features", po::value(&s.features),
      "comma-separated feature columns (default: every column but --target); "
      "other columns are not read")("drop", po::value(&s.drop),
                                    "comma-separated columns to leave out (not read: they may hold text, e.g. an id)")(
      "na", po::value(&s.na)->default_value("refuse"),
      "missing values (empty, NA, N/A, NaN, null, ?): 'refuse' (an "
      "error naming the row and column) or 'drop' (skip the row)")(
      "dataset", po::value(&s.dataset), "shipped data set instead of --train/--val: diabetes, breast_cancer, digits")(
      "data-dir", po::value(&s.data_dir),
      "folder with tabular/ and images/ (default: $DDN_DATA_DIR, an installed share/ddn/datasets, or the source tree's "
      "datasets/)")("per-feature", po::bool_switch(&s.per_feature),
                    "ridge: one lambda per feature (started from the best single lambda)")(
      "grid", po::value(&s.grid)->default_value(0),
      "also run a grid search over N log-spaced values (N <= 10000) and "
      "report both")("plot", po::value(&s.plot),
                     "write a PNG of the outer loss over the iterations (and over the hyperparameter)")(
      "max-iterations", po::value(&s.max_iterations)->default_value(100), "outer L-BFGS iterations (<= 100000)")(
      "init", po::value(&s.init)->default_value(0),
      "starting value of the hyperparameter(s), within the bounds (0: the "
      "problem's default)")("lower", po::value(&s.lower)->default_value(0),
                            "lower bound of every hyperparameter (0: the problem's: ridge 1e-6, "
                            "logistic 1e-4, robust-regression 1e-3 sd(y), tv-denoise 1e-4)")(
      "upper", po::value(&s.upper)->default_value(0),
      "upper bound of every hyperparameter (0: the problem's: ridge 1e4, "
      "logistic 1e2, robust-regression 1e3 sd(y), tv-denoise 10)")(
      "eval-at", po::value(&s.eval_at),
      "no optimisation: the outer loss and the signed hypergradient dL/dtheta at "
      "this value (per-feature ridge: one value or one per feature, comma-separated)")(
      "ridge", po::value(&s.ridge)->default_value(0.0, "0"), "robust-regression: fixed L2 weight on the coefficients")(
      "outliers", po::value(&s.outliers)->default_value(0),
      "robust-regression: fraction of training targets replaced "
      "by gross errors, 5-10 sd(y) upwards (seeded by --seed; the "
      "same for shipped data and --train files; 0: none)")(
      "start-grid", po::value(&s.start_grid),
      "start the optimiser from the best of N log-spaced values across the "
      "bounds (default: 13 for robust-regression, whose outer loss is not "
      "convex; 0 for the others and with --init; <= 10000)")(
      "train-image", po::value(&s.train_image), "tv-denoise: image to learn lambda on (default images/camera.png)")(
      "val-images", po::value(&s.val_images),
      "tv-denoise: comma-separated validation images (default images/coins.png,images/moon.png)")(
      "noise", po::value(&s.noise)->default_value(0.1, "0.1"), "tv-denoise: Gaussian noise sigma (intensities in [0, 1])")(
      "seed", po::value(&seed)->default_value("1"),
      "noise seed (tv-denoise: validation image k uses seed + k; robust-regression: outliers)")(
      "epsilon", po::value(&s.epsilon)->default_value(0.01, "0.01"), "tv-denoise: TV smoothing epsilon")(
      "size", po::value(&s.size)->default_value(0),
      "tv-denoise: downsample images to this longer side (0: as is; <= 100000)")(
      "output", po::value(&s.output), "tv-denoise: write the denoised training image (PNG)")(
      "request", po::value(&s.request),
      "NODE: JSON file ('-': stdin) {\"params\", \"inputs\", \"target\" or "
      "\"validation\"}, arrays batch-first with batch size 1")(
      "outer-loss", po::value(&s.outer_loss),
      "NODE: the outer loss: mse (outputs against \"target\"), validation_mse, "
      "validation_log_loss (a linear model's, on \"validation\" X, y)")(
      "hyperparameters", po::value(&s.hyperparameters),
      "NODE: comma-separated inputs to learn (default: the "
      "node's positive differentiable inputs)")("quiet,q", po::bool_switch(&s.quiet), "no progress on stderr");
  po::options_description hidden;
  hidden.add_options()("problem", po::value(&s.problem));
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("problem", 1);
  app::GuardOptions guard;
  guard.help_hint = "ddn bilevel --help";
  return app::RunGuarded(
      "ddn bilevel",
      [&]() -> int {
        po::variables_map vm;
        app::ParseCommandLine(argc, argv, all, positional, &vm);
        if (vm.count("help")) {
          out << visible << "\nProblems (bilevel/registry.h):\n";
          for (const auto& p : Problems()) out << "  " << std::left << std::setw(19) << p.name << p.summary << "\n";
          return 0;
        }
        if (s.problem.empty()) throw InvalidInput("missing problem: one of " + ProblemNames() + ", or a node");
        const ProblemInfo* info = FindProblem(s.problem);
        const std::vector<std::string> nodes = NodeNames();
        const bool is_node = !info && std::find(nodes.begin(), nodes.end(), s.problem) != nodes.end();
        if (!info && !is_node) {
          throw InvalidInput("unknown problem or node " + QuoteForMessage(s.problem) + " (problems: " + ProblemNames() +
                             "; nodes: see ddn nodes)");
        }
        CheckNodeOptions(s, vm, is_node);
        const ProblemInfo node_info;  // a node: no data of a built-in problem
        if (is_node) info = &node_info;
        const bool tabular = info->data == ProblemInfo::Data::kTables;
        if (s.per_feature && s.problem != "ridge") throw InvalidInput("--per-feature applies to ridge only");
        if (s.na != "refuse" && s.na != "drop")
          throw InvalidInput("--na must be 'refuse' or 'drop', got " + QuoteForMessage(s.na));
        if (!s.features.empty() && !s.drop.empty()) throw InvalidInput("--features and --drop exclude each other");
        if (!tabular && (!s.features.empty() || !s.drop.empty() || (vm.count("na") && !vm["na"].defaulted()))) {
          throw InvalidInput("--features, --drop and --na apply to the tabular problems only");
        }
        CheckValues(s, vm);
        if (s.start_grid < 0) s.start_grid = s.init > 0 ? 0 : info->default_start_grid;
        if (s.outliers > 0 && s.problem != "robust-regression")
          throw InvalidInput("--outliers applies to robust-regression only");
        if (s.ridge > 0 && s.problem != "robust-regression")
          throw InvalidInput("--ridge applies to robust-regression only");
        if (s.size < 0 || s.size > 100000)
          throw InvalidInput("--size must be in [0, 100000], got " + std::to_string(s.size));
        s.seed = ParseSeed(seed, "--seed");
        if (is_node) {
          NamedPaths inputs;
          if (s.request != "-") inputs.push_back({"--request", s.request});
          CheckOutputs(s, inputs);
          return RunNode(s, out, err);
        }
        const std::string dir = s.data_dir.empty() ? DefaultDataDir() : s.data_dir;
        if (tabular) {
          if (s.train.empty() != s.val.empty()) throw InvalidInput("give both --train and --val, or neither");
          if (s.train.empty()) {
            std::string name = s.dataset;
            if (name.empty()) name = info->default_dataset;
            std::string target;
            if (name == "diabetes")
              target = "progression";
            else if (name == "breast_cancer")
              target = "benign";
            else if (name == "digits")
              target = "digit";
            else
              throw InvalidInput("unknown --dataset '" + name + "' (diabetes, breast_cancer, digits)");
            s.train = JoinPath(JoinPath(dir, "tabular"), name + "_train.csv");
            s.val = JoinPath(JoinPath(dir, "tabular"), name + "_val.csv");
            if (s.target.empty()) s.target = target;
          } else if (!s.dataset.empty()) {
            throw InvalidInput("--dataset and --train/--val exclude each other");
          }
          if (s.target.empty()) throw InvalidInput("--target is required with --train/--val");
          CheckOutputs(s, {{"--train", s.train}, {"--val", s.val}});
          return RunTabular(s, out, err);
        }
        if (s.train_image.empty()) s.train_image = JoinPath(JoinPath(dir, "images"), "camera.png");
        if (s.val_images.empty()) {
          s.val_images =
              JoinPath(JoinPath(dir, "images"), "coins.png") + "," + JoinPath(JoinPath(dir, "images"), "moon.png");
        }
        NamedPaths inputs{{"--train-image", s.train_image}};
        for (const auto& path : app::SplitList(s.val_images)) inputs.push_back({"--val-images", path});
        CheckOutputs(s, inputs);
        return RunTvDenoise(s, out, err);
      },
      out, err, guard);
}

}  // namespace ddn::bilevel
