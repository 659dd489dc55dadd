#include "ddn/graph/ops.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <vector>

#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/graph/dense.h"
#include "ddn/parallel.h"
#include "ddn/random.h"

namespace ddn::graph {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;

int64_t LastDim(const Tensor& t) {
  return t.rank() == 0 ? 1 : t.dim(t.rank() - 1);
}

// The tensor as a matrix: one row per leading index, the last axis as columns.
// Dense products over many rows (a per-point layer sees B·N rows) run in fixed blocks of rows spread over the
// threads (ddn/parallel.h). The blocks do not depend on the thread count, so neither do the results.
constexpr int64_t kRowBlock = 256;

template <typename Body>
void ForEachRowBlock(int64_t rows, Body body) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  ParallelFor(blocks, 0, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t k = begin; k < end; ++k) body(k * kRowBlock, std::min(kRowBlock, rows - k * kRowBlock));
  });
}

ConstMatrixMap AsMatrix(const Tensor& t) {
  const int64_t cols = LastDim(t);
  return ConstMatrixMap(t.data(), cols ? t.size() / cols : 0, cols);
}
MatrixMap AsMatrix(Tensor& t) {
  const int64_t cols = LastDim(t);
  return MatrixMap(t.data(), cols ? t.size() / cols : 0, cols);
}

void RequireInputs(const std::vector<const Tensor*>& inputs, size_t n) {
  if (inputs.size() != n) {
    throw InvalidInput("takes " + std::to_string(n) + " input(s), got " + std::to_string(inputs.size()));
  }
}

void RequireRank(const Tensor& t, int rank, const std::string& what) {
  if (t.rank() != rank) {
    throw InvalidInput(what + " must have rank " + std::to_string(rank) + ", got shape " + ShapeString(t.shape()));
  }
}

Parameter MakeParameter(const std::string& name, Shape shape, double fill, bool trainable = true) {
  Parameter p;
  p.name = name;
  p.value = Tensor(shape, fill);
  p.grad = Tensor(shape);
  p.trainable = trainable;
  return p;
}

}  // namespace

// ---- Linear ------------------------------------------------------------------------------------------

Linear::Linear(int in_features, int out_features, uint64_t seed) : in_(in_features), out_(out_features) {
  if (in_ < 1 || out_ < 1)
    throw InvalidInput("Linear needs positive sizes, got " + std::to_string(in_) + " -> " + std::to_string(out_));
  weight_ = MakeParameter("weight", {in_, out_}, 0.0);
  bias_ = MakeParameter("bias", {out_}, 0.0);
  Rng rng(seed);
  const double scale = std::sqrt(2.0 / in_);
  for (double& w : weight_.value.values()) w = scale * rng.Normal();
}

std::string Linear::Describe() const {
  return "Linear(" + std::to_string(in_) + " -> " + std::to_string(out_) + ")";
}

Tensor Linear::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  if (x.rank() < 1 || LastDim(x) != in_) {
    throw InvalidInput("input must have last axis " + std::to_string(in_) + ", got shape " + ShapeString(x.shape()));
  }
  Shape shape = x.shape();
  shape.back() = out_;
  Tensor y = OutputTensor(shape);
  const int64_t rows = x.size() / in_;
  const dense::Kernels& kernels = dense::Select();
  ForEachRowBlock(rows, [&](int64_t r, int64_t n) {
    kernels.linear_forward(x.data() + r * in_, weight_.value.data(), bias_.value.data(), n, in_, out_,
                           y.data() + r * out_);
  });
  return y;
}

void Linear::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                      const std::vector<Tensor*>& grad_inputs) {
  BackwardInto(*inputs[0], grad_output, grad_inputs[0], false);
}

void Linear::BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                           const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) {
  BackwardInto(*inputs[0], grad_output, grad_inputs[0], fresh[0] != 0);
}

