"""Tests for keras_initx.gains: torch parity, second-moment gains, validation, fans."""

import math

import keras
import numpy as np
import pytest

from keras_initx.gains import (
    calculate_gain,
    compute_fans,
    gaussian_expectation,
    known_nonlinearities,
    resolve_gain,
)

# torch.nn.init.calculate_gain's table, written out (torch is not a dependency).
TORCH_TABLE = [
    ("linear", None, 1.0),
    ("conv1d", None, 1.0),
    ("conv2d", None, 1.0),
    ("conv3d", None, 1.0),
    ("conv_transpose1d", None, 1.0),
    ("conv_transpose2d", None, 1.0),
    ("conv_transpose3d", None, 1.0),
    ("sigmoid", None, 1.0),
    ("tanh", None, 5.0 / 3.0),
    ("relu", None, math.sqrt(2.0)),
    ("leaky_relu", None, math.sqrt(2.0 / (1.0 + 0.01**2))),
    ("leaky_relu", 0.2, math.sqrt(2.0 / (1.0 + 0.2**2))),
    ("selu", None, 0.75),
]

# Keras activations whose gain is 1 / sqrt(E[f(z)^2]), z ~ N(0, 1).
SECOND_MOMENT = [
    "gelu", "silu", "swish", "elu", "softsign", "softplus", "relu6", "mish",
    "hard_silu", "hard_swish",
]  # fmt: skip


@pytest.mark.parametrize(("name", "param", "expected"), TORCH_TABLE)
def test_calculate_gain_matches_torch_table(name, param, expected):
    assert calculate_gain(name, param) == pytest.approx(expected, rel=1e-12)


def test_calculate_gain_names_are_case_insensitive_and_aliased():
    assert calculate_gain("ReLU") == math.sqrt(2.0)
    assert calculate_gain("identity") == calculate_gain("linear") == 1.0
    assert calculate_gain("LeakyReLU", 0.2) == calculate_gain("leaky_relu", 0.2)


def _second_moment(activation_name: str) -> float:
    """E[f(z)^2], z ~ N(0, 1), for the Keras activation itself, evaluated in float64.

    Trapezoid rule on a 1e-4 grid over [-12, 12]: the error is O(h^2 f'') ~ 1e-9 even for
    activations with kinks (softsign at 0, hard_silu at +-3, relu6 at 0 and 6), and the mass
    beyond 12 sigma is below 1e-30. Gauss-Hermite quadrature (hermegauss) is not used: it
    assumes a smooth integrand, and with 200 nodes it is off by ~1.5e-4 in the gain for
    softsign and hard_silu.
    """
    z = np.linspace(-12.0, 12.0, 240_001)
    f = keras.ops.convert_to_numpy(
        keras.activations.get(activation_name)(keras.ops.convert_to_tensor(z, "float64"))
    )
    density = np.exp(-(z**2) / 2.0) / math.sqrt(2.0 * math.pi)
    return float(np.trapezoid(f**2 * density, z))


def test_second_moment_rule_gives_relu_sqrt2():
    # The rule the table uses reproduces He et al.'s sqrt(2) for ReLU.
    assert 1.0 / math.sqrt(_second_moment("relu")) == pytest.approx(math.sqrt(2.0), abs=1e-7)


@pytest.mark.parametrize("name", SECOND_MOMENT)
def test_second_moment_gains_recomputed(name):
    # The table states six decimals, so each value must be within rounding (5e-7) of the
    # recomputed one; 1e-6 leaves room for the quadrature error (~1e-9).
    assert calculate_gain(name) == pytest.approx(1.0 / math.sqrt(_second_moment(name)), abs=1e-6)


def test_known_nonlinearities_is_sorted_and_complete():
    names = known_nonlinearities()
    assert names == sorted(names)
    assert {n for n, _, _ in TORCH_TABLE} | set(SECOND_MOMENT) <= set(names)
    for name in names:
        assert calculate_gain(name) > 0


def test_resolve_gain_accepts_numbers_and_names():
    assert resolve_gain(0.5) == 0.5
    assert resolve_gain(0) == 0.0
    assert resolve_gain("tanh") == 5.0 / 3.0


@pytest.mark.parametrize(
    ("gain", "error", "match"),
    [
        (-1.0, ValueError, r"Invalid value for argument `gain`\. Received: gain=-1\.0\. "
                           r"Expected a finite number >= 0"),
        (math.inf, ValueError, r"gain=inf\. Expected a finite number >= 0"),
        (math.nan, ValueError, r"gain=nan\. Expected a finite number >= 0"),
        ("relux", ValueError, r"gain='relux'.*one of: conv1d, .*elu, gelu, .*tanh"),
        ([1.0], TypeError, r"Invalid type for argument `gain`.*list"),
        (True, TypeError, r"gain=True of type bool"),
    ],
)  # fmt: skip
def test_resolve_gain_errors(gain, error, match):
    with pytest.raises(error, match=match):
        resolve_gain(gain)


