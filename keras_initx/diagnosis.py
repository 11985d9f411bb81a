"""Read per-layer statistics and say, in plain English, what is wrong with an initialization.

`diagnose` accepts the frames the package produces and returns one row per finding:

- a `LayerStats` frame (`LayerStats.to_dataframe()`, `layer_stats.csv`, `signal_propagation`):
  one row per (step, layer, tensor) with `std`, `frac_saturated`, `frac_dead_units`,
  `nan_count`, `inf_count` and, when measured, `layer_class` and `kernel_initializer`; one step
  is diagnosed (by default the first, i.e. the initialization). With an `initializer` column
  (`compare_training(...).layer_stats`, the long `depth_sweep` frame) each run is diagnosed on
  its own and its findings carry its label;
- the wide `depth_sweep` frame (one row per (initializer, layer) with `activation_std` and
  optionally `gradient_std`, ...), read through an adapter.

The diagnosis reads the model, not only the numbers:

- **Runs.** Every finding names its run (`initializer`); runs are never mixed.
- **Normalization layers** (BatchNormalization, LayerNormalization, GroupNormalization, ...)
  divide out the scale of what they receive, forward and backward. So in a network with them,
  layers are compared only between the same two normalization layers, only layers with a
  nonlinear activation (the linear conv or dense layer feeding a normalization layer has a
  scale nobody sees) and of the same class (another class there is a side branch, such as
  EfficientNet's squeeze-and-excite conv on the pooled activations). A vanishing or exploding
  signal cannot build up across a normalization layer in training; none is reported across one.
- **BatchNormalization on its initial moving statistics.** In inference mode at step 0 (moving
  mean 0, variance 1) BatchNormalization is the identity, so conv outputs pass unnormalized and
  the activations after it shrink, grow or die in ways training never sees. When most
  BatchNormalization layers of a run pass their input through unchanged (output std within 1 %
  of the input's, and not ~1 as batch statistics give), the run gets one `unnormalized` finding
  and every ratio, constant, dead-unit and saturation check from the first such layer on is
  skipped. Measure in training mode instead (`build_probe(model, training=True)`, or LayerStats
  measuring fit's own training step): there step 0 is the initialization as training sees it.
- **Small by design.** A layer whose output, right before a residual `Add`, is under 1 % of the
  sum's std (ConvNeXt's LayerScale at 1e-6, a zero-initialised last BatchNormalization or
  kernel of a residual branch, SkipInit/Fixup), and any `LayerScale` layer, is left out of every
  check: its branch starts near zero on purpose.
- **Trends over depth.** Besides the per-layer ratio (`factor`), a least-squares fit of log std
  over each chain of comparable layers (3+) gives the average ratio per layer; it is reported
  beyond `trend_factor`, or when the fitted change over the whole chain is beyond
  `drift_factor`. The cumulative test is skipped for saturating activations (tanh, sigmoid,
  softsign): at their best initialization their std still decays like 1/sqrt(depth)
  (Schoenholz et al. 2017; Glorot on 10 tanh layers: 0.63 -> 0.23), no fault of the scale.
- **One finding per problem.** Findings are aggregated per run, tensor, kind and activation:
  "the forward signal fades from layer 3 to layer 40, 0.22x per layer" is one row, with `layer`
  the first layer concerned, `last_layer` the last one and `layers` how many.
- **Suggestions** never repeat the initializer the layers already use (the `kernel_initializer`
  column: the layer's own, or for a layer without a kernel the nearest kernel before it): when
  the formula for the activation is already there, the finding says so, points at the real
  cause (gain, architecture, input scale) and suggests the data-driven `lsuv`.

Finding kinds, in the order they are reported for a layer:

| kind           | when                                                                         |
| -------------- | ---------------------------------------------------------------------------- |
| `nonfinite`    | any NaN or Inf in a tensor                                                   |
| `unnormalized` | BatchNormalization ran on its initial moving statistics (see above)          |
| `constant`     | a layer's output has std 0: every unit computes the same value               |
| `vanishing`    | activation std shrinks by more than `factor` from one layer to the next, or  |
|                | the back-propagated gradient std going towards the input; or the fitted      |
|                | trend does (`trend_factor` per layer, `drift_factor` in all)                 |
| `exploding`    | the same ratios grow                                                         |
| `saturated`    | `frac_saturated` above `saturated_threshold` (tanh/sigmoid stuck at bounds)  |
| `dead_units`   | `frac_dead_units` above `dead_threshold` (units that output 0 for any input) |

This module is pure pandas: it imports nothing from the rest of the package but the pure-Python
`keras_initx.validation`, so the callback can use it at step 0 and a saved CSV can be diagnosed
without TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keras_initx.validation import check_number

__all__ = ["FINDING_COLUMNS", "diagnose", "format_findings", "suggest_initializer"]

# `last_layer` and `layers` came with aggregated findings; the first twelve columns keep their
# meaning (`layer`, `layer_index`: where the finding starts).
FINDING_COLUMNS = [
    "initializer",
    "step",
    "layer",
    "layer_index",
    "activation",
    "tensor",
    "statistic",
    "kind",
    "value",
    "threshold",
    "message",
    "suggestion",
    "last_layer",
    "layers",
]

_KIND_ORDER = [
    "nonfinite",
    "unnormalized",
    "constant",
    "vanishing",
    "exploding",
    "saturated",
    "dead_units",
]

_RELU_FAMILY = frozenset(
    {
        "relu",
        "leaky_relu",
        "relu6",
        "elu",
        "celu",
        "gelu",
        "silu",
        "swish",
        "mish",
        "hard_silu",
        "hard_swish",
        "softplus",
    }
)
_SIGMOID_FAMILY = frozenset({"sigmoid", "hard_sigmoid"})
# Bounded activations whose std decays slowly with depth even at their best initialization.
_SATURATING = frozenset({"tanh", "hard_tanh", "softsign"}) | _SIGMOID_FAMILY

# Probabilities, not signals: their spread says nothing about how well the signal propagates, so
# ratio checks skip these layers (a softmax head always "shrinks" the std of the hidden layer).
_NOT_A_SIGNAL = frozenset({"softmax", "log_softmax"})

_NORMALIZATION = frozenset(
    {
        "BatchNormalization",
        "SyncBatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "UnitNormalization",
        "RMSNormalization",
    }
)
_BATCH_NORMALIZATION = frozenset({"BatchNormalization", "SyncBatchNormalization"})
_MERGE = frozenset({"Add"})  # where a residual branch joins the trunk
_LAYER_SCALE = frozenset({"LayerScale"})
# A branch under this fraction of the sum it joins contributes nothing yet: small by design.
_BY_DESIGN_FRACTION = 0.01
# BatchNormalization as the identity: output std within 1 % of the input's, and not ~1.
_IDENTITY_TOLERANCE = 0.01
_NORMALIZED_TOLERANCE = 0.05

# Initializers with the same variance: suggesting one where the other is used changes nothing.
_SAME_SCALE = (
    frozenset({"he_normal", "he_uniform"}),
    frozenset({"glorot_uniform", "glorot_normal"}),
    frozenset({"lecun_normal", "lecun_uniform"}),
    frozenset({"sigmoid_glorot_uniform", "sigmoid_glorot_normal"}),
)
_DATA_DRIVEN = "lsuv"

_LAYERSTATS_COLUMNS = ("step", "layer", "layer_index", "tensor", "std")
_SWEEP_COLUMNS = ("initializer", "layer", "activation_std")


def suggest_initializer(activation: str, current: str = "") -> str:
    """Initializer to try for a layer with this activation, other than the one it has.

    Glorot for tanh and linear layers (Glorot & Bengio 2010), the sigmoid-scaled Glorot for the
    logistic sigmoid (Bengio 2012), He for the ReLU family (He et al. 2015) and LeCun normal for
    SELU (Klambauer et al. 2017). Anything else gets `glorot_uniform`, Keras' default. When
    `current` already gives that variance (`he_uniform` for `he_normal`, ...), the formula is
    not the problem: the answer is `"lsuv"`, the data-driven `keras_initx.lsuv(model, x)`, which
    sets each layer's scale from a batch whatever the architecture.

    Args:
        activation: the layer's activation name (`""` or `"linear"` for none).
        current: the name of the initializer the layer uses (`""` when unknown).

    Returns:
        A name `keras.initializers.get` resolves once `keras_initx` is imported, or `"lsuv"`.

    Example:
        >>> suggest_initializer("relu")
        'he_normal'
        >>> suggest_initializer("relu", current="he_uniform")
        'lsuv'
    """
    name = (activation or "linear").strip().lower()
    if name in _RELU_FAMILY:
        suggestion = "he_normal"
    elif name in _SIGMOID_FAMILY:
        suggestion = "sigmoid_glorot_uniform"
    elif name == "selu":
        suggestion = "lecun_normal"
    else:
        suggestion = "glorot_uniform"
    return _DATA_DRIVEN if _same_scale(suggestion, current) else suggestion


def _same_scale(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in _SAME_SCALE)


def diagnose(
    frame: pd.DataFrame,
    *,
    factor: float = 1.5,
    trend_factor: float = 1.25,
    drift_factor: float = 2.0,
    saturated_threshold: float = 0.25,
    dead_threshold: float = 0.1,
    step: int | None = None,
) -> pd.DataFrame:
    """Find vanishing, exploding, saturated, dead, constant and non-finite layers, per run.

    The ratio tests follow Glorot & Bengio (2010): a healthy initialization keeps the activation
    std and the back-propagated gradient std about constant from layer to layer. Three tests
    over each chain of comparable layers (same run and activation; see the module docstring for
    normalization layers, BatchNormalization in inference mode and branches small by design):

    - per layer, `factor` (default 1.5): `0.01 * randn` on tanh (ratio 0.22 per layer, seed 001)
      and U(-1/sqrt(n), 1/sqrt(n)) on tanh (~0.58) fail, `randn / sqrt(fan_in)` (0.78 to 0.95)
      passes;
    - only where no layer failed: the fitted ratio per layer against `trend_factor` (default
      1.25): Glorot on ReLU (1/sqrt(2) per layer, He et al. 2015) fails, He on ReLU passes;
    - and the fitted change over the whole chain against `drift_factor` (default 2, not for
      tanh/sigmoid): 8 SELU layers with `he_normal` (1.3 -> 3.4) or
      `orthogonal_gain(gain="selu")` (0.8 -> 0.36) fail, `lecun_normal` (1.0 -> 1.0) passes.

    Args:
        frame: a `LayerStats` frame, with or without an `initializer` column, or a wide
            `depth_sweep` frame (see the module docstring).
        factor: a std ratio between neighbouring layers above `factor` is `exploding`, below
            `1 / factor` is `vanishing`. Must be > 1.
        trend_factor: the same for the fitted ratio per layer over a chain. Must be > 1.
        drift_factor: the same for the fitted change over a whole chain. Must be > 1.
        saturated_threshold: fraction of saturated activations above which a layer is reported.
        dead_threshold: fraction of dead units above which a layer is reported.
        step: for a `LayerStats` frame, the step to diagnose; `None` takes each run's first
            step (normally 0, the initialization). Must be `None` for a wide `depth_sweep`
            frame.

    Returns:
        A DataFrame with columns `FINDING_COLUMNS`, one row per finding, ordered by run (as in
        `frame`), depth and kind. `initializer` is the run's label (`""` without an
        `initializer` column) and `step` is `<NA>` for a wide `depth_sweep` frame. An empty
        frame (same columns) means nothing was found.

    Example:
        >>> findings = diagnose(compare_training(["zeros", "he_normal"]).layer_stats)
        >>> print(format_findings(findings))
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            "Invalid type for argument `frame`. "
            f"Received: frame of type {type(frame).__name__}. Expected a pandas DataFrame."
        )
    check_number("factor", factor, low=1.0, low_inclusive=False)
    check_number("trend_factor", trend_factor, low=1.0, low_inclusive=False)
    check_number("drift_factor", drift_factor, low=1.0, low_inclusive=False)
    check_number("saturated_threshold", saturated_threshold, low=0.0, high=1.0)
    check_number("dead_threshold", dead_threshold, low=0.0, high=1.0)
    signals = _signals(frame, step)
    rows = []
    for _, run in signals.groupby("initializer", sort=False):
        model = _Model(run.sort_values("layer_index", kind="stable").reset_index(drop=True))
        rows += [
            *_nonfinite(model),
            *_unnormalized(model),
            *_constant(model),
            *_ratios(model, factor, trend_factor, drift_factor),
            *_threshold(model, "frac_saturated", "saturated", saturated_threshold),
            *_threshold(model, "frac_dead_units", "dead_units", dead_threshold),
        ]
    findings = pd.DataFrame(rows, columns=FINDING_COLUMNS).astype(
        {
            "step": "Int64",
            "layer_index": "Int64",
            "value": float,
            "threshold": float,
            "layers": "Int64",
        }
    )
    # Runs in the order of the input frame, then depth, then the order of `_KIND_ORDER`.
    groups = {name: i for i, name in enumerate(signals["initializer"].unique())}
    kinds = {kind: i for i, kind in enumerate(_KIND_ORDER)}
    findings = findings.assign(
        _group=findings["initializer"].map(groups), _kind=findings["kind"].map(kinds)
    ).sort_values(["_group", "layer_index", "_kind", "tensor"], kind="stable")
    return findings.drop(columns=["_group", "_kind"]).reset_index(drop=True)


