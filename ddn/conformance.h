// ddn/conformance.h: the checks every node passes — built-in, example, or yours — in one line.
//
//   EXPECT_TRUE(ddn::Conforms("my_node", {{"alpha", "0.5"}}));          // in a GoogleTest test, or
//   const ddn::ConformanceReport r = ddn::RunConformance("my_node");     // anywhere: r.passed, r.ToString()
//
// RunConformance makes the node with the given parameters and runs, on the node's own check cases
// (Node::CheckCases: random inputs and the awkward ones the node supplies):
//
//   gradients      the backward against central finite differences of the forward (ddn/check.h), on the
//                  default path and, for a node with a generic path, on the generic one;
//   agreement      the default (specialised) forward and backward against the generic engine's, problem by
//                  problem; problems flagged as having several minima or none to compare (non_unique,
//                  not_certified, degenerate, non_smooth, all_outliers, unverified on either path) are skipped,
//                  and at least `min_comparisons` problems must have been compared (unless the default path is
//                  the generic one: identical answers and flags on every case);
//   threads        forward and backward give bit-identical results and flags with 1 and 2 threads;
//   bad input      a NaN or an Inf in any input (optional ones in the first case that gives them), or in dL/dy,
//                  is refused with InvalidInput naming it;
//   scale          (generic path) the answer, its flags and its gradient do not change when the objective is
//                  multiplied by each of `objective_scales` or every constraint by each of `constraint_scales`
//                  (GenericSolverOptions::objective_scale / constraint_scale), and, for a scale-covariant node
//                  (one whose answer scales with some inputs and parameters, named in `covariant_inputs` and
//                  `covariant_params`), y scales by s and the gradients as their units say when those inputs and
//                  parameters are multiplied by each s of `input_scales` (a case that omits an optional covariant
//                  input is skipped unless a covariant parameter stands for it).
//
// Each failure is one line of the report naming the check, the case and the problem.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ddn {

struct ConformanceOptions {
  uint64_t seed = 1;                       // of the check cases and the random dL/dy
  double gradient_tolerance = 1e-6;        // finite-difference relative error (ddn/check.h)
  bool check_generic_gradients = true;     // also check the generic path's gradients (if the node has one)
  int min_comparisons = 3;                 // specialised vs generic: at least this many problems compared
  double value_tolerance = 1e-9;           // |Δy|∞ relative to ‖y‖∞ (or the inputs' scale) in comparisons
  double gradient_match_tolerance = 1e-7;  // |Δ(dL/dx)|∞ relative to ‖dL/dx‖∞ in comparisons
  // Check cases whose problems the generic engine is not expected to solve as the specialised path does
  // (e.g. a kink exactly at the answer): excluded from the agreement and scale checks, not from the others.
  std::vector<std::string> generic_excluded_cases = {};
  std::vector<double> objective_scales = {1e-8, 1e-3, 1e3, 1e8};
  std::vector<double> constraint_scales = {1e-8, 1e8};
  std::vector<std::string> covariant_inputs = {};  // inputs that scale with y
  std::vector<std::string> covariant_params = {};  // parameters that scale with y
  std::vector<double> input_scales = {1e-6, 1e6};
  bool check_threads = true;
  bool check_bad_input = true;
};

struct ConformanceReport {
  bool passed = true;
  int comparisons = 0;                // problems compared between the specialised and generic paths
  std::vector<std::string> failures;  // one line each
  std::vector<std::string> log;       // what was checked
  std::string ToString() const;
};

// Runs every check on node `name` made with `params`. Never throws for a check that fails (it is a failure line);
// throws InvalidInput for an unknown node or bad parameters.
ConformanceReport RunConformance(const std::string& name, const std::map<std::string, std::string>& params = {},
                                 const ConformanceOptions& options = {});

// For tests: true if the node conforms; prints the report to stderr when it does not.
bool Conforms(const std::string& name, const std::map<std::string, std::string>& params = {},
              const ConformanceOptions& options = {});

}  // namespace ddn
