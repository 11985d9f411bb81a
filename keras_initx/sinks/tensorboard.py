"""TensorBoard sink: one run per layer, so every chart holds all layers, one line each.

Layout under `log_dir` (beside the `train`/`validation` runs of `keras.callbacks.TensorBoard`):

    layer_stats/                 the layout of the Custom Scalars tab; diagnosis text and pictures
    layer_stats/00_conv1/        one run per measured layer: depth index (zero-padded, so the run
    layer_stats/01_bn1/          list is the legend in depth order) + layer path without the
    ...                          model's own name, nested models joined with "."

Each layer run holds scalars `<tensor>/<stat>` (`activation/std`, `activation_grad/std`,
`kernel_grad/rms`, ...) and histograms `<tensor>/values`, so Time Series draws one card per
(tensor, statistic) with one coloured line per layer, and a run regex (`glorot`,
`layer_stats/0[0-3]`) picks initializers or layers. The old flat tags
`<tensor>/<layer path>/<stat>` in one run are gone: they made one card per layer and statistic.
Detail (`TensorBoardSink(detail=...)`): the DataFrame/CSV/Parquet always keep every column;
TensorBoard gets

- `"summary"` (default): what the charts are read for. Scalars: `std` of every tensor, `mean` of
  `activation` and `preactivation`, `nonfinite`, and the statistics the Custom Scalars layout
  charts (`LAYOUT_CHARTS`: `activation/frac_saturated`, `activation/frac_dead_units`,
  `kernel_grad/rms`); histograms of `activation` and `activation_grad` only, in at most
  `SUMMARY_BUCKETS` buckets (runs of adjacent bins summed: exact counts, coarser edges). About
  0.2 KB per (layer, tensor) row and measurement: 116 KB on ResNet50 (605 rows), against 1090 KB
  when everything was logged (`benchmarks/tensorboard_size.py`);
- `"full"`: every statistic of every tensor and every tensor's histogram at the probe's bins,
  about 1 KB per row and measurement (636 KB on ResNet50).

Histograms are float32 `[buckets, 3]` tensors (left edge, right edge, count), which TensorBoard's
histogram and distribution plugins read as they read `tf.summary.histogram`'s float64 ones.

In both, TensorBoard leaves out scalars that carry no information:

- structural NaN (`frac_saturated` of a ReLU layer, `frac_dead_units` of a gradient) is not logged;
- `nan_count` and `inf_count` become one `nonfinite` scalar (their sum), and it and `frac_zero`
  are logged for a (layer, tensor) from its first non-zero value on: a zero line per layer for a
  healthy tanh network says nothing, while a card that appears is an alarm. Before its first
  point the value was 0.

Writers: one `tf.summary` file writer per run (a layer run cannot share an event file with another
run), opened on the first write and kept until `close()`. Each measurement is one `Summary`
protocol buffer per layer, built here (eager `tf.summary.scalar` per value costs more than the
probe itself), written with one eager `tf.summary.experimental.write_raw_pb` and a flush per
layer, about 0.3 ms per layer on the callback's background thread. A compiled writer of all runs
is faster per write but costs a trace per fit (about 1 s for 150 layers) and sets off
TensorFlow's retracing warning when a user fits several times.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata

__all__ = [
    "DETAILS",
    "LAYOUT_CHARTS",
    "RUN_NAME",
    "SUMMARY_BUCKETS",
    "TensorBoardSink",
    "findings_markdown",
    "write_images",
]

RUN_NAME = "layer_stats"
DETAILS = ("summary", "full")  # TensorBoardSink(detail=...): the first is the default

# Columns whose NaN is structural (the statistic does not apply to that row, e.g. saturation of
# a ReLU layer): such scalars are left out instead of logged as NaN.
_OPTIONAL_STATS = ("frac_saturated", "frac_dead_units")
_NONFINITE = ("nan_count", "inf_count")
# Logged for a (layer, tensor) from its first non-zero value on.
_WHEN_NONZERO = ("nonfinite", "frac_zero")

# The Custom Scalars tab: one chart per key statistic, every layer (and every run) a line.
# (title, tag regular expression).
LAYOUT_CHARTS: tuple[tuple[str, str], ...] = (
    ("activation std", r"^activation/std$"),
    ("activation_grad std (back-propagated gradient)", r"^activation_grad/std$"),
    ("frac_saturated", r"^activation/frac_saturated$"),
    ("frac_dead_units", r"^activation/frac_dead_units$"),
    ("kernel_grad rms", r"^kernel_grad/rms$"),
)
# detail="summary": the scalars whose tags match these (the layout's charts included), histograms
# of these tensors in at most SUMMARY_BUCKETS buckets (`tf.summary.histogram`'s default is 30).
_SUMMARY_TAGS = (r"/std$", r"/nonfinite$", r"^(pre)?activation/mean$") + tuple(
    regex for _, regex in LAYOUT_CHARTS
)
_SUMMARY_HISTOGRAMS = ("activation", "activation_grad")
SUMMARY_BUCKETS = 16
_UNSAFE = re.compile(r"[^\w.-]")  # kept out of run (directory) names
_LAYOUT_CATEGORY = "LayerStats: one line per layer"

_SCALAR_METADATA = scalar_metadata.create_summary_metadata(display_name=None, description=None)
_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(
    display_name=None, description=None
)


def _buckets(histograms: np.ndarray, max_buckets: int | None = None) -> np.ndarray:
    """Rows `[lo, hi, counts...]` -> TensorBoard's `[rows, buckets, 3]` (left edge, right edge,
    count), little-endian float32.

    `[lo, hi]` is the statistics' histogram range (`keras_initx.stats.histogram_range`: min to
    max, widened around a constant tensor's value); only a tensor without any finite value has
    no range, and its empty counts are drawn over [0, 1]. With `max_buckets`, runs of
    `ceil(bins / max_buckets)` adjacent bins are summed into one bucket (the last run may be
    shorter). float32 halves float64's bytes and loses nothing: the counts are integers of at
    most `keras_initx.stats.MAX_HISTOGRAM_VALUES` and the range comes from float32 tensors.
    """
    lo, hi, counts = histograms[:, :1], histograms[:, 1:2], histograms[:, 2:]
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi) & (hi > lo), hi, lo + 1.0)
    bins = counts.shape[1]
    merge = 1 if max_buckets is None else -(-bins // max_buckets)
    starts = np.arange(0, bins, merge)
    if merge > 1:
        counts = np.add.reduceat(counts, starts, axis=1)
    fractions = np.append(starts, bins) / bins
    edges = lo + (hi - lo) * fractions
    # A range near the float32 limits must not round past them into inf.
    edges = np.clip(edges, np.finfo(np.float32).min, np.finfo(np.float32).max)
    return np.stack([edges[:, :-1], edges[:, 1:], counts], axis=2).astype("<f4")


def _layout() -> bytes:
    layout = layout_pb2.Layout()
    category = layout.category.add(title=_LAYOUT_CATEGORY)
    for title, regex in LAYOUT_CHARTS:
        category.chart.add(title=title, multiline=layout_pb2.MultilineChartContent(tag=[regex]))
    summary = summary_pb2.Summary()
    value = summary.value.add(
        tag=custom_scalar_metadata.CONFIG_SUMMARY_TAG,
        metadata=custom_scalar_metadata.create_summary_metadata(),
    )
    value.tensor.dtype = types_pb2.DT_STRING
    value.tensor.string_val.append(layout.SerializeToString())
    return summary.SerializeToString()


def _run_names(rows: pd.DataFrame) -> dict[str, str]:
    """Layer path -> run name `NN_short.path`, NN its depth index zero-padded to the widest."""
    layers = rows.drop_duplicates("layer").sort_values("layer_index")
    width = max(2, len(str(int(layers["layer_index"].max()))))
    names = {}
    for path, index in zip(layers["layer"], layers["layer_index"], strict=True):
        parts = str(path).split("/")
        short = ".".join(parts[1:] if len(parts) > 1 else parts)
        names[path] = f"{int(index):0{width}d}_{_UNSAFE.sub('_', short)}"
    return names


def findings_markdown(findings: pd.DataFrame, step: int | None = None) -> str:
    """`keras_initx.diagnose` findings as a Markdown table for `tf.summary.text`.

    Args:
        findings: a `diagnose` frame (columns `kind`, `layer`, `tensor`, `message`,
            `suggestion`, ...); may be empty.
        step: the measured step diagnosed, for the heading; None for a depth sweep.

    Returns:
        Markdown: a heading line, then one table row per finding (or "no problems found").
    """
    where = "Initialization" if step is None else f"Step {step}"
    if findings.empty:
        return f"**{where}: no initialization problems found.**"
    lines = [
        f"**{where}: {len(findings)} finding(s).**",
        "",
        "| kind | where | finding | try |",
        "|---|---|---|---|",
    ]
    for row in findings.itertuples():
        parts = (getattr(row, "initializer", ""), row.layer, row.tensor)
        cell = " / ".join(str(p) for p in parts if not pd.isna(p) and str(p))
        message = str(row.message).replace("|", "\\|")
        suggestion = "" if pd.isna(row.suggestion) or not row.suggestion else f"`{row.suggestion}`"
        lines.append(f"| {row.kind} | {cell} | {message} | {suggestion} |")
    return "\n".join(lines)


def write_images(images: Mapping[str, Any], step: int) -> None:
    """Log images `<name>` with `tf.summary.image` to the default `tf.summary` writer.

    Args:
        images: name -> PNG bytes, or a matplotlib Figure (rendered to PNG here, with Agg as
            `keras_initx.plots` draws them; the Figure's own method, so matplotlib is not
            imported by this module).
        step: the step to log them at.
    """
    for name, image in images.items():
        if not isinstance(image, bytes):
            buffer = io.BytesIO()
            image.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
            image = buffer.getvalue()
        tf.summary.image(name, tf.image.decode_png(image, channels=4)[tf.newaxis], step=step)


class TensorBoardSink:
    """Writes measurement rows as TensorBoard scalars and histograms, one run per layer.

    Args:
        log_dir: the TensorBoard log directory; events go to `log_dir/layer_stats[/<layer>]`.
        stats: the statistic columns of the rows to log as scalars, in order.
        detail: `"summary"` (default: `std` of every tensor, `mean` of `activation` and
            `preactivation`, `nonfinite` and the Custom Scalars layout's statistics;
            histograms of `activation` and `activation_grad` in at most
            `SUMMARY_BUCKETS` buckets) or `"full"` (every statistic in `stats`, every tensor's
            histogram at full resolution). See the module docstring for the sizes.

    Raises:
        ValueError: `detail` is not one of `DETAILS`.
    """

    def __init__(
        self, log_dir: str | os.PathLike, stats: tuple[str, ...], detail: str = "summary"
    ) -> None:
        if not isinstance(detail, str) or detail not in DETAILS:
            raise ValueError(
                f"Invalid value for argument `detail`. Received: detail={detail!r}. "
                f'Expected one of {list(DETAILS)}: "summary" logs the key statistics and '
                'histograms to TensorBoard, "full" all of them (the CSV always has all).'
            )
        self.log_dir = os.fspath(log_dir)
        self.run_dir = os.path.join(self.log_dir, RUN_NAME)
        self.stats = tuple(stats)
        self.detail = detail
        self._plain = [s for s in self.stats if s not in _NONFINITE]
        self._counts = [s for s in self.stats if s in _NONFINITE]
        self._scalars = self._plain + (["nonfinite"] if self._counts else [])
        self._writers: dict[str, Any] = {}  # run name ("" = layer_stats itself) -> writer
        self._run_of: dict[str, str] = {}  # layer path -> run name
        self._described: set[tuple[str, str]] = set()  # (run, tag) with metadata in this file
        self._nonzero: set[tuple[str, str, str]] = set()  # (layer, tensor, stat) logged from now
        self._logged_of: dict[str, list[tuple[int, str, str]]] = {}  # tensor -> its scalars
        self._layout_written = False

    def _writer(self, run: str):
        writer = self._writers.get(run)
        if writer is None:
            writer = tf.summary.create_file_writer(os.path.join(self.run_dir, run))
            self._writers[run] = writer
        return writer

    def _add(self, summary, run: str, tag: str, metadata) -> summary_pb2.Summary.Value:
        value = summary.value.add(tag=tag)
        # Plugin metadata is read from a tag's first event in a file; repeating it on every
        # event would double the cost of building a measurement.
        if (run, tag) not in self._described:
            value.metadata.CopyFrom(metadata)
            self._described.add((run, tag))
        return value

    def _scalar_values(self, rows: pd.DataFrame) -> np.ndarray:
        """`[len(rows), len(self._scalars)]`: the stats, nonfinite = nan_count + inf_count."""
        values = rows[self._plain].to_numpy(np.float64)
        if self._counts:
            counts = rows[self._counts].to_numpy(np.float64).sum(axis=1, keepdims=True)
            values = np.concatenate([values, counts], axis=1)
        return values

    def _logged(self, tensor: str) -> list[tuple[int, str, str]]:
        """`(column of _scalar_values, stat, tag)` of the scalars logged for `tensor`."""
        logged = self._logged_of.get(tensor)
        if logged is None:
            logged = [
                (j, stat, f"{tensor}/{stat}")
                for j, stat in enumerate(self._scalars)
                if self.detail == "full"
                or any(re.search(regex, f"{tensor}/{stat}") for regex in _SUMMARY_TAGS)
            ]
            self._logged_of[tensor] = logged
        return logged

    def _summaries(
        self, rows: pd.DataFrame, histograms: np.ndarray | None
    ) -> dict[str, summary_pb2.Summary]:
        summaries: dict[str, summary_pb2.Summary] = {}
        # Python floats: per-value tests on them cost a fraction of numpy scalar indexing.
        values = self._scalar_values(rows).tolist()
        tensors = rows["tensor"].to_numpy()
        buckets: dict[int, np.ndarray] = {}  # row -> [buckets, 3]
        if histograms is not None:
            if self.detail == "full":
                buckets = dict(enumerate(_buckets(histograms)))
            else:
                (chosen,) = np.nonzero(np.isin(tensors, _SUMMARY_HISTOGRAMS))
                merged = _buckets(histograms[chosen], SUMMARY_BUCKETS)
                buckets = dict(zip(chosen.tolist(), merged, strict=True))
        if buckets:
            dims = next(iter(buckets.values())).shape
            shape = tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in dims]
            )
        for i, (tensor, layer) in enumerate(zip(tensors, rows["layer"], strict=True)):
            run = self._run_of[layer]
            summary = summaries.setdefault(run, summary_pb2.Summary())
            row = values[i]
            for j, stat, tag in self._logged(tensor):
                x = row[j]
                if x != x and stat in _OPTIONAL_STATS:  # NaN
                    continue
                if stat in _WHEN_NONZERO:
                    key = (layer, tensor, stat)
                    if key not in self._nonzero:
                        if x == 0:
                            continue
                        self._nonzero.add(key)
                value = self._add(summary, run, tag, _SCALAR_METADATA)
                value.tensor.dtype = types_pb2.DT_FLOAT
                value.tensor.float_val.append(x)
            if i in buckets:
                value = self._add(summary, run, f"{tensor}/values", _HISTOGRAM_METADATA)
                value.tensor.dtype = types_pb2.DT_FLOAT
                value.tensor.tensor_shape.CopyFrom(shape)
                value.tensor.tensor_content = buckets[i].tobytes()
        return summaries

    def _root(self):
        """The `layer_stats` run's writer; writes the Custom Scalars layout once."""
        writer = self._writer("")
        if not self._layout_written:
            with writer.as_default():
                tf.summary.experimental.write_raw_pb(_layout(), step=0)
            writer.flush()
            self._layout_written = True
        return writer

    def write(self, rows: pd.DataFrame, histograms: np.ndarray | None = None) -> None:
        """Log one measurement: rows of one step (the `COLUMNS` frame) and their histograms
        (`[len(rows), bins + 2]` = `[lo, hi, counts...]` per row, or None); flushed at once."""
        if rows.empty:
            return
        if not self._run_of.keys() >= set(rows["layer"]):
            # First write (or the callback's probe was rebuilt for another model).
            self._run_of.update(_run_names(rows))
        self._root()
        step = int(rows["step"].iloc[0])
        # Eager writes on the writer thread: a compiled writer of all runs took a trace per fit
        # (about 1 s for 150 layers) and set off TensorFlow's retracing warning across fits.
        for run, summary in self._summaries(rows, histograms).items():
            writer = self._writer(run)
            with writer.as_default():
                tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
            writer.flush()

    def write_diagnosis(self, findings: pd.DataFrame, step: int) -> None:
        """The findings of `keras_initx.diagnose` as Markdown text `diagnosis` at `step`."""
        with self._root().as_default():
            tf.summary.text("diagnosis", findings_markdown(findings, step), step=step)
        self._root().flush()

    def write_figures(self, figures: Mapping[str, Any], step: int) -> None:
        """matplotlib Figures as images `plots/<name>` in the `layer_stats` run at `step`."""
        with self._root().as_default():
            write_images({f"plots/{k}": v for k, v in figures.items()}, step)
        self._root().flush()

    def write_cost(self, report: Mapping[str, Any], step: int) -> None:
        """`LayerStats.cost_report()` as scalars `cost/<key>` (what changes during a fit) and a
        text table `cost` in the `layer_stats` run at `step`."""
        with self._root().as_default():
            for key, value in report.items():
                changes = key not in ("mode", "max_overhead")
                if changes and isinstance(value, int | float) and math.isfinite(value):
                    tf.summary.scalar(f"cost/{key}", value, step=step)
            shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in report.items()}
            table = "\n".join(f"| {k} | {v} |" for k, v in shown.items())
            tf.summary.text("cost", f"| measuring cost | |\n|---|---|\n{table}", step=step)
        self._root().flush()

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        """Close the writers; a later `write` opens new event files in the same runs."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._described.clear()
