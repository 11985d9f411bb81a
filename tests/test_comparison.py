"""Tests for keras_initx.comparison (compare_training) and the keras_initx.experiments alias."""

import numpy as np
import pandas as pd
import pytest

from keras_initx import comparison, experiments, specs, sweep, tables, width
from keras_initx.comparison import compare_training, digits_mlp


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("runs")
    kwargs = dict(epochs=2, seed=0, every_n_steps=10)
    first = compare_training(["zeros", "glorot_uniform"], log_dir=log_dir, **kwargs)
    again = compare_training(["glorot_uniform"], **kwargs)
    return first, again, log_dir


def test_compare_training_history(training):
    result, _, _ = training
    history = result.history
    assert list(history.columns[:2]) == ["initializer", "epoch"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.columns)
    assert history[["initializer", "epoch"]].values.tolist() == [
        ["zeros", 0], ["zeros", 1], ["glorot_uniform", 0], ["glorot_uniform", 1]
    ]  # fmt: skip
    final = history.groupby("initializer").tail(1).set_index("initializer")["val_accuracy"]
    assert final["glorot_uniform"] > 0.85
    assert final["zeros"] < 0.3  # only the output biases learn: about the class prior


def test_zeros_never_break_symmetry_in_training(training):
    symmetry = training[0].symmetry.set_index(["initializer", "layer"])["distinct_units"]
    assert symmetry["zeros"].to_dict() == {"hidden_1": 1, "hidden_2": 1, "output": 10}
    assert symmetry["glorot_uniform"].to_dict() == {"hidden_1": 32, "hidden_2": 32, "output": 10}


def test_compare_training_layer_stats(training, tmp_path):
    result, _, log_dir = training
    stats = result.layer_stats
    assert stats.columns[0] == "initializer"
    assert list(stats.columns[1:9]) == [
        "step", "epoch", "layer", "layer_index", "layer_class", "activation",
        "kernel_initializer", "tensor",
    ]  # fmt: skip
    zeros = stats[(stats.initializer == "zeros") & (stats.tensor == "activation")]
    hidden = zeros[zeros.activation == "tanh"]
    assert (hidden["std"] == 0).all()  # tanh(0 . x) = 0 at every step
    assert sorted(stats["step"].unique())[:3] == [0, 10, 20]
    for label in ("zeros", "glorot_uniform"):
        run = log_dir / label
        assert (run / "layer_stats.csv").stat().st_size > 0
        assert any(p.name.startswith("events.out.tfevents") for p in run.rglob("*"))


def test_compare_training_is_reproducible(training):
    # Each run reseeds, so a run alone equals the same run inside a comparison.
    first, again, _ = training
    glorot_history = first.history[first.history.initializer == "glorot_uniform"]
    pd.testing.assert_frame_equal(glorot_history.reset_index(drop=True), again.history)
    glorot_stats = first.layer_stats[first.layer_stats.initializer == "glorot_uniform"]
    pd.testing.assert_frame_equal(glorot_stats.reset_index(drop=True), again.layer_stats)


def test_compare_training_custom_model_and_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    result = compare_training(
        {"lecun": "lecun_1_over_sqrt_d"},
        model_fn=lambda init: digits_mlp(init, hidden=(4,), input_dim=5, n_classes=2),
        data=(x, y), epochs=1, batch_size=32,
    )  # fmt: skip
    assert len(result.history) == 1
    assert result.symmetry["layer"].tolist() == ["hidden_1", "output"]
    assert result.symmetry["units"].tolist() == [4, 2]


def test_compare_training_bad_arguments():
    with pytest.raises(ValueError, match="data='mnist'. Expected 'digits' or a tuple"):
        compare_training("zeros", data="mnist")
    with pytest.raises(ValueError, match="epochs=0. Expected an int >= 1"):
        compare_training("zeros", epochs=0)
    with pytest.raises(ValueError, match="learning_rate=0.0. Expected a finite number > 0"):
        compare_training("zeros", learning_rate=0.0)
    with pytest.raises(TypeError, match="model_fn='mlp'. Expected a callable"):
        compare_training("zeros", model_fn="mlp")
    with pytest.raises(TypeError, match="data of type list. Expected 'digits' or a tuple"):
        compare_training("zeros", data=[np.ones((10, 3)), np.zeros(10)])
    with pytest.raises(ValueError, match=r"x of shape \(10, 3\), y of shape \(9,\)"):
        compare_training("zeros", data=(np.ones((10, 3)), np.zeros(9)))
    bad = np.ones((10, 3))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="and finite x"):
        compare_training("zeros", data=(bad, np.zeros(10)))


def test_experiments_is_an_alias_of_the_split_modules():
    moved = {
        "SEED_001_INITIALIZERS": sweep, "DepthSweep": sweep, "depth_sweep": sweep,
        "TrainingComparison": comparison, "compare_training": comparison,
        "digits_mlp": comparison, "known_activations": specs, "known_initializers": specs,
        "parse_initializer": specs, "resolve_initializers": specs, "sweep_table": tables,
        "depth_table": tables, "width_sweep": width,
    }  # fmt: skip
    assert sorted(experiments.__all__) == sorted(moved)
    for name, module in moved.items():
        assert getattr(experiments, name) is getattr(module, name), name
