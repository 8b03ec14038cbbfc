"""What every recipe key takes, known without importing TRL, and the first check of a recipe against it.

Validating a recipe through TRL's own dataclasses means importing torch, transformers, peft and TRL:
20 seconds or more on a busy machine before a mistyped key is reported. This module answers the
questions a mistake raises — is it a key, is the value of its type, is it allowed to be null, is it
one of the choices, is it in range — from a description of every field, and reports every problem of
the recipe in one message. Only a recipe that passes goes on to TRL's classes (`config._parse`).

The description of TRL's `GRPOConfig` and `ModelConfig` is a snapshot (`trl_fields.json`, written by
`python -m grpo_rlvr.recipe_schema`); this project's own sections are described live. One function,
`field_kind`, describes a field exactly as transformers' `HfArgumentParser` reads it (the parser the
full validation uses); tests hold the snapshot equal to the installed TRL and `field_kind` equal to the
parser's own actions for every field, so neither can drift from what the full validation accepts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

SNAPSHOT = Path(__file__).with_name("trl_fields.json")
_TRUE = ("yes", "true", "t", "y", "1")  # transformers' string_to_bool, case-insensitive
_FALSE = ("no", "false", "f", "n", "0")
_SCALARS = {bool: "bool", int: "int", float: "float", str: "str"}
# Read as a list although TRL's parser reads one value: TrainingArguments takes a list of integrations.
LIST_KEYS = ("report_to",)


def field_kind(field: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """How `HfArgumentParser` reads one field: its value type, a list or not, choices, null, default.

    Follows `HfArgumentParser._parse_dataclass_field`: a union keeps `str` over the other member, an
    optional drops `None` (except `bool | None`), a Literal or Enum becomes a choice, a list reads `+`.
    A type it would call on the text itself (a config class, a dict) is `other`: left to that parse.
    """
    args = typing.get_args(hint)
    nullable = type(None) in args
    kind: Any = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if type(None) not in args:
            kind = args[0] if args[1] is str else args[1]
        elif bool not in args:
            kind = args[0] if args[1] is type(None) else args[1]
        else:
            kind = bool
    described: dict[str, Any] = {"nullable": nullable, "list": False}
    origin = typing.get_origin(kind) or kind
    if origin is Literal or (isinstance(kind, type) and issubclass(kind, enum.Enum)):
        choices = typing.get_args(kind) if origin is Literal else [m.value for m in kind]
        described.update(type="choice", choices=[str(c) for c in choices])
    elif "choices" in field.metadata:  # a plain str field whose help metadata lists its choices
        described.update(type="choice", choices=[str(c) for c in field.metadata["choices"]])
    elif isinstance(origin, type) and issubclass(origin, list):
        described.update(type=_SCALARS.get(typing.get_args(kind)[0], "other"), list=True)
    else:
        described["type"] = _SCALARS.get(kind, "other")
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if default is not dataclasses.MISSING:
        default = default.value if isinstance(default, enum.Enum) else default
        with contextlib.suppress(TypeError, ValueError):  # not plain data: no check here needs it
            described["default"] = json.loads(json.dumps(default))
    return described


def describe(classes: Iterable[type]) -> dict[str, dict[str, Any]]:
    """Every init field of these dataclasses, by name (a later class's field wins, as in the parser)."""
    fields = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        fields.update({f.name: field_kind(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init})
    for key in LIST_KEYS:
        if key in fields:
            fields[key] = {**fields[key], "list": True}
    return fields


def trl_classes() -> list[type]:
    """The TRL classes a recipe configures (imports TRL: only for writing and checking the snapshot)."""
    from trl import ModelConfig

    from grpo_rlvr.grpo_args import GRPOArgs

    return [GRPOArgs, ModelConfig]


def schema(sections: Iterable[type]) -> dict[str, dict[str, Any]]:
    """The snapshot of TRL's fields, then this project's sections described live."""
    return {**json.loads(SNAPSHOT.read_text(encoding="utf-8")), **describe(sections)}


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 25]}... ({len(text)} characters)"


def _as_text(value: Any) -> str:
    """The text the full validation hands argparse for one value (`config._arg`'s rule)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _convert(kind: dict[str, Any], value: Any) -> tuple[Any, str | None]:
    """One value read as the parser reads it: (the value, None) or (None, what is wrong, in words)."""
    text = _as_text(value)
    match kind["type"]:
        case "bool":
            if isinstance(value, bool) or text.lower() in _TRUE + _FALSE:
                return (value if isinstance(value, bool) else text.lower() in _TRUE), None
            return None, f"must be true or false, got {_shown(value)}"
        case "int":
            try:
                return int(text), None
            except ValueError:
                digits = text.lstrip("+-").isdigit()
                return None, ("must be at most 9.22e+18 in size" if digits else "must be a whole number") + (
                    f", got {_shown(value)}"
                )
        case "float":
            try:
                return float(text), None
            except ValueError:
                return None, f"must be a number, got {_shown(value)}"
        case "choice":
            if text in kind["choices"]:
                return text, None
            return None, f"must be one of {', '.join(map(repr, kind['choices']))}; got {_shown(value)}"
    return value, None  # str, or a type the full parse reads itself


def check_value(key: str, kind: dict[str, Any], value: Any) -> tuple[Any, str | None]:
    """A value against its key's description: (the value as read, None) or (None, the problem)."""
    if value is None:
        return (None, None) if kind["nullable"] else (None, "may not be null")
    if not kind["list"]:
        if isinstance(value, list | tuple):
            return None, f"takes one value, got a list {_shown(value)}"
        return _convert(kind, value)
    read = []
    for item in value if isinstance(value, list | tuple) else [value]:
        item_value, problem = _convert(kind, item)
        if problem:
            return None, f"each item {problem}"
        read.append(item_value)
    return read, None


def check_values(
    values: Mapping[str, Any],
    kinds: Mapping[str, dict[str, Any]],
    did_you_mean: Callable[[str, Iterable[str]], str],
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Every value against its key: (the values as read, over the defaults; every (key, problem))."""
    read = {key: kind["default"] for key, kind in kinds.items() if "default" in kind}
    problems = []
    for key, value in values.items():
        kind = kinds.get(str(key))
        if kind is None:
            problems.append((str(key), "unknown key" + did_you_mean(str(key), kinds)))
            continue
        read[key], problem = check_value(key, kind, value)
        if problem:
            problems.append((key, problem))
    return read, problems


def write_snapshot() -> None:
    """Describe the installed TRL's classes into `trl_fields.json` (after a TRL upgrade)."""
    SNAPSHOT.write_text(
        json.dumps(describe(trl_classes()), indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    print(f"wrote {SNAPSHOT}", file=sys.stderr)


if __name__ == "__main__":
    write_snapshot()