// ḡX (+)= ḡY Wᵀ row block by row block (assigned when `assign`: gx holds no values yet), and the parameters' sums.
void Linear::BackwardInto(const Tensor& x, const Tensor& grad_output, Tensor* gx, bool assign) {
  const int64_t rows = x.size() / in_;
  // ḡW = Xᵀ ḡY and ḡb = ḡYᵀ 1 sum over rows: one partial sum per row block (assigned by the kernel: the buffers
  // are kept between steps and not zeroed), added in block order.
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  std::vector<double>&partial_w = partial_w_, &partial_b = partial_b_;
  partial_w.resize(blocks * in_ * out_);
  partial_b.resize(blocks * out_);
  const dense::Kernels& kernels = dense::Select();
  ForEachRowBlock(rows, [&](int64_t r, int64_t n) {
    const int64_t k = r / kRowBlock;
    kernels.linear_backward(x.data() + r * in_, grad_output.data() + r * out_, weight_.value.data(), n, in_, out_,
                            partial_w.data() + k * in_ * out_, partial_b.data() + k * out_,
                            gx ? gx->data() + r * in_ : nullptr, assign);
  });
  double* gw = weight_.grad.data();
  double* gb = bias_.grad.data();
  for (int64_t k = 0; k < blocks; ++k) {
    for (int64_t i = 0; i < in_ * out_; ++i) gw[i] += partial_w[k * in_ * out_ + i];
    for (int64_t j = 0; j < out_; ++j) gb[j] += partial_b[k * out_ + j];
  }
}

// ---- Relu --------------------------------------------------------------------------------------------

Tensor Relu::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  Tensor y = OutputTensor(x.shape());
  dense::Select().relu_forward(x.data(), x.size(), y.data());
  return y;
}

void Relu::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                    const std::vector<Tensor*>& grad_inputs) {
  dense::Select().relu_backward(inputs[0]->data(), grad_output.data(), inputs[0]->size(), grad_inputs[0]->data(),
                                false);
}

void Relu::BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                         const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) {
  dense::Select().relu_backward(inputs[0]->data(), grad_output.data(), inputs[0]->size(), grad_inputs[0]->data(),
                                fresh[0] != 0);
}

// ---- BatchNorm ---------------------------------------------------------------------------------------

BatchNorm::BatchNorm(int features, const BatchNormOptions& options) : features_(features), options_(options) {
  if (features < 1) throw InvalidInput("BatchNorm needs a positive number of features");
  if (!(options.epsilon > 0) || !(options.momentum > 0 && options.momentum <= 1)) {
    throw InvalidInput("BatchNorm needs epsilon > 0 and momentum in (0, 1]");
  }
  gamma_ = MakeParameter("gamma", {features}, 1.0);
  beta_ = MakeParameter("beta", {features}, 0.0);
  running_mean_ = MakeParameter("running_mean", {features}, 0.0, false);
  running_var_ = MakeParameter("running_var", {features}, 1.0, false);
}

std::string BatchNorm::Describe() const {
  return "BatchNorm(" + std::to_string(features_) + ")";
}

void BatchNorm::Statistics(const Tensor& x, int64_t n, Mode mode) {
  const int64_t f = features_;
  mode_ = mode;
  mean_.resize(f);
  std::vector<double> var(f);
  if (mode == Mode::kTrain) {
    if (n < 2) throw InvalidInput("batch norm in training needs at least 2 rows, got shape " + ShapeString(x.shape()));
    dense::Select().column_moments(x.data(), n, f, mean_.data(), var.data());
    double* rm = running_mean_.value.data();
    double* rv = running_var_.value.data();
    const double momentum = options_.momentum;
    for (int64_t j = 0; j < f; ++j) {
      rm[j] = (1 - momentum) * rm[j] + momentum * mean_[j];
      rv[j] = (1 - momentum) * rv[j] + (momentum * n / (n - 1.0)) * var[j];
    }
  } else {
    std::copy_n(running_mean_.value.data(), f, mean_.data());
    std::copy_n(running_var_.value.data(), f, var.data());
  }
  inv_std_.resize(f);
  for (int64_t j = 0; j < f; ++j) inv_std_[j] = 1.0 / std::sqrt(var[j] + options_.epsilon);
}

// The passes over the rows run in ddn/graph/dense.h (contiguous loops, in order, on one thread; AVX2 when the CPU
// has it): results do not depend on the thread count.
Tensor BatchNorm::Forward(const std::vector<const Tensor*>& inputs, Mode mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  if (x.rank() < 2 || LastDim(x) != features_) {
    throw InvalidInput("input must be (..., " + std::to_string(features_) + ") with a batch axis, got shape " +
                       ShapeString(x.shape()));
  }
  const int64_t f = features_, n = x.size() / f;
  Statistics(x, n, mode);
  Tensor y = OutputTensor(x.shape());
  dense::Select().normalise(x.data(), mean_.data(), inv_std_.data(), gamma_.value.data(), beta_.value.data(), n, f,
                            y.data());
  return y;
}

