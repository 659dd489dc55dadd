#include "apps/normals/weight_net.h"

#include <cmath>

#include "ddn/error.h"

namespace ddn::normals {

using graph::Graph;
using graph::Mode;

Tensor PointWeight::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  if (inputs.size() != 1) throw InvalidInput("PointWeight takes one input");
  Tensor out(inputs[0]->shape());
  for (int64_t i = 0; i < out.size(); ++i) out[i] = kFloor + (1 - kFloor) / (1 + std::exp(-(*inputs[0])[i]));
  return out;
}

void PointWeight::Backward(const std::vector<const Tensor*>&, const Tensor& output, const Tensor& grad_output,
                           const std::vector<Tensor*>& grad_inputs) {
  if (!grad_inputs[0]) return;
  for (int64_t i = 0; i < output.size(); ++i) {
    const double s = (output[i] - kFloor) / (1 - kFloor);  // σ(z)
    (*grad_inputs[0])[i] += grad_output[i] * (1 - kFloor) * s * (1 - s);
  }
}

Tensor AddBroadcast::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  if (inputs.size() != 2 || inputs[0]->rank() != 3 || inputs[1]->rank() != 2 ||
      inputs[0]->dim(0) != inputs[1]->dim(0) || inputs[0]->dim(2) != inputs[1]->dim(1)) {
    throw InvalidInput("AddBroadcast takes (B, k, F) and (B, F)");
  }
  const int64_t B = inputs[0]->dim(0), k = inputs[0]->dim(1), F = inputs[0]->dim(2);
  Tensor out = *inputs[0];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t f = 0; f < F; ++f) out[(b * k + j) * F + f] += (*inputs[1])[b * F + f];
  return out;
}

void AddBroadcast::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                            const std::vector<Tensor*>& grad_inputs) {
  const int64_t B = inputs[0]->dim(0), k = inputs[0]->dim(1), F = inputs[0]->dim(2);
  if (grad_inputs[0]) {
    Tensor& g = *grad_inputs[0];
    for (int64_t i = 0; i < g.size(); ++i) g[i] += grad_output[i];
  }
  if (grad_inputs[1]) {
    Tensor& g = *grad_inputs[1];
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < k; ++j)
        for (int64_t f = 0; f < F; ++f) g[b * F + f] += grad_output[(b * k + j) * F + f];
  }
}

Tensor UnorientedNormalLoss::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  if (inputs.size() != 2 || inputs[0]->shape() != inputs[1]->shape() || inputs[0]->rank() != 2) {
    throw InvalidInput("UnorientedNormalLoss takes two (B, D) tensors");
  }
  const int64_t B = inputs[0]->dim(0), D = inputs[0]->dim(1);
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    double dot = 0;
    for (int64_t k = 0; k < D; ++k) dot += (*inputs[0])[b * D + k] * (*inputs[1])[b * D + k];
    loss += 1 - std::abs(dot);
  }
  return Tensor(Shape{}, {loss / B});
}

void UnorientedNormalLoss::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                                    const std::vector<Tensor*>& grad_inputs) {
  const int64_t B = inputs[0]->dim(0), D = inputs[0]->dim(1);
  const double g = grad_output[0] / B;
  for (int64_t b = 0; b < B; ++b) {
    double dot = 0;
    for (int64_t k = 0; k < D; ++k) dot += (*inputs[0])[b * D + k] * (*inputs[1])[b * D + k];
    const double s = dot >= 0 ? 1.0 : -1.0;
    for (int64_t k = 0; k < D; ++k) {
      if (grad_inputs[0]) (*grad_inputs[0])[b * D + k] -= g * s * (*inputs[1])[b * D + k];
      if (grad_inputs[1]) (*grad_inputs[1])[b * D + k] -= g * s * (*inputs[0])[b * D + k];
    }
  }
}

std::unique_ptr<WeightNet> BuildWeightNet(int k, int num_features, uint64_t seed, int threads) {
  auto net = std::make_unique<WeightNet>();
  Graph& g = net->graph;
  net->features = g.Input("features");
  net->points = g.Input("points");
  net->target = g.Input("target");
  auto h1 = g.Add("mlp1", std::make_unique<graph::Linear>(num_features, 32, seed), {net->features});
  h1 = g.Add("mlp1.relu", std::make_unique<graph::Relu>(), {h1});
  auto h2 = g.Add("mlp2", std::make_unique<graph::Linear>(32, 64, seed + 1), {h1});
  h2 = g.Add("mlp2.relu", std::make_unique<graph::Relu>(), {h2});
  auto pooled = g.Add("pool", std::make_unique<graph::MaxOverPoints>(), {h2});
  auto local = g.Add("mlp3.point", std::make_unique<graph::Linear>(64, 32, seed + 2), {h2});
  auto context = g.Add("mlp3.context", std::make_unique<graph::Linear>(64, 32, seed + 4), {pooled});
  auto h3 = g.Add("mlp3", std::make_unique<AddBroadcast>(), {local, context});
  h3 = g.Add("mlp3.relu", std::make_unique<graph::Relu>(), {h3});
  auto z = g.Add("score", std::make_unique<graph::Linear>(32, 1, seed + 3), {h3});
  z = g.Add("score.flatten", std::make_unique<graph::Reshape>(Shape{-1, k}), {z});
  net->weights = g.Add("weight", std::make_unique<PointWeight>(), {z});
  graph::NodeLayerOptions layer;
  layer.inputs = {"points", "weights"};
  layer.threads = threads;
  net->normal =
      g.Add("fit", std::make_unique<graph::NodeLayer>("fit_plane", std::map<std::string, std::string>{}, layer),
            {net->points, net->weights});
  net->loss = g.Add("loss", std::make_unique<UnorientedNormalLoss>(), {net->normal, net->target});
  for (graph::Parameter* p : g.Parameters()) {
    if (p->name == "score.weight") p->value = Tensor(p->value.shape(), 0.0);
    if (p->name == "score.bias") p->value = Tensor(p->value.shape(), 2.0);
  }
  return net;
}

}  // namespace ddn::normals
