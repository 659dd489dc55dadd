// ddn/tensor.h: a dense, row-major array of doubles with a shape.
//
// Tensors carry batches: the first axis is the batch, the rest is one problem's shape. A batch of
// B robust-pooling problems over N points is a Tensor of shape (B, N); problem b occupies the
// contiguous range [b * N, (b + 1) * N) of data(). That is the whole contract: no strides, no views,
// no broadcasting. Nodes see one problem at a time as a raw pointer plus its shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddn {

using Shape = std::vector<int64_t>;

// Number of elements of a shape (1 for the empty shape of a scalar).
int64_t NumElements(const Shape& shape);
// "(2, 3)", "()" for a scalar.
std::string ShapeString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // A tensor of the given shape filled with `fill`.
  explicit Tensor(Shape shape, double fill = 0.0);
  // A tensor of the given shape with the given row-major values; throws InvalidInput on a size mismatch.
  Tensor(Shape shape, std::vector<double> values);

  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int axis) const { return shape_.at(axis); }
  int64_t size() const { return static_cast<int64_t>(values_.size()); }
  bool empty() const { return values_.empty(); }

  double* data() { return values_.data(); }
  const double* data() const { return values_.data(); }
  std::vector<double>& values() { return values_; }
  const std::vector<double>& values() const { return values_; }
  double& operator[](int64_t i) { return values_[i]; }
  double operator[](int64_t i) const { return values_[i]; }

  // Batch view: the first axis is the batch.
  int64_t batch_size() const { return shape_.empty() ? 1 : shape_[0]; }
  // The shape of one problem: all axes but the first.
  Shape problem_shape() const;
  int64_t problem_size() const;
  double* problem(int64_t b) { return values_.data() + b * problem_size(); }
  const double* problem(int64_t b) const { return values_.data() + b * problem_size(); }

 private:
  Shape shape_;
  std::vector<double> values_;
};

}  // namespace ddn
