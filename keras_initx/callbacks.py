"""LayerStats: per-layer activation, pre-activation and gradient statistics during `fit`.

The callback decides WHEN to measure; `keras_initx.capture` measures (one compiled forward and
backward pass on a fixed probe batch, statistics reduced on the device) and the sinks in
`keras_initx.sinks` keep the rows (pandas/CSV/Parquet) and log them to TensorBoard.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_initx.capture import (
    GRADIENT_TENSORS,
    Probe,
    ProbeResult,
    build_probe,
    check_arguments,
    check_layer_filters,
)
from keras_initx.diagnosis import diagnose, format_findings
from keras_initx.sinks import FrameSink, TensorBoardSink, result_rows
from keras_initx.stats import DEFAULT_BINS, STAT_NAMES
from keras_initx.validation import check_backend, check_bool, check_int, input_mismatch

__all__ = ["LayerStats", "log_spaced_steps"]

_SCHEDULES = ("every_n_steps", "log")


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

    On a fixed probe batch, at step 0 (at the first `on_epoch_begin`, before any update: the
    initialization itself), then every `every_n_steps` optimizer steps or on a log-spaced
    schedule (steps 1, 2, 3, 4, 6, 8, 11, 16, 23, ...), and at epoch ends if asked. Each
    measurement is one compiled forward and backward pass (see `keras_initx.capture`) that
    leaves the model, its weights and optimizer state untouched.

    Rows (one per step, layer, tensor; columns `keras_initx.sinks.COLUMNS`) are kept in memory
    (`to_dataframe()`) and, with `log_dir`, appended to `log_dir/layer_stats.csv` as they come
    (`layer_stats.parquet` is rewritten at each epoch end when pyarrow is present) and logged to
    TensorBoard under `log_dir/layer_stats`, beside Keras' own `train`/`validation` runs: one
    run per layer (`layer_stats/00_dense`, ...) with scalars `<tensor>/<stat>` and histograms
    `<tensor>/values`, so each chart shows every layer (see `keras_initx.sinks.tensorboard`).

    `step` is the optimizer's `iterations` when measured, so one instance used in two `fit`
    calls keeps counting (the second fit's first rows continue from the first fit's last step;
    a step already measured is not measured twice). `epoch` is Keras' epoch index of that fit.
    NaN, Inf and huge values in the model are data: counted (`nan_count`, `inf_count`),
    never raised, and measuring goes on through a diverging fit. `terminate_on_nan=True` stops
    training at the first measurement that sees a NaN or Inf (its statistics are then always
    computed) or at the first non-finite training loss. A measurement that fails at run time
    (a TensorFlow op error on the data) warns and training and measuring go on; configuration
    errors (arguments, a model the probe cannot trace) raise before the first training step.

    Only the probe runs on the training thread: turning its results into rows and writing the
    CSV and TensorBoard files happens on one background thread, in measurement order, so that
    training is not held up by disk and protobuf work. `to_dataframe()`, each epoch end and the
    end of training wait for the pending writes; each write flushes its file.

    Args:
        probe: `(x, y)` or `(x, y, sample_weight)`, one batch of the model's inputs and labels
            (`x` a NumPy array/tensor, or a list/dict of them for multi-input models). `y` may
            be None when no gradient tensor is requested.
        log_dir: directory for the CSV/Parquet files and the TensorBoard run, or None to keep
            the rows in memory only.
        every_n_steps: measure every this many optimizer steps (int >= 1), when
            `schedule="every_n_steps"`.
        schedule: `"every_n_steps"` (default) or `"log"` (log-spaced, dense early).
        on_epoch_end: also measure at each epoch end (when that step was not just measured).
        layers: regular expression on layer paths (e.g. `"dense"`); see
            `keras_initx.capture.find_layers`.
        layer_classes: class names or classes to keep, e.g. `["Dense", "Conv2D"]`.
        tensors: names from `keras_initx.capture.TENSORS` (default all).
        stats: names from `keras_initx.stats.STAT_NAMES` (default all).
        saturation_threshold: in (0, 1); tanh |a| > threshold, sigmoid outside
            [1 - threshold, threshold] count as saturated. Default 0.99.
        histogram_bins: bins of the histograms (TensorBoard, percentiles). Default 64.
        training: run the probe in training mode (dropout, batch statistics); default
            inference mode. In inference mode BatchNormalization uses its moving statistics,
            0 and 1 before training, so it passes its input through at step 0; a warning
            names such layers.
        terminate_on_nan: stop training when a measurement counts a NaN or Inf, or the training
            loss is not finite.
        tensorboard: with `log_dir`, also write the TensorBoard run. Default True.
        warn: print `keras_initx.diagnose`'s findings for the initialization (step 0) in
            the first `on_epoch_begin`, so a bad init is flagged before any training; implies
            `diagnose`. Default False.
        diagnose: with the TensorBoard run, write the diagnosis of the latest measurement as
            text (`diagnosis`) and pictures (`plots/std_by_layer` at step 0, the layer x step
            heat maps `plots/<tensor>_std_heatmap` at each epoch end) to `layer_stats`.
            Default False (matplotlib drawing costs about 0.1 s per picture).
        loss: `loss(y_true, y_pred) -> scalar` for the gradients, for models without a compiled
            loss (e.g. a subclassed model with its own `train_step`); default the model's
            compiled loss.
    """

    def __init__(
        self,
        probe: tuple | None = None,
        log_dir: str | os.PathLike | None = None,
        every_n_steps: int = 16,
        schedule: str = "every_n_steps",
        on_epoch_end: bool = False,
        layers: str | None = None,
        layer_classes: Sequence[str | type] | None = None,
        tensors: Sequence[str] | None = None,
        stats: Sequence[str] | None = None,
        saturation_threshold: float = 0.99,
        histogram_bins: int = DEFAULT_BINS,
        training: bool = False,
        terminate_on_nan: bool = False,
        tensorboard: bool = True,
        warn: bool = False,
        diagnose: bool = False,
        loss: Any = None,
    ) -> None:
        super().__init__()
        check_backend("LayerStats")
        self.probe = _validated_probe(probe, tensors)
        self.log_dir = None if log_dir is None else _validated_log_dir(log_dir)
        for name, flag in (
            ("on_epoch_end", on_epoch_end),
            ("training", training),
            ("terminate_on_nan", terminate_on_nan),
            ("tensorboard", tensorboard),
            ("warn", warn),
            ("diagnose", diagnose),
        ):
            check_bool(name, flag)
        check_layer_filters(layers, layer_classes)
        check_int("every_n_steps", every_n_steps, 1)
        if schedule not in _SCHEDULES:
            raise ValueError(
                f"Invalid value for argument `schedule`. Received: schedule={schedule!r}. "
                f"Expected one of {sorted(_SCHEDULES)}."
            )
        self.every_n_steps = every_n_steps
        self.schedule = schedule
        self.measure_on_epoch_end = on_epoch_end
        self.layers = layers
        self.layer_classes = layer_classes
        self.tensors, self.stats = check_arguments(
            tensors, stats, saturation_threshold, histogram_bins
        )
        if loss is not None and not callable(loss):
            raise TypeError(
                f"Invalid type for argument `loss`. Received: loss={loss!r}. Expected a "
                "callable `loss(y_true, y_pred) -> scalar`, or None for the compiled loss."
            )
        self.loss = loss
        self.saturation_threshold = saturation_threshold
        self.histogram_bins = histogram_bins
        self.training = training
        self.terminate_on_nan = terminate_on_nan
        self.tensorboard = tensorboard
        self.warn = warn
        self.diagnose = diagnose

        self._frame = FrameSink(self.log_dir)
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._tensorboard: TensorBoardSink | None = None
        self._probe_fn: Probe | None = None
        self._failures: set[str] = set()
        self._initial_pending = False
        self._step = 0
        self._epoch = 0
        self._epoch_base = 0
        self._next_step = 0
        self._last_measured: int | None = None
        self._broken = False
        self._viewed_step: int | None = None

    # -- Keras hooks -------------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._check_log_dir()
        model = self.model
        x = self.probe[0]
        _check_probe_against_inputs(model, x)
        if not model.built:
            # Subclassed models build on their first call; doing it here, before any update,
            # creates the same variables fit would.
            model(x)
        if self._probe_fn is None or self._probe_fn.model is not model:
            # A new model starts its own count: its steps are not the last model's.
            self._last_measured = None
            stats = self.stats
            if self.terminate_on_nan:
                # Termination needs the counts, whatever `stats` asked for.
                stats = tuple(
                    s for s in STAT_NAMES if s in stats or s in ("nan_count", "inf_count")
                )
            self._probe_fn = build_probe(
                model,
                self.tensors,
                stats,
                layers=self.layers,
                layer_classes=self.layer_classes,
                training=self.training,
                saturation_threshold=self.saturation_threshold,
                histogram_bins=self.histogram_bins,
                histograms=self.log_dir is not None and self.tensorboard,
                loss=self.loss,
            )
            if not self.training:
                _warn_inference_batchnorm(self._probe_fn)
        if self.log_dir is not None and self.tensorboard and self._tensorboard is None:
            self._tensorboard = TensorBoardSink(self.log_dir, self._probe_fn.stats)
        self._broken = False
        # Keras tells callbacks the first epoch (`initial_epoch`) only in on_epoch_begin, still
        # before any update: the initialization is measured there.
        self._initial_pending = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._epoch_base = self._step = self._iterations()
        if self._initial_pending:
            self._initial_pending = False
            # Tracing errors here are configuration errors: let them surface.
            self._measure(initial=True)
            latest = self._latest_findings() if self.warn or self.diagnose else None
            if self.warn and latest is not None and latest[1] == self._step and len(latest[2]):
                print(format_findings(latest[2]))
            self._log_views(first=True, latest=latest)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # Called every step: keep it to integer arithmetic unless a measurement is due.
        self._step = self._epoch_base + batch + 1
        if self.terminate_on_nan and logs and "loss" in logs:
            loss = float(logs["loss"])
            if not math.isfinite(loss):
                print(f"LayerStats: step {self._step}: loss is {loss}, terminating training")
                self.model.stop_training = True
        if self._step >= self._next_step:
            # Batch counting overshoots when steps_per_execution does not divide an epoch:
            # the label is the optimizer's own count.
            self._step = self._iterations()
            if self._step >= self._next_step:
                self._measure()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.measure_on_epoch_end and self._last_measured != self._step:
            self._measure()
        self._collect_writes(wait=True)
        self._frame.flush()
        self._log_views(first=False)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._collect_writes(wait=True)
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        self._frame.close()
        if self._tensorboard is not None:
            self._tensorboard.close()

    # -- results -----------------------------------------------------------------------------

    def to_dataframe(self) -> pd.DataFrame:
        """All rows so far: one per (step, layer, tensor), columns `keras_initx.sinks.COLUMNS`."""
        self._collect_writes(wait=True)
        return self._frame.to_dataframe()

    # -- internals ---------------------------------------------------------------------------

    def _schedule_after(self, step: int) -> int:
        if self.schedule == "log":
            return _next_log_step(step)
        return (step // self.every_n_steps + 1) * self.every_n_steps

    def _iterations(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _measure(self, initial: bool = False) -> None:
        step = self._step
        self._next_step = self._schedule_after(step)
        if self._broken or self._last_measured == step:
            return
        try:
            result = self._probe_fn(*self.probe)
        except Exception as error:  # noqa: BLE001 - the callback must never crash the fit
            # A trace that fails at the first measurement is a configuration error; op errors
            # come from the data (a diverging fit) and are no reason to stop measuring.
            if initial and not isinstance(error, tf.errors.OpError):
                raise
            self._warn_failure(step, error)
            return
        self._last_measured = step
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
        rows = result_rows(result, step, epoch)
        self._frame.write(rows)
        if self._tensorboard is not None:
            self._tensorboard.write(rows, result.histograms)

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
        tensors = [t for t in ("activation", "activation_grad") if t in self.tensors]
        if "std" not in self.stats or not tensors:
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
