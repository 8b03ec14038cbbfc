"""Recipes: a flat YAML file plus overrides -> one validated `RunConfig`, before any model loads.

A recipe's keys are TRL's own `GRPOConfig` and `ModelConfig` fields plus our data, reward and run
dataclasses (`sections.py`), like open-r1's recipes. Every key, type, choice and range is first checked
against the recipe schema (`recipe_schema.py`: no TRL import, every problem in one message); then every
value goes through one `HfArgumentParser` over all five dataclasses as a command line (`--key=value`),
exactly as TRL's scripts read it. A key no dataclass owns is an error, never silently ignored. Overrides
come as typed values (SageMaker hyperparameters, decoded by the launcher) or as `key=value` strings, read
by `overrides.parse_overrides` (YAML values, so `rewards=[a,b]` is a list). Recipes and overrides are
read with YAML 1.2 scalars (only true/false are booleans): `save_strategy: no` is the string "no", as TRL
expects.

`report_to` takes one integration or a list (`report_to: [mlflow, tensorboard]`). With
$MLFLOW_TRACKING_URI set, mlflow joins whatever the recipe reports to, unless the recipe or an override
says `report_to: none` explicitly: then nothing is reported, MLflow included.

The group size against the batch and the model and data paths (a local one must exist; `checks.py`) are
checked here with the schema; the other checks that need no model (`checks.py`) follow: the rewards and
their options (after loading a user reward module), the prompt format, the shot count, `report_to`
integrations (known and installed) and evaluation without validation rows. Each failure is a
`ConfigError` naming the key to fix. What needs the data (reward columns, prompt lengths) is checked by
`training.grpo.run` before it loads the model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from grpo_rlvr.config.checks import check_data_path, check_model_path, local_path_exists, validated
from grpo_rlvr.config.sections import (
    SECTIONS,
    ConfigError,
    DataArguments,
    RewardArguments,
    RunArguments,
    RunConfig,
    check_number,
    did_you_mean,
    shown,
)
from grpo_rlvr.files import local_path
from grpo_rlvr.overrides import NotKeyValue, RecipeLoader, parse_overrides
from grpo_rlvr.recipe_schema import LIST_KEYS, check_values, schema

if TYPE_CHECKING:
    from trl import GRPOConfig, ModelConfig

RECIPES_ENV = "GRPO_RLVR_RECIPES"  # the image points this at its baked recipes folder
REPO_RECIPES = Path(__file__).resolve().parents[3] / "recipes"
DEFAULT_OUTPUT_DIR = "outputs/checkpoints"
MLFLOW_ENV = "MLFLOW_TRACKING_URI"
NO_REPORTING = (None, "none", [], ["none"])  # explicit `report_to` values that turn every reporter off
_BAKED_NAME = re.compile(r"[\w-][\w.-]*")  # a baked recipe is looked up by a plain name, never a path


def recipe_folders() -> list[Path]:
    """Where baked recipes (and `accelerate/` configs) are looked up: $GRPO_RLVR_RECIPES, then recipes/."""
    return [*([Path(os.environ[RECIPES_ENV])] if os.environ.get(RECIPES_ENV) else []), REPO_RECIPES]


def find_recipe(recipe: str | Path) -> Path:
    """A recipe file path, or a baked name looked up in `recipe_folders()`."""
    path = local_path(recipe)
    if local_path_exists("recipe", path) and path.is_file():
        return path
    folders = recipe_folders()
    if _BAKED_NAME.fullmatch(str(recipe)):
        for folder in folders:
            for candidate in (folder / f"{recipe}.yaml", folder / str(recipe)):
                if local_path_exists("recipe", candidate) and candidate.is_file():
                    return candidate
    names = sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.yaml")})
    raise ConfigError("recipe", f"no recipe file or baked recipe named {shown(recipe)!r}; baked: {names}")


def read_recipe(path: Path) -> dict[str, Any]:
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=RecipeLoader) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError("recipe", f"{path} is not valid YAML: {err}") from err
    except (ValueError, RecursionError) as err:  # an integer past Python's digit limit; nesting too deep
        raise ConfigError("recipe", f"{path} holds a value too large or too deeply nested to read") from err
    if not isinstance(values, dict):
        raise ConfigError("recipe", f"{path} must be a flat mapping of keys to values")
    return values


def load_config(
    recipe: str | Path, overrides: Mapping[str, Any] | Sequence[str] = (), *, num_processes: int | None = None
) -> RunConfig:
    """Recipe + overrides -> RunConfig, or a ConfigError naming the key to fix.

    `num_processes` is the data-parallel world size the run will have (default: $WORLD_SIZE, else 1);
    a launcher validating before it starts N processes passes N, and gets a config for N processes
    that only those processes may train with.
    """
    path = find_recipe(recipe)
    try:
        values = {**read_recipe(path), **parse_overrides(overrides)}
    except NotKeyValue as err:
        raise ConfigError(None, f"override {err.item!r} is not key=value") from err
    values.setdefault("output_dir", DEFAULT_OUTPUT_DIR)
    reporting_off = "report_to" in values and values["report_to"] in NO_REPORTING
    if reporting_off:
        values["report_to"] = "none"
    cpu_on_purpose = values.get("use_cpu") is True
    num_processes = num_processes or int(os.environ.get("WORLD_SIZE", 1))
    _precheck(values, num_processes)  # every key, type and range at once, before TRL is imported
    _apply_cpu_defaults(values)
    training, model, data, rewards, run = _parse(values, num_processes)
    if os.environ.get(MLFLOW_ENV) and not reporting_off and "mlflow" not in training.report_to:
        training.report_to.append("mlflow")
    config = validated(str(recipe), path, training, model, data, rewards, run)
    return dataclasses.replace(config, cpu_on_purpose=cpu_on_purpose)


def _apply_cpu_defaults(values: dict[str, Any]) -> None:
    """Without CUDA, validate as a CPU run in fp32 (TRL defaults bf16 on); explicit values are kept, except
    `tf32`: transformers refuses bf16 and tf32 on a host without a GPU, so a GPU recipe validates on a CPU
    host (a laptop writing a SageMaker job) this way. Whether it may TRAIN there is `check_device`'s
    question: only a recipe that asks for `use_cpu: true` itself does."""
    import torch

    if not torch.cuda.is_available():
        values.setdefault("use_cpu", True)
        values.setdefault("bf16", False)
        if values.get("tf32"):
            values["tf32"] = None


def _precheck(values: dict[str, Any], num_processes: int) -> None:
    """Every key, type, choice, null and range against the recipe schema, the group size, and the model and
    data paths (a local one must exist): all the problems in one ConfigError. Needs no TRL import, so a
    mistake is reported in a second or two."""
    read, problems = check_values(values, schema(SECTIONS.values()), did_you_mean)
    for key in values:
        if not any(k == key for k, _ in problems):
            try:
                check_number(key, read[key])
            except ConfigError as err:
                problems.append((key, str(err).removeprefix(f"{key}: ")))
    checks = [
        (_GROUP_KEYS, partial(_check_group_size, read, num_processes)),
        (("model_name_or_path",), partial(check_model_path, read.get("model_name_or_path"))),
        *(
            ((key,), partial(check_data_path, key, read.get(key)))
            for key in ("dataset_path", "val_dataset_path")
        ),
    ]  # each run where its keys' values are readable: a missing path is found without importing TRL too
    for keys, check in checks:
        if not any(k in keys for k, _ in problems):
            try:
                check()
            except ConfigError as err:
                problems.append((err.key, str(err).removeprefix(f"{err.key}: ")))
    if problems:
        order = list(values)  # as the recipe and the overrides give them
        problems.sort(key=lambda p: order.index(p[0]) if p[0] in order else len(order))
        raise ConfigError(*problems[0], more=problems[1:])


def _parse(
    values: dict[str, Any], num_processes: int
) -> tuple[GRPOConfig, ModelConfig, DataArguments, RewardArguments, RunArguments]:
    """One command line over all five dataclasses: argparse reads every value as TRL's scripts would
    (`_precheck` has already checked each one)."""
    from transformers import HfArgumentParser
    from trl import ModelConfig

    from grpo_rlvr.grpo_args import GRPOArgs

    class RecipeParser(HfArgumentParser):
        """argparse's errors raise a ConfigError naming the key, instead of printing usage and exiting."""

        def error(self, message: str) -> typing.NoReturn:
            found = re.search(r"argument --(\w+)", message)
            raise ConfigError(found[1] if found else None, shown(message, 240))  # values may be huge

    classes = [GRPOArgs, ModelConfig, *SECTIONS.values()]
    parser = RecipeParser(classes, add_help=False, allow_abbrev=False)
    actions = {
        a.dest: a for a in parser._actions if a.option_strings and a.option_strings[0] == f"--{a.dest}"
    }
    for key in LIST_KEYS:
        actions[key].nargs = "+"
    hints = {name: hint for cls in classes for name, hint in typing.get_type_hints(cls).items()}

    argv, nulls = [], []
    for key, value in values.items():
        action = actions.get(key)
        if action is None:
            raise ConfigError(str(key), "unknown key" + did_you_mean(str(key), actions))
        if value is None:
            if type(None) not in typing.get_args(hints[key]):
                raise ConfigError(key, "may not be null")
            nulls.append(key)
        elif action.nargs in ("+", "*"):
            argv += [f"--{key}", *map(_arg, value if isinstance(value, list | tuple) else [value])]
        elif isinstance(value, list | tuple):
            raise ConfigError(key, f"takes one value, got a list {value!r}")
        else:
            argv.append(f"--{key}={_arg(value)}")
    namespace, unused = parser.parse_known_args(argv)
    if unused:
        raise ConfigError(None, f"could not read {unused}")
    for key in nulls:
        setattr(namespace, key, None)
    if num_processes != int(os.environ.get("WORLD_SIZE", 1)):
        # A launcher validating for N processes from its single one: TRL's own batch checks must count N.
        planned = property(lambda _: num_processes)
        classes[0] = type(
            "PlannedGRPOConfig", (GRPOArgs,), {"world_size": planned, "__doc__": GRPOArgs.__doc__}
        )
    objects = []
    for cls in classes:
        inputs = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init}
        try:
            objects.append(cls(**inputs))
        except ConfigError:
            raise
        except (ValueError, TypeError) as err:  # TRL's and transformers' own checks
            raise ConfigError(None, str(err)) from err
    return tuple(objects)


