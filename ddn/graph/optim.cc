#include "ddn/graph/optim.h"

#include <cmath>

#include "ddn/error.h"

namespace ddn::graph {

Optimizer::Optimizer(std::vector<Parameter*> parameters, double learning_rate)
    : parameters_(std::move(parameters)), learning_rate_(learning_rate) {
  if (!(learning_rate >= 0)) throw InvalidInput("learning rate must be >= 0");
  for (Parameter* p : parameters_)
    if (p->grad.shape() != p->value.shape()) p->grad = Tensor(p->value.shape());
}

Sgd::Sgd(std::vector<Parameter*> parameters, const SgdOptions& options)
    : Optimizer(std::move(parameters), options.learning_rate), options_(options) {
  if (!(options.momentum >= 0 && options.momentum < 1)) throw InvalidInput("SGD momentum must be in [0, 1)");
  for (Parameter* p : parameters_) velocity_.emplace_back(p->value.size(), 0.0);
}

void Sgd::Step() {
  for (size_t k = 0; k < parameters_.size(); ++k) {
    Parameter& p = *parameters_[k];
    std::vector<double>& v = velocity_[k];
    for (int64_t i = 0; i < p.value.size(); ++i) {
      const double g = p.grad[i] + options_.weight_decay * p.value[i];
      v[i] = options_.momentum * v[i] + g;
      p.value[i] -= learning_rate_ * v[i];
    }
  }
}

Adam::Adam(std::vector<Parameter*> parameters, const AdamOptions& options)
    : Optimizer(std::move(parameters), options.learning_rate), options_(options) {
  if (!(options.beta1 >= 0 && options.beta1 < 1) || !(options.beta2 >= 0 && options.beta2 < 1)) {
    throw InvalidInput("Adam betas must be in [0, 1)");
  }
  if (!(options.epsilon > 0)) throw InvalidInput("Adam epsilon must be > 0");
  for (Parameter* p : parameters_) {
    m_.emplace_back(p->value.size(), 0.0);
    s_.emplace_back(p->value.size(), 0.0);
  }
}

void Adam::Step() {
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double c1 = 1 - std::pow(b1, step_), c2 = 1 - std::pow(b2, step_);
  const double lr = learning_rate_, decay = options_.weight_decay, epsilon = options_.epsilon;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    Parameter& p = *parameters_[k];
    // Plain restrict pointers: the loop is element-wise, so it vectorises (sqrt and division in vectors) with the
    // same bits per element as the scalar loop.
    double* __restrict value = p.value.data();
    const double* __restrict grad = p.grad.data();
    double* __restrict m = m_[k].data();
    double* __restrict s = s_[k].data();
    const int64_t size = p.value.size();
    for (int64_t i = 0; i < size; ++i) {
      const double g = grad[i] + decay * value[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      s[i] = b2 * s[i] + (1 - b2) * g * g;
      value[i] -= lr * (m[i] / c1) / (std::sqrt(s[i] / c2) + epsilon);
    }
  }
}

double LearningRateSchedule::At(int epoch) const {
  if (epoch < warmup_epochs) return base * (epoch + 1.0) / (warmup_epochs + 1.0);
  switch (kind) {
    case kConstant:
      return base;
    case kStep:
      return base * std::pow(gamma, epoch / std::max(1, step_epochs));
    case kCosine:
    default: {
      const double t = std::min(1.0, static_cast<double>(epoch) / std::max(1, total_epochs));
      return minimum + 0.5 * (base - minimum) * (1 + std::cos(M_PI * t));
    }
  }
}

LearningRateSchedule::Kind LearningRateSchedule::Parse(const std::string& name) {
  if (name == "constant") return kConstant;
  if (name == "step") return kStep;
  if (name == "cosine") return kCosine;
  throw InvalidInput("unknown learning-rate schedule '" + name + "' (constant, step, cosine)");
}

}  // namespace ddn::graph
