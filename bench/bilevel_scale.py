#!/usr/bin/env python3
"""Writes a large CSV pair for timing `ddn-bilevel robust-regression` at scale (issue 18, "Scale").

    python3 bench/bilevel_scale.py --rows 1000000 --features 10 --out /tmp/scale
    /usr/bin/time -v build/bin/ddn-bilevel robust-regression --train /tmp/scale_train.csv \
        --val /tmp/scale_val.csv --target y --quiet

Rows: features x_j ~ N(shift_j, scale_j²) (scales 0.5..3), y = xᵀβ + 0.5 + N(0, 1), and 10 % of the training
targets shifted up by U(10, 30) (one-sided gross errors: least squares is biased, a learned robust scale is not).
The validation file (--val-rows, default 20000) is clean. Seeded , so the files are the
same on every run (Python's own random module: no third-party package needed; ~1 minute for 1e6 rows).
"""
import argparse
import random


def write(path, rng, n, p, scale, shift, beta, gross):
    with open(path, "w") as f:
        f.write(",".join(["x%d" % j for j in range(p)] + ["y"]) + "\n")
        lines = []
        for _ in range(n):
            x = [rng.gauss(shift[j], scale[j]) for j in range(p)]
            y = sum(a * b for a, b in zip(x, beta)) + 0.5 + rng.gauss(0.0, 1.0)
            if rng.random() < gross:
                y += rng.uniform(10, 30)
            lines.append(",".join("%.10g" % v for v in x + [y]))
            if len(lines) == 10000:
                f.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1000000, help="training rows")
    ap.add_argument("--val-rows", type=int, default=20000, help="validation rows")
    ap.add_argument("--features", type=int, default=10, help="feature columns (plus the target y)")
    ap.add_argument("--outliers", type=float, default=0.1, help="fraction of training targets with gross errors")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="prefix: writes PREFIX_train.csv and PREFIX_val.csv")
    a = ap.parse_args()
    model = random.Random(0)
    p = a.features
    scale = [model.uniform(0.5, 3.0) for _ in range(p)]
    shift = [model.gauss(0.0, 1.0) for _ in range(p)]
    beta = [-2 + 4.0 * j / max(p - 1, 1) for j in range(p)]
    rng = random.Random(a.seed)
    for split, n, gross in (("train", a.rows, a.outliers), ("val", a.val_rows, 0.0)):
        write("%s_%s.csv" % (a.out, split), rng, n, p, scale, shift, beta, gross)


if __name__ == "__main__":
    main()
