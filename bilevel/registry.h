// bilevel/registry.h: the built-in bi-level problems by name, for tools that choose one at run time.
//
// A tool (apps/bilevel, `ddn bilevel PROBLEM`) looks a problem up by name, learns what data it takes (tables
// or images), its shipped default data set and its default start, and makes it with a factory. What a report
// shows beyond θ and the outer loss comes from the problem itself (Problem::ReportValues, Problem::Warnings,
// Problem::HyperparameterKey), so no tool needs to know the concrete classes (no dynamic_cast).
//
//   const ProblemInfo* info = FindProblem("ridge");
//   std::unique_ptr<TabularProblem> p = info->make_tabular(train, val, TabularSettings{});
//
// Adding a tabular problem: implement TabularProblem (tabular.h) and add an entry to Problems() (registry.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bilevel/tabular.h"

namespace ddn::bilevel {

// Settings of the tabular problems a tool may set (each problem reads those it has).
struct TabularSettings {
  bool per_feature = false;  // ridge: one λ per feature
  double ridge = 0;          // robust regression: the fixed μ ≥ 0 on ‖w‖²
};

struct ProblemInfo {
  enum class Data { kTables, kImages };
  std::string name;     // "ridge", "logistic", "robust-regression", "tv-denoise"
  std::string summary;  // one line for --help
  Data data = Data::kTables;
  std::string default_dataset;  // shipped data set (tables): "diabetes", "breast_cancer"
  int default_start_grid = 0;   // points of the coarse grid the optimiser starts from by default (0: none)
  // Tables: makes the problem from a training and a validation set (null for image problems).
  std::function<std::unique_ptr<TabularProblem>(const Dataset& train, const Dataset& val, const TabularSettings&)>
      make_tabular;
};

// Every built-in problem, in the order tools list them.
const std::vector<ProblemInfo>& Problems();
// The problem of that name, or null.
const ProblemInfo* FindProblem(const std::string& name);
// "ridge, logistic, robust-regression, tv-denoise" (for messages).
std::string ProblemNames();

}  // namespace ddn::bilevel
