"""Fixed-scale variance-scaling initializers: the 1/sqrt(d) heuristic and sigmoid Glorot.

Each class is `keras.initializers.VarianceScaling` with its scale, mode and distribution pinned,
the way Keras' own `GlorotUniform` is; the arguments are the seed and, as for `GlorotUniform`, the
fan axes `input_axes`/`output_axes` that `EinsumDense` and `MultiHeadAttention` pass. Fans follow
Keras' convention (`keras_initx.gains.compute_fans`): receptive field x channels for conv kernels,
the product of the einsum's input (output) axes for EinsumDense kernels.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_initx.initializers._axes import FanAxesInitializer, check_axes
from keras_initx.initializers._dtypes import sampling_dtype
from keras_initx.validation import check_float_dtype, check_kernel_shape

__all__ = ["LecunOneOverSqrtD", "SigmoidGlorotNormal", "SigmoidGlorotUniform"]

# Bengio (2012): the logistic sigmoid's slope at 0 is 1/4 of tanh's, so its weights need 4x the
# tanh (Glorot) standard deviation, i.e. 16x the variance.
_SIGMOID_VARIANCE_FACTOR = 16.0


class _PinnedVarianceScaling(FanAxesInitializer):
    """`VarianceScaling` whose scale, mode and distribution are class constants.

    Like Keras' `GlorotUniform`, the constructor takes the seed and the fan axes that
    `EinsumDense` passes (`input_axes`/`output_axes`); the draw is `VarianceScaling`'s own.
    """

    _scale: float
    _mode: str
    _distribution: str

    def __init__(
        self,
        seed: int | keras.random.SeedGenerator | None = None,
        input_axes: list[int] | None = None,
        output_axes: list[int] | None = None,
    ):
        input_axes, output_axes = check_axes(input_axes, output_axes)
        super().__init__(
            scale=self._scale,
            mode=self._mode,
            distribution=self._distribution,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
        )

    def __call__(self, shape, dtype=None):
        dtype = check_float_dtype(dtype)
        if self.input_axes is not None:
            self.kernel_layout(shape)  # axes that do not fit the shape: a clear error, early
        return ops.cast(super().__call__(shape, dtype=sampling_dtype(dtype)), dtype)

    def get_config(self) -> dict:
        # Only the seed and the axes are constructor arguments; the base config also holds the
        # pinned constants, which the default `from_config` (cls(**config)) would reject.
        return {"seed": super().get_config()["seed"], **self.axes_config()}


@keras.saving.register_keras_serializable(package="keras_initx")
class LecunOneOverSqrtD(_PinnedVarianceScaling):
    """Uniform in +-1/sqrt(fan_in): the classic 1/sqrt(d) heuristic, also PyTorch's default.

    Formula:     W ~ U(-r, r), r = 1 / sqrt(fan_in)
    Variance:    1 / (3 * fan_in); a unit with fan_in unit-variance inputs gets pre-activation
                 variance 1/3 whatever fan_in is, so sigmoid/tanh units start unsaturated.
    When to use: reproducing PyTorch models (`nn.Linear`/`nn.ConvNd` kernels draw exactly this:
                 kaiming_uniform with a=sqrt(5)); shallow sigmoid/tanh nets. For deep nets prefer
                 `glorot_uniform` (tanh) or `he_normal` (ReLU). Alias: `pytorch_default`.
    Args:
        seed: int, None, or `keras.random.SeedGenerator`, as for Keras' own initializers: an int
            or None gives the same values on every call of one instance, a `SeedGenerator`
            new values on each call.
        input_axes, output_axes: kernel axes whose sizes multiply to fan_in and fan_out, or None
            (both) for Keras' convention on the shape; `EinsumDense` and `MultiHeadAttention`
            set them when they build, as for Keras' `GlorotUniform`.
    Example:
        >>> keras.layers.Dense(64, activation="tanh", kernel_initializer="lecun_1_over_sqrt_d")
    Reference:   LeCun, Bottou, Orr, Mueller, "Efficient BackProp", 1998;
                 torch.nn.Linear.reset_parameters.
    """

    _scale = 1.0 / 3.0  # VarianceScaling's uniform limit sqrt(3 * scale / fan_in) -> 1/sqrt(fan_in)
    _mode = "fan_in"
    _distribution = "uniform"


@keras.saving.register_keras_serializable(package="keras_initx")
class DepthwiseLecunOneOverSqrtD(LecunOneOverSqrtD):
    """Uniform in +-1/sqrt(k), k the kernel window: PyTorch's default for depthwise kernels.

    Formula:     W ~ U(-r, r), r = 1 / sqrt(fan_in), fan_in = prod(kernel_size): each output
                 channel of a depthwise convolution sees one input channel, so its fan-in is the
                 window alone (torch: `Conv2d(C, C * m, k, groups=C)` has fan_in = (C / C) k k).
    Variance:    1 / (3 * prod(kernel_size)).
    When to use: `DepthwiseConv1D/2D` and `SeparableConv1D/2D` `depthwise_initializer`, to
                 match PyTorch. Keras' fan convention counts the channels too (fan_in =
                 k k C for a (k, k, C, m) kernel), so `pytorch_default` there draws sqrt(C) too
                 small, and a kernel shape alone cannot tell a depthwise kernel from a Conv
                 kernel with m filters: name this one for depthwise kernels. Grouped `Conv2D`
                 (`groups=g`) needs nothing: its kernel is (k, k, C / g, filters), so
                 `pytorch_default` already gets torch's fan_in. Alias: `pytorch_default_depthwise`.
    Args:
        seed: int, None, or `keras.random.SeedGenerator`, as for Keras' own initializers.
    Example:
        >>> keras.layers.DepthwiseConv2D(3, depthwise_initializer="pytorch_default_depthwise")
    Reference:   torch.nn.Conv2d.reset_parameters (kaiming_uniform with a=sqrt(5), fan_in from
                 the (out, in / groups, k, k) weight).
    """

    def __init__(self, seed: int | keras.random.SeedGenerator | None = None):
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape = check_kernel_shape(
            shape, 3, "depthwise kernel", "(*kernel_size, channels, depth_multiplier)"
        )
        dtype = check_float_dtype(dtype)
        limit = 1.0 / math.sqrt(math.prod(shape[:-2]))
        draw = keras.random.uniform(
            shape, -limit, limit, dtype=sampling_dtype(dtype), seed=self.seed
        )
        return ops.cast(draw, dtype)


@keras.saving.register_keras_serializable(package="keras_initx")
class SigmoidGlorotUniform(_PinnedVarianceScaling):
    """Glorot uniform scaled for the logistic sigmoid (4x the tanh limit).

    Formula:     W ~ U(-r, r), r = 4 * sqrt(6 / (fan_in + fan_out))
    Variance:    16 * 2 / (fan_in + fan_out)
    When to use: sigmoid layers without normalization; tanh -> `glorot_uniform`.
    Args:
        seed: int, None, or `keras.random.SeedGenerator` (as Keras' own initializers: int or
            None repeat their values on every call, a `SeedGenerator` advances).
        input_axes, output_axes: kernel axes whose sizes multiply to fan_in and fan_out, or None
            (both) for Keras' convention on the shape; `EinsumDense` and `MultiHeadAttention`
            set them when they build, as for Keras' `GlorotUniform`.
    Example:
        >>> keras.layers.Dense(
        ...     64, activation="sigmoid", kernel_initializer="sigmoid_glorot_uniform")
    Reference:   Bengio, "Practical recommendations for gradient-based training of deep
                 architectures", 2012; Glorot & Bengio, AISTATS 2010.
    """

    _scale = _SIGMOID_VARIANCE_FACTOR
    _mode = "fan_avg"
    _distribution = "uniform"


@keras.saving.register_keras_serializable(package="keras_initx")
class SigmoidGlorotNormal(_PinnedVarianceScaling):
    """Glorot truncated normal scaled for the logistic sigmoid (4x the tanh std).

    Formula:     W ~ N(0, s^2) truncated at +-2s, s = 4 * sqrt(2 / (fan_in + fan_out)) / 0.8796
                 (Keras divides by the std of a unit normal truncated at 2 sigma, so the
                 truncated draw keeps the target variance).
    Variance:    16 * 2 / (fan_in + fan_out)
    When to use: sigmoid layers without normalization, when you prefer a bell shape to a box;
                 tanh -> `glorot_normal`.
    Args:
        seed: int, None, or `keras.random.SeedGenerator` (as Keras' own initializers: int or
            None repeat their values on every call, a `SeedGenerator` advances).
        input_axes, output_axes: kernel axes whose sizes multiply to fan_in and fan_out, or None
            (both) for Keras' convention on the shape; `EinsumDense` and `MultiHeadAttention`
            set them when they build, as for Keras' `GlorotUniform`.
    Example:
        >>> keras.layers.Dense(
        ...     64, activation="sigmoid", kernel_initializer="sigmoid_glorot_normal")
    Reference:   Bengio, "Practical recommendations for gradient-based training of deep
                 architectures", 2012; Glorot & Bengio, AISTATS 2010.
    """

    _scale = _SIGMOID_VARIANCE_FACTOR
    _mode = "fan_avg"
    _distribution = "truncated_normal"
