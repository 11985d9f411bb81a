"""keras_initx.callbacks.LayerStats in real fits: rows, values, files, schedules, errors."""

import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pandas as pd
import pytest
from tbparse import SummaryReader

from keras_initx.callbacks import LayerStats, log_spaced_steps
from keras_initx.capture import Probe
from keras_initx.sinks import COLUMNS

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", name="d1"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3, name="out"),
        ],
        name="mlp",
    )
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 8)).astype(np.float32), rng.integers(0, 3, size=64)


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """Two epochs of 4 steps, measured every 2 steps, with Keras' TensorBoard beside it."""
    log_dir = tmp_path_factory.mktemp("run")
    x, y = data
    model = _model()
    initial = model.get_weights()
    cb = LayerStats(probe=(x[:16], y[:16]), log_dir=log_dir, every_n_steps=2, training=True)
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[cb, keras.callbacks.TensorBoard(log_dir)],
    )
    return model, cb, log_dir, initial


def test_rows_steps_and_columns(fitted):
    _, cb, _, _ = fitted
    df = cb.to_dataframe()
    assert tuple(df.columns) == COLUMNS
    per_step = 7 + 5  # d1: all seven tensors; linear `out`: no pre-activation
    assert df.groupby("step").size().to_dict() == dict.fromkeys([0, 2, 4, 6, 8], per_step)
    assert df.groupby("step")["epoch"].first().to_dict() == {0: 0, 2: 0, 4: 0, 6: 1, 8: 1}
    first = df[df["step"] == 0]
    assert first["layer"].unique().tolist() == ["mlp/d1", "mlp/out"]
    assert first["layer_index"].unique().tolist() == [0, 1]
    assert first["activation"].unique().tolist() == ["tanh", "linear"]
    assert cb.engine.trace_count == 1  # eleven measurements, one trace


def test_step_zero_is_the_initialization(fitted, data):
    _, cb, _, initial = fitted
    w, b = initial[0], initial[1]
    a = np.tanh(data[0][:16] @ w + b)
    row = cb.to_dataframe().query("step == 0 and layer == 'mlp/d1' and tensor == 'activation'")
    assert row["std"].item() == pytest.approx(a.std(), rel=1e-5)
    assert row["mean"].item() == pytest.approx(a.mean(), abs=1e-6)
    kernel = cb.to_dataframe().query("step == 0 and layer == 'mlp/d1' and tensor == 'kernel'")
    assert kernel["max"].item() == pytest.approx(w.max())


