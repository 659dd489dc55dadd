// apps/pose/weights_net.h: the network of the camera-pose demo, trained end to end through the pnp node.
//
// Per correspondence i of a problem, a small multilayer perceptron shared by all correspondences maps the local
// features f_i (chessboard.h: an 81-value patch) to a weight,
//
//   w_i = σ(MLP(f_i)),   MLP = Linear(81, h) → ReLU → Linear(h, h) → ReLU → Linear(h, 1),   σ the logistic,
//
// and the pose is the declarative node's output (ddn/graph/ops.h NodeLayer over `pnp`; by default the objective
// reproj, or reproj_huber with a threshold α in pixels):
//
//   y = argmin_y Σ_i w_i ‖π(R(r) P_i + t) − q_i‖²   (nodes/geometry/pnp_solver.h).
//
// The loss is the pose error against the pose from clean corners, rotation in radians and translation in units
// of one board square (25 mm), so that 1° and 0.44 mm weigh alike:
//
//   L = (1/B) Σ_b ‖r_b − r*_b‖² + ‖(t_b − t*_b) / 25 mm‖².
//
// Training differentiates L through the argmin by the implicit function theorem (the node's backward) into the
// weights and the MLP. The pose is invariant to scaling all weights of a problem, so only their ratios are
// learned. Graph inputs: "features" (B, 54, 81), "p2d" (B, 54, 2), "p3d" (B, 54, 3), "K" (B, 4), "target" (B, 6).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ddn/graph/graph.h"
#include "ddn/graph/ops.h"

namespace ddn::pose {

// w = σ(x) elementwise.
class Sigmoid : public graph::Op {
 public:
  std::string Describe() const override { return "Sigmoid"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

// The loss above: inputs pose (B, 6), target (B, 6); output a scalar.
class PoseLoss : public graph::Op {
 public:
  explicit PoseLoss(double translation_unit) : unit_(translation_unit) {}
  std::string Describe() const override { return "PoseLoss"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

 private:
  double unit_;
};

struct WeightsNet {
  graph::Graph graph;
  graph::Graph::NodeId weights = -1, pose = -1, loss = -1;
};

// hidden: the width h; objective and alpha: the pnp node's (reproj above; reproj_huber with α in pixels);
// threads: of the pnp node's batch layer (0: all cores).
std::unique_ptr<WeightsNet> BuildWeightsNet(int hidden, const std::string& objective, double alpha, uint64_t seed,
                                            int threads);

}  // namespace ddn::pose
