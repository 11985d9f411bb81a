"""Tests for keras_initx.sweep (the depth sweep), keras_initx.tables and keras_initx.specs."""

import keras
import numpy as np
import pandas as pd
import pytest

from keras_initx import LAYER_STATS_COLUMNS, LayerStats, specs
from keras_initx.diagnosis import diagnose
from keras_initx.initializers import LecunOneOverSqrtD, OrthogonalGain
from keras_initx.specs import parse_initializer
from keras_initx.stats import DEFAULT_BINS
from keras_initx.sweep import SEED_001_INITIALIZERS, DepthSweep, depth_sweep
from keras_initx.tables import SWEEP_TABLE_COLUMNS, depth_table, histogram_table, sweep_table

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
    """`(sweep_table, DepthSweep)` of seed 001's experiment."""
    sweep = depth_sweep(SEED_001_INITIALIZERS, histograms=True)
    return sweep_table(sweep.frame), sweep


def table(*args, **kwargs):
    return sweep_table(depth_sweep(*args, **kwargs).frame)


def column(frame, label, name):
    return frame[frame["initializer"] == label].sort_values("layer")[name].to_numpy()


def test_frame_layout(seed_001):
    frame, sweep = seed_001
    assert isinstance(sweep, DepthSweep)
    assert list(sweep.frame.columns) == ["initializer", *LAYER_STATS_COLUMNS]
    assert (sweep.frame["step"] == 0).all()
    assert sweep.frame["tensor"].unique().tolist() == [
        "activation", "preactivation", "activation_grad", "preactivation_grad",
    ]  # fmt: skip
    paths = [f"depth_sweep/dense_{i}" for i in range(1, 11)]
    assert sweep.frame["layer"].unique().tolist() == paths
    assert list(frame.columns) == list(SWEEP_TABLE_COLUMNS)
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
    _, sweep = seed_001
    assert sweep.histograms.shape == (len(sweep.frame), DEFAULT_BINS + 2)
    hist = histogram_table(sweep.frame, sweep.histograms)
    assert list(hist.columns) == ["initializer", "layer", "bin_left", "bin_right", "count"]
    counts = hist.groupby(["initializer", "layer"], sort=False)["count"].sum()
    # The probe bins a strided subsample and scales the counts to the number of values.
    np.testing.assert_allclose(counts, 1000 * 500, rtol=1e-5)
    assert len(counts) == 30
    first = hist[(hist.initializer == XAVIER) & (hist.layer == 1)]
    assert len(first) == DEFAULT_BINS
    activations = sweep.frame[sweep.frame["tensor"] == "activation"].iloc[20]  # xavier, layer 1
    assert first["bin_left"].iloc[0] == activations["min"]
    assert first["bin_right"].iloc[-1] == pytest.approx(activations["max"])
    assert -1.0 <= first["bin_left"].iloc[0] < first["bin_right"].iloc[-1] <= 1.0
    large = hist[(hist.initializer == LARGE) & (hist.layer == 5)]["count"].to_numpy()
    assert (large[0] + large[-1]) / large.sum() > 0.85  # piled at -1 and 1, as the figure


def test_diagnosis_of_seed_001(seed_001):
    findings = diagnose(seed_001[1].frame)
    kinds = findings.groupby("initializer")["kind"].agg(set).to_dict()
    assert kinds == {SMALL: {"vanishing"}, LARGE: {"saturated", "exploding"}}
    assert (findings["suggestion"] == "glorot_uniform").all()


def test_linear_identity_stack_has_exact_ratios():
    frame = table({"half": "identity(gain=0.5)"}, depth=4, width=16, activation="linear",
                  n_samples=64)  # fmt: skip
    act = frame["activation_std"].to_numpy()
    np.testing.assert_allclose(act[1:] / act[:-1], 0.5, rtol=1e-5)
    np.testing.assert_allclose(frame["preactivation_std"], act, rtol=1e-6)
    grad = frame["gradient_std"].to_numpy()
    np.testing.assert_allclose(grad[:-1] / grad[1:], 0.5, rtol=1e-5)
    assert frame["frac_saturated"].isna().all()


