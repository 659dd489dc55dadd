// ddn/node.h: the declarative node contract, as the rest of ddn sees it.
//
// A declarative node maps inputs x to y(x) ∈ argmin_y f(x, y) subject to h(x, y) = 0 and g(x, y) ≤ 0
// (Gould, Hartley & Campbell, "Deep Declarative Networks", TPAMI 2022). ddn::Node is the runtime face of
// such a node: a NodeSpec that names its parameters, inputs and outputs, a forward Solve of one problem
// and a Backward (vector–Jacobian product) of one problem. Batching, shape checks, NaN checks (which a node's
// kernels may make instead: ddn/finiteness.h) and threading are done for every node by ddn/batch.h.
//
// Shapes. Each input and output declares its per-problem axes as symbols ("N", "D") or fixed sizes
// ("3"); the batch axis is implicit and comes first. Symbols are bound from the inputs and must agree
// everywhere, so robust pooling declares x: (N) → y: () and the batch layer accepts x of shape (B, N)
// for any B, N ≥ 1.
//
// Backward. Given v = dL/dy (grad_outputs), Backward writes dL/dx = vᵀ Dy(x) into grad_inputs (one
// array per differentiable input, zero-initialised by the caller, or uninitialised for a node whose
// BackwardAssigns() says it writes every element). A node may implement Backward in
// closed form; nodes built on ddn::DeclarativeNode (declarative.h) also provide the generic implicit
// backward (GenericBackward), which stays callable so that tests compare the two.
//
// Writing a node: most nodes derive from ddn::DeclarativeNode<Derived> (declarative.h) and write only
// the objective (and constraints) as a scalar-generic template; see the README's "write your own node".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "ddn/gradient_mode.h"
#include "ddn/params.h"
#include "ddn/status.h"
#include "ddn/tensor.h"
#include "ddn/version.h"

namespace ddn {

struct TensorSpec {
  std::string name;
  // Per-problem axes (the batch axis is implicit): symbols such as "N", "D", bound from the inputs, or
  // fixed sizes written as numbers ("3"). Empty for a scalar per problem.
  std::vector<std::string> dims;
  std::string doc;
  bool differentiable = true;  // inputs only: Backward produces a gradient for it
  bool optional = false;       // inputs only: may be omitted from a request
  bool positive = false;       // inputs only: every value must be > 0 (semi-axes, scales); `ddn bench` draws them
                               // from U(0.5, 1.5)
};

struct NodeSpec {
  std::string name;
  std::string summary;  // one line
  std::vector<ParamSpec> params;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;

  int InputIndex(const std::string& name) const;   // -1 if none
  int OutputIndex(const std::string& name) const;  // -1 if none
};

// Values of the shape symbols of one batch ("N" → 1024).
using Dims = std::map<std::string, int64_t>;

// Scratch memory that a node keeps from one problem to the next within one batched call: sorted copies,
// histograms, per-pass buffers. ddn/batch.h gives each worker thread its own ProblemData for the whole call, so
// each worker has its own workspace: never shared between threads, freed when the call returns (thread_local
// buffers would live as long as the pool's threads, i.e. the process, at the size of the largest problem seen),
// and visible to a test that calls a node directly. A copy starts empty (copies are made once per worker).
//
//   auto& ws = problem.workspace.Get<MyWorkspace>();   // default-constructed on first use
class NodeWorkspace {
 public:
  NodeWorkspace() = default;
  NodeWorkspace(const NodeWorkspace&) {}
  NodeWorkspace& operator=(const NodeWorkspace&) { return *this; }
  NodeWorkspace(NodeWorkspace&&) noexcept = default;
  NodeWorkspace& operator=(NodeWorkspace&&) noexcept = default;
  ~NodeWorkspace() = default;

  // The workspace of type T of this worker, default-constructed on first use (or when another type was kept).
  template <typename T>
  T& Get() const {
    if (!object_ || *type_ != typeid(T)) {
      object_ = std::make_shared<T>();
      type_ = &typeid(T);
    }
    return *static_cast<T*>(object_.get());
  }

