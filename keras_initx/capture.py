"""Capture: ONE compiled forward (+ backward) pass that returns per-layer statistics.

`build_probe(model, ...)` returns a `Probe`: a callable around a single `tf.function`, traced
once, that runs the model on a probe batch, records the tensors of the selected layers, reduces
each of them with `keras_initx.stats` on the device and returns only the small results. It is the
engine of `keras_initx.callbacks.LayerStats` and the public entry point for other tools that need
per-layer statistics (LSUV, experiments).

How the tensors are recorded without changing the model: during the single trace only, each
selected layer's `call` is wrapped (an instance attribute) to record its output, and its
`activation` to record its input (the pre-activation); both are restored in a `finally` right
after tracing, so the traced graph holds the recording and the model does not. Keras traces its
own train function later, on the first training step, when the wrappers are long gone. Gradients
are `tf.GradientTape` gradients of the model's compiled loss with respect to the recorded
tensors and the layers' kernels and biases; nothing is applied, and any state the pass touches
(compiled-loss metrics, and with `training=True` BatchNormalization moving statistics and dropout
seeds) is restored inside the same function.

Limits: a layer called several times (shared layers) reports its first call; a layer returning
several tensors reports the first one; nested models are walked (paths such as
`outer/inner/dense`), other composite layers count as one layer.

Example (LSUV-style: forward only, one statistic):
    >>> probe = build_probe(model, tensors=["preactivation"], stats=["std"])
    >>> result = probe(x_batch)                 # no y needed: no gradient requested
    >>> for info in probe.layers:               # depth order
    ...     if "preactivation" in info.tensors:
    ...         std = result.get(info.path, "preactivation", "std")
    ...         info.layer.kernel.assign(info.layer.kernel / std)
    ...         result = probe(x_batch)         # same compiled function, new weights
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_initx.stats import ACTIVATION_BOUNDS, DEFAULT_BINS, STAT_NAMES, reduce_tensors
from keras_initx.validation import check_int, check_number

__all__ = [
    "GRADIENT_TENSORS",
    "TENSORS",
    "LayerInfo",
    "Probe",
    "ProbeResult",
    "build_probe",
    "check_arguments",
    "find_layers",
    "input_mismatch",
]

TENSORS: tuple[str, ...] = (
    "activation",
    "preactivation",
    "activation_grad",
    "preactivation_grad",
    "kernel",
    "kernel_grad",
    "bias_grad",
)
GRADIENT_TENSORS: frozenset[str] = frozenset(
    {"activation_grad", "preactivation_grad", "kernel_grad", "bias_grad"}
)

# Standalone activation layers without an `activation` attribute.
_ACTIVATION_LAYERS: dict[type, str] = {
    keras.layers.ReLU: "relu",
    keras.layers.LeakyReLU: "leaky_relu",
    keras.layers.ELU: "elu",
    keras.layers.Softmax: "softmax",
    keras.layers.PReLU: "prelu",
}


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """A selected layer.

    Attributes:
        path: unique path, the model names joined by "/", e.g. `functional/sequential/dense`.
        index: depth order among the selected layers, 0-based.
        layer: the Keras layer object.
        layer_class: its class name, e.g. `Dense`.
        activation: the layer's own activation name (`tanh`, `linear`, ...), "" when none.
        tensors: the names from `TENSORS` this layer provides (all of them, before any
            `tensors=` selection): `preactivation*` only with a non-linear `activation`
            attribute, `kernel*` only with a `kernel`, `bias_grad` only with a `bias`.
    """

    path: str
    index: int
    layer: keras.layers.Layer
    layer_class: str
    activation: str
    tensors: tuple[str, ...]


def _activation_name(layer: keras.layers.Layer) -> str:
    fn = getattr(layer, "activation", None)
    if callable(fn):
        return getattr(fn, "__name__", type(fn).__name__)
    for cls, name in _ACTIVATION_LAYERS.items():
        if isinstance(layer, cls):
            return name
    return ""


def _has_preactivation(layer: keras.layers.Layer) -> bool:
    fn = getattr(layer, "activation", None)
    return callable(fn) and _activation_name(layer) != "linear"


def _provided_tensors(layer: keras.layers.Layer) -> tuple[str, ...]:
    provided = {"activation", "activation_grad"}
    if _has_preactivation(layer):
        provided |= {"preactivation", "preactivation_grad"}
    if isinstance(getattr(layer, "kernel", None), keras.Variable):
        provided |= {"kernel", "kernel_grad"}
    if isinstance(getattr(layer, "bias", None), keras.Variable):
        provided.add("bias_grad")
    return tuple(t for t in TENSORS if t in provided)


def _leaf_layers(model: keras.Model, prefix: str) -> list[tuple[str, keras.layers.Layer]]:
    leaves = []
    for layer in model.layers:
        path = f"{prefix}/{layer.name}"
        if isinstance(layer, keras.Model):
            leaves.extend(_leaf_layers(layer, path))
        elif not isinstance(layer, keras.layers.InputLayer):
            leaves.append((path, layer))
    return leaves


def _class_names(layer_classes: Sequence[str | type]) -> set[str]:
    return {c if isinstance(c, str) else c.__name__ for c in layer_classes}


def find_layers(
    model: keras.Model,
    layers: str | None = None,
    layer_classes: Sequence[str | type] | None = None,
) -> list[LayerInfo]:
    """The layers a probe measures, in depth order.

    By default every layer with weights or an activation (Dense, Conv*, BatchNormalization,
    Activation, ReLU, ...); `Dropout`, `Flatten` and the like are left out. Nested models are
    walked and never listed themselves.

    Args:
        model: a built Keras model.
        layers: optional regular expression, kept where `re.search` matches the layer path.
        layer_classes: optional class names or classes, kept where the class name matches
            (subclasses do not match by name: pass the class itself for that).

    Returns:
        One `LayerInfo` per layer, `index` counting the kept layers only.

    Raises:
        ValueError: the model is not built, or the filters match no layer.
    """
    if not model.built:
        raise ValueError(
            f"Invalid value for argument `model`. Received: model={model.name!r}, not built. "
            "Expected a built model: give it an `Input` or call it once on a batch."
        )
    candidates = [
        (path, layer)
        for path, layer in _leaf_layers(model, model.name)
        if layer.weights or _activation_name(layer)
    ]
    kept = candidates
    if layers is not None:
        pattern = re.compile(layers)
        kept = [(p, la) for p, la in kept if pattern.search(p)]
    if layer_classes is not None:
        names = _class_names(layer_classes)
        types = tuple(c for c in layer_classes if isinstance(c, type))
        kept = [
            (p, la)
            for p, la in kept
            if type(la).__name__ in names or (types and isinstance(la, types))
        ]
    if not kept:
        raise ValueError(
            "Invalid value for arguments `layers`/`layer_classes`. "
            f"Received: layers={layers!r}, layer_classes={layer_classes!r}, which match no "
            f"layer. Expected a filter matching at least one of the layer paths "
            f"{sorted(p for p, _ in candidates)} or classes "
            f"{sorted({type(la).__name__ for _, la in candidates})}."
        )
    return [
        LayerInfo(
            path=path,
            index=i,
            layer=layer,
            layer_class=type(layer).__name__,
            activation=_activation_name(layer),
            tensors=_provided_tensors(layer),
        )
        for i, (path, layer) in enumerate(kept)
    ]


@dataclasses.dataclass
class ProbeResult:
    """The host-side results of one probe call.

    Attributes:
        rows: `(LayerInfo, tensor name)` of each row, layers in depth order, tensors in
            `TENSORS` order.
        stats: the statistic names, one per column of `values`.
        values: float64 `[len(rows), len(stats)]`.
        histograms: float64 `[len(rows), bins + 2]` = `[min, max, counts...]` per row (counts
            over `bins` equal bins of [min, max]), or None when not requested.
    """

    rows: list[tuple[LayerInfo, str]]
    stats: tuple[str, ...]
    values: np.ndarray
    histograms: np.ndarray | None

    def get(self, path: str, tensor: str, stat: str) -> float:
        """One value, by layer path, tensor name and statistic name."""
        return self.as_dict()[path][tensor][stat]

    def as_dict(self) -> dict[str, dict[str, dict[str, float]]]:
        """`{layer path: {tensor: {statistic: value}}}`."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for (info, tensor), row in zip(self.rows, self.values, strict=True):
            out.setdefault(info.path, {})[tensor] = dict(
                zip(self.stats, map(float, row), strict=True)
            )
        return out


