"""Our initializers in every Keras layer that takes one: the drawn kernels follow each formula
with THAT layer's fans (EinsumDense/MultiHeadAttention: the einsum's input and output axes),
per-gate orthogonal recurrent kernels, and `.keras` models of every family reloaded (and rebuilt
from their config) in a fresh process."""

import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras.src.initializers.random_initializers import compute_fans as keras_compute_fans
from test_initializers import FORMULAS, ORTHOGONALITY_ATOL, assert_moments, fans, to_numpy

from keras_initx.gains import compute_fans
from keras_initx.initializers import (
    INITIALIZERS,
    DeltaOrthogonal,
    LecunOneOverSqrtD,
    OrthogonalGain,
    SigmoidGlorotNormal,
    SigmoidGlorotUniform,
    Sparse,
)

SEED = 4321
NAMES = [
    "lecun_1_over_sqrt_d",
    "sigmoid_glorot_uniform",
    "sigmoid_glorot_normal",
    "orthogonal_gain",
    "sparse",
]


def einsum_axes(equation: str) -> tuple[list[int], list[int]]:
    """Keras' rule (EinsumDense's `_analyze_split_string`): a kernel axis whose letter reaches
    the output is an output axis, every other kernel axis an input axis."""
    inputs, output = equation.split("->")
    kernel = inputs.split(",")[1]
    output_axes = [i for i, letter in enumerate(kernel) if letter in output]
    input_axes = [i for i, letter in enumerate(kernel) if letter not in output]
    return input_axes, output_axes


# --- the layer families -------------------------------------------------------------------
# Each builder takes the initializer (a name or an instance) and returns the built layer and its
# kernels as (label, variable, einsum equation or None). None: Keras computes the fans from the
# shape alone (`compute_fans(shape)`), which is what its own VarianceScaling does there.


def build_dense(init):
    layer = keras.layers.Dense(64, kernel_initializer=init)
    layer.build((None, 96))
    return layer, [("kernel", layer.kernel, None)]


def build_conv(layer_cls, filters, kernel_size, input_shape):
    def build(init):
        layer = layer_cls(filters, kernel_size, kernel_initializer=init)
        layer.build(input_shape)
        return layer, [("kernel", layer.kernel, None)]

    return build


def build_depthwise(init):
    layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=4, depthwise_initializer=init)
    layer.build((None, 8, 8, 32))
    return layer, [("depthwise_kernel", layer.kernel, None)]


def build_separable(init):
    layer = keras.layers.SeparableConv2D(
        48, 3, depth_multiplier=2, depthwise_initializer=init, pointwise_initializer=init
    )
    layer.build((None, 8, 8, 64))
    return layer, [
        ("depthwise_kernel", layer.depthwise_kernel, None),
        ("pointwise_kernel", layer.pointwise_kernel, None),
    ]


def build_embedding(init):
    layer = keras.layers.Embedding(200, 32, embeddings_initializer=init)
    layer.build((None, 5))
    return layer, [("embeddings", layer.embeddings, None)]


def build_rnn(layer_cls):
    def build(init):
        layer = layer_cls(24, kernel_initializer=init, recurrent_initializer=init)
        layer.build((None, 5, 96))
        return layer, [
            ("kernel", layer.cell.kernel, None),
            ("recurrent_kernel", layer.cell.recurrent_kernel, None),
        ]

    return build


def build_einsum(equation, output_shape, input_shape):
    def build(init):
        layer = keras.layers.EinsumDense(equation, output_shape, kernel_initializer=init)
        layer.build(input_shape)
        return layer, [("kernel", layer.kernel, equation)]

    return build


def build_mha(init):
    layer = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16, kernel_initializer=init)
    x = keras.ops.zeros((1, 3, 64))
    layer(x, x)  # builds the four EinsumDense projections
    dense = [layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense]
    return layer, [(d.name, d.kernel, d.equation) for d in dense]


FAMILIES = {
    "dense": build_dense,
    "conv1d": build_conv(keras.layers.Conv1D, 32, 5, (None, 16, 24)),
    "conv2d": build_conv(keras.layers.Conv2D, 32, 3, (None, 8, 8, 16)),
    "conv3d": build_conv(keras.layers.Conv3D, 16, 3, (None, 5, 5, 5, 8)),
    "depthwise_conv2d": build_depthwise,
    "separable_conv2d": build_separable,
    "conv2d_transpose": build_conv(keras.layers.Conv2DTranspose, 16, 3, (None, 8, 8, 32)),
    "embedding": build_embedding,
    "lstm": build_rnn(keras.layers.LSTM),
    "gru": build_rnn(keras.layers.GRU),
    # MHA-like projection: output spans two axes, fans (48, 64) vs the shape rule's (192, 768).
    "einsum_dense": build_einsum("abc,cde->abde", (None, 4, 16), (None, 6, 48)),
    # torch layout (out, in): the input axis comes last, so the shape rule would swap the fans.
    "einsum_dense_out_in": build_einsum("ab,cb->ac", 32, (None, 80)),
    "multi_head_attention": build_mha,
}


