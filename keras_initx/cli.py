"""`keras-initx`: the seed experiments, a training comparison and reports from the command line.

    keras-initx demo [--out DIR]        depth sweeps, digits training with LayerStats and
                                        TensorBoard logs, diagnosis; every CSV/PNG under DIR
    keras-initx sweep [--init SPEC ...] [--depth N] [--width N] [--activation NAME] [--out DIR]
    keras-initx report RUN_DIR          plots and diagnosis from RUN_DIR/layer_stats.csv
    keras-initx propagate MODEL.keras [--x X.npy] [--y Y.npy] [--batch N] [--out DIR]
                                        signal propagation of a saved model at its weights
    keras-initx list                    the registered initializers

`python -m keras_initx` is the same program. Errors (unknown initializer or activation, bad
numbers, a missing run directory) print one line on stderr and exit with status 1 (2 for bad
command-line syntax), without a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]

PROG = "keras-initx"

# The depth experiment's entries: seed 001's three, seed 000's U(-1/sqrt(d), 1/sqrt(d)) and
# Glorot & Bengio's normalized init, and the data-driven LSUV.
DEMO_TANH = {
    "small random (0.01*randn)": "random_normal(stddev=0.01)",
    "large random (1.0*randn)": "random_normal(stddev=1.0)",
    "xavier (randn/sqrt(fan_in))": (
        "variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')"
    ),
    "lecun_1_over_sqrt_d": "lecun_1_over_sqrt_d",
    "glorot_uniform": "glorot_uniform",
    "lsuv": "lsuv",
}
DEMO_RELU = ["glorot_uniform", "he_normal", "lsuv"]
DEMO_TRAINING = {
    "zeros": "zeros",
    "small random": "random_normal(stddev=0.01)",
    "large random": "random_normal(stddev=1.0)",
    "glorot_uniform": "glorot_uniform",
    "lsuv": "lsuv",
}
DEMO_EPOCHS = 6
# --quick: the same pipeline at toy sizes, to check an installation in seconds.
DEMO_SIZES = {
    "full": {"depth": 10, "width": 500, "n_samples": 1000},
    "quick": {"depth": 4, "width": 32, "n_samples": 64},
}
DEMO_TRAINING_QUICK = {"zeros": "zeros", "glorot_uniform": "glorot_uniform"}
# The input-output Jacobian spectrum of the seed 001 network (Pennington et al. 2017): Gaussian
# randn/sqrt(fan_in) against orthogonal at the same scale (gain 1, critical for tanh).
DEMO_JACOBIAN = {
    "xavier (randn/sqrt(fan_in))": DEMO_TANH["xavier (randn/sqrt(fan_in))"],
    "orthogonal (gain 1)": "orthogonal_gain(gain=1.0)",
}
DEMO_JACOBIAN_EXAMPLES = 16


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): `keras-initx sweep: error: ...`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _Progress:
    """Numbered, timed progress lines on stdout, flushed as they are printed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.start = time.perf_counter()

    def step(self, message: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.start
        print(f"[{self.done}/{self.total} {elapsed:5.1f}s] {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        message = " ".join(str(error).split())
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="See and choose weight initialization in Keras: the seed experiments, "
        "a training comparison with per-layer statistics, and reports.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser(
        "demo",
        help="depth sweeps + digits training with LayerStats/TensorBoard + diagnosis",
        description="Depth sweeps of the seeds' initializers (10 tanh layers of 500 units; "
        "ReLU: Glorot vs He vs LSUV), a short training comparison on scikit-learn's digits with "
        "LayerStats and TensorBoard logs, and the diagnosis; every CSV/PNG goes under --out.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--epochs", type=_int_at_least(1), default=DEMO_EPOCHS,
                      help=f"training epochs per initializer (default: {DEMO_EPOCHS})")  # fmt: skip
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quick", action="store_true",
                      help="toy sizes, 2 runs of 1 epoch: a check in seconds")  # fmt: skip
    demo.set_defaults(run=_demo)

    sweep = commands.add_parser(
        "sweep",
        help="per-layer activation/gradient std of a deep Dense stack at initialization",
        description="The seed 001 depth experiment for any initializers. SPEC is a name "
        "(glorot_uniform, lecun_1_over_sqrt_d, lsuv, ...), a built-in with keyword arguments "
        '("random_normal(stddev=0.01)"), optionally labelled: '
        '"small=random_normal(stddev=0.01)".',
    )
    sweep.add_argument("--init", action="append", metavar="SPEC",
                       help="initializer (repeat; default: seed 001's three)")  # fmt: skip
    sweep.add_argument("--depth", type=_int_at_least(1), default=10, help="layers (default 10)")
    sweep.add_argument("--width", type=_int_at_least(1), default=500, help="units (default 500)")
    sweep.add_argument("--activation", default="tanh", help="Keras activation (default tanh)")
    sweep.add_argument("--samples", type=_int_at_least(2), default=1000,
                       help="standard-normal input rows (default 1000)")  # fmt: skip
    sweep.add_argument("--input-dim", type=_int_at_least(1), default=None,
                       help="input size (default: --width)")  # fmt: skip
    sweep.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sweep.add_argument("--no-gradients", action="store_true", help="skip the backward pass")
    sweep.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    sweep.set_defaults(run=_sweep)

    report = commands.add_parser(
        "report",
        help="heat maps and diagnosis from a saved layer_stats.csv",
        description="Plots and diagnosis from RUN_DIR/layer_stats.csv (what LayerStats writes in "
        "its log_dir, or the demo's combined file).",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="folder holding layer_stats.csv")
    report.add_argument("--out", default=None, help="output folder (default: RUN_DIR/report)")
    report.set_defaults(run=_report)

    propagate = commands.add_parser(
        "propagate",
        help="per-layer activation/gradient std of a saved .keras model at its weights",
        description="Signal propagation of a saved model (keras_initx.signal_propagation): "
        "one forward and backward pass on a batch, std per layer of activations and "
        "back-propagated gradients, the diagnosis. Inputs: --x FILE.npy, or standard-normal "
        "rows of the model's input shape. Gradients: of the compiled loss with --y, else of a "
        "random readout (standard-normal output directions).",
    )
    propagate.add_argument("model", metavar="MODEL", help="a .keras file (keras.saving)")
    propagate.add_argument("--x", default=None, help="inputs, a .npy file (default: random)")
    propagate.add_argument("--y", default=None, help="labels for --x, a .npy file (optional)")
    propagate.add_argument("--batch", type=_int_at_least(1), default=256,
                           help="random rows drawn, or rows of --x used (default 256)")  # fmt: skip
    propagate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    propagate.add_argument("--out", default="runs/propagate",
                           help="output folder (default runs/propagate)")  # fmt: skip
    propagate.set_defaults(run=_propagate)

    listing = commands.add_parser("list", help="the registered initializers")
    listing.set_defaults(run=_list)
    return parser


