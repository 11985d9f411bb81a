"""Tests for keras_initx.width (experiments.width_sweep): muP's coordinate check."""

import math

import keras
import numpy as np
import pandas as pd
import pytest

from keras_initx import experiments
from keras_initx.comparison import train_val_split
from keras_initx.sinks import COLUMNS

BASE_WIDTH = 32
WIDTHS = [32, 128, 512, 1024]
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def digits_mlp(width, readout="standard", init="he_normal"):
    """64 -> width tanh -> width tanh -> 10 logits. `readout`: "standard" (SP), "zero" (SP with a
    zero-initialized readout), "mup" (zero-initialized readout fed sqrt(base/width) * h: the
    readout's effective init variance ~ 1/width^2 and learning rate ~ base/width, muP for SGD)."""
    inputs = keras.Input((64,))
    h = keras.layers.Dense(width, activation="tanh", kernel_initializer=init, name="hidden_1")(
        inputs
    )
    h = keras.layers.Dense(width, activation="tanh", kernel_initializer=init, name="hidden_2")(h)
    if readout == "mup":
        h = keras.layers.Rescaling(math.sqrt(BASE_WIDTH / width), name="readout_scale")(h)
    kernel = init if readout == "standard" else "zeros"
    outputs = keras.layers.Dense(10, kernel_initializer=kernel, name="output")(h)
    return keras.Model(inputs, outputs)


def _output_rms(frame, step):
    rows = frame[(frame["layer"] == "output") & (frame["step"] == step)]
    return rows.set_index("width")["rms"]


@pytest.fixture(scope="module")
def sweeps():
    return {
        readout: experiments.width_sweep(
            lambda w, r=readout: digits_mlp(w, r), WIDTHS, steps=3, loss=LOSS
        )
        for readout in ("standard", "zero", "mup")
    }


def test_frame_shape_columns_and_step0_values(sweeps):
    frame = sweeps["standard"]
    assert list(frame.columns) == ["width", *COLUMNS]
    # 4 widths x 4 steps x 3 layers x 1 tensor
    assert len(frame) == 48
    assert sorted(frame["width"].unique()) == WIDTHS
    assert sorted(frame["step"].unique()) == [0, 1, 2, 3]
    assert frame["p50"].isna().all() and frame[["mean", "std", "rms"]].notna().all().all()
    # step 0 is the initialization: recompute the first layer's rms at width 32 by hand
    keras.utils.set_random_seed(0)
    model = digits_mlp(32)
    (x, _), _ = train_val_split("digits", 0)
    hidden = np.tanh(x[:256] @ np.asarray(model.get_layer("hidden_1").kernel))
    row = frame[(frame["width"] == 32) & (frame["step"] == 0) & (frame["layer"] == "hidden_1")]
    assert row["rms"].item() == pytest.approx(np.sqrt(np.mean(hidden**2)), rel=1e-5)
    assert row["std"].item() == pytest.approx(hidden.std(), rel=1e-4)


def test_standard_readout_grows_with_width_mup_readout_stays_flat(sweeps):
    # Measured on digits (SGD 0.1, batch 256, widths 32 -> 1024, logits rms after 3 steps):
    # standard He readout 0.83 -> 1.89 (x2.3), zero-init SP readout 0.074 -> 1.21 (x16, about
    # width^0.8), muP-style readout 0.074 -> 0.058 (x0.78).
    standard = _output_rms(sweeps["standard"], 3)
    zero = _output_rms(sweeps["zero"], 3)
    mup = _output_rms(sweeps["mup"], 3)
    assert standard[1024] / standard[32] > 1.8
    assert zero[1024] / zero[32] > 8.0  # the readout update grows with width (32x here)
    assert 0.6 < mup[1024] / mup[32] < 1.3  # flat within 1.3x over a 32x width range
    assert np.all(np.diff(standard.loc[WIDTHS].to_numpy()) > 0)
    # at initialization the standard readout does not grow: the growth comes from the updates
    at_init = _output_rms(sweeps["standard"], 0)
    assert at_init[1024] / at_init[32] < 1.3
    # hidden layers under fan_in init are width-stable at init
    hidden = sweeps["standard"]
    hidden = hidden[(hidden["layer"] == "hidden_2") & (hidden["step"] == 0)]
    assert hidden["rms"].max() / hidden["rms"].min() < 1.1


def test_plot_width_sweep(sweeps):
    from keras_initx import plots

    figure = plots.plot_width_sweep(sweeps["zero"])
    assert len(figure.axes) == 4  # one panel per step
    lines = figure.axes[3].get_lines()
    assert [line.get_label() for line in lines] == ["hidden_1", "hidden_2", "output"]
    np.testing.assert_array_equal(lines[2].get_xdata(), WIDTHS)
    np.testing.assert_allclose(lines[2].get_ydata(), _output_rms(sweeps["zero"], 3).loc[WIDTHS])
    assert figure.axes[0].get_xscale() == "log" and figure.axes[0].get_yscale() == "log"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"widths": [64]}, ValueError, r"widths=\[64\]\. Expected two or more distinct"),
        ({"widths": [64, 64]}, ValueError, r"two or more distinct widths"),
        ({"widths": [0, 8]}, ValueError, r"`widths`"),
        ({"widths": "64"}, TypeError, r"widths='64'\. Expected a list of ints"),
        ({"tensors": ["activation_grad"]}, ValueError, r"Expected a non-empty list from"),
        ({"steps": -1}, ValueError, r"`steps`"),
        ({"data": [1, 2, 3]}, TypeError, r"data of type list"),
    ],
)
def test_width_sweep_errors(kwargs, error, match):
    arguments = {"widths": [8, 16], **kwargs}
    with pytest.raises(error, match=match):
        experiments.width_sweep(digits_mlp, **arguments)


def test_model_fn_must_return_a_model():
    with pytest.raises(TypeError, match=r"model_fn\(8\) of type str"):
        experiments.width_sweep(lambda w: "model", [8, 16], data=(np.zeros((4, 64)), np.zeros(4)))


def test_custom_data_and_precompiled_model_are_used():
    x = np.random.default_rng(0).standard_normal((16, 64)).astype("float32")
    y = np.arange(16) % 10

    def compiled(width):
        model = digits_mlp(width)
        model.compile(keras.optimizers.SGD(0.0), LOSS)  # lr 0: nothing moves
        return model

    frame = experiments.width_sweep(compiled, [8, 16], steps=2, data=(x, y))
    by_step = frame.pivot_table(index=["width", "layer"], columns="step", values="rms")
    pd.testing.assert_series_equal(by_step[0], by_step[2], check_names=False)
