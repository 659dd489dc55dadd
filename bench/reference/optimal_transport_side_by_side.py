#!/usr/bin/env python3
"""optimal_transport, forward + backward, side by side with the reference library, in one run.

    /usr/bin/python3 bench/reference/optimal_transport_side_by_side.py --reference-root PATH
        [--ddn build/bin/ddn] [--threads 1] [--rounds 5] [--shape 64,128,128] [--gamma 10]

PATH is a checkout of the public Python reference library of Gould et al. (the folder holding ddn/pytorch/); needs
Debian's python3-torch. Each round times, one after the other at the same thread count:
  - the reference: OptimalTransportFcn (float64, its defaults: eps 1e-6 on the column marginals, at most 1000
    Sinkhorn iterations, 'block' backward) on M ~ N(0, 1) of the given shape, uniform marginals; forward + backward
    of sum(P * V) through autograd, median of 5 after a warm-up;
  - `ddn bench optimal_transport --shape B,H,W --param gamma=G --runs 5` (M ~ N(0, 1), uniform marginals, solved
    to a marginal error of ~1e-16): median of forward_ms + backward_ms.
Prints one line per round and the median of the per-round ratios (reference / ddn). Speed figures quoted for
ddn come from this script (docs/design.md §3: side by side, same thread count, alternated).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--reference-root", required=True, help="folder of the reference library (holds ddn/pytorch/)")
ap.add_argument("--ddn", default="build/bin/ddn", help="the ddn binary (default build/bin/ddn)")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--shape", default="64,128,128")
ap.add_argument("--gamma", type=float, default=10.0)
args = ap.parse_args()
if not os.path.isfile(os.path.join(args.reference_root, "ddn", "pytorch", "optimal_transport.py")):
    sys.exit(f"optimal_transport_side_by_side.py: no ddn/pytorch/optimal_transport.py under {args.reference_root}")
if not os.access(args.ddn, os.X_OK):
    sys.exit(f"optimal_transport_side_by_side.py: no ddn binary at {args.ddn} (build first, or pass --ddn)")
sys.path.insert(0, args.reference_root)

import torch  # noqa: E402
from ddn.pytorch.optimal_transport import OptimalTransportFcn  # noqa: E402

torch.set_default_dtype(torch.float64)
torch.set_num_threads(args.threads)
shape = [int(s) for s in args.shape.split(",")]
gen = torch.Generator().manual_seed(1)
M = torch.randn(*shape, generator=gen)
V = torch.randn(*shape, generator=gen)


def reference_ms():
    def once():
        m = M.clone().requires_grad_()
        (OptimalTransportFcn.apply(m, None, None, args.gamma) * V).sum().backward()
    once()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        once()
        times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times)


def ddn_ms():
    cmd = [args.ddn, "bench", "optimal_transport", "--shape", args.shape, "--param", f"gamma={args.gamma:g}",
           "--runs", "5", "--threads", str(args.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"optimal_transport_side_by_side.py: {' '.join(cmd)} failed: {p.stderr.strip()}")
    runs = [r for r in (json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")) if "forward_ms" in r]
    return statistics.median(r["forward_ms"] + r["backward_ms"] for r in runs)


print(f"optimal_transport M {tuple(shape)}, gamma {args.gamma:g}, {args.threads} thread(s); ms = forward + backward "
      "of one batch, medians; ratio = reference / ddn", flush=True)
ratios, refs, ours = [], [], []
for r in range(args.rounds):
    a = reference_ms()
    b = ddn_ms()
    refs.append(a)
    ours.append(b)
    ratios.append(a / b)
    print(f"round {r}  reference {a:9.1f} ms  ddn {b:8.1f} ms  {a / b:6.1f}x", flush=True)
print(f"median: reference {statistics.median(refs):.1f} ms, ddn {statistics.median(ours):.1f} ms, "
      f"ratio {statistics.median(ratios):.1f}x")