def kernel_fans(kernel, equation) -> tuple[int, int, list[int], list[int]]:
    """(fan_in, fan_out, input_axes, output_axes) the way Keras computes them for this kernel;
    axes are Keras' Orthogonal flattening (all but the last, the last) for non-einsum kernels."""
    shape = tuple(kernel.shape)
    if equation is None:
        return (*fans(shape), list(range(len(shape) - 1)), [len(shape) - 1])
    input_axes, output_axes = einsum_axes(equation)
    fan_in = math.prod(shape[a] for a in input_axes)
    fan_out = math.prod(shape[a] for a in output_axes)
    return fan_in, fan_out, input_axes, output_axes


def as_matrix(kernel: np.ndarray, input_axes, output_axes) -> np.ndarray:
    """The kernel as (prod of input axes, prod of output axes): rows are a unit's inputs."""
    rows = math.prod(kernel.shape[a] for a in input_axes)
    return np.transpose(kernel, input_axes + output_axes).reshape(rows, -1)


def assert_follows(name: str, kernel: np.ndarray, equation) -> None:
    fan_in, fan_out, input_axes, output_axes = kernel_fans(kernel, equation)
    cls = INITIALIZERS[name]
    if cls in FORMULAS:
        variance, bound, kurtosis = FORMULAS[cls](fan_in, fan_out)
        assert np.abs(kernel).max() <= bound * (1 + 1e-6)
        assert_moments(kernel.ravel(), variance, kurtosis)
        return
    matrix = as_matrix(kernel, input_axes, output_axes)
    if cls is OrthogonalGain:  # gain 1 by name: W^T W = I (tall) or W W^T = I (wide)
        gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
        assert np.abs(gram - np.eye(len(gram))).max() <= ORTHOGONALITY_ATOL["float32"]
        return
    # Sparse(sparsity=0.9): each unit (column) has k = fan_in - ceil(0.9 fan_in) non-zeros.
    rows = matrix.shape[0]
    k = rows - (9 * rows + 9) // 10
    np.testing.assert_array_equal(np.count_nonzero(matrix, axis=0), k)
    assert_moments(matrix[matrix != 0], 1 / k, 3.0)  # stddev="auto" (the default): 1/sqrt(k)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_layer_draws_with_its_own_fans(family, name):
    keras.utils.set_random_seed(SEED)  # names draw with default seeds: fix them
    _, kernels = FAMILIES[family](name)
    for label, variable, equation in kernels:
        kernel = to_numpy(variable)
        assert kernel.size >= 1000, (label, kernel.shape)  # a variance check with some power
        assert_follows(name, kernel, equation)


@pytest.mark.parametrize("family", ["einsum_dense", "einsum_dense_out_in", "multi_head_attention"])
def test_einsum_fans_are_not_the_shape_rule(family):
    # Otherwise the check above could not tell the einsum fans from the shape rule's.
    _, kernels = FAMILIES[family]("glorot_uniform")
    for _, variable, equation in kernels:
        fan_in, fan_out, _, _ = kernel_fans(variable, equation)
        assert (fan_in, fan_out) != fans(tuple(variable.shape))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_compute_fans_matches_keras(family):
    _, kernels = FAMILIES[family]("glorot_uniform")
    for _, variable, equation in kernels:
        shape = tuple(variable.shape)
        axes = einsum_axes(equation) if equation else (None, None)
        assert compute_fans(shape, *axes) == keras_compute_fans(shape, *axes)
        assert compute_fans(shape, *axes) == kernel_fans(variable, equation)[:2]


# Each class as Keras' VarianceScaling arguments (scale, mode, distribution), from its formula.
AS_VARIANCE_SCALING = {
    LecunOneOverSqrtD: (1.0 / 3.0, "fan_in", "uniform"),
    SigmoidGlorotUniform: (16.0, "fan_avg", "uniform"),
    SigmoidGlorotNormal: (16.0, "fan_avg", "truncated_normal"),
}


