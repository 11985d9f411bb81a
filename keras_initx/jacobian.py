"""The input-output Jacobian spectrum at initialization (dynamical isometry), and its mean field.

Pennington, Schoenholz & Ganguli ("Resurrecting the sigmoid in deep learning through dynamical
isometry", NeurIPS 2017) showed that what makes a deep network trainable at initialization is
the whole distribution of the singular values of J = d(output)/d(input), not only its mean: with
Gaussian weights at criticality the mean squared singular value stays 1 while the spread grows
with depth, whereas orthogonal weights on tanh near its linear regime keep every singular value
near 1 (dynamical isometry).

- `jacobian_spectrum(model, x)`: the singular values of J per example, exactly from
  `tf.GradientTape.batch_jacobian` where the Jacobians fit in memory, else the largest `top_k`
  by block power iteration with Jacobian-vector products (forward mode) and vector-Jacobian
  products (reverse mode), and the mean squared singular value by Hutchinson's trace estimator.
- `mean_field(activation, ...)`: the variance map of Poole et al. 2016, its fixed point q* and
  the slope chi_1 = sigma_w^2 E[f'(sqrt(q*) z)^2]: the mean squared singular value per layer of
  a wide Gaussian network, so a depth-L network's is about chi_1^L.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from keras_initx.gains import gaussian_expectation
from keras_initx.validation import check_int, check_number

__all__ = ["JacobianSpectrum", "MeanField", "jacobian_spectrum", "mean_field"]

_METHODS = ("auto", "exact", "power")
_MAX_ENTRIES = 2**24  # floats of all examples' Jacobians together (64 MB) for method="auto"
_OVERSAMPLING = 8  # extra power-iteration directions beyond top_k


@dataclasses.dataclass(frozen=True)
class JacobianSpectrum:
    """What `jacobian_spectrum` returns.

    Attributes:
        singular_values: float64 `[examples, k]`, each row descending: all min(input, output)
            singular values with `method="exact"`, the largest `k` with `"power"`.
        method: `"exact"` or `"power"`.
        input_dim: size of one flattened input example.
        output_dim: size of one flattened output example.
        mean_squared: mean squared singular value, tr(J^T J) / min(input_dim, output_dim),
            averaged over examples (Hutchinson's estimate with `"power"`). 1 is the isometric
            value, chi_1^depth in mean-field theory.
        max: the largest singular value over all examples.
        median: the median over all examples' singular values (NaN with `"power"`: the bulk is
            not computed).
        spread: `max / median` (NaN with `"power"`); 1 is perfect isometry.
    """

    singular_values: np.ndarray
    method: str
    input_dim: int
    output_dim: int
    mean_squared: float
    max: float
    median: float
    spread: float

    def summary(self) -> dict[str, Any]:
        """The scalar fields, for a table row."""
        return {
            "method": self.method,
            "examples": len(self.singular_values),
            "mean_squared": self.mean_squared,
            "max": self.max,
            "median": self.median,
            "spread": self.spread,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per (example, singular value): `example`, `rank` (0 = largest), `singular_value`.

        The frame `keras_initx.plots.plot_jacobian_spectrum` draws.
        """
        n, k = self.singular_values.shape
        return pd.DataFrame(
            {
                "example": np.repeat(np.arange(n), k),
                "rank": np.tile(np.arange(k), n),
                "singular_value": self.singular_values.ravel(),
            }
        )

    def histogram(self, bins: int = 40) -> pd.DataFrame:
        """Counts of the singular values in `bins` log-spaced bins between their min and max.

        Returns:
            Columns `bin_left`, `bin_right`, `count`.
        """
        check_int("bins", bins, 1)
        values = self.singular_values.ravel()
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            return pd.DataFrame({"bin_left": [], "bin_right": [], "count": []})
        low, high = values.min(), values.max()
        edges = np.geomspace(low, high if high > low else low * 1.001, bins + 1)
        counts, _ = np.histogram(values, edges)
        return pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:], "count": counts})


