// Regression tests of issue 18 for the command-line front ends (`ddn`, `ddn-pointcloud`, `ddn-bilevel`): hostile
// requests and options found by an attack must exit 1 or 2 with exactly one line on stderr and nothing on stdout,
// never crash, hang or exhaust memory; output that cannot be written is a failure; echoed values are cut and
// escaped.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "tests/cli/spawn.h"

namespace {

using ddn::testing::Outcome;
using ddn::testing::ScratchDir;
using ddn::testing::Spawn;

Outcome Ddn(const std::vector<std::string>& args, const std::string& input = "", const std::string& stdout_path = "") {
  return Spawn(DDN_SHIPPED_CLI, args, input, stdout_path);
}

// Runs the binary under a CPU-time limit (a guard against runaway cost, far above the expected time: a killed
// process shows as exit 128 + SIGKILL/SIGXCPU).
Outcome DdnWithCpuLimit(int seconds, const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> sh{"-c", "ulimit -t " + std::to_string(seconds) + "; exec \"$0\" \"$@\"", DDN_SHIPPED_CLI};
  sh.insert(sh.end(), args.begin(), args.end());
  return Spawn("/bin/sh", sh, input);
}

// Exit `code`, nothing on stdout, exactly one line on stderr containing every part.
void ExpectError(const Outcome& r, int code, std::initializer_list<std::string> parts) {
  EXPECT_EQ(r.code, code) << "stderr: " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out.substr(0, 300);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n') << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  for (const auto& part : parts) EXPECT_NE(r.err.find(part), std::string::npos) << "'" << part << "' not in: " << r.err;
}

std::string Nested(const std::string& open, const std::string& inner, const std::string& close, int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  s += inner;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

// Item 3: an object nested 1e5 deep overflowed the stack while the error message was formatted.
TEST(HostileRequests, DeepNestingIsRefusedWhileParsing) {
  ExpectError(
      Ddn({"eval"}, R"({"node": "robust_pool", "inputs": {"x": )" + Nested("{\"a\": ", "1", "}", 100000) + "}}"), 2,
      {"more than 64 levels deep", "inputs.x"});
  ExpectError(Ddn({"eval"}, R"({"node": "robust_pool", "inputs": {"x": )" + Nested("[", "1", "]", 100000) + "}}"), 2,
              {"more than 64 levels deep"});
}

// A ragged array whose first elements claim `width`^`depth` numbers (only one level is complete).
std::string ClaimingArray(int width, int depth) {
  std::string inner = "1";
  for (int level = 0; level < depth; ++level) {
    std::string next = "[" + inner;
    for (int k = 1; k < width; ++k) next += ",1";
    inner = next + "]";
  }
  return "[" + inner + "]";
}

// Items 4 and 8: a ~1 KB request whose first elements claim more numbers than a size can count overflowed
// NumElements (UBSan); a ~500-byte one claiming 1e12 numbers reported "out of memory" instead of "ragged".
TEST(HostileRequests, RaggedArraysAreRaggedNotOutOfMemory) {
  const std::string overflow = R"({"node": "robust_pool", "inputs": {"x": )" + ClaimingArray(20, 15) + "}}";
  EXPECT_LT(overflow.size(), 1200u);
  ExpectError(Ddn({"eval"}, overflow), 2, {"input 'x'", "ragged"});
  const std::string huge = R"({"node": "robust_pool", "inputs": {"x": )" + ClaimingArray(100, 5) + "}}";
  ExpectError(Ddn({"eval"}, huge), 2, {"input 'x'", "ragged"});
}

// Item 8: 1e5 keys took 17 s (an ordered_json object looks each new key up linearly); 1e6 keys over 300 s.
TEST(HostileRequests, ManyKeysParseInNearLinearTime) {
  std::string params;
  for (int i = 0; i < 100000; ++i) params += (i ? ", \"k" : "\"k") + std::to_string(i) + "\": 1";
  const Outcome r =
      DdnWithCpuLimit(8, {"eval"}, R"({"node": "robust_pool", "params": {)" + params + R"(}, "inputs": {"x": [[1]]}})");
  ExpectError(r, 2, {"unknown parameter 'k", "robust_pool"});
}

// Item 4: bench shapes that overflow, that no machine holds, with three huge axes (it hung), with an empty item.
TEST(HostileOptions, BenchShapesAreBounded) {
  ExpectError(Ddn({"bench", "robust_pool", "--shape", "4294967296,4294967296"}), 2, {"too large"});
  ExpectError(Ddn({"bench", "robust_vector_pool", "--shape", "65536,65536,65536"}), 2, {"--shape"});
  ExpectError(Ddn({"bench", "robust_pool", "--shape", "1048576,1048576"}), 2, {"more than this machine's"});
  ExpectError(Ddn({"bench", "robust_pool", "--shape", "4,4,"}), 2, {"--shape '4,4,'"});
  ExpectError(Ddn({"bench", "robust_pool", "--shape", ",4"}), 2, {"--shape"});
  ExpectError(Ddn({"bench", "robust_pool", "--shape", "4,4", "--seed", "-1"}), 2, {"--seed", "'-1'"});
  ExpectError(Ddn({"check", "robust_pool", "--seed", "-1"}), 2, {"--seed", "'-1'"});
}

// Item 5: --threads 100000 crashed (SIGSEGV), --threads 1000 printed a raw libgomp line and exited 1.
TEST(HostileOptions, ThreadCountsAreCapped) {
  const std::string request = R"({"node": "robust_pool", "inputs": {"x": [[1, 2], [3, 4]]}})";
  for (const char* threads : {"100000", "1000", "-1", "257"}) {
    ExpectError(Ddn({"eval", "--threads", threads}, request), 2, {"--threads must be between 0 (all cores) and 256"});
    ExpectError(Ddn({"check", "robust_pool", "--threads", threads}), 2, {"--threads"});
    ExpectError(Ddn({"bench", "robust_pool", "--shape", "2,3", "--threads", threads}), 2, {"--threads"});
  }
  // 256 threads for a batch of 2: as many threads as problems are used, same answer.
  const Outcome many = Ddn({"eval", "--threads", "256"}, request);
  EXPECT_EQ(many.code, 0) << many.err;
  EXPECT_EQ(many.out, Ddn({"eval", "--threads", "1"}, request).out);
}

// Item 13: every command exited 0 when stdout could not be written.
TEST(HostileEnvironment, FullStdoutIsAFailure) {
  const std::string request = R"({"node": "robust_pool", "inputs": {"x": [[1, 2]]}})";
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"eval"},
                                             {"nodes"},
                                             {"nodes", "--json"},
                                             {"check", "robust_pool"},
                                             {"--version"},
                                             {"--help"},
                                             {"bench", "robust_pool", "--shape", "2,3", "--runs", "1"},
                                             {"eval", "--help"}}) {
    const Outcome r = Ddn(args, request, "/dev/full");
    EXPECT_EQ(r.code, 1) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find("cannot write"), std::string::npos) << args[0] << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }
  const Outcome bilevel = Ddn({"bilevel", "ridge", "--quiet", "--max-iterations", "1"}, "", "/dev/full");
  EXPECT_EQ(bilevel.code, 1) << bilevel.err;
  EXPECT_NE(bilevel.err.find("cannot write"), std::string::npos) << bilevel.err;
}

