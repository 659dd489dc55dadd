#include "ddn/check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn {
namespace {

// φ_b = Σ_outputs vᵀ y for each problem b; `magnitude`, if given, receives Σ |v_k y_k| (φ's rounding scale).
std::vector<double> Phi(const Node& node, const TensorMap& inputs, const TensorMap& v, const RunOptions& run,
                        std::vector<double>* magnitude = nullptr) {
  const ForwardResult r = Forward(node, inputs, run);
  std::vector<double> phi;
  for (const auto& [name, y] : r.outputs) {
    const Tensor& vt = v.at(name);
    const int64_t batch = y.batch_size(), size = y.problem_size();
    phi.resize(batch, 0.0);
    if (magnitude) magnitude->resize(batch, 0.0);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t k = 0; k < size; ++k) {
        phi[b] += vt.problem(b)[k] * y.problem(b)[k];
        if (magnitude) (*magnitude)[b] += std::abs(vt.problem(b)[k] * y.problem(b)[k]);
      }
    }
  }
  return phi;
}

// The scale of input `name` in problem b: the case's step_scale if given, else the mean |x_j| of that input in
// that problem (1 if it is all zero).
double InputScale(const CheckCase& c, const std::string& name, const Tensor& x, int64_t b) {
  auto it = c.step_scale.find(name);
  if (it != c.step_scale.end()) return it->second;
  const int64_t size = x.problem_size();
  double sum = 0;
  for (int64_t j = 0; j < size; ++j) sum += std::abs(x.problem(b)[j]);
  return sum > 0 ? sum / size : 1.0;
}

}  // namespace

void CheckGradients(const Node& node, const CheckCase& c, const CheckOptions& options, CheckReport* report) {
  const NodeSpec& spec = node.spec();
  ForwardResult fwd = Forward(node, c.inputs, options.run);
  Rng rng(options.seed * 7919 + 17);
  TensorMap v;
  for (const auto& [name, y] : fwd.outputs) {
    Tensor t(y.shape());
    for (auto& e : t.values()) e = rng.Normal();
    v[name] = std::move(t);
  }
  const TensorMap grads = Backward(node, c.inputs, fwd.outputs, v, &fwd.status, options.run);
  for (const auto& [name, g] : grads) {
    const Tensor& x = c.inputs.at(name);
    const int64_t batch = x.batch_size(), size = x.problem_size();
    // An input declared positive (marginals, semi-axes) must stay positive at x ± 2h: its step follows |x_j| when
    // that is smaller than the input's mean magnitude (a marginal of 1 beside entries of 1e4).
    const int index = spec.InputIndex(name);
    const bool positive = index >= 0 && spec.inputs[index].positive;
    Tensor fd(x.shape());
    for (int64_t j = 0; j < size; ++j) {
      std::vector<std::vector<double>> phis;
      std::vector<double> steps(batch);
      for (int k : {2, 1, -1, -2}) {
        TensorMap shifted = c.inputs;
        Tensor& xs = shifted.at(name);
        for (int64_t b = 0; b < batch; ++b) {
          // The node's own scale for this input if it gives one, else max(|x_j|, the input's mean magnitude).
          const double scale = c.step_scale.count(name)
                                   ? c.step_scale.at(name)
                                   : std::max(std::abs(x.problem(b)[j]), InputScale(c, name, x, b));
          const double unit = positive ? std::min(scale, std::abs(x.problem(b)[j])) : scale;
          const double h = options.step * unit;
          // Make x + h exactly representable so that the step is exactly h.
          volatile double xh = x.problem(b)[j] + h;
          steps[b] = xh - x.problem(b)[j];
          xs.problem(b)[j] = x.problem(b)[j] + k * steps[b];
        }
        phis.push_back(Phi(node, shifted, v, options.run));
      }
      for (int64_t b = 0; b < batch; ++b) {
        fd.problem(b)[j] = CentralDifference(phis[0][b], phis[1][b], phis[2][b], phis[3][b], steps[b]);
      }
    }
    std::vector<double> magnitude;
    Phi(node, c.inputs, v, options.run, &magnitude);
    for (int64_t b = 0; b < batch; ++b) {
      double diff = 0, ng = 0, nfd = 0;
      for (int64_t j = 0; j < size; ++j) {
        const double a = g.problem(b)[j], e = fd.problem(b)[j];
        diff += (a - e) * (a - e);
        ng += a * a;
        nfd += e * e;
      }
      CheckEntry entry;
      entry.case_name = c.name;
      entry.input = name;
      entry.batch_index = b;
      entry.grad_norm = std::sqrt(ng);
      // The floor keeps rounding from failing an exactly zero gradient (an inactive constraint's data, a point
      // pinned by its constraints): a forward accurate to k ulps of Σ|v_k y_k| leaves ~k·1e-16·Σ|v_k y_k| / h in
      // each difference quotient. An iterative solve's last step leaves tens of ulps (the KKT matrix's
      // conditioning), so the floor is set where noise of 100 ulps (1e-14 relative, h = 1e-4 · scale) stays within
      // the tolerance 1e-6: 1e-4·Σ|v_k y_k| / scale. A gradient above that is compared relatively.
      const double floor = 1e-4 * magnitude[b] / InputScale(c, name, x, b);
      entry.rel_error = std::sqrt(diff) / std::max({std::sqrt(ng), std::sqrt(nfd), floor});
      entry.flags = fwd.status[b].flags;
      report->max_rel_error = std::max(report->max_rel_error, entry.rel_error);
      if (!(entry.rel_error <= options.tolerance)) report->passed = false;
      report->entries.push_back(entry);
    }
  }
  (void)spec;
}

CheckReport CheckGradients(const Node& node, const CheckOptions& options) {
  CheckReport report;
  for (const CheckCase& c : node.CheckCases(options.seed)) CheckGradients(node, c, options, &report);
  return report;
}

std::string CheckReport::ToString() const {
  // Worst entry per (case, input).
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "%-22s %-10s %12s %6s  %s\n", "case", "input", "rel.error", "elem", "flags");
  out << line;
  std::vector<std::pair<std::string, std::string>> seen;
  for (const auto& e : entries) {
    auto key = std::make_pair(e.case_name, e.input);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    const CheckEntry* worst = &e;
    for (const auto& f : entries)
      if (f.case_name == e.case_name && f.input == e.input && f.rel_error > worst->rel_error) worst = &f;
    std::string flags;
    uint32_t any = 0;
    for (const auto& f : entries)
      if (f.case_name == e.case_name && f.input == e.input) any |= f.flags;
    for (const auto& n : FlagNames(any)) flags += (flags.empty() ? "" : ",") + n;
    std::snprintf(line, sizeof line, "%-22s %-10s %12.3e %6lld  %s\n", e.case_name.c_str(), e.input.c_str(),
                  worst->rel_error, static_cast<long long>(worst->batch_index), flags.empty() ? "-" : flags.c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "worst relative error %.3e: %s\n", max_rel_error, passed ? "PASS" : "FAIL");
  out << line;
  return out.str();
}

}  // namespace ddn
