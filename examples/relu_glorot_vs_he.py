"""ReLU layers with Glorot vs He initialization (He et al. 2015).

A ReLU zeroes half of its input, so with Glorot's variance 1/n (square layers) the signal's
second moment halves at every layer: after 10 layers the activations are ~32x smaller (std
ratio 1/sqrt(2) per layer). He's variance 2/n compensates exactly; LSUV finds the scale from
data. Run: `python examples/relu_glorot_vs_he.py [--out DIR] [--smoke]`.
"""

import os

from keras_initx import plots
from keras_initx.diagnosis import diagnose, format_findings
from keras_initx.sweep import depth_sweep
from keras_initx.tables import depth_table, sweep_table

from _common import parse_args

args = parse_args(__doc__, "runs/examples/relu")
depth, width, samples = (3, 20, 50) if args.smoke else (10, 500, 1000)

sweep = depth_sweep(["glorot_normal", "he_normal", "lsuv"], depth=depth, width=width,
                    n_samples=samples, activation="relu")  # fmt: skip
std = depth_table(sweep.frame, "activation_std")
print(std.round(4))
ratio = std.loc[depth] / std.loc[1]
print(f"\nstd(layer {depth}) / std(layer 1):\n{ratio.round(3).to_string()}")
print("\n" + format_findings(diagnose(sweep.frame), max_per_group=2))
path = os.path.join(args.out, "relu_std_vs_depth.png")
plots.plot_depth_sweep(sweep_table(sweep.frame), path=path)
print(f"figure: {path}")
