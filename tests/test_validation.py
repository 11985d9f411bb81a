import math
import re

import numpy as np
import pytest

from keras_initx.validation import check_int, check_number


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1), np.uint8(2)])
def test_check_int_accepts_python_and_numpy_ints(value):
    assert check_int("depth", value, 1) is None


def test_check_int_below_minimum_is_a_value_error():
    message = "Invalid value for argument `depth`. Received: depth=1. Expected an int >= 2."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_int("depth", 1, 2)
    with pytest.raises(ValueError, match=r"Received: bins=np\.int64\(0\)\. Expected an int >= 1"):
        check_int("bins", np.int64(0), 1)


@pytest.mark.parametrize(
    ("value", "received"),
    [
        (True, "True of type bool"),
        (np.True_, "np.True_ of type bool"),
        (2.0, "2.0 of type float"),
        ("3", "'3' of type str"),
        (None, "None of type NoneType"),
    ],
)
def test_check_int_rejects_non_ints_with_type_error(value, received):
    message = (
        f"Invalid type for argument `width`. Received: width={received}. Expected an int >= 1."
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        check_int("width", value, 1)


@pytest.mark.parametrize(
    ("kwargs", "accepted", "rejected", "expected"),
    [
        ({"low": 0.0, "high": 1.0}, [0.0, 0.5, 1.0, 0, 1], [-0.1, 1.1], "a number in [0.0, 1.0]"),
        ({"low": 0, "high": 1, "low_inclusive": False, "high_inclusive": False},
         [1e-9, 0.999], [0, 0.0, 1, 1.0], "a number in (0, 1)"),
        ({"low": 0, "high": 1, "high_inclusive": False}, [0, 0.5], [1, 1.0, -1e-9],
         "a number in [0, 1)"),
        ({"low": 1.0, "low_inclusive": False}, [1.5, math.inf], [1.0, 0.5, -math.inf],
         "a number > 1.0"),
        ({"low": 0}, [0, 2.5, math.inf], [-1, -math.inf], "a number >= 0"),
        ({"low": 0, "low_inclusive": False, "high_inclusive": False}, [1e-9, 1e300],
         [0, -1.0, math.inf], "a finite number > 0"),
        ({"high": 2}, [2, -math.inf], [2.5, math.inf], "a number <= 2"),
        ({"high": 2, "high_inclusive": False, "low_inclusive": False}, [1.5, -1e300],
         [2, -math.inf], "a finite number < 2"),
        ({}, [0, -math.inf, math.inf], [], "a number"),
        ({"low_inclusive": False, "high_inclusive": False}, [0, 1e300], [math.inf, -math.inf],
         "a finite number"),
        ({"high_inclusive": False}, [-math.inf, 1e300], [math.inf], "a number < inf"),
    ],
)  # fmt: skip
def test_check_number_bounds(kwargs, accepted, rejected, expected):
    for value in accepted:
        assert check_number("x", value, **kwargs) is None
    for value in rejected:
        message = f"Invalid value for argument `x`. Received: x={value!r}. Expected {expected}."
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check_number("x", value, **kwargs)


@pytest.mark.parametrize("value", [float("nan"), np.float32("nan")])
def test_check_number_rejects_nan_even_without_bounds(value):
    with pytest.raises(ValueError, match=r"Received: x=.*nan.*\. Expected a number\.$"):
        check_number("x", value)


@pytest.mark.parametrize("value", [np.float32(0.25), np.float64(0.25), np.int64(0), np.int8(1)])
def test_check_number_accepts_numpy_scalars(value):
    assert check_number("p", value, low=0, high=1) is None


def test_check_number_checks_numpy_scalars_against_the_bounds():
    message = "Received: p=np.float64(1.5). Expected a number in [0, 1]."
    with pytest.raises(ValueError, match=re.escape(message)):
        check_number("p", np.float64(1.5), low=0, high=1)


@pytest.mark.parametrize(
    ("value", "received"),
    [(False, "False of type bool"), ("0.5", "'0.5' of type str"), (None, "None of type NoneType"),
     (np.array(0.5), "array(0.5) of type ndarray"), (1j, "1j of type complex")],
)  # fmt: skip
def test_check_number_rejects_non_numbers_with_type_error(value, received):
    message = (
        "Invalid type for argument `threshold`. "
        f"Received: threshold={received}. Expected a number in [0, 1]."
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        check_number("threshold", value, low=0, high=1)
