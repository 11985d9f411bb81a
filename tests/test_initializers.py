"""Tests for keras_initx.initializers: statistics vs formulas, seeds, names, configs, errors,
built layers, and a saved model reloaded in a fresh process."""

import inspect
import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_initx.initializers import (
    INITIALIZERS,
    DeltaOrthogonal,
    DepthwiseLecunOneOverSqrtD,
    LecunOneOverSqrtD,
    OrthogonalGain,
    SigmoidGlorotNormal,
    SigmoidGlorotUniform,
    Sparse,
    list_initializers,
    orthogonal_matrix,
    register,
)

SHAPES = [(784, 500), (50, 50), (3, 3, 64, 128)]
DTYPES = ["float32", "float64", "bfloat16"]
CLASSES = [LecunOneOverSqrtD, SigmoidGlorotUniform, SigmoidGlorotNormal, OrthogonalGain, Sparse]
# The names of CLASSES; registry-wide tests use INITIALIZERS, which also holds other modules'.
NAMES = [name for name, cls in INITIALIZERS.items() if cls in CLASSES]
SEED = 1234
MIN_SAMPLES = 2**16
Z = 5.0  # tolerances are Z standard errors
TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]

# Statistical tolerances. For N i.i.d. zero-mean draws with variance s2 and kurtosis k
# (E[w^4] / s2^2), the mean has standard error sqrt(s2 / N) and the mean of squares
# m2 = sum(w^2) / N (an unbiased variance estimate, the mean being known) has
# Var(m2) = (E[w^4] - s2^2) / N = s2^2 (k - 1) / N, i.e. SE(m2) = s2 * sqrt((k - 1) / N).
# Kurtosis: uniform 9/5; normal 3; normal truncated at +-2 sigma 2.366 (from its moments
# E[x^2] = 0.7737, E[x^4] = 1.4163); a mixture that is N(0, s^2) with probability p and 0
# otherwise 3 / p. bfloat16 rounding (relative 2^-9, unbiased) moves m2 by far less than one SE.
KURTOSIS_UNIFORM = 9.0 / 5.0
KURTOSIS_TRUNCATED_NORMAL = 2.366

# Expected (variance, bound, kurtosis) from (fan_in, fan_out), with Keras' fan convention.
FORMULAS = {
    LecunOneOverSqrtD: lambda fi, fo: (1 / (3 * fi), 1 / math.sqrt(fi), KURTOSIS_UNIFORM),
    SigmoidGlorotUniform: lambda fi, fo: (
        32 / (fi + fo), 4 * math.sqrt(6 / (fi + fo)), KURTOSIS_UNIFORM
    ),
    SigmoidGlorotNormal: lambda fi, fo: (
        32 / (fi + fo), 2 * math.sqrt(32 / (fi + fo)) / TRUNCATED_STD, KURTOSIS_TRUNCATED_NORMAL
    ),
}  # fmt: skip

# Non-zero weights per unit for Sparse(sparsity=0.9): fan_in - ceil(0.9 * fan_in).
SPARSE_K = {(784, 500): 784 - 706, (50, 50): 50 - 45, (3, 3, 64, 128): 576 - 519}

# Max |W^T W - gain^2 I| / gain^2: float32/float64 QR rounding; bfloat16 keeps 8 bits per entry.
ORTHOGONALITY_ATOL = {"float64": 1e-10, "float32": 1e-5, "bfloat16": 2e-2}


def to_numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(keras.ops.cast(x, "float64"))


def draws(init, shape, dtype, min_samples=MIN_SAMPLES) -> list[np.ndarray]:
    """Enough calls of `init` (seeded with a SeedGenerator, so each call differs) to hold
    at least `min_samples` values."""
    calls = math.ceil(min_samples / math.prod(shape))
    out = [init(shape, dtype=dtype) for _ in range(calls)]
    for x in out:
        assert tuple(x.shape) == tuple(shape)
        assert keras.backend.standardize_dtype(x.dtype) == dtype
    return [to_numpy(x) for x in out]


