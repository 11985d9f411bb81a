"""Glorot & Bengio (2010): standard init U(-1/sqrt(n), 1/sqrt(n)) vs normalized init.

The paper's figures 6 and 7: with the "standard" heuristic (here `lecun_1_over_sqrt_d`, variance
1/(3n)) the activation variance shrinks with depth and the back-propagated gradient variance
shrinks towards the input; the normalized init (`glorot_uniform`, variance 2/(n_in + n_out))
keeps both about constant. Five tanh layers of 1000 units as in the paper. Run:
`python examples/glorot_bengio.py [--out DIR] [--smoke]`.
"""

import os

from keras_initx import plots
from keras_initx.sweep import depth_sweep
from keras_initx.tables import sweep_table

from _common import parse_args

args = parse_args(__doc__, "runs/examples/glorot_bengio")
width, samples = (30, 50) if args.smoke else (1000, 1000)

initializers = {
    "standard U(-1/sqrt(n), 1/sqrt(n))": "lecun_1_over_sqrt_d",
    "normalized (Glorot)": "glorot_uniform",
}
sweep = depth_sweep(initializers, depth=5, width=width, n_samples=samples)
frame = sweep_table(sweep.frame)
frame["activation_var"] = frame["activation_std"] ** 2
frame["gradient_var"] = frame["gradient_std"] ** 2
for column in ("activation_var", "gradient_var"):
    print(f"\n{column} per layer")
    print(frame.pivot(index="layer", columns="initializer", values=column).round(5))
path = os.path.join(args.out, "variance_per_layer.png")
plots.plot_depth_sweep(frame, ["activation_var", "gradient_var"], path=path)
print(f"\nfigure: {path}")