def jacobian_spectrum(
    model: keras.Model,
    x: Any,
    *,
    output: str | None = None,
    method: str = "auto",
    top_k: int = 16,
    iterations: int = 20,
    max_entries: int = _MAX_ENTRIES,
    seed: int = 0,
) -> JacobianSpectrum:
    """Singular values of the input-output Jacobian d(output)/d(input), one Jacobian per example.

    The model runs in inference mode (dropout off, BatchNormalization on its moving statistics),
    so each example's output depends on that example only.

    Args:
        model: a built Keras model with one float input and one output (or `output`).
        x: a batch of inputs, `[examples, ...]`; each example's Jacobian is taken at its point.
        output: name of a layer whose output is used instead of the model's (a layer range
            from the input to that layer; Sequential and Functional models).
        method: `"exact"` (`batch_jacobian` and a full SVD), `"power"` (the largest `top_k`
            singular values by block power iteration with forward- and reverse-mode products,
            never forming J), or `"auto"`: exact when examples x output_dim x input_dim is at
            most `max_entries`.
        top_k: singular values per example with `"power"`.
        iterations: power iterations with `"power"` (each one forward-mode and one reverse-mode
            pass over `examples x (top_k + 8)` rows: 8 extra directions speed up the k-th
            value); convergence is fast for the top values, slower where neighbouring singular
            values are close.
        max_entries: the `"auto"` threshold (default 2**24 floats, 64 MB).
        seed: the random start vectors of `"power"`.

    Returns:
        A `JacobianSpectrum`.

    Raises:
        ValueError: an unknown method or layer, a non-float input, several inputs or outputs.

    Example:
        >>> spectrum = jacobian_spectrum(model, x[:16])
        >>> spectrum.mean_squared, spectrum.spread
    Reference: Pennington, Schoenholz & Ganguli, "Resurrecting the sigmoid in deep learning
        through dynamical isometry: theory and practice", NeurIPS 2017.
    """
    if method not in _METHODS:
        raise ValueError(
            f"Invalid value for argument `method`. Received: method={method!r}. "
            f"Expected one of {sorted(_METHODS)}."
        )
    check_int("top_k", top_k, 1)
    check_int("iterations", iterations, 1)
    check_int("max_entries", max_entries, 1)
    function = _as_function(model, output)
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise ValueError(
            f"Invalid value for argument `x`. Received: x of dtype {x.dtype.name}. Expected "
            "float inputs: the Jacobian is taken with respect to them."
        )
    if x.shape.rank is None or x.shape.rank < 2 or x.shape[0] == 0:
        raise ValueError(
            f"Invalid value for argument `x`. Received: x of shape {tuple(x.shape)}. Expected "
            "a non-empty batch `[examples, ...]`."
        )
    examples = int(x.shape[0])
    input_dim = math.prod(x.shape[1:])
    output_dim = math.prod(function(x[:1]).shape[1:])
    if method == "auto":
        method = "exact" if examples * input_dim * output_dim <= max_entries else "power"
    if method == "exact":
        singular_values = _exact(function, x)
        values = singular_values.ravel()
        median = float(np.median(values))
        largest = float(values.max())
        return JacobianSpectrum(
            singular_values=singular_values,
            method="exact",
            input_dim=input_dim,
            output_dim=output_dim,
            mean_squared=float(np.mean(np.square(values))),
            max=largest,
            median=median,
            spread=largest / median if median > 0 else math.inf,
        )
    k = min(top_k, input_dim, output_dim)
    # Oversampling: iterating a few more directions than reported makes the k-th value converge
    # at the rate of its gap to the (k + 8)-th instead of to the (k + 1)-th.
    block = min(k + _OVERSAMPLING, input_dim, output_dim)
    singular_values, trace = _power(function, x, block, iterations, seed)
    return JacobianSpectrum(
        singular_values=singular_values[:, :k],
        method="power",
        input_dim=input_dim,
        output_dim=output_dim,
        mean_squared=trace / min(input_dim, output_dim),
        max=float(singular_values.max()),
        median=math.nan,
        spread=math.nan,
    )


