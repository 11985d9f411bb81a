"""Smoke-run every example at toy sizes (`--smoke --out DIR`, examples/_common.py's flags), all
in ONE subprocess (one TensorFlow import instead of one per script), and check what each printed
and wrote."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

DRIVER = """
import runpy, sys, traceback
out = sys.argv[1]
for path in sys.argv[2:]:
    name = path.rsplit("/", 1)[-1][:-3]
    print(f"@@@ begin {name}", flush=True)
    sys.argv = [path, "--smoke", "--out", f"{out}/{name}"]
    sys.path.insert(0, path.rsplit("/", 1)[0])  # as `python examples/x.py` does, for _common
    try:
        runpy.run_path(path, run_name="__main__")
        print(f"@@@ ok {name}", flush=True)
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        print(f"@@@ failed {name}", flush=True)
"""

# Example -> (text its output must contain, files it must write under its --out folder).
EXPECTED = {
    "seed_001_depth": (["Hidden layer 3 had mean", "xavier (randn/sqrt(fan_in))"],
                       ["std_vs_depth.png", "histograms.png"]),
    "seed_002_small_vs_large": (["== sigmoid: fraction of saturated activations", "[saturated]"],
                                ["tanh.png", "sigmoid.png"]),
    "glorot_bengio": (["gradient_var per layer", "standard U(-1/sqrt(n), 1/sqrt(n))"],
                      ["variance_per_layer.png"]),
    "relu_glorot_vs_he": (["std(layer 3) / std(layer 1)", "he_normal"], ["relu_std_vs_depth.png"]),
    "zero_init_symmetry": (["Distinct units per layer after training"], ["training.png"]),
    "layerstats_tensorboard": (["Diagnosis at initialization", "tensorboard --logdir"],
                               ["activation_std_heatmap.png", "layer_stats.csv"]),
    "lsuv_deep_mlp": (["LSUV, per layer", "held-out accuracy per epoch"], ["lsuv.csv"]),
    "signal_propagation_cnn": (["== plain, he_normal: std per layer", "activation_grad"],
                               ["signal_propagation.png", "signal_propagation_residual_bn.png"]),
    "width_check": (["he_normal, muP-style readout", "ratio"],
                    ["he_normal_standard.png", "width_sweep.csv"]),
    "jacobian_spectrum": (["max / median singular value", "chi_1 = 1.0000"],
                          ["jacobian_spectrum.png", "jacobian_summary.csv"]),
    "gain_any_activation": (["squared_relu (your own) 0.8165", "= gain / sqrt(256)"],
                            ["gains.csv"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    scripts = [str(EXAMPLES / f"{name}.py") for name in EXPECTED]
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(out), *scripts],
        capture_output=True, text=True, timeout=300, cwd=out,
    )  # fmt: skip
    sections = {}
    for chunk in completed.stdout.split("@@@ begin ")[1:]:
        name, _, body = chunk.partition("\n")
        sections[name] = body
    return out, sections


def test_every_example_is_tested():
    scripts = [p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")]  # _common
    assert sorted(scripts) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(runs, name):
    out, sections = runs
    body = sections[name]
    assert f"@@@ ok {name}" in body, body
    texts, files = EXPECTED[name]
    for text in texts:
        assert text in body
    for file in files:
        assert (out / name / file).stat().st_size > 0


def test_zero_init_keeps_one_hidden_unit(runs):
    body = runs[1]["zero_init_symmetry"]
    rows = {line.split()[0]: line.split() for line in body.splitlines() if line.startswith("zeros")}
    # columns: hidden_1 hidden_2 output
    assert rows["zeros"][1:3] == ["1", "1"]
