#!/usr/bin/env python3
"""The generic engine against the reference library's generic backward, side by side, one thread.

    bench/generic_vs_reference.py --reference-root DIR [--build build] [--rounds 5] [--only NAME,...]

The reference library (Gould et al., "Deep Declarative Networks", TPAMI 2022; see docs/design.md) computes the
gradient of any declarative node the same way: autograd gives ∇_y f, then its Hessian ∇²_yy f and the mixed
block ∇²_xy f one row at a time (one reverse pass per output coordinate), then a dense Cholesky solve
(AbstractDeclarativeNode.gradient; EqConstDeclarativeNode.gradient with the constraints). Its forward is always
the user's own solver. The workloads here are written as reference-style declarative nodes whose `solve` is a
closed form or the reference's own example solver, so that what is timed on the reference side is its generic
backward only; ddn's figure is the generic engine's forward *and* backward (`ddn bench NODE --generic`), and its
backward alone is printed next to it.

Workloads (same objective, same sizes, same input distributions as `ddn bench`):
  project_l2_ball  f = ½‖y − x‖², g = ‖y‖² − 1 ≤ 0; x (B, D) ~ N(0, 1) (the constraint active for D ≥ 4)
  pseudo_huber     f = Σ_i α²(√(1 + ((y − x_i)/α)²) − 1), α = 1; x (B, N): Gaussian clusters, 20 % far outliers

The two sides alternate round by round (reference, then ddn), each at one thread (torch.set_num_threads(1),
`--threads 1`); the figures are medians over the rounds. Run it with the system's Python and its PyTorch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "project_l2_ball": ("project", ["--param", "shape=l2_ball"], [(64, 16), (64, 64), (64, 256), (8, 1024)]),
    "pseudo_huber": ("robust_pool", ["--param", "penalty=pseudo_huber"], [(64, 256), (256, 1024)]),
}


def reference_nodes(torch, node_module):
    class L2BallProjection(node_module.IneqConstDeclarativeNode):
        """½‖y − x‖² subject to ‖y‖² ≤ 1; solve: the closed form; gradient: the reference's generic one."""

        def objective(self, x, y):
            return 0.5 * ((y - x) ** 2).sum(dim=-1)

        def inequality_constraints(self, x, y):
            return (y * y).sum(dim=-1) - 1.0

        def solve(self, x):
            norm = x.norm(dim=-1, keepdim=True)
            return torch.where(norm > 1.0, x / norm, x).detach(), None

    class PseudoHuberPool(node_module.AbstractDeclarativeNode):
        """Σ_i α²(√(1 + ((y − x_i)/α)²) − 1); solve: Newton to machine precision; gradient: the generic one."""

        def __init__(self, alpha):
            super().__init__()
            self.alpha = alpha

        def objective(self, x, y):
            a2 = self.alpha * self.alpha
            z = y.unsqueeze(-1) - x
            return (a2 * (torch.sqrt(1.0 + z * z / a2) - 1.0)).sum(dim=-1)

        def solve(self, x):
            a2 = self.alpha * self.alpha
            y = x.median(dim=-1).values
            for _ in range(50):
                z = y.unsqueeze(-1) - x
                s = torch.sqrt(1.0 + z * z / a2)
                y = y - (z / s).sum(-1) / (1.0 / s ** 3).sum(-1)
            return y.detach(), None

    return L2BallProjection, PseudoHuberPool


def make_inputs(torch, name, b, n, gen):
    if name == "project_l2_ball":
        return torch.randn(b, n, dtype=torch.float64, generator=gen)
    centre = torch.randn(b, 1, dtype=torch.float64, generator=gen)
    x = centre + torch.randn(b, n, dtype=torch.float64, generator=gen)
    far = torch.rand(b, n, generator=gen) < 0.2
    sign = torch.where(torch.rand(b, n, generator=gen) < 0.5, -1.0, 1.0).double()
    dist = 5.0 + 5.0 * torch.rand(b, n, dtype=torch.float64, generator=gen)
    return torch.where(far, centre + sign * dist, x)


def time_reference(torch, node, x):
    y, _ = node.solve(x)
    xg = x.clone().requires_grad_()
    yg = y.clone().requires_grad_()
    v = torch.ones_like(y)
    start = time.perf_counter()
    node.gradient(xg, y=yg, v=v)
    return 1e3 * (time.perf_counter() - start)


def time_ddn(build, node, params, shape):
    cmd = [os.path.join(build, "bin", "ddn"), "bench", node, *params, "--shape", shape, "--runs", "3", "--threads",
           "1", "--generic"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()
    summary = json.loads(out[-1])
    return summary["median_forward_ms"], summary["median_backward_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-root", default=os.environ.get("DDN_REFERENCE_ROOT"),
                        help="the reference library's checkout (the folder holding ddn/pytorch)")
    parser.add_argument("--build", default="build")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated workload names")
    args = parser.parse_args()
    if not args.reference_root:
        sys.exit("generic_vs_reference.py: give --reference-root (or set DDN_REFERENCE_ROOT)")
    sys.path.insert(0, args.reference_root)
    import torch
    from ddn.pytorch import node as node_module

    torch.set_num_threads(1)
    L2BallProjection, PseudoHuberPool = reference_nodes(torch, node_module)
    wanted = [w for w in args.only.split(",") if w] or list(WORKLOADS)
    print(f"# load: {os.getloadavg()[0]:.1f}; one thread each side; medians over {args.rounds} alternated rounds")
    print("workload, shape, reference generic backward ms, ddn generic forward ms, ddn generic backward ms, "
          "reference / ddn (forward + backward)")
    for name in wanted:
        node_name, params, shapes = WORKLOADS[name]
        for b, n in shapes:
            gen = torch.Generator().manual_seed(1)
            x = make_inputs(torch, name, b, n, gen)
            ref_node = L2BallProjection() if name == "project_l2_ball" else PseudoHuberPool(1.0)
            ref, fwd, bwd = [], [], []
            for _ in range(args.rounds):
                ref.append(time_reference(torch, ref_node, x))
                f, g = time_ddn(args.build, node_name, params, f"{b},{n}")
                fwd.append(f)
                bwd.append(g)
            r, f, g = statistics.median(ref), statistics.median(fwd), statistics.median(bwd)
            print(f"{name}, ({b}, {n}), {r:.3f}, {f:.3f}, {g:.3f}, {r / (f + g):.1f}x", flush=True)


if __name__ == "__main__":
    main()
