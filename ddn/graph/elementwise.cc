#include "ddn/graph/elementwise.h"

#include <cmath>

#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::graph {
namespace {

void RequireArity(const std::string& op, const std::vector<const Tensor*>& inputs, size_t n) {
  if (inputs.size() != n) {
    throw InvalidInput(op + " takes " + std::to_string(n) + " input(s), got " + std::to_string(inputs.size()));
  }
}

}  // namespace

Tensor Add::Forward(const std::vector<const Tensor*>& in, Mode) {
  RequireArity("Add", in, 2);
  if (in[0]->shape() != in[1]->shape()) {
    throw InvalidInput("Add: shapes " + ShapeString(in[0]->shape()) + " and " + ShapeString(in[1]->shape()) +
                       " differ");
  }
  Tensor y = *in[0];
  for (int64_t i = 0; i < y.size(); ++i) y[i] += (*in[1])[i];
  return y;
}

void Add::Backward(const std::vector<const Tensor*>&, const Tensor&, const Tensor& g, const std::vector<Tensor*>& gi) {
  for (Tensor* t : gi)
    for (int64_t i = 0; i < g.size(); ++i) (*t)[i] += g[i];
}

Tensor Tanh::Forward(const std::vector<const Tensor*>& in, Mode) {
  RequireArity("Tanh", in, 1);
  Tensor y = *in[0];
  for (auto& v : y.values()) v = std::tanh(v);
  return y;
}

void Tanh::Backward(const std::vector<const Tensor*>&, const Tensor& y, const Tensor& g,
                    const std::vector<Tensor*>& gi) {
  for (int64_t i = 0; i < g.size(); ++i) (*gi[0])[i] += g[i] * (1.0 - y[i] * y[i]);
}

std::string Scale::Describe() const {
  return "Scale(" + FormatDouble(factor_) + ")";
}

Tensor Scale::Forward(const std::vector<const Tensor*>& in, Mode) {
  RequireArity("Scale", in, 1);
  Tensor y = *in[0];
  for (auto& v : y.values()) v *= factor_;
  return y;
}

void Scale::Backward(const std::vector<const Tensor*>&, const Tensor&, const Tensor& g,
                     const std::vector<Tensor*>& gi) {
  for (int64_t i = 0; i < g.size(); ++i) (*gi[0])[i] += factor_ * g[i];
}

}  // namespace ddn::graph
