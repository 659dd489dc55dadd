#!/usr/bin/env python3
"""The robust point-cloud classifier of `ddn-pointcloud` (apps/pointcloud), written in PyTorch with
ddn.Node("robust_pool") as its global pooling; optionally side by side with the reference library's pooling,
and optionally trained by several processes with torch.distributed (DistributedDataParallel, gloo backend).

The DDN paper's robust-pooling experiment (Gould, Hartley & Campbell, TPAMI 2022, §6.1): a PointNet without its
alignment networks, whose max pooling over points is replaced by robust pooling, y_f = argmin_y Σ_n φ(y − x_nf; α)
per feature channel f; trained on clean clouds, tested with outliers. The clouds come from OpenCV's handwritten
digits (digits.png, Debian package opencv-doc) as in apps/pointcloud: ink pixels, centred, scaled into the unit
disc, N points sampled; outliers replace points by uniform points in the disc. --synthetic K uses K random
blob clouds per class instead (no data file: smoke tests).

    python3 pointcloud.py --pooling huber --epochs 8                      # train and test, ddn's pooling
    python3 pointcloud.py --pooling huber --impl both --reference ROOT    # per-epoch time, ddn vs the reference
    python3 pointcloud.py --pooling huber --ddp 2                         # two processes, DDP over gloo

--impl both trains two identical models (same initial weights, same batches) whose only difference is the
pooling layer, alternating their epochs, and prints each epoch's training time (forward, backward and step
over the whole training set) and the final accuracies. --threads sets PyTorch's threads and ddn's threads alike
(default 1, the setting the README's table uses).

The model and the DDP worker are also imported by python/tests/test_ddp.py.
"""
import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ddn

PENALTIES = ["quadratic", "pseudo_huber", "huber", "welsch", "truncated_quadratic", "cauchy", "geman_mcclure"]
# The reference library's penalty classes (it has the first five).
REFERENCE_PENALTIES = {"quadratic": "Quadratic", "pseudo_huber": "PseudoHuber", "huber": "Huber",
                       "welsch": "Welsch", "truncated_quadratic": "TruncatedQuadratic"}


# ---- data ------------------------------------------------------------------------------------------------------

def find_digits(hint=None):
    """OpenCV's digits.png: --data, $DDN_DIGITS, $OPENCV_SAMPLES_DATA_PATH or Debian's opencv-doc folder."""
    candidates = [hint] if hint else []
    for env in ("DDN_DIGITS", "OPENCV_SAMPLES_DATA_PATH"):
        if os.environ.get(env):
            candidates.append(os.environ[env])
    candidates += ["/usr/share/doc/opencv-doc/examples/data", "/usr/share/opencv4/samples/data"]
    for c in candidates:
        path = os.path.join(c, "digits.png") if os.path.isdir(c) else c
        if os.path.isfile(path):
            return path
    raise SystemExit("pointcloud.py: OpenCV's digits.png not found (install Debian's opencv-doc or pass --data)")


def load_digits(path):
    """5000 grey 20×20 digit images (uint8) and their labels 0–9 (50 rows × 100 columns of cells)."""
    import cv2  # Debian's python3-opencv; only needed for the real data
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None or image.shape != (1000, 2000):
        raise SystemExit(f"pointcloud.py: {path} is not OpenCV's 2000x1000 digits.png")
    cells = image.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
    labels = np.repeat(np.arange(10), 500)
    return cells, labels


def clouds_from_images(images, points, seed, threshold=128):
    """(M, N, 2) clouds: ink pixel (r, c) → (c + ½, −(r + ½)), centred on the ink's mean, scaled so that the
    farthest ink point is at distance 1; N points sampled (without replacement when there are enough)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(images), points, 2))
    for m, image in enumerate(images):
        rows, cols = np.nonzero(image >= threshold)
        xy = np.stack([cols + 0.5, -(rows + 0.5)], axis=1)
        xy -= xy.mean(0)
        xy /= max(np.sqrt((xy ** 2).sum(1)).max(), 1e-12)
        pick = rng.choice(len(xy), points, replace=len(xy) < points)
        out[m] = xy[pick]
    return out


def synthetic_clouds(per_class, points, seed, classes=10):
    """Clouds of `classes` kinds without a data file: class k is a blob at angle 2πk/classes, radius 0.5."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    centres = 0.5 * np.stack([np.cos(2 * np.pi * labels / classes), np.sin(2 * np.pi * labels / classes)], 1)
    clouds = centres[:, None, :] + 0.25 * rng.standard_normal((len(labels), points, 2))
    return clouds, labels


