"""Tests for the package's public face: lazy names, no module shadowed by a function."""

import importlib
import inspect
import pkgutil

import keras_initx


def test_every_public_name_resolves():
    for name in keras_initx.__all__:
        assert getattr(keras_initx, name) is not None, name
    assert set(keras_initx.__all__) <= set(dir(keras_initx))


def test_no_module_is_shadowed_by_a_function():
    # A public function named like a module would be rebound by importing that module (the
    # import system sets the package attribute), so `keras_initx.<name>` would depend on import
    # order. (`diagnose` passes once its module is `keras_initx.diagnosis`.)
    modules = {info.name for info in pkgutil.iter_modules(keras_initx.__path__)}
    public_modules = {"experiments", "plots"}
    assert not modules & (set(keras_initx.__all__) - public_modules)
    for name in public_modules:
        assert getattr(keras_initx, name) is importlib.import_module(f"keras_initx.{name}")
    unit_variance = importlib.import_module("keras_initx.unit_variance")
    assert inspect.ismodule(unit_variance) and keras_initx.lsuv is unit_variance.lsuv
