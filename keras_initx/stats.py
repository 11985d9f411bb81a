"""Statistics: pure reductions of tensors to a few numbers, with TensorFlow ops only.

Everything here runs inside a compiled function (the probe of `keras_initx.capture`, or fit's own
training step): no NumPy, no state, no host transfer; tensors have static shapes. On CPU the op
count and the memory passes over big tensors, not the arithmetic, set the cost, and every op also
costs trace and graph optimization time. So each tensor is read in full only by a few independent
one-pass reductions (sum, `l2_loss` for the sum of squares, min, max; per unit min and max for
`frac_dead_units`, from which the tensor's min and max follow; a saturation count for bounded
activations) plus one cheap strided sample (`strided_sample`); all results are stacked into vectors
and every statistic in `STATS` is a vectorized function of those, so the graph holds about ten ops
per tensor plus a few dozen in total (964 ops for the 75 tensors of a 10-layer MLP's probe, from
2165 in a version with per-tensor fractions). Constants (axes, shapes, sample indices) are shared,
and only what the requested statistics read is computed (`mean` and `std` alone cost the sum and
the sum of squares).

Exact and estimated:
- exact: `mean`, `std`, `rms`, `min`, `max`, `nan_count`, `inf_count`, `frac_saturated` (a few
  more passes over the bounded activations only), `frac_dead_units`;
- estimated from the sample, exact for tensors of at most `max_histogram_values` (4096) values:
  `frac_zero`, the histograms (counts scaled to the finite count) and the percentiles `p1`, `p50`,
  `p99`. The sample takes 4096 values in at least 64 groups of contiguous values along the last
  axis, from evenly spaced rows, every unit included. A fraction p then has a standard error of
  sqrt(p (1 - p) / m), m the effective number of independent values: 4096 when values do not depend
  on their neighbours along the last axis (0.0078 at most), down to the number of groups in the
  worst case of groups of identical values (0.0625 at most). Percentiles are read off the
  histogram: their error is below one bin width plus the sampling error of a sample quantile,
  sqrt(q (1 - q) / m) / density.

Faults are data. Statistics are computed on the finite values only, so a single NaN does not
poison `mean` or `std`; `nan_count` and `inf_count` count the rest exactly, and `min`/`max` are
those of the finite values (NaN when there are none). The sums run in float32 for ordinary
tensors; when a sum comes out non-finite (a NaN or Inf, or finite values beyond 1.8e19 whose
squares overflow float32) one `tf.cond` branch recomputes mean and variance of the finite
values of all tensors in float64, two-pass, so values up to float32's 3.4e38 give a finite,
exact `std` (as numpy's float64 one). Where E[x^2] - E[x]^2 cancels (variance below 1e-3
mean^2: mean 1000, std 0.01) a second branch recomputes the variance two-pass. `std` is the
population standard deviation (ddof=0), as `numpy.std`. A unit is dead when all its values are
0; one holding a NaN is broken, not dead.

Binning (histograms and percentiles): `bins` (default `DEFAULT_BINS`) equal bins over the
tensor's finite [min, max]; values on the top edge go to the last bin. A constant tensor c has no
width, so it is binned over [c - h, c + h], h = max(|c|, 1) / 2, clipped to the float32 range
(`histogram_range`): TensorBoard's c +- 0.5 for |c| <= 1, +-50% beyond, where c +- 0.5 would
round to c; all its values land in the middle bin, at c. Bin indices are computed in float64,
so ranges wider than float32 (-3e38 to 3e38) and tiny widths bin correctly. Only the finite
values are counted: a tensor without any (all NaN) has zero counts and a NaN range.
Percentiles interpolate inside a bin and are clipped to [min, max] (a constant's are the
constant).
"""

from __future__ import annotations

import functools
import itertools
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
MAX_HISTOGRAM_VALUES = 4096  # sample size: p1/p99 within ~0.2 percentile point
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
    """`size` values of `x` in evenly spread groups, flattened; all values of an `x` that
    small, padded with NaN to `size`.

    A group is a run of contiguous values along the last axis (all of it when it has at most
    `size / 64` values, else an equal part of it), so that at least 64 groups spread over the
    tensor: one memory read per group, not per value (a gather of single values cost as much
    as a full pass over the tensor). The groups are taken from evenly spaced rows (all axes
    but the last) and cycle through the parts of the last axis, so that every unit (column,
    channel) is sampled; the last group is cut at `size` values. A vector is one row of
    single values.
    """
    plan = _sample_plan(x.shape, size)
    if plan is None:
        return _nan_padded(tf.reshape(x, [-1]), size)
    shape, taken = plan
    return tf.reshape(tf.gather(tf.reshape(x, shape), taken), [-1])[:size]


