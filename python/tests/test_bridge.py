"""The bridge's behaviour: dtypes and layouts, errors as Python exceptions, per-problem status, the interpreter
lock, plugins, and a node inside ordinary PyTorch code."""
import copy
import os
import pickle
import threading
import time

import pytest
import torch

import ddn

PLUGIN = os.environ.get("DDN_TEST_PLUGIN")
needs_plugin = pytest.mark.skipif(not PLUGIN, reason="DDN_TEST_PLUGIN (the test plugin of tests/plugins) is not set")


def gradients(node, *inputs):
    """(outputs, gradients of sum(outputs · fixed weights) with respect to every input)."""
    xs = [x.detach().requires_grad_() for x in inputs]
    y = node(*xs)
    # Weights that float32 holds exactly: dL/dy is the same whatever the output's dtype.
    weights = torch.linspace(-1, 2, y.numel(), dtype=torch.float64).reshape(y.shape).float().double()
    (y.double() * weights).sum().backward()
    return y.detach(), [x.grad for x in xs]


# ---- dtypes and layouts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,params,shape", [
    ("robust_pool", {"penalty": "huber", "alpha": 0.5}, (6, 40)),
    ("robust_vector_pool", {"penalty": "welsch"}, (4, 20, 3)),
    ("project", {"shape": "l1_ball", "radius": 2.0}, (5, 9)),
])
def test_float32_and_noncontiguous_inputs_compute_in_double(name, params, shape):
    torch.manual_seed(0)
    node = ddn.Node(name, **params)
    x64 = torch.randn(*shape, dtype=torch.float64) * 2
    y64, (g64,) = gradients(node, x64)
    assert y64.dtype == torch.float64 and g64.dtype == torch.float64

    # The same values as float32: the node solves the double problem of the rounded inputs.
    x32 = x64.float()
    y32, (g32,) = gradients(node, x32)
    assert y32.dtype == torch.float32 and g32.dtype == torch.float32
    y_rounded, (g_rounded,) = gradients(node, x32.double())
    assert torch.equal(y32, y_rounded.float())
    assert torch.equal(g32, g_rounded.float())

    # Non-contiguous views (a transpose, a strided slice) give exactly the contiguous answer.
    x_t = x64.transpose(0, 1).contiguous().transpose(0, 1)
    assert not x_t.is_contiguous()
    y_t, (g_t,) = gradients(node, x_t)
    assert torch.equal(y_t, y64) and torch.equal(g_t, g64)
    wide = torch.zeros(shape[0], 2 * shape[1], *shape[2:], dtype=torch.float64)
    wide[:, ::2] = x64
    y_s, (g_s,) = gradients(node, wide[:, ::2])
    assert torch.equal(y_s, y64) and torch.equal(g_s, g64)


def test_mixed_dtypes_give_float64_and_gradients_in_each_input_dtype():
    node = ddn.Node("robust_pool", penalty="pseudo_huber")
    x = torch.randn(3, 10, dtype=torch.float32, requires_grad=True)
    w = torch.rand(3, 10, dtype=torch.float64, requires_grad=True)
    y = node(x, w)
    assert y.dtype == torch.float64
    y.sum().backward()
    assert x.grad.dtype == torch.float32 and w.grad.dtype == torch.float64
    assert torch.all(torch.isfinite(x.grad)) and torch.all(torch.isfinite(w.grad))


def test_optional_inputs_positionally_by_name_or_none():
    torch.manual_seed(1)
    node = ddn.Node("robust_pool")
    x = torch.randn(4, 8, dtype=torch.float64)
    w = torch.rand(4, 8, dtype=torch.float64) + 0.1
    assert torch.equal(node(x), node(x, None))
    assert torch.equal(node(x, w), node(x=x, w=w))
    assert torch.equal(node(x, torch.ones_like(x)), node(x))


def test_threads_do_not_change_results():
    torch.manual_seed(2)
    x = torch.randn(64, 50, dtype=torch.float64)
    one = gradients(ddn.Node("robust_pool", threads=1, penalty="welsch"), x)
    two = gradients(ddn.Node("robust_pool", threads=2, penalty="welsch"), x)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1][0], two[1][0])


def test_generic_path_agrees_with_the_specialised_one():
    torch.manual_seed(3)
    x = torch.randn(3, 12, dtype=torch.float64)
    fast = gradients(ddn.Node("robust_pool", penalty="pseudo_huber"), x)
    generic = gradients(ddn.Node("robust_pool", penalty="pseudo_huber", generic=True), x)
    assert torch.allclose(fast[0], generic[0], rtol=0, atol=1e-12)
    assert torch.allclose(fast[1][0], generic[1][0], rtol=0, atol=1e-10)


