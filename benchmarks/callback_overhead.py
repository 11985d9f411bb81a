"""Wall-time overhead of LayerStats against a plain fit and Keras' TensorBoard(histogram_freq=1).

Two models, batch 128, probe = one batch of 128:
  reference  10 Dense(500, tanh) layers on 784 inputs, 10 logits;
  cnn        Conv2D(16)-MaxPool-Conv2D(32)-MaxPool-Dense(64)-Dense(10) on 28x28x1.
Settings: no callbacks (twice: "plain" and "plain again", whose ratio shows the noise floor);
TensorBoard(histogram_freq=1); LayerStats(every_n_steps = 1, 16, 64) with all tensors and
statistics, writing CSV, Parquet and TensorBoard to a temporary log_dir.

How (this is a shared 2-core VM where identical fits vary by tens of percent between
repetitions, so only paired, interleaved ratios are trustworthy): every setting has its own
model, traced and warmed up by one fit. Each repetition then fits every setting once for
--steps steps (one epoch), in an order rotated by one each repetition, and each setting's time
is divided by the plain fit of the same repetition. The table gives the median of those paired
ratios and their interquartile range (IQR, 25th-75th percentile) over --repeats repetitions:
  steady    the training steps alone: from the start of the first batch to the end of the last
            one, after waiting for LayerStats' background writes of the probes in that window
            (--steps is a multiple of 64, so the window holds exactly steps / n probes);
  fit       the whole `model.fit` call, epoch-end work included (TensorBoard's histograms,
            LayerStats' CSV flush and Parquet rewrite), i.e. one epoch of --steps steps.
One probe (`Probe.__call__`: compiled forward + backward + statistics, results on the host) is
timed against one training step (`model.train_function` on one batch) in alternation, --calls
times each; the cost is the median probe over the median step, with the IQR of the paired
per-call ratios.

Run: python benchmarks/callback_overhead.py [--steps 64] [--repeats 15] [--calls 40]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_initx.callbacks import LayerStats  # noqa: E402

BATCH = 128
SETTINGS = ("plain", "plain_again", "tensorboard", "every_1", "every_16", "every_64")
LABELS = {
    "plain": "no callbacks",
    "plain_again": "no callbacks, again (noise floor)",
    "tensorboard": "TensorBoard(histogram_freq=1)",
}


def reference_model() -> keras.Model:
    layers = [keras.layers.Dense(500, activation="tanh") for _ in range(10)]
    return keras.Sequential([keras.Input((784,)), *layers, keras.layers.Dense(10)], name="ref")


def cnn_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="cnn",
    )


class StepWindow(keras.callbacks.Callback):
    """Times the training steps of a fit: first batch begin to last batch end.

    Goes last in the callback list, so the window holds the other callbacks' batch-end work;
    LayerStats' background writes are waited for at the end so that they are counted too.
    """

    def __init__(self, layer_stats: list[LayerStats]) -> None:
        super().__init__()
        self.layer_stats = layer_stats
        self.seconds = float("nan")
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if batch == 0:
            self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch == self.params["steps"] - 1:
            for cb in self.layer_stats:
                cb._collect_writes(wait=True)
            self.seconds = time.perf_counter() - self._start


def make_setting(name: str, build, x, y, batches: tf.data.Dataset, log_root: str):
    """A compiled model and its callbacks, warmed up by one fit (traces, opens writers)."""
    keras.utils.set_random_seed(0)
    model = build()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    log_dir = os.path.join(log_root, f"{model.name}_{name}")
    callbacks = []
    if name == "tensorboard":
        callbacks = [keras.callbacks.TensorBoard(log_dir, histogram_freq=1)]
    elif name.startswith("every_"):
        n = int(name.split("_")[1])
        callbacks = [LayerStats(probe=(x[:BATCH], y[:BATCH]), log_dir=log_dir, every_n_steps=n)]
    window = StepWindow([cb for cb in callbacks if isinstance(cb, LayerStats)])
    callbacks.append(window)
    # Same number of steps as the timed fits: iterations stay multiples of 64, so a fit starts
    # where the previous one measured and LayerStats' step-0 measurement is not repeated.
    model.fit(batches, epochs=1, verbose=0, callbacks=callbacks, shuffle=False)
    return model, callbacks, window


def timed_fit(model, callbacks, window, batches: tf.data.Dataset) -> tuple[float, float]:
    """(steady window seconds, whole fit seconds)."""
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0, callbacks=callbacks, shuffle=False)
    return window.seconds, time.perf_counter() - start


def probe_cost(model: keras.Model, cb: LayerStats, calls: int) -> tuple[float, float, np.ndarray]:
    """(median step s, median probe s, paired probe/step ratios), alternating the two."""
    x, y, _ = cb.probe
    batches = iter(tf.data.Dataset.from_tensors((tf.constant(x), tf.constant(y))).repeat())

    def step():
        logs = model.train_function(batches)
        logs = logs.get_value() if hasattr(logs, "get_value") else logs
        tf.nest.map_structure(lambda t: t.numpy(), logs)  # wait for the step to finish

    step()
    cb._probe_fn(*cb.probe)
    steps, probes = [], []
    for _ in range(calls):
        start = time.perf_counter()
        step()
        steps.append(time.perf_counter() - start)
        start = time.perf_counter()
        cb._probe_fn(*cb.probe)
        probes.append(time.perf_counter() - start)
    steps, probes = np.array(steps), np.array(probes)
    return float(np.median(steps)), float(np.median(probes)), probes / steps


def summary(ratios) -> str:
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    return f"{median:.3f}x [{q1:.3f}, {q3:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="steps per fit, a multiple of 64")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repetitions")
    parser.add_argument("--calls", type=int, default=40, help="timed probes (and steps)")
    parser.add_argument("--models", default="reference,cnn")
    args = parser.parse_args()
    if args.steps % 64:
        parser.error(f"--steps must be a multiple of 64, got {args.steps}")

    rng = np.random.default_rng(0)
    n = args.steps * BATCH
    data = {
        "reference": (reference_model, rng.normal(size=(n, 784)).astype("float32")),
        "cnn": (cnn_model, rng.normal(size=(n, 28, 28, 1)).astype("float32")),
    }
    y = rng.integers(0, 10, size=n)
    print(
        f"# keras {keras.__version__}, tensorflow {tf.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; batch {BATCH}, Adam, probe {BATCH} examples; "
        f"{args.steps} steps per fit, {args.repeats} interleaved repetitions (rotated order), "
        f"{args.calls} alternated probe/step calls; LayerStats with all tensors and statistics, "
        "log_dir (CSV + Parquet + TensorBoard, histograms on)"
    )
    print(
        "# ratio = median of per-repetition ratios to the plain fit of the same repetition "
        "[interquartile range]"
    )
    with tempfile.TemporaryDirectory() as log_root:
        for model_name in args.models.split(","):
            build, x = data[model_name]
            # Batched and cached once: a NumPy fit would copy the arrays into a new dataset at
            # every fit, a fixed cost that varies more than the overheads measured here.
            batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).cache()
            runs = {s: make_setting(s, build, x, y, batches, log_root) for s in SETTINGS}
            steady = {s: [] for s in SETTINGS}
            whole = {s: [] for s in SETTINGS}
            for r in range(args.repeats):
                k = r % len(SETTINGS)
                for s in SETTINGS[k:] + SETTINGS[:k]:
                    window, fit = timed_fit(*runs[s], batches)
                    steady[s].append(window)
                    whole[s].append(fit)
            model, callbacks, _ = runs["every_1"]
            step, probe, probe_ratios = probe_cost(model, callbacks[0], args.calls)
            rows = len(callbacks[0]._probe_fn.rows)
            print(
                f"\n## {model_name}: {rows} rows x {len(callbacks[0]._probe_fn.stats)} "
                f"statistics per measurement; plain fit median {np.median(whole['plain']):.3f} s"
            )
            print("| setting | steady ratio [IQR] | fit ratio [IQR] | median fit (s) |")
            print("|---|---:|---:|---:|")
            plain_steady, plain_whole = np.array(steady["plain"]), np.array(whole["plain"])
            for s in SETTINGS:
                label = LABELS.get(s) or f"LayerStats(every_n_steps={s.split('_')[1]})"
                print(
                    f"| {label} | {summary(np.array(steady[s]) / plain_steady)} | "
                    f"{summary(np.array(whole[s]) / plain_whole)} | {np.median(whole[s]):.3f} |"
                )
            print(
                f"| one probe (forward + backward + statistics) vs one training step | "
                f"{probe * 1e3:.1f} ms / {step * 1e3:.1f} ms = {probe / step:.2f} steps | "
                f"paired {summary(probe_ratios)} | |"
            )


if __name__ == "__main__":
    main()
