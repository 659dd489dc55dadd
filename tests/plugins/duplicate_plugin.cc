// A plugin that is refused: it brings a node named `robust_pool`, which the program already has.
#include "ddn/node.h"

namespace {

class Impostor : public ddn::Node {
 public:
  static ddn::NodeSpec Spec() {
    return {"robust_pool", "not the real one", {}, {{"x", {"N"}, "points"}}, {{"y", {}, "zero"}}};
  }
  explicit Impostor(const ddn::Params&) : ddn::Node(Spec()) {}
  void Solve(const ddn::ProblemData& p, ddn::ProblemStatus*) const override { p.outputs[0][0] = 0; }
};
DDN_REGISTER_NODE(Impostor);

// A second node with a fresh name: a refused plugin registers none of its nodes.
class Bystander : public ddn::Node {
 public:
  static ddn::NodeSpec Spec() {
    return {"plugin_bystander", "never registered", {}, {{"x", {"N"}, "points"}}, {{"y", {}, "zero"}}};
  }
  explicit Bystander(const ddn::Params&) : ddn::Node(Spec()) {}
  void Solve(const ddn::ProblemData& p, ddn::ProblemStatus*) const override { p.outputs[0][0] = 0; }
};
DDN_REGISTER_NODE(Bystander);

}  // namespace