@pytest.mark.parametrize("cls", list(AS_VARIANCE_SCALING))
@pytest.mark.parametrize("family", ["einsum_dense", "einsum_dense_out_in", "multi_head_attention"])
def test_variance_scaling_is_keras_draw_on_einsum_axes(cls, family):
    # Bit for bit Keras' VarianceScaling given the same seed and the layer's einsum axes.
    _, kernels = FAMILIES[family](cls(seed=SEED))
    for _, variable, equation in kernels:
        input_axes, output_axes = einsum_axes(equation)
        scale, mode, distribution = AS_VARIANCE_SCALING[cls]
        reference = keras.initializers.VarianceScaling(
            scale, mode, distribution, seed=SEED, input_axes=input_axes, output_axes=output_axes
        )
        expected = to_numpy(reference(tuple(variable.shape)))
        np.testing.assert_array_equal(to_numpy(variable), expected)


def test_delta_orthogonal_in_conv_layers_and_clear_errors_elsewhere():
    for family in ["conv1d", "conv2d", "conv3d"]:
        _, [(_, variable, _)] = FAMILIES[family](DeltaOrthogonal(gain=2.0, seed=SEED))
        kernel = to_numpy(variable)
        spatial = kernel.shape[:-2]
        centre = kernel[tuple(s // 2 for s in spatial)]
        np.testing.assert_allclose(centre @ centre.T, 4.0 * np.eye(len(centre)), atol=1e-4)
        assert np.count_nonzero(kernel) == np.count_nonzero(centre)
    with pytest.raises(
        ValueError, match=r"input_axes=\[0\], output_axes=\[1, 2\].*orthogonal_gain"
    ):
        FAMILIES["multi_head_attention"]("delta_orthogonal")
    with pytest.raises(ValueError, match=r"shape=\(96, 64\) of rank 2.*convolution kernel"):
        FAMILIES["dense"]("delta_orthogonal")


# --- recurrent kernels: one orthogonal matrix, or one per gate -----------------------------


@pytest.mark.parametrize(("layer_cls", "gates"), [(keras.layers.LSTM, 4), (keras.layers.GRU, 3)])
def test_recurrent_kernel_whole_or_per_gate(layer_cls, gates):
    units, gain = 32, 5.0 / 3.0

    def recurrent(blocks):
        layer = layer_cls(
            units, recurrent_initializer=OrthogonalGain(gain="tanh", seed=SEED, blocks=blocks)
        )
        layer.build((None, 3, 8))
        kernel = to_numpy(layer.cell.recurrent_kernel)
        assert kernel.shape == (units, gates * units)
        return [kernel[:, g * units : (g + 1) * units] for g in range(gates)], kernel

    atol = ORTHOGONALITY_ATOL["float32"] * gain**2
    blocks, kernel = recurrent(gates)
    for block in blocks:
        np.testing.assert_allclose(block.T @ block, gain**2 * np.eye(units), atol=atol)
    assert not np.allclose(blocks[0], blocks[1])  # independent draws, not one block repeated
    # blocks=1, as Keras' Orthogonal: the (units, gates * units) matrix has orthonormal rows, so
    # the gates share the energy: each block's squared norm is about units * gain^2 / gates.
    blocks, kernel = recurrent(1)
    np.testing.assert_allclose(kernel @ kernel.T, gain**2 * np.eye(units), atol=atol)
    energy = np.array([(b**2).sum() for b in blocks]) / (units * gain**2)
    np.testing.assert_allclose(energy, 1.0 / gates, atol=0.25 / gates)
    assert all(np.abs(b.T @ b - gain**2 * np.eye(units)).max() > 0.5 for b in blocks)


def test_per_head_orthogonal_blocks_in_multi_head_attention():
    _, kernels = build_mha(OrthogonalGain(blocks=4, seed=SEED))
    query = to_numpy(kernels[0][1])  # (dim, heads, head_dim): blocks are the heads
    for head in range(4):
        block = query[:, head, :]
        np.testing.assert_allclose(block.T @ block, np.eye(16), atol=1e-5)


# --- save, reload and rebuild in a fresh process -------------------------------------------

# One model per family, every initializer seeded (an int: a rebuild from the config draws the
# same weights) and each family given a different mix of classes.
SAVED = {
    "dense": [LecunOneOverSqrtD(seed=1)],
    "conv1d": [Sparse(num_nonzero=3, stddev="auto", seed=2)],
    "conv2d": [DeltaOrthogonal(gain="relu", seed=3)],
    "conv3d": [SigmoidGlorotNormal(seed=4)],
    "depthwise_conv2d": [SigmoidGlorotUniform(seed=5)],
    "separable_conv2d": [OrthogonalGain(gain=0.5, seed=6)],
    "conv2d_transpose": [LecunOneOverSqrtD(seed=7)],
    "embedding": [Sparse(sparsity=0.5, seed=8)],
    "lstm": [SigmoidGlorotUniform(seed=9), OrthogonalGain(gain="tanh", blocks=4, seed=10)],
    "gru": [LecunOneOverSqrtD(seed=11), OrthogonalGain(blocks=3, seed=12)],
    "einsum_dense": [Sparse(num_nonzero=5, seed=13)],
    "einsum_dense_out_in": [OrthogonalGain(gain="relu", seed=14)],
    "multi_head_attention": [SigmoidGlorotNormal(seed=15)],
}


def saved_model(family: str) -> keras.Model:
    first, *rest = SAVED[family]
    recurrent = rest[0] if rest else first
    inputs = {
        "dense": (keras.Input((12,)), keras.layers.Dense(4, kernel_initializer=first)),
        "conv1d": (keras.Input((9, 4)), keras.layers.Conv1D(5, 3, kernel_initializer=first)),
        "conv2d": (keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3, kernel_initializer=first)),
        "conv3d": (keras.Input((4, 4, 4, 2)), keras.layers.Conv3D(3, 3, kernel_initializer=first)),
        "depthwise_conv2d": (
            keras.Input((6, 6, 3)),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, depthwise_initializer=first),
        ),
        "separable_conv2d": (
            keras.Input((6, 6, 3)),
            keras.layers.SeparableConv2D(
                4, 3, depthwise_initializer=first, pointwise_initializer=first
            ),
        ),
        "conv2d_transpose": (
            keras.Input((5, 5, 3)),
            keras.layers.Conv2DTranspose(4, 3, kernel_initializer=first),
        ),
        "embedding": (
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(20, 6, embeddings_initializer=first),
        ),
        "lstm": (
            keras.Input((4, 6)),
            keras.layers.LSTM(8, kernel_initializer=first, recurrent_initializer=recurrent),
        ),
        "gru": (
            keras.Input((4, 6)),
            keras.layers.GRU(6, kernel_initializer=first, recurrent_initializer=recurrent),
        ),
        "einsum_dense": (
            keras.Input((3, 12)),
            keras.layers.EinsumDense("abc,cde->abde", (None, 2, 4), kernel_initializer=first),
        ),
        "einsum_dense_out_in": (
            keras.Input((12,)),
            keras.layers.EinsumDense("ab,cb->ac", 7, kernel_initializer=first),
        ),
    }
    if family == "multi_head_attention":
        x = keras.Input((3, 8))
        mha = keras.layers.MultiHeadAttention(2, 4, kernel_initializer=first)
        return keras.Model(x, mha(x, x))
    x, layer = inputs[family]
    return keras.Model(x, layer(x))


RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import keras_initx  # the only registration step a user takes

    out = {}
    for family, path in json.loads(sys.argv[1]).items():
        model = keras.saving.load_model(path)
        rebuilt = model.__class__.from_config(model.get_config())  # fresh draws from the config
        np.savez(path + ".loaded.npz", *[np.asarray(w) for w in model.get_weights()])
        np.savez(path + ".rebuilt.npz", *[np.asarray(w) for w in rebuilt.get_weights()])
        out[family] = model.get_config()
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_layers")
    models, paths = {}, {}
    for family in SAVED:
        models[family] = saved_model(family)
        paths[family] = str(root / f"{family}.keras")
        models[family].save(paths[family])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": keras.backend.backend()}
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, json.dumps(paths)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return models, paths, json.loads(result.stdout.strip().splitlines()[-1])


def registered_names(config) -> list[str]:
    """Every `keras_initx>...` registered name in a (nested) config."""
    if isinstance(config, dict):
        own = (
            [config["registered_name"]]
            if "keras_initx>" in str(config.get("registered_name"))
            else []
        )
        return own + [n for value in config.values() for n in registered_names(value)]
    if isinstance(config, list):
        return [n for value in config for n in registered_names(value)]
    return []


@pytest.mark.parametrize("family", list(SAVED))
def test_saved_model_reloads_and_rebuilds_in_fresh_process(saved_models, family):
    models, paths, reloaded = saved_models
    model = models[family]
    config = json.loads(json.dumps(model.get_config()))
    assert reloaded[family] == config
    expected = {f"keras_initx>{type(init).__name__}" for init in SAVED[family]}
    assert set(registered_names(config)) == expected
    weights = model.get_weights()
    for suffix in ("loaded", "rebuilt"):
        with np.load(f"{paths[family]}.{suffix}.npz") as saved:
            assert len(saved.files) == len(weights)
            for i, w in enumerate(weights):
                np.testing.assert_array_equal(saved[f"arr_{i}"], w, err_msg=f"{suffix} {i}")
