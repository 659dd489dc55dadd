// ddn/graph/graph.h: a small directed acyclic graph of differentiable operations, with reverse mode.
//
// A declarative node is meant to sit inside a network trained end to end (Gould, Hartley & Campbell,
// "Deep Declarative Networks", TPAMI 2022, §5). ddn::graph::Graph is the smallest composition layer that
// makes this possible: values are batched ddn::Tensors (batch axis first, row-major), operations
// (ops.h) map input tensors to one output tensor, and Backward runs the chain rule in reverse,
//
//   ḡ_x += (∂op/∂x)ᵀ ḡ_out      for every op, inputs x, in reverse order of construction,
//
// seeded with ḡ_loss = 1 at a scalar loss. Declarative nodes enter through ops.h's NodeLayer, whose
// backward is the node's implicit-function-theorem VJP (ddn/batch.h), so a graph mixes closed-form
// layers and argmin layers freely.
//
// The graph is a DAG by construction: Add() only accepts inputs that already exist, so the order of
// construction is a topological order; Forward evaluates in that order (only the ancestors of the
// requested outputs), Backward in the reverse one. Parameters are owned by the ops (ddn::graph::Parameter:
// a value and its accumulated gradient) and named "<node name>.<parameter>" so that they can be saved and
// loaded by name (SaveParameters / LoadParameters below; the format is documented there).
//
// Usage:
//
//   ddn::graph::Graph g;
//   auto x = g.Input("x");                                      // (B, N, 2)
//   auto labels = g.Input("labels");                           // (B), class indices as doubles
//   auto h = g.Add("fc1", std::make_unique<Linear>(2, 16, seed), {x});
//   ...
//   auto loss = g.Add("loss", std::make_unique<SoftmaxCrossEntropy>(), {logits, labels});
//   g.Forward({{"x", batch_x}, {"labels", batch_y}}, {loss}, Mode::kTrain);
//   g.ZeroGrad();
//   g.Backward(loss);                                          // parameter gradients are now in g.Parameters()
//   optimizer.Step();                                          // optim.h
//
// Not thread-safe: a Graph holds the values of its last forward pass (and ops cache what their backward
// needs). Ops parallelise internally (Eigen, the node batch layer).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ddn/tensor.h"

namespace ddn::graph {

using TensorMap = std::map<std::string, Tensor>;

// Training uses batch statistics in batch norm (and updates its running averages); evaluation uses the
// running averages. Every other op behaves the same in both modes.
enum class Mode { kTrain, kEval };

// A learnable (or saved) array and the gradient accumulated into it by Backward.
struct Parameter {
  std::string name;  // "<node name>.<local name>" once added to a graph, e.g. "fc1.weight"
  Tensor value;
  Tensor grad;            // same shape as value; zeroed by Graph::ZeroGrad
  bool trainable = true;  // false for state that is saved but not optimised (batch-norm running averages)
};

// One operation: out = f(inputs). Implementations live in ops.h.
class Op {
 public:
  virtual ~Op() = default;
  // The op's kind, for messages ("Linear(2 -> 16)").
  virtual std::string Describe() const = 0;
  // Computes the output. May cache what Backward needs (Backward is always called after the Forward of
  // the same pass). Throws InvalidInput on wrong shapes, naming the op.
  virtual Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) = 0;
  // Accumulates the vector–Jacobian product: grad_inputs[i] += (∂out/∂input_i)ᵀ grad_output, and adds
  // parameter gradients into Parameter::grad. grad_inputs[i] is pre-sized and zero-initialised by the graph (a
  // gradient that this op gives first goes to BackwardFresh instead);
  // an op may leave an input's gradient untouched (labels, indices).
  virtual void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                        const std::vector<Tensor*>& grad_inputs) = 0;
  // Backward for an op that gives some inputs their first gradient: for each i with fresh[i], grad_inputs[i] is
  // sized but holds no values (the graph did not zero it), and the op must write every element (=, not +=). The
  // default zero-fills those and calls Backward; ReLU, Linear and BatchNorm write their products directly, which
  // saves a zero-filling pass and a read of every activation's gradient in a training step.
  virtual void BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                             const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh);
  // Parameters owned by the op (pointers stay valid for the op's lifetime).
  virtual std::vector<Parameter*> Parameters() { return {}; }

  // Before each Forward the graph hands the op the tensor of its previous output, which nothing reads any
  // more; OutputTensor(shape) returns a tensor of `shape` in that buffer (values unset: write them all), so a
  // training loop of equal batches allocates no output after its first step.
  void Recycle(Tensor previous) { recycled_ = std::move(previous); }

 protected:
  Tensor OutputTensor(const Shape& shape);

 private:
  Tensor recycled_;
};

