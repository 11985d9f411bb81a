import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from keras_initx import unit_variance
from keras_initx.capture import build_probe
from keras_initx.unit_variance import LSUV_COLUMNS, lsuv

DEPTH, WIDTH, N_TRAIN, N_BATCH = 20, 32, 1200, 256
TARGET, TOL = 1.0, 0.1


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype("float32")
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def deep_tanh_mlp():
    """20 tanh layers initialized with 0.01 * randn: the activations vanish with depth."""

    def small(i):
        return keras.initializers.RandomNormal(stddev=0.01, seed=i)

    hidden = [
        keras.layers.Dense(WIDTH, "tanh", kernel_initializer=small(i), name=f"hidden_{i}")
        for i in range(DEPTH)
    ]
    output = keras.layers.Dense(10, "softmax", kernel_initializer=small(DEPTH), name="out")
    return keras.Sequential([keras.Input((64,)), *hidden, output], name="deep")


def preactivation_stds(model, x):
    """Std of each Dense layer's affine output x @ W + b, recomputed here in NumPy."""
    stds, hidden = [], x
    for layer in model.layers:
        pre = hidden @ np.asarray(layer.kernel) + np.asarray(layer.bias)
        stds.append(pre.std())
        hidden = keras.ops.convert_to_numpy(layer.activation(pre))
    return np.array(stds)


class ProbeSpy:
    """Wraps capture.build_probe to count probes built, traces and forward calls."""

    def __init__(self):
        self.probes, self.calls = [], 0

    def __call__(self, *args, **kwargs):
        probe = build_probe(*args, **kwargs)
        self.probes.append(probe)
        spy = self

        class Counting:
            layers = probe.layers

            def __call__(self, *a, **k):
                spy.calls += 1
                return probe(*a, **k)

        return Counting()


@pytest.fixture(scope="module")
def scaled(digits):
    x_train = digits[0]
    model = deep_tanh_mlp()
    spy = ProbeSpy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(unit_variance, "build_probe", spy)
        frame = lsuv(model, x_train[:N_BATCH], target_std=TARGET, tol=TOL, seed=0)
    print(frame.to_string())
    return model, frame, spy


def test_frame_has_one_row_per_kernel_layer_in_depth_order(scaled):
    _, frame, _ = scaled
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == LSUV_COLUMNS
    assert frame["layer"].tolist() == [f"deep/hidden_{i}" for i in range(DEPTH)] + ["deep/out"]
    assert frame["layer_index"].tolist() == list(range(DEPTH + 1))
    assert set(frame["layer_class"]) == {"Dense"}
    assert frame["activation"].tolist() == ["tanh"] * DEPTH + ["softmax"]
    assert frame["converged"].all()
    assert ((frame["std_after"] - TARGET).abs() <= TOL).all()
    assert frame["iterations"].between(0, 10).all()
    # The reported scale is what turns std_before into std_after for the first layer, whose
    # pre-activation is linear in its own kernel and unaffected by any other layer.
    first = frame.iloc[0]
    assert first["std_after"] == pytest.approx(first["std_before"] * first["scale"], rel=1e-4)


def test_one_compiled_probe_one_forward_per_iteration(scaled):
    _, frame, spy = scaled
    assert len(spy.probes) == 1
    assert spy.probes[0].trace_count == 1
    assert spy.calls == 1 + frame["iterations"].sum()


def test_held_out_preactivation_std_within_tol_for_every_layer(digits, scaled):
    model, _, _ = scaled
    x_test = digits[2]
    before = preactivation_stds(deep_tanh_mlp(), x_test)
    after = preactivation_stds(model, x_test)
    print(
        f"\nheld-out pre-activation std, layers 1/10/20/out: before {before[[0, 9, 19, 20]]}, "
        f"after {after[[0, 9, 19, 20]]}"
    )
    # Without LSUV the signal is gone by layer 5 (0.01 * randn shrinks it ~18x per layer).
    assert before[0] < 0.2 and before[-1] < 1e-12
    # Measured: largest held-out deviation 0.027.
    assert np.all(np.abs(after - TARGET) <= TOL), after


def test_lsuv_model_trains_on_digits_where_the_unscaled_model_does_not(digits, scaled):
    x_train, y_train, x_test, y_test = digits
    model, _, _ = scaled
    accuracy = {}
    for name, candidate in [("unscaled", deep_tanh_mlp()), ("lsuv", model)]:
        candidate.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        keras.utils.set_random_seed(1)
        candidate.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)
        accuracy[name] = candidate.evaluate(x_test, y_test, verbose=0)[1]
    print(f"\nheld-out accuracy after 2 epochs: {accuracy}")
    # Measured: lsuv 0.83, unscaled 0.10 (chance: its gradients vanish through 20 layers).
    assert accuracy["lsuv"] >= 0.6
    assert accuracy["unscaled"] <= 0.2


def test_nested_functional_with_conv_skips_layers_without_kernels():
    inner = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.Activation("relu", name="act"),
            keras.layers.Flatten(),
        ],
        name="inner",
    )
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(5, name="head")(inner(inputs))
    model = keras.Model(inputs, outputs, name="outer")
    kernel_before = np.array(model.get_layer("inner").get_layer("conv").kernel)
    x = np.random.default_rng(0).standard_normal((64, 8, 8, 3)).astype("float32")
    frame = lsuv(model, x, target_std=2.0, tol=0.05, orthogonal=False)
    assert frame["layer"].tolist() == ["outer/inner/conv", "outer/head"]
    assert frame["layer_class"].tolist() == ["Conv2D", "Dense"]
    assert frame["converged"].all()
    conv = model.get_layer("inner").get_layer("conv")
    conv_pre = keras.ops.conv(x, conv.kernel, padding="same") + conv.bias
    head_out = model(x)  # the head is linear: its output is its pre-activation
    np.testing.assert_allclose(
        [np.std(keras.ops.convert_to_numpy(t)) for t in (conv_pre, head_out)], 2.0, atol=0.05
    )
    # orthogonal=False only rescales: the kernel keeps its direction.
    kernel_after = np.array(model.get_layer("inner").get_layer("conv").kernel)
    np.testing.assert_allclose(kernel_after, kernel_before * frame["scale"].iloc[0], rtol=1e-5)