def format_findings(findings: pd.DataFrame, max_per_group: int | None = 6) -> str:
    """Findings as text for a terminal, grouped by run and step.

    Args:
        findings: the output of `diagnose`.
        max_per_group: print at most this many findings per group and count the rest;
            `None` prints all.

    Returns:
        A multi-line string; `"No initialization problems found."` when `findings` is empty.
    """
    if findings.empty:
        return "No initialization problems found."
    lines = []
    for (initializer, step), group in findings.groupby(
        ["initializer", "step"], sort=False, dropna=False
    ):
        if initializer and not pd.isna(step):
            lines.append(f"{initializer} (step {step}):")
        else:
            lines.append(f"{initializer}:" if initializer else f"step {step}:")
        shown = group if max_per_group is None else group.head(max_per_group)
        for row in shown.itertuples():
            advice = f" Try `{row.suggestion}`." if row.suggestion else ""
            lines.append(f"  [{row.kind}] {row.message}{advice}")
        hidden = len(group) - len(shown)
        if hidden:
            kinds = ", ".join(sorted(group["kind"].iloc[len(shown) :].unique()))
            lines.append(f"  ... and {hidden} more ({kinds}).")
    return "\n".join(lines)


def _signals(frame: pd.DataFrame, step: int | None) -> pd.DataFrame:
    """Every frame kind as one long table: (initializer, step, layer, layer_index, layer_class,
    activation, kernel_initializer, tensor, std, frac_saturated, frac_dead_units, nan_count,
    inf_count)."""
    if set(_LAYERSTATS_COLUMNS) <= set(frame.columns):
        return _from_layerstats(frame, step)
    if set(_SWEEP_COLUMNS) <= set(frame.columns):
        if step is not None:
            raise ValueError(
                f"Invalid value for argument `step`. Received: step={step!r}. "
                "Expected None for a depth_sweep frame (it has no steps)."
            )
        return _from_sweep(frame)
    raise ValueError(
        "Invalid value for argument `frame`. "
        f"Received: a frame with columns {sorted(map(str, frame.columns))}. Expected a LayerStats "
        f"frame (columns {sorted(_LAYERSTATS_COLUMNS)}, ...) or a depth_sweep frame "
        f"(columns {sorted(_SWEEP_COLUMNS)}, ...)."
    )


