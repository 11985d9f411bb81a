"""The width check (muP's coordinate check) on the digits MLP: Glorot, He, LeCun and a muP-style
readout.

`keras_initx.width_sweep` builds 64 -> width tanh -> width tanh -> 10 logits at
several widths, trains 3 SGD steps on one fixed digits batch and records each layer's coordinate
size (rms of the entries) per step. Under the standard parametrization (fan_in init, one learning
rate) the logits grow with width once training starts: the readout's update adds
lr * |h|^2 ~ lr * width to them. A muP-style readout (zero-initialized output kernel fed
sqrt(base/width) * h: effective init variance ~ 1/width^2 and learning rate ~ base/width, muP for
SGD's output layer; Yang et al. 2022) keeps them flat. keras_initx measures; it does not
implement muP (per-layer learning rates and multipliers are the model's), so the readout is built
here from two Keras layers. Run: `python examples/width_check.py [--out DIR] [--smoke]`.
"""

import math
import os

import keras
import pandas as pd

from keras_initx import plots
from keras_initx.width import width_sweep

from _common import parse_args

args = parse_args(__doc__, "runs/examples/width_check", smoke="two small widths, one step")
widths, steps = ([16, 32], 1) if args.smoke else ([64, 128, 256, 512, 1024, 2048], 3)
BASE = widths[0]
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def digits_mlp(width, init, readout):
    inputs = keras.Input((64,))
    h = keras.layers.Dense(width, activation="tanh", kernel_initializer=init, name="hidden_1")(
        inputs
    )
    h = keras.layers.Dense(width, activation="tanh", kernel_initializer=init, name="hidden_2")(h)
    if readout == "muP-style":
        h = keras.layers.Rescaling(math.sqrt(BASE / width), name="readout_scale")(h)
    kernel = "zeros" if readout == "muP-style" else init
    return keras.Model(inputs, keras.layers.Dense(10, kernel_initializer=kernel, name="output")(h))


os.makedirs(args.out, exist_ok=True)
frames = []
for init in ("glorot_normal", "he_normal", "lecun_normal"):
    for readout in ("standard", "muP-style"):
        label = f"{init}, {readout} readout"
        frame = width_sweep(lambda w, i=init, r=readout: digits_mlp(w, i, r), widths, steps,
                            loss=LOSS)  # fmt: skip
        frames.append(frame.assign(parametrization=label))
        plots.plot_width_sweep(frame, path=os.path.join(args.out, f"{init}_{readout}.png"))

frame = pd.concat(frames, ignore_index=True)
frame.to_csv(os.path.join(args.out, "width_sweep.csv"), index=False)
last = frame[(frame["step"] == steps) & (frame["tensor"] == "activation")]
table = last.pivot_table(index=["parametrization", "layer"], columns="width", values="rms")
table["ratio"] = table[widths[-1]] / table[widths[0]]
print(f"rms of each layer's activation after {steps} SGD steps, by width "
      f"(ratio = width {widths[-1]} / width {widths[0]}):")  # fmt: skip
print(table.to_string(float_format="{:.3g}".format))
print(f"\nfigures: {args.out}/<init>_<readout>.png")