def _int_at_least(low: int):
    def parse(text: str) -> int:
        expected = f"expected an integer >= {low}, got {text!r}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(expected) from None
        if value < low:
            raise argparse.ArgumentTypeError(expected)
        return value

    return parse


def _labelled(specs: Sequence[str]) -> dict[str, str]:
    """`label=spec` or a bare spec (its own label). An `=` inside parentheses is an argument."""
    labelled = {}
    for spec in specs:
        match = re.match(r"^\s*([^=(]+?)\s*=\s*(.+)$", spec)
        label, value = (match[1], match[2]) if match else (spec.strip(), spec)
        labelled[label] = value
    return labelled


def _sweep(args: argparse.Namespace) -> int:
    from keras_initx import plots
    from keras_initx.diagnosis import diagnose, format_findings
    from keras_initx.specs import check_activation, resolve_initializers
    from keras_initx.sweep import SEED_001_INITIALIZERS, depth_sweep

    specs = _labelled(args.init) if args.init else SEED_001_INITIALIZERS
    resolve_initializers(specs)  # fail on a typo before any model is built
    check_activation(args.activation)
    print(
        f"Depth sweep: {args.depth} {args.activation} layers of {args.width} units, "
        f"{args.samples} standard-normal inputs, {len(specs)} initializers.",
        flush=True,
    )
    sweep = depth_sweep(
        specs,
        depth=args.depth,
        width=args.width,
        activation=args.activation,
        n_samples=args.samples,
        input_dim=args.input_dim,
        seed=args.seed,
        gradients=not args.no_gradients,
        histograms=True,
    )
    findings = diagnose(sweep.frame)
    written = _write_sweep(args.out, "sweep", sweep, plots)
    written.append(_write_findings(args.out, "diagnosis", findings))
    print("\nActivation std per layer (rows: layer):")
    print(_table(sweep.frame, "activation_std"))
    if not args.no_gradients:
        print("\nBack-propagated gradient std per layer:")
        print(_table(sweep.frame, "gradient_std"))
    print("\nDiagnosis:")
    print(format_findings(findings))
    _print_written(written)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from keras_initx import plots
    from keras_initx.comparison import compare_training
    from keras_initx.diagnosis import diagnose, format_findings
    from keras_initx.sweep import depth_sweep

    out = args.out
    tensorboard = os.path.join(out, "tensorboard")
    sizes = DEMO_SIZES["quick" if args.quick else "full"]
    epochs = 1 if args.quick else args.epochs
    training = DEMO_TRAINING_QUICK if args.quick else DEMO_TRAINING
    progress = _Progress(total=4 + len(training))
    print(f"{PROG} demo: depth sweeps, then {len(training)} training runs on digits; "
          f"writing to {out}", flush=True)  # fmt: skip
    written: list[tuple[str, str]] = []
    findings = []

    for activation, specs in (("tanh", DEMO_TANH), ("relu", DEMO_RELU)):
        sweep = depth_sweep(specs, activation=activation, seed=args.seed, histograms=True, **sizes)
        found = diagnose(sweep.frame)
        findings.append(found.assign(source=f"depth sweep ({activation})"))
        written += _write_sweep(out, f"sweep_{activation}", sweep, plots)
        progress.step(
            f"depth sweep, {sizes['depth']} {activation} layers of {sizes['width']} units x "
            f"{len(specs)} initializers: {len(found)} findings"
        )

    spectra = _demo_jacobian(sizes, args.seed)
    written += [
        _csv(spectra["summary"], _path(out, "jacobian_spectrum.csv"),
             "input-output Jacobian spectrum per initializer (mean squared, max, spread)"),
        _png(plots.plot_jacobian_spectrum(spectra["values"], by="initializer"),
             _path(out, "jacobian_spectrum.png"), "Jacobian singular value densities"),
    ]  # fmt: skip
    progress.step(
        f"Jacobian spectrum of the {sizes['depth']}-layer tanh network: spread (max/median) "
        + ", ".join(f"{r.initializer} {r.spread:.3g}" for r in spectra["summary"].itertuples())
    )

    runs = []
    for label, spec in training.items():
        result = compare_training({label: spec}, epochs=epochs, seed=args.seed, log_dir=tensorboard)
        runs.append(result)
        last = result.history.iloc[-1]
        hidden = result.symmetry[result.symmetry["layer"] != "output"]["distinct_units"]
        progress.step(
            f"trained {label!r} on digits for {epochs} epochs: val_accuracy "
            f"{last['val_accuracy']:.3f}, distinct hidden units {hidden.tolist()}"
        )
    history = pd.concat([r.history for r in runs], ignore_index=True)
    layer_stats = pd.concat([r.layer_stats for r in runs], ignore_index=True)
    symmetry = pd.concat([r.symmetry for r in runs], ignore_index=True)
    # diagnose judges each run (initializer) on its own, at its first step.
    findings.append(diagnose(layer_stats).assign(source="digits training, step 0"))
    for label, frame in layer_stats.groupby("initializer", sort=False):
        written.append(
            _png(
                plots.plot_layer_heatmap(frame),
                _path(out, "heatmaps", f"{label}.png"),
                f"activation std per layer over training steps: {label}",
            )  # fmt: skip
        )
    written += [
        _csv(history, _path(out, "training_history.csv"), "loss/accuracy per epoch per run"),
        _png(
            plots.plot_training_curves(history),
            _path(out, "training.png"),
            "training curves per initializer",
        ),  # fmt: skip
        _csv(layer_stats, _path(out, "layer_stats.csv"), "LayerStats rows of every run"),
        _csv(symmetry, _path(out, "symmetry.csv"), "distinct units per layer after training"),
    ]
    all_findings = pd.concat(findings, ignore_index=True)
    written.append(_write_findings(out, "diagnosis", all_findings))
    _log_demo(tensorboard, out, written, all_findings)
    progress.step("plots, CSVs and diagnosis written")

    print("\nDiagnosis of the initializations:")
    for source, found in all_findings.groupby("source", sort=False):
        print(f"-- {source}")
        print(format_findings(found.drop(columns="source"), max_per_group=3))
    print("\nSymmetry after training (distinct units / units per layer):")
    print(symmetry.pivot(index="initializer", columns="layer", values="distinct_units")
          .loc[list(training)].to_string())  # fmt: skip
    _print_written(written)
    print("\nOpen TensorBoard on the training runs (the `demo` run holds the plots and the "
          f"diagnosis):\n  tensorboard --logdir {tensorboard}")  # fmt: skip
    print(f"Re-plot and re-diagnose the saved statistics:\n  {PROG} report {out}")
    return 0