def test_weights_identical_with_and_without_the_callback(fitted, data):
    """Even with `training=True` (dropout drawn in the probe), the seed state is restored."""
    model, _, _, _ = fitted
    plain = _model()
    plain.fit(*data, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_files_csv_parquet_and_tensorboard(fitted):
    _, cb, log_dir, _ = fitted
    df = cb.to_dataframe()
    pd.testing.assert_frame_equal(pd.read_csv(log_dir / "layer_stats.csv"), df, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(log_dir / "layer_stats.parquet"), df)
    assert {"train", "layer_stats"} <= {p.name for p in log_dir.iterdir()}
    d1 = SummaryReader(str(log_dir / "layer_stats" / "00_d1"), pivot=False).tensors
    std = d1[d1["tag"] == "activation_grad/std"].set_index("step")["value"]
    expected = df.query("layer == 'mlp/d1' and tensor == 'activation_grad'").set_index("step")
    np.testing.assert_allclose(std.sort_index().astype(float), expected["std"], rtol=1e-6)
    out = SummaryReader(str(log_dir / "layer_stats" / "01_out"), pivot=False).tensors
    # TensorBoard's default detail, "summary": activation histograms in 16 buckets, none of kernels.
    assert np.asarray(out[out["tag"] == "activation/values"]["value"].iloc[0]).shape == (16, 3)
    assert not out["tag"].eq("kernel/values").any()


def test_second_fit_keeps_counting(data):
    cb = LayerStats(probe=(data[0][:16], data[1][:16]), every_n_steps=3, tensors=["activation"])
    model = _model()
    model.fit(*data, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    model.fit(*data, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    # Optimizer steps 0..8 measured at 0, 3, 6 and the second fit's start (4, unmeasured before).
    assert sorted(cb.to_dataframe()["step"].unique()) == [0, 3, 4, 6]
    assert cb.engine.trace_count == 1


def test_log_schedule_and_epoch_ends(data):
    log = LayerStats(probe=(data[0][:16], None), schedule="log", tensors=["activation"])
    ends = LayerStats(
        probe=(data[0][:16], data[1][:16]),
        every_n_steps=100,
        on_epoch_end=True,
        stats=["std"],
        layers="out",
    )
    _model().fit(*data, batch_size=8, epochs=2, verbose=0, callbacks=[log, ends])
    assert sorted(log.to_dataframe()["step"].unique()) == [0, 1, 2, 3, 4, 6, 8, 11, 16]
    assert log_spaced_steps(16) == [0, 1, 2, 3, 4, 6, 8, 11, 16]
    frame = ends.to_dataframe()
    assert sorted(frame["step"].unique()) == [0, 8, 16]
    assert frame["layer"].unique().tolist() == ["mlp/out"]
    assert frame["mean"].isna().all() and frame["std"].notna().all()  # unrequested stats: NaN


def test_nan_and_inf_are_counted_and_training_goes_on(data):
    model = _model()
    kernel = model.get_layer("d1").kernel.numpy()
    kernel[0, 0] = np.inf
    model.get_layer("d1").kernel.assign(kernel)
    cb = LayerStats(probe=(data[0][:16], data[1][:16]), every_n_steps=2)
    history = model.fit(*data, batch_size=16, epochs=2, verbose=0, callbacks=[cb])
    assert len(history.history["loss"]) == 2
    first = cb.to_dataframe().query("step == 0").set_index("tensor")
    d1 = first[first["layer"] == "mlp/d1"]
    assert d1.loc["kernel", "inf_count"] == 1 and d1.loc["kernel", "nan_count"] == 0
    assert np.isfinite(d1.loc["kernel", "std"])  # computed on the finite values
    assert d1.loc["preactivation", "inf_count"] > 0  # tanh(inf) = 1 hides it downstream
    stopper = LayerStats(probe=(data[0][:16], data[1][:16]), terminate_on_nan=True)
    history = model.fit(*data, batch_size=16, epochs=3, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) == 1  # stopped at the end of the first epoch


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"probe": None, "mode": "probe"},
            ValueError,
            r"Received: probe=None. Expected a tuple `\(x, y\)`",
        ),
        ({"mode": "stream"}, ValueError, r"mode='stream'. Expected one of: tap, probe"),
        ({"mode": "tap"}, ValueError, r"`probe` with mode='tap'. Received: probe=a tuple"),
        (
            {"probe": None, "training": True},
            ValueError,
            r"`training` with mode='tap'. Received: training=True. Expected it left out",
        ),
        ({"probe": None, "loss": "mse"}, ValueError, r"`loss` with mode='tap'"),
        ({"probe": None, "on_epoch_end": True}, ValueError, r"`on_epoch_end` with mode='tap'"),
        ({"max_overhead": 0}, ValueError, r"max_overhead=0. Expected a number in \(0, 1\)"),
        ({"max_overhead": 1.5}, ValueError, r"max_overhead=1.5. Expected"),
        ({"tensorboard": "yes"}, ValueError, r"tensorboard='yes'. Expected True, False"),
        ({"sinks": [print]}, TypeError, r"in sinks. Expected objects with `write"),
        ({"probe": [1, 2]}, TypeError, r"Received: probe=list"),
        ({"probe": (np.ones((2, 8)), None)}, ValueError, r"Expected labels `y`"),
        ({"every_n_steps": 0}, ValueError, r"every_n_steps=0. Expected an int >= 1"),
        ({"schedule": "cosine"}, ValueError, r"schedule='cosine'. Expected one of: every_n"),
        ({"stats": ["p95"]}, ValueError, r"unknown: \['p95'\]\). Expected .*\['frac_dead_units'"),
        ({"tensors": ["weights"]}, ValueError, r"tensors=\['weights'\]"),
        ({"probe": (np.ones((0, 8)), np.zeros(0))}, ValueError, r"x with shapes \[\(0, 8\)\]"),
        ({"layers": "dense["}, ValueError, r"layers='dense\[', not a regular expression"),
        ({"layers": 5}, TypeError, r"layers=5. Expected a regular expression"),
        ({"layer_classes": "Dense"}, TypeError, r"layer_classes='Dense'. Expected a list"),
        ({"layer_classes": [5]}, TypeError, r"layer_classes=\[5\]. Expected a list"),
        ({"log_dir": 5}, TypeError, r"log_dir=5. Expected a directory path"),
        ({"log_dir": b"runs"}, TypeError, r"log_dir=b'runs'. Expected a directory path"),
        ({"training": "False"}, TypeError, r"training='False' of type str. Expected True or False"),
        ({"terminate_on_nan": 1}, TypeError, r"terminate_on_nan=1 of type int. Expected True"),
        ({"loss": "mse"}, TypeError, r"loss='mse'. Expected a callable"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, error, match):
    kwargs = {"probe": (np.ones((2, 8), "f4"), np.zeros(2)), **kwargs}
    with pytest.raises(error, match=match):
        LayerStats(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"probe": (np.ones((4, 5), "f4"), np.zeros(4))},
            r"x of shape \(4, 5\). Expected the model's input shape \(None, 8\)",
        ),
        ({"layers": "conv"}, r"match no layer.*\['mlp/d1', 'mlp/out'\]"),
    ],
)
def test_bad_arguments_fail_at_train_begin(data, kwargs, match):
    kwargs = {"probe": (data[0][:4], data[1][:4]), **kwargs}
    with pytest.raises(ValueError, match=match):
        _model().fit(*data, epochs=1, verbose=0, callbacks=[LayerStats(**kwargs)])


