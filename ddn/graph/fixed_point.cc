#include "ddn/graph/fixed_point.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <deque>

#include "ddn/anderson.h"
#include "ddn/error.h"
#include "ddn/params.h"

namespace ddn::graph {
namespace {

using Eigen::Map;
using Eigen::MatrixXd;
using Eigen::VectorXd;

Map<VectorXd> Vec(Tensor& t) {
  return Map<VectorXd>(t.data(), t.size());
}
Map<const VectorXd> Vec(const Tensor& t) {
  return Map<const VectorXd>(t.data(), t.size());
}
double MaxAbs(const Tensor& t) {
  return t.size() ? Vec(t).cwiseAbs().maxCoeff() : 0.0;
}

// ⟨seed, f⟩: a scalar whose reverse pass is the cell's vector–Jacobian product with `seed`.
class SeedDot : public Op {
 public:
  explicit SeedDot(const Tensor* seed) : seed_(seed) {}
  std::string Describe() const override { return "SeedDot"; }
  Tensor Forward(const std::vector<const Tensor*>& in, Mode) override {
    Tensor out(Shape{1});
    if (seed_->shape() == in[0]->shape()) out[0] = Vec(*seed_).dot(Vec(*in[0]));
    return out;
  }
  void Backward(const std::vector<const Tensor*>& in, const Tensor&, const Tensor& g,
                const std::vector<Tensor*>& gi) override {
    if (seed_->shape() != in[0]->shape()) {
      throw InvalidInput("fixed point: the cell's output f has shape " + ShapeString(in[0]->shape()) + ", z has " +
                         ShapeString(seed_->shape()));
    }
    Vec(*gi[0]) += g[0] * Vec(*seed_);
  }