def _sample_plan(shape: tf.TensorShape, size: int) -> tuple[tuple[int, int], list[int]] | None:
    """`((groups, width), taken)`: `strided_sample` views a tensor of `shape` as `groups`
    groups of `width` values and takes the groups in `taken`; None to take all values."""
    n = shape.num_elements()
    if n <= size:
        return None
    last = shape[-1] if shape.rank > 1 else 1
    width = max(d for d in range(1, min(last, max(size // 64, 1)) + 1) if last % d == 0)
    parts, rows = last // width, n // last  # groups per row, rows
    count = -(-size // width)  # at most parts * rows = n / width, since n > size
    # Group i: row i * rows // count, part i mod parts. A row gets at most
    # ceil(count / rows) <= parts consecutive i, so no group is taken twice.
    return (rows * parts, width), [i * rows // count * parts + i % parts for i in range(count)]


def _nan_padded(flat: tf.Tensor, size: int) -> tf.Tensor:
    missing = size - flat.shape[0]
    return tf.pad(flat, [[0, missing]], constant_values=_NAN) if missing else flat


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
    # Clipped to [0, bins - 1] first, the cast's truncation is the floor.
    index = tf.cast(tf.clip_by_value(scaled, 0.0, bins - 1.0), tf.int32)
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


def _count(mask: tf.Tensor, axis: int | None = None) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(mask, tf.float32), axis)


class _Segments:
    """All tensors' values in one vector with each value's tensor index, for the rare branch
    (NaN/Inf, or finite values whose squares overflow float32).

    Built inside that branch only: the copy costs one memory pass when the branch runs, and the
    branch's graph holds a few segment ops in total instead of a few ops per tensor (per-tensor
    branches made a 50-layer probe's trace and first run take tens of seconds). The indices are
    sorted, so the sorted segment ops apply (5x faster on CPU than the unsorted ones), and
    `searchsorted` on the static segment ends builds them (`tf.repeat` took 0.3 s for 7.6M
    values).
    """

    def __init__(self, tensors: Sequence[tf.Tensor], dtype: tf.DType) -> None:
        sizes = [t.shape.num_elements() for t in tensors]
        self.n = len(tensors)
        flat = tf.constant([-1])
        self.values = tf.cast(tf.concat([tf.reshape(t, flat) for t in tensors], 0), dtype)
        ends = tf.constant(list(itertools.accumulate(sizes)), tf.int32)
        self.ids = tf.searchsorted(ends, tf.range(sum(sizes)), side="right")
        # Segment ops give one value per index up to the largest present one: trailing empty
        # tensors have none.
        self._missing = self.n - max((i + 1 for i, size in enumerate(sizes) if size), default=0)

    def _padded(self, per_segment: tf.Tensor) -> tf.Tensor:
        return tf.pad(per_segment, [[0, self._missing]]) if self._missing else per_segment

    def sum(self, values: tf.Tensor) -> tf.Tensor:
        return self._padded(tf.math.segment_sum(values, self.ids))

    def count(self, mask: tf.Tensor) -> tf.Tensor:
        return self.sum(tf.cast(mask, self.values.dtype))

    def min(self, values: tf.Tensor) -> tf.Tensor:
        return self._padded(tf.math.segment_min(values, self.ids))

    def max(self, values: tf.Tensor) -> tf.Tensor:
        return self._padded(tf.math.segment_max(values, self.ids))


# Which statistics read what: the moment pass reads only what the requested ones need.
_NEEDS_VARIANCE = frozenset({"std", "rms"})
_NEEDS_RANGE = frozenset({"min", "max", *(f"p{q:g}" for q in PERCENTILES)})


class Reductions:
    """The shared reductions of a list of tensors, as `[n]` vectors, computed on first use.

    Statistics in `STATS` are functions of a `Reductions`. Each tensor is read in full by a
    few one-pass reductions (sum, `l2_loss` for the sum of squares, min, max; per-unit min and
    max for `frac_dead_units`; the saturation count of a bounded activation); the histograms,
    the percentiles and `frac_zero` work on one strided sample per tensor (`strided_sample`).

    Args:
        tensors: float tensors of any static shapes (cast to float32).
        bins: histogram bins.
        bounds: per tensor, the `(low, high)` range of a bounded activation (tanh: (-1, 1))
            for `frac_saturated`, or None where saturation does not apply.
        saturation_threshold: a value is saturated beyond `threshold` of the way to a bound:
            tanh |a| > 0.99, sigmoid outside [0.01, 0.99] for the default 0.99.
        units: per tensor, whether its last axis holds units (an activation), for
            `frac_dead_units`.
        max_histogram_values: sample size for the histograms, percentiles and `frac_zero`.
        stats: the names of `STATS` that will be asked for (default all), and "histograms"
            if the histograms will be: the moments then skip what none of them reads (the sum
            of squares without `std`/`rms`, min and max without a range).
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
        stats: Sequence[str] | None = None,
    ) -> None:
        self.tensors = [tf.cast(t, tf.float32) for t in tensors]
        for i, t in enumerate(self.tensors):
            if not t.shape.is_fully_defined():
                # Sizes, sample indices and segment ends are constants of the graph.
                raise ValueError(
                    f"Invalid value for argument `tensors`. Received: tensors[{i}] of shape "
                    f"{t.shape}. Expected tensors of static shapes: trace the function with "
                    "a fixed batch size."
                )
        self.bins = bins
        self.bounds = list(bounds) if bounds is not None else [None] * len(self.tensors)
        self.saturation_threshold = saturation_threshold
        self.units = list(units) if units is not None else [False] * len(self.tensors)
        self.max_histogram_values = max_histogram_values
        wanted = set(STAT_NAMES if stats is None else stats)
        self._needs_variance = bool(wanted & _NEEDS_VARIANCE)
        self._needs_range = bool(wanted & (_NEEDS_RANGE | {"histograms"}))
        self._needs_units = "frac_dead_units" in wanted
        # Static shapes: one constant, not a size op and a cast per tensor.
        self.size = tf.constant([float(t.shape.num_elements()) for t in self.tensors])
        # Constants shared by all tensors: a reduction's axes, a reshape's shape and a
        # gather's indices were one constant op per tensor, half the graph. Made here, outside
        # the `tf.cond` branches, where every later use can see them.
        # All but the last axis of rank r are all axes of rank r - 1.
        ranks = {t.shape.rank for t in self.tensors}
        ranks |= {r - 1 for r in ranks if r > 1} | {1}
        self._axes = {r: tf.constant(list(range(r)), tf.int32) for r in ranks}
        self._flat = tf.constant([-1])
        self._zero = tf.constant(0)
        self._origin = tf.constant([0])

    @functools.cached_property
    def _unit_range(self) -> list[tuple[tf.Tensor, tf.Tensor] | None]:
        """Per tensor with units, the min and max of each unit (`[units]` each), else None.

        NaN where the unit holds a NaN (TensorFlow's min and max propagate NaN), so a unit
        that produced NaN is broken, not dead. The tensor's own min and max follow from these
        at no further pass.
        """
        ranges = []
        for t, units in zip(self.tensors, self.units, strict=True):
            if not units:
                ranges.append(None)
                continue
            if t.shape.rank <= 1:  # a vector (or scalar) is one unit
                t = tf.reshape(t, [-1, 1])
            axes = self._axes[t.shape.rank - 1]  # all but the last axis
            ranges.append((tf.reduce_min(t, axes), tf.reduce_max(t, axes)))
        return ranges

    def _all_axes(self, t: tf.Tensor) -> tf.Tensor:
        return self._axes[t.shape.rank]

    @functools.cached_property
    def _moments(self) -> dict[str, tf.Tensor]:
        """`count`, `nan_count`, `mean` (and `variance`, `min`, `max` when needed), each `[n]`,
        over the finite values.

        `mean` and `variance` are float64: the variance of finite float32 values reaches 1e77.
        """
        total = tf.stack([tf.reduce_sum(t, self._all_axes(t)) for t in self.tensors])
        finite = tf.math.is_finite(total)
        if self._needs_variance:
            total_sq = 2.0 * tf.stack([tf.nn.l2_loss(t) for t in self.tensors])
            finite &= tf.math.is_finite(total_sq)
        if self._needs_range:
            # Where the units' min and max are computed anyway, the tensor's follow from them.
            units = self._unit_range if self._needs_units else [None] * len(self.tensors)
            low, high = [], []
            for t, columns in zip(self.tensors, units, strict=True):
                if columns is None:
                    low.append(tf.reduce_min(t, self._all_axes(t)))
                    high.append(tf.reduce_max(t, self._all_axes(t)))
                else:
                    low.append(tf.reduce_min(columns[0], self._axes[1]))
                    high.append(tf.reduce_max(columns[1], self._axes[1]))
            low, high = tf.stack(low), tf.stack(high)

        def finite_moments():
            mean = total / self.size
            moments = {"count": self.size, "nan_count": tf.zeros_like(total)}
            if self._needs_variance:
                variance = total_sq / self.size - tf.square(mean)
                cancelled = (variance <= _CANCELLATION_RATIO * tf.square(mean)) & (mean != 0.0)
                # A finite sum of squares bounds every centered square: no float32 overflow.
                moments["variance"] = tf.cast(
                    tf.cond(
                        tf.reduce_any(cancelled),
                        lambda: self._centered_squares(mean) / self.size,
                        lambda: variance,
                    ),
                    tf.float64,
                )
            if self._needs_range:
                moments.update(min=low, max=high)
            moments["mean"] = tf.cast(mean, tf.float64)
            return moments

        # NaN or Inf anywhere makes a sum non-finite, and so do finite values whose squares
        # exceed float32 (|x| > 1.8e19): the masked branch is exact either way.
        return tf.cond(tf.reduce_all(finite), finite_moments, self._masked_moments)

    def _centered_squares(self, mean: tf.Tensor) -> tf.Tensor:
        """Per tensor, the sum of (x - mean)^2: the second pass of a two-pass variance, for
        when E[x^2] - E[x]^2 cancels (mean 1000, std 0.01)."""
        means = tf.unstack(mean)
        return 2.0 * tf.stack(
            [tf.nn.l2_loss(t - m) for t, m in zip(self.tensors, means, strict=True)]
        )

    def _masked_moments(self) -> dict[str, tf.Tensor]:
        """`_moments` of the finite values, in float64: their sums and squares can exceed
        float32's range, not float64's ((3.4e38)^2 = 1.2e77)."""
        segments = _Segments(self.tensors, tf.float64)
        finite = tf.math.is_finite(segments.values)
        count = segments.count(finite)
        # Non-finite values become 0 here and are masked out of the centered squares below.
        values = tf.where(finite, segments.values, 0.0)
        mean = segments.sum(values) / count
        moments = {
            "count": tf.cast(count, tf.float32),
            "nan_count": tf.cast(segments.count(tf.math.is_nan(segments.values)), tf.float32),
            "mean": mean,
        }
        if self._needs_variance:
            centered = tf.where(finite, segments.values - tf.gather(mean, segments.ids), 0.0)
            moments["variance"] = segments.sum(tf.square(centered)) / count
        if self._needs_range:
            empty = count == 0
            low = tf.cast(segments.min(tf.where(finite, segments.values, math.inf)), tf.float32)
            high = tf.cast(segments.max(tf.where(finite, segments.values, -math.inf)), tf.float32)
            moments["min"] = tf.where(empty, _NAN, low)
            moments["max"] = tf.where(empty, _NAN, high)
        return moments

    @property
    def count(self) -> tf.Tensor:
        """Number of finite values per tensor."""
        return self._moments["count"]

    @property
    def nan_count(self) -> tf.Tensor:
        return self._moments["nan_count"]

    @property
    def mean(self) -> tf.Tensor:
        return self._moments["mean"]

    @property
    def variance(self) -> tf.Tensor:
        return tf.maximum(self._moments["variance"], 0.0)

    @property
    def min(self) -> tf.Tensor:
        return self._moments["min"]

    @property
    def max(self) -> tf.Tensor:
        return self._moments["max"]

    @functools.cached_property
    def _range(self) -> tuple[tf.Tensor, tf.Tensor]:
        """`(lo, hi)`, `[n]` each: [min, max], widened for constant tensors (`histogram_range`)."""
        return histogram_range(self.min, self.max)

    @functools.cached_property
    def samples(self) -> tf.Tensor:
        """`[n, max_histogram_values]`: the strided sample of each tensor (`strided_sample`),
        all its values for a tensor that small."""
        size = self.max_histogram_values
        samples, constants, cut = [], {}, tf.constant([size])
        for t in self.tensors:
            plan = _sample_plan(t.shape, size)
            if plan is None:
                samples.append(_nan_padded(tf.reshape(t, self._flat), size))
                continue
            # Tensors of one shape share the shape and indices: one constant each for all.
            key = tuple(t.shape)
            if key not in constants:
                constants[key] = tuple(tf.constant(c) for c in plan)
            shape, taken = constants[key]
            sample = tf.reshape(tf.gather(tf.reshape(t, shape), taken, axis=self._zero), self._flat)
            if sample.shape[0] > size:  # the last group cut
                sample = tf.slice(sample, self._origin, cut)
            samples.append(sample)
        return tf.stack(samples)

    @functools.cached_property
    def _sample_count(self) -> tf.Tensor:
        """Number of finite values in each tensor's sample."""
        return _count(tf.math.is_finite(self.samples), axis=1)

    @functools.cached_property
    def histograms(self) -> tf.Tensor:
        """`[n, bins]` counts over the histogram range of each tensor, scaled to its finite
        count."""
        counts = histograms(self.samples, *self._range, self.bins)
        return counts * tf.math.divide_no_nan(self.count, self._sample_count)[:, None]

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

    def frac_zero(self) -> tf.Tensor:
        """Of the finite values, the fraction that are 0, estimated on the sample."""
        return _count(tf.equal(self.samples, 0.0), axis=1) / self._sample_count

    def frac_saturated(self) -> tf.Tensor:
        """Of the finite values, the fraction beyond `saturation_threshold` of the way to a
        bound (exact: read in full, a few bounded activations in a probe); NaN for tensors
        without bounds."""
        rows = [i for i, bounds in enumerate(self.bounds) if bounds is not None]
        if not rows:
            return tf.fill([len(self.tensors)], _NAN)
        counts = []
        for i in rows:
            t, (low, high) = self.tensors[i], self.bounds[i]
            margin = (1.0 - self.saturation_threshold) * max(abs(low), abs(high))
            if low == -high:  # one comparison instead of two and an `or`
                counts.append(_count(tf.abs(t) > high - margin))
            else:
                counts.append(_count((t < low + margin) | (t > high - margin)))
        return self._spread(tf.stack(counts) / tf.gather(self.count, rows), rows)

    def frac_dead_units(self) -> tf.Tensor:
        """Per tensor with units, the fraction of units that are 0 on every value (exact)."""
        rows = [i for i, r in enumerate(self._unit_range) if r is not None]
        if not rows:
            return tf.fill([len(self.tensors)], _NAN)
        ranges = [self._unit_range[i] for i in rows]
        low, high = tf.concat([r[0] for r in ranges], 0), tf.concat([r[1] for r in ranges], 0)
        units = [r[0].shape[0] for r in ranges]
        ids = tf.constant([i for i, u in enumerate(units) for _ in range(u)], tf.int32)
        dead = tf.math.segment_sum(tf.cast((low == 0.0) & (high == 0.0), tf.float32), ids)
        return self._spread(dead / tf.constant(units, tf.float32), rows)

    def _spread(self, values: tf.Tensor, rows: Sequence[int]) -> tf.Tensor:
        """`[n]`: `values` at `rows`, NaN elsewhere."""
        where = {row: k for k, row in enumerate(rows)}
        index = [where.get(i, len(rows)) for i in range(len(self.tensors))]
        return tf.gather(tf.concat([values, [_NAN]], 0), index)


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
        tensors: float tensors of any static shapes.
        stats: names from `STAT_NAMES`, in the order wanted; only what they read is computed.
            Exact or estimated: see the module docstring.
        bins: histogram bins (percentiles and `with_histograms`).
        bounds: per tensor, bounded-activation range for `frac_saturated` (see `Reductions`).
        saturation_threshold: see `Reductions`.
        units: per tensor, whether the last axis holds units, for `frac_dead_units`.
        with_histograms: also return `[n, bins + 2]` = `[lo, hi, counts...]` per tensor: the
            histogram range (min and max, widened for a constant: `histogram_range`) and the
            counts of `bins` equal bins over it.
        max_histogram_values: sample size for the histograms, percentiles and `frac_zero`
            (`strided_sample`).

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
        stats=[*stats, "histograms"] if with_histograms else stats,
    )
    values = tf.stack([tf.cast(STATS[name](r), tf.float32) for name in stats], axis=1)
    if not with_histograms:
        return values, None
    lo, hi = r._range
    return values, tf.concat([lo[:, None], hi[:, None], r.histograms], axis=1)
