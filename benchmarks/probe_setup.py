"""Setup cost of the probe: its first call (trace + graph optimization + one run), and of
LayerStats up to its first measurement, against Keras' own first training step on the same model.

Models: Dense stacks (32 units, tanh) of --depths layers, batch 64; keras.applications ResNet50
and EfficientNetB0 at 64x64 (weights=None), batch 4. For each repeat and model, built fresh:
Keras' first `train_on_batch` (its trace and first step) is timed, then `build_probe(model, ...)`
and its first call, and LayerStats' setup (`on_train_begin` + the first `on_epoch_begin`: probe
build, trace, step-0 measurement, rows handed to the writer; CSV + TensorBoard in a temporary
log_dir), and a one-step fit with a tapping LayerStats (mode='tap': the tapped training
function's trace and first call), the last three in rotated order over repeats. Medians over
--repeats of wall seconds (process CPU seconds), [min, max] with more than one repeat; the
probe's rows say how many tensors it reduces. The machine's load average is printed: on a
shared machine compare within one run.

Run: python benchmarks/probe_setup.py [--depths 50,100,200] [--applications ResNet50,...]
    [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_initx.callbacks import LayerStats  # noqa: E402
from keras_initx.capture import build_probe  # noqa: E402


def _dense_stack(depth: int):
    model = keras.Sequential(
        [keras.Input((32,))]
        + [keras.layers.Dense(32, activation="tanh") for _ in range(depth)]
        + [keras.layers.Dense(3)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(64, 32)).astype("float32"), np.zeros(64, "int64")


def _application(name: str):
    model = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3), classes=4)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    return model, rng.uniform(0, 255, size=(4, 64, 64, 3)).astype("float32"), np.zeros(4, "int64")


_MEASURED = ("probe", "stats", "tap")


def _timed(fn, *args) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def _layer_stats_setup(model, x, y, stats) -> None:
    """What fit runs before its first training step: LayerStats' begin hooks."""
    with tempfile.TemporaryDirectory() as log_dir:
        callback = LayerStats(probe=(x, y), log_dir=log_dir, stats=stats)
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_begin(0)
        callback.to_dataframe()  # the step-0 rows written
        callback.on_train_end()


def _tapped_first_step(model, x, y, stats) -> None:
    """A one-step fit whose step is tapped: the tapped function's trace and first call."""
    callback = LayerStats(stats=stats)
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, callbacks=[callback])
    callback.to_dataframe()


def _cell(times: list[tuple[float, float]]) -> str:
    walls, cpus = [t[0] for t in times], [t[1] for t in times]
    cell = f"{statistics.median(walls):.1f} ({statistics.median(cpus):.1f})"
    return cell + (f" [{min(walls):.1f}, {max(walls):.1f}]" if len(times) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="50,100,200")
    parser.add_argument("--applications", default="ResNet50,EfficientNetB0")
    parser.add_argument("--stats", default="all", help="'all' or a comma list, e.g. mean,std")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    stats = None if args.stats == "all" else args.stats.split(",")
    print(
        f"# keras {keras.__version__}, tensorflow {tf.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start; probe: "
        f"all tensors, stats={args.stats}, histograms on; {args.repeats} repeat(s), medians"
    )
    print(
        "| model | rows | Keras first step s (cpu s) | probe first call s (cpu s) | ratio | "
        "LayerStats to step 0 s (cpu s) | ratio | tapped first step s (cpu s) | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    cases = [(f"Dense x{d}", lambda d=d: _dense_stack(d)) for d in map(int, args.depths.split(","))]
    cases += [(n, lambda n=n: _application(n)) for n in args.applications.split(",") if n]
    for label, make in cases:
        timed: dict[str, list[tuple[float, float]]] = {k: [] for k in ("keras", *_MEASURED)}
        for repeat in range(args.repeats):
            keras.utils.set_random_seed(0)
            model, x, y = make()
            timed["keras"].append(_timed(model.train_on_batch, x, y))
            probe = build_probe(model, stats=stats, histograms=True)
            runs = [
                ("probe", functools.partial(probe, x, y)),
                ("stats", functools.partial(_layer_stats_setup, model, x, y, stats)),
                ("tap", functools.partial(_tapped_first_step, model, x, y, stats)),
            ]
            for name, run in runs[repeat % 3 :] + runs[: repeat % 3]:
                timed[name].append(_timed(run))
            rows = len(probe.rows)
            del runs, model, probe
            keras.backend.clear_session()
        keras_wall = statistics.median(t[0] for t in timed["keras"])
        ratios = [statistics.median(t[0] for t in timed[k]) / keras_wall for k in _MEASURED]
        print(
            f"| {label} | {rows} | {_cell(timed['keras'])} | {_cell(timed['probe'])} | "
            f"{ratios[0]:.1f}x | {_cell(timed['stats'])} | {ratios[1]:.1f}x | "
            f"{_cell(timed['tap'])} | {ratios[2]:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
