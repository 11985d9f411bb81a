"""Tests for keras_initx.signal_propagation, its plot and `keras-initx propagate`."""

import keras
import numpy as np
import pandas as pd
import pytest

import keras_initx
from keras_initx import plots
from keras_initx.cli import main
from keras_initx.sinks import COLUMNS


def _tanh_mlp(depth=10, width=32, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((16,))]
    layers += [keras.layers.Dense(width, activation="tanh") for _ in range(depth - 1)]
    layers.append(keras.layers.Dense(4, activation="softmax"))
    model = keras.Sequential(layers, name="tanh_mlp")
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


def _batch(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 16)).astype("float32"), rng.integers(0, 4, n)


def test_frame_equals_layerstats_step0_rows():
    model = _tanh_mlp()
    x, y = _batch()
    weights = [w.copy() for w in model.get_weights()]
    result = keras_initx.signal_propagation(model, x, y)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)  # nothing in the model changed
    assert result.labels == "given"
    stats = keras_initx.LayerStats(probe=(x, y), every_n_steps=100)
    model.fit(x, y, batch_size=32, epochs=1, callbacks=[stats], verbose=0)
    step0 = stats.to_dataframe().query("step == 0").reset_index(drop=True)
    assert list(result.frame.columns) == list(COLUMNS)
    # 10 Dense layers x 7 tensors, less the softmax output's activation_grad: Keras computes the
    # cross-entropy from the logits, so the loss has no gradient w.r.t. the softmax output.
    assert len(result.frame) == 10 * 7 - 1
    pd.testing.assert_frame_equal(result.frame, step0, rtol=1e-6)
    # the findings are diagnose's on that frame
    pd.testing.assert_frame_equal(result.findings, keras_initx.diagnose(step0))


def test_random_readout_gradient_is_the_drawn_direction():
    model = _tanh_mlp(depth=3)
    x, _ = _batch(n=50)
    result = keras_initx.signal_propagation(model, x, seed=3)
    assert result.labels == "random readout"
    out = result.frame[result.frame["layer"] == result.frame["layer"].iloc[-1]]
    grad = out[out["tensor"] == "activation_grad"]
    # d/d output of sum(y * output) / 50 is y / 50, y drawn N(0, 1) with the same seed
    drawn = np.random.default_rng(3).standard_normal((50, 4)).astype("float32") / 50
    assert grad["std"].item() == pytest.approx(drawn.std(), rel=1e-5)
    assert grad["rms"].item() == pytest.approx(np.sqrt(np.mean(drawn**2)), rel=1e-5)


def test_forward_only_needs_no_labels_or_compile():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu")])
    x, _ = _batch(n=40)
    result = keras_initx.signal_propagation(model, x, gradients=False)
    assert result.labels == "none"
    assert set(result.frame["tensor"]) == {"activation", "preactivation", "kernel"}
    expected = np.maximum(x @ np.asarray(model.layers[0].kernel), 0.0)
    activation = result.frame.query("tensor == 'activation'")
    assert activation["std"].item() == pytest.approx(expected.std(), rel=1e-5)


