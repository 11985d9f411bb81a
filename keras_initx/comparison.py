"""The training comparison: the same small network trained once per initializer, with `LayerStats`.

`compare_training` fits `digits_mlp` (or any `model_fn`) on scikit-learn's digits (or any
`(x, y)`) once per initializer, measuring per-layer statistics with `keras_initx.LayerStats`, to
see that zeros never break symmetry and how fast each initialization learns. Initializers are
given as in `keras_initx.specs`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_initx.callbacks import LayerStats
from keras_initx.specs import InitializerLike, as_layer_argument, resolve_initializers, seeded_model
from keras_initx.validation import check_int, check_number

__all__ = ["TrainingComparison", "compare_training", "digits_mlp", "train_val_split"]

_PROBE_SIZE = 256  # training examples that LayerStats (and LSUV) measure in compare_training


@dataclass(frozen=True)
class TrainingComparison:
    """What `compare_training` returns.

    Attributes:
        history: one row per (initializer, epoch): `initializer`, `epoch` (0-based), `loss`,
            `accuracy`, `val_loss`, `val_accuracy`.
        layer_stats: the `LayerStats` frame of every run, with an `initializer` column first.
        symmetry: one row per (initializer, Dense layer) after training: `initializer`,
            `layer`, `units`, `distinct_units` (units whose incoming weights and bias differ;
            1 means every unit of the layer is a copy of the others: symmetry never broke).
    """

    history: pd.DataFrame
    layer_stats: pd.DataFrame
    symmetry: pd.DataFrame


def digits_mlp(
    kernel_initializer: Any,
    hidden: Sequence[int] = (32, 32),
    activation: str = "tanh",
    input_dim: int = 64,
    n_classes: int = 10,
) -> keras.Model:
    """The default `compare_training` network: an MLP for 8x8 digits, softmax output.

    Args:
        kernel_initializer: anything `Dense(kernel_initializer=...)` accepts; used for every
            Dense layer, the output layer included (as in the seeds' experiments).
        hidden: units of each hidden tanh layer.
        activation: hidden-layer activation.
        input_dim: input features (64 pixels).
        n_classes: output classes.

    Returns:
        An uncompiled `keras.Sequential`.
    """
    layers: list[keras.layers.Layer] = [keras.Input((input_dim,))]
    for i, units in enumerate(hidden):
        layers.append(
            keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=kernel_initializer,
                name=f"hidden_{i + 1}",
            )  # fmt: skip
        )
    layers.append(
        keras.layers.Dense(
            n_classes, activation="softmax", kernel_initializer=kernel_initializer, name="output"
        )
    )
    return keras.Sequential(layers, name="digits_mlp")


def compare_training(
    initializers: InitializerLike | Sequence[InitializerLike] | Mapping[str, InitializerLike],
    model_fn: Callable[[Any], keras.Model] | None = None,
    data: str | tuple[np.ndarray, np.ndarray] = "digits",
    epochs: int = 5,
    seed: int = 0,
    *,
    batch_size: int = 64,
    learning_rate: float = 0.05,
    every_n_steps: int = 8,
    log_dir: str | os.PathLike[str] | None = None,
    verbose: int = 0,
) -> TrainingComparison:
    """Train the same network once per initializer, with `LayerStats` attached.

    Each run calls `keras.utils.set_random_seed(seed)`, builds `model_fn(initializer)`,
    compiles it with SGD (momentum 0.9) and sparse categorical cross-entropy, and fits it on a
    fixed 80/20 split of the data, measuring per-layer statistics on 256 training examples at
    step 0 and every `every_n_steps` steps. The same seed gives the same numbers.

    Args:
        initializers: see `keras_initx.specs.resolve_initializers`.
        model_fn: `model_fn(kernel_initializer) -> keras.Model` (uncompiled, softmax output).
            It receives a Keras initializer config dict (each layer that uses it gets its own
            instance, as with a string name) or, for a plain callable entry, the callable.
            Default: `digits_mlp` (64 -> 32 tanh -> 32 tanh -> 10 softmax).
        data: `"digits"` (scikit-learn's 1797 8x8 images, standardized) or a tuple `(x, y)` of
            float features and integer labels.
        epochs: epochs per run (>= 1).
        seed: weights, data split and shuffling.
        batch_size: training batch size.
        learning_rate: SGD learning rate.
        every_n_steps: `LayerStats` measuring interval, in optimizer steps.
        log_dir: when given, each run writes `LayerStats` and `keras.callbacks.TensorBoard`
            logs to `log_dir/<label>` (label made file-system safe), so `tensorboard --logdir
            log_dir` compares the runs, and its settings (initializer label and the arguments
            above) for the HParams tab, whose metrics are the last validation loss and accuracy.
        verbose: passed to `fit`.

    Returns:
        A `TrainingComparison` (history, layer_stats, symmetry).

    Example:
        >>> result = compare_training(["zeros", "glorot_uniform"], epochs=3)
        >>> result.symmetry  # distinct_units == 1 for every layer of the zeros run
    """
    labelled = resolve_initializers(initializers)
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    check_int("every_n_steps", every_n_steps, 1)
    check_number("learning_rate", learning_rate, low=0, low_inclusive=False, high_inclusive=False)
    if model_fn is not None and not callable(model_fn):
        raise TypeError(
            f"Invalid type for argument `model_fn`. Received: model_fn={model_fn!r}. Expected a "
            "callable `model_fn(kernel_initializer) -> keras.Model`, or None for the digits MLP."
        )
    (x_train, y_train), (x_val, y_val) = train_val_split(data, seed)
    model_fn = digits_mlp if model_fn is None else model_fn
    histories, frames, symmetry = [], [], []
    for label, init in labelled.items():
        model = seeded_model(
            init, lambda i: model_fn(as_layer_argument(i)), x_train[:_PROBE_SIZE], seed
        )
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        run_dir = None if log_dir is None else os.path.join(os.fspath(log_dir), _safe(label))
        if run_dir is not None:
            settings = {"initializer": label, "epochs": epochs, "seed": seed}
            settings |= {"batch_size": batch_size, "learning_rate": learning_rate}
            _log_hparams(run_dir, settings | {"every_n_steps": every_n_steps})
        probe = (x_train[:_PROBE_SIZE], y_train[:_PROBE_SIZE])
        layer_stats = LayerStats(probe=probe, log_dir=run_dir, every_n_steps=every_n_steps)
        callbacks: list[keras.callbacks.Callback] = [layer_stats]
        if run_dir is not None:
            callbacks.append(keras.callbacks.TensorBoard(run_dir))
        fit = model.fit(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=epochs,
            batch_size=batch_size,
            callbacks=callbacks,
            verbose=verbose,
        )
        history = pd.DataFrame(fit.history)
        history.insert(0, "epoch", range(len(history)))
        history.insert(0, "initializer", label)
        histories.append(history)
        frame = layer_stats.to_dataframe()
        frame.insert(0, "initializer", label)
        frames.append(frame)
        symmetry += _distinct_units(label, model)
    return TrainingComparison(
        history=pd.concat(histories, ignore_index=True),
        layer_stats=pd.concat(frames, ignore_index=True),
        symmetry=pd.DataFrame(symmetry),
    )


def _log_hparams(run_dir: str, hparams: dict[str, Any]) -> None:
    """A run's settings for TensorBoard's HParams tab, in the run `run_dir` itself.

    The metrics are the `epoch_loss`/`epoch_accuracy` scalars that `keras.callbacks.TensorBoard`
    writes in `run_dir/validation` (the tab shows their last value). Every run writes the same
    experiment config (the plugin reads the first it finds), so runs can be added to a log dir
    one at a time, as the demo does.
    """
    from tensorboard.plugins.hparams import api as hp

    metrics = [
        hp.Metric("epoch_accuracy", group="validation", display_name="val accuracy"),
        hp.Metric("epoch_loss", group="validation", display_name="val loss"),
    ]
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in hparams], metrics=metrics)
        hp.hparams(hparams, trial_id=os.path.basename(run_dir))
    writer.close()


def train_val_split(
    data: str | tuple[np.ndarray, np.ndarray], seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A standardized, seeded 80/20 train/validation split, as `compare_training` trains on.

    Args:
        data: `"digits"` (scikit-learn's 8x8 images) or a tuple `(x, y)` of arrays.
        seed: seeds the split.

    Returns:
        `((x_train, y_train), (x_val, y_val))`, x flattened to float32 rows, each feature
        standardized over all examples.

    Raises:
        ValueError: an unknown data name, mismatched lengths, fewer than 5 examples, or
            non-finite x.
        TypeError: `data` neither a name nor a pair.
    """
    if isinstance(data, str):
        if data != "digits":
            raise ValueError(
                f"Invalid value for argument `data`. Received: data={data!r}. "
                "Expected 'digits' or a tuple (x, y)."
            )
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = data
    else:
        raise TypeError(
            f"Invalid type for argument `data`. Received: data of type {type(data).__name__}. "
            "Expected 'digits' or a tuple (x, y) of arrays."
        )
    x = np.asarray(x, dtype="float32").reshape(len(x), -1)
    y = np.asarray(y)
    if len(x) != len(y) or len(x) < 5 or not np.isfinite(x).all():
        raise ValueError(
            f"Invalid value for argument `data`. Received: x of shape {x.shape}, y of shape "
            f"{y.shape}. Expected as many labels as examples, at least 5 examples (an 80/20 "
            "split), and finite x."
        )
    # Constant pixels (the digits' borders) have std 0: leave them at 0 instead of dividing.
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    train, val = order[:cut], order[cut:]
    return (x[train], y[train]), (x[val], y[val])


def _distinct_units(label: str, model: keras.Model) -> list[dict[str, Any]]:
    rows = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Dense):
            continue
        weights = np.asarray(layer.kernel)
        if layer.use_bias:
            weights = np.vstack([weights, np.asarray(layer.bias)[None, :]])
        # Units that got bit-for-bit the same updates can still differ in the last float bits
        # (vectorized kernels); compare at 1e-5 of the largest weight.
        scale = float(np.abs(weights).max()) or 1.0
        distinct = np.unique(np.round(weights.T / scale, 5), axis=0)
        rows.append(
            {
                "initializer": label,
                "layer": layer.name,
                "units": weights.shape[1],
                "distinct_units": len(distinct),
            }
        )
    return rows


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_") or "run"
