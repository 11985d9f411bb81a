"""keras_initx.capture: one compiled probe, values checked against independent computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_initx.capture import TENSORS, build_probe, build_tap, find_layers
from keras_initx.validation import input_mismatch

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 8)).astype(np.float32), rng.integers(0, 3, size=32)


@pytest.fixture(scope="module")
def mlp():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            # Named: default names depend on how many layers earlier tests created.
            keras.layers.Dense(
                16, activation="tanh", bias_initializer="random_normal", name="dense"
            ),
            keras.layers.Dense(12, activation="relu", name="dense_1"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, name="dense_2"),
        ],
        name="mlp",
    )
    model.compile("sgd", LOSS)
    return model


@pytest.fixture(scope="module")
def mlp_result(mlp, data):
    probe = build_probe(mlp, histograms=True)
    return probe, probe(*data)


def _manual_tensors(model, x, y):
    """The MLP's tensors recomputed with plain TF ops and a tape (no Keras layer call)."""
    (w1, b1), (w2, b2), (w3, b3) = (
        (layer.kernel.value, layer.bias.value) for layer in model.layers if layer.weights
    )
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([w1, b1, w2, b2, w3, b3])
        z1 = tf.matmul(x, w1) + b1
        a1 = tf.tanh(z1)
        z2 = tf.matmul(a1, w2) + b2
        a2 = tf.nn.relu(z2)
        z3 = tf.matmul(a2, w3) + b3
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(y, tf.int32), z3)
        )
    grads = dict(
        zip(
            ["a1", "z1", "a2", "z2", "z3", "w1", "b1", "w3"],
            tape.gradient(loss, [a1, z1, a2, z2, z3, w1, b1, w3]),
            strict=True,
        )
    )
    return {"a1": a1, "z1": z1, "a2": a2, "z3": z3, **{f"d{k}": v for k, v in grads.items()}}


def test_rows_are_layers_in_depth_order_times_their_tensors(mlp_result):
    probe, result = mlp_result
    assert [info.path for info in probe.layers] == ["mlp/dense", "mlp/dense_1", "mlp/dense_2"]
    assert [info.activation for info in probe.layers] == ["tanh", "relu", "linear"]
    keys = [(info.path, t) for info, t in result.rows]
    dense_tensors = [t for t in TENSORS if not t.startswith("recurrent_kernel")]
    assert keys[:7] == [("mlp/dense", t) for t in dense_tensors]
    # The linear output layer has no pre-activation; Dropout has neither weights nor activation.
    assert [t for p, t in keys if p == "mlp/dense_2"] == [
        "activation",
        "activation_grad",
        "kernel",
        "kernel_grad",
        "bias_grad",
    ]
    assert result.values.shape == (7 + 7 + 5, 13)
    assert result.histograms.shape == (19, 2 + 64)


def test_values_match_an_independent_forward_and_backward(mlp, data, mlp_result):
    _, result = mlp_result
    x, y = data
    ref = {k: v.numpy().astype(np.float64) for k, v in _manual_tensors(mlp, x, y).items()}
    cases = {
        ("mlp/dense", "activation"): ref["a1"],
        ("mlp/dense", "preactivation"): ref["z1"],
        ("mlp/dense", "activation_grad"): ref["da1"],
        ("mlp/dense", "preactivation_grad"): ref["dz1"],
        ("mlp/dense", "kernel"): mlp.layers[0].kernel.numpy(),
        ("mlp/dense", "kernel_grad"): ref["dw1"],
        ("mlp/dense", "bias_grad"): ref["db1"],
        ("mlp/dense_1", "activation"): ref["a2"],
        ("mlp/dense_1", "preactivation_grad"): ref["dz2"],
        ("mlp/dense_2", "activation"): ref["z3"],
        ("mlp/dense_2", "activation_grad"): ref["dz3"],
        ("mlp/dense_2", "kernel_grad"): ref["dw3"],
    }
    got = result.as_dict()
    for (path, tensor), a in cases.items():
        row = got[path][tensor]
        np.testing.assert_allclose(row["mean"], a.mean(), atol=1e-6, err_msg=f"{path} {tensor}")
        np.testing.assert_allclose(row["std"], a.std(), rtol=1e-4, err_msg=f"{path} {tensor}")
        assert row["max"] == pytest.approx(a.max(), rel=1e-5)
        assert row["frac_zero"] == pytest.approx((a == 0).mean())
    relu = got["mlp/dense_1"]["activation"]
    dead = (ref["a2"] == 0).all(axis=0).mean()
    assert relu["frac_dead_units"] == pytest.approx(dead)
    assert np.isnan(relu["frac_saturated"])  # relu is unbounded
    assert got["mlp/dense"]["activation"]["frac_saturated"] == pytest.approx(
        (np.abs(ref["a1"]) > 0.99).mean()
    )


