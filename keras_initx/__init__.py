"""keras_initx: choose and see weight initialization in Keras 3.

Importing the package registers every initializer under its string names, so
`keras.layers.Dense(64, kernel_initializer="lecun_1_over_sqrt_d")` works and saved models reload
without `custom_objects`.
"""

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

__version__ = "0.1.0"

__all__ = [
    "INITIALIZERS",
    "DeltaOrthogonal",
    "LecunOneOverSqrtD",
    "OrthogonalGain",
    "SigmoidGlorotNormal",
    "SigmoidGlorotUniform",
    "Sparse",
    "calculate_gain",
    "compute_fans",
    "list_initializers",
    "orthogonal_matrix",
]