 private:
  mutable std::shared_ptr<void> object_;
  mutable const std::type_info* type_ = nullptr;
};

// One problem of a batch, as raw pointers into the batch tensors (indexed as NodeSpec::inputs/outputs).
struct ProblemData {
  int64_t index = 0;                  // position in the batch, for messages
  const Dims* dims = nullptr;         // bound shape symbols
  std::vector<const double*> inputs;  // nullptr for an omitted optional input
  std::vector<Shape> input_shapes;    // per-problem shapes (no batch axis)
  std::vector<double*> outputs;       // Solve writes, Backward reads
  std::vector<Shape> output_shapes;
  std::vector<const double*> grad_outputs;  // Backward only: v = dL/dy
  std::vector<double*> grad_inputs;         // Backward only: dL/dx, zeroed (see BackwardAssigns); nullptr if not needed
  GradientMode gradient_mode;  // Backward only: implicit unless the node HasIterativeForward (gradient_mode.h)
  NodeWorkspace workspace;     // the node's scratch memory for this worker (see NodeWorkspace)

  int64_t Dim(const std::string& symbol) const;
  int64_t InputSize(int i) const { return NumElements(input_shapes[i]); }
  int64_t OutputSize(int i) const { return NumElements(output_shapes[i]); }
};

// A named set of batched inputs used by gradient checks (`ddn check`), the conformance suite and tests.
// A node gives its awkward points (ties, constraint boundaries, near-singular Hessians) by overriding
// Node::CheckCases; the gradient checker steps each input coordinate by h = step · s, where s is the value in
// `step_scale` for that input if given (the size of its variations, e.g. a cluster's spread), else max(|x_j|,
// the mean |x| of that input in that problem), so that the step follows the problem's own scale.
struct CheckCase {
  std::string name;  // "random", "boundary", "ties", ...
  std::map<std::string, Tensor> inputs;
  std::map<std::string, double> step_scale = {};  // optional, per input name
};

class Node {
 public:
  explicit Node(NodeSpec spec) : spec_(std::move(spec)) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const NodeSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }

  // Extra per-problem input checks beyond shapes and finiteness (weights ≥ 0, semi-axes > 0, ...).
  // Throw InvalidInput naming the input.
  virtual void Validate(const ProblemData& problem) const {}

  // Forward: solve one problem, writing every output value (the output arrays are uninitialised; debug
  // builds fill them with NaN, so a value left unwritten fails ddn::Forward's finiteness check). Throw
  // NumericalFailure if the solve fails.
  virtual void Solve(const ProblemData& problem, ProblemStatus* status) const = 0;

  // Backward: grad_inputs += vᵀ Dy for one problem whose outputs Solve wrote.
  virtual void Backward(const ProblemData& problem, ProblemStatus* status) const { GenericBackward(problem, status); }
  // True if Backward assigns every element of every grad_inputs array it is given (= instead of +=): the
  // engine then leaves them uninitialised instead of zeroing them first (a pass over memory that is a large
  // part of a projection's backward). GenericBackward always accumulates into zeroed arrays.
  virtual bool BackwardAssigns() const { return false; }
  // True if the forward is an iteration whose steps Backward can differentiate (ddn/gradient_mode.h): the node
  // then honours ProblemData::gradient_mode; ddn::Backward refuses unrolled and truncated modes otherwise.
  virtual bool HasIterativeForward() const { return false; }

  // The general engine's forward (Ceres) and implicit backward, when the node has a declarative form.
  // Tests compare them with the specialised Solve/Backward.
  virtual bool HasGenericPath() const { return false; }
  virtual void GenericSolve(const ProblemData& problem, ProblemStatus* status) const;
  virtual void GenericBackward(const ProblemData& problem, ProblemStatus* status) const;

  // Inputs for gradient checks: random ones and awkward ones (ties, constraint boundaries, near-singular
  // Hessians). The default draws Gaussian inputs with every shape symbol = 4.
  virtual std::vector<CheckCase> CheckCases(uint64_t seed) const;

