"""Nothing lost: a killed fit, two LayerStats on one log_dir, a resumed run, a second model.

Kills: each case runs a fit in a subprocess (LayerStats measuring every step, log_dir on), kills
it at a moment chosen while it runs, then reads `layer_stats.csv` back. The rule: the steps on
file are a prefix of the schedule (0, 1, 2, ...), each with all its rows, and at most one
measurement the training thread had finished is missing. The training thread's progress is known
from a marker callback placed after LayerStats: when it records step k, LayerStats has measured
step k, so the writes of steps before k are done (one write in flight at most).
"""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from keras_initx import LayerStats
from keras_initx.cli import main
from keras_initx.sinks import COLUMNS, FrameSink, read_layer_stats

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import keras
    import keras_initx

    log_dir, marker = sys.argv[1], sys.argv[2]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,))]
        + [keras.layers.Dense(16, activation="tanh", name=f"d{i}") for i in range(3)]
        + [keras.layers.Dense(3, name="out")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    stats = keras_initx.LayerStats(probe=(x[:16], y[:16]), log_dir=log_dir, every_n_steps=1)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    class Marker(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            os.write(fd, f"{step}\\n".encode())

    model.fit(x, y, batch_size=8, epochs=10_000, verbose=0, callbacks=[stats, Marker()])
    """
)


def _start(tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
    log_dir, marker = tmp_path / name, tmp_path / f"{name}.steps"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(log_dir), str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return child, log_dir, marker


def _measured_steps(log_dir: Path) -> int:
    # Cheap enough to poll: one commit mark per measurement written whole (sinks.frame).
    marks = log_dir / "layer_stats.csv.committed"
    return marks.read_bytes().count(b"\n") if marks.exists() else 0


def _check_rule(log_dir: Path, marker: Path, label: str) -> pd.DataFrame:
    frame = read_layer_stats(log_dir)
    steps = sorted(frame["step"].unique())
    assert steps == list(range(len(steps))), f"{label}: steps {steps} are not a prefix"
    # Every measurement whole: the same (layer, tensor) rows as step 0, 4 Dense layers' worth.
    keys = frame.groupby("step")[["layer", "tensor"]].apply(
        lambda part: tuple(sorted(zip(part["layer"], part["tensor"], strict=True)))
    )
    assert keys.nunique() == 1, f"{label}: a step with rows missing: {keys.map(len).to_dict()}"
    assert frame.query("step == 0")["layer"].nunique() == 4, label
    finished = [int(s) for s in marker.read_text().split("\n")[:-1]] if marker.exists() else []
    if finished:
        # Steps 0..finished[-1] were measured; the writes before the last one are done.
        assert len(steps) >= finished[-1], f"{label}: measured {finished[-1] + 1}, on file {steps}"
    return frame


# One kill costs a TensorFlow start-up (about 10 CPU-s): the random moment runs always, the
# fixed ones (right after step 0, after 20 steps) with the slow tests.
@pytest.mark.parametrize(
    "after, delay",
    [
        pytest.param(2, "random", id="random"),
        pytest.param(1, 0.0, id="early", marks=pytest.mark.slow),
        pytest.param(20, 0.0, id="later", marks=pytest.mark.slow),
    ],
)
def test_sigkill_keeps_every_measurement_but_the_one_in_flight(tmp_path, capsys, after, delay):
    """Kill once `after` measurements are on file, `delay` seconds later (random: 0-1.5 s)."""
    label = f"after {after}"
    if delay == "random":
        delay = random.Random().uniform(0.0, 1.5)
        label += f", {delay:.3f} s later"
    child, log_dir, marker = _start(tmp_path, "run")
    deadline = time.monotonic() + 240
    try:
        while _measured_steps(log_dir) < after:
            assert child.poll() is None, f"the fit ended: {child.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "not measured in time"
            time.sleep(0.05)
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    before = _check_rule(log_dir, marker, label)
    # The report reads the same whole measurements: the diagnosis ends at the last one on file.
    assert main(["report", str(log_dir), "--out", str(tmp_path / "report")]) == 0
    assert f"\nstep {before['step'].max()}" in capsys.readouterr().out

    # The dead process's lock is gone: a new writer resumes on the file, after its whole rows.
    resumed = FrameSink(log_dir, parquet=False)
    rows = before[before["step"] == 0].assign(step=before["step"].max() + 1)
    resumed.write(rows)
    resumed.close()
    after_resume = pd.read_csv(log_dir / "layer_stats.csv")  # a plain reader: no torn rows
    assert list(after_resume.columns) == list(COLUMNS)
    assert len(after_resume) == len(before) + len(rows)
    assert sorted(after_resume["step"].unique()) == list(range(before["step"].max() + 2))


def _model(name: str) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="tanh", name="a"),
         keras.layers.Dense(2, name="b")],
        name=name,
    )  # fmt: skip
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


@pytest.fixture(scope="module")
def data():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def _stats(data, log_dir, **kwargs) -> LayerStats:
    x, y = data
    return LayerStats(probe=(x[:8], y[:8]), log_dir=log_dir, every_n_steps=2, **kwargs)


def test_two_layer_stats_on_one_log_dir_refused_before_training(tmp_path, data):
    model = _model("m")
    first, second = _stats(data, tmp_path), _stats(data, tmp_path)
    with pytest.raises(ValueError, match=rf"log_dir='{tmp_path}'.*another LayerStats"):
        model.fit(*data, batch_size=8, epochs=1, verbose=0, callbacks=[first, second])
    assert int(model.optimizer.iterations.numpy()) == 0  # refused before any update
    model.fit(*data, batch_size=8, epochs=1, verbose=0, callbacks=[first])
    assert read_layer_stats(tmp_path)["step"].unique().tolist() == [0, 2, 4]
    assert second.to_dataframe().empty


def test_new_layer_stats_on_a_used_log_dir_appends(tmp_path, data, recwarn):
    """Resuming: a second LayerStats continues the files; nothing of the first run is lost."""
    model = _model("m")
    first = _stats(data, tmp_path, tensorboard=False)
    model.fit(*data, batch_size=8, epochs=1, verbose=0, callbacks=[first])
    second = _stats(data, tmp_path, tensorboard=False)
    model.fit(*data, batch_size=8, initial_epoch=1, epochs=2, verbose=0, callbacks=[second])
    csv = tmp_path / "layer_stats.csv"
    assert csv.read_text().count("step,epoch,") == 1  # the header once
    # The second measures the step it starts at again (4): the files keep both runs' rows.
    assert first.to_dataframe()["step"].unique().tolist() == [0, 2, 4]
    assert second.to_dataframe()["step"].unique().tolist() == [4, 6, 8]
    both = pd.concat([first.to_dataframe(), second.to_dataframe()], ignore_index=True)
    for disk in (read_layer_stats(tmp_path), pd.read_parquet(tmp_path / "layer_stats.parquet")):
        pd.testing.assert_frame_equal(disk, both, check_dtype=False)
    assert not [w for w in recwarn if "appear twice" in str(w.message)]  # no step went back


def test_one_layer_stats_on_a_second_model_measures_it_from_its_own_step_0(tmp_path, data):
    """Reuse is supported: a new model gets a new probe and its own count from step 0."""
    stats = _stats(data, tmp_path, tensorboard=False)
    first = _model("first")
    first.fit(*data, batch_size=8, epochs=2, verbose=0, callbacks=[stats])
    second = _model("second")
    initial = keras.ops.convert_to_numpy(second.get_layer("a").kernel).std()
    with pytest.warns(UserWarning, match=r"steps up to 8 .* start at step 0, .* appear twice"):
        second.fit(*data, batch_size=8, epochs=1, verbose=0, callbacks=[stats])
    frame = stats.to_dataframe()
    model_of = frame["layer"].str.split("/").str[0]
    assert frame[model_of == "first"]["step"].unique().tolist() == [0, 2, 4, 6, 8]
    assert frame[model_of == "second"]["step"].unique().tolist() == [0, 2, 4]
    kernel = frame.query("layer == 'second/a' and tensor == 'kernel' and step == 0")["std"]
    np.testing.assert_allclose(kernel.item(), initial, rtol=1e-5)  # the second model, untrained
    pd.testing.assert_frame_equal(read_layer_stats(tmp_path), frame, check_dtype=False)