// Item 15: values that parsed as something else ("0x10" as 16, 1.0 as true) or echoed whole.
TEST(HostileRequests, InvalidValuesAreRefusedAndEchoedShortAndEscaped) {
  ExpectError(Ddn({"eval"}, R"({"node": "robust_pool", "params": {"alpha": "0x10"}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'", "'0x10'"});
  ExpectError(Ddn({"eval"}, R"({"node": "robust_pool", "params": {"alpha": " 1"}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'"});
  ExpectError(Ddn({"eval"}, R"({"node": "robust_pool", "params": {"alpha": "inf"}, "inputs": {"x": [[1]]}})"), 2,
              {"parameter 'alpha'"});
  ExpectError(Ddn({"eval"}, R"({"node": "project_ellipsoid", "params": {"surface": 1.0},
                               "inputs": {"x": [[1, 2]], "a": [[1, 1]]}})"),
              2, {"parameter 'surface'", "true or false"});
  ExpectError(Ddn({"eval"}, R"({"node": "sphere_projection", "params": {"manifold": 1.0}, "inputs": {"x": [[1, 2]]}})"),
              2, {"parameter 'manifold'", "true or false"});
  // Boost's own option errors echo the argument: cut, one line, no raw control characters.
  const Outcome option = Ddn({"eval", "--threads", std::string(100000, '9') + ""});
  ExpectError(option, 2, {"--threads"});
  EXPECT_LT(option.err.size(), 1200u);
  EXPECT_EQ(option.err.find(''), std::string::npos);
  const std::string long_name(1 << 20, 'n');
  const Outcome r = Ddn({"eval"}, R"({"node": ")" + long_name + R"(", "inputs": {"x": [[1]]}})");
  ExpectError(r, 2, {"unknown node 'nnnn", "bytes)"});
  EXPECT_LT(r.err.size(), 800u);
  const Outcome escape = Ddn({"eval"}, "{\"node\": \"a\\u001b[31mb\", \"inputs\": {\"x\": [[1]]}}");
  ExpectError(escape, 2, {"unknown node 'a\\x1B[31mb'"});
  EXPECT_EQ(escape.err.find('\x1b'), std::string::npos);
}

