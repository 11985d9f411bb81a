"""The initializer registry: every string name in one dict, registered with Keras on import.

After `import keras_initx.initializers` (which `import keras_initx` does), each name below and
each class name resolves in `keras.initializers.get(...)`, in layer arguments such as
`Dense(kernel_initializer="sparse")`, and in dict configs such as
`{"class_name": "orthogonal_gain", "config": {"gain": "relu"}}`. Saved models name the classes
`keras_initx>ClassName` (`register_keras_serializable`), so they reload without custom_objects.
"""

from __future__ import annotations

import keras

from keras_initx.initializers.delta_orthogonal import DeltaOrthogonal
from keras_initx.initializers.orthogonal import OrthogonalGain, orthogonal_matrix
from keras_initx.initializers.sparse import Sparse
from keras_initx.initializers.uniform import (
    DepthwiseLecunOneOverSqrtD,
    LecunOneOverSqrtD,
    SigmoidGlorotNormal,
    SigmoidGlorotUniform,
)

__all__ = [
    "DATA_DRIVEN",
    "INITIALIZERS",
    "DeltaOrthogonal",
    "DepthwiseLecunOneOverSqrtD",
    "LecunOneOverSqrtD",
    "OrthogonalGain",
    "SigmoidGlorotNormal",
    "SigmoidGlorotUniform",
    "Sparse",
    "list_initializers",
    "orthogonal_matrix",
    "register",
]

# String name -> class. The first name of a class is its canonical name, later ones are aliases.
# Descriptions come from each class docstring's first line.
INITIALIZERS: dict[str, type[keras.initializers.Initializer]] = {
    "lecun_1_over_sqrt_d": LecunOneOverSqrtD,
    "pytorch_default": LecunOneOverSqrtD,
    "lecun_1_over_sqrt_d_depthwise": DepthwiseLecunOneOverSqrtD,
    "pytorch_default_depthwise": DepthwiseLecunOneOverSqrtD,
    "sigmoid_glorot_uniform": SigmoidGlorotUniform,
    "sigmoid_glorot_normal": SigmoidGlorotNormal,
    "orthogonal_gain": OrthogonalGain,
    "sparse": Sparse,
    "delta_orthogonal": DeltaOrthogonal,
}


# Initializations no fixed formula gives: functions of a built model and data, so they have no
# string name for `kernel_initializer=`. Listed for discovery; they live above this package.
DATA_DRIVEN: dict[str, str] = {
    "lsuv": "Data-driven: `keras_initx.lsuv(model, x_batch)` rescales each layer's kernel to unit "
    "pre-activation std on a batch (Mishkin & Matas 2016).",
    "pretrain_layerwise": "Data-driven, historical: `keras_initx.pretrain_layerwise(model, x)`, "
    "greedy layer-wise denoising-autoencoder pretraining (Hinton & Salakhutdinov 2006).",
}


def list_initializers(data_driven: bool = True) -> dict[str, str]:
    """Every registered string name with a one-line description, in registry order.

    Args:
        data_driven: also list the data-driven initializations (`DATA_DRIVEN`), which are
            functions to call on a built model, not names for `kernel_initializer=`.

    Example:
        >>> list_initializers()["sparse"]
        'Each output unit gets exactly k non-zero incoming weights from N(0, stddev^2), the rest 0.'
    """
    canonical: dict[type, str] = {}
    described = {}
    for name, cls in INITIALIZERS.items():
        summary = cls.__doc__.strip().splitlines()[0]
        first = canonical.setdefault(cls, name)
        described[name] = summary if first == name else f"Alias of `{first}`: {summary}"
    return {**described, **DATA_DRIVEN} if data_driven else described


def register() -> None:
    """Put every string name and class name into Keras' global custom objects (idempotent)."""
    custom_objects = keras.saving.get_custom_objects()
    for name, cls in INITIALIZERS.items():
        custom_objects[name] = cls
        custom_objects[cls.__name__] = cls


register()
