#!/usr/bin/env python3
"""What robust_vector_pool's data-point starts buy: the objective reached with point_starts=0 (the median and the
mean only, the reference library's two starts) against other settings (default 4), on random clustered problems.

Each request is a batch of 16 problems: 2-5 Gaussian clusters (centres N(0, 2²) per coordinate, spreads 0.1-1,
random sizes) and 20 % uniform outliers in [-6, 6]^D, with D in {2, 3, 8}, N in {16, 64, 256, 300}; welsch, cauchy
and geman_mcclure at alpha 0.25, 0.5 and 1. Both settings run through `ddn eval` (1 thread); f is evaluated here in
double from the returned y. Prints, per setting against the first, how many problems reach a lower / equal / higher
objective (relative tolerance 1e-9) and the largest relative gap.

    python3 bench/vector_starts_quality.py --ddn build/bin/ddn --seeds 8 --point-starts 0,4
"""
import argparse
import json
import math
import os
import random
import subprocess
import tempfile


def clustered(rng, n, d):
    k = rng.choice([2, 3, 4, 5])
    centres = [[rng.gauss(0, 2) for _ in range(d)] for _ in range(k)]
    spreads = [rng.choice([0.1, 0.3, 0.5, 1.0]) for _ in range(k)]
    sizes = [rng.random() for _ in range(k)]
    points = []
    for _ in range(n):
        if rng.random() < 0.2:
            points.append([rng.uniform(-6, 6) for _ in range(d)])
        else:
            c = rng.choices(range(k), weights=sizes)[0]
            points.append([centres[c][j] + rng.gauss(0, spreads[c]) for j in range(d)])
    return points


def phi(penalty, alpha, z2):
    a2 = alpha * alpha
    if penalty == "welsch":
        return 1 - math.exp(-z2 / (2 * a2))
    if penalty == "cauchy":
        return 0.5 * a2 * math.log1p(z2 / a2)
    return 0.5 * a2 * z2 / (a2 + z2)  # geman_mcclure up to a constant factor: the comparison is unchanged


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ddn", default="build/bin/ddn")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--point-starts", default="0,4", help="settings to compare; the first is the baseline")
    args = ap.parse_args()
    settings = [int(s) for s in args.point_starts.split(",")]
    counts = {s: [0, 0, 0, 0.0] for s in settings[1:]}  # lower, equal, higher, largest relative gain
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            rng = random.Random(seed)
            for penalty in ["welsch", "cauchy", "geman_mcclure"]:
                for alpha in [0.25, 0.5, 1.0]:
                    d, n = rng.choice([2, 3, 8]), rng.choice([16, 64, 256, 300])
                    x = [clustered(rng, n, d) for _ in range(16)]
                    f = {}
                    for s in settings:
                        path = os.path.join(tmp, "request.json")
                        with open(path, "w") as out:
                            json.dump({"node": "robust_vector_pool", "inputs": {"x": x},
                                       "params": {"penalty": penalty, "alpha": alpha, "point_starts": s}}, out)
                        run = subprocess.run([args.ddn, "eval", path, "--threads", "1"], capture_output=True,
                                             text=True, check=True)
                        ys = json.loads(run.stdout)["outputs"]["y"]
                        f[s] = [sum(phi(penalty, alpha, sum((a - b) ** 2 for a, b in zip(y, p))) for p in pts)
                                for y, pts in zip(ys, x)]
                    for b in range(len(x)):
                        total += 1
                        base = f[settings[0]][b]
                        for s in settings[1:]:
                            gap = (base - f[s][b]) / abs(base)
                            c = counts[s]
                            if gap > 1e-9:
                                c[0] += 1
                                c[3] = max(c[3], gap)
                            elif gap < -1e-9:
                                c[2] += 1
                            else:
                                c[1] += 1
    print(f"{total} problems; baseline point_starts={settings[0]}")
    for s, (lower, equal, higher, gain) in counts.items():
        print(f"point_starts={s}: lower objective on {lower} ({100 * lower / total:.1f} %, by up to {100 * gain:.1f} %"
              f" of the baseline's), equal on {equal}, higher on {higher}")


if __name__ == "__main__":
    main()
