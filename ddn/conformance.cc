#include "ddn/conformance.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/params.h"
#include "ddn/random.h"

namespace ddn {
namespace {

// Flags under which two solvers may rightly give different answers (several minima, a kink, a weakly active
// constraint, an answer the solver could not verify).
constexpr uint32_t kIncomparable = kNonUnique | kNotCertified | kDegenerate | kNonSmooth | kAllOutliers | kUnverified;

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

struct Result {
  ForwardResult fwd;                    // status as updated by the backward pass
  std::vector<uint32_t> forward_flags;  // the forward's own flags
  TensorMap grads;
};

TensorMap RandomUpstream(const TensorMap& outputs, uint64_t seed) {
  Rng rng(seed * 104729 + 3);
  TensorMap v;
  for (const auto& [name, y] : outputs) {
    Tensor t(y.shape());
    for (auto& e : t.values()) e = rng.Normal();
    v[name] = std::move(t);
  }
  return v;
}

double ProblemMax(const Tensor& t, int64_t b) {
  double m = 0;
  for (int64_t k = 0; k < t.problem_size(); ++k) m = std::max(m, std::abs(t.problem(b)[k]));
  return m;
}

double ProblemDiff(const Tensor& a, const Tensor& b, int64_t p, double scale_b = 1.0) {
  double m = 0;
  for (int64_t k = 0; k < a.problem_size(); ++k) m = std::max(m, std::abs(a.problem(p)[k] - scale_b * b.problem(p)[k]));
  return m;
}

// The largest |value| of problem b over all inputs: the scale y is compared against when y itself is ~0.
double InputScale(const TensorMap& inputs, int64_t b) {
  double m = 0;
  for (const auto& [name, t] : inputs) m = std::max(m, ProblemMax(t, b));
  return m;
}

class Checker {
 public:
  Checker(const std::string& name, const std::map<std::string, std::string>& params, const ConformanceOptions& o,
          ConformanceReport* report)
      : name_(name), params_(params), o_(o), report_(report), node_(MakeNode(name, params)) {}

  void Run() {
    const std::vector<CheckCase> cases = node_->CheckCases(o_.seed);
    if (cases.empty()) Fail("the node has no check cases");
    Gradients(false);
    if (node_->HasGenericPath() && o_.check_generic_gradients) Gradients(true);
    for (const CheckCase& c : cases) {
      if (node_->HasGenericPath() && !Excluded(c)) Agreement(c);
      if (o_.check_threads) Threads(c);
      if (node_->HasGenericPath() && !Excluded(c)) Scales(c);
    }
    if (o_.check_threads) Log("threads: " + std::to_string(cases.size()) + " cases run with 1 and 2 threads");
    if (node_->HasGenericPath()) {
      Log("scale: " + std::to_string(scale_runs_) + " scaled generic runs compared (objective, constraints" +
          std::string(o_.covariant_inputs.empty() && o_.covariant_params.empty() ? ")" : ", covariant inputs)"));
    }
    if (node_->HasGenericPath() && same_paths_)
      Log("agreement: the default path is the generic one (identical results)");
    if (node_->HasGenericPath() && !same_paths_ && report_->comparisons < o_.min_comparisons) {
      Fail("only " + std::to_string(report_->comparisons) +
           " problems compared between the default and the generic "
           "path (at least " +
           std::to_string(o_.min_comparisons) + " required): add unflagged check cases");
    }
    if (o_.check_bad_input && !cases.empty()) BadInput(cases);
  }

 private:
  bool Excluded(const CheckCase& c) const {
    return std::find(o_.generic_excluded_cases.begin(), o_.generic_excluded_cases.end(), c.name) !=
           o_.generic_excluded_cases.end();
  }
  void Fail(const std::string& what) {
    report_->passed = false;
    report_->failures.push_back(name_ + ": " + what);
  }
  void Log(const std::string& what) { report_->log.push_back(what); }

  // Forward and backward (dL/dy = v, random if empty) on `node`.
  Result Execute(const Node& node, const TensorMap& inputs, const TensorMap& v, bool generic, int threads = 0) const {
    RunOptions run;
    run.generic = generic;
    run.threads = threads;
    Result r;
    r.fwd = Forward(node, inputs, run);
    for (const auto& st : r.fwd.status) r.forward_flags.push_back(st.flags);
    const TensorMap upstream = v.empty() ? RandomUpstream(r.fwd.outputs, o_.seed) : v;
    r.grads = Backward(node, inputs, r.fwd.outputs, upstream, &r.fwd.status, run);
    return r;
  }

