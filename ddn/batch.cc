#include "ddn/batch.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>

#include "ddn/error.h"
#include "ddn/finiteness.h"
#include "ddn/parallel.h"
#include "ddn/params.h"
#include "ddn/simd.h"
#include "ddn/strings.h"

namespace ddn {
namespace {

bool IsNumber(const std::string& s) {
  return !s.empty() && std::isdigit(static_cast<unsigned char>(s[0]));
}

std::string DimsString(const std::vector<std::string>& dims) {
  std::string s = "(B";
  for (const auto& d : dims) s += ", " + d;
  return s + ")";
}

// Runs body(b, &state) for b in [0, batch) on up to `threads` threads (ddn/parallel.h), each thread with its
// own copy of `state` (made once per thread, not once per problem); rethrows the first error (lowest batch
// index) with its index. Problems are handed out dynamically (they can differ in cost: a non-convex pooling
// problem with more starts), and each writes only its own slices, so results do not depend on which thread
// solves which problem.
template <typename State, typename Body>
void ParallelOverBatch(int64_t batch, int threads, const State& proto, Body body) {
  std::exception_ptr error;
  int64_t error_index = -1;
  std::mutex mutex;
  // Resolved once: the default count follows the machine's load and may differ from one call to the next.
  const int n = ResolveThreadCount(threads, batch);
  std::vector<State> states(n, proto);
  ParallelFor(batch, n, 1, [&](int64_t begin, int64_t end, int worker) {
    State* state = &states[worker];
    for (int64_t b = begin; b < end; ++b) {
      try {
        body(b, state);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (error_index < 0 || b < error_index) {
          error = std::current_exception();
          error_index = b;
        }
      }
    }
  });
  if (!error) return;
  const std::string prefix = batch > 1 ? "batch element " + std::to_string(error_index) + ": " : "";
  try {
    std::rethrow_exception(error);
  } catch (const InvalidInput& e) {
    throw InvalidInput(prefix + e.what());
  } catch (const NumericalFailure& e) {
    throw NumericalFailure(prefix + e.what());
  } catch (const std::exception& e) {
    throw NumericalFailure(prefix + e.what());
  }
}

ProblemData MakeProblem(const Node& node, const Dims& dims, const TensorMap& inputs) {
  const NodeSpec& spec = node.spec();
  ProblemData p;
  p.dims = &dims;
  for (const auto& in : spec.inputs) {
    auto it = inputs.find(in.name);
    p.inputs.push_back(nullptr);
    p.input_shapes.push_back(it == inputs.end() ? Shape{} : it->second.problem_shape());
  }
  for (const auto& out : spec.outputs) {
    Shape shape;
    for (const auto& d : out.dims) shape.push_back(IsNumber(d) ? std::stoll(d) : dims.at(d));
    p.outputs.push_back(nullptr);
    p.output_shapes.push_back(shape);
  }
  return p;
}

// The given input tensors in the order of NodeSpec::inputs (nullptr for an omitted optional input).
std::vector<const Tensor*> InputTensors(const Node& node, const TensorMap& inputs) {
  std::vector<const Tensor*> tensors;
  for (const auto& in : node.spec().inputs) {
    auto it = inputs.find(in.name);
    tensors.push_back(it == inputs.end() ? nullptr : &it->second);
  }
  return tensors;
}

void PointAt(const std::vector<const Tensor*>& inputs, int64_t b, ProblemData* p) {
  p->index = b;
  for (size_t i = 0; i < inputs.size(); ++i) p->inputs[i] = inputs[i] ? inputs[i]->problem(b) : nullptr;
}

// True if every value is finite: |v_i| ≤ DBL_MAX, false for ±Inf and for NaN (every comparison with NaN is
// false). Sixteen values per step as four 4-lane masks ANDed into four accumulators: each step is independent
// work of one-cycle integer operations, so the loop runs as fast as the values arrive (an earlier
// `Σ v_i·0 == 0` was a chain of dependent floating-point additions, ~4 cycles per four values: on a row in
// cache it cost as much as the node's own kernel). The engine calls this on every input, dL/dy, output and
// gradient slice of every problem.
DDN_SIMD_BODY bool AllFiniteBody(const double* v, int64_t n) {
  using V4 = double __attribute__((vector_size(32)));
  using M4 = int64_t __attribute__((vector_size(32)));
  constexpr double kLargest = std::numeric_limits<double>::max();
  const V4 largest = {kLargest, kLargest, kLargest, kLargest};
  const M4 magnitude = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};  // every bit but the sign
  M4 ok[4] = {~M4{}, ~M4{}, ~M4{}, ~M4{}};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 4; ++k) {
      V4 a;
      std::memcpy(&a, v + i + 4 * k, sizeof a);
      ok[k] &= (M4)((V4)((M4)a & magnitude) <= largest);
    }
  }
  const M4 all = (ok[0] & ok[1]) & (ok[2] & ok[3]);
  bool finite = (all[0] & all[1] & all[2] & all[3]) != 0;
  for (; i < n; ++i) finite &= std::abs(v[i]) <= kLargest;
  return finite;
}
DDN_SIMD_DISPATCH(bool, AllFinite, (const double* v, int64_t n), (v, n))