def add_outliers(clouds, fraction, seed):
    """round(fraction · N) points of every cloud replaced by points uniform in the unit disc."""
    clouds = clouds.copy()
    m, n, _ = clouds.shape
    count = int(round(fraction * n))
    rng = np.random.default_rng(seed)
    for i in range(m):
        which = rng.choice(n, count, replace=False)
        r, angle = np.sqrt(rng.random(count)), 2 * np.pi * rng.random(count)
        clouds[i, which] = np.stack([r * np.cos(angle), r * np.sin(angle)], 1)
    return clouds


def split(labels, test_per_class, seed):
    """A stratified split: `test_per_class` of each class for testing, the rest for training."""
    order = np.random.default_rng(seed).permutation(len(labels))
    taken, train, test = {}, [], []
    for i in order:
        k = int(labels[i])
        if taken.get(k, 0) < test_per_class:
            taken[k] = taken.get(k, 0) + 1
            test.append(i)
        else:
            train.append(i)
    return np.array(train), np.array(test)


# ---- the model -------------------------------------------------------------------------------------------------

class RobustPool(torch.nn.Module):
    """(B, N, F) → (B, F): ddn's robust_pool over the N points of each feature channel."""

    def __init__(self, penalty, alpha, threads):
        super().__init__()
        self.node = ddn.Node("robust_pool", penalty=penalty, alpha=alpha, threads=threads)

    def forward(self, x):
        b, n, f = x.shape
        return self.node(x.transpose(1, 2).reshape(b * f, n)).reshape(b, f)


class ReferenceRobustPool(torch.nn.Module):
    """(B, N, F) → (B, F) with the reference library's RobustGlobalPool2d (it pools the last two axes)."""

    def __init__(self, penalty, alpha, root):
        super().__init__()
        module = load_reference(root)
        self.pool = module.RobustGlobalPool2d(getattr(module, REFERENCE_PENALTIES[penalty]), alpha=alpha)

    def forward(self, x):
        return self.pool(x.transpose(1, 2).unsqueeze(-1))


class MaxPool(torch.nn.Module):
    def forward(self, x):
        return x.max(1)[0]


class MeanPool(torch.nn.Module):
    def forward(self, x):
        return x.mean(1)


