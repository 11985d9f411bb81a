"""Setup cost of the probe: its first call (trace + graph optimization + one run) against Keras'
own first training step on the same model.

Models: Dense stacks (32 units, tanh) of --depths layers, batch 64; keras.applications ResNet50
and EfficientNetB0 at 64x64 (weights=None), batch 4. Each model is built fresh; Keras' first
`train_on_batch` (its trace and first step) is timed, then `build_probe(model, ...)` and its first
call. Wall and process CPU seconds are printed; the probe's rows say how many tensors it reduces.

Run: python benchmarks/probe_setup.py [--depths 50,100] [--applications ResNet50,EfficientNetB0]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

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


def _timed(fn, *args) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="50,100")
    parser.add_argument("--applications", default="ResNet50,EfficientNetB0")
    parser.add_argument("--stats", default="all", help="'all' or a comma list, e.g. mean,std")
    args = parser.parse_args()
    stats = None if args.stats == "all" else args.stats.split(",")
    print(
        f"# keras {keras.__version__}, tensorflow {tf.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; probe: all tensors, stats={args.stats}, histograms on"
    )
    print("| model | rows | Keras first step s (cpu s) | probe first call s (cpu s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    cases = [(f"Dense x{d}", lambda d=d: _dense_stack(d)) for d in map(int, args.depths.split(","))]
    cases += [(n, lambda n=n: _application(n)) for n in args.applications.split(",") if n]
    for label, make in cases:
        keras.utils.set_random_seed(0)
        model, x, y = make()
        keras_wall, keras_cpu = _timed(model.train_on_batch, x, y)
        probe = build_probe(model, stats=stats, histograms=True)
        probe_wall, probe_cpu = _timed(probe, x, y)
        print(
            f"| {label} | {len(probe.rows)} | {keras_wall:.1f} ({keras_cpu:.1f}) | "
            f"{probe_wall:.1f} ({probe_cpu:.1f}) | {probe_wall / keras_wall:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
