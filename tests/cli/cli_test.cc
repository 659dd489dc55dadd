// Runs the built `ddn` binaries with requests on stdin and checks exit codes, stdout JSON and that
// every error is exactly one line on stderr naming the problem (docs/design.md §2).
//
// DDN_TEST_CLI is the CLI with the test-only nodes of cli_test_nodes.cc (closed forms, failure
// switches) plus every shipped node; DDN_SHIPPED_CLI is the `ddn` that ships.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/cli/spawn.h"

namespace {

using Json = nlohmann::json;

using ddn::testing::Outcome;

std::string TempDir() {
  return ddn::testing::ScratchDir();
}

// Runs `binary args...` with `input` on stdin (tests/cli/spawn.h).
Outcome Ddn(const std::vector<std::string>& args, const std::string& input = "", const char* binary = DDN_TEST_CLI) {
  return ddn::testing::Spawn(binary, args, input);
}

Outcome Eval(const std::string& request, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"eval"};
  args.insert(args.end(), extra.begin(), extra.end());
  return Ddn(args, request);
}

// Exit `code`, nothing on stdout, exactly one line on stderr containing every part.
void ExpectError(const Outcome& r, int code, std::initializer_list<const char*> parts) {
  EXPECT_EQ(r.code, code) << "stderr: " << r.err << "stdout: " << r.out;
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n') << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  for (const char* part : parts) EXPECT_NE(r.err.find(part), std::string::npos) << "'" << part << "' not in: " << r.err;
}

Json Ok(const Outcome& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  try {
    return Json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not JSON: " << e.what() << "\n" << r.out;
    return Json();
  }
}

const char* kGood = R"({"node": "cli_test_mean", "params": {"alpha": 0.5},
  "inputs": {"x": [[1, 2, 3], [0.1, -0.2, 0.7]], "w": [[1, 1, 2], [0.5, 0.25, 1]]},
  "grad_outputs": {"y": [1.5, -2]}})";

// ---- help and dispatch -------------------------------------------------------------------------