def load_reference(root):
    """The reference library's robustpool.py, by file path (its package is also called `ddn`)."""
    path = os.path.join(root or "", "ddn", "pytorch", "robustpool.py")
    if not root or not os.path.isfile(path):
        raise SystemExit("pointcloud.py: --impl reference needs --reference ROOT (or $DDN_REFERENCE_ROOT), a checkout"
                         " of github.com/anucvml/ddn")
    spec = importlib.util.spec_from_file_location("reference_robustpool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_pool(pooling, impl, alpha=1.0, threads=1, reference=None):
    if pooling == "max":
        return MaxPool()
    if pooling == "mean":
        return MeanPool()
    if impl == "reference":
        return ReferenceRobustPool(pooling, alpha, reference)
    return RobustPool(pooling, alpha, threads)


class PointNet(torch.nn.Module):
    """points (B, N, 2) → [shared Linear → BatchNorm → ReLU] per point → shared Linear → BatchNorm → pooling over
    points → [Linear → BatchNorm → ReLU] → Linear → logits, as apps/pointcloud/pointnet.h. batch_norm=False drops
    the BatchNorms (the distributed-gradient test needs per-sample independence)."""

    def __init__(self, pool, point_widths=(32, 64), head_widths=(64,), classes=10, batch_norm=True,
                 dtype=torch.float32):
        super().__init__()
        layers, width = [], 2
        for i, w in enumerate(point_widths):
            layers.append(torch.nn.Linear(width, w, dtype=dtype))
            if batch_norm:
                layers.append(PointBatchNorm(w, dtype))
            if i + 1 < len(point_widths):
                layers.append(torch.nn.ReLU())
            width = w
        self.points = torch.nn.Sequential(*layers)
        self.pool = pool
        head = []
        for w in head_widths:
            head += [torch.nn.Linear(width, w, dtype=dtype)]
            head += [torch.nn.BatchNorm1d(w, dtype=dtype)] if batch_norm else []
            head += [torch.nn.ReLU()]
            width = w
        head.append(torch.nn.Linear(width, classes, dtype=dtype))
        self.head = torch.nn.Sequential(*head)

    def forward(self, points):
        return self.head(self.pool(self.points(points)))


class PointBatchNorm(torch.nn.Module):
    """BatchNorm over the batch and the points of (B, N, F) features."""

    def __init__(self, width, dtype):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(width, dtype=dtype)

    def forward(self, x):
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


# ---- training --------------------------------------------------------------------------------------------------

def train_epoch(model, optimiser, clouds, labels, batch_size, order):
    """One pass over the training set in the given order; returns its wall time in seconds."""
    model.train()
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        index = order[i:i + batch_size]
        if len(index) < 2:  # BatchNorm needs two samples
            continue
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(clouds[index]), labels[index])
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start


@torch.no_grad()
def accuracy(model, clouds, labels, batch_size=256):
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch_size):
        correct += (model(clouds[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
    return correct / len(labels)


def cosine(optimiser, epochs, steps_per_epoch):
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / max(epochs * steps_per_epoch, 1), 1))))


def prepare_data(args):
    if args.synthetic:
        clouds, labels = synthetic_clouds(args.synthetic, args.points, args.seed)
        source = f"synthetic blobs ({args.synthetic} per class)"
    else:
        path = find_digits(args.data)
        images, labels = load_digits(path)
        clouds = clouds_from_images(images, args.points, args.seed)
        source = path
    train, test = split(labels, args.test_per_class, args.seed)
    if args.train_per_class:
        keep, taken = [], {}
        for i in train:
            k = int(labels[i])
            if taken.get(k, 0) < args.train_per_class:
                taken[k] = taken.get(k, 0) + 1
                keep.append(i)
        train = np.array(keep)
    return clouds, labels, train, test, source


def evaluate(model, clouds, labels, test, outliers, seed, dtype):
    out = {}
    for fraction in outliers:
        noisy = torch.as_tensor(add_outliers(clouds[test], fraction, seed + 1), dtype=dtype)
        out[fraction] = accuracy(model, noisy, torch.as_tensor(labels[test]))
    return out


def run_single(args):
    """Trains one model per implementation (alternating their epochs), prints times and accuracies."""
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    clouds, labels, train, test, source = prepare_data(args)
    impls = ["ddn", "reference"] if args.impl == "both" else [args.impl]
    x = torch.as_tensor(clouds[train], dtype=dtype)
    y = torch.as_tensor(labels[train])
    models, optimisers, schedules = {}, {}, {}
    steps = math.ceil(len(train) / args.batch_size)
    for impl in impls:
        torch.manual_seed(args.seed)  # the same initial weights for every implementation
        models[impl] = PointNet(make_pool(args.pooling, impl, args.alpha, args.threads, args.reference), dtype=dtype)
        optimisers[impl] = torch.optim.Adam(models[impl].parameters(), lr=args.lr)
        schedules[impl] = cosine(optimisers[impl], args.epochs, steps)
    log = sys.stderr
    print(f"{source}: {len(train)} training and {len(test)} test clouds of {args.points} points; pooling "
          f"{args.pooling}, {args.dtype}, {args.threads} thread(s)", file=log)
    times = {impl: [] for impl in impls}
    for epoch in range(args.epochs):
        order = np.random.default_rng(args.seed + 100 + epoch).permutation(len(train))
        for impl in impls:
            # The scheduler steps per batch: wrap the optimiser's step.
            optimiser, schedule = optimisers[impl], schedules[impl]
            seconds = train_epoch(models[impl], StepWithSchedule(optimiser, schedule), x, y, args.batch_size, order)
            times[impl].append(seconds)
            print(f"epoch {epoch + 1}/{args.epochs} {impl:9s} {seconds:8.2f} s", file=log, flush=True)
    results = {"source": source, "pooling": args.pooling, "alpha": args.alpha, "threads": args.threads,
               "dtype": args.dtype, "train": len(train), "test": len(test), "points": args.points,
               "batch_size": args.batch_size, "epochs": args.epochs, "impls": {}}
    for impl in impls:
        acc = evaluate(models[impl], clouds, labels, test, args.outliers, args.seed, dtype)
        results["impls"][impl] = {"epoch_seconds": times[impl], "median_epoch_seconds": float(np.median(times[impl])),
                                  "accuracy": {str(k): v for k, v in acc.items()}}
    if args.json:
        print(json.dumps(results))
    else:
        print("implementation  median epoch s  " + "  ".join(f"acc@{f:g}" for f in args.outliers))
        for impl, r in results["impls"].items():
            print(f"{impl:14s}  {r['median_epoch_seconds']:14.2f}  " +
                  "  ".join(f"{100 * v:6.1f}" for v in r["accuracy"].values()))
    return results


