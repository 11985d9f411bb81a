"""The seed documents' experiments as one call each.

- `depth_sweep`: the depth experiment of seed 001 (10 tanh layers of 500 units, 1000 standard-normal
  inputs; per-layer mean/std and histograms of the activations) and of Glorot & Bengio (2010) (the
  std of the back-propagated gradient per layer), for any list of initializers, on a real Keras
  model per initializer.
- `compare_training`: the same small network trained once per initializer on scikit-learn's digits
  with `LayerStats` attached, to see that zeros never break symmetry and how fast each one learns.

Initializers are given as names (`"glorot_uniform"`, `"lecun_1_over_sqrt_d"`), as spec strings
with keyword arguments for built-ins (`"random_normal(stddev=0.01)"`), as instances, or as a dict
label -> any of those. The seed's three initializations need no code:

- `0.01 * randn`: `random_normal(stddev=0.01)`
- `1.0 * randn`: `random_normal(stddev=1.0)`
- `randn / sqrt(fan_in)`:
  `variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')`
"""

from __future__ import annotations

import ast
import inspect
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_initx import stats
from keras_initx.callbacks import LayerStats
from keras_initx.initializers import list_initializers
from keras_initx.lsuv import lsuv
from keras_initx.validation import check_int, check_number
from keras_initx.width import width_sweep as width_sweep  # re-exported: the width check

__all__ = [
    "SEED_001_INITIALIZERS",
    "TrainingComparison",
    "compare_training",
    "depth_sweep",
    "digits_mlp",
    "known_activations",
    "known_initializers",
    "parse_initializer",
    "resolve_initializers",
    "sweep_table",
]

InitializerLike = str | Mapping[str, Any] | keras.initializers.Initializer | Callable[..., Any]

# Seed 001's three initializations, labelled as the tutorial names them.
SEED_001_INITIALIZERS: dict[str, str] = {
    "small random (0.01*randn)": "random_normal(stddev=0.01)",
    "large random (1.0*randn)": "random_normal(stddev=1.0)",
    "xavier (randn/sqrt(fan_in))": (
        "variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')"
    ),
}

_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_>.]*)\s*(?:\((?P<args>.*)\))?\s*$", re.S)

_KERAS_HELPERS = frozenset({"get", "serialize", "deserialize"})

# Spec name of the data-driven entry: build with `_LSUV_BASE`, then `keras_initx.lsuv` on the data.
_LSUV = "lsuv"
_LSUV_BASE = "glorot_uniform"

_PROBE_SIZE = 256  # training examples that LayerStats (and LSUV) measure in compare_training

_SWEEP_STATS = ("mean", "std", "frac_saturated", "frac_dead_units", "nan_count", "inf_count")


def known_initializers() -> list[str]:
    """Sorted snake-case names accepted in spec strings: Keras' built-ins, keras_initx's, and
    `lsuv` (a data-driven entry, see `depth_sweep`)."""
    builtins = {
        name
        for name in dir(keras.initializers)
        if name[0].islower() and name not in _KERAS_HELPERS
    }
    return sorted(builtins | set(list_initializers(data_driven=False)) | {_LSUV})


def known_activations() -> list[str]:
    """Sorted Keras activation names that `depth_sweep` accepts."""
    return sorted(
        name
        for name in dir(keras.activations)
        if not name.startswith("_") and name not in _KERAS_HELPERS
    )


def parse_initializer(spec: str) -> keras.initializers.Initializer:
    """A fresh initializer from a name or a spec string `name(keyword=literal, ...)`.

    Keyword values are read with `ast.literal_eval` (numbers, strings, tuples, None, True/False),
    never evaluated as code.

    Args:
        spec: e.g. `"glorot_uniform"`, `"random_normal(stddev=0.01)"`,
            `"variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')"`,
            `"orthogonal_gain(gain='tanh')"`.

    Returns:
        A new initializer instance (unseeded unless the spec passes `seed=`).

    Raises:
        ValueError: malformed spec, positional or non-literal arguments, an unknown name (the
            message lists the known ones) or arguments the initializer does not take.

    Example:
        >>> parse_initializer("random_normal(stddev=0.01)").stddev
        0.01
    """
    if not isinstance(spec, str):
        raise TypeError(
            "Invalid type for argument `spec`. "
            f"Received: spec={spec!r} of type {type(spec).__name__}. Expected a string."
        )
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(_spec_error(spec, "Expected `name` or `name(keyword=value, ...)`."))
    name = match["name"]
    kwargs = _parse_kwargs(spec, match["args"] or "")
    cls = _initializer_class(name)
    if cls is None:
        known = ", ".join(known_initializers())
        unknown = f"Unknown initializer {name!r}; known: {known}."
        raise ValueError(_spec_error(spec, unknown))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        rejected = f"{cls.__name__} rejected the arguments: {error}"
        raise ValueError(_spec_error(spec, rejected)) from None