TEST(Cli, HelpListsCommands) {
  const Outcome r = Ddn({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.err.empty());
  for (const char* c : {"nodes", "eval", "check", "bench", "Exit codes"})
    EXPECT_NE(r.out.find(c), std::string::npos) << c;
}

TEST(Cli, Version) {
  const Outcome r = Ddn({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("ddn ", 0), 0u) << r.out;
}

TEST(Cli, EverySubcommandAnswersHelp) {
  for (const char* c : {"nodes", "eval", "check", "bench"}) {
    const Outcome r = Ddn({c, "--help"});
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_TRUE(r.err.empty()) << c;
    EXPECT_NE(r.out.find(std::string("Usage: ddn ") + c), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--"), std::string::npos) << c;
    const Outcome h = Ddn({"help", c});
    EXPECT_EQ(h.code, 0);
    EXPECT_EQ(h.out, r.out);
  }
  const Outcome shipped = Ddn({"eval", "--help"}, "", DDN_SHIPPED_CLI);
  EXPECT_EQ(shipped.code, 0);
}

TEST(Cli, BadCommandLinesAreExit2OneLine) {
  ExpectError(Ddn({}), 2, {"no command"});
  ExpectError(Ddn({"evaluate"}), 2, {"unknown command 'evaluate'"});
  ExpectError(Ddn({"--verbose"}), 2, {"--verbose"});
  ExpectError(Ddn({"eval", "--bogus"}), 2, {"ddn eval", "bogus"});
  ExpectError(Ddn({"eval", "--threads", "many"}), 2, {"threads"});
  ExpectError(Ddn({"eval", "--threads", "-1"}, kGood), 2, {"--threads"});
  ExpectError(Ddn({"eval", "a.json", "b.json"}), 2, {"ddn eval"});
  ExpectError(Ddn({"eval", "/nonexistent/request.json"}), 2, {"/nonexistent/request.json"});
}

// ---- nodes -----------------------------------------------------------------------------------------

TEST(Nodes, TextListsParamsInputsOutputs) {
  const Outcome r = Ddn({"nodes"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const char* s : {"cli_test_mean", "alpha", "ridge weight", "(B, N)", "(B)", "optional", "cli_test_vector",
                        "(B, N, D)", "(B, D)"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
}

TEST(Nodes, JsonDescribesEveryNode) {
  const Json j = Ok(Ddn({"nodes", "--json"}));
  ASSERT_TRUE(j.contains("nodes"));
  const Json* mean = nullptr;
  for (const auto& n : j["nodes"])
    if (n["name"] == "cli_test_mean") mean = &n;
  ASSERT_NE(mean, nullptr);
  EXPECT_EQ((*mean)["params"][0]["name"], "alpha");
  EXPECT_EQ((*mean)["params"][0]["type"], "float");
  EXPECT_EQ((*mean)["params"][0]["default"], "1");
  EXPECT_EQ((*mean)["inputs"][0]["shape"], "(B, N)");
  EXPECT_EQ((*mean)["inputs"][0]["differentiable"], true);
  EXPECT_EQ((*mean)["inputs"][1]["optional"], true);
  EXPECT_EQ((*mean)["inputs"][1]["differentiable"], false);
  EXPECT_EQ((*mean)["outputs"][0]["shape"], "(B)");
  EXPECT_FALSE((*mean)["summary"].get<std::string>().empty());
  const Json one = Ok(Ddn({"nodes", "cli_test_vector", "--json"}));
  ASSERT_EQ(one["nodes"].size(), 1u);
  EXPECT_EQ(one["nodes"][0]["inputs"][0]["shape"], "(B, N, D)");
  ExpectError(Ddn({"nodes", "no_such_node"}), 2, {"unknown node 'no_such_node'"});
}

TEST(Nodes, ShippedBinaryHasNoTestNodes) {
  const Outcome r = Ddn({"nodes", "--json"}, "", DDN_SHIPPED_CLI);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("cli_test_"), std::string::npos);
  EXPECT_NO_THROW(Json::parse(r.out));
}

// `ddn bilevel` runs the ddn-bilevel executable next to ddn: same arguments, output and exit codes.
TEST(Cli, BilevelRunsTheSeparateExecutable) {
  const Outcome help = Ddn({"bilevel", "--help"}, "", DDN_SHIPPED_CLI);
  EXPECT_EQ(help.code, 0) << help.err;
  EXPECT_NE(help.out.find("Usage: ddn bilevel"), std::string::npos);
  ExpectError(Ddn({"bilevel", "nonsense"}, "", DDN_SHIPPED_CLI), 2,
              {"ddn bilevel", "unknown problem or node 'nonsense'"});
  const Outcome ridge = Ddn({"bilevel", "ridge", "--max-iterations", "2", "--quiet"}, "", DDN_SHIPPED_CLI);
  ASSERT_EQ(ridge.code, 0) << ridge.err;
  EXPECT_EQ(Json::parse(ridge.out)["problem"], "ridge");
}

// Issue 17 through the `ddn` front end: an answer held at a bound says so, --eval-at evaluates one point, and a
// missing value is one line naming row and column.
TEST(Cli, BilevelBoundsEvalAtAndMissingValues) {
  const Outcome bound =
      Ddn({"bilevel", "robust-regression", "--outliers", "0.1", "--init", "1", "--quiet"}, "", DDN_SHIPPED_CLI);
  ASSERT_EQ(bound.code, 0) << bound.err;
  EXPECT_EQ(Json::parse(bound.out)["stop_reason"], "at_bound");
  EXPECT_EQ(Json::parse(bound.out)["at_bound"]["alpha"], "lower");
  const Outcome eval = Ddn({"bilevel", "ridge", "--eval-at", "0.1", "--quiet"}, "", DDN_SHIPPED_CLI);
  ASSERT_EQ(eval.code, 0) << eval.err;
  EXPECT_GT(Json::parse(eval.out)["hypergradient"]["lambda"].get<double>(), 0);  // above the optimum λ ≈ 0.087
  const std::string csv = TempDir() + "/cli_bilevel_na.csv";
  {
    std::ofstream f(csv);
    f << "a,y\n1,2\n2,NA\n3,5\n";
  }
  ExpectError(Ddn({"bilevel", "ridge", "--train", csv, "--val", csv, "--target", "y"}, "", DDN_SHIPPED_CLI), 2,
              {"row 3: column 'y': missing value 'NA'"});
}

// ---- eval: good requests -------------------------------------------------------------------------

TEST(Eval, OutputsGradientsAndStatus) {
  const Json j = Ok(Eval(kGood));
  // y_b = Σ w x / (Σ w + α), dy/dx_i = w_i / (Σ w + α).
  const double y0 = (1 + 2 + 6) / (4 + 0.5), y1 = (0.05 - 0.05 + 0.7) / (1.75 + 0.5);
  ASSERT_EQ(j["outputs"]["y"].size(), 2u);
  EXPECT_NEAR(j["outputs"]["y"][0].get<double>(), y0, 1e-15);
  EXPECT_NEAR(j["outputs"]["y"][1].get<double>(), y1, 1e-15);
  ASSERT_TRUE(j.contains("grad_inputs"));
  EXPECT_FALSE(j["grad_inputs"].contains("w")) << "w is not differentiable";
  EXPECT_NEAR(j["grad_inputs"]["x"][0][2].get<double>(), 1.5 * 2 / 4.5, 1e-15);
  EXPECT_NEAR(j["grad_inputs"]["x"][1][0].get<double>(), -2 * 0.5 / 2.25, 1e-15);
  ASSERT_EQ(j["status"].size(), 2u);
  EXPECT_EQ(j["status"][0]["ok"], true);
  EXPECT_TRUE(j["status"][0]["flags"].empty());
  EXPECT_EQ(j["status"][0]["iterations"], 0);
  EXPECT_EQ(j["status"][0]["residual"], 0.0);
  EXPECT_EQ(j["status"][0]["note"], "");
}

TEST(Eval, PrintsNumbersThatRoundTrip) {
  // y = x / (1 + α) with α = 2: 1/3 must come back as the same double.
  const Json j = Ok(Eval(R"({"node": "cli_test_mean", "params": {"alpha": 2}, "inputs": {"x": [[1]]}})"));
  EXPECT_EQ(j["outputs"]["y"][0].get<double>(), 1.0 / 3.0);
}

TEST(Eval, DefaultsFileArgumentAndNoGradOutputs) {
  const std::string request = R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2, 3]]}})";
  const Json j = Ok(Eval(request));
  EXPECT_EQ(j["outputs"]["y"][0].get<double>(), 6.0 / 4.0);  // α = 1 by default
  EXPECT_FALSE(j.contains("grad_inputs"));
  const std::string path = TempDir() + "/request.json";
  std::ofstream(path) << request;
  EXPECT_EQ(Ok(Ddn({"eval", path})), j);
  EXPECT_EQ(Ok(Ddn({"eval", "-"}, request)), j);
}