def test_orthogonal_redraw_gives_orthonormal_columns_before_scaling():
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="d")], name="m")
    x = np.random.default_rng(0).standard_normal((128, 16)).astype("float32")
    frame = lsuv(model, x, seed=0)
    kernel = np.array(model.layers[0].kernel) / frame["scale"].iloc[0]
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(8), atol=1e-5)


def test_layers_filter_scales_only_matching_layers(digits):
    model = deep_tanh_mlp()
    untouched = np.array(model.get_layer("out").kernel)
    frame = lsuv(model, digits[0][:N_BATCH], layers=r"hidden_[0-4]$", seed=0)
    assert frame["layer"].tolist() == [f"deep/hidden_{i}" for i in range(5)]
    np.testing.assert_array_equal(np.array(model.get_layer("out").kernel), untouched)


def test_layer_that_cannot_reach_the_target_is_reported_with_a_warning():
    # A bias whose spread across units (std 5) exceeds the target: no kernel scale gets the
    # pre-activation std down to 1.
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                64,
                "tanh",
                bias_initializer=keras.initializers.RandomNormal(stddev=5.0, seed=0),
                name="biased",
            ),
        ],
        name="m",
    )
    x = np.random.default_rng(0).standard_normal((32, 8)).astype("float32")
    with pytest.warns(RuntimeWarning, match=r"layer 'm/biased' did not converge.*max_iter=3"):
        frame = lsuv(model, x, max_iter=3, seed=0)
    row = frame.iloc[0]
    assert not row["converged"]
    assert row["iterations"] == 3
    assert row["std_after"] > 1.0 + TOL


def test_zero_kernel_cannot_be_rescaled_and_is_reported():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="zeros", name="z")],
        name="m",
    )
    with pytest.warns(RuntimeWarning, match="cannot be rescaled"):
        frame = lsuv(model, np.ones((8, 4)), orthogonal=False)
    assert frame[["iterations", "std_before", "std_after", "converged"]].values.tolist() == [
        [0, 0.0, 0.0, False]
    ]


def test_unbuilt_sequential_is_built_from_the_batch():
    model = keras.Sequential([keras.layers.Dense(4, "relu"), keras.layers.Dense(2)])
    frame = lsuv(model, np.random.default_rng(0).standard_normal((32, 6)), seed=0)
    assert len(frame) == 2 and frame["converged"].all()


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"target_std": 0.0}, r"`target_std`\. Received: target_std=0\.0\. Expected a finite"),
        ({"target_std": -1.0}, r"`target_std`\. Received: target_std=-1\.0"),
        ({"target_std": float("nan")}, r"`target_std`\. Received: target_std=nan"),
        ({"target_std": float("inf")}, r"`target_std`\. Received: target_std=inf\. Expected a fin"),
        ({"tol": 0}, r"`tol`\. Received: tol=0\. Expected a finite number > 0"),
        ({"max_iter": 0}, r"`max_iter`\. Received: max_iter=0\. Expected an int >= 1"),
    ],
)
def test_bad_arguments_name_argument_and_value(kwargs, pattern):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="Invalid value for argument " + pattern):
        lsuv(model, np.ones((8, 4)), **kwargs)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"target_std": "1"}, r"`target_std`\. Received: target_std='1' of type str\. Expected"),
        ({"orthogonal": "yes"}, r"`orthogonal`\. Received: orthogonal='yes'\. Expected True"),
        (
            {"max_iter": 2.5},
            r"`max_iter`\. Received: max_iter=2\.5 of type float\. Expected an "
            r"int >= 1",
        ),
    ],
)
def test_wrong_types_are_type_errors(kwargs, pattern):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(TypeError, match="Invalid type for argument " + pattern):
        lsuv(model, np.ones((8, 4)), **kwargs)


def test_batch_that_does_not_fit_the_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(
        ValueError,
        match=r"`x_batch`\. Received: x_batch with shape \(8, 5\)\. Expected shape \(None, 4\)",
    ):
        lsuv(model, np.ones((8, 5)))


def test_model_without_kernels_has_nothing_to_scale():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("relu", name="act")])
    with pytest.raises(ValueError, match=r"none with a kernel.*Expected at least one layer"):
        lsuv(model, np.ones((8, 4)))


def test_not_a_model_is_a_type_error():
    with pytest.raises(TypeError, match="Invalid type for argument `model`"):
        lsuv(keras.layers.Dense(3), np.ones((8, 4)))


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.hidden = keras.layers.Dense(16, activation="tanh", kernel_initializer="zeros")
        self.out = keras.layers.Dense(3)

    def call(self, x):
        return self.out(self.hidden(x))


def test_lsuv_on_a_subclassed_model():
    keras.utils.set_random_seed(0)
    model = _Subclassed()
    x = np.random.default_rng(0).normal(size=(64, 10)).astype("float32")
    model(x)
    frame = lsuv(model, x)
    assert frame["layer"].tolist() == [f"sub/{model.hidden.name}", f"sub/{model.out.name}"]
    assert frame["converged"].all()
    assert (abs(frame["std_after"] - 1.0) <= 0.1).all()