def _from_layerstats(frame: pd.DataFrame, step: int | None) -> pd.DataFrame:
    steps = sorted(frame["step"].unique())
    if step is not None and step not in steps:
        shown = ", ".join(str(s) for s in steps[:20]) + (", ..." if len(steps) > 20 else "")
        raise ValueError(
            f"Invalid value for argument `step`. Received: step={step!r}. "
            f"Expected one of the steps in the frame: {shown}."
        )
    frame = frame.reset_index(drop=True)  # concatenated runs repeat index labels
    runs = _text(frame, "initializer")
    selected = [
        part[part["step"] == (part["step"].min() if step is None else step)]
        for _, part in frame.groupby(runs, sort=False)
    ]
    rows = pd.concat(selected) if selected else frame
    return pd.DataFrame(
        {
            "initializer": runs[rows.index],
            "step": rows["step"].astype(int),
            "layer": rows["layer"],
            "layer_index": rows["layer_index"].astype(int),
            "layer_class": _text(rows, "layer_class"),
            "activation": _text(rows, "activation"),
            "kernel_initializer": _text(rows, "kernel_initializer"),
            "tensor": rows["tensor"],
            "std": rows["std"].astype(float),
            "frac_saturated": _column(rows, "frac_saturated", np.nan).astype(float),
            "frac_dead_units": _column(rows, "frac_dead_units", np.nan).astype(float),
            "nan_count": _column(rows, "nan_count", 0.0).astype(float),
            "inf_count": _column(rows, "inf_count", 0.0).astype(float),
        }
    ).reset_index(drop=True)


