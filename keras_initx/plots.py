"""Pictures of initialization: std against depth, histograms per layer, training curves, heat maps.

Every function takes a DataFrame (a depth sweep's `keras_initx.tables.sweep_table` or
`histogram_table`, a `compare_training` history or a `LayerStats` frame), so a saved CSV can be
plotted without running TensorFlow. Single-axes
plots take `ax=None` and return the Axes; multi-panel plots return the Figure. With `path=...`
the figure is also written as a PNG (parent folders created).

Figures are built with `matplotlib.figure.Figure`, not `pyplot`: rendering goes through Agg, no
GUI backend is touched and no global figure list grows, so the functions are safe in scripts,
servers and tests; in a notebook the returned Figure displays as usual.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "plot_depth_sweep",
    "plot_histograms",
    "plot_jacobian_spectrum",
    "plot_layer_heatmap",
    "plot_signal_propagation",
    "plot_std_vs_depth",
    "plot_training_curves",
    "plot_width_sweep",
    "save_figure",
]

_TITLES = {
    "activation_std": "Activation std per layer",
    "activation_mean": "Activation mean per layer",
    "preactivation_std": "Pre-activation std per layer",
    "gradient_std": "Back-propagated gradient std per layer",
    "preactivation_grad_std": "Gradient std w.r.t. pre-activation per layer",
    "frac_saturated": "Fraction of saturated activations per layer",
    "activation_var": "Activation variance per layer",
    "gradient_var": "Back-propagated gradient variance per layer",
}

_DPI = 110


def save_figure(figure: Figure | Axes, path: str | os.PathLike[str]) -> str:
    """Write a figure (or the figure of an Axes) as a PNG at `path`, creating parent folders.

    Returns:
        The path, as a str.
    """
    if isinstance(figure, Axes):
        figure = figure.figure
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def plot_std_vs_depth(
    frame: pd.DataFrame,
    quantity: str = "activation_std",
    *,
    ax: Axes | None = None,
    log: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> Axes:
    """One line per initializer: `quantity` against layer depth (seed 001, Glorot & Bengio).

    Args:
        frame: a `keras_initx.tables.sweep_table` of a depth sweep (`initializer`, `layer`,
            `quantity` columns).
        quantity: the column to plot, e.g. `activation_std`, `gradient_std`, `activation_mean`.
        ax: Axes to draw on; a new figure when None.
        log: logarithmic y axis (std spans decades when a signal vanishes or explodes); values
            <= 0 are then not drawn.
        path: also save the figure there as PNG.

    Returns:
        The Axes; `ax.get_lines()[k]` is the k-th initializer, in frame order.
    """
    _require(frame, ["initializer", "layer", quantity], "frame")
    if ax is None:
        ax = Figure(figsize=(6, 4)).add_subplot()
    for label, group in frame.groupby("initializer", sort=False):
        group = group.sort_values("layer")
        ax.plot(group["layer"], group[quantity], "o-", label=str(label), markersize=4)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel(quantity.replace("_", " "))
    ax.set_title(_TITLES.get(quantity, quantity))
    ax.set_xticks(sorted(frame["layer"].unique()))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if path is not None:
        save_figure(ax.figure, path)
    return ax


def plot_depth_sweep(
    frame: pd.DataFrame,
    quantities: Sequence[str] | None = None,
    *,
    log: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Side-by-side std-against-depth panels: activations and back-propagated gradients.

    Args:
        frame: a `keras_initx.tables.sweep_table` of a depth sweep.
        quantities: columns, one panel each; default `activation_std` and, when present,
            `gradient_std`.
        log: logarithmic y axes.
        path: also save as PNG.

    Returns:
        The Figure; `figure.axes[i]` shows `quantities[i]`.
    """
    if quantities is None:
        quantities = [q for q in ("activation_std", "gradient_std") if q in frame.columns]
    figure = Figure(figsize=(6 * len(quantities), 4.2), layout="constrained")
    axes = figure.subplots(1, len(quantities), squeeze=False)[0]
    for ax, quantity in zip(axes, quantities, strict=True):
        plot_std_vs_depth(frame, quantity, ax=ax, log=log)
    activations = ", ".join(map(str, frame["activation"].unique())) if "activation" in frame else ""
    figure.suptitle(f"Signal propagation at initialization ({activations} layers)")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_histograms(
    histograms: pd.DataFrame,
    initializers: Sequence[str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Activation histograms, one panel per layer in a row, one row per initializer (seed 001).

    Args:
        histograms: `keras_initx.tables.histogram_table` of a `depth_sweep(...,
            histograms=True)` (`initializer`, `layer`, `bin_left`, `bin_right`, `count`).
        initializers: which initializers (rows) to draw, in order; default all, in frame order.
        path: also save as PNG.

    Returns:
        The Figure; row r, column c is `figure.axes[r * n_layers + c]`, whose first patch is a
        `StepPatch` holding that layer's counts.
    """
    _require(histograms, ["initializer", "layer", "bin_left", "bin_right", "count"], "histograms")
    available = list(histograms["initializer"].unique())
    rows = available if initializers is None else list(initializers)
    unknown = sorted(set(rows) - set(available))
    if unknown:
        raise ValueError(
            f"Invalid value for argument `initializers`. Received: {unknown}. "
            f"Expected labels from the frame: {sorted(available)}."
        )
    layers = sorted(histograms["layer"].unique())
    figure = Figure(figsize=(1.6 * len(layers) + 1, 1.9 * len(rows) + 0.6), layout="constrained")
    axes = figure.subplots(len(rows), len(layers), squeeze=False)
    for r, label in enumerate(rows):
        for c, layer in enumerate(layers):
            ax = axes[r][c]
            part = histograms[
                (histograms["initializer"] == label) & (histograms["layer"] == layer)
            ].sort_values("bin_left")
            edges = np.append(part["bin_left"].to_numpy(), part["bin_right"].to_numpy()[-1:])
            ax.stairs(part["count"].to_numpy(), edges, fill=True, color=f"C{r}")
            ax.set_yticks([])
            ax.tick_params(labelsize="x-small")
            if r == 0:
                ax.set_title(f"layer {layer}", fontsize="small")
            if r == len(rows) - 1:
                ax.set_xlabel("activation", fontsize="x-small")
            if c == 0:
                ax.set_ylabel(_wrap(label), fontsize="x-small")
    figure.suptitle("Activation histograms per layer (counts)")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_training_curves(
    history: pd.DataFrame,
    *,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Loss and accuracy per epoch, one colour per initializer (solid: train, dashed: validation).

    Args:
        history: a `compare_training` history (`initializer`, `epoch`, `loss` and any of
            `val_loss`, `accuracy`, `val_accuracy`).
        path: also save as PNG.

    Returns:
        The Figure: `axes[0]` loss, `axes[1]` accuracy (when the history has it). Lines are in
        order initializer by initializer, train before validation.
    """
    _require(history, ["initializer", "epoch", "loss"], "history")
    panels = [("loss", "Loss")]
    if "accuracy" in history.columns or "val_accuracy" in history.columns:
        panels.append(("accuracy", "Accuracy"))
    figure = Figure(figsize=(6 * len(panels), 4.2), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for k, (label, group) in enumerate(history.groupby("initializer", sort=False)):
            group = group.sort_values("epoch")
            for column, style, suffix in ((metric, "-", "train"), (f"val_{metric}", "--", "val")):
                if column in group.columns:
                    ax.plot(
                        group["epoch"], group[column], style, color=f"C{k}",
                        label=f"{label} ({suffix})",
                    )  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{title} per epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    figure.suptitle("Training with each initializer")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_layer_heatmap(
    frame: pd.DataFrame,
    tensor: str = "activation",
    stat: str = "std",
    *,
    ax: Axes | None = None,
    log: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> Axes:
    """Heat map of one statistic per layer (rows, depth order) over measured steps (columns).

    Args:
        frame: a `LayerStats` frame (`step`, `layer`, `layer_index`, `tensor`, `stat` columns).
        tensor: which tensor's rows, e.g. `activation`, `activation_grad`, `kernel`.
        stat: which statistic column, e.g. `std`, `frac_saturated`.
        ax: Axes to draw on; a new figure when None.
        log: colour by log10 of the value (zeros and negatives become blank cells).
        path: also save as PNG.

    Returns:
        The Axes; `ax.images[0].get_array()` holds the plotted matrix (log10 when `log`), rows in
        `layer_index` order, columns in step order; the steps are the x tick labels.
    """
    _require(frame, ["step", "layer", "layer_index", "tensor", stat], "frame")
    rows = frame[frame["tensor"] == tensor]
    if rows.empty:
        raise ValueError(
            f"Invalid value for argument `tensor`. Received: tensor={tensor!r}. "
            f"Expected one of the tensors in the frame: {sorted(frame['tensor'].unique())}."
        )
    matrix = rows.pivot_table(index=["layer_index", "layer"], columns="step", values=stat)
    values = matrix.to_numpy(dtype=float)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log10(values), np.nan)
    if ax is None:
        height = 1.5 + 0.35 * len(matrix.index)
        ax = Figure(figsize=(8, height), layout="constrained").add_subplot()
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis")
    steps = list(matrix.columns)
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 12)).round().astype(int))
    ax.set_xticks(ticks, [str(steps[t]) for t in ticks])
    ax.set_yticks(range(len(matrix.index)), [layer for _, layer in matrix.index])
    ax.tick_params(axis="y", labelsize="small")
    ax.set_xlabel("step")
    ax.set_ylabel("layer")
    label = f"log10 {tensor} {stat}" if log else f"{tensor} {stat}"
    ax.figure.colorbar(image, ax=ax, label=label)
    ax.set_title(f"{tensor} {stat} per layer over training")
    if path is not None:
        save_figure(ax.figure, path)
    return ax


