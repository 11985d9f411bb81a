import math

import numpy as np
import pandas as pd
import pytest

from keras_initx.diagnosis import FINDING_COLUMNS, diagnose, format_findings, suggest_initializer

STAT_COLUMNS = [
    "mean", "std", "min", "max", "rms", "p1", "p50", "p99", "frac_zero", "frac_saturated",
    "frac_dead_units", "nan_count", "inf_count",
]  # fmt: skip


def sweep_frame(label, stds, grads=None, activation="tanh", **extra):
    frame = pd.DataFrame(
        {
            "initializer": label,
            "layer": range(1, len(stds) + 1),
            "activation": activation,
            "activation_mean": 0.0,
            "activation_std": stds,
            **extra,
        }
    )
    if grads is not None:
        frame["gradient_std"] = grads
    return frame


def layerstats_row(step, layer, index, activation, tensor, std, **stats):
    row = dict.fromkeys(STAT_COLUMNS, np.nan)
    row.update({"std": std, "nan_count": 0.0, "inf_count": 0.0, **stats})
    return {
        "step": step,
        "epoch": 0,
        "layer": layer,
        "layer_index": index,
        "layer_class": "Dense",
        "activation": activation,
        "tensor": tensor,
        **row,
    }


@pytest.fixture(scope="module")
def layerstats_frame():
    rows = []
    for step, scale in ((0, 1.0), (10, 0.1)):
        rows += [
            layerstats_row(step, "seq/dense", 0, "relu", "activation", 1.0, frac_dead_units=0),
            layerstats_row(step, "seq/dense_1", 1, "relu", "activation", scale, frac_dead_units=.5),
            layerstats_row(step, "seq/dense_2", 2, "softmax", "activation", 0.05),
            layerstats_row(step, "seq/dense", 0, "relu", "activation_grad", 1e-3),
            layerstats_row(step, "seq/dense_1", 1, "relu", "activation_grad", 1e-3),
            layerstats_row(step, "seq/dense_2", 2, "softmax", "activation_grad", 5.0),
            layerstats_row(step, "seq/dense_1", 1, "relu", "kernel_grad", 0.1, nan_count=3.0),
        ]
    return pd.DataFrame(rows)


def test_vanishing_forward_and_backward_with_exact_ratios():
    frame = sweep_frame("small", [0.5, 0.1, 0.02], grads=[0.01, 0.1, 1.0])
    findings = diagnose(frame)
    assert list(findings.columns) == FINDING_COLUMNS
    got = findings[["layer", "tensor", "kind"]].values.tolist()
    assert got == [
        [1, "activation_grad", "vanishing"],
        [2, "activation", "vanishing"],
        [2, "activation_grad", "vanishing"],
        [3, "activation", "vanishing"],
    ]
    np.testing.assert_allclose(findings["value"], [0.1, 0.2, 0.1, 0.2])
    np.testing.assert_allclose(findings["threshold"], 1 / 1.5)
    assert (findings["initializer"] == "small").all()
    assert findings["step"].isna().all()
    assert (findings["suggestion"] == "glorot_uniform").all()
    message = findings.loc[1, "message"]
    assert "Layer 2 (tanh): activation std fell 5x from layer 1 (0.5 -> 0.1)" in message


def test_factor_is_the_threshold():
    frame = sweep_frame("small", [1.0, 0.25, 0.0625])
    # ratio 0.25 is exactly 1 / 4: not beyond it
    assert len(diagnose(frame, factor=4.0, trend_factor=4.0)) == 0
    assert len(diagnose(frame, factor=3.9, trend_factor=4.0)) == 2


def test_slow_steady_drift_is_one_trend_finding():
    # Glorot on ReLU: std x 1/sqrt(2) per layer passes the per-layer test (factor 1.5) but not
    # the trend test (1.25 per layer on average).
    stds = [1.0, 0.5**0.5, 0.5, 0.5**1.5]
    frame = sweep_frame("glorot", stds, grads=stds[::-1], activation="relu")
    findings = diagnose(frame)
    assert findings[["layer", "tensor", "kind", "statistic"]].values.tolist() == [
        [1, "activation_grad", "vanishing", "mean_std_ratio"],
        [4, "activation", "vanishing", "mean_std_ratio"],
    ]
    np.testing.assert_allclose(findings["value"], 0.5**0.5)
    np.testing.assert_allclose(findings["threshold"], 0.8)
    message = findings.loc[1, "message"]
    assert "fell 1.41x per layer on average over 3 layers from layer 1" in message
    assert (findings["suggestion"] == "he_normal").all()
    assert diagnose(frame, trend_factor=1.5).empty


def test_exploding_relu_suggests_he():
    findings = diagnose(sweep_frame("big", [1.0, 16.0, 256.0], activation="relu"))
    assert findings["kind"].tolist() == ["exploding", "exploding"]
    np.testing.assert_allclose(findings["value"], [16.0, 16.0])
    assert (findings["suggestion"] == "he_normal").all()
    assert "grew 16x" in findings.loc[0, "message"]


def test_healthy_sweep_has_no_findings():
    frame = sweep_frame("ok", [0.63, 0.49, 0.41, 0.36], grads=[0.39, 0.49, 0.57, 0.65],
                        frac_saturated=[0.008, 0.0, 0.0, 0.0], frac_dead_units=0.0)  # fmt: skip
    findings = diagnose(frame)
    assert findings.empty
    assert list(findings.columns) == FINDING_COLUMNS
    assert format_findings(findings) == "No initialization problems found."


