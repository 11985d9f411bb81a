"""Argument checks shared by every keras_initx module (one place each).

Numbers, ints, bools and choices (`check_int`, `check_number`, `check_bool`, `check_one_of`,
`check_names`); layer filters (`check_layer_filters`);
kernel shapes and dtypes for the initializers (`check_kernel_shape`, `check_float_dtype`); the
backend (`check_backend`); a data batch against a model's inputs (`input_mismatch`,
`check_model_input`). Each raises as soon as it is called, with the message form "Invalid value
for argument `x`. Received: x=... . Expected ...".

At the bottom of the package: it imports nothing from keras_initx, and Keras only inside the
checks that need it, so the pure-pandas modules (`diagnose`, `tables`) use it without loading
TensorFlow.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

__all__ = [
    "check_backend",
    "check_bool",
    "check_float_dtype",
    "check_int",
    "check_kernel_shape",
    "check_layer_filters",
    "check_model_input",
    "check_names",
    "check_number",
    "check_one_of",
    "input_mismatch",
]


def check_int(argument: str, value: object, minimum: int) -> None:
    """Check that `value` is an int (Python or numpy, not bool) of at least `minimum`.

    Args:
        argument: the argument's name, quoted in the message.
        value: what the caller received.
        minimum: the smallest value allowed.

    Raises:
        TypeError: `value` is not an integer, or is a bool.
        ValueError: `value < minimum`.

    Example:
        >>> check_int("depth", 0, 1)
        Traceback (most recent call last):
        ValueError: Invalid value for argument `depth`. Received: depth=0. Expected an int >= 1.
    """
    expected = f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(_type_message(argument, value, expected))
    if value < minimum:
        raise ValueError(_value_message(argument, value, expected))


def check_bool(argument: str, value: object) -> None:
    """Check that `value` is a bool (Python or numpy): a string such as "False" is truthy and
    would silently mean the opposite.

    Raises:
        TypeError: naming `argument` when `value` is not a bool.
    """
    if not isinstance(value, bool | np.bool_):
        raise TypeError(_type_message(argument, value, "True or False"))


def check_number(
    argument: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Check that `value` is a real number (Python or numpy, not bool) between `low` and `high`.

    NaN is always rejected. An infinite bound that is exclusive rejects that infinity, so
    `high=math.inf, high_inclusive=False` asks for a finite number.

    Args:
        argument: the argument's name, quoted in the message.
        value: what the caller received.
        low: the lower bound.
        high: the upper bound.
        low_inclusive: whether `value == low` is allowed.
        high_inclusive: whether `value == high` is allowed.

    Raises:
        TypeError: `value` is not a real number, or is a bool.
        ValueError: `value` is NaN or outside the bounds.

    Example:
        >>> check_number("p", 1.0, low=0, high=1, high_inclusive=False)
        Traceback (most recent call last):
        ValueError: Invalid value for argument `p`. Received: p=1.0. Expected a number in [0, 1).
    """
    expected = _describe_range(low, high, low_inclusive, high_inclusive)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(_type_message(argument, value, expected))
    too_low = value < low or (value == low and not low_inclusive)
    too_high = value > high or (value == high and not high_inclusive)
    if math.isnan(value) or too_low or too_high:
        raise ValueError(_value_message(argument, value, expected))


def check_one_of(argument: str, value: object, allowed: Sequence[str]) -> None:
    """Check that `value` is one of the names `allowed` (a typo lists them all).

    Raises:
        ValueError: naming `argument`, when `value` is not in `allowed`.
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(_value_message(argument, value, f"one of: {', '.join(allowed)}"))


def check_kernel_shape(
    shape: Sequence[int],
    min_rank: int = 2,
    kind: str = "kernel",
    layout: str = "(fan_in, units) or (*kernel_size, in_channels, filters)",
) -> tuple[int, ...]:
    """Return `shape` as a tuple of ints, or raise a `ValueError` when its rank is below
    `min_rank`.

    Initializers that reason about a unit's incoming weights need Keras' kernel layout
    `(..., in, out)`, i.e. rank >= 2; convolution-only ones ask for more. `kind` and `layout`
    say, in the message, which shape was expected.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < min_rank:
        raise ValueError(
            "Invalid value for argument `shape`. "
            f"Received: shape={shape} of rank {len(shape)}. "
            f"Expected a {kind} shape of rank >= {min_rank}: {layout}."
        )
    return shape