  // The objective value f(x, y) at the answer in problem.outputs (for tests and reports). Returns NaN if the
  // node does not provide it. (Named apart from DeclarativeNode's user-written Objective template.)
  virtual double ObjectiveValue(const ProblemData& problem) const;

  // Options of the node's generic solver (ddn/generic_solver.h), for `--solver KEY=VALUE`: sets one, throwing
  // InvalidInput for an unknown key or a bad value (the default: the node has no generic solver).
  virtual void SetSolverOption(const std::string& key, const std::string& value);
  // The generic solver's options as "key=value" (empty without a generic solver).
  virtual std::vector<std::string> SolverOptions() const { return {}; }

 private:
  NodeSpec spec_;
};

// ---- Registry ---------------------------------------------------------------------------------
using NodeFactory = std::function<std::unique_ptr<Node>(const Params&)>;

// Registers a node type; `definition` says which code does ("Class (file.cc:line)", passed by
// DDN_REGISTER_NODE). Returns true so it can initialise a static. Throws InvalidInput naming both definitions if
// the name is already registered (a silently replaced node would answer for the other). While a plugin loads,
// registrations are held back until the loader has checked the plugin (ddn/plugin.h).
bool RegisterNode(const NodeSpec& spec, NodeFactory factory, const std::string& definition = "");
// "Class (file.cc:line)" with the file's directory dropped: how DDN_REGISTER_NODE names a definition.
std::string NodeDefinition(const char* class_name, const char* file, int line);
// Names of all registered nodes, sorted.
std::vector<std::string> NodeNames();
// Spec of a registered node; throws InvalidInput "unknown node" listing the known ones.
const NodeSpec& GetNodeSpec(const std::string& name);
// Creates a node with validated parameters; throws InvalidInput.
std::unique_ptr<Node> MakeNode(const std::string& name, const std::map<std::string, std::string>& params = {});
// The choices of the parameter `param` of the registered node `node` (e.g. robust_pool's penalties), read from
// its spec: lists of choices live in one place. Throws InvalidInput if there is no such node or parameter.
const std::vector<std::string>& ParamChoices(const std::string& node, const std::string& param);
// Where a registered node comes from: "built-in" for a node linked into the program, else the path of the
// plugin that registered it (ddn/plugin.h). Throws InvalidInput for an unknown node.
std::string NodeOrigin(const std::string& name);

}  // namespace ddn

// The C++ standard library's ABI a translation unit is compiled with (libstdc++'s dual ABI of std::string):
// part of the binary interface checked before a node registers (below).
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define DDN_CXX_STDLIB_ABI (_GLIBCXX_USE_CXX11_ABI + 1)
#else
#define DDN_CXX_STDLIB_ABI 0
#endif

// Called by DDN_REGISTER_NODE before anything else: 1 if node code compiled against ddn `version` with the
// given ABI numbers (ddn/version.h) may register with this libddn, else 0 (the mismatch is recorded for the
// plugin loader, which refuses the plugin; ddn/plugin.h). A C function, so that the check itself does not
// depend on the ABI it checks.
extern "C" int ddn_registration_abi_matches(int abi_version, int cxx_stdlib_abi, const char* version);

// One line per node type, in its .cc file: DDN_REGISTER_NODE(MyNode). MyNode needs
// `static ddn::NodeSpec Spec()` and a constructor taking `const ddn::Params&`. A name registered twice in one
// program is an error naming both definitions: RegisterNode throws (for nodes linked in, at start-up: the
// program stops with the message), and a plugin that brings a name already taken is refused (ddn/plugin.h).
#define DDN_REGISTER_NODE(Class)                                                                             \
  static const bool ddn_registered_##Class [[maybe_unused]] =                                                \
      ::ddn_registration_abi_matches(DDN_ABI_VERSION, DDN_CXX_STDLIB_ABI, DDN_VERSION) &&                    \
      ::ddn::RegisterNode(                                                                                   \
          Class::Spec(),                                                                                     \
          [](const ::ddn::Params& p) -> std::unique_ptr<::ddn::Node> { return std::make_unique<Class>(p); }, \
          ::ddn::NodeDefinition(#Class, __FILE__, __LINE__))