def _demo_jacobian(sizes: dict[str, int], seed: int) -> dict[str, Any]:
    """Jacobian spectra of the depth sweep's tanh network under `DEMO_JACOBIAN`'s inits."""
    import keras
    import numpy as np
    import pandas as pd

    from keras_initx.jacobian import jacobian_spectrum
    from keras_initx.specs import parse_initializer

    depth, width = sizes["depth"], sizes["width"]
    x = np.random.default_rng(seed).standard_normal((DEMO_JACOBIAN_EXAMPLES, width))
    summaries, values = [], []
    for label, spec in DEMO_JACOBIAN.items():
        keras.utils.set_random_seed(seed)
        layers = [keras.Input((width,))]
        for _ in range(depth):
            init = parse_initializer(spec)
            layers.append(keras.layers.Dense(width, activation="tanh", kernel_initializer=init))
        model = keras.Sequential(layers)
        spectrum = jacobian_spectrum(model, x.astype("float32"))
        summaries.append({"initializer": label, **spectrum.summary()})
        values.append(spectrum.to_frame().assign(initializer=label))
    return {"summary": pd.DataFrame(summaries), "values": pd.concat(values, ignore_index=True)}


def _report(args: argparse.Namespace) -> int:
    import pandas as pd

    from keras_initx import plots
    from keras_initx.diagnosis import diagnose, format_findings
    from keras_initx.sinks import read_layer_stats

    run_dir = args.run_dir
    if not os.path.isdir(run_dir):
        raise NotADirectoryError(f"run directory {run_dir!r} does not exist")
    path = os.path.join(run_dir, "layer_stats.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no layer_stats.csv in {run_dir!r} (expected the file LayerStats writes in its "
            "log_dir, or a demo output folder)"
        )
    frame = read_layer_stats(path)  # whole measurements only, even from a killed run
    missing = [c for c in ("step", "layer", "layer_index", "tensor", "std") if c not in frame]
    if missing:
        raise ValueError(
            f"{path!r} has no columns {missing} (it has {list(frame.columns)}); expected a "
            "layer_stats.csv written by LayerStats (columns keras_initx.LAYER_STATS_COLUMNS)"
        )
    frame["activation"] = frame["activation"].fillna("") if "activation" in frame else ""
    out = args.out or os.path.join(run_dir, "report")
    groups = frame.groupby("initializer", sort=False) if "initializer" in frame else [("", frame)]
    written, findings = [], []
    for label, part in groups:
        part = part.drop(columns="initializer", errors="ignore")
        name = label or "run"
        for tensor in ("activation", "activation_grad"):
            if tensor in set(part["tensor"]):
                written.append(
                    _png(
                        plots.plot_layer_heatmap(part, tensor),
                        _path(out, f"{name}_{tensor}.png"),
                        f"{tensor} std per layer over steps: {name}",
                    )  # fmt: skip
                )
        print(f"== {name}")
        steps = sorted(part["step"].unique())
        for step in dict.fromkeys([steps[0], steps[-1]]):  # the initialization and the end
            found = diagnose(part, step=int(step))
            findings.append(found.assign(initializer=label))
            if found.empty:
                print(f"step {step}: no initialization problems found.")
            else:
                print(format_findings(found, max_per_group=5))
    written.append(_write_findings(out, "diagnosis", pd.concat(findings, ignore_index=True)))
    _print_written(written)
    return 0


