// ddn._ddn: the compiled half of the Python package `ddn` (python/ddn/__init__.py is the other half and the
// documented interface). It exposes the node registry, plugins, and ddn::Forward / ddn::Backward on NumPy
// arrays of doubles; the Python half wraps these in torch.autograd.Function and torch.nn.Module.
//
// Arrays. Inputs arrive as NumPy arrays (torch.Tensor.numpy() of a CPU tensor is a view, no copy) and are
// copied once into ddn::Tensors (row-major doubles, the engine's only layout): a float64 C-contiguous array is
// read in place by that copy; a float32 or non-contiguous one is first converted by NumPy (forcecast). Outputs
// and gradients are handed back without a copy: the NumPy array's base is the ddn::Tensor's owner.
//
// A forward returns a Record besides the outputs: the inputs as the engine read them, the double outputs and
// the per-problem status. The backward uses the Record, so it differentiates at exactly the point that was
// solved (also when the caller sees float32 outputs), and updates the status (flags found by the backward,
// e.g. non_regular).
//
// Errors. ddn::InvalidInput becomes ValueError, ddn::NumericalFailure RuntimeError, with ddn's one-line
// message. The interpreter lock is released while the engine copies, solves and differentiates.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/gradient_mode.h"
#include "ddn/node.h"
#include "ddn/parallel.h"
#include "ddn/plugin.h"
#include "ddn/status.h"
#include "ddn/version.h"

namespace py = pybind11;

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// What a forward leaves for its backward.
struct Record {
  ddn::TensorMap inputs;
  ddn::TensorMap outputs;
  std::vector<ddn::ProblemStatus> status;
};

// A constructed node (parameters validated) and how to run it.
struct NodeHandle {
  std::unique_ptr<ddn::Node> node;
  ddn::RunOptions run;
};

// Arrays by name, converted (see the header) under the interpreter lock; copied into Tensors without it.
struct PendingArrays {
  std::vector<std::pair<std::string, DoubleArray>> arrays;

  PendingArrays(const py::dict& named, const std::string& what) {
    for (const auto& [key, value] : named) {
      const std::string name = py::cast<std::string>(key);
      DoubleArray array;
      try {
        array = py::cast<DoubleArray>(value);
      } catch (const py::cast_error&) {
        throw ddn::InvalidInput(what + " '" + name + "' is not an array of numbers");
      }
      if (!array) throw ddn::InvalidInput(what + " '" + name + "' is not an array of numbers");
      arrays.emplace_back(name, std::move(array));
    }
  }
  // Without the interpreter lock: reads only the arrays' buffers, which `arrays` keeps alive.
  ddn::TensorMap ToTensors() const {
    ddn::TensorMap out;
    for (const auto& [name, array] : arrays) {
      ddn::Shape shape(array.shape(), array.shape() + array.ndim());
      ddn::Tensor t = ddn::Tensor::Uninitialized(shape);
      if (t.size() > 0) std::memcpy(t.data(), array.data(), sizeof(double) * static_cast<size_t>(t.size()));
      out.emplace(name, std::move(t));
    }
    return out;
  }
};

// A NumPy view of `tensor`, kept alive by `owner` (which must own the tensor).
template <typename Owner>
py::array View(const ddn::Tensor& tensor, std::shared_ptr<Owner> owner) {
  std::vector<py::ssize_t> shape(tensor.shape().begin(), tensor.shape().end());
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = sizeof(double);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  auto* keep = new std::shared_ptr<Owner>(std::move(owner));
  py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<Owner>*>(p); });
  return py::array(py::dtype::of<double>(), shape, strides, tensor.data(), base);
}

py::dict ParamToDict(const ddn::ParamSpec& p) {
  py::dict d;
  d["name"] = p.name;
  d["type"] = ddn::ParamTypeName(p.type);
  d["default"] = p.default_value;
  d["doc"] = p.doc;
  d["choices"] = p.choices;
  return d;
}

