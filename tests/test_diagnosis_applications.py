"""The diagnosis of keras.applications at initialization (weights=None, Keras' default inits),
measured as training sees them (BatchNormalization on batch statistics): nothing to report."""

import gc

import keras
import numpy as np
import pytest

from keras_initx import build_probe, diagnose, format_findings
from keras_initx.sinks import result_rows

# What the diagnosis reads, and no more: a smaller probe traces faster.
TENSORS = ["activation", "activation_grad"]
STATS = ["std", "frac_saturated", "frac_dead_units", "nan_count", "inf_count"]


@pytest.fixture(autouse=True)
def _release_the_model():
    # Each application's graphs hold gigabytes; the rest of the suite runs in the same process.
    yield
    keras.backend.clear_session()
    gc.collect()


@pytest.mark.slow
@pytest.mark.parametrize(
    "application, size",
    [
        pytest.param(keras.applications.MobileNetV2, 96, id="MobileNetV2-96"),
        pytest.param(keras.applications.ResNet50, 64, id="ResNet50-64"),
    ],
)
def test_no_findings_at_initialization(application, size):
    keras.utils.set_random_seed(0)
    model = application(weights=None, input_shape=(size, size, 3), classes=10)
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(8, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, size=8)
    probe = build_probe(model, TENSORS, STATS, training=True)
    frame = result_rows(probe(x, y), step=0)
    assert (frame["kernel_initializer"][frame["layer_class"] == "Conv2D"] == "glorot_uniform").all()
    findings = diagnose(frame)
    assert findings.empty, format_findings(findings, max_per_group=None)
