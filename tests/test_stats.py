"""keras_initx.stats: every statistic against NumPy on known tensors, eager and compiled."""

import numpy as np
import pytest
import tensorflow as tf

from keras_initx.stats import (
    DEFAULT_BINS,
    STAT_NAMES,
    percentiles_from_histograms,
    reduce_tensors,
    strided_sample,
)


def _reduce(arrays, **kwargs):
    values, hist = tf.function(lambda *ts: reduce_tensors(list(ts), **kwargs))(
        *[tf.constant(a, tf.float32) for a in arrays]
    )
    frame = {name: values.numpy()[:, i] for i, name in enumerate(kwargs.get("stats", STAT_NAMES))}
    return frame, (None if hist is None else hist.numpy())


@pytest.fixture(scope="module")
def normal():
    return np.random.default_rng(0).normal(0.3, 2.0, size=(256, 1024)).astype(np.float32)


def test_moments_match_numpy(normal):
    small = np.array([[1.0, -2.0], [0.0, 4.0]], np.float32)
    out, _ = _reduce([normal, small])
    for i, a in enumerate([normal, small]):
        a64 = a.astype(np.float64)
        np.testing.assert_allclose(out["mean"][i], a64.mean(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["std"][i], a64.std(), rtol=1e-5)
        np.testing.assert_allclose(out["rms"][i], np.sqrt((a64**2).mean()), rtol=1e-5)
        assert out["min"][i] == a.min() and out["max"][i] == a.max()
    assert out["frac_zero"][1] == 0.25
    assert out["nan_count"].tolist() == [0, 0] and out["inf_count"].tolist() == [0, 0]


def test_percentiles_within_one_bin_of_numpy(normal):
    """262,144 values are subsampled to 4096: allow one bin plus ~4 sampling standard errors."""
    out, _ = _reduce([normal])
    width = (normal.max() - normal.min()) / DEFAULT_BINS
    for q in (1, 50, 99):
        p = q / 100
        # Standard error of a sample quantile: sqrt(p(1-p)/n) / density at the quantile.
        x = np.percentile(normal, q)
        density = np.exp(-(((x - 0.3) / 2.0) ** 2) / 2) / (2.0 * np.sqrt(2 * np.pi))
        sampling = 4 * np.sqrt(p * (1 - p) / 4096) / density
        assert abs(out[f"p{q}"][0] - x) < width + sampling, q


def test_cancellation_safe_variance():
    """mean 1000, std 0.01: float32 E[x^2] - E[x]^2 would be pure rounding noise."""
    a = (1000.0 + 0.01 * np.random.default_rng(1).standard_normal(10_000)).astype(np.float32)
    out, _ = _reduce([a], stats=["mean", "std"])
    np.testing.assert_allclose(out["std"][0], a.astype(np.float64).std(), rtol=1e-3)


def test_non_finite_values_are_counted_not_propagated():
    a = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 3.0, 0.0], np.float32)
    clean = np.array([5.0, 5.0], np.float32)
    out, hist = _reduce([a, clean], with_histograms=True)
    finite = np.array([1.0, 2.0, 3.0, 0.0])
    assert out["nan_count"].tolist() == [1, 0] and out["inf_count"].tolist() == [2, 0]
    np.testing.assert_allclose(out["mean"][0], finite.mean(), rtol=1e-6)
    np.testing.assert_allclose(out["std"][0], finite.std(), rtol=1e-6)
    assert (out["min"][0], out["max"][0]) == (0.0, 3.0)
    assert out["frac_zero"][0] == 0.25
    # Histograms count the finite values only; a constant tensor is all in one bin.
    assert hist[0, 2:].sum() == pytest.approx(4.0) and hist[1, 2:].sum() == pytest.approx(2.0)
    assert out["std"][1] == 0.0 and out["p50"][1] == 5.0


def test_all_nan_tensor_gives_nan_statistics():
    out, _ = _reduce([np.full((3, 2), np.nan, np.float32)])
    assert np.isnan(out["mean"][0]) and np.isnan(out["min"][0]) and np.isnan(out["p50"][0])
    assert out["nan_count"][0] == 6


def test_saturation_and_dead_units():
    tanh = np.array([[0.995, -0.999, 0.5, 0.0], [0.2, -0.98, 0.991, 0.0]], np.float32)
    sigmoid = np.array([[0.005, 0.5], [0.995, 0.99]], np.float32)
    out, _ = _reduce(
        [tanh, sigmoid, tanh],
        bounds=[(-1.0, 1.0), (0.0, 1.0), None],
        units=[True, True, False],
        stats=["frac_saturated", "frac_dead_units"],
    )
    assert out["frac_saturated"][0] == pytest.approx(3 / 8)  # |a| > 0.99: 0.995, -0.999, 0.991
    assert out["frac_saturated"][1] == pytest.approx(2 / 4)  # outside [0.01, 0.99]
    assert out["frac_dead_units"][0] == pytest.approx(1 / 4)  # the last column is all zero
    assert np.isnan(out["frac_saturated"][2]) and np.isnan(out["frac_dead_units"][2])
    threshold, _ = _reduce(
        [tanh], bounds=[(-1.0, 1.0)], saturation_threshold=0.9, stats=["frac_saturated"]
    )
    assert threshold["frac_saturated"][0] == pytest.approx(4 / 8)  # adds -0.98


def test_histogram_counts_and_percentile_interpolation():
    counts = tf.constant([[0.0, 10.0, 0.0, 10.0]])
    lo, hi = tf.constant([0.0]), tf.constant([4.0])
    # Half the mass lies in [1, 2): the median is at the end of that bin.
    assert percentiles_from_histograms(counts, lo, hi, 50.0).numpy()[0] == pytest.approx(2.0)
    assert percentiles_from_histograms(counts, lo, hi, 25.0).numpy()[0] == pytest.approx(1.5)
    # Several percentiles at once: one column each.
    both = percentiles_from_histograms(counts, lo, hi, [25.0, 50.0]).numpy()
    np.testing.assert_allclose(both, [[1.5, 2.0]])
    _, hist = _reduce([np.arange(10, dtype=np.float32)], bins=5, with_histograms=True)
    assert hist[0, :2].tolist() == [0.0, 9.0]
    assert hist[0, 2:].tolist() == [2.0, 2.0, 2.0, 2.0, 2.0]


def test_strided_sample_visits_every_unit():
    x = tf.reshape(tf.range(128 * 500, dtype=tf.float32), [128, 500])
    sample = strided_sample(x, 4096).numpy()
    assert sample.shape == (4096,)
    units = np.unique(sample[np.isfinite(sample)] % 500)
    assert len(units) == 500  # a stride sharing a factor with 500 would skip columns
    assert np.isnan(strided_sample(tf.ones([3]), 8).numpy()[3:]).all()