def test_resolve_gain_error_names_the_argument():
    with pytest.raises(ValueError, match=r"argument `scale`\. Received: scale=-2"):
        resolve_gain(-2, argument="scale")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: calculate_gain("nope"), ValueError, r"nonlinearity='nope'.*one of: conv1d"),
        (lambda: calculate_gain(3), TypeError, r"nonlinearity=3 of type int"),
        (lambda: calculate_gain("leaky_relu", math.inf), ValueError, r"param=inf"),
    ],
)
def test_calculate_gain_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("shape", "fans"),
    [
        ((), (1, 1)),
        ((7,), (7, 7)),
        ((784, 500), (784, 500)),
        ((5, 16, 32), (80, 160)),  # Conv1D: kernel 5, 16 -> 32 channels
        ((3, 3, 64, 128), (576, 1152)),  # Conv2D
    ],
)
def test_compute_fans_keras_convention(shape, fans):
    assert compute_fans(shape) == fans


# -- any callable: 1 / sqrt(E[f(z)^2]) by Gauss-Hermite quadrature -------------------------------


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (lambda z: np.maximum(z, 0.0), math.sqrt(2.0)),
        (keras.activations.relu, math.sqrt(2.0)),
        (lambda z: z, 1.0),
        (keras.activations.linear, 1.0),
        (lambda z: np.where(z > 0, z, 0.2 * z), math.sqrt(2.0 / (1.0 + 0.2**2))),
    ],
)
def test_callable_gain_matches_closed_forms(function, expected):
    assert calculate_gain(function) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", ["gelu", "silu", "mish"])
def test_callable_gain_matches_monte_carlo(name):
    # 2**21 draws: the relative standard error of E[f(z)^2] is sqrt(Var f^2 / n) < 2e-3, so the
    # gain's is < 1e-3, ten times inside the 1e-2 asked.
    z = np.random.default_rng(0).standard_normal(2**21)
    f = keras.ops.convert_to_numpy(keras.activations.get(name)(z))
    monte_carlo = 1.0 / math.sqrt(float(np.mean(np.square(f, dtype=np.float64))))
    gain = calculate_gain(keras.activations.get(name))
    assert gain == pytest.approx(monte_carlo, abs=1e-2)
    # and the named table (adaptive quadrature, 6 decimals) agrees to its rounding
    assert gain == pytest.approx(calculate_gain(name), abs=1e-6)


def test_callable_gain_of_layers_and_scalar_functions():
    assert calculate_gain(keras.layers.ReLU()) == pytest.approx(math.sqrt(2.0), abs=1e-6)
    # a function of one float is applied node by node
    assert calculate_gain(math.tanh) == pytest.approx(calculate_gain(np.tanh), abs=1e-12)
    # tanh's second-moment gain is not torch's 5/3: the names keep torch's table
    assert calculate_gain(np.tanh) == pytest.approx(1.592537, abs=1e-6)
    assert calculate_gain("tanh") == 5.0 / 3.0


def test_callable_gain_is_cached_per_function():
    calls = []

    def scaled_relu(z):
        calls.append(1)
        return 2.0 * np.maximum(z, 0.0)

    assert calculate_gain(scaled_relu) == pytest.approx(math.sqrt(2.0) / 2.0, abs=1e-9)
    assert calculate_gain(scaled_relu) == pytest.approx(math.sqrt(2.0) / 2.0, abs=1e-9)
    assert len(calls) == 1


def test_gaussian_expectation_moments():
    # E[z^2] = q, E[z^4] = 3 q^2, E[cos z] = exp(-q / 2)
    assert gaussian_expectation(np.square, variance=2.5) == pytest.approx(2.5, rel=1e-12)
    assert gaussian_expectation(lambda z: z**4, variance=0.5) == pytest.approx(0.75, rel=1e-12)
    assert gaussian_expectation(np.cos, variance=1.0) == pytest.approx(math.exp(-0.5), rel=1e-12)


@pytest.mark.parametrize(
    ("function", "match"),
    [
        (lambda z: np.zeros_like(z), r"nonlinearity=<function.*E\[f\(z\)\^2\].*is 0\.0"),
        (lambda z: z[:3], r"returning shape \(3,\) for inputs of shape \(128,\)"),
    ],
)
def test_callable_gain_errors(function, match):
    with pytest.raises(ValueError, match=match):
        calculate_gain(function)


def test_numpy_scalars_are_numbers_for_param():
    assert calculate_gain("leaky_relu", np.float32(0.2)) == pytest.approx(
        calculate_gain("leaky_relu", 0.2), rel=1e-6
    )
    assert calculate_gain("leaky_relu", np.int64(0)) == pytest.approx(math.sqrt(2.0))
    with pytest.raises(TypeError, match="param=np.True_ of type bool"):
        calculate_gain("leaky_relu", np.True_)
