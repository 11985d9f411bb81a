"""Fan axes: which kernel axes are a unit's inputs, and how EinsumDense tells an initializer.

Keras' `EinsumDense` (and so `MultiHeadAttention`, whose projections are EinsumDense layers)
passes its kernel's input and output axes only to initializers that are
`keras.initializers.VarianceScaling` instances: in `build` it rebuilds such an initializer with
`from_config({**get_config(), "seed": ..., "input_axes": [...], "output_axes": [...]})`
(keras/src/layers/core/einsum_dense.py). Every keras_initx initializer therefore derives from
`FanAxesInitializer`, a `VarianceScaling`, and accepts those two arguments; the ones whose draw is
not a variance scaling (orthogonal, sparse) override `__call__` and `get_config` and leave the
inherited `scale`/`mode`/`distribution` unused. Configs list the axes only when they are set, so
the config (and an experiment's label) of an initializer built without them is what it was before
they existed.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_initx.gains import compute_fans
from keras_initx.validation import check_kernel_shape

__all__ = ["FanAxesInitializer", "check_axes", "kernel_layout", "matrix_to_kernel"]


def check_axes(
    input_axes: Sequence[int] | None, output_axes: Sequence[int] | None
) -> tuple[list[int] | None, list[int] | None]:
    """Validate `input_axes`/`output_axes` at construction; return them as lists of ints.

    Both are None (Keras' fan convention on the shape) or both are sequences of distinct ints;
    whether they fit a shape is checked at call (`kernel_layout`).
    """
    if (input_axes is None) != (output_axes is None):
        raise ValueError(
            "Invalid value for arguments `input_axes` and `output_axes`. "
            f"Received: input_axes={input_axes!r}, output_axes={output_axes!r}. "
            "Expected both None or both lists of kernel axes."
        )
    if input_axes is None:
        return None, None
    checked = []
    for argument, axes in (("input_axes", input_axes), ("output_axes", output_axes)):
        is_ints = isinstance(axes, Sequence) and not isinstance(axes, str)
        if not is_ints or any(
            not isinstance(a, numbers.Integral) or isinstance(a, bool) for a in axes
        ):
            raise TypeError(
                f"Invalid type for argument `{argument}`. Received: {argument}={axes!r}. "
                "Expected a list of ints (kernel axes) or None."
            )
        checked.append([int(a) for a in axes])
    if len(set(checked[0] + checked[1])) != len(checked[0]) + len(checked[1]):
        raise ValueError(
            "Invalid value for arguments `input_axes` and `output_axes`. "
            f"Received: input_axes={input_axes!r}, output_axes={output_axes!r}. "
            "Expected distinct axes: each kernel axis is an input or an output axis, not both."
        )
    return checked[0], checked[1]


def kernel_layout(
    shape: Sequence[int], input_axes: list[int] | None, output_axes: list[int] | None
) -> tuple[int, int, tuple[int, ...]]:
    """The kernel read as a `(fan_in, units)` matrix: `(rows, cols, order)`.

    Without axes: Keras' `Orthogonal` view, `(prod(shape[:-1]), shape[-1])` (rank >= 2), whose
    rows are `compute_fans`' fan_in for Dense and conv kernels. With axes: rows = product of the
    input axes (fan_in), cols = product of the output axes (fan_out), `compute_fans` with those
    axes; together they must name every kernel axis once. `order` lists the kernel axes, input
    axes first, for `matrix_to_kernel`.
    """
    if input_axes is None:
        shape = check_kernel_shape(shape)
        input_axes, output_axes = list(range(len(shape) - 1)), [len(shape) - 1]
    else:
        shape = tuple(int(d) for d in shape)
        rank = len(shape)
        if any(not -rank <= a < rank for a in input_axes + output_axes) or sorted(
            a % rank for a in input_axes + output_axes
        ) != list(range(rank)):
            raise ValueError(
                "Invalid value for arguments `input_axes` and `output_axes`. "
                f"Received: input_axes={input_axes}, output_axes={output_axes} for "
                f"shape={shape} of rank {rank}. Expected the two to name every axis in "
                f"[0, {rank}) exactly once."
            )
        input_axes = [a % rank for a in input_axes]
        output_axes = [a % rank for a in output_axes]
    rows, cols = compute_fans(shape, input_axes, output_axes)
    return rows, cols, tuple(input_axes + output_axes)


def matrix_to_kernel(matrix, shape: Sequence[int], order: tuple[int, ...]):
    """Place a `(rows, cols)` matrix from `kernel_layout(shape, ...)` back into `shape`."""
    shape = tuple(int(d) for d in shape)
    kernel = ops.reshape(matrix, [shape[a] for a in order])
    if list(order) == sorted(order):
        return kernel
    return ops.transpose(kernel, [int(i) for i in np.argsort(order)])


class FanAxesInitializer(keras.initializers.VarianceScaling):
    """A `VarianceScaling` so that `EinsumDense` hands it its fan axes (see the module doc).

    Subclasses store `input_axes`/`output_axes` (validated by `check_axes`) and read the kernel
    with `self.kernel_layout(shape)`.
    """

    def kernel_layout(self, shape: Sequence[int]) -> tuple[int, int, tuple[int, ...]]:
        """`kernel_layout` with this initializer's axes."""
        return kernel_layout(shape, self.input_axes, self.output_axes)

    def axes_config(self) -> dict:
        """The `get_config` entries for the axes: both when set, none when None."""
        if self.input_axes is None:
            return {}
        return {"input_axes": self.input_axes, "output_axes": self.output_axes}
