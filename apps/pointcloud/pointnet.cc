#include "apps/pointcloud/pointnet.h"

#include <algorithm>

#include "ddn/error.h"
#include "ddn/graph/ops.h"
#include "ddn/params.h"

namespace ddn::pointcloud {

using graph::Graph;

const std::vector<std::string>& RobustPenalties() {
  return ParamChoices("robust_pool", "penalty");  // the node's own list
}

bool IsKnownPooling(const std::string& pooling) {
  const auto& p = RobustPenalties();
  return pooling == "max" || pooling == "mean" || std::find(p.begin(), p.end(), pooling) != p.end();
}

std::unique_ptr<PointNet> BuildPointNet(const PointNetOptions& options) {
  if (!IsKnownPooling(options.pooling)) {
    std::string known = "max, mean";
    for (const auto& p : RobustPenalties()) known += ", " + p;
    throw InvalidInput("unknown pooling '" + options.pooling + "' (" + known + ")");
  }
  if (options.point_widths.empty()) throw InvalidInput("the per-point MLP needs at least one layer");
  for (int w : options.point_widths)
    if (w < 1) throw InvalidInput("layer widths must be positive");
  for (int w : options.head_widths)
    if (w < 1) throw InvalidInput("layer widths must be positive");
  auto net = std::make_unique<PointNet>();
  Graph& g = net->graph;
  net->points = g.Input("points");
  net->labels = g.Input("labels");
  uint64_t seed = options.seed;
  Graph::NodeId h = net->points;
  int width = 2;
  for (size_t k = 0; k < options.point_widths.size(); ++k) {
    const std::string id = std::to_string(k + 1);
    h = g.Add("conv" + id, std::make_unique<graph::Linear>(width, options.point_widths[k], seed++), {h});
    const bool last = k + 1 == options.point_widths.size();
    if (last && options.pooling == "max" && options.fuse_max_pooling) {
      // The last batch norm and the max pooling in one op (ops.h: the same values, the same parameter names,
      // without forming the normalised per-point features).
      h = g.Add("conv" + id + ".bn", std::make_unique<graph::BatchNormMaxOverPoints>(options.point_widths[k]), {h});
      width = options.point_widths[k];
      break;
    }
    h = g.Add("conv" + id + ".bn", std::make_unique<graph::BatchNorm>(options.point_widths[k]), {h});
    // As in PointNet, the last per-point layer has no ReLU: pooling sees batch-normalised features (with a
    // ReLU most channels would be 0 on most points, and a robust estimate would pool that majority).
    if (k + 1 < options.point_widths.size()) h = g.Add("conv" + id + ".relu", std::make_unique<graph::Relu>(), {h});
    width = options.point_widths[k];
  }
  if (options.pooling == "max") {
    // pooled by the last layer's BatchNormMaxOverPoints (above) unless not fused
    if (!options.fuse_max_pooling) h = g.Add("pool", std::make_unique<graph::MaxOverPoints>(), {h});
  } else if (options.pooling == "mean") {
    h = g.Add("pool", std::make_unique<graph::MeanOverPoints>(), {h});
  } else {
    graph::NodeLayerOptions layer;
    layer.threads = options.threads;
    h = graph::PoolOverPoints(g, "pool", h, width, "robust_pool",
                              {{"penalty", options.pooling}, {"alpha", FormatDouble(options.alpha)}}, layer);
  }
  for (size_t k = 0; k < options.head_widths.size(); ++k) {
    const std::string id = std::to_string(k + 1);
    h = g.Add("fc" + id, std::make_unique<graph::Linear>(width, options.head_widths[k], seed++), {h});
    h = g.Add("fc" + id + ".bn", std::make_unique<graph::BatchNorm>(options.head_widths[k]), {h});
    h = g.Add("fc" + id + ".relu", std::make_unique<graph::Relu>(), {h});
    width = options.head_widths[k];
  }
  net->logits = g.Add("logits", std::make_unique<graph::Linear>(width, options.num_classes, seed++), {h});
  net->loss = g.Add("loss", std::make_unique<graph::SoftmaxCrossEntropy>(), {net->logits, net->labels});
  return net;
}

}  // namespace ddn::pointcloud
