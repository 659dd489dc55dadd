#!/usr/bin/env python3
"""Default thread count against one thread, with and without other work on the machine.

    bench/threads_under_load.py [--build build] [--load 2] [--rounds 3] [--only robust_pool,...] [--no-idle]

For every standard batched workload (`ddn bench`, forward + backward of one batch) and for a short training
run of the point-cloud classifier (max and huber pooling), times `--threads 1` and the default (`--threads 0`,
all cores), alternating the two, first with `--load` busy processes that this script starts and stops
itself (a shared machine: other users' work), then without them (skip with --no-idle). Prints one line per
workload and condition: the medians and the ratio default / one thread (below 1: the default is faster).

What the numbers mean: under load, the default should never be much slower than one thread (threads that
sleep when idle and take work dynamically degrade to the speed of the threads that run); on an idle machine
with several cores, the default should be faster.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BENCH = [
    ("robust_pool", ["--param", "penalty=pseudo_huber"], "1024,1024"),
    ("robust_pool", ["--param", "penalty=huber"], "1024,1024"),
    ("robust_pool", ["--param", "penalty=welsch"], "1024,1024"),
    ("robust_pool", ["--param", "penalty=truncated_quadratic"], "1024,1024"),
    ("robust_vector_pool", ["--param", "penalty=pseudo_huber"], "64,256,8"),
    ("robust_vector_pool", ["--param", "penalty=welsch"], "64,256,8"),
    ("project", ["--param", "shape=l1_ball"], "1024,1024"),
    ("project", ["--param", "shape=l2_ball"], "1024,1024"),
    ("project", ["--param", "shape=simplex"], "1024,1024"),
]
TRAIN = ["--epochs", "2", "--train-per-class", "100", "--test-per-class", "20", "--outliers", "0", "--plot", "",
         "--json"]


def bench_ms(build, node, params, shape, threads, used):
    # 15 runs per call: under load a run of a few milliseconds is often cut by a time slice of the busy
    # processes (several ms), so the median of fewer runs is mostly the scheduler's noise.
    cmd = [os.path.join(build, "bin", "ddn"), "bench", node, *params, "--shape", shape, "--runs", "15",
           "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    last = json.loads(out[-1])
    used.append(last["threads"])
    return last["median_forward_ms"] + last["median_backward_ms"]


def train_ms(build, pooling, threads, used):
    cmd = [os.path.join(build, "bin", "ddn-pointcloud"), "--pooling", pooling, "--threads", str(threads), *TRAIN]
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    return 1e3 * (time.perf_counter() - start)


def start_load(n):
    # Busy processes: an endless loop each, like other users' compute-bound work.
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_load(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--load", type=int, default=2, help="busy processes during the loaded measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated workload names (node names or 'train')")
    ap.add_argument("--no-idle", action="store_true", help="skip the measurement without load")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    work = []
    for node, params, shape in BENCH:
        if not only or node in only:
            work.append((f"{node} {' '.join(params[1::2])} ({shape})",
                         lambda t, u, n=node, p=params, s=shape: bench_ms(args.build, n, p, s, t, u)))
    for pooling in ("max", "huber"):
        if not only or "train" in only:
            work.append((f"train pointcloud {pooling}", lambda t, u, p=pooling: train_ms(args.build, p, t, u)))
    conditions = [("load", args.load)] + ([] if args.no_idle else [("idle", 0)])
    print(f"cores {os.cpu_count()}; ms of forward + backward (training: whole run), medians of {args.rounds} "
          "alternating rounds; ratio = default / one thread")
    for cond, n in conditions:
        procs = start_load(n)
        try:
            for name, fn in work:
                one, default, used = [], [], []
                for _ in range(args.rounds):
                    one.append(fn(1, []))
                    default.append(fn(0, used))
                m1, m0 = statistics.median(one), statistics.median(default)
                # The thread counts the default resolved to (ddn bench reports it; training does not).
                chose = "/".join(str(u) for u in used) if used else "-"
                print(f"{cond:5s} {name:45s} 1 thread {m1:9.2f}  default {m0:9.2f}  ratio {m0 / m1:5.2f}"
                      f"  default used {chose} threads", flush=True)
        finally:
            stop_load(procs)


if __name__ == "__main__":
    main()
