"""Seed 001: ten tanh layers of 500 units, 1000 standard-normal inputs, three initializations.

Reproduces the tutorial's three tables (per-layer mean and std of the activations) for
`0.01 * randn`, `1.0 * randn` and `randn / sqrt(fan_in)`, and its figures: std against depth and
the per-layer histograms. Run: `python examples/seed_001_depth.py [--out DIR] [--smoke]`.
"""

import os

from keras_initx import plots
from keras_initx.sweep import SEED_001_INITIALIZERS, depth_sweep
from keras_initx.tables import histogram_table, sweep_table

from _common import parse_args

args = parse_args(__doc__, "runs/examples/seed_001")
depth, width, samples = (3, 20, 50) if args.smoke else (10, 500, 1000)

sweep = depth_sweep(
    SEED_001_INITIALIZERS, depth=depth, width=width, n_samples=samples, histograms=True
)
frame = sweep_table(sweep.frame)  # one row per (initializer, layer): activation_mean, _std, ...
for label, table in frame.groupby("initializer", sort=False):
    print(f"\n{label}")
    for row in table.itertuples():
        print(f"Hidden layer {row.layer} had mean {row.activation_mean:f} "
              f"and std {row.activation_std:f}")  # fmt: skip

os.makedirs(args.out, exist_ok=True)
plots.plot_depth_sweep(frame, path=os.path.join(args.out, "std_vs_depth.png"))
plots.plot_histograms(
    histogram_table(sweep.frame, sweep.histograms), path=os.path.join(args.out, "histograms.png")
)
print(f"\nFigures: {args.out}/std_vs_depth.png, {args.out}/histograms.png")
