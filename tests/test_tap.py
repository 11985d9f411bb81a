"""Tap mode: LayerStats measuring fit's own training step (keras_initx.capture.Tap)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from keras_initx import LayerStats

N, BATCH = 100, 16  # 7 batches per epoch, the last one of 4 examples


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 8)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int64")


def _model(seed=0, dropout=True, **compile_kwargs):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8,)), keras.layers.Dense(16, activation="tanh", name="d1")]
    if dropout:
        layers.append(keras.layers.Dropout(0.3, name="drop"))
    layers += [
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Dense(16, activation="relu", name="d2"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ]
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        keras.optimizers.Adam(0.01),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        **compile_kwargs,
    )
    return model


def _fit(model, callbacks=(), epochs=2):
    return model.fit(
        *_data(),
        batch_size=BATCH,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
    )


def _assert_same_training(plain, tapped, plain_history, tapped_history):
    for a, b in zip(plain.get_weights(), tapped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical, BatchNormalization's too
    assert int(plain.optimizer.iterations) == int(tapped.optimizer.iterations)
    assert plain_history.history == tapped_history.history


def _largest_difference(a, b):
    pairs = zip(a.get_weights(), b.get_weights(), strict=True)
    return max(float(np.abs(u - v).max()) for u, v in pairs)


@pytest.mark.parametrize(
    "compile_kwargs",
    [{}, {"steps_per_execution": 3}, {"jit_compile": True}],
    ids=["plain", "steps_per_execution", "jit_compile"],
)
def test_tap_trains_bit_identically_and_traces_once(compile_kwargs):
    plain = _model(**compile_kwargs)
    plain_history = _fit(plain)
    tapped = _model(**compile_kwargs)
    stats = LayerStats(every_n_steps=2)
    tapped_history = _fit(tapped, [stats])
    _assert_same_training(plain, tapped, plain_history, tapped_history)
    frame = stats.to_dataframe()
    assert set(frame["source"]) == {"tap"} and stats.mode == "tap"
    assert stats.engine.trace_count == 1  # one trace for all the measurements of the fit
    steps = sorted(frame["step"].unique())
    spe = compile_kwargs.get("steps_per_execution", 1)
    if spe == 1:
        # Step 6 and 13 are the epochs' last, smaller batches: not measured, the next one is.
        assert steps == [0, 2, 4, 7, 8, 10, 12]
    else:
        # Groups of 3 steps start at 0, 3, 6 | 7, 10, 13: the group holding a scheduled step is
        # measured at its first step, the schedule continues after the group.
        assert steps == [0, 3, 7, 10]
    assert frame.groupby("step").size().nunique() == 1  # every measurement has every row


def test_tap_rows_are_the_training_batch_before_its_update():
    model = _model(dropout=False)
    x, y = _data()
    kernel = np.asarray(model.get_layer("d1").kernel)
    bias = np.asarray(model.get_layer("d1").bias)
    stats = LayerStats(every_n_steps=100)
    _fit(model, [stats], epochs=1)
    rows = stats.to_dataframe().set_index(["layer", "tensor"])
    assert set(rows["step"]) == {0}
    z = x[:BATCH] @ kernel + bias
    # Pre-activation of tanh is recorded beside the training path (a second evaluation).
    assert rows.loc[("mlp/d1", "preactivation"), "std"] == pytest.approx(z.std(), rel=1e-5)
    assert rows.loc[("mlp/d1", "activation"), "mean"] == pytest.approx(np.tanh(z).mean(), abs=1e-6)
    assert rows.loc[("mlp/d1", "kernel"), "std"] == pytest.approx(kernel.std(), rel=1e-6)
    # The output's probabilities get no gradient (the loss reads the logits): no row, no fake 0.
    assert ("mlp/out", "activation_grad") not in rows.index
    assert rows.loc[("mlp/out", "preactivation_grad"), "std"] > 0


def test_tap_equals_a_training_mode_probe_on_the_same_batch():
    x, y = _data()
    tapped, probed = _model(dropout=False), _model(dropout=False)
    tap = LayerStats(every_n_steps=100)
    probe = LayerStats(probe=(x[:BATCH], y[:BATCH]), training=True, every_n_steps=100)
    _fit(tapped, [tap], epochs=1)
    _fit(probed, [probe], epochs=1)
    keys = ["layer", "tensor"]
    a = tap.to_dataframe().query("step == 0").set_index(keys)
    b = probe.to_dataframe().query("step == 0").set_index(keys)
    assert sorted(a.index) == sorted(b.index)
    for stat in ("mean", "std", "min", "max", "frac_saturated", "frac_dead_units"):
        np.testing.assert_allclose(a[stat], b.loc[a.index, stat], rtol=2e-4, atol=1e-7)


class CustomStepModel(keras.Model):
    """A model with its own train_step (GradientTape, apply_gradients, own metric)."""

    def __init__(self):
        super().__init__()
        self.d1 = keras.layers.Dense(16, activation="tanh")
        self.out = keras.layers.Dense(3)
        self.tracker = keras.metrics.Mean(name="loss")

    def call(self, x):
        return self.out(self.d1(x))

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            loss = keras.losses.sparse_categorical_crossentropy(y, self(x), from_logits=True)
            loss = keras.ops.mean(loss)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        self.tracker.update_state(loss)
        return {"loss": self.tracker.result()}


def test_tap_measures_a_model_with_its_own_train_step():
    def run(callbacks):
        keras.utils.set_random_seed(0)
        model = CustomStepModel()
        model.compile(keras.optimizers.SGD(0.1))
        model(np.zeros((1, 8), "float32"))
        return model, _fit(model, callbacks, epochs=1)

    plain, plain_history = run([])
    stats = LayerStats(every_n_steps=3)
    tapped, tapped_history = run([stats])
    _assert_same_training(plain, tapped, plain_history, tapped_history)
    frame = stats.to_dataframe()
    assert sorted(frame["step"].unique()) == [0, 3]
    tensors = set(frame["tensor"])
    assert {"activation_grad", "preactivation_grad", "kernel_grad", "bias_grad"} <= tensors


def test_default_layer_stats_with_a_log_dir_just_works(tmp_path):
    stats = LayerStats(log_dir=tmp_path, every_n_steps=4)
    _fit(_model(), [stats], epochs=1)
    frame = pd.read_csv(tmp_path / "layer_stats.csv")
    assert set(frame["source"]) == {"tap"}
    assert sorted(frame["step"].unique()) == [0, 4]


def test_budget_spaces_measurements_and_reports_their_cost(tmp_path):
    stats = LayerStats(log_dir=tmp_path, max_overhead=1e-4)  # a budget nothing fits in
    _fit(_model(), [stats], epochs=3)
    frame = stats.to_dataframe()
    steps = sorted(frame["step"].unique())
    assert steps[:5] == [0, 1, 2, 3, 4]  # the dense start is always measured
    report = stats.cost_report()
    assert frame.attrs["cost"]["measurements"] == report["measurements"] == len(steps)
    assert report["mode"] == "tap" and report["max_overhead"] == 1e-4
    assert report["plain_step_s"] > 0 and report["measure_s"] >= 0
    assert report["write_s"] > 0 and report["cost_in_steps"] > 0
    # Once a few plain steps are timed, the interval is what the budget allows: no more
    # measurements in this fit (21 steps) after the log schedule's steps up to then.
    assert report["interval"] > 21
    assert max(steps) <= 16
    events = EventAccumulator(str(tmp_path / "layer_stats")).Reload()
    tags = events.Tags()["tensors"]
    assert {"cost/interval", "cost/cost_in_steps", "cost/overhead", "cost"} <= set(tags)


def test_tap_with_mixed_precision_reports_unscaled_gradients():
    def step0_grads(policy):
        keras.mixed_precision.set_global_policy(policy)
        try:
            model = _model(dropout=False)
            stats = LayerStats(every_n_steps=100, tensors=["kernel_grad", "activation"])
            _fit(model, [stats], epochs=1)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        return stats.to_dataframe().set_index(["layer", "tensor"])["std"]

    full = step0_grads("float32")
    mixed = step0_grads("mixed_float16")  # a LossScaleOptimizer: gradients scaled by 2^15
    grads = full.index.get_level_values("tensor") == "kernel_grad"
    np.testing.assert_allclose(mixed[grads], full[grads], rtol=0.05)


MIRRORED = textwrap.dedent(
    """
    import json, os
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_initx import LayerStats

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((8,)),
                                      keras.layers.Dense(16, activation="tanh", name="d1"),
                                      keras.layers.Dense(2, activation="softmax", name="out")])
            model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        stats = LayerStats(every_n_steps=2)
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
        frame = stats.to_dataframe().query("step == 0")
        return {f"{r.layer.split('/')[-1]}|{r.tensor}": [r.mean, r.std, r.min, r.max]
                for r in frame.itertuples()}, [w.tolist() for w in model.get_weights()]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    print(json.dumps({"mirrored": run(mirrored), "single": run(tf.distribute.get_strategy())}))
    """
)


@pytest.mark.slow
def test_tap_under_mirrored_strategy_gives_the_global_batch():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    (mirrored, mirrored_weights), (single, single_weights) = result["mirrored"], result["single"]
    assert sorted(mirrored) == sorted(single)
    for key, values in single.items():
        # Sums and counts over both replicas' halves: the statistics of the global batch of 32.
        np.testing.assert_allclose(mirrored[key], values, rtol=1e-4, atol=1e-7, err_msg=key)
    for a, b in zip(mirrored_weights, single_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["tap", "probe"])
def test_a_slow_first_measurement_says_so(monkeypatch, capsys, mode):
    from keras_initx import callbacks

    monkeypatch.setattr(callbacks, "_SLOW_SETUP_S", 0.0)
    x, y = _data()
    probe = (x[:BATCH], y[:BATCH]) if mode == "probe" else None
    _fit(_model(), [LayerStats(probe, every_n_steps=100)], epochs=1)
    out = capsys.readouterr().out
    assert out.count("LayerStats: still preparing the measuring") == 1
    assert f"measuring {mode} for 4 layers" in out


def _text_model():
    inputs = keras.Input((12,), dtype="int32")
    h = keras.layers.Embedding(50, 16, name="embed")(inputs)
    h = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True), name="bilstm")(h)
    h = keras.layers.GRU(8, name="gru")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    return keras.Model(inputs, outputs, name="text"), lambda rng: rng.integers(0, 50, (64, 12))


def _attention_model():
    inputs = keras.Input((10, 16))
    attended = keras.layers.MultiHeadAttention(2, 8, dropout=0.1, name="mha")(inputs, inputs)
    h = keras.layers.LayerNormalization(name="norm")(keras.layers.Add()([inputs, attended]))
    h = keras.layers.Dense(32, activation="gelu", name="ff")(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    return keras.Model(inputs, outputs, name="attention"), lambda rng: rng.normal(
        size=(64, 10, 16)
    ).astype("float32")


def _residual_cnn():
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    branch = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(h)
    branch = keras.layers.BatchNormalization(name="bn")(branch)
    h = keras.layers.ReLU(name="relu")(keras.layers.Add(name="add")([h, branch]))
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    return keras.Model(inputs, outputs, name="cnn"), lambda rng: rng.normal(
        size=(64, 12, 12, 3)
    ).astype("float32")


def _mobilenet():
    model = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), weights=None, classes=3, alpha=0.35
    )
    return model, lambda rng: rng.normal(size=(16, 96, 96, 3)).astype("float32")


@pytest.mark.parametrize(
    ("build", "exact"),
    [
        (_text_model, True),
        (_attention_model, True),
        # TensorFlow's arithmetic optimizer regroups `BN(x) + h` (x * inv + c + h) only when
        # nothing else reads BN's output: reading it for the statistics keeps the plain sum,
        # which rounds differently in the last bit. Such a difference is held to what running
        # the same fit eagerly (Keras' own run_eagerly=True) makes.
        (_residual_cnn, False),
        pytest.param(_mobilenet, False, marks=pytest.mark.slow),
    ],
    ids=["embedding_lstm_gru", "attention", "residual_bn_cnn", "mobilenet_v2"],
)
def test_tap_on_models_users_train(build, exact):
    """RNNs, attention, residual BN CNNs: the same training, and rows for every layer kind."""

    def run(callbacks, run_eagerly=False):
        keras.utils.set_random_seed(0)
        model, draw = build()
        model.compile(
            keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy", run_eagerly=run_eagerly
        )
        rng = np.random.default_rng(0)
        x = draw(rng)
        y = rng.integers(0, 3, len(x))
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                            callbacks=callbacks)  # fmt: skip
        return model, history

    plain, plain_history = run([])
    stats = LayerStats(every_n_steps=3)
    tapped, tapped_history = run([stats])
    if exact:
        _assert_same_training(plain, tapped, plain_history, tapped_history)
    else:
        eager, _ = run([], run_eagerly=True)
        bound = max(2 * _largest_difference(plain, eager), 1e-6)
        assert _largest_difference(plain, tapped) <= bound
    frame = stats.to_dataframe()
    assert stats.engine.trace_count == 1
    assert frame.groupby("step").size().nunique() == 1
    step0 = frame[frame["step"] == 0]
    finite = step0.dropna(subset=["std"])
    assert len(finite) == len(step0) and (finite["nan_count"] == 0).all()
    measured = set(step0["layer"])
    # Every layer the engine selected has rows, and every layer below the output a gradient.
    assert measured == {info.path for info in stats.engine.layers}
    grads = step0[step0["tensor"] == "activation_grad"]
    assert len(grads) >= len(measured) - 1


def test_tap_with_tf_data_of_unknown_length_and_run_eagerly():
    import tensorflow as tf

    x, y = _data()
    # filter() hides the length: Keras learns the end of an epoch from the iterator running out.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).filter(lambda a, b: True)
    for run_eagerly in (False, True):
        plain = _model(run_eagerly=run_eagerly)
        plain_history = plain.fit(dataset, epochs=2, verbose=0)
        tapped = _model(run_eagerly=run_eagerly)
        stats = LayerStats(every_n_steps=7)  # step 7 is where the first epoch's data ends
        tapped_history = tapped.fit(dataset, epochs=2, verbose=0, callbacks=[stats])
        _assert_same_training(plain, tapped, plain_history, tapped_history)
        # The second epoch's first batch; compiled, Keras counts one more iteration at the end
        # of data of unknown length (its empty call), and the label is the optimizer's count.
        steps = sorted(stats.to_dataframe()["step"].unique())
        assert steps == [0, int(plain.optimizer.iterations) // 2] == [0, 7 if run_eagerly else 8]
        # Keras' own train function is back in place after the fit.
        assert "Tap.tapping" not in tapped.train_function.__qualname__
