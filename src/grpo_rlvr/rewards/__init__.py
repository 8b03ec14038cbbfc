"""The named reward registry.

A reward is a plain function with TRL's reward signature, `fn(completions, **columns) -> list[float]`,
registered under the name a recipe uses (`rewards: [gsm8k_format, gsm8k_correctness]`). TRL logs each
reward's mean as `rewards/<name>/mean`, so the registry name is also the function's `__name__`.
Per-reward options from a recipe (`reward_kwargs: {code_exec: {partial: 0.2}}`) are bound with
`functools.partial`, keeping that name. `required_columns` says which dataset columns a reward reads,
so a missing column is an error before any model loads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

RewardFunc = Callable[..., list[float]]

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


def resolve(names: list[str], kwargs: dict[str, dict[str, Any]] | None = None) -> list[RewardFunc]:
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
        if name in kwargs:
            bound = functools.partial(fn, **kwargs[name])
            functools.update_wrapper(bound, fn)  # keeps __name__ and required_columns
            fn = bound
        funcs.append(fn)
    return funcs


# Built-in rewards register themselves on import.
from grpo_rlvr.rewards import code_exec, gsm8k, keywords  # noqa: E402,F401
