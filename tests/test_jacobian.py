"""Tests for keras_initx.jacobian: the input-output Jacobian spectrum and the mean-field view."""

import math

import keras
import numpy as np
import pytest

from keras_initx import OrthogonalGain, calculate_gain
from keras_initx.jacobian import jacobian_spectrum, mean_field


def _mlp(depth, width, init, activation="tanh", seed=0, input_dim=None):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((input_dim or width,))]
    for i in range(depth):
        layers.append(
            keras.layers.Dense(
                width, activation=activation, use_bias=False, kernel_initializer=init,
                name=f"dense_{i + 1}",
            )
        )  # fmt: skip
    return keras.Sequential(layers)


def _inputs(n, d, scale=1.0, seed=0):
    return (scale * np.random.default_rng(seed).standard_normal((n, d))).astype("float32")


def test_linear_layer_spectrum_is_the_kernel_svd_exact_and_power():
    model = _mlp(1, 24, "glorot_normal", activation="linear", input_dim=40)
    x = _inputs(3, 40)
    expected = np.linalg.svd(np.asarray(model.layers[0].kernel, np.float64), compute_uv=False)
    exact = jacobian_spectrum(model, x, method="exact")
    assert exact.method == "exact" and exact.singular_values.shape == (3, 24)
    np.testing.assert_allclose(exact.singular_values, np.tile(expected, (3, 1)), rtol=1e-5)
    assert exact.mean_squared == pytest.approx(np.mean(expected**2), rel=1e-5)
    assert exact.max == pytest.approx(expected[0], rel=1e-5)
    assert exact.spread == pytest.approx(expected[0] / np.median(expected), rel=1e-5)

    power = jacobian_spectrum(model, x, method="power", top_k=4, iterations=60)
    assert power.method == "power" and power.singular_values.shape == (3, 4)
    np.testing.assert_allclose(power.singular_values, np.tile(expected[:4], (3, 1)), rtol=1e-4)
    assert math.isnan(power.median) and math.isnan(power.spread)
    # Hutchinson's trace estimate from 3 x (4 + 8 oversampled) Gaussian probes: per probe the
    # relative standard deviation is sqrt(2 sum s^4) / sum s^2; allow 4 standard errors.
    relative_se = math.sqrt(2 * np.sum(expected**4)) / np.sum(expected**2) / math.sqrt(36)
    assert power.mean_squared == pytest.approx(np.mean(expected**2), rel=4 * relative_se)


def test_power_iteration_matches_exact_top_values_of_a_tanh_net():
    model = _mlp(6, 48, "glorot_normal")
    x = _inputs(3, 48, scale=0.5)
    exact = jacobian_spectrum(model, x, method="exact").singular_values
    power = jacobian_spectrum(model, x, method="power", top_k=4, iterations=40).singular_values
    np.testing.assert_allclose(power, exact[:, :4], rtol=1e-3)


def test_conv_inputs_are_flattened_per_example():
    # A 1x1 convolution applies its (in, out) kernel at every pixel: J is block diagonal, so its
    # singular values are the kernel's, each repeated once per pixel.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3, 2, 4)), keras.layers.Conv2D(5, 1, use_bias=False)])
    spectrum = jacobian_spectrum(model, _inputs(2, 24).reshape(2, 3, 2, 4))
    assert (spectrum.input_dim, spectrum.output_dim) == (24, 30)
    kernel = np.asarray(model.layers[0].kernel, np.float64)[0, 0]
    expected = np.repeat(np.linalg.svd(kernel, compute_uv=False), 6)
    np.testing.assert_allclose(spectrum.singular_values, np.tile(expected, (2, 1)), rtol=1e-5)


def test_auto_switches_to_power_above_max_entries():
    model = _mlp(2, 16, "glorot_normal")
    x = _inputs(2, 16)
    assert jacobian_spectrum(model, x).method == "exact"  # 2 x 16 x 16 = 512 entries
    assert jacobian_spectrum(model, x, max_entries=511, top_k=3, iterations=3).method == "power"


