// ddn/graph/elementwise.h: element-wise ops for small cells (a deep-equilibrium cell tanh(Wz + Ux + b), ...).
//
//   Add      y = a + b (equal shapes);                 ḡa += ḡy, ḡb += ḡy.
//   Tanh     y = tanh(x);                              ḡx += ḡy (1 − y²).
//   Scale(c) y = c·x;                                  ḡx += c ḡy.
#pragma once

#include <string>
#include <vector>

#include "ddn/graph/graph.h"

namespace ddn::graph {

class Add : public Op {
 public:
  std::string Describe() const override { return "Add"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class Tanh : public Op {
 public:
  std::string Describe() const override { return "Tanh"; }
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
};

class Scale : public Op {
 public:
  explicit Scale(double factor) : factor_(factor) {}
  std::string Describe() const override;
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;

 private:
  double factor_;
};

}  // namespace ddn::graph
