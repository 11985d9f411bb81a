"""Read per-layer statistics and say, in plain English, what is wrong with an initialization.

`diagnose` accepts the two frames the package produces and returns one row per finding:

- a `LayerStats` frame (`LayerStats.to_dataframe()` or `layer_stats.csv`): one row per
  (step, layer, tensor) with `std`, `frac_saturated`, `frac_dead_units`, `nan_count`,
  `inf_count`; one step is diagnosed (by default the first, i.e. the initialization);
- a `depth_sweep` frame (`keras_initx.experiments.depth_sweep`): one row per (initializer, layer)
  with `activation_std` and optionally `gradient_std`, `frac_saturated`, `frac_dead_units`,
  `nan_count`, `inf_count`.

Finding kinds, in the order they are reported for a layer:

| kind         | when                                                                             |
| ------------ | -------------------------------------------------------------------------------- |
| `nonfinite`  | any NaN or Inf in a tensor                                                       |
| `constant`   | a layer's output has std 0: every unit computes the same value (zeros/constant)  |
| `vanishing`  | activation std shrinks by more than `factor` from one layer to the next, or the  |
|              | back-propagated gradient std shrinks by more than `factor` going towards input;  |
|              | or, over 3+ layers, by more than `trend_factor` per layer on (geometric) average |
| `exploding`  | the same ratios grow by more than `factor` (or `trend_factor` on average)        |
| `saturated`  | `frac_saturated` above `saturated_threshold` (tanh/sigmoid stuck at their bounds) |
| `dead_units` | `frac_dead_units` above `dead_threshold` (units that output 0 for every example) |

Each finding carries a suggested initializer for the layer's activation (`suggest_initializer`).
This module is pure pandas: it imports nothing from the rest of the package but the pure-Python
`keras_initx.validation`, so the callback can use it at step 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keras_initx.validation import check_number

__all__ = ["FINDING_COLUMNS", "diagnose", "format_findings", "suggest_initializer"]

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
]

_KIND_ORDER = ["nonfinite", "constant", "vanishing", "exploding", "saturated", "dead_units"]

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

# Probabilities, not signals: their spread says nothing about how well the signal propagates, so
# ratio checks skip these layers (a softmax head always "shrinks" the std of the hidden layer).
_NOT_A_SIGNAL = frozenset({"softmax", "log_softmax"})

_LAYERSTATS_COLUMNS = ("step", "layer", "layer_index", "tensor", "std")
_SWEEP_COLUMNS = ("initializer", "layer", "activation_std")


def suggest_initializer(activation: str) -> str:
    """Initializer to try for a layer with this activation.

    Glorot for tanh and linear layers (Glorot & Bengio 2010), the sigmoid-scaled Glorot for the
    logistic sigmoid (Bengio 2012), He for the ReLU family (He et al. 2015) and LeCun normal for
    SELU (Klambauer et al. 2017). Anything else gets `glorot_uniform`, Keras' default.

    Args:
        activation: the layer's activation name (`""` or `"linear"` for none).

    Returns:
        A string name that `keras.initializers.get` resolves once `keras_initx` is imported.

    Example:
        >>> suggest_initializer("relu")
        'he_normal'
    """
    name = (activation or "linear").strip().lower()
    if name in _RELU_FAMILY:
        return "he_normal"
    if name in _SIGMOID_FAMILY:
        return "sigmoid_glorot_uniform"
    if name == "selu":
        return "lecun_normal"
    return "glorot_uniform"


def diagnose(
    frame: pd.DataFrame,
    *,
    factor: float = 1.5,
    trend_factor: float = 1.25,
    saturated_threshold: float = 0.25,
    dead_threshold: float = 0.1,
    step: int | None = None,
) -> pd.DataFrame:
    """Find vanishing, exploding, saturated, dead, constant and non-finite layers.

    The ratio tests follow Glorot & Bengio (2010): a healthy initialization keeps the activation
    std and the back-propagated gradient std about constant from layer to layer. Two tests, so
    that both a collapse and a slow steady drift are caught:

    - per layer, `factor` (default 1.5): `0.01 * randn` on tanh (ratio 0.22 per layer, seed 001)
      and U(-1/sqrt(n), 1/sqrt(n)) on tanh (~0.58) fail at every layer, while
      `randn / sqrt(fan_in)` on tanh (0.78 to 0.95) passes;
    - over the whole stack (3+ layers, only when no layer failed the first test), the geometric
      mean ratio against `trend_factor` (default 1.25, i.e. 0.8): Glorot on ReLU (1/sqrt(2) =
      0.71 per layer, He et al. 2015) fails, Glorot on tanh (0.85 to 0.9) and He on ReLU pass.
      The finding sits on the layer where the drift ends (deepest for activations, first for
      gradients).

    Args:
        frame: a `LayerStats` frame or a `depth_sweep` frame (see the module docstring).
        factor: a std ratio between neighbouring layers above `factor` is `exploding`, below
            `1 / factor` is `vanishing`. Must be > 1.
        trend_factor: the same for the average ratio per layer over the whole stack. Must be > 1.
        saturated_threshold: fraction of saturated activations above which a layer is reported.
        dead_threshold: fraction of dead units above which a layer is reported.
        step: for a `LayerStats` frame, the step to diagnose; `None` takes the first step in the
            frame (normally 0, the initialization). Must be `None` for a `depth_sweep` frame.

    Returns:
        A DataFrame with columns `FINDING_COLUMNS`, one row per finding, ordered by initializer
        (as in `frame`), layer depth and kind. `initializer` is `""` for a `LayerStats` frame and
        `step` is `<NA>` for a `depth_sweep` frame. An empty frame (same columns) means nothing
        was found.

    Example:
        >>> findings = diagnose(depth_sweep(["random_normal(stddev=0.01)", "glorot_uniform"]))
        >>> print(format_findings(findings))
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            "Invalid type for argument `frame`. "
            f"Received: frame of type {type(frame).__name__}. Expected a pandas DataFrame."
        )
    check_number("factor", factor, low=1.0, low_inclusive=False)
    check_number("trend_factor", trend_factor, low=1.0, low_inclusive=False)
    check_number("saturated_threshold", saturated_threshold, low=0.0, high=1.0)
    check_number("dead_threshold", dead_threshold, low=0.0, high=1.0)
    signals = _signals(frame, step)
    rows = [
        *_nonfinite(signals),
        *_constant(signals),
        *_ratios(signals, factor, trend_factor),
        *_threshold(signals, "frac_saturated", "saturated", saturated_threshold),
        *_threshold(signals, "frac_dead_units", "dead_units", dead_threshold),
    ]
    findings = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    findings["step"] = findings["step"].astype("Int64")
    findings["layer_index"] = findings["layer_index"].astype("Int64")
    findings["value"] = findings["value"].astype(float)
    findings["threshold"] = findings["threshold"].astype(float)
    # Initializers in the order of the input frame, then depth, then the order of `_KIND_ORDER`.
    groups = {name: i for i, name in enumerate(signals["initializer"].unique())}
    kinds = {kind: i for i, kind in enumerate(_KIND_ORDER)}
    findings = findings.assign(
        _group=findings["initializer"].map(groups), _kind=findings["kind"].map(kinds)
    ).sort_values(["_group", "layer_index", "_kind", "tensor"], kind="stable")
    return findings.drop(columns=["_group", "_kind"]).reset_index(drop=True)


