"""The depth sweep: per-layer statistics of a deep Dense stack at initialization, per initializer.

`depth_sweep` is the depth experiment of seed 001 (10 tanh layers of 500 units, 1000
standard-normal inputs; per-layer mean/std and histograms of the activations) and of Glorot &
Bengio (2010) (the std of the back-propagated gradient per layer), for any list of initializers
(`keras_initx.specs`), on a real Keras model per initializer. It measures with the engine of
`keras_initx.LayerStats` (`keras_initx.capture.build_probe`, rows by
`keras_initx.sinks.result_rows`), so a sweep row and a `LayerStats` row of the same layer and
tensor are the same numbers from the same code. `keras_initx.tables` gives the wide views
(`sweep_table`: `activation_std`, `gradient_std`, ... per initializer and layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from keras_initx.capture import build_probe
from keras_initx.sinks import result_rows
from keras_initx.specs import (
    InitializerLike,
    check_activation,
    initializer_for_layer,
    resolve_initializers,
    seeded_model,
)
from keras_initx.stats import DEFAULT_BINS
from keras_initx.validation import check_bool, check_int

__all__ = ["SEED_001_INITIALIZERS", "DepthSweep", "depth_sweep"]

# Seed 001's three initializations, labelled as the tutorial names them.
SEED_001_INITIALIZERS: dict[str, str] = {
    "small random (0.01*randn)": "random_normal(stddev=0.01)",
    "large random (1.0*randn)": "random_normal(stddev=1.0)",
    "xavier (randn/sqrt(fan_in))": (
        "variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')"
    ),
}

_FORWARD_TENSORS = ("activation", "preactivation")
_BACKWARD_TENSORS = ("activation_grad", "preactivation_grad")


@dataclass(frozen=True)
class DepthSweep:
    """What `depth_sweep` returns.

    Attributes:
        frame: the long frame: `initializer` then `keras_initx.sinks.COLUMNS` (`step` and
            `epoch` 0), one row per (initializer, Dense layer, tensor): `activation` (the layer's
            output), `preactivation` (its input to the activation; none for `linear`) and, with
            gradients, `activation_grad` and `preactivation_grad`. `layer` is the layer path
            (`depth_sweep/dense_3`), `layer_index` its 0-based depth. `keras_initx.tables.
            sweep_table(frame)` gives the wide view (`activation_std`, `gradient_std`, ...).
        histograms: with `histograms=True`, float64 `[len(frame), bins + 2]`: per row of
            `frame`, the probe's `[lo, hi, counts...]` (counts over `bins` equal bins of the
            tensor's [min, max]; `keras_initx.tables.histogram_table` makes rows per bin);
            otherwise None.
    """

    frame: pd.DataFrame
    histograms: np.ndarray | None = None


def depth_sweep(
    initializers: InitializerLike | Sequence[InitializerLike] | Mapping[str, InitializerLike],
    depth: int = 10,
    width: int = 500,
    activation: str = "tanh",
    n_samples: int = 1000,
    input_dim: int | None = None,
    seed: int = 0,
    gradients: bool = True,
    *,
    use_bias: bool = False,
    histograms: bool = False,
    bins: int = DEFAULT_BINS,
) -> DepthSweep:
    """Per-layer activation and gradient statistics of a deep Dense stack at initialization.

    For each initializer, builds a Keras model of `depth` layers `Dense(width, activation,
    use_bias)` (each gets its own draw of the initializer), feeds it `n_samples` standard-normal
    inputs of size `input_dim`, and measures every layer's output and pre-activation with
    `keras_initx.capture.build_probe`, all statistics of `keras_initx.stats`. With
    `gradients=True` it also back-propagates, as Glorot & Bengio (2010), a loss
    `L = sum(a_depth * R)` with `R` a fixed standard-normal matrix: the backward pass starts with
    unit-variance gradients at the last layer, the mirror image of the unit-variance inputs, so
    the `activation_grad` std shows how the backward signal grows or fades on its own way to
    the input. Each initializer's model is built after `keras.utils.set_random_seed(seed)`, so
    its numbers do not depend on the other entries.

    Args:
        initializers: see `keras_initx.specs.resolve_initializers`.
        depth: number of Dense layers (>= 1).
        width: units per Dense layer (>= 1).
        activation: a Keras activation name (`known_activations()`), e.g. tanh, sigmoid, relu,
            linear, selu.
        n_samples: number of input rows (>= 2).
        input_dim: input size; `None` means `width` (seed 001 uses 500 inputs for 500 units).
        seed: seeds the inputs, `R` and the weights.
        gradients: also run the backward pass.
        use_bias: give the Dense layers a (zero-initialized) bias.
        histograms: also return the histograms of every row (see `DepthSweep`).
        bins: histogram bins (>= 2; also the percentiles' resolution, as in `LayerStats`).

    Returns:
        A `DepthSweep`; its `frame` has the `LayerStats` columns plus `initializer`, initializers
        in the given order. Statistics are population (ddof=0) values over all samples and
        units; `frac_saturated` is NaN for unbounded activations.

    Example:
        >>> sweep = depth_sweep(SEED_001_INITIALIZERS)  # seed 001's three tables in one frame
        >>> keras_initx.tables.depth_table(sweep.frame, "activation_std")
    """
    labelled = resolve_initializers(initializers)
    for name, value, low in (("depth", depth, 1), ("width", width, 1), ("n_samples", n_samples, 2)):
        check_int(name, value, low)
    check_int("bins", bins, 2)
    if input_dim is not None:
        check_int("input_dim", input_dim, 1)
    check_activation(activation)
    check_bool("gradients", gradients)
    check_bool("histograms", histograms)
    input_dim = width if input_dim is None else input_dim

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, input_dim)).astype("float32")
    backward_seed = rng.standard_normal((n_samples, width)).astype("float32") if gradients else None
    tensors = _FORWARD_TENSORS + (_BACKWARD_TENSORS if gradients else ())

    def build(init: InitializerLike) -> keras.Model:
        return _dense_stack(init, depth, width, activation, input_dim, use_bias)

    probe, frames, counts = None, [], []
    for label, init in labelled.items():
        weights = seeded_model(init, build, x, seed).get_weights()
        if probe is None:
            # One probe for every initializer: traced once (most of a probe's cost), each
            # initializer's weights are then loaded into the same model.
            probe = build_probe(
                build("zeros"),
                tensors,
                loss=_backward_loss if gradients else None,
                histogram_bins=bins,
                histograms=histograms,
            )
        probe.model.set_weights(weights)
        result = probe(x, backward_seed)
        rows = result_rows(result, step=0)
        rows.insert(0, "initializer", label)
        frames.append(rows)
        counts.append(result.histograms)
    return DepthSweep(
        frame=pd.concat(frames, ignore_index=True),
        histograms=np.concatenate(counts) if histograms else None,
    )


def _backward_loss(r, output):
    """Glorot & Bengio's `L = sum(a_depth * R)`: dL/d a_depth = R, unit-variance gradients."""
    return keras.ops.sum(output * r)


def _dense_stack(
    init: InitializerLike,
    depth: int,
    width: int,
    activation: str,
    input_dim: int,
    use_bias: bool,
) -> keras.Model:
    """`depth` x Dense(width, activation): the probe records each one's pre-activation and
    output."""
    inputs = keras.Input((input_dim,), name="inputs")
    x = inputs
    for i in range(depth):
        x = keras.layers.Dense(
            width,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=initializer_for_layer(init, layer_index=i),
            name=f"dense_{i + 1}",
        )(x)
    return keras.Model(inputs, x, name="depth_sweep")
