import io
import os
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest

import keras_initx
from keras_initx import LAYER_STATS_COLUMNS
from keras_initx.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`keras-initx demo --quick`: the whole pipeline at toy sizes, run once."""
    out = tmp_path_factory.mktemp("demo")
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        status = main(["demo", "--quick", "--out", str(out)])
    return status, out, buffer.getvalue()


def test_list(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "lecun_1_over_sqrt_d" in text and "sigmoid_glorot_uniform" in text
    assert "he_normal" in text and "lsuv" in text and "pretrain_layerwise" in text


def test_sweep_writes_tables_plots_and_diagnosis(tmp_path, capsys):
    argv = ["sweep", "--init", "small=random_normal(stddev=0.01)", "--init", "glorot_uniform",
            "--depth", "3", "--width", "16", "--samples", "40", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Depth sweep: 3 tanh layers of 16 units, 40 standard-normal inputs, 2 init" in text
    frame = pd.read_csv(tmp_path / "sweep.csv")  # the long frame: LayerStats columns
    assert list(frame.columns) == ["initializer", *LAYER_STATS_COLUMNS]
    assert frame["initializer"].unique().tolist() == ["small", "glorot_uniform"]
    table = pd.read_csv(tmp_path / "sweep_table.csv")
    assert table["initializer"].tolist() == ["small"] * 3 + ["glorot_uniform"] * 3
    assert table["layer"].tolist() == [1, 2, 3] * 2
    activations = frame[frame["tensor"] == "activation"]
    np.testing.assert_allclose(table["activation_std"], activations["std"], rtol=1e-12)
    # The printed table holds the CSV's numbers.
    first = table.loc[0, "activation_std"]
    assert f"{first:.6f}" in text
    names = ("sweep.png", "sweep_histograms.png", "sweep_histograms.csv", "diagnosis.csv")
    for name in names:
        assert (tmp_path / name).stat().st_size > 0
    findings = pd.read_csv(tmp_path / "diagnosis.csv")
    assert set(findings.loc[findings["initializer"] == "small", "kind"]) == {"vanishing"}
    assert f"Written:\n  {tmp_path / 'sweep.csv'}" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--init", "glorot_unifrom"], "Unknown initializer 'glorot_unifrom'; known: "),
        (["sweep", "--init", "random_normal(stdev=1)"], "RandomNormal rejected the arguments"),
        (["sweep", "--activation", "tahn"], "activation='tahn'. Expected one of: celu,"),
        (["report", "does/not/exist"], "run directory 'does/not/exist' does not exist"),
    ],
)
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"keras-initx {argv[0]}: error: ")
    assert message in lines[0]
    assert captured.out == ""


def test_report_without_csv(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "no layer_stats.csv in" in capsys.readouterr().err


def test_report_on_a_csv_without_the_columns_is_one_line(tmp_path, capsys):
    (tmp_path / "layer_stats.csv").write_text("step,loss\n0,1.5\n")
    assert main(["report", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "has no columns ['layer', 'layer_index', 'tensor', 'std']" in lines[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--depth", "0"], "argument --depth: expected an integer >= 1, got '0'"),
        (["sweep", "--width", "ten"], "argument --width: expected an integer >= 1, got 'ten'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_report_from_saved_layer_stats(tmp_path, capsys):
    rows = []
    for step in (0, 8):
        for index, layer in enumerate(("seq/dense", "seq/dense_1")):
            for tensor in ("activation", "activation_grad"):
                # Healthy at step 0; at step 8 dense_1's activations are 10x smaller.
                std = 0.1 if (step, index, tensor) == (8, 1, "activation") else 1.0
                rows.append({"step": step, "epoch": 0, "layer": layer, "layer_index": index,
                             "layer_class": "Dense", "activation": "tanh", "tensor": tensor,
                             "std": std, "frac_saturated": 0.0, "frac_dead_units": 0.0,
                             "nan_count": 0, "inf_count": 0})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "layer_stats.csv", index=False)
    assert main(["report", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "== run\nstep 0: no initialization problems found.\nstep 8:\n" in text
    assert "[vanishing] Layer seq/dense_1 (tanh): activation std fell 10x" in text
    report = tmp_path / "report"
    for name in ("run_activation.png", "run_activation_grad.png", "diagnosis.csv"):
        assert (report / name).stat().st_size > 0
    findings = pd.read_csv(report / "diagnosis.csv")
    assert findings["step"].tolist() == [8] and findings["kind"].tolist() == ["vanishing"]


def test_demo_writes_everything_it_lists(demo):
    status, out, text = demo
    assert status == 0
    written = text.split("\nWritten:\n")[1].split("\n\n")[0].splitlines()
    paths = [line.split()[0] for line in written]
    assert len(paths) == 10 + 2 + 2 + 4 + 1  # sweeps, Jacobian, heat maps, training, diagnosis
    for path in paths:
        assert os.path.getsize(path) > 0, path
    assert f"tensorboard --logdir {out / 'tensorboard'}" in text
    assert "[6/6" in text  # numbered progress
    spectra = pd.read_csv(out / "jacobian_spectrum.csv").set_index("initializer")
    # quick sizes (4 tanh layers of 32): Gaussian ~19x spread, orthogonal gain 1 ~2.5x
    assert spectra.loc["orthogonal (gain 1)", "spread"] * 3 < spectra.iloc[0]["spread"]


def test_demo_training_results(demo):
    _, out, text = demo
    history = pd.read_csv(out / "training_history.csv")
    assert history["initializer"].tolist() == ["zeros", "glorot_uniform"]
    symmetry = pd.read_csv(out / "symmetry.csv")
    zeros = symmetry[symmetry["initializer"] == "zeros"].set_index("layer")["distinct_units"]
    assert zeros["hidden_1"] == 1 and zeros["hidden_2"] == 1
    stats = pd.read_csv(out / "layer_stats.csv")
    assert stats.columns[0] == "initializer" and stats.columns[1] == "step"
    assert set(stats["initializer"]) == set(history["initializer"])
    events = [f for _, _, files in os.walk(out / "tensorboard" / "zeros") for f in files
              if f.startswith("events.out.tfevents")]  # fmt: skip
    assert events
    findings = pd.read_csv(out / "diagnosis.csv")
    zero_kinds = set(findings.loc[findings["initializer"] == "zeros", "kind"])
    assert "constant" in zero_kinds


def test_report_on_demo_output(demo, capsys):
    _, out, _ = demo
    assert main(["report", str(out), "--out", str(out / "again")]) == 0
    text = capsys.readouterr().out
    assert "== zeros\nstep 0:\n  [constant] Layer digits_mlp/hidden_1 (tanh)" in text
    assert (out / "again" / "zeros_activation.png").stat().st_size > 0
    assert np.isfinite(pd.read_csv(out / "again" / "diagnosis.csv")["value"]).all()


def test_module_entry_point_error_in_a_subprocess():
    completed = subprocess.run(
        [sys.executable, "-m", "keras_initx", "sweep", "--init", "nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("keras-initx sweep: error: Invalid value for argument `initializers`.")
    assert completed.stdout == ""


@pytest.mark.parametrize("argv", [["--help"], ["list"]])
def test_help_and_list_print_no_tensorflow_startup_lines(argv):
    # TensorFlow's C++ start-up INFO lines ignore TF_CPP_MIN_LOG_LEVEL (absl logs them before
    # its logging is initialized): run as a user would, without the variable.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    completed = subprocess.run(
        [sys.executable, "-m", "keras_initx", *argv],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert completed.returncode == 0
    assert completed.stderr == ""
    assert (
        "keras_initx initializers" in completed.stdout or "usage: keras-initx" in completed.stdout
    )


def test_startup_filter_drops_info_records_and_keeps_warnings():
    # In a process without TensorFlow, as on the first import (the module is loaded from its
    # file: importing the package would import TensorFlow first): INFO records (with their
    # continuation lines) go, warnings and Python warnings stay, in order.
    path = os.path.join(os.path.dirname(keras_initx.__file__), "_startup.py")
    script = (
        "import importlib.util, os\n"
        f"spec = importlib.util.spec_from_file_location('startup', {path!r})\n"
        "startup = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(startup)\n"
        "with startup.native_startup_filtered():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR\\n'\n"
        "             b'I0000 00:00:1.5   7 cpu_feature_guard.cc:227] Optimized\\n'\n"
        "             b'To enable the following instructions: AVX2\\n'\n"
        "             b'W0000 00:00:1.6   7 gpu.cc:3] no GPU\\n'\n"
        "             b'x.py:3: UserWarning: careful\\n'\n"
        "             b'I0000 00:00:1.7   7 port.cc:153] oneDNN on\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert completed.returncode == 0, completed.stderr
    assert (
        completed.stderr == "W0000 00:00:1.6   7 gpu.cc:3] no GPU\nx.py:3: UserWarning: careful\n"
    )
