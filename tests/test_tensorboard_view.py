"""The TensorBoard view: runs per layer, tags (summary and full detail), Custom Scalars layout,
histograms, bytes per measurement, text, images, hparams.

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
from keras_initx.capture import build_probe
from keras_initx.cli import _log_demo
from keras_initx.experiments import compare_training
from keras_initx.sinks import result_rows
from keras_initx.sinks.tensorboard import (
    DETAILS,
    LAYOUT_CHARTS,
    SUMMARY_BUCKETS,
    TensorBoardSink,
    _buckets,
    findings_markdown,
)
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


def _tags(log_dir) -> pd.Series:
    """Run name -> set of the tags in it, for the layer runs under `log_dir/layer_stats`."""
    reader = SummaryReader(str(log_dir / "layer_stats"), pivot=False, extra_columns={"dir_name"})
    tensors = reader.tensors
    return tensors[tensors["dir_name"] != ""].groupby("dir_name")["tag"].agg(set)


def _file_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def details(tmp_path_factory):
    """Three measurements of the MLP (one SGD step apart, as steps 0, 1, 2) written by a sink of
    each detail: `({detail: (log_dir, [bytes under layer_stats after each write])}, rows,
    histograms of step 0)`."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 8)).astype(np.float32), rng.integers(0, 3, size=32)
    model = _model()
    probe = build_probe(model, histograms=True)
    measured = []
    for step in range(3):
        measured.append((step, probe(x, y)))
        model.train_on_batch(x, y)
    written = {}
    for detail in DETAILS:
        log_dir = tmp_path_factory.mktemp(detail)
        sink = TensorBoardSink(log_dir, probe.stats, detail=detail)
        sizes = []
        for step, result in measured:
            sink.write(result_rows(result, step), result.histograms)
            sizes.append(_file_bytes(log_dir / "layer_stats"))
        sink.close()
        written[detail] = (log_dir, sizes)
    rows = pd.concat([result_rows(r, step) for step, r in measured], ignore_index=True)
    return written, rows, measured[0][1].histograms


# detail="summary": exactly these tags per layer run of the MLP.
SUMMARY_TAGS = {
    "00_h1": {  # Dense tanh: saturation applies
        "activation/mean", "activation/std", "activation/frac_saturated",
        "activation/frac_dead_units", "activation/values", "preactivation/mean",
        "preactivation/std", "activation_grad/std", "activation_grad/values",
        "preactivation_grad/std", "kernel/std", "kernel_grad/std", "kernel_grad/rms",
        "bias_grad/std",
    },
    "01_bn": {
        "activation/mean", "activation/std", "activation/frac_dead_units", "activation/values",
        "activation_grad/std", "activation_grad/values",
    },
    "02_h2": {  # Dense ReLU: no saturation
        "activation/mean", "activation/std", "activation/frac_dead_units", "activation/values",
        "preactivation/mean", "preactivation/std", "activation_grad/std",
        "activation_grad/values", "preactivation_grad/std", "kernel/std", "kernel_grad/std",
        "kernel_grad/rms", "bias_grad/std",
    },
    "03_out": {  # linear: no preactivation
        "activation/mean", "activation/std", "activation/frac_dead_units", "activation/values",
        "activation_grad/std", "activation_grad/values", "kernel/std", "kernel_grad/std",
        "kernel_grad/rms", "bias_grad/std",
    },
}  # fmt: skip


def test_summary_detail_logs_the_key_tags(details, fitted):
    written, _, _ = details
    assert _tags(written["summary"][0]).to_dict() == SUMMARY_TAGS
    # LayerStats' default is the summary.
    assert _tags(fitted[1]).to_dict() == SUMMARY_TAGS


def test_full_detail_logs_every_statistic_without_dead_scalars(details):
    written, rows, _ = details
    tags = _tags(written["full"][0])
    assert list(tags.index) == RUNS
    for run, layer in zip(RUNS, ["mlp/h1", "mlp/bn", "mlp/h2", "mlp/out"], strict=True):
        tensors = rows.loc[rows["layer"] == layer, "tensor"].unique()
        expected = {f"{t}/values" for t in tensors}
        for tensor in tensors:
            part = rows[(rows["layer"] == layer) & (rows["tensor"] == tensor)]
            for stat in STAT_NAMES:
                if stat in ("nan_count", "inf_count"):
                    continue  # summed as `nonfinite`, logged from its first non-zero value
                if part[stat].isna().all():
                    continue  # structural NaN: the statistic does not apply
                if stat == "frac_zero" and (part[stat] == 0).all():
                    continue  # logged from its first non-zero value on
                expected.add(f"{tensor}/{stat}")
        assert tags[run] == expected, run
    # The MLP is healthy: no NaN/Inf, so `nonfinite` nowhere; a ReLU has exact zeros, tanh not.
    assert not any("nonfinite" in t for t in set().union(*tags))
    assert "activation/frac_zero" in tags["02_h2"] and "activation/frac_zero" not in tags["00_h1"]
    assert "activation/frac_saturated" in tags["00_h1"]
    assert "activation/frac_saturated" not in tags["02_h2"]
    assert all(re.fullmatch(r"[a-z_]+/[a-z0-9_]+", t) for t in set().union(*tags))


