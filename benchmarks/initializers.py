"""Time each keras_initx initializer next to the closest Keras built-in, as ratios from one run.

Run: `python benchmarks/initializers.py [--repeats N]`. For each kernel shape, every initializer
and its baseline are warmed up once, then called in interleaved rounds (so load drift hits both
alike); the table shows the median time of each and their ratio. Exits non-zero if `sparse` is
not within 3x of `RandomNormal` on (4096, 4096), the issue's requirement.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from keras_initx.initializers import INITIALIZERS  # noqa: E402

SHAPES = [(4096, 4096), (3, 3, 512, 512)]
DTYPE = "float32"
SEED = 0
SPARSE_LIMIT = 3.0
# Our canonical names -> the Keras built-in closest to each.
BASELINES = {
    "lecun_1_over_sqrt_d": "GlorotUniform",
    "sigmoid_glorot_uniform": "GlorotUniform",
    "sigmoid_glorot_normal": "GlorotNormal",
    "orthogonal_gain": "Orthogonal",
    "sparse": "RandomNormal",
}


def _time_call(initializer, shape) -> float:
    start = time.perf_counter()
    # Converting one element forces the (possibly asynchronous) computation to finish.
    np.asarray(initializer(shape, dtype=DTYPE)).ravel()[:1]
    return time.perf_counter() - start


def measure(shape: tuple[int, ...], repeats: int) -> pd.DataFrame:
    """Median seconds of each initializer and its baseline, measured in interleaved rounds."""
    pairs = {
        name: (INITIALIZERS[name](seed=SEED), getattr(keras.initializers, base)(seed=SEED))
        for name, base in BASELINES.items()
    }
    times = {name: ([], []) for name in pairs}
    for ours, base in pairs.values():  # warm-up: first calls build kernels and caches
        _time_call(ours, shape)
        _time_call(base, shape)
    for _ in range(repeats):
        for name, (ours, base) in pairs.items():
            times[name][0].append(_time_call(ours, shape))
            times[name][1].append(_time_call(base, shape))
    rows = []
    for name, (ours_times, base_times) in times.items():
        ours_ms, base_ms = 1e3 * np.median(ours_times), 1e3 * np.median(base_times)
        rows.append(
            {
                "shape": str(shape),
                "initializer": name,
                "ms": round(ours_ms, 1),
                "keras_builtin": BASELINES[name],
                "builtin_ms": round(base_ms, 1),
                "ratio": round(ours_ms / base_ms, 2),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per pair (median)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    print(
        f"backend={keras.backend.backend()} keras={keras.__version__} tensorflow={tf.__version__} "
        f"python={platform.python_version()} cpus={os.cpu_count()} "
        f"devices={[d.device_type for d in tf.config.list_logical_devices()]}"
    )
    print(f"dtype={DTYPE} seed={SEED} repeats={args.repeats} (median) warmup=1 interleaved=yes")
    table = pd.concat([measure(shape, args.repeats) for shape in SHAPES], ignore_index=True)
    print(table.to_string(index=False))

    sparse = table[(table["shape"] == str(SHAPES[0])) & (table["initializer"] == "sparse")]
    ratio = float(sparse.ratio.iloc[0])
    ok = ratio <= SPARSE_LIMIT
    print(
        f"sparse vs RandomNormal on {SHAPES[0]}: {ratio:.2f}x "
        f"({'within' if ok else 'NOT within'} {SPARSE_LIMIT:g}x)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
