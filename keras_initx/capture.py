"""Capture: ONE compiled forward (+ backward) pass that returns per-layer statistics.

`build_probe(model, ...)` returns a `Probe`: a callable around a single `tf.function`, traced
once, that runs the model on a probe batch, records the tensors of the selected layers, reduces
each of them with `keras_initx.stats` on the device and returns only the small results. It is the
engine of `keras_initx.callbacks.LayerStats` and the public entry point for other tools that need
per-layer statistics (LSUV, experiments).

How the tensors are recorded without changing the model: during the single trace only, each
selected layer's `call` is wrapped (an instance attribute) to record its output, and its
`activation` to record its input (the pre-activation). `recording()` installs them in an
`ExitStack`, each undo registered right after its install, so the model is left exactly as it was
after the trace, also when an install or the trace fails half-way. Keras traces its own train
function later, on the first training step, when the wrappers are long gone. Gradients are
`tf.GradientTape` gradients of the model's compiled loss with respect to the recorded tensors and
the layers' weights; nothing is applied, and any state the pass touches (compiled-loss metrics,
and with `training=True` BatchNormalization moving statistics and dropout seeds) is restored
inside the same function.

What is measured, per layer family:
- Layers with an `activation` attribute (Dense, Conv*, EinsumDense, ...): `preactivation` is the
  input of that activation, `activation` the layer's output.
- Recurrent layers (LSTM, GRU, SimpleRNN, ConvLSTM*): `activation` is the layer's output (the
  sequence with `return_sequences=True`, else the last output); their cell's activations run
  inside the time loop, where a recorded tensor cannot leave the loop, so there is no
  `preactivation`. `kernel`, `recurrent_kernel` and `bias` are the cell's.
- Composite layers (MultiHeadAttention, Bidirectional, a user's layer with tracked sublayers) get a
  row for their own output and rows for each sublayer, e.g. `block/mha/query`, `.../key`,
  `.../value`, `.../attention_output`, and `.../softmax` (the attention probabilities) where
  Keras computes them as a tensor: MultiHeadAttention with `dropout > 0` or
  `return_attention_scores=True`; its fused `dot_product_attention` path keeps them inside one
  op, and an uncalled sublayer has no rows.
  Nested models are walked and not listed themselves. `TimeDistributed` and recurrent layers are
  not walked into (their inner layer runs inside a loop).
- Weights: `kernel` is the layer's `kernel`, or `embeddings` (Embedding), or `pointwise_kernel`
  (SeparableConv*); `recurrent_kernel` the recurrent kernel of recurrent layers.
- A layer called several times (shared layers) gets rows per call: the first call under its path,
  the k-th call under `path#k`; weight rows belong to the first call.
- A layer returning several tensors (`return_state=True`, `return_attention_scores=True`) reports
  its first output, the layer's main one.

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

import contextlib
import dataclasses
import itertools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

# Keras' reduction of a training step's logs across replicas, as `fit`'s own function does it;
# it has no public alias.
from keras.src.backend.tensorflow.trainer import reduce_per_replica

from keras_initx.stats import ACTIVATION_BOUNDS, DEFAULT_BINS, STAT_NAMES, reduce_tensors
from keras_initx.validation import (
    check_backend,
    check_bool,
    check_int,
    check_layer_filters,
    check_names,
    check_number,
)

__all__ = [
    "GRADIENT_TENSORS",
    "TENSORS",
    "LayerInfo",
    "MeasureSpec",
    "Probe",
    "ProbeResult",
    "Tap",
    "build_probe",
    "build_tap",
    "check_layer_filters",
    "find_layers",
    "recording",
]

TENSORS: tuple[str, ...] = (
    "activation",
    "preactivation",
    "activation_grad",
    "preactivation_grad",
    "kernel",
    "kernel_grad",
    "recurrent_kernel",
    "recurrent_kernel_grad",
    "bias_grad",
)
GRADIENT_TENSORS: frozenset[str] = frozenset(
    {"activation_grad", "preactivation_grad", "kernel_grad", "recurrent_kernel_grad", "bias_grad"}
)
# Weight tensors and the layer attributes that hold them, first match wins.
_WEIGHT_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "kernel": ("kernel", "embeddings", "pointwise_kernel"),
    "recurrent_kernel": ("recurrent_kernel",),
    "bias": ("bias",),
}

# Standalone activation layers without an `activation` attribute.
_ACTIVATION_LAYERS: dict[type, str] = {
    keras.layers.ReLU: "relu",
    keras.layers.LeakyReLU: "leaky_relu",
    keras.layers.ELU: "elu",
    keras.layers.Softmax: "softmax",
    keras.layers.PReLU: "prelu",
}
# Merge layers: where residual branches add up, so where residual signal growth shows.
_MERGE_LAYERS: tuple[type, ...] = (
    keras.layers.Add,
    keras.layers.Average,
    keras.layers.Concatenate,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Multiply,
    keras.layers.Subtract,
)
# Layers whose sublayers run inside a loop: a tensor recorded there cannot leave the loop.
_OPAQUE_LAYERS: tuple[type, ...] = (keras.layers.RNN, keras.layers.TimeDistributed)


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """A selected layer (or one call of a shared layer).

    Attributes:
        path: unique path, the model names joined by "/", e.g. `functional/sequential/dense`;
            `path#k` for the k-th call (k >= 2) of a layer called several times.
        index: depth order among the selected layers, 0-based (the calls of a shared layer
            share their layer's index).
        layer: the Keras layer object.
        layer_class: its class name, e.g. `Dense`.
        activation: the layer's own activation name (`tanh`, `linear`, ...), "" when none.
        tensors: the names from `TENSORS` this layer provides (all of them, before any
            `tensors=` selection): `preactivation*` only with a non-linear, replaceable
            `activation` attribute, `kernel*`/`recurrent_kernel*` only with such a weight,
            `bias_grad` only with a `bias`.
        call: which call of the layer this row is, 0-based.
        kernel_initializer: the registered name of the initializer of the layer's kernel
            (`he_normal`, `glorot_uniform`, `orthogonal_gain`, ...; the cell's for recurrent
            layers, `depthwise_initializer` for DepthwiseConv2D), "" for a layer without one.
    """

    path: str
    index: int
    layer: keras.layers.Layer
    layer_class: str
    activation: str
    tensors: tuple[str, ...]
    call: int = 0
    kernel_initializer: str = ""

    def variable(self, name: str) -> keras.Variable | None:
        """The layer's `kernel`, `recurrent_kernel` or `bias` variable (see `TENSORS`)."""
        return _weight(self.layer, name)


def _weight(layer: keras.layers.Layer, name: str) -> keras.Variable | None:
    # Recurrent layers keep their weights in their cell.
    owners = (layer, layer.cell) if isinstance(layer, keras.layers.RNN) else (layer,)
    for owner in owners:
        for attribute in _WEIGHT_ATTRIBUTES[name]:
            value = getattr(owner, attribute, None)
            if isinstance(value, keras.Variable):
                return value
    return None


def _activation_name(layer: keras.layers.Layer) -> str:
    fn = getattr(layer, "activation", None)
    if callable(fn):
        return getattr(fn, "__name__", type(fn).__name__)
    if isinstance(layer, keras.layers.ReLU) and layer.max_value == 6:
        return "relu6"  # MobileNet's: bounded, unlike plain relu
    for cls, name in _ACTIVATION_LAYERS.items():
        if isinstance(layer, cls):
            return name
    return ""


# The layer attributes holding the kernel's initializer, in the order of `_WEIGHT_ATTRIBUTES`.
_INITIALIZER_ATTRIBUTES = (
    "kernel_initializer",
    "embeddings_initializer",
    "pointwise_initializer",
    "depthwise_initializer",
)


def _initializer_name(layer: keras.layers.Layer) -> str:
    """The name `keras.initializers.get` knows the kernel's initializer by ("" if no kernel):
    the first lower-case alias registered for its class (ours: `orthogonal_gain`), else Keras'
    own snake-case naming of the class (`HeNormal` -> `he_normal`)."""
    if _weight(layer, "kernel") is None:
        return ""
    owner = layer.cell if isinstance(layer, keras.layers.RNN) else layer
    initializer = next(
        (getattr(owner, a) for a in _INITIALIZER_ATTRIBUTES if getattr(owner, a, None)), None
    )
    if initializer is None:
        return ""
    cls = type(initializer)
    for name, registered in keras.saving.get_custom_objects().items():
        if registered is cls and name.isidentifier() and name == name.lower():
            return name
    name = getattr(initializer, "__name__", cls.__name__)  # a plain function is its own name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _has_preactivation(layer: keras.layers.Layer) -> bool:
    # A read-only property (LSTM, GRU, SimpleRNN: the cell's activation) cannot be replaced,
    # and the cell applies it inside the time loop anyway.
    if isinstance(getattr(type(layer), "activation", None), property):
        return False
    fn = getattr(layer, "activation", None)
    return callable(fn) and _activation_name(layer) != "linear"


def _provided_tensors(layer: keras.layers.Layer) -> tuple[str, ...]:
    provided = {"activation", "activation_grad"}
    if _has_preactivation(layer):
        provided |= {"preactivation", "preactivation_grad"}
    if _weight(layer, "kernel") is not None:
        provided |= {"kernel", "kernel_grad"}
    if _weight(layer, "recurrent_kernel") is not None:
        provided |= {"recurrent_kernel", "recurrent_kernel_grad"}
    if _weight(layer, "bias") is not None:
        provided.add("bias_grad")
    return tuple(t for t in TENSORS if t in provided)


def _sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    # Keras has no public accessor for a plain layer's tracked sublayers (`Model.layers` is
    # this same call); `_flatten_layers` is what Keras itself uses to walk them.
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _walk(layer: keras.layers.Layer, path: str, seen: set[int]):
    """`(path, layer)` of `layer` and what it contains, depth-first in tracking order."""
    if id(layer) in seen or isinstance(layer, keras.layers.InputLayer):
        return
    seen.add(id(layer))
    if isinstance(layer, keras.Model):
        for child in layer.layers:
            yield from _walk(child, f"{path}/{child.name}", seen)
        return
    yield path, layer
    if not isinstance(layer, _OPAQUE_LAYERS):
        for child in _sublayers(layer):
            yield from _walk(child, f"{path}/{child.name}", seen)


def _leaf_layers(model: keras.Model, prefix: str) -> list[tuple[str, keras.layers.Layer]]:
    seen = {id(model)}
    return [item for child in model.layers for item in _walk(child, f"{prefix}/{child.name}", seen)]


def _class_names(layer_classes: Sequence[str | type]) -> set[str]:
    return {c if isinstance(c, str) else c.__name__ for c in layer_classes}


def find_layers(
    model: keras.Model,
    layers: str | None = None,
    layer_classes: Sequence[str | type] | None = None,
) -> list[LayerInfo]:
    """The layers a probe measures, in depth order.

    By default every layer with weights or an activation (Dense, Conv*, BatchNormalization,
    Activation, ReLU, ...) and every merge layer (Add, Concatenate, Multiply, ...: where
    residual branches meet); `Dropout`, `Flatten` and the like are left out. Nested models are
    walked and never listed themselves; composite layers (MultiHeadAttention, Bidirectional,
    layers with tracked sublayers) are listed, followed by their sublayers.

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
    pattern = check_layer_filters(layers, layer_classes)
    if not model.built:
        raise ValueError(
            f"Invalid value for argument `model`. Received: model={model.name!r}, not built. "
            "Expected a built model: give it an `Input` or call it once on a batch."
        )
    candidates = [
        (path, layer)
        for path, layer in _leaf_layers(model, model.name)
        if layer.weights or _activation_name(layer) or isinstance(layer, _MERGE_LAYERS)
    ]
    kept = candidates
    if pattern is not None:
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
            kernel_initializer=_initializer_name(layer),
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
        histograms: float64 `[len(rows), bins + 2]` = `[lo, hi, counts...]` per row: counts
            over `bins` equal bins of the range [lo, hi] (min to max, widened around a constant
            tensor's value: `keras_initx.stats.histogram_range`), or None when not requested.
        source: which batch was measured: `"probe"` (a `Probe`'s fixed batch) or `"tap"` (a
            training batch, by a `Tap`).
    """

    rows: list[tuple[LayerInfo, str]]
    stats: tuple[str, ...]
    values: np.ndarray
    histograms: np.ndarray | None
    source: str = "probe"

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


@dataclasses.dataclass(frozen=True)
class MeasureSpec:
    """What a `Probe` or a `Tap` measures: declared and validated once, here.

    `build_probe` and `build_tap` make one from their arguments; `LayerStats` makes one at
    construction (so a bad argument fails before training) and builds its probe or tap from it.

    Attributes:
        tensors: names from `TENSORS` (None: all), kept as a tuple in `TENSORS` order.
        stats: names from `keras_initx.stats.STAT_NAMES` (None: all), in that order.
        layers: regular expression on layer paths (see `find_layers`), or None.
        layer_classes: class names or classes (see `find_layers`), or None.
        saturation_threshold: in (0, 1); `frac_saturated` counts activations beyond this
            fraction of the way to a bound of tanh/sigmoid-like activations.
        histogram_bins: bins of the per-tensor histograms (percentile resolution), >= 2.
        histograms: also return the histograms (`ProbeResult.histograms`).

    Raises:
        TypeError: names not given as a list of strings, a non-number `saturation_threshold`,
            a non-int `histogram_bins`, bad `layers`/`layer_classes` types.
        ValueError: unknown or no names, a threshold outside (0, 1), `histogram_bins < 2`, a
            `layers` pattern that is not a regular expression.
    """

    tensors: Sequence[str] | None = None
    stats: Sequence[str] | None = None
    layers: str | None = None
    layer_classes: Sequence[str | type] | None = None
    saturation_threshold: float = 0.99
    histogram_bins: int = DEFAULT_BINS
    histograms: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", check_names("tensors", self.tensors, TENSORS))
        object.__setattr__(self, "stats", check_names("stats", self.stats, STAT_NAMES))
        check_layer_filters(self.layers, self.layer_classes)
        check_number(
            "saturation_threshold",
            self.saturation_threshold,
            low=0,
            high=1,
            low_inclusive=False,
            high_inclusive=False,
        )
        check_int("histogram_bins", self.histogram_bins, 2)
        check_bool("histograms", self.histograms)


class _Measurement:
    """What the probe and the tap share: the selection, the statistics and the rows.

    Both record the same tensors with `recording()` during their one trace, pick them with
    `_row_tensors` and reduce them with `keras_initx.stats.reduce_tensors`; they differ only in
    which forward and backward pass they record (a probe's own pass on a fixed batch, or the
    training step's).
    """

    def __init__(self, model: keras.Model, spec: MeasureSpec) -> None:
        self.model = model
        self.spec = spec
        self.layers = find_layers(model, spec.layers, spec.layer_classes)
        if not any(t in info.tensors for info in self.layers for t in spec.tensors):
            provided = sorted({t for info in self.layers for t in info.tensors})
            raise ValueError(
                "Invalid value for argument `tensors`. "
                f"Received: tensors={list(spec.tensors)}, which none of the selected layers "
                f"{[info.path for info in self.layers][:5]} provides. Expected some of "
                f"{provided}."
            )
        self.tensors = spec.tensors
        self.stats = spec.stats
        self.rows: list[tuple[LayerInfo, str]] | None = None
        self.trace_count = 0

    source = "probe"

    def _result(self, values, histograms) -> ProbeResult:
        return ProbeResult(
            rows=self.rows,
            stats=self.stats,
            values=np.asarray(values).astype(np.float64),
            histograms=None if histograms is None else np.asarray(histograms).astype(np.float64),
            source=self.source,
        )

    def _set_rows(self, rows: list[tuple[LayerInfo, str]]) -> None:
        if self.rows is None:
            self.rows = rows
        elif rows != self.rows:
            raise ValueError(
                "Invalid value for argument `x`: the model ran other layers on this input "
                "shape than on the first one, so the rows differ. Expected one input structure "
                "per probe: build one probe per input shape."
            )

    def _rows_of(self, recorded: _Recorded) -> list[tuple[LayerInfo, str]]:
        """The rows this trace can fill: layers that ran, one set per call, `TENSORS` order."""
        rows = []
        for info in self.layers:
            for call in range(recorded.calls.get(info.layer, 0)):
                call_info = info
                if call:
                    call_info = dataclasses.replace(info, path=f"{info.path}#{call + 1}", call=call)
                for tensor in self.tensors:
                    if tensor not in info.tensors:
                        continue
                    recorded_as = tensor.removesuffix("_grad")
                    if recorded_as in ("activation", "preactivation"):
                        if (info.layer, call, recorded_as) not in recorded.tensors:
                            continue
                    elif call:
                        continue  # weights are shared: their rows belong to the first call
                    rows.append((call_info, tensor))
        return rows

    def _weight_variables(self, names: set[str]) -> list[keras.Variable]:
        """The selected layers' variables named in `names` (`_WEIGHT_ATTRIBUTES`), each once."""
        found = {}
        for info in self.layers:
            for name in names:
                variable = info.variable(name)
                if variable is not None:
                    found[id(variable)] = variable
        return list(found.values())

    def _weight_values(self) -> dict[int, tf.Tensor]:
        """The values of the weights the `kernel`/`recurrent_kernel` rows read, by variable id,
        read here: `value` is the variable itself, read where it is used, which in a training
        step would be after the update."""
        names = {"kernel", "recurrent_kernel"} & set(self.tensors)
        return {id(v): tf.identity(v.value) for v in self._weight_variables(names)}

    def _reduce(self, rows, tensors):
        bounds, units = [], []
        for info, tensor in rows:
            is_activation = tensor == "activation"
            bounds.append(ACTIVATION_BOUNDS.get(info.activation) if is_activation else None)
            units.append(is_activation)
        return reduce_tensors(
            tensors,
            self.stats,
            bins=self.spec.histogram_bins,
            bounds=bounds,
            saturation_threshold=self.spec.saturation_threshold,
            units=units,
            with_histograms=self.spec.histograms,
        )


def _row_tensors(
    rows: list[tuple[LayerInfo, str]],
    recorded: _Recorded,
    weights: dict[int, tf.Tensor],
    weight_grads: dict[int, tf.Tensor],
) -> tuple[list, list]:
    """The tensor of each row, and the rows that have one.

    A tensor the loss does not depend on has no gradient, and its row is dropped rather than
    given a made-up 0: e.g. a softmax output whose cross-entropy Keras computes from the logits
    (its `preactivation_grad`, with respect to the logits, is the gradient that flows).
    """
    tensors = []
    for info, tensor in rows:
        source = tensor.removesuffix("_grad")
        is_grad = tensor != source
        if source in ("activation", "preactivation"):
            store = recorded.grads if is_grad else recorded.tensors
            tensors.append(store.get((info.layer, info.call, source)))
        else:
            store = weight_grads if is_grad else weights
            tensors.append(store.get(id(info.variable(source))))
    return _kept(rows, tensors)


class Probe(_Measurement):
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
        rows: `(LayerInfo, tensor)` per result row, known after the first call: the trace finds
            which layers run and how often (unused layers have no rows, shared layers one set
            per call).
        needs_labels: whether a call needs `y` (gradient tensors requested).
        trace_count: number of times the function was traced.
    """

    def __init__(
        self,
        model: keras.Model,
        spec: MeasureSpec,
        *,
        training: bool = False,
        loss: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        gradients = sorted(GRADIENT_TENSORS & set(spec.tensors))
        if gradients and loss is None and not _has_compiled_loss(model):
            raise ValueError(
                "Invalid value for argument `loss`. Received: loss=None for a model without a "
                f"compiled loss. Expected `model.compile(loss=...)` or a `loss` callable, since "
                f"gradient tensors {gradients} were requested."
            )
        super().__init__(model, spec)
        self.training = training
        self.loss = loss
        self.needs_labels = bool(gradients)
        self._functions: dict[tuple, Any] = {}

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
        # TensorFlow instantiates (optimizes) a function's graph per optimizer configuration:
        # every call runs under the same one, so the graph is optimized once.
        with _without_constant_folding():
            values, histograms = self._functions[signature](*args)
        return self._result(values, histograms)

    def _trace(self, args):
        specs = [
            None if a is None else tf.nest.map_structure(lambda t: tf.TensorSpec.from_tensor(t), a)
            for a in args
        ]
        if self.needs_labels and self.loss is None:
            self._build_compiled_loss(*args)
        function = tf.function(self._measure, autograph=False)
        return function.get_concrete_function(*specs)

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

        recorded = _Recorded()
        with recording(self.layers, recorded), tf.GradientTape() as tape:
            # Watched inputs put ops without weights (a merge of the inputs) on the tape.
            tape.watch([t for t in tf.nest.flatten(x) if t.dtype.is_floating])
            y_pred = model(x, training=self.training)
            loss = self._loss(x, y, y_pred, sample_weight) if self.needs_labels else None
        rows = self._rows_of(recorded)
        graded = {t.removesuffix("_grad") for t in GRADIENT_TENSORS & set(self.tensors)}
        variables = self._weight_variables(graded & _WEIGHT_ATTRIBUTES.keys())
        weight_grads = {}
        if self.needs_labels:
            # Asking for the recorded tensors' gradients too takes the backward pass through
            # every gradient hook, also where no weight lies upstream.
            sources = [*variables, *(t for t in recorded.tensors.values() if t.dtype.is_floating)]
            grads = tape.gradient(loss, sources)
            weight_grads = {id(v): g for v, g in zip(variables, grads, strict=False)}
        rows, tensors = _row_tensors(rows, recorded, self._weight_values(), weight_grads)
        self._set_rows(rows)
        restores = [v.assign(value) for v, value in saved]
        with tf.control_dependencies(restores):
            return self._reduce(rows, tensors)

    def _loss(self, x, y, y_pred, sample_weight):
        if self.loss is not None:
            return self.loss(y, y_pred)
        return self.model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=self.training
        )


class Tap(_Measurement):
    """Measures `fit`'s own training step: the tensors of that step's forward and backward pass.

    Build it with `build_tap`. `tapping()` swaps `model.train_function` for one call (one
    `steps_per_execution` group): that call takes the next batch from fit's iterator and runs
    `model.train_step` on it inside one compiled function that also records the selected layers'
    tensors from that very pass (the `recording()` hooks of the probe; activation gradients
    through `_gradient_hook`, weight gradients as the step hands them to `optimizer.apply`,
    weights as they were before the update) and reduces them with `keras_initx.stats`. The rest of
    the group runs through Keras' own function; then `model.train_function` is Keras' again. The
    training step itself is unchanged: same loss, gradients, update, metrics and random seeds.

    The function is traced once, on the first tapped batch, with that batch's static shapes (the
    statistics need them); a batch of another shape (an epoch's smaller last batch) is trained on
    with Keras' function and not measured (`result` stays None). With `jit_compile` the training
    step and the recording are XLA-compiled as Keras compiles its own step, and the reductions
    run outside XLA. Under a `tf.distribute` strategy the replicas' tensors are joined before
    reducing (activations concatenated along the batch, weight gradients summed), so the
    statistics are those of the global batch. Gradients are those of the loss Keras
    differentiates (divided by the loss scale under mixed precision: the unscaled gradients).

    Attributes:
        result: the `ProbeResult` of the last tapped call, None until one measured a batch.
        step: the optimizer's `iterations` before the measured step of the last tapped call
            (read inside the compiled function: no extra host round trip).
        trace_count: number of times the tapped function was traced.
    """

    source = "tap"

    def __init__(self, model: keras.Model, spec: MeasureSpec) -> None:
        if getattr(model, "optimizer", None) is None:
            raise ValueError(
                f"Invalid value for argument `model`. Received: model={model.name!r}, not "
                "compiled. Expected a model compiled with an optimizer: a tap measures its "
                "training step."
            )
        super().__init__(model, spec)
        self.result: ProbeResult | None = None
        self.step: int | None = None
        self._function: Callable | None = None
        self._signature: Any = None

    @contextlib.contextmanager
    def tapping(self) -> Iterator[None]:
        """Make the next `model.train_function` call a tapped one (and only that one).

        On exit Keras' function is back in place whether the call happened or not.
        """
        model = self.model
        plain = model.train_function
        if plain is None:
            raise ValueError(
                f"Invalid value for argument `model`. Received: model={model.name!r} without a "
                "train function. Expected a model inside `fit` (tap from a callback's "
                "`on_train_batch_begin`)."
            )
        self.result = None

        def train_function(iterator):
            model.train_function = plain
            return self._run(iterator, plain)

        model.train_function = train_function
        try:
            yield
        finally:
            if model.train_function is train_function:
                model.train_function = plain

    def _run(self, iterator, plain: Callable):
        if not hasattr(iterator, "get_next_as_optional"):
            return plain(iterator)  # not a tf.data iterator: nothing to take a batch from
        optional = iterator.get_next_as_optional()
        if not optional.has_value():
            # The end of the data: Keras' own function ends the epoch as it always does (with
            # a length unknown to tf.data it still counts an optimizer iteration there).
            return plain(iterator)
        data = optional.get_value()
        signature = tf.nest.map_structure(
            lambda t: (tuple(t.shape), t.dtype), data, expand_composites=True
        )
        if self._function is None:
            self._build_state(data)
            self._function, self._signature = self._compile(), signature
        if signature == self._signature:
            logs, step, values, histograms = self._function(data)
            self.result = self._result(values, histograms)
            self.step = int(step)
        else:
            logs = plain(iter([data]))
        # The rest of the group: Keras' function takes them from a Python iterator.
        rest = _batches(iterator, self.model.steps_per_execution - 1)
        first = next(rest, None)
        if first is not None:
            logs = plain(itertools.chain([first], rest))
        return logs

    def _build_state(self, data) -> None:
        """Create the optimizer's and the compiled metrics' variables before the trace.

        Keras creates them in its first training step when no distribution strategy is set
        (under one, `fit` builds them before training, with the private `_symbolic_build` used
        here); variables created inside a `tf.function` make TensorFlow trace it twice.
        """
        model = self.model
        metrics = getattr(model, "_compile_metrics", None)
        if model.optimizer.built and (metrics is None or metrics.built):
            return
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=data)

    def _compile(self) -> Callable:
        model = self.model
        strategy = model.distribute_strategy

        def step_on_data(data, recorders):
            outputs = strategy.run(self._replica_step, args=(data, recorders))
            logs, tensors = outputs
            # How Keras reduces a training step's logs across replicas (`fit`'s own function).
            logs = reduce_per_replica(logs, strategy, reduction="auto")
            return logs, self._joined(strategy, tensors)

        if model.jit_compile and not model.run_eagerly:
            step_on_data = tf.function(step_on_data, jit_compile=True, autograph=False)

        def tapped(data):
            self.trace_count += 1
            step = tf.identity(model.optimizer.iterations.value)  # before the update
            recorders = _PerReplica()  # per trace: TensorFlow may trace twice
            with contextlib.ExitStack() as stack:
                stack.enter_context(recording(self.layers, recorders, FUSED_ACTIVATIONS))
                optimizer = model.optimizer
                _install(stack, optimizer, "apply", _recording_apply(optimizer, recorders))
                logs, tensors = step_on_data(data, recorders)
            return (logs, step, *self._reduce(self.rows, tensors))

        return tapped if model.run_eagerly else tf.function(tapped, autograph=False)

    def _replica_step(self, data, recorders: _PerReplica):
        """`model.train_step` on one replica's batch, and the recorded tensors of the rows."""
        data = tf.nest.map_structure(
            lambda v: None if isinstance(v, tf.experimental.Optional) else v, data
        )
        weights = self._weight_values()  # before the update
        scale = self.model.optimizer.scale_loss(1.0)  # before the step may change it
        logs = self.model.train_step(data)
        recorded = recorders.current()
        _preactivation_grads(recorded)
        rows, tensors = _row_tensors(self._rows_of(recorded), recorded, weights, recorded.applied)
        self._set_rows(rows)
        if not (isinstance(scale, float) and scale == 1.0):
            scale = tf.cast(scale, tf.float32)
            tensors = [
                tf.cast(t, tf.float32) / scale if tensor.endswith("_grad") else t
                for (_, tensor), t in zip(rows, tensors, strict=True)
            ]
        return logs, tensors

    def _joined(self, strategy: tf.distribute.Strategy, tensors: list) -> list:
        """The global batch's tensors from the replicas': batch-shaped ones concatenated,
        weight gradients summed, weights from the first replica (all replicas hold them)."""
        joined = []
        for (_, tensor), value in zip(self.rows, tensors, strict=True):
            local = strategy.experimental_local_results(value)
            if len(local) == 1:
                joined.append(local[0])
            elif tensor.startswith(("activation", "preactivation")):
                joined.append(tf.concat(local, axis=0))
            elif tensor.endswith("_grad"):
                joined.append(tf.add_n(local))
            else:
                joined.append(local[0])
        return joined


def _batches(iterator, count: int) -> Iterator:
    """Up to `count` more batches of a tf.data iterator, eagerly."""
    for _ in range(count):
        optional = iterator.get_next_as_optional()
        if not optional.has_value():
            return
        yield optional.get_value()


def _recording_apply(optimizer: keras.optimizers.Optimizer, recorders: _PerReplica) -> Callable:
    """`optimizer.apply` that first keeps the gradients it is given, per variable."""
    original_apply = optimizer.apply

    def apply(grads, trainable_variables=None):
        if trainable_variables is not None:
            applied = recorders.current().applied
            for grad, variable in zip(grads, trainable_variables, strict=False):
                if grad is not None:
                    applied.setdefault(id(variable), grad)
        return original_apply(grads, trainable_variables)

    return apply


@contextlib.contextmanager
def _without_constant_folding() -> Iterator[None]:
    """Turn Grappler's constant folding off while a probe runs.

    The probe's graph holds a few small reductions per recorded tensor; folding it took 80 of
    the 110 s of a ResNet50 probe's first call (606 rows, 2-core CPU) and did not make later
    calls faster. The option is global in TensorFlow, so it is set around each probe call and
    put back, so the model's own train function keeps its configuration (constant folding is
    on by default, and `True` is that default).
    """
    options = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"constant_folding": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"constant_folding": options.get("constant_folding", True)}
        )


