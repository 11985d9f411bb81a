"""Sparse initialization: every unit gets exactly k non-zero incoming weights (Martens 2010)."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_initx.initializers._axes import FanAxesInitializer, check_axes, matrix_to_kernel
from keras_initx.initializers._dtypes import sampling_dtype
from keras_initx.validation import check_float_dtype, check_int, check_number

__all__ = ["Sparse"]

_DEFAULT_SPARSITY = 0.9
_INT32_LIMIT = 2**31


@keras.saving.register_keras_serializable(package="keras_initx")
class Sparse(keras.initializers.RandomNormal, FanAxesInitializer):
    """Each output unit gets exactly k non-zero incoming weights from N(0, stddev^2), the rest 0.

    Formula:     for each unit (kernel column, or conv filter) pick k of its fan_in incoming
                 weights uniformly at random, draw them from N(0, stddev^2), set the others to 0;
                 fan_in = prod(shape[:-1]) (Keras' fan-in for Dense and conv kernels). On
                 `EinsumDense`/`MultiHeadAttention` kernels, which pass `input_axes`/`output_axes`,
                 a unit is one index over the output axes and its incoming weights span the
                 input axes: fan_in = product of the input axes (an MHA query kernel
                 (dim, heads, head_dim) has heads * head_dim units of fan_in dim each).
                 k = fan_in - ceil(sparsity * fan_in) (torch.nn.init.sparse_: `sparsity` is the
                 fraction of ZEROS), or k = num_nonzero (Martens' fixed count, e.g. 15).
    Variance:    (k / fan_in) * stddev^2 per entry; k * stddev^2 per unit's input sum. With the
                 default stddev="auto" (1/sqrt(k)) that is 1/fan_in per entry and 1 per unit, so
                 a unit's pre-activation variance is its inputs' (LeCun's scale): deep tanh
                 stacks keep their signal. A fixed stddev shrinks the signal by sqrt(k) * stddev
                 per layer: torch's and Lasagne's stddev=0.01 with k=6 (fan_in 64) gives x0.024
                 per layer, 1e-13 after 8 layers; pass it only to reproduce them.
    When to use: deep or recurrent nets trained without normalization (Martens' Hessian-free
                 setting), to get large individual weights without large total input; units do
                 not saturate as fan_in grows because k stays fixed.
    Args:
        sparsity: fraction of zeros among each unit's incoming weights, in [0, 1). Lasagne's
            `Sparse(sparsity=0.1)` means 10 % NON-zero, i.e. ours with sparsity=0.9. Set to
            None (and stored as None) when `num_nonzero` is given; the two are exclusive, so
            `num_nonzero` with any sparsity other than None or the default 0.9 raises.
        stddev: non-negative std of the non-zero weights, or "auto" (default) for 1/sqrt(k).
            torch.nn.init.sparse_ and lasagne.init.Sparse use 0.01.
        num_nonzero: int k >= 1, the number of non-zero incoming weights per unit (must not
            exceed fan_in, checked at call); None to use `sparsity`.
        seed: int, None, or `keras.random.SeedGenerator`, as for Keras' `RandomNormal`: an int
            or None gives the same kernel on every call of one instance, a `SeedGenerator` a new
            one.
        input_axes, output_axes: kernel axes of a unit's incoming weights and of the units, or
            None (both) for (prod(shape[:-1]), shape[-1]); `EinsumDense` and
            `MultiHeadAttention` set them when they build.
    Example:
        >>> keras.layers.Dense(512, activation="tanh",
        ...                    kernel_initializer=Sparse(num_nonzero=15, stddev="auto"))
    Reference:   Martens, "Deep learning via Hessian-free optimization", ICML 2010;
                 torch.nn.init.sparse_; lasagne.init.Sparse.
    """

    def __init__(
        self,
        sparsity: float | None = _DEFAULT_SPARSITY,
        stddev: float | str = "auto",
        num_nonzero: int | None = None,
        seed: int | keras.random.SeedGenerator | None = None,
        input_axes: list[int] | None = None,
        output_axes: list[int] | None = None,
    ):
        if num_nonzero is None:
            check_number("sparsity", sparsity, low=0, high=1, high_inclusive=False)
            sparsity = float(sparsity)
        else:
            if sparsity not in (None, _DEFAULT_SPARSITY):
                raise ValueError(
                    "Invalid value for argument `sparsity`. "
                    f"Received: sparsity={sparsity!r} with num_nonzero={num_nonzero!r}. "
                    "Expected sparsity=None (or left at its default) when num_nonzero is given: "
                    "the two are exclusive ways to set the count of non-zero weights."
                )
            check_int("num_nonzero", num_nonzero, 1)
            num_nonzero, sparsity = int(num_nonzero), None
        stddev = _checked_stddev(stddev)
        input_axes, output_axes = check_axes(input_axes, output_axes)
        super().__init__(mean=0.0, stddev=stddev, seed=seed)
        self.sparsity = sparsity
        self.num_nonzero = num_nonzero
        self.input_axes, self.output_axes = input_axes, output_axes

    def __call__(self, shape, dtype=None):
        dtype = check_float_dtype(dtype)
        fan_in, units, order = self.kernel_layout(shape)
        shape = tuple(int(d) for d in shape)
        if fan_in == 0 or units == 0:
            # An empty kernel (a zero-size dimension) has nothing to draw: Keras' own draw it
            # empty too; k and its 1/sqrt(k) are undefined there.
            return ops.zeros(shape, dtype)
        k = self._nonzero_count(fan_in, shape)
        stddev = 1.0 / math.sqrt(k) if self.stddev == "auto" else self.stddev
        # Two draws (selection keys, values) must come from distinct streams: an int seed feeds
        # both from a fresh generator, so repeated calls still repeat (Keras' int-seed rule).
        seed = self.seed
        if not isinstance(seed, keras.random.SeedGenerator):
            seed = keras.random.SeedGenerator(seed)
        keys = keras.random.uniform((units, fan_in), seed=seed)
        # top_k returns exactly k indices per row even if keys tie (a threshold would not).
        _, picked = ops.top_k(keys, k, sorted=False)
        values = keras.random.normal(
            (units * k,), stddev=stddev, dtype=sampling_dtype(dtype), seed=seed
        )
        # Position of entry (input i, unit u) in the flattened (fan_in, units) matrix.
        index_dtype = "int32" if units * fan_in < _INT32_LIMIT else "int64"
        units_column = ops.arange(units, dtype=index_dtype)[:, None]
        flat_index = ops.reshape(ops.cast(picked, index_dtype) * units + units_column, (-1,))
        # Indices are distinct, so the segment sum places each value once; on TensorFlow it is
        # about twice as fast as ops.scatter.
        dense = ops.segment_sum(values, flat_index, num_segments=units * fan_in, sorted=False)
        matrix = ops.reshape(dense, (fan_in, units))
        return ops.cast(matrix_to_kernel(matrix, shape, order), dtype)

    def _nonzero_count(self, fan_in: int, shape: tuple[int, ...]) -> int:
        if self.num_nonzero is not None:
            if self.num_nonzero > fan_in:
                raise ValueError(
                    "Invalid value for argument `num_nonzero`. "
                    f"Received: num_nonzero={self.num_nonzero} for shape={shape} with "
                    f"fan_in={fan_in}. Expected an integer in [1, fan_in]."
                )
            return self.num_nonzero
        # round() first: sparsity * fan_in such as 0.7 * 10 = 7.000000000000001 must not
        # ceil to 8 zeros.
        k = fan_in - math.ceil(round(self.sparsity * fan_in, 9))
        if k < 1:
            raise ValueError(
                "Invalid value for argument `sparsity`. "
                f"Received: sparsity={self.sparsity} for shape={shape} with fan_in={fan_in}, "
                "which leaves no non-zero weight per unit. Expected sparsity <= "
                f"{(fan_in - 1) / fan_in:.6g} for this fan_in, or pass num_nonzero."
            )
        return k

    def get_config(self) -> dict:
        return {
            "sparsity": self.sparsity,
            "stddev": self.stddev,
            "num_nonzero": self.num_nonzero,
            "seed": super().get_config()["seed"],
            **self.axes_config(),
        }


def _checked_stddev(stddev: object) -> float | str:
    """`'auto'` or a finite number >= 0, as a float."""
    if isinstance(stddev, str):
        if stddev != "auto":
            raise ValueError(
                "Invalid value for argument `stddev`. "
                f"Received: stddev={stddev!r}. Expected a non-negative number or 'auto'."
            )
        return stddev
    check_number("stddev", stddev, low=0, high=math.inf, high_inclusive=False)
    return float(stddev)
