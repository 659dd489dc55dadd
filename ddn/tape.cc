#include "ddn/tape.h"

#include <algorithm>
#include <ostream>

#include "ddn/error.h"

namespace ddn {
namespace {
thread_local Tape* active_tape = nullptr;
}  // namespace

Tape* Tape::Active() {
  DDN_CHECK(active_tape, "ddn::TapeScalar operation outside a recording (Tape::Begin)");
  return active_tape;
}

void Tape::Begin() {
  nodes_.clear();
  num_variables_ = 0;
  active_tape = this;
}

void Tape::End() {
  if (active_tape == this) active_tape = nullptr;
}

TapeScalar Tape::Variable(double value) {
  DDN_CHECK(static_cast<int>(nodes_.size()) == num_variables_,
            "ddn::Tape: variables must be created before any operation is recorded");
  nodes_.push_back(TapeNode{});
  return TapeScalar::Recorded(value, num_variables_++);
}

TapeScalar Tape::Record(double value, const TapeNode& node) {
  nodes_.push_back(node);
  return TapeScalar::Recorded(value, static_cast<int>(nodes_.size()) - 1);
}

void Tape::Gradient(const std::vector<TapeScalar>& outputs, const std::vector<double>& weights, double* grad) {
  const int n = size();
  adjoint_.assign(n, 0.0);
  int top = -1;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const int i = outputs[k].index();
    if (i < 0) continue;
    adjoint_[i] += weights[k];
    top = std::max(top, i);
  }
  for (int i = top; i >= num_variables_; --i) {
    const double w = adjoint_[i];
    if (w == 0) continue;
    const TapeNode& nd = nodes_[i];
    if (nd.a >= 0) adjoint_[nd.a] += w * nd.da;
    if (nd.b >= 0) adjoint_[nd.b] += w * nd.db;
  }
  for (int v = 0; v < std::min(num_variables_, top + 1); ++v) grad[v] += adjoint_[v];
}

void Tape::AbsoluteGradient(const std::vector<TapeScalar>& outputs, const std::vector<double>& weights, double* grad) {
  const int n = size();
  adjoint_.assign(n, 0.0);
  int top = -1;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const int i = outputs[k].index();
    if (i < 0) continue;
    adjoint_[i] += std::abs(weights[k]);
    top = std::max(top, i);
  }
  for (int i = top; i >= num_variables_; --i) {
    const double w = adjoint_[i];
    if (w == 0) continue;
    const TapeNode& nd = nodes_[i];
    if (nd.a >= 0) adjoint_[nd.a] += w * std::abs(nd.da);
    if (nd.b >= 0) adjoint_[nd.b] += w * std::abs(nd.db);
  }
  for (int v = 0; v < std::min(num_variables_, top + 1); ++v) grad[v] += adjoint_[v];
}

void Tape::JacobianRows(const std::vector<TapeScalar>& outputs, std::vector<SparseEntry>* rows) {
  const int n = size();
  if (outputs.size() == 1) {  // one row: a plain reverse sweep
    const int root = outputs[0].index();
    if (root < 0) return;
    adjoint_.assign(root + 1, 0.0);
    adjoint_[root] = 1.0;
    for (int i = root; i >= num_variables_; --i) {
      const double w = adjoint_[i];
      if (w == 0) continue;
      const TapeNode& nd = nodes_[i];
      if (nd.a >= 0) adjoint_[nd.a] += w * nd.da;
      if (nd.b >= 0) adjoint_[nd.b] += w * nd.db;
    }
    for (int v = 0; v < std::min(num_variables_, root + 1); ++v)
      if (adjoint_[v] != 0) rows->push_back({0, v, adjoint_[v]});
    return;
  }
  adjoint_.assign(n, 0.0);
  if (static_cast<int>(stamp_.size()) < n) stamp_.resize(n, 0);
  for (size_t k = 0; k < outputs.size(); ++k) {
    const int root = outputs[k].index();
    if (root < 0) continue;
    if (root < num_variables_) {  // the output is a variable itself
      rows->push_back({static_cast<int>(k), root, 1.0});
      continue;
    }
    // The cone of the output: every node it depends on, visited once, then swept in decreasing order.
    if (++generation_ == 0) {
      std::fill(stamp_.begin(), stamp_.end(), 0);
      generation_ = 1;
    }
    cone_.clear();
    cone_.push_back(root);
    stamp_[root] = generation_;
    for (size_t head = 0; head < cone_.size(); ++head) {
      const TapeNode& nd = nodes_[cone_[head]];
      for (int parent : {nd.a, nd.b}) {
        if (parent >= 0 && stamp_[parent] != generation_) {
          stamp_[parent] = generation_;
          cone_.push_back(parent);
        }
      }
    }
    std::sort(cone_.begin(), cone_.end(), std::greater<int>());
    adjoint_[root] = 1.0;
    for (int i : cone_) {
      const double w = adjoint_[i];
      if (i < num_variables_) {
        if (w != 0) rows->push_back({static_cast<int>(k), i, w});
      } else if (w != 0) {
        const TapeNode& nd = nodes_[i];
        if (nd.a >= 0) adjoint_[nd.a] += w * nd.da;
        if (nd.b >= 0) adjoint_[nd.b] += w * nd.db;
      }
      adjoint_[i] = 0.0;
    }
  }
}