// Item 16: bench project_ellipsoid drew negative semi-axes; eval of a directory exited 1 with a libstdc++ message.
TEST(HostileRequests, BenchOfEveryNodeAndEvalOfAFolder) {
  const Outcome bench = Ddn({"bench", "project_ellipsoid", "--shape", "4,3", "--runs", "1"});
  EXPECT_EQ(bench.code, 0) << bench.err;
  ExpectError(Ddn({"eval", ScratchDir()}), 2, {"is a directory"});
  ExpectError(Ddn({"bench", "robust_pool", "--inputs", ScratchDir()}), 2, {"--inputs file", "is a directory"});
  ExpectError(Ddn({"bench", "robust_pool", "--inputs", ScratchDir() + "/missing\n.json"}), 2,
              {"cannot read --inputs file", "missing\\n.json"});
}

// The nodes that came with the optimisation layers (qp, deq_tanh) and their gradient modes meet the same contract.
TEST(HostileRequests, OptimisationLayersAtTheirExtremes) {
  // Infeasible constraints: bad input, named.
  ExpectError(Ddn({"eval"}, R"({"node": "qp", "inputs": {"Q": [[[2, 0], [0, 2]]], "q": [[1, 1]],
                               "G": [[[1, 0], [-1, 0]]], "h": [[-1, -1]]}})"),
              2, {"infeasible"});
  // Q not positive definite, A of deficient rank, G without h.
  ExpectError(Ddn({"eval"}, R"({"node": "qp", "inputs": {"Q": [[[1, 2], [2, 1]]], "q": [[0, 0]]}})"), 2,
              {"positive definite"});
  ExpectError(Ddn({"eval"}, R"({"node": "qp", "inputs": {"Q": [[[1, 0], [0, 1]]], "q": [[0, 0]],
                               "A": [[[1, 1], [2, 2]]], "b": [[1, 3]]}})"),
              2, {"full row rank"});
  ExpectError(Ddn({"eval"}, R"({"node": "qp", "inputs": {"Q": [[[1]]], "q": [[0]], "G": [[[1]]]}})"), 2, {"'h'"});
  // Parameters out of range, and truncation counts that are not digits.
  ExpectError(
      Ddn({"eval"}, R"({"node": "qp", "params": {"max_iterations": 100000}, "inputs": {"Q": [[[1]]], "q": [[0]]}})"), 2,
      {"max_iterations"});
  ExpectError(
      Ddn({"eval"}, R"({"node": "deq_tanh", "params": {"window": 1000000}, "inputs": {"x": [[1]], "W": [[[0.5]]]}})"),
      2, {"window"});
  const std::string deq = R"({"node": "deq_tanh", "inputs": {"x": [[1e308, -1e308]], "W": [[[1e308, 0], [0, -1e308]]]},
                              "grad_outputs": {"z": [[1, -1]]}})";
  ExpectError(Ddn({"eval", "--backward", "truncated: 3"}, deq), 2, {"gradient mode 'truncated: 3'"});
  // Weights at the edge of double range: a finite answer or one line, never a crash or a NaN.
  for (const char* mode : {"implicit", "unrolled", "truncated:2"}) {
    const Outcome r = Ddn({"eval", "--backward", mode}, deq);
    if (r.code == 0) {
      EXPECT_TRUE(r.err.empty()) << r.err;
      EXPECT_EQ(r.out.find("nan"), std::string::npos) << r.out;
    } else {
      ExpectError(r, 1, {"numerical failure"});
    }
  }
}

