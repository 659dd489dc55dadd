// The point-cloud network with max pooling fused (BatchNormMaxOverPoints) against the same network with
// BatchNorm → MaxOverPoints: the same parameters, losses and parameter values after training steps, bit for bit.
#include "apps/pointcloud/pointnet.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ddn/graph/optim.h"
#include "ddn/random.h"

namespace ddn::pointcloud {
namespace {

std::map<std::string, std::vector<double>> ParameterValues(const graph::Graph& g) {
  std::map<std::string, std::vector<double>> values;
  for (const graph::Parameter* p : g.Parameters()) values[p->name] = p->value.ToVector();
  return values;
}

TEST(PointNet, FusedMaxPoolingTrainsAsTheTwoOps) {
  PointNetOptions options;
  options.point_widths = {8, 16};
  options.head_widths = {12};
  options.num_classes = 3;
  options.threads = 1;
  PointNetOptions unfused = options;
  unfused.fuse_max_pooling = false;
  auto fused_net = BuildPointNet(options), plain_net = BuildPointNet(unfused);
  ASSERT_EQ(ParameterValues(fused_net->graph), ParameterValues(plain_net->graph));  // same names, same initialisation

  const int64_t batch = 6, points = 9;
  Rng rng(7);
  Tensor x({batch, points, 2}), labels({batch});
  for (double& v : x.values()) v = rng.Normal();
  for (int64_t b = 0; b < batch; ++b) labels[b] = static_cast<double>(b % 3);
  for (int64_t j = 0; j < 2; ++j) x[(0 * points + 5) * 2 + j] = x[(0 * points + 3) * 2 + j];  // a repeated point

  graph::AdamOptions adam_options;
  adam_options.learning_rate = 0.01;
  graph::Adam fused_adam(fused_net->graph.TrainableParameters(), adam_options);
  graph::Adam plain_adam(plain_net->graph.TrainableParameters(), adam_options);
  for (int step = 0; step < 5; ++step) {
    for (auto [net, adam] : {std::pair{fused_net.get(), &fused_adam}, std::pair{plain_net.get(), &plain_adam}}) {
      net->graph.Forward({{"points", x}, {"labels", labels}}, {net->loss}, graph::Mode::kTrain);
      net->graph.ZeroGrad();
      net->graph.Backward(net->loss);
      adam->Step();
    }
    EXPECT_EQ(fused_net->graph.Value(fused_net->loss).ToVector(), plain_net->graph.Value(plain_net->loss).ToVector())
        << "step " << step;
  }
  EXPECT_EQ(ParameterValues(fused_net->graph), ParameterValues(plain_net->graph));
  for (auto* net : {fused_net.get(), plain_net.get()})
    net->graph.Forward({{"points", x}}, {net->logits}, graph::Mode::kEval);
  EXPECT_EQ(fused_net->graph.Value(fused_net->logits).ToVector(), plain_net->graph.Value(plain_net->logits).ToVector());
}

}  // namespace
}  // namespace ddn::pointcloud