def resolve_initializers(
    initializers: InitializerLike | Sequence[InitializerLike] | Mapping[str, InitializerLike],
) -> dict[str, InitializerLike]:
    """Label each initializer and check that it resolves, before any model is built.

    Args:
        initializers: one initializer, a sequence of them, or a dict label -> initializer. Each is
            a name or spec string (`parse_initializer`), a Keras config dict, an `Initializer`
            instance or a callable `(shape, dtype=None) -> tensor`. The spec `"lsuv"` or
            `"lsuv(target_std=1.0, tol=0.1, ...)"` (keyword arguments of `keras_initx.lsuv`)
            is data-driven: the model is built with `glorot_uniform`, then LSUV runs on the
            experiment's own inputs (orthogonal re-draw and per-layer rescaling).

    Returns:
        A dict label -> initializer, in the given order. A string is its own label, an instance
        is labelled `ClassName(arg=value, ...)` from its config (seed left out).

    Raises:
        ValueError: an unknown name or bad arguments (see `parse_initializer`), no initializers,
            or two initializers with the same label.
    """
    if isinstance(initializers, Mapping) and not _is_config(initializers):
        items = list(initializers.items())
    elif isinstance(initializers, (str, keras.initializers.Initializer)) or _is_config(
        initializers
    ):
        items = [(_label(initializers), initializers)]
    elif isinstance(initializers, Sequence):
        items = [(_label(init), init) for init in initializers]
    else:
        raise TypeError(
            "Invalid type for argument `initializers`. "
            f"Received: initializers of type {type(initializers).__name__}. Expected a name, an "
            "initializer, a list of them or a dict label -> initializer."
        )
    if not items:
        raise ValueError(
            "Invalid value for argument `initializers`. Received: an empty collection. "
            "Expected at least one initializer."
        )
    resolved: dict[str, InitializerLike] = {}
    for label, init in items:
        if not isinstance(label, str):
            raise TypeError(
                "Invalid type for argument `initializers`. "
                f"Received: a label {label!r} of type {type(label).__name__}. Expected str labels."
            )
        if label in resolved:
            raise ValueError(
                "Invalid value for argument `initializers`. "
                f"Received: the label {label!r} twice. Expected unique labels: pass a dict "
                "label -> initializer."
            )
        if _lsuv_kwargs(init) is None:
            _instance(init, layer_index=0)  # fail now on a bad spec, not after building models
        resolved[label] = init
    return resolved


@overload
def depth_sweep(
    initializers: Any,
    depth: int = ...,
    width: int = ...,
    activation: str = ...,
    n_samples: int = ...,
    input_dim: int | None = ...,
    seed: int = ...,
    gradients: bool = ...,
    *,
    use_bias: bool = ...,
    histograms: Literal[False] = ...,
    bins: int = ...,
) -> pd.DataFrame: ...


@overload
def depth_sweep(
    initializers: Any,
    depth: int = ...,
    width: int = ...,
    activation: str = ...,
    n_samples: int = ...,
    input_dim: int | None = ...,
    seed: int = ...,
    gradients: bool = ...,
    *,
    use_bias: bool = ...,
    histograms: Literal[True],
    bins: int = ...,
) -> tuple[pd.DataFrame, pd.DataFrame]: ...