  void Gradients(bool generic) {
    CheckOptions options;
    options.seed = o_.seed;
    options.tolerance = o_.gradient_tolerance;
    options.run.generic = generic;
    const char* path = generic ? "generic" : "default";
    try {
      const CheckReport report = CheckGradients(*node_, options);
      Log(std::string("gradients (") + path + " path): worst relative error " + Fmt(report.max_rel_error) + " over " +
          std::to_string(report.entries.size()) + " problem-inputs");
      if (!report.passed) {
        for (const CheckEntry& e : report.entries) {
          if (e.rel_error <= o_.gradient_tolerance) continue;
          std::string flags;
          for (const auto& f : FlagNames(e.flags)) flags += " " + f;
          Fail(std::string("gradient check (") + path + " path), case '" + e.case_name + "', input '" + e.input +
               "', problem " + std::to_string(e.batch_index) + ": relative error " + Fmt(e.rel_error) + flags);
        }
      }
    } catch (const Error& e) {
      Fail(std::string("gradient check (") + path + " path) threw: " + e.what());
    }
  }

  void Agreement(const CheckCase& c) {
    Result spec, gen;
    try {
      spec = Execute(*node_, c.inputs, {}, false);
    } catch (const Error& e) {
      Fail("case '" + c.name + "': the default path threw: " + e.what());
      return;
    }
    const TensorMap v = RandomUpstream(spec.fwd.outputs, o_.seed);
    try {
      gen.fwd = Forward(*node_, c.inputs, Generic());
      // Both backward passes at the default path's answer: the same point, two ways.
      std::vector<ProblemStatus> status = spec.fwd.status;
      gen.grads = Backward(*node_, c.inputs, spec.fwd.outputs, v, &status, Generic());
      spec.grads = Backward(*node_, c.inputs, spec.fwd.outputs, v, &spec.fwd.status);
    } catch (const Error& e) {
      Fail("case '" + c.name + "': the generic path threw: " + e.what());
      return;
    }
    for (const auto& [out, y] : spec.fwd.outputs)
      same_paths_ = same_paths_ && y.values() == gen.fwd.outputs.at(out).values();
    for (size_t b = 0; b < spec.fwd.status.size(); ++b) {
      same_paths_ = same_paths_ && spec.forward_flags[b] == gen.fwd.status[b].flags;
    }
    for (const auto& [out, y] : spec.fwd.outputs) {
      for (int64_t b = 0; b < y.batch_size(); ++b) {
        const uint32_t fs = spec.fwd.status[b].flags, fg = gen.fwd.status[b].flags;
        // A generic answer flagged only not_certified may be another local minimum than a certified specialised
        // one: compared (and counted) when they agree, logged when not.
        const bool local = fg == kNotCertified && !(fs & kIncomparable);
        if (!local && ((fs | fg) & kIncomparable)) continue;
        const double ref = std::max(ProblemMax(y, b), 1e-3 * InputScale(c.inputs, b));
        const double dy = ProblemDiff(y, gen.fwd.outputs.at(out), b);
        if (local && !(dy <= o_.value_tolerance * ref)) {
          Log("case '" + c.name + "', problem " + std::to_string(b) +
              ": the generic path found another local "
              "minimum (flagged not_certified)");
          continue;
        }
        if (!(dy <= o_.value_tolerance * ref)) {
          Fail("case '" + c.name + "', problem " + std::to_string(b) + ": output '" + out +
               "' differs between the "
               "default and the generic path by " +
               Fmt(dy) + " (scale " + Fmt(ref) + ")");
        }
        ++report_->comparisons;
        for (const auto& [in, g] : spec.grads) {
          const Tensor& gg = gen.grads.at(in);
          const double gref = std::max({ProblemMax(g, b), ProblemMax(gg, b), 1e-6 * ProblemMax(v.at(out), b)});
          const double dg = ProblemDiff(g, gg, b);
          if (!(dg <= o_.gradient_match_tolerance * gref)) {
            Fail("case '" + c.name + "', problem " + std::to_string(b) + ": gradient of input '" + in +
                 "' differs "
                 "between the default and the generic backward by " +
                 Fmt(dg) + " (scale " + Fmt(gref) + ")");
          }
        }
      }
    }
  }

