"""keras_initx.sinks: the frame/CSV/Parquet sink and the TensorBoard sink, read back from disk."""

import numpy as np
import pandas as pd
import pytest
from tbparse import SummaryReader

from keras_initx.sinks import COLUMNS, FrameSink, TensorBoardSink, read_layer_stats
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
            "source": "probe",
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
    for disk in (
        pd.read_csv(tmp_path / "layer_stats.csv"),
        pd.read_parquet(tmp_path / "layer_stats.parquet"),
    ):
        pd.testing.assert_frame_equal(disk, frame, check_dtype=False)
    sink.close()


def test_frame_sink_resumes_by_appending(tmp_path):
    first = FrameSink(tmp_path)
    first.write(_rows(0))
    first.write(_rows(5))
    first.close()
    # A new sink on the directory (a resumed run) appends: header once, earlier rows kept.
    second = FrameSink(tmp_path)
    second.write(_rows(9))
    second.close()
    lines = (tmp_path / "layer_stats.csv").read_text().splitlines()
    assert [line.startswith("step,") for line in lines] == [True] + [False] * 6
    for disk in (read_layer_stats(tmp_path), pd.read_parquet(tmp_path / "layer_stats.parquet")):
        assert disk["step"].tolist() == [0, 0, 5, 5, 9, 9]
        pd.testing.assert_frame_equal(disk.iloc[4:].reset_index(drop=True), _rows(9)[list(COLUMNS)])
    assert second.to_dataframe()["step"].tolist() == [9, 9]  # memory: this sink's rows only
    # Steps that do not follow the file's last one (a restart from 0) are kept, with a warning.
    third = FrameSink(tmp_path)
    with pytest.warns(UserWarning, match=r"holds steps up to 9 .* start at step 0"):
        third.write(_rows(0))
    third.close()
    assert read_layer_stats(tmp_path)["step"].tolist() == [0, 0, 5, 5, 9, 9, 0, 0]


def test_second_live_frame_sink_on_a_directory_is_refused(tmp_path):
    first = FrameSink(tmp_path)
    first.write(_rows(0))
    second = FrameSink(tmp_path)
    with pytest.raises(ValueError, match=rf"log_dir='{tmp_path}'.*another LayerStats is writing"):
        second.write(_rows(1))
    first.write(_rows(2))  # the holder goes on undisturbed
    assert read_layer_stats(tmp_path)["step"].tolist() == [0, 0, 2, 2]
    first.close()
    second.write(_rows(3))  # released by close()
    second.close()
    assert read_layer_stats(tmp_path)["step"].tolist() == [0, 0, 2, 2, 3, 3]


def test_torn_measurement_is_never_read_and_is_cut_on_resume(tmp_path):
    sink = FrameSink(tmp_path, parquet=False)
    for step in (0, 1, 2):
        sink.write(_rows(step))
    sink.close()
    csv = tmp_path / "layer_stats.csv"
    whole = csv.read_bytes()
    torn = _rows(3).to_csv(header=False, index=False).encode()
    # A kill can cut the write of a measurement anywhere, including at a line end.
    for cut in range(1, len(torn)):
        csv.write_bytes(whole + torn[:cut])
        assert read_layer_stats(csv)["step"].tolist() == [0, 0, 1, 1, 2, 2], cut
    # Resuming cuts the torn tail off the file before appending.
    resumed = FrameSink(tmp_path, parquet=False)
    resumed.write(_rows(4))
    resumed.close()
    assert csv.read_bytes() == whole + _rows(4).to_csv(header=False, index=False).encode()
    pd.testing.assert_frame_equal(pd.read_csv(csv), read_layer_stats(csv), check_dtype=False)


def test_read_layer_stats_without_commit_marks_drops_a_torn_line(tmp_path):
    csv = tmp_path / "layer_stats.csv"
    text = _rows(0).to_csv(index=False)
    csv.write_text(text + text.splitlines()[1][:7])  # another tool's CSV, cut mid-line
    frame = read_layer_stats(csv)
    pd.testing.assert_frame_equal(frame, _rows(0)[list(COLUMNS)])
    assert frame["activation"].tolist() == ["tanh", "tanh"]


def test_frame_sink_refuses_a_csv_with_other_columns(tmp_path):
    csv = tmp_path / "layer_stats.csv"
    csv.write_text("step,loss\n0,1.5\n")
    with pytest.raises(ValueError, match=r"log_dir=.*columns \['step', 'loss'\].*another log_dir"):
        FrameSink(tmp_path).write(_rows(0))
    assert csv.read_text() == "step,loss\n0,1.5\n"


def test_frame_sink_rejects_missing_columns():
    with pytest.raises(ValueError, match=r"missing \['mean'\]"):
        FrameSink().write(_rows(0).drop(columns="mean"))
    assert tuple(FrameSink().to_dataframe().columns) == COLUMNS


def test_tensorboard_sink_scalars_and_histograms(tmp_path):
    sink = TensorBoardSink(tmp_path, STAT_NAMES, detail="full")  # every statistic and histogram
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
