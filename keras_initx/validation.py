"""Checks for the backend and for int and number arguments, shared by every keras_initx module
(one place each).

Pure Python at the bottom of the package: it imports nothing from keras_initx, so any module
(initializers included) can use it. Both checks raise as soon as they are called, with the
message form "Invalid value for argument `x`. Received: x=... . Expected ...".
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["check_backend", "check_bool", "check_int", "check_number"]


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
