#include "apps/pose/weights_net.h"

#include <cmath>

#include "apps/pose/chessboard.h"
#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::pose {

Tensor Sigmoid::Forward(const std::vector<const Tensor*>& inputs, graph::Mode) {
  if (inputs.size() != 1) throw InvalidInput("takes one input");
  Tensor y = *inputs[0];
  for (double& v : y.values()) v = v >= 0 ? 1.0 / (1.0 + std::exp(-v)) : std::exp(v) / (1.0 + std::exp(v));
  return y;
}

void Sigmoid::Backward(const std::vector<const Tensor*>&, const Tensor& output, const Tensor& grad_output,
                       const std::vector<Tensor*>& grad_inputs) {
  if (!grad_inputs[0]) return;
  for (int64_t i = 0; i < output.size(); ++i) (*grad_inputs[0])[i] += grad_output[i] * output[i] * (1.0 - output[i]);
}

Tensor PoseLoss::Forward(const std::vector<const Tensor*>& inputs, graph::Mode) {
  if (inputs.size() != 2) throw InvalidInput("takes pose and target");
  const Tensor &y = *inputs[0], &t = *inputs[1];
  if (y.shape() != t.shape() || y.rank() != 2 || y.dim(1) != 6) {
    throw InvalidInput("pose and target must both be (B, 6), got " + ShapeString(y.shape()) + " and " +
                       ShapeString(t.shape()));
  }
  double sum = 0;
  for (int64_t b = 0; b < y.dim(0); ++b)
    for (int k = 0; k < 6; ++k) {
      const double d = (y.problem(b)[k] - t.problem(b)[k]) / (k < 3 ? 1.0 : unit_);
      sum += d * d;
    }
  return Tensor({}, {sum / y.dim(0)});
}

void PoseLoss::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                        const std::vector<Tensor*>& grad_inputs) {
  const Tensor &y = *inputs[0], &t = *inputs[1];
  const double scale = 2.0 * grad_output[0] / y.dim(0);
  for (int64_t b = 0; b < y.dim(0); ++b)
    for (int k = 0; k < 6; ++k) {
      const double u = k < 3 ? 1.0 : unit_;
      const double g = scale * (y.problem(b)[k] - t.problem(b)[k]) / (u * u);
      if (grad_inputs[0]) grad_inputs[0]->problem(b)[k] += g;
      if (grad_inputs[1]) grad_inputs[1]->problem(b)[k] -= g;
    }
}

std::unique_ptr<WeightsNet> BuildWeightsNet(int hidden, const std::string& objective, double alpha, uint64_t seed,
                                            int threads) {
  auto net = std::make_unique<WeightsNet>();
  graph::Graph& g = net->graph;
  const auto features = g.Input("features");
  const auto p2d = g.Input("p2d");
  const auto p3d = g.Input("p3d");
  const auto K = g.Input("K");
  const auto target = g.Input("target");
  auto h = g.Add("fc1", std::make_unique<graph::Linear>(kFeatures, hidden, seed), {features});
  h = g.Add("relu1", std::make_unique<graph::Relu>(), {h});
  h = g.Add("fc2", std::make_unique<graph::Linear>(hidden, hidden, seed + 1), {h});
  h = g.Add("relu2", std::make_unique<graph::Relu>(), {h});
  h = g.Add("fc3", std::make_unique<graph::Linear>(hidden, 1, seed + 2), {h});
  h = g.Add("flatten", std::make_unique<graph::Reshape>(Shape{-1, kCorners}), {h});
  net->weights = g.Add("weights", std::make_unique<Sigmoid>(), {h});
  graph::NodeLayerOptions options;
  options.inputs = {"p2d", "p3d", "w", "K"};
  options.threads = threads;
  net->pose = g.Add(
      "pnp",
      std::make_unique<graph::NodeLayer>(
          "pnp", std::map<std::string, std::string>{{"objective", objective}, {"alpha", FormatDouble(alpha)}}, options),
      {p2d, p3d, net->weights, K});
  net->loss = g.Add("loss", std::make_unique<PoseLoss>(kSquareMm), {net->pose, target});
  return net;
}

}  // namespace ddn::pose