def _from_sweep(frame: pd.DataFrame) -> pd.DataFrame:
    """The wide depth_sweep frame; an adapter until the sweep gives the long frame."""
    base = {
        "initializer": frame["initializer"].astype(str),
        "step": pd.NA,
        "layer": frame["layer"],
        "layer_index": frame["layer"].astype(int) - 1,
        "layer_class": "",
        "activation": _text(frame, "activation"),
        # The sweep draws every kernel from its run's spec: `name(args)` names the initializer.
        "kernel_initializer": frame["initializer"].astype(str).str.split("(").str[0].str.strip(),
    }
    activations = pd.DataFrame(
        {
            **base,
            "tensor": "activation",
            "std": frame["activation_std"].astype(float),
            "frac_saturated": _column(frame, "frac_saturated", np.nan).astype(float),
            "frac_dead_units": _column(frame, "frac_dead_units", np.nan).astype(float),
            "nan_count": _column(frame, "nan_count", 0.0).astype(float),
            "inf_count": _column(frame, "inf_count", 0.0).astype(float),
        }
    )
    parts = [activations]
    if "gradient_std" in frame.columns:
        gradients = pd.DataFrame(
            {
                **base,
                "tensor": "activation_grad",
                "std": frame["gradient_std"].astype(float),
                "frac_saturated": np.nan,
                "frac_dead_units": np.nan,
                "nan_count": _column(frame, "gradient_nan_count", 0.0).astype(float),
                "inf_count": _column(frame, "gradient_inf_count", 0.0).astype(float),
            }
        )
        parts.append(gradients)
    return pd.concat(parts, ignore_index=True)


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(default, index=frame.index)