def _as_function(model: keras.Model, output: str | None) -> Callable[[tf.Tensor], tf.Tensor]:
    if not isinstance(model, keras.Model) or not model.built:
        raise ValueError(
            f"Invalid value for argument `model`. Received: {model!r}. Expected a built Keras "
            "model."
        )
    if output is not None:
        names = [layer.name for layer in model.layers]
        if output not in names:
            raise ValueError(
                f"Invalid value for argument `output`. Received: output={output!r}. Expected "
                f"one of the model's layer names {sorted(names)}."
            )
        model = keras.Model(model.inputs, model.get_layer(output).output)

    def function(x: tf.Tensor) -> tf.Tensor:
        y = model(x, training=False)
        if isinstance(y, (list, tuple, dict)):
            raise ValueError(
                "Invalid value for argument `model`. Received: a model with several outputs. "
                "Expected one output: pass `output=` a layer name."
            )
        return tf.reshape(y, (tf.shape(y)[0], -1))

    return function


def _exact(function: Callable, x: tf.Tensor) -> np.ndarray:
    # Eager: batch_jacobian vectorizes (pfor) on its own, and a tf.function per call would only
    # add tracing (measured: as fast for a 32-layer MLP).
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    jacobian = tape.batch_jacobian(y, x)  # [examples, output_dim, *input_shape]
    jacobian = tf.reshape(jacobian, (x.shape[0], y.shape[1], -1))
    return tf.linalg.svd(tf.cast(jacobian, tf.float64), compute_uv=False).numpy()


def _power(
    function: Callable, x: tf.Tensor, k: int, iterations: int, seed: int
) -> tuple[np.ndarray, float]:
    """Top-k singular values per example by block power iteration on J^T J, plus tr(J^T J).

    The k probe directions of every example ride along the batch: the input is repeated k times
    ([examples * k, ...]), so one forward-mode pass gives J v for every (example, direction) and
    one reverse-mode pass gives J^T u. The directions are re-orthonormalized per example (QR)
    after each pass; the last J V gives the Rayleigh-Ritz singular values.
    """
    n = int(x.shape[0])
    shape = tuple(x.shape[1:])
    d = math.prod(shape)
    repeated = tf.repeat(x, k, axis=0)

    @tf.function(autograph=False)
    def jvp_vjp(directions):
        tangents = tf.reshape(tf.cast(directions, x.dtype), (n * k, *shape))
        with tf.GradientTape() as tape:
            tape.watch(repeated)
            with tf.autodiff.ForwardAccumulator(repeated, tangents) as accumulator:
                y = function(repeated)
            jv = accumulator.jvp(y)
            contracted = tf.reduce_sum(tf.stop_gradient(jv) * y)
        jtjv = tape.gradient(contracted, repeated)
        return (
            tf.reshape(tf.cast(jv, tf.float64), (n, k, -1)),
            tf.reshape(tf.cast(jtjv, tf.float64), (n, k, d)),
        )

    start = np.random.default_rng(seed).standard_normal((n, k, d))
    jv, jtjv = jvp_vjp(tf.constant(start))
    # Hutchinson: E |J g|^2 = tr(J^T J) for g ~ N(0, I), averaged over every probe.
    trace = float(tf.reduce_mean(tf.reduce_sum(tf.square(jv), axis=-1)))
    for _ in range(iterations):
        q, _ = tf.linalg.qr(tf.transpose(jtjv, (0, 2, 1)))  # [n, d, k], orthonormal columns
        jv, jtjv = jvp_vjp(tf.transpose(q, (0, 2, 1)))
    q, _ = tf.linalg.qr(tf.transpose(jtjv, (0, 2, 1)))
    jv, _ = jvp_vjp(tf.transpose(q, (0, 2, 1)))
    return tf.linalg.svd(jv, compute_uv=False).numpy(), trace


