"""User reward modules: a recipe's `reward_module:` (in the container typically the `rewards` channel,
`/opt/ml/input/data/rewards/`) adds rewards to the registry before any model loads.

Rule: the path is a `.py` file, or a folder holding exactly one `.py` file. Every public function
*defined in* that file (name not starting with `_`; imported helpers are ignored) is registered
under its own name. Each must take TRL's reward arguments by keyword, `completions` plus `**kwargs`
(TRL passes every dataset column). Its required dataset columns are its parameters without
defaults, other than the ones TRL always supplies (`prompts`, `completions`, `completion_ids`,
`trainer_state`). Every problem (missing path, several or no `.py` files, syntax or import errors,
no functions, a bad signature, a name already registered) raises `RewardModuleError` naming the file.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from grpo_rlvr.rewards import REGISTRY, TRL_ARGUMENTS, RewardFunc, register


class RewardModuleError(ValueError):
    """A user reward module that cannot be used; the message names the file and the cause."""


def _source_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise RewardModuleError(f"reward module {path}: no such file or directory")
    files = sorted(p for p in path.glob("*.py") if p.is_file())
    if len(files) != 1:
        found = [p.name for p in files] or "none"
        raise RewardModuleError(f"reward module folder {path} must hold exactly one .py file, found {found}")
    return files[0]


def _import(file: Path) -> ModuleType:
    name = f"grpo_rlvr_user_rewards.{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise RewardModuleError(f"reward module {file}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # syntax, import and any other top-level error, reported as one kind
        del sys.modules[name]
        raise RewardModuleError(f"reward module {file} failed to import: {type(e).__name__}: {e}") from e
    return module


def _columns(file: Path, name: str, fn: RewardFunc) -> tuple[str, ...]:
    """Required columns from the signature, after checking TRL can call it."""
    params = inspect.signature(fn).parameters.values()
    if "completions" not in {p.name for p in params} or not any(p.kind is p.VAR_KEYWORD for p in params):
        raise RewardModuleError(
            f"reward module {file}: {name}() must accept `completions` and `**kwargs` "
            "(TRL passes every dataset column by keyword)"
        )
    return tuple(
        p.name
        for p in params
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in TRL_ARGUMENTS
    )


def load_reward_module(path: str | Path) -> list[str]:
    """Import a user's reward file and register its public functions; returns their names."""
    file = _source_file(Path(path))
    module = _import(file)
    functions = {
        name: fn
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and not name.startswith("_") and fn.__module__ == module.__name__
    }
    if not functions:
        raise RewardModuleError(f"reward module {file} defines no public reward functions")
    clashes = sorted(set(functions) & set(REGISTRY))
    if clashes:
        raise RewardModuleError(f"reward module {file}: {clashes} clash with registered rewards")
    columns = {name: _columns(file, name, fn) for name, fn in functions.items()}
    for name, fn in functions.items():
        register(name, columns=columns[name])(fn)
    return sorted(functions)