// Gives `t` the shape `shape`, keeping its buffer when it is large enough (values unset after a change of size).
void ResizeTensor(Tensor* t, const Shape& shape);

class Graph {
 public:
  using NodeId = int;

  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // A value fed at Forward time under `name`.
  NodeId Input(const std::string& name);
  // Adds an op applied to existing nodes. `name` must be unique; parameters become "<name>.<local>".
  NodeId Add(const std::string& name, std::unique_ptr<Op> op, const std::vector<NodeId>& inputs);

  // Evaluates `outputs` and their ancestors. Every Input among the ancestors must be in `feeds`.
  void Forward(const TensorMap& feeds, const std::vector<NodeId>& outputs, Mode mode);
  // Reverse mode from a scalar (one-element) `loss` computed by the last Forward: accumulates gradients
  // into the parameters and into Grad(node) for every node on the way. Call ZeroGrad first unless
  // accumulating over several passes is intended.
  void Backward(NodeId loss);
  // Zeroes every parameter gradient.
  void ZeroGrad();

  const Tensor& Value(NodeId node) const;
  // dloss/dnode from the last Backward (empty if the node was not reached).
  const Tensor& Grad(NodeId node) const;
  NodeId Find(const std::string& name) const;  // throws InvalidInput if unknown
  const std::string& Name(NodeId node) const { return nodes_.at(node).name; }
  Op* GetOp(NodeId node) const { return nodes_.at(node).op.get(); }
  int size() const { return static_cast<int>(nodes_.size()); }

  // Every parameter (trainable or not), in order of construction.
  std::vector<Parameter*> Parameters() const;
  std::vector<Parameter*> TrainableParameters() const;

 private:
  struct Entry {
    std::string name;
    std::unique_ptr<Op> op;  // nullptr for an input
    std::vector<NodeId> inputs;
    Tensor value, grad;
    bool computed = false;
  };
  std::vector<Entry> nodes_;
};

// ---- Saving and loading parameters -------------------------------------------------------------------
// Text format, one parameter per two lines, values with 17 significant digits (exact round trip):
//
//   ddn-graph-parameters 1
//   <count>
//   <name> <rank> <dim_0> ... <dim_{rank-1}>
//   <value_0> <value_1> ... <value_{n-1}>          (row-major)
//   ...
//
// LoadParameters matches by name and requires every parameter of the graph to be present with the same
// shape; it throws InvalidInput naming the first mismatch (a missing, unknown or misshapen parameter).
// SaveParameters writes the file atomically (ddn/files.h: a temporary file renamed into place); it throws
// ddn::Error if it cannot.
void SaveParameters(const Graph& graph, const std::string& path);
void LoadParameters(Graph& graph, const std::string& path);

// ---- Gradient check -------------------------------------------------------------------------------
// Compares the reverse-mode gradient of a scalar `loss` with respect to every trainable parameter and
// the feeds named in `inputs` against fourth-order central finite differences of Forward (in `mode`),
//   ∂L/∂θ_j ≈ [−L(θ + 2h e_j) + 8 L(θ + h e_j) − 8 L(θ − h e_j) + L(θ − 2h e_j)] / (12 h),
// h = step · max(1, |θ_j|). Relative error per array: ‖g − g_fd‖₂ / max(‖g‖₂, ‖g_fd‖₂, 1e-8).
struct GraphCheckEntry {
  std::string name;  // parameter name or input name
  double rel_error = 0;
  double grad_norm = 0;
};
struct GraphCheckReport {
  std::vector<GraphCheckEntry> entries;
  double max_rel_error = 0;
  std::string ToString() const;  // one line per entry
};
GraphCheckReport CheckGraphGradients(Graph& graph, const TensorMap& feeds, Graph::NodeId loss,
                                     const std::vector<std::string>& inputs = {}, Mode mode = Mode::kTrain,
                                     double step = 1e-4);

}  // namespace ddn::graph