// AllFinite over a whole batch tensor, split over the threads (a batch is often 8 MB or more).
bool AllFiniteParallel(const double* v, int64_t n) {
  constexpr int64_t kChunk = 1 << 15;
  if (n <= kChunk) return AllFinite(v, n);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::atomic<bool> bad{false};
  ParallelFor(chunks, 0, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t c = begin; c < end; ++c)
      if (!AllFinite(v + c * kChunk, std::min(kChunk, n - c * kChunk))) bad.store(true, std::memory_order_relaxed);
  });
  return !bad.load();
}

}  // namespace

void RequireFinite(const Tensor& t, const std::string& what) {
  const double* v = t.data();
  if (AllFiniteParallel(v, t.size())) return;
  for (int64_t i = 0; i < t.size(); ++i) {
    if (!std::isfinite(v[i])) {
      throw InvalidInput(what + " contains a non-finite value (" + FormatDouble(v[i]) + ") at flat index " +
                         std::to_string(i));
    }
  }
}

namespace {

// The finiteness check of one problem's slice of a batch tensor, done on the thread that then solves the
// problem: the slice is read once from memory and is in cache for the node (a separate whole-tensor pass
// before the parallel loop would read every input twice).
void RequireFiniteSlice(const double* v, int64_t n, const std::string& what) {
  if (AllFinite(v, n)) return;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) {
      throw InvalidInput(what + " contains a non-finite value (" + FormatDouble(v[i]) + ") at index " +
                         std::to_string(i) + " of the problem");
    }
  }
}

// The output and gradient checks after a node ran: NumericalFailure names the node and the array.
void RequireFiniteOutputs(const NodeSpec& spec, const ProblemData& p) {
  for (size_t o = 0; o < p.outputs.size(); ++o) {
    if (!AllFinite(p.outputs[o], p.OutputSize(static_cast<int>(o)))) {
      throw NumericalFailure("node '" + spec.name + "' produced a non-finite output '" + spec.outputs[o].name + "'");
    }
  }
}

void RequireFiniteGradients(const NodeSpec& spec, const ProblemData& p) {
  for (size_t i = 0; i < p.grad_inputs.size(); ++i) {
    if (!p.grad_inputs[i]) continue;
    if (!AllFinite(p.grad_inputs[i], p.InputSize(static_cast<int>(i)))) {
      throw NumericalFailure("node '" + spec.name + "' produced a non-finite gradient for input '" +
                             spec.inputs[i].name + "'");
    }
  }
}

}  // namespace

bool NodeChecksOwnFiniteness(const Node& node) {
  const auto* own = dynamic_cast<const ChecksOwnFiniteness*>(&node);
  return own && own->ChecksFinitenessInKernels();
}