def _validated_names(value: Sequence[str] | None, argument: str, allowed: Sequence[str]):
    if value is None:
        return tuple(allowed)
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(
            f"Invalid type for argument `{argument}`. Received: {argument}={value!r}. "
            f"Expected a list of names from {sorted(allowed)}."
        )
    unknown = sorted(set(value) - set(allowed))
    if unknown or not value:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Received: {argument}={list(value)!r} "
            f"(unknown: {unknown}). Expected a non-empty list of names from {sorted(allowed)}."
        )
    return tuple(v for v in allowed if v in value)


def _shape_of(value: Any) -> tuple:
    return tuple(value.shape) if isinstance(value, tf.Tensor) else tuple(np.shape(value))


def input_mismatch(model: keras.Model, x: Any) -> tuple[Any, Any] | None:
    """`(received, expected)` shapes when batch `x` does not fit the model's declared inputs.

    `x` is one array, a list/tuple of arrays, or a dict keyed by input name (its keys must already
    be the input names). A `None` dimension of an input accepts any size. Single-input shapes
    are tuples, several inputs give lists of tuples.

    Returns:
        None when `x` fits, or when the model declares no inputs yet (a subclassed model never
        called: its first call will tell).
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    expected = [tuple(i.shape) for i in inputs]
    if isinstance(x, dict):
        received = [_shape_of(x[i.name]) for i in inputs]
    else:
        received = [_shape_of(v) for v in (x if isinstance(x, list | tuple) else [x])]
    fits = len(received) == len(expected) and all(
        len(r) == len(e) and all(d is None or d == s for d, s in zip(e, r, strict=True))
        for r, e in zip(received, expected, strict=True)
    )
    if fits:
        return None
    return (
        received[0] if len(received) == 1 else received,
        expected[0] if len(expected) == 1 else expected,
    )


def check_arguments(
    tensors: Sequence[str] | None = None,
    stats: Sequence[str] | None = None,
    saturation_threshold: float = 0.99,
    histogram_bins: int = DEFAULT_BINS,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate the model-independent arguments of `build_probe`.

    Returns:
        `(tensors, stats)` as tuples in `TENSORS` / `STAT_NAMES` order (all when None).

    Raises:
        TypeError: names not given as a list of strings, a non-number `saturation_threshold`
            or a non-int `histogram_bins`.
        ValueError: unknown or no names, a threshold outside (0, 1), `histogram_bins < 2`.
    """
    tensors = _validated_names(tensors, "tensors", TENSORS)
    stats = _validated_names(stats, "stats", STAT_NAMES)
    check_number(
        "saturation_threshold",
        saturation_threshold,
        low=0,
        high=1,
        low_inclusive=False,
        high_inclusive=False,
    )
    check_int("histogram_bins", histogram_bins, 2)
    return tensors, stats


