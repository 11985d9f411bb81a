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

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _reduce(arrays, compiled=True, **kwargs):
    """`reduce_tensors` compiled in a `tf.function` as the probe runs it, or eagerly."""
    function = lambda *ts: reduce_tensors(list(ts), **kwargs)  # noqa: E731
    if compiled:
        function = tf.function(function)
    values, hist = function(*[tf.constant(a, tf.float32) for a in arrays])
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


def _finite64(a):
    return a[np.isfinite(a)].astype(np.float64)


def _huge_arrays():
    rng = np.random.default_rng(2)
    mixed = rng.standard_normal(1000)
    mixed[:3] = [3e38, -3.3e38, FLOAT32_MAX]
    return {
        "1e20": 1e20 * rng.standard_normal(1000) + 3e19,
        "1e30": 1e30 * rng.standard_normal(1000),
        "3e38 and small": mixed,
        "1e20, NaN, Inf": np.concatenate([1e20 * rng.standard_normal(300), [np.nan, np.inf]]),
    }


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "eager"])
def test_huge_finite_values_give_exact_moments(compiled):
    """Squares beyond float32's range: moments in float64, as numpy's, not inf."""
    arrays = {k: v.astype(np.float32) for k, v in _huge_arrays().items()}
    moments = ["mean", "std", "rms", "min", "max", "nan_count", "inf_count"]
    out, _ = _reduce(list(arrays.values()), compiled=compiled, stats=moments)
    for i, (name, a) in enumerate(arrays.items()):
        finite = _finite64(a)
        np.testing.assert_allclose(out["mean"][i], finite.mean(), rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(out["std"][i], finite.std(), rtol=1e-6, err_msg=name)
        rms = np.sqrt(np.mean(finite**2))
        np.testing.assert_allclose(out["rms"][i], rms, rtol=1e-6, err_msg=name)
        assert (out["min"][i], out["max"][i]) == (finite.min(), finite.max()), name
        assert out["nan_count"][i] == np.isnan(a).sum(), name
        assert out["inf_count"][i] == np.isinf(a).sum(), name


def _edges(row):
    """Bin edges of a `[lo, hi, counts...]` row, in float64 as the TensorBoard sink draws them."""
    return np.linspace(np.float64(row[0]), np.float64(row[1]), len(row) - 1)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "eager"])
def test_histograms_never_fail(compiled):
    """Constants of any magnitude, ranges wider than float32, all-NaN, NaN/Inf among finite."""
    rng = np.random.default_rng(3)
    wide = rng.uniform(-3e38, 3e38, 2000)
    wide[:2] = [-3e38, 3e38]  # hi - lo overflows float32
    arrays = dict(_huge_arrays())
    arrays.update(
        {
            "constant 2^24": np.full(100, 2.0**24),
            "constant -2^24 - 2": np.full(100, -(2.0**24) - 2),
            "constant float32 max": np.full(10, FLOAT32_MAX),
            "wide": wide,
            # bins / width beyond float32 (TF on CPU flushes subnormals, so normal numbers).
            "tiny width": np.finfo(np.float32).tiny * np.array([1.0, 1.5, 2.0, 3.0]),
            "all NaN": np.full(7, np.nan),
            "NaN, Inf and finite": np.array([np.nan, -np.inf, 2.0, np.inf, -1.0, 5.0, np.nan]),
            "Inf only": np.array([np.inf, -np.inf]),
        }
    )
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    out, hist = _reduce(list(arrays.values()), compiled=compiled, with_histograms=True)
    for i, (name, a) in enumerate(arrays.items()):
        finite = _finite64(a)
        counts = hist[i, 2:]
        assert (counts >= 0).all() and counts.sum() == pytest.approx(finite.size), name
        assert out["nan_count"][i] == np.isnan(a).sum(), name
        assert out["inf_count"][i] == np.isinf(a).sum(), name
        percentiles = np.array([out["p1"][i], out["p50"][i], out["p99"][i]])
        if finite.size == 0:
            assert np.isnan(percentiles).all() and np.isnan(out["min"][i]), name
            continue
        assert (out["min"][i], out["max"][i]) == (finite.min(), finite.max()), name
        assert np.isfinite(hist[i, :2]).all() and hist[i, 0] < hist[i, 1], name
        assert (percentiles >= finite.min()).all() and (percentiles <= finite.max()).all(), name
        if finite.size == a.size and a.size <= 4096 and finite.min() < finite.max():
            # Not subsampled: the counts are NumPy's over the same range, computed in float64.
            expected, _ = np.histogram(finite, bins=_edges(hist[i]))
            np.testing.assert_array_equal(counts, expected, err_msg=name)
        if finite.size == a.size and 1000 <= a.size <= 4096:
            # Enough values that NumPy's interpolation between them is within a bin too.
            width = (finite.max() - finite.min()) / counts.size
            for q, p in zip((1, 50, 99), percentiles, strict=True):
                assert abs(p - np.percentile(finite, q)) <= width, (name, q)


