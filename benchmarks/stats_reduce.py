"""Time of `stats.reduce_tensors` compiled, this checkout against a git revision's `stats.py`.

Tensors as the reference probe's (`callback_overhead.py`): ten 128x500 activations and two
128x28x28x16 conv activations, every statistic, with and without histograms; plus the fault
path (one NaN in one tensor, so the masked moments run). Both versions are compiled as
`tf.function`s on the same inputs and called in alternation (order swapped each round) --calls
times; the table gives each median in microseconds and the median of the paired ratios
new / old with its interquartile range. On a shared machine only the paired ratio is
trustworthy.

Run: python benchmarks/stats_reduce.py [--rev HEAD] [--calls 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_initx import stats as new_stats  # noqa: E402


def _load_revision(rev: str):
    """The `keras_initx/stats.py` of git revision `rev`, imported as a separate module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:keras_initx/stats.py"], capture_output=True, text=True, check=True
    ).stdout
    path = os.path.join(tempfile.mkdtemp(), "stats_baseline.py")
    with open(path, "w") as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location("stats_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tensors(faulty: bool) -> list[tf.Tensor]:
    rng = np.random.default_rng(0)
    arrays = [np.tanh(rng.standard_normal((128, 500))) for _ in range(10)]
    arrays += [np.maximum(rng.standard_normal((128, 28, 28, 16)), 0.0) for _ in range(2)]
    if faulty:
        arrays[3][0, 0] = np.nan
    return [tf.constant(a, tf.float32) for a in arrays]


def _compiled(module, histograms: bool):
    bounds = [(-1.0, 1.0)] * 10 + [None] * 2

    # No autograph: the baseline module is loaded from a temporary file it cannot read back.
    @tf.function(autograph=False)
    def reduce(*tensors):
        return module.reduce_tensors(
            list(tensors), bounds=bounds, units=[True] * 12, with_histograms=histograms
        )

    return reduce


def _time(function, tensors) -> float:
    start = time.perf_counter()
    values, hist = function(*tensors)
    values.numpy()
    if hist is not None:
        hist.numpy()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="HEAD", help="git revision of the baseline stats.py")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    old_stats = _load_revision(args.rev)
    print(f"stats.py: working tree vs {args.rev}; {args.calls} paired calls; {sys.platform}")
    print(f"{'case':<22}{'old us':>10}{'new us':>10}{'new/old':>10}{'IQR':>16}")
    for label, histograms, faulty in [
        ("all stats", False, False),
        ("all stats + hist", True, False),
        ("fault path + hist", True, True),
    ]:
        tensors = _tensors(faulty)
        old, new = _compiled(old_stats, histograms), _compiled(new_stats, histograms)
        for function in (old, new):
            for _ in range(5):
                _time(function, tensors)
        old_times, new_times = [], []
        for call in range(args.calls):
            pair = [(old, old_times), (new, new_times)]
            for function, times in pair[:: 1 if call % 2 else -1]:
                times.append(_time(function, tensors))
        ratios = np.array(new_times) / np.array(old_times)
        q25, q75 = np.percentile(ratios, [25, 75])
        print(
            f"{label:<22}{np.median(old_times) * 1e6:>10.0f}{np.median(new_times) * 1e6:>10.0f}"
            f"{np.median(ratios):>10.3f}{f'[{q25:.3f}, {q75:.3f}]':>16}"
        )


if __name__ == "__main__":
    main()
