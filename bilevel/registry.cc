#include "bilevel/registry.h"

namespace ddn::bilevel {

const std::vector<ProblemInfo>& Problems() {
  static const std::vector<ProblemInfo> problems = [] {
    std::vector<ProblemInfo> p;
    ProblemInfo ridge;
    ridge.name = "ridge";
    ridge.summary = "ridge regression, L2 weight lambda (one, or one per feature) on the validation MSE";
    ridge.default_dataset = "diabetes";
    ridge.make_tabular = [](const Dataset& train, const Dataset& val, const TabularSettings& s) {
      return std::make_unique<RidgeProblem>(train, val, s.per_feature);
    };
    p.push_back(ridge);
    ProblemInfo logistic;
    logistic.name = "logistic";
    logistic.summary = "logistic regression (binary or multinomial), L2 weight lambda on the validation log-loss";
    logistic.default_dataset = "breast_cancer";
    logistic.make_tabular = [](const Dataset& train, const Dataset& val, const TabularSettings&) {
      return std::make_unique<LogisticProblem>(train, val);
    };
    p.push_back(logistic);
    ProblemInfo robust;
    robust.name = "robust-regression";
    robust.summary = "pseudo-Huber regression, scale alpha on the validation MSE (non-convex in alpha)";
    robust.default_dataset = "diabetes";
    robust.default_start_grid = 13;  // two points a decade across the bounds: the outer loss is not convex
    robust.make_tabular = [](const Dataset& train, const Dataset& val, const TabularSettings& s) {
      return std::make_unique<RobustRegressionProblem>(train, val, s.ridge);
    };
    p.push_back(robust);
    ProblemInfo tv;
    tv.name = "tv-denoise";
    tv.summary = "smoothed-TV image denoising, weight lambda on the training image's MSE";
    tv.data = ProblemInfo::Data::kImages;
    p.push_back(tv);
    return p;
  }();
  return problems;
}

const ProblemInfo* FindProblem(const std::string& name) {
  for (const auto& p : Problems()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string ProblemNames() {
  std::string names;
  for (const auto& p : Problems()) names += (names.empty() ? "" : ", ") + p.name;
  return names;
}

}  // namespace ddn::bilevel