def test_unwritable_log_dir_fails_early(data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cb = LayerStats(probe=(data[0][:4], data[1][:4]), log_dir=blocker / "run")
    with pytest.raises(ValueError, match=r"`log_dir`.*cannot be written"):
        _model().fit(*data, epochs=1, verbose=0, callbacks=[cb])


MIRRORED = textwrap.dedent(
    """
    import os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from keras_initx.callbacks import LayerStats
    from keras_initx.capture import build_probe
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6, activation="tanh",
                                  name="d"), keras.layers.Dense(3, name="o")], name="m")
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 8)).astype("f4"), rng.integers(0, 3, 32)
    w, b = (v.numpy() for v in model.get_layer("d").weights)
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=2)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    df = cb.to_dataframe()
    assert sorted(df.step.unique()) == [0, 2, 4], df.step.unique()
    act = df.query("step == 0 and layer == 'm/d' and tensor == 'activation'")["std"].item()
    np.testing.assert_allclose(act, np.tanh(x[:16] @ w + b).std(), rtol=1e-5)
    assert (df.query("tensor == 'kernel_grad'")["std"] > 0).all()
    print("OK")
    """
)


def test_mirrored_strategy_two_logical_cpus():
    """In a subprocess: logical devices must be configured before TensorFlow initializes."""
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stderr[-3000:]


def test_warn_prints_step_zero_diagnosis(data, capsys):
    """A tanh stack drawn at 0.01 * randn vanishes layer by layer: flagged before training."""
    keras.utils.set_random_seed(0)
    small = keras.initializers.RandomNormal(stddev=0.01)
    model = keras.Sequential(
        [keras.Input((8,))]
        + [keras.layers.Dense(32, activation="tanh", kernel_initializer=small) for _ in range(4)]
        + [keras.layers.Dense(3)]
    )
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    x, y = data
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=100, warn=True)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    printed = capsys.readouterr().out
    assert "vanishing" in printed
    assert "glorot_uniform" in printed  # the suggestion for tanh layers


def test_warn_is_silent_for_a_healthy_init(data, capsys):
    x, y = data
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=100, warn=True)
    _model().fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    assert capsys.readouterr().out == ""


def test_one_callback_on_a_second_model_measures_it_from_step_zero(data):
    x, y = data
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=2, tensors=["activation"])
    first, second = _model(0), _model(1)
    first.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    second.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe()
    # Both models start at optimizer step 0: each gets its own step-0 and step-2 rows.
    assert frame.groupby("step").size().to_dict() == {0: 4, 2: 4, 4: 4}


def test_writes_are_bounded_to_one_measurement_in_flight(data, tmp_path, monkeypatch):
    x, y = data
    made, behind = [], []
    measure = Probe.__call__

    def counted(self, *args):
        made.append(1)
        return measure(self, *args)

    class SlowSink:
        """A user's sink that is slower than training: measurements queue up behind it."""

        written = 0

        def write(self, rows, histograms=None):
            time.sleep(0.02)
            self.written += 1
            behind.append(len(made) - self.written)  # made but not yet written

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(Probe, "__call__", counted)
    cb = LayerStats(
        probe=(x[:16], y[:16]), every_n_steps=1, log_dir=tmp_path, tensorboard=False,
        sinks=[SlowSink()],
    )  # fmt: skip
    _model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    assert len(behind) == 17 and max(behind) <= 1
    csv = pd.read_csv(tmp_path / "layer_stats.csv")
    assert sorted(csv["step"].unique()) == list(range(17))


def test_initial_epoch_labels_the_first_rows(data):
    x, y = data
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=2, tensors=["activation"])
    _model().fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe()
    assert frame.groupby("step")["epoch"].unique().map(list).to_dict() == {0: [2], 2: [2], 4: [2]}


def test_a_user_sink_gets_every_measurement(data):
    x, y = data

    class Forward:
        """Forwards each measurement to another logger (here a list), as a user's sink would."""

        def __init__(self):
            self.frames, self.calls = [], []

        def write(self, rows, histograms=None):
            self.frames.append(rows)

        def flush(self):
            self.calls.append("flush")

        def close(self):
            self.calls.append("close")

    sink = Forward()
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=2, sinks=[sink])
    _model().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[cb])
    pd.testing.assert_frame_equal(pd.concat(sink.frames, ignore_index=True), cb.to_dataframe())
    assert sink.calls == ["flush", "flush", "close"]  # each epoch end, then the end of training
