"""Cost of `stats.reduce_tensors`, this checkout against a git revision's `stats.py`.

The tensors are those a probe or tap of `callback_overhead.py`'s models reduces: the shapes,
`bounds` and `units` are recorded from `build_probe(model, histograms=True)` on a batch of 128
(reference MLP: 75 rows, ten 128x500 activations and their gradients, 500x500 kernels; CNN: 26
rows, four 128x26x26x16 tensors), filled with synthetic values of the right kind (tanh or ReLU
activations, normal gradients and weights). Cases: every statistic with histograms (as the
probe), `mean` and `std` only, and the fault path (one NaN in one tensor, so the masked float64
moments run).

The function's one input is an aligned buffer cut into the tensors inside the graph (slices
that alias it), as a tap's tensors are inside its graph: 75 separate inputs would add their own
milliseconds of call overhead.
Per call: both versions compiled as `tf.function`s on the same input, called in alternation
(order swapped each round) --calls times (the fault path a tenth of that); medians in
milliseconds and the median of the paired ratios new / old with its interquartile range (on a
shared machine only the paired ratio is trustworthy).
Setup: a fresh `tf.function` of each version, in alternation --traces times: `trace` is
`get_concrete_function` (Python tracing), `first` the first call (graph optimization and
kernel creation, plus one run), with Grappler's default options as a training function has.
`ops` counts the graph's operations, those inside `tf.cond` branches included, and the cutting
of the buffer (about five per tensor in both).

Run: python benchmarks/stats_reduce.py [--rev HEAD] [--calls 200] [--traces 5]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# This checkout's package (not an installed one) and `callback_overhead` next to this file.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(_HERE), _HERE]

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from callback_overhead import BATCH, cnn_model, reference_model  # noqa: E402

from keras_initx import capture  # noqa: E402
from keras_initx import stats as new_stats  # noqa: E402

MODELS = {"reference": (reference_model, (784,)), "cnn": (cnn_model, (28, 28, 1))}


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


def _probe_arguments(model_name: str) -> tuple[list[tuple], dict]:
    """The tensor shapes and keyword arguments a probe of the model passes to
    `reduce_tensors`, recorded while it traces."""
    build, input_shape = MODELS[model_name]
    model = build()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    probe = capture.build_probe(model, histograms=True)
    recorded = {}
    reduce = capture.reduce_tensors

    def recording(tensors, stats, **kwargs):
        recorded.update(shapes=[tuple(t.shape) for t in tensors], kwargs=dict(kwargs))
        return reduce(tensors, stats, **kwargs)

    capture.reduce_tensors = recording
    try:
        probe(np.zeros((BATCH, *input_shape), "float32"), np.zeros(BATCH, "int32"))
    finally:
        capture.reduce_tensors = reduce
    return recorded["shapes"], recorded["kwargs"]


# Alignment (in float32 values) at which TensorFlow slices a buffer without copying.
_ALIGN = 16


def _buffer(shapes, kwargs, faulty: bool) -> tf.Tensor:
    """All tensors' synthetic values in one aligned buffer, cut by `_function` in the graph:
    one input, as the tensors of a tap are inside its graph (75 separate inputs cost their
    own milliseconds per call)."""
    rng = np.random.default_rng(0)
    parts = []
    for shape, bounds, units in zip(shapes, kwargs["bounds"], kwargs["units"], strict=True):
        a = rng.standard_normal(shape).ravel()
        if bounds is not None:
            a = np.tanh(a)
        elif units:
            a = np.maximum(a, 0.0)  # ReLU: half zeros, and the dead-unit path
        else:
            a *= 0.05
        parts += [a, np.zeros(-a.size % _ALIGN)]
    if faulty:
        parts[2][0] = np.nan  # in the second tensor
    return tf.constant(np.concatenate(parts), tf.float32)


def _function(module, shapes, kwargs: dict, stats):
    # No autograph: the baseline module is loaded from a temporary file it cannot read back.
    @tf.function(autograph=False)
    def reduce(buffer):
        tensors, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            tensors.append(tf.reshape(buffer[start : start + size], shape))
            start += size + (-size % _ALIGN)
        return module.reduce_tensors(tensors, stats, **kwargs)

    return reduce


def _run(function, buffer) -> float:
    start = time.perf_counter()
    values, hist = function(buffer)
    values.numpy()
    if hist is not None:
        hist.numpy()
    return time.perf_counter() - start


def _op_count(graph) -> int:
    """Operations of `graph` and of the functions it calls (`tf.cond` branches)."""
    count = len(graph.get_operations())
    for function in graph._functions.values():  # noqa: SLF001 - no public accessor
        count += len(function.cached_definition.node_def)
    return count


def _alternate(rounds: int, old, new) -> tuple[np.ndarray, np.ndarray]:
    """The results of `old()` and `new()` called in alternation, order swapped each round."""
    times = {old: [], new: []}
    for i in range(rounds):
        for f in (old, new) if i % 2 else (new, old):
            times[f].append(f())
    return np.array(times[old]), np.array(times[new])


def _row(label: str, old: np.ndarray, new: np.ndarray, unit: float, fmt: str) -> str:
    ratios = new / old
    q25, q75 = np.percentile(ratios, [25, 75])
    return (
        f"{label:<44}{np.median(old) * unit:>10{fmt}}{np.median(new) * unit:>10{fmt}}"
        f"{np.median(ratios):>9.3f}{f'[{q25:.3f}, {q75:.3f}]':>17}"
    )


def _setup(module, shapes, kwargs, stats, buffer) -> tuple[float, float, int]:
    """(trace seconds, first call seconds, ops) of a fresh compiled `reduce_tensors`."""
    function = _function(module, shapes, kwargs, stats)
    start = time.perf_counter()
    concrete = function.get_concrete_function(tf.TensorSpec.from_tensor(buffer))
    traced = time.perf_counter()
    _run(concrete, buffer)
    return traced - start, time.perf_counter() - traced, _op_count(concrete.graph)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="HEAD", help="git revision of the baseline stats.py")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--traces", type=int, default=5)
    parser.add_argument("--models", default="reference,cnn")
    args = parser.parse_args()
    old_stats = _load_revision(args.rev)
    print(
        f"# stats.py: working tree (new) vs {args.rev} (old); {args.calls} paired calls, "
        f"{args.traces} paired traces; {os.cpu_count()} CPUs, tensorflow {tf.__version__}"
    )
    print(f"{'case':<44}{'old':>10}{'new':>10}{'new/old':>9}{'IQR':>17}")
    modules = (old_stats, new_stats)
    for model_name in args.models.split(","):
        shapes, kwargs = _probe_arguments(model_name)
        for case, stats, faulty in [
            ("all + hist", new_stats.STAT_NAMES, False),
            ("mean, std", ("mean", "std"), False),
            ("fault path, all + hist", new_stats.STAT_NAMES, True),
        ]:
            case_kwargs = dict(kwargs, with_histograms=stats == new_stats.STAT_NAMES)
            buffer = _buffer(shapes, kwargs, faulty)
            functions = [_function(m, shapes, case_kwargs, stats) for m in modules]
            for f in functions:
                for _ in range(3):
                    _run(f, buffer)
            # The fault path runs for a second or more: a tenth of the calls.
            calls = max(args.calls // 10, 5) if faulty else args.calls
            old, new = _alternate(calls, *(functools.partial(_run, f, buffer) for f in functions))
            label = f"{model_name} ({len(shapes)} rows) {case}"
            print(_row(f"{label}: call ms", old, new, 1e3, ".2f"))
            if faulty:
                continue
            old, new = _alternate(
                args.traces,
                *(
                    functools.partial(_setup, m, shapes, case_kwargs, stats, buffer)
                    for m in modules
                ),
            )
            print(_row("  trace s", old[:, 0], new[:, 0], 1.0, ".2f"))
            print(_row("  first call s", old[:, 1], new[:, 1], 1.0, ".2f"))
            print(f"  ops{'':<41}{old[0, 2]:>10.0f}{new[0, 2]:>10.0f}{new[0, 2] / old[0, 2]:>9.3f}")


if __name__ == "__main__":
    main()