def test_traced_once_and_sees_new_weights(mlp, data):
    probe = build_probe(mlp, tensors=["kernel"], stats=["mean"])
    first = probe(*data).get("mlp/dense", "kernel", "mean")
    kernel = mlp.layers[0].kernel
    saved = kernel.numpy()
    try:
        kernel.assign(saved + 1.0)
        for _ in range(4):
            moved = probe(*data).get("mlp/dense", "kernel", "mean")
    finally:
        kernel.assign(saved)
    assert moved == pytest.approx(first + 1.0, rel=1e-5)
    assert probe.trace_count == 1
    # Tracing left no wrapper behind on the model's layers.
    assert all("call" not in vars(info.layer) for info in probe.layers)
    assert mlp.layers[0].activation is keras.activations.tanh


def test_forward_only_probe_on_an_uncompiled_model(data):
    """The LSUV use: one statistic of one tensor, no labels, no loss, no backward pass."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(5, activation="tanh", name="d")], name="s"
    )
    probe = build_probe(model, tensors=["preactivation"], stats=["std"])
    assert not probe.needs_labels
    result = probe(data[0])
    layer = model.layers[0]
    z = data[0] @ layer.kernel.numpy() + layer.bias.numpy()
    assert result.get("s/d", "preactivation", "std") == pytest.approx(z.std(), 1e-5)
    assert result.values.shape == (1, 1)
    # A second batch size traces a second function, never a wrong one.
    probe(data[0][:7])
    assert probe.trace_count == 2


def test_nested_multi_input_multi_output_paths_and_gradients():
    keras.utils.set_random_seed(3)
    inner = keras.Sequential([keras.layers.Dense(4, activation="tanh", name="dense")], name="inner")
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(5, activation="relu", name="dense")(keras.layers.Concatenate()([a, b]))
    h = inner(h)
    model = keras.Model(
        [a, b],
        [keras.layers.Dense(2, name="h1")(h), keras.layers.Dense(1, name="h2")(h)],
        name="outer",
    )
    model.compile("sgd", [LOSS, "mse"])
    rng = np.random.default_rng(4)
    x = [rng.normal(size=(16, 4)).astype("f4"), rng.normal(size=(16, 3)).astype("f4")]
    y = [rng.integers(0, 2, 16), rng.normal(size=(16, 1)).astype("f4")]
    probe = build_probe(model, tensors=["activation", "activation_grad"])
    assert [i.path for i in probe.layers] == [
        "outer/concatenate",
        "outer/dense",
        "outer/inner/dense",
        "outer/h1",
        "outer/h2",
    ]
    got = probe(x, y).as_dict()
    for path in got:
        assert got[path]["activation_grad"]["std"] > 0, path
    probe(x, y)
    # The compiled loss's per-output metrics (built by the first call) hold no probe loss.
    assert len(model.metrics_variables) > 2
    for v in model.metrics_variables:
        np.testing.assert_array_equal(v.numpy(), 0.0, err_msg=v.path)


class _Net(keras.Model):
    def __init__(self):
        super().__init__(name="net")
        self.hidden = keras.layers.Dense(6, activation="sigmoid", name="hidden")
        self.out = keras.layers.Dense(3, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def test_subclassed_model(data):
    keras.utils.set_random_seed(5)
    model = _Net()
    model.compile("sgd", LOSS)
    with pytest.raises(ValueError, match="not built"):
        build_probe(model)
    model(data[0])
    got = build_probe(model)(*data).as_dict()
    assert sorted(got) == ["net/hidden", "net/out"]
    hidden = got["net/hidden"]
    assert hidden["preactivation_grad"]["std"] > 0 and hidden["kernel_grad"]["std"] > 0
    assert 0 < hidden["activation"]["min"] and hidden["activation"]["max"] < 1


def test_conv_batchnorm_dropout_inference_and_training_leave_state_alone():
    keras.utils.set_random_seed(6)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dropout(0.5),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ],
        name="cnn",
    )
    model.compile("sgd", LOSS)
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(8, 6, 6, 2)).astype("f4"), rng.integers(0, 3, 8)
    state = [v.numpy().copy() for v in model.non_trainable_variables]
    assert [i.layer_class for i in find_layers(model)] == ["Conv2D", "BatchNormalization", "Dense"]
    inference = build_probe(model, tensors=["activation"])(x, y).as_dict()
    conv = model.layers[0](x).numpy()
    np.testing.assert_allclose(inference["cnn/conv"]["activation"]["std"], conv.std(), rtol=1e-4)
    assert inference["cnn/conv"]["activation"]["frac_dead_units"] == pytest.approx(
        (conv == 0).all(axis=(0, 1, 2)).mean()
    )
    bn = "cnn/bn"
    training = build_probe(model, tensors=["activation"], training=True)(x, y).as_dict()
    # Batch statistics normalize each channel: mean ~0, std ~1 (inference uses moving stats).
    assert training[bn]["activation"]["mean"] == pytest.approx(0.0, abs=1e-4)
    assert training[bn]["activation"]["std"] == pytest.approx(1.0, abs=1e-2)
    for v, old in zip(model.non_trainable_variables, state, strict=True):
        np.testing.assert_array_equal(v.numpy(), old, err_msg=v.path)


def test_layer_filters(mlp):
    assert [i.path for i in find_layers(mlp, layers="dense_[12]")] == ["mlp/dense_1", "mlp/dense_2"]
    assert [i.path for i in find_layers(mlp, layer_classes=[keras.layers.Dense])][0] == (
        "mlp/dense"
    )
    assert [i.index for i in find_layers(mlp, layers="dense_2")] == [0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tensors": ["activations"]}, ValueError, r"`tensors`.*'activation', 'activation_grad'"),
        ({"stats": ["median"]}, ValueError, r"`stats`.*unknown: \['median'\].*'frac_dead_units'"),
        ({"stats": "std"}, TypeError, "Expected a list of names"),
        ({"layers": "conv"}, ValueError, r"match no layer.*'mlp/dense'"),
        ({"layer_classes": ["Conv2D"]}, ValueError, r"layer_classes=\['Conv2D'\]"),
        ({"saturation_threshold": 1.5}, ValueError, r"saturation_threshold=1.5. Expected"),
        ({"histogram_bins": 1}, ValueError, "histogram_bins=1"),
    ],
)
def test_bad_arguments(mlp, kwargs, error, match):
    with pytest.raises(error, match=match):
        build_probe(mlp, **kwargs)


def test_gradients_need_a_loss_and_labels(data):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, name="d")], name="s")
    with pytest.raises(ValueError, match="without a compiled loss"):
        build_probe(model, tensors=["activation_grad"])
    probe = build_probe(model, tensors=["kernel_grad"], loss=lambda y, p: tf.reduce_mean(p**2))
    with pytest.raises(ValueError, match="Received: y=None"):
        probe(data[0])
    w = model.layers[0].kernel.numpy()
    grad = 2 * data[0].T @ (data[0] @ w + model.layers[0].bias.numpy()) / (32 * 2)
    got = probe(*data).get("s/d", "kernel_grad", "std")
    assert got == pytest.approx(grad.std(), rel=1e-4)


def test_input_mismatch_names_received_and_expected_shapes():
    single = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    assert input_mismatch(single, np.zeros((4, 8))) is None
    assert input_mismatch(single, np.zeros((4, 5))) == ((4, 5), (None, 8))
    assert input_mismatch(single, np.zeros((4, 8, 1))) == ((4, 8, 1), (None, 8))

    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    two = keras.Model([a, b], keras.layers.Concatenate()([a, b]))
    assert input_mismatch(two, [np.zeros((4, 3)), np.zeros((4, 2))]) is None
    assert input_mismatch(two, {"b": np.zeros((4, 2)), "a": np.zeros((4, 3))}) is None
    assert input_mismatch(two, [np.zeros((4, 3))]) == ((4, 3), [(None, 3), (None, 2)])
    assert input_mismatch(two, {"a": np.zeros((4, 3)), "b": np.zeros((4, 9))}) == (
        [(4, 3), (4, 9)],
        [(None, 3), (None, 2)],
    )


def test_input_mismatch_is_silent_before_a_subclassed_model_is_called():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    assert input_mismatch(Net(), np.zeros((4, 5))) is None


@pytest.mark.parametrize("user_setting", [None, False])
def test_first_call_leaves_tensorflow_optimizer_options_as_they_were(mlp, data, user_setting):
    options = tf.config.optimizer.get_experimental_options()
    if user_setting is not None:
        tf.config.optimizer.set_experimental_options({"constant_folding": user_setting})
    try:
        build_probe(mlp, tensors=["activation"], stats=["std"])(data[0])
        after = tf.config.optimizer.get_experimental_options().get("constant_folding", True)
        assert after is (True if user_setting is None else user_setting)
    finally:
        tf.config.optimizer.set_experimental_options(
            {"constant_folding": options.get("constant_folding", True)}
        )


def test_a_gradient_that_does_not_exist_has_no_row():
    """Keras computes a softmax output's cross-entropy from the cached logits: the loss does not
    depend on the softmax output, so there is no `activation_grad` (not a made-up 0), while the
    gradient w.r.t. the logits (`preactivation_grad`) is measured."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(3, activation="softmax", name="out")], name="s"
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    y = np.arange(8) % 3
    got = build_probe(model)(x, y).as_dict()["s/out"]
    assert "activation_grad" not in got
    with tf.GradientTape() as tape:
        logits = tf.constant(x @ model.get_layer("out").kernel.numpy())
        logits += model.get_layer("out").bias
        tape.watch(logits)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    np.testing.assert_allclose(
        got["preactivation_grad"]["std"], np.std(tape.gradient(loss, logits)), rtol=1e-4
    )


