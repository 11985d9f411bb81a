"""Signal propagation of your own model at initialization: a residual CNN, Glorot vs He.

`keras_initx.signal_propagation(model, x)` measures every layer of any built model (here Conv2D,
BatchNormalization, a residual Add) on one batch with the LayerStats engine and diagnoses it;
`plots.plot_signal_propagation` draws the std of the activations and of the back-propagated
gradients per layer in depth order (timm's signal-propagation plots, Brock et al. 2021). A plain
ReLU CNN without normalization loses half the second moment per layer under Keras' default
Glorot init and keeps it under He. In a residual net each block adds its output to the stream,
so the stream's variance grows block by block; BatchNormalization is measured with batch
statistics (`training=True`: at initialization its moving statistics make it the identity).
Run: `python examples/signal_propagation_cnn.py [--out DIR] [--smoke]`.
"""

import os

import keras
import numpy as np
import pandas as pd

import keras_initx
from keras_initx import plots

from _common import parse_args

args = parse_args(__doc__, "runs/examples/signal_propagation", smoke="3 blocks, 8x8 images")
blocks, size, channels = (3, 8, 8) if args.smoke else (8, 16, 32)


def cnn(init, residual, batchnorm):
    """A stem conv, then `blocks` x [conv-relu (+BN)] with optional identity shortcuts."""
    inputs = keras.Input((size, size, 3))
    h = keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                            kernel_initializer=init, name="stem")(inputs)  # fmt: skip
    for i in range(blocks):
        block = keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                    kernel_initializer=init, name=f"conv_{i + 1}")(h)  # fmt: skip
        if batchnorm:
            block = keras.layers.BatchNormalization(name=f"bn_{i + 1}")(block)
        h = keras.layers.Add(name=f"add_{i + 1}")([h, block]) if residual else block
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(10, kernel_initializer=init, name="head")(h)
    return keras.Model(inputs, outputs)


x = np.random.default_rng(0).standard_normal((64, size, size, 3)).astype("float32")
frames = []
for label, init, residual, batchnorm in [
    ("plain, glorot_uniform", "glorot_uniform", False, False),
    ("plain, he_normal", "he_normal", False, False),
    ("residual + BN, he_normal", "he_normal", True, True),
]:
    keras.utils.set_random_seed(0)
    model = cnn(init, residual, batchnorm)
    result = keras_initx.signal_propagation(model, x, training=batchnorm)
    table = result.table("std")[["activation", "activation_grad"]]
    print(f"\n== {label}: std per layer (gradients of a random readout)")
    print(table.to_string(float_format="{:.3g}".format))
    print(result.report())
    frames.append(result.frame.assign(initializer=label))

frame = pd.concat(frames, ignore_index=True)
os.makedirs(args.out, exist_ok=True)
frame.to_csv(os.path.join(args.out, "signal_propagation.csv"), index=False)
# Layers line up by depth index; the plain nets have no BN layers, so draw by index.
path = os.path.join(args.out, "signal_propagation.png")
plots.plot_signal_propagation(frame[~frame["initializer"].str.startswith("residual")],
                              by="initializer", path=path)  # fmt: skip
path_bn = os.path.join(args.out, "signal_propagation_residual_bn.png")
plots.plot_signal_propagation(frames[-1], path=path_bn)
print(f"\nfigures: {path}, {path_bn}")
