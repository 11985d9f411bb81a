"""The LayerStats frame: rows accumulated in memory and appended to CSV (and Parquet) on disk.

Crash safety. `layer_stats.csv` gets each measurement as ONE `os.write` of its encoded rows on an
`O_APPEND` descriptor; once that write has returned, the CSV's new size is appended as one line
to `layer_stats.csv.committed`. A killed process loses no bytes already written (they are in the
kernel's page cache), so after a SIGKILL at any moment the CSV holds every measurement handed to
`write` except at most the one being written, which may be cut anywhere (a write to a file can be
cut short by a fatal signal) but is never committed. `read_layer_stats` reads the CSV up to its
last committed size, so it never returns part of a measurement; a `FrameSink` opening the
directory again cuts such a torn tail off the file before appending. (A machine crash or power
loss can lose what the page cache held: the files are not fsync'ed.)

One writer per directory. `open()` (the first `write`, or `LayerStats` at the start of `fit`)
takes an exclusive `flock` on `layer_stats.lock`, held until `close()` or until the process
ends, so a second live `FrameSink` on the same directory, in this process or another, is refused
with an error naming it instead of interleaving rows. (POSIX only: without `fcntl` there is no
lock.)

Resuming. A `FrameSink` on a directory that already has `layer_stats.csv` (with the same columns)
appends to it: the header stays once, the earlier rows stay, `layer_stats.parquet` is rebuilt
from the earlier rows plus the new ones, and `to_dataframe()` holds only this sink's rows. New
rows whose first step comes before the file's last step (a fit restarted from step 0, or resumed
from an earlier checkpoint) warn: those steps then appear twice, earlier run first. (The step the
file ends on may come again without a warning: a resumed `LayerStats` measures the step it starts
at.)
"""

from __future__ import annotations

import importlib.util
import io
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keras_initx.stats import STAT_NAMES

try:
    import fcntl
except ImportError:  # Windows: no flock, so no guard against a second writer
    fcntl = None

if TYPE_CHECKING:  # annotations only: sinks sit beside capture, they do not run it
    from keras_initx.capture import ProbeResult

__all__ = ["COLUMNS", "FrameSink", "read_layer_stats", "result_rows"]
# The shared contract (team brief): one row per (step, layer, tensor), in this column order.
KEY_COLUMNS: tuple[str, ...] = (
    "step",
    "epoch",
    "layer",
    "layer_index",
    "layer_class",
    "activation",
    "kernel_initializer",
    "tensor",
    "source",
)
COLUMNS: tuple[str, ...] = KEY_COLUMNS + STAT_NAMES

_DTYPES = {
    "step": "int64",
    "epoch": "int64",
    "layer": "str",
    "layer_index": "int64",
    "layer_class": "str",
    "activation": "str",
    "kernel_initializer": "str",
    "tensor": "str",
    "source": "str",
    **dict.fromkeys(STAT_NAMES, "float64"),
}


def result_rows(result: ProbeResult, step: int, epoch: int = 0) -> pd.DataFrame:
    """One probe measurement as rows: one per (layer, tensor), columns `COLUMNS`.

    The one place that turns a `keras_initx.capture.ProbeResult` into the long frame, shared by
    `LayerStats` and `keras_initx.signal_propagation`, so both give the same rows for the same
    measurement. Statistics the probe did not compute are NaN: the frame always has every column.

    Args:
        result: what a `Probe` call returned.
        step: the value of the `step` column (optimizer steps before the measurement).
        epoch: the value of the `epoch` column.

    Returns:
        A DataFrame with `COLUMNS`, layers in depth order, tensors in `capture.TENSORS` order.
    """
    rows = result.rows
    values = np.full((len(rows), len(STAT_NAMES)), np.nan)
    values[:, [STAT_NAMES.index(s) for s in result.stats]] = result.values
    return pd.DataFrame(
        {
            "step": np.full(len(rows), step, np.int64),
            "epoch": np.full(len(rows), epoch, np.int64),
            "layer": pd.Series([info.path for info, _ in rows], dtype="str"),
            "layer_index": pd.Series([info.index for info, _ in rows], dtype="int64"),
            "layer_class": pd.Series([info.layer_class for info, _ in rows], dtype="str"),
            "activation": pd.Series([info.activation for info, _ in rows], dtype="str"),
            "kernel_initializer": pd.Series(
                [info.kernel_initializer for info, _ in rows], dtype="str"
            ),
            "tensor": pd.Series([tensor for _, tensor in rows], dtype="str"),
            "source": pd.Series([result.source] * len(rows), dtype="str"),
            **dict(zip(STAT_NAMES, values.T, strict=True)),
        }
    )