py::dict TensorSpecToDict(const ddn::TensorSpec& t, bool input) {
  py::dict d;
  d["name"] = t.name;
  d["dims"] = t.dims;
  d["doc"] = t.doc;
  if (input) {
    d["differentiable"] = t.differentiable;
    d["optional"] = t.optional;
  }
  return d;
}

py::dict SpecToDict(const ddn::NodeSpec& spec) {
  py::dict d;
  d["name"] = spec.name;
  d["summary"] = spec.summary;
  d["origin"] = ddn::NodeOrigin(spec.name);
  py::list params, inputs, outputs;
  for (const auto& p : spec.params) params.append(ParamToDict(p));
  for (const auto& t : spec.inputs) inputs.append(TensorSpecToDict(t, true));
  for (const auto& t : spec.outputs) outputs.append(TensorSpecToDict(t, false));
  d["params"] = params;
  d["inputs"] = inputs;
  d["outputs"] = outputs;
  return d;
}

py::dict PluginToDict(const ddn::PluginInfo& info) {
  py::dict d;
  d["path"] = info.path;
  d["nodes"] = info.nodes;
  return d;
}

std::shared_ptr<NodeHandle> MakeHandle(const std::string& name, const std::map<std::string, std::string>& params,
                                       int threads, bool generic, const std::string& backward) {
  ddn::ResolveThreadCount(threads, 1);  // InvalidInput outside 0..kMaxThreads
  auto handle = std::make_shared<NodeHandle>();
  handle->node = ddn::MakeNode(name, params);
  handle->run.threads = threads;
  handle->run.generic = generic;
  handle->run.backward = ddn::GradientMode::Parse(backward);
  if (!handle->run.backward.implicit() && !handle->node->HasIterativeForward())
    throw ddn::InvalidInput("node '" + name + "' has only the implicit backward (backward='" + backward + "')");
  if (generic && !handle->node->HasGenericPath())
    throw ddn::InvalidInput("node '" + name + "' has no generic (Ceres) path");
  return handle;
}

// (outputs by name, record)
py::tuple Forward(const NodeHandle& handle, const py::dict& inputs) {
  PendingArrays pending(inputs, "input");
  auto record = std::make_shared<Record>();
  {
    py::gil_scoped_release unlocked;
    record->inputs = pending.ToTensors();
    ddn::ForwardResult result = ddn::Forward(*handle.node, record->inputs, handle.run);
    record->outputs = std::move(result.outputs);
    record->status = std::move(result.status);
  }
  py::dict outputs;
  for (const auto& [name, tensor] : record->outputs) outputs[py::str(name)] = View(tensor, record);
  return py::make_tuple(outputs, record);
}

// gradients by input name
py::dict Backward(const NodeHandle& handle, const std::shared_ptr<Record>& record, const py::dict& grad_outputs) {
  PendingArrays pending(grad_outputs, "gradient of output");
  auto grads = std::make_shared<ddn::TensorMap>();
  {
    py::gil_scoped_release unlocked;
    const ddn::TensorMap v = pending.ToTensors();
    *grads = ddn::Backward(*handle.node, record->inputs, record->outputs, v, &record->status, handle.run);
  }
  py::dict out;
  for (const auto& [name, tensor] : *grads) out[py::str(name)] = View(tensor, grads);
  return out;
}

py::list CheckCases(const NodeHandle& handle, uint64_t seed) {
  py::list cases;
  for (const ddn::CheckCase& c : handle.node->CheckCases(seed)) {
    py::dict inputs;
    for (const auto& [name, tensor] : c.inputs) {
      auto owner = std::make_shared<ddn::Tensor>(tensor);
      inputs[py::str(name)] = View(*owner, owner);
    }
    py::dict steps;  // the case's own step scales (CheckCase::step_scale), per input name
    for (const auto& [name, scale] : c.step_scale) steps[py::str(name)] = scale;
    cases.append(py::make_tuple(c.name, inputs, steps));
  }
  return cases;
}

}  // namespace

