"""Sinks: where `LayerStats` measurements go. Each has `write(rows, histograms)`, `flush()`,
`close()`.

- `FrameSink`: in-memory pandas frame, appended to `layer_stats.csv` as it goes, one measurement
  per write, crash safe (and rewritten to `layer_stats.parquet` on flush when pyarrow is
  importable); `read_layer_stats` reads the CSV back without a killed writer's torn tail.
- `TensorBoardSink`: scalars and histograms in one run per layer under `layer_stats`, beside
  Keras' own runs, so each chart holds every layer.
"""

from keras_initx.sinks.frame import COLUMNS, FrameSink, read_layer_stats, result_rows
from keras_initx.sinks.tensorboard import TensorBoardSink

__all__ = ["COLUMNS", "FrameSink", "TensorBoardSink", "read_layer_stats", "result_rows"]
