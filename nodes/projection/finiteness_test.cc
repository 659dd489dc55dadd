// The `project` node checks NaN and Inf in its own kernels (ddn/finiteness.h): every bad value is refused with the
// message the batch engine gives on the generic path, which keeps the engine's checks; sums that overflow with
// finite values are not mistaken for bad ones; the backward of the sets whose product does not read x does not
// check it.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/finiteness.h"
#include "ddn/node.h"
#include "ddn/random.h"
#include "nodes/projection/projections.h"
#include "tests/finiteness_checks.h"

namespace ddn {
namespace projection {
namespace {

using ddn::testing::Gaussian;
using ddn::testing::Generic;
using ddn::testing::kBadValues;
using ddn::testing::kInf;
using ddn::testing::kNaN;
using ddn::testing::Thrown;

std::unique_ptr<Node> MakeProject(const std::string& shape) {
  return MakeNode("project", {{"shape", shape}});
}

// Row lengths below one vector, inside a block of 16, and past several blocks with a tail; bad values at the
// first, a middle and the last position of problem 1 of 3.
const std::vector<int64_t> kDims = {1, 7, 37};

TEST(ProjectFiniteness, TheNodeSaysItChecksItself) {
  EXPECT_TRUE(NodeChecksOwnFiniteness(*MakeProject("simplex")));
  EXPECT_FALSE(NodeChecksOwnFiniteness(*MakeNode("project_ellipsoid")));  // the engine checks for it
}

TEST(ProjectFiniteness, ForwardRefusesEveryBadInputWithTheEnginesMessage) {
  for (const std::string& shape : ProjectionSetNames()) {
    const auto node = MakeProject(shape);
    for (const int64_t dim : kDims) {
      for (const int64_t at : {int64_t{0}, dim / 2, dim - 1}) {
        for (const double bad : kBadValues) {
          Tensor x = Gaussian(3, dim, 7);
          x.problem(1)[at] = bad;
          const std::string own = Thrown([&] { Forward(*node, {{"x", x}}); });
          const std::string engine = Thrown([&] { Forward(*node, {{"x", x}}, Generic()); });
          EXPECT_EQ(own, engine) << shape << " D=" << dim << " at " << at << " " << bad;
          EXPECT_NE(own.find("InvalidInput: batch element 1: input 'x' contains a non-finite value"), std::string::npos)
              << own;
          EXPECT_NE(own.find("at index " + std::to_string(at) + " of the problem"), std::string::npos) << own;
        }
      }
    }
  }
}

TEST(ProjectFiniteness, BadRadiusInputIsRefusedForwardAndBackward) {
  for (const std::string& shape : ProjectionSetNames()) {
    const auto node = MakeProject(shape);
    const Tensor x = Gaussian(2, 5, 3);
    Tensor radius({2}, 1.0);
    const ForwardResult good = Forward(*node, {{"x", x}, {"radius", radius}});
    for (const double bad : kBadValues) {
      radius.values()[1] = bad;
      const std::string own = Thrown([&] { Forward(*node, {{"x", x}, {"radius", radius}}); });
      EXPECT_EQ(own, Thrown([&] { Forward(*node, {{"x", x}, {"radius", radius}}, Generic()); })) << shape;
      EXPECT_NE(own.find("input 'radius' contains a non-finite value"), std::string::npos) << own;
      std::vector<ProblemStatus> status;
      const std::string back = Thrown([&] {
        Backward(*node, {{"x", x}, {"radius", radius}}, good.outputs, {{"y", Gaussian(2, 5, 4)}}, &status);
      });
      EXPECT_NE(back.find("batch element 1: input 'radius' contains a non-finite value"), std::string::npos) << back;
    }
  }
}

TEST(ProjectFiniteness, BackwardRefusesEveryBadGradOutputWithTheEnginesMessage) {
  for (const std::string& shape : ProjectionSetNames()) {
    const auto node = MakeProject(shape);
    for (const int64_t dim : kDims) {
      const Tensor x = Gaussian(3, dim, 11);
      const ForwardResult fwd = Forward(*node, {{"x", x}});
      for (const int64_t at : {int64_t{0}, dim / 2, dim - 1}) {
        for (const double bad : kBadValues) {
          Tensor v = Gaussian(3, dim, 12);
          v.problem(1)[at] = bad;
          std::vector<ProblemStatus> status;
          const std::string own = Thrown([&] { Backward(*node, {{"x", x}}, fwd.outputs, {{"y", v}}, &status); });
          const std::string engine = Thrown([&] {
            Backward(*node, {{"x", x}}, fwd.outputs, {{"y", v}}, &status, Generic());
          });
          EXPECT_EQ(own, engine) << shape << " D=" << dim << " at " << at << " " << bad;
          EXPECT_NE(own.find("InvalidInput: batch element 1: grad_outputs 'y' contains a non-finite value"),
                    std::string::npos)
              << own;
        }
      }
    }
  }
}

// Whether the backward reads x[at] of a row of 37 Gaussian values with r = 1: the L2 and L∞ products read all of x;
// the L1 ball reads x until its leading blocks of 16 sum past r (here the first block: Σ|x_i| over 16 Gaussian
// values is far above 1), or all of it; the simplex and the L1 sphere read y and v only. Their gradient does not
// depend on what they do not read, which the forward pass that made y has checked.
bool BackwardReadsX(ProjectionSet set, int64_t at) {
  if (set == ProjectionSet::kSimplex || set == ProjectionSet::kL1Sphere) return false;
  return set != ProjectionSet::kL1Ball || at < 16;
}

TEST(ProjectFiniteness, BackwardChecksTheRowsItReads) {
  for (const std::string& shape : ProjectionSetNames()) {
    const auto node = MakeProject(shape);
    const ProjectionSet set = ParseProjectionSet(shape);
    const Tensor x = Gaussian(3, 37, 21), v = Gaussian(3, 37, 22);
    const ForwardResult fwd = Forward(*node, {{"x", x}});
    std::vector<ProblemStatus> status;
    const TensorMap expected = Backward(*node, {{"x", x}}, fwd.outputs, {{"y", v}}, &status);
    for (const int64_t at : {int64_t{3}, int64_t{20}}) {
      for (const double bad : kBadValues) {
        Tensor bad_x = x;
        bad_x.problem(1)[at] = bad;
        TensorMap grads;
        const std::string own = Thrown([&] {
          grads = Backward(*node, {{"x", bad_x}}, fwd.outputs, {{"y", v}}, &status);
        });
        if (BackwardReadsX(set, at)) {
          EXPECT_NE(own.find("InvalidInput: batch element 1: input 'x' contains a non-finite value (" +
                             FormatDouble(bad) + ") at index " + std::to_string(at)),
                    std::string::npos)
              << shape << ": " << own;
        } else {
          EXPECT_EQ(own, "") << shape;
          EXPECT_EQ(grads.at("x").values(), expected.at("x").values()) << shape;
        }
      }
    }
  }
}

// The L1 ball's backward takes the forward's side of ‖x‖₁ < r exactly, also within rounding of the sphere: the
// same sum in the same order, or a partial sum past r with room for rounding. Rows scaled to ‖x‖₁ = r·(1 + k ε)
// for k = −8…8 and row lengths that end inside and outside a block: the gradient is v inside, and not outside.
TEST(ProjectFiniteness, L1BallBackwardTakesTheForwardsSide) {
  const auto node = MakeProject("l1_ball");
  int inside_count = 0, outside_count = 0;
  for (const int64_t dim : {int64_t{5}, int64_t{16}, int64_t{37}, int64_t{1030}}) {
    for (int k = -8; k <= 8; ++k) {
      Tensor x = Gaussian(1, dim, 40 + k);
      double l1 = 0;
      for (const double xi : x.values()) l1 += std::abs(xi);
      for (double& xi : x.values()) xi *= (1 + k * std::numeric_limits<double>::epsilon()) / l1;
      const ForwardResult fwd = Forward(*node, {{"x", x}});
      const bool inside = fwd.outputs.at("y").values() == x.values();
      (inside ? inside_count : outside_count)++;
      const Tensor v = Gaussian(1, dim, 7);
      std::vector<ProblemStatus> status;
      const TensorMap g = Backward(*node, {{"x", x}}, fwd.outputs, {{"y", v}}, &status);
      EXPECT_EQ(g.at("x").values() == v.values(), inside) << "D=" << dim << " k=" << k;
    }
  }
  EXPECT_GT(inside_count, 0);  // both sides occur
  EXPECT_GT(outside_count, 0);
}

// Finite values whose sums overflow (Σ x_i, Σ x_i², xᵀv) fail the folded check; the node then looks at every value
// and goes on: the same answers as the generic path's checks allow, all finite.
TEST(ProjectFiniteness, OverflowingSumsOfFiniteValuesAreNotRefused) {
  const double huge = std::numeric_limits<double>::max() / 4;
  for (const std::string& shape : ProjectionSetNames()) {
    const auto node = MakeProject(shape);
    for (const int64_t dim : kDims) {
      Tensor x({2, dim}, huge), v({2, dim}, huge);
      for (int64_t i = 0; i < dim; i += 2) x.problem(1)[i] = -huge;
      ForwardResult fwd;
      ASSERT_EQ(Thrown([&] { fwd = Forward(*node, {{"x", x}}); }), "") << shape << " D=" << dim;
      for (const double y : fwd.outputs.at("y").values()) EXPECT_TRUE(std::isfinite(y)) << shape;
      std::vector<ProblemStatus> status;
      TensorMap grads;
      const std::string back = Thrown([&] { grads = Backward(*node, {{"x", x}}, fwd.outputs, {{"y", v}}, &status); });
      // A gradient may overflow to Inf here (v is huge): refused as the engine would, never returned.
      if (back.empty()) {
        for (const double g : grads.at("x").values()) EXPECT_TRUE(std::isfinite(g)) << shape;
      } else {
        EXPECT_NE(back.find("NumericalFailure: batch element"), std::string::npos) << back;
        EXPECT_NE(back.find("produced a non-finite gradient for input 'x'"), std::string::npos) << back;
      }
    }
  }
}

// The functions themselves: true for finite rows, false for a bad value anywhere (the folded check).
TEST(ProjectFiniteness, KernelsReportBadValuesAnywhere) {
  for (const std::string& shape : ProjectionSetNames()) {
    const ProjectionSet set = ParseProjectionSet(shape);
    const bool reads_x = set != ProjectionSet::kSimplex && set != ProjectionSet::kL1Sphere;
    for (const int64_t dim : {int64_t{1}, int64_t{3}, int64_t{16}, int64_t{33}, int64_t{1030}}) {
      const Tensor row = Gaussian(1, dim, 31);
      std::vector<double> x(row.values().begin(), row.values().end()), y(dim), v(x), dx(dim);
      for (double& e : v) e = -0.5 * e + 0.25;
      ASSERT_TRUE(Project(set, x.data(), dim, 1.0, y.data(), nullptr)) << shape;
      double dr = 0;
      ASSERT_TRUE(ProjectVjp(set, x.data(), y.data(), dim, 1.0, v.data(), dx.data(), &dr)) << shape;
      for (const int64_t at : {int64_t{0}, dim / 2, dim - 1}) {
        for (const double bad : kBadValues) {
          std::vector<double> bad_x = x, bad_v = v, scratch(dim), bad_y = y;
          bad_x[at] = bad;
          bad_v[at] = bad;
          EXPECT_FALSE(Project(set, bad_x.data(), dim, 1.0, scratch.data(), nullptr)) << shape << " " << at;
          EXPECT_FALSE(ProjectVjp(set, x.data(), y.data(), dim, 1.0, bad_v.data(), dx.data(), &dr)) << shape;
          EXPECT_FALSE(ProjectVjp(set, x.data(), y.data(), dim, 1.0, bad_v.data(), dx.data(), nullptr)) << shape;
          if (reads_x && (set != ProjectionSet::kL1Ball || at < 16)) {  // see BackwardReadsX
            EXPECT_FALSE(ProjectVjp(set, bad_x.data(), y.data(), dim, 1.0, v.data(), dx.data(), &dr)) << shape;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace projection
}  // namespace ddn
