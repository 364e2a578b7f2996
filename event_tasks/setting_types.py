"""What a setting's annotation in ``conf.Settings`` reads as, and which values it takes: the type
checks behind ``conf.coerce`` (a wrong type is :class:`~event_tasks.errors.InvalidSetting`), the
``E002`` system check and the generated ``docs/settings.md``."""

from __future__ import annotations

import types
import typing


def describe_type(annotation: object) -> str:
    """``int``, ``str or None``, ``list of str`` ...: a field's type as a host writes its setting."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        parts = [describe_type(a) for a in args]
        return ", ".join(parts[:-1]) + " or " + parts[-1]
    if annotation is type(None):
        return "None"
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    if origin is tuple:
        return f"list of {describe_type(args[0])}"
    if origin is dict:
        return f"dict of {describe_type(args[0])} to {describe_type(args[1])}"
    return getattr(annotation, "__name__", str(annotation))


def matches(value: object, annotation: object) -> bool:
    """Whether ``value`` is of the type ``annotation`` says (bool is no number; a list for a tuple)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        return any(matches(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation in (int, float):  # bool is not a number here; an int will do for a float
        return isinstance(value, int if annotation is int else (int, float)) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, (tuple, list)) and all(matches(v, args[0]) for v in value)  # a list in a dict
    if origin is dict:
        return isinstance(value, dict) and all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    return isinstance(value, annotation) if isinstance(annotation, type) else False