def test_values_equal_the_rows_in_both_details(details):
    written, rows, _ = details
    checks = {
        "summary": (("activation", "std"), ("activation", "mean"), ("kernel_grad", "rms")),
        "full": (("activation", "p99"), ("activation_grad", "max"), ("bias_grad", "p1")),
    }
    for detail, pairs in checks.items():
        reader = SummaryReader(str(written[detail][0] / "layer_stats"), pivot=False,
                               extra_columns={"dir_name"})  # fmt: skip
        logged = reader.tensors
        for run, layer in (("00_h1", "mlp/h1"), ("03_out", "mlp/out")):
            for tensor, stat in pairs:
                part = rows[(rows["layer"] == layer) & (rows["tensor"] == tensor)]
                expected = part.set_index("step")[stat]
                got = logged[(logged["dir_name"] == run) & (logged["tag"] == f"{tensor}/{stat}")]
                got = got.set_index("step")["value"].sort_index().astype(float)
                np.testing.assert_allclose(got, expected, rtol=1e-6)
                assert got.index.tolist() == [0, 1, 2]


def test_histograms_summary_merges_bins_exactly(details):
    written, rows, histograms = details
    first = rows[rows["step"] == 0].reset_index(drop=True)
    for detail, buckets in (("summary", SUMMARY_BUCKETS), ("full", histograms.shape[1] - 2)):
        events = _accumulator(written[detail][0] / "layer_stats" / "00_h1")
        for tensor in ("activation", "activation_grad"):
            (i,) = first.index[(first["layer"] == "mlp/h1") & (first["tensor"] == tensor)]
            proto = events.Tensors(f"{tensor}/values")[0].tensor_proto
            got = tf.make_ndarray(proto)
            assert got.shape == (buckets, 3) and got.dtype == np.float32
            lo, hi, counts = histograms[i, 0], histograms[i, 1], histograms[i, 2:]
            np.testing.assert_allclose(got[[0, -1], [0, 1]], [lo, hi], rtol=1e-6)
            np.testing.assert_array_equal(got[:-1, 1], got[1:, 0])  # contiguous buckets
            merge = len(counts) // buckets
            np.testing.assert_array_equal(got[:, 2], counts.reshape(buckets, merge).sum(1))
        # Histograms of the other tensors only in full detail.
        assert ("kernel/values" in events.Tags()["tensors"]) == (detail == "full")


def test_buckets_merge_uneven_bins():
    # 10 bins over [-1, 4] into at most 4 buckets: runs of 3 bins, the last one shorter.
    histograms = np.array([[-1.0, 4.0, *range(10)]])
    (got,) = _buckets(histograms, max_buckets=4)
    np.testing.assert_allclose(got[:, 0], [-1.0, 0.5, 2.0, 3.5])
    np.testing.assert_allclose(got[:, 1], [0.5, 2.0, 3.5, 4.0])
    np.testing.assert_array_equal(got[:, 2], [0 + 1 + 2, 3 + 4 + 5, 6 + 7 + 8, 9])
    # A range at the float32 limits stays finite.
    (edge,) = _buckets(np.array([[-3.4e38, 3.4028235e38, 1.0, 2.0]]))
    assert np.isfinite(edge).all()


def test_bytes_per_measurement(details):
    """ResNet50's 605 rows take at most 200 KB per measurement in the summary (README,
    `benchmarks/tensorboard_size.py`): here the same bound per row, on a later measurement (the
    first also writes the file headers and each tag's metadata)."""
    written, rows, _ = details
    per_row = 200 * 1024 / 605
    n = (rows["step"] == 0).sum()
    growth = {d: np.diff(sizes)[-1] for d, (_, sizes) in written.items()}
    assert growth["summary"] <= per_row * n
    assert growth["full"] >= 3 * growth["summary"]  # everything else is still there on request


def test_detail_is_checked():
    with pytest.raises(ValueError, match=r"argument `detail`. Received: detail='all'.*'full'"):
        TensorBoardSink("unused", ("std",), detail="all")
    with pytest.raises(ValueError, match=r"detail=None"):
        TensorBoardSink("unused", ("std",), detail=None)


def test_values_equal_the_dataframe(fitted):
    cb, log_dir, _ = fitted
    df = cb.to_dataframe()
    assert sorted(df["step"].unique()) == [0, 2, 4, 6, 8, 10, 12]  # the second fit continues
    reader = SummaryReader(str(log_dir / "layer_stats"), pivot=False, extra_columns={"dir_name"})
    logged = reader.tensors
    for run, layer in zip(RUNS, ["mlp/h1", "mlp/bn", "mlp/h2", "mlp/out"], strict=True):
        for tensor, stat in (("activation", "std"), ("activation_grad", "std"),
                             ("activation", "mean"), ("kernel_grad", "rms")):  # fmt: skip
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
    findings["suggestion"] = ""  # a nonfinite finding has no initializer to suggest
    assert findings_markdown(findings, step=3).endswith("| std 1e-5 \\| tiny |  |")


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
