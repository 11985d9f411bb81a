"""Seed 002: five layers of 50 units on a 100-d input: small vs large random vs Glorot.

The blog's experiment, for tanh and for the logistic sigmoid: `0.01 * randn` makes activations
(and gradients) vanish, `randn` saturates them, Glorot keeps them in between. For sigmoid the
4x-scaled `sigmoid_glorot_uniform` (Bengio 2012) is added. Run:
`python examples/seed_002_small_vs_large.py [--out DIR] [--smoke]`.
"""

import os

from keras_initx import plots
from keras_initx.diagnosis import diagnose, format_findings
from keras_initx.sweep import depth_sweep
from keras_initx.tables import depth_table, sweep_table

from _common import parse_args

args = parse_args(__doc__, "runs/examples/seed_002")
samples = 20 if args.smoke else 1000  # the blog pushes one input; more rows give stable stds

initializers = {
    "small (0.01*randn)": "random_normal(stddev=0.01)",
    "large (randn)": "random_normal(stddev=1.0)",
    "glorot_normal": "glorot_normal",
}
for activation, extra in (("tanh", {}), ("sigmoid", {"sigmoid_glorot": "sigmoid_glorot_uniform"})):
    sweep = depth_sweep(
        {**initializers, **extra}, depth=5, width=50, input_dim=100, activation=activation,
        n_samples=samples,
    )  # fmt: skip
    print(f"\n== {activation}: activation std per layer")
    print(depth_table(sweep.frame, "activation_std").round(4))
    print(f"\n== {activation}: fraction of saturated activations")
    print(depth_table(sweep.frame, "frac_saturated").round(3))
    print(f"\n== {activation}: diagnosis")
    print(format_findings(diagnose(sweep.frame), max_per_group=2))
    path = os.path.join(args.out, f"{activation}.png")
    plots.plot_depth_sweep(sweep_table(sweep.frame), path=path)
    print(f"figure: {path}")