def test_saturated_and_threshold():
    frame = sweep_frame("large", [0.98, 0.98], frac_saturated=[0.9, 0.2], activation="sigmoid")
    findings = diagnose(frame)
    assert findings[["layer", "kind"]].values.tolist() == [[1, "saturated"]]
    assert findings.loc[0, "value"] == pytest.approx(0.9)
    assert findings.loc[0, "suggestion"] == "sigmoid_glorot_uniform"
    assert "90% of the activations" in findings.loc[0, "message"]
    assert len(diagnose(frame, saturated_threshold=0.1)) == 2


def test_constant_layer_is_reported_once_and_not_as_dead_or_ratio():
    frame = sweep_frame("zeros", [0.0, 0.0], grads=[0.0, 1.0], frac_dead_units=1.0)
    findings = diagnose(frame)
    assert findings[["layer", "kind"]].values.tolist() == [[1, "constant"], [2, "constant"]]
    assert "never break this symmetry" in findings.loc[0, "message"]


def test_dead_units():
    frame = sweep_frame("relu", [1.0, 1.0], activation="relu", frac_dead_units=[0.05, 0.4])
    findings = diagnose(frame)
    assert findings[["layer", "kind", "value"]].values.tolist() == [[2, "dead_units", 0.4]]
    assert "40% of the units output 0" in findings.loc[0, "message"]


def test_nonfinite_values_are_findings_not_errors():
    frame = sweep_frame("nan", [1.0, np.nan], nan_count=[0, 12], inf_count=[0, 3])
    findings = diagnose(frame)
    assert findings[["layer", "statistic", "value"]].values.tolist() == [
        [2, "nan_count", 12.0],
        [2, "inf_count", 3.0],
    ]
    assert "12 NaN values in `activation`" in findings.loc[0, "message"]


def test_sweep_findings_keep_the_input_order_of_initializers():
    frame = pd.concat([sweep_frame("zz", [1.0, 0.1]), sweep_frame("aa", [1.0, 0.1])])
    assert diagnose(frame)["initializer"].tolist() == ["zz", "aa"]


def test_layerstats_frame_diagnoses_first_step_by_default(layerstats_frame):
    findings = diagnose(layerstats_frame)
    assert (findings["step"] == 0).all()
    assert (findings["initializer"] == "").all()
    # Step 0: dense_1 has half dead units; the kernel gradient has NaN; the softmax head is not
    # compared with the hidden layers (its std 0.05 vs 1.0 is not a vanishing signal).
    got = findings[["layer", "tensor", "kind"]].values.tolist()
    assert got == [
        ["seq/dense_1", "kernel_grad", "nonfinite"],
        ["seq/dense_1", "activation", "dead_units"],
    ]
    assert findings["layer_index"].tolist() == [1, 1]
    assert (findings["suggestion"] == "he_normal").all()


def test_layerstats_frame_other_step(layerstats_frame):
    findings = diagnose(layerstats_frame, step=10)
    assert ["seq/dense_1", "activation", "vanishing"] in findings[
        ["layer", "tensor", "kind"]
    ].values.tolist()
    assert (findings["step"] == 10).all()
    text = format_findings(findings)
    assert text.splitlines()[0] == "step 10:"
    assert "[vanishing] Layer seq/dense_1 (relu): activation std fell 10x" in text


def test_format_findings_truncates_per_group():
    findings = diagnose(sweep_frame("small", [1.0, 0.1, 0.01, 0.001, 1e-4]))
    text = format_findings(findings, max_per_group=2)
    lines = text.splitlines()
    assert lines[0] == "small:"
    assert len(lines) == 4
    assert lines[-1] == "  ... and 2 more (vanishing)."
    assert lines[1].endswith("Try `glorot_uniform`.")
    assert len(format_findings(findings, max_per_group=None).splitlines()) == 5


@pytest.mark.parametrize(
    "activation, expected",
    [
        ("tanh", "glorot_uniform"),
        ("linear", "glorot_uniform"),
        ("", "glorot_uniform"),
        ("sigmoid", "sigmoid_glorot_uniform"),
        ("relu", "he_normal"),
        ("leaky_relu", "he_normal"),
        ("gelu", "he_normal"),
        ("selu", "lecun_normal"),
    ],
)
def test_suggest_initializer(activation, expected):
    assert suggest_initializer(activation) == expected


def test_bad_arguments(layerstats_frame):
    frame = sweep_frame("x", [1.0])
    with pytest.raises(ValueError, match="factor=1.0. Expected a number > 1.0."):
        diagnose(frame, factor=1.0)
    with pytest.raises(ValueError, match="trend_factor=0.5. Expected a number > 1.0."):
        diagnose(frame, trend_factor=0.5)
    with pytest.raises(ValueError, match=r"threshold=1.5. Expected a number in \[0.0, 1.0\]"):
        diagnose(frame, saturated_threshold=1.5)
    with pytest.raises(TypeError, match="dead_threshold='a'"):
        diagnose(frame, dead_threshold="a")
    with pytest.raises(TypeError, match="Expected a pandas DataFrame"):
        diagnose([1, 2])
    with pytest.raises(ValueError, match=r"columns \['a'\]. Expected a LayerStats frame"):
        diagnose(pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match="step=7. Expected one of the steps in the frame: 0, 10."):
        diagnose(layerstats_frame, step=7)
    with pytest.raises(ValueError, match="Expected None for a depth_sweep frame"):
        diagnose(frame, step=0)
    assert math.isclose(diagnose(frame, factor=2).shape[0], 0)
