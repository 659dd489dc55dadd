"""ddn for PyTorch: every declarative node of ddn as a torch.nn.Module.

A declarative node computes y(x) = argmin_y f(x, y) subject to constraints; its gradient comes from the
optimality conditions (implicit function theorem), not from the solver's iterations (Gould, Hartley &
Campbell, "Deep Declarative Networks", TPAMI 2022). This package runs ddn's C++ nodes on torch tensors:

    import torch, ddn
    pool = ddn.Node("robust_pool", penalty="huber", alpha=1.0)
    x = torch.randn(8, 100, dtype=torch.float64, requires_grad=True)   # 8 problems of 100 points
    y = pool(x)                     # (8,): the robust mean of each row, solved in C++
    y.sum().backward()              # x.grad by the node's implicit backward
    pool.status[0].flags            # per-problem status of the last call: [] or ['non_smooth', ...]

Every registered node is available: the built-in ones (ddn.nodes() lists them, ddn.spec(name) describes
one) and those of plugins, shared libraries of nodes loaded with ddn.load_plugin(path) or named in the
environment variable DDN_PLUGINS (paths separated by ':') when ddn is imported.

Inputs are CPU tensors of float64 or float32, contiguous or not, batch first, in the node's input order or by
name (ddn.Node("project", shape="l1_ball")(x, radius=r)); optional inputs may be omitted or None. The nodes
compute in double precision: float32 inputs are converted, and the outputs and gradients have the inputs'
dtype (float64 if any input is float64). A bad request raises ValueError with ddn's one-line message (wrong
shape, NaN or Inf, unknown node or parameter, impossible parameter value); a numerical failure raises
RuntimeError. The interpreter lock is released while a node solves and differentiates, so other Python threads
run meanwhile; the batch is spread over `threads` threads (0: all cores, or DDN_NUM_THREADS).
"""

import numbers
import os

import torch

from . import _ddn

__version__ = _ddn.__version__
__all__ = ["Node", "Status", "nodes", "spec", "load_plugin", "plugins", "check_cases"]

Status = _ddn.Status


def nodes():
    """Names of every registered node (built-in and from plugins), sorted."""
    return _ddn.node_names()


def spec(name):
    """A node's description: summary, origin ("built-in" or a plugin's path), params, inputs, outputs."""
    return _ddn.node_spec(name)


def load_plugin(path):
    """Loads a shared library of nodes (built with ddn_add_node_library(NAME PLUGIN ...)); returns
    {"path": ..., "nodes": [...]}. Raises ValueError, registering nothing, for a missing file, a library that
    is not a ddn plugin, one built for another ddn, or a node name that is already taken."""
    return _ddn.load_plugin(os.fspath(path))


def plugins():
    """The plugins loaded so far: [{"path": ..., "nodes": [...]}]."""
    return _ddn.loaded_plugins()


