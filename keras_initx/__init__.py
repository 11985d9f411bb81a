"""keras_initx: choose and see weight initialization in Keras 3.

Importing the package registers every initializer under its string names, so
`keras.layers.Dense(64, kernel_initializer="lecun_1_over_sqrt_d")` works and saved models reload
without `custom_objects`.
"""

from keras_initx import experiments, plots
from keras_initx.callbacks import LayerStats
from keras_initx.capture import build_probe
from keras_initx.diagnosis import diagnose, format_findings
from keras_initx.experiments import compare_training, depth_sweep
from keras_initx.gains import calculate_gain, compute_fans
from keras_initx.initializers import (
    INITIALIZERS,
    DeltaOrthogonal,
    LecunOneOverSqrtD,
    OrthogonalGain,
    SigmoidGlorotNormal,
    SigmoidGlorotUniform,
    Sparse,
    list_initializers,
    orthogonal_matrix,
)
from keras_initx.jacobian import JacobianSpectrum, MeanField, jacobian_spectrum, mean_field
from keras_initx.lsuv import lsuv
from keras_initx.pretrain import pretrain_layerwise
from keras_initx.propagation import SignalPropagation, signal_propagation
from keras_initx.sinks import COLUMNS as LAYER_STATS_COLUMNS
from keras_initx.width import width_sweep

__version__ = "0.1.0"

__all__ = [
    "INITIALIZERS",
    "LAYER_STATS_COLUMNS",
    "DeltaOrthogonal",
    "JacobianSpectrum",
    "LayerStats",
    "LecunOneOverSqrtD",
    "MeanField",
    "OrthogonalGain",
    "SigmoidGlorotNormal",
    "SigmoidGlorotUniform",
    "SignalPropagation",
    "Sparse",
    "build_probe",
    "calculate_gain",
    "compare_training",
    "compute_fans",
    "depth_sweep",
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
    "signal_propagation",
    "width_sweep",
]