// Plugin paths are user text: echoed cut and escaped; anything that is not a node library is exit 2, one line.
TEST(HostileOptions, PluginPathsAndFiles) {
  const std::string dir = ScratchDir() + "/plugins";
  std::filesystem::create_directories(dir);
  const Outcome long_path = Ddn({"--plugin", dir + "/\n\x1b" + std::string(100000, 'p') + ".so", "nodes"});
  ExpectError(long_path, 2, {"plugin '", "\\n\\x1B"});
  EXPECT_LT(long_path.err.size(), 1200u);
  ExpectError(Ddn({"--plugin", dir, "nodes"}), 2, {"not a regular file"});
  ExpectError(Ddn({"--plugin", "/dev/zero", "nodes"}), 2, {"not a regular file"});
  ExpectError(Ddn({"--plugin=", "nodes"}), 2, {"empty path"});
  ExpectError(Ddn({"--plugin"}), 2, {"--plugin needs"});
  for (const std::string& content : {std::string(), std::string("not a library\n"),
                                     std::string("\x7f"
                                                 "ELF",
                                                 4)}) {
    const std::string file = dir + "/bad.so";
    std::ofstream(file, std::ios::binary | std::ios::trunc) << content;
    ExpectError(Ddn({"--plugin", file, "nodes"}), 2, {"cannot load it"});
  }
  // The same through the environment.
  std::vector<std::string> sh{"-c", "DDN_PLUGINS=\"$1\" exec \"$0\" nodes", DDN_SHIPPED_CLI, dir + "/missing.so::"};
  ExpectError(Spawn("/bin/sh", sh), 2, {"DDN_PLUGINS: plugin '", "no such file"});
}

// Item 16: OpenCV's own warning (an unreadable image) added a second line on stderr.
TEST(HostileEnvironment, OpenCvWarningsAreSilenced) {
  const std::string not_an_image = ScratchDir() + "/not_an_image.png";
  std::ofstream(not_an_image) << "this is text";
  ExpectError(Ddn({"bilevel", "tv-denoise", "--train-image", not_an_image, "--quiet"}), 2, {"cannot read the image"});
#ifdef DDN_POINTCLOUD_CLI
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--data", not_an_image, "--plot", ""}), 2, {"ddn-pointcloud"});
#endif
}

#ifdef DDN_POINTCLOUD_CLI
Outcome PointCloud(std::vector<std::string> args, const std::string& stdout_path = "") {
  const std::vector<std::string> quick{"--synthetic", "8",    "--test-per-class", "3", "--points",  "16",
                                       "--epochs",    "1",    "--batch-size",     "8", "--pooling", "max",
                                       "--outliers",  "0,0.5"};
  args.insert(args.begin(), quick.begin(), quick.end());
  return Spawn(DDN_POINTCLOUD_CLI, args, "", stdout_path);
}

