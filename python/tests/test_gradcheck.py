"""torch.autograd.gradcheck on every registered node (built-in and plugin), at every choice of its choice
parameters, at the node's own check inputs: random points and awkward ones (ties and duplicates, points near a
constraint boundary or a kink, near-singular Hessians), with two seeds.

gradcheck compares the node's backward (the implicit-function-theorem vector-Jacobian product, computed in
C++) with central finite differences of its forward, in float64. The tolerance is tight (atol 1e-7, rtol 1e-6;
gradcheck's defaults are 1e-5 and 1e-3): the forward solves reach machine precision, so the differences are
accurate to ~1e-9.
"""
import pytest
import torch

import ddn


def _settings():
    """(node, params) pairs: each node with its defaults, and once per value of each choice parameter."""
    out = []
    for name in ddn.nodes():
        spec = ddn.spec(name)
        out.append((name, {}))
        for p in spec["params"]:
            for choice in p["choices"]:
                if choice != p["default"]:
                    out.append((name, {p["name"]: choice}))
    return out


SETTINGS = _settings()


def test_every_node_is_covered():
    names = {name for name, _ in SETTINGS}
    assert names == set(ddn.nodes())
    assert {"robust_pool", "project", "plugin_log_cosh_mean"} <= names  # built-in and plugin nodes


@pytest.mark.parametrize("name,params", SETTINGS,
                         ids=[n + "".join(f"-{v}" for v in p.values()) for n, p in SETTINGS])
@pytest.mark.parametrize("seed", [1, 2])
def test_gradcheck(name, params, seed):
    node = ddn.Node(name, threads=1, **params)
    spec = ddn.spec(name)
    differentiable = {i["name"]: i["differentiable"] for i in spec["inputs"]}
    cases = ddn.check_cases(name, seed=seed, **params)
    assert cases, "no check inputs"
    for case, inputs in cases:
        names = list(inputs)
        variable = [n for n in names if differentiable[n]]
        constant = {n: inputs[n] for n in names if not differentiable[n]}

        def run(*xs):
            return node(**dict(zip(variable, xs)), **constant)

        xs = tuple(inputs[n].clone().requires_grad_() for n in variable)
        assert torch.autograd.gradcheck(run, xs, eps=1e-6, atol=1e-7, rtol=1e-6, raise_exception=False), \
            f"gradcheck failed for {name} {params} at the check case '{case}' (seed {seed})"
        assert len(node.status) == next(iter(inputs.values())).shape[0]