def _conv_residual_attention_model():
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    skip = h
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(h)
    h = keras.layers.Add(name="residual")([h, skip])
    tokens = keras.layers.Reshape((64, 8))(h)
    tokens = keras.layers.MultiHeadAttention(2, 4, name="attention")(tokens, tokens)
    pooled = keras.layers.GlobalAveragePooling1D()(tokens)
    outputs = keras.layers.Dense(5, name="head")(pooled)
    return keras.Model(inputs, outputs, name="mixed")


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.hidden = keras.layers.Dense(12, activation="tanh", name="hidden")
        self.out = keras.layers.Dense(3, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def test_conv_batchnorm_residual_attention_and_subclassed_models():
    keras.utils.set_random_seed(0)
    model = _conv_residual_attention_model()
    x = np.random.default_rng(0).standard_normal((6, 8, 8, 3)).astype("float32")
    result = keras_initx.signal_propagation(model, x)
    frame = result.frame
    layers = frame.drop_duplicates("layer_index").sort_values("layer_index")
    # The residual Add and the attention's projections are rows too (no softmax: Keras' fused
    # attention path does not run that sublayer without dropout).
    assert [p.split("/")[-1] for p in layers["layer"]] == [
        "stem",
        "bn",
        "conv",
        "residual",
        "attention",
        "query",
        "key",
        "value",
        "attention_output",
        "head",
    ]
    grads = frame.query("tensor == 'activation_grad'")
    assert len(grads) == 10 and (grads["std"] > 0).all()
    # BatchNormalization in inference mode at init is the identity up to 1/sqrt(1 + eps)
    table = result.table("std")
    assert table.loc["mixed/bn", "activation"] == pytest.approx(
        table.loc["mixed/stem", "activation"], rel=1e-3
    )

    subclassed = _Subclassed()
    sub = keras_initx.signal_propagation(subclassed, _batch(n=10)[0])
    assert subclassed.built
    assert sorted(sub.frame["layer"].unique()) == ["subclassed/hidden", "subclassed/out"]


def test_plot_signal_propagation_draws_std_in_depth_order():
    model = _tanh_mlp(depth=4)
    x, y = _batch()
    frame = keras_initx.signal_propagation(model, x, y).frame
    figure = plots.plot_signal_propagation(frame)
    assert len(figure.axes) == 2
    for ax, tensor in zip(figure.axes, ["activation", "activation_grad"], strict=True):
        (line,) = ax.get_lines()
        rows = frame[frame["tensor"] == tensor].sort_values("layer_index")
        np.testing.assert_array_equal(line.get_xdata(), rows["layer_index"])
        np.testing.assert_allclose(line.get_ydata(), rows["std"])
        assert ax.get_yscale() == "log"
    # two initializers, one line each
    two = pd.concat([frame.assign(initializer="a"), frame.assign(initializer="b")])
    assert len(plots.plot_signal_propagation(two, by="initializer").axes[0].get_lines()) == 2
    with pytest.raises(ValueError, match=r"tensors=\['nope'\]\. Expected tensors present"):
        plots.plot_signal_propagation(frame, tensors=["nope"])


def test_signal_propagation_errors():
    model = _tanh_mlp(depth=2)
    with pytest.raises(ValueError, match=r"x of shape \(4, 3\)\. Expected the model's input"):
        keras_initx.signal_propagation(model, np.zeros((4, 3), "float32"))
    uncompiled = keras.Sequential([keras.Input((16,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"argument `loss`"):
        keras_initx.signal_propagation(uncompiled, _batch()[0], np.zeros(64))


def test_cli_propagate_random_and_npy_inputs(tmp_path, capsys):
    model = _tanh_mlp(depth=3)
    path = tmp_path / "model.keras"
    model.save(path)
    out = tmp_path / "out"
    assert main(["propagate", str(path), "--batch", "32", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "32 standard-normal rows; gradients: random readout" in text
    frame = pd.read_csv(out / "propagation.csv", keep_default_na=False, na_values=[""])
    expected = keras_initx.signal_propagation(
        model, np.random.default_rng(0).standard_normal((32, 16)).astype("float32")
    ).frame
    np.testing.assert_allclose(frame["std"], expected["std"], rtol=1e-5)
    assert (out / "propagation.png").stat().st_size > 0
    assert (out / "diagnosis.csv").exists()

    x, y = _batch()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    argv = ["propagate", str(path), "--x", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy"),
            "--batch", "40", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "on 40 rows of" in text and "gradients: given" in text
    with_labels = pd.read_csv(out / "propagation.csv")
    given = keras_initx.signal_propagation(model, x[:40], y[:40]).frame
    np.testing.assert_allclose(with_labels["std"], given["std"], rtol=1e-5)


def test_cli_propagate_errors(tmp_path, capsys):
    assert main(["propagate", str(tmp_path / "missing.keras")]) == 1
    assert "model file" in capsys.readouterr().err


def test_selected_stats_leave_the_others_nan():
    model = _tanh_mlp(depth=2)
    x, y = _batch(n=16)
    frame = keras_initx.signal_propagation(model, x, y, stats=["std"], tensors=["activation"]).frame
    assert list(frame.columns) == list(COLUMNS)
    assert frame["std"].notna().all() and frame["mean"].isna().all() and len(frame) == 2
