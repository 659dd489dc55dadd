// `ddn bench NODE [--param k=v ...] --shape B,N[,D]`: times a node's batched forward and backward.
//
// Inputs are random and built from the shape: the node's first required input gets the shape
// (B, N[, D]) mapped onto its axes, which binds the shape symbols; every other required input gets
// its shape from the bound symbols. Values: the first input of a pooling-like node (one whose first
// axis, N, does not appear in any output) is the benchmarks' one workload (ddn/workload.h: a Gaussian cluster
// per problem with a fraction --outliers of far points), like the reference workloads of docs/design.md §3, and
// the same data the Google Benchmark targets time; other differentiable inputs are
// N(0, 1); non-differentiable inputs (weights, sizes) and inputs declared positive (TensorSpec::positive) are
// U(0.5, 1.5). Optional inputs are omitted. Shapes are checked (overflow, the machine's memory) before anything
// is allocated.
// grad_outputs are N(0, 1). Inputs are built once (same seed, same inputs) and are not timed.
//
// `--inputs FILE` times given inputs instead: the "inputs" of a `ddn eval` request (json_io.h), for nodes whose
// random inputs would not be a meaningful problem (pnp: random correspondences have no pose) and for
// side-by-side comparisons on the very data another implementation is timed on. --shape is then not needed.
//
// Each run times ddn::Forward and then ddn::Backward with std::chrono::steady_clock and prints one
// JSON line; the last line holds the medians over the runs.
//
// Memory: a batch of 1024×1024 doubles is 8 MB per tensor. With glibc's defaults such blocks are
// mmap'ed fresh and returned on free, so every run pays first-touch page faults (~10 µs a page on a VM,
// tens of ms per tensor) that a long-running training process, which reuses its memory, does not pay.
// bench therefore keeps freed memory (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) like such a process;
// DDN_BENCH_MALLOC_DEFAULTS=1 in the environment measures with glibc's defaults instead.
#include <malloc.h>
#include <unistd.h>
#include "ddn/parallel.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/ddn/cli_util.h"
#include "apps/ddn/command.h"
#include "apps/ddn/json_io.h"
#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/node.h"
#include "ddn/params.h"
#include "ddn/random.h"
#include "ddn/workload.h"

namespace po = boost::program_options;

