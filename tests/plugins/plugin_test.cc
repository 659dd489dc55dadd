// Plugins (ddn/plugin.h): the C++ loader, and the `ddn` tool's --plugin flag and DDN_PLUGINS.
//
// The libraries (tests/plugins/CMakeLists.txt): DDN_TEST_PLUGIN (two nodes, plugin_log_cosh_mean and
// plugin_identity), DDN_DUPLICATE_PLUGIN (brings a second robust_pool), DDN_OTHER_ABI_PLUGIN (built "for ddn
// 0.999"), DDN_NOT_A_PLUGIN (a shared library without the entry point). DDN_CLI is the shipped `ddn`.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ddn/batch.h"
#include "ddn/check.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/plugin.h"
#include "tests/cli/spawn.h"

namespace {

using Json = nlohmann::json;

std::string Canonical(const std::string& path) {
  return std::filesystem::canonical(path).string();
}

// A scratch folder of this process.
std::string Scratch() {
  return ddn::testing::ScratchDir();
}

using ddn::testing::Outcome;

// Runs the shipped `ddn` with `args`, `input` on stdin and DDN_PLUGINS set to `plugins_env` (unset if null).
Outcome Ddn(const std::vector<std::string>& args, const std::string& input = "", const char* plugins_env = nullptr) {
  const std::vector<std::string> env = ddn::testing::EnvironmentWith("DDN_PLUGINS", plugins_env);
  return ddn::testing::Spawn(DDN_CLI, args, input, "", &env);
}

// A refused plugin: exit 2, nothing on stdout, one line on stderr containing every fragment.
void ExpectBadPlugin(const Outcome& r, const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.back(), '\n');
  for (const auto& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << "missing '" << f << "' in: " << r.err;
}

Json NodesJson(const Outcome& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  return Json::parse(r.out);
}

std::string OriginOf(const Json& nodes, const std::string& name) {
  for (const auto& n : nodes["nodes"])
    if (n["name"] == name) return n["origin"];
  return "(not listed)";
}

// ---- the C++ loader -------------------------------------------------------------------------------------

TEST(PluginLoader, RefusedPluginsLeaveTheRegistryAsItWas) {
  const std::vector<std::string> before = ddn::NodeNames();
  const auto expect_refused = [&](const std::string& path, const std::string& fragment) {
    try {
      ddn::LoadPlugin(path);
      ADD_FAILURE() << path << " was loaded";
    } catch (const ddn::InvalidInput& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("plugin '" + path + "'", 0), 0u) << message;
      EXPECT_NE(message.find(fragment), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
    EXPECT_EQ(ddn::NodeNames(), before) << path;
  };
  expect_refused(Scratch() + "/no_such_library.so", "no such file");
  expect_refused(DDN_NOT_A_PLUGIN, "no symbol ddn_plugin_info");
  expect_refused(DDN_DUPLICATE_PLUGIN, "node 'robust_pool' is already registered (built-in)");
  expect_refused(DDN_OTHER_ABI_PLUGIN, "built for ddn 0.999.0 (ABI 999");
  const std::string text = Scratch() + "/text.so";
  std::ofstream(text) << "not a library\n";
  expect_refused(text, "cannot load it");
  EXPECT_EQ(ddn::NodeOrigin("robust_pool"), "built-in");
  EXPECT_TRUE(ddn::LoadedPlugins().empty());
}

TEST(PluginLoader, LoadsNodesThatWorkLikeBuiltInOnes) {
  const ddn::PluginInfo info = ddn::LoadPlugin(DDN_TEST_PLUGIN);
  EXPECT_EQ(info.path, Canonical(DDN_TEST_PLUGIN));
  EXPECT_EQ(info.nodes, (std::vector<std::string>{"plugin_identity", "plugin_log_cosh_mean"}));
  EXPECT_EQ(ddn::NodeOrigin("plugin_log_cosh_mean"), info.path);
  // Loading the same file again (by another spelling of its path) changes nothing.
  const std::string again = std::filesystem::path(DDN_TEST_PLUGIN).parent_path().string() + "/./" +
                            std::filesystem::path(DDN_TEST_PLUGIN).filename().string();
  EXPECT_EQ(ddn::LoadPlugin(again).nodes, info.nodes);
  EXPECT_EQ(ddn::LoadedPlugins().size(), 1u);

  // The plugin's node solves and differentiates: Σ_i tanh((y − x_i)/s) = 0 at the answer, gradients
  // against finite differences.
  auto node = ddn::MakeNode("plugin_log_cosh_mean", {{"scale", "0.5"}});
  const ddn::Tensor x({2, 4}, {0.0, 1.0, 2.0, 9.0, -1.0, -1.5, 3.0, 0.25});
  const ddn::ForwardResult fwd = ddn::Forward(*node, {{"x", x}});
  for (int b = 0; b < 2; ++b) {
    double g = 0;
    for (int i = 0; i < 4; ++i) g += std::tanh((fwd.outputs.at("y")[b] - x[b * 4 + i]) / 0.5);
    EXPECT_LT(std::abs(g), 1e-12) << b;
  }
  const ddn::CheckReport report = ddn::CheckGradients(*node);
  EXPECT_TRUE(report.passed) << report.ToString();
  EXPECT_LE(report.max_rel_error, 1e-6);

  // A name taken by a plugin is refused later on, naming the plugin.
  EXPECT_THROW(ddn::RegisterNode(ddn::GetNodeSpec("plugin_identity"), nullptr), ddn::InvalidInput);
}

TEST(Registry, RegisteringANameTwiceThrows) {
  try {
    ddn::RegisterNode(ddn::GetNodeSpec("robust_pool"), nullptr);
    ADD_FAILURE() << "registered twice";
  } catch (const ddn::InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("node 'robust_pool' is registered twice"), std::string::npos) << e.what();
  }
}

// ---- the `ddn` tool --------------------------------------------------------------------------------------

TEST(PluginCli, NodesListsPluginNodesWithTheirOrigin) {
  const std::string plugin = Canonical(DDN_TEST_PLUGIN);
  const Json with = NodesJson(Ddn({"--plugin", DDN_TEST_PLUGIN, "nodes", "--json"}));
  EXPECT_EQ(OriginOf(with, "plugin_log_cosh_mean"), plugin);
  EXPECT_EQ(OriginOf(with, "plugin_identity"), plugin);
  EXPECT_EQ(OriginOf(with, "robust_pool"), "built-in");
  const Json without = NodesJson(Ddn({"nodes", "--json"}));
  EXPECT_EQ(OriginOf(without, "plugin_log_cosh_mean"), "(not listed)");
  EXPECT_EQ(OriginOf(without, "project"), "built-in");

  // --plugin=PATH, DDN_PLUGINS (with empty entries), and the same file named twice.
  EXPECT_EQ(
      OriginOf(NodesJson(Ddn({std::string("--plugin=") + DDN_TEST_PLUGIN, "nodes", "--json"})), "plugin_identity"),
      plugin);
  const std::string env = std::string(":") + DDN_TEST_PLUGIN + "::";
  EXPECT_EQ(OriginOf(NodesJson(Ddn({"nodes", "--json"}, "", env.c_str())), "plugin_identity"), plugin);
  EXPECT_EQ(OriginOf(NodesJson(Ddn({"--plugin", DDN_TEST_PLUGIN, "nodes", "--json"}, "", DDN_TEST_PLUGIN)),
                     "plugin_identity"),
            plugin);

  const Outcome text = Ddn({"--plugin", DDN_TEST_PLUGIN, "nodes", "plugin_identity", "robust_pool"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("  origin: " + plugin + "\n"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  origin: built-in\n"), std::string::npos) << text.out;
}

TEST(PluginCli, EvalAndCheckRunPluginNodes) {
  const Outcome eval = Ddn({"--plugin", DDN_TEST_PLUGIN, "eval"},
                           R"({"node": "plugin_log_cosh_mean", "params": {"scale": 2}, "inputs": {"x": [[1, 2, 6]]},)"
                           R"( "grad_outputs": {"y": [1]}})");
  ASSERT_EQ(eval.code, 0) << eval.err;
  const Json result = Json::parse(eval.out);
  const double y = result["outputs"]["y"][0];
  double g = 0, gradient_sum = 0;
  for (double xi : {1.0, 2.0, 6.0}) g += std::tanh((y - xi) / 2.0);
  EXPECT_LT(std::abs(g), 1e-12);
  for (const auto& v : result["grad_inputs"]["x"][0]) gradient_sum += v.get<double>();
  EXPECT_NEAR(gradient_sum, 1.0, 1e-12);  // shifting every point shifts y by as much

  const Outcome check = Ddn({"--plugin", DDN_TEST_PLUGIN, "check", "plugin_log_cosh_mean"});
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  EXPECT_NE(check.out.find("PASS"), std::string::npos) << check.out;
  // A plugin node's numerical failure is exit 1, as a built-in one's.
  const Outcome failed = Ddn({"--plugin", DDN_TEST_PLUGIN, "eval"},
                             R"({"node": "plugin_identity", "params": {"fail": true}, "inputs": {"x": [[1, 2]]}})");
  EXPECT_EQ(failed.code, 1) << failed.err;
  EXPECT_NE(failed.err.find("plugin_identity failed as asked"), std::string::npos) << failed.err;
  // Without the plugin the node is unknown (exit 2).
  EXPECT_EQ(Ddn({"check", "plugin_log_cosh_mean"}).code, 2);
}

TEST(PluginCli, BadPluginsAreOneLineErrorsWithExitCode2) {
  ExpectBadPlugin(Ddn({"--plugin", Scratch() + "/missing.so", "nodes"}),
                  {"ddn: plugin '", "missing.so': no such file"});
  ExpectBadPlugin(Ddn({"--plugin", DDN_NOT_A_PLUGIN, "nodes"}), {"is not a ddn node library", "ddn_plugin_info"});
  ExpectBadPlugin(Ddn({"--plugin", DDN_DUPLICATE_PLUGIN, "nodes"}),
                  {"node 'robust_pool' is already registered (built-in)"});
  ExpectBadPlugin(Ddn({"--plugin", DDN_OTHER_ABI_PLUGIN, "nodes"}),
                  {"built for ddn 0.999.0 (ABI 999", "this is ddn " DDN_VERSION, "rebuild it"});
  const std::string text = Scratch() + "/text.so";
  std::ofstream(text) << "not a library\n";
  ExpectBadPlugin(Ddn({"--plugin", text, "nodes"}), {"cannot load it"});
  ExpectBadPlugin(Ddn({"nodes", "--plugin", DDN_TEST_PLUGIN}), {"unrecognised option '--plugin'"});
  ExpectBadPlugin(Ddn({"--plugin"}), {"--plugin needs the path"});
  // A plugin whose node is already registered by another plugin (the same nodes from a copy of the file).
  const std::string copy = Scratch() + "/copy_of_test_plugin.so";
  std::filesystem::copy_file(DDN_TEST_PLUGIN, copy, std::filesystem::copy_options::overwrite_existing);
  ExpectBadPlugin(Ddn({"--plugin", DDN_TEST_PLUGIN, "--plugin", copy, "nodes"}),
                  {"copy_of_test_plugin.so': its node 'plugin_log_cosh_mean' is already registered (by plugin '" +
                   Canonical(DDN_TEST_PLUGIN) + "')"});
  ExpectBadPlugin(Ddn({"nodes"}, "", DDN_DUPLICATE_PLUGIN), {"DDN_PLUGINS: plugin '", "already registered"});
}

}  // namespace
