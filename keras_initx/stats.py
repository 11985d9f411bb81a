"""Statistics: pure reductions of tensors to a few numbers, with TensorFlow ops only.

Everything here runs inside the compiled probe of `keras_initx.capture`: no NumPy, no state, no
host transfer. Each tensor is read by a handful of independent one-pass reductions (sum,
`l2_loss` for the sum of squares, min, max, zero count) that TensorFlow runs in parallel; the
results of all tensors are stacked into vectors and every statistic in `STATS` is a vectorized
function of those, so the graph holds a few ops per tensor plus a few ops in total rather than
dozens of scalar ops per tensor (on CPU the op count, not the arithmetic, dominated a first
version). Percentiles are read off a histogram instead of a sort (a full sort per tensor made a
prototype probe 27x slower than a training step).

Faults are data. Statistics are computed on the finite values only, so a single NaN does not
poison `mean` or `std`; `nan_count` and `inf_count` count the rest exactly, and `min`/`max` are
those of the finite values (NaN when there are none). The sums run in float32 for ordinary
tensors; when a sum comes out non-finite (a NaN or Inf, or finite values beyond 1.8e19 whose
squares overflow float32) the masked branch recomputes mean and variance of the finite values in
float64, two-pass, so values up to float32's 3.4e38 give a finite, exact `std` (as numpy's
float64 one). `std` is the population standard deviation (ddof=0), as `numpy.std`.

Binning (histograms and percentiles): `bins` (default `DEFAULT_BINS`) equal bins over the
tensor's finite [min, max]; values on the top edge go to the last bin. A constant tensor c has no
width, so it is binned over [c - h, c + h], h = max(|c|, 1) / 2, clipped to the float32 range
(`histogram_range`): TensorBoard's c +- 0.5 for |c| <= 1, +-50% beyond, where c +- 0.5 would
round to c; all its values land in the middle bin, at c. Bin indices are computed in float64,
so ranges wider than float32 (-3e38 to 3e38) and tiny widths bin correctly. Only the finite
values are counted: a tensor without any (all NaN) has zero counts and a NaN range. At most
`max_histogram_values` evenly strided values per tensor are binned (all of them for smaller
tensors) and the counts are scaled to the number of finite values. Percentiles interpolate
inside a bin and are clipped to [min, max] (a constant's are the constant), so their error is
below one bin width plus the subsampling error.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import tensorflow as tf

__all__ = [
    "ACTIVATION_BOUNDS",
    "DEFAULT_BINS",
    "MAX_HISTOGRAM_VALUES",
    "PERCENTILES",
    "STATS",
    "STAT_NAMES",
    "Reductions",
    "histogram_range",
    "histograms",
    "percentiles_from_histograms",
    "reduce_tensors",
    "strided_sample",
]

DEFAULT_BINS = 64  # histogram bins: TensorBoard display and percentile resolution (range / 64)
MAX_HISTOGRAM_VALUES = 4096  # histogram subsample: p1/p99 within ~0.2 percentile point
PERCENTILES = (1.0, 50.0, 99.0)  # the p1, p50, p99 of `STATS`

# Output range of the bounded activations, for `frac_saturated` (and fixed histogram ranges).
ACTIVATION_BOUNDS: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "hard_tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
}

_NAN = float("nan")
_FLOAT32_MAX = 3.4028234663852886e38
# Below this variance / mean^2, float32 E[x^2] - E[x]^2 has lost most digits: use two passes.
_CANCELLATION_RATIO = 1e-3


def strided_sample(x: tf.Tensor, size: int) -> tf.Tensor:
    """`size` evenly strided values of `x`, flattened, padded with NaN when `x` has fewer.

    The stride is made coprime with the last dimension so that every unit (column, channel)
    is sampled, not every stride-th one.
    """
    flat = tf.reshape(x, [-1])
    n = x.shape.num_elements()
    if n > size:
        stride = -(-n // size)
        last = x.shape[-1] or 1
        while math.gcd(stride, last) != 1:
            stride += 1
        # A gather of constant indices costs a third of the equivalent strided slice on CPU.
        flat = tf.gather(flat, tf.range(0, n, stride))
        n = len(range(0, n, stride))
    return tf.pad(flat, [[0, size - n]], constant_values=_NAN)


def histogram_range(low: tf.Tensor, high: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The histogram range `(lo, hi)` of rows whose finite values span [low, high] (`[n]` each).

    [low, high] itself, except for a constant row (low == high == c): [c - h, c + h] with
    h = max(|c|, 1) / 2, clipped to the float32 range. So a constant in [-1, 1] gets TensorBoard's
    c +- 0.5, a larger one +-50% (c +- 0.5 is c itself in float32 from |c| >= 2^24 on), and the
    values land in the middle bin (for an even number of bins, in one of the two that meet at c).
    NaN stays NaN (a row without finite values).
    """
    constant = tf.equal(low, high)
    half = tf.where(constant, 0.5 * tf.maximum(tf.abs(low), 1.0), 0.0)
    return tf.maximum(low - half, -_FLOAT32_MAX), tf.minimum(high + half, _FLOAT32_MAX)


