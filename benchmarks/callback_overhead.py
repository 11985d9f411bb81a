"""Wall-time overhead of LayerStats (tap and probe modes) against a plain fit.

Two models, batch 128:
  reference  10 Dense(500, tanh) layers on 784 inputs, 10 logits;
  cnn        Conv2D(16)-MaxPool-Conv2D(32)-MaxPool-Dense(64)-Dense(10) on 28x28x1.
Configurations of each model: no callbacks (twice: "plain" and "plain again", whose ratio is the
noise floor); LayerStats in both modes, `tap` (fit's own training step measured, no probe) and
`probe` (the first batch of 128 as probe), each with every_n_steps = 1, 4, 16, 64, with
schedule="log" and with max_overhead=0.02 (log schedule, measurements spaced to cost at most
2%); and, to tell measuring from writing, the tap every step without log_dir (rows in memory
only). LayerStats keeps all tensors and statistics and, with log_dir, writes CSV, Parquet and
TensorBoard (tensorboard=True) to its own temporary directory. --keras-tensorboard adds Keras'
TensorBoard(histogram_freq=1) for reference.

How (this is a shared 2-core VM where identical fits vary by tens of percent between
repetitions, so only paired, interleaved ratios are trustworthy): every configuration has its own
compiled model and callbacks, traced and warmed up by one fit, reused by all its timed fits, so
tracing is never timed. Each repetition then fits every configuration once for --steps steps
(one epoch): the models in alternating order, each model's configurations in a shuffled order
(seeded), and each configuration's time is divided by the plain fit of the same model in the
same repetition. The tables give the median of those paired ratios and their interquartile
range (IQR, 25th-75th percentile) over --repeats repetitions:
  steady    the training steps alone: from the start of the first batch to the end of the last
            one (LayerStats' background writes run inside that window, one measurement in
            flight at most: only the last one's write may fall outside);
  fit       the whole `model.fit` call, epoch-end work included (LayerStats' CSV flush and
            Parquet rewrite of all rows so far), i.e. one epoch of --steps steps;
  meas/fit  measurements per timed fit (`cost_report()["measurements"]` after less before; the
            optimizer step keeps counting across fits, so the log schedule and the budget
            measure rarely after the warm-up fit, as they would late in a long run);
  cost      `cost_report()["cost_in_steps"]` after each timed fit, median over repetitions: the
            callback's own estimate of one measurement in plain steps, writer time included
            (n/a where every step is measured: no plain step to compare with); write: the
            median of `cost_report()["write_s"]`.
Direct costs, per model: `model.train_function` on one batch (a plain training step) alternated
--calls times, the order swapped each call, with a measured call: a tapped step (the tap-every-
step configuration's `LayerStats.engine.tapping()`, statistics on the host, nothing written) and
a probe (`LayerStats.engine(x, y)`). Each is the median measured call over the median plain
call, with the IQR of the paired per-call ratios.

Targets (from the issue): tap every 16 steps <= 1.02x and tap every step <= 1.5x (steady
ratios), one tapped step <= 1.35 plain steps; probe mode no slower than before the tap: the
README's figures of this benchmark at commit 525fe12 on the same machine class, another run and
session, so compare loosely and against this run's noise floor. Verdicts compare medians only.

Run: python benchmarks/callback_overhead.py [--steps 64] [--repeats 8] [--calls 60]
    [--models reference,cnn] [--keras-tensorboard] [--quick]
--quick is a smoke run of about 2 minutes: the cnn only, 2 repetitions, 10 direct calls.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_initx.callbacks import LayerStats  # noqa: E402

BATCH = 128
MAX_OVERHEAD = 0.02
EVERY = (1, 4, 16, 64)
# Steady-ratio targets of the issue, and the direct tapped-step target in plain steps.
TARGETS = {"tap_every_1": 1.5, "tap_every_16": 1.02}
TAPPED_STEP_TARGET = 1.35
# Probe mode before the tap (README, this benchmark at commit 525fe12): steady ratios, and one
# probe in plain steps.
BEFORE = {
    "reference": {"probe_every_1": 2.803, "probe_every_16": 1.159, "probe_every_64": 1.071},
    "cnn": {"probe_every_1": 3.167, "probe_every_16": 1.197, "probe_every_64": 1.094},
}
PROBE_BEFORE = {"reference": 1.22, "cnn": 1.44}


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


MODELS = {"reference": (reference_model, (784,)), "cnn": (cnn_model, (28, 28, 1))}


def configurations(keras_tensorboard: bool) -> dict[str, tuple[str, dict | None]]:
    """name -> (label, LayerStats keyword arguments or None for no LayerStats)."""
    configs = {
        "plain": ("no callbacks", None),
        "plain_again": ("no callbacks, again (noise floor)", None),
    }
    if keras_tensorboard:
        configs["keras_tensorboard"] = ("Keras TensorBoard(histogram_freq=1)", None)
    for mode in ("tap", "probe"):
        for n in EVERY:
            configs[f"{mode}_every_{n}"] = (f"{mode}, every {n}", dict(every_n_steps=n))
        configs[f"{mode}_log"] = (f"{mode}, schedule='log'", dict(schedule="log"))
        configs[f"{mode}_budget"] = (
            f"{mode}, max_overhead={MAX_OVERHEAD}",
            dict(max_overhead=MAX_OVERHEAD),
        )
    configs["tap_every_1_memory"] = (
        "tap, every 1, no log_dir (in memory)",
        dict(every_n_steps=1, log_dir=None),
    )
    return configs


class StepWindow(keras.callbacks.Callback):
    """Times the training steps of a fit: first batch begin to last batch end.

    Goes last in the callback list, so the window holds the other callbacks' batch work.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds = float("nan")
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if batch == 0:
            self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch == self.params["steps"] - 1:
            self.seconds = time.perf_counter() - self._start


