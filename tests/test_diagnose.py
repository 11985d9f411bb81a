import importlib

import keras
import numpy as np
import pandas as pd
import pytest

import keras_initx
from keras_initx.diagnosis import FINDING_COLUMNS, diagnose, format_findings, suggest_initializer
from keras_initx.initializers import OrthogonalGain
from keras_initx.sinks import result_rows

STAT_COLUMNS = [
    "mean", "std", "min", "max", "rms", "p1", "p50", "p99", "frac_zero", "frac_saturated",
    "frac_dead_units", "nan_count", "inf_count",
]  # fmt: skip

# Measured with depth_sweep (8 SELU layers of 500 units, 1000 standard-normal inputs): the std
# drifts by 12-15 % per layer, under the per-layer factor (1.5) and the trend factor (1.25).
SELU_HE = [1.311, 1.617, 1.914, 2.201, 2.506, 2.799, 3.130, 3.445]
SELU_ORTHOGONAL = [0.798, 0.664, 0.572, 0.505, 0.455, 0.417, 0.386, 0.361]
# Glorot on 10 tanh layers (same sweep): the slow 1/sqrt(depth) decay of a saturating activation.
TANH_GLOROT = [0.628, 0.486, 0.408, 0.358, 0.322, 0.294, 0.272, 0.254, 0.239, 0.227]


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


def layerstats_row(step, layer, index, activation, tensor, std, layer_class="Dense",
                   kernel_initializer="", **stats):  # fmt: skip
    row = dict.fromkeys(STAT_COLUMNS, np.nan)
    row.update({"std": std, "nan_count": 0.0, "inf_count": 0.0, **stats})
    return {
        "step": step,
        "epoch": 0,
        "layer": layer,
        "layer_index": index,
        "layer_class": layer_class,
        "activation": activation,
        "kernel_initializer": kernel_initializer,
        "tensor": tensor,
        **row,
    }


def stack_frame(stds, activation="relu", kernel_initializer="", step=0):
    """A LayerStats frame of a plain Dense stack with these activation stds."""
    return pd.DataFrame(
        [
            layerstats_row(
                step,
                f"m/d{i}",
                i,
                activation,
                "activation",
                std,
                kernel_initializer=kernel_initializer,
            )  # fmt: skip
            for i, std in enumerate(stds)
        ]
    )


@pytest.fixture(scope="module")
def layerstats_frame():
    rows = []
    for step, scale in ((0, 1.0), (10, 0.1)):
        rows += [
            layerstats_row(step, "seq/dense", 0, "relu", "activation", 1.0, frac_dead_units=0),
            layerstats_row(
                step, "seq/dense_1", 1, "relu", "activation", scale, frac_dead_units=0.5
            ),
            layerstats_row(step, "seq/dense_2", 2, "softmax", "activation", 0.05),
            layerstats_row(step, "seq/dense", 0, "relu", "activation_grad", 1e-3),
            layerstats_row(step, "seq/dense_1", 1, "relu", "activation_grad", 1e-3),
            layerstats_row(step, "seq/dense_2", 2, "softmax", "activation_grad", 5.0),
            layerstats_row(step, "seq/dense_1", 1, "relu", "kernel_grad", 0.1, nan_count=3.0),
        ]
    return pd.DataFrame(rows)


def test_the_module_is_not_shadowed_by_the_function():
    module = importlib.import_module("keras_initx.diagnosis")
    assert module.diagnose is keras_initx.diagnose
    assert callable(keras_initx.diagnose) and module.__name__ == "keras_initx.diagnosis"


def test_vanishing_forward_and_backward_is_one_finding_each():
    frame = sweep_frame("small", [0.5, 0.1, 0.02], grads=[0.01, 0.1, 1.0])
    findings = diagnose(frame)
    assert list(findings.columns) == FINDING_COLUMNS
    got = findings[["layer", "last_layer", "layers", "tensor", "kind"]].values.tolist()
    assert got == [
        [2, 3, 2, "activation", "vanishing"],  # from layer 1 to 3: layers 2 and 3 are off
        [2, 1, 2, "activation_grad", "vanishing"],  # gradients travel from layer 3 back to 1
    ]
    np.testing.assert_allclose(findings["value"], [0.2, 0.1])  # geometric mean per layer
    np.testing.assert_allclose(findings["threshold"], 1 / 1.5)
    assert (findings["initializer"] == "small").all()
    assert findings["step"].isna().all()
    assert (findings["suggestion"] == "glorot_uniform").all()
    assert findings.loc[0, "message"].startswith(
        "2 layers from 2 to 3 (tanh): activation std fell 5x per layer on average, from layer 1 "
        "to layer 3 (0.5 -> 0.02)"
    )


