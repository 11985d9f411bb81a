"""Wall-time overhead of LayerStats against a plain fit and Keras' TensorBoard(histogram_freq=1).

Two models, batch 128, probe = one batch of 128:
  reference  10 Dense(500, tanh) layers on 784 inputs, 10 logits;
  cnn        Conv2D(16)-MaxPool-Conv2D(32)-MaxPool-Dense(64)-Dense(10) on 28x28x1.
Settings, run interleaved in one process (every repetition fits each setting once, in turn, so
machine load drifts hit all of them alike): no callbacks; TensorBoard(histogram_freq=1); and
LayerStats(every_n_steps = 1, 16, 64) writing CSV, Parquet and TensorBoard to a temporary
log_dir. Each fit is one epoch of --steps steps on an already-traced model; the figures are
the median over --repeats repetitions divided by the plain fit's median, and the best (minimum)
divided by the plain fit's best: on a shared machine load from other processes only adds time,
so the minimum is the steadier estimate when the spread is large.

Also printed: one probe (the compiled forward + backward + statistics, `Probe.__call__`) and one
whole measurement (probe + frame + CSV + TensorBoard writes) in units of one plain training
step, and the spread of the plain fit across repetitions (the noise floor of the ratios).

Run: python benchmarks/callback_overhead.py [--steps 64] [--repeats 5] [--optimizer adam]
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
LABELS = {"plain": "no callbacks", "tensorboard": "TensorBoard(histogram_freq=1)"}


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


def make_setting(name: str, build, x, y, optimizer: str, log_root: str):
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    log_dir = os.path.join(log_root, f"{model.name}_{name}")
    callbacks = []
    if name == "tensorboard":
        callbacks = [keras.callbacks.TensorBoard(log_dir, histogram_freq=1)]
    elif name.startswith("every_"):
        n = int(name.split("_")[1])
        callbacks = [LayerStats(probe=(x[:BATCH], y[:BATCH]), log_dir=log_dir, every_n_steps=n)]
    # Warm-up: traces Keras' train function and the probe, opens the writers.
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
    return model, callbacks


def timed_fit(model, callbacks, x, y) -> float:
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks, shuffle=False)
    return time.perf_counter() - start


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="training steps per timed fit")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--models", default="reference,cnn")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n = args.steps * BATCH
    data = {
        "reference": (reference_model, rng.normal(size=(n, 784)).astype("float32")),
        "cnn": (cnn_model, rng.normal(size=(n, 28, 28, 1)).astype("float32")),
    }
    y = rng.integers(0, 10, size=n)
    settings = ["plain", "tensorboard", "every_1", "every_16", "every_64"]
    print(
        f"# keras {keras.__version__}, tensorflow {tf.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; batch {BATCH}, probe {BATCH} examples, "
        f"{args.steps} steps per fit, {args.repeats} interleaved repetitions, "
        f"optimizer {args.optimizer}, LayerStats with log_dir (CSV + Parquet + TensorBoard), "
        "all tensors and statistics, histograms on"
    )
    with tempfile.TemporaryDirectory() as log_root:
        for model_name in args.models.split(","):
            build, x = data[model_name]
            runs = {s: make_setting(s, build, x, y, args.optimizer, log_root) for s in settings}
            times: dict[str, list[float]] = {s: [] for s in settings}
            for _ in range(args.repeats):
                for s in settings:
                    times[s].append(timed_fit(*runs[s], x, y))
            plain = float(np.median(times["plain"]))
            step = plain / args.steps
            cb = runs["every_1"][1][0]
            probe_fn = cb._probe_fn
            probe_cost = median_time(lambda cb=cb, p=probe_fn: p(*cb.probe), 5 * args.repeats)
            # A whole measurement: probe, rows, CSV append, TensorBoard writes.
            measure_cost = median_time(
                lambda cb=cb: (setattr(cb, "_last_measured", None), cb._measure()),
                5 * args.repeats,
            )
            spread = (np.max(times["plain"]) - np.min(times["plain"])) / plain
            print(f"\n## {model_name}: {len(probe_fn.rows)} rows x {len(probe_fn.stats)} stats "
                  f"per measurement; plain step {step * 1e3:.1f} ms (median), plain-fit spread "
                  f"(max-min)/median {spread:.1%}")
            best_plain = float(np.min(times["plain"]))
            print("| setting | median fit (s) | ratio (medians) | ratio (best of each) |")
            print("|---|---:|---:|---:|")
            for s in settings:
                label = LABELS.get(s) or f"LayerStats(every_n_steps={s.split('_')[1]})"
                med, best = float(np.median(times[s])), float(np.min(times[s]))
                print(f"| {label} | {med:.3f} | {med / plain:.3f}x | {best / best_plain:.3f}x |")
            print(f"| one probe (forward+backward+stats) | {probe_cost * 1e3:.1f} ms | "
                  f"{probe_cost / step:.2f} steps | |")
            print(f"| one measurement (probe + CSV + TensorBoard) | {measure_cost * 1e3:.1f} ms | "
                  f"{measure_cost / step:.2f} steps | |")


if __name__ == "__main__":
    main()