TEST(Eval, ParamsAsNumbersStringsAndBooleans) {
  const Json a = Ok(Eval(R"({"node": "cli_test_mean", "params": {"alpha": "0.25", "flag": true},
                            "inputs": {"x": [[1, 2]]}})"));
  EXPECT_EQ(a["outputs"]["y"][0].get<double>(), 3.0 / 2.25);
  EXPECT_EQ(a["status"][0]["ok"], false);
  EXPECT_EQ(a["status"][0]["flags"][0], "non_unique");
  EXPECT_EQ(a["status"][0]["note"], "flagged as asked");
  const Json b = Ok(Eval(R"({"node": "cli_test_mean", "params": {"alpha": 0.25, "flag": "false"},
                            "inputs": {"x": [[1, 2]]}})"));
  EXPECT_EQ(b["outputs"], a["outputs"]);
  EXPECT_EQ(b["status"][0]["ok"], true);
}

TEST(Eval, ThreeDimensionalArraysAndEmptyGradOutputs) {
  const Json j = Ok(Eval(R"({"node": "cli_test_vector", "inputs": {"x": [[[1, 2], [3, 4]], [[0, 0], [1, -1]]]},
                            "grad_outputs": {}})"));
  EXPECT_EQ(j["outputs"]["y"], Json::parse("[[2.0, 3.0], [0.5, -0.5]]"));
  EXPECT_EQ(j["grad_inputs"]["x"], Json::parse("[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]"));
}

TEST(Eval, ResultsDoNotDependOnThreads) {
  std::string xs;
  for (int b = 0; b < 9; ++b) xs += std::string(b ? "," : "") + "[" + std::to_string(b * 0.37) + ", 1.1, -2.3]";
  const std::string request = R"({"node": "cli_test_mean", "inputs": {"x": [)" + xs +
                              R"(]}, "grad_outputs": {"y": [1, 2, 3, 4, 5, 6, 7, 8, 9]}})";
  const Outcome one = Eval(request, {"--threads", "1"});
  const Outcome two = Eval(request, {"--threads", "2"});
  EXPECT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(one.out, two.out);
}