def test_one_failing_layer_names_both_layers():
    findings = diagnose(sweep_frame("small", [1.0, 1.0, 0.1]))
    assert findings[["layer", "layers", "kind"]].values.tolist() == [[3, 1, "vanishing"]]
    assert (
        "Layer 3 (tanh): activation std fell 10x from layer 2 (1 -> 0.1)"
        in (findings.loc[0, "message"])
    )


def test_forty_vanishing_layers_are_one_finding():
    stds = 0.22 ** np.arange(40)
    findings = diagnose(sweep_frame("small", stds))
    assert len(findings) == 1
    assert findings.loc[0, ["layer", "last_layer", "layers"]].tolist() == [2, 40, 39]
    assert findings.loc[0, "value"] == pytest.approx(0.22)
    assert findings.loc[0, "message"].startswith(
        "39 layers from 2 to 40 (tanh): activation std fell 4.55x per layer on average, from "
        "layer 1 to layer 40 (1 -> 2.26e-26)"
    )


def test_factor_is_the_threshold():
    frame = sweep_frame("small", [1.0, 0.25, 0.0625])
    # ratio 0.25 is exactly 1 / 4: not beyond it (the fitted change, 16x, is: drift_factor 20)
    assert diagnose(frame, factor=4.0, trend_factor=4.1, drift_factor=20).empty
    findings = diagnose(frame, factor=3.9, trend_factor=4.1)
    assert findings[["kind", "layers", "statistic"]].values.tolist() == [
        ["vanishing", 2, "std_ratio"]
    ]


def test_steady_drift_is_one_trend_finding():
    # Glorot on ReLU: std x 1/sqrt(2) per layer passes the per-layer test (factor 1.5) but not
    # the fitted trend (1.25 per layer).
    stds = [1.0, 0.5**0.5, 0.5, 0.5**1.5]
    frame = sweep_frame("glorot_uniform", stds, grads=stds[::-1], activation="relu")
    findings = diagnose(frame)
    assert findings[["layer", "last_layer", "tensor", "kind", "statistic"]].values.tolist() == [
        [1, 4, "activation", "vanishing", "mean_std_ratio"],
        [4, 1, "activation_grad", "vanishing", "mean_std_ratio"],
    ]
    np.testing.assert_allclose(findings["value"], 0.5**0.5)
    np.testing.assert_allclose(findings["threshold"], 0.8)
    assert (
        "fell 1.41x per layer on the fitted trend, from layer 1 to layer 4 (1 -> 0.354)"
        in (findings.loc[0, "message"])
    )
    assert (findings["suggestion"] == "he_normal").all()
    assert diagnose(frame, trend_factor=1.5, drift_factor=3).empty


@pytest.mark.parametrize(
    "label, stds, kind, ratio",
    [("he_normal", SELU_HE, "exploding", 1.149), ("orthogonal_gain", SELU_ORTHOGONAL,
                                                  "vanishing", 0.895)],
)  # fmt: skip
def test_slow_selu_drift_is_found(label, stds, kind, ratio):
    frame = sweep_frame(label, stds, activation="selu")
    findings = diagnose(frame)
    assert findings[["kind", "statistic", "layer", "last_layer"]].values.tolist() == [
        [kind, "mean_std_ratio", 1, 8]
    ]
    assert findings.loc[0, "value"] == pytest.approx(ratio, abs=0.005)
    assert findings.loc[0, "suggestion"] == "lecun_normal"
    # Only the cumulative test sees it: 2.6x resp. 2.2x over the 8 layers.
    assert diagnose(frame, drift_factor=3).empty


def test_saturating_activations_may_decay_slowly_but_not_relu():
    assert diagnose(sweep_frame("glorot_uniform", TANH_GLOROT, activation="tanh")).empty
    findings = diagnose(sweep_frame("x", TANH_GLOROT, activation="relu"))
    assert findings[["kind", "statistic"]].values.tolist() == [["vanishing", "mean_std_ratio"]]