def check_float_dtype(dtype: object) -> str:
    """Standardize `dtype` (`None` means `keras.config.floatx()`) and reject non-float dtypes.

    Raises:
        ValueError: naming `dtype` when it is unknown or not a floating-point dtype; an integer
            kernel drawn from a continuous distribution would silently round to zeros.
    """
    import keras

    try:
        standard = keras.backend.standardize_dtype(dtype)
    except (ValueError, TypeError):
        standard = None
    if standard is None or not keras.backend.is_float_dtype(standard):
        raise ValueError(
            "Invalid value for argument `dtype`. "
            f"Received: dtype={dtype!r}. "
            "Expected a floating-point dtype: one of bfloat16, float16, float32, float64."
        )
    return standard


def input_mismatch(model: keras.Model, x: Any) -> tuple[Any, Any] | None:
    """`(received, expected)` shapes when batch `x` does not fit the model's declared inputs.

    `x` is one array, a list/tuple of arrays, or a dict keyed by input name (its keys must already
    be the input names). A `None` dimension of an input accepts any size. Single-input shapes
    are tuples, several inputs give lists of tuples.

    Returns:
        None when `x` fits, or when the model declares no inputs yet (a subclassed model never
        called: its first call will tell).
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    expected = [tuple(i.shape) for i in inputs]
    if isinstance(x, dict):
        received = [_shape_of(x[i.name]) for i in inputs]
    else:
        received = [_shape_of(v) for v in (x if isinstance(x, list | tuple) else [x])]
    fits = len(received) == len(expected) and all(
        len(r) == len(e) and all(d is None or d == s for d, s in zip(e, r, strict=True))
        for r, e in zip(received, expected, strict=True)
    )
    if fits:
        return None
    return (
        received[0] if len(received) == 1 else received,
        expected[0] if len(expected) == 1 else expected,
    )


def check_model_input(model: keras.Model, x: Any, argument: str = "x") -> Any:
    """Check that batch `x` fits a single-input `model`, building an unbuilt model from it.

    Returns `x` as a float32 NumPy array for single-input models; inputs of multi-input models
    are returned unchanged (Keras checks them when the model runs).

    Raises:
        TypeError: `model` is not a `keras.Model`.
        ValueError: naming `argument`, when `x` is empty, not finite, or its shape does not fit
            the model's input.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            "Invalid type for argument `model`. "
            f"Received: model of type {type(model).__name__}. Expected a keras.Model."
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None  # a subclassed model declares no inputs
    if model.built and inputs is not None and len(inputs) != 1:
        return x
    x = np.asarray(x, dtype="float32")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Received: {argument} with shape "
            f"{x.shape}. Expected a non-empty batch, shape (n, features...)."
        )
    bad = int(np.size(x) - np.isfinite(x).sum())
    if bad:
        # NaN in would become NaN kernels: data-driven initializations need finite data.
        raise ValueError(
            f"Invalid value for argument `{argument}`. Received: {argument} with {bad} NaN/Inf "
            "values. Expected finite inputs."
        )
    if not model.built:
        model.build((None, *x.shape[1:]))
    mismatch = input_mismatch(model, x)
    if mismatch is not None:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Received: {argument} with shape "
            f"{x.shape}. Expected shape {mismatch[1]} (the model's input)."
        )
    return x


def _shape_of(value: Any) -> tuple:
    shape = getattr(value, "shape", None)  # NumPy arrays and tensors
    return tuple(shape) if shape is not None else tuple(np.shape(value))


