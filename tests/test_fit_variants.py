"""LayerStats under the fit options users combine: tf.data, steps_per_execution, XLA, mixed
precision, sample weights, several outputs, a custom train_step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_initx.callbacks import LayerStats

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mlp(seed=0, **compile_kwargs):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", name="d1"),
            keras.layers.Dense(3, name="out"),
        ],
        name="mlp",
    )
    model.compile(keras.optimizers.SGD(0.1), LOSS, **compile_kwargs)
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 8)).astype("float32"), rng.integers(0, 3, size=40)


def _steps(cb):
    return sorted(cb.to_dataframe()["step"].unique().tolist())


def test_tf_data_with_validation(data):
    x, y = data
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model = _mlp()
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=2)
    model.fit(
        train, validation_data=train.take(2), epochs=2, verbose=0, shuffle=False, callbacks=[cb]
    )
    assert _steps(cb) == [0, 2, 4, 6, 8, 10]
    assert np.isfinite(cb.to_dataframe()["std"]).all()


@pytest.mark.parametrize(
    "every, expected",
    # 10 steps per epoch in groups of 4: fit calls back after optimizer steps 4, 8, 10, 14, 18, 20.
    [(1, [0, 4, 8, 10, 14, 18, 20]), (4, [0, 4, 8, 14, 18, 20]), (6, [0, 8, 14, 18])],
)
def test_steps_per_execution_labels_are_optimizer_steps(data, every, expected):
    x, y = data
    model = _mlp(steps_per_execution=4)
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=every, tensors=["activation"])
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[cb])
    assert int(model.optimizer.iterations.numpy()) == 20
    assert _steps(cb) == expected
    assert cb.to_dataframe().groupby("step").size().eq(2).all()  # no doubled measurement


def test_jit_compile_fit(data):
    x, y = data
    plain, jitted = _mlp(), _mlp(jit_compile=True)
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=5)
    plain.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    jitted.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[cb])
    assert _steps(cb) == [0, 5]
    for a, b in zip(plain.get_weights(), jitted.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(data, policy):
    x, y = data
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _mlp()
        cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=5)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    frame = cb.to_dataframe()
    assert _steps(cb) == [0, 5]
    assert np.isfinite(frame["std"]).all()
    d1 = model.get_layer("d1")
    hidden = np.tanh(x[:16] @ d1.kernel.numpy().astype("float32") + d1.bias.numpy())
    row = frame[(frame["step"] == 5) & (frame["layer"] == "mlp/d1")].set_index("tensor")
    # 16-bit activations: a few parts in a thousand.
    np.testing.assert_allclose(row.loc["activation", "std"], np.std(hidden), rtol=2e-2)


def test_sample_weight_reaches_the_gradients(data):
    x, y = data
    weights = np.linspace(0.0, 2.0, len(x)).astype("float32")
    model = _mlp()
    cb = LayerStats(probe=(x, y, weights), tensors=["kernel_grad"])
    model.fit(x, y, sample_weight=weights, batch_size=40, epochs=1, verbose=0, callbacks=[cb])
    model0 = _mlp()  # the initialization, which step 0 measured
    with tf.GradientTape() as tape:
        loss = model0.compute_loss(x=x, y=y, y_pred=model0(x), sample_weight=weights)
    grad = tape.gradient(loss, model0.get_layer("d1").kernel)
    row = cb.to_dataframe().query("step == 0 and layer == 'mlp/d1'").iloc[0]
    np.testing.assert_allclose(row["std"], np.std(grad.numpy()), rtol=1e-4)


def test_two_outputs_two_losses(data):
    x, y = data
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="trunk")(inputs)
    a = keras.layers.Dense(3, name="a")(h)
    b = keras.layers.Dense(1, name="b")(h)
    model = keras.Model(inputs, [a, b], name="two")
    model.compile("sgd", loss=[LOSS, "mse"], loss_weights=[1.0, 0.5])
    targets = (y, x[:, :1])
    cb = LayerStats(probe=(x[:16], (y[:16], x[:16, :1])), every_n_steps=5)
    model.fit(x, targets, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe().query("step == 0 and tensor == 'activation_grad'")
    grads = frame.set_index("layer")["rms"]
    assert grads["two/a"] > 0 and grads["two/b"] > 0 and grads["two/trunk"] > 0


class _OwnStep(keras.Model):
    """A subclassed model with its own train_step and no compiled loss."""

    def __init__(self):
        super().__init__(name="own")
        self.hidden = keras.layers.Dense(16, activation="tanh", name="hidden")
        self.head = keras.layers.Dense(3, name="head")

    def call(self, x):
        return self.head(self.hidden(x))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = LOSS(y, self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        return {"loss": loss}


def test_custom_train_step_with_the_loss_argument(data):
    x, y = data
    keras.utils.set_random_seed(0)
    model = _OwnStep()
    model.compile(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="`loss`"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[LayerStats(probe=(x[:8], y[:8]))])
    cb = LayerStats(probe=(x[:16], y[:16]), every_n_steps=2, loss=LOSS)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe()
    assert _steps(cb) == [0, 2, 4]
    assert set(frame["layer"]) == {"own/hidden", "own/head"}
    assert (frame.query("tensor == 'kernel_grad'")["rms"] > 0).all()
