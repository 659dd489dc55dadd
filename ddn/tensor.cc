#include "ddn/tensor.h"

#include <sstream>

#include "ddn/error.h"

namespace ddn {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const Shape& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ")";
  return out.str();
}

Tensor::Tensor(Shape shape, double fill)
    : shape_(std::move(shape)), values_(static_cast<size_t>(NumElements(shape_)), fill) {}

Tensor::Tensor(Shape shape, std::vector<double> values)
    : shape_(std::move(shape)), values_(std::move(values)) {
  if (NumElements(shape_) != static_cast<int64_t>(values_.size())) {
    throw InvalidInput("tensor of shape " + ShapeString(shape_) + " given " +
                       std::to_string(values_.size()) + " values");
  }
}

Shape Tensor::problem_shape() const {
  return shape_.empty() ? Shape{} : Shape(shape_.begin() + 1, shape_.end());
}

int64_t Tensor::problem_size() const { return NumElements(problem_shape()); }

}  // namespace ddn