def test_relu_he_keeps_scale_glorot_shrinks():
    frame = table(["he_normal", "glorot_normal"], depth=6, width=400, activation="relu",
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
    sweep = depth_sweep("zeros", depth=3, width=8, activation="relu", n_samples=16)
    frame = sweep_table(sweep.frame)
    assert (frame["activation_std"] == 0).all()
    assert (frame["frac_dead_units"] == 1).all()
    findings = diagnose(sweep.frame)
    assert set(findings["kind"]) == {"constant"}
    assert (findings["suggestion"] == "he_normal").all()


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear", "selu"])
def test_activations(activation):
    frame = table("lecun_normal", depth=2, width=8, activation=activation, n_samples=32,
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
    first = table(["glorot_uniform", "lecun_1_over_sqrt_d"], seed=3, **kwargs)
    again = table(["glorot_uniform", "lecun_1_over_sqrt_d"], seed=3, **kwargs)
    pd.testing.assert_frame_equal(first, again)
    # An initializer's numbers do not depend on the other entries of the list.
    alone = table(["lecun_1_over_sqrt_d"], seed=3, **kwargs)
    np.testing.assert_array_equal(column(first, "lecun_1_over_sqrt_d", "activation_std"),
                                  alone["activation_std"])  # fmt: skip
    other = table(["glorot_uniform"], seed=4, **kwargs)
    glorot = column(first, "glorot_uniform", "activation_std")
    assert not np.allclose(other["activation_std"], glorot)


def test_initializer_forms_and_labels():
    instance = keras.initializers.RandomNormal(stddev=0.5, seed=1)
    resolved = specs.resolve_initializers([instance, "he_uniform", LecunOneOverSqrtD()])
    assert list(resolved) == [
        "RandomNormal(mean=0.0, stddev=0.5)",
        "he_uniform",
        "LecunOneOverSqrtD()",
    ]
    assert list(specs.resolve_initializers({"mine": instance})) == ["mine"]
    config = {"class_name": "orthogonal_gain", "config": {"gain": "tanh"}}
    assert list(specs.resolve_initializers(config)) == ["orthogonal_gain"]
    frame = depth_sweep({"seeded": instance, "cfg": config}, depth=2, width=8, n_samples=16).frame
    assert frame["initializer"].unique().tolist() == ["seeded", "cfg"]


def test_parse_initializer():
    init = parse_initializer(SEED_001_INITIALIZERS[XAVIER])
    assert isinstance(init, keras.initializers.VarianceScaling)
    assert (init.scale, init.mode, init.distribution) == (1.0, "fan_in", "untruncated_normal")
    assert parse_initializer(" random_normal( stddev = 0.01 ) ").stddev == 0.01
    assert isinstance(parse_initializer("orthogonal_gain(gain='tanh')"), OrthogonalGain)
    assert isinstance(parse_initializer("pytorch_default"), LecunOneOverSqrtD)
    assert "lecun_1_over_sqrt_d" in specs.known_initializers()


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
    with pytest.raises(ValueError, match="bins=1. Expected an int >= 2"):
        depth_sweep("glorot_uniform", bins=1)
    with pytest.raises(TypeError, match="gradients='no' of type str. Expected True or False"):
        depth_sweep("glorot_uniform", gradients="no")


def test_a_sweep_row_is_the_layer_stats_step_0_row():
    """One engine: the sweep and LayerStats give the same numbers for the same layer and tensor."""
    depth, width, n, seed = 3, 16, 64, 5
    sweep = depth_sweep("glorot_uniform", depth=depth, width=width, n_samples=n, input_dim=8,
                        seed=seed, gradients=False)  # fmt: skip
    # The same model, built independently the same way: same seed, same layer order and names.
    x = np.random.default_rng(seed).standard_normal((n, 8)).astype("float32")
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    outputs = inputs
    for i in range(depth):
        layer = keras.layers.Dense(
            width,
            activation="tanh",
            use_bias=False,
            name=f"dense_{i + 1}",
            kernel_initializer=parse_initializer("glorot_uniform"),
        )
        outputs = layer(outputs)  # fmt: skip
    model = keras.Model(inputs, outputs, name="depth_sweep")
    model.compile(optimizer="sgd", loss="mse")
    y = np.zeros((n, width), "float32")
    stats = LayerStats(probe=(x, y), every_n_steps=1)
    model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    layer_stats = stats.to_dataframe()
    keys = ["layer", "tensor"]
    at_init = layer_stats[layer_stats["step"] == 0].set_index(keys)
    swept = sweep.frame.set_index(keys)
    assert len(swept) == 2 * depth  # activation and preactivation of each Dense layer
    for key, row in swept.iterrows():
        for stat in ("mean", "std", "frac_saturated"):
            assert row[stat] == pytest.approx(
                at_init.loc[key, stat], rel=1e-6, abs=1e-7, nan_ok=True
            ), (
                key,
                stat,
            )


def test_tables_need_a_sweep_frame():
    with pytest.raises(ValueError, match=r"missing \['initializer'\]"):
        sweep_table(pd.DataFrame({"layer_index": [0], "activation": ["tanh"], "tensor": ["x"]}))
    frame = depth_sweep("glorot_uniform", depth=2, width=4, n_samples=8).frame
    with pytest.raises(ValueError, match="value='std'. Expected one of"):
        depth_table(frame, "std")
    with pytest.raises(ValueError, match=r"shape \(3, 4\). Expected \(8, bins \+ 2\)"):
        histogram_table(frame, np.zeros((3, 4)))
    table = depth_table(frame, "gradient_std")
    assert table.index.tolist() == [1, 2] and table.columns.tolist() == ["glorot_uniform"]
