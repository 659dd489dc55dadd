// The nodes of issue 14 (least_squares, eigen, pnp, tridiag_solve and the reference's sample nodes) through the
// shipped `ddn`: a request evaluates, bad requests are refused with exit 2 and one line on stderr naming the
// problem and nothing on stdout, `ddn check` passes, `ddn bench --inputs` times given inputs.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/scratch.h"

namespace {

struct Outcome {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Scratch() {
  return ddn::testing::ScratchDir();
}

// `ddn args` with `input` on stdin (arguments are simple words: no quoting needed).
Outcome Ddn(const std::string& args, const std::string& input = "") {
  const std::string dir = Scratch();
  {
    std::ofstream in(dir + "/in", std::ios::binary | std::ios::trunc);
    in << input;
  }
  const std::string command =
      std::string(DDN_CLI) + " " + args + " < " + dir + "/in > " + dir + "/out 2> " + dir + "/err";
  const int status = std::system(command.c_str());
  Outcome o;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = Slurp(dir + "/out");
  o.err = Slurp(dir + "/err");
  return o;
}

// Exit 2, nothing on stdout, exactly one line on stderr containing `needle`.
void ExpectBadInput(const Outcome& o, const std::string& needle, const std::string& label) {
  EXPECT_EQ(o.code, 2) << label << ": " << o.err;
  EXPECT_TRUE(o.out.empty()) << label;
  ASSERT_FALSE(o.err.empty()) << label;
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << label << ": " << o.err;
  EXPECT_NE(o.err.find(needle), std::string::npos) << label << ": " << o.err;
}

TEST(Issue14Cli, EvaluatesRequests) {
  const Outcome ls = Ddn("eval", R"({"node": "least_squares", "params": {"beta": 0},
      "inputs": {"A": [[[1, 0], [0, 1], [1, 1]]], "b": [[1, 2, 3]]}, "grad_outputs": {"x": [[1, 0]]}})");
  ASSERT_EQ(ls.code, 0) << ls.err;
  const auto r = nlohmann::json::parse(ls.out);
  EXPECT_NEAR(r["outputs"]["x"][0][0].get<double>(), 1.0, 1e-12);  // b = A x + c fits exactly: x = (1, 2), c = 0
  EXPECT_NEAR(r["outputs"]["x"][0][1].get<double>(), 2.0, 1e-12);
  EXPECT_NEAR(r["outputs"]["bias"][0].get<double>(), 0.0, 1e-12);
  EXPECT_TRUE(r["grad_inputs"].contains("A"));

  const Outcome eig = Ddn("eval", R"({"node": "eigen", "params": {"top_k": 1}, "inputs": {"X": [[[2, 1], [1, 2]]]}})");
  ASSERT_EQ(eig.code, 0) << eig.err;
  const auto e = nlohmann::json::parse(eig.out);
  EXPECT_NEAR(e["outputs"]["values"][0][0].get<double>(), 3.0, 1e-14);
  EXPECT_NEAR(e["outputs"]["vectors"][0][0][0].get<double>(), std::sqrt(0.5), 1e-14);

  const Outcome tri = Ddn("eval", R"({"node": "tridiag_solve", "inputs": {"b": [[2, 2]], "a": [[1]], "c": [[1]],
      "d": [[[3], [3]]]}})");
  ASSERT_EQ(tri.code, 0) << tri.err;
  EXPECT_NEAR(nlohmann::json::parse(tri.out)["outputs"]["x"][0][0][0].get<double>(), 1.0, 1e-15);
}