TEST(Eval, GenericPath) {
  const Json j = Ok(Eval(kGood, {"--generic"}));
  EXPECT_EQ(j["status"][0]["iterations"], 1);
  EXPECT_EQ(j["outputs"], Ok(Eval(kGood))["outputs"]);
  ExpectError(Eval(R"({"node": "cli_test_vector", "inputs": {"x": [[[1]]]}})", {"--generic"}), 2,
              {"cli_test_vector", "generic"});
}

// --solver KEY=VALUE sets an option of a DeclarativeNode's generic solver, in eval, check and bench alike.
TEST(Eval, SolverOptions) {
  const char* request = R"({"node": "pseudo_huber_mean", "inputs": {"x": [[1, 2, 9]]}, "grad_outputs": {"y": [1]}})";
  const Json plain = Ok(Eval(request));
  const Json tuned = Ok(Eval(request, {"--solver", "max_newton_iterations=60", "--solver", "rcond=1e-12"}));
  EXPECT_EQ(plain["outputs"], tuned["outputs"]);
  // Every option scales f or the constraints by a constant: the answer does not change.
  const Json scaled = Ok(Eval(request, {"--solver", "objective_scale=1e8"}));
  EXPECT_NEAR(scaled["outputs"]["y"][0].get<double>(), plain["outputs"]["y"][0].get<double>(), 1e-14);
  ExpectError(Eval(request, {"--solver", "no_such_option=1"}), 2, {"unknown solver option 'no_such_option'", "rcond"});
  ExpectError(Eval(request, {"--solver", "rcond=abc"}), 2, {"solver option 'rcond'", "abc"});
  ExpectError(Eval(request, {"--solver", "max_newton_iterations=0"}), 2, {"max_newton_iterations", "[1, 100000]"});
  ExpectError(Eval(request, {"--solver", "rcond"}), 2, {"--solver 'rcond' must be KEY=VALUE"});
  // A node without a generic solver refuses solver options.
  ExpectError(Eval(kGood, {"--solver", "rcond=1e-12"}), 2, {"cli_test_mean", "no generic solver"});
  const Outcome check = Ddn({"check", "sum_fit", "--solver", "converged_residual=1e-10"});
  EXPECT_EQ(check.code, 0) << check.err;
  ExpectError(Ddn({"bench", "sum_fit", "--shape", "2", "--solver", "dense_limit=-1"}), 2, {"dense_limit"});
}

// ---- eval: every kind of bad request ---------------------------------------------------------

TEST(EvalBadRequest, MalformedJson) {
  ExpectError(Eval(R"({"node": "cli_test_mean",
  "inputs": {"x": [[1, 2,]]}})"),
              2, {"malformed JSON", "line 2", "column", "inputs.x[0]"});
  ExpectError(Eval(""), 2, {"malformed JSON", "line 1"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[NaN]]}})"), 2, {"malformed JSON"});
  ExpectError(Eval(R"({"node": "cli_test_mean"} trailing)"), 2, {"malformed JSON"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1]], "x": [[2]]}})"), 2,
              {"JSON key 'x' appears twice in object 'inputs'"});
}

TEST(EvalBadRequest, TopLevel) {
  ExpectError(Eval("[1, 2]"), 2, {"JSON object", "array"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1]]}, "want": {}})"), 2, {"unknown key 'want'"});
  ExpectError(Eval(R"({"inputs": {"x": [[1]]}})"), 2, {"\"node\""});
  ExpectError(Eval(R"({"node": 7, "inputs": {"x": [[1]]}})"), 2, {"\"node\" must be a string"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": [[1]]})"), 2, {"\"inputs\" must be an object"});
}

TEST(EvalBadRequest, UnknownNodeAndParameters) {
  ExpectError(Eval(R"({"node": "no_such_node", "inputs": {"x": [[1]]}})"), 2, {"unknown node 'no_such_node'"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"beta": 1}, "inputs": {"x": [[1]]}})"), 2,
              {"unknown parameter 'beta'", "cli_test_mean", "alpha"});
  ExpectError(Eval(R"({"node": "cli_test_vector", "params": {"alpha": 1}, "inputs": {"x": [[[1]]]}})"), 2,
              {"unknown parameter 'alpha'", "no parameters"});
}