def _propagate(args: argparse.Namespace) -> int:
    import keras
    import numpy as np

    import keras_initx  # registers the initializers a saved model may name
    from keras_initx import plots

    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"model file {args.model!r} does not exist")
    model = keras.saving.load_model(args.model)
    if args.x is not None:
        x = np.load(args.x)[: args.batch]
        source = f"{len(x)} rows of {args.x}"
    else:
        x = _random_inputs(model, args.batch, args.seed)
        source = f"{args.batch} standard-normal rows"
    y = None if args.y is None else np.load(args.y)[: args.batch]
    if y is not None and getattr(model, "loss", None) is None:
        raise ValueError(f"--y given but {args.model!r} was saved without a compiled loss")
    result = keras_initx.signal_propagation(model, x, y, seed=args.seed)
    print(f"Signal propagation of {model.name!r} ({len(result.frame['layer'].unique())} layers) "
          f"on {source}; gradients: {result.labels}.")  # fmt: skip
    table = result.table("std")
    columns = [c for c in ("activation", "activation_grad") if c in table.columns]
    print("\nstd per layer (depth order):")
    print(table[columns].to_string(float_format="{:.4g}".format))
    print("\nDiagnosis:")
    print(result.report())
    out = args.out
    _print_written(
        [
            _csv(result.frame, _path(out, "propagation.csv"), "per-layer statistics (LayerStats "
                 "columns, step 0)"),
            _png(plots.plot_signal_propagation(result.frame), _path(out, "propagation.png"),
                 "std per layer: activations and back-propagated gradients"),
            _write_findings(out, "diagnosis", result.findings),
        ]
    )  # fmt: skip
    return 0