def test_orthogonal_tanh_is_isometric_while_glorot_spreads_with_depth():
    # Pennington, Schoenholz & Ganguli 2017 (Fig. 1/4): tanh without bias at criticality
    # (sigma_w^2 = 1) near its linear regime (input std 0.1, q ~ 0.01). Both inits have the same
    # mean squared singular value (chi_1 ~ 1 per layer), but Gaussian (Glorot: variance 1/n for
    # square layers) products spread over decades as depth grows, orthogonal ones stay near 1.
    width = 128
    x = _inputs(8, width, scale=0.1)
    spectra = {
        (name, depth): jacobian_spectrum(_mlp(depth, width, init), x)
        for depth in (4, 32)
        for name, init in (("orthogonal", OrthogonalGain(1.0)), ("glorot", "glorot_normal"))
    }
    orthogonal, glorot = spectra["orthogonal", 32], spectra["glorot", 32]
    # Measured (seed 0): orthogonal spread 1.02 -> 1.13, max 0.90, median 0.80; Glorot spread
    # 11 -> 5.6e5, max 6.2. Stated bounds leave a wide margin on both sides.
    assert orthogonal.spread < 1.3
    assert 0.6 < orthogonal.median <= orthogonal.max < 1.0
    assert glorot.spread > 1000 * orthogonal.spread
    assert glorot.spread > 100 * spectra["glorot", 4].spread
    assert spectra["orthogonal", 4].spread < 1.1
    assert glorot.max > 4 * orthogonal.max
    assert glorot.mean_squared == pytest.approx(orthogonal.mean_squared, rel=0.1)


def test_mean_field_fixed_points_and_chi():
    relu = mean_field("relu")
    assert relu.weight_variance == pytest.approx(2.0, abs=1e-9)  # He et al. 2015
    assert relu.chi1 == pytest.approx(1.0, abs=1e-6)  # critical for every q
    tanh = mean_field(np.tanh)
    # q* = 1 without bias is the second-moment gain squared
    assert tanh.weight_variance == pytest.approx(calculate_gain(np.tanh) ** 2, rel=1e-12)
    assert tanh.chi1 > 1  # tanh at q* = 1 is chaotic (Poole et al. 2016, Fig. 2)
    with_bias = mean_field("tanh", bias_variance=0.05, q_star=0.5)
    settled = mean_field("tanh", with_bias.weight_variance, bias_variance=0.05)
    assert settled.q_star == pytest.approx(0.5, rel=1e-6)
    assert settled.chi1 == pytest.approx(with_bias.chi1, rel=1e-6)
    # sigma_w^2 = 1 without bias: q* -> 0 (slowly), chi_1 -> tanh'(0)^2 = 1
    assert mean_field("tanh", 1.0).chi1 == pytest.approx(1.0, abs=0.01)


def test_one_layer_jacobian_matches_chi1():
    # One Gaussian tanh layer fed at its fixed point: E[s^2] = sigma_w^2 E[tanh'(h)^2] = chi_1,
    # averaged here over 8 x 512 singular values: a few-percent check.
    width, weight_variance = 512, 1.5
    field = mean_field("tanh", weight_variance)
    init = keras.initializers.RandomNormal(stddev=math.sqrt(weight_variance / width), seed=1)
    model = _mlp(1, width, init)
    x = _inputs(8, width, scale=math.sqrt(field.q_star / weight_variance))
    assert jacobian_spectrum(model, x).mean_squared == pytest.approx(field.chi1, rel=0.03)


def test_output_layer_range_histogram_and_frame():
    model = _mlp(3, 12, "glorot_normal", input_dim=20)
    x = _inputs(4, 20)
    first = jacobian_spectrum(model, x, output="dense_1")
    assert first.output_dim == 12 and first.input_dim == 20
    frame = first.to_frame()
    assert list(frame.columns) == ["example", "rank", "singular_value"]
    assert len(frame) == 4 * 12
    histogram = first.histogram(bins=10)
    assert histogram["count"].sum() == 4 * 12
    assert histogram["bin_left"].iloc[0] == pytest.approx(frame["singular_value"].min())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "svd"}, ValueError, r"method='svd'\. Expected one of \['auto', 'exact'"),
        ({"output": "nope"}, ValueError, r"output='nope'\. Expected one of the model's layer"),
        ({"top_k": 0}, ValueError, r"top_k"),
    ],
)
def test_jacobian_spectrum_errors(kwargs, error, match):
    model = _mlp(1, 4, "glorot_normal")
    with pytest.raises(error, match=match):
        jacobian_spectrum(model, _inputs(2, 4), **kwargs)


def test_jacobian_spectrum_rejects_integer_inputs():
    model = _mlp(1, 4, "glorot_normal")
    with pytest.raises(ValueError, match=r"x of dtype int64\. Expected float inputs"):
        jacobian_spectrum(model, np.ones((2, 4), dtype="int64"))
