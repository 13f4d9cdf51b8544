"""One description of a settings dataclass, read by the command line and by JSON bodies alike.

Each field carries its help text, flag, argument group and choices in its metadata
(``option(...)``). ``add_arguments`` turns those fields into argparse options whose defaults are
``None``, so that "not given" stays visible (``--resume`` keeps the saved value then);
``from_mapping`` builds the dataclass from a plain dict such as a JSON body, with an error naming
the field for an unknown field, a missing one or a value of the wrong type. Range checks stay in
each dataclass's ``__post_init__``, whose messages name the field too, so the same text serves
both doors.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.core.errors import InvalidInput

_KEY = "setting"


@dataclass(frozen=True)
class Setting:
    """How a field appears on the command line."""

    help: str
    """Help text; ``{default}`` is replaced by the field's default (floats as ``%g``)."""
    group: str | None = None
    """Title of the argument group; ``None``: the parser's own options."""
    flag: str | None = None
    """Flag name without dashes; default: the field name with ``-`` for ``_``."""
    choices: tuple[Any, ...] | None = None
    """Allowed values; default: those of a ``Literal`` type."""
    parse: Callable[[str], Any] | None = None
    """Turns the flag's text into the value; default: from the field's type."""


def option(**kwargs: Any) -> dict[str, Setting]:
    """Field metadata that shows the field on the command line as ``Setting(**kwargs)`` says:
    ``field(default=4, metadata=option(help="rows per step (default {default})"))``."""
    return {_KEY: Setting(**kwargs)}


def flag_of(field: dataclasses.Field[Any]) -> str:
    """The field's flag name, without dashes."""
    described = field.metadata.get(_KEY)
    return (described and described.flag) or field.name.replace("_", "-")


def group_of(field: dataclasses.Field[Any]) -> str | None:
    """Title of the argument group the field's option is in (``None``: the parser's own)."""
    described: Setting = field.metadata[_KEY]
    return described.group


def cli_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """Fields of ``cls`` that have a command-line setting, in declaration order."""
    return [f for f in dataclasses.fields(cls) if _KEY in f.metadata]


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    fields: Iterable[dataclasses.Field[Any]],
    groups: dict[str, Any],
) -> None:
    """Add an option for each of ``fields`` of ``cls``; ``groups`` holds the argument groups
    made so far by title, and gains those made here."""
    hints = typing.get_type_hints(cls)
    for field in fields:
        described: Setting = field.metadata[_KEY]
        target: Any = parser
        if described.group is not None:
            if described.group not in groups:
                groups[described.group] = parser.add_argument_group(described.group)
            target = groups[described.group]
        kind = without_none(hints[field.name])
        options: dict[str, Any] = {"help": described.help.format(default=_shown(field.default))}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            choices = described.choices or _literal_values(kind)
            if choices:
                options["choices"] = choices
            else:
                options["metavar"] = flag_of(field).upper().replace("-", "_")
            parse = described.parse or (kind if kind in (int, float) else None)
            if parse is not None:
                options["type"] = parse
        target.add_argument(f"--{flag_of(field)}", dest=field.name, **options)


def given(args: argparse.Namespace, fields: Iterable[dataclasses.Field[Any]]) -> dict[str, Any]:
    """The options among ``fields`` that the user actually passed, by field name."""
    return {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name) is not None}


def from_mapping(cls: type, values: Mapping[str, Any], *, prefix: str = "") -> Any:
    """``cls(**values)`` from plain data (JSON types; lists for tuples, objects for nested
    settings), refusing unknown fields, missing ones and values of the wrong type by name."""
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{prefix.rstrip('.') or 'the settings'} must be an object")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InvalidInput(
            f"unknown field {prefix}{unknown[0]}; known fields: {', '.join(sorted(fields))}"
        )
    converted: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in values:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise InvalidInput(f"{prefix}{name} is required")
            continue
        converted[name] = _convert(hints[name], values[name], f"{prefix}{name}")
    return cls(**converted)


def _convert(kind: Any, value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return from_mapping(kind, value, prefix=f"{name}.")  # type: ignore[arg-type]
    if value is None:
        if _allows_none(kind):
            return None
        raise InvalidInput(f"{name} must not be null")
    kind = without_none(kind)
    literal = _literal_values(kind)
    if literal:
        if value not in literal or isinstance(value, bool):
            raise InvalidInput(f"{name} must be one of {', '.join(map(str, literal))}")
        return value
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, list | tuple) or not all(isinstance(v, item) for v in value):
            raise InvalidInput(f"{name} must be a list of {item.__name__}")
        return tuple(value)
    # JSON has no separate integer type for floats: 1 is a valid float, True is not a number.
    accepted = (int, float) if kind is float else (kind,)
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
        raise InvalidInput(f"{name} must be {_type_name(kind)}")
    return float(value) if kind is float else value


def without_none(kind: Any) -> Any:
    """``X`` of ``X | None``; any other type as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return kind


def _allows_none(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(kind)


def _literal_values(kind: Any) -> tuple[Any, ...]:
    return typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()


def _type_name(kind: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        kind, getattr(kind, "__name__", str(kind))
    )


def _shown(default: Any) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)
