// ddn/graph/ops.h: the operations of a ddn::graph::Graph.
//
// Every op maps batched tensors (batch axis first, row-major) to one tensor. "Last axis" ops view their
// input as a matrix X with one row per leading index and the last axis as columns, so the same op is a
// fully connected layer on (B, F) and a shared per-point layer (a 1×1 convolution over points, as in
// PointNet) on (B, N, F). Gradients below are those each Backward accumulates (ḡ = dL/d·).
//
//   Linear(in, out)        Y = X W + 1 bᵀ, W (in, out), b (out).            ḡX += ḡY Wᵀ, ḡW += Xᵀ ḡY, ḡb += ḡYᵀ 1.
//                          W ~ N(0, 2/in) (He), b = 0, from the seed.
//   Relu                   y = max(x, 0).                                   ḡx += ḡy [x > 0].
//   BatchNorm(F)           per column over all rows: x̂ = (x − μ)/√(σ² + ε), y = γ x̂ + β (σ² biased);
//                          ḡx += γ/√(σ²+ε) (ḡy − mean(ḡy) − x̂ mean(ḡy x̂)). Evaluation uses running
//                          averages μ_r ← (1−m) μ_r + m μ, σ²_r ← (1−m) σ²_r + m σ² n/(n−1).
//   MaxOverPoints          (B, N, F) → (B, F), y_bf = max_n x_bnf; the gradient goes to the first maximiser.
//   BatchNormMaxOverPoints (B, N, F) → (B, F): BatchNorm(F) then MaxOverPoints in one op, without forming the
//                          normalised tensor (below).
//   MeanOverPoints         (B, N, F) → (B, F), y_bf = (1/N) Σ_n x_bnf.
//   SwapLastAxes           (..., N, F) → (..., F, N).
//   Reshape(shape)         any shape with the same number of elements; one axis may be −1 (inferred).
//   FlattenLeading         (d₀, ..., d_{k−1}, d_k) → (d₀ ⋯ d_{k−1}, d_k).
//   Concat                 along the last axis; all inputs share the leading axes.
//   SoftmaxCrossEntropy    logits (B, C), labels (B) (class indices stored as doubles) → scalar
//                          L = (1/B) Σ_b [log Σ_c exp z_bc − z_b,y_b];  ḡz_b += ḡL (softmax(z_b) − e_y_b)/B.
//   MeanSquaredError       a, b of equal shape → scalar L = (1/n) Σ (a − b)²;  ḡa += 2ḡL(a − b)/n, ḡb −= the same.
//   NodeLayer(node)        any registered declarative node (ddn::MakeNode): inputs in the order given (default:
//                          the node's required inputs in NodeSpec order), output = one named output (default
//                          the first). Forward is ddn::Forward, backward ddn::Backward (the node's implicit VJP).
//
//   PoolLayer(node)        (B, N, F) → (B, F): a declarative node x (B', N) → y (B') applied to every feature
//                          channel, B' = B·F, y_bf = node(x_{b,·,f}); the same as SwapLastAxes → FlattenLeading →
//                          NodeLayer → Reshape({−1, F}), with one transpose into the node's input (a buffer kept
//                          between steps) and one back, and no other copy.
//
// Robust pooling over points (DDN paper §6.1, the robust-pooling experiment): a feature tensor (B, N, F) is
// pooled per channel by `robust_pool`, x (B', N) → y (B'), with B' = B·F: PoolOverPoints() adds a PoolLayer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ddn/graph/graph.h"
#include "ddn/node.h"
#include "ddn/status.h"

namespace ddn::graph {

class Linear : public Op {
 public:
  Linear(int in_features, int out_features, uint64_t seed);
  std::string Describe() const override;
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
  void BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                     const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) override;
  std::vector<Parameter*> Parameters() override { return {&weight_, &bias_}; }

 private:
  void BackwardInto(const Tensor& x, const Tensor& grad_output, Tensor* gx, bool assign);
  int in_, out_;
  Parameter weight_, bias_;
  std::vector<double> partial_w_, partial_b_;  // Backward's per-row-block sums, kept between steps
};

class Relu : public Op {
 public:
  std::string Describe() const override { return "Relu"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
  void BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                     const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) override;
};

struct BatchNormOptions {
  double epsilon = 1e-5;  // added to the variance
  double momentum = 0.1;  // weight of the current batch in the running averages
};

class BatchNorm : public Op {
 public:
  explicit BatchNorm(int features, const BatchNormOptions& options = {});
  std::string Describe() const override;
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
  void BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                     const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) override;
  std::vector<Parameter*> Parameters() override { return {&gamma_, &beta_, &running_mean_, &running_var_}; }

 protected:
  // The normalisation of x (n rows of features_ columns) in `mode`: mean_ and inv_std_ from the batch (updating the
  // running averages) in training, from the running averages in evaluation.
  void Statistics(const Tensor& x, int64_t n, Mode mode);
  // Backward's scale γ/√(σ² + ε), mean ḡy and mean ḡy x̂ per column from Σ ḡy and Σ ḡy x̂, which also go into β's
  // and γ's gradients.
  void BackwardFactors(const std::vector<double>& sum_g, const std::vector<double>& sum_gx, int64_t n,
                       std::vector<double>* scale, std::vector<double>* mean_g, std::vector<double>* mean_gx);
  int features_;
  BatchNormOptions options_;
  Parameter gamma_, beta_, running_mean_, running_var_;
  // Cached by Forward for Backward (x̂ is recomputed from x there: dense.h, normalise).
  Mode mode_ = Mode::kTrain;
  std::vector<double> mean_;     // the mean per column that normalised x (the batch's, or the running one in eval)
  std::vector<double> inv_std_;  // 1/√(σ² + ε) per column

 private:
  void BackwardInto(const Tensor& x, const Tensor& grad_output, Tensor* gx, bool assign);
};