def fans(shape):
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def assert_moments(values: np.ndarray, variance: float, kurtosis: float) -> None:
    n = values.size
    assert abs(values.mean()) <= Z * math.sqrt(variance / n)
    m2 = float(np.mean(values**2))
    assert abs(m2 - variance) <= Z * variance * math.sqrt((kurtosis - 1) / n), (m2, variance)


def assert_variance_scaling(cls, kernels: list[np.ndarray], dtype: str) -> None:
    variance, bound, kurtosis = FORMULAS[cls](*fans(kernels[0].shape))
    values = np.concatenate([k.ravel() for k in kernels])
    slack = 2.0**-8 if dtype == "bfloat16" else 1e-6  # rounding may land just past the bound
    assert np.abs(values).max() <= bound * (1 + slack)
    if cls is not SigmoidGlorotNormal:  # a uniform draw of this size comes near its bound
        assert np.abs(values).max() >= bound * 0.99
    assert_moments(values, variance, kurtosis)


def assert_orthogonal(kernel: np.ndarray, gain: float, dtype: str) -> None:
    w = kernel.reshape(-1, kernel.shape[-1])
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    error = np.abs(gram - gain**2 * np.eye(gram.shape[0])).max()
    assert error <= ORTHOGONALITY_ATOL[dtype] * gain**2, error


def assert_sparse(kernel: np.ndarray, k: int) -> None:
    per_unit = np.count_nonzero(kernel.reshape(-1, kernel.shape[-1]), axis=0)
    np.testing.assert_array_equal(per_unit, k)