def _random_inputs(model: Any, batch: int, seed: int) -> Any:
    """Standard-normal rows in each input's shape (a list for several inputs)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    inputs = getattr(model, "inputs", None) or []
    if not inputs:
        raise ValueError(f"model {model.name!r} declares no inputs; give --x FILE.npy")
    arrays = []
    for tensor in inputs:
        shape = tuple(tensor.shape[1:])
        if None in shape or not np.issubdtype(np.dtype(tensor.dtype), np.floating):
            raise ValueError(
                f"input {tensor.name!r} has shape {tuple(tensor.shape)} and dtype "
                f"{tensor.dtype}; random inputs need a fixed shape and a float dtype: give "
                "--x FILE.npy"
            )
        arrays.append(rng.standard_normal((batch, *shape)).astype(tensor.dtype))
    return arrays[0] if len(arrays) == 1 else arrays


def _list(args: argparse.Namespace) -> int:
    from keras_initx.initializers import list_initializers
    from keras_initx.specs import known_initializers

    described = list_initializers(data_driven=False)
    data_driven = {k: v for k, v in list_initializers().items() if k not in described}
    width = max(map(len, [*described, *data_driven]))
    print("keras_initx initializers (string names for kernel_initializer=...):")
    for name, description in described.items():
        print(f"  {name:<{width}}  {description}")
    print("\nData-driven initializations (functions to call on a built model):")
    for name, description in data_driven.items():
        print(f"  {name:<{width}}  {description}")
    others = [name for name in known_initializers() if name not in described]
    print("\nAlso accepted by `sweep --init` (Keras built-ins and the data-driven lsuv):")
    print("  " + ", ".join(others))
    print('\nWith arguments: --init "random_normal(stddev=0.01)", '
          "--init \"orthogonal_gain(gain='tanh')\"")  # fmt: skip
    return 0


def _write_sweep(out: str, stem: str, sweep: Any, plots: Any) -> list[tuple[str, str]]:
    from keras_initx.tables import histogram_table, sweep_table

    table = sweep_table(sweep.frame)
    histograms = histogram_table(sweep.frame, sweep.histograms)
    return [
        _csv(sweep.frame, _path(out, f"{stem}.csv"), "per-layer statistics (LayerStats "
             "columns + initializer)"),
        _csv(table, _path(out, f"{stem}_table.csv"), "one row per (initializer, layer): "
             "activation_std, gradient_std, ..."),
        _csv(histograms, _path(out, f"{stem}_histograms.csv"), "activation histogram counts"),
        _png(plots.plot_depth_sweep(table), _path(out, f"{stem}.png"),
             "std against depth: activations and gradients"),
        _png(plots.plot_histograms(histograms), _path(out, f"{stem}_histograms.png"),
             "activation histograms per layer (seed 001 figure)"),
    ]  # fmt: skip


def _write_findings(out: str, stem: str, findings: Any) -> tuple[str, str]:
    return _csv(findings, _path(out, f"{stem}.csv"), f"diagnosis ({len(findings)} findings)")


def _log_demo(
    tensorboard: str, out: str, written: Sequence[tuple[str, str]], findings: Any
) -> None:
    """The demo's PNGs (as images) and diagnosis (as Markdown text) in a `demo` TensorBoard run."""
    import tensorflow as tf

    from keras_initx.sinks.tensorboard import findings_markdown, write_images

    run = os.path.join(tensorboard, "demo")
    images = {}
    for path, _ in written:
        if path.endswith(".png"):
            with open(path, "rb") as f:
                images[os.path.relpath(path, out)[: -len(".png")]] = f.read()
    sections = [
        f"### {source}\n\n{findings_markdown(found.drop(columns='source'))}"
        for source, found in findings.groupby("source", sort=False)
    ]
    writer = tf.summary.create_file_writer(run)
    with writer.as_default():
        write_images(images, step=0)
        tf.summary.text("diagnosis", "\n\n".join(sections), step=0)
    writer.close()


def _table(frame: Any, column: str) -> str:
    from keras_initx.tables import depth_table

    return depth_table(frame, column).to_string(float_format="{:.6f}".format)


def _path(out: str, *parts: str) -> str:
    """`out/parts...` with each part made file-system safe (labels hold spaces, `*`, `/`)."""
    safe = [re.sub(r"[^A-Za-z0-9_.=-]+", "_", part).strip("_") for part in parts]
    return os.path.join(out, *safe)


def _csv(frame: Any, path: str, description: str) -> tuple[str, str]:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    frame.to_csv(path, index=False)
    return path, description


def _png(plot: Any, path: str, description: str) -> tuple[str, str]:
    from keras_initx.plots import save_figure

    return save_figure(plot, path), description


def _print_written(written: Sequence[tuple[str, str]]) -> None:
    print("\nWritten:")
    width = max(len(path) for path, _ in written)
    for path, description in written:
        print(f"  {path:<{width}}  {description}")
