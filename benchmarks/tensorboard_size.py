"""Bytes and tags that LayerStats writes to TensorBoard per measurement, on ResNet50.

Model: `keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)`,
sparse categorical cross-entropy, random inputs, probe = one batch of 8. The rows and histograms
are those of LayerStats at its default settings (all tensors, all statistics, 64 histogram bins),
written by `TensorBoardSink` at each detail (`DETAILS`; "summary" is LayerStats' default) as
--measurements measurements (steps 0, 16, 32, ...: LayerStats' default every_n_steps=16).

Where the rows come from: tracing the probe of all tensors on ResNet50 (gradients included) needs
more than 20 GB of memory (killed at 9 GB on this shared 24 GB machine, filed with the trace-cost
issue), so the script measures the forward tensors (`activation`, `preactivation`, `kernel`, with
their histograms) with a real probe and gives each gradient tensor the row of its forward tensor
(`activation_grad` <- `activation`, `preactivation_grad` <- `preactivation`, `kernel_grad` and
`bias_grad` <- `kernel`), activation-only statistics NaN, for every layer that provides it
(`LayerInfo.tensors`) except the softmax output's `activation_grad` (no row: Keras computes the
loss from the logits). The sizes depend on that structure, not on the values: a scalar and a
histogram cost the same bytes whatever they hold; only which scalars are NaN or zero matters, and
those follow the forward tensors (a ReLU's zeros are its gradient's zeros).

Per measurement, read back from the event files under `log_dir/layer_stats`:
  events   bytes of the records of that step in the layer runs (TFRecord framing included);
  scalars, histograms   the `Summary.Value`s (tags) of that step;
and the growth after each measurement of
  file     the apparent size of all files under `layer_stats`;
  disk     the blocks allocated (`st_blocks`, directories included): the first measurement
           creates one directory and one event file per layer run, a whole block each.
The first measurement also carries the one-off content: the file headers, each tag's plugin
metadata (written with its first value in a file) and the Custom Scalars layout; the table gives
it, then the mean of the later ones (a file grows into its allocated block before it takes the
next, so disk growth per measurement is only meaningful as such a mean).

Run (from the repository root): PYTHONPATH=. python benchmarks/tensorboard_size.py
    [--detail summary full] [--measurements 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorboard.compat.proto import event_pb2  # noqa: E402

from keras_initx.capture import TENSORS, build_probe  # noqa: E402
from keras_initx.sinks import TensorBoardSink, result_rows  # noqa: E402
from keras_initx.sinks.tensorboard import DETAILS, RUN_NAME  # noqa: E402
from keras_initx.stats import DEFAULT_BINS, STAT_NAMES  # noqa: E402

BATCH = 8
EVERY_N_STEPS = 16  # LayerStats' default
RECORD_FRAMING = 16  # TFRecord: 8-byte length, 4-byte length CRC, 4-byte data CRC
FORWARD = ("activation", "preactivation", "kernel")
MIRROR = {  # gradient tensor -> the forward tensor whose row stands in for it
    "activation_grad": "activation",
    "preactivation_grad": "preactivation",
    "kernel_grad": "kernel",
    "bias_grad": "kernel",
    "recurrent_kernel_grad": "recurrent_kernel",
}
ACTIVATION_ONLY = ("frac_saturated", "frac_dead_units")


def resnet50_rows() -> tuple[pd.DataFrame, np.ndarray, int]:
    """LayerStats' default rows and histograms of one ResNet50 measurement; layer count."""
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    model.compile(loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(BATCH, 64, 64, 3)).astype("float32")
    result = build_probe(model, FORWARD, STAT_NAMES, histograms=True)(x)
    forward = result_rows(result, step=0)
    keys = list(zip(forward["layer"], forward["tensor"], strict=True))
    where = {key: i for i, key in enumerate(keys)}
    layers = build_probe(model).layers  # every layer and the tensors it provides; no trace
    picks, names = [], []
    for info in layers:
        for tensor in TENSORS:
            source = MIRROR.get(tensor, tensor)
            if tensor not in info.tensors or (info.path, source) not in where:
                continue
            if tensor == "activation_grad" and info.activation == "softmax":
                continue
            picks.append(where[(info.path, source)])
            names.append(tensor)
    rows = forward.iloc[picks].reset_index(drop=True)
    rows["tensor"] = names
    rows.loc[rows["tensor"] != "activation", list(ACTIVATION_ONLY)] = np.nan
    return rows, result.histograms[picks], len(layers)


