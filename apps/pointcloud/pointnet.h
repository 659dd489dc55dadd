// apps/pointcloud/pointnet.h: the PointNet-style classifier of the robust point-cloud demo.
//
// The DDN paper's robust-pooling experiment (Gould, Hartley & Campbell, TPAMI 2022, §6.1) takes PointNet
// (Qi et al., CVPR 2017) without its alignment networks and swaps the global max pooling for robust pooling.
// The network here has the same structure at a digit-cloud scale:
//
//   points (B, N, 2) → [shared per-point Linear → BatchNorm → ReLU] × (k − 1)   (1×1 convolutions over points)
//                    → shared per-point Linear → BatchNorm                        (no ReLU, as in PointNet)
//                    → pooling over the N points, per feature channel             (B, F)
//                    → [Linear → BatchNorm → ReLU] × l → Linear → logits (B, C) → softmax cross-entropy
//
// With "max" pooling the last BatchNorm and the pooling are one op (graph::BatchNormMaxOverPoints: the same
// values without forming the normalised per-point features). Pooling is "max", "mean", or a penalty of the declarative
// node `robust_pool` (quadratic, pseudo_huber, huber, welsch, truncated_quadratic, cauchy, geman_mcclure with scale α):
// y_f = argmin_y Σ_n φ(y − x_nf; α), whose gradient flows back to the per-point features by the implicit function
// theorem. The quadratic penalty is the mean, computed by the argmin machinery (a check on the pipeline).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ddn/graph/graph.h"

namespace ddn::pointcloud {

struct PointNetOptions {
  std::vector<int> point_widths = {64, 128};  // widths of the shared per-point layers; the last is F
  std::vector<int> head_widths = {64};        // widths of the hidden layers after pooling
  int num_classes = 10;
  std::string pooling = "max";  // max, mean, or a robust_pool penalty
  double alpha = 1.0;           // α of robust_pool
  uint64_t seed = 1;            // initialisation
  int threads = 0;              // robust_pool's batch layer; 0: all cores
  // With max pooling, the last batch norm and the pooling as one op (graph::BatchNormMaxOverPoints: the same
  // values, faster); false keeps BatchNorm → MaxOverPoints (the reference for tests).
  bool fuse_max_pooling = true;
};

struct PointNet {
  graph::Graph graph;
  graph::Graph::NodeId points = -1, labels = -1, logits = -1, loss = -1;
};

// True for "max", "mean" and the penalties of robust_pool named in the header.
bool IsKnownPooling(const std::string& pooling);
// The penalties of robust_pool, in the order of the demo's table.
const std::vector<std::string>& RobustPenalties();

// Throws InvalidInput for an unknown pooling or bad widths (and, for a robust penalty, if robust_pool is not
// registered or rejects α).
std::unique_ptr<PointNet> BuildPointNet(const PointNetOptions& options);

}  // namespace ddn::pointcloud