# (c, lo, hi): lo, hi = c -+ max(|c|, 1) / 2 within float32, from the float32 value of c.
_CONSTANT_RANGES = [
    (0.0, -0.5, 0.5),
    (0.25, -0.25, 0.75),
    (-3.0, -4.5, -1.5),
    (5.0, 2.5, 7.5),
    (2.0**24, 2.0**23, 1.5 * 2.0**24),
    (-1e30, 1.5 * float(np.float32(-1e30)), 0.5 * float(np.float32(-1e30))),
    (FLOAT32_MAX, FLOAT32_MAX / 2, FLOAT32_MAX),
]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "eager"])
def test_constant_tensor_histogram_range(compiled):
    """A constant c is binned over [c - h, c + h], h = max(|c|, 1) / 2 (within float32), all
    its values in the bin at c; its percentiles are c."""
    arrays = [np.full((4, 3), c, np.float32) for c, _, _ in _CONSTANT_RANGES]
    out, hist = _reduce(arrays, compiled=compiled, with_histograms=True)
    for i, (c, low, high) in enumerate(_CONSTANT_RANGES):
        row = hist[i]
        assert row[0] == pytest.approx(low, rel=1e-7) and row[1] == pytest.approx(high, rel=1e-7)
        (filled,) = np.nonzero(row[2:])
        assert len(filled) == 1 and row[2 + filled[0]] == 12.0, c
        edges = _edges(row)
        left, right = edges[filled[0]], edges[filled[0] + 1]
        assert left - 1e-6 * abs(c) <= c <= right + 1e-6 * abs(c), c
        for stat in ("p1", "p50", "p99", "min", "max", "mean"):
            assert out[stat][i] == np.float32(c), (c, stat)
        assert out["std"][i] == 0.0, c


def _fraction_tolerance(p, m=4096):
    """Four standard errors of a fraction p estimated on m independent values."""
    return 4 * np.sqrt(p * (1 - p) / m) + 1e-6


def test_frac_zero_estimated_on_the_sample_frac_saturated_exact():
    """Tensors beyond 4096 values: frac_zero from the 4096-value sample, within four standard
    errors of the exact fraction (independent values); frac_saturated read in full."""
    rng = np.random.default_rng(4)
    relu = np.maximum(rng.standard_normal((512, 300)), 0.0).astype(np.float32)
    tanh = np.tanh(3.0 * rng.standard_normal((64, 20, 20, 16))).astype(np.float32)
    kernel = np.where(rng.random((784, 500)) < 0.1, 0.0, rng.standard_normal((784, 500)))
    arrays = [relu, tanh, kernel.astype(np.float32)]
    out, _ = _reduce(
        arrays, bounds=[None, (-1.0, 1.0), None], stats=["frac_zero", "frac_saturated"]
    )
    for i, a in enumerate(arrays):
        p = np.mean(a == 0.0)
        assert abs(out["frac_zero"][i] - p) <= _fraction_tolerance(p), i
    p = np.mean(np.abs(tanh) > np.float32(0.99))
    assert 0.2 < p < 0.5 and out["frac_saturated"][1] == pytest.approx(p, rel=1e-6)
    assert np.isnan(out["frac_saturated"][0]) and np.isnan(out["frac_saturated"][2])


