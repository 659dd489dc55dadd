// nodes/surface/robust_fit_node.h: what the nodes fit_plane and fit_sphere share (internal to the family).
//
// Both take the parameters penalty and alpha (internal::RobustFitParams), the inputs points (N, D) and optional
// weights (N), and give two outputs, a D-vector and a scalar (normal and offset; centre and radius). Their
// declarative form `Form` (the generic path) sees the two outputs as one y = (vector, scalar) ∈ R^(D+1);
// RobustFitNode joins and splits them, forwards --solver options to the form, and builds the specialised solver's
// problem `FitProblem` (PlaneFitProblem, SphereFitProblem) from a ProblemData.
//
// Includes ddn/declarative.h (and so Ceres): include it from the nodes' .cc files only.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "ddn/declarative.h"
#include "nodes/pooling/penalties.h"
#include "nodes/surface/node_support.h"

namespace ddn::surface::internal {

template <class FitProblem, class Form>
class RobustFitNode : public Node {
 public:
  bool BackwardAssigns() const override { return true; }
  bool HasGenericPath() const override { return true; }
  // --solver KEY=VALUE: the options of the declarative form's generic engine.
  void SetSolverOption(const std::string& key, const std::string& value) override { form_.SetSolverOption(key, value); }
  std::vector<std::string> SolverOptions() const override { return form_.SolverOptions(); }
  // The form's implicit backward at y = (outputs[0], outputs[1]) with upstream v = (grad_outputs[0], grad_outputs[1]).
  void GenericBackward(const ProblemData& p, ProblemStatus* s) const override {
    const int64_t d = p.Dim("D");
    std::vector<double> y = Joined(p.outputs[0], p.outputs[1][0], d);
    std::vector<double> v = Joined(p.grad_outputs[0], p.grad_outputs[1][0], d);
    ProblemData q = p;
    q.outputs = {y.data()};
    q.output_shapes = {{d + 1}};
    q.grad_outputs = {v.data()};
    form_.GenericBackward(q, s);
  }

 protected:
  RobustFitNode(NodeSpec spec, const Params& p)
      : Node(std::move(spec)),
        kind_(pooling::ParsePenalty(p.GetString("penalty"))),
        alpha_(p.RequirePositive("alpha")),
        form_(kind_, alpha_) {}

  // The form's generic solve: y = (vector, scalar) ∈ R^(D+1), not yet split into the outputs.
  std::vector<double> GenericParameters(const ProblemData& p, ProblemStatus* s) const {
    const int64_t d = p.Dim("D");
    std::vector<double> y(d + 1);
    ProblemData q = p;
    q.outputs = {y.data()};
    q.output_shapes = {{d + 1}};
    form_.GenericSolve(q, s);
    return y;
  }

  // The specialised solver's problem for this batch element.
  FitProblem Problem(const ProblemData& p) const {
    FitProblem q;
    q.cloud = CloudOf(p);
    q.kind = kind_;
    q.alpha = alpha_;
    return q;
  }

  pooling::PenaltyKind kind_;
  double alpha_;
  Form form_;

 private:
  static std::vector<double> Joined(const double* vector, double scalar, int64_t d) {
    std::vector<double> y(vector, vector + d);
    y.push_back(scalar);
    return y;
  }
};

}  // namespace ddn::surface::internal