void BatchNorm::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                         const std::vector<Tensor*>& grad_inputs) {
  BackwardInto(*inputs[0], grad_output, grad_inputs[0], false);
}

void BatchNorm::BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                              const std::vector<Tensor*>& grad_inputs, const std::vector<char>& fresh) {
  BackwardInto(*inputs[0], grad_output, grad_inputs[0], fresh[0] != 0);
}

void BatchNorm::BackwardFactors(const std::vector<double>& sum_g, const std::vector<double>& sum_gx, int64_t n,
                                std::vector<double>* scale, std::vector<double>* mean_g, std::vector<double>* mean_gx) {
  const int64_t f = features_;
  for (int64_t j = 0; j < f; ++j) {
    beta_.grad.data()[j] += sum_g[j];
    gamma_.grad.data()[j] += sum_gx[j];
  }
  scale->resize(f);
  mean_g->resize(f);
  mean_gx->resize(f);
  for (int64_t j = 0; j < f; ++j) {
    (*scale)[j] = gamma_.value.data()[j] * inv_std_[j];
    (*mean_g)[j] = sum_g[j] / static_cast<double>(n);
    (*mean_gx)[j] = sum_gx[j] / static_cast<double>(n);
  }
}

// ḡX (+)= the batch-norm product (assigned when `assign`: gx holds no values yet), and γ's and β's gradients. x is
// Forward's input: x̂ is recomputed from it (dense.h, normalise).
void BatchNorm::BackwardInto(const Tensor& x, const Tensor& grad_output, Tensor* gx, bool assign) {
  const int64_t f = features_, n = grad_output.size() / f;
  const dense::Kernels& kernels = dense::Select();
  // Σ ḡy and Σ ḡy x̂ per column, once: the parameter gradients and (divided by n) the means below.
  std::vector<double> sum_g(f), sum_gx(f), scale, mean_g, mean_gx;  // γ/√(σ² + ε), mean ḡy, mean ḡy x̂
  kernels.gradient_sums(grad_output.data(), x.data(), mean_.data(), inv_std_.data(), n, f, sum_g.data(), sum_gx.data());
  BackwardFactors(sum_g, sum_gx, n, &scale, &mean_g, &mean_gx);
  if (!gx) return;
  const bool eval = mode_ == Mode::kEval;
  kernels.normalise_backward(grad_output.data(), x.data(), mean_.data(), inv_std_.data(),
                             eval ? nullptr : mean_g.data(), eval ? nullptr : mean_gx.data(), scale.data(), n, f,
                             gx->data(), assign);
}

// ---- BatchNorm fused with the max over points ------------------------------------------------------

std::string BatchNormMaxOverPoints::Describe() const {
  return "BatchNormMaxOverPoints(" + std::to_string(features_) + ")";
}

Tensor BatchNormMaxOverPoints::Forward(const std::vector<const Tensor*>& inputs, Mode mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  if (x.rank() != 3 || x.dim(2) != features_) {
    throw InvalidInput("input must be (B, N, " + std::to_string(features_) + "), got shape " + ShapeString(x.shape()));
  }
  const int64_t B = x.dim(0), N = x.dim(1), f = features_;
  if (N < 1) throw InvalidInput("cannot pool over N = 0 points");
  Statistics(x, B * N, mode);
  const double* gamma = gamma_.value.data();
  std::vector<double> sign(f);
  for (int64_t j = 0; j < f; ++j) sign[j] = gamma[j] > 0 ? 1.0 : gamma[j] < 0 ? -1.0 : 0.0;
  best_.resize(B * f);
  argbest_.resize(B * f);
  const dense::Kernels& kernels = dense::Select();
  kernels.signed_max_over_points(x.data(), sign.data(), B, N, f, best_.data(), argbest_.data());
  Tensor y = OutputTensor({B, f});
  kernels.normalise(best_.data(), mean_.data(), inv_std_.data(), gamma, beta_.value.data(), B, f, y.data());
  return y;
}

