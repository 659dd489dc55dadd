#include "ddn/graph/graph.h"

#include "ddn/check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "ddn/error.h"
#include "ddn/files.h"
#include "ddn/params.h"

namespace ddn::graph {

Graph::NodeId Graph::Input(const std::string& name) {
  for (const auto& e : nodes_)
    if (e.name == name) throw InvalidInput("graph: duplicate node name '" + name + "'");
  Entry e;
  e.name = name;
  nodes_.push_back(std::move(e));
  return size() - 1;
}

Graph::NodeId Graph::Add(const std::string& name, std::unique_ptr<Op> op, const std::vector<NodeId>& inputs) {
  if (!op) throw InvalidInput("graph: node '" + name + "' has no op");
  for (const auto& e : nodes_)
    if (e.name == name) throw InvalidInput("graph: duplicate node name '" + name + "'");
  for (NodeId in : inputs) {
    if (in < 0 || in >= size()) {
      throw InvalidInput("graph: node '" + name + "' takes node id " + std::to_string(in) + ", which does not exist");
    }
  }
  for (Parameter* p : op->Parameters()) p->name = name + "." + p->name;
  Entry e;
  e.name = name;
  e.op = std::move(op);
  e.inputs = inputs;
  nodes_.push_back(std::move(e));
  return size() - 1;
}

Tensor Op::OutputTensor(const Shape& shape) {
  Tensor out = std::move(recycled_);
  recycled_ = Tensor();
  ResizeTensor(&out, shape);
  return out;
}

void ResizeTensor(Tensor* t, const Shape& shape) {
  // (A default Tensor has the scalar's empty shape but no value: compare sizes too.)
  if (t->shape() == shape && t->size() == NumElements(shape)) return;
  TensorValues values = std::move(t->values());
  values.resize(static_cast<size_t>(NumElements(shape)));  // default-initialised: no zeroing
  *t = Tensor(shape, std::move(values));
}

void Graph::Forward(const TensorMap& feeds, const std::vector<NodeId>& outputs, Mode mode) {
  std::vector<char> needed(nodes_.size(), 0);
  for (NodeId o : outputs) needed.at(o) = 1;
  for (int n = size() - 1; n >= 0; --n)
    if (needed[n])
      for (NodeId in : nodes_[n].inputs) needed[in] = 1;
  for (auto& e : nodes_) e.computed = false;
  for (int n = 0; n < size(); ++n) {
    if (!needed[n]) continue;
    Entry& e = nodes_[n];
    if (!e.op) {
      auto it = feeds.find(e.name);
      if (it == feeds.end()) throw InvalidInput("graph: input '" + e.name + "' was not fed");
      e.value = it->second;
    } else {
      std::vector<const Tensor*> in;
      for (NodeId i : e.inputs) in.push_back(&nodes_[i].value);
      try {
        e.op->Recycle(std::move(e.value));
        e.value = e.op->Forward(in, mode);
      } catch (const InvalidInput& err) {
        throw InvalidInput("graph node '" + e.name + "' (" + e.op->Describe() + "): " + err.what());
      } catch (const NumericalFailure& err) {
        throw NumericalFailure("graph node '" + e.name + "' (" + e.op->Describe() + "): " + err.what());
      }
    }
    e.computed = true;
  }
}

void Graph::Backward(NodeId loss) {
  Entry& l = nodes_.at(loss);
  if (!l.computed) throw InvalidInput("graph: backward from '" + l.name + "', which the last forward did not compute");
  if (l.value.size() != 1) {
    throw InvalidInput("graph: backward needs a scalar loss, '" + l.name + "' has shape " +
                       ShapeString(l.value.shape()));
  }
  // Only ancestors of the loss receive gradients.
  std::vector<char> reached(nodes_.size(), 0);
  reached[loss] = 1;
  for (int n = loss; n >= 0; --n)
    if (reached[n])
      for (NodeId in : nodes_[n].inputs) reached[in] = 1;
  // The first gradient a node receives comes from its reached consumer of highest id (consumers run from the loss
  // down). When the node is one input of that consumer (not two of its inputs at once), the consumer writes it
  // (Op::BackwardFresh) and it is not zeroed first; every other gradient is zeroed and accumulated into.
  std::vector<int> first_consumer(nodes_.size(), -1);
  std::vector<char> written_fresh(nodes_.size(), 0);
  for (int n = loss; n >= 0; --n) {
    if (!reached[n] || !nodes_[n].op) continue;
    const std::vector<NodeId>& ins = nodes_[n].inputs;
    for (NodeId in : ins) {
      if (first_consumer[in] >= 0) continue;
      first_consumer[in] = n;
      written_fresh[in] = in != loss && std::count(ins.begin(), ins.end(), in) == 1;
    }
  }
  // Gradients keep their buffer when the shape is unchanged (no allocation in a training loop).
  for (int n = 0; n < size(); ++n) {
    Tensor& g = nodes_[n].grad;
    if (!reached[n]) {
      g = Tensor();
    } else if (written_fresh[n]) {
      ResizeTensor(&g, nodes_[n].value.shape());
    } else if (g.shape() == nodes_[n].value.shape() && g.size() == nodes_[n].value.size()) {
      std::fill(g.values().begin(), g.values().end(), 0.0);
    } else {
      g = Tensor(nodes_[n].value.shape());
    }
  }
  l.grad[0] = 1.0;
  for (int n = loss; n >= 0; --n) {
    Entry& e = nodes_[n];
    if (!reached[n] || !e.op) continue;
    std::vector<const Tensor*> in;
    std::vector<Tensor*> grad_in;
    std::vector<char> fresh;
    bool any_fresh = false;
    for (NodeId i : e.inputs) {
      in.push_back(&nodes_[i].value);
      grad_in.push_back(&nodes_[i].grad);
      fresh.push_back(written_fresh[i] && first_consumer[i] == n);
      any_fresh |= fresh.back() != 0;
    }
    try {
      if (any_fresh) {
        e.op->BackwardFresh(in, e.value, e.grad, grad_in, fresh);
      } else {
        e.op->Backward(in, e.value, e.grad, grad_in);
      }
    } catch (const InvalidInput& err) {
      throw InvalidInput("graph node '" + e.name + "' (" + e.op->Describe() + ") backward: " + err.what());
    } catch (const NumericalFailure& err) {
      throw NumericalFailure("graph node '" + e.name + "' (" + e.op->Describe() + ") backward: " + err.what());
    }
  }
}

void Op::BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                       const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) {
  for (size_t i = 0; i < grad_inputs.size(); ++i)
    if (fresh[i] && grad_inputs[i]) std::fill(grad_inputs[i]->values().begin(), grad_inputs[i]->values().end(), 0.0);
  Backward(inputs, output, grad_output, grad_inputs);
}

