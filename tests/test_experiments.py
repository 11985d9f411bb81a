import keras
import numpy as np
import pandas as pd
import pytest

from keras_initx import experiments
from keras_initx.diagnosis import diagnose
from keras_initx.experiments import SEED_001_INITIALIZERS, depth_sweep, parse_initializer
from keras_initx.initializers import LecunOneOverSqrtD, OrthogonalGain

SMALL, LARGE, XAVIER = SEED_001_INITIALIZERS

# Seed 001's printed tables (10 tanh layers of 500 units, 1000 standard-normal inputs).
SEED_001_STD = {
    SMALL: [0.213260, 0.047572, 0.010630, 0.002386, 0.000535, 0.000119, 0.000027, 0.000006],
    LARGE: [0.982053, 0.981789, 0.981715, 0.981523, 0.981463, 0.981712, 0.981718, 0.981858,
            0.981687, 0.981719],
    XAVIER: [0.627422, 0.486087, 0.408522, 0.357302, 0.320092, 0.293146, 0.271269, 0.256240,
             0.242764, 0.230877],
}  # fmt: skip


@pytest.fixture(scope="module")
def seed_001():
    return depth_sweep(SEED_001_INITIALIZERS, histograms=True)


def column(frame, label, name):
    return frame[frame["initializer"] == label].sort_values("layer")[name].to_numpy()


def test_frame_layout(seed_001):
    frame, _ = seed_001
    assert list(frame.columns) == [
        "initializer", "layer", "activation", "activation_mean", "activation_std",
        "preactivation_std", "frac_saturated", "frac_dead_units", "nan_count", "inf_count",
        "gradient_std", "preactivation_grad_std", "gradient_nan_count", "gradient_inf_count",
    ]  # fmt: skip
    assert frame["initializer"].unique().tolist() == [SMALL, LARGE, XAVIER]
    assert frame["layer"].tolist() == list(range(1, 11)) * 3
    assert (frame["activation"] == "tanh").all()
    assert (frame[["nan_count", "inf_count", "frac_dead_units"]] == 0).all().all()


def test_xavier_column_within_5_percent_of_seed_001(seed_001):
    np.testing.assert_allclose(column(seed_001[0], XAVIER, "activation_std"),
                               SEED_001_STD[XAVIER], rtol=0.05)  # fmt: skip


def test_small_and_large_columns_follow_seed_001(seed_001):
    frame, _ = seed_001
    small = column(frame, SMALL, "activation_std")
    # Shrinks ~4.5x per layer (0.01 * sqrt(500) = 0.22), printed values to 6 decimals: compare
    # the layers whose printed value still has 2+ significant digits.
    np.testing.assert_allclose(small[:7], SEED_001_STD[SMALL][:7], rtol=0.1)
    assert np.all(np.diff(small) < 0)
    np.testing.assert_allclose(small[1:] / small[:-1], 0.01 * np.sqrt(500), rtol=0.05)
    np.testing.assert_allclose(column(frame, LARGE, "activation_std"), SEED_001_STD[LARGE],
                               rtol=0.01)  # fmt: skip
    # Means are ~0 as printed (|mean| < 0.003 in every table).
    assert np.abs(frame["activation_mean"]).max() < 0.005


def test_large_init_saturates_as_predicted(seed_001):
    # Pre-activation std = sqrt(500) * 0.98; |tanh(z)| > 0.99 iff |z| > atanh(0.99) = 2.647.
    from math import atanh, erf, sqrt

    frame, _ = seed_001
    pre = column(frame, LARGE, "preactivation_std")
    np.testing.assert_allclose(pre, np.sqrt(500) * 0.98, rtol=0.03)
    expected = [1 - erf(atanh(0.99) / s / sqrt(2)) for s in pre]
    np.testing.assert_allclose(column(frame, LARGE, "frac_saturated"), expected, atol=0.005)
    assert column(frame, XAVIER, "frac_saturated")[2:].max() == 0.0


def test_gradients_follow_glorot_bengio(seed_001):
    frame, _ = seed_001
    # The backward pass starts from unit-variance gradients at the last layer.
    for label in (SMALL, LARGE, XAVIER):
        assert column(frame, label, "gradient_std")[-1] == pytest.approx(1.0, abs=0.01)
    small = column(frame, SMALL, "gradient_std")
    np.testing.assert_allclose(small[:-1] / small[1:], 0.01 * np.sqrt(500), rtol=0.05)
    xavier = column(frame, XAVIER, "gradient_std")
    assert np.all(np.diff(xavier) > 0) and xavier[0] > 0.3  # slow decay towards the input
    large = column(frame, LARGE, "gradient_std")
    assert np.all(large[:-1] / large[1:] > 3)  # explodes backwards through saturated tanh


