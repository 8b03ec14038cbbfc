"""The named reward registry.

A reward is a plain function with TRL's reward signature, `fn(completions, **columns) -> list[float]`,
registered under the name a recipe uses (`rewards: [gsm8k_format, gsm8k_correctness]`). TRL logs each
reward's mean as `rewards/<name>/mean`, so the registry name is also the function's `__name__`.
Per-reward options from a recipe (`reward_kwargs: {code_exec: {partial: 0.2}}`) are bound with
`functools.partial`, keeping that name; `reward_options` lists the options a reward takes, so a
mistyped one is an error before any model loads, not swallowed by the `**kwargs` that takes TRL's
columns. A reward with a `prompt_format` parameter gets the run's prompt format bound by `resolve`.
`required_columns` says which dataset columns a reward reads, so a missing column is an error before any
model loads too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

RewardFunc = Callable[..., list[float]]

TRL_ARGUMENTS = frozenset({"prompts", "completions", "completion_ids", "trainer_state"})
PROMPT_FORMAT_ARG = "prompt_format"  # bound by `resolve` from the recipe, never a reward_kwargs option

REGISTRY: dict[str, RewardFunc] = {}


def register(name: str, *, columns: tuple[str, ...] = ()) -> Callable[[RewardFunc], RewardFunc]:
    """Add a reward function to the registry under `name`, noting the dataset columns it reads."""

    def wrap(fn: RewardFunc) -> RewardFunc:
        if name in REGISTRY:
            raise ValueError(f"reward {name!r} is already registered")
        fn.__name__ = name
        fn.required_columns = tuple(columns)  # type: ignore[attr-defined]
        REGISTRY[name] = fn
        return fn

    return wrap


def completion_text(completion: str | list[dict]) -> str:
    """TRL passes strings for plain prompts and message lists for conversational ones."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def required_columns(fn: RewardFunc) -> tuple[str, ...]:
    """The dataset columns a reward reads (none declared means none required)."""
    return getattr(fn, "required_columns", ())


def reward_options(fn: RewardFunc) -> list[str]:
    """The options `reward_kwargs` may set for a reward: its named parameters that have defaults."""
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.default is not p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in TRL_ARGUMENTS | {PROMPT_FORMAT_ARG}
    ]


def resolve(
    names: list[str], kwargs: dict[str, dict[str, Any]] | None = None, prompt_format: Any = None
) -> list[RewardFunc]:
    """Registry names (and optional per-reward options) -> the callables TRL's trainer takes."""
    kwargs = dict(kwargs or {})
    unknown = [n for n in [*names, *kwargs] if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; registered: {sorted(REGISTRY)}")
    stray = [n for n in kwargs if n not in names]
    if stray:
        raise ValueError(f"reward_kwargs given for reward(s) not selected in `rewards`: {stray}")
    funcs = []
    for name in names:
        fn = REGISTRY[name]
        options = dict(kwargs.get(name, {}))
        if prompt_format is not None and PROMPT_FORMAT_ARG in inspect.signature(fn).parameters:
            options[PROMPT_FORMAT_ARG] = prompt_format
        if options:
            bound = functools.partial(fn, **options)
            functools.update_wrapper(bound, fn)  # keeps __name__ and required_columns
            fn = bound
        funcs.append(fn)
    return funcs


# Built-in rewards register themselves on import.
from grpo_rlvr.rewards import code_exec, gsm8k, keywords  # noqa: E402,F401