def depth_sweep(
    initializers: InitializerLike | Sequence[InitializerLike] | Mapping[str, InitializerLike],
    depth: int = 10,
    width: int = 500,
    activation: str = "tanh",
    n_samples: int = 1000,
    input_dim: int | None = None,
    seed: int = 0,
    gradients: bool = True,
    *,
    use_bias: bool = False,
    histograms: bool = False,
    bins: int = 30,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Per-layer activation and gradient statistics of a deep Dense stack at initialization.

    For each initializer, builds a Keras model of `depth` blocks `Dense(width, use_bias) ->
    Activation(activation)` (each Dense gets its own draw of the initializer), feeds it
    `n_samples` standard-normal inputs of size `input_dim`, and measures every layer's output.
    With `gradients=True` it also back-propagates, as Glorot & Bengio (2010), a loss
    `L = sum(a_depth * R)` with `R` a fixed standard-normal matrix: the backward pass starts with
    unit-variance gradients at the last layer, the mirror image of the unit-variance inputs, so
    `gradient_std` shows how the backward signal grows or fades on its own way to the input.
    Each initializer's model is built after `keras.utils.set_random_seed(seed)`, so its numbers
    do not depend on the other entries.

    Args:
        initializers: see `resolve_initializers`.
        depth: number of Dense + activation blocks (>= 1).
        width: units per Dense layer (>= 1).
        activation: a Keras activation name (`known_activations()`), e.g. tanh, sigmoid, relu,
            linear, selu.
        n_samples: number of input rows (>= 2).
        input_dim: input size; `None` means `width` (seed 001 uses 500 inputs for 500 units).
        seed: seeds the inputs, `R` and the weights.
        gradients: also run the backward pass.
        use_bias: give the Dense layers a (zero-initialized) bias.
        histograms: also return activation histograms (see Returns).
        bins: histogram bins. Bounded activations use their range (tanh: [-1, 1], as the seed
            001 figure), others each layer's [min, max].

    Returns:
        A DataFrame, one row per (initializer, layer), in the given order, with columns
        `initializer`, `layer` (1-based depth), `activation`, `activation_mean`, `activation_std`,
        `preactivation_std`, `frac_saturated` (|tanh| > 0.99, sigmoid outside [0.01, 0.99]; NaN
        for unbounded activations), `frac_dead_units` (units that output 0 for every input),
        `nan_count`, `inf_count` (of the activations) and, with `gradients=True`, `gradient_std`
        (dL/d activation), `preactivation_grad_std` (dL/d preactivation, G&B's dCost/ds),
        `gradient_nan_count`, `gradient_inf_count`. Statistics are population (ddof=0) values
        over all samples and units, computed by `keras_initx.stats` as `LayerStats` does.
        With `histograms=True`, `(frame, histograms)` where `histograms` has one row per
        (initializer, layer, bin): `initializer`, `layer`, `bin_left`, `bin_right`, `count`.

    Example:
        >>> frame = depth_sweep(SEED_001_INITIALIZERS)  # seed 001's three tables in one frame
        >>> frame.pivot(index="layer", columns="initializer", values="activation_std")
    """
    labelled = resolve_initializers(initializers)
    for name, value, low in (
        ("depth", depth, 1),
        ("width", width, 1),
        ("n_samples", n_samples, 2),
        ("bins", bins, 1),
    ):
        check_int(name, value, low)
    if input_dim is not None:
        check_int("input_dim", input_dim, 1)
    _check_activation(activation)
    input_dim = width if input_dim is None else input_dim

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, input_dim)).astype("float32")
    backward_seed = rng.standard_normal((n_samples, width)).astype("float32")
    rows, hist_rows = [], []
    for label, init in labelled.items():
        keras.utils.set_random_seed(seed)
        lsuv_kwargs = _lsuv_kwargs(init)
        base = init if lsuv_kwargs is None else _LSUV_BASE
        model = _dense_stack(base, depth, width, activation, input_dim, use_bias)
        if lsuv_kwargs is not None:
            lsuv(model, x, **{"seed": seed, **lsuv_kwargs})
        with tf.GradientTape() as tape:
            outputs = model(x)
            loss = tf.reduce_sum(outputs[-1] * backward_seed)
        grads = tape.gradient(loss, outputs) if gradients else []
        # One reduction over every tensor: [z1, a1, ..., zD, aD, dz1, da1, ..., dzD, daD];
        # only the activations a_i have units and bounds.
        tensors = [*outputs, *grads]
        is_activation = [k < 2 * depth and k % 2 == 1 for k in range(len(tensors))]
        values = _reduce(tensors, activation, is_activation)
        for i in range(depth):
            act, pre = values[2 * i + 1], values[2 * i]
            row = {
                "initializer": label,
                "layer": i + 1,
                "activation": activation,
                "activation_mean": act["mean"],
                "activation_std": act["std"],
                "preactivation_std": pre["std"],
                "frac_saturated": act["frac_saturated"],
                "frac_dead_units": act["frac_dead_units"],
                "nan_count": act["nan_count"],
                "inf_count": act["inf_count"],
            }
            if gradients:
                grad, pre_grad = values[2 * depth + 2 * i + 1], values[2 * depth + 2 * i]
                row["gradient_std"] = grad["std"]
                row["preactivation_grad_std"] = pre_grad["std"]
                row["gradient_nan_count"] = grad["nan_count"]
                row["gradient_inf_count"] = grad["inf_count"]
            if histograms:
                layer_activations = outputs[2 * i + 1]
                hist_rows += _histogram_rows(label, i + 1, layer_activations, activation, bins)
            rows.append(row)
    frame = pd.DataFrame(rows)
    if not histograms:
        return frame
    return frame, pd.DataFrame(hist_rows)


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
                units, activation=activation, kernel_initializer=kernel_initializer,
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
        initializers: as for `depth_sweep`.
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
    (x_train, y_train), (x_val, y_val) = _load(data, seed)
    model_fn = digits_mlp if model_fn is None else model_fn
    histories, frames, symmetry = [], [], []
    for label, init in labelled.items():
        keras.utils.set_random_seed(seed)
        lsuv_kwargs = _lsuv_kwargs(init)
        model = model_fn(_as_layer_argument(init if lsuv_kwargs is None else _LSUV_BASE))
        if lsuv_kwargs is not None:
            lsuv(model, x_train[:_PROBE_SIZE], **{"seed": seed, **lsuv_kwargs})
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


def _load(
    data: str | tuple[np.ndarray, np.ndarray], seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A standardized, seeded 80/20 train/validation split."""
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


def _as_layer_argument(init: InitializerLike) -> Any:
    """What a `Dense(kernel_initializer=...)` accepts and re-instantiates per layer: a config."""
    instance = _instance(init, layer_index=0)
    if isinstance(instance, keras.initializers.Initializer):
        return keras.initializers.serialize(instance)
    return instance


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


def sweep_table(frame: pd.DataFrame, value: str = "activation_std") -> pd.DataFrame:
    """One `depth_sweep` column as the seed's table: layers down, initializers across (in the
    frame's order, not sorted).

    Example:
        >>> sweep_table(depth_sweep(SEED_001_INITIALIZERS), "activation_std")
    """
    table = frame.pivot(index="layer", columns="initializer", values=value)
    return table[list(frame["initializer"].unique())]


def _dense_stack(
    init: InitializerLike,
    depth: int,
    width: int,
    activation: str,
    input_dim: int,
    use_bias: bool,
) -> keras.Model:
    """`depth` x (Dense -> Activation), outputting every pre-activation and activation."""
    inputs = keras.Input((input_dim,), name="inputs")
    x, outputs = inputs, []
    for i in range(depth):
        pre = keras.layers.Dense(
            width,
            use_bias=use_bias,
            kernel_initializer=_instance(init, layer_index=i),
            name=f"dense_{i + 1}",
        )(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{i + 1}")(pre)
        outputs += [pre, x]
    return keras.Model(inputs, outputs, name="depth_sweep")


def _reduce(
    tensors: Sequence[tf.Tensor], activation: str, is_activation: Sequence[bool]
) -> list[dict[str, float]]:
    """`_SWEEP_STATS` of each tensor with `keras_initx.stats`, the reductions `LayerStats` uses,
    so a sweep and a callback measure `frac_saturated` and `frac_dead_units` alike."""
    bounds = stats.ACTIVATION_BOUNDS.get(activation)
    values, _ = stats.reduce_tensors(
        tensors,
        _SWEEP_STATS,
        bounds=[bounds if flag else None for flag in is_activation],
        units=list(is_activation),
    )
    return [
        dict(zip(_SWEEP_STATS, row, strict=True))
        for row in values.numpy().astype(float).tolist()
    ]


def _histogram_rows(
    label: str, layer: int, act: tf.Tensor, activation: str, bins: int
) -> list[dict[str, Any]]:
    values = act.numpy().ravel()
    values = values[np.isfinite(values)]
    if activation in stats.ACTIVATION_BOUNDS:
        low, high = stats.ACTIVATION_BOUNDS[activation]
    elif values.size:
        low, high = float(values.min()), float(values.max())
    else:
        low, high = 0.0, 1.0
    if high <= low:
        low, high = low - 0.5, low + 0.5  # a constant layer (zeros init) still gets one bar
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return [
        {
            "initializer": label,
            "layer": layer,
            "bin_left": float(edges[k]),
            "bin_right": float(edges[k + 1]),
            "count": int(counts[k]),
        }
        for k in range(bins)
    ]


def _instance(init: InitializerLike, layer_index: int) -> Any:
    """A fresh initializer for one layer.

    Keras' random initializers return the same values on every call when seeded with an int or
    unseeded (the default seed is drawn once, at construction), so sharing one instance across
    layers would give every layer the same kernel. Each layer therefore gets its own instance; an
    explicit int seed is offset by the layer index, a `SeedGenerator` is shared (it advances).
    """
    if isinstance(init, str):
        return parse_initializer(init)
    if _is_config(init):
        try:
            init = keras.initializers.get(dict(init))
        except (TypeError, ValueError) as error:
            raise ValueError(
                "Invalid value for argument `initializers`. "
                f"Received: {dict(init)!r}. Expected a Keras initializer config: {error}"
            ) from None
    if isinstance(init, keras.initializers.Initializer):
        seed = getattr(init, "seed", None)
        if isinstance(seed, keras.random.SeedGenerator):
            return init
        config = init.get_config()
        if isinstance(config.get("seed"), int):
            config["seed"] += layer_index
        return type(init).from_config(config)
    if callable(init):
        return init
    raise TypeError(
        "Invalid type for argument `initializers`. "
        f"Received: {init!r} of type {type(init).__name__}. Expected a name or spec string, a "
        "config dict, a keras.initializers.Initializer or a callable (shape, dtype=None)."
    )


def _label(init: InitializerLike) -> str:
    if isinstance(init, str):
        return init.strip()
    if _is_config(init):
        return str(init["class_name"])
    if isinstance(init, keras.initializers.Initializer):
        config = {k: v for k, v in init.get_config().items() if k != "seed"}
        arguments = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(init).__name__}({arguments})"
    return getattr(init, "__name__", type(init).__name__)


def _initializer_class(name: str) -> type | None:
    """The class behind a Keras built-in name (`random_normal`, `RandomNormal`) or a registered
    custom name (`lecun_1_over_sqrt_d`), found without instantiating it: Keras' own
    `initializers.get("constant")` fails (its `from_config` requires `value`)."""
    builtin = getattr(keras.initializers, name, None)
    for candidate in (builtin, keras.saving.get_custom_objects().get(name)):
        if isinstance(candidate, type) and issubclass(candidate, keras.initializers.Initializer):
            return candidate
    return None


def _lsuv_kwargs(init: InitializerLike) -> dict[str, Any] | None:
    """Keyword arguments for `keras_initx.lsuv` when `init` is an `lsuv(...)` spec, else None."""
    if not isinstance(init, str):
        return None
    match = _SPEC.match(init)
    if match is None or match["name"] != _LSUV:
        return None
    kwargs = _parse_kwargs(init, match["args"] or "")
    try:
        inspect.signature(lsuv).bind(None, None, **kwargs)
    except TypeError as error:
        raise ValueError(_spec_error(init, f"lsuv rejected the arguments: {error}")) from None
    return kwargs


def _is_config(value: object) -> bool:
    return isinstance(value, Mapping) and "class_name" in value


def _parse_kwargs(spec: str, args: str) -> dict[str, Any]:
    if not args.strip():
        return {}
    try:
        call = ast.parse(f"f({args})", mode="eval").body
    except SyntaxError:
        raise ValueError(_spec_error(spec, "Its arguments are not valid Python syntax.")) from None
    if not isinstance(call, ast.Call) or call.args:
        raise ValueError(_spec_error(spec, "Arguments must be given as keyword=value."))
    kwargs = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError(_spec_error(spec, "`**` is not allowed; use keyword=value."))
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ValueError(
                _spec_error(
                    spec,
                    f"The value of {keyword.arg!r} must be a literal (number, string, tuple, "
                    "None, True, False).",
                )
            ) from None
    return kwargs


def _spec_error(spec: str, expected: str) -> str:
    return f"Invalid value for argument `initializers`. Received: {spec!r}. {expected}"


def _check_activation(activation: str) -> None:
    if not isinstance(activation, str) or activation not in known_activations():
        raise ValueError(
            f"Invalid value for argument `activation`. Received: activation={activation!r}. "
            f"Expected one of: {', '.join(known_activations())}."
        )