def _kept(rows: list, tensors: list) -> tuple[list, list]:
    """The rows whose tensor exists (not None), with their tensors."""
    pairs = [(row, t) for row, t in zip(rows, tensors, strict=True) if t is not None]
    return [row for row, _ in pairs], [t for _, t in pairs]


class _Recorded:
    """What one trace recorded: `tensors[(layer, call, "activation"|"preactivation")]`, their
    gradients `grads[...]` (same keys, filled by the backward pass through `_gradient_hook`),
    the number of `calls` of each layer, and the gradients a training step handed to the
    optimizer, `applied[id(variable)]`."""

    def __init__(self) -> None:
        self.tensors: dict[tuple[keras.layers.Layer, int, str], tf.Tensor] = {}
        self.grads: dict[tuple[keras.layers.Layer, int, str], tf.Tensor] = {}
        self.calls: dict[keras.layers.Layer, int] = {}
        self.applied: dict[int, tf.Tensor] = {}

    def current(self) -> _Recorded:
        return self


class _PerReplica:
    """One `_Recorded` per replica: `tf.distribute.MirroredStrategy` runs the step once per
    replica, each in its own thread, through the same (wrapped) layers."""

    def __init__(self) -> None:
        self._by_thread: dict[int, _Recorded] = {}

    def current(self) -> _Recorded:
        return self._by_thread.setdefault(threading.get_ident(), _Recorded())