// Items 6, 14, 15: the plot's format and folder were checked only after the whole training run (an uncaught
// OpenCV exception lost the results); sizes overflowed memory (bad_alloc); invalid values fell back to defaults.
TEST(PointCloud, OptionsAndOutputsAreCheckedBeforeTraining) {
  const std::string dir = ScratchDir();
  // Exactly one line: nothing was trained (no progress lines) before the refusal.
  ExpectError(PointCloud({"--plot", dir + "/out.svg"}), 2, {"--plot", "'.svg'"});
  ExpectError(PointCloud({"--plot", "/nonexistent/p.png"}), 2, {"/nonexistent", "does not exist"});
  ExpectError(PointCloud({"--save-dir", dir + "/missing/"}), 2, {"--save-dir", "does not exist"});
  ExpectError(PointCloud({"--trace", dir + "/missing/trace.json"}), 2, {"--trace", "does not exist"});
  ExpectError(PointCloud({"--points", "-5"}), 2, {"option '--points'"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--points", "-5"}), 2, {"--points must be in"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--points", "100000000"}), 2, {"--points"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--point-widths", "100000000"}), 2, {"--point-widths"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--lr", "nan"}), 2, {"--lr"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--epochs", "0"}), 2, {"--epochs"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--seed", "-1"}), 2, {"--seed"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--threads", "-1"}), 2, {"--threads"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--threads", "100000"}), 2, {"--threads"});
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--synthetic", "8", "--alpha", "inf"}), 2, {"--alpha"});
  // An output equal to an input.
  const std::string digits = dir + "/digits.png";
  std::filesystem::copy_file("/usr/share/doc/opencv-doc/examples/data/digits.png", digits,
                             std::filesystem::copy_options::overwrite_existing);
  ExpectError(Spawn(DDN_POINTCLOUD_CLI, {"--data", digits, "--plot", dir + "/./digits.png"}), 2,
              {"is the same file as --data"});
}

TEST(PointCloud, OutputsAreWrittenAtomicallyAndAFullStdoutFails) {
  const std::string dir = ScratchDir() + "/pointcloud";
  std::filesystem::create_directories(dir);
  const Outcome ok = PointCloud({"--plot", dir + "/plot.png", "--save-dir", dir, "--json"});
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(std::filesystem::exists(dir + "/plot.png"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/pointnet_max.txt"));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }
  const Outcome full = PointCloud({"--plot", "", "--json"}, "/dev/full");
  EXPECT_EQ(full.code, 1);
  EXPECT_NE(full.err.find("cannot write to standard output"), std::string::npos) << full.err;
}
#endif

// Gradient modes (issue 15): `ddn check` passes through the iterations of robust_vector_pool (specialised and
// generic path) and of generic-engine nodes, unconstrained and constrained (a Newton–KKT replay); bad truncation
// counts and nodes without an iterative forward are exit 2 with one line.
TEST(GradientModesCli, CheckPassesAndBadRequestsAreOneLine) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"check", "robust_vector_pool", "--backward", "unrolled"},
        {"check", "robust_vector_pool", "--param", "penalty=welsch", "--backward", "truncated:2"},
        {"check", "robust_vector_pool", "--generic", "--backward", "unrolled"},
        {"check", "pseudo_huber_mean", "--backward", "unrolled"},
        {"check", "plane_projection", "--backward", "unrolled"},
        {"check", "ball_projection", "--backward", "truncated:2"},
        {"check", "sphere_projection", "--generic", "--backward", "unrolled"}}) {
    const Outcome r = Ddn(args);
    EXPECT_EQ(r.code, 0) << args[1] << " " << args.back() << ": " << r.err;
    EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
  }
  for (const char* bad : {"truncated:0", "truncated:-2", "truncated:2.5", "truncated:10000000", "truncated:"}) {
    ExpectError(Ddn({"check", "robust_vector_pool", "--backward", bad}), 2,
                {"gradient mode '" + std::string(bad) + "'", "1 to 1000000"});
  }
  ExpectError(Ddn({"check", "robust_pool", "--backward", "unrolled"}), 2, {"'robust_pool'", "implicit"});
}

}  // namespace