class Run:
    """One configuration of one model: its compiled model, callbacks and timings."""

    def __init__(self, name: str, kwargs: dict | None, build, probe, batches, log_root) -> None:
        keras.utils.set_random_seed(0)
        self.model = build()
        self.model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        self.batches = batches
        log_dir = os.path.join(log_root, f"{self.model.name}_{name}")
        self.layer_stats: LayerStats | None = None
        callbacks = []
        if name == "keras_tensorboard":
            callbacks.append(keras.callbacks.TensorBoard(log_dir, histogram_freq=1))
        elif kwargs is not None:
            mode = name.split("_")[0]
            kwargs = dict(dict(log_dir=log_dir, tensorboard=True, mode=mode), **kwargs)
            if mode == "probe":
                kwargs["probe"] = probe
            self.layer_stats = LayerStats(**kwargs)
            callbacks.append(self.layer_stats)
        self.window = StepWindow()
        self.callbacks = [*callbacks, self.window]
        self.steady: list[float] = []
        self.whole: list[float] = []
        self.measurements: list[int] = []
        self.cost: list[float] = []
        self.write: list[float] = []
        # Warm-up: traces the training step (and the tap or probe), opens the writers. As many
        # steps as a timed fit: the iterations stay multiples of 64, so every_n_steps measures
        # the same batches in every timed fit.
        self._fit()

    def _fit(self) -> float:
        start = time.perf_counter()
        self.model.fit(self.batches, epochs=1, verbose=0, callbacks=self.callbacks, shuffle=False)
        return time.perf_counter() - start

    def timed_fit(self) -> None:
        before = self.layer_stats.cost_report()["measurements"] if self.layer_stats else 0
        self.whole.append(self._fit())
        self.steady.append(self.window.seconds)
        if self.layer_stats is not None:
            report = self.layer_stats.cost_report()
            self.measurements.append(report["measurements"] - before)
            self.cost.append(report["cost_in_steps"])
            self.write.append(report.get("write_s", float("nan")))


def _sync(logs) -> None:
    """Wait for a `train_function` call: bring its logs to the host."""
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, logs)