 private:
  const Tensor* seed_;
};

// Anderson mixing over a window of (z_j, f_j): Σ α_j ((1 − β) z_j + β f_j), α from the residuals f_j − z_j.
Tensor Mix(const std::deque<const Tensor*>& zs, const std::deque<const Tensor*>& fs, double beta,
           std::vector<double>* alpha_out) {
  const int c = static_cast<int>(zs.size());
  const Eigen::Index n = zs[0]->size();
  MatrixXd G(n, c);
  for (int j = 0; j < c; ++j) G.col(j) = Vec(*fs[j]) - Vec(*zs[j]);
  const VectorXd alpha = AndersonWeights(G);
  Tensor next(zs[0]->shape(), 0.0);
  for (int j = 0; j < c; ++j) Vec(next) += alpha[j] * ((1 - beta) * Vec(*zs[j]) + beta * Vec(*fs[j]));
  alpha_out->assign(alpha.data(), alpha.data() + c);
  return next;
}

}  // namespace

void FixedPointOptions::Validate() const {
  if (features < 1) throw InvalidInput("FixedPointLayer: features (N, the size of z) must be >= 1");
  if (window < 1 || window > 100)
    throw InvalidInput("FixedPointLayer: window must be in [1, 100], got " + std::to_string(window));
  if (!(beta > 0 && beta <= 1))
    throw InvalidInput("FixedPointLayer: beta must be in (0, 1], got " + FormatDouble(beta));
  if (max_iterations < 1) throw InvalidInput("FixedPointLayer: max_iterations must be >= 1");
  if (!(tolerance >= 0)) throw InvalidInput("FixedPointLayer: tolerance must be >= 0, got " + FormatDouble(tolerance));
  if (!(backward_tolerance > 0)) throw InvalidInput("FixedPointLayer: backward_tolerance must be > 0");
  if (backward_max_iterations < 1) throw InvalidInput("FixedPointLayer: backward_max_iterations must be >= 1");
}

FixedPointLayer::FixedPointLayer(std::unique_ptr<Graph> cell, const FixedPointOptions& options)
    : cell_(std::move(cell)), options_(options) {
  if (!cell_) throw InvalidInput("FixedPointLayer: no cell graph");
  options_.Validate();
  z_in_ = cell_->Find("z");
  x_in_ = cell_->Find("x");
  f_ = cell_->Find("f");
  if (cell_->GetOp(z_in_) || cell_->GetOp(x_in_))
    throw InvalidInput("FixedPointLayer: the cell's 'z' and 'x' must be inputs");
  seed_node_ = cell_->Add("fixed_point.seed", std::make_unique<SeedDot>(&seed_), {f_});
}

std::string FixedPointLayer::Describe() const {
  return std::string("FixedPointLayer(N = ") + std::to_string(options_.features) + ", " +
         (options_.solver == FixedPointOptions::kAnderson ? "anderson" : "picard") + ", " +
         options_.backward.ToString() + ")";
}

Tensor FixedPointLayer::Cell(const Tensor& z, const Tensor& x) {
  cell_->Forward({{"z", z}, {"x", x}}, {f_}, mode_);
  const Tensor& f = cell_->Value(f_);
  if (f.shape() != z.shape()) {
    throw InvalidInput("FixedPointLayer: the cell maps z " + ShapeString(z.shape()) + " to f " +
                       ShapeString(f.shape()) + "; they must agree");
  }
  return f;
}

void FixedPointLayer::PrepareVjp(const Tensor& z, const Tensor& x) {
  seed_ = Tensor(z.shape());
  cell_->Forward({{"z", z}, {"x", x}}, {seed_node_}, mode_);
}

void FixedPointLayer::VjpAtLastCell(const Tensor& seed, Tensor* zbar, Tensor* xbar) {
  seed_ = seed;
  cell_->Backward(seed_node_);
  ++stats_.backward_iterations;
  const Tensor& gz = cell_->Grad(z_in_);
  if (zbar && !gz.empty()) Vec(*zbar) += Vec(gz);
  const Tensor& gx = cell_->Grad(x_in_);
  if (xbar && !gx.empty()) Vec(*xbar) += Vec(gx);
}

Tensor FixedPointLayer::Forward(const std::vector<const Tensor*>& inputs, Mode mode) {
  if (inputs.size() != 1) throw InvalidInput("FixedPointLayer takes one input x, got " + std::to_string(inputs.size()));
  options_.Validate();
  mode_ = mode;
  const Tensor& x = *inputs[0];
  if (x.rank() < 1 || x.dim(0) < 1)
    throw InvalidInput("FixedPointLayer: x must have a batch axis, got " + ShapeString(x.shape()));
  const bool record = !options_.backward.implicit();
  tape_z_.clear();
  tape_f_.clear();
  steps_.clear();
  stats_ = FixedPointStats();
  // The Anderson window (implicit mode keeps only it: memory independent of the iteration count).
  std::deque<Tensor> zs, fs;
  Tensor z(Shape{x.dim(0), options_.features}, 0.0);
  for (int k = 0;; ++k) {
    if (k == options_.max_iterations && !options_.require_convergence && options_.tolerance == 0) break;
    Tensor f = Cell(z, x);
    ++stats_.forward_iterations;
    const double res = (Vec(f) - Vec(z)).cwiseAbs().maxCoeff() / (1.0 + MaxAbs(z));
    stats_.forward_residual = res;
    if (record) {
      tape_z_.push_back(z);
      tape_f_.push_back(f);
    }
    if (!std::isfinite(res))
      throw NumericalFailure("FixedPointLayer: the iteration diverged (non-finite f) at step " + std::to_string(k));
    if (res <= options_.tolerance) break;
    if (k == options_.max_iterations) {
      if (options_.require_convergence) {
        throw NumericalFailure("FixedPointLayer: no fixed point within " + std::to_string(k) +
                               " iterations (scaled residual " + FormatDouble(res) + " > tolerance " +
                               FormatDouble(options_.tolerance) + "); is the cell a contraction?");
      }
      break;
    }
    Step st;
    st.beta = options_.beta;
    if (options_.solver == FixedPointOptions::kPicard) {
      st.anderson = false;
      Tensor next = z;
      Vec(next) = (1 - options_.beta) * Vec(z) + options_.beta * Vec(f);
      z = std::move(next);
    } else {
      zs.push_back(z);
      fs.push_back(std::move(f));
      while (static_cast<int>(zs.size()) > options_.window) zs.pop_front(), fs.pop_front();
      std::deque<const Tensor*> zp, fp;
      for (size_t j = 0; j < zs.size(); ++j) zp.push_back(&zs[j]), fp.push_back(&fs[j]);
      st.first = k - static_cast<int>(zs.size()) + 1;
      z = Mix(zp, fp, options_.beta, &st.alpha);
    }
    if (record) steps_.push_back(std::move(st));
  }
  if (record) {
    // Without a final cell evaluation (explicit depth) the output is the last step's result.
    if (tape_z_.size() == steps_.size()) tape_z_.push_back(z);
    for (const auto& t : tape_z_) stats_.tape_bytes += t.size() * sizeof(double);
    for (const auto& t : tape_f_) stats_.tape_bytes += t.size() * sizeof(double);
  }
  return z;
}

void FixedPointLayer::Backward(const std::vector<const Tensor*>& inputs, const Tensor& output,
                               const Tensor& grad_output, const std::vector<Tensor*>& grad_inputs) {
  const Tensor& x = *inputs[0];
  Tensor* xbar = grad_inputs.empty() ? nullptr : grad_inputs[0];
  stats_.backward_iterations = 0;
  if (options_.backward.implicit()) {
    // Solve u = ḡ + Jᵀu at z*; the parameter gradients of these products are not wanted: save and restore.
    std::vector<Parameter*> params = cell_->Parameters();
    std::vector<Tensor> saved;
    for (Parameter* p : params) saved.push_back(p->grad);
    PrepareVjp(output, x);
    const double scale = 1.0 + MaxAbs(grad_output);
    std::deque<Tensor> us, hs;
    Tensor u = grad_output, best_u = grad_output;
    double best = std::numeric_limits<double>::infinity();
    for (int k = 0; k < options_.backward_max_iterations; ++k) {
      Tensor h = grad_output;
      VjpAtLastCell(u, &h, nullptr);
      const double res = (Vec(h) - Vec(u)).cwiseAbs().maxCoeff() / scale;
      if (res < best) best = res, best_u = u;
      if (res <= options_.backward_tolerance || !std::isfinite(res)) break;
      us.push_back(u);
      hs.push_back(std::move(h));
      while (static_cast<int>(us.size()) > options_.window) us.pop_front(), hs.pop_front();
      std::deque<const Tensor*> up, hp;
      for (size_t j = 0; j < us.size(); ++j) up.push_back(&us[j]), hp.push_back(&hs[j]);
      std::vector<double> alpha;
      u = Mix(up, hp, 1.0, &alpha);
    }
    stats_.backward_residual = best;
    for (size_t i = 0; i < params.size(); ++i) params[i]->grad = saved[i];
    if (!(best <= options_.backward_tolerance)) {
      throw NumericalFailure("FixedPointLayer: the implicit backward did not converge (scaled residual " +
                             FormatDouble(best) + " after " + std::to_string(options_.backward_max_iterations) +
                             " iterations); the spectral radius of df/dz may be >= 1");
    }
    VjpAtLastCell(best_u, nullptr, xbar);
    return;
  }
  // Unrolled / truncated: reverse mode through the recorded steps.
  const int T = static_cast<int>(steps_.size());
  const int K = options_.backward.StepsOf(T);
  std::vector<Tensor> zb(T + 1), fb(T + 1);
  auto zero_like = [&](int j) {
    if (zb[j].empty()) zb[j] = Tensor(tape_z_[j].shape(), 0.0);
    if (fb[j].empty()) fb[j] = Tensor(tape_z_[j].shape(), 0.0);
  };
  zero_like(T);
  Vec(zb[T]) += Vec(grad_output);
  for (int k = T - 1; k >= T - K; --k) {
    const Step& st = steps_[k];
    const Tensor& out = zb[k + 1];
    if (st.anderson) {
      const int c = static_cast<int>(st.alpha.size());
      const Eigen::Index n = out.size();
      VectorXd alpha_bar(c);
      MatrixXd G(n, c);
      for (int j = 0; j < c; ++j) {
        const int i = st.first + j;
        zero_like(i);
        alpha_bar[j] = Vec(out).dot((1 - st.beta) * Vec(tape_z_[i]) + st.beta * Vec(tape_f_[i]));
        Vec(zb[i]) += st.alpha[j] * (1 - st.beta) * Vec(out);
        Vec(fb[i]) += st.alpha[j] * st.beta * Vec(out);
        G.col(j) = Vec(tape_f_[i]) - Vec(tape_z_[i]);
      }
      const MatrixXd Gbar = AndersonWeightsAdjoint(G, alpha_bar);
      for (int j = 0; j < c; ++j) {
        Vec(fb[st.first + j]) += Gbar.col(j);
        Vec(zb[st.first + j]) -= Gbar.col(j);
      }
    } else {
      zero_like(k);
      Vec(zb[k]) += (1 - st.beta) * Vec(out);
      Vec(fb[k]) += st.beta * Vec(out);
    }
    zb[k + 1] = Tensor();  // consumed
    // f_k is complete: every step mixing it (k … k + window − 1) has been run back.
    PrepareVjp(tape_z_[k], x);
    VjpAtLastCell(fb[k], &zb[k], xbar);
    fb[k] = Tensor();
  }
}

}  // namespace ddn::graph