PYBIND11_MODULE(_ddn, m) {
  m.doc() = "ddn's engine and nodes (the compiled part of the package ddn; use ddn.Node)";
  m.attr("__version__") = DDN_VERSION;

  // InvalidInput → ValueError, NumericalFailure (and any other ddn::Error) → RuntimeError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ddn::InvalidInput& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const ddn::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  py::class_<ddn::ProblemStatus>(m, "Status", "What happened to one problem of a batch (ddn/status.h)")
      .def_property_readonly("ok", &ddn::ProblemStatus::ok, "no flag is set")
      .def_property_readonly(
          "flags", [](const ddn::ProblemStatus& s) { return ddn::FlagNames(s.flags); },
          "names of the flags set: non_regular, degenerate, non_smooth, non_unique, "
          "not_certified, all_outliers")
      .def_property_readonly(
          "residual",
          [](const ddn::ProblemStatus& s) -> py::object {
            if (s.residual < 0) return py::none();
            return py::float_(s.residual);
          },
          "optimality residual of the forward solve, None if the node does not measure it")
      .def_readonly("iterations", &ddn::ProblemStatus::iterations)
      .def_readonly("note", &ddn::ProblemStatus::note, "why a flag was set")
      .def("__repr__", [](const ddn::ProblemStatus& s) {
        std::string flags;
        for (const auto& f : ddn::FlagNames(s.flags)) flags += (flags.empty() ? "" : ", ") + f;
        return "Status(ok=" + std::string(s.ok() ? "True" : "False") + ", flags=[" + flags +
               "], residual=" + (s.residual < 0 ? std::string("None") : ddn::FormatDouble(s.residual)) +
               ", iterations=" + std::to_string(s.iterations) + ")";
      });

  py::class_<Record, std::shared_ptr<Record>>(m, "Record", "a forward's inputs, outputs and status")
      .def_property_readonly("status", [](const Record& r) { return r.status; });

  py::class_<NodeHandle, std::shared_ptr<NodeHandle>>(m, "NodeHandle", "a node with validated parameters")
      .def_property_readonly("name", [](const NodeHandle& h) { return h.node->name(); })
      .def_property_readonly("threads", [](const NodeHandle& h) { return h.run.threads; })
      .def_property_readonly("generic", [](const NodeHandle& h) { return h.run.generic; })
      .def_property_readonly("backward", [](const NodeHandle& h) { return h.run.backward.ToString(); });

  m.def("make_node", &MakeHandle, py::arg("name"), py::arg("params"), py::arg("threads") = 0,
        py::arg("generic") = false, py::arg("backward") = "implicit",
        "a node by name with parameters given as strings");
  m.def("forward", &Forward, py::arg("node"), py::arg("inputs"),
        "solve every problem: ({output: array}, Record); inputs by name, batch first");
  m.def("backward", &Backward, py::arg("node"), py::arg("record"), py::arg("grad_outputs"),
        "vector-Jacobian products: {input: dL/dinput} for the differentiable inputs given");
  m.def("check_cases", &CheckCases, py::arg("node"), py::arg("seed") = 1,
        "the node's gradient-check inputs: [(case name, {input: array})], random and awkward points");
  m.def("node_names", &ddn::NodeNames, "every registered node, sorted");
  m.def(
      "node_spec", [](const std::string& name) { return SpecToDict(ddn::GetNodeSpec(name)); }, py::arg("name"),
      "a node's parameters, inputs, outputs and origin");
  m.def(
      "load_plugin", [](const std::string& path) { return PluginToDict(ddn::LoadPlugin(path)); }, py::arg("path"),
      "load a shared library of nodes (ddn/plugin.h)");
  m.def(
      "load_plugins_from_environment",
      [] {
        py::list out;
        for (const auto& p : ddn::LoadPluginsFromEnvironment()) out.append(PluginToDict(p));
        return out;
      },
      "load the plugins named in $DDN_PLUGINS");
  m.def("loaded_plugins", [] {
    py::list out;
    for (const auto& p : ddn::LoadedPlugins()) out.append(PluginToDict(p));
    return out;
  });
}