def test_selu_drifts_measured_with_the_probe():
    """8 SELU Dense layers measured by the LayerStats engine: he_normal and orthogonal_gain
    drift, lecun_normal does not; the kernel initializer comes from the layers."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 128)).astype("float32")
    kinds = {}
    for name, init in (("he_normal", "he_normal"), ("orthogonal_gain",
                       OrthogonalGain(gain="selu")), ("lecun_normal", "lecun_normal")):  # fmt: skip
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((128,))]
            + [keras.layers.Dense(128, "selu", kernel_initializer=init) for _ in range(8)]
        )
        probe = keras_initx.build_probe(model, tensors=["activation"], training=True)
        frame = result_rows(probe(x), step=0)
        assert set(frame["kernel_initializer"]) == {name}
        findings = diagnose(frame)
        kinds[name] = findings["kind"].tolist()
        assert (findings["suggestion"] == "lecun_normal").all()
        keras.backend.clear_session()
    assert kinds == {"he_normal": ["exploding"], "orthogonal_gain": ["vanishing"],
                     "lecun_normal": []}  # fmt: skip


def test_exploding_relu_suggests_he():
    findings = diagnose(sweep_frame("big", [1.0, 16.0, 256.0], activation="relu"))
    assert findings[["kind", "layers"]].values.tolist() == [["exploding", 2]]
    assert findings.loc[0, "value"] == pytest.approx(16.0)
    assert findings.loc[0, "suggestion"] == "he_normal"
    assert "grew 16x per layer" in findings.loc[0, "message"]


@pytest.mark.parametrize("used", ["he_normal", "he_uniform"])
def test_never_suggests_the_initializer_already_used(used):
    findings = diagnose(stack_frame([1.0, 2.0, 4.0, 8.0], kernel_initializer=used))
    assert findings["kind"].tolist() == ["exploding"]
    assert findings.loc[0, "suggestion"] == "lsuv"
    message = findings.loc[0, "message"]
    assert f"These layers already use `{used}`" in message and "the cause is elsewhere" in message
    # A layer without a kernel (ReLU after a BatchNormalization-free Dense) takes its kernel's.
    frame = stack_frame([1.0, 2.0, 4.0, 8.0], kernel_initializer=used)
    frame.loc[1, ["layer_class", "kernel_initializer"]] = ["ReLU", ""]
    assert diagnose(frame).loc[0, "suggestion"] == "lsuv"


def test_another_initializer_is_replaced():
    findings = diagnose(stack_frame([1.0, 2.0, 4.0, 8.0], kernel_initializer="glorot_uniform"))
    assert findings.loc[0, "suggestion"] == "he_normal"
    assert "already use" not in findings.loc[0, "message"]


def test_runs_are_diagnosed_separately_and_labelled():
    """A compare_training-style frame: the exploding run keeps its finding, labels are right,
    each run's first step is diagnosed."""
    big = stack_frame([1.0, 3.0, 9.0], kernel_initializer="random_normal", step=0)
    zeros = stack_frame([0.0, 0.0, 0.0], kernel_initializer="zeros", step=0)
    healthy = stack_frame([1.0, 1.0, 1.0], kernel_initializer="he_normal", step=0)
    later = stack_frame([1.0, 10.0, 100.0], step=8)  # not step 0: not diagnosed by default
    frame = pd.concat(
        [zeros.assign(initializer="zeros"), big.assign(initializer="big"),
         healthy.assign(initializer="he"), later.assign(initializer="he")]
    )[["initializer", *zeros.columns]]  # fmt: skip
    findings = diagnose(frame)
    assert findings[["initializer", "kind", "layers"]].values.tolist() == [
        ["zeros", "constant", 3],
        ["big", "exploding", 2],
    ]
    assert (findings["step"] == 0).all()
    assert findings.loc[1, "value"] == pytest.approx(3.0)
    assert findings["suggestion"].tolist() == ["he_normal", "he_normal"]
    text = format_findings(findings)
    assert text.splitlines()[0] == "zeros (step 0):" and "big (step 0):" in text
    later_findings = diagnose(frame, step=8)
    assert later_findings[["initializer", "kind"]].values.tolist() == [["he", "exploding"]]


