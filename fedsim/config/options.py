"""Check a config option against the signature of its ``_target_``: known keys, values of the annotated type.

A group's option (``conf/GROUP/NAME.yaml``) states its settings and their defaults once,
in the YAML; the target's signature says which settings exist and of what type, and
the target's own ``__init__`` (or function body) checks the values. This module makes
the two agree before anything is built, with one sentence per mistake.
"""

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from fedsim.config.checks import ConfigError

TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def target_of(name: str, node: DictConfig) -> Any:
    """The object ``node._target_`` names; ConfigError when there is none or it cannot be imported."""
    path = node.get("_target_") if isinstance(node, DictConfig) else None
    if not path:
        raise ConfigError(f"{name} has no _target_: every option names the class or function that builds it.")
    try:
        return get_object(path)
    except Exception as error:  # pylint: disable=broad-exception-caught
        raise ConfigError(f"{name}._target_={path} cannot be imported ({type(error).__name__}: {error}).") from error


def check_option(name: str, node: DictConfig, runtime: Sequence[str] = ()) -> None:
    """Check that every setting of ``node`` is a parameter of its target, with a value of the annotated type.

    ``runtime`` names the parameters fedsim passes at the call site (``input_shape``
    for a model, say): a config must not set them.
    """
    target = target_of(name, node)
    hints, takes_any = settings_of(target)
    settable = sorted(k for k, annotation in hints.items() if k not in runtime and expressible(annotation))
    for key in node:
        if key.startswith("_") and key.endswith("_"):
            continue
        if key in runtime:
            raise ConfigError(f"{name}.{key} is set by fedsim at run time; remove it from the config.")
        if key in hints and not expressible(hints[key]):
            raise ConfigError(f"{name}.{key} takes a Python object ({describe(hints[key])}), which a config cannot give.")
        if key not in hints and not takes_any:
            raise ConfigError(
                f"{name}.{key} is not a setting of {node._target_}; its settings are: {', '.join(settable) or 'none'}."
            )
        annotation = hints.get(key, Any)
        value = OmegaConf.to_container(node[key], resolve=True) if OmegaConf.is_config(node[key]) else node[key]
        if not conforms(value, annotation):
            raise ConfigError(f"{name}.{key} must be {describe(annotation)} (got {value!r}).")


def settings_of(target: Any) -> tuple[dict[str, Any], bool]:
    """The keyword parameters ``target`` accepts, with their annotations, and whether it takes any keyword.

    A class whose ``__init__`` passes ``**kwargs`` on to its base (a Flower strategy's
    ``**fedavg_args``) accepts the base's parameters too, so the classes of its MRO are
    read until one takes no ``**kwargs``.
    """
    functions = [target]
    if inspect.isclass(target):
        functions = [vars(cls)["__init__"] for cls in target.__mro__ if "__init__" in vars(cls) and cls is not object]
    found: dict[str, Any] = {}
    for function in functions:
        parameters = inspect.signature(function).parameters
        hints = _type_hints(function)
        for key, parameter in parameters.items():
            if key != "self" and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                found.setdefault(key, hints.get(key, Any))
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return found, False
    return found, True


def _type_hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # pylint: disable=broad-exception-caught
        return {}  # annotations that cannot be resolved are not checked


def conforms(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (plain Python, as OmegaConf gives it) fits the type ``annotation``."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, member) for member in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return not args or all(conforms(item, args[0]) for item in value)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return isinstance(value, dict)
    return True  # a type the config cannot express (a callable, a class): the target checks it


def expressible(annotation: Any) -> bool:
    """Whether a config value (null, a number, a string, a boolean, a list or a mapping of them) can be of this type."""
    if annotation is Any or annotation is inspect.Parameter.empty or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return all(expressible(member) for member in typing.get_args(annotation))
    if annotation in TYPE_NAMES or annotation in (list, tuple, dict, Mapping):
        return True
    if origin in (list, tuple, Sequence, typing.Sequence, dict, Mapping):
        return all(expressible(a) for a in typing.get_args(annotation) if a is not Ellipsis)
    return False


def describe(annotation: Any) -> str:
    """A type annotation in words: ``float | None`` -> ``a number or null``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(member) for member in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if annotation in TYPE_NAMES:
        return TYPE_NAMES[annotation]
    if origin in (list, tuple, Sequence, typing.Sequence):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin is dict or annotation is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))