def _conform(rows: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(
            f"Invalid value for argument `rows`. Received columns {list(rows.columns)}, "
            f"missing {missing}. Expected the columns {list(COLUMNS)}."
        )
    rows = rows.loc[:, list(COLUMNS)]
    if all(str(rows[c].dtype) == d for c, d in _DTYPES.items()):
        return rows  # already conforming (the callback's rows): skip a copy per column
    return rows.astype(_DTYPES)


_CSV = "layer_stats.csv"
_COMMITTED = "layer_stats.csv.committed"
_LOCK = "layer_stats.lock"


def read_layer_stats(path: str | os.PathLike) -> pd.DataFrame:
    """The rows of a `layer_stats.csv`, without the torn tail a killed writer may leave.

    Reads the CSV up to the last size recorded in `layer_stats.csv.committed` (see the module
    doc), so it holds whole measurements only; a CSV without that file (written by another tool,
    e.g. `keras-initx demo`) is read up to its last complete line. Known columns get the frame's
    dtypes (empty `activation` stays ""), other columns pandas' own.

    Args:
        path: a `layer_stats.csv` file, or the `log_dir` holding one.

    Returns:
        A DataFrame with the file's columns (`COLUMNS` for a file `LayerStats` wrote).

    Example:
        >>> frame = read_layer_stats("runs/exp1")
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, _CSV)
    data = _committed_bytes(path)
    if not data:
        return _empty_frame()
    header = pd.read_csv(io.BytesIO(data), nrows=0).columns
    strings = [c for c in header if _DTYPES.get(c) == "str"]
    frame = pd.read_csv(
        io.BytesIO(data),
        keep_default_na=False,
        na_values={c: [""] for c in header if c not in strings},
        dtype=dict.fromkeys(strings, str),
    )
    return frame.astype({c: d for c, d in _DTYPES.items() if c in frame.columns})


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in _DTYPES.items()})


def _committed_bytes(csv_path: str) -> bytes:
    """The CSV's bytes up to its last commit mark (last complete line without marks)."""
    with open(csv_path, "rb") as f:
        data = f.read()
    marks_path = os.path.join(os.path.dirname(csv_path), _COMMITTED)
    if not os.path.exists(marks_path):
        return data[: data.rfind(b"\n") + 1]
    with open(marks_path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]  # a torn last mark has no newline: not a mark
    marks = [int(line) for line in lines if line.strip().isdigit()]
    committed = [m for m in marks if m <= len(data)]
    return data[: committed[-1]] if committed else b""


def _write_all(file: io.FileIO, data: bytes) -> None:
    """Write all of `data`: one `os.write` in practice, a loop if the kernel writes less."""
    view = memoryview(data)
    while view:
        view = view[file.write(view) :]


class FrameSink:
    """Accumulates measurement rows as a DataFrame; optionally mirrors them to files.

    With `log_dir`: `layer_stats.csv` (one append per measurement, crash safe), its commit marks
    `layer_stats.csv.committed`, `layer_stats.parquet` (rewritten on `flush()`) and the lock
    `layer_stats.lock`. See the module doc for what survives a kill, the one-writer rule and
    resuming on a directory that already has rows.

    Args:
        log_dir: directory for the files, or None for memory only.
        parquet: write `layer_stats.parquet` on `flush()`; default: when pyarrow is
            importable.
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, parquet: bool | None = None):
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        if parquet is None:
            parquet = importlib.util.find_spec("pyarrow") is not None
        self.parquet = parquet and self.log_dir is not None
        self._chunks: list[pd.DataFrame] = []
        self._rows = 0  # rows written by this sink, over all its openings
        self._files: tuple[io.FileIO, io.FileIO, io.FileIO | None] | None = None
        self._earlier: pd.DataFrame | None = None  # the file's rows when opened
        self._rows_at_open = 0
        self._header_written = False
        self._last_step_on_file: int | None = None

    @property
    def csv_path(self) -> str | None:
        return None if self.log_dir is None else os.path.join(self.log_dir, _CSV)

    @property
    def parquet_path(self) -> str | None:
        return None if self.log_dir is None else os.path.join(self.log_dir, "layer_stats.parquet")

    def open(self) -> None:
        """Take `log_dir` for this sink: lock it, cut a torn tail, read the earlier rows.

        Called by the first `write`; `LayerStats` calls it at the start of `fit`, so that a
        second live writer on the same directory is refused before training. A no-op when
        already open or without `log_dir`.

        Raises:
            ValueError: another live `FrameSink` (this process or another) holds `log_dir`, or
                its `layer_stats.csv` has other columns than `COLUMNS`.
        """
        if self.log_dir is None or self._files is not None:
            return
        os.makedirs(self.log_dir, exist_ok=True)
        lock = _take_lock(self.log_dir)
        try:
            self._earlier = self._read_earlier()
            csv = open(self.csv_path, "ab", buffering=0)  # noqa: SIM115 - held until close()
            marks = open(os.path.join(self.log_dir, _COMMITTED), "ab", buffering=0)  # noqa: SIM115
        except BaseException:
            if lock is not None:
                lock.close()
            raise
        self._files = (csv, marks, lock)
        self._rows_at_open = self._rows
        self._header_written = not self._earlier.empty or os.path.getsize(self.csv_path) > 0

    def _read_earlier(self) -> pd.DataFrame:
        """Check the existing CSV's columns, cut its torn tail, return its rows."""
        self._last_step_on_file = None
        if not os.path.exists(self.csv_path):
            return _empty_frame()
        data = _committed_bytes(self.csv_path)
        header = data.split(b"\n", 1)[0].decode(errors="replace").strip()
        if data and header != ",".join(COLUMNS):
            raise ValueError(
                f"Invalid value for argument `log_dir`. Received: log_dir={self.log_dir!r}, whose "
                f"layer_stats.csv has the columns {header.split(',')}. Expected a log_dir "
                f"without layer_stats.csv or with one of the columns {list(COLUMNS)} (to append "
                "to it): move that file or choose another log_dir."
            )
        # Cut the uncommitted tail (a measurement cut by a kill), then record the cut size as
        # the only mark: replacing the file is atomic, so no moment leaves the rows unmarked.
        os.truncate(self.csv_path, len(data))
        marks_path = os.path.join(self.log_dir, _COMMITTED)
        with open(marks_path + ".tmp", "wb") as f:
            f.write(f"{len(data)}\n".encode() if data else b"")
        os.replace(marks_path + ".tmp", marks_path)
        earlier = read_layer_stats(self.csv_path)
        self._last_step_on_file = int(earlier["step"].max()) if len(earlier) else None
        return earlier

    def write(self, rows: pd.DataFrame, histograms: object = None) -> None:
        """Add rows (a frame with `COLUMNS`, one measurement); append them to the CSV at once.

        `histograms` is accepted for the common sink interface and ignored.
        """
        del histograms
        rows = _conform(rows)
        self.open()  # before counting: the rows since opening go to the Parquet
        self._chunks.append(rows)
        self._rows += len(rows)
        if self.log_dir is None:
            return
        csv, marks, _ = self._files
        if self._last_step_on_file is not None and len(rows):
            first = int(rows["step"].min())
            # The step the file ends on may come again (a resumed LayerStats measures the step
            # it starts at); an earlier one means the new run went back in time.
            if first < self._last_step_on_file:
                warnings.warn(
                    f"LayerStats: {self.csv_path} already holds steps up to "
                    f"{self._last_step_on_file} from an earlier run or model; the new rows start "
                    f"at step {first}, so those steps appear twice in the files (earlier rows "
                    "first). Use a new log_dir for a new run.",
                    stacklevel=2,
                )
            self._last_step_on_file = None  # once per opening
        data = rows.to_csv(header=not self._header_written, index=False).encode()
        committed = os.fstat(csv.fileno()).st_size
        try:
            _write_all(csv, data)
        except BaseException:
            os.truncate(self.csv_path, committed)  # leave no torn rows before later ones
            raise
        self._header_written = True
        _write_all(marks, f"{committed + len(data)}\n".encode())

    def to_dataframe(self) -> pd.DataFrame:
        """Every row this sink was given, `COLUMNS` order, a fresh 0..n-1 index.

        Rows an earlier run left in `layer_stats.csv` are in the files, not here: read them
        with `read_layer_stats`.
        """
        if not self._chunks:
            return _empty_frame()
        frame = pd.concat(self._chunks, ignore_index=True)
        # Keep one chunk so repeated calls stay cheap.
        self._chunks = [frame]
        return frame.copy()

    def flush(self) -> None:
        """Rewrite the Parquet file: the file's earlier rows, then the rows since `open()`."""
        if not self.parquet or self._files is None or self._rows == self._rows_at_open:
            return
        own = self.to_dataframe().iloc[self._rows_at_open :]
        frame = pd.concat([self._earlier, own], ignore_index=True) if len(self._earlier) else own
        # Through a temporary file: a kill while writing leaves the previous Parquet whole.
        temporary = self.parquet_path + ".tmp"
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, self.parquet_path)

    def close(self) -> None:
        """Flush, close the files and release `log_dir`; a later `write` opens it again."""
        self.flush()
        if self._files is not None:
            for file in self._files:
                if file is not None:
                    file.close()
        self._files = None
        self._earlier = None


def _take_lock(log_dir: str) -> io.FileIO | None:
    """An exclusive `flock` on `log_dir/layer_stats.lock`; the kernel drops it if we die."""
    if fcntl is None:
        return None
    lock = open(os.path.join(log_dir, _LOCK), "a+b", buffering=0)  # noqa: SIM115 - held open
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().decode(errors="replace").strip() or "unknown"
        lock.close()
        here = " (this process)" if holder == str(os.getpid()) else ""
        raise ValueError(
            f"Invalid value for argument `log_dir`. Received: log_dir={log_dir!r}, which "
            f"another LayerStats is writing to (process {holder}{here}). Expected a log_dir "
            "no running LayerStats writes to: give each callback its own log_dir. A LayerStats "
            "whose fit was interrupted holds its log_dir until it is deleted."
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n".encode())
    return lock