def test_compare_training_runs_keep_their_labels():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 8)).astype("float32"), rng.integers(0, 3, 96)

    def model_fn(init):
        layers = [keras.layers.Dense(32, "tanh", kernel_initializer=init) for _ in range(4)]
        return keras.Sequential([keras.Input((8,)), *layers, keras.layers.Dense(3, "softmax")])

    result = keras_initx.compare_training(
        {"small": "random_normal(stddev=0.01)", "glorot": "glorot_uniform"},
        model_fn=model_fn, data=(x, y), epochs=1, batch_size=32,
    )  # fmt: skip
    findings = diagnose(result.layer_stats)
    assert set(findings["initializer"]) == {"small"}
    assert "vanishing" in set(findings["kind"])
    assert (findings["suggestion"] == "glorot_uniform").all()


def _bn_block_frame(last_bn_std, add_std=1.4):
    """LayerStats rows of a conv-BN-ReLU residual block: conv1 BN relu conv2 BN2 Add relu."""
    layers = [
        ("conv1", "Conv2D", "linear", 1.7, "he_normal"),
        ("bn1", "BatchNormalization", "", 1.0, ""),
        ("relu1", "ReLU", "relu", 0.58, ""),
        ("conv2", "Conv2D", "linear", 0.9, "he_normal"),
        ("bn2", "BatchNormalization", "", last_bn_std, ""),
        ("add", "Add", "", add_std, ""),
        ("relu2", "ReLU", "relu", 0.9, ""),
    ]
    return pd.DataFrame(
        [
            layerstats_row(
                0,
                name,
                i,
                act,
                "activation",
                std,
                layer_class=cls,
                kernel_initializer=init,
                frac_dead_units=0.0,
            )  # fmt: skip
            for i, (name, cls, act, std, init) in enumerate(layers)
        ]
    )


def test_zero_initialised_residual_branch_is_by_design():
    # BN2's gamma at 0 (Goyal et al. 2017): the branch outputs 0 and the block is the identity.
    assert diagnose(_bn_block_frame(last_bn_std=0.0, add_std=0.6)).empty
    # The same zeros feeding no merge are a constant layer.
    frame = _bn_block_frame(last_bn_std=0.0, add_std=0.6)
    frame.loc[5, "layer_class"] = "Concatenate"
    assert diagnose(frame)[["layer", "kind"]].values.tolist() == [["bn2", "constant"]]


def test_layer_scale_is_by_design():
    """A ConvNeXt block: the LayerScale at 1e-6 shrinks the branch a million times on purpose,
    and its gradients too; normalization layers bound every comparison."""
    layers = [
        ("dw", "DepthwiseConv2D", "linear", 1.0, 1e-6),
        ("ln", "LayerNormalization", "", 1.0, 1e-6),
        ("pw1", "Dense", "gelu", 0.6, 1e-6),
        ("pw2", "Dense", "linear", 0.4, 1e-6),
        ("scale", "LayerScale", "", 4e-7, 1.0),
        ("add", "Add", "", 1.0, 1.0),
        ("dw2", "DepthwiseConv2D", "linear", 0.3, 1e-6),
        ("ln2", "LayerNormalization", "", 1.0, 1e-6),
        ("pw3", "Dense", "gelu", 0.6, 1e-6),
    ]
    rows = [
        layerstats_row(
            0, name, i, act, tensor, std if tensor == "activation" else grad, layer_class=cls
        )  # fmt: skip
        for i, (name, cls, act, std, grad) in enumerate(layers)
        for tensor in ("activation", "activation_grad")
    ]
    assert diagnose(pd.DataFrame(rows)).empty


def test_normalized_network_compares_same_class_layers_between_normalizations():
    layers = [
        ("bn", "BatchNormalization", "", 1.0),
        ("act", "Activation", "silu", 0.58),
        ("se_reduce", "Conv2D", "silu", 0.05),  # squeeze-and-excite: reads pooled activations
        ("bn2", "BatchNormalization", "", 1.0),
        ("head1", "Dense", "tanh", 0.6),  # after the last normalization: a plain tanh stack
        ("head2", "Dense", "tanh", 0.1),
        ("head3", "Dense", "tanh", 0.02),
    ]
    frame = pd.DataFrame(
        [
            layerstats_row(0, name, i, act, "activation", std, layer_class=cls)
            for i, (name, cls, act, std) in enumerate(layers)
        ]
    )
    findings = diagnose(frame)
    assert findings[["layer", "last_layer", "kind"]].values.tolist() == [
        ["head2", "head3", "vanishing"]
    ]


