#!/usr/bin/env python3
"""Writes tests/reference/optimal_transport.json: the reference library's optimal transport answers.

    /usr/bin/python3 tests/reference/optimal_transport_reference.py --reference-root PATH [--out FILE]

PATH is a checkout of the public Python reference library of Gould et al. (the folder that holds `ddn/pytorch/`).
Needs Debian's python3-torch. Each case is a request in the `ddn eval` format (node `optimal_transport`) with the
reference's forward (OptimalTransportFcn, float64, run to convergence: eps 1e-15 on the column marginals, up to
500000 Sinkhorn iterations) and its backward ('block' method, autograd) for a random dL/dP. A case is kept only if
both marginals of the reference's P are within 1e-12 of the targets (printed per case).

Cases: random costs at several gamma, with and without (unnormalised) marginals; ties in M (equal rows, repeated
values, a constant cost); tiny marginals (1e-6 of the mass); and large gamma*M: costs with large row and column
offsets (M + a 1^T + 1 b^T has the same plan as M), on which the reference's plain-domain Sinkhorn underflows. For
those the reference answer is computed on the cost without offsets (which has the same plan and the same gradient
with respect to M, r and c), and `reference_fails_on_input` records that the reference itself, given the request's
M, returns a non-finite or wrong plan.
"""
import argparse
import json
import os
import sys

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--reference-root", required=True, help="folder of the reference library (holds ddn/pytorch/)")
ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "optimal_transport.json"))
args = ap.parse_args()
if not os.path.isfile(os.path.join(args.reference_root, "ddn", "pytorch", "optimal_transport.py")):
    sys.exit(f"optimal_transport_reference.py: no ddn/pytorch/optimal_transport.py under {args.reference_root}")
sys.path.insert(0, args.reference_root)

import torch  # noqa: E402
from ddn.pytorch.optimal_transport import OptimalTransportFcn  # noqa: E402

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(13)
EPS, MAXITERS = 1e-15, 500000


def reference(M, r, c, gamma, V):
    """The reference's plan and gradients (r, c: None or unnormalised positive tensors)."""
    Mt = M.clone().requires_grad_()
    rt = None if r is None else r.clone().requires_grad_()
    ct = None if c is None else c.clone().requires_grad_()
    P = OptimalTransportFcn.apply(Mt, rt, ct, gamma, EPS, MAXITERS, False, "block")
    (P * V).sum().backward()
    return P.detach(), Mt.grad, None if rt is None else rt.grad, None if ct is None else ct.grad


def marginal_error(P, r, c):
    B, H, W = P.shape
    rn = torch.full((B, H), 1.0 / H) if r is None else r / r.sum(1, keepdim=True)
    cn = torch.full((B, W), 1.0 / W) if c is None else c / c.sum(1, keepdim=True)
    return max((P.sum(2) - rn).abs().max().item(), (P.sum(1) - cn).abs().max().item())


def positive(shape, level=1.0):
    return level * (0.5 + torch.rand(shape, generator=gen))


cases = []


def add(name, M, gamma, r=None, c=None, solve_on=None, note=""):
    """Adds a case; the reference solves `solve_on` (default M), the request carries M."""
    V = torch.randn(M.shape, generator=gen)
    P, dM, dr, dc = reference(M if solve_on is None else solve_on, r, c, gamma, V)
    err = marginal_error(P, r, c)
    ok = err <= 1e-12 and torch.isfinite(P).all().item()
    print(f"{name:28s} gamma {gamma:7g}  reference marginal error {err:.2e}  {'kept' if ok else 'DROPPED'}")
    if not ok:
        return
    case = {"name": name, "node": "optimal_transport", "params": {"gamma": gamma},
            "inputs": {"M": M.tolist()}, "grad_outputs": {"P": V.tolist()},
            "want": {"outputs": {"P": P.tolist()}, "grad_inputs": {"M": dM.tolist()}},
            "reference_marginal_error": err, "note": note}
    if r is not None:
        case["inputs"]["r"] = r.tolist()
        case["want"]["grad_inputs"]["r"] = dr.tolist()
    if c is not None:
        case["inputs"]["c"] = c.tolist()
        case["want"]["grad_inputs"]["c"] = dc.tolist()
    if solve_on is not None:
        with torch.no_grad():
            P_direct = OptimalTransportFcn.apply(M, r, c, gamma, EPS, 2000, False, "block")
        fails = (not torch.isfinite(P_direct).all().item()) or marginal_error(P_direct, r, c) > 1e-6 or \
            (P_direct - P).abs().max().item() > 1e-6
        case["reference_fails_on_input"] = bool(fails)
        print(f"{'':28s} the reference given M itself: {'fails' if fails else 'works'}")
    cases.append(case)


for gamma in (0.5, 1.0, 5.0, 20.0):
    add(f"random_g{gamma:g}", torch.randn(2, 4, 5, generator=gen), gamma)
    add(f"marginals_g{gamma:g}", torch.randn(2, 5, 3, generator=gen), gamma,
        r=positive((2, 5), 3.0), c=positive((2, 3), 0.2))
add("row_marginal_only", torch.randn(2, 3, 6, generator=gen), 2.0, r=positive((2, 3)))
add("column_marginal_only", torch.randn(2, 6, 3, generator=gen), 2.0, c=positive((2, 3)))
add("larger_g10", torch.randn(1, 12, 9, generator=gen), 10.0, r=positive((1, 12)), c=positive((1, 9)))

ties = torch.randn(3, 4, 4, generator=gen)
ties[0, 1] = ties[0, 0]                       # two equal rows
ties[1] = torch.round(ties[1])                # repeated values
ties[2] = 0.7                                 # constant: P = r c^T
add("ties", ties, 3.0, r=positive((3, 4)), c=positive((3, 4)))

tiny_r = positive((2, 4))
tiny_r[:, 2] = 1e-6
tiny_c = positive((2, 5))
tiny_c[0, 0] = 1e-6
tiny_c[1, 4] = 1e-6
add("tiny_marginals", torch.randn(2, 4, 5, generator=gen), 2.0, r=tiny_r, c=tiny_c)

# Large gamma*M: offsets of a few hundred, times gamma, put exp(-gamma (M - min_j M)) below the smallest double in
# whole columns, where the plain-domain iteration divides by zero.
for gamma, scale in ((1.0, 900.0), (10.0, 90.0), (50.0, 20.0)):
    M0 = torch.randn(2, 4, 5, generator=gen)
    offsets = scale * (torch.rand(2, 4, 1, generator=gen) + torch.arange(5.0).view(1, 1, 5))
    add(f"large_gamma_M_g{gamma:g}", M0 + offsets, gamma, r=positive((2, 4)), c=positive((2, 5)), solve_on=M0,
        note="M has row and column offsets; the reference answer is computed without them")

# Large gamma with a genuine spread (gamma * range(M) ~ 200): slow for plain Sinkhorn but within its range.
add("large_gamma_spread", 0.5 * torch.randn(1, 5, 7, generator=gen), 60.0, r=positive((1, 5)), c=positive((1, 7)))

with open(args.out, "w") as out:
    json.dump({"generator": "tests/reference/optimal_transport_reference.py",
               "reference": "OptimalTransportFcn (Gould et al.), PyTorch " + torch.__version__ + ", float64, eps 1e-15",
               "cases": cases}, out, indent=None, separators=(",", ":"))
    out.write("\n")
print(f"wrote {len(cases)} cases to {args.out}")
