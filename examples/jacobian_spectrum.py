"""Dynamical isometry: the input-output Jacobian spectrum of deep tanh nets (Pennington,
Schoenholz & Ganguli 2017).

Deep tanh MLPs without bias at criticality (weight variance 1/fan_in, inputs near tanh's linear
regime): Gaussian weights (Keras' glorot_normal, variance 1/n for square layers) and orthogonal
weights at gain 1 give the same mean squared singular value of d(output)/d(input), but the
Gaussian spectrum spreads over decades as depth grows while the orthogonal one stays near 1.
Orthogonal at torch's tanh gain 5/3 is chaotic (chi_1 > 1: the top singular values explode).
`keras_initx.mean_field` gives the per-layer chi_1 behind it. Run:
`python examples/jacobian_spectrum.py [--out DIR] [--smoke]`.
"""

import os

import keras
import numpy as np
import pandas as pd

from keras_initx import OrthogonalGain, mean_field, plots
from keras_initx.jacobian import jacobian_spectrum

from _common import parse_args

args = parse_args(__doc__, "runs/examples/jacobian", smoke="depths 2 and 4, width 16")
depths, width, examples = ([2, 4], 16, 4) if args.smoke else ([4, 8, 16, 32, 64], 256, 16)
INITS = {
    "glorot_normal (Gaussian)": lambda: "glorot_normal",
    "orthogonal, gain 1": lambda: OrthogonalGain(1.0),
    "orthogonal, gain 5/3 (torch tanh)": lambda: OrthogonalGain("tanh"),
}


def tanh_mlp(depth, init):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((width,))]
    layers += [keras.layers.Dense(width, activation="tanh", use_bias=False,
                                  kernel_initializer=init()) for _ in range(depth)]  # fmt: skip
    return keras.Sequential(layers)


x = 0.1 * np.random.default_rng(0).standard_normal((examples, width)).astype("float32")
rows, values = [], []
for depth in depths:
    for label, init in INITS.items():
        spectrum = jacobian_spectrum(tanh_mlp(depth, init), x)
        rows.append({"depth": depth, "initializer": label, **spectrum.summary()})
        if depth == depths[-1]:
            values.append(spectrum.to_frame().assign(initializer=label))
summary = pd.DataFrame(rows)
print(f"Jacobian singular values, {width} units, {examples} inputs of std 0.1:")
print(summary.pivot(index="depth", columns="initializer", values="spread")
      .to_string(float_format="{:.3g}".format, header=True))  # fmt: skip
print("(spread = max / median singular value; 1 = isometry)\n")
print(summary.pivot(index="depth", columns="initializer", values="mean_squared")
      .to_string(float_format="{:.3g}".format))  # fmt: skip
print("(mean squared singular value)\n")

print("Mean field per layer (no bias): the weight variance for q* = 1 and chi_1 there")
for activation in ("tanh", "relu", "gelu", "silu", "selu"):
    field = mean_field(activation)
    print(f"  {activation:5s} sigma_w^2 = {field.weight_variance:.4f}  chi_1 = {field.chi1:.4f}")

os.makedirs(args.out, exist_ok=True)
summary.to_csv(os.path.join(args.out, "jacobian_summary.csv"), index=False)
path = os.path.join(args.out, "jacobian_spectrum.png")
ax = plots.plot_jacobian_spectrum(pd.concat(values, ignore_index=True), by="initializer")
ax.set_title(f"Input-output Jacobian spectrum, {depths[-1]} tanh layers of {width}")
plots.save_figure(ax, path)
print(f"\nfigure: {path}")
