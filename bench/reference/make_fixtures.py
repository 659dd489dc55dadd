#!/usr/bin/env python3
"""Writes the reference library's answers on random inputs as test fixtures (tests/reference/*.json).

    /usr/bin/python3 bench/reference/make_fixtures.py --reference-root PATH [--out tests/reference] [--only NAME]

PATH is a checkout of the public reference library (anucvml/ddn, the Python/PyTorch code of Gould et al.,
"Deep Declarative Networks", TPAMI 2022). Needs Debian's python3-torch, and python3-opencv for the PnP node (the
reference imports cv2). NAME is one of linalg, pnp, samples. Every file is a list of `ddn eval` requests with the
reference's answer (format: tests/reference/fixtures.h); seeds are fixed, so the files are reproducible.

What is compared, and how the reference's conventions are mapped onto ddn's:
  least_squares  WeightedLeastSquaresFcn (Cholesky mode) with input (B, C, T) = our A (B, T, C) transposed,
                 target and weights (B, 1, T); outputs y, y_0 -> x, bias; gradients transposed back.
  eigen          EigenDecompositionFcn: its eigenvectors get ddn's sign rule (largest-magnitude entry
                 positive, first such entry on ties) and dL/dY the matching column signs, so that outputs and
                 gradients compare directly; eigenvalues (and their gradient) from torch.linalg.eigvalsh.
  pnp            PnP (DeclarativeLayer) on data generated as in the reference's tests/testPnPNode.py, with
                 K = None (normalised image coordinates); objectives reproj, cosine, reproj_huber.
  samples        the sample nodes of ddn/pytorch/sample_nodes.py (solve and analytic gradient) and
                 tridiagsolve's TriDiagSolveFcn.
  truncated      robust_vector_pool with the truncated quadratic (RobustVectorPool2dFcn, TruncQuad, its default
                 starts: mean and median) on random clusters with outliers; only the objective of its answer per
                 problem (f_ref) is kept: a non-convex problem, ours must never be worse.
"""
import argparse
import json
import math
import os
import sys


def tolist(t):
    return t.detach().cpu().double().tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-root", required=True, help="checkout of the reference library (anucvml/ddn)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                                  "reference"))
    ap.add_argument("--only", choices=["linalg", "pnp", "samples", "truncated"])
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.reference_root))
    global torch
    import torch
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    jobs = {"linalg": linalg_cases, "pnp": pnp_cases, "samples": sample_cases, "truncated": truncated_cases}
    for name, make in jobs.items():
        if args.only and args.only != name:
            continue
        cases = make()
        path = os.path.join(args.out, f"{name}_cases.json")
        with open(path, "w") as f:
            json.dump({"generator": "bench/reference/make_fixtures.py", "cases": cases}, f)
            f.write("\n")
        print(f"{path}: {len(cases)} cases", file=sys.stderr)


# ---- least_squares and eigen ------------------------------------------------------------------------------

def linalg_cases():
    from ddn.pytorch.leastsquares import WeightedLeastSquaresFcn
    from ddn.pytorch.eigen_decomposition import EigenDecompositionFcn
    g = torch.Generator().manual_seed(14)
    cases = []
    for bias in (True, False):
        for beta in (1e-3, 0.5):
            for weighted in (True, False):
                B, T, C = 3, 10, 4
                A = torch.randn(B, T, C, generator=g)
                b = torch.randn(B, T, generator=g)
                w = torch.rand(B, T, generator=g) + 0.1 if weighted else None
                Ar = A.transpose(1, 2).clone().requires_grad_()
                br = b.view(B, 1, T).clone().requires_grad_()
                wr = w.view(B, 1, T).clone().requires_grad_() if weighted else None
                x, c = WeightedLeastSquaresFcn.apply(Ar, br, wr, beta, False, bias, "cholesky")
                vx = torch.randn(B, C, generator=g)
                vc = torch.randn(B, 1, generator=g)
                ((x * vx).sum() + (c * vc).sum()).backward()
                inputs = {"A": tolist(A), "b": tolist(b)}
                grads = {"A": tolist(Ar.grad.transpose(1, 2)), "b": tolist(br.grad.view(B, T))}
                if weighted:
                    inputs["w"] = tolist(w)
                    grads["w"] = tolist(wr.grad.view(B, T))
                cases.append({"node": "least_squares", "label": f"bias={bias} beta={beta} weighted={weighted}",
                              "params": {"beta": beta, "bias": bias}, "inputs": inputs,
                              "grad_outputs": {"x": tolist(vx), "bias": tolist(vc.view(B))},
                              "want": {"outputs": {"x": tolist(x), "bias": tolist(c.view(B))}, "grad_inputs": grads}})
    for m, top_k in ((5, 0), (5, 1), (8, 3), (8, 8), (16, 4)):
        B = 3
        K = top_k or m
        X = torch.randn(B, m, m, generator=g)
        Xr = X.clone().requires_grad_()
        Y = EigenDecompositionFcn.apply(Xr, top_k or None)
        # ddn's sign rule: the first entry of largest magnitude of each column is positive.
        idx = Y.detach().abs().argmax(dim=1, keepdim=True)           # (B, 1, K), first maximum
        s = torch.sign(torch.gather(Y.detach(), 1, idx))              # (B, 1, K)
        V = torch.randn(B, m, K, generator=g)
        gl = torch.randn(B, K, generator=g)
        lam = torch.linalg.eigvalsh(0.5 * (Xr + Xr.transpose(1, 2)))[:, -K:]
        ((Y * (V * s)).sum() + (lam * gl).sum()).backward()
        cases.append({"node": "eigen", "label": f"M={m} top_k={top_k}", "params": {"top_k": top_k},
                      "inputs": {"X": tolist(X)}, "grad_outputs": {"vectors": tolist(V), "values": tolist(gl)},
                      "want": {"outputs": {"vectors": tolist(Y * s), "values": tolist(lam)},
                               "grad_inputs": {"X": tolist(Xr.grad)}}})
    return cases


