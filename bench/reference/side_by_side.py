#!/usr/bin/env python3
"""Times the reference library and `ddn bench` side by side on the workloads of issue 14, in one run, at the same
thread count, alternating workload by workload, and prints the ratios.

    /usr/bin/python3 bench/reference/side_by_side.py --reference-root PATH [--ddn build/bin/ddn] [--threads 1]
                                                     [--rounds 3] [--only least_squares|eigen|pnp]

PATH is a checkout of the public reference library (anucvml/ddn). Needs Debian's python3-torch, and python3-opencv
for the PnP node (the reference imports cv2). Workloads (forward + backward of one batch, float64, a random dL/dy):

  least_squares  A (256, 512, 64), b (256, 512), beta 1e-3, bias, no weights
                 reference: WeightedLeastSquaresFcn (Cholesky mode) on A transposed to its (B, C, T)
                 ddn:       ddn bench least_squares --shape 256,512,64
  eigen          X (256, 32, 32), top_k 4
                 reference: EigenDecompositionFcn(X, 4)
                 ddn:       ddn bench eigen --shape 256,32,32 --param top_k=4
  pnp            64 problems of 100 correspondences generated as in the reference's tests/testPnPNode.py (random
                 pose, image points uniform in [-1, 1]^2 at depths U(1, 3), noise 0.01), uniform weights 1/100,
                 normalised coordinates (K = None), objective reproj
                 reference: PnP() in a DeclarativeLayer (OpenCV EPnP-RANSAC, then L-BFGS)
                 ddn:       ddn bench pnp --inputs FILE, the very same data

Each side reports the median over 5 timed runs (after a warm-up) of forward + backward; the reference runs in a
fresh Python process per round. Per workload and round it prints both medians and the ratio reference / ddn,
then the median over rounds. Quote 1-thread figures (the machine may be shared).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REFERENCE_TIMER = r'''
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_default_dtype(torch.float64)
torch.set_num_threads(int(sys.argv[2]))
workload = sys.argv[3]
g = torch.Generator().manual_seed(1)

def median_ms(fn, reps=5):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    ts.sort()
    return 1e3 * ts[len(ts) // 2]

if workload == "least_squares":
    from ddn.pytorch.leastsquares import WeightedLeastSquaresFcn
    B, T, C = 256, 512, 64
    A = torch.randn(B, C, T, generator=g)
    b = torch.randn(B, 1, T, generator=g)
    vx, vc = torch.randn(B, C, generator=g), torch.randn(B, 1, generator=g)
    def both():
        Ar, br = A.clone().requires_grad_(), b.clone().requires_grad_()
        x, c = WeightedLeastSquaresFcn.apply(Ar, br, None, 1e-3, False, True, "cholesky")
        ((x * vx).sum() + (c * vc).sum()).backward()
elif workload == "eigen":
    from ddn.pytorch.eigen_decomposition import EigenDecompositionFcn
    X = torch.randn(256, 32, 32, generator=g)
    V = torch.randn(256, 32, 4, generator=g)
    def both():
        Xr = X.clone().requires_grad_()
        (EigenDecompositionFcn.apply(Xr, 4) * V).sum().backward()
elif workload == "pnp":
    from ddn.pytorch.pnp_node import PnP
    from ddn.pytorch.node import DeclarativeLayer
    data = json.load(open(sys.argv[4]))["inputs"]
    p2d, p3d, w = (torch.tensor(data[k]) for k in ("p2d", "p3d", "w"))
    layer = DeclarativeLayer(PnP(objective_type="reproj"))
    v = torch.randn(p2d.shape[0], 6, generator=g)
    def both():
        a, b, c = (t.clone().requires_grad_() for t in (p2d, p3d, w))
        (layer(a, b, c, None) * v).sum().backward()
print(json.dumps({"ms": median_ms(both)}))
'''


def pnp_workload(path, b=64, n=100, noise=0.01, seed=1):
    """The data of the reference's tests/testPnPNode.py, b problems of n points, as a `ddn eval` request."""
    import torch
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(b, 6, generator=g)
    r = theta[:, :3]
    angle = r.norm(dim=1, keepdim=True)
    axis = r / angle
    K = torch.zeros(b, 3, 3)  # the cross-product matrix of the axis
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    K = K - K.transpose(1, 2)
    s, c = torch.sin(angle).view(b, 1, 1), torch.cos(angle).view(b, 1, 1)
    R = torch.eye(3).expand(b, 3, 3) + s * K + (1 - c) * (K @ K)
    t = theta[:, 3:]
    xy = 2.0 * torch.rand(b, n, 2, generator=g) - 1.0
    z = 2.0 * torch.rand(b, n, 1, generator=g) + 1.0
    cam = torch.cat((z * xy, z), dim=-1)
    p3d = torch.einsum('brs,bms->bmr', R.transpose(1, 2), cam - t.unsqueeze(1))
    p2d = xy + noise * torch.randn(b, n, 2, generator=g)
    w = torch.full((b, n), 1.0 / n)
    with open(path, "w") as f:
        json.dump({"node": "pnp", "inputs": {"p2d": p2d.tolist(), "p3d": p3d.tolist(), "w": w.tolist()}}, f)