# --- statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cls", list(FORMULAS))
def test_variance_scaling_statistics(cls, shape, dtype):
    init = cls(seed=keras.random.SeedGenerator(SEED))
    assert_variance_scaling(cls, draws(init, shape, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [*SHAPES, (64, 256), (3, 3, 8, 256)])  # last two: wide
def test_orthogonal_gain_is_orthogonal(shape, dtype):
    init = OrthogonalGain(gain="relu", seed=SEED)
    (kernel,) = draws(init, shape, dtype, min_samples=1)
    assert_orthogonal(kernel, math.sqrt(2.0), dtype)


def test_orthogonal_gain_number_and_matrix_helper():
    (kernel,) = draws(OrthogonalGain(gain=0.5, seed=SEED), (40, 30), "float32", min_samples=1)
    assert_orthogonal(kernel, 0.5, "float32")
    wide = to_numpy(orthogonal_matrix(3, 7, seed=SEED, dtype="float64"))
    assert wide.shape == (3, 7)
    np.testing.assert_allclose(wide @ wide.T, np.eye(3), atol=1e-12)


def test_orthogonal_entries_are_haar_distributed():
    # Each entry of a Haar-orthogonal 50 x 50 matrix has mean 0 and variance 1/50. Without the
    # sign fix, Householder QR makes q_ii = a_ii / r_ii with r_ii of sign -a_ii: the diagonal
    # would be biased (about -0.11 for q_11), far beyond the tolerance here.
    init = OrthogonalGain(seed=keras.random.SeedGenerator(SEED))
    diagonals = np.concatenate([np.diag(k) for k in draws(init, (50, 50), "float64", 2**14)])
    assert abs(diagonals.mean()) <= Z * math.sqrt(1 / 50 / diagonals.size)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stddev", ["auto", 0.01])
def test_sparse_statistics(shape, dtype, stddev):
    init = Sparse(stddev=stddev, seed=keras.random.SeedGenerator(SEED))
    kernels = draws(init, shape, dtype)
    k = SPARSE_K[shape]
    for kernel in kernels:
        assert_sparse(kernel, k)
    # "auto" (the default): 1/sqrt(k), so each entry has variance 1/fan_in as LeCun's.
    variance = 1 / k if stddev == "auto" else stddev**2
    nonzero = np.concatenate([kernel[kernel != 0] for kernel in kernels])
    assert_moments(nonzero, variance, 3.0)
    p = k / math.prod(shape[:-1])
    assert_moments(np.concatenate([k.ravel() for k in kernels]), p * variance, 3.0 / p)


def test_sparse_by_name_keeps_a_deep_tanh_signal():
    """8 tanh layers of width 64 drawn by name: the default keeps the activation std, the
    torch/Lasagne stddev=0.01 shrinks it by sqrt(k) * 0.01 (k = 6 non-zeros) per layer."""
    x = np.random.default_rng(SEED).normal(size=(512, 64)).astype("float32")
    stds = {}
    # A new instance per layer, as a name gives (one instance with an int seed repeats itself).
    torch_like = {"class_name": "sparse", "config": {"stddev": 0.01}}
    for label, init in (("default", "sparse"), ("0.01", torch_like)):
        keras.utils.set_random_seed(SEED)
        h = x
        for _ in range(8):
            layer = keras.layers.Dense(64, activation="tanh", kernel_initializer=init)
            h = to_numpy(layer(h))
        stds[label] = float(h.std())
    # Mean field for weight variance 1/fan_in: pre-activation variance q_(l+1) =
    # E[tanh(sqrt(q_l) z)^2], z ~ N(0, 1), from q_0 = 1: the slow tanh decay (~1/(2 l)), no
    # vanishing. Sample spread: 64 units x 8 random layers, about 10 % on the std.
    z, weights = np.polynomial.hermite_e.hermegauss(64)
    q = 1.0
    for _ in range(8):
        q = float(weights @ np.tanh(math.sqrt(q) * z) ** 2 / weights.sum())
    np.testing.assert_allclose(stds["default"], math.sqrt(q), rtol=0.2)
    # Per layer x(sqrt(6) * 0.01) once tanh is linear: 8 layers -> 0.0245^8 ~ 1.3e-13 (input
    # std 1). Spread of log(std / that) over draws (simulated, 200 seeds): 0.15, so a factor 2
    # either way is over 4 standard deviations.
    assert 0.5 < stds["0.01"] / (math.sqrt(6) * 0.01) ** 8 < 2.0, stds


def test_sparse_num_nonzero_and_auto_stddev():
    init = Sparse(num_nonzero=15, stddev="auto", seed=SEED)
    assert init.sparsity is None
    (kernel,) = draws(init, (784, 500), "float32", min_samples=1)
    assert_sparse(kernel, 15)
    # stddev 1/sqrt(15): each unit's sum of squares is 1 on average; per unit it is a sum of
    # 15 terms of variance 2/15^2, so the mean over 500 units has SE sqrt(2 / 15 / 500).
    unit_energy = (kernel**2).sum(axis=0)
    assert abs(unit_energy.mean() - 1.0) <= Z * math.sqrt(2 / 15 / 500)


def test_sparse_picks_inputs_uniformly():
    # Each input is picked by a unit with probability p = k / fan_in, independently across
    # units, so its count over 500 units is Binomial(500, p); the chi-square statistic over
    # the 784 inputs has mean 784 and std sqrt(2 * 784). A bias towards low indices (e.g.
    # from tie-breaking) or a shared pattern across units would inflate it.
    (kernel,) = draws(Sparse(seed=SEED), (784, 500), "float32", min_samples=1)
    counts = np.count_nonzero(kernel, axis=1)
    p = SPARSE_K[(784, 500)] / 784
    chi2 = (((counts - 500 * p) ** 2) / (500 * p * (1 - p))).sum()
    assert abs(chi2 - 784) <= Z * math.sqrt(2 * 784)
    first, second = counts[:392].sum(), counts[392:].sum()
    assert abs(first - second) <= Z * math.sqrt(counts.sum())


def test_sparse_zero_count_uses_exact_decimal_fraction():
    # 0.7 * 10 is 7.000000000000001 in floating point; it must mean 7 zeros, not 8.
    (kernel,) = draws(Sparse(sparsity=0.7, seed=SEED), (10, 4), "float32", min_samples=1)
    assert_sparse(kernel, 3)


# --- PyTorch parity ---------------------------------------------------------------------


def torch_conv_default_bound(weight_shape: tuple[int, ...]) -> float:
    """torch.nn.ConvNd.reset_parameters: kaiming_uniform_(weight, a=sqrt(5)) on a weight of
    shape (out_channels, in_channels / groups, *kernel_size), written out (torch is not a
    dependency): fan_in = weight.size(1) * prod(kernel_size), gain = sqrt(2 / (1 + a^2)),
    bound = sqrt(3) * gain / sqrt(fan_in). The draw is U(-bound, bound)."""
    fan_in = weight_shape[1] * math.prod(weight_shape[2:])
    gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
    return math.sqrt(3.0) * gain / math.sqrt(fan_in)


@pytest.mark.parametrize(
    "make, input_shape, torch_weight, kernel",
    [
        # Depthwise: torch Conv2d(96, 96, 3, groups=96) has weight (96, 1, 3, 3).
        (lambda n: keras.layers.DepthwiseConv2D(3, depthwise_initializer=n),
         (None, 8, 8, 96), (96, 1, 3, 3), "kernel"),
        # depth_multiplier 2: Conv2d(64, 128, 5, groups=64), weight (128, 1, 5, 5).
        (lambda n: keras.layers.DepthwiseConv2D(5, depth_multiplier=2, depthwise_initializer=n),
         (None, 8, 8, 64), (128, 1, 5, 5), "kernel"),
        (lambda n: keras.layers.DepthwiseConv1D(7, depthwise_initializer=n),
         (None, 16, 128), (128, 1, 7), "kernel"),
        # SeparableConv2D = depthwise Conv2d(96, 96, 3, groups=96) then a 1x1 Conv2d(96, 32).
        (lambda n: keras.layers.SeparableConv2D(32, 3, depthwise_initializer=n),
         (None, 8, 8, 96), (96, 1, 3, 3), "depthwise_kernel"),
    ],
)  # fmt: skip
def test_pytorch_default_depthwise_matches_torch(make, input_shape, torch_weight, kernel):
    layer = make("pytorch_default_depthwise")
    layer.build(input_shape)
    values = to_numpy(getattr(layer, kernel)).ravel()
    bound = torch_conv_default_bound(torch_weight)
    assert values.size == math.prod(torch_weight)
    assert bound * 0.98 <= np.abs(values).max() <= bound * (1 + 1e-6)
    assert_moments(values, bound**2 / 3, KURTOSIS_UNIFORM)
    # The plain `pytorch_default` counts the channels (Keras' fans): sqrt(channels) smaller.
    plain = make("pytorch_default")
    plain.build(input_shape)
    channels = input_shape[-1]
    np.testing.assert_allclose(
        to_numpy(getattr(plain, kernel)).std() * math.sqrt(channels), values.std(), rtol=0.1
    )


def test_pytorch_default_depthwise_seed_config_and_rank():
    init = DepthwiseLecunOneOverSqrtD(seed=3)
    assert init.get_config() == {"seed": 3}
    again = DepthwiseLecunOneOverSqrtD.from_config(init.get_config())
    np.testing.assert_array_equal(to_numpy(init((3, 3, 8, 1))), to_numpy(again((3, 3, 8, 1))))
    generated = DepthwiseLecunOneOverSqrtD(seed=keras.random.SeedGenerator(3))
    assert not np.array_equal(to_numpy(generated((3, 3, 8, 1))), to_numpy(generated((3, 3, 8, 1))))
    with pytest.raises(ValueError, match=r"shape=\(8, 4\) of rank 2\. Expected a depthwise kernel"):
        init((8, 4))


@pytest.mark.parametrize(
    "make, input_shape, torch_weight, kernel",
    [
        # Grouped: Conv2d(64, 64, 3, groups=4), weight (64, 16, 3, 3); Keras' kernel is
        # (3, 3, 16, 64), whose Keras fan_in is torch's already.
        (lambda: keras.layers.Conv2D(64, 3, groups=4, kernel_initializer="pytorch_default"),
         (None, 8, 8, 64), (64, 16, 3, 3), "kernel"),
        # SeparableConv2D's pointwise kernel is a 1x1 Conv2d(96, 32): weight (32, 96, 1, 1).
        (lambda: keras.layers.SeparableConv2D(32, 3, pointwise_initializer="pytorch_default"),
         (None, 8, 8, 96), (32, 96, 1, 1), "pointwise_kernel"),
    ],
)  # fmt: skip
def test_pytorch_default_matches_torch_on_grouped_and_pointwise(
    make, input_shape, torch_weight, kernel
):
    layer = make()
    layer.build(input_shape)
    values = to_numpy(getattr(layer, kernel)).ravel()
    bound = torch_conv_default_bound(torch_weight)
    assert bound * 0.98 <= np.abs(values).max() <= bound * (1 + 1e-6)
    assert_moments(values, bound**2 / 3, KURTOSIS_UNIFORM)


# --- seeds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [*CLASSES, keras.initializers.GlorotUniform, keras.initializers.Orthogonal]
)
def test_seed_contract_matches_keras(cls):
    # Keras' own initializers (last two) define the contract; ours must behave the same.
    shape = (30, 20)

    def values(init):
        return to_numpy(init(shape))

    np.testing.assert_array_equal(values(cls(seed=7)), values(cls(seed=7)))
    assert not np.array_equal(values(cls(seed=7)), values(cls(seed=8)))
    for init in (cls(seed=7), cls()):  # int or None: one instance repeats itself
        np.testing.assert_array_equal(values(init), values(init))
    assert not np.array_equal(values(cls()), values(cls()))
    generated = cls(seed=keras.random.SeedGenerator(7))  # a SeedGenerator advances per call
    assert not np.array_equal(values(generated), values(generated))


