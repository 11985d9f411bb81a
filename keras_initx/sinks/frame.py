"""The LayerStats frame: rows accumulated in memory and appended to CSV (and Parquet) on disk.

CSV is the crash-safe copy: every `write` appends its rows in one write call and flushes, so a
killed run keeps every measurement written so far. Parquet cannot be appended cheaply, so
`layer_stats.parquet` is rewritten from the in-memory frame on `flush()` (the callback flushes
at each epoch end and at the end of training); after a crash it may lag the CSV by up to an
epoch.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keras_initx.stats import STAT_NAMES

if TYPE_CHECKING:  # annotations only: sinks sit beside capture, they do not run it
    from keras_initx.capture import ProbeResult

__all__ = ["COLUMNS", "FrameSink", "result_rows"]

# The shared contract (team brief): one row per (step, layer, tensor), in this column order.
KEY_COLUMNS: tuple[str, ...] = (
    "step",
    "epoch",
    "layer",
    "layer_index",
    "layer_class",
    "activation",
    "kernel_initializer",
    "tensor",
)
COLUMNS: tuple[str, ...] = KEY_COLUMNS + STAT_NAMES

_DTYPES = {
    "step": "int64",
    "epoch": "int64",
    "layer": "str",
    "layer_index": "int64",
    "layer_class": "str",
    "activation": "str",
    "kernel_initializer": "str",
    "tensor": "str",
    **dict.fromkeys(STAT_NAMES, "float64"),
}


def result_rows(result: ProbeResult, step: int, epoch: int = 0) -> pd.DataFrame:
    """One probe measurement as rows: one per (layer, tensor), columns `COLUMNS`.

    The one place that turns a `keras_initx.capture.ProbeResult` into the long frame, shared by
    `LayerStats` and `keras_initx.signal_propagation`, so both give the same rows for the same
    measurement. Statistics the probe did not compute are NaN: the frame always has every column.

    Args:
        result: what a `Probe` call returned.
        step: the value of the `step` column (optimizer steps before the measurement).
        epoch: the value of the `epoch` column.

    Returns:
        A DataFrame with `COLUMNS`, layers in depth order, tensors in `capture.TENSORS` order.
    """
    rows = result.rows
    values = np.full((len(rows), len(STAT_NAMES)), np.nan)
    values[:, [STAT_NAMES.index(s) for s in result.stats]] = result.values
    return pd.DataFrame(
        {
            "step": np.full(len(rows), step, np.int64),
            "epoch": np.full(len(rows), epoch, np.int64),
            "layer": pd.Series([info.path for info, _ in rows], dtype="str"),
            "layer_index": pd.Series([info.index for info, _ in rows], dtype="int64"),
            "layer_class": pd.Series([info.layer_class for info, _ in rows], dtype="str"),
            "activation": pd.Series([info.activation for info, _ in rows], dtype="str"),
            "kernel_initializer": pd.Series(
                [info.kernel_initializer for info, _ in rows], dtype="str"
            ),
            "tensor": pd.Series([tensor for _, tensor in rows], dtype="str"),
            **dict(zip(STAT_NAMES, values.T, strict=True)),
        }
    )


def _conform(rows: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(
            f"Invalid value for argument `rows`. Received columns {list(rows.columns)}, "
            f"missing {missing}. Expected the columns {list(COLUMNS)}."
        )
    rows = rows.loc[:, list(COLUMNS)]
    if all(str(rows[c].dtype) == d for c, d in _DTYPES.items()):
        return rows  # already conforming (the callback's rows): skip a copy per column
    return rows.astype(_DTYPES)


class FrameSink:
    """Accumulates measurement rows as a DataFrame; optionally mirrors them to files.

    Args:
        log_dir: directory for `layer_stats.csv` (and `.parquet`), or None for memory only.
            The files are started afresh by the first `write` of this sink, then appended.
        parquet: write `layer_stats.parquet` on `flush()`; default: when pyarrow is
            importable.
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, parquet: bool | None = None):
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        if parquet is None:
            parquet = importlib.util.find_spec("pyarrow") is not None
        self.parquet = parquet and self.log_dir is not None
        self._chunks: list[pd.DataFrame] = []
        self._csv_started = False

    @property
    def csv_path(self) -> str | None:
        return None if self.log_dir is None else os.path.join(self.log_dir, "layer_stats.csv")

    @property
    def parquet_path(self) -> str | None:
        return None if self.log_dir is None else os.path.join(self.log_dir, "layer_stats.parquet")

    def write(self, rows: pd.DataFrame, histograms: object = None) -> None:
        """Add rows (a frame with `COLUMNS`); append them to the CSV at once.

        `histograms` is accepted for the common sink interface and ignored.
        """
        del histograms
        rows = _conform(rows)
        self._chunks.append(rows)
        if self.log_dir is None:
            return
        os.makedirs(self.log_dir, exist_ok=True)
        # One write call per measurement: a killed run leaves whole measurements, not half one.
        text = rows.to_csv(header=not self._csv_started, index=False)
        with open(self.csv_path, "a" if self._csv_started else "w", newline="") as f:
            f.write(text)
            f.flush()
        self._csv_started = True

    def to_dataframe(self) -> pd.DataFrame:
        """Every row written so far, `COLUMNS` order, a fresh 0..n-1 index."""
        if not self._chunks:
            return pd.DataFrame({c: pd.Series(dtype=d) for c, d in _DTYPES.items()})
        frame = pd.concat(self._chunks, ignore_index=True)
        # Keep one chunk so repeated calls stay cheap.
        self._chunks = [frame]
        return frame.copy()

    def flush(self) -> None:
        """Rewrite the Parquet file from memory (the CSV is already up to date)."""
        if self.parquet and self._chunks:
            self.to_dataframe().to_parquet(self.parquet_path, index=False)

    def close(self) -> None:
        self.flush()