def ddn_ms(ddn, args, threads):
    out = subprocess.run([ddn, "bench"] + args + ["--runs", "5", "--threads", str(threads)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"ddn bench {' '.join(args)}: {out.stderr.strip()}")
    runs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    totals = [r["forward_ms"] + r["backward_ms"] for r in runs if "forward_ms" in r]
    flagged = runs[-1].get("flagged_problems", 0)
    return statistics.median(totals), flagged


def reference_ms(root, workload, threads, data):
    out = subprocess.run([sys.executable, "-c", REFERENCE_TIMER, root, str(threads), workload, data or ""],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"reference {workload}: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-root", required=True, help="checkout of the reference library (anucvml/ddn)")
    ap.add_argument("--ddn", default="build/bin/ddn", help="the ddn binary (default build/bin/ddn)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["least_squares", "eigen", "pnp"])
    args = ap.parse_args()
    root = os.path.abspath(args.reference_root)
    if not os.path.isdir(os.path.join(root, "ddn", "pytorch")):
        sys.exit(f"side_by_side: {root} is not the reference library (no ddn/pytorch)")
    if not os.access(args.ddn, os.X_OK):
        sys.exit(f"side_by_side: no ddn binary at {args.ddn} (build first, or pass --ddn)")
    workloads = [("least_squares", ["least_squares", "--shape", "256,512,64"]),
                 ("eigen", ["eigen", "--shape", "256,32,32", "--param", "top_k=4"]),
                 ("pnp", None)]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "pnp_64x100.json")
        pnp_workload(data)
        workloads[2] = ("pnp", ["pnp", "--inputs", data])
        results = {}
        print(f"threads {args.threads}; ms = forward + backward of one batch, median of 5 runs; ratio = reference / ddn")
        for r in range(args.rounds):
            for name, bench_args in workloads:
                if args.only and name != args.only:
                    continue
                ref = reference_ms(root, name, args.threads, data if name == "pnp" else None)
                ours, flagged = ddn_ms(args.ddn, bench_args, args.threads)
                results.setdefault(name, []).append((ref, ours))
                print(f"round {r}  {name:14s} reference {ref:10.2f}  ddn {ours:9.2f}  {ref / ours:7.1f}x"
                      f"  (ddn flagged problems: {flagged})", flush=True)
        print("median over rounds:")
        for name, pairs in results.items():
            ref = statistics.median(p[0] for p in pairs)
            ours = statistics.median(p[1] for p in pairs)
            ratio = statistics.median(p[0] / p[1] for p in pairs)
            print(f"  {name:14s} reference {ref:10.2f}  ddn {ours:9.2f}  ratio {ratio:7.1f}x")


if __name__ == "__main__":
    main()