def _text(frame: pd.DataFrame, name: str) -> pd.Series:
    # A CSV reads "" back as NaN.
    return _column(frame, name, "").fillna("").astype(str)


class _Model:
    """One run's rows, in depth order, and what the diagnosis reads from the model's structure."""

    def __init__(self, rows: pd.DataFrame):
        self.rows = rows
        layers = rows.drop_duplicates("layer")
        outputs = rows[rows["tensor"] == "activation"].drop_duplicates("layer")
        # The initializer behind each layer's scale: its own kernel's, else the nearest before.
        initializers = layers["kernel_initializer"].replace("", np.nan).ffill().fillna("")
        self.initializer_of = dict(zip(layers["layer"], initializers, strict=True))
        norms = np.sort(layers.loc[layers["layer_class"].isin(_NORMALIZATION), "layer_index"])
        self.normalized = len(norms) > 0
        # How many normalization layers come before (or are) each row's layer.
        self.segment = pd.Series(
            np.searchsorted(norms, rows["layer_index"].to_numpy(), side="right"), rows.index
        )
        self.by_design = _small_by_design(outputs)
        self.identity_norms = _identity_batch_norms(outputs)
        self.unnormalized_from = (
            self.identity_norms[0].layer_index if self.identity_norms else np.inf
        )

    def trusted(self, tensor: str) -> pd.DataFrame:
        """The rows of `tensor` whose scale says something about the initialization."""
        rows = self.rows
        keep = (
            (rows["tensor"] == tensor)
            & ~rows["layer"].isin(self.by_design)
            & (rows["layer_index"] < self.unnormalized_from)
        )
        return rows[keep]

    def finding(
        self,
        rows: list,
        *,
        kind: str,
        statistic: str,
        value: float,
        threshold: float,
        message: str,
        tensor: str = "activation",
        activation: str | None = None,
        advise: bool = True,
    ) -> dict:
        """A finding over the layers of `rows` (the first is where it starts); with `advise`,
        the suggestion for the activation given the initializers these layers already use."""
        first, last = rows[0], rows[-1]
        activation = first.activation if activation is None else activation
        used = sorted({self.initializer_of.get(r.layer, "") for r in rows} - {""})
        suggestion = suggest_initializer(activation) if advise else ""
        named = "`, `".join(used)
        if advise and any(_same_scale(suggestion, name) for name in used):
            message += (
                f" These layers already use `{named}`, the scale the formula gives "
                f"{activation or 'linear'} layers: the cause is elsewhere (a gain, zero padding, "
                "residual sums without normalization, the input scale, the width); `lsuv` sets "
                "each layer's scale from data."
            )
            suggestion = _DATA_DRIVEN
        return {
            "initializer": first.initializer,
            "step": first.step,
            "layer": first.layer,
            "layer_index": first.layer_index,
            "activation": activation,
            "tensor": tensor,
            "statistic": statistic,
            "kind": kind,
            "value": float(value),
            "threshold": float(threshold),
            "message": message,
            "suggestion": suggestion,
            "last_layer": last.layer,
            "layers": len({r.layer for r in rows}),
        }


