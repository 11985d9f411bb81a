"""Orthogonal initialization with a gain given as a number or an activation name."""

from __future__ import annotations

import keras
from keras import ops

from keras_initx.gains import resolve_gain
from keras_initx.initializers._axes import FanAxesInitializer, check_axes, matrix_to_kernel
from keras_initx.initializers._dtypes import sampling_dtype
from keras_initx.validation import check_float_dtype, check_int

__all__ = ["OrthogonalGain", "orthogonal_matrix"]


def orthogonal_matrix(
    num_rows: int,
    num_cols: int,
    seed: int | keras.random.SeedGenerator | None,
    dtype: str | None = None,
    num_matrices: int | None = None,
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
        num_matrices: None for one matrix, or n for n independent ones drawn at once (one
            Gaussian tensor, one batched QR), stacked as `(n, num_rows, num_cols)`.

    Returns:
        A `(num_rows, num_cols)` tensor W with W^T W = I if num_rows >= num_cols, else W W^T = I
        (with `num_matrices`, a stack of such matrices).

    Raises:
        ValueError: `dtype` is not a floating-point dtype.
    """
    dtype = check_float_dtype(dtype)
    batch = () if num_matrices is None else (num_matrices,)
    tall_shape = batch + (max(num_rows, num_cols), min(num_rows, num_cols))
    q, r = ops.qr(keras.random.normal(tall_shape, seed=seed, dtype=sampling_dtype(dtype)))
    q = q * ops.expand_dims(ops.sign(ops.diagonal(r, axis1=-2, axis2=-1)), -2)
    if num_rows < num_cols:
        q = ops.swapaxes(q, -1, -2)
    return ops.cast(q, dtype)


@keras.saving.register_keras_serializable(package="keras_initx")
class OrthogonalGain(keras.initializers.Orthogonal, FanAxesInitializer):
    """Orthogonal matrix times a gain that may be an activation name.

    Formula:     W = gain * Q, Q Haar-orthogonal (QR of a Gaussian matrix, sign-fixed), with the
                 kernel read as a (fan_in, units) matrix: (prod(shape[:-1]), shape[-1]) as Keras'
                 `Orthogonal` flattens Dense, conv and RNN kernels; for `EinsumDense` and
                 `MultiHeadAttention` (which pass `input_axes`/`output_axes`), (product of the input
                 axes, product of the output axes), so the layer is an orthogonal map from its
                 inputs to its outputs. Keras' `Orthogonal` ignores the einsum axes: on an MHA
                 query kernel (dim, heads, head_dim) it flattens (dim * heads, head_dim): entries
                 of variance 1/(dim * heads), each unit's pre-activation variance 1/heads of ours
                 when dim = heads * head_dim; ours draws a (dim, heads * head_dim) matrix. Both
                 agree where the input axes lead and the output is the last axis alone (Dense,
                 conv, RNN, the MHA output projection).
                 With `blocks=b` the columns are cut into b equal blocks, each an independent
                 orthogonal matrix.
    Variance:    gain^2 / max(rows, cols / blocks) per entry; exactly W^T W = gain^2 I (tall or
                 square) or W W^T = gain^2 I (wide) per block, so every singular value is gain.
    When to use: deep linear/tanh/ReLU stacks and RNN recurrent kernels, where preserving norms
                 through depth matters; pass the activation as `gain` ("relu" -> sqrt(2),
                 "tanh" -> 5/3; the table is in `keras_initx.calculate_gain`).
                 LSTM/GRU recurrent kernels are (units, 4 * units) / (units, 3 * units), one column
                 block per gate. With `blocks=1` (Keras' `Orthogonal` does the same) the whole wide
                 matrix has orthonormal rows, so each gate's (units, units) block is not orthogonal
                 (its singular values have RMS 1/2 for an LSTM, 1/sqrt(3) for a GRU, and spread
                 from near 0 to sqrt(3)/2 or sqrt(8)/3); `blocks=4` (LSTM) or `blocks=3` (GRU)
                 makes every gate's block gain * orthogonal. On an MHA projection,
                 `blocks=num_heads` makes each head's (dim, head_dim) block orthogonal.
    Args:
        gain: non-negative number or activation name; resolved (and validated) at construction,
            stored as given so `get_config` round-trips the name.
        seed: int, None, or `keras.random.SeedGenerator`, as for Keras' `Orthogonal`: an int or
            None gives the same matrix on every call of one instance, a `SeedGenerator` a new one.
        blocks: int >= 1 that divides the number of units (columns); each column block is
            drawn as its own orthogonal matrix.
        input_axes, output_axes: kernel axes read as the matrix's rows and columns, or None
            (both) for (prod(shape[:-1]), shape[-1]); `EinsumDense` and `MultiHeadAttention`
            set them when they build.
    Example:
        >>> keras.layers.Dense(256, activation="relu",
        ...                    kernel_initializer=OrthogonalGain(gain="relu", seed=0))
        >>> keras.layers.LSTM(64, recurrent_initializer=OrthogonalGain(blocks=4))
    Reference:   Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics of learning
                 in deep linear neural networks", ICLR 2014.
    """

    def __init__(
        self,
        gain: float | str = 1.0,
        seed: int | keras.random.SeedGenerator | None = None,
        blocks: int = 1,
        input_axes: list[int] | None = None,
        output_axes: list[int] | None = None,
    ):
        self._gain_value = resolve_gain(gain)
        check_int("blocks", blocks, 1)
        input_axes, output_axes = check_axes(input_axes, output_axes)
        # Keras' Orthogonal stores `gain` as given and gives us its seed handling.
        super().__init__(gain=gain, seed=seed)
        self.blocks = int(blocks)
        self.input_axes, self.output_axes = input_axes, output_axes

    def __call__(self, shape, dtype=None):
        rows, cols, order = self.kernel_layout(shape)
        if cols % self.blocks:
            raise ValueError(
                "Invalid value for argument `blocks`. "
                f"Received: blocks={self.blocks} for shape={tuple(shape)} with {cols} units "
                "(columns). Expected a divisor of the number of units."
            )
        if self.blocks == 1:
            matrix = orthogonal_matrix(rows, cols, self.seed, dtype)
        else:
            stack = orthogonal_matrix(rows, cols // self.blocks, self.seed, dtype, self.blocks)
            # (blocks, rows, c) -> (rows, blocks * c): block i fills columns [i c, (i + 1) c),
            # i.e. gate i of an LSTM's (units, 4 * units) kernel.
            matrix = ops.reshape(ops.transpose(stack, (1, 0, 2)), (rows, cols))
        return matrix_to_kernel(matrix * self._gain_value, shape, order)

    def get_config(self) -> dict:
        config = {"gain": self.gain, "seed": super().get_config()["seed"]}
        if self.blocks != 1:  # left out at its default, like the axes: older configs unchanged
            config["blocks"] = self.blocks
        return {**config, **self.axes_config()}
