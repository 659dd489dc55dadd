// A plugin built "for ddn 0.999" (tests/plugins/CMakeLists.txt compiles it with DDN_VERSION="0.999.0" and
// DDN_ABI_VERSION=999): refused before any of its code touches the registry.
#include "ddn/node.h"

namespace {

class FromTheFuture : public ddn::Node {
 public:
  static ddn::NodeSpec Spec() {
    return {"plugin_other_abi", "never registered", {}, {{"x", {"N"}, "points"}}, {{"y", {}, "zero"}}};
  }
  explicit FromTheFuture(const ddn::Params&) : ddn::Node(Spec()) {}
  void Solve(const ddn::ProblemData& p, ddn::ProblemStatus*) const override { p.outputs[0][0] = 0; }
};
DDN_REGISTER_NODE(FromTheFuture);

}  // namespace