# ---- robust_vector_pool, truncated quadratic ------------------------------------------------------------------

def truncated_cases():
    """Clusters with outliers as in the reference's tests (Gaussian clusters, about 20 % points uniform in a wide
    box), one to three clusters, N = 8..64, D = 2, 3, 8, alpha = 1 and 2; f_ref = sum_i phi(|y_ref - x_i|)."""
    import ddn.pytorch.robust_vec_pool as rvp
    g = torch.Generator().manual_seed(17)
    cases = []
    for D in (2, 3, 8):
        for N in (8, 16, 30, 64):
            for clusters in (1, 2, 3):
                B = 6
                centres = 2.0 * torch.randn(B, clusters, D, generator=g)
                pick = torch.randint(0, clusters, (B, N), generator=g)
                x = torch.gather(centres, 1, pick.unsqueeze(-1).expand(B, N, D)) + torch.randn(B, N, D, generator=g)
                outlier = torch.rand(B, N, 1, generator=g) < 0.2
                x = torch.where(outlier, 16.0 * torch.rand(B, N, D, generator=g) - 8.0, x)
                x = torch.round(x * 1e4) / 1e4  # short fixtures; the problems are these rounded points
                for alpha in (1.0, 2.0):
                    # The reference's layout is (B, C, *): C = D channels, N points.
                    y = rvp.RobustVectorPool2dFcn.apply(x.permute(0, 2, 1).reshape(B, D, 1, N), rvp.TruncQuad, alpha)
                    z = torch.linalg.norm(y.view(B, 1, D) - x, dim=2)
                    f = rvp.TruncQuad.phi(z, alpha).sum(dim=1)
                    cases.append({"node": "robust_vector_pool", "label": f"D={D} N={N} clusters={clusters} alpha={alpha}",
                                  "params": {"penalty": "truncated_quadratic", "alpha": alpha},
                                  "inputs": {"x": tolist(x)}, "f_ref": tolist(f)})
    return cases


# ---- pnp ----------------------------------------------------------------------------------------------------

def pnp_problem(b, n, noise, g):
    """The data of the reference's tests/testPnPNode.py: a random pose, image points uniform in [-1, 1]^2 at
    depths U(1, 3), noise on the image points."""
    import ddn.pytorch.geometry_utilities as geo
    theta = torch.randn(b, 6, generator=g)
    # Rotation angles below 2.5 rad: ddn returns the angle-axis representative with angle <= pi, the reference
    # whichever L-BFGS reaches; away from pi the two coincide.
    norm = theta[:, :3].norm(dim=1, keepdim=True)
    theta[:, :3] = theta[:, :3] * torch.clamp(2.5 / norm, max=1.0)
    R = geo.angle_axis_to_rotation_matrix(theta[..., :3])
    t = theta[..., 3:]
    xy = 2.0 * torch.rand(b, n, 2, generator=g) - 1.0
    z = 2.0 * torch.rand(b, n, 1, generator=g) + 1.0
    p3d_transformed = torch.cat((z * xy, z), dim=-1)
    p3d = torch.einsum('brs,bms->bmr', (R.transpose(-2, -1), p3d_transformed - t.unsqueeze(-2)))
    p2d = xy + noise * torch.randn(b, n, 2, generator=g)
    return p2d, p3d, theta


def pnp_cases():
    from ddn.pytorch.pnp_node import PnP
    from ddn.pytorch.node import DeclarativeLayer
    g = torch.Generator().manual_seed(15)
    cases = []
    for objective, alpha in (("reproj", 1.0), ("cosine", 1.0), ("reproj_huber", 0.02)):
        for n in (10, 30):
            b = 3
            p2d, p3d, theta = pnp_problem(b, n, 0.01, g)
            w = torch.rand(b, n, generator=g) + 0.5
            w = w / w.sum(-1, keepdim=True)
            node = PnP(objective_type=objective, alpha=alpha)
            layer = DeclarativeLayer(node)
            p2r, p3r, wr = (t.clone().requires_grad_() for t in (p2d, p3d, w))
            y = layer(p2r, p3r, wr, None)
            v = torch.randn(b, 6, generator=g)
            (y * v).sum().backward()
            f = node.objective(p2d, p3d, w, None, y=y.detach())
            cases.append({"node": "pnp", "label": f"{objective} n={n}",
                          "params": {"objective": objective, "alpha": alpha},
                          "inputs": {"p2d": tolist(p2d), "p3d": tolist(p3d), "w": tolist(w)},
                          "grad_outputs": {"pose": tolist(v)},
                          "want": {"outputs": {"pose": tolist(y)},
                                   "grad_inputs": {"p2d": tolist(p2r.grad), "p3d": tolist(p3r.grad),
                                                   "w": tolist(wr.grad)}},
                          "f_ref": tolist(f), "pose_true": tolist(theta)})
    return cases


