"""LayerStats: per-layer activation, pre-activation and gradient statistics during `fit`.

The callback decides WHEN to measure; `keras_initx.capture` measures (a `Tap` on fit's own
training step, or a `Probe`'s compiled forward and backward pass on a fixed batch; statistics
reduced on the device either way) and the sinks in `keras_initx.sinks` keep the rows
(pandas/CSV/Parquet) and log them to TensorBoard.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_initx.capture import GRADIENT_TENSORS, MeasureSpec, Probe, ProbeResult, Tap
from keras_initx.diagnosis import diagnose, format_findings
from keras_initx.sinks import FrameSink, Sink, TensorBoardSink, result_rows
from keras_initx.stats import DEFAULT_BINS, STAT_NAMES
from keras_initx.validation import (
    check_backend,
    check_bool,
    check_int,
    check_number,
    check_one_of,
    input_mismatch,
)

__all__ = ["LayerStats", "log_spaced_steps"]

_SCHEDULES = ("every_n_steps", "log")
MODES = ("tap", "probe")
# With a budget, the log schedule's first steps are always measured (the early dynamics).
_DENSE_START = 4
# Timings kept for the budget: recent plain steps, and measuring steps after the first (trace).
_PLAIN_TIMINGS, _MEASURED_TIMINGS = 64, 16
_MIN_TIMINGS = 3  # plain steps timed before the budget trusts their median
# A first measurement (trace + graph optimization) still running after this many seconds says so,
# so that a long setup on a deep model does not look like a hang.
_SLOW_SETUP_S = 10.0


def log_spaced_steps(limit: int) -> list[int]:
    """Steps 0, 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, ... (about sqrt(2) apart) up to `limit`."""
    steps = {0}
    k = 0
    while (step := round(2 ** (k / 2))) <= limit:
        steps.add(step)
        k += 1
    return sorted(steps)


def _next_log_step(step: int) -> int:
    """The first log-spaced step strictly after `step`."""
    k = max(0, math.floor(2 * math.log2(step + 1)) - 2)
    while round(2 ** (k / 2)) <= step:
        k += 1
    return round(2 ** (k / 2))


class LayerStats(keras.callbacks.Callback):
    """Logs per-layer statistics of activations, pre-activations, gradients and kernels.

    Two ways to measure (`mode`):
    - `"tap"` (the default when no `probe` is given): on a measuring step, fit's own training
      step runs in a variant that also records the selected tensors from that step's forward
      and backward pass and reduces them on the device (`keras_initx.capture.Tap`). No probe
      batch, no second pass: a measurement costs a fraction of a step. The statistics are of
      that step's training batch, in training mode, before its update. Training is unchanged:
      the weights after a fit are bit-identical to a fit without the callback.
    - `"probe"` (the default when a `probe` is given): a separate compiled forward and backward
      pass on a fixed probe batch (`keras_initx.capture.Probe`), inference mode by default: the
      same batch at every step, so the rows are comparable across steps without the noise of
      changing batches, at the cost of the extra pass (about one training step).

    When: the initialization (step 0: the first training step's batch in tap mode; in probe
    mode at the first `on_epoch_begin`), then every `every_n_steps` optimizer steps or on a
    log-spaced schedule (steps 1, 2, 3, 4, 6, 8, 11, 16, 23, ...). With
    `steps_per_execution=k` fit runs k steps per call: the tap measures the first step of the
    group that holds a scheduled step, and the schedule continues after the group. A batch of
    another shape than the first measured one (an epoch's smaller last batch) is not measured
    in tap mode; the next one is. With `max_overhead`, the callback times plain and measuring
    steps during the fit and spaces the measurements after the first steps so that measuring
    costs at most that fraction of the training time (`cost_report()`).

    Rows (one per step, layer, tensor; columns `keras_initx.sinks.COLUMNS`, `source` saying
    which batch: `tap` or `probe`) are kept in memory (`to_dataframe()`) and, with `log_dir`,
    appended to `log_dir/layer_stats.csv` one measurement per write (a killed run keeps every
    measurement but the one in flight; `keras_initx.sinks.read_layer_stats` reads it back;
    a new LayerStats on the same `log_dir` appends, and a second live one is refused),
    rewritten to `layer_stats.parquet` at each epoch end when pyarrow is present, and logged
    to TensorBoard under `log_dir/layer_stats`, beside Keras' own `train`/`validation` runs
    (see `keras_initx.sinks.tensorboard`). Extra `sinks` get every measurement too.

    `step` is the optimizer's `iterations` when measured, so one instance used in two `fit`
    calls keeps counting; a step already measured is not measured twice. `epoch` is Keras'
    epoch index. NaN, Inf and huge values in the model are data: counted (`nan_count`,
    `inf_count`), never raised, and measuring goes on through a diverging fit.
    `terminate_on_nan=True` stops training at the first measurement that sees a NaN or Inf
    (its statistics are then always computed) or at the first non-finite training loss. A
    measurement that fails at run time warns and training and measuring go on; configuration
    errors (arguments, a model that cannot be traced) raise before the first training step.

    Only the measurement runs on the training thread: turning its results into rows and writing
    the sinks happens on one background thread, in measurement order, at most one measurement
    behind. `to_dataframe()`, each epoch end and the end of training wait for it.

    Args:
        probe: `(x, y)` or `(x, y, sample_weight)`, one batch of the model's inputs and labels
            (`x` a NumPy array/tensor, or a list/dict of them for multi-input models), for
            probe mode. `y` may be None when no gradient tensor is requested.
        log_dir: directory for the CSV/Parquet files and the TensorBoard run, or None to keep
            the rows in memory only.
        every_n_steps: measure every this many optimizer steps (int >= 1), when
            `schedule="every_n_steps"`.
        schedule: `"every_n_steps"` or `"log"` (log-spaced, dense early); default
            `"every_n_steps"`, or `"log"` with `max_overhead`.
        on_epoch_end: also measure at each epoch end (when that step was not just measured);
            probe mode only (a tap measures training steps).
        layers: regular expression on layer paths (e.g. `"dense"`); see
            `keras_initx.capture.find_layers`.
        layer_classes: class names or classes to keep, e.g. `["Dense", "Conv2D"]`.
        tensors: names from `keras_initx.capture.TENSORS` (default all).
        stats: names from `keras_initx.stats.STAT_NAMES` (default all).
        saturation_threshold: in (0, 1); tanh |a| > threshold, sigmoid outside
            [1 - threshold, threshold] count as saturated. Default 0.99.
        histogram_bins: bins of the histograms (TensorBoard, percentiles). Default 64.
        training: run the probe in training mode (dropout, batch statistics); default
            inference mode (probe mode only: a tap measures the training step as it runs).
            In inference mode BatchNormalization uses its moving statistics,
            0 and 1 before training, so it passes its input through at step 0; a warning
            names such layers.
        terminate_on_nan: stop training when a measurement counts a NaN or Inf, or the training
            loss is not finite.
        tensorboard: with `log_dir`, also write the TensorBoard run: `"summary"` (or True, the
            default: mean/std and the layout's statistics, few histograms; about 116 KB per
            measurement on ResNet50), `"full"` (every statistic and histogram) or False.
        warn: print `keras_initx.diagnose`'s findings for the initialization (step 0) in
            the first `on_epoch_begin`, so a bad init is flagged before any training; implies
            `diagnose`. Default False.
        diagnose: with the TensorBoard run, write the diagnosis of the latest measurement as
            text (`diagnosis`) and pictures (`plots/std_by_layer` at step 0, the layer x step
            heat maps `plots/<tensor>_std_heatmap` at each epoch end) to `layer_stats`.
            Default False (matplotlib drawing costs about 0.1 s per picture).
        loss: `loss(y_true, y_pred) -> scalar` for the gradients, for models without a compiled
            loss (e.g. a subclassed model with its own `train_step`); default the model's
            compiled loss (probe mode only).
        mode: `"tap"` or `"probe"` (see above); default `"probe"` when `probe` is given, else
            `"tap"`.
        max_overhead: a fraction of training time in (0, 1), e.g. 0.02: space the
            measurements (after the first `_DENSE_START` steps, always measured) so that
            measuring costs at most this, as timed during the fit. Default None (no budget).
        sinks: more `keras_initx.sinks.Sink`s that receive every measurement's rows.
    """

    def __init__(
        self,
        probe: tuple | None = None,
        log_dir: str | os.PathLike | None = None,
        every_n_steps: int = 16,
        schedule: str | None = None,
        on_epoch_end: bool = False,
        layers: str | None = None,
        layer_classes: Sequence[str | type] | None = None,
        tensors: Sequence[str] | None = None,
        stats: Sequence[str] | None = None,
        saturation_threshold: float = 0.99,
        histogram_bins: int = DEFAULT_BINS,
        training: bool = False,
        terminate_on_nan: bool = False,
        tensorboard: bool | str = True,
        warn: bool = False,
        diagnose: bool = False,
        loss: Any = None,
        mode: str | None = None,
        max_overhead: float | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        super().__init__()
        check_backend("LayerStats")
        self.mode = ("probe" if probe is not None else "tap") if mode is None else mode
        check_one_of("mode", self.mode, MODES)
        for name, flag in (
            ("on_epoch_end", on_epoch_end),
            ("training", training),
            ("terminate_on_nan", terminate_on_nan),
            ("warn", warn),
            ("diagnose", diagnose),
        ):
            check_bool(name, flag)
        if self.mode == "probe":
            self.probe = _validated_probe(probe, tensors)
        else:
            self.probe = None
            given = dict(probe=probe, training=training, loss=loss, on_epoch_end=on_epoch_end)
            for name, value in given.items():
                if value is not None and value is not False:
                    shown = f"a {type(value).__name__}" if name == "probe" else repr(value)
                    raise ValueError(
                        f"Invalid value for argument `{name}` with mode='tap'. Received: "
                        f"{name}={shown}. Expected it left out: the tap measures fit's own "
                        "training steps. Pass mode='probe' to measure a probe batch."
                    )
        self.log_dir = None if log_dir is None else _validated_log_dir(log_dir)
        if not (isinstance(tensorboard, bool) or tensorboard in ("summary", "full")):
            raise ValueError(
                "Invalid value for argument `tensorboard`. "
                f"Received: tensorboard={tensorboard!r}. Expected True, False, 'summary' or "
                "'full'."
            )
        check_int("every_n_steps", every_n_steps, 1)
        if max_overhead is not None:
            check_number("max_overhead", max_overhead, low=0, high=1, low_inclusive=False,
                         high_inclusive=False)  # fmt: skip
        if schedule is None:
            schedule = "log" if max_overhead is not None else "every_n_steps"
        check_one_of("schedule", schedule, _SCHEDULES)
        sinks = list(sinks)
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise TypeError(
                    f"Invalid type for argument `sinks`. Received: {sink!r} in sinks. Expected "
                    "objects with `write(rows, histograms)`, `flush()` and `close()` "
                    "(keras_initx.sinks.Sink)."
                )
        self.every_n_steps = every_n_steps
        self.schedule = schedule
        self.measure_on_epoch_end = on_epoch_end
        self.spec = MeasureSpec(
            tensors,
            stats,
            layers=layers,
            layer_classes=layer_classes,
            saturation_threshold=saturation_threshold,
            histogram_bins=histogram_bins,
            histograms=self.log_dir is not None and bool(tensorboard),
        )
        if loss is not None and not callable(loss):
            raise TypeError(
                f"Invalid type for argument `loss`. Received: loss={loss!r}. Expected a "
                "callable `loss(y_true, y_pred) -> scalar`, or None for the compiled loss."
            )
        self.loss = loss
        self.training = training
        self.terminate_on_nan = terminate_on_nan
        self.tensorboard = "summary" if tensorboard is True else tensorboard
        self.warn = warn
        self.diagnose = diagnose
        self.max_overhead = max_overhead

        self._frame = FrameSink(self.log_dir)
        self._user_sinks = sinks
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._tensorboard: TensorBoardSink | None = None
        self._engine: Probe | Tap | None = None
        self._tapping: contextlib.ExitStack | None = None
        self._failures: set[str] = set()
        self._initial_pending = False
        self._step = 0
        self._epoch = 0
        self._epoch_base = 0
        self._next_step = 0
        self._last_measured: int | None = None
        self._broken = False
        self._viewed_step: int | None = None
        self._cost = _CostMeter(self.mode, max_overhead)
        self._batch_started = 0.0

    # -- Keras hooks -------------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        model = self.model
        if self.mode == "probe":
            x = self.probe[0]
            _check_probe_against_inputs(model, x)
            if not model.built:
                # Subclassed models build on their first call; doing it here, before any
                # update, creates the same variables fit would.
                model(x)
        if self._engine is None or self._engine.model is not model:
            # A new model starts its own count: its steps are not the last model's.
            self._last_measured = None
            self._engine = self._build(model)
        self._check_log_dir()
        if self.log_dir is not None and self.tensorboard and self._tensorboard is None:
            self._tensorboard = TensorBoardSink(
                self.log_dir, self._engine.stats, detail=self.tensorboard
            )
        self._broken = False
        self._cost.started = time.perf_counter()
        # Keras tells callbacks the first epoch (`initial_epoch`) only in on_epoch_begin, still
        # before any update: the initialization is measured there (by a probe) or at the first
        # training step (by the tap).
        self._initial_pending = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._epoch_base = self._step = self._iterations()
        if self._initial_pending and self.mode == "probe":
            self._initial_pending = False
            # Tracing errors here are configuration errors: let them surface.
            self._measure_probe(initial=True)
            self._after_initial()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # Called every step: integer arithmetic and a clock read unless a measurement is due.
        self._batch_started = time.perf_counter()
        # The group's first optimizer step, counted; the tap returns the exact one with its
        # statistics (read in its compiled function: a host read here waits on the writer's GIL).
        first = self._epoch_base + batch
        last = first + self.model.steps_per_execution - 1
        if self.mode != "tap" or self._broken or last < self._next_step:
            return
        if first == self._last_measured:  # never a step twice (a second fit goes on counting)
            return
        self._end_tapping()  # a tapped call that met the end of the data had no batch end
        self._tapping = contextlib.ExitStack()
        self._tapping.enter_context(self._engine.tapping())
        if not self._engine.trace_count:
            self._tapping.enter_context(self._setup_note())

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        took = time.perf_counter() - self._batch_started
        self._step = self._epoch_base + batch + 1
        if self.terminate_on_nan and logs and "loss" in logs:
            loss = float(logs["loss"])
            if not math.isfinite(loss):
                print(f"LayerStats: step {self._step}: loss is {loss}, terminating training")
                self.model.stop_training = True
        if self._tapping is not None:
            self._end_tapping()
            result = self._engine.result
            if result is not None:
                if self._cost.measurements:  # not the first, which traced
                    self._cost.measured.append(took)
                step = self._engine.step
                self._take(step, result)
                self._next_step = self._schedule_after(step + self.model.steps_per_execution - 1)
                if self._initial_pending:
                    self._initial_pending = False
                    self._after_initial()
            return
        self._cost.plain.append(took)
        if self.mode == "probe" and self._step >= self._next_step:
            # Batch counting overshoots when steps_per_execution does not divide an epoch:
            # the label is the optimizer's own count.
            self._step = self._iterations()
            if self._step >= self._next_step:
                self._measure_probe()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._end_tapping()
        if self.measure_on_epoch_end and self._last_measured != self._step:
            self._measure_probe()
        self._collect_writes(wait=True)
        for sink in self._sinks():
            sink.flush()
        self._log_views(first=False)
        if self._tensorboard is not None and self.max_overhead is not None:
            self._tensorboard.write_cost(self.cost_report(), self._iterations())

    def on_train_end(self, logs: dict | None = None) -> None:
        self._end_tapping()  # training stopped inside a tapped call
        self._collect_writes(wait=True)
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        for sink in self._sinks():
            sink.close()

    # -- results -----------------------------------------------------------------------------

    @property
    def engine(self) -> Probe | Tap | None:
        """The `keras_initx.capture.Probe` or `Tap` that measures (`rows`, `stats`,
        `trace_count`), built at the start of training; None before."""
        return self._engine

    def to_dataframe(self) -> pd.DataFrame:
        """All rows so far: one per (step, layer, tensor), columns `keras_initx.sinks.COLUMNS`.

        `attrs["cost"]` holds `cost_report()`.
        """
        self._collect_writes(wait=True)
        frame = self._frame.to_dataframe()
        frame.attrs["cost"] = self.cost_report()
        return frame

    def cost_report(self) -> dict[str, Any]:
        """What measuring costs in this fit, from the callback's own timings.

        Returns:
            `mode`; `measurements` so far; `plain_step_s`, the median time of a fit call
            without a measurement (one `steps_per_execution` group; NaN before three);
            `measure_s`, the median extra time of a measurement on the training thread (tap: a
            tapped call less a plain one; probe: the probe call), the first (tracing) one left
            out; `write_s`, the median time the writer thread spent on one measurement (rows
            and sinks); `cost_in_steps` = (`measure_s` + `write_s`) / `plain_step_s`;
            `interval`, the spacing in steps the budget asks for (1 without `max_overhead`);
            `max_overhead`; `overhead`, the estimated fraction of training time spent
            measuring so far.
        """
        return self._cost.report()

    # -- internals ---------------------------------------------------------------------------

    def _build(self, model: keras.Model) -> Probe | Tap:
        spec = self.spec
        if self.terminate_on_nan:
            # Termination needs the counts, whatever `stats` asked for.
            counts = {"nan_count", "inf_count"}
            spec = dataclasses.replace(
                spec, stats=[s for s in STAT_NAMES if s in {*spec.stats, *counts}]
            )
        if self.mode == "tap":
            return Tap(model, spec)
        probe = Probe(model, spec, training=self.training, loss=self.loss)
        if not self.training:
            _warn_inference_batchnorm(probe)
        return probe

    def _sinks(self) -> list:
        return [
            self._frame,
            *([self._tensorboard] if self._tensorboard is not None else []),
            *self._user_sinks,
        ]

    def _after_initial(self) -> None:
        """`warn`'s printout and `diagnose`'s views of the initialization."""
        latest = self._latest_findings() if self.warn or self.diagnose else None
        if self.warn and latest is not None and latest[1] == self._last_measured and len(latest[2]):
            print(format_findings(latest[2]))
        self._log_views(first=True, latest=latest)

    def _schedule_after(self, step: int) -> int:
        after = (
            _next_log_step(step)
            if self.schedule == "log"
            else (step // self.every_n_steps + 1) * self.every_n_steps
        )
        if self.max_overhead is None or step < _DENSE_START:
            return after
        return max(after, step + self._cost.interval_for(self.model.steps_per_execution))

    def _end_tapping(self) -> None:
        """Put Keras' train function back (if the tapped call did not) and stop the setup
        note."""
        if self._tapping is not None:
            self._tapping.close()
            self._tapping = None

    def _iterations(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _measure_probe(self, initial: bool = False) -> None:
        step = self._step
        self._next_step = self._schedule_after(step)
        if self._broken or self._last_measured == step:
            return
        started = time.perf_counter()
        try:
            with self._setup_note() if not self._engine.trace_count else contextlib.nullcontext():
                result = self._engine(*self.probe)
        except Exception as error:  # noqa: BLE001 - the callback must never crash the fit
            # A trace that fails at the first measurement is a configuration error; op errors
            # come from the data (a diverging fit) and are no reason to stop measuring.
            if initial and not isinstance(error, tf.errors.OpError):
                raise
            self._warn_failure(step, error)
            return
        if self._cost.measurements:  # the first call traces
            self._cost.measured.append(time.perf_counter() - started)
        self._take(step, result)

    @contextlib.contextmanager
    def _setup_note(self):
        """Print one line if the block (a first measurement) takes longer than `_SLOW_SETUP_S`."""
        engine = self._engine
        layers = len({info.layer for info in engine.layers})
        timer = threading.Timer(
            _SLOW_SETUP_S,
            print,
            args=(
                f"LayerStats: still preparing the measuring {type(engine).__name__.lower()} for "
                f"{layers} layers after {_SLOW_SETUP_S:.0f} s (TensorFlow traces and optimizes it "
                "once, about 0.2 CPU-s per layer on a small CPU); training goes on after it.",
            ),
        )
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _take(self, step: int, result: ProbeResult) -> None:
        """Hand one measurement to the writer thread; stop training on NaN/Inf if asked."""
        self._last_measured = step
        self._cost.measurements += 1
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="LayerStats")
        # Back-pressure: one measurement in flight at most, so memory stays bounded and a killed
        # run loses at most that one.
        self._collect_writes(wait=True)
        self._pending.append(self._writer.submit(self._write, step, self._epoch, result))
        counts = [result.stats.index(c) for c in ("nan_count", "inf_count") if c in result.stats]
        if self.terminate_on_nan and result.values[:, counts].sum() > 0:
            print(f"LayerStats: step {step}: NaN/Inf in layer statistics, terminating training")
            self.model.stop_training = True

    def _warn_failure(self, step: int, error: Exception) -> None:
        """Warn once per kind of failure; the later steps are measured again."""
        kind = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if kind in self._failures:
            return
        self._failures.add(kind)
        warnings.warn(
            f"LayerStats: measurement at step {step} failed ({kind}); the step has no rows, "
            "later steps are measured as scheduled.",
            stacklevel=3,
        )

    def _write(self, step: int, epoch: int, result: ProbeResult) -> None:
        """Turn one measurement into rows and hand them to the sinks (on the writer thread)."""
        started = time.perf_counter()
        rows = result_rows(result, step, epoch)
        for sink in self._sinks():
            sink.write(rows, result.histograms)
        self._cost.writes.append(time.perf_counter() - started)

    def _latest_findings(self) -> tuple[pd.DataFrame, int, pd.DataFrame] | None:
        """`(frame, latest step, diagnose's findings at that step)`; None before any row."""
        frame = self.to_dataframe()
        if frame.empty:
            return None
        step = int(frame["step"].max())
        return frame, step, diagnose(frame[frame["step"] == step])

    def _log_views(self, first: bool, latest: tuple | None = None) -> None:
        """With `diagnose`/`warn`: the diagnosis and pictures of the latest measurement
        (`latest` as `_latest_findings` gives it, when the caller already has it)."""
        if self._tensorboard is None or not (self.diagnose or self.warn):
            return
        latest = latest or self._latest_findings()
        if latest is None or latest[1] == self._viewed_step:
            return
        from keras_initx import plots  # matplotlib is loaded only when pictures are wanted

        frame, step, findings = latest
        self._viewed_step = step
        self._tensorboard.write_diagnosis(findings, step)
        tensors = [t for t in ("activation", "activation_grad") if t in self.spec.tensors]
        if "std" not in self.spec.stats or not tensors:
            return
        if first:
            figures = {"std_by_layer": plots.plot_signal_propagation(frame, tensors, step=step)}
        else:
            figures = {
                f"{t}_std_heatmap": plots.plot_layer_heatmap(frame, t, "std").figure
                for t in tensors
            }
        self._tensorboard.write_figures(figures, step)

    def _collect_writes(self, wait: bool) -> None:
        """Forget finished writes (all of them, waiting, with `wait`); a failure warns."""
        pending, self._pending = self._pending, []
        for future in pending:
            if not wait and not future.done():
                self._pending.append(future)
                continue
            error = future.exception()
            if error is not None:
                warnings.warn(
                    f"LayerStats: writing the statistics failed and measuring stops: {error!r}",
                    stacklevel=2,
                )
                self._broken = True

    def _check_log_dir(self) -> None:
        if self.log_dir is None:
            return
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            probe_file = os.path.join(self.log_dir, ".layer_stats_write_test")
            with open(probe_file, "w"):
                pass
            os.remove(probe_file)
        except OSError as error:
            raise ValueError(
                f"Invalid value for argument `log_dir`. Received: log_dir={self.log_dir!r}, "
                f"which cannot be written ({error.strerror or error}). Expected a writable "
                "directory (created if missing)."
            ) from error
        # Take the directory now, not at the first write: a second live LayerStats on it is
        # refused here, before training, instead of interleaving rows (see sinks.frame).
        self._frame.open()


class _CostMeter:
    """The timings behind `LayerStats.cost_report()` and the budget's spacing.

    `plain`: recent fit calls without a measurement; `measured`: calls with one (or probe
    calls), the first left out; `writes`: the writer thread's time per measurement.
    """

    def __init__(self, mode: str, max_overhead: float | None) -> None:
        self.mode = mode
        self.max_overhead = max_overhead
        self.started = time.perf_counter()
        self.plain: collections.deque = collections.deque(maxlen=_PLAIN_TIMINGS)
        self.measured: collections.deque = collections.deque(maxlen=_MEASURED_TIMINGS)
        self.writes: collections.deque = collections.deque(maxlen=_MEASURED_TIMINGS)
        self.measurements = 0
        self.interval = 1

    def report(self) -> dict[str, Any]:
        plain = _median(self.plain, _MIN_TIMINGS)
        measured = _median(self.measured, 1)
        extra = max(measured - plain, 0.0) if self.mode == "tap" else measured
        write = _median(self.writes, 1)
        # The writer thread's time counts in full: on a machine without a spare core it is
        # taken from training (it lands on the plain steps after a measurement).
        cost = extra + write
        elapsed = time.perf_counter() - self.started
        return {
            "mode": self.mode,
            "measurements": self.measurements,
            "plain_step_s": plain,
            "measure_s": extra,
            "write_s": write,
            "cost_in_steps": cost / plain if plain > 0 else math.nan,
            "interval": self.interval,
            "max_overhead": self.max_overhead,
            "overhead": cost * self.measurements / elapsed if elapsed > 0 else math.nan,
        }

    def interval_for(self, steps_per_execution: int) -> int:
        """Steps between measurements that keep their cost within `max_overhead` (the last
        interval while the timings are too few to tell)."""
        steps = self.report()["cost_in_steps"] * steps_per_execution
        if math.isfinite(steps):
            self.interval = max(1, math.ceil(steps / self.max_overhead))
        return self.interval


def _median(times: collections.deque, least: int) -> float:
    """The median of `times`, NaN with fewer than `least` of them."""
    return float(np.median(times)) if len(times) >= least else math.nan


def _validated_log_dir(log_dir: Any) -> str:
    path = os.fspath(log_dir) if isinstance(log_dir, str | os.PathLike) else None
    if not isinstance(path, str):  # bytes paths would make mixed str/bytes file names
        raise TypeError(
            f"Invalid type for argument `log_dir`. Received: log_dir={log_dir!r}. Expected a "
            "directory path (str or os.PathLike of str), or None to keep rows in memory."
        )
    return path


def _warn_inference_batchnorm(probe: Probe) -> None:
    """Say once per model that an inference-mode probe sees BatchNormalization as a no-op."""
    names = [
        info.path for info in probe.layers if info.layer_class.startswith("BatchNormalization")
    ]
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        warnings.warn(
            f"LayerStats: the probe runs in inference mode, so the BatchNormalization layers "
            f"({shown}) normalize with their moving statistics (mean 0, variance 1 before "
            "training) and pass their input through at step 0. Pass `training=True` to measure "
            "them with batch statistics, as training sees them.",
            stacklevel=3,
        )


def _validated_probe(probe: Any, tensors: Sequence[str] | None) -> tuple:
    expected = "Expected a tuple `(x, y)` or `(x, y, sample_weight)` holding one batch."
    if probe is None:
        raise ValueError(f"Invalid value for argument `probe`. Received: probe=None. {expected}")
    if not isinstance(probe, tuple) or len(probe) not in (2, 3):
        length = f" of length {len(probe)}" if isinstance(probe, tuple) else ""
        raise TypeError(
            "Invalid type for argument `probe`. "
            f"Received: probe={type(probe).__name__}{length}. {expected}"
        )
    leaves = tf.nest.flatten(probe[0])
    if not leaves or any(np.ndim(v) == 0 or np.shape(v)[0] == 0 for v in leaves):
        shapes = [tuple(np.shape(v)) for v in leaves]
        raise ValueError(
            f"Invalid value for argument `probe`. Received: x with shapes {shapes}. Expected a "
            "non-empty batch: at least one example, batch dimension first."
        )
    needs_labels = tensors is None or bool(GRADIENT_TENSORS & set(tensors))
    if probe[1] is None and needs_labels:
        raise ValueError(
            "Invalid value for argument `probe`. Received: probe=(x, None). Expected labels "
            f"`y`: the gradient tensors {sorted(GRADIENT_TENSORS)} need the loss."
        )
    return tuple(probe) if len(probe) == 3 else (probe[0], probe[1], None)


def _check_probe_against_inputs(model: keras.Model, x: Any) -> None:
    """Compare the probe's `x` with the model's declared inputs (when it has them)."""
    if isinstance(x, dict):
        try:
            names = [i.name for i in model.inputs or []]
        except (AttributeError, ValueError):
            names = []  # subclassed, never called: the first call will tell
        if names and sorted(x) != sorted(names):
            raise ValueError(
                f"Invalid value for argument `probe`. Received: x with keys {sorted(x)}. "
                f"Expected the model's input names {sorted(names)}."
            )
    mismatch = input_mismatch(model, x)
    if mismatch is not None:
        shown, want = mismatch
        raise ValueError(
            f"Invalid value for argument `probe`. Received: x of shape {shown}. Expected the "
            f"model's input shape {want} (None: any size)."
        )
