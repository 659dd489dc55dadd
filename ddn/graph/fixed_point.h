// ddn/graph/fixed_point.h: the equilibrium of a small sub-graph, as one layer (a deep equilibrium model).
//
// A deep equilibrium model (Bai, Kolter & Koltun, NeurIPS 2019) replaces L weight-tied layers z_{l+1} = f(z_l, x; θ)
// by their fixed point z* = f(z*, x; θ). FixedPointLayer takes the cell f as a ddn::graph::Graph with two inputs
// named "z" (B, N) and "x" (any shape, batch first) and an output node named "f" of the shape of z; the layer's
// input is x and its output z* (B, N). The cell's parameters θ become the layer's parameters.
//
// Forward: from z_0 = 0, Anderson acceleration over the whole batch (ddn/anderson.h; window `window`, mixing
// `beta`) or plain Picard iteration z_{k+1} = f(z_k, x), until ‖f(z) − z‖∞ ≤ tolerance·(1 + ‖z‖∞) (NumericalFailure
// after max_iterations when require_convergence; otherwise the last iterate is returned — with the Picard
// solver, tolerance 0 and require_convergence false this is exactly the explicit weight-tied network of depth
// max_iterations, z_L = f(…f(f(0, x), x)…, x)).
//
// Backward (options.backward, ddn/gradient_mode.h):
//   implicit     at z*, with J = ∂f/∂z, the implicit function theorem gives x̄ = (∂f/∂x)ᵀu, θ̄ = (∂f/∂θ)ᵀu for
//                u = ḡ + Jᵀu (Bai et al. 2019, eq. 5), solved by Anderson acceleration with one vector–Jacobian
//                product of the cell per iteration (a Graph::Backward of ⟨u, f⟩ at z*); the parameter gradients
//                of those products are discarded, and one last product with the converged u adds x̄ and θ̄.
//                Memory: the cell's activations at z* and `window` copies of u, whatever the iteration count.
//   unrolled     reverse mode through every recorded forward step (the Anderson weights' adjoint included):
//                each f(z_k, x) is re-evaluated at its stored input and its vector–Jacobian product adds to z̄_k,
//                x̄ and θ̄. Memory: every iterate z_k and f(z_k) (2 (T + 1) B N values).
//   truncated:K  the same through the last K steps; older iterates are constants.
//
// Usage (a DEQ cell tanh(Wz + x)):
//   auto cell = std::make_unique<Graph>();
//   auto z = cell->Input("z"), x = cell->Input("x");
//   auto wz = cell->Add("W", std::make_unique<Linear>(N, N, seed), {z});
//   cell->Add("f", std::make_unique<Tanh>(), {cell->Add("sum", std::make_unique<Add>(), {wz, x})});
//   FixedPointOptions o;
//   o.features = N;
//   graph.Add("deq", std::make_unique<FixedPointLayer>(std::move(cell), o), {injected_x});
//
// Not thread-safe (like Graph).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "ddn/gradient_mode.h"
#include "ddn/graph/graph.h"

namespace ddn::graph {

struct FixedPointOptions {
  int features = 0;  // N: z has shape (B, N); required (> 0)
  enum Solver { kAnderson, kPicard };
  Solver solver = kAnderson;          // forward iteration
  int window = 5;                     // Anderson memory (forward and implicit backward)
  double beta = 1.0;                  // Anderson mixing in (0, 1]
  int max_iterations = 100;           // forward iterations at most
  double tolerance = 1e-10;           // forward stops at ‖f(z) − z‖∞ ≤ tolerance·(1 + ‖z‖∞); ≥ 0
  bool require_convergence = true;    // NumericalFailure if the tolerance is not reached
  GradientMode backward;              // implicit (default), unrolled or truncated:K
  double backward_tolerance = 1e-10;  // implicit backward: ‖ḡ + Jᵀu − u‖∞ ≤ this·(1 + ‖ḡ‖∞)
  int backward_max_iterations = 200;  // implicit backward iterations at most (NumericalFailure beyond)

  // Throws InvalidInput naming the field.
  void Validate() const;
};

// What the last Forward/Backward did.
struct FixedPointStats {
  int forward_iterations = 0;    // cell evaluations of the forward solve
  double forward_residual = 0;   // ‖f(z) − z‖∞ / (1 + ‖z‖∞) at the output
  int backward_iterations = 0;   // vector–Jacobian products of the cell in the backward pass
  double backward_residual = 0;  // implicit: the scaled residual of u
  size_t tape_bytes = 0;         // unrolled/truncated: memory of the recorded iterates
};

class FixedPointLayer : public Op {
 public:
  // `cell` must have inputs "z" and "x" and a node "f". Throws InvalidInput otherwise.
  FixedPointLayer(std::unique_ptr<Graph> cell, const FixedPointOptions& options);
  std::string Describe() const override;
  Tensor Forward(const std::vector<const Tensor*>& inputs, Mode mode) override;
  void Backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& grad_output,
                const std::vector<Tensor*>& grad_inputs) override;
  std::vector<Parameter*> Parameters() override { return cell_->Parameters(); }

  const FixedPointStats& stats() const { return stats_; }
  const FixedPointOptions& options() const { return options_; }
  // Options may change between passes (tolerance, gradient mode); Validate()d at the next Forward.
  FixedPointOptions* mutable_options() { return &options_; }
  Graph& cell() { return *cell_; }

 private:
  struct Step {
    bool anderson = true;
    int first = 0;  // Anderson window: iterates first … k
    std::vector<double> alpha;
    double beta = 1.0;
  };
  Tensor Cell(const Tensor& z, const Tensor& x);
  // Evaluates the cell at (z, x) and keeps its activations for VjpAtLastCell.
  void PrepareVjp(const Tensor& z, const Tensor& x);
  // zbar += (∂f/∂z)ᵀ seed, xbar += (∂f/∂x)ᵀ seed (if given), parameters' grad += (∂f/∂θ)ᵀ seed.
  void VjpAtLastCell(const Tensor& seed, Tensor* zbar, Tensor* xbar);

  std::unique_ptr<Graph> cell_;
  Graph::NodeId z_in_ = -1, x_in_ = -1, f_ = -1, seed_node_ = -1;
  Tensor seed_;
  FixedPointOptions options_;
  Mode mode_ = Mode::kTrain;
  FixedPointStats stats_;
  // The recorded forward (unrolled and truncated modes only).
  std::vector<Tensor> tape_z_, tape_f_;
  std::vector<Step> steps_;
};

}  // namespace ddn::graph