# --- configs and names --------------------------------------------------------------------

CONFIGURED = [
    LecunOneOverSqrtD(seed=1),
    SigmoidGlorotUniform(seed=2),
    SigmoidGlorotNormal(),
    OrthogonalGain(gain="relu", seed=4),
    OrthogonalGain(gain=0.5, seed=keras.random.SeedGenerator(5)),
    Sparse(sparsity=0.8, stddev=0.02, seed=6),
    Sparse(num_nonzero=7, stddev="auto", seed=7),
    # What EinsumDense passes when it builds (its fan axes), and per-gate orthogonal blocks.
    # (Drawn below on a (12, 9) kernel: axes of a rank-2 kernel, 12 units for the blocks.)
    LecunOneOverSqrtD(seed=8, input_axes=[1], output_axes=[0]),
    SigmoidGlorotNormal(seed=9, input_axes=[0], output_axes=[1]),
    OrthogonalGain(gain="tanh", seed=10, blocks=3, input_axes=[1], output_axes=[0]),
    Sparse(num_nonzero=2, seed=11, input_axes=[1], output_axes=[0]),
]


@pytest.mark.parametrize("init", CONFIGURED, ids=lambda i: type(i).__name__)
def test_config_round_trip(init):
    config = init.get_config()
    parameters = set(inspect.signature(type(init)).parameters)
    # Every argument, except the newer ones, which are listed only when not at their default.
    assert parameters - {"blocks", "input_axes", "output_axes"} <= set(config) <= parameters
    assert type(init).from_config(config).get_config() == config
    payload = json.loads(json.dumps(keras.saving.serialize_keras_object(init)))
    assert payload["registered_name"] == f"keras_initx>{type(init).__name__}"
    restored = keras.saving.deserialize_keras_object(payload)
    assert type(restored) is type(init)
    assert restored.get_config() == config
    if isinstance(config["seed"], int):
        np.testing.assert_array_equal(to_numpy(restored((12, 9))), to_numpy(init((12, 9))))