class StepWithSchedule:
    """An optimiser whose step also advances a per-batch learning-rate schedule."""

    def __init__(self, optimiser, schedule):
        self.optimiser, self.schedule = optimiser, schedule

    def zero_grad(self):
        self.optimiser.zero_grad()

    def step(self):
        self.optimiser.step()
        self.schedule.step()


# ---- torch.distributed -----------------------------------------------------------------------------------------

def init_distributed(rank, world_size, rendezvous):
    """gloo over a rendezvous file (no port to choose); one ddn and one PyTorch thread per process."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + rendezvous, rank=rank, world_size=world_size)


def ddp_train_worker(rank, world_size, rendezvous, args, queue):
    """One process of a DDP training run: a shard of every batch (DistributedSampler), gradients averaged by
    DDP's all-reduce. Rank 0 reports the epoch times and the accuracies."""
    init_distributed(rank, world_size, rendezvous)
    dtype = getattr(torch, args.dtype)
    clouds, labels, train, test, source = prepare_data(args)
    x = torch.as_tensor(clouds[train], dtype=dtype)
    y = torch.as_tensor(labels[train])
    torch.manual_seed(args.seed)
    model = torch.nn.parallel.DistributedDataParallel(
        PointNet(make_pool(args.pooling, "ddn", args.alpha, 1), dtype=dtype))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    per_rank_batch = max(args.batch_size // world_size, 2)
    sampler = torch.utils.data.DistributedSampler(range(len(train)), num_replicas=world_size, rank=rank,
                                                  shuffle=True, seed=args.seed)
    steps = math.ceil(len(sampler) / per_rank_batch)
    step = StepWithSchedule(optimiser, cosine(optimiser, args.epochs, steps))
    times = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        order = np.array(list(sampler))
        dist.barrier()
        times.append(train_epoch(model, step, x, y, per_rank_batch, order))
        if rank == 0:
            print(f"epoch {epoch + 1}/{args.epochs} ddp x{world_size} {times[-1]:8.2f} s", file=sys.stderr, flush=True)
    if rank == 0:
        acc = evaluate(model.module, clouds, labels, test, args.outliers, args.seed, dtype)
        queue.put({"source": source, "world_size": world_size, "epoch_seconds": times,
                   "accuracy": {str(k): v for k, v in acc.items()}})
    dist.destroy_process_group()


def run_ddp(args):
    with tempfile.TemporaryDirectory() as folder:
        queue = mp.get_context("spawn").SimpleQueue()
        mp.spawn(ddp_train_worker, args=(args.ddp, os.path.join(folder, "rendezvous"), args, queue),
                 nprocs=args.ddp, join=True)
        result = queue.get()
    print(json.dumps(result) if args.json else
          f"DDP x{result['world_size']}: median epoch {np.median(result['epoch_seconds']):.2f} s, accuracy " +
          ", ".join(f"{100 * v:.1f}% at {k}" for k, v in result["accuracy"].items()))
    return result


# ---- the distributed-gradient check (python/tests/test_ddp.py) ---------------------------------------------------

def gradient_model(seed):
    """A small PointNet without BatchNorm (whose batch statistics would couple the samples) and with robust
    pooling, in float64."""
    torch.manual_seed(seed)
    return PointNet(RobustPool("huber", 1.0, 1), point_widths=(8, 16), head_widths=(8,), batch_norm=False,
                    dtype=torch.float64)


def gradient_batch(size, points, seed):
    clouds, labels = synthetic_clouds(1, points, seed, classes=size)
    return torch.as_tensor(add_outliers(clouds, 0.2, seed)), torch.as_tensor(labels % 10)


def single_process_gradients(size, points, seed):
    """Parameter gradients of the mean loss over the whole batch, in this process."""
    model = gradient_model(seed)
    x, y = gradient_batch(size, points, seed)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def ddp_gradient_worker(rank, world_size, rendezvous, size, points, seed, folder):
    """Rank r takes the r-th contiguous shard of the batch; DDP averages the shards' gradients. Every rank saves
    what it ends up with."""
    init_distributed(rank, world_size, rendezvous)
    model = torch.nn.parallel.DistributedDataParallel(gradient_model(seed))
    x, y = gradient_batch(size, points, seed)
    shard = slice(rank * size // world_size, (rank + 1) * size // world_size)
    torch.nn.functional.cross_entropy(model(x[shard]), y[shard]).backward()
    torch.save([p.grad.clone() for p in model.parameters()], os.path.join(folder, f"grads{rank}.pt"))
    dist.destroy_process_group()


def distributed_gradients(world_size, size, points, seed):
    """The gradients each of `world_size` DDP processes ends up with, when each gets an equal shard."""
    assert size % world_size == 0
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(ddp_gradient_worker, args=(world_size, os.path.join(folder, "rendezvous"), size, points, seed, folder),
                 nprocs=world_size, join=True)
        return [torch.load(os.path.join(folder, f"grads{r}.pt")) for r in range(world_size)]


# ---- command line ------------------------------------------------------------------------------------------------

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="OpenCV's digits.png or its folder (default: search, see find_digits)")
    p.add_argument("--synthetic", type=int, default=0, help="K synthetic blob clouds per class instead of the digits")
    p.add_argument("--pooling", default="huber", choices=["max", "mean"] + PENALTIES)
    p.add_argument("--alpha", type=float, default=1.0, help="α of the robust penalty")
    p.add_argument("--impl", default="ddn", choices=["ddn", "reference", "both"],
                   help="whose robust pooling: ddn's, the reference library's, or both side by side")
    p.add_argument("--reference", default=os.environ.get("DDN_REFERENCE_ROOT"),
                   help="checkout of the reference library (default $DDN_REFERENCE_ROOT)")
    p.add_argument("--points", type=int, default=64)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.002, help="Adam's learning rate, cosine schedule")
    p.add_argument("--train-per-class", type=int, default=0, help="at most this many training clouds per class")
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--outliers", type=lambda s: [float(v) for v in s.split(",")], default=[0, 0.1, 0.2, 0.5],
                   help="test-time outlier fractions, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="PyTorch's and ddn's threads")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--ddp", type=int, default=0, help="train with this many DDP processes (gloo)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if args.impl != "ddn" and args.pooling in ("max", "mean"):
        p.error("--impl reference/both compares robust pooling: choose a penalty with --pooling")
    if args.impl != "ddn" and args.pooling not in REFERENCE_PENALTIES:
        p.error(f"the reference library has no {args.pooling} penalty")
    if args.impl != "ddn" and args.ddp:
        p.error("--ddp trains with ddn's pooling only")
    return args


def main(argv=None):
    args = parse(argv)
    if args.impl != "ddn":
        load_reference(args.reference)  # fail early
    return run_ddp(args) if args.ddp else run_single(args)


if __name__ == "__main__":
    main()