def _gradient_hook(recorded: _Recorded, key: tuple) -> Callable[[tf.Tensor], tf.Tensor]:
    """An identity whose backward pass keeps the incoming gradient in `recorded.grads[key]`.

    This is how the activation gradients come out of a backward pass we do not own (Keras'
    `train_step` asks its tape for the weights' gradients only): the gradient of the loss with
    respect to the recorded tensor flows through here on its way to the weights. Values and
    gradients pass unchanged.
    """

    @tf.custom_gradient
    def hook(x):
        def backward(dy):
            recorded.grads.setdefault(key, dy)
            return dy

        return tf.identity(x), backward

    return hook


# Ops whose output Keras' cross-entropy losses trace back to their logits (see
# `keras/src/backend/tensorflow/nn.py`, `_get_logits`).
_LOGIT_OPS = ("Softmax", "Sigmoid")


def _record(recorded: _Recorded, key: tuple, tensor):
    """Keep `tensor` under `key` and return it with the gradient hook on (float tensors)."""
    recorded.tensors.setdefault(key, tensor)
    if not (isinstance(tensor, tf.Tensor) and tensor.dtype.is_floating):
        return tensor
    hooked = _gradient_hook(recorded, key)(tensor)
    # Keras computes a cross-entropy from the logits behind a softmax/sigmoid output, which it
    # finds on the output tensor itself (`_keras_logits`, or the op's input): the hooked copy
    # carries them, so the loss is computed as without the hook (a loss on the probabilities
    # flows through the hook).
    op = getattr(tensor, "op", None)
    logits = getattr(tensor, "_keras_logits", None)
    if logits is None and getattr(op, "type", None) in _LOGIT_OPS:
        logits = op.inputs[0]
    if logits is not None:
        hooked._keras_logits = logits
    mask = getattr(tensor, "_keras_mask", None)
    if mask is not None:
        hooked._keras_mask = mask
    return hooked


