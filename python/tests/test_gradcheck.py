"""torch.autograd.gradcheck on every registered node (built-in and plugin), at every choice of its choice
parameters, at the node's own check inputs: random points and awkward ones (ties and duplicates, points near a
constraint boundary or a kink, near-singular Hessians), with two seeds.

gradcheck compares the node's backward (the implicit-function-theorem vector-Jacobian product, computed in
C++) with central finite differences of its forward, in float64. The tolerance is tight (atol 1e-7, rtol 1e-6;
gradcheck's defaults are 1e-5 and 1e-3): the forward solves reach machine precision, so the differences are
accurate to ~1e-9. The steps follow each input's own scale, as `ddn check`'s do: gradcheck varies u with
x = s ⊙ u, s = the case's step scale for that input if it gives one, else max(|x_j|, the mean |x| of that input
in that problem), so an input of size 1e-4 (a point near a sphere's centre) or 1e2 (a spread cluster) is
stepped by 1e-6 of its size, not by 1e-6 (by 1e-4 of its size when the forward flags `unverified`: an answer
accurate to its residual only).
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


def _step_scale(x, given):
    """Per element: the case's scale for this input if given, else max(|x_j|, the mean |x| of its problem)."""
    if given is not None:
        return torch.full_like(x, float(given))
    flat = x.abs().reshape(x.shape[0], -1) if x.dim() > 0 and x.shape[0] > 0 else x.abs().reshape(1, -1)
    mean = flat.mean(dim=1, keepdim=True) if flat.shape[1] > 0 else torch.ones(flat.shape[0], 1, dtype=x.dtype)
    mean = torch.where(mean > 0, mean, torch.ones_like(mean))
    return torch.maximum(flat, mean.expand_as(flat)).reshape(x.shape)


def _fourth_order_error(run, us, h):
    """max over problems of ‖analytic − numerical‖ / ‖numerical‖ of dφ/du for φ = Σ v ⊙ y (v fixed, random): the
    analytic one by the bridge's backward, the numerical one by (8(φ(u+h) − φ(u−h)) − (φ(u+2h) − φ(u−2h)))/(12h)
    per coordinate, all problems at once (each problem's φ depends on its own inputs only)."""
    with torch.no_grad():
        y = run(*us)
    v = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(7))
    us = tuple(u.detach().clone().requires_grad_() for u in us)
    analytic = torch.autograd.grad((run(*us) * v).sum(), us)

    def phi(*xs):
        with torch.no_grad():
            return (run(*xs) * v).reshape(v.shape[0], -1).sum(dim=1)

    batch = v.shape[0]
    diff = torch.zeros(batch, dtype=torch.float64)
    norm = torch.zeros(batch, dtype=torch.float64)
    for k, u in enumerate(us):
        flat = u.detach().reshape(batch, -1)
        for j in range(flat.shape[1]):
            values = []
            for step in (2 * h, h, -h, -2 * h):
                shifted = [w.detach() for w in us]
                moved = flat.clone()
                moved[:, j] += step
                shifted[k] = moved.reshape(u.shape)
                values.append(phi(*shifted))
            numerical = (8 * (values[1] - values[2]) - (values[0] - values[3])) / (12 * h)
            a = analytic[k].reshape(batch, -1)[:, j]
            diff += (a - numerical) ** 2
            norm += numerical ** 2
    return (diff.sqrt() / norm.sqrt().clamp(min=1e-300)).max().item()


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
    cases = ddn.check_cases(name, seed=seed, with_step_scales=True, **params)
    assert cases, "no check inputs"
    for case, inputs, steps in cases:
        names = list(inputs)
        variable = [n for n in names if differentiable[n]]
        constant = {n: inputs[n] for n in names if not differentiable[n]}
        scales = [_step_scale(inputs[n], steps.get(n)) for n in variable]

        def run(*us):
            return node(**{n: s * u for n, s, u in zip(variable, scales, us)}, **constant)

        us = tuple((inputs[n] / s).requires_grad_() for n, s in zip(variable, scales))
        run(*us)
        if steps or any("unverified" in s.flags for s in node.status):
            # Precision-limited cases: y is large against the scale of its variations (the node gave a step
            # scale), or accurate only to its residual (`unverified`, a near-singular Hessian). A step of 1e-6
            # would be swamped by y's rounding and gradcheck's two-point differences are too coarse for a larger
            # one: compare as `ddn check` does, fourth-order differences with a step of 1e-4 of the scale.
            error = _fourth_order_error(run, us, 1e-4)
            assert error <= 1e-6, \
                f"gradient check failed for {name} {params} at the check case '{case}' (seed {seed}): {error:.3g}"
        else:
            assert torch.autograd.gradcheck(run, us, eps=1e-6, atol=1e-7, rtol=1e-6, raise_exception=False), \
                f"gradcheck failed for {name} {params} at the check case '{case}' (seed {seed})"
        assert len(node.status) == next(iter(inputs.values())).shape[0]
