"""Greedy layer-wise (denoising) autoencoder pretraining of a chain of Dense layers.

This is the historical way deep networks were initialized before formula initializers and
normalization made it unnecessary (Hinton & Salakhutdinov 2006; Bengio et al. 2007; denoising
variant: Vincent et al. 2008). It is kept here to compare against: `LayerStats` and `diagnose` show
what it does to a network's statistics, and `pretrain_layerwise` returns the reconstruction losses.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd

from keras_initx.capture import LayerInfo, find_layers
from keras_initx.validation import check_int, check_model_input, check_number

__all__ = ["PRETRAIN_COLUMNS", "pretrain_layerwise"]

PRETRAIN_COLUMNS = [
    "layer",
    "layer_index",
    "units",
    "activation",
    "input_dim",
    "epochs",
    "loss_before",
    "loss_first_epoch",
    "loss_last_epoch",
    "loss_after",
]


def pretrain_layerwise(
    model: keras.Model,
    x: np.ndarray,
    epochs_per_layer: int = 5,
    noise: float = 0.1,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    include_output: bool = False,
    seed: int | None = None,
    verbose: int = 0,
) -> pd.DataFrame:
    """Initialize a chain of Dense layers by greedy layer-wise denoising-autoencoder training.

    For each Dense layer in depth order, the inputs that layer receives on `x` are computed with
    every earlier layer frozen (already pretrained, `training=False`). A one-hidden-layer
    autoencoder is trained to reconstruct those inputs from a corrupted copy:

        h_noisy = h + N(0, noise^2)                      (keras.layers.GaussianNoise)
        code    = activation(h_noisy @ W + b)            encoder: the layer's units, activation,
                                                         use_bias, started from its current weights
        h_hat   = code @ W' + b'                         decoder: linear, untied, Glorot uniform
        loss    = mean((h_hat - h)^2)                    on the clean h

    and its encoder weights are copied into the layer. The decoder is linear (with mean squared
    error) rather than matching the encoder's activation so that it can reconstruct real-valued
    inputs of any range (raw features, ReLU or tanh codes); only the encoder is kept.

    The last Dense layer of the chain (the output layer, e.g. a softmax classifier) is not
    pretrained unless `include_output=True`: an autoencoder through 10 softmax units learns nothing
    useful for classification, and the historical recipe trains the output layer supervised.
    Layers without weights (Flatten, Dropout, Activation, ...) between Dense layers are applied
    in inference mode. Standardize `x` first: the noise level is absolute.

    Args:
        model: a `keras.Sequential`, or a Functional model whose layers form one chain (one input,
            one output, each layer fed only by the previous one), made of Dense layers and layers
            without weights.
        x: unlabelled training inputs, shape `(n, *model_input_shape)`.
        epochs_per_layer: epochs of autoencoder training per layer, a positive int.
        noise: std of the additive Gaussian corruption of the autoencoder's input; 0 trains a
            plain (not denoising) autoencoder.
        batch_size: minibatch size for autoencoder training and for computing frozen outputs.
        learning_rate: Adam learning rate for each autoencoder.
        include_output: also pretrain the chain's last Dense layer.
        seed: int or None; seeds the corruption noise, the decoder initialization and the
            batch order, so an int makes the result reproducible.
        verbose: 0 silent, 1 one line per layer, 2 also Keras' per-epoch progress.

    Returns:
        A DataFrame with one row per pretrained layer and the columns `layer` (layer path as in
        `LayerStats`, e.g. `sequential/dense`),
        `layer_index` (0-based position among the model's Dense layers), `units`, `activation`,
        `input_dim`, `epochs`, `loss_before` (clean reconstruction MSE before training),
        `loss_first_epoch` and `loss_last_epoch` (training loss, i.e. denoising MSE averaged
        over the epoch), `loss_after` (clean reconstruction MSE after training).

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: for a model that is not a chain (naming the layer that breaks it), a model
            with no Dense layer to pretrain, an `x` that does not fit the model, or a bad
            argument value.

    Example:
        >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, "relu"),
        ...                           keras.layers.Dense(10, "softmax")])
        >>> frame = pretrain_layerwise(model, x_train, epochs_per_layer=3, noise=0.2, seed=0)

    Reference:
        Hinton & Salakhutdinov, "Reducing the Dimensionality of Data with Neural Networks",
        Science 2006. Bengio, Lamblin, Popovici & Larochelle, "Greedy Layer-Wise Training of Deep
        Networks", NIPS 2007. Vincent, Larochelle, Bengio & Manzagol, "Extracting and Composing
        Robust Features with Denoising Autoencoders", ICML 2008.
    """
    check_int("epochs_per_layer", epochs_per_layer, 1)
    check_int("batch_size", batch_size, 1)
    check_number("noise", noise, low=0, high_inclusive=False)
    check_number("learning_rate", learning_rate, low=0, low_inclusive=False, high_inclusive=False)
    x = check_model_input(model, x, "x")
    layers = _chain_layers(model)
    infos = {id(info.layer): info for info in find_layers(model)}
    dense_positions = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Dense)]
    targets = dense_positions if include_output else dense_positions[:-1]
    if not targets:
        raise ValueError(
            "Invalid value for argument `model`. "
            f"Received: a model with {len(dense_positions)} Dense layer(s) "
            f"({', '.join(layers[i].name for i in dense_positions) or 'none'}) and "
            f"include_output={include_output!r}. Expected at least one Dense layer to pretrain "
            "(the last Dense layer is pretrained only with include_output=True)."
        )

    rows = []
    inputs, done = x, 0
    for position in targets:
        # Frozen forward through everything since the previous target, in inference mode.
        inputs = _apply(layers[done:position], inputs, batch_size)
        done = position
        rows.append(
            _pretrain_dense(
                infos[id(layers[position])],
                inputs,
                index=dense_positions.index(position),
                epochs=epochs_per_layer,
                noise=noise,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=None if seed is None else seed + position,
                verbose=verbose,
            )
        )
        if verbose:
            row = rows[-1]
            print(
                f"pretrain {row['layer']}: reconstruction mse {row['loss_before']:.4g} -> "
                f"{row['loss_after']:.4g} ({epochs_per_layer} epochs, noise={noise})",
                flush=True,
            )
    return pd.DataFrame(rows, columns=PRETRAIN_COLUMNS)


def _pretrain_dense(
    info: LayerInfo,
    inputs: np.ndarray,
    index: int,
    epochs: int,
    noise: float,
    batch_size: int,
    learning_rate: float,
    seed: int | None,
    verbose: int,
) -> dict:
    """Train one denoising autoencoder on `inputs` and copy its encoder into `info.layer`."""
    layer = info.layer
    input_dim = inputs.shape[-1]
    encoder = keras.layers.Dense(
        layer.units, activation=layer.activation, use_bias=layer.use_bias, name="encoder"
    )
    decoder = keras.layers.Dense(
        input_dim,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name="decoder",
    )
    source = keras.Input(inputs.shape[1:])
    corrupted = keras.layers.GaussianNoise(noise, seed=seed)(source) if noise > 0 else source
    autoencoder = keras.Model(source, decoder(encoder(corrupted)))
    # Start from the layer's own initialization, so pretraining refines it rather than replacing it.
    encoder.set_weights(layer.get_weights())
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    loss_before = float(autoencoder.evaluate(inputs, inputs, batch_size=batch_size, verbose=0))
    # Shuffle here rather than in `fit`, whose shuffling follows the global seed, not `seed`.
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        order = rng.permutation(len(inputs))
        history += autoencoder.fit(
            inputs[order],
            inputs[order],
            initial_epoch=epoch,
            epochs=epoch + 1,
            batch_size=batch_size,
            shuffle=False,
            verbose=2 if verbose >= 2 else 0,
        ).history["loss"]
    loss_after = float(autoencoder.evaluate(inputs, inputs, batch_size=batch_size, verbose=0))
    layer.set_weights(encoder.get_weights())
    return {
        "layer": info.path,
        "layer_index": index,
        "units": layer.units,
        "activation": info.activation,
        "input_dim": input_dim,
        "epochs": epochs,
        "loss_before": loss_before,
        "loss_first_epoch": float(history[0]),
        "loss_last_epoch": float(history[-1]),
        "loss_after": loss_after,
    }


def _chain_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in order, after checking they form a chain of Dense/weightless layers."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        if not isinstance(layer, keras.layers.Dense) and layer.weights:
            raise ValueError(
                "Invalid value for argument `model`. "
                f"Received: a model whose layer '{layer.name}' ({type(layer).__name__}) has "
                "weights but is not Dense. Expected a chain of Dense layers and layers without "
                "weights (layer-wise pretraining trains one Dense layer at a time)."
            )
    if isinstance(model, keras.Sequential):
        return layers  # A Sequential model is a chain by construction.
    if len(model.inputs) != 1:
        raise ValueError(
            "Invalid value for argument `model`. "
            f"Received: a model with {len(model.inputs)} inputs. Expected a chain with one input."
        )
    previous = model.inputs[0]
    for layer in layers:
        if layer.input is not previous:
            raise ValueError(
                "Invalid value for argument `model`. "
                f"Received: a model that is not a chain at layer '{layer.name}' "
                f"({type(layer).__name__}): its input is not exactly the previous layer's output "
                "(a branch, a merge or a shared layer). Expected each layer to be fed only by the "
                "one before it."
            )
        previous = layer.output
    if len(model.outputs) != 1:
        raise ValueError(
            "Invalid value for argument `model`. "
            f"Received: a model with {len(model.outputs)} outputs. Expected a chain with one "
            "output."
        )
    return layers


def _apply(layers: list[keras.layers.Layer], x: np.ndarray, batch_size: int) -> np.ndarray:
    """Run `layers` in sequence on `x` in inference mode, batch by batch."""
    if not layers:
        return x
    outputs = []
    for start in range(0, len(x), batch_size):
        out = x[start : start + batch_size]
        for layer in layers:
            out = layer(out, training=False)
        outputs.append(keras.ops.convert_to_numpy(out))
    return np.concatenate(outputs)