def _install(stack: contextlib.ExitStack, layer: keras.layers.Layer, name: str, value) -> None:
    """Set `layer.<name>` as a plain instance attribute; register its undo right away."""
    had = name in vars(layer)
    before = vars(layer).get(name)
    # object.__setattr__: invisible to Keras' attribute tracking.
    object.__setattr__(layer, name, value)
    if had:
        stack.callback(object.__setattr__, layer, name, before)
    else:
        stack.callback(object.__delattr__, layer, name)


# Activations that TensorFlow's graph optimizer (Grappler's remapper) computes inside a fused
# MatMul/Conv + BiasAdd kernel on CPU, rounding differently from the standalone op: a recorded
# pre-activation there splits the fusion and changes the trained weights in the last bits
# (1e-9 after three steps, measured). A tap evaluates such layers a second time beside the
# training path instead (`recording(..., beside=...)`).
FUSED_ACTIVATIONS: frozenset[str] = frozenset({"tanh", "sigmoid", "elu"})


@contextlib.contextmanager
def recording(
    layers: Sequence[LayerInfo],
    recorded: _Recorded | _PerReplica,
    beside: frozenset[str] = frozenset(),
) -> Iterator[None]:
    """Record the outputs (and pre-activations) of `layers` into `recorded` inside the block.

    The pre-activation of a layer whose activation is named in `beside` is recorded from a
    second evaluation of the layer on the same inputs and weights, so that the model's own
    computation stays as it is (no gradient flows through the copy: `_preactivation_grads`
    derives it from the output's gradient).

    Every wrapper is an instance attribute removed on exit, whatever happens: each undo is
    registered right after its install, so a failure half-way leaves nothing behind.
    """
    with contextlib.ExitStack() as stack:
        for info in layers:
            wanted = "preactivation" in info.tensors
            twice = wanted and info.activation in beside
            _install(stack, info.layer, "call", _recording_call(info.layer, recorded, twice))
            if wanted and not twice:
                activation = _recording_activation(info.layer, recorded)
                _install(stack, info.layer, "activation", activation)
        yield