TEST(EvalBadRequest, WrongParameterTypes) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"alpha": "abc"}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'", "number", "abc"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"alpha": [1]}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'", "array"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"flag": "maybe"}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'flag'", "true or false"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"alpha": true}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'"});
}

TEST(EvalBadRequest, InvalidParameterValues) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"alpha": 0}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'", "> 0", "got 0"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"alpha": -1.5}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'", "> 0", "-1.5"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"alpha": 1e999}, "inputs": {"x": [[1]]}})"), 2,
              {"params.alpha", "non-finite"});
}

TEST(EvalBadRequest, MissingAndUnknownInputs) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"w": [[1]]}})"), 2, {"missing input 'x'", "(B, N)"});
  ExpectError(Eval(R"({"node": "cli_test_mean"})"), 2, {"missing input 'x'"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1]], "z": [[1]]}})"), 2, {"unknown input 'z'"});
}

TEST(EvalBadRequest, RaggedArrays) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2], [3]]}})"), 2,
              {"input 'x'", "ragged", "axis 1"});
  ExpectError(Eval(R"({"node": "cli_test_vector", "inputs": {"x": [[[1, 2], [3]]]}})"), 2,
              {"input 'x'", "ragged", "axis 2"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2], 3]}})"), 2, {"input 'x'", "ragged"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]]}, "grad_outputs": {"y": [[1], [2, 3]]}})"), 2,
              {"grad_outputs 'y'", "ragged"});
}

TEST(EvalBadRequest, NonNumericElements) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, "2"]]}})"), 2,
              {"input 'x'", "non-numeric", "[0][1]"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, null]]}})"), 2, {"input 'x'", "null"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[true]]}})"), 2, {"input 'x'", "boolean"});
}

TEST(EvalBadRequest, WrongShapes) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [1, 2, 3]}})"), 2, {"input 'x'", "(B, N)", "rank"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[[1]]]}})"), 2, {"input 'x'", "(B, N)"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": 1}})"), 2, {"input 'x'"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]], "w": [[1, 2, 3]]}})"), 2,
              {"input 'w'", "N = 3"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]], "w": [[1, 2], [1, 2]]}})"), 2,
              {"input 'w'", "batch size"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]]}, "grad_outputs": {"y": [1, 2]}})"), 2,
              {"grad_outputs 'y'", "(1)", "(2)"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]]}, "grad_outputs": {"z": [1]}})"), 2,
              {"grad_outputs", "'z'", "not an output"});
}

TEST(EvalBadRequest, NonFiniteNumbers) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 1e999]]}})"), 2,
              {"input 'x'", "non-finite", "1e999", "[0][1]"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]], "w": [[-1e999, 1]]}})"), 2,
              {"input 'w'", "non-finite"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]]}, "grad_outputs": {"y": [1e400]}})"), 2,
              {"grad_outputs 'y'", "non-finite"});
}

TEST(EvalBadRequest, EmptyBatchAndAxes) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": []}})"), 2, {"input 'x'", "empty batch"});
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[]]}})"), 2, {"input 'x'", "empty"});
}

TEST(EvalBadRequest, InputTheNodeRejects) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "inputs": {"x": [[1, 2]], "w": [[1, -1]]}})"), 2,
              {"input 'w'", ">= 0"});
}

TEST(Eval, NumericalFailureIsExit1) {
  ExpectError(Eval(R"({"node": "cli_test_mean", "params": {"fail": true}, "inputs": {"x": [[1, 2]]}})"), 1,
              {"numerical failure", "fail=true"});
}

// ---- check and bench -----------------------------------------------------------------------------