void Graph::ZeroGrad() {
  for (Parameter* p : Parameters()) {
    if (p->grad.shape() != p->value.shape()) p->grad = Tensor(p->value.shape());
    std::fill(p->grad.values().begin(), p->grad.values().end(), 0.0);
  }
}

const Tensor& Graph::Value(NodeId node) const {
  return nodes_.at(node).value;
}
const Tensor& Graph::Grad(NodeId node) const {
  return nodes_.at(node).grad;
}

Graph::NodeId Graph::Find(const std::string& name) const {
  for (int n = 0; n < size(); ++n)
    if (nodes_[n].name == name) return n;
  throw InvalidInput("graph: no node named '" + name + "'");
}

std::vector<Parameter*> Graph::Parameters() const {
  std::vector<Parameter*> all;
  for (const auto& e : nodes_)
    if (e.op)
      for (Parameter* p : e.op->Parameters()) all.push_back(p);
  return all;
}

std::vector<Parameter*> Graph::TrainableParameters() const {
  std::vector<Parameter*> all;
  for (Parameter* p : Parameters())
    if (p->trainable) all.push_back(p);
  return all;
}

// ---- Saving and loading ------------------------------------------------------------------------------

void SaveParameters(const Graph& graph, const std::string& path) {
  std::ostringstream out;  // written whole and renamed into place (ddn/files.h): never a half-written file
  const auto params = graph.Parameters();
  out << "ddn-graph-parameters 1\n" << params.size() << "\n";
  for (const Parameter* p : params) {
    out << p->name << " " << p->value.rank();
    for (int64_t d : p->value.shape()) out << " " << d;
    out << "\n";
    for (int64_t i = 0; i < p->value.size(); ++i) out << (i ? " " : "") << FormatDouble(p->value[i]);
    out << "\n";
  }
  WriteFileAtomically(path, out.str());
}

