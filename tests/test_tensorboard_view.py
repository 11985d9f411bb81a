"""The TensorBoard view: runs per layer, tags, Custom Scalars layout, text, images, hparams.

Everything is read back from the event files with tbparse or TensorBoard's EventAccumulator.
"""

import re
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tbparse import SummaryReader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.hparams import metadata as hparams_metadata

from keras_initx import plots
from keras_initx.callbacks import LayerStats
from keras_initx.cli import _log_demo
from keras_initx.experiments import compare_training
from keras_initx.sinks.tensorboard import LAYOUT_CHARTS, TensorBoardSink, findings_markdown
from keras_initx.stats import STAT_NAMES

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
RUNS = ["00_h1", "01_bn", "02_h2", "03_out"]


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", name="h1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(16, activation="relu", name="h2"),
            keras.layers.Dense(3, name="out"),
        ],
        name="mlp",
    )
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    return model


def _accumulator(path):
    accumulator = EventAccumulator(str(path), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Two fits (2 epochs, then 1) of 4 steps per epoch, measured every 2 steps, diagnose=True,
    Keras' TensorBoard in the same log dir."""
    log_dir = tmp_path_factory.mktemp("view")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype(np.float32), rng.integers(0, 3, size=64)
    model = _model()
    cb = LayerStats(probe=(x[:16], y[:16]), log_dir=log_dir, every_n_steps=2, diagnose=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epochs in (2, 1):
            model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
                      callbacks=[cb, keras.callbacks.TensorBoard(log_dir)])  # fmt: skip
    return cb, log_dir, [str(w.message) for w in caught]


def test_one_run_per_layer_in_depth_order_beside_keras_runs(fitted):
    _, log_dir, _ = fitted
    assert {"train", "layer_stats"} <= {p.name for p in log_dir.iterdir()}
    runs = sorted(p.name for p in (log_dir / "layer_stats").iterdir() if p.is_dir())
    assert runs == RUNS


def test_tags_are_tensor_slash_stat_without_dead_scalars(fitted):
    cb, log_dir, _ = fitted
    tensors = SummaryReader(str(log_dir / "layer_stats"), pivot=False, extra_columns={"dir_name"})
    tags = tensors.tensors.groupby("dir_name")["tag"].agg(set)
    h1, h2 = tags["00_h1"], tags["02_h2"]
    assert {"activation/std", "activation/mean", "activation_grad/std", "kernel_grad/rms"} <= h1
    assert "activation/values" in h1  # the histogram
    assert all(re.fullmatch(r"[a-z_]+/[a-z0-9_]+", t) for t in h1 | h2)
    # Counts of NaN/Inf: zero throughout, so neither they nor `nonfinite` are logged.
    assert not {t for t in h1 | h2 if re.search(r"nan_count|inf_count|nonfinite", t)}
    # frac_zero: always 0 for tanh (not logged), about half for ReLU (logged from step 0).
    assert "activation/frac_zero" not in h1 and "activation/frac_zero" in h2
    df = cb.to_dataframe()
    assert (df.query("layer == 'mlp/h1' and tensor == 'activation'")["frac_zero"] == 0).all()
    # Structural NaN: saturation applies to the tanh layer only.
    assert "activation/frac_saturated" in h1 and "activation/frac_saturated" not in h2


def test_values_equal_the_dataframe(fitted):
    cb, log_dir, _ = fitted
    df = cb.to_dataframe()
    assert sorted(df["step"].unique()) == [0, 2, 4, 6, 8, 10, 12]  # the second fit continues
    reader = SummaryReader(str(log_dir / "layer_stats"), pivot=False, extra_columns={"dir_name"})
    logged = reader.tensors
    for run, layer in zip(RUNS, ["mlp/h1", "mlp/bn", "mlp/h2", "mlp/out"], strict=True):
        for tensor, stat in (("activation", "std"), ("activation_grad", "std"),
                             ("activation", "p99"), ("kernel_grad", "rms")):  # fmt: skip
            part = df[(df["layer"] == layer) & (df["tensor"] == tensor)]
            expected = part.set_index("step")[stat]
            if expected.empty:
                continue  # BatchNormalization has no kernel
            got = logged[(logged["dir_name"] == run) & (logged["tag"] == f"{tensor}/{stat}")]
            got = got.set_index("step")["value"].sort_index().astype(float)
            np.testing.assert_allclose(got, expected, rtol=1e-6)
            assert got.index.tolist() == expected.index.tolist()


def test_custom_scalars_layout_written_once(fitted):
    _, log_dir, _ = fitted
    events = _accumulator(log_dir / "layer_stats")
    written = events.Tensors(custom_scalar_metadata.CONFIG_SUMMARY_TAG)
    assert len(written) == 1  # once per run, though the sink reopened its writers for fit 2
    layout = layout_pb2.Layout.FromString(written[0].tensor_proto.string_val[0])
    (category,) = layout.category
    charts = {c.title: list(c.multiline.tag) for c in category.chart}
    assert charts == {title: [regex] for title, regex in LAYOUT_CHARTS}
    # Every chart's regex matches a tag that the layer runs hold (one line per layer).
    h1 = set(_accumulator(log_dir / "layer_stats" / "00_h1").Tags()["tensors"])
    h2 = set(_accumulator(log_dir / "layer_stats" / "02_h2").Tags()["tensors"])
    for regex in charts.values():
        assert any(re.search(regex[0], t) for t in h1 | h2), regex


def test_diagnosis_text_and_images(fitted):
    cb, log_dir, _ = fitted
    text = SummaryReader(str(log_dir / "layer_stats"), pivot=False).text
    # Step 0, then each epoch end's latest measurement (4, 8; 12), each step once.
    assert text["step"].tolist() == [0, 4, 8, 12]
    assert (text["tag"] == "diagnosis").all()
    assert text["value"].iloc[0].startswith("**Step 0:")
    events = _accumulator(log_dir / "layer_stats")
    steps = {tag: [e.step for e in events.Tensors(tag)] for tag in events.Tags()["tensors"]}
    # The old flat `<tensor>/<layer path>/<stat>` tags are gone: the run itself holds only these.
    assert set(steps) == {
        custom_scalar_metadata.CONFIG_SUMMARY_TAG,
        "diagnosis",
        "plots/std_by_layer",
        "plots/activation_std_heatmap",
        "plots/activation_grad_std_heatmap",
    }
    # Step 0 only: the second fit starts at step 8, already diagnosed at the first fit's end.
    assert steps["plots/std_by_layer"] == [0]
    assert steps["plots/activation_std_heatmap"] == [4, 8, 12]
    assert steps["plots/activation_grad_std_heatmap"] == [4, 8, 12]
    width, height, png = events.Tensors("plots/std_by_layer")[0].tensor_proto.string_val
    image = tf.image.decode_png(png).numpy()
    assert image.shape[:2] == (int(height), int(width)) and image.shape[0] > 100


def test_batchnorm_in_inference_mode_warns_once(fitted):
    _, _, messages = fitted
    bn = [m for m in messages if "BatchNormalization" in m]
    assert len(bn) == 1  # two fits, one warning
    assert "layers (mlp/bn) normalize" in bn[0] and "training=True" in bn[0]
    cb = LayerStats(probe=(np.zeros((4, 8), "float32"), None), tensors=["activation"],
                    training=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _model().fit(np.zeros((4, 8)), np.zeros(4), verbose=0, callbacks=[cb])


def _rows(step, nan_count, inf_count, layer_index=0, layers=1):
    rows = pd.DataFrame(
        {
            "step": step,
            "epoch": 0,
            "layer": [f"m/d{i}" for i in range(layers)],
            "layer_index": np.arange(layers) + layer_index,
            "layer_class": "Dense",
            "activation": "tanh",
            "tensor": "activation",
        }
    )
    rows[list(STAT_NAMES)] = 0.5
    rows["nan_count"], rows["inf_count"] = nan_count, inf_count
    return rows


def test_nonfinite_is_logged_from_its_first_nonzero_value(tmp_path):
    sink = TensorBoardSink(tmp_path, STAT_NAMES)
    for step, nan, inf in ((0, 0, 0), (1, 3, 2), (2, 0, 0)):
        sink.write(_rows(step, nan, inf))
    sink.close()
    logged = SummaryReader(str(tmp_path / "layer_stats" / "00_d0"), pivot=False).tensors
    nonfinite = logged[logged["tag"] == "activation/nonfinite"].set_index("step")["value"]
    assert nonfinite.astype(float).to_dict() == {1: 5.0, 2: 0.0}
    assert logged[logged["tag"] == "activation/std"]["step"].tolist() == [0, 1, 2]


def test_run_names_are_zero_padded_to_the_deepest_layer(tmp_path):
    sink = TensorBoardSink(tmp_path, ("std",))
    sink.write(_rows(0, 0, 0, layers=101))
    sink.close()
    runs = sorted(p.name for p in (tmp_path / "layer_stats").iterdir() if p.is_dir())
    assert runs[:2] == ["000_d0", "001_d1"] and runs[-1] == "100_d100"
    assert len(runs) == 101


def test_findings_markdown_is_a_table():
    findings = pd.DataFrame(
        {"initializer": [""], "layer": ["m/d1"], "tensor": ["activation"], "kind": ["vanishing"],
         "message": ["std 1e-5 | tiny"], "suggestion": ["glorot_uniform"]}
    )  # fmt: skip
    text = findings_markdown(findings, step=3)
    assert text.splitlines()[0] == "**Step 3: 1 finding(s).**"
    assert "| vanishing | m/d1 / activation | std 1e-5 \\| tiny | `glorot_uniform` |" in text
    assert "no initialization problems" in findings_markdown(findings.iloc[:0], step=0)


def test_compare_training_logs_hparams_per_run(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(80, 64)), rng.integers(0, 10, size=80))  # digits_mlp's shapes
    result = compare_training(["zeros", "glorot_uniform"], data=data, epochs=1, batch_size=32,
                              every_n_steps=4, log_dir=tmp_path)  # fmt: skip
    for label in ("zeros", "glorot_uniform"):
        content = _accumulator(tmp_path / label).PluginTagToContent(hparams_metadata.PLUGIN_NAME)
        start = hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        )
        assert start.hparams["initializer"].string_value == label
        assert start.hparams["epochs"].number_value == 1
        assert start.hparams["learning_rate"].number_value == pytest.approx(0.05)
        experiment = hparams_metadata.parse_experiment_plugin_data(
            content[hparams_metadata.EXPERIMENT_TAG]
        )
        metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
        assert metrics == {("validation", "epoch_accuracy"), ("validation", "epoch_loss")}
        # The metric the HParams tab shows: the last validation value, equal to the history's.
        validation = SummaryReader(str(tmp_path / label / "validation"), pivot=False).tensors
        accuracy = validation[validation["tag"] == "epoch_accuracy"]["value"].iloc[-1]
        history = result.history.query("initializer == @label")
        assert float(accuracy) == pytest.approx(history["val_accuracy"].iloc[-1], rel=1e-6)
        layer_runs = sorted(p.name for p in (tmp_path / label / "layer_stats").iterdir()
                            if p.is_dir())  # fmt: skip
        assert layer_runs == ["00_hidden_1", "01_hidden_2", "02_output"]


