"""Orthogonal initialization with a gain given as a number or an activation name."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_initx.gains import resolve_gain
from keras_initx.initializers._checks import (
    check_float_dtype,
    check_kernel_shape,
    sampling_dtype,
)

__all__ = ["OrthogonalGain", "orthogonal_matrix"]


def orthogonal_matrix(
    num_rows: int,
    num_cols: int,
    seed: int | keras.random.SeedGenerator | None,
    dtype: str | None = None,
):
    """Draw a Haar-random matrix with orthonormal columns (tall) or rows (wide).

    Q of the QR decomposition of a Gaussian matrix, with the signs of diag(R) moved into Q so
    that the result is uniform over the orthogonal group (Mezzadri 2007), not biased by the QR
    routine's sign convention. A wide matrix is drawn transposed and transposed back.

    Args:
        num_rows: number of rows (for a kernel: prod(shape[:-1]), a unit's incoming weights).
        num_cols: number of columns (for a kernel: shape[-1], the units).
        seed: passed to `keras.random.normal`: an int (same matrix every call), a
            `keras.random.SeedGenerator` (a new matrix every call) or None (global generator).
        dtype: float dtype of the result, None -> `keras.config.floatx()`. bfloat16/float16 are
            computed in float32 (QR has no half-precision kernel) and cast; float64 stays float64.

    Returns:
        A `(num_rows, num_cols)` tensor W with W^T W = I if num_rows >= num_cols, else W W^T = I.

    Raises:
        ValueError: `dtype` is not a floating-point dtype.
    """
    dtype = check_float_dtype(dtype)
    tall_shape = (max(num_rows, num_cols), min(num_rows, num_cols))
    q, r = ops.qr(keras.random.normal(tall_shape, seed=seed, dtype=sampling_dtype(dtype)))
    q = q * ops.sign(ops.diagonal(r))
    if num_rows < num_cols:
        q = ops.transpose(q)
    return ops.cast(q, dtype)


@keras.saving.register_keras_serializable(package="keras_initx")
class OrthogonalGain(keras.initializers.Orthogonal):
    """Orthogonal matrix times a gain that may be an activation name.

    Formula:     W = gain * Q, Q Haar-orthogonal (QR of a Gaussian matrix, sign-fixed); kernels
                 of rank > 2 are drawn as (prod(shape[:-1]), shape[-1]) and reshaped.
    Variance:    gain^2 / max(prod(shape[:-1]), shape[-1]) per entry; exactly W^T W = gain^2 I
                 (tall or square) or W W^T = gain^2 I (wide), so every singular value is gain.
    When to use: deep linear/tanh/ReLU stacks and RNN recurrent kernels, where preserving norms
                 through depth matters; pass the activation as `gain` ("relu" -> sqrt(2),
                 "tanh" -> 5/3; the table is in `keras_initx.calculate_gain`).
    Args:
        gain: non-negative number or activation name; resolved (and validated) at construction,
            stored as given so `get_config` round-trips the name.
        seed: int, None, or `keras.random.SeedGenerator`, as for Keras' `Orthogonal`: an int or
            None gives the same matrix on every call of one instance, a `SeedGenerator` a new one.
    Example:
        >>> keras.layers.Dense(256, activation="relu",
        ...                    kernel_initializer=OrthogonalGain(gain="relu", seed=0))
    Reference:   Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics of learning
                 in deep linear neural networks", ICLR 2014.
    """

    def __init__(
        self, gain: float | str = 1.0, seed: int | keras.random.SeedGenerator | None = None
    ):
        self._gain_value = resolve_gain(gain)
        # Keras' Orthogonal stores `gain` as given and puts it in get_config, which is therefore
        # exactly our constructor arguments; it also gives us Keras' seed handling.
        super().__init__(gain=gain, seed=seed)

    def __call__(self, shape, dtype=None):
        shape = check_kernel_shape(shape)
        matrix = orthogonal_matrix(math.prod(shape[:-1]), shape[-1], self.seed, dtype)
        return ops.reshape(matrix * self._gain_value, shape)