def _recording_call(
    layer: keras.layers.Layer, recorders: _Recorded | _PerReplica, twice: bool = False
) -> Callable:
    original_call = layer.call

    def call(*args, **kwargs):
        recorded = recorders.current()
        recorded.calls[layer] = call_index = recorded.calls.get(layer, 0)
        outputs = original_call(*args, **kwargs)
        recorded.calls[layer] = call_index + 1
        if twice:
            key = (layer, call_index, "preactivation")
            recorded.tensors.setdefault(key, _preactivation(layer, original_call, args, kwargs))
        flat = tf.nest.flatten(outputs)
        # The layer's main output, its first one, is recorded and hooked.
        flat[0] = _record(recorded, (layer, call_index, "activation"), flat[0])
        return tf.nest.pack_sequence_as(outputs, flat)

    return call


def _preactivation(layer: keras.layers.Layer, call: Callable, args, kwargs) -> tf.Tensor:
    """The input of `layer.activation` in a second evaluation of `call(*args, **kwargs)`."""
    seen = []

    def capture(inputs, *_args, **_kwargs):
        seen.append(inputs)
        return inputs

    with contextlib.ExitStack() as stack:
        _install(stack, layer, "activation", capture)
        call(*args, **kwargs)
    return seen[0]


def _preactivation_grads(recorded: _Recorded) -> None:
    """Fill the gradients of pre-activations recorded beside the training path: the
    activation's vector-Jacobian product with the gradient of the layer's output."""
    for (layer, call, kind), z in list(recorded.tensors.items()):
        key, output = (layer, call, kind), (layer, call, "activation")
        if kind != "preactivation" or key in recorded.grads or output not in recorded.grads:
            continue
        with tf.GradientTape() as tape:
            tape.watch(z)
            a = layer.activation(z)
        recorded.grads[key] = tape.gradient(a, z, output_gradients=recorded.grads[output])


