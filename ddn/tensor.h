// ddn/tensor.h: a dense, row-major array of doubles with a shape.
//
// Tensors carry batches: the first axis is the batch, the rest is one problem's shape. A batch of
// B robust-pooling problems over N points is a Tensor of shape (B, N); problem b occupies the
// contiguous range [b * N, (b + 1) * N) of data(). That is the whole contract: no strides, no views,
// no broadcasting. Nodes see one problem at a time as a raw pointer plus its shape.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace ddn {

using Shape = std::vector<int64_t>;

namespace internal {
// std::allocator, except that construction without arguments default-initialises: a vector<double>
// grown with resize(n) leaves its doubles unset instead of writing zeros. Batch outputs and gradients
// are written (or zeroed) slice by slice on the thread that owns the slice; value-initialising 8 MB
// serially first would cost as much as a projection's whole forward pass.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept(noexcept(::new (static_cast<void*>(p)) U)) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
}  // namespace internal

// The storage of a Tensor: a std::vector<double> whose resize(n) does not zero (see above).
using TensorValues = std::vector<double, internal::DefaultInitAllocator<double>>;

// The largest number of elements a tensor may have: 2^56 (a tensor of doubles that large would need 512 PB).
constexpr int64_t kMaxElements = int64_t{1} << 56;

// Number of elements of a shape (1 for the empty shape of a scalar). Throws InvalidInput for a negative axis
// and for a shape whose axes multiply (zero axes counted as one) beyond kMaxElements, instead of overflowing.
int64_t NumElements(const Shape& shape);
// "(2, 3)", "()" for a scalar.
std::string ShapeString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // A tensor of the given shape filled with `fill`.
  explicit Tensor(Shape shape, double fill = 0.0);
  // A tensor of the given shape with the given row-major values; throws InvalidInput on a size mismatch.
  Tensor(Shape shape, const std::vector<double>& values);
  Tensor(Shape shape, TensorValues values);
  Tensor(Shape shape, std::initializer_list<double> values);
  // A tensor of the given shape whose values are unset: for outputs that are written whole (ddn::Forward
  // and ddn::Backward zero each problem's slice on the thread that solves it).
  static Tensor Uninitialized(Shape shape);

  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int axis) const { return shape_.at(axis); }
  int64_t size() const { return static_cast<int64_t>(values_.size()); }
  bool empty() const { return values_.empty(); }

  double* data() { return values_.data(); }
  const double* data() const { return values_.data(); }
  TensorValues& values() { return values_; }
  const TensorValues& values() const { return values_; }
  // A copy of the values as a plain std::vector (for comparisons in tests, serialisation).
  std::vector<double> ToVector() const { return std::vector<double>(values_.begin(), values_.end()); }
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
  void CheckSize() const;

  Shape shape_;
  TensorValues values_;
};

}  // namespace ddn