def _arg(value: Any) -> str:
    """One value as the command-line text argparse reads back (bools as true/false, dicts as JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


_GROUP_KEYS = (
    "per_device_train_batch_size", "generation_batch_size", "steps_per_generation",
    "gradient_accumulation_steps", "num_generations",
)  # fmt: skip


def _check_group_size(read: Mapping[str, Any], num_processes: int) -> None:
    """TRL's rule, with the numbers: the generation batch must hold whole groups of num_generations."""
    per_device, generation_batch = read["per_device_train_batch_size"], read["generation_batch_size"]
    per_step = per_device * num_processes
    if generation_batch is not None and read["steps_per_generation"] is None:
        batch, how = generation_batch, f"generation_batch_size={generation_batch}"
    else:
        steps = read["steps_per_generation"] or read["gradient_accumulation_steps"]
        batch = per_step * steps
        how = (
            f"per_device_train_batch_size={per_device} x processes={num_processes} x "
            f"steps_per_generation={steps} (defaults to gradient_accumulation_steps) = {batch}"
        )
    groups = read["num_generations"]
    if groups is None or groups < 2 or batch % groups:
        fits = [g for g in range(2, batch + 1) if batch % g == 0]
        raise ConfigError(
            "num_generations",
            f"{groups} does not divide the generation batch {how}: use one of {fits} or change the batch",
        )