void Tape::AddEdge(int i, int j, double w) {
  if (w == 0) return;
  if (i == j) {
    edges_[i].push_back({i, w});
  } else {
    edges_[i].push_back({j, w});
    edges_[j].push_back({i, w});
  }
}

void Tape::Hessian(const std::vector<TapeScalar>& outputs, const std::vector<double>& weights,
                   std::vector<SparseEntry>* lower, double* grad) {
  const int n = size();
  adjoint_.assign(n, 0.0);
  if (static_cast<int>(edges_.size()) < n) edges_.resize(n);
  for (int i = 0; i < n; ++i) edges_[i].clear();
  int top = -1;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const int i = outputs[k].index();
    if (i < 0) continue;
    adjoint_[i] += weights[k];
    top = std::max(top, i);
  }
  // Edge pushing (Gower & Mello 2012): W holds the second-order interactions of the nodes not yet
  // eliminated. Eliminating node i = φ(a, b) maps its edges onto its operands by the chain rule (pushing),
  // adds its own curvature v̄_i ∇²φ (creating) and propagates its adjoint v̄_i.
  for (int i = top; i >= num_variables_; --i) {
    const TapeNode& nd = nodes_[i];
    const double vbar = adjoint_[i];
    std::vector<Edge>& own = edges_[i];
    // `own` does not grow below: every edge added joins nodes < i.
    for (size_t e = 0; e < own.size(); ++e) {
      const int p = own[e].to;
      const double w = own[e].weight;
      if (p > i) continue;  // the mirror of an edge already pushed when p was eliminated
      if (p == i) {
        if (nd.a >= 0) AddEdge(nd.a, nd.a, nd.da * nd.da * w);
        if (nd.b >= 0) {
          AddEdge(nd.b, nd.b, nd.db * nd.db * w);
          AddEdge(nd.a, nd.b, nd.da * nd.db * w);
        }
      } else {
        if (nd.a >= 0) AddEdge(nd.a, p, (nd.a == p ? 2.0 : 1.0) * nd.da * w);
        if (nd.b >= 0) AddEdge(nd.b, p, (nd.b == p ? 2.0 : 1.0) * nd.db * w);
      }
    }
    own.clear();
    if (vbar != 0) {
      if (nd.a >= 0) {
        AddEdge(nd.a, nd.a, vbar * nd.daa);
        adjoint_[nd.a] += vbar * nd.da;
      }
      if (nd.b >= 0) {
        AddEdge(nd.b, nd.b, vbar * nd.dbb);
        AddEdge(nd.a, nd.b, vbar * nd.dab);
        adjoint_[nd.b] += vbar * nd.db;
      }
    }
  }
  for (int v = 0; v < num_variables_; ++v) {
    for (const Edge& e : edges_[v])
      if (e.to <= v) lower->push_back({v, e.to, e.weight});
    if (grad) grad[v] += adjoint_[v];
  }
}

namespace ad {

std::ostream& operator<<(std::ostream& out, const TapeScalar& t) {
  return out << t.value();
}

double BesselJnValue(int n, double x) {
  // J(−n) = (−1)ⁿ Jn.
  if (n < 0) return (-n) % 2 ? -::jn(-n, x) : ::jn(-n, x);
  return ::jn(n, x);
}

}  // namespace ad
}  // namespace ddn
