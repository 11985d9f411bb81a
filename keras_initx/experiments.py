"""Old import path of the experiments, kept as an alias: the code moved to one module per concept.

- `keras_initx.specs`: the initializer spec language (`parse_initializer`,
  `resolve_initializers`, `known_initializers`, `known_activations`);
- `keras_initx.sweep`: `depth_sweep` (now returning a `DepthSweep`), `SEED_001_INITIALIZERS`;
- `keras_initx.tables`: `sweep_table` (now the wide frame of a sweep; the old one-column pivot
  is `depth_table`);
- `keras_initx.comparison`: `compare_training`, `TrainingComparison`, `digits_mlp`;
- `keras_initx.width`: `width_sweep`.

New code should import from those modules (or from `keras_initx`).
"""

from keras_initx.comparison import TrainingComparison, compare_training, digits_mlp
from keras_initx.specs import (
    known_activations,
    known_initializers,
    parse_initializer,
    resolve_initializers,
)
from keras_initx.sweep import SEED_001_INITIALIZERS, DepthSweep, depth_sweep
from keras_initx.tables import depth_table, sweep_table
from keras_initx.width import width_sweep

__all__ = [
    "SEED_001_INITIALIZERS",
    "DepthSweep",
    "TrainingComparison",
    "compare_training",
    "depth_sweep",
    "depth_table",
    "digits_mlp",
    "known_activations",
    "known_initializers",
    "parse_initializer",
    "resolve_initializers",
    "sweep_table",
    "width_sweep",
]
