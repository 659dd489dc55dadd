// apps/match/match_ops.h: the two graph operations of the learned matcher (ddn::graph::Op, ops.h conventions).
//
//   PairwiseDistance(N_a)   F (B, N_a + N_b, D) → M (B, N_a, N_b), M_ij = √(‖f_i − f'_j‖² + ε²), ε = 1e-9, where
//                           the first N_a rows of each problem are image a's features and the rest image b's.
//                           With R = ḡM ∘ (1/M): ḡF_a += diag(R 1) F_a − R F_b, ḡF_b += diag(Rᵀ 1) F_b − Rᵀ F_a.
//   FeatureWeights(D)       X (..., D) → Y = X ∘ w (one learned weight per feature, w initialised to 1):
//                           ḡX += ḡY ∘ w, ḡw += Σ_rows ḡY ∘ X. A diagonal metric, ‖w ∘ (d − d')‖.
//   MatchNll                P (B, N_a, N_b), T (B, N_a, N_b) 0/1 → L = −Σ T ∘ log(N_a P) / Σ T (the negative
//                           log-likelihood of the ground-truth pairs T under the plan, 0 for a perfect plan
//                           of N_a one-to-one pairs); ḡP −= ḡL · T / (P Σ T). T gets no gradient.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddn/graph/graph.h"

namespace ddn::match {

class PairwiseDistance : public graph::Op {
 public:
  explicit PairwiseDistance(int64_t rows_a) : rows_a_(rows_a) {}
  std::string Describe() const override { return "PairwiseDistance"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

 private:
  int64_t rows_a_;
};

class FeatureWeights : public graph::Op {
 public:
  explicit FeatureWeights(int features);
  std::string Describe() const override { return "FeatureWeights(" + std::to_string(features_) + ")"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
  std::vector<graph::Parameter*> Parameters() override { return {&weight_}; }

 private:
  int features_;
  graph::Parameter weight_;
};

class MatchNll : public graph::Op {
 public:
  std::string Describe() const override { return "MatchNll"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, graph::Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

 private:
  double count_ = 1;
};

}  // namespace ddn::match
