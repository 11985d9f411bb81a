"""LSUV (Mishkin & Matas 2015) rescues a deep tanh MLP initialized with 0.01 * randn.

Seed 001's "small random" initialization makes the activations of a deep network vanish, so
its gradients vanish too and it never leaves chance accuracy. LSUV re-draws the kernels
orthonormally and rescales each layer, in depth order, until its pre-activation std on one
batch of training data is 1. The script prints LSUV's per-layer table, the pre-activation std
on held-out digits before and after, and the held-out accuracy of both models per epoch of
plain SGD, and writes the LSUV table to `lsuv.csv`. Run:
`python examples/lsuv_deep_mlp.py [--out DIR] [--smoke]` (or KERAS_INITX_SMOKE=1).
"""

import os

import keras
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from keras_initx.capture import build_probe
from keras_initx.unit_variance import lsuv

from _common import parse_args

args = parse_args(__doc__, "runs/examples/lsuv_deep_mlp")
depth, width, epochs, n_train = (4, 16, 1, 300) if args.smoke else (20, 64, 5, 1200)
batch = 256  # the LSUV batch: training examples whose statistics set each layer's scale

x, y = load_digits(return_X_y=True)
x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype("float32")
x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[1200:], y[1200:]


def small_random_mlp() -> keras.Model:
    """`depth` tanh layers and a softmax output, all drawn from N(0, 0.01^2) with fixed seeds."""
    layers = [
        keras.layers.Dense(
            width,
            "tanh",
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=i),
            name=f"tanh_{i + 1}",
        )
        for i in range(depth)
    ]
    output = keras.layers.Dense(
        10,
        "softmax",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=depth),
        name="out",
    )
    return keras.Sequential([keras.Input((64,)), *layers, output], name="mlp")


def preactivation_std(model: keras.Model, data: np.ndarray) -> pd.Series:
    probe = build_probe(model, tensors=["preactivation"], stats=["std"])
    result = probe(data)
    return pd.Series({info.path: result.get(info.path, "preactivation", "std")
                      for info in probe.layers})  # fmt: skip


unscaled, scaled = small_random_mlp(), small_random_mlp()
frame = lsuv(scaled, x_train[:batch], target_std=1.0, tol=0.1, seed=0)
print("LSUV, per layer (std measured on the LSUV batch):")
print(frame.to_string(index=False, float_format="{:.4g}".format))
os.makedirs(args.out, exist_ok=True)
frame.to_csv(os.path.join(args.out, "lsuv.csv"), index=False)

held_out = pd.DataFrame(
    {"0.01*randn": preactivation_std(unscaled, x_test), "LSUV": preactivation_std(scaled, x_test)}
)
print("\npre-activation std on held-out digits:")
print(held_out.to_string(float_format="{:.3g}".format))

accuracy = {}
for name, model in [("0.01*randn", unscaled), ("LSUV", scaled)]:
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    keras.utils.set_random_seed(0)  # the same batch order for both models
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_test, y_test),
        verbose=0,
    )  # fmt: skip
    accuracy[name] = history.history["val_accuracy"]
print("\nheld-out accuracy per epoch (SGD, lr 0.01, momentum 0.9):")
print(pd.DataFrame(accuracy, index=pd.RangeIndex(1, epochs + 1, name="epoch")).round(3))