TEST(Check, PassesAndFails) {
  const Outcome ok = Ddn({"check", "cli_test_mean", "--param", "alpha=0.5", "--seed", "3"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(ok.err.empty()) << ok.err;
  EXPECT_NE(ok.out.find("worst relative error"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("PASS"), std::string::npos) << ok.out;
  EXPECT_EQ(Ddn({"check", "cli_test_vector", "--threads", "1"}).code, 0);
  EXPECT_EQ(Ddn({"check", "cli_test_mean", "--generic"}).code, 0);

  const Outcome bad = Ddn({"check", "cli_test_mean", "-p", "wrong_gradient=true"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("FAIL"), std::string::npos) << bad.out;
  EXPECT_EQ(bad.err.find('\n'), bad.err.size() - 1) << bad.err;
  EXPECT_NE(bad.err.find("above the tolerance"), std::string::npos) << bad.err;
  // A loose enough tolerance passes it.
  EXPECT_EQ(Ddn({"check", "cli_test_mean", "-p", "wrong_gradient=true", "--tolerance", "0.5"}).code, 0);
}

TEST(Check, BadRequests) {
  ExpectError(Ddn({"check"}), 2, {"no node"});
  ExpectError(Ddn({"check", "no_such_node"}), 2, {"unknown node 'no_such_node'"});
  ExpectError(Ddn({"check", "cli_test_mean", "--param", "alpha"}), 2, {"KEY=VALUE"});
  ExpectError(Ddn({"check", "cli_test_mean", "--param", "alpha=0"}), 2, {"parameter 'alpha'", "> 0"});
  ExpectError(Ddn({"check", "cli_test_mean", "--param", "alpha=1", "--param", "alpha=2"}), 2, {"twice"});
  ExpectError(Ddn({"check", "cli_test_mean", "--tolerance", "-1"}), 2, {"--tolerance"});
  ExpectError(Ddn({"check", "cli_test_vector", "--generic"}), 2, {"generic"});
  ExpectError(Ddn({"check", "cli_test_mean", "--param", "fail=true"}), 1, {"numerical failure"});
}

TEST(Bench, OneJsonLinePerRunAndASummary) {
  const Outcome r = Ddn({"bench", "cli_test_mean", "--shape", "3,5", "--runs", "3", "--param", "alpha=2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty());
  std::stringstream lines(r.out);
  std::vector<Json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(Json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rows[i]["node"], "cli_test_mean");
    EXPECT_EQ(rows[i]["run"], i);
    EXPECT_EQ(rows[i]["shape"], Json::parse("[3, 5]"));
    EXPECT_EQ(rows[i]["params"]["alpha"], 2.0);
    EXPECT_EQ(rows[i]["params"]["fail"], false);
    EXPECT_GE(rows[i]["forward_ms"].get<double>(), 0.0);
    EXPECT_GE(rows[i]["backward_ms"].get<double>(), 0.0);
    EXPECT_GE(rows[i]["forward_cpu_ms"].get<double>(), 0.0);
    EXPECT_GE(rows[i]["backward_cpu_ms"].get<double>(), 0.0);
  }
  EXPECT_EQ(rows[3]["runs"], 3);
  EXPECT_TRUE(rows[3].contains("median_forward_ms"));
  EXPECT_TRUE(rows[3].contains("median_backward_ms"));
  EXPECT_TRUE(rows[3].contains("median_forward_cpu_ms"));
  EXPECT_TRUE(rows[3].contains("median_backward_cpu_ms"));
  EXPECT_EQ(rows[3]["flagged_problems"], 0);

  const Outcome v = Ddn({"bench", "cli_test_vector", "--shape", "2,3,4", "--runs", "1", "--threads", "1"});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_EQ(Json::parse(v.out.substr(0, v.out.find('\n')))["shape"], Json::parse("[2, 3, 4]"));
}

TEST(Bench, BadRequests) {
  ExpectError(Ddn({"bench", "cli_test_mean"}), 2, {"--shape"});
  ExpectError(Ddn({"bench", "cli_test_mean", "--shape", "3,5,2"}), 2, {"--shape", "input 'x'", "(B, N)"});
  ExpectError(Ddn({"bench", "cli_test_mean", "--shape", "3,x"}), 2, {"--shape"});
  ExpectError(Ddn({"bench", "cli_test_mean", "--shape", "0,5"}), 2, {"--shape"});
  ExpectError(Ddn({"bench", "cli_test_mean", "--shape", "3,5", "--runs", "0"}), 2, {"--runs"});
  ExpectError(Ddn({"bench", "cli_test_mean", "--shape", "3,5", "--outliers", "1.5"}), 2, {"--outliers"});
  ExpectError(Ddn({"bench", "nope", "--shape", "3,5"}), 2, {"unknown node 'nope'"});
  ExpectError(Ddn({"bench", "cli_test_mean", "--shape", "3,5", "-p", "fail=true"}), 1, {"numerical failure"});
}

// ---- the alignment nodes through the shipped `ddn` ------------------------------------------------------

Outcome ShippedEval(const std::string& request) {
  return Ddn({"eval"}, request, DDN_SHIPPED_CLI);
}

TEST(Alignment, EvalOptimalTransportAndGraphMatch) {
  const Json ot = Ok(ShippedEval(R"({"node": "optimal_transport", "params": {"gamma": 2},
    "inputs": {"M": [[[0, 1, 2], [2, 0, 1]]], "r": [[1, 3]]}, "grad_outputs": {"P": [[[1, 0, 0], [0, 0, 0]]]}})"));
  double row0 = 0;
  for (const auto& v : ot["outputs"]["P"][0][0]) row0 += v.get<double>();
  EXPECT_NEAR(row0, 0.25, 1e-15);  // r normalised to sum 1
  EXPECT_TRUE(ot["grad_inputs"].contains("M"));
  EXPECT_TRUE(ot["grad_inputs"].contains("r"));
  const Json gm = Ok(ShippedEval(R"({"node": "graph_match", "params": {"lambda": 0.2, "gamma": 1},
    "inputs": {"node_affinity": [[[1, 0], [0, 1]]], "edges_a": [[[0, 1], [1, 0]]], "edges_b": [[[0, 1], [1, 0]]]},
    "grad_outputs": {"X": [[[1, 0], [0, 0]]]}})"));
  EXPECT_EQ(gm["grad_inputs"].size(), 3u);
  EXPECT_TRUE(gm["status"][0]["flags"].empty());
}

TEST(Alignment, BadInputIsExit2OneLine) {
  ExpectError(ShippedEval(R"({"node": "optimal_transport", "params": {"gamma": 0}, "inputs": {"M": [[[1, 2]]]}})"), 2,
              {"parameter 'gamma'", "> 0"});
  ExpectError(ShippedEval(R"({"node": "optimal_transport", "params": {"gamma": -1}, "inputs": {"M": [[[1, 2]]]}})"), 2,
              {"parameter 'gamma'"});
  ExpectError(ShippedEval(R"({"node": "optimal_transport", "inputs": {"M": [[[1, 1e999]]]}})"), 2,
              {"input 'M'", "non-finite"});
  ExpectError(ShippedEval(R"({"node": "optimal_transport", "inputs": {"M": [[1, 2]]}})"), 2,
              {"input 'M'", "(B, H, W)"});
  ExpectError(ShippedEval(R"({"node": "optimal_transport", "inputs": {"M": [[[1, 2], [3, 4]]], "r": [[1, 2, 3]]}})"), 2,
              {"input 'r'", "H = 3"});
  ExpectError(ShippedEval(R"({"node": "optimal_transport", "inputs": {"M": [[[1, 2], [3, 4]]], "r": [[1, 0]]}})"), 2,
              {"input 'r'", "positive", "got 0"});
  ExpectError(ShippedEval(R"({"node": "optimal_transport", "inputs": {"M": [[[1, 2], [3, 4]]], "c": [[-2, 1]]}})"), 2,
              {"input 'c'", "positive", "-2"});
  ExpectError(ShippedEval(R"({"node": "graph_match", "params": {"lambda": -1}, "inputs": {}})"), 2,
              {"parameter 'lambda'"});
  ExpectError(ShippedEval(R"({"node": "graph_match", "params": {"gamma": 0}, "inputs": {}})"), 2,
              {"parameter 'gamma'"});
  ExpectError(ShippedEval(R"({"node": "graph_match", "inputs": {"node_affinity": [[[1, 0], [0, 1]]],
    "edges_a": [[[0, 1, 0], [1, 0, 1], [0, 1, 0]]], "edges_b": [[[0, 1], [1, 0]]]}})"),
              2, {"input 'edges_a'", "N = 3"});
  ExpectError(ShippedEval(R"({"node": "graph_match", "inputs": {"node_affinity": [[[1, 1e400], [0, 1]]],
    "edges_a": [[[0, 1], [1, 0]]], "edges_b": [[[0, 1], [1, 0]]]}})"),
              2, {"input 'node_affinity'", "non-finite"});
}

TEST(Alignment, CheckPasses) {
  for (const char* node : {"optimal_transport", "graph_match"}) {
    const Outcome r = Ddn({"check", node}, "", DDN_SHIPPED_CLI);
    EXPECT_EQ(r.code, 0) << node << ": " << r.err << r.out;
    EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
  }
}

}  // namespace