def _small_by_design(outputs: pd.DataFrame) -> set[str]:
    """Layers whose output is small on purpose: a `LayerScale`, or a branch under 1 % of the
    residual sum it feeds (the next layer in depth order is an `Add`)."""
    names = set(outputs.loc[outputs["layer_class"].isin(_LAYER_SCALE), "layer"])
    std = outputs["std"].to_numpy()
    merge = outputs["layer_class"].isin(_MERGE).to_numpy()
    for i in np.flatnonzero(merge[1:] & (std[:-1] < _BY_DESIGN_FRACTION * std[1:])):
        names.add(outputs["layer"].iloc[i])
    return names


def _identity_batch_norms(outputs: pd.DataFrame) -> list:
    """The BatchNormalization layers that passed their input (the layer before) through
    unchanged, when they are at least half of them; [] otherwise."""
    records = list(outputs.itertuples())
    norms, identity = 0, []
    for before, here in zip(records, records[1:], strict=False):
        if here.layer_class not in _BATCH_NORMALIZATION:
            continue
        norms += 1
        if (
            before.std > 0
            and abs(here.std / before.std - 1) < _IDENTITY_TOLERANCE
            and abs(here.std - 1) > _NORMALIZED_TOLERANCE
        ):
            identity.append(here)
    return identity if identity and 2 * len(identity) >= norms else []


def _where(rows: list, activation: str | None = None) -> str:
    activation = (rows[0].activation if activation is None else activation) or "no activation"
    layers = list(dict.fromkeys(r.layer for r in rows))
    if len(layers) == 1:
        return f"Layer {layers[0]} ({activation})"
    return f"{len(layers)} layers from {layers[0]} to {layers[-1]} ({activation})"


def _by_activation(rows: pd.DataFrame):
    for _, group in rows.drop_duplicates("layer").groupby("activation", sort=False):
        yield list(group.itertuples())


def _nonfinite(model: _Model) -> list[dict]:
    found = []
    for statistic, what in (("nan_count", "NaN"), ("inf_count", "Inf")):
        rows = list(model.rows[model.rows[statistic] > 0].itertuples())
        if not rows:
            continue
        first = rows[0]
        tensors = "`, `".join(sorted({r.tensor for r in rows}))
        count = int(sum(getattr(r, statistic) for r in rows))
        message = (
            f"{_where(rows)}: {count} {what} values in `{tensors}`, first in `{first.tensor}` "
            f"of layer {first.layer}; the signal overflowed, usually because the weights are "
            "far too large."
        )
        found.append(
            model.finding(
                rows,
                kind="nonfinite",
                statistic=statistic,
                tensor=first.tensor,
                value=getattr(first, statistic),
                threshold=0.0,
                message=message,
            )
        )
    return found