def _recording_activation(
    layer: keras.layers.Layer, recorders: _Recorded | _PerReplica
) -> Callable:
    original_activation = layer.activation

    def activation(inputs, *args, **kwargs):
        recorded = recorders.current()
        key = (layer, recorded.calls.get(layer, 0), "preactivation")
        if key in recorded.tensors:  # a second activation call inside one layer call
            return original_activation(inputs, *args, **kwargs)
        return original_activation(_record(recorded, key, inputs), *args, **kwargs)

    return activation


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
    check_backend("build_probe")
    spec = MeasureSpec(
        tensors,
        stats,
        layers=layers,
        layer_classes=layer_classes,
        saturation_threshold=saturation_threshold,
        histogram_bins=histogram_bins,
        histograms=histograms,
    )
    return Probe(model, spec, training=training, loss=loss)


def _has_compiled_loss(model: keras.Model) -> bool:
    # A subclass overriding `compute_loss` brings its own loss.
    overridden = getattr(type(model), "compute_loss", None) is not keras.Model.compute_loss
    return getattr(model, "loss", None) is not None or overridden


def build_tap(
    model: keras.Model,
    tensors: Sequence[str] | None = None,
    stats: Sequence[str] | None = None,
    *,
    layers: str | None = None,
    layer_classes: Sequence[str | type] | None = None,
    saturation_threshold: float = 0.99,
    histogram_bins: int = DEFAULT_BINS,
    histograms: bool = False,
) -> Tap:
    """Build a `Tap`: the measuring variant of a compiled model's training step.

    The arguments are those of `build_probe` less `training` and `loss`: a tap measures the
    training step as `fit` runs it (training mode, the compiled loss or the model's own
    `train_step`).

    Example (what `LayerStats(mode="tap")` does on a measuring step):
        >>> tap = build_tap(model, stats=["mean", "std"])
        >>> # in a callback's on_train_batch_begin:
        >>> with tap.tapping():
        ...     ...                       # fit calls model.train_function(iterator) once
        >>> tap.result.get("model/dense", "activation", "std")

    Raises:
        ValueError: as `build_probe`, or a model without an optimizer (not compiled).
    """
    check_backend("build_tap")
    spec = MeasureSpec(
        tensors,
        stats,
        layers=layers,
        layer_classes=layer_classes,
        saturation_threshold=saturation_threshold,
        histogram_bins=histogram_bins,
        histograms=histograms,
    )
    return Tap(model, spec)