class Probe:
    """A compiled function measuring the selected layers of a model on one batch.

    Build it with `build_probe`. The underlying `tf.function` is traced once per input shape
    (static shapes let the statistics subsample without dynamic-shape ops), on the first call
    with that shape; weight changes (training, LSUV rescaling) are seen without retracing.
    `trace_count` counts traces.

    Attributes:
        model: the model.
        layers: the selected `LayerInfo`s, depth order.
        tensors: requested tensor names (`TENSORS` order).
        stats: requested statistic names (`STAT_NAMES` order).
        rows: `(LayerInfo, tensor)` per result row.
        needs_labels: whether a call needs `y` (gradient tensors requested).
        trace_count: number of times the function was traced.
    """

    def __init__(
        self,
        model: keras.Model,
        layers: list[LayerInfo],
        tensors: tuple[str, ...],
        stats: tuple[str, ...],
        *,
        training: bool,
        loss: Callable[[Any, Any], Any] | None,
        saturation_threshold: float,
        histogram_bins: int,
        histograms: bool,
    ) -> None:
        self.model = model
        self.layers = layers
        self.tensors = tensors
        self.stats = stats
        self.training = training
        self.loss = loss
        self.saturation_threshold = saturation_threshold
        self.histogram_bins = histogram_bins
        self.histograms = histograms
        self.rows = [(info, t) for info in layers for t in tensors if t in info.tensors]
        self.needs_labels = bool(GRADIENT_TENSORS & set(tensors))
        self.trace_count = 0
        self._functions: dict[tuple, Any] = {}
        self._recorded: dict[tuple[str, str], tf.Tensor] | None = None

    def __call__(self, x: Any, y: Any = None, sample_weight: Any = None) -> ProbeResult:
        """Measure the model on batch `x` (with labels `y` when gradients are requested).

        Returns:
            A `ProbeResult` with NumPy values on the host.
        """
        if self.needs_labels and y is None:
            raise ValueError(
                "Invalid value for argument `y`. Received: y=None. Expected labels for the "
                "probe batch: gradient tensors need the loss."
            )
        args = tuple(
            None if a is None else tf.nest.map_structure(tf.convert_to_tensor, a)
            for a in (x, y, sample_weight)
        )
        signature = tuple(
            None if a is None else tuple((t.shape, t.dtype) for t in tf.nest.flatten(a))
            for a in args
        )
        if signature not in self._functions:
            self._functions[signature] = self._trace(args)
        values, histograms = self._functions[signature](*args)
        return ProbeResult(
            rows=self.rows,
            stats=self.stats,
            values=values.numpy().astype(np.float64),
            histograms=None if histograms is None else histograms.numpy().astype(np.float64),
        )

    def _trace(self, args):
        specs = [
            None if a is None else tf.nest.map_structure(lambda t: tf.TensorSpec.from_tensor(t), a)
            for a in args
        ]
        if self.needs_labels and self.loss is None:
            self._build_compiled_loss(*args)
        function = tf.function(self._measure, autograph=False)
        recorded: dict[tuple[str, str], tf.Tensor] = {}
        restore = []
        try:
            for info in self.layers:
                restore.append(_record_into(info, recorded))
            self._recorded = recorded
            concrete = function.get_concrete_function(*specs)
        finally:
            for undo in restore:
                undo()
            self._recorded = None
        return concrete

    def _build_compiled_loss(self, x, y, sample_weight) -> None:
        """Run the compiled loss once, eagerly, before tracing.

        Keras builds a multi-output compiled loss (and its per-output metrics) on first use and
        keeps references to that call's tensors; built inside our trace, they would leak out of
        the traced graph. Metric state is put back: new metric variables start at zero.
        """
        model = self.model
        before = {id(v): v.numpy() for v in model.metrics_variables}
        y_pred = model(x, training=False)
        self._loss(x, y, y_pred, sample_weight)
        for v in model.metrics_variables:
            v.assign(before.get(id(v), np.zeros(v.shape, v.dtype)))

    def _measure(self, x, y, sample_weight):
        self.trace_count += 1
        model = self.model
        # State the pass may change; restored below so the model is left as it was.
        guarded = {id(v): v for v in model.metrics_variables}
        if self.training:
            guarded.update({id(v): v for v in model.non_trainable_variables})
        saved = [(v, tf.identity(v.value)) for v in guarded.values()]

        recorded = self._recorded
        weights = {}
        for info in self.layers:
            if "kernel_grad" in self.tensors and "kernel_grad" in info.tensors:
                weights[(info.path, "kernel_grad")] = info.layer.kernel
            if "bias_grad" in self.tensors and "bias_grad" in info.tensors:
                weights[(info.path, "bias_grad")] = info.layer.bias
        gradients: dict[tuple[str, str], tf.Tensor] = {}
        if self.needs_labels:
            with tf.GradientTape() as tape:
                y_pred = model(x, training=self.training)
                loss = self._loss(x, y, y_pred, sample_weight)
            sources = {
                (path, f"{tensor}_grad"): recorded[(path, tensor)]
                for (path, tensor) in recorded
                if f"{tensor}_grad" in self.tensors
            }
            sources.update(weights)
            grads = tape.gradient(
                loss,
                list(sources.values()),
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            gradients = dict(zip(sources, grads, strict=True))
        else:
            model(x, training=self.training)

        restores = [v.assign(value) for v, value in saved]
        with tf.control_dependencies(restores):
            return self._reduce(recorded, gradients)

    def _loss(self, x, y, y_pred, sample_weight):
        if self.loss is not None:
            return self.loss(y, y_pred)
        return self.model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=self.training
        )

    def _reduce(self, recorded, gradients):
        tensors, bounds, units = [], [], []
        for info, tensor in self.rows:
            key = (info.path, tensor)
            if tensor in ("activation", "preactivation"):
                tensors.append(recorded[key])
            elif tensor == "kernel":
                tensors.append(info.layer.kernel.value)
            else:
                tensors.append(gradients[key])
            is_activation = tensor == "activation"
            bounds.append(ACTIVATION_BOUNDS.get(info.activation) if is_activation else None)
            units.append(is_activation)
        return reduce_tensors(
            tensors,
            self.stats,
            bins=self.histogram_bins,
            bounds=bounds,
            saturation_threshold=self.saturation_threshold,
            units=units,
            with_histograms=self.histograms,
        )