void BatchNormMaxOverPoints::Backward(const std::vector<const Tensor*>& inputs, const Tensor&,
                                      const Tensor& grad_output, const std::vector<Tensor*>& grad_inputs) {
  BackwardInto(*inputs[0], grad_output, grad_inputs[0], false);
}

void BatchNormMaxOverPoints::BackwardFresh(const std::vector<const Tensor*>& inputs, const Tensor&,
                                           const Tensor& grad_output, const std::vector<Tensor*>& grad_inputs,
                                           const std::vector<char>& fresh) {
  BackwardInto(*inputs[0], grad_output, grad_inputs[0], fresh[0] != 0);
}

void BatchNormMaxOverPoints::BackwardInto(const Tensor& x, const Tensor& grad_output, Tensor* gx, bool assign) {
  const int64_t B = x.dim(0), N = x.dim(1), f = features_;
  const dense::Kernels& kernels = dense::Select();
  std::vector<double> sum_g(f), sum_gx(f), scale, mean_g, mean_gx;
  // The sums over a gradient that is ḡy_bf at each maximiser's row and zero elsewhere are gradient_sums over the
  // B rows of maximisers (x̂ from best_): the same terms in the same order, the zeros adding nothing.
  kernels.gradient_sums(grad_output.data(), best_.data(), mean_.data(), inv_std_.data(), B, f, sum_g.data(),
                        sum_gx.data());
  BackwardFactors(sum_g, sum_gx, B * N, &scale, &mean_g, &mean_gx);
  if (!gx) return;
  const bool eval = mode_ == Mode::kEval;
  kernels.normalise_max_backward(grad_output.data(), argbest_.data(), B, N, x.data(), mean_.data(), inv_std_.data(),
                                 eval ? nullptr : mean_g.data(), eval ? nullptr : mean_gx.data(), scale.data(), f,
                                 gx->data(), assign);
}

// ---- Pooling over points -----------------------------------------------------------------------------

Tensor MaxOverPoints::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  RequireRank(x, 3, "input (B, N, F)");
  const int64_t B = x.dim(0), N = x.dim(1), F = x.dim(2);
  if (N < 1) throw InvalidInput("cannot pool over N = 0 points");
  Tensor y = Tensor::Uninitialized({B, F});
  argmax_.resize(B * F);
  dense::Select().max_over_points(x.data(), B, N, F, y.data(), argmax_.data());
  return y;
}

void MaxOverPoints::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                             const std::vector<Tensor*>& grad_inputs) {
  const Tensor& x = *inputs[0];
  const int64_t B = x.dim(0), N = x.dim(1), F = x.dim(2);
  double* gx = grad_inputs[0]->data();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f = 0; f < F; ++f) gx[(b * N + argmax_[b * F + f]) * F + f] += grad_output[b * F + f];
}

Tensor MeanOverPoints::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  RequireRank(x, 3, "input (B, N, F)");
  const int64_t B = x.dim(0), N = x.dim(1), F = x.dim(2);
  if (N < 1) throw InvalidInput("cannot pool over N = 0 points");
  Tensor y({B, F});
  for (int64_t b = 0; b < B; ++b) {
    ConstMatrixMap xb(x.data() + b * N * F, N, F);
    MatrixMap(y.data() + b * F, 1, F) = xb.colwise().mean();
  }
  return y;
}

void MeanOverPoints::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                              const std::vector<Tensor*>& grad_inputs) {
  const Tensor& x = *inputs[0];
  const int64_t B = x.dim(0), N = x.dim(1), F = x.dim(2);
  for (int64_t b = 0; b < B; ++b) {
    MatrixMap gb(grad_inputs[0]->data() + b * N * F, N, F);
    gb.rowwise() += Eigen::Map<const Eigen::RowVectorXd>(grad_output.data() + b * F, F) / static_cast<double>(N);
  }
}

// ---- Shape ops ---------------------------------------------------------------------------------------

Tensor SwapLastAxes::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  if (x.rank() < 2) throw InvalidInput("input must have rank >= 2, got shape " + ShapeString(x.shape()));
  Shape shape = x.shape();
  const int64_t N = shape[shape.size() - 2], F = shape.back();
  std::swap(shape[shape.size() - 2], shape.back());
  Tensor y(shape);
  const int64_t blocks = N * F > 0 ? x.size() / (N * F) : 0;
  for (int64_t k = 0; k < blocks; ++k)
    MatrixMap(y.data() + k * N * F, F, N) = ConstMatrixMap(x.data() + k * N * F, N, F).transpose();
  return y;
}