def test_arguments_are_stored():
    assert OrthogonalGain(gain="tanh").gain == "tanh"
    sparse = Sparse(sparsity=0.5, stddev=0.1, seed=3)
    assert (sparse.sparsity, sparse.stddev, sparse.num_nonzero) == (0.5, 0.1, None)
    # num_nonzero with the default sparsity: the count wins and sparsity is stored as None.
    assert Sparse(sparsity=0.9, num_nonzero=3).get_config()["sparsity"] is None
    # The newer arguments: stored, and in the config only when not at their default.
    assert OrthogonalGain(gain="relu", seed=4).get_config() == {"gain": "relu", "seed": 4}
    assert LecunOneOverSqrtD(seed=1).get_config() == {"seed": 1}
    orthogonal = OrthogonalGain(blocks=4, input_axes=(0,), output_axes=[1, 2], seed=2)
    assert (orthogonal.blocks, orthogonal.input_axes, orthogonal.output_axes) == (4, [0], [1, 2])
    assert orthogonal.get_config() == {
        "gain": 1.0, "seed": 2, "blocks": 4, "input_axes": [0], "output_axes": [1, 2]
    }  # fmt: skip


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_resolution_by_alias_class_name_and_dict(name):
    cls = INITIALIZERS[name]
    assert type(keras.initializers.get(name)) is cls
    assert type(keras.initializers.get(cls.__name__)) is cls
    assert type(keras.initializers.get({"class_name": name, "config": {}})) is cls
    assert type(keras.layers.Dense(3, kernel_initializer=name).kernel_initializer) is cls


