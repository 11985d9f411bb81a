import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch

from keras_initx import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep():
    rows = []
    for label, ratio in (("small", 0.2), ("xavier", 0.9)):
        for layer in range(1, 5):
            rows.append(
                {
                    "initializer": label,
                    "layer": layer,
                    "activation": "tanh",
                    "activation_std": 0.6 * ratio ** (layer - 1),
                    "gradient_std": ratio ** (4 - layer),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def histograms():
    edges = np.linspace(-1, 1, 5)
    rows = [
        {
            "initializer": label,
            "layer": layer,
            "bin_left": edges[k],
            "bin_right": edges[k + 1],
            "count": 10 * layer + k + (100 if label == "b" else 0),
        }
        for label in ("a", "b")
        for layer in (1, 2, 3)
        for k in range(4)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def layerstats():
    rows = []
    for step in (0, 4, 16):
        for index, layer in enumerate(("seq/dense", "seq/dense_1")):
            for tensor, std in (("activation", 0.5 / (index + 1) + step), ("kernel", 0.1)):
                rows.append(
                    {
                        "step": step,
                        "layer": layer,
                        "layer_index": index,
                        "tensor": tensor,
                        "std": std,
                        "frac_saturated": np.nan,
                    }  # fmt: skip
                )
    return pd.DataFrame(rows)


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000


def test_std_vs_depth_lines_equal_frame(sweep, tmp_path):
    ax = plots.plot_std_vs_depth(sweep, "activation_std", path=tmp_path / "sub" / "std.png")
    assert_png(tmp_path / "sub" / "std.png")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["small", "xavier"]
    for line, (_, group) in zip(lines, sweep.groupby("initializer", sort=False), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), group["layer"])
        np.testing.assert_array_equal(line.get_ydata(), group["activation_std"])
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "layer (depth)"
    assert ax.get_title() == "Activation std per layer"


def test_std_vs_depth_draws_on_given_axes(sweep):
    ax = Figure().add_subplot()
    assert plots.plot_std_vs_depth(sweep, "gradient_std", ax=ax, log=False) is ax
    assert ax.get_yscale() == "linear"
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [0.9**3, 0.9**2, 0.9, 1.0])


def test_depth_sweep_side_by_side(sweep, tmp_path):
    figure = plots.plot_depth_sweep(sweep, path=tmp_path / "sweep.png")
    assert_png(tmp_path / "sweep.png")
    assert [ax.get_title() for ax in figure.axes] == [
        "Activation std per layer",
        "Back-propagated gradient std per layer",
    ]
    np.testing.assert_array_equal(
        figure.axes[1].get_lines()[0].get_ydata(), sweep[sweep.initializer == "small"].gradient_std
    )
    assert "tanh" in figure.get_suptitle()


def test_histograms_grid_holds_the_counts(histograms, tmp_path):
    figure = plots.plot_histograms(histograms, path=tmp_path / "hist.png")
    assert_png(tmp_path / "hist.png")
    assert len(figure.axes) == 6
    patch = figure.axes[1 * 3 + 2].patches[0]  # row "b", layer 3
    assert isinstance(patch, StepPatch)
    np.testing.assert_array_equal(patch.get_data().values, [130, 131, 132, 133])
    np.testing.assert_allclose(patch.get_data().edges, np.linspace(-1, 1, 5))
    assert figure.axes[0].get_title() == "layer 1"
    one_row = plots.plot_histograms(histograms, ["b"])
    assert len(one_row.axes) == 3
    with pytest.raises(ValueError, match=r"Received: \['c'\]. Expected labels from the frame"):
        plots.plot_histograms(histograms, ["c"])


def test_training_curves(tmp_path):
    history = pd.DataFrame(
        {
            "initializer": ["zeros"] * 3 + ["he"] * 3,
            "epoch": [0, 1, 2] * 2,
            "loss": [2.3, 2.3, 2.3, 1.0, 0.5, 0.3],
            "val_loss": [2.3, 2.3, 2.3, 1.1, 0.6, 0.4],
            "accuracy": [0.1, 0.1, 0.1, 0.7, 0.8, 0.9],
            "val_accuracy": [0.1, 0.1, 0.1, 0.6, 0.8, 0.85],
        }
    )
    figure = plots.plot_training_curves(history, path=tmp_path / "train.png")
    assert_png(tmp_path / "train.png")
    loss_ax, acc_ax = figure.axes
    labels = [line.get_label() for line in acc_ax.get_lines()]
    assert labels == ["zeros (train)", "zeros (val)", "he (train)", "he (val)"]
    np.testing.assert_array_equal(acc_ax.get_lines()[3].get_ydata(), [0.6, 0.8, 0.85])
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_ydata(), [2.3, 2.3, 2.3])
    assert loss_ax.get_ylabel() == "loss"


def test_layer_heatmap_matrix_equals_frame(layerstats, tmp_path):
    ax = plots.plot_layer_heatmap(layerstats, path=tmp_path / "heat.png")
    assert_png(tmp_path / "heat.png")
    expected = np.log10([[0.5, 4.5, 16.5], [0.25, 4.25, 16.25]])
    np.testing.assert_allclose(ax.images[0].get_array(), expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "4", "16"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seq/dense", "seq/dense_1"]
    linear = plots.plot_layer_heatmap(layerstats, "kernel", log=False)
    np.testing.assert_allclose(linear.images[0].get_array(), np.full((2, 3), 0.1))


def test_bad_frames(layerstats, sweep):
    with pytest.raises(ValueError, match=r"without columns \['gradient_std'\]"):
        plots.plot_std_vs_depth(sweep.drop(columns="gradient_std"), "gradient_std")
    with pytest.raises(ValueError, match="tensor='bias'. Expected one of the tensors in the frame"):
        plots.plot_layer_heatmap(layerstats, "bias")
    with pytest.raises(TypeError, match="Expected a pandas DataFrame"):
        plots.plot_training_curves({"loss": [1]})


def test_plotting_a_saved_sweep_csv_loads_no_experiment_code(tmp_path):
    # `import keras_initx` must import Keras (it registers the initializers, and Keras imports
    # TensorFlow and matplotlib itself); what it must not load is the package's own measuring,
    # experiment and command-line code. Plotting a saved CSV adds only `plots` and `tables`.
    rows = [
        {"initializer": label, "layer_index": i, "activation": "tanh", "tensor": tensor,
         "mean": 0.0, "std": 0.5 ** i * (2 if tensor == "activation_grad" else 1),
         "frac_saturated": 0.0, "frac_dead_units": 0.0, "nan_count": 0, "inf_count": 0}
        for label in ("a", "b") for i in range(3) for tensor in ("activation", "activation_grad")
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "sweep.csv", index=False)
    script = f"""
import sys
import keras_initx
before = {{m for m in sys.modules if m.startswith("keras_initx")}}
lazy = {{"keras_initx." + m for m in ("plots", "tables", "sweep", "comparison", "experiments",
                                      "cli", "capture", "callbacks", "unit_variance")}}
assert not before & lazy, before & lazy
import pandas as pd
from keras_initx import plots, tables
table = tables.sweep_table(pd.read_csv({str(tmp_path / "sweep.csv")!r}))
plots.plot_depth_sweep(table, path={str(tmp_path / "sweep.png")!r})
added = {{m for m in sys.modules if m.startswith("keras_initx")}} - before
assert added == {{"keras_initx.plots", "keras_initx.tables"}}, added
print(table["gradient_std"].tolist())
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == str([2.0, 1.0, 0.5] * 2)
    assert_png(tmp_path / "sweep.png")
