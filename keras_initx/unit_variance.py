"""LSUV: layer-sequential unit-variance initialization, data-driven rescaling of kernels.

Mishkin & Matas (2015) start from orthonormal kernels and then, layer by layer in depth order,
divide each kernel by the std of that layer's output on a data batch until it is ~1. Here the
per-layer std comes from one compiled forward probe (`keras_initx.capture.build_probe`), traced
once and re-run after each rescaling, so a 50-layer model costs a few dozen forward passes and
no sub-model per layer.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import keras
import pandas as pd

from keras_initx.capture import LayerInfo, build_probe, find_layers
from keras_initx.initializers.orthogonal import OrthogonalGain
from keras_initx.validation import check_backend, check_int, check_model_input, check_number

__all__ = ["LSUV_COLUMNS", "lsuv"]

LSUV_COLUMNS = [
    "layer",
    "layer_index",
    "layer_class",
    "activation",
    "iterations",
    "std_before",
    "std_after",
    "scale",
    "converged",
]


def lsuv(
    model: keras.Model,
    x_batch: Any,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    layers: str | None = None,
    orthogonal: bool = True,
    seed: int | None = None,
    verbose: int = 0,
) -> pd.DataFrame:
    """Rescale every kernel so that each layer's pre-activation has std `target_std` on a batch.

    Steps (Mishkin & Matas 2015, Algorithm 1):
      1. With `orthogonal=True`, re-draw every selected kernel as an orthonormal matrix
         (`OrthogonalGain(gain=1)`: the kernel flattened to (prod(shape[:-1]), shape[-1])).
      2. For each selected layer in depth order: measure the std of its pre-activation on
         `x_batch`, i.e. the output of its affine part before its own activation (the whole
         output for a layer without activation), and multiply its kernel by
         `target_std / std`; repeat until `|std - target_std| <= tol` or `max_iter` rescalings
         were made. The layer's bias is left alone (the paper's biases start at zero).
    Layers after the current one do not affect it, so the measurement that confirms one layer
    also gives the next layer's starting std: the forward passes total one plus the number of
    rescalings, all through one compiled function. A layer that does not converge (still outside
    the tolerance after `max_iter` rescalings, or whose std is 0, NaN or Inf and cannot be
    rescaled) is reported with `converged=False` and a `RuntimeWarning`; the others go on.

    Args:
        model: a built Keras model (Sequential, Functional or nested; an unbuilt Sequential is
            built from `x_batch`). Layers with a `kernel` (Dense, Conv1D/2D/3D, ...) are scaled,
            the others skipped.
        x_batch: a batch the model accepts, e.g. a few hundred training inputs; its statistics
            set the scale, so it should look like the training data.
        target_std: the pre-activation std to reach, > 0.
        tol: accepted distance from `target_std`, > 0.
        max_iter: most rescalings per layer, >= 1.
        layers: optional regular expression on layer paths (as `LayerStats`); only matching
            layers with kernels are re-drawn and scaled.
        orthogonal: re-draw the selected kernels orthonormally first (the paper's LSUV);
            False keeps the current kernels and only rescales them.
        seed: int or None, seeds the orthogonal re-draw (layer i uses seed + i).
        verbose: 0 silent, 1 one line per layer.

    Returns:
        A DataFrame with one row per scaled layer, in depth order: `layer` (path, as in
        `LayerStats`), `layer_index` (0-based, among scaled layers), `layer_class`,
        `activation`, `iterations` (rescalings made), `std_before` (pre-activation std when
        LSUV reached the layer: after the re-draw and the rescaling of earlier layers),
        `std_after`, `scale` (product of the factors applied to the kernel), `converged`.

    Raises:
        ValueError: `target_std`, `tol` or `max_iter` out of range, an `x_batch` that does not
            fit the model, or no layer with a kernel to scale.
        TypeError: `model` is not a Keras model or an argument has the wrong type.

    Example:
        >>> model = keras.Sequential([keras.Input((64,))] + [
        ...     keras.layers.Dense(64, "tanh") for _ in range(20)] + [keras.layers.Dense(10)])
        >>> frame = lsuv(model, x_train[:256])
        >>> frame[["layer", "iterations", "std_before", "std_after"]]

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016 (arXiv:1511.06422, 2015).
    """
    check_backend("lsuv")
    check_number("target_std", target_std, low=0, low_inclusive=False, high_inclusive=False)
    check_number("tol", tol, low=0, low_inclusive=False, high_inclusive=False)
    check_int("max_iter", max_iter, 1)
    if not isinstance(orthogonal, bool):
        raise TypeError(
            "Invalid type for argument `orthogonal`. "
            f"Received: orthogonal={orthogonal!r}. Expected True or False."
        )
    x_batch = check_model_input(model, x_batch, "x_batch")
    selected = _kernel_layers(model, layers)
    if orthogonal:
        for info in selected:
            kernel = info.variable("kernel")
            draw = OrthogonalGain(seed=None if seed is None else seed + info.index)
            kernel.assign(draw(kernel.shape, kernel.dtype))

    exact_paths = "^(?:" + "|".join(re.escape(info.path) for info in selected) + ")$"
    probe = build_probe(
        model, tensors=["activation", "preactivation"], stats=["std"], layers=exact_paths
    )
    result = probe(x_batch)
    rows = []
    for info in probe.layers:
        tensor = "preactivation" if "preactivation" in info.tensors else "activation"
        std = std_before = result.get(info.path, tensor, "std")
        iterations, scale = 0, 1.0
        while _rescalable(std) and abs(std - target_std) > tol and iterations < max_iter:
            factor = target_std / std
            info.variable("kernel").assign(info.variable("kernel") * factor)
            scale *= factor
            iterations += 1
            result = probe(x_batch)
            std = result.get(info.path, tensor, "std")
        converged = math.isfinite(std) and abs(std - target_std) <= tol
        rows.append(
            {
                "layer": info.path,
                "layer_index": info.index,
                "layer_class": info.layer_class,
                "activation": info.activation,
                "iterations": iterations,
                "std_before": std_before,
                "std_after": std,
                "scale": scale,
                "converged": converged,
            }
        )
        if not converged:
            reason = (
                f"after {iterations} rescalings (max_iter={max_iter})"
                if _rescalable(std)
                else "and it cannot be rescaled"
            )
            warnings.warn(
                f"lsuv: layer '{info.path}' did not converge: its {tensor} std is {std:.4g} "
                f"{reason}; target {target_std} +- {tol}.",
                RuntimeWarning,
                stacklevel=2,
            )
        if verbose:
            print(
                f"lsuv {info.path}: std {std_before:.4g} -> {std:.4g} in {iterations} "
                f"iterations{'' if converged else ' (not converged)'}",
                flush=True,
            )
    return pd.DataFrame(rows, columns=LSUV_COLUMNS)


def _kernel_layers(model: keras.Model, layers: str | None) -> list[LayerInfo]:
    """The selected layers that have a kernel, depth order; a ValueError when there are none."""
    found = find_layers(model, layers=layers)
    selected = [info for info in found if "kernel" in info.tensors]
    if not selected:
        raise ValueError(
            "Invalid value for argument `model`. "
            f"Received: model={model.name!r} with layers={layers!r}, selecting "
            f"{sorted(info.path for info in found)}, none with a kernel. Expected at least one "
            "layer with a kernel to scale (Dense, Conv1D/2D/3D, ...)."
        )
    return selected


def _rescalable(std: float) -> bool:
    return math.isfinite(std) and std > 0
