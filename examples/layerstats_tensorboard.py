"""Attach LayerStats to your own model and open the statistics in TensorBoard.

A plain Keras model trained on digits; `LayerStats` measures every layer's activations,
pre-activations, gradients and kernels at step 0 (the initialization) and every few steps,
returns them as a DataFrame (also `log_dir/layer_stats.csv`) and writes them for TensorBoard next
to Keras' own curves. The diagnosis of step 0 says whether the initialization is sound. Run:
`python examples/layerstats_tensorboard.py [--out DIR] [--smoke]`, then
`tensorboard --logdir DIR`.
"""

import os

import keras
import numpy as np
from sklearn.datasets import load_digits

from keras_initx import plots
from keras_initx.callbacks import LayerStats
from keras_initx.diagnosis import diagnose, format_findings

from _common import parse_args

args = parse_args(__doc__, "runs/examples/layerstats", smoke="one epoch")

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal"),
        keras.layers.Dense(64, activation="tanh", kernel_initializer="lecun_1_over_sqrt_d"),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

stats = LayerStats(probe=(x[:256], y[:256]), log_dir=args.out, every_n_steps=10)
model.fit(x, y, epochs=1 if args.smoke else 5, batch_size=64, validation_split=0.2,
          callbacks=[stats, keras.callbacks.TensorBoard(args.out)], verbose=0)  # fmt: skip

frame = stats.to_dataframe()
print(frame.head().to_string())
print(f"\n{len(frame)} rows, steps {sorted(np.unique(frame['step']))}")
print("\nDiagnosis at initialization:")
print(format_findings(diagnose(frame)))
path = os.path.join(args.out, "activation_std_heatmap.png")
plots.plot_layer_heatmap(frame, path=path)
print(f"\nheat map: {path}\nCSV: {os.path.join(args.out, 'layer_stats.csv')}")
print(f"Open TensorBoard:\n  tensorboard --logdir {args.out}")