def _param_text(node, key, value):
    """A parameter value as the text ddn parses (round-trip exact for floats)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        return value
    raise ValueError(f"parameter '{key}' of node '{node}' must be a number, a bool or a string, "
                     f"got {type(value).__name__}")


def _params_text(node, params):
    return {key: _param_text(node, key, value) for key, value in params.items()}


def check_cases(name, seed=1, with_step_scales=False, **params):
    """The node's own gradient-check inputs, random and awkward ones (ties, constraint boundaries,
    near-singular Hessians): [(case name, {input name: float64 tensor})]. With with_step_scales=True, each
    case also carries {input name: the size of that input's variations} for the inputs whose natural unit is
    not |x| (e.g. a cluster far from the origin: its spread), as `ddn check` uses them for its steps:
    [(case name, inputs, step scales)]."""
    handle = _ddn.make_node(name, _params_text(name, params), 1, False, "implicit")
    cases = [(case, {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}, dict(steps))
             for case, inputs, steps in _ddn.check_cases(handle, seed)]
    return cases if with_step_scales else [(case, inputs) for case, inputs, _ in cases]


def _array(node, what, tensor):
    """A tensor as a NumPy view for the engine, after the checks the engine cannot make."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{what} of node '{node}' must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise ValueError(f"{what} of node '{node}' is on {tensor.device}; ddn nodes run on the CPU")
    if tensor.dtype not in (torch.float64, torch.float32):
        raise ValueError(f"{what} of node '{node}' has dtype {tensor.dtype}; ddn nodes take float64 or float32")
    if tensor.layout != torch.strided:
        raise ValueError(f"{what} of node '{node}' is a {tensor.layout} tensor; ddn nodes take dense tensors")
    return tensor.detach().numpy()


class _NodeFunction(torch.autograd.Function):
    """y = node(x) with the node's implicit backward. Arguments after the tensors' names are the given inputs;
    `box` receives the forward's Record (inputs, double outputs, status) for Node.status."""

    @staticmethod
    def forward(ctx, handle, spec, names, box, *tensors):
        arrays = {name: _array(spec["name"], f"input '{name}'", t) for name, t in zip(names, tensors)}
        outputs, record = _ddn.forward(handle, arrays)
        dtype = torch.float32 if all(t.dtype == torch.float32 for t in tensors) and tensors else torch.float64
        results = []
        for out in spec["outputs"]:
            y = torch.from_numpy(outputs[out["name"]])  # a view of the record's doubles
            results.append(y if dtype == torch.float64 else y.to(dtype))
        differentiable = {i["name"]: i["differentiable"] for i in spec["inputs"]}
        ctx.handle, ctx.record, ctx.spec = handle, record, spec
        ctx.input_info = [(name, differentiable[name], t.dtype) for name, t in zip(names, tensors)]
        # Saved only so that autograd refuses a backward after an in-place change of an output: the backward
        # itself reads the record's doubles.
        ctx.save_for_backward(*results)
        box.append(record)
        return tuple(results) if len(results) > 1 else results[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_outputs):
        ctx.saved_tensors  # raises if an output was modified in place since the forward
        name = ctx.spec["name"]
        grads = {out["name"]: _array(name, f"gradient of output '{out['name']}'", g)
                 for out, g in zip(ctx.spec["outputs"], grad_outputs) if g is not None}
        needed = [ctx.needs_input_grad[4 + i] and info[1] for i, info in enumerate(ctx.input_info)]
        result = [None, None, None, None]
        if not any(needed):
            return tuple(result + [None] * len(ctx.input_info))
        grad_inputs = _ddn.backward(ctx.handle, ctx.record, grads)
        for (input_name, _, dtype), need in zip(ctx.input_info, needed):
            g = grad_inputs.get(input_name) if need else None
            result.append(None if g is None else torch.from_numpy(g).to(dtype))
        return tuple(result)


class Node(torch.nn.Module):
    """A registered ddn node as a torch.nn.Module.

    Node(name, threads=0, generic=False, backward="implicit", **params): params by the node's parameter names
    (ddn.spec(name)), as numbers, bools or strings; omitted ones take their defaults. `threads`: threads over
    the batch (0: all cores or DDN_NUM_THREADS; results are identical for any count). `generic`: use the node's
    generic path (Ceres forward, implicit backward) instead of its specialised solver. `backward`: "implicit"
    (the implicit function theorem, every node), or for nodes with an iterative forward (qp, deq_tanh,
    optimal_transport) "unrolled" or "truncated:K" (reverse mode through all or the last K iterations;
    ddn/gradient_mode.h).

    Calling it with the inputs (positionally in the node's order, or by name) returns the output, or a tuple
    when the node has several. `status` is the list of per-problem ddn.Status of the last call, updated by its
    backward. The module has no learnable parameters; it pickles (and deep-copies) by name and parameters.
    """

    def __init__(self, name, threads=0, generic=False, backward="implicit", **params):
        super().__init__()
        self.node_name = name
        self.node_params = dict(params)
        self.threads = threads
        self.generic = generic
        self.backward_mode = backward
        self._build()

    def _build(self):
        self._handle = _ddn.make_node(self.node_name, _params_text(self.node_name, self.node_params),
                                      int(self.threads), bool(self.generic), str(self.backward_mode))
        self.spec = _ddn.node_spec(self.node_name)
        self._record = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_handle", None)
        state.pop("_record", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._build()

    @property
    def status(self):
        """Per-problem ddn.Status of the last forward (and of its backward, once run); [] before any call."""
        return [] if self._record is None else self._record.status

    def extra_repr(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.node_params.items())
        return repr(self.node_name) + (", " + params if params else "")

    def forward(self, *args, **kwargs):
        inputs = [i["name"] for i in self.spec["inputs"]]
        if len(args) > len(inputs):
            raise ValueError(f"node '{self.node_name}' takes {len(inputs)} inputs ({', '.join(inputs)}), "
                             f"got {len(args)}")
        given = dict(zip(inputs, args))
        for key, value in kwargs.items():
            if key not in inputs:
                raise ValueError(f"node '{self.node_name}' has no input '{key}' (inputs: {', '.join(inputs)})")
            if key in given:
                raise ValueError(f"input '{key}' of node '{self.node_name}' is given twice")
            given[key] = value
        names = [n for n in inputs if given.get(n) is not None]
        box = []
        result = _NodeFunction.apply(self._handle, self.spec, names, box, *[given[n] for n in names])
        self._record = box[0]
        return result

# Plugins named in the environment, once, at import (a bad one raises ValueError here).
_ddn.load_plugins_from_environment()