void SwapLastAxes::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                            const std::vector<Tensor*>& grad_inputs) {
  const Tensor& x = *inputs[0];
  const int64_t N = x.dim(x.rank() - 2), F = x.dim(x.rank() - 1);
  const int64_t blocks = N * F > 0 ? x.size() / (N * F) : 0;
  for (int64_t k = 0; k < blocks; ++k)
    MatrixMap(grad_inputs[0]->data() + k * N * F, N, F) +=
        ConstMatrixMap(grad_output.data() + k * N * F, F, N).transpose();
}

Tensor Reshape::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  Shape shape = shape_;
  int infer = -1;
  int64_t known = 1;
  for (size_t a = 0; a < shape.size(); ++a) {
    if (shape[a] == -1) {
      if (infer >= 0) throw InvalidInput("at most one axis may be -1");
      infer = static_cast<int>(a);
    } else if (shape[a] < 0) {
      throw InvalidInput("negative axis size " + std::to_string(shape[a]));
    } else {
      known *= shape[a];
    }
  }
  if (infer >= 0 && known > 0 && x.size() % known == 0) shape[infer] = x.size() / known;
  if (NumElements(shape) != x.size() || (infer >= 0 && shape[infer] < 0)) {
    throw InvalidInput("cannot reshape " + ShapeString(x.shape()) + " to " + ShapeString(shape_));
  }
  return Tensor(shape, x.values());
}

void Reshape::Backward(const std::vector<const Tensor*>&, const Tensor&, const Tensor& grad_output,
                       const std::vector<Tensor*>& grad_inputs) {
  Tensor& g = *grad_inputs[0];
  for (int64_t i = 0; i < g.size(); ++i) g[i] += grad_output[i];
}

Tensor FlattenLeading::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  if (x.rank() < 1) throw InvalidInput("input must have rank >= 1");
  const int64_t last = LastDim(x);
  return Tensor({last ? x.size() / last : 0, last}, x.values());
}

void FlattenLeading::Backward(const std::vector<const Tensor*>&, const Tensor&, const Tensor& grad_output,
                              const std::vector<Tensor*>& grad_inputs) {
  Tensor& g = *grad_inputs[0];
  for (int64_t i = 0; i < g.size(); ++i) g[i] += grad_output[i];
}

Tensor Concat::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  if (inputs.empty()) throw InvalidInput("needs at least one input");
  Shape lead = inputs[0]->shape();
  if (lead.empty()) throw InvalidInput("inputs must have rank >= 1");
  lead.pop_back();
  int64_t cols = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Shape l = inputs[i]->shape();
    if (l.empty()) throw InvalidInput("inputs must have rank >= 1");
    cols += l.back();
    l.pop_back();
    if (l != lead) {
      throw InvalidInput("input " + std::to_string(i) + " has shape " + ShapeString(inputs[i]->shape()) +
                         ", whose leading axes differ from input 0's " + ShapeString(inputs[0]->shape()));
    }
  }
  Shape shape = lead;
  shape.push_back(cols);
  Tensor y(shape);
  auto Y = AsMatrix(y);
  int64_t c = 0;
  for (const Tensor* in : inputs) {
    const auto X = AsMatrix(*in);
    Y.middleCols(c, X.cols()) = X;
    c += X.cols();
  }
  return y;
}

void Concat::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                      const std::vector<Tensor*>& grad_inputs) {
  const auto G = AsMatrix(grad_output);
  int64_t c = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int64_t cols = LastDim(*inputs[i]);
    if (grad_inputs[i]) AsMatrix(*grad_inputs[i]) += G.middleCols(c, cols);
    c += cols;
  }
}

// ---- Losses ------------------------------------------------------------------------------------------

