"""Zero and constant initialization never break symmetry (seed 002, seed 000).

Trains the same 64 -> 32 -> 32 -> 10 tanh network on scikit-learn's digits with zeros, a
constant and Glorot, and counts the distinct hidden units after training: with zeros or a
constant every hidden unit receives the same update at every step, so each hidden layer ends
with ONE distinct unit (the output units do differ: each class gets its own gradient, which is
why output weights alone may start at zero). Run:
`python examples/zero_init_symmetry.py [--out DIR] [--smoke]`.
"""

import os

from keras_initx import plots
from keras_initx.comparison import compare_training

from _common import parse_args

args = parse_args(__doc__, "runs/examples/symmetry", smoke="one epoch")

result = compare_training(
    {"zeros": "zeros", "constant 0.1": "constant(value=0.1)", "glorot_uniform": "glorot_uniform"},
    epochs=1 if args.smoke else 10,
)
symmetry = result.symmetry.pivot(index="initializer", columns="layer", values="distinct_units")
print("Distinct units per layer after training (hidden layers have 32 units, output 10):")
print(symmetry.loc[["zeros", "constant 0.1", "glorot_uniform"]].to_string())
final = result.history.groupby("initializer", sort=False).tail(1)
print("\nAfter the last epoch:")
print(final[["initializer", "epoch", "loss", "val_accuracy"]].round(3).to_string(index=False))
path = os.path.join(args.out, "training.png")
plots.plot_training_curves(result.history, path=path)
print(f"\nfigure: {path}")
