// ddn/graph/optim.h: first-order optimisers and learning-rate schedules for graph parameters.
//
// Both optimisers update every trainable Parameter from its accumulated gradient g (Graph::Backward),
// with an optional L2 weight decay λ added to the gradient (g ← g + λθ):
//
//   Sgd (heavy-ball momentum μ):       v ← μ v + g,                θ ← θ − η v
//   Adam (Kingma & Ba 2015, Alg. 1):   m ← β₁ m + (1 − β₁) g,      s ← β₂ s + (1 − β₂) g²,
//                                      θ ← θ − η m̂ / (√ŝ + ε),     m̂ = m / (1 − β₁ᵗ), ŝ = s / (1 − β₂ᵗ)
//
// The learning rate η is set per epoch (or per step) by the caller, typically from a LearningRateSchedule:
//
//   ddn::graph::Adam adam(graph.TrainableParameters(), {});
//   ddn::graph::LearningRateSchedule schedule;           // cosine from 1e-3 over `epochs`
//   schedule.total_epochs = epochs;
//   for (int e = 0; e < epochs; ++e) {
//     adam.set_learning_rate(schedule.At(e));
//     for (each batch) { graph.Forward(...); graph.ZeroGrad(); graph.Backward(loss); adam.Step(); }
//   }
#pragma once

#include <string>
#include <vector>

#include "ddn/graph/graph.h"

namespace ddn::graph {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Parameter*> parameters, double learning_rate);
  virtual ~Optimizer() = default;
  // One update of every parameter from its current gradient.
  virtual void Step() = 0;
  void set_learning_rate(double learning_rate) { learning_rate_ = learning_rate; }
  double learning_rate() const { return learning_rate_; }

 protected:
  std::vector<Parameter*> parameters_;
  double learning_rate_;
};

struct SgdOptions {
  double learning_rate = 0.01;  // η
  double momentum = 0.9;        // μ; 0 for plain gradient descent
  double weight_decay = 0.0;    // λ
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<Parameter*> parameters, const SgdOptions& options);
  void Step() override;

 private:
  SgdOptions options_;
  std::vector<std::vector<double>> velocity_;
};

struct AdamOptions {
  double learning_rate = 1e-3;  // η
  double beta1 = 0.9;           // decay of the first moment
  double beta2 = 0.999;         // decay of the second moment
  double epsilon = 1e-8;        // added to √ŝ
  double weight_decay = 0.0;    // λ (coupled L2, as in the original Adam)
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Parameter*> parameters, const AdamOptions& options);
  void Step() override;

 private:
  AdamOptions options_;
  long step_ = 0;
  std::vector<std::vector<double>> m_, s_;
};

// Learning rate as a function of the epoch e = 0, 1, ...:
//   kConstant:  η₀
//   kStep:      η₀ · γ^⌊e / step_epochs⌋
//   kCosine:    η_min + ½ (η₀ − η_min)(1 + cos(π e / total_epochs))
// with an optional linear warm-up over the first `warmup_epochs` (η₀ (e + 1)/(warmup + 1) before it ends).
struct LearningRateSchedule {
  enum Kind { kConstant, kStep, kCosine };
  Kind kind = kCosine;
  double base = 1e-3;    // η₀
  double minimum = 0.0;  // η_min (cosine)
  int total_epochs = 1;  // cosine period
  int step_epochs = 10;  // step decay interval
  double gamma = 0.5;    // step decay factor
  int warmup_epochs = 0;

  double At(int epoch) const;
  // "constant", "step", "cosine"; throws InvalidInput otherwise.
  static Kind Parse(const std::string& name);
};

}  // namespace ddn::graph
