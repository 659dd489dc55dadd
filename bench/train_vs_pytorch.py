#!/usr/bin/env python3
"""Training speed of ddn-pointcloud against the same network trained in PyTorch, side by side, 1 thread.

Both sides train the SAME computation: ddn-pointcloud --trace writes its training clouds, the initial parameters of
its network, and per epoch the learning rate, the order of the clouds and every step's loss; this script rebuilds
the network in PyTorch (float64, torch.set_num_threads(1)), loads those parameters, and replays the same batches
with the same Adam and learning rates. The runs alternate (ddn, then PyTorch, per round and per pooling) so that
both see the same load; the table gives per-epoch medians over all rounds, of wall time and of CPU time (CPU time
of the process: with one thread the time the work took, much less sensitive to other work on a shared machine).

PyTorch's poolings (--torch-huber):
  max        x.max(1) (gradient to the maximiser, as ddn's MaxOverPoints).
  reference  the reference library's RobustGlobalPool2d(Huber) (github.com/anucvml/ddn, ddn/pytorch/robustpool.py;
             --reference ROOT or $DDN_REFERENCE_ROOT): L-BFGS from the mean, gradient tolerance 1e-5, so its
             optimum is accurate to ~1e-7 only and its loss trajectory departs from ddn's at that level.
  exact      Huber pooling solved exactly in PyTorch (written here): from the median, the active set
             {n : |y − x_n| < α} is iterated, y = (Σ_inliers x_n − α·#below + α·#above) / #inliers, until it
             no longer changes, then checked (Σ ψ(y − x_n) = 0 to rounding); the gradient is the implicit one,
             dy/dx_n = [|y − x_n| < α] / #inliers, as the reference's Huber.Dy and ddn's robust_pool.
The check (first --check-steps steps of round 1) uses max or exact pooling and reports the largest difference of
the step losses between ddn and PyTorch; the timing uses every pooling asked for.

    python3 bench/train_vs_pytorch.py --ddn build/bin/ddn-pointcloud --reference REF_ROOT \\
        --pooling max,huber --torch-huber reference,exact --epochs 3 --rounds 3
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch


# ---- the network of apps/pointcloud/pointnet.h, in PyTorch -------------------------------------------------------

class MaxPool(torch.nn.Module):
    def forward(self, x):  # (B, N, F) → (B, F)
        return x.max(1)[0]


class ExactHuberFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):  # x (R, N) → y (R)
        y = x.median(dim=1).values  # the lower median, as ddn's start (any start works)
        previous = None
        for _ in range(100):
            z = y.unsqueeze(1) - x
            inside = z.abs() < alpha
            below, above = z >= alpha, z <= -alpha  # points left and right of the quadratic zone
            count = inside.sum(1)
            if bool((count == 0).any()):
                raise RuntimeError("exact huber pooling: a row has no point within alpha of its estimate")
            if previous is not None and torch.equal(inside, previous):
                break
            previous = inside
            y = ((x * inside).sum(1) - alpha * below.sum(1) + alpha * above.sum(1)) / count
        else:
            raise RuntimeError("exact huber pooling: the active set did not settle in 100 iterations")
        z = y.unsqueeze(1) - x
        g = z.clamp(-alpha, alpha).sum(1)
        if bool((g.abs() > 1e-9 * (alpha * x.shape[1])).any()):
            raise RuntimeError("exact huber pooling: the optimality residual is not near zero")
        ctx.save_for_backward((z.abs() < alpha).to(x.dtype))
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (inside,) = ctx.saved_tensors
        return inside / inside.sum(1, keepdim=True) * grad_y.unsqueeze(1), None


class ExactHuberPool(torch.nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        b, n, f = x.shape
        return ExactHuberFn.apply(x.transpose(1, 2).reshape(b * f, n), self.alpha).reshape(b, f)


class ReferenceHuberPool(torch.nn.Module):
    """The reference library's RobustGlobalPool2d with its Huber penalty (it pools the last two axes)."""

    def __init__(self, alpha, root):
        super().__init__()
        path = os.path.join(root or "", "ddn", "pytorch", "robustpool.py")
        if not root or not os.path.isfile(path):
            raise SystemExit("train_vs_pytorch.py: --torch-huber reference needs --reference ROOT "
                             "(or $DDN_REFERENCE_ROOT), a checkout of github.com/anucvml/ddn")
        spec = importlib.util.spec_from_file_location("reference_robustpool", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.pool = module.RobustGlobalPool2d(module.Huber, alpha=alpha)

    def forward(self, x):
        return self.pool(x.transpose(1, 2).unsqueeze(-1))


class PointNet(torch.nn.Module):
    """conv Linear → BN → ReLU ... → conv Linear → BN → pool → [Linear → BN → ReLU] → Linear, named as ddn's graph."""

    def __init__(self, setting, pool):
        super().__init__()
        f64 = torch.float64
        self.convs, self.conv_bns, self.fcs, self.fc_bns = (torch.nn.ModuleList() for _ in range(4))
        width = 2
        for w in setting["point_widths"]:
            self.convs.append(torch.nn.Linear(width, w, dtype=f64))
            self.conv_bns.append(torch.nn.BatchNorm1d(w, eps=1e-5, momentum=0.1, dtype=f64))
            width = w
        self.pool = pool
        for w in setting["head_widths"]:
            self.fcs.append(torch.nn.Linear(width, w, dtype=f64))
            self.fc_bns.append(torch.nn.BatchNorm1d(w, eps=1e-5, momentum=0.1, dtype=f64))
            width = w
        self.logits = torch.nn.Linear(width, setting["num_classes"], dtype=f64)

    def forward(self, points):
        b, n, _ = points.shape
        h = points.reshape(b * n, -1)  # per-point layers on the (B·N, F) matrix, as ddn's "last axis" ops
        for k, (conv, bn) in enumerate(zip(self.convs, self.conv_bns)):
            h = bn(conv(h))
            if k + 1 < len(self.convs):
                h = torch.relu(h)
        h = self.pool(h.reshape(b, n, -1))
        for fc, bn in zip(self.fcs, self.fc_bns):
            h = torch.relu(bn(fc(h)))
        return self.logits(h)

    def load_ddn(self, params):
        """ddn's parameters by name: Linear weights are (in, out) there, (out, in) here."""
        def t(name):
            p = params[name]
            return torch.tensor(p["values"], dtype=torch.float64).reshape(p["shape"])

        with torch.no_grad():
            layers = [(f"conv{k + 1}", l, bn) for k, (l, bn) in enumerate(zip(self.convs, self.conv_bns))]
            layers += [(f"fc{k + 1}", l, bn) for k, (l, bn) in enumerate(zip(self.fcs, self.fc_bns))]
            layers += [("logits", self.logits, None)]
            for name, linear, bn in layers:
                linear.weight.copy_(t(name + ".weight").T)
                linear.bias.copy_(t(name + ".bias"))
                if bn is not None:
                    bn.weight.copy_(t(name + ".bn.gamma"))
                    bn.bias.copy_(t(name + ".bn.beta"))
                    bn.running_mean.copy_(t(name + ".bn.running_mean"))
                    bn.running_var.copy_(t(name + ".bn.running_var"))


def make_pool(kind, alpha, reference):
    if kind == "max":
        return MaxPool()
    if kind == "exact":
        return ExactHuberPool(alpha)
    return ReferenceHuberPool(alpha, reference)


def train_torch(trace, run, pool_kind, alpha, reference, epochs=None, steps=None):
    """Replays ddn's run in PyTorch. Returns (per-epoch wall seconds, per-epoch CPU seconds, step losses)."""
    setting = trace["setting"]
    x = torch.tensor(trace["train_points"]["values"], dtype=torch.float64).reshape(trace["train_points"]["shape"])
    y = torch.tensor(trace["train_labels"], dtype=torch.long)
    model = PointNet(setting, make_pool(pool_kind, alpha, reference))
    model.load_ddn(run["initial_parameters"])
    model.train()
    adam = torch.optim.Adam(model.parameters(), lr=setting["learning_rate"], betas=(0.9, 0.999), eps=1e-8)
    batch = setting["batch_size"]
    walls, cpus, losses = [], [], []
    for epoch in run["epochs"][:epochs]:
        for group in adam.param_groups:
            group["lr"] = epoch["learning_rate"]
        order = torch.tensor(epoch["order"], dtype=torch.long)
        t0, c0 = time.perf_counter(), time.process_time()
        for begin in range(0, len(order), batch):
            index = order[begin:begin + batch]
            if len(index) < 2:  # batch norm needs two rows (ddn skips such a batch too)
                continue
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            adam.zero_grad()
            loss.backward()
            adam.step()
            if steps is not None:
                losses.append(loss.item())
                if len(losses) >= steps:
                    return walls, cpus, losses
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus, losses


def run_ddn(args, pooling, path):
    command = [args.ddn, "--threads", "1", "--pooling", pooling, "--epochs", str(args.epochs), "--outliers", "0",
               "--plot", "", "--test-per-class", str(args.test_per_class), "--seed", str(args.seed), "--trace", path]
    if args.train_per_class:
        command += ["--train-per-class", str(args.train_per_class)]
    if args.data:
        command += ["--data", args.data]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ddn", default="build/bin/ddn-pointcloud", help="the ddn-pointcloud executable")
    p.add_argument("--pooling", default="max,huber", help="comma-separated: max, huber")
    p.add_argument("--torch-huber", default="reference,exact",
                   help="PyTorch's Huber pooling(s) to time: reference, exact (see above)")
    p.add_argument("--reference", default=os.environ.get("DDN_REFERENCE_ROOT"),
                   help="checkout of the reference library (default $DDN_REFERENCE_ROOT)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--train-per-class", type=int, default=0, help="training clouds per class (default: all, 400)")
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", help="OpenCV's digits.png (default: ddn-pointcloud's search)")
    p.add_argument("--check-steps", type=int, default=20, help="steps whose losses are compared (round 1)")
    p.add_argument("--json", help="also write the measurements to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    poolings = [s for s in args.pooling.split(",") if s]
    torch_huber = [s for s in args.torch_huber.split(",") if s]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for pooling in poolings:
            kinds = ["max"] if pooling == "max" else torch_huber
            times = {"ddn": ([], [])}
            times.update({f"torch/{k}": ([], []) for k in kinds})
            check = None
            for r in range(args.rounds):
                trace = run_ddn(args, pooling, os.path.join(folder, "trace.json"))
                run = trace["runs"][0]
                times["ddn"][0].extend(e["seconds"] for e in run["epochs"])
                times["ddn"][1].extend(e["cpu_seconds"] for e in run["epochs"])
                alpha = trace["setting"]["alpha"]
                if r == 0:
                    ddn_losses = [l for e in run["epochs"] for l in e["losses"]][:args.check_steps]
                    kind = "max" if pooling == "max" else "exact"
                    _, _, torch_losses = train_torch(trace, run, kind, alpha, args.reference, steps=len(ddn_losses))
                    diffs = [abs(a - b) for a, b in zip(ddn_losses, torch_losses)]
                    check = {"pytorch_pooling": kind, "steps": len(diffs), "max_abs_loss_difference": max(diffs),
                             "first_losses": ddn_losses[:3]}
                    print(f"{pooling}: step losses ddn vs PyTorch ({kind} pooling), {len(diffs)} steps: largest "
                          f"difference {max(diffs):.2e}", file=sys.stderr, flush=True)
                for kind in kinds:
                    wall, cpu, _ = train_torch(trace, run, kind, alpha, args.reference)
                    times[f"torch/{kind}"][0].extend(wall)
                    times[f"torch/{kind}"][1].extend(cpu)
                print(f"{pooling} round {r + 1}/{args.rounds}: " + ", ".join(
                    f"{k} {np.median(v[0]):.3f} s" for k, v in times.items()), file=sys.stderr, flush=True)
            results[pooling] = {"check": check, "epochs": len(run["epochs"]),
                                "clouds": len(trace["train_labels"]),
                                "median_seconds": {k: float(np.median(v[0])) for k, v in times.items()},
                                "median_cpu_seconds": {k: float(np.median(v[1])) for k, v in times.items()},
                                "seconds": {k: v[0] for k, v in times.items()},
                                "cpu_seconds": {k: v[1] for k, v in times.items()}}
    print(f"per-epoch medians over {args.rounds} rounds x {args.epochs} epochs, 1 thread, float64 "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'pooling':8s} {'PyTorch pooling':16s} {'ddn s':>8s} {'PyTorch s':>10s} {'ratio':>6s}   "
          f"{'ddn cpu':>8s} {'PyTorch cpu':>11s} {'ratio':>6s}")
    for pooling, r in results.items():
        for k in r["median_seconds"]:
            if k == "ddn":
                continue
            dw, tw = r["median_seconds"]["ddn"], r["median_seconds"][k]
            dc, tc = r["median_cpu_seconds"]["ddn"], r["median_cpu_seconds"][k]
            print(f"{pooling:8s} {k[6:]:16s} {dw:8.3f} {tw:10.3f} {tw / dw:6.2f}   {dc:8.3f} {tc:11.3f} {tc / dc:6.2f}")
        c = r["check"]
        print(f"{pooling:8s} check: {c['steps']} steps, largest loss difference vs PyTorch ({c['pytorch_pooling']}) "
              f"{c['max_abs_loss_difference']:.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