# ---- errors ------------------------------------------------------------------------------------------------

def one_line(exc_info):
    message = str(exc_info.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("call,fragment", [
    (lambda: ddn.Node("robust_pool")(torch.randn(5)), "input 'x' must have shape (B, N)"),
    (lambda: ddn.Node("robust_pool")(torch.tensor([[1.0, float("nan")]])), "non-finite"),
    (lambda: ddn.Node("robust_pool")(torch.tensor([[1.0, float("inf")]])), "non-finite"),
    (lambda: ddn.Node("robust_pool")(torch.ones(0, 3)), "empty batch"),
    (lambda: ddn.Node("robust_pool")(torch.ones(2, 3), torch.ones(2, 4)), "input 'w' has N = 4"),
    (lambda: ddn.Node("robust_pool")(w=torch.ones(2, 3)), "missing input 'x'"),
    (lambda: ddn.Node("robust_pool")(torch.ones(2, 3), y=torch.ones(2)), "has no input 'y'"),
    (lambda: ddn.Node("robust_pool")(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2)), "takes 2 inputs"),
    (lambda: ddn.Node("robust_pool")(torch.ones(2, 3, dtype=torch.int64)), "dtype torch.int64"),
    (lambda: ddn.Node("robust_pool")([[1.0, 2.0]]), "must be a torch.Tensor"),
    (lambda: ddn.Node("robust_pool")(torch.ones(2, 3).to_sparse()), "dense"),
    (lambda: ddn.Node("robust_pool", alpha=0), "parameter 'alpha' of node 'robust_pool' must be > 0"),
    (lambda: ddn.Node("robust_pool", penalty="hubr"), "must be one of"),
    (lambda: ddn.Node("robust_pool", beta=1), "unknown parameter 'beta'"),
    (lambda: ddn.Node("robust_pool", alpha=[1]), "must be a number, a bool or a string"),
    (lambda: ddn.Node("no_such_node"), "unknown node 'no_such_node'"),
    (lambda: ddn.Node("robust_pool", threads=-1), "thread count must be between 0"),
    (lambda: ddn.Node("project_superellipse", generic=False)(torch.ones(2, 3)), "input 'x'"),
    (lambda: ddn.load_plugin("/no/such/libnodes.so"), "no such file"),
])
def test_bad_input_is_a_one_line_value_error(call, fragment):
    with pytest.raises(ValueError) as e:
        call()
    assert fragment in one_line(e)


@needs_plugin
def test_numerical_failure_is_a_runtime_error():
    with pytest.raises(RuntimeError) as e:
        ddn.Node("plugin_identity", fail=True)(torch.ones(2, 3))
    assert "plugin_identity failed as asked" in one_line(e)
    assert not isinstance(e.value, ValueError)


def test_modifying_an_output_in_place_is_refused_at_backward():
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    y = ddn.Node("robust_pool")(x)
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- status ------------------------------------------------------------------------------------------------

def test_status_per_problem_and_updated_by_the_backward():
    huber = ddn.Node("robust_pool", penalty="huber", alpha=1.0)
    assert huber.status == []
    huber(torch.tensor([[-1.0, 1.0], [0.0, 0.5], [2.0, 2.5]], dtype=torch.float64))
    status = huber.status
    assert len(status) == 3
    assert status[0].flags == ["non_smooth"] and not status[0].ok  # both points exactly at |y − x_i| = α
    assert status[1].ok and status[1].flags == [] and status[1].residual is not None
    assert isinstance(status[1].iterations, int)

    # sum_fit's minimisers form a valley: the forward returns one of them and says so (non_unique); its
    # backward finds the singular Hessian and adds non_regular (a minimum-norm gradient).
    fit = ddn.Node("sum_fit")
    x = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    y = fit(x)
    assert fit.status[0].flags == ["non_unique"] and not fit.status[0].ok
    y[0, 0].backward()
    assert fit.status[0].flags == ["non_regular", "non_unique"] and "singular" in fit.status[0].note
    assert torch.isfinite(x.grad).all()


# ---- the interpreter lock ------------------------------------------------------------------------------------

