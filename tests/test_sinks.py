"""keras_initx.sinks: the frame/CSV/Parquet sink and the TensorBoard sink, read back from disk."""

import numpy as np
import pandas as pd
import pytest
from tbparse import SummaryReader

from keras_initx.sinks import COLUMNS, FrameSink, TensorBoardSink
from keras_initx.stats import STAT_NAMES


def _rows(step, nan_saturation=True):
    rows = pd.DataFrame(
        {
            "step": step,
            "epoch": 0,
            "layer": ["m/d1", "m/d1"],
            "layer_index": [0, 0],
            "layer_class": "Dense",
            "activation": "tanh",
            "kernel_initializer": "glorot_uniform",
            "tensor": ["activation", "kernel"],
        }
    )
    values = np.arange(2 * len(STAT_NAMES), dtype=float).reshape(2, -1) + step
    rows[list(STAT_NAMES)] = values
    if nan_saturation:
        rows.loc[1, ["frac_saturated", "frac_dead_units"]] = np.nan
    return rows


def test_frame_sink_appends_csv_and_rewrites_parquet(tmp_path):
    sink = FrameSink(tmp_path)
    sink.write(_rows(0))
    # The CSV holds the rows at once (crash safety); Parquet waits for flush.
    assert len(pd.read_csv(tmp_path / "layer_stats.csv")) == 2
    assert not (tmp_path / "layer_stats.parquet").exists()
    sink.write(_rows(5)[list(reversed(COLUMNS))])  # any column order in, contract order out
    sink.flush()
    frame = sink.to_dataframe()
    assert tuple(frame.columns) == COLUMNS
    assert frame["step"].tolist() == [0, 0, 5, 5] and frame["step"].dtype == np.int64
    for disk in (pd.read_csv(tmp_path / "layer_stats.csv"),
                 pd.read_parquet(tmp_path / "layer_stats.parquet")):
        pd.testing.assert_frame_equal(disk, frame, check_dtype=False)
    # A new sink on the same directory starts the files afresh.
    FrameSink(tmp_path).write(_rows(9))
    assert pd.read_csv(tmp_path / "layer_stats.csv")["step"].tolist() == [9, 9]


def test_frame_sink_rejects_missing_columns():
    with pytest.raises(ValueError, match=r"missing \['mean'\]"):
        FrameSink().write(_rows(0).drop(columns="mean"))
    assert tuple(FrameSink().to_dataframe().columns) == COLUMNS


def test_tensorboard_sink_scalars_and_histograms(tmp_path):
    sink = TensorBoardSink(tmp_path, STAT_NAMES)
    bins = 4
    histograms = np.array([[-1.0, 1.0, 1, 2, 3, 4], [0.0, 2.0, 4, 0, 0, 6]], dtype=float)
    sink.write(_rows(0), histograms)
    sink.write(_rows(3), histograms * [1, 1, 2, 2, 2, 2])
    sink.close()
    # One run per layer (depth index + path without the model's name), tags `<tensor>/<stat>`.
    assert [p.name for p in (tmp_path / "layer_stats").iterdir() if p.is_dir()] == ["00_d1"]
    tensors = SummaryReader(str(tmp_path / "layer_stats" / "00_d1"), pivot=False).tensors
    scalars = tensors[~tensors["tag"].str.endswith("/values")]
    # nan_count + inf_count -> one `nonfinite`; structural NaN (saturation of a kernel) left out.
    assert len(scalars) == 2 * (2 * (len(STAT_NAMES) - 1) - 2)
    assert "kernel/frac_saturated" not in set(scalars["tag"])
    nonfinite = scalars[scalars["tag"] == "activation/nonfinite"].set_index("step")["value"]
    stat = list(STAT_NAMES).index
    assert nonfinite.to_dict() == {s: 2 * s + stat("nan_count") + stat("inf_count") for s in (0, 3)}
    std = scalars[scalars["tag"] == "activation/std"].set_index("step")["value"]
    assert std.to_dict() == {0: 1.0, 3: 4.0}
    hist = tensors[tensors["tag"] == "kernel/values"].set_index("step")["value"]
    buckets = np.asarray(hist[3])
    assert buckets.shape == (bins, 3)
    np.testing.assert_allclose(buckets[:, 0], [0.0, 0.5, 1.0, 1.5])  # left edges over [min, max]
    np.testing.assert_allclose(buckets[:, 2], [8, 0, 0, 12])