def _unnormalized(model: _Model) -> list[dict]:
    rows = model.identity_norms
    if not rows:
        return []
    outputs = model.rows[model.rows["tensor"] == "activation"]
    norms = outputs.loc[outputs["layer_class"].isin(_BATCH_NORMALIZATION), "layer"].nunique()
    message = (
        f"{len(rows)} of {norms} BatchNormalization layers, from {rows[0].layer} on, pass their "
        "input through unchanged: they ran on their initial moving statistics (mean 0, "
        "variance 1), i.e. in inference mode, where BatchNormalization is the identity at "
        "initialization. Training normalizes with batch statistics, so the activations after "
        "them say nothing about training and are not judged: measure in training mode "
        "(`build_probe(model, training=True)`, or LayerStats measuring fit's training step)."
    )
    return [
        model.finding(
            rows,
            kind="unnormalized",
            statistic="std_ratio",
            value=len(rows) / norms,
            threshold=0.5,
            message=message,
            activation="",
            advise=False,  # not an initializer problem
        )
    ]


def _constant(model: _Model) -> list[dict]:
    """One finding for every constant layer of the run: each one after the first may only be
    constant because its input is, so the first one names the cause and the suggestion."""
    rows = model.trusted("activation")
    rows = list(rows[rows["std"] == 0].drop_duplicates("layer").itertuples())
    if not rows:
        return []
    first = rows[0]
    after = f" ({len(rows) - 1} more after it, up to {rows[-1].layer})" if len(rows) > 1 else ""
    message = (
        f"{_where([first])}: every output is the same value (std 0){after}, so all units "
        "compute the same thing and get the same update: zeros or constant weights never break "
        "this symmetry."
    )
    finding = model.finding([first], kind="constant", statistic="std", value=0.0,
                            threshold=0.0, message=message)  # fmt: skip
    return [{**finding, "last_layer": rows[-1].layer, "layers": len(rows)}]


def _threshold(model: _Model, statistic: str, kind: str, threshold: float) -> list[dict]:
    rows = model.trusted("activation")
    rows = rows[rows[statistic] > threshold]
    if kind == "dead_units":
        rows = rows[rows["std"] != 0]  # a constant layer is already reported as `constant`
    found = []
    for group in _by_activation(rows):
        value = max(getattr(r, statistic) for r in group)
        share = f"{value:.0%}" if len(group) == 1 else f"up to {value:.0%}"
        if kind == "saturated":
            message = (
                f"{_where(group)}: {share} of the activations sit at the bounds of the "
                "nonlinearity, where its derivative is ~0 and gradients vanish: the weights are "
                "too large."
            )
        else:
            message = (
                f"{_where(group)}: {share} of the units output 0 for every example (dead "
                "units); they pass no gradient and stop learning."
            )
        found.append(
            model.finding(
                group,
                kind=kind,
                statistic=statistic,
                value=value,
                threshold=threshold,
                message=message,
            )
        )
    return found


def _chains(model: _Model, tensor: str):
    """`(activation, records)` per chain of comparable layers, in the direction the signal
    travels: activations forward, gradients from the output back to the input.

    Only layers with the same activation are compared: a change of nonlinearity (a tanh stack
    feeding linear logits) or a layer without one (dropout, pooling, merges) changes the scale
    by design. With normalization layers, only nonlinear layers of the same class between the
    same two of them: there a layer of another class is a side branch whose scale differs by
    design (EfficientNet's squeeze-and-excite conv reads the pooled activations).
    """
    rows = model.trusted(tensor)
    rows = rows[
        ~rows["activation"].isin(_NOT_A_SIGNAL | {""})
        & np.isfinite(rows["std"].to_numpy())
        & (rows["std"] > 0)  # std 0 is reported as `constant`
    ]
    if model.normalized:
        rows = rows[rows["activation"] != "linear"]
        keys = [rows["activation"], rows["layer_class"], model.segment[rows.index]]
    else:
        keys = [rows["activation"]]
    for (activation, *_), group in rows.groupby(keys, sort=False):
        records = list(group.itertuples())
        yield activation, (records[::-1] if tensor == "activation_grad" else records)