# ---- sample nodes and tridiagsolve --------------------------------------------------------------------------

def sample_cases():
    from ddn.pytorch import sample_nodes as sn
    from ddn.pytorch.tridiagsolve import TriDiagSolveFcn
    g = torch.Generator().manual_seed(16)
    cases = []

    def add(name, node, xs, ddn_inputs, ddn_output, label=""):
        # The reference's (B, 1) inputs and outputs are ddn's (B): flatten to the shape of the ddn input.
        y, _ = node.solve(*xs)
        v = torch.randn(y.shape, generator=g)
        grads = node.gradient(*xs, y=y, v=v)
        x_shape = xs[0].shape if xs[0].shape[1] > 1 else (xs[0].shape[0],)
        y_shape = y.shape if y.dim() > 1 and y.shape[1] > 1 else (y.shape[0],)
        cases.append({"node": name, "label": label, "inputs": ddn_inputs,
                      "grad_outputs": {ddn_output: tolist(v.reshape(y_shape))},
                      "want": {"outputs": {ddn_output: tolist(y.reshape(y_shape))},
                               "grad_inputs": {list(ddn_inputs)[0]: tolist(grads[0].reshape(x_shape))}}})

    x = torch.tensor([[0.25], [1.0], [2.0]])
    add("unconstrained_polynomial", sn.UnconstPolynomial(), (x,), {"x": tolist(x.view(3))}, "y")
    x = torch.randn(4, 1, generator=g)
    add("linear_on_unit_circle", sn.LinFcnOnUnitCircle(), (x,), {"x": tolist(x.view(4))}, "y")
    x = torch.randn(4, 1, generator=g)
    add("constant_linear_on_circle", sn.ConstLinFcnOnParameterizedCircle(), (x,), {"x": tolist(x.view(4))}, "y")
    x = torch.randn(4, 2, generator=g)
    add("linear_on_circle", sn.LinFcnOnParameterizedCircle(), (x,), {"x": tolist(x)}, "y")
    x = torch.randn(4, 5, generator=g)
    add("quadratic_on_sphere", sn.QuadFcnOnSphere(), (x,), {"x": tolist(x)}, "y")
    x = torch.randn(4, 5, generator=g)
    x[1] = x[1] / x[1].norm() / 1.1          # one point inside the ball, as in the reference's test
    x[2] = x[2] / x[2].norm() * 0.5
    add("quadratic_on_ball", sn.QuadFcnOnBall(), (x,), {"x": tolist(x)}, "y")

    # GlobalPseudoHuberPool2d is ddn's pseudo_huber_mean over the flattened m×m input.
    B, m, alpha = 3, 7, 0.5
    x = torch.randn(B, m, m, generator=g)
    node = sn.GlobalPseudoHuberPool2d()
    al = torch.full((B, 1), alpha)
    y, ctx = node.solve(x, al)
    v = torch.randn(B, generator=g)
    dx = node.gradient(x, al, y=y, v=v, ctx=ctx)[0]
    cases.append({"node": "pseudo_huber_mean", "label": "GlobalPseudoHuberPool2d", "params": {"alpha": alpha},
                  "inputs": {"x": tolist(x.view(B, m * m))}, "grad_outputs": {"y": tolist(v)},
                  "want": {"outputs": {"y": tolist(y)}, "grad_inputs": {"x": tolist(dx.reshape(B, m * m))}}})

    for N, K in ((16, 1), (16, 5), (7, 3)):
        B = 3
        b = 2.0 + 0.1 * torch.rand(B, N, generator=g)
        a = -torch.rand(B, N - 1, generator=g)
        c = -torch.rand(B, N - 1, generator=g)
        d = torch.rand(B, N, K, generator=g)
        br, ar, cr, dr = (t.clone().requires_grad_() for t in (b, a, c, d))
        x = TriDiagSolveFcn.apply(br, ar, cr, dr, "thomas")
        v = torch.randn(B, N, K, generator=g)
        (x * v).sum().backward()
        cases.append({"node": "tridiag_solve", "label": f"N={N} K={K}",
                      "inputs": {"b": tolist(b), "a": tolist(a), "c": tolist(c), "d": tolist(d)},
                      "grad_outputs": {"x": tolist(v)},
                      "want": {"outputs": {"x": tolist(x)},
                               "grad_inputs": {"b": tolist(br.grad), "a": tolist(ar.grad), "c": tolist(cr.grad),
                                               "d": tolist(dr.grad)}}})
    return cases


if __name__ == "__main__":
    main()