Tensor SoftmaxCrossEntropy::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 2);
  const Tensor& z = *inputs[0];
  const Tensor& labels = *inputs[1];
  RequireRank(z, 2, "logits (B, C)");
  const int64_t B = z.dim(0), C = z.dim(1);
  if (labels.size() != B) {
    throw InvalidInput("labels must have B = " + std::to_string(B) + " entries, got shape " +
                       ShapeString(labels.shape()));
  }
  probabilities_ = Tensor(z.shape());
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    const double label = labels[b];
    if (!(label >= 0 && label < C) || label != std::floor(label)) {
      throw InvalidInput("label " + std::to_string(b) + " is " + FormatDouble(label) + ", not a class index in [0, " +
                         std::to_string(C) + ")");
    }
    const double* zb = z.data() + b * C;
    double* pb = probabilities_.data() + b * C;
    const double zmax = *std::max_element(zb, zb + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += (pb[c] = std::exp(zb[c] - zmax));
    for (int64_t c = 0; c < C; ++c) pb[c] /= sum;
    loss += zmax + std::log(sum) - zb[static_cast<int64_t>(label)];
  }
  return Tensor(Shape{}, {loss / B});
}

void SoftmaxCrossEntropy::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                                   const std::vector<Tensor*>& grad_inputs) {
  const Tensor& labels = *inputs[1];
  const int64_t B = probabilities_.dim(0), C = probabilities_.dim(1);
  const double g = grad_output[0] / B;
  Tensor& gz = *grad_inputs[0];
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < C; ++c) gz[b * C + c] += g * probabilities_[b * C + c];
    gz[b * C + static_cast<int64_t>(labels[b])] -= g;
  }
}

Tensor MeanSquaredError::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 2);
  const Tensor &a = *inputs[0], &b = *inputs[1];
  if (a.shape() != b.shape()) {
    throw InvalidInput("inputs must have equal shapes, got " + ShapeString(a.shape()) + " and " +
                       ShapeString(b.shape()));
  }
  if (a.size() == 0) throw InvalidInput("inputs are empty");
  double sum = 0;
  for (int64_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return Tensor(Shape{}, {sum / a.size()});
}

void MeanSquaredError::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                                const std::vector<Tensor*>& grad_inputs) {
  const Tensor &a = *inputs[0], &b = *inputs[1];
  const double g = 2.0 * grad_output[0] / a.size();
  for (int64_t i = 0; i < a.size(); ++i) {
    const double d = g * (a[i] - b[i]);
    if (grad_inputs[0]) (*grad_inputs[0])[i] += d;
    if (grad_inputs[1]) (*grad_inputs[1])[i] -= d;
  }
}

// ---- NodeLayer ---------------------------------------------------------------------------------------

NodeLayer::NodeLayer(const std::string& node, const std::map<std::string, std::string>& params,
                     const NodeLayerOptions& options)
    : node_(MakeNode(node, params)),
      input_names_(options.inputs),
      output_name_(options.output),
      threads_(options.threads) {
  const NodeSpec& spec = node_->spec();
  if (input_names_.empty()) {
    for (const auto& in : spec.inputs)
      if (!in.optional) input_names_.push_back(in.name);
  }
  for (const auto& name : input_names_)
    if (spec.InputIndex(name) < 0) throw InvalidInput("node '" + spec.name + "' has no input '" + name + "'");
  if (output_name_.empty()) {
    if (spec.outputs.empty()) throw InvalidInput("node '" + spec.name + "' has no outputs");
    output_name_ = spec.outputs[0].name;
  } else if (spec.OutputIndex(output_name_) < 0) {
    throw InvalidInput("node '" + spec.name + "' has no output '" + output_name_ + "'");
  }
}

std::string NodeLayer::Describe() const {
  return "NodeLayer(" + node_->name() + ")";
}

Tensor NodeLayer::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, input_names_.size());
  ddn::TensorMap in;
  for (size_t i = 0; i < inputs.size(); ++i) in[input_names_[i]] = *inputs[i];
  RunOptions run;
  run.threads = threads_;
  ForwardResult result = ddn::Forward(*node_, in, run);
  outputs_ = std::move(result.outputs);
  status_ = std::move(result.status);
  return outputs_.at(output_name_);
}

void NodeLayer::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                         const std::vector<Tensor*>& grad_inputs) {
  ddn::TensorMap in;
  for (size_t i = 0; i < inputs.size(); ++i) in[input_names_[i]] = *inputs[i];
  RunOptions run;
  run.threads = threads_;
  ddn::TensorMap grads = ddn::Backward(*node_, in, outputs_, {{output_name_, grad_output}}, &status_, run);
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto it = grads.find(input_names_[i]);
    if (it == grads.end() || !grad_inputs[i]) continue;
    Tensor& g = *grad_inputs[i];
    for (int64_t k = 0; k < g.size(); ++k) g[k] += it->second[k];
  }
}