@dataclasses.dataclass(frozen=True)
class MeanField:
    """What `mean_field` returns (Poole et al. 2016; Schoenholz et al. 2017).

    Attributes:
        weight_variance: sigma_w^2, the variance of each weight times fan_in.
        bias_variance: sigma_b^2.
        q_star: the fixed point of the variance map q -> sigma_w^2 E[f(sqrt(q) z)^2] + sigma_b^2
            (the pre-activation second moment a deep network settles at).
        chi1: sigma_w^2 E[f'(sqrt(q*) z)^2], the mean squared singular value of one layer's
            Jacobian at the fixed point: < 1 ordered (gradients vanish), > 1 chaotic
            (explode), 1 critical.
    """

    weight_variance: float
    bias_variance: float
    q_star: float
    chi1: float


def mean_field(
    activation: str | Callable,
    weight_variance: float | None = None,
    *,
    bias_variance: float = 0.0,
    q_star: float = 1.0,
    iterations: int = 500,
) -> MeanField:
    """The mean-field fixed point of a deep fully connected network with this activation.

    Two questions, one function:
    - `weight_variance=None`: which sigma_w^2 makes `q_star` the fixed point? Solved in closed
      form, sigma_w^2 = (q* - sigma_b^2) / E[f(sqrt(q*) z)^2]; with q* = 1 and no bias that is
      `calculate_gain(f) ** 2`, the second-moment gain.
    - a given `weight_variance`: where does the variance map settle? Iterated from q = 1 (it
      converges for the monotone, bounded-slope activations in use; 0 for tanh at sigma_w <= 1
      without bias, where the settling is slow, ~1/depth).

    Expectations use Gauss-Hermite quadrature (`keras_initx.gains.gaussian_expectation`) and
    f' a central difference, so any element-wise float callable works.

    Args:
        activation: a Keras activation name (`keras.activations.get`) or an element-wise
            callable.
        weight_variance: sigma_w^2 (> 0), or None to solve for it.
        bias_variance: sigma_b^2 (>= 0).
        q_star: the fixed point to solve for when `weight_variance` is None (> bias_variance).
        iterations: variance-map iterations when `weight_variance` is given.

    Returns:
        A `MeanField`.

    Example:
        >>> field = mean_field("relu")   # He et al.'s 2, critical
        >>> round(field.weight_variance, 9), round(field.chi1, 9)
        (2.0, 1.0)
    Reference: Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli, "Exponential expressivity in deep
        neural networks through transient chaos", NeurIPS 2016; Schoenholz, Gilmer, Ganguli &
        Sohl-Dickstein, "Deep information propagation", ICLR 2017.
    """
    f = keras.activations.get(activation) if isinstance(activation, str) else activation
    if not callable(f):
        raise TypeError(
            "Invalid type for argument `activation`. "
            f"Received: activation={activation!r}. Expected a name or an element-wise callable."
        )
    check_number("bias_variance", bias_variance, low=0.0)
    check_int("iterations", iterations, 1)

    def second_moment(q: float) -> float:
        return gaussian_expectation(lambda z: np.square(_numpy(f, z)), variance=q)

    if weight_variance is None:
        check_number("q_star", q_star, low=bias_variance, low_inclusive=False)
        q = float(q_star)
        weight_variance = (q - bias_variance) / second_moment(q)
    else:
        check_number("weight_variance", weight_variance, low=0.0, low_inclusive=False)
        q = 1.0
        for _ in range(iterations):
            q = weight_variance * second_moment(q) + bias_variance
    # Central-difference step eps^(1/3) of the dtype f computes in (Keras layers cast to float32):
    # it balances truncation (h^2) against rounding (eps / h), ~1e-10 in float64, ~1e-5 in float32.
    h = float(np.finfo(np.asarray(f(np.zeros(2))).dtype).eps) ** (1 / 3)

    def squared_slope(z: np.ndarray) -> np.ndarray:
        return np.square((_numpy(f, z + h) - _numpy(f, z - h)) / (2 * h))

    chi1 = weight_variance * gaussian_expectation(squared_slope, variance=q)
    return MeanField(float(weight_variance), float(bias_variance), float(q), float(chi1))


def _numpy(f: Callable, z: np.ndarray) -> np.ndarray:
    return np.asarray(f(z), dtype=np.float64)