def direct_cost(run: Run, kind: str, calls: int) -> tuple[float, float, np.ndarray]:
    """(median plain step s, median measured call s, paired measured/plain ratios).

    `kind` "tap": a tapped training step; "probe": one probe call. Alternated with plain
    training steps, the order swapped each call.
    """
    model, engine = run.model, run.layer_stats.engine
    iterator = iter(run.batches.repeat())

    def plain() -> None:
        _sync(model.train_function(iterator))

    def tapped() -> None:
        with engine.tapping():
            _sync(model.train_function(iterator))
        if engine.result is None:
            raise RuntimeError("the tapped call measured nothing")

    x, y = run.layer_stats.probe[:2] if kind == "probe" else (None, None)
    measured = tapped if kind == "tap" else lambda: engine(x, y)
    for fn in (plain, measured, plain, measured):  # a new iterator: retrace, warm caches
        fn()
    plains, measures = [], []
    for call in range(calls):
        pair = ((plain, plains), (measured, measures))
        for fn, times in pair if call % 2 else pair[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    plains, measures = np.array(plains), np.array(measures)
    return float(np.median(plains)), float(np.median(measures)), measures / plains


def quartiles(values) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile), NaNs left out."""
    q1, median, q3 = np.nanpercentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(q1), float(median), float(q3)


def summary(values) -> str:
    q1, median, q3 = quartiles(values)
    return f"{median:.3f}x [{q1:.3f}, {q3:.3f}]"


def verdict(model_name: str, name: str, ratio: float) -> str:
    if name in TARGETS:
        goal = TARGETS[name]
        return f"<= {goal:.2f}x: {'yes' if ratio <= goal else 'NO'}"
    if name in BEFORE[model_name]:
        before = BEFORE[model_name][name]
        return f"before {before:.3f}x: {'no slower' if ratio <= before else 'SLOWER'}"
    return ""


def report(model_name: str, configs: dict, runs: dict[str, Run], costs: dict) -> None:
    plain = runs["plain"]
    steps = plain.window.params["steps"]
    rows = {
        mode: runs[f"{mode}_every_1"].layer_stats.engine
        for mode in ("tap", "probe")
        if f"{mode}_every_1" in runs
    }
    shapes = ", ".join(f"{m} {len(e.rows)} rows x {len(e.stats)} stats" for m, e in rows.items())
    print(
        f"\n## {model_name}: {plain.model.count_params():,} parameters; per measurement "
        f"{shapes}; plain fit median {np.median(plain.whole):.3f} s "
        f"({np.median(plain.steady) / steps * 1e3:.1f} ms per step)"
    )
    print(
        "| configuration | steady ratio [IQR] | fit ratio [IQR] | meas/fit | cost (steps) "
        "| write (ms) | median fit (s) | target (steady) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    plain_steady, plain_whole = np.array(plain.steady), np.array(plain.whole)
    for name, run in runs.items():
        steady = np.array(run.steady) / plain_steady
        measurements = cost = write = ""
        if run.layer_stats is not None:
            measurements = f"{np.median(run.measurements):g}"
            cost = "n/a" if np.all(np.isnan(run.cost)) else f"{np.nanmedian(run.cost):.2f}"
            if not np.all(np.isnan(run.write)):
                write = f"{np.nanmedian(run.write) * 1e3:.1f}"
        print(
            f"| {configs[name][0]} | {summary(steady)} "
            f"| {summary(np.array(run.whole) / plain_whole)} | {measurements} | {cost} | {write} "
            f"| {np.median(run.whole):.3f} | {verdict(model_name, name, quartiles(steady)[1])} |"
        )
    for kind, (step, measured, ratios) in costs.items():
        q1, median, q3 = quartiles(ratios)
        if kind == "tap":
            what = "one tapped step (step + recording + statistics) vs one plain step"
            ok = "yes" if median <= TAPPED_STEP_TARGET else "NO"
            goal = f"<= {TAPPED_STEP_TARGET:.2f} steps: {ok}"
        else:
            what = "one probe (forward + backward + statistics) vs one plain step"
            before = PROBE_BEFORE[model_name]
            goal = f"before {before:.2f} steps: {'no slower' if median <= before else 'SLOWER'}"
        print(
            f"| {what} | {measured * 1e3:.1f} ms / {step * 1e3:.1f} ms = {measured / step:.2f} "
            f"steps | paired {median:.3f}x [{q1:.3f}, {q3:.3f}] | | | | | {goal} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="steps per fit, a multiple of 64")
    parser.add_argument("--repeats", type=int, default=8, help="interleaved repetitions")
    parser.add_argument("--calls", type=int, default=60, help="alternated direct-cost calls")
    parser.add_argument("--models", default=None, help="default reference,cnn (cnn: --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled orders")
    parser.add_argument(
        "--keras-tensorboard", action="store_true", help="add TensorBoard(histogram_freq=1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run (~2 min): cnn, --repeats 2 --calls 10"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.calls = 2, 10
    model_names = (args.models or ("cnn" if args.quick else "reference,cnn")).split(",")
    unknown = sorted(set(model_names) - set(MODELS))
    if unknown:
        parser.error(f"unknown --models {unknown}; expected names from {sorted(MODELS)}")
    if args.steps % 64 or args.steps <= 0:
        parser.error(f"--steps must be a positive multiple of 64, got {args.steps}")
    if args.repeats < 1 or args.calls < 1:
        parser.error("--repeats and --calls must be at least 1")
    configs = configurations(args.keras_tensorboard)

    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n = args.steps * BATCH
    y = rng.integers(0, 10, size=n)
    print(
        f"# keras {keras.__version__}, tensorflow {tf.__version__}, python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPU cores "
        f"({len(os.sched_getaffinity(0))} usable); load average {os.getloadavg()[0]:.2f} at start"
    )
    print(
        f"# command: python {' '.join(sys.argv)}\n"
        f"# models {', '.join(model_names)}; batch {BATCH}, Adam; {args.steps} steps per fit "
        f"(one epoch); {args.repeats} interleaved repetitions (models alternated, "
        f"{len(configs)} configurations per model shuffled, seed {args.seed}); "
        f"{args.calls} alternated direct-cost calls"
    )
    print(
        f"# LayerStats: all tensors and statistics; tensorboard=True and log_dir (CSV + Parquet "
        f"+ TensorBoard) in a temporary directory unless said; probe mode: the first {BATCH} "
        f"examples as probe; max_overhead={MAX_OVERHEAD} with its default log schedule"
    )
    print(
        "# ratio = median of per-repetition ratios to the plain fit of the same model and "
        "repetition [interquartile range]; targets on the steady ratio, medians only",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as log_root:
        runs: dict[str, dict[str, Run]] = {}
        for model_name in model_names:
            build, input_shape = MODELS[model_name]
            x = rng.normal(size=(n, *input_shape)).astype("float32")
            # Batched and cached once: a NumPy fit would copy the arrays into a new dataset at
            # every fit, a fixed cost that varies more than the overheads measured here.
            batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH).cache()
            probe = (x[:BATCH], y[:BATCH])
            runs[model_name] = {
                name: Run(name, kwargs, build, probe, batches, log_root)
                for name, (_, kwargs) in configs.items()
            }
        setup = time.perf_counter() - started
        print(f"# setup (build, compile, warm-up fit): {setup:.0f} s", flush=True)
        for r in range(args.repeats):
            for model_name in model_names if r % 2 == 0 else model_names[::-1]:
                for name in rng.permutation(list(configs)):
                    runs[model_name][str(name)].timed_fit()
            elapsed = time.perf_counter() - started
            print(f"# repetition {r + 1}/{args.repeats} done at {elapsed:.0f} s", flush=True)
        for model_name in model_names:
            model_runs = runs[model_name]
            costs = {
                kind: direct_cost(model_runs[f"{kind}_every_1"], kind, args.calls)
                for kind in ("tap", "probe")
            }
            report(model_name, configs, model_runs, costs)
    print(
        f"\n# total {time.perf_counter() - started:.0f} s (setup {setup:.0f} s); load average "
        f"{os.getloadavg()[0]:.2f} at the end"
    )


if __name__ == "__main__":
    main()