  void Threads(const CheckCase& c) {
    for (bool generic : {false, true}) {
      if (generic && (!node_->HasGenericPath() || Excluded(c))) continue;
      try {
        const Result one = Execute(*node_, c.inputs, {}, generic, 1);
        const Result two = Execute(*node_, c.inputs, {}, generic, 2);
        bool same = true;
        for (const auto& [name, y] : one.fwd.outputs) same = same && y.values() == two.fwd.outputs.at(name).values();
        for (const auto& [name, g] : one.grads) same = same && g.values() == two.grads.at(name).values();
        for (size_t b = 0; b < one.fwd.status.size(); ++b) {
          same = same && one.fwd.status[b].flags == two.fwd.status[b].flags;
        }
        if (!same) {
          Fail("case '" + c.name + "': results or flags differ between 1 and 2 threads (" +
               (generic ? "generic" : "default") + " path)");
        }
      } catch (const Error& e) {
        if (!generic) Fail("case '" + c.name + "': threw " + e.what());
      }
    }
  }

  // Every input, optional ones included, in the first case that gives it; dL/dy on the first case.
  void BadInput(const std::vector<CheckCase>& cases) {
    const CheckCase& c = cases.front();
    int refused = 0;
    std::vector<std::string> seen;
    for (const CheckCase& holder : cases) {
      for (const auto& [name, t] : holder.inputs) {
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
        seen.push_back(name);
        BadValues(holder, name, &refused);
      }
    }
    try {
      const ForwardResult fwd = Forward(*node_, c.inputs);
      TensorMap v = RandomUpstream(fwd.outputs, o_.seed);
      v.begin()->second[0] = std::numeric_limits<double>::quiet_NaN();
      std::vector<ProblemStatus> status = fwd.status;
      try {
        Backward(*node_, c.inputs, fwd.outputs, v, &status);
        Fail("a NaN in dL/dy was accepted");
      } catch (const InvalidInput& e) {
        if (std::string(e.what()).find("grad_outputs") == std::string::npos) {
          Fail(std::string("a NaN in dL/dy: the message does not name grad_outputs: ") + e.what());
        }
        ++refused;
      }
    } catch (const Error& e) {
      Fail("case '" + c.name + "': threw " + e.what());
    }
    Log("bad input: " + std::to_string(refused) + " NaN/Inf requests refused");
  }

  // A NaN and an Inf in input `name` of case `c` must be refused with InvalidInput naming the input.
  void BadValues(const CheckCase& c, const std::string& name, int* refused) {
    for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
      TensorMap inputs = c.inputs;
      inputs.at(name)[0] = bad;
      try {
        Forward(*node_, inputs);
        Fail("input '" + name + "' with " + Fmt(bad) + " was accepted (case '" + c.name + "')");
      } catch (const InvalidInput& e) {
        if (std::string(e.what()).find("'" + name + "'") == std::string::npos) {
          Fail("input '" + name + "' with " + Fmt(bad) + ": the message does not name the input: " + e.what());
        }
        ++*refused;
      } catch (const Error& e) {
        Fail("input '" + name + "' with " + Fmt(bad) + ": not InvalidInput: " + e.what());
      }
    }
  }

