// ddn/batch.h: run a node on a batch of independent problems, on all cores.
//
// Forward and Backward check a request once for every node: input names, ranks, batch sizes, shape
// symbols that must agree ("x is (B, N), w must be (B, N)"), an empty batch; then they call the node's
// per-problem Solve/Backward over the threads (ddn/parallel.h: a pool whose idle threads sleep; problems
// handed out dynamically), each problem's inputs
// (and dL/dy) checked for NaN and Inf just before, on the same thread, while they are in cache. Problems
// are independent and each writes only its own slice, so results are bit-identical whatever the
// thread count. An exception thrown for one problem is rethrown after the parallel loop, prefixed
// with its batch index ("batch element 3: ...").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ddn/gradient_mode.h"
#include "ddn/node.h"
#include "ddn/status.h"
#include "ddn/tensor.h"

namespace ddn {

using TensorMap = std::map<std::string, Tensor>;

struct RunOptions {
  int threads = 0;        // 0: the free cores (ddn::DefaultThreadCount()); 1: serial; at most kMaxThreads
  bool generic = false;   // use the node's generic path (Ceres forward, implicit backward)
  GradientMode backward;  // Backward only: implicit (default), unrolled or truncated:K (ddn/gradient_mode.h)
};

struct ForwardResult {
  TensorMap outputs;
  std::vector<ProblemStatus> status;  // one per batch element
};

// Validates the inputs (names, ranks, batch sizes, shape symbols, empty axes, then NaN and Inf) and binds
// shape symbols; returns the batch size. Throws InvalidInput.
int64_t ValidateInputs(const Node& node, const TensorMap& inputs, Dims* dims);
// The same without the finiteness checks: Forward and Backward check each problem's slice for NaN and
// Inf on the thread that solves it (one pass over memory instead of two).
int64_t ValidateInputShapes(const Node& node, const TensorMap& inputs, Dims* dims);

// Solves every problem of the batch.
ForwardResult Forward(const Node& node, const TensorMap& inputs, const RunOptions& options = {});

// Vector–Jacobian products for every problem: returns dL/dx for each differentiable input that was
// given. `grad_outputs` may omit outputs (treated as zero); `status` (from Forward) is updated.
TensorMap Backward(const Node& node, const TensorMap& inputs, const TensorMap& outputs, const TensorMap& grad_outputs,
                   std::vector<ProblemStatus>* status, const RunOptions& options = {});

// Throws InvalidInput if any value is NaN or Inf, naming `what` and the first bad index.
void RequireFinite(const Tensor& t, const std::string& what);

}  // namespace ddn
