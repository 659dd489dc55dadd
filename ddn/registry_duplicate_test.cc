// Two node types registered under one name: an error that names both definitions (a silently replaced node
// would answer for the other). The first registers as every node does (DDN_REGISTER_NODE, at start-up); the
// second registration is made at run time, as a second static would, so that the error can be caught here.
#include <gtest/gtest.h>

#include <string>

#include "ddn/error.h"
#include "ddn/node.h"

namespace {

class First : public ddn::Node {
 public:
  static ddn::NodeSpec Spec() { return {"twice", "first", {}, {{"x", {}, "x"}}, {{"y", {}, "y"}}}; }
  explicit First(const ddn::Params&) : Node(Spec()) {}
  void Solve(const ddn::ProblemData& p, ddn::ProblemStatus*) const override { p.outputs[0][0] = 1; }
};
DDN_REGISTER_NODE(First);

class Second : public ddn::Node {
 public:
  static ddn::NodeSpec Spec() { return {"twice", "second", {}, {{"x", {}, "x"}}, {{"y", {}, "y"}}}; }
  explicit Second(const ddn::Params&) : Node(Spec()) {}
  void Solve(const ddn::ProblemData& p, ddn::ProblemStatus*) const override { p.outputs[0][0] = 2; }
};

TEST(Registry, ANameRegisteredTwiceIsAnErrorNamingBothDefinitions) {
  try {
    ddn::RegisterNode(
        Second::Spec(), [](const ddn::Params& p) -> std::unique_ptr<ddn::Node> { return std::make_unique<Second>(p); },
        ddn::NodeDefinition("Second", __FILE__, __LINE__));
    FAIL() << "expected InvalidInput";
  } catch (const ddn::InvalidInput& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("node 'twice' is registered twice"), std::string::npos) << what;
    EXPECT_NE(what.find("First (registry_duplicate_test.cc:"), std::string::npos) << what;
    EXPECT_NE(what.find("Second (registry_duplicate_test.cc:"), std::string::npos) << what;
  }
  // The first definition stays: the registry still answers with it.
  EXPECT_EQ(ddn::GetNodeSpec("twice").summary, "first");
}

TEST(Registry, DefinitionsDropTheDirectory) {
  EXPECT_EQ(ddn::NodeDefinition("MyNode", "/some/where/my_node.cc", 12), "MyNode (my_node.cc:12)");
  EXPECT_EQ(ddn::NodeDefinition("MyNode", "my_node.cc", 3), "MyNode (my_node.cc:3)");
}

}  // namespace
