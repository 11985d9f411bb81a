"""Fans and gains: the one place that knows a kernel's fan-in/fan-out and an activation's gain.

Everything here is plain Python and NumPy on shapes, names and functions (no TensorFlow import),
so initializers, LSUV, the experiments and the diagnosis can all share it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.polynomial.hermite import hermgauss

from keras_initx.validation import check_number

__all__ = [
    "calculate_gain",
    "compute_fans",
    "gaussian_expectation",
    "known_nonlinearities",
    "resolve_gain",
]

# Gauss-Hermite nodes for E[g(z)], z ~ N(0, q). Even, so no node sits on 0 and the symmetric
# nodes make piecewise-linear functions with a kink at 0 (relu, leaky_relu) exact; smooth
# activations (gelu, silu, mish, tanh) converge by 64 nodes to ~1e-12, a kink elsewhere (relu6's
# at 6, hard_silu's at +-3) or a non-smooth point at 0 (softsign, elu) leaves ~1e-4 in the gain.
_HERMITE_NODES = 128

# torch.nn.init.calculate_gain's table, kept verbatim so a model ported from PyTorch gets the
# same scale. Values are the recommended std multiplier for a unit-variance input.
_TORCH_GAINS: dict[str, float] = {
    "linear": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4.0,
}

# Keras activation names torch has no entry for. Each value is 1 / sqrt(E[f(z)^2]) for
# z ~ N(0, 1): the rule that gives ReLU exactly sqrt(2) (He et al. 2015), i.e. the gain that keeps
# the second moment of a layer's output at 1 for unit-variance pre-activations. Computed with
# adaptive quadrature split at the kinks (scipy.integrate.quad); tests/test_gains.py recomputes
# them independently with a fine trapezoid rule.
_SECOND_MOMENT_GAINS: dict[str, float] = {
    "gelu": 1.533530,
    "silu": 1.676532,
    "swish": 1.676532,
    "elu": 1.245198,
    "softsign": 2.337533,
    "softplus": 1.041867,
    "relu6": math.sqrt(2.0),
    "mish": 1.486848,
    "hard_silu": 1.736657,
    "hard_swish": 1.736657,
}

_ALIASES = {"identity": "linear", "none": "linear", "leakyrelu": "leaky_relu"}

_DEFAULT_LEAKY_SLOPE = 0.01  # torch's and Keras' LeakyReLU default negative slope


def known_nonlinearities() -> list[str]:
    """Sorted names accepted by `calculate_gain` (aliases included)."""
    return sorted({*_TORCH_GAINS, *_SECOND_MOMENT_GAINS, "leaky_relu", *_ALIASES})


def gaussian_expectation(function: Callable[[np.ndarray], object], variance: float = 1.0) -> float:
    """E[function(z)] for z ~ N(0, variance), by 128-node Gauss-Hermite quadrature.

    `function` is called once on a float64 NumPy array of the nodes and may return anything
    `numpy.asarray` reads: a NumPy array, a TensorFlow tensor (Keras activations), a list; a
    function of one scalar (`math.tanh`) is applied node by node.

    Accuracy: ~1e-12 relative for smooth functions of moderate growth, exact for x^2 restricted
    to a half-line (relu), ~1e-4 where the function has a kink away from 0.

    Example:
        >>> gaussian_expectation(lambda z: z**2, variance=2.0)
        2.0
    """
    nodes, weights = _hermite_rule()
    z = math.sqrt(2.0 * variance) * nodes
    try:
        values = np.asarray(function(z), dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([float(np.asarray(function(v))) for v in z])
    if values.shape != z.shape:
        raise ValueError(
            "Invalid value for argument `function`. "
            f"Received: a function returning shape {values.shape} for inputs of shape "
            f"{z.shape}. Expected an element-wise function (the same shape back)."
        )
    return float(np.dot(weights, values))


@functools.cache
def _hermite_rule() -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = hermgauss(_HERMITE_NODES)
    return nodes, weights / math.sqrt(math.pi)


@functools.lru_cache(maxsize=256)
def _cached_gain(function: Callable) -> float:
    return _second_moment_gain(function)


def _second_moment_gain(function: Callable) -> float:
    second_moment = gaussian_expectation(lambda z: np.square(np.asarray(function(z))))
    if not math.isfinite(second_moment) or second_moment <= 0:
        raise ValueError(
            "Invalid value for argument `nonlinearity`. "
            f"Received: nonlinearity={function!r}, whose E[f(z)^2] for z ~ N(0, 1) is "
            f"{second_moment!r}. Expected an activation with a finite, positive second moment."
        )
    return 1.0 / math.sqrt(second_moment)


def calculate_gain(nonlinearity: str | Callable, param: float | None = None) -> float:
    """Recommended gain (std multiplier) for an activation function.

    The table is torch.nn.init.calculate_gain's for the names both libraries share, plus the Keras
    activations torch lacks, whose gain is 1 / sqrt(E[f(z)^2]), z ~ N(0, 1) (the rule that yields
    sqrt(2) for ReLU):

    | nonlinearity                         | gain                          | source        |
    | ------------------------------------ | ----------------------------- | ------------- |
    | linear, identity, conv*, sigmoid     | 1                             | torch         |
    | tanh                                 | 5/3                           | torch         |
    | relu                                 | sqrt(2)                       | torch, He 2015|
    | leaky_relu                           | sqrt(2 / (1 + slope^2)), 0.01 | torch         |
    | selu                                 | 3/4                           | torch         |
    | relu6                                | sqrt(2) (clip at 6 ~ never)   | second moment |
    | gelu                                 | 1.5335                        | second moment |
    | silu, swish                          | 1.6765                        | second moment |
    | hard_silu, hard_swish                | 1.7367                        | second moment |
    | mish                                 | 1.4868                        | second moment |
    | elu (alpha=1)                        | 1.2452                        | second moment |
    | softsign                             | 2.3375                        | second moment |
    | softplus                             | 1.0419                        | second moment |

    SELU's 3/4 is torch's choice for self-normalizing nets drawn with `kaiming_normal`-style
    fan-in scaling; with Keras' `lecun_normal` (the SELU paper's init) use gain 1.

    Any other activation, given as a callable (your own function, `keras.activations.gelu`, a
    `keras.layers.Activation`/`ReLU` layer), gets the second-moment rule computed for it:
    1 / sqrt(E[f(z)^2]), z ~ N(0, 1), by Gauss-Hermite quadrature (`gaussian_expectation`),
    cached per function object. It is also the mean-field fixed-point view (Poole et al. 2016):
    a layer without bias maps input second moment q to sigma_w^2 E[f(sqrt(q) z)^2], so the weight
    variance (times fan_in) that makes q* = 1 a fixed point is exactly gain^2; see
    `keras_initx.mean_field` for q*, the slope chi_1 and the weight variance of other fixed points.
    Names keep torch's values, which are not all this rule (tanh: 5/3 vs 1.5925).

    Args:
        nonlinearity: activation name, case-insensitive (`known_nonlinearities()` lists them),
            or an element-wise callable.
        param: negative slope for `leaky_relu` (default 0.01); ignored otherwise.

    Returns:
        The gain as a Python float.

    Example:
        >>> calculate_gain("tanh")
        1.6666666666666667
        >>> calculate_gain("leaky_relu", 0.2)
        1.3867504905630728
        >>> round(calculate_gain(lambda z: np.maximum(z, 0.0)), 12)  # sqrt(2)
        1.414213562373
    """
    if callable(nonlinearity):
        try:
            hash(nonlinearity)
        except TypeError:  # an unhashable callable is computed each time, not cached
            return _second_moment_gain(nonlinearity)
        return _cached_gain(nonlinearity)
    if not isinstance(nonlinearity, str):
        raise TypeError(
            "Invalid type for argument `nonlinearity`. "
            f"Received: nonlinearity={nonlinearity!r} of type {type(nonlinearity).__name__}. "
            "Expected a string such as 'relu' or an element-wise callable."
        )
    name = nonlinearity.strip().lower()
    name = _ALIASES.get(name, name)
    if name == "leaky_relu":
        slope = _DEFAULT_LEAKY_SLOPE if param is None else param
        # The negative slope: any finite number, NumPy scalars included (np.float32(0.2)).
        check_number("param", slope, low_inclusive=False, high_inclusive=False)
        return math.sqrt(2.0 / (1.0 + float(slope) ** 2))
    if name in _TORCH_GAINS:
        return _TORCH_GAINS[name]
    if name in _SECOND_MOMENT_GAINS:
        return _SECOND_MOMENT_GAINS[name]
    raise ValueError(
        "Invalid value for argument `nonlinearity`. "
        f"Received: nonlinearity={nonlinearity!r}. "
        f"Expected one of: {', '.join(known_nonlinearities())}."
    )


def resolve_gain(gain: float | str, argument: str = "gain") -> float:
    """Turn a `gain` argument (a number or an activation name) into a validated float.

    Raises `ValueError` naming `argument` for a negative, non-finite or unknown value, so that
    initializers can call it from `__init__` and fail at construction.
    """
    if isinstance(gain, str):
        try:
            return calculate_gain(gain)
        except ValueError:
            raise ValueError(
                f"Invalid value for argument `{argument}`. Received: {argument}={gain!r}. "
                "Expected a non-negative number or an activation name, one of: "
                f"{', '.join(known_nonlinearities())}."
            ) from None
    check_number(argument, gain, low=0, high=math.inf, high_inclusive=False)
    return float(gain)


def compute_fans(
    shape: Sequence[int],
    input_axes: Sequence[int] | None = None,
    output_axes: Sequence[int] | None = None,
) -> tuple[int, int]:
    """Fan-in and fan-out of a kernel with Keras' convention (`(..., in, out)`).

    For rank > 2 (convolution kernels `(*spatial, in, out)`) both fans are multiplied by the
    receptive field size, as in `keras.src.initializers.random_initializers.compute_fans`; torch
    stores weights as `(out, in, ...)`, so its fan code does not port as is.

    With both `input_axes` and `output_axes` (what `EinsumDense`, hence `MultiHeadAttention`,
    passes to a `VarianceScaling` initializer: the kernel axes its equation contracts with the
    input, and the ones that reach the output), fan_in is the product of the input axes' sizes and
    fan_out that of the output axes', again as Keras computes them; with only one of them given,
    both are ignored, as in Keras.

    Example:
        >>> compute_fans((3, 3, 64, 128))
        (576, 1152)
        >>> compute_fans((64, 4, 16), input_axes=[0], output_axes=[1, 2])  # MHA query kernel
        (64, 64)
    """
    shape = tuple(int(d) for d in shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field