// BatchNorm(F) followed by MaxOverPoints, in one op: (B, N, F) → (B, F), y_bf = max_n (γ_f x̂_bnf + β_f). The
// normalised (B, N, F) tensor is never formed: γ x̂ + β is monotone in x per column (increasing for γ_f > 0,
// decreasing for γ_f < 0, constant for γ_f = 0), so the maximiser is the row where sign(γ_f)·x is largest, and y
// is the normalisation of that one value. Backward, the gradient reaching the normalised tensor is ḡy_bf at
// that row and zero elsewhere: its sums take B terms per column, and the batch-norm product is written without
// forming it. The values are those of BatchNorm → MaxOverPoints (the same expressions, and zeros add nothing),
// except where two rows with different x round to the same maximal y: there the composition takes the first such
// row, this op the row with the larger sign(γ)·x. Parameters are named as BatchNorm's ("gamma", "beta", ...), so a
// network that fuses the two keeps its parameter names. Per training step of the point-cloud network's widest
// layer (2048 × 64), it saves writing and reading the normalised 1 MB, zero-filling its gradient, and a pass.
class BatchNormMaxOverPoints : public BatchNorm {
 public:
  using BatchNorm::BatchNorm;
  std::string Describe() const override;
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
  void BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                     const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) override;

 private:
  void BackwardInto(const Tensor& x, const Tensor& grad_output, Tensor* gx, bool assign);
  std::vector<double> best_;      // (B, F): x at each maximiser
  std::vector<int64_t> argbest_;  // (B, F): the point index n of each maximiser
};

class MaxOverPoints : public Op {
 public:
  std::string Describe() const override { return "MaxOverPoints"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

 private:
  std::vector<int64_t> argmax_;  // per (b, f): the point index n of the maximum
};

class MeanOverPoints : public Op {
 public:
  std::string Describe() const override { return "MeanOverPoints"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class SwapLastAxes : public Op {
 public:
  std::string Describe() const override { return "SwapLastAxes"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class Reshape : public Op {
 public:
  explicit Reshape(Shape shape) : shape_(std::move(shape)) {}
  std::string Describe() const override { return "Reshape" + ShapeString(shape_); }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

 private:
  Shape shape_;
};

class FlattenLeading : public Op {
 public:
  std::string Describe() const override { return "FlattenLeading"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class Concat : public Op {
 public:
  std::string Describe() const override { return "Concat"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class SoftmaxCrossEntropy : public Op {
 public:
  std::string Describe() const override { return "SoftmaxCrossEntropy"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

 private:
  Tensor probabilities_;  // softmax(z), cached
};

class MeanSquaredError : public Op {
 public:
  std::string Describe() const override { return "MeanSquaredError"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

struct NodeLayerOptions {
  std::vector<std::string> inputs;  // node inputs fed by the graph inputs, in order; empty: required ones in order
  std::string output;               // which output; empty: the first
  int threads = 0;                  // for ddn::Forward/Backward; 0: all cores
};

class NodeLayer : public Op {
 public:
  // Throws InvalidInput for an unknown node, parameter, input or output name.
  NodeLayer(const std::string& node, const std::map<std::string, std::string>& params,
            const NodeLayerOptions& options = {});
  std::string Describe() const override;
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

  const Node& node() const { return *node_; }
  // Status of every problem of the last forward/backward (flags are not errors; see ddn/status.h).
  const std::vector<ProblemStatus>& status() const { return status_; }

 private:
  std::unique_ptr<Node> node_;
  std::vector<std::string> input_names_;
  std::string output_name_;
  int threads_;
  std::map<std::string, Tensor> outputs_;  // all outputs of the last forward (Backward needs them)
  std::vector<ProblemStatus> status_;
};

class PoolLayer : public Op {
 public:
  // The node must take one input (x (B', N)) and give a per-problem scalar (y (B')); options.inputs may name
  // that input. Throws InvalidInput otherwise or for an unknown node, parameter, input or output name.
  PoolLayer(const std::string& node, const std::map<std::string, std::string>& params,
            const NodeLayerOptions& options = {});
  std::string Describe() const override;
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

  const Node& node() const { return *node_; }
  const std::vector<ProblemStatus>& status() const { return status_; }

 private:
  std::unique_ptr<Node> node_;
  std::string input_name_, output_name_;
  int threads_;
  std::map<std::string, Tensor> node_inputs_;   // {input: (B·F, N)}, the transposed features (kept)
  std::map<std::string, Tensor> outputs_;       // all outputs of the last forward (Backward needs them)
  std::map<std::string, Tensor> grad_outputs_;  // {output: (B·F)}, kept
  std::vector<ProblemStatus> status_;
};

// Pools (B, N, F) features over the N points, per channel, with a declarative node taking x (B', N) → y (B')
// (e.g. "robust_pool"); returns the (B, F) node, a PoolLayer named `name`. num_features (F) is checked at
// Forward.
Graph::NodeId PoolOverPoints(Graph& graph, const std::string& name, Graph::NodeId features, int num_features,
                             const std::string& node, const std::map<std::string, std::string>& params,
                             const NodeLayerOptions& options = {});

}  // namespace ddn::graph
