"""The dtype rule shared by the keras_initx initializers (their argument checks are in
`keras_initx.validation`)."""

from __future__ import annotations

__all__ = ["sampling_dtype"]


def sampling_dtype(dtype: str) -> str:
    """The dtype to draw (and factorize) in before casting to a standardized float `dtype`.

    16-bit floats are drawn in float32: Keras' random ops on TensorFlow fill a bfloat16 uniform
    from 7 random mantissa bits (128 levels, mean shifted by -limit/128) and QR has no
    half-precision kernel; float32 and float64 are drawn as they are.
    """
    return "float32" if dtype in ("bfloat16", "float16") else dtype