def _describe_range(low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> str:
    if math.isfinite(low) and math.isfinite(high):
        opening, closing = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
        return f"a number in {opening}{low}, {high}{closing}"
    if math.isfinite(low):
        # The other bound is infinite: exclusive means "finite" (clearer than "< inf").
        return f"{_noun(high_inclusive)} {'>=' if low_inclusive else '>'} {low}"
    if math.isfinite(high):
        return f"{_noun(low_inclusive)} {'<=' if high_inclusive else '<'} {high}"
    if low_inclusive != high_inclusive:
        return f"a number {'<' if low_inclusive else '>'} {high if low_inclusive else low}"
    return _noun(low_inclusive)


def _noun(infinite_bound_inclusive: bool) -> str:
    return "a number" if infinite_bound_inclusive else "a finite number"


def _type_message(argument: str, value: object, expected: str) -> str:
    return (
        f"Invalid type for argument `{argument}`. Received: {argument}={value!r} of type "
        f"{type(value).__name__}. Expected {expected}."
    )


def _value_message(argument: str, value: object, expected: str) -> str:
    return (
        f"Invalid value for argument `{argument}`. Received: {argument}={value!r}. "
        f"Expected {expected}."
    )


def check_backend(what: str) -> None:
    """Raise when Keras does not run on TensorFlow, which `what` needs.

    The initializers work on every backend; measuring (the probe, LayerStats, LSUV) compiles
    `tf.function`s around the model and needs Keras' TensorFlow backend. Imports Keras lazily:
    this module stays importable without it.

    Raises:
        RuntimeError: naming the backend in use and what works on it.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} needs Keras' TensorFlow backend. Received: KERAS_BACKEND={backend!r}. "
            "Expected 'tensorflow' (set KERAS_BACKEND=tensorflow before importing keras). On "
            f"{backend!r}, keras_initx's initializers and calculate_gain work; LayerStats, "
            "build_probe, lsuv, pretrain_layerwise and the experiments do not."
        )


def check_names(
    argument: str, value: Sequence[str] | None, allowed: Sequence[str]
) -> tuple[str, ...]:
    """Check a list of names from `allowed` (None: all of them).

    Returns:
        The names as a tuple in the order of `allowed`.

    Raises:
        TypeError: `value` is a string or holds something else than strings.
        ValueError: unknown names, or none.
    """
    if value is None:
        return tuple(allowed)
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(
            f"Invalid type for argument `{argument}`. Received: {argument}={value!r}. "
            f"Expected a list of names from {sorted(allowed)}."
        )
    unknown = sorted(set(value) - set(allowed))
    if unknown or not value:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Received: {argument}={list(value)!r} "
            f"(unknown: {unknown}). Expected a non-empty list of names from {sorted(allowed)}."
        )
    return tuple(v for v in allowed if v in value)


def check_layer_filters(
    layers: str | None, layer_classes: Sequence[str | type] | None
) -> re.Pattern | None:
    """Validate the `layers` regular expression and the `layer_classes` list, early.

    Returns:
        The compiled `layers` pattern, or None.

    Raises:
        TypeError: `layers` not a string, `layer_classes` a string or holding something other
            than class names and classes.
        ValueError: `layers` is not a valid regular expression.
    """
    pattern = None
    if layers is not None:
        if not isinstance(layers, str):
            raise TypeError(
                f"Invalid type for argument `layers`. Received: layers={layers!r}. Expected a "
                "regular expression string on layer paths, e.g. 'dense', or None for all."
            )
        try:
            pattern = re.compile(layers)
        except re.error as error:
            raise ValueError(
                f"Invalid value for argument `layers`. Received: layers={layers!r}, not a "
                f"regular expression ({error}). Expected e.g. 'dense' or '^model/conv'."
            ) from error
    if layer_classes is not None and (
        isinstance(layer_classes, str)
        or not isinstance(layer_classes, Sequence)
        or not all(isinstance(c, str | type) for c in layer_classes)
    ):
        raise TypeError(
            "Invalid type for argument `layer_classes`. "
            f"Received: layer_classes={layer_classes!r}. Expected a list of class names or "
            "classes, e.g. ['Dense', 'Conv2D'] or [keras.layers.Dense]."
        )
    return pattern