TEST(Issue14Cli, BadRequestsAreOneLineExit2) {
  ExpectBadInput(Ddn("eval", R"({"node": "least_squares", "inputs": {"A": [[[1, 2], [3, 4]]], "b": [[1, 2, 3]]}})"),
                 "T", "least_squares shapes");
  ExpectBadInput(
      Ddn("eval", R"({"node": "least_squares", "params": {"beta": -1}, "inputs": {"A": [[[1]]], "b": [[1]]}})"), "beta",
      "least_squares beta");
  ExpectBadInput(Ddn("eval", R"({"node": "least_squares", "inputs": {"A": [[[1], [2]]], "b": [[1, 1e999]]}})"),
                 "non-finite", "least_squares inf");
  ExpectBadInput(
      Ddn("eval", R"({"node": "least_squares", "inputs": {"A": [[[1], [2]]], "b": [[1, 2]], "w": [[1, -9]]}})"),
      "unbounded below", "least_squares weights");
  ExpectBadInput(Ddn("eval", R"({"node": "eigen", "inputs": {"X": [[[1, 2, 3], [4, 5, 6]]]}})"), "M", "eigen square");
  ExpectBadInput(Ddn("eval", R"({"node": "eigen", "params": {"top_k": 3}, "inputs": {"X": [[[1, 2], [2, 1]]]}})"),
                 "top_k", "eigen top_k");
  ExpectBadInput(Ddn("eval", R"({"node": "eigen", "inputs": {"X": []}})"), "empty", "eigen empty batch");
  ExpectBadInput(Ddn("eval", R"({"node": "pnp", "inputs": {"p2d": [[[0, 0], [1, 0], [0, 1]]],
      "p3d": [[[0, 0, 1], [1, 0, 1], [0, 1, 1]]]}})"),
                 "at least 4 correspondences", "pnp three points");
  ExpectBadInput(Ddn("eval", R"({"node": "pnp", "inputs": {"p2d": [[[0, 0], [1, 0], [2, 0], [3, 0]]],
      "p3d": [[[0, 0, 1], [1, 0, 1], [2, 0, 1], [3, 0, 1]]]}})"),
                 "collinear", "pnp collinear");
  ExpectBadInput(Ddn("eval", R"({"node": "pnp", "params": {"objective": "l2"}, "inputs": {}})"), "objective",
                 "pnp objective");
  ExpectBadInput(Ddn("eval", R"({"node": "pnp", "inputs": {"p2d": [[[0, 0], [1, 0], [0, 1], [1, 1]]],
      "p3d": [[[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 2]]], "w": [[1, 1, 1, -1]]}})"),
                 "'w' must be >= 0", "pnp w");
  ExpectBadInput(Ddn("eval", R"({"node": "tridiag_solve", "inputs": {"b": [[2, 2]], "a": [[1, 1]], "c": [[1, 1]],
      "d": [[[3], [3]]]}})"),
                 "N − 1", "tridiag off-diagonals");
  ExpectBadInput(Ddn("eval", R"({"node": "unconstrained_polynomial", "inputs": {"x": [0]}})"), "> 0", "polynomial x");
  ExpectBadInput(Ddn("eval --generic", R"({"node": "eigen", "inputs": {"X": [[[1]]]}})"), "generic", "eigen generic");
}

// `ddn check` on every node of issue 14 (pnp with each objective), at the default parameters.
TEST(Issue14Cli, CheckPasses) {
  for (const char* args : {"least_squares", "least_squares --param bias=false", "eigen", "eigen --param top_k=2", "pnp",
                           "pnp --param objective=cosine", "pnp --param objective=reproj_huber", "tridiag_solve",
                           "unconstrained_polynomial", "linear_on_unit_circle", "constant_linear_on_circle",
                           "linear_on_circle", "quadratic_on_sphere", "quadratic_on_ball"}) {
    const Outcome o = Ddn(std::string("check ") + args);
    EXPECT_EQ(o.code, 0) << args << "\n" << o.out << o.err;
    EXPECT_NE(o.out.find("PASS"), std::string::npos) << args;
  }
}

TEST(Issue14Cli, BenchTimesGivenInputs) {
  const std::string file = Scratch() + "/pnp.json";
  {
    std::ofstream f(file);
    f << R"({"node": "pnp", "inputs": {"p2d": [[[0, 0], [0.25, 0], [0, 0.25], [0.2, 0.2], [-0.1, 0.05]]],
        "p3d": [[[0, 0, 4], [1, 0, 4], [0, 1, 4], [1, 1, 5], [-0.5, 0.3, 5]]]}})";
  }
  const Outcome o = Ddn("bench pnp --inputs " + file + " --runs 2 --threads 1");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("\"median_forward_ms\""), std::string::npos);
  EXPECT_NE(o.out.find("\"shape\":[1,5,2]"), std::string::npos) << o.out;
  ExpectBadInput(Ddn("bench pnp --runs 1"), "--shape", "bench without inputs");
  ExpectBadInput(Ddn("bench pnp --shape 1,5,2 --inputs " + file), "not both", "bench both");
  ExpectBadInput(Ddn("bench pnp --inputs " + Scratch() + "/missing.json"), "cannot read", "bench missing file");
}

}  // namespace