@needs_plugin
def test_the_interpreter_lock_is_released_while_a_node_runs():
    """A node that sleeps 0.6 s in C++ runs on a worker thread; meanwhile this thread wakes every 10 ms. With the
    lock held for the whole solve it could not wake before the solve ends."""
    node = ddn.Node("plugin_identity", milliseconds=600, threads=1)
    x = torch.ones(1, 3, dtype=torch.float64)
    done = threading.Event()
    result = {}

    def work():
        result["y"] = node(x)
        done.set()

    worker = threading.Thread(target=work)
    start = time.monotonic()
    worker.start()
    wakeups = 0
    while not done.is_set():
        time.sleep(0.01)
        wakeups += 1
    worker.join()
    assert time.monotonic() - start >= 0.55
    assert wakeups >= 10, f"this thread woke only {wakeups} times during a 0.6 s solve"
    assert torch.equal(result["y"], x)


# ---- plugins -----------------------------------------------------------------------------------------------

@needs_plugin
def test_plugin_nodes_are_listed_with_their_origin():
    path = os.path.realpath(PLUGIN)
    assert {"plugin_log_cosh_mean", "plugin_identity"} <= set(ddn.nodes())
    assert ddn.spec("plugin_log_cosh_mean")["origin"] == path
    assert ddn.spec("robust_pool")["origin"] == "built-in"
    assert any(p["path"] == path for p in ddn.plugins())
    assert ddn.load_plugin(PLUGIN)["nodes"] == ["plugin_identity", "plugin_log_cosh_mean"]  # again: no change

    # The plugin's node in autograd: Σ_i tanh((y − x_i)/s) = 0 at the answer, and a shift of every point
    # shifts y by as much (the gradient sums to 1).
    node = ddn.Node("plugin_log_cosh_mean", scale=0.5)
    x = torch.tensor([[0.0, 1.0, 4.0]], dtype=torch.float64, requires_grad=True)
    y = node(x)
    assert abs(torch.tanh((y - x) / 0.5).sum().item()) < 1e-12
    y.sum().backward()
    assert abs(x.grad.sum().item() - 1) < 1e-12


@needs_plugin
def test_refused_plugins_raise_and_register_nothing():
    folder = os.path.dirname(PLUGIN)
    before = ddn.nodes()
    for library, fragment in [("libddn_test_not_a_plugin.so", "no symbol ddn_plugin_info"),
                              ("libddn_test_duplicate_plugin.so", "'robust_pool' is already registered"),
                              ("libddn_test_other_abi_plugin.so", "built for ddn 0.999.0")]:
        with pytest.raises(ValueError) as e:
            ddn.load_plugin(os.path.join(folder, library))
        assert fragment in one_line(e)
    assert ddn.nodes() == before


# ---- inside PyTorch code -------------------------------------------------------------------------------------

def test_pickles_deep_copies_and_trains_inside_a_model():
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16, dtype=torch.float64),
                                ddn.Node("project", shape="l2_ball", radius=1.0),
                                torch.nn.Linear(16, 1, dtype=torch.float64))
    clone = pickle.loads(pickle.dumps(model))
    twin = copy.deepcopy(model)
    x = torch.randn(32, 3, dtype=torch.float64)
    target = x.sum(1, keepdim=True)
    assert torch.equal(model(x), clone(x)) and torch.equal(model(x), twin(x))
    assert "Node('project', shape='l2_ball', radius=1.0)" in repr(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert model(x).shape == (32, 1)


# ---- gradient modes ----------------------------------------------------------------------------------------

def test_backward_modes_of_an_iterative_node():
    """deq_tanh's forward is an iteration: unrolled reverse mode through it agrees with the implicit gradient on a
    converged solve; truncated to one step does not; nodes without an iterative forward refuse the other modes."""
    torch.manual_seed(6)
    x = torch.randn(2, 5, dtype=torch.float64)
    w = 0.3 * torch.randn(2, 5, 5, dtype=torch.float64)
    implicit = gradients(ddn.Node("deq_tanh"), x, w)
    unrolled = gradients(ddn.Node("deq_tanh", backward="unrolled"), x, w)
    truncated = gradients(ddn.Node("deq_tanh", backward="truncated:1"), x, w)
    assert torch.equal(implicit[0], unrolled[0])
    for a, b in zip(implicit[1], unrolled[1]):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)
    assert (implicit[1][0] - truncated[1][0]).abs().max() > 1e-3
    with pytest.raises(ValueError) as e:
        ddn.Node("robust_pool", backward="unrolled")
    assert "only the implicit backward" in one_line(e)
    with pytest.raises(ValueError):
        ddn.Node("deq_tanh", backward="sideways")