def histograms(samples: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor, bins: int) -> tf.Tensor:
    """Counts of the finite values of each row of `samples` `[n, k]` in `bins` bins over
    [lo, hi] (`[n]` each); float32 `[n, bins]`.

    Values outside the range land in the edge bins; non-finite values are not counted. A row
    whose range is empty or not finite (lo >= hi, NaN) puts its finite values in its first bin
    (`histogram_range` gives a constant row a real range). One `bincount` for all rows. The bin
    index is computed in float64, where no float32 range overflows (3e38 - -3e38) and no tiny
    float32 width (1e-38) makes the scale `bins / (hi - lo)` overflow.
    """
    n = samples.shape[0]
    lo, hi = tf.cast(lo, tf.float64), tf.cast(hi, tf.float64)
    valid = tf.math.is_finite(lo) & tf.math.is_finite(hi) & (hi > lo)
    lo = tf.where(valid, lo, 0.0)
    scale = tf.where(valid, bins / tf.where(valid, hi - lo, 1.0), 0.0)
    scaled = (tf.cast(samples, tf.float64) - lo[:, None]) * scale[:, None]
    index = tf.cast(tf.clip_by_value(tf.floor(scaled), 0.0, bins - 1.0), tf.int32)
    # Non-finite values go to an extra slot per row, dropped below.
    index = tf.where(tf.math.is_finite(samples), index, bins)
    index += tf.range(n)[:, None] * (bins + 1)
    counts = tf.math.bincount(
        tf.reshape(index, [-1]),
        minlength=n * (bins + 1),
        maxlength=n * (bins + 1),
        dtype=tf.float32,
    )
    return tf.reshape(counts, [n, bins + 1])[:, :bins]


def percentiles_from_histograms(
    counts: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor, q: float | Sequence[float]
) -> tf.Tensor:
    """The `q`-th percentile(s) (0..100) of each row of `counts` `[n, bins]` over [lo, hi] `[n]`.

    Linear interpolation inside the bin where the cumulative count crosses q% of the total,
    clipped to [lo, hi] (lo where hi <= lo); NaN for an empty row. A scalar `q` gives `[n]`; a
    sequence gives `[n, len(q)]` with the same few ops (on CPU each op costs more than the
    arithmetic on these small tensors).
    """
    if not isinstance(q, Sequence):
        return percentiles_from_histograms(counts, lo, hi, [q])[:, 0]
    bins = counts.shape[-1]
    total = tf.reduce_sum(counts, axis=-1)
    cumulative = tf.cumsum(counts, axis=-1)
    target = tf.constant(q, tf.float32)[None, :] / 100.0 * total[:, None]
    # First bin whose cumulative count reaches the target: [n, len(q)].
    below = tf.cast(cumulative[:, None, :] < target[:, :, None], tf.int32)
    k = tf.minimum(tf.reduce_sum(below, -1), bins - 1)
    in_bin = tf.gather(counts, k, batch_dims=1)
    before = tf.gather(cumulative, k, batch_dims=1) - in_bin
    inside = tf.math.divide_no_nan(target - before, in_bin)
    lo, hi = lo[:, None], hi[:, None]
    fraction = tf.clip_by_value((tf.cast(k, tf.float32) + inside) / bins, 0.0, 1.0)
    # A convex combination, not lo + fraction * (hi - lo): hi - lo can overflow float32.
    value = tf.where(hi > lo, lo * (1.0 - fraction) + hi * fraction, lo)
    return tf.where(total[:, None] > 0, value, _NAN)


def _count(mask: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(mask, tf.float32))