def test_dict_config_with_gain_name():
    init = keras.initializers.get({"class_name": "orthogonal_gain", "config": {"gain": "relu"}})
    assert isinstance(init, OrthogonalGain) and init.gain == "relu"
    assert_orthogonal(to_numpy(init((20, 10))), math.sqrt(2.0), "float32")


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="sprase"):
        keras.initializers.get("sprase")


def test_register_is_idempotent_and_keeps_keras_builtins():
    register()
    register()
    custom = keras.saving.get_custom_objects()
    for name, cls in INITIALIZERS.items():
        assert custom[name] is cls and custom[cls.__name__] is cls
    assert type(keras.initializers.get("orthogonal")) is keras.initializers.Orthogonal


def test_list_initializers():
    listed = list_initializers()
    assert list(listed) == [*INITIALIZERS, "lsuv", "pretrain_layerwise"]
    assert list(list_initializers(data_driven=False)) == list(INITIALIZERS)
    assert "Mishkin & Matas" in listed["lsuv"]
    assert listed["pytorch_default"].startswith("Alias of `lecun_1_over_sqrt_d`")
    assert all(text and "\n" not in text for text in listed.values())


# --- bad input ----------------------------------------------------------------------------

BAD_INPUT = [
    (lambda: Sparse(sparsity=1.0), ValueError,
     r"Invalid value for argument `sparsity`\. Received: sparsity=1\.0\. Expected a number "
     r"in \[0, 1\)"),
    (lambda: Sparse(sparsity=-0.1), ValueError, r"sparsity=-0\.1\. Expected a number in \[0, 1\)"),
    (lambda: Sparse(sparsity=math.nan), ValueError, r"sparsity=nan\."),
    (lambda: Sparse(sparsity="0.9"), TypeError, r"argument `sparsity`.*of type str"),
    (lambda: Sparse(sparsity=None), TypeError, r"sparsity=None of type NoneType"),
    (lambda: Sparse(num_nonzero=0), ValueError, r"num_nonzero=0\. Expected an int >= 1"),
    (lambda: Sparse(num_nonzero=2.5), TypeError, r"num_nonzero=2\.5 of type float"),
    (lambda: Sparse(sparsity=0.5, num_nonzero=3), ValueError,
     r"sparsity=0\.5 with num_nonzero=3.*exclusive"),
    (lambda: Sparse(num_nonzero=51)((50, 10)), ValueError,
     r"num_nonzero=51 for shape=\(50, 10\) with fan_in=50\. Expected an integer in \[1, fan_in\]"),
    (lambda: Sparse(sparsity=0.99)((50, 10)), ValueError,
     r"sparsity=0\.99 for shape=\(50, 10\) with fan_in=50, which leaves no non-zero weight"),
    (lambda: Sparse(stddev=-1.0), ValueError, r"stddev=-1\.0\. Expected a finite number >= 0"),
    (lambda: Sparse(stddev=math.inf), ValueError, r"stddev=inf\."),
    (lambda: Sparse(stddev="big"), ValueError, r"stddev='big'\. Expected a non-negative number "
                                               r"or 'auto'"),
    (lambda: OrthogonalGain(gain=-1.0), ValueError, r"gain=-1\.0\. Expected a finite"),
    (lambda: OrthogonalGain(gain=math.inf), ValueError, r"gain=inf\."),
    (lambda: OrthogonalGain(gain=math.nan), ValueError, r"gain=nan\."),
    (lambda: OrthogonalGain(gain="relux"), ValueError,
     r"gain='relux'\. Expected a non-negative number or an activation name, one of: conv1d, "
     r".*gelu, .*tanh"),
    (lambda: OrthogonalGain(gain=[2.0]), TypeError, r"argument `gain`.*of type list"),
    (lambda: Sparse()((5,)), ValueError, r"shape=\(5,\) of rank 1\. Expected a kernel shape of "
                                         r"rank >= 2"),
    (lambda: OrthogonalGain()((5,)), ValueError, r"shape=\(5,\) of rank 1"),
    (lambda: OrthogonalGain()(()), ValueError, r"shape=\(\) of rank 0"),
    (lambda: OrthogonalGain(blocks=0), ValueError, r"blocks=0\. Expected an int >= 1"),
    (lambda: OrthogonalGain(blocks=2.0), TypeError, r"blocks=2\.0 of type float\. Expected an int"),
    (lambda: OrthogonalGain(blocks=3)((16, 64)), ValueError,
     r"blocks=3 for shape=\(16, 64\) with 64 units \(columns\)\. Expected a divisor"),
    (lambda: LecunOneOverSqrtD(input_axes=[0]), ValueError,
     r"input_axes=\[0\], output_axes=None\. Expected both None or both lists"),
    (lambda: Sparse(input_axes=None, output_axes=[1]), ValueError, r"Expected both None"),
    (lambda: OrthogonalGain(input_axes=0, output_axes=[1]), TypeError,
     r"argument `input_axes`\. Received: input_axes=0\. Expected a list of ints"),
    (lambda: SigmoidGlorotUniform(input_axes=[0], output_axes=[True]), TypeError,
     r"argument `output_axes`"),
    (lambda: Sparse(input_axes=[0, 1], output_axes=[1]), ValueError,
     r"Expected distinct axes"),
    (lambda: LecunOneOverSqrtD(input_axes=[0], output_axes=[3])((4, 5, 6)), ValueError,
     r"input_axes=\[0\], output_axes=\[3\] for shape=\(4, 5, 6\) of rank 3\. Expected the "
     r"two to name every axis in \[0, 3\) exactly once"),
    (lambda: OrthogonalGain(input_axes=[0], output_axes=[1])((4, 5, 6)), ValueError,
     r"name every axis"),
    (lambda: DeltaOrthogonal(input_axes=[0], output_axes=[1, 2]), ValueError,
     r"input_axes=\[0\], output_axes=\[1, 2\]\. Expected None: DeltaOrthogonal is for "
     r"convolution kernels"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUT)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("dtype", ["int32", "bool", "float"])
@pytest.mark.parametrize("cls", CLASSES)
def test_non_float_dtype_raises(cls, dtype):
    with pytest.raises(ValueError, match=rf"argument `dtype`\. Received: dtype='{dtype}'\. "
                                         r"Expected a floating-point dtype"):  # fmt: skip
        cls(seed=1)((8, 8), dtype=dtype)


# --- built layers -------------------------------------------------------------------------


def assert_kernel_follows(name: str, kernel: np.ndarray) -> None:
    cls = INITIALIZERS[name]
    if cls in FORMULAS:
        assert_variance_scaling(cls, [kernel], "float32")
    elif cls is OrthogonalGain:
        assert_orthogonal(kernel, 1.0, "float32")
    else:
        fan_in = math.prod(kernel.shape[:-1])
        assert_sparse(kernel, fan_in - math.ceil(0.9 * fan_in))


@pytest.mark.parametrize("name", NAMES)
def test_built_layers_have_expected_kernels(name):
    dense = keras.layers.Dense(500, kernel_initializer=name)
    dense.build((None, 784))
    assert_kernel_follows(name, to_numpy(dense.kernel))
    conv = keras.layers.Conv2D(128, 3, kernel_initializer=name)
    conv.build((None, 8, 8, 64))
    assert tuple(conv.kernel.shape) == (3, 3, 64, 128)
    assert_kernel_follows(name, to_numpy(conv.kernel))
    assert len(conv.weights) == 2  # the initializer left no stray variables on the layer


# --- save and reload in a fresh process ---------------------------------------------------

SAVED = {
    "lecun": (LecunOneOverSqrtD(seed=1), "pytorch_default"),
    "sigmoid_uniform": (SigmoidGlorotUniform(seed=2), "sigmoid_glorot_uniform"),
    "sigmoid_normal": (SigmoidGlorotNormal(seed=3), "sigmoid_glorot_normal"),
    "orthogonal": (OrthogonalGain(gain="tanh", seed=4), "orthogonal_gain"),
    "sparse": (Sparse(num_nonzero=3, stddev="auto", seed=5), "sparse"),
}

RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import keras_initx  # the only registration step a user takes

    out = {}
    for label, path in json.loads(sys.argv[1]).items():
        model = keras.saving.load_model(path)
        np.savez(path + ".npz", *[np.asarray(w) for w in model.get_weights()])
        out[label] = {
            "config": model.get_config(),
            "initializers": [
                type(layer.kernel_initializer).__module__ + "."
                + type(layer.kernel_initializer).__name__
                for layer in model.layers if hasattr(layer, "kernel_initializer")
            ],
        }
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    models, paths = {}, {}
    for label, (init, alias) in SAVED.items():
        model = keras.Sequential(
            [
                keras.Input((6, 6, 3)),
                keras.layers.Conv2D(4, 3, kernel_initializer=init),
                keras.layers.Flatten(),
                keras.layers.Dense(5, kernel_initializer=alias),
            ]
        )
        paths[label] = str(root / f"{label}.keras")
        model.save(paths[label])
        models[label] = model
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": keras.backend.backend()}
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, json.dumps(paths)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return models, paths, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("label", list(SAVED))
def test_saved_model_reloads_in_fresh_process(saved_models, label):
    models, paths, reloaded = saved_models
    model = models[label]
    assert reloaded[label]["config"] == json.loads(json.dumps(model.get_config()))
    init, alias = SAVED[label]
    assert reloaded[label]["initializers"] == [
        f"{cls.__module__}.{cls.__name__}" for cls in (type(init), INITIALIZERS[alias])
    ]
    with np.load(paths[label] + ".npz") as weights:
        for i, w in enumerate(model.get_weights()):
            np.testing.assert_array_equal(weights[f"arr_{i}"], w)


def test_sparse_draws_an_empty_kernel_for_a_zero_size_dimension():
    for shape in [(0, 4), (3, 0), (3, 3, 0, 8)]:
        kernel = Sparse(seed=0)(shape)
        assert tuple(kernel.shape) == shape
