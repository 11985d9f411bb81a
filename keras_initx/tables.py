"""Wide views of a depth sweep's long frame: one row per (initializer, layer), one table per column.

`keras_initx.sweep.depth_sweep` gives the long frame every measurement in the package shares (the
`LayerStats` columns, one row per layer and tensor, plus `initializer`). The seed experiments
read better wide: `sweep_table` gives one row per (initializer, layer) with `activation_std`,
`gradient_std`, ...; `depth_table` one of those columns as the seed's printed table (layers down,
initializers across); `histogram_table` the per-bin rows that `keras_initx.plots.plot_histograms`
draws.

Pure pandas and NumPy, like `keras_initx.plots`: a saved sweep CSV is turned into tables without
TensorFlow work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SWEEP_TABLE_COLUMNS", "depth_table", "histogram_table", "sweep_table"]

# Wide column -> (tensor, statistic) of the long frame it is read from.
_WIDE: dict[str, tuple[str, str]] = {
    "activation_mean": ("activation", "mean"),
    "activation_std": ("activation", "std"),
    "preactivation_std": ("preactivation", "std"),
    "frac_saturated": ("activation", "frac_saturated"),
    "frac_dead_units": ("activation", "frac_dead_units"),
    "nan_count": ("activation", "nan_count"),
    "inf_count": ("activation", "inf_count"),
    "gradient_std": ("activation_grad", "std"),
    "preactivation_grad_std": ("preactivation_grad", "std"),
    "gradient_nan_count": ("activation_grad", "nan_count"),
    "gradient_inf_count": ("activation_grad", "inf_count"),
}
SWEEP_TABLE_COLUMNS: tuple[str, ...] = ("initializer", "layer", "activation", *_WIDE)

_KEYS = ["initializer", "layer_index"]
_REQUIRED = ("initializer", "layer_index", "activation", "tensor")


def sweep_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (initializer, layer) with the sweep's named columns.

    Columns `SWEEP_TABLE_COLUMNS`: `initializer`, `layer` (1-based depth: `layer_index + 1`),
    `activation` (its name), then `activation_mean`, `activation_std`, `preactivation_std`,
    `frac_saturated`, `frac_dead_units`, `nan_count`, `inf_count` (of the activations) and, when
    the frame has gradients, `gradient_std` (dL/d activation), `preactivation_grad_std` (dL/d
    pre-activation), `gradient_nan_count`, `gradient_inf_count`. A layer without a separate
    pre-activation (a linear one: its output is its pre-activation) takes its activation's
    values for the `preactivation_*` columns.

    Args:
        frame: a `DepthSweep.frame` (or its saved CSV): the `LayerStats` columns plus
            `initializer`.

    Returns:
        The wide frame, initializers in frame order, layers in depth order.

    Raises:
        ValueError: a column the table needs is missing, or there is no activation row.

    Example:
        >>> table = sweep_table(depth_sweep(SEED_001_INITIALIZERS).frame)
        >>> table[["initializer", "layer", "activation_std", "gradient_std"]]
    """
    _require(frame, _REQUIRED)
    activations = frame[frame["tensor"] == "activation"]
    if activations.empty:
        raise ValueError(
            "Invalid value for argument `frame`. Received: a frame without `tensor == "
            "'activation'` rows. Expected a depth sweep frame (`DepthSweep.frame`)."
        )
    table = activations[[*_KEYS, "activation"]].reset_index(drop=True)
    tensors = set(frame["tensor"])
    for column, (tensor, stat) in _WIDE.items():
        if tensor.endswith("_grad") and tensor not in tensors:
            continue  # a sweep without gradients
        values = _values(frame, tensor, stat)
        if tensor.startswith("preactivation"):
            own = _values(frame, tensor.removeprefix("pre"), stat)
            values = values.combine_first(own)
        table = table.merge(values.rename(column), left_on=_KEYS, right_index=True, how="left")
    table.insert(1, "layer", table.pop("layer_index").astype(int) + 1)
    return table


def depth_table(frame: pd.DataFrame, value: str = "activation_std") -> pd.DataFrame:
    """One `sweep_table` column as the seed's table: layers down, initializers across (in the
    frame's order, not sorted).

    Args:
        frame: a `DepthSweep.frame`.
        value: a `sweep_table` column, e.g. `activation_std`, `gradient_std`.

    Returns:
        A DataFrame indexed by `layer` (1-based), one column per initializer.

    Example:
        >>> depth_table(depth_sweep(SEED_001_INITIALIZERS).frame, "activation_std")
    """
    table = sweep_table(frame)
    values = [c for c in table.columns if c not in ("initializer", "layer", "activation")]
    if value not in values:
        raise ValueError(
            f"Invalid value for argument `value`. Received: value={value!r}. Expected one of "
            f"{values}."
        )
    wide = table.pivot(index="layer", columns="initializer", values=value)
    return wide[list(table["initializer"].unique())]


def histogram_table(
    frame: pd.DataFrame, histograms: np.ndarray, tensor: str = "activation"
) -> pd.DataFrame:
    """The histograms of one tensor as rows per bin, for `plots.plot_histograms` and CSV.

    Args:
        frame: a `DepthSweep.frame`.
        histograms: `DepthSweep.histograms`, `[len(frame), bins + 2]` = `[lo, hi, counts...]` per
            row of `frame` (the probe's form: `bins` equal bins over [lo, hi]).
        tensor: which tensor's histograms.

    Returns:
        One row per (initializer, layer, bin): `initializer`, `layer` (1-based), `bin_left`,
        `bin_right`, `count` (the probe scales the counts of its subsample to the number of
        finite values, so they are floats).
    """
    _require(frame, _REQUIRED)
    histograms = np.asarray(histograms, dtype=float)
    if histograms.ndim != 2 or len(histograms) != len(frame) or histograms.shape[1] < 3:
        raise ValueError(
            "Invalid value for argument `histograms`. "
            f"Received: an array of shape {histograms.shape}. Expected ({len(frame)}, bins + 2): "
            "one `[lo, hi, counts...]` row per row of `frame`."
        )
    selected = (frame["tensor"] == tensor).to_numpy()
    rows = frame[selected]
    lo, hi, counts = (histograms[selected, 0], histograms[selected, 1], histograms[selected, 2:])
    bins = counts.shape[1]
    edges = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, bins + 1)[None, :]
    return pd.DataFrame(
        {
            "initializer": np.repeat(rows["initializer"].to_numpy(), bins),
            "layer": np.repeat(rows["layer_index"].to_numpy(dtype=int) + 1, bins),
            "bin_left": edges[:, :-1].ravel(),
            "bin_right": edges[:, 1:].ravel(),
            "count": counts.ravel(),
        }
    )


def _values(frame: pd.DataFrame, tensor: str, stat: str) -> pd.Series:
    """`stat` of `tensor`'s rows, indexed by (initializer, layer_index)."""
    rows = frame[frame["tensor"] == tensor]
    return rows.set_index(_KEYS)[stat].astype(float)


def _require(frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"Invalid value for argument `frame`. Received: a frame with columns "
            f"{list(map(str, frame.columns))}, missing {missing}. Expected a depth sweep frame "
            "(`DepthSweep.frame`: the LayerStats columns plus `initializer`)."
        )