def test_batch_norm_on_its_initial_statistics_is_one_finding():
    frame = _bn_block_frame(last_bn_std=0.9)
    # Inference mode at initialization: each BN passes its input through (std / sqrt(1 + eps)).
    frame.loc[1, "std"] = 1.7 / np.sqrt(1.001)
    frame.loc[4, "std"] = 0.9 / np.sqrt(1.001)
    frame.loc[6, "frac_dead_units"] = 0.6  # an artefact of the unnormalized conv outputs
    findings = diagnose(frame)
    assert findings[["layer", "kind", "layers"]].values.tolist() == [["bn1", "unnormalized", 2]]
    assert findings.loc[0, "suggestion"] == ""
    assert "measure in training mode" in findings.loc[0, "message"]
    assert "Try" not in format_findings(findings)
    # In training mode (BN output std ~1) the same dead units are real.
    frame = _bn_block_frame(last_bn_std=0.99)
    frame.loc[6, "frac_dead_units"] = 0.6
    assert diagnose(frame)[["layer", "kind"]].values.tolist() == [["relu2", "dead_units"]]


def _bn_resnet(blocks=2, width=8):
    """A small He-initialised BatchNormalization ResNet (post-activation, as ResNet v1)."""
    conv = dict(padding="same", kernel_initializer="he_normal", use_bias=False)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.ReLU()(
        keras.layers.BatchNormalization()(keras.layers.Conv2D(width, 3, **conv)(inputs))
    )
    for _ in range(blocks):
        h = keras.layers.ReLU()(
            keras.layers.BatchNormalization()(keras.layers.Conv2D(width, 3, **conv)(x))
        )
        h = keras.layers.BatchNormalization()(keras.layers.Conv2D(width, 3, **conv)(h))
        x = keras.layers.ReLU()(keras.layers.Add()([x, h]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def test_small_bn_resnet_has_no_findings_in_training_mode():
    keras.utils.set_random_seed(0)
    model = _bn_resnet()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 12, 12, 3)).astype("float32"), rng.integers(0, 10, 8)
    stats = ["std", "frac_saturated", "frac_dead_units", "nan_count", "inf_count"]
    frames = {
        training: result_rows(
            keras_initx.build_probe(
                model, ["activation", "activation_grad"], stats, training=training
            )(x, y),
            step=0,
        )  # fmt: skip
        for training in (True, False)
    }
    keras.backend.clear_session()
    assert diagnose(frames[True]).empty
    # The inference-mode probe runs BN on its initial moving statistics: said once, no more.
    assert diagnose(frames[False])["kind"].tolist() == ["unnormalized"]


def test_saturated_and_threshold():
    frame = sweep_frame("large", [0.98, 0.98], frac_saturated=[0.9, 0.2], activation="sigmoid")
    findings = diagnose(frame)
    assert findings[["layer", "kind"]].values.tolist() == [[1, "saturated"]]
    assert findings.loc[0, "value"] == pytest.approx(0.9)
    assert findings.loc[0, "suggestion"] == "sigmoid_glorot_uniform"
    assert "Layer 1 (sigmoid): 90% of the activations" in findings.loc[0, "message"]
    wider = diagnose(frame, saturated_threshold=0.1)
    assert wider[["layer", "last_layer", "layers"]].values.tolist() == [[1, 2, 2]]
    assert "2 layers from 1 to 2 (sigmoid): up to 90% of the activations" in wider.loc[0, "message"]


def test_constant_layers_are_one_finding_not_dead_or_ratio():
    frame = sweep_frame("zeros", [0.0, 0.0], grads=[0.0, 1.0], frac_dead_units=1.0)
    findings = diagnose(frame)
    assert findings[["layer", "last_layer", "kind"]].values.tolist() == [[1, 2, "constant"]]
    assert "never break this symmetry" in findings.loc[0, "message"]
    # Zeros in the first layer make every layer after it constant: one finding, whose advice is
    # the first layer's (the glorot_uniform head is not told it is the cause).
    frame = stack_frame([0.0, 0.0, 0.0], kernel_initializer="zeros")
    frame.loc[2, ["activation", "kernel_initializer"]] = ["softmax", "glorot_uniform"]
    findings = diagnose(frame)
    assert findings[["layer", "last_layer", "layers", "suggestion"]].values.tolist() == [
        ["m/d0", "m/d2", 3, "he_normal"]
    ]
    assert findings.loc[0, "message"].startswith(
        "Layer m/d0 (relu): every output is the same value (std 0) (2 more after it, up to m/d2)"
    )