def test_dead_units_exact_on_large_tensors():
    """All values are read: a unit with one nonzero (or NaN) among 60,000 values is not dead,
    whichever the sample picks."""
    dense = np.maximum(np.random.default_rng(5).standard_normal((1000, 64)), 0.0)
    dense[:, [3, 10, 20, 30]] = 0.0
    dense[700, 20] = np.nan  # broken, not dead
    dense[411, 30] = 1e-30  # alive
    conv = np.ones((8, 20, 20, 16))
    conv[..., 5] = 0.0
    conv[7, 19, 19, 9] = 0.0  # one zero does not kill a unit
    arrays = [a.astype(np.float32) for a in (dense, conv)]
    for compiled in (True, False):
        out, _ = _reduce(arrays, compiled=compiled, units=[True, True], stats=["frac_dead_units"])
        np.testing.assert_allclose(out["frac_dead_units"], [2 / 64, 1 / 16], rtol=1e-6)


@pytest.mark.parametrize("shape", [(128, 500), (1000, 7), (64, 4099), (30, 30, 30, 16), (9000,)])
def test_strided_sample_is_spread_groups(shape):
    """Exactly 4096 distinct values, every unit among them where 4096 values can hold them,
    spread over the whole tensor (each tenth of it sampled)."""
    n = int(np.prod(shape))
    x = tf.reshape(tf.range(n, dtype=tf.float32), shape)
    sample = strided_sample(x, 4096).numpy()
    assert sample.shape == (4096,) and len(np.unique(sample)) == 4096
    last = shape[-1] if len(shape) > 1 else 1
    if last <= 4096:
        assert len(np.unique(sample % last)) == last
    assert len(np.unique((sample * 10 // n).astype(int))) == 10


@pytest.mark.parametrize("faulty", [False, True], ids=["finite", "NaN"])
def test_each_statistic_alone_matches_all(normal, faulty):
    """Asking for one statistic computes only what it reads, with the same value."""
    arrays = [normal.copy(), np.tanh(normal[:8]), np.array([[0.0, 2.0], [0.0, -1.0]], np.float32)]
    if faulty:
        arrays[0][3, 5] = np.nan
    kwargs = dict(bounds=[None, (-1.0, 1.0), None], units=[True, True, True])
    everything, _ = _reduce(arrays, compiled=False, **kwargs)
    for name in STAT_NAMES:
        alone, _ = _reduce(arrays, compiled=False, stats=[name], **kwargs)
        np.testing.assert_array_equal(alone[name], everything[name], err_msg=name)


def test_empty_tensors_among_others():
    """A tensor without values (last, so no segment index reaches it) in the NaN branch."""
    arrays = [np.array([np.nan, 1.0, 3.0], np.float32), np.zeros((0, 3), np.float32)]
    out, _ = _reduce(arrays, stats=["mean", "std", "min", "nan_count", "inf_count"])
    assert out["mean"][0] == 2.0 and out["std"][0] == 1.0 and out["min"][0] == 1.0
    assert out["nan_count"].tolist() == [1, 0] and out["inf_count"].tolist() == [0, 0]
    assert np.isnan(out["mean"][1]) and np.isnan(out["min"][1])


def test_dynamic_shape_is_refused_by_name():
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def reduce(x):
        return reduce_tensors([x], ["mean"])

    with pytest.raises(ValueError, match=r"argument `tensors`.*tensors\[0\] of shape \(None, 3\)"):
        reduce.get_concrete_function()
