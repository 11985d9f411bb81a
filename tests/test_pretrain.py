import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from keras_initx.pretrain import PRETRAIN_COLUMNS, pretrain_layerwise

N_TRAIN = 1200


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype("float32")
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def make_mlp(seed=0):
    def init(offset):
        return keras.initializers.GlorotUniform(seed=seed + offset)

    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, "tanh", kernel_initializer=init(0), name="hidden_1"),
            keras.layers.Dense(32, "tanh", kernel_initializer=init(1), name="hidden_2"),
            keras.layers.Dense(10, "softmax", kernel_initializer=init(2), name="out"),
        ],
        name="mlp",
    )


@pytest.fixture(scope="module")
def pretrained(digits):
    x_train = digits[0]
    model = make_mlp()
    before = [w.copy() for w in model.get_weights()]
    frame = pretrain_layerwise(model, x_train, epochs_per_layer=5, noise=0.2, batch_size=32, seed=0)
    print(frame.to_string())
    return model, before, frame


def test_frame_has_one_row_per_hidden_layer(pretrained):
    _, _, frame = pretrained
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == PRETRAIN_COLUMNS
    assert frame["layer"].tolist() == ["mlp/hidden_1", "mlp/hidden_2"]
    assert frame["layer_index"].tolist() == [0, 1]
    assert frame["units"].tolist() == [32, 32]
    assert frame["activation"].tolist() == ["tanh", "tanh"]
    assert frame["input_dim"].tolist() == [64, 32]
    assert frame["epochs"].tolist() == [5, 5]


def test_hidden_weights_change_and_output_layer_does_not(pretrained):
    model, before, _ = pretrained
    after = model.get_weights()
    # [kernel, bias] of hidden_1, hidden_2, out
    for i in range(4):
        assert np.abs(after[i] - before[i]).max() > 1e-3, f"weight {i} unchanged"
    np.testing.assert_array_equal(after[4], before[4])
    np.testing.assert_array_equal(after[5], before[5])


def test_reconstruction_loss_decreases_for_every_layer(pretrained):
    _, _, frame = pretrained
    assert (frame["loss_last_epoch"] < frame["loss_first_epoch"]).all()
    # Clean reconstruction error at least 30% lower after 5 epochs (measured: about 60% lower).
    assert (frame["loss_after"] < 0.7 * frame["loss_before"]).all()


def test_pretrained_first_epoch_no_worse_than_random_init(digits, pretrained):
    x_train, y_train, x_test, y_test = digits
    model, _, _ = pretrained
    losses = {}
    for name, candidate in [("random", make_mlp()), ("pretrained", model)]:
        candidate.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        keras.utils.set_random_seed(1)  # same batch order for both
        candidate.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)
        losses[name] = candidate.evaluate(x_test, y_test, verbose=0)
    print(losses)
    # Held-out loss after one epoch. Over init seeds 0-2 the random-init model's loss spreads by
    # about +-4% (1.47-1.60) and pretraining this shallow Glorot-initialized net lands inside that
    # spread (measured ratios 0.96-1.04), so "no worse" is asserted up to 10%, 2.5x that spread.
    assert losses["pretrained"] <= 1.10 * losses["random"]


def test_functional_chain_with_weightless_layers_and_include_output(digits):
    x_train = digits[0][:256].reshape(-1, 8, 8)
    inputs = keras.Input((8, 8))
    hidden = keras.layers.Flatten()(inputs)
    hidden = keras.layers.Dense(16, "relu", name="enc")(hidden)
    hidden = keras.layers.Dropout(0.5)(hidden)
    outputs = keras.layers.Dense(4, name="code")(hidden)
    model = keras.Model(inputs, outputs, name="chain")
    frame = pretrain_layerwise(
        model, x_train, epochs_per_layer=1, noise=0.0, include_output=True, seed=0
    )
    assert frame["layer"].tolist() == ["chain/enc", "chain/code"]
    assert frame["input_dim"].tolist() == [64, 16]
    assert frame["activation"].tolist() == ["relu", "linear"]


def test_unbuilt_sequential_is_built_from_x(digits):
    model = keras.Sequential([keras.layers.Dense(8, "relu"), keras.layers.Dense(2)])
    frame = pretrain_layerwise(model, digits[0][:64], epochs_per_layer=1, seed=0)
    assert frame["input_dim"].tolist() == [64]


def test_branching_model_names_the_layer_that_breaks_the_chain():
    inputs = keras.Input((6,))
    trunk = keras.layers.Dense(4, name="trunk")(inputs)
    left = keras.layers.Dense(4, name="left")(trunk)
    right = keras.layers.Dense(4, name="right")(trunk)
    model = keras.Model(inputs, keras.layers.Add(name="merge")([left, right]))
    with pytest.raises(ValueError, match="not a chain at layer 'right'"):
        pretrain_layerwise(model, np.zeros((8, 6)))


def test_layer_with_weights_that_is_not_dense_is_rejected():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    with pytest.raises(ValueError, match="layer 'conv' \\(Conv2D\\) has weights but is not Dense"):
        pretrain_layerwise(model, np.zeros((4, 8, 8, 1)))


def test_multi_output_model_is_rejected():
    inputs = keras.Input((6,))
    first = keras.layers.Dense(4)(inputs)
    second = keras.layers.Dense(4)(first)
    with pytest.raises(ValueError, match="2 outputs"):
        pretrain_layerwise(keras.Model(inputs, [first, second]), np.zeros((8, 6)))


def test_single_dense_layer_without_include_output_has_nothing_to_pretrain():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="Expected at least one Dense layer to pretrain"):
        pretrain_layerwise(model, np.zeros((8, 6)))


def test_x_that_does_not_fit_the_model_is_rejected():
    with pytest.raises(ValueError, match=r"Received: x with shape \(8, 7\)\. Expected shape"):
        pretrain_layerwise(make_mlp(), np.zeros((8, 7)))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"epochs_per_layer": 0}, "epochs_per_layer"),
        ({"noise": -0.1}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{argument}`"):
        pretrain_layerwise(make_mlp(), np.zeros((8, 64)), **kwargs)


def test_non_int_batch_size_is_a_type_error():
    pattern = r"`batch_size`\. Received: batch_size=2\.5 of type float\. Expected an int >= 1\."
    with pytest.raises(TypeError, match="Invalid type for argument " + pattern):
        pretrain_layerwise(make_mlp(), np.zeros((8, 64)), batch_size=2.5)


def test_non_model_is_a_type_error():
    with pytest.raises(TypeError, match="Invalid type for argument `model`"):
        pretrain_layerwise(keras.layers.Dense(3), np.zeros((8, 6)))


def test_int_seed_makes_pretraining_reproducible(digits):
    frames, kernels = [], []
    for _ in range(2):
        model = make_mlp()
        frames.append(pretrain_layerwise(model, digits[0][:200], epochs_per_layer=2, seed=3))
        kernels.append(model.get_weights()[0])
    pd.testing.assert_frame_equal(frames[0], frames[1])
    np.testing.assert_array_equal(kernels[0], kernels[1])


def test_nan_input_is_refused_before_any_kernel_changes():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(2)]
    )
    before = [w.copy() for w in model.get_weights()]
    x = np.ones((8, 4), "float32")
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="`x`. Received: x with 1 NaN/Inf values"):
        pretrain_layerwise(model, x)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
