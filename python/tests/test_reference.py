"""Agreement with the reference library (Gould et al.'s PyTorch code, github.com/anucvml/ddn) inside small
PyTorch models: its robust pooling layer (RobustGlobalPool2d) and its projection layer (EuclideanProjection)
against ddn.Node("robust_pool") and ddn.Node("project"), same weights, same data: the loss and the gradient of
every parameter.

The reference is not part of this repository: set DDN_REFERENCE_ROOT to a checkout of it (the folder that
holds ddn/pytorch/robustpool.py). Without it these tests are skipped, saying so. Its modules are loaded by
file path under other names, because its package is also called `ddn`.

Where both converge they agree: the reference solves robust pooling by L-BFGS to a gradient tolerance of
1e-5 (ddn to machine precision), so pooling agrees to ~1e-6 relative; projections are exact in both (1e-10).
For the non-convex penalties (welsch, truncated_quadratic) the reference keeps the better of two local
searches while ddn certifies a global minimum, so the layers are compared problem by problem where their
answers lie in the same basin, and ddn's objective is never worse.
"""
import importlib.util
import os

import pytest
import torch

import ddn

ROOT = os.environ.get("DDN_REFERENCE_ROOT")
pytestmark = pytest.mark.skipif(not ROOT, reason="DDN_REFERENCE_ROOT is not set: point it at a checkout of the "
                                "reference library (github.com/anucvml/ddn) to compare ddn with it")

# ddn's names → the reference's classes.
PENALTIES = {"quadratic": "Quadratic", "pseudo_huber": "PseudoHuber", "huber": "Huber", "welsch": "Welsch",
             "truncated_quadratic": "TruncatedQuadratic"}
SHAPES = {"simplex": "Simplex", "l1_sphere": "L1Sphere", "l1_ball": "L1Ball", "l2_sphere": "L2Sphere",
          "l2_ball": "L2Ball", "linf_sphere": "LInfSphere", "linf_ball": "LInfBall"}
_modules = {}


def reference(relative):
    """A module of the reference library, loaded once by file path."""
    if relative not in _modules:
        path = os.path.join(ROOT, relative)
        if not os.path.isfile(path):
            pytest.fail(f"DDN_REFERENCE_ROOT={ROOT} has no {relative}")
        spec = importlib.util.spec_from_file_location("reference_" + os.path.basename(path)[:-3], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _modules[relative] = module
    return _modules[relative]


def penalty_class(penalty):
    return getattr(reference("ddn/pytorch/robustpool.py"), PENALTIES[penalty])


class PoolOverPoints(torch.nn.Module):
    """(B, N, F) features → (B, F), pooled over the N points per channel by ddn's robust_pool."""

    def __init__(self, **params):
        super().__init__()
        self.pool = ddn.Node("robust_pool", threads=1, **params)

    def forward(self, features):
        b, n, f = features.shape
        return self.pool(features.transpose(1, 2).reshape(b * f, n)).reshape(b, f)


class ReferencePoolOverPoints(torch.nn.Module):
    def __init__(self, penalty, alpha):
        super().__init__()
        self.pool = reference("ddn/pytorch/robustpool.py").RobustGlobalPool2d(penalty_class(penalty), alpha=alpha)

    def forward(self, features):
        return self.pool(features.transpose(1, 2).unsqueeze(-1))  # (B, F, N, 1) → (B, F)


def point_classifier(pool, seed):
    """A tiny PointNet: shared per-point layers, pooling, a linear head."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 16, dtype=torch.float64), torch.nn.Tanh(),
                               torch.nn.Linear(16, 8, dtype=torch.float64), pool,
                               torch.nn.Linear(8, 3, dtype=torch.float64))


def clouds(seed, batch=6, points=24, outliers=4):
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(batch, points, 2, generator=g, dtype=torch.float64)
    x[:, :outliers] = 3 * (torch.rand(batch, outliers, 2, generator=g, dtype=torch.float64) - 0.5)
    labels = torch.randint(0, 3, (batch,), generator=g)
    return x, labels


def loss_and_gradients(model, x, labels):
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("penalty", ["quadratic", "pseudo_huber", "huber"])
@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_robust_pooling_in_a_model_agrees(penalty, alpha):
    x, labels = clouds(seed=7)
    ours = point_classifier(PoolOverPoints(penalty=penalty, alpha=alpha), seed=3)
    theirs = point_classifier(ReferencePoolOverPoints(penalty, alpha), seed=3)
    loss, grads = loss_and_gradients(ours, x, labels)
    ref_loss, ref_grads = loss_and_gradients(theirs, x, labels)
    assert loss == pytest.approx(ref_loss, rel=1e-7)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-5, atol=1e-7), (g - r).abs().max()


@pytest.mark.parametrize("penalty", ["welsch", "truncated_quadratic"])
def test_non_convex_pooling_agrees_where_both_find_the_same_minimum(penalty):
    alpha = 1.0
    x, _ = clouds(seed=11, batch=8, points=30, outliers=6)
    features = x.transpose(1, 2).reshape(-1, x.shape[1])  # (16, 30): each coordinate pooled separately
    ours = ddn.Node("robust_pool", penalty=penalty, alpha=alpha, threads=1)
    theirs = reference("ddn/pytorch/robustpool.py").RobustGlobalPool2d(penalty_class(penalty), alpha=alpha)
    xa = features.clone().requires_grad_()
    xb = features.clone().requires_grad_()
    y, y_ref = ours(xa), theirs(xb.unsqueeze(-1))
    v = torch.linspace(-1, 1, y.numel(), dtype=torch.float64)
    (y * v).sum().backward()
    (y_ref * v).sum().backward()

    phi = penalty_class(penalty).phi
    f = phi(y.detach()[:, None] - features, alpha).sum(1)
    f_ref = phi(y_ref.detach()[:, None] - features, alpha).sum(1)
    assert torch.all(f <= f_ref + 1e-9), "ddn's minimum is worse than the reference's"
    same = (y.detach() - y_ref.detach()).abs() < 1e-3
    assert same.sum() >= 0.75 * len(same), f"only {int(same.sum())} of {len(same)} problems in the same basin"
    assert torch.allclose(y.detach()[same], y_ref.detach()[same], rtol=0, atol=1e-5)
    assert torch.allclose(xa.grad[same], xb.grad[same], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("radius", [0.5, 2.0])
def test_projection_in_a_model_agrees(shape, radius):
    def model(projection):
        torch.manual_seed(5)
        return torch.nn.Sequential(torch.nn.Linear(4, 7, dtype=torch.float64), projection,
                                   torch.nn.Linear(7, 2, dtype=torch.float64))

    ours = model(ddn.Node("project", shape=shape, radius=radius, threads=1))
    projections = reference("ddn/pytorch/projections.py")
    theirs = model(projections.EuclideanProjection(getattr(projections, SHAPES[shape]), radius=radius))
    g = torch.Generator().manual_seed(13)
    x = 2 * torch.randn(16, 4, generator=g, dtype=torch.float64)
    target = torch.randn(16, 2, generator=g, dtype=torch.float64)

    def run(m):
        m.zero_grad()
        loss = torch.nn.functional.mse_loss(m(x), target)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in m.parameters()]

    loss, grads = run(ours)
    ref_loss, ref_grads = run(theirs)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11), (a - b).abs().max()
