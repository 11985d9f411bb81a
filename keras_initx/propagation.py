"""Signal propagation of any built model at its current weights, with the LayerStats engine.

`signal_propagation(model, x)` is one `LayerStats` measurement without a `fit`: the same compiled
probe (`keras_initx.capture.build_probe`), the same rows (`keras_initx.sinks.result_rows`), so its
frame equals a `LayerStats` step-0 frame of the same model and batch, plus the diagnosis. It works
on whatever `build_probe` walks: Sequential, Functional, nested and subclassed models, with Conv,
BatchNormalization, residual additions, attention. `keras_initx.plots.plot_signal_propagation`
draws it as the seed figures (std per layer in depth order, activations and back-propagated
gradients), like timm's signal-propagation plots (Brock, De & Smith 2021) for Keras.

Without labels the gradients are those of a random readout: y is drawn standard normal in the
output's shape and the loss is sum(y * output) / batch, so each example's output gradient is
a unit-variance random direction (divided by the batch size, as a mean loss would) and the
`activation_grad` rows show how the network amplifies or attenuates it on the way back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_initx.capture import build_probe
from keras_initx.diagnosis import diagnose, format_findings
from keras_initx.sinks import result_rows
from keras_initx.validation import input_mismatch

__all__ = ["SignalPropagation", "random_readout_loss", "signal_propagation"]


@dataclasses.dataclass(frozen=True)
class SignalPropagation:
    """What `signal_propagation` returns.

    Attributes:
        frame: one row per (layer, tensor), columns `keras_initx.sinks.COLUMNS`, `step` 0 and
            `epoch` 0: exactly a `LayerStats` step-0 measurement.
        findings: `keras_initx.diagnose(frame)`: vanishing, exploding, saturated, dead layers.
        labels: `"given"` (y and the compiled or given loss), `"random readout"` or `"none"`
            (forward tensors only).
    """

    frame: pd.DataFrame
    findings: pd.DataFrame
    labels: str

    def table(self, stat: str = "std") -> pd.DataFrame:
        """`stat` per layer (rows, depth order) and tensor (columns): the plot as numbers."""
        return self.frame.pivot_table(
            index=["layer_index", "layer"], columns="tensor", values=stat, sort=True
        ).droplevel("layer_index")

    def report(self) -> str:
        """The findings as text (`keras_initx.format_findings`)."""
        return format_findings(self.findings)


def random_readout_loss(y_true: Any, y_pred: Any) -> tf.Tensor:
    """sum(y_true * y_pred) / batch over every output: a loss whose output gradient is y_true/B.

    With y_true ~ N(0, 1) it back-propagates a random unit-variance direction, the label-free
    gradient `signal_propagation` uses.
    """
    terms = [
        tf.reduce_sum(tf.cast(t, p.dtype) * p) / tf.cast(tf.shape(p)[0], p.dtype)
        for t, p in zip(tf.nest.flatten(y_true), tf.nest.flatten(y_pred), strict=True)
    ]
    return tf.add_n(terms)


def signal_propagation(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    loss: Callable[[Any, Any], Any] | str | None = None,
    gradients: bool = True,
    tensors: Sequence[str] | None = None,
    stats: Sequence[str] | None = None,
    layers: str | None = None,
    layer_classes: Sequence[str | type] | None = None,
    training: bool = False,
    seed: int = 0,
) -> SignalPropagation:
    """Measure every layer of a built model on one batch at its current weights.

    Args:
        model: a built Keras model (Sequential, Functional, nested, subclassed); it need not be
            compiled. Nothing in it changes.
        x: one batch of inputs (an array, or a list/dict of arrays for several inputs).
        y: labels for `x`; with them the gradients are those of the model's compiled loss (or
            `loss`). None: a random readout (see the module docstring).
        loss: `loss(y_true, y_pred) -> scalar`, or a Keras loss name, used with `y`; default the
            compiled loss.
        gradients: also measure the back-propagated tensors (`activation_grad`, ...). False:
            forward only, no labels needed.
        tensors: names from `keras_initx.capture.TENSORS` (default: all, or the forward ones
            when `gradients=False`).
        stats: names from `keras_initx.stats.STAT_NAMES` (default all).
        layers: regular expression on layer paths (`keras_initx.capture.find_layers`).
        layer_classes: class names or classes to keep.
        training: measure in training mode (batch statistics, dropout); state is restored.
        seed: the random readout's draw.

    Returns:
        A `SignalPropagation` (frame, findings).

    Raises:
        ValueError: an unbuilt model, `x` not matching the model's inputs, a `y` without a loss,
            unknown names (as `build_probe`).

    Example:
        >>> result = keras_initx.signal_propagation(model, x[:256])
        >>> print(result.report()); plots.plot_signal_propagation(result.frame, path="sp.png")
    """
    mismatch = input_mismatch(model, x)
    if mismatch is not None:
        raise ValueError(
            f"Invalid value for argument `x`. Received: x of shape {mismatch[0]}. Expected the "
            f"model's input shape {mismatch[1]} (None: any size)."
        )
    if not model.built:
        model(x)
    if tensors is None and not gradients:
        tensors = ["activation", "preactivation", "kernel"]
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if not gradients:
        labels = "none"
    elif y is None:
        labels, loss = "random readout", random_readout_loss
        y = _random_like(model(x, training=False), seed)
    else:
        labels = "given"
    probe = build_probe(
        model,
        tensors,
        stats,
        layers=layers,
        layer_classes=layer_classes,
        training=training,
        loss=loss,
    )
    result = probe(x, y if probe.needs_labels else None)
    frame = result_rows(result, step=0, epoch=0)
    return SignalPropagation(frame=frame, findings=diagnose(frame), labels=labels)


def _random_like(outputs: Any, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    return tf.nest.map_structure(
        lambda t: rng.standard_normal(tuple(t.shape)).astype(t.dtype.name), outputs
    )