  // The answer, flags and gradients of the generic path against the same run with f or the constraints scaled
  // (y and the gradients identical), or with the covariant inputs and parameters scaled by s (y × s; gradients
  // of covariant inputs identical, of the others × s).
  void Scales(const CheckCase& c) {
    Result base;
    try {
      base = Execute(*node_, c.inputs, {}, true);
    } catch (const Error& e) {
      Fail("case '" + c.name + "': the generic path threw: " + e.what());
      return;
    }
    const TensorMap v = RandomUpstream(base.fwd.outputs, o_.seed);  // the dL/dy Execute used
    auto compare = [&](const std::string& what, const Result& r, double s, const std::vector<std::string>& cov) {
      for (const auto& [out, y] : base.fwd.outputs) {
        for (int64_t b = 0; b < y.batch_size(); ++b) {
          const uint32_t f0 = base.fwd.status[b].flags, f1 = r.fwd.status[b].flags;
          if (f0 != f1) {
            std::string a, bb;
            for (const auto& n : FlagNames(f0)) a += " " + n;
            for (const auto& n : FlagNames(f1)) bb += " " + n;
            Fail(what + ", case '" + c.name + "', problem " + std::to_string(b) + ": flags changed from [" + a +
                 " ] to [" + bb + " ] (" + r.fwd.status[b].note + ")");
          }
          if ((f0 | f1) & (kNonUnique | kNotCertified)) continue;  // may rightly pick another minimiser
          const double ref = std::max(ProblemMax(y, b), 1e-3 * InputScale(c.inputs, b));
          const double dy = ProblemDiff(r.fwd.outputs.at(out), y, b, s) / s;
          if (!(dy <= o_.value_tolerance * ref)) {
            Fail(what + ", case '" + c.name + "', problem " + std::to_string(b) + ": output '" + out + "' changed by " +
                 Fmt(dy) + " relative to scale " + Fmt(ref));
          }
          for (const auto& [in, g] : base.grads) {
            const bool covariant = std::find(cov.begin(), cov.end(), in) != cov.end();
            const double gs = covariant ? 1.0 : s;
            const double gref = std::max(ProblemMax(g, b), 1e-6 * ProblemMax(v.at(out), b));
            const double dg = ProblemDiff(r.grads.at(in), g, b, gs) / gs;
            if (!(dg <= o_.gradient_match_tolerance * gref)) {
              Fail(what + ", case '" + c.name + "', problem " + std::to_string(b) + ": gradient of '" + in +
                   "' changed by " + Fmt(dg) + " relative to " + Fmt(gref));
            }
          }
        }
      }
    };
    auto scaled_run = [&](const std::string& what, Node* node, const TensorMap& inputs, const TensorMap& upstream,
                          double s, const std::vector<std::string>& cov) {
      try {
        Result r;
        r.fwd = Forward(*node, inputs, Generic());
        r.grads = Backward(*node, inputs, r.fwd.outputs, upstream, &r.fwd.status, Generic());
        compare(what, r, s, cov);
        ++scale_runs_;
      } catch (const Error& e) {
        Fail(what + ", case '" + c.name + "': threw " + e.what());
      }
    };
    for (double f : o_.objective_scales) {
      auto node = MakeNode(name_, params_);
      node->SetSolverOption("objective_scale", FormatDouble(f));
      scaled_run("objective × " + Fmt(f), node.get(), c.inputs, v, 1.0, {});
    }
    for (double k : o_.constraint_scales) {
      auto node = MakeNode(name_, params_);
      node->SetSolverOption("constraint_scale", FormatDouble(k));
      scaled_run("constraints × " + Fmt(k), node.get(), c.inputs, v, 1.0, {});
    }
    if (o_.covariant_inputs.empty() && o_.covariant_params.empty()) return;
    for (const std::string& in : o_.covariant_inputs) {
      // An omitted optional input takes its default, which scales only if a covariant parameter sets it.
      if (!c.inputs.count(in) && node_->spec().InputIndex(in) >= 0 && o_.covariant_params.empty()) {
        Log("scale: case '" + c.name + "' omits covariant input '" + in + "' (its default does not scale): skipped");
        return;
      }
    }
    const NodeSpec& spec = GetNodeSpec(name_);
    for (double s : o_.input_scales) {
      std::map<std::string, std::string> params = params_;
      for (const std::string& p : o_.covariant_params) {
        std::string value;
        if (params.count(p)) {
          value = params.at(p);
        } else {
          for (const ParamSpec& ps : spec.params)
            if (ps.name == p) value = ps.default_value;
        }
        params[p] = FormatDouble(std::stod(value) * s);
      }
      TensorMap inputs = c.inputs;
      for (const std::string& in : o_.covariant_inputs) {
        auto it = inputs.find(in);
        if (it == inputs.end()) continue;
        for (auto& e : it->second.values()) e *= s;
      }
      auto node = MakeNode(name_, params);
      scaled_run("inputs × " + Fmt(s), node.get(), inputs, v, s, o_.covariant_inputs);
    }
  }

  static RunOptions Generic() {
    RunOptions run;
    run.generic = true;
    return run;
  }

  std::string name_;
  std::map<std::string, std::string> params_;
  ConformanceOptions o_;
  ConformanceReport* report_;
  std::unique_ptr<Node> node_;
  int scale_runs_ = 0;
  bool same_paths_ = true;  // the default forward gave exactly the generic one's answers and flags
};

}  // namespace

std::string ConformanceReport::ToString() const {
  std::ostringstream out;
  out << (passed ? "PASS" : "FAIL") << " (" << comparisons << " problems compared with the generic path)\n";
  for (const auto& l : log) out << "  " << l << "\n";
  for (const auto& f : failures) out << "  FAIL " << f << "\n";
  return out.str();
}

ConformanceReport RunConformance(const std::string& name, const std::map<std::string, std::string>& params,
                                 const ConformanceOptions& options) {
  ConformanceReport report;
  Checker checker(name, params, options, &report);
  checker.Run();
  return report;
}

bool Conforms(const std::string& name, const std::map<std::string, std::string>& params,
              const ConformanceOptions& options) {
  const ConformanceReport report = RunConformance(name, params, options);
  const char* verbose = std::getenv("DDN_CONFORMANCE_VERBOSE");
  if (!report.passed || (verbose && std::string(verbose) == "1")) {
    std::cerr << "conformance of node '" << name << "':\n" << report.ToString();
  }
  return report.passed;
}

}  // namespace ddn