// ---- PoolLayer ---------------------------------------------------------------------------------------

PoolLayer::PoolLayer(const std::string& node, const std::map<std::string, std::string>& params,
                     const NodeLayerOptions& options)
    : node_(MakeNode(node, params)), output_name_(options.output), threads_(options.threads) {
  const NodeSpec& spec = node_->spec();
  std::vector<std::string> names = options.inputs;
  if (names.empty()) {
    for (const auto& in : spec.inputs)
      if (!in.optional) names.push_back(in.name);
  }
  if (names.size() != 1) {
    throw InvalidInput("pooling over points needs a node with one input x (B', N), node '" + spec.name + "' has " +
                       std::to_string(names.size()));
  }
  input_name_ = names[0];
  if (spec.InputIndex(input_name_) < 0)
    throw InvalidInput("node '" + spec.name + "' has no input '" + input_name_ + "'");
  if (output_name_.empty()) {
    if (spec.outputs.empty()) throw InvalidInput("node '" + spec.name + "' has no outputs");
    output_name_ = spec.outputs[0].name;
  } else if (spec.OutputIndex(output_name_) < 0) {
    throw InvalidInput("node '" + spec.name + "' has no output '" + output_name_ + "'");
  }
}

std::string PoolLayer::Describe() const {
  return "PoolLayer(" + node_->name() + ")";
}

Tensor PoolLayer::Forward(const std::vector<const Tensor*>& inputs, Mode) {
  RequireInputs(inputs, 1);
  const Tensor& x = *inputs[0];
  RequireRank(x, 3, "input (B, N, F)");
  const int64_t B = x.dim(0), N = x.dim(1), F = x.dim(2);
  Tensor& xt = node_inputs_[input_name_];
  ResizeTensor(&xt, {B * F, N});
  for (int64_t b = 0; b < B; ++b)
    MatrixMap(xt.data() + b * N * F, F, N) = ConstMatrixMap(x.data() + b * N * F, N, F).transpose();
  RunOptions run;
  run.threads = threads_;
  ForwardResult result = ddn::Forward(*node_, node_inputs_, run);
  outputs_ = std::move(result.outputs);
  status_ = std::move(result.status);
  const Tensor& y = outputs_.at(output_name_);
  if (y.size() != B * F) {
    throw InvalidInput("node '" + node_->name() + "' gives " + ShapeString(y.shape()) + " for " +
                       ShapeString(xt.shape()) + ", not one value per problem");
  }
  Tensor out = OutputTensor({B, F});
  std::copy(y.data(), y.data() + y.size(), out.data());
  return out;
}

void PoolLayer::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                         const std::vector<Tensor*>& grad_inputs) {
  const Tensor& x = *inputs[0];
  const int64_t N = x.dim(1), F = x.dim(2);
  Tensor& g = grad_outputs_[output_name_];
  ResizeTensor(&g, outputs_.at(output_name_).shape());
  std::copy(grad_output.data(), grad_output.data() + grad_output.size(), g.data());
  RunOptions run;
  run.threads = threads_;
  ddn::TensorMap grads = ddn::Backward(*node_, node_inputs_, outputs_, grad_outputs_, &status_, run);
  auto it = grads.find(input_name_);
  if (it == grads.end() || !grad_inputs[0]) return;
  const Tensor& gx = it->second;  // (B·F, N)
  for (int64_t b = 0; b < x.dim(0); ++b)
    MatrixMap(grad_inputs[0]->data() + b * N * F, N, F) += ConstMatrixMap(gx.data() + b * N * F, F, N).transpose();
}

Graph::NodeId PoolOverPoints(Graph& graph, const std::string& name, Graph::NodeId features, int num_features,
                             const std::string& node, const std::map<std::string, std::string>& params,
                             const NodeLayerOptions& options) {
  (void)num_features;  // the layer reads F from its input
  return graph.Add(name, std::make_unique<PoolLayer>(node, params, options), {features});
}

}  // namespace ddn::graph
