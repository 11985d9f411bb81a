"""keras.applications (weights=None, small inputs) with our initializers swapped in and LayerStats
on: rows for every measured layer in depth order, finite values, files written."""

import gc
import os

import keras
import numpy as np
import pytest

from keras_initx.callbacks import LayerStats
from keras_initx.capture import find_layers

# Initializer arguments of the layer families these models use, each swapped for one of ours.
_SWAPS = {
    "kernel_initializer": "lecun_1_over_sqrt_d",
    "depthwise_initializer": "lecun_1_over_sqrt_d",
}

MODELS = [
    pytest.param(keras.applications.MobileNetV2, 96, id="MobileNetV2-96"),
    pytest.param(keras.applications.ResNet50, 64, id="ResNet50-64"),
    pytest.param(keras.applications.EfficientNetB0, 64, id="EfficientNetB0-64"),
]


@pytest.fixture(autouse=True)
def _release_the_model():
    # Each application's graphs hold gigabytes; the rest of the suite runs in the same process.
    yield
    keras.backend.clear_session()
    gc.collect()


def _with_our_initializers(layer):
    config = layer.get_config()
    swapped = {k: v for k, v in _SWAPS.items() if k in config}
    return layer.__class__.from_config({**config, **swapped})


@pytest.mark.slow
@pytest.mark.parametrize("application, size", MODELS)
def test_application_fits_with_layer_stats(application, size, tmp_path):
    keras.utils.set_random_seed(0)
    original = application(weights=None, input_shape=(size, size, 3), classes=4)
    model = keras.models.clone_model(original, clone_function=_with_our_initializers)
    # The swap took: every conv kernel is drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    convs = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D]
    assert len(convs) > 10
    for layer in convs:
        fan_in = np.prod(layer.kernel.shape[:-1])
        assert np.abs(layer.kernel.numpy()).max() <= 1 / np.sqrt(fan_in) + 1e-7, layer.name
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(8, size, size, 3)).astype("float32")
    y = rng.integers(0, 4, size=8)
    # Fewer statistics keep the one-off trace of the probe within the suite's budget; the
    # histograms (TensorBoard) and every tensor are still computed.
    stats = ["mean", "std", "min", "max", "rms", "nan_count", "inf_count"]
    cb = LayerStats(probe=(x[:4], y[:4]), every_n_steps=2, log_dir=tmp_path, stats=stats)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb])

    frame = cb.to_dataframe()
    assert sorted(frame["step"].unique()) == [0, 2]
    measured = find_layers(model)
    step0 = frame[frame["step"] == 0]
    assert step0.drop_duplicates("layer")["layer"].tolist() == [i.path for i in measured]
    assert step0["layer_index"].is_monotonic_increasing
    values = frame[["mean", "std", "min", "max", "rms"]].to_numpy()
    assert np.isfinite(values).all()
    assert os.path.getsize(tmp_path / "layer_stats.csv") > 0
    assert any((tmp_path / "layer_stats").iterdir())