def _ratios(model: _Model, factor: float, trend_factor: float, drift_factor: float) -> list[dict]:
    """Per-layer ratios, then the fitted trend of chains where no layer failed; one finding per
    (tensor, kind, test, activation)."""
    found = []
    for tensor in ("activation", "activation_grad"):
        steps: dict[tuple, list] = {}  # (activation, kind, statistic) -> [(there, here, ratio)]
        for activation, records in _chains(model, tensor):
            failing = [
                (there, here, here.std / there.std)
                for there, here in zip(records, records[1:], strict=False)
                if not 1 / factor <= here.std / there.std <= factor
            ]
            for there, here, ratio in failing:
                key = (activation, "vanishing" if ratio < 1 else "exploding", "std_ratio")
                steps.setdefault(key, []).append((there, here, ratio))
            if failing or len(records) < 3:
                continue
            depth = np.arange(len(records))
            ratio = float(np.exp(np.polyfit(depth, np.log([r.std for r in records]), 1)[0]))
            total = ratio ** (len(records) - 1)
            drifts = activation not in _SATURATING and not 1 / drift_factor <= total <= drift_factor
            if drifts or not 1 / trend_factor <= ratio <= trend_factor:
                key = (activation, "vanishing" if ratio < 1 else "exploding", "mean_std_ratio")
                steps.setdefault(key, []).append((records, ratio))
        for (activation, kind, statistic), found_steps in steps.items():
            if statistic == "std_ratio":
                found.append(_step_finding(model, tensor, activation, kind, found_steps, factor))
            else:
                found.append(
                    _trend_finding(model, tensor, activation, kind, found_steps, trend_factor)
                )
    return found


def _signal(tensor: str, ratio: float) -> tuple[str, str]:
    """(what is measured, why it matters) for a ratio finding."""
    direction = "fades" if ratio < 1 else "blows up"
    if tensor == "activation":
        return "activation std", f"the forward signal {direction} with depth"
    return (
        "back-propagated gradient std",
        f"the backward signal {direction} on its way back to the input",
    )


def _change(ratio: float) -> str:
    return f"fell {1 / ratio:.3g}x" if ratio < 1 else f"grew {ratio:.3g}x"


def _too(ratio: float) -> str:
    return f"the weights are too {'small' if ratio < 1 else 'large'} for this activation."


def _step_finding(model, tensor, activation, kind, steps, factor) -> dict:
    """The layers where the std changed by more than `factor` from the layer before."""
    ratio = float(np.exp(np.mean(np.log([r for _, _, r in steps]))))
    subject, cause = _signal(tensor, ratio)
    there, here = steps[0][0], steps[-1][1]
    where = [h for _, h, _ in steps]
    if len(steps) == 1:
        what = f"{subject} {_change(ratio)} from layer {there.layer}"
    else:
        what = (
            f"{subject} {_change(ratio)} per layer on average, from layer {there.layer} to "
            f"layer {here.layer}"
        )
    message = f"{_where(where)}: {what} ({there.std:.3g} -> {here.std:.3g}); {cause}: {_too(ratio)}"
    return model.finding(
        where,
        kind=kind,
        statistic="std_ratio",
        value=ratio,
        threshold=1 / factor if ratio < 1 else factor,
        message=message,
        tensor=tensor,
        activation=activation,
    )


def _trend_finding(model, tensor, activation, kind, chains, trend_factor) -> dict:
    """Chains whose fitted std trend over depth is beyond `trend_factor` per layer or
    `drift_factor` in all (one entry per chain: its records, its fitted ratio per layer)."""
    ratio = float(np.exp(np.mean(np.log([r for _, r in chains]))))
    subject, cause = _signal(tensor, ratio)
    records = [r for chain, _ in chains for r in chain]
    first, last = chains[0][0][0], chains[-1][0][-1]
    message = (
        f"{_where(records)}: {subject} {_change(ratio)} per layer on the fitted trend, from "
        f"layer {first.layer} to layer {last.layer} ({first.std:.3g} -> {last.std:.3g}); "
        f"{cause}: {_too(ratio)}"
    )
    return model.finding(
        records,
        kind=kind,
        statistic="mean_std_ratio",
        value=ratio,
        threshold=1 / trend_factor if ratio < 1 else trend_factor,
        message=message,
        tensor=tensor,
        activation=activation,
    )