def _first_tensor(outputs):
    return tf.nest.flatten(outputs)[0]


def _record_into(info: LayerInfo, recorded: dict) -> Callable[[], None]:
    """Wrap `info.layer`'s call (and activation) to record into `recorded`; return the undo."""
    layer = info.layer
    original_call = layer.call

    def call(*args, **kwargs):
        outputs = original_call(*args, **kwargs)
        recorded.setdefault((info.path, "activation"), _first_tensor(outputs))
        return outputs

    # object.__setattr__: plain instance attributes, invisible to Keras' attribute tracking.
    object.__setattr__(layer, "call", call)
    original_activation = getattr(layer, "activation", None)
    if "preactivation" in info.tensors:

        def activation(inputs, *args, **kwargs):
            recorded.setdefault((info.path, "preactivation"), inputs)
            return original_activation(inputs, *args, **kwargs)

        object.__setattr__(layer, "activation", activation)

    def undo() -> None:
        object.__delattr__(layer, "call")
        if "preactivation" in info.tensors:
            object.__setattr__(layer, "activation", original_activation)

    return undo


def build_probe(
    model: keras.Model,
    tensors: Sequence[str] | None = None,
    stats: Sequence[str] | None = None,
    *,
    layers: str | None = None,
    layer_classes: Sequence[str | type] | None = None,
    training: bool = False,
    loss: Callable[[Any, Any], Any] | None = None,
    saturation_threshold: float = 0.99,
    histogram_bins: int = DEFAULT_BINS,
    histograms: bool = False,
) -> Probe:
    """Build the compiled measuring function for `model` (traced on the first call).

    With no gradient tensor requested the function does one forward pass and no backward pass,
    needs no labels and no loss: the model need not be compiled.

    Args:
        model: a built Keras model (Sequential, Functional, nested or subclassed).
        tensors: names from `TENSORS`; default all.
        stats: names from `keras_initx.stats.STAT_NAMES`; default all.
        layers: regular expression on layer paths (see `find_layers`).
        layer_classes: class names or classes (see `find_layers`).
        training: run the model in training mode (dropout on, batch statistics); default
            inference mode. Any state this changes is restored.
        loss: `loss(y_true, y_pred) -> scalar` for the gradients; default the model's compiled
            loss (`model.compute_loss`, regularization losses included).
        saturation_threshold: in (0, 1); `frac_saturated` counts activations beyond this
            fraction of the way to a bound of tanh/sigmoid-like activations.
        histogram_bins: bins of the per-tensor histograms (percentile resolution).
        histograms: also return the histograms (`ProbeResult.histograms`).

    Returns:
        A `Probe`; call it as `probe(x, y=None, sample_weight=None)`.

    Raises:
        ValueError: unknown tensor or statistic names, filters matching nothing, a threshold
            outside (0, 1), `histogram_bins < 2`, an unbuilt model, or gradients requested from
            a model without a compiled loss and no `loss`.
        TypeError: names not given as a list of strings.
    """
    tensors, stats = check_arguments(tensors, stats, saturation_threshold, histogram_bins)
    selected = find_layers(model, layers, layer_classes)
    if GRADIENT_TENSORS & set(tensors) and loss is None and not _has_compiled_loss(model):
        raise ValueError(
            "Invalid value for argument `loss`. Received: loss=None for a model without a "
            f"compiled loss. Expected `model.compile(loss=...)` or a `loss` callable, since "
            f"gradient tensors {sorted(GRADIENT_TENSORS & set(tensors))} were requested."
        )
    return Probe(
        model,
        selected,
        tensors,
        stats,
        training=training,
        loss=loss,
        saturation_threshold=saturation_threshold,
        histogram_bins=histogram_bins,
        histograms=histograms,
    )


def _has_compiled_loss(model: keras.Model) -> bool:
    # A subclass overriding `compute_loss` brings its own loss.
    overridden = getattr(type(model), "compute_loss", None) is not keras.Model.compute_loss
    return getattr(model, "loss", None) is not None or overridden