void RequireFiniteInput(const Node& node, const ProblemData& problem, int index) {
  if (!problem.inputs[index]) return;
  RequireFiniteSlice(problem.inputs[index], problem.InputSize(index), "input '" + node.spec().inputs[index].name + "'");
}

void RecheckForward(const Node& node, const ProblemData& problem) {
  for (size_t i = 0; i < problem.inputs.size(); ++i) RequireFiniteInput(node, problem, static_cast<int>(i));
  RequireFiniteOutputs(node.spec(), problem);
}

void RecheckBackward(const Node& node, const ProblemData& problem) {
  const NodeSpec& spec = node.spec();
  for (size_t i = 0; i < problem.inputs.size(); ++i) RequireFiniteInput(node, problem, static_cast<int>(i));
  for (size_t o = 0; o < problem.grad_outputs.size(); ++o) {
    RequireFiniteSlice(problem.grad_outputs[o], problem.OutputSize(static_cast<int>(o)),
                       "grad_outputs '" + spec.outputs[o].name + "'");
  }
  RequireFiniteGradients(spec, problem);
}

int64_t ValidateInputs(const Node& node, const TensorMap& inputs, Dims* dims) {
  const int64_t batch = ValidateInputShapes(node, inputs, dims);
  for (const auto& [name, tensor] : inputs) RequireFinite(tensor, "input '" + name + "'");
  return batch;
}

int64_t ValidateInputShapes(const Node& node, const TensorMap& inputs, Dims* dims) {
  const NodeSpec& spec = node.spec();
  for (const auto& [name, tensor] : inputs) {
    if (spec.InputIndex(name) < 0) {
      const std::string known = Join(spec.inputs, ", ", [](const TensorSpec& in) { return in.name; });
      throw InvalidInput("unknown input '" + name + "' for node '" + spec.name + "' (inputs: " + known + ")");
    }
  }
  int64_t batch = -1;
  std::string batch_from;
  dims->clear();
  std::map<std::string, std::string> bound_by;
  for (const auto& in : spec.inputs) {
    auto it = inputs.find(in.name);
    if (it == inputs.end()) {
      if (in.optional) continue;
      throw InvalidInput("missing input '" + in.name + "' of node '" + spec.name + "', shape " + DimsString(in.dims));
    }
    const Tensor& t = it->second;
    const std::string what = "input '" + in.name + "'";
    if (t.rank() != static_cast<int>(in.dims.size()) + 1) {
      throw InvalidInput(what + " must have shape " + DimsString(in.dims) + " (rank " +
                         std::to_string(in.dims.size() + 1) + "), got " + ShapeString(t.shape()));
    }
    if (t.dim(0) == 0) throw InvalidInput(what + " is an empty batch (B = 0)");
    if (batch < 0) {
      batch = t.dim(0);
      batch_from = in.name;
    } else if (t.dim(0) != batch) {
      throw InvalidInput(what + " has batch size " + std::to_string(t.dim(0)) + " but input '" + batch_from + "' has " +
                         std::to_string(batch));
    }
    for (size_t a = 0; a < in.dims.size(); ++a) {
      const std::string& sym = in.dims[a];
      const int64_t size = t.dim(static_cast<int>(a) + 1);
      if (IsNumber(sym)) {
        if (size != std::stoll(sym)) {
          throw InvalidInput(what + " must have shape " + DimsString(in.dims) + ", got " + ShapeString(t.shape()));
        }
        continue;
      }
      if (size < 1) throw InvalidInput(what + " has an empty axis " + sym + " = 0, shape " + ShapeString(t.shape()));
      auto bound = dims->find(sym);
      if (bound == dims->end()) {
        (*dims)[sym] = size;
        bound_by[sym] = in.name;
      } else if (bound->second != size) {
        throw InvalidInput(what + " has " + sym + " = " + std::to_string(size) + " but input '" + bound_by[sym] +
                           "' has " + sym + " = " + std::to_string(bound->second));
      }
    }
  }
  if (batch < 0) throw InvalidInput("no inputs given to node '" + spec.name + "'");
  // Output symbols must be bound by the inputs.
  for (const auto& out : spec.outputs)
    for (const auto& d : out.dims)
      if (!IsNumber(d) && !dims->count(d)) throw InvalidInput("output '" + out.name + "' axis " + d + " is not bound");
  return batch;
}

