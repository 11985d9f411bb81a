"""Sinks: where `LayerStats` measurements go. A sink is any object with the three methods of
`Sink` (`write(rows, histograms)`, `flush()`, `close()`); `LayerStats(sinks=[...])` adds a
user's own, e.g. one that forwards the rows to another logger.

- `FrameSink`: in-memory pandas frame, appended to `layer_stats.csv` as it goes, one measurement
  per write, crash safe (and rewritten to `layer_stats.parquet` on flush when pyarrow is
  importable); `read_layer_stats` reads the CSV back without a killed writer's torn tail.
- `TensorBoardSink`: scalars and histograms in one run per layer under `layer_stats`, beside
  Keras' own runs, so each chart holds every layer.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from keras_initx.sinks.frame import COLUMNS, FrameSink, read_layer_stats, result_rows
from keras_initx.sinks.tensorboard import TensorBoardSink

__all__ = ["COLUMNS", "FrameSink", "Sink", "TensorBoardSink", "read_layer_stats", "result_rows"]


@runtime_checkable
class Sink(Protocol):
    """Receives each measurement as it is made, on `LayerStats`' writer thread, in order."""

    def write(self, rows: pd.DataFrame, histograms: np.ndarray | None = None) -> None:
        """One measurement: `rows` with `COLUMNS` (one per layer and tensor) and, when the
        TensorBoard run is on, `histograms` `[len(rows), bins + 2]` (`ProbeResult.histograms`)."""

    def flush(self) -> None:
        """Make what was written durable (called at each epoch end)."""

    def close(self) -> None:
        """Release files and handles (called at the end of training)."""