def test_histograms_seed_001_figure(seed_001):
    _, hist = seed_001
    assert list(hist.columns) == ["initializer", "layer", "bin_left", "bin_right", "count"]
    counts = hist.groupby(["initializer", "layer"], sort=False)["count"].sum()
    assert (counts == 1000 * 500).all()
    assert len(counts) == 30
    first = hist[(hist.initializer == XAVIER) & (hist.layer == 1)]
    assert len(first) == 30
    assert first["bin_left"].iloc[0] == -1.0 and first["bin_right"].iloc[-1] == 1.0
    large = hist[(hist.initializer == LARGE) & (hist.layer == 5)]["count"].to_numpy()
    assert (large[0] + large[-1]) / large.sum() > 0.85  # piled at -1 and 1, as the figure


def test_diagnosis_of_seed_001(seed_001):
    findings = diagnose(seed_001[0])
    kinds = findings.groupby("initializer")["kind"].agg(set).to_dict()
    assert kinds == {SMALL: {"vanishing"}, LARGE: {"saturated", "exploding"}}
    assert (findings["suggestion"] == "glorot_uniform").all()


def test_linear_identity_stack_has_exact_ratios():
    frame = depth_sweep({"half": "identity(gain=0.5)"}, depth=4, width=16, activation="linear",
                        n_samples=64)  # fmt: skip
    act = frame["activation_std"].to_numpy()
    np.testing.assert_allclose(act[1:] / act[:-1], 0.5, rtol=1e-5)
    np.testing.assert_allclose(frame["preactivation_std"], act, rtol=1e-6)
    grad = frame["gradient_std"].to_numpy()
    np.testing.assert_allclose(grad[:-1] / grad[1:], 0.5, rtol=1e-5)
    assert frame["frac_saturated"].isna().all()


def test_relu_he_keeps_scale_glorot_shrinks():
    frame = depth_sweep(["he_normal", "glorot_normal"], depth=6, width=400, activation="relu",
                        n_samples=400)  # fmt: skip
    he = column(frame, "he_normal", "activation_std")
    glorot = column(frame, "glorot_normal", "activation_std")
    # Each layer's random matrix scales the signal by 1 +- ~1/sqrt(width) = 5%; over 5 layers the
    # geometric mean ratio is within ~2% (1 sd) of the expected one: 8% is 4 sd.
    mean_ratio = (he[-1] / he[0]) ** (1 / 5)
    assert mean_ratio == pytest.approx(1.0, rel=0.08)
    # Var halves per layer with Glorot: std ratio 1/sqrt(2) (He et al. 2015).
    mean_ratio = (glorot[-1] / glorot[0]) ** (1 / 5)
    assert mean_ratio == pytest.approx(1 / np.sqrt(2), rel=0.08)


def test_zeros_never_break_symmetry():
    frame = depth_sweep("zeros", depth=3, width=8, activation="relu", n_samples=16)
    assert (frame["activation_std"] == 0).all()
    assert (frame["frac_dead_units"] == 1).all()
    findings = diagnose(frame)
    assert set(findings["kind"]) == {"constant"}
    assert (findings["suggestion"] == "he_normal").all()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear", "selu"])
def test_activations(activation):
    frame = depth_sweep("lecun_normal", depth=2, width=8, activation=activation, n_samples=32,
                        input_dim=5, gradients=False)  # fmt: skip
    assert len(frame) == 2 and "gradient_std" not in frame.columns
    assert (frame["activation"] == activation).all()
    assert np.isfinite(frame["activation_std"]).all()
    bounded = activation in ("tanh", "sigmoid")
    assert frame["frac_saturated"].notna().all() == bounded
    if activation == "sigmoid":
        assert frame["activation_mean"].iloc[0] == pytest.approx(0.5, abs=0.1)


def test_reproducible_for_a_seed():
    kwargs = dict(depth=3, width=16, n_samples=32)
    first = depth_sweep(["glorot_uniform", "lecun_1_over_sqrt_d"], seed=3, **kwargs)
    again = depth_sweep(["glorot_uniform", "lecun_1_over_sqrt_d"], seed=3, **kwargs)
    pd.testing.assert_frame_equal(first, again)
    # An initializer's numbers do not depend on the other entries of the list.
    alone = depth_sweep(["lecun_1_over_sqrt_d"], seed=3, **kwargs)
    np.testing.assert_array_equal(column(first, "lecun_1_over_sqrt_d", "activation_std"),
                                  alone["activation_std"])  # fmt: skip
    other = depth_sweep(["glorot_uniform"], seed=4, **kwargs)
    glorot = column(first, "glorot_uniform", "activation_std")
    assert not np.allclose(other["activation_std"], glorot)