namespace {

// The "input 'x'" / "grad_outputs 'y'" names used in messages, built once per call, not per problem.
std::vector<std::string> Names(const std::vector<TensorSpec>& specs, const char* kind) {
  std::vector<std::string> names;
  for (const auto& t : specs) names.push_back(std::string(kind) + " '" + t.name + "'");
  return names;
}

}  // namespace

ForwardResult Forward(const Node& node, const TensorMap& inputs, const RunOptions& options) {
  Dims dims;
  const int64_t batch = ValidateInputShapes(node, inputs, &dims);
  const NodeSpec& spec = node.spec();
  const std::vector<std::string> input_names = Names(spec.inputs, "input");
  ForwardResult result;
  result.status.resize(batch);
  const ProblemData proto = MakeProblem(node, dims, inputs);
  const std::vector<const Tensor*> in_tensors = InputTensors(node, inputs);
  std::vector<Tensor*> out_tensors;
  for (size_t o = 0; o < spec.outputs.size(); ++o) {
    Shape shape{batch};
    for (int64_t d : proto.output_shapes[o]) shape.push_back(d);
    result.outputs[spec.outputs[o].name] = Tensor::Uninitialized(shape);
  }
  for (const auto& out : spec.outputs) out_tensors.push_back(&result.outputs[out.name]);

  // A node whose kernels check finiteness themselves (ddn/finiteness.h) is trusted with it on its own path.
  const bool engine_checks = options.generic || !NodeChecksOwnFiniteness(node);

  ParallelOverBatch(batch, options.threads, proto, [&](int64_t b, ProblemData* problem) {
    ProblemData& p = *problem;
    PointAt(in_tensors, b, &p);
    if (engine_checks) {
      for (size_t i = 0; i < p.inputs.size(); ++i)
        if (p.inputs[i]) RequireFiniteSlice(p.inputs[i], p.InputSize(static_cast<int>(i)), input_names[i]);
    }
    for (size_t o = 0; o < out_tensors.size(); ++o) {
      p.outputs[o] = out_tensors[o]->problem(b);
#ifndef NDEBUG
      // Solve must write every output value; the buffer is otherwise uninitialised. Debug builds fill it
      // with NaN so that a value left unwritten fails the finiteness check below.
      std::fill_n(p.outputs[o], p.OutputSize(static_cast<int>(o)), std::numeric_limits<double>::quiet_NaN());
#endif
    }
    node.Validate(p);
    if (options.generic) {
      node.GenericSolve(p, &result.status[b]);
    } else {
      node.Solve(p, &result.status[b]);
    }
    if (engine_checks) RequireFiniteOutputs(spec, p);
  });
  return result;
}

