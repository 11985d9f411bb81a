"""The width check (muP's "coordinate check"): how each layer's coordinates scale with width.

Yang & Hu (Tensor Programs IV, 2021) and Yang et al. (Tensor Programs V, 2022) check a
parametrization by building the same network at several widths, training a few steps and plotting
the typical size of each layer's activation entries against width: under a width-stable
parametrization (muP) the lines are flat; under the standard parametrization (SP: fan_in init, one
learning rate) the output logits grow with width after the first updates, which is why the best
learning rate of SP drifts with width.

`width_sweep` measures with the LayerStats engine (`keras_initx.capture.build_probe`, forward
only) and returns the long frame with a `width` column; `keras_initx.plots.plot_width_sweep` draws
it. The coordinate size is `rms` (root mean square of the entries; muP's check uses the mean
absolute value, which differs from it by a constant factor, sqrt(2/pi) for Gaussian entries, so
the slopes against width are the same); `std` and `mean` come too.

keras_initx offers the check, not a muP implementation: a muP model needs per-layer learning
rates and multipliers, which the model function sets up itself (the README and
`examples/width_check.py` build a muP-style readout from two Keras layers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd

from keras_initx.capture import build_probe
from keras_initx.comparison import train_val_split
from keras_initx.sinks import COLUMNS, result_rows
from keras_initx.validation import check_int

__all__ = ["width_sweep"]

_DEFAULT_LEARNING_RATE = 0.1


def width_sweep(
    model_fn: Callable[[int], keras.Model],
    widths: Sequence[int],
    steps: int = 3,
    *,
    data: str | tuple[Any, Any] = "digits",
    batch_size: int = 256,
    optimizer: Callable[[], keras.optimizers.Optimizer] | str | None = None,
    loss: Any = "sparse_categorical_crossentropy",
    tensors: Sequence[str] = ("activation",),
    layers: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Build the model at each width, train `steps` steps on one fixed batch, measure each step.

    For each width: `keras.utils.set_random_seed(seed)`, `model_fn(width)`, compiled with
    `optimizer` and `loss` unless `model_fn` compiled it; then `mean`, `std` and `rms` of the
    selected tensors of every layer at step 0 (the initialization) and after each of `steps`
    `train_on_batch` updates on the same batch.

    Args:
        model_fn: `model_fn(width) -> keras.Model`, built (with an `Input`). Layer names should
            not depend on the width, so that rows line up across widths (the `layer` paths
            leave out the model's own name, which Keras numbers per build).
        widths: two or more distinct widths (ints >= 1), e.g. `[64, 128, 256, 512, 1024]`.
        steps: training steps after the initialization (>= 0).
        data: `"digits"` (scikit-learn's digits, standardized, the first `batch_size` training
            examples of `keras_initx.comparison.train_val_split`) or `(x, y)`, of which the first
            `batch_size` rows are the fixed batch.
        batch_size: rows of the fixed batch.
        optimizer: a factory `() -> Optimizer` (a fresh one per width) or a Keras optimizer
            name; default `SGD(learning_rate=0.1)`. Used only for models `model_fn` left
            uncompiled.
        loss: the loss for uncompiled models.
        tensors: forward tensors to measure: `activation` and/or `preactivation`.
        layers: regular expression on layer paths (`keras_initx.capture.find_layers`).
        seed: weights (and the data split with `"digits"`).

    Returns:
        A DataFrame, `width` then `keras_initx.sinks.COLUMNS`: one row per (width, step, layer,
        tensor); statistics other than mean, std, rms are NaN.

    Raises:
        ValueError: fewer than two widths, repeated or non-positive widths, a negative `steps`,
            gradient tensors in `tensors`, a model that is not built.

    Example:
        >>> frame = width_sweep(lambda w: my_mlp(w), [64, 128, 256, 512], steps=3)
        >>> plots.plot_width_sweep(frame, path="coord_check.png")
    Reference: Yang, Hu et al., "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
        Hyperparameter Transfer", 2022 (the coordinate check, Fig. 5 and Appendix D.1).
    """
    widths = _checked_widths(widths)
    check_int("steps", steps, 0)
    check_int("batch_size", batch_size, 1)
    forward = ("activation", "preactivation")
    if isinstance(tensors, str) or not tensors or not set(tensors) <= set(forward):
        raise ValueError(
            f"Invalid value for argument `tensors`. Received: tensors={tensors!r}. Expected a "
            f"non-empty list from {sorted(forward)}: the check measures forward tensors."
        )
    x, y = _fixed_batch(data, batch_size, seed)
    frames = []
    for width in widths:
        keras.utils.set_random_seed(seed)
        model = model_fn(width)
        if not isinstance(model, keras.Model):
            raise TypeError(
                "Invalid type for argument `model_fn`. "
                f"Received: model_fn({width}) of type {type(model).__name__}. "
                "Expected a function returning a keras.Model."
            )
        if not model.compiled:
            model.compile(optimizer=_optimizer(optimizer), loss=loss)
        probe = build_probe(model, list(tensors), ["mean", "std", "rms"], layers=layers)
        for step in range(steps + 1):
            if step:
                model.train_on_batch(x, y)
            rows = result_rows(probe(x), step=step, epoch=0)
            # Keras numbers model names per build (functional, functional_1, ...): drop the
            # root name so that a layer's rows line up across widths.
            rows["layer"] = rows["layer"].str.slice(len(model.name) + 1)
            rows.insert(0, "width", np.int64(width))
            frames.append(rows)
    return pd.concat(frames, ignore_index=True).loc[:, ["width", *COLUMNS]]


def _checked_widths(widths: Sequence[int]) -> list[int]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(
            "Invalid type for argument `widths`. "
            f"Received: widths={widths!r}. Expected a list of ints."
        )
    for width in widths:
        check_int("widths", width, 1)
    if len(widths) < 2 or len(set(widths)) != len(widths):
        raise ValueError(
            f"Invalid value for argument `widths`. Received: widths={list(widths)!r}. Expected "
            "two or more distinct widths."
        )
    return sorted(int(w) for w in widths)


def _fixed_batch(data: str | tuple[Any, Any], batch_size: int, seed: int) -> tuple[Any, Any]:
    if isinstance(data, str):
        (x, y), _ = train_val_split(data, seed)  # the split `compare_training` trains on
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(
            "Invalid type for argument `data`. "
            f"Received: data of type {type(data).__name__}. Expected 'digits' or a tuple (x, y)."
        )
    return x[:batch_size], y[:batch_size]


def _optimizer(optimizer: Callable[[], Any] | str | None) -> Any:
    if optimizer is None:
        return keras.optimizers.SGD(learning_rate=_DEFAULT_LEARNING_RATE)
    if isinstance(optimizer, str):
        return keras.optimizers.get(optimizer)
    return optimizer()