def format_findings(findings: pd.DataFrame, max_per_group: int | None = 6) -> str:
    """Findings as text for a terminal, grouped by initializer (sweep) or step (LayerStats).

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
        header = f"{initializer}:" if initializer else f"step {step}:"
        lines.append(header)
        shown = group if max_per_group is None else group.head(max_per_group)
        for row in shown.itertuples():
            lines.append(f"  [{row.kind}] {row.message} Try `{row.suggestion}`.")
        hidden = len(group) - len(shown)
        if hidden:
            kinds = ", ".join(sorted(group["kind"].iloc[len(shown) :].unique()))
            lines.append(f"  ... and {hidden} more ({kinds}).")
    return "\n".join(lines)


def _signals(frame: pd.DataFrame, step: int | None) -> pd.DataFrame:
    """Both frame kinds as one long table: (initializer, step, layer, layer_index, activation,
    tensor, std, frac_saturated, frac_dead_units, nan_count, inf_count)."""
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
    if step is None:
        step = steps[0] if steps else 0
    elif step not in steps:
        shown = ", ".join(str(s) for s in steps[:20]) + (", ..." if len(steps) > 20 else "")
        raise ValueError(
            f"Invalid value for argument `step`. Received: step={step!r}. "
            f"Expected one of the steps in the frame: {shown}."
        )
    rows = frame[frame["step"] == step]
    signals = pd.DataFrame(
        {
            "initializer": "",
            "step": int(step),
            "layer": rows["layer"],
            "layer_index": rows["layer_index"].astype(int),
            "activation": _column(rows, "activation", "").fillna("").astype(str),
            "tensor": rows["tensor"],
            "std": rows["std"].astype(float),
            "frac_saturated": _column(rows, "frac_saturated", np.nan).astype(float),
            "frac_dead_units": _column(rows, "frac_dead_units", np.nan).astype(float),
            "nan_count": _column(rows, "nan_count", 0.0).astype(float),
            "inf_count": _column(rows, "inf_count", 0.0).astype(float),
        }
    )
    return signals.reset_index(drop=True)


def _from_sweep(frame: pd.DataFrame) -> pd.DataFrame:
    base = {
        "initializer": frame["initializer"].astype(str),
        "step": pd.NA,
        "layer": frame["layer"],
        "layer_index": frame["layer"].astype(int) - 1,
        "activation": _column(frame, "activation", "").fillna("").astype(str),
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


def _finding(
    row: object,
    *,
    tensor: str,
    statistic: str,
    kind: str,
    value: float,
    threshold: float,
    message: str,
) -> dict:
    activation = row.activation
    return {
        "initializer": row.initializer,
        "step": row.step,
        "layer": row.layer,
        "layer_index": row.layer_index,
        "activation": activation,
        "tensor": tensor,
        "statistic": statistic,
        "kind": kind,
        "value": float(value),
        "threshold": float(threshold),
        "message": message,
        "suggestion": suggest_initializer(activation),
    }


def _where(row: object) -> str:
    activation = row.activation or "no activation"
    return f"Layer {row.layer} ({activation})"


def _nonfinite(signals: pd.DataFrame) -> list[dict]:
    found = []
    for row in signals.itertuples():
        for statistic, what in (("nan_count", "NaN"), ("inf_count", "Inf")):
            count = getattr(row, statistic)
            if count > 0:
                found.append(
                    _finding(
                        row,
                        tensor=row.tensor,
                        statistic=statistic,
                        kind="nonfinite",
                        value=count,
                        threshold=0.0,
                        message=(
                            f"{_where(row)}: {int(count)} {what} values in `{row.tensor}`; the "
                            "signal overflowed, usually because the weights are far too large."
                        ),
                    )
                )
    return found


def _constant(signals: pd.DataFrame) -> list[dict]:
    found = []
    for row in signals[(signals["tensor"] == "activation") & (signals["std"] == 0)].itertuples():
        found.append(
            _finding(
                row,
                tensor="activation",
                statistic="std",
                kind="constant",
                value=0.0,
                threshold=0.0,
                message=(
                    f"{_where(row)}: every output is the same value (std 0), so all units "
                    "compute the same thing and get the same update: zeros or constant weights "
                    "never break this symmetry."
                ),
            )
        )
    return found


def _ratios(signals: pd.DataFrame, factor: float, trend_factor: float) -> list[dict]:
    """Std ratios in the direction each signal travels: activations forward (a layer over the
    previous one), gradients backward (a layer over the next, deeper one).

    Only layers with the same activation are compared: a change of nonlinearity (a tanh stack
    feeding linear logits) or a layer without one (dropout, pooling) changes the scale by design,
    so the ratio across it says nothing about the initialization.
    """
    found = []
    usable = signals[
        ~signals["activation"].isin(_NOT_A_SIGNAL | {""})
        & np.isfinite(signals["std"].to_numpy())
    ]
    for (_, _, tensor, _), group in usable.groupby(
        ["initializer", "step", "tensor", "activation"], sort=False, dropna=False
    ):
        if tensor not in ("activation", "activation_grad"):
            continue
        records = list(group.sort_values("layer_index").itertuples())
        if tensor == "activation_grad":
            records.reverse()  # travel order: from the output back to the input
        per_layer = [
            _ratio_finding(records[i], records[i - 1], tensor, factor, per_layer=1)
            for i in range(1, len(records))
        ]
        per_layer = [finding for finding in per_layer if finding is not None]
        found += per_layer
        if not per_layer and len(records) >= 3:
            trend = _ratio_finding(
                records[-1], records[0], tensor, trend_factor, per_layer=len(records) - 1
            )
            found += [trend] if trend is not None else []
    return found


def _ratio_finding(
    here: object, there: object, tensor: str, factor: float, per_layer: int
) -> dict | None:
    """A finding when std changes from `there` to `here` by more than `factor` per layer, on
    geometric average over `per_layer` layers; None otherwise (or when a std is 0, which is
    reported as `constant`)."""
    if here.std <= 0 or there.std <= 0:
        return None
    ratio = (here.std / there.std) ** (1 / per_layer)
    if 1 / factor <= ratio <= factor:
        return None
    change = f"fell {1 / ratio:.3g}x" if ratio < 1 else f"grew {ratio:.3g}x"
    if per_layer > 1:
        change += f" per layer on average over {per_layer} layers"
    direction = "fades" if ratio < 1 else "blows up"
    if tensor == "activation":
        what = f"activation std {change} from layer {there.layer}"
        cause = f"the forward signal {direction} with depth"
    else:
        what = f"back-propagated gradient std {change} from layer {there.layer}"
        cause = f"the backward signal {direction} on its way back to the input"
    return _finding(
        here,
        tensor=tensor,
        statistic="std_ratio" if per_layer == 1 else "mean_std_ratio",
        kind="vanishing" if ratio < 1 else "exploding",
        value=ratio,
        threshold=1 / factor if ratio < 1 else factor,
        message=(
            f"{_where(here)}: {what} ({there.std:.3g} -> {here.std:.3g}); {cause}: the weights "
            f"are too {'small' if ratio < 1 else 'large'} for this activation."
        ),
    )


def _threshold(
    signals: pd.DataFrame, statistic: str, kind: str, threshold: float
) -> list[dict]:
    found = []
    rows = signals[(signals["tensor"] == "activation") & (signals[statistic] > threshold)]
    if kind == "dead_units":
        rows = rows[rows["std"] != 0]  # a constant layer is already reported as `constant`
    for row in rows.itertuples():
        value = getattr(row, statistic)
        if kind == "saturated":
            message = (
                f"{_where(row)}: {value:.0%} of the activations sit at the bounds of the "
                "nonlinearity, where its derivative is ~0 and gradients vanish: the weights are "
                "too large."
            )
        else:
            message = (
                f"{_where(row)}: {value:.0%} of the units output 0 for every example (dead "
                "units); they pass no gradient and stop learning."
            )
        found.append(
            _finding(
                row,
                tensor="activation",
                statistic=statistic,
                kind=kind,
                value=value,
                threshold=threshold,
                message=message,
            )
        )
    return found