TensorMap Backward(const Node& node, const TensorMap& inputs, const TensorMap& outputs, const TensorMap& grad_outputs,
                   std::vector<ProblemStatus>* status, const RunOptions& options) {
  if (!options.backward.implicit()) {
    if (options.generic) {
      if (!node.HasGenericPath()) {
        throw InvalidInput("gradient mode '" + options.backward.ToString() +
                           "' on the generic path needs a node with "
                           "one; '" +
                           node.name() + "' has none");
      }
    } else if (!node.HasIterativeForward()) {
      throw InvalidInput("gradient mode '" + options.backward.ToString() +
                         "' needs a node with an iterative forward; '" + node.name() +
                         "' has none (its only mode is implicit)");
    }
  }
  Dims dims;
  const int64_t batch = ValidateInputShapes(node, inputs, &dims);
  const NodeSpec& spec = node.spec();
  const std::vector<std::string> input_names = Names(spec.inputs, "input");
  const std::vector<std::string> grad_output_names = Names(spec.outputs, "grad_outputs");
  const ProblemData proto = MakeProblem(node, dims, inputs);
  const std::vector<const Tensor*> in_tensors = InputTensors(node, inputs);
  for (const auto& [name, g] : grad_outputs) {
    const int o = spec.OutputIndex(name);
    if (o < 0)
      throw InvalidInput("grad_outputs names '" + name + "', which is not an output of node '" + spec.name + "'");
    Shape want{batch};
    for (int64_t d : proto.output_shapes[o]) want.push_back(d);
    if (g.shape() != want) {
      throw InvalidInput("grad_outputs '" + name + "' must have the shape of output '" + name + "', " +
                         ShapeString(want) + ", got " + ShapeString(g.shape()));
    }
  }
  std::vector<const Tensor*> out_tensors, grad_out_tensors;
  std::vector<Tensor> zeros(spec.outputs.size());
  for (size_t o = 0; o < spec.outputs.size(); ++o) {
    auto it = outputs.find(spec.outputs[o].name);
    if (it == outputs.end())
      throw InvalidInput("backward needs output '" + spec.outputs[o].name + "' of the forward pass");
    Shape want{batch};
    for (int64_t d : proto.output_shapes[o]) want.push_back(d);
    if (it->second.shape() != want) {
      throw InvalidInput("output '" + spec.outputs[o].name + "' given to backward must have shape " +
                         ShapeString(want) + ", got " + ShapeString(it->second.shape()));
    }
    out_tensors.push_back(&it->second);
    auto g = grad_outputs.find(spec.outputs[o].name);
    if (g == grad_outputs.end()) {
      zeros[o] = Tensor(it->second.shape());
      grad_out_tensors.push_back(&zeros[o]);
    } else {
      grad_out_tensors.push_back(&g->second);
    }
  }
  TensorMap grads;
  std::vector<Tensor*> grad_in(spec.inputs.size(), nullptr);
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    auto it = inputs.find(spec.inputs[i].name);
    if (it == inputs.end() || !spec.inputs[i].differentiable) continue;
    grads[spec.inputs[i].name] = Tensor::Uninitialized(it->second.shape());
  }
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    auto it = grads.find(spec.inputs[i].name);
    if (it != grads.end()) grad_in[i] = &it->second;
  }
  if (status->size() != static_cast<size_t>(batch)) status->resize(batch);
  // Gradients accumulate (+=) into zeros unless the node's Backward assigns them (not the generic path's).
  const bool zero_gradients = options.generic || !node.BackwardAssigns();
  const bool engine_checks = options.generic || !NodeChecksOwnFiniteness(node);

  ParallelOverBatch(batch, options.threads, proto, [&](int64_t b, ProblemData* problem) {
    ProblemData& p = *problem;
    PointAt(in_tensors, b, &p);
    if (engine_checks) {
      for (size_t i = 0; i < p.inputs.size(); ++i)
        if (p.inputs[i]) RequireFiniteSlice(p.inputs[i], p.InputSize(static_cast<int>(i)), input_names[i]);
    }
    p.gradient_mode = options.backward;
    p.grad_outputs.resize(spec.outputs.size());
    p.grad_inputs.assign(spec.inputs.size(), nullptr);
    for (size_t o = 0; o < spec.outputs.size(); ++o) {
      p.outputs[o] = const_cast<double*>(out_tensors[o]->problem(b));
      p.grad_outputs[o] = grad_out_tensors[o]->problem(b);
      if (engine_checks) RequireFiniteSlice(p.grad_outputs[o], p.OutputSize(static_cast<int>(o)), grad_output_names[o]);
    }
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      if (!grad_in[i]) continue;
      p.grad_inputs[i] = grad_in[i]->problem(b);
      if (zero_gradients) std::fill_n(p.grad_inputs[i], p.InputSize(static_cast<int>(i)), 0.0);
    }
    if (options.generic) {
      node.GenericBackward(p, &(*status)[b]);
    } else {
      node.Backward(p, &(*status)[b]);
    }
    if (engine_checks) RequireFiniteGradients(spec, p);
  });
  return grads;
}

}  // namespace ddn
