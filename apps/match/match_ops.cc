#include "apps/match/match_ops.h"

#include <Eigen/Core>
#include <cmath>

#include "apps/match/matching.h"
#include "ddn/error.h"

namespace ddn::match {
namespace {
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;
constexpr double kEpsilon = 1e-9;
}  // namespace

Tensor PairwiseDistance::Forward(const std::vector<const Tensor*>& inputs, graph::Mode) {
  const Tensor& f = *inputs.at(0);
  if (f.rank() != 3 || f.dim(1) <= rows_a_) throw InvalidInput("PairwiseDistance needs (B, N_a + N_b, D) features");
  const int64_t B = f.dim(0), nb = f.dim(1) - rows_a_, d = f.dim(2);
  Tensor m({B, rows_a_, nb});
  for (int64_t b = 0; b < B; ++b) {
    const ConstMap fa(f.problem(b), rows_a_, d), fb(f.problem(b) + rows_a_ * d, nb, d);
    Map out(m.problem(b), rows_a_, nb);
    out.noalias() = -2.0 * fa * fb.transpose();
    out.colwise() += fa.rowwise().squaredNorm();
    out.rowwise() += fb.rowwise().squaredNorm().transpose();
    out = (out.array().max(0.0) + kEpsilon * kEpsilon).sqrt();
  }
  return m;
}

void PairwiseDistance::Backward(const std::vector<const Tensor*>& inputs, const Tensor& output,
                                const Tensor& grad_output, const std::vector<Tensor*>& grad_inputs) {
  const Tensor& f = *inputs.at(0);
  if (!grad_inputs.at(0)) return;
  const int64_t B = f.dim(0), nb = f.dim(1) - rows_a_, d = f.dim(2);
  for (int64_t b = 0; b < B; ++b) {
    const ConstMap fa(f.problem(b), rows_a_, d), fb(f.problem(b) + rows_a_ * d, nb, d);
    const RowMatrix r =
        ConstMap(grad_output.problem(b), rows_a_, nb).array() / ConstMap(output.problem(b), rows_a_, nb).array();
    Map ga(grad_inputs[0]->problem(b), rows_a_, d), gb(grad_inputs[0]->problem(b) + rows_a_ * d, nb, d);
    ga += r.rowwise().sum().asDiagonal() * fa;
    ga.noalias() -= r * fb;
    gb += r.colwise().sum().transpose().asDiagonal() * fb;
    gb.noalias() -= r.transpose() * fa;
  }
}

FeatureWeights::FeatureWeights(int features) : features_(features) {
  if (features < 1) throw InvalidInput("FeatureWeights needs a positive size");
  weight_.name = "weight";
  weight_.value = Tensor({features}, 1.0);
  weight_.grad = Tensor({features});
}

Tensor FeatureWeights::Forward(const std::vector<const Tensor*>& inputs, graph::Mode) {
  const Tensor& x = *inputs.at(0);
  if (x.rank() < 1 || x.dim(x.rank() - 1) != features_)
    throw InvalidInput("FeatureWeights(" + std::to_string(features_) + ") got shape " + ShapeString(x.shape()));
  Tensor y = x;
  for (int64_t k = 0; k < y.size(); ++k) y[k] *= weight_.value[k % features_];
  return y;
}

void FeatureWeights::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                              const std::vector<Tensor*>& grad_inputs) {
  const Tensor& x = *inputs.at(0);
  for (int64_t k = 0; k < x.size(); ++k) {
    weight_.grad[k % features_] += grad_output[k] * x[k];
    if (grad_inputs.at(0)) (*grad_inputs[0])[k] += grad_output[k] * weight_.value[k % features_];
  }
}

Tensor MatchNll::Forward(const std::vector<const Tensor*>& inputs, graph::Mode) {
  const Tensor& p = *inputs.at(0);
  const Tensor& t = *inputs.at(1);
  if (p.shape() != t.shape() || p.rank() != 3) throw InvalidInput("MatchNll needs a plan and a mask of one shape");
  const double na = static_cast<double>(p.dim(1));
  double sum = 0, count = 0;
  for (int64_t k = 0; k < p.size(); ++k)
    if (t[k] != 0) sum -= t[k] * std::log(na * p[k]), count += t[k];
  if (count == 0) throw InvalidInput("MatchNll: no ground-truth pairs in the batch");
  count_ = count;
  return Tensor({1}, {sum / count});
}

void MatchNll::Backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& grad_output,
                        const std::vector<Tensor*>& grad_inputs) {
  const Tensor& p = *inputs.at(0);
  const Tensor& t = *inputs.at(1);
  if (!grad_inputs.at(0)) return;
  const double g = grad_output[0] / count_;
  for (int64_t k = 0; k < p.size(); ++k)
    if (t[k] != 0) (*grad_inputs[0])[k] -= g * t[k] / p[k];
}

}  // namespace ddn::match
