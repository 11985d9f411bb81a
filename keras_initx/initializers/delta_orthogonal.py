"""Delta-orthogonal convolution kernels: an orthogonal channel mixer at the spatial centre."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_initx.initializers.orthogonal import OrthogonalGain, orthogonal_matrix
from keras_initx.validation import check_kernel_shape

__all__ = ["DeltaOrthogonal"]


@keras.saving.register_keras_serializable(package="keras_initx")
class DeltaOrthogonal(OrthogonalGain):
    """Convolution kernel that is zero except for an orthogonal matrix at the spatial centre.

    Formula:     K[c] = gain * H, K[s] = 0 for every other spatial position s, where c is the
                 centre of the (odd) kernel window and H (in_channels x out_channels) is
                 Haar-orthogonal with orthonormal rows: H H^T = I (in_channels <= out_channels).
                 Conv*DTranspose kernels are (*kernel_size, filters, in_channels): there H is
                 filters x in_channels (filters <= in_channels).
    Variance:    gain^2 / out_channels per entry of H, 0 elsewhere. The layer maps every pixel's
                 channel vector x to gain * x H, so ||y|| = gain * ||x||: with "same" padding a
                 linear stack preserves norms exactly at any depth (dynamical isometry), and
                 `gain` adjusts for the nonlinearity.
    When to use: very deep plain CNNs (no batch norm, no skip connections) with tanh (gain
                 "tanh") or ReLU (gain "relu"); the kernel starts as a 1x1 convolution and learns
                 its spatial extent. For Dense kernels use `OrthogonalGain`.
    Args:
        gain: non-negative number or activation name (`keras_initx.calculate_gain` has the
            table), resolved and validated at construction, stored as given.
        seed: int, None, or `keras.random.SeedGenerator`, as for `OrthogonalGain` and Keras'
            `Orthogonal`: an int or None gives the same kernel on every call of one instance, a
            `SeedGenerator` a new one.
        input_axes, output_axes: accepted only as None. `EinsumDense` and `MultiHeadAttention`
            pass their fan axes here when they build; their kernels have no spatial window, so
            this raises a `ValueError` that says to use `orthogonal_gain` instead. Dense,
            Embedding and RNN kernels (rank 2) are refused at call for their rank.
    Example:
        >>> keras.layers.Conv2D(64, 3, padding="same", activation="tanh",
        ...                     kernel_initializer=DeltaOrthogonal(gain="tanh", seed=0))
    Reference:   Xiao, Bahri, Sohl-Dickstein, Schoenholz, Pennington, "Dynamical Isometry and a
                 Mean Field Theory of CNNs: How to Train 10,000-Layer Vanilla Convolutional
                 Neural Networks", ICML 2018 (Algorithm 2).
    """

    def __init__(
        self,
        gain: float | str = 1.0,
        seed: int | keras.random.SeedGenerator | None = None,
        input_axes: list[int] | None = None,
        output_axes: list[int] | None = None,
    ):
        if input_axes is not None or output_axes is not None:
            raise ValueError(
                "Invalid value for arguments `input_axes` and `output_axes`. "
                f"Received: input_axes={input_axes!r}, output_axes={output_axes!r}. "
                "Expected None: DeltaOrthogonal is for convolution kernels "
                "(*kernel_size, in_channels, out_channels); EinsumDense and MultiHeadAttention "
                "kernels have no spatial centre, use `orthogonal_gain` there."
            )
        super().__init__(gain=gain, seed=seed)

    def __call__(self, shape, dtype=None):
        shape = check_kernel_shape(
            shape, 3, "convolution kernel", "(*kernel_size, in_channels, out_channels)"
        )
        spatial, in_channels, out_channels = shape[:-2], shape[-2], shape[-1]
        if any(size % 2 == 0 for size in spatial):
            raise ValueError(
                "Invalid value for argument `shape`. "
                f"Received: shape={shape} with kernel size {spatial}. Expected odd kernel sizes "
                "(a delta kernel needs a centre tap)."
            )
        if in_channels > out_channels:
            # The shape alone does not say which layer asked: Conv*D kernels are
            # (..., in_channels, filters), Conv*DTranspose kernels (..., filters, in_channels).
            raise ValueError(
                "Invalid value for argument `shape`. "
                f"Received: shape={shape}, whose last two axes are {in_channels} > "
                f"{out_channels}. Expected shape[-2] <= shape[-1] (an {in_channels} x "
                f"{out_channels} matrix cannot have orthonormal rows): for Conv1D/2D/3D "
                f"(kernel (*kernel_size, in_channels, filters)) this is in_channels={in_channels}"
                f" > filters={out_channels}; for Conv1D/2D/3DTranspose (kernel (*kernel_size, "
                f"filters, in_channels)) filters={in_channels} > in_channels={out_channels}."
            )
        matrix = orthogonal_matrix(in_channels, out_channels, self.seed, dtype) * self._gain_value
        centre = np.zeros(spatial + (1, 1))
        centre[tuple(size // 2 for size in spatial)] = 1.0
        # Broadcast (*spatial, 1, 1) x (in, out): the matrix at the centre, zeros elsewhere.
        return ops.cast(centre, matrix.dtype) * matrix