def test_std_by_layer_picture_draws_the_frame(fitted):
    cb, _, _ = fitted
    df = cb.to_dataframe()
    figure = plots.plot_signal_propagation(df, step=4)
    activation_ax, gradient_ax = figure.axes[:2]
    (activation,) = activation_ax.get_lines()
    expected = df.query("step == 4 and tensor == 'activation'").sort_values("layer_index")
    np.testing.assert_allclose(activation.get_ydata(), expected["std"])
    assert len(gradient_ax.get_lines()[0].get_xdata()) == 4


def test_demo_run_holds_its_plots_and_diagnosis(tmp_path):
    png = plots.save_figure(plots.plot_signal_propagation(pd.DataFrame(
        {"step": [0], "layer": ["m/d"], "layer_index": [0], "tensor": ["activation"],
         "std": [1.0]})), tmp_path / "out" / "sweep_tanh.png")  # fmt: skip
    findings = pd.DataFrame(
        {"initializer": ["zeros"], "layer": [1], "tensor": ["activation"], "kind": ["constant"],
         "message": ["all zero"], "suggestion": ["glorot_uniform"], "source": ["depth sweep"]}
    )  # fmt: skip
    _log_demo(str(tmp_path / "tb"), str(tmp_path / "out"), [(png, "a plot")], findings)
    events = _accumulator(tmp_path / "tb" / "demo")
    assert set(events.Tags()["tensors"]) == {"sweep_tanh", "diagnosis"}
    text = SummaryReader(str(tmp_path / "tb" / "demo"), pivot=False).text["value"].item()
    assert text.startswith("### depth sweep") and "| constant | zeros / 1 / activation |" in text


def test_nested_layer_paths_become_flat_run_names(tmp_path):
    rows = pd.concat([_rows(0, 0, 0), _rows(0, 0, 0, layer_index=1)], ignore_index=True)
    rows["layer"] = ["outer/inner/dense", "outer/head"]
    sink = TensorBoardSink(tmp_path, ("std",))
    sink.write(rows)
    sink.close()
    runs = sorted(p.name for p in (tmp_path / "layer_stats").iterdir() if p.is_dir())
    assert runs == ["00_inner.dense", "01_head"]
