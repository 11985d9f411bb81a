"""keras_initx: choose and see weight initialization in Keras 3.

Importing the package registers every initializer under its string names, so
`keras.layers.Dense(64, kernel_initializer="lecun_1_over_sqrt_d")` works and saved models reload
without `custom_objects`. The rest of the API is imported on first use (PEP 562 `__getattr__`):
`import keras_initx` loads Keras (for the registration; Keras itself loads TensorFlow and
matplotlib) and `diagnose` (pure pandas), but not the measuring code, the experiments, the plots
or the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from keras_initx._startup import native_startup_filtered

with native_startup_filtered():
    from keras_initx.initializers import (
        INITIALIZERS,
        DeltaOrthogonal,
        DepthwiseLecunOneOverSqrtD,
        LecunOneOverSqrtD,
        OrthogonalGain,
        SigmoidGlorotNormal,
        SigmoidGlorotUniform,
        Sparse,
        list_initializers,
        orthogonal_matrix,
    )
from keras_initx.diagnosis import diagnose, format_findings  # pure pandas: cheap to import
from keras_initx.gains import calculate_gain, compute_fans

if TYPE_CHECKING:  # what the lazy names resolve to, for type checkers and editors
    from keras_initx import experiments, plots
    from keras_initx.callbacks import LayerStats
    from keras_initx.capture import build_probe, build_tap
    from keras_initx.comparison import TrainingComparison, compare_training
    from keras_initx.jacobian import JacobianSpectrum, MeanField, jacobian_spectrum, mean_field
    from keras_initx.pretrain import pretrain_layerwise
    from keras_initx.propagation import SignalPropagation, signal_propagation
    from keras_initx.sinks import COLUMNS as LAYER_STATS_COLUMNS
    from keras_initx.sinks import read_layer_stats
    from keras_initx.sweep import DepthSweep, depth_sweep
    from keras_initx.tables import depth_table, sweep_table
    from keras_initx.unit_variance import lsuv
    from keras_initx.width import width_sweep

__version__ = "0.1.0"

# Public name -> (module, attribute; None for the module itself), imported on first access.
_LAZY: dict[str, tuple[str, str | None]] = {
    "DepthSweep": ("keras_initx.sweep", "DepthSweep"),
    "JacobianSpectrum": ("keras_initx.jacobian", "JacobianSpectrum"),
    "LAYER_STATS_COLUMNS": ("keras_initx.sinks", "COLUMNS"),
    "LayerStats": ("keras_initx.callbacks", "LayerStats"),
    "MeanField": ("keras_initx.jacobian", "MeanField"),
    "SignalPropagation": ("keras_initx.propagation", "SignalPropagation"),
    "TrainingComparison": ("keras_initx.comparison", "TrainingComparison"),
    "build_probe": ("keras_initx.capture", "build_probe"),
    "build_tap": ("keras_initx.capture", "build_tap"),
    "read_layer_stats": ("keras_initx.sinks", "read_layer_stats"),
    "compare_training": ("keras_initx.comparison", "compare_training"),
    "depth_sweep": ("keras_initx.sweep", "depth_sweep"),
    "depth_table": ("keras_initx.tables", "depth_table"),
    "experiments": ("keras_initx.experiments", None),
    "jacobian_spectrum": ("keras_initx.jacobian", "jacobian_spectrum"),
    "lsuv": ("keras_initx.unit_variance", "lsuv"),
    "mean_field": ("keras_initx.jacobian", "mean_field"),
    "plots": ("keras_initx.plots", None),
    "pretrain_layerwise": ("keras_initx.pretrain", "pretrain_layerwise"),
    "signal_propagation": ("keras_initx.propagation", "signal_propagation"),
    "sweep_table": ("keras_initx.tables", "sweep_table"),
    "width_sweep": ("keras_initx.width", "width_sweep"),
}

__all__ = [
    "INITIALIZERS",
    "LAYER_STATS_COLUMNS",
    "DeltaOrthogonal",
    "DepthSweep",
    "DepthwiseLecunOneOverSqrtD",
    "JacobianSpectrum",
    "LayerStats",
    "LecunOneOverSqrtD",
    "MeanField",
    "OrthogonalGain",
    "SigmoidGlorotNormal",
    "SigmoidGlorotUniform",
    "SignalPropagation",
    "Sparse",
    "TrainingComparison",
    "build_probe",
    "build_tap",
    "calculate_gain",
    "compare_training",
    "compute_fans",
    "depth_sweep",
    "depth_table",
    "diagnose",
    "experiments",
    "format_findings",
    "jacobian_spectrum",
    "list_initializers",
    "lsuv",
    "mean_field",
    "orthogonal_matrix",
    "plots",
    "pretrain_layerwise",
    "read_layer_stats",
    "signal_propagation",
    "sweep_table",
    "width_sweep",
]


def __getattr__(name: str) -> Any:
    """Import a lazy public name on first access and cache it in the module namespace."""
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_initx' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
