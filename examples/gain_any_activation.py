"""A gain for any activation: your own function, a Keras activation, a layer.

`calculate_gain(f)` returns 1 / sqrt(E[f(z)^2]) for z ~ N(0, 1) (Gauss-Hermite quadrature,
cached per function): the std multiplier that keeps a layer's output second moment at 1 for unit
pre-activations, which gives ReLU He's sqrt(2). Names keep torch's table exactly. The same
number is the mean-field weight variance (gain^2) at which q* = 1 is a fixed point (Poole et al.
2016); `mean_field` adds chi_1, whether that fixed point is ordered (< 1), critical (1) or chaotic
(> 1). The script checks each gain against Monte Carlo and uses one in an initializer. Run:
`python examples/gain_any_activation.py [--out DIR] [--smoke]`.
"""

import os

import keras
import numpy as np
import pandas as pd

from keras_initx import OrthogonalGain, calculate_gain, mean_field

from _common import parse_args

args = parse_args(__doc__, "runs/examples/gains", smoke="fewer Monte Carlo draws")
draws = 2**14 if args.smoke else 2**22


def squared_relu(z):
    """A user's own activation (Primer's squared ReLU)."""
    return np.square(np.maximum(z, 0.0))


functions = {
    "relu (name, torch)": ("relu", keras.activations.relu),
    "tanh (name, torch)": ("tanh", keras.activations.tanh),
    "tanh (callable)": (keras.activations.tanh, keras.activations.tanh),
    "gelu (Keras activation)": (keras.activations.gelu, keras.activations.gelu),
    "mish (Keras activation)": (keras.activations.mish, keras.activations.mish),
    "ReLU layer": (keras.layers.ReLU(), keras.layers.ReLU()),
    "squared_relu (your own)": (squared_relu, squared_relu),
}
z = np.random.default_rng(0).standard_normal(draws)
rows = []
for label, (given, function) in functions.items():
    values = np.asarray(function(z), dtype=np.float64)
    field = mean_field(given if callable(given) else function)
    rows.append({
        "activation": label,
        "gain": calculate_gain(given),
        "monte_carlo": 1.0 / np.sqrt(np.mean(values**2)),
        "sigma_w^2 (q*=1)": field.weight_variance,
        "chi_1": field.chi1,
    })  # fmt: skip
table = pd.DataFrame(rows)
print(table.to_string(index=False, float_format="{:.4f}".format))
print(f"\n(Monte Carlo: {draws} draws; the tanh name keeps torch's 5/3, the callable gets the "
      "second-moment rule)")  # fmt: skip

layer = keras.layers.Dense(256, kernel_initializer=OrthogonalGain(calculate_gain(squared_relu)))
layer.build((None, 256))
print(f"\nOrthogonalGain(calculate_gain(squared_relu)): kernel std "
      f"{float(np.std(np.asarray(layer.kernel))):.4f} = gain / sqrt(256)")  # fmt: skip
os.makedirs(args.out, exist_ok=True)
table.to_csv(os.path.join(args.out, "gains.csv"), index=False)
print(f"table: {args.out}/gains.csv")
