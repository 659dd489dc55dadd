// fit_plane, fit_sphere and fit_ellipse through `ddn eval` and `ddn check`: exit codes, one-line errors on stderr,
// nothing on stdout on error, and results that parse.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

struct Outcome {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `ddn <args>` with `input` on stdin through the shell (arguments are fixed strings of this file).
Outcome Ddn(const std::string& args, const std::string& input = "") {
  static int counter = 0;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("ddn_surface_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "in") << input;
  const std::string cmd = std::string(DDN_CLI) + " " + args + " < " + (dir / "in").string() + " > " +
                          (dir / "out").string() + " 2> " + (dir / "err").string();
  const int status = std::system(cmd.c_str());
  Outcome o;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.out = Slurp(dir / "out");
  o.err = Slurp(dir / "err");
  std::filesystem::remove_all(dir);
  return o;
}

void ExpectBadInput(const std::string& request, const std::string& part) {
  const Outcome o = Ddn("eval", request);
  EXPECT_EQ(o.code, 2) << request << "\n" << o.err;
  EXPECT_TRUE(o.out.empty()) << o.out;
  ASSERT_FALSE(o.err.empty());
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << "not one line: " << o.err;
  EXPECT_NE(o.err.find(part), std::string::npos) << o.err;
}

const char* kPlane = R"([[[0,0,0],[1,0,0.1],[0,1,0.2],[1,1,0.25],[0.5,0.3,0.1]]])";

TEST(SurfaceCli, BadRequestsExitTwoWithOneLine) {
  ExpectBadInput(R"({"node":"fit_plane","inputs":{"points":[[[0,0,0],[1,0,0.1]]]}})",
                 "needs at least 3 points, got N = 2");
  ExpectBadInput(std::string(R"({"node":"fit_plane","inputs":{"points":)") + kPlane + R"(,"weights":[[1,1,0,0,0]]}})",
                 "at least 3 points with positive weight, got 2");
  ExpectBadInput(std::string(R"({"node":"fit_plane","inputs":{"points":)") + kPlane + R"(,"weights":[[0,0,0,0,0]]}})",
                 "all zero");
  ExpectBadInput(std::string(R"({"node":"fit_plane","inputs":{"points":)") + kPlane + R"(,"weights":[[1,1,-2,1,1]]}})",
                 "must be >= 0");
  ExpectBadInput(R"({"node":"fit_plane","inputs":{"points":[[[0,0,0],[1,0,1e999],[0,1,0],[1,1,0]]]}})", "non-finite");
  ExpectBadInput(R"({"node":"fit_plane","inputs":{"points":[[0,0,0],[1,0,0],[0,1,0]]}})", "must have shape (B, N, D)");
  ExpectBadInput(std::string(R"({"node":"fit_plane","inputs":{"points":)") + kPlane + R"(,"weights":[[1,1,1]]}})",
                 "N = 3");
  ExpectBadInput(std::string(R"({"node":"fit_plane","params":{"penalty":"tukey"},"inputs":{"points":)") + kPlane + "}}",
                 "tukey");
  ExpectBadInput(std::string(R"({"node":"fit_plane","params":{"alpha":0},"inputs":{"points":)") + kPlane + "}}",
                 "alpha");
  ExpectBadInput(R"({"node":"fit_sphere","inputs":{"points":[[[0,0],[1,1],[2,2],[3,3]]]}})", "collinear");
  ExpectBadInput(R"({"node":"fit_sphere","inputs":{"points":[[[0,0,0],[1,0,0],[0,1,0]]]}})", "at least 4 points");
  ExpectBadInput(R"({"node":"fit_ellipse","inputs":{"points":[[[0,0],[1,1],[2,2],[3,3],[4,4]]]}})", "collinear");
  ExpectBadInput(R"({"node":"fit_ellipse","inputs":{"points":[[[0,0],[1,0],[0,1],[1,1]]]}})", "at least 5 points");
  ExpectBadInput(R"({"node":"fit_ellipse","inputs":{"points":[[[0,0,0],[1,0,0],[0,1,0],[1,1,0],[2,1,0]]]}})",
                 "must have shape (B, N, 2)");
}

TEST(SurfaceCli, EvalGivesOutputsGradientsAndStatus) {
  const Outcome o = Ddn("eval", std::string(R"({"node":"fit_plane","inputs":{"points":)") + kPlane +
                                    R"(},"grad_outputs":{"normal":[[1,0,0]],"offset":[1]}})");
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_TRUE(o.err.empty()) << o.err;
  const nlohmann::json j = nlohmann::json::parse(o.out);
  const auto n = j.at("outputs").at("normal").at(0).get<std::vector<double>>();
  EXPECT_NEAR(n[0] * n[0] + n[1] * n[1] + n[2] * n[2], 1.0, 1e-14);
  EXPECT_GT(n[2], 0);
  EXPECT_EQ(j.at("grad_inputs").at("points").at(0).size(), 5u);
  EXPECT_LE(j.at("status").at(0).at("residual").get<double>(), 1e-14);
}

TEST(SurfaceCli, CheckPassesForTheThreeNodes) {
  for (const char* args : {"check fit_plane --threads 1", "check fit_sphere --threads 1",
                           "check fit_ellipse --threads 1", "check fit_plane -p penalty=huber -p alpha=0.5 --threads 1",
                           "check fit_sphere -p penalty=welsch --threads 1"}) {
    const Outcome o = Ddn(args);
    EXPECT_EQ(o.code, 0) << args << "\n" << o.out << o.err;
    EXPECT_NE(o.out.find("PASS"), std::string::npos) << o.out;
  }
}

}  // namespace