def _sizes(root: str) -> tuple[int, int]:
    """(apparent bytes of the files, allocated bytes of files and directories) under root."""
    apparent = allocated = 0
    for directory, _, files in os.walk(root):
        allocated += os.stat(directory).st_blocks * 512
        for name in files:
            info = os.stat(os.path.join(directory, name))
            apparent += info.st_size
            allocated += info.st_blocks * 512
    return apparent, allocated


def _per_step(root: str) -> dict[int, dict[str, int]]:
    """step -> bytes, scalars, histograms of the layer runs' records of that step."""
    totals: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for directory, _, files in os.walk(root):
        if directory == root:
            continue  # the `layer_stats` run itself: the layout (diagnosis, pictures)
        for name in files:
            for record in tf.data.TFRecordDataset(os.path.join(directory, name)):
                raw = record.numpy()
                event = event_pb2.Event.FromString(raw)
                if not event.HasField("summary"):
                    continue  # the file header, counted in the file sizes
                step = totals[event.step]
                step["bytes"] += len(raw) + RECORD_FRAMING
                for value in event.summary.value:
                    step["histograms" if value.tag.endswith("/values") else "scalars"] += 1
    return totals


def measure(rows: pd.DataFrame, histograms: np.ndarray, detail: str, measurements: int) -> list:
    """Write the measurement `measurements` times with `detail`; one dict of sizes per step."""
    steps = [EVERY_N_STEPS * i for i in range(measurements)]
    with tempfile.TemporaryDirectory() as log_dir:
        root = os.path.join(log_dir, RUN_NAME)
        sink = TensorBoardSink(log_dir, STAT_NAMES, detail=detail)
        sizes = [(0, 0)]
        for step in steps:
            sink.write(rows.assign(step=step), histograms)  # each write flushes its files
            sizes.append(_sizes(root))
        sink.close()
        counts = _per_step(root)
        return [
            {
                "step": step,
                **counts[step],
                "file": sizes[i + 1][0] - sizes[i][0],
                "disk": sizes[i + 1][1] - sizes[i][1],
            }
            for i, step in enumerate(steps)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detail", nargs="+", default=list(DETAILS), choices=DETAILS)
    parser.add_argument("--measurements", type=int, default=10)
    args = parser.parse_args()
    if args.measurements < 2:
        parser.error(f"--measurements must be >= 2, got {args.measurements}")
    rows, histograms, layers = resnet50_rows()
    print(
        f"# keras {keras.__version__}, tensorflow {tf.__version__}, {platform.machine()}; "
        f"ResNet50(weights=None, input 64x64x3, classes=10), probe batch {BATCH}; LayerStats "
        f"defaults: all {len(TENSORS)} tensors, all {len(STAT_NAMES)} statistics, "
        f"{DEFAULT_BINS} histogram bins; {layers} layers (runs), {len(rows)} rows per "
        f"measurement; gradient rows mirror the forward ones (see the docstring); "
        f"{args.measurements} measurements, every {EVERY_N_STEPS} steps"
    )
    print("# KB = 1024 bytes; values = tags written (Summary.Value)")
    for detail in args.detail:
        sizes = measure(rows, histograms, detail, args.measurements)
        later = {k: np.mean([r[k] for r in sizes[1:]]) for k in sizes[0] if k != "step"}
        print(f"\n## TensorBoardSink(detail={detail!r})")
        print(f"{'':21s} events KB  scalars  histograms  file KB  disk KB")
        for label, r in (("first (step 0)", sizes[0]), ("later (mean)", later)):
            print(
                f"{label:21s} {r['bytes'] / 1024:9.1f} {r['scalars']:8.0f} "
                f"{r['histograms']:11.0f} {r['file'] / 1024:8.1f} {r['disk'] / 1024:8.1f}"
            )


if __name__ == "__main__":
    main()