void LoadParameters(Graph& graph, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InvalidInput("cannot read parameters from '" + path + "'");
  std::string magic;
  int version = 0;
  size_t count = 0;
  if (!(in >> magic >> version >> count) || magic != "ddn-graph-parameters" || version != 1) {
    throw InvalidInput("'" + path + "' is not a ddn-graph-parameters version 1 file");
  }
  std::map<std::string, Tensor> loaded;
  for (size_t k = 0; k < count; ++k) {
    std::string name;
    int rank = 0;
    if (!(in >> name >> rank) || rank < 0)
      throw InvalidInput("'" + path + "': bad header of parameter " + std::to_string(k));
    Shape shape(rank);
    for (auto& d : shape)
      if (!(in >> d) || d < 0) throw InvalidInput("'" + path + "': bad shape of parameter '" + name + "'");
    Tensor t(shape);
    for (int64_t i = 0; i < t.size(); ++i)
      if (!(in >> t[i])) throw InvalidInput("'" + path + "': too few values for parameter '" + name + "'");
    loaded[name] = std::move(t);
  }
  const auto params = graph.Parameters();
  for (Parameter* p : params) {
    auto it = loaded.find(p->name);
    if (it == loaded.end()) throw InvalidInput("'" + path + "' lacks parameter '" + p->name + "'");
    if (it->second.shape() != p->value.shape()) {
      throw InvalidInput("'" + path + "': parameter '" + p->name + "' has shape " + ShapeString(it->second.shape()) +
                         ", the graph wants " + ShapeString(p->value.shape()));
    }
  }
  if (loaded.size() != params.size()) {
    for (const auto& [name, t] : loaded) {
      bool known = false;
      for (Parameter* p : params) known = known || p->name == name;
      if (!known) throw InvalidInput("'" + path + "' has parameter '" + name + "', which the graph does not have");
    }
  }
  for (Parameter* p : params) p->value = loaded[p->name];
}

// ---- Gradient check ----------------------------------------------------------------------------------

std::string GraphCheckReport::ToString() const {
  std::ostringstream s;
  char line[256];
  for (const auto& e : entries) {
    std::snprintf(line, sizeof(line), "%-32s rel_error %.3e  |grad| %.3e\n", e.name.c_str(), e.rel_error, e.grad_norm);
    s << line;
  }
  std::snprintf(line, sizeof(line), "max rel_error %.3e\n", max_rel_error);
  s << line;
  return s.str();
}

GraphCheckReport CheckGraphGradients(Graph& graph, const TensorMap& feeds, Graph::NodeId loss,
                                     const std::vector<std::string>& inputs, Mode mode, double step) {
  graph.Forward(feeds, {loss}, mode);
  graph.ZeroGrad();
  graph.Backward(loss);
  auto eval = [&](const TensorMap& f) {
    graph.Forward(f, {loss}, mode);
    return graph.Value(loss)[0];
  };
  // Fourth-order central difference of L along one coordinate `x` (a reference into the array).
  auto fd = [&](double& x, const TensorMap& f) {
    const double x0 = x, h = step * std::max(1.0, std::abs(x0));
    const double d = CentralDifference(
        [&](double t) {
          x = x0 + t;
          return eval(f);
        },
        h);
    x = x0;
    return d;
  };
  auto compare = [](const std::string& name, const Tensor& g, const std::vector<double>& g_fd) {
    double diff = 0, ng = 0, nf = 0;
    for (int64_t i = 0; i < g.size(); ++i) {
      diff += (g[i] - g_fd[i]) * (g[i] - g_fd[i]);
      ng += g[i] * g[i];
      nf += g_fd[i] * g_fd[i];
    }
    GraphCheckEntry e;
    e.name = name;
    e.grad_norm = std::sqrt(ng);
    e.rel_error = std::sqrt(diff) / std::max({std::sqrt(ng), std::sqrt(nf), 1e-8});
    return e;
  };
  GraphCheckReport report;
  for (Parameter* p : graph.TrainableParameters()) {
    const Tensor g = p->grad;
    std::vector<double> g_fd(g.size());
    for (int64_t i = 0; i < p->value.size(); ++i) g_fd[i] = fd(p->value[i], feeds);
    report.entries.push_back(compare(p->name, g, g_fd));
  }
  for (const std::string& name : inputs) {
    const Tensor g = graph.Grad(graph.Find(name));
    if (g.empty()) throw InvalidInput("gradient check: input '" + name + "' does not reach the loss");
    TensorMap f = feeds;
    Tensor& x = f.at(name);
    std::vector<double> g_fd(g.size());
    for (int64_t i = 0; i < x.size(); ++i) g_fd[i] = fd(x[i], f);
    report.entries.push_back(compare(name, g, g_fd));
  }
  for (const auto& e : report.entries) report.max_rel_error = std::max(report.max_rel_error, e.rel_error);
  // Leave the graph as the caller's forward/backward left it.
  graph.Forward(feeds, {loss}, mode);
  graph.ZeroGrad();
  graph.Backward(loss);
  return report;
}

}  // namespace ddn::graph