def test_kernel_initializer_is_the_registered_name():
    from keras_initx.initializers import OrthogonalGain
    from keras_initx.sinks import result_rows

    inputs = keras.Input((6, 6, 2))
    x = keras.layers.DepthwiseConv2D(3, depthwise_initializer="he_uniform", name="dw")(inputs)
    x = keras.layers.Conv2D(4, 1, name="conv")(x)  # Keras' default
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Reshape((16, 4))(x)
    x = keras.layers.LSTM(3, kernel_initializer="pytorch_default", name="lstm")(x)
    x = keras.layers.Dense(5, kernel_initializer=OrthogonalGain(gain="selu"), name="ortho")(x)
    outputs = keras.layers.Dense(2, kernel_initializer="he_normal", name="he")(x)
    model = keras.Model(inputs, outputs, name="m")
    names = {info.path: info.kernel_initializer for info in find_layers(model)}
    assert names == {
        "m/dw": "he_uniform",
        "m/conv": "glorot_uniform",
        "m/bn": "",
        "m/relu": "",
        "m/lstm": "lecun_1_over_sqrt_d",  # the cell's; the canonical name of `pytorch_default`
        "m/ortho": "orthogonal_gain",
        "m/he": "he_normal",
    }
    # ... and the frame's column carries it on every row of the layer.
    x = np.zeros((2, 6, 6, 2), np.float32)
    rows = result_rows(build_probe(model, tensors=["activation", "kernel"])(x), step=0)
    by_layer = rows.groupby("layer")["kernel_initializer"].unique().map(list).to_dict()
    assert by_layer == {path: [name] for path, name in names.items()}


def test_tensors_no_selected_layer_provides_fail_early():
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"tensors=\['kernel_grad'\], which none of the selected"):
        build_probe(model, ["kernel_grad"])
    with pytest.raises(ValueError, match=r"Expected some of \['activation', 'activation_grad'"):
        build_tap(model, ["kernel_grad"])