namespace ddn::cli {
namespace {

bool IsNumber(const std::string& s) {
  return !s.empty() && std::isdigit(static_cast<unsigned char>(s[0]));
}

Shape ParseShape(const std::string& text) {
  const std::string usage =
      "--shape " + QuoteForMessage(text) + " must be positive integers separated by commas, e.g. 1024,1024";
  Shape shape;
  size_t start = 0;
  while (true) {  // every item, empty ones too ("4,4," and ",4" are refused)
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty() || item.size() > 18 || item.find_first_not_of("0123456789") != std::string::npos) {
      throw InvalidInput(usage);
    }
    const long long v = std::stoll(item);
    if (v < 1) throw InvalidInput(usage);
    shape.push_back(v);
    if (shape.size() > 8) throw InvalidInput("--shape " + QuoteForMessage(text) + " has more than 8 axes");
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  NumElements(shape);  // throws for a shape beyond 2^56 elements
  return shape;
}

// Bytes of physical memory (0 if unknown).
double PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

std::string Gigabytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, bytes < 1e12 ? "%.3g GB" : "%.0f GB", bytes / 1e9);
  return text;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double RoundMs(double ms) {
  return std::round(ms * 1e4) / 1e4;
}

TensorMap MakeInputs(const NodeSpec& spec, const Shape& shape, double outliers, Rng* rng) {
  const TensorSpec* first = nullptr;
  for (const auto& in : spec.inputs)
    if (!in.optional) {
      first = &in;
      break;
    }
  if (!first) throw InvalidInput("node '" + spec.name + "' has no required input to give --shape to");
  if (shape.size() != first->dims.size() + 1) {
    std::string given;
    for (int64_t s : shape) given += (given.empty() ? "" : ",") + std::to_string(s);
    throw InvalidInput("--shape " + given + " has " + std::to_string(shape.size()) + " axes but input '" + first->name +
                       "' of node '" + spec.name + "' has shape " + BatchShapeString(first->dims));
  }
  Dims dims;
  for (size_t a = 0; a < first->dims.size(); ++a) {
    const std::string& sym = first->dims[a];
    if (IsNumber(sym)) {
      if (std::stoll(sym) != shape[a + 1]) {
        throw InvalidInput("--shape: axis " + std::to_string(a + 1) + " of input '" + first->name + "' must be " + sym);
      }
    } else if (dims.count(sym) && dims[sym] != shape[a + 1]) {
      throw InvalidInput("--shape: input '" + first->name + "' uses " + sym + " twice with different sizes");
    } else {
      dims[sym] = shape[a + 1];
    }
  }
  bool pooling = false;
  if (!first->dims.empty() && !IsNumber(first->dims[0])) {
    pooling = true;
    for (const auto& out : spec.outputs)
      for (const auto& d : out.dims)
        if (d == first->dims[0]) pooling = false;
  }
  // The shapes first: their sizes are checked (overflow, memory) before anything is allocated.
  std::vector<std::pair<const TensorSpec*, Shape>> shapes;
  double bytes = 0;
  for (const auto& in : spec.inputs) {
    if (in.optional) continue;
    Shape s{shape[0]};
    for (const auto& d : in.dims) {
      if (IsNumber(d)) {
        s.push_back(std::stoll(d));
      } else if (dims.count(d)) {
        s.push_back(dims[d]);
      } else {
        throw InvalidInput("--shape does not give axis " + d + " of input '" + in.name + "' " +
                           BatchShapeString(in.dims) + " (it binds only the axes of input '" + first->name + "')");
      }
    }
    bytes += 8.0 * static_cast<double>(NumElements(s));  // throws beyond 2^56 elements
    shapes.emplace_back(&in, s);
  }
  // The inputs, their gradients and the outputs' share: at least three times the inputs.
  const double memory = PhysicalMemoryBytes();
  if (memory > 0 && 3 * bytes > memory) {
    throw InvalidInput("--shape " + ShapeString(shape) + " needs about " + Gigabytes(3 * bytes) +
                       " (inputs and their gradients), more than this machine's " + Gigabytes(memory) + " of memory");
  }
  TensorMap inputs;
  for (const auto& [in, s] : shapes) {
    Tensor t(s);
    if (in == first && pooling) {
      FillClusters(&t, outliers, rng);
    } else if (in->positive || !in->differentiable) {
      for (auto& v : t.values()) v = rng->Uniform(0.5, 1.5);
    } else {
      for (auto& v : t.values()) v = rng->Normal();
    }
    inputs[in->name] = std::move(t);
  }
  return inputs;
}

// The "inputs" of a `ddn eval` request in `file`.
TensorMap ReadInputs(const std::string& file) {
  const RequestJson request = ParseJson(ReadTextFile(file, "--inputs file"));
  if (!request.is_object() || !request.contains("inputs")) {
    throw InvalidInput("--inputs file " + QuoteForMessage(file) + " is not a ddn eval request with \"inputs\"");
  }
  return ParseRequestTensors(request).inputs;
}

int RunBench(int argc, char** argv) {
  return RunGuarded("bench", [&]() {
    po::options_description options("Options");
    RunOptions run;
    std::string node_name, shape_text, inputs_file;
    std::vector<std::string> param_args;
    int runs = 5;
    double outliers = 0.2;
    std::string seed_text = "1";
    options.add_options()("help,h", "show this help")(
        "param,p", po::value<std::vector<std::string>>(&param_args)->composing(),
        "node parameter KEY=VALUE (repeatable); unset parameters take their defaults")(
        "shape", po::value<std::string>(&shape_text),
        "B,N[,D]: the shape of the node's first input (required unless --inputs is given)")(
        "inputs", po::value<std::string>(&inputs_file),
        "FILE: time these inputs, the \"inputs\" of a `ddn eval` request, instead of random ones")(
        "runs", po::value<int>(&runs)->default_value(5), "timed runs (forward + backward each)")(
        "outliers", po::value<double>(&outliers)->default_value(0.2, "0.2"),
        "fraction of far outliers in the first input of pooling-like nodes")(
        "seed", po::value<std::string>(&seed_text)->default_value("1"), "seed of the random inputs (0 to 2^64 - 1)");
    AddRunOptions(&options, &run);
    std::vector<std::string> solver_args;
    AddSolverOptions(&options, &solver_args);
    po::variables_map vm;
    ParseNodeCommandLine(argc, argv, options, &node_name, &vm);
    if (vm.count("help")) {
      PrintHelp(
          "ddn bench NODE [--param KEY=VALUE ...] (--shape B,N[,D] | --inputs FILE) [--runs R] [--threads N]"
          " [--outliers F] [--seed S] [--generic] [--solver KEY=VALUE ...]",
          "Times the batched forward (ddn::Forward) and backward (ddn::Backward, a VJP with a random\n"
          "dL/dy) on random inputs built from --shape: the node's first required input gets the shape\n"
          "(B, N[, D]), other inputs get the sizes it binds. The first input of a pooling-like node is\n"
          "a Gaussian cluster with a fraction --outliers of far points; other differentiable inputs\n"
          "are N(0, 1), non-differentiable ones U(0.5, 1.5). Prints one JSON line per run,\n"
          "  {\"node\", \"params\", \"shape\", \"run\", \"forward_ms\", \"backward_ms\"}\n"
          "and a last line with the medians (\"median_forward_ms\", \"median_backward_ms\") and the\n"
          "number of problems whose status carries flags. Wall-clock (steady_clock) milliseconds;\n"
          "\"forward_cpu_ms\", \"backward_cpu_ms\" (and their medians) are the CPU time of the process\n"
          "(all its threads) over the same calls: on a loaded machine, the time the work itself took.\n"
          "\"threads_used\" is [fewest, most] threads of the run's parallel loops (the default, --threads 0,\n"
          "follows the machine's load); \"threads\" in the last line is what the default resolves to then.\n"
          "--inputs FILE times the \"inputs\" of a `ddn eval` request instead (its \"shape\" is that of\n"
          "the node's first input).",
          options);
      return kExitOk;
    }
    if (node_name.empty()) throw InvalidInput("no node given (usage: ddn bench NODE --shape B,N[,D])");
    if (shape_text.empty() == inputs_file.empty()) {
      throw InvalidInput(inputs_file.empty() ? "--shape B,N[,D] or --inputs FILE is required"
                                             : "give --shape or --inputs, not both");
    }
    CheckRunOptions(run);
    if (runs < 1 || runs > 100000) throw InvalidInput("--runs must be in [1, 100000], got " + std::to_string(runs));
    const uint64_t seed = ParseSeed(seed_text, "--seed");
    if (!(outliers >= 0 && outliers < 1)) {
      throw InvalidInput("--outliers must be in [0, 1), got " + FormatDouble(outliers));
    }
    const Shape shape = inputs_file.empty() ? ParseShape(shape_text) : Shape{};
    const auto given = ParseParamAssignments(param_args);
    const auto node = MakeNode(node_name, given);
    ApplySolverOptions(node.get(), solver_args);
    const NodeSpec& spec = node->spec();
    const Params params(spec.name, spec.params, given);

    const char* malloc_defaults = std::getenv("DDN_BENCH_MALLOC_DEFAULTS");
    if (!(malloc_defaults && std::string(malloc_defaults) == "1")) {
      mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum: 8 MB blocks come from the heap...
      mallopt(M_TRIM_THRESHOLD, 1 << 30);   // ...and stay mapped after free
    }
    Rng rng(seed);
    const TensorMap inputs = inputs_file.empty() ? MakeInputs(spec, shape, outliers, &rng) : ReadInputs(inputs_file);
    Dims dims;
    const int64_t batch = ValidateInputs(*node, inputs, &dims);  // bad shapes are exit 2 before any timing
    TensorMap grad_outputs;

    Json head = Json::object();
    head["node"] = spec.name;
    head["params"] = ParamsToJson(spec, params);
    head["shape"] = shape;
    if (!inputs_file.empty()) {
      for (const auto& in : spec.inputs)
        if (inputs.count(in.name)) {
          head["shape"] = inputs.at(in.name).shape();
          break;
        }
    }
    std::vector<double> forward_ms, backward_ms, forward_cpu_ms, backward_cpu_ms;
    int flagged = 0;
    using Clock = std::chrono::steady_clock;
    auto cpu_ms = [] {
      timespec t;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
      return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
    };
    for (int r = 0; r < runs; ++r) {
      ResetThreadCountRecord();
      const double c0 = cpu_ms();
      const auto t0 = Clock::now();
      ForwardResult forward = Forward(*node, inputs, run);
      const auto t1 = Clock::now();
      const double c1 = cpu_ms();
      if (grad_outputs.empty()) {
        for (const auto& [name, y] : forward.outputs) {
          Tensor v(y.shape());
          for (auto& e : v.values()) e = rng.Normal();
          grad_outputs[name] = std::move(v);
        }
      }
      const double c2 = cpu_ms();
      const auto t2 = Clock::now();
      const TensorMap grads = Backward(*node, inputs, forward.outputs, grad_outputs, &forward.status, run);
      const auto t3 = Clock::now();
      const double c3 = cpu_ms();
      forward_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      backward_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
      forward_cpu_ms.push_back(c1 - c0);
      backward_cpu_ms.push_back(c3 - c2);
      flagged = 0;
      for (const auto& s : forward.status) flagged += s.ok() ? 0 : 1;
      Json line = head;
      line["run"] = r;
      line["forward_ms"] = RoundMs(forward_ms.back());
      line["backward_ms"] = RoundMs(backward_ms.back());
      line["forward_cpu_ms"] = RoundMs(forward_cpu_ms.back());
      line["backward_cpu_ms"] = RoundMs(backward_cpu_ms.back());
      const ThreadCountRecord used = ThreadCountsUsed();
      line["threads_used"] = {used.fewest, used.most};
      std::cout << line.dump() << std::endl;
    }
    Json summary = head;
    summary["runs"] = runs;
    summary["threads"] = ddn::ResolveThreadCount(run.threads, batch);
    summary["generic"] = run.generic;
    summary["median_forward_ms"] = RoundMs(Median(forward_ms));
    summary["median_backward_ms"] = RoundMs(Median(backward_ms));
    summary["median_forward_cpu_ms"] = RoundMs(Median(forward_cpu_ms));
    summary["median_backward_cpu_ms"] = RoundMs(Median(backward_cpu_ms));
    summary["flagged_problems"] = flagged;
    std::cout << summary.dump() << std::endl;
    return kExitOk;
  });
}

}  // namespace
}  // namespace ddn::cli

DDN_REGISTER_COMMAND(bench, "bench", "time a node's batched forward and backward on random inputs", ddn::cli::RunBench);