_TENSOR_TITLES = {
    "activation": "Activations",
    "activation_grad": "Back-propagated gradients (dLoss/d activation)",
    "preactivation": "Pre-activations",
    "preactivation_grad": "Gradients w.r.t. pre-activations",
    "kernel": "Kernels",
    "kernel_grad": "Kernel gradients",
    "bias_grad": "Bias gradients",
}

_MAX_LAYER_LABELS = 40  # above this many layers the x axis shows depth indices, not names


def plot_signal_propagation(
    frame: pd.DataFrame,
    tensors: Sequence[str] = ("activation", "activation_grad"),
    stat: str = "std",
    *,
    by: str | None = None,
    step: int | None = None,
    log: bool = True,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """`stat` of each tensor per layer in depth order, one panel per tensor (seed 001's figures
    for any model; timm's signal-propagation plots).

    Args:
        frame: a `signal_propagation` or `LayerStats` frame (`layer`, `layer_index`, `tensor`,
            `stat` columns; with a `step` column, one step is drawn).
        tensors: one panel each; those the frame lacks are skipped.
        stat: the statistic column, e.g. `std`, `rms`, `frac_saturated`.
        by: a column whose values get a line each (e.g. `initializer` after a concat); None:
            one line.
        step: the step of a LayerStats frame; default its first (the initialization).
        log: logarithmic y axes.
        path: also save as PNG.

    Returns:
        The Figure; `figure.axes[i]` is the i-th drawn tensor, its lines one per group, x = the
        layer's `layer_index`, y = `stat`. Layer names are the x tick labels (up to 40 layers).
    """
    _require(frame, ["layer", "layer_index", "tensor", stat] + ([by] if by else []), "frame")
    if "step" in frame.columns and len(frame):
        frame = frame[frame["step"] == (frame["step"].min() if step is None else step)]
    drawn = [t for t in tensors if t in set(frame["tensor"])]
    if not drawn:
        raise ValueError(
            f"Invalid value for argument `tensors`. Received: tensors={list(tensors)!r}. "
            f"Expected tensors present in the frame: {sorted(frame['tensor'].unique())}."
        )
    layers = frame.drop_duplicates("layer_index").sort_values("layer_index")
    figure = Figure(figsize=(max(6.0, 0.22 * len(layers) + 3), 3.6 * len(drawn)),
                    layout="constrained")  # fmt: skip
    axes = figure.subplots(len(drawn), 1, squeeze=False)[:, 0]
    groups = frame.groupby(by, sort=False) if by else [(None, frame)]
    for ax, tensor in zip(axes, drawn, strict=True):
        for label, group in groups:
            rows = group[group["tensor"] == tensor].sort_values("layer_index")
            ax.plot(rows["layer_index"], rows[stat], "o-", markersize=3,
                    label=None if label is None else str(label))  # fmt: skip
        if log:
            ax.set_yscale("log")
        if len(layers) <= _MAX_LAYER_LABELS:
            names = [str(p).rsplit("/", 1)[-1] for p in layers["layer"]]
            ax.set_xticks(layers["layer_index"], names, rotation=60, ha="right",
                          fontsize="x-small")  # fmt: skip
        ax.set_xlabel("layer (depth order)")
        ax.set_ylabel(f"{tensor} {stat}")
        ax.set_title(_TENSOR_TITLES.get(tensor, tensor), fontsize="medium")
        ax.grid(True, alpha=0.3)
        if by:
            ax.legend(fontsize="x-small")
    figure.suptitle(f"Signal propagation: {stat} per layer")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_width_sweep(
    frame: pd.DataFrame,
    value: str = "rms",
    *,
    tensor: str = "activation",
    layers: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """muP's coordinate check: width against `value` on log-log axes, one panel per step, one
    line per layer. Flat lines: width-stable; a slope of a means the value grows like width^a.

    Args:
        frame: a `width_sweep` frame (`width`, `step`, `layer`, `layer_index`, `tensor`, `value`).
        value: the statistic column: `rms` (the default: the root mean square of the entries,
            the coordinate size), `std`, `mean`.
        tensor: which tensor's rows (`activation`, `preactivation`).
        layers: layer paths to draw, default all in depth order.
        path: also save as PNG.

    Returns:
        The Figure; `figure.axes[i]` is the i-th step, its lines the layers in depth order with
        x = width, y = `value` (values <= 0, such as a zero-initialized layer at step 0, are not
        drawn on the log axis).
    """
    _require(frame, ["width", "step", "layer", "layer_index", "tensor", value], "frame")
    rows = frame[frame["tensor"] == tensor]
    if rows.empty:
        raise ValueError(
            f"Invalid value for argument `tensor`. Received: tensor={tensor!r}. "
            f"Expected one of the tensors in the frame: {sorted(frame['tensor'].unique())}."
        )
    order = rows.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist()
    if layers is not None:
        unknown = sorted(set(layers) - set(order))
        if unknown:
            raise ValueError(
                f"Invalid value for argument `layers`. Received: {unknown}. Expected layer "
                f"paths from the frame: {order}."
            )
        order = [layer for layer in order if layer in set(layers)]
    steps = sorted(rows["step"].unique())
    figure = Figure(figsize=(3.2 * len(steps) + 1.2, 3.4), layout="constrained")
    axes = figure.subplots(1, len(steps), squeeze=False, sharey=True)[0]
    for ax, step in zip(axes, steps, strict=True):
        at_step = rows[rows["step"] == step]
        for k, layer in enumerate(order):
            line = at_step[at_step["layer"] == layer].sort_values("width")
            ax.plot(line["width"], line[value], "o-", markersize=3, color=f"C{k % 10}",
                    label=str(layer).rsplit("/", 1)[-1])  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"step {step}", fontsize="medium")
        ax.set_xlabel("width")
        ax.grid(True, alpha=0.3, which="both")
    axes[0].set_ylabel(f"{tensor} {value}")
    axes[-1].legend(fontsize="x-small", loc="best")
    figure.suptitle(f"Width check (coordinate check): {tensor} {value} per layer against width")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_jacobian_spectrum(
    frame: pd.DataFrame,
    *,
    by: str | None = None,
    bins: int = 60,
    ax: Axes | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Axes:
    """Density of the input-output Jacobian's singular values on a log axis, one curve per group
    (Pennington, Schoenholz & Ganguli 2017's figure); a dotted line marks 1 (isometry).

    Args:
        frame: `JacobianSpectrum.to_frame()` (a `singular_value` column), or several of them
            concatenated with a label column named by `by`.
        by: the label column (e.g. `initializer`), one curve each; None: one curve.
        bins: log-spaced bins shared by every curve.
        ax: Axes to draw on; a new figure when None.
        path: also save as PNG.

    Returns:
        The Axes; `ax.patches[i]` is the i-th group's `StepPatch`: the fraction of its positive
        singular values in each of the shared log-spaced bins, which cover every value and at
        least [0.5, 2] (the fractions sum to 1).
    """
    _require(frame, ["singular_value"] + ([by] if by else []), "frame")
    values = frame["singular_value"].to_numpy(dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        raise ValueError(
            "Invalid value for argument `frame`. Received: no positive finite singular values. "
            "Expected the frame of `JacobianSpectrum.to_frame()`."
        )
    edges = np.geomspace(min(positive.min(), 0.5), max(positive.max(), 2.0), bins + 1)
    if ax is None:
        ax = Figure(figsize=(6.5, 4), layout="constrained").add_subplot()
    groups = frame.groupby(by, sort=False) if by else [(None, frame)]
    for k, (label, group) in enumerate(groups):
        counts, _ = np.histogram(group["singular_value"], edges)
        ax.stairs(counts / max(counts.sum(), 1), edges, color=f"C{k}", linewidth=1.5,
                  label=None if label is None else str(label))  # fmt: skip
    ax.axvline(1.0, color="0.3", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("singular value of d(output)/d(input)")
    ax.set_ylabel("fraction per bin")
    ax.set_title("Input-output Jacobian spectrum")
    ax.grid(True, alpha=0.3)
    if by:
        ax.legend(fontsize="x-small")
    if path is not None:
        save_figure(ax.figure, path)
    return ax


def _require(frame: pd.DataFrame, columns: Sequence[str], argument: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"Invalid type for argument `{argument}`. Received: {argument} of type "
            f"{type(frame).__name__}. Expected a pandas DataFrame."
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Received: a frame without columns "
            f"{missing} (it has {sorted(map(str, frame.columns))}). Expected columns "
            f"{list(columns)}."
        )


def _wrap(label: str, width: int = 18) -> str:
    """Break a long initializer label into lines for a row title."""
    words, lines, line = str(label).replace(",", ", ").split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)