def test_dead_units():
    frame = sweep_frame("relu", [1.0, 1.0], activation="relu", frac_dead_units=[0.05, 0.4])
    findings = diagnose(frame)
    assert findings[["layer", "kind", "value"]].values.tolist() == [[2, "dead_units", 0.4]]
    assert "40% of the units output 0" in findings.loc[0, "message"]


def test_nonfinite_values_are_findings_not_errors():
    frame = sweep_frame("nan", [1.0, np.nan, np.nan], nan_count=[0, 12, 5], inf_count=[0, 3, 0])
    findings = diagnose(frame)
    assert findings[["layer", "statistic", "value", "layers"]].values.tolist() == [
        [2, "nan_count", 12.0, 2],
        [2, "inf_count", 3.0, 1],
    ]
    assert (
        "17 NaN values in `activation`, first in `activation` of layer 2"
        in (findings.loc[0, "message"])
    )


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


def test_a_saved_csv_without_the_new_columns_is_read(layerstats_frame, tmp_path):
    old = layerstats_frame.drop(columns=["layer_class", "kernel_initializer"])
    old.to_csv(tmp_path / "old.csv", index=False)
    frame = pd.read_csv(tmp_path / "old.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(diagnose(frame, step=10), diagnose(layerstats_frame, step=10))


def test_format_findings_truncates_per_group():
    frame = pd.concat([sweep_frame("small", [1.0, 0.1, 0.01], frac_saturated=[0.3, 0.5, 0.9]),
                       sweep_frame("relu", [0.5, 1.0], activation="relu")])  # fmt: skip
    findings = diagnose(frame)
    text = format_findings(findings, max_per_group=1)
    assert text.splitlines() == [
        "small:",
        "  [saturated] 3 layers from 1 to 3 (tanh): up to 90% of the activations sit at the "
        "bounds of the nonlinearity, where its derivative is ~0 and gradients vanish: the "
        "weights are too large. Try `glorot_uniform`.",
        "  ... and 1 more (vanishing).",
        "relu:",
        "  [exploding] Layer 2 (relu): activation std grew 2x from layer 1 (0.5 -> 1); the forward"
        " signal blows up with depth: the weights are too large for this activation. Try "
        "`he_normal`.",
    ]
    assert len(format_findings(findings, max_per_group=None).splitlines()) == 5


@pytest.mark.parametrize(
    "activation, current, expected",
    [
        ("tanh", "", "glorot_uniform"),
        ("linear", "", "glorot_uniform"),
        ("", "", "glorot_uniform"),
        ("sigmoid", "", "sigmoid_glorot_uniform"),
        ("relu", "", "he_normal"),
        ("leaky_relu", "", "he_normal"),
        ("gelu", "", "he_normal"),
        ("selu", "", "lecun_normal"),
        ("selu", "he_normal", "lecun_normal"),
        ("relu", "he_normal", "lsuv"),
        ("relu", "he_uniform", "lsuv"),
        ("tanh", "glorot_normal", "lsuv"),
        ("tanh", "orthogonal_gain", "glorot_uniform"),
    ],
)
def test_suggest_initializer(activation, current, expected):
    assert suggest_initializer(activation, current) == expected


def test_bad_arguments(layerstats_frame):
    frame = sweep_frame("x", [1.0])
    with pytest.raises(ValueError, match="factor=1.0. Expected a number > 1.0."):
        diagnose(frame, factor=1.0)
    with pytest.raises(ValueError, match="trend_factor=0.5. Expected a number > 1.0."):
        diagnose(frame, trend_factor=0.5)
    with pytest.raises(ValueError, match="drift_factor=1. Expected a number > 1.0."):
        diagnose(frame, drift_factor=1)
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
    assert diagnose(frame, factor=2).empty
