// apps/normals/weight_net.h: the learned weighting of ddn-normals (DeepFit, Ben-Shabat & Gould, ECCV 2020, with a
// plane instead of a jet) as a ddn::graph::Graph.
//
//   features (B, k, F) ─ Linear(F→32) ─ ReLU ─ Linear(32→64) ─ ReLU ─ h (B, k, 64)
//   h ─ Linear(64→32) ─ a (B, k, 32);   h ─ max over the k neighbours (B, 64) ─ Linear(64→32) ─ c (B, 32)
//   ReLU(a + c broadcast to every neighbour) ─ Linear(32→1) ─ weight w = ε + (1 − ε)·sigmoid(z)   (B, k)
// (the same as a Linear(128→32) on the concatenation [h, broadcast max h], computing the pooled half once per
// neighbourhood instead of once per point)
//   local points (B, k, 3), w ─ fit_plane (NodeLayer, quadratic penalty) ─ normal (B, 3)
//   loss = mean_b (1 − |n_b · t_b|)                                   t = the true normal (unoriented loss)
//
// The last layer starts at weight 0 and bias 2, so every w starts equal: the untrained network is the unweighted
// PCA fit, and training moves away from it only where that lowers the loss. The gradient of the loss reaches the
// weights through fit_plane's implicit backward (dL/dw), and the layers through ordinary reverse mode.
//
// Ops defined here (graph/ops.h has the others):
//   PointWeight      w = ε + (1 − ε)σ(z), ε = 1e-3: positive weights, so every fit has k positive weights.
//   AddBroadcast     (B, k, F), (B, F) → (B, k, F): x_bj + c_b; ḡc_b = Σ_j ḡ_bj.
//   UnorientedNormalLoss  (B, D), (B, D) → () : mean (1 − |n·t|); ḡn_b = −sign(n_b·t_b) t_b ḡL / B.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"

namespace ddn::normals {

class PointWeight : public graph::Op {
 public:
  static constexpr double kFloor = 1e-3;
  std::string Describe() const override { return "PointWeight"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class AddBroadcast : public graph::Op {
 public:
  std::string Describe() const override { return "AddBroadcast"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class UnorientedNormalLoss : public graph::Op {
 public:
  std::string Describe() const override { return "UnorientedNormalLoss"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

struct WeightNet {
  graph::Graph graph;
  graph::Graph::NodeId features, points, target;  // inputs: (B, k, F), (B, k, 3), (B, 3)
  graph::Graph::NodeId weights, normal, loss;
};

// Builds the network for neighbourhoods of k points with `num_features` features each.
std::unique_ptr<WeightNet> BuildWeightNet(int k, int num_features, uint64_t seed, int threads);

}  // namespace ddn::normals