def test_initializer_forms_and_labels():
    instance = keras.initializers.RandomNormal(stddev=0.5, seed=1)
    resolved = experiments.resolve_initializers([instance, "he_uniform", LecunOneOverSqrtD()])
    assert list(resolved) == [
        "RandomNormal(mean=0.0, stddev=0.5)",
        "he_uniform",
        "LecunOneOverSqrtD()",
    ]
    assert list(experiments.resolve_initializers({"mine": instance})) == ["mine"]
    config = {"class_name": "orthogonal_gain", "config": {"gain": "tanh"}}
    assert list(experiments.resolve_initializers(config)) == ["orthogonal_gain"]
    frame = depth_sweep({"seeded": instance, "cfg": config}, depth=2, width=8, n_samples=16)
    assert frame["initializer"].unique().tolist() == ["seeded", "cfg"]


def test_parse_initializer():
    init = parse_initializer(SEED_001_INITIALIZERS[XAVIER])
    assert isinstance(init, keras.initializers.VarianceScaling)
    assert (init.scale, init.mode, init.distribution) == (1.0, "fan_in", "untruncated_normal")
    assert parse_initializer(" random_normal( stddev = 0.01 ) ").stddev == 0.01
    assert isinstance(parse_initializer("orthogonal_gain(gain='tanh')"), OrthogonalGain)
    assert isinstance(parse_initializer("pytorch_default"), LecunOneOverSqrtD)
    assert "lecun_1_over_sqrt_d" in experiments.known_initializers()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("glorot_unifrom", r"Unknown initializer 'glorot_unifrom'; known: constant, .*glorot_un"),
        ("random_normal(0.01)", "Arguments must be given as keyword=value"),
        ("random_normal(stddev=__import__('os'))", "The value of 'stddev' must be a literal"),
        ("random_normal(stdev=0.01)", "RandomNormal rejected the arguments: .*stdev"),
        ("random_normal(stddev=))", "not valid Python syntax"),
        ("1abc", "Expected `name` or `name"),
    ],
)
def test_bad_initializer_specs(spec, message):
    with pytest.raises(ValueError, match="Invalid value for argument `initializers`. Received: "):
        parse_initializer(spec)
    with pytest.raises(ValueError, match=message):
        depth_sweep([spec], depth=1, width=2, n_samples=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"activation='tahn'. Expected one of: celu, .*tanh"):
        depth_sweep("glorot_uniform", activation="tahn")
    with pytest.raises(ValueError, match="depth=0. Expected an int >= 1"):
        depth_sweep("glorot_uniform", depth=0)
    with pytest.raises(TypeError, match="width=2.5 of type float"):
        depth_sweep("glorot_uniform", width=2.5)
    with pytest.raises(ValueError, match="the label 'zeros' twice"):
        depth_sweep(["zeros", "zeros"])
    with pytest.raises(ValueError, match="an empty collection"):
        depth_sweep([])


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("runs")
    kwargs = dict(epochs=2, seed=0, every_n_steps=10)
    first = experiments.compare_training(["zeros", "glorot_uniform"], log_dir=log_dir, **kwargs)
    again = experiments.compare_training(["glorot_uniform"], **kwargs)
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
    result = experiments.compare_training(
        {"lecun": "lecun_1_over_sqrt_d"},
        model_fn=lambda init: experiments.digits_mlp(init, hidden=(4,), input_dim=5, n_classes=2),
        data=(x, y), epochs=1, batch_size=32,
    )  # fmt: skip
    assert len(result.history) == 1
    assert result.symmetry["layer"].tolist() == ["hidden_1", "output"]
    assert result.symmetry["units"].tolist() == [4, 2]


def test_compare_training_bad_arguments():
    with pytest.raises(ValueError, match="data='mnist'. Expected 'digits' or a tuple"):
        experiments.compare_training("zeros", data="mnist")
    with pytest.raises(ValueError, match="epochs=0. Expected an int >= 1"):
        experiments.compare_training("zeros", epochs=0)
    with pytest.raises(ValueError, match="learning_rate=0.0. Expected a finite number > 0"):
        experiments.compare_training("zeros", learning_rate=0.0)
    with pytest.raises(TypeError, match="model_fn='mlp'. Expected a callable"):
        experiments.compare_training("zeros", model_fn="mlp")
    with pytest.raises(TypeError, match="data of type list. Expected 'digits' or a tuple"):
        experiments.compare_training("zeros", data=[np.ones((10, 3)), np.zeros(10)])
    with pytest.raises(ValueError, match=r"x of shape \(10, 3\), y of shape \(9,\)"):
        experiments.compare_training("zeros", data=(np.ones((10, 3)), np.zeros(9)))
    bad = np.ones((10, 3))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="and finite x"):
        experiments.compare_training("zeros", data=(bad, np.zeros(10)))
