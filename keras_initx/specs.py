"""The initializer spec language: names, `name(keyword=literal, ...)` strings, instances, configs.

What `depth_sweep`, `compare_training` and the `keras-initx sweep --init` option accept:

- a name: Keras' built-ins (`"glorot_uniform"`) and keras_initx's (`"lecun_1_over_sqrt_d"`);
- a spec string with keyword arguments, read as literals, never evaluated as code:
  `"random_normal(stddev=0.01)"`;
- the data-driven `"lsuv"` / `"lsuv(target_std=1.0, ...)"`: build with `glorot_uniform`, then run
  `keras_initx.lsuv` on the experiment's own inputs (`seeded_model`);
- a Keras config dict, an `Initializer` instance or a callable `(shape, dtype=None)`;
- a dict label -> any of those.

The seed's three initializations need no code:

- `0.01 * randn`: `random_normal(stddev=0.01)`
- `1.0 * randn`: `random_normal(stddev=1.0)`
- `randn / sqrt(fan_in)`:
  `variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')`
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from keras_initx.initializers import list_initializers
from keras_initx.unit_variance import lsuv
from keras_initx.validation import check_one_of

__all__ = [
    "InitializerLike",
    "as_layer_argument",
    "check_activation",
    "initializer_for_layer",
    "known_activations",
    "known_initializers",
    "parse_initializer",
    "resolve_initializers",
    "seeded_model",
]

InitializerLike = str | Mapping[str, Any] | keras.initializers.Initializer | Callable[..., Any]

_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_>.]*)\s*(?:\((?P<args>.*)\))?\s*$", re.S)

_KERAS_HELPERS = frozenset({"get", "serialize", "deserialize"})

# Spec name of the data-driven entry: build with `_LSUV_BASE`, then `keras_initx.lsuv` on the data.
_LSUV = "lsuv"
_LSUV_BASE = "glorot_uniform"


def known_initializers() -> list[str]:
    """Sorted snake-case names accepted in spec strings: Keras' built-ins, keras_initx's, and
    `lsuv` (a data-driven entry, see `seeded_model`)."""
    builtins = {
        name for name in dir(keras.initializers) if name[0].islower() and name not in _KERAS_HELPERS
    }
    return sorted(builtins | set(list_initializers(data_driven=False)) | {_LSUV})


def known_activations() -> list[str]:
    """Sorted Keras activation names that `depth_sweep` accepts."""
    return sorted(
        name
        for name in dir(keras.activations)
        if not name.startswith("_") and name not in _KERAS_HELPERS
    )


def parse_initializer(spec: str) -> keras.initializers.Initializer:
    """A fresh initializer from a name or a spec string `name(keyword=literal, ...)`.

    Keyword values are read with `ast.literal_eval` (numbers, strings, tuples, None, True/False),
    never evaluated as code.

    Args:
        spec: e.g. `"glorot_uniform"`, `"random_normal(stddev=0.01)"`,
            `"variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')"`,
            `"orthogonal_gain(gain='tanh')"`.

    Returns:
        A new initializer instance (unseeded unless the spec passes `seed=`).

    Raises:
        ValueError: malformed spec, positional or non-literal arguments, an unknown name (the
            message lists the known ones) or arguments the initializer does not take.

    Example:
        >>> parse_initializer("random_normal(stddev=0.01)").stddev
        0.01
    """
    if not isinstance(spec, str):
        raise TypeError(
            "Invalid type for argument `spec`. "
            f"Received: spec={spec!r} of type {type(spec).__name__}. Expected a string."
        )
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(_spec_error(spec, "Expected `name` or `name(keyword=value, ...)`."))
    name = match["name"]
    kwargs = _parse_kwargs(spec, match["args"] or "")
    cls = _initializer_class(name)
    if cls is None:
        known = ", ".join(known_initializers())
        unknown = f"Unknown initializer {name!r}; known: {known}."
        raise ValueError(_spec_error(spec, unknown))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        rejected = f"{cls.__name__} rejected the arguments: {error}"
        raise ValueError(_spec_error(spec, rejected)) from None


def resolve_initializers(
    initializers: InitializerLike | Sequence[InitializerLike] | Mapping[str, InitializerLike],
) -> dict[str, InitializerLike]:
    """Label each initializer and check that it resolves, before any model is built.

    Args:
        initializers: one initializer, a sequence of them, or a dict label -> initializer. Each is
            a name or spec string (`parse_initializer`), a Keras config dict, an `Initializer`
            instance or a callable `(shape, dtype=None) -> tensor`. The spec `"lsuv"` or
            `"lsuv(target_std=1.0, tol=0.1, ...)"` (keyword arguments of `keras_initx.lsuv`)
            is data-driven: the model is built with `glorot_uniform`, then LSUV runs on the
            experiment's own inputs (orthogonal re-draw and per-layer rescaling).

    Returns:
        A dict label -> initializer, in the given order. A string is its own label, an instance
        is labelled `ClassName(arg=value, ...)` from its config (seed left out).

    Raises:
        ValueError: an unknown name or bad arguments (see `parse_initializer`), no initializers,
            or two initializers with the same label.
    """
    if isinstance(initializers, Mapping) and not _is_config(initializers):
        items = list(initializers.items())
    elif isinstance(initializers, (str, keras.initializers.Initializer)) or _is_config(
        initializers
    ):
        items = [(_label(initializers), initializers)]
    elif isinstance(initializers, Sequence):
        items = [(_label(init), init) for init in initializers]
    else:
        raise TypeError(
            "Invalid type for argument `initializers`. "
            f"Received: initializers of type {type(initializers).__name__}. Expected a name, an "
            "initializer, a list of them or a dict label -> initializer."
        )
    if not items:
        raise ValueError(
            "Invalid value for argument `initializers`. Received: an empty collection. "
            "Expected at least one initializer."
        )
    resolved: dict[str, InitializerLike] = {}
    for label, init in items:
        if not isinstance(label, str):
            raise TypeError(
                "Invalid type for argument `initializers`. "
                f"Received: a label {label!r} of type {type(label).__name__}. Expected str labels."
            )
        if label in resolved:
            raise ValueError(
                "Invalid value for argument `initializers`. "
                f"Received: the label {label!r} twice. Expected unique labels: pass a dict "
                "label -> initializer."
            )
        if _lsuv_arguments(init) is None:
            # Fail now on a bad spec, not after building models.
            initializer_for_layer(init, layer_index=0)
        resolved[label] = init
    return resolved


def initializer_for_layer(init: InitializerLike, layer_index: int) -> Any:
    """A fresh initializer for one layer.

    Keras' random initializers return the same values on every call when seeded with an int or
    unseeded (the default seed is drawn once, at construction), so sharing one instance across
    layers would give every layer the same kernel. Each layer therefore gets its own instance; an
    explicit int seed is offset by the layer index, a `SeedGenerator` is shared (it advances).
    """
    if isinstance(init, str):
        return parse_initializer(init)
    if _is_config(init):
        try:
            init = keras.initializers.get(dict(init))
        except (TypeError, ValueError) as error:
            raise ValueError(
                "Invalid value for argument `initializers`. "
                f"Received: {dict(init)!r}. Expected a Keras initializer config: {error}"
            ) from None
    if isinstance(init, keras.initializers.Initializer):
        seed = getattr(init, "seed", None)
        if isinstance(seed, keras.random.SeedGenerator):
            return init
        config = init.get_config()
        if isinstance(config.get("seed"), int):
            config["seed"] += layer_index
        return type(init).from_config(config)
    if callable(init):
        return init
    raise TypeError(
        "Invalid type for argument `initializers`. "
        f"Received: {init!r} of type {type(init).__name__}. Expected a name or spec string, a "
        "config dict, a keras.initializers.Initializer or a callable (shape, dtype=None)."
    )


def as_layer_argument(init: InitializerLike) -> Any:
    """What a `Dense(kernel_initializer=...)` accepts and re-instantiates per layer: a config
    (a plain callable is passed as it is)."""
    instance = initializer_for_layer(init, layer_index=0)
    if isinstance(instance, keras.initializers.Initializer):
        return keras.initializers.serialize(instance)
    return instance


def seeded_model(
    init: InitializerLike, build: Callable[[InitializerLike], keras.Model], x: Any, seed: int
) -> keras.Model:
    """`build(init)` after `keras.utils.set_random_seed(seed)`, so the weights do not depend on
    what was built before; an `lsuv(...)` spec builds with `glorot_uniform`, then runs
    `keras_initx.lsuv` on the batch `x` (seeded by `seed` unless the spec gives one).

    Args:
        init: one entry of `resolve_initializers`.
        build: `build(initializer) -> keras.Model`, a built model.
        x: the data batch LSUV measures on (unused for other entries).
        seed: the random seed.

    Returns:
        The model, weights drawn (and rescaled for LSUV).
    """
    keras.utils.set_random_seed(seed)
    lsuv_kwargs = _lsuv_arguments(init)
    model = build(init if lsuv_kwargs is None else _LSUV_BASE)
    if lsuv_kwargs is not None:
        lsuv(model, x, **{"seed": seed, **lsuv_kwargs})
    return model


def _label(init: InitializerLike) -> str:
    if isinstance(init, str):
        return init.strip()
    if _is_config(init):
        return str(init["class_name"])
    if isinstance(init, keras.initializers.Initializer):
        config = {k: v for k, v in init.get_config().items() if k != "seed"}
        arguments = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(init).__name__}({arguments})"
    return getattr(init, "__name__", type(init).__name__)


def _initializer_class(name: str) -> type | None:
    """The class behind a Keras built-in name (`random_normal`, `RandomNormal`) or a registered
    custom name (`lecun_1_over_sqrt_d`), found without instantiating it: Keras' own
    `initializers.get("constant")` fails (its `from_config` requires `value`)."""
    builtin = getattr(keras.initializers, name, None)
    for candidate in (builtin, keras.saving.get_custom_objects().get(name)):
        if isinstance(candidate, type) and issubclass(candidate, keras.initializers.Initializer):
            return candidate
    return None


def _lsuv_arguments(init: InitializerLike) -> dict[str, Any] | None:
    """Keyword arguments for `keras_initx.lsuv` when `init` is an `lsuv(...)` spec, else None."""
    if not isinstance(init, str):
        return None
    match = _SPEC.match(init)
    if match is None or match["name"] != _LSUV:
        return None
    kwargs = _parse_kwargs(init, match["args"] or "")
    try:
        inspect.signature(lsuv).bind(None, None, **kwargs)
    except TypeError as error:
        raise ValueError(_spec_error(init, f"lsuv rejected the arguments: {error}")) from None
    return kwargs


def _is_config(value: object) -> bool:
    return isinstance(value, Mapping) and "class_name" in value


def _parse_kwargs(spec: str, args: str) -> dict[str, Any]:
    if not args.strip():
        return {}
    try:
        call = ast.parse(f"f({args})", mode="eval").body
    except SyntaxError:
        raise ValueError(_spec_error(spec, "Its arguments are not valid Python syntax.")) from None
    if not isinstance(call, ast.Call) or call.args:
        raise ValueError(_spec_error(spec, "Arguments must be given as keyword=value."))
    kwargs = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ValueError(_spec_error(spec, "`**` is not allowed; use keyword=value."))
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ValueError(
                _spec_error(
                    spec,
                    f"The value of {keyword.arg!r} must be a literal (number, string, tuple, "
                    "None, True, False).",
                )
            ) from None
    return kwargs


def _spec_error(spec: str, expected: str) -> str:
    return f"Invalid value for argument `initializers`. Received: {spec!r}. {expected}"


def check_activation(activation: str) -> None:
    """Raise a `ValueError` naming `activation` unless it is a Keras activation name."""
    check_one_of("activation", activation, known_activations())
