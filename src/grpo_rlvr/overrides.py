"""`key=value`: the one grammar for recipe values given as text.

`grpo-rlvr train`, `grpo-rlvr launch`, `scripts/launch_sagemaker.py --hp` and `scripts/local_opt_ml.py
--hp` all read `key=value` here, so the same text gives the same value on every route. A value reads as
YAML, the language of the recipes themselves, with YAML 1.2 scalars: only true/false are booleans
(`save_strategy=no` is the string "no", as TRL expects, not YAML 1.1's False) and `1e-6` is a number.
So `rewards=[a, b]` is a list, `reward_kwargs={keywords: {max_repeats: 2}}` a mapping, `max_steps=3`
a number and `run_name='"3"'` the string "3". An empty value is the empty string; text YAML cannot
read (or that is past Python's integer digit limit or nesting depth) stays the text it is.

Needs PyYAML and nothing else, so the job scripts run from a plain checkout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars: only true/false are booleans, and `1e-6` is a float.

    TRL's string settings take "no" (`save_strategy: no`), which YAML 1.1 would read as False.
    """


RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.1 needs a dot and a signed exponent (`1.0e-6`); YAML 1.2 also reads `1e-6` and `3e5`.
RecipeLoader.add_implicit_resolver(
    _FLOAT_TAG, re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


class NotKeyValue(ValueError):
    """An argument that is not `key=value`; `item` is the argument as given."""

    def __init__(self, item: str) -> None:
        super().__init__(f"{item!r} is not key=value")
        self.item = item


def split_assignment(item: str) -> tuple[str, str]:
    """`key=value` -> (key, raw value text), split at the first `=`."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise NotKeyValue(item)
    return key.strip(), raw


def read_value(raw: str) -> Any:
    """One value's text as the recipe would read it (see the module docstring)."""
    if not raw.strip():
        return ""
    try:
        return yaml.load(raw, Loader=RecipeLoader)
    except (yaml.YAMLError, ValueError, RecursionError):  # also past Python's digit or nesting limits
        return raw


def parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """Typed overrides pass through; `key=value` strings are read by `read_value`."""
    if isinstance(overrides, Mapping):
        return dict(overrides)
    parsed = {}
    for item in overrides:
        key, raw = split_assignment(item)
        parsed[key] = read_value(raw)
    return parsed


def from_flags(args: Iterable[str], own: Iterable[str]) -> list[str]:
    """TRL's `--key value`, `--key=value` and bare `--flag` habits, as `key=value` arguments.

    Options in `own` (the command's own, like `--recipe`) and anything not starting with `--` pass
    through untouched. A bare flag followed by another option, or last, is `true`; dashes in the key
    become underscores, as TRL's parser allows.
    """
    args, own, out = list(args), set(own), []
    i = 0
    while i < len(args):
        arg = args[i]
        name, sep, value = arg.partition("=")
        if not arg.startswith("--") or arg == "--" or name in own:
            out.append(arg)
        elif sep:
            out.append(f"{name[2:].replace('-', '_')}={value}")
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            out.append(f"{name[2:].replace('-', '_')}={args[i + 1]}")
            i += 1
        else:
            out.append(f"{name[2:].replace('-', '_')}=true")
        i += 1
    return out
