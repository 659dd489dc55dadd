#include "ddn/tensor.h"

#include <sstream>

#include "ddn/error.h"

namespace ddn {

int64_t NumElements(const Shape& shape) {
  // The product with zero axes counted as one is checked too: a shape (0, 2^40, 2^40) is empty, but the
  // size of one of its problems would overflow.
  // The product of the non-zero axes is formed only after its overflow check (a plain running product would
  // overflow first: undefined behaviour, which the sanitizer build reports).
  int64_t bound = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) throw InvalidInput("shape " + ShapeString(shape) + " has a negative axis");
    if (d == 0) {
      empty = true;
    } else if (__builtin_mul_overflow(bound, d, &bound) || bound > kMaxElements) {
      throw InvalidInput("shape " + ShapeString(shape) + " is too large: more than 2^56 elements");
    }
  }
  return empty ? 0 : bound;
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

Tensor::Tensor(Shape shape, const std::vector<double>& values)
    : shape_(std::move(shape)), values_(values.begin(), values.end()) {
  CheckSize();
}

Tensor::Tensor(Shape shape, TensorValues values) : shape_(std::move(shape)), values_(std::move(values)) {
  CheckSize();
}

Tensor::Tensor(Shape shape, std::initializer_list<double> values) : shape_(std::move(shape)), values_(values) {
  CheckSize();
}

Tensor Tensor::Uninitialized(Shape shape) {
  Tensor t;
  t.values_.resize(static_cast<size_t>(NumElements(shape)));  // default-initialised: unset
  t.shape_ = std::move(shape);
  return t;
}

void Tensor::CheckSize() const {
  if (NumElements(shape_) != static_cast<int64_t>(values_.size())) {
    throw InvalidInput("tensor of shape " + ShapeString(shape_) + " given " + std::to_string(values_.size()) +
                       " values");
  }
}

Shape Tensor::problem_shape() const {
  return shape_.empty() ? Shape{} : Shape(shape_.begin() + 1, shape_.end());
}

int64_t Tensor::problem_size() const {
  if (shape_.empty()) return 1;
  int64_t n = 1;
  for (size_t a = 1; a < shape_.size(); ++a) n *= shape_[a];
  return n;
}

}  // namespace ddn
