"""TensorBoard sink: per-layer scalars and histograms in a `layer_stats` run.

The run directory `log_dir/layer_stats` sits beside the `train` and `validation` runs that
`keras.callbacks.TensorBoard(log_dir)` writes, so TensorBoard shows the statistics next to the
loss curves; the sink has its own writer and never touches the default one, so it works with or
without Keras' callback in the same fit.

Tags: scalars `<tensor>/<layer path>/<stat>` (e.g. `activation/sequential/dense/std`) and
histograms `<tensor>/<layer path>`, stored as TF2 summaries (tensors with the scalar and
histogram plugins' metadata, as `tf.summary.scalar`/`histogram` store them). A measurement
holds about a thousand scalars: written one by one with eager `tf.summary.scalar` they cost
more than the probe itself, and a `tf.function` holding a thousand summary ops takes seconds to
trace, so each measurement is one `Summary` protocol buffer built here and written with one
`tf.summary.experimental.write_raw_pb` call.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata

__all__ = ["RUN_NAME", "TensorBoardSink"]

RUN_NAME = "layer_stats"

# Columns whose NaN is structural (the statistic does not apply to that row, e.g. saturation of
# a ReLU layer): such scalars are left out instead of logged as NaN.
_OPTIONAL_STATS = ("frac_saturated", "frac_dead_units")

_SCALAR_METADATA = scalar_metadata.create_summary_metadata(display_name=None, description=None)
_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(
    display_name=None, description=None
)


def _buckets(row: np.ndarray) -> np.ndarray:
    """`[min, max, counts...]` -> TensorBoard's `[bins, 3]` (left edge, right edge, count)."""
    lo, hi, counts = row[0], row[1], row[2:]
    lo = lo if np.isfinite(lo) else 0.0
    hi = hi if np.isfinite(hi) and hi > lo else lo + 1.0
    edges = np.linspace(lo, hi, len(counts) + 1)
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


class TensorBoardSink:
    """Writes measurement rows as TensorBoard scalars and histograms.

    Args:
        log_dir: the TensorBoard log directory; events go to `log_dir/layer_stats`.
        stats: the statistic columns of the rows to log as scalars, in order.
    """

    def __init__(self, log_dir: str | os.PathLike, stats: tuple[str, ...]) -> None:
        self.log_dir = os.fspath(log_dir)
        self.run_dir = os.path.join(self.log_dir, RUN_NAME)
        self.stats = tuple(stats)
        self._writer = None
        self._described: set[str] = set()

    def _add(self, summary, tag: str, metadata) -> summary_pb2.Summary.Value:
        value = summary.value.add(tag=tag)
        # Plugin metadata is read from a tag's first event in a file; repeating it on every
        # event would double the cost of building a measurement.
        if tag not in self._described:
            value.metadata.CopyFrom(metadata)
            self._described.add(tag)
        return value

    def _summary(self, rows: pd.DataFrame, histograms: np.ndarray | None) -> bytes:
        summary = summary_pb2.Summary()
        values = rows[list(self.stats)].to_numpy(np.float64)
        for i, (tensor, layer) in enumerate(zip(rows["tensor"], rows["layer"], strict=True)):
            for j, stat in enumerate(self.stats):
                if stat in _OPTIONAL_STATS and np.isnan(values[i, j]):
                    continue
                value = self._add(summary, f"{tensor}/{layer}/{stat}", _SCALAR_METADATA)
                value.tensor.dtype = types_pb2.DT_FLOAT
                value.tensor.float_val.append(values[i, j])
            if histograms is not None:
                buckets = _buckets(histograms[i])
                value = self._add(summary, f"{tensor}/{layer}", _HISTOGRAM_METADATA)
                value.tensor.dtype = types_pb2.DT_DOUBLE
                value.tensor.tensor_shape.CopyFrom(
                    tensor_shape_pb2.TensorShapeProto(
                        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in buckets.shape]
                    )
                )
                value.tensor.tensor_content = buckets.astype("<f8").tobytes()
        return summary.SerializeToString()

    def write(self, rows: pd.DataFrame, histograms: np.ndarray | None = None) -> None:
        """Log one measurement: rows of one step (the `COLUMNS` frame) and their histograms
        (`[len(rows), bins + 2]` = `[min, max, counts...]` per row, or None); flushed at once."""
        if rows.empty:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.run_dir)
        serialized = self._summary(rows, histograms)
        with self._writer.as_default():
            tf.summary.experimental.write_raw_pb(serialized, step=int(rows["step"].iloc[0]))
        self._writer.flush()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Close the writer; a later `write` opens a new event file in the same run."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._described.clear()
