"""Faults are data: diverging fits, huge and constant tensors are measured, never a crash."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_initx.callbacks import LayerStats
from keras_initx.capture import build_probe

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _diverging(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", name="d1"),
            keras.layers.Dense(32, activation="relu", name="d2"),
            keras.layers.Dense(3, name="out"),
        ],
        name="mlp",
    )
    model.compile(keras.optimizers.SGD(10.0), LOSS)
    rng = np.random.default_rng(seed)
    x = (10 * rng.normal(size=(160, 8))).astype("float32")
    return model, x, rng.integers(0, 3, size=160)


def test_a_diverging_fit_is_measured_at_every_scheduled_step():
    model, x, y = _diverging()
    cb = LayerStats(probe=(x[:32], y[:32]), every_n_steps=1, log_dir=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "measurement failed" warning either
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert not np.isfinite(history.history["loss"][-1])  # it did diverge
    frame = cb.to_dataframe()
    assert sorted(frame["step"].unique()) == list(range(21))
    last = frame[frame["step"] == 20]
    assert (last["nan_count"] + last["inf_count"]).sum() > 0


def test_terminate_on_nan_stops_at_the_first_non_finite_measurement():
    model, x, y = _diverging()
    cb = LayerStats(probe=(x[:32], y[:32]), every_n_steps=1, terminate_on_nan=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe()
    per_step = frame.groupby("step")[["nan_count", "inf_count"]].sum().sum(axis=1)
    stopped = int(model.optimizer.iterations.numpy())
    assert stopped < 20
    bad = per_step[per_step > 0]
    # Either the last measurement saw NaN/Inf, or the loss went non-finite before any did.
    if len(bad):
        assert bad.index.min() == per_step.index.max() == stopped


def test_terminate_on_nan_counts_even_when_stats_leave_the_counts_out():
    model, x, y = _diverging()
    cb = LayerStats(probe=(x[:32], y[:32]), stats=["std"], terminate_on_nan=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations.numpy()) < 20


def _constant_model(value, units=4):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(
                units,
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(value),
                name="const",
            ),
            keras.layers.Dense(2, name="out"),
        ],
        name="c",
    )
    model.compile(keras.optimizers.SGD(0.0), LOSS)
    return model


@pytest.mark.parametrize("value", [2.0**24, -3.0e30, 1.0])
def test_constant_tensors_of_any_magnitude_fit_and_measure(value):
    model = _constant_model(value)
    x = np.ones((8, 3), "float32")
    y = np.zeros(8, "int64")
    cb = LayerStats(probe=(x, y), every_n_steps=1, log_dir=None)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe()
    rows = frame[(frame["layer"] == "c/const") & (frame["tensor"] == "activation")]
    assert rows["step"].tolist() == [0, 1, 2]
    for column in ("mean", "min", "max", "p1", "p50", "p99"):
        np.testing.assert_allclose(rows[column], np.float32(value), rtol=1e-6, err_msg=column)
    np.testing.assert_array_equal(rows["std"], 0.0)


@pytest.mark.parametrize("scale", [1e20, 1e30])
def test_huge_finite_values_give_exact_finite_statistics(scale):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(
                16, kernel_initializer=keras.initializers.RandomNormal(stddev=scale), name="big"
            ),
        ],
        name="h",
    )
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    result = build_probe(model, tensors=["activation", "kernel"])(x).as_dict()["h/big"]
    output = model(x).numpy().astype(np.float64)
    kernel = model.get_layer("big").kernel.numpy().astype(np.float64)
    for got, want in ((result["activation"], output), (result["kernel"], kernel)):
        assert got["nan_count"] == got["inf_count"] == 0
        np.testing.assert_allclose(got["std"], np.std(want), rtol=1e-6)
        np.testing.assert_allclose(got["mean"], np.mean(want), rtol=1e-5, atol=1e-6 * scale)
        np.testing.assert_allclose(got["rms"], np.sqrt(np.mean(want**2)), rtol=1e-6)


class _CheckNumerics(keras.layers.Layer):
    """Raises a TensorFlow op error on NaN input, as user layers with asserts do."""

    def call(self, x):
        return tf.debugging.check_numerics(x, "probe data")


def test_a_measurement_failing_on_the_data_warns_and_the_fit_goes_on():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), _CheckNumerics(), keras.layers.Dense(2, name="out")], name="m"
    )
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    x = np.ones((8, 4), "float32")
    y = np.zeros(8, "int64")
    bad_probe = x.copy()
    bad_probe[0, 0] = np.nan
    cb = LayerStats(probe=(bad_probe, y), every_n_steps=1)
    with pytest.warns(UserWarning, match=r"measurement at step 0 failed \(InvalidArgumentError"):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations.numpy()) == 2  # training went on
    assert cb.to_dataframe().empty  # every measurement of that probe fails; nothing made up
