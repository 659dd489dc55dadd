// apps/match/learned.h: a keypoint matcher whose affinity is learned through the optimal_transport node.
//
// Model. Descriptors d (RootSIFT, unit rows) of two images go through one shared linear map f = W d (W D×F,
// initialised to the identity when F = D; by default diagonal: one weight per descriptor coordinate, 128
// parameters, because a full 128×128 map overfits the synthetic pairs, README.md), the cost of pairing keypoint i
// of image a with keypoint j of image b is the distance of the mapped descriptors,
//
//   M_ij = ‖f_i − f'_j‖                         (a learned Mahalanobis-type metric, ‖W(d_i − d'_j)‖),
//
// and the soft assignment is the entropic transport plan P = optimal_transport(M; γ) with uniform marginals
// (rows sum to 1/N_a), γ that of the plain Sinkhorn baseline: before training the learned matcher IS the
// baseline, and training moves it only where the likelihood of true correspondences improves. Matches are the
// mutual row/column maxima of P holding at least a given share of a row's mass (matching.h, MutualMatches).
//
// Training (ddn::graph): the negative log-likelihood of the ground-truth correspondences (i, j) of synthetic
// pairs, L = −(1/|T|) Σ_(i,j)∈T log(N_a P_ij), minimised with Adam; its gradient reaches W through the
// optimal_transport node's implicit backward (the optimality conditions, not the Sinkhorn iterations).
//
// The plain Sinkhorn baseline is the same plan on raw descriptors, M_ij = ‖d_i − d'_j‖, with γ chosen from a
// grid by the same likelihood on the training pairs (ChooseSinkhornGamma).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/match/matching.h"

namespace ddn::match {

struct LearnedOptions {
  bool diagonal = true;  // W diagonal (one weight per descriptor coordinate) rather than full
  int features = 128;    // F, the width of a full map (= D for an identity start)
  double gamma = 20.0;   // γ of the optimal_transport node
  int epochs = 8;
  int batch_size = 8;           // training pairs per step
  double learning_rate = 3e-3;  // Adam, cosine schedule to 1 %
  uint64_t seed = 1;
  int threads = 0;  // of the optimal_transport batch layer (0: all cores)
};

class LearnedMatcher {
 public:
  LearnedMatcher(int descriptor_size, const LearnedOptions& options);
  ~LearnedMatcher();

  // Trains on the pairs (all with the same number of keypoints per image). `progress(epoch, step, steps,
  // mean loss so far)` after each step. Returns the mean training loss of each epoch.
  std::vector<double> Train(const std::vector<TrainingPair>& pairs,
                            const std::function<void(int, int, int, double)>& progress);

  // Mean negative log-likelihood of the ground truth of `pairs` under the current model.
  double Loss(const std::vector<TrainingPair>& pairs);

  // The plan P (N_a × N_b) for two images.
  RowMatrix Plan(const Keypoints& a, const Keypoints& b) const;

  void Save(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// M_ij = ‖d_i − d'_j‖ for the descriptors of a and b.
RowMatrix DistanceMatrix(const Keypoints& a, const Keypoints& b);

// The plan of the plain Sinkhorn baseline: optimal_transport on M_ij = ‖d_i − d'_j‖ at γ.
RowMatrix SinkhornPlan(const Keypoints& a, const Keypoints& b, double gamma, int threads);

// The γ of the grid with the smallest ground-truth negative log-likelihood on `pairs`.
double ChooseSinkhornGamma(const std::vector<TrainingPair>& pairs, const std::vector<double>& grid, int threads);

}  // namespace ddn::match
