import math
import re

import numpy as np
import pytest

from keras_initx.validation import (
    check_float_dtype,
    check_int,
    check_kernel_shape,
    check_model_input,
    check_number,
    check_one_of,
    input_mismatch,
)


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


def test_check_one_of_lists_the_allowed_names():
    assert check_one_of("activation", "tanh", ["relu", "tanh"]) is None
    message = "Received: activation='tahn'. Expected one of: relu, tanh."
    with pytest.raises(ValueError, match=re.escape(message)):
        check_one_of("activation", "tahn", ["relu", "tanh"])
    with pytest.raises(ValueError, match="activation=None"):
        check_one_of("activation", None, ["relu"])


def test_input_mismatch_for_one_list_and_dict_inputs():
    import keras

    a, b = keras.Input((3,), name="a"), keras.Input((2, None), name="b")
    single = keras.Model(a, keras.layers.Dense(1)(a))
    assert input_mismatch(single, np.zeros((5, 3))) is None
    assert input_mismatch(single, np.zeros((5, 4))) == ((5, 4), (None, 3))
    double = keras.Model([a, b], [a, b])
    assert input_mismatch(double, [np.zeros((5, 3)), np.zeros((5, 2, 7))]) is None
    assert input_mismatch(double, {"a": np.zeros((5, 3)), "b": np.zeros((5, 3, 7))}) == (
        [(5, 3), (5, 3, 7)],
        [(None, 3), (None, 2, None)],
    )


def test_check_model_input_builds_and_checks():
    import keras

    model = keras.Sequential([keras.layers.Dense(2)])
    x = check_model_input(model, [[1.0, 2.0, 3.0]], "x_batch")
    assert x.dtype == np.float32 and model.built
    with pytest.raises(ValueError, match=r"x_batch with shape \(1, 4\)\. Expected shape"):
        check_model_input(model, np.ones((1, 4)), "x_batch")
    with pytest.raises(ValueError, match="x_batch with 1 NaN/Inf values"):
        check_model_input(model, [[1.0, np.nan, 3.0]], "x_batch")
    with pytest.raises(TypeError, match="model of type Dense"):
        check_model_input(keras.layers.Dense(2), np.ones((1, 3)))


def test_check_kernel_shape_and_float_dtype():
    assert check_kernel_shape([3, 3, 4, 8], 3) == (3, 3, 4, 8)
    with pytest.raises(ValueError, match=r"shape=\(5,\) of rank 1\. Expected a kernel shape"):
        check_kernel_shape((5,))
    assert check_float_dtype("float16") == "float16"
    with pytest.raises(ValueError, match="dtype='int32'. Expected a floating-point dtype"):
        check_float_dtype("int32")


def test_validation_imports_no_keras():
    # The pure-pandas modules (diagnose, tables) use it: Keras is imported inside the checks
    # that need it only.
    import ast
    from pathlib import Path

    import keras_initx.validation as validation

    tree = ast.parse(Path(validation.__file__).read_text())
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in top_level for a in n.names} | {
        n.module for n in top_level if isinstance(n, ast.ImportFrom)
    }
    assert "keras" not in names and "tensorflow" not in names