class _Segments:
    """All tensors' values in one vector with each value's tensor index, for the rare branches
    (NaN/Inf or overflow, cancellation, zeros among NaN).

    Built inside those branches only: the copy costs one memory pass when a branch runs, and
    the branch's graph holds a few segment ops in total instead of a few ops per tensor (per-
    tensor branches made a 50-layer probe's trace and first run take tens of seconds).
    """

    def __init__(self, flats: Sequence[tf.Tensor], dtype: tf.DType = tf.float32) -> None:
        self.n = len(flats)
        self.values = tf.cast(tf.concat(flats, 0), dtype)
        self.ids = tf.repeat(tf.range(self.n), tf.stack([tf.size(f) for f in flats]))

    def sum(self, values: tf.Tensor) -> tf.Tensor:
        return tf.math.unsorted_segment_sum(values, self.ids, self.n)

    def count(self, mask: tf.Tensor) -> tf.Tensor:
        return self.sum(tf.cast(mask, tf.float32))

    def centered_squares(self, mean: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        """Per tensor, the sum of (x - mean)^2 over the values (where `mask`): the second pass
        of a two-pass variance."""
        centered = self.values - tf.gather(mean, self.ids)
        if mask is not None:
            centered = tf.where(mask, centered, tf.zeros_like(centered))
        return self.sum(tf.square(centered))


class Reductions:
    """The shared reductions of a list of tensors, as `[n]` vectors, computed on first use.

    Statistics in `STATS` are functions of a `Reductions`: asking for `std` alone costs the
    moment pass, asking for `p50` adds the histograms.

    Args:
        tensors: float tensors of any shapes (cast to float32).
        bins: histogram bins.
        bounds: per tensor, the `(low, high)` range of a bounded activation (tanh: (-1, 1))
            for `frac_saturated`, or None where saturation does not apply.
        saturation_threshold: a value is saturated beyond `threshold` of the way to a bound:
            tanh |a| > 0.99, sigmoid outside [0.01, 0.99] for the default 0.99.
        units: per tensor, whether its last axis holds units (an activation), for
            `frac_dead_units`.
        max_histogram_values: subsample size for the histograms and percentiles.
    """

    def __init__(
        self,
        tensors: Sequence[tf.Tensor],
        *,
        bins: int = DEFAULT_BINS,
        bounds: Sequence[tuple[float, float] | None] | None = None,
        saturation_threshold: float = 0.99,
        units: Sequence[bool] | None = None,
        max_histogram_values: int = MAX_HISTOGRAM_VALUES,
    ) -> None:
        self.tensors = [tf.cast(t, tf.float32) for t in tensors]
        self.flats = [tf.reshape(t, [-1]) for t in self.tensors]
        self.bins = bins
        self.bounds = list(bounds) if bounds is not None else [None] * len(self.tensors)
        self.saturation_threshold = saturation_threshold
        self.units = list(units) if units is not None else [False] * len(self.tensors)
        self.max_histogram_values = max_histogram_values
        # Built here, not lazily: a tensor first made inside a `tf.cond` branch is not
        # visible outside it.
        self.size = tf.stack([tf.cast(tf.size(f), tf.float32) for f in self.flats])

    @functools.cached_property
    def _moments(self) -> tuple[tf.Tensor, ...]:
        """`(count, nan_count, mean, variance, min, max)`, each `[n]`, over finite values.

        `mean` and `variance` are float64: the variance of finite float32 values reaches 1e77.
        """
        total = tf.stack([tf.reduce_sum(f) for f in self.flats])
        total_sq = 2.0 * tf.stack([tf.nn.l2_loss(f) for f in self.flats])
        low = tf.stack([tf.reduce_min(f) for f in self.flats])
        high = tf.stack([tf.reduce_max(f) for f in self.flats])

        def finite_moments():
            mean = total / self.size
            variance = total_sq / self.size - tf.square(mean)
            cancelled = (variance <= _CANCELLATION_RATIO * tf.square(mean)) & (mean != 0.0)
            # A finite sum of squares bounds every centered square: float32 cannot overflow here.
            variance = tf.cond(
                tf.reduce_any(cancelled),
                lambda: _Segments(self.flats).centered_squares(mean) / self.size,
                lambda: variance,
            )
            mean, variance = tf.cast(mean, tf.float64), tf.cast(variance, tf.float64)
            return self.size, tf.zeros_like(total), mean, variance, low, high

        # NaN or Inf anywhere makes a sum non-finite, and so do finite values whose squares
        # exceed float32 (|x| > 1.8e19): the masked branch is exact either way.
        all_finite = tf.reduce_all(tf.math.is_finite(total) & tf.math.is_finite(total_sq))
        return tf.cond(all_finite, finite_moments, self._masked_moments)

    def _masked_moments(self) -> tuple[tf.Tensor, ...]:
        """`_moments` of the finite values, in float64: their sums and squares can exceed
        float32's range, not float64's ((3.4e38)^2 = 1.2e77)."""
        segments = _Segments(self.flats, tf.float64)
        finite = tf.math.is_finite(segments.values)
        count = segments.count(finite)
        nan_count = segments.count(tf.math.is_nan(segments.values))
        # Non-finite values become 0 here and are masked out of the centered squares below.
        values = tf.where(finite, segments.values, 0.0)
        count64 = tf.cast(count, tf.float64)
        mean = segments.sum(values) / count64
        variance = segments.centered_squares(mean, finite) / count64
        low = tf.math.unsorted_segment_min(
            tf.where(finite, segments.values, math.inf), segments.ids, segments.n
        )
        high = tf.math.unsorted_segment_max(
            tf.where(finite, segments.values, -math.inf), segments.ids, segments.n
        )
        low, high = tf.cast(low, tf.float32), tf.cast(high, tf.float32)
        empty = count == 0
        return (
            count,
            nan_count,
            mean,
            variance,
            tf.where(empty, _NAN, low),
            tf.where(empty, _NAN, high),
        )

    @property
    def count(self) -> tf.Tensor:
        """Number of finite values per tensor."""
        return self._moments[0]

    @property
    def nan_count(self) -> tf.Tensor:
        return self._moments[1]

    @property
    def mean(self) -> tf.Tensor:
        return self._moments[2]

    @property
    def variance(self) -> tf.Tensor:
        return tf.maximum(self._moments[3], 0.0)

    @property
    def min(self) -> tf.Tensor:
        return self._moments[4]

    @property
    def max(self) -> tf.Tensor:
        return self._moments[5]

    @functools.cached_property
    def _range(self) -> tuple[tf.Tensor, tf.Tensor]:
        """`(lo, hi)`, `[n]` each: [min, max], widened for constant tensors (`histogram_range`)."""
        return histogram_range(self.min, self.max)

    @functools.cached_property
    def histograms(self) -> tf.Tensor:
        """`[n, bins]` counts over the histogram range of each tensor, scaled to its finite
        count."""
        samples = tf.stack([strided_sample(t, self.max_histogram_values) for t in self.tensors])
        counts = histograms(samples, *self._range, self.bins)
        scale = tf.math.divide_no_nan(self.count, tf.reduce_sum(counts, axis=-1))
        return counts * scale[:, None]

    def _percentiles_within_range(self, q: Sequence[float]) -> tf.Tensor:
        """`[n, len(q)]` read off the histograms, clipped to [min, max]: a constant tensor's
        percentiles are the constant, not a point of its widened histogram range."""
        value = percentiles_from_histograms(self.histograms, *self._range, q)
        return tf.clip_by_value(value, self.min[:, None], self.max[:, None])

    @functools.cached_property
    def _percentiles(self) -> tf.Tensor:
        """`[n, len(PERCENTILES)]`, all read off the histograms at once."""
        return self._percentiles_within_range(PERCENTILES)

    def percentile(self, q: float) -> tf.Tensor:
        if q in PERCENTILES:
            return self._percentiles[:, PERCENTILES.index(q)]
        return self._percentiles_within_range([q])[:, 0]

    @functools.cached_property
    def _unit_nonzero(self) -> list[tf.Tensor | None]:
        """Per tensor with units, the number of nonzero (or NaN) values of each unit, `[units]`.

        One pass shared by `frac_dead_units` and `frac_zero`: |sign(x)| is 1 where x != 0 (NaN
        where x is NaN), summed over all but the last axis by a matmul with ones, the cheapest
        column sum on CPU.
        """
        counts = []
        for t, units in zip(self.tensors, self.units, strict=True):
            if not units:
                counts.append(None)
                continue
            columns = tf.reshape(t, [-1, t.shape[-1] if t.shape.rank > 1 else 1])
            ones = tf.ones([1, columns.shape[0]])
            counts.append(tf.matmul(ones, tf.abs(tf.sign(columns)))[0])
        return counts

    def frac_zero(self) -> tf.Tensor:
        # Outside the cond: a tensor first made inside a branch is not visible outside it.
        unit_nonzero = self._unit_nonzero

        def finite_zeros():
            # sign(x)^2 is 1 exactly where x != 0: two cheap passes, no boolean cast.
            nonzero = [
                tf.reduce_sum(counts) if counts is not None else 2.0 * tf.nn.l2_loss(tf.sign(f))
                for f, counts in zip(self.flats, unit_nonzero, strict=True)
            ]
            return self.size - tf.stack(nonzero)

        def masked_zeros():
            segments = _Segments(self.flats)
            return segments.count(tf.equal(segments.values, 0.0))

        zeros = tf.cond(tf.reduce_all(self.count == self.size), finite_zeros, masked_zeros)
        return zeros / self.count

    def frac_saturated(self) -> tf.Tensor:
        counts = []
        for f, bounds in zip(self.flats, self.bounds, strict=True):
            if bounds is None:
                counts.append(tf.constant(_NAN))
                continue
            low, high = bounds
            margin = (1.0 - self.saturation_threshold) * max(abs(low), abs(high))
            if low == -high:  # one comparison instead of two and an `or`
                counts.append(_count(tf.abs(f) > high - margin))
            else:
                counts.append(_count((f < low + margin) | (f > high - margin)))
        return tf.stack(counts) / self.count

    def frac_dead_units(self) -> tf.Tensor:
        fractions = []
        for counts in self._unit_nonzero:
            if counts is None:
                fractions.append(tf.constant(_NAN))
                continue
            # A NaN count is not 0: a unit that produced NaN is broken, not dead.
            fractions.append(tf.reduce_mean(tf.cast(tf.equal(counts, 0.0), tf.float32)))
        return tf.stack(fractions)


StatFunction = Callable[[Reductions], tf.Tensor]

STATS: dict[str, StatFunction] = {
    "mean": lambda r: r.mean,
    "std": lambda r: tf.sqrt(r.variance),
    "min": lambda r: r.min,
    "max": lambda r: r.max,
    "rms": lambda r: tf.sqrt(r.variance + tf.square(r.mean)),
    "p1": lambda r: r.percentile(1.0),
    "p50": lambda r: r.percentile(50.0),
    "p99": lambda r: r.percentile(99.0),
    "frac_zero": Reductions.frac_zero,
    "frac_saturated": Reductions.frac_saturated,
    "frac_dead_units": Reductions.frac_dead_units,
    "nan_count": lambda r: r.nan_count,
    "inf_count": lambda r: r.size - r.count - r.nan_count,
}

STAT_NAMES: tuple[str, ...] = tuple(STATS)


def reduce_tensors(
    tensors: Sequence[tf.Tensor],
    stats: Sequence[str] = STAT_NAMES,
    *,
    bins: int = DEFAULT_BINS,
    bounds: Sequence[tuple[float, float] | None] | None = None,
    saturation_threshold: float = 0.99,
    units: Sequence[bool] | None = None,
    with_histograms: bool = False,
    max_histogram_values: int = MAX_HISTOGRAM_VALUES,
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """Reduce each tensor to a row of statistics (and optionally its histogram).

    Args:
        tensors: float tensors of any shapes.
        stats: names from `STAT_NAMES`, in the order wanted.
        bins: histogram bins (percentiles and `with_histograms`).
        bounds: per tensor, bounded-activation range for `frac_saturated` (see `Reductions`).
        saturation_threshold: see `Reductions`.
        units: per tensor, whether the last axis holds units, for `frac_dead_units`.
        with_histograms: also return `[n, bins + 2]` = `[lo, hi, counts...]` per tensor: the
            histogram range (min and max, widened for a constant: `histogram_range`) and the
            counts of `bins` equal bins over it.
        max_histogram_values: subsample size for the histograms and percentiles.

    Returns:
        `(values, histograms)`: float32 `[len(tensors), len(stats)]` and the histograms or None.
    """
    r = Reductions(
        tensors,
        bins=bins,
        bounds=bounds,
        saturation_threshold=saturation_threshold,
        units=units,
        max_histogram_values=max_histogram_values,
    )
    values = tf.stack([tf.cast(STATS[name](r), tf.float32) for name in stats], axis=1)
    if not with_histograms:
        return values, None
    lo, hi = r._range
    return values, tf.concat([lo[:, None], hi[:, None], r.histograms], axis=1)
