"""Argument checks and dtype rules shared by every keras_initx initializer (one place each)."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def check_float_dtype(dtype: object) -> str:
    """Standardize `dtype` (`None` means `keras.config.floatx()`) and reject non-float dtypes.

    Raises:
        ValueError: naming `dtype` when it is unknown or not a floating-point dtype; an integer
            kernel drawn from a continuous distribution would silently round to zeros.
    """
    try:
        standard = keras.backend.standardize_dtype(dtype)
    except (ValueError, TypeError):
        standard = None
    if standard is None or not keras.backend.is_float_dtype(standard):
        raise ValueError(
            "Invalid value for argument `dtype`. "
            f"Received: dtype={dtype!r}. "
            "Expected a floating-point dtype: one of bfloat16, float16, float32, float64."
        )
    return standard


def sampling_dtype(dtype: str) -> str:
    """The dtype to draw (and factorize) in before casting to a standardized float `dtype`.

    16-bit floats are drawn in float32: Keras' random ops on TensorFlow fill a bfloat16 uniform
    from 7 random mantissa bits (128 levels, mean shifted by -limit/128) and QR has no
    half-precision kernel; float32 and float64 are drawn as they are.
    """
    return "float32" if dtype in ("bfloat16", "float16") else dtype


def check_kernel_shape(
    shape: Sequence[int],
    min_rank: int = 2,
    kind: str = "kernel",
    layout: str = "(fan_in, units) or (*kernel_size, in_channels, filters)",
) -> tuple[int, ...]:
    """Return `shape` as a tuple of ints, or raise a `ValueError` when its rank is below
    `min_rank`.

    Initializers that reason about a unit's incoming weights need Keras' kernel layout
    `(..., in, out)`, i.e. rank >= 2; convolution-only ones ask for more. `kind` and `layout`
    say, in the message, which shape was expected.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < min_rank:
        raise ValueError(
            "Invalid value for argument `shape`. "
            f"Received: shape={shape} of rank {len(shape)}. "
            f"Expected a {kind} shape of rank >= {min_rank}: {layout}."
        )
    return shape
